//! Citus: a distributed bidim table behaves as one bidim table.
//!
//! Citus makes every shard (and every moved, split or rebalanced one) from the
//! coordinator's definition of the table, which carries the table's settings as
//! `bidim.*` storage parameters (`super::options`, `super::utility`). What changes
//! later is sent to the shards from here: `bidim.configure`, `seal`, `convert` and
//! `drop_before` on a distributed table run on every shard placement through Citus'
//! `run_command_on_placements` (new connections, as the calling user) and report the
//! shards' totals. Those commands are not part of the caller's transaction: each shard
//! commits its own; a failure on any shard is an error naming it.

use super::api::{self, ConfigArgs};
use super::privilege::pinned;
use crate::error::spi_or_raise;
use pgrx::prelude::*;

/// Whether `rel` is a Citus table (distributed, reference or Citus-managed local).
pub fn is_distributed(rel: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup by name.
    if unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } == pg_sys::InvalidOid {
        return false;
    }
    pinned(|| {
        spi_or_raise(
            Spi::get_one_with_args::<bool>(
                "SELECT bidim.is_citus_table($1::pg_catalog.regclass)",
                &[rel.into()],
            ),
            "look up Citus' tables",
        )
        .unwrap_or(false)
    })
}

/// `command` (a `format` string whose `%L` is the shard's name) run on every shard
/// placement of `rel` by `bidim.on_shards` (an error names a shard that failed): one
/// result per shard.
pub fn on_shards(rel: pg_sys::Oid, command: &str) -> Vec<Option<String>> {
    pinned(|| {
        spi_or_raise(
            Spi::connect(|c| {
                let t = c.select(
                    "SELECT s.result FROM bidim.on_shards($1::pg_catalog.regclass, $2) s",
                    None,
                    &[rel.into(), command.into()],
                )?;
                let mut out = Vec::new();
                for row in t {
                    out.push(row.get::<String>(1)?);
                }
                Ok::<_, pgrx::spi::Error>(out)
            }),
            "run a command on the shards",
        )
    })
}

/// The sum of an integer command's results over the shards of `rel`.
pub fn sum_on_shards(rel: pg_sys::Oid, command: &str) -> i64 {
    on_shards(rel, command)
        .into_iter()
        .map(|r| r.and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0))
        .sum()
}

/// `%` doubled, for text inside a `format` string.
fn escaped(s: &str) -> String {
    s.replace('%', "%%")
}

/// A quoted SQL literal (PostgreSQL's quote_literal: E'' when it holds a backslash).
fn literal(s: &str) -> String {
    let c = std::ffi::CString::new(s).expect("a setting holds no NUL");
    // SAFETY: a NUL-terminated string in, a palloc'd NUL-terminated string out.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::quote_literal_cstr(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// Sends the settings `args` (already applied to `rel` here) to every shard of `rel`.
pub fn configure_shards(rel: pg_sys::Oid, args: &ConfigArgs) {
    let mut named = Vec::new();
    if let Some(k) = &args.key {
        named.push(format!("key_column => {}", literal(k)));
    }
    if let Some(t) = &args.time {
        named.push(format!("time_column => {}", literal(t)));
    }
    if let Some(r) = args.rows {
        named.push(format!("hot_chunk_rows => {r}"));
    }
    if let Some(w) = args.width {
        let text = api::output_text(pg_sys::INTERVALOID, w);
        named.push(format!(
            "partition_interval => {}::pg_catalog.interval",
            literal(&text)
        ));
    }
    if let Some(a) = args.convert_after {
        let text = api::output_text(pg_sys::INTERVALOID, a);
        named.push(format!(
            "convert_after => {}::pg_catalog.interval",
            literal(&text)
        ));
    }
    let mut command = String::from("SELECT 1 FROM bidim.configure(%L");
    for n in named {
        command.push_str(", ");
        command.push_str(&escaped(&n));
    }
    command.push(')');
    on_shards(rel, &command);
}

/// `bidim.<function>(shard, <args>)` on every shard of `rel`, summed.
pub fn call_on_shards(rel: pg_sys::Oid, function: &str, args: &[String]) -> i64 {
    let mut command = format!("SELECT bidim.{function}(%L");
    for a in args {
        command.push_str(", ");
        command.push_str(&escaped(a));
    }
    command.push(')');
    sum_on_shards(rel, &command)
}

/// A timestamptz as an SQL expression that means the same instant on any node,
/// whatever its time zone or date style: 2000-01-01 UTC plus a time-only interval
/// (added exactly, in microseconds).
pub fn timestamptz_literal(d: pg_sys::Datum) -> String {
    interval_from_epoch(d.value() as i64)
}

fn interval_from_epoch(us: i64) -> String {
    match us {
        i64::MAX => "'infinity'::pg_catalog.timestamptz".into(),
        i64::MIN => "'-infinity'::pg_catalog.timestamptz".into(),
        _ => {
            let sign = if us < 0 { "-" } else { "" };
            let a = us.unsigned_abs();
            let (h, rest) = (a / 3_600_000_000, a % 3_600_000_000);
            let (m, rest) = (rest / 60_000_000, rest % 60_000_000);
            let (sec, micro) = (rest / 1_000_000, rest % 1_000_000);
            format!(
                "(pg_catalog.timestamptz '2000-01-01 00:00:00+00' OPERATOR(pg_catalog.+) pg_catalog.interval '{sign}{h}:{m:02}:{sec:02}.{micro:06}')"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_as_intervals() {
        assert!(super::interval_from_epoch(3_723_000_001).contains("'1:02:03.000001'"));
        assert!(super::interval_from_epoch(-1).contains("'-0:00:00.000001'"));
    }
}

//! Rollups: per (key, bucket) and per bucket, the count, sum, min, max, first, last
//! and ddsketch of chosen columns, materialized by the maintenance worker and read
//! through views that add the raw rows not materialized (`sql/rollup.sql` holds the
//! catalog, the views' and statements' text, `rollup_rules` the pure rules).
//!
//! **Exactness.** A view reads the rows before the rollup's *watermark* from the
//! materialized table (the watermark's own bucket: its part before the watermark,
//! combined with the raw rows after), unless a write changed their bucket since; every
//! other row raw. Writers log the buckets they change below the rollup's *threshold*
//! (`bidim.rollup_invalid`, in their own transaction), so a reader's snapshot sees
//! either the materialized bucket and no change, or the change and its log. A refresh
//! is two transactions:
//!
//! 1. **advance** moves the threshold to `now() - lag` (to the second, inside the open
//!    bucket), under a SHARE lock on the table: writers that might still act on the old
//!    threshold finish first; writers after it take their lock after the commit, so
//!    the relcache invalidation makes them read the new threshold.
//! 2. **materialize** (a new snapshot, after 1 committed) claims the logged buckets it
//!    can see, materializes them again, materializes `[watermark, threshold)`, and
//!    moves the watermark. A write it cannot see stays logged for the next refresh.
//!
//! Materialization runs as the table's owner in a security-restricted operation; the
//! catalog writes as the extension owner.

use super::api::{qualified_name, require_owner};
use super::config::{self, TableConfig};
use super::directory_io::{self, Row};
use super::privilege::{as_extension_owner, as_role, give_to, owner_of};
use super::rollup_rules::{self, buckets_touched, forward_slices, runs, slice_width, split_open};
use super::{cache, chunk_store, citus, route};
use crate::error::{raise, spi_or_raise};
use crate::fmgr::{arg, null};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

pgrx::extension_sql_file!(
    "../../sql/rollup.sql",
    name = "rollup_sql",
    requires = ["tam_catalog", "tam_api", "metrics_sql", "ddsketch_sql"]
);

/// What a writer needs to know of one rollup of its table.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    pub rollup_id: i32,
    pub width: i64,
    pub origin: i64,
    /// Changes to rows before it are logged.
    pub threshold: i64,
}

thread_local! {
    /// (rollup, bucket) this transaction has logged already.
    static LOGGED: RefCell<HashSet<(i32, i64)>> = RefCell::new(HashSet::new());
}

/// Forgets what this transaction logged (at its end, or when a subtransaction aborts:
/// the rows it logged are gone with it, so they are logged again if changed again).
pub fn transaction_ended() {
    LOGGED.with(|l| l.borrow_mut().clear());
}

/// Microseconds of a bucket width stored as (months, days, microseconds).
fn width_of(iv: (i32, i32, i64)) -> i64 {
    iv.2 + i64::from(iv.1) * 86_400_000_000
}

/// The rollups of `facade`, read by the latest snapshot (a threshold committed a
/// moment ago counts, also in REPEATABLE READ), cached until the table's next
/// relcache invalidation.
pub fn guards(facade: pg_sys::Oid) -> Rc<Vec<Guard>> {
    if let Some(g) = cache::rollups(facade) {
        return g;
    }
    let generation = cache::generation();
    let mut out = Vec::new();
    // SAFETY: the latest snapshot is registered around the read.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        directory_io::scan("rollup", "rollup_rel_idx", facade, snap, |r: &Row| {
            out.push(Guard {
                rollup_id: r.must("rollup_id", r.i32("rollup_id")),
                width: width_of(r.must("bucket", r.interval("bucket"))),
                origin: r.must("origin", r.i64("origin")),
                threshold: r.must("threshold", r.i64("threshold")),
            });
        });
        pg_sys::UnregisterSnapshot(snap);
    }
    let g = Rc::new(out);
    // Only if no invalidation arrived while reading (else the next row reads again).
    if cache::generation() == generation {
        cache::set_rollups(facade, g.clone());
    }
    g
}

/// Logs the buckets of rows a statement is inserting into `facade` (all in the
/// partition starting at `partition_lo`) that lie before a rollup's threshold: late
/// rows (and rows an UPDATE moves).
pub fn note_rows(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    partition_lo: i64,
    slots: &[*mut pg_sys::TupleTableSlot],
) {
    let g = guards(facade);
    let Some(highest) = g.iter().map(|r| r.threshold).max() else {
        return;
    };
    if partition_lo >= highest {
        return;
    }
    let mut touched = Vec::new();
    for &slot in slots {
        // SAFETY: routing deformed the slot up to its time, which is not null.
        let t = unsafe { route::slot_time(cfg, slot) };
        for r in g.iter().filter(|r| t < r.threshold) {
            touched.push((r.rollup_id, rollup_rules::bucket_of(t, r.width, r.origin)));
        }
    }
    log(touched);
}

/// Logs every bucket that rows in `[lo, hi]` (a chunk's time span, inclusive) may
/// fall in: a DELETE or UPDATE of a row of that chunk.
pub fn note_span(facade: pg_sys::Oid, lo: i64, hi: i64) {
    let g = guards(facade);
    let mut touched = Vec::new();
    for r in g.iter() {
        let Some(b) = buckets_touched(lo, hi, r.width, r.origin, r.threshold) else {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "bidim: this change touches more than {} buckets of rollup {} of table {}",
                    rollup_rules::MAX_LOGGED_BUCKETS,
                    r.rollup_id,
                    qualified_name(facade)
                ),
                Some("Remove the rollup (bidim.remove_rollup) or use a wider bucket."),
            )
        };
        touched.extend(b.into_iter().map(|b| (r.rollup_id, b)));
    }
    log(touched);
}

/// Writes the (rollup, bucket) pairs this transaction has not logged yet.
fn log(touched: Vec<(i32, i64)>) {
    let fresh: Vec<(i32, i64)> = LOGGED.with(|l| {
        let mut l = l.borrow_mut();
        touched.into_iter().filter(|p| l.insert(*p)).collect()
    });
    if fresh.is_empty() {
        return;
    }
    let ids: Vec<i32> = fresh.iter().map(|p| p.0).collect();
    let buckets: Vec<TimestampWithTimeZone> =
        fresh.iter().map(|p| chunk_store::timestamp(p.1)).collect();
    // As the extension owner: the writer may hold INSERT only on its table.
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.rollup_invalid (rollup_id, bucket)
                 SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int4[]),
                                          pg_catalog.unnest($2::pg_catalog.timestamptz[]))",
                &[ids.into(), buckets.into()],
            ),
            "log the rollup buckets a write changed",
        )
    });
}

/// Records that `facade`'s raw rows before `hi` were dropped: its rollups keep those
/// buckets as materialized, and their logged changes there are forgotten.
pub fn raw_dropped(facade: pg_sys::Oid, hi: i64) {
    if guards(facade).is_empty() {
        return;
    }
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "WITH r AS (
                     UPDATE bidim.rollup r SET raw_dropped_before = greatest(r.raw_dropped_before, $2)
                     WHERE r.rel OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass RETURNING r.rollup_id)
                 DELETE FROM bidim.rollup_invalid i USING r
                 WHERE i.rollup_id OPERATOR(pg_catalog.=) r.rollup_id AND i.bucket OPERATOR(pg_catalog.<) $2",
                &[facade.into(), chunk_store::timestamp(hi).into()],
            ),
            "record dropped raw rows on the table's rollups",
        )
    });
}

// ---------------------------------------------------------------------------------
// Creating and removing rollups

/// Whether `t` is a numeric type a rollup takes (as float8).
fn is_rollup_type(t: pg_sys::Oid) -> bool {
    [
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::FLOAT4OID,
        pg_sys::FLOAT8OID,
        pg_sys::NUMERICOID,
    ]
    .contains(&t)
}

/// Live columns of `rel`: (name, type).
fn columns_of(rel: pg_sys::Oid) -> Vec<(String, pg_sys::Oid)> {
    // SAFETY: the relation is open in AccessShareLock for the read of its descriptor.
    unsafe {
        let r = pg_sys::relation_open(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let desc = (*r).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let out = attrs
            .iter()
            .filter(|a| !a.attisdropped)
            .map(|a| {
                (
                    std::ffi::CStr::from_ptr(a.attname.data.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                    a.atttypid,
                )
            })
            .collect();
        pg_sys::relation_close(r, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        out
    }
}

/// The non-null elements of a `name[]`.
///
/// # Safety
/// `d` must be a non-null `name[]` datum.
unsafe fn name_array(d: pg_sys::Datum) -> Vec<String> {
    // SAFETY: per the contract: deconstruct_array copies out pointers to the NameData
    // elements (fixed length NAMEDATALEN, by reference, char alignment).
    unsafe {
        let a = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0i32;
        pg_sys::deconstruct_array(
            a,
            pg_sys::NAMEOID,
            pg_sys::NAMEDATALEN as i32,
            false,
            b'c' as std::ffi::c_char,
            &mut elems,
            &mut nulls,
            &mut n,
        );
        (0..n as usize)
            .filter(|&i| !*nulls.add(i))
            .map(|i| {
                std::ffi::CStr::from_ptr((*elems.add(i)).cast_mut_ptr::<std::ffi::c_char>())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

fn text_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Option<String> {
    // SAFETY: argument i is a text (or NULL).
    unsafe {
        let (d, n) = arg(fcinfo, i);
        (!n).then(|| String::from_utf8_lossy(crate::fmgr::varlena_bytes(d)).into_owned())
    }
}

fn interval_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Option<pgrx::datum::Interval> {
    // SAFETY: argument i is an interval (or NULL).
    unsafe {
        let (d, n) = arg(fcinfo, i);
        if n {
            return None;
        }
        let iv = &*d.cast_mut_ptr::<pg_sys::Interval>();
        pgrx::datum::Interval::new(iv.month, iv.day, iv.time).ok()
    }
}

finfo!(pg_finfo_bidim_add_rollup);
/// `bidim.add_rollup(rel, bucket, columns, name, refresh_lag, drop_after,
/// schedule_interval)`: creates the rollup's tables, views and job; returns the view.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_add_rollup(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let func = "bidim.add_rollup";
    // SAFETY: argument positions and types follow the SQL declaration.
    let rel = unsafe { super::api::owned_table_arg(fcinfo, func) };
    if citus::is_distributed(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func}: table {} is distributed by Citus", qualified_name(rel)),
            Some("Roll up each shard's rows with a distributed query (the aggregates combine), or add the rollup to a local table."),
        );
    }
    let Some(bucket) = interval_arg(fcinfo, 1) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{func}: bucket must not be NULL"),
            None,
        )
    };
    let width = bucket.micros() + i64::from(bucket.days()) * 86_400_000_000;
    if bucket.months() != 0 || width <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{func}: bucket must be a positive width without months or years, got {bucket}"
            ),
            Some("Use days, hours, minutes or seconds, e.g. interval '1 hour'."),
        );
    }
    let settings = config::current_settings(rel);
    let cols = columns_of(rel);
    let type_of = |name: &str| cols.iter().find(|c| c.0 == name).map(|c| c.1);
    if type_of(&settings.time_column) != Some(pg_sys::TIMESTAMPTZOID) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{func}: the time column \"{}\" of table {} is not timestamptz",
                settings.time_column,
                qualified_name(rel)
            ),
            Some("Rollups bucket timestamptz times (a timestamp's buckets would depend on the session's time zone)."),
        );
    }
    // SAFETY: argument 2 is a name[] (or NULL).
    let chosen: Vec<String> = match unsafe { arg(fcinfo, 2) } {
        (_, true) => cols
            .iter()
            .filter(|c| {
                c.0 != settings.key_column && c.0 != settings.time_column && is_rollup_type(c.1)
            })
            .map(|c| c.0.clone())
            .collect(),
        // SAFETY: a non-null name[] datum.
        (d, false) => unsafe { name_array(d) },
    };
    if chosen.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{func}: no column to roll up in table {}",
                qualified_name(rel)
            ),
            Some("Name numeric columns (columns => ARRAY['value'])."),
        );
    }
    let mut seen = HashSet::new();
    for c in &chosen {
        match type_of(c) {
            None => raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("{func}: column \"{c}\" of table {} does not exist", qualified_name(rel)),
                None,
            ),
            Some(t) if !is_rollup_type(t) || c == &settings.key_column || c == &settings.time_column => raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!("{func}: column \"{c}\" is not a numeric value column"),
                Some("Roll up smallint, integer, bigint, real, double precision or numeric columns other than the key and time."),
            ),
            Some(_) if !seen.insert(c.clone()) => raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                format!("{func}: column \"{c}\" is named twice"),
                None,
            ),
            Some(_) => {}
        }
        // The data table's columns add up to 12 characters to the name.
        if c.len() > 51 {
            raise(
                PgSqlErrorCode::ERRCODE_NAME_TOO_LONG,
                format!("{func}: column name \"{c}\" is too long for a rollup (51 bytes at most)"),
                None,
            );
        }
    }
    // SAFETY: syscache lookups by oid.
    let (schema, relname) = unsafe {
        let ns = pg_sys::get_rel_namespace(rel);
        (
            std::ffi::CStr::from_ptr(pg_sys::get_namespace_name(ns))
                .to_string_lossy()
                .into_owned(),
            std::ffi::CStr::from_ptr(pg_sys::get_rel_name(rel))
                .to_string_lossy()
                .into_owned(),
        )
    };
    let name = text_arg(fcinfo, 3).unwrap_or_else(|| rollup_rules::default_name(&relname, width));
    let total = format!("{name}_total");
    if total.len() >= pg_sys::NAMEDATALEN as usize {
        raise(
            PgSqlErrorCode::ERRCODE_NAME_TOO_LONG,
            format!("{func}: rollup name \"{name}\" is too long"),
            None,
        );
    }
    for n in [&name, &total] {
        if directory_io::relation_oid(&schema, n) != pg_sys::InvalidOid {
            raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                format!("{func}: relation \"{schema}.{n}\" already exists"),
                Some("Give the rollup another name (name => ...)."),
            );
        }
    }
    let lag = interval_arg(fcinfo, 4)
        .unwrap_or_else(|| pgrx::datum::Interval::new(0, 0, 60_000_000).expect("1 minute"));
    if lag.months() != 0 || lag.micros() < 0 || lag.days() < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{func}: refresh_lag must be a non-negative width without months, got {lag}"),
            None,
        );
    }
    let drop_after = interval_arg(fcinfo, 5);
    let schedule = interval_arg(fcinfo, 6);
    let owner = owner_of(rel);
    let qualify = |n: &str| {
        format!(
            "{}.{}",
            chunk_store::quote_ident(&schema),
            chunk_store::quote_ident(n)
        )
    };
    let (qview, qtotal) = (qualify(&name), qualify(&total));
    let rels = as_extension_owner(|| {
        // The origin: midnight UTC of Monday 2000-01-03 (date_bin's usual origin for
        // weeks), so day and week buckets start at midnight UTC.
        let id = spi_or_raise(
            Spi::get_one_with_args::<i32>(
                "INSERT INTO bidim.rollup (rel, bucket, origin, key_column, time_column, columns, refresh_lag, drop_after)
                 VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, '2000-01-03 00:00:00+00', $3, $4,
                         $5::pg_catalog.name[], $6, $7)
                 RETURNING rollup_id",
                &[
                    rel.into(),
                    bucket.into(),
                    settings.key_column.clone().into(),
                    settings.time_column.clone().into(),
                    chosen.clone().into(),
                    lag.into(),
                    drop_after.into(),
                ],
            ),
            "record the rollup",
        )
        .expect("a rollup id");
        for stmt in statements(id, "create", Some((&qview, &qtotal))) {
            spi_or_raise(Spi::run(&stmt), "create the rollup's tables and views");
        }
        let rels = spi_or_raise(
            Spi::connect_mut(|client| {
                let row = client
                    .update(
                        "UPDATE bidim.rollup SET view = $2::pg_catalog.regclass, total_view = $3::pg_catalog.regclass,
                                data = pg_catalog.format('bidim_rollup.%I', 'r' OPERATOR(pg_catalog.||) $1)::pg_catalog.regclass,
                                total_data = pg_catalog.format('bidim_rollup.%I', 'r' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) '_total')::pg_catalog.regclass
                         WHERE rollup_id OPERATOR(pg_catalog.=) $1
                         RETURNING view::pg_catalog.oid, total_view::pg_catalog.oid, data::pg_catalog.oid, total_data::pg_catalog.oid",
                        None,
                        &[id.into(), qview.clone().into(), qtotal.clone().into()],
                    )?
                    .first();
                Ok::<_, pgrx::spi::Error>([
                    row.get::<pg_sys::Oid>(1)?,
                    row.get::<pg_sys::Oid>(2)?,
                    row.get::<pg_sys::Oid>(3)?,
                    row.get::<pg_sys::Oid>(4)?,
                ])
            }),
            "record the rollup's relations",
        );
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.job (kind, rel, rollup_id, schedule_interval)
                 VALUES ('rollup', $1::pg_catalog.oid::pg_catalog.regclass, $2, $3)",
                &[rel.into(), id.into(), schedule.into()],
            ),
            "add the rollup's job",
        );
        rels
    });
    for r in rels.iter().flatten() {
        give_to(*r, owner);
    }
    let id = rollup_of_view(rels[0].expect("the view")).expect("the new rollup");
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args("SELECT bidim._rollup_grants($1)", &[id.into()]),
            "grant the table's readers the rollup's views",
        )
    });
    // Writers start logging once the first refresh moves the threshold.
    cache::invalidate_relcache(rel);
    pg_sys::Datum::from(rels[0].expect("the view"))
}

/// The statements of rollup `id` (`bidim._rollup_sql`), built as the extension owner.
fn statements(id: i32, what: &str, names: Option<(&str, &str)>) -> Vec<String> {
    let (v, t) = names.map_or((None, None), |(v, t)| {
        (Some(v.to_string()), Some(t.to_string()))
    });
    as_extension_owner(|| {
        spi_or_raise(
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT s FROM bidim._rollup_sql($1, $2, $3, $4) s",
                    None,
                    &[id.into(), what.into(), v.into(), t.into()],
                )?;
                let mut out = Vec::new();
                for r in rows {
                    if let Some(s) = r.get::<String>(1)? {
                        out.push(s);
                    }
                }
                Ok::<_, pgrx::spi::Error>(out)
            }),
            "build the rollup's statements",
        )
    })
}

/// The rollup whose view or total view is `view`.
fn rollup_of_view(view: pg_sys::Oid) -> Option<i32> {
    as_extension_owner(|| {
        spi_or_raise(
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT r.rollup_id FROM bidim.rollup r
                     WHERE r.view::pg_catalog.oid OPERATOR(pg_catalog.=) $1
                        OR r.total_view::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
                    None,
                    &[view.into()],
                )?;
                if rows.is_empty() {
                    return Ok(None);
                }
                rows.first().get::<i32>(1)
            }),
            "find the rollup",
        )
    })
}

finfo!(pg_finfo_bidim_remove_rollup);
/// `bidim.remove_rollup(view, if_exists)`: drops the rollup's views (the drop event
/// trigger takes its tables, catalog rows and job along).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_remove_rollup(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass, bool) per the SQL declaration.
    let ((v, vnull), (e, enull)) = unsafe { (arg(fcinfo, 0), arg(fcinfo, 1)) };
    let if_exists = !enull && e.value() != 0;
    let id = if vnull {
        None
    } else {
        rollup_of_view(pg_sys::Oid::from(v.value() as u32))
    };
    let Some(id) = id else {
        if if_exists {
            // SAFETY: a void result.
            return unsafe { null(fcinfo) };
        }
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "bidim.remove_rollup: not a rollup view",
            Some("bidim.rollups lists the rollups."),
        )
    };
    let r = load(id, false);
    require_owner(r.rel);
    as_extension_owner(|| forget(id));
    // SAFETY: a void result.
    unsafe { null(fcinfo) }
}

finfo!(pg_finfo_bidim_rollup_forget);
/// `bidim._rollup_forget(id)`: the drop event trigger's cleanup.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_rollup_forget(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (int4).
    let id = unsafe { arg(fcinfo, 0).0.value() as i32 };
    as_extension_owner(|| forget(id));
    // SAFETY: a void result.
    unsafe { null(fcinfo) }
}

/// Deletes rollup `id`'s catalog rows and job, then drops whichever of its views and
/// tables still exist (run as the extension owner).
fn forget(id: i32) {
    let rels: Vec<pg_sys::Oid> = spi_or_raise(
        Spi::connect_mut(|client| {
            let rows = client.update(
                "WITH r AS (DELETE FROM bidim.rollup WHERE rollup_id OPERATOR(pg_catalog.=) $1
                            RETURNING view, total_view, data, total_data),
                      j AS (DELETE FROM bidim.job WHERE kind OPERATOR(pg_catalog.=) 'rollup' AND rollup_id OPERATOR(pg_catalog.=) $1),
                      i AS (DELETE FROM bidim.rollup_invalid WHERE rollup_id OPERATOR(pg_catalog.=) $1)
                 SELECT x FROM r, LATERAL (VALUES (r.view::pg_catalog.oid), (r.total_view::pg_catalog.oid),
                                                  (r.data::pg_catalog.oid), (r.total_data::pg_catalog.oid)) v(x)",
                None,
                &[id.into()],
            )?;
            let mut out = Vec::new();
            for r in rows {
                if let Some(o) = r.get::<pg_sys::Oid>(1)? {
                    out.push(o);
                }
            }
            Ok::<_, pgrx::spi::Error>(out)
        }),
        "forget the rollup",
    );
    for rel in rels {
        // SAFETY: a syscache lookup by oid; '\0' for a relation that is gone.
        let relkind = unsafe { pg_sys::get_rel_relkind(rel) } as u8;
        if relkind == 0 {
            continue;
        }
        let kind = if relkind == pg_sys::RELKIND_VIEW {
            "VIEW"
        } else {
            "TABLE"
        };
        spi_or_raise(
            Spi::run(&format!("DROP {kind} IF EXISTS {}", qualified_name(rel))),
            "drop the rollup's relations",
        );
    }
}

// ---------------------------------------------------------------------------------
// Refreshing

/// A rollup's catalog row, as a refresh needs it.
struct Rollup {
    rel: pg_sys::Oid,
    data: pg_sys::Oid,
    width: i64,
    origin: i64,
    threshold: i64,
    watermark: i64,
    raw_dropped_before: i64,
    /// `now() - drop_after`, bucketed: materialized buckets before it are deleted.
    drop_before: Option<i64>,
    /// `now() - refresh_lag`, bucketed: the end of the last finished bucket.
    target: i64,
    /// `now() - refresh_lag` to the second (or bucketed, for buckets under a second):
    /// how far into the open bucket the threshold may go.
    target_open: i64,
    view: pg_sys::Oid,
    total_view: pg_sys::Oid,
}

/// Reads rollup `id`; with `lock`, first takes the rollup's refresh lock (a
/// self-conflicting lock on its materialized table, kept to commit: one refresh of a
/// rollup at a time; readers and writers go on) and reads it again after.
fn load(id: i32, lock: bool) -> Rollup {
    let r = load_row(id);
    if !lock {
        return r;
    }
    // SAFETY: a heavyweight lock on the rollup's own table.
    unsafe {
        pg_sys::LockRelationOid(r.data, pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE)
    };
    load_row(id)
}

fn load_row(id: i32) -> Rollup {
    let sql = "SELECT r.rel::pg_catalog.oid, r.bucket, r.origin, r.threshold, r.watermark, r.raw_dropped_before,
                pg_catalog.date_bin(r.bucket, pg_catalog.now() OPERATOR(pg_catalog.-) r.drop_after, r.origin),
                pg_catalog.date_bin(r.bucket, pg_catalog.now() OPERATOR(pg_catalog.-) r.refresh_lag, r.origin),
                r.data::pg_catalog.oid,
                pg_catalog.date_bin(LEAST(r.bucket, interval '1 second'),
                                    pg_catalog.now() OPERATOR(pg_catalog.-) r.refresh_lag, r.origin),
                r.view::pg_catalog.oid, r.total_view::pg_catalog.oid
         FROM bidim.rollup r WHERE r.rollup_id OPERATOR(pg_catalog.=) $1";
    let r = as_extension_owner(|| {
        spi_or_raise(
            Spi::connect(|client| {
                let rows = client.select(sql, None, &[id.into()])?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let row = rows.first();
                let ts = |i: usize| -> Result<Option<i64>, pgrx::spi::Error> {
                    Ok(row.get::<TimestampWithTimeZone>(i)?.map(i64::from))
                };
                let bucket = row.get::<pgrx::datum::Interval>(2)?.expect("a bucket");
                Ok::<_, pgrx::spi::Error>(Some(Rollup {
                    rel: row.get::<pg_sys::Oid>(1)?.expect("a table"),
                    data: row.get::<pg_sys::Oid>(9)?.expect("a materialized table"),
                    width: bucket.micros() + i64::from(bucket.days()) * 86_400_000_000,
                    origin: ts(3)?.expect("an origin"),
                    threshold: ts(4)?.expect("a threshold"),
                    watermark: ts(5)?.expect("a watermark"),
                    raw_dropped_before: ts(6)?.expect("a drop horizon"),
                    drop_before: ts(7)?,
                    target: ts(8)?.expect("a target"),
                    target_open: ts(10)?.expect("a target"),
                    view: row.get::<pg_sys::Oid>(11)?.expect("a view"),
                    total_view: row.get::<pg_sys::Oid>(12)?.expect("a total view"),
                }))
            }),
            "read the rollup",
        )
    });
    r.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("bidim rollup {id} does not exist"),
            None,
        )
    })
}

/// Takes `mode` on every one of `rels` without queueing behind anyone (so no reader or
/// writer ever waits for it), retrying for up to a second; false if it could not.
fn try_lock_all(rels: &[pg_sys::Oid], mode: pg_sys::LOCKMODE) -> bool {
    for _ in 0..100 {
        let mut got = Vec::new();
        for &r in rels {
            // SAFETY: a heavyweight lock on a relation of this rollup, kept to commit.
            if unsafe { pg_sys::ConditionalLockRelationOid(r, mode) } {
                got.push(r);
            } else {
                break;
            }
        }
        if got.len() == rels.len() {
            return true;
        }
        for r in got {
            // SAFETY: releases a lock this loop took just above.
            unsafe { pg_sys::UnlockRelationOid(r, mode) };
        }
        // SAFETY: a plain sleep; interrupts are served right after.
        unsafe { pg_sys::pg_usleep(10_000) };
        pgrx::check_for_interrupts!();
    }
    false
}

/// Step 1: moves the threshold to `now() - refresh_lag`, once the table's writers in
/// flight are done (SHARE lock). When a bucket finished since the last advance it
/// waits for them (under the session's lock_timeout); a step inside the open bucket
/// only happens if the lock is free within a second, so writers never queue behind
/// it. Returns 1 if it moved.
fn advance(id: i32) -> i64 {
    let r = load(id, true);
    if r.target_open <= r.threshold {
        return 0;
    }
    if r.target > r.threshold {
        // SAFETY: a heavyweight lock on the rollup's table, kept to commit.
        unsafe { pg_sys::LockRelationOid(r.rel, pg_sys::ShareLock as pg_sys::LOCKMODE) };
    } else if !try_lock_all(&[r.rel], pg_sys::ShareLock as pg_sys::LOCKMODE) {
        return 0;
    }
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "UPDATE bidim.rollup SET threshold = $2 WHERE rollup_id OPERATOR(pg_catalog.=) $1",
                &[id.into(), chunk_store::timestamp(r.target_open).into()],
            ),
            "advance the rollup's threshold",
        )
    });
    cache::invalidate_relcache(r.rel);
    1
}

/// Step 2: materializes the logged buckets it sees and `[watermark, threshold)`, as
/// the table's owner; returns the raw rows rolled up.
fn materialize(id: i32) -> i64 {
    let r = load(id, true);
    let claimed: Vec<i64> = as_extension_owner(|| {
        spi_or_raise(
            Spi::connect_mut(|client| {
                let rows = client.update(
                    "DELETE FROM bidim.rollup_invalid WHERE rollup_id OPERATOR(pg_catalog.=) $1
                       AND bucket OPERATOR(pg_catalog.<) $2 RETURNING bucket",
                    None,
                    &[id.into(), chunk_store::timestamp(r.threshold).into()],
                )?;
                let mut out = Vec::new();
                for row in rows {
                    if let Some(t) = row.get::<TimestampWithTimeZone>(1)? {
                        out.push(i64::from(t));
                    }
                }
                Ok::<_, pgrx::spi::Error>(out)
            }),
            "claim the rollup's changed buckets",
        )
    });
    // Changed buckets already materialized are done again (unless their raw rows are
    // gone); the others are in the new range below.
    let redo: Vec<i64> = claimed
        .into_iter()
        .filter(|&b| b < r.watermark && b >= r.raw_dropped_before)
        .collect();
    let start = if r.watermark == i64::MIN {
        first_bucket(&r)
    } else {
        r.watermark
    };
    // Up to the threshold; but a step that stays inside the open bucket moves the
    // watermark, hence replaces the views, only if their locks are free within a
    // second (so readers never queue behind it): it is skipped otherwise.
    let thr = r.threshold;
    let thr_bucket = rollup_rules::bucket_of(thr, r.width, r.origin);
    let whole_buckets = thr_bucket == thr || thr_bucket > start || start >= thr;
    let end = if whole_buckets
        || try_lock_all(
            &[r.view, r.total_view],
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        ) {
        thr
    } else {
        thr_bucket
    };
    // Changed buckets are redone up to the watermark (the views read past it raw);
    // then the new range, whose first slice may continue the open bucket's row.
    let redo = runs(redo, r.width)
        .into_iter()
        .map(|(lo, hi)| (lo, hi.min(r.watermark)));
    let forward = forward_slices(start, end, r.width, r.origin, slice_width(r.width));
    let [mat, mat_merge, mat_total, del, del_total] = [
        "materialize",
        "materialize_merge",
        "materialize_total",
        "delete",
        "delete_total",
    ]
    .map(|w| statements(id, w, None).pop().expect("a statement"));
    let owner = owner_of(r.rel);
    let (mut buckets, mut rows) = (0i64, 0i64);
    as_role(owner, || {
        let args = |lo: i64, hi: i64| {
            [
                chunk_store::timestamp(lo).into(),
                chunk_store::timestamp(hi).into(),
            ]
        };
        let run = |sql: &str, lo: i64, hi: i64| {
            spi_or_raise(Spi::run_with_args(sql, &args(lo, hi)), "refresh the rollup")
        };
        let mut aggregate = |sql: &str, lo: i64, hi: i64| {
            let (b, n) = spi_or_raise(
                Spi::get_two_with_args::<i64, i64>(sql, &args(lo, hi)),
                "materialize the rollup",
            );
            buckets += b.unwrap_or(0);
            rows += n.unwrap_or(0);
        };
        for (lo, hi) in redo.chain(forward) {
            let (open, whole) = split_open(lo, hi, r.width, r.origin);
            if let Some((a, b)) = open {
                aggregate(&mat_merge, a, b);
            }
            if let Some((a, b)) = whole {
                run(&del, a, b);
                aggregate(&mat, a, b);
            }
            // The bucket rows of every bucket touched, from the (key, bucket) rows.
            let blo = rollup_rules::bucket_of(lo, r.width, r.origin);
            run(&del_total, blo, hi);
            run(&mat_total, blo, hi);
        }
        if let Some(cut) = r.drop_before {
            run(&del, i64::MIN, cut);
            run(&del_total, i64::MIN, cut);
        }
    });
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                // How far this refresh materialized (an advance may have moved the
                // threshold since: that is the next refresh's).
                "UPDATE bidim.rollup SET watermark = greatest(watermark, $4), last_refresh = pg_catalog.now(),
                        buckets_materialized = buckets_materialized OPERATOR(pg_catalog.+) $2,
                        rows_rolled_up = rows_rolled_up OPERATOR(pg_catalog.+) $3
                 WHERE rollup_id OPERATOR(pg_catalog.=) $1",
                &[
                    id.into(),
                    buckets.into(),
                    rows.into(),
                    chunk_store::timestamp(end).into(),
                ],
            ),
            "record the refresh",
        )
    });
    // The views carry the watermark as a constant: replace them with the new one, in
    // this transaction (readers see the old views and data, or the new ones).
    if end > r.watermark {
        let views = statements(id, "views", None);
        as_extension_owner(|| {
            for v in &views {
                spi_or_raise(Spi::run(v), "replace the rollup's views");
            }
        });
    }
    rows
}

/// The first bucket a first refresh materializes: the bucket of the table's earliest
/// time partition (its directory, not a scan), or the drop horizon if later.
fn first_bucket(r: &Rollup) -> i64 {
    let rows = directory_io::read_chunks_latest(r.rel);
    let lo = rows.iter().map(|c| c.time_lo).min().unwrap_or(r.threshold);
    rollup_rules::bucket_of(lo, r.width, r.origin).max(if r.raw_dropped_before == i64::MIN {
        i64::MIN
    } else {
        rollup_rules::bucket_of(r.raw_dropped_before, r.width, r.origin)
    })
}

finfo!(pg_finfo_bidim_rollup_step);
/// `bidim.refresh_rollup_step(id, step)`: one step of a refresh ('advance' or
/// 'materialize'); a superuser's (the worker) or the table owner's.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_rollup_step(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (int4, text).
    let id = unsafe { arg(fcinfo, 0).0.value() as i32 };
    let step = text_arg(fcinfo, 1).unwrap_or_default();
    let r = load(id, false);
    // SAFETY: reads the current user.
    if !unsafe { pg_sys::superuser() } {
        require_owner(r.rel);
    }
    let n = match step.as_str() {
        "advance" => advance(id),
        "materialize" => materialize(id),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("bidim.refresh_rollup_step: unknown step \"{step}\""),
            Some("Use 'advance' or 'materialize'."),
        ),
    };
    pg_sys::Datum::from(n)
}

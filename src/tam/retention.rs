//! Retention: dropping whole time partitions (`bidim.drop_before`) and the retention
//! policies the maintenance worker runs.

use super::chunk_store;
use super::directory::{self, ChunkRow};
use super::directory_io::{read_chunks, routing_snapshot};
use super::privilege::as_extension_owner;
use crate::error::{raise, spi_or_raise};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Drops every time partition of `facade` that lies wholly before `cutoff` (all its
/// chunks, hot or sealed: whole relations, so the files go at commit) and returns how
/// many; partitions that straddle the cutoff stay (a NOTICE says so).
pub fn drop_before(facade: pg_sys::Oid, cutoff: i64) -> i64 {
    // One retention run at a time per table; inserts and reads go on.
    // SAFETY: a heavyweight lock on a table the caller named (kept to commit).
    unsafe {
        pg_sys::LockRelationOid(facade, pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE)
    };
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let plan = directory::retention(&rows, cutoff);
    for &(lo, hi) in &plan.straddling {
        let text = format!(
            "[{}, {})",
            super::api::output_text(pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(lo)),
            super::api::output_text(pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(hi))
        );
        pgrx::notice!("bidim.drop_before keeps time partition {text}: it extends past the cutoff");
    }
    let chunks: Vec<&ChunkRow> = rows.iter().filter(|r| plan.drops(r)).collect();
    // Rollups keep the buckets of the dropped rows.
    if let Some(hi) = chunks.iter().map(|c| c.time_hi).max() {
        super::rollup::raw_dropped(facade, hi);
    }
    chunk_store::drop_chunks(facade, chunks);
    plan.doomed.len() as i64
}

/// Adds a retention policy (a `retention` job) for `facade`; returns its job id, or
/// `None` when one exists and `if_not_exists` is set.
pub fn add_retention_policy(
    facade: pg_sys::Oid,
    drop_after: pg_sys::Datum,
    if_not_exists: bool,
) -> Option<i32> {
    let mut existing = None;
    as_extension_owner(|| {
        existing = spi_or_raise(
            Spi::get_one_with_args::<i32>(
                "SELECT (SELECT job_id FROM bidim.job WHERE kind = 'retention' AND rel::oid = $1)",
                &[facade.into()],
            ),
            "read the jobs",
        );
    });
    if let Some(id) = existing {
        if if_not_exists {
            pgrx::notice!("table already has a retention policy (job {id}), skipping");
            return None;
        }
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("table already has a retention policy (job {id})"),
            Some("Remove it with bidim.remove_retention_policy first, or pass if_not_exists => true."),
        );
    }
    // SAFETY: an interval datum points to an Interval struct.
    let iv = unsafe { &*drop_after.cast_mut_ptr::<pg_sys::Interval>() };
    let iv = pgrx::datum::Interval::new(iv.month, iv.day, iv.time).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "invalid drop_after interval ({} months, {} days, {} microseconds): {e:?}",
                iv.month, iv.day, iv.time
            ),
            None,
        )
    });
    as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i32>(
                "INSERT INTO bidim.job (kind, rel, drop_after) VALUES ('retention', $1::oid::regclass, $2)
                 RETURNING job_id",
                &[facade.into(), iv.into()],
            ),
            "add the retention policy",
        )
    })
}

/// Removes the retention policy of `facade`; returns whether there was one.
pub fn remove_retention_policy(facade: pg_sys::Oid) -> bool {
    as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i64>(
                "WITH d AS (DELETE FROM bidim.job WHERE kind = 'retention' AND rel::oid = $1 RETURNING 1)
                 SELECT count(*) FROM d",
                &[facade.into()],
            ),
            "remove the retention policy",
        )
        .is_some_and(|n| n > 0)
    })
}

//! The database's maintenance job (run by the background worker through
//! `bidim.run_job`): seals the hot chunks of finished partitions and analyzes sealed
//! chunks never analyzed.

use super::block_map::BlockMap;
use super::delegate::{self, heap_call};
use super::hot_chunk::{seal_chunks, Sealing};
use super::privilege::as_extension_owner;
use super::{cache, chunk_store, config, directory, directory_io, tid};
use crate::error::spi_or_raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Chunks the maintenance job analyzes per run at most.
pub(super) const ANALYZE_PER_RUN: i64 = 16;
/// Sealed chunks whose time bounds the maintenance job measures per run at most.
const BOUNDS_PER_RUN: i64 = 16;
/// Sealed chunks one maintenance run converts (each is a sort and a rewrite of up to
/// a hot chunk's rows, in the run's transaction).
const CONVERT_PER_RUN: i64 = 4;

/// Measures the exact first and last time of up to `limit` sealed chunks of table `t`
/// ([`directory::bounds_due`]: sealed before every running snapshot, so no row can be
/// routed into them any more), each under a ShareLock taken without waiting (so no
/// transaction is writing or updating rows in it; UPDATEs move a row out of a
/// measured chunk) and records them in the directory, where pruning uses them, with
/// the chunk's size (the planner's estimate) and its block-range time map (scans of a
/// time window read only the blocks that hold it). An empty chunk gets an empty span.
/// Returns how many it measured.
fn measure_bounds(t: pg_sys::Oid, limit: i64) -> i64 {
    let rows = directory_io::read_chunks_latest(t);
    // SAFETY: the table is locked by the caller; its data horizon is this database's
    // oldest non-removable xid, widened to 64 bits against the next full xid.
    let horizon = unsafe {
        let rel = pg_sys::relation_open(t, pg_sys::NoLock as pg_sys::LOCKMODE);
        let oldest = pg_sys::GetOldestNonRemovableTransactionId(rel);
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        tid::widen_xid(pg_sys::ReadNextFullTransactionId().value, u32::from(oldest))
    };
    let time = chunk_store::quote_ident(&config::current_settings(t).time_column);
    // SAFETY: the table is locked by the caller; its time column's number.
    let time_attnum = unsafe {
        let rel = pg_sys::relation_open(t, pg_sys::NoLock as pg_sys::LOCKMODE);
        let n = config::config(rel).time_attnum;
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        n
    };
    let mut n = 0;
    for c in directory::bounds_due(&rows, horizon, limit as usize) {
        // SAFETY: a conditional lock on one of the table's chunks, kept to commit.
        let locked = unsafe {
            pg_sys::ConditionalLockRelationOid(c.chunk_rel, pg_sys::ShareLock as pg_sys::LOCKMODE)
        };
        if !locked {
            continue;
        }
        let name = chunk_store::chunk_name(t, c.chunk_id);
        // min/max of a built-in time type over our own chunk (already running as the
        // extension owner, pinned path), as PostgreSQL's raw microseconds since
        // 2000-01-01 (extract(epoch ...) is exact numeric).
        let raw = |agg: &str| {
            format!(
                "((pg_catalog.extract('epoch', pg_catalog.{agg}({time})) OPERATOR(pg_catalog.-) 946684800)
                  OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8"
            )
        };
        let (lo, hi) = spi_or_raise(
            Spi::get_two::<i64, i64>(&format!(
                "SELECT {}, {} FROM bidim_internal.{name}",
                raw("min"),
                raw("max")
            )),
            "measure a chunk's time bounds",
        );
        // No rows: an empty span (the chunk is never read again).
        let (lo, hi) = match lo.zip(hi) {
            Some(b) => b,
            None => (c.time_hi, c.time_lo.saturating_sub(1)),
        };
        let map = block_map_of(c.chunk_rel, time_attnum);
        spi_or_raise(
            Spi::run_with_args(
                "UPDATE bidim.chunk SET min_time = $3, max_time = $4, pages = $5, block_times = $6
                 WHERE rel OPERATOR(pg_catalog.=) $1 AND chunk_id OPERATOR(pg_catalog.=) $2",
                &[
                    t.into(),
                    (c.chunk_id as i32).into(),
                    chunk_store::timestamp(lo).into(),
                    chunk_store::timestamp(hi).into(),
                    i64::from(map.blocks()).into(),
                    map.encode().into(),
                ],
            ),
            "record a chunk's time bounds",
        );
        n += 1;
    }
    if n > 0 {
        cache::invalidate_relcache(t);
        cache::invalidate(t);
    }
    n
}

/// The block-range time map of sealed chunk `chunk_rel`, which the caller holds
/// ShareLocked: every tuple stored in it (any snapshot's, dead ones included) counted
/// at its block. Its size in blocks is the map's.
fn block_map_of(chunk_rel: pg_sys::Oid, time_attnum: i16) -> BlockMap {
    // SAFETY: the chunk is locked (no writer); a heap scan under SnapshotAny (heap
    // reads every stored tuple, not in page mode) into a slot of its descriptor; the
    // time column is a timestamp, never NULL in a stored row (rows are routed by it).
    unsafe {
        let chunk = pg_sys::relation_open(chunk_rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        let blocks =
            pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM);
        let mut map = BlockMap::new(blocks);
        let slot =
            pg_sys::MakeSingleTupleTableSlot((*chunk).rd_att, &pg_sys::TTSOpsBufferHeapTuple);
        let scan = delegate::heap_seqscan(chunk, std::ptr::addr_of_mut!(pg_sys::SnapshotAnyData));
        while heap_call!(scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot
        )) {
            let mut isnull = false;
            let t = pg_sys::slot_getattr(slot, i32::from(time_attnum), &mut isnull);
            if !isnull {
                map.note(delegate::block_of(&(*slot).tts_tid), t.value() as i64);
            }
        }
        heap_call!(scan_end(scan));
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::relation_close(chunk, pg_sys::NoLock as pg_sys::LOCKMODE);
        map
    }
}

/// The database's maintenance job: seals the hot chunks of partitions that ended more
/// than one partition width ago (late rows for them start a new chunk) and analyzes
/// sealed chunks that have never been analyzed (so `bidim.chunks` counts survive a
/// statistics reset). Works table by table under the same ShareUpdateExclusive lock as
/// `bidim.drop_before` (taken without waiting: a busy table waits for the next run), so
/// it never touches chunks a retention run is dropping. Returns the number of chunks
/// sealed plus analyzed.
pub fn maintain() -> i64 {
    // As the extension owner: it updates bidim's directory. ANALYZE switches to each
    // chunk's owner (the table's owner) inside a security-restricted operation itself.
    as_extension_owner(|| {
        let tables: Vec<pg_sys::Oid> = Spi::connect(|client| {
            let rows = client.select(
                "SELECT DISTINCT c.rel FROM bidim.chunk c ORDER BY 1",
                None,
                &[],
            )?;
            let mut v = Vec::new();
            for r in rows {
                if let Some(o) = r.get::<pg_sys::Oid>(1)? {
                    v.push(o);
                }
            }
            Ok::<_, pgrx::spi::Error>(v)
        })
        .unwrap_or_else(|e| spi_or_raise(Err(e), "list the tables to maintain"));
        let mut done = 0i64;
        let mut analyzed = 0i64;
        let mut measured = 0i64;
        let mut converted = 0i64;
        for t in tables {
            // SAFETY: a conditional heavyweight lock (kept to commit), then a syscache
            // probe: the table may have been dropped meanwhile.
            let locked = unsafe {
                pg_sys::ConditionalLockRelationOid(
                    t,
                    pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE,
                ) && pg_sys::SearchSysCacheExists(
                    pg_sys::SysCacheIdentifier::RELOID as i32,
                    pg_sys::Datum::from(t),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            };
            if !locked {
                continue;
            }
            // Late rows for a partition that ended a partition width ago start a new
            // chunk.
            let width = config::stored_settings(t).map_or(config::DEFAULT_WIDTH, |s| s.width);
            // SAFETY: reads the transaction's start time (now()).
            let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
            let sealed = seal_chunks(t, Sealing::EndedBefore(now.saturating_sub(width)));
            done += sealed;
            // Converted chunks' heap forms that no snapshot can see any more.
            super::convert::drop_superseded(t);
            // Sealed chunks past the table's convert_after become cold (a few a run).
            if converted < CONVERT_PER_RUN {
                if let Some(after) = config::stored_settings(t).and_then(|s| s.convert_after) {
                    let cutoff = spi_or_raise(
                        Spi::get_one_with_args::<pgrx::datum::TimestampWithTimeZone>(
                            "SELECT pg_catalog.now() OPERATOR(pg_catalog.-) $1",
                            &[pgrx::datum::Interval::new(after.0, after.1, after.2)
                                .expect("a stored interval")
                                .into()],
                        ),
                        "compute the conversion cutoff",
                    )
                    .map_or(i64::MIN, i64::from);
                    let out = super::convert::convert(
                        t,
                        cutoff,
                        false,
                        (CONVERT_PER_RUN - converted) as usize,
                    );
                    converted += out.converted;
                    done += out.converted;
                }
            }
            if measured < BOUNDS_PER_RUN {
                let n = measure_bounds(t, BOUNDS_PER_RUN - measured);
                measured += n;
                done += n;
            }
            if analyzed >= ANALYZE_PER_RUN {
                continue;
            }
            let to_analyze: Vec<String> = Spi::connect(|client| {
                let rows = client.select(
                    "SELECT format('%I.%I', n.nspname, k.relname)
                     FROM bidim.chunk c
                     JOIN pg_catalog.pg_class k ON k.oid = c.chunk_rel
                     JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
                     WHERE c.rel = $1 AND k.reltuples < 0 AND c.state <> 'hot'
                     ORDER BY c.chunk_id
                     LIMIT $2",
                    None,
                    &[t.into(), (ANALYZE_PER_RUN - analyzed).into()],
                )?;
                let mut v = Vec::new();
                for r in rows {
                    if let Some(n) = r.get::<String>(1)? {
                        v.push(n);
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            })
            .unwrap_or_else(|e| spi_or_raise(Err(e), "list the chunks to analyze"));
            for name in &to_analyze {
                spi_or_raise(
                    Spi::run(&format!("ANALYZE {name}")),
                    &format!("analyze {name}"),
                );
            }
            analyzed += to_analyze.len() as i64;
        }
        done + analyzed
    })
}

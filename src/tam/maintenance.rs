//! The database's maintenance job (run by the background worker through
//! `bidim.run_job`): seals the hot chunks of finished partitions and analyzes sealed
//! chunks never analyzed.

use super::config;
use super::hot_chunk::{seal_chunks, Sealing};
use super::privilege::as_extension_owner;
use crate::error::spi_or_raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Chunks the maintenance job analyzes per run at most.
pub(super) const ANALYZE_PER_RUN: i64 = 16;

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

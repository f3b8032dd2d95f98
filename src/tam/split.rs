//! Key-range splits: a range that keeps filling chunks within one time partition is
//! split in two at the median of a sample of its keys; new rows route by the halves.

use super::cell::Cell;
use super::config::TableConfig;
use super::directory::{self, ChunkRow};
use super::hot_chunk::{seal_chunks, Sealing};
use super::keyrange::{self, Key};
use super::locks::Lock;
use super::privilege::as_extension_owner;
use super::{cache, chunk_store, route};
use crate::error::spi_or_raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Keys sampled from a full chunk to choose a split key.
pub(super) const SPLIT_SAMPLE_ROWS: f64 = 20_000.0;

/// Splits the key range of `cell` in two at the median of a sample of the keys in
/// chunk `ordinal` (its full hot chunk), if the split is due ([`keyrange::split_due`]:
/// the range has filled enough chunks in the cell's partition; `rows` is the
/// directory as the caller just read it). New rows route by the halves
/// from now on (other sessions: once this transaction commits); existing chunks keep
/// the range they were made for, and the range's hot chunks are sealed. Returns
/// whether it split. Never waits: a concurrent split makes this one give up.
pub fn split_range(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    rows: &[ChunkRow],
    cell: &Cell,
    ordinal: u32,
) -> bool {
    let range_id = cell.range_id;
    // A transaction-snapshot transaction could not see a split committed after it
    // started, and would split the same range again; leave splitting to others.
    // SAFETY: reads a backend-global setting.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return false;
    }
    let filled = directory::filled(rows, range_id, cell.time_lo);
    let ranges = route::with_ranges(facade, cfg.key_kind, |r| r.to_vec());
    let Some(range) = ranges.iter().find(|r| r.id == range_id).cloned() else {
        return false;
    };
    // One splitter per range (keys below zero: chunk ordinals are positive); splits of
    // different ranges touch different rows and take ids from a sequence, so they run
    // side by side.
    if !keyrange::split_due(filled, ranges.len()) || !Lock::Split(facade, range_id).try_acquire() {
        return false;
    }
    let (key, _) = chunk_store::column_names(facade, cfg);
    let pct = (SPLIT_SAMPLE_ROWS * 100.0 / cfg.hot_chunk_rows.max(1) as f64).clamp(0.001, 100.0);
    let name = chunk_store::chunk_name(facade, ordinal);
    let kind = cfg.key_kind;
    // Read as the extension owner (the chunk's schema is closed to its owner): a
    // built-in key type cast to text, a built-in sampling method, no user code.
    let mut sample: Vec<Key> = as_extension_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                &format!(
                    "SELECT ({key})::text FROM bidim_internal.{name} TABLESAMPLE SYSTEM ({pct})"
                ),
                None,
                &[],
            )?;
            let mut v = Vec::new();
            for r in rows {
                if let Some(k) = r.get::<String>(1)?.and_then(|s| Key::parse(kind, &s)) {
                    v.push(k);
                }
            }
            Ok::<_, pgrx::spi::Error>(v)
        })
        .unwrap_or_else(|e| spi_or_raise(Err(e), "sample the keys of a full chunk"))
    });
    sample.retain(|k| keyrange::contains(range.lo.as_ref(), range.hi.as_ref(), k));
    let Some(at) = keyrange::split_point(&mut sample).and_then(|k| k.to_text()) else {
        return false;
    };
    let done = as_extension_owner(|| {
        if range_id == 0 {
            spi_or_raise(
                Spi::run_with_args(
                    "INSERT INTO bidim.key_range (rel, range_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                    &[facade.into()],
                ),
                "split a key range",
            );
        }
        let n = spi_or_raise(
            Spi::get_one_with_args::<i64>(
                "WITH old AS (UPDATE bidim.key_range SET state = 'split', split_at = now()
                          WHERE rel = $1 AND range_id = $2 AND state = 'active'
                          RETURNING key_lo, key_hi),
                  ids AS (SELECT nextval('bidim.key_range_id_seq')::int4 AS a,
                                 nextval('bidim.key_range_id_seq')::int4 AS b),
                  ins AS (INSERT INTO bidim.key_range (rel, range_id, key_lo, key_hi, parent)
                          SELECT $1, ids.a, old.key_lo, $3, $2 FROM old, ids
                          UNION ALL
                          SELECT $1, ids.b, $3, old.key_hi, $2 FROM old, ids
                          RETURNING 1)
             SELECT count(*) FROM ins",
                &[facade.into(), range_id.into(), at.clone().into()],
            ),
            "split a key range",
        );
        // Two new ranges, or none when the range was split meanwhile (count(*) is
        // never NULL).
        n == Some(2)
    });
    if done {
        // The range's hot chunks stop taking rows: new rows route by the halves.
        seal_chunks(facade, Sealing::Range(range_id));
        cache::invalidate_relcache(facade);
        cache::invalidate(facade);
    }
    done
}

//! Rows named by TID: fetch, TID checks, DELETE, UPDATE (in place, or moved to
//! another cell) and row locks, each done by heap in the row's chunk.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::delegate::{
    self, chunk_of_ordinal, close_chunk, decode_tid, encode_reported, encode_tid, fix_slot,
    heap_call, in_terms_of_table, open_chunk, open_row_chunk, rel_oid,
};
use super::keyrange;
use super::{config, hot_chunk, route};
use pgrx::pg_sys;
use pgrx::prelude::*;

// Non-modifying tuple callbacks

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_fetch_row_version(
    rel: pg_sys::Relation,
    t: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: t is a valid item pointer from the executor.
    let (ordinal, mut local) = decode_tid(unsafe { &*t });
    let Some(relid) = chunk_of_ordinal(rel, ordinal) else {
        return false;
    };
    let chunk = open_chunk(relid, pg_sys::AccessShareLock);
    if super::cold::is_cold(chunk) {
        let (batch, row) = (delegate::block_of(&local), local.ip_posid);
        let found = super::cold_scan::fetch(chunk, rel, ordinal, snapshot, batch, row, slot);
        close_chunk(chunk);
        return found;
    }
    let found = heap_call!(tuple_fetch_row_version(chunk, &mut local, snapshot, slot));
    if found {
        fix_slot(rel, ordinal, slot);
    }
    close_chunk(chunk);
    found
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_tid_valid(
    scan: pg_sys::TableScanDesc,
    t: pg_sys::ItemPointer,
) -> bool {
    // SAFETY: scan and t come from the executor.
    let (rel, (ordinal, local)) = unsafe { ((*scan).rs_rd, decode_tid(&*t)) };
    let Some(relid) = chunk_of_ordinal(rel, ordinal) else {
        return false;
    };
    let chunk = open_chunk(relid, pg_sys::AccessShareLock);
    if super::cold::is_cold(chunk) {
        // block: a batch number (the fetch finds out whether it exists); offset: a
        // row in the batch.
        close_chunk(chunk);
        return (1..=super::tid::MAX_BATCH_ROWS as u16).contains(&local.ip_posid);
    }
    // SAFETY: size of an open relation.
    let blocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM) };
    close_chunk(chunk);
    local.ip_posid != 0 && delegate::block_of(&local) < blocks
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_get_latest_tid(
    scan: pg_sys::TableScanDesc,
    t: pg_sys::ItemPointer,
) {
    // SAFETY: scan and t come from the executor.
    let (rel, snapshot, (ordinal, mut local)) =
        unsafe { ((*scan).rs_rd, (*scan).rs_snapshot, decode_tid(&*t)) };
    let Some(relid) = chunk_of_ordinal(rel, ordinal) else {
        return;
    };
    let chunk = open_chunk(relid, pg_sys::AccessShareLock);
    if super::cold::is_cold(chunk) {
        // A cold row is never updated in place: it is its own latest version.
        close_chunk(chunk);
        return;
    }
    let hs = heap_call!(scan_begin(
        chunk,
        snapshot,
        0,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        pg_sys::ScanOptions::SO_TYPE_TIDSCAN
    ));
    heap_call!(tuple_get_latest_tid(hs, &mut local));
    heap_call!(scan_end(hs));
    close_chunk(chunk);
    encode_tid(ordinal, &mut local);
    // SAFETY: writing back the caller's item pointer.
    unsafe { *t = local };
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_satisfies_snapshot(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    snapshot: pg_sys::Snapshot,
) -> bool {
    // A cold row (a virtual tuple, no heap header) came from a batch visible to the
    // snapshot that read it; heap only looks at a heap row's header and buffer.
    // SAFETY: the slot is one of the table's (a buffer heap slot).
    if unsafe { (*(slot as *mut pg_sys::HeapTupleTableSlot)).tuple.is_null() } {
        return true;
    }
    heap_call!(tuple_satisfies_snapshot(rel, slot, snapshot))
}

/// Logs the rollup buckets a change to a row of chunk `ordinal` may touch: every
/// bucket of the chunk's measured time span (or of its partition, not measured yet).
fn note_change(rel: pg_sys::Relation, ordinal: u32) {
    let facade = rel_oid(rel);
    if super::rollup::guards(facade).is_empty() {
        return;
    }
    // SAFETY: rel is an open bidim table.
    let cfg = unsafe { config::config(rel) };
    if let Some(c) = route::chunk_cell(facade, cfg.key_kind, ordinal) {
        let (lo, hi) = c
            .span
            .unwrap_or((c.time_lo, c.time_lo.saturating_add(cfg.width - 1)));
        super::rollup::note_span(facade, lo, hi);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_delete(
    rel: pg_sys::Relation,
    t: pg_sys::ItemPointer,
    cid: pg_sys::CommandId,
    snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    changing_part: bool,
) -> pg_sys::TM_Result::Type {
    let (ordinal, mut local, chunk) = open_row_chunk(rel, t, pg_sys::RowExclusiveLock);
    note_change(rel, ordinal);
    let r = in_terms_of_table(rel, chunk, || {
        heap_call!(tuple_delete(
            chunk,
            &mut local,
            cid,
            snapshot,
            crosscheck,
            wait,
            tmfd,
            changing_part
        ))
    });
    if r != pg_sys::TM_Result::TM_Ok {
        // SAFETY: heap filled tmfd on failure.
        unsafe { encode_reported(ordinal, &mut (*tmfd).ctid) };
    }
    close_chunk(chunk);
    r
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_update(
    rel: pg_sys::Relation,
    otid: pg_sys::ItemPointer,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    lockmode: *mut pg_sys::LockTupleMode::Type,
    update_indexes: *mut bool,
) -> pg_sys::TM_Result::Type {
    let facade = rel_oid(rel);
    // SAFETY: rel is an open bidim table.
    let cfg = unsafe { config::config(rel) };
    let (ordinal, mut local, chunk) = open_row_chunk(rel, otid, pg_sys::RowExclusiveLock);
    note_change(rel, ordinal);
    let new_cell = route::cell_of(rel, &cfg, slot);
    // The row stays in its chunk when its new time is in the chunk's partition (and
    // within its measured bounds, if any: pruning trusts them) and its new key in the
    // key range the chunk was made for (even if that range has split), unless the
    // chunk has a block-range time map: heap may put the new version in any block, so
    // it moves to a hot chunk of its cell (src/tam/block_map.rs).
    let stays = route::chunk_cell(facade, cfg.key_kind, ordinal).is_some_and(|c| {
        !c.mapped
            && c.time_lo == new_cell.time_lo
            && c.span.is_none_or(|(lo, hi)| {
                // SAFETY: cell_of deformed the slot up to the time, which is not null.
                let t = unsafe { route::slot_time(&cfg, slot) };
                lo <= t && t <= hi
            })
            && (c.key_lo.is_none() && c.key_hi.is_none() || {
                // SAFETY: cell_of deformed the slot up to the key, which is not null.
                let k = unsafe { route::slot_key(&cfg, slot) };
                keyrange::contains(c.key_lo.as_ref(), c.key_hi.as_ref(), &k)
            })
    });
    if stays && !hot_chunk::narrower(rel, chunk) {
        // Same cell, chunk with every column: an ordinary heap update inside the
        // row's chunk keeps the update chain, so concurrent updaters follow it.
        let r = in_terms_of_table(rel, chunk, || {
            heap_call!(tuple_update(
                chunk,
                &mut local,
                slot,
                cid,
                snapshot,
                crosscheck,
                wait,
                tmfd,
                lockmode,
                update_indexes
            ))
        });
        if r == pg_sys::TM_Result::TM_Ok {
            // SAFETY: heap's out-parameter: false for a HOT update (no new index entry).
            if unsafe { *update_indexes } {
                hot_chunk::index_rows(chunk, &[slot]);
            }
            fix_slot(rel, ordinal, slot);
        } else {
            // SAFETY: heap filled tmfd on failure.
            unsafe { encode_reported(ordinal, &mut (*tmfd).ctid) };
        }
        close_chunk(chunk);
        return r;
    }
    // The row moves to another cell: delete here (marked as moved, like partition row
    // movement, so a concurrent updater gets a clear error), insert there.
    let r = in_terms_of_table(rel, chunk, || {
        heap_call!(tuple_delete(
            chunk, &mut local, cid, snapshot, crosscheck, wait, tmfd, true
        ))
    });
    close_chunk(chunk);
    if r != pg_sys::TM_Result::TM_Ok {
        // SAFETY: heap filled tmfd on failure.
        unsafe { encode_reported(ordinal, &mut (*tmfd).ctid) };
        return r;
    }
    hot_chunk::insert_into_chunk(rel, &cfg, &new_cell, &mut [slot], cid, 0);
    // SAFETY: out-parameters of the executor.
    unsafe {
        *lockmode = pg_sys::LockTupleMode::LockTupleExclusive;
        *update_indexes = true;
    }
    r
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_lock(
    rel: pg_sys::Relation,
    t: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    mode: pg_sys::LockTupleMode::Type,
    wait_policy: pg_sys::LockWaitPolicy::Type,
    flags: u8,
    tmfd: *mut pg_sys::TM_FailureData,
) -> pg_sys::TM_Result::Type {
    if wait_policy != pg_sys::LockWaitPolicy::LockWaitBlock && delegate::is_cold_row(rel, t) {
        // NOWAIT or SKIP LOCKED left this row's batch cold: another transaction is
        // taking it (see decompress), so the row counts as locked.
        if wait_policy == pg_sys::LockWaitPolicy::LockWaitError {
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                format!(
                    "could not obtain lock on row in relation \"{}\"",
                    delegate::rel_name(rel)
                ),
                None,
            );
        }
        return pg_sys::TM_Result::TM_WouldBlock;
    }
    let (ordinal, mut local, chunk) = open_row_chunk(rel, t, pg_sys::RowShareLock);
    let r = in_terms_of_table(rel, chunk, || {
        heap_call!(tuple_lock(
            chunk,
            &mut local,
            snapshot,
            slot,
            cid,
            mode,
            wait_policy,
            flags,
            tmfd
        ))
    });
    // heap may have followed the update chain: report where the row is now.
    encode_tid(ordinal, &mut local);
    // SAFETY: writing back the caller's item pointer and the failure data heap filled.
    unsafe {
        *t = local;
        if r != pg_sys::TM_Result::TM_Ok {
            encode_reported(ordinal, &mut (*tmfd).ctid);
        }
    }
    if r == pg_sys::TM_Result::TM_Ok {
        fix_slot(rel, ordinal, slot);
    }
    close_chunk(chunk);
    r
}

//! Row work delegated to heap on a chunk: heap's routine, opening a row's chunk, the
//! translation of TIDs between chunk and table (see [`super::tid`]) and presenting a
//! chunk tuple as a table row in the caller's slot.
//!
//! Calls into heap's function pointers go through `pg_guard_ffi_boundary`, so a
//! PostgreSQL error there unwinds through Rust frames instead of jumping over them.

use super::tid;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::Ordering;

/// heap's routine, to which row work is delegated (looked up once per process: the
/// lookup is an FFI call, and this is on the per-row path).
pub fn heap() -> &'static pg_sys::TableAmRoutine {
    static HEAP: std::sync::atomic::AtomicPtr<pg_sys::TableAmRoutine> =
        std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
    let mut p = HEAP.load(Ordering::Relaxed);
    if p.is_null() {
        // SAFETY: GetHeapamTableAmRoutine returns a pointer to a static struct.
        p = unsafe { pg_sys::GetHeapamTableAmRoutine() } as *mut pg_sys::TableAmRoutine;
        HEAP.store(p, Ordering::Relaxed);
    }
    // SAFETY: p points to heap's static routine, which lives as long as the process.
    unsafe { &*p }
}

/// Calls one of heap's callbacks under a PostgreSQL error boundary.
macro_rules! heap_call {
    ($field:ident ( $($arg:expr),* $(,)? )) => {
        // SAFETY: heap's callbacks are valid C functions; the boundary turns a
        // PostgreSQL error into a Rust panic that pgrx reports as an ERROR.
        {
            #[allow(unused_unsafe)]
            let r = unsafe { pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| ($crate::tam::delegate::heap().$field.expect(stringify!($field)))($($arg),*)) };
            r
        }
    };
}
pub(crate) use heap_call;

pub(super) fn unsupported(feature: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("bidim tables do not support {feature}"),
        None,
    )
}

pub(super) fn rel_oid(rel: pg_sys::Relation) -> pg_sys::Oid {
    // SAFETY: every callback receives an open relation.
    unsafe { (*rel).rd_id }
}

pub(super) fn rel_name(rel: pg_sys::Relation) -> String {
    // SAFETY: an open relation's name is a NUL-terminated NameData.
    unsafe {
        std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

// TIDs and slots

pub(super) fn encode_tid(ordinal: u32, t: &mut pg_sys::ItemPointerData) {
    let block = block_of(t);
    match tid::encode_block(ordinal, block) {
        Some(b) => set_block(t, b),
        None => raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "bidim: chunk {ordinal} has grown past {} blocks",
                tid::MAX_CHUNK_BLOCKS
            ),
            Some("Hot chunks are sealed long before this; VACUUM the table if its chunks hold many dead rows."),
        ),
    }
}

pub(super) fn block_of(t: &pg_sys::ItemPointerData) -> u32 {
    ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32
}

pub(super) fn set_block(t: &mut pg_sys::ItemPointerData, b: u32) {
    t.ip_blkid.bi_hi = (b >> 16) as u16;
    t.ip_blkid.bi_lo = (b & 0xffff) as u16;
}

/// Chunk ordinal and chunk-local TID of a facade TID.
pub(super) fn decode_tid(t: &pg_sys::ItemPointerData) -> (u32, pg_sys::ItemPointerData) {
    let (ordinal, block) = tid::decode_block(block_of(t));
    let mut local = *t;
    set_block(&mut local, block);
    (ordinal, local)
}

/// Encodes a TID that heap reported back (tmfd->ctid), leaving special markers alone.
pub(super) fn encode_reported(ordinal: u32, t: &mut pg_sys::ItemPointerData) {
    if block_of(t) != pg_sys::InvalidBlockNumber {
        encode_tid(ordinal, t);
    }
}

pub(super) fn is_heap_slot(slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: comparing the slot's ops pointer with heap's static ops tables.
    unsafe {
        let ops = (*slot).tts_ops;
        std::ptr::eq(ops, &pg_sys::TTSOpsBufferHeapTuple)
            || std::ptr::eq(ops, &pg_sys::TTSOpsHeapTuple)
    }
}

/// After heap stored or wrote a chunk row in `slot`: present it as a facade row.
pub(super) fn fix_slot(rel: pg_sys::Relation, ordinal: u32, slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: the slot belongs to the caller; for heap slots the tuple header it points
    // to is the slot's own (tupdata) or one heap materialized into the slot.
    unsafe {
        encode_tid(ordinal, &mut (*slot).tts_tid);
        (*slot).tts_tableOid = rel_oid(rel);
        if is_heap_slot(slot) {
            let h = slot as *mut pg_sys::HeapTupleTableSlot;
            if !(*h).tuple.is_null() {
                (*(*h).tuple).t_self = (*slot).tts_tid;
                (*(*h).tuple).t_tableOid = rel_oid(rel);
            }
        }
    }
}

/// Runs a heap call on `chunk`; an error whose message names the chunk is re-raised
/// naming the table instead (users never see chunk names, e.g. in "could not obtain
/// lock on row in relation ...").
pub(super) fn in_terms_of_table<R>(
    rel: pg_sys::Relation,
    chunk: pg_sys::Relation,
    f: impl FnOnce() -> R,
) -> R {
    use pgrx::pg_sys::panic::CaughtError;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            if let Some(CaughtError::PostgresError(report)) = payload.downcast_ref::<CaughtError>()
            {
                let quoted = format!("\"{}\"", rel_name(chunk));
                if report.message().contains(&quoted) {
                    let message = report
                        .message()
                        .replace(&quoted, &format!("\"{}\"", rel_name(rel)));
                    raise(report.sql_error_code(), message, report.hint());
                }
            }
            std::panic::resume_unwind(payload)
        }
    }
}

pub(super) fn open_chunk(relid: pg_sys::Oid, lockmode: u32) -> pg_sys::Relation {
    // SAFETY: guarded open of a relation by oid.
    unsafe { pg_sys::table_open(relid, lockmode as pg_sys::LOCKMODE) }
}

pub(super) fn close_chunk(rel: pg_sys::Relation) {
    // SAFETY: closes a relation we opened; the lock is kept to transaction end.
    unsafe { pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE) }
}

/// Closes a chunk a scan has read to the end and its index (`index`, if one was open).
/// In READ COMMITTED it releases the AccessShareLock the scan took on them: a scan over
/// thousands of chunks must not hold a lock on each to commit ("out of shared memory").
/// A lock the transaction held before stays (lock counts are per holder), so does what
/// its DML took. Safe because the scan is done with the chunk; reading it again (a
/// rescan, a cursor moving back) opens and locks it again, and a chunk retention dropped
/// meanwhile is an error then, not a silent gap. In REPEATABLE READ and SERIALIZABLE the
/// locks stay to commit: retention waits, so the transaction's next read of the same
/// rows gives the same answer.
pub(super) fn release_chunk(rel: pg_sys::Relation, index: pg_sys::Relation) {
    let mode = release_mode();
    // SAFETY: closes relations we opened with AccessShareLock, releasing that lock or
    // (mode NoLock) keeping it to commit.
    unsafe {
        if !index.is_null() {
            pg_sys::index_close(index, mode);
        }
        pg_sys::table_close(rel, mode);
    }
}

/// Closes an index of a chunk that a scan opened with AccessShareLock, releasing the
/// lock by the rule of [`release_chunk`] (READ COMMITTED: at once; otherwise at commit).
pub(super) fn release_index(index: pg_sys::Relation) {
    // SAFETY: closes an index we opened with AccessShareLock.
    unsafe { pg_sys::index_close(index, release_mode()) };
}

/// The lock mode a scan closes a chunk (or index) it has read with: AccessShareLock
/// (released now) in READ COMMITTED, NoLock (kept to commit) above.
fn release_mode() -> pg_sys::LOCKMODE {
    // SAFETY: reads this backend's isolation level.
    let keep = unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32;
    (if keep {
        pg_sys::NoLock
    } else {
        pg_sys::AccessShareLock
    }) as pg_sys::LOCKMODE
}

/// heap's sequential scan of a whole chunk (or batch relation) under `snapshot`.
pub(super) fn heap_seqscan(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
) -> pg_sys::TableScanDesc {
    heap_scan_of(rel, snapshot, pg_sys::ScanOptions::SO_ALLOW_STRAT)
}

/// heap's sequential scan of chunk `rel` under `snapshot` in page mode, with `more`
/// scan options (a reader that sets its block range per step asks for no buffer ring
/// and no synchronized start).
pub(super) fn heap_scan_of(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    more: u32,
) -> pg_sys::TableScanDesc {
    heap_call!(scan_begin(
        rel,
        snapshot,
        0,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        pg_sys::ScanOptions::SO_TYPE_SEQSCAN | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE | more
    ))
}

/// Restarts heap's scan `hs` from its first block, its options kept (then its block
/// range may be set again).
pub(super) fn restart_heap_scan(hs: pg_sys::TableScanDesc) {
    heap_call!(scan_rescan(
        hs,
        std::ptr::null_mut(),
        false,
        false,
        false,
        false
    ));
}

/// Decodes the facade TID `t` and opens its chunk: (ordinal, chunk-local TID, chunk).
pub(super) fn open_row_chunk(
    rel: pg_sys::Relation,
    t: pg_sys::ItemPointer,
    lockmode: u32,
) -> (u32, pg_sys::ItemPointerData, pg_sys::Relation) {
    // SAFETY: t comes from the executor and points to a valid item pointer.
    let facade_tid = unsafe { *t };
    let (ordinal, local) = decode_tid(&facade_tid);
    let relid = chunk_of_ordinal(rel, ordinal).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "bidim: no chunk {ordinal} in table \"{}\" (row identifier ({}, {}))",
                rel_name(rel),
                block_of(&facade_tid),
                facade_tid.ip_posid
            ),
            Some("The row's time partition was dropped; run the statement again."),
        )
    });
    let chunk = open_chunk(relid, lockmode);
    if super::cold::is_cold(chunk) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "row ({}, {}) of bidim table \"{}\" is in a cold chunk and was not made changeable for this statement",
                block_of(&facade_tid),
                facade_tid.ip_posid,
                rel_name(rel)
            ),
            Some("An UPDATE, DELETE, MERGE or SELECT FOR UPDATE moves the cold rows its conditions can reach back to hot chunks when it starts. A row reached otherwise (WHERE CURRENT OF a cursor without FOR UPDATE, a chunk converted while the statement ran) cannot be changed: run the statement again."),
        );
    }
    // A chunk converted after the caller's snapshot read it: its rows live on in the
    // cold chunk, so a change here would be lost. Once we hold the chunk's lock no
    // conversion of it can start, so one check per transaction suffices.
    if !verified_this_xact(rel_oid(rel), ordinal, lockmode)
        && !super::directory_io::chunk_listed_latest(rel_oid(rel), ordinal)
    {
        raise(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!(
                "could not serialize access due to a concurrent conversion of bidim table \"{}\"",
                rel_name(rel)
            ),
            Some("The row's chunk was converted to a cold chunk after this statement read it. Retry the transaction."),
        );
    }
    (ordinal, local, chunk)
}

/// Whether the facade TID `t` names a row of a cold chunk.
pub(super) fn is_cold_row(rel: pg_sys::Relation, t: pg_sys::ItemPointer) -> bool {
    // SAFETY: t comes from the executor and points to a valid item pointer.
    let (ordinal, _) = decode_tid(unsafe { &*t });
    chunk_of_ordinal(rel, ordinal).is_some_and(|relid| {
        let chunk = open_chunk(relid, pg_sys::AccessShareLock);
        let cold = super::cold::is_cold(chunk);
        close_chunk(chunk);
        cold
    })
}

thread_local! {
    /// (table, ordinal) of chunks this transaction has found listed while holding a
    /// lock on them (cleared when the transaction ends).
    static VERIFIED: std::cell::RefCell<Vec<(pg_sys::Oid, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether this transaction already found chunk `ordinal` listed; records it otherwise
/// (the caller checks it now, holding its lock). Recorded only under a lock that keeps
/// conversions out (RowExclusive: a row lock's RowShare does not), and not inside a
/// subtransaction, whose rollback would release the lock.
fn verified_this_xact(facade: pg_sys::Oid, ordinal: u32, lockmode: u32) -> bool {
    // SAFETY: reads the transaction nesting level.
    if lockmode < pg_sys::RowExclusiveLock
        || unsafe { pg_sys::GetCurrentTransactionNestLevel() } > 1
    {
        return false;
    }
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.contains(&(facade, ordinal)) {
            return true;
        }
        if v.len() >= 64 {
            v.remove(0);
        }
        v.push((facade, ordinal));
        false
    })
}

/// Whether chunk `ordinal` of `facade`, which the caller holds in `lockmode`, is still
/// in the directory by the latest snapshot (a converted or dropped chunk is not):
/// checked once per transaction and chunk under a lock that keeps conversions out.
pub(super) fn still_listed(facade: pg_sys::Oid, ordinal: u32, lockmode: u32) -> bool {
    let known = VERIFIED.with(|v| v.borrow().contains(&(facade, ordinal)));
    if known {
        return true;
    }
    let listed = super::directory_io::chunk_listed_latest(facade, ordinal);
    if listed {
        verified_this_xact(facade, ordinal, lockmode);
    }
    listed
}

/// The transaction ended: forget the chunks it checked.
pub(super) fn transaction_ended() {
    VERIFIED.with(|v| v.borrow_mut().clear());
}

/// The chunk relation of a facade TID's ordinal, or an error naming the table.
pub(super) fn chunk_of_ordinal(rel: pg_sys::Relation, ordinal: u32) -> Option<pg_sys::Oid> {
    if ordinal == 0 {
        return None;
    }
    super::chunk_store::chunk_relid(rel_oid(rel), ordinal)
}

/// The chunk's (key, time) index, if it has one (opened RowExclusive / AccessShare).
pub(super) fn chunk_index(chunk: pg_sys::Relation, lockmode: u32) -> Option<pg_sys::Relation> {
    // SAFETY: the relcache's index list of an open relation, then a guarded open.
    unsafe {
        let list = pg_sys::RelationGetIndexList(chunk);
        if pg_sys::list_length(list) == 0 {
            return None;
        }
        let oid = pg_sys::list_nth_oid(list, 0);
        pg_sys::list_free(list);
        Some(pg_sys::index_open(oid, lockmode as pg_sys::LOCKMODE))
    }
}

/// `index` if its first column is attribute `key_attnum` (the scan keys were built for
/// that column); otherwise it is closed and the chunk is read by a sequential scan.
pub(super) fn keyed_on(index: pg_sys::Relation, key_attnum: i16) -> Option<pg_sys::Relation> {
    // SAFETY: an open index's pg_index row.
    unsafe {
        let ind = (*index).rd_index;
        let keys = (*ind).indkey.values.as_slice((*ind).indnatts as usize);
        if keys.first() == Some(&key_attnum) {
            Some(index)
        } else {
            pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            None
        }
    }
}

//! The `bidim` table access method: a facade relation whose rows live in heap chunks.
//!
//! Every callback of PostgreSQL 15's `TableAmRoutine` is filled. Row work is delegated
//! to heap on the chunk a row belongs to; this layer routes rows to chunks, translates
//! TIDs (see [`super::tid`]) and presents chunk tuples through the facade's slots.
//! Chunk relations mirror the facade's physical column layout, so a chunk tuple is a
//! valid facade tuple: scans hand heap's buffer tuples to the facade's slot without
//! copying the row.
//!
//! Calls into heap's function pointers go through `pg_guard_ffi_boundary`, so a
//! PostgreSQL error there unwinds through Rust frames instead of jumping over them.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::keyrange::{self, Key, KeyKind};
use super::{catalog, cell, tid};
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// heap's routine, to which row work is delegated (looked up once per process: the
/// lookup is an FFI call, and this is on the per-row path).
fn heap() -> &'static pg_sys::TableAmRoutine {
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
        unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| (heap().$field.expect(stringify!($field)))($($arg),*)) }
    };
}

fn unsupported(feature: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("bidim tables do not support {feature}"),
        None,
    )
}

fn rel_oid(rel: pg_sys::Relation) -> pg_sys::Oid {
    // SAFETY: every callback receives an open relation.
    unsafe { (*rel).rd_id }
}

fn rel_name(rel: pg_sys::Relation) -> String {
    // SAFETY: an open relation's name is a NUL-terminated NameData.
    unsafe {
        std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

// ---------------------------------------------------------------------------------
// TIDs and slots

fn encode_tid(ordinal: u32, t: &mut pg_sys::ItemPointerData) {
    let block = block_of(t);
    match tid::encode_block(ordinal, block) {
        Some(b) => set_block(t, b),
        None => error!(
            "bidim: chunk {ordinal} has grown past {} blocks",
            tid::MAX_CHUNK_BLOCKS
        ),
    }
}

fn block_of(t: &pg_sys::ItemPointerData) -> u32 {
    ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32
}

fn set_block(t: &mut pg_sys::ItemPointerData, b: u32) {
    t.ip_blkid.bi_hi = (b >> 16) as u16;
    t.ip_blkid.bi_lo = (b & 0xffff) as u16;
}

/// Chunk ordinal and chunk-local TID of a facade TID.
fn decode_tid(t: &pg_sys::ItemPointerData) -> (u32, pg_sys::ItemPointerData) {
    let (ordinal, block) = tid::decode_block(block_of(t));
    let mut local = *t;
    set_block(&mut local, block);
    (ordinal, local)
}

/// Encodes a TID that heap reported back (tmfd->ctid), leaving special markers alone.
fn encode_reported(ordinal: u32, t: &mut pg_sys::ItemPointerData) {
    if block_of(t) != pg_sys::InvalidBlockNumber {
        encode_tid(ordinal, t);
    }
}

fn is_heap_slot(slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: comparing the slot's ops pointer with heap's static ops tables.
    unsafe {
        let ops = (*slot).tts_ops;
        std::ptr::eq(ops, &pg_sys::TTSOpsBufferHeapTuple)
            || std::ptr::eq(ops, &pg_sys::TTSOpsHeapTuple)
    }
}

/// After heap stored or wrote a chunk row in `slot`: present it as a facade row.
fn fix_slot(rel: pg_sys::Relation, ordinal: u32, slot: *mut pg_sys::TupleTableSlot) {
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
fn in_terms_of_table<R>(
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

fn open_chunk(relid: pg_sys::Oid, lockmode: u32) -> pg_sys::Relation {
    // SAFETY: guarded open of a relation by oid.
    unsafe { pg_sys::table_open(relid, lockmode as pg_sys::LOCKMODE) }
}

fn close_chunk(rel: pg_sys::Relation) {
    // SAFETY: closes a relation we opened; the lock is kept to transaction end.
    unsafe { pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE) }
}

/// Decodes the facade TID `t` and opens its chunk: (ordinal, chunk-local TID, chunk).
fn open_row_chunk(
    rel: pg_sys::Relation,
    t: pg_sys::ItemPointer,
    lockmode: u32,
) -> (u32, pg_sys::ItemPointerData, pg_sys::Relation) {
    // SAFETY: t comes from the executor and points to a valid item pointer.
    let (ordinal, local) = decode_tid(unsafe { &*t });
    let relid = chunk_of_ordinal(rel, ordinal)
        .unwrap_or_else(|| error!("bidim: no chunk {ordinal} in table \"{}\"", rel_name(rel)));
    (ordinal, local, open_chunk(relid, lockmode))
}

/// The chunk relation of a facade TID's ordinal, or an error naming the table.
fn chunk_of_ordinal(rel: pg_sys::Relation, ordinal: u32) -> Option<pg_sys::Oid> {
    if ordinal == 0 {
        return None;
    }
    catalog::chunk_relid(rel_oid(rel), ordinal)
}

// ---------------------------------------------------------------------------------
// Routing

/// Longest text key a row may have: every chunk indexes (key, time) in a btree, whose
/// entries must fit a third of a page (2704 bytes) even when the key does not compress.
pub const MAX_TEXT_KEY_BYTES: usize = 2048;

/// The cell of the row in `slot`: (range_id, partition start, partition end).
fn cell_of(
    rel: pg_sys::Relation,
    cfg: &catalog::TableConfig,
    slot: *mut pg_sys::TupleTableSlot,
) -> (i32, i64, i64) {
    // SAFETY: deforming the slot up to the time/key attribute, then reading its arrays.
    let (time, time_null, key, key_null) = unsafe {
        let need = cfg.time_attnum.max(cfg.key_attnum) as i32;
        if ((*slot).tts_nvalid as i32) < need {
            pg_sys::slot_getsomeattrs_int(slot, need);
        }
        let t = (cfg.time_attnum - 1) as usize;
        let k = (cfg.key_attnum - 1) as usize;
        (
            *(*slot).tts_values.add(t),
            *(*slot).tts_isnull.add(t),
            *(*slot).tts_values.add(k),
            *(*slot).tts_isnull.add(k),
        )
    };
    let cols = || {
        // SAFETY: forwarded open relation.
        unsafe { catalog::columns(rel) }
    };
    let name_of = |attnum: i16| {
        cols()
            .into_iter()
            .find(|c| c.0 == attnum)
            .map(|c| c.1)
            .unwrap_or_default()
    };
    if time_null || key_null {
        let col = name_of(if time_null {
            cfg.time_attnum
        } else {
            cfg.key_attnum
        });
        raise(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!(
                "null value in column \"{col}\" of bidim table \"{}\"",
                rel_name(rel)
            ),
            Some("The key and time columns of a bidim table route every row to its chunk and cannot be NULL."),
        );
    }
    if cfg.key_kind == KeyKind::Text {
        // SAFETY: a non-null text datum (inline, compressed or external): its raw size
        // is read from its header or TOAST pointer, without detoasting.
        let bytes = unsafe { pg_sys::toast_raw_datum_size(key) } - pg_sys::VARHDRSZ;
        if bytes > MAX_TEXT_KEY_BYTES {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "key of {bytes} bytes in column \"{}\" of bidim table \"{}\" is longer than the limit of {MAX_TEXT_KEY_BYTES} bytes",
                    name_of(cfg.key_attnum),
                    rel_name(rel)
                ),
                Some("Keys are indexed in every chunk; use a shorter key (for example a series id, or a hash of the long one)."),
            );
        }
    }
    let t = time.value() as i64;
    let facade = rel_oid(rel);
    let range = catalog::with_ranges(facade, cfg.key_kind, |ranges| {
        if ranges.len() == 1 {
            return ranges[0].id;
        }
        // SAFETY: the key attribute was deformed above and is not null.
        let key = unsafe { slot_key(cfg, slot) };
        keyrange::route(ranges, &key).map_or(0, |r| r.id)
    });
    match cell::partition_of(t, cfg.width) {
        Ok((lo, hi)) => (range, lo, hi),
        Err(_) => raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!(
                "bidim table \"{}\" cannot store an infinite time in column \"{}\"",
                rel_name(rel),
                name_of(cfg.time_attnum)
            ),
            None,
        ),
    }
}

/// The key of the row in `slot`.
///
/// # Safety
/// The slot must be deformed up to the key column, which must not be null.
unsafe fn slot_key(cfg: &catalog::TableConfig, slot: *mut pg_sys::TupleTableSlot) -> Key {
    // SAFETY: per the contract; the key's type is one of the kinds' types.
    unsafe {
        let k = (cfg.key_attnum - 1) as usize;
        let d = *(*slot).tts_values.add(k);
        let desc = (*slot).tts_tupleDescriptor;
        let att = &(*desc).attrs.as_slice((*desc).natts as usize)[k];
        datum_key(cfg.key_kind, att.atttypid, d).unwrap_or(Key::Int(0))
    }
}

/// A key value from a datum of type `typ` (integer types and text-like varlenas).
///
/// # Safety
/// `d` must be a valid, non-null datum of type `typ`.
pub unsafe fn datum_key(kind: KeyKind, typ: pg_sys::Oid, d: pg_sys::Datum) -> Option<Key> {
    match typ {
        t if t == pg_sys::INT2OID => Some(Key::Int(d.value() as i16 as i64)),
        t if t == pg_sys::INT4OID => Some(Key::Int(d.value() as i32 as i64)),
        t if t == pg_sys::INT8OID => Some(Key::Int(d.value() as i64)),
        t if (t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID) && kind == KeyKind::Text => {
            // SAFETY: a text-like varlena; detoasted (if needed) into the current memory
            // context, read as bytes.
            unsafe {
                let p = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                let len = pgrx::varlena::varsize_any_exhdr(p);
                let data = pgrx::varlena::vardata_any(p) as *const u8;
                Some(Key::Text(std::slice::from_raw_parts(data, len).to_vec()))
            }
        }
        _ => None,
    }
}

/// Rows between size checks of a hot chunk.
fn check_every(cfg: &catalog::TableConfig) -> u64 {
    (cfg.hot_chunk_rows as u64 / 8).clamp(1, 1000)
}

/// Seals the cell's hot chunk when it has passed the threshold: creates its successor
/// (so later rows go there), unless another session is already doing so.
fn maybe_seal(
    rel: pg_sys::Relation,
    cfg: &catalog::TableConfig,
    chunk: pg_sys::Relation,
    hot: &catalog::HotChunk,
    cellkey: (i32, i64, i64),
    tuple_len: u32,
    mine: u64,
) {
    let facade = rel_oid(rel);
    // SAFETY: size of an open relation's main fork.
    let blocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM) };
    // Full pages hold about per_page rows each (the last one is still filling); this
    // backend knows its own rows exactly, which matters for small thresholds.
    let per_tuple = tuple_len.max(24).div_ceil(8) * 8 + 4;
    let per_page = ((pg_sys::BLCKSZ - 24) / per_tuple).max(1) as i64;
    let estimate = (blocks.saturating_sub(1) as i64 * per_page).max(mine as i64);
    if estimate < cfg.hot_chunk_rows && blocks < tid::SEAL_AT_BLOCKS {
        return;
    }
    let (range, lo, hi) = cellkey;
    if catalog::has_successor(facade, range, lo, hot.ordinal) {
        catalog::forget_cell(facade, range, lo);
        return;
    }
    if catalog::try_seal_lock(facade, hot.ordinal) {
        // A range that keeps filling chunks in one partition splits along the key;
        // otherwise the full chunk gets a successor for the same range.
        if !catalog::split_range(facade, cfg, range, lo, hot.ordinal) {
            let r = catalog::with_ranges(facade, cfg.key_kind, |rs| {
                rs.iter().find(|r| r.id == range).cloned()
            });
            if let Some(r) = r {
                catalog::create_chunk(facade, cfg, &r, lo, hi);
            }
        }
        catalog::forget_cell(facade, range, lo);
    }
}

/// The chunk's (key, time) index, if it has one (opened RowExclusive / AccessShare).
fn chunk_index(chunk: pg_sys::Relation, lockmode: u32) -> Option<pg_sys::Relation> {
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
fn keyed_on(index: pg_sys::Relation, key_attnum: i16) -> Option<pg_sys::Relation> {
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

/// Adds index entries for rows heap just wrote into `chunk` (their slots still hold
/// chunk-local TIDs). The entries are formed from the columns the index was built on
/// (the chunk's own attribute numbers, which are the table's: chunks mirror its
/// layout), never from the table's current settings.
fn index_rows(chunk: pg_sys::Relation, slots: &[*mut pg_sys::TupleTableSlot]) {
    let Some(index) = chunk_index(chunk, pg_sys::RowExclusiveLock) else {
        return;
    };
    // SAFETY: an open index of the open chunk; each slot holds a row just inserted
    // into the chunk; FormIndexDatum reads the slot at the index's own attributes.
    unsafe {
        let info = pg_sys::BuildIndexInfo(index);
        let n = (*info).ii_NumIndexAttrs as usize;
        let mut values = vec![pg_sys::Datum::from(0); n.max(1)];
        let mut nulls = vec![false; n.max(1)];
        for &slot in slots {
            let natts = (*(*slot).tts_tupleDescriptor).natts as i16;
            let fits = (&(*info).ii_IndexAttrNumbers)[..n]
                .iter()
                .all(|&a| a > 0 && a <= natts);
            if !fits {
                error!("bidim: a row does not fit the chunk's (key, time) index");
            }
            pg_sys::FormIndexDatum(
                info,
                slot,
                std::ptr::null_mut(),
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
            );
            let mut tid = (*slot).tts_tid;
            pg_sys::index_insert(
                index,
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
                &mut tid,
                chunk,
                pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO,
                false,
                info,
            );
        }
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
}

/// Whether `chunk` has fewer columns than its table (ADD COLUMN came after it).
fn narrower(rel: pg_sys::Relation, chunk: pg_sys::Relation) -> bool {
    // SAFETY: reading the tuple descriptors of two open relations.
    unsafe { (*(*chunk).rd_att).natts < (*(*rel).rd_att).natts }
}

/// Inserts the slots of one chunk through heap, then presents them as facade rows.
fn insert_into_chunk(
    rel: pg_sys::Relation,
    cfg: &catalog::TableConfig,
    cellkey: (i32, i64, i64),
    slots: &mut [*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    let facade = rel_oid(rel);
    let Some(mut hot) = catalog::hot_chunk(facade, cfg, cellkey.0, cellkey.1, cellkey.2) else {
        // The key range was split meanwhile: route these rows by the new ranges.
        insert_rows(rel, cfg, slots, cid, options);
        return;
    };
    let mut chunk = open_chunk(hot.relid, pg_sys::RowExclusiveLock);
    if narrower(rel, chunk) {
        // Columns were added since the chunk was made: its rows stay readable through
        // the table's descriptor, but new rows go to a chunk that has every column.
        close_chunk(chunk);
        catalog::forget_cell(facade, cellkey.0, cellkey.1);
        let range = catalog::with_ranges(facade, cfg.key_kind, |rs| {
            rs.iter().find(|r| r.id == cellkey.0).cloned()
        });
        let Some(range) = range else {
            insert_rows(rel, cfg, slots, cid, options);
            return;
        };
        catalog::create_chunk(facade, cfg, &range, cellkey.1, cellkey.2);
        let Some(h) = catalog::hot_chunk(facade, cfg, cellkey.0, cellkey.1, cellkey.2) else {
            insert_rows(rel, cfg, slots, cid, options);
            return;
        };
        hot = h;
        chunk = open_chunk(hot.relid, pg_sys::RowExclusiveLock);
    }
    // COPY FREEZE and skipping the FSM are decided from the facade's creation, which
    // says nothing about chunks.
    let options = options & !((pg_sys::TABLE_INSERT_FROZEN | pg_sys::TABLE_INSERT_SKIP_FSM) as i32);
    if slots.len() == 1 {
        heap_call!(tuple_insert(
            chunk,
            slots[0],
            cid,
            options,
            std::ptr::null_mut()
        ));
    } else {
        heap_call!(multi_insert(
            chunk,
            slots.as_mut_ptr(),
            slots.len() as i32,
            cid,
            options,
            std::ptr::null_mut()
        ));
    }
    index_rows(chunk, slots);
    let mut tuple_len = 64;
    for &s in slots.iter() {
        fix_slot(rel, hot.ordinal, s);
        if is_heap_slot(s) {
            // SAFETY: heap materialized the row into this heap slot.
            unsafe {
                let h = s as *mut pg_sys::HeapTupleTableSlot;
                if !(*h).tuple.is_null() {
                    tuple_len = (*(*h).tuple).t_len;
                }
            }
        }
    }
    if let Some(mine) = catalog::count_inserted(
        facade,
        cellkey.0,
        cellkey.1,
        slots.len() as u64,
        check_every(cfg),
    ) {
        maybe_seal(rel, cfg, chunk, &hot, cellkey, tuple_len, mine);
    }
    close_chunk(chunk);
}

// ---------------------------------------------------------------------------------
// Scans

/// A scan over a bidim table: the chunks listed at scan start, one heap scan at a time.
#[repr(C)]
struct BidimScan {
    base: pg_sys::TableScanDescData,
    /// palloc'd array of (ordinal, chunk relation).
    chunks: *mut (u32, pg_sys::Oid),
    nchunks: i32,
    cur: i32,
    chunk_rel: pg_sys::Relation,
    chunk_scan: pg_sys::TableScanDesc,
    /// The facade-side header of the current tuple (TID and table oid re-encoded).
    tup: pg_sys::HeapTupleData,
    /// For ANALYZE: palloc'd cumulative start block of each chunk.
    starts: *mut u32,
    /// Keys on the chunks' (key, time) index: when set, chunks are read by index scan.
    ikeys: *mut pg_sys::ScanKeyData,
    nikeys: i32,
    index_rel: pg_sys::Relation,
    index_scan: pg_sys::IndexScanDesc,
    /// One bulk-read buffer ring for all chunk scans of a large table (each chunk is
    /// below heap's own threshold for one, so without it a big scan would sweep
    /// through shared_buffers); null when not used.
    strategy: pg_sys::BufferAccessStrategy,
    /// The memory context the scan was begun in: chunk scans are started lazily, from
    /// inside getnextslot, whose caller may be in a per-tuple context it resets after
    /// every row (ALTER TABLE's validation scans, partition checks, FK checks do); the
    /// chunk scans must live as long as this scan.
    mcxt: pg_sys::MemoryContext,
}

/// Shared state of a parallel scan: participants take whole chunks, in directory
/// order, from a shared counter. Every participant lists the same chunks: in parallel
/// mode the directory is read with the scan's (shared) snapshot.
#[repr(C)]
struct BidimParallelScan {
    base: pg_sys::ParallelTableScanDescData,
    next_chunk: u32,
}

/// The snapshot to list chunks with for a scan under `snapshot`.
fn directory_snapshot(snapshot: pg_sys::Snapshot) -> pg_sys::Snapshot {
    // SAFETY: reads the snapshot's type; falls back to the active/transaction snapshot.
    unsafe {
        if !snapshot.is_null()
            && ((*snapshot).snapshot_type == pg_sys::SnapshotType::SNAPSHOT_MVCC
                || (*snapshot).snapshot_type == pg_sys::SnapshotType::SNAPSHOT_HISTORIC_MVCC)
        {
            snapshot
        } else if pg_sys::ActiveSnapshotSet() {
            pg_sys::GetActiveSnapshot()
        } else if pg_sys::IsInParallelMode() {
            pg_sys::GetCatalogSnapshot(pg_sys::InvalidOid)
        } else {
            pg_sys::GetTransactionSnapshot()
        }
    }
}

fn list_chunks(rel: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> Vec<(u32, pg_sys::Oid)> {
    // SAFETY: the snapshot is valid for the duration of the read.
    unsafe { catalog::read_chunks(rel_oid(rel), directory_snapshot(snapshot)) }
        .into_iter()
        .map(|r| (r.chunk_id, r.chunk_rel))
        .collect()
}

fn palloc_array<T: Copy>(items: &[T]) -> *mut T {
    // SAFETY: palloc in the current memory context, sized for the items, then copied.
    unsafe {
        let p = pg_sys::palloc0((items.len().max(1)) * std::mem::size_of::<T>()) as *mut T;
        std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
        p
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_begin(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> pg_sys::TableScanDesc {
    let chunks = list_chunks(rel, snapshot);
    begin_scan_of(rel, snapshot, nkeys, key, pscan, flags, &chunks, &[])
}

/// Begins a scan of the given chunks of `rel` (the pruning scan passes the chunks
/// that can hold matching rows; a plain scan passes them all).
pub(crate) fn begin_scan_of(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
    chunks: &[(u32, pg_sys::Oid)],
    index_keys: &[pg_sys::ScanKeyData],
) -> pg_sys::TableScanDesc {
    // SAFETY: the scan descriptor is palloc'd, zeroed and filled like heap's.
    unsafe {
        let s = pg_sys::palloc0(std::mem::size_of::<BidimScan>()) as *mut BidimScan;
        (*s).base.rs_rd = rel;
        (*s).base.rs_snapshot = snapshot;
        (*s).base.rs_nkeys = nkeys;
        (*s).base.rs_key = key;
        (*s).base.rs_flags = flags;
        (*s).base.rs_parallel = pscan;
        (*s).chunks = palloc_array(chunks);
        (*s).nchunks = chunks.len() as i32;
        (*s).cur = -1;
        (*s).mcxt = pg_sys::CurrentMemoryContext;
        if !index_keys.is_empty() {
            (*s).ikeys = palloc_array(index_keys);
            (*s).nikeys = index_keys.len() as i32;
        }
        if flags & pg_sys::ScanOptions::SO_ALLOW_STRAT != 0
            && flags & pg_sys::ScanOptions::SO_TYPE_SEQSCAN != 0
            && chunks.len() > 1
        {
            (*s).strategy =
                pg_sys::GetAccessStrategy(pg_sys::BufferAccessStrategyType::BAS_BULKREAD);
        }
        if flags & pg_sys::ScanOptions::SO_TYPE_ANALYZE != 0 {
            let mut starts = Vec::with_capacity(chunks.len());
            let mut total = 0u32;
            for &(_, relid) in chunks {
                starts.push(total);
                let r = open_chunk(relid, pg_sys::AccessShareLock);
                total +=
                    pg_sys::RelationGetNumberOfBlocksInFork(r, pg_sys::ForkNumber::MAIN_FORKNUM);
                close_chunk(r);
            }
            (*s).starts = palloc_array(&starts);
        }
        s as pg_sys::TableScanDesc
    }
}

fn end_chunk_scan(s: &mut BidimScan) {
    if !s.index_scan.is_null() {
        // SAFETY: ends the index scan and closes the index we opened for this chunk.
        unsafe {
            pg_sys::index_endscan(s.index_scan);
            pg_sys::index_close(s.index_rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
        s.index_scan = std::ptr::null_mut();
        s.index_rel = std::ptr::null_mut();
    }
    if !s.chunk_scan.is_null() {
        // SAFETY: take our shared ring back so heap does not free it with its scan.
        unsafe {
            let hs = s.chunk_scan as *mut pg_sys::HeapScanDescData;
            if !s.strategy.is_null() && (*hs).rs_strategy == s.strategy {
                (*hs).rs_strategy = std::ptr::null_mut();
            }
        }
        heap_call!(scan_end(s.chunk_scan));
        s.chunk_scan = std::ptr::null_mut();
    }
    if !s.chunk_rel.is_null() {
        close_chunk(s.chunk_rel);
        s.chunk_rel = std::ptr::null_mut();
    }
}

/// Chunk scans get the facade scan's flags minus ownership of the snapshot.
fn chunk_flags(s: &BidimScan) -> u32 {
    s.base.rs_flags & !pg_sys::ScanOptions::SO_TEMP_SNAPSHOT
}

fn start_chunk_scan(s: &mut BidimScan, idx: i32) {
    // SAFETY: the scan's own context outlives every chunk scan; switched back below
    // (on error the transaction abort resets CurrentMemoryContext).
    let old = unsafe { pg_sys::MemoryContextSwitchTo(s.mcxt) };
    open_chunk_scan(s, idx);
    // SAFETY: restores the caller's context.
    unsafe { pg_sys::MemoryContextSwitchTo(old) };
}

/// Opens chunk `idx` and begins its heap or index scan (in the scan's context).
fn open_chunk_scan(s: &mut BidimScan, idx: i32) {
    end_chunk_scan(s);
    // SAFETY: idx is within the palloc'd chunk array.
    let (_, relid) = unsafe { *s.chunks.add(idx as usize) };
    // SAFETY: guarded open that returns null for a relation dropped meanwhile.
    s.chunk_rel =
        unsafe { pg_sys::try_table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    if s.chunk_rel.is_null() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "a time partition of bidim table \"{}\" was dropped while this query was reading it",
                rel_name(s.base.rs_rd)
            ),
            Some("bidim.drop_before removed it after the query started; run the query again."),
        );
    }
    s.cur = idx;
    if s.nikeys > 0 {
        // SAFETY: the facade is open for the scan.
        let key_attnum = unsafe { catalog::config(s.base.rs_rd) }.key_attnum;
        if let Some(index) =
            chunk_index(s.chunk_rel, pg_sys::AccessShareLock).and_then(|i| keyed_on(i, key_attnum))
        {
            // SAFETY: an index scan of the open chunk through its own index, with
            // the scan keys BidimScan built for the index's columns.
            unsafe {
                s.index_rel = index;
                s.index_scan =
                    pg_sys::index_beginscan(s.chunk_rel, index, s.base.rs_snapshot, s.nikeys, 0);
                pg_sys::index_rescan(s.index_scan, s.ikeys, s.nikeys, std::ptr::null_mut(), 0);
            }
            return;
        }
    }
    s.chunk_scan = heap_call!(scan_begin(
        s.chunk_rel,
        s.base.rs_snapshot,
        s.base.rs_nkeys,
        s.base.rs_key,
        std::ptr::null_mut(),
        chunk_flags(s)
    ));
    if !s.strategy.is_null() {
        // SAFETY: heap's scan descriptor is a HeapScanDescData; before its first
        // fetch, a ring it did not choose may be handed in (taken back in end_chunk_scan).
        unsafe {
            let hs = s.chunk_scan as *mut pg_sys::HeapScanDescData;
            if (*hs).rs_strategy.is_null() {
                (*hs).rs_strategy = s.strategy;
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_end(scan: pg_sys::TableScanDesc) {
    scan_finish(scan)
}

/// Ends a scan begun by [`begin_scan_of`] and frees it.
pub(crate) fn scan_finish(scan: pg_sys::TableScanDesc) {
    // SAFETY: scan was created by bidim_scan_begin.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    end_chunk_scan(s);
    // SAFETY: a snapshot the scan owns is unregistered once, as heap does.
    unsafe {
        if s.base.rs_flags & pg_sys::ScanOptions::SO_TEMP_SNAPSHOT != 0 {
            pg_sys::UnregisterSnapshot(s.base.rs_snapshot);
        }
        pg_sys::pfree(s.chunks as *mut std::ffi::c_void);
        if !s.ikeys.is_null() {
            pg_sys::pfree(s.ikeys as *mut std::ffi::c_void);
        }
        if !s.strategy.is_null() {
            pg_sys::FreeAccessStrategy(s.strategy);
        }
        if !s.starts.is_null() {
            pg_sys::pfree(s.starts as *mut std::ffi::c_void);
        }
        pg_sys::pfree(scan as *mut std::ffi::c_void);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_rescan(
    scan: pg_sys::TableScanDesc,
    key: *mut pg_sys::ScanKeyData,
    _set_params: bool,
    _allow_strat: bool,
    _allow_sync: bool,
    _allow_pagemode: bool,
) {
    // SAFETY: scan was created by bidim_scan_begin.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    end_chunk_scan(s);
    if !key.is_null() {
        s.base.rs_key = key;
    }
    s.cur = -1;
}

/// Index of the next chunk this participant scans.
fn next_chunk(s: &mut BidimScan) -> i32 {
    if s.base.rs_parallel.is_null() {
        return s.cur + 1;
    }
    // SAFETY: rs_parallel points to our BidimParallelScan in shared memory; the counter
    // is only ever accessed atomically.
    let counter = unsafe {
        let p = s.base.rs_parallel as *mut BidimParallelScan;
        &*(std::ptr::addr_of_mut!((*p).next_chunk) as *const AtomicU32)
    };
    counter.fetch_add(1, Ordering::AcqRel).min(i32::MAX as u32) as i32
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_getnextslot(
    scan: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    scan_next(scan, direction, slot)
}

/// Stores the scan's next row in `slot`; false at the end.
pub(crate) fn scan_next(
    scan: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: scan was created by bidim_scan_begin.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    if direction == pg_sys::ScanDirection::BackwardScanDirection {
        unsupported("backward scans (FETCH BACKWARD on a SCROLL cursor)");
    }
    loop {
        if !s.index_scan.is_null() {
            // SAFETY: fetches through the chunk's index into the caller's slot; heap
            // stores the row with the slot's own tuple header, which fix_slot rewrites.
            let found = unsafe {
                pg_sys::index_getnext_slot(
                    s.index_scan,
                    pg_sys::ScanDirection::ForwardScanDirection,
                    slot,
                )
            };
            if found {
                // SAFETY: cur indexes the chunk array.
                let (ordinal, _) = unsafe { *s.chunks.add(s.cur as usize) };
                fix_slot(s.base.rs_rd, ordinal, slot);
                return true;
            }
            end_chunk_scan(s);
            continue;
        }
        if s.chunk_scan.is_null() {
            let next = if s.cur >= s.nchunks {
                s.nchunks
            } else {
                next_chunk(s)
            };
            if next >= s.nchunks {
                s.cur = s.nchunks;
                // SAFETY: clearing the caller's slot.
                unsafe { pg_sys::ExecClearTuple(slot) };
                return false;
            }
            start_chunk_scan(s, next);
            if !s.index_scan.is_null() {
                continue;
            }
        }
        if heap_call!(scan_getnextslot(s.chunk_scan, direction, slot)) {
            // SAFETY: cur indexes the chunk array; heap stored a buffer tuple whose
            // header belongs to its scan, so the facade gets its own copy of the header.
            unsafe {
                let (ordinal, _) = *s.chunks.add(s.cur as usize);
                let h = slot as *mut pg_sys::HeapTupleTableSlot;
                s.tup = *(*h).tuple;
                encode_tid(ordinal, &mut s.tup.t_self);
                s.tup.t_tableOid = rel_oid(s.base.rs_rd);
                (*h).tuple = &mut s.tup;
                (*slot).tts_tid = s.tup.t_self;
                (*slot).tts_tableOid = s.tup.t_tableOid;
            }
            return true;
        }
        end_chunk_scan(s);
    }
}

// ---------------------------------------------------------------------------------
// Parallel scans: chunk-granular work distribution.

#[pg_guard]
unsafe extern "C-unwind" fn bidim_parallelscan_estimate(_rel: pg_sys::Relation) -> pg_sys::Size {
    std::mem::size_of::<BidimParallelScan>()
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_parallelscan_initialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) -> pg_sys::Size {
    // SAFETY: pscan points to at least parallelscan_estimate bytes of shared memory.
    unsafe {
        let p = pscan as *mut BidimParallelScan;
        (*p).base.phs_relid = rel_oid(rel);
        (*p).base.phs_syncscan = false;
        (*p).next_chunk = 0;
    }
    std::mem::size_of::<BidimParallelScan>()
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_parallelscan_reinitialize(
    _rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) {
    // SAFETY: as in initialize; no participant is scanning during reinitialization.
    unsafe {
        let p = pscan as *mut BidimParallelScan;
        (*(std::ptr::addr_of_mut!((*p).next_chunk) as *const AtomicU32))
            .store(0, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------
// Index support: refused for now (no callback below is reachable without an index).

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_fetch_begin(
    _rel: pg_sys::Relation,
) -> *mut pg_sys::IndexFetchTableData {
    unsupported("indexes")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_fetch_reset(_data: *mut pg_sys::IndexFetchTableData) {}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_fetch_end(_data: *mut pg_sys::IndexFetchTableData) {}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_fetch_tuple(
    _scan: *mut pg_sys::IndexFetchTableData,
    _tid: pg_sys::ItemPointer,
    _snapshot: pg_sys::Snapshot,
    _slot: *mut pg_sys::TupleTableSlot,
    _call_again: *mut bool,
    _all_dead: *mut bool,
) -> bool {
    unsupported("indexes")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_delete_tuples(
    _rel: pg_sys::Relation,
    _delstate: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    unsupported("indexes")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_build_range_scan(
    _table_rel: pg_sys::Relation,
    _index_rel: pg_sys::Relation,
    _index_info: *mut pg_sys::IndexInfo,
    _allow_sync: bool,
    _anyvisible: bool,
    _progress: bool,
    _start_blockno: pg_sys::BlockNumber,
    _numblocks: pg_sys::BlockNumber,
    _callback: pg_sys::IndexBuildCallback,
    _callback_state: *mut std::ffi::c_void,
    _scan: pg_sys::TableScanDesc,
) -> f64 {
    unsupported("indexes (chunks are pruned by key and time instead)")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_index_validate_scan(
    _table_rel: pg_sys::Relation,
    _index_rel: pg_sys::Relation,
    _index_info: *mut pg_sys::IndexInfo,
    _snapshot: pg_sys::Snapshot,
    _state: *mut pg_sys::ValidateIndexState,
) {
    unsupported("indexes")
}

// ---------------------------------------------------------------------------------
// Non-modifying tuple callbacks

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_fetch_row_version(
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
    let found = heap_call!(tuple_fetch_row_version(chunk, &mut local, snapshot, slot));
    if found {
        fix_slot(rel, ordinal, slot);
    }
    close_chunk(chunk);
    found
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_tid_valid(
    scan: pg_sys::TableScanDesc,
    t: pg_sys::ItemPointer,
) -> bool {
    // SAFETY: scan and t come from the executor.
    let (rel, (ordinal, local)) = unsafe { ((*scan).rs_rd, decode_tid(&*t)) };
    let Some(relid) = chunk_of_ordinal(rel, ordinal) else {
        return false;
    };
    let chunk = open_chunk(relid, pg_sys::AccessShareLock);
    // SAFETY: size of an open relation.
    let blocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM) };
    close_chunk(chunk);
    local.ip_posid != 0 && block_of(&local) < blocks
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_get_latest_tid(
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
unsafe extern "C-unwind" fn bidim_tuple_satisfies_snapshot(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    snapshot: pg_sys::Snapshot,
) -> bool {
    // heap only looks at the slot's tuple header and buffer.
    heap_call!(tuple_satisfies_snapshot(rel, slot, snapshot))
}

// ---------------------------------------------------------------------------------
// Modifications

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: rel is an open bidim table.
    let cfg = unsafe { catalog::config(rel) };
    let cellkey = cell_of(rel, &cfg, slot);
    insert_into_chunk(rel, &cfg, cellkey, &mut [slot], cid, options);
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_multi_insert(
    rel: pg_sys::Relation,
    slots: *mut *mut pg_sys::TupleTableSlot,
    nslots: i32,
    cid: pg_sys::CommandId,
    options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: rel is an open bidim table; slots holds nslots slot pointers.
    let (cfg, slots) = unsafe {
        (
            catalog::config(rel),
            std::slice::from_raw_parts(slots, nslots as usize),
        )
    };
    insert_rows(rel, &cfg, slots, cid, options);
}

/// Inserts rows grouped by cell, keeping the order of first appearance.
fn insert_rows(
    rel: pg_sys::Relation,
    cfg: &catalog::TableConfig,
    slots: &[*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    type Group = ((i32, i64, i64), Vec<*mut pg_sys::TupleTableSlot>);
    let mut groups: Vec<Group> = Vec::new();
    for &s in slots {
        let c = cell_of(rel, cfg, s);
        match groups.iter_mut().find(|g| g.0 == c) {
            Some(g) => g.1.push(s),
            None => groups.push((c, vec![s])),
        }
    }
    for (c, mut group) in groups {
        insert_into_chunk(rel, cfg, c, &mut group, cid, options);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_insert_speculative(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
    _spec_token: u32,
) {
    unsupported("INSERT ... ON CONFLICT")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_complete_speculative(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _spec_token: u32,
    _succeeded: bool,
) {
    unsupported("INSERT ... ON CONFLICT")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_delete(
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
unsafe extern "C-unwind" fn bidim_tuple_update(
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
    let cfg = unsafe { catalog::config(rel) };
    let (ordinal, mut local, chunk) = open_row_chunk(rel, otid, pg_sys::RowExclusiveLock);
    let new_cell = cell_of(rel, &cfg, slot);
    // The row stays in its chunk when its new time is in the chunk's partition and its
    // new key in the key range the chunk was made for (even if that range has split).
    let stays = catalog::chunk_cell(facade, cfg.key_kind, ordinal).is_some_and(|(t, lo, hi)| {
        t == new_cell.1
            && (lo.is_none() && hi.is_none() || {
                // SAFETY: cell_of deformed the slot up to the key, which is not null.
                let k = unsafe { slot_key(&cfg, slot) };
                keyrange::contains(lo.as_ref(), hi.as_ref(), &k)
            })
    });
    if stays && !narrower(rel, chunk) {
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
                index_rows(chunk, &[slot]);
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
    insert_into_chunk(rel, &cfg, new_cell, &mut [slot], cid, 0);
    // SAFETY: out-parameters of the executor.
    unsafe {
        *lockmode = pg_sys::LockTupleMode::LockTupleExclusive;
        *update_indexes = true;
    }
    r
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_tuple_lock(
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

// ---------------------------------------------------------------------------------
// DDL and storage

fn is_rewrite_target(rel: pg_sys::Relation) -> bool {
    // make_new_heap names the transient table of a rewrite pg_temp_<old oid>.
    rel_name(rel)
        .strip_prefix("pg_temp_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_set_new_filenode(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    minmulti: *mut pg_sys::MultiXactId,
) {
    if persistence as u8 != pg_sys::RELPERSISTENCE_PERMANENT {
        unsupported("UNLOGGED or TEMPORARY tables");
    }
    if is_rewrite_target(rel) {
        unsupported(
            "commands that rewrite the table (ALTER COLUMN ... TYPE, ADD COLUMN with a volatile default, SET ACCESS METHOD bidim, VACUUM FULL, CLUSTER)",
        );
    }
    let facade = rel_oid(rel);
    // SAFETY: syscache probe for the table's own pg_class row.
    let exists = unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(facade),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
    if exists {
        // TRUNCATE: the chunks go (transactionally); a rollback brings them back.
        catalog::drop_all_chunks(facade);
    } else {
        // CREATE TABLE: check the columns now, forget rows of a dropped table whose
        // oid this one reuses.
        // SAFETY: rel is the relation being created, with its tuple descriptor.
        unsafe { catalog::default_columns(rel) };
        catalog::forget_table(facade);
    }
    // The facade keeps an empty heap file of its own; no rows ever go there, so it
    // never needs freezing.
    heap_call!(relation_set_new_filenode(
        rel,
        newrnode,
        persistence,
        freeze_xid,
        minmulti
    ));
    // SAFETY: out-parameters of the caller.
    unsafe {
        *freeze_xid = pg_sys::InvalidTransactionId;
        *minmulti = pg_sys::TransactionId::from(0u32);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_nontransactional_truncate(rel: pg_sys::Relation) {
    catalog::drop_all_chunks(rel_oid(rel));
    heap_call!(relation_nontransactional_truncate(rel));
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_copy_data(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
) {
    // ALTER TABLE ... SET TABLESPACE moves the facade's own (empty) file.
    heap_call!(relation_copy_data(rel, newrnode));
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_copy_for_cluster(
    _old: pg_sys::Relation,
    _new: pg_sys::Relation,
    _old_index: pg_sys::Relation,
    _use_sort: bool,
    _oldest_xmin: pg_sys::TransactionId,
    _xid_cutoff: *mut pg_sys::TransactionId,
    _multi_cutoff: *mut pg_sys::MultiXactId,
    _num_tuples: *mut f64,
    _tups_vacuumed: *mut f64,
    _tups_recently_dead: *mut f64,
) {
    unsupported("VACUUM FULL or CLUSTER")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_vacuum(
    rel: pg_sys::Relation,
    params: *mut pg_sys::VacuumParams,
    bstrategy: pg_sys::BufferAccessStrategy,
) {
    for (_, relid) in list_chunks(rel, std::ptr::null_mut()) {
        let chunk = open_chunk(relid, pg_sys::ShareUpdateExclusiveLock);
        heap_call!(relation_vacuum(chunk, params, bstrategy));
        close_chunk(chunk);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_analyze_next_block(
    scan: pg_sys::TableScanDesc,
    blockno: pg_sys::BlockNumber,
    bstrategy: pg_sys::BufferAccessStrategy,
) -> bool {
    // SAFETY: scan was created by bidim_scan_begin for ANALYZE (starts is set).
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    if s.nchunks == 0 || s.starts.is_null() {
        return false;
    }
    // SAFETY: starts has nchunks entries.
    let starts = unsafe { std::slice::from_raw_parts(s.starts, s.nchunks as usize) };
    let idx = starts.partition_point(|&st| st <= blockno) as i32 - 1;
    if idx < 0 {
        return false;
    }
    if idx != s.cur || s.chunk_scan.is_null() {
        start_chunk_scan(s, idx);
    }
    heap_call!(scan_analyze_next_block(
        s.chunk_scan,
        blockno - starts[idx as usize],
        bstrategy
    ))
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_analyze_next_tuple(
    scan: pg_sys::TableScanDesc,
    oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    deadrows: *mut f64,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: scan was created by bidim_scan_begin.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    if s.chunk_scan.is_null() {
        return false;
    }
    let got = heap_call!(scan_analyze_next_tuple(
        s.chunk_scan,
        oldest_xmin,
        liverows,
        deadrows,
        slot
    ));
    if got {
        // SAFETY: cur indexes the chunk array.
        let (ordinal, _) = unsafe { *s.chunks.add(s.cur as usize) };
        fix_slot(s.base.rs_rd, ordinal, slot);
    }
    got
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_size(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
) -> u64 {
    if analyzing(rel) {
        // ANALYZE prefetches its sample blocks from the table's own file, which stays
        // empty: past its first 1 GiB segment that is an error ("previous segment is
        // only 0 blocks"). The blocks live in the chunks, which ANALYZE reads through
        // scan_analyze_next_block, so turn the prefetch off for this transaction.
        // SAFETY: sets a user-settable GUC for the current transaction only.
        unsafe {
            pg_sys::set_config_option(
                c"maintenance_io_concurrency".as_ptr(),
                c"0".as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_LOCAL,
                true,
                0,
                false,
            );
        }
    }
    let mut total = 0u64;
    for (_, relid) in list_chunks(rel, std::ptr::null_mut()) {
        // SAFETY: guarded open; a chunk dropped meanwhile is skipped.
        let chunk =
            unsafe { pg_sys::try_table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
        if chunk.is_null() {
            continue;
        }
        total += heap_call!(relation_size(chunk, fork));
        // Release the lock at once: planning (size estimates) must not keep every chunk
        // locked to the end of the transaction, which would make retention wait for
        // every open transaction that ever planned a query on the table. (A lock this
        // transaction already held, from a scan, stays: lock counts are per holder.)
        // SAFETY: closes the relation opened above, releasing that one lock.
        unsafe { pg_sys::table_close(chunk, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    }
    total
}

/// Whether this backend is running ANALYZE on `rel` (its progress report says so).
fn analyzing(rel: pg_sys::Relation) -> bool {
    // SAFETY: reads this backend's own status entry, which only it writes.
    unsafe {
        let be = pg_sys::MyBEEntry;
        !be.is_null()
            && (*be).st_progress_command == pg_sys::ProgressCommandType::PROGRESS_COMMAND_ANALYZE
            && (*be).st_progress_command_target == (*rel).rd_id
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_needs_toast_table(_rel: pg_sys::Relation) -> bool {
    // Each chunk has its own TOAST table.
    false
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_toast_am(_rel: pg_sys::Relation) -> pg_sys::Oid {
    pg_sys::HEAP_TABLE_AM_OID
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_fetch_toast_slice(
    toastrel: pg_sys::Relation,
    valueid: pg_sys::Oid,
    attrsize: i32,
    sliceoffset: i32,
    slicelength: i32,
    result: *mut pg_sys::varlena,
) {
    heap_call!(relation_fetch_toast_slice(
        toastrel,
        valueid,
        attrsize,
        sliceoffset,
        slicelength,
        result
    ));
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_relation_estimate_size(
    rel: pg_sys::Relation,
    attr_widths: *mut i32,
    pages: *mut pg_sys::BlockNumber,
    tuples: *mut f64,
    allvisfrac: *mut f64,
) {
    // heap's estimate reads the size through relation_size, i.e. the chunks.
    heap_call!(relation_estimate_size(
        rel,
        attr_widths,
        pages,
        tuples,
        allvisfrac
    ));
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_sample_next_block(
    _scan: pg_sys::TableScanDesc,
    _scanstate: *mut pg_sys::SampleScanState,
) -> bool {
    unsupported("TABLESAMPLE")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_scan_sample_next_tuple(
    _scan: pg_sys::TableScanDesc,
    _scanstate: *mut pg_sys::SampleScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    unsupported("TABLESAMPLE")
}

#[pg_guard]
unsafe extern "C-unwind" fn bidim_slot_callbacks(
    _rel: pg_sys::Relation,
) -> *const pg_sys::TupleTableSlotOps {
    // SAFETY: address of a static PostgreSQL struct.
    unsafe { &pg_sys::TTSOpsBufferHeapTuple }
}

/// The routine PostgreSQL gets from `bidim_tam_handler`: every required callback set.
fn routine() -> pg_sys::TableAmRoutine {
    pg_sys::TableAmRoutine {
        type_: pg_sys::NodeTag::T_TableAmRoutine,
        slot_callbacks: Some(bidim_slot_callbacks),
        scan_begin: Some(bidim_scan_begin),
        scan_end: Some(bidim_scan_end),
        scan_rescan: Some(bidim_scan_rescan),
        scan_getnextslot: Some(bidim_scan_getnextslot),
        // Optional pair: without it the planner offers no TID range scans.
        scan_set_tidrange: None,
        scan_getnextslot_tidrange: None,
        parallelscan_estimate: Some(bidim_parallelscan_estimate),
        parallelscan_initialize: Some(bidim_parallelscan_initialize),
        parallelscan_reinitialize: Some(bidim_parallelscan_reinitialize),
        index_fetch_begin: Some(bidim_index_fetch_begin),
        index_fetch_reset: Some(bidim_index_fetch_reset),
        index_fetch_end: Some(bidim_index_fetch_end),
        index_fetch_tuple: Some(bidim_index_fetch_tuple),
        tuple_fetch_row_version: Some(bidim_tuple_fetch_row_version),
        tuple_tid_valid: Some(bidim_tuple_tid_valid),
        tuple_get_latest_tid: Some(bidim_tuple_get_latest_tid),
        tuple_satisfies_snapshot: Some(bidim_tuple_satisfies_snapshot),
        index_delete_tuples: Some(bidim_index_delete_tuples),
        tuple_insert: Some(bidim_tuple_insert),
        tuple_insert_speculative: Some(bidim_tuple_insert_speculative),
        tuple_complete_speculative: Some(bidim_tuple_complete_speculative),
        multi_insert: Some(bidim_multi_insert),
        tuple_delete: Some(bidim_tuple_delete),
        tuple_update: Some(bidim_tuple_update),
        tuple_lock: Some(bidim_tuple_lock),
        finish_bulk_insert: None,
        relation_set_new_filenode: Some(bidim_relation_set_new_filenode),
        relation_nontransactional_truncate: Some(bidim_relation_nontransactional_truncate),
        relation_copy_data: Some(bidim_relation_copy_data),
        relation_copy_for_cluster: Some(bidim_relation_copy_for_cluster),
        relation_vacuum: Some(bidim_relation_vacuum),
        scan_analyze_next_block: Some(bidim_scan_analyze_next_block),
        scan_analyze_next_tuple: Some(bidim_scan_analyze_next_tuple),
        index_build_range_scan: Some(bidim_index_build_range_scan),
        index_validate_scan: Some(bidim_index_validate_scan),
        relation_size: Some(bidim_relation_size),
        relation_needs_toast_table: Some(bidim_relation_needs_toast_table),
        relation_toast_am: Some(bidim_relation_toast_am),
        relation_fetch_toast_slice: Some(bidim_relation_fetch_toast_slice),
        relation_estimate_size: Some(bidim_relation_estimate_size),
        // Optional pair: without it the planner offers no bitmap heap scans.
        scan_bitmap_next_block: None,
        scan_bitmap_next_tuple: None,
        scan_sample_next_block: Some(bidim_scan_sample_next_block),
        scan_sample_next_tuple: Some(bidim_scan_sample_next_tuple),
    }
}

static ROUTINE: std::sync::OnceLock<SyncRoutine> = std::sync::OnceLock::new();

/// The routine lives for the whole process; PostgreSQL only reads it.
struct SyncRoutine(pg_sys::TableAmRoutine);
// SAFETY: the routine holds function pointers and a tag; it is never mutated.
unsafe impl Sync for SyncRoutine {}
// SAFETY: as above.
unsafe impl Send for SyncRoutine {}

#[no_mangle]
pub extern "C" fn pg_finfo_bidim_tam_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `bidim_tam_handler(internal) RETURNS table_am_handler`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_tam_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let r = ROUTINE.get_or_init(|| SyncRoutine(routine()));
    pg_sys::Datum::from(&r.0 as *const pg_sys::TableAmRoutine)
}

/// Whether `rel` is a bidim table (its access method routine is ours).
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn is_bidim(rel: pg_sys::Relation) -> bool {
    let ours = &ROUTINE.get_or_init(|| SyncRoutine(routine())).0 as *const pg_sys::TableAmRoutine;
    // SAFETY: reading the access method routine pointer of an open relation.
    std::ptr::eq(unsafe { (*rel).rd_tableam }, ours)
}

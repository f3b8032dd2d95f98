//! The `bidim` table access method's routine: a table whose rows live in chunks.
//!
//! This file fills PostgreSQL 15's `TableAmRoutine`; each callback lives in the file
//! of its phase (as `contrib/bloom` does): [`super::hot_chunk`] (inserts),
//! [`super::chunk_scan`] (scans, parallel scans, ANALYZE sampling), [`super::modify`]
//! (rows by TID), [`super::relation`] (the table as a whole). What bidim refuses
//! (indexes, ON CONFLICT, TABLESAMPLE) is refused here.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::delegate::unsupported;
use super::{chunk_scan, hot_chunk, modify, relation};
use pgrx::pg_sys;
use pgrx::prelude::*;

// Index support: refused for now (no callback below is reachable without an index).

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_index_fetch_begin(
    _rel: pg_sys::Relation,
) -> *mut pg_sys::IndexFetchTableData {
    unsupported("indexes")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_index_fetch_reset(
    _data: *mut pg_sys::IndexFetchTableData,
) {
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_index_fetch_end(
    _data: *mut pg_sys::IndexFetchTableData,
) {
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_index_fetch_tuple(
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
pub(super) unsafe extern "C-unwind" fn bidim_index_delete_tuples(
    _rel: pg_sys::Relation,
    _delstate: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    unsupported("indexes")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_index_build_range_scan(
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
pub(super) unsafe extern "C-unwind" fn bidim_index_validate_scan(
    _table_rel: pg_sys::Relation,
    _index_rel: pg_sys::Relation,
    _index_info: *mut pg_sys::IndexInfo,
    _snapshot: pg_sys::Snapshot,
    _state: *mut pg_sys::ValidateIndexState,
) {
    unsupported("indexes")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_insert_speculative(
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
pub(super) unsafe extern "C-unwind" fn bidim_tuple_complete_speculative(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _spec_token: u32,
    _succeeded: bool,
) {
    unsupported("INSERT ... ON CONFLICT")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_sample_next_block(
    _scan: pg_sys::TableScanDesc,
    _scanstate: *mut pg_sys::SampleScanState,
) -> bool {
    unsupported("TABLESAMPLE")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_sample_next_tuple(
    _scan: pg_sys::TableScanDesc,
    _scanstate: *mut pg_sys::SampleScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    unsupported("TABLESAMPLE")
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_slot_callbacks(
    _rel: pg_sys::Relation,
) -> *const pg_sys::TupleTableSlotOps {
    // SAFETY: address of a static PostgreSQL struct.
    unsafe { &pg_sys::TTSOpsBufferHeapTuple }
}

/// The routine PostgreSQL gets from `bidim_tam_handler`: every required callback set.
pub(super) fn routine() -> pg_sys::TableAmRoutine {
    pg_sys::TableAmRoutine {
        type_: pg_sys::NodeTag::T_TableAmRoutine,
        slot_callbacks: Some(bidim_slot_callbacks),
        scan_begin: Some(chunk_scan::bidim_scan_begin),
        scan_end: Some(chunk_scan::bidim_scan_end),
        scan_rescan: Some(chunk_scan::bidim_scan_rescan),
        scan_getnextslot: Some(chunk_scan::bidim_scan_getnextslot),
        // Optional pair: without it the planner offers no TID range scans.
        scan_set_tidrange: None,
        scan_getnextslot_tidrange: None,
        parallelscan_estimate: Some(chunk_scan::bidim_parallelscan_estimate),
        parallelscan_initialize: Some(chunk_scan::bidim_parallelscan_initialize),
        parallelscan_reinitialize: Some(chunk_scan::bidim_parallelscan_reinitialize),
        index_fetch_begin: Some(bidim_index_fetch_begin),
        index_fetch_reset: Some(bidim_index_fetch_reset),
        index_fetch_end: Some(bidim_index_fetch_end),
        index_fetch_tuple: Some(bidim_index_fetch_tuple),
        tuple_fetch_row_version: Some(modify::bidim_tuple_fetch_row_version),
        tuple_tid_valid: Some(modify::bidim_tuple_tid_valid),
        tuple_get_latest_tid: Some(modify::bidim_tuple_get_latest_tid),
        tuple_satisfies_snapshot: Some(modify::bidim_tuple_satisfies_snapshot),
        index_delete_tuples: Some(bidim_index_delete_tuples),
        tuple_insert: Some(hot_chunk::bidim_tuple_insert),
        tuple_insert_speculative: Some(bidim_tuple_insert_speculative),
        tuple_complete_speculative: Some(bidim_tuple_complete_speculative),
        multi_insert: Some(hot_chunk::bidim_multi_insert),
        tuple_delete: Some(modify::bidim_tuple_delete),
        tuple_update: Some(modify::bidim_tuple_update),
        tuple_lock: Some(modify::bidim_tuple_lock),
        finish_bulk_insert: None,
        relation_set_new_filenode: Some(relation::bidim_relation_set_new_filenode),
        relation_nontransactional_truncate: Some(
            relation::bidim_relation_nontransactional_truncate,
        ),
        relation_copy_data: Some(relation::bidim_relation_copy_data),
        relation_copy_for_cluster: Some(relation::bidim_relation_copy_for_cluster),
        relation_vacuum: Some(relation::bidim_relation_vacuum),
        scan_analyze_next_block: Some(chunk_scan::bidim_scan_analyze_next_block),
        scan_analyze_next_tuple: Some(chunk_scan::bidim_scan_analyze_next_tuple),
        index_build_range_scan: Some(bidim_index_build_range_scan),
        index_validate_scan: Some(bidim_index_validate_scan),
        relation_size: Some(relation::bidim_relation_size),
        relation_needs_toast_table: Some(relation::bidim_relation_needs_toast_table),
        relation_toast_am: Some(relation::bidim_relation_toast_am),
        relation_fetch_toast_slice: Some(relation::bidim_relation_fetch_toast_slice),
        relation_estimate_size: Some(relation::bidim_relation_estimate_size),
        // Optional pair: without it the planner offers no bitmap heap scans.
        scan_bitmap_next_block: None,
        scan_bitmap_next_tuple: None,
        scan_sample_next_block: Some(bidim_scan_sample_next_block),
        scan_sample_next_tuple: Some(bidim_scan_sample_next_tuple),
    }
}

pub(super) static ROUTINE: std::sync::OnceLock<SyncRoutine> = std::sync::OnceLock::new();

/// The routine lives for the whole process; PostgreSQL only reads it.
pub(super) struct SyncRoutine(pg_sys::TableAmRoutine);

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

//! The table as a whole: creation and TRUNCATE (its chunks go), VACUUM of every
//! chunk, its size (the sum of its chunks), TOAST, and the rewrites it refuses.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::delegate::{close_chunk, heap_call, open_chunk, rel_name, rel_oid, unsupported};
use super::{chunk_scan, chunk_store, config};
use pgrx::pg_sys;
use pgrx::prelude::*;

// DDL and storage

pub(super) fn is_rewrite_target(rel: pg_sys::Relation) -> bool {
    // make_new_heap names the transient table of a rewrite pg_temp_<old oid>.
    rel_name(rel)
        .strip_prefix("pg_temp_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_set_new_filenode(
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
        chunk_store::drop_all_chunks(facade);
    } else {
        // CREATE TABLE: check the columns now, forget rows of a dropped table whose
        // oid this one reuses.
        // SAFETY: rel is the relation being created, with its tuple descriptor.
        unsafe { config::default_columns(rel) };
        chunk_store::forget_table(facade);
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
pub(super) unsafe extern "C-unwind" fn bidim_relation_nontransactional_truncate(
    rel: pg_sys::Relation,
) {
    chunk_store::drop_all_chunks(rel_oid(rel));
    heap_call!(relation_nontransactional_truncate(rel));
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_copy_data(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
) {
    // ALTER TABLE ... SET TABLESPACE moves the facade's own (empty) file.
    heap_call!(relation_copy_data(rel, newrnode));
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_copy_for_cluster(
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
pub(super) unsafe extern "C-unwind" fn bidim_relation_vacuum(
    rel: pg_sys::Relation,
    params: *mut pg_sys::VacuumParams,
    bstrategy: pg_sys::BufferAccessStrategy,
) {
    for (_, relid) in chunk_scan::list_chunks(rel, std::ptr::null_mut()) {
        let chunk = open_chunk(relid, pg_sys::ShareUpdateExclusiveLock);
        heap_call!(relation_vacuum(chunk, params, bstrategy));
        close_chunk(chunk);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_size(
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
    for (_, relid) in chunk_scan::list_chunks(rel, std::ptr::null_mut()) {
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
pub(super) fn analyzing(rel: pg_sys::Relation) -> bool {
    // SAFETY: reads this backend's own status entry, which only it writes.
    unsafe {
        let be = pg_sys::MyBEEntry;
        !be.is_null()
            && (*be).st_progress_command == pg_sys::ProgressCommandType::PROGRESS_COMMAND_ANALYZE
            && (*be).st_progress_command_target == (*rel).rd_id
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_needs_toast_table(
    _rel: pg_sys::Relation,
) -> bool {
    // Each chunk has its own TOAST table.
    false
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_toast_am(
    _rel: pg_sys::Relation,
) -> pg_sys::Oid {
    pg_sys::HEAP_TABLE_AM_OID
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_relation_fetch_toast_slice(
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
pub(super) unsafe extern "C-unwind" fn bidim_relation_estimate_size(
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

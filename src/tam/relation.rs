//! The table as a whole: creation and TRUNCATE (its chunks go), VACUUM of every
//! chunk, its size (the sum of its chunks), TOAST, and the rewrites it refuses.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::delegate::{heap_call, open_chunk, rel_name, rel_oid, unsupported};
use super::{chunk_scan, chunk_store, config, directory_io};
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
        // Each chunk's locks go when its vacuum is done (heap's vacuum keeps its
        // indexes' RowExclusiveLock): a table of thousands of chunks must not hold
        // locks on each to commit ("out of shared memory").
        // SAFETY: the index list of the open chunk; unlocks the locks vacuum took on
        // them, then closes the chunk opened above, releasing its lock.
        unsafe {
            let list = pg_sys::RelationGetIndexList(chunk);
            for i in 0..pg_sys::list_length(list) {
                let index = pg_sys::list_nth_oid(list, i);
                // Like SET_LOCKTAG_RELATION: database, relation.
                let tag = pg_sys::LOCKTAG {
                    locktag_field1: pg_sys::MyDatabaseId.to_u32(),
                    locktag_field2: index.to_u32(),
                    locktag_field3: 0,
                    locktag_field4: 0,
                    locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
                    locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
                };
                if pg_sys::LockHeldByMe(&tag, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) {
                    pg_sys::UnlockRelationOid(index, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
                }
            }
            pg_sys::list_free(list);
            pg_sys::table_close(chunk, pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE)
        };
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
    chunk_scan::list_chunks(rel, std::ptr::null_mut())
        .into_iter()
        .map(|(_, relid)| chunk_size(relid, fork))
        .sum()
}

/// The size in blocks of chunk `relid`'s main fork (0 for a chunk dropped meanwhile).
fn chunk_blocks(relid: pg_sys::Oid) -> u64 {
    chunk_size(relid, pg_sys::ForkNumber::MAIN_FORKNUM) / u64::from(pg_sys::BLCKSZ)
}

/// The size in bytes of one fork of chunk `relid` (0 for a chunk dropped meanwhile).
fn chunk_size(relid: pg_sys::Oid, fork: pg_sys::ForkNumber::Type) -> u64 {
    // SAFETY: guarded open; a chunk dropped meanwhile is skipped.
    let chunk =
        unsafe { pg_sys::try_table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    if chunk.is_null() {
        return 0;
    }
    let size = heap_call!(relation_size(chunk, fork));
    // Release the lock at once: sizes (also the planner's) must not keep every chunk
    // locked to the end of the transaction, which would make retention wait for every
    // open transaction that ever planned a query on the table. (A lock this
    // transaction already held, from a scan, stays: lock counts are per holder.)
    // SAFETY: closes the relation opened above, releasing that one lock.
    unsafe { pg_sys::table_close(chunk, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    size
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
    let size = planning_size(rel);
    let curpages = size.heap_pages.saturating_add(size.cold_pages);
    // heap's arithmetic (table_block_relation_estimate_size) over the heap chunks: the
    // density ANALYZE saw (when the table has no cold chunks to skew it), else one from
    // the row width; cold chunks count the rows their conversion counted.
    // SAFETY: rel is open; the out pointers are the planner's.
    unsafe {
        *pages = curpages;
        if curpages == 0 {
            *tuples = 0.0;
            *allvisfrac = 0.0;
            return;
        }
        let relpages = (*(*rel).rd_rel).relpages;
        let reltuples = f64::from((*(*rel).rd_rel).reltuples);
        let relallvisible = (*(*rel).rd_rel).relallvisible;
        let density = if reltuples >= 0.0 && relpages > 0 && size.cold_pages == 0 {
            reltuples / f64::from(relpages)
        } else {
            // HEAP_OVERHEAD_BYTES_PER_TUPLE and HEAP_USABLE_BYTES_PER_PAGE.
            let overhead = 24 + 4;
            let usable = pg_sys::BLCKSZ as i32 - 24;
            let width = pg_sys::get_rel_data_width(rel, attr_widths) + overhead;
            let width = (width + 7) & !7;
            f64::from(usable / width)
        };
        *tuples = (density * f64::from(size.heap_pages)).round() + size.cold_rows as f64;
        *allvisfrac = if relallvisible <= 0 {
            0.0
        } else {
            (f64::from(relallvisible) / f64::from(curpages)).min(1.0)
        };
    }
}

/// The table's size as the planner sees it.
struct PlanningSize {
    /// Blocks of the hot and sealed chunks.
    heap_pages: pg_sys::BlockNumber,
    /// Blocks of the cold chunks' batch relations, and the rows they hold.
    cold_pages: pg_sys::BlockNumber,
    cold_rows: i64,
}

/// The table's size as the planner sees it: a measured chunk's recorded size (it takes
/// only UPDATEs once measured), the others' (hot chunks, sealed ones not yet
/// measured) read from their files, so planning opens a few chunks, not all of them;
/// a cold chunk's rows as its conversion counted them.
fn planning_size(rel: pg_sys::Relation) -> PlanningSize {
    let dir = directory_io::planning_chunks(rel_oid(rel));
    let (mut heap, mut cold, rows) = dir.measured;
    for &i in &dir.unmeasured {
        let c = &dir.rows[i];
        let pages = chunk_blocks(c.chunk_rel);
        if c.state == super::directory::ChunkState::Cold {
            cold += pages;
        } else {
            heap += pages;
        }
    }
    let clamp = |n: u64| n.min(u64::from(u32::MAX / 2 - 1)) as pg_sys::BlockNumber;
    PlanningSize {
        heap_pages: clamp(heap),
        cold_pages: clamp(cold),
        cold_rows: rows,
    }
}

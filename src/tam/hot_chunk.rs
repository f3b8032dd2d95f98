//! Writing rows into hot chunks (`tuple_insert`, `multi_insert`): rows grouped by
//! cell go to their cell's hot chunk through heap, get their (key, time) index
//! entries, and come back as table rows; a chunk that has filled is sealed, its
//! successor made (or its key range split). [`seal_chunks`] is the one place a chunk
//! stops being hot.

use super::cache::{self, HotChunk};
use super::cell::Cell;
use super::config::{self, TableConfig};
use super::delegate::{self, close_chunk, fix_slot, heap_call, is_heap_slot, open_chunk, rel_oid};
use super::directory_io::{read_chunks, routing_snapshot};
use super::locks::Lock;
use super::privilege::as_extension_owner;
use super::{chunk_store, directory, route, seal, split};
use crate::error::{raise, spi_or_raise};
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: rel is an open bidim table.
    let cfg = unsafe { config::config(rel) };
    let cell = route::cell_of(rel, &cfg, slot);
    insert_into_chunk(rel, &cfg, &cell, &mut [slot], cid, options);
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_multi_insert(
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
            config::config(rel),
            std::slice::from_raw_parts(slots, nslots as usize),
        )
    };
    insert_rows(rel, &cfg, slots, cid, options);
}

/// Inserts rows grouped by cell, keeping the order of first appearance.
pub(super) fn insert_rows(
    rel: pg_sys::Relation,
    cfg: &TableConfig,
    slots: &[*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    let mut groups: Vec<(Cell, Vec<*mut pg_sys::TupleTableSlot>)> = Vec::new();
    for &s in slots {
        let c = route::cell_of(rel, cfg, s);
        match groups.iter_mut().find(|g| g.0 == c) {
            Some(g) => g.1.push(s),
            None => groups.push((c, vec![s])),
        }
    }
    for (c, mut group) in groups {
        insert_into_chunk(rel, cfg, &c, &mut group, cid, options);
    }
}

/// Inserts the slots of one chunk through heap, then presents them as facade rows.
pub(super) fn insert_into_chunk(
    rel: pg_sys::Relation,
    cfg: &TableConfig,
    cell: &Cell,
    slots: &mut [*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    let facade = rel_oid(rel);
    let Some(mut hot) = route::hot_chunk(facade, cfg, cell) else {
        // The key range was split meanwhile: route these rows by the new ranges.
        insert_rows(rel, cfg, slots, cid, options);
        return;
    };
    let mut chunk = open_chunk(hot.relid, pg_sys::RowExclusiveLock);
    // A conversion may have swapped the chunk out between this backend's routing (its
    // cache, or a snapshot taken before the conversion committed) and the lock just
    // taken (the lock waited for it): rows put into it now would be lost with it. Once
    // we hold the lock, no conversion of it can start.
    if !delegate::still_listed(facade, hot.ordinal, pg_sys::RowExclusiveLock) {
        close_chunk(chunk);
        cache::forget_cell(facade, cell);
        // SAFETY: reads a backend-global setting.
        if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
            // this transaction's snapshot would route to the same chunk again
            raise(
                PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                format!(
                    "could not serialize access due to a concurrent conversion of bidim table \"{}\"",
                    delegate::rel_name(rel)
                ),
                Some("The hot chunk this row goes to was converted after this transaction's snapshot was taken. Retry the transaction."),
            );
        }
        // Read committed: routing reads the directory again with a new snapshot.
        insert_rows(rel, cfg, slots, cid, options);
        return;
    }
    if narrower(rel, chunk) {
        // Columns were added since the chunk was made: its rows stay readable through
        // the table's descriptor, but new rows go to a chunk that has every column.
        close_chunk(chunk);
        cache::forget_cell(facade, cell);
        let Some(range) = route::range(facade, cfg.key_kind, cell.range_id) else {
            insert_rows(rel, cfg, slots, cid, options);
            return;
        };
        chunk_store::create_chunk(facade, cfg, &range, cell);
        let Some(h) = route::hot_chunk(facade, cfg, cell) else {
            insert_rows(rel, cfg, slots, cid, options);
            return;
        };
        hot = h;
        chunk = open_chunk(hot.relid, pg_sys::RowExclusiveLock);
    }
    // Rows before a rollup's threshold change buckets it may have materialized.
    super::rollup::note_rows(facade, cfg, cell.time_lo, slots);
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
    let every = seal::check_every(cfg.hot_chunk_rows);
    if let Some(mine) = cache::count_inserted(facade, cell, slots.len() as u64, every) {
        maybe_seal(rel, cfg, chunk, &hot, cell, tuple_len, mine);
    }
    close_chunk(chunk);
}

/// Whether `chunk` has fewer columns than its table (ADD COLUMN came after it).
pub(super) fn narrower(rel: pg_sys::Relation, chunk: pg_sys::Relation) -> bool {
    // SAFETY: reading the tuple descriptors of two open relations.
    unsafe { (*(*chunk).rd_att).natts < (*(*rel).rd_att).natts }
}

/// Adds index entries for rows heap just wrote into `chunk` (their slots still hold
/// chunk-local TIDs). The entries are formed from the columns the index was built on
/// (the chunk's own attribute numbers, which are the table's: chunks mirror its
/// layout), never from the table's current settings.
pub(super) fn index_rows(chunk: pg_sys::Relation, slots: &[*mut pg_sys::TupleTableSlot]) {
    let Some(index) = delegate::chunk_index(chunk, pg_sys::RowExclusiveLock) else {
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
                raise(
                    PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                    format!("bidim: a row of {natts} columns does not fit the (key, time) index of chunk {}", rel_oid(chunk).to_u32()),
                    None,
                );
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

/// Seals the cell's hot chunk when it is full ([`seal::due`]): creates its successor
/// (so later rows go there) or splits its key range, unless another session is
/// already doing so.
fn maybe_seal(
    rel: pg_sys::Relation,
    cfg: &TableConfig,
    chunk: pg_sys::Relation,
    hot: &HotChunk,
    cell: &Cell,
    tuple_len: u32,
    mine: u64,
) {
    let facade = rel_oid(rel);
    // SAFETY: size of an open relation's main fork.
    let blocks =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM) };
    if !seal::due(
        seal::estimate_rows(blocks, tuple_len, mine),
        cfg.hot_chunk_rows,
        blocks,
    ) {
        return;
    }
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    if directory::superseded(&rows, cell, hot.ordinal) {
        // Someone else sealed it: look the cell's hot chunk up again.
        cache::forget_cell(facade, cell);
        return;
    }
    // One sealer per chunk, never waiting: a busy lock means someone else is making
    // the successor.
    if Lock::Seal(facade, hot.ordinal).try_acquire() {
        // A range that keeps filling chunks in one partition splits along the key;
        // otherwise the full chunk gets a successor for the same range.
        if !split::split_range(facade, cfg, &rows, cell, hot.ordinal) {
            if let Some(r) = route::range(facade, cfg.key_kind, cell.range_id) {
                chunk_store::create_chunk(facade, cfg, &r, cell);
            }
        }
        cache::forget_cell(facade, cell);
    }
}

/// Which hot chunks [`seal_chunks`] seals.
#[derive(Clone, Copy, Debug)]
pub enum Sealing {
    /// Every hot chunk of the table (`bidim.seal`).
    All,
    /// The hot chunks of a key range that split.
    Range(i32),
    /// The hot chunks of a cell but its new hot chunk `except` (a successor was made).
    Cell { cell: Cell, except: u32 },
    /// The hot chunks of partitions that ended before a time (maintenance).
    EndedBefore(i64),
}

/// Marks hot chunks of `facade` sealed, in the caller's transaction; returns how many.
/// The one statement that seals: a chunk's state is its directory row's, so this is
/// where a chunk stops being hot. Rows another transaction has locked are skipped:
/// only sealing (and dropping) ever locks a chunk row, so that transaction is sealing
/// or dropping the chunk itself, and nobody waits for a long COPY that sealed one.
pub fn seal_chunks(facade: pg_sys::Oid, which: Sealing) -> i64 {
    // A REPEATABLE READ transaction that makes a successor may not see a seal another
    // transaction committed after its snapshot, and updating that row would fail it
    // with a serialization error: it leaves its cell's older hot chunks as they are
    // (routing takes the newest hot chunk of a cell; the maintenance job seals the
    // rest when the partition ends).
    // SAFETY: reads a backend-global setting.
    if matches!(which, Sealing::Cell { .. })
        && unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32
    {
        return 0;
    }
    let none_i32: Option<i32> = None;
    let none_ts: Option<pgrx::datum::TimestampWithTimeZone> = None;
    let ts = |us: i64| Some(chunk_store::timestamp(us));
    let (range, time_lo, except, ended) = match which {
        Sealing::All => (none_i32, none_ts, none_i32, none_ts),
        Sealing::Range(r) => (Some(r), none_ts, none_i32, none_ts),
        Sealing::Cell { cell, except } => (
            Some(cell.range_id),
            ts(cell.time_lo),
            Some(except as i32),
            none_ts,
        ),
        Sealing::EndedBefore(t) => (none_i32, none_ts, none_i32, ts(t)),
    };
    let n = as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i64>(
                include_str!("../../sql/tam_seal.sql"),
                &[
                    facade.into(),
                    range.into(),
                    time_lo.into(),
                    except.into(),
                    ended.into(),
                ],
            ),
            "seal chunks",
        )
    })
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "bidim: sealing chunks returned no count",
            None,
        )
    });
    if n > 0 {
        cache::invalidate_relcache(facade);
        cache::invalidate(facade);
    }
    n
}

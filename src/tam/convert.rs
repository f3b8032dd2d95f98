//! Conversion: a sealed chunk becomes a cold chunk (`bidim.convert`).
//!
//! Per chunk, in the caller's transaction: take a ShareLock on the chunk without
//! waiting (a chunk with a writer in progress is skipped and retried later; writers
//! that come later wait until the conversion commits), read its rows with the latest
//! snapshot (every writer has finished, so that is every committed row), sort them by
//! (key, time) with PostgreSQL's tuplesort (`maintenance_work_mem`, spilling to disk),
//! cut them into batches of one key, encode each column ([`super::codec`]) and write the
//! batches into a new batch relation under a new ordinal ([`super::cold`]). The
//! directory then swaps the chunks: the sealed chunk's row is deleted, the cold chunk's
//! row inserted, the old ordinal freed.
//!
//! The sealed chunk's relation is *not* dropped: a snapshot taken before the
//! conversion committed still sees its directory row and reads it (a REPEATABLE READ
//! transaction keeps its exact rows). It is dropped once no snapshot can see it: when
//! its ordinal becomes reusable ([`super::tid::reusable`]), by [`drop_superseded`] (run
//! by every conversion and the maintenance job) or by the chunk maker reusing the
//! ordinal. A writer that reaches the old chunk afterwards (its snapshot saw it) gets a
//! serialization failure ([`super::modify`]), never a silently lost change.

use super::chunk_store::{self, chunk_name, internal_member};
use super::cold::{self, ColSpec, ColumnBuilder, BATCH_BYTES, BATCH_ROWS};
use super::config::{self, TableConfig};
use super::delegate::heap_call;
use super::directory::{self, ChunkRow};
use super::directory_io::{self, relation_oid};
use super::locks::Lock;
use super::privilege::as_extension_owner;
use super::prune::Bound;
use super::{cache, codec, tid};
use crate::error::{raise, spi_or_raise};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// What a conversion did.
#[derive(Default, Debug)]
pub struct Outcome {
    pub converted: i64,
    pub skipped: i64,
    pub rows: i64,
    /// Ready chunks left for a later call by `limit`.
    pub left: i64,
}

/// This database's data horizon for `facade` (oldest non-removable xid), 64-bit.
fn horizon(facade: pg_sys::Oid) -> u64 {
    // SAFETY: the table is locked by the caller.
    unsafe {
        let rel = pg_sys::relation_open(facade, pg_sys::NoLock as pg_sys::LOCKMODE);
        let oldest = pg_sys::GetOldestNonRemovableTransactionId(rel);
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        tid::widen_xid(pg_sys::ReadNextFullTransactionId().value, u32::from(oldest))
    }
}

/// Converts the sealed chunks of `facade` that hold only rows before `older_than` and
/// are ready (see [`directory::convertible`]), at most `limit`, oldest first; chunks a
/// writer holds are skipped. Without `wait`, a table another conversion, retention run
/// or VACUUM holds is left alone.
pub fn convert(facade: pg_sys::Oid, older_than: i64, wait: bool, limit: usize) -> Outcome {
    // One conversion or retention run at a time per table; inserts and reads go on.
    // SAFETY: a heavyweight lock on the caller's table, kept to commit.
    let locked = unsafe {
        let mode = pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE;
        if wait {
            pg_sys::LockRelationOid(facade, mode);
            true
        } else {
            pg_sys::ConditionalLockRelationOid(facade, mode)
        }
    };
    let mut out = Outcome::default();
    if !locked {
        return out;
    }
    drop_superseded(facade);
    // SAFETY: the facade is locked; its configuration from the relcache.
    let cfg = unsafe {
        let rel = pg_sys::relation_open(facade, pg_sys::NoLock as pg_sys::LOCKMODE);
        let c = config::config(rel);
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        c
    };
    let rows = directory_io::read_chunks_latest(facade);
    let h = horizon(facade);
    let ready = directory::convertible(&rows, h, older_than);
    let waiting = rows
        .iter()
        .filter(|r| r.state == directory::ChunkState::Sealed && r.time_span().1 <= older_than)
        .count()
        - ready.len();
    out.skipped += waiting as i64;
    out.left = ready.len().saturating_sub(limit) as i64;
    for c in ready.into_iter().take(limit) {
        match convert_chunk(facade, &cfg, c) {
            Some(n) => {
                out.converted += 1;
                out.rows += n;
            }
            None => out.skipped += 1,
        }
    }
    out
}

/// Converts one chunk; `None` if a writer holds it (skipped, retried later).
fn convert_chunk(facade: pg_sys::Oid, cfg: &TableConfig, c: &ChunkRow) -> Option<i64> {
    // SAFETY: a conditional lock on one of the table's chunks, kept to commit.
    let locked = unsafe {
        pg_sys::ConditionalLockRelationOid(c.chunk_rel, pg_sys::ShareLock as pg_sys::LOCKMODE)
    };
    if !locked {
        return None;
    }
    // The new chunk's number, under the table's chunk-creation lock (to commit), taken
    // without waiting: an inserter holding it may be waiting for a row this
    // transaction changed (a seal), and it is free again in a moment.
    let ordinal = new_ordinal(facade)?;
    let bytes_before = relation_bytes(c.chunk_rel);
    // SAFETY: the chunk is locked; opened without a further lock and closed below.
    let chunk = unsafe { pg_sys::relation_open(c.chunk_rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
    // SAFETY: the chunk's own descriptor.
    let specs = cold::column_specs(unsafe { (*chunk).rd_att });
    // SAFETY: a registered latest snapshot: every writer of the chunk has finished.
    let snapshot = unsafe { pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot()) };
    let sort = Sorted::new(chunk, cfg, snapshot);
    let name = chunk_name(facade, ordinal);
    let cold_rel = create_batch_relation(facade, cfg, &name, &specs);
    // SAFETY: the open chunk's descriptor (the table's columns).
    let stats = write_batches(cold_rel, cfg, &specs, unsafe { (*chunk).rd_att }, sort);
    // SAFETY: unregisters the snapshot registered above; closes the chunk.
    unsafe {
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::relation_close(chunk, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
    as_extension_owner(|| {
        for sql in [
            format!("CREATE UNIQUE INDEX {name}_batch ON bidim_internal.{name} USING btree (_bidim_batch)"),
            format!("CREATE INDEX {name}_kt ON bidim_internal.{name} USING btree (_bidim_key, _bidim_time_max)"),
        ] {
            spi_or_raise(Spi::run(&sql), "index a cold chunk");
        }
    });
    internal_member(cold_rel);
    super::privilege::give_to(cold_rel, super::privilege::owner_of(facade));
    // SAFETY: the new relation, locked by its creation; its size in blocks.
    let pages = unsafe {
        let r = pg_sys::relation_open(cold_rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        let n = pg_sys::RelationGetNumberOfBlocksInFork(r, pg_sys::ForkNumber::MAIN_FORKNUM);
        pg_sys::relation_close(r, pg_sys::NoLock as pg_sys::LOCKMODE);
        i64::from(n)
    };
    // No rows: an empty span, as the maintenance job records it.
    let (min_time, max_time) = stats
        .time
        .unwrap_or((c.time_hi, c.time_lo.saturating_sub(1)));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk (rel, chunk_id, chunk_rel, range_id, key_lo, key_hi,
                                          time_lo, time_hi, state, created_at, sealed_at,
                                          sealed_xid, min_time, max_time, pages, rows, bytes_before)
                 SELECT rel, $3, $4, range_id, key_lo, key_hi, time_lo, time_hi, 'cold',
                        created_at, sealed_at, sealed_xid, $5, $6, $7, $8, $9
                 FROM bidim.chunk
                 WHERE rel OPERATOR(pg_catalog.=) $1 AND chunk_id OPERATOR(pg_catalog.=) $2",
                &[
                    facade.into(),
                    (c.chunk_id as i32).into(),
                    (ordinal as i32).into(),
                    cold_rel.into(),
                    chunk_store::timestamp(min_time).into(),
                    chunk_store::timestamp(max_time).into(),
                    pages.into(),
                    stats.rows.into(),
                    bytes_before.into(),
                ],
            ),
            "record a cold chunk",
        );
        spi_or_raise(
            Spi::run_with_args(
                "DELETE FROM bidim.chunk
                 WHERE rel OPERATOR(pg_catalog.=) $1 AND chunk_id OPERATOR(pg_catalog.=) $2",
                &[facade.into(), (c.chunk_id as i32).into()],
            ),
            "retire a converted chunk",
        );
        // The sealed chunk's ordinal (and relation) go once no snapshot can see it.
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk_free (rel, ordinal, freed_xid)
                 VALUES ($1, $2, pg_catalog.pg_current_xact_id())",
                &[facade.into(), (c.chunk_id as i32).into()],
            ),
            "retire a converted chunk",
        );
    });
    cache::invalidate_relcache(facade);
    cache::invalidate(facade);
    Some(stats.rows)
}

/// Tries for the chunk-creation lock this long (a chunk maker holds it for a moment;
/// under heavy ingest with small chunks a single try kept losing the race).
const ORDINAL_TRIES: u32 = 50;
const ORDINAL_PAUSE_US: i64 = 2000;

/// A new chunk ordinal for `facade` (under the chunk-creation lock, to commit), or
/// `None` if other transactions held that lock throughout [`ORDINAL_TRIES`] tries.
/// Never waits in the lock queue: an inserter holding the lock may be waiting for a
/// row this transaction changed (a seal); it waits for us at most these pauses.
fn new_ordinal(facade: pg_sys::Oid) -> Option<u32> {
    let mut tries = 0;
    while !Lock::ChunkCreation(facade).try_acquire() {
        tries += 1;
        if tries >= ORDINAL_TRIES {
            return None;
        }
        // SAFETY: a short sleep between tries; interrupts are honoured.
        unsafe { pg_sys::pg_usleep(ORDINAL_PAUSE_US) };
        pgrx::check_for_interrupts!();
    }
    Some(chunk_store::take_ordinal(facade).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "bidim table \"{}\" has no chunk number left for a cold chunk",
                super::api::qualified_name(facade)
            ),
            Some("Converted chunks free their numbers once no transaction that started before the conversion is running; try again later."),
        )
    }))
}

/// Bytes of a relation with its indexes and TOAST.
pub fn relation_bytes(relid: pg_sys::Oid) -> i64 {
    spi_or_raise(
        Spi::get_one_with_args::<i64>(
            "SELECT pg_catalog.pg_total_relation_size($1)",
            &[relid.into()],
        ),
        "measure a chunk",
    )
    .unwrap_or(0)
}

/// Creates the batch relation `name` for a cold chunk of `facade` (its key and time
/// columns of the table's types and the key's collation; one bytea column holding
/// every column of a batch, dropped ones included so positions match attribute numbers).
fn create_batch_relation(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    name: &str,
    specs: &[ColSpec],
) -> pg_sys::Oid {
    let typ = |attnum: i16| -> String {
        spi_or_raise(
            Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
                        OPERATOR(pg_catalog.||) CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0 THEN
                      (SELECT ' COLLATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname)
                              OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.collname)
                       FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n
                         ON n.oid OPERATOR(pg_catalog.=) c.collnamespace
                       WHERE c.oid OPERATOR(pg_catalog.=) a.attcollation) ELSE '' END
                 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) $2",
                &[facade.into(), attnum.into()],
            ),
            "read the key and time types",
        )
        .unwrap_or_else(|| raise(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, "bidim: key or time column missing", None))
    };
    let key_type = typ(cfg.key_attnum);
    let time_type = typ(cfg.time_attnum);
    let mut cols: Vec<String> = vec![
        format!("{} pg_catalog.bytea", cold::PACKED_COLUMN),
        format!("{} pg_catalog.bytea", cold::PACKED_TAIL_COLUMN),
    ];
    for i in cold::bounded_columns(specs, cfg.key_attnum, cfg.time_attnum) {
        let (min, max) = cold::bound_names(i + 1);
        let typ = if specs[i].bounded == cold::BOUND_FLOAT {
            "pg_catalog.float8"
        } else {
            "pg_catalog.int8"
        };
        cols.push(format!("{min} {typ}, {max} {typ}"));
    }
    cols.push(format!("{} pg_catalog.bytea", cold::LAST_ROW_COLUMN));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run(&format!(
                "CREATE TABLE bidim_internal.{name} (
                    {batch} pg_catalog.int4 NOT NULL,
                    _bidim_rows pg_catalog.int4 NOT NULL,
                    _bidim_key {key_type},
                    _bidim_time_min {time_type} NOT NULL,
                    _bidim_time_max {time_type} NOT NULL,
                    {}) USING heap WITH (toast_tuple_target = {})",
                cols.join(", "),
                cold::WHOLE_ROW_BYTES,
                batch = cold::BATCH_COLUMN,
            )),
            "create a cold chunk",
        );
        spi_or_raise(
            Spi::run(&format!(
                "ALTER TABLE bidim_internal.{name} ALTER COLUMN {} SET STORAGE EXTERNAL,
                    ALTER COLUMN {} SET STORAGE MAIN",
                cold::PACKED_COLUMN,
                cold::PACKED_TAIL_COLUMN
            )),
            "create a cold chunk",
        );
        relation_oid("bidim_internal", name)
    })
}

/// A chunk's rows in (key, time) order: read through the chunk's own (key, time) index
/// when the chunk fits comfortably in shared buffers (a quarter of them; no sort, its
/// pages are read again from the buffer pool) and `enable_indexscan` is on, else
/// sorted by PostgreSQL's tuplesort after a sequential scan (`maintenance_work_mem`,
/// spilling to disk).
struct Sorted {
    /// The sort, or null when reading through the index.
    state: *mut pg_sys::Tuplesortstate,
    index: pg_sys::Relation,
    iscan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    /// The context sorted rows are copied into (the caller's: it outlives every batch).
    cxt: pg_sys::MemoryContext,
}

impl Sorted {
    fn new(chunk: pg_sys::Relation, cfg: &TableConfig, snapshot: pg_sys::Snapshot) -> Sorted {
        // SAFETY: the chunk is open and locked; its size in blocks, the buffer pool's
        // size, and its index list from the relcache.
        // (enable_indexscan = off forces the sort, as it does for CLUSTER.)
        let fits = unsafe {
            let blocks =
                pg_sys::RelationGetNumberOfBlocksInFork(chunk, pg_sys::ForkNumber::MAIN_FORKNUM);
            pg_sys::enable_indexscan && i64::from(blocks) <= i64::from(pg_sys::NBuffers) / 4
        };
        if fits {
            if let Some(index) = super::delegate::chunk_index(chunk, pg_sys::AccessShareLock)
                .and_then(|i| super::delegate::keyed_on(i, cfg.key_attnum))
            {
                // SAFETY: a full forward scan of the chunk's (key, time) index under the
                // registered snapshot, into a slot of the chunk's descriptor.
                unsafe {
                    let iscan = pg_sys::index_beginscan(chunk, index, snapshot, 0, 0);
                    pg_sys::index_rescan(iscan, std::ptr::null_mut(), 0, std::ptr::null_mut(), 0);
                    let slot = pg_sys::MakeSingleTupleTableSlot(
                        (*chunk).rd_att,
                        &pg_sys::TTSOpsBufferHeapTuple,
                    );
                    return Sorted {
                        state: std::ptr::null_mut(),
                        index,
                        iscan,
                        slot,
                        cxt: pg_sys::CurrentMemoryContext,
                    };
                }
            }
        }
        // SAFETY: a tuplesort over the chunk's descriptor, keyed on its key and time
        // columns with their types' default btree "<" (built-in types) and collations
        // (NULL keys last, as in the index); fed by a scan of the chunk under the
        // registered snapshot.
        unsafe {
            let desc = (*chunk).rd_att;
            let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
            let mut attnums = [cfg.key_attnum, cfg.time_attnum];
            let mut ops = [pg_sys::InvalidOid; 2];
            let mut colls = [pg_sys::InvalidOid; 2];
            for (i, &a) in attnums.iter().enumerate() {
                let att = &attrs[(a - 1) as usize];
                let tc = pg_sys::lookup_type_cache(att.atttypid, pg_sys::TYPECACHE_LT_OPR as i32);
                ops[i] = (*tc).lt_opr;
                colls[i] = att.attcollation;
            }
            let mut nulls_first = [false; 2];
            let state = pg_sys::tuplesort_begin_heap(
                desc,
                2,
                attnums.as_mut_ptr(),
                ops.as_mut_ptr(),
                colls.as_mut_ptr(),
                nulls_first.as_mut_ptr(),
                pg_sys::maintenance_work_mem,
                std::ptr::null_mut(),
                0,
            );
            let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsBufferHeapTuple);
            let scan = super::delegate::heap_seqscan(chunk, snapshot);
            while heap_call!(scan_getnextslot(
                scan,
                pg_sys::ScanDirection::ForwardScanDirection,
                slot
            )) {
                pg_sys::tuplesort_puttupleslot(state, slot);
            }
            heap_call!(scan_end(scan));
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::tuplesort_performsort(state);
            // the sort hands rows back as minimal tuples
            let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
            Sorted {
                state,
                index: std::ptr::null_mut(),
                iscan: std::ptr::null_mut(),
                slot,
                cxt: pg_sys::CurrentMemoryContext,
            }
        }
    }

    /// The next row in (key, time) order, in our slot (valid until the next call).
    fn next(&mut self) -> Option<*mut pg_sys::TupleTableSlot> {
        // SAFETY: the index scan fills our slot with a pinned buffer tuple; the sort
        // copies its row into our slot, in the caller's context.
        // Both run in the context they were begun in: btree allocates scan state
        // lazily during the scan, and the caller resets its context every batch.
        unsafe {
            let old = pg_sys::MemoryContextSwitchTo(self.cxt);
            let got = if self.iscan.is_null() {
                pg_sys::tuplesort_gettupleslot(
                    self.state,
                    true,
                    true,
                    self.slot,
                    std::ptr::null_mut(),
                )
            } else {
                pg_sys::index_getnext_slot(
                    self.iscan,
                    pg_sys::ScanDirection::ForwardScanDirection,
                    self.slot,
                )
            };
            pg_sys::MemoryContextSwitchTo(old);
            got.then_some(self.slot)
        }
    }

    fn end(self) {
        // SAFETY: ends the index scan or the sort, and drops the slot, once.
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            if !self.iscan.is_null() {
                pg_sys::index_endscan(self.iscan);
                pg_sys::index_close(self.index, pg_sys::NoLock as pg_sys::LOCKMODE);
            } else {
                pg_sys::tuplesort_end(self.state);
            }
        }
    }
}

/// What [`write_batches`] wrote.
struct Written {
    rows: i64,
    /// First and last time of the rows.
    time: Option<(i64, i64)>,
}

/// Cuts the sorted rows into batches (one key, at most [`BATCH_ROWS`] rows and about
/// [`BATCH_BYTES`] of variable-length values each) and writes them into `cold_rel`.
/// The builders hold up to two batches' rows of one key, so that a key's rows are cut
/// into batches of even length: a key of 1.5 batches' rows makes two batches of 0.75,
/// not a full one and one of half (each batch costs a batch row and its own pco
/// tables; TSBS's chunks hold 1000 to 2900 rows of a host).
fn write_batches(
    cold_rel_id: pg_sys::Oid,
    cfg: &TableConfig,
    specs: &[ColSpec],
    desc: pg_sys::TupleDesc,
    mut sort: Sorted,
) -> Written {
    let mut builders: Vec<ColumnBuilder> = specs.iter().map(|s| ColumnBuilder::new(*s)).collect();
    let bounded = cold::bounded_columns(specs, cfg.key_attnum, cfg.time_attnum);
    let mut out = Written {
        rows: 0,
        time: None,
    };
    let natts = specs.len();
    // SAFETY: the batch relation we just created (locked by its creation); every batch
    // tuple is formed from its own descriptor; a per-batch memory context holds the
    // detoasted values and the batch tuple, reset after each batch; the key's copy
    // lives in a context of its own, reset when the key changes.
    unsafe {
        let rel = pg_sys::relation_open(cold_rel_id, pg_sys::NoLock as pg_sys::LOCKMODE);
        let bistate = pg_sys::GetBulkInsertState();
        let cid = pg_sys::GetCurrentCommandId(true);
        let cxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"bidim conversion batch".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let keycxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"bidim conversion key".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let key_attr = (*(*rel).rd_att).attrs.as_slice(cold::COL_KEY)[cold::COL_KEY - 1];
        let time_col = (cfg.time_attnum - 1) as usize;
        let mut batch_no = 0i32;
        let mut bytes_held = 0usize;
        // The key of the rows held (copied into its context).
        let mut key: Option<(pg_sys::Datum, bool)> = None;
        // Writes every row of the builders as one batch.
        let flush = |key: (pg_sys::Datum, bool), b: &mut Vec<ColumnBuilder>, batch_no: i32| {
            let n = b[time_col].rows();
            let (tmin, tmax) = match b[time_col].bounds() {
                Some((Bound::Int(lo), Bound::Int(hi))) => (lo, hi),
                _ => unreachable!("a batch's times are integers and never NULL"),
            };
            let width = cold::FIXED_COLUMNS + 2 + 2 * bounded.len() + 1;
            let mut values = vec![pg_sys::Datum::from(0); width];
            let mut nulls = vec![false; width];
            // The last row in the clear, taken before the builders are emptied.
            let (mut last, mut last_null): (Vec<_>, Vec<_>) =
                b.iter().map(|bld| bld.last_datum()).unzip();
            let row =
                pg_sys::heap_form_minimal_tuple(desc, last.as_mut_ptr(), last_null.as_mut_ptr());
            let len = (*row).t_len as usize;
            if len <= cold::LAST_ROW_MAX_BYTES {
                values[width - 1] =
                    cold::bytea_datum(std::slice::from_raw_parts(row as *const u8, len));
            } else {
                nulls[width - 1] = true;
            }
            for (j, &i) in bounded.iter().enumerate() {
                let at = cold::FIXED_COLUMNS + 2 + 2 * j;
                match b[i].bounds() {
                    None => {
                        nulls[at] = true;
                        nulls[at + 1] = true;
                    }
                    Some((lo, hi)) => {
                        values[at] = bound_datum(lo);
                        values[at + 1] = bound_datum(hi);
                    }
                }
            }
            values[cold::COL_BATCH - 1] = pg_sys::Datum::from(batch_no);
            values[cold::COL_ROWS - 1] = pg_sys::Datum::from(n as i32);
            values[cold::COL_KEY - 1] = key.0;
            nulls[cold::COL_KEY - 1] = key.1;
            values[cold::COL_TIME_MIN - 1] = pg_sys::Datum::from(tmin);
            values[cold::COL_TIME_MAX - 1] = pg_sys::Datum::from(tmax);
            let columns: Vec<Vec<u8>> = b.iter_mut().map(|bld| bld.finish()).collect();
            let packed = codec::pack::pack(&columns);
            values[cold::FIXED_COLUMNS] = cold::bytea_datum(&packed);
            nulls[cold::FIXED_COLUMNS + 1] = true;
            let mut tup =
                pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
            if (*tup).t_len as usize > cold::WHOLE_ROW_BYTES {
                // too big to stay whole: full TOAST chunks, and the rest with the
                // directory in the row
                let dir = codec::pack::directory_len(&packed).expect("a packed value");
                let cut = cold::split_packed(packed.len() - dir);
                values[cold::FIXED_COLUMNS] = cold::bytea_datum(&packed[..cut]);
                values[cold::FIXED_COLUMNS + 1] = cold::bytea_datum(&packed[cut..]);
                nulls[cold::FIXED_COLUMNS + 1] = false;
                tup =
                    pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
            }
            pg_sys::heap_insert(rel, tup, cid, 0, bistate);
        };
        // Writes the rows held: one batch, or two of even length when they are more
        // than one batch's.
        let flush_held =
            |key: (pg_sys::Datum, bool), b: &mut Vec<ColumnBuilder>, batch_no: &mut i32| {
                let n = b[time_col].rows();
                if n > BATCH_ROWS {
                    let mut rest: Vec<ColumnBuilder> =
                        b.iter_mut().map(|c| c.split_off(n.div_ceil(2))).collect();
                    flush(key, b, *batch_no);
                    *batch_no += 1;
                    pg_sys::MemoryContextReset(cxt);
                    flush(key, &mut rest, *batch_no);
                } else {
                    flush(key, b, *batch_no);
                }
                *batch_no += 1;
                pg_sys::MemoryContextReset(cxt);
            };
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        while let Some(slot) = sort.next() {
            pg_sys::slot_getallattrs(slot);
            let vals = std::slice::from_raw_parts((*slot).tts_values, natts);
            let isnull = std::slice::from_raw_parts((*slot).tts_isnull, natts);
            let k = (cfg.key_attnum - 1) as usize;
            let t = vals[time_col].value() as i64;
            let same_key = key.is_some_and(|(d, n)| {
                n == isnull[k] && (n || same_key_value(d, vals[k], &key_attr))
            });
            if let Some(held_key) = key {
                if !same_key || bytes_held >= BATCH_BYTES {
                    flush_held(held_key, &mut builders, &mut batch_no);
                    bytes_held = 0;
                    if !same_key {
                        pg_sys::MemoryContextReset(keycxt);
                        key = None;
                    }
                } else if builders[time_col].rows() == 2 * BATCH_ROWS {
                    // the key goes on: its first batch's rows make a batch
                    let mut rest: Vec<ColumnBuilder> = builders
                        .iter_mut()
                        .map(|c| c.split_off(BATCH_ROWS))
                        .collect();
                    flush(held_key, &mut builders, batch_no);
                    batch_no += 1;
                    pg_sys::MemoryContextReset(cxt);
                    std::mem::swap(&mut builders, &mut rest);
                    bytes_held = builders.iter().map(|c| c.bytes()).sum();
                }
            }
            if key.is_none() {
                let d = if isnull[k] {
                    pg_sys::Datum::from(0)
                } else {
                    let old = pg_sys::MemoryContextSwitchTo(keycxt);
                    let d = copy_key(vals[k], &key_attr);
                    pg_sys::MemoryContextSwitchTo(old);
                    d
                };
                key = Some((d, isnull[k]));
            }
            for (i, bld) in builders.iter_mut().enumerate() {
                if specs[i].dropped {
                    bld.push(pg_sys::Datum::from(0), true);
                } else {
                    bytes_held += bld.push(vals[i], isnull[i]);
                }
            }
            out.rows += 1;
            out.time = Some(match out.time {
                None => (t, t),
                Some((lo, hi)) => (lo.min(t), hi.max(t)),
            });
        }
        if let Some(k) = key {
            flush_held(k, &mut builders, &mut batch_no);
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextDelete(cxt);
        pg_sys::MemoryContextDelete(keycxt);
        sort.end();
        pg_sys::FreeBulkInsertState(bistate);
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
    out
}

/// An int8 or float8 datum of a batch bound.
fn bound_datum(b: Bound) -> pg_sys::Datum {
    match b {
        Bound::Int(v) => pg_sys::Datum::from(v),
        Bound::Float(v) => pg_sys::Datum::from(v.to_bits() as i64),
    }
}

/// A copy of a non-NULL key datum in the current memory context (integers are by value;
/// a text key is a varlena, copied with its header as stored).
fn copy_key(d: pg_sys::Datum, attr: &pg_sys::FormData_pg_attribute) -> pg_sys::Datum {
    if attr.attbyval {
        return d;
    }
    // SAFETY: a varlena datum (text keys); palloc'd copy of its whole size.
    unsafe {
        let p = d.cast_mut_ptr::<pg_sys::varlena>();
        let n = pgrx::varlena::varsize_any(p);
        let copy = pg_sys::palloc(n) as *mut u8;
        std::ptr::copy_nonoverlapping(p as *const u8, copy, n);
        pg_sys::Datum::from(copy)
    }
}

/// Whether two non-NULL key datums are the same key: by value for integers, byte for
/// byte (detoasted) for text.
fn same_key_value(
    a: pg_sys::Datum,
    b: pg_sys::Datum,
    attr: &pg_sys::FormData_pg_attribute,
) -> bool {
    if attr.attbyval {
        return a == b;
    }
    // SAFETY: two non-NULL text datums, detoasted in the batch context.
    unsafe {
        let bytes = |d: pg_sys::Datum| {
            let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
            std::slice::from_raw_parts(
                pgrx::varlena::vardata_any(v) as *const u8,
                pgrx::varlena::varsize_any_exhdr(v),
            )
        };
        bytes(a) == bytes(b)
    }
}

/// Drops the relations of converted chunks that no snapshot can see any more (their
/// ordinals are reusable); their ordinals stay free for reuse.
pub fn drop_superseded(facade: pg_sys::Oid) {
    let h = horizon(facade);
    if directory_io::free_ordinals(facade, h).is_empty() {
        return;
    }
    // A chunk maker reusing one of these ordinals drops its old relation and makes a
    // new one of the same name, under the chunk-creation lock: take it too (without
    // waiting; later runs retry), then read which ordinals are still free (a maker
    // that took one before we got the lock has committed, so its ordinal is gone from
    // the list), never what was read before the lock.
    if !Lock::ChunkCreation(facade).try_acquire() {
        return;
    }
    // SAFETY: catches up with catalog changes committed before we got the lock.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    for ordinal in directory_io::free_ordinals(facade, h) {
        // A listed chunk is never dropped, whatever the free list says.
        if directory_io::chunk_listed_latest(facade, ordinal) {
            continue;
        }
        if let Some(relid) = chunk_store::chunk_relid(facade, ordinal) {
            as_extension_owner(|| chunk_store::drop_internal(relid, &chunk_name(facade, ordinal)));
        }
    }
}

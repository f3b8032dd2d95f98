//! Scans of a bidim table: the chunks listed at scan start (all of them, or those
//! BidimScan kept), read one at a time by the reader of their kind (a hot or sealed
//! chunk: heap's sequential scan, or an index scan of its (key, time) index when the
//! query names keys), in parallel by whole chunks, and sampled for ANALYZE.

// Callback signatures are PostgreSQL's, argument count included.
#![allow(clippy::too_many_arguments)]

use super::block_map;
use super::cold;
use super::cold_scan::{self, ColdScan};
use super::config;
use super::delegate::{
    self, fix_slot, heap_call, open_chunk, rel_name, rel_oid, release_chunk, unsupported,
};
use super::directory_io::read_chunks;
use super::kept_scans::{self, KeptScans};
use super::prune::{self, ColumnCond};
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// How the current chunk is read: one reader per kind of chunk. Hot and sealed chunks
/// are heap relations, read by heap's sequential scan or through their (key, time)
/// index; cold chunks (compressed column batches) get a reader of their own here.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) enum Reader {
    /// No chunk is open.
    None,
    /// heap's scan of a hot or sealed chunk.
    Heap(pg_sys::TableScanDesc),
    /// An index scan of a hot or sealed chunk's (key, time) index.
    Index {
        index: pg_sys::Relation,
        scan: pg_sys::IndexScanDesc,
    },
    /// Time-ordered: the (key, time) index scans of every chunk of one unit (a time
    /// partition, or partitions that overlap), merged by time (`n` inputs in a
    /// palloc'd array).
    Merge { inputs: *mut MergeInput, n: i32 },
    /// A cold chunk's batches ([`cold_scan`]).
    Cold(*mut ColdScan),
}

/// One chunk of a [`Reader::Merge`]: its index scan (once opened) and the row it is at.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct MergeInput {
    chunk: pg_sys::Relation,
    index: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    /// A cold chunk's scan instead of `index`/`scan` (its rows come in `slot`, a
    /// virtual slot of the table's descriptor).
    cold: *mut ColdScan,
    slot: *mut pg_sys::TupleTableSlot,
    ordinal: u32,
    relid: pg_sys::Oid,
    /// The time no row of the chunk passes in the scan's direction: its last time
    /// (descending) or first time (ascending), from its measured bounds or partition.
    bound: i64,
    /// Whether the index scan has been opened.
    opened: bool,
    /// Whether `slot` holds a row (else the input is exhausted).
    live: bool,
    /// Whether that row has been handed out: the input moves on at the next call, not
    /// at once, so `LIMIT 1` reads no second row (a cold batch's second row decodes it).
    taken: bool,
    /// The time of that row.
    time: i64,
    /// The chunk's measured time span, when it has one (else `None`): a tail probe
    /// reads its newest (oldest) slice first ([`tail_split`]).
    span: Option<(i64, i64)>,
    /// The tail probe's phase: 0 none (one read of the whole key), 1 reading the
    /// slice from `split` on (newest first; before `split` when oldest first), 2
    /// reading the rest.
    phase: u8,
    /// The time where the two phases meet.
    split: i64,
    /// Whether the tail phase has returned no row yet.
    tail_empty: bool,
}

/// A scan over a bidim table: the chunks listed at scan start, one at a time.
#[repr(C)]
pub(super) struct BidimScan {
    base: pg_sys::TableScanDescData,
    /// palloc'd array of (ordinal, chunk relation).
    chunks: *mut (u32, pg_sys::Oid),
    nchunks: i32,
    cur: i32,
    chunk_rel: pg_sys::Relation,
    /// The current chunk's reader.
    reader: Reader,
    /// The array an ordered scan's units merge their inputs in, allocated once in
    /// `mcxt` and reused by every unit (and rescan) that fits in it.
    merge_buf: *mut MergeInput,
    merge_cap: i32,
    /// The facade-side header of the current tuple (TID and table oid re-encoded).
    tup: pg_sys::HeapTupleData,
    /// For ANALYZE: palloc'd cumulative start block of each chunk.
    starts: *mut u32,
    /// Keys on the chunks' (key, time) index: when set, chunks are read by index scan.
    ikeys: *mut pg_sys::ScanKeyData,
    nikeys: i32,
    /// One bulk-read buffer ring for all chunk scans of a large table (each chunk is
    /// below heap's own threshold for one, so without it a big scan would sweep
    /// through shared_buffers); null when not used.
    strategy: pg_sys::BufferAccessStrategy,
    /// The memory context the scan was begun in: chunk scans are started lazily, from
    /// inside getnextslot, whose caller may be in a per-tuple context it resets after
    /// every row (ALTER TABLE's validation scans, partition checks, FK checks do); the
    /// chunk scans must live as long as this scan.
    mcxt: pg_sys::MemoryContext,
    /// Time order of the rows returned: 0 none, 1 ascending, -1 descending (then the
    /// chunks come in time order, grouped into units of one time partition each, or
    /// of partitions that overlap ([`prune::ordered_units`]), every unit read by a
    /// merge of its chunks' index scans).
    order: i32,
    time_attnum: i16,
    /// palloc'd start index of every unit in `chunks`, and `nchunks` after the last.
    units: *mut i32,
    /// palloc'd time span [lo, hi) of every chunk (ordered scans).
    spans: *mut (i64, i64),
    /// palloc'd, one per chunk: whether its span was measured (its rows' own bounds,
    /// not its partition's), so that a tail probe can slice it.
    measured: *mut bool,
    /// Positions in `ikeys` of the ordered scan's time keys (`>=` and `<`, both always
    /// present in an ordered scan by index; -1: none), and a scratch copy of `ikeys` a
    /// tail probe's phases rewrite them in.
    tail_ge: i32,
    tail_lt: i32,
    tkeys: *mut pg_sys::ScanKeyData,
    /// What the tail probes learned ([`TailStats`]).
    tail: TailStats,
    nunits: i32,
    cur_unit: i32,
    /// Rows before `time_lo` or from `time_hi` on are not wanted (BidimScan's bounds):
    /// cold chunks skip the batches wholly outside.
    time_lo: i64,
    time_hi: i64,
    /// palloc'd, one per table column: whether the query reads it (null: all). Cold
    /// chunks decode only these.
    needed: *mut bool,
    /// Cold batches decoded, and skipped by their time bounds, by finished readers.
    batches: (i64, i64, i64),
    /// palloc'd conditions on other columns, checked against cold batches' min/max
    /// and the rows of decoded ones.
    conds: *mut ColumnCond,
    nconds: i32,
    /// Rows of decoded cold batches left out by those conditions, not yet taken by
    /// [`take_filtered`].
    rows_filtered: i64,
    /// Cold chunks are passed over (BidimAgg reads their batches in its own order).
    skip_cold: bool,
    /// Chunks whose blocks are restricted by a time map are passed over (a
    /// time-ordered BidimAgg reads their block ranges in its own order).
    skip_mapped: bool,
    /// palloc'd, one per chunk (null: none): the runs of blocks a heap reader reads of
    /// a chunk with a block-range time map ([`restrict_blocks`]).
    chunk_runs: *mut ChunkRuns,
    /// palloc'd block runs (start, count) the `chunk_runs` entries point into.
    runs: *mut (u32, u32),
    /// The run of the current chunk being read ([`block_map::fitted_run`]'s index) and
    /// the chunk's size in blocks when it was opened.
    cur_run: i32,
    cur_nblocks: u32,
    /// The node's index scans of hot chunks kept open across its rescans (null: none
    /// are kept; [`kept_scans`]).
    kept: *mut KeptScans,
    /// palloc'd scan keys heap's scans of hot and sealed chunks test each row against
    /// ([`heap_keys`]; none: the facade scan's own keys).
    hkeys: *mut pg_sys::ScanKeyData,
    nhkeys: i32,
}

/// What an ordered scan's tail probes ([`tail_split`]) learned: probes begun, and
/// those whose slice held no row (they cost a second descent), and the slice's shift
/// (0: nothing learned yet); the rules are [`prune::tail_widened`] and
/// [`prune::tails_pay`]. A node hands it from one of its scans to the next
/// ([`resume_tails`]), so its rescans keep what was learned.
#[derive(Clone, Copy, Default)]
pub(crate) struct TailStats {
    probes: i32,
    misses: i32,
    shift: u8,
    /// The part of the counts [`take_tail_counts`] has handed out.
    taken: (i32, i32),
}

/// Which blocks of a chunk a heap reader reads: `count` runs from `first` in
/// [`BidimScan::runs`], measured over `covered` blocks; `count` -1: the whole chunk.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ChunkRuns {
    first: i32,
    count: i32,
    covered: u32,
}

/// Shared state of a parallel scan: participants take whole chunks, in directory
/// order, from a shared counter. Every participant lists the same chunks: in parallel
/// mode the directory is read with the scan's (shared) snapshot.
#[repr(C)]
pub(super) struct BidimParallelScan {
    base: pg_sys::ParallelTableScanDescData,
    next_chunk: u32,
}

/// The snapshot to list chunks with for a scan under `snapshot`.
pub(super) fn directory_snapshot(snapshot: pg_sys::Snapshot) -> pg_sys::Snapshot {
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

pub(super) fn list_chunks(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
) -> Vec<(u32, pg_sys::Oid)> {
    // SAFETY: the snapshot is valid for the duration of the read.
    unsafe { read_chunks(rel_oid(rel), directory_snapshot(snapshot)) }
        .into_iter()
        .map(|r| (r.chunk_id, r.chunk_rel))
        .collect()
}

pub(super) fn palloc_array<T: Copy>(items: &[T]) -> *mut T {
    // SAFETY: palloc in the current memory context, sized for the items, then copied.
    unsafe {
        let p = pg_sys::palloc0((items.len().max(1)) * std::mem::size_of::<T>()) as *mut T;
        std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
        p
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_begin(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> pg_sys::TableScanDesc {
    // SAFETY: the snapshot is valid for the duration of the read.
    let rows = unsafe { read_chunks(rel_oid(rel), directory_snapshot(snapshot)) };
    let chunks: Vec<(u32, pg_sys::Oid)> = rows.iter().map(|r| (r.chunk_id, r.chunk_rel)).collect();
    let scan = begin_scan_of(rel, snapshot, nkeys, key, pscan, flags, &chunks, &[]);
    ring_only_if_large(
        scan,
        rows.iter().map(|r| r.pages.map(|p| p.max(0) as u64)).sum(),
    );
    if !pscan.is_null() {
        share_mapped_chunks(scan, rows.iter().map(|r| r.block_map.as_ref()));
    }
    scan
}

/// Gives a scan keys that its heap readers (hot and sealed chunks read whole) test each
/// row against: conditions the query's filter also checks, so heap passes over the rows
/// that fail them (they are not counted as removed by the filter).
pub(crate) fn heap_keys(scan: pg_sys::TableScanDesc, keys: &[pg_sys::ScanKeyData]) {
    if keys.is_empty() {
        return;
    }
    // SAFETY: scan is a BidimScan; the array is palloc'd in the scan's context.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        let old = pg_sys::MemoryContextSwitchTo(s.mcxt);
        s.hkeys = palloc_array(keys);
        s.nhkeys = keys.len() as i32;
        pg_sys::MemoryContextSwitchTo(old);
    }
}

/// Drops the scan's bulk-read buffer ring when it reads at most a quarter of
/// shared_buffers (`blocks`; `None`: unknown, a chunk is not measured yet): heap's own
/// rule for one relation, applied to all the chunks a scan reads, so a scan of a
/// window that fits stays in shared_buffers as a heap table's would (through a ring,
/// every block comes from the kernel again each time).
pub(crate) fn ring_only_if_large(scan: pg_sys::TableScanDesc, blocks: Option<u64>) {
    // SAFETY: scan is a BidimScan; its ring was made by begin_scan_of and no chunk scan
    // has borrowed it yet.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        let small = blocks.is_some_and(|b| b <= (pg_sys::NBuffers / 4).max(0) as u64);
        if !s.strategy.is_null() && small {
            pg_sys::FreeAccessStrategy(s.strategy);
            s.strategy = std::ptr::null_mut();
        }
    }
}

/// Lets the participants of a parallel scan that reads whole chunks share the sealed
/// chunks with block-range time maps piece by piece ([`restrict_blocks`]), not chunk by
/// chunk: a table of a few big chunks then keeps every participant busy to the end.
/// Every participant lists the same pieces: the maps come from the directory rows,
/// read with the scan's shared snapshot.
pub(crate) fn share_mapped_chunks<'a>(
    scan: pg_sys::TableScanDesc,
    maps: impl Iterator<Item = Option<&'a block_map::BlockMap>>,
) {
    let maps: Vec<_> = maps.map(|m| m.map(block_map::BlockMap::whole)).collect();
    restrict_blocks(scan, &maps);
}

/// Begins a scan of `rel` that returns rows in time order (`order` 1: ascending, -1:
/// descending) for the rows `index_keys` select (one key): `chunks` come in that time
/// order, `unit_starts` says where each time partition's chunks start. The scan stops
/// reading where its caller stops asking (`ORDER BY time DESC LIMIT n`).
pub(crate) fn begin_ordered_scan_of(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    chunks: &[(u32, pg_sys::Oid)],
    spans: &[(i64, i64)],
    measured: &[bool],
    unit_starts: &[i32],
    index_keys: &[pg_sys::ScanKeyData],
    order: i32,
    time_attnum: i16,
) -> pg_sys::TableScanDesc {
    let scan = begin_scan_of(
        rel,
        snapshot,
        0,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        pg_sys::ScanOptions::SO_TYPE_SEQSCAN,
        chunks,
        index_keys,
    );
    let mut bounds = unit_starts.to_vec();
    bounds.push(chunks.len() as i32);
    // SAFETY: scan is the BidimScan just made; the array is palloc'd in the current
    // (the scan's) memory context.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        s.order = order;
        s.time_attnum = time_attnum;
        s.units = palloc_array(&bounds);
        s.spans = palloc_array(spans);
        s.measured = palloc_array(measured);
        s.nunits = unit_starts.len() as i32;
        s.cur_unit = -1;
        let at = |strategy: u32| {
            index_keys
                .iter()
                .position(|k| k.sk_attno == 2 && u32::from(k.sk_strategy) == strategy)
                .map_or(-1, |p| p as i32)
        };
        s.tail_ge = at(pg_sys::BTGreaterEqualStrategyNumber);
        s.tail_lt = at(pg_sys::BTLessStrategyNumber);
        if s.tail_ge >= 0 && s.tail_lt >= 0 {
            s.tkeys = palloc_array(index_keys);
            s.tail.shift = prune::TAIL_SHIFT;
        } else {
            (s.tail_ge, s.tail_lt) = (-1, -1);
        }
    }
    scan
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
    // SAFETY: the scan descriptor is palloc'd, zeroed and filled like heap's (the
    // reader written in place, not read).
    unsafe {
        let s = pg_sys::palloc0(std::mem::size_of::<BidimScan>()) as *mut BidimScan;
        std::ptr::addr_of_mut!((*s).reader).write(Reader::None);
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
        (*s).time_lo = i64::MIN;
        (*s).time_hi = i64::MAX;
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
                // Not a lock per chunk to commit: the sample reads lock each chunk again.
                release_chunk(r, std::ptr::null_mut());
            }
            (*s).starts = palloc_array(&starts);
        }
        s as pg_sys::TableScanDesc
    }
}

/// Lets a scan keep its chunks' index scans open in `kept` (the node's, which outlives
/// the scan) for the node's next rescan.
pub(super) fn keep_scans(scan: pg_sys::TableScanDesc, kept: *mut KeptScans) {
    // SAFETY: scan is a BidimScan.
    unsafe { (*(scan as *mut BidimScan)).kept = kept };
}

/// Readies a scan for its node's rescan: its reader ended (kept index scans given
/// back), its counters zeroed (the node has taken them), back at its start.
pub(super) fn pause(scan: pg_sys::TableScanDesc) {
    // SAFETY: scan is a BidimScan.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    end_chunk_scan(s);
    s.batches = (0, 0, 0);
    s.rows_filtered = 0;
    s.cur = -1;
    s.cur_unit = -1;
}

/// Reuses a paused scan for a rescan that reads the same `chunks` through index keys
/// of the same shape with new values (a nested loop's next outer row): true when it
/// could (the scan reads chunks by index only, with no column conditions, not in
/// parallel), then the scan has the new `keys` and time bounds.
pub(super) fn rekey(
    scan: pg_sys::TableScanDesc,
    chunks: &[(u32, pg_sys::Oid)],
    keys: &[pg_sys::ScanKeyData],
    time: (i64, i64),
) -> bool {
    // SAFETY: scan is a BidimScan; its arrays hold nchunks chunks and nikeys keys.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        let same = !keys.is_empty()
            && s.nikeys as usize == keys.len()
            && s.nconds == 0
            && s.chunk_runs.is_null()
            && s.base.rs_parallel.is_null()
            && s.nchunks as usize == chunks.len()
            && std::slice::from_raw_parts(s.chunks, chunks.len()) == chunks;
        if same {
            std::ptr::copy_nonoverlapping(keys.as_ptr(), s.ikeys, keys.len());
            s.time_lo = time.0;
            s.time_hi = time.1;
        }
        same
    }
}

/// Gives a paused scan that reads one key a new value of that key (its key-column
/// index key's argument; [`rekey`] checked the rest when the scan was made or reused).
pub(super) fn set_key_value(scan: pg_sys::TableScanDesc, value: pg_sys::Datum) {
    // SAFETY: scan is a BidimScan; ikeys holds nikeys keys.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        for i in 0..s.nikeys as usize {
            let k = &mut *s.ikeys.add(i);
            if k.sk_attno == 1 {
                k.sk_argument = value;
            }
        }
    }
}

/// Tells a scan begun by [`begin_scan_of`] which rows it needs: times in [lo, hi), the
/// columns `needed` marks (one flag per table column; `None`: all), and rows passing
/// `conds` (cold batches are skipped by their min/max).
pub(crate) fn restrict(
    scan: pg_sys::TableScanDesc,
    time: (i64, i64),
    needed: Option<&[bool]>,
    conds: &[ColumnCond],
) {
    // SAFETY: scan is a BidimScan; the arrays are palloc'd in the scan's context.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        s.time_lo = time.0;
        s.time_hi = time.1;
        let old = pg_sys::MemoryContextSwitchTo(s.mcxt);
        if let Some(n) = needed {
            s.needed = palloc_array(n);
        }
        if !conds.is_empty() {
            s.conds = palloc_array(conds);
            s.nconds = conds.len() as i32;
        }
        pg_sys::MemoryContextSwitchTo(old);
    }
}

/// Blocks a piece of a mapped chunk has at most in a parallel scan (the participants
/// take the pieces one at a time, so the few chunks that hold a short window are
/// shared among them).
const PARALLEL_PIECE_BLOCKS: u32 = 256;

/// The units the participants of a parallel scan of all of `chunks` share: a piece
/// of at most [`PARALLEL_PIECE_BLOCKS`] blocks of each mapped chunk, each other chunk
/// whole ([`share_mapped_chunks`]).
pub(crate) fn parallel_units(chunks: &[super::directory::ChunkRow]) -> usize {
    chunks
        .iter()
        .map(|c| {
            c.block_map.as_ref().map_or(1, |m| {
                m.blocks().div_ceil(PARALLEL_PIECE_BLOCKS).max(1) as usize
            })
        })
        .sum()
}

/// Tells a scan begun by [`begin_scan_of`] which blocks of its chunks to read: for
/// each chunk (in the scan's order), `None` (all of them) or the runs of blocks its
/// block-range time map gives for the scan's time window, and the blocks the map
/// covers (blocks past those are read too). A parallel scan lists a mapped chunk once
/// per piece of its runs (the last piece also reads the blocks past the map).
pub(crate) fn restrict_blocks(scan: pg_sys::TableScanDesc, maps: &[Option<block_map::BlockRuns>]) {
    if maps.iter().all(Option::is_none) {
        return;
    }
    // SAFETY: scan is a BidimScan with one chunk per entry of maps; the arrays are
    // palloc'd in the scan's context.
    unsafe {
        let s = &mut *(scan as *mut BidimScan);
        assert_eq!(
            maps.len(),
            s.nchunks as usize,
            "one block restriction per chunk"
        );
        let parallel = !s.base.rs_parallel.is_null();
        let chunks = std::slice::from_raw_parts(s.chunks, s.nchunks as usize);
        let mut list = Vec::with_capacity(chunks.len());
        let mut flat = Vec::new();
        let mut per_chunk = Vec::with_capacity(chunks.len());
        for (&c, m) in chunks.iter().zip(maps) {
            match m {
                None => {
                    list.push(c);
                    per_chunk.push(ChunkRuns {
                        first: 0,
                        count: -1,
                        covered: 0,
                    });
                }
                Some(b) if parallel && !b.runs.is_empty() => {
                    let pieces = block_map::pieces(&b.runs, PARALLEL_PIECE_BLOCKS);
                    for (j, &p) in pieces.iter().enumerate() {
                        list.push(c);
                        per_chunk.push(ChunkRuns {
                            first: flat.len() as i32,
                            count: 1,
                            // only the last piece reads blocks past the map
                            covered: if j + 1 == pieces.len() {
                                b.covered
                            } else {
                                u32::MAX
                            },
                        });
                        flat.push(p);
                    }
                }
                Some(b) => {
                    list.push(c);
                    per_chunk.push(ChunkRuns {
                        first: flat.len() as i32,
                        count: b.runs.len() as i32,
                        covered: b.covered,
                    });
                    flat.extend_from_slice(&b.runs);
                }
            }
        }
        let old = pg_sys::MemoryContextSwitchTo(s.mcxt);
        if list.len() != chunks.len() {
            s.chunks = palloc_array(&list);
            s.nchunks = list.len() as i32;
        }
        s.chunk_runs = palloc_array(&per_chunk);
        s.runs = palloc_array(&flat);
        pg_sys::MemoryContextSwitchTo(old);
    }
}

/// The block runs the current chunk's heap reader reads, if restricted, with the
/// blocks its map covers.
fn runs_of(s: &BidimScan) -> Option<(&[(u32, u32)], u32)> {
    if s.chunk_runs.is_null() {
        return None;
    }
    // SAFETY: chunk_runs has one entry per chunk, cur indexes a chunk; each entry with
    // count >= 0 points to count runs inside `runs` (restrict_blocks).
    unsafe {
        let r = *s.chunk_runs.add(s.cur as usize);
        (r.count >= 0).then(|| {
            (
                std::slice::from_raw_parts(s.runs.add(r.first as usize), r.count as usize),
                r.covered,
            )
        })
    }
}

/// Points heap reader `hs` (not yet started, or just rescanned) at the current
/// chunk's next non-empty block run after `cur_run`; false (and an empty scan) when
/// none is left.
fn next_run(s: &mut BidimScan, hs: pg_sys::TableScanDesc) -> bool {
    let Some((runs, covered)) = runs_of(s) else {
        return false;
    };
    let mut i = s.cur_run + 1;
    let found = loop {
        match block_map::fitted_run(runs, covered, s.cur_nblocks, i as usize) {
            None => break None,
            Some((_, 0)) => i += 1,
            Some(run) => break Some(run),
        }
    };
    s.cur_run = i;
    let (start, count) = found.unwrap_or((0, 0));
    // SAFETY: heap's scan of the open chunk, before its first fetch since begin or
    // rescan; a run within the chunk's blocks (0 blocks: it returns no row).
    unsafe { pg_sys::heap_setscanlimits(hs, start, count) };
    found.is_some()
}

/// The column conditions of a scan.
fn conds_of(s: &BidimScan) -> &[ColumnCond] {
    if s.conds.is_null() {
        return &[];
    }
    // SAFETY: nconds conditions, palloc'd by restrict.
    unsafe { std::slice::from_raw_parts(s.conds, s.nconds as usize) }
}

/// The needed-columns flags of a scan, if it has them.
fn needed_of(s: &BidimScan) -> Option<&[bool]> {
    // SAFETY: needed holds one flag per column of the table when set.
    (!s.needed.is_null()).then(|| unsafe {
        std::slice::from_raw_parts(s.needed, (*(*s.base.rs_rd).rd_att).natts as usize)
    })
}

/// Ends the current chunk's reader and closes the chunk.
pub(super) fn end_chunk_scan(s: &mut BidimScan) {
    let mut index = std::ptr::null_mut();
    match s.reader {
        Reader::None => {}
        Reader::Merge { inputs, n } => {
            s.batches = batch_counts(s as *mut BidimScan as pg_sys::TableScanDesc);
            end_merge_reader(inputs, n, s.kept)
        }
        Reader::Heap(hs) => end_heap_reader(s, hs),
        Reader::Cold(cs) => {
            s.batches = add_counts(s.batches, cs);
            cold_scan::end(cs)
        }
        Reader::Index { index: i, scan } => {
            if kept_scans::give_back(s.kept, scan) {
                // kept open, with its chunk, for the node's next rescan
                s.chunk_rel = std::ptr::null_mut();
            } else {
                // SAFETY: ends the index scan we began on this chunk's index.
                unsafe { pg_sys::index_endscan(scan) };
                index = i;
            }
        }
    }
    s.reader = Reader::None;
    if !s.chunk_rel.is_null() {
        release_chunk(s.chunk_rel, index);
        s.chunk_rel = std::ptr::null_mut();
    }
}

fn add_counts(acc: (i64, i64, i64), cs: *mut ColdScan) -> (i64, i64, i64) {
    // SAFETY: cs is a live cold scan.
    let (r, k, l) = unsafe {
        (
            (*cs).batches_read,
            (*cs).batches_skipped,
            (*cs).rows_in_clear,
        )
    };
    (acc.0 + r, acc.1 + k, acc.2 + l)
}

/// Rows of decoded cold batches the scan has left out by its column conditions since
/// the last call (a BidimScan counts them as removed by its filter).
pub(crate) fn take_filtered(scan: pg_sys::TableScanDesc) -> i64 {
    // SAFETY: scan is a BidimScan.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    std::mem::take(&mut s.rows_filtered)
}

/// Cold batches a scan has decoded and skipped so far, and last rows it took from
/// batches undecoded (EXPLAIN ANALYZE).
pub(crate) fn batch_counts(scan: pg_sys::TableScanDesc) -> (i64, i64, i64) {
    // SAFETY: scan is a BidimScan; its current reader (and merge inputs) are live.
    let s = unsafe { &*(scan as *mut BidimScan) };
    let mut acc = s.batches;
    match s.reader {
        Reader::Cold(cs) => acc = add_counts(acc, cs),
        Reader::Merge { inputs, n } => {
            // SAFETY: n inputs owned by the reader.
            for i in unsafe { std::slice::from_raw_parts(inputs, n as usize) } {
                if !i.cold.is_null() {
                    acc = add_counts(acc, i.cold);
                }
            }
        }
        _ => {}
    }
    acc
}

/// Tail probes ([`tail_split`]) begun, and those whose slice held no row, since the
/// last call that took them (`take`) — EXPLAIN ANALYZE's counts.
pub(crate) fn take_tail_counts(scan: pg_sys::TableScanDesc, take: bool) -> (i64, i64) {
    // SAFETY: scan is a BidimScan.
    let t = unsafe { &mut (*(scan as *mut BidimScan)).tail };
    let counts = (
        i64::from(t.probes - t.taken.0),
        i64::from(t.misses - t.taken.1),
    );
    if take {
        t.taken = (t.probes, t.misses);
    }
    counts
}

/// What the tail probes of `scan` learned.
pub(crate) fn tail_stats(scan: pg_sys::TableScanDesc) -> TailStats {
    // SAFETY: scan is a BidimScan.
    unsafe { (*(scan as *mut BidimScan)).tail }
}

/// Gives an ordered scan just begun what an earlier scan of its node learned (when it
/// learned anything and the new scan probes tails at all).
pub(crate) fn resume_tails(scan: pg_sys::TableScanDesc, learned: TailStats) {
    // SAFETY: scan is a BidimScan.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    if learned.shift != 0 && !s.tkeys.is_null() {
        s.tail = learned;
    }
}

/// Chunk scans get the facade scan's flags minus ownership of the snapshot.
pub(super) fn chunk_flags(s: &BidimScan) -> u32 {
    s.base.rs_flags & !pg_sys::ScanOptions::SO_TEMP_SNAPSHOT
}

pub(super) fn start_chunk_scan(s: &mut BidimScan, idx: i32) {
    // SAFETY: the scan's own context outlives every chunk scan; switched back below
    // (on error the transaction abort resets CurrentMemoryContext).
    let old = unsafe { pg_sys::MemoryContextSwitchTo(s.mcxt) };
    open_chunk_scan(s, idx);
    // SAFETY: restores the caller's context.
    unsafe { pg_sys::MemoryContextSwitchTo(old) };
}

/// Opens chunk `idx` and begins its heap or index scan (in the scan's context).
pub(super) fn open_chunk_scan(s: &mut BidimScan, idx: i32) {
    end_chunk_scan(s);
    // SAFETY: idx is within the palloc'd chunk array.
    let (_, relid) = unsafe { *s.chunks.add(idx as usize) };
    if s.nikeys > 0 && !(s.skip_mapped && runs_of(s).is_some()) {
        if let Some(k) = kept_scans::take(s.kept, relid, s.nikeys, false) {
            // SAFETY: the kept scan of this chunk's index, rescanned with this scan's keys.
            unsafe { pg_sys::index_rescan(k.scan, s.ikeys, s.nikeys, std::ptr::null_mut(), 0) };
            s.chunk_rel = k.chunk;
            s.cur = idx;
            s.reader = Reader::Index {
                index: k.index,
                scan: k.scan,
            };
            return;
        }
    }
    // SAFETY: guarded open that returns null for a relation dropped meanwhile.
    s.chunk_rel =
        unsafe { pg_sys::try_table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    if s.chunk_rel.is_null() {
        dropped_meanwhile(s);
    }
    s.cur = idx;
    if cold::is_cold(s.chunk_rel) && s.base.rs_flags & pg_sys::ScanOptions::SO_TYPE_ANALYZE != 0 {
        // SAFETY: idx is within the palloc'd chunk array.
        let ordinal = unsafe { (*s.chunks.add(idx as usize)).0 };
        s.reader = Reader::Cold(cold_scan::begin_for_fetch(
            s.chunk_rel,
            s.base.rs_rd,
            ordinal,
        ));
        return;
    }
    if cold::is_cold(s.chunk_rel) && s.skip_cold {
        release_chunk(s.chunk_rel, std::ptr::null_mut());
        s.chunk_rel = std::ptr::null_mut();
        return;
    }
    if cold::is_cold(s.chunk_rel) {
        // SAFETY: idx is within the palloc'd chunk array; ikeys holds nikeys keys.
        let (ordinal, keys) = unsafe {
            (
                (*s.chunks.add(idx as usize)).0,
                if s.nikeys > 0 {
                    std::slice::from_raw_parts(s.ikeys, s.nikeys as usize)
                } else {
                    &[]
                },
            )
        };
        let cs = cold_scan::begin(
            s.chunk_rel,
            s.base.rs_rd,
            ordinal,
            s.base.rs_snapshot,
            keys,
            false,
            (s.time_lo, s.time_hi),
            needed_of(s),
            conds_of(s),
        );
        cold_scan::count_filtered(cs, &mut s.rows_filtered);
        s.reader = Reader::Cold(cs);
        return;
    }
    if s.skip_mapped && runs_of(s).is_some() {
        release_chunk(s.chunk_rel, std::ptr::null_mut());
        s.chunk_rel = std::ptr::null_mut();
        return;
    }
    s.reader = match open_index_reader(s) {
        Some(r) => r,
        None => open_heap_reader(s),
    };
}

/// An index scan of the open chunk's (key, time) index with the scan's index keys, if
/// the scan has index keys and the index is keyed on the table's key column.
fn open_index_reader(s: &BidimScan) -> Option<Reader> {
    if s.nikeys == 0 {
        return None;
    }
    // SAFETY: the facade is open for the scan.
    let key_attnum = unsafe { config::config(s.base.rs_rd) }.key_attnum;
    let index = delegate::chunk_index(s.chunk_rel, pg_sys::AccessShareLock)
        .and_then(|i| delegate::keyed_on(i, key_attnum))?;
    let keep = kept_scans::has_room(s.kept);
    // SAFETY: an index scan of the open chunk through its own index, with the scan keys
    // BidimScan built for the index's columns; a kept one in the kept scans' context.
    unsafe {
        let old = keep.then(|| pg_sys::MemoryContextSwitchTo((*s.kept).cxt));
        let scan = pg_sys::index_beginscan(s.chunk_rel, index, s.base.rs_snapshot, s.nikeys, 0);
        // (btree makes its array keys' context at the first rescan, under the current
        // one: the kept scans' for a kept scan)
        pg_sys::index_rescan(scan, s.ikeys, s.nikeys, std::ptr::null_mut(), 0);
        if let Some(old) = old {
            pg_sys::MemoryContextSwitchTo(old);
            let relid = (*s.chunk_rel).rd_id;
            kept_scans::adopt(
                s.kept,
                relid,
                s.chunk_rel,
                index,
                scan,
                std::ptr::null_mut(),
                s.nikeys,
            );
        }
        Some(Reader::Index { index, scan })
    }
}

/// heap's scan of the open chunk, with the scan's shared buffer ring if it has one,
/// over the blocks of its first run if its blocks are restricted.
fn open_heap_reader(s: &mut BidimScan) -> Reader {
    let restricted = runs_of(s).is_some();
    let mut flags = chunk_flags(s);
    if restricted {
        // A scan of a few runs neither joins nor moves a synchronized scan's position.
        flags &= !pg_sys::ScanOptions::SO_ALLOW_SYNC;
    }
    let (nkeys, keys) = if s.nhkeys > 0 {
        (s.nhkeys, s.hkeys)
    } else {
        (s.base.rs_nkeys, s.base.rs_key)
    };
    let hs = heap_call!(scan_begin(
        s.chunk_rel,
        s.base.rs_snapshot,
        nkeys,
        keys,
        std::ptr::null_mut(),
        flags
    ));
    lend_ring(s, hs);
    if restricted {
        // SAFETY: the open chunk's size in blocks.
        s.cur_nblocks = unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(s.chunk_rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        };
        s.cur_run = -1;
        next_run(s, hs);
    }
    Reader::Heap(hs)
}

/// Hands the scan's shared buffer ring to heap reader `hs` before its first fetch, if
/// heap did not choose one itself (taken back by [`take_ring`]).
fn lend_ring(s: &BidimScan, hs: pg_sys::TableScanDesc) {
    if !s.strategy.is_null() {
        // SAFETY: heap's scan descriptor is a HeapScanDescData; before its first
        // fetch, a ring it did not choose may be handed in.
        unsafe {
            let h = hs as *mut pg_sys::HeapScanDescData;
            if (*h).rs_strategy.is_null() {
                (*h).rs_strategy = s.strategy;
            }
        }
    }
}

/// Takes the scan's shared buffer ring back from heap reader `hs`, so that heap does
/// not free it (at the end of its scan, or at a rescan of a small chunk).
fn take_ring(s: &BidimScan, hs: pg_sys::TableScanDesc) {
    // SAFETY: heap's scan descriptor is a HeapScanDescData.
    unsafe {
        let h = hs as *mut pg_sys::HeapScanDescData;
        if !s.strategy.is_null() && (*h).rs_strategy == s.strategy {
            (*h).rs_strategy = std::ptr::null_mut();
        }
    }
}

fn end_heap_reader(s: &BidimScan, hs: pg_sys::TableScanDesc) {
    take_ring(s, hs);
    heap_call!(scan_end(hs));
}

/// The next row of a heap reader in `slot`, presented as a table row.
fn next_from_heap(
    s: &mut BidimScan,
    hs: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    while !heap_call!(scan_getnextslot(hs, direction, slot)) {
        if !restart_at_next_run(s, hs) {
            return false;
        }
    }
    // SAFETY: cur indexes the chunk array; heap stored a buffer tuple whose header
    // belongs to its scan, so the facade gets its own copy of the header.
    unsafe {
        let (ordinal, _) = *s.chunks.add(s.cur as usize);
        let h = slot as *mut pg_sys::HeapTupleTableSlot;
        // The TID and table are computed apart and stored once each (no narrow store
        // read back wide, which stalls the store buffer on every row).
        let mut tid = (*(*h).tuple).t_self;
        delegate::encode_tid(ordinal, &mut tid);
        let table = rel_oid(s.base.rs_rd);
        s.tup = pg_sys::HeapTupleData {
            t_self: tid,
            t_tableOid: table,
            ..*(*h).tuple
        };
        (*h).tuple = &mut s.tup;
        (*slot).tts_tid = tid;
        (*slot).tts_tableOid = table;
    }
    true
}

/// Points heap reader `hs`, which has read its block run, at the next run of blocks
/// of its restricted chunk: false when the chunk is not restricted or has none left.
fn restart_at_next_run(s: &mut BidimScan, hs: pg_sys::TableScanDesc) -> bool {
    if runs_of(s).is_none() {
        return false;
    }
    take_ring(s, hs);
    delegate::restart_heap_scan(hs);
    lend_ring(s, hs);
    next_run(s, hs)
}

/// The next row of an index reader in `slot`, presented as a table row.
fn next_from_index(
    s: &mut BidimScan,
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: fetches through the chunk's index into the caller's slot; heap stores the
    // row with the slot's own tuple header, which fix_slot rewrites.
    let found = unsafe {
        pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot)
    };
    if found {
        // SAFETY: cur indexes the chunk array.
        let (ordinal, _) = unsafe { *s.chunks.add(s.cur as usize) };
        fix_slot(s.base.rs_rd, ordinal, slot);
    }
    found
}

/// Starts unit `u` of an ordered scan: every chunk of one time partition (or of
/// partitions that overlap: [`prune::ordered_units`]), each to be
/// read through its (key, time) index in the scan's direction, merged by time. The
/// chunks are opened lazily, in the order of their bounds: a chunk whose rows cannot
/// come before the merge's current row is not opened yet (`ORDER BY time DESC LIMIT 1`
/// opens only the newest chunk when chunk spans do not overlap).
fn start_unit(s: &mut BidimScan, u: i32) {
    end_chunk_scan(s);
    // SAFETY: the scan's own context outlives the unit; units has nunits + 1 entries,
    // chunks and spans nchunks; the merge buffer holds merge_cap inputs, zeroed when
    // allocated, and the unit's n are written before the slice over them is made.
    unsafe {
        let from = *s.units.add(u as usize);
        let to = *s.units.add(u as usize + 1);
        let n = (to - from).max(0);
        if s.merge_cap < n {
            let old = pg_sys::MemoryContextSwitchTo(s.mcxt);
            free_if_set(s.merge_buf);
            // zeroed: every field valid (null pointers, false, 0) before it is written
            s.merge_buf =
                pg_sys::palloc0(n as usize * std::mem::size_of::<MergeInput>()) as *mut MergeInput;
            s.merge_cap = n;
            pg_sys::MemoryContextSwitchTo(old);
        }
        for (k, idx) in (from..to).enumerate() {
            s.merge_buf.add(k).write({
                let (ordinal, relid) = *s.chunks.add(idx as usize);
                let (lo, hi) = *s.spans.add(idx as usize);
                let measured = !s.measured.is_null() && *s.measured.add(idx as usize);
                MergeInput {
                    chunk: std::ptr::null_mut(),
                    index: std::ptr::null_mut(),
                    scan: std::ptr::null_mut(),
                    cold: std::ptr::null_mut(),
                    slot: std::ptr::null_mut(),
                    ordinal,
                    relid,
                    bound: if s.order < 0 {
                        hi.saturating_sub(1)
                    } else {
                        lo
                    },
                    opened: false,
                    live: false,
                    taken: false,
                    time: 0,
                    span: measured.then_some((lo, hi)),
                    phase: 0,
                    split: 0,
                    tail_empty: false,
                }
            });
        }
        let inputs = std::slice::from_raw_parts_mut(s.merge_buf, n as usize);
        // Most promising first: latest last time (descending), earliest first time.
        if s.order < 0 {
            inputs.sort_by_key(|i| std::cmp::Reverse(i.bound));
        } else {
            inputs.sort_by_key(|i| i.bound);
        }
        s.reader = Reader::Merge {
            inputs: s.merge_buf,
            n,
        };
        s.cur_unit = u;
    }
}

/// Opens a merge input's chunk and index scan and moves it to its first row.
fn open_input(s: &mut BidimScan, input: &mut MergeInput) {
    if let Some(k) = kept_scans::take(s.kept, input.relid, s.nikeys, true) {
        input.chunk = k.chunk;
        input.index = k.index;
        input.scan = k.scan;
        input.slot = k.slot;
        input.opened = true;
        rescan_input(s, input);
        advance(s, input);
        return;
    }
    // SAFETY: the scan's own context outlives the unit; the chunk is opened, its index
    // scanned with the scan's keys into a slot of the chunk's descriptor.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(s.mcxt);
        let key_attnum = config::config(s.base.rs_rd).key_attnum;
        let chunk =
            pg_sys::try_table_open(input.relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if chunk.is_null() {
            dropped_meanwhile(s);
        }
        if cold::is_cold(chunk) {
            let keys = std::slice::from_raw_parts(s.ikeys, s.nikeys as usize);
            input.chunk = chunk;
            input.cold = cold_scan::begin(
                chunk,
                s.base.rs_rd,
                input.ordinal,
                s.base.rs_snapshot,
                keys,
                s.order < 0,
                (s.time_lo, s.time_hi),
                needed_of(s),
                conds_of(s),
            );
            cold_scan::count_filtered(input.cold, &mut s.rows_filtered);
            input.slot =
                pg_sys::MakeSingleTupleTableSlot((*s.base.rs_rd).rd_att, &pg_sys::TTSOpsVirtual);
            input.opened = true;
            pg_sys::MemoryContextSwitchTo(old);
            advance(s, input);
            return;
        }
        let Some(index) = delegate::chunk_index(chunk, pg_sys::AccessShareLock)
            .and_then(|i| delegate::keyed_on(i, key_attnum))
        else {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!(
                    "bidim: chunk {} of table \"{}\" has no (key, time) index",
                    input.ordinal,
                    rel_name(s.base.rs_rd)
                ),
                Some("SET bidim.enable_pruning = off reads the table without it."),
            );
        };
        input.chunk = chunk;
        input.index = index;
        let keep = kept_scans::has_room(s.kept);
        if keep {
            pg_sys::MemoryContextSwitchTo((*s.kept).cxt);
        }
        input.scan = pg_sys::index_beginscan(chunk, index, s.base.rs_snapshot, s.nikeys, 0);
        input.slot =
            pg_sys::MakeSingleTupleTableSlot((*chunk).rd_att, &pg_sys::TTSOpsBufferHeapTuple);
        if keep {
            kept_scans::adopt(
                s.kept,
                input.relid,
                chunk,
                index,
                input.scan,
                input.slot,
                s.nikeys,
            );
        }
        input.opened = true;
        pg_sys::MemoryContextSwitchTo(old);
    }
    rescan_input(s, input);
    advance(s, input);
}

/// Where a tail probe splits the index read of `input`'s chunk, if it does: a thin
/// newest slice of the chunk's measured span first (newest first; the oldest slice
/// when oldest first), then the rest. A read of one key's newest row then checks a few
/// index entries of its leaf page, not every entry of the key on it (b-tree tests
/// each entry of a page it reads in the scan's direction until one fails the keys:
/// `_bt_readpage`). The split is within the scan's own time keys; the two phases
/// together read exactly what one read would.
fn tail_split(s: &BidimScan, input: &MergeInput) -> Option<i64> {
    let span = input.span?;
    if s.tkeys.is_null() || !prune::tails_pay(s.tail.probes, s.tail.misses) {
        return None;
    }
    // SAFETY: tail_ge and tail_lt index ikeys (set with tkeys).
    let range = unsafe {
        (
            (*s.ikeys.add(s.tail_ge as usize)).sk_argument.value() as i64,
            (*s.ikeys.add(s.tail_lt as usize)).sk_argument.value() as i64,
        )
    };
    prune::tail_split(span, s.tail.shift, s.order < 0, range)
}

/// Rescans `input`'s index with the scan's keys, narrowed to the tail phase's slice
/// when a tail probe splits the read.
fn rescan_input(s: &mut BidimScan, input: &mut MergeInput) {
    input.phase = 0;
    let keys = match tail_split(s, input) {
        None => s.ikeys,
        Some(split) => {
            input.phase = 1;
            input.split = split;
            input.tail_empty = true;
            s.tail.probes += 1;
            phase_keys(s, input)
        }
    };
    // SAFETY: the input's open index scan, begun with nikeys keys; keys holds nikeys.
    unsafe { pg_sys::index_rescan(input.scan, keys, s.nikeys, std::ptr::null_mut(), 0) };
}

/// The scan's keys with the time keys of `input`'s tail probe phase: phase 1 from the
/// split on (newest first) or before it (oldest first), phase 2 the other side.
fn phase_keys(s: &mut BidimScan, input: &MergeInput) -> *mut pg_sys::ScanKeyData {
    // SAFETY: tkeys and ikeys hold nikeys keys; tail_ge and tail_lt index them.
    unsafe {
        std::ptr::copy_nonoverlapping(s.ikeys, s.tkeys, s.nikeys as usize);
        let newest_slice = (s.order < 0) == (input.phase == 1);
        let k = if newest_slice { s.tail_ge } else { s.tail_lt };
        let key = &mut *s.tkeys.add(k as usize);
        let v = key.sk_argument.value() as i64;
        let narrowed = if newest_slice {
            v.max(input.split)
        } else {
            v.min(input.split)
        };
        key.sk_argument = pg_sys::Datum::from(narrowed);
    }
    s.tkeys
}

/// The index direction of an ordered scan: backward for newest first.
fn merge_direction(s: &BidimScan) -> pg_sys::ScanDirection::Type {
    if s.order < 0 {
        pg_sys::ScanDirection::BackwardScanDirection
    } else {
        pg_sys::ScanDirection::ForwardScanDirection
    }
}

/// Moves a merge input to its next row (in the scan's direction), reading the row's
/// time; a tail probe whose slice is read out goes on with the rest of the chunk.
fn advance(s: &mut BidimScan, input: &mut MergeInput) {
    let direction = merge_direction(s);
    // SAFETY: the input's index scan fills its own slot; the time column is NOT NULL
    // in every row (routing refuses NULL times).
    unsafe {
        loop {
            input.live = if input.cold.is_null() {
                pg_sys::index_getnext_slot(input.scan, direction, input.slot)
            } else {
                cold_scan::next(input.cold, input.slot)
            };
            if input.live || input.phase != 1 {
                break;
            }
            if input.tail_empty {
                s.tail.misses += 1;
                s.tail.shift = prune::tail_widened(s.tail.shift);
            }
            input.phase = 2;
            let keys = phase_keys(s, input);
            pg_sys::index_rescan(input.scan, keys, s.nikeys, std::ptr::null_mut(), 0);
        }
        if input.live {
            input.tail_empty = false;
            let mut isnull = false;
            let d = pg_sys::slot_getattr(input.slot, s.time_attnum as i32, &mut isnull);
            input.time = d.value() as i64;
        }
    }
}

/// The next row of a merge in `slot`: the earliest (ascending) or latest (descending)
/// row among the inputs, presented as a table row.
fn next_from_merge(
    s: &mut BidimScan,
    inputs: *mut MergeInput,
    n: i32,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: inputs holds n initialized inputs, owned by this reader.
    let inputs = unsafe { std::slice::from_raw_parts_mut(inputs, n as usize) };
    for input in inputs.iter_mut().filter(|i| i.taken) {
        input.taken = false;
        advance(s, input);
    }
    // Open every chunk whose rows may come before the best row of the open ones (the
    // unopened ones are in bound order, so stop at the first that cannot).
    loop {
        let best = inputs
            .iter()
            .filter(|i| i.live)
            .map(|i| i.time)
            .reduce(|a, b| if s.order < 0 { a.max(b) } else { a.min(b) });
        let Some(next) = inputs.iter().position(|i| !i.opened) else {
            break;
        };
        let may_come_first = match best {
            None => true,
            Some(b) if s.order < 0 => inputs[next].bound >= b,
            Some(b) => inputs[next].bound <= b,
        };
        if !may_come_first {
            break;
        }
        let mut input = inputs[next];
        open_input(s, &mut input);
        inputs[next] = input;
    }
    let pick = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.live)
        .reduce(|a, b| {
            let later = b.1.time > a.1.time;
            let earlier = b.1.time < a.1.time;
            if (s.order < 0 && later) || (s.order > 0 && earlier) {
                b
            } else {
                a
            }
        })
        .map(|(k, _)| k);
    let Some(k) = pick else {
        return false;
    };
    // SAFETY: copies the input's row into the caller's slot (which keeps its own pin
    // and tuple header), before the input moves on.
    unsafe { pg_sys::ExecCopySlot(slot, inputs[k].slot) };
    if inputs[k].cold.is_null() {
        fix_slot(s.base.rs_rd, inputs[k].ordinal, slot);
    } else {
        // SAFETY: the cold row's slot carries its facade TID.
        unsafe { present_as(s.base.rs_rd, (*inputs[k].slot).tts_tid, slot) };
    }
    inputs[k].taken = true;
    true
}

fn end_merge_reader(inputs: *mut MergeInput, n: i32, kept: *mut KeptScans) {
    // SAFETY: every opened input is closed once here (or given back, if kept).
    unsafe {
        for i in std::slice::from_raw_parts(inputs, n as usize)
            .iter()
            .filter(|i| i.opened)
        {
            if i.cold.is_null() && kept_scans::give_back(kept, i.scan) {
                continue;
            }
            if i.cold.is_null() {
                pg_sys::index_endscan(i.scan);
            } else {
                cold_scan::end(i.cold);
            }
            pg_sys::ExecDropSingleTupleTableSlot(i.slot);
            release_chunk(i.chunk, i.index);
        }
        // (the array is the scan's merge buffer, kept for the next unit)
    }
}

/// Gives the row in `slot` (copied from a cold chunk's scan) the facade TID `tid`.
///
/// # Safety
/// `slot` must hold a row of table `rel`.
unsafe fn present_as(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    slot: *mut pg_sys::TupleTableSlot,
) {
    // SAFETY: per the contract; a heap slot's tuple header is the slot's own copy.
    unsafe {
        (*slot).tts_tid = tid;
        (*slot).tts_tableOid = rel_oid(rel);
        if delegate::is_heap_slot(slot) {
            let h = slot as *mut pg_sys::HeapTupleTableSlot;
            if !(*h).tuple.is_null() {
                (*(*h).tuple).t_self = tid;
                (*(*h).tuple).t_tableOid = rel_oid(rel);
            }
        }
    }
}

/// The error for a chunk dropped (by retention) after the scan listed it.
fn dropped_meanwhile(s: &BidimScan) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "a time partition of bidim table \"{}\" was dropped while this query was reading it",
            rel_name(s.base.rs_rd)
        ),
        Some("bidim.drop_before removed it after the query started; run the query again."),
    )
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_end(scan: pg_sys::TableScanDesc) {
    scan_finish(scan)
}

/// Ends a scan begun by [`begin_scan_of`] and frees it.
/// pfree of one of the scan's palloc'd arrays, if it has one.
fn free_if_set<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: the scan's arrays are palloc'd and freed once, here.
        unsafe { pg_sys::pfree(p as *mut std::ffi::c_void) };
    }
}

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
        free_if_set(s.ikeys);
        if !s.strategy.is_null() {
            pg_sys::FreeAccessStrategy(s.strategy);
        }
        free_if_set(s.starts);
        free_if_set(s.units);
        free_if_set(s.spans);
        free_if_set(s.measured);
        free_if_set(s.tkeys);
        free_if_set(s.conds);
        free_if_set(s.needed);
        free_if_set(s.hkeys);
        free_if_set(s.merge_buf);
        pg_sys::pfree(scan as *mut std::ffi::c_void);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_rescan(
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
    s.cur_unit = -1;
}

/// Index of the next chunk this participant scans.
pub(super) fn next_chunk(s: &mut BidimScan) -> i32 {
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
pub(super) unsafe extern "C-unwind" fn bidim_scan_getnextslot(
    scan: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    scan_next(scan, direction, slot)
}

/// Starts reading this participant's next chunk; false when none is left.
fn open_next_chunk(s: &mut BidimScan) -> bool {
    let next = if s.cur >= s.nchunks {
        s.nchunks
    } else {
        next_chunk(s)
    };
    if next >= s.nchunks {
        s.cur = s.nchunks;
        return false;
    }
    start_chunk_scan(s, next);
    true
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
    if s.order != 0 {
        return ordered_next(s, slot);
    }
    loop {
        let found = match s.reader {
            Reader::Heap(hs) => next_from_heap(s, hs, direction, slot),
            Reader::Index { scan, .. } => next_from_index(s, scan, slot),
            Reader::Cold(cs) => cold_scan::next(cs, slot),
            // Only ordered scans merge (ordered_next).
            Reader::Merge { inputs, n } => next_from_merge(s, inputs, n, slot),
            Reader::None => {
                if !open_next_chunk(s) {
                    // SAFETY: clearing the caller's slot.
                    unsafe { pg_sys::ExecClearTuple(slot) };
                    return false;
                }
                continue;
            }
        };
        if found {
            return true;
        }
        end_chunk_scan(s);
    }
}

/// The chunks a scan reads: (ordinal, relation oid) each.
pub(crate) fn chunk_list(scan: pg_sys::TableScanDesc) -> Vec<(u32, pg_sys::Oid)> {
    // SAFETY: scan is a BidimScan; its chunk array holds nchunks entries.
    unsafe {
        let s = &*(scan as *mut BidimScan);
        std::slice::from_raw_parts(s.chunks, s.nchunks.max(0) as usize).to_vec()
    }
}

/// Makes a scan pass over its cold chunks (their rows come another way).
pub(crate) fn skip_cold(scan: pg_sys::TableScanDesc) {
    // SAFETY: scan is a BidimScan.
    unsafe { (*(scan as *mut BidimScan)).skip_cold = true };
}

/// Makes a scan pass over the chunks whose blocks its time window restricts (their
/// block ranges come another way: [`restricted`]).
pub(crate) fn skip_mapped(scan: pg_sys::TableScanDesc) {
    // SAFETY: scan is a BidimScan.
    unsafe { (*(scan as *mut BidimScan)).skip_mapped = true };
}

/// Whether chunk `idx` of the scan ([`chunk_list`]'s order) has its blocks restricted
/// by its block-range time map ([`restrict_blocks`]).
pub(crate) fn restricted(scan: pg_sys::TableScanDesc, idx: usize) -> bool {
    // SAFETY: scan is a BidimScan; chunk_runs, when set, has one entry per chunk.
    unsafe {
        let s = &*(scan as *mut BidimScan);
        !s.chunk_runs.is_null() && idx < s.nchunks as usize && (*s.chunk_runs.add(idx)).count >= 0
    }
}

/// What [`scan_next_block`] found.
pub(crate) enum Block {
    /// A row of a hot or sealed chunk, in the slot.
    Row,
    /// A decoded batch of a cold chunk ([`cold_scan::batch_values`]).
    Batch(*mut ColdScan),
    End,
}

/// Where [`heap_rows`] put a hot chunk's rows.
pub(crate) struct RowBuffer {
    /// The columns copied (0-based), each passed by value.
    pub atts: *const usize,
    pub natts: usize,
    /// Column-major arrays: column `i`'s row `r` at `i * stride + r`.
    pub values: *mut pg_sys::Datum,
    pub nulls: *mut bool,
    pub stride: usize,
}

/// Reads up to `max - start` rows of the current chunk's heap reader into rows
/// `start..` of `buf`, each deformed in `slot` up to column `last` (the copied
/// columns among them): the number read, or `None` when the current reader is not a
/// heap reader (take [`scan_next_block`]). The rows of a block run are read under one
/// error boundary, not one per row; when the chunk has no rows left, its reader ends
/// and 0 may be returned ([`scan_next_block`] opens the next chunk). Rows carry no
/// facade TID (BidimAgg reads none).
pub(crate) fn heap_rows(
    scan: pg_sys::TableScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    last: i32,
    buf: &RowBuffer,
    start: usize,
    max: usize,
) -> Option<usize> {
    // SAFETY: scan was created by bidim_scan_begin (an unordered scan).
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    let Reader::Heap(hs) = s.reader else {
        return None;
    };
    let getnext = delegate::heap()
        .scan_getnextslot
        .expect("heap scan_getnextslot");
    let mut n = 0usize;
    loop {
        let at = start + n;
        // SAFETY: heap's callbacks on its own scan and a slot of the chunk's row type;
        // the closure holds nothing that needs dropping, so a PostgreSQL error that
        // leaves it by longjmp skips no destructor (the boundary turns it into a Rust
        // panic); the buffer has `stride` rows a column for every copied column and
        // at < max <= stride.
        let (got, ended) = unsafe {
            pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| {
                let atts = std::slice::from_raw_parts(buf.atts, buf.natts);
                let mut k = 0usize;
                while at + k < max {
                    if !getnext(hs, pg_sys::ScanDirection::ForwardScanDirection, slot) {
                        return (k, true);
                    }
                    if i32::from((*slot).tts_nvalid) < last {
                        let ops = (*slot).tts_ops;
                        if let Some(deform) = (*ops).getsomeattrs {
                            deform(slot, last);
                        }
                        if i32::from((*slot).tts_nvalid) < last {
                            // columns added after the row was written: their missing
                            // values (PostgreSQL's own path)
                            pg_sys::slot_getsomeattrs_int(slot, last);
                        }
                    }
                    for &i in atts {
                        *buf.values.add(i * buf.stride + at + k) = *(*slot).tts_values.add(i);
                        *buf.nulls.add(i * buf.stride + at + k) = *(*slot).tts_isnull.add(i);
                    }
                    k += 1;
                }
                (k, false)
            })
        };
        n += got;
        if !ended {
            return Some(n);
        }
        if !restart_at_next_run(s, hs) {
            // the chunk is done
            end_chunk_scan(s);
            return Some(n);
        }
    }
}

/// [`scan_next`] for a reader that takes cold chunks a batch at a time (BidimAgg): the
/// next row of a hot chunk in `slot`, or the next batch of a cold chunk, decoded.
pub(crate) fn scan_next_block(
    scan: pg_sys::TableScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
) -> Block {
    // SAFETY: scan was created by bidim_scan_begin (an unordered scan).
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    let direction = pg_sys::ScanDirection::ForwardScanDirection;
    loop {
        let found = match s.reader {
            Reader::Heap(hs) => next_from_heap(s, hs, direction, slot),
            Reader::Index { scan, .. } => next_from_index(s, scan, slot),
            Reader::Cold(cs) => {
                if cold_scan::next_batch(cs, |_, _| ()).is_some() {
                    cold_scan::decode_batch(cs, true);
                    return Block::Batch(cs);
                }
                false
            }
            Reader::Merge { inputs, n } => next_from_merge(s, inputs, n, slot),
            Reader::None => {
                if !open_next_chunk(s) {
                    return Block::End;
                }
                continue;
            }
        };
        if found {
            return Block::Row;
        }
        end_chunk_scan(s);
    }
}

/// [`scan_next`] of an ordered scan: unit after unit, each a merge of its chunks.
fn ordered_next(s: &mut BidimScan, slot: *mut pg_sys::TupleTableSlot) -> bool {
    loop {
        match s.reader {
            Reader::Merge { inputs, n } => {
                if next_from_merge(s, inputs, n, slot) {
                    return true;
                }
                end_chunk_scan(s);
            }
            _ => {
                let u = s.cur_unit + 1;
                if u >= s.nunits {
                    s.cur_unit = s.nunits;
                    // SAFETY: clearing the caller's slot.
                    unsafe { pg_sys::ExecClearTuple(slot) };
                    return false;
                }
                start_unit(s, u);
            }
        }
    }
}

// Parallel scans: chunk-granular work distribution.

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_parallelscan_estimate(
    _rel: pg_sys::Relation,
) -> pg_sys::Size {
    std::mem::size_of::<BidimParallelScan>()
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_parallelscan_initialize(
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
pub(super) unsafe extern "C-unwind" fn bidim_parallelscan_reinitialize(
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

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_analyze_next_block(
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
    if idx != s.cur || matches!(s.reader, Reader::None) {
        start_chunk_scan(s, idx);
    }
    match s.reader {
        Reader::Heap(hs) => heap_call!(scan_analyze_next_block(
            hs,
            blockno - starts[idx as usize],
            bstrategy
        )),
        // A cold chunk's blocks stand for its batches, spread evenly over them (every
        // batch belongs to one block; all blocks together are every batch).
        Reader::Cold(cs) => cold_scan::sample_block(
            cs,
            directory_snapshot(s.base.rs_snapshot),
            blockno - starts[idx as usize],
        ),
        _ => false,
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bidim_scan_analyze_next_tuple(
    scan: pg_sys::TableScanDesc,
    oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    deadrows: *mut f64,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: scan was created by bidim_scan_begin.
    let s = unsafe { &mut *(scan as *mut BidimScan) };
    // ANALYZE scans have no index keys: their chunks are read by heap readers, cold
    // ones batch by batch (every row of a sampled batch is live to the sample).
    let hs = match s.reader {
        Reader::Heap(hs) => hs,
        Reader::Cold(cs) => {
            let got = cold_scan::next(cs, slot);
            if got {
                // SAFETY: ANALYZE's counters.
                unsafe { *liverows += 1.0 };
            }
            return got;
        }
        _ => return false,
    };
    let got = heap_call!(scan_analyze_next_tuple(
        hs,
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

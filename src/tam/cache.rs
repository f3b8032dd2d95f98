//! The per-backend cache of what the row path needs about a table (its resolved
//! configuration, key ranges, the hot chunk of each cell, chunk cells by ordinal), and
//! the invalidation that keeps it right: a relcache invalidation of the table (sent
//! by whoever changes its chunks, ranges or settings) and every (sub)transaction abort
//! drop it.

use super::cell::Cell;
use super::config::TableConfig;
use super::keyrange::{self, Key};
use super::plan_directory::PlanDirectory;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The hot chunk this backend routes a cell's rows to.
#[derive(Clone, Debug)]
pub struct HotChunk {
    pub ordinal: u32,
    pub relid: pg_sys::Oid,
    /// Rows this backend inserted since the last size check.
    pub since_check: u64,
    /// Rows this backend inserted into the chunk in all.
    pub mine: u64,
}

/// Partition start and key range bounds of a chunk (what an UPDATE checks to keep a
/// row in its chunk).
#[derive(Clone, Debug)]
pub struct ChunkCell {
    pub time_lo: i64,
    pub key_lo: Option<Key>,
    pub key_hi: Option<Key>,
    /// The chunk's measured time bounds (inclusive), if any.
    pub span: Option<(i64, i64)>,
    /// Whether the chunk has a block-range time map (no row version may be added).
    pub mapped: bool,
    /// The local transaction that read this (bounds are read with the latest snapshot
    /// once per transaction that holds the chunk locked, so they cannot change under it).
    pub read_in: u32,
}

#[derive(Default)]
struct TableCache {
    config: Option<TableConfig>,
    /// (range_id, partition start) -> hot chunk.
    cells: HashMap<(i32, i64), HotChunk>,
    /// Active key ranges, sorted by lower bound.
    ranges: Option<Vec<keyrange::Range>>,
    /// ordinal -> the cell the chunk was made for.
    chunk_cells: HashMap<u32, ChunkCell>,
    /// The directory as last committed, for the planner's estimates.
    planning: Option<Rc<PlanDirectory>>,
    /// The table's rollups, as writers need them.
    rollups: Option<Rc<Vec<super::rollup::Guard>>>,
}

thread_local! {
    static CACHE: RefCell<HashMap<pg_sys::Oid, TableCache>> = RefCell::new(HashMap::new());
    /// Counts invalidations (of any table), so a reader can tell one arrived while it
    /// read.
    static GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The invalidation count: compare it before and after a read to know whether what was
/// read may already be stale.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

fn with_table<R>(facade: pg_sys::Oid, f: impl FnOnce(&mut TableCache) -> R) -> R {
    CACHE.with(|c| f(c.borrow_mut().entry(facade).or_default()))
}

/// The cached configuration of `facade`.
pub fn config(facade: pg_sys::Oid) -> Option<TableConfig> {
    CACHE.with(|c| c.borrow().get(&facade).and_then(|t| t.config.clone()))
}

pub fn set_config(facade: pg_sys::Oid, cfg: &TableConfig) {
    with_table(facade, |t| t.config = Some(cfg.clone()));
}

/// Runs `f` on the cached key ranges of `facade`; gives `f` back on a miss. On the
/// per-row path: one lookup (`f` must not touch the cache).
pub fn with_ranges<R, F: FnOnce(&[keyrange::Range]) -> R>(
    facade: pg_sys::Oid,
    f: F,
) -> Result<R, F> {
    CACHE.with(|c| {
        let c = c.borrow();
        match c.get(&facade).and_then(|t| t.ranges.as_deref()) {
            Some(ranges) => Ok(f(ranges)),
            None => Err(f),
        }
    })
}

pub fn set_ranges(facade: pg_sys::Oid, ranges: Vec<keyrange::Range>) {
    with_table(facade, |t| t.ranges = Some(ranges));
}

/// The directory rows the planner estimates from, if cached.
pub fn planning_chunks(facade: pg_sys::Oid) -> Option<Rc<PlanDirectory>> {
    CACHE.with(|c| c.borrow().get(&facade).and_then(|t| t.planning.clone()))
}

pub fn set_planning_chunks(facade: pg_sys::Oid, rows: Rc<PlanDirectory>) {
    with_table(facade, |t| t.planning = Some(rows));
}

/// The cached rollups of `facade`.
pub fn rollups(facade: pg_sys::Oid) -> Option<Rc<Vec<super::rollup::Guard>>> {
    CACHE.with(|c| c.borrow().get(&facade).and_then(|t| t.rollups.clone()))
}

pub fn set_rollups(facade: pg_sys::Oid, g: Rc<Vec<super::rollup::Guard>>) {
    with_table(facade, |t| t.rollups = Some(g));
}

/// The cached hot chunk of `cell`.
pub fn hot(facade: pg_sys::Oid, cell: &Cell) -> Option<HotChunk> {
    CACHE.with(|c| {
        c.borrow()
            .get(&facade)
            .and_then(|t| t.cells.get(&cell.key()).cloned())
    })
}

/// Remembers `hot` as the hot chunk of `cell`.
pub fn remember(facade: pg_sys::Oid, cell: &Cell, hot: &HotChunk) {
    with_table(facade, |t| {
        t.cells.insert(cell.key(), hot.clone());
    });
}

/// The cached cell of chunk `ordinal`.
pub fn chunk_cell(facade: pg_sys::Oid, ordinal: u32) -> Option<ChunkCell> {
    CACHE.with(|c| {
        c.borrow()
            .get(&facade)
            .and_then(|t| t.chunk_cells.get(&ordinal).cloned())
    })
}

pub fn set_chunk_cell(facade: pg_sys::Oid, ordinal: u32, cell: &ChunkCell) {
    with_table(facade, |t| {
        t.chunk_cells.insert(ordinal, cell.clone());
    });
}

/// Forget everything cached about `facade` (InvalidOid: about every table).
pub fn invalidate(facade: pg_sys::Oid) {
    GENERATION.with(|g| g.set(g.get() + 1));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if facade == pg_sys::InvalidOid {
            c.clear();
        } else {
            c.remove(&facade);
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    invalidate(relid);
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    {
        invalidate(pg_sys::InvalidOid);
    }
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_COMMIT
        || event == pg_sys::XactEvent::XACT_EVENT_PREPARE
    {
        super::chunk_store::transaction_ended();
        super::delegate::transaction_ended();
        super::rollup::transaction_ended();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        invalidate(pg_sys::InvalidOid);
        super::rollup::transaction_ended();
    }
}

/// Queues a relcache invalidation of `facade` (other backends drop their routing
/// caches for it when we commit), if the table exists (it does not yet while
/// CREATE TABLE runs, nor any more while its drop is cleaned up).
pub fn invalidate_relcache(facade: pg_sys::Oid) {
    // SAFETY: syscache probe, then an invalidation of an existing relation.
    unsafe {
        if pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(facade),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        ) {
            pg_sys::CacheInvalidateRelcacheByRelid(facade);
        }
    }
}

/// Registers the cache's invalidation callbacks; called once per process from `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: registering plain function pointers with PostgreSQL, once per process.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// Adds `n` inserted rows to the cell's counters; when a size check is due, returns
/// how many rows this backend has put into the chunk in all.
pub fn count_inserted(facade: pg_sys::Oid, cell: &Cell, n: u64, every: u64) -> Option<u64> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let h = c
            .get_mut(&facade)
            .and_then(|f| f.cells.get_mut(&cell.key()))?;
        h.since_check += n;
        h.mine += n;
        if h.since_check >= every {
            h.since_check = 0;
            Some(h.mine)
        } else {
            None
        }
    })
}

/// Forget the cached hot chunk of a cell (the next row looks it up again).
pub fn forget_cell(facade: pg_sys::Oid, cell: &Cell) {
    CACHE.with(|c| {
        if let Some(f) = c.borrow_mut().get_mut(&facade) {
            f.cells.remove(&cell.key());
        }
    });
}

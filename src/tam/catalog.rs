//! The chunk directory and per-table configuration: SQL objects, reads, chunk creation,
//! and the per-backend routing cache.
//!
//! * `bidim.table_config`: one row per table that `bidim.configure` touched (no row
//!   means defaults). Dumped by pg_dump (`pg_extension_config_dump`); `rel` is a
//!   `regclass`, so a restore re-resolves it by name.
//! * `bidim.chunk`: one row per chunk. A chunk exists exactly when its row is visible
//!   (MVCC, WAL-logged heap). Chunks are heap relations `bidim_internal.c<table oid>_<n>`
//!   owned by the bootstrap superuser, members of the extension (so pg_dump skips
//!   them: it dumps the rows through the table) and internally dependent on the table
//!   (dropped with it, refused on their own).
//!
//! Visibility rule (why it is safe to read the directory with the scan's snapshot): a
//! row visible to snapshot S was inserted by a transaction that saw its chunk's
//! directory row, so that row committed before the inserter did, hence before S.

use super::cell;
use super::directory_io::{self, relation_oid};
use super::keyrange::{self, Key, KeyKind};
use super::locks::Lock;
use super::privilege::as_extension_owner;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

pgrx::extension_sql_file!("../../sql/tam_catalog.sql", name = "tam_catalog", bootstrap);

/// Settings of one bidim table, resolved to attribute numbers.
#[derive(Clone, Debug)]
pub struct TableConfig {
    pub key_attnum: i16,
    pub time_attnum: i16,
    pub hot_chunk_rows: i64,
    /// Partition width in microseconds.
    pub width: i64,
    /// How the key column compares (routing to key ranges).
    pub key_kind: KeyKind,
}

/// Default settings, as SQL_API.md gives them.
pub const DEFAULT_HOT_CHUNK_ROWS: i64 = 1_000_000;
pub const DEFAULT_PARTITION_DAYS: i32 = 1;

/// One directory row.
#[derive(Clone, Debug)]
pub struct ChunkRow {
    pub chunk_id: u32,
    pub chunk_rel: pg_sys::Oid,
    pub range_id: i32,
    pub time_lo: i64,
    pub time_hi: i64,
    pub state_hot: bool,
    /// Bounds of the key range the chunk was made for (text form; `None` = unbounded).
    pub key_lo: Option<String>,
    pub key_hi: Option<String>,
}

impl ChunkRow {
    /// Whether the chunk's key range may hold `k`.
    pub fn may_hold(&self, kind: KeyKind, k: &Key) -> bool {
        let lo = self.key_lo.as_deref().and_then(|s| Key::parse(kind, s));
        let hi = self.key_hi.as_deref().and_then(|s| Key::parse(kind, s));
        keyrange::contains(lo.as_ref(), hi.as_ref(), k)
    }
}

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

#[derive(Default)]
struct FacadeCache {
    config: Option<TableConfig>,
    /// (range_id, partition start) -> hot chunk.
    cells: HashMap<(i32, i64), HotChunk>,
    /// ordinal -> (chunk relation, range_id, partition start).
    chunks: HashMap<u32, (pg_sys::Oid, i32, i64)>,
    /// Active key ranges, sorted by lower bound.
    ranges: Option<Vec<keyrange::Range>>,
    /// ordinal -> the key range bounds the chunk was made for.
    chunk_keys: HashMap<u32, (Option<Key>, Option<Key>)>,
}

thread_local! {
    static CACHE: RefCell<HashMap<pg_sys::Oid, FacadeCache>> = RefCell::new(HashMap::new());
}

/// Forget everything cached about `facade` (InvalidOid: about every table).
pub fn invalidate(facade: pg_sys::Oid) {
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
        CHUNKS_THIS_XACT.with(|n| n.set(0));
    }
}

thread_local! {
    /// Chunks this backend created in its current transaction (each holds its locks
    /// until the transaction ends).
    static CHUNKS_THIS_XACT: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// `bidim.max_chunks_per_transaction`.
pub static MAX_CHUNKS_PER_XACT: pgrx::guc::GucSetting<i32> = pgrx::guc::GucSetting::<i32>::new(500);

/// Defines the access method's GUCs of this module.
pub fn define_gucs() {
    pgrx::guc::GucRegistry::define_int_guc(
        c"bidim.max_chunks_per_transaction",
        c"Most chunks one transaction may create in bidim tables.",
        c"Every chunk a transaction creates holds about five locks until it ends; past this many the transaction fails with a clear error instead of exhausting the shared lock table.",
        &MAX_CHUNKS_PER_XACT,
        1,
        1_000_000,
        pgrx::guc::GucContext::Userset,
        pgrx::guc::GucFlags::default(),
    );
}

/// Counts one more chunk for this transaction, or refuses past the limit.
fn count_new_chunk(facade: pg_sys::Oid) {
    let limit = MAX_CHUNKS_PER_XACT.get();
    let n = CHUNKS_THIS_XACT.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    if n > limit {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "this transaction would create more than {limit} chunks (bidim table \"{}\")",
                super::api::qualified_name(facade)
            ),
            Some("Each new chunk holds its locks until the transaction ends. Write fewer time partitions per transaction, raise partition_interval or hot_chunk_rows with bidim.configure, or raise bidim.max_chunks_per_transaction (and max_locks_per_transaction)."),
        );
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

/// Name of chunk `ordinal` of table `facade` inside schema `bidim_internal`.
pub fn chunk_name(facade: pg_sys::Oid, ordinal: u32) -> String {
    format!("c{}_{}", facade.to_u32(), ordinal)
}

/// The chunk relation of `ordinal`, if it exists (visible to this backend's catalog view).
pub fn chunk_relid(facade: pg_sys::Oid, ordinal: u32) -> Option<pg_sys::Oid> {
    let oid = relation_oid("bidim_internal", &chunk_name(facade, ordinal));
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Reads the directory rows of `facade` under `snapshot`, ordered by chunk id.
///
/// # Safety
/// `snapshot` must be a valid snapshot for the duration of the call.
pub unsafe fn read_chunks(facade: pg_sys::Oid, snapshot: pg_sys::Snapshot) -> Vec<ChunkRow> {
    let mut out = Vec::new();
    // SAFETY: forwarded.
    unsafe {
        directory_io::scan("chunk", "chunk_pkey", facade, snapshot, |r| {
            out.push(ChunkRow {
                chunk_id: r.i32("chunk_id").unwrap_or(0) as u32,
                chunk_rel: r.oid("chunk_rel").unwrap_or(pg_sys::InvalidOid),
                range_id: r.i32("range_id").unwrap_or(0),
                time_lo: r.i64("time_lo").unwrap_or(0),
                time_hi: r.i64("time_hi").unwrap_or(0),
                state_hot: r.text("state").as_deref() == Some("hot"),
                key_lo: r.text("key_lo"),
                key_hi: r.text("key_hi"),
            })
        });
    }
    out.sort_by_key(|c| c.chunk_id);
    out
}

/// The snapshot insert routing reads the directory with: the transaction snapshot with
/// the current command id, so it sees chunks this transaction created a moment ago.
fn routing_snapshot() -> pg_sys::Snapshot {
    // SAFETY: inserts never run in parallel mode, where this would be refused.
    unsafe { pg_sys::GetTransactionSnapshot() }
}

/// Type OIDs a key column may have.
pub fn is_key_type(t: pg_sys::Oid) -> bool {
    [
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::TEXTOID,
        pg_sys::VARCHAROID,
    ]
    .contains(&t)
}

pub fn is_time_type(t: pg_sys::Oid) -> bool {
    t == pg_sys::TIMESTAMPTZOID || t == pg_sys::TIMESTAMPOID
}

/// Live columns of a relation: (attnum, name, type).
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn columns(rel: pg_sys::Relation) -> Vec<(i16, String, pg_sys::Oid)> {
    // SAFETY: reading the tuple descriptor of an open relation.
    unsafe {
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        attrs
            .iter()
            .filter(|a| !a.attisdropped)
            .map(|a| {
                let name = std::ffi::CStr::from_ptr(a.attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                (a.attnum, name, a.atttypid)
            })
            .collect()
    }
}

/// Default key and time columns of a table, or an ERROR with a hint.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn default_columns(rel: pg_sys::Relation) -> (i16, i16) {
    // SAFETY: forwarded.
    let cols = unsafe { columns(rel) };
    let key = cols.iter().find(|c| is_key_type(c.2)).map(|c| c.0);
    let time = cols.iter().find(|c| is_time_type(c.2)).map(|c| c.0);
    match (key, time) {
        (Some(k), Some(t)) => (k, t),
        (None, _) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            "a bidim table needs a key column of type smallint, integer, bigint, text or varchar",
            Some("Add such a column (for example series_id bigint), or create the table with another access method."),
        ),
        (_, None) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            "a bidim table needs a time column of type timestamptz or timestamp",
            Some("Add such a column (for example ts timestamptz), or create the table with another access method."),
        ),
    }
}

/// Reads the configuration row of `facade`, if any: (key column, time column,
/// hot_chunk_rows, partition width in microseconds).
fn read_config_row(facade: pg_sys::Oid) -> Option<(String, String, i64, i64)> {
    stored_settings(facade).map(|s| (s.key_column, s.time_column, s.hot_chunk_rows, s.width))
}

/// The configuration of an open bidim table (cached per backend).
///
/// # Safety
/// `rel` must be an open bidim table.
pub unsafe fn config(rel: pg_sys::Relation) -> TableConfig {
    // SAFETY: reading the oid of an open relation.
    let facade = unsafe { (*rel).rd_id };
    if let Some(c) = CACHE.with(|c| c.borrow().get(&facade).and_then(|f| f.config.clone())) {
        return c;
    }
    // SAFETY: forwarded.
    let cols = unsafe { columns(rel) };
    let kind_of = |attnum: i16| {
        let t = cols.iter().find(|c| c.0 == attnum).map(|c| c.2);
        if matches!(t, Some(t) if t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID) {
            KeyKind::Text
        } else {
            KeyKind::Int
        }
    };
    let cfg = match read_config_row(facade) {
        None => {
            // SAFETY: forwarded.
            let (k, t) = unsafe { default_columns(rel) };
            TableConfig {
                key_attnum: k,
                time_attnum: t,
                hot_chunk_rows: DEFAULT_HOT_CHUNK_ROWS,
                width: DEFAULT_PARTITION_DAYS as i64 * cell::USECS_PER_DAY,
                key_kind: kind_of(k),
            }
        }
        Some((key, time, rows, width)) => {
            let find = |n: &str, what: &str| {
                cols.iter()
                    .find(|c| c.1 == n)
                    .map(|c| c.0)
                    .unwrap_or_else(|| {
                        error!("bidim: the configured {what} column \"{n}\" no longer exists")
                    })
            };
            let key_attnum = find(&key, "key");
            TableConfig {
                key_attnum,
                time_attnum: find(&time, "time"),
                hot_chunk_rows: rows,
                width,
                key_kind: kind_of(key_attnum),
            }
        }
    };
    CACHE.with(|c| {
        c.borrow_mut().entry(facade).or_default().config = Some(cfg.clone());
    });
    cfg
}

/// Reads the active key ranges of `facade` (no rows: the single range 0), sorted.
fn load_ranges(facade: pg_sys::Oid, kind: KeyKind) -> Vec<keyrange::Range> {
    let mut rows = Vec::new();
    // SAFETY: the routing snapshot is used at once.
    unsafe {
        directory_io::scan(
            "key_range",
            "key_range_pkey",
            facade,
            routing_snapshot(),
            |r| {
                if r.text("state").as_deref() == Some("active") {
                    rows.push((
                        r.i32("range_id").unwrap_or(0),
                        r.text("key_lo"),
                        r.text("key_hi"),
                    ));
                }
            },
        )
    };
    let mut ranges: Vec<keyrange::Range> = rows
        .into_iter()
        .map(|(id, lo, hi)| keyrange::Range {
            id,
            lo: lo.and_then(|s| Key::parse(kind, &s)),
            hi: hi.and_then(|s| Key::parse(kind, &s)),
        })
        .collect();
    keyrange::sort(&mut ranges);
    if ranges.is_empty() || !keyrange::tiles(&ranges) {
        if !ranges.is_empty() {
            warning!(
                "bidim: the key ranges of table {} do not tile the key space; routing every row to range 0",
                facade.to_u32()
            );
        }
        ranges = vec![keyrange::whole()];
    }
    ranges
}

/// Runs `f` on the active key ranges of `facade` (cached per backend).
pub fn with_ranges<R>(
    facade: pg_sys::Oid,
    kind: KeyKind,
    f: impl FnOnce(&[keyrange::Range]) -> R,
) -> R {
    // On the per-row path: one cache lookup when the ranges are cached (`f` must not
    // touch the cache).
    let mut f = Some(f);
    let hit = CACHE.with(|c| {
        let c = c.borrow();
        let ranges = c.get(&facade).and_then(|t| t.ranges.as_deref())?;
        f.take().map(|f| f(ranges))
    });
    if let Some(r) = hit {
        return r;
    }
    let ranges = load_ranges(facade, kind);
    let r = f.take().map(|f| f(&ranges));
    CACHE.with(|c| c.borrow_mut().entry(facade).or_default().ranges = Some(ranges));
    r.expect("the routing closure runs once")
}

/// The hot chunk for cell (`range_id`, partition [`time_lo`, `time_hi`)) of `facade`,
/// creating it if the cell has none. `None` when the range has been split since this
/// backend cached the ranges: the caller routes the row again.
pub fn hot_chunk(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    range_id: i32,
    time_lo: i64,
    time_hi: i64,
) -> Option<HotChunk> {
    if let Some(h) = CACHE.with(|c| {
        c.borrow()
            .get(&facade)
            .and_then(|f| f.cells.get(&(range_id, time_lo)).cloned())
    }) {
        return Some(h);
    }
    // SAFETY: the routing snapshot is valid until the next snapshot call; read_chunks
    // uses it at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let found = rows
        .iter()
        .rev()
        .find(|r| r.state_hot && r.range_id == range_id && r.time_lo == time_lo)
        .map(|r| HotChunk {
            ordinal: r.chunk_id,
            relid: r.chunk_rel,
            since_check: 0,
            mine: 0,
        });
    let hot = match found {
        Some(h) => h,
        None => {
            // Before making a chunk, make sure the range still exists (a split another
            // session committed shows up here at the latest).
            let fresh = load_ranges(facade, cfg.key_kind);
            let Some(range) = fresh.iter().find(|r| r.id == range_id).cloned() else {
                CACHE.with(|c| c.borrow_mut().entry(facade).or_default().ranges = Some(fresh));
                return None;
            };
            create_chunk(facade, cfg, &range, time_lo, time_hi)
        }
    };
    remember(facade, range_id, time_lo, &hot);
    Some(hot)
}

fn remember(facade: pg_sys::Oid, range_id: i32, time_lo: i64, hot: &HotChunk) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let f = c.entry(facade).or_default();
        f.cells.insert((range_id, time_lo), hot.clone());
        f.chunks.insert(hot.ordinal, (hot.relid, range_id, time_lo));
    });
}

/// Adds `n` inserted rows to the cell's counters; when a size check is due, returns
/// how many rows this backend has put into the chunk in all.
pub fn count_inserted(
    facade: pg_sys::Oid,
    range_id: i32,
    time_lo: i64,
    n: u64,
    every: u64,
) -> Option<u64> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let h = c
            .get_mut(&facade)
            .and_then(|f| f.cells.get_mut(&(range_id, time_lo)))?;
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

/// Partition start and key range bounds of chunk `ordinal`, from the cache or the
/// directory.
pub fn chunk_cell(
    facade: pg_sys::Oid,
    kind: KeyKind,
    ordinal: u32,
) -> Option<(i64, Option<Key>, Option<Key>)> {
    let hit = CACHE.with(|c| {
        let c = c.borrow();
        let f = c.get(&facade)?;
        let (_, _, t) = f.chunks.get(&ordinal).copied()?;
        let (lo, hi) = f.chunk_keys.get(&ordinal)?.clone();
        Some((t, lo, hi))
    });
    if hit.is_some() {
        return hit;
    }
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let row = rows.into_iter().find(|r| r.chunk_id == ordinal)?;
    let lo = row.key_lo.as_deref().and_then(|s| Key::parse(kind, s));
    let hi = row.key_hi.as_deref().and_then(|s| Key::parse(kind, s));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let f = c.entry(facade).or_default();
        f.chunks
            .insert(ordinal, (row.chunk_rel, row.range_id, row.time_lo));
        f.chunk_keys.insert(ordinal, (lo.clone(), hi.clone()));
    });
    Some((row.time_lo, lo, hi))
}

/// `ident` quoted as an SQL identifier where needed.
pub fn quote_ident(ident: &str) -> String {
    let c = std::ffi::CString::new(ident).expect("identifiers hold no NUL");
    // SAFETY: quote_identifier returns its argument or a palloc'd quoted copy, both
    // NUL-terminated.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr()))
            .to_string_lossy()
            .into_owned()
    }
}

/// Column definitions mirroring the facade's physical layout, dropped columns
/// included (as placeholders of the same length, alignment and by-value-ness, dropped
/// right after), so that a facade heap tuple is a valid tuple of the chunk and back.
/// Types are printed by `format_type` under the pinned search path, so every type
/// outside `pg_catalog` comes out schema-qualified.
fn mirror_columns(facade: pg_sys::Oid) -> MirroredColumns {
    let rows = Spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attnum, pg_catalog.quote_ident(a.attname),
                    CASE WHEN a.attisdropped THEN
                      -- a placeholder of the dropped column's physical shape
                      coalesce((SELECT pg_catalog.format_type(t.oid, NULL) FROM pg_catalog.pg_type t
                                WHERE t.typlen OPERATOR(pg_catalog.=) a.attlen
                                  AND t.typalign OPERATOR(pg_catalog.=) a.attalign
                                  AND t.typbyval OPERATOR(pg_catalog.=) a.attbyval
                                  AND t.typtype OPERATOR(pg_catalog.=) 'b' AND t.typisdefined
                                  AND t.typnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                                ORDER BY t.typelem OPERATOR(pg_catalog.<>) 0, t.oid LIMIT 1), 'int4')
                    ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END,
                    a.attisdropped,
                    CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0 THEN
                      (SELECT ' COLLATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname)
                              OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.collname)
                       FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n
                         ON n.oid OPERATOR(pg_catalog.=) c.collnamespace
                       WHERE c.oid OPERATOR(pg_catalog.=) a.attcollation) ELSE '' END,
                    -- the column's own compression and storage, where they differ
                    -- from the type's
                    CASE a.attcompression WHEN 'p' THEN ' COMPRESSION pglz'
                                          WHEN 'l' THEN ' COMPRESSION lz4' ELSE '' END,
                    CASE WHEN a.attstorage OPERATOR(pg_catalog.<>) t.typstorage THEN
                      CASE a.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                                        WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END END
             FROM pg_catalog.pg_attribute a
             LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
             WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
             ORDER BY a.attnum",
            None,
            &[facade.into()],
        )?;
        let mut v = Vec::new();
        for r in rows {
            v.push((
                r.get::<i16>(1)?.unwrap_or(0),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<String>(6)?.unwrap_or_default(),
                r.get::<String>(7)?,
            ));
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_else(|e| error!("bidim: cannot read the columns of table {}: {e}", facade.to_u32()));
    let mut m = MirroredColumns::default();
    let mut defs = Vec::new();
    for (num, name, typ, is_dropped, coll, compression, storage) in rows {
        if is_dropped {
            let n = format!("_bidim_dropped_{num}");
            defs.push(format!("{n} {typ}"));
            m.dropped.push(n);
        } else {
            defs.push(format!("{name} {typ}{compression}{coll}"));
            if let Some(st) = storage {
                m.alters
                    .push(format!("ALTER COLUMN {name} SET STORAGE {st}"));
            }
        }
    }
    m.defs = defs.join(", ");
    m
}

/// How to create a chunk that mirrors its table: column definitions (with each
/// column's collation and compression), placeholder columns to drop, and the
/// `ALTER COLUMN ... SET STORAGE` a column needs where it differs from its type.
#[derive(Default)]
struct MirroredColumns {
    defs: String,
    dropped: Vec<String>,
    alters: Vec<String>,
}

fn spi_or_raise<T>(r: Result<T, pgrx::spi::Error>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("bidim: cannot {what}: {e}"),
            None,
        )
    })
}

/// A timestamptz argument from PostgreSQL's raw microseconds.
fn ts_arg(us: i64) -> pgrx::datum::DatumWithOid<'static> {
    pgrx::datum::TimestampWithTimeZone::try_from(us)
        .unwrap_or_else(|_| error!("bidim: time {us} is out of range"))
        .into()
}

/// Creates a new hot chunk for a cell: its heap relation (owned by the table's
/// owner), its (key, time) index, dependencies and directory row. Runs in the caller's
/// transaction: the chunk exists for others once that commits, and a rollback gives
/// its ordinal back.
pub fn create_chunk(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    range: &keyrange::Range,
    time_lo: i64,
    time_hi: i64,
) -> HotChunk {
    let range_id = range.id;
    let key_lo = range.lo.as_ref().and_then(Key::to_text);
    let key_hi = range.hi.as_ref().and_then(Key::to_text);
    count_new_chunk(facade);
    // One chunk maker per table at a time, to its commit: the ordinal counter row is
    // then only ever advanced from its newest committed value.
    Lock::ChunkCreation(facade).acquire();
    let Some(ordinal) = directory_io::next_ordinal(facade) else {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "bidim table \"{}\" has {} chunks, all its chunk numbers",
                super::api::qualified_name(facade),
                super::tid::MAX_ORDINAL
            ),
            Some("Drop old time partitions (bidim.drop_before; their numbers are reused once no transaction that started before the drop is running), or raise hot_chunk_rows or partition_interval with bidim.configure."),
        );
    };
    let name = chunk_name(facade, ordinal);
    let (key, time) = column_names(facade, cfg);
    let relid = as_extension_owner(|| {
        let m = mirror_columns(facade);
        spi_or_raise(
            Spi::run(&format!(
                "CREATE TABLE bidim_internal.{name} ({}) USING heap",
                m.defs
            )),
            "create a chunk",
        );
        let alters: Vec<String> = m
            .dropped
            .iter()
            .map(|d| format!("DROP COLUMN {d}"))
            .chain(m.alters)
            .collect();
        if !alters.is_empty() {
            spi_or_raise(
                Spi::run(&format!(
                    "ALTER TABLE bidim_internal.{name} {}",
                    alters.join(", ")
                )),
                "create a chunk",
            );
        }
        // The hot chunk's small (key, time) index: BidimScan reads it for queries that
        // name a key; it is at most hot_chunk_rows entries, so it stays cached. The key
        // and time types are built-in, so are their default operator classes.
        spi_or_raise(
            Spi::run(&format!(
                "CREATE INDEX {name}_kt ON bidim_internal.{name} USING btree ({key}, {time})"
            )),
            "index a chunk",
        );
        relation_oid("bidim_internal", &name)
    });
    internal_member(relid);
    // The chunk belongs to the table's owner: autovacuum's ANALYZE of it runs the
    // column types' functions as that owner, never as a superuser.
    super::privilege::give_to(relid, super::privilege::owner_of(facade));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk (rel, chunk_id, chunk_rel, range_id, time_lo, time_hi,
                                          key_lo, key_hi)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    facade.into(),
                    (ordinal as i32).into(),
                    relid.into(),
                    range_id.into(),
                    ts_arg(time_lo),
                    ts_arg(time_hi),
                    key_lo.clone().into(),
                    key_hi.clone().into(),
                ],
            ),
            "record a chunk",
        )
    });
    // Other backends drop their routing caches for this table when we commit.
    invalidate_relcache(facade);
    HotChunk {
        ordinal,
        relid,
        since_check: 0,
        mine: 0,
    }
}

/// Quoted names of the key and time columns (from the table's tuple descriptor).
fn column_names(facade: pg_sys::Oid, cfg: &TableConfig) -> (String, String) {
    let name = |attnum: i16| {
        // SAFETY: a syscache lookup of the attribute's name (palloc'd copy or null).
        let p = unsafe { pg_sys::get_attname(facade, attnum, true) };
        if p.is_null() {
            error!(
                "bidim: column {attnum} of table {} is missing",
                facade.to_u32()
            )
        }
        // SAFETY: a NUL-terminated palloc'd string.
        quote_ident(&unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy())
    };
    (name(cfg.key_attnum), name(cfg.time_attnum))
}

/// Records `obj` (a relation of `facade`) as a member of the extension: pg_dump skips
/// it (the table's rows are dumped through the table) and a user cannot drop it on its
/// own. It goes when its table goes: TRUNCATE and the `bidim_sql_drop` event trigger
/// drop it (see [`forget_table`]).
fn internal_member(obj: pg_sys::Oid) {
    let ext_name = CString::new("bidim").unwrap();
    // SAFETY: a catalog dependency record between existing objects; guarded calls.
    unsafe {
        let ext = pg_sys::get_extension_oid(ext_name.as_ptr(), false);
        let me = pg_sys::ObjectAddress {
            classId: pg_sys::RelationRelationId,
            objectId: obj,
            objectSubId: 0,
        };
        let extension = pg_sys::ObjectAddress {
            classId: pg_sys::ExtensionRelationId,
            objectId: ext,
            objectSubId: 0,
        };
        pg_sys::recordDependencyOn(
            &me,
            &extension,
            pg_sys::DependencyType::DEPENDENCY_EXTENSION,
        );
        pg_sys::CommandCounterIncrement();
    }
}

/// Drops one of our internal relations (a chunk).
fn drop_internal(relid: pg_sys::Oid, name: &str) {
    // SAFETY: removes the extension-membership record of a relation we created, so
    // it can be dropped.
    unsafe {
        pg_sys::deleteDependencyRecordsFor(pg_sys::RelationRelationId, relid, false);
        pg_sys::CommandCounterIncrement();
    }
    spi_or_raise(
        Spi::run(&format!("DROP TABLE IF EXISTS bidim_internal.{name}")),
        &format!("drop {name}"),
    );
}

/// Drops every chunk of `facade` and its directory rows (TRUNCATE), in the caller's
/// transaction. The ordinal counter is kept, so TIDs are not reused.
pub fn drop_all_chunks(facade: pg_sys::Oid) {
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    drop_chunks(facade, rows.iter().collect());
}

/// Drops the given chunks of `facade` (relations and directory rows) in chunk-id
/// order, the order scans open them in, so a drop waiting for a reader never holds a
/// chunk that reader still needs; then makes every backend forget its routing.
fn drop_chunks(facade: pg_sys::Oid, mut chunks: Vec<&ChunkRow>) {
    chunks.sort_by_key(|r| r.chunk_id);
    let ids: Vec<i32> = chunks.iter().map(|r| r.chunk_id as i32).collect();
    as_extension_owner(|| {
        for r in &chunks {
            drop_internal(r.chunk_rel, &chunk_name(facade, r.chunk_id));
        }
        spi_or_raise(
            Spi::run_with_args(
                "DELETE FROM bidim.chunk WHERE rel OPERATOR(pg_catalog.=) $1
                   AND chunk_id OPERATOR(pg_catalog.=) ANY ($2)",
                &[facade.into(), ids.clone().into()],
            ),
            "drop chunks",
        );
        // The ordinals go back to the table once no snapshot can hold a TID of theirs
        // (see directory_io::next_ordinal).
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk_free (rel, ordinal, freed_xid)
                 SELECT $1, o, pg_current_xact_id() FROM unnest($2::int4[]) AS o",
                &[facade.into(), ids.into()],
            ),
            "drop chunks",
        );
    });
    invalidate_relcache(facade);
    invalidate(facade);
}

/// Removes everything bidim keeps for table `facade`: chunks, directory rows, ordinal
/// counter and configuration. Runs when the table is dropped (event trigger) and
/// when a new table reuses the oid of one whose clean-up was missed.
pub fn forget_table(facade: pg_sys::Oid) {
    drop_all_chunks(facade);
    as_extension_owner(|| {
        for sql in [
            "DELETE FROM bidim.table_config WHERE rel::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.key_range WHERE rel OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.job WHERE rel::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.chunk_counter WHERE rel OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.chunk_free WHERE rel OPERATOR(pg_catalog.=) $1",
        ] {
            spi_or_raise(Spi::run_with_args(sql, &[facade.into()]), "forget a table");
        }
    });
    invalidate(facade);
}

/// Tries to take the right to seal chunk `ordinal` (one sealer at a time, never
/// waiting: a busy lock means someone else is creating the successor).
pub fn try_seal_lock(facade: pg_sys::Oid, ordinal: u32) -> bool {
    Lock::Seal(facade, ordinal).try_acquire()
}

/// Whether a newer hot chunk than `ordinal` exists for the cell (someone sealed it).
pub fn has_successor(facade: pg_sys::Oid, range_id: i32, time_lo: i64, ordinal: u32) -> bool {
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    rows.iter().any(|r| {
        r.range_id == range_id
            && r.time_lo == time_lo
            && (r.chunk_id > ordinal || (r.chunk_id == ordinal && !r.state_hot))
    })
}

/// Forget the cached hot chunk of a cell (the next row looks it up again).
pub fn forget_cell(facade: pg_sys::Oid, range_id: i32, time_lo: i64) {
    CACHE.with(|c| {
        if let Some(f) = c.borrow_mut().get_mut(&facade) {
            f.cells.remove(&(range_id, time_lo));
        }
    });
}

/// A table's settings as stored (or the defaults): what `bidim.configure` starts from.
pub struct Settings {
    pub key_column: String,
    pub time_column: String,
    pub hot_chunk_rows: i64,
    /// Partition width in microseconds.
    pub width: i64,
    /// The stored interval as (months, days, microseconds), if a row exists.
    pub interval: Option<(i32, i32, i64)>,
}

/// The stored settings of `facade`, if it has a configuration row (an invalid stored
/// width is an error naming the table).
fn stored_settings(facade: pg_sys::Oid) -> Option<Settings> {
    let mut out = None;
    // SAFETY: the routing snapshot is used at once.
    unsafe {
        directory_io::scan(
            "table_config",
            "table_config_pkey",
            facade,
            routing_snapshot(),
            |r| {
                let iv = r.interval("partition_interval").unwrap_or((0, 1, 0));
                let width = cell::width_of(iv.0, iv.1, iv.2).unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                        format!(
                            "bidim.table_config holds an invalid partition_interval for table {} ({e:?})",
                            facade.to_u32()
                        ),
                        Some("Set it again with bidim.configure."),
                    )
                });
                out = Some(Settings {
                    key_column: r.name("key_column").unwrap_or_default(),
                    time_column: r.name("time_column").unwrap_or_default(),
                    hot_chunk_rows: r.i64("hot_chunk_rows").unwrap_or(DEFAULT_HOT_CHUNK_ROWS),
                    width,
                    interval: Some(iv),
                })
            },
        )
    };
    out
}

/// The stored settings of `facade`, or the defaults (names of the default columns;
/// empty when the table has none of a kind).
pub fn current_settings(facade: pg_sys::Oid) -> Settings {
    let out = stored_settings(facade);
    out.unwrap_or_else(|| {
        // SAFETY: the table is opened and closed around reading its descriptor.
        let cols = unsafe {
            let rel = pg_sys::relation_open(facade, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let c = columns(rel);
            pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            c
        };
        let first = |f: fn(pg_sys::Oid) -> bool| {
            cols.iter()
                .find(|c| f(c.2))
                .map(|c| c.1.clone())
                .unwrap_or_default()
        };
        Settings {
            key_column: first(is_key_type),
            time_column: first(is_time_type),
            hot_chunk_rows: DEFAULT_HOT_CHUNK_ROWS,
            width: DEFAULT_PARTITION_DAYS as i64 * cell::USECS_PER_DAY,
            interval: None,
        }
    })
}

/// Whether `facade` has chunks, by the latest snapshot (chunks other transactions
/// committed a moment ago count).
pub fn has_chunks_latest(facade: pg_sys::Oid) -> bool {
    // SAFETY: the latest snapshot is registered around the read.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let n = read_chunks(facade, snap).len();
        pg_sys::UnregisterSnapshot(snap);
        n > 0
    }
}

/// Inserts or updates the configuration row of `facade` (validated by the caller).
/// `width` is stored as given when `interval` is `None`... see [`Settings`].
pub fn store_config(
    facade: pg_sys::Oid,
    key: &str,
    time: &str,
    rows: i64,
    interval: (i32, i32, i64),
) {
    let iv = pgrx::datum::Interval::new(interval.0, interval.1, interval.2)
        .unwrap_or_else(|e| error!("bidim: invalid partition_interval: {e:?}"));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.table_config AS c
                 VALUES ($1::pg_catalog.regclass, $2::pg_catalog.name, $3::pg_catalog.name, $4, $5)
                 ON CONFLICT ON CONSTRAINT table_config_pkey DO UPDATE
                 SET key_column = excluded.key_column, time_column = excluded.time_column,
                     hot_chunk_rows = excluded.hot_chunk_rows,
                     partition_interval = excluded.partition_interval",
                &[
                    facade.into(),
                    key.into(),
                    time.into(),
                    rows.into(),
                    iv.into(),
                ],
            ),
            "store the configuration",
        )
    });
    invalidate_relcache(facade);
    invalidate(facade);
}

/// The `bidim.table_config` row of `facade` as a composite datum (the result of
/// `bidim.configure`).
pub fn config_row_datum(facade: pg_sys::Oid) -> pg_sys::Datum {
    let s = current_settings(facade);
    let (months, days, micros) = s.interval.unwrap_or((0, DEFAULT_PARTITION_DAYS, 0));
    let iv = pgrx::datum::Interval::new(months, days, micros)
        .unwrap_or_else(|e| error!("bidim: invalid partition_interval: {e:?}"));
    // SAFETY: a row of the table's own row type, formed from its descriptor; name
    // values are zero-padded NAMEDATALEN buffers; the tuple is copied into a datum.
    unsafe {
        let relid = relation_oid("bidim", "table_config");
        let typ = pg_sys::get_rel_type_id(relid);
        let desc = pg_sys::lookup_rowtype_tupdesc(typ, -1);
        let name = |n: &str| {
            let p = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize) as *mut u8;
            let len = n.len().min(pg_sys::NAMEDATALEN as usize - 1);
            std::ptr::copy_nonoverlapping(n.as_ptr(), p, len);
            pg_sys::Datum::from(p)
        };
        let mut values = [
            pg_sys::Datum::from(facade),
            name(&s.key_column),
            name(&s.time_column),
            pg_sys::Datum::from(s.hot_chunk_rows),
            iv.into_datum().unwrap_or(pg_sys::Datum::from(0)),
        ];
        let mut nulls = [false; 5];
        let tup = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        let d = pg_sys::heap_copy_tuple_as_datum(tup, desc);
        if (*desc).tdrefcount >= 0 {
            pg_sys::DecrTupleDescRefCount(desc);
        }
        d
    }
}

/// After ALTER TABLE on `facade`: chunks follow the table's owner; the key and time
/// columns must still be the ones its chunks were made by (the first two columns of
/// every chunk's index), else the statement is refused.
pub fn after_alter_table(facade: pg_sys::Oid) {
    // SAFETY: the latest snapshot is registered around the read.
    let rows = unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let r = read_chunks(facade, snap);
        pg_sys::UnregisterSnapshot(snap);
        r
    };
    let Some(newest) = rows.last() else {
        return;
    };
    let owner = super::privilege::owner_of(facade);
    for r in &rows {
        if super::privilege::owner_of(r.chunk_rel) != owner {
            super::privilege::give_to(r.chunk_rel, owner);
        }
    }
    // The columns the chunks are keyed by, from the newest chunk's index (every chunk
    // of a table is made by the same columns: they cannot change while chunks exist).
    let made_by = chunk_index_columns(newest.chunk_rel);
    invalidate(facade);
    let settings = current_settings(facade);
    let attnum = |name: &str| {
        let c = CString::new(name).ok()?;
        // SAFETY: a syscache lookup by relation and column name.
        let n = unsafe { pg_sys::get_attnum(facade, c.as_ptr()) };
        (n > 0).then_some(n)
    };
    let now = attnum(&settings.key_column).zip(attnum(&settings.time_column));
    if made_by.is_some() && now != made_by {
        let table = super::api::qualified_name(facade);
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot drop or rename the key or time column of bidim table \"{table}\" while it holds rows"),
            Some("The rows are partitioned by these columns. TRUNCATE the table first, or copy the rows into a new table."),
        );
    }
    // Only once the key and time columns are known to stay (dropping a column in a
    // chunk drops the index on it).
    sync_column_settings(facade);
}

/// Gives every chunk of `facade` the table's per-column storage and compression
/// (after `ALTER TABLE ... ALTER COLUMN ... SET STORAGE | SET COMPRESSION`), so rows
/// written from now on are stored as the table says, and drops in every chunk the
/// columns the table dropped (a dropped column stays in the physical layout, so
/// chunk and table tuples stay interchangeable, and PostgreSQL's check that a row's
/// descriptor matches the one deforming it holds). Chunk columns keep the name they
/// had when the chunk was made; they are matched by attribute number.
fn sync_column_settings(facade: pg_sys::Oid) {
    as_extension_owner(|| {
        let alters: Vec<(String, String)> = spi_or_raise(
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT c.chunk_rel::regclass::text,
                            string_agg(CASE WHEN fa.attisdropped THEN format('DROP COLUMN %I', ca.attname)
                                       ELSE format('ALTER COLUMN %I SET STORAGE %s, ALTER COLUMN %I SET COMPRESSION %s',
                                              ca.attname,
                                              CASE fa.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                                                                 WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END,
                                              ca.attname,
                                              CASE fa.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4'
                                                                     ELSE 'default' END) END,
                                       ', ' ORDER BY ca.attnum)
                     FROM bidim.chunk c
                     JOIN pg_attribute fa ON fa.attrelid = c.rel AND fa.attnum > 0
                     JOIN pg_attribute ca ON ca.attrelid = c.chunk_rel AND ca.attnum = fa.attnum
                                         AND NOT ca.attisdropped
                     WHERE c.rel = $1
                       AND (fa.attisdropped
                            OR ca.attstorage <> fa.attstorage OR ca.attcompression <> fa.attcompression)
                     GROUP BY c.chunk_rel",
                    None,
                    &[facade.into()],
                )?;
                let mut v = Vec::new();
                for r in rows {
                    if let (Some(c), Some(a)) = (r.get::<String>(1)?, r.get::<String>(2)?) {
                        v.push((c, a));
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            }),
            "read column settings",
        );
        for (chunk, alter) in alters {
            spi_or_raise(
                Spi::run(&format!("ALTER TABLE {chunk} {alter}")),
                "apply column settings to a chunk",
            );
        }
    });
}

/// (key attnum, time attnum) a chunk's (key, time) index is built on.
fn chunk_index_columns(chunk: pg_sys::Oid) -> Option<(i16, i16)> {
    // SAFETY: the chunk is opened for its index list, the index for its key columns.
    unsafe {
        let rel = pg_sys::try_table_open(chunk, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return None;
        }
        let list = pg_sys::RelationGetIndexList(rel);
        let out = if pg_sys::list_length(list) > 0 {
            let idx = pg_sys::index_open(
                pg_sys::list_nth_oid(list, 0),
                pg_sys::AccessShareLock as pg_sys::LOCKMODE,
            );
            let ind = (*idx).rd_index;
            let keys = (*ind).indkey.values.as_slice((*ind).indnatts as usize);
            let r = (keys.len() >= 2).then(|| (keys[0], keys[1]));
            pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
            r
        } else {
            None
        };
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        out
    }
}

/// Drops every time partition of `facade` that lies wholly before `cutoff` (all its
/// chunks, hot or sealed: whole relations, so the files go at commit) and returns how
/// many; partitions that straddle the cutoff stay (a NOTICE says so).
pub fn drop_before(facade: pg_sys::Oid, cutoff: i64) -> i64 {
    // One retention run at a time per table; inserts and reads go on.
    // SAFETY: a heavyweight lock on a table the caller named (kept to commit).
    unsafe {
        pg_sys::LockRelationOid(facade, pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE)
    };
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let mut partitions: Vec<(i64, i64)> = rows.iter().map(|r| (r.time_lo, r.time_hi)).collect();
    partitions.sort();
    partitions.dedup();
    let doomed: Vec<(i64, i64)> = partitions
        .iter()
        .copied()
        .filter(|&(_, hi)| hi <= cutoff)
        .collect();
    for &(lo, hi) in partitions
        .iter()
        .filter(|&&(lo, hi)| lo < cutoff && hi > cutoff)
    {
        let text = format!(
            "[{}, {})",
            super::api::output_text(pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(lo)),
            super::api::output_text(pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(hi))
        );
        pgrx::notice!("bidim.drop_before keeps time partition {text}: it extends past the cutoff");
    }
    let chunks: Vec<&ChunkRow> = rows
        .iter()
        .filter(|r| doomed.iter().any(|&(lo, _)| lo == r.time_lo))
        .collect();
    drop_chunks(facade, chunks);
    doomed.len() as i64
}

/// Marks every hot chunk of `facade` sealed; returns how many.
pub fn seal_all(facade: pg_sys::Oid) -> i64 {
    let n = as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i64>(
                "WITH s AS (UPDATE bidim.chunk SET state = 'sealed', sealed_at = now()
                            WHERE rel = $1 AND state = 'hot' RETURNING 1)
                 SELECT count(*) FROM s",
                &[facade.into()],
            ),
            "seal chunks",
        )
        .unwrap_or(0)
    });
    invalidate_relcache(facade);
    invalidate(facade);
    n
}

/// A key range splits when it fills this many chunks in one time partition.
pub const SPLIT_AFTER_CHUNKS: usize = 2;
/// Most active key ranges a table gets (each costs a chunk per time partition).
pub const MAX_KEY_RANGES: usize = 64;
/// Keys sampled from a full chunk to choose a split key.
const SPLIT_SAMPLE_ROWS: f64 = 20_000.0;

/// Splits key range `range_id` of `facade` in two at the median of a sample of the keys
/// in chunk `ordinal` (its full hot chunk), if the range has filled
/// [`SPLIT_AFTER_CHUNKS`] chunks in partition `time_lo`. New rows route by the halves
/// from now on (other sessions: once this transaction commits); existing chunks keep
/// the range they were made for, and the range's hot chunks are sealed. Returns
/// whether it split. Never waits: a concurrent split makes this one give up.
pub fn split_range(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    range_id: i32,
    time_lo: i64,
    ordinal: u32,
) -> bool {
    // A transaction-snapshot transaction could not see a split committed after it
    // started, and would split the same range again; leave splitting to others.
    // SAFETY: reads a backend-global setting.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return false;
    }
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let filled = rows
        .iter()
        .filter(|r| r.range_id == range_id && r.time_lo == time_lo)
        .count();
    if filled < SPLIT_AFTER_CHUNKS {
        return false;
    }
    let ranges = with_ranges(facade, cfg.key_kind, |r| r.to_vec());
    let Some(range) = ranges.iter().find(|r| r.id == range_id).cloned() else {
        return false;
    };
    // One splitter per range (keys below zero: chunk ordinals are positive); splits of
    // different ranges touch different rows and take ids from a sequence, so they run
    // side by side.
    if ranges.len() >= MAX_KEY_RANGES || !Lock::Split(facade, range_id).try_acquire() {
        return false;
    }
    let (key, _) = column_names(facade, cfg);
    let pct = (SPLIT_SAMPLE_ROWS * 100.0 / cfg.hot_chunk_rows.max(1) as f64).clamp(0.001, 100.0);
    let name = chunk_name(facade, ordinal);
    let kind = cfg.key_kind;
    // Read as the extension owner (the chunk's schema is closed to its owner): a
    // built-in key type cast to text, a built-in sampling method, no user code.
    let mut sample: Vec<Key> = as_extension_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                &format!(
                    "SELECT ({key})::text FROM bidim_internal.{name} TABLESAMPLE SYSTEM ({pct})"
                ),
                None,
                &[],
            )?;
            let mut v = Vec::new();
            for r in rows {
                if let Some(k) = r.get::<String>(1)?.and_then(|s| Key::parse(kind, &s)) {
                    v.push(k);
                }
            }
            Ok::<_, pgrx::spi::Error>(v)
        })
        .unwrap_or_else(|e| error!("bidim: cannot sample chunk keys: {e}"))
    });
    sample.retain(|k| keyrange::contains(range.lo.as_ref(), range.hi.as_ref(), k));
    let Some(at) = keyrange::split_point(&mut sample).and_then(|k| k.to_text()) else {
        return false;
    };
    let done = as_extension_owner(|| {
        if range_id == 0 {
            Spi::run_with_args(
                "INSERT INTO bidim.key_range (rel, range_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                &[facade.into()],
            )
            .unwrap_or_else(|e| error!("bidim: cannot split a key range: {e}"));
        }
        let n = Spi::get_one_with_args::<i64>(
            "WITH old AS (UPDATE bidim.key_range SET state = 'split', split_at = now()
                          WHERE rel = $1 AND range_id = $2 AND state = 'active'
                          RETURNING key_lo, key_hi),
                  ids AS (SELECT nextval('bidim.key_range_id_seq')::int4 AS a,
                                 nextval('bidim.key_range_id_seq')::int4 AS b),
                  ins AS (INSERT INTO bidim.key_range (rel, range_id, key_lo, key_hi, parent)
                          SELECT $1, ids.a, old.key_lo, $3, $2 FROM old, ids
                          UNION ALL
                          SELECT $1, ids.b, $3, old.key_hi, $2 FROM old, ids
                          RETURNING 1)
             SELECT count(*) FROM ins",
            &[facade.into(), range_id.into(), at.clone().into()],
        )
        .unwrap_or_else(|e| error!("bidim: cannot split a key range: {e}"))
        .unwrap_or(0);
        if n != 2 {
            return false;
        }
        Spi::run_with_args(
            "UPDATE bidim.chunk SET state = 'sealed', sealed_at = now()
             WHERE rel = $1 AND range_id = $2 AND state = 'hot'",
            &[facade.into(), range_id.into()],
        )
        .unwrap_or_else(|e| error!("bidim: cannot split a key range: {e}"));
        true
    });
    if done {
        invalidate_relcache(facade);
        invalidate(facade);
    }
    done
}

/// Adds a retention policy (a `retention` job) for `facade`; returns its job id, or
/// `None` when one exists and `if_not_exists` is set.
pub fn add_retention_policy(
    facade: pg_sys::Oid,
    drop_after: pg_sys::Datum,
    if_not_exists: bool,
) -> Option<i32> {
    let mut existing = None;
    as_extension_owner(|| {
        existing = spi_or_raise(
            Spi::get_one_with_args::<i32>(
                "SELECT (SELECT job_id FROM bidim.job WHERE kind = 'retention' AND rel::oid = $1)",
                &[facade.into()],
            ),
            "read the jobs",
        );
    });
    if let Some(id) = existing {
        if if_not_exists {
            pgrx::notice!("table already has a retention policy (job {id}), skipping");
            return None;
        }
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("table already has a retention policy (job {id})"),
            Some("Remove it with bidim.remove_retention_policy first, or pass if_not_exists => true."),
        );
    }
    // SAFETY: an interval datum points to an Interval struct.
    let iv = unsafe { &*drop_after.cast_mut_ptr::<pg_sys::Interval>() };
    let iv = pgrx::datum::Interval::new(iv.month, iv.day, iv.time)
        .unwrap_or_else(|e| error!("bidim: invalid interval: {e:?}"));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i32>(
                "INSERT INTO bidim.job (kind, rel, drop_after) VALUES ('retention', $1::oid::regclass, $2)
                 RETURNING job_id",
                &[facade.into(), iv.into()],
            ),
            "add the retention policy",
        )
    })
}

/// Removes the retention policy of `facade`; returns whether there was one.
pub fn remove_retention_policy(facade: pg_sys::Oid) -> bool {
    as_extension_owner(|| {
        spi_or_raise(
            Spi::get_one_with_args::<i64>(
                "WITH d AS (DELETE FROM bidim.job WHERE kind = 'retention' AND rel::oid = $1 RETURNING 1)
                 SELECT count(*) FROM d",
                &[facade.into()],
            ),
            "remove the retention policy",
        )
        .unwrap_or(0)
            > 0
    })
}

/// Chunks the maintenance job analyzes per run at most.
const ANALYZE_PER_RUN: i64 = 16;

/// The database's maintenance job: seals the hot chunks of partitions that ended more
/// than one partition width ago (late rows for them start a new chunk) and analyzes
/// sealed chunks that have never been analyzed (so `bidim.chunks` counts survive a
/// statistics reset). Works table by table under the same ShareUpdateExclusive lock as
/// `bidim.drop_before` (taken without waiting: a busy table waits for the next run), so
/// it never touches chunks a retention run is dropping. Returns the number of chunks
/// sealed plus analyzed.
pub fn maintain() -> i64 {
    // As the extension owner: it updates bidim's directory. ANALYZE switches to each
    // chunk's owner (the table's owner) inside a security-restricted operation itself.
    as_extension_owner(|| {
        let tables: Vec<pg_sys::Oid> = Spi::connect(|client| {
            let rows = client.select(
                "SELECT DISTINCT c.rel FROM bidim.chunk c ORDER BY 1",
                None,
                &[],
            )?;
            let mut v = Vec::new();
            for r in rows {
                if let Some(o) = r.get::<pg_sys::Oid>(1)? {
                    v.push(o);
                }
            }
            Ok::<_, pgrx::spi::Error>(v)
        })
        .unwrap_or_else(|e| error!("bidim: maintenance cannot list tables: {e}"));
        let mut done = 0i64;
        let mut analyzed = 0i64;
        for t in tables {
            // SAFETY: a conditional heavyweight lock (kept to commit), then a syscache
            // probe: the table may have been dropped meanwhile.
            let locked = unsafe {
                pg_sys::ConditionalLockRelationOid(
                    t,
                    pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE,
                ) && pg_sys::SearchSysCacheExists(
                    pg_sys::SysCacheIdentifier::RELOID as i32,
                    pg_sys::Datum::from(t),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            };
            if !locked {
                continue;
            }
            let sealed = Spi::get_one_with_args::<i64>(
                "WITH s AS (
                   UPDATE bidim.chunk c SET state = 'sealed', sealed_at = now()
                   WHERE c.rel = $1 AND c.state = 'hot'
                     AND c.time_hi < now() - coalesce(
                           (SELECT t.partition_interval FROM bidim.table_config t
                            WHERE t.rel::oid = c.rel), interval '1 day')
                   RETURNING 1)
                 SELECT count(*) FROM s",
                &[t.into()],
            )
            .unwrap_or_else(|e| error!("bidim: maintenance cannot seal chunks: {e}"))
            .unwrap_or(0);
            if sealed > 0 {
                invalidate_relcache(t);
                invalidate(t);
            }
            done += sealed;
            if analyzed >= ANALYZE_PER_RUN {
                continue;
            }
            let to_analyze: Vec<String> = Spi::connect(|client| {
                let rows = client.select(
                    "SELECT format('%I.%I', n.nspname, k.relname)
                     FROM bidim.chunk c
                     JOIN pg_catalog.pg_class k ON k.oid = c.chunk_rel
                     JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
                     WHERE c.rel = $1 AND k.reltuples < 0
                       AND (c.state <> 'hot' OR EXISTS (
                             SELECT 1 FROM bidim.chunk d
                             WHERE d.rel = c.rel AND d.range_id = c.range_id
                               AND d.time_lo = c.time_lo AND d.chunk_id > c.chunk_id))
                     ORDER BY c.chunk_id
                     LIMIT $2",
                    None,
                    &[t.into(), (ANALYZE_PER_RUN - analyzed).into()],
                )?;
                let mut v = Vec::new();
                for r in rows {
                    if let Some(n) = r.get::<String>(1)? {
                        v.push(n);
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            })
            .unwrap_or_else(|e| error!("bidim: maintenance cannot list chunks: {e}"));
            for name in &to_analyze {
                Spi::run(&format!("ANALYZE {name}"))
                    .unwrap_or_else(|e| error!("bidim: maintenance cannot analyze {name}: {e}"));
            }
            analyzed += to_analyze.len() as i64;
        }
        done + analyzed
    })
}

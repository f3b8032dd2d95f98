//! Reading and writing bidim's own tables (schema `bidim`) through the catalog C API:
//! no SQL text, no name lookup through `search_path`, no permission check on the
//! reader. Routing and scans need the directory whatever the caller may SELECT (an
//! INSERT-only role must still find its row's chunk), and must not resolve names the
//! caller controls. Rows are read by column name.

use super::directory::{ChunkRow, ChunkState};
use super::plan_directory::PlanDirectory;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

fn namespace_oid(name: &str) -> pg_sys::Oid {
    let c = CString::new(name).expect("schema names hold no NUL");
    // SAFETY: a syscache lookup by name; errors are raised as PostgreSQL errors.
    unsafe { pg_sys::get_namespace_oid(c.as_ptr(), false) }
}

/// The oid of relation `name` in schema `schema` (InvalidOid if it does not exist).
pub fn relation_oid(schema: &str, name: &str) -> pg_sys::Oid {
    let c = CString::new(name).expect("relation names hold no NUL");
    // SAFETY: a syscache lookup by name in a namespace.
    unsafe { pg_sys::get_relname_relid(c.as_ptr(), namespace_oid(schema)) }
}

thread_local! {
    /// Oids of bidim's own tables and indexes by name, with the invalidation count
    /// they were looked up at ([`super::cache::generation`]: any relcache
    /// invalidation or abort drops them).
    static OWN_OIDS: std::cell::RefCell<Vec<(&'static str, u64, pg_sys::Oid)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// [`relation_oid`] of `bidim.<name>`, remembered until the next invalidation: every
/// directory read resolves its table and index, and a small query reads it once.
fn own_relation_oid(name: &'static str) -> pg_sys::Oid {
    let generation = super::cache::generation();
    let hit = OWN_OIDS.with(|o| {
        o.borrow()
            .iter()
            .find(|(n, g, _)| *n == name && *g == generation)
            .map(|e| e.2)
    });
    if let Some(oid) = hit {
        return oid;
    }
    let oid = relation_oid("bidim", name);
    if oid != pg_sys::InvalidOid {
        OWN_OIDS.with(|o| {
            let mut o = o.borrow_mut();
            o.retain(|(n, _, _)| *n != name);
            o.push((name, generation, oid));
        });
    }
    oid
}

/// One row of a directory table, its columns looked up by name.
pub struct Row<'a> {
    desc: pg_sys::TupleDesc,
    values: &'a [pg_sys::Datum],
    nulls: &'a [bool],
    /// The row's TID (for updates).
    pub tid: pg_sys::ItemPointerData,
}

impl Row<'_> {
    fn index_of(&self, column: &str) -> usize {
        // SAFETY: the descriptor of the open directory table.
        let attrs = unsafe { (*self.desc).attrs.as_slice((*self.desc).natts as usize) };
        attrs
            .iter()
            .position(|a| {
                // attname: NUL-padded NAMEDATALEN bytes (no strlen on every lookup)
                let name = &a.attname.data;
                let c = column.as_bytes();
                !a.attisdropped
                    && c.len() < name.len()
                    && name[c.len()] == 0
                    && name[..c.len()].iter().zip(c).all(|(&x, &y)| x as u8 == y)
            })
            .unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    format!("bidim: the directory has no column \"{column}\""),
                    Some("The extension's tables do not match this library: ALTER EXTENSION bidim UPDATE, or reinstall it."),
                )
            })
    }

    /// `v`, the value of NOT NULL column `column`, or an error saying the directory
    /// is damaged (never a made-up default).
    pub fn must<T>(&self, column: &str, v: Option<T>) -> T {
        v.unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("bidim: a directory row has no value in column \"{column}\""),
                None,
            )
        })
    }

    /// The raw datum of `column`, `None` when NULL.
    pub fn datum(&self, column: &str) -> Option<pg_sys::Datum> {
        let i = self.index_of(column);
        (!self.nulls[i]).then_some(self.values[i])
    }

    pub fn i64(&self, column: &str) -> Option<i64> {
        self.datum(column).map(|d| d.value() as i64)
    }

    pub fn i32(&self, column: &str) -> Option<i32> {
        self.datum(column).map(|d| d.value() as i32)
    }

    pub fn oid(&self, column: &str) -> Option<pg_sys::Oid> {
        self.datum(column)
            .map(|d| pg_sys::Oid::from(d.value() as u32))
    }

    /// An `int8[]` column (NULL elements make it unreadable: `None`).
    pub fn i64_array(&self, column: &str) -> Option<Vec<i64>> {
        let d = self.datum(column)?;
        // SAFETY: the column is of type int8[]; the datum belongs to the row, detoasted
        // into the current memory context if needed. An int8 array without NULLs holds
        // its n elements as 8-byte values from its data offset (copied bytewise).
        unsafe {
            let ptr = std::ptr::NonNull::new(
                pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType
            )?;
            let mut raw = pgrx::array::RawArray::from_ptr(ptr);
            if raw.oid() != pg_sys::INT8OID || raw.any_nulls() {
                return None;
            }
            let n = raw.len();
            if n == 0 {
                return Some(Vec::new());
            }
            let data = raw.data::<i64>();
            let mut out = vec![0i64; n];
            std::ptr::copy_nonoverlapping(
                data.as_ptr() as *const u8,
                out.as_mut_ptr() as *mut u8,
                n * std::mem::size_of::<i64>(),
            );
            Some(out)
        }
    }

    /// A `text` column.
    pub fn text(&self, column: &str) -> Option<String> {
        // SAFETY: the column is of type text; the datum belongs to the row.
        self.datum(column)
            .and_then(|d| unsafe { String::from_datum(d, false) })
    }

    /// A `name` column.
    pub fn name(&self, column: &str) -> Option<String> {
        // SAFETY: a name datum points to a NUL-terminated NameData.
        self.datum(column).map(|d| unsafe {
            std::ffi::CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                .to_string_lossy()
                .into_owned()
        })
    }

    /// An `interval` column as (months, days, microseconds).
    pub fn interval(&self, column: &str) -> Option<(i32, i32, i64)> {
        // SAFETY: an interval datum points to an Interval struct.
        self.datum(column).map(|d| unsafe {
            let i = d.cast_mut_ptr::<pg_sys::Interval>();
            ((*i).month, (*i).day, (*i).time)
        })
    }
}

/// A condition on an index's second column: (its column's name, strategy, comparison
/// function, value).
type SecondKey = (
    &'static std::ffi::CStr,
    u16,
    pg_sys::RegProcedure,
    pg_sys::Datum,
);

/// Calls `f` with every tuple of `bidim.<table>` whose first index column (`index`,
/// an oid column) equals `key`, under `snapshot` (null: the catalog snapshot), with
/// the table open in `lockmode` (kept open for `f` to update what it is given).
///
/// # Safety
/// `snapshot` must be null or valid for the duration of the call; `f` must not keep
/// the tuple beyond its call.
unsafe fn scan_tuples(
    table: &'static str,
    index: &'static str,
    key: pg_sys::Oid,
    snapshot: pg_sys::Snapshot,
    lockmode: u32,
    f: impl FnMut(pg_sys::Relation, pg_sys::HeapTuple),
) {
    // SAFETY: forwarded.
    unsafe { scan_tuples_where(table, index, key, None, snapshot, lockmode, f) }
}

/// [`scan_tuples`], also with a condition on the index's second column.
///
/// # Safety
/// As [`scan_tuples`].
unsafe fn scan_tuples_where(
    table: &'static str,
    index: &'static str,
    key: pg_sys::Oid,
    second: Option<SecondKey>,
    snapshot: pg_sys::Snapshot,
    lockmode: u32,
    mut f: impl FnMut(pg_sys::Relation, pg_sys::HeapTuple),
) {
    let dir = own_relation_oid(table);
    let idx = own_relation_oid(index);
    if dir == pg_sys::InvalidOid || idx == pg_sys::InvalidOid {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("bidim: the directory table bidim.{table} is missing"),
            Some("Is the extension installed in this database? (CREATE EXTENSION bidim)"),
        );
    }
    // SAFETY: open/scan/close of our own directory table with an index scan keyed on
    // its oid column; every call is a guarded pg_sys function.
    unsafe {
        let rel = pg_sys::table_open(dir, lockmode as pg_sys::LOCKMODE);
        let mut skeys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut skeys[0],
            1,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(key),
        );
        let mut n = 1;
        if let Some((column, strategy, proc_, value)) = second {
            // systable scans take the table's attribute numbers.
            let attnum = pg_sys::get_attnum(dir, column.as_ptr());
            pg_sys::ScanKeyInit(&mut skeys[1], attnum, strategy, proc_, value);
            n = 2;
        }
        let sc = pg_sys::systable_beginscan(rel, idx, true, snapshot, n, skeys.as_mut_ptr());
        loop {
            let tup = pg_sys::systable_getnext(sc);
            if tup.is_null() {
                break;
            }
            f(rel, tup);
        }
        pg_sys::systable_endscan(sc);
        pg_sys::table_close(rel, lockmode as pg_sys::LOCKMODE);
    }
}

/// Calls `f` for every row of `bidim.<table>` whose first index column (`index`, on an
/// oid column) equals `key`, under `snapshot` (null: the catalog snapshot).
///
/// # Safety
/// `snapshot` must be null or valid for the duration of the call.
pub unsafe fn scan(
    table: &'static str,
    index: &'static str,
    key: pg_sys::Oid,
    snapshot: pg_sys::Snapshot,
    f: impl FnMut(&Row),
) {
    // SAFETY: forwarded.
    unsafe { scan_where(table, index, key, None, snapshot, f) }
}

/// [`scan`], also with a condition on the index's second column.
///
/// # Safety
/// As [`scan`].
unsafe fn scan_where(
    table: &'static str,
    index: &'static str,
    key: pg_sys::Oid,
    second: Option<SecondKey>,
    snapshot: pg_sys::Snapshot,
    mut f: impl FnMut(&Row),
) {
    let mut values = Vec::new();
    let mut nulls = Vec::new();
    // SAFETY: forwarded; each tuple is deformed with its table's own descriptor.
    unsafe {
        scan_tuples_where(
            table,
            index,
            key,
            second,
            snapshot,
            pg_sys::AccessShareLock,
            |rel, tup| with_row(rel, tup, &mut values, &mut nulls, &mut f),
        )
    }
}

/// Hands `f` tuple `tup` of the open table `rel`, deformed with the table's own
/// descriptor into `values` and `nulls` (resized to its width).
///
/// # Safety
/// `tup` is a valid tuple of `rel`, for the duration of the call.
unsafe fn with_row<R>(
    rel: pg_sys::Relation,
    tup: pg_sys::HeapTuple,
    values: &mut Vec<pg_sys::Datum>,
    nulls: &mut Vec<bool>,
    f: impl FnOnce(&Row) -> R,
) -> R {
    // SAFETY: per the contract; the arrays have the descriptor's width.
    unsafe {
        let desc = (*rel).rd_att;
        let n = (*desc).natts as usize;
        values.resize(n, pg_sys::Datum::from(0));
        nulls.resize(n, false);
        pg_sys::heap_deform_tuple(tup, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        f(&Row {
            desc,
            values,
            nulls,
            tid: (*tup).t_self,
        })
    }
}

/// The snapshot insert routing reads the directory with: the transaction snapshot with
/// the current command id, so it sees chunks this transaction created a moment ago.
pub fn routing_snapshot() -> pg_sys::Snapshot {
    // SAFETY: inserts never run in parallel mode, where this would be refused.
    unsafe { pg_sys::GetTransactionSnapshot() }
}

/// Reads the directory rows of `facade` under `snapshot`, ordered by chunk id.
///
/// # Safety
/// `snapshot` must be a valid snapshot for the duration of the call.
pub unsafe fn read_chunks(facade: pg_sys::Oid, snapshot: pg_sys::Snapshot) -> Vec<ChunkRow> {
    // SAFETY: forwarded.
    unsafe { read_chunks_ending_after(facade, i64::MIN, snapshot) }
}

/// The directory rows of `facade` under `snapshot` whose partition ends after `time`
/// (the only ones that can hold rows at or after it), ordered by chunk id: a query on
/// recent times reads a few directory rows, however many chunks the table has.
///
/// # Safety
/// `snapshot` must be a valid snapshot for the duration of the call.
pub unsafe fn read_chunks_ending_after(
    facade: pg_sys::Oid,
    time: i64,
    snapshot: pg_sys::Snapshot,
) -> Vec<ChunkRow> {
    let mut out = Vec::new();
    let (index, second) = if time == i64::MIN {
        ("chunk_pkey", None)
    } else {
        (
            "chunk_rel_time_hi_idx",
            Some((
                c"time_hi",
                pg_sys::BTGreaterStrategyNumber as u16,
                pg_sys::RegProcedure::from(pg_sys::F_TIMESTAMPTZ_GT),
                pg_sys::Datum::from(time),
            )),
        )
    };
    // SAFETY: forwarded; a tuple not decoded before is deformed with the directory's
    // own descriptor.
    unsafe {
        scan_tuples_where(
            "chunk",
            index,
            facade,
            second,
            snapshot,
            pg_sys::AccessShareLock,
            |rel, tup| {
                out.push(decoded_row(rel, tup, |r| chunk_row(r, facade)));
            },
        );
    }
    out.sort_by_key(|c| c.chunk_id);
    out
}

/// A directory row of `facade` decoded.
fn chunk_row(r: &Row, facade: pg_sys::Oid) -> ChunkRow {
    let state = r.must("state", r.text("state"));
    ChunkRow {
        chunk_id: r.must("chunk_id", r.i32("chunk_id")) as u32,
        chunk_rel: r.must("chunk_rel", r.oid("chunk_rel")),
        range_id: r.must("range_id", r.i32("range_id")),
        time_lo: r.must("time_lo", r.i64("time_lo")),
        time_hi: r.must("time_hi", r.i64("time_hi")),
        state: ChunkState::parse(&state).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!(
                    "bidim: chunk {} of table {} has the unknown state \"{state}\"",
                    r.i32("chunk_id").unwrap_or(-1),
                    facade.to_u32()
                ),
                None,
            )
        }),
        key_lo: r.text("key_lo"),
        key_hi: r.text("key_hi"),
        sealed_xid: r.i64("sealed_xid").map(|x| x as u64),
        min_time: r.i64("min_time"),
        max_time: r.i64("max_time"),
        pages: r.i64("pages"),
        rows: r.i64("rows"),
        block_map: r
            .i64_array("block_times")
            .and_then(|v| super::block_map::BlockMap::decode(&v)),
        parsed_keys: Default::default(),
    }
}

/// A directory tuple decoded once, kept with what identifies it.
struct Decoded {
    xmin: u32,
    /// The tuple's attribute count and bytes from `t_hoff` on (null bitmap and data).
    bytes: Box<[u8]>,
    row: ChunkRow,
}

/// Bytes of decoded directory rows a backend keeps at most (then it starts over).
const DECODED_BYTES: usize = 8 << 20;

/// Where a directory tuple lies: the directory's relfilenode, block and offset.
type Place = (u32, u32, u16);

thread_local! {
    /// Directory rows this backend decoded, by place, with the bytes they use in all.
    static DECODED: std::cell::RefCell<(usize, std::collections::HashMap<Place, Decoded>)> =
        std::cell::RefCell::new((0, std::collections::HashMap::new()));
}

/// Directory tuple `tup` (of the open directory table `rel`) decoded by `decode`, or a
/// copy of what decoding the same tuple gave before: every query reads its table's
/// directory rows under its snapshot, and they seldom change. The scan still decides
/// which tuples the snapshot sees; this only skips decoding a tuple seen before. A
/// tuple's content never changes in place, and the copy is used only if the tuple at
/// that place has the same xmin and the same bytes (a VACUUM FULL moves tuples to
/// another relfilenode; a TID reused after a prune holds another transaction's tuple).
///
/// # Safety
/// `rel` is the open directory table and `tup` a tuple it returned, valid for the call.
unsafe fn decoded_row(
    rel: pg_sys::Relation,
    tup: pg_sys::HeapTuple,
    decode: impl FnOnce(&Row) -> ChunkRow,
) -> ChunkRow {
    // SAFETY: `tup` is a valid heap tuple of `t_len` bytes; its header's fields are
    // read as PostgreSQL's HeapTupleHeaderGetRawXmin and HeapTupleHeaderGetNatts do.
    let (place, xmin, natts, data) = unsafe {
        let h = (*tup).t_data;
        let tid = (*tup).t_self;
        let place = (
            (*rel).rd_node.relNode.to_u32(),
            (u32::from(tid.ip_blkid.bi_hi) << 16) | u32::from(tid.ip_blkid.bi_lo),
            tid.ip_posid,
        );
        let from = std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_hoff);
        let len = ((*tup).t_len as usize).saturating_sub(from);
        let data = std::slice::from_raw_parts((h as *const u8).add(from), len);
        let natts = (*h).t_infomask2 & pg_sys::HEAP_NATTS_MASK as u16;
        (place, u32::from((*h).t_choice.t_heap.t_xmin), natts, data)
    };
    let same = |d: &Decoded| {
        d.xmin == xmin && d.bytes[..2] == natts.to_ne_bytes() && d.bytes[2..] == *data
    };
    let hit = DECODED.with(|c| {
        c.borrow()
            .1
            .get(&place)
            .filter(|d| same(d))
            .map(|d| d.row.clone())
    });
    if let Some(row) = hit {
        return row;
    }
    // SAFETY: per the contract.
    let row = unsafe { with_row(rel, tup, &mut Vec::new(), &mut Vec::new(), decode) };
    let mut bytes = Vec::with_capacity(data.len() + 2);
    bytes.extend_from_slice(&natts.to_ne_bytes());
    bytes.extend_from_slice(data);
    let size = 2 * bytes.len() + 128;
    DECODED.with(|c| {
        let (used, map) = &mut *c.borrow_mut();
        if *used + size > DECODED_BYTES {
            map.clear();
            *used = 0;
        }
        *used += size;
        map.insert(
            place,
            Decoded {
                xmin,
                bytes: bytes.into_boxed_slice(),
                row: row.clone(),
            },
        );
    });
    row
}

/// The directory rows of `facade` by the latest snapshot: chunks other transactions
/// committed a moment ago count (DDL checks, also in REPEATABLE READ).
pub fn read_chunks_latest(facade: pg_sys::Oid) -> Vec<ChunkRow> {
    // SAFETY: the latest snapshot is registered around the read.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let rows = read_chunks(facade, snap);
        pg_sys::UnregisterSnapshot(snap);
        rows
    }
}

/// Whether chunk `ordinal` of `facade` is in the directory by the latest snapshot (a
/// converted or dropped chunk is not).
pub fn chunk_listed_latest(facade: pg_sys::Oid, ordinal: u32) -> bool {
    let mut found = false;
    // SAFETY: the latest snapshot is registered around the read.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        scan_where(
            "chunk",
            "chunk_pkey",
            facade,
            Some((
                c"chunk_id",
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::RegProcedure::from(pg_sys::F_INT4EQ),
                pg_sys::Datum::from(ordinal as i32),
            )),
            snap,
            |_| found = true,
        );
        pg_sys::UnregisterSnapshot(snap);
    }
    found
}

/// The directory rows of `facade` the planner estimates from: the latest committed
/// ones, read once and cached until a change to the directory invalidates the table's
/// relcache entry, so planning does not read the directory, however many chunks there
/// are. A read that an invalidation interrupted (a change committed after its snapshot
/// was taken) is used once and not kept. Never used to choose what a scan reads (that
/// is the scan's snapshot's directory).
pub fn planning_chunks(facade: pg_sys::Oid) -> std::rc::Rc<PlanDirectory> {
    if let Some(rows) = super::cache::planning_chunks(facade) {
        return rows;
    }
    let before = super::cache::generation();
    let rows = std::rc::Rc::new(PlanDirectory::new(
        read_chunks_latest(facade),
        super::chunk_scan::parallel_units,
    ));
    if super::cache::generation() == before {
        super::cache::set_planning_chunks(facade, rows.clone());
    }
    rows
}

/// [`scan_tuples`] with the table open RowExclusive, under the latest snapshot (the
/// newest committed rows, also in REPEATABLE READ), then a command-counter increment
/// so what `f`'s caller changes next is seen.
///
/// # Safety
/// As [`scan_tuples`].
unsafe fn scan_latest(
    table: &'static str,
    index: &'static str,
    key: pg_sys::Oid,
    f: impl FnMut(pg_sys::Relation, pg_sys::HeapTuple),
) {
    // SAFETY: a registered latest snapshot, unregistered after the scan.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        scan_tuples(table, index, key, snap, pg_sys::RowExclusiveLock, f);
        pg_sys::UnregisterSnapshot(snap);
        pg_sys::CommandCounterIncrement();
    }
}

/// The freed ordinals of `facade` no snapshot can hold a TID of any more (`horizon`:
/// the oldest non-removable xid, 64-bit), by the latest snapshot.
pub fn free_ordinals(facade: pg_sys::Oid, horizon: u64) -> Vec<u32> {
    let mut out = Vec::new();
    // SAFETY: rows of bidim.chunk_free (rel oid, ordinal int4, freed_xid xid8),
    // deformed with their own descriptor.
    unsafe {
        scan_latest("chunk_free", "chunk_free_pkey", facade, |rel, tup| {
            let mut v = [pg_sys::Datum::from(0); 3];
            let mut n = [false; 3];
            pg_sys::heap_deform_tuple(tup, (*rel).rd_att, v.as_mut_ptr(), n.as_mut_ptr());
            if super::tid::reusable(v[2].value() as u64, horizon) {
                out.push(v[1].value() as u32);
            }
        });
    }
    out
}

/// The ordinal for a new chunk of `facade`, in the caller's transaction (a rollback
/// gives it back): the smallest freed ordinal of a dropped chunk that no snapshot can
/// still reach ([`super::tid::reusable`]), else the next number of
/// `bidim.chunk_counter`; `None` when neither is left (the table has
/// [`super::tid::MAX_ORDINAL`] chunks, or dropped ones still visible to a snapshot).
/// The caller holds [`super::locks::Lock::ChunkCreation`], so the newest committed
/// rows (read with the latest snapshot, also in REPEATABLE READ) are the ones to
/// change, and nobody else changes them before we commit.
pub fn next_ordinal(facade: pg_sys::Oid) -> Option<u32> {
    let mut best: Option<(u32, pg_sys::ItemPointerData)> = None;
    let mut horizon = None;
    // SAFETY: rows of bidim.chunk_free (rel oid, ordinal int4, freed_xid xid8),
    // deformed with their own descriptor; the horizon is this database's oldest
    // non-removable xid for ordinary tables (snapshots of other databases cannot reach
    // our chunks), read once.
    unsafe {
        scan_latest("chunk_free", "chunk_free_pkey", facade, |rel, tup| {
            let horizon = *horizon.get_or_insert_with(|| {
                let next = pg_sys::ReadNextFullTransactionId().value;
                let oldest = pg_sys::GetOldestNonRemovableTransactionId(rel);
                super::tid::widen_xid(next, u32::from(oldest))
            });
            let mut v = [pg_sys::Datum::from(0); 3];
            let mut n = [false; 3];
            pg_sys::heap_deform_tuple(tup, (*rel).rd_att, v.as_mut_ptr(), n.as_mut_ptr());
            let ordinal = v[1].value() as u32;
            let freed = v[2].value() as u64;
            if super::tid::reusable(freed, horizon) && best.is_none_or(|(b, _)| ordinal < b) {
                best = Some((ordinal, (*tup).t_self));
            }
        });
    }
    if let Some((ordinal, mut tid)) = best {
        let dir = relation_oid("bidim", "chunk_free");
        // SAFETY: deletes the row found above (its TID), in our transaction.
        unsafe {
            let rel = pg_sys::table_open(dir, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            pg_sys::CatalogTupleDelete(rel, &mut tid);
            pg_sys::table_close(rel, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            pg_sys::CommandCounterIncrement();
        }
        return Some(ordinal);
    }
    let mut last: Option<(i64, pg_sys::ItemPointerData)> = None;
    // SAFETY: rows of bidim.chunk_counter (rel oid, last_ordinal int8).
    unsafe {
        scan_latest("chunk_counter", "chunk_counter_pkey", facade, |rel, tup| {
            let mut v = [pg_sys::Datum::from(0); 2];
            let mut n = [false; 2];
            pg_sys::heap_deform_tuple(tup, (*rel).rd_att, v.as_mut_ptr(), n.as_mut_ptr());
            last = Some((v[1].value() as i64, (*tup).t_self));
        });
    }
    let next = last.map_or(1, |(l, _)| l + 1);
    if next > super::tid::MAX_ORDINAL as i64 {
        return None;
    }
    let dir = relation_oid("bidim", "chunk_counter");
    // SAFETY: inserts or updates our table's one counter row of `facade`, formed from
    // the table's own descriptor.
    unsafe {
        let rel = pg_sys::table_open(dir, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let mut values = [pg_sys::Datum::from(facade), pg_sys::Datum::from(next)];
        let mut nulls = [false, false];
        let newtup =
            pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
        match last {
            None => pg_sys::CatalogTupleInsert(rel, newtup),
            Some((_, mut otid)) => pg_sys::CatalogTupleUpdate(rel, &mut otid, newtup),
        }
        pg_sys::table_close(rel, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        pg_sys::CommandCounterIncrement();
    }
    Some(next as u32)
}

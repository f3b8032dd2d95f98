//! Reading cold chunks: batch rows of the batch relation (all of them in batch order,
//! or those of the scan's keys through the (key, time_max) index, forward or
//! backward), batches outside the scan's time range skipped by their min/max, the
//! batch's columns decoded into datums in a per-batch memory context, rows handed out
//! one at a time as virtual tuples of the table. Also the fetch of one cold row by TID.

// Scan entry points take the scan's parts one by one.
#![allow(clippy::too_many_arguments)]

use super::codec;
use super::cold::{
    self, ColSpec, COL_BATCH, COL_KEY, COL_ROWS, COL_TIME_MAX, COL_TIME_MIN, FIXED_COLUMNS,
};
use super::delegate::{encode_tid, rel_oid};
use super::prune::{batch_may_match, value_may_match, Bound, ColumnCond};
use super::tid;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// A scan of one cold chunk (palloc'd; every pointer is PostgreSQL memory).
#[repr(C)]
pub struct ColdScan {
    /// The batch relation (opened by the caller) and the facade's descriptor.
    rel: pg_sys::Relation,
    facade: pg_sys::Relation,
    ordinal: u32,
    /// Batch rows in batch order, or through the (key, time_max) index.
    heap: pg_sys::TableScanDesc,
    index: pg_sys::Relation,
    iscan: pg_sys::IndexScanDesc,
    bslot: *mut pg_sys::TupleTableSlot,
    backward: bool,
    /// Rows outside [time_lo, time_hi) are not wanted: batches wholly outside are skipped.
    time_lo: i64,
    time_hi: i64,
    /// Facade columns: natts specs; `needed[i]` false: column i + 1 is not read (NULL).
    natts: i32,
    specs: *mut ColSpec,
    needed: *mut bool,
    /// Columns stored in the batches (the table's columns when the chunk was converted;
    /// for packed batches, the table's columns now: each batch's directory says).
    stored: i32,
    /// The batch relation's packed column ([`cold::packed_attnum`]; 0: a column each).
    packed: i32,
    /// The current batch: rows x natts datums and NULL flags, column-major (column
    /// i's rows at `i * nrows ..`), in `cxt`.
    cxt: pg_sys::MemoryContext,
    values: *mut pg_sys::Datum,
    nulls: *mut bool,
    nrows: i32,
    /// Rows `..decoded` of the batch have every column decoded; the rest (past the
    /// scan's upper time bound, [`load_batch`]'s window) only the time column.
    decoded: i32,
    /// The table's time column (attribute number).
    time_col: i32,
    /// Next row to return (counting from the end when backward).
    row: i32,
    batch: i32,
    /// The batch relation's last-row column ([`cold::last_row_attnum`], 0: none), and
    /// whether the current batch's last row was handed out from it with nothing
    /// decoded yet (a backward read decodes the batch only for its second row).
    last_att: i32,
    lazy: bool,
    pub batches_read: i64,
    pub batches_skipped: i64,
    /// Batches whose last row was handed out from their last-row column (one decoded
    /// afterwards for its other rows also counts in `batches_read`).
    pub rows_in_clear: i64,
    /// A scan of numbered batches ([`sample_block`]): the next and the end of the
    /// batch numbers still to read, under `snapshot`; `blocks`/`nbatches` are the
    /// relation's blocks and batches (0: not counted yet).
    range_next: u32,
    range_end: u32,
    snapshot: pg_sys::Snapshot,
    blocks: u32,
    nbatches: u32,
    /// The context the scan was begun in: its heap and index scans run in it (they
    /// allocate lazily; the caller may reset its own context after every row).
    home: pg_sys::MemoryContext,
    /// Conditions checked against the batches' min/max columns (palloc'd).
    filters: *mut BatchFilter,
    nfilters: i32,
    /// Whether [`next`] also checks those conditions on each row of a decoded batch,
    /// leaving out the rows that surely fail them (the scan's filter would), counted
    /// in `*rows_filtered` when set.
    row_filters: bool,
    rows_filtered: *mut i64,
    /// The time column (1-based) when [`next`] also leaves out the rows of a decoded
    /// batch outside [time_lo, time_hi) (0: it does not).
    time_att: i32,
}

/// `column <strategy> value` against a batch's min and max columns (attribute numbers
/// of the batch relation).
#[derive(Clone, Copy)]
#[repr(C)]
struct BatchFilter {
    min_att: i32,
    max_att: i32,
    strategy: i32,
    value: Bound,
    float: bool,
    /// The facade column (0-based) and how its datums read as a [`Bound`] to check a
    /// decoded row ([`RowKind::None`]: rows are not checked).
    att: i32,
    kind: RowKind,
}

/// How a column's datum reads as a [`Bound`] (the kinds of its min/max columns).
#[derive(Clone, Copy, PartialEq)]
#[repr(C)]
enum RowKind {
    None,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
}

impl RowKind {
    fn of(typid: pg_sys::Oid) -> RowKind {
        match typid {
            pg_sys::INT2OID => RowKind::Int2,
            pg_sys::INT4OID | pg_sys::DATEOID => RowKind::Int4,
            pg_sys::INT8OID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => RowKind::Int8,
            pg_sys::FLOAT4OID => RowKind::Float4,
            pg_sys::FLOAT8OID => RowKind::Float8,
            _ => RowKind::None,
        }
    }

    #[inline]
    fn bound(self, d: pg_sys::Datum) -> Bound {
        let raw = d.value() as u64;
        match self {
            RowKind::Int2 => Bound::Int(raw as u16 as i16 as i64),
            RowKind::Int4 => Bound::Int(raw as u32 as i32 as i64),
            RowKind::Float4 => Bound::Float(f32::from_bits(raw as u32) as f64),
            RowKind::Float8 => Bound::Float(f64::from_bits(raw)),
            RowKind::Int8 | RowKind::None => Bound::Int(raw as i64),
        }
    }
}

/// Index of the batch relation whose first column is `col` (the `_batch` or `_kt` index),
/// opened with AccessShareLock (closed by [`super::delegate::release_index`]: a scan
/// over thousands of cold chunks must not hold a lock on each index to commit).
fn index_on(rel: pg_sys::Relation, col: usize) -> pg_sys::Relation {
    // SAFETY: the relcache's index list of an open relation; each candidate opened and
    // closed again unless it is the one.
    unsafe {
        let list = pg_sys::RelationGetIndexList(rel);
        for i in 0..pg_sys::list_length(list) {
            let idx = pg_sys::index_open(
                pg_sys::list_nth_oid(list, i),
                pg_sys::AccessShareLock as pg_sys::LOCKMODE,
            );
            let ind = (*idx).rd_index;
            if (*ind).indkey.values.as_slice(1)[0] == col as i16 {
                pg_sys::list_free(list);
                return idx;
            }
            pg_sys::index_close(idx, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        }
        pg_sys::list_free(list);
    }
    cold::corrupt("a cold chunk lacks one of its indexes")
}

/// Begins a scan of the cold chunk `rel` (ordinal `ordinal`) of table `facade`:
/// every batch, or with `keys` (scan keys on the hot chunks' (key, time) index
/// columns) the batches of those keys, in `backward` order when asked.
pub(super) fn begin(
    rel: pg_sys::Relation,
    facade: pg_sys::Relation,
    ordinal: u32,
    snapshot: pg_sys::Snapshot,
    keys: &[pg_sys::ScanKeyData],
    backward: bool,
    time: (i64, i64),
    needed: Option<&[bool]>,
    conds: &[ColumnCond],
) -> *mut ColdScan {
    let cs = begin_without_reader(rel, facade, ordinal);
    // SAFETY: cs was just made; every allocation is palloc'd in the current (the
    // caller's scan) memory context.
    unsafe {
        let c = &mut *cs;
        c.backward = backward;
        if backward {
            c.last_att = cold::last_row_attnum(rel);
        }
        c.time_lo = time.0;
        c.time_hi = time.1;
        if let Some(n) = needed {
            c.needed = super::chunk_scan::palloc_array(n);
        }
        let names = if conds.is_empty() {
            Vec::new()
        } else {
            cold::column_names(rel)
        };
        let fdesc = (*facade).rd_att;
        let fattrs = (*fdesc).attrs.as_slice((*fdesc).natts as usize);
        let filters: Vec<BatchFilter> = conds
            .iter()
            .filter_map(|k| {
                let (min_att, max_att) = cold::bound_attnums(&names, k.attnum)?;
                let att = k.attnum as usize - 1;
                // a row is checked only on a column the scan decodes
                let kind = match fattrs.get(att) {
                    Some(a) if decodes(needed, att) && !a.attisdropped => RowKind::of(a.atttypid),
                    _ => RowKind::None,
                };
                Some(BatchFilter {
                    min_att,
                    max_att,
                    strategy: k.strategy,
                    value: k.value,
                    float: matches!(k.value, Bound::Float(_)),
                    att: att as i32,
                    kind,
                })
            })
            .collect();
        if !filters.is_empty() {
            c.filters = super::chunk_scan::palloc_array(&filters);
            c.nfilters = filters.len() as i32;
            c.row_filters = filters.iter().any(|f| f.kind != RowKind::None);
        }
        // Keys on the key column, and the time lower bound (time_max >= lo holds for
        // every batch with a row at or after lo); upper bounds are checked per batch.
        let mut ikeys: Vec<pg_sys::ScanKeyData> = keys
            .iter()
            .filter(|k| {
                k.sk_attno == 1
                    || (k.sk_attno == 2
                        && k.sk_strategy == pg_sys::BTGreaterEqualStrategyNumber as u16)
            })
            .copied()
            .collect();
        for k in keys.iter().filter(|k| k.sk_attno == 2) {
            let v = k.sk_argument.value() as i64;
            match k.sk_strategy as u32 {
                pg_sys::BTGreaterEqualStrategyNumber => c.time_lo = c.time_lo.max(v),
                pg_sys::BTLessStrategyNumber => c.time_hi = c.time_hi.min(v),
                _ => {}
            }
        }
        // Rows outside the time range are left out too when the time column is decoded
        // (an unbounded end is no condition: +infinity passes it).
        let time_att = super::config::config(facade).time_attnum as i32;
        if decodes(needed, time_att as usize - 1) && (c.time_lo > i64::MIN || c.time_hi < i64::MAX)
        {
            c.time_att = time_att;
            c.row_filters = true;
        }
        if keys.iter().any(|k| k.sk_attno == 1) {
            c.index = index_on(rel, COL_KEY);
            c.iscan = pg_sys::index_beginscan(rel, c.index, snapshot, ikeys.len() as i32, 0);
            pg_sys::index_rescan(
                c.iscan,
                ikeys.as_mut_ptr(),
                ikeys.len() as i32,
                std::ptr::null_mut(),
                0,
            );
        } else {
            if backward {
                raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "bidim: a backward read of a cold chunk needs keys",
                    None,
                );
            }
            c.heap = super::delegate::heap_seqscan(rel, snapshot);
        }
        cs
    }
}

/// Ends a cold scan (the batch relation stays open: the caller closes it).
pub(super) fn end(cs: *mut ColdScan) {
    // SAFETY: cs was made by begin and is ended once.
    unsafe {
        let c = &mut *cs;
        if !c.heap.is_null() {
            super::delegate::heap_call!(scan_end(c.heap));
        }
        if !c.iscan.is_null() {
            pg_sys::index_endscan(c.iscan);
            super::delegate::release_index(c.index);
        }
        pg_sys::ExecDropSingleTupleTableSlot(c.bslot);
        pg_sys::MemoryContextDelete(c.cxt);
        pg_sys::pfree(c.specs as *mut std::ffi::c_void);
        if !c.needed.is_null() {
            pg_sys::pfree(c.needed as *mut std::ffi::c_void);
        }
        if !c.filters.is_null() {
            pg_sys::pfree(c.filters as *mut std::ffi::c_void);
        }
        pg_sys::pfree(cs as *mut std::ffi::c_void);
    }
}

/// The next batch row within the time range into `bslot`; false at the end (and
/// always for a scan made by [`begin_for_fetch`], which reads numbered batches only).
fn next_batch_row(c: &mut ColdScan) -> bool {
    if c.heap.is_null() && c.iscan.is_null() {
        return false;
    }
    loop {
        // SAFETY: the scan's own heap or index scan fills its own slot, in the scan's
        // home context (switched back below).
        let old = unsafe { pg_sys::MemoryContextSwitchTo(c.home) };
        let found = unsafe {
            if !c.heap.is_null() {
                super::delegate::heap_call!(scan_getnextslot(
                    c.heap,
                    pg_sys::ScanDirection::ForwardScanDirection,
                    c.bslot
                ))
            } else {
                let dir = if c.backward {
                    pg_sys::ScanDirection::BackwardScanDirection
                } else {
                    pg_sys::ScanDirection::ForwardScanDirection
                };
                pg_sys::index_getnext_slot(c.iscan, dir, c.bslot)
            }
        };
        // SAFETY: restores the caller's context.
        unsafe { pg_sys::MemoryContextSwitchTo(old) };
        if !found {
            return false;
        }
        let tmin = attr(c.bslot, COL_TIME_MIN).0.value() as i64;
        let tmax = attr(c.bslot, COL_TIME_MAX).0.value() as i64;
        if tmax < c.time_lo || tmin >= c.time_hi || !filters_pass(c) {
            c.batches_skipped += 1;
            continue;
        }
        return true;
    }
}

/// Whether the batch in `bslot` may hold a row passing every column filter.
fn filters_pass(c: &ColdScan) -> bool {
    if c.nfilters == 0 {
        return true;
    }
    // SAFETY: nfilters filters, palloc'd by begin.
    let filters = unsafe { std::slice::from_raw_parts(c.filters, c.nfilters as usize) };
    filters.iter().all(|f| {
        let (lo, lo_null) = attr(c.bslot, f.min_att as usize);
        let (hi, _) = attr(c.bslot, f.max_att as usize);
        let bound = |d: pg_sys::Datum| {
            if f.float {
                Bound::Float(f64::from_bits(d.value() as u64))
            } else {
                Bound::Int(d.value() as i64)
            }
        };
        let bounds = (!lo_null).then(|| (bound(lo), bound(hi)));
        batch_may_match(bounds, f.strategy, f.value)
    })
}

fn attr(slot: *mut pg_sys::TupleTableSlot, col: usize) -> (pg_sys::Datum, bool) {
    let mut isnull = false;
    // SAFETY: a column of the batch relation's slot.
    let d = unsafe { pg_sys::slot_getattr(slot, col as i32, &mut isnull) };
    (d, isnull)
}

/// Starts on the batch in `bslot`: its memory context reset and made current (the
/// caller switches back to the returned one), its number taken; returns its row count.
fn enter_batch(c: &mut ColdScan) -> (pg_sys::MemoryContext, i32) {
    // SAFETY: the scan's own batch context; the slot holds a batch row.
    let old = unsafe {
        pg_sys::MemoryContextReset(c.cxt);
        pg_sys::MemoryContextSwitchTo(c.cxt)
    };
    let nrows = attr(c.bslot, COL_ROWS).0.value() as i32;
    if !(1..=tid::MAX_BATCH_ROWS as i32).contains(&nrows) {
        cold::corrupt(&format!("a batch of {nrows} rows"));
    }
    c.batch = attr(c.bslot, COL_BATCH).0.value() as i32;
    (old, nrows)
}

/// Decodes the batch in `bslot` into the scan's batch arrays (only `needed` columns).
/// With `window`, when the scan has an upper time bound and reads the time column,
/// the other columns are decoded only up to the batch's first row at or past that
/// bound (rows are in time order; [`ColdScan::decoded`]): the rows after it fail the
/// scan's conditions, and a caller that takes a window must never read them.
fn load_batch(c: &mut ColdScan, window: bool) {
    // SAFETY: the batch context is reset for every batch and owns the arrays and every
    // by-reference datum; the slot holds a batch row of the batch relation.
    unsafe {
        let (old, nrows) = enter_batch(c);
        let natts = c.natts as usize;
        let rows = nrows as usize;
        let n = rows * natts;
        // Column-major: column i's rows at [i * rows, (i + 1) * rows). Only the NULL
        // flags of columns not read are set (their values are never looked at).
        c.values =
            pg_sys::palloc(n.max(1) * std::mem::size_of::<pg_sys::Datum>()) as *mut pg_sys::Datum;
        c.nulls = pg_sys::palloc(n.max(1)) as *mut bool;
        let values = std::slice::from_raw_parts_mut(c.values, n);
        let nulls = std::slice::from_raw_parts_mut(c.nulls, n);
        let specs = std::slice::from_raw_parts(c.specs, natts);
        let wanted = |i: usize| !specs[i].dropped && (c.needed.is_null() || *c.needed.add(i));
        let packed = (c.packed != 0 && (0..natts).any(wanted)).then(|| Packed::read(c, &wanted));
        let stored = packed
            .as_ref()
            .map_or(c.stored as usize, |p| p.dir.columns.len());
        let time = c.time_col as usize - 1;
        let windowed = window && c.time_hi < i64::MAX && wanted(time) && time < stored;
        // The time column first when windowed: it says how many rows the others need.
        let order = std::iter::once(time)
            .filter(|_| windowed)
            .chain((0..natts).filter(|&i| !windowed || i != time));
        let mut upto = rows;
        for i in order {
            let spec = &specs[i];
            let (vals, nuls) = (
                &mut values[i * rows..(i + 1) * rows],
                &mut nulls[i * rows..(i + 1) * rows],
            );
            if !wanted(i) {
                nuls.fill(true);
                continue;
            }
            if i >= stored {
                // added after the conversion: the column's missing value
                let mut isnull = false;
                let d = pg_sys::getmissingattr((*c.facade).rd_att, i as i32 + 1, &mut isnull);
                vals.fill(d);
                nuls.fill(isnull);
                continue;
            }
            let bytes = match &packed {
                Some(p) => p.column(i),
                None => {
                    let (d, isnull) = attr(c.bslot, FIXED_COLUMNS + i + 1);
                    if isnull {
                        cold::corrupt("a batch without one of its columns");
                    }
                    cold::datum_bytes(d, -1)
                }
            };
            let (col, total) =
                codec::decode_prefix(bytes, upto).unwrap_or_else(|e| cold::corrupt(&e.to_string()));
            if total != rows || col.values.kind() != spec.kind {
                cold::corrupt(&format!(
                    "column {} holds {} rows of {:?}, the batch {} rows of {:?}",
                    i + 1,
                    total,
                    col.values.kind(),
                    nrows,
                    spec.kind
                ));
            }
            cold::fill_datums(&col, spec, &mut vals[..upto], &mut nuls[..upto]);
            nuls[upto..].fill(true);
            if windowed && i == time {
                // rows before the first at or past the bound
                let hi = c.time_hi;
                upto = vals.partition_point(|d| (d.value() as i64) < hi);
            }
        }
        c.nrows = nrows;
        c.decoded = upto as i32;
        c.row = 0;
        c.lazy = false;
        c.batches_read += 1;
        pg_sys::MemoryContextSwitchTo(old);
    }
}

/// The packed columns of the batch in a scan's batch slot, fetched in the batch context:
/// the bytes from the first column wanted to the last.
struct Packed {
    dir: codec::pack::Directory,
    /// Where the fetched bytes start in the packed value, and the bytes.
    first: usize,
    whole: *const u8,
}

impl Packed {
    /// Fetches the packed value of the batch in `c.bslot` (columns `wanted`).
    ///
    /// # Safety
    /// `c.bslot` holds a batch row of a packed batch relation; the current memory
    /// context is the batch context.
    unsafe fn read(c: &ColdScan, wanted: &dyn Fn(usize) -> bool) -> Packed {
        // SAFETY: per the contract.
        let value = unsafe { cold::PackedValue::of(c.bslot, c.packed) };
        let dir = value.directory();
        // One fetch from the first to the last column wanted.
        let span = dir
            .columns
            .iter()
            .enumerate()
            .filter(|&(i, _)| wanted(i))
            .fold(None, |acc: Option<(usize, usize)>, (_, &(at, len))| {
                Some(acc.map_or((at, at + len), |(a, b)| (a.min(at), b.max(at + len))))
            });
        let (first, whole) = match span {
            Some((a, b)) => (a, value.range(a, b - a).as_ptr()),
            None => (0, std::ptr::null()),
        };
        Packed { dir, first, whole }
    }

    /// Column `i`'s encoded bytes (a column [`Packed::read`] fetched).
    fn column(&self, i: usize) -> &[u8] {
        let (at, len) = self.dir.columns[i];
        // SAFETY: `read` fetched the bytes from `first` through every wanted column into
        // the batch context, which outlives self.
        unsafe { std::slice::from_raw_parts(self.whole.add(at - self.first), len) }
    }
}

/// How far a minimal tuple's start lies past the start of the heap tuple header it
/// stands for (htup_details.h's MINIMAL_TUPLE_OFFSET, a macro pgrx does not bind).
const MINIMAL_TUPLE_OFFSET: usize =
    (std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_infomask2) - 4) / 8 * 8;

/// Hands out the last row of the batch in `bslot` from its last-row column, decoding
/// nothing (the batch's other rows come after [`load_batch`]); false when the batch
/// does not keep its last row.
fn serve_last_row(c: &mut ColdScan, slot: *mut pg_sys::TupleTableSlot) -> bool {
    let (d, isnull) = attr(c.bslot, c.last_att as usize);
    if isnull {
        return false;
    }
    // SAFETY: the batch context is reset for the batch and holds an aligned copy of the
    // stored minimal tuple (formed from the table's descriptor at conversion; a column
    // added since reads its missing value); the slot has the facade's descriptor.
    unsafe {
        let (old, nrows) = enter_batch(c);
        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        let len = pgrx::varlena::varsize_any_exhdr(v);
        if len < std::mem::size_of::<pg_sys::MinimalTupleData>() {
            cold::corrupt(&format!("a last row of {len} bytes"));
        }
        let row = pg_sys::palloc(len) as pg_sys::MinimalTuple;
        std::ptr::copy_nonoverlapping(
            pgrx::varlena::vardata_any(v) as *const u8,
            row as *mut u8,
            len,
        );
        let hoff = (*row).t_hoff as usize;
        if (*row).t_len as usize != len
            || ((*row).t_infomask2 as u32 & pg_sys::HEAP_NATTS_MASK) as i32 > c.stored
            || hoff < MINIMAL_TUPLE_OFFSET + std::mem::size_of::<pg_sys::MinimalTupleData>()
            || hoff > len + MINIMAL_TUPLE_OFFSET
        {
            cold::corrupt("its last row does not match the batch's columns");
        }
        clear_slot(slot);
        let mut tuple = pg_sys::HeapTupleData {
            t_len: (len + MINIMAL_TUPLE_OFFSET) as u32,
            t_data: (row as *mut u8).sub(MINIMAL_TUPLE_OFFSET) as pg_sys::HeapTupleHeader,
            ..Default::default()
        };
        pg_sys::heap_deform_tuple(
            &mut tuple,
            (*c.facade).rd_att,
            (*slot).tts_values,
            (*slot).tts_isnull,
        );
        let specs = std::slice::from_raw_parts(c.specs, c.natts as usize);
        for (i, spec) in specs.iter().enumerate() {
            if spec.dropped {
                *(*slot).tts_isnull.add(i) = true;
            }
        }
        stored_row(c, nrows - 1, slot);
        c.nrows = nrows;
        c.decoded = nrows;
        c.row = 1;
        c.lazy = true;
        c.rows_in_clear += 1;
        pg_sys::MemoryContextSwitchTo(old);
    }
    true
}

/// Whether a scan that decodes the columns `needed` marks (`None`: all) decodes column
/// `att` (0-based).
fn decodes(needed: Option<&[bool]>, att: usize) -> bool {
    needed.is_none_or(|n| n.get(att).copied().unwrap_or(false))
}

/// Whether row `r` of the decoded batch may pass the time range and every column
/// filter (a NULL never does: the comparisons are strict).
#[inline]
fn row_may_pass(c: &ColdScan, r: i32) -> bool {
    let (rows, at) = (c.nrows as usize, r as usize);
    if c.time_att > 0 {
        let i = (c.time_att as usize - 1) * rows + at;
        // SAFETY: the batch arrays hold nrows x natts entries; the time column is
        // decoded (begin checked).
        let (d, null) = unsafe { (*c.values.add(i), *c.nulls.add(i)) };
        let t = d.value() as i64;
        if null || t < c.time_lo || (t >= c.time_hi && c.time_hi != i64::MAX) {
            return false;
        }
    }
    if c.nfilters == 0 {
        return true;
    }
    // SAFETY: nfilters filters, palloc'd by begin.
    let filters = unsafe { std::slice::from_raw_parts(c.filters, c.nfilters as usize) };
    filters.iter().filter(|f| f.kind != RowKind::None).all(|f| {
        let i = f.att as usize * rows + at;
        // SAFETY: as above; each checked column was decoded (begin checked).
        let (d, null) = unsafe { (*c.values.add(i), *c.nulls.add(i)) };
        !null && value_may_match(f.kind.bound(d), f.strategy, f.value)
    })
}

/// Counts the rows [`next`] leaves out by the column filters in `*counter` (the
/// caller keeps it alive as long as the scan).
pub(super) fn count_filtered(cs: *mut ColdScan, counter: *mut i64) {
    // SAFETY: cs was made by begin.
    unsafe { (*cs).rows_filtered = counter };
}

/// Stores row `r` of the current batch in `slot` as a virtual tuple of the table.
fn store_row(c: &ColdScan, r: i32, slot: *mut pg_sys::TupleTableSlot) {
    let natts = c.natts as usize;
    // SAFETY: the slot has the facade's descriptor (natts columns); the batch arrays
    // hold nrows x natts entries, valid until the next batch.
    unsafe {
        clear_slot(slot);
        let (rows, at) = (c.nrows as usize, r as usize);
        for i in 0..natts {
            *(*slot).tts_values.add(i) = *c.values.add(i * rows + at);
            *(*slot).tts_isnull.add(i) = *c.nulls.add(i * rows + at);
        }
    }
    stored_row(c, r, slot);
}

/// ExecClearTuple, inlined (it runs once per row): the slot's clear callback (freeing
/// its own tuple, releasing its buffer) raises no error.
fn clear_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a valid slot; its clear callback is set for every slot type.
    unsafe {
        if (*slot).tts_flags & pg_sys::TTS_FLAG_EMPTY as u16 == 0 {
            ((*(*slot).tts_ops).clear.expect("slot clear"))(slot);
        }
    }
}

/// ExecStoreVirtualTuple, inlined, for row `r` (0-based) of the current batch, whose
/// values `slot` now holds: every column valid, the row's facade TID and table.
fn stored_row(c: &ColdScan, r: i32, slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a slot of the facade's descriptor (natts columns) holding the row's values.
    unsafe {
        (*slot).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        (*slot).tts_nvalid = c.natts as pg_sys::AttrNumber;
        let mut t = pg_sys::ItemPointerData::default();
        super::delegate::set_block(&mut t, c.batch as u32);
        t.ip_posid = (r + 1) as u16;
        encode_tid(c.ordinal, &mut t);
        (*slot).tts_tid = t;
        (*slot).tts_tableOid = rel_oid(c.facade);
    }
}

/// The scan's next row in `slot`; false at the end.
pub(super) fn next(cs: *mut ColdScan, slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: cs was made by begin.
    let c = unsafe { &mut *cs };
    loop {
        if c.row >= c.nrows && c.heap.is_null() && c.iscan.is_null() {
            // numbered batches only ([`sample_block`])
            if c.range_next >= c.range_end {
                return false;
            }
            let b = c.range_next;
            c.range_next += 1;
            load_numbered(cs, c.snapshot, b);
            continue;
        }
        if c.row < c.nrows {
            if c.lazy {
                // the batch's second row: decode it now, past the row handed out
                let row = c.row;
                load_batch(c, true);
                c.row = row;
            }
            let r = if c.backward {
                c.nrows - 1 - c.row
            } else {
                c.row
            };
            c.row += 1;
            if r >= c.decoded || c.row_filters && !row_may_pass(c, r) {
                if !c.rows_filtered.is_null() {
                    // SAFETY: the counter the scan's owner set, outliving the scan.
                    unsafe { *c.rows_filtered += 1 };
                }
                continue;
            }
            store_row(c, r, slot);
            return true;
        }
        if !next_batch_row(c) {
            return false;
        }
        if c.backward && c.last_att > 0 && serve_last_row(c, slot) {
            return true;
        }
        load_batch(c, true);
    }
}

/// Fetches row `row` (0-based) of batch `batch` of the cold chunk `rel` into `slot`,
/// if that batch is visible to `snapshot`.
pub(super) fn fetch(
    rel: pg_sys::Relation,
    facade: pg_sys::Relation,
    ordinal: u32,
    snapshot: pg_sys::Snapshot,
    batch: u32,
    row: u16,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    let cs = begin_for_fetch(rel, facade, ordinal);
    let mut ok = false;
    // SAFETY: cs is ours until end(); the slot is the caller's, of the table.
    unsafe {
        if load_numbered(cs, snapshot, batch) && row >= 1 && (row as i32) <= (*cs).nrows {
            store_row(&*cs, row as i32 - 1, slot);
            // the slot's values live in the batch context: keep them
            pg_sys::ExecMaterializeSlot(slot);
            ok = true;
        }
    }
    end(cs);
    ok
}

/// The number of batches of the cold chunk `rel` (batches are numbered from 0 without
/// gaps): one backward step of the batch index.
pub(super) fn batch_count(rel: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> u32 {
    // SAFETY: a keyless backward scan of the batch index of an open cold chunk; the
    // batch number is the index's only column.
    unsafe {
        let index = index_on(rel, COL_BATCH);
        let iscan = pg_sys::index_beginscan(rel, index, snapshot, 0, 0);
        pg_sys::index_rescan(iscan, std::ptr::null_mut(), 0, std::ptr::null_mut(), 0);
        let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsBufferHeapTuple);
        let n = if pg_sys::index_getnext_slot(
            iscan,
            pg_sys::ScanDirection::BackwardScanDirection,
            slot,
        ) {
            attr(slot, COL_BATCH).0.value() as u32 + 1
        } else {
            0
        };
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(iscan);
        super::delegate::release_index(index);
        n
    }
}

/// Loads batch number `batch` (visible to `snapshot`) into a scan made by
/// [`begin_for_fetch`]; its rows then come from [`next`]. False if there is none.
pub(super) fn load_numbered(cs: *mut ColdScan, snapshot: pg_sys::Snapshot, batch: u32) -> bool {
    // SAFETY: cs was made by begin_for_fetch; a one-key scan of its batch index.
    unsafe {
        let c = &mut *cs;
        c.nrows = 0;
        c.row = 0;
        let old = pg_sys::MemoryContextSwitchTo(c.home);
        let index = index_on(c.rel, COL_BATCH);
        let mut key = pg_sys::ScanKeyData::default();
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::RegProcedure::from(pg_sys::F_INT4EQ),
            pg_sys::Datum::from(batch as i32),
        );
        let iscan = pg_sys::index_beginscan(c.rel, index, snapshot, 1, 0);
        pg_sys::index_rescan(iscan, &mut key, 1, std::ptr::null_mut(), 0);
        let found =
            pg_sys::index_getnext_slot(iscan, pg_sys::ScanDirection::ForwardScanDirection, c.bslot);
        if found {
            load_batch(c, false);
        }
        pg_sys::index_endscan(iscan);
        super::delegate::release_index(index);
        pg_sys::MemoryContextSwitchTo(old);
        found
    }
}

/// Makes a scan from [`begin_for_fetch`] read the batches ANALYZE's block `block` of
/// the batch relation stands for: blocks map evenly onto batch numbers, so sampling
/// blocks uniformly samples batches uniformly and every batch has one block. True
/// when the block stands for at least one batch.
pub(super) fn sample_block(cs: *mut ColdScan, snapshot: pg_sys::Snapshot, block: u32) -> bool {
    // SAFETY: cs was made by begin_for_fetch; its relation is open.
    let c = unsafe { &mut *cs };
    if c.blocks == 0 {
        // SAFETY: as above.
        c.blocks = unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(c.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        };
        c.nbatches = batch_count(c.rel, snapshot);
    }
    if c.blocks == 0 || block >= c.blocks {
        return false;
    }
    let at = |b: u32| (u64::from(b) * u64::from(c.nbatches) / u64::from(c.blocks)) as u32;
    c.range_next = at(block);
    c.range_end = at(block + 1);
    c.snapshot = snapshot;
    c.nrows = 0;
    c.row = 0;
    c.range_next < c.range_end
}

/// A cold scan of `rel` that reads numbered batches only ([`load_numbered`]: ANALYZE's
/// sample, fetches by TID).
pub(super) fn begin_for_fetch(
    rel: pg_sys::Relation,
    facade: pg_sys::Relation,
    ordinal: u32,
) -> *mut ColdScan {
    begin_without_reader(rel, facade, ordinal)
}

/// A cold scan state with no batch source (for [`fetch`]).
fn begin_without_reader(
    rel: pg_sys::Relation,
    facade: pg_sys::Relation,
    ordinal: u32,
) -> *mut ColdScan {
    // SAFETY: as in begin, without starting a scan.
    unsafe {
        let cs = pg_sys::palloc0(std::mem::size_of::<ColdScan>()) as *mut ColdScan;
        let c = &mut *cs;
        c.rel = rel;
        c.facade = facade;
        c.ordinal = ordinal;
        c.time_lo = i64::MIN;
        c.time_hi = i64::MAX;
        c.home = pg_sys::CurrentMemoryContext;
        let specs = cold::column_specs((*facade).rd_att);
        c.natts = specs.len() as i32;
        c.specs = super::chunk_scan::palloc_array(&specs);
        c.packed = cold::packed_attnum(rel);
        c.time_col = super::config::config(facade).time_attnum as i32;
        c.stored = if c.packed != 0 {
            c.natts
        } else {
            cold::stored_columns(rel)
        };
        c.bslot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsBufferHeapTuple);
        c.cxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"bidim cold batch".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        cs
    }
}

/// The scan's next batch within its time range, not decoded yet: the TID of its batch
/// row and its key, converted by `key` while the row is at hand. `None` at the end.
pub(super) fn next_batch<K>(
    cs: *mut ColdScan,
    key: impl FnOnce(pg_sys::Datum, pg_sys::Oid) -> K,
) -> Option<(pg_sys::ItemPointerData, K)> {
    // SAFETY: cs was made by begin; its slot holds the batch row found.
    let c = unsafe { &mut *cs };
    c.nrows = 0;
    c.row = 0;
    c.lazy = false;
    if !next_batch_row(c) {
        return None;
    }
    // SAFETY: the batch relation's descriptor; its key column's type.
    let (tid, keytype) = unsafe {
        let desc = (*c.rel).rd_att;
        (
            (*c.bslot).tts_tid,
            (*desc).attrs.as_slice((*desc).natts as usize)[COL_KEY - 1].atttypid,
        )
    };
    Some((tid, key(attr(c.bslot, COL_KEY).0, keytype)))
}

/// Decodes the batch [`next_batch`] found (every column); its rows are then
/// [`batch_row`] 0..n (not handed out by [`next`]). Returns n. With `window`, only the
/// rows before the scan's upper time bound are decoded ([`load_batch`]; their count
/// in [`batch_values`]): for a reader of the rows in the time range, never for one
/// that moves every row of the batch.
pub(super) fn decode_batch(cs: *mut ColdScan, window: bool) -> i32 {
    // SAFETY: cs was made by begin and holds a batch row.
    let c = unsafe { &mut *cs };
    load_batch(c, window);
    c.row = c.nrows;
    c.nrows
}

/// The decoded batch's values and NULL flags (rows x columns of the table,
/// column-major: column i's rows at `i * rows ..`) and its row count; valid until the
/// next batch.
pub(super) fn batch_values(cs: *mut ColdScan) -> (*const pg_sys::Datum, *const bool, i32, i32) {
    // SAFETY: cs was made by begin and holds a decoded batch.
    let c = unsafe { &*cs };
    (c.values, c.nulls, c.nrows, c.decoded)
}

/// Stores row `r` (0-based) of the decoded batch in `slot`, a slot of the table; its
/// values live until the next batch.
pub(super) fn batch_row(cs: *mut ColdScan, r: i32, slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: cs was made by begin and holds a decoded batch.
    let c = unsafe { &*cs };
    assert!(
        (0..c.decoded).contains(&r),
        "bidim: row {r} outside the batch's decoded rows"
    );
    store_row(c, r, slot);
}

/// Calls `each` with every batch row of the open cold chunk `rel` visible to
/// `snapshot` (a heap scan of the batch relation; nothing decoded).
fn for_each_batch_row(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    mut each: impl FnMut(*mut pg_sys::TupleTableSlot),
) {
    // SAFETY: a heap scan of the batch relation into a slot of its own descriptor.
    unsafe {
        let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsBufferHeapTuple);
        let scan = super::delegate::heap_seqscan(rel, snapshot);
        while super::delegate::heap_call!(scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot
        )) {
            each(slot);
        }
        super::delegate::heap_call!(scan_end(scan));
        pg_sys::ExecDropSingleTupleTableSlot(slot);
    }
}

/// Bytes of each table column (by attribute number - 1, `natts` of them) in the
/// batches of the open cold chunk `rel` visible to `snapshot`: the encoded columns'
/// lengths (packed batches: read from their directories; a column each: their
/// stored sizes, TOAST pointers' targets included).
pub(super) fn column_bytes(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    natts: usize,
) -> Vec<i64> {
    let mut out = vec![0i64; natts];
    let packed = cold::packed_attnum(rel);
    let stored = (cold::stored_columns(rel) as usize).min(natts);
    for_each_batch_row(rel, snapshot, |slot| {
        if packed == 0 {
            for (i, b) in out.iter_mut().enumerate().take(stored) {
                let (d, isnull) = attr(slot, FIXED_COLUMNS + i + 1);
                if !isnull {
                    // SAFETY: a bytea datum of the slot.
                    *b += unsafe { pg_sys::toast_datum_size(d) } as i64;
                }
            }
            return;
        }
        // SAFETY: a batch row of a packed batch relation; the directory's bytes are
        // palloc'd in the caller's context (a small copy a batch).
        let dir = unsafe { cold::PackedValue::of(slot, packed) }.directory();
        for (b, &(_, len)) in out.iter_mut().zip(&dir.columns) {
            *b += len as i64;
        }
    });
    out
}

/// The batches of the open cold chunk `rel` visible to `snapshot` that may hold rows
/// in [lo, hi): their batch rows' TIDs and time min and max (no column decoded).
pub(super) fn batch_spans(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    lo: i64,
    hi: i64,
) -> Vec<(pg_sys::ItemPointerData, i64, i64)> {
    let mut out = Vec::new();
    for_each_batch_row(rel, snapshot, |slot| {
        let tmin = attr(slot, COL_TIME_MIN).0.value() as i64;
        let tmax = attr(slot, COL_TIME_MAX).0.value() as i64;
        if tmax >= lo && tmin < hi {
            // SAFETY: the slot holds the batch row just read.
            out.push((unsafe { (*slot).tts_tid }, tmin, tmax));
        }
    });
    out
}

/// Decodes the batch whose batch row is at `tid` (visible to `snapshot`) into a scan
/// made by [`begin_for_fetch`] (its rows: [`batch_values`]); false if it is gone.
pub(super) fn load_at(
    cs: *mut ColdScan,
    snapshot: pg_sys::Snapshot,
    tid: pg_sys::ItemPointerData,
) -> bool {
    // SAFETY: cs was made by begin_for_fetch; heap fetches the row version at tid.
    unsafe {
        let c = &mut *cs;
        c.nrows = 0;
        c.row = 0;
        let mut t = tid;
        let old = pg_sys::MemoryContextSwitchTo(c.home);
        let found =
            super::delegate::heap_call!(tuple_fetch_row_version(c.rel, &mut t, snapshot, c.bslot));
        pg_sys::MemoryContextSwitchTo(old);
        if found {
            load_batch(c, true);
            c.row = c.nrows;
        }
        found
    }
}

/// Makes a scan's batches decode only up to their first row at or past `hi` (a
/// [`load_at`] caller that never reads those rows: [`batch_values`]' decoded count).
pub(super) fn set_time_hi(cs: *mut ColdScan, hi: i64) {
    // SAFETY: cs was made by begin_for_fetch; nothing else reads its time bounds.
    unsafe { (*cs).time_hi = hi };
}

/// Makes a scan decode only the table columns flagged in `needed`.
pub(super) fn set_needed(cs: *mut ColdScan, needed: &[bool]) {
    // SAFETY: cs was made in the current memory context's lifetime.
    unsafe { (*cs).needed = super::chunk_scan::palloc_array(needed) };
}

/// The rows the batches of the open cold chunk `rel` visible to `snapshot` hold.
pub(super) fn live_rows(rel: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> i64 {
    let mut rows = 0i64;
    for_each_batch_row(rel, snapshot, |slot| {
        rows += attr(slot, COL_ROWS).0.value() as i32 as i64;
    });
    rows
}

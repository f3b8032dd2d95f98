//! Cold chunks: the layout of their batch relation, the mapping of PostgreSQL values
//! to the column codecs ([`super::codec`]) and back, and the batch writer.
//!
//! A cold chunk is an internal heap relation `bidim_internal.c<table oid>_<ordinal>`
//! with one row per batch (heap gives it WAL, crash recovery, replicas and MVCC):
//!
//! | column | |
//! |---|---|
//! | `_bidim_batch int4` | batch number in the chunk (unique index `<name>_batch`: fetch by TID) |
//! | `_bidim_rows int4` | rows in the batch (at most [`BATCH_ROWS`]) |
//! | `_bidim_key` (the key's type) | the batch's key: every row of a batch has one key |
//! | `_bidim_time_min`, `_bidim_time_max` | first and last time of its rows (index `<name>_kt` on (key, time_max)) |
//! | `_bidim_columns bytea` | every table column of the batch, encoded ([`super::codec`]) and packed into one value ([`super::codec::pack`]); storage EXTERNAL: already compressed. A batch row above [`WHOLE_ROW_BYTES`] keeps only the value's first bytes here, a whole number of TOAST chunks ([`split_packed`]) |
//! | `_bidim_columns_tail bytea` | the rest of the packed value of a split batch row, else NULL; storage MAIN (in the batch row). Chunks converted before the fifteenth session have neither column but one `c<attnum> bytea` per table column |
//! | `_bidim_min<attnum>`, `_bidim_max<attnum>` (int8 or float8) | for each integer, float, date, time or timestamp column other than the key and time: the smallest and largest non-NULL value of the batch (NULL: all NULL); scans skip batches by them |
//! | `_bidim_last bytea` | the batch's last row (its newest), not encoded: a minimal tuple of the table's columns, NULL when it takes more than [`LAST_ROW_MAX_BYTES`]; a newest-first read hands it out without decoding the batch (chunks converted before it existed lack the column) |
//!
//! Rows are sorted by (key, time), so batch numbers follow (key, time). A row's TID is
//! block = ordinal << 18 | batch, offset = row in batch + 1 (`docs/architecture.md`).

use super::codec::{self, ByteValues, Column, Kind, Values};
use super::prune::Bound;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Most rows in one batch: compression grows with batch size, pruning with smallness
/// (docs/benchmarks.md has the measurement), and a row's place in its batch must fit a
/// TID offset.
pub const BATCH_ROWS: usize = super::tid::MAX_BATCH_ROWS as usize;
/// A batch also ends once its variable-length values take this many bytes, so one
/// batch decodes in bounded memory however wide its values are.
pub const BATCH_BYTES: usize = 32 << 20;

/// Name of the first column of every batch relation (how a cold chunk is recognized).
pub const BATCH_COLUMN: &str = "_bidim_batch";
/// Name of the column holding a batch's columns, packed ([`packed_attnum`]).
pub const PACKED_COLUMN: &str = "_bidim_columns";
/// Name of the column right after it: the packed value's last bytes when the batch row
/// is split ([`split_packed`]), else NULL.
pub const PACKED_TAIL_COLUMN: &str = "_bidim_columns_tail";
/// The batch relation's `toast_tuple_target`: a batch row up to this size stays whole
/// in its page (two fit a page); a larger one is split ([`split_packed`]).
pub const WHOLE_ROW_BYTES: usize = 4080;
/// PostgreSQL's TOAST_MAX_CHUNK_SIZE (toast_internals.h): the data a TOAST row holds,
/// chosen so that four full TOAST rows fill a page.
pub const TOAST_CHUNK_BYTES: usize = toast_max_chunk_size(pg_sys::BLCKSZ as usize);

/// TOAST_MAX_CHUNK_SIZE for pages of `blcksz` bytes: a quarter of a page less its
/// header and four line pointers, aligned down to 8 bytes, less a TOAST row's header
/// (23 bytes aligned to 24), its value id, sequence number and varlena header.
pub const fn toast_max_chunk_size(blcksz: usize) -> usize {
    let per_tuple = (blcksz - (24 + 4 * 4)) / 4 / 8 * 8;
    per_tuple - 24 - 4 - 4 - 4
}

/// Where a packed value of `len` bytes is cut when its batch row is too big to stay
/// whole: the head, a whole number of TOAST chunks, goes to TOAST (EXTERNAL storage:
/// only full TOAST rows, four to a page); the tail stays in the batch row (MAIN
/// storage). A value TOASTed whole leaves a partial last TOAST row on every page it
/// ends in, where no full one fits any more: a quarter of TSBS's TOAST pages was empty
/// space with 2000-row batches (measured).
pub fn split_packed(len: usize) -> usize {
    len / TOAST_CHUNK_BYTES * TOAST_CHUNK_BYTES
}

/// Name of the batch relation's last column: the batch's last row in the clear.
pub const LAST_ROW_COLUMN: &str = "_bidim_last";
/// A batch keeps its last row in the clear only when that row's minimal tuple takes
/// at most this many bytes (TSBS's cpu rows take about 110).
pub const LAST_ROW_MAX_BYTES: usize = 1024;
/// Positions of the batch relation's fixed columns.
pub const COL_BATCH: usize = 1;
pub const COL_ROWS: usize = 2;
pub const COL_KEY: usize = 3;
pub const COL_TIME_MIN: usize = 4;
pub const COL_TIME_MAX: usize = 5;
pub const FIXED_COLUMNS: usize = 5;

/// Whether the open chunk relation `rel` is a cold chunk (a batch relation).
pub(super) fn is_cold(rel: pg_sys::Relation) -> bool {
    // SAFETY: an open relation's descriptor; its first attribute's name is NUL-terminated.
    unsafe {
        let desc = (*rel).rd_att;
        (*desc).natts >= FIXED_COLUMNS as i32
            && std::ffi::CStr::from_ptr((*desc).attrs.as_slice(1)[0].attname.data.as_ptr())
                .to_bytes()
                == BATCH_COLUMN.as_bytes()
    }
}

/// The attribute number of the [`LAST_ROW_COLUMN`] of the open batch relation `rel`
/// (always its last column), or 0 if its batches do not keep their last row.
pub(super) fn last_row_attnum(rel: pg_sys::Relation) -> i32 {
    // SAFETY: an open relation's descriptor; attribute names are NUL-terminated.
    unsafe {
        let desc = (*rel).rd_att;
        let natts = (*desc).natts as usize;
        let last = &(*desc).attrs.as_slice(natts)[natts - 1];
        let named = std::ffi::CStr::from_ptr(last.attname.data.as_ptr()).to_bytes()
            == LAST_ROW_COLUMN.as_bytes();
        if named && !last.attisdropped {
            natts as i32
        } else {
            0
        }
    }
}

/// The attribute number of the [`PACKED_COLUMN`] of the open batch relation `rel`
/// (right after the fixed columns), or 0 if its batches keep a column per table column.
pub(super) fn packed_attnum(rel: pg_sys::Relation) -> i32 {
    // SAFETY: an open relation's descriptor; attribute names are NUL-terminated.
    unsafe {
        let desc = (*rel).rd_att;
        if ((*desc).natts as usize) <= FIXED_COLUMNS {
            return 0;
        }
        let a = &(*desc).attrs.as_slice(FIXED_COLUMNS + 1)[FIXED_COLUMNS];
        if std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_bytes() == PACKED_COLUMN.as_bytes()
        {
            FIXED_COLUMNS as i32 + 1
        } else {
            0
        }
    }
}

/// Attribute names of an open batch relation, from `FIXED_COLUMNS + 1` on.
pub(super) fn column_names(rel: pg_sys::Relation) -> Vec<String> {
    // SAFETY: an open relation's descriptor; attribute names are NUL-terminated.
    unsafe {
        let desc = (*rel).rd_att;
        (*desc).attrs.as_slice((*desc).natts as usize)[FIXED_COLUMNS..]
            .iter()
            .map(|a| {
                std::ffi::CStr::from_ptr(a.attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// How many table columns the batches of the open batch relation `rel` store (the
/// table's columns when it was converted: `c1` ... `cn`), read from its descriptor
/// without copying names (every cold scan begins with it).
pub(super) fn stored_columns(rel: pg_sys::Relation) -> i32 {
    // SAFETY: an open relation's descriptor; attribute names are NUL-terminated.
    unsafe {
        let desc = (*rel).rd_att;
        (*desc).attrs.as_slice((*desc).natts as usize)[FIXED_COLUMNS..]
            .iter()
            .take_while(|a| {
                !std::ffi::CStr::from_ptr(a.attname.data.as_ptr())
                    .to_bytes()
                    .starts_with(b"_bidim_")
            })
            .count() as i32
    }
}

/// The attribute numbers of the min and max columns of table column `attnum` in a
/// batch relation whose [`column_names`] are `names`, if its batches keep them.
pub(super) fn bound_attnums(names: &[String], attnum: i16) -> Option<(i32, i32)> {
    let (min, max) = bound_names(attnum as usize);
    let at = |n: &str| names.iter().position(|x| x == n);
    Some((
        (FIXED_COLUMNS + at(&min)? + 1) as i32,
        (FIXED_COLUMNS + at(&max)? + 1) as i32,
    ))
}

/// How one table column is stored in batches.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ColSpec {
    pub kind: Kind,
    pub typlen: i16,
    pub dropped: bool,
    /// Whether batches keep the column's min/max ([`BOUND_INT`], [`BOUND_FLOAT`]) or
    /// not (0).
    pub bounded: u8,
}

/// Batches keep min/max as int8 (integers, dates, times, timestamps) or float8.
pub const BOUND_INT: u8 = 1;
pub const BOUND_FLOAT: u8 = 2;

/// How batches bound a column of base type `base`: integer-like types whose b-tree
/// order is their numeric order, and floats.
pub fn bound_kind(base: pg_sys::Oid) -> u8 {
    match base {
        t if t == pg_sys::INT2OID
            || t == pg_sys::INT4OID
            || t == pg_sys::INT8OID
            || t == pg_sys::DATEOID
            || t == pg_sys::TIMEOID
            || t == pg_sys::TIMESTAMPOID
            || t == pg_sys::TIMESTAMPTZOID =>
        {
            BOUND_INT
        }
        t if t == pg_sys::FLOAT4OID || t == pg_sys::FLOAT8OID => BOUND_FLOAT,
        _ => 0,
    }
}

/// The table columns (0-based) whose min/max a new batch relation keeps: bounded
/// columns other than the key and time (those have their own).
pub fn bounded_columns(specs: &[ColSpec], key_attnum: i16, time_attnum: i16) -> Vec<usize> {
    (0..specs.len())
        .filter(|&i| {
            let attnum = i as i16 + 1;
            specs[i].bounded != 0
                && !specs[i].dropped
                && attnum != key_attnum
                && attnum != time_attnum
        })
        .collect()
}

/// Names of the batch relation's min and max columns of table column `attnum`.
pub fn bound_names(attnum: usize) -> (String, String) {
    (format!("_bidim_min{attnum}"), format!("_bidim_max{attnum}"))
}

/// The storage of every column of a table descriptor (attribute `i + 1` at `i`).
pub(super) fn column_specs(desc: pg_sys::TupleDesc) -> Vec<ColSpec> {
    // SAFETY: an open relation's descriptor with natts attributes.
    let attrs = unsafe { (*desc).attrs.as_slice((*desc).natts as usize) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: a syscache lookup of a type's base type (a dropped column has none).
            let base = if a.attisdropped {
                pg_sys::InvalidOid
            } else {
                unsafe { pg_sys::getBaseType(a.atttypid) }
            };
            let kind = if base == pg_sys::BOOLOID {
                Kind::Bool
            } else if a.attbyval {
                match a.attlen {
                    1 | 2 => Kind::I16,
                    4 if base == pg_sys::FLOAT4OID => Kind::F32,
                    4 => Kind::I32,
                    8 if base == pg_sys::FLOAT8OID => Kind::F64,
                    _ => Kind::I64,
                }
            } else {
                Kind::Bytes
            };
            ColSpec {
                kind,
                typlen: a.attlen,
                dropped: a.attisdropped,
                bounded: bound_kind(base),
            }
        })
        .collect()
}

/// One column of a batch being built.
pub struct ColumnBuilder {
    spec: ColSpec,
    rows: usize,
    nulls: Vec<u8>,
    any_null: bool,
    values: Values,
    /// Smallest and largest non-NULL value so far (bounded columns).
    bounds: Option<(Bound, Bound)>,
}

impl ColumnBuilder {
    pub fn new(spec: ColSpec) -> ColumnBuilder {
        ColumnBuilder {
            spec,
            rows: 0,
            nulls: Vec::new(),
            any_null: false,
            values: Values::empty(spec.kind),
            bounds: None,
        }
    }

    /// The batch's min and max of a bounded column (`None`: no non-NULL value yet).
    pub fn bounds(&self) -> Option<(Bound, Bound)> {
        self.bounds
    }

    fn widen(&mut self, b: Bound) {
        self.bounds = Some(match self.bounds {
            None => (b, b),
            Some((lo, hi)) => (lo.least(b), hi.greatest(b)),
        });
    }

    /// Appends one value; returns the bytes it added (variable-length values).
    ///
    /// # Safety
    /// `d` must be a valid datum of the column's type unless `isnull`.
    pub unsafe fn push(&mut self, d: pg_sys::Datum, isnull: bool) -> usize {
        if self.rows.is_multiple_of(8) {
            self.nulls.push(0);
        }
        let row = self.rows;
        self.rows += 1;
        if isnull {
            self.nulls[row / 8] |= 1 << (row % 8);
            self.any_null = true;
            return 0;
        }
        let raw = d.value();
        if self.spec.bounded != 0 {
            let b = match self.spec.kind {
                Kind::I16 => Bound::Int(raw as u16 as i16 as i64),
                Kind::I32 => Bound::Int(raw as u32 as i32 as i64),
                Kind::F32 => Bound::Float(f32::from_bits(raw as u32) as f64),
                Kind::F64 => Bound::Float(f64::from_bits(raw as u64)),
                _ => Bound::Int(raw as i64),
            };
            self.widen(b);
        }
        match &mut self.values {
            Values::Bool(v) => v.push(raw & 0xff != 0),
            Values::I16(v) if self.spec.typlen == 1 => v.push(raw as u8 as i8 as i16),
            Values::I16(v) => v.push(raw as u16 as i16),
            Values::I32(v) => v.push(raw as u32 as i32),
            Values::I64(v) => v.push(raw as i64),
            Values::F32(v) => v.push(f32::from_bits(raw as u32)),
            Values::F64(v) => v.push(f64::from_bits(raw as u64)),
            Values::Bytes(v) => {
                // SAFETY: the caller passes a datum of the column's by-reference type.
                let bytes = unsafe { datum_bytes(d, self.spec.typlen) };
                v.push(bytes);
                return bytes.len();
            }
        }
        0
    }

    /// Rows in the builder.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the variable-length values in the builder.
    pub fn bytes(&self) -> usize {
        match &self.values {
            Values::Bytes(b) => b.data.len(),
            _ => 0,
        }
    }

    /// Rows `at..` as a builder of their own (the rows of the next batch); `self` keeps
    /// rows `..at`. Both bounds are recomputed.
    pub fn split_off(&mut self, at: usize) -> ColumnBuilder {
        assert!(at <= self.rows, "a split within the rows");
        let null = |n: &[u8], i: usize| n[i / 8] & (1 << (i % 8)) != 0;
        let mut rest = ColumnBuilder::new(self.spec);
        let kept_values = (0..at).filter(|&i| !null(&self.nulls, i)).count();
        rest.values = self.values.split_off(kept_values);
        rest.rows = self.rows - at;
        rest.nulls = vec![0; rest.rows.div_ceil(8)];
        for i in at..self.rows {
            if null(&self.nulls, i) {
                rest.nulls[(i - at) / 8] |= 1 << ((i - at) % 8);
                rest.any_null = true;
            }
        }
        self.rows = at;
        self.nulls.truncate(at.div_ceil(8));
        if let Some(last) = self.nulls.last_mut() {
            if !at.is_multiple_of(8) {
                *last &= (1u8 << (at % 8)) - 1;
            }
        }
        self.any_null = self.nulls.iter().any(|&b| b != 0);
        self.rebound();
        rest.rebound();
        rest
    }

    /// Recomputes the bounds from the values (a bounded column's values are numbers).
    fn rebound(&mut self) {
        self.bounds = None;
        if self.spec.bounded == 0 {
            return;
        }
        let bounds: Vec<Bound> = match &self.values {
            Values::I16(v) => v.iter().map(|&x| Bound::Int(x as i64)).collect(),
            Values::I32(v) => v.iter().map(|&x| Bound::Int(x as i64)).collect(),
            Values::I64(v) => v.iter().map(|&x| Bound::Int(x)).collect(),
            Values::F32(v) => v.iter().map(|&x| Bound::Float(x as f64)).collect(),
            Values::F64(v) => v.iter().map(|&x| Bound::Float(x)).collect(),
            Values::Bool(_) | Values::Bytes(_) => return,
        };
        for b in bounds {
            self.widen(b);
        }
    }

    /// The column's last value as a datum (by-reference values palloc'd in the current
    /// memory context), as [`fill_datums`] makes it from the decoded column; NULL when
    /// the column has no row yet or its last row is NULL.
    pub fn last_datum(&self) -> (pg_sys::Datum, bool) {
        let Some(row) = self.rows.checked_sub(1) else {
            return (pg_sys::Datum::from(0), true);
        };
        if self.nulls[row / 8] & (1 << (row % 8)) != 0 {
            return (pg_sys::Datum::from(0), true);
        }
        // the last row is not NULL, so its value is the last one pushed
        let d = match &self.values {
            Values::Bool(v) => v[v.len() - 1].datum(),
            Values::I16(v) => v[v.len() - 1].datum(),
            Values::I32(v) => v[v.len() - 1].datum(),
            Values::I64(v) => v[v.len() - 1].datum(),
            Values::F32(v) => v[v.len() - 1].datum(),
            Values::F64(v) => v[v.len() - 1].datum(),
            Values::Bytes(b) => bytes_datum(b, b.len() - 1, self.spec.typlen),
        };
        (d, false)
    }

    /// The encoded column; the builder is empty again.
    pub fn finish(&mut self) -> Vec<u8> {
        let values = std::mem::replace(&mut self.values, Values::empty(self.spec.kind));
        let col = Column {
            rows: self.rows,
            nulls: self.any_null.then(|| std::mem::take(&mut self.nulls)),
            values,
        };
        self.rows = 0;
        self.nulls.clear();
        self.any_null = false;
        self.bounds = None;
        codec::encode(&col)
    }
}

/// The bytes of a by-reference datum: a varlena's data (detoasted, in the current
/// memory context), a fixed-length value's `typlen` bytes, or a C string's.
///
/// # Safety
/// `d` must be a valid datum of a by-reference type of length `typlen`.
pub(super) unsafe fn datum_bytes<'a>(d: pg_sys::Datum, typlen: i16) -> &'a [u8] {
    // SAFETY: per the contract; a detoasted varlena stays in the current context.
    unsafe {
        match typlen {
            -1 => varlena_bytes(pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr())),
            -2 => std::ffi::CStr::from_ptr(d.cast_mut_ptr()).to_bytes(),
            n => std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), n as usize),
        }
    }
}

/// The data bytes of a varlena in plain form (not TOASTed, not compressed).
///
/// # Safety
/// `v` must be such a varlena, alive as long as the bytes are used.
unsafe fn varlena_bytes<'a>(v: *const pg_sys::varlena) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe {
        std::slice::from_raw_parts(
            pgrx::varlena::vardata_any(v) as *const u8,
            pgrx::varlena::varsize_any_exhdr(v),
        )
    }
}

/// A decoded fixed-size value as the datum PostgreSQL passes it by value (the one
/// conversion for whole columns and for a batch's last row).
trait ToDatum: Copy {
    fn datum(self) -> pg_sys::Datum;
}

macro_rules! to_datum {
    ($($t:ty => |$x:ident| $e:expr;)*) => {
        $(impl ToDatum for $t {
            fn datum(self) -> pg_sys::Datum {
                let $x = self;
                pg_sys::Datum::from($e)
            }
        })*
    };
}

to_datum! {
    bool => |x| x;
    i16 => |x| x as i64 as usize;
    i32 => |x| x as i64 as usize;
    i64 => |x| x as usize;
    f32 => |x| x.to_bits() as usize;
    f64 => |x| x.to_bits() as usize;
}

/// Writes the datums of decoded column `col` into `values`/`nulls` (one entry a row:
/// the column's contiguous part of column-major batch arrays), by-reference values
/// allocated in the current memory context; NULL rows are flagged NULL.
pub(super) fn fill_datums(
    col: &Column,
    spec: &ColSpec,
    values: &mut [pg_sys::Datum],
    nulls: &mut [bool],
) {
    // One pass per kind (the match outside the row loop).
    fn fill<T: Copy>(
        col: &Column,
        v: &[T],
        values: &mut [pg_sys::Datum],
        nulls: &mut [bool],
        to: impl Fn(T) -> pg_sys::Datum,
    ) {
        if col.nulls.is_none() {
            for (d, &x) in values.iter_mut().zip(v) {
                *d = to(x);
            }
            nulls[..v.len()].fill(false);
            return;
        }
        let mut k = 0;
        for r in 0..col.rows {
            let null = col.is_null(r);
            nulls[r] = null;
            if !null {
                values[r] = to(v[k]);
                k += 1;
            }
        }
    }
    match &col.values {
        Values::Bool(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::I16(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::I32(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::I64(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::F32(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::F64(v) => fill(col, v, values, nulls, ToDatum::datum),
        Values::Bytes(b) => {
            let idx: Vec<usize> = (0..b.len()).collect();
            fill(col, &idx, values, nulls, |k| bytes_datum(b, k, spec.typlen))
        }
    }
}

fn bytes_datum(v: &ByteValues, i: usize, typlen: i16) -> pg_sys::Datum {
    let b = v.get(i);
    // SAFETY: palloc'd copies sized for the bytes plus their header or terminator.
    unsafe {
        match typlen {
            -1 => {
                let p = pg_sys::palloc(b.len() + pg_sys::VARHDRSZ) as *mut pg_sys::varlena;
                pgrx::varlena::set_varsize_4b(p, (b.len() + pg_sys::VARHDRSZ) as i32);
                std::ptr::copy_nonoverlapping(
                    b.as_ptr(),
                    (p as *mut u8).add(pg_sys::VARHDRSZ),
                    b.len(),
                );
                pg_sys::Datum::from(p)
            }
            -2 => {
                let p = pg_sys::palloc0(b.len() + 1) as *mut u8;
                std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                pg_sys::Datum::from(p)
            }
            n => {
                if b.len() != n as usize {
                    corrupt(&format!(
                        "a value of {} bytes in a column of {n}-byte values",
                        b.len()
                    ));
                }
                let p = pg_sys::palloc(b.len()) as *mut u8;
                std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                pg_sys::Datum::from(p)
            }
        }
    }
}

/// A batch's packed value as stored: its head (TOASTed or inline) and its tail (NULL:
/// the head is all of it).
pub(super) struct PackedValue {
    head: *mut pg_sys::varlena,
    head_len: usize,
    /// The tail's bytes (detoasted; `total - head_len` of them).
    tail: *const u8,
    pub total: usize,
}

impl PackedValue {
    /// The packed value of the batch row in `slot` (a slot of a batch relation whose
    /// [`packed_attnum`] is `att`).
    ///
    /// # Safety
    /// `slot` holds a batch row; the returned value's bytes live in the current memory
    /// context and the slot's row, and must not outlive either.
    pub unsafe fn of(slot: *mut pg_sys::TupleTableSlot, att: i32) -> PackedValue {
        let mut isnull = false;
        // SAFETY: per the contract; the tail is detoasted into the current context.
        unsafe {
            let head = pg_sys::slot_getattr(slot, att, &mut isnull);
            if isnull {
                corrupt("a batch without its columns");
            }
            let tail = pg_sys::slot_getattr(slot, att + 1, &mut isnull);
            let (tail, tail_len) = if isnull {
                (std::ptr::null(), 0)
            } else {
                let t = datum_bytes(tail, -1);
                (t.as_ptr(), t.len())
            };
            let head_len = pg_sys::toast_raw_datum_size(head).saturating_sub(pg_sys::VARHDRSZ);
            PackedValue {
                head: head.cast_mut_ptr(),
                head_len,
                tail,
                total: head_len + tail_len,
            }
        }
    }

    /// Bytes `at .. at + len` of the value (within `total`), fetched into the current
    /// memory context: a TOASTed head is read by slices, only the TOAST rows needed.
    pub fn range(&self, at: usize, len: usize) -> &[u8] {
        assert!(at + len <= self.total, "a range within the packed value");
        let end = at + len;
        // SAFETY: the head is a bytea datum of the batch row (inline or a TOAST
        // pointer); detoasted copies are palloc'd in the current context.
        unsafe {
            let plain = !pgrx::varlena::varatt_is_1b_e(self.head)
                && !pgrx::varlena::varatt_is_4b_c(self.head);
            let from_head = |a: usize, b: usize| -> &[u8] {
                let s = if plain {
                    // in the row, uncompressed: no copy
                    &varlena_bytes(self.head)[a..b]
                } else if a == 0 && b == self.head_len {
                    datum_bytes(pg_sys::Datum::from(self.head), -1)
                } else {
                    varlena_bytes(pg_sys::detoast_attr_slice(
                        self.head,
                        a as i32,
                        (b - a) as i32,
                    ))
                };
                if s.len() != b - a {
                    corrupt("a packed batch shorter than its TOAST pointer says");
                }
                s
            };
            if end <= self.head_len {
                return from_head(at, end);
            }
            if at >= self.head_len {
                return std::slice::from_raw_parts(self.tail.add(at - self.head_len), len);
            }
            let out = pg_sys::palloc(len) as *mut u8;
            let h = from_head(at, self.head_len);
            std::ptr::copy_nonoverlapping(h.as_ptr(), out, h.len());
            std::ptr::copy_nonoverlapping(self.tail, out.add(h.len()), end - self.head_len);
            std::slice::from_raw_parts(out, len)
        }
    }

    /// The value's directory (at its end: in the batch row when the row is split).
    pub fn directory(&self) -> codec::pack::Directory {
        let total = self.total;
        let len = (total >= codec::pack::LENGTH_BYTES)
            .then(|| {
                let last = self.range(total - codec::pack::LENGTH_BYTES, codec::pack::LENGTH_BYTES);
                codec::pack::directory_len(last).ok()
            })
            .flatten()
            .filter(|&l| l <= total)
            .unwrap_or_else(|| corrupt("a packed batch without its directory"));
        codec::pack::Directory::parse(self.range(total - len, len), total)
            .unwrap_or_else(|e| corrupt(&e.to_string()))
    }
}

/// The error for a batch that does not decode.
pub(super) fn corrupt(detail: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!("bidim: a cold chunk's batch is corrupt: {detail}"),
        None,
    )
}

/// A bytea datum holding `bytes`, in the current memory context.
pub(super) fn bytea_datum(bytes: &[u8]) -> pg_sys::Datum {
    let v = ByteValues {
        data: bytes.to_vec(),
        ends: vec![bytes.len() as u32],
    };
    bytes_datum(&v, 0, -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toast_chunks_are_postgresql_s() {
        // TOAST_MAX_CHUNK_SIZE of 8 kB pages (PostgreSQL 15)
        assert_eq!(toast_max_chunk_size(8192), 1996);
        assert_eq!(split_packed(1995), 0);
        assert_eq!(split_packed(6000), 3 * 1996);
        assert_eq!(split_packed(7984), 4 * 1996);
    }
}

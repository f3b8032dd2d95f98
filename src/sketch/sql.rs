//! The SQL layer of `ddsketch`: the type, its aggregates and functions.
//!
//! Every function is a plain version-1 C function (declared in the SQL below), so the
//! aggregates control their state exactly:
//!
//! * The aggregates' state type is `ddsketch` itself (not `internal`), so Citus can push
//!   partial aggregation to shards and ship states through the type's I/O, and
//!   PostgreSQL's parallel workers hand partial states over without serial functions.
//! * While aggregating, the state is a read-write **expanded object**
//!   ([`ExpandedSketch`]) living in the aggregate's memory context: every row updates
//!   the Rust [`Sketch`] in place in O(1); PostgreSQL flattens it to the compact varlena
//!   (the [`codec`] binary format) only when it stores, sends or returns it.
//! * The Rust sketch is owned by the expanded object's memory context: a reset callback
//!   frees it when the context goes (end of aggregation, error, or the executor
//!   deleting the object), so no destructor depends on an `ereport` not jumping.

use super::codec;
use super::core::{Sketch, SketchError, DEFAULT_ALPHA, DEFAULT_BUCKETS};
use crate::error::raise;
use crate::fmgr::{
    abbreviate, arg, hash_arg_bytes, nargs, null, recv_bytes, varlena_bytes, varlena_of,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

pgrx::extension_sql!(
    r#"
CREATE TYPE @extschema@.ddsketch;
CREATE FUNCTION ddsketch_in(cstring) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_in';
CREATE FUNCTION ddsketch_out(ddsketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_out';
CREATE FUNCTION ddsketch_recv(internal) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_recv';
CREATE FUNCTION ddsketch_send(ddsketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_send';
CREATE TYPE @extschema@.ddsketch (
    INPUT = ddsketch_in, OUTPUT = ddsketch_out,
    RECEIVE = ddsketch_recv, SEND = ddsketch_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE ddsketch IS 'bidim: DDSketch, a relative-error quantile sketch with exact merges (text form: JSON)';

-- Aggregate support: transition functions keep a read-write expanded state.
CREATE FUNCTION ddsketch_trans(ddsketch, float8) RETURNS ddsketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_trans';
CREATE FUNCTION ddsketch_trans(ddsketch, float8, float8) RETURNS ddsketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_trans';
CREATE FUNCTION ddsketch_trans(ddsketch, float8, float8, int4) RETURNS ddsketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_trans';
CREATE FUNCTION ddsketch_trans(ddsketch, float8, int8, float8, int4) RETURNS ddsketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_trans';
CREATE FUNCTION ddsketch_combine(ddsketch, ddsketch) RETURNS ddsketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_combine';

CREATE AGGREGATE @extschema@.ddsketch_agg(value float8) (
    SFUNC = ddsketch_trans, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.ddsketch_agg(value float8, alpha float8) (
    SFUNC = ddsketch_trans, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.ddsketch_agg(value float8, alpha float8, max_buckets int4) (
    SFUNC = ddsketch_trans, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.ddsketch_agg(value float8, weight int8, alpha float8, max_buckets int4) (
    SFUNC = ddsketch_trans, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.ddsketch_agg(sketch ddsketch) (
    SFUNC = ddsketch_combine, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.rollup(sketch ddsketch) (
    SFUNC = ddsketch_combine, STYPE = ddsketch, COMBINEFUNC = ddsketch_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE ddsketch_agg(float8) IS 'bidim: ddsketch of the values (relative accuracy 0.01, 2048 bins)';
COMMENT ON AGGREGATE ddsketch_agg(float8, float8) IS 'bidim: ddsketch of the values with relative accuracy alpha';
COMMENT ON AGGREGATE ddsketch_agg(float8, float8, int4) IS 'bidim: ddsketch of the values with relative accuracy alpha and at most max_buckets bins per sign';
COMMENT ON AGGREGATE ddsketch_agg(float8, int8, float8, int4) IS 'bidim: ddsketch of weighted values';
COMMENT ON AGGREGATE ddsketch_agg(ddsketch) IS 'bidim: merge of ddsketches (same as rollup)';
COMMENT ON AGGREGATE rollup(ddsketch) IS 'bidim: merge of ddsketches';

-- Accessors.
CREATE FUNCTION approx_percentile(sketch ddsketch, q float8) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_approx_percentile';
CREATE FUNCTION approx_percentiles(sketch ddsketch, q float8[]) RETURNS float8[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_approx_percentiles';
CREATE FUNCTION approx_percentile_rank(sketch ddsketch, value float8) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_approx_percentile_rank';
CREATE FUNCTION ddsketch_count(sketch ddsketch) RETURNS int8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_count';
CREATE FUNCTION ddsketch_sum(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_sum';
CREATE FUNCTION ddsketch_mean(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_mean';
CREATE FUNCTION ddsketch_min(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_min';
CREATE FUNCTION ddsketch_max(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_max';
CREATE FUNCTION ddsketch_relative_error(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_relative_error';
CREATE FUNCTION ddsketch_alpha(sketch ddsketch) RETURNS float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_alpha';
CREATE FUNCTION ddsketch_max_buckets(sketch ddsketch) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_max_buckets';
CREATE FUNCTION ddsketch_bins(sketch ddsketch) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_bins';
CREATE FUNCTION ddsketch_bucket_bounds(sketch ddsketch) RETURNS float8[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_bucket_bounds';
CREATE FUNCTION ddsketch_bucket_counts(sketch ddsketch) RETURNS int8[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_bucket_counts';
CREATE FUNCTION ddsketch_buckets(sketch ddsketch)
    RETURNS TABLE (lower float8, upper float8, count int8)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT b[(2 OPERATOR(pg_catalog.*) i) OPERATOR(pg_catalog.-) 1], b[2 OPERATOR(pg_catalog.*) i], c[i]
    FROM (SELECT @extschema@.ddsketch_bucket_bounds(sketch) AS b,
                 @extschema@.ddsketch_bucket_counts(sketch) AS c) x,
         pg_catalog.generate_series(1, pg_catalog.cardinality(x.c)) AS i
    ORDER BY i
$$;

-- Scalar building blocks.
CREATE FUNCTION ddsketch_empty(alpha float8 DEFAULT 0.01, max_buckets int4 DEFAULT 2048) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_empty';
CREATE FUNCTION ddsketch_add(sketch ddsketch, value float8) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_add';
CREATE FUNCTION ddsketch_add(sketch ddsketch, value float8, weight int8) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_add';
CREATE FUNCTION ddsketch_merge(a ddsketch, b ddsketch) RETURNS ddsketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_merge';
CREATE OPERATOR @extschema@.|| (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_merge);

-- Equality and a total order on the canonical binary form (for DISTINCT, GROUP BY,
-- indexes); equal means the same bins, counts, alpha, min, max and sum.
CREATE FUNCTION ddsketch_cmp(ddsketch, ddsketch) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_cmp';
CREATE FUNCTION ddsketch_eq(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_eq';
CREATE FUNCTION ddsketch_ne(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_ne';
CREATE FUNCTION ddsketch_lt(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_lt';
CREATE FUNCTION ddsketch_le(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_le';
CREATE FUNCTION ddsketch_gt(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_gt';
CREATE FUNCTION ddsketch_ge(ddsketch, ddsketch) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_ge';
CREATE FUNCTION ddsketch_hash(ddsketch) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ddsketch_hash';
CREATE OPERATOR @extschema@.= (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR @extschema@.<> (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR @extschema@.< (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR @extschema@.<= (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR @extschema@.> (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR @extschema@.>= (LEFTARG = ddsketch, RIGHTARG = ddsketch, FUNCTION = ddsketch_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR CLASS ddsketch_ops DEFAULT FOR TYPE ddsketch USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 ddsketch_cmp(ddsketch, ddsketch);
CREATE OPERATOR CLASS ddsketch_hash_ops DEFAULT FOR TYPE ddsketch USING hash AS
    OPERATOR 1 =, FUNCTION 1 ddsketch_hash(ddsketch);
"#,
    name = "ddsketch_sql",
);

// ---------------------------------------------------------------------------------
// Function-call plumbing

fn f64_of(d: pg_sys::Datum) -> f64 {
    f64::from_bits(d.value() as u64)
}

fn f64_datum(v: f64) -> pg_sys::Datum {
    pg_sys::Datum::from(v.to_bits() as usize)
}

/// Raises a sketch error as an SQL ERROR.
pub(crate) fn fail(e: SketchError) -> ! {
    let code = match e {
        SketchError::Overflow => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        SketchError::Corrupt(_) => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    raise(code, e.to_string(), None)
}

fn check<T>(r: Result<T, SketchError>) -> T {
    r.unwrap_or_else(|e| fail(e))
}

// ---------------------------------------------------------------------------------
// Flat values and the expanded aggregate state

pub(crate) fn sketch_datum(s: &Sketch) -> pg_sys::Datum {
    varlena_of(&codec::encode(s))
}

/// The expanded form of a ddsketch: the header PostgreSQL knows, and the Rust sketch.
#[repr(C)]
struct ExpandedSketch {
    hdr: pg_sys::ExpandedObjectHeader,
    sketch: *mut Sketch,
    /// The encoding computed by `get_flat_size`, reused by `flatten_into`.
    flat: *mut Vec<u8>,
    /// Bytes reserved in the object's memory context for the sketch's bins, which live
    /// on the Rust heap: PostgreSQL's memory accounting (a HashAggregate's hash_mem
    /// limit and its spilling) counts the context, so the context must be as large
    /// as what the sketch holds.
    reserved: usize,
}

/// Grows the reservation of `es` to cover its sketch's heap memory (in steps of at
/// least half again, so a growing sketch reserves O(log n) times).
///
/// # Safety
/// `es` must point to a live ExpandedSketch.
unsafe fn es_account(es: *mut ExpandedSketch) {
    // SAFETY: per the contract; the reservation is a plain allocation in the object's
    // own context, freed with it.
    unsafe {
        let need = (*(*es).sketch).heap_bytes();
        if need > (*es).reserved {
            let grow = (need - (*es).reserved).max((*es).reserved / 2).max(1024);
            pg_sys::MemoryContextAlloc((*es).hdr.eoh_context, grow);
            (*es).reserved += grow;
        }
    }
}

static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
    get_flat_size: Some(es_get_flat_size),
    flatten_into: Some(es_flatten_into),
};

/// The encoding of an expanded sketch, computed once per change.
///
/// # Safety
/// `es` must point to a live ExpandedSketch.
unsafe fn es_flat<'a>(es: *mut ExpandedSketch) -> &'a [u8] {
    // SAFETY: per the contract; both boxes belong to the object.
    unsafe {
        if (*es).flat.is_null() {
            (*es).flat = Box::into_raw(Box::new(codec::encode(&*(*es).sketch)));
        }
        &*(*es).flat
    }
}

/// Forgets the cached encoding after a change.
///
/// # Safety
/// `es` must point to a live ExpandedSketch.
unsafe fn es_changed(es: *mut ExpandedSketch) {
    // SAFETY: per the contract; the box was made by es_flat.
    unsafe {
        if !(*es).flat.is_null() {
            drop(Box::from_raw((*es).flat));
            (*es).flat = std::ptr::null_mut();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn es_get_flat_size(
    eohptr: *mut pg_sys::ExpandedObjectHeader,
) -> pg_sys::Size {
    let es = eohptr as *mut ExpandedSketch;
    // SAFETY: PostgreSQL passes the header of one of our objects (methods are ours).
    pg_sys::VARHDRSZ + unsafe { es_flat(es) }.len()
}

#[pg_guard]
unsafe extern "C-unwind" fn es_flatten_into(
    eohptr: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated_size: pg_sys::Size,
) {
    let es = eohptr as *mut ExpandedSketch;
    // SAFETY: result has allocated_size bytes, the size es_get_flat_size returned.
    unsafe {
        let bytes = es_flat(es);
        let total = pg_sys::VARHDRSZ + bytes.len();
        assert_eq!(total, allocated_size, "ddsketch flat size changed");
        pgrx::set_varsize_4b(result as *mut pg_sys::varlena, total as i32);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (result as *mut u8).add(pg_sys::VARHDRSZ),
            bytes.len(),
        );
    }
}

/// Frees the Rust parts of an expanded sketch when its memory context goes.
#[pg_guard]
unsafe extern "C-unwind" fn es_free(arg: *mut std::ffi::c_void) {
    let es = arg as *mut ExpandedSketch;
    // SAFETY: the callback runs once, when the context holding `es` is reset or
    // deleted; the boxes were made by es_new / es_flat.
    unsafe {
        es_changed(es);
        if !(*es).sketch.is_null() {
            drop(Box::from_raw((*es).sketch));
            (*es).sketch = std::ptr::null_mut();
        }
    }
}

/// A new read-write expanded sketch in a child context of `parent`.
fn es_new(parent: pg_sys::MemoryContext, sketch: Sketch) -> *mut ExpandedSketch {
    // SAFETY: creates a small memory context, allocates the header in it, initializes
    // it as an expanded object with our methods, and registers the reset callback that
    // frees the Rust sketch with the context.
    unsafe {
        let cxt =
            pg_sys::AllocSetContextCreateInternal(parent, c"ddsketch".as_ptr(), 0, 1024, 8192);
        let es = pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<ExpandedSketch>())
            as *mut ExpandedSketch;
        pg_sys::EOH_init_header(&mut (*es).hdr, &METHODS, cxt);
        (*es).sketch = Box::into_raw(Box::new(sketch));
        (*es).flat = std::ptr::null_mut();
        (*es).reserved = 0;
        es_account(es);
        let cb = pg_sys::MemoryContextAllocZero(
            cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(es_free);
        (*cb).arg = es as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
        es
    }
}

/// The datum of an expanded sketch (its read-write pointer).
///
/// # Safety
/// `es` must point to a live ExpandedSketch.
unsafe fn es_datum(es: *mut ExpandedSketch) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe { pg_sys::Datum::from((*es).hdr.eoh_rw_ptr.as_mut_ptr()) }
}

/// Our expanded sketch behind `d`, if `d` points to one (read-write or read-only).
///
/// # Safety
/// `d` must be a non-null varlena datum.
unsafe fn es_of(d: pg_sys::Datum, want_rw: bool) -> Option<*mut ExpandedSketch> {
    // SAFETY: inspects the 1-byte external header of a valid varlena, then the
    // expanded header its pointer leads to, checking the methods are ours.
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        if *p != 0x01 {
            return None; // not a 1-byte external header (little endian)
        }
        let tag = *p.add(1) as u32;
        let rw = tag == pg_sys::vartag_external::VARTAG_EXPANDED_RW;
        if !(rw || (!want_rw && tag == pg_sys::vartag_external::VARTAG_EXPANDED_RO)) {
            return None;
        }
        // DatumGetEOHP, inline (no FFI call on the per-row path): the pointer sits,
        // unaligned, right after the two header bytes.
        let eoh = std::ptr::read_unaligned(p.add(2) as *const *mut pg_sys::ExpandedObjectHeader);
        if !std::ptr::eq((*eoh).eoh_methods, &METHODS) {
            return None;
        }
        Some(eoh as *mut ExpandedSketch)
    }
}

/// The sketch of a non-null ddsketch datum (flat, toasted or expanded).
///
/// # Safety
/// `d` must be a non-null ddsketch datum.
unsafe fn sketch_of(d: pg_sys::Datum) -> Sketch {
    // SAFETY: forwarded.
    unsafe {
        if let Some(es) = es_of(d, false) {
            return (*(*es).sketch).clone();
        }
        check(codec::decode(varlena_bytes(d)))
    }
}

/// The aggregate's memory context, or None outside an aggregate.
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::MemoryContext> {
    let mut cxt: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: asks the executor whether this call is an aggregate's.
    let kind = unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut cxt) };
    (kind != 0).then_some(cxt)
}

/// The read-write state of an aggregate: `d` itself when it is our read-write
/// expanded object in `cxt`'s tree, else a new expanded copy in `cxt`.
///
/// # Safety
/// `d` must be a non-null ddsketch datum.
unsafe fn state_rw(d: pg_sys::Datum, cxt: pg_sys::MemoryContext) -> *mut ExpandedSketch {
    // SAFETY: forwarded.
    unsafe {
        if let Some(es) = es_of(d, true) {
            if pg_sys::MemoryContextGetParent((*es).hdr.eoh_context) == cxt {
                return es;
            }
        }
        es_new(cxt, sketch_of(d))
    }
}

// ---------------------------------------------------------------------------------
// Type I/O

finfo!(pg_finfo_ddsketch_in);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the input function's argument is a NUL-terminated C string.
    let text = unsafe { CStr::from_ptr(arg(fcinfo, 0).0.cast_mut_ptr()) }.to_string_lossy();
    match codec::from_json(&text) {
        Ok(s) => sketch_datum(&s),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type ddsketch: \"{}\": {e}", abbreviate(&text)),
            Some("A ddsketch is written as JSON: {\"alpha\": 0.01, \"max_buckets\": 2048, ...}; build one with ddsketch_agg or ddsketch_empty."),
        ),
    }
}

finfo!(pg_finfo_ddsketch_out);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a non-null ddsketch argument (STRICT).
    let s = unsafe { sketch_of(arg(fcinfo, 0).0) };
    let text = std::ffi::CString::new(codec::to_json(&s)).expect("JSON has no NUL");
    // SAFETY: copies the string into a palloc'd C string.
    pg_sys::Datum::from(unsafe { pg_sys::pstrdup(text.as_ptr()) })
}

finfo!(pg_finfo_ddsketch_recv);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_recv(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the receive function's argument is a StringInfo; we consume all of it.
    let bytes = unsafe { recv_bytes(fcinfo) };
    let s = codec::decode(bytes).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!("invalid binary ddsketch ({} bytes): {e}", bytes.len()),
            None,
        )
    });
    sketch_datum(&s)
}

finfo!(pg_finfo_ddsketch_send);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_send(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a non-null ddsketch argument; the binary form is the stored bytes.
    let d = unsafe { arg(fcinfo, 0).0 };
    // SAFETY: as above.
    match unsafe { es_of(d, false) } {
        // SAFETY: our live expanded object.
        Some(es) => varlena_of(unsafe { es_flat(es) }),
        // SAFETY: a flat varlena.
        None => varlena_of(unsafe { varlena_bytes(d) }),
    }
}

// ---------------------------------------------------------------------------------
// Aggregates

/// Reads alpha and max_buckets of a transition call: (v, [alpha, [buckets]]) or
/// (v, weight, alpha, buckets).
///
/// # Safety
/// `fcinfo` must be a call of ddsketch_trans.
unsafe fn trans_params(fcinfo: pg_sys::FunctionCallInfo) -> (f64, i64) {
    // SAFETY: per the contract: argument positions follow the SQL signatures.
    unsafe {
        let n = nargs(fcinfo);
        let (alpha_at, buckets_at) = match n {
            2 => (None, None),
            3 => (Some(2), None),
            4 => (Some(2), Some(3)),
            _ => (Some(3), Some(4)),
        };
        let alpha = match alpha_at.map(|i| arg(fcinfo, i)) {
            None => DEFAULT_ALPHA,
            Some((_, true)) => raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "ddsketch_agg: alpha must not be NULL",
                None,
            ),
            Some((d, false)) => f64_of(d),
        };
        let buckets = match buckets_at.map(|i| arg(fcinfo, i)) {
            None => DEFAULT_BUCKETS as i64,
            Some((_, true)) => raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "ddsketch_agg: max_buckets must not be NULL",
                None,
            ),
            Some((d, false)) => d.value() as i32 as i64,
        };
        (alpha, buckets)
    }
}

finfo!(pg_finfo_ddsketch_trans);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is a call of one of the ddsketch_trans signatures.
    unsafe {
        // The per-row fast path: the state is already our read-write expanded object
        // (only an aggregate ever holds one: it was made by a call below that checked
        // the aggregate context), the value is not NULL, the weight is 1. No FFI call.
        let (state, state_null) = arg(fcinfo, 0);
        let (value, value_null) = arg(fcinfo, 1);
        if !state_null && !value_null && nargs(fcinfo) != 5 {
            if let Some(es) = es_of(state, true) {
                es_changed(es);
                check((*(*es).sketch).add(f64_of(value), 1));
                if (*(*es).sketch).heap_bytes() > (*es).reserved {
                    es_account(es);
                }
                return state;
            }
        }
        let Some(cxt) = agg_context(fcinfo) else {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "ddsketch_trans called in non-aggregate context",
                Some("Use ddsketch_agg(...), or ddsketch_add for one value."),
            )
        };
        let weight = if nargs(fcinfo) == 5 {
            match arg(fcinfo, 2) {
                (_, true) => None,
                (w, false) => Some(w.value() as i64),
            }
        } else {
            Some(1)
        };
        if value_null || weight.is_none() {
            // NULL inputs are skipped.
            return if state_null { null(fcinfo) } else { state };
        }
        let weight = weight.unwrap_or(1);
        if weight < 1 {
            fail(SketchError::BadWeight(weight));
        }
        let es = if state_null {
            let (alpha, buckets) = trans_params(fcinfo);
            es_new(cxt, check(Sketch::new(alpha, buckets)))
        } else {
            state_rw(state, cxt)
        };
        es_changed(es);
        check((*(*es).sketch).add(f64_of(value), weight as u64));
        es_account(es);
        es_datum(es)
    }
}

finfo!(pg_finfo_ddsketch_combine);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is a call of ddsketch_combine(ddsketch, ddsketch).
    unsafe {
        let (a, a_null) = arg(fcinfo, 0);
        let (b, b_null) = arg(fcinfo, 1);
        let Some(cxt) = agg_context(fcinfo) else {
            // Called as a plain function: a flat merge.
            return match (a_null, b_null) {
                (true, true) => null(fcinfo),
                (false, true) => sketch_datum(&sketch_of(a)),
                (true, false) => sketch_datum(&sketch_of(b)),
                (false, false) => {
                    let mut s = sketch_of(a);
                    check(s.merge(&sketch_of(b)));
                    sketch_datum(&s)
                }
            };
        };
        match (a_null, b_null) {
            (true, true) => null(fcinfo),
            (false, true) => a,
            (true, false) => es_datum(es_new(cxt, sketch_of(b))),
            (false, false) => {
                let es = state_rw(a, cxt);
                es_changed(es);
                match es_of(b, false) {
                    Some(other) => check((*(*es).sketch).merge(&*(*other).sketch)),
                    None => check((*(*es).sketch).merge(&sketch_of(b))),
                }
                es_account(es);
                es_datum(es)
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Accessors and scalar functions

/// The sketch in argument 0 (STRICT functions).
///
/// # Safety
/// Argument 0 must be a non-null ddsketch.
unsafe fn sketch0(fcinfo: pg_sys::FunctionCallInfo) -> Sketch {
    // SAFETY: per the contract.
    unsafe { sketch_of(arg(fcinfo, 0).0) }
}

/// Returns an optional float8.
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn opt_f64(fcinfo: pg_sys::FunctionCallInfo, v: Option<f64>) -> pg_sys::Datum {
    match v {
        Some(v) => f64_datum(v),
        // SAFETY: forwarded.
        None => unsafe { null(fcinfo) },
    }
}

finfo!(pg_finfo_ddsketch_approx_percentile);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_approx_percentile(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch, float8).
    unsafe {
        let s = sketch0(fcinfo);
        let q = f64_of(arg(fcinfo, 1).0);
        opt_f64(fcinfo, check(s.quantile(q)))
    }
}

finfo!(pg_finfo_ddsketch_approx_percentiles);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_approx_percentiles(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch, float8[]).
    unsafe {
        let s = sketch0(fcinfo);
        let qs = Vec::<Option<f64>>::from_datum(arg(fcinfo, 1).0, false).unwrap_or_default();
        let out: Vec<Option<f64>> = qs
            .into_iter()
            .map(|q| q.and_then(|q| check(s.quantile(q))))
            .collect();
        out.into_datum().unwrap_or_else(|| null(fcinfo))
    }
}

finfo!(pg_finfo_ddsketch_approx_percentile_rank);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_approx_percentile_rank(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch, float8).
    unsafe {
        let s = sketch0(fcinfo);
        let v = f64_of(arg(fcinfo, 1).0);
        opt_f64(fcinfo, check(s.rank(v)))
    }
}

finfo!(pg_finfo_ddsketch_count);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_count(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    let n = unsafe { sketch0(fcinfo) }.count();
    let n = i64::try_from(n).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("ddsketch count {n} does not fit in bigint"),
            None,
        )
    });
    pg_sys::Datum::from(n)
}

finfo!(pg_finfo_ddsketch_sum);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_sum(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    unsafe {
        let s = sketch0(fcinfo);
        opt_f64(fcinfo, (s.count() > 0).then(|| s.sum()))
    }
}

finfo!(pg_finfo_ddsketch_mean);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_mean(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    unsafe { opt_f64(fcinfo, sketch0(fcinfo).mean()) }
}

finfo!(pg_finfo_ddsketch_min);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_min(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    unsafe { opt_f64(fcinfo, sketch0(fcinfo).min()) }
}

finfo!(pg_finfo_ddsketch_max);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_max(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    unsafe { opt_f64(fcinfo, sketch0(fcinfo).max()) }
}

finfo!(pg_finfo_ddsketch_relative_error);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_relative_error(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    f64_datum(unsafe { sketch0(fcinfo) }.relative_error())
}

finfo!(pg_finfo_ddsketch_alpha);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_alpha(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    f64_datum(unsafe { sketch0(fcinfo) }.alpha())
}

finfo!(pg_finfo_ddsketch_max_buckets);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_max_buckets(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    pg_sys::Datum::from(unsafe { sketch0(fcinfo) }.max_buckets() as i32)
}

finfo!(pg_finfo_ddsketch_bins);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_bins(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    let s = unsafe { sketch0(fcinfo) };
    let n =
        s.positive().bins().count() + s.negative().bins().count() + (s.zero_count() > 0) as usize;
    pg_sys::Datum::from(n as i32)
}

finfo!(pg_finfo_ddsketch_bucket_bounds);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_bucket_bounds(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    let s = unsafe { sketch0(fcinfo) };
    let v: Vec<f64> = s
        .buckets()
        .iter()
        .flat_map(|&(lo, hi, _)| [lo, hi])
        .collect();
    // SAFETY: building an array in the current memory context.
    v.into_datum().unwrap_or_else(|| unsafe { null(fcinfo) })
}

finfo!(pg_finfo_ddsketch_bucket_counts);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_bucket_counts(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch).
    let s = unsafe { sketch0(fcinfo) };
    let v: Vec<i64> = s
        .buckets()
        .iter()
        .map(|&(_, _, c)| i64::try_from(c).unwrap_or(i64::MAX))
        .collect();
    // SAFETY: building an array in the current memory context.
    v.into_datum().unwrap_or_else(|| unsafe { null(fcinfo) })
}

finfo!(pg_finfo_ddsketch_empty);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_empty(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (float8, int4).
    let (alpha, buckets) = unsafe { (f64_of(arg(fcinfo, 0).0), arg(fcinfo, 1).0.value() as i32) };
    sketch_datum(&check(Sketch::new(alpha, buckets as i64)))
}

finfo!(pg_finfo_ddsketch_add);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_add(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch, float8[, int8]).
    unsafe {
        let mut s = sketch0(fcinfo);
        let v = f64_of(arg(fcinfo, 1).0);
        let w = if nargs(fcinfo) > 2 {
            arg(fcinfo, 2).0.value() as i64
        } else {
            1
        };
        if w < 1 {
            fail(SketchError::BadWeight(w));
        }
        check(s.add(v, w as u64));
        sketch_datum(&s)
    }
}

finfo!(pg_finfo_ddsketch_merge);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_merge(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (ddsketch, ddsketch).
    unsafe {
        let mut s = sketch0(fcinfo);
        check(s.merge(&sketch_of(arg(fcinfo, 1).0)));
        sketch_datum(&s)
    }
}

// ---------------------------------------------------------------------------------
// Comparison

byte_order_functions!(
    (pg_finfo_ddsketch_cmp, ddsketch_cmp, crate::fmgr::cmp_datum),
    (
        pg_finfo_ddsketch_eq,
        ddsketch_eq,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_eq())
    ),
    (
        pg_finfo_ddsketch_ne,
        ddsketch_ne,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_ne())
    ),
    (
        pg_finfo_ddsketch_lt,
        ddsketch_lt,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_lt())
    ),
    (
        pg_finfo_ddsketch_le,
        ddsketch_le,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_le())
    ),
    (
        pg_finfo_ddsketch_gt,
        ddsketch_gt,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_gt())
    ),
    (
        pg_finfo_ddsketch_ge,
        ddsketch_ge,
        |o: std::cmp::Ordering| crate::fmgr::bool_datum(o.is_ge())
    ),
);

finfo!(pg_finfo_ddsketch_hash);
/// The hash of a value's canonical bytes.
///
/// # Safety
/// PostgreSQL calls it with a non-null value (STRICT).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn ddsketch_hash(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT: argument 0 is a non-null varlena of the type.
    unsafe { hash_arg_bytes(fcinfo) }
}

#[cfg(feature = "pg_test")]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn aggregate_state_round_trips_through_text() {
        let same = Spi::get_one::<bool>(
            "SELECT ddsketch_agg(x)::text::ddsketch = ddsketch_agg(x)
             FROM generate_series(-500, 500) x",
        )
        .unwrap();
        assert_eq!(same, Some(true));
    }

    #[pg_test]
    fn grouped_states_are_independent() {
        // Each group's expanded state lives in its own context: counts must not leak.
        let counts = Spi::get_one::<String>(
            "SELECT string_agg(ddsketch_count(s)::text, ',' ORDER BY g)
             FROM (SELECT g % 3 AS g, ddsketch_agg(g::float8) s
                   FROM generate_series(1, 10) g GROUP BY 1) q",
        )
        .unwrap();
        assert_eq!(counts.as_deref(), Some("3,4,3"));
    }

    #[pg_test]
    fn merge_is_exact() {
        let same = Spi::get_one::<bool>(
            "SELECT (SELECT ddsketch_agg(x) FROM generate_series(1, 100) x)
                  = (SELECT ddsketch_agg(x) FROM generate_series(1, 50) x)
                 || (SELECT ddsketch_agg(x) FROM generate_series(51, 100) x)",
        )
        .unwrap();
        // The float sums of 1..100 and 1..50 + 51..100 are both exact here.
        assert_eq!(same, Some(true));
    }

    #[pg_test(error = "cannot add NaN to a ddsketch: only finite values are accepted")]
    fn nan_is_refused() {
        Spi::run("SELECT ddsketch_agg('NaN'::float8)").unwrap();
    }
}

//! The SQL layer of the metric aggregates (`sql/metrics.sql`): version-1 C functions
//! over the pure cores.
//!
//! One state serves every aggregate here: [`Head`] and its points, a varlena of the
//! type `bidim.metric_points`, kept in the aggregate's memory context (so PostgreSQL
//! counts it, and frees it with the context; no Rust destructor is involved), with
//! the parameters every row of the group passes. `first`/`last` keep one point in it.
//! A real state type (not `internal`) lets Citus push the aggregates down to shards
//! (it refuses pseudo-type states) and parallel workers hand partial states over; the
//! combine function appends.

use super::counter::{self, WindowError};
use super::gapfill::{self, Fill, GapError};
use super::gauge::{self, Method};
use super::points::{self, Keep, Params, Point};
use crate::error::raise;
use crate::fmgr::{arg, nargs, null, varlena_bytes, varlena_of};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::fmt::{Display, Write as _};

pgrx::extension_sql_file!(
    "../../sql/metrics.sql",
    name = "metrics_sql",
    requires = ["tam_catalog"]
);

/// The state of every aggregate here, a varlena of type `bidim.metric_points` (a real
/// type, not `internal`: Citus pushes down only aggregates whose state has one, and
/// parallel workers hand it over without serial functions). A 48-byte head, then
/// `cap` points of which the first `len` are filled. While an aggregate runs, the
/// state lives in its memory context (PostgreSQL copies a new state there and counts
/// it) and rows are appended in place; a full state doubles. Its text and binary forms
/// ([`points::encode`]) hold only the filled points.
#[repr(C)]
struct Head {
    /// The varlena's 4-byte length word.
    vl_len: u32,
    magic: u32,
    /// Bit 0: a window follows; bits 1-2: [`Keep`].
    flags: u8,
    method: u8,
    _pad: [u8; 6],
    len: u64,
    cap: u64,
    start: i64,
    end: i64,
}

const MAGIC: u32 = 0x6d70_7431;
const HEAD: usize = std::mem::size_of::<Head>();
/// Points one state holds at most (a varlena is under 1 GB).
const MAX_POINTS: usize = ((1usize << 30) - 1 - HEAD) / std::mem::size_of::<Point>();

fn keep_code(k: Keep) -> u8 {
    match k {
        Keep::All => 0,
        Keep::First => 1,
        Keep::Last => 2,
    }
}

/// The parameters a head records.
///
/// # Safety
/// `h` must point to a valid head.
unsafe fn params_of(h: *const Head) -> Params {
    // SAFETY: per the contract.
    unsafe {
        Params {
            window: ((*h).flags & 1 == 1).then(|| ((*h).start, (*h).end)),
            method: (*h).method,
            keep: match ((*h).flags >> 1) & 3 {
                1 => Keep::First,
                2 => Keep::Last,
                _ => Keep::All,
            },
        }
    }
}

/// A new state with room for `cap` points, in the current memory context (zeroed: no
/// stale memory ever leaves in a state).
fn alloc_state(cap: usize, params: Params) -> *mut Head {
    if cap > MAX_POINTS {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("bidim metric aggregate: more than {MAX_POINTS} points in one group"),
            Some("Aggregate smaller groups (by series and time bucket)."),
        );
    }
    let size = HEAD + cap * std::mem::size_of::<Point>();
    // SAFETY: a zeroed allocation of `size` bytes (under 1 GB), then its head written.
    unsafe {
        let h = pg_sys::palloc0(size) as *mut Head;
        (*h).vl_len = (size as u32) << 2;
        (*h).magic = MAGIC;
        (*h).flags = u8::from(params.window.is_some()) | (keep_code(params.keep) << 1);
        (*h).method = params.method;
        (*h).cap = cap as u64;
        if let Some((s, e)) = params.window {
            (*h).start = s;
            (*h).end = e;
        }
        h
    }
}

/// Raises an error naming `func` unless this is an aggregate's call (only an
/// aggregate may change its state in place).
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo, func: &dyn Display) {
    let mut cxt: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: asks the executor whether this call is an aggregate's.
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut cxt) } == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func} called in non-aggregate context"),
            None,
        );
    }
}

fn corrupt(what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        format!("bidim: bad metric aggregate state: {what}"),
        None,
    )
}

/// The state in datum `d`, checked: detoasted, 8-byte aligned and in its own memory
/// (a copy when it is not), so it may be changed in place.
///
/// # Safety
/// `d` must be a non-null `bidim.metric_points` datum.
unsafe fn state_arg(d: pg_sys::Datum) -> *mut Head {
    // SAFETY: detoasting a varlena; reading its length and head only within it.
    unsafe {
        let p = pg_sys::pg_detoast_datum(d.cast_mut_ptr());
        let size = pgrx::varlena::varsize_any(p);
        if size < HEAD || pgrx::varlena::varatt_is_1b(p) {
            corrupt("too short");
        }
        let h = if !(p as usize).is_multiple_of(8) {
            let copy = pg_sys::palloc(size) as *mut u8;
            std::ptr::copy_nonoverlapping(p as *const u8, copy, size);
            copy as *mut Head
        } else {
            p as *mut Head
        };
        let cap = (*h).cap as usize;
        if (*h).magic != MAGIC
            || cap > MAX_POINTS
            || (*h).len > (*h).cap
            || HEAD + cap * std::mem::size_of::<Point>() != size
            || (*h).flags > 5
        {
            corrupt("inconsistent head");
        }
        h
    }
}

/// The filled points of a state.
///
/// # Safety
/// `h` must be a checked state; the slice must not outlive it.
unsafe fn points_of<'a>(h: *mut Head) -> &'a mut [Point] {
    // SAFETY: per the contract: len points follow the head, 8-byte aligned.
    unsafe {
        std::slice::from_raw_parts_mut((h as *mut u8).add(HEAD) as *mut Point, (*h).len as usize)
    }
}

/// Adds points to a state (a state keeping one point keeps the right one); returns
/// the state, or a larger copy of it when it was full.
///
/// # Safety
/// `h` must be a checked state that may be changed.
unsafe fn push(mut h: *mut Head, pts: &[Point]) -> *mut Head {
    // SAFETY: per the contract; writes stay within the state's capacity.
    unsafe {
        let params = params_of(h);
        if params.keep != Keep::All {
            for &p in pts {
                if (*h).len == 0 {
                    if (*h).cap == 0 {
                        h = alloc_state(1, params);
                    }
                    (*h).len = 1;
                    points_of(h)[0] = p;
                } else if params.keep.replaces(points_of(h)[0], p) {
                    points_of(h)[0] = p;
                }
            }
            return h;
        }
        let len = (*h).len as usize;
        let need = len + pts.len();
        if need > (*h).cap as usize {
            let grown = alloc_state(need.max(2 * (*h).cap as usize).max(16), params);
            std::ptr::copy_nonoverlapping(
                (h as *const u8).add(HEAD),
                (grown as *mut u8).add(HEAD),
                len * std::mem::size_of::<Point>(),
            );
            (*grown).len = len as u64;
            h = grown;
        }
        let dst = (h as *mut u8).add(HEAD) as *mut Point;
        std::ptr::copy_nonoverlapping(pts.as_ptr(), dst.add(len), pts.len());
        (*h).len = need as u64;
        h
    }
}

/// Text of a timestamptz (microseconds), for messages.
fn ts_text(t: i64) -> String {
    // SAFETY: timestamptz_to_str formats any value into a static buffer we copy at once.
    unsafe {
        CStr::from_ptr(pg_sys::timestamptz_to_str(t))
            .to_string_lossy()
            .into_owned()
    }
}

/// Describes the parameters, for messages.
fn params_text(p: &Params) -> String {
    match p.window {
        Some((s, e)) => format!("window [{}, {}]", ts_text(s), ts_text(e)),
        None => format!(
            "method {}",
            match p.method {
                2 => "locf",
                _ => "linear",
            }
        ),
    }
}

/// Checks that a row (or a combined state) passes the parameters the state has.
///
/// # Safety
/// `h` must be a checked state.
unsafe fn check_params(h: *const Head, p: Params, func: &dyn Display) {
    // SAFETY: per the contract.
    let have = unsafe { params_of(h) };
    if have != p {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{func}: every row of a group must pass the same {}, got {}",
                params_text(&have),
                params_text(&p)
            ),
            None,
        );
    }
}

/// A timestamptz argument that must be finite.
fn finite_time(d: pg_sys::Datum, func: &dyn Display, what: &str) -> i64 {
    let t = d.value() as i64;
    if t == i64::MAX || t == i64::MIN {
        raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("{func}: {what} must be finite, got {}", ts_text(t)),
            None,
        );
    }
    t
}

/// The parameters passed by a row: `(state, value, time [, start, end])` or
/// `(state, value, time, method)`.
///
/// # Safety
/// `fcinfo` must be a call of one of the transition signatures.
unsafe fn row_params(fcinfo: pg_sys::FunctionCallInfo, keep: Keep, func: &dyn Display) -> Params {
    // SAFETY: per the contract: argument positions follow the SQL signatures.
    unsafe {
        let mut p = Params {
            keep,
            ..Params::default()
        };
        match nargs(fcinfo) {
            5 => {
                let (s, sn) = arg(fcinfo, 3);
                let (e, en) = arg(fcinfo, 4);
                if sn || en {
                    raise(
                        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                        format!("{func}: the window's start and end must not be NULL"),
                        None,
                    );
                }
                let (s, e) = (
                    finite_time(s, func, "the window's start"),
                    finite_time(e, func, "the window's end"),
                );
                if e <= s {
                    raise(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                        format!(
                            "{func}: the window's end ({}) must be after its start ({})",
                            ts_text(e),
                            ts_text(s)
                        ),
                        None,
                    );
                }
                p.window = Some((s, e));
            }
            4 => {
                let (m, mn) = arg(fcinfo, 3);
                if mn {
                    raise(
                        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                        format!("{func}: method must not be NULL"),
                        None,
                    );
                }
                let text = String::from_utf8_lossy(varlena_bytes(m));
                p.method = match Method::parse(&text) {
                    Some(Method::Linear) => 1,
                    Some(Method::Locf) => 2,
                    None => raise(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                        format!("{func}: unknown method \"{text}\""),
                        Some("Use 'linear' or 'locf'."),
                    ),
                };
            }
            _ => {}
        }
        p
    }
}

/// The name of the aggregate calling a support function, for messages.
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn aggregate_name(fcinfo: pg_sys::FunctionCallInfo) -> String {
    // SAFETY: AggGetAggref returns NULL outside an aggregate's own calls; get_func_name
    // returns a palloc'd name or NULL.
    unsafe {
        let aggref = pg_sys::AggGetAggref(fcinfo);
        if aggref.is_null() {
            return "bidim metric aggregate".into();
        }
        let name = pg_sys::get_func_name((*aggref).aggfnoid);
        if name.is_null() {
            return "bidim metric aggregate".into();
        }
        CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

/// The calling aggregate's name, looked up only when a message is formatted.
struct AggName(pg_sys::FunctionCallInfo);

impl Display for AggName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: the call's fcinfo, valid while the call runs (messages are formatted
        // before it returns).
        f.write_str(&unsafe { aggregate_name(self.0) })
    }
}

/// The transition shared by every aggregate: skips rows whose value or time is NULL.
///
/// # Safety
/// `fcinfo` must be a call of one of the transition signatures.
unsafe fn transition(fcinfo: pg_sys::FunctionCallInfo, keep: Keep) -> pg_sys::Datum {
    let func = &AggName(fcinfo);
    // SAFETY: per the contract; the state argument is NULL or a metric_points datum.
    unsafe {
        // Only an aggregate may append to its state in place.
        agg_context(fcinfo, func);
        let (state, state_null) = arg(fcinfo, 0);
        let (value, value_null) = arg(fcinfo, 1);
        let (time, time_null) = arg(fcinfo, 2);
        if value_null || time_null {
            return if state_null { null(fcinfo) } else { state };
        }
        let params = row_params(fcinfo, keep, func);
        let h = if state_null {
            alloc_state(if keep == Keep::All { 16 } else { 1 }, params)
        } else {
            let h = state_arg(state);
            check_params(h, params, func);
            h
        };
        let t = finite_time(time, func, "a point's time");
        // A new or grown state is a new pointer: PostgreSQL copies it into the
        // aggregate's memory context; otherwise the row went in in place.
        let h = push(
            h,
            &[Point {
                t,
                v: f64::from_bits(value.value() as u64),
            }],
        );
        pg_sys::Datum::from(h)
    }
}

macro_rules! v1 {
    ($finfo:ident, $name:ident, $body:expr) => {
        finfo!($finfo);
        /// # Safety
        /// Called by PostgreSQL's function manager with the SQL declaration's arguments.
        #[pg_guard]
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            #[allow(clippy::redundant_closure_call)]
            ($body)(fcinfo)
        }
    };
}

v1!(pg_finfo_bidim_points_trans, bidim_points_trans, |f| {
    // SAFETY: declared in metrics.sql with the transition signatures.
    unsafe { transition(f, Keep::All) }
});
v1!(pg_finfo_bidim_first_trans, bidim_first_trans, |f| {
    // SAFETY: declared in metrics.sql with the transition signature.
    unsafe { transition(f, Keep::First) }
});
v1!(pg_finfo_bidim_last_trans, bidim_last_trans, |f| {
    // SAFETY: declared in metrics.sql with the transition signature.
    unsafe { transition(f, Keep::Last) }
});

v1!(
    pg_finfo_bidim_points_combine,
    bidim_points_combine,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: a call of (metric_points, metric_points): NULLs or states.
        unsafe {
            agg_context(fcinfo, &AggName(fcinfo));
            let (a, a_null) = arg(fcinfo, 0);
            let (b, b_null) = arg(fcinfo, 1);
            if b_null {
                return if a_null { null(fcinfo) } else { a };
            }
            let b = state_arg(b);
            if a_null {
                // PostgreSQL copies it into the aggregate's context.
                return pg_sys::Datum::from(b);
            }
            let a = state_arg(a);
            check_params(a, params_of(b), &AggName(fcinfo));
            pg_sys::Datum::from(push(a, points_of(b)))
        }
    }
);

v1!(
    pg_finfo_bidim_metric_points_out,
    bidim_metric_points_out,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: STRICT (metric_points); a palloc'd C string out.
        unsafe {
            let h = state_arg(arg(fcinfo, 0).0);
            let mut pts = points_of(h).to_vec();
            points::normalize(&mut pts);
            let bytes = points::encode(params_of(h), &pts);
            let mut text = String::with_capacity(2 + 2 * bytes.len());
            text.push_str("\\x");
            for b in bytes {
                let _ = write!(text, "{b:02x}");
            }
            let c = std::ffi::CString::new(text).expect("hex has no NUL");
            pg_sys::Datum::from(pg_sys::pstrdup(c.as_ptr()))
        }
    }
);

/// A state from [`points::encode`]'s bytes (text and binary input).
fn state_from_bytes(bytes: &[u8]) -> pg_sys::Datum {
    let (params, pts) = points::decode(bytes).unwrap_or_else(|e| corrupt(&e));
    if params.method > 2 {
        corrupt("unknown method");
    }
    if let Some((s, e)) = params.window {
        if e <= s {
            corrupt("empty window");
        }
    }
    if params.keep != Keep::All && pts.len() > 1 {
        corrupt("more than one point kept");
    }
    let h = alloc_state(pts.len(), params);
    // SAFETY: the new state has room for every point.
    unsafe {
        (*h).len = pts.len() as u64;
        points_of(h).copy_from_slice(&pts);
    }
    pg_sys::Datum::from(h)
}

v1!(
    pg_finfo_bidim_metric_points_in,
    bidim_metric_points_in,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: STRICT (cstring).
        let text = unsafe { CStr::from_ptr(arg(fcinfo, 0).0.cast_mut_ptr()) }.to_string_lossy();
        let hex = text
            .strip_prefix("\\x")
            .unwrap_or_else(|| corrupt("expected \\x and hex digits"));
        if hex.len() % 2 != 0 {
            corrupt("odd number of hex digits");
        }
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| {
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .unwrap_or_else(|_| corrupt("expected hex digits"))
            })
            .collect();
        state_from_bytes(&bytes)
    }
);

v1!(
    pg_finfo_bidim_metric_points_send,
    bidim_metric_points_send,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: STRICT (metric_points).
        unsafe {
            let h = state_arg(arg(fcinfo, 0).0);
            let mut pts = points_of(h).to_vec();
            points::normalize(&mut pts);
            varlena_of(&points::encode(params_of(h), &pts))
        }
    }
);

v1!(
    pg_finfo_bidim_metric_points_recv,
    bidim_metric_points_recv,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: the receive function's argument is a StringInfo; we consume all of it.
        state_from_bytes(unsafe { crate::fmgr::recv_bytes(fcinfo) })
    }
);

/// The state's points in time order (a copy: the state is left as it is), or `None`
/// for a NULL state.
///
/// # Safety
/// Argument 0 must be NULL or a metric_points datum.
unsafe fn final_points(fcinfo: pg_sys::FunctionCallInfo) -> Option<(Params, Vec<Point>)> {
    // SAFETY: per the contract.
    unsafe {
        let (s, sn) = arg(fcinfo, 0);
        if sn {
            return None;
        }
        let h = state_arg(s);
        let mut pts = points_of(h).to_vec();
        points::normalize(&mut pts);
        Some((params_of(h), pts))
    }
}

fn window_error(func: &str, e: WindowError) -> ! {
    match e {
        WindowError::EmptyWindow { start, end } => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{func}: the window's end ({}) must be after its start ({})",
                ts_text(end),
                ts_text(start)
            ),
            None,
        ),
        WindowError::Outside { t, start, end } => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{func}: a point at {} lies outside the window [{}, {}]",
                ts_text(t),
                ts_text(start),
                ts_text(end)
            ),
            Some("Select only the points inside the window (WHERE time > start AND time <= end)."),
        ),
    }
}

/// A float8 result or NULL.
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn float_or_null(fcinfo: pg_sys::FunctionCallInfo, v: Option<f64>) -> pg_sys::Datum {
    match v {
        Some(v) => pg_sys::Datum::from(v.to_bits() as usize),
        // SAFETY: forwarded.
        None => unsafe { null(fcinfo) },
    }
}

/// A counter/gauge final: the change (per second when `per_second`) of the points,
/// extrapolated to the window when the rows passed one.
///
/// # Safety
/// `fcinfo` must be a call of a final function of the point state.
unsafe fn change_final(
    fcinfo: pg_sys::FunctionCallInfo,
    func: &str,
    is_counter: bool,
    per_second: bool,
) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe {
        let Some((params, pts)) = final_points(fcinfo) else {
            return null(fcinfo);
        };
        let v = match params.window {
            Some((s, e)) => counter::extrapolated(&pts, s, e, is_counter, per_second)
                .unwrap_or_else(|e| window_error(func, e)),
            None if per_second => counter::rate(&pts, is_counter),
            None => counter::change(&pts, is_counter),
        };
        float_or_null(fcinfo, v)
    }
}

v1!(pg_finfo_bidim_increase_final, bidim_increase_final, |f| {
    // SAFETY: declared as increase's final function.
    unsafe { change_final(f, "increase", true, false) }
});
v1!(pg_finfo_bidim_rate_final, bidim_rate_final, |f| {
    // SAFETY: declared as rate's final function.
    unsafe { change_final(f, "rate", true, true) }
});
v1!(pg_finfo_bidim_delta_final, bidim_delta_final, |f| {
    // SAFETY: declared as delta's final function.
    unsafe { change_final(f, "delta", false, false) }
});
v1!(
    pg_finfo_bidim_time_weight_final,
    bidim_time_weight_final,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: declared as time_weighted_avg's final function.
        unsafe {
            let Some((params, pts)) = final_points(fcinfo) else {
                return null(fcinfo);
            };
            let m = if params.method == 2 {
                Method::Locf
            } else {
                Method::Linear
            };
            float_or_null(fcinfo, gauge::time_weighted_average(&pts, m))
        }
    }
);
v1!(
    pg_finfo_bidim_kept_value_final,
    bidim_kept_value_final,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: declared as first's and last's final function.
        unsafe {
            let v = final_points(fcinfo).and_then(|(_, pts)| pts.first().map(|p| p.v));
            float_or_null(fcinfo, v)
        }
    }
);
v1!(
    pg_finfo_bidim_kept_time_final,
    bidim_kept_time_final,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: declared as first_time's and last_time's final function.
        unsafe {
            match final_points(fcinfo).and_then(|(_, pts)| pts.first().map(|p| p.t)) {
                Some(t) => pg_sys::Datum::from(t),
                None => null(fcinfo),
            }
        }
    }
);

// ---------------------------------------------------------------------------------
// Gap filling

/// `bidim.gapfill`: one row per bucket of `[start, finish)`, from one series' known
/// buckets and values (see `sql/metrics.sql`).
#[pg_extern(
    immutable,
    parallel_safe,
    schema = "bidim",
    name = "gapfill",
    sql = false
)]
fn gapfill_rows(
    buckets: Option<pgrx::datum::Array<'_, pgrx::datum::TimestampWithTimeZone>>,
    vals: Option<pgrx::datum::Array<'_, f64>>,
    start: Option<pgrx::datum::TimestampWithTimeZone>,
    finish: Option<pgrx::datum::TimestampWithTimeZone>,
    width: Option<pgrx::datum::Interval>,
    fill: Option<&str>,
    before: Option<f64>,
) -> TableIterator<
    'static,
    (
        name!(bucket, pgrx::datum::TimestampWithTimeZone),
        name!(value, Option<f64>),
    ),
> {
    let (Some(start), Some(finish), Some(width), Some(fill)) = (start, finish, width, fill) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "gapfill: start, finish, width and fill must not be NULL",
            None,
        )
    };
    let how = Fill::parse(fill).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("gapfill: unknown fill \"{fill}\""),
            Some("Use 'null', 'locf' or 'linear'."),
        )
    });
    if width.months() != 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("gapfill: the bucket width ({width}) must not contain months or years"),
            Some("Use days, hours, minutes or seconds."),
        );
    }
    let width_us = width.micros() + i64::from(width.days()) * 86_400_000_000;
    let b: Vec<Option<pgrx::datum::TimestampWithTimeZone>> =
        buckets.map(|a| a.iter().collect()).unwrap_or_default();
    let v: Vec<Option<f64>> = vals.map(|a| a.iter().collect()).unwrap_or_default();
    if b.len() != v.len() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("gapfill: {} buckets but {} values", b.len(), v.len()),
            None,
        );
    }
    let known: Vec<(i64, Option<f64>)> = b
        .into_iter()
        .zip(v)
        .filter_map(|(b, v)| b.map(|b| (i64::from(b), v)))
        .collect();
    let (s, e) = (
        finite_time(pg_sys::Datum::from(i64::from(start)), &"gapfill", "start"),
        finite_time(pg_sys::Datum::from(i64::from(finish)), &"gapfill", "finish"),
    );
    let rows = gapfill::fill(s, e, width_us, &known, how, before).unwrap_or_else(|err| match err {
        GapError::NonPositiveWidth(_) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("gapfill: the bucket width must be positive, got {width}"),
            None,
        ),
        GapError::TooMany(n) => raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("gapfill: {n} buckets is more than {}", gapfill::MAX_BUCKETS),
            Some("Use a wider bucket or a shorter window."),
        ),
        GapError::Duplicate(t) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("gapfill: bucket {} is given twice", ts_text(t)),
            Some("Group by the bucket before filling."),
        ),
    });
    TableIterator::new(rows.into_iter().map(|(t, v)| {
        (
            pgrx::datum::TimestampWithTimeZone::try_from(t).expect("a finite bucket"),
            v,
        )
    }))
}

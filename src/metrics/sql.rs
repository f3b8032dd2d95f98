//! The SQL layer of the metric aggregates (`sql/metrics.sql`): version-1 C functions
//! over the pure cores.
//!
//! One state serves every aggregate here: [`State`], a growable array of points
//! allocated in the aggregate's memory context (so PostgreSQL counts it, and frees it
//! with the context; no Rust destructor is involved), with the parameters every row
//! of the group passes. `first`/`last` keep one point in it. The state type is
//! `internal` with serialize/deserialize functions, so parallel workers and Citus
//! shards hand partial states over, and the combine function appends.

use super::counter::{self, WindowError};
use super::gapfill::{self, Fill, GapError};
use super::gauge::{self, Method};
use super::points::{self, Keep, Params, Point};
use crate::error::raise;
use crate::fmgr::{arg, nargs, null, varlena_bytes, varlena_of};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::fmt::Display;

pgrx::extension_sql_file!(
    "../../sql/metrics.sql",
    name = "metrics_sql",
    requires = ["tam_catalog"]
);

/// An aggregate's state: the points (`len` of `cap` in `data`) and the parameters.
#[repr(C)]
struct State {
    len: usize,
    cap: usize,
    data: *mut Point,
    cxt: pg_sys::MemoryContext,
    params: Params,
    /// Whether `params` were set by a row (or a combined state).
    has_params: bool,
}

/// The aggregate's memory context, or an error naming `func` when called outside an
/// aggregate.
///
/// # Safety
/// `fcinfo` must be valid.
unsafe fn agg_context(
    fcinfo: pg_sys::FunctionCallInfo,
    func: &dyn Display,
) -> pg_sys::MemoryContext {
    let mut cxt: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: asks the executor whether this call is an aggregate's.
    let kind = unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut cxt) };
    if kind == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func} called in non-aggregate context"),
            None,
        );
    }
    cxt
}

/// A new empty state in `cxt`.
fn state_new(cxt: pg_sys::MemoryContext, keep: Keep) -> *mut State {
    // SAFETY: a zeroed allocation of the struct's size in a live context, then
    // initialized in full by one write.
    unsafe {
        let s = pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<State>()) as *mut State;
        s.write(State {
            len: 0,
            cap: 0,
            data: std::ptr::null_mut(),
            cxt,
            params: Params {
                keep,
                ..Params::default()
            },
            has_params: false,
        });
        s
    }
}

/// The points of a state.
///
/// # Safety
/// `s` must be a live state; the slice must not outlive the next push.
unsafe fn points_of<'a>(s: *mut State) -> &'a mut [Point] {
    // SAFETY: per the contract; data holds len initialized points (or is null, len 0).
    unsafe {
        if (*s).len == 0 {
            return &mut [];
        }
        std::slice::from_raw_parts_mut((*s).data, (*s).len)
    }
}

/// Adds a point (or, for a state keeping one, keeps the right one).
///
/// # Safety
/// `s` must be a live state.
unsafe fn push(s: *mut State, p: Point) {
    // SAFETY: per the contract; the array grows in the state's own context (huge
    // allocations allowed: a group may hold more than 1 GB of points, counted there).
    unsafe {
        let keep = (*s).params.keep;
        if keep != Keep::All && (*s).len == 1 {
            if keep.replaces(*(*s).data, p) {
                *(*s).data = p;
            }
            return;
        }
        if (*s).len == (*s).cap {
            let cap = ((*s).cap * 2).max(64);
            let bytes = cap * std::mem::size_of::<Point>();
            (*s).data = if (*s).data.is_null() {
                pg_sys::MemoryContextAllocHuge((*s).cxt, bytes) as *mut Point
            } else {
                pg_sys::repalloc_huge((*s).data as *mut std::ffi::c_void, bytes) as *mut Point
            };
            (*s).cap = cap;
        }
        (*s).data.add((*s).len).write(p);
        (*s).len += 1;
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

/// Records a row's (or a combined state's) parameters: the first sets them, the rest
/// must match.
///
/// # Safety
/// `s` must be a live state.
unsafe fn set_params(s: *mut State, p: Params, func: &dyn Display) {
    // SAFETY: per the contract.
    unsafe {
        if !(*s).has_params {
            (*s).params = p;
            (*s).has_params = true;
        } else if (*s).params != p {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "{func}: every row of a group must pass the same {}, got {}",
                    params_text(&(*s).params),
                    params_text(&p)
                ),
                None,
            );
        }
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
                let text = String::from_utf8_lossy(varlena_bytes(m)).into_owned();
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
    // SAFETY: per the contract; the state argument is NULL or a state made here.
    unsafe {
        let cxt = agg_context(fcinfo, func);
        let (state, state_null) = arg(fcinfo, 0);
        let (value, value_null) = arg(fcinfo, 1);
        let (time, time_null) = arg(fcinfo, 2);
        if value_null || time_null {
            return if state_null { null(fcinfo) } else { state };
        }
        let s = if state_null {
            state_new(cxt, keep)
        } else {
            state.cast_mut_ptr::<State>()
        };
        set_params(s, row_params(fcinfo, keep, func), func);
        let t = finite_time(time, func, "a point's time");
        push(
            s,
            Point {
                t,
                v: f64::from_bits(value.value() as u64),
            },
        );
        pg_sys::Datum::from(s)
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
        // SAFETY: a call of (internal, internal): NULL or states made here.
        unsafe {
            let cxt = agg_context(fcinfo, &"bidim_points_combine");
            let (a, a_null) = arg(fcinfo, 0);
            let (b, b_null) = arg(fcinfo, 1);
            if b_null {
                return if a_null { null(fcinfo) } else { a };
            }
            let b = b.cast_mut_ptr::<State>();
            let a = if a_null {
                state_new(cxt, (*b).params.keep)
            } else {
                a.cast_mut_ptr::<State>()
            };
            if (*b).has_params {
                set_params(a, (*b).params, &AggName(fcinfo));
            }
            for p in points_of(b).to_vec() {
                push(a, p);
            }
            pg_sys::Datum::from(a)
        }
    }
);

v1!(
    pg_finfo_bidim_points_serialize,
    bidim_points_serialize,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: STRICT (internal): a state made here.
        unsafe {
            let s = arg(fcinfo, 0).0.cast_mut_ptr::<State>();
            let pts = points_of(s);
            points::normalize(pts);
            varlena_of(&points::encode((*s).params, pts))
        }
    }
);

v1!(
    pg_finfo_bidim_points_deserialize,
    bidim_points_deserialize,
    |fcinfo: pg_sys::FunctionCallInfo| {
        // SAFETY: STRICT (bytea, internal); the state goes in the aggregate's context.
        unsafe {
            let cxt = agg_context(fcinfo, &"bidim_points_deserialize");
            let (params, pts) =
                points::decode(varlena_bytes(arg(fcinfo, 0).0)).unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                        format!("bidim: bad metric aggregate state: {e}"),
                        None,
                    )
                });
            let s = state_new(cxt, params.keep);
            (*s).params = params;
            (*s).has_params = true;
            for p in pts {
                push(s, p);
            }
            pg_sys::Datum::from(s)
        }
    }
);

/// The state's points in time order, or `None` for a NULL state.
///
/// # Safety
/// Argument 0 must be NULL or a state made here.
unsafe fn final_points<'a>(fcinfo: pg_sys::FunctionCallInfo) -> Option<(Params, &'a [Point])> {
    // SAFETY: per the contract. Sorting in place keeps the state's meaning (a bag of
    // points), so a state shared by several finals or read again by a window is fine.
    unsafe {
        let (s, sn) = arg(fcinfo, 0);
        if sn {
            return None;
        }
        let s = s.cast_mut_ptr::<State>();
        let pts = points_of(s);
        if !points::is_normalized(pts) {
            points::normalize(pts);
        }
        Some(((*s).params, pts))
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
            Some((s, e)) => counter::extrapolated(pts, s, e, is_counter, per_second)
                .unwrap_or_else(|e| window_error(func, e)),
            None if per_second => counter::rate(pts, is_counter),
            None => counter::change(pts, is_counter),
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
            float_or_null(fcinfo, gauge::time_weighted_average(pts, m))
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

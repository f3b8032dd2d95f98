//! Batch aggregation (pure Rust, unit-tested): the aggregates `BidimAgg`
//! ([`super::agg_exec`]) computes itself over decoded cold batches and hot rows, and
//! the partial states it hands to PostgreSQL's Finalize Aggregate.
//!
//! A partial state here is exactly what PostgreSQL's own transition function would
//! have left after the same rows in the same order (`float8_accum`'s N, Sx and Sxx,
//! `float8pl`'s overflow check, `float8larger`'s NaN order, `int4_sum` into int8, the
//! same ddsketch), so the Finalize Aggregate's combine and final functions give the
//! answer a plain aggregate over those rows gives.

use crate::sketch::core::{Sketch, SketchError, DEFAULT_ALPHA, DEFAULT_BUCKETS};
use std::cmp::Ordering;

/// The aggregates computed over batches (each one PostgreSQL aggregate; argument
/// types are those of the aggregate's signature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum AggKind {
    /// `count(*)`.
    CountStar = 1,
    /// `count(x)`: rows where x is not NULL.
    Count = 2,
    /// `sum(float8)`.
    SumF8 = 3,
    /// `avg(float8)`: state float8[3] {N, Sx, Sxx}.
    AvgF8 = 4,
    /// `max(float8)`, `min(float8)`.
    MaxF8 = 5,
    MinF8 = 6,
    /// `max`/`min` of int2, int4, int8, date, timestamp, timestamptz (integer order).
    MaxInt = 7,
    MinInt = 8,
    /// `sum(int2)`, `sum(int4)`: state int8.
    SumInt = 9,
    /// `avg(int2)`, `avg(int4)`: state int8[2] {count, sum}.
    AvgInt = 10,
    /// `ddsketch_agg(float8)`: state ddsketch.
    Sketch = 11,
}

impl AggKind {
    pub fn from_i32(v: i32) -> Option<AggKind> {
        use AggKind::*;
        [
            CountStar, Count, SumF8, AvgF8, MaxF8, MinF8, MaxInt, MinInt, SumInt, AvgInt, Sketch,
        ]
        .into_iter()
        .find(|k| *k as i32 == v)
    }

    /// Whether the aggregate reads an argument column.
    pub fn has_argument(self) -> bool {
        self != AggKind::CountStar
    }
}

/// An error a transition function would raise.
#[derive(Debug, Clone, PartialEq)]
pub enum AggError {
    /// `value out of range: overflow` (float8 sums of finite values).
    FloatOverflow,
    /// `bigint out of range`.
    IntOverflow,
    Sketch(SketchError),
}

/// The partial state of one aggregate of one group.
#[derive(Debug, Clone)]
pub enum State {
    Count(i64),
    /// Sums and extremes: `None` until the first non-NULL value (strict transition
    /// functions with a NULL initial state).
    Float(Option<f64>),
    Int(Option<i64>),
    Avg {
        n: f64,
        sx: f64,
        sxx: f64,
    },
    AvgInt {
        count: i64,
        sum: i64,
    },
    Sketch(Option<Box<Sketch>>),
}

impl State {
    pub fn new(kind: AggKind) -> State {
        match kind {
            AggKind::CountStar | AggKind::Count => State::Count(0),
            AggKind::SumF8 | AggKind::MaxF8 | AggKind::MinF8 => State::Float(None),
            AggKind::MaxInt | AggKind::MinInt | AggKind::SumInt => State::Int(None),
            AggKind::AvgF8 => State::Avg {
                n: 0.0,
                sx: 0.0,
                sxx: 0.0,
            },
            AggKind::AvgInt => State::AvgInt { count: 0, sum: 0 },
            AggKind::Sketch => State::Sketch(None),
        }
    }

    /// Bytes the state holds on the heap (sketch bins), for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        match self {
            State::Sketch(Some(s)) => s.heap_bytes() + std::mem::size_of::<Sketch>(),
            _ => 0,
        }
    }

    /// Adds one row: `raw` is the argument's datum bits (ignored for `count(*)`),
    /// `null` whether it is NULL.
    #[inline]
    pub fn add(&mut self, kind: AggKind, raw: u64, null: bool) -> Result<(), AggError> {
        if kind == AggKind::CountStar {
            if let State::Count(c) = self {
                *c += 1;
            }
            return Ok(());
        }
        if null {
            return Ok(());
        }
        match (kind, self) {
            (AggKind::Count, State::Count(c)) => *c += 1,
            (AggKind::SumF8, State::Float(s)) => {
                let v = f64::from_bits(raw);
                *s = Some(match *s {
                    None => v,
                    Some(a) => float8_pl(a, v)?,
                });
            }
            (AggKind::MaxF8, State::Float(s)) => {
                let v = f64::from_bits(raw);
                *s = Some(match *s {
                    Some(a) if float8_cmp(a, v) == Ordering::Greater => a,
                    _ => v,
                });
            }
            (AggKind::MinF8, State::Float(s)) => {
                let v = f64::from_bits(raw);
                *s = Some(match *s {
                    Some(a) if float8_cmp(a, v) == Ordering::Less => a,
                    _ => v,
                });
            }
            (AggKind::MaxInt, State::Int(s)) => {
                let v = raw as i64;
                *s = Some(s.map_or(v, |a| if a > v { a } else { v }));
            }
            (AggKind::MinInt, State::Int(s)) => {
                let v = raw as i64;
                *s = Some(s.map_or(v, |a| if a < v { a } else { v }));
            }
            (AggKind::SumInt, State::Int(s)) => {
                // int4_sum / int2_sum: int8 arithmetic, unchecked as PostgreSQL's is
                // (a sum of int4 values cannot reach int8's range in practice).
                let v = raw as i64;
                *s = Some(s.map_or(v, |a| a.wrapping_add(v)));
            }
            (AggKind::AvgInt, State::AvgInt { count, sum }) => {
                *count += 1;
                *sum = sum.wrapping_add(raw as i64);
            }
            (AggKind::AvgF8, State::Avg { n, sx, sxx }) => {
                float8_accum(n, sx, sxx, f64::from_bits(raw))?;
            }
            (AggKind::Sketch, State::Sketch(s)) => {
                let sk = match s {
                    Some(sk) => sk,
                    None => s.insert(Box::new(
                        Sketch::new(DEFAULT_ALPHA, DEFAULT_BUCKETS as i64)
                            .map_err(AggError::Sketch)?,
                    )),
                };
                sk.add(f64::from_bits(raw), 1).map_err(AggError::Sketch)?;
            }
            (k, s) => unreachable!("bidim: state {s:?} for aggregate {k:?}"),
        }
        Ok(())
    }
}

/// PostgreSQL's float8 order (`float8_cmp_internal`): NaN equals NaN and is larger
/// than every other value; -0 equals 0.
pub fn float8_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `float8pl`: the sum, an error when finite values overflow.
pub fn float8_pl(a: f64, b: f64) -> Result<f64, AggError> {
    let r = a + b;
    if r.is_infinite() && !a.is_infinite() && !b.is_infinite() {
        return Err(AggError::FloatOverflow);
    }
    Ok(r)
}

/// `float8_accum` (Youngs-Cramer, as PostgreSQL 12+ computes it).
#[inline]
pub fn float8_accum(n: &mut f64, sx: &mut f64, sxx: &mut f64, v: f64) -> Result<(), AggError> {
    let n0 = *n;
    let sx0 = *sx;
    let new_n = n0 + 1.0;
    let new_sx = sx0 + v;
    let mut new_sxx = *sxx;
    if n0 > 0.0 {
        let tmp = v * new_n - new_sx;
        new_sxx += tmp * tmp / (new_n * n0);
        if new_sx.is_infinite() || new_sxx.is_infinite() {
            if !sx0.is_infinite() && !v.is_infinite() {
                return Err(AggError::FloatOverflow);
            }
            new_sxx = f64::NAN;
        }
    } else if v.is_nan() || v.is_infinite() {
        new_sxx = f64::NAN;
    }
    *n = new_n;
    *sx = new_sx;
    *sxx = new_sxx;
    Ok(())
}

/// Adds the values `values` calls its argument with (it is called twice) to an
/// `avg(float8)` state {N, Sx, Sxx}: Sx summed in order, exactly as [`float8_accum`]
/// would; Sxx from the run's own mean and sum of squared deviations, combined as
/// PostgreSQL's `float8_combine` combines a parallel worker's state (no division per
/// value). Short runs and runs with infinities or NaN take [`float8_accum`] itself.
pub fn avg_run(
    n: &mut f64,
    sx: &mut f64,
    sxx: &mut f64,
    values: impl Fn(&mut dyn FnMut(f64)),
) -> Result<(), AggError> {
    // count, the run's own sum, Sx in order from the state's Sx
    let (mut cnt, mut local, mut total, mut finite) = (0usize, 0.0f64, *sx, true);
    values(&mut |v| {
        cnt += 1;
        local += v;
        total += v;
        finite &= v.is_finite();
    });
    if cnt < 8 || !finite {
        let mut res = Ok(());
        values(&mut |v| {
            if res.is_ok() {
                res = float8_accum(n, sx, sxx, v);
            }
        });
        return res;
    }
    if total.is_infinite() && sx.is_finite() {
        return Err(AggError::FloatOverflow);
    }
    let c = cnt as f64;
    let mean = local / c;
    let mut m2 = 0.0f64;
    values(&mut |v| {
        let d = v - mean;
        m2 += d * d;
    });
    if !m2.is_finite() {
        return Err(AggError::FloatOverflow);
    }
    let n1 = *n;
    let new_sxx = if n1 == 0.0 {
        m2
    } else if !sx.is_finite() || sxx.is_nan() {
        f64::NAN
    } else {
        let tmp = *sx / n1 - local / c;
        let v = *sxx + m2 + n1 * c * tmp * tmp / (n1 + c);
        if v.is_infinite() && sxx.is_finite() {
            return Err(AggError::FloatOverflow);
        }
        v
    };
    *n = n1 + c;
    *sx = total;
    *sxx = new_sxx;
    Ok(())
}

/// A group: the raw datums of its grouping values and which of them are NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GroupKey {
    pub vals: [u64; MAX_GROUP_COLUMNS],
    pub nulls: u8,
}

/// Most grouping expressions BidimAgg takes.
pub const MAX_GROUP_COLUMNS: usize = 4;

/// `date_trunc` to a fixed unit of `width` microseconds in a zone `offset`
/// microseconds east of UTC (0 for timestamp without time zone): what
/// `timestamptz_trunc` computes for units up to a day when the zone's offset never
/// changes. Infinities stay themselves.
#[inline]
pub fn trunc_fixed(t: i64, width: i64, offset: i64) -> i64 {
    if t == i64::MIN || t == i64::MAX {
        return t;
    }
    let local = t + offset;
    local - local.rem_euclid(width) - offset
}

/// Groups and their states, in the order groups were first seen.
pub struct Groups {
    pub kinds: Vec<AggKind>,
    index: std::collections::HashMap<GroupKey, usize, BuildHasher>,
    pub keys: Vec<GroupKey>,
    /// `kinds.len()` states per group, group after group.
    pub states: Vec<State>,
    /// Bytes of sketch bins held (grows only; reset with the groups).
    pub heap_bytes: usize,
    last: Option<(GroupKey, usize)>,
}

type BuildHasher = std::hash::BuildHasherDefault<FxHasher>;

/// A small multiplicative hasher (the keys are a few machine words).
#[derive(Default)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

impl Groups {
    pub fn new(kinds: Vec<AggKind>) -> Groups {
        Groups {
            kinds,
            index: Default::default(),
            keys: Vec::new(),
            states: Vec::new(),
            heap_bytes: 0,
            last: None,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The group of `key`, made when new.
    #[inline]
    pub fn group(&mut self, key: &GroupKey) -> usize {
        if let Some((k, g)) = &self.last {
            if k == key {
                return *g;
            }
        }
        let n = self.keys.len();
        let g = *self.index.entry(*key).or_insert(n);
        if g == n {
            self.keys.push(*key);
            self.states
                .extend(self.kinds.iter().map(|&k| State::new(k)));
        }
        self.last = Some((*key, g));
        g
    }

    /// Adds a row to group `g`: `arg(i)` is aggregate i's argument (raw, null). The
    /// row-at-a-time definition [`Groups::add_column`] is tested against.
    #[cfg(test)]
    #[inline]
    pub fn add(&mut self, g: usize, arg: impl Fn(usize) -> (u64, bool)) -> Result<(), AggError> {
        let n = self.kinds.len();
        for i in 0..n {
            let (raw, null) = arg(i);
            let st = &mut self.states[g * n + i];
            let sketch = matches!(st, State::Sketch(_));
            let before = if sketch { st.heap_bytes() } else { 0 };
            st.add(self.kinds[i], raw, null)?;
            if sketch {
                self.heap_bytes += st.heap_bytes().saturating_sub(before);
            }
        }
        Ok(())
    }

    /// Adds the rows `rows` (row `rows[j]` to group `gids[j]`, or every row to
    /// `gids[0]` when `gids` has one entry) to aggregate `i`, whose argument of row
    /// `r` is `arg(r)`: one pass per aggregate, the kind matched once.
    #[inline]
    pub fn add_column(
        &mut self,
        i: usize,
        rows: &[u32],
        gids: &[u32],
        arg: impl Fn(usize) -> (u64, bool),
    ) -> Result<(), AggError> {
        let n = self.kinds.len();
        let kind = self.kinds[i];
        let one = gids.len() == 1;
        let gid = |j: usize| if one { gids[0] } else { gids[j] } as usize;
        macro_rules! each {
            (|$st:ident, $raw:ident| $body:expr) => {
                for (j, &r) in rows.iter().enumerate() {
                    let ($raw, null) = arg(r as usize);
                    if null {
                        continue;
                    }
                    let $st = &mut self.states[gid(j) * n + i];
                    $body
                }
            };
        }
        match kind {
            AggKind::CountStar => {
                if one {
                    if let State::Count(c) = &mut self.states[gids[0] as usize * n + i] {
                        *c += rows.len() as i64;
                    }
                } else {
                    for j in 0..rows.len() {
                        if let State::Count(c) = &mut self.states[gid(j) * n + i] {
                            *c += 1;
                        }
                    }
                }
            }
            AggKind::AvgF8 => {
                // runs of rows of one group (a batch's rows of one time bucket)
                let mut j = 0;
                while j < rows.len() {
                    let g = gid(j);
                    let mut k = j + 1;
                    if one {
                        k = rows.len();
                    } else {
                        while k < rows.len() && gid(k) == g {
                            k += 1;
                        }
                    }
                    if let State::Avg { n: c, sx, sxx } = &mut self.states[g * n + i] {
                        let run = &rows[j..k];
                        avg_run(c, sx, sxx, |each| {
                            for &r in run {
                                let (raw, null) = arg(r as usize);
                                if !null {
                                    each(f64::from_bits(raw));
                                }
                            }
                        })?;
                    }
                    j = k;
                }
            }
            AggKind::MaxF8 => each!(|st, raw| {
                if let State::Float(s) = st {
                    let v = f64::from_bits(raw);
                    *s = Some(match *s {
                        Some(a) if float8_cmp(a, v) == Ordering::Greater => a,
                        _ => v,
                    });
                }
            }),
            AggKind::MaxInt => each!(|st, raw| {
                if let State::Int(s) = st {
                    let v = raw as i64;
                    *s = Some(s.map_or(v, |a| if a > v { a } else { v }));
                }
            }),
            AggKind::Sketch => {
                for (j, &r) in rows.iter().enumerate() {
                    let (raw, null) = arg(r as usize);
                    let st = &mut self.states[gid(j) * n + i];
                    let before = st.heap_bytes();
                    st.add(kind, raw, null)?;
                    self.heap_bytes += st.heap_bytes().saturating_sub(before);
                }
            }
            _ => each!(|st, raw| st.add(kind, raw, false)?),
        }
        Ok(())
    }

    /// Memory the groups hold, roughly.
    pub fn bytes(&self) -> usize {
        self.keys.len() * (std::mem::size_of::<GroupKey>() * 2 + 16)
            + self.states.len() * std::mem::size_of::<State>()
            + self.heap_bytes
    }

    /// The states of group `g`.
    pub fn states_of(&self, g: usize) -> &[State] {
        let n = self.kinds.len();
        &self.states[g * n..(g + 1) * n]
    }

    /// Takes out the groups whose key passes `done`, with their states, leaving the
    /// others (in their order).
    pub fn drain_where(&mut self, done: impl Fn(&GroupKey) -> bool) -> Vec<(GroupKey, Vec<State>)> {
        if !self.keys.iter().any(&done) {
            return Vec::new();
        }
        let n = self.kinds.len();
        let keys = std::mem::take(&mut self.keys);
        let mut states = std::mem::take(&mut self.states).into_iter();
        self.index.clear();
        self.last = None;
        self.heap_bytes = 0;
        let mut out = Vec::new();
        for key in keys {
            let st: Vec<State> = states.by_ref().take(n).collect();
            if done(&key) {
                out.push((key, st));
            } else {
                self.index.insert(key, self.keys.len());
                self.keys.push(key);
                self.heap_bytes += st.iter().map(State::heap_bytes).sum::<usize>();
                self.states.extend(st);
            }
        }
        out
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.keys.clear();
        self.states.clear();
        self.heap_bytes = 0;
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(kind: AggKind, vals: &[Option<f64>]) -> State {
        let mut s = State::new(kind);
        for v in vals {
            s.add(kind, v.unwrap_or(0.0).to_bits(), v.is_none())
                .unwrap();
        }
        s
    }

    #[test]
    fn float_extremes_follow_postgres_order() {
        let s = run(AggKind::MaxF8, &[Some(1.0), Some(f64::NAN), Some(2.0)]);
        assert!(matches!(s, State::Float(Some(v)) if v.is_nan()));
        let s = run(
            AggKind::MinF8,
            &[Some(f64::NAN), Some(3.0), None, Some(-1.0)],
        );
        assert!(matches!(s, State::Float(Some(v)) if v == -1.0));
        // ties keep the later value, as float8larger does (-0 after 0)
        let s = run(AggKind::MaxF8, &[Some(0.0), Some(-0.0)]);
        assert!(matches!(s, State::Float(Some(v)) if v.to_bits() == (-0.0f64).to_bits()));
        let s = run(AggKind::MaxF8, &[None, None]);
        assert!(matches!(s, State::Float(None)));
    }

    #[test]
    fn sums_overflow_as_postgres_does() {
        let mut s = State::new(AggKind::SumF8);
        s.add(AggKind::SumF8, 1e308f64.to_bits(), false).unwrap();
        assert_eq!(
            s.add(AggKind::SumF8, 1e308f64.to_bits(), false),
            Err(AggError::FloatOverflow)
        );
        // infinite inputs are not an overflow
        let s = run(AggKind::SumF8, &[Some(f64::INFINITY), Some(1.0)]);
        assert!(matches!(s, State::Float(Some(v)) if v == f64::INFINITY));
        let mut s = State::new(AggKind::AvgF8);
        s.add(AggKind::AvgF8, 1e200f64.to_bits(), false).unwrap();
        // Sxx overflows before Sx does: PostgreSQL raises it too.
        assert_eq!(
            s.add(AggKind::AvgF8, (-1e200f64).to_bits(), false),
            Err(AggError::FloatOverflow)
        );
        // and so does a run added at once
        let (mut n, mut sx, mut sxx) = (0.0, 0.0, 0.0);
        let run = |each: &mut dyn FnMut(f64)| {
            for k in 0..10 {
                each(if k % 2 == 0 { 1e200 } else { -1e200 })
            }
        };
        assert_eq!(
            avg_run(&mut n, &mut sx, &mut sxx, run),
            Err(AggError::FloatOverflow)
        );
        let (mut n, mut sx, mut sxx) = (0.0, 1e308, 0.0);
        let run = |each: &mut dyn FnMut(f64)| {
            for _ in 0..10 {
                each(1e308)
            }
        };
        assert_eq!(
            avg_run(&mut n, &mut sx, &mut sxx, run),
            Err(AggError::FloatOverflow)
        );
    }

    #[test]
    fn counts_and_int_aggregates() {
        let mut c = State::new(AggKind::Count);
        let mut cs = State::new(AggKind::CountStar);
        let mut sum = State::new(AggKind::SumInt);
        let mut avg = State::new(AggKind::AvgInt);
        let mut max = State::new(AggKind::MaxInt);
        for v in [Some(-5i64), None, Some(7), Some(i32::MAX as i64)] {
            let (raw, null) = (v.unwrap_or(0) as u64, v.is_none());
            c.add(AggKind::Count, raw, null).unwrap();
            cs.add(AggKind::CountStar, raw, null).unwrap();
            sum.add(AggKind::SumInt, raw, null).unwrap();
            avg.add(AggKind::AvgInt, raw, null).unwrap();
            max.add(AggKind::MaxInt, raw, null).unwrap();
        }
        assert!(matches!(c, State::Count(3)));
        assert!(matches!(cs, State::Count(4)));
        assert!(matches!(sum, State::Int(Some(v)) if v == 2 + i32::MAX as i64));
        assert!(matches!(avg, State::AvgInt { count: 3, sum } if sum == 2 + i32::MAX as i64));
        assert!(matches!(max, State::Int(Some(v)) if v == i32::MAX as i64));
    }

    #[test]
    fn trunc_matches_calendar_units() {
        const MIN: i64 = 60_000_000;
        const HOUR: i64 = 60 * MIN;
        assert_eq!(trunc_fixed(HOUR + 5 * MIN + 3, HOUR, 0), HOUR);
        assert_eq!(trunc_fixed(-1, MIN, 0), -MIN);
        // UTC+05:30: the local hour starts at :30 UTC
        let off = 5 * HOUR + 30 * MIN;
        assert_eq!(trunc_fixed(HOUR, HOUR, off), 30 * MIN);
        assert_eq!(trunc_fixed(i64::MAX, HOUR, off), i64::MAX);
    }

    #[test]
    fn groups_keep_first_seen_order() {
        let mut g = Groups::new(vec![AggKind::CountStar, AggKind::SumF8]);
        let k = |v: u64| GroupKey {
            vals: [v, 0, 0, 0],
            nulls: 0,
        };
        for v in [3u64, 1, 3, 3, 2, 1] {
            let i = g.group(&k(v));
            g.add(i, |_| (2.0f64.to_bits(), false)).unwrap();
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.keys[0], k(3));
        assert!(matches!(g.states_of(0)[0], State::Count(3)));
        assert!(matches!(g.states_of(0)[1], State::Float(Some(v)) if v == 6.0));
        let done = g.drain_where(|k| k.vals[0] >= 2);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].0, k(3));
        assert!(matches!(done[0].1[0], State::Count(3)));
        assert_eq!(g.len(), 1);
        let i = g.group(&k(1));
        assert_eq!(i, 0);
        assert!(matches!(g.states_of(0)[0], State::Count(2)));
        assert_eq!(g.group(&k(3)), 1);
        g.clear();
        assert!(g.is_empty());
    }

    #[test]
    fn column_passes_equal_row_passes() {
        let float_kinds = vec![
            AggKind::CountStar,
            AggKind::Count,
            AggKind::SumF8,
            AggKind::AvgF8,
            AggKind::MaxF8,
            AggKind::MinF8,
            AggKind::Sketch,
        ];
        let int_kinds = vec![
            AggKind::CountStar,
            AggKind::Count,
            AggKind::MaxInt,
            AggKind::MinInt,
            AggKind::SumInt,
            AggKind::AvgInt,
        ];
        let floats: Vec<(u64, bool)> = (0..300u64)
            .map(|r| (((r as f64) * 0.37).sin().to_bits(), r % 7 == 0))
            .collect();
        let ints: Vec<(u64, bool)> = (0..300u64)
            .map(|r| ((r as i64 * 37 % 101 - 50) as u64, r % 7 == 0))
            .collect();
        for (kinds, vals) in [(float_kinds, floats), (int_kinds, ints)] {
            let mut by_row = Groups::new(kinds.clone());
            let mut by_col = Groups::new(kinds.clone());
            let key = |r: usize| GroupKey {
                vals: [(r % 4) as u64, 0, 0, 0],
                nulls: 0,
            };
            let rows: Vec<u32> = (0..300).filter(|r| r % 5 != 0).collect();
            let mut gids = Vec::new();
            for &r in &rows {
                let g = by_row.group(&key(r as usize));
                by_row.add(g, |_| vals[r as usize]).unwrap();
                gids.push(by_col.group(&key(r as usize)) as u32);
            }
            for i in 0..kinds.len() {
                by_col.add_column(i, &rows, &gids, |r| vals[r]).unwrap();
            }
            assert_eq!(
                format!("{:?}", by_row.states),
                format!("{:?}", by_col.states)
            );
            // one group for every row
            let mut one = Groups::new(kinds.clone());
            let g = one.group(&GroupKey::default()) as u32;
            for i in 0..kinds.len() {
                one.add_column(i, &rows, &[g], |r| vals[r]).unwrap();
            }
            let mut seq = Groups::new(kinds.clone());
            let g = seq.group(&GroupKey::default());
            for &r in &rows {
                seq.add(g, |_| vals[r as usize]).unwrap();
            }
            assert_eq!(format!("{:?}", one.states), format!("{:?}", seq.states));
        }
    }

    proptest! {
        /// A run added at once keeps N and Sx bit for bit as row by row, and Sxx within
        /// rounding; infinities and NaN give what row by row gives.
        #[test]
        fn avg_runs_match_row_by_row(
            start in proptest::collection::vec(-1e6f64..1e6, 0..20),
            run in proptest::collection::vec(prop_oneof![8 => -1e9f64..1e9, 1 => Just(f64::INFINITY), 1 => Just(f64::NAN)], 0..300),
        ) {
            let (mut n1, mut sx1, mut sxx1) = (0.0, 0.0, 0.0);
            for v in &start { float8_accum(&mut n1, &mut sx1, &mut sxx1, *v).unwrap(); }
            let (mut n2, mut sx2, mut sxx2) = (n1, sx1, sxx1);
            for v in &run { float8_accum(&mut n1, &mut sx1, &mut sxx1, *v).unwrap(); }
            avg_run(&mut n2, &mut sx2, &mut sxx2, |each| for v in &run { each(*v) }).unwrap();
            prop_assert_eq!(n1, n2);
            prop_assert_eq!(sx1.to_bits(), sx2.to_bits());
            if sxx1.is_nan() {
                prop_assert!(sxx2.is_nan());
            } else {
                prop_assert!((sxx1 - sxx2).abs() <= 1e-9 * sxx1.abs().max(1.0), "{} vs {}", sxx1, sxx2);
            }
        }

        /// Adding rows one group at a time equals PostgreSQL's sequential formulas.
        #[test]
        fn avg_state_matches_sequential_definition(vals in proptest::collection::vec(-1e6f64..1e6, 1..200)) {
            let s = run(AggKind::AvgF8, &vals.iter().map(|v| Some(*v)).collect::<Vec<_>>());
            let State::Avg { n, sx, .. } = s else { panic!() };
            prop_assert_eq!(n, vals.len() as f64);
            let mut sum = 0.0;
            for v in &vals { sum += v; }
            prop_assert_eq!(sx.to_bits(), sum.to_bits());
        }
    }
}

//! Counters and gauges over a window: the change of the value (`increase`, `delta`)
//! and its per-second rate (`rate`), as Prometheus computes them (pure Rust).
//!
//! * A **counter** only goes up; a drop is a reset (the process restarted) and the
//!   value before the drop is added back: `increase = last - first + Σ value before
//!   each drop`. A gauge's `delta` is `last - first`, with no resets.
//! * **Without window bounds**, the change is over the sampled points only and the
//!   rate divides it by the seconds between the first and the last point.
//! * **With window bounds** `[start, end]` (a PromQL range `v[r]` evaluated at `end`,
//!   `start = end - r`), the change is extrapolated to the window's edges as
//!   Prometheus 3 does (`extrapolatedRate` in `promql/functions.go`): each edge gets
//!   the gap between it and the nearest point if that gap is under 1.1 average
//!   sample intervals, else half an average interval; a counter is never extrapolated
//!   below zero at the start; the rate divides by the window's seconds.
//!
//! Fewer than two points (or no time between them) give no answer (`None`, SQL NULL),
//! as Prometheus gives no sample.

use super::points::Point;

/// Why a window's answer cannot be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowError {
    /// `end` is not after `start`.
    EmptyWindow { start: i64, end: i64 },
    /// A point lies outside the window (time in microseconds).
    Outside { t: i64, start: i64, end: i64 },
}

const MICROS: f64 = 1_000_000.0;

/// The change from the first to the last point (points in time order); for a
/// counter, with the value before each drop added back (Prometheus: a drop below the
/// previous value is a reset).
pub fn change(points: &[Point], counter: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let mut result = points[points.len() - 1].v - points[0].v;
    if counter {
        let mut last = 0.0;
        for p in points {
            if p.v < last {
                result += last;
            }
            last = p.v;
        }
    }
    Some(result)
}

/// Seconds between the first and the last point.
fn sampled_seconds(points: &[Point]) -> f64 {
    (points[points.len() - 1].t - points[0].t) as f64 / MICROS
}

/// Per-second rate over the sampled points: [`change`] divided by the seconds from
/// the first to the last point (`None` when they are at one instant).
pub fn rate(points: &[Point], counter: bool) -> Option<f64> {
    let c = change(points, counter)?;
    let secs = sampled_seconds(points);
    (secs > 0.0).then(|| c / secs)
}

/// The change extrapolated to the window `[start, end]` (and divided by its seconds
/// when `per_second`), Prometheus's `increase`/`rate` (counter) and `delta` (gauge).
/// Points must be in time order and inside the window.
pub fn extrapolated(
    points: &[Point],
    start: i64,
    end: i64,
    counter: bool,
    per_second: bool,
) -> Result<Option<f64>, WindowError> {
    if end <= start {
        return Err(WindowError::EmptyWindow { start, end });
    }
    if let Some(p) = points.iter().find(|p| p.t < start || p.t > end) {
        return Err(WindowError::Outside { t: p.t, start, end });
    }
    let Some(mut result) = change(points, counter) else {
        return Ok(None);
    };
    let (first, last) = (points[0], points[points.len() - 1]);
    let sampled = sampled_seconds(points);
    if sampled <= 0.0 {
        return Ok(None);
    }
    let mut to_start = (first.t - start) as f64 / MICROS;
    let mut to_end = (end - last.t) as f64 / MICROS;
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        // The counter would have been zero this long before the first point.
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if per_second {
        factor /= (end - start) as f64 / MICROS;
    }
    result *= factor;
    Ok(Some(result))
}

//! Gauges: the time-weighted average of a value sampled at irregular times (pure
//! Rust).

use super::points::Point;

/// How a gauge's value is taken to move between two points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A straight line from one point to the next (trapezoids).
    Linear,
    /// Each value holds until the next point (last observation carried forward).
    Locf,
}

impl Method {
    /// The method named `s` (any case), without allocating (a row's argument).
    pub fn parse(s: &str) -> Option<Method> {
        if s.eq_ignore_ascii_case("linear") {
            Some(Method::Linear)
        } else if s.eq_ignore_ascii_case("locf") {
            Some(Method::Locf)
        } else {
            None
        }
    }
}

/// The time-weighted average of points in time order: the area under the gauge from
/// the first to the last point divided by that time. One instant (a single point, or
/// points all at one time) gives the plain mean of its values; no points, `None`.
pub fn time_weighted_average(points: &[Point], method: Method) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let span = (last.t - first.t) as f64;
    if span <= 0.0 {
        return Some(points.iter().map(|p| p.v).sum::<f64>() / points.len() as f64);
    }
    let area: f64 = points
        .windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t) as f64;
            match method {
                Method::Linear => dt * (w[0].v + w[1].v) / 2.0,
                Method::Locf => dt * w[0].v,
            }
        })
        .sum();
    Some(area / span)
}

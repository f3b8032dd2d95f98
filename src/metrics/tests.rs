//! Unit tests of the pure cores: Prometheus's own test cases for increase/rate/delta,
//! brute-force oracles and order-independence properties.

use super::counter::{change, extrapolated, rate, WindowError};
use super::gapfill::{fill, Fill, GapError};
use super::gauge::{time_weighted_average, Method};
use super::points::{decode, encode, is_normalized, normalize, Keep, Params, Point};
use proptest::prelude::*;

const MIN: i64 = 60_000_000;

fn series(start_min: i64, step_min: i64, values: &[f64]) -> Vec<Point> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| Point {
            t: (start_min + i as i64 * step_min) * MIN,
            v,
        })
        .collect()
}

/// PromQL's `a+bxn` notation: a, a+b, ..., n+1 values.
fn expand(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..=n).map(|i| a + b * i as f64).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Prometheus `promql/promqltest/testdata/functions.test`:
/// `load 5m` of `http_requests{path="/foo"} 0+10x10`, `/bar 0+10x5 0+10x5`,
/// `/dings 10+10x10`, `/bumms 1+10x10`; `eval instant at 50m increase(http_requests[50m])`
/// gives 100, 90, 100, 100 with the range's start point (Prometheus 2's closed range),
/// and 100, 88.888..., 100, 100 without it (Prometheus 3's left-open range: /bar's
/// first point is then 10, and 80 over 45 minutes extrapolates to 80 * 50 / 45).
#[test]
fn prometheus_increase_examples() {
    let mut bar = expand(0.0, 10.0, 5);
    bar.extend(expand(0.0, 10.0, 5));
    let cases = [
        ("foo", expand(0.0, 10.0, 10), 100.0, 100.0),
        ("bar", bar, 90.0, 80.0 * 50.0 / 45.0),
        ("dings", expand(10.0, 10.0, 10), 100.0, 100.0),
        ("bumms", expand(1.0, 10.0, 10), 100.0, 100.0),
    ];
    for (name, values, want, want_open) in cases {
        let pts: Vec<Point> = series(0, 5, &values)
            .into_iter()
            .filter(|p| p.t <= 50 * MIN)
            .collect();
        let got = extrapolated(&pts, 0, 50 * MIN, true, false)
            .unwrap()
            .unwrap();
        assert!(close(got, want), "{name} closed: {got} != {want}");
        let open: Vec<Point> = pts.into_iter().filter(|p| p.t > 0).collect();
        let got = extrapolated(&open, 0, 50 * MIN, true, false)
            .unwrap()
            .unwrap();
        assert!(
            close(got, want_open),
            "{name} left-open: {got} != {want_open}"
        );
        // rate = increase / the window's seconds.
        let r = extrapolated(&open, 0, 50 * MIN, true, true)
            .unwrap()
            .unwrap();
        assert!(close(r, want_open / 3000.0), "{name} rate {r}");
    }
}

/// A window much longer than the samples: each edge gets half an average interval.
/// Samples 10 and 20 at 10m and 15m in [0m, 30m]: change 10, sampled 300 s, average
/// 300 s, threshold 330 s; start gap 600 s -> 150 s, but the counter reaches zero 300 s
/// before (10 / 10 * 300) -> 150 s stays; end gap 900 s -> 150 s. 10 * 600 / 300 = 20.
#[test]
fn extrapolation_limits() {
    let pts = series(10, 5, &[10.0, 20.0]);
    let got = extrapolated(&pts, 0, 30 * MIN, true, false)
        .unwrap()
        .unwrap();
    assert!(close(got, 20.0), "{got}");
    // Zero clamp: 1 -> 11 at 10m, 15m: to zero is 30 s (1/10 * 300), under 150 s.
    let pts = series(10, 5, &[1.0, 11.0]);
    let got = extrapolated(&pts, 0, 30 * MIN, true, false)
        .unwrap()
        .unwrap();
    assert!(close(got, 10.0 * (300.0 + 30.0 + 150.0) / 300.0), "{got}");
    // A gauge is not clamped at zero, and may fall.
    let got = extrapolated(&series(10, 5, &[11.0, 1.0]), 0, 30 * MIN, false, false)
        .unwrap()
        .unwrap();
    assert!(close(got, -20.0), "{got}");
    // Edges within 1.1 average intervals are extrapolated to in full.
    let got = extrapolated(&series(1, 1, &[0.0, 1.0, 2.0]), 0, 4 * MIN, false, false)
        .unwrap()
        .unwrap();
    assert!(close(got, 4.0), "{got}");
}

#[test]
fn too_few_points_and_bad_windows() {
    assert_eq!(change(&[], true), None);
    assert_eq!(change(&series(0, 1, &[5.0]), true), None);
    assert_eq!(rate(&series(0, 1, &[5.0]), true), None);
    assert_eq!(
        extrapolated(&series(1, 1, &[5.0]), 0, 2 * MIN, true, true),
        Ok(None)
    );
    // Two points at one instant: no time to divide by.
    let same = [Point { t: MIN, v: 1.0 }, Point { t: MIN, v: 2.0 }];
    assert_eq!(rate(&same, true), None);
    assert_eq!(extrapolated(&same, 0, 2 * MIN, true, true), Ok(None));
    assert_eq!(
        extrapolated(&series(0, 1, &[1.0, 2.0]), 5, 5, true, true),
        Err(WindowError::EmptyWindow { start: 5, end: 5 })
    );
    assert_eq!(
        extrapolated(&series(0, 1, &[1.0, 2.0]), MIN / 2, 5 * MIN, true, true),
        Err(WindowError::Outside {
            t: 0,
            start: MIN / 2,
            end: 5 * MIN
        })
    );
}

#[test]
fn resets_are_added_back() {
    // 5, 10, 2 (reset: +10), 4, 1 (reset: +4): 1 - 5 + 14 = 10.
    let pts = series(0, 1, &[5.0, 10.0, 2.0, 4.0, 1.0]);
    assert_eq!(change(&pts, true), Some(10.0));
    assert_eq!(change(&pts, false), Some(-4.0));
    assert_eq!(rate(&pts, true), Some(10.0 / 240.0));
}

#[test]
fn time_weighted_averages() {
    // 0 for 1 min then 10 for 3 min (LOCF): (0*60 + 10*180 + 10*0) / 240.
    let pts = series(0, 1, &[0.0, 10.0, 10.0, 10.0, 20.0]);
    let locf = time_weighted_average(&pts, Method::Locf).unwrap();
    assert!(close(locf, (0.0 + 10.0 * 3.0) / 4.0), "{locf}");
    let lin = time_weighted_average(&pts, Method::Linear).unwrap();
    assert!(close(lin, (5.0 + 10.0 + 10.0 + 15.0) / 4.0), "{lin}");
    assert_eq!(time_weighted_average(&[], Method::Linear), None);
    assert_eq!(
        time_weighted_average(&series(3, 1, &[7.0]), Method::Locf),
        Some(7.0)
    );
    let same = [Point { t: MIN, v: 1.0 }, Point { t: MIN, v: 3.0 }];
    assert_eq!(time_weighted_average(&same, Method::Linear), Some(2.0));
    assert_eq!(Method::parse("LOCF"), Some(Method::Locf));
    assert_eq!(Method::parse("step"), None);
}

#[test]
fn first_and_last_break_ties_by_value() {
    let a = Point { t: 1, v: 5.0 };
    let b = Point { t: 1, v: 3.0 };
    let c = Point { t: 2, v: 0.0 };
    assert!(Keep::First.replaces(a, b));
    assert!(!Keep::First.replaces(b, a));
    assert!(!Keep::First.replaces(a, c));
    assert!(Keep::Last.replaces(a, c));
    assert!(Keep::Last.replaces(b, a));
    assert!(!Keep::Last.replaces(a, b));
    assert!(!Keep::Last.replaces(a, a));
}

#[test]
fn states_round_trip() {
    let params = Params {
        window: Some((-5, 77)),
        method: 2,
        keep: Keep::Last,
    };
    let pts = series(0, 1, &[1.0, f64::NAN, -0.0, f64::INFINITY]);
    let (p2, back) = decode(&encode(params, &pts)).unwrap();
    assert_eq!(p2, params);
    assert_eq!(back.len(), pts.len());
    for (a, b) in back.iter().zip(&pts) {
        assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
    }
    assert!(decode(&[]).is_err());
    assert!(decode(&[9, 0, 0]).is_err());
    assert!(decode(&[1, 0, 0, 1]).is_err());
    assert!(decode(&[1, 1, 0]).is_err());
    assert!(decode(&[1, 8, 0]).is_err());
}

#[test]
fn gap_filling() {
    let known = [(0, Some(1.0)), (30, Some(4.0)), (20, None)];
    let got = fill(0, 50, 10, &known, Fill::Null, None).unwrap();
    assert_eq!(
        got,
        vec![
            (0, Some(1.0)),
            (10, None),
            (20, None),
            (30, Some(4.0)),
            (40, None)
        ]
    );
    let got = fill(0, 50, 10, &known, Fill::Locf, None).unwrap();
    let vals: Vec<_> = got.iter().map(|b| b.1).collect();
    assert_eq!(
        vals,
        vec![Some(1.0), Some(1.0), Some(1.0), Some(4.0), Some(4.0)]
    );
    let got = fill(0, 50, 10, &known, Fill::Linear, None).unwrap();
    let vals: Vec<_> = got.iter().map(|b| b.1).collect();
    assert_eq!(vals, vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), None]);
    // `before` starts LOCF and interpolation one width ahead of the window.
    let got = fill(0, 30, 10, &[(20, Some(3.0))], Fill::Linear, Some(0.0)).unwrap();
    let vals: Vec<_> = got.iter().map(|b| b.1).collect();
    assert_eq!(vals, vec![Some(1.0), Some(2.0), Some(3.0)]);
    let got = fill(0, 20, 10, &[], Fill::Locf, Some(9.0)).unwrap();
    assert_eq!(got, vec![(0, Some(9.0)), (10, Some(9.0))]);
    // Off-grid and out-of-window buckets are ignored; a partial last bucket counts.
    let got = fill(
        0,
        25,
        10,
        &[(5, Some(1.0)), (-10, Some(1.0)), (30, Some(1.0))],
        Fill::Null,
        None,
    )
    .unwrap();
    assert_eq!(got, vec![(0, None), (10, None), (20, None)]);
    assert_eq!(
        fill(0, 10, 0, &[], Fill::Null, None),
        Err(GapError::NonPositiveWidth(0))
    );
    assert_eq!(
        fill(
            0,
            10,
            10,
            &[(0, Some(1.0)), (0, Some(2.0))],
            Fill::Null,
            None
        ),
        Err(GapError::Duplicate(0))
    );
    assert!(matches!(
        fill(0, i64::MAX, 1, &[], Fill::Null, None),
        Err(GapError::TooMany(_))
    ));
    assert_eq!(fill(10, 0, 1, &[], Fill::Null, None), Ok(vec![]));
}

/// Brute-force oracle of a counter's increase: walk consecutive pairs in time order.
fn oracle_increase(points: &[Point]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let mut total = 0.0;
    for w in points.windows(2) {
        total += if w[1].v < w[0].v {
            w[1].v
        } else {
            w[1].v - w[0].v
        };
    }
    Some(total)
}

fn arb_points() -> impl Strategy<Value = Vec<Point>> {
    prop::collection::vec((0i64..1000, 0u32..1000), 0..60).prop_map(|v| {
        v.into_iter()
            .map(|(t, x)| Point {
                t: t * 1_000_000,
                v: f64::from(x),
            })
            .collect()
    })
}

proptest! {
    /// Answers do not depend on input order nor on how points split into partial
    /// states: normalizing any permutation, or the concatenation of any split, gives
    /// the same points.
    #[test]
    fn order_and_split_independent(pts in arb_points(), cut in 0usize..60, seed in any::<u64>()) {
        let mut a = pts.clone();
        normalize(&mut a);
        prop_assert!(is_normalized(&a));
        let mut shuffled = pts.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let cut = cut.min(shuffled.len());
        let (l, r) = shuffled.split_at(cut);
        let mut merged: Vec<Point> = r.iter().chain(l.iter()).copied().collect();
        normalize(&mut merged);
        prop_assert_eq!(
            a.iter().map(|p| (p.t, p.v.to_bits())).collect::<Vec<_>>(),
            merged.iter().map(|p| (p.t, p.v.to_bits())).collect::<Vec<_>>()
        );
        prop_assert_eq!(change(&a, true).map(f64::to_bits), change(&merged, true).map(f64::to_bits));
    }

    /// The increase equals the pairwise oracle for non-negative counters.
    #[test]
    fn increase_matches_oracle(mut pts in arb_points()) {
        normalize(&mut pts);
        match (change(&pts, true), oracle_increase(&pts)) {
            (Some(a), Some(b)) => prop_assert!(close(a, b), "{} != {}", a, b),
            (a, b) => prop_assert_eq!(a, b),
        }
    }

    /// LOCF average equals a per-microsecond-step oracle on small spans.
    #[test]
    fn locf_matches_step_oracle(raw in prop::collection::vec((0i64..50, -20i32..20), 2..12)) {
        let mut pts: Vec<Point> = raw.iter().map(|&(t, v)| Point { t, v: f64::from(v) }).collect();
        normalize(&mut pts);
        let span = pts[pts.len() - 1].t - pts[0].t;
        prop_assume!(span > 0);
        let mut area = 0.0;
        for t in pts[0].t..pts[pts.len() - 1].t {
            // The value in force at t: the last point at or before t.
            let v = pts.iter().rev().find(|p| p.t <= t).unwrap().v;
            area += v;
        }
        let got = time_weighted_average(&pts, Method::Locf).unwrap();
        prop_assert!(close(got, area / span as f64), "{} != {}", got, area / span as f64);
    }
}

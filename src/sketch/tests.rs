//! Property tests of the sketch core against exact `percentile_disc` answers, merges,
//! and the codecs (golden bytes, round trips, random bytes never panic).

use super::codec::{decode, encode, from_json, to_json};
use super::core::{Sketch, SketchError, Store, DEFAULT_ALPHA, DEFAULT_BUCKETS};
use proptest::prelude::*;

/// Deterministic generator (xorshift64*), uniform in (0, 1).
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545F4914F6CDD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

/// percentile_disc: the smallest value whose cumulative fraction reaches q.
fn percentile_disc(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

const QS: [f64; 12] = [
    0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
];

fn check_accuracy(name: &str, values: &[f64], alpha: f64, buckets: i64) {
    let mut s = Sketch::new(alpha, buckets).unwrap();
    for &v in values {
        s.add(v, 1).unwrap();
    }
    assert!(!s.is_collapsed(), "{name}: collapsed");
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    for q in QS {
        let exact = percentile_disc(&sorted, q);
        let got = s.quantile(q).unwrap().unwrap();
        let err = (got - exact).abs();
        assert!(
            err <= alpha * exact.abs() * (1.0 + 1e-9),
            "{name}: q={q} exact={exact} got={got} relative error {}",
            err / exact.abs()
        );
    }
    assert_eq!(s.count(), values.len() as u64);
    assert_eq!(s.min(), Some(sorted[0]));
    assert_eq!(s.max(), Some(*sorted.last().unwrap()));
}

#[test]
fn quantiles_are_within_alpha_of_percentile_disc() {
    let n = 20_000;
    let mut r = Rng(42);
    let dists: Vec<(&str, Vec<f64>)> = vec![
        ("uniform", (0..n).map(|_| r.unit() * 1000.0).collect()),
        (
            "normal with negatives",
            (0..n).map(|_| 5.0 + 10.0 * r.normal()).collect(),
        ),
        (
            "lognormal",
            (0..n).map(|_| (1.0 + 2.0 * r.normal()).exp()).collect(),
        ),
        ("pareto a=1", (0..n).map(|_| 1.0 / r.unit()).collect()),
        (
            "exponential",
            (0..n).map(|_| -r.unit().ln() / 0.01).collect(),
        ),
        (
            "bimodal",
            (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        10.0 + r.normal()
                    } else {
                        1000.0 + 50.0 * r.normal()
                    }
                })
                .collect(),
        ),
        ("constant", vec![42.0; n]),
        (
            "mixed signs with zeros",
            (0..n)
                .map(|i| match i % 4 {
                    0 => 0.0,
                    1 => -r.unit() * 100.0,
                    _ => r.unit() * 1e6,
                })
                .collect(),
        ),
        (
            "tsbs integers 0..100",
            (0..n).map(|_| (r.unit() * 101.0).floor()).collect(),
        ),
    ];
    for (name, values) in &dists {
        check_accuracy(name, values, DEFAULT_ALPHA, DEFAULT_BUCKETS as i64);
        check_accuracy(name, values, 0.001, 200_000);
    }
    // Magnitudes from 1e-300 to 1e300 need more bins than the default.
    let huge: Vec<f64> = (0..n)
        .map(|i| {
            let m = 10f64.powf(-300.0 + 600.0 * r.unit());
            if i % 2 == 0 {
                m
            } else {
                -m
            }
        })
        .collect();
    check_accuracy("1e-300..1e300", &huge, DEFAULT_ALPHA, 100_000);
}

#[test]
fn edges_min_max_single_value() {
    let mut s = Sketch::new(0.01, 2048).unwrap();
    assert_eq!(s.quantile(0.5).unwrap(), None);
    s.add(7.3125, 1).unwrap();
    for q in QS {
        assert_eq!(
            s.quantile(q).unwrap(),
            Some(7.3125),
            "one value comes back exactly"
        );
    }
    s.add(-2.5, 1).unwrap();
    assert_eq!(s.quantile(0.0).unwrap(), Some(-2.5));
    assert_eq!(s.quantile(1.0).unwrap(), Some(7.3125));
    assert_eq!(s.quantile(1.5), Err(SketchError::BadQuantile(1.5)));
    assert!(matches!(
        s.quantile(f64::NAN),
        Err(SketchError::BadQuantile(_))
    ));
    assert!(s.add(f64::NAN, 1).unwrap_err().to_string().contains("NaN"));
    assert!(matches!(
        s.add(f64::INFINITY, 1),
        Err(SketchError::NotFinite(_))
    ));
    assert!(matches!(
        Sketch::new(0.0, 2048),
        Err(SketchError::BadAlpha(_))
    ));
    assert!(matches!(
        Sketch::new(1.0, 2048),
        Err(SketchError::BadAlpha(_))
    ));
    assert!(matches!(
        Sketch::new(0.01, 15),
        Err(SketchError::BadBuckets(15))
    ));
    assert!(matches!(
        Sketch::new(0.01, 1 << 40),
        Err(SketchError::BadBuckets(_))
    ));
    assert!(matches!(s.add(1.0, 0), Err(SketchError::BadWeight(0))));
    // Subnormals and zeros count as zero.
    s.add(1e-310, 2).unwrap();
    assert_eq!(s.zero_count(), 2);
    assert_eq!(s.rank(-10.0).unwrap(), Some(0.0));
    assert_eq!(s.rank(10.0).unwrap(), Some(1.0));
}

#[test]
fn collapse_keeps_high_quantiles_and_reports_it() {
    let mut s = Sketch::new(0.01, 64).unwrap();
    for i in 1..=10_000 {
        s.add(i as f64, 1).unwrap();
    }
    assert!(s.is_collapsed());
    assert!(s.relative_error() > 0.01);
    assert_eq!(s.count(), 10_000);
    assert!(s.positive().bins().count() <= 64);
    // The top quantiles are still within alpha.
    let p99 = s.quantile(0.99).unwrap().unwrap();
    assert!(
        (p99 - 9900.0).abs() <= 0.01 * 9900.0 * (1.0 + 1e-9),
        "p99 {p99}"
    );
    let q = s.quantile(0.0001).unwrap().unwrap();
    assert!(q >= 1.0, "answers stay clamped to [min, max]: {q}");
}

fn sketch_of(values: &[f64]) -> Sketch {
    let mut s = Sketch::new(0.02, 4096).unwrap();
    for &v in values {
        s.add(v, 1).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A merge (its slice fast path included) builds the same store, array and floor,
    /// as adding the other store's bins one by one, collapsed or not.
    #[test]
    fn store_merge_equals_adding_each_bin(
        a in prop::collection::vec((-40i32..40, 1u64..5), 0..30),
        b in prop::collection::vec((-40i32..40, 1u64..5), 0..30),
        max in 4u32..90,
    ) {
        let build = |bins: &[(i32, u64)]| {
            let mut s = Store::default();
            for &(i, c) in bins {
                s.add(i, c, max).unwrap();
            }
            s
        };
        let (x, y) = (build(&a), build(&b));
        let mut fast = x.clone();
        fast.merge(&y, max).unwrap();
        let mut slow = x.clone();
        slow.merge_per_bin(&y, max).unwrap();
        prop_assert_eq!(fast, slow);
    }

    /// merge(sketch(A), sketch(B)) == sketch(A ∪ B) bin for bin, in either order and
    /// grouped either way; negative bins and the zero count survive.
    #[test]
    fn merge_is_exact_commutative_associative(
        a in prop::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0), -1.0f64..1.0], 0..300),
        b in prop::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0)], 0..300),
        c in prop::collection::vec(-1e3f64..1e3, 0..300),
    ) {
        let all: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
        let whole = sketch_of(&all);
        let mut ab = sketch_of(&a);
        ab.merge(&sketch_of(&b)).unwrap();
        let mut ab_c = ab.clone();
        ab_c.merge(&sketch_of(&c)).unwrap();
        let mut bc = sketch_of(&b);
        bc.merge(&sketch_of(&c)).unwrap();
        let mut a_bc = sketch_of(&a);
        a_bc.merge(&bc).unwrap();
        let mut ba = sketch_of(&b);
        ba.merge(&sketch_of(&a)).unwrap();
        for m in [&ab_c, &a_bc] {
            prop_assert_eq!(m.positive(), whole.positive());
            prop_assert_eq!(m.negative(), whole.negative());
            prop_assert_eq!(m.zero_count(), whole.zero_count());
            prop_assert_eq!(m.count(), whole.count());
            prop_assert_eq!(m.min(), whole.min());
            prop_assert_eq!(m.max(), whole.max());
        }
        prop_assert_eq!(ab.positive(), ba.positive());
        prop_assert_eq!(ab.negative(), ba.negative());
        prop_assert_eq!(ab.zero_count(), ba.zero_count());
    }

    /// Incremental adds into a merged sketch keep negative bins and zeros.
    #[test]
    fn add_after_merge_matches_whole(
        a in prop::collection::vec(-100f64..100.0, 1..100),
        b in prop::collection::vec(prop_oneof![-100f64..100.0, Just(0.0)], 1..100),
    ) {
        let mut m = sketch_of(&a);
        for &v in &b {
            m.add(v, 1).unwrap();
        }
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let whole = sketch_of(&all);
        prop_assert_eq!(m.negative(), whole.negative());
        prop_assert_eq!(m.zero_count(), whole.zero_count());
        prop_assert_eq!(m.positive(), whole.positive());
    }

    /// Binary and JSON forms round-trip exactly, collapsed or not.
    #[test]
    fn codecs_round_trip(
        values in prop::collection::vec(prop_oneof![-1e300f64..1e300, -1e-3f64..1e-3, Just(0.0)], 0..400),
        buckets in 16i64..300,
    ) {
        let mut s = Sketch::new(0.01, buckets).unwrap();
        for &v in &values {
            s.add(v, 1).unwrap();
        }
        let back = decode(&encode(&s)).unwrap();
        prop_assert_eq!(&back, &s);
        let text = to_json(&s);
        let back = from_json(&text).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(to_json(&back), text);
    }

    /// Random and mutated bytes are refused with an error, never a panic.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), flip in any::<(usize, u8)>()) {
        let _ = decode(&bytes);
        let mut v = vec![1u8, 0];
        v.extend(&bytes);
        let _ = decode(&v);
        let mut good = encode(&sketch_of(&[1.0, -2.0, 0.0, 1e9]));
        let i = flip.0 % good.len();
        good[i] ^= flip.1;
        let _ = decode(&good);
        good.truncate(i);
        let _ = decode(&good);
        let _ = from_json(&String::from_utf8_lossy(&bytes));
    }
}

/// Pins the version 1 binary format: these bytes must decode the same forever.
#[test]
fn golden_bytes_version_1() {
    let mut s = Sketch::new(0.01, 2048).unwrap();
    for v in [1.0, 2.0, 2.0, -3.0, 0.0, 100.0] {
        s.add(v, 1).unwrap();
    }
    let bytes = encode(&s);
    // version 1, no flags, alpha 0.01, max_buckets 2048 (varint), zero count 1,
    // sum 102.0, min -3.0, max 100.0, floors 0 0, positive bins from index 0:
    // (+0: 1), (+35: 2), (+196: 1); negative bins from index 55 (zigzag 110): (+0: 1).
    let golden: &[u8] = &[
        1, 0, 123, 20, 174, 71, 225, 122, 132, 63, 251, 0, 8, 1, 0, 0, 0, 0, 0, 128, 89, 64, 0, 0,
        0, 0, 0, 0, 8, 192, 0, 0, 0, 0, 0, 0, 89, 64, 0, 0, 0, 3, 0, 1, 35, 2, 196, 1, 110, 1, 0,
        1,
    ];
    assert_eq!(bytes, golden, "encoding changed: {bytes:?}");
    assert_eq!(decode(golden).unwrap(), s);
    assert!(bytes.len() < 64);
}

#[test]
fn corrupt_inputs_are_refused_with_reasons() {
    assert!(decode(&[]).unwrap_err().to_string().contains("empty"));
    assert!(decode(&[2, 0])
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    assert!(decode(&[1, 0x80])
        .unwrap_err()
        .to_string()
        .contains("flags"));
    let e = from_json(r#"{"alpha":0.01,"max_buckets":2048,"count":5,"sum":1,"min":1,"max":1,"zero":0,"positive":[[0,1]],"negative":[]}"#)
        .unwrap_err();
    assert!(e.to_string().contains("count 5"), "{e}");
    let e = from_json(r#"{"alpha":2,"max_buckets":2048,"count":0,"sum":0,"min":null,"max":null,"zero":0,"positive":[],"negative":[]}"#)
        .unwrap_err();
    assert!(matches!(e, SketchError::BadAlpha(_)));
    let e = from_json(r#"{"alpha":0.01,"max_buckets":2048,"count":2,"sum":1,"min":1,"max":1,"zero":0,"positive":[[5,1],[3,1]],"negative":[]}"#)
        .unwrap_err();
    assert!(e.to_string().contains("ascending"), "{e}");
}

#[test]
fn insert_is_fast_enough_to_matter() {
    // Not a benchmark (see benches/), a guard against accidental O(n) inserts.
    let mut s = Sketch::new(0.01, 2048).unwrap();
    let mut r = Rng(7);
    for _ in 0..1_000_000 {
        s.add((3.0 + r.normal()).exp(), 1).unwrap();
    }
    assert_eq!(s.count(), 1_000_000);
    assert!(s.positive().bins().count() < 2048);
}

/// Micro-benchmark of the core (run by `scripts/bench.sh`, release build):
/// `cargo test --release --lib sketch::tests::micro_benchmark -- --ignored --nocapture`.
#[test]
#[ignore]
fn micro_benchmark() {
    use std::hint::black_box;
    use std::time::Instant;
    let mut rng = Rng(7);
    let values: Vec<f64> = (0..1_000_000).map(|_| rng.normal().exp()).collect();
    let mut best_add = f64::MAX;
    let mut sketch = Sketch::new(DEFAULT_ALPHA, DEFAULT_BUCKETS as i64).unwrap();
    for _ in 0..5 {
        let mut s = Sketch::new(DEFAULT_ALPHA, DEFAULT_BUCKETS as i64).unwrap();
        let t = Instant::now();
        for &v in &values {
            s.add(black_box(v), 1).unwrap();
        }
        best_add = best_add.min(t.elapsed().as_nanos() as f64 / values.len() as f64);
        sketch = s;
    }
    let parts: Vec<Sketch> = values
        .chunks(1000)
        .map(|c| {
            let mut s = Sketch::new(DEFAULT_ALPHA, DEFAULT_BUCKETS as i64).unwrap();
            for &v in c {
                s.add(v, 1).unwrap();
            }
            s
        })
        .collect();
    let mut best_merge = f64::MAX;
    for _ in 0..5 {
        let mut total = Sketch::new(DEFAULT_ALPHA, DEFAULT_BUCKETS as i64).unwrap();
        let t = Instant::now();
        for p in &parts {
            total.merge(black_box(p)).unwrap();
        }
        best_merge = best_merge.min(t.elapsed().as_nanos() as f64 / parts.len() as f64);
    }
    let bytes = encode(&sketch);
    let t = Instant::now();
    for _ in 0..1000 {
        black_box(decode(black_box(&bytes)).unwrap());
    }
    let decode_us = t.elapsed().as_nanos() as f64 / 1000.0 / 1000.0;
    let t = Instant::now();
    for _ in 0..1000 {
        black_box(encode(black_box(&sketch)));
    }
    let encode_us = t.elapsed().as_nanos() as f64 / 1000.0 / 1000.0;
    let bins = sketch.positive().bins().count();
    println!("| operation | cost |");
    println!("|---|---:|");
    println!("| add one value (1M lognormal values, alpha 0.01) | {best_add:.1} ns |");
    println!("| merge a 1000-value sketch into a running total | {best_merge:.0} ns |");
    println!(
        "| encode a {bins}-bin sketch ({} bytes) | {encode_us:.1} us |",
        bytes.len()
    );
    println!("| decode (and validate) it | {decode_us:.1} us |");
}

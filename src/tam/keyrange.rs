//! Key ranges: the key half of a cell. Pure Rust.
//!
//! A table's key space is tiled by half-open ranges `[lo, hi)` (`None` = unbounded).
//! It starts as one range (id 0) and splits in two at a key chosen from the data: the
//! median of a sample of the keys a full hot chunk holds, so skewed keys (a few huge
//! series, many small ones) end up with ranges of similar row counts.
//!
//! Keys compare as integers (smallint, integer, bigint columns) or as byte strings
//! (text, varchar: the order of `COLLATE "C"`). Routing needs a total order that never
//! changes, not the column's collation; pruning only compares a query's key for
//! equality with range bounds, which is byte equality for deterministic collations.

use std::cmp::Ordering;

/// How a table's key column compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Text,
}

/// One key value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Int(i64),
    Text(Vec<u8>),
}

impl Key {
    /// The directory's text form of a range bound (decimal, or the string itself).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Key::Int(v) => Some(v.to_string()),
            Key::Text(b) => String::from_utf8(b.clone()).ok(),
        }
    }

    /// Parses a bound stored by [`Key::to_text`].
    pub fn parse(kind: KeyKind, s: &str) -> Option<Key> {
        match kind {
            KeyKind::Int => s.trim().parse().ok().map(Key::Int),
            KeyKind::Text => Some(Key::Text(s.as_bytes().to_vec())),
        }
    }
}

/// One key range `[lo, hi)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub id: i32,
    pub lo: Option<Key>,
    pub hi: Option<Key>,
}

/// The range every table starts with.
pub fn whole() -> Range {
    Range {
        id: 0,
        lo: None,
        hi: None,
    }
}

/// Whether `[lo, hi)` holds `k`.
pub fn contains(lo: Option<&Key>, hi: Option<&Key>, k: &Key) -> bool {
    lo.is_none_or(|l| l <= k) && hi.is_none_or(|h| k < h)
}

/// Sorts ranges by lower bound (unbounded first), the order [`route`] expects.
pub fn sort(ranges: &mut [Range]) {
    ranges.sort_by(|a, b| match (&a.lo, &b.lo) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    });
}

/// The range holding `k`, from ranges sorted by [`sort`] that tile the key space.
pub fn route<'a>(ranges: &'a [Range], k: &Key) -> Option<&'a Range> {
    // The last range whose lower bound is <= k.
    let n = ranges.partition_point(|r| r.lo.as_ref().is_none_or(|l| l <= k));
    let r = ranges.get(n.checked_sub(1)?)?;
    contains(r.lo.as_ref(), r.hi.as_ref(), k).then_some(r)
}

/// Where to split a range, given a sample of the keys it holds: the sample's median,
/// moved up past the smallest key if they are equal, so both halves hold sampled keys
/// (a single huge series ends up alone in the lower half). `None` when the sample has
/// fewer than two distinct keys: such a range cannot be split usefully.
pub fn split_point(sample: &mut [Key]) -> Option<Key> {
    if sample.len() < 2 {
        return None;
    }
    sample.sort_unstable();
    let first = &sample[0];
    let median = &sample[sample.len() / 2];
    if median != first {
        return Some(median.clone());
    }
    sample.iter().find(|k| *k > first).cloned()
}

/// A key range splits when it has filled this many chunks in one time partition.
pub const SPLIT_AFTER_CHUNKS: usize = 2;
/// Most active key ranges a table gets (each costs a chunk per time partition).
pub const MAX_KEY_RANGES: usize = 64;

/// Whether a range that has filled `filled` chunks in one time partition, in a table
/// with `active` key ranges, is due to split.
pub fn split_due(filled: usize, active: usize) -> bool {
    filled >= SPLIT_AFTER_CHUNKS && active < MAX_KEY_RANGES
}

/// Whether `ranges` (sorted) tile the whole key space without gaps or overlaps.
pub fn tiles(ranges: &[Range]) -> bool {
    if ranges.is_empty() || ranges[0].lo.is_some() || ranges[ranges.len() - 1].hi.is_some() {
        return false;
    }
    ranges
        .windows(2)
        .all(|w| w[0].hi.is_some() && w[0].hi == w[1].lo)
}

/// Replaces range `id` by its two halves at `at` (ids `left`, `right`).
pub fn apply_split(ranges: &mut Vec<Range>, id: i32, at: Key, left: i32, right: i32) -> bool {
    let Some(i) = ranges.iter().position(|r| r.id == id) else {
        return false;
    };
    let r = ranges[i].clone();
    if !contains(r.lo.as_ref(), r.hi.as_ref(), &at) || r.lo.as_ref() == Some(&at) {
        return false;
    }
    ranges[i] = Range {
        id: left,
        lo: r.lo,
        hi: Some(at.clone()),
    };
    ranges.insert(
        i + 1,
        Range {
            id: right,
            lo: Some(at),
            hi: r.hi,
        },
    );
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_range_splits_once_it_fills_two_chunks_of_a_partition_up_to_64_ranges() {
        assert!(!split_due(0, 1));
        assert!(!split_due(1, 1));
        assert!(split_due(2, 1));
        assert!(split_due(5, 63));
        assert!(!split_due(5, MAX_KEY_RANGES));
        assert!(!split_due(5, MAX_KEY_RANGES + 1));
    }

    use super::*;
    use proptest::prelude::*;

    fn ints(v: &[i64]) -> Vec<Key> {
        v.iter().map(|&x| Key::Int(x)).collect()
    }

    #[test]
    fn split_point_is_the_median_and_never_empties_a_half() {
        assert_eq!(split_point(&mut ints(&[5, 1, 9, 3, 7])), Some(Key::Int(5)));
        // The median equals the smallest key: split just above it.
        assert_eq!(
            split_point(&mut ints(&[1, 1, 1, 1, 1, 2, 3])),
            Some(Key::Int(2))
        );
        assert_eq!(split_point(&mut ints(&[4, 4, 4])), None);
        assert_eq!(split_point(&mut ints(&[4])), None);
        assert_eq!(split_point(&mut []), None);
        let mut t = vec![Key::Text(b"b".to_vec()), Key::Text(b"a".to_vec())];
        assert_eq!(split_point(&mut t), Some(Key::Text(b"b".to_vec())));
    }

    #[test]
    fn text_bounds_round_trip_and_compare_bytewise() {
        let k = Key::Text("Zürich".as_bytes().to_vec());
        assert_eq!(Key::parse(KeyKind::Text, &k.to_text().unwrap()), Some(k));
        assert!(Key::Text(b"B".to_vec()) < Key::Text(b"a".to_vec()));
        assert_eq!(Key::parse(KeyKind::Int, "-42"), Some(Key::Int(-42)));
        assert_eq!(Key::parse(KeyKind::Int, "x"), None);
    }

    #[test]
    fn routing_follows_splits() {
        let mut r = vec![whole()];
        assert!(apply_split(&mut r, 0, Key::Int(100), 1, 2));
        assert!(apply_split(&mut r, 2, Key::Int(500), 3, 4));
        assert!(!apply_split(&mut r, 1, Key::Int(100), 5, 6)); // bound of the range
        assert!(!apply_split(&mut r, 1, Key::Int(200), 5, 6)); // outside it
        assert!(tiles(&r));
        assert_eq!(route(&r, &Key::Int(i64::MIN)).unwrap().id, 1);
        assert_eq!(route(&r, &Key::Int(99)).unwrap().id, 1);
        assert_eq!(route(&r, &Key::Int(100)).unwrap().id, 3);
        assert_eq!(route(&r, &Key::Int(499)).unwrap().id, 3);
        assert_eq!(route(&r, &Key::Int(500)).unwrap().id, 4);
        assert_eq!(route(&r, &Key::Int(i64::MAX)).unwrap().id, 4);
    }

    /// Zipf-like ranks: key k drawn with weight 1/k.
    fn zipf(n: usize, keys: u64, seed: u64) -> Vec<i64> {
        let h: f64 = (1..=keys).map(|k| 1.0 / k as f64).sum();
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64 * h;
                let mut acc = 0.0;
                for k in 1..=keys {
                    acc += 1.0 / k as f64;
                    if acc >= u {
                        return k as i64;
                    }
                }
                keys as i64
            })
            .collect()
    }

    #[test]
    fn median_splits_balance_zipf_keys() {
        // Split the fullest splittable range until there are 8, as ingest would.
        let data = zipf(20_000, 1000, 7);
        let mut ranges = vec![whole()];
        let mut next = 1;
        while ranges.len() < 8 {
            let counts: Vec<(i32, usize, usize)> = ranges
                .iter()
                .map(|r| {
                    let inr: Vec<&i64> = data
                        .iter()
                        .filter(|&&k| contains(r.lo.as_ref(), r.hi.as_ref(), &Key::Int(k)))
                        .collect();
                    let mut d: Vec<&&i64> = inr.iter().collect();
                    d.sort();
                    d.dedup();
                    (r.id, inr.len(), d.len())
                })
                .collect();
            let &(id, _, _) = counts
                .iter()
                .filter(|c| c.2 > 1)
                .max_by_key(|c| c.1)
                .unwrap();
            let r = ranges.iter().find(|r| r.id == id).unwrap().clone();
            let mut sample: Vec<Key> = data
                .iter()
                .map(|&k| Key::Int(k))
                .filter(|k| contains(r.lo.as_ref(), r.hi.as_ref(), k))
                .collect();
            let at = split_point(&mut sample).unwrap();
            assert!(apply_split(&mut ranges, id, at, next, next + 1));
            next += 2;
        }
        assert!(tiles(&ranges));
        // Midpoint splits of the domain [1, 1000] would leave ~75% of the rows in the
        // lowest range; median splits leave no multi-key range above a quarter.
        for r in &ranges {
            let inr: Vec<i64> = data
                .iter()
                .copied()
                .filter(|&k| contains(r.lo.as_ref(), r.hi.as_ref(), &Key::Int(k)))
                .collect();
            let mut d = inr.clone();
            d.sort();
            d.dedup();
            if d.len() > 1 {
                assert!(
                    inr.len() < data.len() / 4,
                    "range {r:?} holds {}",
                    inr.len()
                );
            }
        }
    }

    proptest! {
        #[test]
        fn random_splits_keep_a_tiling_and_route_every_key(
            splits in proptest::collection::vec(any::<i64>(), 0..40),
            probes in proptest::collection::vec(any::<i64>(), 1..50),
        ) {
            let mut ranges = vec![whole()];
            let mut next = 1;
            for s in splits {
                let k = Key::Int(s);
                let id = route(&ranges, &k).unwrap().id;
                if apply_split(&mut ranges, id, k, next, next + 1) {
                    next += 2;
                }
                sort(&mut ranges);
                prop_assert!(tiles(&ranges));
            }
            for p in probes {
                let k = Key::Int(p);
                let hits: Vec<&Range> = ranges
                    .iter()
                    .filter(|r| contains(r.lo.as_ref(), r.hi.as_ref(), &k))
                    .collect();
                prop_assert_eq!(hits.len(), 1);
                prop_assert_eq!(route(&ranges, &k).unwrap().id, hits[0].id);
            }
        }

        #[test]
        fn split_point_leaves_keys_on_both_sides(v in proptest::collection::vec(-5i64..5, 0..30)) {
            let mut s = ints(&v);
            let distinct = { let mut d = v.clone(); d.sort(); d.dedup(); d.len() };
            match split_point(&mut s) {
                None => prop_assert!(distinct < 2),
                Some(Key::Int(m)) => {
                    prop_assert!(v.iter().any(|&x| x < m));
                    prop_assert!(v.iter().any(|&x| x >= m));
                }
                Some(_) => prop_assert!(false),
            }
        }
    }
}

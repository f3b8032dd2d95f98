//! Pruning (pure Rust, unit-tested): the time bounds a query's conditions put on the
//! rows it wants, and the chunks that can hold such rows. BidimScan
//! ([`super::custom_scan`]) plans and runs with these rules.

use super::directory::ChunkRow;
use super::keyrange::{Key, KeyKind};

/// B-tree strategy numbers, as PostgreSQL numbers them.
pub const LT: i32 = 1;
pub const LE: i32 = 2;
pub const EQ: i32 = 3;
pub const GE: i32 = 4;
pub const GT: i32 = 5;

/// The time bounds [lo, hi) that restrictions (strategy, value) put on matching rows,
/// or `None` when no row can match.
pub fn bounds(conds: &[(i32, Option<i64>)]) -> Option<(i64, i64)> {
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    for &(strategy, v) in conds {
        // A NULL comparison is never true.
        let v = v?;
        match strategy {
            LT => hi = hi.min(v),
            LE => hi = hi.min(v.saturating_add(1)),
            EQ => {
                lo = lo.max(v);
                hi = hi.min(v.saturating_add(1));
            }
            GE => lo = lo.max(v),
            GT => lo = lo.max(v.saturating_add(1)),
            _ => {}
        }
    }
    (lo < hi).then_some((lo, hi))
}

/// Whether a chunk of partition [`time_lo`, `time_hi`) can hold a row in [lo, hi).
pub fn overlaps(time_lo: i64, time_hi: i64, lo: i64, hi: i64) -> bool {
    time_lo < hi && time_hi > lo
}

/// The chunks a query reads: those whose time partition overlaps its time bounds
/// (`None`: no row can match) and whose key range may hold every key it names
/// (`keys`: the values of `key = ...` conditions, all of which must hold) and a key of
/// each key set (`sets`: `key = ANY (...)`, `key IN (...)`).
pub fn chunks_to_read<'a>(
    chunks: &'a [ChunkRow],
    time: Option<(i64, i64)>,
    kind: KeyKind,
    keys: &[Key],
    sets: &[Vec<Key>],
) -> Vec<&'a ChunkRow> {
    let Some(time) = time else {
        return Vec::new();
    };
    chunks
        .iter()
        .filter(|c| reads(c, time, kind, keys, sets))
        .collect()
}

/// Whether [`chunks_to_read`] keeps chunk `c` for times in [lo, hi).
pub fn reads(
    c: &ChunkRow,
    (lo, hi): (i64, i64),
    kind: KeyKind,
    keys: &[Key],
    sets: &[Vec<Key>],
) -> bool {
    let (from, to) = c.time_span();
    overlaps(from, to, lo, hi)
        && keys.iter().all(|k| c.may_hold(kind, k))
        && sets
            .iter()
            .all(|set| set.iter().any(|k| c.may_hold(kind, k)))
}

/// The keys for which [`reads`] (one key, no set) keeps exactly the chunks of `all` it
/// keeps for `k`, over times [lo, hi): an interval [from, to) holding `k` (`None`:
/// unbounded). A rescan whose new key lies in it reads the same chunks, checked in
/// constant time however many chunks the directory lists. Each chunk that overlaps the
/// times narrows it: to the chunk's key range if that holds `k`, else to the side of
/// the range `k` lies on.
pub fn same_reads(
    all: &[ChunkRow],
    time: (i64, i64),
    kind: KeyKind,
    k: &Key,
) -> (Option<Key>, Option<Key>) {
    fn raise<'a>(b: &mut Option<&'a Key>, v: &'a Key) {
        if b.is_none_or(|x| x < v) {
            *b = Some(v)
        }
    }
    fn lower<'a>(b: &mut Option<&'a Key>, v: &'a Key) {
        if b.is_none_or(|x| v < x) {
            *b = Some(v)
        }
    }
    let mut from: Option<&Key> = None;
    let mut to: Option<&Key> = None;
    for c in all {
        let (cfrom, cto) = c.time_span();
        if !overlaps(cfrom, cto, time.0, time.1) {
            continue;
        }
        let (lo, hi) = c.key_bounds(kind);
        if super::keyrange::contains(lo, hi, k) {
            if let Some(lo) = lo {
                raise(&mut from, lo);
            }
            if let Some(hi) = hi {
                lower(&mut to, hi);
            }
        } else if let Some(hi) = hi.filter(|h| *h <= k) {
            raise(&mut from, hi);
        } else if let Some(lo) = lo.filter(|l| *l > k) {
            lower(&mut to, lo);
        }
    }
    (from.cloned(), to.cloned())
}

/// The share of the table's blocks a scan reads when it reads the `kept` chunks of
/// `all` for times in [lo, hi): each chunk weighs its size in blocks when measured
/// (else the mean of the measured ones), and a chunk with a block-range time map
/// counts only the blocks whose ranges overlap the window. 1.0 when nothing is
/// skipped.
pub fn read_share(all: &[ChunkRow], kept: &[&ChunkRow], time: (i64, i64)) -> f64 {
    read_share_weighed(weights(all), kept, time)
}

/// What [`read_share`] weighs chunks by: the blocks an unmeasured chunk weighs (the
/// mean of the measured ones) and the weight of all of `all`.
pub fn weights(all: &[ChunkRow]) -> (f64, f64) {
    let measured: Vec<f64> = all
        .iter()
        .filter_map(|c| c.pages)
        .map(|p| p as f64)
        .collect();
    let mean = if measured.is_empty() {
        1.0
    } else {
        (measured.iter().sum::<f64>() / measured.len() as f64).max(1.0)
    };
    let total = all.iter().map(|c| weight(c, mean)).sum();
    (mean, total)
}

fn weight(c: &ChunkRow, mean: f64) -> f64 {
    c.pages.map_or(mean, |p| (p as f64).max(1.0))
}

/// [`read_share`] with the table's [`weights`] worked out before.
pub fn read_share_weighed(
    (mean, total): (f64, f64),
    kept: &[&ChunkRow],
    (lo, hi): (i64, i64),
) -> f64 {
    let read: f64 = kept
        .iter()
        .map(|c| match &c.block_map {
            Some(m) if m.blocks() > 0 => {
                weight(c, mean) * f64::from(m.blocks_for(lo, hi)) / f64::from(m.blocks())
            }
            _ => weight(c, mean),
        })
        .sum();
    if total <= 0.0 {
        1.0
    } else {
        (read / total).min(1.0)
    }
}

/// A batch column's bound or a condition's value, compared in the column type's b-tree
/// order: integers (and dates, times, timestamps) as i64, floats as f64 with NaN above
/// every other value and -0 equal to 0 (PostgreSQL's float order).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub enum Bound {
    Int(i64),
    Float(f64),
}

impl Bound {
    /// The order of two bounds of one column; `None` for a mismatch of kinds.
    pub fn order(self, other: Bound) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering::*;
        match (self, other) {
            (Bound::Int(a), Bound::Int(b)) => Some(a.cmp(&b)),
            (Bound::Float(a), Bound::Float(b)) => Some(match (a.is_nan(), b.is_nan()) {
                (true, true) => Equal,
                (true, false) => Greater,
                (false, true) => Less,
                _ => a.partial_cmp(&b).unwrap_or(Equal),
            }),
            _ => None,
        }
    }

    /// The smaller and the larger of two bounds of one column.
    pub fn least(self, other: Bound) -> Bound {
        if self.order(other) == Some(std::cmp::Ordering::Greater) {
            other
        } else {
            self
        }
    }

    pub fn greatest(self, other: Bound) -> Bound {
        if self.order(other) == Some(std::cmp::Ordering::Less) {
            other
        } else {
            self
        }
    }
}

/// A condition `column <strategy> value` on a column batches keep bounds of.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct ColumnCond {
    pub attnum: i16,
    pub strategy: i32,
    pub value: Bound,
}

/// Whether a batch whose non-NULL values of a column lie in [min, max] (`None`: all
/// NULL) may hold a value for which `column <strategy> value` is true.
pub fn batch_may_match(bounds: Option<(Bound, Bound)>, strategy: i32, value: Bound) -> bool {
    use std::cmp::Ordering::*;
    // A comparison with NULL is never true.
    let Some((min, max)) = bounds else {
        return false;
    };
    let (lo, hi) = (min.order(value), max.order(value));
    if lo.is_none() || hi.is_none() {
        return true;
    }
    match strategy {
        LT => lo == Some(Less),
        LE => lo != Some(Greater),
        EQ => lo != Some(Greater) && hi != Some(Less),
        GE => hi != Some(Less),
        GT => hi == Some(Greater),
        _ => true,
    }
}

/// Whether a non-NULL value `v` of a column may pass `column <strategy> value`: false
/// only when it surely fails (values of different kinds are not compared).
pub fn value_may_match(v: Bound, strategy: i32, value: Bound) -> bool {
    use std::cmp::Ordering::*;
    let Some(o) = v.order(value) else {
        return true;
    };
    match strategy {
        LT => o == Less,
        LE => o != Greater,
        EQ => o == Equal,
        GE => o != Less,
        GT => o == Greater,
        _ => true,
    }
}

/// The order a time-ordered read takes chunks in, and its units: chunks with
/// partitions `parts` [lo, hi) (ties broken by `ids`) in time order (`descending`:
/// newest first), grouped so that partitions that overlap, directly or through
/// others, share a unit. Every row of a unit then comes before every row of the next
/// in the read's direction, whatever the partition widths were when each chunk was
/// made (`configure` can change them). Returns the chunk indices in read order and
/// the position where each unit starts.
pub fn ordered_units(
    parts: &[(i64, i64)],
    ids: &[u32],
    descending: bool,
) -> (Vec<usize>, Vec<i32>) {
    let mut idx: Vec<usize> = (0..parts.len()).collect();
    idx.sort_by_key(|&i| (parts[i].0, ids[i]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut end = i64::MIN;
    for i in idx {
        let (lo, hi) = parts[i];
        match groups.last_mut() {
            Some(g) if lo < end => g.push(i),
            _ => groups.push(vec![i]),
        }
        end = end.max(hi);
    }
    if descending {
        groups.reverse();
        for g in &mut groups {
            g.reverse();
        }
    }
    let mut order = Vec::with_capacity(parts.len());
    let mut starts = Vec::with_capacity(groups.len());
    for g in groups {
        starts.push(order.len() as i32);
        order.extend(g);
    }
    (order, starts)
}

/// A directory this long makes a newest-first read without a lower time bound read
/// the newest partition first ([`split_point`]).
pub const SPLIT_ABOVE_ROWS: usize = 64;

/// Where a newest-first read (`order` < 0) of times in `range` splits, over a
/// directory of `rows` rows whose newest partition starts at `newest`: at that start,
/// when the read has no lower bound, the directory is long and the split lies inside
/// the range. The part from the split on is read first, the rest only if needed.
pub fn split_point(order: i32, range: (i64, i64), rows: usize, newest: i64) -> Option<i64> {
    (order < 0
        && range.0 == i64::MIN
        && rows > SPLIT_ABOVE_ROWS
        && newest > i64::MIN
        && newest < range.1)
        .then_some(newest)
}

/// Tail probes: where an ordered read of one key splits its read of a chunk whose
/// measured time span is `span` [lo, hi), within the scan's own time range `range`
/// [ge, lt): the slice of the span's newest (`newest_first`; else oldest) 1/2^`shift`
/// is read first, then the rest. `None`: no split (a span too short to slice, or a
/// range that already lies within the slice's side).
pub fn tail_split(
    span: (i64, i64),
    shift: u8,
    newest_first: bool,
    range: (i64, i64),
) -> Option<i64> {
    let (lo, hi) = span;
    let slice = hi.saturating_sub(lo) >> shift;
    if slice <= 0 {
        return None;
    }
    let split = if newest_first { hi - slice } else { lo + slice };
    (split > range.0 && split < range.1).then_some(split)
}

/// The slice shift tail probes start with: 1/1024 of a chunk's span.
pub const TAIL_SHIFT: u8 = 10;

/// The slice shift after a probe whose slice held no row: the slice doubles, up to a
/// quarter of the span.
pub fn tail_widened(shift: u8) -> u8 {
    shift.saturating_sub(1).max(2)
}

/// Whether tail probes still pay after `probes` of them, `misses` of which found no
/// row in their slice (each miss costs a second descent): past 32 probes, not when
/// more than one in four missed.
pub fn tails_pay(probes: i32, misses: i32) -> bool {
    probes < 32 || misses * 4 <= probes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_conditions_as_float8_and_int8_compare() {
        let f = Bound::Float;
        assert!(value_may_match(f(91.0), GT, f(90.0)));
        assert!(!value_may_match(f(90.0), GT, f(90.0)));
        assert!(value_may_match(f(90.0), GE, f(90.0)));
        assert!(!value_may_match(f(-0.0), LT, f(0.0)));
        assert!(value_may_match(f(-0.0), EQ, f(0.0)));
        // NaN sorts above every number and equals itself, as in float8's btree order
        assert!(value_may_match(f(f64::NAN), GT, f(f64::INFINITY)));
        assert!(value_may_match(f(f64::NAN), EQ, f(f64::NAN)));
        assert!(!value_may_match(f(f64::NAN), LT, f(1e300)));
        assert!(!value_may_match(f(1.0), GE, f(f64::NAN)));
        assert!(value_may_match(Bound::Int(i64::MIN), LE, Bound::Int(-5)));
        assert!(!value_may_match(Bound::Int(7), EQ, Bound::Int(8)));
        // kinds that do not compare are kept
        assert!(value_may_match(Bound::Int(1), GT, f(5.0)));
        // every strategy agrees with the batch test on a one-value batch
        for v in [-3i64, 0, 4, 9] {
            for w in [-3i64, 4, 10] {
                for st in [LT, LE, EQ, GE, GT] {
                    let (a, b) = (Bound::Int(v), Bound::Int(w));
                    assert_eq!(
                        value_may_match(a, st, b),
                        batch_may_match(Some((a, a)), st, b)
                    );
                }
            }
        }
    }

    #[test]
    fn bounds_combine_and_detect_empty_ranges() {
        assert_eq!(bounds(&[]), Some((i64::MIN, i64::MAX)));
        assert_eq!(bounds(&[(GE, Some(10)), (LT, Some(20))]), Some((10, 20)));
        assert_eq!(bounds(&[(GT, Some(10)), (LE, Some(20))]), Some((11, 21)));
        assert_eq!(bounds(&[(EQ, Some(15))]), Some((15, 16)));
        assert_eq!(bounds(&[(GE, Some(20)), (LT, Some(20))]), None);
        assert_eq!(bounds(&[(EQ, Some(5)), (GT, Some(5))]), None);
        assert_eq!(bounds(&[(GE, None)]), None, "a NULL bound matches nothing");
        assert_eq!(bounds(&[(GT, Some(i64::MAX))]), None);
        assert_eq!(bounds(&[(LE, Some(i64::MAX))]), Some((i64::MIN, i64::MAX)));
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(overlaps(0, 10, 9, 20));
        assert!(!overlaps(0, 10, 10, 20));
        assert!(!overlaps(10, 20, 0, 10));
        assert!(overlaps(10, 20, 0, 11));
    }

    /// Brute force: a row at time t matches every condition iff it lies in bounds().
    #[test]
    fn bounds_agree_with_brute_force() {
        let mut seed = 12345u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let n = next() % 4;
            let conds: Vec<(i32, Option<i64>)> = (0..n)
                .map(|_| ((next() % 5) as i32 + 1, Some((next() % 40) as i64 - 20)))
                .collect();
            let b = bounds(&conds);
            for t in -25..25i64 {
                let matches = conds.iter().all(|&(s, v)| {
                    let v = v.unwrap();
                    match s {
                        LT => t < v,
                        LE => t <= v,
                        EQ => t == v,
                        GE => t >= v,
                        _ => t > v,
                    }
                });
                let inside = b.is_some_and(|(lo, hi)| lo <= t && t < hi);
                assert_eq!(matches, inside, "t={t} conds={conds:?} bounds={b:?}");
            }
        }
    }

    #[test]
    fn keys_in_the_same_reads_interval_read_the_same_chunks() {
        let chunk = |id: u32, time_lo: i64, lo: Option<i64>, hi: Option<i64>| ChunkRow {
            key_lo: lo.map(|v| v.to_string()),
            key_hi: hi.map(|v| v.to_string()),
            ..ChunkRow::for_test(id, time_lo, time_lo + 10)
        };
        // ranges split over time: unbounded, then at 100, then at 50 and 200
        let chunks = vec![
            chunk(1, 0, None, None),
            chunk(2, 10, None, Some(100)),
            chunk(3, 10, Some(100), None),
            chunk(4, 20, None, Some(50)),
            chunk(5, 20, Some(50), Some(100)),
            chunk(6, 20, Some(100), Some(200)),
            chunk(7, 20, Some(200), None),
            chunk(8, 30, Some(40), Some(60)),
        ];
        let kept = |time: (i64, i64), k: i64| -> Vec<u32> {
            chunks
                .iter()
                .filter(|c| reads(c, time, KeyKind::Int, &[Key::Int(k)], &[]))
                .map(|c| c.chunk_id)
                .collect()
        };
        let times = [(i64::MIN, i64::MAX), (0, 10), (10, 30), (25, 40), (40, 50)];
        for time in times {
            for k in -5..260 {
                let (from, to) = same_reads(&chunks, time, KeyKind::Int, &Key::Int(k));
                let inside = |j: i64| {
                    crate::tam::keyrange::contains(from.as_ref(), to.as_ref(), &Key::Int(j))
                };
                assert!(inside(k), "{k} lies in its own interval");
                for j in -5..260 {
                    if inside(j) {
                        assert_eq!(kept(time, j), kept(time, k), "{time:?}: {j} against {k}");
                    }
                }
            }
        }
        // the interval is as wide as the chunks allow
        let (from, to) = same_reads(&chunks, (i64::MIN, i64::MAX), KeyKind::Int, &Key::Int(120));
        assert_eq!((from, to), (Some(Key::Int(100)), Some(Key::Int(200))));
        let (from, to) = same_reads(&chunks, (0, 10), KeyKind::Int, &Key::Int(120));
        assert_eq!((from, to), (None, None));
        let (from, to) = same_reads(&chunks, (30, 40), KeyKind::Int, &Key::Int(70));
        assert_eq!((from, to), (Some(Key::Int(60)), None));
    }

    #[test]
    fn chunks_are_kept_by_time_overlap_and_key_range() {
        let chunk = |id: u32, time_lo: i64, lo: Option<&str>, hi: Option<&str>| ChunkRow {
            key_lo: lo.map(str::to_string),
            key_hi: hi.map(str::to_string),
            ..ChunkRow::for_test(id, time_lo, time_lo + 10)
        };
        let chunks = vec![
            chunk(1, 0, None, Some("100")),
            chunk(2, 0, Some("100"), None),
            chunk(3, 10, None, None),
            chunk(4, 20, None, Some("100")),
        ];
        let read = |time: Option<(i64, i64)>, keys: &[i64], sets: &[&[i64]]| {
            let keys: Vec<Key> = keys.iter().map(|&k| Key::Int(k)).collect();
            let sets: Vec<Vec<Key>> = sets
                .iter()
                .map(|s| s.iter().map(|&k| Key::Int(k)).collect())
                .collect();
            chunks_to_read(&chunks, time, KeyKind::Int, &keys, &sets)
                .iter()
                .map(|c| c.chunk_id)
                .collect::<Vec<u32>>()
        };
        let all = Some((i64::MIN, i64::MAX));
        assert_eq!(read(all, &[], &[]), vec![1, 2, 3, 4]);
        assert_eq!(read(None, &[], &[]), Vec::<u32>::new());
        assert_eq!(read(Some((5, 15)), &[], &[]), vec![1, 2, 3]);
        assert_eq!(read(Some((5, 25)), &[150], &[]), vec![2, 3]);
        assert_eq!(read(Some((0, 30)), &[99], &[]), vec![1, 3, 4]);
        // two different keys ANDed: only chunks that may hold both
        assert_eq!(read(Some((0, 30)), &[1, 200], &[]), vec![3]);
        // a key set: chunks that may hold any of its keys; an empty set: none
        assert_eq!(read(Some((0, 30)), &[], &[&[1, 200]]), vec![1, 2, 3, 4]);
        assert_eq!(read(Some((0, 30)), &[], &[&[200, 300]]), vec![2, 3]);
        assert_eq!(read(Some((0, 30)), &[], &[&[]]), Vec::<u32>::new());
        // a key and a set ANDed
        assert_eq!(read(Some((0, 30)), &[5], &[&[200]]), vec![3]);
        // measured bounds narrow a chunk's span: [10, 20) holding rows at 12..=13 only
        let mut measured = chunks.clone();
        measured[2].min_time = Some(12);
        measured[2].max_time = Some(13);
        let ids = |v: Vec<&ChunkRow>| v.iter().map(|c| c.chunk_id).collect::<Vec<u32>>();
        assert_eq!(
            ids(chunks_to_read(
                &measured,
                Some((14, 20)),
                KeyKind::Int,
                &[],
                &[]
            )),
            Vec::<u32>::new()
        );
        assert_eq!(
            ids(chunks_to_read(
                &measured,
                Some((13, 20)),
                KeyKind::Int,
                &[],
                &[]
            )),
            vec![3]
        );
        assert_eq!(
            ids(chunks_to_read(
                &measured,
                Some((0, 12)),
                KeyKind::Int,
                &[],
                &[]
            )),
            vec![1, 2]
        );
    }
    #[test]
    fn batch_bounds_skip_only_batches_that_cannot_match() {
        let b = |lo: i64, hi: i64| Some((Bound::Int(lo), Bound::Int(hi)));
        let v = Bound::Int(10);
        assert!(!batch_may_match(b(11, 20), LT, v));
        assert!(batch_may_match(b(9, 20), LT, v));
        assert!(!batch_may_match(b(11, 20), LE, v));
        assert!(batch_may_match(b(10, 20), LE, v));
        assert!(batch_may_match(b(10, 10), EQ, v));
        assert!(!batch_may_match(b(0, 9), EQ, v));
        assert!(!batch_may_match(b(11, 12), EQ, v));
        assert!(!batch_may_match(b(0, 9), GE, v));
        assert!(batch_may_match(b(0, 10), GE, v));
        assert!(!batch_may_match(b(0, 10), GT, v));
        assert!(batch_may_match(b(0, 11), GT, v));
        // all NULL: nothing compares true
        assert!(!batch_may_match(None, GT, v));
        // kinds that do not match: keep the batch
        assert!(batch_may_match(
            Some((Bound::Float(0.0), Bound::Float(1.0))),
            GT,
            v
        ));
    }

    #[test]
    fn float_bounds_follow_postgres_order() {
        let f = Bound::Float;
        let nan = f(f64::NAN);
        // NaN sorts above everything: `x > 1e300` holds for NaN
        assert!(batch_may_match(Some((f(0.0), nan)), GT, f(1e300)));
        assert!(!batch_may_match(Some((f(0.0), f(f64::INFINITY))), GT, nan));
        assert!(batch_may_match(Some((nan, nan)), EQ, nan));
        // -0 equals 0
        assert!(batch_may_match(Some((f(-0.0), f(-0.0))), EQ, f(0.0)));
        assert!(!batch_may_match(Some((f(-0.0), f(0.0))), GT, f(0.0)));
        assert_eq!(f(1.0).least(nan), f(1.0));
        assert_eq!(
            f(1.0).greatest(nan).order(nan),
            Some(std::cmp::Ordering::Equal)
        );
        assert_eq!(f(f64::NEG_INFINITY).least(f(-1.0)), f(f64::NEG_INFINITY));
    }

    proptest::proptest! {
        #[test]
        fn batch_bounds_never_skip_a_matching_batch(
            vals in proptest::collection::vec(proptest::prop_oneof![
                proptest::num::f64::ANY, proptest::strategy::Just(f64::NAN),
                proptest::strategy::Just(-0.0), proptest::strategy::Just(0.0)], 1..20),
            v in proptest::num::f64::ANY, strategy in 1i32..=5)
        {
            let bs: Vec<Bound> = vals.iter().map(|&x| Bound::Float(x)).collect();
            let min = bs.iter().copied().reduce(Bound::least).unwrap();
            let max = bs.iter().copied().reduce(Bound::greatest).unwrap();
            let value = Bound::Float(v);
            let any = bs.iter().any(|b| {
                let o = b.order(value).unwrap();
                match strategy {
                    LT => o.is_lt(),
                    LE => o.is_le(),
                    EQ => o.is_eq(),
                    GE => o.is_ge(),
                    _ => o.is_gt(),
                }
            });
            if any {
                proptest::prop_assert!(batch_may_match(Some((min, max)), strategy, value));
            }
        }
    }

    #[test]
    fn read_share_weighs_chunks_by_blocks_and_maps() {
        use crate::tam::block_map::BlockMap;
        use crate::tam::directory::ChunkState;
        let chunk = |id: u32, pages: Option<i64>, map: Option<BlockMap>| ChunkRow {
            state: ChunkState::Sealed,
            pages,
            block_map: map,
            ..ChunkRow::for_test(id, 0, 1000)
        };
        // 800 blocks, block b holding time b
        let mut map = BlockMap::new(800);
        for b in 0..800 {
            map.note(b, i64::from(b));
        }
        let all = vec![
            chunk(1, Some(800), Some(map)),
            chunk(2, Some(200), None),
            chunk(3, None, None), // a hot chunk: the mean of the measured ones, 500
        ];
        let refs: Vec<&ChunkRow> = all.iter().collect();
        let everything = read_share(&all, &refs, (i64::MIN, i64::MAX));
        assert!((everything - 1.0).abs() < 1e-9);
        // the first chunk's window is 100 of its 800 blocks (ranges of 13 blocks: 104)
        let share = read_share(&all, &refs[..1], (0, 100));
        assert!((share - 104.0 / 1500.0).abs() < 1e-9, "{share}");
        let share = read_share(&all, &refs[1..2], (0, 100));
        assert!((share - 200.0 / 1500.0).abs() < 1e-9, "{share}");
        let share = read_share(&all, &refs[2..], (0, 100));
        assert!((share - 500.0 / 1500.0).abs() < 1e-9, "{share}");
        // nothing measured: every chunk weighs the same
        let hot = vec![chunk(1, None, None), chunk(2, None, None)];
        let share = read_share(&hot, &[&hot[0]], (0, 1));
        assert!((share - 0.5).abs() < 1e-9, "{share}");
    }

    #[test]
    fn tail_slices_sit_at_the_read_end_of_the_span_inside_the_range() {
        let all = (i64::MIN, i64::MAX);
        // newest 1/1024 of [0, 1024000): from 1023000 on; oldest: before 1000
        assert_eq!(tail_split((0, 1_024_000), 10, true, all), Some(1_023_000));
        assert_eq!(tail_split((0, 1_024_000), 10, false, all), Some(1000));
        // a span too short to slice
        assert_eq!(tail_split((5, 900), 10, true, all), None);
        assert_eq!(tail_split((5, 5), 2, true, all), None);
        // a range that ends before the newest slice, or starts within it: no split
        assert_eq!(tail_split((0, 1_024_000), 10, true, (0, 1_023_000)), None);
        assert_eq!(
            tail_split((0, 1_024_000), 10, true, (1_023_500, i64::MAX)),
            None
        );
        assert_eq!(
            tail_split((0, 1_024_000), 10, true, (1_022_000, 1_023_500)),
            Some(1_023_000)
        );
        assert_eq!(
            tail_split((0, 1_024_000), 10, false, (1000, i64::MAX)),
            None
        );
        assert_eq!(tail_split((0, 1_024_000), 10, false, (0, 1001)), Some(1000));
    }

    #[test]
    fn tail_slices_widen_on_misses_and_stop_when_they_do_not_pay() {
        let mut shift = TAIL_SHIFT;
        for _ in 0..20 {
            shift = tail_widened(shift);
        }
        assert_eq!(shift, 2);
        assert_eq!(tail_widened(TAIL_SHIFT), TAIL_SHIFT - 1);
        assert!(tails_pay(31, 31));
        assert!(tails_pay(32, 8));
        assert!(!tails_pay(32, 9));
        assert!(tails_pay(1000, 250));
        assert!(!tails_pay(1000, 251));
    }

    #[test]
    fn newest_first_reads_split_at_the_newest_partition_when_unbounded_below() {
        let all = (i64::MIN, i64::MAX);
        assert_eq!(split_point(-1, all, 65, 1000), Some(1000));
        // oldest first, a lower bound, a short directory, no rows: no split
        assert_eq!(split_point(1, all, 65, 1000), None);
        assert_eq!(split_point(-1, (0, i64::MAX), 65, 1000), None);
        assert_eq!(split_point(-1, all, SPLIT_ABOVE_ROWS, 1000), None);
        assert_eq!(split_point(-1, all, 65, i64::MIN), None);
        // an upper bound at or before the newest partition: nothing from there on
        assert_eq!(split_point(-1, (i64::MIN, 1000), 65, 1000), None);
        assert_eq!(split_point(-1, (i64::MIN, 1001), 65, 1000), Some(1000));
    }

    #[test]
    fn ordered_units_group_overlapping_partitions() {
        // one partition each: a unit each, in time order
        let days = [(0, 10), (20, 30), (10, 20)];
        assert_eq!(
            ordered_units(&days, &[1, 2, 3], false),
            (vec![0, 2, 1], vec![0, 1, 2])
        );
        assert_eq!(
            ordered_units(&days, &[1, 2, 3], true),
            (vec![1, 2, 0], vec![0, 1, 2])
        );
        // chunks of one partition share a unit (ties by id)
        let same = [(0, 10), (0, 10), (10, 20)];
        assert_eq!(
            ordered_units(&same, &[5, 4, 6], false),
            (vec![1, 0, 2], vec![0, 2])
        );
        assert_eq!(
            ordered_units(&same, &[5, 4, 6], true),
            (vec![2, 0, 1], vec![0, 1])
        );
        // a day partition and hour partitions inside it (the width narrowed), and one
        // hour partition straddling the previous day's end through the day's start
        let mixed = [(0, 24), (5, 6), (6, 7), (-24, 0), (-1, 0), (24, 48)];
        let (order, starts) = ordered_units(&mixed, &[1, 2, 3, 4, 5, 6], true);
        assert_eq!(order, vec![5, 2, 1, 0, 4, 3]);
        assert_eq!(starts, vec![0, 1, 4]);
        // every row of a unit comes before every row of the next, newest first
        for u in 0..starts.len() {
            let (from, to) = (
                starts[u] as usize,
                starts.get(u + 1).map_or(order.len(), |&x| x as usize),
            );
            let lo = order[from..to].iter().map(|&i| mixed[i].0).min().unwrap();
            for &j in &order[to..] {
                assert!(mixed[j].1 <= lo, "unit {u}");
            }
        }
        assert_eq!(ordered_units(&[], &[], true), (vec![], vec![]));
    }
}

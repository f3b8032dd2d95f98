//! Rollups' rules over times and buckets (pure Rust, unit-tested): which bucket a time
//! falls in, which buckets a write changes, how changed buckets group into ranges to
//! materialize again, how a refresh slices its range, and a rollup's default name.
//!
//! Times are PostgreSQL's microseconds; a bucket is `[origin + n * width, + width)`,
//! as `date_bin(width, time, origin)` puts it.

/// The start of the bucket holding `t`.
pub fn bucket_of(t: i64, width: i64, origin: i64) -> i64 {
    let off = (t as i128 - origin as i128).div_euclid(width as i128);
    (origin as i128 + off * width as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Most buckets one change logs (a chunk spans one partition: a day of one-second
/// buckets is 86,400).
pub const MAX_LOGGED_BUCKETS: i64 = 1_000_000;

/// The buckets a change to rows anywhere in `[lo, hi]` (inclusive) may have changed,
/// among those before `threshold` (writes at or after it are read raw anyway); `None`
/// when they are more than [`MAX_LOGGED_BUCKETS`].
pub fn buckets_touched(
    lo: i64,
    hi: i64,
    width: i64,
    origin: i64,
    threshold: i64,
) -> Option<Vec<i64>> {
    if hi < lo || lo >= threshold {
        return Some(Vec::new());
    }
    let first = bucket_of(lo, width, origin);
    let last = bucket_of(hi.min(threshold.saturating_sub(1)), width, origin);
    let n = (last as i128 - first as i128) / width as i128 + 1;
    (n <= MAX_LOGGED_BUCKETS as i128).then(|| (0..n as i64).map(|i| first + i * width).collect())
}

/// Groups bucket starts (any order, duplicates allowed) into maximal runs of
/// consecutive buckets, as `[lo, hi)` ranges in order.
pub fn runs(mut buckets: Vec<i64>, width: i64) -> Vec<(i64, i64)> {
    buckets.sort_unstable();
    buckets.dedup();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for b in buckets {
        match out.last_mut() {
            Some(r) if r.1 == b => r.1 = b.saturating_add(width),
            _ => out.push((b, b.saturating_add(width))),
        }
    }
    out
}

/// Splits `[lo, hi)` into slices of at most `step` (whole buckets), so one statement
/// aggregates a bounded span of raw rows.
pub fn slices(lo: i64, hi: i64, step: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut a = lo;
    while a < hi {
        let b = a.saturating_add(step).min(hi);
        out.push((a, b));
        a = b;
    }
    out
}

/// A time range `[lo, hi)`.
pub type Span = (i64, i64);

/// The forward range of a refresh, `[start, end)`, as slices of at most `step` that
/// end on bucket starts (but for the last one): only the first may begin inside a
/// bucket (at a watermark inside the open bucket).
pub fn forward_slices(start: i64, end: i64, width: i64, origin: i64, step: i64) -> Vec<(i64, i64)> {
    if end <= start {
        return Vec::new();
    }
    let mut out = slices(bucket_of(start, width, origin), end, step);
    if let Some(first) = out.first_mut() {
        first.0 = start;
    }
    out
}

/// Splits a slice `[lo, hi)` into the part inside `lo`'s bucket when `lo` is not a
/// bucket start (merged into the bucket's materialized row) and the rest (whole
/// buckets, materialized afresh).
pub fn split_open(lo: i64, hi: i64, width: i64, origin: i64) -> (Option<Span>, Option<Span>) {
    let b = bucket_of(lo, width, origin);
    if b == lo {
        return (None, (lo < hi).then_some((lo, hi)));
    }
    let mid = b.saturating_add(width).min(hi);
    (Some((lo, mid)), (mid < hi).then_some((mid, hi)))
}

/// The width of a slice: whole buckets covering at least a day (a day of raw rows per
/// statement: at 100k rows/s, hash aggregation of 8.6M rows at most).
pub fn slice_width(width: i64) -> i64 {
    const DAY: i64 = 86_400_000_000;
    width.saturating_mul((DAY + width - 1) / width).max(width)
}

/// A rollup's default name: the table's name and the bucket width (`points_1h`,
/// `points_5m`, `points_1d`, `points_30s`; other widths in seconds or microseconds).
pub fn default_name(table: &str, width: i64) -> String {
    const S: i64 = 1_000_000;
    let label = if width % (86_400 * S) == 0 {
        format!("{}d", width / (86_400 * S))
    } else if width % (3_600 * S) == 0 {
        format!("{}h", width / (3_600 * S))
    } else if width % (60 * S) == 0 {
        format!("{}m", width / (60 * S))
    } else if width % S == 0 {
        format!("{}s", width / S)
    } else {
        format!("{width}us")
    };
    format!("{table}_{label}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn buckets_follow_date_bin() {
        assert_eq!(bucket_of(0, H, 0), 0);
        assert_eq!(bucket_of(H - 1, H, 0), 0);
        assert_eq!(bucket_of(H, H, 0), H);
        assert_eq!(bucket_of(-1, H, 0), -H);
        assert_eq!(bucket_of(10, H, 7), 7);
        assert_eq!(bucket_of(6, H, 7), 7 - H);
    }

    #[test]
    fn touched_buckets_stop_at_the_threshold() {
        assert_eq!(buckets_touched(10, 10, H, 0, 5 * H), Some(vec![0]));
        assert_eq!(
            buckets_touched(H - 1, 3 * H, H, 0, 10 * H),
            Some(vec![0, H, 2 * H, 3 * H])
        );
        assert_eq!(buckets_touched(0, 10 * H, H, 0, 2 * H), Some(vec![0, H]));
        assert_eq!(buckets_touched(2 * H, 3 * H, H, 0, 2 * H), Some(vec![]));
        assert_eq!(buckets_touched(5, 4, H, 0, 2 * H), Some(vec![]));
        assert_eq!(buckets_touched(0, i64::MAX, 1, 0, i64::MAX), None);
    }

    #[test]
    fn runs_merge_consecutive_buckets() {
        assert_eq!(runs(vec![], H), vec![]);
        assert_eq!(
            runs(vec![3 * H, 0, H, H, 5 * H], H),
            vec![(0, 2 * H), (3 * H, 4 * H), (5 * H, 6 * H)]
        );
    }

    #[test]
    fn slices_cover_the_range() {
        assert_eq!(slices(0, 10, 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(slices(5, 5, 4), vec![]);
        assert_eq!(slice_width(H), 24 * H);
        assert_eq!(slice_width(7 * H), 28 * H);
        assert_eq!(slice_width(30 * 24 * H), 30 * 24 * H);
    }

    #[test]
    fn forward_slices_start_inside_the_open_bucket() {
        let m = 60_000_000;
        assert_eq!(forward_slices(5, 5, H, 0, 24 * H), vec![]);
        // From a watermark 20 minutes into an hour to a threshold 3 days on.
        let s = forward_slices(20 * m, 72 * H + 7 * m, H, 0, 24 * H);
        assert_eq!(
            s,
            vec![
                (20 * m, 24 * H),
                (24 * H, 48 * H),
                (48 * H, 72 * H),
                (72 * H, 72 * H + 7 * m)
            ]
        );
        assert_eq!(forward_slices(H, 2 * H, H, 0, 24 * H), vec![(H, 2 * H)]);
        assert_eq!(
            split_open(20 * m, 24 * H, H, 0),
            (Some((20 * m, H)), Some((H, 24 * H)))
        );
        assert_eq!(
            split_open(20 * m, 30 * m, H, 0),
            (Some((20 * m, 30 * m)), None)
        );
        assert_eq!(split_open(H, 2 * H + m, H, 0), (None, Some((H, 2 * H + m))));
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name("points", H), "points_1h");
        assert_eq!(default_name("points", 5 * 60_000_000), "points_5m");
        assert_eq!(default_name("points", 24 * H), "points_1d");
        assert_eq!(default_name("p", 30_000_000), "p_30s");
        assert_eq!(default_name("p", 1500), "p_1500us");
        assert_eq!(default_name("p", 90 * 60_000_000), "p_90m");
    }
}

//! The directory as the planner reads it: the latest committed rows of a table
//! (cached per backend, `directory_io::planning_chunks`), with what planning asks of
//! every row worked out once when the rows are read, so planning a query does not
//! walk the whole directory, however many chunks the table has: the rows a time window
//! overlaps are found by binary search, and counts, sizes and block weights are sums
//! kept from the start. Pure Rust (unit-tested with `cargo test`).

use super::directory::{ChunkRow, ChunkState};
use super::keyrange::KeyKind;
use super::prune;

/// Every time.
const ALL: (i64, i64) = (i64::MIN, i64::MAX);

/// A table's directory rows, for planning.
pub struct PlanDirectory {
    /// The rows, by chunk id.
    pub rows: Vec<ChunkRow>,
    /// (start, end, row index) of each row's time envelope (its partition and its
    /// measured span together), by start.
    by_start: Vec<(i64, i64, usize)>,
    /// The widest envelope.
    widest: i64,
    /// Cold chunks.
    pub cold: usize,
    /// Distinct key ranges.
    pub ranges: usize,
    /// Units a parallel scan of every chunk hands out (`chunk_scan::parallel_units`).
    pub parallel_units: usize,
    /// Blocks a chunk weighs when unmeasured (the mean of the measured ones) and the
    /// weight of all ([`prune::read_share`]).
    weights: (f64, f64),
    /// Measured blocks of hot and sealed chunks, of cold chunks, and cold rows.
    pub measured: (u64, u64, i64),
    /// Indices of the rows not measured yet (their size is read from their files).
    pub unmeasured: Vec<usize>,
    /// [`PlanDirectory::estimate`] without time bounds.
    unbounded: (usize, usize, f64),
    /// The start of the newest time partition (`i64::MIN`: no rows).
    pub newest_partition: i64,
}

impl PlanDirectory {
    pub fn new(rows: Vec<ChunkRow>, parallel_units: impl Fn(&[ChunkRow]) -> usize) -> Self {
        let mut by_start: Vec<(i64, i64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (from, to) = c.time_span();
                (c.time_lo.min(from), c.time_hi.max(to), i)
            })
            .collect();
        by_start.sort_unstable();
        let widest = by_start
            .iter()
            .map(|&(s, e, _)| e.saturating_sub(s))
            .max()
            .unwrap_or(0);
        let mut ranges: Vec<i32> = rows.iter().map(|c| c.range_id).collect();
        ranges.sort_unstable();
        ranges.dedup();
        let (mut heap, mut cold_blocks, mut cold_rows) = (0u64, 0u64, 0i64);
        let mut cold = 0;
        let mut unmeasured = Vec::new();
        for (i, c) in rows.iter().enumerate() {
            cold += usize::from(c.state == ChunkState::Cold);
            match (c.pages, c.state == ChunkState::Cold) {
                (Some(p), true) => {
                    cold_blocks += p.max(0) as u64;
                    cold_rows += c.rows.unwrap_or(0);
                }
                (Some(p), false) => heap += p.max(0) as u64,
                (None, cold) => {
                    unmeasured.push(i);
                    if cold {
                        cold_rows += c.rows.unwrap_or(0);
                    }
                }
            }
        }
        let mut dir = PlanDirectory {
            cold,
            ranges: ranges.len(),
            parallel_units: parallel_units(&rows),
            weights: prune::weights(&rows),
            measured: (heap, cold_blocks, cold_rows),
            unmeasured,
            by_start,
            widest,
            newest_partition: rows.iter().map(|c| c.time_lo).max().unwrap_or(i64::MIN),
            rows,
            unbounded: (0, 0, 0.0),
        };
        dir.unbounded = dir.estimate_of(Some(ALL));
        dir
    }

    /// For a plan's costs: the chunks [`prune::chunks_to_read`] keeps for times in
    /// `time` (`None`: no row can match) and no key, the distinct key ranges among
    /// them, and the share of the table's blocks they read. Without time bounds, the
    /// figures worked out when the rows were read.
    pub fn estimate(&self, time: Option<(i64, i64)>) -> (usize, usize, f64) {
        match time {
            Some(ALL) => self.unbounded,
            _ => self.estimate_of(time),
        }
    }

    fn estimate_of(&self, time: Option<(i64, i64)>) -> (usize, usize, f64) {
        let kept = self.overlapping(time);
        let share = time.map_or(0.0, |t| self.read_share(&kept, t));
        (kept.len(), self.ranges_of(&kept), share)
    }

    /// The rows [`prune::chunks_to_read`] keeps for times in `time` (`None`: none) and
    /// no key: the rows whose envelope overlaps the window, found by binary search,
    /// then tested as it tests them. In no particular order.
    pub fn overlapping(&self, time: Option<(i64, i64)>) -> Vec<&ChunkRow> {
        let Some((lo, hi)) = time else {
            return Vec::new();
        };
        // An envelope that ends after lo starts after lo - widest.
        let first = self
            .by_start
            .partition_point(|e| e.0 <= lo.saturating_sub(self.widest));
        let last = self.by_start.partition_point(|e| e.0 < hi);
        self.by_start[first..last.max(first)]
            .iter()
            .filter(|e| e.1 > lo)
            .map(|e| &self.rows[e.2])
            .filter(|c| prune::reads(c, (lo, hi), KeyKind::Int, &[], &[]))
            .collect()
    }

    /// Distinct key ranges of `kept` (a subset of the rows).
    pub fn ranges_of(&self, kept: &[&ChunkRow]) -> usize {
        if kept.len() == self.rows.len() {
            return self.ranges;
        }
        let mut ranges: Vec<i32> = kept.iter().map(|c| c.range_id).collect();
        ranges.sort_unstable();
        ranges.dedup();
        ranges.len()
    }

    /// [`prune::read_share`] of `kept` (a subset of the rows) for times [lo, hi).
    pub fn read_share(&self, kept: &[&ChunkRow], time: (i64, i64)) -> f64 {
        prune::read_share_weighed(self.weights, kept, time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u32, time_lo: i64, width: i64, span: Option<(i64, i64)>) -> ChunkRow {
        ChunkRow {
            range_id: (id % 3) as i32,
            state: if id.is_multiple_of(4) {
                ChunkState::Cold
            } else {
                ChunkState::Sealed
            },
            min_time: span.map(|s| s.0),
            max_time: span.map(|s| s.1),
            pages: (!id.is_multiple_of(5)).then_some(i64::from(id) * 10),
            rows: Some(i64::from(id)),
            ..ChunkRow::for_test(id, time_lo, time_lo + width)
        }
    }

    #[test]
    fn overlapping_rows_are_the_ones_chunks_to_read_keeps() {
        // partitions of two widths, measured spans inside and (an UPDATE's late row)
        // outside them, empty sealed chunks (min > max)
        let mut rows = Vec::new();
        for i in 0..300u32 {
            let t = i64::from(i) * 7 % 500;
            let width = if i % 7 == 0 { 50 } else { 10 };
            let span = match i % 6 {
                0 => None,
                1 => Some((t + 2, t + 5)),
                2 => Some((t - 30, t + 3)),
                3 => Some((i64::MAX, i64::MIN)),
                4 => Some((t, t + width + 40)),
                _ => Some((t + 1, t + 1)),
            };
            rows.push(chunk(i + 1, t, width, span));
        }
        let dir = PlanDirectory::new(rows.clone(), |r| r.len() * 2);
        let mut windows = vec![None, Some((i64::MIN, i64::MAX)), Some((5, 5))];
        for lo in (-60..600).step_by(13) {
            for w in [1, 9, 10, 11, 60, 400] {
                windows.push(Some((lo, lo + w)));
            }
        }
        for time in windows {
            let mut got: Vec<u32> = dir.overlapping(time).iter().map(|c| c.chunk_id).collect();
            got.sort_unstable();
            let want: Vec<u32> = prune::chunks_to_read(&rows, time, KeyKind::Int, &[], &[])
                .iter()
                .map(|c| c.chunk_id)
                .collect();
            assert_eq!(got, want, "{time:?}");
            let (n, ranges, share) = dir.estimate(time);
            assert_eq!(n, want.len());
            if time.is_none() {
                assert_eq!((ranges, share), (0, 0.0));
            }
            if let Some(t) = time {
                let kept = dir.overlapping(time);
                assert!((dir.read_share(&kept, t) - share).abs() < 1e-9);
                assert_eq!(dir.ranges_of(&kept), ranges);
                let share = dir.read_share(&kept, t);
                let want = prune::read_share(&rows, &kept, t);
                assert!(
                    (share - want).abs() < 1e-9,
                    "{time:?}: {share} against {want}"
                );
                let mut ranges: Vec<i32> = kept.iter().map(|c| c.range_id).collect();
                ranges.sort_unstable();
                ranges.dedup();
                assert_eq!(dir.ranges_of(&kept), ranges.len());
            }
        }
        assert_eq!(
            dir.cold,
            rows.iter().filter(|c| c.state == ChunkState::Cold).count()
        );
        assert_eq!(dir.parallel_units, 600);
        assert_eq!(dir.ranges, 3);
        let unmeasured: Vec<u32> = dir.unmeasured.iter().map(|&i| rows[i].chunk_id).collect();
        assert_eq!(unmeasured.len(), 60);
        assert!(unmeasured.iter().all(|id| id.is_multiple_of(5)));
    }

    #[test]
    fn an_empty_directory_plans() {
        let dir = PlanDirectory::new(Vec::new(), |_| 0);
        assert!(dir.overlapping(Some((i64::MIN, i64::MAX))).is_empty());
        assert_eq!((dir.cold, dir.ranges, dir.measured), (0, 0, (0, 0, 0)));
        assert_eq!(dir.read_share(&[], (0, 1)), 1.0);
    }
}

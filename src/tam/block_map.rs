//! Block-range time maps of sealed chunks (pure Rust, unit-tested): the first and last
//! time of the rows stored in each run of a sealed chunk's blocks, measured once by the
//! maintenance job ([`super::maintenance`]). A hot chunk takes rows nearly in time
//! order, so its block ranges hold narrow, nearly disjoint time spans; a scan for a
//! time window reads only the blocks whose ranges overlap it (one contiguous run:
//! `heap_setscanlimits`), not the whole chunk, which spans hours.
//!
//! Stored in `bidim.chunk.block_times` as `int8[]`:
//! `[blocks per range, blocks covered, first0, last0, first1, last1, ...]`; a range
//! without rows has first > last. The map covers every tuple stored in the chunk when
//! it was measured, dead ones included (an old snapshot may still see them), and stays
//! true because nothing adds a row version to a mapped chunk: inserts go to hot chunks
//! and an UPDATE moves a row out of a mapped chunk ([`super::modify`]). Blocks past the
//! covered ones (none are expected) are always read.

/// Ranges a map has at most: the map stays small enough to live inline in its
/// directory row (no TOAST read per chunk per query).
pub const MAX_RANGES: u32 = 64;
/// Blocks a range has at least (a smaller chunk gets fewer ranges).
pub const MIN_BLOCKS_PER_RANGE: u32 = 8;

/// The blocks of one chunk a scan reads: `runs` (start, count) found in a map of
/// `covered` blocks ([`fitted_run`] adds the blocks past those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRuns {
    pub runs: Vec<(u32, u32)>,
    pub covered: u32,
}

/// A chunk's block-range time map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    per_range: u32,
    blocks: u32,
    /// (first, last) time of each range's rows, inclusive; first > last: no rows.
    bounds: Vec<(i64, i64)>,
}

impl BlockMap {
    /// An empty map for a chunk of `blocks` blocks, to be filled by [`BlockMap::note`].
    pub fn new(blocks: u32) -> BlockMap {
        let per_range = blocks.div_ceil(MAX_RANGES).max(MIN_BLOCKS_PER_RANGE);
        let n = blocks.div_ceil(per_range) as usize;
        BlockMap {
            per_range,
            blocks,
            bounds: vec![(i64::MAX, i64::MIN); n],
        }
    }

    /// Counts a row stored in `block` with time `t`. Blocks past the covered ones are
    /// ignored: a scan always reads them.
    pub fn note(&mut self, block: u32, t: i64) {
        if let Some(b) = self.bounds.get_mut((block / self.per_range) as usize) {
            b.0 = b.0.min(t);
            b.1 = b.1.max(t);
        }
    }

    /// The blocks the map covers.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// The stored form (see the module's doc).
    pub fn encode(&self) -> Vec<i64> {
        let mut v = Vec::with_capacity(2 + 2 * self.bounds.len());
        v.push(i64::from(self.per_range));
        v.push(i64::from(self.blocks));
        for &(lo, hi) in &self.bounds {
            v.push(lo);
            v.push(hi);
        }
        v
    }

    /// A map from its stored form; `None` if it is not one (then the chunk is read
    /// whole: a damaged map costs time, never rows).
    pub fn decode(v: &[i64]) -> Option<BlockMap> {
        let (&per_range, &blocks) = (v.first()?, v.get(1)?);
        let per_range = u32::try_from(per_range).ok().filter(|&p| p > 0)?;
        let blocks = u32::try_from(blocks).ok()?;
        let pairs = &v[2..];
        if !pairs.len().is_multiple_of(2) || pairs.len() / 2 != blocks.div_ceil(per_range) as usize
        {
            return None;
        }
        Some(BlockMap {
            per_range,
            blocks,
            bounds: pairs.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        })
    }

    /// [`BlockMap::runs_for`] with the blocks the map covers.
    pub fn read_for(&self, lo: i64, hi: i64) -> BlockRuns {
        BlockRuns {
            runs: self.runs_for(lo, hi),
            covered: self.blocks,
        }
    }

    /// Every block the map covers, as one run (a scan without a time window).
    pub fn whole(&self) -> BlockRuns {
        BlockRuns {
            runs: if self.blocks > 0 {
                vec![(0, self.blocks)]
            } else {
                Vec::new()
            },
            covered: self.blocks,
        }
    }

    /// How many blocks [`BlockMap::read_for`] reads for [lo, hi) (counted without
    /// building the runs: the planner asks for every chunk it costs).
    pub fn blocks_for(&self, lo: i64, hi: i64) -> u32 {
        self.overlapping(lo, hi).map(|r| r.1).sum()
    }

    /// The ranges whose rows overlap [lo, hi), in block order: (first block, blocks,
    /// first time, last time) each (a time-ordered reader takes them by their times).
    pub fn ranges_for(&self, lo: i64, hi: i64) -> Vec<(u32, u32, i64, i64)> {
        self.overlapping(lo, hi).collect()
    }

    /// [`BlockMap::ranges_for`], lazily.
    fn overlapping(&self, lo: i64, hi: i64) -> impl Iterator<Item = (u32, u32, i64, i64)> + '_ {
        self.bounds
            .iter()
            .enumerate()
            .filter(move |(_, &(first, last))| first <= last && first < hi && last >= lo)
            .map(|(i, &(first, last))| {
                let start = i as u32 * self.per_range;
                let end = (start + self.per_range).min(self.blocks);
                (start, end - start, first, last)
            })
    }

    /// The runs of blocks `(start, count)` a scan for rows with times in [lo, hi)
    /// reads, in block order: the ranges whose rows overlap the window, adjacent ones
    /// joined. Empty: no covered block holds such a row.
    pub fn runs_for(&self, lo: i64, hi: i64) -> Vec<(u32, u32)> {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for (start, count, _, _) in self.ranges_for(lo, hi) {
            match runs.last_mut() {
                Some(r) if r.0 + r.1 == start => r.1 += count,
                _ => runs.push((start, count)),
            }
        }
        runs
    }
}

/// `runs` cut into pieces of at most `max` blocks, in order (the participants of a
/// parallel scan take them one at a time).
pub fn pieces(runs: &[(u32, u32)], max: u32) -> Vec<(u32, u32)> {
    let max = max.max(1);
    let mut out = Vec::new();
    for &(start, count) in runs {
        let mut at = 0;
        while at < count {
            let n = max.min(count - at);
            out.push((start + at, n));
            at += n;
        }
    }
    out
}

/// Run `i` of a scan that reads `runs` (from [`BlockMap::runs_for`], over `covered`
/// blocks) of a chunk that now has `nblocks` blocks: the runs cut to the chunk's
/// blocks, then one more run of the blocks past the covered ones, if any. `None` past
/// the last run; a run may be empty (count 0).
pub fn fitted_run(runs: &[(u32, u32)], covered: u32, nblocks: u32, i: usize) -> Option<(u32, u32)> {
    if let Some(&(start, count)) = runs.get(i) {
        let end = start.saturating_add(count).min(nblocks);
        let start = start.min(end);
        return Some((start, end - start));
    }
    (i == runs.len() && nblocks > covered).then(|| (covered, nblocks - covered))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every run a scan of a chunk of `nblocks` blocks reads, empty ones dropped.
    fn read(m: &BlockMap, lo: i64, hi: i64, nblocks: u32) -> Vec<(u32, u32)> {
        let runs = m.runs_for(lo, hi);
        (0..)
            .map_while(|i| fitted_run(&runs, m.blocks(), nblocks, i))
            .filter(|r| r.1 > 0)
            .collect()
    }

    /// A map of `blocks` blocks, block b holding times [10 b, 10 b + 9].
    fn ordered(blocks: u32) -> BlockMap {
        let mut m = BlockMap::new(blocks);
        for b in 0..blocks {
            m.note(b, 10 * i64::from(b));
            m.note(b, 10 * i64::from(b) + 9);
        }
        m
    }

    #[test]
    fn a_scan_without_window_reads_every_covered_block() {
        let m = ordered(100);
        assert_eq!(
            m.whole(),
            BlockRuns {
                runs: vec![(0, 100)],
                covered: 100
            }
        );
        assert_eq!(read_runs(&m.whole(), 120), [(0, 100), (100, 20)]);
        assert_eq!(BlockMap::new(0).whole().runs, []);
        // pieces of it cover the same blocks once each
        let p = pieces(&m.whole().runs, 32);
        assert_eq!(p, [(0, 32), (32, 32), (64, 32), (96, 4)]);
    }

    /// Every non-empty run a scan reading `r` of a chunk of `nblocks` blocks reads.
    fn read_runs(r: &BlockRuns, nblocks: u32) -> Vec<(u32, u32)> {
        (0..)
            .map_while(|i| fitted_run(&r.runs, r.covered, nblocks, i))
            .filter(|r| r.1 > 0)
            .collect()
    }

    #[test]
    fn ranges_stay_few_and_cover_every_block() {
        for blocks in [0, 1, 7, 8, 9, 100, 511, 512, 513, 16_000, 1_000_000] {
            let m = BlockMap::new(blocks);
            assert!(m.bounds.len() <= MAX_RANGES as usize, "{blocks}");
            assert!(m.bounds.len() as u32 * m.per_range >= blocks, "{blocks}");
            assert!(m.per_range >= MIN_BLOCKS_PER_RANGE);
        }
    }

    #[test]
    fn a_window_reads_the_ranges_that_overlap_it() {
        let m = ordered(1024); // 16 blocks a range, times 160 a range
        assert_eq!(m.per_range, 16);
        // times 1600..1760 are range 10 exactly
        assert_eq!(read(&m, 1600, 1760, 1024), [(160, 16)]);
        // one time past it reaches range 11
        assert_eq!(read(&m, 1600, 1761, 1024), [(160, 32)]);
        // the last time of range 9 reaches back to it
        assert_eq!(read(&m, 1599, 1760, 1024), [(144, 32)]);
        assert_eq!(read(&m, i64::MIN, i64::MAX, 1024), [(0, 1024)]);
        // before and after every row: nothing
        assert!(read(&m, -100, 0, 1024).is_empty());
        assert!(read(&m, 10_240, 20_000, 1024).is_empty());
    }

    #[test]
    fn blocks_for_counts_what_read_for_reads() {
        let mut m = ordered(1000); // the last range is short
        m.note(990, 5);
        for (lo, hi) in [
            (i64::MIN, i64::MAX),
            (0, 6),
            (1600, 1761),
            (9_900, 20_000),
            (-100, 0),
            (20_000, 30_000),
        ] {
            let runs: u32 = m.read_for(lo, hi).runs.iter().map(|r| r.1).sum();
            assert_eq!(m.blocks_for(lo, hi), runs, "{lo}..{hi}");
        }
        assert_eq!(BlockMap::new(64).blocks_for(i64::MIN, i64::MAX), 0);
    }

    #[test]
    fn ranges_carry_their_times() {
        let mut m = ordered(1024);
        m.note(1000, 5);
        assert_eq!(m.ranges_for(0, 6), [(0, 16, 0, 159), (992, 16, 5, 10_079)]);
        assert!(m.ranges_for(20_000, 30_000).is_empty());
        let total: u32 = m.ranges_for(i64::MIN, i64::MAX).iter().map(|r| r.1).sum();
        assert_eq!(total, 1024);
    }

    #[test]
    fn a_late_row_adds_its_range_only() {
        let mut m = ordered(1024);
        m.note(1000, 5); // a late row stored near the end: range 62
        assert_eq!(read(&m, 0, 6, 1024), [(0, 16), (992, 16)]);
        assert_eq!(read(&m, 3000, 3001, 1024), [(288, 16), (992, 16)]);
        // the last range (blocks 1008..1024) is not read for early times
        assert_eq!(read(&m, 10_000, 10_001, 1024), [(992, 16)]);
        assert_eq!(read(&m, 10_100, 10_101, 1024), [(1008, 16)]);
    }

    #[test]
    fn empty_ranges_match_nothing() {
        let mut m = BlockMap::new(64); // 8 ranges of 8
        m.note(0, 100);
        m.note(63, 200);
        assert_eq!(read(&m, 100, 201, 64), [(0, 8), (56, 8)]);
        assert!(read(&m, 150, 160, 64).is_empty());
        assert!(read(&BlockMap::new(64), i64::MIN, i64::MAX, 64).is_empty());
        // a chunk too small for more than one range
        let mut m = BlockMap::new(3);
        m.note(2, 7);
        assert_eq!(read(&m, 7, 8, 3), [(0, 3)]);
    }

    #[test]
    fn blocks_the_map_does_not_cover_are_read() {
        let m = ordered(1024);
        // grown by 10 blocks: the window's ranges, then the new blocks
        assert_eq!(read(&m, 1600, 1760, 1034), [(160, 16), (1024, 10)]);
        assert_eq!(read(&m, -100, 0, 1034), [(1024, 10)]);
        // shrunk (VACUUM truncated empty pages): cut
        assert_eq!(read(&m, 10_000, 10_240, 1000), [(992, 8)]);
        assert!(read(&m, 10_230, 10_240, 900).is_empty());
        assert_eq!(fitted_run(&[], 0, 0, 0), None);
        assert_eq!(fitted_run(&[], 0, 5, 0), Some((0, 5)));
        assert_eq!(fitted_run(&[], 0, 5, 1), None);
    }

    #[test]
    fn pieces_cover_the_runs_once() {
        assert_eq!(
            pieces(&[(0, 10), (20, 3)], 4),
            [(0, 4), (4, 4), (8, 2), (20, 3)]
        );
        assert_eq!(pieces(&[(5, 4)], 4), [(5, 4)]);
        assert!(pieces(&[], 4).is_empty());
        assert_eq!(pieces(&[(0, 2)], 0), [(0, 1), (1, 1)]);
    }

    #[test]
    fn stored_form_round_trips_and_rejects_damage() {
        let m = ordered(777);
        assert_eq!(BlockMap::decode(&m.encode()), Some(m.clone()));
        let v = m.encode();
        assert_eq!(BlockMap::decode(&v[..v.len() - 1]), None);
        assert_eq!(BlockMap::decode(&v[..v.len() - 2]), None);
        assert_eq!(BlockMap::decode(&[]), None);
        assert_eq!(BlockMap::decode(&[0, 10]), None);
        assert_eq!(BlockMap::decode(&[-1, 10, 0, 0]), None);
        assert_eq!(BlockMap::decode(&[8, -5]), None);
        assert_eq!(BlockMap::decode(&[8, 0]), Some(BlockMap::new(0)));
    }
}

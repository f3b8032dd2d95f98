//! The chunk directory's rules, over rows already read (pure Rust, unit-tested): what
//! state a chunk is in, which chunk is a cell's hot chunk, when a cached hot chunk has
//! been superseded, how many chunks a range has filled in a partition, and which time
//! partitions retention drops.
//!
//! A chunk's state is its directory row's `state` column, and only that: a chunk is
//! made `hot`; it becomes `sealed` in the transaction that makes its successor, splits
//! its key range, runs `bidim.seal`, or the maintenance job (finished partitions),
//! always through one statement ([`super::hot_chunk::seal_where`]); `cold` is for the
//! converted chunks of the cold-chunk work.
//!
//! Visibility rule (why it is safe to read the directory with a scan's snapshot): a
//! row visible to snapshot S was inserted by a transaction that saw its chunk's
//! directory row, so that row committed before the inserter did, hence before S.

use super::cell::Cell;
use super::keyrange::{self, Key, KeyKind};
use pgrx::pg_sys;

/// The life of a chunk: hot (takes new rows), sealed (full or finished, still a heap
/// chunk), cold (converted to compressed column batches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    Hot,
    Sealed,
    Cold,
}

impl ChunkState {
    /// The state stored as `text` in `bidim.chunk.state`.
    pub fn parse(s: &str) -> Option<ChunkState> {
        match s {
            "hot" => Some(ChunkState::Hot),
            "sealed" => Some(ChunkState::Sealed),
            "cold" => Some(ChunkState::Cold),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChunkState::Hot => "hot",
            ChunkState::Sealed => "sealed",
            ChunkState::Cold => "cold",
        }
    }
}

/// One directory row (`bidim.chunk`).
#[derive(Clone, Debug)]
pub struct ChunkRow {
    pub chunk_id: u32,
    pub chunk_rel: pg_sys::Oid,
    pub range_id: i32,
    pub time_lo: i64,
    pub time_hi: i64,
    pub state: ChunkState,
    /// Bounds of the key range the chunk was made for (text form; `None` = unbounded).
    pub key_lo: Option<String>,
    pub key_hi: Option<String>,
    /// The transaction that sealed the chunk (64-bit), if sealed.
    pub sealed_xid: Option<u64>,
    /// The exact first and last time of the chunk's rows (inclusive), once measured.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// The chunk's size in blocks when its bounds were measured.
    pub pages: Option<i64>,
    /// A cold chunk's rows, counted when it was converted.
    pub rows: Option<i64>,
    /// A sealed chunk's block-range time map, once measured.
    pub block_map: Option<super::block_map::BlockMap>,
    /// `key_lo`/`key_hi` parsed, once (pruning asks for every chunk, every rescan).
    pub parsed_keys: std::cell::OnceCell<(Option<Key>, Option<Key>)>,
}

impl ChunkRow {
    /// A hot chunk's row of partition [time_lo, time_hi), every other field empty
    /// (unit tests build their directories from it).
    #[cfg(test)]
    pub fn for_test(id: u32, time_lo: i64, time_hi: i64) -> ChunkRow {
        ChunkRow {
            chunk_id: id,
            chunk_rel: pg_sys::Oid::from(id),
            range_id: 0,
            time_lo,
            time_hi,
            state: ChunkState::Hot,
            key_lo: None,
            key_hi: None,
            sealed_xid: None,
            min_time: None,
            max_time: None,
            pages: None,
            rows: None,
            block_map: None,
            parsed_keys: Default::default(),
        }
    }

    /// Whether the chunk's key range may hold `k`.
    pub fn may_hold(&self, kind: KeyKind, k: &Key) -> bool {
        let (lo, hi) = self.key_bounds(kind);
        keyrange::contains(lo, hi, k)
    }

    /// The bounds of the key range the chunk was made for, parsed once (`None`:
    /// unbounded, as is a bound that does not parse).
    pub fn key_bounds(&self, kind: KeyKind) -> (Option<&Key>, Option<&Key>) {
        let (lo, hi) = self.parsed_keys.get_or_init(|| {
            (
                self.key_lo.as_deref().and_then(|s| Key::parse(kind, s)),
                self.key_hi.as_deref().and_then(|s| Key::parse(kind, s)),
            )
        });
        (lo.as_ref(), hi.as_ref())
    }

    /// The times [lo, hi) the chunk's rows lie in: its exact bounds once measured
    /// (empty for a sealed chunk without rows), else its partition.
    pub fn time_span(&self) -> (i64, i64) {
        match (self.min_time, self.max_time) {
            (Some(lo), Some(hi)) => (lo, hi.saturating_add(1)),
            _ => (self.time_lo, self.time_hi),
        }
    }

    /// Whether the chunk was made for `cell` (its key range and time partition).
    pub fn in_cell(&self, range_id: i32, time_lo: i64) -> bool {
        self.range_id == range_id && self.time_lo == time_lo
    }
}

/// The hot chunk of `cell`: the newest hot chunk made for it (rows are sorted by
/// chunk id).
pub fn hot_of<'a>(rows: &'a [ChunkRow], cell: &Cell) -> Option<&'a ChunkRow> {
    rows.iter()
        .rev()
        .find(|r| r.state == ChunkState::Hot && r.in_cell(cell.range_id, cell.time_lo))
}

/// Whether chunk `ordinal`, which this backend routes `cell`'s rows to, has been
/// superseded: it is no longer hot, or a newer chunk of the cell exists.
pub fn superseded(rows: &[ChunkRow], cell: &Cell, ordinal: u32) -> bool {
    rows.iter().any(|r| {
        r.in_cell(cell.range_id, cell.time_lo)
            && (r.chunk_id > ordinal || (r.chunk_id == ordinal && r.state != ChunkState::Hot))
    })
}

/// How many chunks key range `range_id` has filled (made) in partition `time_lo`.
pub fn filled(rows: &[ChunkRow], range_id: i32, time_lo: i64) -> usize {
    rows.iter().filter(|r| r.in_cell(range_id, time_lo)).count()
}

/// The sealed chunks whose exact time bounds the maintenance job may measure now:
/// sealed by a transaction older than `horizon` (PostgreSQL's oldest non-removable
/// xid, 64-bit), so no snapshot that saw the chunk hot, and so might still route a
/// row into it, is left; at most `limit`, oldest first.
pub fn bounds_due(rows: &[ChunkRow], horizon: u64, limit: usize) -> Vec<&ChunkRow> {
    rows.iter()
        .filter(|r| r.state == ChunkState::Sealed && r.min_time.is_none())
        .filter(|r| {
            r.sealed_xid
                .is_some_and(|x| super::tid::reusable(x, horizon))
        })
        .take(limit)
        .collect()
}

/// The sealed chunks a conversion may turn cold now, oldest first: sealed by a
/// transaction older than `horizon` (so every transaction that could still insert
/// into the chunk, having seen it hot, has ended: its rows are committed and older
/// than every running snapshot), and holding only rows before `older_than` (their
/// measured last time, else their partition's end).
pub fn convertible(rows: &[ChunkRow], horizon: u64, older_than: i64) -> Vec<&ChunkRow> {
    let mut v: Vec<&ChunkRow> = rows
        .iter()
        .filter(|r| r.state == ChunkState::Sealed)
        .filter(|r| {
            r.sealed_xid
                .is_some_and(|x| super::tid::reusable(x, horizon))
        })
        .filter(|r| r.time_span().1 <= older_than)
        .collect();
    v.sort_by_key(|r| (r.time_lo, r.chunk_id));
    v
}

/// What retention does with the time partitions of a table, for a cutoff.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Partitions [lo, hi) lying wholly before the cutoff: dropped, every chunk.
    pub doomed: Vec<(i64, i64)>,
    /// Partitions that straddle the cutoff: kept (the caller says so).
    pub straddling: Vec<(i64, i64)>,
}

impl Retention {
    /// Whether `row`'s chunk goes.
    pub fn drops(&self, row: &ChunkRow) -> bool {
        self.doomed.iter().any(|&(lo, _)| lo == row.time_lo)
    }
}

/// Retention's choice: the partitions wholly before `cutoff` go, the ones holding it
/// stay (a partition is never cut in two: chunks go whole).
pub fn retention(rows: &[ChunkRow], cutoff: i64) -> Retention {
    let mut partitions: Vec<(i64, i64)> = rows.iter().map(|r| (r.time_lo, r.time_hi)).collect();
    partitions.sort();
    partitions.dedup();
    Retention {
        doomed: partitions
            .iter()
            .copied()
            .filter(|&(_, hi)| hi <= cutoff)
            .collect(),
        straddling: partitions
            .iter()
            .copied()
            .filter(|&(lo, hi)| lo < cutoff && hi > cutoff)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u32, range_id: i32, time_lo: i64, state: ChunkState) -> ChunkRow {
        ChunkRow {
            chunk_rel: pg_sys::Oid::from(1000 + id),
            range_id,
            state,
            ..ChunkRow::for_test(id, time_lo, time_lo + 10)
        }
    }

    #[test]
    fn only_sealed_chunks_past_the_horizon_and_before_the_cutoff_convert() {
        let mut rows = vec![
            row(1, 0, 0, ChunkState::Sealed),
            row(2, 0, 0, ChunkState::Hot),
            row(3, 0, 0, ChunkState::Cold),
            row(4, 0, 100, ChunkState::Sealed),
            row(5, 0, 0, ChunkState::Sealed),
        ];
        rows[0].sealed_xid = Some(10);
        rows[3].sealed_xid = Some(10);
        rows[4].sealed_xid = Some(50); // sealed by a transaction the horizon has not passed
        let ids = |v: Vec<&ChunkRow>| v.iter().map(|r| r.chunk_id).collect::<Vec<_>>();
        assert_eq!(ids(convertible(&rows, 20, i64::MAX)), vec![1, 4]);
        assert_eq!(ids(convertible(&rows, 60, i64::MAX)), vec![1, 5, 4]);
        // partition [100, 110) is not wholly before 105; measured bounds narrow it
        assert_eq!(ids(convertible(&rows, 20, 105)), vec![1]);
        rows[3].min_time = Some(100);
        rows[3].max_time = Some(101);
        assert_eq!(ids(convertible(&rows, 20, 105)), vec![1, 4]);
        // a sealed chunk whose sealing transaction is unknown waits
        rows[0].sealed_xid = None;
        assert_eq!(ids(convertible(&rows, 20, i64::MAX)), vec![4]);
    }

    fn cell(range_id: i32, time_lo: i64) -> Cell {
        Cell {
            range_id,
            time_lo,
            time_hi: time_lo + 10,
        }
    }

    #[test]
    fn states_round_trip_and_unknown_ones_are_refused() {
        for s in [ChunkState::Hot, ChunkState::Sealed, ChunkState::Cold] {
            assert_eq!(ChunkState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ChunkState::parse("warm"), None);
        assert_eq!(ChunkState::parse("HOT"), None);
    }

    #[test]
    fn the_hot_chunk_of_a_cell_is_its_newest_hot_one() {
        use ChunkState::*;
        let rows = vec![
            row(1, 0, 0, Sealed),
            row(2, 0, 0, Hot),
            row(3, 0, 10, Hot),
            row(4, 1, 0, Hot),
            row(5, 0, 0, Hot),
            row(6, 0, 0, Sealed),
        ];
        assert_eq!(hot_of(&rows, &cell(0, 0)).map(|r| r.chunk_id), Some(5));
        assert_eq!(hot_of(&rows, &cell(0, 10)).map(|r| r.chunk_id), Some(3));
        assert_eq!(hot_of(&rows, &cell(1, 0)).map(|r| r.chunk_id), Some(4));
        assert_eq!(hot_of(&rows, &cell(1, 10)).map(|r| r.chunk_id), None);
        assert_eq!(
            hot_of(&[row(1, 0, 0, Cold)], &cell(0, 0)).map(|r| r.chunk_id),
            None
        );
    }

    #[test]
    fn a_chunk_is_superseded_once_sealed_or_followed() {
        use ChunkState::*;
        let c = cell(0, 0);
        assert!(!superseded(&[row(1, 0, 0, Hot)], &c, 1));
        assert!(superseded(&[row(1, 0, 0, Sealed)], &c, 1));
        assert!(superseded(&[row(1, 0, 0, Hot), row(2, 0, 0, Hot)], &c, 1));
        // newer chunks of other cells do not count
        assert!(!superseded(
            &[row(1, 0, 0, Hot), row(2, 1, 0, Hot), row(3, 0, 10, Hot)],
            &c,
            1
        ));
        // an older chunk's state does not matter
        assert!(!superseded(
            &[row(1, 0, 0, Sealed), row(2, 0, 0, Hot)],
            &c,
            2
        ));
    }

    #[test]
    fn measured_bounds_narrow_a_chunks_span_and_are_measured_only_past_the_horizon() {
        use ChunkState::*;
        let mut c = row(1, 0, 100, Sealed);
        assert_eq!(c.time_span(), (100, 110));
        c.min_time = Some(103);
        c.max_time = Some(105);
        assert_eq!(c.time_span(), (103, 106));
        // an emptied chunk: an empty span
        c.min_time = Some(110);
        c.max_time = Some(99);
        let (lo, hi) = c.time_span();
        assert!(lo >= hi);
        let mut rows = vec![
            row(1, 0, 0, Sealed),
            row(2, 0, 0, Hot),
            row(3, 0, 10, Sealed),
            row(4, 0, 20, Sealed),
        ];
        rows[0].sealed_xid = Some(50);
        rows[2].sealed_xid = Some(70);
        rows[3].sealed_xid = Some(60);
        rows[3].min_time = Some(21);
        rows[3].max_time = Some(22);
        let due = |h, n| {
            bounds_due(&rows, h, n)
                .iter()
                .map(|r| r.chunk_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            due(50, 10),
            Vec::<u32>::new(),
            "a snapshot of the sealer may be running"
        );
        assert_eq!(due(51, 10), vec![1]);
        assert_eq!(
            due(100, 10),
            vec![1, 3],
            "hot and measured chunks are not due"
        );
        assert_eq!(due(100, 1), vec![1]);
    }

    #[test]
    fn filled_counts_a_ranges_chunks_in_one_partition() {
        use ChunkState::*;
        let rows = vec![
            row(1, 0, 0, Sealed),
            row(2, 0, 0, Hot),
            row(3, 0, 10, Hot),
            row(4, 1, 0, Hot),
        ];
        assert_eq!(filled(&rows, 0, 0), 2);
        assert_eq!(filled(&rows, 0, 10), 1);
        assert_eq!(filled(&rows, 2, 0), 0);
    }

    #[test]
    fn retention_drops_whole_partitions_before_the_cutoff() {
        use ChunkState::*;
        // partitions [0,10) [10,20) [20,30), two chunks in the first
        let rows = vec![
            row(1, 0, 0, Sealed),
            row(2, 1, 0, Hot),
            row(3, 0, 10, Hot),
            row(4, 0, 20, Hot),
        ];
        let r = retention(&rows, 15);
        assert_eq!(r.doomed, vec![(0, 10)]);
        assert_eq!(r.straddling, vec![(10, 20)]);
        let dropped: Vec<u32> = rows
            .iter()
            .filter(|c| r.drops(c))
            .map(|c| c.chunk_id)
            .collect();
        assert_eq!(dropped, vec![1, 2]);
        // a cutoff on a boundary drops everything before it, keeps nothing straddling
        let r = retention(&rows, 20);
        assert_eq!(r.doomed, vec![(0, 10), (10, 20)]);
        assert!(r.straddling.is_empty());
        // before every partition: nothing
        assert_eq!(retention(&rows, 0), Retention::default());
        assert_eq!(retention(&[], 100), Retention::default());
    }

    /// Brute force: a chunk goes iff its whole partition ends at or before the cutoff.
    #[test]
    fn retention_agrees_with_brute_force() {
        let mut seed = 99u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let rows: Vec<ChunkRow> = (0..(next() % 12) as u32)
                .map(|i| {
                    row(
                        i + 1,
                        (next() % 3) as i32,
                        (next() % 8) as i64 * 10,
                        ChunkState::Hot,
                    )
                })
                .collect();
            let cutoff = (next() % 100) as i64 - 5;
            let r = retention(&rows, cutoff);
            for c in &rows {
                assert_eq!(r.drops(c), c.time_hi <= cutoff, "cutoff {cutoff}: {c:?}");
            }
            for &(lo, hi) in &r.straddling {
                assert!(lo < cutoff && cutoff < hi);
            }
        }
    }
}

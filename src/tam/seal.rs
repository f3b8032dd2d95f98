//! When a hot chunk is full (pure Rust, unit-tested). Inserting backends check the
//! size of their cell's hot chunk every [`check_every`] rows; a chunk is due to seal
//! once it holds about `hot_chunk_rows` rows ([`estimate_rows`]) or has grown to
//! [`super::tid::SEAL_AT_BLOCKS`] blocks, whichever comes first.

use super::tid::SEAL_AT_BLOCKS;

/// Bytes in a page (PostgreSQL's BLCKSZ) and in its header.
const PAGE_BYTES: u32 = pgrx::pg_sys::BLCKSZ;
const PAGE_HEADER_BYTES: u32 = 24;
/// A heap tuple header, rounded to MAXALIGN, and a line pointer.
const TUPLE_HEADER_BYTES: u32 = 24;
const LINE_POINTER_BYTES: u32 = 4;

/// Rows a backend inserts into a hot chunk between size checks: an eighth of the
/// threshold, at least 1, at most 1000 (a check reads the chunk's size).
pub fn check_every(hot_chunk_rows: i64) -> u64 {
    (hot_chunk_rows.max(0) as u64 / 8).clamp(1, 1000)
}

/// Rows a hot chunk of `blocks` pages holds, estimated from the length of the tuple
/// just written: every page but the last (still filling) is full; never less than the
/// `mine` rows this backend wrote itself (exact, and what matters for small chunks).
pub fn estimate_rows(blocks: u32, tuple_len: u32, mine: u64) -> i64 {
    let per_tuple = tuple_len.max(TUPLE_HEADER_BYTES).div_ceil(8) * 8 + LINE_POINTER_BYTES;
    let per_page = ((PAGE_BYTES - PAGE_HEADER_BYTES) / per_tuple).max(1) as i64;
    (blocks.saturating_sub(1) as i64 * per_page).max(mine.min(i64::MAX as u64) as i64)
}

/// Whether a hot chunk of `blocks` pages holding about `estimate` rows is full.
pub fn due(estimate: i64, hot_chunk_rows: i64, blocks: u32) -> bool {
    estimate >= hot_chunk_rows || blocks >= SEAL_AT_BLOCKS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_every_eighth_of_the_threshold_within_1_to_1000_rows() {
        assert_eq!(check_every(1), 1);
        assert_eq!(check_every(80), 10);
        assert_eq!(check_every(1_000_000), 1000);
        assert_eq!(check_every(0), 1);
        assert_eq!(check_every(-5), 1);
    }

    #[test]
    fn the_estimate_counts_full_pages_and_never_less_than_ones_own_rows() {
        // 64-byte tuples: 64 + 4 bytes each, (8192 - 24) / 68 = 120 per page
        assert_eq!(estimate_rows(1, 64, 0), 0, "the only page is still filling");
        assert_eq!(estimate_rows(11, 64, 0), 1200);
        assert_eq!(estimate_rows(11, 64, 5000), 5000);
        assert_eq!(estimate_rows(0, 64, 7), 7);
        // tiny tuples are at least a header long; odd lengths align up to 8
        assert_eq!(estimate_rows(2, 1, 0), estimate_rows(2, 24, 0));
        assert_eq!(estimate_rows(2, 57, 0), estimate_rows(2, 64, 0));
        // huge tuples: at least one per page
        assert_eq!(estimate_rows(3, 100_000, 0), 2);
    }

    #[test]
    fn a_chunk_is_due_at_its_row_threshold_or_its_block_limit() {
        assert!(!due(999, 1000, 10));
        assert!(due(1000, 1000, 10));
        assert!(due(0, 1_000_000, SEAL_AT_BLOCKS));
        assert!(!due(0, 1_000_000, SEAL_AT_BLOCKS - 1));
    }
}

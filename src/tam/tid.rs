//! Facade TIDs: a bidim table's row identifiers encode (chunk ordinal, row in chunk).
//!
//! A chunk is a heap relation; its rows have heap TIDs (block, offset). The facade
//! exposes `block = ordinal << CHUNK_BLOCK_BITS | chunk block` with the offset
//! unchanged, so a facade TID names exactly one chunk row. A table has at most
//! [`MAX_ORDINAL`] chunks at a time; the ordinal of a dropped chunk is reused once no
//! snapshot can hold a TID of it ([`reusable`]), so a table never runs out. Pure Rust,
//! no PostgreSQL types.

/// Bits of the facade block number that hold the block inside the chunk.
pub const CHUNK_BLOCK_BITS: u32 = 18;
/// Blocks a chunk may address: 2^18 x 8 KiB = 2 GiB of heap per chunk.
pub const MAX_CHUNK_BLOCKS: u32 = 1 << CHUNK_BLOCK_BITS;
/// Largest chunk ordinal: keeps the facade block below PostgreSQL's InvalidBlockNumber.
pub const MAX_ORDINAL: u32 = (1 << (32 - CHUNK_BLOCK_BITS)) - 2;
/// Most rows in a cold chunk's batch: a cold row's TID offset is its place in its
/// batch + 1 (block = ordinal << 18 | batch number). Past heap's 2048 line pointers a
/// page (`OffsetNumberIsValid`): a facade TID is only ever read by bidim's own
/// callbacks (bidim tables take no indexes, and no bitmap or TID-range scans are
/// offered), which take any offset up to this one. 4095 fits 12 bits.
pub const MAX_BATCH_ROWS: u32 = 4095;
/// Hot chunks are sealed well before they run out of addressable blocks.
pub const SEAL_AT_BLOCKS: u32 = MAX_CHUNK_BLOCKS / 2;

/// Facade block number of `block` in chunk `ordinal`, or `None` if it cannot be encoded.
pub fn encode_block(ordinal: u32, block: u32) -> Option<u32> {
    if ordinal == 0 || ordinal > MAX_ORDINAL || block >= MAX_CHUNK_BLOCKS {
        return None;
    }
    Some((ordinal << CHUNK_BLOCK_BITS) | block)
}

/// (chunk ordinal, chunk block) of a facade block number; ordinal 0 means "no chunk".
pub fn decode_block(facade_block: u32) -> (u32, u32) {
    (
        facade_block >> CHUNK_BLOCK_BITS,
        facade_block & (MAX_CHUNK_BLOCKS - 1),
    )
}

/// The 64-bit transaction id of `xid32`, a transaction id no older than 2^31
/// transactions before `next_full` (PostgreSQL's next full transaction id): the epoch
/// of `next_full`, or the one before when `xid32` is numerically above it.
pub fn widen_xid(next_full: u64, xid32: u32) -> u64 {
    let epoch = next_full >> 32;
    let next32 = next_full as u32;
    if xid32 <= next32 || epoch == 0 {
        (epoch << 32) | xid32 as u64
    } else {
        ((epoch - 1) << 32) | xid32 as u64
    }
}

/// Whether the ordinal of a chunk dropped by transaction `freed` (committed: its row
/// is visible) may be given to a new chunk, given `horizon`, the oldest transaction id
/// any running snapshot may still consider running (PostgreSQL's oldest non-removable
/// xid), both as 64-bit ids. Every snapshot that could have seen the dropped chunk was
/// taken before `freed` committed, so its xmin is at most `freed`; once the horizon
/// has passed `freed`, no such snapshot (nor a cursor or scan holding one) is left,
/// and no TID of the old chunk can be read and followed any more.
pub fn reusable(freed: u64, horizon: u64) -> bool {
    freed < horizon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_over_the_whole_space() {
        for ordinal in [1, 2, 77, 4096, MAX_ORDINAL] {
            for block in [0, 1, 12345, MAX_CHUNK_BLOCKS - 1] {
                let b = encode_block(ordinal, block).unwrap();
                assert_ne!(b, u32::MAX, "InvalidBlockNumber must never be produced");
                assert_eq!(decode_block(b), (ordinal, block));
            }
        }
    }

    #[test]
    fn out_of_range_is_refused() {
        assert_eq!(encode_block(0, 0), None);
        assert_eq!(encode_block(MAX_ORDINAL + 1, 0), None);
        assert_eq!(encode_block(1, MAX_CHUNK_BLOCKS), None);
    }

    #[test]
    fn distinct_rows_get_distinct_tids() {
        let mut seen = std::collections::HashSet::new();
        for ordinal in 1..40 {
            for block in (0..MAX_CHUNK_BLOCKS).step_by(9973) {
                assert!(seen.insert(encode_block(ordinal, block).unwrap()));
            }
        }
    }

    #[test]
    fn widening_picks_the_epoch_of_recent_xids() {
        let next = (5u64 << 32) | 1000;
        assert_eq!(widen_xid(next, 999), (5 << 32) | 999);
        assert_eq!(widen_xid(next, 1000), (5 << 32) | 1000);
        // numerically above next: from the previous epoch (wrapped around since)
        assert_eq!(widen_xid(next, 4_000_000_000), (4 << 32) | 4_000_000_000);
        assert_eq!(widen_xid(500, 400), 400);
    }

    #[test]
    fn an_ordinal_is_reused_only_after_the_horizon_passes_its_drop() {
        assert!(
            !reusable(100, 100),
            "a snapshot with xmin = the dropper may be running"
        );
        assert!(!reusable(100, 50));
        assert!(reusable(100, 101));
        // across an epoch boundary
        let freed = widen_xid((3 << 32) | 10, u32::MAX - 5);
        let horizon = widen_xid((3 << 32) | 10, 7);
        assert!(reusable(freed, horizon));
    }
}

//! Facade TIDs: a bidim table's row identifiers encode (chunk ordinal, row in chunk).
//!
//! A chunk is a heap relation; its rows have heap TIDs (block, offset). The facade
//! exposes `block = ordinal << CHUNK_BLOCK_BITS | chunk block` with the offset
//! unchanged, so a facade TID names exactly one chunk row. Ordinals come from a
//! per-table sequence and are never reused, so a TID is never reused while the table
//! exists. Pure Rust, no PostgreSQL types.

/// Bits of the facade block number that hold the block inside the chunk.
pub const CHUNK_BLOCK_BITS: u32 = 18;
/// Blocks a chunk may address: 2^18 x 8 KiB = 2 GiB of heap per chunk.
pub const MAX_CHUNK_BLOCKS: u32 = 1 << CHUNK_BLOCK_BITS;
/// Largest chunk ordinal: keeps the facade block below PostgreSQL's InvalidBlockNumber.
pub const MAX_ORDINAL: u32 = (1 << (32 - CHUNK_BLOCK_BITS)) - 2;
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
}

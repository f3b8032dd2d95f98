//! A batch's encoded columns packed into one value, so that a batch is one TOASTed
//! value instead of one per column (each TOASTed value costs a TOAST row's header, an
//! index entry and an 18-byte pointer: about 1 byte a row on TSBS's 1000-row batches
//! of ten columns, measured).
//!
//! | bytes | |
//! |---|---|
//! | ... | the encoded columns ([`super::encode`]), one after the other |
//! | 1 | [`PACK_VERSION`] |
//! | varint | n: columns packed (the table's columns when the batch was written) |
//! | n varints | byte length of each encoded column |
//! | 4 | little-endian byte length of the directory (the three rows above) |
//!
//! The directory comes last: a batch row too big to stay whole keeps the value's last
//! bytes in the row and its first ones in TOAST (`cold.rs`), so a reader finds the
//! directory in the row and fetches from TOAST only the columns it decodes, in one
//! slice.

use super::wire::{DecodeError, Reader, Writer};

/// Version byte of a packed batch.
pub const PACK_VERSION: u8 = 1;

/// Most columns a packed batch may hold (PostgreSQL's limit on a table's columns).
pub const MAX_COLUMNS: usize = 1600;

/// Bytes of the directory's length, the value's last.
pub const LENGTH_BYTES: usize = 4;

/// Packs encoded columns.
pub fn pack(columns: &[Vec<u8>]) -> Vec<u8> {
    assert!(
        columns.len() <= MAX_COLUMNS,
        "a table has at most {MAX_COLUMNS} columns"
    );
    let mut dir = Writer::default();
    dir.byte(PACK_VERSION);
    dir.varint(columns.len() as u64);
    for c in columns {
        dir.varint(c.len() as u64);
    }
    let dir = dir.finish();
    let mut out = Vec::with_capacity(columns.iter().map(Vec::len).sum::<usize>() + dir.len() + 4);
    for c in columns {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&dir);
    out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
    out
}

/// The bytes a packed value's directory takes at its end, its length included, read
/// from the value's last [`LENGTH_BYTES`].
pub fn directory_len(last: &[u8]) -> Result<usize, DecodeError> {
    let at = last
        .len()
        .checked_sub(LENGTH_BYTES)
        .ok_or_else(|| DecodeError::new("a packed batch without its directory"))?;
    let bytes: [u8; LENGTH_BYTES] = last[at..].try_into().expect("four bytes");
    Ok(u32::from_le_bytes(bytes) as usize + LENGTH_BYTES)
}

/// Where each packed column lies in the packed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Directory {
    /// (offset from the start of the packed value, length) of each column.
    pub columns: Vec<(usize, usize)>,
}

impl Directory {
    /// Reads the directory of a packed value of `total` bytes from `end`, its last
    /// [`directory_len`] bytes (or more); every column must lie before the directory.
    pub fn parse(end: &[u8], total: usize) -> Result<Directory, DecodeError> {
        let len = directory_len(end)?;
        if len > end.len() || len > total {
            return Err(DecodeError::new(format!(
                "a packed directory of {len} bytes in a batch of {total}"
            )));
        }
        let dir = &end[end.len() - len..end.len() - LENGTH_BYTES];
        let mut r = Reader::new(dir);
        let version = r.byte()?;
        if version != PACK_VERSION {
            return Err(DecodeError::new(format!(
                "packed batch version {version} (this build reads version {PACK_VERSION})"
            )));
        }
        let data = total - len;
        let n = r.count(MAX_COLUMNS)?;
        let mut columns = Vec::with_capacity(n);
        let mut at = 0usize;
        for _ in 0..n {
            let l = r.count(data)?;
            let end = at
                .checked_add(l)
                .filter(|&e| e <= data)
                .ok_or_else(|| DecodeError::new("a packed column past the end of its batch"))?;
            columns.push((at, l));
            at = end;
        }
        if at != data || !r.rest().is_empty() {
            return Err(DecodeError::new(
                "a packed directory that does not match its columns",
            ));
        }
        Ok(Directory { columns })
    }

    /// Column `i`'s bytes in `whole`, the whole packed value.
    pub fn column<'a>(&self, whole: &'a [u8], i: usize) -> &'a [u8] {
        let (at, len) = self.columns[i];
        &whole[at..at + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden_bytes() {
        let cols = vec![vec![1u8, 2, 3], vec![], vec![9u8; 200]];
        let p = pack(&cols);
        assert_eq!(&p[203..], &[1, 3, 3, 0, 0xc8, 1, 6, 0, 0, 0]);
        let d = Directory::parse(&p, p.len()).unwrap();
        for (i, c) in cols.iter().enumerate() {
            assert_eq!(d.column(&p, i), &c[..]);
        }
        // the directory's own bytes are enough
        let dl = directory_len(&p).unwrap();
        assert_eq!(dl, 10);
        assert_eq!(Directory::parse(&p[p.len() - dl..], p.len()).unwrap(), d);
        let empty = pack(&[]);
        assert_eq!(
            Directory::parse(&empty, empty.len()).unwrap().columns,
            vec![]
        );
    }

    #[test]
    fn corrupt_directories_are_errors() {
        let p = pack(&[vec![1u8, 2, 3], vec![4u8]]);
        assert!(Directory::parse(&p, p.len() + 1).is_err(), "bytes before");
        assert!(Directory::parse(&p[1..], p.len() - 1).is_err(), "too short");
        let mut bad = p.clone();
        bad[4] = 2;
        assert!(Directory::parse(&bad, bad.len()).is_err(), "version");
        let dl = directory_len(&p).unwrap();
        assert!(
            Directory::parse(&p[p.len() - dl + 1..], p.len()).is_err(),
            "a truncated directory"
        );
        assert!(Directory::parse(&[], 0).is_err());
        // random bytes: an error or a directory within bounds, never a panic
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            if len >= 4 && seed & 1 == 0 {
                // a plausible directory length
                let l = (seed >> 40) as usize % len;
                bytes[len - 4..].copy_from_slice(&(l as u32).to_le_bytes());
            }
            if let Ok(d) = Directory::parse(&bytes, bytes.len()) {
                assert!(d.columns.iter().all(|&(a, l)| a + l <= bytes.len()));
            }
        }
    }
}

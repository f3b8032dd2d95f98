//! Booleans, packed eight to a byte (bit `i % 8` of byte `i / 8`).

use super::wire::DecodeError;
use super::{Kind, Values};

pub fn encode(values: &Values) -> Option<Vec<u8>> {
    let Values::Bool(v) = values else {
        return None;
    };
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, &b) in v.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Some(out)
}

pub fn decode(kind: Kind, n: usize, buf: &[u8]) -> Result<Values, DecodeError> {
    if kind != Kind::Bool {
        return Err(DecodeError::new(format!(
            "bits do not hold {kind:?} values"
        )));
    }
    if buf.len() != n.div_ceil(8) {
        return Err(DecodeError::new(format!(
            "{} bytes of bits for {n} booleans",
            buf.len()
        )));
    }
    Ok(Values::Bool(
        (0..n).map(|i| buf[i / 8] & (1 << (i % 8)) != 0).collect(),
    ))
}

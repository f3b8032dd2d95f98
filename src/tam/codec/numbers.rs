//! Integers and floats through pco (pcodec): it finds the best of delta orders,
//! integer multiples, float multiples and quantization per column, losslessly (floats
//! round-trip bit for bit: NaN payloads, -0.0, infinities). The issue measured it at
//! 4.67 bytes a TSBS row against zstd's 8.8 on the same values; our batches of
//! TSBS-shaped random walks take 0.45 bytes a value (docs/benchmarks.md).
//!
//! Payload: pco's standalone format (its own header and one chunk), 16-bit values
//! included. No values: an empty payload.

use super::wire::{guarded, DecodeError};
use super::{Kind, Values};
use pco::standalone::{simple_compress, simple_decompress};
use pco::ChunkConfig;

fn config() -> ChunkConfig {
    // Level 8 (pco's default) measured within 1% of the best sizes on TSBS columns at a
    // fraction of the time of the highest levels.
    ChunkConfig::default()
}

fn compress<T: pco::data_types::Number>(v: &[T]) -> Vec<u8> {
    if v.is_empty() {
        return Vec::new();
    }
    simple_compress(v, &config()).expect("pco compresses any slice of numbers")
}

/// Integers: the smaller of pco's automatic choice and its classic mode. pco 1.1's
/// automatic mode stores an arithmetic series of exactly 1000 values (a full batch
/// of one series' timestamps every 10 s) in 316 bytes where classic mode takes 36
/// (measured; 999 or 1001 values take 55 either way). Both decode the same way.
fn compress_int<T: pco::data_types::Number>(v: &[T]) -> Vec<u8> {
    let auto = compress(v);
    if v.is_empty() {
        return auto;
    }
    let classic = simple_compress(v, &config().with_mode_spec(pco::ModeSpec::Classic))
        .expect("pco compresses any slice of numbers");
    if classic.len() < auto.len() {
        classic
    } else {
        auto
    }
}

fn decompress<T: pco::data_types::Number>(n: usize, buf: &[u8]) -> Result<Vec<T>, DecodeError> {
    if n == 0 {
        return if buf.is_empty() {
            Ok(Vec::new())
        } else {
            Err(DecodeError::new("bytes after an empty numeric column"))
        };
    }
    let v = guarded("pco", || {
        simple_decompress::<T>(buf).map_err(|e| DecodeError::new(format!("pco: {e}")))
    })?;
    if v.len() != n {
        return Err(DecodeError::new(format!(
            "pco gave {} numbers, expected {n}",
            v.len()
        )));
    }
    Ok(v)
}

pub fn encode(values: &Values) -> Option<Vec<u8>> {
    Some(match values {
        Values::I16(v) => compress_int(v),
        Values::I32(v) => compress_int(v),
        Values::I64(v) => compress_int(v),
        Values::F32(v) => compress(v),
        Values::F64(v) => compress(v),
        Values::Bool(_) | Values::Bytes(_) => return None,
    })
}

/// The integers a float column holds, when every value is one that converts to an
/// `i64` and back bit for bit (no -0.0, NaN, infinity or fraction).
fn as_integers<F: Copy>(v: &[F], to: impl Fn(F) -> (i64, bool)) -> Option<Vec<i64>> {
    v.iter()
        .map(|&x| match to(x) {
            (i, true) => Some(i),
            _ => None,
        })
        .collect()
}

/// Floats that all hold integers (metrics often do: counts, percentages of whole
/// numbers) as pco integers: a fifth smaller than pco's float modes on TSBS's random
/// walks (0.36 against 0.44 bytes a value at 1000-value batches, measured). `None`
/// for other values, which the float codec takes.
pub fn encode_integral(values: &Values) -> Option<Vec<u8>> {
    let ints = match values {
        Values::F64(v) => as_integers(v, |x| {
            let i = x as i64;
            (i, (i as f64).to_bits() == x.to_bits())
        })?,
        Values::F32(v) => as_integers(v, |x| {
            let i = x as i64;
            (i, (i as f32).to_bits() == x.to_bits())
        })?,
        _ => return None,
    };
    if ints.is_empty() {
        return None;
    }
    // pco's automatic mode alone: the classic retry of [`compress_int`] is for regular
    // timestamps, and a second pass would slow every conversion down.
    Some(compress(&ints))
}

/// Decodes [`encode_integral`]'s payload into `n` floats of `kind`.
pub fn decode_integral(kind: Kind, n: usize, buf: &[u8]) -> Result<Values, DecodeError> {
    let ints: Vec<i64> = decompress(n, buf)?;
    Ok(match kind {
        Kind::F64 => Values::F64(ints.into_iter().map(|i| i as f64).collect()),
        Kind::F32 => Values::F32(ints.into_iter().map(|i| i as f32).collect()),
        _ => {
            return Err(DecodeError::new(format!(
                "integral floats are not {kind:?} values"
            )))
        }
    })
}

pub fn decode(kind: Kind, n: usize, buf: &[u8]) -> Result<Values, DecodeError> {
    Ok(match kind {
        Kind::I16 => Values::I16(decompress(n, buf)?),
        Kind::I32 => Values::I32(decompress(n, buf)?),
        Kind::I64 => Values::I64(decompress(n, buf)?),
        Kind::F32 => Values::F32(decompress(n, buf)?),
        Kind::F64 => Values::F64(decompress(n, buf)?),
        Kind::Bool | Kind::Bytes => {
            return Err(DecodeError::new(format!(
                "pco does not hold {kind:?} values"
            )))
        }
    })
}

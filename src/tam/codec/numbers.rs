//! Integers and floats through pco (pcodec): it finds the best of delta orders,
//! integer multiples, float multiples and quantization per column, losslessly (floats
//! round-trip bit for bit: NaN payloads, -0.0, infinities). The issue measured it at
//! 4.67 bytes a TSBS row against zstd's 8.8 on the same values; our batches of
//! TSBS-shaped random walks take 0.45 bytes a value (docs/benchmarks.md).
//!
//! Payload, in one of two [`Form`]s: pco's *wrapped* format (its short header, one
//! chunk's metadata and that chunk's one page: codecs `pco` and `pco-integral`,
//! written since the fifteenth session) or its *standalone* format (its own header,
//! one chunk and a footer: codecs `pco-v1` and `pco-integral-v1`, still read). The
//! wrapped form is 13 bytes a column smaller (0.013 bytes a value at 1000 values:
//! measured on TSBS columns, where pco's chunk metadata takes 0.042 and the page
//! 0.298). A column holds at most [`super::MAX_ROWS`] values, below pco's largest
//! page. No values: an empty payload.

use super::wire::{guarded, DecodeError};
use super::{Kind, Values};
use pco::standalone::{simple_compress, simple_decompress, FileCompressor};
use pco::wrapped;
use pco::ChunkConfig;

/// How a payload holds pco's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Form {
    Standalone,
    Wrapped,
}

fn config() -> ChunkConfig {
    // Level 8 (pco's default) measured within 1% of the best sizes on TSBS columns at a
    // fraction of the time of the highest levels.
    ChunkConfig::default()
}

/// One chunk of `v` in the wrapped form: pco's header, the chunk's metadata, its page.
fn wrapped_bytes(chunk: &mut wrapped::ChunkCompressor) -> Vec<u8> {
    let mut out = Vec::new();
    wrapped::FileCompressor::default()
        .write_header(&mut out)
        .expect("pco writes to a vector");
    chunk.write_meta(&mut out).expect("pco writes to a vector");
    for page in 0..chunk.n_per_page().len() {
        chunk
            .write_page(page, &mut out)
            .expect("pco writes to a vector");
    }
    out
}

fn compress_with<T: pco::data_types::Number>(v: &[T], form: Form, cfg: &ChunkConfig) -> Vec<u8> {
    if v.is_empty() {
        return Vec::new();
    }
    match form {
        Form::Standalone => simple_compress(v, cfg).expect("pco compresses any slice of numbers"),
        Form::Wrapped => wrapped_bytes(
            &mut wrapped::FileCompressor::default()
                .chunk_compressor(v, cfg)
                .expect("pco compresses any slice of numbers"),
        ),
    }
}

fn compress<T: pco::data_types::Number>(v: &[T], form: Form) -> Vec<u8> {
    compress_with(v, form, &config())
}

/// Integers: the smaller of pco's automatic choice and its classic mode. pco 1.1's
/// automatic mode stores an arithmetic series of exactly 1000 values (a full batch
/// of one series' timestamps every 10 s) in 316 bytes where classic mode takes 36
/// (measured; 999 or 1001 values take 55 either way). Both decode the same way.
/// The automatic mode of integers is integer multiples when they pay, else classic
/// mode itself: classic mode is tried only when it chose multiples (one compression
/// instead of two for most integer columns).
fn compress_int<T: pco::data_types::Number>(v: &[T], form: Form) -> Vec<u8> {
    if v.is_empty() {
        return Vec::new();
    }
    let (auto, multiples) = match form {
        Form::Standalone if v.len() <= pco::DEFAULT_MAX_PAGE_N => {
            // the bytes `simple_compress` writes for a single chunk
            let file = FileCompressor::default().with_n_hint(v.len());
            let mut auto = Vec::new();
            file.write_header(&mut auto)
                .expect("pco writes to a vector");
            let mut chunk = file
                .chunk_compressor(v, &config())
                .expect("pco compresses any slice of numbers");
            let multiples = !matches!(chunk.meta().mode, pco::metadata::Mode::Classic);
            chunk.write(&mut auto).expect("pco writes to a vector");
            file.write_footer(&mut auto)
                .expect("pco writes to a vector");
            (auto, multiples)
        }
        // several chunks: both whole
        Form::Standalone => (compress(v, form), true),
        Form::Wrapped => {
            let mut chunk = wrapped::FileCompressor::default()
                .chunk_compressor(v, &config())
                .expect("pco compresses any slice of numbers");
            let multiples = !matches!(chunk.meta().mode, pco::metadata::Mode::Classic);
            (wrapped_bytes(&mut chunk), multiples)
        }
    };
    if multiples {
        smaller(auto, || classic(v, form))
    } else {
        auto
    }
}

fn classic<T: pco::data_types::Number>(v: &[T], form: Form) -> Vec<u8> {
    compress_with(v, form, &config().with_mode_spec(pco::ModeSpec::Classic))
}

fn smaller(a: Vec<u8>, b: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let b = b();
    if b.len() < a.len() {
        b
    } else {
        a
    }
}

/// The first `k` of the `n` numbers of a wrapped payload (pco's header, one chunk,
/// one page of `n`); every byte of it used when `k == n`. pco decodes a page from its
/// start in runs of 256 numbers: a prefix costs the runs that hold it.
fn read_wrapped<T: pco::data_types::Number>(
    n: usize,
    k: usize,
    buf: &[u8],
) -> Result<Vec<T>, DecodeError> {
    let pco_err = |e: pco::errors::PcoError| DecodeError::new(format!("pco: {e}"));
    let (file, rest) = wrapped::FileDecompressor::new(buf).map_err(pco_err)?;
    let (mut chunk, rest) = file.chunk_decompressor::<T, _>(rest).map_err(pco_err)?;
    let mut page = chunk.page_decompressor(rest, n).map_err(pco_err)?;
    let m = if k >= n { n } else { k.div_ceil(RUN) * RUN }.min(n);
    let mut out = vec![T::default(); m];
    let progress = page.read(&mut out).map_err(pco_err)?;
    if progress.n_processed != m || (m == n && (!progress.finished || !page.into_src().is_empty()))
    {
        return Err(DecodeError::new(format!(
            "a pco page of other than {n} numbers, or bytes after it"
        )));
    }
    out.truncate(k.min(n));
    Ok(out)
}

/// pco decodes numbers in runs of this many (its FULL_BATCH_N).
const RUN: usize = 256;

#[cfg(test)]
fn decompress<T: pco::data_types::Number>(
    n: usize,
    buf: &[u8],
    form: Form,
) -> Result<Vec<T>, DecodeError> {
    decompress_prefix(n, n, buf, form)
}

/// The first `k` (at most `n`) of the `n` numbers of a payload.
fn decompress_prefix<T: pco::data_types::Number>(
    n: usize,
    k: usize,
    buf: &[u8],
    form: Form,
) -> Result<Vec<T>, DecodeError> {
    if n == 0 {
        return if buf.is_empty() {
            Ok(Vec::new())
        } else {
            Err(DecodeError::new("bytes after an empty numeric column"))
        };
    }
    if k == 0 && form == Form::Wrapped {
        return Ok(Vec::new());
    }
    let mut v = guarded("pco", || match form {
        Form::Standalone => {
            simple_decompress::<T>(buf).map_err(|e| DecodeError::new(format!("pco: {e}")))
        }
        Form::Wrapped => read_wrapped::<T>(n, k, buf),
    })?;
    let expected = if form == Form::Wrapped { k.min(n) } else { n };
    if v.len() != expected {
        return Err(DecodeError::new(format!(
            "pco gave {} numbers, expected {expected}",
            v.len()
        )));
    }
    v.truncate(k);
    Ok(v)
}

pub fn encode(values: &Values, form: Form) -> Option<Vec<u8>> {
    Some(match values {
        Values::I16(v) => compress_int(v, form),
        Values::I32(v) => compress_int(v, form),
        Values::I64(v) => compress_int(v, form),
        Values::F32(v) => compress(v, form),
        Values::F64(v) => compress(v, form),
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
pub fn encode_integral(values: &Values, form: Form) -> Option<Vec<u8>> {
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
    Some(compress(&ints, form))
}

/// The first `k` of the `n` floats of `kind` of [`encode_integral`]'s payload (all of
/// them: `k == n`).
pub fn decode_integral_prefix(
    kind: Kind,
    n: usize,
    k: usize,
    buf: &[u8],
    form: Form,
) -> Result<Values, DecodeError> {
    let ints: Vec<i64> = decompress_prefix(n, k, buf, form)?;
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

/// The first `k` of the `n` numbers of [`encode`]'s payload (all of them: `k == n`).
pub fn decode_prefix(
    kind: Kind,
    n: usize,
    k: usize,
    buf: &[u8],
    form: Form,
) -> Result<Values, DecodeError> {
    Ok(match kind {
        Kind::I16 => Values::I16(decompress_prefix(n, k, buf, form)?),
        Kind::I32 => Values::I32(decompress_prefix(n, k, buf, form)?),
        Kind::I64 => Values::I64(decompress_prefix(n, k, buf, form)?),
        Kind::F32 => Values::F32(decompress_prefix(n, k, buf, form)?),
        Kind::F64 => Values::F64(decompress_prefix(n, k, buf, form)?),
        Kind::Bool | Kind::Bytes => {
            return Err(DecodeError::new(format!(
                "pco does not hold {kind:?} values"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Integers compressed once (classic mode chosen) or twice give exactly the bytes
    /// of the smaller of `simple_compress`'s automatic and classic outputs.
    #[test]
    fn one_compression_gives_the_bytes_of_the_smaller_of_two() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut columns: Vec<Vec<i64>> = Vec::new();
        for n in [1usize, 2, 7, 999, 1000, 1001] {
            // random walk, arithmetic series (timestamps every 10 s), multiples of a
            // base with noise, uniform values
            let mut w = 50i64;
            columns.push(
                (0..n)
                    .map(|_| {
                        w += (next() % 5) as i64 - 2;
                        w
                    })
                    .collect(),
            );
            columns.push(
                (0..n as i64)
                    .map(|i| 1_451_606_400_000_000 + i * 10_000_000)
                    .collect(),
            );
            columns.push(
                (0..n)
                    .map(|_| (next() % 1000) as i64 * 1_000_000 + (next() % 3) as i64)
                    .collect(),
            );
            columns.push((0..n).map(|_| next() as i64).collect());
        }
        for v in &columns {
            let auto = simple_compress(v, &config()).unwrap();
            let expected = smaller(auto, || classic(v, Form::Standalone));
            assert_eq!(
                compress_int(v, Form::Standalone),
                expected,
                "{} values",
                v.len()
            );
            let auto = compress(v, Form::Wrapped);
            let expected = smaller(auto, || classic(v, Form::Wrapped));
            assert_eq!(
                compress_int(v, Form::Wrapped),
                expected,
                "{} values",
                v.len()
            );
            // the wrapped form: the same numbers, 13 bytes fewer
            let d: Vec<i64> = decompress(v.len(), &expected, Form::Wrapped).unwrap();
            assert_eq!(&d, v);
            assert!(expected.len() < compress_int(v, Form::Standalone).len());
        }
    }
}

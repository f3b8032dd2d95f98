//! Column codecs of cold chunks: one column of one batch to bytes and back. Pure Rust,
//! no PostgreSQL (the shell in `cold.rs` maps PostgreSQL types to [`Values`]).
//!
//! One versioned format for every column (all integers little-endian, counts LEB128):
//!
//! | bytes | |
//! |---|---|
//! | 1 | [`FORMAT_VERSION`] |
//! | 1 | [`Kind`] of the values |
//! | 1 | codec id (the [`CODECS`] table) |
//! | varint | rows |
//! | varint | NULLs; when above 0, a bitmap of `rows` bits follows (bit set: NULL) |
//! | rest | the codec's payload over the non-NULL values, in row order |
//!
//! Codecs, one file each behind the [`CODECS`] table: [`numbers`] (pco, for every
//! integer and float kind, and for floats that all hold integers, as integers),
//! [`bits`] (booleans, packed), [`bytes`] (dictionary when a
//! batch has few distinct values, else zstd), and "all NULL" (no payload). Decoding
//! never trusts its input: truncated, corrupt or random bytes give a [`DecodeError`],
//! never a panic (the third-party decoders run under `catch_unwind` as a last guard).

pub mod bits;
pub mod bytes;
pub mod numbers;
pub mod pack;
mod wire;

#[cfg(test)]
mod tests;

use numbers::Form;
pub use wire::DecodeError;
use wire::{Reader, Writer};

/// Version byte of every encoded column.
pub const FORMAT_VERSION: u8 = 1;

/// Most rows one encoded column may hold (a batch holds far fewer; the bound keeps a
/// corrupt header from asking for a huge allocation).
pub const MAX_ROWS: usize = 1 << 16;

/// Most bytes the values of one encoded column may take once decoded: a varlena is at
/// most 1 GiB, and a batch of large values is cut well before this.
pub const MAX_DECODED_BYTES: usize = (1 << 30) + (1 << 20);

/// The kind of values a column holds (PostgreSQL types map to one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Bool = 0,
    I16 = 1,
    I32 = 2,
    I64 = 3,
    F32 = 4,
    F64 = 5,
    Bytes = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        [
            Kind::Bool,
            Kind::I16,
            Kind::I32,
            Kind::I64,
            Kind::F32,
            Kind::F64,
            Kind::Bytes,
        ]
        .get(b as usize)
        .copied()
    }
}

/// Variable-length values: value `i` is `data[ends[i - 1]..ends[i]]` (from 0 for the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteValues {
    pub data: Vec<u8>,
    pub ends: Vec<u32>,
}

impl ByteValues {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Value `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }

    /// Appends one value (callers cut batches long before 4 GiB).
    pub fn push(&mut self, v: &[u8]) {
        self.data.extend_from_slice(v);
        self.ends.push(self.data.len() as u32);
    }
}

/// The non-NULL values of a column, in row order.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Bool(Vec<bool>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(ByteValues),
}

impl Values {
    pub fn kind(&self) -> Kind {
        match self {
            Values::Bool(_) => Kind::Bool,
            Values::I16(_) => Kind::I16,
            Values::I32(_) => Kind::I32,
            Values::I64(_) => Kind::I64,
            Values::F32(_) => Kind::F32,
            Values::F64(_) => Kind::F64,
            Values::Bytes(_) => Kind::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::I16(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values `at..` as values of their own; `self` keeps `..at`.
    pub fn split_off(&mut self, at: usize) -> Values {
        match self {
            Values::Bool(v) => Values::Bool(v.split_off(at)),
            Values::I16(v) => Values::I16(v.split_off(at)),
            Values::I32(v) => Values::I32(v.split_off(at)),
            Values::I64(v) => Values::I64(v.split_off(at)),
            Values::F32(v) => Values::F32(v.split_off(at)),
            Values::F64(v) => Values::F64(v.split_off(at)),
            Values::Bytes(b) => {
                let mut rest = ByteValues::default();
                for i in at..b.len() {
                    rest.push(b.get(i));
                }
                let cut = if at == 0 { 0 } else { b.ends[at - 1] as usize };
                b.data.truncate(cut);
                b.ends.truncate(at);
                Values::Bytes(rest)
            }
        }
    }

    /// No values of `kind`.
    pub fn empty(kind: Kind) -> Values {
        match kind {
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::I16 => Values::I16(Vec::new()),
            Kind::I32 => Values::I32(Vec::new()),
            Kind::I64 => Values::I64(Vec::new()),
            Kind::F32 => Values::F32(Vec::new()),
            Kind::F64 => Values::F64(Vec::new()),
            Kind::Bytes => Values::Bytes(ByteValues::default()),
        }
    }
}

/// One column of one batch: `rows` rows, NULLs marked in `nulls` (bit `i` set: row `i`
/// is NULL; `None`: no NULL), the other rows' values in `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub rows: usize,
    pub nulls: Option<Vec<u8>>,
    pub values: Values,
}

impl Column {
    /// Whether row `i` is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        self.nulls
            .as_ref()
            .is_some_and(|b| b[i / 8] & (1 << (i % 8)) != 0)
    }

    /// A column of `values` with no NULL.
    pub fn without_nulls(values: Values) -> Column {
        Column {
            rows: values.len(),
            nulls: None,
            values,
        }
    }
}

/// Decodes the first `k` of the `n` values of `kind` in a payload.
pub type PrefixFn = fn(Kind, usize, usize, &[u8]) -> Result<Values, DecodeError>;

/// One codec: its id in the format, its name (statistics, docs), and its two halves.
pub struct CodecDef {
    pub id: u8,
    pub name: &'static str,
    /// Encodes the values (of a kind the codec takes), or `None` if it does not take them.
    pub encode: fn(&Values) -> Option<Vec<u8>>,
    /// Decodes `n` values of `kind` from a payload.
    pub decode: fn(Kind, usize, &[u8]) -> Result<Values, DecodeError>,
    /// Decodes the first `k` of the `n` values of a payload for less than all of them
    /// (`None`: the codec decodes all, and the rest are dropped).
    pub prefix: Option<PrefixFn>,
}

/// Every codec, by id. The encoder tries them in [`PREFERENCE`] order and takes the
/// first that takes the values (among those for variable-length values, the
/// dictionary takes them only when it pays off).
pub const CODECS: [CodecDef; 8] = [
    CodecDef {
        id: 0,
        name: "null",
        encode: |v| v.is_empty().then(Vec::new),
        decode: |kind, n, _| {
            if n == 0 {
                Ok(Values::empty(kind))
            } else {
                Err(DecodeError::new("values in an all-NULL column"))
            }
        },
        prefix: None,
    },
    CodecDef {
        id: 1,
        name: "pco-v1",
        encode: |v| numbers::encode(v, Form::Standalone),
        decode: |k, n, b| numbers::decode_prefix(k, n, n, b, Form::Standalone),
        prefix: None,
    },
    CodecDef {
        id: 2,
        name: "bits",
        encode: bits::encode,
        decode: bits::decode,
        prefix: None,
    },
    CodecDef {
        id: 3,
        name: "dictionary",
        encode: bytes::encode_dictionary,
        decode: bytes::decode_dictionary,
        prefix: None,
    },
    CodecDef {
        id: 4,
        name: "zstd",
        encode: bytes::encode_zstd,
        decode: bytes::decode_zstd,
        prefix: None,
    },
    CodecDef {
        id: 5,
        name: "pco-integral-v1",
        encode: |v| numbers::encode_integral(v, Form::Standalone),
        decode: |k, n, b| numbers::decode_integral_prefix(k, n, n, b, Form::Standalone),
        prefix: None,
    },
    CodecDef {
        id: 6,
        name: "pco",
        encode: |v| numbers::encode(v, Form::Wrapped),
        decode: |k, n, b| numbers::decode_prefix(k, n, n, b, Form::Wrapped),
        prefix: Some(|kind, n, k, b| numbers::decode_prefix(kind, n, k, b, Form::Wrapped)),
    },
    CodecDef {
        id: 7,
        name: "pco-integral",
        encode: |v| numbers::encode_integral(v, Form::Wrapped),
        decode: |k, n, b| numbers::decode_integral_prefix(k, n, n, b, Form::Wrapped),
        prefix: Some(|kind, n, k, b| numbers::decode_integral_prefix(kind, n, k, b, Form::Wrapped)),
    },
];

/// The order the encoder tries the codecs in (ids): integral floats before floats.
/// Codecs 1 and 5 (pco's standalone form, written before codecs 6 and 7 took their
/// place) are read, no longer written.
const PREFERENCE: [usize; 6] = [0, 7, 6, 2, 3, 4];

/// Name of codec `id` as stored in an encoded column.
pub fn codec_name(encoded: &[u8]) -> Option<&'static str> {
    CODECS.get(*encoded.get(2)? as usize).map(|c| c.name)
}

/// Encodes one column.
pub fn encode(col: &Column) -> Vec<u8> {
    assert!(
        col.rows <= MAX_ROWS,
        "a batch column holds at most {MAX_ROWS} rows"
    );
    let nnull = col.rows - col.values.len();
    let payload = PREFERENCE
        .iter()
        .map(|&id| &CODECS[id])
        .find_map(|c| (c.encode)(&col.values).map(|p| (c.id, p)))
        .expect("every kind of values has a codec");
    let mut w = Writer::default();
    w.byte(FORMAT_VERSION);
    w.byte(col.values.kind() as u8);
    w.byte(payload.0);
    w.varint(col.rows as u64);
    w.varint(nnull as u64);
    if nnull > 0 {
        let bitmap = col.nulls.as_ref().expect("NULLs are marked in the bitmap");
        w.bytes(&bitmap[..col.rows.div_ceil(8)]);
    }
    w.bytes(&payload.1);
    w.finish()
}

/// Decodes one column, checking everything it reads.
pub fn decode(buf: &[u8]) -> Result<Column, DecodeError> {
    decode_prefix(buf, MAX_ROWS).map(|(c, _)| c)
}

/// Decodes the first `upto` rows of one column (all of them when it has fewer), and
/// says how many rows the column has: a scan that wants no row past `upto` (rows are
/// in time order within a batch) decodes less of a long batch. Checks everything it
/// reads.
pub fn decode_prefix(buf: &[u8], upto: usize) -> Result<(Column, usize), DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.byte()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::new(format!(
            "format version {version} (this build reads version {FORMAT_VERSION})"
        )));
    }
    let kind_byte = r.byte()?;
    let kind = Kind::from_u8(kind_byte)
        .ok_or_else(|| DecodeError::new(format!("unknown value kind {kind_byte}")))?;
    let codec_id = r.byte()?;
    let codec = CODECS
        .get(codec_id as usize)
        .ok_or_else(|| DecodeError::new(format!("unknown codec {codec_id}")))?;
    let rows = r.count(MAX_ROWS)?;
    let nnull = r.count(rows)?;
    let null = |bitmap: &[u8], i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
    let nulls = if nnull > 0 {
        let bitmap = r.take(rows.div_ceil(8))?.to_vec();
        let marked: usize = (0..rows).filter(|&i| null(&bitmap, i)).count();
        if marked != nnull {
            return Err(DecodeError::new(format!(
                "the NULL bitmap marks {marked} rows, the header says {nnull}"
            )));
        }
        Some(bitmap)
    } else {
        None
    };
    let n = rows - nnull;
    let keep = upto.min(rows);
    let k = match &nulls {
        Some(b) => (0..keep).filter(|&i| !null(b, i)).count(),
        None => keep,
    };
    let mut values = match codec.prefix {
        Some(prefix) if k < n => prefix(kind, n, k, r.rest())?,
        _ => (codec.decode)(kind, n, r.rest())?,
    };
    let expected = if codec.prefix.is_some() && k < n {
        k
    } else {
        n
    };
    if values.len() != expected || values.kind() != kind {
        return Err(DecodeError::new(format!(
            "codec {} gave {} values of kind {:?}, expected {expected} of {kind:?}",
            codec.name,
            values.len(),
            values.kind(),
        )));
    }
    if values.len() > k {
        values.split_off(k);
    }
    let nulls = nulls.map(|mut b| {
        b.truncate(keep.div_ceil(8));
        if !keep.is_multiple_of(8) {
            if let Some(last) = b.last_mut() {
                *last &= (1u8 << (keep % 8)) - 1;
            }
        }
        b
    });
    Ok((
        Column {
            rows: keep,
            nulls: nulls.filter(|b| b.iter().any(|&x| x != 0)),
            values,
        },
        rows,
    ))
}

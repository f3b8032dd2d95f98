//! Variable-length values (text, bytea, arrays, jsonb, numeric, every type without a
//! codec of its own): a dictionary when a batch holds few distinct values (a tag, a
//! host name, an enum label), else zstd over the lengths and the bytes.
//!
//! zstd payload: varint raw length, then one zstd frame of the raw form (varint length
//! of every value, then their bytes). Dictionary payload: varint length of the encoded
//! distinct values (a zstd payload), those bytes, then the pco-encoded u32 index of
//! every value into them.

use super::wire::{guarded, DecodeError, Reader, Writer};
use super::{numbers, ByteValues, Kind, Values, MAX_DECODED_BYTES};
use std::collections::HashMap;

/// zstd level: 3 (zstd's default) measured within a few percent of level 9's size on
/// text columns, several times faster to write.
const ZSTD_LEVEL: i32 = 3;

fn zstd_of(v: &ByteValues) -> Vec<u8> {
    let mut raw = Writer::default();
    let mut start = 0u32;
    for &end in &v.ends {
        raw.varint((end - start) as u64);
        start = end;
    }
    raw.bytes(&v.data);
    let raw = raw.finish();
    let mut w = Writer::default();
    w.varint(raw.len() as u64);
    w.bytes(&zstd::bulk::compress(&raw, ZSTD_LEVEL).expect("zstd compresses any bytes"));
    w.finish()
}

fn values_of_zstd(n: usize, buf: &[u8]) -> Result<ByteValues, DecodeError> {
    let mut r = Reader::new(buf);
    let raw_len = r.count(MAX_DECODED_BYTES)?;
    let frame = r.rest();
    let raw = guarded("zstd", || {
        zstd::bulk::decompress(frame, raw_len).map_err(|e| DecodeError::new(format!("zstd: {e}")))
    })?;
    if raw.len() != raw_len {
        return Err(DecodeError::new(format!(
            "zstd gave {} bytes, expected {raw_len}",
            raw.len()
        )));
    }
    let mut r = Reader::new(&raw);
    let mut ends = Vec::with_capacity(n.min(raw_len));
    let mut total = 0usize;
    for _ in 0..n {
        total = total
            .checked_add(r.count(raw_len)?)
            .filter(|&t| t <= raw_len)
            .ok_or_else(|| DecodeError::new("value lengths exceed the bytes"))?;
        ends.push(total as u32);
    }
    let data = r.rest();
    if data.len() != total {
        return Err(DecodeError::new(format!(
            "{} bytes of values, the lengths add up to {total}",
            data.len()
        )));
    }
    Ok(ByteValues {
        data: data.to_vec(),
        ends,
    })
}

pub fn encode_zstd(values: &Values) -> Option<Vec<u8>> {
    let Values::Bytes(v) = values else {
        return None;
    };
    Some(zstd_of(v))
}

pub fn decode_zstd(kind: Kind, n: usize, buf: &[u8]) -> Result<Values, DecodeError> {
    if kind != Kind::Bytes {
        return Err(DecodeError::new(format!(
            "zstd does not hold {kind:?} values"
        )));
    }
    Ok(Values::Bytes(values_of_zstd(n, buf)?))
}

/// A dictionary when at most half the values are distinct (and there are at least two
/// values); `None` otherwise, so the encoder moves on to plain zstd.
pub fn encode_dictionary(values: &Values) -> Option<Vec<u8>> {
    let Values::Bytes(v) = values else {
        return None;
    };
    if v.len() < 2 {
        return None;
    }
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let mut distinct = ByteValues::default();
    let mut index = Vec::with_capacity(v.len());
    for i in 0..v.len() {
        let value = v.get(i);
        let next = ids.len() as u32;
        let id = *ids.entry(value).or_insert_with(|| {
            distinct.push(value);
            next
        });
        if ids.len() * 2 > v.len() {
            return None;
        }
        index.push(id as i32);
    }
    let dict = zstd_of(&distinct);
    let mut w = Writer::default();
    w.varint(distinct.len() as u64);
    w.varint(dict.len() as u64);
    w.bytes(&dict);
    w.bytes(
        &numbers::encode(&Values::I32(index), numbers::Form::Standalone)
            .expect("pco takes integers"),
    );
    Some(w.finish())
}

pub fn decode_dictionary(kind: Kind, n: usize, buf: &[u8]) -> Result<Values, DecodeError> {
    if kind != Kind::Bytes {
        return Err(DecodeError::new(format!(
            "a dictionary does not hold {kind:?} values"
        )));
    }
    let mut r = Reader::new(buf);
    let ndistinct = r.count(n)?;
    let dict_len = r.count(buf.len())?;
    let distinct = values_of_zstd(ndistinct, r.take(dict_len)?)?;
    let Values::I32(index) =
        numbers::decode_prefix(Kind::I32, n, n, r.rest(), numbers::Form::Standalone)?
    else {
        unreachable!("numbers::decode_prefix gives the kind it is asked for")
    };
    let mut out = ByteValues::default();
    for id in index {
        if id < 0 || id as usize >= ndistinct {
            return Err(DecodeError::new(format!(
                "dictionary index {id} out of {ndistinct} values"
            )));
        }
        if out.data.len() + distinct.get(id as usize).len() > MAX_DECODED_BYTES {
            return Err(DecodeError::new(
                "a dictionary column decodes past the size limit",
            ));
        }
        out.push(distinct.get(id as usize));
    }
    Ok(Values::Bytes(out))
}

//! The one binary format of a ddsketch (disk, send/recv, aggregate state) and its
//! JSON text form. Pure Rust.
//!
//! Binary, version 1: byte 0 is the version (1), byte 1 the flags (bit 0: the positive
//! store has collapsed, bit 1: the negative one), then the bincode (varint integers,
//! little endian) encoding of [`Wire`]: alpha, max_buckets, zero count, sum, min, max,
//! the collapse floors, and each store's non-empty bins as the first index followed by
//! (index delta, count) pairs. The total count is not stored: it is the bins' sum.
//! A typical bin takes 2 to 4 bytes.

use super::core::{Sketch, SketchError};
use bincode::Options;
use serde::{Deserialize, Serialize};

pub const VERSION: u8 = 1;
const FLAG_POS_COLLAPSED: u8 = 1;
const FLAG_NEG_COLLAPSED: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_POS_COLLAPSED | FLAG_NEG_COLLAPSED;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Bins {
    first: i32,
    /// (index - previous index, count) for every bin after the first; the first bin's
    /// count is `rest`'s leading entry with delta 0.
    rest: Vec<(u32, u64)>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Wire {
    alpha: f64,
    max_buckets: u32,
    zero: u64,
    sum: f64,
    min: f64,
    max: f64,
    positive_floor: i32,
    negative_floor: i32,
    positive: Bins,
    negative: Bins,
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limit as u64)
}

fn to_bins(bins: impl Iterator<Item = (i32, u64)>) -> Bins {
    let mut out = Bins {
        first: 0,
        rest: Vec::new(),
    };
    let mut prev: Option<i32> = None;
    for (i, c) in bins {
        match prev {
            None => {
                out.first = i;
                out.rest.push((0, c));
            }
            Some(p) => out.rest.push(((i as i64 - p as i64) as u32, c)),
        }
        prev = Some(i);
    }
    out
}

fn from_bins(b: &Bins) -> Result<Vec<(i32, u64)>, SketchError> {
    let mut out = Vec::with_capacity(b.rest.len());
    let mut index = b.first as i64;
    for (n, &(delta, count)) in b.rest.iter().enumerate() {
        if n == 0 && delta != 0 {
            return Err(SketchError::Corrupt(
                "the first bin must have delta 0".into(),
            ));
        }
        if n > 0 && delta == 0 {
            return Err(SketchError::Corrupt("bin indexes repeat".into()));
        }
        index += delta as i64;
        if index > i32::MAX as i64 {
            return Err(SketchError::Corrupt("bin index out of range".into()));
        }
        out.push((index as i32, count));
    }
    Ok(out)
}

/// Encodes a sketch in the version 1 binary format.
pub fn encode(s: &Sketch) -> Vec<u8> {
    let mut flags = 0;
    if s.positive().collapsed_below().is_some() {
        flags |= FLAG_POS_COLLAPSED;
    }
    if s.negative().collapsed_below().is_some() {
        flags |= FLAG_NEG_COLLAPSED;
    }
    let wire = Wire {
        alpha: s.alpha(),
        max_buckets: s.max_buckets(),
        zero: s.zero_count(),
        sum: s.sum(),
        min: s.min().unwrap_or(f64::INFINITY),
        max: s.max().unwrap_or(f64::NEG_INFINITY),
        positive_floor: s.positive().collapsed_below().unwrap_or(0),
        negative_floor: s.negative().collapsed_below().unwrap_or(0),
        positive: to_bins(s.positive().bins()),
        negative: to_bins(s.negative().bins()),
    };
    let mut out = vec![VERSION, flags];
    out.extend(
        options(usize::MAX)
            .serialize(&wire)
            .expect("serializing to memory cannot fail"),
    );
    out
}

/// Decodes (and validates) a sketch from its binary format.
pub fn decode(bytes: &[u8]) -> Result<Sketch, SketchError> {
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| SketchError::Corrupt("empty input".into()))?;
    if version != VERSION {
        return Err(SketchError::Corrupt(format!(
            "unknown format version {version}"
        )));
    }
    let (&flags, body) = rest
        .split_first()
        .ok_or_else(|| SketchError::Corrupt("truncated header".into()))?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(SketchError::Corrupt(format!("unknown flags {flags:#x}")));
    }
    // The limit keeps a corrupt length prefix from allocating more than the input.
    let wire: Wire = options(body.len().max(64))
        .deserialize(body)
        .map_err(|e| SketchError::Corrupt(e.to_string()))?;
    let pos = from_bins(&wire.positive)?;
    let neg = from_bins(&wire.negative)?;
    let count = pos
        .iter()
        .chain(neg.iter())
        .try_fold(wire.zero, |acc, &(_, c)| acc.checked_add(c))
        .ok_or(SketchError::Overflow)?;
    let floor = |flag: u8, f: i32| (flags & flag != 0).then_some(f);
    let (min, max) = if count == 0 {
        (0.0, 0.0)
    } else {
        (wire.min, wire.max)
    };
    Sketch::from_parts(
        wire.alpha,
        wire.max_buckets as i64,
        (&pos, floor(FLAG_POS_COLLAPSED, wire.positive_floor)),
        (&neg, floor(FLAG_NEG_COLLAPSED, wire.negative_floor)),
        wire.zero,
        count,
        if count == 0 { 0.0 } else { wire.sum },
        min,
        max,
    )
}

/// The JSON text form (lossless: floats print in their shortest round-trip form).
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Text {
    alpha: f64,
    max_buckets: u32,
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    zero: u64,
    positive: Vec<(i32, u64)>,
    negative: Vec<(i32, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    positive_collapsed_below: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    negative_collapsed_below: Option<i32>,
}

pub fn to_json(s: &Sketch) -> String {
    let t = Text {
        alpha: s.alpha(),
        max_buckets: s.max_buckets(),
        count: s.count(),
        sum: s.sum(),
        min: s.min(),
        max: s.max(),
        zero: s.zero_count(),
        positive: s.positive().bins().collect(),
        negative: s.negative().bins().collect(),
        positive_collapsed_below: s.positive().collapsed_below(),
        negative_collapsed_below: s.negative().collapsed_below(),
    };
    serde_json::to_string(&t).expect("serializing to a string cannot fail")
}

pub fn from_json(text: &str) -> Result<Sketch, SketchError> {
    let t: Text = serde_json::from_str(text).map_err(|e| SketchError::Corrupt(e.to_string()))?;
    if t.count == 0 && (t.min.is_some() || t.max.is_some()) {
        return Err(SketchError::Corrupt(
            "an empty sketch has no min or max".into(),
        ));
    }
    if t.count > 0 && (t.min.is_none() || t.max.is_none()) {
        return Err(SketchError::Corrupt(
            "min and max are required when count > 0".into(),
        ));
    }
    Sketch::from_parts(
        t.alpha,
        t.max_buckets as i64,
        (&t.positive, t.positive_collapsed_below),
        (&t.negative, t.negative_collapsed_below),
        t.zero,
        t.count,
        t.sum,
        t.min.unwrap_or(0.0),
        t.max.unwrap_or(0.0),
    )
}

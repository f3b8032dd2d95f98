//! Request bodies: snappy (block format) then protobuf, with limits checked before
//! anything large is allocated. Pure.

use crate::labels::LabelSet;
use crate::pgtypes::Millis;
use crate::proto::{MetricMetadata, ReadRequest, Sample, WriteRequest};
use prost::Message;

/// Why a body was refused; each maps to a 4xx status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// 400: not snappy, not protobuf, invalid labels.
    Bad(String),
    /// 413: larger than the configured limits.
    TooLarge(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Bad(m) | BodyError::TooLarge(m) => f.write_str(m),
        }
    }
}

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest decompressed body, bytes.
    pub max_decoded_bytes: usize,
    /// Most series in one write request.
    pub max_series: usize,
    /// Most samples in one write request.
    pub max_samples: usize,
}

/// Decompresses a snappy block, refusing one that claims more than the limit.
pub fn unsnappy(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let n = snap::raw::decompress_len(body)
        .map_err(|e| BodyError::Bad(format!("body is not snappy-compressed: {e}")))?;
    if n > limit {
        return Err(BodyError::TooLarge(format!(
            "body decompresses to {n} bytes, more than the limit of {limit}"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| BodyError::Bad(format!("body is not valid snappy: {e}")))
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// How many times top-level field `field` occurs in a protobuf message, by walking its
/// tags without decoding anything; None if the message is truncated or malformed.
pub fn count_field(b: &[u8], field: u64) -> Option<usize> {
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        if key >> 3 == field {
            n += 1;
        }
        match key & 7 {
            0 => {
                varint(b, &mut i)?;
            }
            1 => i = i.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                i = i.checked_add(len)?;
            }
            5 => i = i.checked_add(4)?,
            _ => return None,
        }
        if i > b.len() {
            return None;
        }
    }
    Some(n)
}

/// One series of a write request, checked.
#[derive(Debug)]
pub struct SeriesSamples {
    pub labels: LabelSet,
    pub samples: Vec<Sample>,
}

/// A write request, checked, with what is not stored counted.
#[derive(Debug, Default)]
pub struct Write {
    pub series: Vec<SeriesSamples>,
    pub metadata: Vec<MetricMetadata>,
    pub samples: usize,
    pub exemplars_ignored: usize,
    pub histograms_ignored: usize,
    /// A 128-bit digest of the decompressed body: a retried request has the same one.
    pub digest: u128,
}

/// Decodes a remote_write body (snappy + protobuf `WriteRequest`).
pub fn decode_write(body: &[u8], limits: Limits) -> Result<Write, BodyError> {
    let raw = unsnappy(body, limits.max_decoded_bytes)?;
    let digest = xxhash_rust::xxh3::xxh3_128(&raw);
    // Count the series before decoding them: a million tiny series would take many
    // times the body's size once decoded.
    let n = count_field(&raw, 1).ok_or_else(|| {
        BodyError::Bad("body is not a remote_write WriteRequest: truncated protobuf".into())
    })?;
    if n > limits.max_series {
        return Err(BodyError::TooLarge(format!(
            "request has {n} series, more than the limit of {}",
            limits.max_series
        )));
    }
    let req = WriteRequest::decode(raw.as_slice())
        .map_err(|e| BodyError::Bad(format!("body is not a remote_write WriteRequest: {e}")))?;
    drop(raw);
    if req.timeseries.len() > limits.max_series {
        return Err(BodyError::TooLarge(format!(
            "request has {} series, more than the limit of {}",
            req.timeseries.len(),
            limits.max_series
        )));
    }
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    if samples > limits.max_samples {
        return Err(BodyError::TooLarge(format!(
            "request has {samples} samples, more than the limit of {}",
            limits.max_samples
        )));
    }
    let mut w = Write {
        samples,
        digest,
        ..Write::default()
    };
    w.series.reserve(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        w.exemplars_ignored += ts.exemplars.len();
        w.histograms_ignored += ts.histograms.len();
        if ts.samples.is_empty() {
            continue;
        }
        let labels = LabelSet::from_proto(ts.labels)
            .map_err(|e| BodyError::Bad(format!("series {}: {e}", i + 1)))?;
        if let Some(p) = ts.samples.iter().find(|p| !Millis::in_range(p.timestamp)) {
            return Err(BodyError::Bad(format!(
                "series {}: sample timestamp {} ms is outside PostgreSQL's timestamptz range",
                i + 1,
                p.timestamp
            )));
        }
        w.series.push(SeriesSamples {
            labels,
            samples: ts.samples,
        });
    }
    w.metadata = req
        .metadata
        .into_iter()
        .filter(|m| !m.metric_family_name.is_empty())
        .collect();
    Ok(w)
}

/// Decodes a remote_read body (snappy + protobuf `ReadRequest`).
pub fn decode_read(body: &[u8], limit: usize) -> Result<ReadRequest, BodyError> {
    let raw = unsnappy(body, limit)?;
    ReadRequest::decode(raw.as_slice())
        .map_err(|e| BodyError::Bad(format!("body is not a remote_read ReadRequest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Label, TimeSeries};

    const LIMITS: Limits = Limits {
        max_decoded_bytes: 1 << 20,
        max_series: 100,
        max_samples: 1000,
    };

    fn body(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn series(name: &str, n: usize) -> TimeSeries {
        TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: name.into(),
            }],
            samples: (0..n)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp: i as i64,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn good_requests_decode_with_a_stable_digest() {
        let req = WriteRequest {
            timeseries: vec![series("a", 3), series("b", 0)],
            metadata: vec![],
        };
        let w = decode_write(&body(&req), LIMITS).unwrap();
        assert_eq!(w.series.len(), 1);
        assert_eq!(w.samples, 3);
        assert_eq!(w.digest, decode_write(&body(&req), LIMITS).unwrap().digest);
    }

    #[test]
    fn fields_are_counted_without_decoding() {
        let req = WriteRequest {
            timeseries: (0..5).map(|i| series(&format!("m{i}"), 2)).collect(),
            metadata: vec![],
        };
        let raw = req.encode_to_vec();
        assert_eq!(count_field(&raw, 1), Some(5));
        assert_eq!(count_field(&raw[..raw.len() - 1], 1), None);
        assert_eq!(count_field(b"", 1), Some(0));
        assert_eq!(count_field(b"\x0f", 1), None);
    }

    #[test]
    fn bad_bodies_are_refused_with_the_reason() {
        let e = |b: &[u8]| decode_write(b, LIMITS).unwrap_err();
        assert!(matches!(e(b""), BodyError::Bad(_)));
        assert!(e(b"\xff\xff\xff\xff\xff\xff")
            .to_string()
            .contains("snappy"));
        // Valid snappy, not protobuf.
        let junk = snap::raw::Encoder::new()
            .compress_vec(b"\xff\xff\xff")
            .unwrap();
        assert!(e(&junk).to_string().contains("WriteRequest"));
        // Invalid UTF-8 in a label value.
        let mut raw = WriteRequest {
            timeseries: vec![series("abc", 1)],
            metadata: vec![],
        }
        .encode_to_vec();
        let p = raw.windows(3).position(|w| w == b"abc").unwrap();
        raw[p] = 0xff;
        let b = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert!(e(&b).to_string().contains("WriteRequest"));
        // Too many series or samples, or too large once decompressed.
        let many = WriteRequest {
            timeseries: (0..101).map(|i| series(&format!("m{i}"), 1)).collect(),
            metadata: vec![],
        };
        assert!(matches!(e(&body(&many)), BodyError::TooLarge(_)));
        let long = WriteRequest {
            timeseries: vec![series("a", 1001)],
            metadata: vec![],
        };
        assert!(matches!(e(&body(&long)), BodyError::TooLarge(_)));
        let mut far = series("a", 1);
        far.samples[0].timestamp = i64::MAX;
        let far = WriteRequest {
            timeseries: vec![far],
            metadata: vec![],
        };
        assert!(e(&body(&far)).to_string().contains("outside"));
        let small = Limits {
            max_decoded_bytes: 10,
            ..LIMITS
        };
        assert!(matches!(
            decode_write(&body(&long), small),
            Err(BodyError::TooLarge(_))
        ));
    }
}

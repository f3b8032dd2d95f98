//! Binary forms sent to and read from PostgreSQL: bidim's `tagset` and `timestamptz`
//! as Prometheus's milliseconds.

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A `tagset` in its binary form (see `LabelSet::tagset_bytes`).
#[derive(Debug, Clone)]
pub struct Tagset(pub Vec<u8>);

impl ToSql for Tagset {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "tagset"
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Tagset {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Tagset, BoxError> {
        Ok(Tagset(raw.to_vec()))
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "tagset"
    }
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// A Prometheus timestamp (milliseconds since 1970) as a `timestamptz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub i64);

/// PostgreSQL's timestamptz range in Prometheus milliseconds (4713 BC to 294276 AD,
/// rounded inward).
pub const MIN_MS: i64 = -210_866_803_200_000;
pub const MAX_MS: i64 = 9_224_318_016_000_000;

impl Millis {
    pub fn in_range(ms: i64) -> bool {
        (MIN_MS..MAX_MS).contains(&ms)
    }
}

impl ToSql for Millis {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let us = self
            .0
            .checked_mul(1000)
            .and_then(|us| us.checked_sub(PG_EPOCH_US))
            .ok_or_else(|| format!("timestamp {} ms is out of range", self.0))?;
        out.extend_from_slice(&us.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Millis {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Millis, BoxError> {
        let b: [u8; 8] = raw.try_into().map_err(|_| "timestamptz is not 8 bytes")?;
        let us = i64::from_be_bytes(b) + PG_EPOCH_US;
        Ok(Millis(us.div_euclid(1000)))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

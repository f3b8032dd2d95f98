//! Cells: a key range x a time partition, the unit a hot chunk takes rows for.
//!
//! Times are PostgreSQL timestamps (microseconds since 2000-01-01, the same for
//! `timestamp` and `timestamptz`). A partition of width `w` microseconds starts at a
//! multiple of `w` counted from that origin, so partitions tile the time line and a
//! chunk, which belongs to exactly one partition, never spans a boundary. Pure Rust.

/// Microseconds in a day, as PostgreSQL counts an interval's days.
pub const USECS_PER_DAY: i64 = 86_400_000_000;

/// A cell: key range `range_id` x time partition [`time_lo`, `time_hi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    pub range_id: i32,
    pub time_lo: i64,
    pub time_hi: i64,
}

impl Cell {
    /// The cell of key range `range_id` holding time `t` with partitions `width` wide.
    pub fn of(range_id: i32, t: i64, width: i64) -> Result<Cell, CellError> {
        let (time_lo, time_hi) = partition_of(t, width)?;
        Ok(Cell {
            range_id,
            time_lo,
            time_hi,
        })
    }

    /// The key the per-backend cache finds the cell's hot chunk by.
    pub fn key(&self) -> (i32, i64) {
        (self.range_id, self.time_lo)
    }
}

/// Why a width or a time cannot be partitioned.
#[derive(Debug, PartialEq, Eq)]
pub enum CellError {
    /// The interval has months (months have no fixed length).
    Months,
    /// The width is zero or negative.
    NotPositive,
    /// The width is shorter than one second.
    TooNarrow,
    /// +-infinity.
    Infinite,
}

/// Width in microseconds of an interval of (months, days, micros), as a partition width.
pub fn width_of(months: i32, days: i32, micros: i64) -> Result<i64, CellError> {
    if months != 0 {
        return Err(CellError::Months);
    }
    let w = (days as i64)
        .checked_mul(USECS_PER_DAY)
        .and_then(|d| d.checked_add(micros))
        .ok_or(CellError::NotPositive)?;
    if w <= 0 {
        Err(CellError::NotPositive)
    } else if w < 1_000_000 {
        Err(CellError::TooNarrow)
    } else {
        Ok(w)
    }
}

/// Start (inclusive) and end (exclusive, saturating) of the partition holding `t`.
pub fn partition_of(t: i64, width: i64) -> Result<(i64, i64), CellError> {
    if t == i64::MIN || t == i64::MAX {
        return Err(CellError::Infinite);
    }
    let lo = t
        .div_euclid(width)
        .checked_mul(width)
        .ok_or(CellError::Infinite)?;
    Ok((lo, lo.saturating_add(width)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn widths() {
        assert_eq!(width_of(0, 1, 0), Ok(USECS_PER_DAY));
        assert_eq!(width_of(0, 0, HOUR), Ok(HOUR));
        assert_eq!(width_of(1, 0, 0), Err(CellError::Months));
        assert_eq!(width_of(0, 0, 0), Err(CellError::NotPositive));
        assert_eq!(width_of(0, -1, 0), Err(CellError::NotPositive));
        assert_eq!(width_of(0, 0, 999_999), Err(CellError::TooNarrow));
    }

    #[test]
    fn partitions_tile_the_line_including_before_2000() {
        for t in [
            -3 * HOUR - 1,
            -HOUR,
            -1,
            0,
            1,
            HOUR - 1,
            HOUR,
            10 * HOUR + 7,
        ] {
            let (lo, hi) = partition_of(t, HOUR).unwrap();
            assert!(lo <= t && t < hi, "{t} not in [{lo}, {hi})");
            assert_eq!(lo.rem_euclid(HOUR), 0);
            assert_eq!(hi - lo, HOUR);
        }
        assert_eq!(partition_of(-1, HOUR).unwrap(), (-HOUR, 0));
    }

    #[test]
    fn a_cell_is_its_range_and_partition() {
        let c = Cell::of(7, 10 * HOUR + 5, HOUR).unwrap();
        assert_eq!(
            c,
            Cell {
                range_id: 7,
                time_lo: 10 * HOUR,
                time_hi: 11 * HOUR
            }
        );
        assert_eq!(c.key(), (7, 10 * HOUR));
        assert_eq!(Cell::of(0, i64::MAX, HOUR), Err(CellError::Infinite));
    }

    #[test]
    fn infinities_are_refused_and_edges_saturate() {
        assert_eq!(partition_of(i64::MAX, HOUR), Err(CellError::Infinite));
        assert_eq!(partition_of(i64::MIN, HOUR), Err(CellError::Infinite));
        let (lo, hi) = partition_of(i64::MAX - 1, USECS_PER_DAY).unwrap();
        assert!(lo < i64::MAX && hi == i64::MAX);
        // The first partition would start before the smallest timestamp: refused, no panic.
        assert_eq!(
            partition_of(i64::MIN + 1, USECS_PER_DAY),
            Err(CellError::Infinite)
        );
    }
}

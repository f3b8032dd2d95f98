//! Gap filling: one row per bucket of a window, whether or not a point fell in it
//! (pure Rust). The SQL function `bidim.gapfill` feeds it one series' buckets.

/// What an empty bucket gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// SQL NULL.
    Null,
    /// The previous bucket's value (or the value given for before the window).
    Locf,
    /// A straight line between the nearest buckets with values on either side (NULL
    /// where there is none on one side).
    Linear,
}

impl Fill {
    pub fn parse(s: &str) -> Option<Fill> {
        match s.to_ascii_lowercase().as_str() {
            "null" | "none" => Some(Fill::Null),
            "locf" | "previous" => Some(Fill::Locf),
            "linear" | "interpolate" => Some(Fill::Linear),
            _ => None,
        }
    }
}

/// Why buckets cannot be filled.
#[derive(Debug, Clone, PartialEq)]
pub enum GapError {
    NonPositiveWidth(i64),
    /// More buckets than [`MAX_BUCKETS`].
    TooMany(u64),
    /// A bucket given twice.
    Duplicate(i64),
}

/// Most buckets one call returns.
pub const MAX_BUCKETS: u64 = 10_000_000;

/// The buckets `start, start + width, ...` before `end`, each with the value given for
/// it (`known`: bucket start and value, any order; buckets outside the window or off
/// the grid are ignored) or the fill. `before`: the value preceding the window, for
/// LOCF and interpolation at the start. Times are microseconds.
pub fn fill(
    start: i64,
    end: i64,
    width: i64,
    known: &[(i64, Option<f64>)],
    how: Fill,
    before: Option<f64>,
) -> Result<Vec<(i64, Option<f64>)>, GapError> {
    if width <= 0 {
        return Err(GapError::NonPositiveWidth(width));
    }
    if end <= start {
        return Ok(Vec::new());
    }
    let n = ((end as i128 - start as i128 + width as i128 - 1) / width as i128) as u64;
    if n > MAX_BUCKETS {
        return Err(GapError::TooMany(n));
    }
    let mut out: Vec<(i64, Option<f64>)> =
        (0..n as i64).map(|i| (start + i * width, None)).collect();
    let mut seen = vec![false; n as usize];
    for &(t, v) in known {
        if t < start || t >= end || (t - start) % width != 0 {
            continue;
        }
        let i = ((t - start) / width) as usize;
        if seen[i] {
            return Err(GapError::Duplicate(t));
        }
        seen[i] = true;
        out[i].1 = v;
    }
    match how {
        Fill::Null => {}
        Fill::Locf => {
            let mut prev = before;
            for b in &mut out {
                match b.1 {
                    Some(v) => prev = Some(v),
                    None => b.1 = prev,
                }
            }
        }
        Fill::Linear => {
            // Previous known (index, value): index -1 stands for `before`, one width
            // ahead of the window.
            let mut prev: Option<(i64, f64)> = before.map(|v| (-1, v));
            let mut i = 0usize;
            while i < out.len() {
                if let Some(v) = out[i].1 {
                    prev = Some((i as i64, v));
                    i += 1;
                    continue;
                }
                let next = (i..out.len()).find(|&j| out[j].1.is_some());
                if let (Some((pi, pv)), Some(j)) = (prev, next) {
                    let nv = out[j].1.expect("known");
                    for (k, b) in out.iter_mut().enumerate().take(j).skip(i) {
                        let f = (k as i64 - pi) as f64 / (j as i64 - pi) as f64;
                        b.1 = Some(pv + (nv - pv) * f);
                    }
                }
                i = next.unwrap_or(out.len());
            }
        }
    }
    Ok(out)
}

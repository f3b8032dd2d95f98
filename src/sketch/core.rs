//! DDSketch: a quantile sketch with a relative-error guarantee (Masson, Rim, Lee, 2019).
//!
//! Pure Rust, no PostgreSQL types. Positive values go to bin `ceil(log_gamma(v))`,
//! negative values to the same bin of `|v|` in a separate store, values whose magnitude
//! is below the smallest positive normal `f64` to a zero count. Bin `i` holds
//! `(gamma^(i-1), gamma^i]` and answers with `2 gamma^i / (gamma + 1)`, which is within
//! relative error `alpha = (gamma - 1) / (gamma + 1)` of every value in the bin.
//!
//! Each store keeps at most `max_buckets` bins: when a value would widen a store past
//! the bound, the lowest-magnitude bins are folded into the lowest kept bin and the
//! sketch records it ([`Sketch::is_collapsed`]); the guarantee then holds for
//! quantiles above the folded range only. Counts are exact `u64`; count, sum, min and
//! max are exact. Merging two sketches of the same `alpha` adds bins: merge(sketch(A),
//! sketch(B)) equals sketch(A ∪ B) bin for bin (while neither collapses).

use std::fmt;

/// Smallest accepted relative accuracy.
pub const MIN_ALPHA: f64 = 1e-6;
/// Largest accepted relative accuracy (exclusive bound is 1).
pub const MAX_ALPHA: f64 = 0.5;
/// Fewest bins a store may be bounded to.
pub const MIN_BUCKETS: u32 = 16;
/// Most bins a store may be bounded to (enough for every normal f64 at alpha 0.001).
pub const MAX_BUCKETS: u32 = 1 << 20;
/// Defaults of `ddsketch_agg(value)`.
pub const DEFAULT_ALPHA: f64 = 0.01;
pub const DEFAULT_BUCKETS: u32 = 2048;

/// Why a sketch operation was refused; the SQL layer turns these into ERRORs.
#[derive(Debug, Clone, PartialEq)]
pub enum SketchError {
    /// alpha outside [MIN_ALPHA, MAX_ALPHA] or not finite.
    BadAlpha(f64),
    /// max_buckets outside [MIN_BUCKETS, MAX_BUCKETS].
    BadBuckets(i64),
    /// NaN or an infinity.
    NotFinite(f64),
    /// A quantile outside [0, 1] or NaN.
    BadQuantile(f64),
    /// Merging sketches with different alpha.
    AlphaMismatch(f64, f64),
    /// A weight of zero or below.
    BadWeight(i64),
    /// A count or sum overflowed.
    Overflow,
    /// A serialized or text sketch that violates an invariant.
    Corrupt(String),
}

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SketchError::BadAlpha(a) => write!(
                f,
                "relative accuracy {a} is out of range: it must be between {MIN_ALPHA} and {MAX_ALPHA}"
            ),
            SketchError::BadBuckets(b) => write!(
                f,
                "max_buckets {b} is out of range: it must be between {MIN_BUCKETS} and {MAX_BUCKETS}"
            ),
            SketchError::NotFinite(v) => write!(f, "cannot add {v} to a ddsketch: only finite values are accepted"),
            SketchError::BadQuantile(q) => write!(f, "quantile {q} is out of range: it must be between 0 and 1"),
            SketchError::AlphaMismatch(a, b) => write!(
                f,
                "cannot merge ddsketches of different relative accuracy ({a} and {b})"
            ),
            SketchError::BadWeight(w) => write!(f, "weight {w} is out of range: it must be at least 1"),
            SketchError::Overflow => write!(f, "ddsketch count overflow"),
            SketchError::Corrupt(why) => write!(f, "invalid ddsketch: {why}"),
        }
    }
}

impl std::error::Error for SketchError {}

/// The logarithmic index mapping of a relative accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    alpha: f64,
    gamma: f64,
    /// 1 / ln(gamma).
    multiplier: f64,
}

impl Mapping {
    pub fn new(alpha: f64) -> Result<Mapping, SketchError> {
        if !(alpha.is_finite() && (MIN_ALPHA..=MAX_ALPHA).contains(&alpha)) {
            return Err(SketchError::BadAlpha(alpha));
        }
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Ok(Mapping {
            alpha,
            gamma,
            multiplier: 1.0 / gamma.ln(),
        })
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Bin of a positive normal value.
    pub fn index(&self, v: f64) -> i32 {
        (v.ln() * self.multiplier).ceil() as i32
    }

    /// The value a bin answers with.
    pub fn value(&self, index: i32) -> f64 {
        2.0 * (index as f64 / self.multiplier).exp() / (self.gamma + 1.0)
    }
}

/// Bins of one sign: counts of the contiguous indexes `[offset, offset + len)`,
/// bounded to `max_buckets` bins by folding the lowest ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Store {
    offset: i32,
    counts: Vec<u64>,
    /// Indexes below this were folded into it (None: nothing folded).
    collapsed_below: Option<i32>,
}

impl Store {
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Non-empty bins as (index, count), ascending.
    pub fn bins(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(move |(i, &c)| (self.offset + i as i32, c))
    }

    pub fn collapsed_below(&self) -> Option<i32> {
        self.collapsed_below
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Bytes this store holds on the heap (its bin array's capacity).
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u64>()
    }

    fn hi(&self) -> i64 {
        self.offset as i64 + self.counts.len() as i64 - 1
    }

    /// Adds `count` to bin `index`, keeping at most `max` bins: past the bound the
    /// lowest bins are folded into the lowest kept one.
    pub fn add(&mut self, index: i32, count: u64, max: u32) -> Result<(), SketchError> {
        let mut index = match self.collapsed_below {
            Some(floor) if index < floor => floor,
            _ => index,
        };
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        }
        let hi = self.hi();
        let floor = hi.max(index as i64) - max as i64 + 1;
        if (index as i64) < floor {
            index = floor as i32;
        }
        if (self.offset as i64) < floor {
            self.fold_below(floor as i32);
        }
        if index < self.offset {
            let mut v = vec![0u64; (self.offset - index) as usize];
            v.extend_from_slice(&self.counts);
            self.counts = v;
            self.offset = index;
        } else if index as i64 > self.hi() {
            self.counts
                .resize((index as i64 - self.offset as i64 + 1) as usize, 0);
        }
        let slot = (index - self.offset) as usize;
        self.counts[slot] = self.counts[slot]
            .checked_add(count)
            .ok_or(SketchError::Overflow)?;
        Ok(())
    }

    /// Folds every bin below `floor` into bin `floor` and remembers the floor.
    fn fold_below(&mut self, floor: i32) {
        self.collapsed_below = Some(self.collapsed_below.map_or(floor, |f| f.max(floor)));
        if self.counts.is_empty() || floor <= self.offset {
            return;
        }
        let cut = ((floor as i64 - self.offset as i64) as usize).min(self.counts.len());
        let folded: u64 = self.counts[..cut].iter().sum();
        self.counts.drain(..cut);
        if self.counts.is_empty() {
            self.counts.push(0);
        }
        self.offset = floor;
        self.counts[0] = self.counts[0].saturating_add(folded);
    }

    /// Adds every bin of `other`.
    pub fn merge(&mut self, other: &Store, max: u32) -> Result<(), SketchError> {
        if let Some(f) = other.collapsed_below {
            self.fold_below(f);
        }
        // Fast path: `other`'s bins from its first to its last non-zero one; when they
        // and ours fit in `max` indexes together and none lies below our floor, adding
        // them one by one (below) would move no bin: widen our array to the union and
        // add `other`'s slice into it instead. The result is the same array.
        let Some(first) = other.counts.iter().position(|&c| c > 0) else {
            return Ok(());
        };
        let last = other.counts.iter().rposition(|&c| c > 0).unwrap_or(first);
        let (olo, ohi) = (
            other.offset as i64 + first as i64,
            other.offset as i64 + last as i64,
        );
        let (lo, hi) = if self.counts.is_empty() {
            (olo, ohi)
        } else {
            ((self.offset as i64).min(olo), self.hi().max(ohi))
        };
        let above_floor = self.collapsed_below.is_none_or(|f| olo >= f as i64);
        if hi - lo < max as i64 && above_floor {
            if self.counts.is_empty() {
                self.offset = lo as i32;
            } else if lo < self.offset as i64 {
                let grow = (self.offset as i64 - lo) as usize;
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.offset = lo as i32;
            }
            let len = (hi - lo + 1) as usize;
            if self.counts.len() < len {
                self.counts.resize(len, 0);
            }
            let start = (olo - lo) as usize;
            for (dst, &c) in self.counts[start..]
                .iter_mut()
                .zip(&other.counts[first..=last])
            {
                *dst = dst.checked_add(c).ok_or(SketchError::Overflow)?;
            }
            return Ok(());
        }
        for (i, c) in other.bins() {
            self.add(i, c, max)?;
        }
        Ok(())
    }

    /// [`Store::merge`] without its fast path: one `add` per bin (the reference the
    /// tests compare the fast path with).
    #[cfg(test)]
    pub fn merge_per_bin(&mut self, other: &Store, max: u32) -> Result<(), SketchError> {
        if let Some(f) = other.collapsed_below {
            self.fold_below(f);
        }
        for (i, c) in other.bins() {
            self.add(i, c, max)?;
        }
        Ok(())
    }

    /// Rebuilds a store from (index, count) bins (ascending, counts > 0).
    pub fn from_bins(
        bins: &[(i32, u64)],
        collapsed_below: Option<i32>,
        max: u32,
    ) -> Result<Store, SketchError> {
        let mut s = Store::default();
        let mut prev: Option<i32> = None;
        for &(i, c) in bins {
            if c == 0 {
                return Err(SketchError::Corrupt(format!("bin {i} has a zero count")));
            }
            if prev.is_some_and(|p| p >= i) {
                return Err(SketchError::Corrupt(
                    "bins are not in ascending order".into(),
                ));
            }
            if let Some(f) = collapsed_below {
                if i < f {
                    return Err(SketchError::Corrupt(format!(
                        "bin {i} lies below the collapsed floor {f}"
                    )));
                }
            }
            prev = Some(i);
        }
        if let (Some(&(lo, _)), Some(&(hi, _))) = (bins.first(), bins.last()) {
            if hi as i64 - lo as i64 + 1 > max as i64 {
                return Err(SketchError::Corrupt(format!(
                    "bins span {} indexes, more than max_buckets {max}",
                    hi as i64 - lo as i64 + 1
                )));
            }
        }
        s.collapsed_below = collapsed_below;
        // Checked above: ascending, within `max` indexes, none below the floor; so the
        // array is the span with each bin in its slot (what `add` per bin builds).
        if let Some(&(lo, _)) = bins.first() {
            let hi = bins[bins.len() - 1].0;
            s.offset = lo;
            s.counts = vec![0; (hi as i64 - lo as i64 + 1) as usize];
            for &(i, c) in bins {
                s.counts[(i - lo) as usize] = c;
            }
        }
        Ok(s)
    }
}

/// A DDSketch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    mapping: Mapping,
    max_buckets: u32,
    positive: Store,
    negative: Store,
    zero: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sketch {
    pub fn new(alpha: f64, max_buckets: i64) -> Result<Sketch, SketchError> {
        let mapping = Mapping::new(alpha)?;
        if !(MIN_BUCKETS as i64..=MAX_BUCKETS as i64).contains(&max_buckets) {
            return Err(SketchError::BadBuckets(max_buckets));
        }
        Ok(Sketch {
            mapping,
            max_buckets: max_buckets as u32,
            positive: Store::default(),
            negative: Store::default(),
            zero: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        })
    }

    /// Bytes the sketch holds on the heap beyond its own struct (both stores).
    pub fn heap_bytes(&self) -> usize {
        self.positive.heap_bytes() + self.negative.heap_bytes()
    }

    pub fn alpha(&self) -> f64 {
        self.mapping.alpha()
    }
    pub fn max_buckets(&self) -> u32 {
        self.max_buckets
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
    pub fn zero_count(&self) -> u64 {
        self.zero
    }
    pub fn positive(&self) -> &Store {
        &self.positive
    }
    pub fn negative(&self) -> &Store {
        &self.negative
    }
    /// Smallest value added (None when empty).
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
    pub fn is_collapsed(&self) -> bool {
        self.positive.collapsed_below.is_some() || self.negative.collapsed_below.is_some()
    }

    /// The relative error of answers: alpha while no bin has collapsed, else the
    /// worst ratio between a folded value and the bin that answers for it.
    pub fn relative_error(&self) -> f64 {
        if !self.is_collapsed() {
            return self.alpha();
        }
        // A folded value can be anywhere down to the smallest magnitude seen.
        let smallest = [self.min.abs(), self.max.abs()]
            .into_iter()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let mut worst = self.alpha();
        for store in [&self.positive, &self.negative] {
            if let Some(floor) = store.collapsed_below {
                let answer = self.mapping.value(floor);
                let low = if smallest.is_finite() {
                    smallest
                } else {
                    f64::MIN_POSITIVE
                };
                worst = worst.max(((answer - low) / answer).abs().min(1.0));
            }
        }
        worst
    }

    /// Adds `v` `weight` times.
    pub fn add(&mut self, v: f64, weight: u64) -> Result<(), SketchError> {
        if !v.is_finite() {
            return Err(SketchError::NotFinite(v));
        }
        if weight == 0 {
            return Err(SketchError::BadWeight(0));
        }
        let magnitude = v.abs();
        if magnitude < f64::MIN_POSITIVE {
            self.zero = self.zero.checked_add(weight).ok_or(SketchError::Overflow)?;
        } else if v > 0.0 {
            self.positive
                .add(self.mapping.index(magnitude), weight, self.max_buckets)?;
        } else {
            self.negative
                .add(self.mapping.index(magnitude), weight, self.max_buckets)?;
        }
        self.count = self
            .count
            .checked_add(weight)
            .ok_or(SketchError::Overflow)?;
        self.sum += v * weight as f64;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        Ok(())
    }

    /// Adds every value of `other` (same alpha required).
    pub fn merge(&mut self, other: &Sketch) -> Result<(), SketchError> {
        if self.mapping.alpha() != other.mapping.alpha() {
            return Err(SketchError::AlphaMismatch(self.alpha(), other.alpha()));
        }
        if other.count == 0 {
            return Ok(());
        }
        let max = self.max_buckets.max(other.max_buckets);
        self.max_buckets = max;
        self.positive.merge(&other.positive, max)?;
        self.negative.merge(&other.negative, max)?;
        self.zero = self
            .zero
            .checked_add(other.zero)
            .ok_or(SketchError::Overflow)?;
        self.count = self
            .count
            .checked_add(other.count)
            .ok_or(SketchError::Overflow)?;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The value at quantile `q` as `percentile_disc` ranks it: the smallest value whose
    /// cumulative count reaches `q * n` (None when empty).
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, SketchError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(SketchError::BadQuantile(q));
        }
        if self.count == 0 {
            return Ok(None);
        }
        if q == 0.0 {
            return Ok(Some(self.min));
        }
        if q == 1.0 {
            return Ok(Some(self.max));
        }
        // percentile_disc's rank: ceil(q * n), at least 1.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, c) in self.negative.bins().rev() {
            seen += c;
            if seen >= rank {
                return Ok(Some(self.clamp(-self.mapping.value(i))));
            }
        }
        seen += self.zero;
        if seen >= rank {
            return Ok(Some(self.clamp(0.0)));
        }
        for (i, c) in self.positive.bins() {
            seen += c;
            if seen >= rank {
                return Ok(Some(self.clamp(self.mapping.value(i))));
            }
        }
        Ok(Some(self.max))
    }

    /// Fraction of values at or below `v` (bins count as their answer value).
    pub fn rank(&self, v: f64) -> Result<Option<f64>, SketchError> {
        if v.is_nan() {
            return Err(SketchError::NotFinite(v));
        }
        if self.count == 0 {
            return Ok(None);
        }
        if v < self.min {
            return Ok(Some(0.0));
        }
        if v >= self.max {
            return Ok(Some(1.0));
        }
        let mut below = 0u64;
        for (i, c) in self.negative.bins() {
            if self.clamp(-self.mapping.value(i)) <= v {
                below += c;
            }
        }
        if v >= 0.0 {
            below += self.zero;
        }
        for (i, c) in self.positive.bins() {
            if self.clamp(self.mapping.value(i)) <= v {
                below += c;
            }
        }
        Ok(Some(below as f64 / self.count as f64))
    }

    fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.min, self.max)
    }

    /// Non-empty bins in ascending value order as (lower, upper, count): negative bins,
    /// the zero bin, positive bins.
    pub fn buckets(&self) -> Vec<(f64, f64, u64)> {
        let g = self.mapping.gamma();
        let bound = |i: i32| (i as f64 * g.ln()).exp();
        let mut out = Vec::new();
        for (i, c) in self.negative.bins().rev() {
            out.push((-bound(i), -bound(i - 1), c));
        }
        if self.zero > 0 {
            out.push((-f64::MIN_POSITIVE, f64::MIN_POSITIVE, self.zero));
        }
        for (i, c) in self.positive.bins() {
            out.push((bound(i - 1), bound(i), c));
        }
        out
    }

    /// Rebuilds a sketch from its parts, checking every invariant.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        alpha: f64,
        max_buckets: i64,
        positive: (&[(i32, u64)], Option<i32>),
        negative: (&[(i32, u64)], Option<i32>),
        zero: u64,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Result<Sketch, SketchError> {
        let mut s = Sketch::new(alpha, max_buckets)?;
        s.positive = Store::from_bins(positive.0, positive.1, s.max_buckets)?;
        s.negative = Store::from_bins(negative.0, negative.1, s.max_buckets)?;
        s.zero = zero;
        let total = s
            .positive
            .total()
            .checked_add(s.negative.total())
            .and_then(|t| t.checked_add(zero))
            .ok_or(SketchError::Overflow)?;
        if total != count {
            return Err(SketchError::Corrupt(format!(
                "count {count} differs from the bins' total {total}"
            )));
        }
        s.count = count;
        if count == 0 {
            return Ok(s);
        }
        if !(sum.is_finite() && min.is_finite() && max.is_finite()) {
            return Err(SketchError::Corrupt(
                "sum, min and max must be finite".into(),
            ));
        }
        if min > max {
            return Err(SketchError::Corrupt(format!(
                "min {min} is greater than max {max}"
            )));
        }
        if (s.negative.total() > 0 && min >= 0.0) || (s.positive.total() > 0 && max <= 0.0) {
            return Err(SketchError::Corrupt(
                "min and max contradict the bins".into(),
            ));
        }
        s.sum = sum;
        s.min = min;
        s.max = max;
        Ok(s)
    }
}

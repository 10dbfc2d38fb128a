//! [`LatencySketch`]: a DDSketch-style quantile sketch for latencies with 1% relative
//! accuracy, an exact merge and a bounded size.
//!
//! A positive value `x` (milliseconds) falls in bucket `i = ⌈ln x / ln γ⌉` with
//! `γ = (1 + α) / (1 − α)` and `α = 0.01`, i.e. bucket `i` holds `(γ^(i−1), γ^i]`. A bucket
//! is reported as `2γ^i / (γ + 1)`, which is within `α` relative error of every value in
//! it. Zero latencies have their own exact bucket. Merging adds bucket counts, so it is
//! exact, associative and commutative.
//!
//! **Bounded size.** At most [`LATENCY_MAX_BUCKETS`] consecutive bucket indices are kept
//! (2,048 buckets span a ratio of γ^2048 ≈ 6·10^17 between the smallest and largest
//! value, so real latencies never reach the bound). Beyond it the lowest buckets are
//! collapsed into the lowest kept one: every value whose index is below
//! `highest index − 2047` is counted at that index. This rule depends only on the final
//! highest index, so folding and merging in any order still give identical sketches;
//! only quantiles that land in the collapsed bucket lose their accuracy guarantee (they
//! are over-estimated). High quantiles — the ones we report — are never affected.
//!
//! **Order statistic.** [`LatencySketch::quantile`] estimates the *lower* quantile: the
//! value of rank `⌈q·n⌉` (1-based, at least 1) among the `n` values in ascending order —
//! numpy's `method="inverted_cdf"`. The estimate is clamped to the observed `[min, max]`,
//! which keeps the 1% bound and makes a single-value window exact.

use super::codec::{DecodeError, Reader, Writer, add_bucket_count};

/// Relative accuracy `α` of every quantile estimate (1%).
pub const LATENCY_RELATIVE_ACCURACY: f64 = 0.01;

/// Most consecutive bucket indices a sketch keeps before collapsing the lowest.
pub const LATENCY_MAX_BUCKETS: usize = 2048;

/// `γ = (1 + α) / (1 − α)`.
const GAMMA: f64 = (1.0 + LATENCY_RELATIVE_ACCURACY) / (1.0 - LATENCY_RELATIVE_ACCURACY);

/// Bucket indices of finite positive `f64`s stay within ±37,700; anything decoded beyond
/// this is corrupt.
const MAX_ABS_INDEX: i64 = 40_000;

/// Quantile sketch of latencies in milliseconds (see the module docs for the guarantees).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySketch {
    /// Values equal to zero.
    zero_count: u64,
    /// Bucket index of `counts[0]`.
    offset: i32,
    /// Dense counts of consecutive buckets; empty, or its first and last entries are > 0.
    counts: Vec<u64>,
    /// All values, the zero bucket included.
    count: u64,
    /// Sum of all values in milliseconds.
    sum: f64,
    /// Smallest value (`+∞` while empty).
    min: f64,
    /// Largest value (`−∞` while empty).
    max: f64,
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

/// `1 / ln γ`, computed once.
fn inverse_ln_gamma() -> f64 {
    // A `const` would need `ln` in const context; the optimiser hoists this anyway.
    1.0 / GAMMA.ln()
}

/// The 1-based rank `⌈q·n⌉` of the lower `q`-quantile among `n ≥ 1` values, clamped to
/// `[1, n]`. A product `q·n` within floating-point noise of an integer counts as that
/// integer, so `0.95 × 100` is rank 95 although 0.95 is not exact in binary.
pub fn lower_quantile_rank(q: f64, n: u64) -> u64 {
    let product = q * n as f64;
    let nearest = product.round();
    let rank = if (product - nearest).abs() <= 4.0 * f64::EPSILON * product.abs() {
        nearest
    } else {
        product.ceil()
    };
    // `as` saturates (NaN → 0), and the clamp keeps the rank valid.
    (rank as u64).clamp(1, n.max(1))
}

/// A latency as [`LatencySketch::add`] counts it, its bucket worked out once for
/// adding it to several sketches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucketed {
    /// The latency, −0.0 as +0.0.
    value: f64,
    /// Its bucket's index; `None` for zero (its own bucket).
    index: Option<i32>,
}

impl Bucketed {
    /// `latency_ms` (finite and ≥ 0 when added) with its bucket.
    #[inline]
    pub(crate) fn of(latency_ms: f64) -> Self {
        // `+ 0.0` turns −0.0 into +0.0 so equal states serialize identically.
        let value = latency_ms + 0.0;
        Self {
            value,
            index: (value != 0.0).then(|| (value.ln() * inverse_ln_gamma()).ceil() as i32),
        }
    }
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self {
            zero_count: 0,
            offset: 0,
            counts: Vec::new(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds one latency. The caller guarantees `latency_ms` is finite and ≥ 0.
    #[inline]
    pub(crate) fn add(&mut self, latency_ms: f64) {
        self.add_bucketed(Bucketed::of(latency_ms));
    }

    /// Adds one latency whose bucket was worked out before ([`Bucketed::of`]).
    #[inline]
    pub(crate) fn add_bucketed(&mut self, latency: Bucketed) {
        let Bucketed { value, index } = latency;
        self.count = self.count.saturating_add(1);
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        match index {
            None => self.zero_count = self.zero_count.saturating_add(1),
            Some(index) => self.add_to_bucket(index, 1),
        }
    }

    #[inline]
    fn add_to_bucket(&mut self, index: i32, n: u64) {
        let position = i64::from(index) - i64::from(self.offset);
        if let Some(slot) = usize::try_from(position)
            .ok()
            .and_then(|p| self.counts.get_mut(p))
        {
            *slot = slot.saturating_add(n);
            return;
        }
        self.add_outside_range(index, n);
    }

    #[cold]
    fn add_outside_range(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        let highest = self.highest_index().max(index);
        let floor = collapse_floor(highest);
        self.collapse_below(floor);
        let index = index.max(floor);
        self.cover(index.min(self.offset), highest);
        let slot = &mut self.counts[(index - self.offset) as usize];
        *slot = slot.saturating_add(n);
    }

    /// Index of the last bucket; only meaningful when `counts` is not empty.
    fn highest_index(&self) -> i32 {
        self.offset + self.counts.len() as i32 - 1
    }

    /// Moves every count below bucket `floor` into bucket `floor`.
    fn collapse_below(&mut self, floor: i32) {
        if self.counts.is_empty() || self.offset >= floor {
            return;
        }
        let below = ((floor - self.offset) as usize).min(self.counts.len());
        let collapsed = self.counts[..below]
            .iter()
            .fold(0u64, |acc, &c| acc.saturating_add(c));
        self.counts.drain(..below);
        self.offset = floor;
        match self.counts.first_mut() {
            Some(first) => *first = first.saturating_add(collapsed),
            None => self.counts.push(collapsed),
        }
    }

    /// Extends the dense range with zero buckets so that it spans `[low, high]`.
    fn cover(&mut self, low: i32, high: i32) {
        if low < self.offset {
            let extra = (self.offset - low) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.offset = low;
        }
        let needed = (high - self.offset + 1) as usize;
        if needed > self.counts.len() {
            self.counts.resize(needed, 0);
        }
    }

    /// Adds `other`'s values to this sketch; exact, associative and commutative.
    pub fn merge(&mut self, other: &Self) {
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.offset = other.offset;
            self.counts.clone_from(&other.counts);
            return;
        }
        let highest = self.highest_index().max(other.highest_index());
        let floor = collapse_floor(highest);
        self.collapse_below(floor);
        self.cover(self.offset.min(other.offset.max(floor)), highest);
        // Buckets of `other` below the floor all land in the floor bucket.
        let clamped = ((floor - other.offset).max(0) as usize).min(other.counts.len());
        let (low_part, kept) = other.counts.split_at(clamped);
        if !low_part.is_empty() {
            let collapsed = low_part.iter().fold(0u64, |acc, &c| acc.saturating_add(c));
            let slot = &mut self.counts[(floor - self.offset) as usize];
            *slot = slot.saturating_add(collapsed);
        }
        let start = (other.offset.max(floor) - self.offset) as usize;
        // Wrapping so the loop vectorizes; a bucket would need 2^64 values to wrap.
        for (slot, &c) in self.counts[start..start + kept.len()].iter_mut().zip(kept) {
            *slot = slot.wrapping_add(c);
        }
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of all latencies in milliseconds (0 when empty).
    pub fn sum_ms(&self) -> f64 {
        self.sum
    }

    /// Smallest latency in milliseconds, `None` when empty.
    pub fn min_ms(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest latency in milliseconds, `None` when empty.
    pub fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Estimate of the lower `q`-quantile in milliseconds (`q` in `[0, 1]`, clamped): the
    /// value of rank `⌈q·n⌉`, within 1% relative error of the exact one. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = lower_quantile_rank(q.clamp(0.0, 1.0), self.count);
        if rank <= self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        let mut index = self.offset;
        for (position, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                index = self.offset + position as i32;
                break;
            }
        }
        Some(bucket_value(index).clamp(self.min, self.max))
    }

    /// Writes the sketch: zero count, number of non-empty buckets, then the first bucket's
    /// index (zigzag) and count followed by `(index gap, count)` pairs; then sum, min and
    /// max as `f64` when not empty. The total count is implied.
    pub(crate) fn encode(&self, out: &mut Writer) {
        out.varint(self.zero_count);
        let non_empty = self.counts.iter().filter(|&&c| c > 0).count();
        out.varint(non_empty as u64);
        let mut previous: Option<i32> = None;
        for (position, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let index = self.offset + position as i32;
            match previous {
                None => out.signed_varint(i64::from(index)),
                Some(p) => out.varint((index - p) as u64),
            }
            out.varint(c);
            previous = Some(index);
        }
        if self.count > 0 {
            out.f64(self.sum);
            out.f64(self.min);
            out.f64(self.max);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote, checking every invariant.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut sketch = Self::new();
        sketch.zero_count = input.varint("latency zero count")?;
        let non_empty = input.bounded_len(LATENCY_MAX_BUCKETS, "latency bucket count")?;
        let mut total = sketch.zero_count;
        let mut previous: Option<i64> = None;
        for _ in 0..non_empty {
            let index = match previous {
                None => input.signed_varint("latency bucket index")?,
                Some(p) => {
                    let gap = input.varint("latency bucket gap")?;
                    if gap == 0 || gap > LATENCY_MAX_BUCKETS as u64 {
                        return Err(DecodeError::Invalid {
                            what: "latency bucket gap",
                        });
                    }
                    p + gap as i64
                }
            };
            if index.abs() > MAX_ABS_INDEX {
                return Err(DecodeError::Invalid {
                    what: "latency bucket index",
                });
            }
            let c = input.varint("latency bucket count")?;
            total = add_bucket_count(total, c, "empty latency bucket", "latency count overflow")?;
            let index = index as i32;
            if sketch.counts.is_empty() {
                sketch.offset = index;
            }
            let position = (index - sketch.offset) as usize;
            if position >= LATENCY_MAX_BUCKETS {
                return Err(DecodeError::Invalid {
                    what: "latency buckets span too wide",
                });
            }
            sketch.counts.resize(position + 1, 0);
            sketch.counts[position] = c;
            previous = Some(i64::from(index));
        }
        sketch.count = total;
        if total > 0 {
            // The sum may have overflowed to +∞ (never NaN: every value is ≥ 0).
            sketch.sum = input.f64("latency sum")?;
            sketch.min = input.finite_f64("latency min")?;
            sketch.max = input.finite_f64("latency max")?;
            if sketch.sum.is_nan()
                || sketch.sum < 0.0
                || sketch.min < 0.0
                || sketch.min > sketch.max
            {
                return Err(DecodeError::Invalid {
                    what: "latency sum, min or max",
                });
            }
        }
        Ok(sketch)
    }
}

/// A sketch of signed values — a regressor's predictions — for prediction drift: two
/// [`LatencySketch`]es, of the magnitudes of the negative values and of the others
/// (zero exact). A value's bucket is within 1 % relative of it (`α`), the merge is
/// exact, and each side keeps at most [`LATENCY_MAX_BUCKETS`] buckets: a side whose
/// magnitudes span more than a factor of ≈ 6·10^17 counts its smallest ones in its
/// lowest kept bucket (they lose the 1 % bound, nothing is lost).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueSketch {
    negative: LatencySketch,
    non_negative: LatencySketch,
}

/// Bucket keys of a [`ValueSketch`] lie within ±(this + [`MAX_ABS_INDEX`]).
const VALUE_KEY_OFFSET: i64 = MAX_ABS_INDEX + 1;

impl ValueSketch {
    /// Adds one value; the caller guarantees it is finite.
    pub(crate) fn add(&mut self, value: f64) {
        if value < 0.0 {
            self.negative.add(-value);
        } else {
            self.non_negative.add(value);
        }
    }

    /// Adds `other`'s values; exact, associative and commutative.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.negative.merge(&other.negative);
        self.non_negative.merge(&other.non_negative);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.negative
            .count()
            .saturating_add(self.non_negative.count())
    }

    /// The non-empty buckets in ascending order of their values, each as a key that
    /// orders like the values (negative values below zero's key 0, their larger
    /// magnitudes lower still) and its count.
    pub fn ordered_buckets(&self) -> Vec<(i64, u64)> {
        let mut out: Vec<(i64, u64)> = self
            .negative
            .buckets()
            .rev()
            .map(|(index, count)| (-(i64::from(index) + VALUE_KEY_OFFSET), count))
            .collect();
        let zeros = self
            .negative
            .zero_count
            .saturating_add(self.non_negative.zero_count);
        if zeros > 0 {
            out.push((0, zeros));
        }
        out.extend(
            self.non_negative
                .buckets()
                .map(|(index, count)| (i64::from(index) + VALUE_KEY_OFFSET, count)),
        );
        out
    }

    /// Writes the negative side's magnitudes, then the others.
    pub(crate) fn encode(&self, out: &mut Writer) {
        self.negative.encode(out);
        self.non_negative.encode(out);
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let negative = LatencySketch::decode(input)?;
        if negative.zero_count > 0 || negative.min_ms().is_some_and(|m| m == 0.0) {
            return Err(DecodeError::Invalid {
                what: "zero among negative values",
            });
        }
        Ok(Self {
            negative,
            non_negative: LatencySketch::decode(input)?,
        })
    }
}

impl LatencySketch {
    /// The non-empty buckets (zero excluded) in ascending order: index and count.
    fn buckets(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(position, &c)| (self.offset + position as i32, c))
    }
}

/// Lowest bucket index kept when the highest is `highest`.
fn collapse_floor(highest: i32) -> i32 {
    highest - (LATENCY_MAX_BUCKETS as i32 - 1)
}

/// The value reported for bucket `index`: `2γ^i / (γ + 1)`.
fn bucket_value(index: i32) -> f64 {
    2.0 * GAMMA.powi(index) / (GAMMA + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(values: &[f64]) -> LatencySketch {
        let mut sketch = LatencySketch::new();
        values.iter().for_each(|&v| sketch.add(v));
        sketch
    }

    fn exact_lower_quantile(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[lower_quantile_rank(q, sorted.len() as u64) as usize - 1]
    }

    #[test]
    fn empty_sketch_reports_nothing() {
        let sketch = LatencySketch::new();
        assert_eq!(sketch.quantile(0.5), None);
        assert_eq!(sketch.min_ms(), None);
        assert_eq!(sketch.count(), 0);
    }

    #[test]
    fn single_value_is_exact_thanks_to_clamping() {
        let sketch = sketch_of(&[12.345]);
        assert_eq!(sketch.quantile(0.5), Some(12.345));
        assert_eq!(sketch.quantile(0.99), Some(12.345));
    }

    #[test]
    fn zeros_are_exact() {
        let sketch = sketch_of(&[0.0, 0.0, -0.0, 5.0]);
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        assert_eq!(sketch.quantile(0.75), Some(0.0));
        assert_eq!(sketch.quantile(1.0), Some(5.0));
    }

    #[test]
    fn quantiles_stay_within_one_percent_over_many_decades() {
        let values: Vec<f64> = (0..5000).map(|i| 1e-3 * 1.0037f64.powi(i)).collect();
        let sketch = sketch_of(&values);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let exact = exact_lower_quantile(&values, q);
            let estimate = sketch.quantile(q).expect("not empty");
            assert!(
                ((estimate - exact) / exact).abs() <= LATENCY_RELATIVE_ACCURACY + 1e-12,
                "q={q}"
            );
        }
    }

    #[test]
    fn lower_rank_follows_the_definition() {
        assert_eq!(lower_quantile_rank(0.95, 100), 95);
        assert_eq!(lower_quantile_rank(0.5, 4), 2);
        assert_eq!(lower_quantile_rank(0.5, 5), 3);
        assert_eq!(lower_quantile_rank(0.0, 5), 1);
        assert_eq!(lower_quantile_rank(1.0, 5), 5);
        assert_eq!(lower_quantile_rank(0.99, 1000), 990);
        assert_eq!(lower_quantile_rank(0.5, 2_000_000_001), 1_000_000_001);
    }

    #[test]
    fn collapsing_keeps_the_top_buckets_and_is_order_independent() {
        // Values spanning far more than 2048 buckets.
        let values: Vec<f64> = (0..400)
            .map(|i| 1e-200 * 10f64.powi(i))
            .filter(|v| v.is_finite())
            .collect();
        let forward = sketch_of(&values);
        let reversed: Vec<f64> = values.iter().rev().copied().collect();
        let backward = sketch_of(&reversed);
        assert_eq!(
            (forward.offset, &forward.counts),
            (backward.offset, &backward.counts)
        );
        assert!(forward.counts.len() <= LATENCY_MAX_BUCKETS);
        let exact = exact_lower_quantile(&values, 0.99);
        let estimate = forward.quantile(0.99).expect("not empty");
        assert!(((estimate - exact) / exact).abs() <= LATENCY_RELATIVE_ACCURACY + 1e-12);

        let (low, high) = values.split_at(150);
        let mut merged = sketch_of(high);
        merged.merge(&sketch_of(low));
        // Sums of values this far apart depend on the order; the buckets do not.
        assert_eq!(
            (merged.offset, &merged.counts, merged.count),
            (forward.offset, &forward.counts, forward.count)
        );
        let mut merged_other_way = sketch_of(low);
        merged_other_way.merge(&sketch_of(high));
        assert_eq!(merged_other_way.counts, forward.counts);
    }

    #[test]
    fn encode_decode_round_trips() {
        let sketch = sketch_of(&[0.0, 0.5, 3.0, 3.01, 250.0, 1e4]);
        let mut out = Writer::default();
        sketch.encode(&mut out);
        let bytes = out.into_bytes();
        let mut input = Reader::new(&bytes);
        assert_eq!(LatencySketch::decode(&mut input), Ok(sketch));
        assert_eq!(input.finish(), Ok(()));
    }
}

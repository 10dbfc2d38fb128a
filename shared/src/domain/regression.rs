//! Regression quality state: sums of the prediction errors of labeled records, from
//! which RMSE, MAE and MAPE follow.
//!
//! The error of a record is `e = predicted − actual`. MAPE divides by the actual value,
//! so records whose actual is exactly 0 are left out of it (and counted as excluded);
//! when no actual is 0 it equals scikit-learn's `mean_absolute_percentage_error`.

use super::bounds::regression_value_problem;
use super::codec::{DecodeError, Reader, Writer};
use super::error::FoldError;
use super::sketch::ValueSketch;

/// Sums of the errors of labeled regression records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegressionStats {
    /// Labeled records.
    count: u64,
    /// Labeled records whose actual is not 0 (the MAPE denominator).
    nonzero_actual: u64,
    /// `Σ e`.
    sum_error: f64,
    /// `Σ e²`.
    sum_squared_error: f64,
    /// `Σ |e|`.
    sum_absolute_error: f64,
    /// `Σ |e / actual|` over records with `actual ≠ 0`.
    sum_absolute_percentage_error: f64,
    /// The predicted values of every ok prediction, labeled or not, counted when it
    /// arrives: the distribution prediction drift compares.
    served: ValueSketch,
}

/// Checks a regression value against [`regression_value_problem`]: finite, of
/// magnitude at most 1e100, and 0 or at least 1e-100.
pub(crate) fn validate_value(value: Option<f64>, field: &'static str) -> Result<(), FoldError> {
    match value {
        Some(v) if !v.is_finite() => Err(FoldError::NonFinite { field }),
        Some(v) if regression_value_problem(v).is_some() => Err(FoldError::OutOfRange {
            field,
            value: v,
            expected: "0 or 1e-100 ≤ |value| ≤ 1e100",
        }),
        _ => Ok(()),
    }
}

/// What a labeled pair contributes, checked so that no sum can become NaN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegressionTerms {
    error: f64,
    squared: f64,
    percentage: Option<f64>,
}

impl RegressionTerms {
    /// The terms of `(predicted, actual)`, both finite; fails when `e²` or `|e / actual|`
    /// overflows.
    pub(crate) fn of(predicted: f64, actual: f64) -> Result<Self, FoldError> {
        let error = predicted - actual;
        let squared = error * error;
        if !squared.is_finite() {
            return Err(FoldError::OutOfRange {
                field: "predicted",
                value: predicted,
                expected: "(predicted − actual)² to be finite",
            });
        }
        let percentage = if actual == 0.0 {
            None
        } else {
            Some((error / actual).abs())
        };
        if percentage.is_some_and(|p| !p.is_finite()) {
            return Err(FoldError::OutOfRange {
                field: "actual",
                value: actual,
                expected: "|(predicted − actual) / actual| to be finite",
            });
        }
        Ok(Self {
            error,
            squared,
            percentage,
        })
    }
}

impl RegressionStats {
    /// Adds one labeled record's terms.
    #[inline]
    pub(crate) fn add(&mut self, terms: RegressionTerms) {
        self.count = self.count.saturating_add(1);
        self.sum_error += terms.error;
        self.sum_squared_error += terms.squared;
        self.sum_absolute_error += terms.error.abs();
        if let Some(percentage) = terms.percentage {
            self.nonzero_actual = self.nonzero_actual.saturating_add(1);
            self.sum_absolute_percentage_error += percentage;
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.count = self.count.saturating_add(other.count);
        self.nonzero_actual = self.nonzero_actual.saturating_add(other.nonzero_actual);
        self.sum_error += other.sum_error;
        self.sum_squared_error += other.sum_squared_error;
        self.sum_absolute_error += other.sum_absolute_error;
        self.sum_absolute_percentage_error += other.sum_absolute_percentage_error;
        self.served.merge(&other.served);
    }

    /// Counts one ok prediction's value (already validated), labeled or not, in the
    /// predicted-value distribution.
    pub(crate) fn add_served(&mut self, predicted: f64) {
        self.served.add(predicted);
    }

    /// The predicted values of every ok prediction counted; `None` when there is none.
    pub fn served(&self) -> Option<&ValueSketch> {
        (self.served.count() > 0).then_some(&self.served)
    }

    /// Writes the predicted-value distribution (format version 3).
    pub(crate) fn encode_distribution(&self, out: &mut Writer) {
        self.served.encode(out);
    }

    /// Reads what [`encode_distribution`](Self::encode_distribution) wrote; returns
    /// the values counted.
    pub(crate) fn decode_distribution(
        &mut self,
        input: &mut Reader<'_>,
    ) -> Result<u64, DecodeError> {
        self.served = ValueSketch::decode(input)?;
        match self.served.count() {
            0 => Err(DecodeError::Invalid {
                what: "empty predicted-value distribution in version 3",
            }),
            n => Ok(n),
        }
    }

    /// Labeled records.
    pub fn labeled(&self) -> u64 {
        self.count
    }

    /// Mean signed error `Σ e / n` (bias; positive = over-prediction); `None` when empty.
    pub fn mean_error(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_error / self.count as f64)
    }

    /// Root mean squared error `√(Σ e² / n)`, in the target's unit; `None` when empty.
    pub fn rmse(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.sum_squared_error / self.count as f64).sqrt())
    }

    /// Mean absolute error `Σ |e| / n`, in the target's unit; `None` when empty.
    pub fn mae(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_absolute_error / self.count as f64)
    }

    /// Mean absolute percentage error as a fraction (0.05 = 5%) over records with
    /// `actual ≠ 0`; `None` when there is none.
    pub fn mape(&self) -> Option<f64> {
        (self.nonzero_actual > 0)
            .then(|| self.sum_absolute_percentage_error / self.nonzero_actual as f64)
    }

    /// Labeled records left out of MAPE because their actual is 0.
    pub fn mape_excluded(&self) -> u64 {
        self.count - self.nonzero_actual
    }

    /// Count and non-zero count as varints, then the four sums as `f64` when not empty.
    pub(crate) fn encode(&self, out: &mut Writer) {
        out.varint(self.count);
        out.varint(self.nonzero_actual);
        if self.count > 0 {
            out.f64(self.sum_error);
            out.f64(self.sum_squared_error);
            out.f64(self.sum_absolute_error);
            out.f64(self.sum_absolute_percentage_error);
        }
    }

    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut stats = Self {
            count: input.varint("regression count")?,
            ..Self::default()
        };
        stats.nonzero_actual = input.varint("regression non-zero count")?;
        if stats.nonzero_actual > stats.count {
            return Err(DecodeError::Invalid {
                what: "regression non-zero count",
            });
        }
        if stats.count > 0 {
            // Sums may legitimately overflow to +∞ but are never NaN.
            let mut read = |what| {
                input.f64(what).and_then(|v| {
                    if v.is_nan() {
                        Err(DecodeError::Invalid { what })
                    } else {
                        Ok(v)
                    }
                })
            };
            stats.sum_error = read("regression error sum")?;
            stats.sum_squared_error = read("regression squared error sum")?;
            stats.sum_absolute_error = read("regression absolute error sum")?;
            stats.sum_absolute_percentage_error = read("regression percentage error sum")?;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(f64, f64)]) -> RegressionStats {
        let mut stats = RegressionStats::default();
        for &(predicted, actual) in pairs {
            stats.add(RegressionTerms::of(predicted, actual).expect("finite"));
        }
        stats
    }

    #[test]
    fn metrics_on_a_small_example() {
        let s = stats(&[(3.0, 2.0), (1.0, 2.0), (5.0, 0.0)]);
        assert_eq!(s.mae(), Some(7.0 / 3.0));
        assert_eq!(s.rmse(), Some(3.0));
        assert_eq!(s.mape(), Some(0.5));
        assert_eq!(s.mape_excluded(), 1);
        assert_eq!(s.mean_error(), Some(5.0 / 3.0));
    }

    #[test]
    fn empty_and_all_zero_actuals_give_none() {
        assert_eq!(RegressionStats::default().rmse(), None);
        let zeros = stats(&[(1.0, 0.0)]);
        assert_eq!(zeros.mape(), None);
        assert_eq!(zeros.mape_excluded(), 1);
        assert_eq!(zeros.mae(), Some(1.0));
    }

    #[test]
    fn overflowing_terms_are_rejected() {
        assert!(matches!(
            RegressionTerms::of(1e200, -1e200),
            Err(FoldError::OutOfRange {
                field: "predicted",
                ..
            })
        ));
        assert!(matches!(
            RegressionTerms::of(1.0, 1e-320),
            Err(FoldError::OutOfRange {
                field: "actual",
                ..
            })
        ));
    }
}

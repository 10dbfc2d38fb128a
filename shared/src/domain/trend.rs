//! Trend math: ordinary least squares of a metric over time, its significance, and when
//! the fitted line crosses a threshold.
//!
//! Time is measured in **days since the Unix epoch** (`x = ms / 86 400 000`), so the slope
//! is per day and the intercept is the fitted value at the epoch — the same numbers
//! `numpy.polyfit(x, y, 1)` and `scipy.stats.linregress(x, y)` give for those `x`.
//!
//! [`fit_trend`] uses two-pass centered sums, which stay accurate when `x` is large
//! (≈ 20 000 days) and its spread small. The p-value follows scipy's `linregress` exactly
//! (including its `TINY` guard), with the Student t tail computed from a regularized
//! incomplete beta function implemented here.

use chrono::{DateTime, Utc};
use thiserror::Error;

/// Milliseconds per day.
const MS_PER_DAY: f64 = 86_400_000.0;

/// Why no line could be fitted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrendError {
    /// A value is NaN or infinite.
    #[error("trend point {index} has a non-finite value")]
    NonFiniteValue {
        /// Position of the point in the input.
        index: usize,
    },
    /// Fewer than two points.
    #[error("a trend needs at least two points, got {points}")]
    TooFewPoints {
        /// Points given.
        points: usize,
    },
    /// All points share one time, so the slope is undefined.
    #[error("all trend points share the same time")]
    NoTimeSpread,
}

/// A fitted line `value = intercept + slope_per_day · days_since_epoch`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearTrend {
    /// Points fitted (≥ 2).
    pub points: usize,
    /// Change of the metric per day.
    pub slope_per_day: f64,
    /// Fitted value at the Unix epoch (x = 0); see [`value_at`](Self::value_at).
    pub intercept: f64,
    /// Coefficient of determination `r²` in `[0, 1]` (0 when the values are constant).
    pub r_squared: f64,
    /// Standard error of the slope, per day (0 with two points).
    pub slope_std_error: f64,
    /// Two-sided p-value of the null hypothesis "slope = 0" (Student t, `n − 2` degrees of
    /// freedom), in `[0, 1]`; with two points 0, or 1 if their values are equal (scipy's
    /// convention). `1 − p_value` is the trend's confidence.
    pub p_value: f64,
}

impl LinearTrend {
    /// The fitted value at `time`.
    pub fn value_at(&self, time: DateTime<Utc>) -> f64 {
        self.intercept + self.slope_per_day * days_since_epoch(time)
    }

    /// When the fitted line reaches `threshold`: `Some(time)` if that happens after `now`,
    /// `None` if the line is flat, crossed it at or before `now`, or would cross it beyond
    /// the representable calendar (year ±262 000).
    pub fn threshold_crossing(&self, threshold: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.slope_per_day == 0.0 || !threshold.is_finite() {
            return None;
        }
        let crossing_ms = (threshold - self.intercept) / self.slope_per_day * MS_PER_DAY;
        // ±2^62 ms is well inside i64 and beyond chrono's range, which rejects the rest.
        if crossing_ms.is_nan() || crossing_ms.abs() >= 4.6e18 {
            return None;
        }
        let crossing = DateTime::from_timestamp_millis(crossing_ms.round() as i64)?;
        (crossing > now).then_some(crossing)
    }
}

/// Days since the Unix epoch, as a real number.
fn days_since_epoch(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / MS_PER_DAY
}

/// Fits a line through `points` `(time, value)` by ordinary least squares, as
/// `scipy.stats.linregress(x, y)` does with `x` in days since the epoch.
///
/// Two passes: the means first, then the centered sums `Σ(x−x̄)²`, `Σ(y−ȳ)²` and
/// `Σ(x−x̄)(y−ȳ)` — numpy's own arithmetic, so results agree with it to ~1e-15 even when
/// `x` is large (≈ 20 000 days) and its spread small (a one-pass update loses up to
/// four digits there, which the p-value of a strong trend magnifies).
///
/// # Errors
/// [`TrendError::NonFiniteValue`] for a NaN or infinite value, [`TrendError::TooFewPoints`]
/// below two points, [`TrendError::NoTimeSpread`] when all points share one time.
pub fn fit_trend(points: &[(DateTime<Utc>, f64)]) -> Result<LinearTrend, TrendError> {
    if let Some(index) = points.iter().position(|(_, value)| !value.is_finite()) {
        return Err(TrendError::NonFiniteValue { index });
    }
    if points.len() < 2 {
        return Err(TrendError::TooFewPoints {
            points: points.len(),
        });
    }
    let count = points.len() as f64;
    let mean_x = points
        .iter()
        .map(|&(time, _)| days_since_epoch(time))
        .sum::<f64>()
        / count;
    let mean_y = points.iter().map(|&(_, value)| value).sum::<f64>() / count;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for &(time, value) in points {
        let dx = days_since_epoch(time) - mean_x;
        let dy = value - mean_y;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx <= 0.0 {
        return Err(TrendError::NoTimeSpread);
    }
    let denominator = (sxx * syy).sqrt();
    let r = if denominator == 0.0 {
        0.0
    } else {
        (sxy / denominator).clamp(-1.0, 1.0)
    };
    let slope = sxy / sxx;
    let (slope_std_error, p_value) = if points.len() == 2 {
        (0.0, if syy == 0.0 { 1.0 } else { 0.0 })
    } else {
        let dof = count - 2.0;
        // scipy's guard against division by zero for a perfect fit.
        const TINY: f64 = 1.0e-20;
        let t = r * (dof / ((1.0 - r + TINY) * (1.0 + r + TINY))).sqrt();
        (
            ((1.0 - r * r) * syy / sxx / dof).sqrt(),
            student_t_two_sided_p(t, dof),
        )
    };
    Ok(LinearTrend {
        points: points.len(),
        slope_per_day: slope,
        intercept: mean_y - slope * mean_x,
        r_squared: r * r,
        slope_std_error,
        p_value,
    })
}

/// `P(|T| ≥ |t|)` for Student's t with `dof > 0` degrees of freedom:
/// `I_{dof/(dof+t²)}(dof/2, 1/2)`.
pub fn student_t_two_sided_p(t: f64, dof: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    let t_squared = t * t;
    if t_squared.is_infinite() {
        return 0.0;
    }
    let x = dof / (dof + t_squared);
    let one_minus_x = t_squared / (dof + t_squared);
    regularized_incomplete_beta(dof / 2.0, 0.5, x, one_minus_x)
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, `x` in `[0, 1]`;
/// `one_minus_x` is `1 − x` computed by the caller without cancellation. Evaluated with
/// the continued fraction of Numerical Recipes (modified Lentz), on the side of the
/// distribution's mean where it converges fast, to about 1e-15 relative.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64, one_minus_x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if one_minus_x <= 0.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() + b * one_minus_x.ln() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_continued_fraction(a, b, x) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - ln_front.exp() * beta_continued_fraction(b, a, one_minus_x) / b).clamp(0.0, 1.0)
    }
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `ln Γ(x)` for `x > 0`: Lanczos approximation (g = 671/128, 14 terms, Numerical Recipes
/// 3rd ed.), relative error below 1e-15.
#[allow(
    clippy::excessive_precision,
    reason = "the published coefficients, kept verbatim"
)]
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 14] = [
        57.156_235_665_862_923_5,
        -59.597_960_355_475_491_2,
        14.136_097_974_741_747_1,
        -0.491_913_816_097_620_199,
        0.339_946_499_848_118_887e-4,
        0.465_236_289_270_485_756e-4,
        -0.983_744_753_048_795_646e-4,
        0.158_088_703_224_912_494e-3,
        -0.210_264_441_724_104_883e-3,
        0.217_439_618_115_212_643e-3,
        -0.164_318_106_536_763_890e-3,
        0.844_182_239_838_527_433e-4,
        -0.261_908_384_015_814_087e-4,
        0.368_991_826_595_316_234e-5,
    ];
    let shifted = x + 5.242_187_5;
    let head = (x + 0.5) * shifted.ln() - shifted;
    let mut series = 0.999_999_999_999_997_092;
    let mut denominator = x;
    for c in COEFFICIENTS {
        denominator += 1.0;
        series += c / denominator;
    }
    head + (2.506_628_274_631_000_5 * series / x).ln()
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes `betacf`).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITERATIONS: u32 = 100_000;
    const TOLERANCE: f64 = f64::EPSILON;
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (sum, plus_one, minus_one) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - sum * x / plus_one);
    let mut h = d;
    for m in 1..=MAX_ITERATIONS {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((minus_one + m2) * (a + m2));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (sum + m) * x / ((a + m2) * (plus_one + m2));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() <= TOLERANCE {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis((d * MS_PER_DAY).round() as i64).expect("in range")
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-14
        ));
        assert!(ln_gamma(1.0).abs() < 1e-15);
        assert!(ln_gamma(2.0).abs() < 1e-15);
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-14));
        assert!(close(ln_gamma(100.5), 361.435_540_467_777_6, 1e-14));
    }

    #[test]
    fn t_tail_matches_closed_forms() {
        // One degree of freedom is Cauchy: p = 1 − 2·atan(|t|)/π.
        for t in [0.1f64, 1.0, 3.0, 50.0] {
            let expected = 1.0 - 2.0 * f64::atan(t) / std::f64::consts::PI;
            assert!(
                close(student_t_two_sided_p(t, 1.0), expected, 1e-13),
                "t={t}"
            );
        }
        // Two degrees of freedom: p = 1 − |t| / √(2 + t²).
        for t in [0.5f64, 2.0, 10.0] {
            let expected = 1.0 - t / (2.0 + t * t).sqrt();
            assert!(
                close(student_t_two_sided_p(t, 2.0), expected, 1e-12),
                "t={t}"
            );
        }
        assert_eq!(student_t_two_sided_p(0.0, 5.0), 1.0);
        assert_eq!(student_t_two_sided_p(f64::INFINITY, 5.0), 0.0);
    }

    #[test]
    fn fits_a_noisy_line() {
        let points: Vec<(DateTime<Utc>, f64)> = (0..10)
            .map(|i| {
                (
                    day(20_000.0 + f64::from(i)),
                    0.9 - 0.002 * f64::from(i) + if i % 2 == 0 { 1e-3 } else { -1e-3 },
                )
            })
            .collect();
        let trend = fit_trend(&points).expect("fits");
        assert_eq!(trend.points, 10);
        assert!(close(trend.slope_per_day, -0.002, 0.2));
        assert!(trend.p_value < 0.01);
        let crossing = trend
            .threshold_crossing(0.85, day(20_009.0))
            .expect("declining towards it");
        assert!(close(trend.value_at(crossing), 0.85, 1e-9));
        assert_eq!(
            trend.threshold_crossing(0.95, day(20_009.0)),
            None,
            "crossed in the past"
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(fit_trend(&[]), Err(TrendError::TooFewPoints { points: 0 }));
        assert_eq!(
            fit_trend(&[(day(1.0), 1.0), (day(1.0), 2.0)]),
            Err(TrendError::NoTimeSpread)
        );
        assert_eq!(
            fit_trend(&[(day(1.0), f64::NAN)]),
            Err(TrendError::NonFiniteValue { index: 0 })
        );
        let flat = fit_trend(&[(day(1.0), 3.0), (day(2.0), 3.0), (day(3.0), 3.0)]).expect("fits");
        assert_eq!(
            (flat.slope_per_day, flat.r_squared, flat.p_value),
            (0.0, 0.0, 1.0)
        );
        assert_eq!(flat.threshold_crossing(1.0, day(0.0)), None);
        let two = fit_trend(&[(day(1.0), 3.0), (day(2.0), 5.0)]).expect("fits");
        assert_eq!(
            (two.slope_per_day, two.p_value, two.slope_std_error),
            (2.0, 0.0, 0.0)
        );
    }
}

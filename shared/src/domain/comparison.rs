//! Two slices of a model's traffic side by side (a baseline, e.g. the current version,
//! and a candidate, e.g. a canary): every metric of both, the difference, and for the
//! proportions a significance test.
//!
//! **Proportions** (accuracy over labeled predictions, error rate over predictions):
//! the two-proportion z-test with the pooled proportion,
//! `z = (p_c − p_b) / √(p(1−p)(1/n_b + 1/n_c))`, two-sided p-value `erfc(|z|/√2)` —
//! the p-value of scipy's `chi2_contingency` on the 2×2 table without continuity
//! correction (χ² = z²), which the reference fixtures check —, and the 95 % Wald
//! interval of the difference `p_c − p_b ± 1.96 √(p_b(1−p_b)/n_b + p_c(1−p_c)/n_c)`.
//! A test needs [`MIN_TESTED`] on each side (the normal approximation's floor).
//!
//! **Latency quantiles**: the sketch estimates each quantile within
//! [`LATENCY_RELATIVE_ACCURACY`] of its value, so the true difference lies within
//! `bound = α (q_b + q_c)` of the difference shown; no test (the sketch keeps no
//! per-request variance).
//!
//! **Verdict** at [`SIGNIFICANCE_LEVEL`], from the proportion tests: `candidate_worse`
//! when a test finds the candidate significantly worse (lower accuracy, higher error
//! rate), else `candidate_better` when one finds it significantly better, else
//! `no_difference`; `insufficient_data` when no test could run.

use serde::Serialize;

use super::metrics::{MetricName, MetricSet};
use super::sketch::LATENCY_RELATIVE_ACCURACY;

/// The significance level of the verdict (two-sided, per test).
pub const SIGNIFICANCE_LEVEL: f64 = 0.05;

/// The fewest observations on each side a proportion test runs with.
pub const MIN_TESTED: u64 = 30;

/// The two-sided 97.5 % quantile of the standard normal distribution (95 % intervals).
const Z_95: f64 = 1.959_963_984_540_054;

/// A two-proportion z-test of candidate against baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProportionTest {
    /// Always `two_proportion_z`.
    pub method: &'static str,
    /// The z statistic of `candidate − baseline` (0 when both proportions are 0 or 1).
    pub z: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// The 95 % interval of `candidate − baseline`.
    pub ci: [f64; 2],
    /// Whether `p_value` is below [`SIGNIFICANCE_LEVEL`].
    pub significant: bool,
}

/// The test of `x_c / n_c` against `x_b / n_b`; `None` when a side has fewer than
/// [`MIN_TESTED`] observations.
pub fn two_proportion_test(x_b: u64, n_b: u64, x_c: u64, n_c: u64) -> Option<ProportionTest> {
    if n_b < MIN_TESTED || n_c < MIN_TESTED || x_b > n_b || x_c > n_c {
        return None;
    }
    let (nb, nc) = (n_b as f64, n_c as f64);
    let (pb, pc) = (x_b as f64 / nb, x_c as f64 / nc);
    let pooled = (x_b + x_c) as f64 / (nb + nc);
    let se = (pooled * (1.0 - pooled) * (1.0 / nb + 1.0 / nc)).sqrt();
    let z = if se > 0.0 { (pc - pb) / se } else { 0.0 };
    let p_value = libm::erfc(z.abs() / std::f64::consts::SQRT_2);
    let half = Z_95 * (pb * (1.0 - pb) / nb + pc * (1.0 - pc) / nc).sqrt();
    let difference = pc - pb;
    Some(ProportionTest {
        method: "two_proportion_z",
        z,
        p_value,
        ci: [difference - half, difference + half],
        significant: p_value < SIGNIFICANCE_LEVEL,
    })
}

/// One metric of both slices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: MetricName,
    /// The baseline slice's value.
    pub baseline: Option<f64>,
    /// The candidate slice's value.
    pub candidate: Option<f64>,
    /// `candidate − baseline`, when both have a value.
    pub difference: Option<f64>,
    /// Whether higher values are better.
    pub higher_is_better: bool,
    /// The significance test (accuracy, error rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<ProportionTest>,
    /// How far the true difference may lie from `difference` by the sketch's error
    /// (latency quantiles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
}

/// What the comparison concludes about the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A test found it significantly worse.
    CandidateWorse,
    /// No test found a significant difference.
    NoDifference,
    /// A test found it significantly better and none worse.
    CandidateBetter,
    /// Too few observations on a side for any test.
    InsufficientData,
}

/// Every metric of two slices side by side, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The significance level of the tests and the verdict.
    pub significance_level: f64,
    /// Each metric either slice has, in [`MetricName::ALL`] order.
    pub metrics: Vec<MetricComparison>,
    /// The conclusion.
    pub verdict: Verdict,
}

/// The successes and trials of a proportion metric, if `metric` is one.
fn proportion(metric: MetricName, m: &MetricSet) -> Option<(u64, u64)> {
    match metric {
        // Accuracy is correct / labeled: its numerator is an integer.
        MetricName::Accuracy => Some(((m.accuracy? * m.labeled as f64).round() as u64, m.labeled)),
        MetricName::ErrorRate => Some((m.errors, m.predictions)),
        _ => None,
    }
}

/// Whether `metric` is a latency quantile read from the sketch.
fn is_latency_quantile(metric: MetricName) -> bool {
    matches!(
        metric,
        MetricName::LatencyP50 | MetricName::LatencyP95 | MetricName::LatencyP99
    )
}

/// Compares `candidate` with `baseline`.
pub fn compare(baseline: &MetricSet, candidate: &MetricSet) -> Comparison {
    let mut metrics = Vec::new();
    let (mut worse, mut better, mut tested) = (false, false, false);
    for metric in MetricName::ALL {
        let (b, c) = (baseline.get(metric), candidate.get(metric));
        if b.is_none() && c.is_none() {
            continue;
        }
        let higher_is_better = super::alerting::rules::higher_is_better(metric);
        let test = proportion(metric, baseline)
            .zip(proportion(metric, candidate))
            .and_then(|((xb, nb), (xc, nc))| two_proportion_test(xb, nb, xc, nc));
        if let Some(test) = &test {
            tested = true;
            let up = test.z > 0.0;
            if test.significant {
                if up == higher_is_better {
                    better = true;
                } else {
                    worse = true;
                }
            }
        }
        let bound = b
            .zip(c)
            .filter(|_| is_latency_quantile(metric))
            .map(|(b, c)| LATENCY_RELATIVE_ACCURACY * (b + c));
        metrics.push(MetricComparison {
            metric,
            baseline: b,
            candidate: c,
            difference: b.zip(c).map(|(b, c)| c - b),
            higher_is_better,
            test,
            bound,
        });
    }
    let verdict = match (tested, worse, better) {
        (false, _, _) => Verdict::InsufficientData,
        (true, true, _) => Verdict::CandidateWorse,
        (true, false, true) => Verdict::CandidateBetter,
        (true, false, false) => Verdict::NoDifference,
    };
    Comparison {
        significance_level: SIGNIFICANCE_LEVEL,
        metrics,
        verdict,
    }
}

#[cfg(test)]
mod tests;

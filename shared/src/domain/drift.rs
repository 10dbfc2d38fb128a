//! Prediction drift: how far a window's distribution of predictions moved from a
//! reference's, as the population stability index (PSI) and the Jensen–Shannon distance,
//! over bins cut from the reference.
//!
//! **Bins.** What is compared, by task:
//! - binary classifiers: the scores of all predictions (both predicted classes) in the
//!   state's [`SCORE_BINS`](super::SCORE_BINS) histogram bins;
//! - multiclass classifiers: the predicted label of every prediction — one drift bin per
//!   label the reference predicted (its [`MAX_LABELS`](super::MAX_LABELS) cap and
//!   overflow bucket as in the state), and one more for labels the reference never
//!   predicted;
//! - regressors: the predicted values, in the [`ValueSketch`]'s buckets (1 % relative
//!   width, signed);
//! - and, beside the predicted labels, when a multiclass classifier's predictions carry
//!   a score: the predicted label's score — the model's *confidence* — in the state's
//!   [`SCORE_BINS`](super::SCORE_BINS) histogram bins. It moves when the inputs shift
//!   towards cases the model is unsure of, often before the label mix does.
//!
//! For scores and values the cut points are the reference's lower deciles — for
//! `k = 1..9` the bucket holding the value of rank `⌈k·n/10⌉` (numpy's
//! `quantile(…, method="inverted_cdf")` of the bucket order) — with repeats dropped, so
//! a reference with heavy ties gets fewer drift bins. Drift bin `i` holds the buckets
//! above cut `i − 1` up to and including cut `i`; the last one everything above the
//! last cut. As a cut is a bucket, not a value — 1/1000 wide for scores, 1 % of the
//! value for regression — a drift bin's share moves by at most the share of the values
//! within one bucket of its two cuts.
//!
//! **PSI** `= Σ (w − r) · ln(w / r)` over the drift bins, `r` and `w` the reference's and
//! the window's shares, each floored at [`SHARE_FLOOR`] (no renormalization) so an empty
//! bin stays finite. Rule of thumb: below 0.1 stable, 0.1–0.2 moderate, above 0.2 a
//! significant shift.
//!
//! **Jensen–Shannon distance** `= √(½ KL(r ‖ m) + ½ KL(w ‖ m))`, `m = (r + w) / 2`, in
//! base-2 logarithms so it lies in `[0, 1]` — scipy's
//! `scipy.spatial.distance.jensenshannon(r, w, base=2)`; no floor needed.

use super::record::Task;
use super::sketch::ValueSketch;
use super::window::{QualityStats, WindowState};

/// Most drift bins of scores and values: the reference's deciles.
pub const DRIFT_BINS: usize = 10;

/// The smallest share PSI takes for a bin, so an empty bin stays finite.
pub const SHARE_FLOOR: f64 = 1e-4;

/// Which predictions a drift compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftDistribution {
    /// A binary classifier's scores.
    Score,
    /// A multiclass classifier's predicted labels.
    PredictedLabel,
    /// A regressor's predicted values.
    PredictedValue,
    /// A multiclass classifier's score of the label it predicted (its confidence).
    PredictedClassScore,
}

impl DriftDistribution {
    /// The wire name: `score`, `predicted_label`, `predicted_value`,
    /// `predicted_class_score`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Score => "score",
            Self::PredictedLabel => "predicted_label",
            Self::PredictedValue => "predicted_value",
            Self::PredictedClassScore => "predicted_class_score",
        }
    }

    /// The distribution whose drift stands for a model of `task`'s: the one
    /// `prediction_psi` and `prediction_js` measure.
    pub fn of_task(task: Task) -> Self {
        match task {
            Task::BinaryClassification => Self::Score,
            Task::MulticlassClassification => Self::PredictedLabel,
            Task::Regression => Self::PredictedValue,
        }
    }
}

/// The reference side of a drift comparison: its bins and shares.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReference {
    distribution: DriftDistribution,
    bins: DriftBins,
    shares: Vec<f64>,
}

/// How a distribution's buckets fall into drift bins.
#[derive(Debug, Clone, PartialEq)]
enum DriftBins {
    /// Ordered bucket keys: the last key (inclusive) of every drift bin but the last,
    /// ascending.
    Cuts(Vec<i64>),
    /// The reference's predicted labels, ascending; one more bin for any other.
    Labels(Vec<Box<str>>),
}

/// Drift of one window against a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionDrift {
    /// What was compared.
    pub distribution: DriftDistribution,
    /// Population stability index.
    pub psi: f64,
    /// Jensen–Shannon distance, base 2.
    pub js: f64,
    /// Predictions of the window compared.
    pub predictions: u64,
    /// Drift bins compared.
    pub bins: usize,
}

/// A state's distribution of predictions as ordered `(bucket key, count)` pairs, or as
/// `(label, count)` pairs.
enum Buckets<'a> {
    Ordered(DriftDistribution, Vec<(i64, u64)>),
    Labels(Vec<(&'a str, u64)>),
}

impl<'a> Buckets<'a> {
    /// The distribution `what` of `state`'s predictions; `None` when it holds none (or
    /// is not one of its task's).
    fn of(state: &'a WindowState, what: DriftDistribution) -> Option<Self> {
        let buckets = match (state.quality()?, what) {
            (QualityStats::Binary(stats), DriftDistribution::Score) => {
                Self::Ordered(what, score_buckets(stats.distribution()?.all()))
            }
            (QualityStats::Multiclass(stats), DriftDistribution::PredictedLabel) => {
                Self::Labels(stats.served())
            }
            (QualityStats::Multiclass(stats), DriftDistribution::PredictedClassScore) => {
                Self::Ordered(
                    what,
                    score_buckets(stats.predicted_scores()?.iter().copied()),
                )
            }
            (QualityStats::Regression(stats), DriftDistribution::PredictedValue) => {
                Self::Ordered(what, stats.served().map(ValueSketch::ordered_buckets)?)
            }
            _ => return None,
        };
        (buckets.count() > 0).then_some(buckets)
    }

    fn distribution(&self) -> DriftDistribution {
        match self {
            Self::Ordered(distribution, _) => *distribution,
            Self::Labels(_) => DriftDistribution::PredictedLabel,
        }
    }

    fn count(&self) -> u64 {
        match self {
            Self::Ordered(_, buckets) => buckets.iter().fold(0, |n, &(_, c)| n.saturating_add(c)),
            Self::Labels(labels) => labels.iter().fold(0, |n, &(_, c)| n.saturating_add(c)),
        }
    }
}

/// A score histogram's non-empty bins as ordered buckets.
fn score_buckets(bins: impl Iterator<Item = u64>) -> Vec<(i64, u64)> {
    bins.enumerate()
        .filter(|&(_, c)| c > 0)
        .map(|(bin, c)| (bin as i64, c))
        .collect()
}

impl DriftReference {
    /// The bins and shares of the distribution `what` of `reference`'s predictions;
    /// `None` when it holds none.
    pub fn of_state(reference: &WindowState, what: DriftDistribution) -> Option<Self> {
        let buckets = Buckets::of(reference, what)?;
        let n = buckets.count();
        let bins = match &buckets {
            Buckets::Ordered(_, ordered) => DriftBins::Cuts(decile_cuts(ordered, n)),
            Buckets::Labels(labels) => {
                DriftBins::Labels(labels.iter().map(|&(label, _)| label.into()).collect())
            }
        };
        let shares = bins.shares(&buckets, n);
        Some(Self {
            distribution: buckets.distribution(),
            bins,
            shares,
        })
    }

    /// Drift bins in use.
    pub fn bins(&self) -> usize {
        self.shares.len()
    }

    /// The drift of `window` (a state of the same model) from the reference; `None`
    /// without predictions.
    pub fn drift_of_state(&self, window: &WindowState) -> Option<PredictionDrift> {
        let buckets = Buckets::of(window, self.distribution)?;
        let n = buckets.count();
        let observed = self.bins.shares(&buckets, n);
        Some(PredictionDrift {
            distribution: self.distribution,
            psi: psi(&self.shares, &observed),
            js: js_distance(&self.shares, &observed),
            predictions: n,
            bins: self.bins(),
        })
    }
}

/// The keys of the buckets holding the values of rank `⌈k·n/10⌉`, `k = 1..9`, of the
/// ordered `buckets` of `n` values, repeats dropped.
fn decile_cuts(buckets: &[(i64, u64)], n: u64) -> Vec<i64> {
    let mut cuts: Vec<i64> = Vec::with_capacity(DRIFT_BINS - 1);
    let mut walk = buckets.iter();
    let (mut key, mut cumulative) = (i64::MIN, 0_u64);
    for k in 1..DRIFT_BINS as u128 {
        // Rank ⌈k·n/10⌉ (1-based), at least 1; the counts sum to n (saturated like
        // it), so the walk ends within the buckets.
        let rank = (k * u128::from(n)).div_ceil(DRIFT_BINS as u128).max(1) as u64;
        while cumulative < rank {
            let Some(&(next, count)) = walk.next() else {
                break;
            };
            (key, cumulative) = (next, cumulative.saturating_add(count));
        }
        if cuts.last() != Some(&key) {
            cuts.push(key);
        }
    }
    cuts
}

impl DriftBins {
    /// The shares of the drift bins in `buckets` of `n` values.
    fn shares(&self, buckets: &Buckets<'_>, n: u64) -> Vec<f64> {
        let mut totals = match self {
            Self::Cuts(cuts) => vec![0_u64; cuts.len() + 1],
            Self::Labels(labels) => vec![0_u64; labels.len() + 1],
        };
        let mut add = |bin: usize, count: u64| totals[bin] = totals[bin].saturating_add(count);
        match (self, buckets) {
            (Self::Cuts(cuts), Buckets::Ordered(_, ordered)) => {
                for &(key, count) in ordered {
                    add(cuts.partition_point(|&cut| cut < key), count);
                }
            }
            (Self::Labels(labels), Buckets::Labels(counted)) => {
                for &(label, count) in counted {
                    let bin = labels
                        .binary_search_by(|known| (**known).cmp(label))
                        .unwrap_or(labels.len());
                    add(bin, count);
                }
            }
            // The same model's states hold one task.
            _ => {}
        }
        totals.iter().map(|&c| c as f64 / n.max(1) as f64).collect()
    }
}

/// Population stability index of `observed` against `expected` shares (module docs).
pub fn psi(expected: &[f64], observed: &[f64]) -> f64 {
    expected
        .iter()
        .zip(observed)
        .map(|(&r, &w)| {
            let (r, w) = (r.max(SHARE_FLOOR), w.max(SHARE_FLOOR));
            (w - r) * (w / r).ln()
        })
        .sum()
}

/// Jensen–Shannon distance (base 2) between two share vectors that each sum to 1.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mean = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = (a + b) / 2.0;
            0.5 * kl_to_mean(a, m) + 0.5 * kl_to_mean(b, m)
        })
        .sum();
    divergence.max(0.0).sqrt().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_shares_do_not_drift() {
        let shares = [0.1; 10];
        assert_eq!(psi(&shares, &shares), 0.0);
        assert_eq!(js_distance(&shares, &shares), 0.0);
    }

    #[test]
    fn disjoint_shares_are_at_the_largest_distance() {
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        // Both bins floored: (1 − 1e-4)·ln(1e4) twice.
        let expected = 2.0 * (1.0 - SHARE_FLOOR) * (1.0 / SHARE_FLOOR).ln();
        assert!((psi(&[1.0, 0.0], &[0.0, 1.0]) - expected).abs() < 1e-9);
    }

    #[test]
    fn psi_matches_a_hand_computation() {
        let (r, w) = ([0.5, 0.5], [0.6, 0.4]);
        let expected = 0.1 * (0.6_f64 / 0.5).ln() + (-0.1) * (0.4_f64 / 0.5).ln();
        assert!((psi(&r, &w) - expected).abs() < 1e-15);
    }
}

//! Performance without labels: confidence-based performance estimation (CBPE, as
//! NannyML defines it) for binary classifiers, from a window's [`ScoreDistribution`]
//! and a [`Calibration`] fitted on a reference window's labeled records.
//!
//! **Method.** Every prediction of the window has a predicted class and a score in one
//! of the [`SCORE_BINS`] bins; the calibration maps a bin to `p = P(actual = 1)`. Under
//! CBPE's assumptions a prediction of the positive class is a true positive with
//! probability `p` and a false positive otherwise; a negative one a false negative with
//! probability `p` and a true negative otherwise. Summed over the window this gives the
//! expected confusion matrix, hence accuracy, precision, recall and F1. ROC AUC is the
//! area under the expected ROC curve: each bin holds `c·p` expected positives and
//! `c·(1 − p)` negatives, ranked by score, a positive and a negative of the same bin
//! counting ½ — NannyML's `estimate_roc_auc` curve, closed exactly at `(0, 0)`.
//!
//! **Calibration.** Per bin, the reference's positive fraction among its labeled,
//! scored records; made monotone non-decreasing in the score by isotonic regression over
//! the bins (pool-adjacent-violators, each bin weighted by its labeled count — what
//! scikit-learn's `IsotonicRegression` fits to scores that share a bin); bins without
//! reference labels take the linear interpolation between the fitted bins around them,
//! and beyond the first or last fitted bin its value (`out_of_bounds="clip"`). Scores are
//! taken at their bin's centre, so every score of a bin gets the same probability.
//!
//! **Confidence intervals** (95 %, normal approximation, clamped to `[0, 1]`): the
//! sampling error of the window's own size. Given the scores, the realized confusion
//! cells are sums of independent Bernoulli trials with the calibrated probabilities, so
//! the realized accuracy has variance `Σ p(1 − p) / n²` and precision
//! `Σ_{predicted 1} p(1 − p) / n₁²`; recall and F1 take the delta method over the
//! independent true-positive and false-negative sums; ROC AUC takes Hanley and McNeil's
//! (1982) standard error at the expected class sizes. Added to the first four: the
//! calibration's own error — each isotonic block's probability varies as `p(1 − p) / w`
//! over its `w` reference labels, and moves every window bin calibrated from it at
//! once (delta method per block; an interpolated bin counts with the block below it).
//!
//! **Assumptions and refusals.** CBPE assumes no concept shift (`P(actual | score)` of
//! the window is the reference's) and that the reference's calibration transfers; under
//! covariate shift alone the estimate follows the realized value. No estimate is given
//! when the reference has fewer than [`MIN_REFERENCE_LABELS`] labeled scored records or
//! only one class among them ([`NotEstimable`]), or when the window holds no scored
//! prediction.

use super::classification::{BinaryStats, SCORE_BINS, ScoreDistribution};
use super::drift::{DriftDistribution, DriftReference, PredictionDrift};
use super::record::Task;
use super::window::{QualityStats, WindowState};

/// Fewest labeled, scored reference records a [`Calibration`] is fitted from.
pub const MIN_REFERENCE_LABELS: u64 = 100;

/// Two-sided 95 % quantile of the standard normal distribution.
const Z_95: f64 = 1.959_963_984_540_054;

/// Why a reference gives no [`Calibration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotEstimable {
    /// Fewer labeled, scored records than [`MIN_REFERENCE_LABELS`].
    #[error(
        "the reference has {labeled} labeled records with a score; estimates need {MIN_REFERENCE_LABELS}"
    )]
    TooFewReferenceLabels {
        /// Labeled, scored records in the reference.
        labeled: u64,
    },
    /// Every labeled reference record has the same actual class: nothing to calibrate.
    #[error("the reference's labeled records are all of one class; scores cannot be calibrated")]
    SingleClassReference,
}

/// Why a window has no estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoEstimate {
    /// The model has no reference window yet.
    #[error(
        "no reference window yet: register one (PUT …/baseline \"reference\") or wait for the first 24 hours to be captured"
    )]
    NoReference,
    /// Estimates cover binary classifiers for now.
    #[error("estimates cover binary classifiers for now")]
    NotBinary,
    /// The reference gives no calibration.
    #[error(transparent)]
    Reference(#[from] NotEstimable),
    /// The window holds no prediction with a predicted class and a score.
    #[error("the window holds no prediction with a predicted class and a score")]
    NoScoredPredictions,
}

/// The binary statistics of a state, if it is a binary classifier's.
fn binary(state: &WindowState) -> Option<&BinaryStats> {
    match state.quality()? {
        QualityStats::Binary(stats) => Some(stats),
        _ => None,
    }
}

/// A window against its model's reference: the estimated performance, or why there is
/// none, and the drift of its predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The estimate, or why there is none.
    pub estimate: Result<BinaryEstimate, NoEstimate>,
    /// The drift of the window's predictions (scores, predicted labels or values);
    /// `None` unless the reference and the window both hold predictions.
    pub drift: Option<PredictionDrift>,
    /// The drift of a multiclass classifier's confidence, the score of its predicted
    /// label; `None` unless the reference and the window both hold scored predictions.
    pub confidence_drift: Option<PredictionDrift>,
}

/// A model's reference window prepared once — calibration fitted, drift bins cut — for
/// comparing any number of windows with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceFit {
    calibration: Result<Calibration, NoEstimate>,
    drift: Option<DriftReference>,
    confidence_drift: Option<DriftReference>,
}

impl ReferenceFit {
    /// The fit of a model of `task` whose reference window merged to `reference`
    /// (`None`: the model has no reference yet). Drift is measured for every task;
    /// estimates are binary classifiers' only.
    pub fn of(task: Task, reference: Option<&WindowState>) -> Self {
        let calibration = match (task, reference) {
            (Task::MulticlassClassification | Task::Regression, _) => Err(NoEstimate::NotBinary),
            (Task::BinaryClassification, None) => Err(NoEstimate::NoReference),
            (Task::BinaryClassification, Some(reference)) => binary(reference)
                .ok_or(NotEstimable::TooFewReferenceLabels { labeled: 0 })
                .and_then(Calibration::fit)
                .map_err(NoEstimate::from),
        };
        let drift_of = |what| reference.and_then(|r| DriftReference::of_state(r, what));
        Self {
            calibration,
            drift: drift_of(DriftDistribution::of_task(task)),
            confidence_drift: (task == Task::MulticlassClassification)
                .then(|| drift_of(DriftDistribution::PredictedClassScore))
                .flatten(),
        }
    }

    /// `window` (of the same model) against the reference.
    pub fn compare(&self, window: &WindowState) -> Comparison {
        let estimate = match &self.calibration {
            Err(why) => Err(*why),
            Ok(calibration) => binary(window)
                .and_then(BinaryStats::distribution)
                .and_then(|d| calibration.estimate(d))
                .ok_or(NoEstimate::NoScoredPredictions),
        };
        let drift_of = |reference: &Option<DriftReference>| {
            reference
                .as_ref()
                .and_then(|reference| reference.drift_of_state(window))
        };
        Comparison {
            estimate,
            drift: drift_of(&self.drift),
            confidence_drift: drift_of(&self.confidence_drift),
        }
    }
}

/// The map score bin → `P(actual = 1)` fitted on a reference (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    probability: Box<[f64; SCORE_BINS]>,
    /// The isotonic block each bin's probability comes from (for a bin between two
    /// fitted bins, the block of the one below; before the first, the first block).
    block_of: Box<[u16; SCORE_BINS]>,
    /// Per block: its fitted probability's variance, `p(1 − p) / labeled records`.
    block_variance: Vec<f64>,
    labeled: u64,
}

/// The centre of score bin `bin`: the score every record of the bin is taken at.
pub fn bin_centre(bin: usize) -> f64 {
    (bin as f64 + 0.5) / SCORE_BINS as f64
}

impl Calibration {
    /// Fits the calibration on `reference`'s labeled, scored records.
    ///
    /// # Errors
    /// [`NotEstimable`] when the reference has too few such records or one class only.
    pub fn fit(reference: &BinaryStats) -> Result<Self, NotEstimable> {
        let Some((positives, negatives)) = reference.labeled_scores() else {
            return Err(NotEstimable::TooFewReferenceLabels { labeled: 0 });
        };
        let total = |bins: &[u64; SCORE_BINS]| bins.iter().fold(0_u64, |a, &c| a.saturating_add(c));
        let (p_total, n_total) = (total(positives), total(negatives));
        let labeled = p_total.saturating_add(n_total);
        if labeled < MIN_REFERENCE_LABELS {
            return Err(NotEstimable::TooFewReferenceLabels { labeled });
        }
        if p_total == 0 || n_total == 0 {
            return Err(NotEstimable::SingleClassReference);
        }
        // Pool adjacent violators over the non-empty bins (`points`): each block's mean
        // is its fitted value; the block means end non-decreasing.
        let mut points: Vec<usize> = Vec::new();
        let mut blocks: Vec<Block> = Vec::new();
        for (bin, (&p, &n)) in positives.iter().zip(negatives).enumerate() {
            let weight = p.saturating_add(n);
            if weight == 0 {
                continue;
            }
            points.push(bin);
            let mut block = Block {
                positives: p as f64,
                weight: weight as f64,
                points: 1,
            };
            while let Some(previous) = blocks.pop_if(|previous| previous.mean() > block.mean()) {
                block = Block {
                    positives: previous.positives + block.positives,
                    weight: previous.weight + block.weight,
                    points: previous.points + block.points,
                };
            }
            blocks.push(block);
        }
        let fitted: Vec<f64> = blocks
            .iter()
            .flat_map(|block| std::iter::repeat_n(block.mean(), block.points))
            .collect();
        // At most SCORE_BINS blocks: the index fits u16.
        let point_block: Vec<u16> = (0..blocks.len() as u16)
            .flat_map(|i| std::iter::repeat_n(i, blocks[usize::from(i)].points))
            .collect();
        let mut probability = Box::new([0.0; SCORE_BINS]);
        let mut block_of = Box::new([0_u16; SCORE_BINS]);
        let mut next = 0; // index in `points` of the first fitted bin ≥ the current one
        for (bin, slot) in probability.iter_mut().enumerate() {
            while next < points.len() && points[next] < bin {
                next += 1;
            }
            let exact = points.get(next) == Some(&bin);
            block_of[bin] = point_block[if exact { next } else { next.saturating_sub(1) }];
            *slot = match (next.checked_sub(1), points.get(next)) {
                (_, Some(&at)) if at == bin => fitted[next],
                (None, _) => fitted[0],
                (Some(before), None) => fitted[before],
                (Some(before), Some(&after)) => {
                    let (x0, x1) = (bin_centre(points[before]), bin_centre(after));
                    let t = (bin_centre(bin) - x0) / (x1 - x0);
                    fitted[before] + t * (fitted[next] - fitted[before])
                }
            };
        }
        let block_variance = blocks
            .iter()
            .map(|block| block.mean() * (1.0 - block.mean()) / block.weight)
            .collect();
        Ok(Self {
            probability,
            block_of,
            block_variance,
            labeled,
        })
    }

    /// `P(actual = 1)` of a score in `bin`.
    pub fn probability(&self, bin: usize) -> f64 {
        self.probability[bin.min(SCORE_BINS - 1)]
    }

    /// Labeled, scored reference records the calibration was fitted on.
    pub fn reference_labels(&self) -> u64 {
        self.labeled
    }

    /// The window's estimated performance; `None` when it holds no scored prediction.
    pub fn estimate(&self, window: &ScoreDistribution) -> Option<BinaryEstimate> {
        let mut sums = ExpectedCells {
            per_block: vec![[0.0; 2]; self.block_variance.len()],
            ..ExpectedCells::default()
        };
        for (bin, (&positive, &negative)) in window
            .predicted_positive()
            .iter()
            .zip(window.predicted_negative())
            .enumerate()
        {
            if positive > 0 || negative > 0 {
                let block = usize::from(self.block_of[bin]);
                sums.add(self.probability[bin], positive as f64, negative as f64);
                sums.per_block[block][0] += positive as f64;
                sums.per_block[block][1] += negative as f64;
            }
        }
        (sums.n > 0.0).then(|| sums.estimate(&self.block_variance))
    }
}

/// Adjacent non-empty bins pooled by the isotonic fit.
struct Block {
    positives: f64,
    weight: f64,
    points: usize,
}

impl Block {
    fn mean(&self) -> f64 {
        self.positives / self.weight
    }
}

/// An estimated metric with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Lower end of the interval, at least 0.
    pub low: f64,
    /// Upper end of the interval, at most 1.
    pub high: f64,
}

impl Estimate {
    fn with_variance(value: f64, variance: f64) -> Self {
        let half = Z_95 * variance.max(0.0).sqrt();
        Self {
            value,
            low: (value - half).max(0.0),
            high: (value + half).min(1.0),
        }
    }

    /// Whether `realized` lies within the interval.
    pub fn covers(&self, realized: f64) -> bool {
        (self.low..=self.high).contains(&realized)
    }
}

/// A window's estimated performance (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryEstimate {
    /// Expected correct / predictions.
    pub accuracy: Estimate,
    /// Expected true positives / predicted positives; `None` without a positive prediction.
    pub precision: Option<Estimate>,
    /// Expected true positives / expected positives; `None` when none is expected.
    pub recall: Option<Estimate>,
    /// `2·TP / (2·TP + FP + FN)` of the expected cells, 0 when that denominator is 0.
    pub f1_score: Estimate,
    /// Area under the expected ROC curve; `None` unless both classes are expected.
    pub auc_roc: Option<Estimate>,
    /// Scored predictions the estimate covers.
    pub predictions: u64,
}

/// Expected confusion cells of a window and the variances of their sums.
#[derive(Debug, Default)]
struct ExpectedCells {
    n: f64,
    predicted_positive: f64,
    true_positive: f64,
    false_negative: f64,
    true_negative: f64,
    variance_tp: f64,
    variance_fn: f64,
    /// Expected negatives in the bins so far (lower scores), and the doubled AUC area
    /// in expected pairs.
    negatives_below: f64,
    doubled_area: f64,
    /// Per calibration block: the window's predicted positives and negatives in it.
    per_block: Vec<[f64; 2]>,
}

impl ExpectedCells {
    /// Adds one bin (in ascending score order) with calibrated probability `p`.
    fn add(&mut self, p: f64, positive: f64, negative: f64) {
        let spread = p * (1.0 - p);
        self.n += positive + negative;
        self.predicted_positive += positive;
        self.true_positive += positive * p;
        self.false_negative += negative * p;
        self.true_negative += negative * (1.0 - p);
        self.variance_tp += positive * spread;
        self.variance_fn += negative * spread;
        let count = positive + negative;
        let (expected_positive, expected_negative) = (count * p, count * (1.0 - p));
        self.doubled_area += expected_positive * (2.0 * self.negatives_below + expected_negative);
        self.negatives_below += expected_negative;
    }

    /// The calibration's share of a metric's variance: `Σ_B (∂metric/∂p_B)² · Var p_B`
    /// over the blocks, `gradient` giving the derivative from a block's window counts
    /// (predicted positives, predicted negatives).
    fn calibration_variance(
        &self,
        block_variance: &[f64],
        gradient: impl Fn(f64, f64) -> f64,
    ) -> f64 {
        self.per_block
            .iter()
            .zip(block_variance)
            .map(|(&[positive, negative], &variance)| {
                gradient(positive, negative).powi(2) * variance
            })
            .sum()
    }

    fn estimate(&self, block_variance: &[f64]) -> BinaryEstimate {
        let n = self.n;
        let (tp, fn_, pp) = (
            self.true_positive,
            self.false_negative,
            self.predicted_positive,
        );
        let calibration = |gradient: &dyn Fn(f64, f64) -> f64| {
            self.calibration_variance(block_variance, gradient)
        };
        // Accuracy: a block's p raises TP of its positives and lowers TN of its negatives.
        let accuracy = Estimate::with_variance(
            (tp + self.true_negative) / n,
            (self.variance_tp + self.variance_fn) / (n * n)
                + calibration(&|positive, negative| (positive - negative) / n),
        );
        let precision = (pp > 0.0).then(|| {
            Estimate::with_variance(
                tp / pp,
                self.variance_tp / (pp * pp) + calibration(&|positive, _| positive / pp),
            )
        });
        let actual_positive = tp + fn_;
        let recall = (actual_positive > 0.0).then(|| {
            let squared = actual_positive * actual_positive;
            Estimate::with_variance(
                tp / actual_positive,
                (fn_ * fn_ * self.variance_tp + tp * tp * self.variance_fn) / (squared * squared)
                    + calibration(&|positive, negative| (positive * fn_ - tp * negative) / squared),
            )
        });
        // F1 = 2·TP / (TP + predicted positives + FN), FP = predicted positives − TP.
        let denominator = tp + pp + fn_;
        let f1_score = if denominator > 0.0 {
            let squared = denominator * denominator;
            let (d_tp, d_fn) = (2.0 * (pp + fn_), 2.0 * tp);
            Estimate::with_variance(
                2.0 * tp / denominator,
                (d_tp * d_tp * self.variance_tp + d_fn * d_fn * self.variance_fn)
                    / (squared * squared)
                    + calibration(&|positive, negative| {
                        (d_tp * positive - d_fn * negative) / squared
                    }),
            )
        } else {
            Estimate::with_variance(0.0, 0.0)
        };
        let (positives, negatives) = (actual_positive, n - actual_positive);
        let auc_roc = (positives > 0.0 && negatives > 0.0).then(|| {
            let auc = (self.doubled_area / (2.0 * positives * negatives)).clamp(0.0, 1.0);
            Estimate::with_variance(auc, hanley_mcneil_variance(auc, positives, negatives))
        });
        BinaryEstimate {
            accuracy,
            precision,
            recall,
            f1_score,
            auc_roc,
            predictions: n as u64,
        }
    }
}

/// Hanley and McNeil's (1982) variance of an AUC over `positives` and `negatives`.
fn hanley_mcneil_variance(auc: f64, positives: f64, negatives: f64) -> f64 {
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    (auc * (1.0 - auc)
        + (positives - 1.0).max(0.0) * (q1 - auc * auc)
        + (negatives - 1.0).max(0.0) * (q2 - auc * auc))
        / (positives * negatives)
}

#[cfg(test)]
#[path = "estimation_tests.rs"]
mod tests;

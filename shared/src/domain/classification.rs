//! Classification quality state: the binary confusion matrix with per-class score
//! histograms for AUC-ROC ([`BinaryStats`]), and the per-label one-vs-rest confusion
//! counts of multiclass models with their predicted-label and predicted-class score
//! distributions ([`MulticlassStats`]).
//!
//! Only *labeled* predictions count here: records with status `ok` that carry both a
//! prediction and the truth (for the AUC histograms: the truth and a score).

use std::collections::HashMap;

use super::bounds::OVERFLOW_BUCKET;
use super::codec::{DecodeError, Reader, Writer, add_bucket_count};
use super::error::FoldError;

/// Number of equal-width score bins on `[0, 1]` per class; bin `b` holds scores in
/// `[b/1000, (b+1)/1000)`, the last bin also holds 1.0.
pub const SCORE_BINS: usize = 1000;

/// Most distinct class labels one multiclass window may hold.
pub const MAX_LABELS: usize = 1000;

/// Longest class label in bytes (UTF-8).
pub const MAX_LABEL_BYTES: usize = 128;

/// Area under the ROC curve computed from the score histograms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AucEstimate {
    /// AUC-ROC in `[0, 1]`, pairs of a positive and a negative sharing a bin counted ½.
    pub value: f64,
    /// Largest possible deviation from the exact AUC: `½ · Σ_b p_b·n_b / (P·N)`.
    pub error_bound: f64,
}

/// Score histograms of the two classes (dense, allocated on the first score only): by
/// actual class for the labeled records, by predicted class in [`ScoreDistribution`].
#[derive(Debug, Clone, PartialEq)]
struct ScoreHistograms {
    positives: [u64; SCORE_BINS],
    negatives: [u64; SCORE_BINS],
}

impl ScoreHistograms {
    fn empty() -> Box<Self> {
        Box::new(Self {
            positives: [0; SCORE_BINS],
            negatives: [0; SCORE_BINS],
        })
    }

    /// Counts one score of class `positive` (checked to be in `[0, 1]`).
    #[inline]
    fn add(&mut self, positive: bool, score: f64) {
        let bins = if positive {
            &mut self.positives
        } else {
            &mut self.negatives
        };
        let bin = &mut bins[score_bin(score)];
        *bin = bin.saturating_add(1);
    }
}

/// Index of the bin holding `score` (which the caller checked to be in `[0, 1]`).
#[inline]
fn score_bin(score: f64) -> usize {
    ((score * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)
}

/// Sufficient statistics of a binary classifier's quality (positive class = `true`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BinaryStats {
    true_positives: u64,
    false_positives: u64,
    true_negatives: u64,
    false_negatives: u64,
    scores: Option<Box<ScoreHistograms>>,
    distribution: Option<ScoreDistribution>,
}

/// The scores of *every* ok prediction that carried a predicted label and a score,
/// labeled or not, in [`SCORE_BINS`] bins split by the predicted label: what
/// confidence-based estimation and prediction drift read (`domain::estimation`). Late
/// labels never change it: a prediction is counted once, when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreDistribution(Box<ScoreHistograms>);

impl ScoreDistribution {
    /// Predictions of the positive class, per score bin.
    pub fn predicted_positive(&self) -> &[u64; SCORE_BINS] {
        &self.0.positives
    }

    /// Predictions of the negative class, per score bin.
    pub fn predicted_negative(&self) -> &[u64; SCORE_BINS] {
        &self.0.negatives
    }

    /// Predictions per score bin, both predicted classes.
    pub fn all(&self) -> impl Iterator<Item = u64> + '_ {
        self.0
            .positives
            .iter()
            .zip(&self.0.negatives)
            .map(|(&p, &n)| p.saturating_add(n))
    }

    /// Predictions counted.
    pub fn count(&self) -> u64 {
        saturating_sum(self.all())
    }
}

/// Checks a binary score: finite and in `[0, 1]`.
pub(crate) fn validate_score(score: Option<f64>) -> Result<(), FoldError> {
    match score {
        Some(s) if !s.is_finite() => Err(FoldError::NonFinite { field: "score" }),
        Some(s) if !(0.0..=1.0).contains(&s) => Err(FoldError::OutOfRange {
            field: "score",
            value: s,
            expected: "0 ≤ score ≤ 1",
        }),
        _ => Ok(()),
    }
}

impl BinaryStats {
    /// Counts one `ok` record; `score` must have passed [`validate_score`].
    #[inline]
    pub(crate) fn add(
        &mut self,
        predicted: Option<bool>,
        actual: Option<bool>,
        score: Option<f64>,
    ) {
        if let (Some(predicted), Some(actual)) = (predicted, actual) {
            let cell = match (predicted, actual) {
                (true, true) => &mut self.true_positives,
                (true, false) => &mut self.false_positives,
                (false, false) => &mut self.true_negatives,
                (false, true) => &mut self.false_negatives,
            };
            *cell = cell.saturating_add(1);
        }
        if let (Some(actual), Some(score)) = (actual, score) {
            self.scores
                .get_or_insert_with(ScoreHistograms::empty)
                .add(actual, score);
        }
    }

    /// Counts one `ok` prediction in the [`ScoreDistribution`] (once, on arrival; never
    /// for a late label); `score` must have passed [`validate_score`].
    #[inline]
    pub(crate) fn add_prediction(&mut self, predicted: Option<bool>, score: Option<f64>) {
        if let (Some(predicted), Some(score)) = (predicted, score) {
            self.distribution
                .get_or_insert_with(|| ScoreDistribution(ScoreHistograms::empty()))
                .0
                .add(predicted, score);
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.true_positives = self.true_positives.saturating_add(other.true_positives);
        self.false_positives = self.false_positives.saturating_add(other.false_positives);
        self.true_negatives = self.true_negatives.saturating_add(other.true_negatives);
        self.false_negatives = self.false_negatives.saturating_add(other.false_negatives);
        merge_histograms(&mut self.scores, other.scores.as_deref());
        let mut ours = self.distribution.take().map(|d| d.0);
        merge_histograms(&mut ours, other.distribution.as_ref().map(|d| &*d.0));
        self.distribution = ours.map(ScoreDistribution);
    }

    /// The scores of every scored prediction, by predicted class; `None` before the first.
    pub fn distribution(&self) -> Option<&ScoreDistribution> {
        self.distribution.as_ref()
    }

    /// The labeled records' score histograms by actual class, `(positives, negatives)`;
    /// `None` before the first labeled score.
    pub fn labeled_scores(&self) -> Option<(&[u64; SCORE_BINS], &[u64; SCORE_BINS])> {
        self.scores.as_ref().map(|h| (&h.positives, &h.negatives))
    }

    /// Labeled predictions: the four confusion-matrix cells added up.
    pub fn labeled(&self) -> u64 {
        saturating_sum([
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
        ])
    }

    /// The confusion matrix as `[[tn, fp], [fn, tp]]` (rows = actual false/true,
    /// columns = predicted false/true), scikit-learn's layout.
    pub fn confusion_matrix(&self) -> [[u64; 2]; 2] {
        [
            [self.true_negatives, self.false_positives],
            [self.false_negatives, self.true_positives],
        ]
    }

    /// Correct predictions over labeled ones; `None` when nothing is labeled.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(
            self.true_positives.saturating_add(self.true_negatives),
            self.labeled(),
        )
    }

    /// F1 of the positive class, `2·tp / (2·tp + fp + fn)`; 0 when the window is labeled
    /// but has no positive at all (scikit-learn's `zero_division=0`); `None` when nothing
    /// is labeled.
    pub fn f1_score(&self) -> Option<f64> {
        if self.labeled() == 0 {
            return None;
        }
        Some(f1(
            self.true_positives,
            self.false_positives,
            self.false_negatives,
        ))
    }

    /// Labeled records that carried a score, as `(positives, negatives)`.
    pub fn scored(&self) -> (u64, u64) {
        self.scores.as_ref().map_or((0, 0), |h| {
            (
                saturating_sum(h.positives.iter().copied()),
                saturating_sum(h.negatives.iter().copied()),
            )
        })
    }

    /// AUC-ROC by the trapezoid rule over the bin thresholds; `None` without scores or
    /// when the scored records hold a single class.
    pub fn auc_roc(&self) -> Option<AucEstimate> {
        let histograms = self.scores.as_ref()?;
        // At most 1,000 bins of u64 each: the totals cannot overflow u128.
        let total = |bins: &[u64; SCORE_BINS]| bins.iter().map(|&c| u128::from(c)).sum::<u128>();
        let (positives, negatives) = (total(&histograms.positives), total(&histograms.negatives));
        if positives == 0 || negatives == 0 {
            return None;
        }
        // Twice the area, and twice the bound, in pair counts (exact integers). Both are
        // at most 2·P·N; when that fits in u64 (any window of realistic size) every
        // partial sum does too, and the loop runs in plain u64 arithmetic.
        let (doubled_area, doubled_bound) = if positives * negatives < 1 << 63 {
            doubled_area_u64(histograms)
        } else {
            doubled_area_saturating(histograms)
        };
        let pairs = 2.0 * positives as f64 * negatives as f64;
        Some(AucEstimate {
            value: doubled_area as f64 / pairs,
            error_bound: doubled_bound as f64 / pairs,
        })
    }

    pub(crate) fn encode(&self, out: &mut Writer) {
        out.varint(self.true_negatives);
        out.varint(self.false_positives);
        out.varint(self.false_negatives);
        out.varint(self.true_positives);
        match &self.scores {
            None => out.u8(0),
            Some(histograms) => {
                out.u8(1);
                encode_histograms(histograms, out);
            }
        }
    }

    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut stats = Self {
            true_negatives: input.varint("true negatives")?,
            false_positives: input.varint("false positives")?,
            false_negatives: input.varint("false negatives")?,
            true_positives: input.varint("true positives")?,
            scores: None,
            distribution: None,
        };
        let cells = [
            stats.true_negatives,
            stats.false_positives,
            stats.false_negatives,
        ];
        cells
            .iter()
            .try_fold(stats.true_positives, |acc, &c| acc.checked_add(c))
            .ok_or(DecodeError::Invalid {
                what: "confusion matrix overflow",
            })?;
        match input.u8("score histogram flag")? {
            0 => {}
            1 => stats.scores = Some(decode_histograms(input, "score histogram totals")?),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "score histogram flag",
                });
            }
        }
        Ok(stats)
    }
}

impl BinaryStats {
    /// Writes the [`ScoreDistribution`] (the section of state format version 3).
    pub(crate) fn encode_distribution(&self, out: &mut Writer) {
        if let Some(distribution) = &self.distribution {
            encode_histograms(&distribution.0, out);
        }
    }

    /// Reads [`encode_distribution`](Self::encode_distribution)'s output: a non-empty
    /// distribution.
    pub(crate) fn decode_distribution(
        &mut self,
        input: &mut Reader<'_>,
    ) -> Result<(), DecodeError> {
        let histograms = decode_histograms(input, "score distribution totals")?;
        self.distribution = Some(ScoreDistribution(histograms));
        Ok(())
    }
}

/// Both histograms, positives first.
fn encode_histograms(histograms: &ScoreHistograms, out: &mut Writer) {
    encode_bins(&histograms.positives, out);
    encode_bins(&histograms.negatives, out);
}

/// Reads [`encode_histograms`]' output; `empty` names the error of two empty histograms
/// (never written).
fn decode_histograms(
    input: &mut Reader<'_>,
    empty: &'static str,
) -> Result<Box<ScoreHistograms>, DecodeError> {
    let mut histograms = ScoreHistograms::empty();
    let positives = decode_bins(&mut histograms.positives, input)?;
    let negatives = decode_bins(&mut histograms.negatives, input)?;
    if positives
        .checked_add(negatives)
        .is_none_or(|total| total == 0)
    {
        return Err(DecodeError::Invalid { what: empty });
    }
    Ok(histograms)
}

/// Adds `theirs` into `ours` (allocating it when absent).
fn merge_histograms(ours: &mut Option<Box<ScoreHistograms>>, theirs: Option<&ScoreHistograms>) {
    if let Some(theirs) = theirs {
        match ours {
            None => *ours = Some(Box::new(theirs.clone())),
            Some(ours) => {
                add_bins(&mut ours.positives, &theirs.positives);
                add_bins(&mut ours.negatives, &theirs.negatives);
            }
        }
    }
}

/// Twice the trapezoid area and twice its error bound, in pair counts, when 2·P·N fits
/// in u64 (so no partial sum can overflow).
fn doubled_area_u64(histograms: &ScoreHistograms) -> (u128, u128) {
    let (mut negatives, mut area, mut bound) = (0_u64, 0_u64, 0_u64);
    for (&p, &n) in histograms.positives.iter().zip(&histograms.negatives) {
        area += p * (2 * negatives + n);
        bound += p * n;
        negatives += n;
    }
    (u128::from(area), u128::from(bound))
}

/// The same for any counts, saturating: only absurd decoded counts (beyond 2^64 per
/// bin) could overflow u128.
fn doubled_area_saturating(histograms: &ScoreHistograms) -> (u128, u128) {
    let (mut negatives, mut area, mut bound) = (0_u128, 0_u128, 0_u128);
    for (&p, &n) in histograms.positives.iter().zip(&histograms.negatives) {
        let (p, n) = (u128::from(p), u128::from(n));
        area = area.saturating_add(p.saturating_mul(negatives.saturating_mul(2).saturating_add(n)));
        bound = bound.saturating_add(p.saturating_mul(n));
        negatives = negatives.saturating_add(n);
    }
    (area, bound)
}

/// Adds bin counts. Wrapping rather than saturating so the loop vectorizes (this is most of
/// the time spent merging 720 hourly states); a bin would need 2^64 records to wrap.
fn add_bins(ours: &mut [u64; SCORE_BINS], theirs: &[u64; SCORE_BINS]) {
    for (a, &b) in ours.iter_mut().zip(theirs) {
        *a = a.wrapping_add(b);
    }
}

/// Sparse bins: the number of non-empty bins, then `(index gap, count)` pairs (the
/// first gap is the first index itself).
fn encode_bins(bins: &[u64; SCORE_BINS], out: &mut Writer) {
    out.varint(bins.iter().filter(|&&c| c > 0).count() as u64);
    let mut next = 0usize;
    for (index, &c) in bins.iter().enumerate().filter(|(_, c)| **c > 0) {
        out.varint((index - next) as u64);
        out.varint(c);
        next = index + 1;
    }
}

/// Reads [`encode_bins`]' output into `bins`, returning the total count.
fn decode_bins(bins: &mut [u64; SCORE_BINS], input: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let non_empty = input.bounded_len(SCORE_BINS, "score bin count")?;
    let mut next = 0usize;
    let mut total = 0u64;
    for _ in 0..non_empty {
        let (gap, c) = match input.small_pair() {
            Some((gap, c)) => (usize::from(gap), u64::from(c)),
            None => (
                input.bounded_len(SCORE_BINS, "score bin gap")?,
                input.varint("score bin count")?,
            ),
        };
        let index = next + gap;
        let slot = bins.get_mut(index).ok_or(DecodeError::Invalid {
            what: "score bin index",
        })?;
        total = add_bucket_count(total, c, "empty score bin", "score count overflow")?;
        *slot = c;
        next = index + 1;
    }
    Ok(total)
}

/// F1 from confusion counts, `2·tp / (2·tp + fp + fn)`, 0 when the denominator is 0
/// (scikit-learn's `zero_division=0`). Computed in `f64`, so no count can overflow.
fn f1(true_positives: u64, false_positives: u64, false_negatives: u64) -> f64 {
    let doubled = 2.0 * true_positives as f64;
    let denominator = doubled + false_positives as f64 + false_negatives as f64;
    if denominator > 0.0 {
        doubled / denominator
    } else {
        0.0
    }
}

/// Sum that stops at `u64::MAX` instead of overflowing.
fn saturating_sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}

/// `numerator / denominator`, `None` when the denominator is 0.
pub(crate) fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// One label's one-vs-rest confusion counts among labeled predictions, and how often
/// it was predicted at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelCounts {
    /// Labeled records whose true label is this one (tp + fn).
    pub actual: u64,
    /// Labeled records predicted as this label (tp + fp).
    pub predicted: u64,
    /// Labeled records both predicted and truly of this label (tp).
    pub correct: u64,
    /// Every ok prediction of this label, labeled or not, counted when it arrives (late
    /// labels never change it): the distribution prediction drift compares.
    pub served: u64,
}

/// Sufficient statistics of a multiclass classifier's quality.
///
/// Rather than the full `L × L` confusion matrix (up to a million cells, which would not
/// fit a 400 KB DynamoDB item), the state keeps each label's one-vs-rest confusion matrix
/// — scikit-learn's `multilabel_confusion_matrix`: `tp = correct`,
/// `fp = predicted − correct`, `fn = actual − correct`, `tn = labeled − tp − fp − fn`.
/// These determine accuracy and every averaged F1 exactly, merge by addition, and keep
/// this part under 160 KB even at [`MAX_LABELS`] labels of [`MAX_LABEL_BYTES`] bytes.
/// Beside them each label counts every ok prediction of it, labeled or not (`served`:
/// the predicted-label distribution prediction drift compares); a label only ever
/// predicted without a label is kept with zero confusion counts and plays no part in
/// the quality metrics. When predictions carry a score (the model's probability for
/// the label it predicted), those scores are counted too, labeled or not, in
/// [`SCORE_BINS`] bins: the model's confidence, whose drift is compared beside the
/// labels'.
///
/// **The label cap never refuses data.** At most [`MAX_LABELS`] labels are kept by name:
/// the alphabetically (bytewise) first ones. Every other label is counted under
/// [`OVERFLOW_BUCKET`], one more entry that the metrics treat as one class. A record is
/// correct when its predicted and actual labels are equal *before* this mapping, so
/// accuracy stays exact whatever overflows. The rule depends only on the set of labels
/// seen, and a label beyond the cap of a part is beyond the cap of any union holding
/// it, so folding and merging in any order still give identical states:
/// `merge(state(A), state(B)) == state(A ∪ B)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MulticlassStats {
    labels: HashMap<Box<str>, LabelCounts>,
    /// The predicted label's score of every scored ok prediction, per score bin
    /// (allocated on the first score).
    scores: Option<Box<[u64; SCORE_BINS]>>,
}

/// Checks a multiclass label: its length, and that it is not the reserved
/// [`OVERFLOW_BUCKET`].
pub(crate) fn validate_label(label: Option<&str>, field: &'static str) -> Result<(), FoldError> {
    match label {
        Some(label) if label.len() > MAX_LABEL_BYTES => Err(FoldError::TooLong {
            field,
            len: label.len(),
            max_bytes: MAX_LABEL_BYTES,
        }),
        Some(OVERFLOW_BUCKET) => Err(FoldError::Reserved { field }),
        _ => Ok(()),
    }
}

impl LabelCounts {
    fn add(&mut self, other: Self) {
        self.actual = self.actual.saturating_add(other.actual);
        self.predicted = self.predicted.saturating_add(other.predicted);
        self.correct = self.correct.saturating_add(other.correct);
        self.served = self.served.saturating_add(other.served);
    }

    /// Whether the label was seen in a labeled record (as truth or prediction).
    fn labeled(&self) -> bool {
        self.actual > 0 || self.predicted > 0
    }
}

impl MulticlassStats {
    /// Counts one labeled `ok` record (labels already checked by [`validate_label`]).
    pub(crate) fn add(&mut self, predicted: &str, actual: &str) {
        if predicted == actual {
            self.add_counts(
                actual,
                LabelCounts {
                    actual: 1,
                    predicted: 1,
                    correct: 1,
                    served: 0,
                },
            );
        } else {
            self.add_counts(
                actual,
                LabelCounts {
                    actual: 1,
                    predicted: 0,
                    correct: 0,
                    served: 0,
                },
            );
            self.add_counts(
                predicted,
                LabelCounts {
                    actual: 0,
                    predicted: 1,
                    correct: 0,
                    served: 0,
                },
            );
        }
        self.enforce_cap();
    }

    /// Counts one ok prediction of `predicted` (already checked by [`validate_label`]),
    /// labeled or not, in the predicted-label distribution, and its `score` (checked by
    /// [`validate_score`]) in the predicted-class score distribution.
    pub(crate) fn add_served(&mut self, predicted: &str, score: Option<f64>) {
        self.add_counts(
            predicted,
            LabelCounts {
                served: 1,
                ..LabelCounts::default()
            },
        );
        self.enforce_cap();
        if let Some(score) = score {
            let bins = self.scores.get_or_insert_with(|| Box::new([0; SCORE_BINS]));
            let bin = &mut bins[score_bin(score)];
            *bin = bin.saturating_add(1);
        }
    }

    /// The predicted label's score of every scored ok prediction, labeled or not, per
    /// score bin; `None` before the first scored prediction.
    pub fn predicted_scores(&self) -> Option<&[u64; SCORE_BINS]> {
        self.scores.as_deref()
    }

    /// Ok predictions per predicted label, labeled or not, sorted by label (labels
    /// beyond the cap under [`OVERFLOW_BUCKET`]); empty when none was counted.
    pub fn served(&self) -> Vec<(&str, u64)> {
        self.label_counts()
            .into_iter()
            .filter(|(_, c)| c.served > 0)
            .map(|(label, c)| (label, c.served))
            .collect()
    }

    /// Adds `counts` to `label`'s, inserting the label if new ([`enforce_cap`] follows).
    fn add_counts(&mut self, label: &str, counts: LabelCounts) {
        match self.labels.get_mut(label) {
            Some(ours) => ours.add(counts),
            None => {
                self.labels.insert(label.into(), counts);
            }
        }
    }

    /// Labels kept by name (the overflow bucket not counted).
    fn named_labels(&self) -> usize {
        self.labels.len() - usize::from(self.labels.contains_key(OVERFLOW_BUCKET))
    }

    /// Moves the alphabetically last named labels into [`OVERFLOW_BUCKET`] until at most
    /// [`MAX_LABELS`] are named.
    fn enforce_cap(&mut self) {
        // Cheap test first: the overflow bucket is at most one entry beyond the cap.
        if self.labels.len() <= MAX_LABELS {
            return;
        }
        let excess = self.named_labels().saturating_sub(MAX_LABELS);
        if excess == 0 {
            return;
        }
        let mut named: Vec<&str> = self
            .labels
            .keys()
            .map(|label| &**label)
            .filter(|label| *label != OVERFLOW_BUCKET)
            .collect();
        // A fold adds at most two labels: a partial selection, not a sort.
        let split = named.len() - excess;
        named.select_nth_unstable(split);
        let beyond: Vec<Box<str>> = named[split..].iter().map(|label| (*label).into()).collect();
        let mut overflow = LabelCounts::default();
        for label in beyond {
            if let Some(counts) = self.labels.remove(&label) {
                overflow.add(counts);
            }
        }
        self.add_counts(OVERFLOW_BUCKET, overflow);
    }

    /// Adds `other`'s counts. Never fails: labels beyond the cap go to the overflow bucket.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (label, &theirs) in &other.labels {
            self.add_counts(label, theirs);
        }
        self.enforce_cap();
        if let Some(theirs) = &other.scores {
            match &mut self.scores {
                Some(ours) => add_bins(ours, theirs),
                None => self.scores = Some(theirs.clone()),
            }
        }
    }

    /// The counts of the labels beyond the cap ([`OVERFLOW_BUCKET`]); zero when none
    /// overflowed.
    pub fn overflow(&self) -> LabelCounts {
        self.labels
            .get(OVERFLOW_BUCKET)
            .copied()
            .unwrap_or_default()
    }

    /// Every label seen (in a labeled record, as truth or prediction, or predicted in
    /// any ok record), sorted by label; [`OVERFLOW_BUCKET`] among them when labels
    /// beyond the cap were seen.
    pub fn label_counts(&self) -> Vec<(&str, LabelCounts)> {
        let mut sorted: Vec<(&str, LabelCounts)> =
            self.labels.iter().map(|(l, c)| (&**l, *c)).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted
    }

    /// Labeled predictions.
    pub fn labeled(&self) -> u64 {
        saturating_sum(self.labels.values().map(|c| c.actual))
    }

    /// Correct predictions over labeled ones; `None` when nothing is labeled.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(
            saturating_sum(self.labels.values().map(|c| c.correct)),
            self.labeled(),
        )
    }

    /// Macro F1 over the labels seen in truth ∪ predictions, each label's F1 being
    /// `2·tp / (2·tp + fp + fn) = 2·correct / (actual + predicted)` — scikit-learn's
    /// `f1_score(average="macro", zero_division=0)`. `None` when nothing is labeled.
    /// The overflow bucket, when in use, counts as one class. Summed in label order, so
    /// equal states give bit-identical results.
    pub fn f1_score(&self) -> Option<f64> {
        let mut sorted = self.label_counts();
        sorted.retain(|(_, c)| c.labeled());
        if sorted.is_empty() {
            return None;
        }
        let total: f64 = sorted
            .iter()
            .map(|(_, c)| {
                f1(
                    c.correct,
                    c.predicted.saturating_sub(c.correct),
                    c.actual.saturating_sub(c.correct),
                )
            })
            .sum();
        Some(total / sorted.len() as f64)
    }

    /// Number of labels, then per label in ascending order: the label, actual, predicted
    /// and correct counts.
    pub(crate) fn encode(&self, out: &mut Writer) {
        let sorted = self.label_counts();
        out.varint(sorted.len() as u64);
        for (label, counts) in sorted {
            out.str(label);
            out.varint(counts.actual);
            out.varint(counts.predicted);
            out.varint(counts.correct);
        }
    }

    /// Whether predictions were counted in the predicted-label distribution (written
    /// with [`encode_distribution`](Self::encode_distribution), format version 3).
    pub(crate) fn has_distribution(&self) -> bool {
        self.labels.values().any(|c| c.served > 0)
    }

    /// The predicted-label distribution: per label in [`encode`](Self::encode)'s order,
    /// its served count.
    pub(crate) fn encode_distribution(&self, out: &mut Writer) {
        for (_, counts) in self.label_counts() {
            out.varint(counts.served);
        }
    }

    /// Writes the predicted-class score bins, if any prediction was scored (the section
    /// of state format version 4).
    pub(crate) fn encode_scores(&self, out: &mut Writer) {
        if let Some(scores) = &self.scores {
            encode_bins(scores, out);
        }
    }

    /// Reads what [`encode_scores`](Self::encode_scores) wrote, after the distribution:
    /// a non-empty histogram counting at most the `served` predictions.
    pub(crate) fn decode_scores(
        &mut self,
        input: &mut Reader<'_>,
        served: u64,
    ) -> Result<(), DecodeError> {
        let mut scores = Box::new([0; SCORE_BINS]);
        let scored = decode_bins(&mut scores, input)?;
        if scored == 0 || scored > served {
            return Err(DecodeError::Invalid {
                what: "predicted-class score count",
            });
        }
        self.scores = Some(scores);
        Ok(())
    }

    /// Reads what [`encode_distribution`](Self::encode_distribution) wrote, after
    /// [`decode`](Self::decode) with `with_distribution`; returns the served total.
    pub(crate) fn decode_distribution(
        &mut self,
        input: &mut Reader<'_>,
    ) -> Result<u64, DecodeError> {
        let mut sorted: Vec<Box<str>> = self.labels.keys().cloned().collect();
        sorted.sort_unstable();
        let mut total = 0_u64;
        for label in sorted {
            let served = input.varint("label served count")?;
            let counts = self.labels.get_mut(&label).ok_or(DecodeError::Invalid {
                what: "label served count",
            })?;
            counts.served = served;
            if !counts.labeled() && served == 0 {
                return Err(DecodeError::Invalid {
                    what: "label counts",
                });
            }
            total = total.checked_add(served).ok_or(DecodeError::Invalid {
                what: "label served count overflow",
            })?;
        }
        if total == 0 {
            return Err(DecodeError::Invalid {
                what: "empty predicted-label distribution in version 3",
            });
        }
        Ok(total)
    }

    /// Reads what [`encode`](Self::encode) wrote; `with_distribution` (format version
    /// 3): labels seen only in predictions may follow with zero counts, their served
    /// counts read by [`decode_distribution`](Self::decode_distribution).
    pub(crate) fn decode(
        input: &mut Reader<'_>,
        with_distribution: bool,
    ) -> Result<Self, DecodeError> {
        // The named labels and the overflow bucket.
        let count = input.bounded_len(MAX_LABELS + 1, "label count")?;
        let mut labels = HashMap::with_capacity(count);
        let mut previous: Option<&str> = None;
        let (mut actual_total, mut predicted_total) = (0u64, 0u64);
        for _ in 0..count {
            let label = input.str(MAX_LABEL_BYTES, "label")?;
            if previous.is_some_and(|p| p >= label) {
                return Err(DecodeError::Invalid {
                    what: "labels not strictly ascending",
                });
            }
            let counts = LabelCounts {
                actual: input.varint("label actual count")?,
                predicted: input.varint("label predicted count")?,
                correct: input.varint("label correct count")?,
                served: 0,
            };
            if counts.correct > counts.actual.min(counts.predicted)
                || (!with_distribution && !counts.labeled())
            {
                return Err(DecodeError::Invalid {
                    what: "label counts",
                });
            }
            let overflow = DecodeError::Invalid {
                what: "label count overflow",
            };
            actual_total = actual_total
                .checked_add(counts.actual)
                .ok_or(overflow.clone())?;
            predicted_total = predicted_total
                .checked_add(counts.predicted)
                .ok_or(overflow)?;
            labels.insert(Box::from(label), counts);
            previous = Some(label);
        }
        if actual_total != predicted_total {
            return Err(DecodeError::Invalid {
                what: "label totals differ",
            });
        }
        let stats = Self {
            labels,
            scores: None,
        };
        if stats.named_labels() > MAX_LABELS {
            return Err(DecodeError::Invalid {
                what: "label count",
            });
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn binary(records: &[(bool, bool, f64)]) -> BinaryStats {
        let mut stats = BinaryStats::default();
        for &(predicted, actual, score) in records {
            stats.add(Some(predicted), Some(actual), Some(score));
        }
        stats
    }

    #[test]
    fn binary_metrics_on_a_small_example() {
        let stats = binary(&[
            (true, true, 0.9),
            (true, false, 0.8),
            (false, true, 0.3),
            (false, false, 0.1),
        ]);
        assert_eq!(stats.confusion_matrix(), [[1, 1], [1, 1]]);
        assert_eq!(stats.accuracy(), Some(0.5));
        assert_eq!(stats.f1_score(), Some(0.5));
        // Positives 0.9, 0.3 against negatives 0.8, 0.1: 3 of 4 pairs ordered.
        let auc = stats.auc_roc().expect("two classes");
        assert_eq!(auc.value, 0.75);
        assert_eq!(auc.error_bound, 0.0);
    }

    #[test]
    fn ties_in_one_bin_count_half_and_bound_the_error() {
        let stats = binary(&[(true, true, 0.5), (true, false, 0.5)]);
        let auc = stats.auc_roc().expect("two classes");
        assert_eq!(auc.value, 0.5);
        assert_eq!(auc.error_bound, 0.5);
    }

    #[test]
    fn the_u64_area_equals_the_saturating_one_up_to_its_limit() {
        let mut histograms = ScoreHistograms::empty();
        let mut seed = 7_u64;
        for bin in 0..SCORE_BINS {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            histograms.positives[bin] = (seed >> 40) % 5_000;
            histograms.negatives[bin] = (seed >> 20) % 9_000;
        }
        assert_eq!(
            doubled_area_u64(&histograms),
            doubled_area_saturating(&histograms)
        );
        // P·N just under 2^63: the extremes the u64 loop is chosen for.
        let mut edge = ScoreHistograms::empty();
        edge.positives[0] = 1;
        edge.negatives[SCORE_BINS - 1] = (1 << 61) - 1;
        edge.negatives[0] = 1 << 61;
        edge.positives[SCORE_BINS - 1] = 1;
        assert_eq!(doubled_area_u64(&edge), doubled_area_saturating(&edge));
        let stats = BinaryStats {
            scores: Some(edge),
            ..BinaryStats::default()
        };
        let auc = stats.auc_roc().expect("two classes");
        assert!((0.0..=1.0).contains(&auc.value), "{auc:?}");
    }

    #[test]
    fn single_class_or_no_scores_has_no_auc() {
        assert_eq!(
            binary(&[(true, true, 0.9), (false, true, 0.2)]).auc_roc(),
            None
        );
        let mut unscored = BinaryStats::default();
        unscored.add(Some(true), Some(false), None);
        assert_eq!(unscored.auc_roc(), None);
        assert_eq!(unscored.accuracy(), Some(0.0));
    }

    #[test]
    fn f1_is_zero_without_positives_and_none_without_labels() {
        let negatives = binary(&[(false, false, 0.1)]);
        assert_eq!(negatives.f1_score(), Some(0.0));
        assert_eq!(BinaryStats::default().f1_score(), None);
        assert_eq!(BinaryStats::default().accuracy(), None);
    }

    #[test]
    fn score_of_one_lands_in_the_last_bin() {
        assert_eq!(score_bin(1.0), SCORE_BINS - 1);
        assert_eq!(score_bin(0.0), 0);
        assert_eq!(score_bin(0.0005), 0);
        assert_eq!(score_bin(0.9995), 999);
    }

    #[test]
    fn multiclass_macro_f1_matches_hand_computation() {
        let mut stats = MulticlassStats::default();
        for (predicted, actual) in [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")] {
            stats.add(predicted, actual);
        }
        // a: tp1 fp1 fn0 → 2/3; b: tp1 fp0 fn2 → 2/4; c: tp0 fp1 → 0.
        let expected = (2.0 / 3.0 + 0.5 + 0.0) / 3.0;
        assert!((stats.f1_score().expect("labeled") - expected).abs() < 1e-15);
        assert_eq!(stats.accuracy(), Some(0.5));
        assert_eq!(stats.labeled(), 4);
    }

    #[test]
    fn labels_beyond_the_cap_count_in_the_overflow_bucket() {
        let mut stats = MulticlassStats::default();
        // Labels "l0000" … "l0999" fill the cap; later labels sort before or after them.
        for i in 0..MAX_LABELS {
            let label = format!("l{i:04}");
            stats.add(&label, &label);
        }
        assert_eq!(stats.overflow(), LabelCounts::default());
        // "z" sorts last: it goes to the bucket; a correct prediction stays correct.
        stats.add("z", "z");
        assert_eq!(
            stats.overflow(),
            LabelCounts {
                actual: 1,
                predicted: 1,
                correct: 1,
                served: 0
            }
        );
        // "a" sorts first: it is kept by name and "l0999" moves to the bucket.
        stats.add("a", "y");
        let counts: BTreeMap<&str, LabelCounts> = stats.label_counts().into_iter().collect();
        assert_eq!(counts.len(), MAX_LABELS + 1);
        assert!(counts.contains_key("a") && !counts.contains_key("l0999"));
        assert_eq!(
            counts[OVERFLOW_BUCKET],
            LabelCounts {
                actual: 3,
                predicted: 2,
                correct: 2,
                served: 0
            },
            "z (correct), l0999 (correct) and y (actual only)"
        );
        // Two different overflowed labels are not a correct prediction.
        stats.add("x", "w");
        assert_eq!(stats.labeled(), MAX_LABELS as u64 + 3);
        assert_eq!(
            stats.accuracy(),
            Some((MAX_LABELS as f64 + 1.0) / (MAX_LABELS as f64 + 3.0))
        );
    }

    #[test]
    fn the_overflow_rule_is_independent_of_order_and_grouping() {
        let records: Vec<(String, String)> = (0..2_600)
            .map(|i| {
                (
                    format!("p{}", (i * 7919) % 1_300),
                    format!("p{}", (i * 104_729) % 1_250),
                )
            })
            .collect();
        let fold = |records: &[(String, String)]| {
            let mut stats = MulticlassStats::default();
            for (predicted, actual) in records {
                stats.add(predicted, actual);
            }
            stats
        };
        let whole = fold(&records);
        let mut reversed: Vec<_> = records.clone();
        reversed.reverse();
        assert_eq!(fold(&reversed), whole);
        for split in [1, 999, 1_300, 2_599] {
            let mut merged = fold(&records[split..]);
            merged.merge(&fold(&records[..split]));
            assert_eq!(merged, whole, "split at {split}");
        }
        assert!(whole.overflow().actual > 0);
    }
}

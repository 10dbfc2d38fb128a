//! [`WindowState`]: everything the metrics need about one (tenant, model, time span),
//! folded record by record, merged with other states, and stored as compact bytes.
//!
//! `merge(state(A), state(B)) == state(A ∪ B)`: counts and sketch buckets are exact,
//! floating-point sums agree up to rounding, and merging is associative and commutative.
//!
//! # Serialized format (versions 1 to 4)
//!
//! All integers are unsigned LEB128 varints unless marked *zigzag* (signed varint);
//! `f64` is 8 bytes little-endian; strings are a varint byte length and UTF-8 bytes.
//!
//! ```text
//! u8 version = 1
//! predictions, errors
//! if predictions > 0: first prediction ms (zigzag), last − first ms
//! error types: count, then per type in ascending order: name, count
//! latency sketch: zero count, non-empty buckets, first index (zigzag) and count,
//!                 then (index gap, count)…; if any value: sum, min, max (f64)
//! u8 quality tag: 0 none | 1 binary | 2 multiclass | 3 regression
//!   binary:     tn, fp, fn, tp; u8 has scores; if 1: positives then negatives histogram,
//!               each: non-empty bins, then (index gap, count)…
//!   multiclass: labels, then per label ascending: label, actual, predicted, correct
//!   regression: n, n with actual ≠ 0; if n > 0: Σe, Σe², Σ|e|, Σ|e/actual| (f64)
//! resources: u8 presence bits (cpu, memory, gpu, queue depth); per present gauge:
//!            count, sum, min, max (f64), last time ms (zigzag), last value (f64);
//!            cache hits, cache misses
//! versions 2 and 3: label delay sketch (seconds), same layout as the latency sketch
//! version 3 only: the distribution of every ok prediction, labeled or not —
//!   binary:     predicted positives then predicted negatives score histogram, each as
//!               above
//!   multiclass: per label of the list above, in its order, the predictions of that
//!               label (labels seen only in predictions are in the list, with zero
//!               actual, predicted and correct counts)
//!   regression: predicted values: the sketch of the negative values' magnitudes,
//!               then that of the others, each laid out as the latency sketch
//! version 4 only (multiclass): the predicted label's score histogram of every scored
//!   ok prediction, laid out as a binary histogram above
//! ```
//!
//! Version 1 is written while no late label was joined and no prediction was counted
//! in a distribution (so older states keep their bytes); version 2 with a non-empty
//! label delay sketch; version 3 whenever the state holds a distribution of its
//! predictions (its label delay sketch may then be empty); version 4 when it is a
//! multiclass state whose predictions carried scores. A version's sections are all
//! required, so a truncated state never reads as a smaller valid one.
//!
//! The encoding is canonical (sorted keys, no empty entries), so equal states have equal
//! bytes, and [`WindowState::from_bytes`] rejects anything else — truncation, trailing
//! bytes, unknown tags, values over the caps, inconsistent totals — with a
//! [`DecodeError`], never a panic. A binary classifier's state stays under 16 KB however
//! many records it holds; the worst case allowed by the caps stays under 200 KB.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::bounds::{MAX_LATENCY_MS, OVERFLOW_BUCKET};
use super::classification::{
    BinaryStats, MulticlassStats, ScoreDistribution, validate_label, validate_score,
};
use super::codec::{DecodeError, Reader, Writer};
use super::error::{FoldError, MergeError};
use super::record::{Outcome, PredictionRecord, ResourceSample, Status, Task};
use super::regression::{RegressionStats, RegressionTerms, validate_value};
use super::resources::ResourceStats;
use super::sketch::{Bucketed, LatencySketch};

/// The serialized format version written by [`WindowState::to_bytes`] for a state
/// without joined labels.
pub const FORMAT_VERSION: u8 = 1;

/// The version written for a state that holds joined labels (their delay sketch).
pub const FORMAT_VERSION_WITH_LABELS: u8 = 2;

/// The version written for a state that holds the distribution of its predictions —
/// scores, predicted labels or predicted values — (and the label delay sketch, empty
/// or not).
pub const FORMAT_VERSION_WITH_DISTRIBUTION: u8 = 3;

/// The version written for a multiclass state whose predictions carried scores: version
/// 3 and the predicted-class score histogram.
pub const FORMAT_VERSION_WITH_CONFIDENCE: u8 = 4;

/// Most error types one window keeps by name: the alphabetically (bytewise) first; the
/// errors of every other type are counted under [`OVERFLOW_BUCKET`] (see
/// [`WindowState::errors_by_type`]).
pub const MAX_ERROR_TYPES: usize = 256;

/// Longest error type in bytes (UTF-8).
pub const MAX_ERROR_TYPE_BYTES: usize = 128;

/// The task-specific quality part of a window.
#[derive(Debug, Clone, PartialEq)]
pub enum QualityStats {
    /// Confusion matrix and score histograms.
    Binary(BinaryStats),
    /// Per-label one-vs-rest confusion counts.
    Multiclass(MulticlassStats),
    /// Error sums.
    Regression(RegressionStats),
}

impl QualityStats {
    fn empty(task: Task) -> Self {
        match task {
            Task::BinaryClassification => Self::Binary(BinaryStats::default()),
            Task::MulticlassClassification => Self::Multiclass(MulticlassStats::default()),
            Task::Regression => Self::Regression(RegressionStats::default()),
        }
    }

    /// The task these statistics belong to.
    pub fn task(&self) -> Task {
        match self {
            Self::Binary(_) => Task::BinaryClassification,
            Self::Multiclass(_) => Task::MulticlassClassification,
            Self::Regression(_) => Task::Regression,
        }
    }

    /// Labeled predictions counted.
    pub fn labeled(&self) -> u64 {
        match self {
            Self::Binary(stats) => stats.labeled(),
            Self::Multiclass(stats) => stats.labeled(),
            Self::Regression(stats) => stats.labeled(),
        }
    }

    /// Validates `outcome` and, when `counts` (status ok), adds it. Unchanged on error.
    #[inline]
    fn add(&mut self, outcome: &Outcome, counts: bool) -> Result<(), FoldError> {
        match (self, outcome) {
            (
                Self::Binary(stats),
                &Outcome::Binary {
                    predicted,
                    actual,
                    score,
                },
            ) => {
                validate_score(score)?;
                if counts {
                    stats.add(predicted, actual, score);
                }
            }
            (
                Self::Multiclass(stats),
                Outcome::Multiclass {
                    predicted,
                    actual,
                    score,
                },
            ) => {
                validate_label(predicted.as_deref(), "predicted")?;
                validate_label(actual.as_deref(), "actual")?;
                validate_score(*score)?;
                if let (true, Some(predicted), Some(actual)) = (counts, predicted, actual) {
                    stats.add(predicted, actual);
                }
            }
            (Self::Regression(stats), &Outcome::Regression { predicted, actual }) => {
                validate_value(predicted, "predicted")?;
                validate_value(actual, "actual")?;
                if let (Some(predicted), Some(actual)) = (predicted, actual) {
                    let terms = RegressionTerms::of(predicted, actual)?;
                    if counts {
                        stats.add(terms);
                    }
                }
            }
            (quality, outcome) => {
                return Err(FoldError::TaskMismatch {
                    window: quality.task(),
                    record: outcome.task(),
                });
            }
        }
        Ok(())
    }

    /// Counts an ok prediction, which [`add`](Self::add) has validated, in the
    /// distribution of every prediction (binary: [`ScoreDistribution`]; multiclass:
    /// the served count of its predicted label and its score's bin).
    fn add_prediction(&mut self, outcome: &Outcome) {
        match (self, outcome) {
            (
                Self::Binary(stats),
                &Outcome::Binary {
                    predicted, score, ..
                },
            ) => stats.add_prediction(predicted, score),
            (
                Self::Multiclass(stats),
                Outcome::Multiclass {
                    predicted: Some(predicted),
                    score,
                    ..
                },
            ) => stats.add_served(predicted, *score),
            (
                Self::Regression(stats),
                &Outcome::Regression {
                    predicted: Some(predicted),
                    ..
                },
            ) => stats.add_served(predicted),
            _ => {}
        }
    }

    /// Whether the distribution of every prediction holds anything (format version 3).
    fn has_distribution(&self) -> bool {
        match self {
            Self::Binary(stats) => stats.distribution().is_some(),
            Self::Multiclass(stats) => stats.has_distribution(),
            Self::Regression(stats) => stats.served().is_some(),
        }
    }

    /// Writes the distribution of every prediction (format version 3); the multiclass
    /// one follows the label list's order.
    fn encode_distribution(&self, out: &mut Writer) {
        match self {
            Self::Binary(stats) => stats.encode_distribution(out),
            Self::Multiclass(stats) => stats.encode_distribution(out),
            Self::Regression(stats) => stats.encode_distribution(out),
        }
    }

    /// Reads what [`encode_distribution`](Self::encode_distribution) wrote; returns
    /// the predictions it counts.
    fn decode_distribution(&mut self, input: &mut Reader<'_>) -> Result<u64, DecodeError> {
        match self {
            Self::Binary(stats) => {
                stats.decode_distribution(input)?;
                Ok(stats.distribution().map_or(0, ScoreDistribution::count))
            }
            Self::Multiclass(stats) => stats.decode_distribution(input),
            Self::Regression(stats) => stats.decode_distribution(input),
        }
    }

    fn check_merge(&self, other: &Self) -> Result<(), MergeError> {
        if self.task() == other.task() {
            Ok(())
        } else {
            Err(MergeError::TaskMismatch {
                left: self.task(),
                right: other.task(),
            })
        }
    }

    /// Adds `other`; [`check_merge`](Self::check_merge) must have passed.
    fn merge(&mut self, other: &Self) {
        match (self, other) {
            (Self::Binary(ours), Self::Binary(theirs)) => ours.merge(theirs),
            (Self::Multiclass(ours), Self::Multiclass(theirs)) => ours.merge(theirs),
            (Self::Regression(ours), Self::Regression(theirs)) => ours.merge(theirs),
            // Excluded by `check_merge`.
            _ => {}
        }
    }
}

/// A prediction record with what folding it works out from the record alone (its time
/// in milliseconds, its latency's bucket), to fold it into several states — a batch's
/// segment series — at the cost of one: [`WindowState::fold_measured`].
#[derive(Debug, Clone, Copy)]
pub struct MeasuredPrediction<'r> {
    record: &'r PredictionRecord,
    time_ms: i64,
    latency: Bucketed,
}

impl<'r> MeasuredPrediction<'r> {
    /// `record`, measured.
    #[inline]
    pub fn of(record: &'r PredictionRecord) -> Self {
        Self {
            record,
            time_ms: record.timestamp.timestamp_millis(),
            latency: Bucketed::of(record.latency_ms),
        }
    }
}

/// Mergeable state of one (tenant, model, time span): see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowState {
    /// Prediction records, both statuses.
    predictions: u64,
    /// Prediction records with status error.
    errors: u64,
    /// Errors per error type (untyped errors are `errors − Σ`).
    error_types: BTreeMap<String, u64>,
    /// Earliest prediction time, ms since the epoch (`i64::MAX` while empty).
    first_prediction_ms: i64,
    /// Latest prediction time, ms since the epoch (`i64::MIN` while empty).
    last_prediction_ms: i64,
    /// Latency of every prediction, failed ones included.
    latency: LatencySketch,
    /// Task-specific quality statistics, set by the first prediction record.
    quality: Option<QualityStats>,
    /// Resource gauges and cache counters.
    resources: ResourceStats,
    /// Delay of every late label joined here (label time − prediction time, seconds);
    /// its count is the number of joins.
    label_delay: LatencySketch,
}

impl Default for WindowState {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowState {
    /// An empty state (no task yet: the first prediction record decides it).
    pub fn new() -> Self {
        Self {
            predictions: 0,
            errors: 0,
            error_types: BTreeMap::new(),
            first_prediction_ms: i64::MAX,
            last_prediction_ms: i64::MIN,
            latency: LatencySketch::new(),
            quality: None,
            resources: ResourceStats::default(),
            label_delay: LatencySketch::new(),
        }
    }

    /// Folds one prediction. Every field is checked first; on error the state is unchanged.
    ///
    /// # Errors
    /// [`FoldError`] naming the field: non-finite or negative `latency_ms`, a score outside
    /// `[0, 1]`, non-finite regression values, an over-long label or error type, an
    /// `error_type` on an ok record, a label or error type beyond its cap, or a record of a
    /// different task than the window's.
    pub fn fold_prediction(&mut self, record: &PredictionRecord) -> Result<(), FoldError> {
        self.fold_measured(&MeasuredPrediction::of(record))
    }

    /// [`fold_prediction`](Self::fold_prediction) of a record measured before, to fold
    /// it into several states.
    ///
    /// # Errors
    /// As [`fold_prediction`](Self::fold_prediction).
    pub fn fold_measured(&mut self, prediction: &MeasuredPrediction) -> Result<(), FoldError> {
        let MeasuredPrediction {
            record,
            time_ms,
            latency,
        } = *prediction;
        let latency_ms = record.latency_ms;
        if !latency_ms.is_finite() {
            return Err(FoldError::NonFinite {
                field: "latency_ms",
            });
        }
        if !(0.0..=MAX_LATENCY_MS).contains(&latency_ms) {
            return Err(FoldError::OutOfRange {
                field: "latency_ms",
                value: latency_ms,
                expected: "0 ≤ latency_ms ≤ 1e9",
            });
        }
        let is_ok = record.status == Status::Ok;
        if let Some(error_type) = &record.error_type {
            self.check_error_type(is_ok, error_type)?;
        }
        match &mut self.quality {
            Some(quality) => quality.add(&record.outcome, is_ok)?,
            None => {
                let mut quality = QualityStats::empty(record.outcome.task());
                quality.add(&record.outcome, is_ok)?;
                self.quality = Some(quality);
            }
        }
        // Everything validated: update the counters.
        if let (true, Some(quality)) = (is_ok, &mut self.quality) {
            quality.add_prediction(&record.outcome);
        }
        self.predictions = self.predictions.saturating_add(1);
        if !is_ok {
            self.errors = self.errors.saturating_add(1);
            if let Some(error_type) = &record.error_type {
                match self.error_types.get_mut(error_type.as_str()) {
                    Some(count) => *count = count.saturating_add(1),
                    None => {
                        self.error_types.insert(error_type.clone(), 1);
                        self.enforce_error_type_cap();
                    }
                }
            }
        }
        self.first_prediction_ms = self.first_prediction_ms.min(time_ms);
        self.last_prediction_ms = self.last_prediction_ms.max(time_ms);
        self.latency.add_bucketed(latency);
        Ok(())
    }

    /// Folds one late label joined to its prediction: `outcome` is the prediction's
    /// with the label's actual (a labeled, ok record), `delay_seconds` how long after
    /// the prediction the label became known (clamped at 0). Only the quality
    /// statistics and the delay sketch change: the prediction itself was counted when
    /// it arrived. On error the state is unchanged.
    ///
    /// # Errors
    /// [`FoldError`] as for [`fold_prediction`](Self::fold_prediction)'s outcome, and
    /// a non-finite delay.
    pub fn fold_label(&mut self, outcome: &Outcome, delay_seconds: f64) -> Result<(), FoldError> {
        if !delay_seconds.is_finite() {
            return Err(FoldError::NonFinite {
                field: "label delay",
            });
        }
        match &mut self.quality {
            Some(quality) => quality.add(outcome, true)?,
            None => {
                let mut quality = QualityStats::empty(outcome.task());
                quality.add(outcome, true)?;
                self.quality = Some(quality);
            }
        }
        self.label_delay.add(delay_seconds.max(0.0));
        Ok(())
    }

    fn check_error_type(&self, is_ok: bool, error_type: &str) -> Result<(), FoldError> {
        if is_ok {
            return Err(FoldError::ErrorTypeOnOkRecord);
        }
        if error_type.len() > MAX_ERROR_TYPE_BYTES {
            return Err(FoldError::TooLong {
                field: "error_type",
                len: error_type.len(),
                max_bytes: MAX_ERROR_TYPE_BYTES,
            });
        }
        if error_type == OVERFLOW_BUCKET {
            return Err(FoldError::Reserved {
                field: "error_type",
            });
        }
        Ok(())
    }

    /// Moves the alphabetically last named error types into [`OVERFLOW_BUCKET`] until at
    /// most [`MAX_ERROR_TYPES`] are named. Like the label cap (see
    /// [`MulticlassStats`]), the rule depends only on the set of types seen, so merges
    /// stay exact, associative and commutative.
    fn enforce_error_type_cap(&mut self) {
        let named = self.error_types.len() - usize::from(self.error_type_overflow() > 0);
        let mut excess = named.saturating_sub(MAX_ERROR_TYPES);
        let mut overflow = 0u64;
        while excess > 0 {
            let last = self
                .error_types
                .keys()
                .rev()
                .find(|t| t.as_str() != OVERFLOW_BUCKET)
                .cloned();
            let Some(count) = last.and_then(|t| self.error_types.remove(&t)) else {
                break;
            };
            overflow = overflow.saturating_add(count);
            excess -= 1;
        }
        if overflow > 0 {
            let bucket = self
                .error_types
                .entry(OVERFLOW_BUCKET.to_owned())
                .or_default();
            *bucket = bucket.saturating_add(overflow);
        }
    }

    /// Errors counted under [`OVERFLOW_BUCKET`]: those of the error types beyond
    /// [`MAX_ERROR_TYPES`]; 0 when no type overflowed.
    pub fn error_type_overflow(&self) -> u64 {
        self.error_types.get(OVERFLOW_BUCKET).copied().unwrap_or(0)
    }

    /// Folds one resource sample. Every field is checked first; on error the state is
    /// unchanged.
    ///
    /// # Errors
    /// [`FoldError`] naming the field: a non-finite value, a utilization outside `[0, 1]`
    /// or a negative queue depth.
    pub fn fold_resource(&mut self, sample: &ResourceSample) -> Result<(), FoldError> {
        self.resources.add(sample)
    }

    /// Adds every record of `other` to this state. Caps never refuse a merge: labels and
    /// error types beyond them are counted in the overflow bucket.
    ///
    /// # Errors
    /// [`MergeError::TaskMismatch`] when the states hold different tasks (`self` is
    /// then unchanged).
    pub fn merge(&mut self, other: &Self) -> Result<(), MergeError> {
        if let (Some(ours), Some(theirs)) = (&self.quality, &other.quality) {
            ours.check_merge(theirs)?;
        }
        self.predictions = self.predictions.saturating_add(other.predictions);
        self.errors = self.errors.saturating_add(other.errors);
        for (error_type, &count) in &other.error_types {
            match self.error_types.get_mut(error_type) {
                Some(ours) => *ours = ours.saturating_add(count),
                None => {
                    self.error_types.insert(error_type.clone(), count);
                }
            }
        }
        self.enforce_error_type_cap();
        self.first_prediction_ms = self.first_prediction_ms.min(other.first_prediction_ms);
        self.last_prediction_ms = self.last_prediction_ms.max(other.last_prediction_ms);
        self.latency.merge(&other.latency);
        match (&mut self.quality, &other.quality) {
            (Some(ours), Some(theirs)) => ours.merge(theirs),
            (None, Some(theirs)) => self.quality = Some(theirs.clone()),
            (_, None) => {}
        }
        self.resources.merge(&other.resources);
        self.label_delay.merge(&other.label_delay);
        Ok(())
    }

    /// The state of the union of `states` (empty for none): the first cloned, the
    /// others merged into it in order.
    ///
    /// # Errors
    /// [`MergeError::TaskMismatch`] when the states hold different tasks.
    pub fn merged(states: impl IntoIterator<Item = Self>) -> Result<Self, MergeError> {
        let mut states = states.into_iter();
        // Owned: the first state becomes the result (no copy of its histograms).
        let Some(mut merged) = states.next() else {
            return Ok(Self::new());
        };
        for state in states {
            merged.merge(&state)?;
        }
        Ok(merged)
    }

    /// Prediction records folded, both statuses.
    pub fn predictions(&self) -> u64 {
        self.predictions
    }

    /// Prediction records whose status is error.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Errors per error type, sorted by type; errors without a type are not listed (see
    /// [`untyped_errors`](Self::untyped_errors)); [`OVERFLOW_BUCKET`] is listed when
    /// types beyond [`MAX_ERROR_TYPES`] were seen.
    pub fn errors_by_type(&self) -> impl Iterator<Item = (&str, u64)> {
        self.error_types.iter().map(|(t, &c)| (t.as_str(), c))
    }

    /// Errors whose record carried no `error_type`.
    pub fn untyped_errors(&self) -> u64 {
        self.errors.saturating_sub(
            self.error_types
                .values()
                .fold(0u64, |a, &c| a.saturating_add(c)),
        )
    }

    /// Time of the earliest prediction (millisecond precision); `None` when empty.
    pub fn first_prediction(&self) -> Option<DateTime<Utc>> {
        (self.predictions > 0)
            .then(|| DateTime::from_timestamp_millis(self.first_prediction_ms))
            .flatten()
    }

    /// Time of the latest prediction (millisecond precision); `None` when empty.
    pub fn last_prediction(&self) -> Option<DateTime<Utc>> {
        (self.predictions > 0)
            .then(|| DateTime::from_timestamp_millis(self.last_prediction_ms))
            .flatten()
    }

    /// Latencies of every prediction, failed ones included.
    pub fn latency(&self) -> &LatencySketch {
        &self.latency
    }

    /// The task of the records folded; `None` before the first prediction.
    pub fn task(&self) -> Option<Task> {
        self.quality.as_ref().map(QualityStats::task)
    }

    /// Task-specific quality statistics; `None` before the first prediction.
    pub fn quality(&self) -> Option<&QualityStats> {
        self.quality.as_ref()
    }

    /// Resource gauges and cache counters.
    pub fn resources(&self) -> &ResourceStats {
        &self.resources
    }

    /// Delays of the late labels joined here, in seconds; its count is the number of
    /// joins (labels that arrived with their prediction are not in it).
    pub fn label_delay(&self) -> &LatencySketch {
        &self.label_delay
    }

    /// The compact, canonical binary form (format in the module docs), for a DynamoDB
    /// Binary attribute.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(1024);
        let with_distribution = self
            .quality
            .as_ref()
            .is_some_and(QualityStats::has_distribution);
        let with_labels = with_distribution || self.label_delay.count() > 0;
        let confidence = match &self.quality {
            Some(QualityStats::Multiclass(stats)) if stats.predicted_scores().is_some() => {
                Some(stats)
            }
            _ => None,
        };
        out.u8(if confidence.is_some() {
            FORMAT_VERSION_WITH_CONFIDENCE
        } else if with_distribution {
            FORMAT_VERSION_WITH_DISTRIBUTION
        } else if with_labels {
            FORMAT_VERSION_WITH_LABELS
        } else {
            FORMAT_VERSION
        });
        out.varint(self.predictions);
        out.varint(self.errors);
        if self.predictions > 0 {
            out.signed_varint(self.first_prediction_ms);
            out.varint(
                self.last_prediction_ms
                    .wrapping_sub(self.first_prediction_ms) as u64,
            );
        }
        out.varint(self.error_types.len() as u64);
        for (error_type, &count) in &self.error_types {
            out.str(error_type);
            out.varint(count);
        }
        self.latency.encode(&mut out);
        match &self.quality {
            None => out.u8(0),
            Some(QualityStats::Binary(stats)) => {
                out.u8(1);
                stats.encode(&mut out);
            }
            Some(QualityStats::Multiclass(stats)) => {
                out.u8(2);
                stats.encode(&mut out);
            }
            Some(QualityStats::Regression(stats)) => {
                out.u8(3);
                stats.encode(&mut out);
            }
        }
        self.resources.encode(&mut out);
        if with_labels {
            self.label_delay.encode(&mut out);
        }
        if let (true, Some(quality)) = (with_distribution, &self.quality) {
            quality.encode_distribution(&mut out);
        }
        if let Some(stats) = confidence {
            stats.encode_scores(&mut out);
        }
        out.into_bytes()
    }

    /// Reads bytes written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`DecodeError`] for any input that is not a complete, consistent, canonical state of
    /// a supported version. Never panics, whatever the input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut input = Reader::new(bytes);
        let version = input.version(
            &[
                FORMAT_VERSION,
                FORMAT_VERSION_WITH_LABELS,
                FORMAT_VERSION_WITH_DISTRIBUTION,
                FORMAT_VERSION_WITH_CONFIDENCE,
            ],
            "version",
        )?;
        let with_confidence = version == FORMAT_VERSION_WITH_CONFIDENCE;
        let with_distribution = version == FORMAT_VERSION_WITH_DISTRIBUTION || with_confidence;
        let with_labels = version != FORMAT_VERSION;
        let mut state = Self::new();
        state.predictions = input.varint("predictions")?;
        state.errors = input.varint("errors")?;
        if state.errors > state.predictions {
            return Err(DecodeError::Invalid {
                what: "more errors than predictions",
            });
        }
        if state.predictions > 0 {
            state.first_prediction_ms = input.signed_varint("first prediction time")?;
            let span = input.varint("prediction time span")?;
            state.last_prediction_ms = i64::try_from(span)
                .ok()
                .and_then(|span| state.first_prediction_ms.checked_add(span))
                .ok_or(DecodeError::Invalid {
                    what: "prediction time span",
                })?;
        }
        // The named types and the overflow bucket.
        let error_type_count = input.bounded_len(MAX_ERROR_TYPES + 1, "error type count")?;
        let mut typed_errors = 0u64;
        for _ in 0..error_type_count {
            let error_type = input.str(MAX_ERROR_TYPE_BYTES, "error type")?;
            let count = input.varint("error type count")?;
            let ascending = state
                .error_types
                .last_key_value()
                .is_none_or(|(last, _)| last.as_str() < error_type);
            if count == 0 || !ascending {
                return Err(DecodeError::Invalid {
                    what: "error types",
                });
            }
            typed_errors = typed_errors.saturating_add(count);
            state.error_types.insert(error_type.to_owned(), count);
        }
        if typed_errors > state.errors {
            return Err(DecodeError::Invalid {
                what: "more typed errors than errors",
            });
        }
        if error_type_count > MAX_ERROR_TYPES && state.error_type_overflow() == 0 {
            return Err(DecodeError::Invalid {
                what: "error type count",
            });
        }
        state.latency = LatencySketch::decode(&mut input)?;
        if state.latency.count() != state.predictions {
            return Err(DecodeError::Invalid {
                what: "latency count differs from predictions",
            });
        }
        state.quality = match input.u8("quality tag")? {
            0 => None,
            1 => Some(QualityStats::Binary(BinaryStats::decode(&mut input)?)),
            2 => Some(QualityStats::Multiclass(MulticlassStats::decode(
                &mut input,
                with_distribution,
            )?)),
            3 => Some(QualityStats::Regression(RegressionStats::decode(
                &mut input,
            )?)),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "quality tag",
                });
            }
        };
        state.resources = ResourceStats::decode(&mut input)?;
        if with_labels {
            state.label_delay = LatencySketch::decode(&mut input)?;
            if !with_distribution && state.label_delay.count() == 0 {
                return Err(DecodeError::Invalid {
                    what: "empty label delay sketch in version 2",
                });
            }
        }
        // A joined label adds a labeled record to a window whose prediction may be in
        // another state (the partial of the label batch holds labels only).
        let joins = state.label_delay.count();
        let labelable = (state.predictions - state.errors).saturating_add(joins);
        let labeled = state.quality.as_ref().map_or(0, QualityStats::labeled);
        if state.quality.is_some() != (state.predictions > 0 || joins > 0) || labeled > labelable {
            return Err(DecodeError::Invalid {
                what: "quality counts",
            });
        }
        let distributed = match (with_distribution, &mut state.quality) {
            (false, _) => 0,
            (true, Some(quality)) => quality.decode_distribution(&mut input)?,
            (true, None) => {
                return Err(DecodeError::Invalid {
                    what: "distribution of a state without predictions",
                });
            }
        };
        if distributed > state.predictions - state.errors {
            return Err(DecodeError::Invalid {
                what: "distribution counts more than the ok predictions",
            });
        }
        match (with_confidence, &mut state.quality) {
            (false, _) => {}
            (true, Some(QualityStats::Multiclass(stats))) => {
                stats.decode_scores(&mut input, distributed)?;
            }
            (true, _) => {
                return Err(DecodeError::Invalid {
                    what: "predicted-class scores of a state that is not multiclass",
                });
            }
        }
        if let Some(QualityStats::Binary(stats)) = &state.quality {
            let (positives, negatives) = stats.scored();
            if positives.saturating_add(negatives) > labelable {
                return Err(DecodeError::Invalid {
                    what: "score counts",
                });
            }
        }
        input.finish()?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("in range")
    }

    fn binary(
        ms: i64,
        latency_ms: f64,
        predicted: bool,
        actual: bool,
        score: f64,
    ) -> PredictionRecord {
        PredictionRecord {
            timestamp: at(ms),
            latency_ms,
            status: Status::Ok,
            error_type: None,
            outcome: Outcome::Binary {
                predicted: Some(predicted),
                actual: Some(actual),
                score: Some(score),
            },
        }
    }

    fn failed(ms: i64, error_type: Option<&str>) -> PredictionRecord {
        PredictionRecord {
            timestamp: at(ms),
            latency_ms: 30.0,
            status: Status::Error,
            error_type: error_type.map(str::to_owned),
            outcome: Outcome::Binary {
                predicted: None,
                actual: None,
                score: None,
            },
        }
    }

    #[test]
    fn counts_statuses_error_types_and_event_times() {
        let mut state = WindowState::new();
        state
            .fold_prediction(&binary(5_000, 10.0, true, true, 0.9))
            .expect("valid");
        state
            .fold_prediction(&failed(1_000, Some("timeout")))
            .expect("valid");
        state
            .fold_prediction(&failed(9_000, Some("timeout")))
            .expect("valid");
        state.fold_prediction(&failed(2_000, None)).expect("valid");
        assert_eq!(
            (state.predictions(), state.errors(), state.untyped_errors()),
            (4, 3, 1)
        );
        assert_eq!(
            state.errors_by_type().collect::<Vec<_>>(),
            vec![("timeout", 2)]
        );
        assert_eq!(state.first_prediction(), Some(at(1_000)));
        assert_eq!(state.last_prediction(), Some(at(9_000)));
        assert_eq!(state.task(), Some(Task::BinaryClassification));
        assert_eq!(state.quality().map(QualityStats::labeled), Some(1));
    }

    #[test]
    fn rejected_records_leave_the_state_unchanged() {
        let mut state = WindowState::new();
        let mut bad = binary(0, f64::NAN, true, true, 0.5);
        assert_eq!(
            state.fold_prediction(&bad),
            Err(FoldError::NonFinite {
                field: "latency_ms"
            })
        );
        bad.latency_ms = -1.0;
        assert!(matches!(
            state.fold_prediction(&bad),
            Err(FoldError::OutOfRange {
                field: "latency_ms",
                ..
            })
        ));
        bad.latency_ms = 1.0;
        bad.outcome = Outcome::Binary {
            predicted: None,
            actual: None,
            score: Some(f64::INFINITY),
        };
        assert_eq!(
            state.fold_prediction(&bad),
            Err(FoldError::NonFinite { field: "score" })
        );
        bad.error_type = Some("oops".into());
        assert_eq!(
            state.fold_prediction(&bad),
            Err(FoldError::ErrorTypeOnOkRecord)
        );
        assert_eq!(state, WindowState::new());
        // A failed record's quality fields are validated too, though not counted.
        let mut failed_record = failed(0, Some("x"));
        failed_record.outcome = Outcome::Regression {
            predicted: Some(f64::NAN),
            actual: None,
        };
        assert_eq!(
            state.fold_prediction(&failed_record),
            Err(FoldError::NonFinite { field: "predicted" })
        );
        assert_eq!(state, WindowState::new());
    }

    #[test]
    fn records_of_another_task_are_rejected() {
        let mut state = WindowState::new();
        state
            .fold_prediction(&binary(0, 1.0, true, true, 0.5))
            .expect("valid");
        let regression = PredictionRecord {
            outcome: Outcome::Regression {
                predicted: Some(1.0),
                actual: Some(2.0),
            },
            ..binary(0, 1.0, true, true, 0.5)
        };
        let before = state.clone();
        assert_eq!(
            state.fold_prediction(&regression),
            Err(FoldError::TaskMismatch {
                window: Task::BinaryClassification,
                record: Task::Regression
            })
        );
        assert_eq!(state, before);
        let mut other = WindowState::new();
        other.fold_prediction(&regression).expect("valid");
        assert!(matches!(
            state.merge(&other),
            Err(MergeError::TaskMismatch { .. })
        ));
        assert_eq!(state, before);
    }

    #[test]
    fn error_types_beyond_the_cap_count_in_the_overflow_bucket() {
        let mut state = WindowState::new();
        for i in 0..MAX_ERROR_TYPES {
            state
                .fold_prediction(&failed(0, Some(&format!("type-{i:03}"))))
                .expect("within cap");
        }
        assert_eq!(state.error_type_overflow(), 0);
        state
            .fold_prediction(&failed(0, Some("zzz")))
            .expect("beyond the cap is counted, not refused");
        assert_eq!(state.error_type_overflow(), 1);
        // A type sorting first takes a name; the last named type moves to the bucket.
        let mut other = WindowState::new();
        other
            .fold_prediction(&failed(0, Some("aaa")))
            .expect("valid");
        other
            .fold_prediction(&failed(0, Some("aaa")))
            .expect("valid");
        state.merge(&other).expect("merges never hit a cap");
        assert_eq!(state.errors(), MAX_ERROR_TYPES as u64 + 3);
        assert_eq!(state.error_type_overflow(), 2, "zzz and type-255");
        let types: Vec<(&str, u64)> = state.errors_by_type().collect();
        assert_eq!(types.len(), MAX_ERROR_TYPES + 1);
        assert_eq!(types[0], ("__other__", 2));
        assert_eq!(types[1], ("aaa", 2));
        assert_eq!(state.untyped_errors(), 0);
        assert_eq!(
            WindowState::from_bytes(&state.to_bytes()),
            Ok(state.clone())
        );
        assert_eq!(
            WindowState::new().fold_prediction(&failed(0, Some(OVERFLOW_BUCKET))),
            Err(FoldError::Reserved {
                field: "error_type"
            })
        );
        let long = "x".repeat(MAX_ERROR_TYPE_BYTES + 1);
        assert!(matches!(
            WindowState::new().fold_prediction(&failed(0, Some(&long))),
            Err(FoldError::TooLong { .. })
        ));
    }

    #[test]
    fn latency_beyond_its_bound_is_refused() {
        let mut state = WindowState::new();
        state
            .fold_prediction(&binary(0, MAX_LATENCY_MS, true, true, 0.5))
            .expect("at the bound");
        assert!(matches!(
            state.fold_prediction(&binary(0, 1e200, true, true, 0.5)),
            Err(FoldError::OutOfRange {
                field: "latency_ms",
                ..
            })
        ));
        assert_eq!(state.predictions(), 1);
    }

    #[test]
    fn empty_state_round_trips_and_garbage_is_rejected() {
        let empty = WindowState::new();
        let bytes = empty.to_bytes();
        assert_eq!(WindowState::from_bytes(&bytes), Ok(empty));
        assert!(matches!(
            WindowState::from_bytes(&[]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            WindowState::from_bytes(&[9]),
            Err(DecodeError::UnsupportedVersion { found: 9, .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            WindowState::from_bytes(&trailing),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn a_joined_label_adds_quality_and_delay_but_no_prediction() {
        let unlabeled = Outcome::Binary {
            predicted: Some(true),
            actual: None,
            score: Some(0.9),
        };
        let mut prediction = WindowState::new();
        prediction
            .fold_prediction(&PredictionRecord {
                timestamp: at(1_000),
                latency_ms: 5.0,
                status: Status::Ok,
                error_type: None,
                outcome: unlabeled,
            })
            .expect("valid");
        // A scored binary prediction is in the score distribution: version 3.
        let v3 = prediction.to_bytes();
        assert_eq!(v3[0], FORMAT_VERSION_WITH_DISTRIBUTION);
        assert_eq!(WindowState::from_bytes(&v3), Ok(prediction.clone()));
        for len in 0..v3.len() {
            assert!(WindowState::from_bytes(&v3[..len]).is_err(), "prefix {len}");
        }
        // Without a score (nor a joined label) the state keeps version 1.
        let mut unscored = WindowState::new();
        unscored
            .fold_prediction(&PredictionRecord {
                timestamp: at(1_000),
                latency_ms: 5.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Binary {
                    predicted: Some(true),
                    actual: None,
                    score: None,
                },
            })
            .expect("valid");
        assert_eq!(unscored.to_bytes()[0], FORMAT_VERSION);

        let mut label = WindowState::new();
        let labeled = Outcome::Binary {
            predicted: Some(true),
            actual: Some(true),
            score: Some(0.9),
        };
        label.fold_label(&labeled, 3_600.0).expect("valid");
        assert_eq!(label.predictions(), 0);
        assert_eq!(label.label_delay().count(), 1);
        // A label-only state (the label batch's partial) round-trips as version 2.
        let v2 = label.to_bytes();
        assert_eq!(v2[0], FORMAT_VERSION_WITH_LABELS);
        assert_eq!(WindowState::from_bytes(&v2), Ok(label.clone()));
        for len in 0..v2.len() {
            assert!(WindowState::from_bytes(&v2[..len]).is_err(), "prefix {len}");
        }

        prediction.merge(&label).expect("same task");
        assert_eq!(prediction.predictions(), 1);
        assert_eq!(prediction.quality().map(QualityStats::labeled), Some(1));
        assert_eq!(prediction.label_delay().quantile(0.5), Some(3_600.0));
        assert_eq!(
            WindowState::from_bytes(&prediction.to_bytes()),
            Ok(prediction.clone())
        );
        // A negative delay (clock skew) counts as 0; a non-finite one is refused.
        label.fold_label(&labeled, -5.0).expect("valid");
        assert_eq!(label.label_delay().min_ms(), Some(0.0));
        assert!(label.fold_label(&labeled, f64::NAN).is_err());
        // A version-2 state must hold a label delay.
        let mut empty_v2 = WindowState::new().to_bytes();
        empty_v2[0] = FORMAT_VERSION_WITH_LABELS;
        let mut sketch = Writer::with_capacity(8);
        LatencySketch::new().encode(&mut sketch);
        empty_v2.extend(sketch.into_bytes());
        assert!(WindowState::from_bytes(&empty_v2).is_err());
    }

    #[test]
    fn a_scored_multiclass_state_is_version_4_and_an_unscored_one_keeps_version_3() {
        let multiclass = |predicted: &str, score| PredictionRecord {
            timestamp: at(1_000),
            latency_ms: 5.0,
            status: Status::Ok,
            error_type: None,
            outcome: Outcome::Multiclass {
                predicted: Some(predicted.into()),
                actual: None,
                score,
            },
        };
        let mut unscored = WindowState::new();
        unscored
            .fold_prediction(&multiclass("cat", None))
            .expect("valid");
        let v3 = unscored.to_bytes();
        assert_eq!(v3[0], FORMAT_VERSION_WITH_DISTRIBUTION);

        let mut scored = unscored.clone();
        for (label, score) in [("dog", 0.9), ("cat", 0.45), ("dog", 0.9)] {
            scored
                .fold_prediction(&multiclass(label, Some(score)))
                .expect("valid");
        }
        let Some(QualityStats::Multiclass(stats)) = scored.quality() else {
            panic!("multiclass");
        };
        let scores = stats.predicted_scores().expect("scores");
        assert_eq!(
            (scores[900], scores[450], scores.iter().sum::<u64>()),
            (2, 1, 3)
        );
        let v4 = scored.to_bytes();
        assert_eq!(v4[0], FORMAT_VERSION_WITH_CONFIDENCE);
        assert_eq!(WindowState::from_bytes(&v4), Ok(scored.clone()));
        // Every section is required: no prefix reads as a smaller state.
        for len in 0..v4.len() {
            assert!(WindowState::from_bytes(&v4[..len]).is_err(), "prefix {len}");
        }
        // Merging an unscored state keeps the scores; the scores stay within the
        // predictions counted.
        let mut merged = unscored.clone();
        merged.merge(&scored).expect("same task");
        assert_eq!(
            WindowState::from_bytes(&merged.to_bytes()),
            Ok(merged.clone())
        );
        // A version-4 state of another task, or one without its histogram, is refused.
        let mut relabeled = v3.clone();
        relabeled[0] = FORMAT_VERSION_WITH_CONFIDENCE;
        assert!(WindowState::from_bytes(&relabeled).is_err());
        let mut binary_v3 = WindowState::new();
        binary_v3
            .fold_prediction(&binary(1_000, 5.0, true, false, 0.3))
            .expect("valid");
        let mut binary_v4 = binary_v3.to_bytes();
        binary_v4[0] = FORMAT_VERSION_WITH_CONFIDENCE;
        binary_v4.extend([1, 0, 1]);
        assert!(WindowState::from_bytes(&binary_v4).is_err());
        // More scores than predictions: one prediction, a histogram of two.
        let mut one = WindowState::new();
        one.fold_prediction(&multiclass("cat", Some(0.5)))
            .expect("valid");
        let mut bytes = one.to_bytes();
        let last = bytes.len() - 1;
        assert_eq!(bytes[last], 1, "the one bin's count ends the state");
        bytes[last] = 2;
        assert!(WindowState::from_bytes(&bytes).is_err());
    }

    #[test]
    fn every_truncation_of_a_full_state_is_an_error() {
        let mut state = WindowState::new();
        state
            .fold_prediction(&binary(5_000, 10.0, true, false, 0.3))
            .expect("valid");
        state
            .fold_prediction(&failed(7_000, Some("timeout")))
            .expect("valid");
        let sample = ResourceSample {
            timestamp: at(6_000),
            cpu_utilization: Some(0.4),
            memory_utilization: Some(0.6),
            gpu_utilization: None,
            queue_depth: Some(3.0),
            cache_hits: Some(10),
            cache_misses: Some(2),
        };
        state.fold_resource(&sample).expect("valid");
        let bytes = state.to_bytes();
        assert_eq!(WindowState::from_bytes(&bytes), Ok(state));
        for len in 0..bytes.len() {
            assert!(
                WindowState::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }
}

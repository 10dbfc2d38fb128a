//! The typed input records the metric engine folds: one [`PredictionRecord`] per served
//! prediction and one [`ResourceSample`] per resource reading of the serving fleet.
//!
//! These types carry no validation of their own; [`WindowState`](super::WindowState)
//! checks every field when it folds a record and rejects what it cannot count with a
//! [`FoldError`](super::FoldError) naming the field.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::ModelId;
use super::slice::MAX_SEGMENT_KEYS_PER_PREDICTION;

/// The kind of model, which decides the quality metrics that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes, `true` being the positive one; may carry a score for AUC-ROC.
    BinaryClassification,
    /// Any number of classes named by string labels (at most
    /// [`MAX_LABELS`](super::MAX_LABELS) distinct per window).
    MulticlassClassification,
    /// A real-valued target.
    Regression,
}

impl Task {
    /// The wire name: `binary_classification`, `multiclass_classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BinaryClassification => "binary_classification",
            Self::MulticlassClassification => "multiclass_classification",
            Self::Regression => "regression",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`Task`] name that is not one of the three wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown task {0:?} (expected binary_classification, multiclass_classification or regression)"
)]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "binary_classification" => Ok(Self::BinaryClassification),
            "multiclass_classification" => Ok(Self::MulticlassClassification),
            "regression" => Ok(Self::Regression),
            other => Err(UnknownTask(other.to_owned())),
        }
    }
}

/// Whether the serving system answered the prediction request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A prediction was returned; its quality part counts when labeled.
    Ok,
    /// The request failed; it counts towards predictions, errors and latency only.
    Error,
}

/// The quality part of a prediction: what the model said and, once known, the truth.
///
/// Any part may be absent: ground truth usually arrives later than the prediction, and a
/// failed request has no prediction. The variant decides the record's [`Task`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A binary classifier's answer; `true` is the positive class.
    Binary {
        /// The predicted class.
        predicted: Option<bool>,
        /// The true class.
        actual: Option<bool>,
        /// The model's score for the positive class, a probability in `[0, 1]`.
        score: Option<f64>,
    },
    /// A multiclass classifier's answer; labels are compared as exact strings (the ingest
    /// layer writes integer labels in decimal). At most [`MAX_LABEL_BYTES`](super::MAX_LABEL_BYTES)
    /// bytes each.
    Multiclass {
        /// The predicted label.
        predicted: Option<String>,
        /// The true label.
        actual: Option<String>,
        /// The model's score for the predicted label (its confidence), a probability in
        /// `[0, 1]`; counted in the distribution prediction drift compares.
        score: Option<f64>,
    },
    /// A regressor's answer, in the target's own unit; both must be finite.
    Regression {
        /// The predicted value.
        predicted: Option<f64>,
        /// The true value.
        actual: Option<f64>,
    },
}

impl Outcome {
    /// The task this outcome belongs to.
    pub fn task(&self) -> Task {
        match self {
            Self::Binary { .. } => Task::BinaryClassification,
            Self::Multiclass { .. } => Task::MulticlassClassification,
            Self::Regression { .. } => Task::Regression,
        }
    }
}

/// One served prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// When the prediction was served (kept to the millisecond by the window state).
    pub timestamp: DateTime<Utc>,
    /// End-to-end latency in milliseconds; finite and ≥ 0.
    pub latency_ms: f64,
    /// Whether the request succeeded.
    pub status: Status,
    /// The failure's type, only on [`Status::Error`] records (at most
    /// [`MAX_ERROR_TYPE_BYTES`](super::MAX_ERROR_TYPE_BYTES) bytes); `None` counts as an
    /// untyped error.
    pub error_type: Option<String>,
    /// What was predicted and, if known, the truth.
    pub outcome: Outcome,
}

/// One reading of the serving fleet's resources; every field is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSample {
    /// When the reading was taken.
    pub timestamp: DateTime<Utc>,
    /// CPU utilization as a fraction in `[0, 1]`.
    pub cpu_utilization: Option<f64>,
    /// Memory utilization as a fraction in `[0, 1]`.
    pub memory_utilization: Option<f64>,
    /// GPU compute utilization as a fraction in `[0, 1]`.
    pub gpu_utilization: Option<f64>,
    /// Pending requests in the serving queue; finite and ≥ 0.
    pub queue_depth: Option<f64>,
    /// In-memory model cache hits since the previous sample.
    pub cache_hits: Option<u64>,
    /// In-memory model cache misses since the previous sample.
    pub cache_misses: Option<u64>,
}

/// A prediction that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPrediction {
    /// The serving system's id for it, if given: [`ValidBatch::prediction_id`].
    pub prediction_id: Option<IdSpan>,
    /// The typed record the metric engine folds.
    pub record: PredictionRecord,
    /// Its segment, as its batch's pairs ([`ValidBatch::segment_of`]); empty without.
    pub segment: SegmentIds,
}

/// Where a prediction's id lies in its batch's ids: a batch keeps the ids of its
/// predictions in one string (10,000 predictions would otherwise allocate as many
/// strings), read back by [`ValidBatch::prediction_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpan {
    start: u32,
    end: u32,
}

impl IdSpan {
    /// Appends `id` to a batch's `ids` and returns where it lies; `None` once the ids
    /// pass 4 GiB (a body is far smaller).
    pub fn push(ids: &mut String, id: &str) -> Option<Self> {
        let start = u32::try_from(ids.len()).ok()?;
        let end = u32::try_from(ids.len() + id.len()).ok()?;
        ids.push_str(id);
        Some(Self { start, end })
    }

    /// The id in `ids`, when it lies there on character boundaries.
    fn within(self, ids: &str) -> Option<&str> {
        ids.get(self.start as usize..self.end as usize)
    }
}

/// The segment of one prediction: the indices of its `(key, value)` pairs in its
/// batch's [`ValidBatch::segment_pairs`], in key order, each key once. Held inline (a
/// batch of 10,000 predictions with a segment each would otherwise allocate 10,000
/// lists and two strings per pair, for a handful of distinct pairs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentIds {
    len: u8,
    ids: [u32; MAX_SEGMENT_KEYS_PER_PREDICTION],
}

impl SegmentIds {
    /// The pairs' indices, in key order.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }

    /// Whether the prediction has no segment.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment of the pairs `ids`, in key order; `None` past
    /// [`MAX_SEGMENT_KEYS_PER_PREDICTION`].
    pub fn of(ids: &[u32]) -> Option<Self> {
        let mut segment = Self {
            len: u8::try_from(ids.len()).ok()?,
            ..Self::default()
        };
        segment.ids.get_mut(..ids.len())?.copy_from_slice(ids);
        Some(segment)
    }
}

/// A batch that passed validation: every record is usable.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBatch {
    /// The model the batch is for.
    pub model_id: ModelId,
    /// The sender's id for the batch; a batch with a known id is a retry.
    pub batch_id: String,
    /// The model version that served the batch, if given.
    pub model_version: Option<String>,
    /// The model's task.
    pub task: Task,
    /// The predictions, in body order (at least one).
    pub predictions: Vec<ValidPrediction>,
    /// Resource samples, in body order (possibly none).
    pub resources: Vec<ResourceSample>,
    /// The distinct `(key, value)` pairs of the predictions' segments, in the order
    /// first met; a prediction names its own by index ([`SegmentIds`]), checked by
    /// [`ValidBatch::new`].
    segment_pairs: Vec<(String, String)>,
    /// The predictions' ids, each where its [`IdSpan`] says, checked by
    /// [`ValidBatch::new`].
    prediction_ids: String,
}

/// What a [`ValidBatch`] is made of besides its records.
#[derive(Debug)]
pub struct BatchHeader {
    /// The model the batch is for.
    pub model_id: ModelId,
    /// The sender's id for the batch.
    pub batch_id: String,
    /// The model version that served the batch, if given.
    pub model_version: Option<String>,
    /// The model's task.
    pub task: Task,
}

impl ValidBatch {
    /// The batch of `header` and its records, whose segments name `segment_pairs` by
    /// index and whose ids lie in `prediction_ids`; `None` when a prediction names a
    /// pair or an id that is not there.
    pub fn new(
        header: BatchHeader,
        predictions: Vec<ValidPrediction>,
        resources: Vec<ResourceSample>,
        segment_pairs: Vec<(String, String)>,
        prediction_ids: String,
    ) -> Option<Self> {
        let named = |p: &ValidPrediction| {
            (p.segment.as_slice().iter()).all(|&id| (id as usize) < segment_pairs.len())
                && p.prediction_id
                    .is_none_or(|span| span.within(&prediction_ids).is_some())
        };
        predictions.iter().all(named).then(|| {
            let BatchHeader {
                model_id,
                batch_id,
                model_version,
                task,
            } = header;
            Self {
                model_id,
                batch_id,
                model_version,
                task,
                predictions,
                resources,
                segment_pairs,
                prediction_ids,
            }
        })
    }

    /// The id of `prediction` (one of this batch's, whose span [`ValidBatch::new`]
    /// checked), if it has one.
    pub fn prediction_id(&self, prediction: &ValidPrediction) -> Option<&str> {
        prediction.prediction_id?.within(&self.prediction_ids)
    }

    /// The distinct `(key, value)` pairs of the predictions' segments, in the order
    /// first met.
    pub fn segment_pairs(&self) -> &[(String, String)] {
        &self.segment_pairs
    }

    /// The segment of `prediction` (one of this batch's, whose pair indices
    /// [`ValidBatch::new`] checked): `(key, value)` pairs in key order.
    pub fn segment_of<'b>(
        &'b self,
        prediction: &'b ValidPrediction,
    ) -> impl ExactSizeIterator<Item = (&'b str, &'b str)> + 'b {
        prediction.segment.as_slice().iter().map(|&id| {
            self.segment_pairs
                .get(id as usize)
                .map_or(("", ""), |(key, value)| (key.as_str(), value.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip_through_str_and_serde() {
        for task in [
            Task::BinaryClassification,
            Task::MulticlassClassification,
            Task::Regression,
        ] {
            assert_eq!(task.as_str().parse::<Task>(), Ok(task));
            let json = serde_json::to_string(&task).expect("serializes");
            assert_eq!(json, format!("\"{}\"", task.as_str()));
        }
        assert!("classification".parse::<Task>().is_err());
    }

    #[test]
    fn a_segment_holds_at_most_the_allowed_keys() {
        let ids: Vec<u32> = (0..=MAX_SEGMENT_KEYS_PER_PREDICTION as u32).collect();
        let most = &ids[..MAX_SEGMENT_KEYS_PER_PREDICTION];
        assert_eq!(
            SegmentIds::of(most).map(|s| s.as_slice().to_vec()),
            Some(most.to_vec())
        );
        assert_eq!(SegmentIds::of(&ids), None);
        assert!(SegmentIds::of(&[]).is_some_and(|s| s.is_empty()));
    }

    #[test]
    fn a_batch_refuses_a_segment_naming_a_pair_or_an_id_it_lacks() {
        let prediction = |ids: &[u32], id: Option<IdSpan>| ValidPrediction {
            prediction_id: id,
            record: PredictionRecord {
                timestamp: DateTime::UNIX_EPOCH,
                latency_ms: 1.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: Some(1.0),
                    actual: None,
                },
            },
            segment: SegmentIds::of(ids).expect("within the cap"),
        };
        let header = || BatchHeader {
            model_id: ModelId::parse("m").expect("valid id"),
            batch_id: "b".into(),
            model_version: None,
            task: Task::Regression,
        };
        let pairs = vec![("region".to_owned(), "eu".to_owned())];
        let mut ids = String::new();
        let first = IdSpan::push(&mut ids, "p-1");
        let second = IdSpan::push(&mut ids, "p-22");
        let predictions = vec![
            prediction(&[0], first),
            prediction(&[], None),
            prediction(&[], second),
        ];
        let named = ValidBatch::new(header(), predictions, vec![], pairs.clone(), ids.clone())
            .expect("every pair and id is there");
        let segment: Vec<_> = named.segment_of(&named.predictions[0]).collect();
        assert_eq!(segment, [("region", "eu")]);
        let found: Vec<_> = (named.predictions.iter())
            .map(|p| named.prediction_id(p))
            .collect();
        assert_eq!(found, [Some("p-1"), None, Some("p-22")]);
        let refused = |segment: &[u32], id| {
            let predictions = vec![prediction(segment, id)];
            ValidBatch::new(header(), predictions, vec![], pairs.clone(), ids.clone()).is_none()
        };
        assert!(refused(&[1], None), "a pair past the batch's");
        let past = IdSpan::push(&mut "p-1p-22".to_owned(), "p-333");
        assert!(refused(&[], past), "an id past the batch's");
        assert!(!refused(&[0], second));
    }
}

//! The label contract of `POST /api/v1/monitoring/actuals`: a batch of late labels,
//! validated whole like a prediction batch (400 naming index and field, 413), then
//! joined to their predictions by `prediction_id`.
//!
//! Body: `{"model_id", "batch_id", "actuals": [{"prediction_id", "actual",
//! "timestamp"?}]}` — `timestamp` is when the label became known (default: arrival).
//! When the model is registered, every actual must fit its task; a label for a model
//! not seen yet is checked for its shape only and waits for its prediction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MAX_PROBLEMS;
use super::batch::{At, BatchHead, BatchLimits, BatchRejection, Problem, Validator, parse};
use super::json::{ActualsBody, Fields, Value, read_actuals_body};
use crate::domain::Task;
use crate::domain::ids::ModelId;
use crate::domain::labels::{Actual, LabelFate, LateLabel};

/// Most prediction ids an answer lists per fate.
pub const MAX_SAMPLE_IDS: usize = 10;

/// A label that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidActual {
    /// The label, its time resolved (the batch's arrival when not stated).
    pub label: LateLabel,
    /// Whether the body stated the time (a retry of a label without one is the same
    /// label, though it arrives later).
    pub stated_time: bool,
}

/// A label batch that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualsBatch {
    /// The model.
    pub model_id: ModelId,
    /// The sender's batch id.
    pub batch_id: String,
    /// The labels, one per prediction id.
    pub actuals: Vec<ValidActual>,
}

/// Parses and validates a label batch received at `now` (`limits.max_predictions` is
/// also the most labels a batch may carry).
pub fn parse_actuals(
    body: &[u8],
    now: DateTime<Utc>,
    limits: &BatchLimits,
) -> Result<ActualsBatch, BatchRejection> {
    let read = |body| read_actuals_body(body, limits.max_predictions);
    parse(body, now, limits, read, |v, body| v.actuals_batch(body))
}

/// Refuses (400) every label whose actual does not fit `task`, the model's.
pub fn check_task(batch: &ActualsBatch, task: Task) -> Result<(), BatchRejection> {
    let mut problems = Vec::new();
    let mut found = 0;
    for (index, sent) in batch.actuals.iter().enumerate() {
        if let Err(reason) = sent.label.actual.for_task(task) {
            found += 1;
            if problems.len() < MAX_PROBLEMS {
                problems.push(Problem {
                    index: Some(index),
                    field: format!("actuals[{index}].actual"),
                    reason: format!("{reason} (the model's task is {task})"),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BatchRejection::Invalid {
            truncated: found > problems.len(),
            problems,
        })
    }
}

impl Validator<'_> {
    fn actuals_batch(&mut self, body: &ActualsBody) -> Option<ActualsBatch> {
        let BatchHead {
            raw,
            model_id,
            batch_id,
        } = self.batch_head(body)?;
        let (records, mut strays) = self.list(raw.lists.actuals.as_ref(), "actuals", true);
        let mut first_index: HashMap<String, usize> = HashMap::new();
        let mut actuals = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let at = At {
                list: "actuals",
                index: Some(index),
            };
            let before = self.found();
            // In the order of ACTUAL_FIELDS.
            let Some([prediction_id, actual, stated]) =
                self.record(at, record, &mut strays).map(Fields::each)
            else {
                continue;
            };
            let prediction_id = self.id(at, "prediction_id", prediction_id, true);
            let actual = self.actual(at, actual);
            let time = match stated {
                None => Some(self.now),
                Some(node) => self
                    .rfc3339(at, node)
                    .and_then(|time| self.not_future(at, time)),
            };
            if let Some(id) = &prediction_id {
                if let Some(first) = first_index.get(id) {
                    let reason = format!(
                        "repeats actuals[{first}].prediction_id: a batch carries one label per prediction"
                    );
                    self.problem(at, "prediction_id", reason);
                } else {
                    first_index.insert(id.clone(), index);
                }
            }
            if let (Some(prediction_id), Some(actual), Some(time), true) =
                (prediction_id, actual, time, self.found() == before)
            {
                actuals.push(ValidActual {
                    label: LateLabel {
                        prediction_id,
                        actual,
                        time,
                    },
                    stated_time: stated.is_some(),
                });
            }
        }
        Some(ActualsBatch {
            model_id: model_id?,
            batch_id: batch_id?,
            actuals,
        })
    }

    /// A label's `actual`: a boolean, a number or a string (checked against the
    /// model's task apart, when the task is known).
    fn actual(&mut self, at: At, node: Option<&Value>) -> Option<Actual> {
        let actual = match node {
            None => {
                self.problem(at, "actual", "is required");
                return None;
            }
            Some(Value::Bool(b)) => Actual::Bool(*b),
            Some(Value::Int(i)) => Actual::Integer(i128::from(*i)),
            Some(Value::UInt(u)) => Actual::Integer(i128::from(*u)),
            Some(Value::Float(v)) => Actual::Number(*v),
            Some(Value::Str(s)) => Actual::Text(s.clone().into_owned()),
            Some(other) => {
                let reason = format!(
                    "must be a boolean, a number or a string, found {}",
                    other.kind()
                );
                self.problem(at, "actual", reason);
                return None;
            }
        };
        if let Err(reason) = actual.check_shape() {
            self.problem(at, "actual", reason);
            return None;
        }
        Some(actual)
    }
}

/// The prediction ids of one fate: how many, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateCount {
    /// Labels with this fate.
    pub count: usize,
    /// The prediction ids of the first [`MAX_SAMPLE_IDS`] of them, in batch order.
    pub sample: Vec<String>,
}

impl FateCount {
    fn add(&mut self, prediction_id: &str) {
        self.count += 1;
        if self.sample.len() < MAX_SAMPLE_IDS {
            self.sample.push(prediction_id.to_owned());
        }
    }
}

/// The answer to an accepted label batch (202): what became of every label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualsReceipt {
    /// The batch's id.
    pub batch_id: String,
    /// Labels accepted (the sum of the four fates).
    pub accepted: usize,
    /// The batch had been stored completely before: this is a retry, counted once.
    pub duplicate: bool,
    /// Joined to their predictions, counted in the predictions' minutes.
    pub joined: FateCount,
    /// Prediction not seen yet: kept, joined when it arrives within the lookback.
    pub pending: FateCount,
    /// The prediction had a label already (the first wins); not counted.
    pub already_labeled: FateCount,
    /// The label or its prediction is older than the lookback; not counted.
    pub expired: FateCount,
    /// The label does not fit the task of the prediction it met (the model was not
    /// known when the batch was checked); not counted.
    #[serde(default)]
    pub refused: FateCount,
    /// Minutes of the predictions this batch's joins are counted in.
    pub minutes: usize,
}

impl ActualsReceipt {
    /// Counts one label's fate.
    pub fn note(&mut self, fate: LabelFate, prediction_id: &str) {
        self.accepted += 1;
        match fate {
            LabelFate::Joined => self.joined.add(prediction_id),
            LabelFate::Pending => self.pending.add(prediction_id),
            LabelFate::AlreadyLabeled => self.already_labeled.add(prediction_id),
            LabelFate::Expired => self.expired.add(prediction_id),
            LabelFate::Refused => self.refused.add(prediction_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_500_000, 0).expect("in range")
    }

    fn parse(body: &str) -> Result<ActualsBatch, BatchRejection> {
        parse_actuals(body.as_bytes(), now(), &BatchLimits::default())
    }

    fn problems(body: &str) -> Vec<(String, String)> {
        match parse(body) {
            Err(BatchRejection::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| (p.field, p.reason)).collect()
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_batch_keeps_every_label_and_defaults_the_time_to_arrival() {
        let batch = parse(
            r#"{"model_id": "fraud-v1", "batch_id": "labels-1", "actuals": [
                {"prediction_id": "p-1", "actual": 1, "timestamp": "2025-11-30T10:00:00+01:00"},
                {"prediction_id": "p-2", "actual": "cat"},
                {"prediction_id": "p-3", "actual": 2.5},
                {"prediction_id": "p-4", "actual": false}]}"#,
        )
        .expect("valid");
        assert_eq!(batch.model_id.as_str(), "fraud-v1");
        assert_eq!(batch.batch_id, "labels-1");
        let labels: Vec<(&str, &Actual, bool)> = batch
            .actuals
            .iter()
            .map(|a| {
                (
                    a.label.prediction_id.as_str(),
                    &a.label.actual,
                    a.stated_time,
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("p-1", &Actual::Integer(1), true),
                ("p-2", &Actual::Text("cat".into()), false),
                ("p-3", &Actual::Number(2.5), false),
                ("p-4", &Actual::Bool(false), false),
            ]
        );
        assert_eq!(
            batch.actuals[0].label.time,
            DateTime::from_timestamp(1_764_493_200, 0).expect("in range")
        );
        assert_eq!(batch.actuals[1].label.time, now());
    }

    #[test]
    fn every_problem_names_its_index_and_field() {
        let found = problems(
            r#"{"model_id": "m", "batch_id": "b", "extra": 1, "actuals": [
                {"prediction_id": "p-1"},
                {"actual": 1},
                {"prediction_id": "p-1", "actual": null},
                {"prediction_id": "p-4", "actual": 1, "timestamp": "yesterday"},
                {"prediction_id": "p-5", "actual": 1, "timestamp": "2099-01-01T00:00:00Z"},
                {"prediction_id": "p-6", "actual": ""},
                7]}"#,
        );
        let expected: Vec<(&str, &str)> = vec![
            ("extra", "is not a known field"),
            ("actuals[0].actual", "is required"),
            ("actuals[1].prediction_id", "is required"),
            (
                "actuals[2].actual",
                "must be a boolean, a number or a string, found null",
            ),
            (
                "actuals[2].prediction_id",
                "repeats actuals[0].prediction_id: a batch carries one label per prediction",
            ),
            ("actuals[3].timestamp", "must be an RFC 3339 timestamp"),
            (
                "actuals[4].timestamp",
                "is more than 300 seconds in the future",
            ),
            ("actuals[5].actual", "must not be empty"),
            ("actuals[6]", "must be an object, found a number"),
        ];
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|(f, r)| (f.as_str(), r.as_str()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn limits_are_those_of_predictions() {
        let limits = BatchLimits {
            max_predictions: 2,
            ..BatchLimits::default()
        };
        let body = br#"{"model_id": "m", "batch_id": "b", "actuals": [{}, {}, {}]}"#;
        assert!(matches!(
            parse_actuals(body, now(), &limits),
            Err(BatchRejection::TooLarge(Problem { field, .. })) if field == "actuals"
        ));
        assert_eq!(
            problems(r#"{"model_id": "m", "batch_id": "b", "actuals": []}"#),
            [("actuals".to_owned(), "must not be empty".to_owned())]
        );
        assert!(matches!(
            parse("[1]"),
            Err(BatchRejection::Invalid { problems, .. }) if problems[0].field == "body"
        ));
    }

    #[test]
    fn the_task_check_names_every_label_that_does_not_fit() {
        let batch = parse(
            r#"{"model_id": "m", "batch_id": "b", "actuals": [
                {"prediction_id": "p-1", "actual": 1},
                {"prediction_id": "p-2", "actual": "yes"},
                {"prediction_id": "p-3", "actual": 0.5}]}"#,
        )
        .expect("valid shape");
        assert_eq!(
            check_task(&batch, Task::Regression),
            Err(BatchRejection::Invalid {
                problems: vec![Problem {
                    index: Some(1),
                    field: "actuals[1].actual".into(),
                    reason: "must be a number for regression (the model's task is regression)"
                        .into(),
                }],
                truncated: false,
            })
        );
        let Err(BatchRejection::Invalid { problems, .. }) =
            check_task(&batch, Task::BinaryClassification)
        else {
            panic!("refused")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["actuals[1].actual", "actuals[2].actual"]);
        assert!(check_task(&batch, Task::MulticlassClassification).is_err());
    }

    #[test]
    fn the_receipt_counts_every_fate_and_samples_the_first_ids() {
        let mut receipt = ActualsReceipt::default();
        for i in 0..12 {
            receipt.note(LabelFate::Joined, &format!("p-{i}"));
        }
        receipt.note(LabelFate::Expired, "old");
        assert_eq!(receipt.accepted, 13);
        assert_eq!(receipt.joined.count, 12);
        assert_eq!(receipt.joined.sample.len(), MAX_SAMPLE_IDS);
        assert_eq!(receipt.expired.sample, ["old"]);
    }
}

//! Late labels: the truth of a prediction that arrives after it, joined by
//! `prediction_id` and counted in the prediction's own minute (BRIEF decision 10).
//!
//! A prediction can take a late label when it was served (`ok`), carries an id and a
//! prediction, and no actual ([`Outcome::awaits_label`]). Its label may arrive before
//! or after it; whichever of the two arrives second joins them, and the join counts
//! once: the side that joins claims it in the store, and only the claimant folds it
//! ([`WindowState::fold_label`](super::WindowState::fold_label)).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::bounds::{OVERFLOW_BUCKET, regression_value_problem};
use super::classification::MAX_LABEL_BYTES;
use super::record::{Outcome, Task};
use super::slice::Slice;

/// The truth of one prediction as a label batch sends it, before it meets its
/// prediction's task (a label may come before the model is known).
#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    /// `true` / `false`.
    Bool(bool),
    /// An integer (a binary class `0`/`1`, a multiclass label, a regression target).
    Integer(i128),
    /// Any other number (a regression target).
    Number(f64),
    /// A string (a multiclass label).
    Text(String),
}

impl Actual {
    /// The truth as `task` reads it, or why it does not fit: the same rules as an
    /// `actual` sent with its prediction.
    pub fn for_task(&self, task: Task) -> Result<Truth, String> {
        match (task, self) {
            (Task::BinaryClassification, Self::Bool(b)) => Ok(Truth::Binary(*b)),
            (Task::BinaryClassification, Self::Integer(0)) => Ok(Truth::Binary(false)),
            (Task::BinaryClassification, Self::Integer(1)) => Ok(Truth::Binary(true)),
            (Task::BinaryClassification, _) => {
                Err("must be 0, 1, true or false for binary_classification".into())
            }
            (Task::MulticlassClassification, Self::Integer(i)) => Ok(Truth::Class(i.to_string())),
            (Task::MulticlassClassification, Self::Text(s)) => {
                if s.is_empty() {
                    Err("must not be empty".into())
                } else if s.len() > MAX_LABEL_BYTES {
                    Err(format!("must be at most {MAX_LABEL_BYTES} bytes"))
                } else if s == OVERFLOW_BUCKET {
                    Err("is reserved for the overflow bucket".into())
                } else {
                    Ok(Truth::Class(s.clone()))
                }
            }
            (Task::MulticlassClassification, _) => {
                Err("must be a string or an integer label for multiclass_classification".into())
            }
            (Task::Regression, Self::Integer(i)) => regression(*i as f64),
            (Task::Regression, Self::Number(v)) => regression(*v),
            (Task::Regression, _) => Err("must be a number for regression".into()),
        }
    }

    /// Checks what holds whatever the task: a finite number, a string of at most
    /// [`MAX_LABEL_BYTES`] bytes.
    pub fn check_shape(&self) -> Result<(), String> {
        match self {
            Self::Number(v) if !v.is_finite() => Err("must be finite".into()),
            Self::Text(s) if s.is_empty() => Err("must not be empty".into()),
            Self::Text(s) if s.len() > MAX_LABEL_BYTES => {
                Err(format!("must be at most {MAX_LABEL_BYTES} bytes"))
            }
            _ => Ok(()),
        }
    }
}

fn regression(value: f64) -> Result<Truth, String> {
    match regression_value_problem(value) {
        Some(problem) => Err(problem.into()),
        None => Ok(Truth::Value(value)),
    }
}

/// An actual read for its task.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// A binary class.
    Binary(bool),
    /// A multiclass label.
    Class(String),
    /// A regression target.
    Value(f64),
}

impl Outcome {
    /// Whether a late label can complete this outcome: it holds a prediction and no
    /// actual.
    pub fn awaits_label(&self) -> bool {
        match self {
            Self::Binary {
                predicted, actual, ..
            } => predicted.is_some() && actual.is_none(),
            Self::Multiclass {
                predicted, actual, ..
            } => predicted.is_some() && actual.is_none(),
            Self::Regression { predicted, actual } => predicted.is_some() && actual.is_none(),
        }
    }

    /// This outcome with `truth` as its actual; `None` when `truth` is of another task.
    pub fn labeled(&self, truth: Truth) -> Option<Outcome> {
        Some(match (self, truth) {
            (
                &Self::Binary {
                    predicted, score, ..
                },
                Truth::Binary(actual),
            ) => Self::Binary {
                predicted,
                actual: Some(actual),
                score,
            },
            (
                Self::Multiclass {
                    predicted, score, ..
                },
                Truth::Class(actual),
            ) => Self::Multiclass {
                predicted: predicted.clone(),
                actual: Some(actual),
                score: *score,
            },
            (&Self::Regression { predicted, .. }, Truth::Value(actual)) => Self::Regression {
                predicted,
                actual: Some(actual),
            },
            _ => return None,
        })
    }
}

/// A prediction kept until its label arrives: what the join needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AwaitingPrediction {
    /// The serving system's id for it.
    pub prediction_id: String,
    /// When it was served: the minute its label counts in.
    pub time: DateTime<Utc>,
    /// What was predicted, without an actual.
    pub outcome: Outcome,
    /// The slices it counted under (its batch's version, its segments): its late
    /// label counts there too.
    pub slices: Vec<Slice>,
}

/// A label as a label batch sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct LateLabel {
    /// The prediction it belongs to.
    pub prediction_id: String,
    /// The truth.
    pub actual: Actual,
    /// When the label became known (the batch's arrival when not given).
    pub time: DateTime<Utc>,
}

/// A join of a label with its prediction, to be counted by the side that claimed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// The prediction (its time decides the minute).
    pub prediction: AwaitingPrediction,
    /// The label's truth.
    pub actual: Actual,
    /// When the label became known.
    pub label_time: DateTime<Utc>,
}

impl Join {
    /// The labeled outcome and the label's delay in seconds, ready to fold; `Err` with
    /// the reason when the label does not fit the prediction's task.
    pub fn labeled(&self) -> Result<(Outcome, f64), String> {
        let truth = self.actual.for_task(self.prediction.outcome.task())?;
        let outcome = self
            .prediction
            .outcome
            .labeled(truth)
            .ok_or_else(|| "does not fit the prediction's task".to_owned())?;
        let delay = (self.label_time - self.prediction.time).num_milliseconds() as f64 / 1000.0;
        Ok((outcome, delay))
    }
}

/// What became of one label of a label batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelFate {
    /// Joined to its prediction, counted in the prediction's minute.
    Joined,
    /// The prediction was not seen yet: kept, and joined when it arrives within the
    /// lookback.
    Pending,
    /// The prediction already had a label (the first one wins); this one is not counted.
    AlreadyLabeled,
    /// The label or its prediction is older than the lookback; not counted.
    Expired,
    /// The prediction it met is of a task the label does not fit (the model was not
    /// known when the label was checked); not counted.
    Refused,
}

impl LabelFate {
    /// Every fate, in the order answers list them.
    pub const ALL: [Self; 5] = [
        Self::Joined,
        Self::Pending,
        Self::AlreadyLabeled,
        Self::Expired,
        Self::Refused,
    ];
}

/// How far back a label may reach: a prediction older than this (or a label) is not
/// joined, and every retention involved outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLookback(pub TimeDelta);

impl LabelLookback {
    /// The default, `LABEL_LOOKBACK_DAYS` = 30.
    pub const DEFAULT: Self = Self(TimeDelta::days(30));

    /// Whether `time` is still within the lookback at `now`.
    pub fn covers(self, time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        time >= now - self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary_prediction() -> Outcome {
        Outcome::Binary {
            predicted: Some(true),
            actual: None,
            score: Some(0.8),
        }
    }

    #[test]
    fn actuals_read_as_the_prediction_side_reads_them() {
        let binary = Task::BinaryClassification;
        assert_eq!(Actual::Integer(1).for_task(binary), Ok(Truth::Binary(true)));
        assert_eq!(
            Actual::Bool(false).for_task(binary),
            Ok(Truth::Binary(false))
        );
        assert!(Actual::Integer(2).for_task(binary).is_err());
        assert!(Actual::Text("yes".into()).for_task(binary).is_err());
        let multi = Task::MulticlassClassification;
        assert_eq!(
            Actual::Integer(7).for_task(multi),
            Ok(Truth::Class("7".into()))
        );
        assert!(
            Actual::Text(OVERFLOW_BUCKET.into())
                .for_task(multi)
                .is_err()
        );
        assert!(Actual::Bool(true).for_task(multi).is_err());
        assert_eq!(
            Actual::Number(2.5).for_task(Task::Regression),
            Ok(Truth::Value(2.5))
        );
        assert!(Actual::Number(1e300).for_task(Task::Regression).is_err());
        assert!(Actual::Text("2".into()).for_task(Task::Regression).is_err());
    }

    #[test]
    fn only_ok_predictions_without_actual_await_a_label() {
        assert!(binary_prediction().awaits_label());
        let labeled = binary_prediction().labeled(Truth::Binary(true)).unwrap();
        assert!(!labeled.awaits_label());
        let failed = Outcome::Regression {
            predicted: None,
            actual: None,
        };
        assert!(!failed.awaits_label());
        assert_eq!(binary_prediction().labeled(Truth::Value(1.0)), None);
    }

    #[test]
    fn a_join_carries_the_delay_and_the_labeled_outcome() {
        let time = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let join = Join {
            prediction: AwaitingPrediction {
                prediction_id: "p-1".into(),
                time,
                outcome: binary_prediction(),
                slices: Vec::new(),
            },
            actual: Actual::Integer(0),
            label_time: time + TimeDelta::milliseconds(90_500),
        };
        let (outcome, delay) = join.labeled().unwrap();
        assert_eq!(delay, 90.5);
        assert_eq!(
            outcome,
            Outcome::Binary {
                predicted: Some(true),
                actual: Some(false),
                score: Some(0.8)
            }
        );
        let wrong = Join {
            actual: Actual::Text("cat".into()),
            ..join
        };
        assert!(wrong.labeled().is_err());
    }

    #[test]
    fn the_lookback_covers_its_own_boundary() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let lookback = LabelLookback(TimeDelta::days(30));
        assert!(lookback.covers(now - TimeDelta::days(30), now));
        assert!(!lookback.covers(now - TimeDelta::days(30) - TimeDelta::seconds(1), now));
    }
}

//! What the simulated serving systems do: which models, how healthy each is at each
//! minute, and the prediction batches that follow (with their ground truth).
//!
//! The degraded model drifts slowly from the start (accuracy down 1.5 points until the
//! incident), then has a 20-minute incident ending 100 minutes before the end — accuracy
//! 0.6, latency × 6, 12 % errors, CPU and queue saturated — and recovers. With
//! evaluations every few minutes its three default rules (accuracy, p95 latency ceiling,
//! error rate) fire once during the incident and resolve once afterwards; the healthy
//! models stay inside every default threshold.
//!
//! A [`ModelKind::LateBinary`] model is healthy and learns its truth late: its
//! predictions go out without `actual`, and every label arrives 1–3 simulated hours
//! later, sent by the label route ([`crate::labels`]). Its default quality rules see
//! too few labels in their 1-hour window to judge (`insufficient_data`), never an alert.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::labels::LateLabel;
use crate::rng::Rng;
use crate::truth::{GroundTruth, TruthRecord};

/// The kind of model, as the batch's `task` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Binary classifier (scores included).
    Binary,
    /// Multiclass classifier over five labels.
    Multiclass,
    /// Regressor.
    Regression,
    /// Binary classifier whose labels arrive [`LATE_LABEL_DELAY`] after its
    /// predictions, by the label route.
    LateBinary,
}

/// How late a [`ModelKind::LateBinary`] label arrives: uniform in this range of
/// simulated time, per prediction.
pub const LATE_LABEL_DELAY: (TimeDelta, TimeDelta) = (TimeDelta::hours(1), TimeDelta::hours(3));
/// The share of an inline-labeled model's successful predictions sent with `actual`.
const INLINE_LABELED: f64 = 0.8;

impl ModelKind {
    /// The default rules the degraded model's incident must fire: its failures and its
    /// slowness, and — with a registered test-set baseline to fall below — a
    /// classifier's accuracy drop.
    pub fn incident_rules(self, with_baselines: bool) -> &'static [&'static str] {
        match self {
            Self::Binary | Self::LateBinary | Self::Multiclass if with_baselines => &[
                "default-error_rate",
                "default-latency_p95-max",
                "default-accuracy",
            ],
            _ => &["default-error_rate", "default-latency_p95-max"],
        }
    }

    /// The batch `task`.
    pub fn task(self) -> &'static str {
        match self {
            Self::Binary | Self::LateBinary => "binary_classification",
            Self::Multiclass => "multiclass_classification",
            Self::Regression => "regression",
        }
    }

    /// Parses `binary`, `multiclass`, `regression` or `binary-late`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "binary" => Some(Self::Binary),
            "binary-late" => Some(Self::LateBinary),
            "multiclass" => Some(Self::Multiclass),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }

    /// Median latency when healthy, ms.
    fn median_latency_ms(self) -> f64 {
        match self {
            Self::Binary | Self::LateBinary => 18.0,
            Self::Multiclass => 25.0,
            Self::Regression => 12.0,
        }
    }

    /// The test-set baseline registered for the model: quality metrics by name.
    pub fn test_set_metrics(self) -> Value {
        match self {
            Self::Binary | Self::LateBinary => {
                json!({"accuracy": 0.92, "f1_score": 0.92, "auc_roc": 0.92})
            }
            Self::Multiclass => json!({"accuracy": 0.86, "f1_score": 0.86}),
            Self::Regression => json!({"rmse": 4.2, "mae": 3.3}),
        }
    }

    /// Probability of a correct answer when healthy (classifiers), or the residual
    /// standard deviation (regressor).
    fn healthy_quality(self) -> f64 {
        match self {
            Self::Binary | Self::LateBinary => 0.93,
            Self::Multiclass => 0.88,
            Self::Regression => 4.0,
        }
    }

    /// The range a label's delay is drawn from, for a model whose labels come late;
    /// `None` when labels go with their predictions.
    pub fn label_delay(self) -> Option<(TimeDelta, TimeDelta)> {
        match self {
            Self::LateBinary => Some(LATE_LABEL_DELAY),
            Self::Binary | Self::Multiclass | Self::Regression => None,
        }
    }
}

/// One simulated model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: ModelKind,
}

/// The incident's length.
pub const INCIDENT: TimeDelta = TimeDelta::minutes(20);
/// How long before the end the incident ends.
pub const RECOVERY: TimeDelta = TimeDelta::minutes(100);
/// The shortest scenario with an incident and its recovery.
pub const MIN_DURATION: TimeDelta = TimeDelta::minutes(180);
/// Every this many predictions of a healthy model is a (deterministic) error: 0.2 %,
/// at most one in any 5 minutes at 30 a minute, below the 1 % ceiling.
const HEALTHY_ERROR_EVERY: u64 = 500;

/// A whole scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The first simulated minute.
    pub start: DateTime<Utc>,
    /// How long it runs (≥ [`MIN_DURATION`] when a model degrades).
    pub duration: TimeDelta,
    /// Predictions per model per minute.
    pub per_minute: u32,
    /// The models.
    pub models: Vec<ModelSpec>,
    /// The model that drifts and has the incident, if any.
    pub degraded: Option<String>,
    /// The random seed.
    pub seed: u64,
}

/// A prediction batch and the late labels of its predictions, to be sent when they
/// arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The request body.
    pub body: Value,
    /// The labels of a late-label model's predictions (empty for the others).
    pub late_labels: Vec<LateLabel>,
}

/// How a model behaves in one minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    /// Probability of a correct answer (classifiers), residual σ (regressor).
    pub quality: f64,
    /// Latency multiplier.
    pub latency_factor: f64,
    /// Probability of a failed request (the healthy 0.2 % is deterministic instead).
    pub error_rate: f64,
    /// Whether this minute is inside the incident.
    pub incident: bool,
}

impl Scenario {
    /// The end of the scenario.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.duration
    }

    /// The incident's span `[start, end)`.
    pub fn incident(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = self.end() - RECOVERY;
        (end - INCIDENT, end)
    }

    /// How `model` behaves in the minute starting at `minute`.
    pub fn health(&self, model: &ModelSpec, minute: DateTime<Utc>) -> Health {
        let healthy = Health {
            quality: model.kind.healthy_quality(),
            latency_factor: 1.0,
            error_rate: 0.0,
            incident: false,
        };
        if self.degraded.as_deref() != Some(model.id.as_str()) {
            return healthy;
        }
        let (incident_start, incident_end) = self.incident();
        if minute >= incident_start && minute < incident_end {
            let quality = match model.kind {
                ModelKind::Regression => 12.0,
                _ => 0.6,
            };
            return Health {
                quality,
                latency_factor: 6.0,
                error_rate: 0.12,
                incident: true,
            };
        }
        // Slow drift until the incident: 1.5 points of accuracy (or +0.2 of σ), short
        // of every default threshold.
        let progress = ((minute - self.start).num_seconds() as f64
            / (incident_start - self.start).num_seconds().max(1) as f64)
            .clamp(0.0, 1.0);
        let drifted = match model.kind {
            ModelKind::Regression => healthy.quality + 0.2 * progress,
            _ => healthy.quality - 0.015 * progress,
        };
        Health {
            quality: if minute < incident_start {
                drifted
            } else {
                healthy.quality
            },
            ..healthy
        }
    }

    /// The batch of `model` for the minutes `[from, to)`, recording every prediction in
    /// `truth`. `rng` and `counter` carry the model's random state and prediction count.
    ///
    /// Prediction ids are `<model>-<first minute, Unix seconds>-<count>`: late labels
    /// join by id, so they must not repeat in another run for the same tenant. A
    /// late-label model's successful predictions all get a label, each arriving after
    /// a delay drawn from [`ModelKind::label_delay`] with `rng`.
    pub fn batch(
        &self,
        model: &ModelSpec,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rng: &mut Rng,
        counter: &mut u64,
        truth: &mut GroundTruth,
    ) -> Batch {
        let mut predictions = Vec::new();
        let mut late_labels = Vec::new();
        let mut resources = Vec::new();
        let mut minute = from;
        while minute < to {
            let health = self.health(model, minute);
            for i in 0..self.per_minute {
                let offset_ms = i64::from(i) * 60_000 / i64::from(self.per_minute);
                let at =
                    minute + TimeDelta::milliseconds(offset_ms + (rng.uniform() * 900.0) as i64);
                *counter += 1;
                let failed = if health.error_rate > 0.0 {
                    rng.chance(health.error_rate)
                } else {
                    *counter % HEALTHY_ERROR_EVERY == 7
                };
                let latency = (model.kind.median_latency_ms()
                    * health.latency_factor
                    * (0.35 * rng.normal()).exp()
                    * 1000.0)
                    .round()
                    / 1000.0;
                let prediction_id = format!("{}-{}-{}", model.id, self.start.timestamp(), counter);
                let mut record = json!({
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "latency_ms": latency,
                });
                // Only predictions whose labels follow later carry an id: an id on a
                // prediction that will never be labeled costs a label-store write.
                if model.kind.label_delay().is_some() {
                    record["prediction_id"] = prediction_id.clone().into();
                }
                let mut truth_record = TruthRecord {
                    time: at,
                    latency_ms: latency,
                    failed,
                    correct: None,
                    squared_error: None,
                    label_at: None,
                };
                if failed {
                    record["status"] = "error".into();
                    record["error_type"] = if rng.chance(0.7) { "timeout" } else { "oom" }.into();
                } else {
                    record["status"] = "ok".into();
                    let delay_range = model.kind.label_delay();
                    let labeled_inline = delay_range.is_none() && rng.chance(INLINE_LABELED);
                    let label = outcome(model.kind, health.quality, rng, &mut record);
                    if labeled_inline || delay_range.is_some() {
                        truth_record.correct = label.correct;
                        truth_record.squared_error = label.squared_error;
                    }
                    if labeled_inline {
                        record["actual"] = label.actual;
                    } else if let Some(range) = delay_range {
                        let arrives_at = at + draw_delay(range, rng);
                        truth_record.label_at = Some(arrives_at);
                        late_labels.push(LateLabel {
                            prediction_id,
                            actual: label.actual,
                            arrives_at,
                        });
                    }
                }
                truth.record(&model.id, truth_record);
                predictions.push(record);
            }
            let busy = if health.incident { 1.0 } else { 0.0 };
            let mut sample = json!({
                "timestamp": (minute + TimeDelta::seconds(59)).to_rfc3339_opts(SecondsFormat::Secs, true),
                "cpu_utilization": round3((0.42 + 0.05 * rng.normal()).clamp(0.05, 0.9) * (1.0 - busy) + 0.96 * busy),
                "memory_utilization": round3((0.61 + 0.02 * rng.normal()).clamp(0.1, 0.95)),
                "queue_depth": (2.0 + 1.5 * rng.uniform()).floor() + 40.0 * busy,
                "cache_hits": 95 + (rng.uniform() * 10.0) as u64,
                "cache_misses": 3 + (rng.uniform() * 4.0) as u64 + 30 * busy as u64,
            });
            if matches!(model.kind, ModelKind::Binary | ModelKind::LateBinary) {
                sample["gpu_utilization"] =
                    round3((0.3 + 0.05 * rng.normal()).clamp(0.0, 1.0)).into();
            }
            resources.push(sample);
            minute += TimeDelta::minutes(1);
        }
        let body = json!({
            "model_id": model.id,
            "batch_id": format!("{}-{}", model.id, from.timestamp()),
            "model_version": "v1",
            "task": model.kind.task(),
            "predictions": predictions,
            "resources": resources,
        });
        Batch { body, late_labels }
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A delay uniform in `[shortest, longest]`, to the millisecond.
fn draw_delay((shortest, longest): (TimeDelta, TimeDelta), rng: &mut Rng) -> TimeDelta {
    let spread_ms = (longest - shortest).num_milliseconds() as f64;
    shortest + TimeDelta::milliseconds((rng.uniform() * spread_ms).round() as i64)
}

/// The truth of one successful request: its `actual` and how the prediction compares.
struct Outcome {
    /// The `actual`, as the task takes it.
    actual: Value,
    /// Classifiers: whether the prediction was right.
    correct: Option<bool>,
    /// Regressor: the squared error.
    squared_error: Option<f64>,
}

/// Fills the prediction (and score) of one successful request into `record` and
/// returns its truth.
fn outcome(kind: ModelKind, quality: f64, rng: &mut Rng, record: &mut Value) -> Outcome {
    match kind {
        ModelKind::Binary | ModelKind::LateBinary => {
            let actual = rng.chance(0.4);
            let correct = rng.chance(quality);
            let predicted = if correct { actual } else { !actual };
            let score = (if predicted { 0.72 } else { 0.28 } + 0.15 * rng.normal()).clamp(0.0, 1.0);
            record["predicted"] = u8::from(predicted).into();
            record["score"] = round3(score).into();
            Outcome {
                actual: u8::from(actual).into(),
                correct: Some(correct),
                squared_error: None,
            }
        }
        ModelKind::Multiclass => {
            const LABELS: [&str; 5] = ["billing", "support", "sales", "cancel", "other"];
            let actual = LABELS[(rng.uniform() * 5.0) as usize % 5];
            let correct = rng.chance(quality);
            let predicted = if correct {
                actual
            } else {
                let shift = 1 + (rng.uniform() * 4.0) as usize % 4;
                let index = LABELS.iter().position(|l| *l == actual).unwrap_or(0);
                LABELS[(index + shift) % 5]
            };
            record["predicted"] = predicted.into();
            Outcome {
                actual: actual.into(),
                correct: Some(correct),
                squared_error: None,
            }
        }
        ModelKind::Regression => {
            let actual = round3(30.0 + 10.0 * rng.normal());
            let predicted = round3(actual + quality * rng.normal());
            record["predicted"] = predicted.into();
            Outcome {
                actual: actual.into(),
                correct: None,
                squared_error: Some((predicted - actual).powi(2)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn scenario(models: Vec<ModelSpec>) -> Scenario {
        Scenario {
            start: DateTime::from_timestamp(1_764_500_040, 0).expect("in range"),
            duration: TimeDelta::hours(3),
            per_minute: 30,
            models,
            degraded: None,
            seed: 7,
        }
    }

    fn spec(id: &str, kind: ModelKind) -> ModelSpec {
        ModelSpec {
            id: id.to_owned(),
            kind,
        }
    }

    /// Ten minutes of `model`'s traffic from a fresh random state.
    fn ten_minutes(scenario: &Scenario, model: &ModelSpec) -> (Batch, GroundTruth) {
        let mut truth = GroundTruth::default();
        let batch = scenario.batch(
            model,
            scenario.start,
            scenario.start + TimeDelta::minutes(10),
            &mut Rng::new(scenario.seed),
            &mut 0,
            &mut truth,
        );
        (batch, truth)
    }

    #[test]
    fn a_late_label_model_sends_no_actual_and_holds_one_label_per_successful_prediction() {
        let model = spec("chargeback-scorer", ModelKind::LateBinary);
        let scenario = scenario(vec![model.clone()]);
        let (batch, truth) = ten_minutes(&scenario, &model);
        let predictions = batch.body["predictions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(predictions.len(), 300);
        assert_eq!(batch.body["task"], "binary_classification");
        let ok: Vec<&Value> = predictions.iter().filter(|p| p["status"] == "ok").collect();
        assert!(
            ok.iter()
                .all(|p| p.get("actual").is_none() && p.get("predicted").is_some())
        );
        assert_eq!(batch.late_labels.len(), ok.len());
        let times: std::collections::HashMap<&str, DateTime<Utc>> = predictions
            .iter()
            .filter_map(|p| {
                let time = DateTime::parse_from_rfc3339(p["timestamp"].as_str()?).ok()?;
                Some((p["prediction_id"].as_str()?, time.with_timezone(&Utc)))
            })
            .collect();
        assert_eq!(times.len(), 300, "unique prediction ids");
        let ids: HashSet<&str> = batch
            .late_labels
            .iter()
            .map(|l| l.prediction_id.as_str())
            .collect();
        assert_eq!(ids.len(), batch.late_labels.len());
        for label in &batch.late_labels {
            let delay = label.arrives_at - times[label.prediction_id.as_str()];
            assert!(
                delay >= LATE_LABEL_DELAY.0 && delay <= LATE_LABEL_DELAY.1,
                "{delay}"
            );
            assert!(label.actual == 0 || label.actual == 1);
        }
        // The ground truth knows each label and when it arrives.
        let end = scenario.start + TimeDelta::minutes(10);
        let before = truth.metrics_as_of(&model.id, scenario.start, end, scenario.start);
        assert_eq!((before.predictions, before.labeled), (300, 0));
        let all = truth.metrics(&model.id, scenario.start, end);
        assert_eq!(all.labeled, ok.len() as u64);
        let last = batch
            .late_labels
            .iter()
            .map(|l| l.arrives_at)
            .max()
            .unwrap_or(end);
        assert_eq!(
            truth.metrics_as_of(&model.id, scenario.start, end, last),
            all
        );
        // Deterministic from the seed.
        assert_eq!(ten_minutes(&scenario, &model).0, batch);
    }

    #[test]
    fn an_inline_model_still_sends_its_labels_with_its_predictions() {
        let model = spec("fraud-detector", ModelKind::Binary);
        let scenario = scenario(vec![model.clone()]);
        let (batch, truth) = ten_minutes(&scenario, &model);
        assert!(batch.late_labels.is_empty());
        let labeled = batch.body["predictions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.get("actual").is_some())
            .count();
        let end = scenario.start + TimeDelta::minutes(10);
        let m = truth.metrics_as_of(&model.id, scenario.start, end, scenario.start);
        assert!(labeled > 200 && labeled < 300, "{labeled}");
        assert_eq!(m.labeled, labeled as u64);
        assert_eq!(m.label_delay_p95_s, None);
    }
}

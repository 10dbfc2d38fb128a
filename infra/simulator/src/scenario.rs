//! What the simulated serving systems do: which models, how healthy each is at each
//! minute, and the prediction batches that follow (with their ground truth).
//!
//! The degraded model drifts slowly from the start (accuracy down 1.5 points until the
//! incident), then has a 20-minute incident ending 100 minutes before the end — accuracy
//! 0.6, latency × 6, 12 % errors, CPU and queue saturated — and recovers. With
//! evaluations every few minutes its three default rules (accuracy, p95 latency ceiling,
//! error rate) fire once during the incident and resolve once afterwards; the healthy
//! models stay inside every default threshold.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

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
}

impl ModelKind {
    /// The batch `task`.
    pub fn task(self) -> &'static str {
        match self {
            Self::Binary => "binary_classification",
            Self::Multiclass => "multiclass_classification",
            Self::Regression => "regression",
        }
    }

    /// Parses `binary`, `multiclass` or `regression`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "binary" => Some(Self::Binary),
            "multiclass" => Some(Self::Multiclass),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }

    /// Median latency when healthy, ms.
    fn median_latency_ms(self) -> f64 {
        match self {
            Self::Binary => 18.0,
            Self::Multiclass => 25.0,
            Self::Regression => 12.0,
        }
    }

    /// The test-set baseline registered for the model: quality metrics by name.
    pub fn test_set_metrics(self) -> Value {
        match self {
            Self::Binary => json!({"accuracy": 0.92, "f1_score": 0.92, "auc_roc": 0.92}),
            Self::Multiclass => json!({"accuracy": 0.86, "f1_score": 0.86}),
            Self::Regression => json!({"rmse": 4.2, "mae": 3.3}),
        }
    }

    /// Probability of a correct answer when healthy (classifiers), or the residual
    /// standard deviation (regressor).
    fn healthy_quality(self) -> f64 {
        match self {
            Self::Binary => 0.93,
            Self::Multiclass => 0.88,
            Self::Regression => 4.0,
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
    pub fn batch(
        &self,
        model: &ModelSpec,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rng: &mut Rng,
        counter: &mut u64,
        truth: &mut GroundTruth,
    ) -> Value {
        let mut predictions = Vec::new();
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
                let mut record = json!({
                    "prediction_id": format!("{}-{}", model.id, counter),
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "latency_ms": latency,
                });
                let mut truth_record = TruthRecord {
                    time: at,
                    latency_ms: latency,
                    failed,
                    correct: None,
                    squared_error: None,
                };
                if failed {
                    record["status"] = "error".into();
                    record["error_type"] = if rng.chance(0.7) { "timeout" } else { "oom" }.into();
                } else {
                    record["status"] = "ok".into();
                    let labeled = rng.chance(0.8);
                    outcome(
                        model.kind,
                        health.quality,
                        labeled,
                        rng,
                        &mut record,
                        &mut truth_record,
                    );
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
            if model.kind == ModelKind::Binary {
                sample["gpu_utilization"] =
                    round3((0.3 + 0.05 * rng.normal()).clamp(0.0, 1.0)).into();
            }
            resources.push(sample);
            minute += TimeDelta::minutes(1);
        }
        json!({
            "model_id": model.id,
            "batch_id": format!("{}-{}", model.id, from.timestamp()),
            "model_version": "v1",
            "task": model.kind.task(),
            "predictions": predictions,
            "resources": resources,
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Fills the prediction (and, when `labeled`, the actual) of one successful request.
fn outcome(
    kind: ModelKind,
    quality: f64,
    labeled: bool,
    rng: &mut Rng,
    record: &mut Value,
    truth: &mut TruthRecord,
) {
    match kind {
        ModelKind::Binary => {
            let actual = rng.chance(0.4);
            let correct = rng.chance(quality);
            let predicted = if correct { actual } else { !actual };
            let score = (if predicted { 0.72 } else { 0.28 } + 0.15 * rng.normal()).clamp(0.0, 1.0);
            record["predicted"] = u8::from(predicted).into();
            record["score"] = round3(score).into();
            if labeled {
                record["actual"] = u8::from(actual).into();
                truth.correct = Some(correct);
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
            if labeled {
                record["actual"] = actual.into();
                truth.correct = Some(correct);
            }
        }
        ModelKind::Regression => {
            let actual = round3(30.0 + 10.0 * rng.normal());
            let predicted = round3(actual + quality * rng.normal());
            record["predicted"] = predicted.into();
            if labeled {
                record["actual"] = actual.into();
                truth.squared_error = Some((predicted - actual).powi(2));
            }
        }
    }
}

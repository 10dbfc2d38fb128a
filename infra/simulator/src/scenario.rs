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
//!
//! A [`ModelKind::SilentBinary`] model sends labels for its first hour only — the
//! reference window its estimates are calibrated on — and none after. Its scores are
//! calibrated (`actual ~ Bernoulli(score)`), and in the last [`SILENT_SHIFT`] its
//! inputs shift to harder cases: the scores crowd towards 0.5, the realized accuracy
//! falls from ≈ 0.84 to ≈ 0.68 with no label to show it. The estimate without labels
//! follows, and the prediction-drift and estimated-accuracy rules fire (and stay
//! firing to the end).

//!
//! The canary model (by default the degraded one) rolls out [`CANARY_VERSION`] in the
//! last [`CANARY_SPAN`]: every tenth of its predictions goes out as that version, in a
//! batch of its own, and is right [`CANARY_PENALTY`] less often than the stable
//! [`STABLE_VERSION`]; the blended model stays inside its thresholds, the canary's own
//! rule ([`canary_rule`]) fires and the compare route finds it worse.

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
    /// Binary classifier labeled during its first [`REFERENCE_SPAN`] only, silently
    /// degrading in the last [`SILENT_SHIFT`].
    SilentBinary,
}

/// The labeled first stretch of a [`ModelKind::SilentBinary`] model: its reference
/// window.
pub const REFERENCE_SPAN: TimeDelta = TimeDelta::hours(1);
/// How long before the end a [`ModelKind::SilentBinary`] model's inputs shift.
pub const SILENT_SHIFT: TimeDelta = TimeDelta::minutes(60);
/// The rules a [`ModelKind::SilentBinary`] model's shift fires (with registered
/// baselines: the reference window and the accuracy to fall below).
pub const SILENT_SHIFT_RULES: [&str; 2] = ["default-estimated_accuracy", "default-prediction_psi"];

/// The version the canary model's batches name, but the canary's.
pub const STABLE_VERSION: &str = "v1";
/// The canary's version.
pub const CANARY_VERSION: &str = "v2";
/// How long before the end the canary takes its share of the traffic.
pub const CANARY_SPAN: TimeDelta = TimeDelta::minutes(60);
/// One in this many of the canary model's predictions is the canary's (10 %).
const CANARY_EVERY: u64 = 10;
/// How much less often the canary is right than the stable version.
pub const CANARY_PENALTY: f64 = 0.2;
/// The id of the canary's own alert rule.
pub const CANARY_RULE: &str = "canary-accuracy";

/// The canary model's custom rule set: its canary's accuracy over 30 minutes, beside
/// the default rules.
pub fn canary_rule() -> Value {
    json!({"use_default_rules": true, "alert_rules": [
        {"id": CANARY_RULE, "metric": "accuracy", "condition": "below", "threshold": 0.85,
         "window": "30m", "severity": "critical", "min_samples": 30,
         "slice": format!("version:{CANARY_VERSION}")}]})
}

/// The key the ground truth keeps a model's canary records under (beside the model's).
pub fn canary_key(model: &str) -> String {
    format!("{model}~version:{CANARY_VERSION}")
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
            Self::Binary | Self::LateBinary | Self::SilentBinary | Self::Multiclass
                if with_baselines =>
            {
                &[
                    "default-error_rate",
                    "default-latency_p95-max",
                    "default-accuracy",
                ]
            }
            _ => &["default-error_rate", "default-latency_p95-max"],
        }
    }

    /// The batch `task`.
    pub fn task(self) -> &'static str {
        match self {
            Self::Binary | Self::LateBinary | Self::SilentBinary => "binary_classification",
            Self::Multiclass => "multiclass_classification",
            Self::Regression => "regression",
        }
    }

    /// Parses `binary`, `multiclass`, `regression`, `binary-late` or
    /// `binary-unlabeled`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "binary" => Some(Self::Binary),
            "binary-late" => Some(Self::LateBinary),
            "binary-unlabeled" => Some(Self::SilentBinary),
            "multiclass" => Some(Self::Multiclass),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }

    /// Median latency when healthy, ms.
    fn median_latency_ms(self) -> f64 {
        match self {
            Self::Binary | Self::LateBinary | Self::SilentBinary => 18.0,
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
            // Below its healthy ≈ 0.84 by more than the sampling error of the last
            // labeled minutes, so the accuracy rule stays quiet on them.
            Self::SilentBinary => json!({"accuracy": 0.80}),
            Self::Multiclass => json!({"accuracy": 0.86, "f1_score": 0.86}),
            Self::Regression => json!({"rmse": 4.2, "mae": 3.3}),
        }
    }

    /// Probability of a correct answer when healthy (classifiers), the residual
    /// standard deviation (regressor), or how far the scores spread from 0.5 (the
    /// silent model: `score = σ(spread · z)`, `z ~ N(0, 1)`).
    fn healthy_quality(self) -> f64 {
        match self {
            Self::Binary | Self::LateBinary => 0.93,
            Self::SilentBinary => 3.0,
            Self::Multiclass => 0.88,
            Self::Regression => 4.0,
        }
    }

    /// Whether the model's first [`REFERENCE_SPAN`] is registered as its reference
    /// window: the silent model's estimates and drift, and the multiclass model's label
    /// and confidence drift, compare against it.
    pub fn has_reference_window(self) -> bool {
        matches!(self, Self::SilentBinary | Self::Multiclass)
    }

    /// The range a label's delay is drawn from, for a model whose labels come late;
    /// `None` when labels go with their predictions.
    pub fn label_delay(self) -> Option<(TimeDelta, TimeDelta)> {
        match self {
            Self::LateBinary => Some(LATE_LABEL_DELAY),
            Self::Binary | Self::SilentBinary | Self::Multiclass | Self::Regression => None,
        }
    }
}

/// The score spread of a [`ModelKind::SilentBinary`] model once its inputs shifted.
const SHIFTED_SPREAD: f64 = 1.0;

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
    /// The model that rolls out a worse canary in the last [`CANARY_SPAN`], if any.
    pub canary: Option<String>,
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
    /// The canary's batch of the same minutes, when it had predictions in them.
    pub canary: Option<Value>,
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

    /// When the canary starts taking its share.
    pub fn canary_start(&self) -> DateTime<Utc> {
        self.end() - CANARY_SPAN
    }

    /// When a [`ModelKind::SilentBinary`] model's inputs shift.
    pub fn silent_shift(&self) -> DateTime<Utc> {
        self.end() - SILENT_SHIFT
    }

    /// How `model` behaves in the minute starting at `minute`.
    pub fn health(&self, model: &ModelSpec, minute: DateTime<Utc>) -> Health {
        let healthy = Health {
            quality: model.kind.healthy_quality(),
            latency_factor: 1.0,
            error_rate: 0.0,
            incident: false,
        };
        if model.kind == ModelKind::SilentBinary && minute >= self.silent_shift() {
            return Health {
                quality: SHIFTED_SPREAD,
                ..healthy
            };
        }
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
        let mut canary_predictions = Vec::new();
        let mut late_labels = Vec::new();
        let is_canary_model = self.canary.as_deref() == Some(model.id.as_str());
        let mut resources = Vec::new();
        let mut minute = from;
        while minute < to {
            let health = self.health(model, minute);
            for i in 0..self.per_minute {
                let offset_ms = i64::from(i) * 60_000 / i64::from(self.per_minute);
                let at =
                    minute + TimeDelta::milliseconds(offset_ms + (rng.uniform() * 900.0) as i64);
                *counter += 1;
                let in_canary = is_canary_model
                    && at >= self.canary_start()
                    && counter.is_multiple_of(CANARY_EVERY);
                let quality = if in_canary {
                    health.quality - CANARY_PENALTY
                } else {
                    health.quality
                };
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
                    withheld: false,
                };
                if failed {
                    record["status"] = "error".into();
                    record["error_type"] = if rng.chance(0.7) { "timeout" } else { "oom" }.into();
                } else {
                    record["status"] = "ok".into();
                    let delay_range = model.kind.label_delay();
                    let labeled_inline = delay_range.is_none() && rng.chance(INLINE_LABELED);
                    let label = outcome(model.kind, quality, rng, &mut record);
                    // The silent model's labels exist (the truth keeps them) but go
                    // out for its reference window only.
                    let withheld =
                        model.kind == ModelKind::SilentBinary && at >= self.start + REFERENCE_SPAN;
                    let labeled_inline = labeled_inline && !withheld;
                    if labeled_inline || delay_range.is_some() || withheld {
                        truth_record.correct = label.correct;
                        truth_record.squared_error = label.squared_error;
                        truth_record.withheld = withheld;
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
                if in_canary {
                    truth.record(&canary_key(&model.id), truth_record.clone());
                    canary_predictions.push(record);
                } else {
                    predictions.push(record);
                }
                truth.record(&model.id, truth_record);
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
            if matches!(
                model.kind,
                ModelKind::Binary | ModelKind::LateBinary | ModelKind::SilentBinary
            ) {
                sample["gpu_utilization"] =
                    round3((0.3 + 0.05 * rng.normal()).clamp(0.0, 1.0)).into();
            }
            resources.push(sample);
            minute += TimeDelta::minutes(1);
        }
        let mut body = json!({
            "model_id": model.id,
            "batch_id": format!("{}-{}", model.id, from.timestamp()),
            "task": model.kind.task(),
            "predictions": predictions,
            "resources": resources,
        });
        // Only the canary model names its versions (a version's series doubles the
        // writes of its batches; the other models show the product without versions).
        if is_canary_model {
            body["model_version"] = STABLE_VERSION.into();
        }
        let canary = (!canary_predictions.is_empty()).then(|| {
            json!({
                "model_id": model.id,
                "batch_id": format!("{}-{}-{CANARY_VERSION}", model.id, from.timestamp()),
                "model_version": CANARY_VERSION,
                "task": model.kind.task(),
                "predictions": canary_predictions,
            })
        });
        Batch {
            body,
            late_labels,
            canary,
        }
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
        ModelKind::SilentBinary => {
            // Calibrated: the score is the probability of the positive class.
            let score = round3(1.0 / (1.0 + (-quality * rng.normal()).exp()));
            let actual = rng.chance(score);
            let predicted = score >= 0.5;
            record["predicted"] = u8::from(predicted).into();
            record["score"] = score.into();
            Outcome {
                actual: u8::from(actual).into(),
                correct: Some(predicted == actual),
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
            // The predicted label's probability: lower when the model is wrong, so a
            // degradation shows in its confidence before any label arrives.
            let score = (if correct { 0.8 } else { 0.5 } + 0.1 * rng.normal()).clamp(0.2, 1.0);
            record["predicted"] = predicted.into();
            record["score"] = round3(score).into();
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
            canary: None,
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
    fn the_canary_takes_a_tenth_of_its_models_last_hour_and_is_less_accurate() {
        let model = spec("fraud-detector", ModelKind::Binary);
        let scenario = Scenario {
            canary: Some(model.id.clone()),
            ..scenario(vec![model.clone()])
        };
        let (mut rng, mut counter, mut truth) = (Rng::new(3), 0, GroundTruth::default());
        let early = scenario.batch(
            &model,
            scenario.start,
            scenario.canary_start(),
            &mut rng,
            &mut counter,
            &mut truth,
        );
        assert_eq!(early.canary, None, "no canary before its span");
        let late = scenario.batch(
            &model,
            scenario.canary_start(),
            scenario.end(),
            &mut rng,
            &mut counter,
            &mut truth,
        );
        let canary = late.canary.expect("the canary's batch");
        assert_eq!(canary["model_version"], CANARY_VERSION);
        assert_eq!(late.body["model_version"], STABLE_VERSION);
        let count = |body: &Value| body["predictions"].as_array().map_or(0, Vec::len);
        assert_eq!(count(&canary), 180, "a tenth of 60 minutes at 30 a minute");
        assert_eq!(count(&late.body), 1_620);
        let (from, to) = (scenario.canary_start(), scenario.end());
        let v2 = truth.metrics(&canary_key(&model.id), from, to);
        let all = truth.metrics(&model.id, from, to);
        assert_eq!(v2.predictions, 180);
        assert_eq!(all.predictions, 1_800, "the model counts both versions");
        let (v2, all) = (
            v2.accuracy.expect("labeled"),
            all.accuracy.expect("labeled"),
        );
        assert!(v2 < 0.8 && all > 0.88, "canary {v2}, model {all}");
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

    /// The silent model, folded by the product's own engine: labels only in the first
    /// hour, and over the shifted last hour the estimate calibrated on the first holds
    /// the realized accuracy that no label told, well below the reference's.
    #[test]
    fn a_silent_model_degrades_without_labels_and_its_estimate_follows() {
        use modelwatch::domain::Task;
        use modelwatch::domain::estimation::ReferenceFit;
        use modelwatch::ingest::{BatchLimits, parse_batch};

        let model = spec("lead-scorer", ModelKind::SilentBinary);
        let mut scenario = scenario(vec![model.clone()]);
        scenario.start = DateTime::from_timestamp(chrono::Utc::now().timestamp() / 60 * 60, 0)
            .expect("now")
            - scenario.duration;
        let (mut rng, mut counter, mut truth) = (Rng::new(3), 0, GroundTruth::default());
        let mut reference = modelwatch::domain::WindowState::new();
        let mut shifted = modelwatch::domain::WindowState::new();
        let mut t = scenario.start;
        while t < scenario.end() {
            let to = t + TimeDelta::minutes(10);
            let batch = scenario.batch(&model, t, to, &mut rng, &mut counter, &mut truth);
            let body = serde_json::to_vec(&batch.body).expect("serializes");
            let valid = parse_batch(&body, chrono::Utc::now(), &BatchLimits::default())
                .expect("the product takes the batch");
            for prediction in valid.predictions {
                let at = prediction.record.timestamp;
                let labeled = matches!(
                    prediction.record.outcome,
                    modelwatch::domain::Outcome::Binary {
                        actual: Some(_),
                        ..
                    }
                );
                assert!(
                    !labeled || at < scenario.start + REFERENCE_SPAN,
                    "labels go out for the reference hour only"
                );
                if at < scenario.start + REFERENCE_SPAN {
                    reference
                        .fold_prediction(&prediction.record)
                        .expect("folds");
                } else if at >= scenario.silent_shift() {
                    shifted.fold_prediction(&prediction.record).expect("folds");
                }
            }
            t = to;
        }
        let end = scenario.end();
        let told = truth.metrics_as_of(&model.id, scenario.silent_shift(), end, end);
        assert_eq!(told.labeled, 0, "no label after the reference hour");
        let realized = truth
            .metrics(&model.id, scenario.silent_shift(), end)
            .accuracy
            .expect("the truth knows");
        let before = truth
            .metrics(&model.id, scenario.start, scenario.start + REFERENCE_SPAN)
            .accuracy
            .expect("labeled");
        assert!(before - realized > 0.1, "{before} → {realized}");
        let fit = ReferenceFit::of(Task::BinaryClassification, Some(&reference));
        let comparison = fit.compare(&shifted);
        let estimate = comparison.estimate.expect("estimated").accuracy;
        assert!(
            estimate.low - 0.002 <= realized && realized <= estimate.high + 0.002,
            "{estimate:?} vs realized {realized}"
        );
        assert!(
            estimate.value < 0.76,
            "below the estimated-accuracy rule: {estimate:?}"
        );
        assert!(comparison.drift.expect("drift").psi > 0.2);
    }
}

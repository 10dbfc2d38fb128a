//! Baselines (the specification's "Baseline Comparison"): test-set quality metrics and
//! a throughput forecast registered through the API, and the latency p95 and error
//! rate captured from the first 24 hours of production traffic.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::quality_metrics;
use super::{Problems, request_object};
use crate::domain::{DecodeError, MetricName, MetricSet, Task, TimeSpan, WindowState};

/// How much production traffic the captured baseline covers, from the first prediction.
pub const CAPTURE_SPAN: TimeDelta = TimeDelta::hours(24);

/// The test-set evaluation at deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSetBaseline {
    /// When the model was evaluated (its deployment).
    pub evaluated_at: DateTime<Utc>,
    /// Quality metrics of the model's task, by name.
    pub metrics: BTreeMap<MetricName, f64>,
}

/// Longest reference window a user may register.
pub const MAX_REFERENCE_SPAN: TimeDelta = TimeDelta::days(31);

/// A window of production traffic that performance estimates and prediction drift
/// compare against (`[from, to)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceWindow {
    /// Start, inclusive.
    pub from: DateTime<Utc>,
    /// End, exclusive.
    pub to: DateTime<Utc>,
}

/// A model's reference window and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// Start, inclusive.
    pub from: DateTime<Utc>,
    /// End, exclusive.
    pub to: DateTime<Utc>,
    /// `registered` (through `PUT …/baseline`) or `captured` (the first 24 hours).
    pub source: ReferenceSource,
}

impl Reference {
    /// The window `[from, to)`.
    pub fn span(&self) -> TimeSpan {
        TimeSpan::new(self.from, self.to)
    }
}

/// How long after a reference window's end its snapshot is taken again, hourly, so
/// that labels arriving within that time are in the calibration.
pub const REFERENCE_SETTLE: TimeDelta = TimeDelta::hours(24);

/// How often a reference snapshot is refreshed while its window settles.
pub const REFERENCE_REFRESH: TimeDelta = TimeDelta::hours(1);

/// The merged state of a model's reference window, kept with its settings by
/// `evaluate`, so that neither an evaluation nor a summary reads the reference's
/// rollups each time. Kept in the state's binary form (≈ 8 KB for a 1 M-record binary
/// window; stored as JSON with the bytes in base64) and decoded where it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSnapshot {
    /// The window's start.
    pub from: DateTime<Utc>,
    /// The window's end.
    pub to: DateTime<Utc>,
    /// When the state was read.
    pub taken_at: DateTime<Utc>,
    /// [`WindowState::to_bytes`] of the window's state as of `taken_at`.
    #[serde(with = "bytes_base64")]
    state: Vec<u8>,
}

impl ReferenceSnapshot {
    /// The snapshot of `reference`'s window, whose merged state is `state`, at
    /// `taken_at`.
    pub fn new(reference: &Reference, state: &WindowState, taken_at: DateTime<Utc>) -> Self {
        Self {
            from: reference.from,
            to: reference.to,
            taken_at,
            state: state.to_bytes(),
        }
    }

    /// The window's state.
    ///
    /// # Errors
    /// [`DecodeError`] when the stored bytes are not a state.
    pub fn state(&self) -> Result<WindowState, DecodeError> {
        WindowState::from_bytes(&self.state)
    }

    /// Whether the snapshot is of `reference`'s window.
    pub fn covers(&self, reference: &Reference) -> bool {
        (self.from, self.to) == (reference.from, reference.to)
    }

    /// Whether `snapshot` must be (re)taken at `now` for `reference`: when there is
    /// none of its window yet and the window has ended, and then hourly until
    /// [`REFERENCE_SETTLE`] after its end (late labels of the reference still arrive).
    pub fn due(snapshot: Option<&Self>, reference: &Reference, now: DateTime<Utc>) -> bool {
        if now < reference.to {
            return false;
        }
        match snapshot.filter(|s| s.covers(reference)) {
            None => true,
            Some(s) => {
                s.taken_at < reference.to + REFERENCE_SETTLE
                    && now >= s.taken_at + REFERENCE_REFRESH
            }
        }
    }
}

/// Bytes as base64 text.
mod bytes_base64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where a model's reference window comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// Registered through `PUT …/baseline`.
    Registered,
    /// The captured first 24 hours of traffic.
    Captured,
}

/// What a user registered for a model (`PUT …/baseline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredBaseline {
    /// The test-set evaluation, if registered.
    pub test_set: Option<TestSetBaseline>,
    /// The expected traffic, predictions per second, if registered.
    pub throughput_forecast_rps: Option<f64>,
    /// The reference window for estimates and drift, if registered (else the captured
    /// 24 hours serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceWindow>,
    /// When this was registered.
    pub updated_at: DateTime<Utc>,
}

/// The serving baseline captured from the first 24 hours of production traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedBaseline {
    /// p95 latency over the span, ms (`None` if no prediction in it).
    pub latency_p95_ms: Option<f64>,
    /// Error rate over the span.
    pub error_rate: Option<f64>,
    /// Start of the span: the model's first prediction.
    pub from: DateTime<Utc>,
    /// End of the span: 24 hours later.
    pub to: DateTime<Utc>,
    /// Predictions in the span.
    pub sample_count: u64,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
}

impl CapturedBaseline {
    /// The baseline of the span `[from, from + 24 h)` whose metrics are `metrics`.
    pub fn from_metrics(metrics: &MetricSet, from: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            latency_p95_ms: metrics.latency_p95_ms,
            error_rate: metrics.error_rate,
            from,
            to: from + CAPTURE_SPAN,
            sample_count: metrics.predictions,
            captured_at: now,
        }
    }
}

/// Every baseline of a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baselines {
    /// Registered through the API.
    pub registered: Option<RegisteredBaseline>,
    /// Captured from production traffic.
    pub captured: Option<CapturedBaseline>,
}

impl Baselines {
    /// The registered test-set value of a quality metric.
    pub fn registered_quality(&self, metric: MetricName) -> Option<f64> {
        self.registered
            .as_ref()?
            .test_set
            .as_ref()?
            .metrics
            .get(&metric)
            .copied()
    }

    /// The registered throughput forecast.
    pub fn throughput_forecast_rps(&self) -> Option<f64> {
        self.registered.as_ref()?.throughput_forecast_rps
    }

    /// The reference window of estimates and drift: the registered one, else the
    /// captured first 24 hours.
    pub fn reference(&self) -> Option<Reference> {
        let registered = self.registered.as_ref().and_then(|r| r.reference);
        match (registered, &self.captured) {
            (Some(ReferenceWindow { from, to }), _) => Some(Reference {
                from,
                to,
                source: ReferenceSource::Registered,
            }),
            (None, Some(captured)) => Some(Reference {
                from: captured.from,
                to: captured.to,
                source: ReferenceSource::Captured,
            }),
            (None, None) => None,
        }
    }

    /// The baseline a metric is compared against, if it has one: test set for quality
    /// metrics, the captured span for latency p95 and error rate, the forecast for
    /// throughput.
    pub fn baseline_of(&self, metric: MetricName) -> Option<f64> {
        match metric {
            MetricName::LatencyP95 => self.captured.as_ref()?.latency_p95_ms,
            MetricName::ErrorRate => self.captured.as_ref()?.error_rate,
            MetricName::Throughput => self.throughput_forecast_rps(),
            other => self.registered_quality(other),
        }
    }
}

/// Reads and validates a baseline sent to `PUT …/baseline`:
/// `{"test_set": {"evaluated_at", "metrics": {name: value}}, "throughput_forecast_rps",
/// "reference": {"from", "to"}}`, at least one of the three. Quality metrics must be the
/// task's; accuracy, F1 and AUC lie in [0, 1], the regression errors are ≥ 0; a
/// reference window is past, non-empty and at most [`MAX_REFERENCE_SPAN`] long.
pub fn parse_baseline(
    body: &Value,
    task: Task,
    now: DateTime<Utc>,
) -> Result<RegisteredBaseline, Problems> {
    let (object, mut problems) = request_object(
        body,
        &["test_set", "throughput_forecast_rps", "reference"],
        "a baseline",
    )?;
    let allowed = quality_metrics(task);
    let test_set = match object.get("test_set") {
        None | Some(Value::Null) => None,
        Some(Value::Object(test_set)) => {
            problems.unknown_fields(test_set, &["evaluated_at", "metrics"], "test_set", |key| {
                format!("test_set.{key}")
            });
            let evaluated_at = past_time(
                test_set.get("evaluated_at"),
                "test_set.evaluated_at",
                now,
                &mut problems,
            );
            let mut metrics = BTreeMap::new();
            match test_set.get("metrics") {
                Some(Value::Object(given)) if !given.is_empty() => {
                    for (name, value) in given {
                        let field = format!("test_set.metrics.{name}");
                        let Some(metric) = name
                            .parse::<MetricName>()
                            .ok()
                            .filter(|m| allowed.contains(m))
                        else {
                            let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                            problems.push(
                                &field,
                                &format!(
                                    "is not a quality metric of a {task} model ({})",
                                    names.join(", ")
                                ),
                            );
                            continue;
                        };
                        let fraction = matches!(
                            metric,
                            MetricName::Accuracy | MetricName::F1Score | MetricName::AucRoc
                        );
                        match value.as_f64().filter(|v| v.is_finite()) {
                            Some(v) if fraction && !(0.0..=1.0).contains(&v) => {
                                problems.push(&field, "must lie in [0, 1]");
                            }
                            Some(v) if v < 0.0 => problems.push(&field, "must not be negative"),
                            Some(v) => {
                                metrics.insert(metric, v);
                            }
                            None => problems.push(&field, "must be a finite number"),
                        }
                    }
                }
                Some(Value::Object(_)) => {
                    problems.push("test_set.metrics", "must name at least one metric");
                }
                None => problems.push("test_set.metrics", "is required"),
                Some(_) => problems.push("test_set.metrics", "must be an object of metric values"),
            }
            evaluated_at.map(|evaluated_at| TestSetBaseline {
                evaluated_at,
                metrics,
            })
        }
        Some(_) => {
            problems.push("test_set", "must be an object or null");
            None
        }
    };
    let throughput_forecast_rps = match object.get("throughput_forecast_rps") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_f64().filter(|v| v.is_finite() && *v > 0.0) {
            Some(v) => Some(v),
            None => {
                problems.push("throughput_forecast_rps", "must be a positive number");
                None
            }
        },
    };
    let reference = parse_reference(object.get("reference"), now, &mut problems);
    if problems.is_empty()
        && test_set.is_none()
        && throughput_forecast_rps.is_none()
        && reference.is_none()
    {
        problems.push(
            "",
            "must give at least one of test_set, throughput_forecast_rps and reference",
        );
    }
    if problems.is_empty() {
        Ok(RegisteredBaseline {
            test_set,
            throughput_forecast_rps,
            reference,
            updated_at: now,
        })
    } else {
        Err(problems)
    }
}

/// An RFC 3339 time at most five minutes after `now` (clock skew), or a problem with
/// `field`.
fn past_time(
    value: Option<&Value>,
    field: &str,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<DateTime<Utc>> {
    let reason = match value {
        Some(Value::String(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(time) if time.with_timezone(&Utc) <= now + TimeDelta::minutes(5) => {
                return Some(time.with_timezone(&Utc));
            }
            Ok(_) => "must not lie in the future",
            Err(_) => "must be an RFC 3339 time, e.g. 2026-11-01T12:00:00Z",
        },
        None => "is required",
        Some(_) => "must be an RFC 3339 time string",
    };
    problems.push(field, reason);
    None
}

/// The optional `reference` window of a baseline.
fn parse_reference(
    value: Option<&Value>,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<ReferenceWindow> {
    let reference = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(reference)) => reference,
        Some(_) => {
            problems.push("reference", "must be an object {\"from\", \"to\"} or null");
            return None;
        }
    };
    problems.unknown_fields(reference, &["from", "to"], "reference", |key| {
        format!("reference.{key}")
    });
    let from = past_time(reference.get("from"), "reference.from", now, problems);
    let to = past_time(reference.get("to"), "reference.to", now, problems);
    let (from, to) = (from?, to?);
    if to <= from {
        problems.push("reference.to", "must lie after reference.from");
    } else if to - from > MAX_REFERENCE_SPAN {
        problems.push("reference", "must span at most 31 days");
    } else {
        return Some(ReferenceWindow { from, to });
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_000_000, 0).expect("time")
    }

    #[test]
    fn a_test_set_baseline_and_forecast_parse() {
        let body = json!({"test_set": {"evaluated_at": "2025-11-20T10:00:00Z",
                          "metrics": {"accuracy": 0.912, "f1_score": 0.895, "auc_roc": 0.94}},
                          "throughput_forecast_rps": 145});
        let baseline = parse_baseline(&body, Task::BinaryClassification, now()).expect("valid");
        let baselines = Baselines {
            registered: Some(baseline),
            captured: None,
        };
        assert_eq!(baselines.baseline_of(MetricName::Accuracy), Some(0.912));
        assert_eq!(baselines.baseline_of(MetricName::Throughput), Some(145.0));
        assert_eq!(baselines.baseline_of(MetricName::LatencyP95), None);
        let only_forecast = json!({"throughput_forecast_rps": 2.5});
        assert!(parse_baseline(&only_forecast, Task::Regression, now()).is_ok());
    }

    #[test]
    fn a_registered_reference_window_wins_over_the_captured_one() {
        let body =
            json!({"reference": {"from": "2025-11-18T00:00:00Z", "to": "2025-11-19T00:00:00Z"}});
        let registered = parse_baseline(&body, Task::BinaryClassification, now()).expect("valid");
        let window = registered.reference.expect("a reference");
        assert_eq!(window.to - window.from, TimeDelta::days(1));
        let captured = CapturedBaseline::from_metrics(&MetricSet::default(), now(), now());
        let mut baselines = Baselines {
            registered: None,
            captured: Some(captured),
        };
        assert_eq!(
            baselines.reference(),
            Some(Reference {
                from: now(),
                to: now() + CAPTURE_SPAN,
                source: ReferenceSource::Captured
            })
        );
        baselines.registered = Some(registered);
        assert_eq!(
            baselines.reference(),
            Some(Reference {
                from: window.from,
                to: window.to,
                source: ReferenceSource::Registered
            })
        );
        // Stored baselines from before the field read without a reference.
        let stored = json!({"test_set": null, "throughput_forecast_rps": 3.0,
                            "updated_at": "2025-11-20T10:00:00Z"});
        let old: RegisteredBaseline = serde_json::from_value(stored).expect("reads");
        assert_eq!(old.reference, None);
    }

    #[test]
    fn every_problem_of_a_baseline_is_named() {
        let cases = [
            (json!({}), vec![""]),
            (json!([1]), vec![""]),
            (
                json!({"test_set": {"metrics": {"accuracy": 0.9}}}),
                vec!["test_set.evaluated_at"],
            ),
            (
                json!({"test_set": {"evaluated_at": "yesterday", "metrics": {"accuracy": 1.2, "rmse": 1.0, "f1_score": "x"}}}),
                vec![
                    "test_set.evaluated_at",
                    "test_set.metrics.accuracy",
                    "test_set.metrics.rmse",
                    "test_set.metrics.f1_score",
                ],
            ),
            (
                json!({"test_set": {"evaluated_at": "2099-01-01T00:00:00Z", "metrics": {}}, "extra": true}),
                vec!["extra", "test_set.evaluated_at", "test_set.metrics"],
            ),
            (
                json!({"throughput_forecast_rps": 0}),
                vec!["throughput_forecast_rps"],
            ),
            (
                json!({"throughput_forecast_rps": -3}),
                vec!["throughput_forecast_rps"],
            ),
            (json!({"reference": 3}), vec!["reference"]),
            (
                json!({"reference": {"from": "2025-11-20T00:00:00Z", "to": "2025-11-19T00:00:00Z"}}),
                vec!["reference.to"],
            ),
            (
                json!({"reference": {"from": "2025-09-01T00:00:00Z", "to": "2025-11-19T00:00:00Z"}}),
                vec!["reference"],
            ),
            (
                json!({"reference": {"to": "2099-01-01T00:00:00Z", "at": 1}}),
                vec!["reference.at", "reference.from", "reference.to"],
            ),
        ];
        for (body, expected) in cases {
            let problems =
                parse_baseline(&body, Task::BinaryClassification, now()).expect_err("invalid");
            let mut fields: Vec<&str> = problems
                .as_slice()
                .iter()
                .map(|p| p.field.as_str())
                .collect();
            fields.sort_unstable();
            let mut expected = expected;
            expected.sort_unstable();
            assert_eq!(fields, expected, "{body}");
        }
        let regression = json!({"test_set": {"evaluated_at": "2025-11-20T10:00:00Z", "metrics": {"mae": -1, "accuracy": 0.9}}});
        let problems = parse_baseline(&regression, Task::Regression, now()).expect_err("invalid");
        assert_eq!(problems.len(), 2);
        assert!(
            problems.as_slice()[0].reason.contains("regression")
                || problems.as_slice()[1].reason.contains("regression")
        );
    }
}

//! `GET` / `PUT …/performance/{model_id}/baseline`: the registered baseline (test-set
//! metrics, throughput forecast) and the serving baseline captured from the first 24
//! hours of traffic. A `PUT` (validated by `parse_baseline`) replaces the registered
//! part and answers like the `GET`.

use chrono::{DateTime, Utc};
use modelwatch::domain::alerting::baseline::{
    Baselines, CAPTURE_SPAN, CapturedBaseline, Reference, TestSetBaseline,
};
use modelwatch::domain::ids::ModelId;
use modelwatch::ports::RegisteredModel;
use serde::Serialize;

/// The answer of `GET` and `PUT`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineView {
    /// The model.
    pub model_id: ModelId,
    /// The registered test-set evaluation; `null` if none.
    pub test_set: Option<TestSetBaseline>,
    /// The registered traffic forecast, predictions per second; `null` if none.
    pub throughput_forecast_rps: Option<f64>,
    /// When the registered baseline was last replaced; `null` if never.
    pub updated_at: Option<DateTime<Utc>>,
    /// The serving baseline of the first 24 hours; `null` until captured.
    pub captured: Option<CapturedBaseline>,
    /// When the capture is due (first prediction + 24 h) while not captured; else `null`.
    pub capture_due_at: Option<DateTime<Utc>>,
    /// The window estimates and drift compare against; `null` while there is none.
    pub reference: Option<Reference>,
}

impl BaselineView {
    /// The view of `model`'s `baselines`.
    pub fn of(model: &RegisteredModel, baselines: Baselines) -> Self {
        let reference = baselines.reference();
        let (test_set, throughput_forecast_rps, updated_at) = match baselines.registered {
            Some(r) => (r.test_set, r.throughput_forecast_rps, Some(r.updated_at)),
            None => (None, None, None),
        };
        Self {
            model_id: model.model_id.clone(),
            test_set,
            throughput_forecast_rps,
            updated_at,
            capture_due_at: baselines
                .captured
                .is_none()
                .then(|| model.first_seen + CAPTURE_SPAN),
            captured: baselines.captured,
            reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::tests::{at, model};
    use modelwatch::domain::Task;
    use modelwatch::domain::alerting::baseline::parse_baseline;
    use serde_json::{Value, json};

    #[test]
    fn before_anything_is_known_the_capture_is_due_a_day_after_first_seen() {
        let m = model("m", Task::Regression);
        let json = serde_json::to_value(BaselineView::of(&m, Baselines::default())).expect("json");
        assert_eq!(
            json,
            json!({"model_id": "m", "test_set": null, "throughput_forecast_rps": null,
                "updated_at": null, "captured": null, "reference": null,
                "capture_due_at": (m.first_seen + CAPTURE_SPAN).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)})
        );
    }

    #[test]
    fn registered_and_captured_baselines_are_shown() {
        let m = model("m", Task::BinaryClassification);
        let body = json!({"test_set": {"evaluated_at": "2026-11-01T00:00:00Z",
            "metrics": {"accuracy": 0.9, "auc_roc": 0.95}}, "throughput_forecast_rps": 150});
        let now = at("2026-11-28T10:00:00Z");
        let registered = parse_baseline(&body, m.task, now).expect("valid");
        let captured = CapturedBaseline {
            latency_p95_ms: Some(22.5),
            error_rate: Some(0.001),
            from: at("2026-11-27T00:00:00Z"),
            to: at("2026-11-28T00:00:00Z"),
            sample_count: 5000,
            captured_at: now,
        };
        let baselines = Baselines {
            registered: Some(registered),
            captured: Some(captured),
        };
        let json = serde_json::to_value(BaselineView::of(&m, baselines)).expect("json");
        assert_eq!(
            json["test_set"],
            json!({"evaluated_at": "2026-11-01T00:00:00Z", "metrics": {"accuracy": 0.9, "auc_roc": 0.95}})
        );
        assert_eq!(json["throughput_forecast_rps"], 150.0);
        assert_eq!(json["updated_at"], "2026-11-28T10:00:00Z");
        assert_eq!(json["captured"]["latency_p95_ms"], 22.5);
        assert_eq!(json["captured"]["sample_count"], 5000);
        assert_eq!(json["capture_due_at"], Value::Null);
        assert_eq!(
            json["reference"],
            json!({"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z", "source": "captured"})
        );
    }
}

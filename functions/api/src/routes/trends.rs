//! `GET …/performance/{model_id}/trends`: the trends `evaluate` stored last, in the
//! specification's shape; before the first evaluation every trend metric of the
//! model's task is `insufficient_data` with no time span.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelwatch::domain::MetricName;
use modelwatch::domain::alerting::trends::{MetricTrend, TrendLabel, TrendReport, trend_metrics};
use modelwatch::domain::ids::ModelId;
use modelwatch::ports::RegisteredModel;
use serde::Serialize;

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendsView {
    /// The model.
    pub model_id: ModelId,
    /// When the trends were computed; `null` before the first evaluation.
    pub computed_at: Option<DateTime<Utc>>,
    /// Start of the hours fitted; `null` before the first evaluation.
    pub from: Option<DateTime<Utc>>,
    /// End of the hours fitted; `null` before the first evaluation.
    pub to: Option<DateTime<Utc>>,
    /// By metric name.
    pub trends: BTreeMap<MetricName, MetricTrend>,
}

impl TrendsView {
    /// The view of `model`'s stored `report`, or of no report yet.
    pub fn of(model: &RegisteredModel, report: Option<TrendReport>) -> Self {
        let model_id = model.model_id.clone();
        match report {
            Some(report) => Self {
                model_id,
                computed_at: Some(report.computed_at),
                from: Some(report.from),
                to: Some(report.to),
                trends: report.trends,
            },
            None => Self {
                model_id,
                computed_at: None,
                from: None,
                to: None,
                trends: trend_metrics(model.task)
                    .into_iter()
                    .map(|metric| (metric, not_yet_computed()))
                    .collect(),
            },
        }
    }
}

/// A trend before the first evaluation.
fn not_yet_computed() -> MetricTrend {
    MetricTrend {
        label: TrendLabel::InsufficientData,
        slope: None,
        projected_baseline_breach: None,
        confidence: None,
        threshold: None,
        points: 0,
        estimated_points: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::tests::model;
    use modelwatch::domain::Task;
    use serde_json::json;

    #[test]
    fn before_the_first_evaluation_every_metric_is_insufficient_data() {
        let view = TrendsView::of(&model("m", Task::BinaryClassification), None);
        let json = serde_json::to_value(&view).expect("json");
        let empty = json!({"7_day_trend": "insufficient_data", "slope": null,
            "projected_baseline_breach": null, "confidence": null, "threshold": null, "points": 0,
            "estimated_points": 0});
        assert_eq!(
            json,
            json!({"model_id": "m", "computed_at": null, "from": null, "to": null, "trends": {
                "accuracy": empty, "f1_score": empty, "auc_roc": empty,
                "latency_p95": empty, "error_rate": empty}})
        );
        let regression = TrendsView::of(&model("r", Task::Regression), None);
        let names: Vec<&str> = regression.trends.keys().map(|m| m.as_str()).collect();
        assert_eq!(names, ["rmse", "mae", "mape", "latency_p95", "error_rate"]);
    }

    #[test]
    fn a_stored_report_is_shown_as_computed() {
        let at = |s: &str| -> DateTime<Utc> { s.parse().expect("time") };
        let trend = MetricTrend {
            label: TrendLabel::Declining,
            slope: Some(-0.002),
            projected_baseline_breach: Some(at("2026-12-22T00:00:00Z")),
            confidence: Some(0.78),
            threshold: Some(0.855),
            points: 150,
            estimated_points: 0,
        };
        let report = TrendReport {
            computed_at: at("2026-11-28T12:00:00Z"),
            from: at("2026-11-21T12:00:00Z"),
            to: at("2026-11-28T12:00:00Z"),
            trends: BTreeMap::from([(MetricName::Accuracy, trend)]),
            labels: None,
        };
        let view = TrendsView::of(&model("m", Task::BinaryClassification), Some(report));
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["computed_at"], "2026-11-28T12:00:00Z");
        assert_eq!(
            json["trends"],
            json!({"accuracy": {"7_day_trend": "declining", "slope": -0.002,
                "projected_baseline_breach": "2026-12-22T00:00:00Z", "confidence": 0.78,
                "threshold": 0.855, "points": 150, "estimated_points": 0}})
        );
    }
}

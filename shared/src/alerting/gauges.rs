//! What `evaluate` writes to Prometheus after each run, beside `aggregate`'s series:
//! each model's baselines, its rules' thresholds and which rules fire, so a dashboard
//! can draw accuracy against its baseline and its alert threshold, and show the alerts.
//!
//! - `ml_model_baseline{tenant_id, model_id, metric}`: every baseline the model has
//!   (registered test-set metrics, the throughput forecast, the captured latency p95
//!   and error rate).
//! - `ml_model_alert_threshold{tenant_id, model_id, rule_id, metric, severity}`: every
//!   evaluated rule's threshold.
//! - `ml_model_alert_firing{…same labels}`: 1 while the rule fires, else 0 (also while
//!   its window has too little data).
//! - `ml_model_labeled_ratio{tenant_id, model_id, window="24h"}` and
//!   `ml_model_label_delay_seconds{…, quantile="0.5"|"0.95", window="24h"}`: label
//!   coverage and delay of the day before the last trend refresh (hourly), which move
//!   as late labels arrive — `aggregate`'s per-minute series of the same names (without
//!   `window`) say what was known when each minute closed.
//! - `ml_model_estimated_accuracy`, `ml_model_estimated_f1_score`,
//!   `ml_model_estimated_auc_roc` and `ml_model_prediction_drift{statistic="psi"|"js"}`,
//!   each with `window="1h"`: the last hour against the model's reference window
//!   (binary classifiers with one; "Performance without labels" in ARCHITECTURE).
//!
//! Values are in the unit of the metric's own series — seconds for latencies, like
//! `ml_model_latency_seconds` — so they plot on the same axis. Samples are stamped
//! with the evaluated minute's end. These series have one writer, `evaluate`
//! (reserved concurrency 1); `aggregate` stays the only writer of its own.

use chrono::{DateTime, Utc};

use crate::domain::alerting::baseline::Baselines;
use crate::domain::alerting::rules::AlertRule;
use crate::domain::alerting::state::RuleStatus;
use crate::domain::alerting::trends::LabelSnapshot;
use crate::domain::ids::{ModelId, TenantId};
use crate::domain::{COMPARED_METRICS, MetricName, MetricSet, Series};

/// One model's baseline, threshold, firing and day-long label series at `at`, and the
/// estimates and drift of `compared` (the last hour's metrics against the reference,
/// for a model compared with one); `rules` pairs each evaluated rule with its status
/// after the run (`None` when it has none yet).
pub fn alert_series(
    tenant: &TenantId,
    model_id: &ModelId,
    baselines: &Baselines,
    labels: Option<&LabelSnapshot>,
    compared: Option<&MetricSet>,
    rules: &[(&AlertRule, Option<RuleStatus>)],
    at: DateTime<Utc>,
) -> Vec<Series> {
    let at = at.timestamp_millis();
    let ids = [
        ("tenant_id", tenant.as_str()),
        ("model_id", model_id.as_str()),
    ];
    let series = |name: &str, extra: &[(&str, &str)]| {
        Series::new(name, ids.iter().chain(extra).map(|(k, v)| (*k, *v)))
    };
    let mut out = Vec::new();
    for metric in MetricName::ALL {
        if let Some(value) = baselines.baseline_of(metric) {
            out.push(
                series("ml_model_baseline", &[("metric", metric.as_str())])
                    .with_sample(at, metric.export().prometheus_value(value)),
            );
        }
    }
    let day = labels.iter().flat_map(|l| {
        [
            (MetricName::LabelCoverage, l.coverage),
            (MetricName::LabelDelayP50, l.delay_p50_s),
            (MetricName::LabelDelayP95, l.delay_p95_s),
        ]
        .map(|(metric, value)| (metric, value, "24h"))
    });
    let hour = compared
        .into_iter()
        .flat_map(|m| COMPARED_METRICS.map(|metric| (metric, m.get(metric), "1h")));
    for (metric, value, window) in day.chain(hour) {
        let (Some(value), export) = (value, metric.export()) else {
            continue;
        };
        let extra: Vec<(&str, &str)> = export
            .label
            .into_iter()
            .chain([("window", window)])
            .collect();
        out.push(
            series(export.prometheus_name, &extra).with_sample(at, export.prometheus_value(value)),
        );
    }
    for (rule, status) in rules {
        let labels = [
            ("rule_id", rule.id.as_str()),
            ("metric", rule.metric.as_str()),
            ("severity", rule.severity.as_str()),
        ];
        let firing = *status == Some(RuleStatus::Firing);
        out.push(
            series("ml_model_alert_threshold", &labels)
                .with_sample(at, rule.metric.export().prometheus_value(rule.threshold)),
        );
        out.push(
            series("ml_model_alert_firing", &labels).with_sample(at, f64::from(u8::from(firing))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::alerting::baseline::{
        CapturedBaseline, RegisteredBaseline, TestSetBaseline,
    };
    use crate::domain::alerting::rules::{Condition, RuleWindow, Severity};

    /// A series' name and labels.
    type SeriesKey = (String, Vec<(String, String)>);

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    fn rule(id: &str, metric: MetricName, threshold: f64, severity: Severity) -> AlertRule {
        AlertRule {
            id: id.to_owned(),
            metric,
            condition: Condition::Above,
            threshold,
            window: "5m".parse::<RuleWindow>().expect("window"),
            severity,
            min_samples: 30,
            basis: None,
            label_delay: None,
            slice: None,
        }
    }

    #[test]
    fn baselines_thresholds_firing_and_estimates_carry_their_labels_and_units() {
        let now = at("2026-11-28T10:16:00Z");
        let baselines = Baselines {
            registered: Some(RegisteredBaseline {
                test_set: Some(TestSetBaseline {
                    evaluated_at: at("2026-11-01T00:00:00Z"),
                    metrics: BTreeMap::from([(MetricName::Accuracy, 0.92)]),
                }),
                throughput_forecast_rps: Some(40.0),
                reference: None,
                updated_at: at("2026-11-01T00:00:00Z"),
            }),
            captured: Some(CapturedBaseline {
                latency_p95_ms: Some(80.0),
                error_rate: None,
                from: at("2026-11-01T00:00:00Z"),
                to: at("2026-11-02T00:00:00Z"),
                sample_count: 1000,
                captured_at: at("2026-11-02T00:01:00Z"),
            }),
        };
        let accuracy = rule(
            "default-accuracy",
            MetricName::Accuracy,
            0.874,
            Severity::Critical,
        );
        let latency = rule("p95", MetricName::LatencyP95, 120.0, Severity::Warning);
        let series = alert_series(
            &TenantId::parse("t1").expect("id"),
            &ModelId::parse("m1").expect("id"),
            &baselines,
            Some(&LabelSnapshot {
                coverage: Some(0.25),
                delay_p50_s: Some(3_600.0),
                delay_p95_s: None,
            }),
            Some(&MetricSet {
                estimated_accuracy: Some(0.81),
                prediction_psi: Some(0.3),
                prediction_js: Some(0.12),
                confidence_psi: Some(0.45),
                accuracy: Some(0.5),
                ..MetricSet::default()
            }),
            &[
                (&accuracy, Some(RuleStatus::Firing)),
                (&latency, Some(RuleStatus::InsufficientData)),
            ],
            now,
        );
        let ms = now.timestamp_millis();
        let found: BTreeMap<SeriesKey, Vec<(i64, f64)>> = series
            .into_iter()
            .map(|s| ((s.name, s.labels), s.samples))
            .collect();
        let key = |name: &str, extra: &[(&str, &str)]| -> SeriesKey {
            let labels = [("tenant_id", "t1"), ("model_id", "m1")]
                .iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            (name.to_owned(), labels)
        };
        let rule_labels =
            |id, metric, severity| [("rule_id", id), ("metric", metric), ("severity", severity)];
        let expected = BTreeMap::from([
            (
                key("ml_model_labeled_ratio", &[("window", "24h")]),
                vec![(ms, 0.25)],
            ),
            (
                key(
                    "ml_model_label_delay_seconds",
                    &[("quantile", "0.5"), ("window", "24h")],
                ),
                vec![(ms, 3_600.0)],
            ),
            (
                key("ml_model_estimated_accuracy", &[("window", "1h")]),
                vec![(ms, 0.81)],
            ),
            (
                key(
                    "ml_model_prediction_drift",
                    &[("statistic", "psi"), ("window", "1h")],
                ),
                vec![(ms, 0.3)],
            ),
            (
                key(
                    "ml_model_prediction_drift",
                    &[("statistic", "js"), ("window", "1h")],
                ),
                vec![(ms, 0.12)],
            ),
            (
                key(
                    "ml_model_confidence_drift",
                    &[("statistic", "psi"), ("window", "1h")],
                ),
                vec![(ms, 0.45)],
            ),
            (
                key("ml_model_baseline", &[("metric", "accuracy")]),
                vec![(ms, 0.92)],
            ),
            (
                key("ml_model_baseline", &[("metric", "latency_p95")]),
                vec![(ms, 0.08)],
            ),
            (
                key("ml_model_baseline", &[("metric", "throughput")]),
                vec![(ms, 40.0)],
            ),
            (
                key(
                    "ml_model_alert_threshold",
                    &rule_labels("default-accuracy", "accuracy", "critical"),
                ),
                vec![(ms, 0.874)],
            ),
            (
                key(
                    "ml_model_alert_firing",
                    &rule_labels("default-accuracy", "accuracy", "critical"),
                ),
                vec![(ms, 1.0)],
            ),
            (
                key(
                    "ml_model_alert_threshold",
                    &rule_labels("p95", "latency_p95", "warning"),
                ),
                vec![(ms, 0.12)],
            ),
            (
                key(
                    "ml_model_alert_firing",
                    &rule_labels("p95", "latency_p95", "warning"),
                ),
                vec![(ms, 0.0)],
            ),
        ]);
        assert_eq!(found, expected);
    }
}

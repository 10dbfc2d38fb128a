//! `GET` / `PUT …/performance/{model_id}/alert-rules`: the model's custom rules (the
//! specification's JSON) and the default rules in effect, each with its current
//! status. A `PUT` (validated by `parse_rule_set`) replaces the custom set whole and
//! answers like the `GET`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelwatch::domain::alerting::rules::{AlertRule, default_rules};
use modelwatch::domain::alerting::state::{RuleState, RuleStatus};
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::ids::ModelId;
use modelwatch::error::StoreResult;
use modelwatch::ports::{AlertStore, ModelSettings, ModelSettingsStore, RegisteredModel};
use serde::Serialize;

/// The thresholds the default rules derive from.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds<'a> {
    /// The specification's `PERF_*` settings.
    pub perf: &'a PerfSettings,
    /// Minimum samples and re-notification.
    pub alerts: &'a AlertSettings,
}

/// A rule with its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    /// The rule (a default rule also shows its `basis`).
    #[serde(flatten)]
    pub rule: AlertRule,
    /// Its status after the latest evaluation; `null` before the first.
    pub status: Option<RuleStatus>,
}

/// The answer of `GET` and `PUT`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRulesView {
    /// The model.
    pub model_id: ModelId,
    /// The custom rules, in the order given.
    pub alert_rules: Vec<RuleView>,
    /// Whether the default rules apply as well.
    pub use_default_rules: bool,
    /// The default rules in effect (empty when `use_default_rules` is false).
    pub default_rules: Vec<RuleView>,
    /// When the custom set was last replaced; `null` if never.
    pub updated_at: Option<DateTime<Utc>>,
}

impl AlertRulesView {
    /// The view of `model`'s stored `settings` and rule `states`.
    pub fn of(
        model: &RegisteredModel,
        settings: ModelSettings,
        states: &[RuleState],
        thresholds: Thresholds<'_>,
    ) -> Self {
        let status: BTreeMap<&str, RuleStatus> = states
            .iter()
            .map(|s| (s.rule_id.as_str(), s.status))
            .collect();
        let with_status = |rule: AlertRule| RuleView {
            status: status.get(rule.id.as_str()).copied(),
            rule,
        };
        let updated_at = settings.rules.as_ref().map(|r| r.updated_at);
        let (custom, use_default_rules) = settings
            .rules
            .map_or((Vec::new(), true), |r| (r.alert_rules, r.use_default_rules));
        let defaults = if use_default_rules {
            default_rules(
                model.task,
                &settings.baselines,
                thresholds.perf,
                thresholds.alerts,
            )
        } else {
            Vec::new()
        };
        Self {
            model_id: model.model_id.clone(),
            alert_rules: custom.into_iter().map(with_status).collect(),
            use_default_rules,
            default_rules: defaults.into_iter().map(with_status).collect(),
            updated_at,
        }
    }
}

/// The rules of `model` (settings and rule states read concurrently).
pub async fn view(
    settings: &impl ModelSettingsStore,
    alerts: &impl AlertStore,
    model: &RegisteredModel,
    thresholds: Thresholds<'_>,
) -> StoreResult<AlertRulesView> {
    let key = model.key();
    let (stored, states) = tokio::try_join!(settings.model_settings(key), alerts.rule_states(key))?;
    Ok(AlertRulesView::of(model, stored, &states, thresholds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::tests::{at, model};
    use modelwatch::domain::alerting::baseline::{RegisteredBaseline, TestSetBaseline};
    use modelwatch::domain::alerting::rules::{CustomRules, parse_rule_set};
    use modelwatch::domain::{MetricName, Task};
    use serde_json::{Value, json};

    /// The view with the specification's default thresholds.
    fn view_of(
        m: &RegisteredModel,
        settings: ModelSettings,
        states: &[RuleState],
    ) -> AlertRulesView {
        let (perf, alerts) = (PerfSettings::default(), AlertSettings::default());
        let thresholds = Thresholds {
            perf: &perf,
            alerts: &alerts,
        };
        AlertRulesView::of(m, settings, states, thresholds)
    }

    fn with_accuracy_baseline(accuracy: f64) -> ModelSettings {
        let mut settings = ModelSettings::default();
        settings.baselines.registered = Some(RegisteredBaseline {
            test_set: Some(TestSetBaseline {
                evaluated_at: at("2026-11-01T00:00:00Z"),
                metrics: BTreeMap::from([(MetricName::Accuracy, accuracy)]),
            }),
            throughput_forecast_rps: None,
            reference: None,
            updated_at: at("2026-11-02T00:00:00Z"),
        });
        settings
    }

    fn state(rule_id: &str, status: RuleStatus) -> RuleState {
        RuleState {
            rule_id: rule_id.into(),
            status,
            since: at("2026-11-28T00:00:00Z"),
            alert: None,
            last_notified_at: None,
            version: 1,
        }
    }

    #[test]
    fn defaults_derive_from_the_baseline_and_show_their_status() {
        let m = model("m", Task::BinaryClassification);
        let states = [state("default-accuracy", RuleStatus::Firing)];
        let view = view_of(&m, with_accuracy_baseline(0.9), &states);
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["alert_rules"], json!([]));
        assert_eq!(json["use_default_rules"], true);
        assert_eq!(json["updated_at"], Value::Null);
        let accuracy = &json["default_rules"][0];
        assert_eq!(accuracy["id"], "default-accuracy");
        assert_eq!(accuracy["condition"], "below");
        assert!((accuracy["threshold"].as_f64().expect("number") - 0.855).abs() < 1e-12);
        assert_eq!(accuracy["status"], "firing");
        assert!(accuracy["basis"].is_string());
        let ids: Vec<&str> = view
            .default_rules
            .iter()
            .map(|r| r.rule.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "default-accuracy",
                "default-latency_p95-max",
                "default-error_rate"
            ]
        );
        assert!(view.default_rules[1].status.is_none(), "never evaluated");
    }

    #[test]
    fn custom_rules_keep_their_order_and_can_switch_the_defaults_off() {
        let body = json!({"alert_rules": [
            {"id": "b", "metric": "latency_p95", "condition": "above", "threshold": 80, "window": "15m", "severity": "warning"},
            {"metric": "error_rate", "condition": "above", "threshold": 0.05, "window": "5m", "severity": "critical"}],
            "use_default_rules": false});
        let rules: CustomRules = parse_rule_set(
            &body,
            "m",
            &AlertSettings::default(),
            at("2026-11-28T10:00:00Z"),
        )
        .expect("valid");
        let mut settings = with_accuracy_baseline(0.9);
        settings.rules = Some(rules);
        let m = model("m", Task::BinaryClassification);
        let states = [state("b", RuleStatus::Ok)];
        let json = serde_json::to_value(view_of(&m, settings, &states)).expect("json");
        assert_eq!(json["use_default_rules"], false);
        assert_eq!(json["default_rules"], json!([]));
        assert_eq!(json["updated_at"], "2026-11-28T10:00:00Z");
        assert_eq!(
            json["alert_rules"][0],
            json!({"id": "b", "metric": "latency_p95", "condition": "above", "threshold": 80.0,
                "window": "15m", "severity": "warning", "min_samples": 30, "status": "ok"})
        );
        assert_eq!(json["alert_rules"][1]["id"], "error_rate-above-0.05-5m");
        assert_eq!(json["alert_rules"][1]["status"], Value::Null);
        assert!(json["alert_rules"][1].get("basis").is_none());
    }
}

//! Alert rules: the specification's JSON (`metric`, `condition`, `threshold`, `window`,
//! `severity`), the default rules derived from the baselines and the `PERF_*`
//! thresholds, and the validation of a rule set sent to the API.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::baseline::Baselines;
use super::{Problems, request_object};
use crate::domain::alerting::AlertSettings;
use crate::domain::alerting::PerfSettings;
use crate::domain::ids::check_id;
use crate::domain::slice::Slice;
use crate::domain::{MetricName, Task};

/// Which side of the threshold is a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Breached when the value is greater than the threshold.
    Above,
    /// Breached when the value is less than the threshold.
    Below,
}

impl Condition {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Above => "above",
            Self::Below => "below",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::Below => value < threshold,
        }
    }
}

/// How urgent an alert is; subscribers filter on it (`MessageAttributes.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Look soon.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// A rule's evaluation window: whole minutes from 1 minute to 30 days, written `15m`,
/// `1h`, `7d` (shown in the largest unit that divides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleWindow {
    minutes: i64,
}

impl RuleWindow {
    /// The shortest window.
    pub const MIN_MINUTES: i64 = 1;
    /// The longest window (30 days).
    pub const MAX_MINUTES: i64 = 30 * 24 * 60;
    /// A day.
    pub const ONE_DAY: Self = Self { minutes: 24 * 60 };

    /// A window of `minutes`, if within the limits.
    pub fn from_minutes(minutes: i64) -> Option<Self> {
        (Self::MIN_MINUTES..=Self::MAX_MINUTES)
            .contains(&minutes)
            .then_some(Self { minutes })
    }

    /// The window's length.
    pub fn length(self) -> TimeDelta {
        TimeDelta::minutes(self.minutes)
    }
}

/// Why a window string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number followed by m, h or d, from 1m to 30d (e.g. 15m, 1h, 7d)")]
pub struct InvalidWindow;

impl FromStr for RuleWindow {
    type Err = InvalidWindow;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (digits, unit) = text.split_at(text.len().saturating_sub(1));
        let per_unit = match unit {
            "m" => 1,
            "h" => 60,
            "d" => 24 * 60,
            _ => return Err(InvalidWindow),
        };
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidWindow);
        }
        let count: i64 = digits.parse().map_err(|_| InvalidWindow)?;
        Self::from_minutes(count * per_unit).ok_or(InvalidWindow)
    }
}

impl fmt::Display for RuleWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.minutes;
        if m % (24 * 60) == 0 {
            write!(f, "{}d", m / (24 * 60))
        } else if m % 60 == 0 {
            write!(f, "{}h", m / 60)
        } else {
            write!(f, "{m}m")
        }
    }
}

impl Serialize for RuleWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RuleWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One alert rule, custom or default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Stable id within the model: given by the user, or derived from the rule
    /// (`accuracy-below-0.85-1h`); default rules are `default-…`. Alert state follows it.
    pub id: String,
    /// The metric, as the summary names it.
    pub metric: MetricName,
    /// Which side of the threshold breaches.
    pub condition: Condition,
    /// The threshold, in the metric's unit (ms for latencies, fractions for rates).
    pub threshold: f64,
    /// The window the metric is computed over, ending at the evaluation time.
    pub window: RuleWindow,
    /// The alert's severity.
    pub severity: Severity,
    /// The fewest samples (labeled predictions for quality metrics, predictions
    /// otherwise; none for throughput) the window needs, else `insufficient_data`.
    pub min_samples: u64,
    /// For a default rule: how its threshold was derived. `None` for custom rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// How long labels take to arrive: the rule judges the window that ended this
    /// long before the evaluation, so it neither fires nor resolves on minutes whose
    /// labels are still coming. `None` (the default): the window ends at the
    /// evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_delay: Option<RuleWindow>,
    /// The slice of the model's traffic the rule judges (`version:v4`,
    /// `segment:region:eu`); `None` (the default): the whole model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
}

impl AlertRule {
    /// The span the rule judges when evaluated with windows ending at `end`.
    pub fn span(&self, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let to = end
            - self
                .label_delay
                .map_or(TimeDelta::zero(), RuleWindow::length);
        (to - self.window.length(), to)
    }
}

/// Higher values are better for these metrics; for the rest (errors, latencies,
/// utilisation) lower is better.
pub fn higher_is_better(metric: MetricName) -> bool {
    matches!(
        metric,
        MetricName::Accuracy
            | MetricName::F1Score
            | MetricName::AucRoc
            | MetricName::Throughput
            | MetricName::ModelCacheHitRate
            | MetricName::LabelCoverage
            | MetricName::EstimatedAccuracy
            | MetricName::EstimatedF1Score
            | MetricName::EstimatedAucRoc
    )
}

/// Whether `metric` is a prediction-quality metric (its samples are labeled predictions).
pub fn is_quality(metric: MetricName) -> bool {
    matches!(
        metric,
        MetricName::Accuracy
            | MetricName::F1Score
            | MetricName::AucRoc
            | MetricName::Rmse
            | MetricName::Mae
            | MetricName::Mape
    )
}

/// The quality metrics of a task.
pub fn quality_metrics(task: Task) -> [MetricName; 3] {
    match task {
        Task::BinaryClassification | Task::MulticlassClassification => [
            MetricName::Accuracy,
            MetricName::F1Score,
            MetricName::AucRoc,
        ],
        Task::Regression => [MetricName::Rmse, MetricName::Mae, MetricName::Mape],
    }
}

/// The fewest predictions a drift rule judges by default: PSI computed from `n` window
/// predictions over 10 bins reads about `(10 − 1) / n` even without any shift (its
/// sampling bias), 0.018 at 500 — a tenth of the default threshold.
pub const MIN_DRIFT_SAMPLES: u64 = 500;

/// The default minimum sample count of a rule on `metric`.
pub fn default_min_samples(metric: MetricName, settings: &AlertSettings) -> u64 {
    match metric {
        _ if is_quality(metric) => settings.min_labeled,
        MetricName::Throughput => 0,
        MetricName::PredictionPsi
        | MetricName::PredictionJs
        | MetricName::ConfidencePsi
        | MetricName::ConfidenceJs => settings.min_predictions.max(MIN_DRIFT_SAMPLES),
        _ => settings.min_predictions,
    }
}

/// The custom rules of one model and whether the default rules apply too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomRules {
    /// The user's rules, in the order given.
    pub alert_rules: Vec<AlertRule>,
    /// Whether the default rules are evaluated as well (default true).
    pub use_default_rules: bool,
    /// When the set was last replaced.
    pub updated_at: DateTime<Utc>,
}

impl CustomRules {
    /// What applies before any rule set was stored: no custom rules, defaults on.
    pub fn none() -> Self {
        Self {
            alert_rules: Vec::new(),
            use_default_rules: true,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }
}

/// The default windows and severities (documented in docs/ARCHITECTURE.md, "Alerting").
const QUALITY_WINDOW: i64 = 60;
const LATENCY_WINDOW: i64 = 15;
const ERROR_WINDOW: i64 = 5;
const THROUGHPUT_WINDOW: i64 = 60;
/// Latency p95 alerts above this multiple of its captured baseline.
pub const LATENCY_BASELINE_FACTOR: f64 = 1.5;
/// Throughput alerts below this fraction of the forecast.
pub const THROUGHPUT_FORECAST_FACTOR: f64 = 0.8;
/// Prediction drift warns above this PSI: the usual "significant shift" (below 0.1
/// stable, 0.1–0.2 moderate).
pub const PREDICTION_PSI_WARNING: f64 = 0.2;
const DRIFT_WINDOW: i64 = 60;

/// The specification's default rules for a model of `task` with `baselines`: each
/// quality metric with a registered baseline (`accuracy` below baseline × (1 −
/// `PERF_ACCURACY_THRESHOLD`), and the same relative margin for the others, in their
/// direction), latency p95 above 1.5 × its captured baseline and above
/// `PERF_LATENCY_P95_MAX_MS` regardless, error rate above `PERF_ERROR_RATE_MAX`,
/// throughput below 0.8 × the forecast; for a model with a reference window, prediction
/// PSI above [`PREDICTION_PSI_WARNING`] and, for a binary classifier with an accuracy
/// baseline, the estimated accuracy below the accuracy rule's threshold (both warnings:
/// they judge without labels).
pub fn default_rules(
    task: Task,
    baselines: &Baselines,
    perf: &PerfSettings,
    settings: &AlertSettings,
) -> Vec<AlertRule> {
    let rule =
        |id: &str, metric, condition, threshold, window, severity, basis: String| AlertRule {
            id: format!("default-{id}"),
            metric,
            condition,
            threshold,
            window: RuleWindow { minutes: window },
            severity,
            min_samples: default_min_samples(metric, settings),
            basis: Some(basis),
            label_delay: None,
            slice: None,
        };
    let mut rules = Vec::new();
    let margin = perf.accuracy_threshold;
    let quality_basis = |baseline: f64, sign: char| {
        format!("test-set baseline {baseline} × (1 {sign} PERF_ACCURACY_THRESHOLD {margin})")
    };
    for metric in quality_metrics(task) {
        let Some(baseline) = baselines.registered_quality(metric) else {
            continue;
        };
        let (condition, threshold, sign) = if higher_is_better(metric) {
            (Condition::Below, baseline * (1.0 - margin), '−')
        } else {
            (Condition::Above, baseline * (1.0 + margin), '+')
        };
        rules.push(rule(
            metric.as_str(),
            metric,
            condition,
            threshold,
            QUALITY_WINDOW,
            Severity::Critical,
            quality_basis(baseline, sign),
        ));
    }
    if baselines.reference().is_some() {
        rules.push(rule(
            "prediction_psi",
            MetricName::PredictionPsi,
            Condition::Above,
            PREDICTION_PSI_WARNING,
            DRIFT_WINDOW,
            Severity::Warning,
            format!(
                "PSI above {PREDICTION_PSI_WARNING}: a significant shift from the reference window"
            ),
        ));
        let estimated = (task == Task::BinaryClassification)
            .then(|| baselines.registered_quality(MetricName::Accuracy))
            .flatten();
        if let Some(baseline) = estimated {
            rules.push(rule(
                "estimated_accuracy",
                MetricName::EstimatedAccuracy,
                Condition::Below,
                baseline * (1.0 - margin),
                QUALITY_WINDOW,
                Severity::Warning,
                quality_basis(baseline, '−'),
            ));
        }
    }
    if let Some(baseline) = baselines.captured.as_ref().and_then(|c| c.latency_p95_ms) {
        rules.push(rule(
            "latency_p95-baseline",
            MetricName::LatencyP95,
            Condition::Above,
            baseline * LATENCY_BASELINE_FACTOR,
            LATENCY_WINDOW,
            Severity::Warning,
            format!("{LATENCY_BASELINE_FACTOR} × the first 24 hours' p95 {baseline} ms"),
        ));
    }
    rules.push(rule(
        "latency_p95-max",
        MetricName::LatencyP95,
        Condition::Above,
        perf.latency_p95_max_ms,
        LATENCY_WINDOW,
        Severity::Critical,
        "PERF_LATENCY_P95_MAX_MS".into(),
    ));
    rules.push(rule(
        "error_rate",
        MetricName::ErrorRate,
        Condition::Above,
        perf.error_rate_max,
        ERROR_WINDOW,
        Severity::Critical,
        "PERF_ERROR_RATE_MAX".into(),
    ));
    if let Some(forecast) = baselines.throughput_forecast_rps() {
        rules.push(rule(
            "throughput",
            MetricName::Throughput,
            Condition::Below,
            forecast * THROUGHPUT_FORECAST_FACTOR,
            THROUGHPUT_WINDOW,
            Severity::Warning,
            format!("{THROUGHPUT_FORECAST_FACTOR} × the forecast {forecast} rps"),
        ));
    }
    rules
}

/// Every rule that applies to a model: its custom rules, then the defaults when on.
pub fn effective_rules(
    task: Task,
    custom: &CustomRules,
    baselines: &Baselines,
    perf: &PerfSettings,
    settings: &AlertSettings,
) -> Vec<AlertRule> {
    let mut rules = custom.alert_rules.clone();
    if custom.use_default_rules {
        rules.extend(default_rules(task, baselines, perf, settings));
    }
    rules
}

/// The most custom rules a model may have.
pub const MAX_RULES: usize = 50;

/// Reads and validates a rule set sent to `PUT …/alert-rules`: an object with
/// `alert_rules` (required), optional `model_id` (must equal the path's) and optional
/// `use_default_rules`. Every problem is reported, naming its field.
pub fn parse_rule_set(
    body: &Value,
    model_id: &str,
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> Result<CustomRules, Problems> {
    let (object, mut problems) = request_object(
        body,
        &["model_id", "alert_rules", "use_default_rules"],
        "a rule set",
    )?;
    match object.get("model_id") {
        None => {}
        Some(Value::String(given)) if given == model_id => {}
        Some(_) => problems.push("model_id", "must equal the model id in the path"),
    }
    let use_default_rules = match object.get("use_default_rules") {
        None => true,
        Some(Value::Bool(on)) => *on,
        Some(_) => {
            problems.push("use_default_rules", "must be true or false");
            true
        }
    };
    let mut alert_rules = Vec::new();
    match object.get("alert_rules") {
        None => problems.push(
            "alert_rules",
            "is required (an array of rules, may be empty)",
        ),
        Some(Value::Array(items)) if items.len() > MAX_RULES => problems.push(
            "alert_rules",
            &format!("has {} rules; at most {MAX_RULES} are allowed", items.len()),
        ),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Some(rule) = parse_rule(item, index, settings, &mut problems) {
                    alert_rules.push(rule);
                }
            }
        }
        Some(_) => problems.push("alert_rules", "must be an array of rules"),
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, rule) in alert_rules.iter().enumerate() {
        if rule.id.starts_with("default-") {
            problems.push(
                &format!("alert_rules[{index}].id"),
                "must not start with `default-` (reserved for the default rules)",
            );
        }
        if !seen.insert(rule.id.as_str()) {
            problems.push(
                &format!("alert_rules[{index}].id"),
                &format!("repeats the id {:?} of an earlier rule", rule.id),
            );
        }
    }
    if problems.is_empty() {
        Ok(CustomRules {
            alert_rules,
            use_default_rules,
            updated_at: now,
        })
    } else {
        Err(problems)
    }
}

/// One rule of the set; `None` (with the problems recorded) when invalid.
fn parse_rule(
    item: &Value,
    index: usize,
    settings: &AlertSettings,
    problems: &mut Problems,
) -> Option<AlertRule> {
    let at = |field: &str| format!("alert_rules[{index}].{field}");
    let Some(object) = item.as_object() else {
        problems.push(&format!("alert_rules[{index}]"), "must be a JSON object");
        return None;
    };
    const FIELDS: [&str; 9] = [
        "id",
        "metric",
        "condition",
        "threshold",
        "window",
        "severity",
        "min_samples",
        "label_delay",
        "slice",
    ];
    problems.unknown_fields(object, &FIELDS, "a rule", at);
    let before = problems.len();
    let metric = required_str(object, "metric", &at, problems).and_then(|name| {
        name.parse::<MetricName>()
            .map_err(|_| {
                let names: Vec<&str> = MetricName::ALL.iter().map(|m| m.as_str()).collect();
                problems.push(
                    &at("metric"),
                    &format!("must be one of {}", names.join(", ")),
                );
            })
            .ok()
    });
    let condition = required_str(object, "condition", &at, problems).and_then(|text| {
        let choices = [("above", Condition::Above), ("below", Condition::Below)];
        problems.one_of(&at("condition"), text, &choices)
    });
    let threshold = match object.get("threshold") {
        None => {
            problems.push(&at("threshold"), "is required");
            None
        }
        Some(value) => match value.as_f64().filter(|v| v.is_finite()) {
            Some(v) => Some(v),
            None => {
                problems.push(&at("threshold"), "must be a finite number");
                None
            }
        },
    };
    let window = required_str(object, "window", &at, problems).and_then(|text| {
        text.parse::<RuleWindow>()
            .map_err(|e| problems.push(&at("window"), &e.to_string()))
            .ok()
    });
    let label_delay = match object.get("label_delay") {
        None => None,
        Some(Value::String(text)) => text
            .parse::<RuleWindow>()
            .map_err(|e| problems.push(&at("label_delay"), &e.to_string()))
            .ok(),
        Some(_) => {
            problems.push(&at("label_delay"), "must be a string such as 2h");
            None
        }
    };
    let slice = match object.get("slice") {
        None => None,
        Some(Value::String(text)) => Slice::parse(text)
            .map_err(|e| problems.push(&at("slice"), &e.to_string()))
            .ok(),
        Some(_) => {
            problems.push(
                &at("slice"),
                "must be a string such as version:v4 or segment:region:eu",
            );
            None
        }
    };
    let severity = required_str(object, "severity", &at, problems).and_then(|text| {
        let choices = [
            ("info", Severity::Info),
            ("warning", Severity::Warning),
            ("critical", Severity::Critical),
        ];
        problems.one_of(&at("severity"), text, &choices)
    });
    let min_samples = match object.get("min_samples") {
        None => None,
        Some(value) => match value.as_u64().filter(|n| *n <= 1_000_000_000) {
            Some(n) => Some(n),
            None => {
                problems.push(&at("min_samples"), "must be a whole number from 0 to 1e9");
                None
            }
        },
    };
    let id = match object.get("id") {
        None => None,
        Some(Value::String(id)) => match check_id(id) {
            Ok(()) => Some(id.clone()),
            Err(e) => {
                problems.push(&at("id"), &e.to_string());
                None
            }
        },
        Some(_) => {
            problems.push(&at("id"), "must be a string");
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    let (metric, condition, threshold, window, severity) =
        (metric?, condition?, threshold?, window?, severity?);
    let id = id.unwrap_or_else(|| {
        let delayed = label_delay
            .map(|d| format!("-after-{d}"))
            .unwrap_or_default();
        let sliced = slice.as_ref().map(|s| format!("-{s}")).unwrap_or_default();
        format!(
            "{}-{}-{}-{}{delayed}{sliced}",
            metric.as_str(),
            condition.as_str(),
            threshold,
            window
        )
    });
    if check_id(&id).is_err() {
        problems.push(
            &at("id"),
            "is required for this rule: the id derived from it is not a valid id",
        );
        return None;
    }
    Some(AlertRule {
        id,
        metric,
        condition,
        threshold,
        window,
        severity,
        min_samples: min_samples.unwrap_or_else(|| default_min_samples(metric, settings)),
        basis: None,
        label_delay,
        slice,
    })
}

/// The string field `name`, recording a problem when it is missing or not a string.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    at: &impl Fn(&str) -> String,
    problems: &mut Problems,
) -> Option<&'a str> {
    match object.get(name) {
        None => {
            problems.push(&at(name), "is required");
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(_) => {
            problems.push(&at(name), "must be a string");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::alerting::baseline::{
        CapturedBaseline, RegisteredBaseline, TestSetBaseline,
    };

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_000_000, 0).expect("time")
    }

    fn perf() -> PerfSettings {
        PerfSettings {
            monitoring_interval: std::time::Duration::from_secs(60),
            accuracy_threshold: 0.05,
            latency_p95_max_ms: 100.0,
            error_rate_max: 0.01,
        }
    }

    fn fields(problems: &Problems) -> Vec<&str> {
        problems
            .as_slice()
            .iter()
            .map(|p| p.field.as_str())
            .collect()
    }

    #[test]
    fn windows_parse_from_one_minute_to_thirty_days_and_print_canonically() {
        for (text, shown) in [
            ("1m", "1m"),
            ("15m", "15m"),
            ("60m", "1h"),
            ("90m", "90m"),
            ("1h", "1h"),
            ("48h", "2d"),
            ("30d", "30d"),
            ("720h", "30d"),
        ] {
            let window: RuleWindow = text.parse().expect(text);
            assert_eq!(window.to_string(), shown, "{text}");
        }
        for bad in [
            "", "m", "0m", "31d", "721h", "1.5h", "-1h", "1w", "1 h", "h1", "9999999m",
        ] {
            assert_eq!(bad.parse::<RuleWindow>(), Err(InvalidWindow), "{bad:?}");
        }
    }

    #[test]
    fn the_specs_rule_set_parses_with_derived_ids_and_default_sample_sizes() {
        let body = json!({"model_id": "model-xyz789", "alert_rules": [
            {"metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "1h", "severity": "critical"},
            {"metric": "latency_p95", "condition": "above", "threshold": 100, "window": "15m", "severity": "warning"},
            {"metric": "error_rate", "condition": "above", "threshold": 0.05, "window": "5m", "severity": "critical", "min_samples": 100},
            {"id": "slow-throughput", "metric": "throughput_rps", "condition": "below", "threshold": 5, "window": "1d", "severity": "info"}
        ]});
        let rules =
            parse_rule_set(&body, "model-xyz789", &AlertSettings::default(), now()).expect("valid");
        let ids: Vec<&str> = rules.alert_rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "accuracy-below-0.85-1h",
                "latency_p95-above-100-15m",
                "error_rate-above-0.05-5m",
                "slow-throughput"
            ]
        );
        let samples: Vec<u64> = rules.alert_rules.iter().map(|r| r.min_samples).collect();
        assert_eq!(samples, [30, 30, 100, 0]);
        assert!(rules.use_default_rules);
        assert_eq!(rules.alert_rules[3].metric, MetricName::Throughput);
        let json = serde_json::to_value(&rules.alert_rules[1]).expect("json");
        assert_eq!(
            json,
            json!({"id": "latency_p95-above-100-15m", "metric": "latency_p95", "condition": "above",
                   "threshold": 100.0, "window": "15m", "severity": "warning", "min_samples": 30})
        );
    }

    #[test]
    fn a_label_delay_moves_the_judged_window_back_and_names_the_derived_id() {
        let body = json!({"alert_rules": [
            {"metric": "accuracy", "condition": "below", "threshold": 0.9, "window": "1h",
             "severity": "critical", "label_delay": "2h"},
            {"metric": "accuracy", "condition": "below", "threshold": 0.9, "window": "1h",
             "severity": "critical"},
            {"metric": "label_coverage", "condition": "below", "threshold": 0.5, "window": "1h",
             "severity": "info", "label_delay": "soon"},
            {"metric": "accuracy", "condition": "below", "threshold": 0.9, "window": "1h",
             "severity": "info", "label_delay": 7200}
        ]});
        let problems =
            parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect_err("invalid");
        assert_eq!(
            fields(&problems),
            ["alert_rules[2].label_delay", "alert_rules[3].label_delay"]
        );
        let body = json!({"alert_rules": &body["alert_rules"].as_array().expect("rules")[..2]});
        let rules = parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect("valid");
        let delayed = &rules.alert_rules[0];
        assert_eq!(delayed.id, "accuracy-below-0.9-1h-after-2h");
        let end = now();
        assert_eq!(
            delayed.span(end),
            (end - TimeDelta::hours(3), end - TimeDelta::hours(2))
        );
        assert_eq!(
            rules.alert_rules[1].span(end),
            (end - TimeDelta::hours(1), end)
        );
        // Stored and read back; a rule stored before the field existed reads as none.
        let json = serde_json::to_value(delayed).expect("json");
        assert_eq!(json["label_delay"], "2h");
        let back: AlertRule = serde_json::from_value(json).expect("read");
        assert_eq!(&back, delayed);
        let old = serde_json::to_value(&rules.alert_rules[1]).expect("json");
        assert!(old.get("label_delay").is_none());
        assert!(higher_is_better(MetricName::LabelCoverage));
    }

    #[test]
    fn a_rule_may_judge_one_version_or_segment() {
        let rule = |slice: Value| {
            json!({"metric": "error_rate", "condition": "above", "threshold": 0.05,
                   "window": "15m", "severity": "warning", "slice": slice})
        };
        let body =
            json!({"alert_rules": [rule(json!("version:v4")), rule(json!("v4")), rule(json!(4))]});
        let problems =
            parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect_err("invalid");
        assert_eq!(
            fields(&problems),
            ["alert_rules[1].slice", "alert_rules[2].slice"]
        );
        let body = json!({"alert_rules": [rule(json!("version:v4"))]});
        let rules = parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect("valid");
        let sliced = &rules.alert_rules[0];
        assert_eq!(sliced.id, "error_rate-above-0.05-15m-version:v4");
        assert_eq!(sliced.slice, Some(Slice::version("v4")));
        let json = serde_json::to_value(sliced).expect("json");
        assert_eq!(json["slice"], "version:v4");
        let back: AlertRule = serde_json::from_value(json).expect("read");
        assert_eq!(&back, sliced);
        let body = json!({"alert_rules": [rule(json!("segment:region:eu"))]});
        let rules = parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect("valid");
        let segment = &rules.alert_rules[0];
        assert_eq!(segment.id, "error_rate-above-0.05-15m-segment:region:eu");
        assert_eq!(segment.slice, Some(Slice::segment("region", "eu")));
    }

    #[test]
    fn every_problem_of_a_rule_set_is_named() {
        let body = json!({"model_id": "other", "extra": 1, "use_default_rules": "yes", "alert_rules": [
            {"metric": "accuracyy", "condition": "under", "threshold": "high", "window": "2w", "severity": "fatal", "min_samples": -1, "note": 1},
            {"metric": "accuracy", "condition": "below", "threshold": 0.8, "window": "1h", "severity": "info"},
            {"metric": "accuracy", "condition": "below", "threshold": 0.8, "window": "1h", "severity": "critical"},
            {"id": "default-mine", "metric": "mae", "condition": "above", "threshold": 1, "window": "1h", "severity": "info"},
            "not a rule",
            {}
        ]});
        let problems =
            parse_rule_set(&body, "m1", &AlertSettings::default(), now()).expect_err("invalid");
        let named = fields(&problems);
        for expected in [
            "extra",
            "model_id",
            "use_default_rules",
            "alert_rules[0].metric",
            "alert_rules[0].condition",
            "alert_rules[0].threshold",
            "alert_rules[0].window",
            "alert_rules[0].severity",
            "alert_rules[0].min_samples",
            "alert_rules[0].note",
            "alert_rules[2].id",
            "alert_rules[4]",
            "alert_rules[5].metric",
            "alert_rules[5].threshold",
        ] {
            assert!(
                named.contains(&expected),
                "{expected} missing from {named:?}"
            );
        }
        // The reserved prefix is refused (index among the parsed rules).
        assert!(
            problems
                .as_slice()
                .iter()
                .any(|p| p.reason.contains("reserved")),
            "{problems:?}"
        );
        let non_finite = json!({"alert_rules": [{"metric": "mae", "condition": "above", "threshold": null, "window": "1h", "severity": "info"}]});
        assert!(parse_rule_set(&non_finite, "m1", &AlertSettings::default(), now()).is_err());
        assert!(parse_rule_set(&json!([]), "m1", &AlertSettings::default(), now()).is_err());
        assert_eq!(
            fields(
                &parse_rule_set(&json!({}), "m1", &AlertSettings::default(), now())
                    .expect_err("no rules")
            ),
            ["alert_rules"]
        );
        let too_many = json!({"alert_rules": vec![json!({}); MAX_RULES + 1]});
        assert_eq!(
            fields(
                &parse_rule_set(&too_many, "m1", &AlertSettings::default(), now())
                    .expect_err("too many")
            ),
            ["alert_rules"]
        );
    }

    #[test]
    fn default_rules_follow_the_baselines_and_the_perf_settings() {
        let settings = AlertSettings::default();
        let none = default_rules(
            Task::BinaryClassification,
            &Baselines::default(),
            &perf(),
            &settings,
        );
        let ids: Vec<&str> = none.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["default-latency_p95-max", "default-error_rate"]);
        assert_eq!(none[0].threshold, 100.0);
        assert_eq!(none[1].threshold, 0.01);

        let baselines = Baselines {
            registered: Some(RegisteredBaseline {
                test_set: Some(TestSetBaseline {
                    evaluated_at: now(),
                    metrics: [(MetricName::Accuracy, 0.9), (MetricName::AucRoc, 0.8)].into(),
                }),
                throughput_forecast_rps: Some(150.0),
                reference: None,
                updated_at: now(),
            }),
            captured: Some(CapturedBaseline {
                latency_p95_ms: Some(20.0),
                error_rate: Some(0.001),
                from: now(),
                to: now(),
                sample_count: 1000,
                captured_at: now(),
            }),
        };
        let rules = default_rules(Task::BinaryClassification, &baselines, &perf(), &settings);
        let by_id = |id: &str| rules.iter().find(|r| r.id == id).expect(id);
        let accuracy = by_id("default-accuracy");
        assert_eq!(
            (accuracy.condition, accuracy.min_samples),
            (Condition::Below, 30)
        );
        assert!((accuracy.threshold - 0.855).abs() < 1e-12);
        assert!((by_id("default-auc_roc").threshold - 0.76).abs() < 1e-12);
        assert_eq!(by_id("default-latency_p95-baseline").threshold, 30.0);
        assert_eq!(by_id("default-throughput").threshold, 120.0);
        assert_eq!(by_id("default-throughput").min_samples, 0);
        // The captured 24 hours are the reference: drift warns above PSI 0.2, and the
        // estimated accuracy below the accuracy rule's threshold.
        let psi = by_id("default-prediction_psi");
        assert_eq!(
            (psi.condition, psi.threshold, psi.severity, psi.min_samples),
            (Condition::Above, 0.2, Severity::Warning, 500)
        );
        let estimated = by_id("default-estimated_accuracy");
        assert_eq!(
            (estimated.metric, estimated.condition, estimated.severity),
            (
                MetricName::EstimatedAccuracy,
                Condition::Below,
                Severity::Warning
            )
        );
        assert_eq!(estimated.threshold, accuracy.threshold);
        assert_eq!(rules.len(), 8);
        // Neither without a reference window.
        let uncaptured = Baselines {
            captured: None,
            ..baselines.clone()
        };
        let rules = default_rules(Task::BinaryClassification, &uncaptured, &perf(), &settings);
        assert_eq!(rules.len(), 5, "{rules:?}");
        // Drift for every task; the estimate for binary classifiers only.
        let rules = default_rules(
            Task::MulticlassClassification,
            &baselines,
            &perf(),
            &settings,
        );
        assert!(rules.iter().any(|r| r.id == "default-prediction_psi"));
        assert!(!rules.iter().any(|r| r.id == "default-estimated_accuracy"));

        // Regression errors alert above baseline × (1 + threshold).
        let regression = Baselines {
            registered: Some(RegisteredBaseline {
                test_set: Some(TestSetBaseline {
                    evaluated_at: now(),
                    metrics: [(MetricName::Rmse, 2.0)].into(),
                }),
                throughput_forecast_rps: None,
                reference: None,
                updated_at: now(),
            }),
            captured: None,
        };
        let rules = default_rules(Task::Regression, &regression, &perf(), &settings);
        assert_eq!(rules[0].id, "default-rmse");
        assert_eq!(rules[0].condition, Condition::Above);
        assert!((rules[0].threshold - 2.1).abs() < 1e-12);

        let off = CustomRules {
            use_default_rules: false,
            ..CustomRules::none()
        };
        assert!(
            effective_rules(Task::Regression, &off, &regression, &perf(), &settings).is_empty()
        );
    }
}

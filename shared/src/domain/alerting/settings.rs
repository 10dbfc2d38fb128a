//! The settings evaluation runs with: the specification's thresholds and aggregation
//! interval ([`PerfSettings`]) and the alert settings beyond them ([`AlertSettings`]),
//! with their defaults. `config` reads them from the environment.

use std::time::Duration;

use chrono::TimeDelta;

/// The specification's alerting thresholds and aggregation interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfSettings {
    /// `PERF_MONITORING_INTERVAL`: how often aggregation runs (default 60 s).
    pub monitoring_interval: Duration,
    /// `PERF_ACCURACY_THRESHOLD`: relative accuracy degradation that alerts (default 0.05).
    pub accuracy_threshold: f64,
    /// `PERF_LATENCY_P95_MAX_MS`: maximum acceptable p95 latency in ms (default 100).
    pub latency_p95_max_ms: f64,
    /// `PERF_ERROR_RATE_MAX`: maximum acceptable error rate, a fraction (default 0.01).
    pub error_rate_max: f64,
}

impl Default for PerfSettings {
    /// The specification's defaults.
    fn default() -> Self {
        Self {
            monitoring_interval: Duration::from_secs(60),
            accuracy_threshold: 0.05,
            latency_p95_max_ms: 100.0,
            error_rate_max: 0.01,
        }
    }
}

/// Alert evaluation settings beyond the specification's thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// `ALERT_MIN_LABELED_SAMPLES`: labeled predictions a quality rule's window needs
    /// (default 30); fewer is `insufficient_data`.
    pub min_labeled: u64,
    /// `ALERT_MIN_PREDICTIONS`: predictions a serving or resource rule's window needs
    /// (default 30).
    pub min_predictions: u64,
    /// `ALERT_RENOTIFY_SECONDS`: re-publish a still-firing alert this often (default 0:
    /// never; one message per transition).
    pub renotify_after: Option<TimeDelta>,
    /// `VERSION_REGRESSION_MIN_LABELED`: the default rule "the newest version is
    /// significantly worse than the one before" ([`super::version_rule`]) with the
    /// samples the newest needs; `None` (the default, `off`): no such rule.
    pub version_rule_min_samples: Option<u64>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            min_labeled: 30,
            min_predictions: 30,
            renotify_after: None,
            version_rule_min_samples: None,
        }
    }
}

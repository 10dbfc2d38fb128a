//! [`MetricSet`]: the one definition of every metric the product reports. The summary API,
//! alert rules, CloudWatch and Prometheus all read this struct; no other code computes a
//! metric. [`MetricName`] names the metrics as alert rules spell them.
//!
//! Every metric is `None` — never 0, never NaN — when its inputs are absent; see each
//! field for the exact definition and `docs/metric-engine.md` for the full rationale.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::classification::ratio;
use super::estimation::Comparison;
use super::window::{QualityStats, WindowState};

/// A query window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

impl TimeSpan {
    /// The span `[start, end)`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    /// Whether no instant lies in the span (`start ≥ end`).
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// Every metric of one window, computed by [`MetricSet::compute`]. Field names are the
/// JSON names (snake_case) used everywhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    /// Correct / labeled predictions (classification); labeled = status ok with both
    /// predicted and actual. `None` for regression or with no labeled record.
    pub accuracy: Option<f64>,
    /// Binary: F1 of the positive class; multiclass: macro F1 over the labels seen in
    /// actual ∪ predicted (scikit-learn, `zero_division=0`). `None` with no labeled record.
    pub f1_score: Option<f64>,
    /// Binary only: AUC-ROC from the score histograms (trapezoid over bin thresholds, a
    /// positive and a negative sharing a bin count ½). `None` without scores on labeled
    /// records of both classes.
    pub auc_roc: Option<f64>,
    /// Largest possible deviation of `auc_roc` from the exact AUC, `½·Σ_b p_b·n_b/(P·N)`.
    pub auc_roc_error_bound: Option<f64>,
    /// Regression: `√(Σ(predicted − actual)² / n)`, target unit. `None` with no labeled record.
    pub rmse: Option<f64>,
    /// Regression: `Σ|predicted − actual| / n`, target unit. `None` with no labeled record.
    pub mae: Option<f64>,
    /// Regression: `Σ|(predicted − actual) / actual| / n'` as a fraction, over the `n'`
    /// labeled records with actual ≠ 0. `None` when there is none.
    pub mape: Option<f64>,
    /// Labeled regression records left out of `mape` because their actual is 0.
    pub mape_excluded: u64,
    /// Lower median latency (rank ⌈0.5·n⌉) of every prediction, failed ones included, in
    /// milliseconds, within 1% of the exact value. `None` without predictions.
    pub latency_p50_ms: Option<f64>,
    /// Lower 95th percentile latency (rank ⌈0.95·n⌉), ms, within 1%. `None` without predictions.
    pub latency_p95_ms: Option<f64>,
    /// Lower 99th percentile latency (rank ⌈0.99·n⌉), ms, within 1%. `None` without predictions.
    pub latency_p99_ms: Option<f64>,
    /// Sum of all latencies in milliseconds (a Prometheus summary's `_sum`). `None`
    /// without predictions.
    pub latency_sum_ms: Option<f64>,
    /// Predictions per second over the seconds covered: the window clipped at its start to
    /// the model's first prediction. 0 when the model was live but silent; `None` when it
    /// was not live during the window.
    pub throughput_rps: Option<f64>,
    /// Errors / predictions, a fraction. `None` without predictions.
    pub error_rate: Option<f64>,
    /// The latest queue-depth sample (pending requests). `None` without samples.
    pub queue_depth: Option<f64>,
    /// The largest queue-depth sample. `None` without samples.
    pub queue_depth_max: Option<f64>,
    /// Mean CPU utilization sample, a fraction in `[0, 1]`. `None` without samples.
    pub cpu_utilization: Option<f64>,
    /// Mean memory utilization sample, a fraction in `[0, 1]`. `None` without samples.
    pub memory_utilization: Option<f64>,
    /// Mean GPU utilization sample, a fraction in `[0, 1]`. `None` without samples.
    pub gpu_utilization: Option<f64>,
    /// Cache hits / (hits + misses). `None` when both are 0.
    pub model_cache_hit_rate: Option<f64>,
    /// Prediction records, both statuses.
    pub predictions: u64,
    /// Prediction records with status error.
    pub errors: u64,
    /// Labeled predictions (status ok, both predicted and actual), late labels joined
    /// to the window's predictions included.
    pub labeled: u64,
    /// Labeled / predictions, a fraction: how much of the window's traffic has its
    /// truth yet. `None` without predictions.
    pub label_coverage: Option<f64>,
    /// Median delay of the late labels joined to the window's predictions (label time
    /// − prediction time), seconds, within 1%. `None` when no late label was joined.
    pub label_delay_p50_s: Option<f64>,
    /// 95th percentile of that delay, seconds, within 1%. `None` when no late label was
    /// joined.
    pub label_delay_p95_s: Option<f64>,
    /// What the window counts in the overflow bucket (labels and error types beyond
    /// their caps); all zero when the bucket is not in use.
    pub overflow: OverflowCounts,
    /// Accuracy estimated without labels (CBPE) against the model's reference; `None`
    /// until [`with_comparison`](Self::with_comparison) gives one.
    pub estimated_accuracy: Option<f64>,
    /// F1 estimated without labels; as `estimated_accuracy`.
    pub estimated_f1_score: Option<f64>,
    /// ROC AUC estimated without labels; as `estimated_accuracy`.
    pub estimated_auc_roc: Option<f64>,
    /// Population stability index of the predictions against the reference's; `None`
    /// until [`with_comparison`](Self::with_comparison) gives one.
    pub prediction_psi: Option<f64>,
    /// Jensen–Shannon distance (base 2) of the predictions from the reference's.
    pub prediction_js: Option<f64>,
    /// Population stability index of a multiclass classifier's confidence (the score
    /// of its predicted label) against the reference's; `None` without scores on both
    /// sides, and for the other tasks.
    pub confidence_psi: Option<f64>,
    /// Jensen–Shannon distance (base 2) of that confidence from the reference's.
    pub confidence_js: Option<f64>,
}

/// What a window counts under the overflow bucket
/// ([`OVERFLOW_BUCKET`](super::OVERFLOW_BUCKET)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverflowCounts {
    /// Labeled predictions whose actual label is beyond the label cap.
    pub actual_labels: u64,
    /// Labeled predictions whose predicted label is beyond the label cap.
    pub predicted_labels: u64,
    /// Errors whose error type is beyond the error-type cap.
    pub error_types: u64,
}

/// Drops non-finite results (a sum that overflowed): a metric is never NaN or infinite.
fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

impl MetricSet {
    /// Computes every metric of `state` for the query window `span`.
    ///
    /// `model_first_seen` is the time of the model's first prediction ever (from any
    /// window); throughput divides by the seconds from `max(span.start, first seen)` to
    /// `span.end`. When `None`, the state's own first prediction is used; when both are
    /// present the earlier one is.
    pub fn compute(
        state: &WindowState,
        span: TimeSpan,
        model_first_seen: Option<DateTime<Utc>>,
    ) -> Self {
        let mut metrics = Self {
            predictions: state.predictions(),
            errors: state.errors(),
            overflow: OverflowCounts {
                error_types: state.error_type_overflow(),
                ..OverflowCounts::default()
            },
            ..Self::default()
        };
        match state.quality() {
            Some(QualityStats::Binary(stats)) => {
                metrics.labeled = stats.labeled();
                metrics.accuracy = stats.accuracy();
                metrics.f1_score = stats.f1_score();
                if let Some(auc) = stats.auc_roc() {
                    metrics.auc_roc = Some(auc.value);
                    metrics.auc_roc_error_bound = Some(auc.error_bound);
                }
            }
            Some(QualityStats::Multiclass(stats)) => {
                metrics.labeled = stats.labeled();
                metrics.accuracy = stats.accuracy();
                metrics.f1_score = stats.f1_score();
                let overflow = stats.overflow();
                metrics.overflow.actual_labels = overflow.actual;
                metrics.overflow.predicted_labels = overflow.predicted;
            }
            Some(QualityStats::Regression(stats)) => {
                metrics.labeled = stats.labeled();
                metrics.rmse = finite(stats.rmse());
                metrics.mae = finite(stats.mae());
                metrics.mape = finite(stats.mape());
                metrics.mape_excluded = stats.mape_excluded();
            }
            None => {}
        }
        let latency = state.latency();
        metrics.latency_p50_ms = latency.quantile(0.50);
        metrics.latency_p95_ms = latency.quantile(0.95);
        metrics.latency_p99_ms = latency.quantile(0.99);
        metrics.latency_sum_ms = finite((latency.count() > 0).then(|| latency.sum_ms()));
        metrics.error_rate = ratio(state.errors(), state.predictions());
        metrics.label_coverage = ratio(metrics.labeled, state.predictions());
        metrics.label_delay_p50_s = state.label_delay().quantile(0.50);
        metrics.label_delay_p95_s = state.label_delay().quantile(0.95);
        metrics.throughput_rps = throughput(state, span, model_first_seen);

        let resources = state.resources();
        metrics.queue_depth = resources.queue_depth().map(|g| g.last());
        metrics.queue_depth_max = resources.queue_depth().map(|g| g.max());
        metrics.cpu_utilization = finite(resources.cpu_utilization().map(|g| g.mean()));
        metrics.memory_utilization = finite(resources.memory_utilization().map(|g| g.mean()));
        metrics.gpu_utilization = finite(resources.gpu_utilization().map(|g| g.mean()));
        metrics.model_cache_hit_rate = ratio(
            resources.cache_hits(),
            resources
                .cache_hits()
                .saturating_add(resources.cache_misses()),
        );
        metrics
    }

    /// These metrics with the window's estimates and drift against the model's reference
    /// (see [`Comparison`]): what [`compute`](Self::compute) alone cannot know.
    pub fn with_comparison(mut self, comparison: &Comparison) -> Self {
        let estimate = comparison.estimate.as_ref().ok();
        self.estimated_accuracy = estimate.map(|e| e.accuracy.value);
        self.estimated_f1_score = estimate.map(|e| e.f1_score.value);
        self.estimated_auc_roc = estimate.and_then(|e| e.auc_roc).map(|e| e.value);
        self.prediction_psi = comparison.drift.map(|d| d.psi);
        self.prediction_js = comparison.drift.map(|d| d.js);
        self.confidence_psi = comparison.confidence_drift.map(|d| d.psi);
        self.confidence_js = comparison.confidence_drift.map(|d| d.js);
        self
    }

    /// The value of the metric `name`.
    pub fn get(&self, name: MetricName) -> Option<f64> {
        match name {
            MetricName::Accuracy => self.accuracy,
            MetricName::F1Score => self.f1_score,
            MetricName::AucRoc => self.auc_roc,
            MetricName::Rmse => self.rmse,
            MetricName::Mae => self.mae,
            MetricName::Mape => self.mape,
            MetricName::LatencyP50 => self.latency_p50_ms,
            MetricName::LatencyP95 => self.latency_p95_ms,
            MetricName::LatencyP99 => self.latency_p99_ms,
            MetricName::Throughput => self.throughput_rps,
            MetricName::ErrorRate => self.error_rate,
            MetricName::QueueDepth => self.queue_depth,
            MetricName::CpuUtilization => self.cpu_utilization,
            MetricName::MemoryUtilization => self.memory_utilization,
            MetricName::GpuUtilization => self.gpu_utilization,
            MetricName::ModelCacheHitRate => self.model_cache_hit_rate,
            MetricName::LabelCoverage => self.label_coverage,
            MetricName::LabelDelayP50 => self.label_delay_p50_s,
            MetricName::LabelDelayP95 => self.label_delay_p95_s,
            MetricName::EstimatedAccuracy => self.estimated_accuracy,
            MetricName::EstimatedF1Score => self.estimated_f1_score,
            MetricName::EstimatedAucRoc => self.estimated_auc_roc,
            MetricName::PredictionPsi => self.prediction_psi,
            MetricName::PredictionJs => self.prediction_js,
            MetricName::ConfidencePsi => self.confidence_psi,
            MetricName::ConfidenceJs => self.confidence_js,
        }
    }
}

/// `predictions / seconds covered`; see [`MetricSet::throughput_rps`].
fn throughput(
    state: &WindowState,
    span: TimeSpan,
    model_first_seen: Option<DateTime<Utc>>,
) -> Option<f64> {
    let first_seen = match (model_first_seen, state.first_prediction()) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let covered_from = span.start.max(first_seen);
    let covered_ms = (span.end - covered_from).num_milliseconds();
    (covered_ms > 0).then(|| state.predictions() as f64 * 1000.0 / covered_ms as f64)
}

/// A metric that alert rules and trends can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricName {
    /// [`MetricSet::accuracy`].
    Accuracy,
    /// [`MetricSet::f1_score`].
    F1Score,
    /// [`MetricSet::auc_roc`].
    AucRoc,
    /// [`MetricSet::rmse`].
    Rmse,
    /// [`MetricSet::mae`].
    Mae,
    /// [`MetricSet::mape`].
    Mape,
    /// [`MetricSet::latency_p50_ms`].
    LatencyP50,
    /// [`MetricSet::latency_p95_ms`].
    LatencyP95,
    /// [`MetricSet::latency_p99_ms`].
    LatencyP99,
    /// [`MetricSet::throughput_rps`].
    Throughput,
    /// [`MetricSet::error_rate`].
    ErrorRate,
    /// [`MetricSet::queue_depth`].
    QueueDepth,
    /// [`MetricSet::cpu_utilization`].
    CpuUtilization,
    /// [`MetricSet::memory_utilization`].
    MemoryUtilization,
    /// [`MetricSet::gpu_utilization`].
    GpuUtilization,
    /// [`MetricSet::model_cache_hit_rate`].
    ModelCacheHitRate,
    /// [`MetricSet::label_coverage`].
    LabelCoverage,
    /// [`MetricSet::label_delay_p50_s`].
    LabelDelayP50,
    /// [`MetricSet::label_delay_p95_s`].
    LabelDelayP95,
    /// [`MetricSet::estimated_accuracy`].
    EstimatedAccuracy,
    /// [`MetricSet::estimated_f1_score`].
    EstimatedF1Score,
    /// [`MetricSet::estimated_auc_roc`].
    EstimatedAucRoc,
    /// [`MetricSet::prediction_psi`].
    PredictionPsi,
    /// [`MetricSet::prediction_js`].
    PredictionJs,
    /// [`MetricSet::confidence_psi`].
    ConfidencePsi,
    /// [`MetricSet::confidence_js`].
    ConfidenceJs,
}

impl MetricName {
    /// Every metric name, in declaration order.
    pub const ALL: [Self; 26] = [
        Self::Accuracy,
        Self::F1Score,
        Self::AucRoc,
        Self::Rmse,
        Self::Mae,
        Self::Mape,
        Self::LatencyP50,
        Self::LatencyP95,
        Self::LatencyP99,
        Self::Throughput,
        Self::ErrorRate,
        Self::QueueDepth,
        Self::CpuUtilization,
        Self::MemoryUtilization,
        Self::GpuUtilization,
        Self::ModelCacheHitRate,
        Self::LabelCoverage,
        Self::LabelDelayP50,
        Self::LabelDelayP95,
        Self::EstimatedAccuracy,
        Self::EstimatedF1Score,
        Self::EstimatedAucRoc,
        Self::PredictionPsi,
        Self::PredictionJs,
        Self::ConfidencePsi,
        Self::ConfidenceJs,
    ];

    /// The metric estimated without labels that stands for this quality metric, if any.
    pub fn estimated(self) -> Option<Self> {
        match self {
            Self::Accuracy => Some(Self::EstimatedAccuracy),
            Self::F1Score => Some(Self::EstimatedF1Score),
            Self::AucRoc => Some(Self::EstimatedAucRoc),
            _ => None,
        }
    }

    /// The name as alert rules write it (`latency_p95`, `throughput`, …). [`FromStr`] also
    /// accepts the [`MetricSet`] field names `latency_p95_ms` and `throughput_rps`, and
    /// `estimated_f1` for `estimated_f1_score`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::F1Score => "f1_score",
            Self::AucRoc => "auc_roc",
            Self::Rmse => "rmse",
            Self::Mae => "mae",
            Self::Mape => "mape",
            Self::LatencyP50 => "latency_p50",
            Self::LatencyP95 => "latency_p95",
            Self::LatencyP99 => "latency_p99",
            Self::Throughput => "throughput",
            Self::ErrorRate => "error_rate",
            Self::QueueDepth => "queue_depth",
            Self::CpuUtilization => "cpu_utilization",
            Self::MemoryUtilization => "memory_utilization",
            Self::GpuUtilization => "gpu_utilization",
            Self::ModelCacheHitRate => "model_cache_hit_rate",
            Self::LabelCoverage => "label_coverage",
            Self::LabelDelayP50 => "label_delay_p50",
            Self::LabelDelayP95 => "label_delay_p95",
            Self::EstimatedAccuracy => "estimated_accuracy",
            Self::EstimatedF1Score => "estimated_f1_score",
            Self::EstimatedAucRoc => "estimated_auc_roc",
            Self::PredictionPsi => "prediction_psi",
            Self::PredictionJs => "prediction_js",
            Self::ConfidencePsi => "confidence_psi",
            Self::ConfidenceJs => "confidence_js",
        }
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}")]
pub struct UnknownMetric(pub String);

impl FromStr for MetricName {
    type Err = UnknownMetric;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let alias = match name {
            "latency_p50_ms" => Some(Self::LatencyP50),
            "latency_p95_ms" => Some(Self::LatencyP95),
            "latency_p99_ms" => Some(Self::LatencyP99),
            "throughput_rps" => Some(Self::Throughput),
            "label_delay_p50_s" => Some(Self::LabelDelayP50),
            "label_delay_p95_s" => Some(Self::LabelDelayP95),
            "estimated_f1" => Some(Self::EstimatedF1Score),
            _ => None,
        };
        alias
            .or_else(|| Self::ALL.into_iter().find(|metric| metric.as_str() == name))
            .ok_or_else(|| UnknownMetric(name.to_owned()))
    }
}

impl Serialize for MetricName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MetricName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::{Outcome, PredictionRecord, ResourceSample, Status};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("in range")
    }

    fn day() -> TimeSpan {
        TimeSpan {
            start: at(0),
            end: at(86_400),
        }
    }

    fn record(seconds: i64, status: Status) -> PredictionRecord {
        PredictionRecord {
            timestamp: at(seconds),
            latency_ms: 10.0,
            status,
            error_type: None,
            outcome: Outcome::Regression {
                predicted: Some(2.0),
                actual: Some(1.0),
            },
        }
    }

    #[test]
    fn empty_window_has_no_metrics_at_all() {
        let metrics = MetricSet::compute(&WindowState::new(), day(), None);
        assert_eq!(metrics, MetricSet::default());
        for name in MetricName::ALL {
            assert_eq!(metrics.get(name), None, "{name}");
        }
        let json = serde_json::to_value(&metrics).expect("serializes");
        assert_eq!(json["accuracy"], serde_json::Value::Null);
        assert_eq!(json["predictions"], 0);
    }

    #[test]
    fn throughput_divides_by_the_seconds_the_model_was_live() {
        let mut state = WindowState::new();
        for s in 0..600 {
            state
                .fold_prediction(&record(86_400 - 600 + s, Status::Ok))
                .expect("valid");
        }
        let first_seen = Some(at(86_400 - 600));
        assert_eq!(
            MetricSet::compute(&state, day(), first_seen).throughput_rps,
            Some(1.0)
        );
        // Without the argument, the state's own first prediction is used.
        assert_eq!(
            MetricSet::compute(&state, day(), None).throughput_rps,
            Some(1.0)
        );
        // A model live for the whole day divides by the whole day.
        let metrics = MetricSet::compute(&state, day(), Some(at(-5)));
        assert_eq!(metrics.throughput_rps, Some(600.0 / 86_400.0));
        // Live but silent: 0; not yet live: None.
        let silent = MetricSet::compute(&WindowState::new(), day(), Some(at(-5)));
        assert_eq!(silent.throughput_rps, Some(0.0));
        let later = MetricSet::compute(&WindowState::new(), day(), Some(at(90_000)));
        assert_eq!(later.throughput_rps, None);
    }

    #[test]
    fn serving_and_resource_metrics() {
        let mut state = WindowState::new();
        state
            .fold_prediction(&record(1, Status::Ok))
            .expect("valid");
        state
            .fold_prediction(&record(2, Status::Error))
            .expect("valid");
        for (seconds, cpu, queue) in [(10, 0.2, 4.0), (20, 0.6, 1.0)] {
            let sample = ResourceSample {
                timestamp: at(seconds),
                cpu_utilization: Some(cpu),
                memory_utilization: None,
                gpu_utilization: None,
                queue_depth: Some(queue),
                cache_hits: Some(3),
                cache_misses: Some(1),
            };
            state.fold_resource(&sample).expect("valid");
        }
        let metrics = MetricSet::compute(&state, day(), None);
        assert_eq!(metrics.error_rate, Some(0.5));
        assert_eq!(metrics.labeled, 1);
        assert_eq!(metrics.rmse, Some(1.0));
        assert_eq!(metrics.mape, Some(1.0));
        assert_eq!(metrics.latency_p99_ms, Some(10.0));
        assert_eq!(metrics.latency_sum_ms, Some(20.0));
        assert_eq!(metrics.cpu_utilization, Some(0.4));
        assert_eq!(metrics.queue_depth, Some(1.0));
        assert_eq!(metrics.queue_depth_max, Some(4.0));
        assert_eq!(metrics.model_cache_hit_rate, Some(0.75));
        assert_eq!(metrics.gpu_utilization, None);
        assert_eq!(metrics.accuracy, None);
    }

    #[test]
    fn metric_names_parse_with_their_aliases() {
        for name in MetricName::ALL {
            assert_eq!(name.as_str().parse::<MetricName>(), Ok(name));
        }
        assert_eq!(
            "latency_p95_ms".parse::<MetricName>(),
            Ok(MetricName::LatencyP95)
        );
        assert_eq!(
            "throughput_rps".parse::<MetricName>(),
            Ok(MetricName::Throughput)
        );
        assert!("latency".parse::<MetricName>().is_err());
        let parsed: MetricName = serde_json::from_str("\"error_rate\"").expect("known name");
        assert_eq!(parsed, MetricName::ErrorRate);
    }
}

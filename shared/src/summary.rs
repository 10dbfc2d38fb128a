//! The performance summary of one model over a recent window
//! (`GET /api/v1/monitoring/performance/{model_id}`): the "current" metrics of the
//! whole window and a series of points at a granularity, every value from
//! [`MetricSet::compute`] over merged rollups.
//!
//! **Which rollups.** The window is `[now − window, now)`, widened at its start to the
//! start of the finest rollup available there (a minute; an hour when the minute
//! rollups there are past their retention), so every rollup overlapping the window
//! counts whole. The current values merge whole days from day rollups, whole hours
//! from hour rollups and the ragged edges from minute rollups; the series reads the
//! requested granularity's rollups, one point per span from the span holding the
//! window's start to the one holding `now`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::domain::alerting::baseline::{Reference, ReferenceSnapshot};
use crate::domain::alerting::trends::{MIN_POINT_SAMPLES, TrendLabel};
use crate::domain::estimation::{Comparison, Estimate, ReferenceFit};
use crate::domain::ids::{ModelId, ModelRef, check_id};
use crate::domain::slice::Slice;
use crate::domain::{
    Granularity, MetricName, MetricSet, OverflowCounts, Task, TimeSpan, WindowState,
};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ModelSettingsStore, RegisteredModel, RollupStore};
use crate::query::{InvalidParameter, single_values};

/// A summary window, as the `window` parameter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One hour.
    Hour1,
    /// Six hours.
    Hours6,
    /// 24 hours (the default).
    Hours24,
    /// Seven days.
    Days7,
    /// 30 days.
    Days30,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Self; 5] = [
        Self::Hour1,
        Self::Hours6,
        Self::Hours24,
        Self::Days7,
        Self::Days30,
    ];

    /// The parameter value naming the window.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour1 => "1h",
            Self::Hours6 => "6h",
            Self::Hours24 => "24h",
            Self::Days7 => "7d",
            Self::Days30 => "30d",
        }
    }

    /// The window's length.
    pub fn length(self) -> TimeDelta {
        match self {
            Self::Hour1 => TimeDelta::hours(1),
            Self::Hours6 => TimeDelta::hours(6),
            Self::Hours24 => TimeDelta::hours(24),
            Self::Days7 => TimeDelta::days(7),
            Self::Days30 => TimeDelta::days(30),
        }
    }

    /// The series granularity used when none is asked for.
    pub fn default_granularity(self) -> Granularity {
        match self {
            Self::Hour1 | Self::Hours6 => Granularity::Minute,
            Self::Hours24 | Self::Days7 => Granularity::Hour,
            Self::Days30 => Granularity::Day,
        }
    }

    /// Whether a series at `granularity` is offered for this window (minute points
    /// only up to 24 hours).
    pub fn allows(self, granularity: Granularity) -> bool {
        granularity != Granularity::Minute || self.length() <= TimeDelta::hours(24)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a summary is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryQuery {
    /// The window.
    pub window: Window,
    /// The series granularity.
    pub granularity: Granularity,
    /// The slice asked for (`version`, or `segment` as `<key>:<value>`), or `None`
    /// for the whole model.
    pub slice: Option<Slice>,
}

/// Reads the `window` parameter (default 24 hours).
pub fn parse_window(value: Option<&str>) -> Result<Window, InvalidParameter> {
    let Some(value) = value else {
        return Ok(Window::Hours24);
    };
    Window::ALL
        .into_iter()
        .find(|w| w.as_str() == value)
        .ok_or_else(|| {
            InvalidParameter::value(
                "window",
                value,
                "is not a known window",
                Window::ALL.map(Window::as_str).to_vec(),
            )
        })
}

impl SummaryQuery {
    /// Reads the query parameters (`window`, `granularity`, and at most one of
    /// `version` and `segment`, each at most once); anything else is refused.
    pub fn parse<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InvalidParameter> {
        let [window, granularity, version, segment] =
            single_values(params, ["window", "granularity", "version", "segment"])?;
        let window = parse_window(window)?;
        let invalid = |name, value: &str, reason: String| {
            InvalidParameter::value(name, value, reason, Vec::new())
        };
        let slice = match (version, segment) {
            (Some(_), Some(segment)) => {
                let reason = "cannot be combined with version: a summary is of one slice";
                return Err(invalid("segment", segment, reason.into()));
            }
            (Some(v), None) => Some(
                check_id(v)
                    .map(|()| Slice::version(v))
                    .map_err(|e| invalid("version", v, e.to_string()))?,
            ),
            (None, Some(s)) => Some(
                Slice::parse_segment(s)
                    .map_err(|_| invalid("segment", s, "must be <key>:<value>".into()))?,
            ),
            (None, None) => None,
        };
        let allowed_granularities = || -> Vec<&'static str> {
            Granularity::ALL
                .into_iter()
                .filter(|g| window.allows(*g))
                .map(Granularity::as_str)
                .collect()
        };
        let granularity = match granularity {
            None => window.default_granularity(),
            Some(value) => {
                let known = Granularity::from_name(value);
                match known {
                    Some(g) if window.allows(g) => g,
                    known => {
                        let reason = if known.is_some() {
                            format!("is not offered for window {}", window.as_str())
                        } else {
                            "is not a known granularity".into()
                        };
                        return Err(InvalidParameter::value(
                            "granularity",
                            value,
                            reason,
                            allowed_granularities(),
                        ));
                    }
                }
            }
        };
        Ok(Self {
            window,
            granularity,
            slice,
        })
    }
}

/// One quality metric with its baseline comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityValue {
    /// The window's value.
    pub current: Option<f64>,
    /// The registered test-set baseline, if any.
    pub baseline: Option<f64>,
    /// The seven-day trend label, once `evaluate` has computed one.
    pub trend: Option<TrendLabel>,
    /// The value estimated without labels (CBPE), where there is an estimate.
    pub estimated: Option<f64>,
    /// Its 95 % confidence interval `[low, high]`.
    pub estimated_ci: Option<[f64; 2]>,
}

/// An estimated metric and its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EstimatedValue {
    /// The estimate.
    pub estimated: f64,
    /// `[low, high]`.
    pub estimated_ci: [f64; 2],
}

impl From<Estimate> for EstimatedValue {
    fn from(e: Estimate) -> Self {
        Self {
            estimated: e.value,
            estimated_ci: [e.low, e.high],
        }
    }
}

/// Performance estimated without labels (binary classifiers), and why not when absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimationSummary {
    /// The window estimates are calibrated on; `null` while the model has none.
    pub reference: Option<Reference>,
    /// Why there is no estimate; `null` when there is one.
    pub unavailable: Option<String>,
    /// Scored predictions the estimate covers.
    pub predictions: u64,
    /// Estimated precision (accuracy, F1 and AUC-ROC are in `quality_metrics`).
    pub precision: Option<EstimatedValue>,
    /// Estimated recall.
    pub recall: Option<EstimatedValue>,
}

/// How far the window's predictions moved from the reference's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftSummary {
    /// The window compared against; `null` while the model has none.
    pub reference: Option<Reference>,
    /// What is compared: `score` (a binary classifier's scores), `predicted_label` or
    /// `predicted_value`.
    pub distribution: Option<&'static str>,
    /// Population stability index over the reference's deciles.
    pub psi: Option<f64>,
    /// Jensen–Shannon distance (base 2) over the same bins.
    pub js: Option<f64>,
    /// Drift bins compared.
    pub bins: Option<usize>,
    /// Predictions of the window compared.
    pub predictions: u64,
    /// A multiclass classifier's confidence — the score of the label it predicted —
    /// against the reference's; `null` unless both hold scored predictions.
    pub confidence: Option<ConfidenceDrift>,
}

/// The drift of a multiclass classifier's confidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfidenceDrift {
    /// What is compared: `predicted_class_score`.
    pub distribution: &'static str,
    /// Population stability index over the reference's deciles of the score bins.
    pub psi: f64,
    /// Jensen–Shannon distance (base 2) over the same bins.
    pub js: f64,
    /// Drift bins compared.
    pub bins: usize,
    /// Scored predictions of the window compared.
    pub predictions: u64,
}

/// The window against the model's reference, and which reference that is.
struct Compared {
    reference: Option<Reference>,
    comparison: Comparison,
}

impl Compared {
    fn estimated(&self, name: MetricName) -> Option<Estimate> {
        let estimate = self.comparison.estimate.as_ref().ok()?;
        match name {
            MetricName::Accuracy => Some(estimate.accuracy),
            MetricName::F1Score => Some(estimate.f1_score),
            MetricName::AucRoc => estimate.auc_roc,
            _ => None,
        }
    }

    fn estimation(&self) -> EstimationSummary {
        let estimate = self.comparison.estimate.as_ref();
        EstimationSummary {
            reference: self.reference,
            unavailable: estimate.err().map(ToString::to_string),
            predictions: estimate.map_or(0, |e| e.predictions),
            precision: estimate.ok().and_then(|e| e.precision).map(Into::into),
            recall: estimate.ok().and_then(|e| e.recall).map(Into::into),
        }
    }

    fn drift(&self) -> DriftSummary {
        let drift = self.comparison.drift;
        DriftSummary {
            reference: self.reference,
            distribution: drift.map(|d| d.distribution.as_str()),
            psi: drift.map(|d| d.psi),
            js: drift.map(|d| d.js),
            bins: drift.map(|d| d.bins),
            predictions: drift.map_or(0, |d| d.predictions),
            confidence: self.comparison.confidence_drift.map(|d| ConfidenceDrift {
                distribution: d.distribution.as_str(),
                psi: d.psi,
                js: d.js,
                bins: d.bins,
                predictions: d.predictions,
            }),
        }
    }
}

/// The quality metrics of the model's task: classification or regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum QualityMetrics<T> {
    /// Binary or multiclass classification.
    Classification {
        /// Accuracy.
        accuracy: T,
        /// F1 score.
        f1_score: T,
        /// AUC-ROC (binary only).
        auc_roc: T,
    },
    /// Regression.
    Regression {
        /// Root mean squared error.
        rmse: T,
        /// Mean absolute error.
        mae: T,
        /// Mean absolute percentage error, a fraction.
        mape: T,
    },
}

impl<T> QualityMetrics<T> {
    /// The task's quality metrics, each made by `value` from its name.
    fn of(task: Task, value: impl Fn(MetricName) -> T) -> Self {
        match task {
            Task::BinaryClassification | Task::MulticlassClassification => Self::Classification {
                accuracy: value(MetricName::Accuracy),
                f1_score: value(MetricName::F1Score),
                auc_roc: value(MetricName::AucRoc),
            },
            Task::Regression => Self::Regression {
                rmse: value(MetricName::Rmse),
                mae: value(MetricName::Mae),
                mape: value(MetricName::Mape),
            },
        }
    }
}

/// Latency, throughput, errors and queue depth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingMetrics {
    /// Median latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Predictions per second.
    pub throughput_rps: Option<f64>,
    /// Errors / predictions.
    pub error_rate: Option<f64>,
    /// Latest queue depth.
    pub queue_depth: Option<f64>,
}

/// Resource utilization and cache hit rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceMetrics {
    /// Mean CPU utilization, a fraction.
    pub cpu_utilization: Option<f64>,
    /// Mean memory utilization, a fraction.
    pub memory_utilization: Option<f64>,
    /// Mean GPU utilization, a fraction.
    pub gpu_utilization: Option<f64>,
    /// Cache hits / lookups.
    pub model_cache_hit_rate: Option<f64>,
}

/// How much of the traffic has its truth, and how late labels come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMetrics {
    /// Labeled / predictions, a fraction (late labels joined included).
    pub label_coverage: Option<f64>,
    /// Median label delay (label time − prediction time) of the late labels, seconds.
    pub label_delay_p50_s: Option<f64>,
    /// 95th percentile label delay, seconds.
    pub label_delay_p95_s: Option<f64>,
}

impl LabelMetrics {
    fn of(m: &MetricSet) -> Self {
        Self {
            label_coverage: m.label_coverage,
            label_delay_p50_s: m.label_delay_p50_s,
            label_delay_p95_s: m.label_delay_p95_s,
        }
    }
}

impl ServingMetrics {
    fn of(m: &MetricSet) -> Self {
        Self {
            latency_p50_ms: m.latency_p50_ms,
            latency_p95_ms: m.latency_p95_ms,
            latency_p99_ms: m.latency_p99_ms,
            throughput_rps: m.throughput_rps,
            error_rate: m.error_rate,
            queue_depth: m.queue_depth,
        }
    }
}

impl ResourceMetrics {
    fn of(m: &MetricSet) -> Self {
        Self {
            cpu_utilization: m.cpu_utilization,
            memory_utilization: m.memory_utilization,
            gpu_utilization: m.gpu_utilization,
            model_cache_hit_rate: m.model_cache_hit_rate,
        }
    }
}

/// One series point: a span's start and its metrics, flat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Start of the span (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The task's quality metrics.
    #[serde(flatten)]
    pub quality: QualityMetrics<Option<f64>>,
    /// Serving metrics.
    #[serde(flatten)]
    pub serving: ServingMetrics,
    /// Resource metrics.
    #[serde(flatten)]
    pub resources: ResourceMetrics,
    /// Label coverage and delay.
    #[serde(flatten)]
    pub labels: LabelMetrics,
    /// Predictions in the span.
    pub sample_count: u64,
    /// Labeled predictions in the span.
    pub labeled_count: u64,
}

/// A segment as a summary names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentName {
    /// The segment key.
    pub key: String,
    /// Its value (`__other__`: the values past the key's cap of the day).
    pub value: String,
}

impl SegmentName {
    /// The name of a segment slice.
    pub fn of(slice: &Slice) -> Option<Self> {
        slice.segment_pair().map(|(key, value)| Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The answer of the summary route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceSummary {
    /// The model.
    pub model_id: ModelId,
    /// The version whose slice the summary is of; absent for the whole model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The segment whose slice the summary is of; absent for the whole model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentName>,
    /// The window asked for.
    pub window: Window,
    /// The series granularity.
    pub granularity: Granularity,
    /// The task's quality metrics, each with baseline and trend.
    pub quality_metrics: QualityMetrics<QualityValue>,
    /// Serving metrics of the window.
    pub serving_metrics: ServingMetrics,
    /// Resource metrics of the window.
    pub resource_metrics: ResourceMetrics,
    /// Label coverage and delay of the window's predictions.
    pub label_metrics: LabelMetrics,
    /// Performance estimated without labels against the reference window.
    pub estimation: EstimationSummary,
    /// Prediction drift against the reference window.
    pub drift: DriftSummary,
    /// Predictions in the window.
    pub sample_count: u64,
    /// Labeled predictions in the window.
    pub labeled_count: u64,
    /// What the window counts under the overflow bucket `__other__` (class labels and
    /// error types beyond their caps); all zero when it is not in use.
    pub overflow: OverflowCounts,
    /// The window at `granularity`, ascending.
    pub series: Vec<SeriesPoint>,
    /// The span the current values cover: the window widened at its start to whole
    /// rollups (not part of the answer).
    #[serde(skip)]
    pub covered: TimeSpan,
}

/// Reads the metrics of any window `[from, to)` from the rollups: whole days, whole
/// hours and minute edges (see the module documentation).
#[derive(Debug, Clone)]
pub struct WindowReader<S> {
    /// The rollups.
    pub rollups: S,
    /// How long minute rollups are kept after their start; older edges are read
    /// from hour rollups.
    pub minute_retention: TimeDelta,
}

impl<S: RollupStore> WindowReader<S> {
    /// The start a window from `from` to `to` is read from: `from`'s minute while
    /// minute rollups are kept there, else its hour.
    pub fn readable_start(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let minute = Granularity::Minute.floor(from);
        if minute + self.minute_retention > to {
            minute
        } else {
            Granularity::Hour.floor(from)
        }
    }

    /// The metrics of the model over `[from, to)`, `from` widened to
    /// [`readable_start`](Self::readable_start); returns them with the span covered.
    pub async fn metrics(
        &self,
        key: ModelRef<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first_seen: Option<DateTime<Utc>>,
    ) -> StoreResult<(MetricSet, TimeSpan)> {
        let (state, covered) = self.state(key, TimeSpan::new(from, to)).await?;
        Ok((MetricSet::compute(&state, covered, first_seen), covered))
    }

    /// The merged state of the model over `span`, its start widened to
    /// [`readable_start`](Self::readable_start), with the span covered.
    pub async fn state(
        &self,
        key: ModelRef<'_>,
        span: TimeSpan,
    ) -> StoreResult<(WindowState, TimeSpan)> {
        let TimeSpan {
            start: from,
            end: to,
        } = span;
        let start = self.readable_start(from, to);
        let mut parts = Vec::new();
        for (granularity, span) in compose(start, to) {
            parts.extend(self.rollups.rollups(key, granularity, span).await?);
        }
        let state = WindowState::merged(parts.into_iter().map(|r| r.state))
            .map_err(|e| StoreError::inconsistent(format!("rollups of {key}"), e))?;
        Ok((state, TimeSpan { start, end: to }))
    }

    /// `model`'s reference window prepared for comparisons: from `snapshot` (kept with
    /// the model's settings by `evaluate`) when it covers `reference`, else merged from
    /// the rollups.
    pub async fn reference_fit(
        &self,
        model: &RegisteredModel,
        reference: Option<Reference>,
        snapshot: Option<&ReferenceSnapshot>,
    ) -> StoreResult<ReferenceFit> {
        let Some(reference) = reference else {
            return Ok(ReferenceFit::of(model.task, None));
        };
        if let Some(snapshot) = snapshot.filter(|s| s.covers(&reference)) {
            let state = snapshot.state().map_err(|e| StoreError::Corrupt {
                key: format!("reference snapshot of {}/{}", model.tenant, model.model_id),
                reason: e.to_string(),
            })?;
            return Ok(ReferenceFit::of(model.task, Some(&state)));
        }
        let (state, _) = self.state(model.key(), reference.span()).await?;
        Ok(ReferenceFit::of(model.task, Some(&state)))
    }

    /// `model`'s metrics per `granularity` span from the span holding `span.start` to
    /// the one holding `span.end` (the last one ends there), with each span's start;
    /// when `reference` is given, a span with too few labels to be a trend point of its
    /// own ([`MIN_POINT_SAMPLES`]) is compared with it (the estimates stand in there).
    pub async fn series(
        &self,
        model: &RegisteredModel,
        granularity: Granularity,
        span: TimeSpan,
        reference: Option<&ReferenceFit>,
    ) -> StoreResult<Vec<(DateTime<Utc>, MetricSet)>> {
        let key = model.key();
        let (from, to, first_seen) = (span.start, span.end, Some(model.first_seen));
        let g = granularity;
        let series_start = g.floor(from);
        let rollups = self
            .rollups
            .rollups(key, g, TimeSpan::new(series_start, to))
            .await?;
        let mut rollups = rollups.into_iter().peekable();
        let mut series = Vec::new();
        let mut point_start = series_start;
        while point_start < to {
            let point_end = (point_start + g.length()).min(to);
            let mut parts = Vec::new();
            while let Some(rollup) = rollups.next_if(|r| r.start < point_end) {
                parts.push(rollup.state);
            }
            let state = WindowState::merged(parts)
                .map_err(|e| StoreError::inconsistent(format!("rollups of {key}"), e))?;
            let span = TimeSpan {
                start: point_start,
                end: point_end,
            };
            let mut metrics = MetricSet::compute(&state, span, first_seen);
            if let Some(reference) = reference.filter(|_| metrics.labeled < MIN_POINT_SAMPLES) {
                metrics = metrics.with_comparison(&reference.compare(&state));
            }
            series.push((point_start, metrics));
            point_start += g.length();
        }
        Ok(series)
    }
}

/// The summary service over the rollups and the model settings (baselines and
/// trends), for a model already looked up in the registry (tenant scoping is the
/// caller's).
#[derive(Debug, Clone)]
pub struct SummaryService<S, M> {
    /// The rollups.
    pub window: WindowReader<S>,
    /// Baselines and trends.
    pub settings: M,
}

impl<S: RollupStore, M: ModelSettingsStore> SummaryService<S, M> {
    /// The summary of `model`, already looked up in the registry (its tenant's).
    pub async fn summary_of(
        &self,
        model: &RegisteredModel,
        query: SummaryQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<PerformanceSummary> {
        let settings = self.settings.model_settings(model.key()).await?;
        // A slice reads its own series; baselines, trends and the reference window
        // stay the model's (what a version is compared with).
        let sliced = sliced(model, query.slice.as_ref());
        let first_seen = Some(model.first_seen);
        let from = now - query.window.length();
        let (state, covered) = self
            .window
            .state(sliced.key(), TimeSpan::new(from, now))
            .await?;
        let current = MetricSet::compute(&state, covered, first_seen);
        let reference = settings.baselines.reference();
        let fit = self
            .window
            .reference_fit(model, reference, settings.reference.as_ref())
            .await?;
        let compared = Compared {
            reference,
            comparison: fit.compare(&state),
        };
        let series = self
            .window
            .series(
                &sliced,
                query.granularity,
                TimeSpan::new(covered.start, now),
                None,
            )
            .await?
            .into_iter()
            .map(|(timestamp, m)| SeriesPoint {
                timestamp,
                quality: QualityMetrics::of(model.task, |name| m.get(name)),
                serving: ServingMetrics::of(&m),
                resources: ResourceMetrics::of(&m),
                labels: LabelMetrics::of(&m),
                sample_count: m.predictions,
                labeled_count: m.labeled,
            })
            .collect();
        let quality_metrics = QualityMetrics::of(model.task, |name| {
            let estimated = compared.estimated(name);
            QualityValue {
                current: current.get(name),
                baseline: settings.baselines.registered_quality(name),
                trend: settings.trends.as_ref().and_then(|t| t.label(name)),
                estimated: estimated.map(|e| e.value),
                estimated_ci: estimated.map(|e| [e.low, e.high]),
            }
        });
        Ok(PerformanceSummary {
            model_id: model.model_id.clone(),
            model_version: query
                .slice
                .as_ref()
                .and_then(Slice::model_version)
                .map(str::to_owned),
            segment: query.slice.as_ref().and_then(SegmentName::of),
            window: query.window,
            granularity: query.granularity,
            quality_metrics,
            serving_metrics: ServingMetrics::of(&current),
            resource_metrics: ResourceMetrics::of(&current),
            label_metrics: LabelMetrics::of(&current),
            estimation: compared.estimation(),
            drift: compared.drift(),
            sample_count: current.predictions,
            labeled_count: current.labeled,
            overflow: current.overflow,
            series,
            covered,
        })
    }
}

/// `model` as the rollups of `slice` are keyed (its series id), or itself.
pub(crate) fn sliced(model: &RegisteredModel, slice: Option<&Slice>) -> RegisteredModel {
    match slice {
        None => model.clone(),
        Some(slice) => RegisteredModel {
            model_id: model.model_id.series(slice),
            ..model.clone()
        },
    }
}

/// The rollup reads that cover `[start, end)` (`start` aligned to the finest
/// granularity available there) with the fewest rollups: whole days, then whole hours,
/// then minutes at the edges. Each read takes the rollups whose start lies in its span.
fn compose(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(Granularity, TimeSpan)> {
    let mut reads = Vec::new();
    cover(start, end, &Granularity::ALL, &mut reads);
    reads
}

/// Adds the reads covering `[start, end)` with `levels` (finest first) to `reads`,
/// in time order.
fn cover(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    levels: &[Granularity],
    reads: &mut Vec<(Granularity, TimeSpan)>,
) {
    if start >= end {
        return;
    }
    let Some((&coarsest, finer)) = levels.split_last() else {
        return;
    };
    let floor_start = coarsest.floor(start);
    let inner_start = if floor_start == start {
        start
    } else {
        floor_start + coarsest.length()
    };
    let inner_end = coarsest.floor(end);
    if finer.is_empty() {
        reads.push((coarsest, TimeSpan { start, end }));
        return;
    }
    if inner_start >= inner_end {
        cover(start, end, finer, reads);
        return;
    }
    cover(start, inner_start, finer, reads);
    reads.push((
        coarsest,
        TimeSpan {
            start: inner_start,
            end: inner_end,
        },
    ));
    cover(inner_end, end, finer, reads);
}

pub mod slices;

#[cfg(test)]
mod tests;

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

use crate::domain::Granularity;
use crate::domain::alerting::trends::TrendLabel;
use crate::domain::ids::{ModelId, TenantId};
use crate::domain::{MetricName, MetricSet, OverflowCounts, Task, TimeSpan, WindowState};
use crate::error::StoreError;
use crate::ports::{ModelRegistry, ModelSettingsStore, RegisteredModel, RollupStore};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryQuery {
    /// The window.
    pub window: Window,
    /// The series granularity.
    pub granularity: Granularity,
}

impl SummaryQuery {
    /// Reads the query parameters (`window`, `granularity`, each at most once);
    /// anything else is refused.
    pub fn parse<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InvalidParameter> {
        let [window, granularity] = single_values(params, ["window", "granularity"])?;
        let window = match window {
            None => Window::Hours24,
            Some(value) => Window::ALL
                .into_iter()
                .find(|w| w.as_str() == value)
                .ok_or_else(|| {
                    InvalidParameter::value(
                        "window",
                        value,
                        "is not a known window",
                        Window::ALL.map(Window::as_str).to_vec(),
                    )
                })?,
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
        })
    }
}

/// Why no summary was made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The tenant has no such model (also when another tenant has one by that id).
    #[error("no such model")]
    UnknownModel,
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Predictions in the span.
    pub sample_count: u64,
    /// Labeled predictions in the span.
    pub labeled_count: u64,
}

/// The answer of the summary route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceSummary {
    /// The model.
    pub model_id: ModelId,
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
#[derive(Debug, Clone, Copy)]
pub struct WindowReader<'a, S> {
    /// The rollups.
    pub rollups: &'a S,
    /// How long minute rollups are kept after their start; older edges are read
    /// from hour rollups.
    pub minute_retention: TimeDelta,
}

impl<S: RollupStore> WindowReader<'_, S> {
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
        tenant: &TenantId,
        model_id: &ModelId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first_seen: Option<DateTime<Utc>>,
    ) -> Result<(MetricSet, TimeSpan), StoreError> {
        let start = self.readable_start(from, to);
        let mut parts = Vec::new();
        for (granularity, span) in compose(start, to) {
            parts.extend(
                self.rollups
                    .rollups(tenant, model_id, granularity, span.start, span.end)
                    .await?,
            );
        }
        let state = WindowState::merged(parts.iter().map(|r| &r.state))
            .map_err(|e| StoreError::inconsistent(format!("rollups of {tenant}/{model_id}"), e))?;
        let covered = TimeSpan { start, end: to };
        Ok((MetricSet::compute(&state, covered, first_seen), covered))
    }

    /// One metric set per `granularity` span from the span holding `from` to the one
    /// holding `to` (the last one ends at `to`), with each span's start.
    pub async fn series(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first_seen: Option<DateTime<Utc>>,
    ) -> Result<Vec<(DateTime<Utc>, MetricSet)>, StoreError> {
        let g = granularity;
        let series_start = g.floor(from);
        let rollups = self
            .rollups
            .rollups(tenant, model_id, g, series_start, to)
            .await?;
        let mut rollups = rollups.iter().peekable();
        let mut series = Vec::new();
        let mut point_start = series_start;
        while point_start < to {
            let point_end = (point_start + g.length()).min(to);
            let mut parts = Vec::new();
            while let Some(rollup) = rollups.next_if(|r| r.start < point_end) {
                parts.push(&rollup.state);
            }
            let state = WindowState::merged(parts).map_err(|e| {
                StoreError::inconsistent(format!("rollups of {tenant}/{model_id}"), e)
            })?;
            let span = TimeSpan {
                start: point_start,
                end: point_end,
            };
            series.push((point_start, MetricSet::compute(&state, span, first_seen)));
            point_start += g.length();
        }
        Ok(series)
    }
}

/// The summary service over the registry, the rollups and the model settings
/// (baselines and trends).
#[derive(Debug, Clone, Copy)]
pub struct SummaryService<'a, R, S, M> {
    /// The model registry (task, first seen; tenant scoping).
    pub registry: &'a R,
    /// The rollups.
    pub window: WindowReader<'a, S>,
    /// Baselines and trends.
    pub settings: &'a M,
}

impl<R: ModelRegistry, S: RollupStore, M: ModelSettingsStore> SummaryService<'_, R, S, M> {
    /// The summary of the tenant's `model_id` for `query` at `now`.
    pub async fn summary(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        query: SummaryQuery,
        now: DateTime<Utc>,
    ) -> Result<PerformanceSummary, SummaryError> {
        let model = self
            .registry
            .model(tenant, model_id)
            .await?
            .ok_or(SummaryError::UnknownModel)?;
        Ok(self.summary_of(&model, query, now).await?)
    }

    /// The summary of `model`, already looked up in the registry (its tenant's).
    pub async fn summary_of(
        &self,
        model: &RegisteredModel,
        query: SummaryQuery,
        now: DateTime<Utc>,
    ) -> Result<PerformanceSummary, StoreError> {
        let (tenant, model_id) = (&model.tenant, &model.model_id);
        let settings = self.settings.model_settings(tenant, model_id).await?;
        let first_seen = Some(model.first_seen);
        let from = now - query.window.length();
        let (current, covered) = self
            .window
            .metrics(tenant, model_id, from, now, first_seen)
            .await?;
        let series = self
            .window
            .series(
                tenant,
                model_id,
                query.granularity,
                covered.start,
                now,
                first_seen,
            )
            .await?
            .into_iter()
            .map(|(timestamp, m)| SeriesPoint {
                timestamp,
                quality: QualityMetrics::of(model.task, |name| m.get(name)),
                serving: ServingMetrics::of(&m),
                resources: ResourceMetrics::of(&m),
                sample_count: m.predictions,
                labeled_count: m.labeled,
            })
            .collect();
        let quality_metrics = QualityMetrics::of(model.task, |name| QualityValue {
            current: current.get(name),
            baseline: settings.baselines.registered_quality(name),
            trend: settings.trends.as_ref().and_then(|t| t.label(name)),
        });
        Ok(PerformanceSummary {
            model_id: model.model_id.clone(),
            window: query.window,
            granularity: query.granularity,
            quality_metrics,
            serving_metrics: ServingMetrics::of(&current),
            resource_metrics: ResourceMetrics::of(&current),
            sample_count: current.predictions,
            labeled_count: current.labeled,
            overflow: current.overflow,
            series,
            covered,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{
        MemoryModelRegistry, MemoryModelSettings, MemoryPartialStore, MemoryRollupStore,
    };
    use crate::adapters::timestream::TimestreamArchive;
    use crate::aggregate::roll_up;
    use crate::domain::ValidBatch;
    use crate::domain::WindowState;
    use crate::ingest::{BatchLimits, IngestService, parse_batch};
    use serde_json::{Value, json};

    type Ingest = IngestService<MemoryModelRegistry, MemoryPartialStore, TimestreamArchive>;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    fn model(name: &str) -> ModelId {
        ModelId::parse(name).expect("model")
    }

    /// Ingest accepting 40-day-old events, so the 30-day window has old data.
    fn limits() -> BatchLimits {
        BatchLimits {
            max_age: TimeDelta::days(40),
            ..BatchLimits::default()
        }
    }

    fn ingest_service() -> Ingest {
        IngestService {
            registry: MemoryModelRegistry::default(),
            partials: MemoryPartialStore::default(),
            archive: None,
            limits: limits(),
        }
    }

    /// A regression batch: one prediction per time (dyadic values, so sums are exact
    /// in any order), every fifth an error, and a resource sample every third time.
    fn regression_body(batch_id: &str, times: &[DateTime<Utc>]) -> Vec<u8> {
        let predictions: Vec<Value> = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let actual = [1.0, 2.0, 4.0][i % 3];
                if i % 5 == 4 {
                    json!({"timestamp": t.to_rfc3339(), "latency_ms": 300 + i % 7, "status": "error", "error_type": "timeout"})
                } else {
                    json!({"timestamp": t.to_rfc3339(), "latency_ms": 2 + i % 50, "status": "ok",
                           "predicted": actual + (i % 4) as f64 * 0.25, "actual": actual})
                }
            })
            .collect();
        let resources: Vec<Value> = times
            .iter()
            .step_by(3)
            .enumerate()
            .map(|(i, t)| {
                let cpu = [0.25, 0.5, 0.75][i % 3];
                json!({"timestamp": t.to_rfc3339(), "cpu_utilization": cpu,
                       "memory_utilization": 0.5, "queue_depth": i % 9, "cache_hits": i % 4, "cache_misses": 1})
            })
            .collect();
        json!({"model_id": "m1", "batch_id": batch_id, "task": "regression",
               "predictions": predictions, "resources": resources})
        .to_string()
        .into_bytes()
    }

    /// The records of the test, ingested and rolled up at `now`.
    struct Fixture {
        ingest: Ingest,
        rollups: MemoryRollupStore,
        settings: MemoryModelSettings,
        batches: Vec<ValidBatch>,
        now: DateTime<Utc>,
    }

    impl Fixture {
        fn service(
            &self,
        ) -> SummaryService<'_, MemoryModelRegistry, MemoryRollupStore, MemoryModelSettings>
        {
            SummaryService {
                registry: &self.ingest.registry,
                window: WindowReader {
                    rollups: &self.rollups,
                    minute_retention: TimeDelta::days(8),
                },
                settings: &self.settings,
            }
        }

        /// The engine's state over the records with a time in `span`.
        fn state_in(&self, span: TimeSpan) -> WindowState {
            let inside = |t: DateTime<Utc>| span.start <= t && t < span.end;
            let mut state = WindowState::default();
            for batch in &self.batches {
                for p in batch
                    .predictions
                    .iter()
                    .filter(|p| inside(p.record.timestamp))
                {
                    state.fold_prediction(&p.record).expect("fold");
                }
                for r in batch.resources.iter().filter(|r| inside(r.timestamp)) {
                    state.fold_resource(r).expect("fold");
                }
            }
            state
        }

        async fn first_seen(&self) -> Option<DateTime<Utc>> {
            let m = self
                .ingest
                .registry
                .model(&tenant("t1"), &model("m1"))
                .await;
            m.expect("read").map(|m| m.first_seen)
        }
    }

    /// Regression records over 31 days before `now` (every 37 minutes), plus records
    /// just around each window's start and its hour, all in closed minutes.
    async fn fixture() -> Fixture {
        let now = at("2026-11-28T12:34:56.789Z");
        let open_minute = Granularity::Minute.floor(now);
        let mut times: Vec<DateTime<Utc>> = (1..1_210)
            .map(|i| open_minute - TimeDelta::minutes(37 * i) + TimeDelta::seconds(i % 60))
            .collect();
        for window in Window::ALL {
            let from = now - window.length();
            for offset in [-90, -20, -1, 0, 1, 20, 90] {
                times.push(from + TimeDelta::seconds(offset));
            }
            times.push(Granularity::Hour.floor(from) + TimeDelta::seconds(5));
        }
        times.push(open_minute - TimeDelta::seconds(1));
        times.retain(|t| *t > now - TimeDelta::days(39));
        let ingest = ingest_service();
        let mut batches = Vec::new();
        for (i, chunk) in times.chunks(400).enumerate() {
            let body = regression_body(&format!("b{i}"), chunk);
            batches.push(parse_batch(&body, now, &limits()).expect("valid batch"));
            ingest
                .ingest(&tenant("t1"), &body, now)
                .await
                .expect("accepted");
        }
        let rollups = MemoryRollupStore::default();
        roll_up(&ingest.partials, &rollups, now, &[])
            .await
            .expect("roll up");
        Fixture {
            ingest,
            rollups,
            settings: MemoryModelSettings::default(),
            batches,
            now,
        }
    }

    fn close(a: Option<f64>, b: Option<f64>, what: &str) {
        match (a, b) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                "{what}: {x} != {y}"
            ),
            (x, y) => assert_eq!(x, y, "{what}"),
        }
    }

    /// Every metric the summary shows, as (name, value), from its JSON form.
    fn flat_values(json: &Value) -> Vec<(String, Option<f64>)> {
        let mut values = Vec::new();
        for (name, v) in json.as_object().expect("object") {
            let v = if v.is_object() { &v["current"] } else { v };
            values.push((name.clone(), v.as_f64()));
        }
        values
    }

    fn assert_same_metrics(shown: &Value, engine: &MetricSet, what: &str) {
        let expected = serde_json::to_value(engine).expect("json");
        let values = flat_values(shown);
        assert!(!values.is_empty(), "{what}");
        for (name, value) in values {
            close(value, expected[&name].as_f64(), &format!("{what} {name}"));
        }
    }

    #[tokio::test]
    async fn current_values_and_series_equal_the_engine_for_every_window_and_granularity() {
        let f = fixture().await;
        let first_seen = f.first_seen().await;
        for window in Window::ALL {
            for granularity in Granularity::ALL.into_iter().filter(|g| window.allows(*g)) {
                let what = format!("{} {}", window.as_str(), granularity.as_str());
                let summary = f
                    .service()
                    .summary(
                        &tenant("t1"),
                        &model("m1"),
                        SummaryQuery {
                            window,
                            granularity,
                        },
                        f.now,
                    )
                    .await
                    .expect("summary");
                let from = f.now - window.length();
                let expected_start = if window == Window::Days30 {
                    Granularity::Hour.floor(from)
                } else {
                    Granularity::Minute.floor(from)
                };
                assert_eq!(summary.covered.start, expected_start, "{what}");
                assert_eq!(summary.covered.end, f.now, "{what}");
                let engine =
                    MetricSet::compute(&f.state_in(summary.covered), summary.covered, first_seen);
                assert!(
                    engine.predictions > 5,
                    "{what}: the fixture fills the window"
                );
                assert_eq!(summary.sample_count, engine.predictions, "{what}");
                assert_eq!(summary.labeled_count, engine.labeled, "{what}");
                let json = serde_json::to_value(&summary).expect("json");
                for part in ["quality_metrics", "serving_metrics", "resource_metrics"] {
                    assert_same_metrics(&json[part], &engine, &format!("{what} {part}"));
                }

                let step = granularity.length();
                let first = granularity.floor(summary.covered.start);
                let points = json["series"].as_array().expect("series");
                assert_eq!(summary.series.len(), points.len());
                let expected_len = (f.now - first).num_seconds().div_euclid(step.num_seconds()) + 1;
                assert_eq!(points.len() as i64, expected_len, "{what}");
                for (i, (point, shown)) in summary.series.iter().zip(points).enumerate() {
                    let start = first + step * i32::try_from(i).expect("small");
                    assert_eq!(point.timestamp, start, "{what} point {i}");
                    let span = TimeSpan {
                        start,
                        end: (start + step).min(f.now),
                    };
                    let engine = MetricSet::compute(&f.state_in(span), span, first_seen);
                    assert_eq!(shown["sample_count"], engine.predictions, "{what} {i}");
                    assert_eq!(shown["labeled_count"], engine.labeled, "{what} {i}");
                    let mut metrics = shown.clone();
                    for key in ["timestamp", "sample_count", "labeled_count"] {
                        metrics.as_object_mut().expect("object").remove(key);
                    }
                    assert_eq!(metrics.as_object().expect("object").len(), 13, "{what}");
                    assert_same_metrics(&metrics, &engine, &format!("{what} point {i}"));
                }
            }
        }
    }

    #[test]
    fn the_current_values_compose_days_hours_and_minute_edges() {
        let reads = compose(at("2026-10-29T12:34:00Z"), at("2026-11-28T12:34:56Z"));
        let shown: Vec<(Granularity, String, String)> = reads
            .iter()
            .map(|(g, s)| (*g, s.start.to_rfc3339(), s.end.to_rfc3339()))
            .collect();
        let row = |g, a: &str, b: &str| (g, at(a).to_rfc3339(), at(b).to_rfc3339());
        assert_eq!(
            shown,
            [
                row(
                    Granularity::Minute,
                    "2026-10-29T12:34:00Z",
                    "2026-10-29T13:00:00Z"
                ),
                row(
                    Granularity::Hour,
                    "2026-10-29T13:00:00Z",
                    "2026-10-30T00:00:00Z"
                ),
                row(
                    Granularity::Day,
                    "2026-10-30T00:00:00Z",
                    "2026-11-28T00:00:00Z"
                ),
                row(
                    Granularity::Hour,
                    "2026-11-28T00:00:00Z",
                    "2026-11-28T12:00:00Z"
                ),
                row(
                    Granularity::Minute,
                    "2026-11-28T12:00:00Z",
                    "2026-11-28T12:34:56Z"
                ),
            ]
        );
        let within_a_day = compose(at("2026-11-28T10:00:00Z"), at("2026-11-28T11:00:00Z"));
        assert_eq!(within_a_day.len(), 1);
        assert_eq!(within_a_day[0].0, Granularity::Hour);
    }

    #[tokio::test]
    async fn absent_metrics_are_null_and_keys_follow_the_task() {
        let f = fixture().await;
        let query = SummaryQuery::parse([("window", "1h")]).expect("valid");
        let summary = f
            .service()
            .summary(&tenant("t1"), &model("m1"), query, f.now)
            .await
            .expect("summary");
        let json = serde_json::to_value(&summary).expect("json");
        let keys =
            |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
        assert_eq!(keys(&json["quality_metrics"]), ["rmse", "mae", "mape"]);
        assert_eq!(
            json["quality_metrics"]["rmse"]["baseline"],
            Value::Null,
            "no baseline yet"
        );
        assert_eq!(json["quality_metrics"]["rmse"]["trend"], Value::Null);
        assert_eq!(json["resource_metrics"]["gpu_utilization"], Value::Null);
        assert_eq!(json["window"], "1h");
        assert_eq!(json["granularity"], "minute");
        assert!(
            json["series"]
                .as_array()
                .expect("series")
                .iter()
                .any(|p| p["sample_count"] == 0 && p["latency_p50_ms"].is_null()),
            "an empty minute shows nulls"
        );

        // A multiclass model: classification keys, AUC null (binary only).
        let body = json!({"model_id": "m2", "batch_id": "c1", "task": "multiclass_classification",
            "predictions": [
                {"timestamp": "2026-11-28T12:00:01Z", "latency_ms": 4, "status": "ok", "predicted": "a", "actual": "a"},
                {"timestamp": "2026-11-28T12:00:02Z", "latency_ms": 6, "status": "ok", "predicted": "b", "actual": "a"}]})
        .to_string();
        f.ingest
            .ingest(&tenant("t1"), body.as_bytes(), f.now)
            .await
            .expect("accepted");
        roll_up(&f.ingest.partials, &f.rollups, f.now, &[])
            .await
            .expect("roll up");
        let summary = f
            .service()
            .summary(&tenant("t1"), &model("m2"), query, f.now)
            .await
            .expect("summary");
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(
            keys(&json["quality_metrics"]),
            ["accuracy", "f1_score", "auc_roc"]
        );
        assert_eq!(json["quality_metrics"]["accuracy"]["current"], 0.5);
        assert_eq!(json["quality_metrics"]["auc_roc"]["current"], Value::Null);
        assert_eq!(json["resource_metrics"]["cpu_utilization"], Value::Null);
        assert_eq!(json["sample_count"], 2);
    }

    #[tokio::test]
    async fn another_tenants_model_is_unknown() {
        let f = fixture().await;
        let query = SummaryQuery::parse([]).expect("defaults");
        for (t, m) in [("t2", "m1"), ("t1", "nope")] {
            let answer = f
                .service()
                .summary(&tenant(t), &model(m), query, f.now)
                .await;
            assert!(
                matches!(answer, Err(SummaryError::UnknownModel)),
                "{t}/{m}: {answer:?}"
            );
        }
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = SummaryQuery::parse([]).expect("defaults");
        assert_eq!(
            (q.window, q.granularity),
            (Window::Hours24, Granularity::Hour)
        );
        for (window, granularity) in [
            ("1h", Granularity::Minute),
            ("6h", Granularity::Minute),
            ("24h", Granularity::Hour),
            ("7d", Granularity::Hour),
            ("30d", Granularity::Day),
        ] {
            let q = SummaryQuery::parse([("window", window)]).expect("valid");
            assert_eq!(q.granularity, granularity, "{window}");
        }
        let q = SummaryQuery::parse([("granularity", "minute"), ("window", "24h")]).expect("ok");
        assert_eq!(q.granularity, Granularity::Minute);

        let err = SummaryQuery::parse([("window", "2h")]).expect_err("unknown window");
        assert_eq!(err.parameter, "window");
        assert_eq!(err.allowed, ["1h", "6h", "24h", "7d", "30d"]);
        let err = SummaryQuery::parse([("window", "7d"), ("granularity", "minute")])
            .expect_err("minute for 7d");
        assert_eq!(err.parameter, "granularity");
        assert_eq!(err.allowed, ["hour", "day"]);
        let err = SummaryQuery::parse([("granularity", "second")]).expect_err("unknown");
        assert_eq!(err.allowed, ["minute", "hour", "day"]);
        let err = SummaryQuery::parse([("window", "1h"), ("limit", "3")]).expect_err("unknown");
        assert_eq!(err.parameter, "limit");
        let err = SummaryQuery::parse([("window", "1h"), ("window", "6h")]).expect_err("twice");
        assert_eq!(err.parameter, "window");
    }
}

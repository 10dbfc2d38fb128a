//! Exports after each run: the closed minutes' metrics to CloudWatch and Prometheus.
//!
//! Every exporter keeps a cursor per model (`through`: the end of the last minute it
//! delivered) next to what aggregation has rolled (`rolled_through`). A run exports
//! every model whose cursor lags — those rolled in this run and those whose earlier
//! export failed — and advances the cursor only after delivery, so a failed export is
//! retried on the next run and loses nothing. A receiver that refuses data as invalid
//! (a 4xx other than 429) is logged and the cursor advanced: resending would fail again.
//!
//! Values come from [`MetricSet`], the one definition of every metric. Gauges are
//! stamped with their minute's end; Prometheus counters and the latency summary's
//! `_sum`/`_count` are cumulative since the model's first prediction, read from the
//! counter totals stored with the rollups, stamped with the export time (so they only
//! go forward in time and value, also across late data and retried runs).

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use super::rollup::merge_all;
use crate::adapters::cloudwatch::{CloudWatchDatum, CloudWatchExporter, MetricUnit};
use aws_config::SdkConfig;

use crate::adapters::remote_write::{
    RemoteWriteClient, RemoteWriteSetupError, RetryPolicy, Series,
};
use crate::config::Config;
use crate::domain::CounterTotals;
use crate::domain::Granularity;
use crate::domain::ids::{ModelId, TenantId};
use crate::domain::{MetricSet, TimeSpan};
use crate::error::StoreError;
use crate::ports::{ExportCursor, ExportCursors, RollupStore};

/// At most this much backlog is exported for one model in one run (a model whose
/// exports failed for longer catches up with its latest hour).
const MAX_BACKLOG: TimeDelta = TimeDelta::hours(1);
/// Models read at once while preparing an export.
const CONCURRENT_MODELS: usize = 8;

/// One model's closed minutes and counters, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelExport {
    /// The tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// Each closed minute's start and metrics, ascending.
    pub minutes: Vec<(DateTime<Utc>, MetricSet)>,
    /// Counters since the model's first prediction.
    pub totals: CounterTotals,
    /// The counters' timestamp.
    pub as_of: DateTime<Utc>,
    /// The cursor position this export reaches when delivered.
    pub through: DateTime<Utc>,
}

/// Why an export did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// The receiver is unavailable: keep the cursor, retry next run.
    #[error("receiver unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The receiver refused the data as invalid: log it and move on.
    #[error("receiver refused the data")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A metrics receiver.
pub trait MetricsExporter: Send + Sync {
    /// Its name, which keys its cursors (`cloudwatch`, `prometheus`).
    fn name(&self) -> &'static str;

    /// Delivers the exports.
    fn export(
        &self,
        models: &[ModelExport],
    ) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

/// What one exporter did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// The exporter.
    pub exporter: &'static str,
    /// Models whose cursors lagged.
    pub models: usize,
    /// Minutes exported (summed over models).
    pub minutes: usize,
    /// `delivered`, `retry_next_run` or `rejected`.
    pub outcome: &'static str,
}

/// Exports every lagging model of `exporter` with counters stamped `as_of`, and
/// advances the cursors it delivered.
pub async fn export_lagging<R, E>(
    rollups: &R,
    exporter: &E,
    as_of: DateTime<Utc>,
) -> Result<ExportReport, StoreError>
where
    R: RollupStore + ExportCursors,
    E: MetricsExporter,
{
    let cursors = rollups.lagging_cursors(exporter.name()).await?;
    let exports: Vec<ModelExport> = stream::iter(&cursors)
        .map(|cursor| prepare(rollups, cursor, as_of))
        .buffered(CONCURRENT_MODELS)
        .try_collect()
        .await?;
    let minutes = exports.iter().map(|e| e.minutes.len()).sum();
    let outcome = match exporter.export(&exports).await {
        Ok(()) => "delivered",
        Err(ExportFailure::Rejected(err)) => {
            tracing::error!(exporter = exporter.name(), error = %err, "export refused; skipping these minutes");
            "rejected"
        }
        Err(ExportFailure::Unavailable(err)) => {
            tracing::warn!(exporter = exporter.name(), error = %err, "export failed; retrying next run");
            return Ok(ExportReport {
                exporter: exporter.name(),
                models: cursors.len(),
                minutes,
                outcome: "retry_next_run",
            });
        }
    };
    for (cursor, export) in cursors.iter().zip(&exports) {
        rollups
            .advance_cursor(exporter.name(), cursor, export.through)
            .await?;
    }
    Ok(ExportReport {
        exporter: exporter.name(),
        models: cursors.len(),
        minutes,
        outcome,
    })
}

/// Reads one lagging model's closed minutes and counters.
async fn prepare<R: RollupStore>(
    rollups: &R,
    cursor: &ExportCursor,
    as_of: DateTime<Utc>,
) -> Result<ModelExport, StoreError> {
    let to = cursor.rolled_through;
    let from = cursor
        .through
        .map_or(to - MAX_BACKLOG, |t| t.max(to - MAX_BACKLOG));
    let minutes = rollups
        .rollups(
            &cursor.tenant,
            &cursor.model_id,
            Granularity::Minute,
            from,
            to,
        )
        .await?
        .into_iter()
        .map(|rollup| {
            let state = merge_all([rollup.state.as_slice()], || {
                format!(
                    "minute rollup {}/{} at {}",
                    cursor.tenant, cursor.model_id, rollup.start
                )
            })?;
            let span = TimeSpan {
                start: rollup.start,
                end: rollup.start + Granularity::Minute.length(),
            };
            Ok((rollup.start, MetricSet::compute(&state, span, None)))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(ModelExport {
        tenant: cursor.tenant.clone(),
        model_id: cursor.model_id.clone(),
        minutes,
        totals: rollups
            .counter_totals(&cursor.tenant, &cursor.model_id)
            .await?,
        as_of,
        through: to,
    })
}

/// The gauges of a metric set by their export names (the [`MetricSet`] field names).
fn gauges(metrics: &MetricSet) -> [(&'static str, Option<f64>, MetricUnit); 16] {
    [
        ("accuracy", metrics.accuracy, MetricUnit::None),
        ("f1_score", metrics.f1_score, MetricUnit::None),
        ("auc_roc", metrics.auc_roc, MetricUnit::None),
        ("rmse", metrics.rmse, MetricUnit::None),
        ("mae", metrics.mae, MetricUnit::None),
        ("mape", metrics.mape, MetricUnit::None),
        (
            "latency_p50_ms",
            metrics.latency_p50_ms,
            MetricUnit::Milliseconds,
        ),
        (
            "latency_p95_ms",
            metrics.latency_p95_ms,
            MetricUnit::Milliseconds,
        ),
        (
            "latency_p99_ms",
            metrics.latency_p99_ms,
            MetricUnit::Milliseconds,
        ),
        (
            "throughput_rps",
            metrics.throughput_rps,
            MetricUnit::CountPerSecond,
        ),
        ("error_rate", metrics.error_rate, MetricUnit::None),
        ("queue_depth", metrics.queue_depth, MetricUnit::Count),
        ("cpu_utilization", metrics.cpu_utilization, MetricUnit::None),
        (
            "memory_utilization",
            metrics.memory_utilization,
            MetricUnit::None,
        ),
        ("gpu_utilization", metrics.gpu_utilization, MetricUnit::None),
        (
            "model_cache_hit_rate",
            metrics.model_cache_hit_rate,
            MetricUnit::None,
        ),
    ]
}

/// The spec's Prometheus series for the exports.
///
/// Every series carries `tenant_id` besides the spec's labels: the same `model_id`
/// under two tenants must stay two series (BRIEF decision 4), or they would overwrite
/// each other.
pub fn prometheus_series(exports: &[ModelExport]) -> Vec<Series> {
    let mut out = Vec::new();
    for export in exports {
        let ids = [
            ("model_id", export.model_id.as_str()),
            ("tenant_id", export.tenant.as_str()),
        ];
        let series = |name: &str, extra: &[(&str, &str)]| {
            Series::new(name, ids.iter().chain(extra).map(|(k, v)| (*k, *v)))
        };
        for (start, metrics) in &export.minutes {
            let at = (*start + Granularity::Minute.length()).timestamp_millis();
            for (name, value, _) in gauges(metrics) {
                let Some(value) = value else { continue };
                let quantile = match name {
                    "latency_p50_ms" => Some("0.5"),
                    "latency_p95_ms" => Some("0.95"),
                    "latency_p99_ms" => Some("0.99"),
                    _ => None,
                };
                out.push(match quantile {
                    Some(q) => series("ml_model_latency_seconds", &[("quantile", q)])
                        .with_sample(at, value / 1000.0),
                    None => series(&format!("ml_model_{name}"), &[]).with_sample(at, value),
                });
            }
        }
        let at = export.as_of.timestamp_millis();
        let totals = &export.totals;
        let count = (totals.ok + totals.errors) as f64;
        out.push(series("ml_model_latency_seconds_count", &[]).with_sample(at, count));
        out.push(
            series("ml_model_latency_seconds_sum", &[])
                .with_sample(at, totals.latency_sum_us as f64 / 1e6),
        );
        out.push(
            series("ml_model_predictions_total", &[("status", "ok")])
                .with_sample(at, totals.ok as f64),
        );
        out.push(
            series("ml_model_predictions_total", &[("status", "error")])
                .with_sample(at, totals.errors as f64),
        );
        for (error_type, count) in &totals.errors_by_type {
            out.push(
                series("ml_model_errors_total", &[("error_type", error_type)])
                    .with_sample(at, *count as f64),
            );
        }
    }
    out
}

/// The CloudWatch data for the exports: every gauge per minute, plus the minute's
/// prediction and error counts; dimensions `model_id` and `tenant_id`.
pub fn cloudwatch_data(exports: &[ModelExport]) -> Vec<CloudWatchDatum> {
    let mut out = Vec::new();
    for export in exports {
        let dimensions = vec![
            ("model_id".to_owned(), export.model_id.to_string()),
            ("tenant_id".to_owned(), export.tenant.to_string()),
        ];
        for (start, metrics) in &export.minutes {
            let counts = [
                (
                    "predictions",
                    Some(metrics.predictions as f64),
                    MetricUnit::Count,
                ),
                ("errors", Some(metrics.errors as f64), MetricUnit::Count),
            ];
            for (name, value, unit) in gauges(metrics).into_iter().chain(counts) {
                let Some(value) = value else { continue };
                out.push(CloudWatchDatum {
                    name: name.to_owned(),
                    dimensions: dimensions.clone(),
                    timestamp: *start,
                    value,
                    unit,
                });
            }
        }
    }
    out
}

/// A receiver of ready-made Prometheus series.
pub trait SeriesWriter: Send + Sync {
    /// Writes the series (nothing when there are none).
    fn write_series(
        &self,
        series: &[Series],
    ) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

/// The Prometheus remote-write exporter.
pub struct PrometheusExporter(pub RemoteWriteClient);

impl PrometheusExporter {
    /// The exporter to the configured `PROMETHEUS_REMOTE_WRITE_URL` with its auth and
    /// the default retry policy; `None` when no URL is configured.
    pub fn from_config(
        config: &Config,
        sdk: &SdkConfig,
    ) -> Result<Option<Self>, RemoteWriteSetupError> {
        config
            .remote_write_url
            .as_deref()
            .map(|url| {
                RemoteWriteClient::new(url, &config.remote_write_auth, sdk, RetryPolicy::default())
                    .map(Self)
            })
            .transpose()
    }
}

impl SeriesWriter for PrometheusExporter {
    async fn write_series(&self, series: &[Series]) -> Result<(), ExportFailure> {
        if series.is_empty() {
            return Ok(());
        }
        match self.0.write(series).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_retryable() => Err(ExportFailure::Unavailable(Box::new(err))),
            Err(err) => Err(ExportFailure::Rejected(Box::new(err))),
        }
    }
}

impl MetricsExporter for PrometheusExporter {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        self.write_series(&prometheus_series(models)).await
    }
}

/// The CloudWatch exporter.
pub struct CloudWatchMetricsExporter(pub CloudWatchExporter);

impl MetricsExporter for CloudWatchMetricsExporter {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        let data = cloudwatch_data(models);
        if data.is_empty() {
            return Ok(());
        }
        match self.0.put(&data).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_retryable() => Err(ExportFailure::Unavailable(Box::new(err))),
            Err(err) => Err(ExportFailure::Rejected(Box::new(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryRollupStore;
    use crate::domain::CounterDelta;
    use crate::ports::{ExportCursors, Rollup};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn export() -> ModelExport {
        let metrics = MetricSet {
            accuracy: Some(0.9),
            latency_p50_ms: Some(8.0),
            latency_p95_ms: Some(20.0),
            latency_p99_ms: Some(40.0),
            predictions: 10,
            errors: 1,
            ..MetricSet::default()
        };
        ModelExport {
            tenant: TenantId::parse("t1").expect("tenant"),
            model_id: ModelId::parse("m1").expect("model"),
            minutes: vec![(at("2026-11-28T10:15:00Z"), metrics)],
            totals: CounterTotals {
                ok: 9,
                errors: 1,
                errors_by_type: [("timeout".to_owned(), 1)].into(),
                latency_sum_us: 1_500_000,
                ..CounterTotals::default()
            },
            as_of: at("2026-11-28T10:17:00Z"),
            through: at("2026-11-28T10:16:00Z"),
        }
    }

    #[test]
    fn prometheus_series_are_the_specs_with_their_labels_units_and_times() {
        let series = prometheus_series(&[export()]);
        let find = |name: &str, extra: &[(&str, &str)]| {
            series
                .iter()
                .find(|s| {
                    s.name == name
                        && extra
                            .iter()
                            .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
                        && s.labels.len() == 2 + extra.len()
                })
                .unwrap_or_else(|| panic!("no {name} {extra:?} in {series:?}"))
        };
        let gauge_time = at("2026-11-28T10:16:00Z").timestamp_millis();
        let counter_time = at("2026-11-28T10:17:00Z").timestamp_millis();
        assert_eq!(find("ml_model_accuracy", &[]).samples, [(gauge_time, 0.9)]);
        assert_eq!(
            find("ml_model_latency_seconds", &[("quantile", "0.5")]).samples,
            [(gauge_time, 0.008)]
        );
        assert_eq!(
            find("ml_model_latency_seconds", &[("quantile", "0.95")]).samples,
            [(gauge_time, 0.02)]
        );
        assert_eq!(
            find("ml_model_latency_seconds", &[("quantile", "0.99")]).samples,
            [(gauge_time, 0.04)]
        );
        assert_eq!(
            find("ml_model_latency_seconds_sum", &[]).samples,
            [(counter_time, 1.5)]
        );
        assert_eq!(
            find("ml_model_latency_seconds_count", &[]).samples,
            [(counter_time, 10.0)]
        );
        assert_eq!(
            find("ml_model_predictions_total", &[("status", "ok")]).samples,
            [(counter_time, 9.0)]
        );
        assert_eq!(
            find("ml_model_predictions_total", &[("status", "error")]).samples,
            [(counter_time, 1.0)]
        );
        assert_eq!(
            find("ml_model_errors_total", &[("error_type", "timeout")]).samples,
            [(counter_time, 1.0)]
        );
        assert!(
            series
                .iter()
                .all(|s| s.labels.iter().any(|(k, v)| k == "tenant_id" && v == "t1"))
        );
        assert!(
            !series.iter().any(|s| s.name == "ml_model_f1_score"),
            "absent metrics are not sent"
        );
    }

    #[test]
    fn cloudwatch_data_carry_units_dimensions_and_minute_timestamps() {
        let data = cloudwatch_data(&[export()]);
        let accuracy = data
            .iter()
            .find(|d| d.name == "accuracy")
            .expect("accuracy");
        assert_eq!(accuracy.timestamp, at("2026-11-28T10:15:00Z"));
        assert_eq!(
            accuracy.dimensions,
            [
                ("model_id".into(), "m1".into()),
                ("tenant_id".into(), "t1".into())
            ]
        );
        let p95 = data
            .iter()
            .find(|d| d.name == "latency_p95_ms")
            .expect("p95");
        assert_eq!((p95.value, p95.unit), (20.0, MetricUnit::Milliseconds));
        let count = data
            .iter()
            .find(|d| d.name == "predictions")
            .expect("predictions");
        assert_eq!((count.value, count.unit), (10.0, MetricUnit::Count));
        assert!(!data.iter().any(|d| d.name == "rmse"));
    }

    /// Records what it is given; fails while `down` is set.
    #[derive(Default)]
    struct RecordingExporter {
        down: AtomicBool,
        delivered: Mutex<Vec<ModelExport>>,
    }

    impl MetricsExporter for RecordingExporter {
        fn name(&self) -> &'static str {
            "recording"
        }
        async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
            if self.down.load(Ordering::SeqCst) {
                return Err(ExportFailure::Unavailable("receiver down".into()));
            }
            self.delivered
                .lock()
                .expect("lock")
                .extend_from_slice(models);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_export_is_retried_next_run_and_then_not_again() {
        let store = MemoryRollupStore::default();
        let (tenant, model) = (
            TenantId::parse("t1").expect("t"),
            ModelId::parse("m1").expect("m"),
        );
        let state = crate::domain::WindowState::default().to_bytes();
        for minute in ["2026-11-28T10:14:00Z", "2026-11-28T10:15:00Z"] {
            let rollup = Rollup {
                tenant: tenant.clone(),
                model_id: model.clone(),
                granularity: Granularity::Minute,
                start: at(minute),
                rev: 1,
                state: state.clone(),
            };
            store
                .put_minute_rollup(&rollup, None, &CounterDelta::default())
                .await
                .expect("put");
        }
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:16:00Z"))
            .await
            .expect("note");
        let exporter = RecordingExporter::default();
        exporter.down.store(true, Ordering::SeqCst);
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:16:30Z"))
            .await
            .expect("run");
        assert_eq!(report.outcome, "retry_next_run");
        assert_eq!(report.minutes, 2);

        exporter.down.store(false, Ordering::SeqCst);
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:17:30Z"))
            .await
            .expect("run");
        assert_eq!((report.outcome, report.minutes), ("delivered", 2));
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:18:30Z"))
            .await
            .expect("run");
        assert_eq!(
            (report.models, report.minutes),
            (0, 0),
            "nothing lags any more"
        );
        let delivered = exporter.delivered.lock().expect("lock");
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].minutes.len(), 2);
    }

    #[tokio::test]
    async fn a_late_roll_up_behind_the_cursor_re_exports_the_counters_only() {
        let store = MemoryRollupStore::default();
        let (tenant, model) = (
            TenantId::parse("t1").expect("t"),
            ModelId::parse("m1").expect("m"),
        );
        let rollup = |minute: &str, rev: u64| Rollup {
            tenant: tenant.clone(),
            model_id: model.clone(),
            granularity: Granularity::Minute,
            start: at(minute),
            rev,
            state: crate::domain::WindowState::default().to_bytes(),
        };
        let delta = |ok: u64| CounterDelta {
            add: CounterTotals {
                ok,
                ..CounterTotals::default()
            },
            ..CounterDelta::default()
        };
        store
            .put_minute_rollup(&rollup("2026-11-28T10:15:00Z", 1), None, &delta(4))
            .await
            .expect("put");
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:16:00Z"))
            .await
            .expect("note");
        let exporter = RecordingExporter::default();
        export_lagging(&store, &exporter, at("2026-11-28T10:16:30Z"))
            .await
            .expect("run");
        // Late data for an earlier minute: rolled up, noted behind the cursor.
        store
            .put_minute_rollup(&rollup("2026-11-28T10:05:00Z", 1), None, &delta(600))
            .await
            .expect("put");
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:06:00Z"))
            .await
            .expect("note");
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:17:30Z"))
            .await
            .expect("run");
        assert_eq!(
            (report.models, report.minutes),
            (1, 0),
            "counters, no minutes"
        );
        let delivered = exporter.delivered.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 2);
        assert_eq!(delivered[1].totals.ok, 604);
        assert!(
            delivered[1].minutes.is_empty(),
            "exported minutes are not re-sent"
        );
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:18:30Z"))
            .await
            .expect("run");
        assert_eq!(report.models, 0, "nothing lags any more");
    }
}

//! How metrics leave the product, as data: the one table from each [`MetricName`] to
//! its exports (its CloudWatch name and unit, its Prometheus series and scale), the
//! neutral [`Series`] and [`Datum`] the exporters send, and the mapping of a model's
//! closed minutes and counters ([`ModelExport`]) onto them. The adapters only encode
//! and deliver what this module produces; no second copy of a name or unit exists.

use chrono::{DateTime, Utc};

use super::ids::{ModelId, TenantId};
use super::metrics::{MetricName, MetricSet};
use super::slice::Slice;
use super::time::Granularity;
use super::totals::CounterTotals;

/// The unit of an exported value (a subset of CloudWatch's standard units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Milliseconds (latencies).
    Milliseconds,
    /// Seconds.
    Seconds,
    /// A count (predictions, errors, queue depth).
    Count,
    /// A percentage, 0–100.
    Percent,
    /// Events per second (throughput).
    CountPerSecond,
    /// Unitless (ratios such as accuracy, AUC-ROC).
    None,
}

/// How one metric is exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricExport {
    /// The metric's name as exported to CloudWatch and in JSON: the [`MetricSet`] field
    /// name (`accuracy`, `latency_p95_ms`, `throughput_rps`).
    pub name: &'static str,
    /// Its unit (CloudWatch's).
    pub unit: Unit,
    /// Its Prometheus series name (`ml_model_accuracy`, `ml_model_latency_seconds`).
    pub prometheus_name: &'static str,
    /// The label that sets the metric's series apart among the others of its name:
    /// `quantile` of a latency or label-delay quantile, `statistic` of a drift measure.
    pub label: Option<(&'static str, &'static str)>,
    /// Factor from the metric's unit to its Prometheus series' unit (latencies are
    /// milliseconds in the product and seconds in Prometheus).
    pub prometheus_scale: f64,
}

impl MetricExport {
    /// `value` of the metric in the unit of its Prometheus series.
    pub fn prometheus_value(&self, value: f64) -> f64 {
        value * self.prometheus_scale
    }
}

impl MetricName {
    /// How the metric is exported: the one table of every export name and unit.
    pub fn export(self) -> MetricExport {
        let gauge = |name, prometheus_name, unit| MetricExport {
            name,
            unit,
            prometheus_name,
            label: None,
            prometheus_scale: 1.0,
        };
        let latency = |name, quantile| MetricExport {
            name,
            unit: Unit::Milliseconds,
            prometheus_name: "ml_model_latency_seconds",
            label: Some(("quantile", quantile)),
            prometheus_scale: 1e-3,
        };
        let label_delay = |name, quantile| MetricExport {
            name,
            unit: Unit::Seconds,
            prometheus_name: "ml_model_label_delay_seconds",
            label: Some(("quantile", quantile)),
            prometheus_scale: 1.0,
        };
        let drift = |name, prometheus_name, statistic| MetricExport {
            name,
            unit: Unit::None,
            prometheus_name,
            label: Some(("statistic", statistic)),
            prometheus_scale: 1.0,
        };
        match self {
            Self::Accuracy => gauge("accuracy", "ml_model_accuracy", Unit::None),
            Self::F1Score => gauge("f1_score", "ml_model_f1_score", Unit::None),
            Self::AucRoc => gauge("auc_roc", "ml_model_auc_roc", Unit::None),
            Self::Rmse => gauge("rmse", "ml_model_rmse", Unit::None),
            Self::Mae => gauge("mae", "ml_model_mae", Unit::None),
            Self::Mape => gauge("mape", "ml_model_mape", Unit::None),
            Self::LatencyP50 => latency("latency_p50_ms", "0.5"),
            Self::LatencyP95 => latency("latency_p95_ms", "0.95"),
            Self::LatencyP99 => latency("latency_p99_ms", "0.99"),
            Self::Throughput => gauge(
                "throughput_rps",
                "ml_model_throughput_rps",
                Unit::CountPerSecond,
            ),
            Self::ErrorRate => gauge("error_rate", "ml_model_error_rate", Unit::None),
            Self::QueueDepth => gauge("queue_depth", "ml_model_queue_depth", Unit::Count),
            Self::CpuUtilization => {
                gauge("cpu_utilization", "ml_model_cpu_utilization", Unit::None)
            }
            Self::MemoryUtilization => gauge(
                "memory_utilization",
                "ml_model_memory_utilization",
                Unit::None,
            ),
            Self::GpuUtilization => {
                gauge("gpu_utilization", "ml_model_gpu_utilization", Unit::None)
            }
            Self::ModelCacheHitRate => gauge(
                "model_cache_hit_rate",
                "ml_model_model_cache_hit_rate",
                Unit::None,
            ),
            Self::LabelCoverage => gauge("label_coverage", "ml_model_labeled_ratio", Unit::None),
            Self::LabelDelayP50 => label_delay("label_delay_p50_s", "0.5"),
            Self::LabelDelayP95 => label_delay("label_delay_p95_s", "0.95"),
            Self::EstimatedAccuracy => gauge(
                "estimated_accuracy",
                "ml_model_estimated_accuracy",
                Unit::None,
            ),
            Self::EstimatedF1Score => gauge(
                "estimated_f1_score",
                "ml_model_estimated_f1_score",
                Unit::None,
            ),
            Self::EstimatedAucRoc => gauge(
                "estimated_auc_roc",
                "ml_model_estimated_auc_roc",
                Unit::None,
            ),
            Self::PredictionPsi => drift("prediction_psi", "ml_model_prediction_drift", "psi"),
            Self::PredictionJs => drift("prediction_js", "ml_model_prediction_drift", "js"),
            Self::ConfidencePsi => drift("confidence_psi", "ml_model_confidence_drift", "psi"),
            Self::ConfidenceJs => drift("confidence_js", "ml_model_confidence_drift", "js"),
        }
    }
}

/// One Prometheus series to write: a metric name, its other labels and its samples.
/// Order does not matter: the remote-write adapter sorts labels and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric name, sent as the `__name__` label, e.g. `ml_model_accuracy`.
    pub name: String,
    /// The other labels as (name, value); `__name__` must not be among them.
    pub labels: Vec<(String, String)>,
    /// The samples as (milliseconds since the Unix epoch, value).
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// A series with the given name and labels and no samples yet.
    pub fn new<K, V>(name: impl Into<String>, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            samples: Vec::new(),
        }
    }

    /// Adds a sample at `timestamp_ms` (milliseconds since the Unix epoch).
    pub fn with_sample(mut self, timestamp_ms: i64, value: f64) -> Self {
        self.samples.push((timestamp_ms, value));
        self
    }
}

/// One value of one CloudWatch metric at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The metric name (1–255 characters), e.g. `accuracy`.
    pub name: String,
    /// Dimensions as (name, value), names unique; e.g. `model_id`, `tenant_id`.
    pub dimensions: Vec<(String, String)>,
    /// When the value was observed.
    pub timestamp: DateTime<Utc>,
    /// The value.
    pub value: f64,
    /// The unit.
    pub unit: Unit,
}

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
    /// The export cursor position this export reaches when delivered.
    pub through: DateTime<Utc>,
}

impl ModelExport {
    /// The labels (dimensions) that name the export's series: `model_id`, then
    /// `model_version` for a version slice's series or `segment_key` and
    /// `segment_value` for a segment's, then `tenant_id`.
    pub fn ids(&self) -> Vec<(&'static str, String)> {
        let (model, slice) = self.model_id.split();
        let mut ids = vec![("model_id", model.to_owned())];
        match slice {
            Some(Slice::Version(version)) => ids.push(("model_version", version)),
            Some(Slice::Segment { key, value }) => {
                ids.push(("segment_key", key));
                ids.push(("segment_value", value));
            }
            None => {}
        }
        ids.push(("tenant_id", self.tenant.to_string()));
        ids
    }
}

/// Every gauge of `metrics` that has a value, with how it is exported.
fn gauges(metrics: &MetricSet) -> impl Iterator<Item = (MetricName, MetricExport, f64)> + '_ {
    MetricName::ALL
        .into_iter()
        .filter_map(|metric| Some((metric, metric.export(), metrics.get(metric)?)))
}

/// The Prometheus name of `name` for a slice's series: `ml_model_version_…` for a
/// version's, `ml_model_segment_…` for a segment's, so that no query summing the spec's
/// series by model (`sum by (model_id) (ml_model_predictions_total)`) counts a slice's
/// predictions twice.
fn slice_name(name: &str, slice: Option<&Slice>) -> String {
    let kind = match slice {
        None => return name.to_owned(),
        Some(Slice::Version(_)) => "version",
        Some(Slice::Segment { .. }) => "segment",
    };
    match name.strip_prefix("ml_model_") {
        Some(rest) => format!("ml_model_{kind}_{rest}"),
        None => name.to_owned(),
    }
}

/// The spec's Prometheus series for the exports: each minute's gauges at the minute's
/// end, and the cumulative counters (`ml_model_predictions_total`,
/// `ml_model_errors_total`, the latency summary's `_sum` and `_count`) at `as_of`.
///
/// Every series carries `tenant_id` besides the spec's labels: the same `model_id`
/// under two tenants must stay two series (BRIEF decision 4), or they would overwrite
/// each other. A version slice's export carries `model_version` too, under the names
/// `ml_model_version_…`, and an exported segment's `segment_key` and `segment_value`,
/// under `ml_model_segment_…` ([`slice_name`]).
pub fn prometheus_series(exports: &[ModelExport]) -> Vec<Series> {
    let mut out = Vec::new();
    for export in exports {
        let ids = export.ids();
        let slice = export.model_id.split().1;
        let series = |name: &str, extra: &[(&str, &str)]| {
            let ids = ids.iter().map(|(k, v)| (*k, v.as_str()));
            Series::new(
                slice_name(name, slice.as_ref()),
                ids.chain(extra.iter().copied()),
            )
        };
        for (start, metrics) in &export.minutes {
            let at = (*start + Granularity::Minute.length()).timestamp_millis();
            for (_, gauge, value) in gauges(metrics) {
                let label: Vec<(&str, &str)> = gauge.label.into_iter().collect();
                out.push(
                    series(gauge.prometheus_name, &label)
                        .with_sample(at, gauge.prometheus_value(value)),
                );
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

/// The metrics of a window against the model's reference window (estimates without
/// labels, prediction drift), which `evaluate` writes over the last hour.
pub const COMPARED_METRICS: [MetricName; 7] = [
    MetricName::EstimatedAccuracy,
    MetricName::EstimatedF1Score,
    MetricName::EstimatedAucRoc,
    MetricName::PredictionPsi,
    MetricName::PredictionJs,
    MetricName::ConfidencePsi,
    MetricName::ConfidenceJs,
];

/// The CloudWatch data of the [`COMPARED_METRICS`] `metrics` has, for one model at
/// `at`: dimensions `model_id` and `tenant_id` like the minute data, names of their
/// own (`estimated_accuracy`, `prediction_psi`, …), so each has one writer.
pub fn compared_data(
    tenant: &TenantId,
    model_id: &ModelId,
    metrics: &MetricSet,
    at: DateTime<Utc>,
) -> Vec<Datum> {
    COMPARED_METRICS
        .into_iter()
        .filter_map(|metric| {
            let export = metric.export();
            Some(Datum {
                name: export.name.to_owned(),
                dimensions: vec![
                    ("model_id".to_owned(), model_id.to_string()),
                    ("tenant_id".to_owned(), tenant.to_string()),
                ],
                timestamp: at,
                value: metrics.get(metric)?,
                unit: export.unit,
            })
        })
        .collect()
}

/// Groups `models`, in order, into requests of at most `capacity` data each, where a
/// model brings `data_of(model)` data: the sizes of the groups. A model with more than
/// `capacity` goes alone.
pub fn group_requests(
    models: &[ModelExport],
    capacity: usize,
    data_of: impl Fn(&ModelExport) -> usize,
) -> Vec<usize> {
    let mut groups = Vec::new();
    let (mut models_in, mut data_in) = (0, 0);
    for model in models {
        let data = data_of(model);
        if models_in > 0 && data_in + data > capacity {
            groups.push(models_in);
            (models_in, data_in) = (0, 0);
        }
        models_in += 1;
        data_in += data;
    }
    if models_in > 0 {
        groups.push(models_in);
    }
    groups
}

/// The most data CloudWatch takes in one `PutMetricData` request.
pub const CLOUDWATCH_DATA_PER_REQUEST: usize = 1_000;

/// How `models` go to CloudWatch with `selection`: groups of whole models of at most
/// [`CLOUDWATCH_DATA_PER_REQUEST`] data, one request each (see [`group_requests`]).
pub fn cloudwatch_requests(models: &[ModelExport], selection: CloudWatchMetrics) -> Vec<usize> {
    group_requests(models, CLOUDWATCH_DATA_PER_REQUEST, |model| {
        cloudwatch_data(std::slice::from_ref(model), selection).len()
    })
}

/// Which metrics go to CloudWatch. Each (metric, model) is a custom metric, billed per
/// month, so this is the lever on CloudWatch's cost (ARCHITECTURE, "What it costs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloudWatchMetrics {
    /// None: the CloudWatch exporter is not run.
    Off,
    /// The specification's baselined metrics: the quality metric (accuracy, or RMSE
    /// for a regressor), latency p95, error rate and throughput — four per model.
    Core,
    /// Every gauge and the minute's prediction and error counts (up to 15 per model).
    #[default]
    All,
}

impl std::str::FromStr for CloudWatchMetrics {
    type Err = UnknownSelection;

    /// The selection named `off`, `core` or `all`.
    fn from_str(name: &str) -> Result<Self, UnknownSelection> {
        match name {
            "off" => Ok(Self::Off),
            "core" => Ok(Self::Core),
            "all" => Ok(Self::All),
            _ => Err(UnknownSelection),
        }
    }
}

/// A CloudWatch selection other than `off`, `core` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be off, core or all")]
pub struct UnknownSelection;

impl CloudWatchMetrics {
    /// The metrics of [`Core`](Self::Core).
    pub const CORE: [MetricName; 5] = [
        MetricName::Accuracy,
        MetricName::Rmse,
        MetricName::LatencyP95,
        MetricName::ErrorRate,
        MetricName::Throughput,
    ];

    /// What a slice's export sends: at most the core (its metrics are paid per version
    /// or segment value, up to `MODEL_VERSIONS` versions and the exported keys' values
    /// per model).
    fn for_slice(self) -> Self {
        match self {
            Self::All => Self::Core,
            other => other,
        }
    }

    fn includes(self, metric: MetricName) -> bool {
        match self {
            Self::Off => false,
            Self::Core => Self::CORE.contains(&metric),
            Self::All => true,
        }
    }
}

/// The CloudWatch data of `selection` for the exports: the selected gauges per minute,
/// and with [`CloudWatchMetrics::All`] the minute's prediction and error counts (a
/// slice's export: the core gauges at most, with a `model_version` dimension, or
/// `segment_key` and `segment_value`);
/// dimensions `model_id` and `tenant_id`; stamped with the minute's start.
pub fn cloudwatch_data(exports: &[ModelExport], selection: CloudWatchMetrics) -> Vec<Datum> {
    let mut out = Vec::new();
    for export in exports {
        let dimensions: Vec<(String, String)> = export
            .ids()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let selection = match export.model_id.split().1 {
            Some(_) => selection.for_slice(),
            None => selection,
        };
        for (start, metrics) in &export.minutes {
            let counts = [
                ("predictions", metrics.predictions),
                ("errors", metrics.errors),
            ]
            .map(|(name, n)| (name, n as f64, Unit::Count));
            let counts = counts
                .into_iter()
                .filter(|_| selection == CloudWatchMetrics::All);
            let values = gauges(metrics)
                .filter(|(metric, _, _)| selection.includes(*metric))
                .map(|(_, gauge, value)| (gauge.name, value, gauge.unit))
                .chain(counts);
            for (name, value, unit) in values {
                out.push(Datum {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CounterTotals;
    use crate::domain::ids::{ModelId, TenantId};

    #[test]
    fn every_metric_exports_under_its_field_name_and_latencies_in_seconds() {
        let metrics = MetricSet {
            accuracy: Some(0.9),
            latency_p95_ms: Some(250.0),
            throughput_rps: Some(3.0),
            ..MetricSet::default()
        };
        let json = serde_json::to_value(&metrics).expect("json");
        for metric in MetricName::ALL {
            let export = metric.export();
            assert!(
                json.get(export.name).is_some(),
                "{} is a field",
                export.name
            );
            assert_eq!(
                export.name.parse::<MetricName>().ok(),
                Some(metric),
                "{} names its metric",
                export.name
            );
            assert!(export.prometheus_name.starts_with("ml_model_"));
        }
        let p95 = MetricName::LatencyP95.export();
        assert_eq!(p95.prometheus_value(250.0), 0.25);
        assert_eq!(
            (p95.label, p95.unit),
            (Some(("quantile", "0.95")), Unit::Milliseconds)
        );
        let exported: Vec<(&str, f64)> = gauges(&metrics).map(|(_, g, v)| (g.name, v)).collect();
        assert_eq!(
            exported,
            [
                ("accuracy", 0.9),
                ("latency_p95_ms", 250.0),
                ("throughput_rps", 3.0)
            ]
        );
    }

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
        let data = cloudwatch_data(&[export()], CloudWatchMetrics::All);
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
        assert_eq!((p95.value, p95.unit), (20.0, Unit::Milliseconds));
        let count = data
            .iter()
            .find(|d| d.name == "predictions")
            .expect("predictions");
        assert_eq!((count.value, count.unit), (10.0, Unit::Count));
        assert!(!data.iter().any(|d| d.name == "rmse"));
    }

    #[test]
    fn cloudwatch_selections_send_what_they_name() {
        let names = |selection| {
            let data = cloudwatch_data(&[export()], selection);
            data.into_iter().map(|d| d.name).collect::<Vec<_>>()
        };
        assert_eq!(
            names(CloudWatchMetrics::All),
            [
                "accuracy",
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
                "predictions",
                "errors"
            ]
        );
        // The example has accuracy and latencies only: of the core, accuracy and p95.
        assert_eq!(
            names(CloudWatchMetrics::Core),
            ["accuracy", "latency_p95_ms"]
        );
        assert!(names(CloudWatchMetrics::Off).is_empty());
        for (name, selection) in [
            ("off", CloudWatchMetrics::Off),
            ("core", CloudWatchMetrics::Core),
            ("all", CloudWatchMetrics::All),
        ] {
            assert_eq!(name.parse(), Ok(selection));
        }
        assert_eq!("some".parse::<CloudWatchMetrics>(), Err(UnknownSelection));
    }

    #[test]
    fn a_slices_series_carry_the_model_and_the_slice_under_their_own_names() {
        use crate::domain::slice::Slice;
        let cases = [
            (
                Slice::version("v4"),
                "ml_model_version_",
                vec![
                    ("model_id", "m1"),
                    ("model_version", "v4"),
                    ("tenant_id", "t1"),
                ],
            ),
            (
                Slice::segment("region", "eu"),
                "ml_model_segment_",
                vec![
                    ("model_id", "m1"),
                    ("segment_key", "region"),
                    ("segment_value", "eu"),
                    ("tenant_id", "t1"),
                ],
            ),
        ];
        for (slice, prefix, ids) in cases {
            let sliced = ModelExport {
                model_id: ModelId::parse("m1").expect("model").series(&slice),
                ..export()
            };
            let series = prometheus_series(std::slice::from_ref(&sliced));
            assert!(!series.is_empty());
            for s in &series {
                assert!(s.name.starts_with(prefix), "{}", s.name);
                for (name, value) in &ids {
                    assert!(
                        s.labels.iter().any(|(k, v)| k == name && v == value),
                        "{name}={value} in {s:?}"
                    );
                }
            }
            let data = cloudwatch_data(std::slice::from_ref(&sliced), CloudWatchMetrics::All);
            let names: Vec<&str> = data.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["accuracy", "latency_p95_ms"], "the core only");
            for datum in data {
                let dimensions: Vec<(&str, &str)> = datum
                    .dimensions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(dimensions, ids, "{}", datum.name);
            }
        }
    }
}

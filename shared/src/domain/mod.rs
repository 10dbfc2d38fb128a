//! Pure domain logic: records, the mergeable window state (the metric engine), the metric
//! definitions and trend math. No AWS types, no I/O, no clock reads: time is always an
//! argument.
//!
//! - [`export`]: the one table of export names and units, and the neutral series and
//!   data the exporters send.
//! - [`ids`]: validated tenant and model ids (safe to embed in storage keys).
//! - [`labels`]: late labels joined to their predictions by `prediction_id`.
//! - [`alerting`]: baselines, alert rules, the alert lifecycle and trends.
//! - [`record`]: the typed input records ([`PredictionRecord`], [`ResourceSample`]).
//! - [`bounds`]: the range of every number a record may carry, and the reserved names.
//! - [`window`]: [`WindowState`], folded record by record, merged, stored as bytes.
//! - [`sketch`], [`classification`], [`regression`], [`resources`]: the parts of a state.
//! - [`metrics`]: [`MetricSet`], the one definition of every metric, and [`MetricName`].
//! - [`estimation`] and [`drift`]: performance estimated without labels (CBPE) and
//!   prediction drift (PSI, Jensen–Shannon) against a reference window.
//! - [`slice`]: slices of a model's traffic (versions, segments), kept as series of their own.
//! - [`comparison`]: two slices side by side, with proportion tests and a verdict.
//! - [`time`]: [`Granularity`], the spans rollups cover.
//! - [`totals`]: a model's cumulative counters and what a minute rollup adds to them.
//! - [`trend`]: least-squares trends, their p-value and threshold projections.
//! - [`error`] and [`codec`]: fold/merge errors and the binary format's primitives.

pub mod alerting;
pub mod bounds;
pub mod classification;
pub mod codec;
pub mod comparison;
pub mod drift;
pub mod error;
pub mod estimation;
pub mod export;
pub mod ids;
pub mod labels;
pub mod metrics;
pub mod quota;
pub mod record;
pub mod regression;
pub mod resources;
pub mod shard;
pub mod sketch;
pub mod slice;
pub mod time;
pub mod totals;
pub mod trend;
pub mod window;

pub use bounds::{
    MAX_CACHE_COUNT, MAX_LATENCY_MS, MAX_QUEUE_DEPTH, MAX_REGRESSION_MAGNITUDE,
    MIN_REGRESSION_MAGNITUDE, OVERFLOW_BUCKET, regression_value_problem,
};
pub use classification::{
    AucEstimate, BinaryStats, LabelCounts, MAX_LABEL_BYTES, MAX_LABELS, MulticlassStats,
    SCORE_BINS, ScoreDistribution,
};
pub use codec::DecodeError;
pub use error::{FoldError, MergeError};
pub use export::{
    CLOUDWATCH_DATA_PER_REQUEST, COMPARED_METRICS, CloudWatchMetrics, Datum, MetricExport,
    ModelExport, Series, Unit, UnknownSelection, cloudwatch_data, cloudwatch_requests,
    compared_data, group_requests, prometheus_series,
};
pub use metrics::{MetricName, MetricSet, OverflowCounts, TimeSpan, UnknownMetric};
pub use quota::{OverQuota, Quota, QuotaLimits, TenantQuotas};
pub use record::{
    BatchHeader, IdSpan, Outcome, PredictionRecord, ResourceSample, SegmentIds, Status, Task,
    UnknownTask, ValidBatch, ValidPrediction,
};
pub use regression::RegressionStats;
pub use resources::{GaugeStats, ResourceStats};
pub use sketch::{
    LATENCY_MAX_BUCKETS, LATENCY_RELATIVE_ACCURACY, LatencySketch, ValueSketch, lower_quantile_rank,
};
pub use time::{ACTIVE_RETENTION, Floors, Granularity};
pub use totals::{
    CounterDelta, CounterTotals, MAX_TOTAL_ERROR_TYPES, UNTYPED_ERROR, cap_error_types,
    counter_delta, names_error_types,
};
pub use trend::{LinearTrend, TrendError, fit_trend, student_t_two_sided_p};
pub use window::{
    FORMAT_VERSION, FORMAT_VERSION_WITH_CONFIDENCE, FORMAT_VERSION_WITH_DISTRIBUTION,
    MAX_ERROR_TYPE_BYTES, MAX_ERROR_TYPES, MeasuredPrediction, QualityStats, WindowState,
};

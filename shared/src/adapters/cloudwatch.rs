//! CloudWatch custom metrics: [`CloudWatchExporter`] publishes [`Datum`]s with
//! `PutMetricData`, within the API's limits; [`CloudWatchMetricsExporter`] is it as
//! `aggregate`'s [`MetricsExporter`].
//!
//! - At most [`MAX_DATA_PER_REQUEST`] (1,000) data and about [`MAX_REQUEST_BYTES`]
//!   (1 MB, estimated conservatively from the awsQuery form encoding, which is larger
//!   than the rpc-v2-cbor encoding the SDK sends) per request;
//!   requests run [`DEFAULT_CONCURRENCY`] at a time (configurable).
//! - A datum CloudWatch would refuse is skipped and reported instead of failing its
//!   whole request: a non-finite value (NaN, ±∞) or one beyond ±1.174271e108, more
//!   than [`MAX_DIMENSIONS`] (30) dimensions, names or values of bad length, a
//!   dimension name twice, or a timestamp more than two weeks old or two hours ahead.
//!   Values closer to zero than 8.515920e-109, which CloudWatch also refuses, are sent
//!   as 0.
//! - The SDK retries throttling and 5xx itself (its standard retry policy); what is
//!   left when it gives up is [`CloudWatchError::Unavailable`] (try again on the next
//!   run), and a request refused as invalid is [`CloudWatchError::Rejected`]. Both
//!   list the indices of the data that were not sent, so a retry resends only those
//!   (CloudWatch would count a resent datum twice).
//!
//! The SDK speaks rpc-v2-cbor, which moto does not: locally, CloudWatch is served by
//! LocalStack (the local stack's LocalStack lane, `infra/local/README.md`).

use std::collections::HashSet;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, Duration, Utc};
use futures_util::{StreamExt, stream};
use thiserror::Error;
use tracing::warn;

use crate::domain::{
    CLOUDWATCH_DATA_PER_REQUEST, CloudWatchMetrics, Datum, ModelExport, Unit, cloudwatch_data,
    cloudwatch_requests,
};
use crate::error::StoreError;
use crate::ports::{ExportFailure, MetricDataWriter, MetricsExporter};

/// `PutMetricData`'s limit of metric data per request.
pub const MAX_DATA_PER_REQUEST: usize = CLOUDWATCH_DATA_PER_REQUEST;
/// Budget for the estimated size of one request (the API's limit is 1 MB).
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// `PutMetricData`'s limit of dimensions per datum.
pub const MAX_DIMENSIONS: usize = 30;
/// Requests in flight at once, by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Longest metric name, dimension name and namespace, in characters.
const MAX_NAME_CHARS: usize = 255;
/// Longest dimension value, in characters.
const MAX_DIMENSION_VALUE_CHARS: usize = 1_024;
/// CloudWatch refuses magnitudes above this (its documented range, 2^359).
const MAX_ABS_VALUE: f64 = 1.174_271e108;
/// CloudWatch refuses non-zero magnitudes below this; such values are sent as 0.
const MIN_ABS_VALUE: f64 = 8.515_920e-109;
/// How far back a timestamp may be.
const MAX_AGE: Duration = Duration::days(14);
/// How far ahead a timestamp may be.
const MAX_AHEAD: Duration = Duration::hours(2);
/// Estimated bytes of a request besides its data (Action, Version, Namespace keys).
const REQUEST_OVERHEAD_BYTES: usize = 128;
/// Estimated bytes of a datum's fixed fields with their form keys
/// (`&MetricData.member.1000.MetricName=`, `Timestamp`, `Value`, `Unit`).
const DATUM_OVERHEAD_BYTES: usize = 256;
/// Estimated bytes of one dimension's two form keys.
const DIMENSION_OVERHEAD_BYTES: usize = 100;
/// Error codes meaning "slow down" (the SDK retried them already).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

impl From<Unit> for StandardUnit {
    fn from(unit: Unit) -> Self {
        match unit {
            Unit::Milliseconds => StandardUnit::Milliseconds,
            Unit::Seconds => StandardUnit::Seconds,
            Unit::Count => StandardUnit::Count,
            Unit::Percent => StandardUnit::Percent,
            Unit::CountPerSecond => StandardUnit::CountSecond,
            Unit::None => StandardUnit::None,
        }
    }
}

/// Why a datum was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DatumProblem {
    /// NaN or infinite.
    #[error("value is not finite")]
    NonFiniteValue,
    /// Beyond ±1.174271e108.
    #[error("value is beyond ±1.174271e108")]
    ValueOutOfRange,
    /// Empty or longer than 255 characters.
    #[error("metric name must have 1 to 255 characters")]
    InvalidName,
    /// More than 30 dimensions.
    #[error("{count} dimensions, at most 30 allowed")]
    TooManyDimensions {
        /// How many the datum has.
        count: usize,
    },
    /// A dimension name empty or over 255 characters, or a value empty or over 1,024.
    #[error("dimension {name:?} has an empty or too long name or value")]
    InvalidDimension {
        /// The dimension's name.
        name: String,
    },
    /// The same dimension name twice.
    #[error("dimension {name:?} appears twice")]
    DuplicateDimension {
        /// The repeated name.
        name: String,
    },
    /// Older than two weeks or more than two hours ahead.
    #[error("timestamp is more than two weeks old or two hours ahead")]
    TimestampOutOfRange,
}

/// A datum left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDatum {
    /// Index in the input.
    pub index: usize,
    /// The problem.
    pub problem: DatumProblem,
}

/// What a [`CloudWatchExporter::put`] sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutReport {
    /// `PutMetricData` requests that succeeded.
    pub requests: usize,
    /// Data sent.
    pub sent: usize,
    /// Data left out as invalid (also logged).
    pub skipped: Vec<SkippedDatum>,
}

/// Why [`CloudWatchExporter::new`] refused a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("CloudWatch namespace must have 1 to 255 characters and not start with `AWS/`")]
pub struct InvalidNamespace;

/// Why some data were not published. Data of other requests may have been sent:
/// `unsent` lists the input indices that were not (skipped data are not listed).
#[derive(Debug, Error)]
pub enum CloudWatchError {
    /// Throttling, 5xx, timeouts or connection failures outlasted the SDK's retries.
    /// Retryable on the next run. When requests were also refused, `unsent` includes
    /// their data too (they will be refused again, and logged).
    #[error("CloudWatch PutMetricData unavailable; {} metric data not sent", unsent.len())]
    Unavailable {
        /// Requests that succeeded.
        requests: usize,
        /// Data sent.
        sent: usize,
        /// Input indices of the data not sent.
        unsent: Vec<usize>,
        /// The first failure.
        #[source]
        source: Box<SdkError<PutMetricDataError>>,
    },
    /// CloudWatch refused a request as invalid; sending it again would fail again.
    #[error("CloudWatch refused PutMetricData; {} metric data not sent", unsent.len())]
    Rejected {
        /// Requests that succeeded.
        requests: usize,
        /// Data sent.
        sent: usize,
        /// Input indices of the data not sent.
        unsent: Vec<usize>,
        /// The first refusal.
        #[source]
        source: Box<SdkError<PutMetricDataError>>,
    },
}

impl CloudWatchError {
    /// Whether sending the unsent data again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Input indices of the data not sent.
    pub fn unsent(&self) -> &[usize] {
        match self {
            Self::Unavailable { unsent, .. } | Self::Rejected { unsent, .. } => unsent,
        }
    }
}

impl From<CloudWatchError> for StoreError {
    fn from(error: CloudWatchError) -> Self {
        let operation = "publish CloudWatch metrics";
        if error.is_retryable() {
            StoreError::Unavailable {
                operation,
                source: Box::new(error),
            }
        } else {
            StoreError::Internal {
                operation,
                source: Box::new(error),
            }
        }
    }
}

/// Publishes metric data to one CloudWatch namespace.
#[derive(Debug, Clone)]
pub struct CloudWatchExporter {
    client: Client,
    namespace: String,
    concurrency: usize,
}

/// The input indices of one request's data, and how the request ended.
type BatchOutcome = (Vec<usize>, Result<(), SdkError<PutMetricDataError>>);

/// One request's data: input indices and SDK data.
struct Batch {
    indices: Vec<usize>,
    data: Vec<MetricDatum>,
}

impl CloudWatchExporter {
    /// An exporter writing to `namespace` (1–255 characters, not `AWS/…`), sending
    /// [`DEFAULT_CONCURRENCY`] requests at a time.
    pub fn new(client: Client, namespace: impl Into<String>) -> Result<Self, InvalidNamespace> {
        let namespace = namespace.into();
        let chars = namespace.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || namespace.starts_with("AWS/") {
            return Err(InvalidNamespace);
        }
        Ok(Self {
            client,
            namespace,
            concurrency: DEFAULT_CONCURRENCY,
        })
    }

    /// Sets the number of requests in flight at once (0 counts as 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Publishes `data`: invalid data are skipped and reported, the rest sent in
    /// batches within the API limits, a few requests at a time. Nothing to send means
    /// no request.
    pub async fn put(&self, data: &[Datum]) -> Result<PutReport, CloudWatchError> {
        let (batches, skipped) = plan(data, Utc::now());
        for s in &skipped {
            let name = data.get(s.index).map_or("", |d| d.name.as_str());
            warn!(index = s.index, metric = %name, problem = %s.problem, "metric datum not published");
        }
        let results: Vec<BatchOutcome> = stream::iter(batches)
            .map(|batch| async move {
                let result = self
                    .client
                    .put_metric_data()
                    .namespace(&self.namespace)
                    .set_metric_data(Some(batch.data))
                    .send()
                    .await
                    .map(drop);
                (batch.indices, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut report = PutReport {
            skipped,
            ..PutReport::default()
        };
        let mut unsent = Vec::new();
        let mut first_retryable = None;
        let mut first_rejected = None;
        for (indices, result) in results {
            match result {
                Ok(()) => {
                    report.requests += 1;
                    report.sent += indices.len();
                }
                Err(error) => {
                    warn!(
                        data = indices.len(),
                        error = %DisplayErrorContext(&error),
                        "PutMetricData failed"
                    );
                    unsent.extend(indices);
                    if is_retryable(&error) {
                        first_retryable.get_or_insert(error);
                    } else {
                        first_rejected.get_or_insert(error);
                    }
                }
            }
        }
        unsent.sort_unstable();
        let (requests, sent) = (report.requests, report.sent);
        // Retryable wins: the unsent data are worth sending again.
        match (first_retryable, first_rejected) {
            (Some(source), _) => Err(CloudWatchError::Unavailable {
                requests,
                sent,
                unsent,
                source: Box::new(source),
            }),
            (None, Some(source)) => Err(CloudWatchError::Rejected {
                requests,
                sent,
                unsent,
                source: Box::new(source),
            }),
            (None, None) => Ok(report),
        }
    }
}

/// Validates `data` against the API's rules at `now` and cuts the valid ones into
/// batches within the request limits, in input order.
fn plan(data: &[Datum], now: DateTime<Utc>) -> (Vec<Batch>, Vec<SkippedDatum>) {
    let budget = MAX_REQUEST_BYTES - REQUEST_OVERHEAD_BYTES;
    let mut batches: Vec<Batch> = Vec::new();
    let mut skipped = Vec::new();
    let mut current = Batch {
        indices: Vec::new(),
        data: Vec::new(),
    };
    let mut current_bytes = 0;
    for (index, datum) in data.iter().enumerate() {
        if let Err(problem) = validate(datum, now) {
            skipped.push(SkippedDatum { index, problem });
            continue;
        }
        let bytes = estimated_bytes(datum);
        if !current.data.is_empty()
            && (current.data.len() == MAX_DATA_PER_REQUEST || current_bytes + bytes > budget)
        {
            batches.push(std::mem::replace(
                &mut current,
                Batch {
                    indices: Vec::new(),
                    data: Vec::new(),
                },
            ));
            current_bytes = 0;
        }
        current.indices.push(index);
        current.data.push(to_sdk(datum));
        current_bytes += bytes;
    }
    if !current.data.is_empty() {
        batches.push(current);
    }
    (batches, skipped)
}

/// Checks one datum against `PutMetricData`'s rules.
fn validate(datum: &Datum, now: DateTime<Utc>) -> Result<(), DatumProblem> {
    if !datum.value.is_finite() {
        return Err(DatumProblem::NonFiniteValue);
    }
    if datum.value.abs() > MAX_ABS_VALUE {
        return Err(DatumProblem::ValueOutOfRange);
    }
    if !char_len_within(&datum.name, MAX_NAME_CHARS) {
        return Err(DatumProblem::InvalidName);
    }
    if datum.dimensions.len() > MAX_DIMENSIONS {
        return Err(DatumProblem::TooManyDimensions {
            count: datum.dimensions.len(),
        });
    }
    let mut names = HashSet::with_capacity(datum.dimensions.len());
    for (name, value) in &datum.dimensions {
        if !char_len_within(name, MAX_NAME_CHARS)
            || !char_len_within(value, MAX_DIMENSION_VALUE_CHARS)
        {
            return Err(DatumProblem::InvalidDimension { name: name.clone() });
        }
        if !names.insert(name.as_str()) {
            return Err(DatumProblem::DuplicateDimension { name: name.clone() });
        }
    }
    if datum.timestamp < now - MAX_AGE || datum.timestamp > now + MAX_AHEAD {
        return Err(DatumProblem::TimestampOutOfRange);
    }
    Ok(())
}

/// Non-empty and at most `max` characters.
fn char_len_within(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max
}

/// A conservative estimate of a datum's share of the form-encoded request: fixed keys
/// and values, plus names and values at 3 bytes per byte (worst-case
/// percent-encoding).
fn estimated_bytes(datum: &Datum) -> usize {
    let dimensions: usize = datum
        .dimensions
        .iter()
        .map(|(n, v)| DIMENSION_OVERHEAD_BYTES + 3 * (n.len() + v.len()))
        .sum();
    DATUM_OVERHEAD_BYTES + 3 * datum.name.len() + dimensions
}

/// The SDK's form of a (valid) datum; dimensions sorted by name.
fn to_sdk(datum: &Datum) -> MetricDatum {
    let mut dimensions: Vec<Dimension> = datum
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect();
    dimensions.sort_by(|a, b| a.name().cmp(&b.name()));
    MetricDatum::builder()
        .metric_name(&datum.name)
        .set_dimensions(Some(dimensions))
        .timestamp(AwsDateTime::from_millis(datum.timestamp.timestamp_millis()))
        .value(if datum.value.abs() < MIN_ABS_VALUE {
            0.0
        } else {
            datum.value
        })
        .unit(datum.unit.into())
        .build()
}

/// Whether a failure after the SDK's own retries is worth retrying on a later run.
fn is_retryable(error: &SdkError<PutMetricDataError>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(service.err(), PutMetricDataError::InternalServiceFault(_))
                || service
                    .err()
                    .code()
                    .is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        _ => false,
    }
}

/// The CloudWatch exporter: the selected metrics of every minute, through `exporter`.
pub struct CloudWatchMetricsExporter {
    /// Where they go.
    pub exporter: CloudWatchExporter,
    /// Which metrics go (never [`CloudWatchMetrics::Off`]: then there is no exporter).
    pub metrics: CloudWatchMetrics,
}

impl MetricsExporter for CloudWatchMetricsExporter {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    /// Whole models up to [`MAX_DATA_PER_REQUEST`] data a request, so a request that
    /// fails after others succeeded concerns only its own models: none is sent twice.
    /// (A model's export is at most an hour of minutes, 61 × 15 data, so it fits one.)
    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        cloudwatch_requests(models, self.metrics)
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        self.exporter
            .write_data(&cloudwatch_data(models, self.metrics))
            .await
    }
}

impl MetricDataWriter for CloudWatchExporter {
    async fn write_data(&self, data: &[Datum]) -> Result<(), ExportFailure> {
        if data.is_empty() {
            return Ok(());
        }
        match self.put(data).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_retryable() => Err(ExportFailure::Unavailable(Box::new(err))),
            Err(err) => Err(ExportFailure::Rejected(Box::new(err))),
        }
    }
}

#[cfg(test)]
mod tests;

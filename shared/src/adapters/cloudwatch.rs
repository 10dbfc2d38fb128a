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

use crate::domain::{Datum, ModelExport, Unit, cloudwatch_data};
use crate::error::StoreError;
use crate::ports::{ExportFailure, MetricsExporter};

/// `PutMetricData`'s limit of metric data per request.
pub const MAX_DATA_PER_REQUEST: usize = 1_000;
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
    use std::sync::{Arc, Mutex};
    use std::time::Duration as StdDuration;

    use aws_sdk_cloudwatch::config::retry::RetryConfig;
    use aws_sdk_cloudwatch::error::ErrorMetadata;
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    use aws_sdk_cloudwatch::types::error::InvalidParameterValueException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn datum(i: usize, now: DateTime<Utc>) -> Datum {
        Datum {
            name: "accuracy".into(),
            dimensions: vec![
                ("tenant_id".into(), "t1".into()),
                ("model_id".into(), format!("m{i}")),
            ],
            timestamp: now,
            value: i as f64,
            unit: Unit::None,
        }
    }

    fn data(n: usize) -> Vec<Datum> {
        let now = Utc::now();
        (0..n).map(|i| datum(i, now)).collect()
    }

    /// Fast SDK retries, so the throttling test does not sleep for seconds.
    fn fast_retries(
        builder: aws_sdk_cloudwatch::config::Builder,
    ) -> aws_sdk_cloudwatch::config::Builder {
        builder.retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(StdDuration::from_millis(1))
                .with_max_backoff(StdDuration::from_millis(5)),
        )
    }

    #[test]
    fn units_map_to_standard_units() {
        assert_eq!(
            StandardUnit::from(Unit::Milliseconds).as_str(),
            "Milliseconds"
        );
        assert_eq!(StandardUnit::from(Unit::Count).as_str(), "Count");
        assert_eq!(StandardUnit::from(Unit::Percent).as_str(), "Percent");
        assert_eq!(
            StandardUnit::from(Unit::CountPerSecond).as_str(),
            "Count/Second"
        );
        assert_eq!(StandardUnit::from(Unit::None).as_str(), "None");
        assert_eq!(StandardUnit::from(Unit::Seconds).as_str(), "Seconds");
    }

    #[test]
    fn validation_skips_what_cloudwatch_refuses() {
        let now = Utc::now();
        let ok = datum(0, now);
        let with = |f: &dyn Fn(&mut Datum)| {
            let mut d = ok.clone();
            f(&mut d);
            d
        };
        let cases = [
            (with(&|d| d.value = f64::NAN), DatumProblem::NonFiniteValue),
            (
                with(&|d| d.value = f64::INFINITY),
                DatumProblem::NonFiniteValue,
            ),
            (with(&|d| d.value = -1.2e108), DatumProblem::ValueOutOfRange),
            (with(&|d| d.name = String::new()), DatumProblem::InvalidName),
            (
                with(&|d| d.name = "x".repeat(256)),
                DatumProblem::InvalidName,
            ),
            (
                with(&|d| d.dimensions = (0..31).map(|i| (format!("d{i}"), "v".into())).collect()),
                DatumProblem::TooManyDimensions { count: 31 },
            ),
            (
                with(&|d| d.dimensions[0].1 = String::new()),
                DatumProblem::InvalidDimension {
                    name: "tenant_id".into(),
                },
            ),
            (
                with(&|d| d.dimensions[1].0 = "tenant_id".into()),
                DatumProblem::DuplicateDimension {
                    name: "tenant_id".into(),
                },
            ),
            (
                with(&|d| d.timestamp = now - Duration::days(15)),
                DatumProblem::TimestampOutOfRange,
            ),
            (
                with(&|d| d.timestamp = now + Duration::hours(3)),
                DatumProblem::TimestampOutOfRange,
            ),
        ];
        for (d, expected) in cases {
            assert_eq!(validate(&d, now), Err(expected));
        }
        assert_eq!(validate(&ok, now), Ok(()));
        assert_eq!(validate(&with(&|d| d.value = 1e108), now), Ok(()));
        assert_eq!(
            validate(
                &with(&|d| {
                    d.dimensions = (0..30).map(|i| (format!("d{i}"), "v".into())).collect()
                }),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn plans_batches_by_count_and_size() {
        let now = Utc::now();
        let (batches, skipped) = plan(&data(2_500), now);
        assert!(skipped.is_empty());
        let sizes: Vec<usize> = batches.iter().map(|b| b.data.len()).collect();
        assert_eq!(sizes, [1_000, 1_000, 500]);
        assert_eq!(batches[2].indices.first(), Some(&2_000));

        // 30 long dimensions make each datum ~60 KB by the estimate: 16 per request.
        let big: Vec<Datum> = (0..40)
            .map(|i| Datum {
                dimensions: (0..30)
                    .map(|d| {
                        (
                            format!("dimension_{d:02}"),
                            format!("{i}-{}", "v".repeat(600)),
                        )
                    })
                    .collect(),
                ..datum(i, now)
            })
            .collect();
        let (batches, _) = plan(&big, now);
        for batch in &batches {
            let bytes: usize = batch
                .indices
                .iter()
                .map(|&i| estimated_bytes(&big[i]))
                .sum();
            assert!(bytes <= MAX_REQUEST_BYTES, "{bytes}");
        }
        assert!(batches.len() > 1);
        assert_eq!(batches.iter().map(|b| b.data.len()).sum::<usize>(), 40);
    }

    #[test]
    fn sdk_datum_has_sorted_dimensions_and_millisecond_time() {
        let now = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let sdk = to_sdk(&datum(7, now));
        assert_eq!(sdk.metric_name(), Some("accuracy"));
        let names: Vec<&str> = sdk.dimensions().iter().filter_map(|d| d.name()).collect();
        assert_eq!(names, ["model_id", "tenant_id"]);
        assert_eq!(
            sdk.timestamp().map(|t| t.to_millis().unwrap()),
            Some(1_700_000_000_123)
        );
        assert_eq!(sdk.value(), Some(7.0));
        assert_eq!(sdk.unit(), Some(&StandardUnit::None));
    }

    #[test]
    fn namespace_rules() {
        let client = mock_client!(aws_sdk_cloudwatch, []);
        assert!(CloudWatchExporter::new(client.clone(), "ModelWatch").is_ok());
        assert_eq!(
            CloudWatchExporter::new(client.clone(), "").unwrap_err(),
            InvalidNamespace
        );
        assert!(CloudWatchExporter::new(client.clone(), "AWS/EC2").is_err());
        assert!(CloudWatchExporter::new(client, "n".repeat(256)).is_err());
    }

    #[tokio::test]
    async fn sends_2500_data_in_3_requests() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let rule = mock!(Client::put_metric_data).then_compute_output(move |req| {
            assert_eq!(req.namespace(), Some("ModelWatchTest"));
            seen.lock().unwrap().push(req.metric_data().len());
            PutMetricDataOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let exporter = CloudWatchExporter::new(client, "ModelWatchTest")
            .unwrap()
            .with_concurrency(2);

        let mut input = data(2_500);
        input[10].value = f64::NAN;
        let report = exporter.put(&input).await.unwrap();

        assert_eq!(rule.num_calls(), 3);
        let mut sizes = sizes.lock().unwrap().clone();
        sizes.sort_unstable();
        assert_eq!(sizes, [499, 1_000, 1_000]);
        assert_eq!(report.requests, 3);
        assert_eq!(report.sent, 2_499);
        assert_eq!(
            report.skipped,
            [SkippedDatum {
                index: 10,
                problem: DatumProblem::NonFiniteValue
            }]
        );
    }

    #[tokio::test]
    async fn nothing_to_send_sends_nothing() {
        let rule =
            mock!(Client::put_metric_data).then_output(|| PutMetricDataOutput::builder().build());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let exporter = CloudWatchExporter::new(client, "ModelWatchTest").unwrap();
        let report = exporter.put(&[]).await.unwrap();
        assert_eq!(report, PutReport::default());
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn throttling_is_retried_by_the_sdk_then_succeeds() {
        let rule = mock!(Client::put_metric_data)
            .sequence()
            .error(|| {
                PutMetricDataError::generic(
                    ErrorMetadata::builder()
                        .code("Throttling")
                        .message("Rate exceeded")
                        .build(),
                )
            })
            .output(|| PutMetricDataOutput::builder().build())
            .build();
        let client = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::Sequential,
            [&rule],
            fast_retries
        );
        let exporter = CloudWatchExporter::new(client, "ModelWatchTest").unwrap();
        let report = exporter.put(&data(3)).await.unwrap();
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(report.sent, 3);
    }

    #[tokio::test]
    async fn persistent_5xx_is_unavailable_with_the_unsent_indices() {
        let rule = mock!(Client::put_metric_data)
            .sequence()
            .http_status(503, None)
            .repeatedly()
            .build();
        let client = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::Sequential,
            [&rule],
            fast_retries
        );
        let exporter = CloudWatchExporter::new(client, "ModelWatchTest").unwrap();
        let err = exporter.put(&data(3)).await.unwrap_err();
        assert_eq!(rule.num_calls(), 3, "the SDK's 3 attempts");
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.unsent(), [0, 1, 2]);
        assert!(matches!(
            StoreError::from(err),
            StoreError::Unavailable { .. }
        ));
    }

    #[tokio::test]
    async fn invalid_parameter_is_surfaced_without_retry() {
        let rule = mock!(Client::put_metric_data).then_error(|| {
            PutMetricDataError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message("The value NaN for parameter MetricData.member.1.Value is invalid.")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            [&rule],
            fast_retries
        );
        let exporter = CloudWatchExporter::new(client, "ModelWatchTest").unwrap();
        let err = exporter.put(&data(2)).await.unwrap_err();
        assert_eq!(rule.num_calls(), 1, "not retried");
        assert!(!err.is_retryable());
        let CloudWatchError::Rejected {
            sent,
            unsent,
            source,
            ..
        } = &err
        else {
            panic!("expected Rejected, got {err:?}");
        };
        assert_eq!((*sent, unsent.as_slice()), (0, &[0, 1][..]));
        assert!(matches!(
            source.as_service_error(),
            Some(PutMetricDataError::InvalidParameterValueException(_))
        ));
        assert!(matches!(StoreError::from(err), StoreError::Internal { .. }));
    }
}

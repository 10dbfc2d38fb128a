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
            &with(&|d| { d.dimensions = (0..30).map(|i| (format!("d{i}"), "v".into())).collect() }),
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

#[test]
fn requests_hold_whole_models_within_the_data_limit() {
    use crate::domain::{CounterTotals, MetricSet};
    use crate::testing::{model, tenant};
    let start = Utc::now() - chrono::TimeDelta::hours(2);
    // A classifier with every gauge it can have: 11 gauges and 2 counts a minute.
    let metrics = MetricSet {
        accuracy: Some(0.9),
        f1_score: Some(0.8),
        auc_roc: Some(0.7),
        latency_p50_ms: Some(5.0),
        latency_p95_ms: Some(9.0),
        latency_p99_ms: Some(12.0),
        throughput_rps: Some(2.0),
        error_rate: Some(0.01),
        cpu_utilization: Some(0.5),
        memory_utilization: Some(0.5),
        queue_depth: Some(3.0),
        predictions: 120,
        errors: 1,
        ..MetricSet::default()
    };
    // Models with 1 to 61 minutes each (an hour of backlog is the most exported).
    let models: Vec<ModelExport> = (0..40)
        .map(|i| ModelExport {
            tenant: tenant("t1"),
            model_id: model(&format!("m{i}")),
            minutes: (0..1 + (i * 7) % 61)
                .map(|k| {
                    (
                        start + chrono::TimeDelta::minutes(k as i64),
                        metrics.clone(),
                    )
                })
                .collect(),
            totals: CounterTotals::default(),
            as_of: start,
            through: start,
        })
        .collect();
    let client = mock_client!(aws_sdk_cloudwatch, []);
    for selection in [CloudWatchMetrics::All, CloudWatchMetrics::Core] {
        let exporter = CloudWatchMetricsExporter {
            exporter: CloudWatchExporter::new(client.clone(), "ModelWatch").expect("namespace"),
            metrics: selection,
        };
        let groups = exporter.request_groups(&models);
        assert_eq!(groups.iter().sum::<usize>(), models.len());
        let mut at = 0;
        for size in groups {
            let data = cloudwatch_data(&models[at..at + size], selection);
            assert!(
                size > 0 && data.len() <= MAX_DATA_PER_REQUEST,
                "{selection:?}: {} data",
                data.len()
            );
            // Each group is one request: the adapter plans it as one batch.
            assert_eq!(plan(&data, Utc::now()).0.len(), 1);
            at += size;
        }
    }
}

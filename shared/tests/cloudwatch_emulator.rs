//! The CloudWatch exporter against the local stack's emulator: data put with
//! `PutMetricData` read back with `GetMetricData`.
//!
//! Requires the stack's environment (`set -a; . "$(bash infra/local/stack.sh env)"`):
//! `MODELWATCH_LANE`, and `AWS_ENDPOINT_URL_CLOUDWATCH` or `AWS_ENDPOINT_URL`, the
//! endpoint the SDK sends CloudWatch requests to. Fails, never skips, when one is
//! unset or the endpoint does not answer. In the `localstack` lane the data are read
//! back; in the `all-moto` lane moto cannot answer the SDK's rpc-v2-cbor requests, and
//! the test checks that the exporter reports that as a refusal, saying so. Each run
//! uses its own namespace and its own `tenant_id` dimension value.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use chrono::{DateTime, Duration, DurationRound, Utc};
use modelwatch::adapters::cloudwatch::{CloudWatchError, CloudWatchExporter};
use modelwatch::domain::{Datum, Unit};

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The endpoint the SDK sends CloudWatch requests to, checked to answer HTTP.
async fn endpoint() -> String {
    let (name, endpoint) = ["AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|name| env(name).map(|v| (name, v)))
        .unwrap_or_else(|| {
            panic!(
                "neither AWS_ENDPOINT_URL_CLOUDWATCH nor AWS_ENDPOINT_URL is set: this test \
                 needs the local stack's environment (set -a; . \"$(bash infra/local/stack.sh env)\")"
            )
        });
    modelwatch::tls::reqwest_client()
        .build()
        .expect("HTTP client builds")
        .get(&endpoint)
        .timeout(StdDuration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}={endpoint} is not answering: {e}"));
    endpoint
}

/// The stack's lane (`MODELWATCH_LANE`): whether its CloudWatch endpoint speaks the
/// SDK's protocol (`localstack`) or is moto, which does not (`all-moto`).
fn lane() -> String {
    let lane = env("MODELWATCH_LANE").unwrap_or_else(|| {
        panic!("MODELWATCH_LANE is not set: this test needs the local stack's environment")
    });
    assert!(
        ["all-moto", "localstack"].contains(&lane.as_str()),
        "MODELWATCH_LANE={lane}: expected all-moto or localstack"
    );
    lane
}

/// A value unique to this test run: moto's `GetMetricData` does not filter by
/// namespace, so the dimensions must also be unique to the run.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| format!("{}-{}", Utc::now().timestamp_millis(), std::process::id()))
}

fn dims(model: &str) -> Vec<(String, String)> {
    vec![
        ("tenant_id".to_owned(), format!("t-{}", run_id())),
        ("model_id".to_owned(), model.to_owned()),
    ]
}

fn datum(name: &str, model: &str, at: DateTime<Utc>, value: f64, unit: Unit) -> Datum {
    Datum {
        name: name.to_owned(),
        dimensions: dims(model),
        timestamp: at,
        value,
        unit,
    }
}

/// A one-minute `stat` query of `name` for `model` (dimensions sorted, as sent).
fn query(id: &str, namespace: &str, name: &str, model: &str, stat: &str) -> MetricDataQuery {
    let mut dimensions = dims(model);
    dimensions.sort();
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(
            dimensions
                .into_iter()
                .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                .collect(),
        ))
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(60)
                .stat(stat)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn put_data_reads_back_with_get_metric_data() {
    let endpoint = endpoint().await;
    let lane = lane();
    let sdk = modelwatch::aws::load_sdk_config().await;
    let client = aws_sdk_cloudwatch::Client::new(&sdk);
    let namespace = format!("ModelWatchTest/{}", run_id());
    let exporter = CloudWatchExporter::new(client.clone(), &namespace).expect("namespace");

    let minute = Utc::now()
        .duration_trunc(Duration::minutes(1))
        .expect("truncate");
    let (t1, t2) = (minute - Duration::minutes(3), minute - Duration::minutes(2));
    let mut data = vec![
        datum("accuracy", "m1", t1, 0.9, Unit::None),
        datum("accuracy", "m1", t2, 0.95, Unit::None),
        datum("latency_p95", "m1", t2, 120.0, Unit::Milliseconds),
        datum("accuracy", "m1", t2, f64::NAN, Unit::None),
    ];
    // 1,200 one-minute points of a counter: more than one request's worth (and a
    // body large enough for the SDK to gzip it).
    let history: Vec<Datum> = (0..1_200)
        .map(|i| {
            datum(
                "predictions",
                "m2",
                t1 - Duration::minutes(i),
                f64::from(i as u32 % 7),
                Unit::Count,
            )
        })
        .collect();
    let history_sum: f64 = history.iter().map(|d| d.value).sum();
    data.extend(history);

    let result = exporter.put(&data).await;
    if lane == "all-moto" {
        let err = result.expect_err("moto answered rpc-v2-cbor: read the data back in this lane");
        assert!(
            matches!(err, CloudWatchError::Rejected { sent: 0, .. }) && !err.is_retryable(),
            "lane all-moto: moto's answer to rpc-v2-cbor must be a refusal, not {err:?}"
        );
        eprintln!(
            "lane all-moto: PutMetricData refused by moto (no rpc-v2-cbor), as expected; \
             the read-back runs in the localstack lane"
        );
        return;
    }
    let report = result.unwrap_or_else(|e| {
        panic!(
            "lane {lane}: PutMetricData against {endpoint} failed: {}",
            aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
        )
    });
    assert_eq!(report.sent, 1_203);
    assert_eq!(report.requests, 2);
    assert_eq!(report.skipped.len(), 1, "the NaN datum");

    let output = client
        .get_metric_data()
        .metric_data_queries(query("acc", &namespace, "accuracy", "m1", "Average"))
        .metric_data_queries(query("lat", &namespace, "latency_p95", "m1", "Maximum"))
        .metric_data_queries(query("pred", &namespace, "predictions", "m2", "Sum"))
        .start_time(AwsDateTime::from_secs(
            (t1 - Duration::hours(21)).timestamp(),
        ))
        .end_time(AwsDateTime::from_secs(
            (minute + Duration::minutes(5)).timestamp(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "GetMetricData failed: {}",
                aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
            )
        });
    let results: BTreeMap<&str, BTreeMap<i64, f64>> = output
        .metric_data_results()
        .iter()
        .map(|r| {
            let points = r
                .timestamps()
                .iter()
                .map(|t| t.secs())
                .zip(r.values().iter().copied())
                .collect();
            (r.id().unwrap_or_default(), points)
        })
        .collect();

    assert_eq!(
        results["acc"],
        BTreeMap::from([(t1.timestamp(), 0.9), (t2.timestamp(), 0.95)])
    );
    assert_eq!(results["lat"], BTreeMap::from([(t2.timestamp(), 120.0)]));
    assert_eq!(results["pred"].len(), 1_200);
    assert_eq!(results["pred"].values().sum::<f64>(), history_sum);
}

//! The remote-write client against a real Prometheus (the local stack's, 2.42 started
//! with `--web.enable-remote-write-receiver` and an out-of-order window).
//!
//! Requires `PROMETHEUS_URL` (e.g. `http://127.0.0.1:9090`) and fails, never skips,
//! when it is unset or Prometheus does not answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use modelwatch::adapters::remote_write::{
    RemoteWriteAuth, RemoteWriteClient, RemoteWriteError, RetryPolicy,
};
use modelwatch::domain::Series;
use serde_json::Value;

/// The Prometheus base URL, checked to answer `/-/ready`.
async fn prometheus() -> String {
    let base = std::env::var("PROMETHEUS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "PROMETHEUS_URL is not set: this test needs the local stack's Prometheus \
                 (e.g. PROMETHEUS_URL=http://127.0.0.1:9090, started with \
                 --web.enable-remote-write-receiver)"
            )
        });
    let base = base.trim_end_matches('/').to_owned();
    let ready = modelwatch::tls::reqwest_client()
        .build()
        .expect("HTTP client builds")
        .get(format!("{base}/-/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Prometheus at PROMETHEUS_URL={base} is not answering: {e}"));
    assert!(
        ready.status().is_success(),
        "Prometheus at PROMETHEUS_URL={base} is not ready: HTTP {}",
        ready.status()
    );
    base
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("ms fit in i64")
}

/// Runs an instant query at `at_ms` and returns `data.result`.
async fn query(base: &str, promql: &str, at_ms: i64) -> Vec<Value> {
    let url = url::Url::parse_with_params(
        &format!("{base}/api/v1/query"),
        &[
            ("query", promql.to_owned()),
            ("time", format!("{:.3}", at_ms as f64 / 1000.0)),
        ],
    )
    .expect("query URL");
    let body: Value = modelwatch::tls::reqwest_client()
        .build()
        .expect("HTTP client builds")
        .get(url)
        .send()
        .await
        .expect("query answered")
        .json()
        .await
        .expect("query JSON");
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `[(timestamp ms, value)]` of a range-vector result.
fn points(result: &Value) -> Vec<(i64, f64)> {
    result["values"]
        .as_array()
        .expect("a matrix result")
        .iter()
        .map(|p| {
            let ts = (p[0].as_f64().expect("timestamp") * 1000.0).round() as i64;
            let value: f64 = p[1].as_str().expect("value").parse().expect("a number");
            (ts, value)
        })
        .collect()
}

#[tokio::test]
async fn written_series_arrive_in_prometheus_with_their_labels_and_values() {
    let base = prometheus().await;
    let run = format!("rw{}x{}", now_ms(), std::process::id());
    let t1 = now_ms() - 60_000;
    let t2 = t1 + 30_000;
    let series = vec![
        // Samples given out of order: the client sends them in time order.
        Series::new(
            "ml_model_accuracy",
            [
                ("tenant_id", "t-rw"),
                ("model_id", "m-rw"),
                ("run", run.as_str()),
            ],
        )
        .with_sample(t2, 0.95)
        .with_sample(t1, 0.9),
        Series::new(
            "ml_model_predictions_total",
            [
                ("status", "success"),
                ("model_id", "m-rw"),
                ("run", run.as_str()),
            ],
        )
        .with_sample(t2, 42.0),
    ];
    let client = RemoteWriteClient::new(
        &format!("{base}/api/v1/write"),
        &RemoteWriteAuth::None,
        &SdkConfig::builder().build(),
        RetryPolicy::default(),
    )
    .expect("client");
    let report = client
        .write(&series)
        .await
        .expect("Prometheus accepted the write");
    assert_eq!((report.requests, report.series, report.samples), (1, 2, 3));

    let accuracy = query(
        &base,
        &format!("ml_model_accuracy{{run=\"{run}\"}}[5m]"),
        t2,
    )
    .await;
    assert_eq!(accuracy.len(), 1, "{accuracy:?}");
    let metric = &accuracy[0]["metric"];
    assert_eq!(metric["__name__"], "ml_model_accuracy");
    assert_eq!(metric["model_id"], "m-rw");
    assert_eq!(metric["tenant_id"], "t-rw");
    assert_eq!(points(&accuracy[0]), [(t1, 0.9), (t2, 0.95)]);

    let total = query(
        &base,
        &format!("ml_model_predictions_total{{run=\"{run}\"}}"),
        t2,
    )
    .await;
    assert_eq!(total.len(), 1, "{total:?}");
    assert_eq!(total[0]["metric"]["status"], "success");
    assert_eq!(total[0]["value"][1], "42");

    // Resending identical samples (what a retry on the next run does) is accepted.
    client
        .write(&series)
        .await
        .expect("identical resend accepted");

    // A different value at a timestamp Prometheus already holds is refused with 400:
    // not retried, and the error carries Prometheus's explanation.
    let conflicting = vec![
        Series::new(
            "ml_model_accuracy",
            [
                ("tenant_id", "t-rw"),
                ("model_id", "m-rw"),
                ("run", run.as_str()),
            ],
        )
        .with_sample(t2, 0.5),
    ];
    let err = client.write(&conflicting).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    match &err {
        RemoteWriteError::Rejected { status, body, .. } => {
            assert_eq!(*status, 400, "{body}");
            assert!(body.contains("duplicate sample"), "{body}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let after = query(&base, &format!("ml_model_accuracy{{run=\"{run}\"}}"), t2).await;
    assert_eq!(after[0]["value"][1], "0.95", "the held value is unchanged");
}

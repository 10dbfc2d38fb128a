//! End to end: every query of the Grafana dashboard (`infra/grafana/modelwatch.json`)
//! answers with data from what the real `aggregate` and `evaluate` remote-wrote to
//! the stack's Prometheus.
//!
//! A few minutes of traffic for a fresh tenant — a binary classifier with labels,
//! scores, typed errors and resource samples, a scored multiclass classifier, and a
//! regression model whose labels come late (sent to the actuals route before each
//! run) — go through
//! the real `ingest`, a few minutes in the past; `aggregate` runs after each minute,
//! as its schedule would, so the cumulative counters get one sample per run (a
//! `rate()` needs two). Gauges are stamped at their minute's end, the counters at the
//! run's clock time. The binary model's test-set baseline and traffic forecast are
//! registered through the real `api` with its first minutes as its reference window
//! (the multiclass classifier's too, for its confidence drift), and `evaluate` runs once after the last minute, writing the baselines, alert
//! thresholds, firing rules and the last hour's estimates and drift (their values
//! are checked). Then each panel target, with the dashboard's variables substituted as
//! Grafana would, runs as a range query over the traffic's minutes; a query that
//! errors or returns no series fails the test naming its panel.

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use modelwatch_e2e::dashboard::{self, PanelCheck, prometheus, run_panel_queries};
use modelwatch_e2e::{
    Stack, actuals_event, api_request, event, http_answer, ingest_event, unique_tenant, with_body,
};
use serde_json::{Value, json};

/// The minutes of traffic.
const MINUTES: i64 = 5;
/// The models, as Grafana formats a multi-value `$model_id` for `=~`.
const MODELS: &str = "m-dash-bin|m-dash-multi|m-dash-reg";

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A binary classifier's minute: scores and labels, a timeout and an OOM error, two
/// resource samples.
fn binary_batch(minute: DateTime<Utc>, k: i64) -> Vec<u8> {
    let predictions: Vec<Value> = (0..30)
        .map(|i| {
            let t = stamp(minute + TimeDelta::seconds(i * 2));
            match i {
                28 => {
                    json!({"timestamp": t, "latency_ms": 900.0, "status": "error", "error_type": "timeout"})
                }
                29 => {
                    json!({"timestamp": t, "latency_ms": 40.0, "status": "error", "error_type": "oom"})
                }
                _ => json!({"timestamp": t, "latency_ms": 5.0 + (i % 7) as f64 * 3.0, "status": "ok",
                            "predicted": i % 3 != 0, "actual": i % 2 == 0,
                            "score": ((i * 7 + k) % 20) as f64 / 20.0}),
            }
        })
        .collect();
    let resources = json!([
        {"timestamp": stamp(minute), "cpu_utilization": 0.4, "memory_utilization": 0.5,
         "gpu_utilization": 0.1, "queue_depth": 7, "cache_hits": 90, "cache_misses": 10},
        {"timestamp": stamp(minute + TimeDelta::seconds(30)), "cpu_utilization": 0.6,
         "memory_utilization": 0.7, "gpu_utilization": 0.3, "queue_depth": 3, "cache_hits": 45,
         "cache_misses": 5}
    ]);
    json!({"model_id": "m-dash-bin", "batch_id": format!("bin-{k}"), "task": "binary_classification",
           "predictions": predictions, "resources": resources})
    .to_string()
    .into_bytes()
}

/// A multiclass classifier's minute: labeled predictions scored with the predicted
/// label's probability, less confident from the third minute on.
fn multiclass_batch(minute: DateTime<Utc>, k: i64) -> Vec<u8> {
    let predictions: Vec<Value> = (0..20)
        .map(|i| {
            let label = ["billing", "sales", "support"][(i % 3) as usize];
            let low = if k < 2 { 0.7 } else { 0.4 };
            json!({"timestamp": stamp(minute + TimeDelta::seconds(i * 3)), "latency_ms": 9.0,
                   "status": "ok", "predicted": label, "actual": label,
                   "score": low + 0.015 * i as f64})
        })
        .collect();
    json!({"model_id": "m-dash-multi", "batch_id": format!("multi-{k}"),
           "task": "multiclass_classification", "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// A regression model's minute: predictions with ids and no actuals, whose labels
/// come late (`regression_labels`).
fn regression_batch(minute: DateTime<Utc>, k: i64) -> Vec<u8> {
    let predictions: Vec<Value> = (0..12)
        .map(|i| {
            json!({"prediction_id": format!("r-{k}-{i}"),
                   "timestamp": stamp(minute + TimeDelta::seconds(i * 4)), "latency_ms": 3.0 + i as f64,
                   "status": "ok", "predicted": 10.0 + i as f64 * 0.5})
        })
        .collect();
    json!({"model_id": "m-dash-reg", "batch_id": format!("reg-{k}"), "task": "regression",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// The late labels of `regression_batch(minute, k)`, known 50 s to a few minutes
/// after their predictions.
fn regression_labels(minute: DateTime<Utc>, k: i64) -> Vec<u8> {
    let actuals: Vec<Value> = (0..12)
        .map(|i| {
            json!({"prediction_id": format!("r-{k}-{i}"), "actual": 10.0 + i as f64,
                   "timestamp": stamp(minute + TimeDelta::seconds(50 + i * 15))})
        })
        .collect();
    json!({"model_id": "m-dash-reg", "batch_id": format!("reg-labels-{k}"), "actuals": actuals})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn every_grafana_panel_query_returns_the_exported_series() {
    let dashboard = dashboard::load();

    // Traffic: MINUTES closed minutes ending a minute ago, aggregate after each (its
    // scheduled time just after the minute; the run's clock stamps the counters).
    let stack = Stack::get();
    let tenant = unique_tenant("dashboards");
    let now = Utc::now();
    let first = now.duration_trunc(TimeDelta::minutes(1)).expect("minute")
        - TimeDelta::minutes(MINUTES + 1);
    for k in 0..MINUTES {
        let minute = first + TimeDelta::minutes(k);
        for event in [
            ingest_event(&tenant, &binary_batch(minute, k)),
            ingest_event(&tenant, &multiclass_batch(minute, k)),
            ingest_event(&tenant, &regression_batch(minute, k)),
            actuals_event(&tenant, &regression_labels(minute, k)),
        ] {
            let answer = stack.invoke("ingest", &event).await;
            assert_eq!(answer["statusCode"], 202, "{answer}");
        }
        let mut trigger = event("aggregate-scheduled.json");
        trigger["time"] = (minute + TimeDelta::seconds(65)).to_rfc3339().into();
        let report = stack.invoke("aggregate", &trigger).await;
        // Prometheus' export (CloudWatch's is checked by tests/tests/aggregate.rs).
        assert!(
            report["exports"].as_array().is_some_and(|e| e
                .iter()
                .any(|e| e["exporter"] == "prometheus" && e["outcome"] == "delivered")),
            "aggregate run {k}: {report}"
        );
    }
    // evaluate's series: baselines registered for the binary model, whose accuracy
    // (about one half) is far below 0.99 x (1 - 0.05), and its first four minutes (112
    // labeled scores) as the reference window of its estimates and drift.
    let path = "/api/v1/monitoring/performance/m-dash-bin/baseline";
    let baseline = json!({"test_set": {"evaluated_at": stamp(first - TimeDelta::days(1)),
                          "metrics": {"accuracy": 0.99}}, "throughput_forecast_rps": 0.5,
                          "reference": {"from": stamp(first), "to": stamp(first + TimeDelta::minutes(4))}});
    let request = with_body(
        api_request(Some(&tenant), "PUT", path, &[]),
        Some("application/json"),
        &baseline.to_string(),
    );
    let (status, answer) = http_answer(&stack.invoke("api", &request).await);
    assert_eq!(status, 200, "{answer}");
    let reference = json!({"reference": {"from": stamp(first),
                                         "to": stamp(first + TimeDelta::minutes(2))}});
    let request = with_body(
        api_request(
            Some(&tenant),
            "PUT",
            "/api/v1/monitoring/performance/m-dash-multi/baseline",
            &[],
        ),
        Some("application/json"),
        &reference.to_string(),
    );
    let (status, answer) = http_answer(&stack.invoke("api", &request).await);
    assert_eq!(status, 200, "{answer}");
    let mut trigger = event("evaluate-scheduled.json");
    let evaluated_until = first + TimeDelta::minutes(MINUTES);
    trigger["time"] = (evaluated_until + TimeDelta::seconds(5))
        .to_rfc3339()
        .into();
    let report = stack.invoke("evaluate", &trigger).await;
    assert_eq!(report["prometheus"]["outcome"], "delivered", "{report}");

    // Within Prometheus' 5-minute lookback of the last minute's gauges.
    let queried = Utc::now() + TimeDelta::seconds(1);
    let at = queried.timestamp().to_string();
    let since = (first.timestamp() - 60).to_string();

    // The variables' label_values queries list the tenant and both models.
    let tenants = prometheus(
        stack,
        "/api/v1/label/tenant_id/values",
        &[
            ("match[]", "ml_model_predictions_total".to_owned()),
            ("start", since.clone()),
            ("end", at.clone()),
        ],
    )
    .await;
    assert!(
        tenants["data"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == tenant.as_str())),
        "$tenant_id does not list {tenant}: {tenants}"
    );
    let models = prometheus(
        stack,
        "/api/v1/label/model_id/values",
        &[
            (
                "match[]",
                format!("ml_model_predictions_total{{tenant_id=\"{tenant}\"}}"),
            ),
            ("start", since),
            ("end", at.clone()),
        ],
    )
    .await;
    assert_eq!(
        models["data"],
        json!(["m-dash-bin", "m-dash-multi", "m-dash-reg"]),
        "$model_id"
    );

    // evaluate's values, at the evaluated minute.
    let value = async |query: String| -> Vec<(String, f64)> {
        let answer = prometheus(
            stack,
            "/api/v1/query",
            &[("query", query), ("time", at.clone())],
        )
        .await;
        answer["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let rule = s["metric"]["rule_id"].as_str().unwrap_or("").to_owned();
                        let v = s["value"][1].as_str().and_then(|v| v.parse().ok());
                        (rule, v.unwrap_or(f64::NAN))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let bin = format!("tenant_id=\"{tenant}\", model_id=\"m-dash-bin\"");
    assert_eq!(
        value(format!("ml_model_baseline{{{bin}, metric=\"accuracy\"}}")).await,
        [(String::new(), 0.99)]
    );
    assert_eq!(
        value(format!("ml_model_baseline{{{bin}, metric=\"throughput\"}}")).await,
        [(String::new(), 0.5)]
    );
    let accuracy_rule = format!(
        "{{{bin}, rule_id=\"default-accuracy\", metric=\"accuracy\", severity=\"critical\"}}"
    );
    let threshold = value(format!("ml_model_alert_threshold{accuracy_rule}")).await;
    assert!(
        matches!(threshold.as_slice(), [(_, t)] if (t - 0.99 * 0.95).abs() < 1e-9),
        "{threshold:?}"
    );
    assert_eq!(
        value(format!("ml_model_alert_firing{accuracy_rule}")).await,
        [("default-accuracy".to_owned(), 1.0)]
    );
    assert_eq!(
        value(format!(
            "ml_model_alert_threshold{{{bin}, rule_id=\"default-latency_p95-max\"}}"
        ))
        .await,
        [("default-latency_p95-max".to_owned(), 0.1)],
        "the default ceiling, in seconds"
    );
    assert_eq!(
        value(format!(
            "ml_model_alert_threshold{{{bin}, rule_id=\"default-prediction_psi\"}}"
        ))
        .await,
        [("default-prediction_psi".to_owned(), 0.2)],
        "the reference brings the drift rule"
    );
    for estimated in [
        format!("ml_model_prediction_drift{{{bin}, statistic=\"psi\", window=\"1h\"}}"),
        format!("ml_model_estimated_accuracy{{{bin}, window=\"1h\"}}"),
    ] {
        let found = value(estimated.clone()).await;
        assert!(
            matches!(found.as_slice(), [(_, v)] if (0.0..=10.0).contains(v)),
            "{estimated}: {found:?}"
        );
    }
    // The multiclass classifier's confidence fell after its two reference minutes.
    let confidence = value(format!(
        "ml_model_confidence_drift{{tenant_id=\"{tenant}\", model_id=\"m-dash-multi\", statistic=\"psi\", window=\"1h\"}}"
    ))
    .await;
    assert!(
        matches!(confidence.as_slice(), [(_, v)] if *v > 0.2),
        "{confidence:?}"
    );
    let stamped = prometheus(
        stack,
        "/api/v1/query",
        &[
            (
                "query",
                format!("timestamp(ml_model_alert_firing{accuracy_rule})"),
            ),
            ("time", at.clone()),
        ],
    )
    .await;
    assert_eq!(
        stamped["data"]["result"][0]["value"][1],
        evaluated_until.timestamp().to_string(),
        "stamped with the evaluated minute's end"
    );

    // Every panel target, over the minutes of traffic.
    let PanelCheck { checked, failures } =
        run_panel_queries(stack, &dashboard, &tenant, MODELS, first, queried).await;
    assert!(
        failures.is_empty(),
        "{} of the dashboard's queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 20, "only {checked} queries checked");
}

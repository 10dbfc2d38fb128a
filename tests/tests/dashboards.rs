//! End to end: every query of the Grafana dashboard (`infra/grafana/modelwatch.json`)
//! answers with data from what the real `aggregate` remote-wrote to the stack's
//! Prometheus.
//!
//! A few minutes of traffic for a fresh tenant — a binary classifier with labels,
//! scores, typed errors and resource samples, and a regression model — go through
//! the real `ingest`, a few minutes in the past; `aggregate` runs after each minute,
//! as its schedule would, so the cumulative counters get one sample per run (a
//! `rate()` needs two). Gauges are stamped at their minute's end, the counters at the
//! run's clock time. Then each panel target, with the dashboard's variables
//! substituted as Grafana would, runs as an instant query just after the last run —
//! "now" on a dashboard; a query that errors or returns no series fails the test
//! naming its panel.

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use modelwatch_e2e::{Stack, event, ingest_event, repo_root, unique_tenant};
use serde_json::{Value, json};

/// The minutes of traffic.
const MINUTES: i64 = 5;
/// The models, as Grafana formats a multi-value `$model_id` for `=~`.
const MODELS: &str = "m-dash-bin|m-dash-reg";
/// What Grafana substitutes for its interval variables at a one-minute step.
const INTERVALS: [(&str, &str); 4] = [
    ("${__rate_interval}", "5m"),
    ("$__rate_interval", "5m"),
    ("${__interval}", "1m"),
    ("$__interval", "1m"),
];

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

/// A regression model's minute.
fn regression_batch(minute: DateTime<Utc>, k: i64) -> Vec<u8> {
    let predictions: Vec<Value> = (0..12)
        .map(|i| {
            json!({"timestamp": stamp(minute + TimeDelta::seconds(i * 4)), "latency_ms": 3.0 + i as f64,
                   "status": "ok", "predicted": 10.0 + i as f64 * 0.5, "actual": 10.0 + i as f64})
        })
        .collect();
    json!({"model_id": "m-dash-reg", "batch_id": format!("reg-{k}"), "task": "regression",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `expr` with the dashboard's variables replaced as Grafana would for `tenant`.
fn substitute(expr: &str, tenant: &str) -> String {
    let mut q = expr
        .replace("${tenant_id}", tenant)
        .replace("$tenant_id", tenant)
        .replace("${model_id}", MODELS)
        .replace("$model_id", MODELS);
    for (var, value) in INTERVALS {
        q = q.replace(var, value);
    }
    q
}

async fn prometheus(stack: &Stack, path: &str, params: &[(&str, String)]) -> Value {
    let url = url::Url::parse_with_params(
        &format!("{}{path}", stack.var("PROMETHEUS_URL")),
        params.iter().map(|(k, v)| (*k, v.as_str())),
    )
    .expect("query URL");
    stack
        .http()
        .get(url)
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON answer")
}

/// The dashboard's variables: the Prometheus datasource, tenant and model queries.
fn check_variables(dashboard: &Value) {
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 38,
        "schemaVersion"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    for name in ["tenant_id", "model_id"] {
        assert_eq!(variable(name)["type"], "query", "${name}");
        assert!(
            variable(name)["definition"]
                .as_str()
                .is_some_and(|q| q.starts_with("label_values(")),
            "${name} is a label_values query"
        );
    }
}

#[tokio::test]
async fn every_grafana_panel_query_returns_the_exported_series() {
    let path = repo_root().join("infra/grafana/modelwatch.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    check_variables(&dashboard);

    // Traffic: MINUTES closed minutes ending a minute ago, aggregate after each (its
    // scheduled time just after the minute; the run's clock stamps the counters).
    let stack = Stack::get();
    let tenant = unique_tenant("dashboards");
    let now = Utc::now();
    let first = now.duration_trunc(TimeDelta::minutes(1)).expect("minute")
        - TimeDelta::minutes(MINUTES + 1);
    for k in 0..MINUTES {
        let minute = first + TimeDelta::minutes(k);
        for body in [binary_batch(minute, k), regression_batch(minute, k)] {
            let answer = stack.invoke("ingest", &ingest_event(&tenant, &body)).await;
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
        json!(["m-dash-bin", "m-dash-reg"]),
        "$model_id"
    );

    // Every panel target.
    let mut failures = Vec::new();
    let mut checked = 0;
    for panel in panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} uses the $datasource variable"
        );
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or("?");
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?} target {ref_id} has no expr"));
            let filtered = expr.contains("tenant_id=\"$tenant_id\"")
                && expr.contains("model_id=~\"$model_id\"");
            if !filtered {
                failures.push(format!(
                    "panel {title:?} target {ref_id}: not filtered by tenant_id=\"$tenant_id\", model_id=~\"$model_id\": {expr}"
                ));
                continue;
            }
            let query = substitute(expr, &tenant);
            if query.contains('$') {
                failures.push(format!(
                    "panel {title:?} target {ref_id}: unknown variable left in {query}"
                ));
                continue;
            }
            checked += 1;
            let answer = prometheus(
                stack,
                "/api/v1/query",
                &[("query", query.clone()), ("time", at.clone())],
            )
            .await;
            if answer["status"] != "success" {
                failures.push(format!(
                    "panel {title:?} target {ref_id}: {query} failed: {answer}"
                ));
            } else if answer["data"]["result"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                failures.push(format!(
                    "panel {title:?} target {ref_id}: {query} returned no data at {queried}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the dashboard's queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 10, "only {checked} queries checked");
}

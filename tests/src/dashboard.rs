//! The Grafana dashboard (`infra/grafana/modelwatch.json`) and its queries, run as
//! Grafana runs them against the stack's Prometheus: variables substituted, each
//! panel target a range query over the dashboard's time range.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::{Stack, repo_root};

/// What Grafana substitutes for its interval variables at a one-minute step.
const INTERVALS: [(&str, &str); 4] = [
    ("${__rate_interval}", "5m"),
    ("$__rate_interval", "5m"),
    ("${__interval}", "1m"),
    ("$__interval", "1m"),
];

/// The dashboard's JSON, with its variables checked: a Prometheus datasource variable,
/// and `tenant_id` and `model_id` as `label_values` queries.
pub fn load() -> Value {
    let path = repo_root().join("infra/grafana/modelwatch.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
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
    dashboard
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

/// `expr` with the dashboard's variables replaced as Grafana would for `tenant` and
/// the models `models` (a multi-value `$model_id`, formatted `a|b` for `=~`).
fn substitute(expr: &str, tenant: &str, models: &str) -> String {
    let mut q = expr
        .replace("${tenant_id}", tenant)
        .replace("$tenant_id", tenant)
        .replace("${model_id}", models)
        .replace("$model_id", models);
    for (var, value) in INTERVALS {
        q = q.replace(var, value);
    }
    q
}

/// A GET of Prometheus' HTTP API `path` with `params`, as JSON.
pub async fn prometheus(stack: &Stack, path: &str, params: &[(&str, String)]) -> Value {
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

/// What running the panels' queries found.
#[derive(Debug)]
pub struct PanelCheck {
    /// Queries run.
    pub checked: usize,
    /// Each target that is not filtered by the variables, fails, or returns no data,
    /// named by panel and target.
    pub failures: Vec<String>,
}

/// Runs every panel target of `dashboard` for `tenant` and `models` as a range query
/// from `start` to `end` at a one-minute step, as a dashboard over that time range
/// does. The steps are counted back from `end`, so `end` itself is evaluated ("now" on
/// a dashboard): counters stamped in the last seconds are seen.
pub async fn run_panel_queries(
    stack: &Stack,
    dashboard: &Value,
    tenant: &str,
    models: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> PanelCheck {
    let step = TimeDelta::minutes(1);
    let start = end - step * i32::try_from((end - start).num_minutes() + 1).unwrap_or(i32::MAX);
    let mut failures = Vec::new();
    let mut checked = 0;
    for panel in panels(dashboard) {
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
            let query = substitute(expr, tenant, models);
            if query.contains('$') {
                failures.push(format!(
                    "panel {title:?} target {ref_id}: unknown variable left in {query}"
                ));
                continue;
            }
            checked += 1;
            let answer = prometheus(
                stack,
                "/api/v1/query_range",
                &[
                    ("query", query.clone()),
                    ("start", seconds(start)),
                    ("end", seconds(end)),
                    ("step", step.num_seconds().to_string()),
                ],
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
                    "panel {title:?} target {ref_id}: {query} returned no data from {start} to {end}"
                ));
            }
        }
    }
    PanelCheck { checked, failures }
}

/// `t` as Prometheus' API takes a time: seconds since the epoch, with milliseconds.
fn seconds(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

//! End to end: the monitoring API's routes through the real `api` binary with API
//! Gateway v2 events, against the local stack — rules and baselines written and read
//! back, the default rules they derive, validation, the alert history's parameters,
//! the body, method and media-type refusals, and tenant isolation on every route.

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch_e2e::{
    Stack, api_request, http_answer, ingest_event, sample_batch, unique_tenant, with_body,
};
use serde_json::{Value, json};

/// The model of `events/ingest-batch.json` (a binary classifier).
const MODEL: &str = "model-xyz789";

fn model_path(resource: &str) -> String {
    let base = format!("/api/v1/monitoring/performance/{MODEL}");
    if resource.is_empty() {
        base
    } else {
        format!("{base}/{resource}")
    }
}

/// Registers [`MODEL`] for `tenant` through the real `ingest`.
async fn register_model(stack: &Stack, tenant: &str) {
    let batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(tenant, batch.to_string().as_bytes()),
        )
        .await;
    let (status, body) = http_answer(&answer);
    assert_eq!(status, 202, "{body}");
}

async fn get(stack: &Stack, tenant: &str, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let request = api_request(Some(tenant), "GET", path, query);
    http_answer(&stack.invoke("api", &request).await)
}

async fn put(stack: &Stack, tenant: &str, path: &str, body: &Value) -> (u16, Value) {
    let request = with_body(
        api_request(Some(tenant), "PUT", path, &[]),
        Some("application/json"),
        &body.to_string(),
    );
    http_answer(&stack.invoke("api", &request).await)
}

fn rule_set() -> Value {
    json!({"model_id": MODEL, "alert_rules": [
        {"metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "1h", "severity": "critical"},
        {"id": "slow", "metric": "latency_p95", "condition": "above", "threshold": 100, "window": "15m", "severity": "warning"},
        {"metric": "error_rate", "condition": "above", "threshold": 0.05, "window": "5m", "severity": "critical", "min_samples": 10}]})
}

fn baseline() -> Value {
    json!({"test_set": {"evaluated_at": "2025-11-01T00:00:00Z",
        "metrics": {"accuracy": 0.9, "f1_score": 0.88}}, "throughput_forecast_rps": 150})
}

fn ids(rules: &Value) -> Vec<&str> {
    rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect()
}

fn problem_fields(body: &Value) -> Vec<&str> {
    body["error"]["details"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .map(|p| p["field"].as_str().expect("field"))
        .collect()
}

#[tokio::test]
async fn rules_and_baseline_are_stored_and_the_defaults_follow_the_baseline() {
    let stack = Stack::get();
    let tenant = unique_tenant("api-rules");
    register_model(stack, &tenant).await;

    let (status, rules) = get(stack, &tenant, &model_path("alert-rules"), &[]).await;
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["alert_rules"], json!([]));
    assert_eq!(rules["use_default_rules"], true);
    assert_eq!(rules["updated_at"], Value::Null);
    assert_eq!(
        ids(&rules["default_rules"]),
        ["default-latency_p95-max", "default-error_rate"],
        "no baseline yet: only the PERF_* ceilings"
    );

    let (status, body) = get(stack, &tenant, &model_path("baseline"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["test_set"], Value::Null);
    assert_eq!(body["captured"], Value::Null);
    let (_, models) = get(stack, &tenant, "/api/v1/monitoring/models", &[]).await;
    let first_seen: DateTime<Utc> = models["models"][0]["first_seen"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("first_seen");
    let due: DateTime<Utc> = body["capture_due_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("capture_due_at while not captured");
    assert_eq!(due, first_seen + TimeDelta::hours(24));

    let (status, stored) = put(stack, &tenant, &model_path("baseline"), &baseline()).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["test_set"],
        json!({"evaluated_at": "2025-11-01T00:00:00Z", "metrics": {"accuracy": 0.9, "f1_score": 0.88}})
    );
    assert_eq!(stored["throughput_forecast_rps"], 150.0);
    assert!(stored["updated_at"].is_string(), "{stored}");
    let (_, read) = get(stack, &tenant, &model_path("baseline"), &[]).await;
    assert_eq!(read, stored, "PUT answers what GET shows");

    let (_, rules) = get(stack, &tenant, &model_path("alert-rules"), &[]).await;
    assert_eq!(
        ids(&rules["default_rules"]),
        [
            "default-accuracy",
            "default-f1_score",
            "default-latency_p95-max",
            "default-error_rate",
            "default-throughput"
        ]
    );
    let accuracy = &rules["default_rules"][0];
    assert_eq!(accuracy["condition"], "below");
    let threshold = accuracy["threshold"].as_f64().expect("threshold");
    assert!(
        (threshold - 0.855).abs() < 1e-9,
        "0.9 × (1 − PERF_ACCURACY_THRESHOLD 0.05), got {threshold}"
    );
    assert_eq!(accuracy["status"], Value::Null, "not evaluated yet");
    assert!(accuracy["basis"].is_string());
    let throughput = &rules["default_rules"][4];
    assert!((throughput["threshold"].as_f64().expect("threshold") - 120.0).abs() < 1e-9);

    let (status, put_rules) = put(stack, &tenant, &model_path("alert-rules"), &rule_set()).await;
    assert_eq!(status, 200, "{put_rules}");
    let (_, rules) = get(stack, &tenant, &model_path("alert-rules"), &[]).await;
    assert_eq!(rules, put_rules, "PUT answers what GET shows");
    assert_eq!(
        ids(&rules["alert_rules"]),
        ["accuracy-below-0.85-1h", "slow", "error_rate-above-0.05-5m"]
    );
    assert_eq!(rules["alert_rules"][1]["min_samples"], 30, "the default");
    assert_eq!(rules["alert_rules"][2]["min_samples"], 10);
    assert!(rules["alert_rules"][0].get("basis").is_none());
    assert!(rules["updated_at"].is_string());

    // The set is replaced whole; switching the defaults off empties them.
    let (status, replaced) = put(
        stack,
        &tenant,
        &model_path("alert-rules"),
        &json!({"alert_rules": [], "use_default_rules": false}),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["alert_rules"], json!([]));
    assert_eq!(replaced["default_rules"], json!([]));
    assert_eq!(replaced["use_default_rules"], false);
}

#[tokio::test]
async fn another_tenant_gets_404_on_every_route_and_changes_nothing() {
    let stack = Stack::get();
    let owner = unique_tenant("api-owner");
    let other = unique_tenant("api-other");
    register_model(stack, &owner).await;
    assert_eq!(
        put(stack, &owner, &model_path("alert-rules"), &rule_set())
            .await
            .0,
        200
    );
    assert_eq!(
        put(stack, &owner, &model_path("baseline"), &baseline())
            .await
            .0,
        200
    );
    let (_, rules_before) = get(stack, &owner, &model_path("alert-rules"), &[]).await;
    let (_, baseline_before) = get(stack, &owner, &model_path("baseline"), &[]).await;

    for resource in ["", "trends", "alert-rules", "baseline", "alerts"] {
        let (status, body) = get(stack, &other, &model_path(resource), &[]).await;
        assert_eq!(status, 404, "GET {resource}: {body}");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["details"]["model_id"], MODEL);
    }
    let hostile_rules = json!({"alert_rules": [], "use_default_rules": false});
    let hostile_baseline = json!({"throughput_forecast_rps": 1});
    for (resource, body) in [
        ("alert-rules", &hostile_rules),
        ("baseline", &hostile_baseline),
    ] {
        let (status, answer) = put(stack, &other, &model_path(resource), body).await;
        assert_eq!(status, 404, "PUT {resource}: {answer}");
        assert_eq!(answer["error"]["code"], "model_not_found");
    }
    let (_, models) = get(stack, &other, "/api/v1/monitoring/models", &[]).await;
    assert_eq!(models["models"], json!([]));

    let (_, rules_after) = get(stack, &owner, &model_path("alert-rules"), &[]).await;
    let (_, baseline_after) = get(stack, &owner, &model_path("baseline"), &[]).await;
    assert_eq!(rules_after, rules_before, "the owner's rules are unchanged");
    assert_eq!(
        baseline_after, baseline_before,
        "the owner's baseline is unchanged"
    );
}

#[tokio::test]
async fn invalid_bodies_are_refused_naming_every_field() {
    let stack = Stack::get();
    let tenant = unique_tenant("api-invalid");
    register_model(stack, &tenant).await;

    let rules = json!({"model_id": "another-model", "alert_rules": [
        {"metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "1h", "severity": "critical"},
        {"metric": "nope", "condition": "sideways", "threshold": "high", "window": "90s", "severity": "loud", "colour": "red"},
        {"id": "default-mine", "metric": "error_rate", "condition": "above", "threshold": 0.1, "window": "31d", "severity": "info"}],
        "use_default_rules": "yes"});
    let (status, body) = put(stack, &tenant, &model_path("alert-rules"), &rules).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_body");
    let fields = problem_fields(&body);
    for field in [
        "model_id",
        "use_default_rules",
        "alert_rules[1].metric",
        "alert_rules[1].condition",
        "alert_rules[1].threshold",
        "alert_rules[1].window",
        "alert_rules[1].severity",
        "alert_rules[1].colour",
        "alert_rules[2].window",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    assert!(
        !fields.iter().any(|f| f.starts_with("alert_rules[0]")),
        "{fields:?}"
    );

    let baseline = json!({"test_set": {"evaluated_at": "2999-01-01T00:00:00Z",
        "metrics": {"accuracy": 1.5, "rmse": 0.1}}, "throughput_forecast_rps": -3, "extra": true});
    let (status, body) = put(stack, &tenant, &model_path("baseline"), &baseline).await;
    assert_eq!(status, 400, "{body}");
    let mut fields = problem_fields(&body);
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "extra",
            "test_set.evaluated_at",
            "test_set.metrics.accuracy",
            "test_set.metrics.rmse",
            "throughput_forecast_rps"
        ],
        "{body}"
    );

    // Nothing of the refused bodies was stored.
    let (_, rules) = get(stack, &tenant, &model_path("alert-rules"), &[]).await;
    assert_eq!(rules["updated_at"], Value::Null);
    let (_, stored) = get(stack, &tenant, &model_path("baseline"), &[]).await;
    assert_eq!(stored["updated_at"], Value::Null);
}

#[tokio::test]
async fn bodies_methods_and_media_types_are_checked() {
    let stack = Stack::get();
    let tenant = unique_tenant("api-checks");
    register_model(stack, &tenant).await;
    for resource in ["alert-rules", "baseline"] {
        let path = model_path(resource);
        let request = |content_type: Option<&str>, body: &str| {
            with_body(
                api_request(Some(&tenant), "PUT", &path, &[]),
                content_type,
                body,
            )
        };

        let answer = stack.invoke("api", &request(Some("text/csv"), "a,b")).await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, 415, "{body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        assert_eq!(body["error"]["details"]["content_type"], "text/csv");

        let large = format!(
            "{{\"alert_rules\": [], \"pad\": \"{}\"}}",
            "x".repeat(70_000)
        );
        let answer = stack
            .invoke("api", &request(Some("application/json"), &large))
            .await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["details"]["limit"], 65_536);

        for broken in ["{\"alert_rules\": [", "not json", ""] {
            let answer = stack
                .invoke("api", &request(Some("application/json"), broken))
                .await;
            let (status, body) = http_answer(&answer);
            assert_eq!(status, 400, "{broken:?}: {body}");
            assert_eq!(body["error"]["code"], "invalid_body");
        }

        // Without a Content-Type the body is read as JSON.
        let answer = stack.invoke("api", &request(None, "[]")).await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem_fields(&body), [""], "{body}");

        for method in ["DELETE", "POST", "PATCH"] {
            let answer = stack
                .invoke("api", &api_request(Some(&tenant), method, &path, &[]))
                .await;
            let (status, body) = http_answer(&answer);
            assert_eq!(status, 405, "{method} {path}: {body}");
            assert_eq!(body["error"]["details"]["allowed"], json!(["GET", "PUT"]));
        }
    }
    for path in [
        model_path(""),
        model_path("trends"),
        model_path("alerts"),
        "/api/v1/monitoring/models".to_owned(),
    ] {
        let answer = stack
            .invoke("api", &api_request(Some(&tenant), "PUT", &path, &[]))
            .await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, 405, "PUT {path}: {body}");
        assert_eq!(body["error"]["details"]["allowed"], json!(["GET"]));
    }
    let answer = stack
        .invoke(
            "api",
            &api_request(Some(&tenant), "GET", "/api/v1/monitoring/predictions", &[]),
        )
        .await;
    let (status, body) = http_answer(&answer);
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["details"]["allowed"], json!(["POST"]));
    for path in [
        "/api/v1/monitoring/nothing",
        "/api/v1/monitoring/performance/m/unknown",
    ] {
        let answer = stack
            .invoke("api", &api_request(Some(&tenant), "GET", path, &[]))
            .await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn the_alert_history_starts_empty_and_checks_its_parameters() {
    let stack = Stack::get();
    let tenant = unique_tenant("api-alerts");
    register_model(stack, &tenant).await;
    let (status, body) = get(stack, &tenant, &model_path("alerts"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"model_id": MODEL, "alerts": [], "next_token": null})
    );
    let valid = [
        ("state", "firing"),
        ("limit", "200"),
        ("next_token", "default-error_rate@1764324900000"),
    ];
    let (status, body) = get(stack, &tenant, &model_path("alerts"), &valid).await;
    assert_eq!(status, 200, "{body}");

    for (name, value, allowed) in [
        ("state", "open", json!(["firing", "resolved"])),
        ("limit", "0", json!(["1..200"])),
        ("limit", "201", json!(["1..200"])),
        ("limit", "many", json!(["1..200"])),
        ("next_token", "not-a-token", json!([])),
        ("window", "1h", json!(["state", "limit", "next_token"])),
    ] {
        let (status, body) = get(stack, &tenant, &model_path("alerts"), &[(name, value)]).await;
        assert_eq!(status, 400, "{name}={value}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
        assert_eq!(body["error"]["details"]["parameter"], name, "{body}");
        assert_eq!(body["error"]["details"]["allowed"], allowed, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn trends_before_the_first_evaluation_and_the_model_list() {
    let stack = Stack::get();
    let tenant = unique_tenant("api-trends");
    register_model(stack, &tenant).await;
    let (status, body) = get(stack, &tenant, &model_path("trends"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let empty = json!({"7_day_trend": "insufficient_data", "slope": null,
        "projected_baseline_breach": null, "confidence": null, "threshold": null, "points": 0,
        "estimated_points": 0});
    assert_eq!(
        body,
        json!({"model_id": MODEL, "computed_at": null, "from": null, "to": null, "trends": {
            "accuracy": empty, "f1_score": empty, "auc_roc": empty,
            "latency_p95": empty, "error_rate": empty}})
    );
    let (status, body) = get(stack, &tenant, &model_path("trends"), &[("window", "7d")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["parameter"], "window");

    let (status, body) = get(stack, &tenant, "/api/v1/monitoring/models", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"][0]["model_id"], MODEL);
    assert_eq!(body["models"][0]["task"], "binary_classification");
    assert_eq!(body["models"][0]["firing_alerts"], 0);

    // The summary route still answers alongside.
    let (status, body) = get(stack, &tenant, &model_path(""), &[("window", "1h")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["window"], "1h");
}

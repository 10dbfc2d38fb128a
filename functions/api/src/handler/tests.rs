use super::*;
use chrono::{DateTime, TimeDelta};
use modelwatch::adapters::memory::{
    MemoryAlertStore, MemoryModelRegistry, MemoryModelSettings, MemoryRollupStore,
    MemoryTopicSubscriptions,
};
use modelwatch::domain::alerting::rules::AlertRule;
use modelwatch::domain::alerting::state::{AlertRecord, AlertState, RuleState, RuleStatus};
use modelwatch::domain::ids::ModelRef;
use modelwatch::domain::{QuotaLimits, Task};
use modelwatch::summary::WindowReader;
use serde_json::json;

/// A request as API Gateway (HTTP API, payload 2.0) hands it over.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    tenant: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Option<String>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, path: &'a str, tenant: &'a str) -> Self {
        Self {
            method,
            path,
            query: &[],
            tenant: Some(tenant),
            content_type: None,
            body: None,
        }
    }

    fn query(self, query: &'a [(&'a str, &'a str)]) -> Self {
        Self { query, ..self }
    }

    fn json(self, body: &Value) -> Self {
        Self {
            content_type: Some("application/json"),
            body: Some(body.to_string()),
            ..self
        }
    }

    fn request(&self) -> Request {
        let claims = self.tenant.map_or(json!({}), |t| json!({"tenant_id": t}));
        let raw_query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params: serde_json::Map<String, Value> = self
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        let headers = self
            .content_type
            .map_or(json!({}), |c| json!({"content-type": c}));
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": self.path,
            "rawQueryString": raw_query.join("&"), "queryStringParameters": params,
            "headers": headers, "isBase64Encoded": false, "body": self.body,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
                "domainPrefix": "example", "requestId": "r", "routeKey": "$default",
                "stage": "$default", "time": "28/Nov/2026:10:15:00 +0000", "timeEpoch": 1764324900000_i64,
                "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            }
        });
        lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway v2 event")
    }
}

fn request(method: &str, path: &str, tenant: Option<&str>) -> Request {
    Call {
        tenant,
        ..Call::new(method, path, "")
    }
    .request()
}

fn request_with_query(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    tenant: Option<&str>,
) -> Request {
    Call {
        tenant,
        ..Call::new(method, path, "").query(query)
    }
    .request()
}

type MemoryApi = Api<
    MemoryModelRegistry,
    MemoryRollupStore,
    MemoryModelSettings,
    MemoryAlertStore,
    MemoryTopicSubscriptions,
>;

fn api_with_task(models: &[(&str, &str)], task: Task) -> MemoryApi {
    let registry = MemoryModelRegistry::default();
    let seen = DateTime::from_timestamp_millis(1_764_324_899_120).expect("time");
    for (tenant, model) in models {
        registry.insert(RegisteredModel {
            tenant: TenantId::parse(tenant).expect("tenant"),
            model_id: ModelId::parse(model).expect("model"),
            task,
            first_seen: seen,
            last_seen: seen,
            latest_version: None,
        });
    }
    Api {
        registry,
        summary: SummaryService {
            window: WindowReader {
                rollups: MemoryRollupStore::default(),
                minute_retention: TimeDelta::days(8),
            },
            settings: MemoryModelSettings::default(),
        },
        alerts: MemoryAlertStore::default(),
        perf: PerfSettings::default(),
        alert_settings: AlertSettings::default(),
        quotas: QuotaLimits::default(),
        topic: MemoryTopicSubscriptions::default(),
        account: "123456789012".into(),
        tenant_claim: "tenant_id".into(),
    }
}

fn api_with(models: &[(&str, &str)]) -> MemoryApi {
    api_with_task(models, Task::Regression)
}

async fn call(api: &MemoryApi, req: Request) -> (StatusCode, Value) {
    let response = api.handle(req).await.expect("handler answers");
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status(), body)
}

#[tokio::test]
async fn lists_only_the_callers_models() {
    let api = api_with(&[("a", "m1"), ("a", "m2"), ("b", "m3")]);
    let (status, body) = call(&api, request("GET", "/api/v1/monitoring/models", Some("a"))).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["model_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
}

#[tokio::test]
async fn errors_use_the_one_json_shape() {
    let api = api_with(&[]);
    let (status, body) = call(&api, request("GET", "/api/v1/monitoring/models", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = call(
        &api,
        request("DELETE", "/api/v1/monitoring/models", Some("a")),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["details"]["allowed"][0], "GET");
    let (status, body) = call(&api, request("GET", "/api/v1/nothing", Some("a"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
const SUMMARY: &str = "/api/v1/monitoring/performance/m1";

#[tokio::test]
async fn invalid_summary_parameters_are_400_naming_the_allowed_values() {
    let api = api_with(&[("a", "m1")]);
    /// The query, the parameter the answer must name, and its allowed values.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
    let cases: [Case; 7] = [
        (
            &[("window", "2h")],
            "window",
            &["1h", "6h", "24h", "7d", "30d"],
        ),
        (
            &[("granularity", "week")],
            "granularity",
            &["minute", "hour", "day"],
        ),
        (
            &[("window", "7d"), ("granularity", "minute")],
            "granularity",
            &["hour", "day"],
        ),
        (
            &[("window", "1h"), ("limit", "5")],
            "limit",
            &["window", "granularity", "version", "segment"],
        ),
        (&[("version", "v#2")], "version", &[]),
        (&[("segment", "region")], "segment", &[]),
        (
            &[("version", "v2"), ("segment", "region:eu")],
            "segment",
            &[],
        ),
    ];
    for (query, parameter, allowed) in cases {
        let (status, body) = call(&api, request_with_query("GET", SUMMARY, query, Some("a"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{body}");
        assert_eq!(
            body["error"]["details"]["allowed"],
            serde_json::json!(allowed),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(parameter)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn another_tenants_model_is_404_like_a_missing_one() {
    let api = api_with(&[("a", "m1")]);
    for (tenant, path) in [
        ("b", SUMMARY),
        ("a", "/api/v1/monitoring/performance/missing"),
        ("a", "/api/v1/monitoring/performance/bad%23id"),
    ] {
        let (status, body) = call(&api, request("GET", path, Some(tenant))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{tenant} {path}: {body}");
        assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    }
    let (status, _) = call(&api, request("POST", SUMMARY, Some("a"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_summary_has_the_spec_shape() {
    let api = api_with(&[("a", "m1")]);
    let (status, body) = call(
        &api,
        request_with_query("GET", SUMMARY, &[("window", "6h")], Some("a")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Key sets: the field order of a JSON object carries no meaning.
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    let sorted = |names: &[&str]| -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(
        keys(&body),
        sorted(&[
            "model_id",
            "window",
            "granularity",
            "quality_metrics",
            "serving_metrics",
            "resource_metrics",
            "label_metrics",
            "estimation",
            "drift",
            "sample_count",
            "labeled_count",
            "overflow",
            "series"
        ])
    );
    assert_eq!(
        body["overflow"],
        serde_json::json!({"actual_labels": 0, "predicted_labels": 0, "error_types": 0})
    );
    assert_eq!(body["model_id"], "m1");
    assert_eq!(body["window"], "6h");
    assert_eq!(body["granularity"], "minute");
    assert_eq!(
        keys(&body["quality_metrics"]),
        sorted(&["rmse", "mae", "mape"])
    );
    assert_eq!(
        body["quality_metrics"]["rmse"],
        serde_json::json!({"current": null, "baseline": null, "trend": null,
                           "estimated": null, "estimated_ci": null})
    );
    assert_eq!(body["estimation"]["reference"], serde_json::Value::Null);
    assert_eq!(
        keys(&body["drift"]),
        sorted(&[
            "reference",
            "distribution",
            "psi",
            "js",
            "bins",
            "predictions",
            "confidence"
        ])
    );
    assert_eq!(body["drift"]["confidence"], serde_json::Value::Null);
    assert_eq!(
        keys(&body["serving_metrics"]),
        sorted(&[
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "throughput_rps",
            "error_rate",
            "queue_depth"
        ])
    );
    assert_eq!(
        keys(&body["resource_metrics"]),
        sorted(&[
            "cpu_utilization",
            "memory_utilization",
            "gpu_utilization",
            "model_cache_hit_rate"
        ])
    );
    assert_eq!(
        keys(&body["label_metrics"]),
        sorted(&["label_coverage", "label_delay_p50_s", "label_delay_p95_s"])
    );
    assert_eq!(body["sample_count"], 0);
    let series = body["series"].as_array().expect("series");
    assert!((360..=361).contains(&series.len()), "{}", series.len());
    let point = &series[0];
    assert!(
        point["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with(":00Z")),
        "{point}"
    );
    assert_eq!(point["rmse"], serde_json::Value::Null);
    assert_eq!(point["sample_count"], 0);
    assert_eq!(keys(point).len(), 19, "{point}");
}

const M1: &str = "/api/v1/monitoring/performance/m1";

/// The string `key` of every object in the array `list`.
fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_owned())
        .collect()
}

fn path(resource: &str) -> String {
    format!("{M1}/{resource}")
}

fn rule_set() -> Value {
    json!({"model_id": "m1", "alert_rules": [
        {"id": "acc", "metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "1h", "severity": "critical"},
        {"metric": "latency_p95", "condition": "above", "threshold": 100, "window": "15m", "severity": "warning", "min_samples": 5}]})
}

fn baseline_body() -> Value {
    json!({"test_set": {"evaluated_at": "2025-11-01T00:00:00Z", "metrics": {"accuracy": 0.9}},
        "throughput_forecast_rps": 150})
}

#[tokio::test]
async fn put_rules_then_get_shows_them_beside_the_defaults_of_the_baseline() {
    let api = api_with_task(&[("a", "m1")], Task::BinaryClassification);
    let (status, before) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["alert_rules"], json!([]));
    assert_eq!(before["updated_at"], Value::Null);
    let ids = |body: &Value| strings(&body["default_rules"], "id");
    assert_eq!(
        ids(&before),
        ["default-latency_p95-max", "default-error_rate"]
    );

    let (status, body) = call(
        &api,
        Call::new("PUT", &path("baseline"), "a")
            .json(&baseline_body())
            .request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["test_set"]["metrics"]["accuracy"], 0.9);
    assert_eq!(body["throughput_forecast_rps"], 150.0);
    assert_eq!(body["captured"], Value::Null);
    assert_eq!(body["capture_due_at"], "2025-11-29T10:14:59.120Z");
    let (_, got) = call(&api, request("GET", &path("baseline"), Some("a"))).await;
    assert_eq!(got, body, "PUT answers what GET shows");

    let (status, put) = call(
        &api,
        Call::new("PUT", &path("alert-rules"), "a")
            .json(&rule_set())
            .request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (_, got) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    assert_eq!(got, put, "PUT answers what GET shows");
    assert_eq!(got["alert_rules"][0]["id"], "acc");
    assert_eq!(got["alert_rules"][0]["status"], Value::Null);
    assert_eq!(got["alert_rules"][1]["id"], "latency_p95-above-100-15m");
    assert_eq!(got["alert_rules"][1]["min_samples"], 5);
    assert!(got["updated_at"].is_string());
    assert_eq!(
        ids(&got),
        [
            "default-accuracy",
            "default-latency_p95-max",
            "default-error_rate",
            "default-throughput"
        ]
    );
    let accuracy = &got["default_rules"][0];
    assert!((accuracy["threshold"].as_f64().expect("number") - 0.855).abs() < 1e-12);
    assert_eq!(accuracy["condition"], "below");
}

#[tokio::test]
async fn a_rule_set_over_the_tenants_quota_is_429_naming_it_and_stores_nothing() {
    let api = api_with(&[("a", "m1"), ("b", "m1")]);
    api.registry.set_quotas(
        &TenantId::parse("a").expect("tenant"),
        modelwatch::domain::TenantQuotas {
            custom_rules_per_model: Some(1),
            ..Default::default()
        },
    );
    let rules = rule_set();
    let put = |tenant: &str| {
        Call::new("PUT", &path("alert-rules"), tenant)
            .json(&rules)
            .request()
    };
    let response = api.handle(put("a")).await.expect("answers");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "60");
    let (status, answer) = call(&api, put("a")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer["error"]["code"], "quota_exceeded");
    assert_eq!(
        answer["error"]["details"],
        json!({"quota": "custom_rules_per_model", "limit": 1, "requested": 2,
               "retry_after_seconds": 60})
    );
    let (_, got) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    assert_eq!(got["alert_rules"], json!([]), "nothing stored");
    // Another tenant has the deployment's quota.
    let (status, answer) = call(&api, put("b")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn an_invalid_rule_set_lists_every_problem_and_stores_nothing() {
    let api = api_with(&[("a", "m1")]);
    let body = json!({"model_id": "other", "alert_rules": [
        {"metric": "nope", "condition": "sideways", "threshold": "x", "window": "2w", "severity": "loud"}],
        "extra": 1});
    let (status, answer) = call(
        &api,
        Call::new("PUT", &path("alert-rules"), "a")
            .json(&body)
            .request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_body");
    let fields = strings(&answer["error"]["details"]["problems"], "field");
    for field in [
        "extra",
        "model_id",
        "alert_rules[0].metric",
        "alert_rules[0].condition",
        "alert_rules[0].threshold",
        "alert_rules[0].window",
        "alert_rules[0].severity",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    let (_, rules) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    assert_eq!(rules["updated_at"], Value::Null, "nothing stored");

    let (status, answer) = call(
        &api,
        Call::new("PUT", &path("baseline"), "a")
            .json(&json!({"test_set": {"evaluated_at": "soon", "metrics": {"rmse": -1}}}))
            .request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let fields = strings(&answer["error"]["details"]["problems"], "field");
    assert_eq!(
        fields,
        ["test_set.evaluated_at", "test_set.metrics.rmse"],
        "{answer}"
    );
}

#[tokio::test]
async fn put_bodies_must_be_json_within_the_size_limit() {
    let api = api_with(&[("a", "m1")]);
    for resource in ["alert-rules", "baseline"] {
        let call_with = |content_type: Option<&'static str>, body: String| Call {
            content_type,
            body: Some(body),
            ..Call::new("PUT", "", "a")
        };
        let target = path(resource);
        let mut text = call_with(Some("text/plain"), rule_set().to_string());
        text.path = &target;
        let (status, body) = call(&api, text.request()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        assert_eq!(body["error"]["details"]["content_type"], "text/plain");

        let mut large = call_with(
            Some("application/json"),
            format!("{{\"alert_rules\": []{}}}", " ".repeat(MAX_BODY_BYTES)),
        );
        large.path = &target;
        let (status, body) = call(&api, large.request()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["error"]["details"]["limit"], MAX_BODY_BYTES);

        for broken in ["{\"alert_rules\": [", ""] {
            let mut not_json = call_with(None, broken.to_owned());
            not_json.path = &target;
            let (status, body) = call(&api, not_json.request()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"]["code"], "invalid_body");
            assert_eq!(body["error"]["details"]["problems"][0]["field"], "");
        }
    }
}

#[tokio::test]
async fn every_model_route_is_404_for_another_tenant_and_its_puts_change_nothing() {
    let api = api_with_task(&[("a", "m1")], Task::BinaryClassification);
    for (resource, body) in [("alert-rules", rule_set()), ("baseline", baseline_body())] {
        let (status, answer) = call(
            &api,
            Call::new("PUT", &path(resource), "a").json(&body).request(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, rules) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    let (_, baseline) = call(&api, request("GET", &path("baseline"), Some("a"))).await;

    let other_rules = json!({"alert_rules": []});
    let other_baseline = json!({"throughput_forecast_rps": 1});
    let calls = [
        Call::new("GET", M1, "b"),
        Call::new("GET", "/api/v1/monitoring/performance/m1/trends", "b"),
        Call::new("GET", "/api/v1/monitoring/performance/m1/alert-rules", "b"),
        Call::new("PUT", "/api/v1/monitoring/performance/m1/alert-rules", "b").json(&other_rules),
        Call::new("GET", "/api/v1/monitoring/performance/m1/baseline", "b"),
        Call::new("PUT", "/api/v1/monitoring/performance/m1/baseline", "b").json(&other_baseline),
        Call::new("GET", "/api/v1/monitoring/performance/m1/alerts", "b"),
        Call::new("GET", "/api/v1/monitoring/performance/m1/versions", "b"),
        Call::new("GET", "/api/v1/monitoring/performance/m1/segments", "b"),
        Call::new("GET", "/api/v1/monitoring/performance/m1/compare", "b")
            .query(&[("baseline", "model"), ("candidate", "version:v2")]),
        Call::new("GET", M1, "b").query(&[("version", "v2")]),
        Call::new("GET", "/api/v1/monitoring/performance/nope/trends", "a"),
        Call::new(
            "PUT",
            "/api/v1/monitoring/performance/bad%23id/baseline",
            "a",
        )
        .json(&other_baseline),
    ];
    for c in calls {
        let (status, body) = call(&api, c.request()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{} {}: {body}",
            c.method,
            c.path
        );
        assert_eq!(body["error"]["code"], "model_not_found");
    }
    let (_, rules_after) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    let (_, baseline_after) = call(&api, request("GET", &path("baseline"), Some("a"))).await;
    assert_eq!(rules_after, rules);
    assert_eq!(baseline_after, baseline);
}

#[tokio::test]
async fn a_wrong_method_is_405_naming_the_allowed_ones() {
    let api = api_with(&[("a", "m1")]);
    for (method, route, allowed) in [
        ("DELETE", path("alert-rules"), json!(["GET", "PUT"])),
        ("POST", path("baseline"), json!(["GET", "PUT"])),
        ("PUT", path("trends"), json!(["GET"])),
        ("PUT", path("alerts"), json!(["GET"])),
        ("PUT", path("versions"), json!(["GET"])),
        ("PUT", path("segments"), json!(["GET"])),
        ("POST", path("compare"), json!(["GET"])),
        ("PUT", M1.to_owned(), json!(["GET"])),
        (
            "GET",
            "/api/v1/monitoring/predictions".to_owned(),
            json!(["POST"]),
        ),
    ] {
        let (status, body) = call(&api, request(method, &route, Some("a"))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {route}");
        assert_eq!(
            body["error"]["details"]["allowed"], allowed,
            "{method} {route}"
        );
    }
}

#[tokio::test]
async fn routes_without_parameters_refuse_any() {
    let api = api_with(&[("a", "m1")]);
    for route in [
        path("trends"),
        path("alert-rules"),
        path("baseline"),
        path("versions"),
        path("segments"),
        "/api/v1/monitoring/models".to_owned(),
    ] {
        let (status, body) = call(
            &api,
            request_with_query("GET", &route, &[("window", "1h")], Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}: {body}");
        assert_eq!(body["error"]["details"]["parameter"], "window");
        assert_eq!(body["error"]["details"]["allowed"], json!([]));
    }
}

#[tokio::test]
async fn trends_before_the_first_evaluation_are_insufficient_data() {
    let api = api_with(&[("a", "m1")]);
    let (status, body) = call(&api, request("GET", &path("trends"), Some("a"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["computed_at"], Value::Null);
    let names: Vec<&String> = body["trends"].as_object().expect("trends").keys().collect();
    assert_eq!(names.len(), 5, "{body}");
    assert_eq!(body["trends"]["rmse"]["7_day_trend"], "insufficient_data");
    assert_eq!(body["trends"]["error_rate"]["points"], 0);
}

/// Stores `rule_id`'s alert that started at `start` (ms) in `state`.
async fn record_alert(api: &MemoryApi, rule_id: &str, start: i64, state: AlertState) {
    let rule: AlertRule = serde_json::from_value(json!({"id": rule_id, "metric": "error_rate",
        "condition": "above", "threshold": 0.01, "window": "5m", "severity": "critical",
        "min_samples": 30}))
    .expect("rule");
    let started_at = DateTime::from_timestamp_millis(start).expect("time");
    let alert = AlertRecord {
        alert_id: format!("{rule_id}@{start}"),
        tenant_id: TenantId::parse("a").expect("tenant"),
        model_id: ModelId::parse("m1").expect("model"),
        rule,
        state,
        observed_value: Some(0.2),
        baseline: None,
        sample_count: 40,
        window_start: started_at - TimeDelta::minutes(5),
        window_end: started_at,
        started_at,
        resolved_at: (state == AlertState::Resolved).then_some(started_at),
    };
    let rule_state = RuleState {
        rule_id: rule_id.into(),
        status: if state == AlertState::Firing {
            RuleStatus::Firing
        } else {
            RuleStatus::Ok
        },
        since: started_at,
        alert: (state == AlertState::Firing).then(|| alert.clone()),
        last_notified_at: Some(started_at),
        version: 1,
    };
    let tenant = TenantId::parse("a").expect("tenant");
    let model = ModelId::parse("m1").expect("model");
    let saved = api
        .alerts
        .save_rule_state(ModelRef::new(&tenant, &model), &rule_state, Some(&alert))
        .await
        .expect("stored");
    assert!(saved);
}

#[tokio::test]
async fn the_alert_history_pages_newest_first_and_filters_by_state() {
    let api = api_with(&[("a", "m1"), ("a", "m2")]);
    let (status, body) = call(&api, request("GET", &path("alerts"), Some("a"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"model_id": "m1", "alerts": [], "next_token": null})
    );
    record_alert(&api, "r-old", 1_764_300_000_000, AlertState::Resolved).await;
    record_alert(&api, "r-mid", 1_764_310_000_000, AlertState::Firing).await;
    record_alert(&api, "r-new", 1_764_320_000_000, AlertState::Firing).await;

    let (_, first) = call(
        &api,
        request_with_query("GET", &path("alerts"), &[("limit", "2")], Some("a")),
    )
    .await;
    let ids = |body: &Value| strings(&body["alerts"], "alert_id");
    assert_eq!(ids(&first), ["r-new@1764320000000", "r-mid@1764310000000"]);
    let token = first["next_token"]
        .as_str()
        .expect("more follow")
        .to_owned();
    let (_, second) = call(
        &api,
        request_with_query(
            "GET",
            &path("alerts"),
            &[("limit", "2"), ("next_token", &token)],
            Some("a"),
        ),
    )
    .await;
    assert_eq!(ids(&second), ["r-old@1764300000000"]);
    assert_eq!(second["next_token"], Value::Null);
    let (_, resolved) = call(
        &api,
        request_with_query("GET", &path("alerts"), &[("state", "resolved")], Some("a")),
    )
    .await;
    assert_eq!(ids(&resolved), ["r-old@1764300000000"]);
    assert_eq!(resolved["alerts"][0]["rule"]["metric"], "error_rate");

    for (name, value) in [
        ("state", "open"),
        ("limit", "0"),
        ("limit", "201"),
        ("next_token", "x"),
    ] {
        let (status, body) = call(
            &api,
            request_with_query("GET", &path("alerts"), &[(name, value)], Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}");
        assert_eq!(body["error"]["details"]["parameter"], name);
    }

    let (_, models) = call(&api, request("GET", "/api/v1/monitoring/models", Some("a"))).await;
    let counts: Vec<(&str, u64)> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["model_id"].as_str().expect("id"),
                m["firing_alerts"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(counts, [("m1", 2), ("m2", 0)]);
    let (_, rules) = call(&api, request("GET", &path("alert-rules"), Some("a"))).await;
    assert_eq!(
        rules["alert_rules"],
        json!([]),
        "history rules are not custom rules"
    );
}

#[tokio::test]
async fn a_next_token_whose_start_no_store_can_key_is_400_like_any_bad_token() {
    let api = api_with(&[("a", "m1")]);
    record_alert(&api, "r-old", 1_764_300_000_000, AlertState::Resolved).await;
    for token in ["rule@10000000000000", "rule-1@123456789012345"] {
        let (status, body) = call(
            &api,
            request_with_query("GET", &path("alerts"), &[("next_token", token)], Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
        assert_eq!(body["error"]["details"]["parameter"], "next_token");
    }
    // The latest start an alert id holds is a valid token: alerts before it follow.
    for token in ["rule@9999999999999", "r-new@1764320000000"] {
        let (status, body) = call(
            &api,
            request_with_query("GET", &path("alerts"), &[("next_token", token)], Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{token}: {body}");
        assert_eq!(
            strings(&body["alerts"], "alert_id"),
            ["r-old@1764300000000"],
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_tenant_manages_its_own_subscriptions_and_sees_a_webhook_secret_once() {
    const PATH: &str = "/api/v1/monitoring/alert-subscriptions";
    let api = api_with(&[("a", "m1")]);
    let set = json!({"subscriptions": [
        {"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:123456789012:a-alerts",
         "severity": ["critical"]},
        {"protocol": "webhook", "endpoint": "https://hooks.a.example/mw"}]});
    let (status, put) = call(&api, Call::new("PUT", PATH, "a").json(&set).request()).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let secret = put["subscriptions"][1]["signing_secret"]
        .as_str()
        .expect("the webhook's secret, once");
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    assert_eq!(put["subscriptions"][0]["severity"], json!(["critical"]));
    let live = api.topic.live();
    assert_eq!(live.len(), 1, "the queue is a topic subscription");
    assert_eq!(live.values().next().map(|(t, _)| t.as_str()), Some("a"));

    let (status, got) = call(&api, request("GET", PATH, Some("a"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got["subscriptions"][1]["signing_secret"],
        Value::Null,
        "never again"
    );
    assert_eq!(got["subscriptions"].as_array().map(Vec::len), Some(2));
    let (_, other) = call(&api, request("GET", PATH, Some("b"))).await;
    assert_eq!(other, json!({"subscriptions": [], "updated_at": null}));

    let theirs = json!({"subscriptions": [
        {"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:999999999999:theirs"}]});
    let (status, refused) = call(&api, Call::new("PUT", PATH, "a").json(&theirs).request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        refused["error"]["details"]["problems"][0]["field"],
        "subscriptions[0].endpoint"
    );
    let (status, _) = call(&api, request("DELETE", PATH, Some("a"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

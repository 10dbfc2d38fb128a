//! `docs/openapi.yaml` is the HTTP contract, and these tests hold the code to it:
//!
//! - the HttpApi route events of `template.yaml` are exactly the document's operations
//!   (a route without documentation, or documentation without a route, fails);
//! - end to end, every operation is called over real HTTP through the stack's gateway
//!   (API Gateway's routes and JWT authorizer, `infra/gateway`) and the real `ingest`
//!   and `api` binaries until every documented status has been answered (500 and 503
//!   from function processes of our own, invoked directly: one with a missing table,
//!   one behind a cut network path), and every answer is validated against the schema
//!   of its operation and status — a status or a field the document does not name
//!   fails.
//!
//! The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12: the `jsonschema`
//! crate validates them, with `#/components/…` references resolved in the document.

use std::collections::BTreeSet;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::adapters::dynamodb::{DynamoAlertStore, DynamoModelSettings};
use modelwatch::domain::MetricName;
use modelwatch::domain::alerting::baseline::CapturedBaseline;
use modelwatch::domain::alerting::rules::AlertRule;
use modelwatch::domain::alerting::state::{AlertRecord, AlertState, RuleState, RuleStatus};
use modelwatch::domain::alerting::trends::{MetricTrend, TrendLabel, TrendReport};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::ports::{AlertStore, ModelSettingsStore, SettingWrite};
use modelwatch_e2e::proxy::CuttableProxy;
use modelwatch_e2e::runtime::LocalFunction;
use modelwatch_e2e::{
    Stack, actuals_event, api_request, event, ingest_event, repo_root, sample_batch, unique_tenant,
    with_body,
};
use serde_json::{Value, json};

/// The HTTP methods an OpenAPI path item may hold, and API Gateway's "any method".
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const ANY_METHOD: &str = "x-amazon-apigateway-any-method";

/// The OpenAPI document.
struct Contract {
    doc: Value,
}

/// One documented operation: its path template and its key in the path item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Operation {
    path: String,
    key: String,
}

impl Contract {
    fn load() -> Self {
        let path = repo_root().join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        assert_eq!(doc["openapi"], "3.1.0", "schemas are JSON Schema 2020-12");
        Self { doc }
    }

    /// Every operation as (METHOD, path), `ANY` for API Gateway's any-method.
    fn routes(&self) -> BTreeSet<(String, String)> {
        self.operations()
            .into_iter()
            .map(|op| {
                let method = if op.key == ANY_METHOD {
                    "ANY".to_owned()
                } else {
                    op.key.to_uppercase()
                };
                (method, op.path)
            })
            .collect()
    }

    fn operations(&self) -> Vec<Operation> {
        let paths = self.doc["paths"].as_object().expect("paths");
        let mut operations = Vec::new();
        for (path, item) in paths {
            for key in item.as_object().expect("path item").keys() {
                if METHODS.contains(&key.as_str()) || key == ANY_METHOD {
                    operations.push(Operation {
                        path: path.clone(),
                        key: key.clone(),
                    });
                }
            }
        }
        operations
    }

    fn operation_value(&self, op: &Operation) -> &Value {
        &self.doc["paths"][&op.path][&op.key]
    }

    /// Every documented (operation, status).
    fn documented(&self) -> BTreeSet<(Operation, String)> {
        let mut all = BTreeSet::new();
        for op in self.operations() {
            let responses = self.operation_value(&op)["responses"]
                .as_object()
                .expect("responses");
            for status in responses.keys() {
                all.insert((op.clone(), status.clone()));
            }
        }
        all
    }

    /// The operation API Gateway routes `method path` to: a route naming the method
    /// and matching the path exactly (one segment per `{parameter}`) first, else a
    /// greedy `{name+}` route of any method.
    fn route(&self, method: &str, path: &str) -> Option<Operation> {
        let key = method.to_lowercase();
        let operations = self.operations();
        operations
            .iter()
            .find(|op| op.key == key && path_matches(&op.path, path, false))
            .or_else(|| {
                operations
                    .iter()
                    .find(|op| op.key == ANY_METHOD && path_matches(&op.path, path, true))
            })
            .cloned()
    }

    /// Follows a local `$ref` (`#/components/…`).
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("a local reference");
                self.doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} is not in the document"))
            }
            None => value,
        }
    }

    /// A validator of `schema`, whose references resolve in this document.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({"components": self.doc["components"], "allOf": [schema]});
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
    }

    /// Validates `instance` against `schema`, listing every error.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The JSON schema of `op`'s response `status`.
    fn response(&self, op: &Operation, status: u16) -> Result<&Value, String> {
        let responses = &self.operation_value(op)["responses"];
        let response = responses
            .get(status.to_string())
            .ok_or_else(|| format!("{} {}: status {status} is not documented", op.key, op.path))?;
        Ok(self.resolve(response))
    }

    /// Checks an API Gateway proxy answer to `method path` against the document.
    fn check_answer(
        &self,
        method: &str,
        path: &str,
        answer: &Value,
    ) -> Result<(Operation, u16), String> {
        let op = self
            .route(method, path)
            .ok_or_else(|| format!("{method} {path}: no documented route"))?;
        let status = answer["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| format!("no statusCode in {answer}"))?;
        let response = self.response(&op, status)?;
        let headers = answer["headers"].as_object().cloned().unwrap_or_default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        };
        if let Some(required) = response["headers"].as_object() {
            for (name, spec) in required {
                if spec["required"] == true && header(name).is_none() {
                    return Err(format!("{method} {path} {status}: header {name} missing"));
                }
            }
        }
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!(
                "{method} {path} {status}: no JSON schema documented"
            ));
        }
        if header("content-type") != Some("application/json") {
            return Err(format!(
                "{method} {path} {status}: not application/json: {answer}"
            ));
        }
        let body: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(|| format!("{method} {path} {status}: body is not JSON: {answer}"))?;
        self.validate(schema, &body)
            .map_err(|errors| format!("{method} {path} {status}: {errors}\nbody: {body}"))?;
        Ok((op, status))
    }

    /// Checks a request body we send against the operation's request schema.
    fn check_request(&self, method: &str, path: &str, body: &Value) {
        let op = self
            .route(method, path)
            .unwrap_or_else(|| panic!("{method} {path}: no documented route"));
        let schema =
            &self.operation_value(&op)["requestBody"]["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {path}: no request schema");
        if let Err(errors) = self.validate(schema, body) {
            panic!("{method} {path}: the request does not match the document: {errors}");
        }
    }
}

/// Whether `path` matches `template`; `{name+}` (when `greedy`) takes the rest.
fn path_matches(template: &str, path: &str, greedy: bool) -> bool {
    let mut given = path.trim_end_matches('/').split('/');
    for part in template.split('/') {
        if part.starts_with('{') && part.ends_with("+}") {
            return greedy && given.next().is_some_and(|s| !s.is_empty());
        }
        match given.next() {
            Some(segment) if part.starts_with('{') => {
                if segment.is_empty() {
                    return false;
                }
            }
            Some(segment) if segment == part => {}
            _ => return false,
        }
    }
    given.next().is_none()
}

/// The HttpApi route events of the template's functions, as (METHOD, path).
fn template_routes() -> BTreeSet<(String, String)> {
    let path = repo_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    // The CloudFormation tags (!Ref, !If, …) need the YAML library's own value type.
    let template: serde_norway::Value = serde_norway::from_str(&text).expect("template is YAML");
    let mut routes = BTreeSet::new();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for resource in resources.values() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let properties = &event["Properties"];
            let method = properties["Method"].as_str().expect("Method");
            let path = properties["Path"].as_str().expect("Path");
            routes.insert((method.to_uppercase(), path.to_owned()));
        }
    }
    routes
}

#[test]
fn the_template_routes_are_the_documented_operations() {
    let template = template_routes();
    let documented = Contract::load().routes();
    let undocumented: Vec<_> = template.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&template).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes in template.yaml but not in docs/openapi.yaml: {undocumented:?}; \
         operations in docs/openapi.yaml without a route in template.yaml: {unrouted:?}"
    );
    assert!(template.len() >= 10, "{template:?}");
}

#[test]
fn every_documented_response_has_a_json_schema_that_compiles() {
    let contract = Contract::load();
    for (op, status) in contract.documented() {
        let code: u16 = status.parse().expect("numeric status");
        let response = contract.response(&op, code).expect("documented");
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{} {} {status}: no schema",
            op.key,
            op.path
        );
        contract.validator(schema);
    }
}

/// An API Gateway proxy answer, as the functions give it.
fn answer(status: u16, body: &Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"},
           "body": body.to_string(), "isBase64Encoded": false})
}

#[test]
fn answers_the_document_does_not_describe_are_refused() {
    let contract = Contract::load();
    let models = "/api/v1/monitoring/models";
    let listed = json!({"models": [{"model_id": "m", "task": "regression",
        "first_seen": "2026-11-28T10:00:00Z", "last_seen": "2026-11-28T10:01:00Z",
        "latest_version": null, "firing_alerts": 0}]});
    assert!(
        contract
            .check_answer("GET", models, &answer(200, &listed))
            .is_ok()
    );

    let mut extra = listed.clone();
    extra["models"][0]["secret"] = "x".into();
    let mut missing = listed.clone();
    missing["models"][0]
        .as_object_mut()
        .expect("model")
        .remove("firing_alerts");
    let mut wrong_type = listed.clone();
    wrong_type["models"][0]["first_seen"] = "yesterday".into();
    let wrong_code = json!({"error": {"code": "teapot", "message": "m", "details": null}});
    let cases = [
        ("GET", models, answer(418, &json!({}))),
        ("GET", models, answer(200, &extra)),
        ("GET", models, answer(200, &missing)),
        ("GET", models, answer(200, &wrong_type)),
        ("GET", models, answer(401, &wrong_code)),
        ("GET", "/elsewhere", answer(200, &listed)),
        (
            "GET",
            "/api/v1/monitoring/performance/m",
            json!({"statusCode": 404, "headers": {"content-type": "text/plain"}, "body": "{}"}),
        ),
    ];
    for (method, path, answer) in cases {
        assert!(
            contract.check_answer(method, path, &answer).is_err(),
            "{method} {path} {answer} should be refused"
        );
    }
    // Objects composed of property groups (`unevaluatedProperties`) refuse extras too.
    let metrics = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Value::Null))
            .collect()
    };
    let serving = [
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_rps",
        "error_rate",
        "queue_depth",
    ];
    let resources = [
        "cpu_utilization",
        "memory_utilization",
        "gpu_utilization",
        "model_cache_hit_rate",
    ];
    let labels = ["label_coverage", "label_delay_p50_s", "label_delay_p95_s"];
    let mut point = metrics(
        &[
            &serving[..],
            &resources[..],
            &labels[..],
            &["rmse", "mae", "mape"],
        ]
        .concat(),
    );
    point["timestamp"] = "2026-11-28T10:00:00Z".into();
    point["sample_count"] = 0.into();
    point["labeled_count"] = 0.into();
    let quality = json!({"current": null, "baseline": null, "trend": null,
                         "estimated": null, "estimated_ci": null});
    let summary = json!({"model_id": "m", "window": "1h", "granularity": "minute",
        "quality_metrics": {"rmse": quality, "mae": quality, "mape": quality},
        "serving_metrics": metrics(&serving), "resource_metrics": metrics(&resources),
        "label_metrics": metrics(&labels),
        "estimation": {"reference": null, "unavailable": "no reference window yet",
                       "predictions": 0, "precision": null, "recall": null},
        "drift": {"reference": null, "distribution": null, "psi": null, "js": null,
                  "bins": null, "predictions": 0, "confidence": null},
        "sample_count": 0, "labeled_count": 0,
        "overflow": {"actual_labels": 0, "predicted_labels": 0, "error_types": 0},
        "series": [point]});
    let summary_path = "/api/v1/monitoring/performance/m";
    assert!(
        contract
            .check_answer("GET", summary_path, &answer(200, &summary))
            .is_ok()
    );
    // Estimates and drift as a binary classifier's summary shows them.
    let mut estimated = summary.clone();
    let value = json!({"current": null, "baseline": 0.9, "trend": null,
                       "estimated": 0.81, "estimated_ci": [0.79, 0.83]});
    estimated["quality_metrics"] = json!({"accuracy": value, "f1_score": value, "auc_roc": value});
    let reference = json!({"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z",
                           "source": "captured"});
    estimated["estimation"] = json!({"reference": reference, "unavailable": null,
        "predictions": 1700, "precision": {"estimated": 0.7, "estimated_ci": [0.68, 0.72]},
        "recall": {"estimated": 0.9, "estimated_ci": [0.88, 0.92]}});
    estimated["drift"] = json!({"reference": reference, "distribution": "score", "psi": 0.31,
                                "js": 0.22, "bins": 10, "predictions": 1700,
                                "confidence": null});
    let mut series = summary["series"][0].clone();
    for name in ["rmse", "mae", "mape"] {
        series.as_object_mut().expect("point").remove(name);
    }
    for name in ["accuracy", "f1_score", "auc_roc"] {
        series[name] = Value::Null;
    }
    estimated["series"] = json!([series]);
    assert!(
        contract
            .check_answer("GET", summary_path, &answer(200, &estimated))
            .is_ok(),
        "{estimated}"
    );
    let mut mixed = summary.clone();
    mixed["series"][0]["accuracy"] = Value::Null;
    let mut extra = summary.clone();
    extra["serving_metrics"]["p42"] = 1.into();
    let mut three_ends = estimated.clone();
    three_ends["estimation"]["recall"]["estimated_ci"] = json!([0.1, 0.2, 0.3]);
    let mut unknown_distribution = estimated.clone();
    unknown_distribution["drift"]["distribution"] = "labels".into();
    // A multiclass classifier's label drift with its confidence drift.
    let mut confident = summary.clone();
    confident["drift"] = json!({"reference": reference, "distribution": "predicted_label",
        "psi": 0.01, "js": 0.05, "bins": 4, "predictions": 1700,
        "confidence": {"distribution": "predicted_class_score", "psi": 0.4, "js": 0.3,
                       "bins": 10, "predictions": 1650}});
    assert!(
        contract
            .check_answer("GET", summary_path, &answer(200, &confident))
            .is_ok(),
        "{confident}"
    );
    let mut bare_confidence = confident.clone();
    bare_confidence["drift"]["confidence"] = json!({"psi": 0.4});
    for refused in [
        mixed,
        extra,
        three_ends,
        unknown_distribution,
        bare_confidence,
    ] {
        assert!(
            contract
                .check_answer("GET", summary_path, &answer(200, &refused))
                .is_err(),
            "{refused}"
        );
    }

    // API Gateway's routing: a documented method first, else the catch-all.
    let route = |m, p| contract.route(m, p).map(|op| (op.key, op.path));
    assert_eq!(
        route("PUT", "/api/v1/monitoring/performance/m/baseline"),
        Some((
            "put".into(),
            "/api/v1/monitoring/performance/{model_id}/baseline".into()
        ))
    );
    for (method, path) in [
        ("DELETE", models),
        ("GET", "/api/v1/monitoring/predictions"),
        ("GET", "/api/v1/monitoring/performance/m/x/y"),
    ] {
        assert_eq!(
            route(method, path),
            Some((ANY_METHOD.into(), "/api/v1/monitoring/{proxy+}".into())),
            "{method} {path}"
        );
    }
    assert_eq!(route("GET", "/api/v1/monitoring"), None);
}

// ------------------------------------------------------------------ end to end

/// Invokes functions and checks every answer against the contract, keeping which
/// (operation, status) pairs were seen.
struct Checker {
    contract: Contract,
    seen: BTreeSet<(Operation, String)>,
    /// A token per tenant claim value (`None`: a valid token without the claim).
    tokens: std::collections::HashMap<Option<String>, String>,
}

/// Where an event goes: over real HTTP through the stack's gateway (the request the
/// event stands for, with a token carrying the event's tenant claim — or, for an
/// event without one, a valid token without it), or straight to a process of our own.
enum Target<'a> {
    Gateway,
    Local(&'a mut LocalFunction),
}

impl Checker {
    /// Sends `event`, expects `status`, validates the answer; returns its JSON body.
    async fn call(&mut self, target: Target<'_>, event: &Value, status: u16) -> Value {
        let method = event["requestContext"]["http"]["method"]
            .as_str()
            .expect("method")
            .to_owned();
        let path = event["rawPath"].as_str().expect("rawPath").to_owned();
        let answer = match target {
            Target::Gateway => {
                let stack = Stack::get();
                let tenant = event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"]
                    .as_str()
                    .map(str::to_owned);
                let token = self
                    .tokens
                    .entry(tenant.clone())
                    .or_insert_with(|| match &tenant {
                        Some(tenant) => stack.token("tenant_id", tenant, 600),
                        None => stack.token("team", "no-tenant-claim", 600),
                    })
                    .clone();
                stack.over_http(event, Some(&token)).await
            }
            Target::Local(function) => function
                .invoke(event)
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: function error {e}")),
        };
        let (op, got) = self
            .contract
            .check_answer(&method, &path, &answer)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, status, "{method} {path}: {answer}");
        self.seen.insert((op, status.to_string()));
        answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .expect("JSON body")
    }
}

const PREDICTIONS: &str = "/api/v1/monitoring/predictions";
const ACTUALS: &str = "/api/v1/monitoring/actuals";
const MODEL: &str = "model-xyz789";

fn model_path(model: &str, resource: &str) -> String {
    match resource {
        "" => format!("/api/v1/monitoring/performance/{model}"),
        _ => format!("/api/v1/monitoring/performance/{model}/{resource}"),
    }
}

/// `event` without the tenant claim.
fn without_tenant(mut event: Value) -> Value {
    if let Some(claims) = event["requestContext"]["authorizer"]["jwt"]["claims"].as_object_mut() {
        claims.remove("tenant_id");
    }
    event
}

fn json_put(tenant: &str, path: &str, body: &Value) -> Value {
    with_body(
        api_request(Some(tenant), "PUT", path, &[]),
        Some("application/json"),
        &body.to_string(),
    )
}

/// A regression batch of one prediction at `now` (for the same model: a task conflict).
fn regression_batch(model: &str, batch_id: &str, now: DateTime<Utc>) -> Value {
    json!({"model_id": model, "batch_id": batch_id, "task": "regression",
        "predictions": [{"timestamp": now.to_rfc3339(), "latency_ms": 3, "status": "ok",
                         "predicted": 1.5, "actual": 1.0}]})
}

/// The GET requests of every api route (valid ones) for `tenant`'s `model`.
fn api_gets(tenant: Option<&str>, model: &str) -> Vec<Value> {
    let mut gets = vec![
        api_request(tenant, "GET", "/api/v1/monitoring/models", &[]),
        api_request(tenant, "GET", SUBSCRIPTIONS, &[]),
    ];
    for resource in [
        "",
        "trends",
        "alert-rules",
        "baseline",
        "alerts",
        "versions",
        "segments",
    ] {
        gets.push(api_request(
            tenant,
            "GET",
            &model_path(model, resource),
            &[],
        ));
    }
    // The sample batch's version `v3` against the whole model.
    gets.push(api_request(
        tenant,
        "GET",
        &model_path(model, ""),
        &[("version", "v3")],
    ));
    gets.push(api_request(
        tenant,
        "GET",
        &model_path(model, "compare"),
        &[("baseline", "model"), ("candidate", "version:v3")],
    ));
    gets
}

/// The valid PUT requests of every api route for `tenant`'s `model`.
fn api_puts(tenant: &str, model: &str) -> Vec<Value> {
    vec![
        json_put(tenant, &model_path(model, "alert-rules"), &rule_set()),
        json_put(tenant, &model_path(model, "baseline"), &baseline()),
        json_put(tenant, SUBSCRIPTIONS, &subscription_set()),
    ]
}

/// The tenant's alert subscriptions route.
const SUBSCRIPTIONS: &str = "/api/v1/monitoring/alert-subscriptions";

fn subscription_set() -> Value {
    json!({"subscriptions": [
        {"protocol": "email", "endpoint": "oncall@example.com", "severity": ["critical"]},
        {"protocol": "webhook", "endpoint": "https://hooks.example.com/modelwatch"}]})
}

fn rule_set() -> Value {
    json!({"model_id": MODEL, "alert_rules": [
        {"id": "acc", "metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "1h", "severity": "critical"},
        {"metric": "latency_p95", "condition": "above", "threshold": 100, "window": "15m", "severity": "warning", "min_samples": 5}]})
}

fn baseline() -> Value {
    json!({"test_set": {"evaluated_at": "2025-11-01T00:00:00Z",
        "metrics": {"accuracy": 0.9, "auc_roc": 0.93}}, "throughput_forecast_rps": 150})
}

/// Stores, through the real adapters, what `evaluate` would: trends, the captured
/// baseline, a firing alert of a default rule and a resolved one.
async fn seed_evaluation(stack: &Stack, tenant: &str, now: DateTime<Utc>) {
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let settings = DynamoModelSettings::new(client.clone(), stack.var("MODELS_TABLE"));
    let alerts = DynamoAlertStore::new(client, stack.var("ALERTS_TABLE"));
    let tenant = TenantId::parse(tenant).expect("tenant");
    let model = ModelId::parse(MODEL).expect("model");
    let trend = |label, slope: Option<f64>| MetricTrend {
        label,
        slope,
        projected_baseline_breach: (label == TrendLabel::Declining)
            .then(|| now + TimeDelta::days(20)),
        confidence: slope.map(|_| 0.97),
        threshold: Some(0.855),
        points: if slope.is_some() { 150 } else { 3 },
        estimated_points: if slope.is_some() { 20 } else { 0 },
    };
    let report = TrendReport {
        computed_at: now,
        from: now - TimeDelta::days(7),
        to: now,
        trends: [
            (
                MetricName::Accuracy,
                trend(TrendLabel::Declining, Some(-0.002)),
            ),
            (MetricName::F1Score, trend(TrendLabel::Stable, Some(0.0))),
            (
                MetricName::AucRoc,
                trend(TrendLabel::InsufficientData, None),
            ),
            (
                MetricName::LatencyP95,
                trend(TrendLabel::SlightDecline, Some(0.3)),
            ),
            (
                MetricName::ErrorRate,
                trend(TrendLabel::Improving, Some(-0.001)),
            ),
        ]
        .into(),
        labels: None,
    };
    settings
        .put_setting(
            ModelRef::new(&tenant, &model),
            SettingWrite::Trends(&report),
        )
        .await
        .expect("trends stored");
    let captured = CapturedBaseline {
        latency_p95_ms: Some(22.5),
        error_rate: Some(0.001),
        from: now - TimeDelta::days(2),
        to: now - TimeDelta::days(1),
        sample_count: 5_000,
        captured_at: now - TimeDelta::hours(23),
    };
    assert!(
        settings
            .put_setting(
                ModelRef::new(&tenant, &model),
                SettingWrite::CapturedBaseline(&captured)
            )
            .await
            .expect("captured baseline stored")
    );
    let rule = |id: &str| -> AlertRule {
        serde_json::from_value(
            json!({"id": id, "metric": "error_rate", "condition": "above",
            "threshold": 0.01, "window": "5m", "severity": "critical", "min_samples": 30,
            "basis": "PERF_ERROR_RATE_MAX"}),
        )
        .expect("rule")
    };
    let alert = |id: &str, started_at: DateTime<Utc>, state| AlertRecord {
        alert_id: format!("{id}@{}", started_at.timestamp_millis()),
        tenant_id: tenant.clone(),
        model_id: model.clone(),
        rule: rule(id),
        state,
        observed_value: Some(0.04),
        baseline: Some(0.001),
        sample_count: 120,
        window_start: started_at - TimeDelta::minutes(5),
        window_end: started_at,
        started_at,
        resolved_at: (state == AlertState::Resolved).then_some(now),
    };
    let firing = alert(
        "default-error_rate",
        now - TimeDelta::hours(1),
        AlertState::Firing,
    );
    let resolved = alert("acc", now - TimeDelta::hours(5), AlertState::Resolved);
    for (alert, status) in [(firing, RuleStatus::Firing), (resolved, RuleStatus::Ok)] {
        let state = RuleState {
            rule_id: alert.rule.id.clone(),
            status,
            since: alert.started_at,
            alert: (status == RuleStatus::Firing).then(|| alert.clone()),
            last_notified_at: Some(alert.started_at),
            version: 1,
        };
        let stored = alerts
            .save_rule_state(ModelRef::new(&tenant, &model), &state, Some(&alert))
            .await
            .expect("alert stored");
        assert!(stored, "{}", alert.alert_id);
    }
}

#[tokio::test]
async fn every_route_and_status_answers_as_documented() {
    let stack = Stack::get();
    let mut c = Checker {
        contract: Contract::load(),
        seen: BTreeSet::new(),
        tokens: std::collections::HashMap::new(),
    };
    let tenant = unique_tenant("openapi");
    let now = Utc::now();
    // The batches go into the last closed minute, which the aggregate run at `now`
    // rolls up (the current minute it would leave for the next run).
    let closed_minute =
        now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(1);

    // ---- ingest: 202 (new, then the same batch again), 400, 401, 409 (task changed,
    // batch id reused), 413, 415, 405.
    let batch = sample_batch(closed_minute + TimeDelta::seconds(10));
    c.contract.check_request("POST", PREDICTIONS, &batch);
    let sent = ingest_event(&tenant, batch.to_string().as_bytes());
    let receipt = c.call(Target::Gateway, &sent, 202).await;
    assert_eq!(receipt["duplicate"], false);
    let again = c.call(Target::Gateway, &sent, 202).await;
    assert_eq!(again["duplicate"], true);
    let second = regression_batch(
        "m-second",
        "b-second",
        closed_minute + TimeDelta::seconds(40),
    );
    c.contract.check_request("POST", PREDICTIONS, &second);
    let second_event = ingest_event(&tenant, second.to_string().as_bytes());
    c.call(Target::Gateway, &second_event, 202).await;
    let invalid = ingest_event(&tenant, br#"{"model_id": "m", "predictions": []}"#);
    c.call(Target::Gateway, &invalid, 400).await;
    c.call(Target::Gateway, &without_tenant(sent.clone()), 401)
        .await;
    let conflict = regression_batch(MODEL, "b-conflict", now);
    let refused = c
        .call(
            Target::Gateway,
            &ingest_event(&tenant, conflict.to_string().as_bytes()),
            409,
        )
        .await;
    assert_eq!(refused["error"]["code"], "task_conflict");
    let mut reused = batch.clone();
    reused["predictions"][0]["latency_ms"] = 999.into();
    let refused = c
        .call(
            Target::Gateway,
            &ingest_event(&tenant, reused.to_string().as_bytes()),
            409,
        )
        .await;
    assert_eq!(refused["error"]["code"], "batch_id_reused");
    let mut large = batch.clone();
    large["predictions"] = Value::Array(vec![batch["predictions"][0].clone(); 10_001]);
    c.call(
        Target::Gateway,
        &ingest_event(&tenant, large.to_string().as_bytes()),
        413,
    )
    .await;
    let mut csv = sent.clone();
    csv["headers"]["content-type"] = "text/csv".into();
    c.call(Target::Gateway, &csv, 415).await;
    let mut get_predictions = sent.clone();
    get_predictions["requestContext"]["http"]["method"] = "GET".into();
    c.call(Target::Gateway, &get_predictions, 405).await;
    c.call(
        Target::Gateway,
        &api_request(Some(&tenant), "GET", PREDICTIONS, &[]),
        405,
    )
    .await;

    // ---- ingest, labels: 202 (new, then the same batch again), 400, 401, 409, 413, 415.
    let labels = json!({"model_id": MODEL, "batch_id": "l-openapi", "actuals": [
        {"prediction_id": "p-1", "actual": 1},
        {"prediction_id": "p-unknown", "actual": 0, "timestamp": now.to_rfc3339()}]});
    c.contract.check_request("POST", ACTUALS, &labels);
    let sent_labels = actuals_event(&tenant, labels.to_string().as_bytes());
    let receipt = c.call(Target::Gateway, &sent_labels, 202).await;
    assert_eq!(receipt["accepted"], 2, "{receipt}");
    let again = c.call(Target::Gateway, &sent_labels, 202).await;
    assert_eq!(again["duplicate"], true);
    let mut wrong_task = labels.clone();
    wrong_task["batch_id"] = "l-wrong".into();
    wrong_task["actuals"][0]["actual"] = "yes".into();
    let refused = c
        .call(
            Target::Gateway,
            &actuals_event(&tenant, wrong_task.to_string().as_bytes()),
            400,
        )
        .await;
    assert_eq!(
        refused["error"]["details"]["problems"][0]["field"],
        "actuals[0].actual"
    );
    c.call(Target::Gateway, &without_tenant(sent_labels.clone()), 401)
        .await;
    let mut reused = labels.clone();
    reused["actuals"][0]["actual"] = 0.into();
    c.call(
        Target::Gateway,
        &actuals_event(&tenant, reused.to_string().as_bytes()),
        409,
    )
    .await;
    let mut large = labels.clone();
    large["actuals"] = Value::Array(vec![labels["actuals"][0].clone(); 10_001]);
    c.call(
        Target::Gateway,
        &actuals_event(&tenant, large.to_string().as_bytes()),
        413,
    )
    .await;
    let mut csv = sent_labels.clone();
    csv["headers"]["content-type"] = "text/csv".into();
    c.call(Target::Gateway, &csv, 415).await;

    // Roll the batches up, and store what an evaluation would, so the answers below
    // carry values (series points, trends, captured baseline, alerts).
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    stack.invoke("aggregate", &trigger).await;
    seed_evaluation(stack, &tenant, now).await;

    // ---- api: 200 for every route, as the owner.
    let models = c
        .call(Target::Gateway, &api_gets(Some(&tenant), MODEL)[0], 200)
        .await;
    let counts: Vec<(&str, u64)> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| Some((m["model_id"].as_str()?, m["firing_alerts"].as_u64()?)))
        .collect();
    assert_eq!(counts, [("m-second", 0), (MODEL, 1)], "{models}");
    for request in &api_gets(Some(&tenant), MODEL)[1..] {
        c.call(Target::Gateway, request, 200).await;
    }
    for request in api_gets(Some(&tenant), "m-second").iter().skip(1) {
        c.call(Target::Gateway, request, 200).await;
    }
    for query in [
        &[("window", "1h"), ("granularity", "minute")][..],
        &[("window", "30d"), ("granularity", "hour")],
        &[("window", "7d")],
    ] {
        let summary = api_request(Some(&tenant), "GET", &model_path(MODEL, ""), query);
        let body = c.call(Target::Gateway, &summary, 200).await;
        assert!(body["sample_count"].as_u64() > Some(0), "{body}");
    }
    c.contract
        .check_request("PUT", &model_path(MODEL, "alert-rules"), &rule_set());
    c.contract
        .check_request("PUT", &model_path(MODEL, "baseline"), &baseline());
    c.contract
        .check_request("PUT", SUBSCRIPTIONS, &subscription_set());
    for request in api_puts(&tenant, MODEL) {
        c.call(Target::Gateway, &request, 200).await;
    }
    let rules = c
        .call(
            Target::Gateway,
            &api_request(Some(&tenant), "GET", &model_path(MODEL, "alert-rules"), &[]),
            200,
        )
        .await;
    let status_of = |id: &str| {
        rules["default_rules"]
            .as_array()
            .expect("default rules")
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["status"].clone())
    };
    assert_eq!(
        status_of("default-error_rate"),
        Some(json!("firing")),
        "{rules}"
    );
    assert!(
        status_of("default-latency_p95-baseline").is_some(),
        "derived from the captured baseline: {rules}"
    );
    let page = c
        .call(
            Target::Gateway,
            &api_request(
                Some(&tenant),
                "GET",
                &model_path(MODEL, "alerts"),
                &[("limit", "1")],
            ),
            200,
        )
        .await;
    assert_eq!(page["alerts"][0]["state"], "firing", "{page}");
    let token = page["next_token"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let last = c
        .call(
            Target::Gateway,
            &api_request(
                Some(&tenant),
                "GET",
                &model_path(MODEL, "alerts"),
                &[
                    ("limit", "1"),
                    ("next_token", &token),
                    ("state", "resolved"),
                ],
            ),
            200,
        )
        .await;
    assert_eq!(last["alerts"][0]["state"], "resolved", "{last}");

    // ---- api refusals: 400 (parameter, body), 401, 404, 405, 413, 415.
    // API Gateway's own 401, before any function: no token at all.
    for request in [
        api_request(Some(&tenant), "GET", "/api/v1/monitoring/models", &[]),
        ingest_event(&tenant, b"{}"),
    ] {
        let method = request["requestContext"]["http"]["method"]
            .as_str()
            .expect("method");
        let path = request["rawPath"].as_str().expect("path");
        let answer = Stack::get().over_http(&request, None).await;
        let (_, status) = c
            .contract
            .check_answer(method, path, &answer)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 401, "{answer}");
    }
    for request in api_gets(Some(&tenant), MODEL) {
        let path = request["rawPath"].as_str().expect("path").to_owned();
        let bad = api_request(Some(&tenant), "GET", &path, &[("colour", "red")]);
        c.call(Target::Gateway, &bad, 400).await;
        c.call(Target::Gateway, &without_tenant(request.clone()), 401)
            .await;
    }
    let other = unique_tenant("openapi-other");
    // Every route of a model: the other tenant has none by that id.
    for request in api_gets(Some(&other), MODEL)
        .into_iter()
        .chain(api_puts(&other, MODEL))
        .filter(|r| {
            r["rawPath"]
                .as_str()
                .is_some_and(|p| p.contains("/performance/"))
        })
    {
        c.call(Target::Gateway, &request, 404).await;
    }
    for request in api_puts(&tenant, MODEL) {
        let path = request["rawPath"].as_str().expect("path").to_owned();
        c.call(Target::Gateway, &without_tenant(request.clone()), 401)
            .await;
        let mut with_query = request.clone();
        with_query["rawQueryString"] = "dry_run=1".into();
        with_query["queryStringParameters"] = json!({"dry_run": "1"});
        c.call(Target::Gateway, &with_query, 400).await;
        let invalid = json_put(
            &tenant,
            &path,
            &json!({"alert_rules": "none", "test_set": 1}),
        );
        c.call(Target::Gateway, &invalid, 400).await;
        let padded = format!("{{\"pad\": \"{}\"}}", " ".repeat(66_000));
        let large = with_body(
            api_request(Some(&tenant), "PUT", &path, &[]),
            Some("application/json"),
            &padded,
        );
        c.call(Target::Gateway, &large, 413).await;
        let text = with_body(
            api_request(Some(&tenant), "PUT", &path, &[]),
            Some("text/plain"),
            "{}",
        );
        c.call(Target::Gateway, &text, 415).await;
    }
    let catch_all = [
        (
            api_request(Some(&tenant), "DELETE", "/api/v1/monitoring/models", &[]),
            405,
        ),
        (
            api_request(Some(&tenant), "POST", &model_path(MODEL, "trends"), &[]),
            405,
        ),
        (
            api_request(Some(&tenant), "GET", "/api/v1/monitoring/unknown", &[]),
            404,
        ),
        (
            api_request(None, "GET", "/api/v1/monitoring/unknown", &[]),
            401,
        ),
    ];
    for (request, status) in catch_all {
        c.call(Target::Gateway, &request, status).await;
    }

    // ---- 500: processes whose models table does not exist (a permanent error).
    let missing = [("MODELS_TABLE", Some("modelwatch-no-such-table"))];
    let mut api = LocalFunction::start(stack, "api", &missing).await;
    for request in api_gets(Some(&tenant), MODEL)
        .into_iter()
        .chain(api_puts(&tenant, MODEL))
    {
        c.call(Target::Local(&mut api), &request, 500).await;
    }
    let mut ingest = LocalFunction::start(stack, "ingest", &missing).await;
    let fresh = regression_batch("m-500", "b-500", now);
    c.call(
        Target::Local(&mut ingest),
        &ingest_event(&tenant, fresh.to_string().as_bytes()),
        500,
    )
    .await;
    c.call(Target::Local(&mut ingest), &sent_labels, 500).await;

    // ---- 429: a process whose tenants may send one prediction a minute.
    let quota = [("TENANT_PREDICTIONS_PER_MINUTE", Some("1"))];
    let mut ingest = LocalFunction::start(stack, "ingest", &quota).await;
    let mut two = regression_batch("m-429", "b-429", now);
    two["predictions"] = json!([two["predictions"][0], two["predictions"][0]]);
    let refused = c
        .call(
            Target::Local(&mut ingest),
            &ingest_event(&tenant, two.to_string().as_bytes()),
            429,
        )
        .await;
    assert_eq!(refused["error"]["details"]["requested"], 2);
    // A process whose tenants may register one model (the tenant has some) and keep
    // one custom rule per model.
    let quota = [
        ("TENANT_MODELS", Some("1")),
        ("TENANT_RULES_PER_MODEL", Some("1")),
    ];
    let mut ingest = LocalFunction::start(stack, "ingest", &quota).await;
    let new_model = regression_batch("m-429-new", "b-429", now);
    let refused = c
        .call(
            Target::Local(&mut ingest),
            &ingest_event(&tenant, new_model.to_string().as_bytes()),
            429,
        )
        .await;
    assert_eq!(refused["error"]["details"]["quota"], "models_per_tenant");
    let mut api = LocalFunction::start(stack, "api", &quota).await;
    let rules = json_put(&tenant, &model_path(MODEL, "alert-rules"), &rule_set());
    let refused = c.call(Target::Local(&mut api), &rules, 429).await;
    assert_eq!(
        refused["error"]["details"]["quota"],
        "custom_rules_per_model"
    );

    // ---- 503: processes whose path to the AWS emulator is cut.
    let proxy = CuttableProxy::start(stack.aws_endpoint_addr()).await;
    let endpoint = [("AWS_ENDPOINT_URL", Some(proxy.url()))];
    let endpoint: Vec<(&str, Option<&str>)> =
        endpoint.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    let mut api = LocalFunction::start(stack, "api", &endpoint).await;
    let mut ingest = LocalFunction::start(stack, "ingest", &endpoint).await;
    proxy.cut();
    for request in api_gets(Some(&tenant), MODEL)
        .into_iter()
        .chain(api_puts(&tenant, MODEL))
    {
        c.call(Target::Local(&mut api), &request, 503).await;
    }
    let fresh = regression_batch("m-503", "b-503", now);
    c.call(
        Target::Local(&mut ingest),
        &ingest_event(&tenant, fresh.to_string().as_bytes()),
        503,
    )
    .await;
    c.call(Target::Local(&mut ingest), &sent_labels, 503).await;

    let missed: Vec<String> = c
        .contract
        .documented()
        .difference(&c.seen)
        .map(|(op, status)| format!("{} {} {status}", op.key, op.path))
        .collect();
    assert!(
        missed.is_empty(),
        "documented but never answered: {missed:#?}"
    );
}

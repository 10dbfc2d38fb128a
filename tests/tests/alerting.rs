//! Alerting end to end: the real `ingest`, `aggregate`, `evaluate` and `api` binaries
//! against moto's DynamoDB, and SNS and SQS where the stack's lane routes them (moto in
//! `all-moto`, LocalStack in `localstack`; the test command runs both). Each test
//! subscribes its own SQS queue to the alert topic with a filter policy on its tenant
//! (both emulators apply SNS filter policies), and drives time through the data's
//! timestamps and the schedule event's `time`.
//!
//! Evaluation covers every tenant's models at the event's time, so the tests of this
//! file run one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use modelwatch_e2e::runtime::LocalFunction;
use modelwatch_e2e::subscriber::{Subscriber, alert_of};
use modelwatch_e2e::{Stack, api_event_for_tenant, event, ingest_event, unique_tenant};
use serde_json::{Value, json};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// How one stretch of traffic looks.
#[derive(Clone, Copy)]
struct Shape {
    per_minute: usize,
    accuracy: f64,
    latency_ms: f64,
    error_rate: f64,
}

const GOOD: Shape = Shape {
    per_minute: 10,
    accuracy: 0.95,
    latency_ms: 20.0,
    error_rate: 0.0,
};

/// Sends `minutes` minutes of `shape` traffic from `from` for the binary model `model`,
/// as batches of at most an hour.
async fn send(
    stack: &Stack,
    tenant: &str,
    model: &str,
    from: DateTime<Utc>,
    minutes: i64,
    shape: Shape,
) {
    let mut start = 0;
    while start < minutes {
        let end = (start + 60).min(minutes);
        let mut predictions = Vec::new();
        for m in start..end {
            let minute = from + TimeDelta::minutes(m);
            for i in 0..shape.per_minute {
                let fraction = (i as f64 + 0.5) / shape.per_minute as f64;
                let at = minute + TimeDelta::seconds((i * 60 / shape.per_minute) as i64);
                let timestamp = at.to_rfc3339_opts(SecondsFormat::Millis, true);
                let latency = shape.latency_ms * (0.5 + fraction);
                if fraction < shape.error_rate {
                    predictions.push(
                        json!({"prediction_id": format!("{m}-{i}"), "timestamp": timestamp,
                        "latency_ms": latency, "status": "error", "error_type": "timeout"}),
                    );
                } else {
                    let predicted = i % 2;
                    let actual = if fraction < shape.accuracy {
                        predicted
                    } else {
                        1 - predicted
                    };
                    predictions.push(json!({"prediction_id": format!("{m}-{i}"), "timestamp": timestamp,
                        "latency_ms": latency, "status": "ok", "predicted": predicted, "actual": actual,
                        "score": if predicted == 1 { 0.8 } else { 0.2 }}));
                }
            }
        }
        let body = json!({"model_id": model, "batch_id": format!("{model}-{}-{start}", from.timestamp()),
                          "task": "binary_classification", "predictions": predictions});
        let answer = stack
            .invoke("ingest", &ingest_event(tenant, body.to_string().as_bytes()))
            .await;
        assert_eq!(answer["statusCode"], 202, "{answer}");
        start = end;
    }
}

async fn aggregate(stack: &Stack) {
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = Utc::now().to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(
        report["rollups"]["failures"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{report}"
    );
}

fn evaluate_event(at: DateTime<Utc>) -> Value {
    let mut trigger = event("evaluate-scheduled.json");
    trigger["time"] = at.to_rfc3339().into();
    trigger
}

/// Runs `evaluate` for `at`; returns its report, which must show no failure.
async fn evaluate(stack: &Stack, at: DateTime<Utc>) -> Value {
    let report = stack.invoke("evaluate", &evaluate_event(at)).await;
    assert_eq!(report["failures"], json!([]), "{report}");
    report
}

/// An API request for `tenant` through the real `api` binary; returns (status, body).
async fn api(
    stack: &Stack,
    tenant: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u64, Value) {
    let mut request = api_event_for_tenant("api-get-summary.json", tenant);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    request["rawPath"] = path.into();
    request["rawQueryString"] = query.into();
    request["requestContext"]["http"]["path"] = path.into();
    request["requestContext"]["http"]["method"] = method.into();
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    request["queryStringParameters"] = if params.is_empty() {
        Value::Null
    } else {
        params.into()
    };
    if let Some(body) = body {
        request["body"] = body.to_string().into();
        request["headers"]["content-type"] = "application/json".into();
    }
    let answer = stack.invoke("api", &request).await;
    let status = answer["statusCode"].as_u64().expect("status");
    let body = answer["body"]
        .as_str()
        .map_or(Value::Null, |b| serde_json::from_str(b).expect("JSON body"));
    (status, body)
}

/// (rule id, state) → how many messages.
fn tally(alerts: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for alert in alerts {
        let key = (
            alert["rule"]["id"].as_str().expect("rule id").to_owned(),
            alert["state"].as_str().expect("state").to_owned(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn hour_ago(hours: i64) -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .expect("hour")
        - TimeDelta::hours(hours)
}

#[tokio::test]
async fn degrading_traffic_fires_and_resolves_once_per_rule_with_filterable_attributes() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("alerts");
    let model = "fraud-v1";
    let everything = Subscriber::new(stack, &tenant, None).await;
    let critical = Subscriber::new(stack, &tenant, Some("critical")).await;
    let base = hour_ago(4);

    send(stack, &tenant, model, base, 30, GOOD).await;
    aggregate(stack).await;
    let (status, body) = api(stack, &tenant, "PUT", &format!("/api/v1/monitoring/performance/{model}/baseline"),
        Some(json!({"test_set": {"evaluated_at": (base - TimeDelta::days(1)).to_rfc3339(), "metrics": {"accuracy": 0.9}}}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        stack,
        &tenant,
        "PUT",
        &format!("/api/v1/monitoring/performance/{model}/alert-rules"),
        Some(
            json!({"alert_rules": [{"id": "p95-slow", "metric": "latency_p95", "condition": "above",
                                     "threshold": 50, "window": "15m", "severity": "warning"}]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let report = evaluate(stack, base + TimeDelta::minutes(30)).await;
    assert!(report["models"].as_u64() >= Some(1), "{report}");
    assert!(
        everything.drain().await.is_empty(),
        "healthy traffic alerts nobody"
    );

    // An hour of degraded traffic: accuracy 0.6, p95 ≈ 72 ms, 20 % errors.
    let bad = Shape {
        accuracy: 0.6,
        latency_ms: 50.0,
        error_rate: 0.2,
        ..GOOD
    };
    send(
        stack,
        &tenant,
        model,
        base + TimeDelta::minutes(30),
        60,
        bad,
    )
    .await;
    aggregate(stack).await;
    let fired_at = base + TimeDelta::minutes(90);
    evaluate(stack, fired_at).await;
    evaluate(stack, fired_at + TimeDelta::seconds(30)).await;
    let (status, rules) = api(
        stack,
        &tenant,
        "GET",
        &format!("/api/v1/monitoring/performance/{model}/alert-rules"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{rules}");
    let (status, firing) = api(
        stack,
        &tenant,
        "GET",
        &format!("/api/v1/monitoring/performance/{model}/alerts?state=firing"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{firing}");
    assert_eq!(
        firing["alerts"].as_array().map(Vec::len),
        Some(3),
        "{firing}"
    );
    let (_, models) = api(stack, &tenant, "GET", "/api/v1/monitoring/models", None).await;
    assert_eq!(models["models"][0]["firing_alerts"], 3, "{models}");

    // Healthy again for an hour.
    send(stack, &tenant, model, fired_at, 60, GOOD).await;
    aggregate(stack).await;
    let resolved_at = fired_at + TimeDelta::minutes(60);
    evaluate(stack, resolved_at).await;
    evaluate(stack, resolved_at + TimeDelta::minutes(1)).await;

    let alerts: Vec<Value> = everything.drain().await.iter().map(alert_of).collect();
    let expected: BTreeMap<(String, String), usize> = [
        ("default-accuracy", "firing"),
        ("default-accuracy", "resolved"),
        ("default-error_rate", "firing"),
        ("default-error_rate", "resolved"),
        ("p95-slow", "firing"),
        ("p95-slow", "resolved"),
    ]
    .into_iter()
    .map(|(rule, state)| ((rule.to_owned(), state.to_owned()), 1))
    .collect();
    assert_eq!(tally(&alerts), expected, "{alerts:#?}\nrules: {rules}");
    for alert in &alerts {
        assert_eq!(alert["tenant_id"], tenant.as_str());
        assert_eq!(alert["model_id"], model);
        let started = alert["started_at"].as_str().expect("started_at");
        assert_eq!(
            started,
            fired_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "{alert}"
        );
        if alert["state"] == "resolved" {
            assert_eq!(
                alert["resolved_at"].as_str(),
                Some(
                    resolved_at
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                        .as_str()
                )
            );
        } else {
            assert_eq!(alert["resolved_at"], Value::Null);
        }
    }
    let accuracy = alerts
        .iter()
        .find(|a| a["rule"]["id"] == "default-accuracy" && a["state"] == "firing")
        .expect("accuracy alert");
    assert_eq!(accuracy["baseline"], 0.9);
    assert_eq!(accuracy["rule"]["condition"], "below");
    assert_eq!(accuracy["rule"]["window"], "1h");
    assert!((accuracy["rule"]["threshold"].as_f64().expect("threshold") - 0.855).abs() < 1e-9);
    // The first 20 % of each minute fail; of the rest (fractions 0.2–1), those below
    // 0.6 are right: 4 of 8 labeled predictions a minute.
    assert!(
        (accuracy["observed_value"].as_f64().expect("value") - 0.5).abs() < 1e-9,
        "{accuracy}"
    );

    // The severity filter delivered only the critical rules' messages.
    let critical_alerts: Vec<Value> = critical.drain().await.iter().map(alert_of).collect();
    assert_eq!(critical_alerts.len(), 4, "{critical_alerts:#?}");
    assert!(
        critical_alerts
            .iter()
            .all(|a| a["rule"]["severity"] == "critical")
    );

    let (status, history) = api(
        stack,
        &tenant,
        "GET",
        &format!("/api/v1/monitoring/performance/{model}/alerts?state=resolved&limit=2"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["alerts"].as_array().map(Vec::len), Some(2));
    let next = history["next_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = api(
        stack,
        &tenant,
        "GET",
        &format!(
            "/api/v1/monitoring/performance/{model}/alerts?state=resolved&limit=2&next_token={next}"
        ),
        None,
    )
    .await;
    assert_eq!(rest["alerts"].as_array().map(Vec::len), Some(1), "{rest}");
    assert_eq!(rest["next_token"], Value::Null);
    let (_, models) = api(stack, &tenant, "GET", "/api/v1/monitoring/models", None).await;
    assert_eq!(models["models"][0]["firing_alerts"], 0, "{models}");

    everything.remove().await;
    critical.remove().await;
}

#[tokio::test]
async fn an_unreachable_topic_keeps_the_state_and_the_next_run_delivers_exactly_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("sns-down");
    let model = "ranker-v2";
    let subscriber = Subscriber::new(stack, &tenant, None).await;
    let base = hour_ago(2);
    let failing = Shape {
        error_rate: 0.5,
        ..GOOD
    };
    send(stack, &tenant, model, base, 10, failing).await;
    aggregate(stack).await;
    let at = base + TimeDelta::minutes(10);

    // SNS unreachable for this process only (the SDK's per-service endpoint variable).
    let mut cut_off = LocalFunction::start(
        stack,
        "evaluate",
        &[("AWS_ENDPOINT_URL_SNS", Some("http://127.0.0.1:9"))],
    )
    .await;
    let report = cut_off
        .invoke(&evaluate_event(at))
        .await
        .expect("a failed publish is reported, not an invocation error");
    let failures = report["failures"].as_array().expect("failures");
    assert!(
        failures.iter().any(|f| f["tenant_id"] == tenant.as_str()
            && f["error"]
                .as_str()
                .is_some_and(|e| e.contains("default-error_rate"))),
        "{report}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(subscriber.drain().await.is_empty());
    let (_, firing) = api(
        stack,
        &tenant,
        "GET",
        &format!("/api/v1/monitoring/performance/{model}/alerts"),
        None,
    )
    .await;
    assert_eq!(firing["alerts"], json!([]), "no state advanced: {firing}");

    // Back: the next run delivers, the one after adds nothing.
    evaluate(stack, at).await;
    evaluate(stack, at + TimeDelta::seconds(20)).await;
    let alerts: Vec<Value> = subscriber.drain().await.iter().map(alert_of).collect();
    assert_eq!(
        tally(&alerts),
        BTreeMap::from([(("default-error_rate".to_owned(), "firing".to_owned()), 1)]),
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["observed_value"], 0.5);
    subscriber.remove().await;
}

#[tokio::test]
async fn the_serving_baseline_is_captured_after_24_hours_of_traffic() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("baseline");
    let model = "churn-v7";
    let first = hour_ago(30);
    // One minute of traffic per hour for 26 hours, latencies spread over [10, 30) ms.
    for hour in 0..26 {
        send(
            stack,
            &tenant,
            model,
            first + TimeDelta::hours(hour),
            1,
            Shape {
                per_minute: 40,
                ..GOOD
            },
        )
        .await;
    }
    aggregate(stack).await;
    let path = format!("/api/v1/monitoring/performance/{model}/baseline");

    evaluate(stack, first + TimeDelta::hours(23)).await;
    let (status, baseline) = api(stack, &tenant, "GET", &path, None).await;
    assert_eq!(status, 200, "{baseline}");
    assert_eq!(baseline["captured"], Value::Null, "{baseline}");
    assert_eq!(
        baseline["capture_due_at"].as_str(),
        Some(
            (first + TimeDelta::hours(24))
                .to_rfc3339_opts(SecondsFormat::Secs, true)
                .as_str()
        ),
        "{baseline}"
    );

    let report = evaluate(stack, first + TimeDelta::hours(24)).await;
    assert!(report["baselines_captured"].as_u64() >= Some(1), "{report}");
    let (_, baseline) = api(stack, &tenant, "GET", &path, None).await;
    let captured = &baseline["captured"];
    assert_eq!(captured["sample_count"], 24 * 40, "{baseline}");
    assert_eq!(captured["error_rate"], 0.0);
    let p95 = captured["latency_p95_ms"].as_f64().expect("p95");
    // 40 latencies evenly over [10, 30): the lower 95th percentile is the 38th, 28.75 ms (±1 %).
    assert!((p95 - 28.75).abs() <= 0.3, "{p95}");

    let (_, rules) = api(
        stack,
        &tenant,
        "GET",
        &format!("/api/v1/monitoring/performance/{model}/alert-rules"),
        None,
    )
    .await;
    let derived = rules["default_rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == "default-latency_p95-baseline"))
        .unwrap_or_else(|| panic!("the latency baseline rule: {rules}"));
    assert!((derived["threshold"].as_f64().expect("threshold") - 1.5 * p95).abs() < 1e-9);
}

/// A webhook receiver on 127.0.0.1: every request's headers and body.
type Hooked = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

async fn webhook_receiver() -> (String, Hooked) {
    let got: Hooked = Hooked::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<Hooked>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    got.lock().expect("lock").push((headers, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, got)
}

/// HMAC-SHA256 of `<t>.<body>` with `secret`, in hex: what a receiver computes.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn each_tenants_own_subscriptions_receive_only_its_alerts_and_webhooks_are_signed() {
    use modelwatch_e2e::subscriber::Queue;
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (acme, globex) = (unique_tenant("subs-acme"), unique_tenant("subs-globex"));
    let (hook_url, hooked) = webhook_receiver().await;
    let mut queues = Vec::new();
    let mut secret = String::new();
    for tenant in [&acme, &globex] {
        let queue = Queue::create(stack, &format!("{}-own", &tenant[..tenant.len().min(60)])).await;
        let mut subscriptions = vec![json!({"protocol": "sqs", "endpoint": queue.arn})];
        if tenant == &acme {
            subscriptions.push(json!({"protocol": "webhook", "endpoint": hook_url}));
        }
        let (status, body) = api(
            stack,
            tenant,
            "PUT",
            "/api/v1/monitoring/alert-subscriptions",
            Some(json!({ "subscriptions": subscriptions })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if tenant == &acme {
            secret = body["subscriptions"][1]["signing_secret"]
                .as_str()
                .expect("the webhook's secret")
                .to_owned();
        }
        queues.push(queue);
    }

    // Both tenants' models breach a rule in the same run.
    let from = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .expect("minute")
        - TimeDelta::minutes(6);
    for tenant in [&acme, &globex] {
        send(stack, tenant, "subs-model", from, 5, GOOD).await;
        let (status, body) = api(
            stack,
            tenant,
            "PUT",
            "/api/v1/monitoring/performance/subs-model/alert-rules",
            Some(
                json!({"alert_rules": [{"id": "p95-any", "metric": "latency_p95",
                "condition": "above", "threshold": 1, "window": "15m", "severity": "warning",
                "min_samples": 1}]}),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    aggregate(stack).await;
    evaluate(stack, Utc::now()).await;

    for (tenant, queue) in [&acme, &globex].into_iter().zip(&queues) {
        let alerts: Vec<Value> = queue.drain().await.iter().map(alert_of).collect();
        assert!(
            alerts.iter().any(|a| a["rule"]["id"] == "p95-any"),
            "{tenant}'s queue got its alert: {alerts:?}"
        );
        assert!(
            alerts.iter().all(|a| a["tenant_id"] == tenant.as_str()),
            "{tenant}'s queue got only its own alerts: {alerts:?}"
        );
    }
    let hooked = hooked.lock().expect("lock").clone();
    let (headers, body) = hooked
        .iter()
        .find(|(_, body)| {
            serde_json::from_slice::<Value>(body).is_ok_and(|a| a["rule"]["id"] == "p95-any")
        })
        .expect("the webhook got acme's alert");
    let alert: Value = serde_json::from_slice(body).expect("JSON");
    assert_eq!(alert["tenant_id"], acme.as_str());
    assert!(hooked.iter().all(|(_, body)| {
        serde_json::from_slice::<Value>(body).is_ok_and(|a| a["tenant_id"] == acme.as_str())
    }));
    let signed = headers["x-modelwatch-signature"].to_str().expect("ASCII");
    let (timestamp, hex) = signed
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=<seconds>,v1=<hex>");
    assert_eq!(hex, expected_signature(&secret, timestamp, body));
    let sent_at: i64 = timestamp.parse().expect("seconds");
    assert!((Utc::now().timestamp() - sent_at).abs() < 300, "fresh");
    assert_eq!(
        headers["x-modelwatch-delivery"].to_str().ok(),
        Some(format!("{}-firing", alert["alert_id"].as_str().expect("id")).as_str())
    );
    for queue in queues {
        queue.delete().await;
    }
}

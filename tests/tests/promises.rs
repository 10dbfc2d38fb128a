//! End to end: what a `202` promises, through the real `ingest`, `aggregate` and `api`
//! binaries against the local stack. Accepted data is counted exactly once or refused
//! at the door: batches that cross the caps together do not stall their model, numbers
//! beyond the bounds are refused naming the field while the largest allowed ones are
//! counted, a re-serialized retry is the same batch, a task conflict claims nothing,
//! and a body of millions of empty objects is refused without taking the function down.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::ports::RollupStore;
use modelwatch_e2e::{Stack, api_request, event, http_answer, ingest_event, unique_tenant};
use serde_json::{Value, json};

/// The tests of this file invoke `aggregate`, whose runs roll up every tenant's
/// pending minutes: one at a time, so each sees the effects it stages.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn minute_ago(now: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(minutes)
}

async fn send(stack: &Stack, tenant: &str, body: &Value) -> (u16, Value) {
    send_bytes(stack, tenant, body.to_string().as_bytes()).await
}

async fn send_bytes(stack: &Stack, tenant: &str, body: &[u8]) -> (u16, Value) {
    http_answer(&stack.invoke("ingest", &ingest_event(tenant, body)).await)
}

/// Runs `aggregate` on its scheduled event at `at`; returns the failures it reports
/// for `tenant`.
async fn aggregate(stack: &Stack, tenant: &str, at: DateTime<Utc>) -> Vec<Value> {
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = at.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");
    report["rollups"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|f| f["tenant_id"] == tenant)
        .cloned()
        .collect()
}

async fn summary(stack: &Stack, tenant: &str, model: &str) -> Value {
    let path = format!("/api/v1/monitoring/performance/{model}");
    let request = api_request(Some(tenant), "GET", &path, &[("window", "1h")]);
    let (status, body) = http_answer(&stack.invoke("api", &request).await);
    assert_eq!(status, 200, "{body}");
    body
}

/// A multiclass batch in `minute`: `labels` correct predictions, each with its own
/// label `<prefix><i>`, and `error_types` failed ones, each with its own type.
fn distinct_labels(
    batch_id: &str,
    minute: DateTime<Utc>,
    prefix: &str,
    labels: usize,
    error_types: usize,
) -> Value {
    let t = (minute + TimeDelta::seconds(20)).to_rfc3339();
    let mut predictions: Vec<Value> = (0..labels)
        .map(|i| {
            json!({"timestamp": t, "latency_ms": 5, "status": "ok",
                        "predicted": format!("{prefix}{i}"), "actual": format!("{prefix}{i}")})
        })
        .collect();
    predictions.extend((0..error_types).map(|i| {
        json!({"timestamp": t, "latency_ms": 7, "status": "error",
               "error_type": format!("{prefix}-e{i}")})
    }));
    json!({"model_id": "m-caps", "batch_id": batch_id, "task": "multiclass_classification",
           "predictions": predictions})
}

#[tokio::test]
async fn batches_that_cross_the_caps_together_stall_nothing() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("caps");
    let now = Utc::now();
    let minute = minute_ago(now, 3);
    for (id, prefix) in [("b-a", "a"), ("b-b", "b")] {
        let (status, body) = send(
            stack,
            &tenant,
            &distinct_labels(id, minute, prefix, 600, 200),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(aggregate(stack, &tenant, now).await, Vec::<Value>::new());

    // The model's normal traffic afterwards is rolled up too.
    let normal = distinct_labels("b-normal", minute + TimeDelta::minutes(1), "cat", 3, 1);
    let (status, body) = send(stack, &tenant, &normal).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(aggregate(stack, &tenant, now).await, Vec::<Value>::new());

    let summary = summary(stack, &tenant, "m-caps").await;
    assert_eq!(
        summary["sample_count"],
        600 + 200 + 600 + 200 + 3 + 1,
        "{summary}"
    );
    assert_eq!(summary["quality_metrics"]["accuracy"]["current"], 1.0);
    // 1,203 labels: "a0".."a599" and the first 400 "b…" (bytewise) keep their names.
    assert_eq!(
        summary["overflow"],
        json!({"actual_labels": 203, "predicted_labels": 203, "error_types": 401 - 256}),
        "{summary}"
    );
}

#[tokio::test]
async fn numbers_beyond_the_bounds_are_refused_and_the_largest_allowed_are_counted() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("bounds");
    let now = Utc::now();
    let t = (minute_ago(now, 3) + TimeDelta::seconds(5)).to_rfc3339();
    let batch = |id: &str, prediction: Value| {
        json!({"model_id": "m-bounds", "batch_id": id, "task": "regression",
               "predictions": [prediction]})
    };
    for (prediction, field) in [
        (
            json!({"timestamp": t, "latency_ms": 1e200, "status": "ok", "predicted": 1.0}),
            "predictions[0].latency_ms",
        ),
        (
            json!({"timestamp": t, "latency_ms": 1, "status": "ok", "predicted": 1.7e308, "actual": 1.7e308}),
            "predictions[0].predicted",
        ),
        (
            json!({"timestamp": t, "latency_ms": 1, "status": "ok", "predicted": 1.0, "actual": 1e-300}),
            "predictions[0].actual",
        ),
    ] {
        let (status, body) = send(stack, &tenant, &batch("b-refused", prediction)).await;
        assert_eq!(status, 400, "{body}");
        let fields: Vec<&str> = body["error"]["details"]["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{field} not in {body}");
    }

    let largest = json!({"model_id": "m-bounds", "batch_id": "b-largest", "task": "regression",
    "predictions": [
        {"timestamp": t, "latency_ms": 1e9, "status": "ok", "predicted": 1e100, "actual": -1e100},
        {"timestamp": t, "latency_ms": 1e9, "status": "ok", "predicted": 1e-100, "actual": 1e-100}
    ]});
    let (status, body) = send(stack, &tenant, &largest).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(aggregate(stack, &tenant, now).await, Vec::<Value>::new());
    let normal = json!({"model_id": "m-bounds", "batch_id": "b-normal", "task": "regression",
        "predictions": [{"timestamp": t, "latency_ms": 12.5, "status": "ok", "predicted": 3.0, "actual": 2.0}]});
    let (status, body) = send(stack, &tenant, &normal).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(aggregate(stack, &tenant, now).await, Vec::<Value>::new());

    let summary = summary(stack, &tenant, "m-bounds").await;
    assert_eq!(summary["sample_count"], 3, "{summary}");
    let p99 = summary["serving_metrics"]["latency_p99_ms"]
        .as_f64()
        .expect("p99");
    assert!((p99 - 1e9).abs() <= 1e7, "p99 {p99} within 1% of 1e9");
    let rollups = stack.rollup_store().await;
    let totals = rollups
        .counter_totals(ModelRef::new(
            &TenantId::parse(&tenant).expect("tenant"),
            &ModelId::parse("m-bounds").expect("model"),
        ))
        .await
        .expect("totals are stored and readable");
    assert_eq!((totals.ok, totals.errors), (3, 0));
}

#[tokio::test]
async fn a_reserialized_retry_is_the_same_batch_and_a_task_conflict_claims_nothing() {
    let stack = Stack::get();
    let tenant = unique_tenant("retry");
    let t = (Utc::now() - TimeDelta::minutes(2)).to_rfc3339();
    let batch = json!({"model_id": "m-retry", "batch_id": "b-1", "task": "binary_classification",
        "predictions": [{"timestamp": t, "latency_ms": 8, "status": "ok", "predicted": 1, "actual": 0, "score": 0.5}]});
    let (status, first) = send(stack, &tenant, &batch).await;
    assert_eq!(status, 202, "{first}");
    // The same content re-serialized: pretty, keys sorted, other number and label
    // spellings — a retry, answered as the duplicate it is.
    let pretty = format!(
        "{{\n  \"batch_id\": \"b-1\",\n  \"model_id\": \"m-retry\",\n  \"predictions\": [ {{ \"actual\": false, \"latency_ms\": 8.0e0, \"predicted\": true, \"score\": 5e-1, \"status\": \"ok\", \"timestamp\": \"{t}\" }} ],\n  \"task\": \"binary_classification\"\n}}"
    );
    let (status, again) = send_bytes(stack, &tenant, pretty.as_bytes()).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["minutes"], first["minutes"]);

    // A batch naming another task is refused, and its id stays free for the fix.
    let mut wrong = batch.clone();
    wrong["task"] = "regression".into();
    wrong["batch_id"] = "b-2".into();
    wrong["predictions"][0] =
        json!({"timestamp": t, "latency_ms": 8, "status": "ok", "predicted": 2.5});
    let (status, body) = send(stack, &tenant, &wrong).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "task_conflict");
    let mut fixed = batch.clone();
    fixed["batch_id"] = "b-2".into();
    let (status, body) = send(stack, &tenant, &fixed).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicate"], false);
}

#[tokio::test]
async fn millions_of_empty_objects_are_refused_at_the_door() {
    let stack = Stack::get();
    let tenant = unique_tenant("flood");
    // 6 MB: {"predictions":[{},{},…]} — 2,097,085 objects.
    let mut body = String::from("{\"predictions\":[");
    while body.len() + 4 < 6 * 1024 * 1024 - 2 {
        body.push_str("{},");
    }
    body.pop();
    body.push_str("]}");
    let (status, answer) = send_bytes(stack, &tenant, body.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        answer["error"]["details"]["problems"][0]["field"],
        "predictions"
    );
    // The function is still there for the next batch.
    let t = (Utc::now() - TimeDelta::minutes(2)).to_rfc3339();
    let batch = json!({"model_id": "m-flood", "batch_id": "b-1", "task": "regression",
        "predictions": [{"timestamp": t, "latency_ms": 1, "status": "ok", "predicted": 1.0}]});
    let (status, answer) = send(stack, &tenant, &batch).await;
    assert_eq!(status, 202, "{answer}");
}

//! One end-to-end test per function: the real binary, invoked through cargo-lambda's
//! runtime emulator with its event from `events/`, against the local stack.

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch_e2e::{
    Stack, api_event_for_tenant, event, ingest_event, sample_batch, unique_tenant,
};
use serde_json::Value;

/// The HTTP status and parsed JSON body of an API Gateway proxy answer.
fn http_answer(answer: &Value) -> (u64, Value) {
    let status = answer["statusCode"].as_u64().expect("statusCode");
    let body = answer["body"].as_str().expect("string body");
    (status, serde_json::from_str(body).expect("JSON body"))
}

#[tokio::test]
async fn api_lists_the_tenants_models_from_dynamodb() {
    let stack = Stack::get();
    let tenant = unique_tenant("api");
    let answer = stack
        .invoke("api", &api_event_for_tenant("api-get-models.json", &tenant))
        .await;
    let (status, body) = http_answer(&answer);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["models"],
        serde_json::json!([]),
        "a new tenant has no models"
    );
}

#[tokio::test]
async fn api_refuses_a_request_without_the_tenant_claim() {
    let stack = Stack::get();
    let mut request = event("api-get-models.json");
    request["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .expect("claims")
        .remove("tenant_id");
    let (status, body) = http_answer(&stack.invoke("api", &request).await);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn ingest_accepts_its_sample_event() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest");
    // The sample's event times, moved to now so they are inside the accepted span.
    let batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(&tenant, batch.to_string().as_bytes()),
        )
        .await;
    let (status, body) = http_answer(&answer);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
}

/// Invokes a scheduled function with its event and checks it ran for the event's time.
async fn scheduled_run(function: &str, event_file: &str) -> Value {
    let stack = Stack::get();
    let trigger = event(event_file);
    let report = stack.invoke(function, &trigger).await;
    let run_time: DateTime<Utc> = report["run_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{function} report without run_time: {report}"));
    let scheduled: DateTime<Utc> = trigger["time"]
        .as_str()
        .expect("time")
        .parse()
        .expect("RFC 3339");
    assert_eq!(run_time, scheduled, "{report}");
    report
}

#[tokio::test]
async fn aggregate_runs_on_its_scheduled_event() {
    let report = scheduled_run("aggregate", "aggregate-scheduled.json").await;
    assert_eq!(
        report["rollups"]["failures"],
        serde_json::json!([]),
        "{report}"
    );
    assert!(report["rollups"]["models"].is_u64(), "{report}");
}

#[tokio::test]
async fn evaluate_runs_on_its_scheduled_event() {
    let report = scheduled_run("evaluate", "evaluate-scheduled.json").await;
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    assert!(report["models"].is_u64(), "{report}");
    assert!(report["rules"].is_u64(), "{report}");
}

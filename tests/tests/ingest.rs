//! End to end: `POST /api/v1/monitoring/predictions` through the real `ingest` binary
//! against moto — DynamoDB partials and receipts, the Timestream archive, retries,
//! outages, bad input and tenant isolation.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::domain::WindowState;
use modelwatch_e2e::proxy::CuttableProxy;
use modelwatch_e2e::runtime::LocalFunction;
use modelwatch_e2e::{
    Stack, api_event_for_tenant, bad_batches, ingest_event, sample_batch, unique_tenant,
};
use serde_json::{Value, json};

/// Status and JSON body of an API Gateway proxy answer.
fn http_answer(answer: &Value) -> (u64, Value) {
    let status = answer["statusCode"].as_u64().expect("statusCode");
    let body = answer["body"].as_str().expect("string body");
    (status, serde_json::from_str(body).expect("JSON body"))
}

/// The partial items stored for (tenant, model) in `minute`, as decoded states.
async fn partials(stack: &Stack, tenant: &str, model: &str, minute: &str) -> Vec<WindowState> {
    let minute: DateTime<Utc> = minute.parse().expect("minute");
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let output = client
        .query()
        .table_name(stack.var("PARTIALS_TABLE"))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(format!("P#{tenant}#{model}#{}", minute.timestamp())),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("query partials");
    output
        .items()
        .iter()
        .map(|item| {
            let Some(AttributeValue::B(bytes)) = item.get("state") else {
                panic!("partial without state: {item:?}")
            };
            WindowState::from_bytes(bytes.as_ref()).expect("stored state decodes")
        })
        .collect()
}

/// The archived Timestream records of `tenant`, from moto's state dump.
async fn archived(stack: &Stack, tenant: &str) -> Vec<Value> {
    let url = format!("{}/moto-api/data.json", stack.var("AWS_ENDPOINT_URL"));
    let data: Value = stack
        .http()
        .get(&url)
        .send()
        .await
        .expect("moto data")
        .json()
        .await
        .expect("moto data is JSON");
    let tables = data["timestreamwrite"]["TimestreamTable"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    tables
        .iter()
        .filter(|t| t["name"] == stack.var("TIMESTREAM_TABLE"))
        .flat_map(|t| t["records"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["Dimensions"]
                .as_array()
                .is_some_and(|d| d.contains(&json!({"Name": "tenant_id", "Value": tenant})))
        })
        .collect()
}

fn body_of(batch: &Value) -> Vec<u8> {
    batch.to_string().into_bytes()
}

#[tokio::test]
async fn a_batch_is_archived_and_folded_once_and_its_retry_is_a_duplicate() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest-once");
    let batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let event = ingest_event(&tenant, &body_of(&batch));

    let (status, receipt) = http_answer(&stack.invoke("ingest", &event).await);
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["batch_id"], batch["batch_id"]);
    assert_eq!(receipt["accepted"], 3);
    assert_eq!(receipt["duplicate"], false);
    assert_eq!(receipt["timestream"]["enabled"], true);
    assert_eq!(receipt["timestream"]["written"], 3);
    assert_eq!(receipt["timestream"]["rejected"], json!([]));
    assert_eq!(receipt["timestream"]["rejected_count"], 0);
    let minutes: Vec<String> = receipt["minutes"]
        .as_array()
        .expect("minutes")
        .iter()
        .map(|m| m.as_str().expect("minute").to_owned())
        .collect();
    assert!(!minutes.is_empty());

    let (status, again) = http_answer(&stack.invoke("ingest", &event).await);
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["minutes"], receipt["minutes"]);

    let model = batch["model_id"].as_str().expect("model");
    let mut predictions = 0;
    for minute in &minutes {
        let states = partials(stack, &tenant, model, minute).await;
        assert_eq!(states.len(), 1, "one partial per minute and batch");
        predictions += states[0].predictions();
    }
    assert_eq!(predictions, 3, "the retry counted once");
    let records = archived(stack, &tenant).await;
    assert_eq!(records.len(), 3, "archived once: {records:?}");
}

#[tokio::test]
async fn with_timestream_off_batches_are_still_aggregated() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest-no-ts");
    let mut ingest = LocalFunction::start(
        stack,
        "ingest",
        &[
            ("TIMESTREAM_ENABLED", Some("false")),
            ("TIMESTREAM_TABLE", None),
        ],
    )
    .await;
    let batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let answer = ingest
        .invoke(&ingest_event(&tenant, &body_of(&batch)))
        .await
        .expect("ingest answers");
    let (status, receipt) = http_answer(&answer);
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(
        receipt["timestream"],
        json!({"enabled": false, "written": 0, "rejected": [], "rejected_count": 0})
    );
    let minute = receipt["minutes"][0].as_str().expect("minute");
    assert_eq!(
        partials(stack, &tenant, "model-xyz789", minute).await.len(),
        1
    );
    assert!(archived(stack, &tenant).await.is_empty());
}

#[tokio::test]
async fn an_outage_mid_batch_answers_503_and_the_retry_counts_once() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest-outage");
    let proxy = CuttableProxy::start(stack.aws_endpoint_addr()).await;
    let mut ingest =
        LocalFunction::start(stack, "ingest", &[("AWS_ENDPOINT_URL", Some(&proxy.url()))]).await;
    // 20 predictions a minute apart: 20 partials and 20 pending marks to write.
    let start = Utc::now() - TimeDelta::minutes(30);
    let predictions: Vec<Value> = (0..20)
        .map(|i| {
            json!({"timestamp": (start + TimeDelta::minutes(i)).to_rfc3339(),
                   "latency_ms": 5.0 + i as f64, "status": "ok", "predicted": i % 3, "actual": 1})
        })
        .collect();
    let batch = json!({"model_id": "m-outage", "batch_id": "b-outage-1",
                       "task": "multiclass_classification", "predictions": predictions});
    let event = ingest_event(&tenant, &body_of(&batch));

    // Registry, one Timestream request and a few partial writes get through; then the
    // emulator is gone for this process.
    proxy.cut_after(6);
    let (status, body) = http_answer(&ingest.invoke(&event).await.expect("answer"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    proxy.restore();
    // Another body under the half-stored batch's id is refused: stored, it would mix
    // two contents under one id (the extra minute would get a partial).
    let extra_minute = start + TimeDelta::minutes(25);
    let mut other = batch.clone();
    other["predictions"]
        .as_array_mut()
        .expect("predictions")
        .push(
            json!({"timestamp": extra_minute.to_rfc3339(), "latency_ms": 1.0,
                     "status": "ok", "predicted": 1, "actual": 1}),
        );
    let (status, body) = http_answer(
        &ingest
            .invoke(&ingest_event(&tenant, &body_of(&other)))
            .await
            .expect("answer"),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "batch_id_reused");
    let extra = extra_minute
        .duration_trunc(TimeDelta::minutes(1))
        .expect("minute")
        .to_rfc3339();
    assert!(
        partials(stack, &tenant, "m-outage", &extra)
            .await
            .is_empty()
    );

    let (status, receipt) = http_answer(&ingest.invoke(&event).await.expect("answer"));
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["duplicate"], false);
    assert_eq!(receipt["minutes"].as_array().map(Vec::len), Some(20));
    let (_, again) = http_answer(&ingest.invoke(&event).await.expect("answer"));
    assert_eq!(again["duplicate"], true);

    let mut counted = 0;
    for minute in receipt["minutes"].as_array().expect("minutes") {
        let states = partials(stack, &tenant, "m-outage", minute.as_str().expect("minute")).await;
        assert_eq!(states.len(), 1, "minute {minute}: one partial");
        counted += states[0].predictions();
    }
    assert_eq!(counted, 20, "every prediction counted exactly once");
}

#[tokio::test]
async fn bad_batches_are_refused_naming_the_field_and_nothing_is_written() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest-bad");
    let cases = bad_batches(Utc::now());
    assert!(cases.len() >= 40, "the corpus holds {} cases", cases.len());
    for case in &cases {
        let answer = stack
            .invoke("ingest", &ingest_event(&tenant, &case.body))
            .await;
        let (status, body) = http_answer(&answer);
        assert_eq!(status, u64::from(case.status), "{}: {body}", case.name);
        let fields: Vec<&str> = body["error"]["details"]["problems"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&case.field.as_str()),
            "{}: expected a problem naming {}, got {body}",
            case.name,
            case.field
        );
    }
    let (status, models) = http_answer(
        &stack
            .invoke("api", &api_event_for_tenant("api-get-models.json", &tenant))
            .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        models["models"],
        json!([]),
        "no refused batch registered a model"
    );
    assert!(archived(stack, &tenant).await.is_empty());
}

#[tokio::test]
async fn a_model_keeps_its_task() {
    let stack = Stack::get();
    let tenant = unique_tenant("ingest-task");
    let mut batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let (status, _) = http_answer(
        &stack
            .invoke("ingest", &ingest_event(&tenant, &body_of(&batch)))
            .await,
    );
    assert_eq!(status, 202);
    batch["batch_id"] = "another-batch".into();
    batch["task"] = "regression".into();
    for p in batch["predictions"].as_array_mut().expect("predictions") {
        if let Some(p) = p.as_object_mut() {
            p.remove("score");
        }
    }
    let (status, body) = http_answer(
        &stack
            .invoke("ingest", &ingest_event(&tenant, &body_of(&batch)))
            .await,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "task_conflict");
}

#[tokio::test]
async fn one_tenants_batches_are_invisible_to_another() {
    let stack = Stack::get();
    let (tenant_a, tenant_b) = (unique_tenant("iso-a"), unique_tenant("iso-b"));
    let batch = sample_batch(Utc::now() - TimeDelta::seconds(30));
    let (status, receipt) = http_answer(
        &stack
            .invoke("ingest", &ingest_event(&tenant_a, &body_of(&batch)))
            .await,
    );
    assert_eq!(status, 202);

    let list = |tenant: String| async move {
        http_answer(
            &stack
                .invoke("api", &api_event_for_tenant("api-get-models.json", &tenant))
                .await,
        )
        .1
    };
    assert_eq!(
        list(tenant_a.clone()).await["models"][0]["model_id"],
        "model-xyz789"
    );
    assert_eq!(list(tenant_b.clone()).await["models"], json!([]));
    // The same batch id under tenant B is a new batch, not a duplicate of A's.
    let (status, b_receipt) = http_answer(
        &stack
            .invoke("ingest", &ingest_event(&tenant_b, &body_of(&batch)))
            .await,
    );
    assert_eq!(status, 202);
    assert_eq!(b_receipt["duplicate"], false);
    let minute = receipt["minutes"][0].as_str().expect("minute");
    assert_eq!(
        partials(stack, &tenant_a, "model-xyz789", minute)
            .await
            .len(),
        1
    );
    assert_eq!(
        partials(stack, &tenant_b, "model-xyz789", minute)
            .await
            .len(),
        1
    );
}

//! End to end: a tenant's quota of predictions per minute, through the real `ingest`
//! against the stack's DynamoDB. An operator sets a tenant's quota in the models table
//! (the item `TENANT#<tenant>` / `QUOTAS`, which no route writes); the tenant's batches
//! beyond it in one minute get `429` with `Retry-After` while another tenant's batches
//! are accepted in the same minute; a retry of an accepted batch is still answered
//! with its receipt; the count expires a day after its minute.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use modelwatch_e2e::{Stack, ingest_event, unique_tenant};
use serde_json::{Value, json};

/// A regression batch of `n` predictions at `at`.
fn batch(id: &str, n: usize, at: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<Value> = (0..n)
        .map(|i| {
            json!({"timestamp": at.to_rfc3339(), "latency_ms": 3 + i, "status": "ok",
                   "predicted": 1.5})
        })
        .collect();
    json!({"model_id": "m-quota", "batch_id": id, "task": "regression",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// Status, `Retry-After` and JSON body of an ingest answer.
async fn send(stack: &Stack, tenant: &str, body: &[u8]) -> (u64, Option<String>, Value) {
    let answer = stack.invoke("ingest", &ingest_event(tenant, body)).await;
    let status = answer["statusCode"].as_u64().expect("statusCode");
    let retry_after = answer["headers"]["retry-after"].as_str().map(str::to_owned);
    let body = serde_json::from_str(answer["body"].as_str().expect("body")).expect("JSON");
    (status, retry_after, body)
}

#[tokio::test]
async fn a_tenant_over_its_quota_gets_429_while_another_is_accepted() {
    let stack = Stack::get();
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let (limited, other) = (unique_tenant("quota"), unique_tenant("quota-other"));
    // The operator's quota for one tenant.
    client
        .put_item()
        .table_name(stack.var("MODELS_TABLE"))
        .item("pk", AttributeValue::S(format!("TENANT#{limited}")))
        .item("sk", AttributeValue::S("QUOTAS".into()))
        .item("predictions_per_minute", AttributeValue::N("50".into()))
        .send()
        .await
        .expect("quota set");
    // All the batches in one minute of arrival.
    if Utc::now().second() >= 45 {
        let next = Utc::now()
            .duration_trunc(TimeDelta::minutes(1))
            .expect("minute")
            + TimeDelta::minutes(1);
        tokio::time::sleep((next - Utc::now()).to_std().unwrap_or_default()).await;
    }
    let started = Utc::now();
    let minute = started
        .duration_trunc(TimeDelta::minutes(1))
        .expect("minute");
    let at = started - TimeDelta::seconds(30);

    let (status, _, receipt) = send(stack, &limited, &batch("q-1", 40, at)).await;
    assert_eq!(status, 202, "{receipt}");
    let (status, _, again) = send(stack, &limited, &batch("q-1", 40, at)).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &json!(true)),
        "a retry is answered from its receipt, not counted: {again}"
    );
    let (status, retry_after, refused) = send(stack, &limited, &batch("q-2", 40, at)).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "quota_exceeded");
    let details = &refused["error"]["details"];
    assert_eq!(
        (&details["quota"], &details["limit"], &details["requested"]),
        (&json!("predictions_per_minute"), &json!(50), &json!(40))
    );
    let seconds: i64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert_eq!(details["retry_after_seconds"], seconds);
    // Another tenant (the default quota) in the same minute; and what still fits.
    let (status, _, accepted) = send(stack, &other, &batch("q-2", 40, at)).await;
    assert_eq!(status, 202, "{accepted}");
    let (status, _, fits) = send(stack, &limited, &batch("q-3", 10, at)).await;
    assert_eq!(status, 202, "{fits}");
    assert!(
        Utc::now() < minute + TimeDelta::minutes(1),
        "the batches crossed a minute: rerun"
    );

    // The count: 50 of 50, kept a day after its minute.
    let count = client
        .get_item()
        .table_name(stack.var("PARTIALS_TABLE"))
        .key(
            "pk",
            AttributeValue::S(format!("QUOTA#{limited}#{}", minute.timestamp())),
        )
        .key("sk", AttributeValue::S("PREDICTIONS".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("count read");
    let item = count.item().expect("the count is stored");
    let number =
        |name: &str| -> i64 { item[name].as_n().expect("number").parse().expect("integer") };
    assert_eq!(number("predictions"), 50);
    assert_eq!(
        number("expires_at"),
        (minute + TimeDelta::days(1)).timestamp()
    );
}

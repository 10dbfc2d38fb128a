//! End to end: a tenant's quota of predictions per minute, through the real `ingest`
//! against the stack's DynamoDB. An operator sets a tenant's quota in the models table
//! (the item `TENANT#<tenant>` / `QUOTAS`, which no route writes); the tenant's batches
//! beyond it in one minute get `429` with `Retry-After` while another tenant's batches
//! are accepted in the same minute; a retry of an accepted batch is still answered
//! with its receipt; the count expires a day after its minute. The quotas of models
//! per tenant (a batch of a new model beyond it is refused whole, the tenant's models
//! go on) and of custom rules per model (`PUT alert-rules`, through the real `api`)
//! answer the same way.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use modelwatch_e2e::{Stack, api_request, http_answer, ingest_event, unique_tenant, with_body};
use serde_json::{Value, json};

/// A regression batch of `n` predictions at `at`.
fn batch(id: &str, n: usize, at: DateTime<Utc>) -> Vec<u8> {
    model_batch("m-quota", id, n, at)
}

/// A regression batch of `model` with `n` predictions at `at`.
fn model_batch(model: &str, id: &str, n: usize, at: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<Value> = (0..n)
        .map(|i| {
            json!({"timestamp": at.to_rfc3339(), "latency_ms": 3 + i, "status": "ok",
                   "predicted": 1.5})
        })
        .collect();
    json!({"model_id": model, "batch_id": id, "task": "regression",
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

/// Sets `tenant`'s quota `name` to `limit`, as an operator does (no route writes it).
async fn set_quota(
    client: &aws_sdk_dynamodb::Client,
    stack: &Stack,
    tenant: &str,
    name: &str,
    limit: u64,
) {
    client
        .update_item()
        .table_name(stack.var("MODELS_TABLE"))
        .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", AttributeValue::S("QUOTAS".into()))
        .update_expression("SET #quota = :limit")
        .expression_attribute_names("#quota", name)
        .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
        .send()
        .await
        .expect("quota set");
}

#[tokio::test]
async fn a_tenant_over_its_quota_gets_429_while_another_is_accepted() {
    let stack = Stack::get();
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let (limited, other) = (unique_tenant("quota"), unique_tenant("quota-other"));
    set_quota(&client, stack, &limited, "predictions_per_minute", 50).await;
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

#[tokio::test]
async fn a_new_model_beyond_the_models_quota_and_a_rule_set_beyond_the_rules_quota_get_429() {
    let stack = Stack::get();
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let (limited, other) = (unique_tenant("models"), unique_tenant("models-other"));
    set_quota(&client, stack, &limited, "models_per_tenant", 2).await;
    set_quota(&client, stack, &limited, "custom_rules_per_model", 1).await;
    let at = Utc::now() - TimeDelta::minutes(1);

    for (model, id) in [("m-a", "a-1"), ("m-b", "b-1")] {
        let (status, _, receipt) = send(stack, &limited, &model_batch(model, id, 2, at)).await;
        assert_eq!(status, 202, "{receipt}");
    }
    let (status, retry_after, refused) =
        send(stack, &limited, &model_batch("m-c", "c-1", 2, at)).await;
    assert_eq!(status, 429, "{refused}");
    let details = &refused["error"]["details"];
    assert_eq!(
        (&details["quota"], &details["limit"], &details["requested"]),
        (&json!("models_per_tenant"), &json!(2), &json!(1))
    );
    assert_eq!(retry_after.as_deref(), Some("60"));
    // The tenant's models go on; another tenant has the deployment's quota.
    let (status, _, receipt) = send(stack, &limited, &model_batch("m-a", "a-2", 2, at)).await;
    assert_eq!(status, 202, "{receipt}");
    let (status, _, receipt) = send(stack, &other, &model_batch("m-c", "c-1", 2, at)).await;
    assert_eq!(status, 202, "{receipt}");
    // Nothing of the refused model was registered; the count holds the two.
    let (status, models) = http_answer(
        &stack
            .invoke(
                "api",
                &api_request(Some(&limited), "GET", "/api/v1/monitoring/models", &[]),
            )
            .await,
    );
    assert_eq!(status, 200, "{models}");
    let ids: Vec<&str> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["model_id"].as_str())
        .collect();
    assert_eq!(ids, ["m-a", "m-b"]);
    let count = client
        .get_item()
        .table_name(stack.var("MODELS_TABLE"))
        .key("pk", AttributeValue::S(format!("TENANT#{limited}")))
        .key("sk", AttributeValue::S("MODELS".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("count read");
    assert_eq!(
        count
            .item()
            .and_then(|i| i["models"].as_n().ok())
            .map(String::as_str),
        Some("2")
    );

    // A rule set of two rules is over the quota of one; a set of one is stored.
    let rule = json!({"metric": "error_rate", "condition": "above", "threshold": 0.1,
                      "window": "15m", "severity": "warning"});
    let put = |tenant: &str, rules: Vec<Value>| {
        let body = json!({"model_id": "m-a", "alert_rules": rules}).to_string();
        let request = api_request(
            Some(tenant),
            "PUT",
            "/api/v1/monitoring/performance/m-a/alert-rules",
            &[],
        );
        with_body(request, Some("application/json"), &body)
    };
    let mut second = rule.clone();
    second["threshold"] = json!(0.2);
    let (status, refused) = http_answer(
        &stack
            .invoke("api", &put(&limited, vec![rule.clone(), second.clone()]))
            .await,
    );
    assert_eq!(status, 429, "{refused}");
    assert_eq!(
        refused["error"]["details"],
        json!({"quota": "custom_rules_per_model", "limit": 1, "requested": 2,
               "retry_after_seconds": 60})
    );
    let (status, stored) = http_answer(&stack.invoke("api", &put(&limited, vec![rule])).await);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["alert_rules"].as_array().map(Vec::len), Some(1));
}

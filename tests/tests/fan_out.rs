//! End to end: the scheduled runs fanned out to the shard workers, through the real
//! binaries. The coordinator (the function on its schedule's event,
//! `events/*-fan-out.json`) enqueues one message per worker on its FIFO shard queue;
//! the local stack's poller (`infra/local/shard_poller.py`, Lambda's event source
//! mapping) invokes the same function with each message; each worker rolls up,
//! exports and evaluates the models of its shards.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::shard::shard_of;
use modelwatch::domain::{Granularity, TimeSpan};
use modelwatch::ports::RollupStore;
use modelwatch::schedule::worker_shards;
use modelwatch_e2e::{Stack, event, ingest_event, unique_tenant};
use modelwatch_simulator::observe::prometheus_query;
use modelwatch_simulator::target::{Client, Target};
use serde_json::{Value, json};

/// Models of `tenant` whose shards fall in different workers' ranges.
fn models_of_two_workers(tenant: &TenantId, workers: u32) -> (String, String) {
    let ranges = worker_shards(workers);
    let worker = |model: &str| {
        let shard = shard_of(tenant, &ModelId::parse(model).expect("model id"));
        ranges.iter().position(|r| r.contains(&shard))
    };
    let first = "m-fan-0".to_owned();
    let second = (1..1000)
        .map(|i| format!("m-fan-{i}"))
        .find(|m| worker(m) != worker(&first))
        .expect("a model of another worker");
    (first, second)
}

async fn ingest_one(stack: &Stack, tenant: &str, model: &str, minute: DateTime<Utc>) {
    let body = json!({"model_id": model, "batch_id": "b-fan", "task": "regression",
        "predictions": [{"timestamp": (minute + TimeDelta::seconds(5)).to_rfc3339(),
                         "latency_ms": 4.0, "status": "ok", "predicted": 1.0, "actual": 1.5}]});
    let answer = stack
        .invoke("ingest", &ingest_event(tenant, body.to_string().as_bytes()))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
}

/// Invokes `function` with its schedule's event for `at`, checks the coordinator's
/// answer and waits until the shard workers have taken every message.
async fn fan_out(stack: &Stack, client: &Client, function: &str, at: DateTime<Utc>) -> Value {
    let mut trigger = event(&format!("{function}-fan-out.json"));
    trigger["time"] = at.to_rfc3339().into();
    let answer = stack.invoke(function, &trigger).await;
    let queue_var = format!("{}_SHARD_QUEUE_URL", function.to_uppercase());
    assert_eq!(
        answer["fan_out"]["queue"],
        stack.var(&queue_var),
        "{answer}"
    );
    let workers: u32 = stack.var("SHARD_WORKERS").parse().expect("SHARD_WORKERS");
    assert_eq!(
        answer["fan_out"]["workers"],
        serde_json::to_value(worker_shards(workers)).expect("ranges"),
        "one message per worker, each a range of shards: {answer}"
    );
    assert!(
        answer.get("rollups").is_none() && answer.get("models").is_none(),
        "the coordinator works nothing itself: {answer}"
    );
    client
        .wait_for_workers(function, stack.var(&queue_var))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    answer
}

#[tokio::test]
async fn the_schedules_fan_out_to_the_shard_workers() {
    let stack = Stack::get();
    let tenant = unique_tenant("fan-out");
    let tenant_id = TenantId::parse(&tenant).expect("tenant id");
    let workers: u32 = stack.var("SHARD_WORKERS").parse().expect("SHARD_WORKERS");
    let (first, second) = models_of_two_workers(&tenant_id, workers);
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(2);
    for model in [&first, &second] {
        ingest_one(stack, &tenant, model, minute).await;
    }
    let client = Client::new(Target::Lambda {
        endpoint: stack.var("LAMBDA_ENDPOINT").to_owned(),
        tenant: tenant.clone(),
        http_api: None,
    })
    .with_sqs()
    .await;

    fan_out(stack, &client, "aggregate", now).await;
    let rollups = stack.rollup_store().await;
    for model in [&first, &second] {
        let span = TimeSpan::new(minute, minute + TimeDelta::minutes(1));
        let model_id = ModelId::parse(model).expect("model");
        let found = rollups
            .rollups(
                ModelRef::new(&tenant_id, &model_id),
                Granularity::Minute,
                span,
            )
            .await
            .expect("read");
        assert_eq!(found.len(), 1, "{model}'s worker rolled its minute");
    }
    // Each worker exported its models to Prometheus.
    let exported = prometheus_query(
        stack.var("PROMETHEUS_URL"),
        &format!("count by (model_id) (ml_model_predictions_total{{tenant_id=\"{tenant}\"}})"),
        Utc::now(),
    )
    .await
    .expect("Prometheus answers");
    let mut models: Vec<&str> = exported
        .iter()
        .filter_map(|(labels, _)| labels["model_id"].as_str())
        .collect();
    models.sort_unstable();
    assert_eq!(models, [first.as_str(), second.as_str()], "{exported:?}");

    // The evaluation workers evaluate both models: their default rules' thresholds.
    fan_out(stack, &client, "evaluate", now).await;
    let thresholds = prometheus_query(
        stack.var("PROMETHEUS_URL"),
        &format!("count by (model_id) (ml_model_alert_threshold{{tenant_id=\"{tenant}\"}})"),
        now,
    )
    .await
    .expect("Prometheus answers");
    assert_eq!(thresholds.len(), 2, "both models evaluated: {thresholds:?}");

    // The scheduler delivering the same event again enqueues nothing twice.
    fan_out(stack, &client, "aggregate", now).await;
}

#[tokio::test]
async fn a_worker_answers_for_each_message() {
    let stack = Stack::get();
    let mut event = event("aggregate-worker.json");
    let good = event["Records"][0].clone();
    let mut fresh = good.clone();
    fresh["messageId"] = "fresh".into();
    fresh["body"] = json!({"time": Utc::now(), "shards": {"start": 8, "end": 16}})
        .to_string()
        .into();
    fresh["attributes"]["SentTimestamp"] = Utc::now().timestamp_millis().to_string().into();
    let mut garbled = good;
    garbled["messageId"] = "garbled".into();
    garbled["body"] = "{\"shards\": 7".into();
    event["Records"] = json!([fresh, garbled]);
    for function in ["aggregate", "evaluate"] {
        let answer = stack.invoke(function, &event).await;
        assert_eq!(
            answer,
            json!({"batchItemFailures": [{"itemIdentifier": "garbled"}]}),
            "{function}: only the garbled message is delivered again"
        );
    }
}

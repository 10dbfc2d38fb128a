//! A measurement, not a check (ignored by default): the latency of the performance
//! summary through the real `api` binary against the local stack — the cargo-lambda
//! emulator, a debug build of `api`, DynamoDB emulated by moto — for a binary
//! classifier with a prediction every 10 minutes over the last 7 days (the oldest
//! ingest accepts). Prints p50/p99/max of 200 calls per window.
//!
//! `cargo test -p modelwatch-e2e --test summary_latency -- --ignored --nocapture`

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use modelwatch_e2e::{Stack, api_request, event, http_answer, ingest_event, unique_tenant};
use serde_json::{Value, json};

const MODEL: &str = "m-latency";
const CALLS: usize = 200;

/// One prediction every 10 minutes from 7 days ago to now, with scores and labels.
fn week_of_predictions() -> Value {
    let now = Utc::now();
    let predictions: Vec<Value> = (1..7 * 144)
        .map(|i| {
            let t = now - TimeDelta::minutes(10 * i);
            json!({"timestamp": t.to_rfc3339(), "latency_ms": 5 + i % 40, "status": "ok",
                   "predicted": i % 3 != 0, "actual": i % 2 == 0, "score": (i % 100) as f64 / 100.0})
        })
        .collect();
    json!({"model_id": MODEL, "batch_id": "b-week", "task": "binary_classification",
           "predictions": predictions})
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn summary_latency_through_the_local_stack() {
    let stack = Stack::get();
    let tenant = unique_tenant("latency");
    let batch = week_of_predictions();
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(&tenant, batch.to_string().as_bytes()),
        )
        .await;
    assert_eq!(http_answer(&answer).0, 202, "{answer}");
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = Utc::now().to_rfc3339().into();
    stack.invoke("aggregate", &trigger).await;

    let path = format!("/api/v1/monitoring/performance/{MODEL}");
    for query in [
        &[("window", "24h")][..],
        &[("window", "7d"), ("granularity", "hour")],
        &[("window", "30d"), ("granularity", "hour")],
    ] {
        let request = api_request(Some(&tenant), "GET", &path, query);
        let (status, body) = http_answer(&stack.invoke("api", &request).await);
        assert_eq!(status, 200, "{body}");
        assert!(body["sample_count"].as_u64() > Some(0), "{body}");
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let start = Instant::now();
            let answer = stack.invoke("api", &request).await;
            times.push(start.elapsed());
            assert_eq!(answer["statusCode"], 200);
        }
        times.sort_unstable();
        println!(
            "summary {query:?}: {CALLS} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} series points)",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times[CALLS - 1].as_secs_f64() * 1e3,
            body["series"].as_array().map_or(0, Vec::len),
        );
    }
}

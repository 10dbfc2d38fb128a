//! End to end: batches through the real `ingest`, the real `aggregate` on its
//! scheduled event, then the performance summary from the real `api`, compared with
//! the metric engine over the same records.

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch::domain::{Granularity, MetricSet, TimeSpan, ValidBatch, WindowState};
use modelwatch::ingest::{BatchLimits, parse_batch};
use modelwatch_e2e::{Stack, api_event_for_tenant, event, ingest_event, unique_tenant};
use serde_json::{Value, json};

const MODEL: &str = "m-sum";

/// How far before `now` the records lie: away from every window's start (1 h, 6 h,
/// 24 h, 7 d) by minutes, so the instant the `api` reads its clock cannot move a
/// record in or out of a window.
const OFFSETS_MINUTES: [i64; 10] = [3, 10, 30, 120, 300, 720, 1380, 1800, 4320, 8640];

/// A binary classifier's batch: a few predictions at each offset before `now`, and
/// resource samples.
fn batch(now: DateTime<Utc>) -> Vec<u8> {
    let mut predictions = Vec::new();
    let mut resources = Vec::new();
    for (i, minutes) in OFFSETS_MINUTES.into_iter().enumerate() {
        let base = now - TimeDelta::minutes(minutes);
        for j in 0..4_i64 {
            let t = (base + TimeDelta::seconds(j * 7)).to_rfc3339();
            let k = i as i64 * 4 + j;
            if k % 9 == 8 {
                predictions.push(json!({"timestamp": t, "latency_ms": 400, "status": "error", "error_type": "timeout"}));
            } else {
                predictions.push(json!({"timestamp": t, "latency_ms": 3 + k, "status": "ok",
                    "predicted": k % 3 != 0, "actual": k % 2 == 0, "score": (k % 16) as f64 / 16.0}));
            }
        }
        resources.push(json!({"timestamp": base.to_rfc3339(), "cpu_utilization": 0.25 * (i % 4) as f64,
            "memory_utilization": 0.5, "gpu_utilization": 0.125, "queue_depth": i, "cache_hits": 3, "cache_misses": 1}));
    }
    json!({"model_id": MODEL, "batch_id": "b-sum", "task": "binary_classification",
           "predictions": predictions, "resources": resources})
    .to_string()
    .into_bytes()
}

/// The engine's metrics over the records of `batch` in `span`.
fn engine(batch: &ValidBatch, span: TimeSpan, first_seen: DateTime<Utc>) -> MetricSet {
    let inside = |t: DateTime<Utc>| span.start <= t && t < span.end;
    let mut state = WindowState::default();
    for p in batch
        .predictions
        .iter()
        .filter(|p| inside(p.record.timestamp))
    {
        state.fold_prediction(&p.record).expect("fold");
    }
    for r in batch.resources.iter().filter(|r| inside(r.timestamp)) {
        state.fold_resource(r).expect("fold");
    }
    MetricSet::compute(&state, span, Some(first_seen))
}

/// The summary route's event for `tenant`, `model` and `query`.
fn summary_event(tenant: &str, model: &str, query: &[(&str, &str)]) -> Value {
    let mut request = api_event_for_tenant("api-get-summary.json", tenant);
    let path = format!("/api/v1/monitoring/performance/{model}");
    request["rawPath"] = path.clone().into();
    request["requestContext"]["http"]["path"] = path.into();
    request["pathParameters"] = json!({"proxy": format!("performance/{model}")});
    let raw: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    request["rawQueryString"] = raw.join("&").into();
    request["queryStringParameters"] = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    request
}

async fn call(stack: &Stack, request: &Value) -> (u64, Value) {
    let answer = stack.invoke("api", request).await;
    let status = answer["statusCode"].as_u64().expect("statusCode");
    let body = answer["body"].as_str().expect("string body");
    (status, serde_json::from_str(body).expect("JSON body"))
}

/// Where the summary's window starts when `api` reads `now`: the finest rollup
/// available there (minutes are kept 8 days).
fn covered_start(window: TimeDelta, now: DateTime<Utc>) -> DateTime<Utc> {
    let g = if window > TimeDelta::days(7) {
        Granularity::Hour
    } else {
        Granularity::Minute
    };
    g.floor(now - window)
}

/// Every shown metric (the quality ones' `current`) as (name, value).
fn shown_metrics(body: &Value) -> Vec<(String, Option<f64>)> {
    let mut shown = Vec::new();
    for part in ["quality_metrics", "serving_metrics", "resource_metrics"] {
        for (name, v) in body[part].as_object().expect("metric group") {
            let v = if v.is_object() { &v["current"] } else { v };
            shown.push((name.clone(), v.as_f64()));
        }
    }
    shown
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn the_summary_equals_the_engine_for_every_window_and_granularity() {
    let stack = Stack::get();
    let tenant = unique_tenant("summary");
    let now = Utc::now();
    let body = batch(now);
    let parsed = parse_batch(&body, now, &BatchLimits::default()).expect("valid batch");
    let first_seen = parsed
        .predictions
        .iter()
        .map(|p| p.record.timestamp)
        .min()
        .expect("records");
    let answer = stack.invoke("ingest", &ingest_event(&tenant, &body)).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");

    let windows = [
        ("1h", TimeDelta::hours(1), &["minute", "hour", "day"][..]),
        ("6h", TimeDelta::hours(6), &["minute", "hour", "day"][..]),
        ("24h", TimeDelta::hours(24), &["minute", "hour", "day"][..]),
        ("7d", TimeDelta::days(7), &["hour", "day"][..]),
        ("30d", TimeDelta::days(30), &["hour", "day"][..]),
    ];
    for (name, length, granularities) in windows {
        for granularity in granularities {
            let what = format!("{name} {granularity}");
            let request = summary_event(
                &tenant,
                MODEL,
                &[("window", name), ("granularity", granularity)],
            );
            // Asked again when the window's start moved on during the call: the
            // throughput then jumps and lies outside the bracket below.
            let (before, (status, body), after) = loop {
                let before = Utc::now();
                let answer = call(stack, &request).await;
                let after = Utc::now();
                if covered_start(length, before) == covered_start(length, after) {
                    break (before, answer, after);
                }
            };
            assert_eq!(status, 200, "{what}: {body}");
            assert_eq!(body["model_id"], MODEL);
            assert_eq!(body["window"], name);
            assert_eq!(body["granularity"], *granularity);
            // The api read its clock between `before` and `after`: the engine at
            // both ends agrees on everything but throughput, which lies between.
            let [early, late] = [before, after].map(|end| {
                let span = TimeSpan {
                    start: covered_start(length, end),
                    end,
                };
                engine(&parsed, span, first_seen)
            });
            assert!(early.predictions > 0, "{what}");
            assert_eq!(early.predictions, late.predictions, "{what}");
            assert_eq!(body["sample_count"], early.predictions, "{what}");
            assert_eq!(body["labeled_count"], early.labeled, "{what}");
            let early_json = serde_json::to_value(&early).expect("json");
            let late_json = serde_json::to_value(&late).expect("json");
            let shown = shown_metrics(&body);
            assert_eq!(shown.len(), 13, "{what}: {body}");
            for (metric, value) in shown {
                let (a, b) = (early_json[&metric].as_f64(), late_json[&metric].as_f64());
                match (value, a, b) {
                    (Some(v), Some(a), Some(b)) if metric == "throughput_rps" => assert!(
                        a.min(b) - 1e-9 <= v && v <= a.max(b) + 1e-9,
                        "{what} {metric}: {v} not in [{a}, {b}]"
                    ),
                    (Some(v), Some(a), _) => assert!(close(v, a), "{what} {metric}: {v} != {a}"),
                    (v, a, _) => assert_eq!(v, a, "{what} {metric}"),
                }
            }

            // Each series point shows the records of its span.
            let step = match *granularity {
                "minute" => Granularity::Minute,
                "hour" => Granularity::Hour,
                _ => Granularity::Day,
            }
            .length();
            let points = body["series"].as_array().expect("series");
            let mut previous: Option<DateTime<Utc>> = None;
            for point in points {
                let start: DateTime<Utc> = point["timestamp"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .expect("RFC 3339 timestamp");
                assert!(
                    previous.is_none_or(|p| p + step == start),
                    "{what}: ascending"
                );
                previous = Some(start);
                let span = TimeSpan {
                    start,
                    end: (start + step).min(after),
                };
                let m = engine(&parsed, span, first_seen);
                assert_eq!(point["sample_count"], m.predictions, "{what} {start}");
                let p95 = point["latency_p95_ms"].as_f64();
                match (p95, m.latency_p95_ms) {
                    (Some(v), Some(e)) => assert!(close(v, e), "{what} {start}: {v} != {e}"),
                    (v, e) => assert_eq!(v, e, "{what} {start}"),
                }
            }
            assert!(
                previous.is_some_and(|last| last <= after && after - last <= step),
                "{what}: the series reaches now"
            );
        }
    }

    // Another tenant asking for this model's summary learns nothing.
    let other = unique_tenant("summary-b");
    let (status, body) = call(stack, &summary_event(&other, MODEL, &[])).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = call(
        stack,
        &summary_event(
            &tenant,
            MODEL,
            &[("window", "7d"), ("granularity", "minute")],
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["parameter"], "granularity");
}

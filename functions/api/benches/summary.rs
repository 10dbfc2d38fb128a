//! The 30-day summary at hour granularity, end to end inside the `api` handler: an
//! API Gateway event in, the JSON response out, with in-memory stores behind the same
//! traits as DynamoDB. The model is a binary classifier with 2,000 scored predictions
//! and 60 resource samples an hour for 31 days, stored as the aggregate function
//! stores them: hour and day rollups, and minute rollups for the current hour. One
//! request reads ~30 day, ~48 hour and ~60 minute rollups for the current values and
//! 721 hour rollups for the series, decodes and merges them and serializes 721 points;
//! with the model's registered reference window (its first day, whose snapshot
//! `evaluate` keeps with the settings) it also fits the calibration, estimates the
//! window's performance and measures drift.
//! Single-threaded runtime, so wall time is one core's CPU time while the cores are
//! otherwise idle; on shared cores the thread's own CPU time (printed after criterion's
//! figures, from `/proc/thread-self/stat`) is the figure to compare. Goal: ≤ 5 ms.
//!
//! The same model's traffic is stored a second time as its version `v1`'s slice, and
//! `compare` (`baseline=model&candidate=version:v1&window=30d`) reads both sides'
//! 30-day windows (~138 rollups each), computes every metric of both and the tests.
//! Goal: ≤ 10 ms.
//!
//! `MALLOC_TRIM_THRESHOLD_=67108864 cargo bench -p api --bench summary` — the allocator
//! setting the deployed functions run with (template.yaml): with glibc's default the
//! ~30 MB of states a request frees are handed back to the kernel and faulted in again
//! on the next request, about three times the time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use api::Api;
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::Body;
use modelwatch::adapters::memory::{
    MemoryAlertStore, MemoryModelRegistry, MemoryModelSettings, MemoryRollupStore,
    MemoryTopicSubscriptions,
};
use modelwatch::domain::QuotaLimits;
use modelwatch::domain::alerting::baseline::{
    Reference, ReferenceSnapshot, ReferenceSource, ReferenceWindow, RegisteredBaseline,
};
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::slice::Slice;
use modelwatch::domain::{
    CounterDelta, Granularity, Outcome, PredictionRecord, ResourceSample, Status, Task, WindowState,
};
use modelwatch::ports::{
    ModelRegistry, ModelSettingsStore, ModelSighting, Rollup, RollupStore, SettingWrite,
};
use modelwatch::summary::{SummaryService, WindowReader};

/// Deterministic values in [0, 1): splitmix64 of a counter.
struct Values(u64);

impl Values {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// The state of `count` predictions and `samples` resource samples spread over
/// `[start, start + span)`.
fn state(
    start: DateTime<Utc>,
    span: TimeDelta,
    count: i32,
    samples: i32,
    random: &mut Values,
) -> WindowState {
    let mut state = WindowState::new();
    for i in 0..count {
        let failed = random.next() < 0.01;
        let actual = random.next() < 0.3;
        let score = (random.next() * 0.7 + if actual { 0.3 } else { 0.0 }).min(1.0);
        let record = PredictionRecord {
            timestamp: start + span * i / count,
            latency_ms: 5.0 + 40.0 * random.next() * random.next(),
            status: if failed { Status::Error } else { Status::Ok },
            error_type: failed.then(|| "timeout".to_owned()),
            outcome: Outcome::Binary {
                predicted: Some(score >= 0.5),
                actual: (random.next() < 0.8).then_some(actual),
                score: Some(score),
            },
        };
        state.fold_prediction(&record).expect("valid record");
    }
    for i in 0..samples {
        let sample = ResourceSample {
            timestamp: start + span * i / samples,
            cpu_utilization: Some(random.next()),
            memory_utilization: Some(random.next()),
            gpu_utilization: None,
            queue_depth: Some((random.next() * 20.0).floor()),
            cache_hits: Some(100),
            cache_misses: Some(3),
        };
        state.fold_resource(&sample).expect("valid sample");
    }
    state
}

type MemoryApi = Api<
    MemoryModelRegistry,
    MemoryRollupStore,
    MemoryModelSettings,
    MemoryAlertStore,
    MemoryTopicSubscriptions,
>;

/// The API with 31 days of the model's rollups before `now`.
fn api(tenant: &TenantId, model_id: &ModelId, now: DateTime<Utc>) -> MemoryApi {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rollups = MemoryRollupStore::default();
    let registry = MemoryModelRegistry::default();
    let first = Granularity::Day.floor(now - TimeDelta::days(31));
    let current_hour = Granularity::Hour.floor(now);
    let mut random = Values(0);
    let settings = MemoryModelSettings::default();
    let version = model_id.series(&Slice::version("v1"));
    // Each rollup as the model's and as its version `v1`'s.
    let rollup = |granularity, start, state: &WindowState| {
        [model_id, &version].map(|series| Rollup {
            tenant: tenant.clone(),
            model_id: series.clone(),
            granularity,
            start,
            rev: 1,
            state: state.clone(),
        })
    };
    runtime.block_on(async {
        registry
            .record_sighting(
                &ModelSighting {
                    tenant: tenant.clone(),
                    model_id: model_id.clone(),
                    task: Task::BinaryClassification,
                    first,
                    last: now,
                    version: None,
                },
                u64::MAX,
            )
            .await
            .expect("registered");
        let reference = RegisteredBaseline {
            test_set: None,
            throughput_forecast_rps: None,
            reference: Some(ReferenceWindow {
                from: first,
                to: first + TimeDelta::days(1),
            }),
            updated_at: now,
        };
        settings
            .put_setting(
                ModelRef::new(tenant, model_id),
                SettingWrite::RegisteredBaseline(&reference),
            )
            .await
            .expect("reference registered");
        let mut day = WindowState::new();
        let mut hour = first;
        while hour <= current_hour {
            let hour_state = if hour < current_hour {
                state(hour, TimeDelta::hours(1), 2_000, 60, &mut random)
            } else {
                // The current hour: minute rollups up to now, merged into the hour.
                let mut merged = WindowState::new();
                let mut minute = hour;
                while minute < Granularity::Minute.floor(now) {
                    let m = state(minute, TimeDelta::minutes(1), 33, 1, &mut random);
                    merged.merge(&m).expect("merge");
                    for stored in rollup(Granularity::Minute, minute, &m) {
                        rollups
                            .put_minute_rollup(&stored, None, &CounterDelta::default())
                            .await
                            .expect("minute rollup");
                    }
                    minute += TimeDelta::minutes(1);
                }
                merged
            };
            for stored in rollup(Granularity::Hour, hour, &hour_state) {
                rollups.put_rollup(&stored).await.expect("hour rollup");
            }
            day.merge(&hour_state).expect("merge");
            let next = hour + TimeDelta::hours(1);
            if Granularity::Day.floor(next) != Granularity::Day.floor(hour) || next > current_hour {
                let start = Granularity::Day.floor(hour);
                if start == first {
                    // The reference's snapshot, as `evaluate` keeps it.
                    let reference = Reference {
                        from: first,
                        to: first + TimeDelta::days(1),
                        source: ReferenceSource::Registered,
                    };
                    let snapshot = ReferenceSnapshot::new(&reference, &day, now);
                    settings
                        .put_setting(
                            ModelRef::new(tenant, model_id),
                            SettingWrite::Reference(&snapshot),
                        )
                        .await
                        .expect("snapshot stored");
                }
                for stored in rollup(Granularity::Day, start, &day) {
                    rollups.put_rollup(&stored).await.expect("day rollup");
                }
                day = WindowState::new();
            }
            hour = next;
        }
    });
    Api {
        registry,
        summary: SummaryService {
            window: WindowReader {
                rollups,
                minute_retention: TimeDelta::days(8),
            },
            settings,
        },
        alerts: MemoryAlertStore::default(),
        perf: PerfSettings::default(),
        alert_settings: AlertSettings::default(),
        quotas: QuotaLimits::default(),
        topic: MemoryTopicSubscriptions::default(),
        account: "123456789012".into(),
        tenant_claim: "tenant_id".into(),
    }
}

/// The request of `resource` (`""`: the summary) of `tenant`'s `model_id` with
/// `query`, as API Gateway sends it.
fn event(tenant: &TenantId, model_id: &ModelId, resource: &str, query: &[(&str, &str)]) -> String {
    let (path, route) = match resource {
        "" => (
            format!("/api/v1/monitoring/performance/{model_id}"),
            "GET /api/v1/monitoring/performance/{model_id}".to_owned(),
        ),
        _ => (
            format!("/api/v1/monitoring/performance/{model_id}/{resource}"),
            format!("GET /api/v1/monitoring/performance/{{model_id}}/{resource}"),
        ),
    };
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let params: serde_json::Map<String, serde_json::Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::json!({
        "version": "2.0", "routeKey": route,
        "rawPath": path, "rawQueryString": raw_query.join("&"),
        "queryStringParameters": params,
        "pathParameters": {"model_id": model_id.as_str()},
        "headers": {"accept": "application/json"}, "isBase64Encoded": false,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
            "domainPrefix": "example", "requestId": "bench", "routeKey": route,
            "stage": "$default", "time": "28/Nov/2026:10:15:00 +0000", "timeEpoch": 1_795_860_900_000_i64,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"tenant_id": tenant.as_str()}, "scopes": null}}
        }
    })
    .to_string()
}

/// One request through the handler: the response body's length.
fn answer(runtime: &tokio::runtime::Runtime, api: &MemoryApi, event: &str) -> usize {
    let request = lambda_http::request::from_str(event).expect("API Gateway event");
    let response = runtime
        .block_on(api.handle(request))
        .expect("handler answers");
    assert_eq!(response.status(), 200);
    match response.body() {
        Body::Text(text) => text.len(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// The CPU time this thread has used (user + system; Linux, 10 ms ticks), if known.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command's closing parenthesis: state is the first, then
    // utime and stime are the 12th and 13th (fields 14 and 15 of proc(5)).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    Some(Duration::from_millis((user + system) * 10))
}

fn bench_summary(c: &mut Criterion) {
    let tenant = TenantId::parse("bench").expect("tenant");
    let model_id = ModelId::parse("model-bench").expect("model");
    let api = api(&tenant, &model_id, Utc::now());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let event = event(
        &tenant,
        &model_id,
        "",
        &[("window", "30d"), ("granularity", "hour")],
    );
    let compare = event_compare(&tenant, &model_id);

    let request = lambda_http::request::from_str(&event).expect("API Gateway event");
    let response = runtime.block_on(api.handle(request)).expect("answer");
    let Body::Text(text) = response.body() else {
        panic!("text body");
    };
    let summary: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let points = summary["series"].as_array().map_or(0, Vec::len);
    assert!((720..=722).contains(&points), "{points} series points");
    assert!(
        summary["sample_count"].as_u64() > Some(1_400_000),
        "{}",
        summary["sample_count"]
    );
    assert!(
        summary["quality_metrics"]["accuracy"]["estimated"].is_f64()
            && summary["drift"]["psi"].is_f64(),
        "estimates and drift: {} {}",
        summary["estimation"],
        summary["drift"]
    );
    println!(
        "response: {} bytes, {points} series points, {} predictions, estimated accuracy {}, psi {}",
        text.len(),
        summary["sample_count"],
        summary["quality_metrics"]["accuracy"]["estimated"],
        summary["drift"]["psi"]
    );

    let mut group = c.benchmark_group("api_summary");
    group.sample_size(30);
    group.bench_function("30d_hour_granularity", |b| {
        b.iter(|| answer(&runtime, &api, black_box(&event)))
    });
    group.bench_function("compare_30d", |b| {
        b.iter(|| answer(&runtime, &api, black_box(&compare)))
    });
    group.finish();

    let request = lambda_http::request::from_str(&compare).expect("API Gateway event");
    let response = runtime.block_on(api.handle(request)).expect("answer");
    let Body::Text(text) = response.body() else {
        panic!("text body");
    };
    let compared: serde_json::Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(compared["verdict"], "no_difference", "{compared}");
    assert_eq!(compared["baseline"], {
        let mut side = compared["candidate"].clone();
        side["slice"] = "model".into();
        side
    });
    for (what, event) in [("summary", &event), ("compare", &compare)] {
        cpu_per_request(&runtime, &api, what, event);
    }
}

/// The compare request: the model against its version `v1` over 30 days.
fn event_compare(tenant: &TenantId, model_id: &ModelId) -> String {
    let query = [
        ("baseline", "model"),
        ("candidate", "version:v1"),
        ("window", "30d"),
    ];
    event(tenant, model_id, "compare", &query)
}

/// Prints the thread's CPU time per `event` request over many: unaffected by other
/// processes on the shared cores (its 10 ms ticks average out over the run).
fn cpu_per_request(runtime: &tokio::runtime::Runtime, api: &MemoryApi, what: &str, event: &str) {
    const REQUESTS: u32 = 400;
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    for _ in 0..REQUESTS {
        black_box(answer(runtime, api, event));
    }
    let wall = wall.elapsed() / REQUESTS;
    match thread_cpu_time().zip(cpu) {
        Some((end, start)) => println!(
            "{what}, {REQUESTS} requests: {:.2} ms CPU, {:.2} ms wall per request",
            ((end - start) / REQUESTS).as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3
        ),
        None => println!(
            "{what}, {REQUESTS} requests: {:.2} ms wall per request",
            wall.as_secs_f64() * 1e3
        ),
    }
}

criterion_group!(benches, bench_summary);
criterion_main!(benches);

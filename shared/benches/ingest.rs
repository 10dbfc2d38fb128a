//! Ingest throughput and memory: parse + validate + fold of a 10,000-prediction body
//! (goal ≥ 2 M predictions/s on one core), also with a version and two segment keys
//! on every prediction (both segments' series folded too; the version's is the model's
//! states, as the service writes it; the registry's answers remembered, as in a warm
//! container), the content digest of that body (the batch id's claim), and the peak
//! heap while handling the largest allowed body and bodies built to make a parser
//! allocate (goal ≤ 64 MB each, the body's own bytes included), measured with a
//! counting allocator; and, with every store call charged a 5 ms DynamoDB round trip,
//! what a batch waits for and what the tenant's quota adds to it (goal: at most one
//! round trip a batch).
//!
//! `cargo bench -p modelwatch --bench ingest`

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use criterion::{Criterion, Throughput, criterion_group};
use modelwatch::adapters::faults::{FaultPlan, Faulty};
use modelwatch::adapters::memory::{MemoryLabelStore, MemoryModelRegistry, MemoryPartialStore};
use modelwatch::domain::ids::ModelRef;
use modelwatch::domain::labels::LabelLookback;
use modelwatch::ingest::{
    BatchLimits, BatchRejection, IngestQuotas, IngestService, SegmentAdmission, content_digest,
    minute_partials, parse_batch,
};
use modelwatch::testing::tenant;

mod support;

use support::{LIVE, PEAK};

/// A binary-classifier batch of `n` predictions spread over about two minutes; one in
/// fifty is a timeout.
fn body(n: usize, now: DateTime<Utc>) -> Vec<u8> {
    body_of(n, now, false)
}

/// [`body`], each prediction with a segment of two keys when `segmented`: `region` (5
/// values) and `channel` (3 values).
fn body_of(n: usize, now: DateTime<Utc>, segmented: bool) -> Vec<u8> {
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut out = String::with_capacity(n * 190);
    out.push_str(r#"{"model_id":"model-xyz789","batch_id":"bench-1","model_version":"v3","task":"binary_classification","predictions":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let time = stamp(now - TimeDelta::milliseconds((i * 12) as i64));
        let latency = 3.0 + (i % 400) as f64 * 0.37;
        let segment = if segmented {
            format!(
                r#","segment":{{"region":"region-{}","channel":"channel-{}"}}"#,
                i % 5,
                i % 3
            )
        } else {
            String::new()
        };
        if i % 50 == 49 {
            out.push_str(&format!(
                r#"{{"prediction_id":"p-{i}","timestamp":"{time}","latency_ms":{latency:.3},"status":"error","error_type":"timeout"{segment}}}"#
            ));
        } else {
            out.push_str(&format!(
                r#"{{"prediction_id":"p-{i}","timestamp":"{time}","latency_ms":{latency:.3},"status":"ok","predicted":{},"score":{:.4},"actual":{}{segment}}}"#,
                i % 2,
                (i % 997) as f64 / 997.0,
                (i / 3) % 2
            ));
        }
    }
    out.push_str(&format!(
        r#"],"resources":[{{"timestamp":"{}","cpu_utilization":0.45,"memory_utilization":0.62,"queue_depth":3,"cache_hits":120,"cache_misses":4}}]}}"#,
        stamp(now)
    ));
    out.into_bytes()
}

fn parse_validate_fold(c: &mut Criterion) {
    let now = Utc::now();
    let limits = BatchLimits::default();
    let body = body(10_000, now);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("parse_validate_fold_10k", |b| {
        b.iter(|| {
            let batch = parse_batch(&body, now, &limits).expect("valid batch");
            minute_partials(&batch).expect("folds")
        })
    });
    // The same with a version and two segment keys: the version's series is the model's
    // states (written under both, as the service does: nothing to fold or copy), each
    // segment's a fold of its predictions; the registry's answers are remembered after
    // the first batch, as in a warm container.
    let segmented = body_of(10_000, now, true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let registry = MemoryModelRegistry::default();
    let admission = SegmentAdmission::default();
    let (tenant, model) = (tenant("t1"), modelwatch::testing::model("model-xyz789"));
    group.bench_function("parse_validate_fold_10k_versioned_2_segments", |b| {
        b.iter(|| {
            let batch = parse_batch(&segmented, now, &limits).expect("valid batch");
            let states = minute_partials(&batch).expect("folds");
            let slices = runtime
                .block_on(admission.slices_of(
                    &registry,
                    ModelRef::new(&tenant, &model),
                    &batch,
                    now,
                ))
                .expect("recorded");
            let segments = slices.partials(&batch).expect("folds");
            (states, segments)
        })
    });
    // What claiming the batch id adds per request: the batch's 128-bit content hash.
    let batch = parse_batch(&body, now, &limits).expect("valid batch");
    group.bench_function("content_digest_10k", |b| b.iter(|| content_digest(&batch)));
    group.finish();
}

/// Peak heap while handling the largest body the limits allow: 10,000 predictions,
/// padded to the body limit (the body's own bytes are counted too, as in Lambda).
fn peak_memory() {
    let now = Utc::now();
    let limits = BatchLimits::default();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut body = body(10_000, now);
    body.resize(limits.max_body_bytes, b' ');
    let batch = parse_batch(&body, now, &limits).expect("valid batch");
    let partials = minute_partials(&batch).expect("folds");
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let stored: usize = partials.values().map(|s| s.to_bytes().len()).sum();
    println!(
        "ingest peak heap: {:.1} MB for a {} byte body of {} predictions (goal ≤ 64 MB); {} partial(s), {} bytes serialized",
        peak as f64 / 1e6,
        body.len(),
        batch.predictions.len(),
        partials.len(),
        stored
    );
}

/// Bodies built to make a parser allocate: each at most the body limit.
fn adversarial_bodies(now: DateTime<Utc>, limit: usize) -> Vec<(&'static str, Vec<u8>)> {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let head =
        r#"{"model_id":"m","batch_id":"b","task":"multiclass_classification","predictions":["#;
    // `{head}{prefix}item,item,…{suffix}` with as many items as fit in `limit`.
    let filled = |prefix: &str, item: &str, suffix: &str| {
        let mut out = String::with_capacity(limit);
        out.push_str(prefix);
        let room = limit - prefix.len() - suffix.len();
        let n = (room + 1) / (item.len() + 1);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            out.push_str(item);
        }
        out.push_str(suffix);
        out.into_bytes()
    };
    let record = |id: &str, predicted: &str, actual: &str| {
        format!(
            r#"{{"prediction_id":"{id}","timestamp":"{stamp}","latency_ms":123.456,"status":"ok","predicted":"{predicted}","actual":"{actual}"}}"#
        )
    };
    let long = |c: char| c.to_string().repeat(128);
    let escaped = "\\u0041".repeat(128);
    let nested = format!("{}{}", "[".repeat(120), "]".repeat(120));
    let unknown_keys = |n: usize| {
        (0..n)
            .map(|i| format!(r#""k{i:08}":0"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let max_valid: Vec<String> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                record(&format!("{i:0>128}"), &long('p'), &long('a'))
            } else {
                format!(
                    r#"{{"prediction_id":"{i:0>128}","timestamp":"{stamp}","latency_ms":9.5,"status":"error","error_type":"{}"}}"#,
                    long('e')
                )
            }
        })
        .collect();
    let escaped_records = filled(
        head,
        &record(&"\\u0031".repeat(128), &escaped, &escaped),
        "]}",
    );
    vec![
        (
            "2,097,085 empty objects",
            filled(r#"{"predictions":["#, "{}", "]}"),
        ),
        (
            "nested arrays (depth 123) in an unknown field",
            filled(&format!(r#"{head}{{"junk":["#), &nested, "]}]}"),
        ),
        (
            "nested arrays (depth 121) as the body",
            filled("[", &nested, "]"),
        ),
        (
            "one unknown field of [],[],…",
            filled(&format!(r#"{head}{{"junk":["#), "[]", "]}]}"),
        ),
        (
            "one prediction with 393,000 unknown keys",
            format!(r#"{head}{{{}}}]}}"#, unknown_keys(393_000)).into_bytes(),
        ),
        (
            "unknown keys in each of 10,000 records",
            format!(
                r#"{head}{}]}}"#,
                vec![format!("{{{}}}", unknown_keys(33)); 10_000].join(",")
            )
            .into_bytes(),
        ),
        (
            "10,000 max-size valid predictions",
            format!(r#"{head}{}]}}"#, max_valid.join(",")).into_bytes(),
        ),
        ("valid predictions, every string escaped", escaped_records),
        (
            "one 6 MB string of escapes",
            filled(&format!(r#"{head}{{"prediction_id":""#), "\\n", r#""}]}"#),
        ),
    ]
}

/// Peak heap of parsing `body` (the body's own bytes included) and what was answered.
fn parse_peak(body: &[u8], now: DateTime<Utc>, limits: &BatchLimits) -> (usize, String) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let answer = match parse_batch(body, now, limits) {
        Ok(batch) => format!("accepted, {} predictions", batch.predictions.len()),
        Err(BatchRejection::TooLarge(problem)) => {
            format!("413 {} {}", problem.field, problem.reason)
        }
        Err(BatchRejection::Invalid {
            problems,
            truncated,
        }) => {
            let first = problems.first().map_or(String::new(), |p| {
                format!(
                    "{} {}",
                    p.field,
                    p.reason.chars().take(60).collect::<String>()
                )
            });
            let more = if truncated { " and more" } else { "" };
            format!("400 {} problem(s){more}, first: {first}", problems.len())
        }
    };
    (PEAK.load(Ordering::Relaxed) - before + body.len(), answer)
}

/// Peak heap of parsing each adversarial body.
fn adversarial_peaks() {
    let now = Utc::now();
    let limits = BatchLimits::default();
    for (name, body) in adversarial_bodies(now, limits.max_body_bytes) {
        assert!(
            body.len() <= limits.max_body_bytes,
            "{name}: {}",
            body.len()
        );
        let (peak, answer) = parse_peak(&body, now, &limits);
        println!(
            "parse peak heap: {:>7.1} MB  {name} ({} bytes): {answer}",
            peak as f64 / 1e6,
            body.len()
        );
    }
}

/// 20 batches of 1,000 predictions of one tenant through the service, every store
/// call charged a 5 ms round trip: the round trips a batch waits for, of which the
/// quota's — its count (one write a batch) and the operator's quota (one read a
/// minute per tenant); with `segmented`, each prediction with two segment keys (their
/// 8 pairs recorded by the first batch, remembered by the others).
fn with_store_latency(segmented: bool) {
    const BATCHES: usize = 20;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let plan = FaultPlan::new(1).with_dynamodb_latency().shared();
    let service = IngestService {
        versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: modelwatch::ingest::SegmentAdmission::default(),
        registry: Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan)),
        partials: Faulty::new(MemoryPartialStore::default(), Arc::clone(&plan)),
        archive: None::<modelwatch::testing::NoArchive>,
        limits: BatchLimits::default(),
        labels: Faulty::new(MemoryLabelStore::default(), Arc::clone(&plan)),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    };
    let bodies: Vec<Vec<u8>> = (0..BATCHES)
        .map(|k| {
            String::from_utf8(body_of(1_000, now, segmented))
                .expect("UTF-8")
                .replace("bench-1", &format!("bench-{k}"))
                .into_bytes()
        })
        .collect();
    let started = Instant::now();
    for body in &bodies {
        runtime
            .block_on(service.ingest(&tenant("t1"), body, now))
            .expect("accepted");
    }
    let per_batch = started.elapsed().as_secs_f64() * 1e3 / BATCHES as f64;
    let counts = plan.counts();
    let of = |name: &str| {
        counts
            .by_op
            .iter()
            .filter(|(op, _)| op.name() == name)
            .map(|(_, n)| *n)
            .sum::<u64>() as f64
            / BATCHES as f64
    };
    let quota = of("count_predictions") + of("tenant_quotas");
    let trips = counts.round_trips as f64 / BATCHES as f64;
    let what = if segmented { " segmented" } else { "" };
    println!(
        "ingest with 5 ms store calls: {per_batch:.1} ms a 1,000-prediction{what} batch, {trips:.2} round trips \
         ({:.2} calls) of which the quota's {quota:.2} (count {:.2}, operator's quota read {:.2}): \
         {:.0} % of the batch's store calls",
        counts.calls as f64 / BATCHES as f64,
        of("count_predictions"),
        of("tenant_quotas"),
        100.0 * quota / (counts.calls as f64 / BATCHES as f64),
    );
}

criterion_group!(benches, parse_validate_fold);

fn main() {
    with_store_latency(false);
    with_store_latency(true);
    peak_memory();
    adversarial_peaks();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

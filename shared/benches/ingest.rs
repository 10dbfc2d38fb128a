//! Ingest throughput and memory: parse + validate + fold of a 10,000-prediction body
//! (goal ≥ 2 M predictions/s on one core), the content digest of that body (the
//! batch id's claim), and the peak heap while handling the
//! largest allowed body (goal ≤ 64 MB), measured with a counting allocator.
//!
//! `cargo bench -p modelwatch --bench ingest`

use std::sync::atomic::Ordering;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use criterion::{Criterion, Throughput, criterion_group};
use modelwatch::ingest::{BatchLimits, content_digest, minute_partials, parse_batch};

mod support;

use support::{LIVE, PEAK};

/// A binary-classifier batch of `n` predictions spread over about two minutes; one in
/// fifty is a timeout.
fn body(n: usize, now: DateTime<Utc>) -> Vec<u8> {
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut out = String::with_capacity(n * 190);
    out.push_str(r#"{"model_id":"model-xyz789","batch_id":"bench-1","model_version":"v3","task":"binary_classification","predictions":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let time = stamp(now - TimeDelta::milliseconds((i * 12) as i64));
        let latency = 3.0 + (i % 400) as f64 * 0.37;
        if i % 50 == 49 {
            out.push_str(&format!(
                r#"{{"prediction_id":"p-{i}","timestamp":"{time}","latency_ms":{latency:.3},"status":"error","error_type":"timeout"}}"#
            ));
        } else {
            out.push_str(&format!(
                r#"{{"prediction_id":"p-{i}","timestamp":"{time}","latency_ms":{latency:.3},"status":"ok","predicted":{},"score":{:.4},"actual":{}}}"#,
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
    // What claiming the batch id adds per request: the body's 128-bit hash.
    group.bench_function("content_digest_10k", |b| b.iter(|| content_digest(&body)));
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
    let stored: usize = partials.values().map(Vec::len).sum();
    println!(
        "ingest peak heap: {:.1} MB for a {} byte body of {} predictions (goal ≤ 64 MB); {} partial(s), {} bytes serialized",
        peak as f64 / 1e6,
        body.len(),
        batch.predictions.len(),
        partials.len(),
        stored
    );
}

criterion_group!(benches, parse_validate_fold);

fn main() {
    peak_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Late labels: labels joined per second by one invocation — parse + validate + the
//! label-store write of each label + fold into the predictions' minutes + the partial
//! writes — for a 10,000-label batch whose 10,000 predictions are waiting, over the
//! memory stores (the CPU cost), and with every store call charged a DynamoDB round
//! trip of 5 ms (what an invocation in AWS waits for; 32 label writes in flight).
//!
//! `cargo bench -p modelwatch --bench late_labels`

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use modelwatch::adapters::faults::{FaultPlan, Faulty};
use modelwatch::adapters::memory::{MemoryLabelStore, MemoryModelRegistry, MemoryPartialStore};
use modelwatch::domain::labels::LabelLookback;
use modelwatch::ingest::{BatchLimits, IngestQuotas, IngestService};
use modelwatch::ports::{LabelStore, ModelRegistry, PartialStore};
use modelwatch::testing::{NoArchive, tenant};

const LABELS: usize = 10_000;

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// 10,000 binary predictions with ids and no actuals over the last ~2 hours.
fn predictions(now: DateTime<Utc>) -> Vec<u8> {
    let items: Vec<String> = (0..LABELS)
        .map(|i| {
            let time = stamp(now - TimeDelta::milliseconds((i * 700) as i64));
            format!(
                r#"{{"prediction_id":"p-{i}","timestamp":"{time}","latency_ms":7.5,"status":"ok","predicted":{},"score":{:.4}}}"#,
                i % 2,
                (i % 997) as f64 / 997.0
            )
        })
        .collect();
    format!(
        r#"{{"model_id":"m-late","batch_id":"b-1","task":"binary_classification","predictions":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// Their 10,000 labels.
fn labels(now: DateTime<Utc>) -> Vec<u8> {
    let items: Vec<String> = (0..LABELS)
        .map(|i| {
            format!(
                r#"{{"prediction_id":"p-{i}","actual":{},"timestamp":"{}"}}"#,
                (i / 3) % 2,
                stamp(now)
            )
        })
        .collect();
    format!(
        r#"{{"model_id":"m-late","batch_id":"l-1","actuals":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn service<R, P, L>(registry: R, partials: P, labels: L) -> IngestService<R, P, NoArchive, L> {
    IngestService {
        versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: modelwatch::ingest::SegmentAdmission::default(),
        registry,
        partials,
        archive: None,
        limits: BatchLimits::default(),
        labels,
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    }
}

/// A service whose 10,000 predictions wait for their labels.
async fn waiting<R, P, L>(
    service: IngestService<R, P, NoArchive, L>,
    now: DateTime<Utc>,
) -> IngestService<R, P, NoArchive, L>
where
    R: ModelRegistry,
    P: PartialStore,
    L: LabelStore,
{
    let receipt = service
        .ingest(&tenant("t1"), &predictions(now), now)
        .await
        .expect("predictions");
    assert_eq!(receipt.labels.awaiting, LABELS);
    service
}

fn join_labels(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let body = labels(now);
    let mut group = c.benchmark_group("late_labels");
    group.throughput(Throughput::Elements(LABELS as u64));
    group.sample_size(10);
    group.bench_function("join_10k_labels_memory_stores", |b| {
        b.iter_batched(
            || {
                let fresh = service(
                    MemoryModelRegistry::default(),
                    MemoryPartialStore::default(),
                    MemoryLabelStore::default(),
                );
                runtime.block_on(waiting(fresh, now))
            },
            |service| {
                let receipt = runtime
                    .block_on(service.ingest_actuals(&tenant("t1"), &body, now))
                    .expect("labels");
                assert_eq!(receipt.joined.count, LABELS);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// One label batch with a 5 ms round trip charged per store call.
fn with_store_latency() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let plan = FaultPlan::new(1).with_dynamodb_latency().shared();
    let fresh = service(
        Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan)),
        Faulty::new(MemoryPartialStore::default(), Arc::clone(&plan)),
        Faulty::new(MemoryLabelStore::default(), Arc::clone(&plan)),
    );
    let started = Instant::now();
    let service = runtime.block_on(waiting(fresh, now));
    let predictions = started.elapsed();
    let body = labels(now);
    let started = Instant::now();
    let receipt = runtime
        .block_on(service.ingest_actuals(&tenant("t1"), &body, now))
        .expect("labels");
    let elapsed = started.elapsed();
    assert_eq!(receipt.joined.count, LABELS);
    println!(
        "late labels with 5 ms store calls: {LABELS} labels joined in {:.2} s ({:.0} labels/s per invocation); \
         the 10,000 predictions they wait for stored in {:.2} s ({} minutes)",
        elapsed.as_secs_f64(),
        LABELS as f64 / elapsed.as_secs_f64(),
        predictions.as_secs_f64(),
        receipt.minutes
    );
}

criterion_group!(benches, join_labels);

fn main() {
    with_store_latency();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

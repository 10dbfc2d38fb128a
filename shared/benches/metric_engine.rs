//! Metric engine benchmarks (`cargo bench -p modelwatch --bench metric_engine`):
//!
//! - `fold/*`: typed records folded into a state, per task (goal ≥ 10 M records/s/core);
//! - `summary_30d_hourly/*`: 720 hourly states of a binary classifier merged and every
//!   metric computed (goal ≤ 2 ms), with and without decoding the states from bytes first;
//! - `bytes/*`: encoding and decoding a state holding 1 M binary-classifier records, whose
//!   serialized size is printed before the runs (goal ≤ 16 KB).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use modelwatch::domain::{
    MetricSet, Outcome, PredictionRecord, ResourceSample, Status, TimeSpan, WindowState,
};

const BASE_MS: i64 = 1_741_000_000_000;
const HOUR_MS: i64 = 3_600_000;

/// Deterministic xorshift generator, so every run folds the same records.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A latency with a heavy tail: mostly 5–30 ms, sometimes seconds.
    fn latency_ms(&mut self) -> f64 {
        5.0 * (1.0 - self.unit()).powf(-0.7)
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn binary_records(
    count: usize,
    start_ms: i64,
    span_ms: i64,
    random: &mut XorShift,
) -> Vec<PredictionRecord> {
    (0..count)
        .map(|i| {
            let failed = random.unit() < 0.01;
            let actual = random.unit() < 0.3;
            let score = (random.unit() * 0.7 + if actual { 0.3 } else { 0.0 }).min(1.0);
            PredictionRecord {
                timestamp: at(start_ms + (i as i64 * span_ms) / count as i64),
                latency_ms: random.latency_ms(),
                status: if failed { Status::Error } else { Status::Ok },
                error_type: failed.then(|| "timeout".to_owned()),
                outcome: Outcome::Binary {
                    predicted: Some(score >= 0.5),
                    actual: (random.unit() < 0.8).then_some(actual),
                    score: Some(score),
                },
            }
        })
        .collect()
}

fn multiclass_records(count: usize, random: &mut XorShift) -> Vec<PredictionRecord> {
    let labels: Vec<String> = (0..20).map(|i| format!("class-{i}")).collect();
    (0..count)
        .map(|i| {
            let actual = (random.unit() * 20.0) as usize % 20;
            let predicted = if random.unit() < 0.8 {
                actual
            } else {
                (random.unit() * 20.0) as usize % 20
            };
            PredictionRecord {
                timestamp: at(BASE_MS + i as i64),
                latency_ms: random.latency_ms(),
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Multiclass {
                    predicted: Some(labels[predicted].clone()),
                    actual: Some(labels[actual].clone()),
                    score: Some(0.3 + 0.7 * random.unit()),
                },
            }
        })
        .collect()
}

fn regression_records(count: usize, random: &mut XorShift) -> Vec<PredictionRecord> {
    (0..count)
        .map(|i| {
            let actual = random.unit() * 100.0;
            PredictionRecord {
                timestamp: at(BASE_MS + i as i64),
                latency_ms: random.latency_ms(),
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: Some(actual + random.unit() - 0.5),
                    actual: Some(actual),
                },
            }
        })
        .collect()
}

fn fold_all(records: &[PredictionRecord]) -> WindowState {
    let mut state = WindowState::new();
    for record in records {
        // Generated records are valid; a failure would show as a wrong count below.
        let _ = state.fold_prediction(record);
    }
    state
}

fn bench_fold(c: &mut Criterion) {
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let count = 100_000;
    let cases = [
        (
            "binary",
            binary_records(count, BASE_MS, HOUR_MS, &mut random),
        ),
        ("multiclass", multiclass_records(count, &mut random)),
        ("regression", regression_records(count, &mut random)),
    ];
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(count as u64));
    for (name, records) in &cases {
        assert_eq!(fold_all(records).predictions(), count as u64);
        group.bench_function(*name, |b| b.iter(|| fold_all(black_box(records))));
    }
    group.finish();
}

/// 720 hourly states of a binary classifier (2,000 predictions and 60 resource samples
/// each), as the aggregate function would read them for a 30-day summary.
fn hourly_states() -> Vec<WindowState> {
    let mut random = XorShift(0x2545_f491_4f6c_dd1d);
    (0..720)
        .map(|hour| {
            let start_ms = BASE_MS + hour * HOUR_MS;
            let mut state = fold_all(&binary_records(2_000, start_ms, HOUR_MS, &mut random));
            for minute in 0..60 {
                let sample = ResourceSample {
                    timestamp: at(start_ms + minute * 60_000),
                    cpu_utilization: Some(random.unit()),
                    memory_utilization: Some(random.unit()),
                    gpu_utilization: None,
                    queue_depth: Some((random.unit() * 20.0).floor()),
                    cache_hits: Some(100),
                    cache_misses: Some(3),
                };
                let _ = state.fold_resource(&sample);
            }
            state
        })
        .collect()
}

fn summarize(states: &[WindowState], span: TimeSpan) -> MetricSet {
    let mut total = WindowState::new();
    for state in states {
        let _ = total.merge(state);
    }
    MetricSet::compute(&total, span, None)
}

fn bench_summary(c: &mut Criterion) {
    let states = hourly_states();
    let encoded: Vec<Vec<u8>> = states.iter().map(WindowState::to_bytes).collect();
    let span = TimeSpan {
        start: at(BASE_MS),
        end: at(BASE_MS + 720 * HOUR_MS),
    };
    let summary = summarize(&states, span);
    assert_eq!(summary.predictions, 720 * 2_000);
    let mut group = c.benchmark_group("summary_30d_hourly");
    group.bench_function("merge_720_and_compute", |b| {
        b.iter(|| summarize(black_box(&states), span))
    });
    group.bench_function("decode_merge_720_and_compute", |b| {
        b.iter(|| {
            let decoded: Vec<WindowState> = black_box(&encoded)
                .iter()
                .filter_map(|bytes| WindowState::from_bytes(bytes).ok())
                .collect();
            summarize(&decoded, span)
        })
    });
    group.finish();
}

fn bench_bytes(c: &mut Criterion) {
    let mut random = XorShift(0x1234_5678_9abc_def1);
    let mut state = WindowState::new();
    for _ in 0..10 {
        for record in binary_records(100_000, BASE_MS, 24 * HOUR_MS, &mut random) {
            let _ = state.fold_prediction(&record);
        }
    }
    let bytes = state.to_bytes();
    println!(
        "serialized size of a binary-classifier state holding {} records: {} bytes ({:.1} KiB)",
        state.predictions(),
        bytes.len(),
        bytes.len() as f64 / 1024.0
    );
    let mut group = c.benchmark_group("bytes");
    group.bench_function("encode_1m_binary", |b| {
        b.iter(|| black_box(&state).to_bytes())
    });
    group.bench_function("decode_1m_binary", |b| {
        b.iter(|| WindowState::from_bytes(black_box(&bytes)))
    });
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the machine has two shared cores.
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_fold, bench_summary, bench_bytes
}
criterion_main!(benches);

//! One aggregation run over 1,000 active models with one batch each in the last minute,
//! with in-memory stores behind the same traits and a no-op exporter: the time of the
//! run on a single-threaded runtime (so wall time is one core's CPU time) and the peak
//! heap. Goal: well inside the 60 s interval, ≤ 2 s CPU.
//!
//! `cargo bench -p modelwatch --bench aggregate`

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::adapters::memory::MemoryRollupStore;
use modelwatch::aggregate::run_aggregation;
use modelwatch::domain::ids::TenantId;
use modelwatch::domain::{CloudWatchMetrics, ModelExport};
use modelwatch::ports::{ExportFailure, MetricsExporter};
use modelwatch::testing::run_at;

mod support;

use support::{LIVE, PEAK};

/// Builds every series/datum like the real exporters would, then drops them.
struct CountingExporter(&'static str);

impl MetricsExporter for CountingExporter {
    fn name(&self) -> &'static str {
        self.0
    }

    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        vec![models.len()]
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        let series = modelwatch::domain::prometheus_series(models);
        let data = modelwatch::domain::cloudwatch_data(models, CloudWatchMetrics::All);
        std::hint::black_box((series.len(), data.len()));
        Ok(())
    }
}

/// A binary-classifier batch of 100 predictions within `minute`.
fn batch(model: usize, minute: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<String> = (0..100)
        .map(|i| {
            let t = (minute + TimeDelta::milliseconds(i * 500)).to_rfc3339();
            format!(
                r#"{{"timestamp":"{t}","latency_ms":{},"status":"ok","predicted":{},"actual":{},"score":{}}}"#,
                3 + i % 40,
                i % 2,
                (i / 2) % 2,
                (i % 10) as f64 / 10.0
            )
        })
        .collect();
    format!(
        r#"{{"model_id":"m-{model}","batch_id":"b-{model}","task":"binary_classification","predictions":[{}],"resources":[{{"timestamp":"{}","cpu_utilization":0.5,"queue_depth":2}}]}}"#,
        predictions.join(","),
        minute.to_rfc3339()
    )
    .into_bytes()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(1);
    let ingest = modelwatch::testing::memory_ingest();
    let tenant = TenantId::parse("bench").expect("tenant");
    runtime.block_on(async {
        for model in 0..1_000 {
            ingest
                .ingest(&tenant, &batch(model, minute), now)
                .await
                .expect("batch");
        }
    });
    let rollups = MemoryRollupStore::default();
    let (cloudwatch, prometheus) = (
        CountingExporter("cloudwatch"),
        CountingExporter("prometheus"),
    );
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let report = runtime
        .block_on(run_aggregation(
            &ingest.partials,
            &rollups,
            Some(&cloudwatch),
            Some(&prometheus),
            &[],
            &run_at(now),
            now,
        ))
        .expect("run");
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert_eq!(report.rollups.models, 1_000);
    println!(
        "aggregate run over {} models ({} minute, {} hour, {} day rollups, 2 exporters): {:.1} ms on one core, peak heap {:.1} MB (goal ≤ 2,000 ms)",
        report.rollups.models,
        report.rollups.rolled.minutes,
        report.rollups.rolled.hours,
        report.rollups.rolled.days,
        elapsed.as_secs_f64() * 1000.0,
        peak as f64 / 1e6
    );
}

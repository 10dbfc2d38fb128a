//! Scale-out: active models rolled up, exported and evaluated in one 60-second
//! interval against the number of shard workers.
//!
//! `MODELWATCH_SCALE_MODELS` models (default 100,000) of 100 tenants each get one batch
//! of 20 predictions in the last closed minute. Every store is an in-memory one behind
//! a 5 ms round trip per call (DynamoDB from Lambda), and so is every export request.
//! For each worker count of `MODELWATCH_SCALE_WORKERS` (default 1,4,16,32), on a fresh
//! copy of that traffic, the 32 shards are split between the workers, which run at once
//! — first the aggregation workers, then the evaluation workers — each against the
//! deadline a 60-second interval gives (57 s: the interval less the 3 s margin). The
//! figures: how many models each stage finished within its deadline, how long its
//! slowest worker took, and the process's peak heap (all workers together).
//!
//! Run: `cargo bench -p modelwatch --bench scale_out` (release build; about ten
//! minutes on two cores with the defaults).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures_util::future::join_all;
use modelwatch::adapters::faults::{FaultPlan, Faulty};
use modelwatch::adapters::memory::{
    MemoryAlertStore, MemoryModelRegistry, MemoryModelSettings, MemoryNotifier, MemoryPartialStore,
    MemoryRollupStore,
};
use modelwatch::adapters::memory::{MemoryLabelStore, MemoryMetricData};
use modelwatch::aggregate::run_aggregation;
use modelwatch::alerting::service::Evaluator;
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::ids::TenantId;
use modelwatch::domain::labels::LabelLookback;
use modelwatch::domain::shard::SHARDS;
use modelwatch::domain::{CloudWatchMetrics, ModelExport, Series};
use modelwatch::ingest::{BatchLimits, IngestQuotas, IngestService};
use modelwatch::ports::{ExportFailure, MetricsExporter, SeriesWriter};
use modelwatch::schedule::{Deadline, INVOCATION_MARGIN, ScheduledRun};
use modelwatch::summary::WindowReader;
use modelwatch::testing::NoArchive;

mod support;
use support::{LIVE, PEAK};

/// The schedule's interval.
const INTERVAL: Duration = Duration::from_secs(60);

/// Builds every series or datum the real exporters would, then drops them.
struct DroppingReceiver(&'static str);

impl MetricsExporter for DroppingReceiver {
    fn name(&self) -> &'static str {
        self.0
    }

    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        match self.0 {
            "cloudwatch" => modelwatch::domain::cloudwatch_requests(models, CloudWatchMetrics::All),
            _ => vec![models.len()],
        }
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        let series = modelwatch::domain::prometheus_series(models);
        let data = modelwatch::domain::cloudwatch_data(models, CloudWatchMetrics::All);
        std::hint::black_box((series.len(), data.len()));
        Ok(())
    }
}

impl SeriesWriter for DroppingReceiver {
    async fn write_series(&self, series: &[Series]) -> Result<(), ExportFailure> {
        std::hint::black_box(series.len());
        Ok(())
    }
}

/// A regression batch of 20 predictions in `minute`, every tenth an error.
fn batch(model: usize, minute: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<String> = (0..20)
        .map(|i| {
            let t = (minute + TimeDelta::seconds(i * 2)).to_rfc3339();
            if i % 10 == 9 {
                format!(r#"{{"timestamp":"{t}","latency_ms":40,"status":"error","error_type":"timeout"}}"#)
            } else {
                format!(
                    r#"{{"timestamp":"{t}","latency_ms":{},"status":"ok","predicted":{}.5,"actual":{}}}"#,
                    3 + i,
                    i,
                    i + 1
                )
            }
        })
        .collect();
    format!(
        r#"{{"model_id":"m-{model}","batch_id":"b-{model}","task":"regression","predictions":[{}]}}"#,
        predictions.join(",")
    )
    .into_bytes()
}

/// The stores every worker shares, filled with the interval's traffic.
struct World {
    registry: Arc<MemoryModelRegistry>,
    partials: Arc<MemoryPartialStore>,
    rollups: Arc<MemoryRollupStore>,
    settings: Arc<MemoryModelSettings>,
    alerts: Arc<MemoryAlertStore>,
}

async fn world(models: usize, minute: DateTime<Utc>, now: DateTime<Utc>) -> World {
    let world = World {
        registry: Arc::default(),
        partials: Arc::default(),
        rollups: Arc::default(),
        settings: Arc::default(),
        alerts: Arc::default(),
    };
    let free = FaultPlan::new(1).shared();
    let ingest = IngestService {
        versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: modelwatch::ingest::SegmentAdmission::default(),
        registry: Faulty::shared(Arc::clone(&world.registry), Arc::clone(&free)),
        partials: Faulty::shared(Arc::clone(&world.partials), free),
        archive: None::<NoArchive>,
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    };
    for model in 0..models {
        let tenant = TenantId::parse(&format!("tenant-{}", model % 100)).expect("tenant");
        ingest
            .ingest(&tenant, &batch(model, minute), now)
            .await
            .expect("batch accepted");
    }
    world
}

/// The shards of worker `index` of `workers`.
fn shards_of(index: u32, workers: u32) -> std::ops::Range<u32> {
    let per = SHARDS / workers;
    index * per..(index + 1) * per
}

/// CPU time this process has used (user and system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 a second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// What one stage did with `workers` workers.
struct Stage {
    /// Models it finished within the deadline.
    done: usize,
    /// Its slowest worker's time.
    slowest: Duration,
    /// The first worker's peak heap, measured while it runs alone.
    worker_heap: usize,
    /// CPU time all workers used.
    cpu: Duration,
}

/// Runs `worker(index)` for every worker: the first alone (its heap measured), then
/// the others at once, as concurrent invocations on their own shards would run.
async fn stage<F, Fut>(workers: u32, worker: F) -> Stage
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let timed = |index| {
        let run = worker(index);
        async move {
            let started = Instant::now();
            let done = run.await;
            (done, started.elapsed())
        }
    };
    let cpu = cpu_time();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let (done, slowest) = timed(0).await;
    let worker_heap = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let rest = join_all((1..workers).map(timed)).await;
    Stage {
        done: done + rest.iter().map(|r| r.0).sum::<usize>(),
        slowest: rest.iter().map(|r| r.1).fold(slowest, Duration::max),
        worker_heap,
        cpu: cpu_time().saturating_sub(cpu),
    }
}

fn main() {
    let models: usize = std::env::var("MODELWATCH_SCALE_MODELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let worker_counts: Vec<u32> = std::env::var("MODELWATCH_SCALE_WORKERS")
        .unwrap_or_else(|_| "1,4,16,32".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .filter(|w| *w > 0 && SHARDS.is_multiple_of(*w))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let budget = INTERVAL - INVOCATION_MARGIN;
    println!(
        "scale-out: {models} active models (100 tenants, one 20-prediction batch each in the last minute), 5 ms per store call and export request, interval {} s (deadline {} s)",
        INTERVAL.as_secs(),
        budget.as_secs()
    );
    println!(
        "throughput: models a second of the slower stage; a worker's heap is an upper bound (it includes the rollups it writes into the shared in-memory stores)"
    );
    println!(
        "| workers | rolled up and exported | slowest aggregate worker | evaluated | slowest evaluate worker | throughput (vs. the first) | one worker's peak heap, aggregate / evaluate | CPU per 1,000 models, aggregate / evaluate |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut first: Option<(u32, f64)> = None;
    for &workers in &worker_counts {
        let now = Utc::now();
        let minute =
            now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(1);
        let world = runtime.block_on(world(models, minute, now));
        let plan = FaultPlan::new(2).with_dynamodb_latency().shared();
        let aggregate = runtime.block_on(stage(workers, |index| {
            let (plan, world) = (Arc::clone(&plan), &world);
            async move {
                let pending = Faulty::shared(Arc::clone(&world.partials), Arc::clone(&plan));
                let rollups = Faulty::shared(Arc::clone(&world.rollups), Arc::clone(&plan));
                let cloudwatch = Faulty::new(DroppingReceiver("cloudwatch"), Arc::clone(&plan));
                let prometheus = Faulty::new(DroppingReceiver("prometheus"), plan);
                let run = ScheduledRun {
                    run_time: now,
                    deadline: Deadline::after(budget),
                    shards: shards_of(index, workers),
                };
                let report = run_aggregation(
                    &pending,
                    &rollups,
                    Some(&cloudwatch),
                    Some(&prometheus),
                    &[],
                    &run,
                    now,
                )
                .await
                .expect("aggregation run");
                // Models rolled up and delivered to both receivers.
                report.exports.iter().map(|e| e.models).min().unwrap_or(0)
            }
        }));
        let evaluate = runtime.block_on(stage(workers, |index| {
            let (plan, world) = (Arc::clone(&plan), &world);
            async move {
                let evaluator = Evaluator {
                    registry: Faulty::shared(Arc::clone(&world.registry), Arc::clone(&plan)),
                    window: WindowReader {
                        rollups: Faulty::shared(Arc::clone(&world.rollups), Arc::clone(&plan)),
                        minute_retention: TimeDelta::days(8),
                    },
                    settings: Faulty::shared(Arc::clone(&world.settings), Arc::clone(&plan)),
                    alerts: Faulty::shared(Arc::clone(&world.alerts), Arc::clone(&plan)),
                    notifier: Faulty::new(MemoryNotifier::default(), Arc::clone(&plan)),
                    prometheus: Some(Faulty::new(DroppingReceiver("prometheus"), plan)),
                    cloudwatch: None::<MemoryMetricData>,
                    perf: PerfSettings::default(),
                    alerting: AlertSettings::default(),
                };
                let run = ScheduledRun {
                    run_time: now + TimeDelta::seconds(5),
                    deadline: Deadline::after(budget),
                    shards: shards_of(index, workers),
                };
                evaluator.run(&run).await.expect("evaluation run").models
            }
        }));
        let per_thousand = |s: &Stage| s.cpu.as_secs_f64() * 1000.0 / s.done.max(1) as f64;
        let rate = |s: &Stage| s.done as f64 / s.slowest.as_secs_f64().max(1e-9);
        let throughput = rate(&aggregate).min(rate(&evaluate));
        let ratio = match first {
            None => {
                first = Some((workers, throughput));
                String::from("1.0×")
            }
            Some((_, base)) => format!("{:.1}×", throughput / base),
        };
        println!(
            "| {workers} | {} | {:.1} s | {} | {:.1} s | {:.0} models/s ({ratio}) | {:.0} MB / {:.0} MB | {:.2} s / {:.2} s |",
            aggregate.done,
            aggregate.slowest.as_secs_f64(),
            evaluate.done,
            evaluate.slowest.as_secs_f64(),
            throughput,
            aggregate.worker_heap as f64 / 1e6,
            evaluate.worker_heap as f64 / 1e6,
            per_thousand(&aggregate),
            per_thousand(&evaluate),
        );
    }
}

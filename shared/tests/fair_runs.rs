//! Bounded, fair scheduled runs over stores that charge a round trip per call: one
//! tenant's seven-day backfill beside another tenant's single fresh minute. The fresh
//! minute is rolled up, exported and evaluated in the first run; the backfill shrinks
//! run over run until it is done; no run overruns its deadline by more than the one
//! slice of work it had started; and in the end every prediction is counted once.

use modelwatch::domain::ids::ModelRef;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch::adapters::faults::{FaultPlan, Faulty};
use modelwatch::adapters::memory::MemoryLabelStore;
use modelwatch::adapters::memory::{
    MemoryAlertStore, MemoryMetricData, MemoryModelRegistry, MemoryModelSettings, MemoryNotifier,
    MemoryPartialStore, MemoryRollupStore, MemorySeriesWriter,
};
use modelwatch::aggregate::run_aggregation;
use modelwatch::alerting::service::Evaluator;
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::labels::LabelLookback;
use modelwatch::domain::shard::all_shards;
use modelwatch::domain::{Granularity, Series, TimeSpan, WindowState};
use modelwatch::ingest::{BatchLimits, IngestQuotas, IngestService};
use modelwatch::ports::{PendingWork, PrometheusSeries, RollupStore};
use modelwatch::schedule::{Deadline, ScheduledRun};
use modelwatch::summary::WindowReader;
use modelwatch::testing::{NoArchive, at, model, tenant};

/// Per round trip, as DynamoDB answers a Lambda function.
const ROUND_TRIP: Duration = Duration::from_millis(5);
/// Each run's time, as a Lambda invocation's deadline would give it (in production
/// its timeout less the margin, some 50 s: this test's week of backlog is shortened
/// in proportion).
const BUDGET: Duration = Duration::from_millis(2_000);
/// One backfill prediction every this many minutes of the week (a pending minute each).
const BACKFILL_EVERY: i64 = 10;
/// How far past its deadline a run may finish: the slice (an hour of one model's
/// minutes) and the export it had started.
const OVERRUN: Duration = Duration::from_millis(600);
/// Predictions per backfill batch.
const PER_BATCH: usize = 500;

/// A regression batch of one prediction at each of `times`.
fn batch(model_id: &str, batch_id: &str, times: &[DateTime<Utc>]) -> String {
    let predictions: Vec<String> = times
        .iter()
        .map(|t| {
            format!(
                r#"{{"timestamp":"{}","latency_ms":12,"status":"ok","predicted":2.0,"actual":1.5}}"#,
                t.to_rfc3339()
            )
        })
        .collect();
    format!(
        r#"{{"model_id":"{model_id}","batch_id":"{batch_id}","task":"regression","predictions":[{}]}}"#,
        predictions.join(",")
    )
}

/// Whether `series` is one of `model_id`'s.
fn of_model(series: &Series, model_id: &str) -> bool {
    series
        .labels
        .iter()
        .any(|(k, v)| k == "model_id" && v == model_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_minute_goes_first_beside_a_week_of_backfill_which_then_finishes() {
    let registry = Arc::new(MemoryModelRegistry::default());
    let partials = Arc::new(MemoryPartialStore::default());
    let rollups = Arc::new(MemoryRollupStore::default());
    let exported = Arc::new(MemorySeriesWriter::default());
    let gauges = Arc::new(MemorySeriesWriter::default());

    // Ingest without latency: the backfill of tenant t-big (a minute in every
    // BACKFILL_EVERY of the accepted week) and one fresh minute of tenant t-small.
    let now = at("2026-11-30T12:00:30Z");
    let ingest = IngestService {
        versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: modelwatch::ingest::SegmentAdmission::default(),
        registry: Faulty::shared(Arc::clone(&registry), FaultPlan::new(1).shared()),
        partials: Faulty::shared(Arc::clone(&partials), FaultPlan::new(1).shared()),
        archive: None::<NoArchive>,
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    };
    let first = Granularity::Minute.floor(now - TimeDelta::days(7)) + TimeDelta::minutes(2);
    let backfill: Vec<DateTime<Utc>> = (0..)
        .map(|k| first + TimeDelta::minutes(k * BACKFILL_EVERY) + TimeDelta::seconds(20))
        .take_while(|t| *t < now - TimeDelta::minutes(2))
        .collect();
    for (k, times) in backfill.chunks(PER_BATCH).enumerate() {
        let body = batch("backfill", &format!("week-{k}"), times);
        ingest
            .ingest(&tenant("t-big"), body.as_bytes(), now)
            .await
            .expect("backfill accepted");
    }
    let fresh_minute = at("2026-11-30T11:59:00Z");
    let body = batch("fresh", "now-1", &[fresh_minute + TimeDelta::seconds(10)]);
    ingest
        .ingest(&tenant("t-small"), body.as_bytes(), now)
        .await
        .expect("fresh batch accepted");
    let backlog = partials
        .pending_minutes(all_shards())
        .await
        .expect("pending")
        .len();
    assert_eq!(backlog, backfill.len() + 1);

    // The scheduled runs, over stores that charge a round trip per call.
    let plan = FaultPlan::new(2).with_latency(ROUND_TRIP).shared();
    let (pending, rolled) = (
        Faulty::shared(Arc::clone(&partials), Arc::clone(&plan)),
        Faulty::shared(Arc::clone(&rollups), Arc::clone(&plan)),
    );
    let prometheus = PrometheusSeries(Faulty::shared(Arc::clone(&exported), Arc::clone(&plan)));
    let cloudwatch = MemoryMetricData::default();
    let evaluator = Evaluator {
        registry: Faulty::shared(Arc::clone(&registry), Arc::clone(&plan)),
        window: WindowReader {
            rollups: Faulty::shared(Arc::clone(&rollups), Arc::clone(&plan)),
            minute_retention: TimeDelta::days(8),
        },
        settings: Faulty::new(MemoryModelSettings::default(), Arc::clone(&plan)),
        alerts: Faulty::new(MemoryAlertStore::default(), Arc::clone(&plan)),
        notifier: Faulty::new(MemoryNotifier::default(), Arc::clone(&plan)),
        prometheus: Some(Faulty::shared(Arc::clone(&gauges), Arc::clone(&plan))),
        cloudwatch: None::<MemoryMetricData>,
        perf: PerfSettings::default(),
        alerting: AlertSettings::default(),
    };

    let mut left = backlog;
    let mut runs = 0;
    loop {
        let run_time = now + TimeDelta::minutes(runs);
        let started = Instant::now();
        let run = ScheduledRun {
            run_time,
            deadline: Deadline::after(BUDGET),
            shards: all_shards(),
        };
        let report = run_aggregation(
            &pending,
            &rolled,
            Some(&cloudwatch),
            Some(&prometheus),
            &[],
            &run,
            run_time,
        )
        .await
        .expect("aggregation run");
        let took = started.elapsed();
        assert!(took <= BUDGET + OVERRUN, "run {runs} took {took:?}");
        assert!(report.rollups.failures.is_empty(), "{report:?}");
        let now_left = report.rollups.left.minutes;
        eprintln!(
            "run {runs}: {took:?}, rolled {} minutes, left {now_left}",
            report.rollups.rolled.minutes
        );

        if runs == 0 {
            // The first run: the fresh minute is rolled and exported, and evaluated by
            // the evaluation run of the same interval; most of the week is left.
            let rolled_fresh = rollups
                .rollups(
                    ModelRef::new(&tenant("t-small"), &model("fresh")),
                    Granularity::Minute,
                    TimeSpan::new(fresh_minute, now),
                )
                .await
                .expect("read");
            assert_eq!(rolled_fresh.len(), 1);
            assert!(
                exported.items().iter().any(|s| of_model(s, "fresh")),
                "the fresh minute was not exported in the first run"
            );
            assert!(report.deadline_reached, "{report:?}");
            assert!(now_left > backlog / 2, "left {now_left} of {backlog}");
            let started = Instant::now();
            let evaluation = ScheduledRun {
                run_time: run_time + TimeDelta::seconds(5),
                deadline: Deadline::after(BUDGET),
                shards: all_shards(),
            };
            let evaluated = evaluator.run(&evaluation).await.expect("evaluation run");
            assert!(started.elapsed() <= BUDGET + OVERRUN);
            assert_eq!((evaluated.models, evaluated.left), (2, 0), "{evaluated:?}");
            assert!(
                gauges.items().iter().any(|s| of_model(s, "fresh")),
                "the fresh model was not evaluated in the first interval"
            );
        } else {
            assert!(
                now_left < left,
                "run {runs}: the backlog did not shrink ({left} → {now_left})"
            );
        }
        left = now_left;
        runs += 1;
        if left == 0 {
            break;
        }
        assert!(runs < 60, "the backlog is not done after {runs} runs");
    }
    assert!(runs > 1, "one run did everything: the test proves nothing");
    assert!(
        partials
            .pending_minutes(all_shards())
            .await
            .expect("pending")
            .is_empty()
    );

    // Every prediction counted once, in the days and in the totals.
    let days = rollups
        .rollups(
            ModelRef::new(&tenant("t-big"), &model("backfill")),
            Granularity::Day,
            TimeSpan::new(first - TimeDelta::days(1), now),
        )
        .await
        .expect("days");
    let merged = WindowState::merged(days.iter().map(|d| d.state.clone())).expect("merge");
    assert_eq!(merged.predictions(), backfill.len() as u64);
    let totals = rollups
        .counter_totals(ModelRef::new(&tenant("t-big"), &model("backfill")))
        .await
        .expect("totals");
    assert_eq!((totals.ok, totals.errors), (backfill.len() as u64, 0));
}

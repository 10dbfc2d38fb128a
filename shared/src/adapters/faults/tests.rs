use crate::domain::shard::all_shards;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::adapters::memory::{
    MemoryLabelStore, MemoryMetricData, MemoryModelRegistry, MemoryNotifier, MemoryPartialStore,
    MemoryRollupStore, MemorySeriesWriter,
};
use crate::aggregate::roll_up;
use crate::domain::alerting::state::AlertRecord;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::LabelLookback;
use crate::domain::{Granularity, Series, Task, TimeSpan, WindowState};
use crate::ingest::{BatchLimits, IngestError, IngestQuotas, IngestService};
use crate::ports::{
    AlertNotifier, ModelRegistry, ModelSighting, PartialKey, PartialStore, PendingWork, PutOutcome,
    RollupStore,
};
use crate::ports::{PrometheusSeries, SeriesWriter};
use crate::testing::{self, NoArchive, at, regression_state, run_at};

fn tenant() -> TenantId {
    testing::tenant("t1")
}

fn model() -> ModelId {
    testing::model("m1")
}

/// The state every partial of these tests holds: one labeled prediction.
fn state() -> WindowState {
    regression_state(1, at("2026-11-28T10:00:00Z"))
}

/// The partial of batch `batch` in the minute 10:00.
fn key(batch: &str) -> PartialKey {
    PartialKey {
        tenant: tenant(),
        model_id: model(),
        minute: at("2026-11-28T10:00:00Z"),
        batch_id: batch.to_owned(),
    }
}

/// The injected fault an error carries, if it is one.
fn injected(err: &StoreError) -> Option<InjectedFault> {
    match err {
        StoreError::Unavailable { source, .. } => source.downcast_ref().copied(),
        _ => None,
    }
}

fn faulty_partials(plan: &Arc<FaultPlan>) -> Faulty<MemoryPartialStore> {
    Faulty::new(MemoryPartialStore::default(), Arc::clone(plan))
}

/// Whether `call` is still waiting after a while: a call that never completes.
async fn never_completes<T>(call: impl Future<Output = T>) -> bool {
    tokio::time::timeout(Duration::from_millis(20), call)
        .await
        .is_err()
}

#[tokio::test]
async fn fail_before_applies_nothing_and_fail_after_applies_the_write() {
    let plan = FaultPlan::new(1)
        .with_fault(Trigger::Operation(Op::PUT_PARTIAL, 1), Fault::FailBefore)
        .with_fault(Trigger::Operation(Op::PUT_PARTIAL, 2), Fault::FailAfter)
        .shared();
    let store = faulty_partials(&plan);

    let err = store
        .put_partial(&key("b1"), &state())
        .await
        .expect_err("throttled");
    assert_eq!(
        injected(&err),
        Some(InjectedFault {
            op: Op::PUT_PARTIAL,
            fault: Fault::FailBefore
        })
    );
    assert!(store.inner().partials().is_empty(), "nothing applied");

    let err = store
        .put_partial(&key("b1"), &state())
        .await
        .expect_err("timed out");
    assert_eq!(injected(&err).map(|i| i.fault), Some(Fault::FailAfter));
    assert_eq!(store.inner().partials().len(), 1, "applied all the same");

    let again = store
        .put_partial(&key("b1"), &state())
        .await
        .expect("passes");
    assert_eq!(again, PutOutcome::AlreadyPresent);

    let counts = plan.counts();
    assert_eq!(
        (counts.calls, counts.writes, counts.reads),
        (3, 3, 0),
        "{counts:?}"
    );
    assert_eq!(counts.of(Op::PUT_PARTIAL), 3);
    assert_eq!(counts.of(Op::MARK_PENDING), 0);
    assert_eq!(counts.injected(Fault::FailBefore), 1);
    assert_eq!(counts.injected(Fault::FailAfter), 1);
    assert_eq!(counts.round_trips, 3);
}

#[tokio::test]
async fn only_writes_fail_after_and_reads_fail_before() {
    let rates = FaultRates {
        fail_after: 1.0,
        ..FaultRates::default()
    };
    let plan = FaultPlan::new(2).with_rates(rates).expect("rates").shared();
    let store = faulty_partials(&plan);
    for batch in ["b1", "b2", "b3"] {
        let err = store
            .put_partial(&key(batch), &state())
            .await
            .expect_err("fails");
        assert_eq!(injected(&err).map(|i| i.fault), Some(Fault::FailAfter));
    }
    let states = store
        .partials_of(ModelRef::new(&tenant(), &model()), key("b1").minute)
        .await
        .expect("reads are not eligible for fail-after");
    assert_eq!(states.len(), 3, "every write was applied");

    // A scripted fail-after on a read acts as a fail-before: a read applies nothing.
    let plan = FaultPlan::new(2)
        .with_fault(Trigger::Read(1), Fault::FailAfter)
        .shared();
    let store = faulty_partials(&plan);
    let err = store
        .pending_minutes(all_shards())
        .await
        .expect_err("fails");
    assert_eq!(
        injected(&err),
        Some(InjectedFault {
            op: Op::PENDING_MINUTES,
            fault: Fault::FailBefore
        })
    );
    assert_eq!(plan.counts().injected(Fault::FailAfter), 0);
}

#[tokio::test]
async fn a_crash_never_returns_nor_does_any_later_call_of_any_store_under_the_plan() {
    let plan = FaultPlan::new(3)
        .with_fault(Trigger::Write(2), Fault::Crash)
        .shared();
    let partials = faulty_partials(&plan);
    let rollups = Faulty::new(MemoryRollupStore::default(), Arc::clone(&plan));
    assert!(never_completes(plan.crashed()).await, "not crashed yet");

    partials
        .put_partial(&key("b1"), &state())
        .await
        .expect("passes");
    assert!(never_completes(partials.put_partial(&key("b2"), &state())).await);
    assert!(plan.is_crashed());
    assert!(
        !never_completes(plan.crashed()).await,
        "the driver learns it"
    );
    assert_eq!(
        partials.inner().partials().len(),
        1,
        "the crashed write was not applied"
    );

    assert!(never_completes(partials.pending_minutes(all_shards())).await);
    assert!(never_completes(rollups.counter_totals(ModelRef::new(&tenant(), &model()))).await);
    assert_eq!(plan.counts().calls, 2, "calls after the crash never start");

    // A new process: a fresh plan over the same inner stores.
    let partials = partials.restarted(FaultPlan::new(4).shared());
    let outcome = partials
        .put_partial(&key("b2"), &state())
        .await
        .expect("passes");
    assert_eq!(outcome, PutOutcome::Written);
    assert_eq!(partials.inner().partials().len(), 2);
}

#[tokio::test]
async fn a_crash_after_a_write_applies_it_and_never_returns() {
    let plan = FaultPlan::new(5)
        .with_fault(Trigger::Operation(Op::PUT_PARTIAL, 1), Fault::CrashAfter)
        .shared();
    let store = faulty_partials(&plan);
    assert!(never_completes(store.put_partial(&key("b1"), &state())).await);
    assert!(plan.is_crashed());
    assert_eq!(
        store.inner().partials().len(),
        1,
        "applied before the crash"
    );
    assert!(never_completes(store.mark_pending(&key("b1"))).await);
    assert_eq!(plan.counts().injected(Fault::CrashAfter), 1);
}

/// What each of 200 calls (a read every third, else a write) saw under `seed`, and
/// how many writes were applied.
async fn outcomes(seed: u64) -> (Vec<Option<Fault>>, usize) {
    let rates = FaultRates {
        fail_before: 0.2,
        fail_after: 0.2,
        ..FaultRates::default()
    };
    let plan = FaultPlan::new(seed)
        .with_rates(rates)
        .expect("rates")
        .shared();
    let store = faulty_partials(&plan);
    let mut seen = Vec::new();
    for i in 0..200 {
        let result = if i % 3 == 0 {
            store
                .partials_of(ModelRef::new(&tenant(), &model()), key("b").minute)
                .await
                .map(drop)
        } else {
            store
                .put_partial(&key(&format!("b{i}")), &state())
                .await
                .map(drop)
        };
        seen.push(result.err().and_then(|e| injected(&e)).map(|i| i.fault));
    }
    let counts = plan.counts();
    assert_eq!((counts.calls, counts.reads, counts.writes), (200, 67, 133));
    (seen, store.inner().partials().len())
}

#[tokio::test]
async fn the_same_seed_draws_the_same_faults() {
    let (first, applied) = outcomes(7).await;
    assert_eq!(outcomes(7).await, (first.clone(), applied));
    assert_ne!(outcomes(8).await.0, first, "another seed, other faults");
    for fault in [Fault::FailBefore, Fault::FailAfter] {
        assert!(first.contains(&Some(fault)), "{fault} drawn");
    }
    assert!(
        first
            .iter()
            .step_by(3)
            .all(|f| matches!(f, None | Some(Fault::FailBefore))),
        "reads only fail before"
    );
    let written = (0..200)
        .filter(|i| i % 3 != 0 && !matches!(first[*i], Some(Fault::FailBefore)))
        .count();
    assert_eq!(
        applied, written,
        "every write but the throttled ones applied"
    );
}

#[test]
fn rates_must_be_probabilities_that_add_up_to_at_most_one() {
    for rates in [
        FaultRates {
            fail_before: -0.1,
            ..FaultRates::default()
        },
        FaultRates {
            crash: f64::NAN,
            ..FaultRates::default()
        },
        FaultRates {
            fail_before: 0.6,
            fail_after: 0.3,
            crash: 0.1,
            crash_after: 0.1,
        },
    ] {
        let refused = FaultPlan::new(0).with_rates(rates).expect_err("refused");
        assert!(refused.to_string().contains("fault rates"), "{refused}");
    }
    let all = FaultRates {
        fail_before: 0.25,
        fail_after: 0.25,
        crash: 0.25,
        crash_after: 0.25,
    };
    assert!(FaultPlan::new(0).with_rates(all).is_ok());
}

#[tokio::test]
async fn latency_is_charged_per_round_trip_and_per_started_megabyte_of_a_query() {
    let latency = Duration::from_millis(20);
    let plan = FaultPlan::new(6).with_latency(latency).shared();
    let store = faulty_partials(&plan);
    // Ten states of 120–140 KB: more than one 1 MB page, less than two.
    let large = testing::state_of_size(120 * 1024, key("b").minute);
    let batches = ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"];
    let started = Instant::now();
    for batch in batches {
        store
            .put_partial(&key(batch), &large)
            .await
            .expect("passes");
    }
    assert!(started.elapsed() >= latency * 10);
    assert_eq!(plan.counts().round_trips, 10);

    let started = Instant::now();
    let states = store
        .partials_of(ModelRef::new(&tenant(), &model()), key("b1").minute)
        .await
        .expect("passes");
    assert_eq!(states.len(), 10);
    assert!(started.elapsed() >= latency * 2, "over 1 MB: two pages");
    assert_eq!(plan.counts().round_trips, 12);

    let plan = FaultPlan::new(6).with_dynamodb_latency().shared();
    let store = faulty_partials(&plan);
    let started = Instant::now();
    store.pending_minutes(all_shards()).await.expect("passes");
    assert!(started.elapsed() >= DYNAMODB_ROUND_TRIP);
}

#[tokio::test]
async fn every_port_answers_an_injected_failure_as_its_unavailable() {
    let plan = FaultPlan::new(9)
        .with_fault(Trigger::Call(1), Fault::FailBefore)
        .with_fault(Trigger::Call(2), Fault::FailBefore)
        .with_fault(Trigger::Call(3), Fault::FailAfter)
        .shared();
    let registry = Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan));
    let notifier = Faulty::new(MemoryNotifier::default(), Arc::clone(&plan));
    let writer = Faulty::new(MemorySeriesWriter::default(), Arc::clone(&plan));

    let sighting = ModelSighting {
        tenant: tenant(),
        model_id: model(),
        task: Task::Regression,
        first: at("2026-11-28T10:00:00Z"),
        last: at("2026-11-28T10:00:00Z"),
        version: None,
    };
    let err = registry
        .record_sighting(&sighting, u64::MAX)
        .await
        .expect_err("fails");
    assert!(
        matches!(&err, RegistryError::Store(e) if injected(e).is_some()),
        "{err:?}"
    );
    assert!(
        registry
            .inner()
            .list_models(&tenant())
            .await
            .expect("read")
            .is_empty()
    );

    let alert: AlertRecord = serde_json::from_value(json!({
        "alert_id": "r@1", "tenant_id": "t1", "model_id": "m1",
        "rule": {"id": "r", "metric": "error_rate", "condition": "above", "threshold": 0.01,
                 "window": "5m", "severity": "critical", "min_samples": 30},
        "state": "firing", "observed_value": 0.2, "baseline": null, "sample_count": 40,
        "window_start": "2026-11-28T09:55:00Z", "window_end": "2026-11-28T10:00:00Z",
        "started_at": "2026-11-28T10:00:00Z", "resolved_at": null
    }))
    .expect("alert");
    let err = notifier.notify(&alert).await.expect_err("fails");
    assert!(injected(&err).is_some(), "{err:?}");
    assert!(notifier.inner().items().is_empty());

    let series = [Series::new("up", [("job", "x")]).with_sample(1, 1.0)];
    let err = writer.write_series(&series).await.expect_err("fails");
    let ExportFailure::Unavailable(source) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        source.downcast_ref::<InjectedFault>().map(|i| i.op),
        Some(Op::WRITE_SERIES)
    );
    assert_eq!(
        writer.inner().items().len(),
        1,
        "applied before the timeout"
    );

    notifier.notify(&alert).await.expect("passes");
    assert_eq!(notifier.inner().items().len(), 1);
}

/// Seven predictions over the minutes 10:59, 11:00 and 11:01 (every third an error).
fn batch() -> Vec<u8> {
    let times = [
        "2026-11-28T10:59:10Z",
        "2026-11-28T10:59:50Z",
        "2026-11-28T11:00:05Z",
        "2026-11-28T11:00:20Z",
        "2026-11-28T11:01:40Z",
        "2026-11-28T11:01:41Z",
        "2026-11-28T11:01:59Z",
    ];
    let predictions: Vec<serde_json::Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 3 == 2 {
                json!({"timestamp": t, "latency_ms": 10, "status": "error",
                    "error_type": "timeout"})
            } else {
                json!({"timestamp": t, "latency_ms": 10, "status": "ok",
                    "predicted": 1.5, "actual": 1.0})
            }
        })
        .collect();
    let body = json!({"model_id": "m1", "batch_id": "b1", "task": "regression",
        "predictions": predictions});
    serde_json::to_vec(&body).expect("JSON")
}

const PREDICTIONS: u64 = 7;

fn now() -> DateTime<Utc> {
    at("2026-11-28T12:00:30Z")
}

type Service<R> = IngestService<R, Faulty<MemoryPartialStore>, NoArchive, MemoryLabelStore>;

fn service<R>(registry: R, partials: Faulty<MemoryPartialStore>) -> Service<R> {
    IngestService {
        versions_per_model: crate::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: crate::ingest::SegmentAdmission::default(),
        registry,
        partials,
        archive: None,
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    }
}

/// Rolls up and checks that the minute, hour and day rollups and the counter totals
/// each count every prediction of [`batch`] once.
async fn assert_counted_once(partials: &impl PendingWork) {
    let rollups = MemoryRollupStore::default();
    let report = roll_up(partials, &rollups, &run_at(now()), &[])
        .await
        .expect("run");
    assert!(report.failures.is_empty(), "{report:?}");
    for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let found = rollups
            .rollups(
                ModelRef::new(&tenant(), &model()),
                granularity,
                TimeSpan::new(at("2026-11-28T00:00:00Z"), at("2026-11-29T00:00:00Z")),
            )
            .await
            .expect("read");
        let merged = WindowState::merged(found.iter().map(|r| r.state.clone())).expect("merge");
        assert_eq!(merged.predictions(), PREDICTIONS, "{granularity:?}");
    }
    let totals = rollups
        .counter_totals(ModelRef::new(&tenant(), &model()))
        .await
        .expect("read");
    assert_eq!((totals.ok, totals.errors), (5, 2));
}

#[tokio::test]
async fn a_batch_answered_503_after_its_partial_was_written_counts_once_when_sent_again() {
    let plan = FaultPlan::new(10)
        .with_fault(Trigger::Operation(Op::PUT_PARTIAL, 1), Fault::FailAfter)
        .shared();
    let service = service(MemoryModelRegistry::default(), faulty_partials(&plan));

    let first = service.ingest(&tenant(), &batch(), now()).await;
    let Err(IngestError::Store(err)) = &first else {
        panic!("a 503, not {first:?}");
    };
    assert_eq!(injected(err).map(|i| i.fault), Some(Fault::FailAfter));
    assert!(
        !service.partials.inner().partials().is_empty(),
        "the failed attempt stored a partial"
    );

    let receipt = service
        .ingest(&tenant(), &batch(), now())
        .await
        .expect("accepted");
    assert_eq!((receipt.accepted, receipt.duplicate), (7, false));
    assert_eq!(receipt.minutes.len(), 3);
    assert_eq!(service.partials.inner().partials().len(), 3);

    assert_counted_once(&service.partials).await;
}

#[tokio::test]
async fn a_process_that_crashed_mid_batch_is_replaced_and_the_batch_counts_once() {
    let plan = FaultPlan::new(11)
        .with_fault(Trigger::Operation(Op::PUT_PARTIAL, 2), Fault::CrashAfter)
        .shared();
    let registry = Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan));
    let first = service(registry, faulty_partials(&plan));
    let (tenant, body) = (tenant(), batch());
    tokio::select! {
        biased;
        () = plan.crashed() => {}
        answer = first.ingest(&tenant, &body, now()) => {
            panic!("answered {answer:?} though the process died");
        }
    }
    assert_eq!(plan.counts().injected(Fault::CrashAfter), 1);

    // The new process: a fresh plan over the same inner stores.
    let fresh = FaultPlan::new(12).shared();
    let second = service(
        first.registry.restarted(Arc::clone(&fresh)),
        first.partials.restarted(Arc::clone(&fresh)),
    );
    drop(first);
    let receipt = second
        .ingest(&tenant, &body, now())
        .await
        .expect("accepted");
    assert_eq!((receipt.accepted, receipt.duplicate), (7, false));
    assert!(!fresh.is_crashed());
    assert_counted_once(&second.partials).await;

    let again = second
        .ingest(&tenant, &body, now())
        .await
        .expect("answered");
    assert!(again.duplicate);
}

#[tokio::test]
async fn a_run_that_dies_after_settling_its_marks_still_gets_its_minutes_exported() {
    let partials = Arc::new(MemoryPartialStore::default());
    let service = service(
        MemoryModelRegistry::default(),
        Faulty::shared(Arc::clone(&partials), FaultPlan::new(13).shared()),
    );
    service
        .ingest(&tenant(), &batch(), now())
        .await
        .expect("accepted");
    let rollups = Arc::new(MemoryRollupStore::default());
    let writer = PrometheusSeries(MemorySeriesWriter::default());
    let cloudwatch = MemoryMetricData::default();
    // The first run dies right after it settled the first pending mark: the rollups
    // are written and the mark is gone, so no later run rolls that model again.
    let plan = FaultPlan::new(14)
        .with_fault(Trigger::Operation(Op::SETTLE, 1), Fault::CrashAfter)
        .shared();
    let (dying_partials, dying_rollups) = (
        Faulty::shared(Arc::clone(&partials), Arc::clone(&plan)),
        Faulty::shared(Arc::clone(&rollups), Arc::clone(&plan)),
    );
    let scheduled = run_at(now());
    let run = crate::aggregate::run_aggregation(
        &dying_partials,
        &dying_rollups,
        Some(&cloudwatch),
        Some(&writer),
        &[],
        &scheduled,
        now(),
    );
    tokio::select! {
        biased;
        () = plan.crashed() => {}
        report = run => panic!("answered {report:?} though the process died"),
    }
    assert!(writer.0.items().is_empty());
    // The next run (a new process) has no pending minute of the model left, yet it
    // exports what the dead run rolled up.
    crate::aggregate::run_aggregation(
        partials.as_ref(),
        rollups.as_ref(),
        Some(&cloudwatch),
        Some(&writer),
        &[],
        &run_at(now()),
        now(),
    )
    .await
    .expect("run");
    let counted: Vec<f64> = writer
        .0
        .items()
        .iter()
        .filter(|s| s.name == "ml_model_predictions_total")
        .flat_map(|s| s.samples.iter().map(|(_, v)| *v))
        .collect();
    assert_eq!(
        counted.iter().sum::<f64>(),
        PREDICTIONS as f64,
        "{counted:?}"
    );
}

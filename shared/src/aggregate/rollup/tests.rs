use super::*;
use crate::adapters::memory::{MemoryPartialStore, MemoryRollupStore};
use crate::domain::ids::ModelRef;
use crate::domain::shard::all_shards;
use crate::testing::{MemoryIngest, at, memory_ingest, run_at};

type Service = MemoryIngest;

fn service() -> Service {
    memory_ingest()
}

fn tenant() -> TenantId {
    TenantId::parse("t1").expect("tenant")
}

fn model() -> ModelId {
    ModelId::parse("m1").expect("model")
}

/// A regression batch with one prediction (latency 10 ms, error every third) per
/// timestamp.
async fn ingest(service: &Service, batch_id: &str, times: &[&str], now: DateTime<Utc>) {
    let predictions: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 3 == 2 {
                format!(r#"{{"timestamp":"{t}","latency_ms":10,"status":"error","error_type":"timeout"}}"#)
            } else {
                format!(r#"{{"timestamp":"{t}","latency_ms":10,"status":"ok","predicted":1.5,"actual":1.0}}"#)
            }
        })
        .collect();
    let body = format!(
        r#"{{"model_id":"m1","batch_id":"{batch_id}","task":"regression","predictions":[{}]}}"#,
        predictions.join(",")
    );
    service
        .ingest(&tenant(), body.as_bytes(), now)
        .await
        .expect("batch accepted");
}

async fn predictions_in(
    rollups: &MemoryRollupStore,
    granularity: Granularity,
    from: &str,
    to: &str,
) -> u64 {
    let found = rollups
        .rollups(
            ModelRef::new(&tenant(), &model()),
            granularity,
            TimeSpan::new(at(from), at(to)),
        )
        .await
        .expect("read");
    WindowState::merged(found.into_iter().map(|r| r.state))
        .expect("merge")
        .predictions()
}

#[tokio::test]
async fn partials_roll_up_into_minutes_hours_and_days_with_counters() {
    let service = service();
    let rollups = MemoryRollupStore::default();
    let now = at("2026-11-28T12:00:30Z");
    ingest(
        &service,
        "b1",
        &[
            "2026-11-28T10:59:10Z",
            "2026-11-28T10:59:50Z",
            "2026-11-28T11:00:05Z",
        ],
        now,
    )
    .await;
    ingest(
        &service,
        "b2",
        &["2026-11-28T11:00:20Z", "2026-11-28T12:00:10Z"],
        now,
    )
    .await;

    let report = roll_up(&service.partials, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    assert_eq!(report.models, 1);
    assert!(report.failures.is_empty());
    // 10:59 and 11:00 are closed; 12:00 is still open and stays pending.
    assert_eq!(report.rolled.minutes, 2);
    assert_eq!(report.rolled.hours, 2);
    assert_eq!(report.rolled.days, 1);
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Minute,
            "2026-11-28T10:59:00Z",
            "2026-11-28T11:00:00Z"
        )
        .await,
        2
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Minute,
            "2026-11-28T11:00:00Z",
            "2026-11-28T11:01:00Z"
        )
        .await,
        2
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Hour,
            "2026-11-28T00:00:00Z",
            "2026-11-29T00:00:00Z"
        )
        .await,
        4
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Day,
            "2026-11-28T00:00:00Z",
            "2026-11-29T00:00:00Z"
        )
        .await,
        4
    );
    let pending = service
        .partials
        .pending_minutes(all_shards())
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].minute, at("2026-11-28T12:00:00Z"));
    let totals = rollups
        .counter_totals(ModelRef::new(&tenant(), &model()))
        .await
        .expect("totals");
    assert_eq!((totals.ok, totals.errors), (3, 1));
    assert_eq!(totals.errors_by_type.get("timeout"), Some(&1));
    assert_eq!(totals.latency_sum_us, 40_000);
}

#[tokio::test]
async fn running_twice_or_concurrently_gives_the_same_rollups() {
    let service = service();
    let now = at("2026-11-28T12:00:30Z");
    ingest(
        &service,
        "b1",
        &[
            "2026-11-28T10:59:10Z",
            "2026-11-28T11:30:00Z",
            "2026-11-28T11:59:59Z",
        ],
        now,
    )
    .await;
    let once = MemoryRollupStore::default();
    roll_up(&service.partials, &once, &run_at(now), &[])
        .await
        .expect("run");

    let service2 = self::service();
    ingest(
        &service2,
        "b1",
        &[
            "2026-11-28T10:59:10Z",
            "2026-11-28T11:30:00Z",
            "2026-11-28T11:59:59Z",
        ],
        now,
    )
    .await;
    let twice = MemoryRollupStore::default();
    let run = run_at(now);
    let (a, b) = tokio::join!(
        roll_up(&service2.partials, &twice, &run, &[]),
        roll_up(&service2.partials, &twice, &run, &[])
    );
    a.expect("first run");
    b.expect("second run");
    let again = roll_up(&service2.partials, &twice, &run_at(now), &[])
        .await
        .expect("third run");
    assert_eq!(
        again.rolled,
        ModelRollupReport::default(),
        "nothing left to do"
    );
    assert_eq!(once.all(), twice.all());
    assert_eq!(
        once.counter_totals(ModelRef::new(&tenant(), &model()))
            .await
            .expect("totals"),
        twice
            .counter_totals(ModelRef::new(&tenant(), &model()))
            .await
            .expect("totals")
    );
}

#[tokio::test]
async fn a_late_batch_re_rolls_its_minute_hour_and_day_and_counters_only_grow() {
    let service = service();
    let rollups = MemoryRollupStore::default();
    let now = at("2026-11-28T12:00:30Z");
    ingest(
        &service,
        "b1",
        &["2026-11-28T10:15:10Z", "2026-11-28T10:15:20Z"],
        now,
    )
    .await;
    roll_up(&service.partials, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    let before = rollups
        .counter_totals(ModelRef::new(&tenant(), &model()))
        .await
        .expect("totals");

    ingest(&service, "late", &["2026-11-28T10:15:40Z"], now).await;
    let report = roll_up(&service.partials, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    assert_eq!(
        (
            report.rolled.minutes,
            report.rolled.hours,
            report.rolled.days
        ),
        (1, 1, 1)
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Minute,
            "2026-11-28T10:15:00Z",
            "2026-11-28T10:16:00Z"
        )
        .await,
        3
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Hour,
            "2026-11-28T10:00:00Z",
            "2026-11-28T11:00:00Z"
        )
        .await,
        3
    );
    assert_eq!(
        predictions_in(
            &rollups,
            Granularity::Day,
            "2026-11-28T00:00:00Z",
            "2026-11-29T00:00:00Z"
        )
        .await,
        3
    );
    let after = rollups
        .counter_totals(ModelRef::new(&tenant(), &model()))
        .await
        .expect("totals");
    assert_eq!(after.ok, before.ok + 1);
    assert_eq!(after.errors, before.errors);
}

/// A multiclass batch of `labels` predictions in the minute of `time`, each with its
/// own label `<prefix><i>` (correct), plus `error_types` failed predictions of
/// distinct types.
fn distinct_labels_batch(
    batch_id: &str,
    time: &str,
    prefix: &str,
    labels: usize,
    error_types: usize,
) -> String {
    let mut predictions: Vec<String> = (0..labels)
        .map(|i| {
            format!(
                r#"{{"timestamp":"{time}","latency_ms":5,"status":"ok","predicted":"{prefix}{i}","actual":"{prefix}{i}"}}"#
            )
        })
        .collect();
    predictions.extend((0..error_types).map(|i| {
        format!(
            r#"{{"timestamp":"{time}","latency_ms":5,"status":"error","error_type":"{prefix}-e{i}"}}"#
        )
    }));
    format!(
        r#"{{"model_id":"m1","batch_id":"{batch_id}","task":"multiclass_classification","predictions":[{}]}}"#,
        predictions.join(",")
    )
}

#[tokio::test]
async fn batches_that_cross_the_caps_together_still_roll_up_and_so_does_later_traffic() {
    let service = service();
    let rollups = MemoryRollupStore::default();
    let now = at("2026-11-28T12:00:30Z");
    let minute = "2026-11-28T11:00:10Z";
    for (id, prefix) in [("b1", "a"), ("b2", "b")] {
        let body = distinct_labels_batch(id, minute, prefix, 600, 200);
        service
            .ingest(&tenant(), body.as_bytes(), now)
            .await
            .expect("each batch is within the caps alone");
    }
    let report = roll_up(&service.partials, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let later = distinct_labels_batch("b3", "2026-11-28T11:05:00Z", "c", 3, 1);
    service
        .ingest(&tenant(), later.as_bytes(), now)
        .await
        .expect("normal batch");
    let report = roll_up(&service.partials, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.rolled.minutes, 1);

    let day = rollups
        .rollups(
            ModelRef::new(&tenant(), &model()),
            Granularity::Day,
            TimeSpan::new(at("2026-11-28T00:00:00Z"), at("2026-11-29T00:00:00Z")),
        )
        .await
        .expect("read");
    let state = WindowState::merged(day.iter().map(|r| r.state.clone())).expect("merge");
    assert_eq!(state.predictions(), 1_600 + 4);
    let metrics = crate::domain::MetricSet::compute(
        &state,
        crate::domain::TimeSpan {
            start: at("2026-11-28T00:00:00Z"),
            end: at("2026-11-29T00:00:00Z"),
        },
        None,
    );
    assert_eq!(metrics.accuracy, Some(1.0), "every prediction was correct");
    assert_eq!(
        metrics.overflow.actual_labels, 203,
        "1,203 labels, 1,000 kept"
    );
    assert_eq!(metrics.overflow.error_types, 401 - 256);
    let totals = rollups
        .counter_totals(ModelRef::new(&tenant(), &model()))
        .await
        .expect("totals");
    assert_eq!((totals.ok, totals.errors), (1_203, 401));
}

/// Marks a new partial for the minute whenever its partials are read, as a batch
/// arriving during the run would.
struct BusyPartials(MemoryPartialStore);

impl PendingWork for BusyPartials {
    async fn pending_minutes(
        &self,
        shards: std::ops::Range<u32>,
    ) -> StoreResult<Vec<PendingMinute>> {
        self.0.pending_minutes(shards).await
    }
    async fn partials_of(
        &self,
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> StoreResult<Vec<WindowState>> {
        let ModelRef { tenant, model_id } = model;
        use crate::ports::{PartialKey, PartialStore};
        let key = PartialKey {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            minute,
            batch_id: "concurrent".into(),
        };
        self.0.mark_pending(&key).await?;
        self.0
            .partials_of(ModelRef::new(tenant, model_id), minute)
            .await
    }
    async fn settle(&self, pending: &PendingMinute) -> StoreResult<bool> {
        self.0.settle(pending).await
    }
}

#[tokio::test]
async fn a_mark_set_during_the_run_is_kept_for_the_next() {
    let service = service();
    let now = at("2026-11-28T12:00:30Z");
    ingest(&service, "b1", &["2026-11-28T10:15:10Z"], now).await;
    let busy = BusyPartials(service.partials);
    let rollups = MemoryRollupStore::default();
    let report = roll_up(&busy, &rollups, &run_at(now), &[])
        .await
        .expect("run");
    assert_eq!(report.rolled.left_pending, 1);
    assert_eq!(
        busy.0
            .pending_minutes(all_shards())
            .await
            .expect("pending")
            .len(),
        1
    );
}

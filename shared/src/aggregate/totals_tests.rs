//! Counter totals as aggregation writes them: at most the cap of named error types,
//! every error counted, also with two writers racing for the last slot.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use crate::adapters::memory::{MemoryPartialStore, MemoryRollupStore};
use crate::aggregate::roll_up;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::{
    CounterDelta, CounterTotals, Granularity, MAX_TOTAL_ERROR_TYPES, OVERFLOW_BUCKET, Outcome,
    PredictionRecord, Status, TimeSpan, WindowState,
};
use crate::error::StoreResult;
use crate::ports::{ExportCursor, ExportCursors, PartialKey, PartialStore, Rollup, RollupStore};
use crate::testing::run_at;

/// The start of the `n`th minute after 2025-11-28T10:00Z.
fn minute(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_324_000 + 60 * n, 0).expect("minute")
}

/// The partial of batch `b1` in minute `n` of model `t1/m1`.
fn partial_key(n: i64) -> PartialKey {
    PartialKey {
        tenant: TenantId::parse("t1").expect("tenant"),
        model_id: ModelId::parse("m1").expect("model"),
        minute: minute(n),
        batch_id: "b1".into(),
    }
}

/// Stores and marks a partial of minute `n` with one 1.5 ms error of each type.
async fn errors_in(partials: &MemoryPartialStore, n: i64, types: &[String]) {
    let key = partial_key(n);
    let mut state = WindowState::default();
    for error_type in types {
        state
            .fold_prediction(&PredictionRecord {
                timestamp: key.minute + TimeDelta::seconds(1),
                latency_ms: 1.5,
                status: Status::Error,
                error_type: Some(error_type.clone()),
                outcome: Outcome::Regression {
                    predicted: None,
                    actual: None,
                },
            })
            .expect("fold");
    }
    partials.put_partial(&key, &state).await.expect("partial");
    partials.mark_pending(&key).await.expect("mark");
}

/// The totals of model `t1/m1`.
async fn totals_of(store: &impl RollupStore) -> CounterTotals {
    let key = partial_key(0);
    store
        .counter_totals(ModelRef::new(&key.tenant, &key.model_id))
        .await
        .expect("totals")
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:02}")).collect()
}

#[tokio::test]
async fn rolled_up_totals_name_at_most_the_cap_and_count_every_error() {
    let partials = MemoryPartialStore::default();
    let rollups = MemoryRollupStore::default();
    errors_in(&partials, 0, &names("a", 40)).await;
    errors_in(&partials, 1, &names("b", 40)).await;
    let report = roll_up(&partials, &rollups, &run_at(minute(5)), &[])
        .await
        .expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let totals = totals_of(&rollups).await;
    assert_eq!(totals.errors, 80);
    assert_eq!(totals.errors_by_type.values().sum::<u64>(), 80);
    assert_eq!(totals.named_error_types.len(), MAX_TOTAL_ERROR_TYPES);
    assert_eq!(totals.errors_by_type.get(OVERFLOW_BUCKET), Some(&16));
    // The minute rolled first names all its 40 types, the other the 24 left (minutes
    // are rolled newest first, several at once).
    let named = |prefix: &str| {
        let named = totals
            .errors_by_type
            .keys()
            .filter(|t| t.starts_with(prefix));
        named.count()
    };
    let mut counts = [named("a"), named("b")];
    counts.sort_unstable();
    assert_eq!(counts, [24, 40]);
    assert_eq!(totals.latency_sum_us, 80 * 1_500);
}

/// A store where another writer records the error type `rival` just before this
/// writer's first minute rollup.
struct Contended {
    inner: MemoryRollupStore,
    raced: AtomicBool,
}

impl ExportCursors for Contended {
    async fn note_rolled(
        &self,
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> StoreResult<()> {
        let ModelRef { tenant, model_id } = model;
        self.inner
            .note_rolled(exporters, ModelRef::new(tenant, model_id), rolled_through)
            .await
    }

    async fn lagging_cursors(
        &self,
        exporter: &str,
        shards: std::ops::Range<u32>,
    ) -> StoreResult<Vec<ExportCursor>> {
        self.inner.lagging_cursors(exporter, shards).await
    }

    async fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.inner.advance_cursor(exporter, cursor, through).await
    }
}

impl RollupStore for Contended {
    async fn rollups(
        &self,
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> StoreResult<Vec<Rollup>> {
        let ModelRef { tenant, model_id } = model;
        self.inner
            .rollups(ModelRef::new(tenant, model_id), granularity, span)
            .await
    }

    async fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> StoreResult<bool> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let mut rival = delta.clone();
            rival.add = CounterTotals {
                errors: 1,
                errors_by_type: [("rival".to_owned(), 1)].into(),
                named_error_types: ["rival".to_owned()].into(),
                ..CounterTotals::default()
            };
            let mut other = rollup.clone();
            other.start -= TimeDelta::hours(1);
            assert!(
                self.inner
                    .put_minute_rollup(&other, None, &rival)
                    .await
                    .expect("rival")
            );
        }
        self.inner
            .put_minute_rollup(rollup, previous_rev, delta)
            .await
    }

    async fn put_rollup(&self, rollup: &Rollup) -> StoreResult<bool> {
        self.inner.put_rollup(rollup).await
    }

    async fn counter_totals(&self, model: ModelRef<'_>) -> StoreResult<CounterTotals> {
        let ModelRef { tenant, model_id } = model;
        self.inner
            .counter_totals(ModelRef::new(tenant, model_id))
            .await
    }
}

#[tokio::test]
async fn a_writer_that_lost_the_last_slot_re_reads_and_overflows() {
    let partials = MemoryPartialStore::default();
    let store = Contended {
        inner: MemoryRollupStore::default(),
        raced: AtomicBool::new(true),
    };
    // 63 named types: one slot left.
    errors_in(&partials, 0, &names("a", 63)).await;
    roll_up(&partials, &store, &run_at(minute(5)), &[])
        .await
        .expect("run");
    store.raced.store(false, Ordering::SeqCst);
    errors_in(&partials, 2, &["late".to_owned()]).await;
    let report = roll_up(&partials, &store, &run_at(minute(5)), &[])
        .await
        .expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.rolled.minutes, 1);
    let totals = totals_of(&store).await;
    assert_eq!(totals.named_error_types.len(), MAX_TOTAL_ERROR_TYPES);
    assert!(totals.named_error_types.contains("rival"));
    assert!(!totals.errors_by_type.contains_key("late"));
    assert_eq!(totals.errors_by_type.get(OVERFLOW_BUCKET), Some(&1));
    assert_eq!(totals.errors, 63 + 1 + 1);
}

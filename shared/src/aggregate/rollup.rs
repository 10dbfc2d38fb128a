//! Rolling partials up: pending minutes → minute rollups → hour → day.
//!
//! Every rollup is a full re-merge of its sources (a minute's partials, an hour's
//! minutes, a day's hours), so running twice gives the same rollups as running once,
//! and a late partial only needs its minute marked pending again. Revisions make
//! overlapping runs safe: a minute rollup's revision is the number of partials it merges
//! (partials are only ever added, each batch once, so the count names the content), an
//! hour's or day's the sum of its parts' revisions; a store refuses a
//! rollup whose revision is not newer than the stored one. A minute rollup and the
//! counter delta it brings are written together, conditional on the revision read
//! before, so counters never count a prediction twice. The pending mark is settled
//! (removed only if unchanged) after the day is written: a run that dies halfway
//! leaves its marks for the next run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use serde::Serialize;

use crate::domain::CounterTotals;
use crate::domain::Granularity;
use crate::domain::WindowState;
use crate::domain::ids::{ModelId, TenantId};
use crate::domain::{cap_error_types, counter_delta, names_error_types};
use crate::error::StoreError;
use crate::ports::{ExportCursors, PendingMinute, PendingWork, Rollup, RollupStore};

/// Models rolled up at once.
const CONCURRENT_MODELS: usize = 8;
/// Attempts at a minute rollup whose stored revision moved under us.
const MINUTE_ATTEMPTS: usize = 5;

/// What one model's roll-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelRollupReport {
    /// Minute rollups written.
    pub minutes: usize,
    /// Hour rollups written.
    pub hours: usize,
    /// Day rollups written.
    pub days: usize,
    /// Pending marks left for the next run (a partial arrived meanwhile).
    pub left_pending: usize,
}

/// A model whose roll-up failed this run; its marks stay for the next run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupFailure {
    /// The tenant.
    pub tenant_id: String,
    /// The model.
    pub model_id: String,
    /// What went wrong.
    pub reason: String,
}

/// What a roll-up run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RollupReport {
    /// Models with closed pending minutes.
    pub models: usize,
    /// Totals over the models that succeeded.
    pub rolled: ModelRollupReport,
    /// Models that failed (retried next run).
    pub failures: Vec<RollupFailure>,
}

/// Rolls up every pending minute that is closed at `now` (its end ≤ `now`), and notes
/// in each of `exporters`' cursors how far each rolled model is rolled.
pub async fn roll_up(
    work: &impl PendingWork,
    rollups: &(impl RollupStore + ExportCursors),
    now: DateTime<Utc>,
    exporters: &[&str],
) -> Result<RollupReport, StoreError> {
    let mut by_model: BTreeMap<(TenantId, ModelId), Vec<PendingMinute>> = BTreeMap::new();
    for pending in work.pending_minutes().await? {
        if pending.minute + Granularity::Minute.length() <= now {
            by_model
                .entry((pending.tenant.clone(), pending.model_id.clone()))
                .or_default()
                .push(pending);
        }
    }
    let results: Vec<_> = stream::iter(by_model)
        .map(|((tenant, model_id), pending)| async move {
            let result = roll_up_model(work, rollups, &tenant, &model_id, pending, exporters).await;
            (tenant, model_id, result)
        })
        .buffer_unordered(CONCURRENT_MODELS)
        .collect()
        .await;
    let mut report = RollupReport {
        models: results.len(),
        ..RollupReport::default()
    };
    for (tenant, model_id, result) in results {
        match result {
            Ok(model) => {
                report.rolled.minutes += model.minutes;
                report.rolled.hours += model.hours;
                report.rolled.days += model.days;
                report.rolled.left_pending += model.left_pending;
            }
            Err(err) => {
                tracing::error!(%tenant, %model_id, error = %err, source = ?std::error::Error::source(&err), "roll-up failed; marks kept for the next run");
                report.failures.push(RollupFailure {
                    tenant_id: tenant.to_string(),
                    model_id: model_id.to_string(),
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok(report)
}

/// Rolls up one model's pending minutes, then the hours and days they fall in, notes
/// the end of the latest minute rolled in the exporters' cursors, and only then
/// settles the marks: a run that dies after settling has already told the exporters.
async fn roll_up_model(
    work: &impl PendingWork,
    rollups: &(impl RollupStore + ExportCursors),
    tenant: &TenantId,
    model_id: &ModelId,
    mut pending: Vec<PendingMinute>,
    exporters: &[&str],
) -> Result<ModelRollupReport, StoreError> {
    pending.sort();
    let through = pending
        .iter()
        .map(|p| p.minute + Granularity::Minute.length())
        .max()
        .unwrap_or_default();
    let mut report = ModelRollupReport::default();
    for minute in &pending {
        let partials = work.partials_of(tenant, model_id, minute.minute).await?;
        let state = WindowState::merged(&partials).map_err(|e| {
            StoreError::inconsistent(
                format!("partials of {tenant}/{model_id} at {}", minute.minute),
                e,
            )
        })?;
        let rev = partials.len() as u64;
        if put_minute(rollups, tenant, model_id, minute.minute, rev, &state).await? {
            report.minutes += 1;
        }
    }
    let mut changed: BTreeSet<DateTime<Utc>> = pending.iter().map(|p| p.minute).collect();
    let mut granularity = Granularity::Minute;
    while let Some(parent) = granularity.parent() {
        let starts: BTreeSet<DateTime<Utc>> = changed.iter().map(|t| parent.floor(*t)).collect();
        for start in &starts {
            if rebuild(rollups, tenant, model_id, granularity, parent, *start).await? {
                match parent {
                    Granularity::Hour => report.hours += 1,
                    _ => report.days += 1,
                }
            }
        }
        changed = starts;
        granularity = parent;
    }
    if !exporters.is_empty() {
        rollups
            .note_rolled(exporters, tenant, model_id, through)
            .await?;
    }
    for minute in &pending {
        if !work.settle(minute).await? {
            report.left_pending += 1;
        }
    }
    Ok(report)
}

/// Writes a minute rollup with its counter delta, re-reading the stored revision (and
/// the totals, when the delta names error types: the cap on them) when another writer
/// moved them. Returns whether this call wrote.
async fn put_minute(
    rollups: &impl RollupStore,
    tenant: &TenantId,
    model_id: &ModelId,
    minute: DateTime<Utc>,
    rev: u64,
    state: &WindowState,
) -> Result<bool, StoreError> {
    let end = minute + Granularity::Minute.length();
    for _ in 0..MINUTE_ATTEMPTS {
        let previous = rollups
            .rollups(tenant, model_id, Granularity::Minute, minute, end)
            .await?
            .pop();
        if previous.as_ref().is_some_and(|p| p.rev >= rev) {
            return Ok(false);
        }
        let empty = WindowState::default();
        let before = previous.as_ref().map_or(&empty, |p| &p.state);
        let delta = counter_delta(before, state);
        let rollup = Rollup {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            granularity: Granularity::Minute,
            start: minute,
            rev,
            state: state.clone(),
        };
        let totals = if names_error_types(&delta) {
            rollups.counter_totals(tenant, model_id).await?
        } else {
            CounterTotals::default()
        };
        let delta = cap_error_types(delta, &totals);
        if rollups
            .put_minute_rollup(&rollup, previous.map(|p| p.rev), &delta)
            .await?
        {
            return Ok(true);
        }
    }
    Err(StoreError::Unavailable {
        operation: "write minute rollup",
        source: format!("the stored revision of {tenant}/{model_id} at {minute} kept changing")
            .into(),
    })
}

/// Re-merges the `parent` rollup starting at `start` from its `part` rollups.
async fn rebuild(
    rollups: &impl RollupStore,
    tenant: &TenantId,
    model_id: &ModelId,
    part: Granularity,
    parent: Granularity,
    start: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let parts = rollups
        .rollups(tenant, model_id, part, start, start + parent.length())
        .await?;
    let state = WindowState::merged(parts.iter().map(|p| &p.state)).map_err(|e| {
        StoreError::inconsistent(
            format!("{part:?} rollups of {tenant}/{model_id} from {start}"),
            e,
        )
    })?;
    rollups
        .put_rollup(&Rollup {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            granularity: parent,
            start,
            rev: parts.iter().map(|p| p.rev).sum(),
            state,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryModelRegistry, MemoryPartialStore, MemoryRollupStore};
    use crate::adapters::timestream::TimestreamArchive;
    use crate::ingest::{BatchLimits, IngestService};

    type Service = IngestService<MemoryModelRegistry, MemoryPartialStore, TimestreamArchive>;

    fn service() -> Service {
        IngestService {
            registry: MemoryModelRegistry::default(),
            partials: MemoryPartialStore::default(),
            archive: None,
            limits: BatchLimits::default(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
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
            .rollups(&tenant(), &model(), granularity, at(from), at(to))
            .await
            .expect("read");
        WindowState::merged(found.iter().map(|r| &r.state))
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

        let report = roll_up(&service.partials, &rollups, now, &[])
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
        let pending = service.partials.pending_minutes().await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].minute, at("2026-11-28T12:00:00Z"));
        let totals = rollups
            .counter_totals(&tenant(), &model())
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
        roll_up(&service.partials, &once, now, &[])
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
        let (a, b) = tokio::join!(
            roll_up(&service2.partials, &twice, now, &[]),
            roll_up(&service2.partials, &twice, now, &[])
        );
        a.expect("first run");
        b.expect("second run");
        let again = roll_up(&service2.partials, &twice, now, &[])
            .await
            .expect("third run");
        assert_eq!(
            again.rolled,
            ModelRollupReport::default(),
            "nothing left to do"
        );
        assert_eq!(once.all(), twice.all());
        assert_eq!(
            once.counter_totals(&tenant(), &model())
                .await
                .expect("totals"),
            twice
                .counter_totals(&tenant(), &model())
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
        roll_up(&service.partials, &rollups, now, &[])
            .await
            .expect("run");
        let before = rollups
            .counter_totals(&tenant(), &model())
            .await
            .expect("totals");

        ingest(&service, "late", &["2026-11-28T10:15:40Z"], now).await;
        let report = roll_up(&service.partials, &rollups, now, &[])
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
            .counter_totals(&tenant(), &model())
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
        let report = roll_up(&service.partials, &rollups, now, &[])
            .await
            .expect("run");
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let later = distinct_labels_batch("b3", "2026-11-28T11:05:00Z", "c", 3, 1);
        service
            .ingest(&tenant(), later.as_bytes(), now)
            .await
            .expect("normal batch");
        let report = roll_up(&service.partials, &rollups, now, &[])
            .await
            .expect("run");
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert_eq!(report.rolled.minutes, 1);

        let day = rollups
            .rollups(
                &tenant(),
                &model(),
                Granularity::Day,
                at("2026-11-28T00:00:00Z"),
                at("2026-11-29T00:00:00Z"),
            )
            .await
            .expect("read");
        let state = WindowState::merged(day.iter().map(|r| &r.state)).expect("merge");
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
            .counter_totals(&tenant(), &model())
            .await
            .expect("totals");
        assert_eq!((totals.ok, totals.errors), (1_203, 401));
    }

    /// Marks a new partial for the minute whenever its partials are read, as a batch
    /// arriving during the run would.
    struct BusyPartials(MemoryPartialStore);

    impl PendingWork for BusyPartials {
        async fn pending_minutes(&self) -> Result<Vec<PendingMinute>, StoreError> {
            self.0.pending_minutes().await
        }
        async fn partials_of(
            &self,
            tenant: &TenantId,
            model_id: &ModelId,
            minute: DateTime<Utc>,
        ) -> Result<Vec<WindowState>, StoreError> {
            use crate::ports::{PartialKey, PartialStore};
            let key = PartialKey {
                tenant: tenant.clone(),
                model_id: model_id.clone(),
                minute,
                batch_id: "concurrent".into(),
            };
            self.0.mark_pending(&key).await?;
            self.0.partials_of(tenant, model_id, minute).await
        }
        async fn settle(&self, pending: &PendingMinute) -> Result<bool, StoreError> {
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
        let report = roll_up(&busy, &rollups, now, &[]).await.expect("run");
        assert_eq!(report.rolled.left_pending, 1);
        assert_eq!(busy.0.pending_minutes().await.expect("pending").len(), 1);
    }
}

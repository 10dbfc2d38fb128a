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

use crate::domain::ids::{ModelId, TenantId};
use crate::domain::{
    CounterTotals, Granularity, TimeSpan, WindowState, cap_error_types, counter_delta,
    names_error_types,
};
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
            .rollups(
                tenant,
                model_id,
                Granularity::Minute,
                TimeSpan::new(minute, end),
            )
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
        .rollups(
            tenant,
            model_id,
            part,
            TimeSpan::new(start, start + parent.length()),
        )
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
mod tests;

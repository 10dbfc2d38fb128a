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

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, future, stream};
use serde::Serialize;

use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::{
    CounterTotals, Granularity, TimeSpan, WindowState, cap_error_types, counter_delta,
    names_error_types,
};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ExportCursors, PendingMinute, PendingWork, Rollup, RollupStore};
use crate::schedule::{Deadline, ScheduledRun, round_robin};

/// Models rolled up at once.
const CONCURRENT_MODELS: usize = 16;
/// Minutes of one model rolled up at once.
const CONCURRENT_MINUTES: usize = 4;
/// Attempts at a minute rollup whose stored revision moved under us.
const MINUTE_ATTEMPTS: usize = 5;
/// The span of one slice of a model's backlog: its newest pending minute and the
/// pending minutes up to this much before it.
const SLICE_SPAN: TimeDelta = TimeDelta::hours(1);

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

impl ModelRollupReport {
    fn add(&mut self, other: &Self) {
        self.minutes += other.minutes;
        self.hours += other.hours;
        self.days += other.days;
        self.left_pending += other.left_pending;
    }
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

/// Work a run left for the next one because its deadline came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LeftWork {
    /// Models with work left.
    pub models: usize,
    /// Pending minutes left (roll-up) or lagging models not exported (exports).
    pub minutes: usize,
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
    /// Closed pending minutes not rolled up when the deadline came (next run's work).
    pub left: LeftWork,
}

impl RollupReport {
    /// Adds a later stage's report of the same run.
    pub fn merge(&mut self, later: Self) {
        self.rolled.add(&later.rolled);
        self.failures.extend(later.failures);
        self.left = later.left;
    }
}

/// Whom a roll-up is noted for: the configured exporters, and the segment keys they
/// export besides every model and version (`EXPORTED_SEGMENT_KEYS`).
#[derive(Debug, Clone, Copy)]
pub struct ExportTargets<'a> {
    /// The exporters' names.
    pub exporters: &'a [&'a str],
    /// The segment keys whose series are exported.
    pub segment_keys: &'a [String],
}

impl<'a> ExportTargets<'a> {
    /// `exporters`, of models and versions only.
    pub fn all_but_segments(exporters: &'a [&'a str]) -> Self {
        Self {
            exporters,
            segment_keys: &[],
        }
    }

    /// The exporters of `series`: all of them, or none for a segment not exported.
    pub fn of(&self, series: &ModelId) -> &'a [&'a str] {
        if series.is_exported(self.segment_keys) {
            self.exporters
        } else {
            &[]
        }
    }
}

/// One model's closed pending minutes, newest first.
#[derive(Debug)]
struct ModelBacklog {
    tenant: TenantId,
    model_id: ModelId,
    minutes: Vec<PendingMinute>,
}

impl ModelBacklog {
    /// Takes the next slice: the newest pending minute and those within [`SLICE_SPAN`]
    /// before it (newest first), so a slice rebuilds at most two hours.
    fn take_slice(&mut self) -> Vec<PendingMinute> {
        let Some(newest) = self.minutes.first().map(|m| m.minute) else {
            return Vec::new();
        };
        let len = self
            .minutes
            .iter()
            .take_while(|m| m.minute > newest - SLICE_SPAN)
            .count();
        self.minutes.drain(..len).collect()
    }
}

/// Every model's closed pending minutes, as read at the start of a stage, in the order
/// they are rolled up: round by round, each round one slice (the newest hour left) of
/// every model with work, models ordered round-robin across tenants. The first round
/// is every model's freshest data; later rounds work the backlogs down.
#[derive(Debug)]
pub struct Backlog {
    models: Vec<ModelBacklog>,
}

impl Backlog {
    /// Reads the minutes of `run`'s shards that are pending and closed at its time
    /// (their end ≤ the run time).
    pub async fn read(work: &impl PendingWork, run: &ScheduledRun) -> StoreResult<Self> {
        let mut by_model: BTreeMap<(TenantId, ModelId), Vec<PendingMinute>> = BTreeMap::new();
        for pending in work.pending_minutes(run.shards.clone()).await? {
            if pending.minute + Granularity::Minute.length() <= run.run_time {
                by_model
                    .entry((pending.tenant.clone(), pending.model_id.clone()))
                    .or_default()
                    .push(pending);
            }
        }
        let models = round_robin(
            by_model
                .into_iter()
                .map(|((tenant, model_id), mut minutes)| {
                    minutes.sort_by(|a, b| b.cmp(a));
                    let backlog = ModelBacklog {
                        tenant: tenant.clone(),
                        model_id,
                        minutes,
                    };
                    (tenant, backlog)
                }),
        );
        Ok(Self { models })
    }

    /// What is left.
    pub fn left(&self) -> LeftWork {
        LeftWork {
            models: self.models.len(),
            minutes: self.models.iter().map(|m| m.minutes.len()).sum(),
        }
    }

    /// Rolls up `rounds` rounds (or until the backlog is empty) while `deadline` allows
    /// starting a slice, and notes in the cursors of each exporter of `targets` that
    /// exports a rolled series how far it is rolled. A model that fails leaves the rest
    /// of its minutes to the next run.
    pub async fn roll(
        &mut self,
        work: &impl PendingWork,
        rollups: &(impl RollupStore + ExportCursors),
        targets: ExportTargets<'_>,
        rounds: usize,
        deadline: Deadline,
    ) -> RollupReport {
        let mut report = RollupReport {
            models: self.models.len(),
            ..RollupReport::default()
        };
        for _ in 0..rounds {
            if self.models.is_empty() || deadline.passed() {
                break;
            }
            let slices: Vec<Vec<PendingMinute>> = self
                .models
                .iter_mut()
                .map(ModelBacklog::take_slice)
                .collect();
            let (models, slices_ref) = (&self.models, &slices);
            let results: Vec<_> = stream::iter(0..slices.len())
                .take_while(|_| future::ready(!deadline.passed()))
                .map(|index| async move {
                    let model = &models[index];
                    let result = roll_up_model(
                        work,
                        rollups,
                        ModelRef::new(&model.tenant, &model.model_id),
                        &slices_ref[index],
                        targets.of(&model.model_id),
                    )
                    .await;
                    (index, result)
                })
                .buffer_unordered(CONCURRENT_MODELS)
                .collect()
                .await;
            let mut started = vec![false; slices.len()];
            let mut failed = vec![false; slices.len()];
            for (index, result) in results {
                started[index] = true;
                let model = &self.models[index];
                match result {
                    Ok(rolled) => report.rolled.add(&rolled),
                    Err(err) => {
                        tracing::error!(tenant = %model.tenant, model_id = %model.model_id, error = %err, source = ?std::error::Error::source(&err), "roll-up failed; marks kept for the next run");
                        failed[index] = true;
                        report.failures.push(RollupFailure {
                            tenant_id: model.tenant.to_string(),
                            model_id: model.model_id.to_string(),
                            reason: err.to_string(),
                        });
                    }
                }
            }
            // A slice not started goes back in front of its model's backlog.
            for ((model, slice), started) in self.models.iter_mut().zip(slices).zip(&started) {
                if !started {
                    model.minutes.splice(0..0, slice);
                }
            }
            let mut index = 0;
            self.models.retain(|model| {
                let keep = !failed[index] && !model.minutes.is_empty();
                index += 1;
                keep
            });
        }
        report.left = self.left();
        report
    }
}

/// Rolls up every minute of `run`'s shards pending and closed at its time, freshest
/// first, while its deadline allows (see [`Backlog`]); notes each rolled model in
/// `exporters`' cursors.
pub async fn roll_up(
    work: &impl PendingWork,
    rollups: &(impl RollupStore + ExportCursors),
    run: &ScheduledRun,
    exporters: &[&str],
) -> StoreResult<RollupReport> {
    let mut backlog = Backlog::read(work, run).await?;
    Ok(backlog
        .roll(
            work,
            rollups,
            ExportTargets::all_but_segments(exporters),
            usize::MAX,
            run.deadline,
        )
        .await)
}

/// Rolls up one slice of a model's pending minutes, then the hours and days they fall
/// in, notes the end of the latest minute rolled in the exporters' cursors, and only
/// then settles the marks: a run that dies after settling has already told the
/// exporters.
async fn roll_up_model(
    work: &impl PendingWork,
    rollups: &(impl RollupStore + ExportCursors),
    key: ModelRef<'_>,
    slice: &[PendingMinute],
    exporters: &[&str],
) -> StoreResult<ModelRollupReport> {
    let through = slice
        .iter()
        .map(|p| p.minute + Granularity::Minute.length())
        .max()
        .unwrap_or_default();
    let mut report = ModelRollupReport::default();
    let written: Vec<bool> = stream::iter(slice)
        .map(|minute| async move {
            let partials = work.partials_of(key, minute.minute).await?;
            let rev = partials.len() as u64;
            let state = WindowState::merged(partials).map_err(|e| {
                StoreError::inconsistent(format!("partials of {key} at {}", minute.minute), e)
            })?;
            put_minute(rollups, key, minute.minute, rev, &state).await
        })
        .buffer_unordered(CONCURRENT_MINUTES)
        .try_collect()
        .await?;
    report.minutes = written.iter().filter(|w| **w).count();
    let mut changed: BTreeSet<DateTime<Utc>> = slice.iter().map(|p| p.minute).collect();
    let mut granularity = Granularity::Minute;
    while let Some(parent) = granularity.parent() {
        let starts: BTreeSet<DateTime<Utc>> = changed.iter().map(|t| parent.floor(*t)).collect();
        for start in &starts {
            if rebuild(rollups, key, granularity, parent, *start).await? {
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
        rollups.note_rolled(exporters, key, through).await?;
    }
    let settled: Vec<bool> = stream::iter(slice)
        .map(|minute| work.settle(minute))
        .buffer_unordered(CONCURRENT_MINUTES)
        .try_collect()
        .await?;
    report.left_pending = settled.iter().filter(|s| !**s).count();
    Ok(report)
}

/// Writes a minute rollup with its counter delta, re-reading the stored revision (and
/// the totals, when the delta names error types: the cap on them) when another writer
/// moved them. Returns whether this call wrote.
async fn put_minute(
    rollups: &impl RollupStore,
    key: ModelRef<'_>,
    minute: DateTime<Utc>,
    rev: u64,
    state: &WindowState,
) -> StoreResult<bool> {
    let end = minute + Granularity::Minute.length();
    for _ in 0..MINUTE_ATTEMPTS {
        let previous = rollups
            .rollups(key, Granularity::Minute, TimeSpan::new(minute, end))
            .await?
            .pop();
        if previous.as_ref().is_some_and(|p| p.rev >= rev) {
            return Ok(false);
        }
        let empty = WindowState::default();
        let before = previous.as_ref().map_or(&empty, |p| &p.state);
        let delta = counter_delta(before, state);
        let rollup = Rollup {
            tenant: key.tenant.clone(),
            model_id: key.model_id.clone(),
            granularity: Granularity::Minute,
            start: minute,
            rev,
            state: state.clone(),
        };
        let totals = if names_error_types(&delta) {
            rollups.counter_totals(key).await?
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
        source: format!("the stored revision of {key} at {minute} kept changing").into(),
    })
}

/// Re-merges the `parent` rollup starting at `start` from its `part` rollups.
async fn rebuild(
    rollups: &impl RollupStore,
    key: ModelRef<'_>,
    part: Granularity,
    parent: Granularity,
    start: DateTime<Utc>,
) -> StoreResult<bool> {
    let parts = rollups
        .rollups(key, part, TimeSpan::new(start, start + parent.length()))
        .await?;
    let rev = parts.iter().map(|p| p.rev).sum();
    let state = WindowState::merged(parts.into_iter().map(|p| p.state)).map_err(|e| {
        StoreError::inconsistent(format!("{part:?} rollups of {key} from {start}"), e)
    })?;
    rollups
        .put_rollup(&Rollup {
            tenant: key.tenant.clone(),
            model_id: key.model_id.clone(),
            granularity: parent,
            start,
            rev,
            state,
        })
        .await
}

#[cfg(test)]
mod tests;

//! Aggregation: what the scheduled `aggregate` function runs — partials rolled up into
//! minute, hour and day rollups ([`rollup`]) with the counter totals they bring
//! (`domain::totals`: the delta of a minute, the cap on named error types), then the
//! closed minutes exported through the [`MetricsExporter`]s ([`export`]).

mod export;
mod rollup;
#[cfg(test)]
mod totals_tests;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

pub use export::{ExportReport, export_lagging};
pub use rollup::{
    Backlog, ExportTargets, LeftWork, ModelRollupReport, RollupFailure, RollupReport, roll_up,
};

use crate::error::StoreResult;
use crate::ports::{ExportCursors, MetricsExporter, PendingWork, RollupStore};
use crate::schedule::ScheduledRun;

/// What one aggregation run did: its answer, and what it logs.
#[derive(Debug, Clone, Serialize)]
pub struct AggregationReport {
    /// The time the run was for.
    pub run_time: DateTime<Utc>,
    /// The roll-up, both stages; `left` is what the deadline left for the next run.
    pub rollups: RollupReport,
    /// One entry per configured exporter, both stages.
    pub exports: Vec<ExportReport>,
    /// Whether the run stopped starting work because its deadline came.
    pub deadline_reached: bool,
}

/// The aggregation service: the stores and exporters of the `aggregate` function,
/// built once at cold start.
#[derive(Debug)]
pub struct Aggregator<W, R, C, P> {
    /// Pending minutes and their partials.
    pub pending: W,
    /// Rollups, counters and export cursors.
    pub rollups: R,
    /// The CloudWatch exporter, unless `CLOUDWATCH_METRICS` is `off`.
    pub cloudwatch: Option<C>,
    /// The Prometheus exporter, when a remote-write URL is configured.
    pub prometheus: Option<P>,
    /// The segment keys exported besides models and versions (`EXPORTED_SEGMENT_KEYS`).
    pub exported_segment_keys: Vec<String>,
}

impl<W: PendingWork, R: RollupStore + ExportCursors, C: MetricsExporter, P: MetricsExporter>
    Aggregator<W, R, C, P>
{
    /// One run of [`run_aggregation`], its counters stamped with the clock (never
    /// before the run time), logged.
    pub async fn run(&self, run: ScheduledRun) -> StoreResult<AggregationReport> {
        let report = run_aggregation(
            &self.pending,
            &self.rollups,
            self.cloudwatch.as_ref(),
            self.prometheus.as_ref(),
            &self.exported_segment_keys,
            &run,
            Utc::now().max(run.run_time),
        )
        .await?;
        tracing::info!(
            models = report.rollups.models,
            minutes = report.rollups.rolled.minutes,
            hours = report.rollups.rolled.hours,
            days = report.rollups.rolled.days,
            failures = report.rollups.failures.len(),
            left_models = report.rollups.left.models,
            left_minutes = report.rollups.left.minutes,
            shards = ?run.shards,
            deadline_reached = report.deadline_reached,
            exports = ?report.exports,
            "aggregate run"
        );
        Ok(report)
    }
}

/// One aggregation run of `run`'s shards, bounded by its deadline, in four stages that
/// each start work only until their share of the time is used (a share left unused
/// passes to the next stage):
/// 1. the freshest slice (newest hour) of every model with closed pending minutes,
///    models round-robin across tenants (until 40 % of the time);
/// 2. every configured exporter delivers what lags (until 60 %);
/// 3. the backlogs, read again, slice by slice, round after round (until 80 %);
/// 4. the exporters again, if stage 3 rolled anything or stage 2 left models lagging.
///
/// So every model's fresh minutes are rolled and exported before any backlog is
/// worked down, and what the deadline leaves stays pending or lagging for the next
/// run. An exporter that fails is retried next run and does not stop the others. The
/// exporters export every model and version, and the segments of `segment_keys`.
/// `export_time` stamps the cumulative counters: the clock when the run starts (never
/// before the run time, so a retried invocation of the same scheduled event never
/// sends a second counter value at the same timestamp); stage 4 stamps them a
/// millisecond later.
pub async fn run_aggregation<W, R, C, P>(
    pending: &W,
    rollups: &R,
    cloudwatch: Option<&C>,
    prometheus: Option<&P>,
    segment_keys: &[String],
    run: &ScheduledRun,
    export_time: DateTime<Utc>,
) -> StoreResult<AggregationReport>
where
    W: PendingWork,
    R: RollupStore + ExportCursors,
    C: MetricsExporter,
    P: MetricsExporter,
{
    let stage = |fifths| run.deadline.share(fifths, 5);
    let (fresh_until, export_until, backlog_until) = (stage(2), stage(3), stage(4));
    let names: Vec<&str> = [
        cloudwatch.map(MetricsExporter::name),
        prometheus.map(MetricsExporter::name),
    ]
    .into_iter()
    .flatten()
    .collect();
    let targets = ExportTargets {
        exporters: &names,
        segment_keys,
    };

    let mut backlog = Backlog::read(pending, run).await?;
    let mut report = backlog
        .roll(pending, rollups, targets, 1, fresh_until)
        .await;
    let first = run.until(export_until);
    let mut exports = export_all(rollups, cloudwatch, prometheus, export_time, &first).await?;

    let mut backlog = Backlog::read(pending, run).await?;
    let rest = backlog
        .roll(pending, rollups, targets, usize::MAX, backlog_until)
        .await;
    let rolled_more = rest.rolled.minutes > 0 || rest.rolled.left_pending > 0;
    let export_left = exports.iter().any(|e| e.left > 0);
    report.merge(rest);
    if rolled_more || export_left {
        // Later than stage 2's stamp, so no counter repeats a timestamp.
        let later = export_time + TimeDelta::milliseconds(1);
        let again = export_all(rollups, cloudwatch, prometheus, later, run).await?;
        for (first, second) in exports.iter_mut().zip(again) {
            first.merge(second);
        }
    }
    let deadline_reached = report.left.minutes > 0 || exports.iter().any(|e| e.left > 0);
    Ok(AggregationReport {
        run_time: run.run_time,
        rollups: report,
        exports,
        deadline_reached,
    })
}

/// Every configured exporter's export of what lags in `run`'s shards (CloudWatch
/// first, then Prometheus).
async fn export_all<R, C, P>(
    rollups: &R,
    cloudwatch: Option<&C>,
    prometheus: Option<&P>,
    as_of: DateTime<Utc>,
    run: &ScheduledRun,
) -> StoreResult<Vec<ExportReport>>
where
    R: RollupStore + ExportCursors,
    C: MetricsExporter,
    P: MetricsExporter,
{
    let mut exports = Vec::new();
    if let Some(exporter) = cloudwatch {
        exports.push(export_lagging(rollups, exporter, as_of, run).await?);
    }
    if let Some(exporter) = prometheus {
        exports.push(export_lagging(rollups, exporter, as_of, run).await?);
    }
    Ok(exports)
}

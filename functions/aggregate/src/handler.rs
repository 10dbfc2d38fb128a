//! One scheduled run: event → roll-up and exports → report.

use std::time::Duration;

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use modelwatch::aggregate::{AggregationReport, run_aggregation};
use modelwatch::ports::{ExportCursors, MetricsExporter, PendingWork, RollupStore};
use modelwatch::schedule::ScheduledTrigger;

/// The aggregate function's dependencies, built once at cold start.
pub struct Aggregate<W, R, C, P> {
    /// Pending minutes and their partials.
    pub pending: W,
    /// Rollups, counters and export cursors.
    pub rollups: R,
    /// The CloudWatch exporter, unless `CLOUDWATCH_METRICS` is `off`.
    pub cloudwatch: Option<C>,
    /// The Prometheus exporter, when a remote-write URL is configured.
    pub prometheus: Option<P>,
    /// The schedule's interval: a run ends before the next is due.
    pub interval: Duration,
}

impl<W, R, C, P> Aggregate<W, R, C, P>
where
    W: PendingWork,
    R: RollupStore + ExportCursors,
    C: MetricsExporter,
    P: MetricsExporter,
{
    /// Handles one schedule invocation, bounded by the invocation's deadline (what it
    /// leaves is the next run's). Fails (so the schedule retries) only when the stores
    /// cannot be read; a model or an exporter that fails is reported and retried on
    /// the next run.
    pub async fn handle(
        &self,
        event: LambdaEvent<ScheduledTrigger>,
    ) -> Result<AggregationReport, Error> {
        let run = event.payload.run(event.context.deadline, self.interval)?;
        let report = run_aggregation(
            &self.pending,
            &self.rollups,
            self.cloudwatch.as_ref(),
            self.prometheus.as_ref(),
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
            deadline_reached = report.deadline_reached,
            exports = ?report.exports,
            "aggregate run"
        );
        Ok(report)
    }
}

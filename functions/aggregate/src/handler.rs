//! One invocation: a schedule's trigger (fanned out to the shard workers, or run
//! here), or shard work from the queue → roll-up and exports → report.

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use modelwatch::aggregate::{AggregationReport, run_aggregation};
use modelwatch::error::StoreError;
use modelwatch::ports::{ExportCursors, MetricsExporter, PendingWork, RollupStore, ShardQueue};
use modelwatch::schedule::{Answer, Invocation, ScheduledRun, ShardWork};

/// The aggregate function's dependencies, built once at cold start.
pub struct Aggregate<W, R, C, P, Q> {
    /// Pending minutes and their partials.
    pub pending: W,
    /// Rollups, counters and export cursors.
    pub rollups: R,
    /// The CloudWatch exporter, unless `CLOUDWATCH_METRICS` is `off`.
    pub cloudwatch: Option<C>,
    /// The Prometheus exporter, when a remote-write URL is configured.
    pub prometheus: Option<P>,
    /// The shard workers' queue and the schedule's interval.
    pub work: ShardWork<Q>,
}

impl<W, R, C, P, Q> Aggregate<W, R, C, P, Q>
where
    W: PendingWork,
    R: RollupStore + ExportCursors,
    C: MetricsExporter,
    P: MetricsExporter,
    Q: ShardQueue,
{
    /// Handles one invocation, each run bounded by the invocation's deadline (what it
    /// leaves is the next run's). Fails (so the schedule retries) only when the stores
    /// or the queue cannot be reached; a model or an exporter that fails is reported
    /// and retried on the next run, a queued message that fails is delivered again.
    pub async fn handle(
        &self,
        event: LambdaEvent<Invocation>,
    ) -> Result<Answer<AggregationReport>, Error> {
        let deadline = event.context.deadline;
        Ok(self
            .work
            .handle(event.payload, deadline, |run| self.run(run))
            .await?)
    }

    /// One run over its shards.
    async fn run(&self, run: ScheduledRun) -> Result<AggregationReport, StoreError> {
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
            shards = ?run.shards,
            deadline_reached = report.deadline_reached,
            exports = ?report.exports,
            "aggregate run"
        );
        Ok(report)
    }
}

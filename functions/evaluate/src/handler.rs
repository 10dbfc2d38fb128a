//! One invocation: a schedule's trigger (fanned out to the shard workers, or run
//! here), or shard work from the queue → evaluation of the active models → report.

use lambda_runtime::{Error, LambdaEvent};
use modelwatch::alerting::service::{EvaluationReport, Evaluator};
use modelwatch::error::StoreError;
use modelwatch::ports::{
    AlertNotifier, AlertStore, ModelRegistry, ModelSettingsStore, RollupStore, SeriesWriter,
    ShardQueue,
};
use modelwatch::schedule::{Answer, Invocation, ScheduledRun, ShardWork};

/// The evaluate function's dependencies, built once at cold start.
pub struct Evaluate<R, S, M, A, N, P, Q> {
    /// The evaluation service over the stores, the alert topic and Prometheus.
    pub evaluator: Evaluator<R, S, M, A, N, P>,
    /// The shard workers' queue and the schedule's interval.
    pub work: ShardWork<Q>,
}

impl<R, S, M, A, N, P, Q> Evaluate<R, S, M, A, N, P, Q>
where
    R: ModelRegistry,
    S: RollupStore,
    M: ModelSettingsStore,
    A: AlertStore,
    N: AlertNotifier,
    P: SeriesWriter,
    Q: ShardQueue,
{
    /// Handles one invocation, each run bounded by the invocation's deadline. Fails
    /// (so the schedule retries) only when the registry or the queue cannot be
    /// reached; a model or a notification that fails is reported and retried on the
    /// next run, its state unchanged; a queued message that fails is delivered again.
    pub async fn handle(
        &self,
        event: LambdaEvent<Invocation>,
    ) -> Result<Answer<EvaluationReport>, Error> {
        let deadline = event.context.deadline;
        Ok(self
            .work
            .handle(event.payload, deadline, |run| self.run(run))
            .await?)
    }

    /// One run over its shards.
    async fn run(&self, run: ScheduledRun) -> Result<EvaluationReport, StoreError> {
        let report = self.evaluator.run(&run).await?;
        tracing::info!(
            models = report.models,
            left = report.left,
            rules = report.rules,
            firing = report.firing,
            insufficient_data = report.insufficient_data,
            notifications = report.notifications,
            baselines_captured = report.baselines_captured,
            trends_updated = report.trends_updated,
            prometheus = ?report.prometheus,
            failures = report.failures.len(),
            shards = ?run.shards,
            "evaluate run"
        );
        Ok(report)
    }
}

//! One scheduled run: event → evaluation of every active model → report.

use lambda_runtime::{Error, LambdaEvent};
use modelwatch::alerting::service::{EvaluationReport, Evaluator};
use modelwatch::ports::{
    AlertNotifier, AlertStore, ModelRegistry, ModelSettingsStore, RollupStore, SeriesWriter,
};
use modelwatch::schedule::ScheduledTrigger;

/// The evaluate function's dependencies, built once at cold start.
pub struct Evaluate<R, S, M, A, N, P> {
    /// The evaluation service over the stores, the alert topic and Prometheus.
    pub evaluator: Evaluator<R, S, M, A, N, P>,
}

impl<R, S, M, A, N, P> Evaluate<R, S, M, A, N, P>
where
    R: ModelRegistry,
    S: RollupStore,
    M: ModelSettingsStore,
    A: AlertStore,
    N: AlertNotifier,
    P: SeriesWriter,
{
    /// Handles one schedule invocation, bounded by the invocation's deadline. Fails (so the schedule retries) only when the
    /// registry cannot be read; a model or a notification that fails is reported and
    /// retried on the next run, its state unchanged.
    pub async fn handle(
        &self,
        event: LambdaEvent<ScheduledTrigger>,
    ) -> Result<EvaluationReport, Error> {
        let run = event.payload.run(
            event.context.deadline,
            self.evaluator.perf.monitoring_interval,
        )?;
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
            "evaluate run"
        );
        Ok(report)
    }
}

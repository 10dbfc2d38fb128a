//! One scheduled run: event → evaluation of every active model → report.

use chrono::{TimeDelta, Utc};
use lambda_runtime::{Error, LambdaEvent};
use modelwatch::alerting::service::{EvaluationReport, Evaluator};
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::ports::SeriesWriter;
use modelwatch::ports::{
    AlertNotifier, AlertStore, ModelRegistry, ModelSettingsStore, RollupStore,
};
use modelwatch::schedule::ScheduledTrigger;
use modelwatch::summary::WindowReader;

/// The evaluate function's dependencies, built once at cold start.
pub struct Evaluate<R, S, M, A, N, P> {
    /// The model registry.
    pub registry: R,
    /// The rollups.
    pub rollups: S,
    /// How long minute rollups are kept after their start.
    pub minute_retention: TimeDelta,
    /// Baselines, rules, trends.
    pub settings: M,
    /// Rule states and alert history.
    pub alerts: A,
    /// The alert topic.
    pub notifier: N,
    /// Where baselines, thresholds and firing rules are written, when a remote-write
    /// URL is configured.
    pub prometheus: Option<P>,
    /// The specification's thresholds.
    pub perf: PerfSettings,
    /// Minimum samples and re-notification.
    pub alerting: AlertSettings,
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
    /// Handles one schedule invocation. Fails (so the schedule retries) only when the
    /// registry cannot be read; a model or a notification that fails is reported and
    /// retried on the next run, its state unchanged.
    pub async fn handle(
        &self,
        event: LambdaEvent<ScheduledTrigger>,
    ) -> Result<EvaluationReport, Error> {
        let evaluator = Evaluator {
            registry: &self.registry,
            window: WindowReader {
                rollups: &self.rollups,
                minute_retention: self.minute_retention,
            },
            settings: &self.settings,
            alerts: &self.alerts,
            notifier: &self.notifier,
            prometheus: self.prometheus.as_ref(),
            perf: &self.perf,
            alerting: &self.alerting,
        };
        let report = evaluator.run(event.payload.run_time(Utc::now())).await?;
        tracing::info!(
            models = report.models,
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

//! One scheduled run: event → domain → report.

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use modelwatch::ports::ModelRegistry;
use modelwatch::schedule::{RunReport, ScheduledTrigger};

/// Handles one schedule invocation.
pub async fn handle(
    registry: &impl ModelRegistry,
    event: LambdaEvent<ScheduledTrigger>,
) -> Result<RunReport, Error> {
    let report = RunReport::for_active_models(registry, event.payload.run_time(Utc::now())).await?;
    tracing::info!(active_models = report.active_models, "evaluate run");
    Ok(report)
}

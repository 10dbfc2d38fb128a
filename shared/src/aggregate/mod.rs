//! Aggregation: what the scheduled `aggregate` function runs — partials rolled up into
//! minute, hour and day rollups ([`rollup`]) with the counter totals they bring
//! (`domain::totals`: the delta of a minute, the cap on named error types), then the
//! closed minutes exported through the [`MetricsExporter`]s ([`export`]).

mod export;
mod rollup;
#[cfg(test)]
mod totals_tests;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use export::{ExportReport, export_lagging};
pub use rollup::{ModelRollupReport, RollupFailure, RollupReport, roll_up};

use crate::error::StoreError;
use crate::ports::{ExportCursors, MetricsExporter, PendingWork, RollupStore};

/// What one aggregation run did: its answer, and what it logs.
#[derive(Debug, Clone, Serialize)]
pub struct AggregationReport {
    /// The time the run was for.
    pub run_time: DateTime<Utc>,
    /// The roll-up.
    pub rollups: RollupReport,
    /// One entry per configured exporter.
    pub exports: Vec<ExportReport>,
}

/// One aggregation run at `run_time`: roll up every closed pending minute, then let
/// each exporter deliver what it has not yet. An exporter that fails is retried next
/// run and does not stop the others. `export_time` stamps the cumulative counters:
/// the clock when the export happens (never before `run_time`), so a retried
/// invocation of the same scheduled event never sends a second counter value at the
/// same timestamp.
pub async fn run_aggregation<W, R, C, P>(
    pending: &W,
    rollups: &R,
    cloudwatch: &C,
    prometheus: Option<&P>,
    run_time: DateTime<Utc>,
    export_time: DateTime<Utc>,
) -> Result<AggregationReport, StoreError>
where
    W: PendingWork,
    R: RollupStore + ExportCursors,
    C: MetricsExporter,
    P: MetricsExporter,
{
    let mut names = vec![cloudwatch.name()];
    names.extend(prometheus.map(MetricsExporter::name));
    let report = roll_up(pending, rollups, run_time, &names).await?;
    let mut exports = vec![export_lagging(rollups, cloudwatch, export_time).await?];
    if let Some(exporter) = prometheus {
        exports.push(export_lagging(rollups, exporter, export_time).await?);
    }
    Ok(AggregationReport {
        run_time,
        rollups: report,
        exports,
    })
}

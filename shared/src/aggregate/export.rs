//! Exports after each run: the closed minutes' metrics to CloudWatch and Prometheus.
//!
//! Every exporter keeps a cursor per model (`through`: the end of the last minute it
//! delivered) next to what aggregation has rolled (`rolled_through`). A run exports
//! every model whose cursor lags — those rolled in this run and those whose earlier
//! export failed — and advances the cursor only after delivery, so a failed export is
//! retried on the next run and loses nothing. A receiver that refuses data as invalid
//! (a 4xx other than 429) is logged and the cursor advanced: resending would fail again.
//!
//! Values come from [`MetricSet`], the one definition of every metric. Gauges are
//! stamped with their minute's end; Prometheus counters and the latency summary's
//! `_sum`/`_count` are cumulative since the model's first prediction, read from the
//! counter totals stored with the rollups, stamped with the export time (so they only
//! go forward in time and value, also across late data and retried runs).

use crate::domain::ids::ModelRef;
use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, future, stream};
use serde::Serialize;

use crate::domain::{Granularity, MetricSet, ModelExport, TimeSpan};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ExportCursor, ExportCursors, ExportFailure, MetricsExporter, RollupStore};
use crate::schedule::{ScheduledRun, round_robin};

/// At most this much backlog is exported for one model in one run (a model whose
/// exports failed for longer catches up with its latest hour).
const MAX_BACKLOG: TimeDelta = TimeDelta::hours(1);
/// Models read at once while preparing an export, and cursors advanced at once.
const CONCURRENT_MODELS: usize = 32;

/// What one exporter did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// The exporter.
    pub exporter: &'static str,
    /// Models whose cursors lagged and were exported (or tried).
    pub models: usize,
    /// Minutes exported (summed over models).
    pub minutes: usize,
    /// `delivered` (every request), `rejected` (some model's data refused as invalid,
    /// the rest delivered) or `retry_next_run` (some request failed: its models are
    /// tried again next run).
    pub outcome: &'static str,
    /// Models whose data the receiver refused as invalid (skipped, logged).
    pub rejected: usize,
    /// Models whose request failed (their cursors stay: the next run retries them).
    pub retrying: usize,
    /// Lagging models not prepared before the deadline (exported next run).
    pub left: usize,
}

/// Exports the lagging models of `run`'s shards to `exporter` with counters stamped
/// `as_of`, taken round-robin across tenants while the run's deadline allows reading
/// them, in the requests the
/// exporter groups them into, and advances the cursors of each request delivered. A
/// request that fails leaves only its own models for the next run; one refused as
/// invalid is split in halves and sent again until the refused model is alone, whose
/// data is then skipped (resending would fail again) — no other model's data is moved,
/// blocked or dropped by it.
pub async fn export_lagging<R, E>(
    rollups: &R,
    exporter: &E,
    as_of: DateTime<Utc>,
    run: &ScheduledRun,
) -> StoreResult<ExportReport>
where
    R: RollupStore + ExportCursors,
    E: MetricsExporter,
{
    let lagging = rollups
        .lagging_cursors(exporter.name(), run.shards.clone())
        .await?;
    let lagging = round_robin(lagging.into_iter().map(|c| (c.tenant.clone(), c)));
    let prepared: Vec<(&ExportCursor, ModelExport)> = stream::iter(&lagging)
        .take_while(|_| future::ready(!run.deadline.passed()))
        .map(|cursor| async move {
            Ok::<_, StoreError>((cursor, prepare(rollups, cursor, as_of).await?))
        })
        .buffered(CONCURRENT_MODELS)
        .try_collect()
        .await?;
    let (cursors, exports): (Vec<&ExportCursor>, Vec<ModelExport>) = prepared.into_iter().unzip();
    let mut report = ExportReport {
        exporter: exporter.name(),
        models: exports.len(),
        minutes: exports.iter().map(|e| e.minutes.len()).sum(),
        outcome: "delivered",
        rejected: 0,
        retrying: 0,
        left: lagging.len() - exports.len(),
    };
    // The requests still to send, as ranges of `exports`; the first on top.
    let mut requests: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    for size in exporter.request_groups(&exports) {
        requests.push(start..start + size);
        start += size;
    }
    requests.retain(|range| !range.is_empty());
    requests.reverse();
    while let Some(range) = requests.pop() {
        let delivered = match exporter.export(&exports[range.clone()]).await {
            Ok(()) => true,
            Err(ExportFailure::Unavailable(err)) => {
                // The receiver is down: what is not sent yet waits for the next run too.
                let waiting =
                    range.len() + requests.iter().map(ExactSizeIterator::len).sum::<usize>();
                tracing::warn!(exporter = exporter.name(), models = waiting, error = %err, "export failed; retrying these models next run");
                report.retrying += waiting;
                requests.clear();
                false
            }
            Err(ExportFailure::Rejected(_)) if range.len() > 1 => {
                let middle = range.start + range.len() / 2;
                requests.push(middle..range.end);
                requests.push(range.start..middle);
                false
            }
            Err(ExportFailure::Rejected(err)) => {
                let model = &exports[range.start];
                tracing::error!(exporter = exporter.name(), tenant = %model.tenant, model_id = %model.model_id, error = %err, "export refused; skipping this model's minutes");
                report.rejected += 1;
                true
            }
        };
        if delivered {
            stream::iter(cursors[range.clone()].iter().zip(&exports[range]))
                .map(|(cursor, export)| {
                    rollups.advance_cursor(exporter.name(), cursor, export.through)
                })
                .buffer_unordered(CONCURRENT_MODELS)
                .try_collect::<()>()
                .await?;
        }
    }
    report.outcome = if report.retrying > 0 {
        "retry_next_run"
    } else if report.rejected > 0 {
        "rejected"
    } else {
        "delivered"
    };
    Ok(report)
}

impl ExportReport {
    /// Adds a later export of the same exporter in the same run: the counts add up, and
    /// the outcome is the worse of the two (a retry over a refusal over a delivery).
    pub fn merge(&mut self, later: Self) {
        let rank = |outcome| match outcome {
            "retry_next_run" => 2,
            "rejected" => 1,
            _ => 0,
        };
        if rank(later.outcome) > rank(self.outcome) {
            self.outcome = later.outcome;
        }
        self.models += later.models;
        self.minutes += later.minutes;
        self.rejected += later.rejected;
        self.retrying += later.retrying;
        self.left = later.left;
    }
}

/// Reads one lagging model's closed minutes and counters.
async fn prepare<R: RollupStore>(
    rollups: &R,
    cursor: &ExportCursor,
    as_of: DateTime<Utc>,
) -> StoreResult<ModelExport> {
    let to = cursor.rolled_through;
    let from = cursor
        .through
        .map_or(to - MAX_BACKLOG, |t| t.max(to - MAX_BACKLOG));
    let minutes = rollups
        .rollups(
            ModelRef::new(&cursor.tenant, &cursor.model_id),
            Granularity::Minute,
            TimeSpan::new(from, to),
        )
        .await?
        .into_iter()
        .map(|rollup| {
            let span = TimeSpan {
                start: rollup.start,
                end: rollup.start + Granularity::Minute.length(),
            };
            (rollup.start, MetricSet::compute(&rollup.state, span, None))
        })
        .collect();
    Ok(ModelExport {
        tenant: cursor.tenant.clone(),
        model_id: cursor.model_id.clone(),
        minutes,
        totals: rollups
            .counter_totals(ModelRef::new(&cursor.tenant, &cursor.model_id))
            .await?,
        as_of,
        through: to,
    })
}

#[cfg(test)]
mod tests;

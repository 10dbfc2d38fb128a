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

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, future, stream};
use serde::Serialize;

use crate::domain::{Granularity, MetricSet, ModelExport, TimeSpan};
use crate::error::StoreError;
use crate::ports::{ExportCursor, ExportCursors, ExportFailure, MetricsExporter, RollupStore};
use crate::schedule::{Deadline, round_robin};

/// At most this much backlog is exported for one model in one run (a model whose
/// exports failed for longer catches up with its latest hour).
const MAX_BACKLOG: TimeDelta = TimeDelta::hours(1);
/// Models read at once while preparing an export.
const CONCURRENT_MODELS: usize = 8;

/// What one exporter did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// The exporter.
    pub exporter: &'static str,
    /// Models whose cursors lagged and were exported (or tried).
    pub models: usize,
    /// Minutes exported (summed over models).
    pub minutes: usize,
    /// `delivered`, `retry_next_run` or `rejected`.
    pub outcome: &'static str,
    /// Lagging models not prepared before the deadline (exported next run).
    pub left: usize,
}

/// Exports the lagging models of `exporter` with counters stamped `as_of`, taken
/// round-robin across tenants while `deadline` allows reading them, and advances the
/// cursors it delivered; the rest stay lagging for the next run.
pub async fn export_lagging<R, E>(
    rollups: &R,
    exporter: &E,
    as_of: DateTime<Utc>,
    deadline: Deadline,
) -> Result<ExportReport, StoreError>
where
    R: RollupStore + ExportCursors,
    E: MetricsExporter,
{
    let lagging = rollups.lagging_cursors(exporter.name()).await?;
    let lagging = round_robin(lagging.into_iter().map(|c| (c.tenant.clone(), c)));
    let prepared: Vec<(&ExportCursor, ModelExport)> = stream::iter(&lagging)
        .take_while(|_| future::ready(!deadline.passed()))
        .map(|cursor| async move {
            Ok::<_, StoreError>((cursor, prepare(rollups, cursor, as_of).await?))
        })
        .buffered(CONCURRENT_MODELS)
        .try_collect()
        .await?;
    let (cursors, exports): (Vec<&ExportCursor>, Vec<ModelExport>) = prepared.into_iter().unzip();
    let report = |outcome| ExportReport {
        exporter: exporter.name(),
        models: exports.len(),
        minutes: exports.iter().map(|e| e.minutes.len()).sum(),
        outcome,
        left: lagging.len() - exports.len(),
    };
    let outcome = match exporter.export(&exports).await {
        Ok(()) => "delivered",
        Err(ExportFailure::Rejected(err)) => {
            tracing::error!(exporter = exporter.name(), error = %err, "export refused; skipping these minutes");
            "rejected"
        }
        Err(ExportFailure::Unavailable(err)) => {
            tracing::warn!(exporter = exporter.name(), error = %err, "export failed; retrying next run");
            return Ok(report("retry_next_run"));
        }
    };
    for (cursor, export) in cursors.iter().zip(&exports) {
        rollups
            .advance_cursor(exporter.name(), cursor, export.through)
            .await?;
    }
    Ok(report(outcome))
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
        self.left = later.left;
    }
}

/// Reads one lagging model's closed minutes and counters.
async fn prepare<R: RollupStore>(
    rollups: &R,
    cursor: &ExportCursor,
    as_of: DateTime<Utc>,
) -> Result<ModelExport, StoreError> {
    let to = cursor.rolled_through;
    let from = cursor
        .through
        .map_or(to - MAX_BACKLOG, |t| t.max(to - MAX_BACKLOG));
    let minutes = rollups
        .rollups(
            &cursor.tenant,
            &cursor.model_id,
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
            .counter_totals(&cursor.tenant, &cursor.model_id)
            .await?,
        as_of,
        through: to,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::adapters::memory::MemoryRollupStore;
    use crate::domain::{CounterDelta, CounterTotals, WindowState};
    use crate::ports::{ExportCursors, Rollup};
    use crate::testing::{at, model, no_deadline, tenant};

    /// Records what it is given; fails while `down` is set.
    #[derive(Default)]
    struct RecordingExporter {
        down: AtomicBool,
        delivered: Mutex<Vec<ModelExport>>,
    }

    impl MetricsExporter for RecordingExporter {
        fn name(&self) -> &'static str {
            "recording"
        }
        async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
            if self.down.load(Ordering::SeqCst) {
                return Err(ExportFailure::Unavailable("receiver down".into()));
            }
            self.delivered
                .lock()
                .expect("lock")
                .extend_from_slice(models);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_export_is_retried_next_run_and_then_not_again() {
        let store = MemoryRollupStore::default();
        let (tenant, model) = (tenant("t1"), model("m1"));
        let state = WindowState::default();
        for minute in ["2026-11-28T10:14:00Z", "2026-11-28T10:15:00Z"] {
            let rollup = Rollup {
                tenant: tenant.clone(),
                model_id: model.clone(),
                granularity: Granularity::Minute,
                start: at(minute),
                rev: 1,
                state: state.clone(),
            };
            store
                .put_minute_rollup(&rollup, None, &CounterDelta::default())
                .await
                .expect("put");
        }
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:16:00Z"))
            .await
            .expect("note");
        let exporter = RecordingExporter::default();
        exporter.down.store(true, Ordering::SeqCst);
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:16:30Z"), no_deadline())
            .await
            .expect("run");
        assert_eq!(report.outcome, "retry_next_run");
        assert_eq!(report.minutes, 2);

        exporter.down.store(false, Ordering::SeqCst);
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:17:30Z"), no_deadline())
            .await
            .expect("run");
        assert_eq!((report.outcome, report.minutes), ("delivered", 2));
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:18:30Z"), no_deadline())
            .await
            .expect("run");
        assert_eq!(
            (report.models, report.minutes),
            (0, 0),
            "nothing lags any more"
        );
        let delivered = exporter.delivered.lock().expect("lock");
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].minutes.len(), 2);
    }

    #[tokio::test]
    async fn a_late_roll_up_behind_the_cursor_re_exports_the_counters_only() {
        let store = MemoryRollupStore::default();
        let (tenant, model) = (tenant("t1"), model("m1"));
        let rollup = |minute: &str, rev: u64| Rollup {
            tenant: tenant.clone(),
            model_id: model.clone(),
            granularity: Granularity::Minute,
            start: at(minute),
            rev,
            state: WindowState::default(),
        };
        let delta = |ok: u64| CounterDelta {
            add: CounterTotals {
                ok,
                ..CounterTotals::default()
            },
            ..CounterDelta::default()
        };
        store
            .put_minute_rollup(&rollup("2026-11-28T10:15:00Z", 1), None, &delta(4))
            .await
            .expect("put");
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:16:00Z"))
            .await
            .expect("note");
        let exporter = RecordingExporter::default();
        export_lagging(&store, &exporter, at("2026-11-28T10:16:30Z"), no_deadline())
            .await
            .expect("run");
        // Late data for an earlier minute: rolled up, noted behind the cursor.
        store
            .put_minute_rollup(&rollup("2026-11-28T10:05:00Z", 1), None, &delta(600))
            .await
            .expect("put");
        store
            .note_rolled(&["recording"], &tenant, &model, at("2026-11-28T10:06:00Z"))
            .await
            .expect("note");
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:17:30Z"), no_deadline())
            .await
            .expect("run");
        assert_eq!(
            (report.models, report.minutes),
            (1, 0),
            "counters, no minutes"
        );
        let delivered = exporter.delivered.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 2);
        assert_eq!(delivered[1].totals.ok, 604);
        assert!(
            delivered[1].minutes.is_empty(),
            "exported minutes are not re-sent"
        );
        let report = export_lagging(&store, &exporter, at("2026-11-28T10:18:30Z"), no_deadline())
            .await
            .expect("run");
        assert_eq!(report.models, 0, "nothing lags any more");
    }
}

use crate::domain::ids::ModelRef;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::adapters::memory::MemoryRollupStore;
use crate::domain::{CounterDelta, CounterTotals, WindowState};
use crate::ports::{ExportCursors, Rollup};
use crate::testing::{at, model, run_at, tenant};

/// Records what it is given, `per_request` models a request (all when 0); fails
/// while `down` is set, and from its `fail_from`-th request on (counted from 0);
/// refuses every request that holds the model `refused`.
#[derive(Default)]
struct RecordingExporter {
    down: AtomicBool,
    per_request: usize,
    fail_from: Option<usize>,
    refused: Option<&'static str>,
    requests: Mutex<Vec<Vec<String>>>,
    delivered: Mutex<Vec<ModelExport>>,
}

impl MetricsExporter for RecordingExporter {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        let per = if self.per_request == 0 {
            models.len().max(1)
        } else {
            self.per_request
        };
        models.chunks(per).map(<[ModelExport]>::len).collect()
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        let names: Vec<String> = models.iter().map(|m| m.model_id.to_string()).collect();
        let request = {
            let mut requests = self.requests.lock().expect("lock");
            requests.push(names.clone());
            requests.len() - 1
        };
        if self.down.load(Ordering::SeqCst) || self.fail_from.is_some_and(|k| request >= k) {
            return Err(ExportFailure::Unavailable("receiver down".into()));
        }
        if self
            .refused
            .is_some_and(|bad| names.iter().any(|n| n == bad))
        {
            return Err(ExportFailure::Rejected("a sample is out of bounds".into()));
        }
        self.delivered
            .lock()
            .expect("lock")
            .extend_from_slice(models);
        Ok(())
    }
}

/// A store where each of `models` (tenant t1) has one rolled minute, noted for the
/// `recording` exporter.
async fn rolled(models: &[&str]) -> MemoryRollupStore {
    let store = MemoryRollupStore::default();
    for name in models {
        let rollup = Rollup {
            tenant: tenant("t1"),
            model_id: model(name),
            granularity: Granularity::Minute,
            start: at("2026-11-28T10:15:00Z"),
            rev: 1,
            state: WindowState::default(),
        };
        store
            .put_minute_rollup(&rollup, None, &CounterDelta::default())
            .await
            .expect("put");
        store
            .note_rolled(
                &["recording"],
                ModelRef::new(&tenant("t1"), &model(name)),
                at("2026-11-28T10:16:00Z"),
            )
            .await
            .expect("note");
    }
    store
}

fn delivered_models(exporter: &RecordingExporter) -> Vec<String> {
    let delivered = exporter.delivered.lock().expect("lock");
    let mut names: Vec<String> = delivered.iter().map(|m| m.model_id.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_refused_request_is_split_until_the_refused_model_is_alone() {
    let models = ["a", "b", "c", "d", "e"];
    let store = rolled(&models).await;
    let exporter = RecordingExporter {
        refused: Some("c"),
        ..RecordingExporter::default()
    };
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:16:30Z"),
        &run_at(at("2026-11-28T10:16:30Z")),
    )
    .await
    .expect("run");
    assert_eq!(
        (report.outcome, report.rejected, report.retrying),
        ("rejected", 1, 0)
    );
    assert_eq!(delivered_models(&exporter), ["a", "b", "d", "e"]);
    // Every cursor moved (c's data is skipped: resending would be refused again).
    let again = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:17:30Z"),
        &run_at(at("2026-11-28T10:17:30Z")),
    )
    .await
    .expect("run");
    assert_eq!(again.models, 0, "{again:?}");
    // No model was in more than ⌈log₂ 5⌉ + 1 requests.
    let requests = exporter.requests.lock().expect("lock").clone();
    for name in models {
        let sent = requests
            .iter()
            .filter(|r| r.iter().any(|n| n == name))
            .count();
        assert!(sent <= 4, "{name} sent {sent} times: {requests:?}");
    }
}

#[tokio::test]
async fn a_failed_request_sends_nothing_twice_and_keeps_only_its_models() {
    let models = ["a", "b", "c", "d", "e"];
    let store = rolled(&models).await;
    // Two models a request; the second request fails (CloudWatch throttled
    // half-way): the first request's models are delivered and never sent again.
    let exporter = RecordingExporter {
        per_request: 2,
        fail_from: Some(1),
        ..RecordingExporter::default()
    };
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:16:30Z"),
        &run_at(at("2026-11-28T10:16:30Z")),
    )
    .await
    .expect("run");
    assert_eq!((report.outcome, report.retrying), ("retry_next_run", 3));
    let first = delivered_models(&exporter);
    assert_eq!(first.len(), 2);
    let sent = exporter.requests.lock().expect("lock").len();
    assert_eq!(sent, 2, "after a failure the rest waits for the next run");

    let healthy = RecordingExporter {
        per_request: 2,
        ..RecordingExporter::default()
    };
    let report = export_lagging(
        &store,
        &healthy,
        at("2026-11-28T10:17:30Z"),
        &run_at(at("2026-11-28T10:17:30Z")),
    )
    .await
    .expect("run");
    assert_eq!((report.outcome, report.models), ("delivered", 3));
    let mut all = [first, delivered_models(&healthy)].concat();
    all.sort();
    assert_eq!(all, models, "every model delivered exactly once");
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
        .note_rolled(
            &["recording"],
            ModelRef::new(&tenant, &model),
            at("2026-11-28T10:16:00Z"),
        )
        .await
        .expect("note");
    let exporter = RecordingExporter::default();
    exporter.down.store(true, Ordering::SeqCst);
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:16:30Z"),
        &run_at(at("2026-11-28T10:16:30Z")),
    )
    .await
    .expect("run");
    assert_eq!(report.outcome, "retry_next_run");
    assert_eq!(report.minutes, 2);

    exporter.down.store(false, Ordering::SeqCst);
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:17:30Z"),
        &run_at(at("2026-11-28T10:17:30Z")),
    )
    .await
    .expect("run");
    assert_eq!((report.outcome, report.minutes), ("delivered", 2));
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:18:30Z"),
        &run_at(at("2026-11-28T10:18:30Z")),
    )
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
        .note_rolled(
            &["recording"],
            ModelRef::new(&tenant, &model),
            at("2026-11-28T10:16:00Z"),
        )
        .await
        .expect("note");
    let exporter = RecordingExporter::default();
    export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:16:30Z"),
        &run_at(at("2026-11-28T10:16:30Z")),
    )
    .await
    .expect("run");
    // Late data for an earlier minute: rolled up, noted behind the cursor.
    store
        .put_minute_rollup(&rollup("2026-11-28T10:05:00Z", 1), None, &delta(600))
        .await
        .expect("put");
    store
        .note_rolled(
            &["recording"],
            ModelRef::new(&tenant, &model),
            at("2026-11-28T10:06:00Z"),
        )
        .await
        .expect("note");
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:17:30Z"),
        &run_at(at("2026-11-28T10:17:30Z")),
    )
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
    let report = export_lagging(
        &store,
        &exporter,
        at("2026-11-28T10:18:30Z"),
        &run_at(at("2026-11-28T10:18:30Z")),
    )
    .await
    .expect("run");
    assert_eq!(report.models, 0, "nothing lags any more");
}

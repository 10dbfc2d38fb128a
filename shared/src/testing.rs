//! Fixtures for tests and benchmarks — compiled only for this crate's own tests and for
//! crates that enable the `testing` feature in their dev-dependencies, never into a
//! function: ids, times, a no-op archive, the in-memory ingest service, and window
//! states of a given size.

use chrono::{DateTime, Utc};

use crate::adapters::memory::{MemoryLabelStore, MemoryModelRegistry, MemoryPartialStore};
use crate::domain::ids::{ModelId, TenantId};
use crate::domain::labels::LabelLookback;
use crate::domain::shard::all_shards;
use crate::domain::{Outcome, PredictionRecord, Status, ValidBatch, WindowState};
use crate::error::StoreResult;
use crate::ingest::{BatchLimits, IngestQuotas, IngestService};
use crate::ports::{ArchiveReport, PredictionArchive};
use crate::schedule::{Deadline, ScheduledRun};

/// The tenant `name` (a valid id literal; panics otherwise).
pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("a valid tenant id")
}

/// The model `name` (a valid id literal; panics otherwise).
pub fn model(name: &str) -> ModelId {
    ModelId::parse(name).expect("a valid model id")
}

/// A run at `run_time` of every shard, with a deadline no test reaches (an hour).
pub fn run_at(run_time: DateTime<Utc>) -> ScheduledRun {
    ScheduledRun {
        run_time,
        deadline: Deadline::after(std::time::Duration::from_secs(3600)),
        shards: all_shards(),
    }
}

/// The instant of an RFC 3339 literal (panics on a bad literal).
pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

/// An archive that is never switched on: the type of `IngestService::archive` when it
/// is `None`. Archiving with it is a no-op that writes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoArchive;

impl PredictionArchive for NoArchive {
    async fn archive(&self, _tenant: &TenantId, _batch: &ValidBatch) -> StoreResult<ArchiveReport> {
        Ok(ArchiveReport::default())
    }
}

/// The ingest service over in-memory stores, without an archive.
pub type MemoryIngest =
    IngestService<MemoryModelRegistry, MemoryPartialStore, NoArchive, MemoryLabelStore>;

/// A fresh [`MemoryIngest`] with the default limits.
pub fn memory_ingest() -> MemoryIngest {
    IngestService {
        versions_per_model: crate::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: crate::ingest::SegmentAdmission::default(),
        registry: MemoryModelRegistry::default(),
        partials: MemoryPartialStore::default(),
        archive: None,
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    }
}

/// An ok binary prediction at 2026-12-01T00:00Z (latency 10 ms) with its predicted
/// class, its truth if known, and its score.
pub fn binary_record(predicted: bool, actual: Option<bool>, score: f64) -> PredictionRecord {
    PredictionRecord {
        timestamp: at("2026-12-01T00:00:00Z"),
        latency_ms: 10.0,
        status: Status::Ok,
        error_type: None,
        outcome: Outcome::Binary {
            predicted: Some(predicted),
            actual,
            score: Some(score),
        },
    }
}

/// The binary statistics of `state` (panics for another task).
pub fn binary_stats(state: &WindowState) -> &crate::domain::BinaryStats {
    match state.quality() {
        Some(crate::domain::QualityStats::Binary(stats)) => stats,
        other => panic!("not a binary state: {other:?}"),
    }
}

/// A regression state of `predictions` labeled records at `time` (latency 10 ms,
/// predicted 1.5, actual 1.0).
pub fn regression_state(predictions: usize, time: DateTime<Utc>) -> WindowState {
    let mut state = WindowState::default();
    for _ in 0..predictions {
        state
            .fold_prediction(&PredictionRecord {
                timestamp: time,
                latency_ms: 10.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: Some(1.5),
                    actual: Some(1.0),
                },
            })
            .expect("a valid record");
    }
    state
}

/// A multiclass state that serializes to at least `bytes` bytes (at most about 150 KB:
/// the label cap bounds a state), one correct prediction per long label.
pub fn state_of_size(bytes: usize, time: DateTime<Utc>) -> WindowState {
    let mut state = WindowState::default();
    let mut i = 0;
    // A label adds about 135 bytes: check the size every 64 labels.
    while (i % 64 != 0 || state.to_bytes().len() < bytes) && i < crate::domain::MAX_LABELS {
        let label = format!("{i:0>128}");
        state
            .fold_prediction(&PredictionRecord {
                timestamp: time,
                latency_ms: 1.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Multiclass {
                    predicted: Some(label.clone()),
                    actual: Some(label),
                    score: None,
                },
            })
            .expect("a valid record");
        i += 1;
    }
    state
}

/// A firing alert of `tenant`'s model `fraud-v2`: p95 latency above 250 ms for 15
/// minutes, of `severity`.
pub fn sample_alert(
    tenant: &str,
    severity: crate::domain::alerting::rules::Severity,
) -> crate::domain::alerting::state::AlertRecord {
    use crate::domain::MetricName;
    use crate::domain::alerting::rules::{AlertRule, Condition, RuleWindow};
    use crate::domain::alerting::state::{AlertRecord, AlertState, alert_id};
    let started_at = DateTime::from_timestamp_millis(1_700_000_000_000).expect("time");
    AlertRecord {
        alert_id: alert_id("p95-high", started_at),
        tenant_id: self::tenant(tenant),
        model_id: model("fraud-v2"),
        rule: AlertRule {
            id: "p95-high".into(),
            metric: MetricName::LatencyP95,
            condition: Condition::Above,
            threshold: 250.0,
            window: RuleWindow::from_minutes(15).expect("window"),
            severity,
            min_samples: 50,
            basis: None,
            label_delay: None,
            slice: None,
        },
        state: AlertState::Firing,
        observed_value: Some(312.5),
        baseline: None,
        sample_count: 900,
        window_start: started_at - chrono::TimeDelta::minutes(15),
        window_end: started_at,
        started_at,
        resolved_at: None,
    }
}

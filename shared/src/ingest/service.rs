//! Storing an accepted batch: registry, archive, one partial per minute, pending marks,
//! and a receipt.
//!
//! Order and idempotency: the batch is validated and folded whole before any write.
//! Then its id is claimed for its content (a 128-bit hash of the batch): an id already
//! claimed for different content is refused (`BatchConflict`, 409) before anything is
//! written, so a reused id can neither be counted as a retry nor mix two contents.
//! A batch whose receipt exists was stored completely before: the stored answer is
//! given again with `duplicate: true` and nothing is written. Otherwise the registry
//! sighting goes first (it fixes the model's task, so a conflicting batch
//! is refused before anything else is written); then the archive (Timestream ignores
//! an identical record sent again); then each minute's partial with a condition on its
//! (tenant, model, minute, batch) key, so a retried batch counts once; then the pending
//! mark, which is set even when the partial was already there — a retry after a
//! failure between the two still gets its minute rolled up; the receipt comes last.
//! Any store failure answers `Unavailable` (503); the sender's retry completes the
//! batch and counts it once.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use super::batch::{BatchLimits, BatchRejection, Problem, ValidBatch, parse_batch};
use super::digest::content_digest;
use crate::domain::WindowState;
use crate::error::StoreError;
use crate::ids::TenantId;
use crate::ports::{
    ArchiveRejection, BatchClaim, BatchKey, ModelRegistry, ModelSighting, PartialKey, PartialStore,
    PredictionArchive, RegistryError,
};

/// Partial writes in flight at once for one batch.
const CONCURRENT_PARTIAL_WRITES: usize = 8;

/// The ingest service: what the `ingest` function runs per request.
#[derive(Debug)]
pub struct IngestService<R, P, A> {
    /// The model registry.
    pub registry: R,
    /// Where partial aggregates go.
    pub partials: P,
    /// The raw-record archive; `None` when switched off.
    pub archive: Option<A>,
    /// Size and time limits of a batch.
    pub limits: BatchLimits,
}

/// What happened to the archive copy of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveReceipt {
    /// Whether the archive is switched on.
    pub enabled: bool,
    /// Records written.
    pub written: usize,
    /// Records the archive refused (counted in the aggregates all the same).
    pub rejected: Vec<ArchiveRejection>,
}

/// The answer to an accepted batch (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReceipt {
    /// The batch's id.
    pub batch_id: String,
    /// Predictions accepted.
    pub accepted: usize,
    /// The batch had been stored completely before: this is a retry, counted once.
    pub duplicate: bool,
    /// Start of each minute the batch's records fall in, ascending.
    pub minutes: Vec<DateTime<Utc>>,
    /// The archive's part.
    pub timestream: ArchiveReceipt,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch is invalid or too large; nothing was written.
    #[error("batch refused")]
    Rejected(BatchRejection),
    /// The model is registered with another task; nothing was written.
    #[error(transparent)]
    TaskConflict(RegistryError),
    /// The batch id was used before for a different body; nothing was written.
    #[error(
        "batch_id {batch_id:?} was already used for a batch with different content; a new batch needs a new batch_id"
    )]
    BatchConflict {
        /// The reused id.
        batch_id: String,
    },
    /// A store failed; retry the same batch.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistryError> for IngestError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::Store(err) => Self::Store(err),
            conflict @ RegistryError::TaskConflict { .. } => Self::TaskConflict(conflict),
        }
    }
}

impl<R, P, A> IngestService<R, P, A>
where
    R: ModelRegistry,
    P: PartialStore,
    A: PredictionArchive,
{
    /// Validates `body` (received at `now`) and stores it for `tenant`.
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IngestReceipt, IngestError> {
        let batch = parse_batch(body, now, &self.limits).map_err(IngestError::Rejected)?;
        let minutes = minute_partials(&batch).map_err(IngestError::Rejected)?;
        let batch_key = BatchKey {
            tenant: tenant.clone(),
            model_id: batch.model_id.clone(),
            batch_id: batch.batch_id.clone(),
        };
        match self
            .partials
            .claim_batch(&batch_key, &content_digest(&batch))
            .await?
        {
            BatchClaim::Proceed => {}
            BatchClaim::Stored(stored) => {
                let mut receipt: IngestReceipt =
                    serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt {
                        key: format!("receipt of batch {}", batch.batch_id),
                        reason: e.to_string(),
                    })?;
                receipt.duplicate = true;
                return Ok(receipt);
            }
            BatchClaim::Conflict => {
                return Err(IngestError::BatchConflict {
                    batch_id: batch.batch_id,
                });
            }
        }
        let (first, last) = event_span(&batch);
        self.registry
            .record_sighting(&ModelSighting {
                tenant: tenant.clone(),
                model_id: batch.model_id.clone(),
                task: batch.task,
                first,
                last,
                version: batch.model_version.clone(),
            })
            .await?;
        let timestream = match &self.archive {
            Some(archive) => {
                let report = archive.archive(tenant, &batch).await?;
                ArchiveReceipt {
                    enabled: true,
                    written: report.written,
                    rejected: report.rejected,
                }
            }
            None => ArchiveReceipt {
                enabled: false,
                written: 0,
                rejected: Vec::new(),
            },
        };
        let writes = minutes.into_iter().map(|(minute, state)| {
            let key = PartialKey {
                tenant: tenant.clone(),
                model_id: batch.model_id.clone(),
                minute,
                batch_id: batch.batch_id.clone(),
            };
            async move {
                // AlreadyPresent: written by an earlier attempt of this batch.
                self.partials.put_partial(&key, &state).await?;
                self.partials.mark_pending(&key).await?;
                Ok::<_, StoreError>(minute)
            }
        });
        let mut minutes: Vec<DateTime<Utc>> = stream::iter(writes)
            .buffer_unordered(CONCURRENT_PARTIAL_WRITES)
            .try_collect()
            .await?;
        minutes.sort();
        let receipt = IngestReceipt {
            batch_id: batch.batch_id,
            accepted: batch.predictions.len(),
            duplicate: false,
            minutes,
            timestream,
        };
        let stored = serde_json::to_string(&receipt).map_err(|e| StoreError::Internal {
            operation: "serialize batch receipt",
            source: Box::new(e),
        })?;
        self.partials.put_batch_receipt(&batch_key, &stored).await?;
        Ok(receipt)
    }
}

/// The start of the minute `time` falls in.
pub fn minute_of(time: DateTime<Utc>) -> DateTime<Utc> {
    time.duration_trunc(TimeDelta::minutes(1)).unwrap_or(time)
}

/// The batch folded into one serialized window state per minute its records touch.
/// A record the engine refuses (e.g. one label too many) rejects the whole batch.
pub fn minute_partials(
    batch: &ValidBatch,
) -> Result<BTreeMap<DateTime<Utc>, Vec<u8>>, BatchRejection> {
    let mut states: BTreeMap<DateTime<Utc>, WindowState> = BTreeMap::new();
    let refused = |list: &str, index: usize, reason: String| BatchRejection::Invalid {
        problems: vec![Problem {
            index: Some(index),
            field: format!("{list}[{index}]"),
            reason,
        }],
        truncated: false,
    };
    for (index, prediction) in batch.predictions.iter().enumerate() {
        states
            .entry(minute_of(prediction.record.timestamp))
            .or_default()
            .fold_prediction(&prediction.record)
            .map_err(|e| refused("predictions", index, e.to_string()))?;
    }
    for (index, sample) in batch.resources.iter().enumerate() {
        states
            .entry(minute_of(sample.timestamp))
            .or_default()
            .fold_resource(sample)
            .map_err(|e| refused("resources", index, e.to_string()))?;
    }
    Ok(states
        .into_iter()
        .map(|(minute, state)| (minute, state.to_bytes()))
        .collect())
}

/// Earliest and latest event time of the batch's predictions and samples.
fn event_span(batch: &ValidBatch) -> (DateTime<Utc>, DateTime<Utc>) {
    let times = batch
        .predictions
        .iter()
        .map(|p| p.record.timestamp)
        .chain(batch.resources.iter().map(|r| r.timestamp));
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for t in times {
        span = Some(match span {
            None => (t, t),
            Some((lo, hi)) => (lo.min(t), hi.max(t)),
        });
    }
    // A valid batch has at least one prediction.
    span.unwrap_or((DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryModelRegistry, MemoryPartialStore};
    use crate::adapters::timestream::TimestreamArchive;
    use crate::ids::ModelId;

    fn service() -> IngestService<MemoryModelRegistry, MemoryPartialStore, TimestreamArchive> {
        IngestService {
            registry: MemoryModelRegistry::default(),
            partials: MemoryPartialStore::default(),
            archive: None,
            limits: BatchLimits::default(),
        }
    }

    /// A batch `b-1` of `latencies.len()` predictions, one a minute from 10:00.
    fn body(latencies: &[f64]) -> Vec<u8> {
        let predictions: Vec<String> = latencies
            .iter()
            .enumerate()
            .map(|(i, latency)| {
                format!(
                    r#"{{"timestamp": "2026-11-28T10:{i:02}:05Z", "latency_ms": {latency}, "status": "ok", "predicted": 1.0, "actual": 2.0}}"#
                )
            })
            .collect();
        format!(
            r#"{{"model_id": "m1", "batch_id": "b-1", "task": "regression", "predictions": [{}]}}"#,
            predictions.join(",")
        )
        .into_bytes()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T10:30:00Z".parse().expect("time")
    }

    fn parsed(body: &[u8]) -> ValidBatch {
        parse_batch(body, now(), &BatchLimits::default()).expect("valid")
    }

    fn tenant() -> TenantId {
        TenantId::parse("t1").expect("tenant")
    }

    #[tokio::test]
    async fn the_same_body_again_is_a_duplicate_and_another_body_under_its_id_is_refused() {
        let service = service();
        let first = service
            .ingest(&tenant(), &body(&[5.0, 6.0]), now())
            .await
            .expect("stored");
        assert!(!first.duplicate);
        let again = service
            .ingest(&tenant(), &body(&[5.0, 6.0]), now())
            .await
            .expect("answered");
        assert!(again.duplicate);
        assert_eq!(again.minutes, first.minutes);

        let stored = service.partials.partials();
        let refused = service
            .ingest(&tenant(), &body(&[5.0, 6.0, 7.0]), now())
            .await;
        assert!(
            matches!(&refused, Err(IngestError::BatchConflict { batch_id }) if batch_id == "b-1"),
            "{refused:?}"
        );
        assert_eq!(service.partials.partials(), stored, "nothing written");
    }

    #[tokio::test]
    async fn a_half_stored_batch_is_completed_by_its_own_body_only() {
        let service = service();
        // An earlier attempt claimed the id for the first body and died before any
        // partial was written.
        let key = BatchKey {
            tenant: tenant(),
            model_id: ModelId::parse("m1").expect("model"),
            batch_id: "b-1".to_owned(),
        };
        let claim = service
            .partials
            .claim_batch(&key, &content_digest(&parsed(&body(&[5.0, 6.0]))))
            .await
            .expect("claim");
        assert_eq!(claim, BatchClaim::Proceed);

        let other = service.ingest(&tenant(), &body(&[9.0]), now()).await;
        assert!(
            matches!(other, Err(IngestError::BatchConflict { .. })),
            "{other:?}"
        );
        assert!(service.partials.partials().is_empty());

        let retry = service
            .ingest(&tenant(), &body(&[5.0, 6.0]), now())
            .await
            .expect("stored");
        assert!(!retry.duplicate);
        assert_eq!(retry.accepted, 2);
        assert_eq!(service.partials.partials().len(), 2);
    }
}

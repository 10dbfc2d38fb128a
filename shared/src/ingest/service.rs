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
//! is refused before anything else is written, and its claim is released: the
//! corrected batch may come under the same id); then the archive (Timestream ignores
//! an identical record sent again); then each minute's partial with a condition on its
//! (tenant, model, minute, batch) key, so a retried batch counts once; then the pending
//! mark, which is set even when the partial was already there — a retry after a
//! failure between the two still gets its minute rolled up; the receipt comes last
//! (bounded, in its compact form: [`super::receipt`]).
//! Any store failure answers `Unavailable` (503); the sender's retry completes the
//! batch and counts it once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::batch::{BatchLimits, BatchRejection, Problem, parse_batch};
use super::digest::{content_digest, legacy_body_digest};
use super::receipt::{ArchiveReceipt, IngestReceipt};
use crate::domain::ValidBatch;
use crate::domain::ids::TenantId;
use crate::domain::{Granularity, WindowState};
use crate::error::StoreError;
use crate::ports::{
    BatchClaim, BatchKey, ModelRegistry, ModelSighting, PartialKey, PartialStore,
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
        let (claim, digest) = self.claim(&batch_key, &batch, body).await?;
        match claim {
            BatchClaim::Proceed => {}
            BatchClaim::Stored(stored) => {
                let mut receipt =
                    IngestReceipt::from_stored(&batch.batch_id, &stored).map_err(|e| {
                        StoreError::Corrupt {
                            key: format!("receipt of batch {}", batch.batch_id),
                            reason: e.to_string(),
                        }
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
        let sighting = self
            .registry
            .record_sighting(&ModelSighting {
                tenant: tenant.clone(),
                model_id: batch.model_id.clone(),
                task: batch.task,
                first,
                last,
                version: batch.model_version.clone(),
            })
            .await;
        if let Err(conflict @ RegistryError::TaskConflict { .. }) = sighting {
            // Nothing of the batch is written: free its id for a corrected batch.
            self.partials.release_batch(&batch_key, &digest).await?;
            return Err(IngestError::TaskConflict(conflict));
        }
        sighting?;
        let timestream = match &self.archive {
            Some(archive) => ArchiveReceipt::archived(archive.archive(tenant, &batch).await?),
            None => ArchiveReceipt::disabled(),
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
        self.partials
            .put_batch_receipt(&batch_key, &receipt.to_stored())
            .await?;
        Ok(receipt)
    }

    /// Claims `key` for the batch's canonical content digest; returns what the claim
    /// found and the digest the id is held for. A claim stored by the release that
    /// digested a body's bytes (`x3-`) is the same batch when it holds this body's
    /// bytes' digest: a retry across that upgrade is a retry, not a reused id.
    async fn claim(
        &self,
        key: &BatchKey,
        batch: &ValidBatch,
        body: &[u8],
    ) -> Result<(BatchClaim, String), StoreError> {
        let canonical = content_digest(batch);
        match self.partials.claim_batch(key, &canonical).await? {
            BatchClaim::Conflict => {
                let legacy = legacy_body_digest(body);
                Ok((self.partials.claim_batch(key, &legacy).await?, legacy))
            }
            claim => Ok((claim, canonical)),
        }
    }
}

/// The batch folded into one window state per minute its records touch. A record the
/// engine refuses rejects the whole batch.
pub fn minute_partials(
    batch: &ValidBatch,
) -> Result<BTreeMap<DateTime<Utc>, WindowState>, BatchRejection> {
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
            .entry(Granularity::Minute.floor(prediction.record.timestamp))
            .or_default()
            .fold_prediction(&prediction.record)
            .map_err(|e| refused("predictions", index, e.to_string()))?;
    }
    for (index, sample) in batch.resources.iter().enumerate() {
        states
            .entry(Granularity::Minute.floor(sample.timestamp))
            .or_default()
            .fold_resource(sample)
            .map_err(|e| refused("resources", index, e.to_string()))?;
    }
    Ok(states)
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
    use chrono::TimeDelta;

    use super::*;
    use crate::adapters::memory::{MemoryModelRegistry, MemoryPartialStore};
    use crate::adapters::timestream::TimestreamArchive;
    use crate::domain::ids::ModelId;
    use crate::ports::{ArchiveRejection, ArchiveReport, PutOutcome};

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

    /// A binary-classification batch `b-1` of one prediction.
    fn binary_body() -> Vec<u8> {
        br#"{"model_id": "m1", "batch_id": "b-1", "task": "binary_classification", "predictions": [{"timestamp": "2026-11-28T10:00:05Z", "latency_ms": 5, "status": "ok", "predicted": true}]}"#.to_vec()
    }

    #[tokio::test]
    async fn a_task_conflict_frees_the_batch_id_for_the_corrected_batch() {
        let service = service();
        service
            .registry
            .record_sighting(&ModelSighting {
                tenant: tenant(),
                model_id: ModelId::parse("m1").expect("model"),
                task: crate::domain::Task::Regression,
                first: now(),
                last: now(),
                version: None,
            })
            .await
            .expect("registered");
        let wrong = service.ingest(&tenant(), &binary_body(), now()).await;
        assert!(
            matches!(wrong, Err(IngestError::TaskConflict(_))),
            "{wrong:?}"
        );
        assert!(service.partials.partials().is_empty());

        let corrected = service
            .ingest(&tenant(), &body(&[5.0]), now())
            .await
            .expect("the same id, now with the right task");
        assert!(!corrected.duplicate);
        assert_eq!(corrected.accepted, 1);
    }

    /// A partial store whose claims cannot be released.
    struct Unreleasable(MemoryPartialStore);

    impl PartialStore for Unreleasable {
        async fn claim_batch(
            &self,
            batch: &BatchKey,
            digest: &str,
        ) -> Result<BatchClaim, StoreError> {
            self.0.claim_batch(batch, digest).await
        }

        async fn release_batch(&self, _: &BatchKey, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Unavailable {
                operation: "release batch claim",
                source: "throttled".into(),
            })
        }

        async fn put_batch_receipt(
            &self,
            batch: &BatchKey,
            receipt: &[u8],
        ) -> Result<(), StoreError> {
            self.0.put_batch_receipt(batch, receipt).await
        }

        async fn put_partial(
            &self,
            key: &PartialKey,
            state: &WindowState,
        ) -> Result<PutOutcome, StoreError> {
            self.0.put_partial(key, state).await
        }

        async fn mark_pending(&self, key: &PartialKey) -> Result<(), StoreError> {
            self.0.mark_pending(key).await
        }
    }

    #[tokio::test]
    async fn a_claim_that_cannot_be_released_answers_unavailable() {
        let service = IngestService {
            registry: MemoryModelRegistry::default(),
            partials: Unreleasable(MemoryPartialStore::default()),
            archive: None::<TimestreamArchive>,
            limits: BatchLimits::default(),
        };
        service
            .ingest(&tenant(), &body(&[5.0]), now())
            .await
            .expect("registers the model as regression");
        let mut other_id = String::from_utf8(binary_body()).expect("utf-8");
        other_id = other_id.replace("b-1", "b-2");
        let refused = service.ingest(&tenant(), other_id.as_bytes(), now()).await;
        assert!(
            matches!(
                refused,
                Err(IngestError::Store(StoreError::Unavailable { .. }))
            ),
            "the sender retries, which claims and releases again: {refused:?}"
        );
    }

    /// An archive that refuses every record with a reason of over 1 KB.
    struct Refusing;

    impl PredictionArchive for Refusing {
        async fn archive(
            &self,
            _: &TenantId,
            batch: &ValidBatch,
        ) -> Result<ArchiveReport, StoreError> {
            Ok(ArchiveReport {
                written: 0,
                rejected: (0..batch.predictions.len())
                    .rev()
                    .map(|index| ArchiveRejection {
                        index,
                        reason: format!("record {index}: {}", "é".repeat(512)),
                    })
                    .collect(),
            })
        }
    }

    #[tokio::test]
    async fn the_largest_receipt_is_stored_small_and_answers_a_retry_exactly() {
        // 10,000 predictions in 10,000 distinct minutes of the last 7 days, every one
        // refused by the archive with a 1 KB reason.
        let predictions: Vec<String> = (1..=10_000)
            .map(|i| {
                let at = now() - TimeDelta::minutes(i) + TimeDelta::seconds(5);
                format!(
                    r#"{{"timestamp": "{}", "latency_ms": 3, "status": "ok", "predicted": 1.0}}"#,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .collect();
        let body = format!(
            r#"{{"model_id": "m1", "batch_id": "worst", "task": "regression", "predictions": [{}]}}"#,
            predictions.join(",")
        );
        let service = IngestService {
            registry: MemoryModelRegistry::default(),
            partials: MemoryPartialStore::default(),
            archive: Some(Refusing),
            limits: BatchLimits::default(),
        };
        let first = service
            .ingest(&tenant(), body.as_bytes(), now())
            .await
            .expect("stored");
        assert_eq!(first.minutes.len(), 10_000);
        assert!(first.minutes.windows(2).all(|w| w[0] < w[1]));
        let archive = &first.timestream;
        assert_eq!(archive.rejected_count, 10_000);
        assert_eq!(archive.rejected.len(), crate::ingest::MAX_LISTED_REJECTIONS);
        assert_eq!(archive.rejected[99].index, 99, "the first by index");
        assert!(
            archive
                .rejected
                .iter()
                .all(|r| r.reason.len() <= crate::ingest::MAX_REJECTION_REASON_BYTES)
        );

        let key = BatchKey {
            tenant: tenant(),
            model_id: ModelId::parse("m1").expect("model"),
            batch_id: "worst".into(),
        };
        let digest = content_digest(&parsed(body.as_bytes()));
        let BatchClaim::Stored(stored) = service
            .partials
            .claim_batch(&key, &digest)
            .await
            .expect("claim")
        else {
            panic!("the receipt is stored");
        };
        let expires = now() + TimeDelta::days(8);
        let size = crate::adapters::dynamodb::batch_image(&key, &digest, Some(&stored), expires)
            .checked_size()
            .expect("a valid item");
        eprintln!(
            "largest receipt: {} bytes stored, item {size} bytes, answer {} bytes of JSON",
            stored.len(),
            serde_json::to_string(&first).expect("json").len()
        );
        assert!(size < 64 * 1024, "{size} bytes");

        let again = service
            .ingest(&tenant(), body.as_bytes(), now())
            .await
            .expect("answered");
        assert!(again.duplicate);
        assert_eq!(
            IngestReceipt {
                duplicate: false,
                ..again
            },
            first,
            "the retry's answer is the first answer"
        );
    }

    #[tokio::test]
    async fn a_claim_stored_by_the_release_that_digested_bytes_is_recognised() {
        let service = service();
        let key = BatchKey {
            tenant: tenant(),
            model_id: ModelId::parse("m1").expect("model"),
            batch_id: "b-1".to_owned(),
        };
        // The previous release claimed the id for the body's bytes and died before
        // storing the receipt; the sender retries the same bytes after the upgrade.
        let first = body(&[5.0, 6.0]);
        let claim = service
            .partials
            .claim_batch(&key, &legacy_body_digest(&first))
            .await
            .expect("claim");
        assert_eq!(claim, BatchClaim::Proceed);
        let retry = service
            .ingest(&tenant(), &first, now())
            .await
            .expect("the retry is the same batch");
        assert_eq!((retry.accepted, retry.duplicate), (2, false));
        let again = service
            .ingest(&tenant(), &first, now())
            .await
            .expect("answered");
        assert!(again.duplicate);
        let other = service.ingest(&tenant(), &body(&[9.0]), now()).await;
        assert!(
            matches!(other, Err(IngestError::BatchConflict { .. })),
            "{other:?}"
        );
    }
}

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
//! corrected batch may come under the same id); then its version and segments (the
//! slices it counts under besides the model, within their caps); then the archive (Timestream ignores
//! an identical record sent again); then each minute's partial with a condition on its
//! (tenant, model, minute, batch) key, so a retried batch counts once; then the pending
//! mark, which is set even when the partial was already there — a retry after a
//! failure between the two still gets its minute rolled up; the receipt comes last
//! (bounded, in its compact form: [`super::receipt`]).
//! Any store failure answers `Unavailable` (503); the sender's retry completes the
//! batch and counts it once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::batch::{BatchLimits, BatchRejection, Problem, parse_batch};
use super::digest::{content_digest, legacy_body_digest};
use super::join::{fold_joins, with_slices};
use super::quota::{IngestQuotas, count_predictions};
use super::receipt::{ArchiveReceipt, IngestReceipt, ReceiptError};
use super::segments::SegmentAdmission;
use crate::domain::ids::{ModelRef, TenantId};
use crate::domain::labels::LabelLookback;
use crate::domain::{Floors, Granularity, OverQuota, Quota, ValidBatch, WindowState};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    BatchClaim, BatchKey, LabelStore, ModelRegistry, ModelSighting, PartialStore,
    PredictionArchive, RegistryError,
};

/// Partial writes in flight at once for one batch.
pub(super) const CONCURRENT_PARTIAL_WRITES: usize = 8;

/// The ingest service: what the `ingest` function runs per request.
#[derive(Debug)]
pub struct IngestService<R, P, A, L> {
    /// The model registry.
    pub registry: R,
    /// Where partial aggregates go.
    pub partials: P,
    /// The raw-record archive; `None` when switched off.
    pub archive: Option<A>,
    /// Size and time limits of a batch.
    pub limits: BatchLimits,
    /// Predictions awaiting late labels, and labels awaiting their predictions.
    pub labels: L,
    /// How far back a late label may reach (`LABEL_LOOKBACK_DAYS`).
    pub lookback: LabelLookback,
    /// The per-tenant quota of predictions per minute.
    pub quotas: IngestQuotas,
    /// The versions kept per model (`MODEL_VERSIONS`): see [`ModelRegistry::record_version`].
    pub versions_per_model: u64,
    /// The segments kept per model, and what this container remembers of them.
    pub segments: SegmentAdmission,
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
    /// The batch is over one of its tenant's quotas (predictions this minute, or a
    /// new model beyond the models quota); nothing was written and the batch id is
    /// free: send the same batch after `retry_after_seconds`.
    #[error("{0}")]
    OverQuota(OverQuota),
    /// A store failed; retry the same batch.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistryError> for IngestError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::Store(err) => Self::Store(err),
            conflict @ RegistryError::TaskConflict { .. } => Self::TaskConflict(conflict),
            RegistryError::OverQuota { limit } => {
                Self::OverQuota(OverQuota::standing(Quota::ModelsPerTenant, limit, 1))
            }
        }
    }
}

impl<R, P, A, L> IngestService<R, P, A, L>
where
    R: ModelRegistry,
    P: PartialStore,
    A: PredictionArchive,
    L: LabelStore,
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
        let stored = |bytes: &[u8]| {
            let mut receipt = IngestReceipt::from_stored(&batch.batch_id, bytes)?;
            receipt.duplicate = true;
            Ok::<_, ReceiptError>(receipt)
        };
        if let Some(answered) = answered_before(claim, &batch.batch_id, stored)? {
            return Ok(answered);
        }
        let quotas = self.quotas.limits(&self.registry, tenant, now).await?;
        let predictions = batch.predictions.len() as u64;
        let counted = count_predictions(
            &self.partials,
            tenant,
            predictions,
            quotas.predictions_per_minute,
            now,
        )
        .await?;
        if let Err(over) = counted {
            // Nothing of the batch is written: free its id for the same batch later.
            self.partials.release_batch(&batch_key, &digest).await?;
            return Err(IngestError::OverQuota(over));
        }
        let (first, last) = event_span(&batch);
        let sighting = ModelSighting {
            tenant: tenant.clone(),
            model_id: batch.model_id.clone(),
            task: batch.task,
            first,
            last,
            version: batch.model_version.clone(),
        };
        match self
            .registry
            .record_sighting(&sighting, quotas.models_per_tenant)
            .await
        {
            Ok(()) => {}
            Err(RegistryError::Store(err)) => return Err(err.into()),
            // Nothing of the batch is written: free its id for a corrected batch, or
            // for the same one once the quota is raised. The batch's predictions stay
            // counted this minute.
            Err(refused) => {
                self.partials.release_batch(&batch_key, &digest).await?;
                return Err(refused.into());
            }
        }
        let slice = self
            .registry
            .record_version(&sighting, self.versions_per_model)
            .await?;
        let model = ModelRef::new(tenant, &batch.model_id);
        let segments = self
            .segments
            .slices_of(&self.registry, model, &batch, first)
            .await?;
        let mut segment_states = segments.partials(&batch).map_err(|e| StoreError::Corrupt {
            key: format!("segments of batch {}", batch.batch_id),
            reason: e.to_string(),
        })?;
        let timestream = match &self.archive {
            Some(archive) => ArchiveReceipt::archived(archive.archive(tenant, &batch).await?),
            None => ArchiveReceipt::disabled(),
        };
        let side = self
            .await_labels(tenant, &batch, slice.as_ref(), &segments, now)
            .await?;
        let states = fold_joins(minutes, &side.claimed)?;
        let minutes: Vec<DateTime<Utc>> = states.keys().copied().collect();
        let series = with_slices(
            &batch.model_id,
            slice.as_ref(),
            &states,
            &mut segment_states,
            &side.claimed,
        )?;
        self.write_partials(tenant, &batch.batch_id, &series)
            .await?;
        let receipt = IngestReceipt {
            batch_id: batch.batch_id,
            accepted: batch.predictions.len(),
            duplicate: false,
            minutes,
            timestream,
            labels: side.labels,
        };
        self.partials
            .put_batch_receipt(&batch_key, &receipt.to_stored())
            .await?;
        tracing::info!(
            %tenant,
            batch_id = %receipt.batch_id,
            accepted = receipt.accepted,
            archive_rejected = receipt.timestream.rejected_count,
            awaiting_labels = receipt.labels.awaiting,
            labels_joined = receipt.labels.joined,
            "batch accepted"
        );
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
    ) -> StoreResult<(BatchClaim, String)> {
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

/// What a batch id's claim means for a request: `None`, go on and store the batch; the
/// answer given before (read by `stored`, marked a duplicate) when the batch was stored
/// completely; a conflict when the id was claimed for other content.
pub(super) fn answered_before<T, E: std::fmt::Display>(
    claim: BatchClaim,
    batch_id: &str,
    stored: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<Option<T>, IngestError> {
    match claim {
        BatchClaim::Proceed => Ok(None),
        BatchClaim::Stored(bytes) => stored(&bytes).map(Some).map_err(|e| {
            IngestError::Store(StoreError::Corrupt {
                key: format!("receipt of batch {batch_id}"),
                reason: e.to_string(),
            })
        }),
        BatchClaim::Conflict => Err(IngestError::BatchConflict {
            batch_id: batch_id.to_owned(),
        }),
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
    let mut minutes = Floors::new(Granularity::Minute);
    for (index, prediction) in batch.predictions.iter().enumerate() {
        states
            .entry(minutes.floor(prediction.record.timestamp))
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
mod tests;

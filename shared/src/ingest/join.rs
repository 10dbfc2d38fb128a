//! Joining late labels to their predictions (BRIEF decision 10), from both sides.
//!
//! A prediction batch stores each prediction that can take a late label (`ok`, with a
//! `prediction_id` and a prediction but no `actual`) in the [`LabelStore`]; a label
//! batch stores each label there. Whichever side's first write finds the other claims
//! the join in that write (see [`LabelStore`]) and counts it: a prediction batch in
//! its own minute partials, a label batch in partials of its own
//! (`actuals#<batch_id>`) in the predictions' minutes, which `aggregate` re-rolls like
//! late data. Every write of a side happens before its partials are written, and a
//! retried write reads back what the first one stored, so a retry after a failure
//! between any two writes counts the same joins again and the conditional partial
//! writes count them once.
//!
//! Order of a label batch: validation (and, for a registered model, every actual
//! against its task), the claim of `actuals#<batch_id>` for the content digest, the
//! label writes, the partials with their pending marks, the receipt. A duplicate is
//! answered from the stored receipt.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use super::actuals::{ActualsReceipt, check_task, parse_actuals};
use super::digest::actuals_digest;
use super::segments::BatchSegments;
use super::service::{IngestError, IngestService, answered_before};
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::{AwaitingPrediction, Join, LabelFate, LabelLookback, LateLabel};
use crate::domain::slice::Slice;
use crate::domain::{Granularity, Status, ValidBatch, ValidPrediction, WindowState};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    BatchKey, JoinClaimant, LabelItem, LabelStore, ModelRegistry, PartialKey, PartialStore,
    PredictionArchive,
};

/// Label-store writes in flight at once for one batch (one item each: a batch of
/// 10,000 takes about 300 round trips of a few milliseconds in sequence).
const CONCURRENT_LABEL_WRITES: usize = 32;

/// The batch id under which a label batch is claimed and its partials stored: the
/// `#` keeps it apart from every prediction batch id (ids never hold one).
fn actuals_batch_key(batch_id: &str) -> String {
    format!("actuals#{batch_id}")
}

/// What a prediction batch did with its predictions that can take a late label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionLabels {
    /// Kept until their label arrives (within the lookback).
    pub awaiting: usize,
    /// Joined to a label that had arrived first.
    pub joined: usize,
    /// Their `prediction_id` was already used by an earlier prediction of the model:
    /// counted as predictions, not joinable (the earlier one keeps the id).
    pub duplicate_ids: usize,
    /// Joined to a waiting label that does not fit the model's task: not counted.
    pub refused: usize,
}

/// What the prediction side found: its counts and the joins it claimed.
#[derive(Debug, Default)]
pub(super) struct PredictionSide {
    /// The counts for the receipt.
    pub(super) labels: PredictionLabels,
    /// The joins this batch counts.
    pub(super) claimed: Vec<Join>,
}

/// The fate of one label from the item its write left, and the join to count if this
/// batch claimed it (`Err` when the store broke its contract).
fn label_fate(item: &LabelItem, batch_id: &str) -> Result<(LabelFate, Option<Join>), &'static str> {
    let Some((label, label_batch)) = &item.label else {
        return Err("the label was not stored");
    };
    if label_batch != batch_id {
        return Ok((LabelFate::AlreadyLabeled, None));
    }
    let Some((prediction, _)) = &item.prediction else {
        return Ok((LabelFate::Pending, None));
    };
    Ok(match &item.claimed_by {
        Some(claimant) if *claimant == JoinClaimant::Actuals(batch_id).stored() => {
            let join = Join {
                prediction: prediction.clone(),
                actual: label.actual.clone(),
                label_time: label.time,
            };
            match join.labeled() {
                Ok(_) => (LabelFate::Joined, Some(join)),
                Err(_) => (LabelFate::Refused, None),
            }
        }
        // Counted by the prediction's batch, which found this label waiting.
        Some(_) => (LabelFate::Joined, None),
        // The prediction was there but older than the lookback.
        None => (LabelFate::Expired, None),
    })
}

impl<R, P, A, L> IngestService<R, P, A, L>
where
    R: ModelRegistry,
    P: PartialStore,
    A: PredictionArchive,
    L: LabelStore,
{
    /// Validates the label batch `body` (received at `now`) and joins its labels for
    /// `tenant`; see the module documentation.
    pub async fn ingest_actuals(
        &self,
        tenant: &TenantId,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ActualsReceipt, IngestError> {
        let batch = parse_actuals(body, now, &self.limits).map_err(IngestError::Rejected)?;
        if let Some(model) = self
            .registry
            .model(ModelRef::new(tenant, &batch.model_id))
            .await?
        {
            check_task(&batch, model.task).map_err(IngestError::Rejected)?;
        }
        let stored_id = actuals_batch_key(&batch.batch_id);
        let batch_key = BatchKey {
            tenant: tenant.clone(),
            model_id: batch.model_id.clone(),
            batch_id: stored_id.clone(),
        };
        let claim = self
            .partials
            .claim_batch(&batch_key, &actuals_digest(&batch))
            .await?;
        let stored = |bytes: &[u8]| {
            serde_json::from_slice(bytes).map(|receipt: ActualsReceipt| ActualsReceipt {
                duplicate: true,
                ..receipt
            })
        };
        if let Some(answered) = answered_before(claim, &batch.batch_id, stored)? {
            return Ok(answered);
        }
        let joinable_since = now - self.lookback.0;
        let expires = now + self.lookback.0;
        let (model_id, batch_id) = (&batch.model_id, stored_id.as_str());
        // Owned labels: a closure over borrowed items would make the future not `Send`
        // for every lifetime (the Lambda runtime needs it to be).
        let labels: Vec<LateLabel> = batch.actuals.iter().map(|s| s.label.clone()).collect();
        let writes = labels.into_iter().map(|label| async move {
            let label = &label;
            if !self.lookback.covers(label.time, now) {
                return Ok((LabelFate::Expired, None));
            }
            let item = self
                .labels
                .put_label(
                    ModelRef::new(tenant, model_id),
                    label,
                    batch_id,
                    expires,
                    joinable_since,
                )
                .await?;
            label_fate(&item, batch_id).map_err(|reason| StoreError::Corrupt {
                key: format!("label of {}", label.prediction_id),
                reason: reason.to_owned(),
            })
        });
        let fates: Vec<(LabelFate, Option<Join>)> = stream::iter(writes)
            .buffered(CONCURRENT_LABEL_WRITES)
            .try_collect()
            .await?;
        let mut receipt = ActualsReceipt {
            batch_id: batch.batch_id.clone(),
            ..ActualsReceipt::default()
        };
        let mut claimed = Vec::new();
        for (sent, (fate, join)) in batch.actuals.iter().zip(fates) {
            receipt.note(fate, &sent.label.prediction_id);
            claimed.extend(join);
        }
        let states = fold_joins(BTreeMap::new(), &claimed)?;
        receipt.minutes = states.len();
        let mut series = vec![(batch.model_id.clone(), states)];
        // Each join counts in its prediction's slices too.
        for (slice, joins) in joins_by_slice(&claimed) {
            series.push((
                batch.model_id.series(slice),
                fold_joins(BTreeMap::new(), joins)?,
            ));
        }
        self.write_partials(tenant, &stored_id, &series).await?;
        let stored = serde_json::to_vec(&receipt).map_err(|e| StoreError::Corrupt {
            key: format!("receipt of label batch {}", batch.batch_id),
            reason: e.to_string(),
        })?;
        self.partials.put_batch_receipt(&batch_key, &stored).await?;
        tracing::info!(
            %tenant,
            batch_id = %receipt.batch_id,
            joined = receipt.joined.count,
            pending = receipt.pending.count,
            already_labeled = receipt.already_labeled.count,
            expired = receipt.expired.count,
            refused = receipt.refused.count,
            "label batch accepted"
        );
        Ok(receipt)
    }

    /// Stores the predictions of `batch` that can take a late label (those within the
    /// lookback at `now`), each with the slices it counts under (the batch's
    /// `version` and its `segments`), and collects the joins this batch claims.
    pub(super) async fn await_labels(
        &self,
        tenant: &TenantId,
        batch: &ValidBatch,
        version: Option<&Slice>,
        segments: &BatchSegments,
        now: DateTime<Utc>,
    ) -> StoreResult<PredictionSide> {
        let awaiting: Vec<AwaitingPrediction> = batch
            .predictions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let slices = version.into_iter().chain(segments.of(i));
                awaiting(batch, p, slices, self.lookback, now)
            })
            .collect();
        let me = JoinClaimant::Predictions(&batch.batch_id).stored();
        let writes = awaiting.into_iter().map(|prediction| async move {
            let expires = prediction.time + self.lookback.0;
            let item = self
                .labels
                .put_awaiting(
                    ModelRef::new(tenant, &batch.model_id),
                    &prediction,
                    &batch.batch_id,
                    expires,
                )
                .await?;
            Ok::<_, StoreError>((prediction, item))
        });
        let items: Vec<(AwaitingPrediction, LabelItem)> = stream::iter(writes)
            .buffered(CONCURRENT_LABEL_WRITES)
            .try_collect()
            .await?;
        let mut side = PredictionSide::default();
        for (prediction, item) in items {
            let ours = matches!(&item.prediction, Some((_, b)) if *b == batch.batch_id);
            match (ours, &item.label, &item.claimed_by) {
                (false, _, _) => side.labels.duplicate_ids += 1,
                (true, Some((label, _)), Some(claimant)) if *claimant == me => {
                    let join = Join {
                        prediction,
                        actual: label.actual.clone(),
                        label_time: label.time,
                    };
                    if join.labeled().is_ok() {
                        side.labels.joined += 1;
                        side.claimed.push(join);
                    } else {
                        side.labels.refused += 1;
                    }
                }
                (true, Some(_), Some(_)) => side.labels.joined += 1,
                (true, _, _) => side.labels.awaiting += 1,
            }
        }
        Ok(side)
    }

    /// Writes one partial per minute of each series' states under `batch_id`, each
    /// with its pending mark (also when the partial was there: a retry after a failure
    /// between the two still gets its minute rolled up).
    pub(super) async fn write_partials<S: Borrow<MinuteStates> + Sync>(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        series: &[(ModelId, S)],
    ) -> StoreResult<()> {
        let mut partials = Vec::new();
        for (model_id, states) in series {
            for (minute, state) in states.borrow() {
                let key = PartialKey {
                    tenant: tenant.clone(),
                    model_id: model_id.clone(),
                    minute: *minute,
                    batch_id: batch_id.to_owned(),
                };
                partials.push((key, state));
            }
        }
        // Collected before they run: a mapping closure over borrowed states held across
        // the writes would make the future not `Send` for every lifetime.
        let writes: Vec<_> = partials
            .into_iter()
            .map(|(key, state)| async move {
                self.partials.put_partial(&key, state).await?;
                self.partials.mark_pending(&key).await
            })
            .collect();
        stream::iter(writes)
            .buffer_unordered(super::service::CONCURRENT_PARTIAL_WRITES)
            .try_collect()
            .await
    }
}

/// A series' states of a batch, per minute.
pub(super) type MinuteStates = BTreeMap<DateTime<Utc>, WindowState>;

/// The series a batch's states are written to: each segment slice's states, with the
/// claimed `joins` of its predictions folded in (in `segments`); when the batch counts
/// under a version slice, the model's `states` under the slice's series (shared, not
/// copied); and the model's.
pub(super) fn with_slices<'s>(
    model_id: &ModelId,
    version: Option<&Slice>,
    states: &'s MinuteStates,
    segments: &'s mut BTreeMap<Slice, MinuteStates>,
    joins: &[Join],
) -> StoreResult<Vec<(ModelId, &'s MinuteStates)>> {
    for (slice, joins) in joins_by_slice(joins) {
        if slice.segment_pair().is_some() {
            let states = segments.remove(slice).unwrap_or_default();
            segments.insert(slice.clone(), fold_joins(states, joins)?);
        }
    }
    let mut series = Vec::with_capacity(2 + segments.len());
    series.extend(
        segments
            .iter()
            .map(|(slice, states)| (model_id.series(slice), states)),
    );
    if let Some(slice) = version {
        series.push((model_id.series(slice), states));
    }
    series.push((model_id.clone(), states));
    Ok(series)
}

/// The joins of each slice their predictions counted under.
fn joins_by_slice(joins: &[Join]) -> BTreeMap<&Slice, Vec<&Join>> {
    let mut by_slice: BTreeMap<&Slice, Vec<&Join>> = BTreeMap::new();
    for join in joins {
        for slice in &join.prediction.slices {
            by_slice.entry(slice).or_default().push(join);
        }
    }
    by_slice
}

/// `prediction` as it awaits its label, if it can take one: `ok`, with an id and a
/// prediction but no actual, made within the lookback at `now`.
fn awaiting<'s>(
    batch: &ValidBatch,
    prediction: &ValidPrediction,
    slices: impl Iterator<Item = &'s Slice>,
    lookback: LabelLookback,
    now: DateTime<Utc>,
) -> Option<AwaitingPrediction> {
    let record = &prediction.record;
    let joinable = record.status == Status::Ok
        && record.outcome.awaits_label()
        && lookback.covers(record.timestamp, now);
    Some(AwaitingPrediction {
        prediction_id: batch.prediction_id(prediction).filter(|_| joinable)?.into(),
        time: record.timestamp,
        outcome: record.outcome.clone(),
        slices: slices.cloned().collect(),
    })
}

/// `states` with every join of `joins` folded into its prediction's minute.
pub(super) fn fold_joins<'j>(
    mut states: BTreeMap<DateTime<Utc>, WindowState>,
    joins: impl IntoIterator<Item = &'j Join>,
) -> StoreResult<BTreeMap<DateTime<Utc>, WindowState>> {
    for join in joins {
        let prediction_id = &join.prediction.prediction_id;
        let inconsistent = |reason: String| StoreError::Corrupt {
            key: format!("join of prediction {prediction_id}"),
            reason,
        };
        let (outcome, delay) = join.labeled().map_err(inconsistent)?;
        states
            .entry(Granularity::Minute.floor(join.prediction.time))
            .or_default()
            .fold_label(&outcome, delay)
            .map_err(|e| inconsistent(e.to_string()))?;
    }
    Ok(states)
}

#[cfg(test)]
mod tests;

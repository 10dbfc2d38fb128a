//! [`LabelStore`] in memory. Its items stay small (ids, labels and predicted values
//! are at most 128 bytes each), far below DynamoDB's item limit, so no sizing is
//! needed; expiry is the service's check of the lookback, as with DynamoDB's lazy TTL.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::lock;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::{AwaitingPrediction, LateLabel};
use crate::error::StoreResult;
use crate::ports::{JoinClaimant, LabelItem, LabelStore};

/// (tenant, model, prediction id).
type LabelKey = (TenantId, ModelId, String);

/// [`LabelStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryLabelStore {
    items: Mutex<BTreeMap<LabelKey, LabelItem>>,
}

impl MemoryLabelStore {
    /// Every item, for tests: (tenant, model, prediction id) → item.
    pub fn items(&self) -> Vec<(LabelKey, LabelItem)> {
        lock(&self.items)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Applies `write` to the item of the key (created empty) and returns it.
    fn update(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        prediction_id: &str,
        write: impl FnOnce(&mut LabelItem),
    ) -> LabelItem {
        let mut items = lock(&self.items);
        let item = items
            .entry((tenant.clone(), model_id.clone(), prediction_id.to_owned()))
            .or_default();
        write(item);
        item.clone()
    }
}

impl LabelStore for MemoryLabelStore {
    async fn put_awaiting(
        &self,
        model: ModelRef<'_>,
        prediction: &AwaitingPrediction,
        batch_id: &str,
        _expires: DateTime<Utc>,
    ) -> StoreResult<LabelItem> {
        let ModelRef { tenant, model_id } = model;
        let id = &prediction.prediction_id;
        Ok(self.update(tenant, model_id, id, |item| {
            if item.prediction.is_none() {
                item.prediction = Some((prediction.clone(), batch_id.to_owned()));
                if item.label.is_some() && item.claimed_by.is_none() {
                    item.claimed_by = Some(JoinClaimant::Predictions(batch_id).stored());
                }
            }
        }))
    }

    async fn put_label(
        &self,
        model: ModelRef<'_>,
        label: &LateLabel,
        batch_id: &str,
        _expires: DateTime<Utc>,
        joinable_since: DateTime<Utc>,
    ) -> StoreResult<LabelItem> {
        let ModelRef { tenant, model_id } = model;
        Ok(self.update(tenant, model_id, &label.prediction_id, |item| {
            if item.label.is_none() {
                item.label = Some((label.clone(), batch_id.to_owned()));
                let joinable = item
                    .prediction
                    .as_ref()
                    .is_some_and(|(p, _)| p.time >= joinable_since);
                if joinable && item.claimed_by.is_none() {
                    item.claimed_by = Some(JoinClaimant::Actuals(batch_id).stored());
                }
            }
        }))
    }
}

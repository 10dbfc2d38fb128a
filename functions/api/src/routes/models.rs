//! `GET /api/v1/monitoring/models`: the caller's models, each with how many of its
//! alerts fire now.

use modelwatch::domain::ids::TenantId;
use modelwatch::error::StoreResult;
use modelwatch::ports::{AlertStore, ModelRegistry, RegisteredModel};
use serde::Serialize;

/// One model of the list.
#[derive(Debug, Serialize)]
pub struct ListedModel {
    /// The registry entry.
    #[serde(flatten)]
    pub model: RegisteredModel,
    /// Alerts of the model firing now (0 when none).
    pub firing_alerts: u64,
}

/// The answer: the tenant's models, ordered by model id.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// The models.
    pub models: Vec<ListedModel>,
}

/// The tenant's models with their firing-alert counts (two reads, concurrently).
pub async fn list(
    registry: &impl ModelRegistry,
    alerts: &impl AlertStore,
    tenant: &TenantId,
) -> StoreResult<ModelList> {
    let (models, mut firing) =
        tokio::try_join!(registry.list_models(tenant), alerts.firing_counts(tenant))?;
    let models = models
        .into_iter()
        .map(|model| ListedModel {
            firing_alerts: firing.remove(&model.model_id).unwrap_or(0),
            model,
        })
        .collect();
    Ok(ModelList { models })
}

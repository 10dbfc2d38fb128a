//! Per-tenant quota of predictions per minute: what keeps one tenant's traffic from
//! taking what the others need. A batch is counted once, when its id is first claimed
//! (a retry of a stored batch is answered from its receipt and never counted again),
//! against the minute it arrives in; over the quota it is refused at the door (`429`
//! with the seconds to the next minute) and its id released, so nothing of it is
//! stored and the same batch may be sent again.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::ids::TenantId;
use crate::domain::{DEFAULT_TENANT_PREDICTIONS_PER_MINUTE, Granularity};
use crate::error::StoreError;
use crate::ports::{ModelRegistry, PartialStore, PredictionCount, TenantQuotas};

/// How long an operator's quota for a tenant is used before it is read again: a
/// changed quota applies within a minute, and the read costs one request per tenant a
/// minute, not one per batch.
const OVERRIDE_KEPT: TimeDelta = TimeDelta::minutes(1);

/// The deployment's quota and the operators' overrides as last read.
#[derive(Debug)]
pub struct IngestQuotas {
    /// Predictions a tenant may send per minute unless an operator set another.
    pub predictions_per_minute: u64,
    overrides: Mutex<HashMap<TenantId, (DateTime<Utc>, TenantQuotas)>>,
}

impl Default for IngestQuotas {
    fn default() -> Self {
        Self::new(DEFAULT_TENANT_PREDICTIONS_PER_MINUTE)
    }
}

/// A batch over its tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// The quota's name: `predictions_per_minute`.
    pub quota: &'static str,
    /// The tenant's quota.
    pub limit: u64,
    /// The batch's predictions.
    pub requested: u64,
    /// Seconds until the next minute, when the count starts again.
    pub retry_after_seconds: u64,
}

impl IngestQuotas {
    /// `predictions_per_minute` for every tenant without an operator's quota.
    pub fn new(predictions_per_minute: u64) -> Self {
        Self {
            predictions_per_minute,
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s quota: the operator's, read at most once a minute, else the default.
    async fn limit(
        &self,
        registry: &impl ModelRegistry,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let cached = self
            .overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .filter(|(read, _)| now - *read < OVERRIDE_KEPT)
            .map(|(_, quotas)| *quotas);
        let quotas = match cached {
            Some(quotas) => quotas,
            None => {
                let quotas = registry.tenant_quotas(tenant).await?;
                self.overrides
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(tenant.clone(), (now, quotas));
                quotas
            }
        };
        Ok(quotas
            .predictions_per_minute
            .unwrap_or(self.predictions_per_minute))
    }

    /// Counts `predictions` against `tenant`'s quota for the minute of `now`;
    /// `Ok(Err(_))` when they do not fit (nothing counted).
    pub(crate) async fn count(
        &self,
        registry: &impl ModelRegistry,
        partials: &impl PartialStore,
        tenant: &TenantId,
        predictions: u64,
        now: DateTime<Utc>,
    ) -> Result<Result<(), OverQuota>, StoreError> {
        if predictions == 0 {
            return Ok(Ok(()));
        }
        let limit = self.limit(registry, tenant, now).await?;
        let minute = Granularity::Minute.floor(now);
        let count = PredictionCount {
            tenant,
            minute,
            predictions,
            limit,
        };
        if partials.count_predictions(&count).await? {
            return Ok(Ok(()));
        }
        let next = minute + Granularity::Minute.length();
        Ok(Err(OverQuota {
            quota: "predictions_per_minute",
            limit,
            requested: predictions,
            retry_after_seconds: u64::try_from((next - now).num_milliseconds().max(1))
                .map_or(1, |ms| ms.div_ceil(1000)),
        }))
    }
}

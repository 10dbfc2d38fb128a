//! Per-tenant quotas at the door of ingest. Predictions per minute: what keeps one
//! tenant's traffic from taking what the others need. A batch is counted once, when its id is first claimed
//! (a retry of a stored batch is answered from its receipt and never counted again),
//! against the minute it arrives in; over the quota it is refused at the door (`429`
//! with the seconds to the next minute) and its id released, so nothing of it is
//! stored and the same batch may be sent again. Models per tenant: the registry
//! refuses a new model beyond the quota (see `ModelRegistry::record_sighting`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::ids::TenantId;
use crate::domain::quota::QUOTA_OVERRIDE_REFRESH_SECONDS;
use crate::domain::{Granularity, OverQuota, Quota, QuotaLimits, TenantQuotas};
use crate::error::StoreResult;
use crate::ports::{ModelRegistry, PartialStore, PredictionCount};

/// How long an operator's quotas for a tenant are used before they are read again: a
/// changed quota applies within a minute, and the read costs one request per tenant a
/// minute, not one per batch.
const OVERRIDE_KEPT: TimeDelta = TimeDelta::seconds(QUOTA_OVERRIDE_REFRESH_SECONDS as i64);

/// The deployment's quotas and the operators' overrides as last read.
#[derive(Debug, Default)]
pub struct IngestQuotas {
    /// Every tenant's quotas unless an operator set others.
    pub defaults: QuotaLimits,
    overrides: Mutex<HashMap<TenantId, (DateTime<Utc>, TenantQuotas)>>,
}

impl IngestQuotas {
    /// `defaults` for every tenant without an operator's quota.
    pub fn new(defaults: QuotaLimits) -> Self {
        Self {
            defaults,
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s quotas: the operator's, read at most once a minute, else the defaults.
    pub(crate) async fn limits(
        &self,
        registry: &impl ModelRegistry,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> StoreResult<QuotaLimits> {
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
        Ok(self.defaults.with_overrides(quotas))
    }
}

/// Counts `predictions` against `limit`, the tenant's quota for the minute of `now`;
/// `Ok(Err(_))` when they do not fit (nothing counted).
pub(crate) async fn count_predictions(
    partials: &impl PartialStore,
    tenant: &TenantId,
    predictions: u64,
    limit: u64,
    now: DateTime<Utc>,
) -> StoreResult<Result<(), OverQuota>> {
    if predictions == 0 {
        return Ok(Ok(()));
    }
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
        quota: Quota::PredictionsPerMinute,
        limit,
        requested: predictions,
        retry_after_seconds: u64::try_from((next - now).num_milliseconds().max(1))
            .map_or(1, |ms| ms.div_ceil(1000)),
    }))
}

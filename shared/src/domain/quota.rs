//! Per-tenant quotas: what keeps one tenant from taking what the others need, and what
//! bounds the cost and cardinality a tenant drives. Each has a deployment default
//! (configuration) that an operator may override for one tenant (never the tenant
//! itself: no route writes an override). A request over a quota is refused whole at
//! the door — `429 quota_exceeded` naming the quota — and nothing of it is stored.

use std::fmt;

/// The default quota of predictions one tenant may send per minute of arrival
/// (`TENANT_PREDICTIONS_PER_MINUTE`): 10,000 a second.
pub const DEFAULT_TENANT_PREDICTIONS_PER_MINUTE: u64 = 600_000;

/// The default quota of models per tenant (`TENANT_MODELS`): the specification's
/// target on paper, 10 k models per tenant.
pub const DEFAULT_TENANT_MODELS: u64 = 10_000;

/// The default quota of custom rules per model (`TENANT_RULES_PER_MODEL`): the rule
/// set's own ceiling ([`MAX_RULES`](super::alerting::rules::MAX_RULES)), so a
/// deployment or an operator can only lower it.
pub const DEFAULT_TENANT_RULES_PER_MODEL: u64 = super::alerting::rules::MAX_RULES as u64;

/// How long after an operator changes a quota it applies everywhere: the functions
/// read a tenant's overrides at most once a minute. A request refused for a quota an
/// operator must raise is told to retry after this.
pub const QUOTA_OVERRIDE_REFRESH_SECONDS: u64 = 60;

/// One of the per-tenant quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Predictions per minute of arrival, all the tenant's models together.
    PredictionsPerMinute,
    /// Models the tenant has registered.
    ModelsPerTenant,
    /// Custom alert rules in one model's rule set.
    CustomRulesPerModel,
}

impl Quota {
    /// The quota's name in errors and in the operator's override item.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PredictionsPerMinute => "predictions_per_minute",
            Self::ModelsPerTenant => "models_per_tenant",
            Self::CustomRulesPerModel => "custom_rules_per_model",
        }
    }
}

/// A tenant's quotas in force: the deployment's defaults with the operator's overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Predictions per minute of arrival.
    pub predictions_per_minute: u64,
    /// Registered models.
    pub models_per_tenant: u64,
    /// Custom rules in one model's rule set.
    pub custom_rules_per_model: u64,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        Self {
            predictions_per_minute: DEFAULT_TENANT_PREDICTIONS_PER_MINUTE,
            models_per_tenant: DEFAULT_TENANT_MODELS,
            custom_rules_per_model: DEFAULT_TENANT_RULES_PER_MODEL,
        }
    }
}

impl QuotaLimits {
    /// These limits with what an operator set for one tenant in their place.
    pub fn with_overrides(self, overrides: TenantQuotas) -> Self {
        Self {
            predictions_per_minute: overrides
                .predictions_per_minute
                .unwrap_or(self.predictions_per_minute),
            models_per_tenant: overrides
                .models_per_tenant
                .unwrap_or(self.models_per_tenant),
            custom_rules_per_model: overrides
                .custom_rules_per_model
                .unwrap_or(self.custom_rules_per_model),
        }
    }

    /// The limit of `quota`.
    pub fn of(&self, quota: Quota) -> u64 {
        match quota {
            Quota::PredictionsPerMinute => self.predictions_per_minute,
            Quota::ModelsPerTenant => self.models_per_tenant,
            Quota::CustomRulesPerModel => self.custom_rules_per_model,
        }
    }
}

/// The quotas an operator set for one tenant, overriding the deployment's defaults;
/// `None` where none was set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuotas {
    /// Predictions per minute of arrival, all models together.
    pub predictions_per_minute: Option<u64>,
    /// Registered models.
    pub models_per_tenant: Option<u64>,
    /// Custom rules per model.
    pub custom_rules_per_model: Option<u64>,
}

/// A request over one of its tenant's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// The quota.
    pub quota: Quota,
    /// The tenant's limit.
    pub limit: u64,
    /// What the request asked for: the batch's predictions, one new model, the rule
    /// set's rules.
    pub requested: u64,
    /// Seconds until the request may fit: the next minute for predictions; for a
    /// quota only an operator can raise, the time a raised quota takes to apply.
    pub retry_after_seconds: u64,
}

impl OverQuota {
    /// `requested` over a quota only an operator can raise.
    pub fn standing(quota: Quota, limit: u64, requested: u64) -> Self {
        Self {
            quota,
            limit,
            requested,
            retry_after_seconds: QUOTA_OVERRIDE_REFRESH_SECONDS,
        }
    }
}

impl fmt::Display for OverQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            limit,
            requested,
            retry_after_seconds,
            ..
        } = *self;
        match self.quota {
            Quota::PredictionsPerMinute => write!(
                f,
                "the tenant's quota of {limit} predictions a minute is used up{}; retry in \
                 {retry_after_seconds} s",
                if requested > limit {
                    " (this batch alone is larger)"
                } else {
                    ""
                }
            ),
            Quota::ModelsPerTenant => write!(
                f,
                "the tenant's quota of {limit} models is used up: a new model is refused \
                 (its registered models are not) until an operator raises the quota"
            ),
            Quota::CustomRulesPerModel => write!(
                f,
                "the tenant's quota is {limit} custom rules per model; this rule set has \
                 {requested}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_only_what_it_sets() {
        let limits = QuotaLimits::default().with_overrides(TenantQuotas {
            models_per_tenant: Some(3),
            ..TenantQuotas::default()
        });
        assert_eq!(limits.of(Quota::ModelsPerTenant), 3);
        assert_eq!(
            limits.of(Quota::PredictionsPerMinute),
            DEFAULT_TENANT_PREDICTIONS_PER_MINUTE
        );
        assert_eq!(
            limits.of(Quota::CustomRulesPerModel),
            DEFAULT_TENANT_RULES_PER_MODEL
        );
    }

    #[test]
    fn each_refusal_names_its_limit_and_what_to_do() {
        let batch = OverQuota {
            quota: Quota::PredictionsPerMinute,
            limit: 10,
            requested: 11,
            retry_after_seconds: 7,
        };
        assert_eq!(
            batch.to_string(),
            "the tenant's quota of 10 predictions a minute is used up (this batch alone is \
             larger); retry in 7 s"
        );
        let model = OverQuota::standing(Quota::ModelsPerTenant, 2, 1);
        assert!(model.to_string().contains("quota of 2 models"), "{model}");
        assert_eq!(model.retry_after_seconds, QUOTA_OVERRIDE_REFRESH_SECONDS);
        let rules = OverQuota::standing(Quota::CustomRulesPerModel, 5, 6);
        assert!(
            rules
                .to_string()
                .ends_with("5 custom rules per model; this rule set has 6")
        );
    }
}

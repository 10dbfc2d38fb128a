//! A tenant's alert subscriptions in the models table, beside its models and settings.
//!
//! Item: `pk = "TENANT#<tenant>"`, `sk = "SUBSCRIPTIONS"`; attribute `doc` holds the
//! set as JSON (webhook signing secrets included: the table is encrypted, and only
//! `api` and `evaluate` may read it), plus `tenant_id` and `updated_at` (epoch ms).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::registry::tenant_pk;
use super::settings::DynamoModelSettings;
use super::{attr, doc, unavailable};
use crate::domain::alerting::subscriptions::AlertSubscriptions;
use crate::domain::ids::TenantId;
use crate::error::StoreResult;
use crate::ports::SubscriptionStore;

/// The sort key of a tenant's subscriptions.
const SUBSCRIPTIONS_SK: &str = "SUBSCRIPTIONS";

impl SubscriptionStore for DynamoModelSettings {
    async fn subscriptions(&self, tenant: &TenantId) -> StoreResult<AlertSubscriptions> {
        let output = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(attr::key(tenant_pk(tenant), SUBSCRIPTIONS_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read alert subscriptions", e))?;
        output
            .item
            .as_ref()
            .map(doc::decode)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn put_subscriptions(
        &self,
        tenant: &TenantId,
        subscriptions: &AlertSubscriptions,
    ) -> StoreResult<()> {
        let doc = doc::encode(subscriptions, "encode alert subscriptions")?;
        self.client()
            .put_item()
            .table_name(self.table())
            .item("pk", attr::s(tenant_pk(tenant)))
            .item("sk", attr::s(SUBSCRIPTIONS_SK))
            .item("tenant_id", attr::s(tenant.as_str()))
            .item(
                "updated_at",
                AttributeValue::N(Utc::now().timestamp_millis().to_string()),
            )
            .item("doc", AttributeValue::S(doc))
            .send()
            .await
            .map_err(|e| unavailable("store alert subscriptions", e))?;
        Ok(())
    }
}

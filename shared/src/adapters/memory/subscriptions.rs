//! Alert subscriptions in memory: the tenants' subscription sets (on
//! [`MemoryModelSettings`], as DynamoDB keeps them beside the settings), the topic's
//! subscriptions and the webhook deliveries, each recorded for tests to read.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{MemoryModelSettings, lock};
use crate::domain::alerting::subscriptions::{
    AlertSubscriptions, SubscriptionTarget, subscription_id,
};
use crate::domain::ids::TenantId;
use crate::error::StoreResult;
use crate::ports::{
    ExportFailure, SubscriptionStore, TopicSubscriptions, WebhookDelivery, WebhookSender,
};

impl SubscriptionStore for MemoryModelSettings {
    async fn subscriptions(&self, tenant: &TenantId) -> StoreResult<AlertSubscriptions> {
        Ok(lock(&self.subscriptions)
            .get(tenant)
            .cloned()
            .unwrap_or_default())
    }

    async fn put_subscriptions(
        &self,
        tenant: &TenantId,
        subscriptions: &AlertSubscriptions,
    ) -> StoreResult<()> {
        lock(&self.subscriptions).insert(tenant.clone(), subscriptions.clone());
        Ok(())
    }
}

/// [`TopicSubscriptions`] in memory: the live subscriptions by ARN, with the tenant
/// each is filtered on.
#[derive(Debug, Default)]
pub struct MemoryTopicSubscriptions {
    live: Mutex<BTreeMap<String, (TenantId, SubscriptionTarget)>>,
    /// Subscribe calls so far.
    subscribes: Mutex<u64>,
}

impl MemoryTopicSubscriptions {
    /// The live subscriptions: ARN → (tenant, target).
    pub fn live(&self) -> BTreeMap<String, (TenantId, SubscriptionTarget)> {
        lock(&self.live).clone()
    }

    /// Subscribe calls answered so far.
    pub fn subscribe_calls(&self) -> u64 {
        *lock(&self.subscribes)
    }
}

impl TopicSubscriptions for MemoryTopicSubscriptions {
    async fn subscribe(
        &self,
        tenant: &TenantId,
        target: &SubscriptionTarget,
    ) -> StoreResult<String> {
        *lock(&self.subscribes) += 1;
        // Like SNS: the same target on the same topic is the same subscription.
        let arn = format!(
            "arn:aws:sns:us-east-1:123456789012:alerts:{tenant}-{}",
            subscription_id(target.protocol, &target.endpoint)
        );
        lock(&self.live).insert(arn.clone(), (tenant.clone(), target.clone()));
        Ok(arn)
    }

    async fn unsubscribe(&self, subscription_arn: &str) -> StoreResult<()> {
        lock(&self.live).remove(subscription_arn);
        Ok(())
    }
}

/// One webhook delivery as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDelivery {
    /// The URL.
    pub url: String,
    /// The subscription's id.
    pub subscription_id: String,
    /// The delivery's id.
    pub delivery_id: String,
    /// The body.
    pub body: Vec<u8>,
}

/// [`WebhookSender`] in memory: records every delivery; URLs containing `fail`
/// fail as unavailable.
#[derive(Debug, Default)]
pub struct MemoryWebhookSender {
    delivered: Mutex<Vec<RecordedDelivery>>,
}

impl MemoryWebhookSender {
    /// The deliveries so far, failed ones included.
    pub fn delivered(&self) -> Vec<RecordedDelivery> {
        lock(&self.delivered).clone()
    }
}

impl WebhookSender for MemoryWebhookSender {
    async fn deliver(&self, delivery: &WebhookDelivery<'_>) -> Result<(), ExportFailure> {
        lock(&self.delivered).push(RecordedDelivery {
            url: delivery.url.to_owned(),
            subscription_id: delivery.subscription_id.to_owned(),
            delivery_id: delivery.delivery_id.to_owned(),
            body: delivery.body.to_vec(),
        });
        if delivery.url.contains("fail") {
            return Err(ExportFailure::Unavailable("the receiver is down".into()));
        }
        Ok(())
    }
}

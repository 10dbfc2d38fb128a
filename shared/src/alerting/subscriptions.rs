//! A tenant's alert subscriptions: replacing the set (`PUT /alert-subscriptions`) and
//! delivering each alert to them ([`AlertDelivery`], the notifier of `evaluate`).
//!
//! E-mail and SQS subscriptions are SNS subscriptions of the alert topic with a filter
//! policy on the tenant, so SNS delivers them. Webhooks are called by `evaluate` after
//! the alert is published, each with the alert's JSON signed by the subscription's
//! secret; a webhook that keeps failing is logged and does not hold the alert back
//! (SNS delivery, the state and the history are the record).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::alerting::rules::Severity;
use crate::domain::alerting::state::AlertRecord;
use crate::domain::alerting::subscriptions::{
    AlertSubscription, AlertSubscriptions, Protocol, SubscriptionTarget, subscription_id,
};
use crate::domain::ids::TenantId;
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    AlertNotifier, SubscriptionStore, TopicSubscriptions, WebhookDelivery, WebhookSender,
};

/// One subscription as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionView {
    /// Its id.
    pub id: String,
    /// `email`, `sqs` or `webhook`.
    pub protocol: Protocol,
    /// The address, queue ARN or URL.
    pub endpoint: String,
    /// Only these severities; empty: every alert.
    pub severity: Vec<Severity>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// A webhook's signing secret, in the answer of the `PUT` that created it only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A tenant's subscriptions as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionsView {
    /// The subscriptions.
    pub subscriptions: Vec<SubscriptionView>,
    /// When the set was last replaced (`null`: never).
    pub updated_at: Option<DateTime<Utc>>,
}

impl SubscriptionsView {
    /// The view of `stored`, with the secrets of `created` (the ids of the webhooks
    /// this request made) shown once.
    fn of(stored: &AlertSubscriptions, created: &[String]) -> Self {
        let subscriptions = stored
            .subscriptions
            .iter()
            .map(|s| SubscriptionView {
                id: s.id.clone(),
                protocol: s.target.protocol,
                endpoint: s.target.endpoint.clone(),
                severity: s.target.severity.iter().copied().collect(),
                created_at: s.created_at,
                signing_secret: created
                    .contains(&s.id)
                    .then(|| s.signing_secret.clone())
                    .flatten(),
            })
            .collect();
        Self {
            subscriptions,
            updated_at: stored.updated_at,
        }
    }
}

/// The tenant's subscriptions, without secrets.
pub async fn current_subscriptions(
    store: &impl SubscriptionStore,
    tenant: &TenantId,
) -> StoreResult<SubscriptionsView> {
    Ok(SubscriptionsView::of(
        &store.subscriptions(tenant).await?,
        &[],
    ))
}

/// Replaces the tenant's subscriptions with `targets`: a target already subscribed
/// (same protocol, endpoint and severities) is kept as it is; a new one is created —
/// subscribed on the topic, or given a secret from `new_secret` (a webhook) —; one left
/// out is removed after the new set is stored. Sending the same set again changes
/// nothing (a topic answers the same subscription for the same target).
pub async fn replace_subscriptions(
    store: &impl SubscriptionStore,
    topic: &impl TopicSubscriptions,
    tenant: &TenantId,
    targets: Vec<SubscriptionTarget>,
    now: DateTime<Utc>,
    mut new_secret: impl FnMut() -> StoreResult<String>,
) -> StoreResult<SubscriptionsView> {
    let before = store.subscriptions(tenant).await?;
    let mut after = AlertSubscriptions {
        subscriptions: Vec::with_capacity(targets.len()),
        updated_at: Some(now),
    };
    let mut created = Vec::new();
    for target in targets {
        if let Some(kept) = before.subscriptions.iter().find(|s| s.target == target) {
            after.subscriptions.push(kept.clone());
            continue;
        }
        let id = subscription_id(target.protocol, &target.endpoint);
        let (subscription_arn, signing_secret) = match target.protocol {
            Protocol::Email | Protocol::Sqs => {
                (Some(topic.subscribe(tenant, &target).await?), None)
            }
            Protocol::Webhook => (None, Some(new_secret()?)),
        };
        created.push(id.clone());
        after.subscriptions.push(AlertSubscription {
            id,
            target,
            created_at: now,
            subscription_arn,
            signing_secret,
        });
    }
    store.put_subscriptions(tenant, &after).await?;
    let kept = |arn: &String| {
        after
            .subscriptions
            .iter()
            .any(|s| s.subscription_arn.as_ref() == Some(arn))
    };
    for removed in before
        .subscriptions
        .iter()
        .filter_map(|s| s.subscription_arn.as_ref())
        .filter(|arn| !kept(arn))
    {
        topic.unsubscribe(removed).await?;
    }
    Ok(SubscriptionsView::of(&after, &created))
}

/// The notifier of `evaluate`: publishes each alert to the topic (SNS delivers it to
/// the e-mail and SQS subscriptions whose filter matches), then posts it to the
/// tenant's webhooks that want its severity.
#[derive(Debug)]
pub struct AlertDelivery<N, S, W> {
    /// The topic.
    pub topic: N,
    /// The tenants' subscriptions.
    pub subscriptions: S,
    /// The webhook client.
    pub webhooks: W,
}

impl<N, S, W> AlertNotifier for AlertDelivery<N, S, W>
where
    N: AlertNotifier,
    S: SubscriptionStore,
    W: WebhookSender,
{
    async fn notify(&self, alert: &AlertRecord) -> StoreResult<()> {
        self.topic.notify(alert).await?;
        let subscriptions = match self.subscriptions.subscriptions(&alert.tenant_id).await {
            Ok(subscriptions) => subscriptions,
            Err(err) => {
                tracing::warn!(tenant = %alert.tenant_id, alert_id = %alert.alert_id, error = %err,
                    "the tenant's webhooks could not be read; the alert is published to the topic only");
                return Ok(());
            }
        };
        let webhooks = subscriptions.subscriptions.iter().filter(|s| {
            s.target.protocol == Protocol::Webhook && s.target.wants(alert.rule.severity)
        });
        let body = serde_json::to_vec(alert).map_err(|e| StoreError::Internal {
            operation: "serialize alert",
            source: Box::new(e),
        })?;
        let delivery_id = format!("{}-{}", alert.alert_id, alert.state.as_str());
        for webhook in webhooks {
            let Some(secret) = webhook.signing_secret.as_deref() else {
                continue;
            };
            let delivery = WebhookDelivery {
                url: &webhook.target.endpoint,
                subscription_id: &webhook.id,
                secret,
                delivery_id: &delivery_id,
                body: &body,
            };
            if let Err(err) = self.webhooks.deliver(&delivery).await {
                tracing::warn!(tenant = %alert.tenant_id, subscription = %webhook.id,
                    delivery = %delivery_id, error = %err, source = ?std::error::Error::source(&err),
                    "webhook delivery failed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::adapters::memory::{MemoryModelSettings, MemoryTopicSubscriptions, MemoryWebhookSender};
use crate::domain::alerting::subscriptions::parse_subscriptions;
use crate::testing::{at, sample_alert, tenant};

const ACCOUNT: &str = "123456789012";

fn targets(body: serde_json::Value) -> Vec<SubscriptionTarget> {
    parse_subscriptions(&body, ACCOUNT).expect("valid")
}

fn secrets() -> impl FnMut() -> StoreResult<String> {
    let mut n = 0;
    move || {
        n += 1;
        Ok(format!("whsec_{n}"))
    }
}

#[tokio::test]
async fn a_replaced_set_subscribes_the_new_keeps_the_same_and_removes_the_rest() {
    let (store, topic) = (
        MemoryModelSettings::default(),
        MemoryTopicSubscriptions::default(),
    );
    let acme = tenant("acme");
    let first = targets(json!({"subscriptions": [
        {"protocol": "email", "endpoint": "oncall@acme.example"},
        {"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:123456789012:acme-alerts"},
        {"protocol": "webhook", "endpoint": "https://hooks.acme.example/mw"}]}));
    let view = replace_subscriptions(
        &store,
        &topic,
        &acme,
        first.clone(),
        at("2026-12-01T10:00:00Z"),
        secrets(),
    )
    .await
    .expect("stored");
    assert_eq!(view.subscriptions.len(), 3);
    assert_eq!(
        view.subscriptions[2].signing_secret.as_deref(),
        Some("whsec_1"),
        "shown once"
    );
    assert!(
        view.subscriptions[..2]
            .iter()
            .all(|s| s.signing_secret.is_none())
    );
    let live = topic.live();
    assert_eq!(live.len(), 2, "e-mail and SQS are topic subscriptions");
    assert!(live.values().all(|(t, _)| t == &acme));

    // The same set again: nothing created, the secret neither changed nor shown.
    let again = replace_subscriptions(
        &store,
        &topic,
        &acme,
        first,
        at("2026-12-01T11:00:00Z"),
        secrets(),
    )
    .await
    .expect("stored");
    assert!(
        again
            .subscriptions
            .iter()
            .all(|s| s.signing_secret.is_none())
    );
    assert_eq!(topic.subscribe_calls(), 2);
    assert_eq!(
        again.subscriptions[0].created_at,
        at("2026-12-01T10:00:00Z")
    );
    let stored = store.subscriptions(&acme).await.expect("read");
    assert_eq!(
        stored.subscriptions[2].signing_secret.as_deref(),
        Some("whsec_1")
    );
    assert_eq!(
        current_subscriptions(&store, &acme).await.expect("view"),
        SubscriptionsView {
            updated_at: Some(at("2026-12-01T11:00:00Z")),
            ..again.clone()
        }
    );

    // Only critical e-mail now: the old e-mail subscription (all severities) and the
    // queue are removed from the topic, the webhook dropped.
    let narrower = targets(json!({"subscriptions": [
        {"protocol": "email", "endpoint": "oncall@acme.example", "severity": ["critical"]}]}));
    replace_subscriptions(
        &store,
        &topic,
        &acme,
        narrower,
        at("2026-12-01T12:00:00Z"),
        secrets(),
    )
    .await
    .expect("stored");
    let live = topic.live();
    assert_eq!(live.len(), 1);
    let (_, target) = live.values().next().expect("one");
    assert_eq!(target.severity, BTreeSet::from([Severity::Critical]));
    replace_subscriptions(
        &store,
        &topic,
        &acme,
        vec![],
        at("2026-12-01T13:00:00Z"),
        secrets(),
    )
    .await
    .expect("emptied");
    assert!(topic.live().is_empty());
}

#[tokio::test]
async fn an_alert_goes_to_the_topic_and_to_the_tenants_webhooks_that_want_its_severity() {
    let delivery = AlertDelivery {
        topic: crate::adapters::memory::MemoryNotifier::default(),
        subscriptions: MemoryModelSettings::default(),
        webhooks: MemoryWebhookSender::default(),
    };
    let topic = MemoryTopicSubscriptions::default();
    let set = |tenant_name: &str, hooks: serde_json::Value| {
        let (store, topic) = (&delivery.subscriptions, &topic);
        let tenant_id = tenant(tenant_name);
        async move {
            replace_subscriptions(
                store,
                topic,
                &tenant_id,
                targets(hooks),
                at("2026-12-01T10:00:00Z"),
                secrets(),
            )
            .await
            .expect("stored");
        }
    };
    set("acme", json!({"subscriptions": [
        {"protocol": "webhook", "endpoint": "https://hooks.acme.example/all"},
        {"protocol": "webhook", "endpoint": "https://hooks.acme.example/fail"},
        {"protocol": "webhook", "endpoint": "https://hooks.acme.example/critical", "severity": ["critical"]},
        {"protocol": "email", "endpoint": "oncall@acme.example"}]})).await;
    set(
        "globex",
        json!({"subscriptions": [
        {"protocol": "webhook", "endpoint": "https://hooks.globex.example/all"}]}),
    )
    .await;

    let alert = sample_alert("acme", Severity::Warning);
    delivery
        .notify(&alert)
        .await
        .expect("a failing webhook does not fail the alert");
    assert_eq!(delivery.topic.items().len(), 1, "published to the topic");
    let delivered = delivery.webhooks.delivered();
    let urls: Vec<&str> = delivered.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://hooks.acme.example/all",
            "https://hooks.acme.example/fail"
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&delivered[0].body).expect("JSON");
    assert_eq!(body, serde_json::to_value(&alert).expect("alert JSON"));
    assert_eq!(
        delivered[0].delivery_id,
        format!("{}-firing", alert.alert_id)
    );
}

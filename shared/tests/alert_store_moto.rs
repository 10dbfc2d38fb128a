//! The DynamoDB alert store and the SNS notifier against the local stack's emulator
//! (moto): version conflicts, the firing index through a firing → resolved sequence,
//! history pages compared with the in-memory store, rule removal; and an alert published
//! to a topic read back from a subscribed SQS queue.
//!
//! Requires `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:4566`) and fails, never skips,
//! when it is unset or the endpoint does not answer. Each test creates its own table,
//! topic and queue, named for the run, and deletes them at the end (also when it fails).

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration as StdDuration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use modelwatch::adapters::dynamodb::DynamoAlertStore;
use modelwatch::adapters::memory::MemoryAlertStore;
use modelwatch::adapters::sns::SnsAlertNotifier;
use modelwatch::domain::MetricName;
use modelwatch::domain::alerting::rules::{AlertRule, Condition, RuleWindow, Severity};
use modelwatch::domain::alerting::state::{
    AlertRecord, AlertState, RuleState, RuleStatus, alert_id,
};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::ports::{AlertNotifier, AlertPage, AlertQuery, AlertStore};

/// The emulator's endpoint, checked to answer HTTP.
async fn endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "AWS_ENDPOINT_URL is not set: this test needs the local stack's AWS emulator \
                 (e.g. AWS_ENDPOINT_URL=http://127.0.0.1:4566 with moto_server running)"
            )
        });
    modelwatch::tls::reqwest_client()
        .build()
        .expect("HTTP client builds")
        .get(&endpoint)
        .timeout(StdDuration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("AWS_ENDPOINT_URL={endpoint} is not answering: {e}"));
    endpoint
}

async fn sdk_config() -> SdkConfig {
    endpoint().await;
    modelwatch::aws::load_sdk_config().await
}

/// A value unique to this test run.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| format!("{}-{}", Utc::now().timestamp_millis(), std::process::id()))
}

/// Runs `body`, then `cleanup` whether or not `body` panicked, then re-raises.
async fn with_cleanup<C: Future<Output = ()>>(body: impl Future<Output = ()>, cleanup: C) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn model(id: &str) -> ModelId {
    ModelId::parse(id).expect("model")
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("time")
}

fn rule(id: &str) -> AlertRule {
    AlertRule {
        id: id.to_owned(),
        metric: MetricName::Accuracy,
        condition: Condition::Below,
        threshold: 0.85,
        window: RuleWindow::from_minutes(60).expect("window"),
        severity: Severity::Critical,
        min_samples: 10,
        basis: None,
        label_delay: None,
        slice: None,
    }
}

fn firing(model_id: &str, rule_id: &str, started_ms: i64) -> AlertRecord {
    let started_at = at_ms(started_ms);
    AlertRecord {
        alert_id: alert_id(rule_id, started_at),
        tenant_id: tenant(),
        model_id: model(model_id),
        rule: rule(rule_id),
        state: AlertState::Firing,
        observed_value: Some(0.81),
        baseline: Some(0.92),
        sample_count: 250,
        window_start: started_at - TimeDelta::hours(1),
        window_end: started_at,
        started_at,
        resolved_at: None,
    }
}

fn resolved(alert: &AlertRecord, at_ms_: i64) -> AlertRecord {
    AlertRecord {
        state: AlertState::Resolved,
        resolved_at: Some(at_ms(at_ms_)),
        observed_value: Some(0.9),
        ..alert.clone()
    }
}

fn state(rule_id: &str, version: u64, alert: Option<&AlertRecord>) -> RuleState {
    let firing = alert.is_some_and(|a| a.state == AlertState::Firing);
    RuleState {
        rule_id: rule_id.to_owned(),
        status: if firing {
            RuleStatus::Firing
        } else {
            RuleStatus::Ok
        },
        since: at_ms(1_700_000_000_000),
        alert: alert.filter(|_| firing).cloned(),
        last_notified_at: alert.map(|a| a.window_end),
        version,
    }
}

fn query(state: Option<AlertState>, limit: usize, after: Option<String>) -> AlertQuery {
    AlertQuery {
        state,
        limit,
        after,
    }
}

/// Every page of the model's history for `state` and `limit`, following `next`.
async fn all_pages(
    store: &impl AlertStore,
    model_id: &ModelId,
    state: Option<AlertState>,
    limit: usize,
) -> Vec<AlertPage> {
    let mut pages: Vec<AlertPage> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .alerts(
                ModelRef::new(&tenant(), model_id),
                &query(state, limit, after),
            )
            .await
            .expect("alerts");
        after = page.next.clone();
        pages.push(page);
        assert!(pages.len() <= 10, "paging does not end");
        if after.is_none() {
            return pages;
        }
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<ModelId, u64> {
    pairs.iter().map(|(m, n)| (model(m), *n)).collect()
}

async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    client
        .create_table()
        .table_name(table)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateTable {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        });
}

#[tokio::test]
async fn alert_store_against_moto() {
    let config = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("modelwatch-test-alerts-{}", run_id());
    create_table(&client, &table).await;
    let store = DynamoAlertStore::new(client.clone(), &table);
    with_cleanup(exercise_store(store), async {
        if let Err(e) = client.delete_table().table_name(&table).send().await {
            eprintln!(
                "DeleteTable {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            );
        }
    })
    .await;
}

async fn exercise_store(store: DynamoAlertStore) {
    let t = tenant();
    let (m1, m2, m3) = (model("fraud"), model("churn"), model("pricing"));
    let t0 = 1_700_000_000_000_i64;

    // Versions: the first write needs an absent state, every later one the previous
    // version; a refused write changes nothing.
    assert!(
        store
            .save_rule_state(ModelRef::new(&t, &m1), &state("acc", 1, None), None)
            .await
            .expect("save")
    );
    assert!(
        !store
            .save_rule_state(ModelRef::new(&t, &m1), &state("acc", 1, None), None)
            .await
            .expect("save")
    );
    assert!(
        !store
            .save_rule_state(ModelRef::new(&t, &m1), &state("acc", 3, None), None)
            .await
            .expect("save")
    );
    let fire = firing("fraud", "acc", t0);
    let stale = state("acc", 1, Some(&fire));
    assert!(
        !store
            .save_rule_state(ModelRef::new(&t, &m1), &stale, Some(&fire))
            .await
            .expect("save"),
        "a stale transaction is refused"
    );
    assert_eq!(
        store
            .rule_states(ModelRef::new(&t, &m1))
            .await
            .expect("states"),
        [state("acc", 1, None)]
    );
    assert_eq!(store.firing_counts(&t).await.expect("counts"), counts(&[]));
    assert_eq!(
        store
            .alerts(ModelRef::new(&t, &m1), &query(None, 10, None))
            .await
            .expect("alerts")
            .alerts,
        [],
        "nothing of the refused transaction was written"
    );

    // Firing: state, history and index together.
    let firing_state = state("acc", 2, Some(&fire));
    assert!(
        store
            .save_rule_state(ModelRef::new(&t, &m1), &firing_state, Some(&fire))
            .await
            .expect("save")
    );
    let other = firing("churn", "p95", t0 + 5_000);
    assert!(
        store
            .save_rule_state(
                ModelRef::new(&t, &m2),
                &state("p95", 1, Some(&other)),
                Some(&other)
            )
            .await
            .expect("save")
    );
    assert_eq!(
        store.firing_counts(&t).await.expect("counts"),
        counts(&[("fraud", 1), ("churn", 1)])
    );
    assert_eq!(
        store
            .rule_states(ModelRef::new(&t, &m1))
            .await
            .expect("states"),
        [firing_state]
    );
    let page = store
        .alerts(ModelRef::new(&t, &m1), &query(None, 10, None))
        .await
        .expect("alerts");
    assert_eq!(
        page,
        AlertPage {
            alerts: vec![fire.clone()],
            next: None
        }
    );
    let page = store
        .alerts(
            ModelRef::new(&t, &m1),
            &query(Some(AlertState::Firing), 10, None),
        )
        .await
        .expect("alerts");
    assert_eq!(page.alerts, std::slice::from_ref(&fire));
    assert_eq!(
        store
            .firing_counts(&TenantId::parse("other").expect("tenant"))
            .await
            .expect("counts"),
        counts(&[]),
        "another tenant sees none"
    );

    // Resolved: the history entry is replaced, the index entry goes.
    let done = resolved(&fire, t0 + 600_000);
    assert!(
        store
            .save_rule_state(
                ModelRef::new(&t, &m1),
                &state("acc", 3, Some(&done)),
                Some(&done)
            )
            .await
            .expect("save")
    );
    assert_eq!(
        store.firing_counts(&t).await.expect("counts"),
        counts(&[("churn", 1)])
    );
    let all = store
        .alerts(ModelRef::new(&t, &m1), &query(None, 10, None))
        .await
        .expect("alerts");
    assert_eq!(all.alerts, std::slice::from_ref(&done));
    let firing_only = store
        .alerts(
            ModelRef::new(&t, &m1),
            &query(Some(AlertState::Firing), 10, None),
        )
        .await
        .expect("alerts");
    assert_eq!(firing_only.alerts, []);
    let resolved_only = store
        .alerts(
            ModelRef::new(&t, &m1),
            &query(Some(AlertState::Resolved), 10, None),
        )
        .await
        .expect("alerts");
    assert_eq!(resolved_only.alerts, std::slice::from_ref(&done));

    // Removal: conditional on the version; with the resolved alert, the history and
    // the index follow.
    let other_done = resolved(&other, t0 + 700_000);
    assert!(
        !store
            .remove_rule_state(ModelRef::new(&t, &m2), "p95", 7, Some(&other_done))
            .await
            .expect("remove"),
        "a stale removal is refused"
    );
    assert_eq!(
        store.firing_counts(&t).await.expect("counts"),
        counts(&[("churn", 1)])
    );
    assert!(
        store
            .remove_rule_state(ModelRef::new(&t, &m2), "p95", 1, Some(&other_done))
            .await
            .expect("remove")
    );
    assert_eq!(
        store
            .rule_states(ModelRef::new(&t, &m2))
            .await
            .expect("states"),
        []
    );
    assert_eq!(store.firing_counts(&t).await.expect("counts"), counts(&[]));
    assert_eq!(
        store
            .alerts(ModelRef::new(&t, &m2), &query(None, 10, None))
            .await
            .expect("alerts")
            .alerts,
        [other_done]
    );
    assert!(
        !store
            .remove_rule_state(ModelRef::new(&t, &m1), "acc", 2, None)
            .await
            .expect("remove")
    );
    assert!(
        store
            .remove_rule_state(ModelRef::new(&t, &m1), "acc", 3, None)
            .await
            .expect("remove")
    );
    assert_eq!(
        store
            .rule_states(ModelRef::new(&t, &m1))
            .await
            .expect("states"),
        []
    );
    assert!(
        !store
            .remove_rule_state(ModelRef::new(&t, &m1), "acc", 3, None)
            .await
            .expect("remove")
    );

    // Pages: 5 alerts (two sharing a start), limit 2, compared with the memory store.
    let memory = MemoryAlertStore::default();
    let history = [
        firing("pricing", "r1", t0),
        resolved(&firing("pricing", "r2", t0 + 60_000), t0 + 90_000),
        firing("pricing", "r3", t0 + 60_000),
        resolved(&firing("pricing", "r1", t0 + 120_000), t0 + 150_000),
        firing("pricing", "r4", t0 + 180_000),
    ];
    for (i, alert) in history.iter().enumerate() {
        let s = state(&format!("s{i}"), 1, Some(alert));
        assert!(
            store
                .save_rule_state(ModelRef::new(&t, &m3), &s, Some(alert))
                .await
                .expect("save")
        );
        assert!(
            memory
                .save_rule_state(ModelRef::new(&t, &m3), &s, Some(alert))
                .await
                .expect("memory")
        );
    }
    let pages = all_pages(&store, &m3, None, 2).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.alerts.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let seen: Vec<&AlertRecord> = pages.iter().flat_map(|p| &p.alerts).collect();
    let mut newest_first: Vec<&AlertRecord> = history.iter().collect();
    newest_first.sort_by(|a, b| (b.started_at, &b.rule.id).cmp(&(a.started_at, &a.rule.id)));
    assert_eq!(seen, newest_first, "each alert once, newest first");
    for state in [None, Some(AlertState::Firing), Some(AlertState::Resolved)] {
        for limit in [1, 2, 3, 5, 6] {
            assert_eq!(
                all_pages(&store, &m3, state, limit).await,
                all_pages(&memory, &m3, state, limit).await,
                "state {state:?}, limit {limit}"
            );
        }
    }
    assert_eq!(
        store.firing_counts(&t).await.expect("counts"),
        counts(&[("pricing", 3)])
    );
}

#[tokio::test]
async fn sns_notifier_against_moto() {
    let config = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("modelwatch-test-alerts-{}", run_id());
    let topic_arn = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("topic ARN");
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue URL");
    let body = publish_and_receive(
        sns.clone(),
        sqs.clone(),
        topic_arn.clone(),
        queue_url.clone(),
    );
    with_cleanup(body, async {
        if let Err(e) = sns.delete_topic().topic_arn(&topic_arn).send().await {
            eprintln!("DeleteTopic {topic_arn}: {e}");
        }
        if let Err(e) = sqs.delete_queue().queue_url(&queue_url).send().await {
            eprintln!("DeleteQueue {queue_url}: {e}");
        }
    })
    .await;
}

async fn publish_and_receive(
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: String,
    queue_url: String,
) {
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue ARN");
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .expect("Subscribe");

    let alert = AlertRecord {
        rule: AlertRule {
            severity: Severity::Warning,
            ..rule("acc")
        },
        ..firing("fraud", "acc", 1_700_000_000_000)
    };
    SnsAlertNotifier::new(sns.clone(), &topic_arn)
        .notify(&alert)
        .await
        .unwrap_or_else(|e| panic!("Publish: {e} ({:?})", std::error::Error::source(&e)));

    let mut messages = Vec::new();
    for _ in 0..10 {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("ReceiveMessage");
        messages.extend(received.messages.unwrap_or_default());
        if !messages.is_empty() {
            break;
        }
    }
    assert_eq!(messages.len(), 1, "one notification");
    let envelope: serde_json::Value =
        serde_json::from_str(messages[0].body().expect("body")).expect("SNS envelope");
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], topic_arn.as_str());
    assert_eq!(envelope["Subject"], alert.subject().as_str());
    let message: AlertRecord =
        serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("record");
    assert_eq!(message, alert);
    let attributes = &envelope["MessageAttributes"];
    for (name, value) in [
        ("severity", "warning"),
        ("model_id", "fraud"),
        ("tenant_id", "acme"),
        ("state", "firing"),
        ("metric", "accuracy"),
        ("rule_id", "acc"),
    ] {
        assert_eq!(
            attributes[name],
            serde_json::json!({"Type": "String", "Value": value}),
            "{name}"
        );
    }
}

//! The alert store against mocked DynamoDB: the items and conditions each write
//! sends, transactions cancelled for each reason, and history pages that match the
//! memory store's over a fake paginated `Query`.

use crate::domain::ids::ModelRef;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::super::testing::{
    Seen, cancelled, condition_failed, delete_rule, fast_retries, ids, number, put_rule, text,
    transact_rule,
};
use super::*;
use crate::adapters::memory::MemoryAlertStore;
use crate::domain::MetricName;
use crate::domain::alerting::rules::{AlertRule, Condition, RuleWindow, Severity};
use crate::domain::alerting::state::{ALERT_START_MS, RuleStatus, alert_id};
use crate::testing::model;

const TABLE: &str = "alerts-test";

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("time")
}

fn alert(rule_id: &str, started_ms: i64, state: AlertState) -> AlertRecord {
    let (tenant, model) = ids();
    let started_at = at_ms(started_ms);
    AlertRecord {
        alert_id: alert_id(rule_id, started_at),
        tenant_id: tenant,
        model_id: model,
        rule: AlertRule {
            id: rule_id.to_owned(),
            metric: MetricName::Accuracy,
            condition: Condition::Below,
            threshold: 0.85,
            window: RuleWindow::from_minutes(60).expect("window"),
            severity: Severity::Critical,
            min_samples: 10,
            basis: None,
            label_delay: None,
            slice: None,
        },
        state,
        observed_value: Some(0.8),
        baseline: Some(0.9),
        sample_count: 120,
        window_start: started_at - TimeDelta::hours(1),
        window_end: started_at,
        started_at,
        resolved_at: (state == AlertState::Resolved).then_some(started_at),
    }
}

fn rule_state(rule_id: &str, version: u64, alert: Option<AlertRecord>) -> RuleState {
    RuleState {
        rule_id: rule_id.to_owned(),
        status: if alert.is_some() {
            RuleStatus::Firing
        } else {
            RuleStatus::Ok
        },
        since: at_ms(1_700_000_000_000),
        alert,
        last_notified_at: None,
        version,
    }
}

fn store(rules: &[&Rule]) -> DynamoAlertStore {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, fast_retries);
    DynamoAlertStore::new(client, TABLE)
}

#[test]
fn history_keys_sort_like_start_then_rule() {
    assert_eq!(
        history_sk(at_ms(1_700_000_000_123), "acc-low").expect("key"),
        "1700000000123#acc-low"
    );
    assert_eq!(history_sk(at_ms(5), "r").expect("key"), "0000000000005#r");
    let keys: Vec<String> = [(999, "b"), (1_000, "a"), (1_000, "a.b"), (1_000, "b")]
        .iter()
        .map(|(ms, rule)| history_sk(at_ms(*ms), rule).expect("key"))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for out_of_range in [-1, ALERT_START_MS.end] {
        assert!(matches!(
            history_sk(at_ms(out_of_range), "r"),
            Err(StoreError::Internal { .. })
        ));
    }
}

#[tokio::test]
async fn first_state_is_put_only_if_absent() {
    let seen = Seen::default();
    let rule = put_rule(&seen);
    let store = store(&[&rule]);
    let (t, m) = ids();
    let stored = store
        .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 1, None), None)
        .await
        .expect("save");
    assert!(stored);
    let seen = seen.lock().unwrap();
    let request = &seen[0];
    assert_eq!(request.table_name(), Some(TABLE));
    assert_eq!(
        request.condition_expression(),
        Some("attribute_not_exists(pk)")
    );
    assert_eq!(request.expression_attribute_values(), None);
    let item = request.item().expect("item");
    assert_eq!(text(item, "pk"), "STATE#t#m");
    assert_eq!(text(item, "sk"), "acc-low");
    assert_eq!(number(item, "version"), "1");
    assert_eq!(
        (text(item, "tenant_id"), text(item, "model_id")),
        ("t", "m")
    );
    let doc: RuleState = serde_json::from_str(text(item, "doc")).expect("doc");
    assert_eq!(doc, rule_state("acc-low", 1, None));
}

#[tokio::test]
async fn later_states_expect_the_previous_version() {
    let seen = Seen::default();
    let rule = put_rule(&seen);
    let store = store(&[&rule]);
    let (t, m) = ids();
    assert!(
        store
            .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 3, None), None)
            .await
            .expect("save")
    );
    let seen = seen.lock().unwrap();
    let request = &seen[0];
    assert_eq!(request.condition_expression(), Some("#version = :previous"));
    assert_eq!(
        request
            .expression_attribute_names()
            .and_then(|n| n.get("#version")),
        Some(&"version".to_owned())
    );
    assert_eq!(
        request
            .expression_attribute_values()
            .and_then(|v| v.get(":previous")),
        Some(&AttributeValue::N("2".into()))
    );
}

#[tokio::test]
async fn version_zero_is_refused_without_a_request() {
    let seen = Seen::default();
    let rule = put_rule(&seen);
    let store = store(&[&rule]);
    let (t, m) = ids();
    let stored = store
        .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 0, None), None)
        .await
        .expect("save");
    assert!(!stored);
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn failed_condition_on_a_put_is_false() {
    let rule = mock!(Client::put_item)
        .then_error(|| PutItemError::ConditionalCheckFailedException(condition_failed()));
    let store = store(&[&rule]);
    let (t, m) = ids();
    let stored = store
        .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 2, None), None)
        .await
        .expect("a failed condition is an answer");
    assert!(!stored);
}

#[tokio::test]
async fn throttling_is_unavailable_and_validation_internal() {
    let throttled = mock!(Client::put_item).then_error(|| {
        PutItemError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let store_throttled = store(&[&throttled]);
    let (t, m) = ids();
    let err = store_throttled
        .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 1, None), None)
        .await
        .expect_err("throttled");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(throttled.num_calls(), 2, "the SDK retried");

    let invalid = mock!(Client::put_item).then_error(|| {
        PutItemError::generic(
            ErrorMetadata::builder()
                .code("ValidationException")
                .message("Item size has exceeded the maximum allowed size")
                .build(),
        )
    });
    let err = store(&[&invalid])
        .save_rule_state(ModelRef::new(&t, &m), &rule_state("acc-low", 1, None), None)
        .await
        .expect_err("invalid");
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "source kept");
}

#[tokio::test]
async fn a_firing_alert_writes_state_history_and_index_in_one_transaction() {
    let seen = Seen::default();
    let rule = transact_rule(&seen);
    let store = store(&[&rule]);
    let (t, m) = ids();
    let firing = alert("acc-low", 1_700_000_000_000, AlertState::Firing);
    let state = rule_state("acc-low", 4, Some(firing.clone()));
    assert!(
        store
            .save_rule_state(ModelRef::new(&t, &m), &state, Some(&firing))
            .await
            .expect("save")
    );
    let seen = seen.lock().unwrap();
    let items = seen[0].transact_items();
    assert_eq!(items.len(), 3);

    let state_put = items[0].put().expect("state put");
    assert_eq!(state_put.table_name(), TABLE);
    assert_eq!(
        state_put.condition_expression(),
        Some("#version = :previous")
    );
    assert_eq!(
        state_put
            .expression_attribute_values()
            .and_then(|v| v.get(":previous")),
        Some(&AttributeValue::N("3".into()))
    );
    assert_eq!(text(state_put.item(), "pk"), "STATE#t#m");
    assert_eq!(number(state_put.item(), "version"), "4");

    let history = items[1].put().expect("history put");
    assert_eq!(history.condition_expression(), None);
    let item = history.item();
    assert_eq!(text(item, "pk"), "HISTORY#t#m");
    assert_eq!(text(item, "sk"), "1700000000000#acc-low");
    assert_eq!(text(item, "state"), "firing");
    assert_eq!(text(item, "alert_id"), "acc-low@1700000000000");
    assert_eq!(
        number(item, "expires_at"),
        (1_700_000_000 + 400 * 86_400).to_string()
    );
    let doc: AlertRecord = serde_json::from_str(text(item, "doc")).expect("doc");
    assert_eq!(doc, firing);

    let index = items[2].put().expect("firing index put");
    assert_eq!(text(index.item(), "pk"), "FIRING#t");
    assert_eq!(text(index.item(), "sk"), "m#acc-low");
    assert_eq!(text(index.item(), "model_id"), "m");
    assert_eq!(text(index.item(), "alert_id"), "acc-low@1700000000000");

    // The memory store sizes the same three items.
    assert_eq!(
        attr::item_size(state_put.item()),
        state_image(&t, &m, &state).expect("state").checked_size()
    );
    assert_eq!(
        attr::item_size(history.item()),
        history_image(&t, &m, &firing)
            .expect("history")
            .checked_size()
    );
    assert_eq!(
        attr::item_size(index.item()),
        firing_image(&t, &m, "acc-low", &firing.alert_id).checked_size()
    );
}

#[tokio::test]
async fn a_resolved_alert_deletes_its_index_entry() {
    let seen = Seen::default();
    let rule = transact_rule(&seen);
    let store = store(&[&rule]);
    let (t, m) = ids();
    let resolved = alert("acc-low", 1_700_000_000_000, AlertState::Resolved);
    let state = rule_state("acc-low", 2, None);
    assert!(
        store
            .save_rule_state(ModelRef::new(&t, &m), &state, Some(&resolved))
            .await
            .expect("save")
    );
    let seen = seen.lock().unwrap();
    let items = seen[0].transact_items();
    assert_eq!(items.len(), 3);
    assert_eq!(
        text(items[1].put().expect("history").item(), "state"),
        "resolved"
    );
    let delete = items[2].delete().expect("firing index delete");
    assert_eq!(text(delete.key(), "pk"), "FIRING#t");
    assert_eq!(text(delete.key(), "sk"), "m#acc-low");
}

#[tokio::test]
async fn removal_is_conditional_on_the_version() {
    let deletes = Seen::default();
    let delete = delete_rule(&deletes);
    let transactions = Seen::default();
    let transact = transact_rule(&transactions);
    let store = store(&[&delete, &transact]);
    let (t, m) = ids();
    assert!(
        store
            .remove_rule_state(ModelRef::new(&t, &m), "acc-low", 5, None)
            .await
            .expect("remove")
    );
    let request = deletes.lock().unwrap()[0].clone();
    assert_eq!(request.condition_expression(), Some("#version = :version"));
    assert_eq!(
        request
            .expression_attribute_values()
            .and_then(|v| v.get(":version")),
        Some(&AttributeValue::N("5".into()))
    );
    let key = request.key().expect("key");
    assert_eq!((text(key, "pk"), text(key, "sk")), ("STATE#t#m", "acc-low"));
    assert_eq!(transact.num_calls(), 0);

    let resolved = alert("acc-low", 1_700_000_000_000, AlertState::Resolved);
    assert!(
        store
            .remove_rule_state(ModelRef::new(&t, &m), "acc-low", 5, Some(&resolved))
            .await
            .expect("remove")
    );
    let transactions = transactions.lock().unwrap();
    let items = transactions[0].transact_items();
    assert_eq!(items.len(), 3);
    let state_delete = items[0].delete().expect("state delete");
    assert_eq!(
        state_delete.condition_expression(),
        Some("#version = :version")
    );
    assert_eq!(
        text(items[1].put().expect("history").item(), "sk"),
        "1700000000000#acc-low"
    );
    assert_eq!(
        text(items[2].delete().expect("index").key(), "sk"),
        "m#acc-low"
    );
}

#[tokio::test]
async fn cancelled_transactions_by_reason() {
    let (t, m) = ids();
    let firing = alert("acc-low", 1_700_000_000_000, AlertState::Firing);
    let state = rule_state("acc-low", 2, Some(firing.clone()));
    let outcome = |reasons: &'static [&'static str]| {
        let rule = mock!(Client::transact_write_items).then_error(move || cancelled(reasons));
        let store = store(&[&rule]);
        let (t, m, state, firing) = (t.clone(), m.clone(), state.clone(), firing.clone());
        async move {
            store
                .save_rule_state(ModelRef::new(&t, &m), &state, Some(&firing))
                .await
        }
    };
    assert!(
        !outcome(&["ConditionalCheckFailed", "None", "None"])
            .await
            .expect("a failed condition is an answer")
    );
    let conflict = outcome(&["None", "TransactionConflict", "None"]).await;
    assert!(
        matches!(conflict, Err(StoreError::Unavailable { .. })),
        "{conflict:?}"
    );
    let throttled = outcome(&["ThrottlingError", "None", "None"]).await;
    assert!(
        matches!(throttled, Err(StoreError::Unavailable { .. })),
        "{throttled:?}"
    );
    let invalid = outcome(&["None", "ValidationError", "None"]).await;
    assert!(
        matches!(invalid, Err(StoreError::Internal { .. })),
        "{invalid:?}"
    );
}

/// A DynamoDB `Query` over one partition of `items` (any order), as far as the
/// store uses it: descending order, `ExclusiveStartKey`, `Limit` (items read),
/// the `#state` filter applied after reading, and pages of at most `page_cap`
/// items. Like DynamoDB, it answers a `LastEvaluatedKey` whenever it stopped at a
/// limit, even if nothing follows.
fn fake_query(mut items: Vec<Item>, page_cap: usize, seen: Seen<QueryInput>) -> Rule {
    items.sort_by(|a, b| text(b, "sk").cmp(text(a, "sk")));
    mock!(Client::query).then_compute_output(move |req| {
        seen.lock().unwrap().push(req.clone());
        assert_eq!(req.scan_index_forward(), Some(false));
        assert_eq!(req.consistent_read(), Some(true));
        let start = req.exclusive_start_key().map(|k| text(k, "sk").to_owned());
        let limit = req
            .limit()
            .map_or(usize::MAX, |l| usize::try_from(l).expect("limit"));
        let cap = limit.min(page_cap);
        let remaining: Vec<&Item> = items
            .iter()
            .filter(|i| start.as_deref().is_none_or(|s| text(i, "sk") < s))
            .collect();
        let read = &remaining[..cap.min(remaining.len())];
        let wanted_state = req.filter_expression().map(|_| {
            req.expression_attribute_values()
                .and_then(|v| v.get(":state"))
                .and_then(|v| v.as_s().ok())
                .expect(":state")
                .clone()
        });
        let mut output = QueryOutput::builder().set_items(Some(
            read.iter()
                .filter(|i| {
                    wanted_state
                        .as_deref()
                        .is_none_or(|s| text(i, "state") == s)
                })
                .map(|i| (*i).clone())
                .collect(),
        ));
        if read.len() == cap
            && let Some(last) = read.last()
        {
            output = output
                .last_evaluated_key("pk", last["pk"].clone())
                .last_evaluated_key("sk", last["sk"].clone());
        }
        output.build()
    })
}

/// The alerts of the comparison: same starts with different rules, both states.
fn history() -> Vec<AlertRecord> {
    let mut alerts = Vec::new();
    for i in 0..9_i64 {
        let start = 1_700_000_000_000 + (i / 2) * 60_000;
        let state = if i % 3 == 0 {
            AlertState::Firing
        } else {
            AlertState::Resolved
        };
        alerts.push(alert(&format!("r{}", i % 4), start, state));
    }
    alerts
}

/// Every page of the history for `state` and `limit`, following `next`.
async fn all_pages(
    store: &impl AlertStore,
    state: Option<AlertState>,
    limit: usize,
) -> Vec<AlertPage> {
    let (t, m) = ids();
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let query = AlertQuery {
            state,
            limit,
            after: after.clone(),
        };
        let page = store
            .alerts(ModelRef::new(&t, &m), &query)
            .await
            .expect("page");
        after.clone_from(&page.next);
        pages.push(page);
        if after.is_none() || pages.len() > 20 {
            return pages;
        }
    }
}

#[tokio::test]
async fn history_pages_match_the_memory_store() {
    let (t, m) = ids();
    let alerts = history();
    let memory = MemoryAlertStore::default();
    for (i, a) in alerts.iter().enumerate() {
        let state = rule_state(&format!("s{i}"), 1, None);
        memory
            .save_rule_state(ModelRef::new(&t, &m), &state, Some(a))
            .await
            .expect("memory");
    }
    let probe = store(&[]);
    let items: Vec<Item> = alerts
        .iter()
        .map(|a| {
            let put = probe.history_put(&t, &m, a).expect("item");
            put.put().expect("put").item().clone()
        })
        .collect();
    for page_cap in [1, 2, 3, 100] {
        let seen = Seen::default();
        let rule = fake_query(items.clone(), page_cap, seen);
        let dynamo = store(&[&rule]);
        for state in [None, Some(AlertState::Firing), Some(AlertState::Resolved)] {
            for limit in [1, 2, 3, 4, 9, 10] {
                let expected = all_pages(&memory, state, limit).await;
                let actual = all_pages(&dynamo, state, limit).await;
                assert_eq!(
                    actual, expected,
                    "page cap {page_cap}, state {state:?}, limit {limit}"
                );
            }
        }
    }
}

#[tokio::test]
async fn history_query_shape() {
    let (t, m) = ids();
    let seen = Seen::default();
    let rule = fake_query(Vec::new(), 100, seen.clone());
    let store = store(&[&rule]);
    let query = AlertQuery {
        state: Some(AlertState::Firing),
        limit: 5,
        after: Some("acc-low@1700000000000".into()),
    };
    let page = store
        .alerts(ModelRef::new(&t, &m), &query)
        .await
        .expect("page");
    assert_eq!(
        page,
        AlertPage {
            alerts: Vec::new(),
            next: None
        }
    );
    let seen = seen.lock().unwrap();
    let request = &seen[0];
    assert_eq!(request.key_condition_expression(), Some("pk = :pk"));
    assert_eq!(request.scan_index_forward(), Some(false));
    assert_eq!(request.consistent_read(), Some(true));
    assert_eq!(request.filter_expression(), Some("#state = :state"));
    assert_eq!(
        request
            .expression_attribute_names()
            .and_then(|n| n.get("#state")),
        Some(&"state".to_owned())
    );
    let values = request.expression_attribute_values().expect("values");
    assert_eq!(values[":pk"], AttributeValue::S("HISTORY#t#m".into()));
    assert_eq!(values[":state"], AttributeValue::S("firing".into()));
    let start = request.exclusive_start_key().expect("start key");
    assert_eq!(
        (text(start, "pk"), text(start, "sk")),
        ("HISTORY#t#m", "1700000000000#acc-low")
    );
    assert!(request.limit() >= Some(6));
}

#[tokio::test]
async fn unfiltered_history_reads_one_more_than_the_limit() {
    let (t, m) = ids();
    let seen = Seen::default();
    let rule = fake_query(Vec::new(), 100, seen.clone());
    let store = store(&[&rule]);
    let query = AlertQuery {
        state: None,
        limit: 5,
        after: None,
    };
    store
        .alerts(ModelRef::new(&t, &m), &query)
        .await
        .expect("page");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].limit(), Some(6));
    assert_eq!(seen[0].exclusive_start_key(), None);
    assert_eq!(seen[0].filter_expression(), None);
}

#[tokio::test]
async fn a_bad_after_or_a_zero_limit() {
    let (t, m) = ids();
    let seen = Seen::default();
    let rule = fake_query(Vec::new(), 100, seen);
    let store = store(&[&rule]);
    let bad = AlertQuery {
        state: None,
        limit: 5,
        after: Some("not an alert id".into()),
    };
    let err = store
        .alerts(ModelRef::new(&t, &m), &bad)
        .await
        .expect_err("bad after");
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    let zero = AlertQuery {
        state: None,
        limit: 0,
        after: None,
    };
    let page = store
        .alerts(ModelRef::new(&t, &m), &zero)
        .await
        .expect("page");
    assert_eq!(
        page,
        AlertPage {
            alerts: Vec::new(),
            next: None
        }
    );
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn firing_counts_per_model_over_pages() {
    let seen: Seen<QueryInput> = Seen::default();
    let requests = seen.clone();
    let entry = |model: &str, rule: &str| {
        Item::from([
            ("pk".to_owned(), attr::s("FIRING#t")),
            ("sk".to_owned(), attr::s(format!("{model}#{rule}"))),
            ("model_id".to_owned(), attr::s(model)),
            ("alert_id".to_owned(), attr::s(format!("{rule}@1"))),
        ])
    };
    let first = vec![entry("a", "r1"), entry("a", "r2")];
    let second = vec![entry("b", "r1")];
    let rule = mock!(Client::query).then_compute_output(move |req| {
        requests.lock().unwrap().push(req.clone());
        match req.exclusive_start_key() {
            None => QueryOutput::builder()
                .set_items(Some(first.clone()))
                .last_evaluated_key("pk", attr::s("FIRING#t"))
                .last_evaluated_key("sk", attr::s("a#r2"))
                .build(),
            Some(_) => QueryOutput::builder()
                .set_items(Some(second.clone()))
                .build(),
        }
    });
    let store = store(&[&rule]);
    let (t, _) = ids();
    let counts = store.firing_counts(&t).await.expect("counts");
    assert_eq!(counts, BTreeMap::from([(model("a"), 2), (model("b"), 1)]));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0]
            .expression_attribute_values()
            .and_then(|v| v.get(":pk")),
        Some(&attr::s("FIRING#t"))
    );
}

#[tokio::test]
async fn rule_states_decode_and_check_their_item() {
    let (t, m) = ids();
    let good = attr::item(state_image(&t, &m, &rule_state("r1", 2, None)).expect("item"));
    let mut bad = attr::item(state_image(&t, &m, &rule_state("r2", 2, None)).expect("item"));
    bad.insert("version".into(), AttributeValue::N("3".into()));
    let items = Arc::new(Mutex::new(vec![good]));
    let answer = items.clone();
    let rule = mock!(Client::query).then_compute_output(move |req| {
        assert_eq!(
            req.expression_attribute_values().and_then(|v| v.get(":pk")),
            Some(&attr::s("STATE#t#m"))
        );
        QueryOutput::builder()
            .set_items(Some(answer.lock().unwrap().clone()))
            .build()
    });
    let store = store(&[&rule]);
    assert_eq!(
        store
            .rule_states(ModelRef::new(&t, &m))
            .await
            .expect("states"),
        [rule_state("r1", 2, None)]
    );
    items.lock().unwrap().push(bad);
    let err = store
        .rule_states(ModelRef::new(&t, &m))
        .await
        .expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

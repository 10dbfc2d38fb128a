//! Test support for the DynamoDB adapters: mocked clients that record what they were
//! sent, cancelled transactions, and the item an update expression makes of an absent
//! item (to compare with the image the memory adapters size). Ids and times come from
//! [`crate::testing`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_smithy_mocks::{Rule, mock};
use chrono::{DateTime, Utc};

use super::attr::Item;
use crate::config::RollupRetention;
use crate::domain::ids::{ModelId, TenantId};
use crate::testing::{model, tenant};

/// The tenant `t` and its model `m`, which most adapter tests write under.
pub fn ids() -> (TenantId, ModelId) {
    (tenant("t"), model("m"))
}

/// The rollup retention of the spec's defaults: minutes 8 days, hours 35, days 400.
pub fn retention() -> RollupRetention {
    RollupRetention {
        minute: chrono::TimeDelta::days(8),
        hour: chrono::TimeDelta::days(35),
        day: chrono::TimeDelta::days(400),
    }
}

/// Every request a mock saw.
pub type Seen<T> = Arc<Mutex<Vec<T>>>;

/// What a mock saw, in order.
pub fn seen<T: Clone>(seen: &Seen<T>) -> Vec<T> {
    seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Appends `request` to what a mock saw.
pub fn record<T>(seen: &Seen<T>, request: T) {
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
}

/// Fast SDK retries, so the throttling tests do not sleep.
pub fn fast_retries(
    builder: aws_sdk_dynamodb::config::Builder,
) -> aws_sdk_dynamodb::config::Builder {
    builder.retry_config(
        RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(StdDuration::from_millis(1))
            .with_max_backoff(StdDuration::from_millis(2)),
    )
}

/// A `PutItem` that succeeds and records its request.
pub fn put_rule(seen: &Seen<PutItemInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::put_item).then_compute_output(move |req| {
        record(&seen, req.clone());
        PutItemOutput::builder().build()
    })
}

/// An `UpdateItem` that succeeds and records its request.
pub fn update_rule(seen: &Seen<UpdateItemInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::update_item).then_compute_output(move |req| {
        record(&seen, req.clone());
        UpdateItemOutput::builder().build()
    })
}

/// A `DeleteItem` that succeeds and records its request.
pub fn delete_rule(seen: &Seen<DeleteItemInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::delete_item).then_compute_output(move |req| {
        record(&seen, req.clone());
        DeleteItemOutput::builder().build()
    })
}

/// A `Query` that finds nothing and records its request.
pub fn query_rule(seen: &Seen<QueryInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::query).then_compute_output(move |req| {
        record(&seen, req.clone());
        QueryOutput::builder().build()
    })
}

/// A `Scan` that finds nothing and records its request.
pub fn scan_rule(seen: &Seen<ScanInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::scan).then_compute_output(move |req| {
        record(&seen, req.clone());
        ScanOutput::builder().build()
    })
}

/// Takes what a mock saw, leaving it empty for the next request.
pub fn take<T>(seen: &Seen<T>) -> Vec<T> {
    std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The error of a write whose condition failed.
pub fn condition_failed() -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .message("The conditional request failed")
        .meta(
            ErrorMetadata::builder()
                .code("ConditionalCheckFailedException")
                .build(),
        )
        .build()
}

/// A `TransactWriteItems` that succeeds and records its request.
pub fn transact_rule(seen: &Seen<TransactWriteItemsInput>) -> Rule {
    let seen = seen.clone();
    mock!(Client::transact_write_items).then_compute_output(move |req| {
        record(&seen, req.clone());
        TransactWriteItemsOutput::builder().build()
    })
}

/// A transaction cancelled with one reason code per item.
pub fn cancelled(reasons: &[&str]) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message("Transaction cancelled")
            .set_cancellation_reasons(Some(
                reasons
                    .iter()
                    .map(|code| CancellationReason::builder().code(*code).build())
                    .collect(),
            ))
            .meta(
                ErrorMetadata::builder()
                    .code("TransactionCanceledException")
                    .build(),
            )
            .build(),
    )
}

/// A string attribute of `item`, "" when absent.
pub fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

/// A number attribute of `item`, "" when absent.
pub fn number<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .map_or("", String::as_str)
}

/// The item an update makes where no item was: the key, and every attribute the
/// expression sets or adds, with its value (`if_not_exists(a, :v)` takes `:v`). Knows
/// the `SET` and `ADD` clauses the adapters write.
pub fn first_write(
    key: &Item,
    expression: &str,
    names: Option<&HashMap<String, String>>,
    values: Option<&HashMap<String, AttributeValue>>,
) -> Item {
    let name = |n: &str| {
        names
            .and_then(|names| names.get(n))
            .cloned()
            .unwrap_or_else(|| n.to_owned())
    };
    let value = |v: &str| {
        values
            .and_then(|values| values.get(v.trim()))
            .cloned()
            .unwrap_or_else(|| panic!("no value {v} in {expression}"))
    };
    let mut item = key.clone();
    let mut clause = "";
    let actions = split_actions(expression);
    for action in &actions {
        let action = action.trim();
        let token = match action.split_once(' ') {
            Some((keyword @ ("SET" | "ADD"), rest)) => {
                clause = keyword;
                rest.trim()
            }
            _ => action,
        };
        let (target, operand) = match clause {
            "SET" => token.split_once('=').expect("SET a = v"),
            _ => token.split_once(' ').expect("ADD a :v"),
        };
        let operand = operand.trim();
        let operand = match operand.strip_prefix("if_not_exists(") {
            Some(rest) => {
                rest.trim_end_matches(')')
                    .split_once(',')
                    .expect("if_not_exists(a, :v)")
                    .1
            }
            None => operand,
        };
        item.insert(name(target.trim()), value(operand));
    }
    item
}

/// The item a series of updates makes where no item was (see [`first_write`]).
pub fn updated(requests: &[UpdateItemInput]) -> Item {
    let mut item = Item::new();
    for request in requests {
        item.extend(first_write(
            request.key().expect("key"),
            request.update_expression().expect("expression"),
            request.expression_attribute_names(),
            request.expression_attribute_values(),
        ));
    }
    item
}

/// A number attribute of epoch seconds, as a time.
pub fn epoch_s(item: &Item, name: &str) -> DateTime<Utc> {
    super::attr::optional_time_s(item, name)
        .expect("epoch seconds")
        .expect("present")
}

/// Splits an update expression at the commas between its actions (not those inside a
/// function's parentheses), and before a clause keyword.
fn split_actions(expression: &str) -> Vec<String> {
    let mut actions = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    for word in expression.split(' ') {
        if depth == 0 && ["SET", "ADD"].contains(&word) && !current.trim().is_empty() {
            actions.push(std::mem::take(&mut current));
        }
        for c in word.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    actions.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        current.push(' ');
    }
    if !current.trim().is_empty() {
        actions.push(current);
    }
    actions
}

#[test]
fn a_first_write_holds_what_the_expression_sets_and_adds() {
    let key = Item::from([("pk".to_owned(), AttributeValue::S("P".into()))]);
    let values: HashMap<String, AttributeValue> = [
        (":a", AttributeValue::S("x".into())),
        (":b", AttributeValue::N("2".into())),
        (":c", AttributeValue::N("3".into())),
        (":d", AttributeValue::S("y".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let names = HashMap::from([("#m".to_owned(), "minute".to_owned())]);
    let item = first_write(
        &key,
        "SET a = :a, #m = if_not_exists(#m, :b) ADD seq :c, d :d",
        Some(&names),
        Some(&values),
    );
    assert_eq!(item.len(), 5);
    assert_eq!(text(&item, "a"), "x");
    assert_eq!(number(&item, "minute"), "2");
    assert_eq!(number(&item, "seq"), "3");
    assert_eq!(text(&item, "d"), "y");
}

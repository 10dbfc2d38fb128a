//! Reading typed values out of DynamoDB items, with errors naming the attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Why an attribute could not be read.
pub type AttrError = String;

/// A required string attribute.
pub fn string(item: &Item, name: &str) -> Result<String, AttrError> {
    optional_string(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

/// An optional string attribute.
pub fn optional_string(item: &Item, name: &str) -> Result<Option<String>, AttrError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

/// A required number attribute holding epoch milliseconds.
pub fn time_ms(item: &Item, name: &str) -> Result<DateTime<Utc>, AttrError> {
    let Some(AttributeValue::N(n)) = item.get(name) else {
        return Err(format!("attribute {name} is missing or not a number"));
    };
    n.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| format!("attribute {name}={n} is not epoch milliseconds"))
}

/// A number attribute holding epoch milliseconds.
pub fn time_ms_value(time: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(time.timestamp_millis().to_string())
}

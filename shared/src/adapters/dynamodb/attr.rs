//! Reading typed values out of DynamoDB items, with errors naming the attribute;
//! building keys and values; and turning the neutral [`Image`] of an item into the
//! SDK's form.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::adapters::limits::{Image, Value};
use crate::domain::ids::{ModelId, TenantId};
use crate::error::{StoreError, StoreResult};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value (`value`'s decimal text).
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A table key: the partition key `pk` and the sort key `sk`.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The SDK's form of a value.
pub fn value(value: Value<'_>) -> AttributeValue {
    match value {
        Value::S(s) => AttributeValue::S(s.into_owned()),
        Value::N(n) => AttributeValue::N(n),
        Value::B(b) => AttributeValue::B(b.into_owned().into()),
        Value::Ss(set) => AttributeValue::Ss(set.into_iter().map(|s| s.into_owned()).collect()),
    }
}

/// The SDK's form of an item.
pub fn item(image: Image<'_>) -> Item {
    image
        .into_attributes()
        .into_iter()
        .map(|(name, v)| (name.into_owned(), value(v)))
        .collect()
}

/// The size DynamoDB counts for an SDK item (as [`Image::checked_size`] does for the
/// image it came from): the check that both adapters describe an item alike.
#[cfg(test)]
pub fn item_size(item: &Item) -> Result<usize, crate::adapters::limits::LimitError> {
    use std::borrow::Cow;
    let mut image = Image::default();
    for (name, v) in item {
        let neutral = match v {
            AttributeValue::S(s) => Value::S(Cow::Borrowed(s)),
            AttributeValue::N(n) => Value::N(n.clone()),
            AttributeValue::B(b) => Value::B(Cow::Borrowed(b.as_ref())),
            AttributeValue::Ss(set) => {
                Value::Ss(set.iter().map(|s| Cow::Borrowed(s.as_str())).collect())
            }
            other => panic!("attribute {name}: no adapter writes {other:?}"),
        };
        image.push(name.as_str(), neutral);
    }
    image.checked_size()
}

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
    n(time.timestamp_millis())
}

/// The error for an item that cannot be read back, naming its key.
pub fn corrupt(item: &Item, reason: impl Into<String>) -> StoreError {
    let key_part = |name| {
        optional_string(item, name)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    StoreError::Corrupt {
        key: format!("{}/{}", key_part("pk"), key_part("sk")),
        reason: reason.into(),
    }
}

/// What `read` makes of `item`, or the error naming the item's key and why it could
/// not be read.
pub fn read<T>(item: &Item, read: impl FnOnce() -> Result<T, AttrError>) -> StoreResult<T> {
    read().map_err(|reason| corrupt(item, reason))
}

/// A required integer number attribute.
pub fn integer(item: &Item, name: &str) -> Result<i64, AttrError> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse::<i64>()
            .map_err(|_| format!("attribute {name}={n} is not an integer")),
        _ => Err(format!("attribute {name} is missing or not a number")),
    }
}

/// A required non-negative integer number attribute.
pub fn count(item: &Item, name: &str) -> Result<u64, AttrError> {
    u64::try_from(integer(item, name)?).map_err(|_| format!("attribute {name} is negative"))
}

/// An optional non-negative integer number attribute; 0 when absent.
pub fn optional_count(item: &Item, name: &str) -> Result<u64, AttrError> {
    if item.contains_key(name) {
        count(item, name)
    } else {
        Ok(0)
    }
}

/// An optional number attribute holding epoch seconds.
pub fn optional_time_s(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, AttrError> {
    if item.get(name).is_none() {
        return Ok(None);
    }
    DateTime::from_timestamp(integer(item, name)?, 0)
        .map(Some)
        .ok_or_else(|| format!("attribute {name} is out of range"))
}

/// The `tenant_id` and `model_id` attributes, validated.
pub fn ids(item: &Item) -> Result<(TenantId, ModelId), AttrError> {
    let tenant =
        TenantId::try_from(string(item, "tenant_id")?).map_err(|e| format!("tenant_id {e}"))?;
    let model_id =
        ModelId::from_stored(string(item, "model_id")?).map_err(|e| format!("model_id {e}"))?;
    Ok((tenant, model_id))
}

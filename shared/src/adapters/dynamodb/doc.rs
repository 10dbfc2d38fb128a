//! The `doc` attribute: a value stored as its serde JSON (rule states, alerts, model
//! settings), written and read the same way by every adapter that keeps one.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::attr::{self, Item};
use crate::error::{StoreError, StoreResult};

/// `value` as the JSON of a `doc` attribute; `Internal` (for `operation`) when it has
/// no JSON form.
pub fn encode<T: Serialize>(value: &T, operation: &'static str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal {
        operation,
        source: Box::new(e),
    })
}

/// The value of an item's `doc`; `Corrupt` (naming the item's key) when it is missing,
/// not a string, or not the JSON of a `T`.
pub fn decode<T: DeserializeOwned>(item: &Item) -> StoreResult<T> {
    let doc = attr::read(item, || attr::string(item, "doc"))?;
    serde_json::from_str(&doc).map_err(|e| attr::corrupt(item, format!("doc: {e}")))
}

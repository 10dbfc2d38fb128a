//! DynamoDB implementations of the storage ports. Every table has the key
//! `pk` (S, hash) + `sk` (S, range) and the TTL attribute `expires_at`; what the keys
//! hold per item type is documented in docs/ARCHITECTURE.md and next to each type.
//! [`DynamoAlertStore`] keeps rule states, the alert history and the firing index in
//! the alerts table.
//!
//! Beside the adapters: `attr` (reading attributes, building keys and values), `doc`
//! (values stored as JSON), `request` (queries read whole, transactions) and, here, the
//! one mapping of SDK errors to [`StoreError`].

mod alerts;
mod attr;
mod doc;
mod labels;
mod partials;
mod registry;
mod request;
mod rollups;
mod settings;
mod subscriptions;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use alerts::DynamoAlertStore;
pub use labels::DynamoLabelStore;
pub use partials::{DynamoPartialStore, partial_pk};
pub use registry::DynamoModelRegistry;
pub use rollups::DynamoRollupStore;
pub use settings::DynamoModelSettings;

// The item images the memory adapters size their items with, and what they page
// their reads by, so both adapters describe each item once.
pub(crate) use alerts::{FILTERED_PAGE_ITEMS, firing_image, history_image, state_image};
pub(crate) use partials::{batch_image, partial_image, pending_image};
pub(crate) use registry::model_image;
pub(crate) use rollups::{cursor_image, partition, partitions, rollup_image, totals_image};
pub(crate) use settings::{BASELINE, CAPTURED, RULES, TRENDS, setting_item, settings_image};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};

use crate::error::{StoreError, StoreResult};

/// Service error codes that say the request itself is wrong (a bug or a missing
/// table), so retrying cannot help.
const PERMANENT_ERROR_CODES: [&str; 4] = [
    "ValidationException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "SerializationException",
];

/// Maps an SDK error to the port's error, keeping the source chain: permanent
/// service errors are `Internal`, everything else (throttling after the SDK's own
/// retries, 5xx, timeouts, connection failures) is `Unavailable`.
fn unavailable<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let permanent = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| PERMANENT_ERROR_CODES.contains(&code));
    StoreError::failed_call(operation, permanent, Box::new(err))
}

/// The outcome of a conditional write: `Ok(true)` written, `Ok(false)` when its
/// condition failed (an expected answer, not an error), else the mapped error.
fn conditional<O, E, R>(
    result: Result<O, SdkError<E, R>>,
    operation: &'static str,
) -> StoreResult<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(unavailable(operation, err)),
    }
}

/// The cancellation reason of a transaction item whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// The cancellation reason of a transaction item refused as malformed (e.g. an item
/// over 400 KB, a number DynamoDB cannot hold): retrying cannot help.
const VALIDATION_FAILED: &str = "ValidationError";

/// The outcome of a `TransactWriteItems` with conditions: `Ok(true)` written,
/// `Ok(false)` when a condition failed, `Internal` when an item was refused as
/// invalid, else the mapped error.
fn transacted<R>(
    result: Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError, R>>,
    operation: &'static str,
) -> StoreResult<bool>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let Err(err) = result else {
        return Ok(true);
    };
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    {
        let reasons: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .collect();
        if reasons.contains(&CONDITION_FAILED) {
            return Ok(false);
        }
        if reasons.contains(&VALIDATION_FAILED) {
            return Err(StoreError::Internal {
                operation,
                source: Box::new(err),
            });
        }
    }
    Err(unavailable(operation, err))
}

//! Errors of the storage ports, mapped once to HTTP status or retry at the edge.

use thiserror::Error;

use crate::domain::MergeError;

/// A boxed error source, kept so logs show the whole chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a store operation returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation did not complete.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backing service is unavailable, throttling or failing: retry later (503).
    #[error("{operation} is temporarily unavailable")]
    Unavailable {
        /// What was being done, e.g. "list models".
        operation: &'static str,
        /// The service's error.
        #[source]
        source: BoxError,
    },
    /// A request could not be built or was refused as malformed: a bug, not
    /// retryable (500).
    #[error("{operation} failed")]
    Internal {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A stored item cannot be read back, or stored items contradict each other: a bug
    /// or manual edit, not retryable.
    #[error("stored item {key} is corrupt: {reason}")]
    Corrupt {
        /// The item's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// A failed call to a service: `Internal` when the service refused the request
    /// itself (`permanent`: sending it again cannot help), `Unavailable` otherwise.
    pub fn failed_call(operation: &'static str, permanent: bool, source: BoxError) -> Self {
        if permanent {
            Self::Internal { operation, source }
        } else {
            Self::Unavailable { operation, source }
        }
    }

    /// Stored states that cannot be merged (they hold different tasks): the data
    /// behind `key` contradicts itself.
    pub fn inconsistent(key: String, err: MergeError) -> Self {
        Self::Corrupt {
            key,
            reason: err.to_string(),
        }
    }
}

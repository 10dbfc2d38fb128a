//! Typed errors of the metric engine: why a record could not be folded into a
//! [`WindowState`](super::WindowState) and why two states could not be merged.
//! (Decoding errors live with the codec: [`DecodeError`](super::DecodeError).)

use thiserror::Error;

use super::record::Task;

/// Why a record was rejected by a fold. The state is left unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FoldError {
    /// A floating-point field is NaN or infinite.
    #[error("{field} must be a finite number")]
    NonFinite {
        /// The record field, as named on the wire (`latency_ms`, `score`, `actual`…).
        field: &'static str,
    },
    /// A finite field lies outside its allowed range.
    #[error("{field} = {value} is out of range (expected {expected})")]
    OutOfRange {
        /// The record field.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// The allowed range, in words (`"0 ≤ value ≤ 1"`).
        expected: &'static str,
    },
    /// A string field is longer than its cap.
    #[error("{field} is {len} bytes long (at most {max_bytes} allowed)")]
    TooLong {
        /// The record field (`predicted`, `actual`, `error_type`).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The cap in bytes.
        max_bytes: usize,
    },
    /// `error_type` was given on a record whose status is `ok`.
    #[error("error_type is only allowed on records whose status is error")]
    ErrorTypeOnOkRecord,
    /// A label or error type is the reserved name of the overflow bucket.
    #[error("{field} may not be the reserved name of the overflow bucket")]
    Reserved {
        /// The record field (`predicted`, `actual`, `error_type`).
        field: &'static str,
    },
    /// The record's task differs from the task of the records already in the window.
    #[error("a {record} record cannot join a window of {window} records")]
    TaskMismatch {
        /// The window's task.
        window: Task,
        /// The record's task.
        record: Task,
    },
}

/// Why two states could not be merged. The receiving state is left unchanged.
///
/// Caps never make a merge fail (what is beyond them goes to the overflow bucket); only
/// states of different tasks cannot be merged, which ingest rules out for one model (a
/// model keeps the task it was first seen with).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    /// The two states hold records of different tasks.
    #[error("cannot merge a window of {left} records with one of {right} records")]
    TaskMismatch {
        /// The receiving state's task.
        left: Task,
        /// The other state's task.
        right: Task,
    },
}

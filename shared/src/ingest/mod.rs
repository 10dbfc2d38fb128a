//! Ingest: the batch contract (parsing and whole-batch validation), the service that
//! stores an accepted batch idempotently, and its bounded receipt (the 202 answer and
//! the compact form it is stored in).

mod batch;
mod json;
mod receipt;
mod service;

pub use batch::{
    BatchLimits, BatchRejection, MAX_PROBLEMS, Problem, ValidBatch, ValidPrediction, parse_batch,
};
pub use receipt::{
    ArchiveReceipt, IngestReceipt, MAX_LISTED_REJECTIONS, MAX_REJECTION_REASON_BYTES, ReceiptError,
};
pub use service::{IngestError, IngestService, content_digest, minute_of, minute_partials};

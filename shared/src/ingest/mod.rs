//! Ingest: the batch contract (parsing and whole-batch validation), the content digest
//! a batch id is claimed for, and the service that stores an accepted batch
//! idempotently.

mod batch;
mod digest;
mod json;

mod service;

pub use batch::{
    BatchLimits, BatchRejection, MAX_PROBLEMS, Problem, ValidBatch, ValidPrediction, parse_batch,
};
pub use digest::{content_digest, legacy_body_digest};
pub use service::{
    ArchiveReceipt, IngestError, IngestReceipt, IngestService, minute_of, minute_partials,
};

//! Ingest: the batch contract (parsing and whole-batch validation) and the service that
//! stores an accepted batch idempotently.

mod batch;
mod json;

mod service;

pub use batch::{
    BatchLimits, BatchRejection, MAX_PROBLEMS, Problem, ValidBatch, ValidPrediction, parse_batch,
};
pub use service::{
    ArchiveReceipt, IngestError, IngestReceipt, IngestService, content_digest, minute_of,
    minute_partials,
};

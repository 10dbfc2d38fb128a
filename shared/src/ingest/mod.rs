//! Ingest: the batch contract (parsing and whole-batch validation), the content digest
//! a batch id is claimed for, the service that stores an accepted batch idempotently,
//! and its bounded receipt (the 202 answer and the compact form it is stored in).

mod actuals;
mod batch;
mod digest;
mod join;
mod json;
mod quota;
mod receipt;
mod segments;
mod service;

pub use actuals::{
    ActualsBatch, ActualsReceipt, FateCount, MAX_SAMPLE_IDS, ValidActual, check_task, parse_actuals,
};
pub use batch::{BatchLimits, BatchRejection, MAX_PROBLEMS, Problem, parse_batch};
pub use digest::{actuals_digest, content_digest, legacy_body_digest};
pub use join::PredictionLabels;
pub use quota::IngestQuotas;
pub use receipt::{
    ArchiveReceipt, IngestReceipt, MAX_LISTED_REJECTIONS, MAX_REJECTION_REASON_BYTES, ReceiptError,
};
pub use segments::{BatchSegments, SegmentAdmission};
pub use service::{IngestError, IngestService, minute_partials};

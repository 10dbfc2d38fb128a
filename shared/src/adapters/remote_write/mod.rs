//! Prometheus remote-write 1.0 client: the exporter `aggregate` (and `evaluate`) use to publish the
//! spec's `ml_model_*` series (BRIEF decision 5). One concern per file:
//!
//! - [`proto`]: the `prometheus.WriteRequest` messages, with a hand-written protobuf
//!   encoder and decoder.
//! - [`request`]: from [`Series`] to snappy-compressed request bodies — label sorting,
//!   `__name__`, sample order, validation, splitting — and the header constants.
//! - [`auth`]: [`RemoteWriteAuth`] (`PROMETHEUS_REMOTE_WRITE_AUTH`): none, basic,
//!   bearer, SigV4 (`aps`).
//! - [`secret`]: the credential kept in Secrets Manager, read at run time and again
//!   after a refusal (`PROMETHEUS_REMOTE_WRITE_AUTH_SECRET`).
//! - [`service`]: one request over HTTP with the [`RetryPolicy`] (retry 5xx and 429
//!   with bounded exponential backoff, never other 4xx).
//! - [`sink`]: [`RemoteWriteClient`], which ties them together.
//! - [`exporter`]: [`PrometheusExporter`], the client behind the export ports.
//! - [`error`]: the error types.

pub mod auth;
pub mod error;
pub mod exporter;
pub mod proto;
pub mod request;
pub mod secret;
pub mod service;
pub mod sink;

pub use auth::{AuthParseError, RemoteWriteAuth};
pub use error::{AttemptError, RemoteWriteError, RemoteWriteSetupError};
pub use exporter::PrometheusExporter;
pub use request::{SeriesProblem, SkippedSeries};
pub use service::RetryPolicy;
pub use sink::{RemoteWriteClient, WriteReport};

//! modelwatch's shared crate: everything the four Lambda functions have in common.
//!
//! Dependencies point inward (docs/ARCHITECTURE.md, "Invariants"; checked by
//! `infra/check/layers.py`): domain ← ports ← services (ingest, aggregate, summary,
//! alerting) ← adapters and the functions' wiring.
//!
//! - [`domain`]: pure logic — prediction records, the mergeable window state (metric
//!   engine), metric definitions and trend math. No AWS types, no I/O, no clock.
//! - [`aggregate`]: rolling partials up into minute, hour and day rollups, and the
//!   exports of what was rolled up.
//! - [`alerting`]: the evaluation run (baselines, alert rules and their lifecycle,
//!   trends) and the gauges it writes; the pure alerting types are in `domain::alerting`.
//! - [`config`]: the functions' typed configuration, read once from the environment at
//!   cold start. Two other readers of the environment stay where they belong: the AWS
//!   SDK (region, credentials, `AWS_ENDPOINT_URL*`, also in [`aws`]) and [`telemetry`]
//!   (Lambda's log level and format).
//! - [`aws`]: construction of the AWS SDK clients (endpoint overrides, Timestream
//!   endpoint discovery); [`tls`]: the TLS of every outbound connection (rustls on
//!   ring), the SDK's HTTPS client and reqwest's.
//! - [`edge`]: the HTTP edge of `ingest` and `api`: tenant from the JWT authorizer,
//!   the JSON error shape.
//! - [`ingest`]: the prediction-batch contract and the ingest service.
//! - [`schedule`]: the EventBridge trigger of `aggregate` and `evaluate`.
//! - [`ports`]: the storage and export traits the services need, speaking domain types;
//!   [`adapters`]: their DynamoDB, Timestream, SNS, CloudWatch, remote-write and
//!   in-memory implementations; [`error`]: the store errors.
//! - [`query`]: the query parameters of the HTTP routes (known names, each at most once).
//! - [`summary`]: the performance summary of a model over a window, from the rollups.
//! - [`telemetry`]: tracing set-up shared by every function; [`startup`]: the cold
//!   start every `main` begins with (tracing, configuration, SDK configuration).
//! - `testing` (tests and the `testing` feature only): fixtures for tests and benches.

pub mod adapters;
pub mod aggregate;
pub mod alerting;
pub mod aws;
pub mod config;
pub mod domain;
#[cfg(feature = "http")]
pub mod edge;
pub mod error;
pub mod ingest;
pub mod ports;
pub mod query;
pub mod schedule;
pub mod startup;
pub mod summary;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

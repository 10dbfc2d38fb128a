//! The `api` function's request handling: the monitoring HTTP API behind API
//! Gateway's JWT authorizer (`docs/openapi.yaml` is its contract).
//!
//! - [`Api`] (`handler.rs`): the dependencies built once at cold start, and
//!   [`Api::handle`]: tenant, route, method, then the route's answer; every refusal in
//!   the one JSON error shape (`refusal.rs`).
//! - `routes/`: the path → [`Route`] table and one module per resource (models,
//!   trends, alert rules, baseline, alert history), each reading the stores it needs
//!   and building its JSON view; the summary route answers with
//!   `modelwatch::summary::SummaryService`.
//!
//! A library (with the binary in `main.rs`) so that the benchmark drives the handler
//! exactly as the Lambda runtime does.

mod handler;
mod refusal;
mod routes;

pub use handler::{Api, MAX_BODY_BYTES};
pub use routes::{ModelResource, Route};

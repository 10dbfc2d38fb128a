//! The evaluation `evaluate` runs: the rules, baselines and trends of
//! [`crate::domain::alerting`] over the storage ports.
//!
//! - [`service`]: one scheduled evaluation run over every active model.
//! - [`gauges`]: baselines, thresholds and firing rules as Prometheus series.
//! - [`subscriptions`]: a tenant's own alert subscriptions, and the delivery of each
//!   alert to the topic and the tenant's webhooks.

pub mod gauges;
pub mod service;
pub mod subscriptions;

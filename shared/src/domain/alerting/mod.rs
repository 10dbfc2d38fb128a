//! Baselines, alert rules, the alert lifecycle and trends: everything `evaluate`
//! decides and the API shows about them, as pure types and functions (the evaluation
//! run over the stores is [`crate::alerting`]).
//!
//! - [`baseline`]: registered test-set metrics and forecast, captured 24-hour baseline.
//! - [`rules`]: custom rules (the specification's JSON) and the default rules.
//! - [`settings`]: the specification's thresholds and the alert settings.
//! - [`state`]: ok → firing → resolved, one notification per transition.
//! - [`trends`]: seven-day OLS trends with labels, breach projection, confidence.

pub mod baseline;
pub mod rules;
pub mod settings;
pub mod state;
pub mod trends;

pub use settings::{AlertSettings, PerfSettings};

use serde::Serialize;

/// A problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field's path, e.g. `alert_rules[2].window` (empty for the body itself).
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

/// Every problem found in a request body (answered as 400 with all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    /// Records a problem with `field`.
    pub fn push(&mut self, field: &str, reason: &str) {
        self.0.push(FieldProblem {
            field: field.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems.
    pub fn as_slice(&self) -> &[FieldProblem] {
        &self.0
    }
}

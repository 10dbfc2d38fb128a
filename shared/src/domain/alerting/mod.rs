//! Baselines, alert rules, the alert lifecycle and trends: everything `evaluate`
//! decides and the API shows about them, as pure types and functions (the evaluation
//! run over the stores is [`crate::alerting`]).
//!
//! - [`baseline`]: registered test-set metrics and forecast, captured 24-hour baseline.
//! - [`rules`]: custom rules (the specification's JSON) and the default rules.
//! - [`settings`]: the specification's thresholds and the alert settings.
//! - [`state`]: ok → firing → resolved, one notification per transition.
//! - [`trends`]: seven-day OLS trends with labels, breach projection, confidence.
//! - [`version_rule`]: the default rule "the newest version is worse than the one before".

pub mod baseline;
pub mod rules;
pub mod settings;
pub mod state;
pub mod subscriptions;
pub mod trends;
pub mod version_rule;

pub use settings::{AlertSettings, PerfSettings};

use serde::Serialize;
use serde_json::{Map, Value};

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

    /// Records every key of `object` that is not one of `fields`, at `path(key)`:
    /// "is not a field of {what} (the fields)".
    pub fn unknown_fields(
        &mut self,
        object: &Map<String, Value>,
        fields: &[&str],
        what: &str,
        path: impl Fn(&str) -> String,
    ) {
        for key in object.keys().filter(|key| !fields.contains(&key.as_str())) {
            let reason = format!("is not a field of {what} ({})", fields.join(", "));
            self.push(&path(key), &reason);
        }
    }

    /// The value `text` names among `choices`; otherwise records at `field` that it
    /// must be one of them.
    pub fn one_of<T: Copy>(&mut self, field: &str, text: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        let listed = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        };
        self.push(field, &format!("must be {listed}"));
        None
    }
}

/// A request body that must be a JSON object of `fields` (`what` names it in the
/// problems): the object and the problems found so far, or the problem that it is
/// not an object.
pub fn request_object<'a>(
    body: &'a Value,
    fields: &[&str],
    what: &str,
) -> Result<(&'a Map<String, Value>, Problems), Problems> {
    let mut problems = Problems::default();
    let Some(object) = body.as_object() else {
        problems.push("", "must be a JSON object");
        return Err(problems);
    };
    problems.unknown_fields(object, fields, what, str::to_owned);
    Ok((object, problems))
}

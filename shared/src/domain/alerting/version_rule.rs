//! The default rule "the newest version is significantly worse than the one before",
//! on when `VERSION_REGRESSION_MIN_LABELED` is set (off by default: docs/ARCHITECTURE.md,
//! "Model versions").
//!
//! Each evaluation compares, over the rule's window, the model's newest kept version
//! (by first seen) with the version first seen before it, as the compare route does
//! ([`compare`]): the rule breaches when a two-proportion test finds the newest worse
//! on accuracy (classifiers) or error rate, with at least the configured number of
//! samples on the newest's side; it is clear when a test ran and found it no worse,
//! and has insufficient data otherwise (fewer samples, or a single version). The rule
//! keeps one id whichever versions it compares, so a release that fixes a regression
//! resolves the alert its predecessor opened.

use chrono::{DateTime, Utc};

use super::rules::{AlertRule, Condition, RuleWindow, Severity};
use super::state::{RuleEvaluation, Verdict};
use crate::domain::comparison::{MetricComparison, compare};
use crate::domain::slice::Slice;
use crate::domain::{MetricName, MetricSet, Task, TimeSpan};

/// The rule's id: one per model, whichever versions it compares.
pub const VERSION_RULE_ID: &str = "default-version-regression";

/// The rule's window: a day of both versions' traffic.
pub const VERSION_RULE_WINDOW: RuleWindow = RuleWindow::ONE_DAY;

/// The previous and the newest of `versions` (id and first seen): the two first seen
/// last, in that order; `None` with fewer than two.
pub fn newest_two<'a>(
    versions: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
) -> Option<(&'a str, &'a str)> {
    let mut by_first_seen: Vec<(DateTime<Utc>, &str)> =
        versions.into_iter().map(|(v, first)| (first, v)).collect();
    by_first_seen.sort_unstable();
    match by_first_seen.as_slice() {
        [.., (_, previous), (_, newest)] => Some((previous, newest)),
        _ => None,
    }
}

/// The metrics the rule tests, in the order it names them.
fn tested_metrics(task: Task) -> &'static [MetricName] {
    match task {
        Task::Regression => &[MetricName::ErrorRate],
        _ => &[MetricName::Accuracy, MetricName::ErrorRate],
    }
}

/// The rule judged on the metrics of the `previous` and `newest` versions over
/// `window`, needing `min_samples` on the newest's side (labeled predictions for
/// accuracy, predictions for error rate).
pub fn judge_versions(
    task: Task,
    min_samples: u64,
    previous: (&str, &MetricSet),
    newest: (&str, &MetricSet),
    window: TimeSpan,
) -> RuleEvaluation {
    let comparison = compare(previous.1, newest.1);
    let of = |metric: MetricName| comparison.metrics.iter().find(|m| m.metric == metric);
    let worse = |m: &MetricComparison| {
        m.test
            .as_ref()
            .is_some_and(|t| t.significant && (t.z > 0.0) != m.higher_is_better)
    };
    let tested = tested_metrics(task);
    // The metric it is worse on, else the task's first one.
    let metric = tested
        .iter()
        .copied()
        .find(|m| of(*m).is_some_and(worse))
        .unwrap_or(tested[0]);
    let samples = match metric {
        MetricName::Accuracy => newest.1.labeled,
        _ => newest.1.predictions,
    };
    let judged = of(metric);
    let enough = samples >= min_samples;
    let verdict = match judged {
        Some(m) if enough && worse(m) => Verdict::Breached,
        Some(m) if enough && m.test.is_some() => Verdict::Clear,
        _ => Verdict::InsufficientData,
    };
    let higher_is_better = judged.is_some_and(|m| m.higher_is_better);
    let p_value = judged.and_then(|m| m.test.as_ref()).map_or_else(
        || "untested".to_owned(),
        |t| format!("p = {:.3e}", t.p_value),
    );
    let rule = AlertRule {
        id: VERSION_RULE_ID.to_owned(),
        metric,
        condition: if higher_is_better {
            Condition::Below
        } else {
            Condition::Above
        },
        threshold: judged.and_then(|m| m.baseline).unwrap_or(0.0),
        window: VERSION_RULE_WINDOW,
        severity: Severity::Warning,
        min_samples,
        basis: Some(format!(
            "version {} against the previous version {} ({}): two-sided two-proportion z-test at 0.05, {p_value}",
            newest.0,
            previous.0,
            metric.as_str()
        )),
        label_delay: None,
        slice: Some(Slice::version(newest.0)),
    };
    RuleEvaluation {
        observed: judged.and_then(|m| m.candidate),
        samples,
        verdict,
        window,
        baseline: judged.and_then(|m| m.baseline),
        rule,
    }
}

#[cfg(test)]
mod tests;

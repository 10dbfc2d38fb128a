use chrono::TimeDelta;

use super::*;
use crate::domain::{Outcome, PredictionRecord, Status, WindowState};
use crate::testing::{at, binary_record};

/// The metrics of `n` labeled binary predictions of which `correct` are right, and
/// `errors` failed requests.
fn metrics(n: usize, correct: usize, errors: usize) -> MetricSet {
    let mut state = WindowState::default();
    for i in 0..n {
        let record = binary_record(true, Some(i < correct), 0.75);
        state.fold_prediction(&record).expect("fold");
    }
    for _ in 0..errors {
        let failed = PredictionRecord {
            status: Status::Error,
            error_type: Some("timeout".into()),
            outcome: Outcome::Binary {
                predicted: None,
                actual: None,
                score: None,
            },
            ..binary_record(true, None, 0.5)
        };
        state.fold_prediction(&failed).expect("fold");
    }
    MetricSet::compute(&state, window(), None)
}

fn window() -> TimeSpan {
    let end = at("2026-12-01T12:00:00Z");
    TimeSpan::new(end - TimeDelta::days(1), end)
}

fn judge(previous: &MetricSet, newest: &MetricSet, min: u64) -> RuleEvaluation {
    judge_versions(
        Task::BinaryClassification,
        min,
        ("v1", previous),
        ("v2", newest),
        window(),
    )
}

#[test]
fn the_newest_two_are_the_last_first_seen() {
    let t = |h: i64| at("2026-12-01T00:00:00Z") + TimeDelta::hours(h);
    assert_eq!(
        newest_two([("v10", t(5)), ("v2", t(1)), ("v9", t(3))]),
        Some(("v9", "v10"))
    );
    assert_eq!(newest_two([("v1", t(0))]), None);
    assert_eq!(newest_two(std::iter::empty()), None);
}

#[test]
fn a_significantly_worse_newest_version_breaches_on_the_metric_it_is_worse_on() {
    let eval = judge(&metrics(900, 855, 0), &metrics(300, 240, 0), 200);
    assert_eq!(eval.verdict, Verdict::Breached);
    assert_eq!(eval.rule.id, VERSION_RULE_ID);
    assert_eq!(eval.rule.metric, MetricName::Accuracy);
    assert_eq!(eval.rule.condition, Condition::Below);
    assert_eq!(eval.rule.slice, Some(Slice::version("v2")));
    assert_eq!((eval.observed, eval.baseline), (Some(0.8), Some(0.95)));
    assert_eq!(eval.rule.threshold, 0.95);
    assert_eq!(eval.samples, 300);
    let basis = eval.rule.basis.as_deref().expect("basis");
    assert!(
        basis.contains("version v2 against the previous version v1"),
        "{basis}"
    );
    // As accurate, but failing more: judged on the error rate.
    let eval = judge(&metrics(900, 855, 0), &metrics(300, 285, 40), 200);
    assert_eq!(
        (eval.verdict, eval.rule.metric, eval.rule.condition),
        (Verdict::Breached, MetricName::ErrorRate, Condition::Above)
    );
    assert_eq!(eval.samples, 340);
}

#[test]
fn no_worse_or_too_few_samples_do_not_breach() {
    let same = judge(&metrics(900, 855, 0), &metrics(300, 285, 0), 200);
    assert_eq!(same.verdict, Verdict::Clear);
    let better = judge(&metrics(900, 800, 0), &metrics(300, 297, 0), 200);
    assert_eq!(better.verdict, Verdict::Clear);
    // Worse, but the newest has fewer labeled predictions than the rule needs.
    let early = judge(&metrics(900, 855, 0), &metrics(150, 100, 0), 200);
    assert_eq!(early.verdict, Verdict::InsufficientData);
    // Too few for any test at all.
    let untested = judge(&metrics(900, 855, 0), &metrics(10, 2, 0), 5);
    assert_eq!(untested.verdict, Verdict::InsufficientData);
    assert!(untested.rule.basis.expect("basis").ends_with("untested"));
}

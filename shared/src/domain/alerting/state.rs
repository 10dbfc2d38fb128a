//! The alert lifecycle of one rule: ok → firing → resolved, one notification per
//! transition. [`step`] is the whole state machine, pure; the evaluation service
//! publishes what it returns and only then stores it, so a failed publish leaves the
//! state where it was and the next run tries again.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::rules::AlertRule;
use crate::domain::TimeSpan;
use crate::domain::ids::{ModelId, TenantId};

/// Where a rule stands after its latest evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Enough data, threshold not breached.
    Ok,
    /// Breached; an alert is open.
    Firing,
    /// Too few samples in the window (or the metric cannot be computed there).
    InsufficientData,
}

/// The state an alert message or history entry reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The rule is breached.
    Firing,
    /// The rule was breached and is no longer.
    Resolved,
}

impl AlertState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert: the SNS message body, and the alert-history entry (updated in place when
/// it resolves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// `<rule id>@<start, epoch ms>`: unique per model, stable across notifications of
    /// the alert (subscribers can de-duplicate on `alert_id` + `state`).
    pub alert_id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// The rule as evaluated.
    pub rule: AlertRule,
    /// Firing or resolved.
    pub state: AlertState,
    /// The metric's value over the rule's window at this transition.
    pub observed_value: Option<f64>,
    /// The metric's baseline, when it has one.
    pub baseline: Option<f64>,
    /// Samples behind `observed_value`.
    pub sample_count: u64,
    /// Evaluation window behind `observed_value`, start.
    pub window_start: DateTime<Utc>,
    /// Evaluation window behind `observed_value`, end.
    pub window_end: DateTime<Utc>,
    /// When the alert started firing.
    pub started_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The starts an alert id can hold, in epoch milliseconds: from 1970-01-01 up to (not
/// including) 2286-11-20T17:46:40Z, i.e. at most 13 digits, so a store can key the
/// history by a zero-padded 13-digit start that sorts in time order. The one
/// definition: [`parse_alert_id`] refuses any other start, and stores build their keys
/// through [`alert_start_ms`].
pub const ALERT_START_MS: std::ops::Range<i64> = 0..10_000_000_000_000;

/// `started_at` in epoch milliseconds, if an alert id can hold it ([`ALERT_START_MS`]).
pub fn alert_start_ms(started_at: DateTime<Utc>) -> Option<i64> {
    Some(started_at.timestamp_millis()).filter(|ms| ALERT_START_MS.contains(ms))
}

/// The id of the alert of `rule_id` that started at `started_at`.
pub fn alert_id(rule_id: &str, started_at: DateTime<Utc>) -> String {
    format!("{rule_id}@{}", started_at.timestamp_millis())
}

/// The rule id and start of an alert id, if it is one: a valid rule id, `@`, and the
/// start in epoch milliseconds (decimal digits only) within [`ALERT_START_MS`].
pub fn parse_alert_id(alert_id: &str) -> Option<(&str, DateTime<Utc>)> {
    let (rule, millis) = alert_id.rsplit_once('@')?;
    crate::domain::ids::check_id(rule).ok()?;
    if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: a failed parse is an overflow, out of range like any larger start.
    let millis: i64 = millis.parse().ok()?;
    if !ALERT_START_MS.contains(&millis) {
        return None;
    }
    Some((rule, DateTime::from_timestamp_millis(millis)?))
}

impl AlertRecord {
    /// A readable SNS subject (≤ 100 characters, as SNS requires).
    pub fn subject(&self) -> String {
        let value = self
            .observed_value
            .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"));
        let text = format!(
            "[{}] {} {}: {} {} {} over {} (now {value})",
            self.rule.severity.as_str().to_uppercase(),
            self.model_id,
            self.state.as_str(),
            self.rule.metric,
            self.rule.condition.as_str(),
            self.rule.threshold,
            self.rule.window,
        );
        truncate_chars(&text, 100)
    }

    /// The SNS message attributes subscribers filter on.
    pub fn message_attributes(&self) -> [(&'static str, String); 6] {
        [
            ("severity", self.rule.severity.as_str().to_owned()),
            ("model_id", self.model_id.to_string()),
            ("tenant_id", self.tenant_id.to_string()),
            ("state", self.state.as_str().to_owned()),
            ("metric", self.rule.metric.as_str().to_owned()),
            ("rule_id", self.rule.id.clone()),
        ]
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The stored state of one rule of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// The rule.
    pub rule_id: String,
    /// Its status.
    pub status: RuleStatus,
    /// Since when it has this status.
    pub since: DateTime<Utc>,
    /// The open alert while firing.
    pub alert: Option<AlertRecord>,
    /// When the open alert was last published.
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Grows by one with every write; a write expects the version it read.
    pub version: u64,
}

/// What a rule's window showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The threshold is breached.
    Breached,
    /// Enough data, not breached.
    Clear,
    /// Not enough data to say.
    InsufficientData,
}

/// One rule evaluated over its window.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvaluation {
    /// The rule.
    pub rule: AlertRule,
    /// The metric over the window (`None` when it cannot be computed).
    pub observed: Option<f64>,
    /// Samples in the window (labeled for quality metrics, else predictions).
    pub samples: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// The window.
    pub window: TimeSpan,
    /// The metric's baseline, if any.
    pub baseline: Option<f64>,
}

impl RuleEvaluation {
    /// Judges `observed` with `samples` against `rule`.
    pub fn judge(
        rule: &AlertRule,
        observed: Option<f64>,
        samples: u64,
        window: TimeSpan,
        baseline: Option<f64>,
    ) -> Self {
        let verdict = match observed {
            Some(value) if samples >= rule.min_samples => {
                if rule.condition.breached(value, rule.threshold) {
                    Verdict::Breached
                } else {
                    Verdict::Clear
                }
            }
            _ => Verdict::InsufficientData,
        };
        Self {
            rule: rule.clone(),
            observed,
            samples,
            verdict,
            window,
            baseline,
        }
    }
}

/// What to do after an evaluation.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per rule and run; boxing buys nothing"
)]
pub enum Step {
    /// Nothing changed that needs storing.
    Unchanged,
    /// Store the new state; nothing to publish.
    Record(RuleState),
    /// Publish `alert`, then store `state` (and the alert in the history).
    Notify {
        /// The state after the notification.
        state: RuleState,
        /// The message, also the history entry.
        alert: AlertRecord,
    },
}

/// Who the evaluation is for and when.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The model.
    pub model_id: &'a ModelId,
    /// The evaluation time.
    pub now: DateTime<Utc>,
    /// Re-publish a still-firing alert after this long (`None`: never).
    pub renotify_after: Option<TimeDelta>,
}

/// The state machine: from the stored state `previous` (`None` before the first
/// evaluation) and this evaluation, the next step. A firing alert stays firing while
/// data is insufficient: no evidence of recovery. A run older than the stored state
/// (a schedule retried late, a dead-letter redrive) changes nothing: a transition is
/// never dated before the one it follows.
pub fn step(previous: Option<&RuleState>, eval: &RuleEvaluation, cx: StepContext<'_>) -> Step {
    if previous.is_some_and(|p| cx.now < p.since) {
        return Step::Unchanged;
    }
    let version = previous.map_or(1, |p| p.version + 1);
    let open = previous.and_then(|p| Some((p, p.alert.as_ref()?)));
    match (open, eval.verdict) {
        (Some((previous, alert)), Verdict::Breached) => {
            let due = match (cx.renotify_after, previous.last_notified_at) {
                (Some(every), Some(last)) => cx.now - last >= every,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !due {
                return Step::Unchanged;
            }
            let alert = AlertRecord {
                rule: eval.rule.clone(),
                observed_value: eval.observed,
                baseline: eval.baseline,
                sample_count: eval.samples,
                window_start: eval.window.start,
                window_end: eval.window.end,
                ..alert.clone()
            };
            let state = RuleState {
                alert: Some(alert.clone()),
                last_notified_at: Some(cx.now),
                version,
                ..previous.clone()
            };
            Step::Notify { state, alert }
        }
        (Some((_, alert)), Verdict::Clear) => {
            let alert = resolved(alert, Some(eval), cx.now);
            Step::Notify {
                state: RuleState {
                    rule_id: eval.rule.id.clone(),
                    status: RuleStatus::Ok,
                    since: cx.now,
                    alert: None,
                    last_notified_at: Some(cx.now),
                    version,
                },
                alert,
            }
        }
        (Some(_), Verdict::InsufficientData) => Step::Unchanged,
        (None, Verdict::Breached) => {
            let alert = AlertRecord {
                alert_id: alert_id(&eval.rule.id, cx.now),
                tenant_id: cx.tenant.clone(),
                model_id: cx.model_id.clone(),
                rule: eval.rule.clone(),
                state: AlertState::Firing,
                observed_value: eval.observed,
                baseline: eval.baseline,
                sample_count: eval.samples,
                window_start: eval.window.start,
                window_end: eval.window.end,
                started_at: cx.now,
                resolved_at: None,
            };
            Step::Notify {
                state: RuleState {
                    rule_id: eval.rule.id.clone(),
                    status: RuleStatus::Firing,
                    since: cx.now,
                    alert: Some(alert.clone()),
                    last_notified_at: Some(cx.now),
                    version,
                },
                alert,
            }
        }
        (None, verdict) => {
            let status = if verdict == Verdict::Clear {
                RuleStatus::Ok
            } else {
                RuleStatus::InsufficientData
            };
            if previous.is_some_and(|p| p.status == status) {
                return Step::Unchanged;
            }
            Step::Record(RuleState {
                rule_id: eval.rule.id.clone(),
                status,
                since: cx.now,
                alert: None,
                last_notified_at: previous.and_then(|p| p.last_notified_at),
                version,
            })
        }
    }
}

/// `alert` resolved at `now`, with the latest evaluation's figures when there is one
/// (a rule that was removed or replaced resolves without).
pub fn resolved(
    alert: &AlertRecord,
    eval: Option<&RuleEvaluation>,
    now: DateTime<Utc>,
) -> AlertRecord {
    let mut alert = alert.clone();
    alert.state = AlertState::Resolved;
    alert.resolved_at = Some(now);
    if let Some(eval) = eval {
        alert.observed_value = eval.observed;
        alert.sample_count = eval.samples;
        alert.window_start = eval.window.start;
        alert.window_end = eval.window.end;
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MetricName;
    use crate::domain::alerting::rules::{Condition, Severity};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_000_000 + minute * 60, 0).expect("time")
    }

    fn rule() -> AlertRule {
        AlertRule {
            id: "error_rate-above-0.05-5m".into(),
            metric: MetricName::ErrorRate,
            condition: Condition::Above,
            threshold: 0.05,
            window: "5m".parse().expect("window"),
            severity: Severity::Critical,
            min_samples: 30,
            basis: None,
            label_delay: None,
            slice: None,
        }
    }

    fn eval(observed: Option<f64>, samples: u64, minute: i64) -> RuleEvaluation {
        let window = TimeSpan {
            start: at(minute - 5),
            end: at(minute),
        };
        RuleEvaluation::judge(&rule(), observed, samples, window, Some(0.001))
    }

    /// Runs `evals` through the machine, returning the messages' states.
    fn run(
        evals: &[(Option<f64>, u64)],
        renotify_after: Option<TimeDelta>,
    ) -> Vec<(i64, AlertState)> {
        let (tenant, model) = (
            TenantId::parse("t").expect("id"),
            ModelId::parse("m").expect("id"),
        );
        let mut state: Option<RuleState> = None;
        let mut sent = Vec::new();
        for (minute, (observed, samples)) in evals.iter().enumerate() {
            let minute = minute as i64;
            let cx = StepContext {
                tenant: &tenant,
                model_id: &model,
                now: at(minute),
                renotify_after,
            };
            match step(state.as_ref(), &eval(*observed, *samples, minute), cx) {
                Step::Unchanged => {}
                Step::Record(next) => {
                    assert_eq!(next.version, state.as_ref().map_or(1, |s| s.version + 1));
                    state = Some(next);
                }
                Step::Notify { state: next, alert } => {
                    assert_eq!(next.version, state.as_ref().map_or(1, |s| s.version + 1));
                    sent.push((minute, alert.state));
                    state = Some(next);
                }
            }
        }
        sent
    }

    #[test]
    fn one_message_per_transition() {
        let sent = run(
            &[
                (Some(0.0), 100),
                (Some(0.1), 100),
                (Some(0.2), 100),
                (None, 0),
                (Some(0.1), 10),
                (Some(0.01), 100),
                (Some(0.01), 100),
                (Some(0.09), 100),
            ],
            None,
        );
        assert_eq!(
            sent,
            [
                (1, AlertState::Firing),
                (5, AlertState::Resolved),
                (7, AlertState::Firing)
            ]
        );
    }

    #[test]
    fn thin_or_missing_data_never_fires_and_is_recorded_once() {
        assert!(run(&[(Some(0.9), 29), (None, 1000), (Some(0.9), 0)], None).is_empty());
        let (tenant, model) = (
            TenantId::parse("t").expect("id"),
            ModelId::parse("m").expect("id"),
        );
        let cx = StepContext {
            tenant: &tenant,
            model_id: &model,
            now: at(0),
            renotify_after: None,
        };
        let Step::Record(first) = step(None, &eval(Some(0.9), 29, 0), cx) else {
            panic!("first evaluation is recorded");
        };
        assert_eq!(first.status, RuleStatus::InsufficientData);
        assert_eq!(step(Some(&first), &eval(None, 0, 1), cx), Step::Unchanged);
    }

    #[test]
    fn a_run_older_than_the_stored_state_changes_nothing() {
        let (tenant, model) = (
            TenantId::parse("t").expect("id"),
            ModelId::parse("m").expect("id"),
        );
        let cx = |minute| StepContext {
            tenant: &tenant,
            model_id: &model,
            now: at(minute),
            renotify_after: None,
        };
        let Step::Notify { state: firing, .. } = step(None, &eval(Some(0.5), 100, 10), cx(10))
        else {
            panic!("a breach fires");
        };
        assert_eq!(
            step(Some(&firing), &eval(Some(0.0), 100, 9), cx(9)),
            Step::Unchanged
        );
        assert!(matches!(
            step(Some(&firing), &eval(Some(0.0), 100, 11), cx(11)),
            Step::Notify { alert, .. } if alert.state == AlertState::Resolved
        ));
    }

    #[test]
    fn a_firing_alert_is_renotified_only_when_asked() {
        let firing = vec![(Some(0.5), 100); 8];
        assert_eq!(run(&firing, None).len(), 1);
        let sent = run(&firing, Some(TimeDelta::minutes(3)));
        let minutes: Vec<i64> = sent.iter().map(|(m, _)| *m).collect();
        assert_eq!(minutes, [0, 3, 6]);
        assert!(sent.iter().all(|(_, s)| *s == AlertState::Firing));
    }

    #[test]
    fn alert_ids_hold_only_starts_a_store_can_key() {
        let start = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
        let last = ALERT_START_MS.end - 1;
        for (id, ms) in [
            ("r@0", 0),
            ("r@1", 1),
            ("r@0000000000005", 5),
            ("r@9999999999999", last),
        ] {
            assert_eq!(parse_alert_id(id), Some(("r", start(ms))), "{id}");
        }
        for beyond in [
            "r@10000000000000",
            "rule-1@123456789012345",
            "r@99999999999999",
            "r@9223372036854775807",
            "r@9223372036854775808",
            "r@-1",
            "r@+1",
        ] {
            assert_eq!(parse_alert_id(beyond), None, "{beyond}");
        }
        assert_eq!(alert_start_ms(start(last)), Some(last));
        assert_eq!(alert_start_ms(start(0)), Some(0));
        assert_eq!(alert_start_ms(start(ALERT_START_MS.end)), None);
        assert_eq!(alert_start_ms(start(-1)), None);
        let id = alert_id("r", start(last));
        assert_eq!(id, "r@9999999999999");
        assert_eq!(parse_alert_id(&id), Some(("r", start(last))));
    }

    #[test]
    fn alert_ids_round_trip_and_subjects_fit_sns() {
        let id = alert_id("accuracy-below-0.85-1h", at(3));
        assert_eq!(parse_alert_id(&id), Some(("accuracy-below-0.85-1h", at(3))));
        for bad in [
            "",
            "x",
            "rule@",
            "@123",
            "r@12a",
            "bad#id@1",
            "r@9999999999999999",
        ] {
            assert_eq!(parse_alert_id(bad), None, "{bad}");
        }
        let (tenant, model) = (
            TenantId::parse("t").expect("id"),
            ModelId::parse(&"m".repeat(128)).expect("id"),
        );
        let cx = StepContext {
            tenant: &tenant,
            model_id: &model,
            now: at(0),
            renotify_after: None,
        };
        let Step::Notify { alert, .. } = step(None, &eval(Some(0.5), 100, 0), cx) else {
            panic!("fires");
        };
        assert!(alert.subject().chars().count() <= 100);
        assert!(alert.subject().starts_with("[CRITICAL] mmm"));
        let attributes = alert.message_attributes();
        assert_eq!(attributes[0], ("severity", "critical".to_owned()));
        assert_eq!(attributes[3], ("state", "firing".to_owned()));
    }
}

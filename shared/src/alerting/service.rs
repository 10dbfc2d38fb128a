//! One scheduled evaluation run over every active model: capture the 24-hour baseline
//! when due, evaluate every rule over its window, move each rule's alert through its
//! lifecycle (publishing before storing), refresh the seven-day trends once an hour,
//! and write each model's baselines, thresholds and firing rules to Prometheus.
//!
//! **The evaluated windows end at the run's minute** (`[end − window, end)` with `end`
//! the run time floored to the minute), so a rule sees whole minutes only.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, future};
use serde::Serialize;

use super::gauges::alert_series;
use crate::domain::alerting::baseline::{CAPTURE_SPAN, CapturedBaseline, ReferenceSnapshot};
use crate::domain::alerting::rules::{AlertRule, CustomRules, effective_rules, is_quality};
use crate::domain::alerting::state::{
    RuleEvaluation, RuleStatus, Step, StepContext, resolved, step,
};
use crate::domain::alerting::trends::{
    LABEL_SNAPSHOT_SPAN, LabelSnapshot, TREND_SPAN, TrendReport, alert_threshold, metric_trend,
    trend_metrics,
};
use crate::domain::alerting::version_rule::{VERSION_RULE_WINDOW, judge_versions, newest_two};
use crate::domain::alerting::{AlertSettings, PerfSettings};
use crate::domain::estimation::ReferenceFit;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::slice::Slice;
use crate::domain::{
    ACTIVE_RETENTION, Datum, Granularity, MetricName, MetricSet, Series, TimeSpan, compared_data,
};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    AlertNotifier, AlertStore, ModelRegistry, ModelSettings, ModelSettingsStore, RegisteredModel,
    RollupStore,
};
use crate::ports::{ExportFailure, MetricDataWriter, SeriesWriter, SettingWrite};
use crate::schedule::{ScheduledRun, round_robin};
use crate::summary::WindowReader;

/// Models evaluated at once.
const CONCURRENT_MODELS: usize = 16;
/// A model with predictions this recent is evaluated before the others.
const FRESH: TimeDelta = TimeDelta::minutes(10);
/// The window of the estimate and drift gauges (`window="1h"`).
const COMPARISON_WINDOW: TimeDelta = TimeDelta::hours(1);
/// (√5 − 1) / 2: the step by which a run's starting point moves.
const GOLDEN_RATIO_FRACTION: f64 = 0.618_033_988_749_895;

/// The order a run evaluates `models` in, so that a deadline delays no model for
/// long: first the models with fresh predictions (seen within [`FRESH`] of
/// `run_time`), then the rest, each group round-robin across tenants and rotated to
/// start at a point that moves with the run's minute by the golden ratio of the
/// group's length: successive runs start spread evenly around the group, so a model
/// one deadline leaves comes early in the runs after.
pub fn evaluation_order(
    models: Vec<RegisteredModel>,
    run_time: DateTime<Utc>,
) -> Vec<RegisteredModel> {
    let (fresh, quiet): (Vec<_>, Vec<_>) = models
        .into_iter()
        .partition(|m| m.last_seen >= run_time - FRESH);
    let rotation = Granularity::Minute.ordinal(run_time).unsigned_abs();
    let fair = |group: Vec<RegisteredModel>| {
        let mut order = round_robin(group.into_iter().map(|m| (m.tenant.clone(), m)));
        let turn = (rotation as f64 * GOLDEN_RATIO_FRACTION).fract();
        let by = ((turn * order.len() as f64) as usize).min(order.len());
        order.rotate_left(by);
        order
    };
    let mut order = fair(fresh);
    order.extend(fair(quiet));
    order
}

/// What an evaluation run did (the invocation's answer, also logged).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvaluationReport {
    /// The run's time.
    pub run_time: DateTime<Utc>,
    /// The end of every evaluated window (the run's minute).
    pub evaluated_until: DateTime<Utc>,
    /// Active models evaluated.
    pub models: usize,
    /// Active models not evaluated before the deadline (the next run starts with them,
    /// see [`evaluation_order`]).
    pub left: usize,
    /// Rules evaluated.
    pub rules: usize,
    /// Rules firing after the run.
    pub firing: usize,
    /// Rules without enough data in their window.
    pub insufficient_data: usize,
    /// Alert transitions published.
    pub notifications: usize,
    /// 24-hour baselines captured in this run.
    pub baselines_captured: usize,
    /// Models whose trends were refreshed.
    pub trends_updated: usize,
    /// The baseline, threshold and firing series written to Prometheus, when it is
    /// configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<GaugeWrite>,
    /// The estimates and drift put to CloudWatch, when they go there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<GaugeWrite>,
    /// Models (or notifications) that failed; they are retried by the next run.
    pub failures: Vec<EvaluationFailure>,
}

/// What writing a run's gauges (to Prometheus, to CloudWatch) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GaugeWrite {
    /// Series (data) written.
    pub series: usize,
    /// `delivered`, `failed` (the next run writes the then current values) or
    /// `rejected`.
    pub outcome: &'static str,
}

/// A model whose evaluation did not complete.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationFailure {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// What failed (no secrets; store errors name the operation).
    pub error: String,
}

/// What one model's evaluation added to the report.
#[derive(Debug, Default)]
struct ModelOutcome {
    rules: usize,
    firing: usize,
    insufficient_data: usize,
    notifications: usize,
    baseline_captured: bool,
    trends_updated: bool,
    /// Its baseline, threshold and firing series.
    series: Vec<Series>,
    /// Its estimates and drift, for CloudWatch.
    data: Vec<Datum>,
    /// Failures that did not stop the rest of the model's evaluation.
    errors: Vec<String>,
}

/// The evaluation service over the stores, the alert topic, Prometheus and CloudWatch;
/// built once at cold start, it owns them.
#[derive(Debug)]
pub struct Evaluator<R, S, M, A, N, P, C> {
    /// Which models are active, with task and first seen.
    pub registry: R,
    /// Metrics of any window from the rollups.
    pub window: WindowReader<S>,
    /// Baselines, custom rules, trends.
    pub settings: M,
    /// Rule states and alert history.
    pub alerts: A,
    /// The alert topic.
    pub notifier: N,
    /// Where the baseline, threshold and firing series go, if anywhere.
    pub prometheus: Option<P>,
    /// Where the estimates and drift go besides Prometheus, if anywhere.
    pub cloudwatch: Option<C>,
    /// The specification's thresholds.
    pub perf: PerfSettings,
    /// Minimum samples and re-notification.
    pub alerting: AlertSettings,
}

impl<R, S, M, A, N, P, C> Evaluator<R, S, M, A, N, P, C>
where
    R: ModelRegistry,
    S: RollupStore,
    M: ModelSettingsStore,
    A: AlertStore,
    N: AlertNotifier,
    P: SeriesWriter,
    C: MetricDataWriter,
{
    /// Evaluates every model of `run`'s shards active at its time, while its deadline
    /// allows. Fails only when the registry cannot be read; a model that fails is
    /// reported and retried by the next run.
    pub async fn run(&self, run: &ScheduledRun) -> StoreResult<EvaluationReport> {
        let run_time = run.run_time;
        let active = self
            .registry
            .active_models(run_time - ACTIVE_RETENTION, run.shards.clone())
            .await?;
        let models = evaluation_order(active, run_time);
        let end = Granularity::Minute.floor(run_time);
        // The last tenth of the time is the Prometheus write's.
        let evaluate_until = run.deadline.share(9, 10);
        let mut report = EvaluationReport {
            run_time,
            evaluated_until: end,
            ..EvaluationReport::default()
        };
        let (mut series, mut data) = (Vec::new(), Vec::new());
        let mut outcomes = futures_util::stream::iter(&models)
            .take_while(|_| future::ready(!evaluate_until.passed()))
            .map(|model| async move { (model, self.evaluate_model(model, end).await) })
            .buffer_unordered(CONCURRENT_MODELS);
        while let Some((model, outcome)) = outcomes.next().await {
            report.models += 1;
            let failure = |error: String| EvaluationFailure {
                tenant_id: model.tenant.clone(),
                model_id: model.model_id.clone(),
                error,
            };
            match outcome {
                Ok(outcome) => {
                    report.rules += outcome.rules;
                    report.firing += outcome.firing;
                    report.insufficient_data += outcome.insufficient_data;
                    report.notifications += outcome.notifications;
                    report.baselines_captured += usize::from(outcome.baseline_captured);
                    report.trends_updated += usize::from(outcome.trends_updated);
                    series.extend(outcome.series);
                    data.extend(outcome.data);
                    report
                        .failures
                        .extend(outcome.errors.into_iter().map(failure));
                }
                Err(err) => {
                    tracing::error!(error = %err, source = ?std::error::Error::source(&err),
                        tenant = %model.tenant, model = %model.model_id, "evaluation failed");
                    report.failures.push(failure(err.to_string()));
                }
            }
        }
        drop(outcomes);
        report.left = models.len() - report.models;
        if let Some(prometheus) = &self.prometheus {
            let written = prometheus.write_series(&series).await;
            report.prometheus = Some(GaugeWrite::of("Prometheus", series.len(), written));
        }
        if let Some(cloudwatch) = &self.cloudwatch {
            let written = cloudwatch.write_data(&data).await;
            report.cloudwatch = Some(GaugeWrite::of("CloudWatch", data.len(), written));
        }
        tracing::info!(
            models = report.models,
            left = report.left,
            rules = report.rules,
            firing = report.firing,
            insufficient_data = report.insufficient_data,
            notifications = report.notifications,
            baselines_captured = report.baselines_captured,
            trends_updated = report.trends_updated,
            prometheus = ?report.prometheus,
            cloudwatch = ?report.cloudwatch,
            failures = report.failures.len(),
            shards = ?run.shards,
            "evaluate run"
        );
        Ok(report)
    }

    /// Evaluates one model with windows ending at `end`.
    async fn evaluate_model(
        &self,
        model: &RegisteredModel,
        end: DateTime<Utc>,
    ) -> StoreResult<ModelOutcome> {
        let (tenant, model_id, key) = (&model.tenant, &model.model_id, model.key());
        let mut outcome = ModelOutcome::default();
        let mut settings = self.settings.model_settings(key).await?;

        let capture_from = Granularity::Minute.floor(model.first_seen);
        if settings.baselines.captured.is_none() && end >= capture_from + CAPTURE_SPAN {
            let (metrics, _) = self
                .window
                .metrics(
                    key,
                    capture_from,
                    capture_from + CAPTURE_SPAN,
                    Some(model.first_seen),
                )
                .await?;
            let captured = CapturedBaseline::from_metrics(&metrics, capture_from, end);
            outcome.baseline_captured = self
                .settings
                .put_setting(key, SettingWrite::CapturedBaseline(&captured))
                .await?;
            settings = self.settings.model_settings(key).await?;
        }

        let reference = self.reference(model, &mut settings, end).await?;
        let custom = settings.rules.clone().unwrap_or_else(CustomRules::none);
        let rules = effective_rules(
            model.task,
            &custom,
            &settings.baselines,
            &self.perf,
            &self.alerting,
        );
        // One read per distinct slice and span (a rule with a label delay judges an
        // earlier one, a sliced rule its slice's series), and the span of the estimate
        // and drift gauges.
        let judged = |r: &AlertRule| (r.slice.clone(), r.span(end));
        let mut spans: BTreeSet<_> = rules.iter().map(judged).collect();
        let comparison_span = (None, (end - COMPARISON_WINDOW, end));
        if reference.is_some() {
            spans.insert(comparison_span.clone());
        }
        let fit = reference.unwrap_or_else(|| ReferenceFit::of(model.task, None));
        let mut by_window = BTreeMap::new();
        for (slice, (from, to)) in spans {
            let series = slice.as_ref().map(|s| model_id.series(s));
            let read = ModelRef::new(tenant, series.as_ref().unwrap_or(model_id));
            let (state, covered) = self.window.state(read, TimeSpan::new(from, to)).await?;
            let metrics = MetricSet::compute(&state, covered, Some(model.first_seen))
                .with_comparison(&fit.compare(&state));
            by_window.insert((slice, (from, to)), (metrics, covered));
        }
        let mut states: BTreeMap<String, _> = self
            .alerts
            .rule_states(key)
            .await?
            .into_iter()
            .map(|s| (s.rule_id.clone(), s))
            .collect();
        let cx = StepContext {
            tenant,
            model_id,
            now: end,
            renotify_after: self.alerting.renotify_after,
        };
        let mut evaluations: Vec<RuleEvaluation> = rules
            .iter()
            .filter_map(|rule| {
                let (metrics, span) = by_window.get(&judged(rule))?;
                Some(RuleEvaluation::judge(
                    rule,
                    metrics.get(rule.metric),
                    samples(rule.metric, metrics),
                    *span,
                    settings.baselines.baseline_of(rule.metric),
                ))
            })
            .collect();
        if let Some(min_samples) = self.alerting.version_rule_min_samples {
            evaluations.extend(self.version_rule(model, min_samples, end).await?);
        }
        let mut statuses = Vec::with_capacity(evaluations.len());
        for eval in &evaluations {
            let rule = &eval.rule;
            let previous = states.remove(&rule.id);
            let status = match self.apply(key, step(previous.as_ref(), eval, cx)).await {
                Ok(applied) => {
                    outcome.notifications += usize::from(applied.notified);
                    applied.status.or(previous.as_ref().map(|p| p.status))
                }
                Err(err) => {
                    outcome.errors.push(format!("rule {}: {err}", rule.id));
                    previous.as_ref().map(|p| p.status)
                }
            };
            outcome.rules += 1;
            statuses.push((rule, status));
            match status {
                Some(RuleStatus::Firing) => outcome.firing += 1,
                Some(RuleStatus::InsufficientData) => outcome.insufficient_data += 1,
                _ => {}
            }
        }
        // States of rules no longer in the set: resolve an open alert, then forget it.
        for state in states.into_values() {
            let alert = state.alert.as_ref().map(|a| resolved(a, None, end));
            if let Some(alert) = &alert {
                if let Err(err) = self.notifier.notify(alert).await {
                    outcome
                        .errors
                        .push(format!("rule {} (removed): {err}", state.rule_id));
                    continue;
                }
                outcome.notifications += 1;
            }
            self.alerts
                .remove_rule_state(key, &state.rule_id, state.version, alert.as_ref())
                .await?;
        }

        let trend_end = Granularity::Hour.floor(end);
        if settings.trends.as_ref().is_none_or(|t| t.to < trend_end) {
            let trends = self.trends(model, &rules, &fit, trend_end, end).await?;
            self.settings
                .put_setting(key, SettingWrite::Trends(&trends))
                .await?;
            settings.trends = Some(trends);
            outcome.trends_updated = true;
        }
        let labels = settings.trends.as_ref().and_then(|t| t.labels.as_ref());
        let compared = by_window.get(&comparison_span).map(|(metrics, _)| metrics);
        if let Some(metrics) = compared {
            outcome.data = compared_data(tenant, model_id, metrics, end);
        }
        outcome.series = alert_series(
            tenant,
            model_id,
            &settings.baselines,
            labels,
            compared,
            &statuses,
            end,
        );
        Ok(outcome)
    }

    /// The default version rule judged for `model` over the day before `end`, when it
    /// keeps two versions or more (`version_rule`).
    async fn version_rule(
        &self,
        model: &RegisteredModel,
        min_samples: u64,
        end: DateTime<Utc>,
    ) -> StoreResult<Option<RuleEvaluation>> {
        let versions = self.registry.versions(model.key()).await?;
        let kept = versions
            .iter()
            .map(|v| (v.model_version.as_str(), v.first_seen));
        let Some((previous, newest)) = newest_two(kept) else {
            return Ok(None);
        };
        let span = TimeSpan::new(end - VERSION_RULE_WINDOW.length(), end);
        let metrics = |version: &str| {
            let series = model.model_id.series(&Slice::version(version));
            async move {
                let read = ModelRef::new(&model.tenant, &series);
                let (state, covered) = self.window.state(read, span).await?;
                Ok::<_, StoreError>(MetricSet::compute(&state, covered, Some(model.first_seen)))
            }
        };
        let (before, now) = futures_util::try_join!(metrics(previous), metrics(newest))?;
        Ok(Some(judge_versions(
            model.task,
            min_samples,
            (previous, &before),
            (newest, &now),
            span,
        )))
    }

    /// The model's reference window prepared for comparisons, when it has one; takes
    /// the reference's snapshot into `settings` first when it is due.
    async fn reference(
        &self,
        model: &RegisteredModel,
        settings: &mut ModelSettings,
        end: DateTime<Utc>,
    ) -> StoreResult<Option<ReferenceFit>> {
        let Some(reference) = settings.baselines.reference() else {
            return Ok(None);
        };
        if ReferenceSnapshot::due(settings.reference.as_ref(), &reference, end) {
            let (state, _) = self.window.state(model.key(), reference.span()).await?;
            let snapshot = ReferenceSnapshot::new(&reference, &state, end);
            self.settings
                .put_setting(model.key(), SettingWrite::Reference(&snapshot))
                .await?;
            settings.reference = Some(snapshot);
            // Fitted from the state in hand, not decoded again from the snapshot.
            return Ok(Some(ReferenceFit::of(model.task, Some(&state))));
        }
        let fit = self
            .window
            .reference_fit(model, Some(reference), settings.reference.as_ref())
            .await?;
        Ok(Some(fit))
    }

    /// Publishes and stores what `step` decided; a failed publish stores nothing.
    async fn apply(&self, key: ModelRef<'_>, step: Step) -> StoreResult<Applied> {
        let (state, alert) = match step {
            Step::Unchanged => {
                return Ok(Applied {
                    status: None,
                    notified: false,
                });
            }
            Step::Record(state) => (state, None),
            Step::Notify { state, alert } => {
                self.notifier.notify(&alert).await?;
                (state, Some(alert))
            }
        };
        let stored = self
            .alerts
            .save_rule_state(key, &state, alert.as_ref())
            .await?;
        if !stored {
            // Another run moved this rule on first (overlapping invocations).
            tracing::warn!(tenant = %key.tenant, model_id = %key.model_id, rule = %state.rule_id,
                "rule state changed concurrently; this run's step dropped");
        }
        Ok(Applied {
            status: Some(state.status),
            notified: alert.is_some(),
        })
    }

    /// The trends of the seven days of hours before `to` (an hour short of labels
    /// counts with its estimate against `reference`).
    async fn trends(
        &self,
        model: &RegisteredModel,
        rules: &[AlertRule],
        reference: &ReferenceFit,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<TrendReport> {
        let from = to - TREND_SPAN;
        let hours = self
            .window
            .series(
                model,
                Granularity::Hour,
                TimeSpan::new(from, to),
                Some(reference),
            )
            .await?;
        let trends = trend_metrics(model.task)
            .into_iter()
            .map(|metric| {
                let threshold = alert_threshold(metric, rules);
                (metric, metric_trend(metric, &hours, threshold, now))
            })
            .collect();
        let (day, _) = self
            .window
            .metrics(
                model.key(),
                now - LABEL_SNAPSHOT_SPAN,
                now,
                Some(model.first_seen),
            )
            .await?;
        Ok(TrendReport {
            computed_at: now,
            from,
            to,
            trends,
            labels: Some(LabelSnapshot {
                coverage: day.label_coverage,
                delay_p50_s: day.label_delay_p50_s,
                delay_p95_s: day.label_delay_p95_s,
            }),
        })
    }
}

impl GaugeWrite {
    /// What writing `count` gauges to `sink` came to; a failure is logged, and the
    /// next run writes the then current values (gauges: nothing accumulates).
    fn of(sink: &str, count: usize, written: Result<(), ExportFailure>) -> Self {
        let outcome = match written {
            Ok(()) => "delivered",
            Err(ExportFailure::Unavailable(err)) => {
                tracing::warn!(error = %err, sink, "gauges not written; the next run writes them");
                "failed"
            }
            Err(ExportFailure::Rejected(err)) => {
                tracing::error!(error = %err, sink, "gauges refused");
                "rejected"
            }
        };
        Self {
            series: count,
            outcome,
        }
    }
}

/// What storing a step did.
struct Applied {
    /// The rule's status after the step, when it changed.
    status: Option<RuleStatus>,
    /// Whether an alert was published.
    notified: bool,
}

/// The samples behind `metric` in `metrics`: labeled predictions for quality metrics,
/// predictions otherwise.
fn samples(metric: MetricName, metrics: &MetricSet) -> u64 {
    if is_quality(metric) {
        metrics.labeled
    } else {
        metrics.predictions
    }
}

#[cfg(test)]
mod tests;

//! The traffic simulator: serving systems pushing prediction batches through the ingest
//! route for several models — a binary classifier, a multiclass classifier, a
//! regressor — over simulated hours compressed in time, one model drifting and then
//! failing (see [`scenario`]), and a model whose labels arrive hours after its
//! predictions, sent by the label route when they arrive ([`labels`]). On the local
//! stack it also drives `aggregate` and `evaluate` the way their schedules would;
//! against a deployment it only pushes.
//!
//! Simulated time never runs ahead of the real clock: a scenario ends at the minute it
//! was made (see `main`), and a late label is sent only once both the simulated time
//! and the real clock have reached its arrival — so its `timestamp` is never in the
//! future.
//!
//! It keeps its own ground truth ([`truth`]) so the product's answers can be checked
//! ([`check`]).

pub mod labels;
pub mod observe;
pub mod rng;
pub mod scenario;
pub mod target;
pub mod truth;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use labels::{ACTUALS_PATH, LabelSchedule, LabelTally};
use rng::Rng;
use scenario::{
    CANARY_RULE, CANARY_VERSION, ModelKind, REFERENCE_SPAN, SILENT_SHIFT, SILENT_SHIFT_RULES,
    STABLE_VERSION, Scenario, canary_key, canary_rule,
};
use target::{Answer, Client, TargetError};
use truth::GroundTruth;

/// How a run proceeds.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The traffic.
    pub scenario: Scenario,
    /// Simulated time per batch (one batch per model per step).
    pub step: TimeDelta,
    /// Run `evaluate` every this much simulated time (local stack only).
    pub evaluate_every: TimeDelta,
    /// Register each model's test-set baseline and throughput forecast first.
    pub register_baselines: bool,
    /// The SNS subscriber queue to read the alerts from after each evaluation (local
    /// stack only; needs [`Client::with_sqs`]).
    pub alert_queue_url: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Every prediction sent.
    pub truth: GroundTruth,
    /// Batches accepted.
    pub batches: usize,
    /// Predictions sent.
    pub predictions: u64,
    /// Evaluation runs driven.
    pub evaluations: usize,
    /// Alert transitions the evaluations published, as the subscriber queue received
    /// them (0 without one).
    pub notifications: u64,
    /// Those alert messages (the alert JSON of each), oldest first.
    pub alerts: Vec<Value>,
    /// The label batches of each model whose labels come late, and their answers.
    pub labels: BTreeMap<String, LabelTally>,
    /// The time through which every late label was sent: each one arrived by then,
    /// and none other (`None` before the first step). The ground truth as of this
    /// time is what the product was told.
    pub labels_as_of: Option<DateTime<Utc>>,
}

/// Where a run stands, for progress output.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Simulated time reached.
    pub simulated: DateTime<Utc>,
    /// Fraction done.
    pub done: f64,
    /// Batches so far.
    pub batches: usize,
    /// Firing rules after the latest evaluation (counted from the alert messages).
    pub firing: u64,
    /// Whether the degraded model is inside its incident.
    pub incident: bool,
    /// The late labels sent so far, every model's together.
    pub labels: LabelTally,
}

/// Aggregation runs after the last step's, for the work a run left at its deadline.
const CATCH_UP_RUNS: usize = 2;

/// Runs the scenario against `client`, calling `progress` after every step.
pub async fn run(
    client: &Client,
    config: &RunConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<RunOutcome, TargetError> {
    let scenario = &config.scenario;
    let mut outcome = RunOutcome::default();
    let mut rngs: Vec<Rng> = (0..scenario.models.len())
        .map(|i| Rng::new(scenario.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9)))
        .collect();
    let mut counters = vec![0_u64; scenario.models.len()];
    let mut late_labels = LabelSchedule::new(scenario.start);
    let mut firing: u64 = 0;
    let mut since_evaluation = TimeDelta::zero();
    let mut t = scenario.start;
    while t < scenario.end() {
        let step_end = (t + config.step).min(scenario.end());
        for (i, model) in scenario.models.iter().enumerate() {
            let batch = scenario.batch(
                model,
                t,
                step_end,
                &mut rngs[i],
                &mut counters[i],
                &mut outcome.truth,
            );
            let sent = batch.body["predictions"].as_array().map_or(0, Vec::len) as u64;
            let answer = client
                .request("POST", "/api/v1/monitoring/predictions", Some(&batch.body))
                .await?;
            expect_status(answer, 202, || format!("ingest of {} at {t}", model.id))?;
            outcome.batches += 1;
            outcome.predictions += sent;
            if let Some(canary) = &batch.canary {
                let answer = client
                    .request("POST", "/api/v1/monitoring/predictions", Some(canary))
                    .await?;
                expect_status(answer, 202, || {
                    format!("ingest of {}'s canary at {t}", model.id)
                })?;
                outcome.batches += 1;
                outcome.predictions += canary["predictions"].as_array().map_or(0, Vec::len) as u64;
            }
            for label in batch.late_labels {
                late_labels.hold(&model.id, label);
            }
        }
        if t == scenario.start && config.register_baselines {
            for model in &scenario.models {
                let mut baseline = json!({
                    "test_set": {"evaluated_at": (scenario.start - TimeDelta::days(1)).to_rfc3339(),
                                 "metrics": model.kind.test_set_metrics()},
                    "throughput_forecast_rps": f64::from(scenario.per_minute) / 60.0,
                });
                if model.kind.has_reference_window() {
                    let (from, to) = (scenario.start, scenario.start + REFERENCE_SPAN);
                    baseline["reference"] =
                        json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()});
                }
                let path = format!("/api/v1/monitoring/performance/{}/baseline", model.id);
                let answer = client.request("PUT", &path, Some(&baseline)).await?;
                expect_status(answer, 200, || format!("PUT {path}"))?;
                if scenario.canary.as_deref() == Some(model.id.as_str()) {
                    let path = format!("/api/v1/monitoring/performance/{}/alert-rules", model.id);
                    let answer = client.request("PUT", &path, Some(&canary_rule())).await?;
                    expect_status(answer, 200, || format!("PUT {path}"))?;
                }
            }
        }
        // Before the schedules run, so the last aggregation holds the last labels.
        send_due_labels(client, &mut late_labels, step_end, &mut outcome).await?;
        since_evaluation += step_end - t;
        if client.drives_schedules() {
            let last = step_end >= scenario.end();
            if since_evaluation >= config.evaluate_every || last {
                // The last step runs aggregate as the next schedules would, too: a
                // shard run that reached its deadline leaves minutes for the next, and
                // the summaries are read right after this step.
                for _ in 0..if last { 1 + CATCH_UP_RUNS } else { 1 } {
                    expect_report(
                        client.run_schedule("aggregate", Utc::now()).await?,
                        "aggregate",
                        "fan_out",
                    )?;
                }
                expect_report(
                    client.run_schedule("evaluate", step_end).await?,
                    "evaluate",
                    "fan_out",
                )?;
                if let Some(queue) = &config.alert_queue_url {
                    let alerts = client.drain_alerts(queue).await?;
                    for alert in &alerts {
                        match alert["state"].as_str() {
                            Some("firing") => firing += 1,
                            Some("resolved") => firing = firing.saturating_sub(1),
                            _ => {}
                        }
                    }
                    outcome.notifications += alerts.len() as u64;
                    outcome.alerts.extend(alerts);
                }
                outcome.evaluations += 1;
                since_evaluation = TimeDelta::zero();
            }
        }
        let (incident_start, incident_end) = scenario.incident();
        progress(&Progress {
            simulated: step_end,
            done: (step_end - scenario.start).num_seconds() as f64
                / scenario.duration.num_seconds().max(1) as f64,
            batches: outcome.batches,
            firing,
            incident: scenario.degraded.is_some() && t >= incident_start && t < incident_end,
            labels: outcome
                .labels
                .values()
                .fold(LabelTally::default(), |mut total, tally| {
                    total.add(tally);
                    total
                }),
        });
        t = step_end;
    }
    for model in &scenario.models {
        if model.kind.label_delay().is_some() {
            let tally = outcome.labels.entry(model.id.clone()).or_default();
            tally.never_sent = late_labels.held(&model.id) as u64;
        }
    }
    Ok(outcome)
}

/// Sends every held label that has arrived by `simulated_now`, and by the real clock
/// (a label's `timestamp` may not lie in the future; a scenario ending now keeps
/// simulated time behind the clock anyway, so this only holds back labels of a
/// scenario set in the future), counting what the answers report in `outcome`. Any
/// answer but 202 is an error naming the batch.
async fn send_due_labels(
    client: &Client,
    schedule: &mut LabelSchedule,
    simulated_now: DateTime<Utc>,
    outcome: &mut RunOutcome,
) -> Result<(), TargetError> {
    let cutoff = simulated_now.min(Utc::now());
    for batch in schedule.due(cutoff) {
        let what = || {
            format!(
                "label batch {} of {} ({} labels)",
                batch.batch_id,
                batch.model_id,
                batch.labels.len()
            )
        };
        let answer = client
            .request("POST", ACTUALS_PATH, Some(&batch.body()))
            .await?;
        let body = expect_status(answer, 202, what)?;
        outcome
            .labels
            .entry(batch.model_id.clone())
            .or_default()
            .count(batch.labels.len(), &body)
            .map_err(|detail| TargetError::Answer {
                what: what(),
                detail: format!("{detail}: {body}"),
            })?;
    }
    outcome.labels_as_of = Some(cutoff);
    Ok(())
}

/// The body of `answer` when its status is `expected`, else an error saying `what`
/// was being done and what came back.
fn expect_status(
    answer: Answer,
    expected: u16,
    what: impl FnOnce() -> String,
) -> Result<Value, TargetError> {
    if answer.status == expected {
        Ok(answer.body)
    } else {
        Err(TargetError::Answer {
            what: what(),
            detail: format!("HTTP {}: {}", answer.status, answer.body),
        })
    }
}

/// The report of a scheduled run, which must carry `key` and no failures.
fn expect_report(report: Value, function: &str, key: &str) -> Result<Value, TargetError> {
    let failures = report
        .get("failures")
        .or_else(|| report.get(key).and_then(|r| r.get("failures")))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if report.get(key).is_none() || failures > 0 {
        return Err(TargetError::Answer {
            what: format!("{function} run"),
            detail: report.to_string(),
        });
    }
    Ok(report)
}

/// The relative error the metric engine's sketches (latency, label delay) are within:
/// 1 %, and a little for rounding.
const SKETCH_TOLERANCE: f64 = 0.0101;

/// Checks the product against the ground truth after a local run: every problem found
/// (empty when all is well). `alerts` are the alert messages the SNS subscriber
/// received for this tenant (the alert JSON of each).
///
/// Labels count as of [`RunOutcome::labels_as_of`]: a model whose labels come late
/// is compared with the labels sent, and each of its label batches must have joined
/// every label.
pub async fn check(
    client: &Client,
    config: &RunConfig,
    outcome: &RunOutcome,
    alerts: &[Value],
) -> Result<Vec<String>, TargetError> {
    let now = Utc::now();
    let scenario = &config.scenario;
    let labels_as_of = outcome.labels_as_of.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut problems = Vec::new();
    for model in &scenario.models {
        let degraded = scenario.degraded.as_deref() == Some(model.id.as_str());
        // The summary's values against the ground truth over the same span.
        let path = format!(
            "/api/v1/monitoring/performance/{}?window=24h&granularity=hour",
            model.id
        );
        let (summary, from) = summary_since(client, &path, TimeDelta::hours(24)).await?;
        if summary.status != 200 {
            problems.push(format!("{path}: HTTP {} {}", summary.status, summary.body));
            continue;
        }
        let truth = outcome
            .truth
            .metrics_as_of(&model.id, from, now.max(Utc::now()), labels_as_of);
        let s = &summary.body;
        let mut compare =
            |what: &str, shown: Option<f64>, exact: Option<f64>, tolerance: f64| match (
                shown, exact,
            ) {
                (Some(a), Some(b)) if (a - b).abs() <= tolerance * b.abs().max(1e-12) => {}
                (None, None) => {}
                (a, b) => problems.push(format!("{}: {what} {a:?}, ground truth {b:?}", model.id)),
            };
        compare(
            "sample_count",
            s["sample_count"].as_f64(),
            Some(truth.predictions as f64),
            0.0,
        );
        compare(
            "labeled_count",
            s["labeled_count"].as_f64(),
            Some(truth.labeled as f64),
            0.0,
        );
        compare(
            "error_rate",
            s["serving_metrics"]["error_rate"].as_f64(),
            truth.error_rate,
            1e-9,
        );
        compare(
            "latency_p95_ms",
            s["serving_metrics"]["latency_p95_ms"].as_f64(),
            truth.latency_p95_ms,
            SKETCH_TOLERANCE,
        );
        compare(
            "label_coverage",
            s["label_metrics"]["label_coverage"].as_f64(),
            truth.label_coverage,
            1e-9,
        );
        compare(
            "label_delay_p95_s",
            s["label_metrics"]["label_delay_p95_s"].as_f64(),
            truth.label_delay_p95_s,
            SKETCH_TOLERANCE,
        );
        match model.kind {
            scenario::ModelKind::Regression => {
                compare(
                    "rmse",
                    s["quality_metrics"]["rmse"]["current"].as_f64(),
                    truth.rmse,
                    1e-9,
                );
            }
            _ => compare(
                "accuracy",
                s["quality_metrics"]["accuracy"]["current"].as_f64(),
                truth.accuracy,
                1e-9,
            ),
        }
        if model.kind.label_delay().is_some() {
            let tally = outcome.labels.get(&model.id).copied().unwrap_or_default();
            if !tally.all_joined() {
                problems.push(format!(
                    "{}: {} late labels sent in {} batches ({} answered as duplicates): {} joined, {} pending, {} already labeled, {} expired, {} refused; expected every one joined",
                    model.id,
                    tally.sent,
                    tally.batches,
                    tally.duplicate_batches,
                    tally.joined,
                    tally.pending,
                    tally.already_labeled,
                    tally.expired,
                    tally.refused
                ));
            }
        }
        // Alerts: the degraded model's rules each fired once and resolved once; the
        // silent model's shift fired its rules once, still firing at the end; the
        // healthy models raised nothing.
        let mine: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["model_id"] == model.id.as_str())
            .collect();
        let under_check = |alerts| ModelUnderCheck {
            client,
            config,
            outcome,
            model,
            alerts,
        };
        let silent = model.kind == ModelKind::SilentBinary && config.register_baselines;
        if silent {
            problems.extend(check_silent(under_check(&mine)).await?);
        } else if degraded {
            let mut rules: Vec<&str> = mine
                .iter()
                .filter_map(|a| a["rule"]["id"].as_str())
                .filter(|rule| *rule != CANARY_RULE)
                .collect();
            rules.sort_unstable();
            rules.dedup();
            for expected in model.kind.incident_rules(config.register_baselines) {
                if !rules.contains(expected) {
                    problems.push(format!(
                        "{}: the incident did not fire {expected} (fired: {rules:?})",
                        model.id
                    ));
                }
            }
            for rule in rules {
                let sent = messages(&mine, rule);
                if sent != (1, 1) {
                    problems.push(format!(
                        "{}: rule {rule} sent {} firing and {} resolved messages, expected 1 and 1",
                        model.id, sent.0, sent.1
                    ));
                }
            }
        } else if mine.iter().any(|a| a["rule"]["id"] != CANARY_RULE) {
            problems.push(format!(
                "{}: a healthy model raised {} alert messages: {mine:?}",
                model.id,
                mine.len()
            ));
        }
        if scenario.canary.as_deref() == Some(model.id.as_str()) {
            problems.extend(check_canary(under_check(&mine)).await?);
        }
    }
    Ok(problems)
}

/// The performance summary of `model` for the query string `query` (`window=24h`, …),
/// refused unless it is a 200.
pub async fn summary(client: &Client, model: &str, query: &str) -> Result<Value, TargetError> {
    let path = format!("/api/v1/monitoring/performance/{model}?{query}");
    let answer = client.request("GET", &path, None).await?;
    expect_status(answer, 200, || format!("GET {path}"))
}

/// The canary's comparison with the stable version over the last hour, as the compare
/// route answers it, and whether its verdict is `candidate_worse`.
pub async fn canary_comparison(client: &Client, model: &str) -> Result<Value, TargetError> {
    let path = format!(
        "/api/v1/monitoring/performance/{model}/compare?baseline=version:{STABLE_VERSION}&candidate=version:{CANARY_VERSION}&window=1h"
    );
    let answer = client.request("GET", &path, None).await?;
    expect_status(answer, 200, || format!("GET {path}"))
}

/// One model under an end-of-run check: the product, the run, the model and the alert
/// messages received for it.
#[derive(Clone, Copy)]
struct ModelUnderCheck<'a> {
    /// The product's API.
    client: &'a Client,
    /// How the run was made.
    config: &'a RunConfig,
    /// What it sent.
    outcome: &'a RunOutcome,
    /// The model.
    model: &'a scenario::ModelSpec,
    /// The alert messages of the model.
    alerts: &'a [&'a Value],
}

/// Checks the canary model at the end of the run: the compare route finds the canary
/// worse, the canary's summary holds its own records (the ground truth kept under
/// [`canary_key`]), and its rule fired.
async fn check_canary(check: ModelUnderCheck<'_>) -> Result<Vec<String>, TargetError> {
    let id = &check.model.id;
    let mut problems = Vec::new();
    let compared = canary_comparison(check.client, id).await?;
    if compared["verdict"] != "candidate_worse" {
        problems.push(format!(
            "{id}: the canary's comparison is {}, expected candidate_worse: {compared}",
            compared["verdict"]
        ));
    }
    let path = format!("/api/v1/monitoring/performance/{id}?window=24h&version={CANARY_VERSION}");
    let (summary, from) = summary_since(check.client, &path, TimeDelta::hours(24)).await?;
    let truth = check
        .outcome
        .truth
        .metrics(&canary_key(id), from, Utc::now());
    let shown = (
        summary.body["sample_count"].as_u64(),
        summary.body["quality_metrics"]["accuracy"]["current"].as_f64(),
    );
    let same = shown.0 == Some(truth.predictions)
        && match (shown.1, truth.accuracy) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9,
            (a, b) => a == b,
        };
    if !same {
        problems.push(format!(
            "{id}: the canary's summary shows {shown:?} (predictions, accuracy), ground truth ({}, {:?})",
            truth.predictions, truth.accuracy
        ));
    }
    if check.config.register_baselines && messages(check.alerts, CANARY_RULE).0 == 0 {
        problems.push(format!("{id}: the canary's rule {CANARY_RULE} never fired"));
    }
    Ok(problems)
}

/// Checks a silent model at the end of the run: the estimated accuracy's interval
/// holds the realized accuracy the simulator knows and the product never saw (widened
/// by 0.002, what the 1/1000 score bins may cost) — over the last hour while that is
/// mostly the shifted traffic, where it must also lie below the reference hour's
/// realized accuracy, else (a long run read back later) over 24 hours — and the shift
/// fired [`SILENT_SHIFT_RULES`] once each, with nothing resolved and nothing else
/// fired.
async fn check_silent(check: ModelUnderCheck<'_>) -> Result<Vec<String>, TargetError> {
    let scenario = &check.config.scenario;
    let id = &check.model.id;
    let mut problems = Vec::new();
    let recent = Utc::now() - scenario.end() < SILENT_SHIFT / 2;
    let (window, span) = if recent {
        ("1h", TimeDelta::hours(1))
    } else {
        ("24h", TimeDelta::hours(24))
    };
    let path = format!("/api/v1/monitoring/performance/{id}?window={window}");
    let (summary, from) = summary_since(check.client, &path, span).await?;
    let accuracy = &summary.body["quality_metrics"]["accuracy"];
    let realized = check.outcome.truth.metrics(id, from, Utc::now()).accuracy;
    let reference = check
        .outcome
        .truth
        .metrics(id, scenario.start, scenario.start + REFERENCE_SPAN)
        .accuracy;
    let (estimated, low, high) = (
        accuracy["estimated"].as_f64(),
        accuracy["estimated_ci"][0].as_f64(),
        accuracy["estimated_ci"][1].as_f64(),
    );
    match (estimated, low, high, realized, reference) {
        (Some(estimated), Some(low), Some(high), Some(realized), Some(reference)) => {
            if realized < low - 0.002 || realized > high + 0.002 {
                problems.push(format!(
                    "{id}: estimated accuracy {estimated:.4} [{low:.4}, {high:.4}] misses the realized {realized:.4} of the last hour"
                ));
            }
            if recent && estimated >= reference - 0.05 {
                problems.push(format!(
                    "{id}: estimated accuracy {estimated:.4} did not fall from the reference hour's {reference:.4}"
                ));
            }
        }
        _ => problems.push(format!(
            "{id}: no estimate ({}) or no truth (realized {realized:?}, reference {reference:?})",
            summary.body["estimation"]
        )),
    }
    for rule in SILENT_SHIFT_RULES {
        let sent = messages(check.alerts, rule);
        if sent != (1, 0) {
            problems.push(format!(
                "{id}: rule {rule} sent {} firing and {} resolved messages, expected 1 and 0 (still firing)",
                sent.0, sent.1
            ));
        }
    }
    let others: Vec<&&Value> = check
        .alerts
        .iter()
        .filter(|a| {
            a["rule"]["id"]
                .as_str()
                .is_none_or(|rule| !SILENT_SHIFT_RULES.contains(&rule))
        })
        .collect();
    if !others.is_empty() {
        problems.push(format!("{id}: unexpected alerts: {others:?}"));
    }
    Ok(problems)
}

/// The answer to the summary request `path` for a window of `span` back from now, and
/// the window's start: the summary covers [the minute of now − `span`, now), asked
/// again when a minute boundary passed while it was answered.
async fn summary_since(
    client: &Client,
    path: &str,
    span: TimeDelta,
) -> Result<(Answer, DateTime<Utc>), TargetError> {
    loop {
        let from = minute(Utc::now() - span);
        let summary = client.request("GET", path, None).await?;
        if minute(Utc::now() - span) == from {
            return Ok((summary, from));
        }
    }
}

/// How many firing and resolved messages of `rule` the alert messages `alerts` hold.
fn messages(alerts: &[&Value], rule: &str) -> (usize, usize) {
    let count = |state: &str| {
        alerts
            .iter()
            .filter(|a| a["rule"]["id"] == rule && a["state"] == state)
            .count()
    };
    (count("firing"), count("resolved"))
}

/// `time` floored to its minute.
pub fn minute(time: DateTime<Utc>) -> DateTime<Utc> {
    modelwatch::domain::Granularity::Minute.floor(time)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use modelwatch::domain::labels::{AwaitingPrediction, Join};
    use modelwatch::domain::{MetricSet, TimeSpan, WindowState};
    use modelwatch::ingest::{BatchLimits, parse_actuals, parse_batch};

    use super::*;
    use scenario::{ModelKind, ModelSpec};

    /// What the product's metric engine makes of a window of one model: its
    /// predictions folded, and the late labels sent joined to them.
    struct Engine {
        window: TimeSpan,
        state: WindowState,
        awaiting: HashMap<String, AwaitingPrediction>,
    }

    impl Engine {
        fn new(window: TimeSpan) -> Self {
            Self {
                window,
                state: WindowState::new(),
                awaiting: HashMap::new(),
            }
        }

        fn inside(&self, time: DateTime<Utc>) -> bool {
            time >= self.window.start && time < self.window.end
        }
    }

    /// Four simulated hours ending now of an inline-labeled and a late-labeled model,
    /// every batch read by the product's own parsers (label timestamps allowed no
    /// clock skew at all) and folded by its metric engine as the join would: the
    /// engine's metrics of a window equal the ground truth as of the last labels sent.
    #[test]
    fn the_product_engine_agrees_with_the_ground_truth_as_of_the_labels_sent() {
        let duration = TimeDelta::hours(4);
        let spec = |id: &str, kind| ModelSpec {
            id: id.to_owned(),
            kind,
        };
        let scenario = Scenario {
            start: minute(Utc::now()) - duration,
            duration,
            per_minute: 12,
            models: vec![
                spec("fraud-detector", ModelKind::Binary),
                spec("chargeback-scorer", ModelKind::LateBinary),
            ],
            degraded: None,
            canary: None,
            seed: 5,
        };
        let (start, end) = (scenario.start, scenario.end());
        // A window that starts after the first predictions and ends with the run.
        let window = TimeSpan::new(start + TimeDelta::minutes(37), end);
        let mut engines: Vec<Engine> = scenario
            .models
            .iter()
            .map(|_| Engine::new(window))
            .collect();
        let mut truth = GroundTruth::default();
        let mut schedule = LabelSchedule::new(start);
        let mut rngs = [Rng::new(1), Rng::new(2)];
        let mut counters = [0; 2];
        let strict = BatchLimits {
            max_future: TimeDelta::zero(),
            ..BatchLimits::default()
        };
        let mut as_of = start;
        let mut t = start;
        while t < end {
            let step_end = (t + TimeDelta::minutes(10)).min(end);
            for (i, model) in scenario.models.iter().enumerate() {
                let batch = scenario.batch(
                    model,
                    t,
                    step_end,
                    &mut rngs[i],
                    &mut counters[i],
                    &mut truth,
                );
                let body = serde_json::to_vec(&batch.body).expect("serializes");
                let valid = parse_batch(&body, Utc::now(), &BatchLimits::default())
                    .expect("the product takes the prediction batch");
                let engine = &mut engines[i];
                let mut awaiting = 0;
                for prediction in &valid.predictions {
                    let record = &prediction.record;
                    if let (true, Some(id)) = (
                        record.outcome.awaits_label(),
                        valid.prediction_id(prediction),
                    ) {
                        awaiting += 1;
                        engine.awaiting.insert(
                            id.to_owned(),
                            AwaitingPrediction {
                                prediction_id: id.to_owned(),
                                time: record.timestamp,
                                outcome: record.outcome.clone(),
                                slices: Vec::new(),
                            },
                        );
                    }
                    if engine.inside(record.timestamp) {
                        engine.state.fold_prediction(record).expect("folds");
                    }
                }
                if model.kind.label_delay().is_some() {
                    assert_eq!(
                        awaiting,
                        batch.late_labels.len(),
                        "each awaiting prediction gets a label"
                    );
                }
                for label in batch.late_labels {
                    assert!(schedule.hold(&model.id, label));
                }
            }
            as_of = step_end.min(Utc::now());
            for batch in schedule.due(as_of) {
                let i = scenario
                    .models
                    .iter()
                    .position(|m| m.id == batch.model_id)
                    .expect("a model");
                let body = serde_json::to_vec(&batch.body()).expect("serializes");
                let valid = parse_actuals(&body, Utc::now(), &strict)
                    .expect("the product takes the label batch, no timestamp in the future");
                assert_eq!(valid.actuals.len(), batch.labels.len());
                let engine = &mut engines[i];
                for sent in valid.actuals {
                    let prediction = engine
                        .awaiting
                        .remove(&sent.label.prediction_id)
                        .expect("a label joins a prediction awaiting it, once");
                    let join = Join {
                        prediction,
                        actual: sent.label.actual,
                        label_time: sent.label.time,
                    };
                    let (outcome, delay) = join.labeled().expect("fits the task");
                    assert!((3600.0..=10_800.0).contains(&delay), "{delay}");
                    if engine.inside(join.prediction.time) {
                        engine.state.fold_label(&outcome, delay).expect("folds");
                    }
                }
            }
            t = step_end;
        }
        for (model, engine) in scenario.models.iter().zip(&engines) {
            let shown = MetricSet::compute(&engine.state, window, None);
            let exact = truth.metrics_as_of(&model.id, window.start, window.end, as_of);
            let id = &model.id;
            assert_eq!(
                (shown.predictions, shown.labeled),
                (exact.predictions, exact.labeled),
                "{id}"
            );
            assert_eq!(shown.error_rate, exact.error_rate, "{id}");
            assert_eq!(shown.label_coverage, exact.label_coverage, "{id}");
            let close = |a: Option<f64>, b: Option<f64>, tolerance: f64| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= tolerance * b.abs(),
                (a, b) => a == b,
            };
            assert!(
                close(shown.accuracy, exact.accuracy, 1e-12),
                "{id}: {shown:?} {exact:?}"
            );
            assert!(
                close(shown.latency_p95_ms, exact.latency_p95_ms, SKETCH_TOLERANCE),
                "{id}"
            );
            assert!(
                close(
                    shown.label_delay_p95_s,
                    exact.label_delay_p95_s,
                    SKETCH_TOLERANCE
                ),
                "{id}: {:?} {:?}",
                shown.label_delay_p95_s,
                exact.label_delay_p95_s
            );
        }
        // The late model's labels fill in: its first hours fully labeled (every
        // successful prediction), its last hour not at all.
        let late = "chargeback-scorer";
        let first = truth.metrics_as_of(late, start, start + TimeDelta::hours(1), as_of);
        assert_eq!(first.labeled, first.predictions - first.errors);
        let last = truth.metrics_as_of(late, end - TimeDelta::hours(1), end, as_of);
        assert_eq!((last.labeled, last.label_coverage), (0, Some(0.0)));
        let exact = truth.metrics_as_of(late, window.start, window.end, as_of);
        let coverage = exact.label_coverage.unwrap_or_default();
        assert!(coverage > 0.3 && coverage < 0.9, "{coverage}");
        assert!(exact.label_delay_p95_s.is_some());
    }
}

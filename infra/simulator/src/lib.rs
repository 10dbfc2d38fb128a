//! The traffic simulator: serving systems pushing prediction batches through the ingest
//! route for several models — a binary classifier, a multiclass classifier, a
//! regressor — over simulated hours compressed in time, one model drifting and then
//! failing (see [`scenario`]). On the local stack it also drives `aggregate` and
//! `evaluate` the way their schedules would; against a deployment it only pushes.
//!
//! It keeps its own ground truth ([`truth`]) so the product's answers can be checked
//! ([`check`]).

pub mod observe;
pub mod rng;
pub mod scenario;
pub mod target;
pub mod truth;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use rng::Rng;
use scenario::Scenario;
use target::{Client, TargetError};
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
}

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
            let sent = batch["predictions"].as_array().map_or(0, Vec::len) as u64;
            let answer = client
                .request("POST", "/api/v1/monitoring/predictions", Some(&batch))
                .await?;
            if answer.status != 202 {
                return Err(TargetError::Answer {
                    what: format!("ingest of {} at {t}", model.id),
                    detail: format!("HTTP {}: {}", answer.status, answer.body),
                });
            }
            outcome.batches += 1;
            outcome.predictions += sent;
        }
        if t == scenario.start && config.register_baselines {
            for model in &scenario.models {
                let baseline = json!({
                    "test_set": {"evaluated_at": (scenario.start - TimeDelta::days(1)).to_rfc3339(),
                                 "metrics": model.kind.test_set_metrics()},
                    "throughput_forecast_rps": f64::from(scenario.per_minute) / 60.0,
                });
                let path = format!("/api/v1/monitoring/performance/{}/baseline", model.id);
                let answer = client.request("PUT", &path, Some(&baseline)).await?;
                if answer.status != 200 {
                    return Err(TargetError::Answer {
                        what: format!("PUT {path}"),
                        detail: format!("HTTP {}: {}", answer.status, answer.body),
                    });
                }
            }
        }
        since_evaluation += step_end - t;
        if client.drives_schedules() {
            let last = step_end >= scenario.end();
            if since_evaluation >= config.evaluate_every || last {
                expect_report(
                    client.run_schedule("aggregate", Utc::now()).await?,
                    "aggregate",
                    "fan_out",
                )?;
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
        });
        t = step_end;
    }
    Ok(outcome)
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

/// Checks the product against the ground truth after a local run: every problem found
/// (empty when all is well). `alerts` are the alert messages the SNS subscriber
/// received for this tenant (the alert JSON of each).
pub async fn check(
    client: &Client,
    config: &RunConfig,
    outcome: &RunOutcome,
    alerts: &[Value],
) -> Result<Vec<String>, TargetError> {
    let now = Utc::now();
    let scenario = &config.scenario;
    let mut problems = Vec::new();
    for model in &scenario.models {
        let degraded = scenario.degraded.as_deref() == Some(model.id.as_str());
        // The summary's values against the ground truth over the same span: the
        // summary covers [the minute of now − 24 h, now); asked again if a minute
        // boundary passed while it was answered.
        let path = format!(
            "/api/v1/monitoring/performance/{}?window=24h&granularity=hour",
            model.id
        );
        let (summary, from) = loop {
            let from = minute(Utc::now() - TimeDelta::hours(24));
            let summary = client.request("GET", &path, None).await?;
            if minute(Utc::now() - TimeDelta::hours(24)) == from {
                break (summary, from);
            }
        };
        if summary.status != 200 {
            problems.push(format!("{path}: HTTP {} {}", summary.status, summary.body));
            continue;
        }
        let truth = outcome.truth.metrics(&model.id, from, now.max(Utc::now()));
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
            0.0101,
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
        // Alerts: the degraded model's rules each fired once and resolved once; the
        // healthy models raised nothing.
        let mine: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["model_id"] == model.id.as_str())
            .collect();
        if degraded {
            let mut rules: Vec<&str> = mine
                .iter()
                .filter_map(|a| a["rule"]["id"].as_str())
                .collect();
            rules.sort_unstable();
            rules.dedup();
            if rules.is_empty() {
                problems.push(format!("{}: the degraded model raised no alert", model.id));
            }
            for rule in rules {
                let count = |state: &str| {
                    mine.iter()
                        .filter(|a| a["rule"]["id"] == rule && a["state"] == state)
                        .count()
                };
                if (count("firing"), count("resolved")) != (1, 1) {
                    problems.push(format!(
                        "{}: rule {rule} sent {} firing and {} resolved messages, expected 1 and 1",
                        model.id,
                        count("firing"),
                        count("resolved")
                    ));
                }
            }
        } else if !mine.is_empty() {
            problems.push(format!(
                "{}: a healthy model raised {} alert messages: {mine:?}",
                model.id,
                mine.len()
            ));
        }
    }
    Ok(problems)
}

/// `time` floored to its minute.
pub fn minute(time: DateTime<Utc>) -> DateTime<Utc> {
    modelwatch::domain::Granularity::Minute.floor(time)
}

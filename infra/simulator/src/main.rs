//! `modelwatch-simulator`: pushes simulated serving traffic to modelwatch and prints
//! what the product made of it. See `--help`.

use std::io::Write;
use std::process::ExitCode;

use chrono::{TimeDelta, Utc};
use modelwatch_simulator::labels::LabelTally;
use modelwatch_simulator::observe::prometheus_query;
use modelwatch_simulator::scenario::{MIN_DURATION, ModelKind, ModelSpec, Scenario};
use modelwatch_simulator::target::{Client, HttpApi, Target, TargetError};
use modelwatch_simulator::{Progress, RunConfig, canary_comparison, check, minute, run, summary};
use serde_json::Value;

const HELP: &str = "\
modelwatch-simulator: serving systems pushing prediction batches to modelwatch

Target (one of):
  --lambda-endpoint URL --tenant ID   the local stack's Lambda emulator; also drives
                                      aggregate and evaluate as their schedules would
  --api-url URL --token JWT           a deployed HTTP API (its schedules run by themselves)
  both                                the local stack, its requests over HTTP through
                                      its gateway (the demo), the schedules driven
Traffic:
  --hours H                 simulated hours, ending now (default 26; at least 3 with a degraded model)
  --step-minutes N          simulated minutes per batch (default 5)
  --evaluate-every-minutes N  simulated minutes between evaluations (default: the step)
  --per-minute N            predictions per model per minute (default 30)
  --models ID:KIND,...      KIND binary|multiclass|regression (multiclass: scored, its
                            first hour registered as its reference window); binary-late: a binary
                            classifier whose labels arrive 1-3 simulated hours after its
                            predictions, by the label route; binary-unlabeled: labeled in
                            its first hour only (its reference window), its inputs shifting
                            silently in the last hour (default fraud-detector:binary,
                            intent-router:multiclass,eta-regressor:regression,
                            chargeback-scorer:binary-late,lead-scorer:binary-unlabeled)
  --degrade ID | --no-degrade   the model that drifts and fails (default: the first)
  --canary ID | --no-canary     the classifier (binary or multiclass) that rolls out a
                            worse version v2 to a tenth of its traffic in the last hour,
                            with an accuracy rule on v2 (default: the degraded model,
                            when it is one)
  --seed N                  random seed (default 7)
  --no-baselines            do not register test-set baselines, forecasts and references
Read back:
  --alert-queue-url URL     SQS queue subscribed to the alert topic (AWS_* variables apply)
  --prometheus-url URL      Prometheus to query for the mirrored metrics
  --check                   exit 1 when summaries disagree with the ground truth or the
                            alerts are not: each degraded-model rule fired once and resolved
                            once, nothing from the healthy models; a late-label model is
                            compared with the labels sent by the end, each one joined; an
                            unlabeled model's estimated accuracy holds the realized one and
                            its drift and estimate rules fire; the canary is found worse
                            than v1, its summary holds its own records and its rule fired
  --quiet                   no progress line
";

struct Args {
    target: Target,
    config: RunConfig,
    prometheus_url: Option<String>,
    check: bool,
    quiet: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut options = std::collections::BTreeMap::new();
    let mut flags = std::collections::BTreeSet::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--check" | "--quiet" | "--no-degrade" | "--no-baselines" | "--no-canary" => {
                flags.insert(arg);
            }
            name if name.starts_with("--") => {
                let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
                options.insert(name.to_owned(), value);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let mut take = |name: &str| options.remove(name);
    let number = |value: Option<String>, name: &str, default: i64| -> Result<i64, String> {
        value.map_or(Ok(default), |v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be a positive whole number, not {v:?}"))
        })
    };
    let target = match (
        take("--lambda-endpoint"),
        take("--tenant"),
        take("--api-url"),
        take("--token"),
    ) {
        (Some(endpoint), Some(tenant), api_url, token) => Target::Lambda {
            endpoint,
            tenant,
            http_api: match (api_url, token) {
                (Some(api_url), Some(token)) => Some(HttpApi { api_url, token }),
                (None, None) => None,
                _ => return Err("--api-url and --token go together".into()),
            },
        },
        (None, None, Some(api_url), Some(token)) => Target::Http(HttpApi { api_url, token }),
        _ => {
            return Err(
                "give either --lambda-endpoint and --tenant, or --api-url and --token".into(),
            );
        }
    };
    let hours = number(take("--hours"), "--hours", 26)?;
    let step = number(take("--step-minutes"), "--step-minutes", 5)?;
    let evaluate_every = number(
        take("--evaluate-every-minutes"),
        "--evaluate-every-minutes",
        step,
    )?;
    let per_minute = number(take("--per-minute"), "--per-minute", 30)?;
    let seed = number(take("--seed"), "--seed", 7)?;
    let models_arg = take("--models").unwrap_or_else(|| {
        "fraud-detector:binary,intent-router:multiclass,eta-regressor:regression,chargeback-scorer:binary-late,lead-scorer:binary-unlabeled".into()
    });
    let mut models = Vec::new();
    for spec in models_arg.split(',') {
        let (id, kind) = spec
            .split_once(':')
            .ok_or_else(|| format!("--models: {spec:?} is not ID:KIND"))?;
        let kind =
            ModelKind::parse(kind).ok_or_else(|| format!("--models: unknown kind {kind:?}"))?;
        models.push(ModelSpec {
            id: id.to_owned(),
            kind,
        });
    }
    let degraded = if flags.contains("--no-degrade") {
        None
    } else {
        let id = take("--degrade").or_else(|| models.first().map(|m| m.id.clone()));
        if let Some(id) = &id
            && !models.iter().any(|m| &m.id == id)
        {
            return Err(format!("--degrade {id}: not one of the models"));
        }
        id
    };
    let canary = if flags.contains("--no-canary") {
        None
    } else {
        let classifier = |id: &str| {
            models
                .iter()
                .any(|m| m.id == id && matches!(m.kind, ModelKind::Binary | ModelKind::Multiclass))
        };
        match take("--canary") {
            Some(id) if classifier(&id) => Some(id),
            Some(id) => return Err(format!("--canary {id}: not a binary or multiclass model")),
            None => degraded.clone().filter(|id| classifier(id)),
        }
    };
    let duration = TimeDelta::hours(hours);
    if degraded.is_some() && duration < MIN_DURATION {
        return Err("--hours must be at least 3 when a model degrades".into());
    }
    let alert_queue_url = take("--alert-queue-url");
    let prometheus_url = take("--prometheus-url");
    if let Some(name) = options.keys().next() {
        return Err(format!("unknown option {name}"));
    }
    let scenario = Scenario {
        start: minute(Utc::now()) - duration,
        duration,
        per_minute: u32::try_from(per_minute)
            .map_err(|_| "--per-minute is too large".to_owned())?,
        models,
        degraded,
        canary,
        seed: seed.unsigned_abs(),
    };
    Ok(Args {
        target,
        config: RunConfig {
            scenario,
            step: TimeDelta::minutes(step),
            evaluate_every: TimeDelta::minutes(evaluate_every),
            register_baselines: !flags.contains("--no-baselines"),
            alert_queue_url,
        },
        prometheus_url,
        check: flags.contains("--check"),
        quiet: flags.contains("--quiet"),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("modelwatch-simulator: {message}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match simulate(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("modelwatch-simulator: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs, reports, checks; `Ok(false)` when the check found problems.
async fn simulate(args: &Args) -> Result<bool, String> {
    let mut client = Client::new(args.target.clone());
    if client.drives_schedules() {
        client = client.with_sqs().await;
    }
    let scenario = &args.config.scenario;
    println!(
        "simulating {} h of traffic ({} → {}) for {} models, {} predictions a minute each{}",
        scenario.duration.num_hours(),
        scenario.start.format("%m-%d %H:%M"),
        scenario.end().format("%m-%d %H:%M"),
        scenario.models.len(),
        scenario.per_minute,
        scenario
            .degraded
            .as_deref()
            .map(|m| format!(
                "; {m} drifts, then fails {}–{} and recovers",
                scenario.incident().0.format("%H:%M"),
                scenario.incident().1.format("%H:%M")
            ))
            .unwrap_or_default()
    );
    for model in &scenario.models {
        if model.kind == ModelKind::SilentBinary {
            println!(
                "  {} sends labels for its first hour only; from {} its inputs shift, silently",
                model.id,
                scenario.silent_shift().format("%H:%M")
            );
        }
        if let Some((shortest, longest)) = model.kind.label_delay() {
            println!(
                "  {}'s labels arrive {}–{} h after its predictions, sent as they arrive",
                model.id,
                shortest.num_hours(),
                longest.num_hours()
            );
        }
    }
    let quiet = args.quiet;
    let outcome = run(&client, &args.config, |p: &Progress| {
        if !quiet {
            let labels = if p.labels.sent > 0 {
                format!("  labels {} joined of {}", p.labels.joined, p.labels.sent)
            } else {
                String::new()
            };
            print!(
                "\r  [{:<30}] {:>3.0}%  simulated {}  batches {:>5}  firing {}{labels}{}   ",
                "#".repeat((p.done * 30.0) as usize),
                p.done * 100.0,
                p.simulated.format("%m-%d %H:%M"),
                p.batches,
                p.firing,
                if p.incident { "  (incident)" } else { "" }
            );
            let _ = std::io::stdout().flush();
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if !quiet {
        println!();
    }
    println!(
        "sent {} predictions in {} batches; {} evaluation runs published {} alert transitions",
        outcome.predictions, outcome.batches, outcome.evaluations, outcome.notifications
    );
    for (model, tally) in &outcome.labels {
        print_label_tally(model, tally, outcome.labels_as_of);
    }

    for model in &scenario.models {
        print_model(&client, &model.id)
            .await
            .map_err(|e| e.to_string())?;
        if model.kind.label_delay().is_some() {
            print_label_fill(&client, &model.id)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(model) = &scenario.canary {
        print_canary(&client, model)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut alerts = outcome.alerts.clone();
    if let Some(queue) = &args.config.alert_queue_url {
        alerts.extend(
            client
                .drain_alerts(queue)
                .await
                .map_err(|e| e.to_string())?,
        );
        println!(
            "\nalerts received by the SNS subscriber ({}):",
            alerts.len()
        );
        for alert in &alerts {
            let state = alert["state"].as_str().unwrap_or("?");
            let at = if state == "resolved" {
                &alert["resolved_at"]
            } else {
                &alert["started_at"]
            };
            println!(
                "  {}  {:<8} {:<15} {:<30} {} {} {} over {} (observed {})",
                at.as_str().unwrap_or("?"),
                state,
                alert["model_id"].as_str().unwrap_or("?"),
                alert["rule"]["id"].as_str().unwrap_or("?"),
                alert["rule"]["metric"].as_str().unwrap_or("?"),
                alert["rule"]["condition"].as_str().unwrap_or("?"),
                number(&alert["rule"]["threshold"]),
                alert["rule"]["window"].as_str().unwrap_or("?"),
                number(&alert["observed_value"]),
            );
        }
    }
    if let (Some(url), Target::Lambda { tenant, .. }) = (&args.prometheus_url, &args.target) {
        println!("\nPrometheus at the end of the simulation:");
        // Gauges carry their minute's time (evaluate's its run's minute); counters the
        // time they were exported.
        let (last_minute, now) = (scenario.end() - TimeDelta::minutes(1), Utc::now());
        for (what, query, at) in [
            (
                "accuracy",
                format!("ml_model_accuracy{{tenant_id=\"{tenant}\"}}"),
                last_minute,
            ),
            (
                "p95 latency, s",
                format!("ml_model_latency_seconds{{tenant_id=\"{tenant}\",quantile=\"0.95\"}}"),
                last_minute,
            ),
            (
                "accuracy baseline",
                format!("ml_model_baseline{{tenant_id=\"{tenant}\",metric=\"accuracy\"}}"),
                scenario.end(),
            ),
            (
                "estimated acc. 1h",
                format!("ml_model_estimated_accuracy{{tenant_id=\"{tenant}\"}}"),
                scenario.end(),
            ),
            (
                "prediction PSI 1h",
                format!("ml_model_prediction_drift{{tenant_id=\"{tenant}\",statistic=\"psi\"}}"),
                scenario.end(),
            ),
            (
                "confidence PSI 1h",
                format!("ml_model_confidence_drift{{tenant_id=\"{tenant}\",statistic=\"psi\"}}"),
                scenario.end(),
            ),
            (
                "rules firing",
                format!("sum by (model_id) (ml_model_alert_firing{{tenant_id=\"{tenant}\"}})"),
                scenario.end(),
            ),
            (
                "predictions",
                format!("sum by (model_id) (ml_model_predictions_total{{tenant_id=\"{tenant}\"}})"),
                now,
            ),
            (
                "errors",
                format!("sum by (model_id) (ml_model_errors_total{{tenant_id=\"{tenant}\"}})"),
                now,
            ),
        ] {
            for (labels, value) in prometheus_query(url, &query, at)
                .await
                .map_err(|e| e.to_string())?
            {
                println!(
                    "  {:<15} {what:<17} {value:.4}",
                    labels["model_id"].as_str().unwrap_or("?")
                );
            }
        }
    }
    if args.check {
        let problems = check(&client, &args.config, &outcome, &alerts)
            .await
            .map_err(|e| e.to_string())?;
        if problems.is_empty() {
            let late = if outcome.labels.is_empty() {
                ""
            } else {
                " (late labels as of the last ones sent, every one joined)"
            };
            println!(
                "\ncheck: the summaries match the ground truth{late}; alerts fired and resolved for the degraded model, the unlabeled model's estimate held its realized accuracy and its shift alerted; the canary was found worse and its rule fired; nothing from the healthy models"
            );
        } else {
            println!("\ncheck FAILED:");
            for problem in &problems {
                println!("  - {problem}");
            }
            return Ok(false);
        }
    }
    Ok(true)
}

/// Prints what became of a model's late labels.
fn print_label_tally(model: &str, tally: &LabelTally, as_of: Option<chrono::DateTime<Utc>>) {
    println!(
        "{model}: {} late labels sent in {} batches (those arrived by {}): {} joined, {} pending, {} already labeled, {} expired, {} refused; {} still in the future, never sent",
        tally.sent,
        tally.batches,
        as_of.map_or_else(|| "—".to_owned(), |t| t.format("%m-%d %H:%M").to_string()),
        tally.joined,
        tally.pending,
        tally.already_labeled,
        tally.expired,
        tally.refused,
        tally.never_sent
    );
}

/// Prints a late-label model's last 6 hours by the hour, as the summary's series has
/// them: the older hours fully labeled, the latest ones filling in.
async fn print_label_fill(client: &Client, model: &str) -> Result<(), TargetError> {
    let s = &summary(client, model, "window=6h&granularity=hour").await?;
    println!(
        "  labels filling in, last 6 h by hour (coverage {}, delay p50 {} s, p95 {} s over the window):",
        number(&s["label_metrics"]["label_coverage"]),
        number(&s["label_metrics"]["label_delay_p50_s"]),
        number(&s["label_metrics"]["label_delay_p95_s"])
    );
    println!(
        "    {:<12} {:>11} {:>8} {:>10} {:>10} {:>12}",
        "hour", "predictions", "labeled", "coverage", "accuracy", "delay p95 s"
    );
    for point in s["series"].as_array().into_iter().flatten() {
        let hour = point["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(|| "?".to_owned(), |t| t.format("%m-%d %H:%M").to_string());
        println!(
            "    {hour:<12} {:>11} {:>8} {:>10} {:>10} {:>12}",
            count(&point["sample_count"]),
            count(&point["labeled_count"]),
            number(&point["label_coverage"]),
            number(&point["accuracy"]),
            number(&point["label_delay_p95_s"])
        );
    }
    Ok(())
}

/// Prints the canary's comparison with the stable version over the last hour.
async fn print_canary(client: &Client, model: &str) -> Result<(), TargetError> {
    let compared = canary_comparison(client, model).await?;
    println!(
        "\n{model}: canary {} ({} predictions) against {} ({}) over the last hour: {}",
        compared["candidate"]["slice"].as_str().unwrap_or("?"),
        compared["candidate"]["sample_count"],
        compared["baseline"]["slice"].as_str().unwrap_or("?"),
        compared["baseline"]["sample_count"],
        compared["verdict"].as_str().unwrap_or("?"),
    );
    for metric in compared["metrics"].as_array().into_iter().flatten() {
        let name = metric["metric"].as_str().unwrap_or("?");
        if !["accuracy", "error_rate", "latency_p95"].contains(&name) {
            continue;
        }
        let test = match (metric["test"]["p_value"].as_f64(), &metric["bound"]) {
            (Some(p), _) => format!("p = {p:.2e}"),
            (None, bound) if bound.is_number() => format!("± {}", number(bound)),
            _ => String::new(),
        };
        println!(
            "  {name:<12} {} → {} ({}{}) {test}",
            number(&metric["baseline"]),
            number(&metric["candidate"]),
            if metric["difference"].as_f64() >= Some(0.0) {
                "+"
            } else {
                ""
            },
            number(&metric["difference"]),
        );
    }
    Ok(())
}

/// Prints one model's 24-hour summary and its trends.
async fn print_model(client: &Client, model: &str) -> Result<(), TargetError> {
    let s = &summary(client, model, "window=24h").await?;
    println!(
        "\n{model} — last 24 h ({} predictions, {} labeled)",
        s["sample_count"], s["labeled_count"]
    );
    if let Some(quality) = s["quality_metrics"].as_object() {
        for (name, value) in quality {
            println!(
                "  {name:<22} {:>10}  baseline {:>8}  trend {}",
                number(&value["current"]),
                number(&value["baseline"]),
                value["trend"].as_str().unwrap_or("—")
            );
        }
    }
    if s["estimation"]["unavailable"].is_null() {
        let accuracy = &s["quality_metrics"]["accuracy"];
        println!(
            "  without labels: estimated accuracy {} [{}, {}] · prediction PSI {} · JS {} (against {} {}–{})",
            number(&accuracy["estimated"]),
            number(&accuracy["estimated_ci"][0]),
            number(&accuracy["estimated_ci"][1]),
            number(&s["drift"]["psi"]),
            number(&s["drift"]["js"]),
            s["estimation"]["reference"]["source"]
                .as_str()
                .unwrap_or("?"),
            s["estimation"]["reference"]["from"].as_str().unwrap_or("?"),
            s["estimation"]["reference"]["to"].as_str().unwrap_or("?"),
        );
    }
    for section in ["serving_metrics", "resource_metrics"] {
        if let Some(values) = s[section].as_object() {
            let line: Vec<String> = values
                .iter()
                .map(|(k, v)| format!("{k} {}", number(v)))
                .collect();
            println!("  {}", line.join(" · "));
        }
    }
    let trends = client
        .request(
            "GET",
            &format!("/api/v1/monitoring/performance/{model}/trends"),
            None,
        )
        .await?;
    if let Some(trends) = trends.body["trends"].as_object() {
        for (metric, t) in trends {
            println!(
                "  trend {metric:<16} {:<18} slope/day {:>10}  confidence {:>6}  breach {}",
                t["7_day_trend"].as_str().unwrap_or("?"),
                number(&t["slope"]),
                number(&t["confidence"]),
                t["projected_baseline_breach"].as_str().unwrap_or("—")
            );
        }
    }
    Ok(())
}

/// A whole number, or `—`.
fn count(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "—".to_owned(), |v| v.to_string())
}

/// A number to four decimals, or `—`.
fn number(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "—".to_owned(), |v| format!("{v:.4}"))
}

#[cfg(test)]
mod tests {
    use modelwatch_simulator::scenario::LATE_LABEL_DELAY;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn the_default_scenario_has_a_late_label_model_after_the_others() {
        let args = parse(&[
            "--lambda-endpoint",
            "http://127.0.0.1:9000",
            "--tenant",
            "t",
        ])
        .expect("parses");
        let models: Vec<(&str, ModelKind)> = args
            .config
            .scenario
            .models
            .iter()
            .map(|m| (m.id.as_str(), m.kind))
            .collect();
        assert_eq!(
            models,
            [
                ("fraud-detector", ModelKind::Binary),
                ("intent-router", ModelKind::Multiclass),
                ("eta-regressor", ModelKind::Regression),
                ("chargeback-scorer", ModelKind::LateBinary),
                ("lead-scorer", ModelKind::SilentBinary),
            ]
        );
        assert_eq!(
            args.config.scenario.degraded.as_deref(),
            Some("fraud-detector")
        );
        let args = parse(&[
            "--api-url",
            "https://x",
            "--token",
            "j",
            "--models",
            "late:binary-late",
            "--no-degrade",
        ])
        .expect("parses");
        assert_eq!(
            args.config.scenario.models[0].kind.label_delay(),
            Some(LATE_LABEL_DELAY)
        );
    }
}

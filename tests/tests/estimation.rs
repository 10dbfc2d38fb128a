//! End to end: performance estimated without labels, and prediction drift, through the
//! real binaries. A labeled reference hour of a binary classifier whose scores are
//! miscalibrated, then an unlabeled window with covariate shift, through `ingest`;
//! `aggregate` on its scheduled event; the reference registered with `PUT …/baseline`;
//! then the summary from `api`. Its estimates and drift equal NannyML's method and
//! scipy's on the same records (`tests/reference/estimation_metrics.py`), and the
//! realized accuracy of the window — computed here from the actuals the product never
//! saw — lies within the estimate's interval. Then `evaluate`: a model's first day is
//! captured as its reference, an hour of drifted scores fires the default
//! prediction-drift rule once, with the same PSI, and writes the estimate and drift
//! gauges to Prometheus; an hour like the reference resolves it once. A multiclass classifier's predicted labels and a regressor's predicted values
//! drift too, equal to the same script's.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch_e2e::dashboard::prometheus;
use modelwatch_e2e::subscriber::{Subscriber, alert_of};
use modelwatch_e2e::{
    Stack, api_request, event, http_answer, ingest_event, python_reference, unique_tenant,
    with_body,
};
use modelwatch_simulator::rng::Rng;
use serde_json::{Value, json};

const MODEL: &str = "m-estimated";

/// A prediction at `time`: latent `x ~ N(mean, 1)`, the model's score `σ(1.2x)`
/// (predicted positive from 0.5), the truth drawn with `P = σ(1.5x − 0.3)`.
struct Prediction {
    time: DateTime<Utc>,
    score: f64,
    predicted: bool,
    actual: bool,
}

/// `n` predictions spread over `span` from `start`.
fn predictions(
    draws: &mut Rng,
    start: DateTime<Utc>,
    span: TimeDelta,
    n: usize,
    mean: f64,
) -> Vec<Prediction> {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    (0..n)
        .map(|i| {
            let x = mean + draws.normal();
            let score = sigmoid(1.2 * x);
            Prediction {
                time: start + span * i as i32 / n as i32,
                score,
                predicted: score >= 0.5,
                actual: draws.chance(sigmoid(1.5 * x - 0.3)),
            }
        })
        .collect()
}

fn batch(model: &str, batch_id: &str, records: &[Prediction], labeled: bool) -> Vec<u8> {
    let predictions: Vec<Value> = records
        .iter()
        .map(|p| {
            let mut record = json!({"timestamp": p.time.to_rfc3339(), "latency_ms": 8,
                                    "status": "ok", "predicted": p.predicted, "score": p.score});
            if labeled {
                record["actual"] = p.actual.into();
            }
            record
        })
        .collect();
    json!({"model_id": model, "batch_id": batch_id, "task": "binary_classification",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// NannyML's and scipy's values, through the local stack's Python.
fn reference_values(reference: &[Prediction], window: &[Prediction]) -> Value {
    let input = json!({
        "reference": reference.iter().map(|p| json!([p.score, p.predicted, p.actual])).collect::<Vec<_>>(),
        "window": window.iter().map(|p| json!([p.score, p.predicted])).collect::<Vec<_>>(),
    });
    python_reference("tests/reference/estimation_metrics.py", &input)
}

async fn call(stack: &Stack, event: &Value) -> (u16, Value) {
    http_answer(&stack.invoke("api", event).await)
}

/// Sends `records` of `model` as one batch, labeled or not.
async fn send(
    stack: &Stack,
    tenant: &str,
    model: &str,
    id: &str,
    records: &[Prediction],
    labeled: bool,
) {
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(tenant, &batch(model, id, records, labeled)),
        )
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
}

/// Rolls up what was sent (the schedule's event at the current time).
async fn aggregate(stack: &Stack) {
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = Utc::now().to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");
}

/// Runs `evaluate` for `at`; it must report no failure.
async fn evaluate(stack: &Stack, at: DateTime<Utc>) {
    let mut trigger = event("evaluate-scheduled.json");
    trigger["time"] = at.to_rfc3339().into();
    let report = stack.invoke("evaluate", &trigger).await;
    assert_eq!(report["failures"], json!([]), "{report}");
}

/// `PUT …/baseline` of `model` with the reference window `[from, to)`.
async fn register_reference(
    stack: &Stack,
    tenant: &str,
    model: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let path = format!("/api/v1/monitoring/performance/{model}/baseline");
    let put = with_body(
        api_request(Some(tenant), "PUT", &path, &[]),
        Some("application/json"),
        &json!({"reference": {"from": from.to_rfc3339(), "to": to.to_rfc3339()}}).to_string(),
    );
    let (status, baseline) = call(stack, &put).await;
    assert_eq!(status, 200, "{baseline}");
    assert_eq!(baseline["reference"]["source"], "registered");
}

#[tokio::test]
async fn an_unlabeled_window_is_estimated_from_the_reference_and_its_drift_measured() {
    let stack = Stack::get();
    let tenant = unique_tenant("estimated");
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute");
    // One deterministic draw (the interval's coverage over many draws is
    // shared/tests/estimation.rs's: ≥ 90 % of 200).
    let mut draws = Rng::new(1);
    let reference_start = minute - TimeDelta::hours(3);
    let reference = predictions(&mut draws, reference_start, TimeDelta::hours(1), 8_000, 0.0);
    // Covariate shift: more positives, the concept unchanged; closed minutes only.
    let window_start = minute - TimeDelta::minutes(45);
    let window = predictions(&mut draws, window_start, TimeDelta::minutes(42), 1_700, 0.8);
    send(stack, &tenant, MODEL, "ref", &reference, true).await;
    send(stack, &tenant, MODEL, "win", &window, false).await;
    aggregate(stack).await;

    let summary_path = format!("/api/v1/monitoring/performance/{MODEL}");
    let summary_request = api_request(Some(&tenant), "GET", &summary_path, &[("window", "1h")]);
    let (status, before) = call(stack, &summary_request).await;
    assert_eq!(status, 200, "{before}");
    assert!(
        before["estimation"]["unavailable"]
            .as_str()
            .is_some_and(|why| why.contains("no reference window")),
        "{}",
        before["estimation"]
    );

    let reference_end = reference_start + TimeDelta::hours(1);
    register_reference(stack, &tenant, MODEL, reference_start, reference_end).await;

    let (status, body) = call(stack, &summary_request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labeled_count"], 0, "the window is unlabeled");
    assert_eq!(body["estimation"]["unavailable"], Value::Null, "{body}");
    assert_eq!(body["estimation"]["predictions"], window.len());
    let want = reference_values(&reference, &window);
    let quality = &body["quality_metrics"];
    let estimation = &body["estimation"];
    for (shown, metric) in [
        (&quality["accuracy"], "accuracy"),
        (&quality["f1_score"], "f1_score"),
        (&quality["auc_roc"], "auc_roc"),
        (&estimation["precision"], "precision"),
        (&estimation["recall"], "recall"),
    ] {
        let shown = shown["estimated"].as_f64().expect(metric);
        let expected = want[metric].as_f64().expect(metric);
        assert!(
            (shown - expected).abs() <= 1e-9,
            "{metric}: {shown} vs NannyML's method {expected}"
        );
    }
    assert_significant_drift(&body["drift"], &want, "the scores");

    // The estimate follows the realized accuracy the product never saw.
    let correct = window.iter().filter(|p| p.predicted == p.actual).count();
    let realized = correct as f64 / window.len() as f64;
    let interval = &quality["accuracy"]["estimated_ci"];
    let (low, high) = (
        interval[0].as_f64().expect("low"),
        interval[1].as_f64().expect("high"),
    );
    assert!(
        low <= realized && realized <= high,
        "realized accuracy {realized} outside the estimate's interval [{low}, {high}]"
    );
}

/// The latest value of the Prometheus series `selector` at `at`, if any.
async fn gauge_at(stack: &Stack, selector: &str, at: DateTime<Utc>) -> Option<f64> {
    let answer = prometheus(
        stack,
        "/api/v1/query",
        &[
            ("query", selector.to_owned()),
            ("time", at.timestamp().to_string()),
        ],
    )
    .await;
    assert_eq!(answer["status"], "success", "{answer}");
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn score_drift_fires_the_drift_rule_once_and_resolves_it_once() {
    let stack = Stack::get();
    let tenant = unique_tenant("drift");
    let model = "m-drifting";
    let alerts = Subscriber::new(stack, &tenant, None).await;
    let hour = Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .expect("hour");
    let base = hour - TimeDelta::hours(5);
    let mut draws = Rng::new(2);
    // The model's first day, captured as its reference by the evaluation 24 hours in:
    // 3,000 labeled predictions in one minute of each hour (few minutes to roll up).
    let first = base - TimeDelta::hours(23);
    let mut reference = predictions(&mut draws, first, TimeDelta::hours(1), 3_000, 0.0);
    let n = reference.len();
    for (i, p) in reference.iter_mut().enumerate() {
        p.time =
            first + TimeDelta::hours((i * 24 / n) as i64) + TimeDelta::seconds((i % 60) as i64);
    }
    // Scores drift up (an input shift) for an hour, then come back.
    let drifted = predictions(
        &mut draws,
        base + TimeDelta::hours(2),
        TimeDelta::hours(1),
        1_200,
        1.0,
    );
    let back = predictions(
        &mut draws,
        base + TimeDelta::hours(3),
        TimeDelta::hours(1),
        1_200,
        0.0,
    );
    send(stack, &tenant, model, "reference", &reference, true).await;
    send(stack, &tenant, model, "drifted", &drifted, false).await;
    aggregate(stack).await;

    // The first evaluation past the first day captures it, takes it as the reference
    // and judges the drifted hour against it.
    let fired_at = base + TimeDelta::hours(3);
    evaluate(stack, fired_at).await;
    let (status, baseline) = call(
        stack,
        &api_request(
            Some(&tenant),
            "GET",
            &format!("/api/v1/monitoring/performance/{model}/baseline"),
            &[],
        ),
    )
    .await;
    assert_eq!(status, 200, "{baseline}");
    assert_eq!(
        (
            &baseline["reference"]["source"],
            &baseline["reference"]["from"]
        ),
        (
            &json!("captured"),
            &json!(first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        ),
        "{baseline}"
    );
    evaluate(stack, fired_at + TimeDelta::seconds(30)).await;
    let firing: Vec<Value> = alerts.drain().await.iter().map(alert_of).collect();
    assert_eq!(firing.len(), 1, "{firing:#?}");
    let alert = &firing[0];
    assert_eq!(
        (
            &alert["rule"]["id"],
            &alert["state"],
            &alert["rule"]["severity"]
        ),
        (
            &json!("default-prediction_psi"),
            &json!("firing"),
            &json!("warning")
        )
    );
    assert_eq!(alert["rule"]["threshold"], 0.2);
    assert_eq!(alert["sample_count"], drifted.len());
    // The PSI of the drifted hour against the reference, as scipy's side computes it.
    let want = reference_values(&reference, &drifted);
    let psi = alert["observed_value"].as_f64().expect("psi");
    let expected = want["psi"].as_f64().expect("psi");
    assert!((psi - expected).abs() <= 1e-9, "PSI {psi} vs {expected}");
    assert!(psi > 0.2, "{psi}");
    // Written to Prometheus for the dashboards, over the last hour.
    let ids = format!("tenant_id=\"{tenant}\",model_id=\"{model}\",window=\"1h\"");
    let drift = gauge_at(
        stack,
        &format!("ml_model_prediction_drift{{{ids},statistic=\"psi\"}}"),
        fired_at + TimeDelta::seconds(30),
    )
    .await;
    assert_eq!(drift, Some(psi));
    let estimated = gauge_at(
        stack,
        &format!("ml_model_estimated_accuracy{{{ids}}}"),
        fired_at + TimeDelta::seconds(30),
    )
    .await;
    let expected = want["accuracy"].as_f64().expect("accuracy");
    assert!(
        estimated.is_some_and(|e| (e - expected).abs() <= 1e-9),
        "estimated accuracy {estimated:?} vs NannyML's method {expected}"
    );

    send(stack, &tenant, model, "back", &back, false).await;
    aggregate(stack).await;
    let resolved_at = fired_at + TimeDelta::hours(1);
    evaluate(stack, resolved_at).await;
    evaluate(stack, resolved_at + TimeDelta::minutes(1)).await;
    let resolved: Vec<Value> = alerts.drain().await.iter().map(alert_of).collect();
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!(
        (&resolved[0]["state"], &resolved[0]["alert_id"]),
        (&json!("resolved"), &alert["alert_id"])
    );
    assert!(
        resolved[0]["observed_value"].as_f64() < Some(0.2),
        "{}",
        resolved[0]
    );
    alerts.remove().await;
}

/// Sends `outcomes` (each `{"predicted"}`, with a `score` or not) as unlabeled
/// predictions of `model`, spread over `span` from `start`.
async fn send_predicted(
    stack: &Stack,
    tenant: &str,
    (model, task): (&str, &str),
    batch_id: &str,
    (start, span): (DateTime<Utc>, TimeDelta),
    outcomes: &[Value],
) {
    let n = outcomes.len() as i32;
    let predictions: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| {
            let mut p = outcome.clone();
            p["timestamp"] = (start + span * i as i32 / n).to_rfc3339().into();
            p["latency_ms"] = 8.into();
            p["status"] = "ok".into();
            p
        })
        .collect();
    let body =
        json!({"model_id": model, "batch_id": batch_id, "task": task, "predictions": predictions});
    let answer = stack
        .invoke("ingest", &ingest_event(tenant, body.to_string().as_bytes()))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
}

/// Predicted labels and predicted values drift too: a multiclass classifier's label mix
/// and its confidence (the predicted label's score), and a regressor's values, move in
/// the last hour; the summaries' drift equals the reference script's (labels exactly,
/// confidences on their bin's centre exactly; values whole numbers of magnitude ≤ 40,
/// each in a sketch bucket of its own, exactly), and neither has an estimate.
#[tokio::test]
async fn predicted_labels_confidences_and_values_drift_from_their_reference() {
    let stack = Stack::get();
    let tenant = unique_tenant("drift-tasks");
    let minute = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .expect("minute");
    let reference_start = minute - TimeDelta::hours(3);
    let window_start = minute - TimeDelta::minutes(45);
    let mut draws = Rng::new(3);
    let labels = ["billing", "cancel", "sales", "support"];
    let label = |draws: &mut Rng, weights: [f64; 4]| {
        let mut u = draws.uniform();
        for (label, w) in labels.iter().zip(weights) {
            if u < w {
                return *label;
            }
            u -= w;
        }
        "refund"
    };
    let value = |draws: &mut Rng, mean: f64, sd: f64| {
        (mean + sd * draws.normal()).round().clamp(-40.0, 40.0)
    };
    let reference_labels: Vec<&str> = (0..3_000)
        .map(|_| label(&mut draws, [0.4, 0.1, 0.2, 0.3]))
        .collect();
    let window_labels: Vec<&str> = (0..1_500)
        .map(|_| label(&mut draws, [0.2, 0.4, 0.1, 0.25]))
        .collect();
    // Confidences on their 1/1000 bin's centre, as the state keeps them.
    let confidence = |draws: &mut Rng, low: f64| {
        let bin = ((low + (1.0 - low) * draws.uniform()) * 1000.0)
            .floor()
            .min(999.0);
        (bin + 0.5) / 1000.0
    };
    let reference_scores: Vec<f64> = (0..3_000).map(|_| confidence(&mut draws, 0.6)).collect();
    let window_scores: Vec<f64> = (0..1_500).map(|_| confidence(&mut draws, 0.3)).collect();
    let reference_values: Vec<f64> = (0..3_000).map(|_| value(&mut draws, 0.0, 12.0)).collect();
    let window_values: Vec<f64> = (0..1_500).map(|_| value(&mut draws, 8.0, 9.0)).collect();
    let reference_span = (reference_start, TimeDelta::hours(1));
    let window_span = (window_start, TimeDelta::minutes(42));
    for (model, task, reference, window) in [
        (
            "m-labels",
            "multiclass_classification",
            reference_labels
                .iter()
                .zip(&reference_scores)
                .map(|(l, s)| json!({"predicted": l, "score": s}))
                .collect::<Vec<_>>(),
            window_labels
                .iter()
                .zip(&window_scores)
                .map(|(l, s)| json!({"predicted": l, "score": s}))
                .collect::<Vec<_>>(),
        ),
        (
            "m-values",
            "regression",
            reference_values
                .iter()
                .map(|v| json!({"predicted": v}))
                .collect(),
            window_values
                .iter()
                .map(|v| json!({"predicted": v}))
                .collect(),
        ),
    ] {
        send_predicted(
            stack,
            &tenant,
            (model, task),
            "ref",
            reference_span,
            &reference,
        )
        .await;
        send_predicted(stack, &tenant, (model, task), "win", window_span, &window).await;
    }
    aggregate(stack).await;
    for (model, task, distribution) in [
        ("m-labels", "multiclass", "predicted_label"),
        ("m-values", "regression", "predicted_value"),
    ] {
        register_reference(
            stack,
            &tenant,
            model,
            reference_start,
            reference_start + TimeDelta::hours(1),
        )
        .await;
        let path = format!("/api/v1/monitoring/performance/{model}");
        let (status, body) = call(
            stack,
            &api_request(Some(&tenant), "GET", &path, &[("window", "1h")]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let drift = &body["drift"];
        assert_eq!(drift["distribution"], distribution, "{drift}");
        assert_eq!(drift["predictions"], 1_500, "{drift}");
        assert!(
            body["estimation"]["unavailable"]
                .as_str()
                .is_some_and(|why| why.contains("binary")),
            "{}",
            body["estimation"]
        );
        let input = if task == "multiclass" {
            json!({"task": task, "reference": reference_labels, "window": window_labels,
                   "reference_scores": reference_scores, "window_scores": window_scores})
        } else {
            json!({"task": task, "reference": reference_values, "window": window_values})
        };
        let want = python_reference("tests/reference/estimation_metrics.py", &input);
        assert_significant_drift(drift, &want, model);
        let confidence = &drift["confidence"];
        if task != "multiclass" {
            assert_eq!(confidence, &Value::Null, "{model}");
            continue;
        }
        assert_eq!(confidence["distribution"], "predicted_class_score");
        assert_eq!(confidence["predictions"], 1_500, "{confidence}");
        assert_significant_drift(confidence, &want["confidence"], "the confidence");
    }
}

/// `shown` (a summary's drift) equals the reference script's `want` — its bins
/// exactly, PSI and JS to 1e-9 — and is a significant shift (PSI above 0.2).
fn assert_significant_drift(shown: &Value, want: &Value, what: &str) {
    assert_eq!(shown["bins"], want["bins"], "{what}");
    for statistic in ["psi", "js"] {
        let ours = shown[statistic].as_f64().expect(statistic);
        let expected = want[statistic].as_f64().expect(statistic);
        assert!(
            (ours - expected).abs() <= 1e-9,
            "{what} {statistic}: {ours} vs {expected}"
        );
    }
    assert!(
        shown["psi"].as_f64() > Some(0.2),
        "{what}: a significant shift: {shown}"
    );
}

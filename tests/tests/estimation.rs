//! End to end: performance estimated without labels, and prediction drift, through the
//! real binaries. A labeled reference hour of a binary classifier whose scores are
//! miscalibrated, then an unlabeled window with covariate shift, through `ingest`;
//! `aggregate` on its scheduled event; the reference registered with `PUT …/baseline`;
//! then the summary from `api`. Its estimates and drift equal NannyML's method and
//! scipy's on the same records (`tests/reference/estimation_metrics.py`), and the
//! realized accuracy of the window — computed here from the actuals the product never
//! saw — lies within the estimate's interval.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
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

fn batch(batch_id: &str, records: &[Prediction], labeled: bool) -> Vec<u8> {
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
    json!({"model_id": MODEL, "batch_id": batch_id, "task": "binary_classification",
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
    for (id, records, labeled) in [("ref", &reference, true), ("win", &window, false)] {
        let answer = stack
            .invoke(
                "ingest",
                &ingest_event(&tenant, &batch(id, records, labeled)),
            )
            .await;
        assert_eq!(answer["statusCode"], 202, "{answer}");
    }
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");

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
    let put = with_body(
        api_request(Some(&tenant), "PUT", &format!("{summary_path}/baseline"), &[]),
        Some("application/json"),
        &json!({"reference": {"from": reference_start.to_rfc3339(), "to": reference_end.to_rfc3339()}})
            .to_string(),
    );
    let (status, baseline) = call(stack, &put).await;
    assert_eq!(status, 200, "{baseline}");
    assert_eq!(baseline["reference"]["source"], "registered");

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
    for statistic in ["psi", "js"] {
        let shown = body["drift"][statistic].as_f64().expect(statistic);
        let expected = want[statistic].as_f64().expect(statistic);
        assert!(
            (shown - expected).abs() <= 1e-9,
            "{statistic}: {shown} vs {expected}"
        );
    }
    assert!(
        body["drift"]["psi"].as_f64() > Some(0.2),
        "the shift is a significant one: {}",
        body["drift"]
    );

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

//! End to end: late labels through the real binaries. Predictions with ids and no
//! actuals, labels before and after them (some for ids never predicted, one older than
//! the lookback, one a second label of a labeled prediction), `aggregate` on its
//! scheduled event, then the summary from `api`: its quality equals scikit-learn's on
//! the joined records, its coverage is labeled / predictions, and its label-delay
//! quantiles are numpy's within the sketch's 1%.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::domain::LATENCY_RELATIVE_ACCURACY;
use modelwatch_e2e::{
    Stack, actuals_event, api_request, event, ingest_event, python_reference, unique_tenant,
};
use serde_json::{Value, json};

const MODEL: &str = "m-late";
const PREDICTIONS: usize = 40;

/// Prediction `k`: its time (within the last half hour, closed minutes), class and
/// score (each on its own bin centre, so the engine's AUC is exact).
fn prediction(k: usize, now: DateTime<Utc>) -> (DateTime<Utc>, bool, f64) {
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute");
    let time = minute - TimeDelta::minutes(2 + (k % 25) as i64) + TimeDelta::seconds(k as i64);
    let score = ((k * 37) % 1000) as f64 / 1000.0 + 0.0005;
    (time, score > 0.4, score)
}

/// The truth of prediction `k`.
fn truth(k: usize) -> bool {
    k % 3 != 1
}

fn labels(batch_id: &str, items: Vec<Value>) -> Vec<u8> {
    json!({"model_id": MODEL, "batch_id": batch_id, "actuals": items})
        .to_string()
        .into_bytes()
}

fn label(k: usize, time: DateTime<Utc>) -> Value {
    json!({"prediction_id": format!("p-{k}"), "actual": truth(k), "timestamp": time.to_rfc3339()})
}

async fn post(stack: &Stack, event: &Value) -> Value {
    let answer = stack.invoke("ingest", event).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    serde_json::from_str(answer["body"].as_str().expect("body")).expect("JSON")
}

fn sample(receipt: &Value, fate: &str) -> Vec<String> {
    receipt[fate]["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// scikit-learn and numpy on the joined records, through the local stack's Python.
fn reference(joined: &[(bool, bool, f64, f64)]) -> Value {
    let input = json!({
        "predicted": joined.iter().map(|j| j.0).collect::<Vec<_>>(),
        "actual": joined.iter().map(|j| j.1).collect::<Vec<_>>(),
        "score": joined.iter().map(|j| j.2).collect::<Vec<_>>(),
        "delay_s": joined.iter().map(|j| j.3).collect::<Vec<_>>(),
    });
    python_reference("tests/reference/joined_metrics.py", &input)
}

#[tokio::test]
async fn late_labels_fill_in_the_quality_of_their_predictions_minutes() {
    let stack = Stack::get();
    let tenant = unique_tenant("labels");
    let now = Utc::now();
    let label_time = |k: usize| now - TimeDelta::seconds(30 + k as i64);

    // Labels first for p-30..p-34 (their predictions are not there yet) and for an id
    // never predicted.
    let early: Vec<Value> = (30..35).map(|k| label(k, label_time(k))).collect();
    let mut early_items = early.clone();
    early_items.push(json!({"prediction_id": "never-predicted", "actual": true}));
    let receipt = post(
        stack,
        &actuals_event(&tenant, &labels("l-early", early_items)),
    )
    .await;
    assert_eq!(receipt["pending"]["count"], 6, "{receipt}");

    // The predictions, without actuals.
    let predictions: Vec<Value> = (0..PREDICTIONS)
        .map(|k| {
            let (time, predicted, score) = prediction(k, now);
            json!({"prediction_id": format!("p-{k}"), "timestamp": time.to_rfc3339(),
                   "latency_ms": 5 + k, "status": "ok", "predicted": predicted, "score": score})
        })
        .collect();
    let batch = json!({"model_id": MODEL, "batch_id": "b-late", "task": "binary_classification",
                       "predictions": predictions});
    let receipt = post(stack, &ingest_event(&tenant, batch.to_string().as_bytes())).await;
    assert_eq!(
        receipt["labels"],
        json!({"awaiting": 35, "joined": 5, "duplicate_ids": 0, "refused": 0})
    );

    // Labels after their predictions for p-0..p-24; p-25's label is older than the
    // lookback (30 days); a second label for p-0 comes in another batch.
    let mut late: Vec<Value> = (0..25).map(|k| label(k, label_time(k))).collect();
    late.push(label(25, now - TimeDelta::days(31)));
    let receipt = post(
        stack,
        &actuals_event(&tenant, &labels("l-late", late.clone())),
    )
    .await;
    assert_eq!(receipt["joined"]["count"], 25, "{receipt}");
    assert_eq!(sample(&receipt, "expired"), ["p-25"]);
    let again = post(stack, &actuals_event(&tenant, &labels("l-late", late))).await;
    assert_eq!(again["duplicate"], true);
    let second = post(
        stack,
        &actuals_event(
            &tenant,
            &labels(
                "l-second",
                vec![json!({"prediction_id": "p-0", "actual": !truth(0)})],
            ),
        ),
    )
    .await;
    assert_eq!(sample(&second, "already_labeled"), ["p-0"]);

    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");

    let summary = stack
        .invoke(
            "api",
            &api_request(
                Some(&tenant),
                "GET",
                &format!("/api/v1/monitoring/performance/{MODEL}"),
                &[("window", "1h")],
            ),
        )
        .await;
    assert_eq!(summary["statusCode"], 200, "{summary}");
    let body: Value = serde_json::from_str(summary["body"].as_str().expect("body")).expect("JSON");

    let joined: Vec<(bool, bool, f64, f64)> = (0..25)
        .chain(30..35)
        .map(|k| {
            let (time, predicted, score) = prediction(k, now);
            let delay = (label_time(k) - time).num_milliseconds() as f64 / 1000.0;
            (predicted, truth(k), score, delay)
        })
        .collect();
    let want = reference(&joined);
    assert_eq!(body["sample_count"], PREDICTIONS);
    assert_eq!(body["labeled_count"], joined.len());
    for metric in ["accuracy", "f1_score", "auc_roc"] {
        let shown = body["quality_metrics"][metric]["current"]
            .as_f64()
            .expect(metric);
        let expected = want[metric].as_f64().expect(metric);
        assert!(
            (shown - expected).abs() <= 1e-9,
            "{metric}: {shown} vs scikit-learn {expected}"
        );
    }
    let labels = &body["label_metrics"];
    let coverage = labels["label_coverage"].as_f64().expect("coverage");
    assert!(
        (coverage - joined.len() as f64 / PREDICTIONS as f64).abs() <= 1e-12,
        "{labels}"
    );
    for quantile in ["label_delay_p50_s", "label_delay_p95_s"] {
        let shown = labels[quantile].as_f64().expect(quantile);
        let expected = want[quantile].as_f64().expect(quantile);
        assert!(
            (shown - expected).abs() <= expected * LATENCY_RELATIVE_ACCURACY,
            "{quantile}: {shown} vs numpy {expected}"
        );
    }
    // Each point of the series counts the labels of its own minute's predictions.
    let points = body["series"].as_array().expect("series");
    let labeled: u64 = points
        .iter()
        .filter_map(|p| p["labeled_count"].as_u64())
        .sum();
    assert_eq!(labeled, joined.len() as u64);
}

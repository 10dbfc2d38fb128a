use crate::domain::ids::ModelRef;
use chrono::TimeDelta;
use serde_json::json;

use super::*;
use crate::adapters::memory::MemoryRollupStore;
use crate::aggregate::roll_up;
use crate::domain::TimeSpan;
use crate::ingest::IngestReceipt;
use crate::ports::RollupStore;
use crate::testing::{MemoryIngest, at, memory_ingest, model, run_at, tenant};

fn now() -> DateTime<Utc> {
    at("2026-11-28T12:00:00Z")
}

fn predictions(batch_id: &str, task: &str, items: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"model_id": "m1", "batch_id": batch_id, "task": task,
        "predictions": items}),
    )
    .expect("JSON")
}

fn binary(id: &str, minute: u32, predicted: bool) -> serde_json::Value {
    json!({"prediction_id": id, "timestamp": format!("2026-11-28T10:{minute:02}:30Z"),
           "latency_ms": 4, "status": "ok", "predicted": predicted, "score": 0.75})
}

fn labels(batch_id: &str, items: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"model_id": "m1", "batch_id": batch_id, "actuals": items}))
        .expect("JSON")
}

async fn send_predictions(service: &MemoryIngest, body: &[u8]) -> IngestReceipt {
    service
        .ingest(&tenant("t1"), body, now())
        .await
        .expect("accepted")
}

async fn send_labels(service: &MemoryIngest, body: &[u8], at: DateTime<Utc>) -> ActualsReceipt {
    service
        .ingest_actuals(&tenant("t1"), body, at)
        .await
        .expect("accepted")
}

/// The model's whole day, rolled up.
async fn day(service: &MemoryIngest) -> WindowState {
    let rollups = MemoryRollupStore::default();
    roll_up(
        &service.partials,
        &rollups,
        &run_at(now() + TimeDelta::hours(1)),
        &[],
    )
    .await
    .expect("roll-up");
    let span = TimeSpan::new(at("2026-11-28T00:00:00Z"), at("2026-11-29T00:00:00Z"));
    let found = rollups
        .rollups(
            ModelRef::new(&tenant("t1"), &model("m1")),
            Granularity::Day,
            span,
        )
        .await
        .expect("read");
    WindowState::merged(found.into_iter().map(|r| r.state)).expect("merge")
}

fn labeled(state: &WindowState) -> u64 {
    state.quality().map_or(0, |q| q.labeled())
}

#[tokio::test]
async fn a_label_after_its_prediction_is_joined_by_the_label_batch() {
    let service = memory_ingest();
    let receipt = send_predictions(
        &service,
        &predictions(
            "b1",
            "binary_classification",
            json!([binary("p1", 1, true), binary("p2", 2, false)]),
        ),
    )
    .await;
    assert_eq!(receipt.labels.awaiting, 2);
    let label_time = now() + TimeDelta::minutes(30);
    let answer = send_labels(
        &service,
        &labels(
            "l1",
            json!([{"prediction_id": "p1", "actual": 1}, {"prediction_id": "nope", "actual": 0}]),
        ),
        label_time,
    )
    .await;
    assert_eq!(
        (answer.joined.sample.clone(), answer.pending.sample.clone()),
        (vec!["p1".to_owned()], vec!["nope".to_owned()])
    );
    assert_eq!(answer.minutes, 1);
    let state = day(&service).await;
    assert_eq!((state.predictions(), labeled(&state)), (2, 1));
    // Label time − prediction time: 12:30:00 − 10:01:30.
    let delay = state.label_delay().quantile(0.5).expect("a delay");
    assert!((delay - 8_910.0).abs() <= 8_910.0 * 0.01, "{delay}");
    // The label batch's partial sits in the prediction's minute, under its own key.
    let keys: Vec<(DateTime<Utc>, String)> = service
        .partials
        .partials()
        .into_iter()
        .map(|(key, _)| (key.minute, key.batch_id))
        .collect();
    assert!(
        keys.contains(&(at("2026-11-28T10:01:00Z"), "actuals#l1".to_owned())),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_label_before_its_prediction_is_joined_by_the_prediction_batch() {
    let service = memory_ingest();
    let answer = send_labels(
        &service,
        &labels("l1", json!([{"prediction_id": "p1", "actual": true}])),
        now() - TimeDelta::minutes(5),
    )
    .await;
    assert_eq!(answer.pending.count, 1);
    let receipt = send_predictions(
        &service,
        &predictions(
            "b1",
            "binary_classification",
            json!([binary("p1", 1, true), binary("p2", 2, true)]),
        ),
    )
    .await;
    assert_eq!((receipt.labels.joined, receipt.labels.awaiting), (1, 1));
    let state = day(&service).await;
    assert_eq!(
        (
            state.predictions(),
            labeled(&state),
            state.label_delay().count()
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn the_first_label_wins_and_a_resent_label_batch_counts_once() {
    let service = memory_ingest();
    send_predictions(
        &service,
        &predictions(
            "b1",
            "binary_classification",
            json!([binary("p1", 1, true)]),
        ),
    )
    .await;
    let first = labels("l1", json!([{"prediction_id": "p1", "actual": 1}]));
    let answer = send_labels(&service, &first, now()).await;
    assert_eq!(answer.joined.count, 1);
    let again = send_labels(&service, &first, now() + TimeDelta::minutes(1)).await;
    assert!(again.duplicate);
    assert_eq!(again.joined, answer.joined);
    let other = send_labels(
        &service,
        &labels("l2", json!([{"prediction_id": "p1", "actual": 0}])),
        now(),
    )
    .await;
    assert_eq!(other.already_labeled.sample, ["p1"]);
    // Another content under a used id is refused before anything is written.
    let reused = service
        .ingest_actuals(
            &tenant("t1"),
            &labels("l1", json!([{"prediction_id": "p9", "actual": 1}])),
            now(),
        )
        .await;
    assert!(
        matches!(reused, Err(IngestError::BatchConflict { .. })),
        "{reused:?}"
    );
    let state = day(&service).await;
    assert_eq!(labeled(&state), 1);
    // Predicted true, actual 1 (the first label): accuracy 1.
    let Some(crate::domain::window::QualityStats::Binary(stats)) = state.quality() else {
        panic!("binary")
    };
    assert_eq!(stats.accuracy(), Some(1.0));
}

#[tokio::test]
async fn labels_of_a_registered_model_must_fit_its_task() {
    let service = memory_ingest();
    send_predictions(&service, &predictions("b1", "regression", json!([
        {"prediction_id": "p1", "timestamp": "2026-11-28T10:00:00Z", "latency_ms": 1, "status": "ok", "predicted": 2.0}
    ])))
    .await;
    let refused = service
        .ingest_actuals(
            &tenant("t1"),
            &labels("l1", json!([{"prediction_id": "p1", "actual": "cat"}])),
            now(),
        )
        .await;
    let Err(IngestError::Rejected(crate::ingest::BatchRejection::Invalid { problems, .. })) =
        refused
    else {
        panic!("a 400: {refused:?}")
    };
    assert_eq!(problems[0].field, "actuals[0].actual");
    assert!(
        service
            .labels
            .items()
            .iter()
            .all(|(_, item)| item.label.is_none())
    );
}

#[tokio::test]
async fn a_waiting_label_of_another_task_is_refused_by_the_prediction_side() {
    let service = memory_ingest();
    // The model is not known yet: the label's shape is all that can be checked.
    send_labels(
        &service,
        &labels("l1", json!([{"prediction_id": "p1", "actual": "cat"}])),
        now(),
    )
    .await;
    let receipt = send_predictions(
        &service,
        &predictions(
            "b1",
            "binary_classification",
            json!([binary("p1", 1, true)]),
        ),
    )
    .await;
    assert_eq!((receipt.labels.refused, receipt.labels.joined), (1, 0));
    assert_eq!(labeled(&day(&service).await), 0);
}

#[tokio::test]
async fn an_id_used_twice_is_joinable_once() {
    let service = memory_ingest();
    send_predictions(
        &service,
        &predictions(
            "b1",
            "binary_classification",
            json!([binary("p1", 1, true)]),
        ),
    )
    .await;
    let second = send_predictions(
        &service,
        &predictions(
            "b2",
            "binary_classification",
            json!([binary("p1", 2, false)]),
        ),
    )
    .await;
    assert_eq!(second.labels.duplicate_ids, 1);
    send_labels(
        &service,
        &labels("l1", json!([{"prediction_id": "p1", "actual": 0}])),
        now(),
    )
    .await;
    let state = day(&service).await;
    assert_eq!((state.predictions(), labeled(&state)), (2, 1));
}

#[test]
fn a_store_that_lost_the_label_is_reported_not_guessed() {
    let item = LabelItem::default();
    assert!(label_fate(&item, "actuals#l1").is_err());
}

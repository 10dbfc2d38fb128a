//! The label store against mocked DynamoDB: which conditional writes each side makes,
//! what a refused condition answers, throttling, and every value read back as written.

use crate::domain::ids::ModelRef;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};

use super::super::testing::{Seen, fast_retries, first_write, ids, seen};
use super::*;
use crate::testing::at;

fn store(rules: &[&Rule], mode: RuleMode) -> DynamoLabelStore {
    let client = mock_client!(aws_sdk_dynamodb, mode, rules, fast_retries);
    DynamoLabelStore::new(client, "partials")
}

fn prediction() -> AwaitingPrediction {
    AwaitingPrediction {
        prediction_id: "p-1".into(),
        time: at("2026-11-28T10:00:00.250Z"),
        outcome: Outcome::Binary {
            predicted: Some(true),
            actual: None,
            score: Some(0.625),
        },
        slices: vec![Slice::version("v2"), Slice::segment("region", "eu")],
    }
}

fn label(actual: Actual) -> LateLabel {
    LateLabel {
        prediction_id: "p-1".into(),
        actual,
        time: at("2026-11-28T11:00:00Z"),
    }
}

/// A write refused by its condition, with the item as it was.
fn refused(old: Option<Item>) -> UpdateItemError {
    UpdateItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .set_item(old)
            .meta(
                ErrorMetadata::builder()
                    .code("ConditionalCheckFailedException")
                    .build(),
            )
            .build(),
    )
}

/// The item an update writes where none was, answered as `ALL_NEW`.
fn written(req: &UpdateItemInput) -> UpdateItemOutput {
    let item = first_write(
        req.key().expect("key"),
        req.update_expression().expect("update"),
        req.expression_attribute_names(),
        req.expression_attribute_values(),
    );
    UpdateItemOutput::builder()
        .set_attributes(Some(item))
        .build()
}

/// An `UpdateItem` answered by `answer`, recording its requests.
fn recording(
    seen: &Seen<UpdateItemInput>,
    answer: impl Fn(&UpdateItemInput) -> MockResponse<UpdateItemOutput, UpdateItemError>
    + Send
    + Sync
    + 'static,
) -> Rule {
    let seen = seen.clone();
    mock!(Client::update_item).then_compute_response(move |req| {
        // DynamoDB refuses a value neither expression uses (ValidationException).
        let expressions = format!(
            "{} {}",
            req.update_expression().unwrap_or_default(),
            req.condition_expression().unwrap_or_default()
        );
        for name in req
            .expression_attribute_values()
            .into_iter()
            .flat_map(|v| v.keys())
        {
            assert!(
                expressions.contains(name.as_str()),
                "{name} unused in {expressions}"
            );
        }
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.clone());
        answer(req)
    })
}

/// Refuses the write that claims, applies the one that does not (no other side).
fn no_other_side(req: &UpdateItemInput) -> MockResponse<UpdateItemOutput, UpdateItemError> {
    if claims(req) {
        MockResponse::Error(refused(None))
    } else {
        MockResponse::Output(written(req))
    }
}

fn claims(req: &UpdateItemInput) -> bool {
    req.update_expression()
        .is_some_and(|u| u.contains("claimed_by = :me"))
}

#[tokio::test]
async fn a_prediction_without_a_waiting_label_is_stored_without_a_claim() {
    let requests = Seen::default();
    let rule = recording(&requests, no_other_side);
    let (tenant, model_id) = ids();
    let item = store(&[&rule], RuleMode::MatchAny)
        .put_awaiting(
            ModelRef::new(&tenant, &model_id),
            &prediction(),
            "b1",
            at("2026-12-28T10:00:00Z"),
        )
        .await
        .expect("stored");
    assert_eq!(item.prediction, Some((prediction(), "b1".to_owned())));
    assert_eq!((item.label, item.claimed_by), (None, None));
    let requests = seen(&requests);
    // One write: a prediction usually comes before its label.
    assert_eq!(requests.len(), 1);
    let condition = requests[0].condition_expression().unwrap_or_default();
    assert!(
        condition.contains("attribute_not_exists(label_batch)"),
        "{condition}"
    );
    assert!(!claims(&requests[0]));
    let key = requests[0].key().expect("key");
    assert_eq!(key["pk"].as_s().ok().map(String::as_str), Some("L#t#m#p-1"));
}

#[tokio::test]
async fn a_label_that_finds_its_prediction_claims_the_join_in_the_same_write() {
    let requests = Seen::default();
    let rule = recording(&requests, |req| MockResponse::Output(written(req)));
    let (tenant, model_id) = ids();
    let since = at("2026-11-27T11:00:00Z");
    let item = store(&[&rule], RuleMode::MatchAny)
        .put_label(
            ModelRef::new(&tenant, &model_id),
            &label(Actual::Integer(1)),
            "actuals#l1",
            at("2026-12-28T00:00:00Z"),
            since,
        )
        .await
        .expect("stored");
    assert_eq!(item.claimed_by.as_deref(), Some("actuals:actuals#l1"));
    let requests = seen(&requests);
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .condition_expression()
            .unwrap_or_default()
            .contains("predicted_at >= :since")
    );
    assert_eq!(
        requests[0]
            .expression_attribute_values()
            .and_then(|v| v.get(":since"))
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some(since.timestamp_millis().to_string().as_str())
    );
}

#[tokio::test]
async fn a_retried_side_reads_back_what_the_first_write_stored() {
    // What a first write of batch b0 left.
    let (tenant, model_id) = ids();
    let first = Seen::default();
    let writer = recording(&first, no_other_side);
    store(&[&writer], RuleMode::MatchAny)
        .put_awaiting(
            ModelRef::new(&tenant, &model_id),
            &prediction(),
            "b0",
            at("2026-12-28T10:00:00Z"),
        )
        .await
        .expect("stored");
    let stored = written(&seen(&first)[0]).attributes.unwrap_or_default();
    let requests = Seen::default();
    let rule = recording(&requests, move |_| {
        MockResponse::Error(refused(Some(stored.clone())))
    });
    let item = store(&[&rule], RuleMode::MatchAny)
        .put_awaiting(
            ModelRef::new(&tenant, &model_id),
            &prediction(),
            "b1",
            at("2026-12-28T10:00:00Z"),
        )
        .await
        .expect("answered");
    assert_eq!(item.prediction, Some((prediction(), "b0".to_owned())));
    assert_eq!(
        seen(&requests).len(),
        1,
        "a side found stored is not written again"
    );
}

#[tokio::test]
async fn throttling_after_the_sdk_retries_is_unavailable() {
    let rule = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ProvisionedThroughputExceededException(
            aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                )
                .build(),
        )
    });
    let (tenant, model_id) = ids();
    let failed = store(&[&rule], RuleMode::MatchAny)
        .put_label(
            ModelRef::new(&tenant, &model_id),
            &label(Actual::Bool(true)),
            "l",
            at("2026-12-28T00:00:00Z"),
            at("2026-11-01T00:00:00Z"),
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable { .. })),
        "{failed:?}"
    );
}

#[tokio::test]
async fn every_outcome_and_actual_reads_back_as_written() {
    let outcomes = [
        prediction().outcome,
        Outcome::Binary {
            predicted: Some(false),
            actual: None,
            score: None,
        },
        Outcome::Multiclass {
            predicted: Some("cat".into()),
            actual: None,
            score: Some(0.625),
        },
        Outcome::Regression {
            predicted: Some(-2.5e-7),
            actual: None,
        },
    ];
    let actuals = [
        Actual::Bool(false),
        Actual::Integer(-170_141_183_460_469_231_731_687_303_715_884_105_728),
        Actual::Number(0.1),
        Actual::Text("dog".into()),
    ];
    let (tenant, model_id) = ids();
    for (outcome, actual) in outcomes.into_iter().zip(actuals) {
        let requests = Seen::default();
        let rule = recording(&requests, no_other_side);
        let store = store(&[&rule], RuleMode::MatchAny);
        let awaiting = AwaitingPrediction {
            outcome,
            ..prediction()
        };
        let item = store
            .put_awaiting(
                ModelRef::new(&tenant, &model_id),
                &awaiting,
                "b1",
                at("2026-12-28T10:00:00Z"),
            )
            .await
            .expect("stored");
        assert_eq!(item.prediction, Some((awaiting, "b1".to_owned())));
        let item = store
            .put_label(
                ModelRef::new(&tenant, &model_id),
                &label(actual.clone()),
                "l1",
                at("2026-12-28T00:00:00Z"),
                at("2026-11-01T00:00:00Z"),
            )
            .await
            .expect("stored");
        assert_eq!(item.label, Some((label(actual), "l1".to_owned())));
    }
}

#[tokio::test]
async fn the_side_that_arrives_second_claims_after_its_usual_write_is_refused() {
    let (tenant, model_id) = ids();
    // A prediction that finds its label waiting: the plain write is refused.
    let requests = Seen::default();
    let rule = recording(&requests, |req| {
        if claims(req) {
            MockResponse::Output(written(req))
        } else {
            MockResponse::Error(refused(Some(Item::new())))
        }
    });
    let item = store(&[&rule], RuleMode::MatchAny)
        .put_awaiting(
            ModelRef::new(&tenant, &model_id),
            &prediction(),
            "b1",
            at("2026-12-28T10:00:00Z"),
        )
        .await
        .expect("stored");
    assert_eq!(item.claimed_by.as_deref(), Some("predictions:b1"));
    assert_eq!(seen(&requests).len(), 2);
    // A label before its prediction: the claiming write is refused.
    let requests = Seen::default();
    let rule = recording(&requests, no_other_side);
    let item = store(&[&rule], RuleMode::MatchAny)
        .put_label(
            ModelRef::new(&tenant, &model_id),
            &label(Actual::Bool(true)),
            "l1",
            at("2026-12-28T00:00:00Z"),
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .expect("stored");
    assert_eq!((item.prediction, item.claimed_by), (None, None));
    assert_eq!(seen(&requests).len(), 2);
}

//! The label store in the partials table (ingest's working set): one item per
//! (tenant, model, prediction id), so a hot model's writes spread over as many
//! partitions as it has predictions awaiting labels.
//!
//! Item: `pk = "L#<tenant>#<model>#<prediction_id>"`, `sk = "L"`; `expires_at` (TTL,
//! set by the item's first write); the prediction side `prediction_id`,
//! `prediction_batch`, `predicted_at` (epoch ms), `task`, `predicted` (BOOL, S or N by
//! task), `score` (N, binary, optional), `slices` (SS, optional: the slices it counted
//! under, as `version:<id>` and `segment:<key>:<value>`); the label side `label_batch`, `label_time`
//! (epoch ms), `actual` with `actual_kind` (`bool`, `integer`, `number`, `text`: the
//! label as sent, before it meets a task); `claimed_by` once joined.
//!
//! Each side is one conditional `UpdateItem` that also claims the join when the other
//! side is there (the condition says so), or one without the claim when it is not;
//! each side first tries the write it usually needs — a prediction usually comes
//! before its label (no claim), a label usually finds its prediction (claim) — so the
//! usual write is one write unit, and only the other order pays a refused condition
//! (a refused conditional write is charged too). A condition that fails because the
//! side is stored already answers the item as it was
//! (`ReturnValuesOnConditionCheckFailure`): a retry costs one write unit and changes
//! nothing.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::attr::{self, AttrError, Item};
use super::request;
use super::unavailable;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::{Actual, AwaitingPrediction, LateLabel};
use crate::domain::slice::Slice;
use crate::domain::{Outcome, Task};
use crate::error::{StoreError, StoreResult};
use crate::ports::{JoinClaimant, LabelItem, LabelStore};

/// How often a side retries when the other side changed the item between its two
/// conditional writes (each retry sees the other side stored, so two suffice).
const RACE_RETRIES: usize = 4;

/// The key of a prediction id's item.
fn label_key(tenant: &TenantId, model_id: &ModelId, prediction_id: &str) -> Item {
    attr::key(format!("L#{tenant}#{model_id}#{prediction_id}"), "L")
}

/// [`LabelStore`] on DynamoDB (the partials table).
#[derive(Debug, Clone)]
pub struct DynamoLabelStore {
    client: Client,
    table: String,
}

/// What a conditional update found.
enum Update {
    /// Written; the item after.
    Written(Item),
    /// The condition failed; the item as it was (empty when there was none).
    Refused(Item),
}

impl DynamoLabelStore {
    /// A label store in `table` (the partials table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn update(
        &self,
        key: &Item,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
        operation: &'static str,
    ) -> StoreResult<Update> {
        let mut request = request::update(&self.client, &self.table, key.clone(), update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // DynamoDB refuses a value the expressions do not use.
        let used = |name: &str| update.contains(name) || condition.contains(name);
        for (name, value) in values.iter().filter(|(name, _)| used(name)) {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(output) => Ok(Update::Written(output.attributes.unwrap_or_default())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Update::Refused(failed.item().cloned().unwrap_or_default()))
                }
                _ => Err(unavailable(operation, err)),
            },
        }
    }

    /// Writes one side with each of `attempts` (condition, update) in turn until one
    /// applies or the side is found stored (`stored_side`).
    async fn write_side(
        &self,
        key: &Item,
        attempts: [(&str, &str); 2],
        values: &[(&str, AttributeValue)],
        stored_side: &str,
        operation: &'static str,
    ) -> StoreResult<LabelItem> {
        for _ in 0..RACE_RETRIES {
            for (condition, update) in attempts {
                match self
                    .update(key, update, condition, values, operation)
                    .await?
                {
                    Update::Written(item) => return label_item(&item),
                    Update::Refused(old) if old.contains_key(stored_side) => {
                        return label_item(&old);
                    }
                    Update::Refused(_) => {}
                }
            }
        }
        Err(StoreError::Corrupt {
            key: format!("{key:?}"),
            reason: "the item kept changing between the conditional writes of one side".into(),
        })
    }
}

impl LabelStore for DynamoLabelStore {
    async fn put_awaiting(
        &self,
        model: ModelRef<'_>,
        prediction: &AwaitingPrediction,
        batch_id: &str,
        expires: DateTime<Utc>,
    ) -> StoreResult<LabelItem> {
        let ModelRef { tenant, model_id } = model;
        let key = label_key(tenant, model_id, &prediction.prediction_id);
        let (task, predicted, score) = predicted_values(&prediction.outcome);
        let mut values = vec![
            (":id", attr::s(prediction.prediction_id.as_str())),
            (":batch", attr::s(batch_id)),
            (":at", attr::time_ms_value(prediction.time)),
            (":task", attr::s(task.as_str())),
            (":predicted", predicted),
            (":expires", attr::n(expires.timestamp())),
            (":me", attr::s(JoinClaimant::Predictions(batch_id).stored())),
        ];
        let mut update = "SET prediction_id = :id, prediction_batch = :batch, predicted_at = :at, \
             task = :task, predicted = :predicted, expires_at = if_not_exists(expires_at, :expires)"
            .to_owned();
        if let Some(score) = score {
            values.push((":score", attr::n(score)));
            update.push_str(", score = :score");
        }
        if !prediction.slices.is_empty() {
            let slices = prediction.slices.iter().map(Slice::to_string).collect();
            values.push((":slices", AttributeValue::Ss(slices)));
            update.push_str(", slices = :slices");
        }
        let claim_update = format!("{update}, claimed_by = :me");
        let attempts = [
            (
                "attribute_not_exists(prediction_batch) \
                 AND (attribute_not_exists(label_batch) OR attribute_exists(claimed_by))",
                update.as_str(),
            ),
            (
                "attribute_not_exists(prediction_batch) AND attribute_exists(label_batch) \
                 AND attribute_not_exists(claimed_by)",
                claim_update.as_str(),
            ),
        ];
        self.write_side(
            &key,
            attempts,
            &values,
            "prediction_batch",
            "store a prediction awaiting its label",
        )
        .await
    }

    async fn put_label(
        &self,
        model: ModelRef<'_>,
        label: &LateLabel,
        batch_id: &str,
        expires: DateTime<Utc>,
        joinable_since: DateTime<Utc>,
    ) -> StoreResult<LabelItem> {
        let ModelRef { tenant, model_id } = model;
        let key = label_key(tenant, model_id, &label.prediction_id);
        let (kind, actual) = actual_value(&label.actual);
        let values = [
            (":id", attr::s(label.prediction_id.as_str())),
            (":batch", attr::s(batch_id)),
            (":time", attr::time_ms_value(label.time)),
            (":actual", actual),
            (":kind", attr::s(kind)),
            (":expires", attr::n(expires.timestamp())),
            (":since", attr::time_ms_value(joinable_since)),
            (":me", attr::s(JoinClaimant::Actuals(batch_id).stored())),
        ];
        let update = "SET prediction_id = :id, label_batch = :batch, label_time = :time, \
             actual = :actual, actual_kind = :kind, expires_at = if_not_exists(expires_at, :expires)";
        let claim_update = format!("{update}, claimed_by = :me");
        let attempts = [
            (
                "attribute_not_exists(label_batch) AND attribute_exists(prediction_batch) \
                 AND predicted_at >= :since AND attribute_not_exists(claimed_by)",
                claim_update.as_str(),
            ),
            (
                "attribute_not_exists(label_batch) AND (attribute_not_exists(prediction_batch) \
                 OR predicted_at < :since OR attribute_exists(claimed_by))",
                update,
            ),
        ];
        self.write_side(&key, attempts, &values, "label_batch", "store a late label")
            .await
    }
}

/// The task, the predicted value and the score of an outcome awaiting its label.
fn predicted_values(outcome: &Outcome) -> (Task, AttributeValue, Option<f64>) {
    let missing = || AttributeValue::Null(true);
    match outcome {
        Outcome::Binary {
            predicted, score, ..
        } => (
            Task::BinaryClassification,
            predicted.map_or_else(missing, AttributeValue::Bool),
            *score,
        ),
        Outcome::Multiclass {
            predicted, score, ..
        } => (
            Task::MulticlassClassification,
            predicted.as_deref().map_or_else(missing, attr::s),
            *score,
        ),
        Outcome::Regression { predicted, .. } => (
            Task::Regression,
            predicted.map_or_else(missing, attr::n),
            None,
        ),
    }
}

/// The stored kind and value of a label.
fn actual_value(actual: &Actual) -> (&'static str, AttributeValue) {
    match actual {
        Actual::Bool(b) => ("bool", AttributeValue::Bool(*b)),
        Actual::Integer(i) => ("integer", attr::n(i)),
        Actual::Number(v) => ("number", attr::n(v)),
        Actual::Text(text) => ("text", attr::s(text.as_str())),
    }
}

/// Reads an item back.
fn label_item(item: &Item) -> StoreResult<LabelItem> {
    attr::read(item, || {
        let corrupt = |what: &str| format!("attribute {what} is invalid");
        let prediction = match attr::optional_string(item, "prediction_batch")? {
            None => None,
            Some(batch) => {
                let task: Task = attr::string(item, "task")?
                    .parse()
                    .map_err(|_| corrupt("task"))?;
                let predicted = item.get("predicted");
                let score = item
                    .get("score")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok());
                let outcome = match task {
                    Task::BinaryClassification => Outcome::Binary {
                        predicted: predicted.and_then(|v| v.as_bool().ok()).copied(),
                        actual: None,
                        score,
                    },
                    Task::MulticlassClassification => Outcome::Multiclass {
                        predicted: predicted.and_then(|v| v.as_s().ok()).cloned(),
                        actual: None,
                        score,
                    },
                    Task::Regression => Outcome::Regression {
                        predicted: predicted
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok()),
                        actual: None,
                    },
                };
                let prediction = AwaitingPrediction {
                    prediction_id: attr::string(item, "prediction_id")?,
                    time: attr::time_ms(item, "predicted_at")?,
                    outcome,
                    slices: read_slices(item)?,
                };
                Some((prediction, batch))
            }
        };
        let label = match attr::optional_string(item, "label_batch")? {
            None => None,
            Some(batch) => {
                let value = item.get("actual").ok_or_else(|| corrupt("actual"))?;
                let number = || value.as_n().map_err(|_| corrupt("actual"));
                let actual = match attr::string(item, "actual_kind")?.as_str() {
                    "bool" => Actual::Bool(*value.as_bool().map_err(|_| corrupt("actual"))?),
                    "integer" => Actual::Integer(number()?.parse().map_err(|_| corrupt("actual"))?),
                    "number" => Actual::Number(number()?.parse().map_err(|_| corrupt("actual"))?),
                    "text" => Actual::Text(value.as_s().map_err(|_| corrupt("actual"))?.clone()),
                    _ => return Err(corrupt("actual_kind")),
                };
                let label = LateLabel {
                    prediction_id: attr::string(item, "prediction_id")?,
                    actual,
                    time: attr::time_ms(item, "label_time")?,
                };
                Some((label, batch))
            }
        };
        Ok(LabelItem {
            prediction,
            label,
            claimed_by: attr::optional_string(item, "claimed_by")?,
        })
    })
}

/// The `slices` of a label item's prediction side (none when absent).
fn read_slices(item: &Item) -> Result<Vec<Slice>, AttrError> {
    let Some(value) = item.get("slices") else {
        return Ok(Vec::new());
    };
    let texts = value
        .as_ss()
        .map_err(|_| "attribute slices is not a string set")?;
    let mut slices = texts
        .iter()
        .map(|text| Slice::parse(text).map_err(|e| format!("slice {text:?} {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    slices.sort_unstable();
    Ok(slices)
}

#[cfg(test)]
mod tests;

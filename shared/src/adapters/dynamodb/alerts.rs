//! Rule states, the alert history and the tenant's index of firing alerts, in the
//! alerts table.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | rule state | `STATE#<tenant>#<model>` | `<rule id>` | `doc` (S: [`RuleState`] as JSON), `version` (N), `tenant_id`, `model_id` |
//! | history entry | `HISTORY#<tenant>#<model>` | `<started_at epoch ms, 13 digits>#<rule id>` | `doc` (S: [`AlertRecord`] as JSON), `state` (S: `firing`/`resolved`), `alert_id`, `tenant_id`, `model_id`, `expires_at` (started_at + [`HISTORY_RETENTION`]) |
//! | firing index | `FIRING#<tenant>` | `<model>#<rule id>` | `tenant_id`, `model_id`, `alert_id` |
//!
//! A state's `version` grows by one with every write, and every write is conditional on
//! the version read before (`attribute_not_exists(pk)` for the first), so overlapping
//! evaluation runs cannot overwrite each other. A write that brings an alert stores the
//! state, the history entry and the firing-index change in one `TransactWriteItems`.
//! Zero-padded starts sort lexically in time order (and rule ids, all above `#` in
//! ASCII, after them), so one descending `Query` reads the history newest first; an
//! alert id is enough to rebuild the history key to continue after.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use chrono::{DateTime, TimeDelta, Utc};

use super::attr::{self, Item};
use super::request::{build_error, partition_query, query_all, transact};
use super::{conditional, doc, unavailable};
use crate::adapters::limits::{Image, Value};
use crate::domain::alerting::state::{
    AlertRecord, AlertState, RuleState, alert_start_ms, parse_alert_id,
};
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::error::{StoreError, StoreResult};
use crate::ports::{AlertPage, AlertQuery, AlertStore};

/// How long a history entry is kept after its alert started (DynamoDB TTL).
const HISTORY_RETENTION: TimeDelta = TimeDelta::days(400);

/// Items a history query filtered on the state reads per request at least: the filter
/// drops items after they are read, so asking for only the few still needed could take
/// many round trips over a long history.
pub(crate) const FILTERED_PAGE_ITEMS: usize = 100;

/// The partition of a model's rule states.
fn state_pk(tenant: &TenantId, model_id: &ModelId) -> String {
    format!("STATE#{tenant}#{model_id}")
}

/// The partition of a model's alert history.
fn history_pk(tenant: &TenantId, model_id: &ModelId) -> String {
    format!("HISTORY#{tenant}#{model_id}")
}

/// The partition of a tenant's firing index.
fn firing_pk(tenant: &TenantId) -> String {
    format!("FIRING#{tenant}")
}

/// The sort key of a firing-index item.
fn firing_sk(model_id: &ModelId, rule_id: &str) -> String {
    format!("{model_id}#{rule_id}")
}

/// The sort key of the history entry of the alert of `rule_id` started at
/// `started_at`: the start as 13 zero-padded epoch-ms digits, which every start an
/// alert id can hold has ([`ALERT_START_MS`]); an error for any other start (before
/// 1970 or after 2286), which would break the key order.
///
/// [`ALERT_START_MS`]: crate::domain::alerting::state::ALERT_START_MS
fn history_sk(started_at: DateTime<Utc>, rule_id: &str) -> StoreResult<String> {
    let millis = alert_start_ms(started_at).ok_or_else(|| StoreError::Internal {
        operation: "build alert history key",
        source: format!("alert start {started_at} has no 13-digit epoch-ms form").into(),
    })?;
    Ok(format!("{millis:013}#{rule_id}"))
}

/// The operation named when the SDK refuses to build an item of an alert transaction.
const BUILD_TRANSACTION: &str = "build alert transaction";

/// The item of a rule state.
pub(crate) fn state_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    state: &'a RuleState,
) -> StoreResult<Image<'a>> {
    Ok(Image::default()
        .with("pk", Value::S(state_pk(tenant, model_id).into()))
        .with("sk", Value::S(state.rule_id.as_str().into()))
        .with(
            "doc",
            Value::S(doc::encode(state, "encode rule state")?.into()),
        )
        .with("version", Value::number(state.version))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into())))
}

/// The history entry of `alert`, under the model it was raised for.
pub(crate) fn history_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    alert: &'a AlertRecord,
) -> StoreResult<Image<'a>> {
    let expires = alert.started_at + HISTORY_RETENTION;
    Ok(Image::default()
        .with("pk", Value::S(history_pk(tenant, model_id).into()))
        .with(
            "sk",
            Value::S(history_sk(alert.started_at, &alert.rule.id)?.into()),
        )
        .with("doc", Value::S(doc::encode(alert, "encode alert")?.into()))
        .with("state", Value::S(alert.state.as_str().into()))
        .with("alert_id", Value::S(alert.alert_id.as_str().into()))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into()))
        .with("expires_at", Value::number(expires.timestamp())))
}

/// The firing-index entry of the rule `rule_id`'s alert `alert_id`.
pub(crate) fn firing_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    rule_id: &str,
    alert_id: &'a str,
) -> Image<'a> {
    Image::default()
        .with("pk", Value::S(firing_pk(tenant).into()))
        .with("sk", Value::S(firing_sk(model_id, rule_id).into()))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into()))
        .with("alert_id", Value::S(alert_id.into()))
}

/// The condition that the stored state has the version before `state`'s: absent for
/// version 1. `None` for version 0, which no stored state can precede.
fn expected_previous(state: &RuleState) -> Option<(&'static str, Option<Item>)> {
    match state.version {
        0 => None,
        1 => Some(("attribute_not_exists(pk)", None)),
        version => Some((
            "#version = :previous",
            Some(Item::from([(":previous".to_owned(), attr::n(version - 1))])),
        )),
    }
}

/// [`AlertStore`] on DynamoDB (the alerts table).
#[derive(Debug, Clone)]
pub struct DynamoAlertStore {
    client: Client,
    table: String,
}

impl DynamoAlertStore {
    /// Rule states and alert history in `table` (the alerts table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The history entry of `alert`, stored under the model it was raised for.
    fn history_put(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        alert: &AlertRecord,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(attr::item(history_image(tenant, model_id, alert)?)))
            .build()
            .map_err(build_error(BUILD_TRANSACTION))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The firing-index change `alert` brings for the rule `rule_id`: its entry
    /// while firing, none once resolved.
    fn firing_change(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        rule_id: &str,
        alert: &AlertRecord,
    ) -> StoreResult<TransactWriteItem> {
        Ok(match alert.state {
            AlertState::Firing => {
                let item = attr::item(firing_image(tenant, model_id, rule_id, &alert.alert_id));
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(build_error(BUILD_TRANSACTION))?;
                TransactWriteItem::builder().put(put).build()
            }
            AlertState::Resolved => {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(attr::key(
                        firing_pk(tenant),
                        firing_sk(model_id, rule_id),
                    )))
                    .build()
                    .map_err(build_error(BUILD_TRANSACTION))?;
                TransactWriteItem::builder().delete(delete).build()
            }
        })
    }
}

impl AlertStore for DynamoAlertStore {
    async fn rule_states(&self, model: ModelRef<'_>) -> StoreResult<Vec<RuleState>> {
        let ModelRef { tenant, model_id } = model;
        let query = partition_query(&self.client, &self.table, state_pk(tenant, model_id));
        let items = query_all(query, "read rule states").await?;
        items
            .iter()
            .map(|item| {
                let state: RuleState = doc::decode(item)?;
                let (version, sk) = attr::read(item, || {
                    Ok((attr::count(item, "version")?, attr::string(item, "sk")?))
                })?;
                if version != state.version || sk != state.rule_id {
                    return Err(attr::corrupt(
                        item,
                        "doc disagrees with the key or the version attribute",
                    ));
                }
                Ok(state)
            })
            .collect()
    }

    async fn save_rule_state(
        &self,
        model: ModelRef<'_>,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let Some((condition, values)) = expected_previous(state) else {
            return Ok(false);
        };
        let item = attr::item(state_image(tenant, model_id, state)?);
        let names =
            (state.version > 1).then(|| [("#version".to_owned(), "version".to_owned())].into());
        let Some(alert) = alert else {
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values);
            return conditional(request.send().await, "save rule state");
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .map_err(build_error(BUILD_TRANSACTION))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.history_put(tenant, model_id, alert)?,
            self.firing_change(tenant, model_id, &state.rule_id, alert)?,
        ];
        transact(&self.client, items, "save rule state with alert").await
    }

    async fn remove_rule_state(
        &self,
        model: ModelRef<'_>,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let state_key = attr::key(state_pk(tenant, model_id), rule_id);
        let condition = "#version = :version";
        let version = attr::n(version);
        let Some(alert) = alert else {
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(state_key))
                .condition_expression(condition)
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", version);
            return conditional(request.send().await, "remove rule state");
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(state_key))
            .condition_expression(condition)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", version)
            .build()
            .map_err(build_error(BUILD_TRANSACTION))?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.history_put(tenant, model_id, alert)?,
            self.firing_change(tenant, model_id, rule_id, alert)?,
        ];
        transact(&self.client, items, "remove rule state with alert").await
    }

    async fn alerts(&self, model: ModelRef<'_>, query: &AlertQuery) -> StoreResult<AlertPage> {
        let ModelRef { tenant, model_id } = model;
        let mut page = AlertPage {
            alerts: Vec::new(),
            next: None,
        };
        if query.limit == 0 {
            return Ok(page);
        }
        let pk = history_pk(tenant, model_id);
        let mut start_key = match query.after.as_deref() {
            None => None,
            Some(after) => {
                // The API checks `after` before asking; here it is a caller's bug.
                let (rule_id, started_at) =
                    parse_alert_id(after).ok_or_else(|| StoreError::Internal {
                        operation: "read alerts",
                        source: format!("`after` is not an alert id: {after:?}").into(),
                    })?;
                Some(attr::key(pk.clone(), history_sk(started_at, rule_id)?))
            }
        };
        // One more than asked for, to tell whether a next page exists.
        let wanted = query.limit.saturating_add(1);
        let mut alerts: Vec<AlertRecord> = Vec::new();
        loop {
            let mut needed = wanted - alerts.len();
            let mut request = partition_query(&self.client, &self.table, pk.as_str())
                .scan_index_forward(false)
                .set_exclusive_start_key(start_key.take());
            if let Some(state) = query.state {
                needed = needed.max(FILTERED_PAGE_ITEMS);
                request = request
                    .filter_expression("#state = :state")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":state", attr::s(state.as_str()));
            }
            let output = request
                .limit(i32::try_from(needed).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| unavailable("read alerts", e))?;
            for item in output.items() {
                if alerts.len() == wanted {
                    break;
                }
                alerts.push(doc::decode(item)?);
            }
            start_key = output.last_evaluated_key;
            if alerts.len() == wanted || start_key.is_none() {
                break;
            }
        }
        let more = alerts.len() > query.limit;
        alerts.truncate(query.limit);
        if more {
            page.next = alerts.last().map(|a| a.alert_id.clone());
        }
        page.alerts = alerts;
        Ok(page)
    }

    async fn firing_counts(&self, tenant: &TenantId) -> StoreResult<BTreeMap<ModelId, u64>> {
        let query = partition_query(&self.client, &self.table, firing_pk(tenant));
        let items = query_all(query, "read firing alerts").await?;
        let mut counts = BTreeMap::new();
        for item in &items {
            let model_id = attr::read(item, || {
                ModelId::try_from(attr::string(item, "model_id")?)
                    .map_err(|e| format!("model_id {e}"))
            })?;
            *counts.entry(model_id).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests;

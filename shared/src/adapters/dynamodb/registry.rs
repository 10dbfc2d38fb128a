//! The model registry in the models table.
//!
//! Item: `pk = "TENANT#<tenant>"`, `sk = "MODEL#<model>"`; attributes `tenant_id`,
//! `model_id`, `task`, `first_seen`/`last_seen` (epoch ms), `latest_version`, and
//! `active_shard` (`ACTIVE#<shard>`), the partition key of the table's index
//! [`ACTIVE_INDEX`] (sort key `last_seen`): the active models of a shard are one
//! `Query` of the index, not a `Scan` of the table.

use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::attr::{self, Item};
use super::request::{self, prefix_query, query_all};
use super::{conditional, unavailable};
use crate::adapters::limits::{Image, Value};
use crate::domain::Task;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::shard::shard_of;
use crate::error::StoreError;
use crate::ports::{ModelRegistry, ModelSighting, RegisteredModel, RegistryError, TenantQuotas};

const MODEL_PREFIX: &str = "MODEL#";
/// The sort key of a tenant's quotas, beside its models (written by an operator).
const QUOTAS_SK: &str = "QUOTAS";

/// The models table's global secondary index of models by shard and `last_seen`.
pub const ACTIVE_INDEX: &str = "active-models";

/// The index partition of a shard's models.
fn active_shard(shard: u32) -> String {
    format!("ACTIVE#{shard:02}")
}

/// The partition key of a tenant's registry items (and of its models' settings).
pub(super) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

/// The key of a registry item.
fn model_key(tenant: &TenantId, model_id: &ModelId) -> Item {
    attr::key(tenant_pk(tenant), format!("{MODEL_PREFIX}{model_id}"))
}

/// The registry item of `model`.
pub(crate) fn model_image(model: &RegisteredModel) -> Image<'_> {
    let mut image = Image::default()
        .with("pk", Value::S(tenant_pk(&model.tenant).into()))
        .with(
            "sk",
            Value::S(format!("{MODEL_PREFIX}{}", model.model_id).into()),
        )
        .with("tenant_id", Value::S(model.tenant.as_str().into()))
        .with("model_id", Value::S(model.model_id.as_str().into()))
        .with(
            "active_shard",
            Value::S(active_shard(shard_of(&model.tenant, &model.model_id)).into()),
        )
        .with("task", Value::S(model.task.as_str().into()))
        .with(
            "first_seen",
            Value::number(model.first_seen.timestamp_millis()),
        )
        .with(
            "last_seen",
            Value::number(model.last_seen.timestamp_millis()),
        );
    if let Some(version) = &model.latest_version {
        image.push("latest_version", Value::S(version.as_str().into()));
    }
    image
}

/// [`ModelRegistry`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoModelRegistry {
    client: Client,
    table: String,
}

impl DynamoModelRegistry {
    /// A registry in `table` (the models table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Moves `first_seen` earlier or `last_seen` (with the version) later, when the
    /// condition says the sighting is beyond what is stored; a failed condition means
    /// another batch already moved it further, which is fine.
    async fn widen(
        &self,
        key: &Item,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut request = request::update(&self.client, &self.table, key.clone(), update)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        conditional(request.send().await, "update model registry").map(|_| ())
    }
}

impl ModelRegistry for DynamoModelRegistry {
    async fn record_sighting(&self, sighting: &ModelSighting) -> Result<(), RegistryError> {
        let key = model_key(&sighting.tenant, &sighting.model_id);
        let first = attr::time_ms_value(sighting.first);
        let last = attr::time_ms_value(sighting.last);
        let register = "SET tenant_id = :tenant, model_id = :model, active_shard = :shard, \
                        task = if_not_exists(task, :task), \
                        first_seen = if_not_exists(first_seen, :first), \
                        last_seen = if_not_exists(last_seen, :last)";
        let registered = request::update(&self.client, &self.table, key.clone(), register)
            .condition_expression("attribute_not_exists(task) OR task = :task")
            .expression_attribute_values(":tenant", attr::s(sighting.tenant.as_str()))
            .expression_attribute_values(":model", attr::s(sighting.model_id.as_str()))
            .expression_attribute_values(
                ":shard",
                attr::s(active_shard(shard_of(&sighting.tenant, &sighting.model_id))),
            )
            .expression_attribute_values(":task", attr::s(sighting.task.as_str()))
            .expression_attribute_values(":first", first.clone())
            .expression_attribute_values(":last", last.clone())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let stored = match registered {
            Ok(output) => registered_model(&output.attributes.unwrap_or_default())?,
            Err(err) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                    err.as_service_error()
                {
                    let registered = failed
                        .item()
                        .and_then(|item| attr::string(item, "task").ok())
                        .and_then(|task| task.parse::<Task>().ok());
                    if let Some(registered) = registered {
                        return Err(RegistryError::TaskConflict {
                            registered,
                            requested: sighting.task,
                        });
                    }
                }
                return Err(unavailable("register model", err).into());
            }
        };
        if sighting.first < stored.first_seen {
            self.widen(
                &key,
                "SET first_seen = :first",
                "first_seen > :first",
                vec![(":first", first)],
            )
            .await?;
        }
        let newer_version = sighting.version.is_some() && sighting.version != stored.latest_version;
        if sighting.last > stored.last_seen || (newer_version && sighting.last >= stored.last_seen)
        {
            match &sighting.version {
                Some(version) => {
                    self.widen(
                        &key,
                        "SET last_seen = :last, latest_version = :version",
                        "last_seen <= :last",
                        vec![(":last", last), (":version", attr::s(version.as_str()))],
                    )
                    .await?
                }
                None => {
                    self.widen(
                        &key,
                        "SET last_seen = :last",
                        "last_seen <= :last",
                        vec![(":last", last)],
                    )
                    .await?
                }
            }
        }
        Ok(())
    }

    async fn list_models(&self, tenant: &TenantId) -> Result<Vec<RegisteredModel>, StoreError> {
        let query = prefix_query(&self.client, &self.table, tenant_pk(tenant), MODEL_PREFIX);
        let items = query_all(query, "list models").await?;
        items.iter().map(registered_model).collect()
    }

    async fn model(&self, model: ModelRef<'_>) -> Result<Option<RegisteredModel>, StoreError> {
        let ModelRef { tenant, model_id } = model;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(model_key(tenant, model_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get model", e))?;
        output.item.as_ref().map(registered_model).transpose()
    }

    async fn tenant_quotas(&self, tenant: &TenantId) -> Result<TenantQuotas, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attr::key(tenant_pk(tenant), QUOTAS_SK)))
            .send()
            .await
            .map_err(|e| unavailable("get tenant quotas", e))?;
        let Some(item) = output.item else {
            return Ok(TenantQuotas::default());
        };
        attr::read(&item, || {
            Ok(TenantQuotas {
                predictions_per_minute: item
                    .contains_key("predictions_per_minute")
                    .then(|| attr::count(&item, "predictions_per_minute"))
                    .transpose()?,
            })
        })
    }

    async fn active_models(
        &self,
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> Result<Vec<RegisteredModel>, StoreError> {
        let shards: Vec<Vec<Item>> = stream::iter(shards)
            .map(|shard| {
                let query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(ACTIVE_INDEX)
                    .key_condition_expression("active_shard = :shard AND last_seen >= :since")
                    .expression_attribute_values(":shard", attr::s(active_shard(shard)))
                    .expression_attribute_values(":since", attr::time_ms_value(since));
                query_all(query, "read active models")
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut models = shards
            .iter()
            .flatten()
            .map(registered_model)
            .collect::<Result<Vec<_>, _>>()?;
        models.sort_by(|a, b| (&a.tenant, &a.model_id).cmp(&(&b.tenant, &b.model_id)));
        Ok(models)
    }
}

/// Reads a registry item.
fn registered_model(item: &Item) -> Result<RegisteredModel, StoreError> {
    attr::read(item, || {
        let (tenant, model_id) = attr::ids(item)?;
        let task = attr::string(item, "task")?
            .parse::<Task>()
            .map_err(|e| e.to_string())?;
        Ok(RegisteredModel {
            tenant,
            model_id,
            task,
            first_seen: attr::time_ms(item, "first_seen")?,
            last_seen: attr::time_ms(item, "last_seen")?,
            latest_version: attr::optional_string(item, "latest_version")?,
        })
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::super::testing::{Seen, first_write, seen, updated};
    use super::*;
    use crate::testing::{at, model, tenant};

    #[tokio::test]
    async fn a_registry_entry_is_the_item_the_memory_store_sizes() {
        let requests = Seen::default();
        let recorded = requests.clone();
        // Answers each update with the item it makes of an absent one.
        let rule = mock!(Client::update_item).then_compute_output(move |req| {
            recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(req.clone());
            let item = first_write(
                req.key().expect("key"),
                req.update_expression().expect("expression"),
                req.expression_attribute_names(),
                req.expression_attribute_values(),
            );
            UpdateItemOutput::builder()
                .set_attributes(Some(item))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let model = RegisteredModel {
            tenant: tenant("t1"),
            model_id: model("m1"),
            task: Task::Regression,
            first_seen: at("2025-11-28T10:14:59.120Z"),
            last_seen: at("2025-11-28T10:16:39.123Z"),
            latest_version: Some("v2.1".into()),
        };
        DynamoModelRegistry::new(client, "models")
            .record_sighting(&ModelSighting {
                tenant: model.tenant.clone(),
                model_id: model.model_id.clone(),
                task: model.task,
                first: model.first_seen,
                last: model.last_seen,
                version: model.latest_version.clone(),
            })
            .await
            .expect("registered");
        let requests = seen(&requests);
        assert_eq!(requests.len(), 2, "registration, then the version");
        let item = updated(&requests);
        assert_eq!(registered_model(&item).expect("reads back"), model);
        assert_eq!(attr::item_size(&item), model_image(&model).checked_size());
    }

    fn item(task: &str) -> Item {
        Item::from([
            ("pk".into(), AttributeValue::S("TENANT#t1".into())),
            ("sk".into(), AttributeValue::S("MODEL#m1".into())),
            ("tenant_id".into(), AttributeValue::S("t1".into())),
            ("model_id".into(), AttributeValue::S("m1".into())),
            ("task".into(), AttributeValue::S(task.into())),
            (
                "first_seen".into(),
                AttributeValue::N("1764324899120".into()),
            ),
            (
                "last_seen".into(),
                AttributeValue::N("1764324999120".into()),
            ),
        ])
    }

    #[test]
    fn reads_a_registry_item() {
        let model = registered_model(&item("regression")).expect("valid item");
        assert_eq!(model.tenant.as_str(), "t1");
        assert_eq!(model.model_id.as_str(), "m1");
        assert_eq!(model.task, Task::Regression);
        assert_eq!(model.first_seen.timestamp_millis(), 1_764_324_899_120);
        assert_eq!(model.latest_version, None);
    }

    #[test]
    fn a_corrupt_item_names_its_key_and_attribute() {
        let err = registered_model(&item("clustering")).expect_err("unknown task");
        let text = err.to_string();
        assert!(text.contains("TENANT#t1/MODEL#m1"), "{text}");
        assert!(text.contains("task"), "{text}");
        let mut no_time = item("regression");
        no_time.remove("last_seen");
        assert!(
            registered_model(&no_time)
                .expect_err("missing")
                .to_string()
                .contains("last_seen")
        );
    }
}

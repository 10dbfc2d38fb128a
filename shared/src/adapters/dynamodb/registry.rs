//! The model registry in the models table.
//!
//! Item: `pk = "TENANT#<tenant>"`, `sk = "MODEL#<model>"`; attributes `tenant_id`,
//! `model_id`, `task`, `first_seen`/`last_seen` (epoch ms), `latest_version`, and
//! `active_shard` (`ACTIVE#<shard>`), the partition key of the table's index
//! [`ACTIVE_INDEX`] (sort key `last_seen`): the active models of a shard are one
//! `Query` of the index, not a `Scan` of the table. Beside the models: the tenant's
//! quotas (`sk = "QUOTAS"`, an operator's) and the count of its models
//! (`sk = "MODELS"`, attribute `models`), added to by the transaction that registers a
//! new model. A model's versions: `sk = "VERSION#<model>#<version>"` (`model_version`,
//! `first_seen`/`last_seen`), counted in `sk = "VERSIONS#<model>"` (attribute
//! `versions`) by the transaction that keeps a new one, within the cap. A model's
//! segment keys: `sk = "SEGKEY#<model>#<key>"`, counted in `sk = "SEGKEYS#<model>"`
//! (attribute `segment_keys`); a key's values of one UTC day:
//! `sk = "SEGVAL#<model>#<key>#<day>#<value>"`, counted in
//! `sk = "SEGVALS#<model>#<key>#<day>"` (attribute `segment_values`), both expiring (TTL
//! `expires_at`) two days after the day.

use std::collections::BTreeMap;
use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

use super::attr::{self, Item};
use super::request::{self, build_error, prefix_query, query_all, query_shards, transact};
use super::{conditional, unavailable};
use crate::adapters::limits::{Image, Value};
use crate::domain::TenantQuotas;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::shard::shard_of;
use crate::domain::slice::{SEGMENT_DAYS_KEPT, SegmentCaps, Slice};
use crate::domain::{OVERFLOW_BUCKET, Quota, Task};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    KeptSegment, ModelRegistry, ModelSighting, ModelVersion, RegisteredModel, RegistryError,
    SegmentSighting,
};

const MODEL_PREFIX: &str = "MODEL#";
/// The sort key of a tenant's quotas, beside its models (written by an operator).
const QUOTAS_SK: &str = "QUOTAS";
/// The sort key of the count of a tenant's models (attribute `models`), beside them.
const MODEL_COUNT_SK: &str = "MODELS";
/// The sort key prefix of a model's versions: `VERSION#<model>#<version>`.
const VERSION_PREFIX: &str = "VERSION#";
/// The sort key prefix of the count of a model's versions (attribute `versions`):
/// `VERSIONS#<model>`.
const VERSION_COUNT_PREFIX: &str = "VERSIONS#";
/// The sort key prefix of a model's segment keys: `SEGKEY#<model>#<key>`.
const SEGMENT_KEY_PREFIX: &str = "SEGKEY#";
/// The sort key prefix of the count of a model's segment keys (attribute `keys`).
const SEGMENT_KEY_COUNT_PREFIX: &str = "SEGKEYS#";
/// The sort key prefix of a segment value of a day: `SEGVAL#<model>#<key>#<day>#<value>`.
const SEGMENT_VALUE_PREFIX: &str = "SEGVAL#";
/// The sort key prefix of the count of a key's values of a day (attribute `values`).
const SEGMENT_VALUE_COUNT_PREFIX: &str = "SEGVALS#";
/// The operation named for a new model's registration.
const REGISTER: &str = "register new model";

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

/// The key of a version item.
fn version_key(tenant: &TenantId, model_id: &ModelId, version: &str) -> Item {
    attr::key(
        tenant_pk(tenant),
        format!("{VERSION_PREFIX}{model_id}#{version}"),
    )
}

/// The head every registry item of a model starts with: its key (`sk` under the
/// tenant's partition) and whose it is.
fn registry_item<'a>(tenant: &'a TenantId, model_id: &'a ModelId, sk: String) -> Image<'a> {
    Image::default()
        .with("pk", Value::S(tenant_pk(tenant).into()))
        .with("sk", Value::S(sk.into()))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into()))
}

/// The version item of `version` of a model.
fn version_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    version: &'a ModelVersion,
) -> Image<'a> {
    let sk = format!("{VERSION_PREFIX}{model_id}#{}", version.model_version);
    registry_item(tenant, model_id, sk)
        .with(
            "model_version",
            Value::S(version.model_version.as_str().into()),
        )
        .with("first_seen", Value::millis(version.first_seen))
        .with("last_seen", Value::millis(version.last_seen))
}

/// The registry item of `model`.
pub(crate) fn model_image(model: &RegisteredModel) -> Image<'_> {
    let sk = format!("{MODEL_PREFIX}{}", model.model_id);
    let mut image = registry_item(&model.tenant, &model.model_id, sk)
        .with(
            "active_shard",
            Value::S(active_shard(shard_of(&model.tenant, &model.model_id)).into()),
        )
        .with("task", Value::S(model.task.as_str().into()))
        .with("first_seen", Value::millis(model.first_seen))
        .with("last_seen", Value::millis(model.last_seen));
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
    ) -> StoreResult<()> {
        let mut request = request::update(&self.client, &self.table, key.clone(), update)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        conditional(request.send().await, "update model registry").map(|_| ())
    }

    /// The registered model of `key` (its index attributes refreshed), `None` when
    /// none is registered; a task conflict when it is registered with another task.
    async fn registered(
        &self,
        key: &Item,
        sighting: &ModelSighting,
    ) -> Result<Option<RegisteredModel>, RegistryError> {
        let refresh = "SET tenant_id = :tenant, model_id = :model, active_shard = :shard";
        let updated = request::update(&self.client, &self.table, key.clone(), refresh)
            .condition_expression("task = :task")
            .expression_attribute_values(":tenant", attr::s(sighting.tenant.as_str()))
            .expression_attribute_values(":model", attr::s(sighting.model_id.as_str()))
            .expression_attribute_values(
                ":shard",
                attr::s(active_shard(shard_of(&sighting.tenant, &sighting.model_id))),
            )
            .expression_attribute_values(":task", attr::s(sighting.task.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match updated {
            Ok(output) => {
                return Ok(Some(registered_model(
                    &output.attributes.unwrap_or_default(),
                )?));
            }
            Err(err) => err,
        };
        let Some(UpdateItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        else {
            return Err(unavailable("update model registry", err).into());
        };
        match failed.item() {
            None => Ok(None),
            Some(item) => Err(RegistryError::TaskConflict {
                registered: registered_model(item)?.task,
                requested: sighting.task,
            }),
        }
    }

    /// Registers the sighting's model, new, and counts it against the tenant's
    /// `max_models` in one transaction; `false` when the model is registered already
    /// or the tenant has its quota of models (nothing written).
    async fn register(&self, sighting: &ModelSighting, max_models: u64) -> StoreResult<bool> {
        let model = RegisteredModel {
            tenant: sighting.tenant.clone(),
            model_id: sighting.model_id.clone(),
            task: sighting.task,
            first_seen: sighting.first,
            last_seen: sighting.last,
            latest_version: sighting.version.clone(),
        };
        let count = attr::key(tenant_pk(&model.tenant), MODEL_COUNT_SK);
        let counted = Counted {
            count,
            attribute: "models",
            limit: max_models,
            operation: REGISTER,
            expires: None,
        };
        self.put_counted(model_image(&model), counted).await
    }

    /// Puts `image`, new, and adds one to its count in one transaction, on condition
    /// that the count stays within its limit; `false` when the item exists already or
    /// the count is at its limit (nothing written).
    async fn put_counted(&self, image: Image<'_>, counted: Counted) -> StoreResult<bool> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(attr::item(image)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error(counted.operation))?;
        let attribute = counted.attribute;
        let mut count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(counted.count))
            .update_expression(format!("ADD {attribute} :one"))
            .condition_expression(format!(
                "attribute_not_exists({attribute}) OR {attribute} < :limit"
            ))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(counted.limit.to_string()));
        if let Some(at) = counted.expires {
            count = count
                .update_expression(format!("ADD {attribute} :one SET expires_at = :expires"))
                .expression_attribute_values(":expires", attr::n(at));
        }
        let count = count.build().map_err(build_error(counted.operation))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        transact(&self.client, items, counted.operation).await
    }

    /// Moves the stored `first_seen` to `first` when that is earlier.
    async fn widen_first(
        &self,
        key: &Item,
        first_seen: DateTime<Utc>,
        first: DateTime<Utc>,
    ) -> StoreResult<()> {
        if first >= first_seen {
            return Ok(());
        }
        let value = attr::time_ms_value(first);
        self.widen(
            key,
            "SET first_seen = :first",
            "first_seen > :first",
            vec![(":first", value)],
        )
        .await
    }

    /// Moves the stored `first_seen` earlier and `last_seen` later (with
    /// `latest_version` when given) where the sighting reaches beyond them.
    async fn widen_seen(
        &self,
        key: &Item,
        stored: (DateTime<Utc>, DateTime<Utc>),
        sighting: &ModelSighting,
        latest_version: Option<&str>,
    ) -> StoreResult<()> {
        let (first_seen, last_seen) = stored;
        self.widen_first(key, first_seen, sighting.first).await?;
        let last = attr::time_ms_value(sighting.last);
        match latest_version {
            Some(version) if sighting.last >= last_seen => {
                self.widen(
                    key,
                    "SET last_seen = :last, latest_version = :version",
                    "last_seen <= :last",
                    vec![(":last", last), (":version", attr::s(version))],
                )
                .await
            }
            _ if sighting.last > last_seen => {
                self.widen(
                    key,
                    "SET last_seen = :last",
                    "last_seen <= :last",
                    vec![(":last", last)],
                )
                .await
            }
            _ => Ok(()),
        }
    }

    /// Whether the item `image` (keyed `key`) is there, or is put now with its count
    /// within its limit: one consistent read when it is there.
    async fn kept(&self, key: Item, image: Image<'_>, counted: Counted) -> StoreResult<bool> {
        let exists = || async {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .consistent_read(true)
                .projection_expression("pk")
                .send()
                .await
                .map_err(|e| unavailable("get segment", e))?;
            Ok::<_, StoreError>(output.item.is_some())
        };
        if exists().await? || self.put_counted(image, counted).await? {
            return Ok(true);
        }
        // Kept by a concurrent batch, or the count is at its limit.
        exists().await
    }

    /// Moves the version item's `last_seen` to `last` when that is later, in one
    /// conditional write; returns the item as it was before (`None`: there is none).
    async fn sight_version(
        &self,
        key: &Item,
        last: DateTime<Utc>,
    ) -> StoreResult<Option<ModelVersion>> {
        let updated = request::update(
            &self.client,
            &self.table,
            key.clone(),
            "SET last_seen = :last",
        )
        .condition_expression("attribute_exists(pk) AND last_seen < :last")
        .expression_attribute_values(":last", attr::time_ms_value(last))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
        let before = match updated {
            Ok(output) => output.attributes,
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    failed.item().cloned()
                }
                _ => return Err(unavailable("update model version", err)),
            },
        };
        before.as_ref().map(model_version).transpose()
    }
}

/// A count that a new item is added to, within its limit.
struct Counted {
    /// The key of the item holding the count.
    count: Item,
    /// The count's attribute.
    attribute: &'static str,
    /// The most the count may reach.
    limit: u64,
    /// The operation named in errors.
    operation: &'static str,
    /// When the count expires (epoch seconds), for a count of a day.
    expires: Option<i64>,
}

impl ModelRegistry for DynamoModelRegistry {
    async fn record_sighting(
        &self,
        sighting: &ModelSighting,
        max_models: u64,
    ) -> Result<(), RegistryError> {
        let key = model_key(&sighting.tenant, &sighting.model_id);
        let stored = match self.registered(&key, sighting).await? {
            Some(stored) => stored,
            None if self.register(sighting, max_models).await? => return Ok(()),
            // Registered by a concurrent batch, or the tenant's quota is used up.
            None => self
                .registered(&key, sighting)
                .await?
                .ok_or(RegistryError::OverQuota { limit: max_models })?,
        };
        // A version other than the stored one moves with `last_seen` (ties included).
        let newer_version = sighting
            .version
            .as_deref()
            .filter(|v| stored.latest_version.as_deref() != Some(*v));
        let seen = (stored.first_seen, stored.last_seen);
        Ok(self.widen_seen(&key, seen, sighting, newer_version).await?)
    }

    async fn record_version(
        &self,
        sighting: &ModelSighting,
        max_versions: u64,
    ) -> StoreResult<Option<Slice>> {
        let Some(version) = &sighting.version else {
            return Ok(None);
        };
        let (tenant, model_id) = (&sighting.tenant, &sighting.model_id);
        let key = version_key(tenant, model_id, version);
        let mut stored = self.sight_version(&key, sighting.last).await?;
        if stored.is_none() {
            let new = ModelVersion {
                model_version: version.clone(),
                first_seen: sighting.first,
                last_seen: sighting.last,
            };
            let counted = Counted {
                count: attr::key(
                    tenant_pk(tenant),
                    format!("{VERSION_COUNT_PREFIX}{model_id}"),
                ),
                attribute: "versions",
                limit: max_versions,
                operation: "keep new model version",
                expires: None,
            };
            if self
                .put_counted(version_image(tenant, model_id, &new), counted)
                .await?
            {
                return Ok(Some(Slice::version(version.as_str())));
            }
            // Kept by a concurrent batch, or the model has its cap of versions.
            stored = self.sight_version(&key, sighting.last).await?;
        }
        let Some(stored) = stored else {
            return Ok(Some(Slice::version(OVERFLOW_BUCKET)));
        };
        self.widen_first(&key, stored.first_seen, sighting.first)
            .await?;
        Ok(Some(Slice::version(version.as_str())))
    }

    async fn record_segment(
        &self,
        sighting: SegmentSighting<'_>,
        caps: SegmentCaps,
    ) -> StoreResult<Slice> {
        let SegmentSighting {
            model: ModelRef { tenant, model_id },
            key,
            value,
            day,
        } = sighting;
        let pk = tenant_pk(tenant);
        let image = |sk: &str| {
            registry_item(tenant, model_id, sk.to_owned())
                .with("segment_key", Value::S(key.to_owned().into()))
        };
        let key_sk = format!("{SEGMENT_KEY_PREFIX}{model_id}#{key}");
        let counted = Counted {
            count: attr::key(pk.clone(), format!("{SEGMENT_KEY_COUNT_PREFIX}{model_id}")),
            attribute: "segment_keys",
            limit: caps.keys,
            operation: "keep new segment key",
            expires: None,
        };
        let key_item = attr::key(pk.clone(), key_sk.clone());
        if !self.kept(key_item, image(&key_sk), counted).await? {
            return Ok(Slice::segment(OVERFLOW_BUCKET, OVERFLOW_BUCKET));
        }
        let day_text = day.format("%Y-%m-%d");
        let expires = (day + TimeDelta::days(SEGMENT_DAYS_KEPT)).timestamp();
        let value_sk = format!("{SEGMENT_VALUE_PREFIX}{model_id}#{key}#{day_text}#{value}");
        let counted = Counted {
            count: attr::key(
                pk.clone(),
                format!("{SEGMENT_VALUE_COUNT_PREFIX}{model_id}#{key}#{day_text}"),
            ),
            attribute: "segment_values",
            limit: caps.values_per_day,
            operation: "keep new segment value",
            expires: Some(expires),
        };
        let value_image = image(&value_sk)
            .with("segment_value", Value::S(value.to_owned().into()))
            .with("expires_at", Value::number(expires));
        let value_item = attr::key(pk, value_sk);
        if !self.kept(value_item, value_image, counted).await? {
            return Ok(Slice::segment(key, OVERFLOW_BUCKET));
        }
        Ok(Slice::segment(key, value))
    }

    async fn segments(
        &self,
        model: ModelRef<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<KeptSegment>> {
        let ModelRef { tenant, model_id } = model;
        let query =
            |prefix: String| prefix_query(&self.client, &self.table, tenant_pk(tenant), &prefix);
        let (keys, values) = futures_util::try_join!(
            query_all(
                query(format!("{SEGMENT_KEY_PREFIX}{model_id}#")),
                "list segment keys"
            ),
            query_all(
                query(format!("{SEGMENT_VALUE_PREFIX}{model_id}#")),
                "list segment values"
            ),
        )?;
        let mut kept: BTreeMap<String, BTreeMap<String, DateTime<Utc>>> = BTreeMap::new();
        for item in &keys {
            let key = attr::read(item, || attr::string(item, "segment_key"))?;
            kept.entry(key).or_default();
        }
        for item in &values {
            let (key, value, day) = segment_value(item, model_id)?;
            if let Some(values) = kept.get_mut(&key).filter(|_| day >= since) {
                let latest = values.entry(value).or_insert(day);
                *latest = (*latest).max(day);
            }
        }
        Ok(kept
            .into_iter()
            .map(|(key, values)| KeptSegment {
                key,
                values: values.into_iter().collect(),
            })
            .collect())
    }

    async fn versions(&self, model: ModelRef<'_>) -> StoreResult<Vec<ModelVersion>> {
        let ModelRef { tenant, model_id } = model;
        let prefix = format!("{VERSION_PREFIX}{model_id}#");
        let query = prefix_query(&self.client, &self.table, tenant_pk(tenant), &prefix);
        let items = query_all(query, "list model versions").await?;
        items.iter().map(model_version).collect()
    }

    async fn list_models(&self, tenant: &TenantId) -> StoreResult<Vec<RegisteredModel>> {
        let query = prefix_query(&self.client, &self.table, tenant_pk(tenant), MODEL_PREFIX);
        let items = query_all(query, "list models").await?;
        items.iter().map(registered_model).collect()
    }

    async fn model(&self, model: ModelRef<'_>) -> StoreResult<Option<RegisteredModel>> {
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

    async fn tenant_quotas(&self, tenant: &TenantId) -> StoreResult<TenantQuotas> {
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
            let set = |quota: Quota| {
                let name = quota.name();
                item.contains_key(name)
                    .then(|| attr::count(&item, name))
                    .transpose()
            };
            Ok(TenantQuotas {
                predictions_per_minute: set(Quota::PredictionsPerMinute)?,
                models_per_tenant: set(Quota::ModelsPerTenant)?,
                custom_rules_per_model: set(Quota::CustomRulesPerModel)?,
            })
        })
    }

    async fn active_models(
        &self,
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> StoreResult<Vec<RegisteredModel>> {
        let items = query_shards(
            shards,
            |shard| {
                self.client
                    .query()
                    .table_name(&self.table)
                    .index_name(ACTIVE_INDEX)
                    .key_condition_expression("active_shard = :shard AND last_seen >= :since")
                    .expression_attribute_values(":shard", attr::s(active_shard(shard)))
                    .expression_attribute_values(":since", attr::time_ms_value(since))
            },
            "read active models",
        )
        .await?;
        let mut models = items
            .iter()
            .map(registered_model)
            .collect::<Result<Vec<_>, _>>()?;
        models.sort_by(|a, b| (&a.tenant, &a.model_id).cmp(&(&b.tenant, &b.model_id)));
        Ok(models)
    }
}

/// Reads a version item.
fn model_version(item: &Item) -> StoreResult<ModelVersion> {
    attr::read(item, || {
        Ok(ModelVersion {
            model_version: attr::string(item, "model_version")?,
            first_seen: attr::time_ms(item, "first_seen")?,
            last_seen: attr::time_ms(item, "last_seen")?,
        })
    })
}

/// Reads a segment value item of `model_id`: its key, its value and its UTC day.
fn segment_value(item: &Item, model_id: &ModelId) -> StoreResult<(String, String, DateTime<Utc>)> {
    attr::read(item, || {
        let key = attr::string(item, "segment_key")?;
        let value = attr::string(item, "segment_value")?;
        let sk = attr::string(item, "sk")?;
        let prefix = format!("{SEGMENT_VALUE_PREFIX}{model_id}#{key}#");
        let day = sk
            .strip_prefix(&prefix)
            .and_then(|rest| rest.get(..10))
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
            .ok_or_else(|| format!("sk {sk} does not name a day"))?;
        Ok((key, value, day.and_time(NaiveTime::MIN).and_utc()))
    })
}

/// Reads a registry item.
fn registered_model(item: &Item) -> StoreResult<RegisteredModel> {
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
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::super::testing::{Seen, cancelled, condition_failed, take, text, transact_rule};
    use super::*;
    use crate::testing::{at, model, tenant};

    fn sighting(model: &RegisteredModel) -> ModelSighting {
        ModelSighting {
            tenant: model.tenant.clone(),
            model_id: model.model_id.clone(),
            task: model.task,
            first: model.first_seen,
            last: model.last_seen,
            version: model.latest_version.clone(),
        }
    }

    fn regression_model() -> RegisteredModel {
        RegisteredModel {
            tenant: tenant("t1"),
            model_id: model("m1"),
            task: Task::Regression,
            first_seen: at("2025-11-28T10:14:59.120Z"),
            last_seen: at("2025-11-28T10:16:39.123Z"),
            latest_version: Some("v2.1".into()),
        }
    }

    /// A model not registered yet: the update of a registered one fails its condition
    /// with no item.
    fn unregistered() -> aws_smithy_mocks::Rule {
        mock!(Client::update_item)
            .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed()))
    }

    #[tokio::test]
    async fn a_new_model_is_the_item_the_memory_store_sizes_counted_in_one_transaction() {
        let transactions = Seen::default();
        let update = unregistered();
        let transact = transact_rule(&transactions);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &transact]);
        let model = regression_model();
        DynamoModelRegistry::new(client, "models")
            .record_sighting(&sighting(&model), 7)
            .await
            .expect("registered");
        assert_eq!(update.num_calls(), 1, "one try as a registered model");
        let transaction = take(&transactions);
        let [transaction] = transaction.as_slice() else {
            panic!("one transaction: {transaction:?}");
        };
        let [put, count] = transaction.transact_items() else {
            panic!("the model and its count");
        };
        let item = put.put().expect("a put").item();
        assert_eq!(registered_model(item).expect("reads back"), model);
        assert_eq!(attr::item_size(item), model_image(&model).checked_size());
        let count = count.update().expect("an update");
        assert_eq!(text(count.key(), "sk"), MODEL_COUNT_SK);
        assert_eq!(count.update_expression(), "ADD models :one");
        let values = count.expression_attribute_values().expect("values");
        assert_eq!(values[":limit"], AttributeValue::N("7".into()));
    }

    #[tokio::test]
    async fn a_new_model_beyond_the_quota_is_refused_and_a_concurrent_one_is_registered() {
        // The count's condition fails, and the model is still not registered.
        let update = unregistered();
        let over = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &over]);
        let err = DynamoModelRegistry::new(client, "models")
            .record_sighting(&sighting(&regression_model()), 3)
            .await
            .expect_err("over quota");
        assert!(
            matches!(err, RegistryError::OverQuota { limit: 3 }),
            "{err:?}"
        );
        assert_eq!(update.num_calls(), 2, "tried again as a registered model");

        // Another batch registered the model between the two: its item is used.
        let stored = item("regression");
        let absent = unregistered();
        let raced = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["ConditionalCheckFailed", "None"]));
        let registered = mock!(Client::update_item).then_output(move || {
            UpdateItemOutput::builder()
                .set_attributes(Some(stored.clone()))
                .build()
        });
        let widen = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&absent, &raced, &registered, &widen]
        );
        DynamoModelRegistry::new(client, "models")
            .record_sighting(&sighting(&regression_model()), 3)
            .await
            .expect("registered by the other batch");
        assert_eq!(widen.num_calls(), 1, "then its last sighting moved later");
    }

    fn versioned(version: &str) -> ModelSighting {
        ModelSighting {
            version: Some(version.into()),
            ..sighting(&regression_model())
        }
    }

    #[tokio::test]
    async fn a_new_version_is_kept_counted_and_past_the_cap_counts_as_the_overflow() {
        let transactions = Seen::default();
        let (absent, transact) = (unregistered(), transact_rule(&transactions));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&absent, &transact]);
        let slice = DynamoModelRegistry::new(client, "models")
            .record_version(&versioned("v4"), 5)
            .await
            .expect("kept");
        assert_eq!(slice, Some(Slice::version("v4")));
        let transaction = take(&transactions);
        let [put, count] = transaction[0].transact_items() else {
            panic!("the version and its count");
        };
        let item = put.put().expect("a put").item();
        assert_eq!(text(item, "sk"), "VERSION#m1#v4");
        let version = model_version(item).expect("reads back");
        assert_eq!(version.first_seen, regression_model().first_seen);
        let count = count.update().expect("an update");
        assert_eq!(text(count.key(), "sk"), "VERSIONS#m1");
        assert_eq!(count.update_expression(), "ADD versions :one");
        let values = count.expression_attribute_values().expect("values");
        assert_eq!(values[":limit"], AttributeValue::N("5".into()));

        // The count is at the cap and the version still absent: the overflow.
        let (absent, again) = (unregistered(), unregistered());
        let over = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&absent, &over, &again]
        );
        let slice = DynamoModelRegistry::new(client, "models")
            .record_version(&versioned("v9"), 5)
            .await
            .expect("counted as the overflow");
        assert_eq!(slice, Some(Slice::version(OVERFLOW_BUCKET)));
        assert_eq!(again.num_calls(), 1, "sighted again before giving up");
    }

    /// A `GetItem` answering the item as absent, or as there.
    fn got(present: bool) -> aws_smithy_mocks::Rule {
        mock!(Client::get_item).then_output(move || {
            let item = present.then(|| attr::key("TENANT#t1", "SEGKEY#m1#region"));
            GetItemOutput::builder().set_item(item).build()
        })
    }

    #[tokio::test]
    async fn a_new_segment_keeps_its_key_and_its_value_of_the_day_within_the_caps() {
        let day = at("2026-11-28T00:00:00Z");
        let caps = SegmentCaps {
            keys: 4,
            values_per_day: 50,
        };
        let (t, m) = (tenant("t1"), model("m1"));
        let record = |client: Client| {
            let (t, m) = (t.clone(), m.clone());
            async move {
                DynamoModelRegistry::new(client, "models")
                    .record_segment(
                        SegmentSighting {
                            model: ModelRef::new(&t, &m),
                            key: "region",
                            value: "eu",
                            day,
                        },
                        caps,
                    )
                    .await
            }
        };
        // Neither kept yet: two transactions, the value's with its expiry.
        let transactions = Seen::default();
        let (key_absent, value_absent) = (got(false), got(false));
        let (first, second) = (transact_rule(&transactions), transact_rule(&transactions));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&key_absent, &first, &value_absent, &second]
        );
        assert_eq!(
            record(client).await.expect("kept"),
            Slice::segment("region", "eu")
        );
        let transactions = take(&transactions);
        let [key, value] = transactions.as_slice() else {
            panic!("two transactions: {transactions:?}");
        };
        let [put, count] = key.transact_items() else {
            panic!("the key and its count");
        };
        let put = put.put().expect("a put");
        assert_eq!(text(put.item(), "sk"), "SEGKEY#m1#region");
        let count = count.update().expect("an update");
        assert_eq!(text(count.key(), "sk"), "SEGKEYS#m1");
        assert_eq!(count.update_expression(), "ADD segment_keys :one");
        let [put, count] = value.transact_items() else {
            panic!("the value and its count");
        };
        let item = put.put().expect("a put").item();
        assert_eq!(text(item, "sk"), "SEGVAL#m1#region#2026-11-28#eu");
        let expires = (day + TimeDelta::days(3)).timestamp().to_string();
        assert_eq!(item["expires_at"], AttributeValue::N(expires.clone()));
        let count = count.update().expect("an update");
        assert_eq!(text(count.key(), "sk"), "SEGVALS#m1#region#2026-11-28");
        assert_eq!(
            count.update_expression(),
            "ADD segment_values :one SET expires_at = :expires"
        );
        let values = count.expression_attribute_values().expect("values");
        assert_eq!(values[":limit"], AttributeValue::N("50".into()));
        assert_eq!(values[":expires"], AttributeValue::N(expires));

        // Both kept before: two reads, no write.
        let (key_there, value_there) = (got(true), got(true));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&key_there, &value_there]
        );
        assert_eq!(
            record(client).await.expect("kept"),
            Slice::segment("region", "eu")
        );

        // The key kept, the day's values at their cap: the key's overflow.
        let (key_there, absent, again) = (got(true), got(false), got(false));
        let over = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&key_there, &absent, &over, &again]
        );
        assert_eq!(
            record(client).await.expect("overflow"),
            Slice::segment("region", OVERFLOW_BUCKET)
        );
        assert_eq!(again.num_calls(), 1, "read again before giving up");

        // The model at its cap of keys: the keys' overflow, no value recorded.
        let (absent, again) = (got(false), got(false));
        let over = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&absent, &over, &again]
        );
        assert_eq!(
            record(client).await.expect("overflow"),
            Slice::segment(OVERFLOW_BUCKET, OVERFLOW_BUCKET)
        );
    }

    #[tokio::test]
    async fn kept_segments_read_back_the_items_record_segment_writes() {
        let (t, m) = (tenant("t1"), model("m1"));
        let caps = SegmentCaps {
            keys: 4,
            values_per_day: 50,
        };
        // The items two days of recording write: region eu on both, us on the first.
        let transactions = Seen::default();
        let (absent, write) = (got(false), transact_rule(&transactions));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&absent, &write]);
        let registry = DynamoModelRegistry::new(client, "models");
        let (first, second) = (at("2026-11-27T00:00:00Z"), at("2026-11-28T00:00:00Z"));
        for (value, day) in [("eu", first), ("us", first), ("eu", second)] {
            registry
                .record_segment(
                    SegmentSighting {
                        model: ModelRef::new(&t, &m),
                        key: "region",
                        value,
                        day,
                    },
                    caps,
                )
                .await
                .expect("kept");
        }
        let puts: Vec<Item> = take(&transactions)
            .iter()
            .filter_map(|t| t.transact_items().first()?.put().map(|p| p.item().clone()))
            .collect();
        let answer = move |prefix: &'static str| {
            let items: Vec<Item> = puts
                .iter()
                .filter(|item| text(item, "sk").starts_with(prefix))
                .cloned()
                .collect();
            mock!(Client::query)
                .match_requests(move |q| {
                    q.expression_attribute_values()
                        .and_then(|v| v.get(":prefix"))
                        .is_some_and(|p| p == &AttributeValue::S(prefix.into()))
                })
                .then_output(move || {
                    QueryOutput::builder()
                        .set_items(Some(items.clone()))
                        .build()
                })
        };
        let (keys, values) = (answer("SEGKEY#m1#"), answer("SEGVAL#m1#"));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&keys, &values]);
        let registry = DynamoModelRegistry::new(client, "models");
        let kept = |since| registry.segments(ModelRef::new(&t, &m), since);
        assert_eq!(
            kept(first).await.expect("read"),
            [KeptSegment {
                key: "region".into(),
                values: vec![("eu".into(), second), ("us".into(), first)],
            }]
        );
        assert_eq!(
            kept(second).await.expect("read"),
            [KeptSegment {
                key: "region".into(),
                values: vec![("eu".into(), second)],
            }],
            "the days before `since` are not listed"
        );
    }

    #[tokio::test]
    async fn a_kept_versions_sighting_is_one_write_and_none_without_a_version() {
        let model = regression_model();
        let before = Item::from([
            ("model_version".into(), AttributeValue::S("v4".into())),
            ("first_seen".into(), attr::time_ms_value(model.first_seen)),
            ("last_seen".into(), attr::time_ms_value(model.first_seen)),
        ]);
        let updates = Seen::default();
        let seen = updates.clone();
        let sight = mock!(Client::update_item).then_compute_output(move |req| {
            let expression = req.update_expression().unwrap_or_default().to_owned();
            super::super::testing::record(&seen, expression);
            UpdateItemOutput::builder()
                .set_attributes(Some(before.clone()))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&sight]);
        let registry = DynamoModelRegistry::new(client, "models");
        let slice = registry
            .record_version(&versioned("v4"), 1)
            .await
            .expect("kept");
        assert_eq!(
            slice,
            Some(Slice::version("v4")),
            "kept before the cap was reached"
        );
        assert_eq!(
            take(&updates),
            ["SET last_seen = :last"],
            "one write, no read"
        );
        let none = registry
            .record_version(
                &sighting(&RegisteredModel {
                    latest_version: None,
                    ..model
                }),
                1,
            )
            .await
            .expect("nothing to record");
        assert_eq!(none, None);
        assert_eq!(sight.num_calls(), 1);
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

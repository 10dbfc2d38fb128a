//! Rollups and counter totals in the rollups table.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | minute rollup | `MIN#<tenant>#<model>#<day start, epoch s>` | start, epoch s, 10 digits |
//! | hour rollup | `HOUR#<tenant>#<model>#<YYYY-MM>` | start, epoch s, 10 digits |
//! | day rollup | `DAY#<tenant>#<model>` | start, epoch s, 10 digits |
//! | counter totals | `TOTALS#<tenant>#<model>` | `TOTALS` |
//! | export cursor | `EXPORT#<exporter>` | `<tenant>#<model>` |
//!
//! Rollup attributes: `state` (B), `rev` (N), `start` (N), `tenant_id`, `model_id`,
//! `expires_at` (TTL). Totals: `ok`, `errors`, `latency_sum_ms` (N) and one `e_<type>`
//! (N) per error type. Export cursors: `through`, `rolled_through` (N, epoch s),
//! `tenant_id`, `model_id`; one partition per exporter, read whole each run. A partition holds at most a day of minutes, a month of hours,
//! or a model's days, so a window is a handful of range queries; zero-padded starts
//! sort lexically in time order.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::attr::{self, Item};
use super::{conditional, unavailable};
use crate::config::RollupRetention;
use crate::error::StoreError;
use crate::ids::{ModelId, TenantId};
use crate::ports::{CounterTotals, ExportCursor, ExportCursors, Granularity, Rollup, RollupStore};

/// [`RollupStore`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRollupStore {
    client: Client,
    table: String,
    retention: RollupRetention,
}

impl DynamoRollupStore {
    /// Rollups in `table`, expiring per `retention`.
    pub fn new(client: Client, table: impl Into<String>, retention: RollupRetention) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    fn retention(&self, granularity: Granularity) -> TimeDelta {
        match granularity {
            Granularity::Minute => self.retention.minute,
            Granularity::Hour => self.retention.hour,
            Granularity::Day => self.retention.day,
        }
    }

    fn rollup_item(&self, rollup: &Rollup) -> Item {
        let start = rollup.start.timestamp();
        let expires = rollup.start + self.retention(rollup.granularity);
        Item::from([
            (
                "pk".into(),
                AttributeValue::S(partition(
                    &rollup.tenant,
                    &rollup.model_id,
                    rollup.granularity,
                    rollup.start,
                )),
            ),
            ("sk".into(), AttributeValue::S(sort_key(rollup.start))),
            (
                "state".into(),
                AttributeValue::B(rollup.state.clone().into()),
            ),
            ("rev".into(), AttributeValue::N(rollup.rev.to_string())),
            ("start".into(), AttributeValue::N(start.to_string())),
            (
                "tenant_id".into(),
                AttributeValue::S(rollup.tenant.to_string()),
            ),
            (
                "model_id".into(),
                AttributeValue::S(rollup.model_id.to_string()),
            ),
            (
                "expires_at".into(),
                AttributeValue::N(expires.timestamp().to_string()),
            ),
        ])
    }

    /// Every rollup of one partition with a start in `[from, to)`.
    async fn query_partition(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        granularity: Granularity,
        pk: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":from", AttributeValue::S(sort_key(from)))
            .expression_attribute_values(
                ":to",
                AttributeValue::S(sort_key(to - TimeDelta::seconds(1))),
            )
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable("read rollups", e))?;
        items
            .iter()
            .map(|item| rollup_from_item(item, tenant, model_id, granularity))
            .collect()
    }
}

/// The partition holding `granularity` rollups that start at `start`.
fn partition(
    tenant: &TenantId,
    model_id: &ModelId,
    granularity: Granularity,
    start: DateTime<Utc>,
) -> String {
    match granularity {
        Granularity::Minute => format!(
            "MIN#{tenant}#{model_id}#{}",
            Granularity::Day.floor(start).timestamp()
        ),
        Granularity::Hour => format!(
            "HOUR#{tenant}#{model_id}#{:04}-{:02}",
            start.year(),
            start.month()
        ),
        Granularity::Day => format!("DAY#{tenant}#{model_id}"),
    }
}

/// The partitions that can hold `granularity` rollups starting in `[from, to)`.
fn partitions(
    tenant: &TenantId,
    model_id: &ModelId,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let step = match granularity {
        Granularity::Minute => TimeDelta::days(1),
        Granularity::Hour => TimeDelta::days(28),
        Granularity::Day => return vec![partition(tenant, model_id, granularity, from)],
    };
    let mut t = from;
    while t < to {
        let key = partition(tenant, model_id, granularity, t);
        if keys.last() != Some(&key) {
            keys.push(key);
        }
        t += step;
    }
    let last = partition(tenant, model_id, granularity, to - TimeDelta::seconds(1));
    if from < to && !keys.contains(&last) {
        keys.push(last);
    }
    keys
}

fn sort_key(start: DateTime<Utc>) -> String {
    format!("{:010}", start.timestamp())
}

fn rollup_from_item(
    item: &Item,
    tenant: &TenantId,
    model_id: &ModelId,
    granularity: Granularity,
) -> Result<Rollup, StoreError> {
    let read = || -> Result<Rollup, attr::AttrError> {
        let Some(AttributeValue::B(state)) = item.get("state") else {
            return Err("attribute state is missing or not binary".into());
        };
        Ok(Rollup {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            granularity,
            start: attr::optional_time_s(item, "start")?.ok_or("attribute start is missing")?,
            rev: attr::count(item, "rev")?,
            state: state.clone().into_inner(),
        })
    };
    read().map_err(|reason| attr::corrupt(item, reason))
}

fn totals_key(tenant: &TenantId, model_id: &ModelId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".into(),
            AttributeValue::S(format!("TOTALS#{tenant}#{model_id}")),
        ),
        ("sk".into(), AttributeValue::S("TOTALS".into())),
    ])
}

/// Error types become attribute names `e_<type>`; ids are `[A-Za-z0-9._:@-]`.
const ERROR_TYPE_PREFIX: &str = "e_";

fn number_value(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl RollupStore for DynamoRollupStore {
    async fn rollups(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let keys = partitions(tenant, model_id, granularity, from, to);
        let parts: Vec<Vec<Rollup>> = stream::iter(keys)
            .map(|pk| self.query_partition(tenant, model_id, granularity, pk, from, to))
            .buffered(8)
            .try_collect()
            .await?;
        let mut all: Vec<Rollup> = parts.into_iter().flatten().collect();
        all.sort_by_key(|r| r.start);
        Ok(all)
    }

    async fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterTotals,
    ) -> Result<bool, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.rollup_item(rollup)));
        put = match previous_rev {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(rev) => put
                .condition_expression("rev = :previous")
                .expression_attribute_values(":previous", number_value(rev)),
        };
        let mut update_expression =
            "SET tenant_id = :tenant, model_id = :model ADD ok :ok, errors :errors, latency_sum_ms :latency"
                .to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(totals_key(&rollup.tenant, &rollup.model_id)))
            .expression_attribute_values(":tenant", AttributeValue::S(rollup.tenant.to_string()))
            .expression_attribute_values(":model", AttributeValue::S(rollup.model_id.to_string()))
            .expression_attribute_values(":ok", number_value(delta.ok))
            .expression_attribute_values(":errors", number_value(delta.errors))
            .expression_attribute_values(":latency", number_value(delta.latency_sum_ms));
        for (i, (error_type, count)) in delta.errors_by_type.iter().enumerate() {
            update_expression.push_str(&format!(", #e{i} :e{i}"));
            update = update
                .expression_attribute_names(
                    format!("#e{i}"),
                    format!("{ERROR_TYPE_PREFIX}{error_type}"),
                )
                .expression_attribute_values(format!(":e{i}"), number_value(count));
        }
        let build_error = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Internal {
            operation: "build minute rollup transaction",
            source: Box::new(e),
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put.build().map_err(build_error)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        update
                            .update_expression(update_expression)
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(false)
                }
                _ => Err(unavailable("write minute rollup", err)),
            },
        }
    }

    async fn put_rollup(&self, rollup: &Rollup) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.rollup_item(rollup)))
            .condition_expression("attribute_not_exists(pk) OR rev < :rev")
            .expression_attribute_values(":rev", number_value(rollup.rev))
            .send()
            .await;
        conditional(result, "write rollup")
    }

    async fn counter_totals(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<CounterTotals, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(totals_key(tenant, model_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read counter totals", e))?;
        let Some(item) = output.item else {
            return Ok(CounterTotals::default());
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            key: format!("TOTALS#{tenant}#{model_id}"),
            reason,
        };
        let mut totals = CounterTotals::default();
        for (name, value) in &item {
            let AttributeValue::N(n) = value else {
                continue;
            };
            let count = || {
                n.parse::<u64>()
                    .map_err(|_| corrupt(format!("{name}={n} is not a count")))
            };
            match name.as_str() {
                "ok" => totals.ok = count()?,
                "errors" => totals.errors = count()?,
                "latency_sum_ms" => {
                    totals.latency_sum_ms = n
                        .parse()
                        .map_err(|_| corrupt(format!("latency_sum_ms={n} is not a number")))?
                }
                other => {
                    if let Some(error_type) = other.strip_prefix(ERROR_TYPE_PREFIX) {
                        totals
                            .errors_by_type
                            .insert(error_type.to_owned(), count()?);
                    }
                }
            }
        }
        Ok(totals)
    }
}

fn cursor_key(exporter: &str, tenant: &TenantId, model_id: &ModelId) -> Item {
    Item::from([
        ("pk".into(), AttributeValue::S(format!("EXPORT#{exporter}"))),
        (
            "sk".into(),
            AttributeValue::S(format!("{tenant}#{model_id}")),
        ),
    ])
}

impl DynamoRollupStore {
    /// An `UpdateItem` on a cursor that only moves `attribute` forward to `to`.
    async fn move_forward(
        &self,
        key: Item,
        attribute: &str,
        to: DateTime<Utc>,
        ids: Option<(&TenantId, &ModelId)>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_not_exists(#at) OR #at < :to")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":to", number_value(to.timestamp()));
        request = match ids {
            Some((tenant, model_id)) => request
                .update_expression("SET #at = :to, tenant_id = :tenant, model_id = :model")
                .expression_attribute_values(":tenant", AttributeValue::S(tenant.to_string()))
                .expression_attribute_values(":model", AttributeValue::S(model_id.to_string())),
            None => request.update_expression("SET #at = :to"),
        };
        // A failed condition: the cursor is already at or past `to`.
        conditional(request.send().await, "move export cursor").map(|_| ())
    }
}

impl ExportCursors for DynamoRollupStore {
    async fn note_rolled(
        &self,
        exporters: &[&str],
        tenant: &TenantId,
        model_id: &ModelId,
        rolled_through: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for exporter in exporters {
            self.move_forward(
                cursor_key(exporter, tenant, model_id),
                "rolled_through",
                rolled_through,
                Some((tenant, model_id)),
            )
            .await?;
        }
        Ok(())
    }

    async fn lagging_cursors(&self, exporter: &str) -> Result<Vec<ExportCursor>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .filter_expression("attribute_not_exists(through) OR through < rolled_through")
            .expression_attribute_values(":pk", AttributeValue::S(format!("EXPORT#{exporter}")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable("read export cursors", e))?;
        items.iter().map(export_cursor).collect()
    }

    async fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.move_forward(
            cursor_key(exporter, &cursor.tenant, &cursor.model_id),
            "through",
            through,
            None,
        )
        .await
    }
}

/// Reads an export cursor item.
fn export_cursor(item: &Item) -> Result<ExportCursor, StoreError> {
    let read = || -> Result<ExportCursor, attr::AttrError> {
        let (tenant, model_id) = attr::ids(item)?;
        Ok(ExportCursor {
            tenant,
            model_id,
            through: attr::optional_time_s(item, "through")?,
            rolled_through: attr::optional_time_s(item, "rolled_through")?
                .ok_or("attribute rolled_through is missing")?,
        })
    };
    read().map_err(|reason| attr::corrupt(item, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TenantId, ModelId) {
        (
            TenantId::parse("t").expect("tenant"),
            ModelId::parse("m").expect("model"),
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn a_window_reads_few_partitions() {
        let (t, m) = ids();
        let day = partitions(
            &t,
            &m,
            Granularity::Minute,
            at("2026-11-27T10:00:00Z"),
            at("2026-11-28T10:00:00Z"),
        );
        assert_eq!(day, ["MIN#t#m#1795737600", "MIN#t#m#1795824000"]);
        let month = partitions(
            &t,
            &m,
            Granularity::Hour,
            at("2026-10-29T11:00:00Z"),
            at("2026-11-28T11:00:00Z"),
        );
        assert_eq!(month, ["HOUR#t#m#2026-10", "HOUR#t#m#2026-11"]);
        let long = partitions(
            &t,
            &m,
            Granularity::Hour,
            at("2026-01-31T00:00:00Z"),
            at("2026-04-01T00:00:00Z"),
        );
        assert_eq!(
            long,
            ["HOUR#t#m#2026-01", "HOUR#t#m#2026-02", "HOUR#t#m#2026-03"]
        );
        assert_eq!(
            partitions(
                &t,
                &m,
                Granularity::Day,
                at("2025-11-01T00:00:00Z"),
                at("2026-11-28T00:00:00Z")
            ),
            ["DAY#t#m"]
        );
    }

    #[test]
    fn sort_keys_order_like_time() {
        assert_eq!(sort_key(at("1970-01-01T00:01:40Z")), "0000000100");
        assert!(sort_key(at("2001-09-09T01:46:39Z")) < sort_key(at("2001-09-09T01:46:40Z")));
    }
}

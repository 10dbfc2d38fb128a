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
//! `expires_at` (TTL). Export cursors: `through`, `rolled_through` (N, epoch s),
//! `tenant_id`, `model_id`; one partition per exporter, read whole each run. A
//! partition holds at most a day of minutes, a month of hours, or a model's days, so a
//! window is a handful of range queries; zero-padded starts sort lexically in time
//! order.
//!
//! Totals: `ok`, `errors` (N), `latency_total_ms` (N: milliseconds with exactly 3
//! decimals, i.e. whole microseconds), `error_types` (SS: the named error types
//! recorded against the cap) and one `e_<type>` (N) per error type counted. Every
//! write `ADD`s a delta; DynamoDB adds decimals exactly, and every operand and sum is
//! on the 10^-3 grid, so the sum is exact: at most 2^64 predictions of at most
//! `MAX_LATENCY_MS` = 10^9 ms sum to 1.8·10^28 ms, 29 integer digits + 3 decimals =
//! 32 significant digits (DynamoDB holds 38) and a magnitude far below 10^126. The
//! named types stay at most [`MAX_TOTAL_ERROR_TYPES`]: a delta that records new types
//! adds them to `error_types` on condition that the set still has the size it was
//! mapped against (`attribute_not_exists` for none), in the same transaction as the
//! rollup; with two writers one condition fails and that writer re-reads. Totals
//! written before this layout keep `latency_sum_ms` (f64 text, up to 38 digits):
//! it is read (rounded to µs) and never added to again, since an `ADD` onto a long
//! decimal can exceed 38 digits; their `e_<type>` counters without `error_types`
//! are recorded with the next new type.

use std::borrow::Cow;
use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::attr::{self, Item};
use super::request::{self, build_error, partition_query, query_all, query_shards, transact};
use super::{conditional, unavailable};
use crate::adapters::limits::{Image, Value};
use crate::config::RollupRetention;
#[cfg(doc)]
use crate::domain::MAX_TOTAL_ERROR_TYPES;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::shard::shard_of;
use crate::domain::{CounterDelta, CounterTotals, Granularity, TimeSpan, WindowState};
use crate::error::StoreResult;
use crate::ports::{ExportCursor, ExportCursors, Rollup, RollupStore};

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
        attr::item(rollup_image(
            rollup,
            rollup.start + self.retention(rollup.granularity),
        ))
    }

    /// Every rollup of one partition with a start in `span`.
    async fn query_partition(
        &self,
        model: ModelRef<'_>,
        granularity: Granularity,
        pk: String,
        span: TimeSpan,
    ) -> StoreResult<Vec<Rollup>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", attr::s(pk))
            .expression_attribute_values(":from", attr::s(sort_key(span.start)))
            .expression_attribute_values(":to", attr::s(sort_key(span.end - TimeDelta::seconds(1))))
            .consistent_read(true);
        let items = query_all(query, "read rollups").await?;
        items
            .iter()
            .map(|item| rollup_from_item(item, model, granularity))
            .collect()
    }
}

/// The item of a rollup that expires at `expires`.
pub(crate) fn rollup_image(rollup: &Rollup, expires: DateTime<Utc>) -> Image<'_> {
    Image::default()
        .with(
            "pk",
            Value::S(partition(rollup.model(), rollup.granularity, rollup.start).into()),
        )
        .with("sk", Value::S(sort_key(rollup.start).into()))
        .with("state", Value::B(Cow::Owned(rollup.state.to_bytes())))
        .with("rev", Value::number(rollup.rev))
        .with("start", Value::number(rollup.start.timestamp()))
        .with("tenant_id", Value::S(rollup.tenant.as_str().into()))
        .with("model_id", Value::S(rollup.model_id.as_str().into()))
        .with("expires_at", Value::number(expires.timestamp()))
}

/// The partition holding `granularity` rollups that start at `start`.
pub(crate) fn partition(
    model: ModelRef<'_>,
    granularity: Granularity,
    start: DateTime<Utc>,
) -> String {
    let ModelRef { tenant, model_id } = model;
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

/// The partitions that can hold `granularity` rollups starting in `span`.
pub(crate) fn partitions(
    model: ModelRef<'_>,
    granularity: Granularity,
    span: TimeSpan,
) -> Vec<String> {
    let TimeSpan {
        start: from,
        end: to,
    } = span;
    let mut keys: Vec<String> = Vec::new();
    let step = match granularity {
        Granularity::Minute => TimeDelta::days(1),
        Granularity::Hour => TimeDelta::days(28),
        Granularity::Day => return vec![partition(model, granularity, from)],
    };
    let mut t = from;
    while t < to {
        let key = partition(model, granularity, t);
        if keys.last() != Some(&key) {
            keys.push(key);
        }
        t += step;
    }
    let last = partition(model, granularity, to - TimeDelta::seconds(1));
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
    model: ModelRef<'_>,
    granularity: Granularity,
) -> StoreResult<Rollup> {
    attr::read(item, || {
        let Some(AttributeValue::B(state)) = item.get("state") else {
            return Err("attribute state is missing or not binary".into());
        };
        Ok(Rollup {
            tenant: model.tenant.clone(),
            model_id: model.model_id.clone(),
            granularity,
            start: attr::optional_time_s(item, "start")?.ok_or("attribute start is missing")?,
            rev: attr::count(item, "rev")?,
            state: WindowState::from_bytes(state.as_ref())
                .map_err(|e| format!("attribute state: {e}"))?,
        })
    })
}

/// Error types become attribute names `e_<type>`; ids are `[A-Za-z0-9._:@-]`.
const ERROR_TYPE_PREFIX: &str = "e_";

/// The totals' latency sum: milliseconds with exactly 3 decimals.
const LATENCY_TOTAL: &str = "latency_total_ms";

/// Where totals written before [`LATENCY_TOTAL`] keep their sum (f64 text): read only.
const LEGACY_LATENCY_SUM: &str = "latency_sum_ms";

/// The set of named error types recorded against the cap.
const NAMED_ERROR_TYPES: &str = "error_types";

/// The sort key of a totals item.
const TOTALS_SK: &str = "TOTALS";

/// The partition key of a model's totals item.
fn totals_pk(tenant: &TenantId, model_id: &ModelId) -> String {
    format!("TOTALS#{tenant}#{model_id}")
}

/// `us` microseconds as DynamoDB number text in milliseconds with 3 decimals.
fn fixed_ms(us: u128) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// A non-negative DynamoDB number of milliseconds (any decimal text: `40`, `40.5`,
/// `0.30000000000000004`, `1.5E+3`) in whole microseconds, rounded half up; `None`
/// when it is not such a number or exceeds `u128`.
fn parse_micros(text: &str) -> Option<u128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let exponent: i64 = match exponent {
        Some(e) if e.len() <= 7 => e.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = integer.bytes().chain(fraction.bytes()).collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if negative {
        // Only a negative zero is a sum.
        return digits.iter().all(|&d| d == b'0').then_some(0);
    }
    // Digits before `point` are whole microseconds.
    let point = integer.len() as i64 + exponent + 3;
    let mut us: u128 = 0;
    for i in 0..point.max(0) {
        let digit = usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or(0, |d| d - b'0');
        us = us.checked_mul(10)?.checked_add(u128::from(digit))?;
    }
    let next = usize::try_from(point).ok().and_then(|i| digits.get(i));
    if next.is_some_and(|&d| d >= b'5') {
        us = us.checked_add(1)?;
    }
    Some(us)
}

/// The totals item holding `totals` (also the image of a delta: the update `ADD`s
/// each of its counters).
pub(crate) fn totals_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    totals: &'a CounterTotals,
) -> Image<'a> {
    let mut image = Image::default()
        .with("pk", Value::S(totals_pk(tenant, model_id).into()))
        .with("sk", Value::S(TOTALS_SK.into()))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into()))
        .with("ok", Value::number(totals.ok))
        .with("errors", Value::number(totals.errors))
        .with(LATENCY_TOTAL, Value::N(fixed_ms(totals.latency_sum_us)));
    if !totals.named_error_types.is_empty() {
        image.push(
            NAMED_ERROR_TYPES,
            Value::Ss(
                totals
                    .named_error_types
                    .iter()
                    .map(|t| Cow::Borrowed(t.as_str()))
                    .collect(),
            ),
        );
    }
    for (error_type, count) in &totals.errors_by_type {
        image.push(
            format!("{ERROR_TYPE_PREFIX}{error_type}"),
            Value::number(count),
        );
    }
    image
}

/// The `Update` that adds `delta` to the totals: `SET` the ids, `ADD` every counter
/// and the newly recorded error types of the delta's image; when it records types, on
/// condition that the record still holds as many as the delta was mapped against.
fn totals_update(
    table: &str,
    tenant: &TenantId,
    model_id: &ModelId,
    delta: &CounterDelta,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    let mut update = Update::builder().table_name(table);
    let mut key = Item::new();
    let (mut set, mut add) = (Vec::new(), Vec::new());
    for (i, (name, value)) in totals_image(tenant, model_id, &delta.add)
        .into_attributes()
        .into_iter()
        .enumerate()
    {
        let value = attr::value(value);
        match name.as_ref() {
            "pk" | "sk" => {
                key.insert(name.into_owned(), value);
                continue;
            }
            "tenant_id" | "model_id" => set.push(format!("#a{i} = :a{i}")),
            _ => add.push(format!("#a{i} :a{i}")),
        }
        update = update
            .expression_attribute_names(format!("#a{i}"), name)
            .expression_attribute_values(format!(":a{i}"), value);
    }
    update = update.set_key(Some(key)).update_expression(format!(
        "SET {} ADD {}",
        set.join(", "),
        add.join(", ")
    ));
    if !delta.add.named_error_types.is_empty() {
        update = match delta.named_error_types_read {
            0 => update.condition_expression(format!("attribute_not_exists({NAMED_ERROR_TYPES})")),
            read => update
                .condition_expression(format!("size({NAMED_ERROR_TYPES}) = :named_read"))
                .expression_attribute_values(":named_read", attr::n(read)),
        };
    }
    update
}

/// Reads a totals item.
fn totals_from_item(item: &Item) -> StoreResult<CounterTotals> {
    let mut totals = CounterTotals::default();
    for (name, value) in item {
        let number = || match value {
            AttributeValue::N(n) => Ok(n),
            _ => Err(attr::corrupt(item, format!("{name} is not a number"))),
        };
        let count = || {
            let n = number()?;
            n.parse::<u64>()
                .map_err(|_| attr::corrupt(item, format!("{name}={n} is not a count")))
        };
        let micros = || {
            let n = number()?;
            parse_micros(n).ok_or_else(|| {
                attr::corrupt(item, format!("{name}={n} is not a latency sum in ms"))
            })
        };
        match name.as_str() {
            "ok" => totals.ok = count()?,
            "errors" => totals.errors = count()?,
            LATENCY_TOTAL | LEGACY_LATENCY_SUM => {
                totals.latency_sum_us = totals
                    .latency_sum_us
                    .checked_add(micros()?)
                    .ok_or_else(|| attr::corrupt(item, "the latency sums overflow"))?;
            }
            NAMED_ERROR_TYPES => {
                let AttributeValue::Ss(types) = value else {
                    return Err(attr::corrupt(item, format!("{name} is not a string set")));
                };
                totals.named_error_types = types.iter().cloned().collect();
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

impl RollupStore for DynamoRollupStore {
    async fn rollups(
        &self,
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> StoreResult<Vec<Rollup>> {
        if span.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<Vec<Rollup>> = stream::iter(partitions(model, granularity, span))
            .map(|pk| self.query_partition(model, granularity, pk, span))
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
        delta: &CounterDelta,
    ) -> StoreResult<bool> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.rollup_item(rollup)));
        put = match previous_rev {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(rev) => put
                .condition_expression("rev = :previous")
                .expression_attribute_values(":previous", attr::n(rev)),
        };
        let update = totals_update(&self.table, &rollup.tenant, &rollup.model_id, delta);
        let build_error = build_error("build minute rollup transaction");
        let items = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(&build_error)?)
                .build(),
            TransactWriteItem::builder()
                .update(update.build().map_err(&build_error)?)
                .build(),
        ];
        transact(&self.client, items, "write minute rollup").await
    }

    async fn put_rollup(&self, rollup: &Rollup) -> StoreResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.rollup_item(rollup)))
            .condition_expression("attribute_not_exists(pk) OR rev < :rev")
            .expression_attribute_values(":rev", attr::n(rollup.rev))
            .send()
            .await;
        conditional(result, "write rollup")
    }

    async fn counter_totals(&self, model: ModelRef<'_>) -> StoreResult<CounterTotals> {
        let ModelRef { tenant, model_id } = model;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attr::key(totals_pk(tenant, model_id), TOTALS_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read counter totals", e))?;
        output
            .item
            .as_ref()
            .map_or_else(|| Ok(CounterTotals::default()), totals_from_item)
    }
}

/// The partition and sort key of an exporter's cursor of a model.
fn cursor_pk_sk(exporter: &str, tenant: &TenantId, model_id: &ModelId) -> [String; 2] {
    [
        cursors_pk(exporter, shard_of(tenant, model_id)),
        format!("{tenant}#{model_id}"),
    ]
}

/// The partition of an exporter's cursors of a shard's models.
fn cursors_pk(exporter: &str, shard: u32) -> String {
    format!("EXPORT#{exporter}#{shard:02}")
}

/// The key of an exporter's cursor of a model.
fn cursor_key(exporter: &str, tenant: &TenantId, model_id: &ModelId) -> Item {
    let [pk, sk] = cursor_pk_sk(exporter, tenant, model_id);
    attr::key(pk, sk)
}

/// The item of `exporter`'s cursor.
pub(crate) fn cursor_image<'a>(exporter: &str, cursor: &'a ExportCursor) -> Image<'a> {
    let [pk, sk] = cursor_pk_sk(exporter, &cursor.tenant, &cursor.model_id);
    let mut image = Image::default()
        .with("pk", Value::S(pk.into()))
        .with("sk", Value::S(sk.into()))
        .with("tenant_id", Value::S(cursor.tenant.as_str().into()))
        .with("model_id", Value::S(cursor.model_id.as_str().into()))
        .with(
            "rolled_through",
            Value::number(cursor.rolled_through.timestamp()),
        );
    if let Some(through) = cursor.through {
        image.push("through", Value::number(through.timestamp()));
    }
    image.push("rolled_seq", Value::number(cursor.rolled_seq));
    image.push("exported_seq", Value::number(cursor.exported_seq));
    image
}

impl DynamoRollupStore {
    /// Moves a cursor's `rolled_through` forward to `to` (an `UpdateItem` that never
    /// moves it back), creating the cursor with its ids.
    async fn move_rolled_through(
        &self,
        key: Item,
        to: DateTime<Utc>,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_not_exists(rolled_through) OR rolled_through < :to")
            .update_expression("SET rolled_through = :to, tenant_id = :tenant, model_id = :model")
            .expression_attribute_values(":to", attr::n(to.timestamp()))
            .expression_attribute_values(":tenant", attr::s(tenant.as_str()))
            .expression_attribute_values(":model", attr::s(model_id.as_str()))
            .send()
            .await;
        // A failed condition: the cursor is already at or past `to`.
        conditional(result, "move export cursor").map(|_| ())
    }
}

impl ExportCursors for DynamoRollupStore {
    async fn note_rolled(
        &self,
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> StoreResult<()> {
        let ModelRef { tenant, model_id } = model;
        for exporter in exporters {
            self.move_rolled_through(
                cursor_key(exporter, tenant, model_id),
                rolled_through,
                tenant,
                model_id,
            )
            .await?;
            // After the move: a run that dies in between still lags on `through`.
            request::update(
                &self.client,
                &self.table,
                cursor_key(exporter, tenant, model_id),
                "ADD rolled_seq :one",
            )
            .expression_attribute_values(":one", attr::n(1))
            .send()
            .await
            .map_err(|e| unavailable("note roll-up", e))?;
        }
        Ok(())
    }

    async fn lagging_cursors(
        &self,
        exporter: &str,
        shards: Range<u32>,
    ) -> StoreResult<Vec<ExportCursor>> {
        let items = query_shards(
            shards,
            |shard| {
                partition_query(&self.client, &self.table, cursors_pk(exporter, shard))
                    .filter_expression(
                        "attribute_not_exists(through) OR through < rolled_through \
                         OR (attribute_exists(rolled_seq) AND attribute_not_exists(exported_seq)) \
                         OR exported_seq < rolled_seq",
                    )
            },
            "read export cursors",
        )
        .await?;
        items.iter().map(export_cursor).collect()
    }

    async fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> StoreResult<()> {
        let result = request::update(
            &self.client,
            &self.table,
            cursor_key(exporter, &cursor.tenant, &cursor.model_id),
            "SET through = :to, exported_seq = :seq",
        )
        .condition_expression(
            "(attribute_not_exists(through) OR through <= :to) \
                 AND (attribute_not_exists(exported_seq) OR exported_seq <= :seq)",
        )
        .expression_attribute_values(":to", attr::n(through.timestamp()))
        .expression_attribute_values(":seq", attr::n(cursor.rolled_seq))
        .send()
        .await;
        // A failed condition: a delivery further on was recorded already.
        conditional(result, "advance export cursor").map(|_| ())
    }
}

/// Reads an export cursor item.
fn export_cursor(item: &Item) -> StoreResult<ExportCursor> {
    attr::read(item, || {
        let (tenant, model_id) = attr::ids(item)?;
        Ok(ExportCursor {
            tenant,
            model_id,
            through: attr::optional_time_s(item, "through")?,
            rolled_through: attr::optional_time_s(item, "rolled_through")?
                .ok_or("attribute rolled_through is missing")?,
            rolled_seq: attr::optional_count(item, "rolled_seq")?,
            exported_seq: attr::optional_count(item, "exported_seq")?,
        })
    })
}

#[cfg(test)]
mod tests;

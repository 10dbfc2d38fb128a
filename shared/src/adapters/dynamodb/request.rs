//! Running requests the same way everywhere: a `Query` read whole through the SDK's
//! paginator (alone, or one per shard partition), an `UpdateItem` of one key, and a
//! `TransactWriteItems` whose failed condition is an answer; SDK errors mapped once, by
//! [`unavailable`] and [`transacted`].

use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::TransactWriteItem;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::attr::{self, Item};
use super::{transacted, unavailable};
use crate::error::{StoreError, StoreResult};

/// A strongly consistent `Query` of the partition `pk` of `table` (key condition
/// `pk = :pk`), to narrow further (filter, projection, order, limit) before sending.
pub fn partition_query(client: &Client, table: &str, pk: impl Into<String>) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", attr::s(pk))
        .consistent_read(true)
}

/// An `UpdateItem` of the item `key` of `table` applying `expression`, to complete
/// (condition, values, return values) before sending.
pub fn update(
    client: &Client,
    table: &str,
    key: Item,
    expression: impl Into<String>,
) -> UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
}

/// A [`partition_query`] of the sort keys that begin with `prefix`.
pub fn prefix_query(
    client: &Client,
    table: &str,
    pk: impl Into<String>,
    prefix: impl Into<String>,
) -> QueryFluentBuilder {
    partition_query(client, table, pk)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":prefix", attr::s(prefix))
}

/// Every item `query` matches, over all its pages (one request per 1 MB page); the
/// error mapped by [`unavailable`] for `operation`.
pub async fn query_all(
    query: QueryFluentBuilder,
    operation: &'static str,
) -> StoreResult<Vec<Item>> {
    query
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable(operation, e))
}

/// How many shard partitions a [`query_shards`] reads at once: a run owns at most the
/// 32 shards, so eight in flight read them all in four rounds of requests rather than
/// 32 in a row, without sending all 32 to the table at once.
const SHARD_QUERIES_IN_FLIGHT: usize = 8;

/// Every item of the queries `query_of(shard)` over `shards`, read
/// [`SHARD_QUERIES_IN_FLIGHT`] at a time, in no particular order; the first error,
/// mapped by [`unavailable`] for `operation`, fails the whole read.
pub async fn query_shards(
    shards: Range<u32>,
    query_of: impl Fn(u32) -> QueryFluentBuilder,
    operation: &'static str,
) -> StoreResult<Vec<Item>> {
    let pages: Vec<Vec<Item>> = stream::iter(shards)
        .map(|shard| query_all(query_of(shard), operation))
        .buffer_unordered(SHARD_QUERIES_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Writes `items` in one `TransactWriteItems`: `Ok(false)` when a condition failed
/// (see [`transacted`]).
pub async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
    operation: &'static str,
) -> StoreResult<bool> {
    let result = client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await;
    transacted(result, operation)
}

/// The error for a transaction item the SDK refused to build for `operation` (a
/// missing required field: a bug).
pub fn build_error(operation: &'static str) -> impl Fn(BuildError) -> StoreError {
    move |e| StoreError::Internal {
        operation,
        source: Box::new(e),
    }
}

//! Partial aggregates and their pending marks in the partials table.
//!
//! Partial: `pk = "P#<tenant>#<model>#<minute epoch s>"`, `sk = "B#<batch_id>"`;
//! attributes `state` (B, the serialized window state), `tenant_id`, `model_id`,
//! `minute` (N, epoch s), `written_at` (N, epoch ms), `expires_at` (TTL, epoch s).
//! The minute in the partition key spreads a hot model's writes over partitions.
//!
//! Batch claim and receipt: `pk = "BATCH#<tenant>#<model>#<batch_id>"`,
//! `sk = "RECEIPT"`; `digest` (S, the content's digest, set by the first attempt),
//! `receipt` (B, the answer given in its compact stored form, once every write
//! succeeded; S with the answer's JSON on items stored before), `expires_at` like the
//! partials. A batch refused after its claim (a task conflict) deletes the
//! claim on condition that the digest is its own and no receipt is stored.
//!
//! Pending mark: `pk = "PENDING#<shard>"` (the model's shard, `domain::shard`), `sk = "<tenant>#<model>#<minute epoch s>"`; `seq` (N)
//! is incremented on every mark, so aggregation can delete a mark only if no partial
//! arrived while it was rolling that minute.

use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, TimeDelta, Utc};

use super::attr::{self, Item};
use super::request::{self, partition_query, query_all, query_shards};
use super::{conditional, unavailable};
use crate::adapters::limits::{Image, Value};
use crate::domain::WindowState;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::shard::shard_of;
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    BatchClaim, BatchKey, PartialKey, PartialStore, PendingMinute, PendingWork, PredictionCount,
    PutOutcome,
};

/// [`PartialStore`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoPartialStore {
    client: Client,
    table: String,
    retention: TimeDelta,
}

impl DynamoPartialStore {
    /// Partials in `table`, expiring `retention` after their minute unless aggregation
    /// shortens it.
    pub fn new(client: Client, table: impl Into<String>, retention: TimeDelta) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }
}

/// The partition key of a (tenant, model, minute)'s partials.
pub fn partial_pk(tenant: &TenantId, model_id: &ModelId, minute: DateTime<Utc>) -> String {
    format!("P#{tenant}#{model_id}#{}", minute.timestamp())
}

/// The item of a partial written at `written_at`, expiring at `expires`.
pub(crate) fn partial_image<'a>(
    key: &'a PartialKey,
    state: &WindowState,
    expires: DateTime<Utc>,
    written_at: DateTime<Utc>,
) -> Image<'a> {
    Image::default()
        .with(
            "pk",
            Value::S(partial_pk(&key.tenant, &key.model_id, key.minute).into()),
        )
        .with("sk", Value::S(format!("B#{}", key.batch_id).into()))
        .with("state", Value::B(state.to_bytes().into()))
        .with("tenant_id", Value::S(key.tenant.as_str().into()))
        .with("model_id", Value::S(key.model_id.as_str().into()))
        .with("minute", Value::number(key.minute.timestamp()))
        .with("batch_id", Value::S(key.batch_id.as_str().into()))
        .with("expires_at", Value::number(expires.timestamp()))
        .with("written_at", Value::millis(written_at))
}

/// The partition and sort key of a (tenant, model, minute)'s pending mark.
fn pending_pk_sk(tenant: &TenantId, model_id: &ModelId, minute: DateTime<Utc>) -> [String; 2] {
    [
        pending_pk(shard_of(tenant, model_id)),
        format!("{tenant}#{model_id}#{}", minute.timestamp()),
    ]
}

/// The partition of a shard's pending marks.
fn pending_pk(shard: u32) -> String {
    format!("PENDING#{shard:02}")
}

/// The key of a (tenant, model, minute)'s pending mark.
fn pending_key(tenant: &TenantId, model_id: &ModelId, minute: DateTime<Utc>) -> Item {
    let [pk, sk] = pending_pk_sk(tenant, model_id, minute);
    attr::key(pk, sk)
}

/// The pending mark of a (tenant, model, minute) after `seq` marks.
pub(crate) fn pending_image<'a>(
    tenant: &'a TenantId,
    model_id: &'a ModelId,
    minute: DateTime<Utc>,
    seq: u64,
) -> Image<'a> {
    let [pk, sk] = pending_pk_sk(tenant, model_id, minute);
    Image::default()
        .with("pk", Value::S(pk.into()))
        .with("sk", Value::S(sk.into()))
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.as_str().into()))
        .with("minute", Value::number(minute.timestamp()))
        .with("seq", Value::number(seq))
}

/// The sort key of a batch claim and receipt.
const RECEIPT_SK: &str = "RECEIPT";

/// The partition key of a batch's claim and receipt.
fn batch_pk(batch: &BatchKey) -> String {
    format!(
        "BATCH#{}#{}#{}",
        batch.tenant, batch.model_id, batch.batch_id
    )
}

/// How long a tenant's per-minute prediction count is kept (for an operator to read).
const QUOTA_COUNT_KEPT: TimeDelta = TimeDelta::days(1);

/// The key of `tenant`'s prediction count for the arrival minute `minute`.
fn quota_key(tenant: &TenantId, minute: DateTime<Utc>) -> Item {
    attr::key(
        format!("QUOTA#{tenant}#{}", minute.timestamp()),
        "PREDICTIONS",
    )
}

/// The key of a batch's claim and receipt.
fn receipt_key(batch: &BatchKey) -> Item {
    attr::key(batch_pk(batch), RECEIPT_SK)
}

/// The item of a batch claimed for `digest`, with its stored `receipt` once written,
/// expiring at `expires`.
pub(crate) fn batch_image<'a>(
    batch: &BatchKey,
    digest: &'a str,
    receipt: Option<&'a [u8]>,
    expires: DateTime<Utc>,
) -> Image<'a> {
    let mut image = Image::default()
        .with("pk", Value::S(batch_pk(batch).into()))
        .with("sk", Value::S(RECEIPT_SK.into()))
        .with("digest", Value::S(digest.into()))
        .with("expires_at", Value::number(expires.timestamp()));
    if let Some(receipt) = receipt {
        image.push("receipt", Value::B(receipt.into()));
    }
    image
}

impl PartialStore for DynamoPartialStore {
    async fn claim_batch(&self, batch: &BatchKey, digest: &str) -> StoreResult<BatchClaim> {
        let expires = Utc::now() + self.retention;
        // A receipt stored before digests were kept takes this one: it is a retry.
        let claim = "SET digest = if_not_exists(digest, :digest), \
                     expires_at = if_not_exists(expires_at, :expires)";
        let output = request::update(&self.client, &self.table, receipt_key(batch), claim)
            .expression_attribute_values(":digest", attr::s(digest))
            .expression_attribute_values(":expires", attr::n(expires.timestamp()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| unavailable("claim batch", e))?;
        let item = output.attributes.unwrap_or_default();
        let corrupt = |reason| StoreError::Corrupt {
            key: batch_pk(batch),
            reason,
        };
        if attr::string(&item, "digest").map_err(corrupt)? != digest {
            return Ok(BatchClaim::Conflict);
        }
        match item.get("receipt") {
            None => Ok(BatchClaim::Proceed),
            Some(AttributeValue::B(stored)) => Ok(BatchClaim::Stored(stored.clone().into_inner())),
            // Receipts stored before the compact form: the answer's JSON.
            Some(AttributeValue::S(json)) => Ok(BatchClaim::Stored(json.clone().into_bytes())),
            Some(_) => Err(corrupt(
                "attribute receipt is neither binary nor a string".into(),
            )),
        }
    }

    async fn release_batch(&self, batch: &BatchKey, digest: &str) -> StoreResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(receipt_key(batch)))
            .condition_expression("digest = :digest AND attribute_not_exists(receipt)")
            .expression_attribute_values(":digest", attr::s(digest))
            .send()
            .await;
        // A failed condition: the claim is another content's, or the batch is stored.
        conditional(result, "release batch claim").map(drop)
    }

    async fn put_batch_receipt(&self, batch: &BatchKey, receipt: &[u8]) -> StoreResult<()> {
        let expires = Utc::now() + self.retention;
        request::update(
            &self.client,
            &self.table,
            receipt_key(batch),
            "SET receipt = :receipt, expires_at = :expires",
        )
        .expression_attribute_values(":receipt", AttributeValue::B(receipt.to_vec().into()))
        .expression_attribute_values(":expires", attr::n(expires.timestamp()))
        .send()
        .await
        .map_err(|e| unavailable("store batch receipt", e))?;
        Ok(())
    }

    async fn put_partial(&self, key: &PartialKey, state: &WindowState) -> StoreResult<PutOutcome> {
        let item = attr::item(partial_image(
            key,
            state,
            key.minute + self.retention,
            Utc::now(),
        ));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(if conditional(result, "store partial aggregate")? {
            PutOutcome::Written
        } else {
            PutOutcome::AlreadyPresent
        })
    }

    async fn mark_pending(&self, key: &PartialKey) -> StoreResult<()> {
        request::update(
            &self.client,
            &self.table,
            pending_key(&key.tenant, &key.model_id, key.minute),
            "SET tenant_id = :tenant, model_id = :model, #minute = :minute ADD seq :one",
        )
        // MINUTE is a DynamoDB reserved word.
        .expression_attribute_names("#minute", "minute")
        .expression_attribute_values(":tenant", attr::s(key.tenant.as_str()))
        .expression_attribute_values(":model", attr::s(key.model_id.as_str()))
        .expression_attribute_values(":minute", attr::n(key.minute.timestamp()))
        .expression_attribute_values(":one", attr::n(1))
        .send()
        .await
        .map_err(|e| unavailable("mark minute pending", e))?;
        Ok(())
    }

    async fn count_predictions(&self, count: &PredictionCount<'_>) -> StoreResult<bool> {
        // Room for the batch: at most `limit − predictions` counted before it (negative
        // when the batch alone is over: then only a first count could pass, so refuse
        // here).
        let Some(room) = count.limit.checked_sub(count.predictions) else {
            return Ok(false);
        };
        let minute = count.minute;
        let result = request::update(
            &self.client,
            &self.table,
            quota_key(count.tenant, minute),
            "ADD predictions :count SET expires_at = if_not_exists(expires_at, :expires)",
        )
        .condition_expression("attribute_not_exists(predictions) OR predictions <= :room")
        .expression_attribute_values(":count", attr::n(count.predictions))
        .expression_attribute_values(":room", attr::n(room))
        .expression_attribute_values(":expires", attr::n((minute + QUOTA_COUNT_KEPT).timestamp()))
        .send()
        .await;
        conditional(result, "count predictions")
    }
}

impl PendingWork for DynamoPartialStore {
    async fn pending_minutes(&self, shards: Range<u32>) -> StoreResult<Vec<PendingMinute>> {
        let items = query_shards(
            shards,
            |shard| partition_query(&self.client, &self.table, pending_pk(shard)),
            "read pending minutes",
        )
        .await?;
        items.iter().map(pending_minute).collect()
    }

    async fn partials_of(
        &self,
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> StoreResult<Vec<WindowState>> {
        let ModelRef { tenant, model_id } = model;
        let query = partition_query(
            &self.client,
            &self.table,
            partial_pk(tenant, model_id, minute),
        )
        .projection_expression("pk, sk, #state")
        .expression_attribute_names("#state", "state");
        let items = query_all(query, "read partials").await?;
        items
            .iter()
            .map(|item| {
                attr::read(item, || match item.get("state") {
                    Some(AttributeValue::B(state)) => WindowState::from_bytes(state.as_ref())
                        .map_err(|e| format!("attribute state: {e}")),
                    _ => Err("a partial has no binary state".to_owned()),
                })
            })
            .collect()
    }

    async fn settle(&self, pending: &PendingMinute) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(pending_key(
                &pending.tenant,
                &pending.model_id,
                pending.minute,
            )))
            .condition_expression("seq = :seq")
            .expression_attribute_values(":seq", attr::n(pending.seq))
            .send()
            .await;
        conditional(result, "settle pending minute")
    }
}

/// Reads a pending mark.
fn pending_minute(item: &Item) -> StoreResult<PendingMinute> {
    attr::read(item, || {
        let (tenant, model_id) = attr::ids(item)?;
        Ok(PendingMinute {
            tenant,
            model_id,
            minute: attr::optional_time_s(item, "minute")?.ok_or("attribute minute is missing")?,
            seq: attr::count(item, "seq")?,
        })
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
    use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::super::testing::{
        Seen, condition_failed, delete_rule, epoch_s, fast_retries, put_rule, seen, update_rule,
        updated,
    };
    use super::*;
    use crate::testing::{at, model, state_of_size, tenant};

    fn batch() -> BatchKey {
        BatchKey {
            tenant: tenant("t1"),
            model_id: model("m1"),
            batch_id: "b-1".into(),
        }
    }

    /// The store over a client whose UpdateItem answers with `attributes` (what the
    /// item holds after the update), checking that the claim sets the digest only if
    /// none is there.
    async fn claim_with(attributes: &[(&str, AttributeValue)]) -> StoreResult<BatchClaim> {
        let attributes: Item = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let rule = mock!(Client::update_item)
            .match_requests(|req| {
                req.update_expression()
                    .is_some_and(|e| e.contains("if_not_exists(digest, :digest)"))
                    && req
                        .expression_attribute_values()
                        .and_then(|v| v.get(":digest"))
                        == Some(&AttributeValue::S("d-1".into()))
                    && req.key().and_then(|k| k.get("pk"))
                        == Some(&AttributeValue::S("BATCH#t1#m1#b-1".into()))
            })
            .then_output(move || {
                UpdateItemOutput::builder()
                    .set_attributes(Some(attributes.clone()))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        DynamoPartialStore::new(client, "partials", TimeDelta::days(8))
            .claim_batch(&batch(), "d-1")
            .await
    }

    #[tokio::test]
    async fn a_claim_reads_what_the_id_holds() {
        let text = |s: &str| AttributeValue::S(s.to_owned());
        let stored = AttributeValue::B(vec![1, 2, 3].into());
        assert_eq!(
            claim_with(&[("digest", text("d-1"))]).await.expect("claim"),
            BatchClaim::Proceed
        );
        assert_eq!(
            claim_with(&[("digest", text("d-1")), ("receipt", stored.clone())])
                .await
                .expect("claim"),
            BatchClaim::Stored(vec![1, 2, 3])
        );
        assert_eq!(
            claim_with(&[("digest", text("d-1")), ("receipt", text("{}"))])
                .await
                .expect("a receipt stored as JSON before"),
            BatchClaim::Stored(b"{}".to_vec())
        );
        assert_eq!(
            claim_with(&[("digest", text("d-0")), ("receipt", stored)])
                .await
                .expect("claim"),
            BatchClaim::Conflict
        );
        let err = claim_with(&[]).await.expect_err("no digest");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let err = claim_with(&[
            ("digest", text("d-1")),
            ("receipt", AttributeValue::Bool(true)),
        ])
        .await
        .expect_err("not a receipt");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn claim_and_receipt_make_the_item_the_memory_store_sizes() {
        let requests = Seen::default();
        let rule = update_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let store = DynamoPartialStore::new(client, "partials", TimeDelta::days(8));
        // The mock answers without attributes: the claim reads a corrupt item.
        let _ = store.claim_batch(&batch(), "d-1").await;
        let receipt = vec![9_u8; 1_000];
        store
            .put_batch_receipt(&batch(), &receipt)
            .await
            .expect("stored");
        let item = updated(&seen(&requests));
        assert_eq!(
            item.get("receipt"),
            Some(&AttributeValue::B(receipt.clone().into())),
            "the compact form, as binary"
        );
        let expires = epoch_s(&item, "expires_at");
        assert_eq!(
            attr::item_size(&item),
            batch_image(&batch(), "d-1", Some(&receipt), expires).checked_size()
        );
    }

    fn partial_key() -> PartialKey {
        PartialKey {
            tenant: tenant("t1"),
            model_id: model("m1"),
            minute: at("2025-11-28T10:14:00Z"),
            batch_id: "b-1".into(),
        }
    }

    #[tokio::test]
    async fn a_partial_and_its_pending_mark_are_the_items_the_memory_store_sizes() {
        let (puts, updates) = (Seen::default(), Seen::default());
        let (put, update) = (put_rule(&puts), update_rule(&updates));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &update]);
        let store = DynamoPartialStore::new(client, "partials", TimeDelta::days(8));
        let key = partial_key();
        let state = state_of_size(5_000, key.minute);
        store.put_partial(&key, &state).await.expect("written");
        store.mark_pending(&key).await.expect("marked");

        let puts = seen(&puts);
        let item = puts[0].item().expect("item");
        let written_at = attr::time_ms(item, "written_at").expect("written_at");
        let expires = key.minute + TimeDelta::days(8);
        assert_eq!(
            attr::item_size(item),
            partial_image(&key, &state, expires, written_at).checked_size()
        );
        assert_eq!(
            attr::item_size(&updated(&seen(&updates))),
            pending_image(&key.tenant, &key.model_id, key.minute, 1).checked_size()
        );
    }

    #[tokio::test]
    async fn a_throttled_claim_is_unavailable() {
        let throttled = mock!(Client::update_item).then_error(|| {
            UpdateItemError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&throttled],
            fast_retries
        );
        let err = DynamoPartialStore::new(client, "partials", TimeDelta::days(8))
            .claim_batch(&batch(), "d-1")
            .await
            .expect_err("throttled");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert_eq!(throttled.num_calls(), 2, "the SDK retried");
    }

    #[tokio::test]
    async fn a_release_deletes_only_an_unfinished_claim_of_this_content() {
        let requests = Seen::default();
        let delete = delete_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&delete]);
        DynamoPartialStore::new(client, "partials", TimeDelta::days(8))
            .release_batch(&batch(), "d-1")
            .await
            .expect("released");
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            request.key().and_then(|k| k.get("pk")),
            Some(&AttributeValue::S("BATCH#t1#m1#b-1".into()))
        );
        assert_eq!(
            request.condition_expression(),
            Some("digest = :digest AND attribute_not_exists(receipt)")
        );
        assert_eq!(
            request
                .expression_attribute_values()
                .and_then(|v| v.get(":digest")),
            Some(&AttributeValue::S("d-1".into()))
        );

        let failed = mock!(Client::delete_item)
            .then_error(|| DeleteItemError::ConditionalCheckFailedException(condition_failed()));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&failed]);
        DynamoPartialStore::new(client, "partials", TimeDelta::days(8))
            .release_batch(&batch(), "d-1")
            .await
            .expect("a stored batch or another content's claim: nothing to release");
    }

    #[tokio::test]
    async fn a_prediction_count_is_added_only_while_it_fits_its_quota() {
        let requests = Seen::default();
        let update = update_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
        let store = DynamoPartialStore::new(client, "partials", TimeDelta::days(8));
        let tenant = tenant("t1");
        let count = |predictions| PredictionCount {
            tenant: &tenant,
            minute: at("2025-11-28T10:14:00Z"),
            predictions,
            limit: 100,
        };
        assert!(store.count_predictions(&count(40)).await.expect("counted"));
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            request.key().and_then(|k| k.get("pk")),
            Some(&AttributeValue::S("QUOTA#t1#1764324840".into()))
        );
        assert_eq!(
            request.condition_expression(),
            Some("attribute_not_exists(predictions) OR predictions <= :room")
        );
        let value = |name: &str| {
            request
                .expression_attribute_values()
                .and_then(|v| v.get(name))
                .cloned()
        };
        assert_eq!(value(":count"), Some(AttributeValue::N("40".into())));
        assert_eq!(value(":room"), Some(AttributeValue::N("60".into())));
        assert_eq!(
            value(":expires"),
            Some(AttributeValue::N("1764411240".into()))
        );

        // The condition failed: another batch used the room first.
        let failed = mock!(Client::update_item)
            .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed()));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&failed]);
        let store = DynamoPartialStore::new(client, "partials", TimeDelta::days(8));
        assert!(!store.count_predictions(&count(40)).await.expect("answered"));
        // A batch larger than the quota alone is refused without a request.
        assert!(
            !store
                .count_predictions(&count(101))
                .await
                .expect("answered")
        );
        assert_eq!(failed.num_calls(), 1);
    }

    #[test]
    fn keys_spread_by_minute_and_shard_stably() {
        let key = partial_key();
        assert_eq!(
            partial_pk(&key.tenant, &key.model_id, key.minute),
            "P#t1#m1#1764324840"
        );
        // The shard's hash is fixed (domain::shard): a change would orphan the marks.
        assert_eq!(
            pending_pk_sk(&key.tenant, &key.model_id, key.minute)[0],
            format!("PENDING#{:02}", 0x9b2d_b8f5_u32 % 32)
        );
    }
}

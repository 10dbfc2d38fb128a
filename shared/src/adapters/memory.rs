//! In-memory implementations of the storage ports, for unit tests and benchmarks.
//!
//! They keep DynamoDB's limits ([`crate::adapters::limits`]), so unit tests see what
//! production would: every item is sized from the same image the DynamoDB adapter
//! writes (`crate::adapters::dynamodb`'s item images), and what DynamoDB would refuse
//! as a `ValidationException` (an item over 400 KB, a number it cannot hold, a
//! transaction over its limits) is refused as [`StoreError::Internal`], as the
//! DynamoDB adapter reports it, with nothing changed. Reads are paged like the
//! DynamoDB adapter's: each store counts the `Query` (and `Scan`) round trips the same
//! reads would take there, one per partition queried and one more per 1 MB of items
//! read (`query_pages`), so a wrapper can charge a round trip per page. The adapters
//! write no `BatchWriteItem`s.

mod labels;
mod subscriptions;

pub use labels::MemoryLabelStore;
pub use subscriptions::{MemoryTopicSubscriptions, MemoryWebhookSender, RecordedDelivery};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::adapters::dynamodb::{
    BASELINE, CAPTURED, FILTERED_PAGE_ITEMS, RULES, TRENDS, batch_image, cursor_image,
    firing_image, history_image, model_image, partial_image, partition, partitions, pending_image,
    rollup_image, setting_item, settings_image, state_image, totals_image,
};
use crate::adapters::limits::{
    Image, LimitError, MAX_ITEM_BYTES, QUERY_PAGE_BYTES, check_transaction, query_pages,
};
use crate::domain::TenantQuotas;
use crate::domain::alerting::state::{AlertRecord, AlertState, RuleState, parse_alert_id};
use crate::domain::alerting::subscriptions::AlertSubscriptions;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::shard::shard_of;
use crate::domain::slice::{SegmentCaps, Slice};
use crate::domain::{
    CloudWatchMetrics, CounterDelta, CounterTotals, Datum, Granularity, ModelExport,
    OVERFLOW_BUCKET, Series, TimeSpan, WindowState, cloudwatch_data, cloudwatch_requests,
};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    AlertNotifier, AlertPage, AlertQuery, AlertStore, BatchClaim, BatchKey, ExportCursor,
    ExportCursors, KeptSegment, ModelRegistry, ModelSettings, ModelSettingsStore, ModelSighting,
    ModelVersion, PartialKey, PartialStore, PendingMinute, PendingWork, PredictionCount,
    PutOutcome, RegisteredModel, RegistryError, Rollup, RollupStore, SegmentSighting, SettingWrite,
};
use crate::ports::{
    ExportFailure, MetricDataWriter, MetricsExporter, QueueMessage, SeriesWriter, ShardQueue,
};

/// The TTL the memory stores size `expires_at` with: any retention the configuration
/// allows gives an epoch-seconds number of the same 10 digits.
const SIZING_RETENTION: TimeDelta = TimeDelta::days(400);

/// The size of `image`, or the error the DynamoDB adapter reports for DynamoDB's
/// refusal of it during `operation`.
fn checked(image: &Image<'_>, operation: &'static str) -> StoreResult<usize> {
    image.checked_size().map_err(|e| refused(operation, e))
}

/// The size of an item already stored (so within the limits).
fn size_of(image: &Image<'_>) -> usize {
    image.checked_size().unwrap_or(MAX_ITEM_BYTES)
}

/// A write DynamoDB would refuse as invalid: `Internal`, like the DynamoDB adapter's
/// mapping of a `ValidationException`.
fn refused(operation: &'static str, err: LimitError) -> StoreError {
    StoreError::Internal {
        operation,
        source: Box::new(err),
    }
}

/// Checks a transaction of items of the given sizes.
fn transaction(sizes: &[usize], operation: &'static str) -> StoreResult<()> {
    check_transaction(sizes).map_err(|e| refused(operation, e))
}

/// Locks `mutex`; a panic while holding it cannot leave a map half-updated.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `Query` and `Scan` round trips a store has answered.
#[derive(Debug, Default)]
struct Pages(AtomicU64);

impl Pages {
    /// Charges one query of items of these sizes, in the order read.
    fn charge(&self, sizes: impl IntoIterator<Item = usize>) {
        self.0.fetch_add(query_pages(sizes), Ordering::Relaxed);
    }

    fn read(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stored value with the size of its item.
#[derive(Debug, Clone)]
struct Stored<T> {
    value: T,
    size: usize,
}

/// A model's kept segment keys, each with its kept values per UTC day.
type SegmentsKept = BTreeMap<String, BTreeMap<DateTime<Utc>, BTreeSet<String>>>;

/// [`ModelRegistry`] in memory.
#[derive(Debug, Default)]
pub struct MemoryModelRegistry {
    models: Mutex<BTreeMap<(TenantId, ModelId), RegisteredModel>>,
    /// Kept versions per (tenant, model), by version.
    versions: Mutex<BTreeMap<(TenantId, ModelId), BTreeMap<String, ModelVersion>>>,
    /// Kept segments per (tenant, model): each kept key with its kept values per day.
    segments: Mutex<BTreeMap<(TenantId, ModelId), SegmentsKept>>,
    quotas: Mutex<BTreeMap<TenantId, TenantQuotas>>,
    pages: Pages,
}

impl MemoryModelRegistry {
    /// Adds or replaces a model.
    pub fn insert(&self, model: RegisteredModel) {
        self.lock()
            .insert((model.tenant.clone(), model.model_id.clone()), model);
    }

    /// Sets `tenant`'s quotas, as an operator does.
    pub fn set_quotas(&self, tenant: &TenantId, quotas: TenantQuotas) {
        lock(&self.quotas).insert(tenant.clone(), quotas);
    }

    /// `Query` and `Scan` round trips answered so far (the models table in DynamoDB
    /// also holds the settings items, which a scan reads too; these are not counted).
    pub fn query_pages(&self) -> u64 {
        self.pages.read()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(TenantId, ModelId), RegisteredModel>> {
        lock(&self.models)
    }
}

impl ModelRegistry for MemoryModelRegistry {
    async fn record_sighting(
        &self,
        sighting: &ModelSighting,
        max_models: u64,
    ) -> Result<(), RegistryError> {
        let mut models = self.lock();
        let key = (sighting.tenant.clone(), sighting.model_id.clone());
        let mut model = match models.get(&key) {
            Some(model) => model.clone(),
            None => {
                let registered = models.keys().filter(|(t, _)| t == &sighting.tenant).count();
                if registered as u64 >= max_models {
                    return Err(RegistryError::OverQuota { limit: max_models });
                }
                RegisteredModel {
                    tenant: sighting.tenant.clone(),
                    model_id: sighting.model_id.clone(),
                    task: sighting.task,
                    first_seen: sighting.first,
                    last_seen: sighting.last,
                    latest_version: None,
                }
            }
        };
        if model.task != sighting.task {
            return Err(RegistryError::TaskConflict {
                registered: model.task,
                requested: sighting.task,
            });
        }
        model.first_seen = model.first_seen.min(sighting.first);
        if sighting.last >= model.last_seen {
            model.last_seen = sighting.last;
            if sighting.version.is_some() {
                model.latest_version.clone_from(&sighting.version);
            }
        }
        checked(&model_image(&model), "register model")?;
        models.insert(key, model);
        Ok(())
    }

    async fn record_version(
        &self,
        sighting: &ModelSighting,
        max_versions: u64,
    ) -> StoreResult<Option<Slice>> {
        let Some(version) = &sighting.version else {
            return Ok(None);
        };
        let mut versions = lock(&self.versions);
        let kept = versions
            .entry((sighting.tenant.clone(), sighting.model_id.clone()))
            .or_default();
        if !kept.contains_key(version) && kept.len() as u64 >= max_versions {
            return Ok(Some(Slice::version(OVERFLOW_BUCKET)));
        }
        let entry = kept.entry(version.clone()).or_insert_with(|| ModelVersion {
            model_version: version.clone(),
            first_seen: sighting.first,
            last_seen: sighting.last,
        });
        entry.first_seen = entry.first_seen.min(sighting.first);
        entry.last_seen = entry.last_seen.max(sighting.last);
        Ok(Some(Slice::version(version.as_str())))
    }

    async fn record_segment(
        &self,
        sighting: SegmentSighting<'_>,
        caps: SegmentCaps,
    ) -> StoreResult<Slice> {
        let SegmentSighting {
            model,
            key,
            value,
            day,
        } = sighting;
        let mut segments = lock(&self.segments);
        let kept = segments
            .entry((model.tenant.clone(), model.model_id.clone()))
            .or_default();
        if !kept.contains_key(key) && kept.len() as u64 >= caps.keys {
            return Ok(Slice::segment(OVERFLOW_BUCKET, OVERFLOW_BUCKET));
        }
        let values = kept
            .entry(key.to_owned())
            .or_default()
            .entry(day)
            .or_default();
        if !values.contains(value) && values.len() as u64 >= caps.values_per_day {
            return Ok(Slice::segment(key, OVERFLOW_BUCKET));
        }
        values.insert(value.to_owned());
        Ok(Slice::segment(key, value))
    }

    async fn segments(
        &self,
        model: ModelRef<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<KeptSegment>> {
        let segments = lock(&self.segments);
        let kept = segments.get(&(model.tenant.clone(), model.model_id.clone()));
        Ok(kept
            .into_iter()
            .flatten()
            .map(|(key, days)| {
                let mut values: BTreeMap<&String, DateTime<Utc>> = BTreeMap::new();
                for (day, kept) in days.range(since..) {
                    for value in kept {
                        values.insert(value, *day);
                    }
                }
                KeptSegment {
                    key: key.clone(),
                    values: values
                        .into_iter()
                        .map(|(v, day)| (v.clone(), day))
                        .collect(),
                }
            })
            .collect())
    }

    async fn versions(&self, model: ModelRef<'_>) -> StoreResult<Vec<ModelVersion>> {
        let ModelRef { tenant, model_id } = model;
        let versions = lock(&self.versions);
        let kept = versions.get(&(tenant.clone(), model_id.clone()));
        Ok(kept.into_iter().flat_map(|k| k.values().cloned()).collect())
    }

    async fn list_models(&self, tenant: &TenantId) -> StoreResult<Vec<RegisteredModel>> {
        let models: Vec<RegisteredModel> = self
            .lock()
            .values()
            .filter(|m| &m.tenant == tenant)
            .cloned()
            .collect();
        self.pages
            .charge(models.iter().map(|m| size_of(&model_image(m))));
        Ok(models)
    }

    async fn model(&self, model: ModelRef<'_>) -> StoreResult<Option<RegisteredModel>> {
        let ModelRef { tenant, model_id } = model;
        Ok(self
            .lock()
            .get(&(tenant.clone(), model_id.clone()))
            .cloned())
    }

    async fn tenant_quotas(&self, tenant: &TenantId) -> StoreResult<TenantQuotas> {
        Ok(lock(&self.quotas).get(tenant).copied().unwrap_or_default())
    }

    async fn active_models(
        &self,
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> StoreResult<Vec<RegisteredModel>> {
        let models = self.lock();
        // One index query per shard, reading the shard's models seen since.
        let mut by_shard: BTreeMap<u32, Vec<&RegisteredModel>> =
            shards.clone().map(|shard| (shard, Vec::new())).collect();
        for model in models.values().filter(|m| m.last_seen >= since) {
            let shard = shard_of(&model.tenant, &model.model_id);
            if shards.contains(&shard) {
                by_shard.entry(shard).or_default().push(model);
            }
        }
        for of_shard in by_shard.values() {
            self.pages
                .charge(of_shard.iter().map(|m| size_of(&model_image(m))));
        }
        Ok(by_shard.into_values().flatten().cloned().collect())
    }
}

/// [`PartialStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryPartialStore {
    partials: Mutex<BTreeMap<PartialKeyOrd, Stored<WindowState>>>,
    /// Predictions counted per (tenant, arrival minute), for the quota.
    counted: Mutex<BTreeMap<(TenantId, DateTime<Utc>), u64>>,
    pending: Mutex<BTreeMap<MinuteKey, u64>>,
    /// Per batch: the claimed content digest, and the receipt once stored.
    receipts: Mutex<BTreeMap<BatchKey, Claim>>,
    pages: Pages,
}

/// A batch's claimed content digest, and its stored receipt once written.
type Claim = (String, Option<Vec<u8>>);

/// A (tenant, model, minute).
type MinuteKey = (TenantId, ModelId, DateTime<Utc>);

/// A [`PartialKey`] as an ordered tuple.
type PartialKeyOrd = (TenantId, ModelId, DateTime<Utc>, String);

fn ordered(key: &PartialKey) -> PartialKeyOrd {
    (
        key.tenant.clone(),
        key.model_id.clone(),
        key.minute,
        key.batch_id.clone(),
    )
}

impl MemoryPartialStore {
    /// Every stored partial, in key order.
    pub fn partials(&self) -> Vec<(PartialKey, WindowState)> {
        lock(&self.partials)
            .iter()
            .map(|((tenant, model_id, minute, batch_id), state)| {
                (
                    PartialKey {
                        tenant: tenant.clone(),
                        model_id: model_id.clone(),
                        minute: *minute,
                        batch_id: batch_id.clone(),
                    },
                    state.value.clone(),
                )
            })
            .collect()
    }

    /// `Query` round trips answered so far.
    pub fn query_pages(&self) -> u64 {
        self.pages.read()
    }

    /// Every batch claim: its key, the content digest it holds, and whether its receipt
    /// is stored.
    pub fn claims(&self) -> Vec<(BatchKey, String, bool)> {
        lock(&self.receipts)
            .iter()
            .map(|(key, (digest, receipt))| (key.clone(), digest.clone(), receipt.is_some()))
            .collect()
    }
}

impl PartialStore for MemoryPartialStore {
    async fn claim_batch(&self, batch: &BatchKey, digest: &str) -> StoreResult<BatchClaim> {
        let mut receipts = lock(&self.receipts);
        if !receipts.contains_key(batch) {
            let expires = Utc::now() + SIZING_RETENTION;
            checked(&batch_image(batch, digest, None, expires), "claim batch")?;
            receipts.insert(batch.clone(), (digest.to_owned(), None));
        }
        Ok(match receipts.get(batch) {
            Some((claimed, _)) if claimed != digest => BatchClaim::Conflict,
            Some((_, Some(receipt))) => BatchClaim::Stored(receipt.clone()),
            _ => BatchClaim::Proceed,
        })
    }

    async fn release_batch(&self, batch: &BatchKey, digest: &str) -> StoreResult<()> {
        let mut receipts = lock(&self.receipts);
        if receipts
            .get(batch)
            .is_some_and(|(claimed, receipt)| claimed == digest && receipt.is_none())
        {
            receipts.remove(batch);
        }
        Ok(())
    }

    async fn put_batch_receipt(&self, batch: &BatchKey, receipt: &[u8]) -> StoreResult<()> {
        const OPERATION: &str = "store batch receipt";
        let mut receipts = lock(&self.receipts);
        let Some((digest, stored)) = receipts.get_mut(batch) else {
            return Err(StoreError::Internal {
                operation: OPERATION,
                source: "the batch was not claimed".into(),
            });
        };
        let expires = Utc::now() + SIZING_RETENTION;
        checked(
            &batch_image(batch, digest, Some(receipt), expires),
            OPERATION,
        )?;
        *stored = Some(receipt.to_vec());
        Ok(())
    }

    async fn put_partial(&self, key: &PartialKey, state: &WindowState) -> StoreResult<PutOutcome> {
        let mut partials = lock(&self.partials);
        let ordered_key = ordered(key);
        if partials.contains_key(&ordered_key) {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let image = partial_image(key, state, key.minute + SIZING_RETENTION, Utc::now());
        let size = checked(&image, "store partial aggregate")?;
        partials.insert(
            ordered_key,
            Stored {
                value: state.clone(),
                size,
            },
        );
        Ok(PutOutcome::Written)
    }

    async fn mark_pending(&self, key: &PartialKey) -> StoreResult<()> {
        let mut marks = lock(&self.pending);
        let seq = marks
            .entry((key.tenant.clone(), key.model_id.clone(), key.minute))
            .or_default();
        let image = pending_image(&key.tenant, &key.model_id, key.minute, *seq + 1);
        checked(&image, "mark minute pending")?;
        *seq += 1;
        Ok(())
    }

    async fn count_predictions(&self, count: &PredictionCount<'_>) -> StoreResult<bool> {
        let mut counted = lock(&self.counted);
        let used = counted
            .entry((count.tenant.clone(), count.minute))
            .or_default();
        let total = used.checked_add(count.predictions);
        let fits = total.is_some_and(|total| total <= count.limit);
        if let (true, Some(total)) = (fits, total) {
            *used = total;
        }
        Ok(fits)
    }
}

impl PendingWork for MemoryPartialStore {
    async fn pending_minutes(&self, shards: Range<u32>) -> StoreResult<Vec<PendingMinute>> {
        let marks = lock(&self.pending);
        let in_shards: Vec<(&MinuteKey, &u64)> = marks
            .iter()
            .filter(|((tenant, model_id, _), _)| shards.contains(&shard_of(tenant, model_id)))
            .collect();
        // One query per shard, as the DynamoDB adapter reads them.
        let mut by_shard: BTreeMap<u32, Vec<usize>> =
            shards.clone().map(|shard| (shard, Vec::new())).collect();
        for ((tenant, model_id, minute), seq) in &in_shards {
            by_shard
                .entry(shard_of(tenant, model_id))
                .or_default()
                .push(size_of(&pending_image(tenant, model_id, *minute, **seq)));
        }
        for sizes in by_shard.into_values() {
            self.pages.charge(sizes);
        }
        Ok(in_shards
            .into_iter()
            .map(|((tenant, model_id, minute), seq)| PendingMinute {
                tenant: tenant.clone(),
                model_id: model_id.clone(),
                minute: *minute,
                seq: *seq,
            })
            .collect())
    }

    async fn partials_of(
        &self,
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> StoreResult<Vec<WindowState>> {
        let ModelRef { tenant, model_id } = model;
        let partials = lock(&self.partials);
        // The keys of this minute: batch ids from the empty string up to the next minute.
        let key = |at| (tenant.clone(), model_id.clone(), at, String::new());
        let next = minute + Granularity::Minute.length();
        let found: Vec<&Stored<WindowState>> = partials
            .range(key(minute)..key(next))
            .map(|(_, state)| state)
            .collect();
        self.pages.charge(found.iter().map(|state| state.size));
        Ok(found.into_iter().map(|state| state.value.clone()).collect())
    }

    async fn settle(&self, pending: &PendingMinute) -> StoreResult<bool> {
        let mut marks = lock(&self.pending);
        let key = (
            pending.tenant.clone(),
            pending.model_id.clone(),
            pending.minute,
        );
        if marks.get(&key) == Some(&pending.seq) {
            marks.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The key of a stored rollup.
type RollupKey = (TenantId, ModelId, Granularity, DateTime<Utc>);

/// [`RollupStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryRollupStore {
    rollups: Mutex<BTreeMap<RollupKey, Stored<Rollup>>>,
    totals: Mutex<BTreeMap<(TenantId, ModelId), CounterTotals>>,
    cursors: Mutex<BTreeMap<(String, TenantId, ModelId), ExportCursor>>,
    pages: Pages,
}

fn rollup_key(rollup: &Rollup) -> RollupKey {
    (
        rollup.tenant.clone(),
        rollup.model_id.clone(),
        rollup.granularity,
        rollup.start,
    )
}

/// The size of the item of `rollup`, checked.
fn rollup_size(rollup: &Rollup, operation: &'static str) -> StoreResult<usize> {
    checked(
        &rollup_image(rollup, rollup.start + SIZING_RETENTION),
        operation,
    )
}

impl MemoryRollupStore {
    /// Every stored rollup, in key order.
    pub fn all(&self) -> Vec<Rollup> {
        lock(&self.rollups)
            .values()
            .map(|r| r.value.clone())
            .collect()
    }

    /// `Query` round trips answered so far.
    pub fn query_pages(&self) -> u64 {
        self.pages.read()
    }

    /// Stores `cursor` of `exporter` if DynamoDB would.
    fn store_cursor(
        cursors: &mut BTreeMap<(String, TenantId, ModelId), ExportCursor>,
        exporter: &str,
        cursor: ExportCursor,
    ) -> StoreResult<()> {
        checked(&cursor_image(exporter, &cursor), "move export cursor")?;
        cursors.insert(
            (
                exporter.to_owned(),
                cursor.tenant.clone(),
                cursor.model_id.clone(),
            ),
            cursor,
        );
        Ok(())
    }
}

impl RollupStore for MemoryRollupStore {
    async fn rollups(
        &self,
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> StoreResult<Vec<Rollup>> {
        if span.is_empty() {
            return Ok(Vec::new());
        }
        let ModelRef { tenant, model_id } = model;
        let key = |start| (tenant.clone(), model_id.clone(), granularity, start);
        let rollups = lock(&self.rollups);
        let found: Vec<&Stored<Rollup>> = rollups
            .range(key(span.start)..key(span.end))
            .map(|(_, rollup)| rollup)
            .collect();
        // One query per partition the window touches, as the DynamoDB adapter reads.
        let mut by_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for rollup in &found {
            by_partition
                .entry(partition(model, granularity, rollup.value.start))
                .or_default()
                .push(rollup.size);
        }
        for pk in partitions(model, granularity, span) {
            self.pages
                .charge(by_partition.remove(&pk).unwrap_or_default());
        }
        Ok(found.into_iter().map(|r| r.value.clone()).collect())
    }

    async fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> StoreResult<bool> {
        const OPERATION: &str = "write minute rollup";
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).map(|r| r.value.rev) != previous_rev {
            return Ok(false);
        }
        let mut totals = lock(&self.totals);
        let model = (rollup.tenant.clone(), rollup.model_id.clone());
        let mut total = totals.get(&model).cloned().unwrap_or_default();
        let add = &delta.add;
        if !add.named_error_types.is_empty()
            && total.named_error_types.len() != delta.named_error_types_read
        {
            return Ok(false);
        }
        total.ok = total.ok.saturating_add(add.ok);
        total.errors = total.errors.saturating_add(add.errors);
        total.latency_sum_us = total.latency_sum_us.saturating_add(add.latency_sum_us);
        for (error_type, count) in &add.errors_by_type {
            let counter = total.errors_by_type.entry(error_type.clone()).or_default();
            *counter = counter.saturating_add(*count);
        }
        total
            .named_error_types
            .extend(add.named_error_types.iter().cloned());
        let size = rollup_size(rollup, OPERATION)?;
        let sizes = [
            size,
            checked(
                &totals_image(&rollup.tenant, &rollup.model_id, &total),
                OPERATION,
            )?,
        ];
        transaction(&sizes, OPERATION)?;
        rollups.insert(
            key,
            Stored {
                value: rollup.clone(),
                size,
            },
        );
        totals.insert(model, total);
        Ok(true)
    }

    async fn put_rollup(&self, rollup: &Rollup) -> StoreResult<bool> {
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).is_some_and(|r| r.value.rev >= rollup.rev) {
            return Ok(false);
        }
        let size = rollup_size(rollup, "write rollup")?;
        rollups.insert(
            key,
            Stored {
                value: rollup.clone(),
                size,
            },
        );
        Ok(true)
    }

    async fn counter_totals(&self, model: ModelRef<'_>) -> StoreResult<CounterTotals> {
        let ModelRef { tenant, model_id } = model;
        Ok(lock(&self.totals)
            .get(&(tenant.clone(), model_id.clone()))
            .cloned()
            .unwrap_or_default())
    }
}

impl ExportCursors for MemoryRollupStore {
    async fn note_rolled(
        &self,
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> StoreResult<()> {
        let ModelRef { tenant, model_id } = model;
        let mut cursors = lock(&self.cursors);
        for exporter in exporters {
            let key = ((*exporter).to_owned(), tenant.clone(), model_id.clone());
            let mut cursor = cursors.get(&key).cloned().unwrap_or_else(|| ExportCursor {
                tenant: tenant.clone(),
                model_id: model_id.clone(),
                through: None,
                rolled_through,
                rolled_seq: 0,
                exported_seq: 0,
            });
            cursor.rolled_through = cursor.rolled_through.max(rolled_through);
            cursor.rolled_seq += 1;
            Self::store_cursor(&mut cursors, exporter, cursor)?;
        }
        Ok(())
    }

    async fn lagging_cursors(
        &self,
        exporter: &str,
        shards: Range<u32>,
    ) -> StoreResult<Vec<ExportCursor>> {
        let cursors = lock(&self.cursors);
        let mut by_shard: BTreeMap<u32, Vec<&ExportCursor>> =
            shards.clone().map(|shard| (shard, Vec::new())).collect();
        for ((e, tenant, model_id), cursor) in cursors.iter() {
            let shard = shard_of(tenant, model_id);
            if e == exporter && shards.contains(&shard) {
                by_shard.entry(shard).or_default().push(cursor);
            }
        }
        // One query per shard; the filter applies after the read: every cursor of the
        // shard is read.
        for of_shard in by_shard.values() {
            self.pages
                .charge(of_shard.iter().map(|c| size_of(&cursor_image(exporter, c))));
        }
        Ok(by_shard
            .into_values()
            .flatten()
            .filter(|c| c.lags())
            .cloned()
            .collect())
    }

    async fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> StoreResult<()> {
        let key = (
            exporter.to_owned(),
            cursor.tenant.clone(),
            cursor.model_id.clone(),
        );
        let mut cursors = lock(&self.cursors);
        if let Some(stored) = cursors.get(&key) {
            let mut moved = stored.clone();
            moved.through = Some(moved.through.map_or(through, |t| t.max(through)));
            moved.exported_seq = moved.exported_seq.max(cursor.rolled_seq);
            Self::store_cursor(&mut cursors, exporter, moved)?;
        }
        Ok(())
    }
}

type ModelKey = (TenantId, ModelId);

/// [`ModelSettingsStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryModelSettings {
    settings: Mutex<BTreeMap<ModelKey, ModelSettings>>,
    /// Each tenant's alert subscriptions (`SubscriptionStore`, memory/subscriptions.rs).
    subscriptions: Mutex<BTreeMap<TenantId, AlertSubscriptions>>,
    /// The size of each stored settings item, by model and kind.
    sizes: Mutex<BTreeMap<(ModelKey, &'static str), usize>>,
    pages: Pages,
}

impl MemoryModelSettings {
    /// `Query` round trips answered so far.
    pub fn query_pages(&self) -> u64 {
        self.pages.read()
    }
}

impl ModelSettingsStore for MemoryModelSettings {
    async fn model_settings(&self, model: ModelRef<'_>) -> StoreResult<ModelSettings> {
        let ModelRef { tenant, model_id } = model;
        let key = (tenant.clone(), model_id.clone());
        self.pages.charge(
            [BASELINE, CAPTURED, RULES, TRENDS]
                .into_iter()
                .filter_map(|kind| lock(&self.sizes).get(&(key.clone(), kind)).copied()),
        );
        Ok(lock(&self.settings).get(&key).cloned().unwrap_or_default())
    }

    async fn put_setting(&self, model: ModelRef<'_>, write: SettingWrite<'_>) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let (kind, doc) = setting_item(write)?;
        let size = checked(
            &settings_image(tenant, model_id, kind, &doc, Utc::now()),
            "put model settings",
        )?;
        let key = (tenant.clone(), model_id.clone());
        let changed = write.apply(lock(&self.settings).entry(key.clone()).or_default());
        if changed {
            lock(&self.sizes).insert((key, kind), size);
        }
        Ok(changed)
    }
}

/// [`AlertStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAlertStore {
    inner: Mutex<AlertTables>,
    pages: Pages,
}

impl MemoryAlertStore {
    /// `Query` round trips answered so far.
    pub fn query_pages(&self) -> u64 {
        self.pages.read()
    }
}

/// A model's alert history by (start, rule id), ascending.
type History = BTreeMap<(DateTime<Utc>, String), Stored<AlertRecord>>;

#[derive(Debug, Default)]
struct AlertTables {
    states: BTreeMap<ModelKey, BTreeMap<String, Stored<RuleState>>>,
    /// By model, then (start, rule id): the history in ascending order.
    history: BTreeMap<ModelKey, History>,
}

impl AlertTables {
    fn stored_version(&self, key: &ModelKey, rule_id: &str) -> Option<u64> {
        self.states
            .get(key)
            .and_then(|states| states.get(rule_id))
            .map(|s| s.value.version)
    }

    fn record(&mut self, key: &ModelKey, alert: &AlertRecord, size: usize) {
        self.history.entry(key.clone()).or_default().insert(
            (alert.started_at, alert.rule.id.clone()),
            Stored {
                value: alert.clone(),
                size,
            },
        );
    }
}

/// The sizes of the history entry and the firing-index entry `alert` writes with a
/// rule state of `state_size` bytes, checked as one transaction.
fn alert_sizes(
    tenant: &TenantId,
    model_id: &ModelId,
    rule_id: &str,
    alert: &AlertRecord,
    state_size: usize,
    operation: &'static str,
) -> StoreResult<usize> {
    let history = checked(&history_image(tenant, model_id, alert)?, operation)?;
    let index = checked(
        &firing_image(tenant, model_id, rule_id, &alert.alert_id),
        operation,
    )?;
    transaction(&[state_size, history, index], operation)?;
    Ok(history)
}

/// The `Query` requests the DynamoDB adapter makes to read a page of `query.limit`
/// alerts from a history of `entries` (newest first, after the page's start): each
/// asks for the alerts still wanted (and one more), at least
/// [`FILTERED_PAGE_ITEMS`] when filtered on the state, and reads at most 1 MB.
fn history_requests(entries: &[(bool, usize)], query: &AlertQuery) -> u64 {
    let wanted = query.limit.saturating_add(1);
    let (mut matched, mut at, mut requests) = (0, 0, 0);
    loop {
        requests += 1;
        let mut limit = wanted - matched;
        if query.state.is_some() {
            limit = limit.max(FILTERED_PAGE_ITEMS);
        }
        let (mut read, mut bytes) = (0, 0);
        while let Some(&(matches, size)) = entries.get(at) {
            if read == limit || (read > 0 && bytes + size > QUERY_PAGE_BYTES) {
                break;
            }
            bytes += size;
            read += 1;
            at += 1;
            matched += usize::from(matches);
        }
        // DynamoDB hands back a start key when the limit or the 1 MB stopped the page.
        let more = read == limit || at < entries.len();
        if matched >= wanted || !more {
            return requests;
        }
    }
}

impl AlertStore for MemoryAlertStore {
    async fn rule_states(&self, model: ModelRef<'_>) -> StoreResult<Vec<RuleState>> {
        let ModelRef { tenant, model_id } = model;
        let tables = lock(&self.inner);
        let states: Vec<&Stored<RuleState>> = tables
            .states
            .get(&(tenant.clone(), model_id.clone()))
            .map(|states| states.values().collect())
            .unwrap_or_default();
        self.pages.charge(states.iter().map(|s| s.size));
        Ok(states.into_iter().map(|s| s.value.clone()).collect())
    }

    async fn save_rule_state(
        &self,
        model: ModelRef<'_>,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let key = (tenant.clone(), model_id.clone());
        let mut tables = lock(&self.inner);
        if tables.stored_version(&key, &state.rule_id).unwrap_or(0) + 1 != state.version {
            return Ok(false);
        }
        let operation = match alert {
            Some(_) => "save rule state with alert",
            None => "save rule state",
        };
        let size = checked(&state_image(tenant, model_id, state)?, operation)?;
        let history = alert
            .map(|a| alert_sizes(tenant, model_id, &state.rule_id, a, size, operation))
            .transpose()?;
        tables.states.entry(key.clone()).or_default().insert(
            state.rule_id.clone(),
            Stored {
                value: state.clone(),
                size,
            },
        );
        if let (Some(alert), Some(history)) = (alert, history) {
            tables.record(&key, alert, history);
        }
        Ok(true)
    }

    async fn remove_rule_state(
        &self,
        model: ModelRef<'_>,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let key = (tenant.clone(), model_id.clone());
        let mut tables = lock(&self.inner);
        if tables.stored_version(&key, rule_id) != Some(version) {
            return Ok(false);
        }
        let history = alert
            .map(|a| {
                alert_sizes(
                    tenant,
                    model_id,
                    rule_id,
                    a,
                    0,
                    "remove rule state with alert",
                )
            })
            .transpose()?;
        if let Some(states) = tables.states.get_mut(&key) {
            states.remove(rule_id);
        }
        if let (Some(alert), Some(history)) = (alert, history) {
            tables.record(&key, alert, history);
        }
        Ok(true)
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
        let tables = lock(&self.inner);
        let after = query
            .after
            .as_deref()
            .and_then(parse_alert_id)
            .map(|(rule, start)| (start, rule.to_owned()));
        let newest_first: Vec<&Stored<AlertRecord>> = tables
            .history
            .get(&(tenant.clone(), model_id.clone()))
            .map(|history| {
                history
                    .iter()
                    .rev()
                    .filter(|(key, _)| after.as_ref().is_none_or(|after| *key < after))
                    .map(|(_, alert)| alert)
                    .collect()
            })
            .unwrap_or_default();
        let matches = |alert: &AlertRecord| query.state.is_none_or(|state| alert.state == state);
        let entries: Vec<(bool, usize)> = newest_first
            .iter()
            .map(|a| (matches(&a.value), a.size))
            .collect();
        self.pages
            .0
            .fetch_add(history_requests(&entries, query), Ordering::Relaxed);
        let mut matching = newest_first
            .into_iter()
            .map(|a| &a.value)
            .filter(|alert| matches(alert));
        page.alerts = matching.by_ref().take(query.limit).cloned().collect();
        if matching.next().is_some() {
            page.next = page.alerts.last().map(|a| a.alert_id.clone());
        }
        Ok(page)
    }

    async fn firing_counts(&self, tenant: &TenantId) -> StoreResult<BTreeMap<ModelId, u64>> {
        let tables = lock(&self.inner);
        let mut counts = BTreeMap::new();
        let mut index_sizes = Vec::new();
        for ((owner, model_id), states) in &tables.states {
            if owner != tenant {
                continue;
            }
            for (rule_id, state) in states {
                let Some(alert) = state
                    .value
                    .alert
                    .as_ref()
                    .filter(|a| a.state == AlertState::Firing)
                else {
                    continue;
                };
                index_sizes.push(size_of(&firing_image(
                    owner,
                    model_id,
                    rule_id,
                    &alert.alert_id,
                )));
                *counts.entry(model_id.clone()).or_insert(0) += 1;
            }
        }
        self.pages.charge(index_sizes);
        Ok(counts)
    }
}

/// An in-memory sink: keeps what it was given, in order, and can be switched to fail.
/// Its aliases are the memory twins of the alert topic, the Prometheus receiver and
/// CloudWatch.
#[derive(Debug)]
pub struct Recording<T> {
    items: Mutex<Vec<T>>,
    failing: std::sync::atomic::AtomicBool,
}

/// [`AlertNotifier`] that keeps every alert published.
pub type MemoryNotifier = Recording<AlertRecord>;
/// [`SeriesWriter`] that keeps every series written (the Prometheus exporter as
/// [`crate::ports::PrometheusSeries`] over it).
pub type MemorySeriesWriter = Recording<Series>;
/// CloudWatch [`MetricsExporter`] and [`MetricDataWriter`] that keeps every datum put.
pub type MemoryMetricData = Recording<Datum>;
/// [`ShardQueue`] that keeps every message enqueued, dropping one whose deduplication
/// id it has kept already (as a FIFO queue does within its window), and every early
/// redelivery asked for.
#[derive(Default)]
pub struct MemoryShardQueue {
    /// The messages enqueued, in order.
    pub messages: Recording<QueueMessage>,
    /// The redeliveries asked for: receipt handle and delay.
    pub redeliveries: Recording<(String, Duration)>,
}

impl<T> Default for Recording<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<T: Clone> Recording<T> {
    /// Everything kept so far, in order.
    pub fn items(&self) -> Vec<T> {
        lock(&self.items).clone()
    }

    /// Makes every following call fail as unavailable (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Keeps `items`, or answers why not while switched to fail.
    fn record(&self, items: &[T], sink: &str) -> Result<(), String> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!("the in-memory {sink} is switched to fail"));
        }
        lock(&self.items).extend_from_slice(items);
        Ok(())
    }
}

impl AlertNotifier for MemoryNotifier {
    async fn notify(&self, alert: &AlertRecord) -> StoreResult<()> {
        self.record(std::slice::from_ref(alert), "topic")
            .map_err(|why| StoreError::Unavailable {
                operation: "Publish",
                source: why.into(),
            })
    }
}

impl ShardQueue for MemoryShardQueue {
    fn address(&self) -> &str {
        "memory"
    }

    async fn enqueue(&self, messages: &[QueueMessage]) -> StoreResult<()> {
        let kept = self.messages.items();
        let new: Vec<QueueMessage> = messages
            .iter()
            .filter(|m| {
                !kept
                    .iter()
                    .any(|k| k.deduplication_id == m.deduplication_id)
            })
            .cloned()
            .collect();
        self.messages
            .record(&new, "queue")
            .map_err(|why| StoreError::Unavailable {
                operation: "SendMessageBatch",
                source: why.into(),
            })
    }

    async fn redeliver_after(&self, receipt_handle: &str, delay: Duration) -> StoreResult<()> {
        self.redeliveries
            .record(&[(receipt_handle.to_owned(), delay)], "queue")
            .map_err(|why| StoreError::Unavailable {
                operation: "ChangeMessageVisibility",
                source: why.into(),
            })
    }
}

impl MetricsExporter for MemoryMetricData {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    /// As the CloudWatch exporter groups them.
    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        cloudwatch_requests(models, CloudWatchMetrics::All)
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        self.record(
            &cloudwatch_data(models, CloudWatchMetrics::All),
            "metric store",
        )
        .map_err(|why| ExportFailure::Unavailable(why.into()))
    }
}

impl MetricDataWriter for MemoryMetricData {
    async fn write_data(&self, data: &[Datum]) -> Result<(), ExportFailure> {
        self.record(data, "metric store")
            .map_err(|why| ExportFailure::Unavailable(why.into()))
    }
}

impl SeriesWriter for MemorySeriesWriter {
    async fn write_series(&self, series: &[Series]) -> Result<(), ExportFailure> {
        self.record(series, "receiver")
            .map_err(|why| ExportFailure::Unavailable(why.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::shard::all_shards;
    use crate::testing;

    fn ids() -> (TenantId, ModelId) {
        (testing::tenant("t1"), testing::model("m1"))
    }

    fn minute(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_324_000 + 60 * n, 0).expect("minute")
    }

    fn partial(n: i64, batch: &str) -> PartialKey {
        let (tenant, model_id) = ids();
        PartialKey {
            tenant,
            model_id,
            minute: minute(n),
            batch_id: batch.into(),
        }
    }

    fn is_refused<T: std::fmt::Debug>(result: StoreResult<T>) -> bool {
        matches!(result, Err(StoreError::Internal { .. }))
    }

    #[tokio::test]
    async fn an_item_over_400_kb_is_refused_like_a_validation_exception_and_nothing_changes() {
        let (tenant, model_id) = ids();
        let batch = BatchKey {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            batch_id: "b".into(),
        };
        let partials = MemoryPartialStore::default();
        assert_eq!(
            partials.claim_batch(&batch, "d").await.expect("claim"),
            BatchClaim::Proceed
        );
        let big = vec![0_u8; MAX_ITEM_BYTES];
        assert!(is_refused(partials.put_batch_receipt(&batch, &big).await));
        assert_eq!(
            partials.claim_batch(&batch, "d").await.expect("claim"),
            BatchClaim::Proceed,
            "no receipt stored"
        );
        let fits = vec![0_u8; MAX_ITEM_BYTES - 300];
        partials
            .put_batch_receipt(&batch, &fits)
            .await
            .expect("fits");
    }

    #[tokio::test]
    async fn a_state_at_the_label_cap_fits_a_partial_and_a_rollup() {
        let largest = testing::state_of_size(usize::MAX, minute(0));
        let partials = MemoryPartialStore::default();
        assert_eq!(
            partials
                .put_partial(&partial(0, "b"), &largest)
                .await
                .expect("fits"),
            PutOutcome::Written
        );
        let (tenant, model_id) = ids();
        let rollups = MemoryRollupStore::default();
        let rollup = Rollup {
            tenant,
            model_id,
            granularity: Granularity::Minute,
            start: minute(0),
            rev: 1,
            state: largest,
        };
        rollups
            .put_minute_rollup(&rollup, None, &CounterDelta::default())
            .await
            .expect("fits");
        assert_eq!(rollups.all().len(), 1);
    }

    #[tokio::test]
    async fn a_captured_baseline_is_stored_once_and_other_settings_are_replaced() {
        use crate::domain::alerting::baseline::{CapturedBaseline, RegisteredBaseline};
        let (tenant, model_id) = ids();
        let captured = |sample_count| CapturedBaseline {
            latency_p95_ms: Some(20.0),
            error_rate: Some(0.0),
            from: minute(0),
            to: minute(24 * 60),
            sample_count,
            captured_at: minute(24 * 60),
        };
        let registered = |rps| RegisteredBaseline {
            test_set: None,
            throughput_forecast_rps: Some(rps),
            reference: None,
            updated_at: minute(0),
        };
        let store = MemoryModelSettings::default();
        let (first, second) = (captured(10), captured(99));
        let (old, new) = (registered(1.0), registered(2.0));
        for (write, stored) in [
            (SettingWrite::CapturedBaseline(&first), true),
            (SettingWrite::CapturedBaseline(&second), false),
            (SettingWrite::RegisteredBaseline(&old), true),
            (SettingWrite::RegisteredBaseline(&new), true),
        ] {
            let answer = store
                .put_setting(ModelRef::new(&tenant, &model_id), write)
                .await;
            assert_eq!(answer.expect("put"), stored, "{write:?}");
        }
        let stored = store
            .model_settings(ModelRef::new(&tenant, &model_id))
            .await
            .expect("read");
        assert_eq!(
            stored.baselines.captured,
            Some(first),
            "the first one stays"
        );
        assert_eq!(stored.baselines.registered, Some(new), "replaced");
    }

    #[tokio::test]
    async fn reads_take_the_round_trips_dynamodb_would() {
        let partials = MemoryPartialStore::default();
        partials
            .pending_minutes(all_shards())
            .await
            .expect("pending");
        assert_eq!(partials.query_pages(), 32, "one query per shard");

        // Ten partials of 120–140 KB: more than one 1 MB page, less than two.
        let state = testing::state_of_size(120 * 1024, minute(0));
        for batch in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            partials
                .put_partial(&partial(0, batch), &state)
                .await
                .expect("stored");
        }
        let (tenant, model_id) = ids();
        let read = partials
            .partials_of(ModelRef::new(&tenant, &model_id), minute(0))
            .await
            .expect("read");
        assert_eq!(read.len(), 10);
        assert_eq!(partials.query_pages(), 32 + 2);

        // A day of minutes from 10:00 touches two daily partitions: two queries.
        let rollups = MemoryRollupStore::default();
        rollups
            .rollups(
                ModelRef::new(&tenant, &model_id),
                Granularity::Minute,
                TimeSpan::new(minute(0), minute(24 * 60)),
            )
            .await
            .expect("read");
        assert_eq!(rollups.query_pages(), 2);
    }

    #[test]
    fn history_reads_ask_for_what_is_still_wanted_a_megabyte_at_most() {
        let query = |limit, state| AlertQuery {
            state,
            limit,
            after: None,
        };
        let small = vec![(true, 1_000); 5];
        assert_eq!(history_requests(&small, &query(2, None)), 1);
        assert_eq!(history_requests(&small, &query(5, None)), 1);
        assert_eq!(history_requests(&small, &query(4, None)), 1);
        assert_eq!(history_requests(&[], &query(4, None)), 1);
        let none_firing = vec![(false, 1_000); 250];
        assert_eq!(
            history_requests(&none_firing, &query(10, Some(AlertState::Firing))),
            3,
            "100 items a request, then the rest"
        );
        let large = vec![(true, 400 * 1024); 5];
        assert_eq!(history_requests(&large, &query(10, None)), 3);
    }
}

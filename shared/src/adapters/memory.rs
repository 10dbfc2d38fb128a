//! In-memory implementations of the storage ports, for unit tests and benchmarks.
//!
//! They keep DynamoDB's limits ([`crate::adapters::limits`]): every item is sized from
//! the same image the DynamoDB adapter writes, and what DynamoDB would refuse as a
//! `ValidationException` (an item over 400 KB, a number it cannot hold, a transaction
//! over its limits) is refused as [`StoreError::Internal`], as the DynamoDB adapter
//! reports it, with nothing changed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::adapters::dynamodb::{batch_image, rollup_image, totals_image};
use crate::adapters::limits::{Image, LimitError, check_transaction};
use crate::adapters::remote_write::Series;
use crate::aggregate::{ExportFailure, SeriesWriter};
use crate::alerting::baseline::{CapturedBaseline, RegisteredBaseline};
use crate::alerting::rules::CustomRules;
use crate::alerting::state::{AlertRecord, AlertState, RuleState, parse_alert_id};
use crate::alerting::trends::TrendReport;
use crate::error::StoreError;
use crate::ids::{ModelId, TenantId};
use crate::ports::{
    AlertNotifier, AlertPage, AlertQuery, AlertStore, BatchClaim, BatchKey, CounterDelta,
    CounterTotals, ExportCursor, ExportCursors, Granularity, ModelRegistry, ModelSettings,
    ModelSettingsStore, ModelSighting, PartialKey, PartialStore, PendingMinute, PendingWork,
    PutOutcome, RegisteredModel, RegistryError, Rollup, RollupStore,
};

/// [`ModelRegistry`] in memory.
#[derive(Debug, Default)]
pub struct MemoryModelRegistry {
    models: Mutex<BTreeMap<(TenantId, ModelId), RegisteredModel>>,
}

impl MemoryModelRegistry {
    /// Adds or replaces a model.
    pub fn insert(&self, model: RegisteredModel) {
        self.lock()
            .insert((model.tenant.clone(), model.model_id.clone()), model);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(TenantId, ModelId), RegisteredModel>> {
        lock(&self.models)
    }
}

impl ModelRegistry for MemoryModelRegistry {
    async fn record_sighting(&self, sighting: &ModelSighting) -> Result<(), RegistryError> {
        let mut models = self.lock();
        let key = (sighting.tenant.clone(), sighting.model_id.clone());
        let model = models.entry(key).or_insert_with(|| RegisteredModel {
            tenant: sighting.tenant.clone(),
            model_id: sighting.model_id.clone(),
            task: sighting.task,
            first_seen: sighting.first,
            last_seen: sighting.last,
            latest_version: None,
        });
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
        Ok(())
    }

    async fn list_models(&self, tenant: &TenantId) -> Result<Vec<RegisteredModel>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|m| &m.tenant == tenant)
            .cloned()
            .collect())
    }

    async fn model(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<Option<RegisteredModel>, StoreError> {
        Ok(self
            .lock()
            .get(&(tenant.clone(), model_id.clone()))
            .cloned())
    }

    async fn active_models(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RegisteredModel>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|m| m.last_seen >= since)
            .cloned()
            .collect())
    }
}

/// [`PartialStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryPartialStore {
    partials: Mutex<BTreeMap<PartialKeyOrd, Vec<u8>>>,
    pending: Mutex<BTreeMap<MinuteKey, u64>>,
    /// Per batch: the claimed content digest, and the receipt once stored.
    receipts: Mutex<BTreeMap<BatchKey, Claim>>,
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
    pub fn partials(&self) -> Vec<(PartialKey, Vec<u8>)> {
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
                    state.clone(),
                )
            })
            .collect()
    }
}

impl PartialStore for MemoryPartialStore {
    async fn claim_batch(&self, batch: &BatchKey, digest: &str) -> Result<BatchClaim, StoreError> {
        let mut receipts = lock(&self.receipts);
        let (claimed, receipt) = receipts
            .entry(batch.clone())
            .or_insert_with(|| (digest.to_owned(), None));
        Ok(if claimed != digest {
            BatchClaim::Conflict
        } else if let Some(receipt) = receipt {
            BatchClaim::Stored(receipt.clone())
        } else {
            BatchClaim::Proceed
        })
    }

    async fn release_batch(&self, batch: &BatchKey, digest: &str) -> Result<(), StoreError> {
        let mut receipts = lock(&self.receipts);
        if receipts
            .get(batch)
            .is_some_and(|(claimed, receipt)| claimed == digest && receipt.is_none())
        {
            receipts.remove(batch);
        }
        Ok(())
    }

    async fn put_batch_receipt(&self, batch: &BatchKey, receipt: &[u8]) -> Result<(), StoreError> {
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

    async fn put_partial(&self, key: &PartialKey, state: &[u8]) -> Result<PutOutcome, StoreError> {
        let mut partials = lock(&self.partials);
        let key = ordered(key);
        if partials.contains_key(&key) {
            return Ok(PutOutcome::AlreadyPresent);
        }
        partials.insert(key, state.to_vec());
        Ok(PutOutcome::Written)
    }

    async fn mark_pending(&self, key: &PartialKey) -> Result<(), StoreError> {
        *lock(&self.pending)
            .entry((key.tenant.clone(), key.model_id.clone(), key.minute))
            .or_default() += 1;
        Ok(())
    }
}

/// The TTL the memory stores size `expires_at` with: any retention the configuration
/// allows gives an epoch-seconds number of the same 10 digits.
const SIZING_RETENTION: TimeDelta = TimeDelta::days(400);

/// The size of `image`, or the error the DynamoDB adapter reports for DynamoDB's
/// refusal of it during `operation`.
fn checked(image: &Image<'_>, operation: &'static str) -> Result<usize, StoreError> {
    image.checked_size().map_err(|e| refused(operation, e))
}

/// A write DynamoDB would refuse as invalid: `Internal`, like the DynamoDB adapter's
/// mapping of a `ValidationException`.
fn refused(operation: &'static str, err: LimitError) -> StoreError {
    StoreError::Internal {
        operation,
        source: Box::new(err),
    }
}

/// Locks `mutex`; a panic while holding it cannot leave a map half-updated.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PendingWork for MemoryPartialStore {
    async fn pending_minutes(&self) -> Result<Vec<PendingMinute>, StoreError> {
        Ok(lock(&self.pending)
            .iter()
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
        tenant: &TenantId,
        model_id: &ModelId,
        minute: DateTime<Utc>,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(lock(&self.partials)
            .iter()
            .filter(|((t, m, at, _), _)| t == tenant && m == model_id && *at == minute)
            .map(|(_, state)| state.clone())
            .collect())
    }

    async fn settle(&self, pending: &PendingMinute) -> Result<bool, StoreError> {
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
    rollups: Mutex<BTreeMap<RollupKey, Rollup>>,
    totals: Mutex<BTreeMap<(TenantId, ModelId), CounterTotals>>,
    cursors: Mutex<BTreeMap<(String, TenantId, ModelId), ExportCursor>>,
}

fn rollup_key(rollup: &Rollup) -> RollupKey {
    (
        rollup.tenant.clone(),
        rollup.model_id.clone(),
        rollup.granularity,
        rollup.start,
    )
}

impl MemoryRollupStore {
    /// Every stored rollup, in key order.
    pub fn all(&self) -> Vec<Rollup> {
        lock(&self.rollups).values().cloned().collect()
    }
}

impl RollupStore for MemoryRollupStore {
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
        let key = |start| (tenant.clone(), model_id.clone(), granularity, start);
        Ok(lock(&self.rollups)
            .range(key(from)..key(to))
            .map(|(_, rollup)| rollup.clone())
            .collect())
    }

    async fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "write minute rollup";
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).map(|r| r.rev) != previous_rev {
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
        let sizes = [
            checked(
                &rollup_image(rollup, rollup.start + SIZING_RETENTION),
                OPERATION,
            )?,
            checked(
                &totals_image(&rollup.tenant, &rollup.model_id, &total),
                OPERATION,
            )?,
        ];
        check_transaction(&sizes).map_err(|e| refused(OPERATION, e))?;
        rollups.insert(key, rollup.clone());
        totals.insert(model, total);
        Ok(true)
    }

    async fn put_rollup(&self, rollup: &Rollup) -> Result<bool, StoreError> {
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).is_some_and(|r| r.rev >= rollup.rev) {
            return Ok(false);
        }
        checked(
            &rollup_image(rollup, rollup.start + SIZING_RETENTION),
            "write rollup",
        )?;
        rollups.insert(key, rollup.clone());
        Ok(true)
    }

    async fn counter_totals(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<CounterTotals, StoreError> {
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
        tenant: &TenantId,
        model_id: &ModelId,
        rolled_through: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut cursors = lock(&self.cursors);
        for exporter in exporters {
            let cursor = cursors
                .entry(((*exporter).to_owned(), tenant.clone(), model_id.clone()))
                .or_insert_with(|| ExportCursor {
                    tenant: tenant.clone(),
                    model_id: model_id.clone(),
                    through: None,
                    rolled_through,
                });
            cursor.rolled_through = cursor.rolled_through.max(rolled_through);
        }
        Ok(())
    }

    async fn lagging_cursors(&self, exporter: &str) -> Result<Vec<ExportCursor>, StoreError> {
        Ok(lock(&self.cursors)
            .iter()
            .filter(|((e, _, _), c)| {
                e == exporter && c.through.is_none_or(|t| t < c.rolled_through)
            })
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = (
            exporter.to_owned(),
            cursor.tenant.clone(),
            cursor.model_id.clone(),
        );
        if let Some(stored) = lock(&self.cursors).get_mut(&key) {
            stored.through = Some(stored.through.map_or(through, |t| t.max(through)));
        }
        Ok(())
    }
}

type ModelKey = (TenantId, ModelId);

/// [`ModelSettingsStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryModelSettings {
    settings: Mutex<BTreeMap<ModelKey, ModelSettings>>,
}

impl MemoryModelSettings {
    fn update(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        change: impl FnOnce(&mut ModelSettings),
    ) {
        change(
            lock(&self.settings)
                .entry((tenant.clone(), model_id.clone()))
                .or_default(),
        );
    }
}

impl ModelSettingsStore for MemoryModelSettings {
    async fn model_settings(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<ModelSettings, StoreError> {
        Ok(lock(&self.settings)
            .get(&(tenant.clone(), model_id.clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn put_registered_baseline(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        baseline: &RegisteredBaseline,
    ) -> Result<(), StoreError> {
        self.update(tenant, model_id, |s| {
            s.baselines.registered = Some(baseline.clone());
        });
        Ok(())
    }

    async fn put_captured_baseline(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        baseline: &CapturedBaseline,
    ) -> Result<bool, StoreError> {
        let mut stored = false;
        self.update(tenant, model_id, |s| {
            if s.baselines.captured.is_none() {
                s.baselines.captured = Some(baseline.clone());
                stored = true;
            }
        });
        Ok(stored)
    }

    async fn put_rules(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        rules: &CustomRules,
    ) -> Result<(), StoreError> {
        self.update(tenant, model_id, |s| s.rules = Some(rules.clone()));
        Ok(())
    }

    async fn put_trends(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        trends: &TrendReport,
    ) -> Result<(), StoreError> {
        self.update(tenant, model_id, |s| s.trends = Some(trends.clone()));
        Ok(())
    }
}

/// [`AlertStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAlertStore {
    inner: Mutex<AlertTables>,
}

#[derive(Debug, Default)]
struct AlertTables {
    states: BTreeMap<ModelKey, BTreeMap<String, RuleState>>,
    /// By model, then (start, rule id): the history in ascending order.
    history: BTreeMap<ModelKey, BTreeMap<(DateTime<Utc>, String), AlertRecord>>,
}

impl AlertTables {
    fn record(&mut self, key: &ModelKey, alert: &AlertRecord) {
        self.history
            .entry(key.clone())
            .or_default()
            .insert((alert.started_at, alert.rule.id.clone()), alert.clone());
    }
}

impl AlertStore for MemoryAlertStore {
    async fn rule_states(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<Vec<RuleState>, StoreError> {
        Ok(lock(&self.inner)
            .states
            .get(&(tenant.clone(), model_id.clone()))
            .map(|states| states.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn save_rule_state(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> Result<bool, StoreError> {
        let key = (tenant.clone(), model_id.clone());
        let mut tables = lock(&self.inner);
        let states = tables.states.entry(key.clone()).or_default();
        let stored_version = states.get(&state.rule_id).map_or(0, |s| s.version);
        if stored_version + 1 != state.version {
            return Ok(false);
        }
        states.insert(state.rule_id.clone(), state.clone());
        if let Some(alert) = alert {
            tables.record(&key, alert);
        }
        Ok(true)
    }

    async fn remove_rule_state(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> Result<bool, StoreError> {
        let key = (tenant.clone(), model_id.clone());
        let mut tables = lock(&self.inner);
        let states = tables.states.entry(key.clone()).or_default();
        if states.get(rule_id).map(|s| s.version) != Some(version) {
            return Ok(false);
        }
        states.remove(rule_id);
        if let Some(alert) = alert {
            tables.record(&key, alert);
        }
        Ok(true)
    }

    async fn alerts(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        query: &AlertQuery,
    ) -> Result<AlertPage, StoreError> {
        let tables = lock(&self.inner);
        let Some(history) = tables.history.get(&(tenant.clone(), model_id.clone())) else {
            return Ok(AlertPage {
                alerts: Vec::new(),
                next: None,
            });
        };
        let after = query
            .after
            .as_deref()
            .and_then(parse_alert_id)
            .map(|(rule, start)| (start, rule.to_owned()));
        let mut matching = history
            .iter()
            .rev()
            .filter(|(key, _)| after.as_ref().is_none_or(|after| *key < after))
            .map(|(_, alert)| alert)
            .filter(|alert| query.state.is_none_or(|state| alert.state == state));
        let alerts: Vec<AlertRecord> = matching.by_ref().take(query.limit).cloned().collect();
        let more = matching.next().is_some();
        let next = more
            .then(|| alerts.last().map(|a| a.alert_id.clone()))
            .flatten();
        Ok(AlertPage { alerts, next })
    }

    async fn firing_counts(&self, tenant: &TenantId) -> Result<BTreeMap<ModelId, u64>, StoreError> {
        let tables = lock(&self.inner);
        let mut counts = BTreeMap::new();
        for ((owner, model_id), states) in &tables.states {
            let firing = states
                .values()
                .filter(|s| {
                    s.alert
                        .as_ref()
                        .is_some_and(|a| a.state == AlertState::Firing)
                })
                .count() as u64;
            if owner == tenant && firing > 0 {
                counts.insert(model_id.clone(), firing);
            }
        }
        Ok(counts)
    }
}

/// What an in-memory sink was given, and a switch that makes it fail.
#[derive(Debug)]
struct Recording<T> {
    items: Mutex<Vec<T>>,
    failing: std::sync::atomic::AtomicBool,
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
    fn items(&self) -> Vec<T> {
        lock(&self.items).clone()
    }

    fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Keeps `items`, or answers `false` while switched to fail.
    fn record(&self, items: &[T]) -> bool {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        lock(&self.items).extend_from_slice(items);
        true
    }
}

/// [`AlertNotifier`] that keeps what it was given, and can be switched to fail.
#[derive(Debug, Default)]
pub struct MemoryNotifier(Recording<AlertRecord>);

impl MemoryNotifier {
    /// Every alert published so far.
    pub fn sent(&self) -> Vec<AlertRecord> {
        self.0.items()
    }

    /// Makes every following publish fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.0.set_failing(failing);
    }
}

impl AlertNotifier for MemoryNotifier {
    async fn notify(&self, alert: &AlertRecord) -> Result<(), StoreError> {
        if self.0.record(std::slice::from_ref(alert)) {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                operation: "Publish",
                source: "the in-memory topic is switched to fail".into(),
            })
        }
    }
}

/// [`SeriesWriter`] that keeps what it was given, and can be switched to fail.
#[derive(Debug, Default)]
pub struct MemorySeriesWriter(Recording<Series>);

impl MemorySeriesWriter {
    /// Every series written so far.
    pub fn written(&self) -> Vec<Series> {
        self.0.items()
    }

    /// Makes every following write fail as unavailable (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.0.set_failing(failing);
    }
}

impl SeriesWriter for MemorySeriesWriter {
    async fn write_series(&self, series: &[Series]) -> Result<(), ExportFailure> {
        if self.0.record(series) {
            Ok(())
        } else {
            Err(ExportFailure::Unavailable(
                "the in-memory receiver is switched to fail".into(),
            ))
        }
    }
}

//! In-memory implementations of the storage ports, for unit tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::ids::{ModelId, TenantId};
use crate::ports::{
    BatchKey, CounterTotals, ExportCursor, ExportCursors, Granularity, ModelRegistry,
    ModelSighting, PartialKey, PartialStore, PendingMinute, PendingWork, PutOutcome,
    RegisteredModel, RegistryError, Rollup, RollupStore,
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
    receipts: Mutex<BTreeMap<BatchKey, String>>,
}

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
    async fn batch_receipt(&self, batch: &BatchKey) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.receipts).get(batch).cloned())
    }

    async fn put_batch_receipt(&self, batch: &BatchKey, receipt: &str) -> Result<(), StoreError> {
        lock(&self.receipts).insert(batch.clone(), receipt.to_owned());
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
        Ok(lock(&self.rollups)
            .values()
            .filter(|r| {
                &r.tenant == tenant
                    && &r.model_id == model_id
                    && r.granularity == granularity
                    && r.start >= from
                    && r.start < to
            })
            .cloned()
            .collect())
    }

    async fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterTotals,
    ) -> Result<bool, StoreError> {
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).map(|r| r.rev) != previous_rev {
            return Ok(false);
        }
        rollups.insert(key, rollup.clone());
        let mut totals = lock(&self.totals);
        let total = totals
            .entry((rollup.tenant.clone(), rollup.model_id.clone()))
            .or_default();
        total.ok += delta.ok;
        total.errors += delta.errors;
        total.latency_sum_ms += delta.latency_sum_ms;
        for (error_type, count) in &delta.errors_by_type {
            *total.errors_by_type.entry(error_type.clone()).or_default() += count;
        }
        Ok(true)
    }

    async fn put_rollup(&self, rollup: &Rollup) -> Result<bool, StoreError> {
        let mut rollups = lock(&self.rollups);
        let key = rollup_key(rollup);
        if rollups.get(&key).is_some_and(|r| r.rev >= rollup.rev) {
            return Ok(false);
        }
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

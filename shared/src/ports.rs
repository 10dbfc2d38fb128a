//! The small storage traits the domain needs, named for what it needs them for.
//! DynamoDB implementations live in [`crate::adapters::dynamodb`], in-memory ones
//! (for unit tests and benchmarks) in [`crate::adapters::memory`]; any of them can be
//! wrapped with injected faults and latency by [`crate::adapters::faults`].

use std::future::Future;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ValidBatch;
use crate::domain::alerting::baseline::{
    Baselines, CapturedBaseline, ReferenceSnapshot, RegisteredBaseline,
};
use crate::domain::alerting::rules::CustomRules;
use crate::domain::alerting::state::{AlertRecord, AlertState, RuleState};
use crate::domain::alerting::subscriptions::{AlertSubscriptions, SubscriptionTarget};
use crate::domain::alerting::trends::TrendReport;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::{AwaitingPrediction, LateLabel};
use crate::domain::slice::{SegmentCaps, Slice};
use crate::domain::{
    CounterDelta, CounterTotals, Datum, Granularity, ModelExport, Series, Task, TenantQuotas,
    TimeSpan, WindowState, prometheus_series,
};
use crate::error::{StoreError, StoreResult};

/// A model as the registry knows it: one item per (tenant, model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredModel {
    /// The owning tenant.
    #[serde(skip)]
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// The task the model was first seen with; a model keeps one task.
    pub task: Task,
    /// Event time of the model's first prediction.
    pub first_seen: DateTime<Utc>,
    /// Event time of the model's latest prediction.
    pub last_seen: DateTime<Utc>,
    /// The `model_version` of the latest batch that named one.
    pub latest_version: Option<String>,
}

impl RegisteredModel {
    /// The (tenant, model) pair the stores key it by.
    pub fn key(&self) -> ModelRef<'_> {
        ModelRef::new(&self.tenant, &self.model_id)
    }
}

/// One version of a model as the registry knows it (`GET …/versions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    /// The `model_version`.
    pub model_version: String,
    /// Event time of the version's first prediction.
    pub first_seen: DateTime<Utc>,
    /// Event time of the version's latest prediction.
    pub last_seen: DateTime<Utc>,
}

/// A segment key kept for a model, with the values it kept on recent days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSegment {
    /// The key.
    pub key: String,
    /// The values kept on the days asked for, ordered by value, each with the latest
    /// of those days it was kept on.
    pub values: Vec<(String, DateTime<Utc>)>,
}

/// What a batch tells the registry about its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSighting {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// The batch's task.
    pub task: Task,
    /// Earliest event time in the batch.
    pub first: DateTime<Utc>,
    /// Latest event time in the batch.
    pub last: DateTime<Utc>,
    /// The batch's `model_version`, if given.
    pub version: Option<String>,
}

/// A segment pair a batch carries, for [`ModelRegistry::record_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSighting<'a> {
    /// The model whose batch carries it.
    pub model: ModelRef<'a>,
    /// The segment key.
    pub key: &'a str,
    /// The key's value.
    pub value: &'a str,
    /// The UTC day of the batch's first event (its start).
    pub day: DateTime<Utc>,
}

/// Why the registry refused a sighting.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The model is registered with another task; a model keeps one task.
    #[error("model is registered as {registered}, not {requested}")]
    TaskConflict {
        /// The task on record.
        registered: Task,
        /// The task the batch named.
        requested: Task,
    },
    /// The model is new and the tenant has `limit` models (its quota) already;
    /// nothing was registered.
    #[error("the tenant has its quota of {limit} models")]
    OverQuota {
        /// The tenant's quota of models.
        limit: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registry of models per tenant.
pub trait ModelRegistry: Send + Sync {
    /// Registers the model on first sight — unless its tenant has `max_models` models
    /// already — and widens its first/last seen times; the task is fixed by the first
    /// sighting. Idempotent.
    fn record_sighting(
        &self,
        sighting: &ModelSighting,
        max_models: u64,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// Records the sighting's `version` of its model (registered before): a version
    /// not seen before is kept while the model has fewer than `max_versions`, and a
    /// kept version's first/last seen times widen like the model's. Returns the slice
    /// the batch's predictions count under — its version's, or past the cap the
    /// overflow slice (`version:__other__`, nothing kept) —, `None` for a sighting
    /// without a version. Idempotent.
    fn record_version(
        &self,
        sighting: &ModelSighting,
        max_versions: u64,
    ) -> impl Future<Output = StoreResult<Option<Slice>>> + Send;

    /// Records the sighting of a segment `key` = `value` on a UTC `day`: a key not seen
    /// before is kept (for good) while the model has fewer than `caps.keys`, a value
    /// not seen that day while the key has fewer than `caps.values_per_day` that day. Returns the slice the predictions count under:
    /// the segment's, `segment:<key>:__other__` past the values' cap, or
    /// `segment:__other__:__other__` for a key past the keys' cap. Idempotent; once kept
    /// or refused on a day, a pair stays so that day (a caller may remember it).
    fn record_segment(
        &self,
        sighting: SegmentSighting<'_>,
        caps: SegmentCaps,
    ) -> impl Future<Output = StoreResult<Slice>> + Send;

    /// The segment keys kept of a model, ordered by key, each with the values kept on
    /// the UTC days from `since` on (a day's values are stored for
    /// [`SEGMENT_DAYS_KEPT`](crate::domain::slice::SEGMENT_DAYS_KEPT) days).
    fn segments(
        &self,
        model: ModelRef<'_>,
        since: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<KeptSegment>>> + Send;

    /// The versions kept of a model, ordered by version.
    fn versions(
        &self,
        model: ModelRef<'_>,
    ) -> impl Future<Output = StoreResult<Vec<ModelVersion>>> + Send;

    /// The tenant's models, ordered by model id.
    fn list_models(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Vec<RegisteredModel>>> + Send;

    /// The tenant's model `model_id`, or `None` when the tenant has no such model
    /// (whether or not another tenant has one by that id).
    fn model(
        &self,
        model: ModelRef<'_>,
    ) -> impl Future<Output = StoreResult<Option<RegisteredModel>>> + Send;

    /// The quotas an operator set for `tenant` (never the tenant itself: no route
    /// writes them); all `None` when none was set.
    fn tenant_quotas(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<TenantQuotas>> + Send;

    /// The models of `shards` (`domain::shard`), every tenant's, seen at or after
    /// `since`. May miss a sighting of the last seconds (an index read).
    fn active_models(
        &self,
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> impl Future<Output = StoreResult<Vec<RegisteredModel>>> + Send;
}

/// One record the archive refused, by its index in the batch's `predictions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRejection {
    /// Index of the prediction in the batch.
    pub index: usize,
    /// The archive's reason.
    pub reason: String,
}

/// What the archive did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveReport {
    /// Records written (or already present unchanged).
    pub written: usize,
    /// Records refused; they are not retried unchanged.
    pub rejected: Vec<ArchiveRejection>,
}

/// The raw-record archive (Timestream), written on every batch when enabled.
pub trait PredictionArchive: Send + Sync {
    /// Archives every prediction of `batch` for `tenant`. Transient failures are
    /// retried inside; what remains is `StoreError::Unavailable`.
    fn archive(
        &self,
        tenant: &TenantId,
        batch: &ValidBatch,
    ) -> impl Future<Output = StoreResult<ArchiveReport>> + Send;
}

/// Identifies one partial aggregate: a batch's records of one minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartialKey {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// Start of the minute the records fall in.
    pub minute: DateTime<Utc>,
    /// The batch the records came in.
    pub batch_id: String,
}

/// Whether a partial was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now.
    Written,
    /// A partial with this key was already stored (a retried batch): nothing changed.
    AlreadyPresent,
}

/// Identifies a batch: the idempotency key of ingest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchKey {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// The sender's batch id.
    pub batch_id: String,
}

/// What claiming a batch id for a content digest found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchClaim {
    /// The id is this content's: new now, or claimed by an earlier attempt with the
    /// same content that did not complete. Store the batch.
    Proceed,
    /// This content was stored completely before; the receipt is the answer given,
    /// as stored (see `IngestReceipt::from_stored`).
    Stored(Vec<u8>),
    /// The id was claimed for different content: nothing may be written.
    Conflict,
}

/// Partial aggregates, written by ingest and merged by aggregation, and the claims
/// and receipts of batches.
pub trait PartialStore: Send + Sync {
    /// Claims `batch`'s id for the content with `digest` (atomically: of two
    /// different contents sent at once, one gets [`BatchClaim::Conflict`]).
    fn claim_batch(
        &self,
        batch: &BatchKey,
        digest: &str,
    ) -> impl Future<Output = StoreResult<BatchClaim>> + Send;

    /// Gives up `batch`'s claim for `digest` unless its receipt is stored (a
    /// conditional delete): the id is free again for any content. For a batch refused
    /// after its claim, before anything of it was written. Nothing to release (another
    /// digest, a receipt, no claim) is not an error.
    fn release_batch(
        &self,
        batch: &BatchKey,
        digest: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records that every write of the batch succeeded; `receipt` is the answer given,
    /// in its stored form (`IngestReceipt::to_stored`).
    fn put_batch_receipt(
        &self,
        batch: &BatchKey,
        receipt: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Stores `state` under `key` unless that key exists.
    fn put_partial(
        &self,
        key: &PartialKey,
        state: &WindowState,
    ) -> impl Future<Output = StoreResult<PutOutcome>> + Send;

    /// Records that the (tenant, model, minute) of `key` has partials to roll up.
    /// Idempotent; safe to repeat after a partial was found already present.
    fn mark_pending(&self, key: &PartialKey) -> impl Future<Output = StoreResult<()>> + Send;

    /// Adds a batch's predictions to its tenant's count for the minute of arrival
    /// unless the count would then exceed the limit (atomically: of two batches that
    /// would together exceed it, one is refused). `false`: not counted, over the
    /// quota. The count is kept a day.
    fn count_predictions(
        &self,
        count: &PredictionCount<'_>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// A batch's predictions, to count against its tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictionCount<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The minute the batch arrived in.
    pub minute: DateTime<Utc>,
    /// The batch's predictions.
    pub predictions: u64,
    /// The tenant's quota for the minute.
    pub limit: u64,
}

/// The item of one prediction id in the label store, as stored after a write: the
/// prediction side, the label side and who claimed their join (each written once).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelItem {
    /// The prediction awaiting its label and the prediction batch that sent it.
    pub prediction: Option<(AwaitingPrediction, String)>,
    /// The first label sent for it and the label batch that sent it.
    pub label: Option<(LateLabel, String)>,
    /// The claimant that counts the join ([`JoinClaimant`]'s form), once claimed.
    pub claimed_by: Option<String>,
}

/// Who counts a join: the batch whose first write completed it, named with its kind so
/// a prediction batch and a label batch of the same id stay two claimants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinClaimant<'a> {
    /// A prediction batch that found its label waiting.
    Predictions(&'a str),
    /// A label batch that found its prediction waiting.
    Actuals(&'a str),
}

impl JoinClaimant<'_> {
    /// The stored form, `predictions:<batch_id>` or `actuals:<batch_id>`.
    pub fn stored(&self) -> String {
        match self {
            Self::Predictions(batch) => format!("predictions:{batch}"),
            Self::Actuals(batch) => format!("actuals:{batch}"),
        }
    }
}

/// Predictions awaiting their labels and labels awaiting their predictions, one item
/// per (tenant, model, prediction id), each kept until its `expires`.
///
/// A join is claimed by the side whose *first* write finds the other side there, in
/// that same atomic write, so of two sides arriving at once exactly one claims it, and
/// a retried write changes nothing: it reads back what the first one stored.
pub trait LabelStore: Send + Sync {
    /// Stores the prediction side of `prediction.prediction_id` for `batch_id` —
    /// claiming the join for [`JoinClaimant::Predictions`] when a label is there —
    /// unless a prediction is stored for the id already (then nothing changes: a retry
    /// of the same batch, or another batch reusing the id). Returns the item as stored.
    fn put_awaiting(
        &self,
        model: ModelRef<'_>,
        prediction: &AwaitingPrediction,
        batch_id: &str,
        expires: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<LabelItem>> + Send;

    /// Stores the label side of `label.prediction_id` for `batch_id` — claiming the
    /// join for [`JoinClaimant::Actuals`] when a prediction made at or after
    /// `joinable_since` is there — unless a label is stored for the id already (the
    /// first label wins; then nothing changes). Returns the item as stored.
    fn put_label(
        &self,
        model: ModelRef<'_>,
        label: &LateLabel,
        batch_id: &str,
        expires: DateTime<Utc>,
        joinable_since: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<LabelItem>> + Send;
}

/// A (tenant, model, minute) with partials not yet rolled up, as last marked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendingMinute {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// Start of the minute.
    pub minute: DateTime<Utc>,
    /// How many partials had been marked when this was read; grows with every mark.
    pub seq: u64,
}

/// What aggregation reads of the partials and how it settles its work.
pub trait PendingWork: Send + Sync {
    /// Every pending minute of the models in `shards` (`domain::shard`).
    fn pending_minutes(
        &self,
        shards: Range<u32>,
    ) -> impl Future<Output = StoreResult<Vec<PendingMinute>>> + Send;

    /// The partial states of a (tenant, model, minute).
    fn partials_of(
        &self,
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<WindowState>>> + Send;

    /// Removes the mark if no partial was marked since it was read (its `seq` is
    /// unchanged); returns whether it was removed.
    fn settle(&self, pending: &PendingMinute) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// A stored rollup: the merged state of one model over one span.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// Its span's length.
    pub granularity: Granularity,
    /// Its span's start (aligned to the granularity).
    pub start: DateTime<Utc>,
    /// Revision: grows whenever the sources grow, so a stale writer cannot overwrite
    /// a newer rollup (minute: the number of partials merged; hour and day: the sum
    /// of their parts' revisions).
    pub rev: u64,
    /// The merged window state.
    pub state: WindowState,
}

impl Rollup {
    /// The (tenant, model) pair the rollup belongs to.
    pub fn model(&self) -> ModelRef<'_> {
        ModelRef::new(&self.tenant, &self.model_id)
    }
}

/// Minute, hour and day rollups.
pub trait RollupStore: Send + Sync {
    /// The rollups of one model and granularity whose start lies in `span`, ordered
    /// by start.
    fn rollups(
        &self,
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> impl Future<Output = StoreResult<Vec<Rollup>>> + Send;

    /// Stores a minute rollup replacing `previous` (the one read before, if any) and
    /// adds `delta` to the model's counter totals, atomically; refused (returns
    /// `false`) when the stored revision is not `previous_rev`, or when `delta` records
    /// named error types and the totals' record no longer holds
    /// `delta.named_error_types_read` of them: re-read both and try again.
    fn put_minute_rollup(
        &self,
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Stores an hour or day rollup unless one with this or a newer revision is
    /// stored; returns whether it was written.
    fn put_rollup(&self, rollup: &Rollup) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The model's counter totals.
    fn counter_totals(
        &self,
        model: ModelRef<'_>,
    ) -> impl Future<Output = StoreResult<CounterTotals>> + Send;
}

/// An exporter's position for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    /// The tenant.
    pub tenant: TenantId,
    /// The model.
    pub model_id: ModelId,
    /// End of the last minute delivered; `None` before the first delivery.
    pub through: Option<DateTime<Utc>>,
    /// End of the latest minute rolled up.
    pub rolled_through: DateTime<Utc>,
    /// Roll-ups of the model noted so far: grows with every roll-up, also one of late
    /// data behind `rolled_through`, which changes the cumulative counters.
    pub rolled_seq: u64,
    /// `rolled_seq` as of the last delivery: the counters delivered include every
    /// roll-up up to it.
    pub exported_seq: u64,
}

impl ExportCursor {
    /// Whether the exporter has not delivered everything rolled: minutes past
    /// `through`, or counters changed by a roll-up since the last delivery.
    pub fn lags(&self) -> bool {
        self.through.is_none_or(|t| t < self.rolled_through) || self.exported_seq < self.rolled_seq
    }
}

/// Per-exporter cursors over the rolled minutes.
pub trait ExportCursors: Send + Sync {
    /// Records a roll-up of the model, for each of `exporters`: `rolled_through` only
    /// ever moves forward, `rolled_seq` grows by one.
    fn note_rolled(
        &self,
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The cursors of `exporter` that lag behind what is rolled up, of the models in
    /// `shards`.
    fn lagging_cursors(
        &self,
        exporter: &str,
        shards: Range<u32>,
    ) -> impl Future<Output = StoreResult<Vec<ExportCursor>>> + Send;

    /// Records the delivery of `cursor` (as read): `through` and `exported_seq` (to
    /// `cursor.rolled_seq`) move forward, never backwards.
    fn advance_cursor(
        &self,
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// What the models table holds about a model besides its registration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSettings {
    /// Registered and captured baselines.
    pub baselines: Baselines,
    /// The custom rules, if a set was ever stored.
    pub rules: Option<CustomRules>,
    /// The latest trends, if computed.
    pub trends: Option<TrendReport>,
    /// The reference window's state as `evaluate` last read it, if taken.
    pub reference: Option<ReferenceSnapshot>,
}

/// One of a model's settings, to store.
#[derive(Debug, Clone, Copy)]
pub enum SettingWrite<'a> {
    /// Replaces the registered baseline.
    RegisteredBaseline(&'a RegisteredBaseline),
    /// Stores the captured baseline unless one is stored (it is captured once).
    CapturedBaseline(&'a CapturedBaseline),
    /// Replaces the custom rule set.
    Rules(&'a CustomRules),
    /// Replaces the trends.
    Trends(&'a TrendReport),
    /// Replaces the reference window's snapshot.
    Reference(&'a ReferenceSnapshot),
}

impl SettingWrite<'_> {
    /// Whether the write stores only where nothing is stored yet.
    pub fn only_new(self) -> bool {
        matches!(self, Self::CapturedBaseline(_))
    }

    /// Applies the write to `settings`; answers whether it changed them.
    pub fn apply(self, settings: &mut ModelSettings) -> bool {
        match self {
            Self::RegisteredBaseline(baseline) => {
                settings.baselines.registered = Some(baseline.clone());
            }
            Self::CapturedBaseline(baseline) => {
                if settings.baselines.captured.is_some() {
                    return false;
                }
                settings.baselines.captured = Some(baseline.clone());
            }
            Self::Rules(rules) => settings.rules = Some(rules.clone()),
            Self::Trends(trends) => settings.trends = Some(trends.clone()),
            Self::Reference(snapshot) => settings.reference = Some(snapshot.clone()),
        }
        true
    }
}

/// Baselines, rules and trends of each model (the models table).
pub trait ModelSettingsStore: Send + Sync {
    /// Everything stored for the tenant's model (defaults when nothing is).
    fn model_settings(
        &self,
        model: ModelRef<'_>,
    ) -> impl Future<Output = StoreResult<ModelSettings>> + Send;

    /// Stores `write` for the tenant's model; answers whether it was stored (`false`
    /// only for a captured baseline when one is stored already).
    fn put_setting(
        &self,
        model: ModelRef<'_>,
        write: SettingWrite<'_>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// A page request of the alert history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts in this state, if given.
    pub state: Option<AlertState>,
    /// At most this many alerts.
    pub limit: usize,
    /// Continue after this alert id (the previous page's last).
    pub after: Option<String>,
}

/// One page of the alert history, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertRecord>,
    /// The alert id to continue after, when more may follow.
    pub next: Option<String>,
}

/// Rule states and the alert history (the alerts table).
pub trait AlertStore: Send + Sync {
    /// The stored state of every rule of the model.
    fn rule_states(
        &self,
        model: ModelRef<'_>,
    ) -> impl Future<Output = StoreResult<Vec<RuleState>>> + Send;

    /// Stores `state` if the stored state's version is `state.version − 1` (no state
    /// stored when `state.version` is 1); with `alert`, atomically also stores it in
    /// the history (replacing the entry of the same alert id) and keeps the tenant's
    /// index of firing alerts. Returns whether it was stored.
    fn save_rule_state(
        &self,
        model: ModelRef<'_>,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Removes a rule's state if its version is still `version`; with `alert` (the
    /// rule's resolved alert), atomically stores it in the history and drops it from
    /// the firing index. Returns whether it was removed.
    fn remove_rule_state(
        &self,
        model: ModelRef<'_>,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// A page of the model's alert history, newest `started_at` first.
    fn alerts(
        &self,
        model: ModelRef<'_>,
        query: &AlertQuery,
    ) -> impl Future<Output = StoreResult<AlertPage>> + Send;

    /// How many alerts fire now, per model of the tenant (models without any absent).
    fn firing_counts(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<std::collections::BTreeMap<ModelId, u64>>> + Send;
}

/// Where alerts are published (the SNS topic).
pub trait AlertNotifier: Send + Sync {
    /// Publishes one alert transition. `StoreError::Unavailable` when the topic could
    /// not be reached (the caller retries on its next run).
    fn notify(&self, alert: &AlertRecord) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A tenant's alert subscriptions (the models table).
pub trait SubscriptionStore: Send + Sync {
    /// The tenant's subscriptions (none when never set).
    fn subscriptions(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<AlertSubscriptions>> + Send;

    /// Replaces the tenant's subscriptions.
    fn put_subscriptions(
        &self,
        tenant: &TenantId,
        subscriptions: &AlertSubscriptions,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The alert topic's subscriptions (SNS), each filtered on one tenant's alerts.
pub trait TopicSubscriptions: Send + Sync {
    /// Subscribes `target` (e-mail or SQS) to `tenant`'s alerts; answers the
    /// subscription's ARN. Subscribing the same target again answers the same ARN.
    fn subscribe(
        &self,
        tenant: &TenantId,
        target: &SubscriptionTarget,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Removes a subscription (one already gone is not an error).
    fn unsubscribe(&self, subscription_arn: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// One signed webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery<'a> {
    /// The URL.
    pub url: &'a str,
    /// The subscription's id (`X-Modelwatch-Subscription`).
    pub subscription_id: &'a str,
    /// The subscription's signing secret.
    pub secret: &'a str,
    /// The delivery's id, the same on every retry (`X-Modelwatch-Delivery`).
    pub delivery_id: &'a str,
    /// The JSON body: the alert, as SNS carries it.
    pub body: &'a [u8],
}

/// Posts alerts to tenants' webhooks.
pub trait WebhookSender: Send + Sync {
    /// Delivers one alert to one webhook (retrying as the sender's policy says).
    fn deliver(
        &self,
        delivery: &WebhookDelivery<'_>,
    ) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

/// One message for a work queue: its body, the group it is ordered within (one message
/// of a group is handled at a time) and the id that makes a resend within the queue's
/// deduplication window a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Handled one at a time, in order, with the other messages of its group.
    pub group: String,
    /// A second message with this id within the deduplication window is dropped.
    pub deduplication_id: String,
    /// What the worker reads.
    pub body: String,
}

/// Where the scheduled runs' coordinator puts the work of its shard workers.
pub trait ShardQueue: Send + Sync {
    /// Where the messages go (the queue's URL), for reports.
    fn address(&self) -> &str;

    /// Enqueues every message, or fails: `StoreError::Unavailable` when some could not
    /// be enqueued (sending all again is safe: the deduplication ids drop the copies).
    fn enqueue(&self, messages: &[QueueMessage]) -> impl Future<Output = StoreResult<()>> + Send;

    /// Makes a received message (by its receipt handle) visible again after `delay`
    /// instead of after the queue's visibility timeout.
    fn redeliver_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Why an export did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// The receiver is unavailable: keep the cursor, retry next run.
    #[error("receiver unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The receiver refused the data as invalid: log it and move on.
    #[error("receiver refused the data")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A metrics receiver.
pub trait MetricsExporter: Send + Sync {
    /// Its name, which keys its cursors (`cloudwatch`, `prometheus`).
    fn name(&self) -> &'static str;

    /// How `models` go out: the sizes of consecutive groups of whole models, one
    /// request each, so a request that fails or is refused concerns only its group's
    /// models (their cursors alone stay or move).
    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize>;

    /// Delivers the exports, in one request (a group of [`request_groups`]).
    ///
    /// [`request_groups`]: Self::request_groups
    fn export(
        &self,
        models: &[ModelExport],
    ) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

/// The Prometheus exporter over any [`SeriesWriter`] (the remote-write client, its
/// memory twin): every model's series (`domain::prometheus_series`), all models in one
/// request — a model's series are its own (they carry `model_id` and `tenant_id`), so
/// a refused request can be split to find the model refused without touching the
/// others' order.
#[derive(Debug, Default)]
pub struct PrometheusSeries<W>(pub W);

impl<W: SeriesWriter> MetricsExporter for PrometheusSeries<W> {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn request_groups(&self, models: &[ModelExport]) -> Vec<usize> {
        vec![models.len()]
    }

    async fn export(&self, models: &[ModelExport]) -> Result<(), ExportFailure> {
        self.0.write_series(&prometheus_series(models)).await
    }
}

/// A receiver of ready-made CloudWatch data.
pub trait MetricDataWriter: Send + Sync {
    /// Puts the data (nothing when there are none).
    fn write_data(&self, data: &[Datum]) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

/// A receiver of ready-made Prometheus series.
pub trait SeriesWriter: Send + Sync {
    /// Writes the series (nothing when there are none).
    fn write_series(
        &self,
        series: &[Series],
    ) -> impl Future<Output = Result<(), ExportFailure>> + Send;
}

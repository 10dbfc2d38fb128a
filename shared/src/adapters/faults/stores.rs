//! The ports of [`Faulty`]: every method passes through [`Faulty::call`]. A port
//! method is one entry here — its [`Op`] constant, access and signature — so a method
//! added to a port is one entry added.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};

use super::{Faulty, Op};
use crate::domain::TenantQuotas;
use crate::domain::alerting::state::{AlertRecord, RuleState};
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::labels::{AwaitingPrediction, LateLabel};
use crate::domain::slice::{SegmentCaps, Slice};
use crate::domain::{
    CounterDelta, CounterTotals, Granularity, ModelExport, Series, TimeSpan, WindowState,
};
use crate::error::StoreResult;
use crate::ports::{
    AlertNotifier, AlertPage, AlertQuery, AlertStore, BatchClaim, BatchKey, ExportCursor,
    ExportCursors, KeptSegment, LabelItem, LabelStore, ModelRegistry, ModelSettings,
    ModelSettingsStore, ModelSighting, ModelVersion, PartialKey, PartialStore, PendingMinute,
    PendingWork, PredictionCount, PutOutcome, RegisteredModel, RegistryError, Rollup, RollupStore,
    SegmentSighting, SettingWrite,
};
use crate::ports::{ExportFailure, MetricsExporter, SeriesWriter};

/// Implements `$port` for [`Faulty<S>`] where `S` implements it: each `pass` method
/// is answered by the inner store directly (no call is made); each `const` names the
/// [`Op`] of a method, `read` or `write`, whose calls go through [`Faulty::call`].
macro_rules! faulty_port {
    ($port:ident {
        $(pass $pass:ident($($parg:ident: $pty:ty),* $(,)?) -> $pass_ret:ty;)*
        $(const $op:ident = $access:ident $method:ident(
            $($arg:ident: $ty:ty),* $(,)?
        ) -> $ret:ty;)*
    }) => {
        impl Op {
            $(
                #[doc = concat!(
                    "[`", stringify!($port), "::", stringify!($method), "`] (",
                    stringify!($access), ")."
                )]
                pub const $op: Op = Op::$access(stringify!($method));
            )*
        }

        impl<S: $port> $port for Faulty<S> {
            $(
                fn $pass(&self, $($parg: $pty),*) -> $pass_ret {
                    self.inner.$pass($($parg),*)
                }
            )*
            $(
                async fn $method(&self, $($arg: $ty),*) -> $ret {
                    self.call(Op::$op, self.inner.$method($($arg),*)).await
                }
            )*
        }
    };
}

faulty_port!(ModelRegistry {
    const RECORD_SIGHTING = write record_sighting(
        sighting: &ModelSighting,
        max_models: u64,
    ) -> Result<(), RegistryError>;
    const RECORD_VERSION = write record_version(
        sighting: &ModelSighting,
        max_versions: u64,
    ) -> StoreResult<Option<Slice>>;
    const RECORD_SEGMENT = write record_segment(
        sighting: SegmentSighting<'_>,
        caps: SegmentCaps,
    ) -> StoreResult<Slice>;
    const SEGMENTS = read segments(
        model: ModelRef<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<KeptSegment>>;
    const VERSIONS = read versions(
        model: ModelRef<'_>,
    ) -> StoreResult<Vec<ModelVersion>>;
    const LIST_MODELS = read list_models(
        tenant: &TenantId,
    ) -> StoreResult<Vec<RegisteredModel>>;
    const MODEL = read model(
        model: ModelRef<'_>,
    ) -> StoreResult<Option<RegisteredModel>>;
    const TENANT_QUOTAS = read tenant_quotas(
        tenant: &TenantId,
    ) -> StoreResult<TenantQuotas>;
    const ACTIVE_MODELS = read active_models(
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> StoreResult<Vec<RegisteredModel>>;
});

faulty_port!(PartialStore {
    const CLAIM_BATCH = write claim_batch(
        batch: &BatchKey,
        digest: &str,
    ) -> StoreResult<BatchClaim>;
    const PUT_BATCH_RECEIPT = write put_batch_receipt(
        batch: &BatchKey,
        receipt: &[u8],
    ) -> StoreResult<()>;
    const RELEASE_BATCH = write release_batch(
        batch: &BatchKey,
        digest: &str,
    ) -> StoreResult<()>;
    const PUT_PARTIAL = write put_partial(
        key: &PartialKey,
        state: &WindowState,
    ) -> StoreResult<PutOutcome>;
    const MARK_PENDING = write mark_pending(key: &PartialKey) -> StoreResult<()>;
    const COUNT_PREDICTIONS = write count_predictions(
        count: &PredictionCount<'_>,
    ) -> StoreResult<bool>;
});

faulty_port!(LabelStore {
    const PUT_AWAITING = write put_awaiting(
        model: ModelRef<'_>,
        prediction: &AwaitingPrediction,
        batch_id: &str,
        expires: DateTime<Utc>,
    ) -> StoreResult<LabelItem>;
    const PUT_LABEL = write put_label(
        model: ModelRef<'_>,
        label: &LateLabel,
        batch_id: &str,
        expires: DateTime<Utc>,
        joinable_since: DateTime<Utc>,
    ) -> StoreResult<LabelItem>;
});

faulty_port!(PendingWork {
    const PENDING_MINUTES = read pending_minutes(
        shards: Range<u32>,
    ) -> StoreResult<Vec<PendingMinute>>;
    const PARTIALS_OF = read partials_of(
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> StoreResult<Vec<WindowState>>;
    const SETTLE = write settle(pending: &PendingMinute) -> StoreResult<bool>;
});

faulty_port!(RollupStore {
    const ROLLUPS = read rollups(
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> StoreResult<Vec<Rollup>>;
    const PUT_MINUTE_ROLLUP = write put_minute_rollup(
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> StoreResult<bool>;
    const PUT_ROLLUP = write put_rollup(rollup: &Rollup) -> StoreResult<bool>;
    const COUNTER_TOTALS = read counter_totals(
        model: ModelRef<'_>,
    ) -> StoreResult<CounterTotals>;
});

faulty_port!(ExportCursors {
    const NOTE_ROLLED = write note_rolled(
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> StoreResult<()>;
    const LAGGING_CURSORS = read lagging_cursors(
        exporter: &str,
        shards: Range<u32>,
    ) -> StoreResult<Vec<ExportCursor>>;
    const ADVANCE_CURSOR = write advance_cursor(
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> StoreResult<()>;
});

faulty_port!(ModelSettingsStore {
    const MODEL_SETTINGS = read model_settings(
        model: ModelRef<'_>,
    ) -> StoreResult<ModelSettings>;
    const PUT_SETTING = write put_setting(
        model: ModelRef<'_>,
        write: SettingWrite<'_>,
    ) -> StoreResult<bool>;
});

faulty_port!(AlertStore {
    const RULE_STATES = read rule_states(
        model: ModelRef<'_>,
    ) -> StoreResult<Vec<RuleState>>;
    const SAVE_RULE_STATE = write save_rule_state(
        model: ModelRef<'_>,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool>;
    const REMOVE_RULE_STATE = write remove_rule_state(
        model: ModelRef<'_>,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> StoreResult<bool>;
    const ALERTS = read alerts(
        model: ModelRef<'_>,
        query: &AlertQuery,
    ) -> StoreResult<AlertPage>;
    const FIRING_COUNTS = read firing_counts(
        tenant: &TenantId,
    ) -> StoreResult<BTreeMap<ModelId, u64>>;
});

faulty_port!(AlertNotifier {
    const NOTIFY = write notify(alert: &AlertRecord) -> StoreResult<()>;
});

faulty_port!(SeriesWriter {
    const WRITE_SERIES = write write_series(series: &[Series]) -> Result<(), ExportFailure>;
});

faulty_port!(MetricsExporter {
    pass name() -> &'static str;
    pass request_groups(models: &[ModelExport]) -> Vec<usize>;
    const EXPORT = write export(models: &[ModelExport]) -> Result<(), ExportFailure>;
});

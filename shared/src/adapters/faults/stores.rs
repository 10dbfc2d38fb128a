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
use crate::error::StoreError;
use crate::ports::{
    AlertNotifier, AlertPage, AlertQuery, AlertStore, BatchClaim, BatchKey, ExportCursor,
    ExportCursors, KeptSegment, LabelItem, LabelStore, ModelRegistry, ModelSettings,
    ModelSettingsStore, ModelSighting, ModelVersion, PartialKey, PartialStore, PendingMinute,
    PendingWork, PredictionCount, PutOutcome, RegisteredModel, RegistryError, Rollup, RollupStore,
    SettingWrite,
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
    ) -> Result<Option<Slice>, StoreError>;
    const RECORD_SEGMENT = write record_segment(
        model: ModelRef<'_>,
        key: &str,
        value: &str,
        day: DateTime<Utc>,
        caps: SegmentCaps,
    ) -> Result<Slice, StoreError>;
    const SEGMENTS = read segments(
        model: ModelRef<'_>,
        since: DateTime<Utc>,
    ) -> Result<Vec<KeptSegment>, StoreError>;
    const VERSIONS = read versions(
        model: ModelRef<'_>,
    ) -> Result<Vec<ModelVersion>, StoreError>;
    const LIST_MODELS = read list_models(
        tenant: &TenantId,
    ) -> Result<Vec<RegisteredModel>, StoreError>;
    const MODEL = read model(
        model: ModelRef<'_>,
    ) -> Result<Option<RegisteredModel>, StoreError>;
    const TENANT_QUOTAS = read tenant_quotas(
        tenant: &TenantId,
    ) -> Result<TenantQuotas, StoreError>;
    const ACTIVE_MODELS = read active_models(
        since: DateTime<Utc>,
        shards: Range<u32>,
    ) -> Result<Vec<RegisteredModel>, StoreError>;
});

faulty_port!(PartialStore {
    const CLAIM_BATCH = write claim_batch(
        batch: &BatchKey,
        digest: &str,
    ) -> Result<BatchClaim, StoreError>;
    const PUT_BATCH_RECEIPT = write put_batch_receipt(
        batch: &BatchKey,
        receipt: &[u8],
    ) -> Result<(), StoreError>;
    const RELEASE_BATCH = write release_batch(
        batch: &BatchKey,
        digest: &str,
    ) -> Result<(), StoreError>;
    const PUT_PARTIAL = write put_partial(
        key: &PartialKey,
        state: &WindowState,
    ) -> Result<PutOutcome, StoreError>;
    const MARK_PENDING = write mark_pending(key: &PartialKey) -> Result<(), StoreError>;
    const COUNT_PREDICTIONS = write count_predictions(
        count: &PredictionCount<'_>,
    ) -> Result<bool, StoreError>;
});

faulty_port!(LabelStore {
    const PUT_AWAITING = write put_awaiting(
        model: ModelRef<'_>,
        prediction: &AwaitingPrediction,
        batch_id: &str,
        expires: DateTime<Utc>,
    ) -> Result<LabelItem, StoreError>;
    const PUT_LABEL = write put_label(
        model: ModelRef<'_>,
        label: &LateLabel,
        batch_id: &str,
        expires: DateTime<Utc>,
        joinable_since: DateTime<Utc>,
    ) -> Result<LabelItem, StoreError>;
});

faulty_port!(PendingWork {
    const PENDING_MINUTES = read pending_minutes(
        shards: Range<u32>,
    ) -> Result<Vec<PendingMinute>, StoreError>;
    const PARTIALS_OF = read partials_of(
        model: ModelRef<'_>,
        minute: DateTime<Utc>,
    ) -> Result<Vec<WindowState>, StoreError>;
    const SETTLE = write settle(pending: &PendingMinute) -> Result<bool, StoreError>;
});

faulty_port!(RollupStore {
    const ROLLUPS = read rollups(
        model: ModelRef<'_>,
        granularity: Granularity,
        span: TimeSpan,
    ) -> Result<Vec<Rollup>, StoreError>;
    const PUT_MINUTE_ROLLUP = write put_minute_rollup(
        rollup: &Rollup,
        previous_rev: Option<u64>,
        delta: &CounterDelta,
    ) -> Result<bool, StoreError>;
    const PUT_ROLLUP = write put_rollup(rollup: &Rollup) -> Result<bool, StoreError>;
    const COUNTER_TOTALS = read counter_totals(
        model: ModelRef<'_>,
    ) -> Result<CounterTotals, StoreError>;
});

faulty_port!(ExportCursors {
    const NOTE_ROLLED = write note_rolled(
        exporters: &[&str],
        model: ModelRef<'_>,
        rolled_through: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    const LAGGING_CURSORS = read lagging_cursors(
        exporter: &str,
        shards: Range<u32>,
    ) -> Result<Vec<ExportCursor>, StoreError>;
    const ADVANCE_CURSOR = write advance_cursor(
        exporter: &str,
        cursor: &ExportCursor,
        through: DateTime<Utc>,
    ) -> Result<(), StoreError>;
});

faulty_port!(ModelSettingsStore {
    const MODEL_SETTINGS = read model_settings(
        model: ModelRef<'_>,
    ) -> Result<ModelSettings, StoreError>;
    const PUT_SETTING = write put_setting(
        model: ModelRef<'_>,
        write: SettingWrite<'_>,
    ) -> Result<bool, StoreError>;
});

faulty_port!(AlertStore {
    const RULE_STATES = read rule_states(
        model: ModelRef<'_>,
    ) -> Result<Vec<RuleState>, StoreError>;
    const SAVE_RULE_STATE = write save_rule_state(
        model: ModelRef<'_>,
        state: &RuleState,
        alert: Option<&AlertRecord>,
    ) -> Result<bool, StoreError>;
    const REMOVE_RULE_STATE = write remove_rule_state(
        model: ModelRef<'_>,
        rule_id: &str,
        version: u64,
        alert: Option<&AlertRecord>,
    ) -> Result<bool, StoreError>;
    const ALERTS = read alerts(
        model: ModelRef<'_>,
        query: &AlertQuery,
    ) -> Result<AlertPage, StoreError>;
    const FIRING_COUNTS = read firing_counts(
        tenant: &TenantId,
    ) -> Result<BTreeMap<ModelId, u64>, StoreError>;
});

faulty_port!(AlertNotifier {
    const NOTIFY = write notify(alert: &AlertRecord) -> Result<(), StoreError>;
});

faulty_port!(SeriesWriter {
    const WRITE_SERIES = write write_series(series: &[Series]) -> Result<(), ExportFailure>;
});

faulty_port!(MetricsExporter {
    pass name() -> &'static str;
    pass request_groups(models: &[ModelExport]) -> Vec<usize>;
    const EXPORT = write export(models: &[ModelExport]) -> Result<(), ExportFailure>;
});

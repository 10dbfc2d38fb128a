//! How many round trips an answer costs: one, or one per started 1 MB page for a
//! query answering many items. The one place answer sizes are estimated — from the
//! bytes of the returned states plus a fixed size per item. When the memory stores
//! report exact page counts, [`ResponseSize::round_trips`] is the hook to read them
//! from instead.

use std::collections::BTreeMap;

use crate::domain::TenantQuotas;
use crate::domain::alerting::state::RuleState;
use crate::domain::ids::ModelId;
use crate::domain::slice::Slice;
use crate::domain::{CounterTotals, WindowState};
use crate::ports::{
    AlertPage, BatchClaim, ExportCursor, KeptSegment, LabelItem, ModelSettings, ModelVersion,
    PendingMinute, PutOutcome, RegisteredModel, Rollup,
};

/// The most a DynamoDB `Query` or `Scan` returns per request.
const PAGE_BYTES: usize = 1 << 20;

/// Estimated bytes of an item besides its state: keys, attribute names, numbers.
const ITEM_BYTES: usize = 100;

/// Estimated bytes of an item holding a JSON document (a rule state, an alert).
const DOCUMENT_ITEM_BYTES: usize = 1_000;

/// The size of a store's answer.
pub(super) trait ResponseSize {
    /// Estimated bytes read to answer; 0 for an answer of one item (a single request,
    /// whatever its size).
    fn bytes(&self) -> usize {
        0
    }

    /// Round trips to fetch the answer: one per started 1 MB page, at least one.
    fn round_trips(&self) -> u64 {
        u64::try_from(self.bytes().div_ceil(PAGE_BYTES).max(1)).unwrap_or(u64::MAX)
    }
}

/// Answers of one item or none: one round trip.
macro_rules! one_item {
    ($($answer:ty),* $(,)?) => {
        $(impl ResponseSize for $answer {})*
    };
}

one_item!(
    (),
    bool,
    PutOutcome,
    BatchClaim,
    Option<RegisteredModel>,
    CounterTotals,
    ModelSettings,
    LabelItem,
    String,
    TenantQuotas,
    Option<Slice>,
    Slice,
);

/// An item of a query's answer.
pub(super) trait ItemSize {
    /// Its estimated bytes in the store.
    fn item_bytes(&self) -> usize;
}

impl<T: ItemSize> ResponseSize for Vec<T> {
    fn bytes(&self) -> usize {
        self.iter().map(ItemSize::item_bytes).sum()
    }
}

impl ItemSize for WindowState {
    fn item_bytes(&self) -> usize {
        ITEM_BYTES + self.to_bytes().len()
    }
}

impl ItemSize for Rollup {
    fn item_bytes(&self) -> usize {
        self.state.item_bytes()
    }
}

/// Items without a state: the fixed estimate.
macro_rules! fixed_item {
    ($bytes:expr => $($item:ty),* $(,)?) => {
        $(impl ItemSize for $item {
            fn item_bytes(&self) -> usize {
                $bytes
            }
        })*
    };
}

fixed_item!(ITEM_BYTES => RegisteredModel, ModelVersion, PendingMinute, ExportCursor);
fixed_item!(DOCUMENT_ITEM_BYTES => RuleState);

/// A kept key: its item and one per value kept.
impl ItemSize for KeptSegment {
    fn item_bytes(&self) -> usize {
        ITEM_BYTES * (1 + self.values.len())
    }
}

impl ResponseSize for AlertPage {
    fn bytes(&self) -> usize {
        self.alerts.len() * DOCUMENT_ITEM_BYTES
    }
}

/// Firing counts per model, read from the firing index: one item per firing alert.
impl ResponseSize for BTreeMap<ModelId, u64> {
    fn bytes(&self) -> usize {
        let items = self.values().sum::<u64>();
        usize::try_from(items)
            .unwrap_or(usize::MAX)
            .saturating_mul(ITEM_BYTES)
    }
}

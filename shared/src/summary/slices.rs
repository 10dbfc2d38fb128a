//! A model's slices: the versions it keeps with their counts
//! (`GET …/performance/{model_id}/versions`), the segment keys and values it keeps
//! with theirs (`GET …/performance/{model_id}/segments`), and two slices side by side
//! (`GET …/performance/{model_id}/compare`, of versions or segments, statistics in
//! [`crate::domain::comparison`]).

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use super::{SummaryService, Window, parse_window, sliced};
use crate::domain::comparison::{Comparison, compare};
use crate::domain::ids::{ModelId, ModelRef};
use crate::domain::slice::{SEGMENT_DAYS_KEPT, Slice};
use crate::domain::{CounterTotals, Granularity, OVERFLOW_BUCKET, TimeSpan};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ModelRegistry, ModelSettingsStore, RegisteredModel, RollupStore};
use crate::query::{InvalidParameter, single_values};

/// Counter totals read at once for the versions and segments routes.
const CONCURRENT_TOTALS: usize = 8;

/// One kept version of a model with its counts since it was first seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionView {
    /// The `model_version`.
    pub model_version: String,
    /// Event time of its first prediction.
    pub first_seen: DateTime<Utc>,
    /// Event time of its latest prediction.
    pub last_seen: DateTime<Utc>,
    /// Its predictions rolled up so far, both statuses.
    pub prediction_count: u64,
    /// Of them, with status error.
    pub error_count: u64,
}

/// The answer of the versions route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionsView {
    /// The model.
    pub model_id: ModelId,
    /// Its kept versions, ordered by version.
    pub versions: Vec<VersionView>,
    /// Predictions of versions first seen past the cap, counted under
    /// `version:__other__` (0 while the cap was never reached).
    pub overflow_prediction_count: u64,
}

/// The versions of `model` with their counter totals.
pub async fn versions_of(
    registry: &impl ModelRegistry,
    rollups: &impl RollupStore,
    model: &RegisteredModel,
) -> StoreResult<VersionsView> {
    let kept = registry.versions(model.key()).await?;
    let slices: Vec<Slice> = kept
        .iter()
        .map(|v| v.model_version.as_str())
        .chain([OVERFLOW_BUCKET])
        .map(Slice::version)
        .collect();
    let mut counted = counts_of(rollups, model, &slices).await?;
    let overflow = counted.pop().unwrap_or_default();
    let versions = kept
        .into_iter()
        .zip(counted)
        .map(|(version, totals)| VersionView {
            model_version: version.model_version,
            first_seen: version.first_seen,
            last_seen: version.last_seen,
            prediction_count: totals.ok + totals.errors,
            error_count: totals.errors,
        })
        .collect();
    Ok(VersionsView {
        model_id: model.model_id.clone(),
        versions,
        overflow_prediction_count: overflow.ok + overflow.errors,
    })
}

/// One value of a segment key with its counts since it was first kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentValueView {
    /// The value.
    pub value: String,
    /// The latest UTC day it was kept on (a day's values are remembered
    /// [`SEGMENT_DAYS_KEPT`] days).
    pub last_day: DateTime<Utc>,
    /// Its predictions rolled up so far, both statuses.
    pub prediction_count: u64,
    /// Of them, with status error.
    pub error_count: u64,
}

/// One kept segment key of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentKeyView {
    /// The key.
    pub key: String,
    /// Its values kept on the last [`SEGMENT_DAYS_KEPT`] UTC days, ordered by value.
    pub values: Vec<SegmentValueView>,
    /// Predictions of values past a day's cap, counted under `<key>:__other__`.
    pub overflow_prediction_count: u64,
}

/// The answer of the segments route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentsView {
    /// The model.
    pub model_id: ModelId,
    /// Its kept keys, ordered by key.
    pub keys: Vec<SegmentKeyView>,
    /// Predictions' keys past the cap of keys, counted under
    /// `__other__:__other__` (0 while the cap was never reached).
    pub overflow_prediction_count: u64,
}

/// The kept segment keys of `model` with their recent values, and the counter totals
/// of each value and overflow slice.
pub async fn segments_of(
    registry: &impl ModelRegistry,
    rollups: &impl RollupStore,
    model: &RegisteredModel,
    now: DateTime<Utc>,
) -> StoreResult<SegmentsView> {
    let since = Granularity::Day.floor(now) - TimeDelta::days(SEGMENT_DAYS_KEPT - 1);
    let kept = registry.segments(model.key(), since).await?;
    // Each value's slice, then each key's overflow, then the keys' overflow.
    let slices: Vec<Slice> = kept
        .iter()
        .flat_map(|k| {
            let values = k.values.iter().map(|(value, _)| value.as_str());
            values
                .chain([OVERFLOW_BUCKET])
                .map(|value| Slice::segment(&k.key, value))
        })
        .chain([Slice::segment(OVERFLOW_BUCKET, OVERFLOW_BUCKET)])
        .collect();
    let mut counted = counts_of(rollups, model, &slices).await?.into_iter();
    let mut next = || counted.next().unwrap_or_default();
    let keys = kept
        .into_iter()
        .map(|k| SegmentKeyView {
            values: k
                .values
                .into_iter()
                .map(|(value, last_day)| {
                    let totals = next();
                    SegmentValueView {
                        value,
                        last_day,
                        prediction_count: totals.ok + totals.errors,
                        error_count: totals.errors,
                    }
                })
                .collect(),
            overflow_prediction_count: {
                let totals = next();
                totals.ok + totals.errors
            },
            key: k.key,
        })
        .collect();
    let overflow = next();
    Ok(SegmentsView {
        model_id: model.model_id.clone(),
        keys,
        overflow_prediction_count: overflow.ok + overflow.errors,
    })
}

/// The counter totals of each of `slices` of `model`, in order.
async fn counts_of(
    rollups: &impl RollupStore,
    model: &RegisteredModel,
    slices: &[Slice],
) -> StoreResult<Vec<CounterTotals>> {
    // Owned series ids: a closure over borrowed ones would make the future not `Send`
    // for every lifetime (the Lambda runtime needs it to be).
    let series: Vec<ModelId> = slices.iter().map(|s| model.model_id.series(s)).collect();
    let tenant = &model.tenant;
    stream::iter(series)
        .map(|series| async move { rollups.counter_totals(ModelRef::new(tenant, &series)).await })
        .buffered(CONCURRENT_TOTALS)
        .try_collect()
        .await
}

/// What the compare route is asked: two sides (`model`, or `version:<id>`) and a
/// window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareQuery {
    /// The side compared against (`baseline`); `None`: the whole model.
    pub baseline: Option<Slice>,
    /// The side judged (`candidate`); `None`: the whole model.
    pub candidate: Option<Slice>,
    /// The window both are read over (`window`, default 24 hours).
    pub window: Window,
}

/// The text naming the whole model as a side.
const WHOLE_MODEL: &str = "model";

impl CompareQuery {
    /// Reads `baseline` and `candidate` (required) and `window`, each at most once;
    /// anything else is refused.
    pub fn parse<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InvalidParameter> {
        let [baseline, candidate, window] =
            single_values(params, ["baseline", "candidate", "window"])?;
        let side = |name: &str, value: Option<&str>| {
            let Some(value) = value else {
                return Err(InvalidParameter {
                    parameter: name.to_owned(),
                    value: None,
                    reason: "is required: model or version:<model_version>".into(),
                    allowed: Vec::new(),
                });
            };
            if value == WHOLE_MODEL {
                return Ok(None);
            }
            Slice::parse(value)
                .map(Some)
                .map_err(|e| InvalidParameter::value(name, value, e.to_string(), vec![WHOLE_MODEL]))
        };
        Ok(Self {
            baseline: side("baseline", baseline)?,
            candidate: side("candidate", candidate)?,
            window: parse_window(window)?,
        })
    }
}

/// One side of a comparison: what it is and how much it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedSide {
    /// `model` or the slice (`version:<id>`).
    pub slice: String,
    /// Its predictions in the window.
    pub sample_count: u64,
    /// Its labeled predictions in the window.
    pub labeled_count: u64,
}

/// The answer of the compare route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceComparison {
    /// The model.
    pub model_id: ModelId,
    /// The window both sides are read over.
    pub window: Window,
    /// The side compared against.
    pub baseline: ComparedSide,
    /// The side judged.
    pub candidate: ComparedSide,
    /// Every metric side by side, the tests and the verdict.
    #[serde(flatten)]
    pub comparison: Comparison,
}

impl<S: RollupStore, M: ModelSettingsStore> SummaryService<S, M> {
    /// Compares the two sides of `query` of `model` (already looked up in the
    /// registry) over the window ending at `now`.
    pub async fn compare(
        &self,
        model: &RegisteredModel,
        query: &CompareQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<SliceComparison> {
        let span = TimeSpan::new(now - query.window.length(), now);
        let side = |slice: Option<&Slice>| {
            let sliced = sliced(model, slice);
            let name = slice.map_or_else(|| WHOLE_MODEL.to_owned(), Slice::to_string);
            async move {
                let (state, covered) = self.window.state(sliced.key(), span).await?;
                let metrics =
                    crate::domain::MetricSet::compute(&state, covered, Some(model.first_seen));
                let side = ComparedSide {
                    slice: name,
                    sample_count: metrics.predictions,
                    labeled_count: metrics.labeled,
                };
                Ok::<_, StoreError>((side, metrics))
            }
        };
        let (baseline, candidate) = futures_util::try_join!(
            side(query.baseline.as_ref()),
            side(query.candidate.as_ref())
        )?;
        Ok(SliceComparison {
            model_id: model.model_id.clone(),
            window: query.window,
            comparison: compare(&baseline.1, &candidate.1),
            baseline: baseline.0,
            candidate: candidate.0,
        })
    }
}

#[cfg(test)]
mod tests;

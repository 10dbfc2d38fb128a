//! The segment slices of a prediction batch: which `segment:<key>:<value>` series each
//! prediction counts in, within the model's caps ([`SegmentCaps`]).
//!
//! Each distinct (key, value) of a batch is recorded in the registry
//! ([`ModelRegistry::record_segment`]) for the UTC day of the batch's first event —
//! unless this container remembers the answer: a pair kept or refused stays so for
//! the rest of its day, so a warm container pays the registry once per pair and day,
//! not once per batch.
//!
//! The day is the events', not the arrival's: a retry of a batch (the same content,
//! hence the same first event) gets the same answers however late it comes, so its
//! partials go to the same slices and count once — a retry across midnight after a
//! value's cap filled would otherwise count its predictions in `__other__` and in the
//! value's own slice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::join::MinuteStates;
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::domain::slice::{SegmentCaps, Slice};
use crate::domain::{Floors, FoldError, Granularity, MeasuredPrediction, ValidBatch};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ModelRegistry, SegmentSighting};

/// Most answers a container remembers; past it, it forgets them all and asks again.
const MAX_REMEMBERED: usize = 100_000;

/// Registry writes in flight at once for one batch's new segments.
const CONCURRENT_SEGMENT_WRITES: usize = 8;

/// A pair of one model on one day as remembered: tenant, model, day, key, value.
type PairKey = (TenantId, ModelId, DateTime<Utc>, String, String);

/// The caps of a model's segments and the registry's answers this container remembers.
#[derive(Debug, Default)]
pub struct SegmentAdmission {
    /// The caps (`MODEL_SEGMENT_KEYS`, `MODEL_SEGMENT_VALUES`).
    pub caps: SegmentCaps,
    remembered: Mutex<HashMap<PairKey, Slice>>,
}

impl SegmentAdmission {
    /// Admission within `caps`, remembering nothing yet.
    pub fn new(caps: SegmentCaps) -> Self {
        Self {
            caps,
            remembered: Mutex::default(),
        }
    }

    /// The segment slices of the predictions of `batch`, for the UTC day of its
    /// earliest event `first`: one per
    /// key of a prediction's segment, except that all its keys past the cap share
    /// `segment:__other__:__other__`.
    pub async fn slices_of<R: ModelRegistry>(
        &self,
        registry: &R,
        model: ModelRef<'_>,
        batch: &ValidBatch,
        first: DateTime<Utc>,
    ) -> StoreResult<BatchSegments> {
        let day = Granularity::Day.floor(first);
        let pairs = batch.segment_pairs();
        if pairs.is_empty() {
            return Ok(BatchSegments::default());
        }
        let pair_key = |key: &str, value: &str| -> PairKey {
            let ModelRef { tenant, model_id } = model;
            (
                tenant.clone(),
                model_id.clone(),
                day,
                key.into(),
                value.into(),
            )
        };
        // Each pair's slice, by the pair's index in the batch.
        let mut answers: Vec<Option<Slice>> = vec![None; pairs.len()];
        let mut unknown: Vec<usize> = Vec::new();
        {
            let remembered = self.remembered();
            for (i, (key, value)) in pairs.iter().enumerate() {
                match remembered.get(&pair_key(key, value)) {
                    Some(slice) => answers[i] = Some(slice.clone()),
                    None => unknown.push(i),
                }
            }
        }
        let caps = self.caps;
        let recorded: Vec<(usize, Slice)> = stream::iter(unknown)
            .map(|i| async move {
                let (key, value) = &pairs[i];
                let slice = registry
                    .record_segment(
                        SegmentSighting {
                            model,
                            key,
                            value,
                            day,
                        },
                        caps,
                    )
                    .await?;
                Ok::<_, StoreError>((i, slice))
            })
            .buffer_unordered(CONCURRENT_SEGMENT_WRITES)
            .try_collect()
            .await?;
        {
            let mut remembered = self.remembered();
            if remembered.len() + recorded.len() > MAX_REMEMBERED {
                remembered.clear();
            }
            for (i, slice) in &recorded {
                let (key, value) = &pairs[*i];
                remembered.insert(pair_key(key, value), slice.clone());
            }
        }
        for (i, slice) in recorded {
            answers[i] = Some(slice);
        }
        // Distinct slices, in order; each pair pointed at its slice's index.
        let mut answered: Vec<(Slice, usize)> = answers
            .into_iter()
            .enumerate()
            .filter_map(|(i, slice)| Some((slice?, i)))
            .collect();
        answered.sort_unstable();
        let mut segments = BatchSegments::default();
        let mut slice_of_pair: Vec<u32> = vec![u32::MAX; pairs.len()];
        for (slice, pair) in answered {
            if segments.slices.last() != Some(&slice) {
                segments.slices.push(slice);
            }
            // At most one slice per pair: a batch's 10,000 predictions of 8 keys each
            // have far fewer than u32::MAX.
            slice_of_pair[pair] = u32::try_from(segments.slices.len() - 1).unwrap_or(u32::MAX);
        }
        segments.offsets.push(0);
        for prediction in &batch.predictions {
            let start = segments.indices.len();
            segments.indices.extend(
                prediction
                    .segment
                    .as_slice()
                    .iter()
                    .filter_map(|&pair| slice_of_pair.get(pair as usize).copied()),
            );
            let own = &mut segments.indices[start..];
            own.sort_unstable();
            let kept = dedup_sorted(own);
            segments.indices.truncate(start + kept);
            segments.offsets.push(segments.indices.len());
        }
        Ok(segments)
    }

    /// The remembered answers.
    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, Slice>> {
        self.remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many of the sorted `items` stay once repeats are moved to the end.
fn dedup_sorted(items: &mut [u32]) -> usize {
    let mut kept = 0;
    for i in 0..items.len() {
        if kept == 0 || items[i] != items[kept - 1] {
            items[kept] = items[i];
            kept += 1;
        }
    }
    kept
}

/// The segment slices of one batch's predictions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSegments {
    /// The distinct slices, ordered.
    pub slices: Vec<Slice>,
    /// Prediction `i`'s slices are `indices[offsets[i]..offsets[i + 1]]` (into
    /// `slices`); no offsets when no prediction has a segment.
    offsets: Vec<usize>,
    indices: Vec<u32>,
}

impl BatchSegments {
    /// The segment slices of prediction `index`.
    pub fn of(&self, index: usize) -> impl Iterator<Item = &Slice> {
        let range = match (self.offsets.get(index), self.offsets.get(index + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        };
        self.indices[range]
            .iter()
            .filter_map(|i| self.slices.get(*i as usize))
    }

    /// Each slice's states: the predictions of `batch` that count in it, folded per
    /// minute.
    pub fn partials(&self, batch: &ValidBatch) -> Result<BTreeMap<Slice, MinuteStates>, FoldError> {
        let mut states: Vec<MinuteStates> = vec![BTreeMap::new(); self.slices.len()];
        let mut minutes = Floors::new(Granularity::Minute);
        for (i, prediction) in batch.predictions.iter().enumerate() {
            let (Some(&start), Some(&end)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
                break;
            };
            let minute = minutes.floor(prediction.record.timestamp);
            // Measured once for all its slices.
            let measured = MeasuredPrediction::of(&prediction.record);
            for index in &self.indices[start..end] {
                if let Some(series) = states.get_mut(*index as usize) {
                    series.entry(minute).or_default().fold_measured(&measured)?;
                }
            }
        }
        Ok(self.slices.iter().cloned().zip(states).collect())
    }
}

#[cfg(test)]
mod tests;

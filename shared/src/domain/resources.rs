//! Resource utilization state: one [`GaugeStats`] per gauge (CPU, memory, GPU, queue
//! depth) and the model cache's hit and miss counters.
//!
//! A gauge keeps count, sum, min, max and its *last* sample — the sample with the greatest
//! timestamp; of samples sharing that timestamp, the greatest value (by `f64::total_cmp`),
//! so folding and merging in any order give the same state.

use chrono::{DateTime, Utc};

use super::bounds::{MAX_CACHE_COUNT, MAX_QUEUE_DEPTH};
use super::codec::{DecodeError, Reader, Writer};
use super::error::FoldError;
use super::record::ResourceSample;

/// Summary of one gauge's samples; exists only once a sample was seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStats {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last_time_ms: i64,
    last_value: f64,
}

impl GaugeStats {
    fn of(time_ms: i64, value: f64) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last_time_ms: time_ms,
            last_value: value,
        }
    }

    fn merge(&mut self, other: &Self) {
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let other_is_later = other
            .last_time_ms
            .cmp(&self.last_time_ms)
            .then_with(|| other.last_value.total_cmp(&self.last_value))
            .is_gt();
        if other_is_later {
            self.last_time_ms = other.last_time_ms;
            self.last_value = other.last_value;
        }
    }

    /// Number of samples (≥ 1).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean of the samples.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// Smallest sample.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest sample.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The latest sample's value (see the module docs for ties).
    pub fn last(&self) -> f64 {
        self.last_value
    }

    /// The latest sample's time; `None` only if a decoded time is outside chrono's range.
    pub fn last_time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.last_time_ms)
    }

    fn encode(&self, out: &mut Writer) {
        out.varint(self.count);
        out.f64(self.sum);
        out.f64(self.min);
        out.f64(self.max);
        out.signed_varint(self.last_time_ms);
        out.f64(self.last_value);
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let gauge = Self {
            count: input.varint("gauge count")?,
            // Values are ≥ 0: the sum may overflow to +∞, never to NaN.
            sum: input.f64("gauge sum")?,
            min: input.finite_f64("gauge min")?,
            max: input.finite_f64("gauge max")?,
            last_time_ms: input.signed_varint("gauge last time")?,
            last_value: input.finite_f64("gauge last value")?,
        };
        if gauge.count == 0
            || gauge.sum.is_nan()
            || gauge.sum < 0.0
            || gauge.min < 0.0
            || gauge.min > gauge.max
            || !(gauge.min..=gauge.max).contains(&gauge.last_value)
        {
            return Err(DecodeError::Invalid {
                what: "gauge statistics",
            });
        }
        Ok(gauge)
    }
}

/// Adds a sample to an optional gauge.
fn fold_gauge(gauge: &mut Option<GaugeStats>, time_ms: i64, value: Option<f64>) {
    if let Some(value) = value {
        let sample = GaugeStats::of(time_ms, value + 0.0);
        match gauge {
            Some(existing) => existing.merge(&sample),
            None => *gauge = Some(sample),
        }
    }
}

fn merge_gauge(ours: &mut Option<GaugeStats>, theirs: &Option<GaugeStats>) {
    match (ours.as_mut(), theirs) {
        (Some(ours), Some(theirs)) => ours.merge(theirs),
        (None, Some(theirs)) => *ours = Some(*theirs),
        (_, None) => {}
    }
}

/// Resource gauges and cache counters of one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceStats {
    cpu_utilization: Option<GaugeStats>,
    memory_utilization: Option<GaugeStats>,
    gpu_utilization: Option<GaugeStats>,
    queue_depth: Option<GaugeStats>,
    cache_hits: u64,
    cache_misses: u64,
}

/// Checks an optional gauge sample: finite and within `[0, max]` (`expected` says so).
fn validate_gauge(
    value: Option<f64>,
    field: &'static str,
    max: f64,
    expected: &'static str,
) -> Result<(), FoldError> {
    match value {
        Some(v) if !v.is_finite() => Err(FoldError::NonFinite { field }),
        Some(v) if !(0.0..=max).contains(&v) => Err(FoldError::OutOfRange {
            field,
            value: v,
            expected,
        }),
        _ => Ok(()),
    }
}

/// Checks an optional cache counter: at most [`MAX_CACHE_COUNT`].
fn validate_cache_count(value: Option<u64>, field: &'static str) -> Result<(), FoldError> {
    match value {
        Some(n) if n > MAX_CACHE_COUNT => Err(FoldError::OutOfRange {
            field,
            value: n as f64,
            expected: "count ≤ 1e9",
        }),
        _ => Ok(()),
    }
}

impl ResourceStats {
    /// Folds one sample, checking every field first (the state is unchanged on error).
    pub(crate) fn add(&mut self, sample: &ResourceSample) -> Result<(), FoldError> {
        const FRACTION: &str = "0 ≤ value ≤ 1";
        validate_gauge(sample.cpu_utilization, "cpu_utilization", 1.0, FRACTION)?;
        validate_gauge(
            sample.memory_utilization,
            "memory_utilization",
            1.0,
            FRACTION,
        )?;
        validate_gauge(sample.gpu_utilization, "gpu_utilization", 1.0, FRACTION)?;
        validate_gauge(
            sample.queue_depth,
            "queue_depth",
            MAX_QUEUE_DEPTH,
            "0 ≤ queue_depth ≤ 1e12",
        )?;
        validate_cache_count(sample.cache_hits, "cache_hits")?;
        validate_cache_count(sample.cache_misses, "cache_misses")?;
        let time_ms = sample.timestamp.timestamp_millis();
        fold_gauge(&mut self.cpu_utilization, time_ms, sample.cpu_utilization);
        fold_gauge(
            &mut self.memory_utilization,
            time_ms,
            sample.memory_utilization,
        );
        fold_gauge(&mut self.gpu_utilization, time_ms, sample.gpu_utilization);
        fold_gauge(&mut self.queue_depth, time_ms, sample.queue_depth);
        self.cache_hits = self
            .cache_hits
            .saturating_add(sample.cache_hits.unwrap_or(0));
        self.cache_misses = self
            .cache_misses
            .saturating_add(sample.cache_misses.unwrap_or(0));
        Ok(())
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        merge_gauge(&mut self.cpu_utilization, &other.cpu_utilization);
        merge_gauge(&mut self.memory_utilization, &other.memory_utilization);
        merge_gauge(&mut self.gpu_utilization, &other.gpu_utilization);
        merge_gauge(&mut self.queue_depth, &other.queue_depth);
        self.cache_hits = self.cache_hits.saturating_add(other.cache_hits);
        self.cache_misses = self.cache_misses.saturating_add(other.cache_misses);
    }

    /// CPU utilization samples (fractions in `[0, 1]`), `None` if none arrived.
    pub fn cpu_utilization(&self) -> Option<&GaugeStats> {
        self.cpu_utilization.as_ref()
    }

    /// Memory utilization samples (fractions in `[0, 1]`), `None` if none arrived.
    pub fn memory_utilization(&self) -> Option<&GaugeStats> {
        self.memory_utilization.as_ref()
    }

    /// GPU utilization samples (fractions in `[0, 1]`), `None` if none arrived.
    pub fn gpu_utilization(&self) -> Option<&GaugeStats> {
        self.gpu_utilization.as_ref()
    }

    /// Queue depth samples (pending requests), `None` if none arrived.
    pub fn queue_depth(&self) -> Option<&GaugeStats> {
        self.queue_depth.as_ref()
    }

    /// Model cache hits summed over the samples.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits
    }

    /// Model cache misses summed over the samples.
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses
    }

    /// A presence bit per gauge (cpu, memory, gpu, queue depth), the present gauges, then
    /// the cache hits and misses as varints.
    pub(crate) fn encode(&self, out: &mut Writer) {
        let gauges = self.gauges();
        let presence = gauges
            .iter()
            .enumerate()
            .fold(0u8, |bits, (i, g)| bits | (u8::from(g.is_some()) << i));
        out.u8(presence);
        gauges.iter().flatten().for_each(|g| g.encode(out));
        out.varint(self.cache_hits);
        out.varint(self.cache_misses);
    }

    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let presence = input.u8("gauge presence")?;
        if presence >> 4 != 0 {
            return Err(DecodeError::Invalid {
                what: "gauge presence",
            });
        }
        let mut read = |bit: u8| -> Result<Option<GaugeStats>, DecodeError> {
            if presence & (1 << bit) == 0 {
                Ok(None)
            } else {
                GaugeStats::decode(input).map(Some)
            }
        };
        let mut stats = Self {
            cpu_utilization: read(0)?,
            memory_utilization: read(1)?,
            gpu_utilization: read(2)?,
            queue_depth: read(3)?,
            ..Self::default()
        };
        stats.cache_hits = input.varint("cache hits")?;
        stats.cache_misses = input.varint("cache misses")?;
        Ok(stats)
    }

    fn gauges(&self) -> [Option<GaugeStats>; 4] {
        [
            self.cpu_utilization,
            self.memory_utilization,
            self.gpu_utilization,
            self.queue_depth,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time_ms: i64, queue_depth: f64) -> ResourceSample {
        ResourceSample {
            timestamp: DateTime::from_timestamp_millis(time_ms).expect("in range"),
            cpu_utilization: Some(0.5),
            memory_utilization: None,
            gpu_utilization: None,
            queue_depth: Some(queue_depth),
            cache_hits: Some(3),
            cache_misses: None,
        }
    }

    #[test]
    fn last_sample_is_the_latest_and_ties_break_on_the_value() {
        let mut forward = ResourceStats::default();
        let mut backward = ResourceStats::default();
        let samples = [
            sample(1_000, 7.0),
            sample(3_000, 2.0),
            sample(3_000, 5.0),
            sample(2_000, 9.0),
        ];
        samples.iter().for_each(|s| forward.add(s).expect("valid"));
        samples
            .iter()
            .rev()
            .for_each(|s| backward.add(s).expect("valid"));
        assert_eq!(forward, backward);
        let queue = forward.queue_depth().expect("sampled");
        assert_eq!(
            (queue.last(), queue.max(), queue.min(), queue.count()),
            (5.0, 9.0, 2.0, 4)
        );
        assert_eq!(forward.cache_hits(), 12);
        assert_eq!(forward.memory_utilization(), None);
    }

    #[test]
    fn invalid_fields_are_rejected_without_changes() {
        let mut stats = ResourceStats::default();
        let mut bad = sample(0, 1.0);
        bad.gpu_utilization = Some(1.5);
        assert!(matches!(
            stats.add(&bad),
            Err(FoldError::OutOfRange {
                field: "gpu_utilization",
                ..
            })
        ));
        bad.gpu_utilization = Some(f64::NAN);
        assert_eq!(
            stats.add(&bad),
            Err(FoldError::NonFinite {
                field: "gpu_utilization"
            })
        );
        bad.gpu_utilization = None;
        bad.queue_depth = Some(-1.0);
        assert!(matches!(
            stats.add(&bad),
            Err(FoldError::OutOfRange {
                field: "queue_depth",
                ..
            })
        ));
        assert_eq!(stats, ResourceStats::default());
    }
}

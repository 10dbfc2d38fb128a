//! The simulator's own ground truth: every prediction it sent, and the exact metrics of
//! any window computed from them — independent of the product's metric engine, so the
//! product's summaries can be checked against it.
//!
//! A prediction labeled late is known with its label and the time the label arrived,
//! so the metrics can be asked *as of* a point in simulated time: only the labels that
//! had arrived by then count.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One prediction as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRecord {
    /// Its timestamp.
    pub time: DateTime<Utc>,
    /// Its latency, ms.
    pub latency_ms: f64,
    /// Whether it was a failed request.
    pub failed: bool,
    /// Classifiers, labeled records: whether the prediction was right.
    pub correct: Option<bool>,
    /// Regressor, labeled records: the squared error.
    pub squared_error: Option<f64>,
    /// Labeled records whose label is sent late, by the label route: when the label
    /// arrives (its `timestamp`); `None` for a label sent with its prediction.
    pub label_at: Option<DateTime<Utc>>,
    /// The record has a label (`correct`), but it was never sent: the product never
    /// learns it. Counted by [`GroundTruth::metrics`] only.
    pub withheld: bool,
}

impl TruthRecord {
    /// Whether the record's label (if it has one) had arrived by `as_of`; a withheld
    /// label arrives only at the end of time.
    fn labeled_by(&self, as_of: DateTime<Utc>) -> bool {
        if self.withheld {
            return as_of == DateTime::<Utc>::MAX_UTC;
        }
        self.label_at.is_none_or(|at| at <= as_of)
    }
}

/// Everything sent, per model.
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    records: BTreeMap<String, Vec<TruthRecord>>,
}

/// Exact metrics of a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TruthMetrics {
    /// Predictions.
    pub predictions: u64,
    /// Failed predictions.
    pub errors: u64,
    /// Labeled predictions.
    pub labeled: u64,
    /// Correct / labeled (classifiers).
    pub accuracy: Option<f64>,
    /// √(mean squared error) (regressor).
    pub rmse: Option<f64>,
    /// Errors / predictions.
    pub error_rate: Option<f64>,
    /// Lower 95th percentile latency (rank ⌈0.95 n⌉), ms.
    pub latency_p95_ms: Option<f64>,
    /// Labeled / predictions.
    pub label_coverage: Option<f64>,
    /// Lower 95th percentile (rank ⌈0.95 n⌉) of label time − prediction time over the
    /// late labels, seconds (`None` without any).
    pub label_delay_p95_s: Option<f64>,
}

impl GroundTruth {
    /// Records one prediction of `model`.
    pub fn record(&mut self, model: &str, record: TruthRecord) {
        self.records
            .entry(model.to_owned())
            .or_default()
            .push(record);
    }

    /// The exact metrics of `model` over `[from, to)`, every label counted — also the
    /// late ones that had not arrived when the run ended, and the withheld ones.
    pub fn metrics(&self, model: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> TruthMetrics {
        self.metrics_as_of(model, from, to, DateTime::<Utc>::MAX_UTC)
    }

    /// The exact metrics of `model`'s predictions in `[from, to)` with the labels known
    /// at `as_of`: those sent with their predictions and the late ones arrived by then.
    pub fn metrics_as_of(
        &self,
        model: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> TruthMetrics {
        let inside: Vec<&TruthRecord> = self
            .records
            .get(model)
            .into_iter()
            .flatten()
            .filter(|r| r.time >= from && r.time < to)
            .collect();
        let known: Vec<&TruthRecord> = inside
            .iter()
            .copied()
            .filter(|r| r.labeled_by(as_of))
            .collect();
        let n = inside.len() as u64;
        let errors = inside.iter().filter(|r| r.failed).count() as u64;
        let correct: Vec<bool> = known.iter().filter_map(|r| r.correct).collect();
        let squared: Vec<f64> = known.iter().filter_map(|r| r.squared_error).collect();
        let labeled = (correct.len() + squared.len()) as u64;
        let latencies = inside.iter().map(|r| r.latency_ms).collect();
        let delays = known
            .iter()
            .filter_map(|r| r.label_at.map(|at| (at - r.time).num_milliseconds()))
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        TruthMetrics {
            predictions: n,
            errors,
            labeled,
            accuracy: (!correct.is_empty())
                .then(|| correct.iter().filter(|c| **c).count() as f64 / correct.len() as f64),
            rmse: (!squared.is_empty())
                .then(|| (squared.iter().sum::<f64>() / squared.len() as f64).sqrt()),
            error_rate: (n > 0).then(|| errors as f64 / n as f64),
            latency_p95_ms: lower_p95(latencies),
            label_coverage: (n > 0).then(|| labeled as f64 / n as f64),
            label_delay_p95_s: lower_p95(delays),
        }
    }
}

/// The lower 95th percentile of `values`: the one of rank ⌈0.95 n⌉ (1-based) in
/// ascending order; `None` when empty.
fn lower_p95(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let rank = (0.95 * values.len() as f64).ceil() as usize;
    rank.checked_sub(1).and_then(|i| values.get(i).copied())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_500_000, 0).expect("in range") + TimeDelta::minutes(minutes)
    }

    fn record(minute: i64, correct: Option<bool>, label_after: Option<i64>) -> TruthRecord {
        TruthRecord {
            time: at(minute),
            latency_ms: 10.0,
            failed: false,
            correct,
            squared_error: None,
            label_at: label_after.map(|m| at(minute + m)),
            withheld: false,
        }
    }

    /// Four predictions in minutes 0–3: one labeled inline (right), three labeled late
    /// (right after 60 min, wrong after 120 min, right after 90 min), and a failed one
    /// in minute 4 without a label.
    fn example() -> GroundTruth {
        let mut truth = GroundTruth::default();
        for r in [
            record(0, Some(true), None),
            record(1, Some(true), Some(60)),
            record(2, Some(false), Some(120)),
            record(3, Some(true), Some(90)),
            TruthRecord {
                failed: true,
                ..record(4, None, None)
            },
        ] {
            truth.record("late", r);
        }
        truth
    }

    #[test]
    fn as_of_counts_only_the_labels_arrived_by_then() {
        let truth = example();
        let (from, to) = (at(0), at(5));
        // Before any late label: only the inline one.
        let m = truth.metrics_as_of("late", from, to, at(60));
        assert_eq!((m.predictions, m.errors, m.labeled), (5, 1, 1));
        assert_eq!(m.accuracy, Some(1.0));
        assert_eq!(m.label_coverage, Some(0.2));
        assert_eq!(m.label_delay_p95_s, None);
        // Minute 1's label arrives at minute 61 (inclusive).
        let m = truth.metrics_as_of("late", from, to, at(61));
        assert_eq!((m.labeled, m.accuracy), (2, Some(1.0)));
        assert_eq!(m.label_coverage, Some(0.4));
        assert_eq!(m.label_delay_p95_s, Some(3600.0));
        // Minute 3's at 93: three labeled, all right; delays 3600 s and 5400 s.
        let m = truth.metrics_as_of("late", from, to, at(93));
        assert_eq!((m.labeled, m.accuracy), (3, Some(1.0)));
        assert_eq!(m.label_coverage, Some(0.6));
        assert_eq!(m.label_delay_p95_s, Some(5400.0));
        // Minute 2's (wrong) at 122: 3 right of 4.
        let m = truth.metrics_as_of("late", from, to, at(122));
        assert_eq!((m.labeled, m.accuracy), (4, Some(0.75)));
        assert_eq!(m.label_coverage, Some(0.8));
        assert_eq!(m.label_delay_p95_s, Some(7200.0));
        assert_eq!(truth.metrics("late", from, to), m);
    }

    #[test]
    fn the_window_is_that_of_the_predictions_not_of_the_labels() {
        let truth = example();
        // Minutes 2 and 3 only: their labels arrive long after the window ends.
        let m = truth.metrics_as_of("late", at(2), at(4), at(100));
        assert_eq!((m.predictions, m.labeled, m.accuracy), (2, 1, Some(1.0)));
        assert_eq!(m.label_coverage, Some(0.5));
        assert_eq!(m.label_delay_p95_s, Some(5400.0));
        assert_eq!(
            truth.metrics_as_of("other", at(0), at(5), at(200)),
            TruthMetrics::default()
        );
    }

    #[test]
    fn a_withheld_label_counts_only_in_the_whole_truth() {
        let mut truth = GroundTruth::default();
        truth.record("silent", record(0, Some(true), None));
        truth.record(
            "silent",
            TruthRecord {
                withheld: true,
                ..record(1, Some(false), None)
            },
        );
        let told = truth.metrics_as_of("silent", at(0), at(2), at(1_000));
        assert_eq!((told.labeled, told.accuracy), (1, Some(1.0)));
        let whole = truth.metrics("silent", at(0), at(2));
        assert_eq!((whole.labeled, whole.accuracy), (2, Some(0.5)));
        assert_eq!(whole.label_delay_p95_s, None);
    }

    #[test]
    fn the_lower_p95_takes_rank_ceil_of_095_n() {
        assert_eq!(lower_p95(Vec::new()), None);
        assert_eq!(lower_p95(vec![3.0]), Some(3.0));
        // n = 20: rank 19.
        assert_eq!(
            lower_p95((1..=20).rev().map(f64::from).collect()),
            Some(19.0)
        );
        // n = 21: rank ⌈19.95⌉ = 20.
        assert_eq!(lower_p95((1..=21).map(f64::from).collect()), Some(20.0));
    }
}

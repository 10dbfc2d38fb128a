//! The simulator's own ground truth: every prediction it sent, and the exact metrics of
//! any window computed from them — independent of the product's metric engine, so the
//! product's summaries can be checked against it.

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
}

impl GroundTruth {
    /// Records one prediction of `model`.
    pub fn record(&mut self, model: &str, record: TruthRecord) {
        self.records
            .entry(model.to_owned())
            .or_default()
            .push(record);
    }

    /// The exact metrics of `model` over `[from, to)`.
    pub fn metrics(&self, model: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> TruthMetrics {
        let inside: Vec<&TruthRecord> = self
            .records
            .get(model)
            .into_iter()
            .flatten()
            .filter(|r| r.time >= from && r.time < to)
            .collect();
        let n = inside.len() as u64;
        let errors = inside.iter().filter(|r| r.failed).count() as u64;
        let correct: Vec<bool> = inside.iter().filter_map(|r| r.correct).collect();
        let squared: Vec<f64> = inside.iter().filter_map(|r| r.squared_error).collect();
        let mut latencies: Vec<f64> = inside.iter().map(|r| r.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let rank = (0.95 * latencies.len() as f64).ceil() as usize;
        TruthMetrics {
            predictions: n,
            errors,
            labeled: (correct.len() + squared.len()) as u64,
            accuracy: (!correct.is_empty())
                .then(|| correct.iter().filter(|c| **c).count() as f64 / correct.len() as f64),
            rmse: (!squared.is_empty())
                .then(|| (squared.iter().sum::<f64>() / squared.len() as f64).sqrt()),
            error_rate: (n > 0).then(|| errors as f64 / n as f64),
            latency_p95_ms: rank.checked_sub(1).and_then(|i| latencies.get(i).copied()),
        }
    }
}

//! Late labels. A model whose truth comes hours after its predictions sends its
//! predictions without `actual`; the simulator holds each label until it arrives (in
//! simulated time) and then sends it to `POST /api/v1/monitoring/actuals`, with its
//! arrival as `timestamp`, in batches of at most [`MAX_LABELS_PER_BATCH`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The label route.
pub const ACTUALS_PATH: &str = "/api/v1/monitoring/actuals";

/// Most labels a batch may carry (the route's limit).
pub const MAX_LABELS_PER_BATCH: usize = 10_000;

/// One label, held until it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct LateLabel {
    /// The prediction it labels.
    pub prediction_id: String,
    /// The `actual`, as the model's task takes it.
    pub actual: Value,
    /// When it becomes known, in simulated time: it is sent then, with this time as
    /// its `timestamp`.
    pub arrives_at: DateTime<Utc>,
}

/// One label batch, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelBatch {
    /// The model.
    pub model_id: String,
    /// Its batch id (the route's idempotency key).
    pub batch_id: String,
    /// The labels, one per prediction id, in arrival order.
    pub labels: Vec<LateLabel>,
}

impl LabelBatch {
    /// The request body.
    pub fn body(&self) -> Value {
        let actuals: Vec<Value> = self
            .labels
            .iter()
            .map(|label| {
                json!({
                    "prediction_id": label.prediction_id,
                    "actual": label.actual,
                    "timestamp": label.arrives_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                })
            })
            .collect();
        json!({"model_id": self.model_id, "batch_id": self.batch_id, "actuals": actuals})
    }
}

/// One model's labels not sent yet.
#[derive(Debug, Clone, Default)]
struct ModelLabels {
    /// Held labels, in the order they were held.
    held: Vec<LateLabel>,
    /// Every prediction id ever held (a prediction has one label).
    ids: HashSet<String>,
    /// Label batches made so far.
    batches: u64,
}

/// The labels held for their arrival, per model.
#[derive(Debug, Clone)]
pub struct LabelSchedule {
    /// The run's first simulated minute (Unix seconds), part of every batch id.
    run: i64,
    /// Each model's labels, by model id.
    models: BTreeMap<String, ModelLabels>,
}

impl LabelSchedule {
    /// An empty schedule for the run starting at `run_start`. Batch ids are
    /// `<model>-labels-<run start, Unix seconds>-<n>`, `n` counting the model's
    /// batches from 1: the same for the same scenario, new in every run.
    pub fn new(run_start: DateTime<Utc>) -> Self {
        Self {
            run: run_start.timestamp(),
            models: BTreeMap::new(),
        }
    }

    /// Holds `label` of `model` until it arrives. `false` (and the label dropped) when
    /// a label for its prediction was held before: a prediction has one label.
    pub fn hold(&mut self, model: &str, label: LateLabel) -> bool {
        let labels = self.models.entry(model.to_owned()).or_default();
        if !labels.ids.insert(label.prediction_id.clone()) {
            return false;
        }
        labels.held.push(label);
        true
    }

    /// Takes every held label that has arrived by `cutoff` (`arrives_at ≤ cutoff`), in
    /// batches of at most [`MAX_LABELS_PER_BATCH`], each of one model and in arrival
    /// order.
    pub fn due(&mut self, cutoff: DateTime<Utc>) -> Vec<LabelBatch> {
        let mut batches = Vec::new();
        for (model, labels) in &mut self.models {
            let (mut due, later): (Vec<LateLabel>, Vec<LateLabel>) =
                std::mem::take(&mut labels.held)
                    .into_iter()
                    .partition(|label| label.arrives_at <= cutoff);
            labels.held = later;
            due.sort_by(|a, b| {
                (a.arrives_at, &a.prediction_id).cmp(&(b.arrives_at, &b.prediction_id))
            });
            let mut due = due.into_iter().peekable();
            while due.peek().is_some() {
                labels.batches += 1;
                batches.push(LabelBatch {
                    model_id: model.clone(),
                    batch_id: format!("{model}-labels-{}-{}", self.run, labels.batches),
                    labels: due.by_ref().take(MAX_LABELS_PER_BATCH).collect(),
                });
            }
        }
        batches
    }

    /// Labels of `model` still held: not arrived by the last cutoff.
    pub fn held(&self, model: &str) -> usize {
        self.models.get(model).map_or(0, |labels| labels.held.len())
    }
}

/// One model's label batches and what their answers reported, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelTally {
    /// Label batches sent (each answered 202).
    pub batches: u64,
    /// Labels sent.
    pub sent: u64,
    /// Batches answered as duplicates (`"duplicate": true`).
    pub duplicate_batches: u64,
    /// Labels joined to their predictions.
    pub joined: u64,
    /// Labels whose prediction was not seen yet.
    pub pending: u64,
    /// Labels of predictions labeled before.
    pub already_labeled: u64,
    /// Labels, or their predictions, older than the lookback.
    pub expired: u64,
    /// Labels that do not fit their prediction's task.
    pub refused: u64,
    /// Labels still in the future when the run ended: never sent.
    pub never_sent: u64,
}

impl LabelTally {
    /// Counts a batch of `sent` labels by its 202 answer `answer`. Names the first fate
    /// the answer lacks (nothing is counted then).
    pub fn count(&mut self, sent: usize, answer: &Value) -> Result<(), String> {
        let fate = |name: &str| {
            answer[name]["count"]
                .as_u64()
                .ok_or_else(|| format!("the answer has no {name}.count"))
        };
        let (joined, pending, already_labeled, expired, refused) = (
            fate("joined")?,
            fate("pending")?,
            fate("already_labeled")?,
            fate("expired")?,
            fate("refused")?,
        );
        self.batches += 1;
        self.sent += sent as u64;
        self.duplicate_batches += u64::from(answer["duplicate"] == true);
        self.joined += joined;
        self.pending += pending;
        self.already_labeled += already_labeled;
        self.expired += expired;
        self.refused += refused;
        Ok(())
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Self) {
        self.batches += other.batches;
        self.sent += other.sent;
        self.duplicate_batches += other.duplicate_batches;
        self.joined += other.joined;
        self.pending += other.pending;
        self.already_labeled += other.already_labeled;
        self.expired += other.expired;
        self.refused += other.refused;
        self.never_sent += other.never_sent;
    }

    /// Whether every label sent was joined, in batches none of which was a duplicate.
    pub fn all_joined(&self) -> bool {
        self.joined == self.sent
            && self.duplicate_batches == 0
            && self.pending + self.already_labeled + self.expired + self.refused == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::rng::Rng;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_500_000, 0).expect("in range")
    }

    fn label(id: usize, arrives_at: DateTime<Utc>) -> LateLabel {
        LateLabel {
            prediction_id: format!("p-{id}"),
            actual: json!(id % 2),
            arrives_at,
        }
    }

    #[test]
    fn every_label_is_sent_once_after_its_arrival_in_batches_of_at_most_10000() {
        let mut rng = Rng::new(3);
        let mut schedule = LabelSchedule::new(start());
        let end = start() + TimeDelta::hours(6);
        // 25,000 labels for one model arriving in the first 36 minutes (due at the
        // same cutoff: three batches), 3,000 for another over seven hours (some never
        // due).
        let mut held = BTreeMap::new();
        for (model, count, hours) in [("a", 25_000, 0.6), ("b", 3_000, 7.0)] {
            for id in 0..count {
                let at =
                    start() + TimeDelta::seconds((rng.uniform() * hours * 3600.0).round() as i64);
                assert!(schedule.hold(model, label(id, at)));
                held.insert((model.to_owned(), format!("p-{id}")), at);
            }
        }
        assert!(!schedule.hold("a", label(7, end)), "a second label of p-7");
        let mut sent = BTreeMap::new();
        let mut batch_ids = HashSet::new();
        // The first cutoff takes the labels arriving at the very start.
        let mut cutoff = start() - TimeDelta::minutes(50);
        while cutoff < end {
            cutoff += TimeDelta::minutes(50);
            for batch in schedule.due(cutoff) {
                assert!(!batch.labels.is_empty() && batch.labels.len() <= MAX_LABELS_PER_BATCH);
                assert!(
                    batch_ids.insert(batch.batch_id.clone()),
                    "{}",
                    batch.batch_id
                );
                let ids: HashSet<&str> = batch
                    .labels
                    .iter()
                    .map(|l| l.prediction_id.as_str())
                    .collect();
                assert_eq!(
                    ids.len(),
                    batch.labels.len(),
                    "one label per id in {}",
                    batch.batch_id
                );
                for l in batch.labels {
                    let key = (batch.model_id.clone(), l.prediction_id.clone());
                    assert!(
                        l.arrives_at <= cutoff,
                        "{} sent before it arrived",
                        l.prediction_id
                    );
                    assert_eq!(held.get(&key), Some(&l.arrives_at), "{key:?}");
                    assert!(sent.insert(key, cutoff).is_none(), "sent twice");
                }
            }
        }
        // Every label arrived by the last cutoff was sent; the others are still held.
        let due: Vec<_> = held.iter().filter(|(_, at)| **at <= cutoff).collect();
        assert_eq!(sent.len(), due.len());
        assert!(due.iter().all(|(key, _)| sent.contains_key(*key)));
        assert_eq!(
            schedule.held("a") + schedule.held("b"),
            held.len() - due.len()
        );
        assert!(schedule.held("b") > 0);
        // Each label was sent by the first cutoff at or after its arrival.
        for (key, sent_at) in &sent {
            assert!(
                *sent_at - held[key] < TimeDelta::minutes(50),
                "{key:?} held too long"
            );
        }
        let run = start().timestamp();
        assert!(batch_ids.contains(&format!("a-labels-{run}-3")));
        assert!(batch_ids.contains(&format!("b-labels-{run}-1")));
    }

    #[test]
    fn a_batch_body_carries_each_label_with_its_arrival_as_timestamp() {
        let mut schedule = LabelSchedule::new(start());
        let arrives = start() + TimeDelta::milliseconds(3_600_250);
        schedule.hold("m", label(1, arrives));
        schedule.hold("m", label(2, arrives + TimeDelta::hours(2)));
        assert!(schedule.due(start()).is_empty());
        let batches = schedule.due(arrives);
        assert_eq!(batches.len(), 1);
        assert_eq!(
            batches[0].body(),
            json!({"model_id": "m", "batch_id": format!("m-labels-{}-1", start().timestamp()),
                   "actuals": [{"prediction_id": "p-1", "actual": 1,
                                "timestamp": "2025-11-30T11:53:20.250Z"}]})
        );
        assert_eq!(schedule.held("m"), 1);
    }

    #[test]
    fn the_tally_counts_every_fate_and_refuses_an_answer_without_them() {
        let answer = json!({"batch_id": "b", "accepted": 3, "duplicate": false,
            "joined": {"count": 2, "sample": ["p-1", "p-2"]}, "pending": {"count": 1, "sample": ["p-3"]},
            "already_labeled": {"count": 0, "sample": []}, "expired": {"count": 0, "sample": []},
            "refused": {"count": 0, "sample": []}, "minutes": 2});
        let mut tally = LabelTally::default();
        tally.count(3, &answer).expect("a full answer");
        assert_eq!(
            (tally.batches, tally.sent, tally.joined, tally.pending),
            (1, 3, 2, 1)
        );
        assert!(!tally.all_joined());
        let mut short = answer.clone();
        short["refused"] = Value::Null;
        assert_eq!(
            tally.count(3, &short),
            Err("the answer has no refused.count".to_owned())
        );
        assert_eq!(tally.batches, 1);
        let mut joined = LabelTally::default();
        joined
            .count(
                2,
                &json!({"joined": {"count": 2}, "pending": {"count": 0},
            "already_labeled": {"count": 0}, "expired": {"count": 0}, "refused": {"count": 0}}),
            )
            .expect("a full answer");
        assert!(joined.all_joined());
        tally.add(&joined);
        assert_eq!((tally.batches, tally.sent, tally.joined), (2, 5, 4));
    }
}

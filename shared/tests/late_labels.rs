//! Late labels keep the promise of a 202 under faults: generated prediction and label
//! batches in any order (labels before and after their predictions, labels for ids
//! never seen, labels of ids already labeled, labels older than the lookback), sent
//! through the real `IngestService` over in-memory stores wrapped in a fault plan that
//! throttles, times out after applying, and kills the process between any two writes.
//! The client retries every batch until it is answered. A model of the join, run on the
//! same sequence without faults, says what every answer must report and what the
//! rollups must count: every label joined once, in its prediction's minute, the first
//! label of an id winning, nothing counted twice.

use modelwatch::domain::ids::ModelRef;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::json;

use modelwatch::adapters::faults::{FaultPlan, FaultRates, Faulty};
use modelwatch::adapters::memory::{
    MemoryLabelStore, MemoryModelRegistry, MemoryPartialStore, MemoryRollupStore,
};
use modelwatch::aggregate::roll_up;
use modelwatch::domain::labels::{LabelFate, LabelLookback};
use modelwatch::domain::{Granularity, Outcome, PredictionRecord, Status, TimeSpan, WindowState};
use modelwatch::ingest::{
    ActualsReceipt, BatchLimits, FateCount, IngestError, IngestQuotas, IngestService,
    MAX_SAMPLE_IDS,
};
use modelwatch::ports::RollupStore;
use modelwatch::testing::{NoArchive, at, model, run_at, tenant};

/// Predictions are made in the three hours from here; batches are sent after.
fn start() -> DateTime<Utc> {
    at("2026-11-28T08:00:00Z")
}

/// The lookback of the service under test.
const LOOKBACK: TimeDelta = TimeDelta::days(1);

/// One generated prediction: its minute offset, class, score.
#[derive(Debug, Clone)]
struct Prediction {
    minute: i64,
    predicted: bool,
    score: f64,
}

/// One generated label: the prediction it names (`None`: an id never predicted), its
/// class, and whether its stated time is older than the lookback.
#[derive(Debug, Clone)]
struct Label {
    target: Option<usize>,
    actual: bool,
    stale: bool,
}

/// A batch to send.
#[derive(Debug, Clone)]
enum Batch {
    /// Predictions, by index.
    Predictions(Vec<usize>),
    /// Labels, by index into the scenario's labels (one per id in a batch).
    Actuals(Vec<usize>),
}

#[derive(Debug, Clone)]
struct Scenario {
    predictions: Vec<Prediction>,
    labels: Vec<Label>,
    batches: Vec<Batch>,
    fault_seed: u64,
    fault_per_mille: u32,
    /// A batch whose attempt failed is retried only after the next batch was sent
    /// (a client that backs off), so writes of different batches interleave. Labels
    /// of one id then all carry the same class (which of them wins depends on which
    /// write came first) and the model checks counts, not each answer.
    defer: bool,
}

fn prediction_id(index: usize) -> String {
    format!("p-{index}")
}

fn label_id(labels: &[Label], index: usize) -> String {
    match labels[index].target {
        Some(target) => prediction_id(target),
        None => format!("unknown-{index}"),
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let predictions = prop::collection::vec(
        (0i64..180, any::<bool>(), 0u32..=100).prop_map(|(minute, predicted, score)| Prediction {
            minute,
            predicted,
            score: f64::from(score) / 100.0,
        }),
        1..30,
    );
    predictions
        .prop_flat_map(|predictions| {
            let n = predictions.len();
            let labels = prop::collection::vec(
                (
                    prop::option::weighted(0.85, 0..n),
                    any::<bool>(),
                    prop::bool::weighted(0.1),
                )
                    .prop_map(|(target, actual, stale)| Label {
                        target,
                        actual,
                        stale,
                    }),
                0..40,
            );
            (
                Just(predictions),
                labels,
                1usize..5,
                1usize..5,
                any::<u64>(),
                (0u32..300, any::<bool>()),
            )
        })
        .prop_flat_map(
            |(predictions, mut labels, prediction_batches, label_batches, seed, faults)| {
                if faults.1 {
                    for label in &mut labels {
                        label.actual = label.target.is_some_and(|t| t % 3 == 0);
                    }
                }
                let n = predictions.len();
                let m = labels.len();
                let prediction_owner = prop::collection::vec(0..prediction_batches, n);
                let label_owner = prop::collection::vec(0..label_batches, m);
                let order = Just((0..prediction_batches + label_batches).collect::<Vec<_>>())
                    .prop_shuffle();
                (
                    Just(predictions),
                    Just(labels),
                    prediction_owner,
                    label_owner,
                    order,
                    Just((prediction_batches, seed, faults)),
                )
            },
        )
        .prop_map(
            |(predictions, labels, prediction_owner, label_owner, order, (pb, seed, faults))| {
                let mut all: Vec<Batch> = Vec::new();
                for b in order {
                    if b < pb {
                        let members: Vec<usize> = (0..predictions.len())
                            .filter(|&i| prediction_owner[i] == b)
                            .collect();
                        if !members.is_empty() {
                            all.push(Batch::Predictions(members));
                        }
                    } else {
                        // One label per id in a batch: a further one of an id goes to
                        // the next batch, sent right after.
                        let mut left: Vec<usize> = (0..labels.len())
                            .filter(|&i| label_owner[i] == b - pb)
                            .collect();
                        while !left.is_empty() {
                            let mut seen = BTreeSet::new();
                            let (batch, rest): (Vec<usize>, Vec<usize>) = left
                                .into_iter()
                                .partition(|&i| seen.insert(label_id(&labels, i)));
                            all.push(Batch::Actuals(batch));
                            left = rest;
                        }
                    }
                }
                Scenario {
                    predictions,
                    labels,
                    batches: all,
                    fault_seed: seed,
                    fault_per_mille: faults.0,
                    defer: faults.1,
                }
            },
        )
}

fn prediction_time(p: &Prediction) -> DateTime<Utc> {
    start() + TimeDelta::minutes(p.minute) + TimeDelta::seconds(7)
}

fn body(scenario: &Scenario, index: usize, batch: &Batch, now: DateTime<Utc>) -> Vec<u8> {
    let value = match batch {
        Batch::Predictions(members) => json!({
            "model_id": "m1",
            "batch_id": format!("predictions-{index}"),
            "task": "binary_classification",
            "predictions": members.iter().map(|&i| {
                let p = &scenario.predictions[i];
                json!({"prediction_id": prediction_id(i),
                       "timestamp": prediction_time(p).to_rfc3339(),
                       "latency_ms": 10.0, "status": "ok",
                       "predicted": p.predicted, "score": p.score})
            }).collect::<Vec<_>>(),
        }),
        Batch::Actuals(members) => json!({
            "model_id": "m1",
            "batch_id": format!("labels-{index}"),
            "actuals": members.iter().map(|&i| {
                let label = &scenario.labels[i];
                let mut item = json!({"prediction_id": label_id(&scenario.labels, i),
                                      "actual": label.actual});
                if label.stale {
                    item["timestamp"] = json!((now - LOOKBACK - TimeDelta::hours(1)).to_rfc3339());
                }
                item
            }).collect::<Vec<_>>(),
        }),
    };
    serde_json::to_vec(&value).expect("JSON")
}

/// What the model says: each label batch's fates, and the joins (prediction index →
/// the winning label's actual and arrival time).
#[derive(Debug, Default)]
struct Expected {
    fates: BTreeMap<usize, Vec<(String, LabelFate)>>,
    joins: BTreeMap<usize, (bool, DateTime<Utc>)>,
}

fn model_of(scenario: &Scenario, send_times: &[DateTime<Utc>]) -> Expected {
    let mut expected = Expected::default();
    let mut seen_predictions = BTreeSet::new();
    // Winning label per id: (actual, time).
    let mut first_label: BTreeMap<String, (bool, DateTime<Utc>)> = BTreeMap::new();
    for (index, batch) in scenario.batches.iter().enumerate() {
        let now = send_times[index];
        match batch {
            Batch::Predictions(members) => {
                for &i in members {
                    seen_predictions.insert(i);
                    if let Some(&(actual, time)) = first_label.get(&prediction_id(i)) {
                        expected.joins.insert(i, (actual, time));
                    }
                }
            }
            Batch::Actuals(members) => {
                let fates = expected.fates.entry(index).or_default();
                for &i in members {
                    let label = &scenario.labels[i];
                    let id = label_id(&scenario.labels, i);
                    let fate = if label.stale {
                        LabelFate::Expired
                    } else if first_label.contains_key(&id) {
                        LabelFate::AlreadyLabeled
                    } else {
                        first_label.insert(id.clone(), (label.actual, now));
                        match label.target.filter(|t| seen_predictions.contains(t)) {
                            Some(target) => {
                                expected.joins.insert(target, (label.actual, now));
                                LabelFate::Joined
                            }
                            None => LabelFate::Pending,
                        }
                    };
                    fates.push((id, fate));
                }
            }
        }
    }
    expected
}

/// Each fate's count and sample as an answer must report them for `fates` (in batch
/// order): how many, and the first ids.
fn fate_counts(fates: &[(String, LabelFate)]) -> Vec<(LabelFate, FateCount)> {
    LabelFate::ALL
        .into_iter()
        .map(|fate| {
            let ids: Vec<String> = fates
                .iter()
                .filter(|(_, f)| *f == fate)
                .map(|(id, _)| id.clone())
                .collect();
            let count = FateCount {
                count: ids.len(),
                sample: ids.into_iter().take(MAX_SAMPLE_IDS).collect(),
            };
            (fate, count)
        })
        .collect()
}

/// The same from an answer.
fn reported(receipt: &ActualsReceipt) -> Vec<(LabelFate, FateCount)> {
    LabelFate::ALL
        .into_iter()
        .map(|fate| {
            let count = match fate {
                LabelFate::Joined => &receipt.joined,
                LabelFate::Pending => &receipt.pending,
                LabelFate::AlreadyLabeled => &receipt.already_labeled,
                LabelFate::Expired => &receipt.expired,
                LabelFate::Refused => &receipt.refused,
            };
            (fate, count.clone())
        })
        .collect()
}

/// The stores that outlive a process.
#[derive(Default)]
struct World {
    registry: Arc<MemoryModelRegistry>,
    partials: Arc<MemoryPartialStore>,
    labels: Arc<MemoryLabelStore>,
}

type Service = IngestService<
    Faulty<MemoryModelRegistry>,
    Faulty<MemoryPartialStore>,
    NoArchive,
    Faulty<MemoryLabelStore>,
>;

impl World {
    fn process(&self, seed: u64, per_mille: u32) -> (Arc<FaultPlan>, Service) {
        let rate = f64::from(per_mille) / 1000.0;
        let plan = FaultPlan::new(seed)
            .with_rates(FaultRates {
                fail_before: rate / 2.0,
                fail_after: rate / 2.0,
                crash: rate / 8.0,
                crash_after: rate / 8.0,
            })
            .expect("rates are probabilities")
            .shared();
        let service = IngestService {
            versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
            segments: modelwatch::ingest::SegmentAdmission::default(),
            registry: Faulty::shared(Arc::clone(&self.registry), Arc::clone(&plan)),
            partials: Faulty::shared(Arc::clone(&self.partials), Arc::clone(&plan)),
            archive: None,
            limits: BatchLimits::default(),
            labels: Faulty::shared(Arc::clone(&self.labels), Arc::clone(&plan)),
            lookback: LabelLookback(LOOKBACK),
            quotas: IngestQuotas::default(),
        };
        (plan, service)
    }
}

enum Answer {
    Predictions,
    Actuals(Box<ActualsReceipt>),
}

/// One attempt of a batch in a fresh process; `None` when it failed (503 or crash).
async fn attempt(
    world: &World,
    seeds: &mut impl FnMut() -> u64,
    per_mille: u32,
    body: &[u8],
    actuals: bool,
    now: DateTime<Utc>,
) -> Option<Answer> {
    let tenant = tenant("t1");
    let (plan, service) = world.process(seeds(), per_mille);
    let answer = async {
        if actuals {
            service
                .ingest_actuals(&tenant, body, now)
                .await
                .map(|receipt| Answer::Actuals(Box::new(receipt)))
        } else {
            service
                .ingest(&tenant, body, now)
                .await
                .map(|_| Answer::Predictions)
        }
    };
    tokio::select! {
        answer = answer => match answer {
            Ok(answer) => Some(answer),
            Err(IngestError::Store(_)) => None,
            Err(other) => panic!("refused: {other:?}"),
        },
        () = plan.crashed() => None,
    }
}

/// Attempts until answered; after 30 faulty attempts the client's retries reach a
/// healthy process.
async fn send(
    world: &World,
    seeds: &mut impl FnMut() -> u64,
    per_mille: u32,
    body: &[u8],
    actuals: bool,
    now: DateTime<Utc>,
) -> Answer {
    for tries in 0.. {
        let rate = if tries < 30 { per_mille } else { 0 };
        if let Some(answer) = attempt(world, seeds, rate, body, actuals, now).await {
            return answer;
        }
    }
    unreachable!("the loop only ends by returning")
}

async fn run_case(scenario: Scenario) -> Result<(), TestCaseError> {
    let world = World::default();
    let mut seed = scenario.fault_seed;
    let mut seeds = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed
    };
    let send_times: Vec<DateTime<Utc>> = (0..scenario.batches.len())
        .map(|i| start() + TimeDelta::hours(3) + TimeDelta::minutes(i as i64))
        .collect();
    let expected = model_of(&scenario, &send_times);
    let mut queue: VecDeque<(usize, u32)> = (0..scenario.batches.len()).map(|i| (i, 0)).collect();
    let mut step = 0;
    while let Some((index, deferred)) = queue.pop_front() {
        let batch = &scenario.batches[index];
        // The body is rendered once, at its first sending; a retry resends it.
        let body = body(&scenario, index, batch, send_times[index]);
        // A deferred retry arrives later than the batch was first sent.
        let now = send_times[index] + TimeDelta::seconds(step);
        step += i64::from(scenario.defer);
        let actuals = matches!(batch, Batch::Actuals(_));
        let per_mille = scenario.fault_per_mille;
        let answer = if scenario.defer && deferred < 3 {
            match attempt(&world, &mut seeds, per_mille, &body, actuals, now).await {
                Some(answer) => answer,
                None => {
                    queue.insert(queue.len().min(1), (index, deferred + 1));
                    continue;
                }
            }
        } else {
            send(&world, &mut seeds, per_mille, &body, actuals, now).await
        };
        if let (Answer::Actuals(receipt), Batch::Actuals(members)) = (answer, batch) {
            prop_assert_eq!(receipt.accepted, members.len());
            if !scenario.defer {
                prop_assert_eq!(
                    reported(&receipt),
                    fate_counts(&expected.fates[&index]),
                    "batch {}",
                    index
                );
            }
        }
    }
    // Roll everything up, without faults.
    let rollups = MemoryRollupStore::default();
    let run = run_at(start() + TimeDelta::days(1));
    let report = roll_up(world.partials.as_ref(), &rollups, &run, &[])
        .await
        .expect("roll-up");
    prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
    let day = TimeSpan::new(start() - TimeDelta::days(1), start() + TimeDelta::days(2));
    // The expected state: every prediction, and each join in its prediction's minute.
    let mut want = WindowState::new();
    for (i, p) in scenario.predictions.iter().enumerate() {
        let outcome = Outcome::Binary {
            predicted: Some(p.predicted),
            actual: None,
            score: Some(p.score),
        };
        let record = PredictionRecord {
            timestamp: prediction_time(p),
            latency_ms: 10.0,
            status: Status::Ok,
            error_type: None,
            outcome,
        };
        want.fold_prediction(&record).expect("valid");
        if let Some(&(actual, label_time)) = expected.joins.get(&i) {
            let labeled = Outcome::Binary {
                predicted: Some(p.predicted),
                actual: Some(actual),
                score: Some(p.score),
            };
            let delay = (label_time - prediction_time(p)).num_milliseconds() as f64 / 1000.0;
            want.fold_label(&labeled, delay).expect("valid");
        }
    }
    for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let stored = rollups
            .rollups(ModelRef::new(&tenant("t1"), &model("m1")), granularity, day)
            .await
            .expect("read");
        let merged = WindowState::merged(stored.iter().map(|r| r.state.clone())).expect("merge");
        prop_assert_eq!(
            merged.predictions(),
            want.predictions(),
            "{:?}",
            granularity
        );
        prop_assert_eq!(
            merged.quality(),
            want.quality(),
            "{:?} quality",
            granularity
        );
        prop_assert_eq!(
            merged.label_delay().count(),
            expected.joins.len() as u64,
            "{:?} joins",
            granularity
        );
        if !scenario.defer {
            // With deferral the winning label's arrival depends on the interleaving.
            prop_assert_eq!(
                merged.label_delay(),
                want.label_delay(),
                "{:?} delays",
                granularity
            );
        }
    }
    // Each join in its prediction's minute.
    let minutes = rollups
        .rollups(
            ModelRef::new(&tenant("t1"), &model("m1")),
            Granularity::Minute,
            day,
        )
        .await
        .expect("read");
    for i in expected.joins.keys() {
        let minute = Granularity::Minute.floor(prediction_time(&scenario.predictions[*i]));
        let rollup = minutes.iter().find(|r| r.start == minute);
        prop_assert!(
            rollup.is_some_and(|r| r.state.label_delay().count() > 0),
            "the join of prediction {} is not in its minute",
            i
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("LATE_LABEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_label_is_joined_once_in_its_predictions_minute_whatever_fails(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run_case(scenario))?;
    }
}

/// The lookback ends a label's reach: a prediction older than it is not joined, and a
/// label whose own time is older is not stored at all.
#[tokio::test]
async fn labels_beyond_the_lookback_are_reported_expired_and_not_counted() {
    let world = World::default();
    let mut seeds = || 7;
    let now = start() + TimeDelta::hours(1);
    let predictions = json!({"model_id": "m1", "batch_id": "b1", "task": "binary_classification",
        "predictions": [{"prediction_id": "old", "timestamp": start().to_rfc3339(),
                         "latency_ms": 3, "status": "ok", "predicted": true}]});
    let body = serde_json::to_vec(&predictions).expect("JSON");
    send(&world, &mut seeds, 0, &body, false, now).await;
    let late = now + LOOKBACK + TimeDelta::hours(1);
    let labels = json!({"model_id": "m1", "batch_id": "l1", "actuals": [
        {"prediction_id": "old", "actual": 1},
        {"prediction_id": "stale", "actual": 1, "timestamp": start().to_rfc3339()}]});
    let body = serde_json::to_vec(&labels).expect("JSON");
    let Answer::Actuals(receipt) = send(&world, &mut seeds, 0, &body, true, late).await else {
        panic!("a label answer")
    };
    assert_eq!(receipt.expired.sample, ["old", "stale"]);
    assert_eq!(receipt.minutes, 0);
    // The stale label was not even stored.
    let ids: Vec<String> = world
        .labels
        .items()
        .into_iter()
        .map(|((_, _, id), _)| id)
        .collect();
    assert_eq!(ids, ["old"]);
}

//! Invariant fuzzing of the promise a `202` makes: **every accepted prediction is counted
//! exactly once** in the minute, hour and day rollups and in the counter totals, and a
//! refused batch (`4xx`) writes nothing — whatever the stores do meanwhile.
//!
//! Each case generates tenants' models and a sequence of client actions: batches
//! (valid ones, ones with extreme or reserved values, wide ones that cross the label
//! and error-type caps together, late and boundary timestamps), retries of them sent
//! again byte for byte or re-serialized (other key order, number spelling, time zone,
//! label encoding), reused batch ids with other content, batches naming another task,
//! and scheduled aggregation runs; a quarter of the cases give the tenants a quota of
//! one model, so a tenant's second model is refused whole (never more models accepted
//! than the quota, a refusal only for a new model beyond it, nothing of it written). Everything goes through the real `IngestService` and
//! `run_aggregation` over the in-memory stores wrapped in a fault plan that throttles
//! calls, reports writes as failed after they took effect, and kills the "process"
//! between any two calls. The client retries a `5xx` (or a dead process) with the same
//! batch, as the contract tells it to, until it gets a final answer. After the runs
//! settle, a model of what was accepted — the records themselves, folded independently
//! of the parser — must equal what is stored.
//!
//! Short mode (the default, part of `cargo test`): [`DEFAULT_CASES`] cases.
//! Long mode: `MODELWATCH_FUZZ_CASES=100000 cargo test --release -p modelwatch --test
//! accepted_means_counted -- --nocapture` (prints its figures); `MODELWATCH_FUZZ_SEED`
//! replays a failing run's seed.

use modelwatch::domain::shard::all_shards;
use modelwatch::domain::slice::Slice;
use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch::domain::{
    MetricSet, OVERFLOW_BUCKET, Outcome, PredictionRecord, ResourceSample, Status, Task, TimeSpan,
    WindowState,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Cases run by `cargo test` when `MODELWATCH_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

/// The client's clock at the start of every case; actions move it forward.
const START: &str = "2026-11-28T12:00:00Z";

fn start() -> DateTime<Utc> {
    START.parse().expect("start time")
}

// ------------------------------------------------------------------ generation

/// A model of the scenario: where its batches go and what they hold.
#[derive(Debug, Clone)]
struct ModelSpec {
    tenant: &'static str,
    model: &'static str,
    task: Task,
}

const MODELS: [ModelSpec; 3] = [
    ModelSpec {
        tenant: "t1",
        model: "fraud",
        task: Task::BinaryClassification,
    },
    ModelSpec {
        tenant: "t1",
        model: "intent",
        task: Task::MulticlassClassification,
    },
    ModelSpec {
        tenant: "t2",
        model: "eta",
        task: Task::Regression,
    },
];

/// One generated prediction, before rendering.
#[derive(Debug, Clone)]
struct RecordSpec {
    prediction_id: Option<String>,
    /// Milliseconds after the client's clock at sending time (negative: in the past).
    offset_ms: i64,
    latency_ms: f64,
    error_type: Option<String>,
    outcome: OutcomeSpec,
    /// The `region` of its segment, if it carries one.
    region: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum OutcomeSpec {
    Binary {
        predicted: bool,
        actual: Option<bool>,
        score: Option<f64>,
    },
    Multiclass {
        predicted: String,
        actual: Option<String>,
        score: Option<f64>,
    },
    Regression {
        predicted: f64,
        actual: Option<f64>,
    },
    /// A failed prediction: no outcome, the record carries `error_type`.
    Failed,
}

/// One generated resource sample.
#[derive(Debug, Clone)]
struct SampleSpec {
    offset_ms: i64,
    cpu: Option<f64>,
    queue_depth: Option<f64>,
    cache_hits: Option<u64>,
}

/// A batch as a sender builds it.
#[derive(Debug, Clone)]
struct BatchSpec {
    /// Index into [`MODELS`].
    model: usize,
    /// The task the batch names (mostly the model's: another one is a 409 once the
    /// model is registered).
    task: Task,
    batch_id: String,
    records: Vec<RecordSpec>,
    samples: Vec<SampleSpec>,
    /// The generator put a value into it that the contract refuses whatever the time.
    refusable: bool,
}

/// How a body is spelled. Every style carries the same content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Compact, keys in contract order, times in UTC (`Z`).
    Compact,
    /// Pretty-printed, keys sorted, numbers as exponents, binary labels as booleans,
    /// times with a +01:00 offset.
    Reserialized,
}

/// What the client does next.
#[derive(Debug, Clone)]
enum Action {
    /// Sends batch `index` of the pool (again, if it was sent before) in a style.
    Send { index: usize, style: Style },
    /// The scheduler invokes aggregation at the client's clock.
    Aggregate,
    /// Time passes.
    Wait { seconds: i64 },
}

/// A whole case: the batch pool, the actions, and the fault plan's seed and rates.
#[derive(Debug, Clone)]
struct Scenario {
    pool: Vec<BatchSpec>,
    actions: Vec<Action>,
    fault_seed: u64,
    /// Per-mille chance of each fault kind per store call.
    fault_rate: u32,
    /// The tenants' quota of models: the default, or 1 (tenant t1 has two models, so
    /// the second it sends is refused whole).
    models_per_tenant: u64,
}

fn label_pool() -> impl Strategy<Value = String> {
    prop_oneof![
        160 => prop::sample::select(vec!["cat", "dog", "bird", "7", "42"]).prop_map(str::to_owned),
        20 => (0u32..2_000).prop_map(|i| format!("lbl-{i}")),
        1 => Just(OVERFLOW_BUCKET.to_owned()),
    ]
}

fn error_type_pool() -> impl Strategy<Value = String> {
    prop_oneof![
        160 => prop::sample::select(vec!["timeout", "oom", "bad_input"]).prop_map(str::to_owned),
        20 => (0u32..600).prop_map(|i| format!("err-{i}")),
        1 => Just(OVERFLOW_BUCKET.to_owned()),
    ]
}

fn latency() -> impl Strategy<Value = f64> {
    prop_oneof![
        200 => (0u32..200_000).prop_map(|k| f64::from(k) / 64.0),
        4 => Just(0.0),
        4 => Just(1e9),
        1 => Just(1e9 + 1.0),
        1 => Just(1e200),
    ]
}

fn regression_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        200 => (-80_000i32..80_000).prop_map(|k| f64::from(k) / 8.0),
        4 => Just(1e100),
        4 => Just(-1e-100),
        1 => Just(1.7e308),
        1 => Just(1e-300),
        4 => Just(0.0),
    ]
}

/// Offsets from the sending time: mostly the last few minutes; also late data up to
/// the 7-day limit, the limits themselves, and just beyond them.
fn offset_ms() -> impl Strategy<Value = i64> {
    const DAY: i64 = 86_400_000;
    prop_oneof![
        200 => -600_000i64..0,
        30 => -7 * DAY..-600_000,
        4 => Just(-7 * DAY),
        4 => Just(300_000),
        1 => Just(-7 * DAY - 1_000),
        1 => Just(301_000),
    ]
}

fn record(task: Task) -> impl Strategy<Value = RecordSpec> {
    let score = || prop::option::weighted(0.8, (0u32..=1024).prop_map(|k| f64::from(k) / 1024.0));
    let outcome = match task {
        Task::BinaryClassification => (
            any::<bool>(),
            prop::option::weighted(0.8, any::<bool>()),
            score(),
        )
            .prop_map(|(predicted, actual, score)| OutcomeSpec::Binary {
                predicted,
                actual,
                score,
            })
            .boxed(),
        Task::MulticlassClassification => (
            label_pool(),
            prop::option::weighted(0.8, label_pool()),
            score(),
        )
            .prop_map(|(predicted, actual, score)| OutcomeSpec::Multiclass {
                predicted,
                actual,
                score,
            })
            .boxed(),
        Task::Regression => (
            regression_value(),
            prop::option::weighted(0.8, regression_value()),
        )
            .prop_map(|(predicted, actual)| OutcomeSpec::Regression { predicted, actual })
            .boxed(),
    };
    (
        prop::option::weighted(0.5, (0u32..100_000).prop_map(|i| format!("p-{i}"))),
        offset_ms(),
        latency(),
        prop::option::weighted(0.15, error_type_pool()),
        outcome,
        prop::option::weighted(0.5, prop::sample::select(&REGIONS[..])),
    )
        .prop_map(
            |(prediction_id, offset_ms, latency_ms, error_type, outcome, region)| match error_type {
                Some(error_type) => RecordSpec {
                    prediction_id,
                    offset_ms,
                    latency_ms,
                    error_type: Some(error_type),
                    outcome: OutcomeSpec::Failed,
                    region,
                },
                None => RecordSpec {
                    prediction_id,
                    offset_ms,
                    latency_ms,
                    error_type: None,
                    outcome,
                    region,
                },
            },
        )
}

fn sample() -> impl Strategy<Value = SampleSpec> {
    (
        -600_000i64..0,
        prop::option::of((0u32..=64).prop_map(|k| f64::from(k) / 64.0)),
        prop::option::of(prop_oneof![
            40 => (0u32..400).prop_map(|k| f64::from(k) / 4.0),
            1 => Just(1e12),
            1 => Just(1e13)
        ]),
        prop::option::of(
            prop_oneof![40 => 0u64..1_000, 1 => Just(1_000_000_000), 1 => Just(10_000_000_000)],
        ),
    )
        .prop_map(|(offset_ms, cpu, queue_depth, cache_hits)| SampleSpec {
            offset_ms,
            cpu,
            queue_depth,
            cache_hits,
        })
}

/// A batch whose records together cross the caps: `labels` distinct labels (or error
/// types) in one minute.
fn wide_batch(model: usize, batch_id: String, labels: usize, prefix: u32) -> BatchSpec {
    let multiclass = MODELS[model].task == Task::MulticlassClassification;
    let records = (0..labels)
        .map(|i| RecordSpec {
            prediction_id: None,
            offset_ms: -90_000,
            latency_ms: 1.0 + i as f64 / 4.0,
            error_type: (!multiclass).then(|| format!("w{prefix}-{i}")),
            outcome: if multiclass {
                OutcomeSpec::Multiclass {
                    predicted: format!("w{prefix}-{i}"),
                    actual: Some(format!("w{prefix}-{}", (i + 1) % labels)),
                    score: None,
                }
            } else {
                OutcomeSpec::Failed
            },
            region: None,
        })
        .collect();
    BatchSpec {
        model,
        task: MODELS[model].task,
        batch_id,
        records,
        samples: Vec::new(),
        refusable: false,
    }
}

fn batch() -> impl Strategy<Value = BatchSpec> {
    (
        0..MODELS.len(),
        0u32..6,
        prop::bool::weighted(0.04),
        0u32..8,
    )
        .prop_flat_map(|(model, id, other_task, wide)| {
            let task = if other_task {
                Task::Regression
            } else {
                MODELS[model].task
            };
            let batch_id = format!("b-{id}");
            if wide == 0 && !other_task {
                let labels = if MODELS[model].task == Task::MulticlassClassification {
                    600
                } else {
                    200
                };
                return Just(wide_batch(model, batch_id, labels, id)).boxed();
            }
            (
                prop::collection::vec(record(task), 1..24),
                prop::collection::vec(sample(), 0..3),
            )
                .prop_map(move |(records, samples)| {
                    let refusable =
                        records.iter().any(refused_record) || samples.iter().any(refused_sample);
                    BatchSpec {
                        model,
                        task,
                        batch_id: batch_id.clone(),
                        records,
                        samples,
                        refusable,
                    }
                })
                .boxed()
        })
}

/// Whether the contract refuses the record whatever the time (time limits are judged
/// when it is sent).
fn refused_record(record: &RecordSpec) -> bool {
    let reserved = |label: &str| label == OVERFLOW_BUCKET;
    let regression = |v: f64| modelwatch::domain::regression_value_problem(v).is_some();
    record.latency_ms > 1e9
        || record.error_type.as_deref().is_some_and(reserved)
        || match &record.outcome {
            OutcomeSpec::Multiclass {
                predicted, actual, ..
            } => reserved(predicted) || actual.as_deref().is_some_and(reserved),
            OutcomeSpec::Regression { predicted, actual } => {
                regression(*predicted) || actual.is_some_and(regression)
            }
            OutcomeSpec::Binary { .. } | OutcomeSpec::Failed => false,
        }
}

fn refused_sample(sample: &SampleSpec) -> bool {
    sample.queue_depth.is_some_and(|q| q > 1e12)
        || sample.cache_hits.is_some_and(|c| c > 1e9 as u64)
}

fn action(pool: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0..pool, prop::bool::weighted(0.3)).prop_map(|(index, reserialized)| Action::Send {
            index,
            style: if reserialized { Style::Reserialized } else { Style::Compact },
        }),
        3 => Just(Action::Aggregate),
        2 => prop_oneof![Just(10i64), Just(60), Just(3_600)].prop_map(|seconds| Action::Wait { seconds }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec(batch(), 1..10).prop_flat_map(|pool| {
        let size = pool.len();
        (
            Just(pool),
            prop::collection::vec(action(size), 1..30),
            any::<u64>(),
            prop_oneof![Just(0u32), 5u32..60, 60u32..200],
            prop_oneof![3 => Just(QuotaLimits::default().models_per_tenant), 1 => Just(1u64)],
        )
            .prop_map(
                |(pool, actions, fault_seed, fault_rate, models_per_tenant)| Scenario {
                    pool,
                    actions,
                    fault_seed,
                    fault_rate,
                    models_per_tenant,
                },
            )
    })
}

// ------------------------------------------------------------------ rendering

/// The body of `batch` sent at `now`, spelled in `style`.
fn render(batch: &BatchSpec, now: DateTime<Utc>, style: Style) -> Vec<u8> {
    let spec = &MODELS[batch.model];
    let time = |offset_ms: i64| {
        let t = now + TimeDelta::milliseconds(offset_ms);
        match style {
            Style::Compact => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Style::Reserialized => t
                .with_timezone(&chrono::FixedOffset::east_opt(3_600).expect("offset"))
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        }
    };
    let number = |v: f64| match style {
        Style::Compact => serde_json::Number::from_f64(v).map_or("null".into(), |n| n.to_string()),
        Style::Reserialized => format!("{v:e}"),
    };
    let string = |s: &str| serde_json::Value::from(s).to_string();
    let mut predictions = Vec::new();
    for r in &batch.records {
        let mut fields: Vec<(&str, String)> = Vec::new();
        if let Some(id) = &r.prediction_id {
            fields.push(("prediction_id", string(id)));
        }
        fields.push(("timestamp", string(&time(r.offset_ms))));
        fields.push(("latency_ms", number(r.latency_ms)));
        match &r.error_type {
            Some(error_type) => {
                fields.push(("status", string("error")));
                fields.push(("error_type", string(error_type)));
            }
            None => fields.push(("status", string("ok"))),
        }
        let binary = |b: bool| match style {
            Style::Compact => u8::from(b).to_string(),
            Style::Reserialized => b.to_string(),
        };
        let label = |l: &str| match (style, l.parse::<u64>()) {
            (Style::Reserialized, Ok(n)) => n.to_string(),
            _ => string(l),
        };
        match &r.outcome {
            OutcomeSpec::Binary {
                predicted,
                actual,
                score,
            } => {
                fields.push(("predicted", binary(*predicted)));
                if let Some(a) = actual {
                    fields.push(("actual", binary(*a)));
                }
                if let Some(s) = score {
                    fields.push(("score", number(*s)));
                }
            }
            OutcomeSpec::Multiclass {
                predicted,
                actual,
                score,
            } => {
                fields.push(("predicted", label(predicted)));
                if let Some(a) = actual {
                    fields.push(("actual", label(a)));
                }
                if let Some(s) = score {
                    fields.push(("score", number(*s)));
                }
            }
            OutcomeSpec::Regression { predicted, actual } => {
                fields.push(("predicted", number(*predicted)));
                if let Some(a) = actual {
                    fields.push(("actual", number(*a)));
                }
            }
            OutcomeSpec::Failed => {}
        }
        if let Some(region) = r.region {
            fields.push(("segment", object(vec![("region", string(region))], style)));
        }
        predictions.push(object(fields, style));
    }
    let samples: Vec<String> = batch
        .samples
        .iter()
        .map(|s| {
            let mut fields = vec![("timestamp", string(&time(s.offset_ms)))];
            if let Some(cpu) = s.cpu {
                fields.push(("cpu_utilization", number(cpu)));
            }
            if let Some(q) = s.queue_depth {
                fields.push(("queue_depth", number(q)));
            }
            if let Some(c) = s.cache_hits {
                fields.push(("cache_hits", c.to_string()));
            }
            object(fields, style)
        })
        .collect();
    let list = |items: Vec<String>| match style {
        Style::Compact => format!("[{}]", items.join(",")),
        Style::Reserialized => format!("[\n  {}\n]", items.join(",\n  ")),
    };
    let mut fields = vec![
        ("model_id", string(spec.model)),
        ("batch_id", string(&batch.batch_id)),
        ("task", string(batch.task.as_str())),
        ("predictions", list(predictions)),
    ];
    if let Some(version) = version_of(&batch.batch_id) {
        fields.push(("model_version", string(version)));
    }
    if !samples.is_empty() {
        fields.push(("resources", list(samples)));
    }
    object(fields, style).into_bytes()
}

/// A JSON object of already-rendered values: in the given order, or pretty with sorted
/// keys.
fn object(mut fields: Vec<(&str, String)>, style: Style) -> String {
    match style {
        Style::Compact => {
            let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", members.join(","))
        }
        Style::Reserialized => {
            fields.sort_by(|a, b| a.0.cmp(b.0));
            let members: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("  \"{k}\" : {v}"))
                .collect();
            format!("{{\n{}\n}}", members.join(",\n"))
        }
    }
}

// ------------------------------------------------------------------ the model

/// The typed records of `batch` sent at `now` — built from the generator's spec, not
/// from the body, so the model does not share the parser's mistakes.
fn expected_records(batch: &BatchSpec, now: DateTime<Utc>) -> Content {
    // The contract keeps millisecond precision of the rendered times.
    let time = |offset_ms: i64| now + TimeDelta::milliseconds(offset_ms);
    let records = batch
        .records
        .iter()
        .map(|r| PredictionRecord {
            timestamp: time(r.offset_ms),
            latency_ms: r.latency_ms,
            status: if r.error_type.is_some() {
                Status::Error
            } else {
                Status::Ok
            },
            error_type: r.error_type.clone(),
            outcome: match (&r.outcome, batch.task) {
                (
                    OutcomeSpec::Binary {
                        predicted,
                        actual,
                        score,
                    },
                    _,
                ) => Outcome::Binary {
                    predicted: Some(*predicted),
                    actual: *actual,
                    score: *score,
                },
                (
                    OutcomeSpec::Multiclass {
                        predicted,
                        actual,
                        score,
                    },
                    _,
                ) => Outcome::Multiclass {
                    predicted: Some(predicted.clone()),
                    actual: actual.clone(),
                    score: *score,
                },
                (OutcomeSpec::Regression { predicted, actual }, _) => Outcome::Regression {
                    predicted: Some(*predicted),
                    actual: *actual,
                },
                (OutcomeSpec::Failed, Task::BinaryClassification) => Outcome::Binary {
                    predicted: None,
                    actual: None,
                    score: None,
                },
                (OutcomeSpec::Failed, Task::MulticlassClassification) => Outcome::Multiclass {
                    predicted: None,
                    actual: None,
                    score: None,
                },
                (OutcomeSpec::Failed, Task::Regression) => Outcome::Regression {
                    predicted: None,
                    actual: None,
                },
            },
        })
        .collect();
    let samples = batch
        .samples
        .iter()
        .map(|s| ResourceSample {
            timestamp: time(s.offset_ms),
            cpu_utilization: s.cpu,
            memory_utilization: None,
            gpu_utilization: None,
            queue_depth: s.queue_depth,
            cache_hits: s.cache_hits,
            cache_misses: None,
        })
        .collect();
    let regions = batch.records.iter().map(|r| r.region).collect();
    (records, samples, regions)
}

/// The records and samples of one batch, as the model expects them counted, with each
/// record's region.
type Content = (
    Vec<PredictionRecord>,
    Vec<ResourceSample>,
    Vec<Option<&'static str>>,
);

/// What the client saw accepted.
#[derive(Debug, Default)]
struct Accepted {
    /// Per (tenant, model): the records of every batch answered `202`, once per batch
    /// however often it was answered.
    records: BTreeMap<(String, String), Content>,
    /// Per (tenant, model, batch id): the content accepted under it.
    contents: BTreeMap<(String, String, String), Content>,
}

impl Accepted {
    fn add(&mut self, key: (String, String, String), content: Content) {
        // The model's series, and its version's when the batch names one.
        let model = ModelId::parse(&key.1).expect("model");
        let series = version_of(&key.2).map(|v| model.series(&Slice::version(v)));
        for id in [Some(model.clone()), series].into_iter().flatten() {
            let entry = self
                .records
                .entry((key.0.clone(), id.as_str().to_owned()))
                .or_default();
            entry.0.extend(content.0.iter().cloned());
            entry.1.extend(content.1.iter().cloned());
        }
        // Each record in its region's series too (no samples: they have no segment).
        for (record, region) in content.0.iter().zip(&content.2) {
            if let Some(region) = region {
                let id = model.series(&Slice::segment("region", *region));
                let entry = self
                    .records
                    .entry((key.0.clone(), id.as_str().to_owned()))
                    .or_default();
                entry.0.push(record.clone());
            }
        }
        self.contents.insert(key, content);
    }
}

/// The regions a prediction's segment may name.
const REGIONS: [&str; 2] = ["eu", "us"];

/// The segment keys the runs export: the regions' series go to the exporters too.
static EXPORTED_SEGMENT_KEYS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| vec!["region".to_owned()]);

/// The `model_version` a batch names, by its id (so a retry names the same): none,
/// `v1` or `v2`.
fn version_of(batch_id: &str) -> Option<&'static str> {
    match batch_id.bytes().last().map(|b| b % 3) {
        Some(1) => Some("v1"),
        Some(2) => Some("v2"),
        _ => None,
    }
}

/// The states the accepted records make, per start of a `granularity` span.
fn expected_states(
    records: &[PredictionRecord],
    samples: &[ResourceSample],
    granularity: Granularity,
) -> BTreeMap<DateTime<Utc>, WindowState> {
    let mut states: BTreeMap<DateTime<Utc>, WindowState> = BTreeMap::new();
    for record in records {
        states
            .entry(granularity.floor(record.timestamp))
            .or_default()
            .fold_prediction(record)
            .expect("an accepted record folds");
    }
    for sample in samples {
        states
            .entry(granularity.floor(sample.timestamp))
            .or_default()
            .fold_resource(sample)
            .expect("an accepted sample folds");
    }
    states
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

/// Stored and expected hold the same records: every count exactly (error types and
/// class labels included), every value up to floating-point summation order.
fn same_state(stored: &WindowState, expected: &WindowState, what: &str) -> Result<(), String> {
    let span = TimeSpan {
        start: start() - TimeDelta::days(30),
        end: start() + TimeDelta::days(30),
    };
    let (s, e) = (
        serde_json::to_value(MetricSet::compute(stored, span, None)).map_err(|e| e.to_string())?,
        serde_json::to_value(MetricSet::compute(expected, span, None))
            .map_err(|e| e.to_string())?,
    );
    let (s, e) = (
        s.as_object().cloned().unwrap_or_default(),
        e.as_object().cloned().unwrap_or_default(),
    );
    for (name, expected_value) in &e {
        let stored_value = &s[name];
        let same = match (stored_value.as_f64(), expected_value.as_f64()) {
            (Some(a), Some(b)) if !(stored_value.is_u64() && expected_value.is_u64()) => {
                close(a, b)
            }
            _ => stored_value == expected_value,
        };
        if !same {
            return Err(format!(
                "{what}: {name} is {stored_value}, expected {expected_value}"
            ));
        }
    }
    let types = |w: &WindowState| {
        w.errors_by_type()
            .map(|(t, n)| (t.to_owned(), n))
            .collect::<Vec<_>>()
    };
    if types(stored) != types(expected) || stored.untyped_errors() != expected.untyped_errors() {
        return Err(format!(
            "{what}: error types {:?} expected {:?}",
            types(stored),
            types(expected)
        ));
    }
    let labels = |w: &WindowState| match w.quality() {
        Some(modelwatch::domain::QualityStats::Multiclass(stats)) => stats
            .label_counts()
            .into_iter()
            .map(|(l, c)| (l.to_owned(), c))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    if labels(stored) != labels(expected) {
        return Err(format!("{what}: class labels differ"));
    }
    if (stored.first_prediction(), stored.last_prediction())
        != (expected.first_prediction(), expected.last_prediction())
    {
        return Err(format!("{what}: prediction times differ"));
    }
    Ok(())
}

// ------------------------------------------------------------------ the driver

use std::sync::{Arc, Mutex};

use modelwatch::adapters::faults::{FaultPlan, FaultRates, Faulty};
use modelwatch::adapters::memory::{
    MemoryLabelStore, MemoryMetricData, MemoryModelRegistry, MemoryPartialStore, MemoryRollupStore,
    MemorySeriesWriter,
};
use modelwatch::aggregate::run_aggregation;
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::labels::LabelLookback;
use modelwatch::domain::{Granularity, Quota, QuotaLimits};
use modelwatch::ingest::{BatchLimits, IngestError, IngestQuotas, IngestReceipt, IngestService};
use modelwatch::ports::{ModelRegistry, PendingWork, PrometheusSeries, RollupStore};
use modelwatch::testing::{NoArchive, run_at};

/// What outlives a process: the stores' contents and the receiver's.
#[derive(Default)]
struct World {
    registry: Arc<MemoryModelRegistry>,
    partials: Arc<MemoryPartialStore>,
    labels: Arc<MemoryLabelStore>,
    rollups: Arc<MemoryRollupStore>,
    exported: Arc<MemorySeriesWriter>,
    /// The deployment's quotas every process of the case runs with.
    quotas: QuotaLimits,
}

/// One process: the stores as it sees them, through one fault plan.
struct Process {
    plan: Arc<FaultPlan>,
    ingest: IngestService<
        Faulty<MemoryModelRegistry>,
        Faulty<MemoryPartialStore>,
        NoArchive,
        Faulty<MemoryLabelStore>,
    >,
    pending: Faulty<MemoryPartialStore>,
    rollups: Faulty<MemoryRollupStore>,
    exporter: PrometheusSeries<Faulty<MemorySeriesWriter>>,
}

impl World {
    fn process(&self, seed: u64, per_mille: u32) -> Process {
        let rate = f64::from(per_mille) / 1000.0;
        let plan = FaultPlan::new(seed)
            .with_rates(FaultRates {
                fail_before: rate,
                fail_after: rate,
                crash: rate / 4.0,
                crash_after: rate / 4.0,
            })
            .expect("rates are probabilities")
            .shared();
        Process {
            ingest: IngestService {
                versions_per_model: modelwatch::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
                segments: modelwatch::ingest::SegmentAdmission::default(),
                registry: Faulty::shared(Arc::clone(&self.registry), Arc::clone(&plan)),
                partials: Faulty::shared(Arc::clone(&self.partials), Arc::clone(&plan)),
                archive: None,
                limits: BatchLimits::default(),
                labels: Faulty::shared(Arc::clone(&self.labels), Arc::clone(&plan)),
                lookback: LabelLookback::DEFAULT,
                quotas: IngestQuotas::new(self.quotas),
            },
            pending: Faulty::shared(Arc::clone(&self.partials), Arc::clone(&plan)),
            rollups: Faulty::shared(Arc::clone(&self.rollups), Arc::clone(&plan)),
            exporter: PrometheusSeries(Faulty::shared(
                Arc::clone(&self.exported),
                Arc::clone(&plan),
            )),
            plan,
        }
    }

    /// Everything a refused batch must leave as it was.
    async fn snapshot(&self) -> String {
        let mut models = Vec::new();
        for tenant in ["t1", "t2"] {
            let tenant = TenantId::parse(tenant).expect("tenant");
            models.extend(self.registry.list_models(&tenant).await.expect("models"));
        }
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            self.partials.partials(),
            self.partials
                .pending_minutes(all_shards())
                .await
                .expect("pending"),
            models,
            self.partials.claims(),
        )
    }
}

/// Where two snapshots first differ, with some context.
fn first_difference(before: &str, after: &str) -> String {
    let at = before
        .chars()
        .zip(after.chars())
        .take_while(|(b, a)| b == a)
        .count();
    let around = |s: &str| {
        s.chars()
            .skip(at.saturating_sub(120))
            .take(360)
            .collect::<String>()
    };
    format!("before …{}… after …{}…", around(before), around(after))
}

/// How one attempt ended.
enum Attempt<T> {
    Answered(T),
    /// The process died during it.
    Crashed,
}

async fn attempt<T>(plan: &FaultPlan, call: impl std::future::Future<Output = T>) -> Attempt<T> {
    tokio::select! {
        answer = call => Attempt::Answered(answer),
        () = plan.crashed() => Attempt::Crashed,
    }
}

/// Attempts before the client's retries go to a process without faults (so every
/// case ends).
const FAULTY_ATTEMPTS: u32 = 40;

/// Figures of a run, printed in long mode.
#[derive(Debug, Default)]
struct Figures {
    cases: u64,
    attempts: u64,
    accepted: u64,
    duplicates: u64,
    refused: u64,
    crashes: u64,
    unavailable: u64,
    aggregation_runs: u64,
    predictions_counted: u64,
}

async fn run_case(scenario: &Scenario, figures: &Mutex<Figures>) -> Result<(), TestCaseError> {
    let world = World {
        quotas: QuotaLimits {
            models_per_tenant: scenario.models_per_tenant,
            ..QuotaLimits::default()
        },
        ..World::default()
    };
    let mut seeds = scenario.fault_seed;
    let mut next_seed = move || {
        seeds = seeds
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seeds
    };
    let mut process = world.process(next_seed(), scenario.fault_rate);
    let mut now = start();
    let mut export_clock = ExportClock::default();
    let mut sent_at: Vec<Option<DateTime<Utc>>> = vec![None; scenario.pool.len()];
    let mut accepted = Accepted::default();
    // The task of each model's first accepted batch: the model keeps it.
    let mut registered: BTreeMap<usize, Task> = BTreeMap::new();
    let mut local = Figures::default();
    // CloudWatch is not under test here: its twin always accepts.
    let cloudwatch = MemoryMetricData::default();
    for action in &scenario.actions {
        match action {
            Action::Wait { seconds } => now += TimeDelta::seconds(*seconds),
            Action::Aggregate => {
                local.aggregation_runs += 1;
                let scheduled = run_at(now);
                let run = run_aggregation(
                    &process.pending,
                    &process.rollups,
                    Some(&cloudwatch),
                    Some(&process.exporter),
                    &EXPORTED_SEGMENT_KEYS,
                    &scheduled,
                    export_clock.tick(now),
                );
                if let Attempt::Crashed = attempt(&process.plan, run).await {
                    local.crashes += 1;
                    process = world.process(next_seed(), scenario.fault_rate);
                }
            }
            Action::Send { index, style } => {
                let batch = &scenario.pool[*index];
                let at = *sent_at[*index].get_or_insert(now);
                let body = render(batch, at, *style);
                let spec = &MODELS[batch.model];
                let tenant = TenantId::parse(spec.tenant).expect("tenant");
                let before = world.snapshot().await;
                let mut tries = 0;
                let answer: Result<IngestReceipt, IngestError> = loop {
                    tries += 1;
                    local.attempts += 1;
                    if tries > FAULTY_ATTEMPTS {
                        process = world.process(next_seed(), 0);
                    }
                    match attempt(&process.plan, process.ingest.ingest(&tenant, &body, now)).await {
                        Attempt::Crashed => {
                            local.crashes += 1;
                            process = world.process(next_seed(), scenario.fault_rate);
                        }
                        Attempt::Answered(Err(IngestError::Store(_))) => local.unavailable += 1,
                        Attempt::Answered(answer) => break answer,
                    }
                };
                let key = (
                    spec.tenant.to_owned(),
                    spec.model.to_owned(),
                    batch.batch_id.clone(),
                );
                match answer {
                    Ok(receipt) => {
                        prop_assert!(
                            !batch.refusable,
                            "accepted a batch the contract refuses: {}",
                            String::from_utf8_lossy(&body)
                        );
                        let task = *registered.entry(batch.model).or_insert(batch.task);
                        prop_assert_eq!(task, batch.task, "accepted another task than the model's");
                        let models_of_tenant = registered
                            .keys()
                            .filter(|m| MODELS[**m].tenant == spec.tenant)
                            .count();
                        prop_assert!(
                            models_of_tenant as u64 <= scenario.models_per_tenant,
                            "{} has {} models accepted, over its quota of {}",
                            spec.tenant,
                            models_of_tenant,
                            scenario.models_per_tenant
                        );
                        let content = expected_records(batch, at);
                        match accepted.contents.get(&key) {
                            Some(stored) => {
                                prop_assert!(receipt.duplicate, "{key:?} answered as new twice");
                                prop_assert_eq!(
                                    stored,
                                    &content,
                                    "{:?}: another content accepted under a known id",
                                    key
                                );
                                local.duplicates += 1;
                            }
                            None => {
                                // A duplicate on the first 202 only when an earlier attempt
                                // stored everything but its answer was lost.
                                prop_assert!(
                                    !receipt.duplicate || tries > 1,
                                    "{key:?}: a first acceptance answered as a duplicate"
                                );
                                prop_assert_eq!(receipt.accepted, batch.records.len());
                                accepted.add(key, content);
                                local.accepted += 1;
                            }
                        }
                    }
                    Err(refusal) => {
                        local.refused += 1;
                        if let IngestError::BatchConflict { .. } = refusal {
                            // However it is spelled, the same content is a retry.
                            prop_assert!(
                                accepted.contents.get(&key) != Some(&expected_records(batch, at)),
                                "a retry of an accepted batch answered as a reused id"
                            );
                        }
                        if let IngestError::OverQuota(over) = &refusal {
                            // Only the models quota can be reached here, and only by a
                            // new model of a tenant that has its quota of others.
                            prop_assert_eq!(over.quota, Quota::ModelsPerTenant);
                            let others = registered
                                .keys()
                                .filter(|m| MODELS[**m].tenant == spec.tenant)
                                .count();
                            prop_assert!(
                                !registered.contains_key(&batch.model)
                                    && others as u64 >= scenario.models_per_tenant,
                                "{:?} refused for the models quota with {} others",
                                key,
                                others
                            );
                        }
                        if let IngestError::TaskConflict(_) = refusal {
                            prop_assert!(
                                registered
                                    .get(&batch.model)
                                    .is_some_and(|t| *t != batch.task),
                                "a task conflict for a model not registered with another task"
                            );
                        }
                        // Earlier attempts answered 503 may have got further than
                        // this one: together they must have left no trace.
                        let after = world.snapshot().await;
                        prop_assert!(
                            after == before,
                            "a refused batch ({:?}) wrote something: {}",
                            refusal,
                            first_difference(&before, &after)
                        );
                    }
                }
            }
        }
    }
    // Settle: the scheduler's next runs, in a process without faults.
    let process = world.process(next_seed(), 0);
    let settle_at = now + TimeDelta::minutes(10);
    let mut settled = false;
    for _ in 0..3 {
        local.aggregation_runs += 1;
        let report = run_aggregation(
            &process.pending,
            &process.rollups,
            Some(&cloudwatch),
            Some(&process.exporter),
            &EXPORTED_SEGMENT_KEYS,
            &run_at(settle_at),
            export_clock.tick(settle_at),
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("settling run failed: {e}")))?;
        prop_assert!(
            report.rollups.failures.is_empty(),
            "models left failing: {:?}",
            report.rollups.failures
        );
        if world
            .partials
            .pending_minutes(all_shards())
            .await
            .expect("pending")
            .is_empty()
        {
            settled = true;
            break;
        }
    }
    prop_assert!(settled, "pending minutes left after the settling runs");
    local.predictions_counted = check_counted(&world, &accepted).await?;
    local.cases = 1;
    let mut total = figures.lock().unwrap_or_else(|e| e.into_inner());
    total.add(&local);
    Ok(())
}

impl Figures {
    fn add(&mut self, other: &Self) {
        self.cases += other.cases;
        self.attempts += other.attempts;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.refused += other.refused;
        self.crashes += other.crashes;
        self.unavailable += other.unavailable;
        self.aggregation_runs += other.aggregation_runs;
        self.predictions_counted += other.predictions_counted;
    }
}

/// Every accepted record is in the minute, hour and day rollups and the totals exactly
/// once — the model's, its version slice's when the batch named one, and its region's
/// when it carries one —, and nothing else is. Returns the predictions checked (the models').
async fn check_counted(world: &World, accepted: &Accepted) -> Result<u64, TestCaseError> {
    let mut counted = 0;
    let series = MODELS.iter().flat_map(|spec| {
        let model = ModelId::parse(spec.model).expect("model");
        let versions = ["v1", "v2"].map(Slice::version);
        let regions = REGIONS.map(|r| Slice::segment("region", r));
        let slices: Vec<ModelId> = versions
            .into_iter()
            .chain(regions)
            .map(|s| model.series(&s))
            .collect();
        std::iter::once(model)
            .chain(slices)
            .map(move |id| (spec, id))
    });
    for (spec, model) in series {
        let tenant = TenantId::parse(spec.tenant).expect("tenant");
        let key = (spec.tenant.to_owned(), model.as_str().to_owned());
        let (records, samples, _) = accepted.records.get(&key).cloned().unwrap_or_default();
        if model.split().1.is_none() {
            counted += records.len() as u64;
        }
        for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            let expected = expected_states(&records, &samples, granularity);
            let stored = world
                .rollups
                .rollups(
                    ModelRef::new(&tenant, &model),
                    granularity,
                    TimeSpan::new(start() - TimeDelta::days(30), start() + TimeDelta::days(30)),
                )
                .await
                .expect("read rollups");
            let stored_starts: Vec<DateTime<Utc>> = stored.iter().map(|r| r.start).collect();
            let expected_starts: Vec<DateTime<Utc>> = expected.keys().copied().collect();
            prop_assert_eq!(
                &stored_starts,
                &expected_starts,
                "{}/{} {:?} rollups",
                spec.tenant,
                model,
                granularity
            );
            for rollup in &stored {
                let state = &rollup.state;
                let what = format!(
                    "{}/{} {:?} at {}",
                    spec.tenant, model, granularity, rollup.start
                );
                same_state(state, &expected[&rollup.start], &what).map_err(TestCaseError::fail)?;
            }
        }
        check_totals(world, &tenant, &model, &records).await?;
    }
    Ok(counted)
}

/// The model's counter totals, and the counters exported from them, hold every
/// accepted prediction once.
async fn check_totals(
    world: &World,
    tenant: &TenantId,
    model: &ModelId,
    records: &[PredictionRecord],
) -> Result<(), TestCaseError> {
    let totals = world
        .rollups
        .counter_totals(ModelRef::new(tenant, model))
        .await
        .expect("read totals");
    let errors = records.iter().filter(|r| r.status == Status::Error).count() as u64;
    prop_assert_eq!(
        (totals.ok, totals.errors),
        (records.len() as u64 - errors, errors)
    );
    let latency_us: f64 = records.iter().map(|r| r.latency_ms * 1000.0).sum();
    let rounding = 2.0 * records.len() as f64;
    prop_assert!(
        (totals.latency_sum_us as f64 - latency_us).abs() <= 1e-9 * latency_us + rounding,
        "latency sum {} µs, expected {latency_us}",
        totals.latency_sum_us
    );
    // Every error under exactly one bucket; at most 64 named types.
    let by_type: u64 = totals.errors_by_type.values().sum();
    prop_assert_eq!(by_type, errors, "every error under one type bucket");
    let named = totals
        .errors_by_type
        .keys()
        .filter(|t| *t != OVERFLOW_BUCKET && *t != "unknown")
        .count();
    prop_assert!(
        named <= modelwatch::domain::MAX_TOTAL_ERROR_TYPES,
        "{named} named error types"
    );
    // Where no window overflowed its own cap, a named type holds exactly its errors and
    // the bucket exactly those of the types without a name.
    let minutes = expected_states(records, &[], Granularity::Minute);
    if minutes.values().all(|m| m.error_type_overflow() == 0) {
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        for r in records.iter().filter(|r| r.status == Status::Error) {
            *expected
                .entry(r.error_type.as_deref().unwrap_or("unknown"))
                .or_default() += 1;
        }
        let mut unnamed = 0;
        for (error_type, n) in expected {
            match totals.errors_by_type.get(error_type) {
                Some(stored) => prop_assert_eq!(*stored, n, "error type {}", error_type),
                None => unnamed += n,
            }
        }
        prop_assert_eq!(
            totals
                .errors_by_type
                .get(OVERFLOW_BUCKET)
                .copied()
                .unwrap_or(0),
            unnamed
        );
    }
    // The counters exported last are the totals (a version's and an exported
    // segment's under their own names and labels).
    if !records.is_empty() && model.is_exported(&EXPORTED_SEGMENT_KEYS) {
        let (model_id, slice) = model.split();
        let mut want = vec![("model_id".to_owned(), model_id.to_owned())];
        let counter = match &slice {
            None => "ml_model_predictions_total",
            Some(Slice::Version(version)) => {
                want.push(("model_version".into(), version.clone()));
                "ml_model_version_predictions_total"
            }
            Some(Slice::Segment { key, value }) => {
                want.push(("segment_key".into(), key.clone()));
                want.push(("segment_value".into(), value.clone()));
                "ml_model_segment_predictions_total"
            }
        };
        want.push(("tenant_id".into(), tenant.to_string()));
        want.push(("status".into(), "ok".into()));
        want.sort();
        let exported = world.exported.items();
        let last = exported
            .iter()
            .filter(|s| {
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                labels.sort();
                s.name == counter && labels == want
            })
            .flat_map(|s| s.samples.iter())
            .max_by_key(|(at, _)| *at)
            .map(|(_, value)| *value);
        prop_assert_eq!(last, Some(totals.ok as f64), "exported ok counter");
    }
    Ok(())
}

/// The clock of the runs' exports: as in production, where each run reads the clock
/// when it starts, a run's export time is later than every stamp of the runs before
/// it (which stamp up to a millisecond past their own), however little the scenario's
/// time moved between them.
#[derive(Default)]
struct ExportClock {
    last: Option<DateTime<Utc>>,
}

impl ExportClock {
    /// The export time of a run at `now`.
    fn tick(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let next = self
            .last
            .map_or(now, |last| now.max(last + TimeDelta::seconds(1)));
        self.last = Some(next);
        next
    }
}

/// The number of cases: `MODELWATCH_FUZZ_CASES`, else [`DEFAULT_CASES`].
fn cases() -> u32 {
    std::env::var("MODELWATCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn accepted_batches_are_counted_exactly_once_whatever_the_stores_do() {
    let seed: u64 = std::env::var("MODELWATCH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let figures = Mutex::new(Figures::default());
    let started = std::time::Instant::now();
    let result = runner.run(&scenario(), |scenario| {
        runtime.block_on(run_case(&scenario, &figures))
    });
    let figures = figures.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "accepted-means-counted: seed {seed} (MODELWATCH_FUZZ_SEED replays it), {} cases in {:.1} s: {figures:?}",
        figures.cases,
        started.elapsed().as_secs_f64()
    );
    if let Err(failure) = result {
        panic!("seed {seed}: {failure}");
    }
}

use super::*;
use crate::adapters::memory::{MemoryModelSettings, MemoryRollupStore};
use crate::aggregate::roll_up;
use crate::domain::ids::ModelRef;
use crate::domain::{PredictionRecord, ValidBatch, WindowState};
use crate::ingest::{BatchLimits, IngestQuotas, IngestService, parse_batch};
use crate::ports::ModelRegistry;
use serde_json::{Value, json};

use crate::adapters::memory::MemoryLabelStore;
use crate::domain::alerting::baseline::{
    Reference, ReferenceSnapshot, ReferenceSource, ReferenceWindow, RegisteredBaseline,
};
use crate::domain::estimation::{Comparison, ReferenceFit};
use crate::domain::labels::LabelLookback;
use crate::ports::SettingWrite;
use crate::testing::{MemoryIngest as Ingest, at, memory_ingest, model, run_at, tenant};

/// Ingest accepting 40-day-old events, so the 30-day window has old data.
fn limits() -> BatchLimits {
    BatchLimits {
        max_age: TimeDelta::days(40),
        ..BatchLimits::default()
    }
}

fn ingest_service() -> Ingest {
    IngestService {
        versions_per_model: crate::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: crate::ingest::SegmentAdmission::default(),
        limits: limits(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
        ..memory_ingest()
    }
}

/// A regression batch: one prediction per time (dyadic values, so sums are exact
/// in any order), every fifth an error, and a resource sample every third time.
fn regression_body(batch_id: &str, times: &[DateTime<Utc>]) -> Vec<u8> {
    let predictions: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let actual = [1.0, 2.0, 4.0][i % 3];
            if i % 5 == 4 {
                json!({"timestamp": t.to_rfc3339(), "latency_ms": 300 + i % 7, "status": "error", "error_type": "timeout"})
            } else {
                json!({"timestamp": t.to_rfc3339(), "latency_ms": 2 + i % 50, "status": "ok",
                       "predicted": actual + (i % 4) as f64 * 0.25, "actual": actual})
            }
        })
        .collect();
    let resources: Vec<Value> = times
        .iter()
        .step_by(3)
        .enumerate()
        .map(|(i, t)| {
            let cpu = [0.25, 0.5, 0.75][i % 3];
            json!({"timestamp": t.to_rfc3339(), "cpu_utilization": cpu,
                   "memory_utilization": 0.5, "queue_depth": i % 9, "cache_hits": i % 4, "cache_misses": 1})
        })
        .collect();
    json!({"model_id": "m1", "batch_id": batch_id, "task": "regression",
           "predictions": predictions, "resources": resources})
    .to_string()
    .into_bytes()
}

/// The records of the test, ingested and rolled up at `now`.
struct Fixture {
    ingest: Ingest,
    service: SummaryService<MemoryRollupStore, MemoryModelSettings>,
    batches: Vec<ValidBatch>,
    now: DateTime<Utc>,
}

impl Fixture {
    /// The summary of tenant `t1`'s `model_id` at the fixture's `now`.
    async fn summary(&self, model_id: &str, query: SummaryQuery) -> PerformanceSummary {
        let model = self
            .ingest
            .registry
            .model(ModelRef::new(&tenant("t1"), &model(model_id)))
            .await
            .expect("registry")
            .expect("registered");
        self.service
            .summary_of(&model, query, self.now)
            .await
            .expect("summary")
    }

    /// The engine's state over the records with a time in `span`.
    fn state_in(&self, span: TimeSpan) -> WindowState {
        let inside = |t: DateTime<Utc>| span.start <= t && t < span.end;
        let mut state = WindowState::default();
        for batch in &self.batches {
            for p in batch
                .predictions
                .iter()
                .filter(|p| inside(p.record.timestamp))
            {
                state.fold_prediction(&p.record).expect("fold");
            }
            for r in batch.resources.iter().filter(|r| inside(r.timestamp)) {
                state.fold_resource(r).expect("fold");
            }
        }
        state
    }

    /// Ingests `body` for tenant `t1` at `now`; returns its records.
    async fn ingest_records(&self, body: &[u8]) -> Vec<PredictionRecord> {
        let batch = parse_batch(body, self.now, &limits()).expect("valid batch");
        self.ingest
            .ingest(&tenant("t1"), body, self.now)
            .await
            .expect("accepted");
        batch.predictions.into_iter().map(|p| p.record).collect()
    }

    /// Registers `[from, to)` as `model_id`'s reference window (no other baseline).
    async fn register_reference(&self, model_id: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
        let baseline = RegisteredBaseline {
            test_set: None,
            throughput_forecast_rps: None,
            reference: Some(ReferenceWindow { from, to }),
            updated_at: self.now,
        };
        self.service
            .settings
            .put_setting(
                ModelRef::new(&tenant("t1"), &model(model_id)),
                SettingWrite::RegisteredBaseline(&baseline),
            )
            .await
            .expect("stored");
    }

    /// Rolls up every pending partial at the fixture's `now`.
    async fn roll_up(&self) {
        roll_up(
            &self.ingest.partials,
            &self.service.window.rollups,
            &run_at(self.now),
            &[],
        )
        .await
        .expect("roll up");
    }

    async fn first_seen(&self) -> Option<DateTime<Utc>> {
        let m = self
            .ingest
            .registry
            .model(ModelRef::new(&tenant("t1"), &model("m1")))
            .await;
        m.expect("read").map(|m| m.first_seen)
    }
}

/// Regression records over 31 days before `now` (every 37 minutes), plus records
/// just around each window's start and its hour, all in closed minutes.
async fn fixture() -> Fixture {
    let now = at("2026-11-28T12:34:56.789Z");
    let open_minute = Granularity::Minute.floor(now);
    let mut times: Vec<DateTime<Utc>> = (1..1_210)
        .map(|i| open_minute - TimeDelta::minutes(37 * i) + TimeDelta::seconds(i % 60))
        .collect();
    for window in Window::ALL {
        let from = now - window.length();
        for offset in [-90, -20, -1, 0, 1, 20, 90] {
            times.push(from + TimeDelta::seconds(offset));
        }
        times.push(Granularity::Hour.floor(from) + TimeDelta::seconds(5));
    }
    times.push(open_minute - TimeDelta::seconds(1));
    times.retain(|t| *t > now - TimeDelta::days(39));
    let ingest = ingest_service();
    let mut batches = Vec::new();
    for (i, chunk) in times.chunks(400).enumerate() {
        let body = regression_body(&format!("b{i}"), chunk);
        batches.push(parse_batch(&body, now, &limits()).expect("valid batch"));
        ingest
            .ingest(&tenant("t1"), &body, now)
            .await
            .expect("accepted");
    }
    let rollups = MemoryRollupStore::default();
    roll_up(&ingest.partials, &rollups, &run_at(now), &[])
        .await
        .expect("roll up");
    Fixture {
        ingest,
        service: SummaryService {
            window: WindowReader {
                rollups,
                minute_retention: TimeDelta::days(8),
            },
            settings: MemoryModelSettings::default(),
        },
        batches,
        now,
    }
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
            "{what}: {x} != {y}"
        ),
        (x, y) => assert_eq!(x, y, "{what}"),
    }
}

/// Every metric the summary shows, as (name, value), from its JSON form.
fn flat_values(json: &Value) -> Vec<(String, Option<f64>)> {
    let mut values = Vec::new();
    for (name, v) in json.as_object().expect("object") {
        let v = if v.is_object() { &v["current"] } else { v };
        values.push((name.clone(), v.as_f64()));
    }
    values
}

fn assert_same_metrics(shown: &Value, engine: &MetricSet, what: &str) {
    let expected = serde_json::to_value(engine).expect("json");
    let values = flat_values(shown);
    assert!(!values.is_empty(), "{what}");
    for (name, value) in values {
        close(value, expected[&name].as_f64(), &format!("{what} {name}"));
    }
}

#[tokio::test]
async fn current_values_and_series_equal_the_engine_for_every_window_and_granularity() {
    let f = fixture().await;
    let first_seen = f.first_seen().await;
    for window in Window::ALL {
        for granularity in Granularity::ALL.into_iter().filter(|g| window.allows(*g)) {
            let what = format!("{} {}", window.as_str(), granularity.as_str());
            let query = SummaryQuery {
                window,
                granularity,
                slice: None,
            };
            let summary = f.summary("m1", query.clone()).await;
            let from = f.now - window.length();
            let expected_start = if window == Window::Days30 {
                Granularity::Hour.floor(from)
            } else {
                Granularity::Minute.floor(from)
            };
            assert_eq!(summary.covered.start, expected_start, "{what}");
            assert_eq!(summary.covered.end, f.now, "{what}");
            let engine =
                MetricSet::compute(&f.state_in(summary.covered), summary.covered, first_seen);
            assert!(
                engine.predictions > 5,
                "{what}: the fixture fills the window"
            );
            assert_eq!(summary.sample_count, engine.predictions, "{what}");
            assert_eq!(summary.labeled_count, engine.labeled, "{what}");
            let json = serde_json::to_value(&summary).expect("json");
            for part in ["quality_metrics", "serving_metrics", "resource_metrics"] {
                assert_same_metrics(&json[part], &engine, &format!("{what} {part}"));
            }

            let step = granularity.length();
            let first = granularity.floor(summary.covered.start);
            let points = json["series"].as_array().expect("series");
            assert_eq!(summary.series.len(), points.len());
            let expected_len = (f.now - first).num_seconds().div_euclid(step.num_seconds()) + 1;
            assert_eq!(points.len() as i64, expected_len, "{what}");
            for (i, (point, shown)) in summary.series.iter().zip(points).enumerate() {
                let start = first + step * i32::try_from(i).expect("small");
                assert_eq!(point.timestamp, start, "{what} point {i}");
                let span = TimeSpan {
                    start,
                    end: (start + step).min(f.now),
                };
                let engine = MetricSet::compute(&f.state_in(span), span, first_seen);
                assert_eq!(shown["sample_count"], engine.predictions, "{what} {i}");
                assert_eq!(shown["labeled_count"], engine.labeled, "{what} {i}");
                let mut metrics = shown.clone();
                for key in ["timestamp", "sample_count", "labeled_count"] {
                    metrics.as_object_mut().expect("object").remove(key);
                }
                assert_eq!(metrics.as_object().expect("object").len(), 16, "{what}");
                assert_same_metrics(&metrics, &engine, &format!("{what} point {i}"));
            }
        }
    }
}

#[test]
fn the_current_values_compose_days_hours_and_minute_edges() {
    let reads = compose(at("2026-10-29T12:34:00Z"), at("2026-11-28T12:34:56Z"));
    let shown: Vec<(Granularity, String, String)> = reads
        .iter()
        .map(|(g, s)| (*g, s.start.to_rfc3339(), s.end.to_rfc3339()))
        .collect();
    let row = |g, a: &str, b: &str| (g, at(a).to_rfc3339(), at(b).to_rfc3339());
    assert_eq!(
        shown,
        [
            row(
                Granularity::Minute,
                "2026-10-29T12:34:00Z",
                "2026-10-29T13:00:00Z"
            ),
            row(
                Granularity::Hour,
                "2026-10-29T13:00:00Z",
                "2026-10-30T00:00:00Z"
            ),
            row(
                Granularity::Day,
                "2026-10-30T00:00:00Z",
                "2026-11-28T00:00:00Z"
            ),
            row(
                Granularity::Hour,
                "2026-11-28T00:00:00Z",
                "2026-11-28T12:00:00Z"
            ),
            row(
                Granularity::Minute,
                "2026-11-28T12:00:00Z",
                "2026-11-28T12:34:56Z"
            ),
        ]
    );
    let within_a_day = compose(at("2026-11-28T10:00:00Z"), at("2026-11-28T11:00:00Z"));
    assert_eq!(within_a_day.len(), 1);
    assert_eq!(within_a_day[0].0, Granularity::Hour);
}

#[tokio::test]
async fn absent_metrics_are_null_and_keys_follow_the_task() {
    let f = fixture().await;
    let query = SummaryQuery::parse([("window", "1h")]).expect("valid");
    let summary = f.summary("m1", query.clone()).await;
    let json = serde_json::to_value(&summary).expect("json");
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(keys(&json["quality_metrics"]), ["rmse", "mae", "mape"]);
    assert_eq!(
        json["quality_metrics"]["rmse"]["baseline"],
        Value::Null,
        "no baseline yet"
    );
    assert_eq!(json["quality_metrics"]["rmse"]["trend"], Value::Null);
    assert_eq!(json["resource_metrics"]["gpu_utilization"], Value::Null);
    assert_eq!(json["window"], "1h");
    assert_eq!(json["granularity"], "minute");
    assert!(
        json["series"]
            .as_array()
            .expect("series")
            .iter()
            .any(|p| p["sample_count"] == 0 && p["latency_p50_ms"].is_null()),
        "an empty minute shows nulls"
    );

    // A multiclass model: classification keys, AUC null (binary only).
    let body = json!({"model_id": "m2", "batch_id": "c1", "task": "multiclass_classification",
        "predictions": [
            {"timestamp": "2026-11-28T12:00:01Z", "latency_ms": 4, "status": "ok", "predicted": "a", "actual": "a"},
            {"timestamp": "2026-11-28T12:00:02Z", "latency_ms": 6, "status": "ok", "predicted": "b", "actual": "a"}]})
    .to_string();
    f.ingest
        .ingest(&tenant("t1"), body.as_bytes(), f.now)
        .await
        .expect("accepted");
    f.roll_up().await;
    let summary = f.summary("m2", query.clone()).await;
    let json = serde_json::to_value(&summary).expect("json");
    assert_eq!(
        keys(&json["quality_metrics"]),
        ["accuracy", "f1_score", "auc_roc"]
    );
    assert_eq!(json["quality_metrics"]["accuracy"]["current"], 0.5);
    assert_eq!(json["quality_metrics"]["auc_roc"]["current"], Value::Null);
    assert_eq!(json["resource_metrics"]["cpu_utilization"], Value::Null);
    assert_eq!(json["sample_count"], 2);
}

#[test]
fn query_parameters_are_checked() {
    let q = SummaryQuery::parse([]).expect("defaults");
    assert_eq!(
        (q.window, q.granularity),
        (Window::Hours24, Granularity::Hour)
    );
    for (window, granularity) in [
        ("1h", Granularity::Minute),
        ("6h", Granularity::Minute),
        ("24h", Granularity::Hour),
        ("7d", Granularity::Hour),
        ("30d", Granularity::Day),
    ] {
        let q = SummaryQuery::parse([("window", window)]).expect("valid");
        assert_eq!(q.granularity, granularity, "{window}");
    }
    let q = SummaryQuery::parse([("granularity", "minute"), ("window", "24h")]).expect("ok");
    assert_eq!(q.granularity, Granularity::Minute);

    let err = SummaryQuery::parse([("window", "2h")]).expect_err("unknown window");
    assert_eq!(err.parameter, "window");
    assert_eq!(err.allowed, ["1h", "6h", "24h", "7d", "30d"]);
    let err = SummaryQuery::parse([("window", "7d"), ("granularity", "minute")])
        .expect_err("minute for 7d");
    assert_eq!(err.parameter, "granularity");
    assert_eq!(err.allowed, ["hour", "day"]);
    let err = SummaryQuery::parse([("granularity", "second")]).expect_err("unknown");
    assert_eq!(err.allowed, ["minute", "hour", "day"]);
    let err = SummaryQuery::parse([("window", "1h"), ("limit", "3")]).expect_err("unknown");
    assert_eq!(err.parameter, "limit");
    let err = SummaryQuery::parse([("window", "1h"), ("window", "6h")]).expect_err("twice");
    assert_eq!(err.parameter, "window");
}

/// A binary batch of `n` predictions from `start`, one a second: score `i / n` spread
/// over `[0, 1)` shifted by `shift`, predicted at 0.5, labeled when `labeled` (the
/// actual true exactly when `i % 10` is below ten times the score).
fn binary_body(
    batch_id: &str,
    start: DateTime<Utc>,
    n: usize,
    shift: f64,
    labeled: bool,
) -> Vec<u8> {
    let predictions: Vec<Value> = (0..n)
        .map(|i| {
            let score = ((i as f64 + 0.5) / n as f64 + shift).clamp(0.0, 1.0);
            let mut p = json!({"timestamp": (start + TimeDelta::seconds(i as i64)).to_rfc3339(),
                               "latency_ms": 5, "status": "ok", "predicted": score >= 0.5, "score": score});
            if labeled {
                p["actual"] = ((i % 10) as f64 <= 10.0 * score).into();
            }
            p
        })
        .collect();
    json!({"model_id": "m3", "batch_id": batch_id, "task": "binary_classification",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// The engine's state over `records` with a time in `span`.
fn state_of(records: &[PredictionRecord], span: TimeSpan) -> WindowState {
    let mut state = WindowState::default();
    for record in records
        .iter()
        .filter(|r| span.start <= r.timestamp && r.timestamp < span.end)
    {
        state.fold_prediction(record).expect("fold");
    }
    state
}

/// `n` unlabeled multiclass predictions from `start`, one a second, of labels `a`, `b`,
/// `c` in turn, scored evenly over `[low, low + 0.4)`.
fn multiclass_body(batch_id: &str, start: DateTime<Utc>, n: usize, low: f64) -> Vec<u8> {
    let predictions: Vec<Value> = (0..n)
        .map(|i| {
            let label = ["a", "b", "c"][i % 3];
            json!({"timestamp": (start + TimeDelta::seconds(i as i64)).to_rfc3339(),
                   "latency_ms": 5, "status": "ok", "predicted": label,
                   "score": low + 0.4 * (i as f64 + 0.5) / n as f64})
        })
        .collect();
    json!({"model_id": "m4", "batch_id": batch_id, "task": "multiclass_classification",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn multiclass_summaries_measure_label_and_confidence_drift() {
    let f = fixture().await;
    let reference = TimeSpan::new(
        f.now - TimeDelta::days(3),
        f.now - TimeDelta::days(3) + TimeDelta::hours(1),
    );
    let mut records = Vec::new();
    // The same label mix, the confidence fallen from [0.6, 1.0) to [0.35, 0.75).
    for (id, start, low) in [
        ("r", reference.start, 0.6),
        ("w", f.now - TimeDelta::minutes(50), 0.35),
    ] {
        records.extend(
            f.ingest_records(&multiclass_body(id, start, 2_000, low))
                .await,
        );
    }
    f.roll_up().await;
    f.register_reference("m4", reference.start, reference.end)
        .await;
    let query = SummaryQuery::parse([("window", "1h")]).expect("valid");
    let summary = f.summary("m4", query.clone()).await;
    let json = serde_json::to_value(&summary).expect("json");
    let fit = ReferenceFit::of(
        Task::MulticlassClassification,
        Some(&state_of(&records, reference)),
    );
    let comparison = fit.compare(&state_of(&records, summary.covered));
    let (labels, confidence) = (
        comparison.drift.expect("label drift"),
        comparison.confidence_drift.expect("confidence drift"),
    );
    let drift = &json["drift"];
    assert_eq!(drift["distribution"], "predicted_label");
    assert_eq!(drift["psi"], labels.psi);
    assert!(labels.psi < 0.01, "the label mix is unchanged: {drift}");
    let shown = &drift["confidence"];
    assert_eq!(shown["distribution"], "predicted_class_score");
    assert_eq!(shown["psi"], confidence.psi);
    assert_eq!(shown["js"], confidence.js);
    assert_eq!(shown["bins"], 10);
    assert_eq!(shown["predictions"], 2_000);
    assert!(confidence.psi > 0.2, "the confidence fell: {shown}");
}

#[tokio::test]
async fn binary_summaries_estimate_and_measure_drift_against_the_reference_window() {
    let f = fixture().await;
    let reference_start = f.now - TimeDelta::days(3);
    let current_start = f.now - TimeDelta::minutes(50);
    let mut records = Vec::new();
    for (id, start, shift, labeled) in [
        ("r", reference_start, 0.0, true),
        ("w", current_start, 0.15, false),
    ] {
        records.extend(
            f.ingest_records(&binary_body(id, start, 2_000, shift, labeled))
                .await,
        );
    }
    let state_in = |span: TimeSpan| state_of(&records, span);
    f.roll_up().await;
    let query = SummaryQuery::parse([("window", "1h")]).expect("valid");

    // No reference yet: nothing estimated, and the summary says why.
    let json = serde_json::to_value(f.summary("m3", query.clone()).await).expect("json");
    assert_eq!(
        json["quality_metrics"]["accuracy"]["estimated"],
        Value::Null
    );
    assert!(
        json["estimation"]["unavailable"]
            .as_str()
            .is_some_and(|why| why.contains("no reference window")),
        "{}",
        json["estimation"]
    );
    assert_eq!(json["drift"]["psi"], Value::Null);

    let reference = TimeSpan::new(reference_start, reference_start + TimeDelta::hours(1));
    f.register_reference("m3", reference.start, reference.end)
        .await;
    let summary = f.summary("m3", query.clone()).await;
    let json = serde_json::to_value(&summary).expect("json");
    // Exactly the domain's estimate and drift over the engine's states of both windows.
    let (reference_state, window_state) = (state_in(reference), state_in(summary.covered));
    let fit = ReferenceFit::of(Task::BinaryClassification, Some(&reference_state));
    let Comparison {
        estimate,
        drift,
        confidence_drift,
    } = fit.compare(&window_state);
    assert_eq!(
        confidence_drift, None,
        "a binary classifier's scores are its drift"
    );
    let (estimate, drift) = (estimate.expect("an estimate"), drift.expect("drift"));
    let accuracy = &json["quality_metrics"]["accuracy"];
    assert_eq!(accuracy["current"], Value::Null, "the window is unlabeled");
    assert_eq!(accuracy["estimated"], estimate.accuracy.value);
    assert_eq!(
        accuracy["estimated_ci"],
        json!([estimate.accuracy.low, estimate.accuracy.high])
    );
    assert_eq!(
        json["quality_metrics"]["auc_roc"]["estimated"],
        estimate.auc_roc.expect("both classes").value
    );
    assert_eq!(
        json["estimation"]["precision"]["estimated"],
        estimate.precision.expect("positives").value
    );
    assert_eq!(json["estimation"]["predictions"], 2_000);
    assert_eq!(json["estimation"]["unavailable"], Value::Null);
    assert_eq!(json["estimation"]["reference"]["source"], "registered");
    assert_eq!(json["drift"]["psi"], drift.psi);
    assert_eq!(json["drift"]["js"], drift.js);
    assert_eq!(json["drift"]["distribution"], "score");
    assert_eq!(
        json["drift"]["confidence"],
        Value::Null,
        "its scores are its drift"
    );
    assert!(
        drift.psi > 0.2,
        "a 0.15 shift of every score drifts: {drift:?}"
    );

    // A snapshot of the reference kept by `evaluate` serves instead of the rollups —
    // here one of the window itself, which does not drift from itself.
    let registered = Reference {
        from: reference.start,
        to: reference.end,
        source: ReferenceSource::Registered,
    };
    let snapshot = ReferenceSnapshot::new(&registered, &window_state, f.now);
    f.service
        .settings
        .put_setting(
            ModelRef::new(&tenant("t1"), &model("m3")),
            SettingWrite::Reference(&snapshot),
        )
        .await
        .expect("stored");
    let json = serde_json::to_value(f.summary("m3", query.clone()).await).expect("json");
    assert_eq!(json["drift"]["psi"], 0.0, "{}", json["drift"]);
    // A snapshot of another window is not used.
    let longer = Reference {
        to: reference.end + TimeDelta::minutes(1),
        ..registered
    };
    let other = ReferenceSnapshot::new(&longer, &window_state, f.now);
    assert!(!other.covers(&registered));
    f.service
        .settings
        .put_setting(
            ModelRef::new(&tenant("t1"), &model("m3")),
            SettingWrite::Reference(&other),
        )
        .await
        .expect("stored");
    let json = serde_json::to_value(f.summary("m3", query.clone()).await).expect("json");
    assert_eq!(json["drift"]["psi"], drift.psi);

    // A regression model says estimates are for binary classifiers; with a reference
    // window, its predicted values are compared (the same generator).
    let json = serde_json::to_value(f.summary("m1", query.clone()).await).expect("json");
    assert_eq!(json["estimation"]["reference"], Value::Null);
    assert_eq!(json["quality_metrics"]["rmse"]["estimated"], Value::Null);
    assert_eq!(json["drift"]["psi"], Value::Null);
    f.register_reference(
        "m1",
        f.now - TimeDelta::days(20),
        f.now - TimeDelta::days(19),
    )
    .await;
    let json = serde_json::to_value(
        f.summary(
            "m1",
            SummaryQuery::parse([("window", "24h")]).expect("valid"),
        )
        .await,
    )
    .expect("json");
    assert_eq!(
        json["drift"]["distribution"], "predicted_value",
        "{}",
        json["drift"]
    );
    // About 39 predictions a day: PSI's sampling bias alone is about 9/39.
    let psi = json["drift"]["psi"].as_f64().expect("psi");
    assert!((0.0..0.5).contains(&psi), "{psi}");
    assert_eq!(json["estimation"]["reference"]["source"], "registered");
    assert!(
        json["estimation"]["unavailable"]
            .as_str()
            .is_some_and(|why| why.contains("binary")),
        "{}",
        json["estimation"]
    );
}

//! Versions and segments through ingest, roll-up and the readers, in memory: each
//! slice equals the engine over its own records, the model's over all of them.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::*;
use crate::adapters::memory::{MemoryLabelStore, MemoryModelSettings, MemoryRollupStore};
use crate::aggregate::roll_up;
use crate::domain::comparison::Verdict;
use crate::domain::{Granularity, MetricName, MetricSet, ValidBatch, ValidPrediction, WindowState};
use crate::ingest::{BatchLimits, parse_batch};
use crate::summary::{SummaryQuery, WindowReader};
use crate::testing::{MemoryIngest, at, memory_ingest, model, run_at, tenant};

const NOW: &str = "2026-11-28T12:34:56.789Z";

/// A binary batch of `n` predictions of `version` a minute apart before `now`, the
/// first `correct` of them right; with `pending` ids, the predictions carry no
/// actual (their labels come later).
fn batch(
    batch_id: &str,
    version: Option<&str>,
    n: usize,
    correct: usize,
    pending: bool,
) -> Vec<u8> {
    let now: DateTime<Utc> = at(NOW);
    let predictions: Vec<_> = (0..n)
        .map(|i| {
            let t = now - TimeDelta::minutes(5 + i as i64);
            let mut p = json!({"timestamp": t.to_rfc3339(), "latency_ms": 10 + i % 7,
                               "status": "ok", "predicted": true, "score": 0.75,
                               "prediction_id": format!("{batch_id}-{i}")});
            if !pending {
                p["actual"] = json!(i < correct);
            }
            p
        })
        .collect();
    let mut body = json!({"model_id": "fraud", "batch_id": batch_id,
                          "task": "binary_classification", "predictions": predictions});
    if let Some(version) = version {
        body["model_version"] = json!(version);
    }
    body.to_string().into_bytes()
}

struct Fixture {
    ingest: MemoryIngest,
    service: SummaryService<MemoryRollupStore, MemoryModelSettings>,
}

impl Fixture {
    fn new(versions_per_model: u64) -> Self {
        Self {
            ingest: MemoryIngest {
                versions_per_model,
                labels: MemoryLabelStore::default(),
                ..memory_ingest()
            },
            service: SummaryService {
                window: WindowReader {
                    rollups: MemoryRollupStore::default(),
                    minute_retention: TimeDelta::days(31),
                },
                settings: MemoryModelSettings::default(),
            },
        }
    }

    async fn send(&self, body: &[u8]) {
        self.ingest
            .ingest(&tenant("t1"), body, at(NOW))
            .await
            .expect("accepted");
    }

    /// The labels of predictions `<batch_id>-0` to `-<n - 1>` of batch `batch_id`, the
    /// `i`-th `actual(i)`.
    async fn send_labels(&self, batch_id: &str, n: usize, actual: impl Fn(usize) -> bool) {
        let labels: Vec<_> = (0..n)
            .map(|i| {
                json!({"prediction_id": format!("{batch_id}-{i}"), "actual": actual(i),
                       "timestamp": at(NOW).to_rfc3339()})
            })
            .collect();
        let body = json!({"model_id": "fraud", "batch_id": "l1", "actuals": labels}).to_string();
        self.ingest
            .ingest_actuals(&tenant("t1"), body.as_bytes(), at(NOW))
            .await
            .expect("labels accepted");
    }

    async fn roll_up(&self) {
        roll_up(
            &self.ingest.partials,
            &self.service.window.rollups,
            &run_at(at(NOW)),
            &[],
        )
        .await
        .expect("roll up");
    }

    async fn model(&self) -> RegisteredModel {
        self.ingest
            .registry
            .model(ModelRef::new(&tenant("t1"), &model("fraud")))
            .await
            .expect("read")
            .expect("registered")
    }

    async fn summary(&self, version: Option<&str>) -> crate::summary::PerformanceSummary {
        self.slice_summary(version.map(Slice::version)).await
    }

    async fn slice_summary(&self, slice: Option<Slice>) -> crate::summary::PerformanceSummary {
        let query = SummaryQuery {
            window: Window::Hours24,
            granularity: Granularity::Hour,
            slice,
        };
        self.service
            .summary_of(&self.model().await, query, at(NOW))
            .await
            .expect("summary")
    }
}

/// The engine's metrics over the records of `bodies`.
fn engine(bodies: &[&[u8]], span: TimeSpan) -> MetricSet {
    engine_where(bodies, span, |_, _| true)
}

/// The engine's metrics over the records of `bodies` that `keep` keeps.
fn engine_where(
    bodies: &[&[u8]],
    span: TimeSpan,
    keep: impl Fn(&ValidBatch, &ValidPrediction) -> bool,
) -> MetricSet {
    let mut state = WindowState::default();
    for body in bodies {
        let batch = parse_batch(body, at(NOW), &BatchLimits::default()).expect("valid");
        for p in batch.predictions.iter().filter(|p| keep(&batch, p)) {
            state.fold_prediction(&p.record).expect("fold");
        }
    }
    MetricSet::compute(&state, span, None)
}

/// The regions of the segmented batches, by prediction index modulo 3.
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// A binary batch of `n` predictions a minute apart before `now`, prediction `i` in
/// region `REGIONS[i % 3]` and on channel `app` (even `i`) or `web`; right unless
/// `i % 5 == 0` or (in region `us`) `i % 2 == 0`; with `pending`, without actuals.
fn segmented(batch_id: &str, n: usize, pending: bool) -> Vec<u8> {
    let now: DateTime<Utc> = at(NOW);
    let predictions: Vec<_> = (0..n)
        .map(|i| {
            let t = now - TimeDelta::minutes(5 + i as i64);
            let region = REGIONS[i % 3];
            let channel = if i.is_multiple_of(2) { "app" } else { "web" };
            let mut p = json!({"timestamp": t.to_rfc3339(), "latency_ms": 10 + i % 7,
                               "status": "ok", "predicted": true, "score": 0.75,
                               "prediction_id": format!("{batch_id}-{i}"),
                               "segment": {"region": region, "channel": channel}});
            if !pending {
                p["actual"] = json!(!right_answer_missed(i));
            }
            p
        })
        .collect();
    json!({"model_id": "fraud", "batch_id": batch_id, "task": "binary_classification",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// Whether segmented prediction `i` is wrong.
fn right_answer_missed(i: usize) -> bool {
    i.is_multiple_of(5) || (REGIONS[i % 3] == "us" && i.is_multiple_of(2))
}

/// Whether `p` carries segment `key` = `value`.
fn in_segment(batch: &ValidBatch, p: &ValidPrediction, key: &str, value: &str) -> bool {
    batch.segment_of(p).any(|(k, v)| k == key && v == value)
}

#[tokio::test]
async fn each_version_reads_its_own_records_and_the_model_all_of_them() {
    let f = Fixture::new(20);
    let (v1, v2, none) = (
        batch("b1", Some("v1"), 400, 360, false),
        batch("b2", Some("v2"), 100, 70, false),
        batch("b3", None, 50, 50, false),
    );
    for body in [&v1, &v2, &none] {
        f.send(body).await;
    }
    f.roll_up().await;
    let model_summary = f.summary(None).await;
    let span = model_summary.covered;
    let cases: [(Option<&str>, Vec<&[u8]>); 3] = [
        (None, vec![&v1, &v2, &none]),
        (Some("v1"), vec![&v1]),
        (Some("v2"), vec![&v2]),
    ];
    for (version, bodies) in cases {
        let summary = f.summary(version).await;
        let expected = engine(&bodies, span);
        assert_eq!(summary.sample_count, expected.predictions, "{version:?}");
        assert_eq!(summary.labeled_count, expected.labeled, "{version:?}");
        assert_eq!(summary.model_version.as_deref(), version);
        let shown = serde_json::to_value(&summary.quality_metrics).expect("json");
        assert_eq!(
            shown["accuracy"]["current"].as_f64(),
            expected.accuracy,
            "{version:?}"
        );
    }
    let versions = versions_of(
        &f.ingest.registry,
        &f.service.window.rollups,
        &f.model().await,
    )
    .await
    .expect("versions");
    let counts: Vec<(&str, u64)> = versions
        .versions
        .iter()
        .map(|v| (v.model_version.as_str(), v.prediction_count))
        .collect();
    assert_eq!(counts, [("v1", 400), ("v2", 100)]);
    assert_eq!(versions.overflow_prediction_count, 0);
    let v2 = &versions.versions[1];
    assert_eq!(v2.first_seen, at(NOW) - TimeDelta::minutes(104));
    assert_eq!(v2.last_seen, at(NOW) - TimeDelta::minutes(5));
}

#[tokio::test]
async fn a_worse_canary_is_judged_worse_and_the_same_model_no_different() {
    let f = Fixture::new(20);
    f.send(&batch("b1", Some("v1"), 900, 855, false)).await;
    f.send(&batch("b2", Some("v2"), 100, 75, false)).await;
    f.roll_up().await;
    let model = f.model().await;
    let compare = |baseline: &str, candidate: &str| {
        let params = [("baseline", baseline), ("candidate", candidate)];
        let query = CompareQuery::parse(params).expect("query");
        let service = &f.service;
        let model = &model;
        async move {
            service
                .compare(model, &query, at(NOW))
                .await
                .expect("compare")
        }
    };
    let canary = compare("version:v1", "version:v2").await;
    assert_eq!(canary.comparison.verdict, Verdict::CandidateWorse);
    assert_eq!(
        (canary.baseline.sample_count, canary.candidate.sample_count),
        (900, 100)
    );
    let accuracy = &canary.comparison.metrics[0];
    assert_eq!(accuracy.metric, MetricName::Accuracy);
    assert_eq!(
        (accuracy.baseline, accuracy.candidate),
        (Some(0.95), Some(0.75))
    );
    let test = accuracy.test.expect("tested");
    assert!(test.significant && test.p_value < 1e-6, "{test:?}");
    let same = compare("model", "model").await;
    assert_eq!(same.comparison.verdict, Verdict::NoDifference);
    let json = serde_json::to_value(&canary).expect("json");
    assert_eq!(json["baseline"]["slice"], "version:v1");
    assert_eq!(json["verdict"], "candidate_worse");
    assert_eq!(json["significance_level"], 0.05);
    let unknown = compare("version:v1", "version:v9").await;
    assert_eq!(unknown.candidate.sample_count, 0);
    assert_eq!(unknown.comparison.verdict, Verdict::InsufficientData);
}

#[tokio::test]
async fn versions_past_the_cap_count_under_the_model_and_the_overflow() {
    let f = Fixture::new(2);
    for (i, version) in ["v1", "v2", "v3", "v4"].into_iter().enumerate() {
        f.send(&batch(&format!("b{i}"), Some(version), 10 + i, 5, false))
            .await;
    }
    f.roll_up().await;
    let versions = versions_of(
        &f.ingest.registry,
        &f.service.window.rollups,
        &f.model().await,
    )
    .await
    .expect("versions");
    let kept: Vec<&str> = versions
        .versions
        .iter()
        .map(|v| v.model_version.as_str())
        .collect();
    assert_eq!(kept, ["v1", "v2"]);
    assert_eq!(versions.overflow_prediction_count, 12 + 13);
    assert_eq!(f.summary(None).await.sample_count, 10 + 11 + 12 + 13);
    assert_eq!(f.summary(Some(OVERFLOW_BUCKET)).await.sample_count, 25);
    assert_eq!(f.summary(Some("v3")).await.sample_count, 0);
}

#[tokio::test]
async fn a_late_label_counts_in_its_predictions_version() {
    let f = Fixture::new(20);
    f.send(&batch("b1", Some("v2"), 40, 0, true)).await;
    f.send_labels("b1", 40, |i| i % 4 != 0).await;
    f.roll_up().await;
    for version in [None, Some("v2")] {
        let summary = f.summary(version).await;
        assert_eq!(
            (summary.sample_count, summary.labeled_count),
            (40, 40),
            "{version:?}"
        );
        let shown = serde_json::to_value(&summary.quality_metrics).expect("json");
        assert_eq!(shown["accuracy"]["current"], 0.75, "{version:?}");
    }
}

#[tokio::test]
async fn each_segment_reads_its_own_records_and_the_model_all_of_them() {
    let f = Fixture::new(20);
    let body = segmented("s1", 600, false);
    f.send(&body).await;
    f.roll_up().await;
    let span = f.summary(None).await.covered;
    assert_eq!(f.summary(None).await.sample_count, 600);
    let cases = [
        ("region", "eu"),
        ("region", "us"),
        ("region", "ap"),
        ("channel", "app"),
        ("channel", "web"),
    ];
    for (key, value) in cases {
        let summary = f.slice_summary(Some(Slice::segment(key, value))).await;
        let expected = engine_where(&[&body], span, |b, p| in_segment(b, p, key, value));
        assert_eq!(summary.sample_count, expected.predictions, "{key}:{value}");
        assert_eq!(summary.labeled_count, expected.labeled, "{key}:{value}");
        let shown = serde_json::to_value(&summary).expect("json");
        assert_eq!(
            shown["quality_metrics"]["accuracy"]["current"].as_f64(),
            expected.accuracy,
            "{key}:{value}"
        );
        assert_eq!(shown["segment"], json!({"key": key, "value": value}));
        assert!(shown.get("model_version").is_none());
    }
    assert_eq!(
        f.slice_summary(Some(Slice::segment("region", "mars")))
            .await
            .sample_count,
        0
    );
    // The worse region is judged worse against the better one.
    let query = CompareQuery::parse([
        ("baseline", "segment:region:eu"),
        ("candidate", "segment:region:us"),
    ])
    .expect("query");
    let compared = f
        .service
        .compare(&f.model().await, &query, at(NOW))
        .await
        .expect("compare");
    assert_eq!(compared.comparison.verdict, Verdict::CandidateWorse);
    let json = serde_json::to_value(&compared).expect("json");
    assert_eq!(json["candidate"]["slice"], "segment:region:us");
}

#[tokio::test]
async fn a_late_label_counts_in_its_predictions_segments() {
    let f = Fixture::new(20);
    f.send(&segmented("s1", 90, true)).await;
    f.send_labels("s1", 90, |i| !right_answer_missed(i)).await;
    f.roll_up().await;
    let labeled = segmented("s1", 90, false);
    let span = f.summary(None).await.covered;
    for (key, value) in [("region", "us"), ("channel", "web")] {
        let summary = f.slice_summary(Some(Slice::segment(key, value))).await;
        let expected = engine_where(&[&labeled], span, |b, p| in_segment(b, p, key, value));
        assert_eq!(
            (summary.sample_count, summary.labeled_count),
            (expected.predictions, expected.labeled),
            "{key}:{value}"
        );
        let shown = serde_json::to_value(&summary.quality_metrics).expect("json");
        assert_eq!(shown["accuracy"]["current"].as_f64(), expected.accuracy);
    }
}

#[test]
fn a_summary_is_of_one_slice_a_version_or_a_segment() {
    let parse =
        |params: &[(&'static str, &'static str)]| SummaryQuery::parse(params.iter().copied());
    let query = parse(&[("segment", "region:eu-west:1")]).expect("valid");
    assert_eq!(query.slice, Some(Slice::segment("region", "eu-west:1")));
    let both = parse(&[("version", "v2"), ("segment", "region:eu")]).expect_err("both");
    assert_eq!(both.parameter, "segment");
    for bad in ["region", "region:", ":eu", "re#gion:eu"] {
        let refused = parse(&[("segment", bad)]).expect_err(bad);
        assert_eq!(
            (refused.parameter.as_str(), refused.value.as_deref()),
            ("segment", Some(bad))
        );
    }
}

#[test]
fn compare_parameters_are_checked_by_name() {
    let parse =
        |params: &[(&'static str, &'static str)]| CompareQuery::parse(params.iter().copied());
    let query = parse(&[
        ("baseline", "model"),
        ("candidate", "version:v2"),
        ("window", "7d"),
    ])
    .expect("valid");
    assert_eq!(query.baseline, None);
    assert_eq!(query.candidate, Some(Slice::version("v2")));
    assert_eq!(query.window, Window::Days7);
    let refused = |params: &[(&'static str, &'static str)]| parse(params).expect_err("refused");
    assert_eq!(refused(&[("candidate", "model")]).parameter, "baseline");
    let bad = refused(&[("baseline", "model"), ("candidate", "v2")]);
    assert_eq!(
        (bad.parameter.as_str(), bad.value.as_deref()),
        ("candidate", Some("v2"))
    );
    assert_eq!(
        refused(&[
            ("baseline", "model"),
            ("candidate", "model"),
            ("window", "2d")
        ])
        .parameter,
        "window"
    );
    assert_eq!(
        refused(&[
            ("baseline", "model"),
            ("candidate", "model"),
            ("slice", "x")
        ])
        .parameter,
        "slice"
    );
}

#[tokio::test]
async fn the_segments_route_lists_kept_keys_and_values_with_their_counts_and_overflows() {
    let mut f = Fixture::new(20);
    f.ingest.segments = crate::ingest::SegmentAdmission::new(crate::domain::slice::SegmentCaps {
        keys: 2,
        values_per_day: 2,
    });
    // Two keys, two regions and two channels kept on the first batch: eu and us, app
    // and web, one prediction each.
    f.send(&segmented("s1", 2, false)).await;
    // A third region (overflows its key) and a third key (overflows the keys).
    let extra = |i: usize, segment: serde_json::Value| {
        json!({"timestamp": (at(NOW) - TimeDelta::minutes(3)).to_rfc3339(),
               "latency_ms": 5, "status": "ok", "predicted": true,
               "prediction_id": format!("x-{i}"), "segment": segment})
    };
    let body = json!({"model_id": "fraud", "batch_id": "s2", "task": "binary_classification",
                      "predictions": [extra(0, json!({"region": "ap"})),
                                      extra(1, json!({"region": "ap", "tier": "gold"})),
                                      extra(2, json!({"tier": "gold"}))]});
    f.send(body.to_string().as_bytes()).await;
    f.roll_up().await;
    let model = f.model().await;
    let rollups = &f.service.window.rollups;
    let view = segments_of(&f.ingest.registry, rollups, &model, at(NOW))
        .await
        .expect("read");
    let shown = serde_json::to_value(&view).expect("json");
    let day = "2026-11-28T00:00:00Z";
    let value = |value: &str, n: u64| json!({"value": value, "last_day": day, "prediction_count": n, "error_count": 0});
    assert_eq!(
        shown,
        json!({
            "model_id": "fraud",
            "keys": [
                {"key": "channel", "values": [value("app", 1), value("web", 1)],
                 "overflow_prediction_count": 0},
                {"key": "region", "values": [value("eu", 1), value("us", 1)],
                 "overflow_prediction_count": 2},
            ],
            "overflow_prediction_count": 2,
        })
    );
    // A day's values are listed while the registry remembers that day.
    let later = at(NOW) + TimeDelta::days(crate::domain::slice::SEGMENT_DAYS_KEPT);
    let later = segments_of(&f.ingest.registry, rollups, &model, later)
        .await
        .expect("read");
    assert!(later.keys.iter().all(|k| k.values.is_empty()), "{later:?}");
    assert_eq!(later.keys.len(), 2, "keys are kept for good");
}

use crate::domain::ids::ModelRef;
use std::sync::Mutex;

use chrono::TimeDelta;

use super::*;
use crate::adapters::memory::{
    MemoryAlertStore, MemoryMetricData, MemoryModelRegistry, MemoryModelSettings, MemoryNotifier,
    MemoryRollupStore, MemorySeriesWriter,
};
use crate::domain::alerting::baseline::{RegisteredBaseline, TestSetBaseline};
use crate::domain::alerting::rules::{Condition, RuleWindow, Severity, parse_rule_set};
use crate::domain::alerting::state::{AlertState, RuleState};
use crate::domain::alerting::trends::TrendLabel;
use crate::domain::alerting::version_rule::VERSION_RULE_ID;
use crate::domain::slice::Slice;
use crate::domain::{CounterDelta, Outcome, PredictionRecord, Status, Task, WindowState};
use crate::ports::{AlertQuery, ModelSighting, Rollup};
use crate::testing::run_at;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

type MemoryEvaluator = Evaluator<
    MemoryModelRegistry,
    MemoryRollupStore,
    MemoryModelSettings,
    MemoryAlertStore,
    MemoryNotifier,
    MemorySeriesWriter,
    MemoryMetricData,
>;

/// An hour or day rollup: its granularity and start.
type SpanKey = (ModelId, Granularity, DateTime<Utc>);

/// How one minute of traffic looks.
#[derive(Clone, Copy)]
struct Shape {
    per_minute: usize,
    accuracy: f64,
    latency_ms: f64,
    error_rate: f64,
    /// Scores, when given: the record's place in the minute plus this, at most 1.
    score_offset: Option<f64>,
}

const GOOD: Shape = Shape {
    per_minute: 20,
    accuracy: 0.95,
    latency_ms: 20.0,
    error_rate: 0.0,
    score_offset: None,
};

/// One model with in-memory stores; traffic is rolled into minute, hour and day rollups.
struct World {
    /// The evaluator over the world's stores (the world reads them through it).
    evaluator: MemoryEvaluator,
    /// Hour and day rollups as merged so far, with their revisions.
    spans: Mutex<BTreeMap<SpanKey, (u64, WindowState)>>,
    tenant: TenantId,
    model_id: ModelId,
}

impl World {
    fn new(first_seen: DateTime<Utc>) -> Self {
        let registry = MemoryModelRegistry::default();
        let (tenant, model_id) = (
            TenantId::parse("t1").expect("id"),
            ModelId::parse("m1").expect("id"),
        );
        registry.insert(RegisteredModel {
            tenant: tenant.clone(),
            model_id: model_id.clone(),
            task: Task::BinaryClassification,
            first_seen,
            last_seen: first_seen,
            latest_version: None,
        });
        let evaluator = Evaluator {
            registry,
            window: WindowReader {
                rollups: MemoryRollupStore::default(),
                minute_retention: TimeDelta::days(8),
            },
            settings: MemoryModelSettings::default(),
            alerts: MemoryAlertStore::default(),
            notifier: MemoryNotifier::default(),
            prometheus: Some(MemorySeriesWriter::default()),
            cloudwatch: Some(MemoryMetricData::default()),
            perf: PerfSettings {
                monitoring_interval: std::time::Duration::from_secs(60),
                accuracy_threshold: 0.05,
                latency_p95_max_ms: 100.0,
                error_rate_max: 0.01,
            },
            alerting: AlertSettings::default(),
        };
        Self {
            evaluator,
            spans: Mutex::new(BTreeMap::new()),
            tenant,
            model_id,
        }
    }

    fn rollups(&self) -> &MemoryRollupStore {
        &self.evaluator.window.rollups
    }

    fn prometheus(&self) -> &MemorySeriesWriter {
        self.evaluator.prometheus.as_ref().expect("configured")
    }

    /// `minutes` minutes of `shape` traffic from `from`.
    async fn traffic(&self, from: DateTime<Utc>, minutes: i64, shape: Shape) {
        self.traffic_of(&self.model_id, from, minutes, shape).await;
    }

    /// `minutes` minutes of `shape` traffic from `from` in the series `series` (the
    /// model's, or a slice's).
    async fn traffic_of(&self, series: &ModelId, from: DateTime<Utc>, minutes: i64, shape: Shape) {
        for m in 0..minutes {
            let minute = from + TimeDelta::minutes(m);
            let mut state = WindowState::default();
            for i in 0..shape.per_minute {
                let fraction = (i as f64 + 0.5) / shape.per_minute as f64;
                let failed = fraction < shape.error_rate;
                let correct = fraction < shape.accuracy;
                let record = PredictionRecord {
                    timestamp: minute + TimeDelta::seconds(i as i64 % 60),
                    latency_ms: shape.latency_ms * (0.5 + fraction),
                    status: if failed { Status::Error } else { Status::Ok },
                    error_type: failed.then(|| "timeout".to_owned()),
                    outcome: Outcome::Binary {
                        predicted: (!failed).then_some(i % 2 == 0),
                        actual: (!failed).then_some((i % 2 == 0) == correct),
                        score: shape
                            .score_offset
                            .map(|offset| (fraction + offset).min(1.0)),
                    },
                };
                state.fold_prediction(&record).expect("fold");
            }
            self.put(series, Granularity::Minute, minute, 1, &state)
                .await;
            for granularity in [Granularity::Hour, Granularity::Day] {
                let start = granularity.floor(minute);
                let (rev, merged) = {
                    let mut spans = self.spans.lock().expect("lock");
                    let key = (series.clone(), granularity, start);
                    let entry = spans.entry(key).or_default();
                    entry.0 += 1;
                    entry.1.merge(&state).expect("merge");
                    (entry.0, entry.1.clone())
                };
                self.put(series, granularity, start, rev, &merged).await;
            }
        }
    }

    async fn put(
        &self,
        series: &ModelId,
        granularity: Granularity,
        start: DateTime<Utc>,
        rev: u64,
        state: &WindowState,
    ) {
        let rollup = Rollup {
            tenant: self.tenant.clone(),
            model_id: series.clone(),
            granularity,
            start,
            rev,
            state: state.clone(),
        };
        let stored = if granularity == Granularity::Minute {
            self.rollups()
                .put_minute_rollup(&rollup, None, &CounterDelta::default())
                .await
        } else {
            self.rollups().put_rollup(&rollup).await
        };
        assert!(stored.expect("put"), "rollup {start} stored");
    }

    /// Stores `rules` as the model's custom rule set.
    async fn put_rules(&self, rules: &CustomRules) {
        self.evaluator
            .settings
            .put_setting(
                ModelRef::new(&self.tenant, &self.model_id),
                SettingWrite::Rules(rules),
            )
            .await
            .expect("put");
    }

    async fn run(&self, at: DateTime<Utc>) -> EvaluationReport {
        self.evaluator.run(&run_at(at)).await.expect("run")
    }

    async fn register_accuracy(&self, accuracy: f64) {
        let baseline = RegisteredBaseline {
            test_set: Some(TestSetBaseline {
                evaluated_at: at("2026-11-01T00:00:00Z"),
                metrics: BTreeMap::from([(MetricName::Accuracy, accuracy)]),
            }),
            throughput_forecast_rps: None,
            reference: None,
            updated_at: at("2026-11-01T00:00:00Z"),
        };
        self.evaluator
            .settings
            .put_setting(
                ModelRef::new(&self.tenant, &self.model_id),
                SettingWrite::RegisteredBaseline(&baseline),
            )
            .await
            .expect("put");
    }

    /// The reference window's snapshot kept with the model's settings.
    async fn snapshot(&self) -> ReferenceSnapshot {
        self.evaluator
            .settings
            .model_settings(ModelRef::new(&self.tenant, &self.model_id))
            .await
            .expect("settings")
            .reference
            .expect("the reference's snapshot")
    }

    /// The model's stored rule states.
    async fn rule_states(&self) -> Vec<RuleState> {
        self.evaluator
            .alerts
            .rule_states(ModelRef::new(&self.tenant, &self.model_id))
            .await
            .expect("states")
    }

    fn sent_for(&self, rule: &str) -> Vec<AlertRecord> {
        self.evaluator
            .notifier
            .items()
            .into_iter()
            .filter(|a| a.rule.id == rule)
            .collect()
    }
}

use crate::domain::alerting::state::AlertRecord;

#[tokio::test]
async fn accuracy_degrading_fires_once_and_resolves_once() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    world.register_accuracy(0.9).await;
    world.traffic(t0, 120, GOOD).await;
    let report = world.run(t0 + TimeDelta::minutes(120)).await;
    assert_eq!(report.failures, vec![]);
    assert_eq!(report.notifications, 0, "{report:?}");

    let bad = Shape {
        accuracy: 0.6,
        ..GOOD
    };
    world.traffic(t0 + TimeDelta::minutes(120), 60, bad).await;
    let fired_at = t0 + TimeDelta::minutes(180);
    let report = world.run(fired_at + TimeDelta::seconds(20)).await;
    assert_eq!(report.firing, 1, "{report:?}");
    let sent = world.sent_for("default-accuracy");
    assert_eq!(sent.len(), 1);
    let alert = &sent[0];
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.started_at, fired_at);
    assert_eq!(alert.baseline, Some(0.9));
    assert!((alert.rule.threshold - 0.855).abs() < 1e-12);
    assert_eq!(alert.rule.condition, Condition::Below);
    assert_eq!(
        alert.rule.window,
        "1h".parse::<RuleWindow>().expect("window")
    );
    assert_eq!(alert.rule.severity, Severity::Critical);
    assert!((alert.observed_value.expect("value") - 0.6).abs() < 0.01);
    assert_eq!(alert.sample_count, 1200);

    // Still bad: no second message.
    world.traffic(fired_at, 10, bad).await;
    world.run(fired_at + TimeDelta::minutes(10)).await;
    assert_eq!(world.sent_for("default-accuracy").len(), 1);

    world
        .traffic(fired_at + TimeDelta::minutes(10), 60, GOOD)
        .await;
    let resolved_at = fired_at + TimeDelta::minutes(70);
    let report = world.run(resolved_at).await;
    assert_eq!(report.firing, 0, "{report:?}");
    let sent = world.sent_for("default-accuracy");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].state, AlertState::Resolved);
    assert_eq!(sent[1].alert_id, sent[0].alert_id);
    assert_eq!(sent[1].resolved_at, Some(resolved_at));
    world.run(resolved_at + TimeDelta::minutes(1)).await;
    assert_eq!(world.sent_for("default-accuracy").len(), 2);

    let history = world
        .evaluator
        .alerts
        .alerts(
            ModelRef::new(&world.tenant, &world.model_id),
            &AlertQuery {
                state: None,
                limit: 10,
                after: None,
            },
        )
        .await
        .expect("history");
    assert_eq!(history.alerts.len(), 1);
    assert_eq!(history.alerts[0].state, AlertState::Resolved);
    // Nothing else fired: latency and error rate stayed fine.
    assert_eq!(world.evaluator.notifier.items().len(), 2);
}

/// The value of the series `name` with `labels` among the last run's, if written.
fn gauge(written: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<(i64, f64)> {
    written
        .iter()
        .rev()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .and_then(|s| s.samples.last().copied())
}

#[tokio::test]
async fn each_run_writes_baselines_thresholds_and_firing_and_survives_a_failed_write() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    world.register_accuracy(0.9).await;
    let bad = Shape {
        accuracy: 0.6,
        ..GOOD
    };
    world.traffic(t0, 60, bad).await;
    let end = t0 + TimeDelta::minutes(60);
    let report = world.run(end + TimeDelta::seconds(20)).await;
    assert_eq!(report.firing, 1, "{report:?}");
    let written = world.prometheus().items();
    assert_eq!(
        report.prometheus,
        Some(GaugeWrite {
            series: written.len(),
            outcome: "delivered"
        })
    );
    let ms = end.timestamp_millis();
    let accuracy = [("metric", "accuracy"), ("rule_id", "default-accuracy")];
    assert_eq!(
        gauge(&written, "ml_model_baseline", &[("metric", "accuracy")]),
        Some((ms, 0.9))
    );
    let (_, threshold) = gauge(&written, "ml_model_alert_threshold", &accuracy).expect("threshold");
    assert!((threshold - 0.855).abs() < 1e-12);
    assert_eq!(
        gauge(&written, "ml_model_alert_firing", &accuracy),
        Some((ms, 1.0))
    );
    // The default latency ceiling, in seconds, not firing.
    let ceiling = [("rule_id", "default-latency_p95-max")];
    assert_eq!(
        gauge(&written, "ml_model_alert_threshold", &ceiling),
        Some((ms, 0.1))
    );
    assert_eq!(
        gauge(&written, "ml_model_alert_firing", &ceiling),
        Some((ms, 0.0))
    );

    // Prometheus down: the run still evaluates, reports the failed write, and the
    // next run writes the values of its time.
    world.prometheus().set_failing(true);
    world.traffic(end, 60, GOOD).await;
    let report = world.run(end + TimeDelta::minutes(60)).await;
    assert_eq!(report.notifications, 1, "resolved: {report:?}");
    assert_eq!(report.prometheus.map(|w| w.outcome), Some("failed"));
    world.prometheus().set_failing(false);
    let later = end + TimeDelta::minutes(61);
    world.run(later).await;
    assert_eq!(
        gauge(
            &world.prometheus().items(),
            "ml_model_alert_firing",
            &accuracy
        ),
        Some((later.timestamp_millis(), 0.0))
    );
}

#[tokio::test]
async fn thin_windows_are_insufficient_data_not_alerts() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    world.register_accuracy(0.9).await;
    // 2 labeled predictions a minute, all wrong: 10 in the 5-minute error window
    // and 120 in the hour, but only 20 in the first 10 minutes.
    let thin = Shape {
        per_minute: 2,
        accuracy: 0.0,
        ..GOOD
    };
    world.traffic(t0, 10, thin).await;
    let report = world.run(t0 + TimeDelta::minutes(10)).await;
    assert_eq!(report.notifications, 0, "{report:?}");
    let states = world.rule_states().await;
    let status = |id: &str| {
        states
            .iter()
            .find(|s| s.rule_id == id)
            .map(|s| s.status)
            .expect("state stored")
    };
    assert_eq!(status("default-accuracy"), RuleStatus::InsufficientData);
    assert_eq!(status("default-error_rate"), RuleStatus::InsufficientData);
    assert_eq!(
        report.insufficient_data, 3,
        "accuracy, latency max, error rate"
    );
}

#[tokio::test]
async fn a_failed_publish_keeps_the_state_and_the_next_run_delivers_once() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    let failing = Shape {
        error_rate: 0.25,
        ..GOOD
    };
    world.traffic(t0, 10, failing).await;
    world.evaluator.notifier.set_failing(true);
    let report = world.run(t0 + TimeDelta::minutes(10)).await;
    assert_eq!(report.notifications, 0);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].error.contains("default-error_rate"));
    let states = world.rule_states().await;
    assert!(states.iter().all(|s| s.status != RuleStatus::Firing));

    world.evaluator.notifier.set_failing(false);
    let report = world.run(t0 + TimeDelta::minutes(10)).await;
    assert_eq!(report.notifications, 1, "{report:?}");
    world.run(t0 + TimeDelta::minutes(10)).await;
    let sent = world.sent_for("default-error_rate");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, AlertState::Firing);
    assert_eq!(sent[0].observed_value, Some(0.25));
}

#[tokio::test]
async fn the_latency_baseline_is_captured_after_24_hours_and_then_alerts() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0 + TimeDelta::seconds(30));
    world.traffic(t0, 24 * 60, GOOD).await;
    let report = world.run(t0 + TimeDelta::hours(23)).await;
    assert_eq!(report.baselines_captured, 0);
    let report = world.run(t0 + TimeDelta::hours(24)).await;
    assert_eq!(report.baselines_captured, 1);
    let settings = world
        .evaluator
        .settings
        .model_settings(ModelRef::new(&world.tenant, &world.model_id))
        .await
        .expect("settings");
    let captured = settings.baselines.captured.expect("captured");
    assert_eq!(
        (captured.from, captured.to),
        (t0, t0 + TimeDelta::hours(24))
    );
    assert_eq!(captured.sample_count, 24 * 60 * 20);
    let p95 = captured.latency_p95_ms.expect("p95");
    // Latencies are spread evenly over [10, 30) ms: p95 ≈ 29 ms (1 % sketch).
    assert!((p95 - 29.0).abs() < 0.5, "{p95}");
    assert_eq!(captured.error_rate, Some(0.0));

    // Slower by 1.6×: above 1.5 × baseline, below the 100 ms maximum.
    let slow = Shape {
        latency_ms: 32.0,
        ..GOOD
    };
    world.traffic(t0 + TimeDelta::hours(24), 15, slow).await;
    world
        .run(t0 + TimeDelta::hours(24) + TimeDelta::minutes(15))
        .await;
    let sent = world.sent_for("default-latency_p95-baseline");
    assert_eq!(sent.len(), 1, "{:?}", world.evaluator.notifier.items());
    assert_eq!(sent[0].baseline, Some(p95));
    assert!((sent[0].rule.threshold - 1.5 * p95).abs() < 1e-9);
    assert!(world.sent_for("default-latency_p95-max").is_empty());
    // A second capture never replaces the first.
    let report = world.run(t0 + TimeDelta::hours(30)).await;
    assert_eq!(report.baselines_captured, 0);
}

#[tokio::test]
async fn a_firing_rule_that_is_removed_resolves() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    let rules = CustomRules {
        alert_rules: vec![AlertRule {
            id: "p95-tight".into(),
            metric: MetricName::LatencyP95,
            condition: Condition::Above,
            threshold: 10.0,
            window: "5m".parse().expect("window"),
            severity: Severity::Info,
            min_samples: 1,
            basis: None,
            label_delay: None,
            slice: None,
        }],
        use_default_rules: false,
        updated_at: t0,
    };
    world.put_rules(&rules).await;
    world.traffic(t0, 5, GOOD).await;
    world.run(t0 + TimeDelta::minutes(5)).await;
    assert_eq!(world.sent_for("p95-tight").len(), 1);
    assert_eq!(
        world.evaluator.notifier.items().len(),
        1,
        "defaults are off"
    );

    let none = CustomRules {
        alert_rules: Vec::new(),
        ..rules
    };
    world.put_rules(&none).await;
    world.run(t0 + TimeDelta::minutes(6)).await;
    let sent = world.sent_for("p95-tight");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].state, AlertState::Resolved);
    assert!(world.rule_states().await.is_empty());
}

#[tokio::test]
async fn a_rule_on_a_version_judges_that_versions_traffic_only() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    let canary = world.model_id.series(&Slice::version("v2"));
    let rules = parse_rule_set(
        &serde_json::json!({"alert_rules": [
            {"metric": "accuracy", "condition": "below", "threshold": 0.9, "window": "5m",
             "severity": "critical", "min_samples": 10, "slice": "version:v2"},
            {"metric": "accuracy", "condition": "below", "threshold": 0.9, "window": "5m",
             "severity": "critical", "min_samples": 10}],
         "use_default_rules": false}),
        "m1",
        &AlertSettings::default(),
        t0,
    )
    .expect("valid rules");
    world.put_rules(&rules).await;
    // The model's traffic is good overall; its canary's tenth is not.
    world.traffic(t0, 5, GOOD).await;
    let bad = Shape {
        per_minute: 4,
        accuracy: 0.5,
        ..GOOD
    };
    world.traffic_of(&canary, t0, 5, bad).await;
    world.run(t0 + TimeDelta::minutes(5)).await;
    let sent = world.sent_for("accuracy-below-0.9-5m-version:v2");
    assert_eq!(sent.len(), 1, "{:?}", world.evaluator.notifier.items());
    assert_eq!(sent[0].rule.slice, Some(Slice::version("v2")));
    assert_eq!(sent[0].observed_value, Some(0.5));
    assert_eq!(sent[0].sample_count, 20);
    assert!(
        world.sent_for("accuracy-below-0.9-5m").is_empty(),
        "the model is fine"
    );
}

#[tokio::test]
async fn trends_are_refreshed_hourly_and_label_a_decline() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    world.register_accuracy(0.9).await;
    // Seven days, accuracy falling 1 point a day from 0.97.
    for hour in 0..(7 * 24) {
        let shape = Shape {
            per_minute: 20,
            accuracy: 0.97 - 0.01 * f64::from(hour) / 24.0,
            ..GOOD
        };
        world
            .traffic(t0 + TimeDelta::hours(i64::from(hour)), 1, shape)
            .await;
    }
    let end = t0 + TimeDelta::days(7);
    let report = world.run(end).await;
    assert_eq!(report.trends_updated, 1);
    let trends = world
        .evaluator
        .settings
        .model_settings(ModelRef::new(&world.tenant, &world.model_id))
        .await
        .expect("settings")
        .trends
        .expect("trends");
    let accuracy = &trends.trends[&MetricName::Accuracy];
    assert_eq!(accuracy.label, TrendLabel::Declining);
    let slope = accuracy.slope.expect("slope");
    assert!((slope + 0.01).abs() < 0.002, "{slope}");
    assert_eq!(accuracy.threshold, Some(0.9 * 0.95));
    let breach = accuracy.projected_baseline_breach.expect("breach");
    assert!(
        breach > end && breach < end + TimeDelta::days(10),
        "{breach}"
    );
    assert_eq!(
        trends.trends[&MetricName::LatencyP95].label,
        TrendLabel::Stable
    );
    // Within the same hour nothing is recomputed.
    let report = world.run(end + TimeDelta::minutes(30)).await;
    assert_eq!(report.trends_updated, 0);
}

#[tokio::test]
async fn a_rule_with_a_label_delay_judges_the_window_that_ended_that_long_ago() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    let rule = |id: &str, label_delay: Option<&str>| AlertRule {
        id: id.into(),
        metric: MetricName::LatencyP95,
        condition: Condition::Above,
        threshold: 30.0,
        window: "5m".parse().expect("window"),
        severity: Severity::Warning,
        min_samples: 1,
        basis: None,
        label_delay: label_delay.map(|d| d.parse().expect("delay")),
        slice: None,
    };
    let rules = CustomRules {
        alert_rules: vec![rule("now", None), rule("delayed", Some("5m"))],
        use_default_rules: false,
        updated_at: t0,
    };
    world.put_rules(&rules).await;
    let slow = Shape {
        latency_ms: 50.0,
        ..GOOD
    };
    world.traffic(t0, 5, GOOD).await;
    world.traffic(t0 + TimeDelta::minutes(5), 5, slow).await;
    // At +10 min the last five minutes are slow; the delayed rule judges the five
    // before them.
    world.run(t0 + TimeDelta::minutes(10)).await;
    assert_eq!(world.sent_for("now").len(), 1);
    assert!(world.sent_for("delayed").is_empty());
    world.run(t0 + TimeDelta::minutes(15)).await;
    let sent = world.sent_for("delayed");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].window_start, t0 + TimeDelta::minutes(5));
}

#[tokio::test]
async fn the_days_label_coverage_is_written_from_the_first_run_on() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    world.traffic(t0, 30, GOOD).await;
    world.run(t0 + TimeDelta::minutes(30)).await;
    let day: Vec<(String, f64)> = world
        .prometheus()
        .items()
        .into_iter()
        .filter(|s| s.labels.iter().any(|(k, v)| k == "window" && v == "24h"))
        .flat_map(|s| s.samples.into_iter().map(move |(_, v)| (s.name.clone(), v)))
        .collect();
    // Every prediction of the traffic is labeled; no label came late.
    assert_eq!(day, [("ml_model_labeled_ratio".to_owned(), 1.0)]);
    let stored = world
        .evaluator
        .settings
        .model_settings(ModelRef::new(&world.tenant, &world.model_id))
        .await
        .expect("settings");
    let labels = stored
        .trends
        .and_then(|t| t.labels)
        .expect("stored with the trends");
    assert_eq!(labels.coverage, Some(1.0));
}

#[tokio::test]
async fn prediction_drift_against_the_captured_day_fires_once_and_resolves_once() {
    let t0 = at("2026-11-20T00:00:00Z");
    let world = World::new(t0);
    let scored = Shape {
        score_offset: Some(0.0),
        ..GOOD
    };
    world.traffic(t0, 24 * 60, scored).await;
    let day = t0 + TimeDelta::hours(24);
    world.run(day).await;
    let taken = world.snapshot().await;
    assert_eq!((taken.from, taken.to, taken.taken_at), (t0, day, day));
    assert_eq!(taken.state().expect("decodes").predictions(), 24 * 60 * 20);

    // Every score 0.3 higher: far from the reference's deciles.
    let shifted = Shape {
        score_offset: Some(0.3),
        ..GOOD
    };
    world.traffic(day, 60, shifted).await;
    let fired_at = day + TimeDelta::minutes(60);
    let report = world.run(fired_at).await;
    assert_eq!(report.failures, vec![]);
    let sent = world.sent_for("default-prediction_psi");
    assert_eq!(sent.len(), 1, "{:?}", world.evaluator.notifier.items());
    assert_eq!(
        (sent[0].state, sent[0].rule.severity, sent[0].sample_count),
        (AlertState::Firing, Severity::Warning, 1200)
    );
    let psi = sent[0].observed_value.expect("psi");
    assert!(psi > 0.2, "{psi}");
    let written = world.prometheus().items();
    let hour = [("window", "1h")];
    let drift = gauge(
        &written,
        "ml_model_prediction_drift",
        &[("statistic", "psi"), hour[0]],
    );
    assert_eq!(drift.map(|(_, v)| v), Some(psi));
    assert!(
        gauge(
            &written,
            "ml_model_prediction_drift",
            &[("statistic", "js"), hour[0]]
        )
        .is_some()
    );
    assert!(gauge(&written, "ml_model_estimated_accuracy", &hour).is_some());
    // CloudWatch gets the same, under the metrics' own names.
    let put = world
        .evaluator
        .cloudwatch
        .as_ref()
        .expect("configured")
        .items();
    let psi_datum = put
        .iter()
        .rev()
        .find(|d| d.name == "prediction_psi")
        .expect("PSI put");
    assert_eq!((psi_datum.value, psi_datum.timestamp), (psi, fired_at));
    assert_eq!(
        psi_datum.dimensions,
        [
            ("model_id".to_owned(), "m1".to_owned()),
            ("tenant_id".to_owned(), "t1".to_owned())
        ]
    );
    assert!(put.iter().any(|d| d.name == "estimated_accuracy"));
    // Refreshed hourly while the reference's labels may still come.
    assert_eq!(world.snapshot().await.taken_at, fired_at);

    // Still shifted ten minutes on: no second message, no new snapshot.
    world.traffic(fired_at, 10, shifted).await;
    world.run(fired_at + TimeDelta::minutes(10)).await;
    assert_eq!(world.sent_for("default-prediction_psi").len(), 1);
    assert_eq!(world.snapshot().await.taken_at, fired_at);

    // Back to the reference's scores: resolved, once.
    world
        .traffic(fired_at + TimeDelta::minutes(10), 60, scored)
        .await;
    let resolved_at = fired_at + TimeDelta::minutes(70);
    world.run(resolved_at).await;
    world.run(resolved_at + TimeDelta::minutes(1)).await;
    let sent = world.sent_for("default-prediction_psi");
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[1].state, sent[1].alert_id.as_str()),
        (AlertState::Resolved, sent[0].alert_id.as_str())
    );
    let psi = sent[1].observed_value.expect("psi");
    assert!(psi < 0.01, "{psi}");
    // Nothing else fired.
    assert_eq!(world.evaluator.notifier.items().len(), 2);
}

#[tokio::test]
async fn the_version_rule_fires_on_a_worse_newest_version_and_a_fixed_release_resolves_it() {
    let t0 = at("2026-11-20T00:00:00Z");
    let mut world = World::new(t0);
    world.evaluator.alerting.version_rule_min_samples = Some(100);
    let release = |version: &str, first: DateTime<Utc>| ModelSighting {
        tenant: world.tenant.clone(),
        model_id: world.model_id.clone(),
        task: Task::BinaryClassification,
        first,
        last: first,
        version: Some(version.to_owned()),
    };
    let registry = &world.evaluator.registry;
    registry
        .record_version(&release("v1", t0), 20)
        .await
        .expect("v1");
    // One version alone: nothing to compare with.
    world.traffic(t0, 10, GOOD).await;
    let series = |v: &str| world.model_id.series(&Slice::version(v));
    world.traffic_of(&series("v1"), t0, 10, GOOD).await;
    world.run(t0 + TimeDelta::minutes(10)).await;
    assert!(world.sent_for(VERSION_RULE_ID).is_empty());

    let t1 = t0 + TimeDelta::minutes(10);
    registry
        .record_version(&release("v2", t1), 20)
        .await
        .expect("v2");
    let bad = Shape {
        accuracy: 0.6,
        ..GOOD
    };
    world.traffic_of(&series("v2"), t1, 10, bad).await;
    world.run(t1 + TimeDelta::minutes(10)).await;
    let sent = world.sent_for(VERSION_RULE_ID);
    assert_eq!(sent.len(), 1, "{:?}", world.evaluator.notifier.items());
    assert_eq!(sent[0].state, AlertState::Firing);
    assert_eq!(sent[0].rule.slice, Some(Slice::version("v2")));
    assert_eq!(sent[0].rule.metric, MetricName::Accuracy);
    assert_eq!(sent[0].observed_value, Some(0.6));
    assert_eq!(sent[0].sample_count, 200);

    // v3 fixes it: compared with v2, it is no worse, and the alert resolves.
    let t2 = t1 + TimeDelta::minutes(10);
    registry
        .record_version(&release("v3", t2), 20)
        .await
        .expect("v3");
    world.traffic_of(&series("v3"), t2, 10, GOOD).await;
    world.run(t2 + TimeDelta::minutes(10)).await;
    let sent = world.sent_for(VERSION_RULE_ID);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].state, AlertState::Resolved);

    // Switched off, the rule leaves nothing behind.
    world.evaluator.alerting.version_rule_min_samples = None;
    world.run(t2 + TimeDelta::minutes(11)).await;
    let states = world.rule_states().await;
    assert!(
        states.iter().all(|s| s.rule_id != VERSION_RULE_ID),
        "{states:?}"
    );
}

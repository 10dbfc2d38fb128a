//! One evaluation run over 500 active binary classifiers, each with 8 days of hour and
//! day rollups and the last hour's minute rollups, a registered test-set baseline and
//! forecast, and two custom rules (24-hour and 7-day windows): the heaviest run a model
//! sees — its 24-hour baseline is captured and becomes its reference window (the
//! snapshot is read and stored), its seven-day trends are computed, and its eight default
//! (drift and estimated accuracy among them) and two custom rules are evaluated. In-memory stores behind the same
//! traits, a single-threaded runtime (wall time is one core's CPU time), and the peak
//! heap. This sizes `evaluate`'s memory and timeout in template.yaml; goal: well inside
//! the 60 s interval.
//!
//! `MALLOC_TRIM_THRESHOLD_=67108864 cargo bench -p modelwatch --bench evaluate` (the
//! allocator setting the functions are deployed with, template.yaml).

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch::adapters::memory::{
    MemoryAlertStore, MemoryMetricData, MemoryModelRegistry, MemoryModelSettings, MemoryNotifier,
    MemoryRollupStore, MemorySeriesWriter,
};
use modelwatch::alerting::service::Evaluator;
use modelwatch::domain::alerting::baseline::{RegisteredBaseline, TestSetBaseline};
use modelwatch::domain::alerting::rules::parse_rule_set;
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::{
    CounterDelta, Granularity, MetricName, Outcome, PredictionRecord, Status, Task, WindowState,
};
use modelwatch::ports::{
    ModelRegistry, ModelSettingsStore, ModelSighting, Rollup, RollupStore, SettingWrite,
};
use modelwatch::summary::WindowReader;
use modelwatch::testing::run_at;

mod support;

use support::{LIVE, PEAK};

const MODELS: usize = 500;
const DAYS: i64 = 8;

/// `count` predictions over `[start, start + span)`; accuracy and latency drift with
/// `drift` so that the trends have a slope to fit.
fn state(start: DateTime<Utc>, span: TimeDelta, count: i32, drift: f64) -> WindowState {
    let mut state = WindowState::new();
    for i in 0..count {
        let actual = i % 3 == 0;
        let wrong = f64::from(i % 100) < 8.0 + drift;
        let failed = i % 250 == 0;
        let record = PredictionRecord {
            timestamp: start + span * i / count,
            latency_ms: 5.0 + f64::from(i % 40) + drift,
            status: if failed { Status::Error } else { Status::Ok },
            error_type: failed.then(|| "timeout".to_owned()),
            outcome: Outcome::Binary {
                predicted: Some(actual != wrong),
                actual: Some(actual),
                score: Some(if actual != wrong { 0.8 } else { 0.3 }),
            },
        };
        state.fold_prediction(&record).expect("valid record");
    }
    state
}

/// Every model's rollups: the same states for each model (building them is not what is
/// measured), as (granularity, start, state).
fn rollup_states(now: DateTime<Utc>) -> Vec<(Granularity, DateTime<Utc>, WindowState)> {
    let current_hour = Granularity::Hour.floor(now);
    let first = current_hour - TimeDelta::days(DAYS);
    let mut out = Vec::new();
    let mut day = WindowState::new();
    let mut hour = first;
    while hour < current_hour {
        let drift = (hour - first).num_hours() as f64 / 48.0;
        let hour_state = state(hour, TimeDelta::hours(1), 600, drift);
        day.merge(&hour_state).expect("merge");
        out.push((Granularity::Hour, hour, hour_state));
        let next = hour + TimeDelta::hours(1);
        if Granularity::Day.floor(next) != Granularity::Day.floor(hour) || next == current_hour {
            out.push((
                Granularity::Day,
                Granularity::Day.floor(hour),
                std::mem::take(&mut day),
            ));
        }
        hour = next;
    }
    let mut minute = current_hour;
    while minute < Granularity::Minute.floor(now) {
        let minute_state = state(minute, TimeDelta::minutes(1), 10, 4.0);
        out.push((Granularity::Minute, minute, minute_state));
        minute += TimeDelta::minutes(1);
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let tenant = TenantId::parse("bench").expect("tenant");
    let (registry, rollups, settings) = (
        MemoryModelRegistry::default(),
        MemoryRollupStore::default(),
        MemoryModelSettings::default(),
    );
    let states = rollup_states(now);
    let alert_settings = AlertSettings::default();
    let rules = serde_json::json!({"model_id": "m", "alert_rules": [
        {"metric": "accuracy", "condition": "below", "threshold": 0.85, "window": "24h", "severity": "warning"},
        {"metric": "latency_p99", "condition": "above", "threshold": 200, "window": "7d", "severity": "critical"}
    ]});
    runtime.block_on(async {
        for m in 0..MODELS {
            let model_id = ModelId::parse(&format!("m-{m}")).expect("model");
            registry
                .record_sighting(
                    &ModelSighting {
                        tenant: tenant.clone(),
                        model_id: model_id.clone(),
                        task: Task::BinaryClassification,
                        first: now - TimeDelta::days(DAYS),
                        last: now,
                        version: None,
                    },
                    u64::MAX,
                )
                .await
                .expect("registered");
            for (granularity, start, state) in &states {
                let rollup = Rollup {
                    tenant: tenant.clone(),
                    model_id: model_id.clone(),
                    granularity: *granularity,
                    start: *start,
                    rev: 1,
                    state: state.clone(),
                };
                if *granularity == Granularity::Minute {
                    rollups
                        .put_minute_rollup(&rollup, None, &CounterDelta::default())
                        .await
                        .expect("minute rollup");
                } else {
                    rollups.put_rollup(&rollup).await.expect("rollup");
                }
            }
            let test_set = TestSetBaseline {
                evaluated_at: now - TimeDelta::days(DAYS + 1),
                metrics: [(MetricName::Accuracy, 0.93), (MetricName::F1Score, 0.9)].into(),
            };
            let baseline = RegisteredBaseline {
                test_set: Some(test_set),
                throughput_forecast_rps: Some(0.2),
                reference: None,
                updated_at: now,
            };
            settings
                .put_setting(
                    ModelRef::new(&tenant, &model_id),
                    SettingWrite::RegisteredBaseline(&baseline),
                )
                .await
                .expect("baseline");
            let custom = parse_rule_set(&rules, "m", &alert_settings, now).expect("rules");
            settings
                .put_setting(
                    ModelRef::new(&tenant, &model_id),
                    SettingWrite::Rules(&custom),
                )
                .await
                .expect("rules");
        }
    });
    let (alerts, notifier, prometheus, perf) = (
        MemoryAlertStore::default(),
        MemoryNotifier::default(),
        MemorySeriesWriter::default(),
        PerfSettings::default(),
    );
    let evaluator = Evaluator {
        registry,
        window: WindowReader {
            rollups,
            minute_retention: TimeDelta::days(8),
        },
        settings,
        alerts,
        notifier,
        prometheus: Some(prometheus),
        cloudwatch: Some(MemoryMetricData::default()),
        perf,
        alerting: alert_settings,
    };
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let report = runtime.block_on(evaluator.run(&run_at(now))).expect("run");
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        (
            report.models,
            report.baselines_captured,
            report.trends_updated
        ),
        (MODELS, MODELS, MODELS)
    );
    println!(
        "evaluate run over {} models ({} rules, {} firing, {} notifications, {} baselines captured, {} trends): {:.1} ms on one core, peak heap {:.1} MB (goal: well inside 60,000 ms)",
        report.models,
        report.rules,
        report.firing,
        report.notifications,
        report.baselines_captured,
        report.trends_updated,
        elapsed.as_secs_f64() * 1000.0,
        peak as f64 / 1e6
    );
}

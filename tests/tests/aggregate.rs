//! End to end: batches through the real `ingest`, then the real `aggregate` on its
//! scheduled event; the rollups and counters it wrote, read back from DynamoDB, and
//! its exports read back from Prometheus and CloudWatch.
//!
//! CloudWatch is read back in the lanes whose emulator speaks the SDK's protocol
//! (rpc-v2-cbor: the `localstack` lane); in the `all-moto` lane the export's failure
//! is checked instead, and the test says so (see [`Lane`]).

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch::adapters::dynamodb::DynamoRollupStore;
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::{Granularity, MetricSet, TimeSpan, WindowState};
use modelwatch::ingest::{BatchLimits, parse_batch};
use modelwatch::ports::{Rollup, RollupStore};
use modelwatch_e2e::runtime::LocalFunction;
use modelwatch_e2e::{Lane, Stack, event, ingest_event, unique_tenant};
use serde_json::{Value, json};

/// A multiclass batch: one prediction per given time, every fourth a timeout.
fn batch(batch_id: &str, times: &[DateTime<Utc>]) -> Vec<u8> {
    let predictions: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 4 == 3 {
                json!({"timestamp": t.to_rfc3339(), "latency_ms": 250.0, "status": "error", "error_type": "timeout"})
            } else {
                json!({"timestamp": t.to_rfc3339(), "latency_ms": 5.0 + i as f64, "status": "ok",
                       "predicted": if i % 2 == 0 { "cat" } else { "dog" }, "actual": "cat"})
            }
        })
        .collect();
    json!({"model_id": "m-agg", "batch_id": batch_id, "task": "multiclass_classification",
           "predictions": predictions})
    .to_string()
    .into_bytes()
}

/// The outcome an aggregate run's report gives for `exporter`'s export.
fn export_outcome(report: &Value, exporter: &str) -> Value {
    report["exports"]
        .as_array()
        .expect("exports")
        .iter()
        .find(|e| e["exporter"] == exporter)
        .map(|e| e["outcome"].clone())
        .unwrap_or_else(|| panic!("no {exporter} export in {report}"))
}

async fn run_aggregate(stack: &Stack, at: DateTime<Utc>) -> Value {
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = at.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");
    report
}

async fn all_rollups(
    store: &DynamoRollupStore,
    tenant: &TenantId,
    model: &ModelId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Rollup> {
    let mut all = Vec::new();
    for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let (f, t) = (g.floor(from), g.floor(to) + g.length());
        all.extend(
            store
                .rollups(ModelRef::new(tenant, model), g, TimeSpan::new(f, t))
                .await
                .expect("read rollups"),
        );
    }
    all
}

fn predictions(rollups: &[Rollup], granularity: Granularity) -> u64 {
    let states = rollups.iter().filter(|r| r.granularity == granularity);
    WindowState::merged(states.map(|r| r.state.clone()))
        .expect("merge")
        .predictions()
}

/// The tests of this file invoke `aggregate`, whose runs export every lagging model:
/// one at a time, so each sees the effects it stages.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn batches_roll_up_idempotently_and_late_data_is_re_rolled() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant_name = unique_tenant("aggregate");
    let (tenant, model) = (
        TenantId::parse(&tenant_name).expect("tenant"),
        ModelId::parse("m-agg").expect("model"),
    );
    let now = Utc::now();
    let base = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(5);
    let times: Vec<DateTime<Utc>> = (0..8).map(|i| base + TimeDelta::seconds(i * 20)).collect();
    let answer = stack
        .invoke("ingest", &ingest_event(&tenant_name, &batch("b-1", &times)))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");

    run_aggregate(stack, now).await;
    let store = stack.rollup_store().await;
    let first = all_rollups(&store, &tenant, &model, base, now).await;
    assert_eq!(predictions(&first, Granularity::Minute), 8);
    assert_eq!(predictions(&first, Granularity::Hour), 8);
    assert_eq!(predictions(&first, Granularity::Day), 8);
    assert_eq!(
        first
            .iter()
            .filter(|r| r.granularity == Granularity::Minute)
            .count(),
        3
    );
    let totals = store
        .counter_totals(ModelRef::new(&tenant, &model))
        .await
        .expect("totals");
    assert_eq!((totals.ok, totals.errors), (6, 2));
    assert_eq!(totals.errors_by_type.get("timeout"), Some(&2));

    run_aggregate(stack, now).await;
    assert_eq!(
        all_rollups(&store, &tenant, &model, base, now).await,
        first,
        "a second run changes nothing"
    );
    assert_eq!(
        store
            .counter_totals(ModelRef::new(&tenant, &model))
            .await
            .expect("totals"),
        totals
    );

    let late = stack
        .invoke(
            "ingest",
            &ingest_event(
                &tenant_name,
                &batch("b-late", &[base + TimeDelta::seconds(5)]),
            ),
        )
        .await;
    assert_eq!(late["statusCode"], 202, "{late}");
    run_aggregate(stack, now).await;
    let after = all_rollups(&store, &tenant, &model, base, now).await;
    assert_eq!(predictions(&after, Granularity::Minute), 9);
    assert_eq!(predictions(&after, Granularity::Hour), 9);
    assert_eq!(predictions(&after, Granularity::Day), 9);
    let later = store
        .counter_totals(ModelRef::new(&tenant, &model))
        .await
        .expect("totals");
    assert_eq!(
        (later.ok, later.errors),
        (7, 2),
        "counters grew by the late batch only"
    );
}

/// A binary-classifier batch, all in one minute: scores, labels, a timeout.
fn binary_batch(batch_id: &str, minute: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<Value> = (0..20)
        .map(|i| {
            let t = (minute + TimeDelta::seconds(i * 2)).to_rfc3339();
            if i == 19 {
                json!({"timestamp": t, "latency_ms": 900.0, "status": "error", "error_type": "timeout"})
            } else {
                json!({"timestamp": t, "latency_ms": 4.0 + (i * i) as f64, "status": "ok",
                       "predicted": i % 3 != 0, "actual": i % 2 == 0, "score": (i as f64) / 20.0})
            }
        })
        .collect();
    let resources = json!([
        {"timestamp": minute.to_rfc3339(), "cpu_utilization": 0.4, "memory_utilization": 0.5,
         "gpu_utilization": 0.1, "queue_depth": 7, "cache_hits": 90, "cache_misses": 10},
        {"timestamp": (minute + TimeDelta::seconds(30)).to_rfc3339(), "cpu_utilization": 0.6,
         "memory_utilization": 0.7, "gpu_utilization": 0.3, "queue_depth": 3, "cache_hits": 45, "cache_misses": 5}
    ]);
    json!({"model_id": "m-export", "batch_id": batch_id, "task": "binary_classification",
           "predictions": predictions, "resources": resources})
    .to_string()
    .into_bytes()
}

/// A regression batch in `minute`, one actual of zero (excluded from MAPE).
fn regression_batch(minute: DateTime<Utc>) -> Vec<u8> {
    let predictions: Vec<Value> = (0..12)
        .map(|i| {
            json!({"timestamp": (minute + TimeDelta::seconds(i * 4)).to_rfc3339(), "latency_ms": 3.0,
                   "status": "ok", "predicted": 10.0 + i as f64 * 0.5, "actual": if i == 0 { 0.0 } else { 10.0 + i as f64 }})
        })
        .collect();
    json!({"model_id": "m-regress", "batch_id": "b-regress", "task": "regression", "predictions": predictions})
        .to_string()
        .into_bytes()
}

/// The engine's metrics for `body`'s records in `minute`.
fn engine_metrics(
    body: &[u8],
    minute: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (MetricSet, WindowState) {
    let batch = parse_batch(body, now, &BatchLimits::default()).expect("valid");
    let mut state = WindowState::default();
    for p in &batch.predictions {
        state.fold_prediction(&p.record).expect("fold");
    }
    for r in &batch.resources {
        state.fold_resource(r).expect("fold");
    }
    let span = TimeSpan {
        start: minute,
        end: minute + TimeDelta::minutes(1),
    };
    (MetricSet::compute(&state, span, None), state)
}

/// Every Prometheus series of `tenant`, as (labels without tenant_id, latest value).
async fn prometheus_series(stack: &Stack, tenant: &str, at: DateTime<Utc>) -> Vec<(Value, f64)> {
    let query = format!("last_over_time({{tenant_id=\"{tenant}\"}}[2h])");
    let mut series = stack.prometheus_query(&query, at.timestamp() + 1).await;
    for (labels, _) in &mut series {
        labels.as_object_mut().expect("labels").remove("tenant_id");
    }
    series.sort_by_key(|(labels, _)| labels.to_string());
    series
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn closed_minutes_reach_prometheus_and_cloudwatch_with_the_engines_values() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("export");
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(3);
    let body = binary_batch("b-export", minute);
    let answer = stack.invoke("ingest", &ingest_event(&tenant, &body)).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let regression = regression_batch(minute);
    let answer = stack
        .invoke("ingest", &ingest_event(&tenant, &regression))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");

    // Prometheus unreachable for this run: rollups are kept and the export waits.
    let mut offline = LocalFunction::start(
        stack,
        "aggregate",
        &[(
            "PROMETHEUS_REMOTE_WRITE_URL",
            Some("http://127.0.0.1:9/api/v1/write"),
        )],
    )
    .await;
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = offline.invoke(&trigger).await.expect("the run succeeds");
    assert_eq!(
        export_outcome(&report, "prometheus"),
        "retry_next_run",
        "{report}"
    );
    assert!(prometheus_series(stack, &tenant, now).await.is_empty());
    // CloudWatch took this run's minutes where the lane's emulator speaks the SDK's
    // protocol (rpc-v2-cbor). moto does not: its answer (an HTTP 404) is a refusal,
    // which the run reports and logs, and the read-back below runs in the
    // localstack lane only.
    let lane = stack.lane();
    let cloudwatch_outcome = if lane.serves_cloudwatch() {
        "delivered"
    } else {
        "rejected"
    };
    assert_eq!(
        export_outcome(&report, "cloudwatch"),
        cloudwatch_outcome,
        "lane {}: {report}",
        lane.name()
    );

    // The engine's values for the same records.
    let (expected, state) = engine_metrics(&body, minute, now);
    let (expected_regression, _) = engine_metrics(&regression, minute, now);

    // The next run delivers.
    let next_run = now + TimeDelta::seconds(60);
    let report = run_aggregate(stack, next_run).await;
    assert_eq!(
        export_outcome(&report, "prometheus"),
        "delivered",
        "{report}"
    );
    let series = prometheus_series(stack, &tenant, next_run).await;
    let value = |labels: Value| {
        series
            .iter()
            .find(|(l, _)| *l == labels)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no series {labels} among {series:?}"))
    };
    let ids = |name: &str| json!({"__name__": name, "model_id": "m-export"});
    let with = |name: &str, key: &str, v: &str| {
        let mut l = ids(name);
        l[key] = v.into();
        l
    };
    assert!(close(
        value(ids("ml_model_accuracy")),
        expected.accuracy.expect("accuracy")
    ));
    assert!(close(
        value(ids("ml_model_f1_score")),
        expected.f1_score.expect("f1")
    ));
    assert!(close(
        value(ids("ml_model_auc_roc")),
        expected.auc_roc.expect("auc")
    ));
    assert!(close(
        value(ids("ml_model_error_rate")),
        expected.error_rate.expect("error rate")
    ));
    assert!(close(
        value(ids("ml_model_throughput_rps")),
        expected.throughput_rps.expect("throughput")
    ));
    for (name, metric) in [
        ("ml_model_queue_depth", expected.queue_depth),
        ("ml_model_cpu_utilization", expected.cpu_utilization),
        ("ml_model_memory_utilization", expected.memory_utilization),
        ("ml_model_gpu_utilization", expected.gpu_utilization),
        (
            "ml_model_model_cache_hit_rate",
            expected.model_cache_hit_rate,
        ),
    ] {
        assert!(close(value(ids(name)), metric.expect(name)), "{name}");
    }
    let regress = |name: &str| json!({"__name__": name, "model_id": "m-regress"});
    for (name, metric) in [
        ("ml_model_rmse", expected_regression.rmse),
        ("ml_model_mae", expected_regression.mae),
        ("ml_model_mape", expected_regression.mape),
    ] {
        assert!(close(value(regress(name)), metric.expect(name)), "{name}");
    }
    for (q, ms) in [
        ("0.5", expected.latency_p50_ms),
        ("0.95", expected.latency_p95_ms),
        ("0.99", expected.latency_p99_ms),
    ] {
        assert!(
            close(
                value(with("ml_model_latency_seconds", "quantile", q)),
                ms.expect("quantile") / 1000.0
            ),
            "quantile {q}"
        );
    }
    assert!(close(value(ids("ml_model_latency_seconds_count")), 20.0));
    assert!(close(
        value(ids("ml_model_latency_seconds_sum")),
        state.latency().sum_ms() / 1000.0
    ));
    assert_eq!(
        value(with("ml_model_predictions_total", "status", "ok")),
        19.0
    );
    assert_eq!(
        value(with("ml_model_predictions_total", "status", "error")),
        1.0
    );
    assert_eq!(
        value(with("ml_model_errors_total", "error_type", "timeout")),
        1.0
    );

    // CloudWatch holds the same minute (read back where the lane serves it).
    if !lane.serves_cloudwatch() {
        assert_eq!(lane, Lane::AllMoto);
        eprintln!(
            "lane {}: CloudWatch read-back not run (moto does not speak rpc-v2-cbor; the \
             export was refused, as checked above); the localstack lane runs it",
            lane.name()
        );
        return;
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&stack.sdk_config_for("CLOUDWATCH").await);
    let metric = aws_sdk_cloudwatch::types::Metric::builder()
        .namespace(stack.var("CLOUDWATCH_NAMESPACE"))
        .metric_name("accuracy")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("model_id")
                .value("m-export")
                .build(),
        )
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("tenant_id")
                .value(&tenant)
                .build(),
        )
        .build();
    let data = cloudwatch
        .get_metric_data()
        .metric_data_queries(
            aws_sdk_cloudwatch::types::MetricDataQuery::builder()
                .id("accuracy")
                .metric_stat(
                    aws_sdk_cloudwatch::types::MetricStat::builder()
                        .metric(metric)
                        .period(60)
                        .stat("Average")
                        .build(),
                )
                .build(),
        )
        .start_time(std::time::SystemTime::from(minute - TimeDelta::minutes(5)).into())
        .end_time(std::time::SystemTime::from(now + TimeDelta::minutes(5)).into())
        .send()
        .await
        .expect("GetMetricData");
    let values = data.metric_data_results()[0].values();
    assert_eq!(values.len(), 1, "{data:?}");
    assert!(close(values[0], expected.accuracy.expect("accuracy")));
}

#[tokio::test]
async fn cloudwatch_metrics_off_runs_no_cloudwatch_export() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("cw-off");
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(2);
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(&tenant, &binary_batch("b-cw-off", minute)),
        )
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let mut without =
        LocalFunction::start(stack, "aggregate", &[("CLOUDWATCH_METRICS", Some("off"))]).await;
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = without.invoke(&trigger).await.expect("the run succeeds");
    let exporters: Vec<&Value> = report["exports"]
        .as_array()
        .expect("exports")
        .iter()
        .map(|e| &e["exporter"])
        .collect();
    assert_eq!(exporters, [&Value::from("prometheus")], "{report}");
    assert!(
        report["rollups"]["rolled"]["minutes"].as_u64() >= Some(1),
        "{report}"
    );
}

#[tokio::test]
async fn a_run_given_one_shard_rolls_up_and_evaluates_only_that_shards_models() {
    use modelwatch::domain::shard::shard_of;
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tenant = unique_tenant("shard");
    let tenant_id = TenantId::parse(&tenant).expect("tenant");
    // Two models of the tenant in different shards.
    let mut names = (0..).map(|i| format!("m-shard-{i}"));
    let first = names.next().expect("name");
    let first_shard = shard_of(&tenant_id, &ModelId::parse(&first).expect("model"));
    let second = names
        .find(|n| shard_of(&tenant_id, &ModelId::parse(n).expect("model")) != first_shard)
        .expect("a model in another shard");
    let second_shard = shard_of(&tenant_id, &ModelId::parse(&second).expect("model"));
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(2);
    for model in [&first, &second] {
        let body = json!({"model_id": model, "batch_id": "b-shard", "task": "regression",
            "predictions": [{"timestamp": (minute + TimeDelta::seconds(5)).to_rfc3339(),
                             "latency_ms": 4.0, "status": "ok", "predicted": 1.0, "actual": 1.5}]});
        let answer = stack
            .invoke(
                "ingest",
                &ingest_event(&tenant, body.to_string().as_bytes()),
            )
            .await;
        assert_eq!(answer["statusCode"], 202, "{answer}");
    }
    let rollups = stack.rollup_store().await;
    let rolled = |model: String| {
        let rollups = &rollups;
        let tenant_id = tenant_id.clone();
        async move {
            let span = TimeSpan::new(minute, minute + TimeDelta::minutes(1));
            let model = ModelId::parse(&model).expect("model");
            let found = rollups
                .rollups(ModelRef::new(&tenant_id, &model), Granularity::Minute, span)
                .await
                .expect("read");
            found.len()
        }
    };
    let mut trigger = event("aggregate-shard.json");
    trigger["time"] = now.to_rfc3339().into();
    trigger["shard"] = first_shard.into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(
        report["rollups"]["rolled"]["minutes"].as_u64() >= Some(1),
        "{report}"
    );
    assert_eq!(
        rolled(first.clone()).await,
        1,
        "the shard's model is rolled: {report}"
    );
    assert_eq!(
        rolled(second.clone()).await,
        0,
        "another shard's model waits: {report}"
    );
    trigger["shard"] = second_shard.into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert_eq!(
        rolled(second.clone()).await,
        1,
        "its own shard's run rolls it: {report}"
    );

    // evaluate, given the first model's shard, evaluates the models of that shard.
    let mut evaluation = event("aggregate-shard.json");
    evaluation["time"] = now.to_rfc3339().into();
    evaluation["shard"] = first_shard.into();
    let report = stack.invoke("evaluate", &evaluation).await;
    assert!(report["models"].as_u64() >= Some(1), "{report}");
    assert_eq!(report["left"], 0, "{report}");
    // A shard that does not exist is refused, naming it.
    evaluation["shard"] = 32.into();
    let mut evaluate = LocalFunction::start(stack, "evaluate", &[]).await;
    let refused = evaluate
        .invoke(&evaluation)
        .await
        .expect_err("shard 32 is refused");
    assert!(
        refused.to_string().contains("shard 32 does not exist"),
        "{refused}"
    );
}

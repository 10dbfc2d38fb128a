//! The README's main job in its short mode: the traffic simulator (the library behind
//! `modelwatch-simulator`) pushes three hours of traffic for four models through the
//! real `ingest` binary — one of them a classifier whose labels arrive 1–3 hours late,
//! through the actuals route — drives `aggregate` and `evaluate` as the schedules
//! would, and the outcome is checked: alerts fired and resolved for the degraded model
//! only, each rule exactly once each way, every late label joined, and every model's
//! summary equal to the simulator's own ground truth as of the last label sent (counts,
//! accuracy or RMSE, label coverage and error rate exactly, p95s within the sketch's
//! 1 %). Then every query of the Grafana dashboard runs over the demo's time range for
//! its models and must return data.

use chrono::{TimeDelta, Utc};
use modelwatch_e2e::dashboard::{self, run_panel_queries};
use modelwatch_e2e::subscriber::{Subscriber, alert_of};
use modelwatch_e2e::{Stack, unique_tenant};
use modelwatch_simulator::scenario::{ModelKind, ModelSpec, Scenario};
use modelwatch_simulator::target::{Client, Target};
use modelwatch_simulator::{RunConfig, check, minute, run};
use serde_json::Value;

#[tokio::test]
async fn the_demo_scenario_alerts_on_the_degraded_model_only_and_matches_its_ground_truth() {
    let stack = Stack::get();
    let tenant = unique_tenant("demo");
    let subscriber = Subscriber::new(stack, &tenant, None).await;
    let duration = TimeDelta::hours(3);
    let model = |id: &str, kind| ModelSpec {
        id: id.to_owned(),
        kind,
    };
    let config = RunConfig {
        scenario: Scenario {
            start: minute(Utc::now()) - duration,
            duration,
            per_minute: 30,
            models: vec![
                model("fraud-detector", ModelKind::Binary),
                model("intent-router", ModelKind::Multiclass),
                model("eta-regressor", ModelKind::Regression),
                model("chargeback-scorer", ModelKind::LateBinary),
            ],
            degraded: Some("fraud-detector".to_owned()),
            seed: 11,
        },
        step: TimeDelta::minutes(5),
        evaluate_every: TimeDelta::minutes(15),
        register_baselines: true,
        alert_queue_url: None,
    };
    let client = Client::new(Target::Lambda {
        endpoint: stack.var("LAMBDA_ENDPOINT").to_owned(),
        tenant: tenant.clone(),
    })
    .with_sqs()
    .await;
    let outcome = run(&client, &config, |_| {})
        .await
        .expect("the simulation runs");
    assert_eq!(outcome.predictions, 4 * 180 * 30);
    let late = &outcome.labels["chargeback-scorer"];
    assert!(
        late.joined > 0 && late.joined == late.sent,
        "every late label sent is joined: {late:?}"
    );

    let alerts: Vec<Value> = subscriber.drain().await.iter().map(alert_of).collect();
    let rules: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["rule"]["id"].as_str())
        .collect();
    for expected in [
        "default-accuracy",
        "default-error_rate",
        "default-latency_p95-max",
    ] {
        assert!(
            rules.contains(&expected),
            "{expected} did not fire: {alerts:#?}"
        );
    }
    let problems = check(&client, &config, &outcome, &alerts)
        .await
        .expect("the API answers");
    assert!(problems.is_empty(), "{problems:#?}");
    subscriber.remove().await;

    let panels = run_panel_queries(
        stack,
        &dashboard::load(),
        &tenant,
        "fraud-detector|intent-router|eta-regressor|chargeback-scorer",
        config.scenario.start,
        Utc::now() + TimeDelta::seconds(1),
    )
    .await;
    assert!(
        panels.failures.is_empty(),
        "after the demo, {} of the dashboard's {} queries failed:\n{}",
        panels.failures.len(),
        panels.checked,
        panels.failures.join("\n")
    );
}

//! After the README's demo (`stack.sh demo`, test.sh's demo step, which checks the
//! summaries against the simulator's ground truth and the alerts with `--check`):
//! every query of the Grafana dashboard, over the demo's tenant, models and time
//! range, returns data from what its three simulated hours wrote to Prometheus.
//!
//! Ignored in a plain `cargo test`: it needs the demo's traffic, and test.sh runs it
//! by name (`--ignored`) right after the demo, on the stack the demo leaves up. The
//! demo's tenant and start come from `infra/local/.run/demo.env` (written by
//! `stack.sh demo`); without that file the test fails.

use chrono::{DateTime, TimeDelta, Utc};
use modelwatch_e2e::dashboard::{self, run_panel_queries};
use modelwatch_e2e::{Stack, repo_root};

#[tokio::test]
#[ignore = "needs the demo's traffic: test.sh runs it after `stack.sh demo`"]
async fn every_dashboard_query_returns_data_after_the_demo() {
    let stack = Stack::get();
    let path = repo_root().join("infra/local/.run/demo.env");
    let demo = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (written by `stack.sh demo`): {e}", path.display()));
    let value = |key: &str| {
        demo.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key} in {}", path.display()))
            .to_owned()
    };
    let tenant = value("DEMO_TENANT");
    let from: DateTime<Utc> = value("DEMO_FROM").parse().expect("DEMO_FROM is RFC 3339");
    let panels = run_panel_queries(
        stack,
        &dashboard::load(),
        &tenant,
        "fraud-detector|intent-router|eta-regressor|chargeback-scorer|lead-scorer",
        from,
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

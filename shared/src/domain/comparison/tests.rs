use super::*;

#[derive(serde::Deserialize)]
struct Fixture {
    baseline: [u64; 2],
    candidate: [u64; 2],
    z: f64,
    p_value: f64,
    ci: [f64; 2],
}

#[derive(serde::Deserialize)]
struct Fixtures {
    cases: Vec<Fixture>,
}

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-12 + 1e-9 * expected.abs();
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs scipy {expected}"
    );
}

#[test]
fn proportion_tests_equal_scipys() {
    let fixtures: Fixtures = serde_json::from_str(include_str!(
        "../../../tests/reference/comparison_fixtures.json"
    ))
    .expect("fixtures");
    assert!(fixtures.cases.len() >= 8);
    for case in fixtures.cases {
        let [xb, nb] = case.baseline;
        let [xc, nc] = case.candidate;
        let test = two_proportion_test(xb, nb, xc, nc).expect("enough on both sides");
        let what = format!("{xb}/{nb} vs {xc}/{nc}");
        close(test.z, case.z, &format!("z of {what}"));
        close(test.p_value, case.p_value, &format!("p of {what}"));
        close(test.ci[0], case.ci[0], &format!("ci low of {what}"));
        close(test.ci[1], case.ci[1], &format!("ci high of {what}"));
        assert_eq!(
            test.significant,
            case.p_value < SIGNIFICANCE_LEVEL,
            "{what}"
        );
    }
}

#[test]
fn a_test_needs_enough_on_both_sides_and_survives_degenerate_proportions() {
    assert_eq!(two_proportion_test(10, 29, 20, 100), None);
    assert_eq!(two_proportion_test(10, 100, 20, 29), None);
    assert_eq!(two_proportion_test(101, 100, 20, 100), None, "x > n");
    let all = two_proportion_test(50, 50, 80, 80).expect("runs");
    assert_eq!((all.z, all.p_value, all.significant), (0.0, 1.0, false));
    assert_eq!(all.ci, [0.0, 0.0]);
}

/// A window of `predictions` with `errors`, `labeled` of them labeled at `accuracy`,
/// and a p95 latency.
fn window(predictions: u64, errors: u64, labeled: u64, accuracy: f64, p95: f64) -> MetricSet {
    MetricSet {
        predictions,
        errors,
        error_rate: Some(errors as f64 / predictions as f64),
        labeled,
        accuracy: Some(accuracy),
        latency_p95_ms: Some(p95),
        ..MetricSet::default()
    }
}

#[test]
fn the_verdict_follows_the_tests_in_each_metrics_direction() {
    let baseline = window(10_000, 100, 2_000, 0.95, 40.0);
    let verdict = |candidate: &MetricSet| compare(&baseline, candidate).verdict;
    assert_eq!(
        verdict(&window(1_000, 10, 200, 0.95, 40.0)),
        Verdict::NoDifference
    );
    assert_eq!(
        verdict(&window(1_000, 10, 200, 0.80, 40.0)),
        Verdict::CandidateWorse,
        "less accurate"
    );
    assert_eq!(
        verdict(&window(1_000, 60, 200, 0.95, 40.0)),
        Verdict::CandidateWorse,
        "failing more"
    );
    assert_eq!(
        verdict(&window(1_000, 0, 200, 0.95, 40.0)),
        Verdict::CandidateBetter,
        "failing less"
    );
    assert_eq!(
        verdict(&window(1_000, 0, 200, 0.80, 40.0)),
        Verdict::CandidateWorse,
        "worse on one test outweighs better on another"
    );
    assert_eq!(
        verdict(&window(20, 10, 10, 0.10, 400.0)),
        Verdict::InsufficientData
    );
}

#[test]
fn every_metric_of_either_side_is_listed_with_its_difference_and_bound() {
    let baseline = window(10_000, 100, 2_000, 0.95, 40.0);
    let candidate = window(1_000, 10, 200, 0.90, 50.0);
    let comparison = compare(&baseline, &candidate);
    let names: Vec<MetricName> = comparison.metrics.iter().map(|m| m.metric).collect();
    assert_eq!(
        names,
        [
            MetricName::Accuracy,
            MetricName::LatencyP95,
            MetricName::ErrorRate
        ]
    );
    let accuracy = &comparison.metrics[0];
    assert!((accuracy.difference.expect("both") + 0.05).abs() < 1e-12);
    let test = accuracy.test.expect("tested");
    assert!(test.z < 0.0 && test.ci[0] < -0.05 && test.ci[1] > -0.05);
    let p95 = &comparison.metrics[1];
    assert_eq!(p95.difference, Some(10.0));
    assert_eq!(p95.bound, Some(LATENCY_RELATIVE_ACCURACY * 90.0));
    assert!(!p95.higher_is_better && p95.test.is_none());
    let json = serde_json::to_value(&comparison).expect("serializes");
    assert_eq!(json["verdict"], "candidate_worse");
    assert_eq!(json["metrics"][0]["metric"], "accuracy");
    assert_eq!(json["metrics"][0]["test"]["method"], "two_proportion_z");
    assert!(json["metrics"][2].get("bound").is_none());
}

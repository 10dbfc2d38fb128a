//! The metric engine against reference values computed by scikit-learn, numpy and scipy
//! (`tests/reference/generate.py` wrote `tests/reference/fixtures.json`).
//!
//! Tolerances: counts and ratios of counts to 1e-12; AUC-ROC within the engine's own
//! error bound, and to 1e-9 where every score sits on a bin centre; latency quantiles
//! within 1% relative; regression metrics to 1e-12 relative; trends to 1e-9 relative.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelwatch::domain::alerting::trends::metric_trend;
use modelwatch::domain::{
    LATENCY_RELATIVE_ACCURACY, MetricName, MetricSet, Outcome, PredictionRecord, Status, TimeSpan,
    WindowState, fit_trend,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixtures {
    classification: Vec<ClassificationCase>,
    regression: Vec<RegressionCase>,
    latency: Vec<LatencyCase>,
    trend: Vec<TrendCase>,
    metric_trend: Vec<MetricTrendCase>,
}

#[derive(Deserialize)]
struct MetricTrendCase {
    name: String,
    metric: String,
    start_ms: i64,
    values: Vec<f64>,
    samples: Vec<u64>,
    threshold: Option<f64>,
    now_ms: i64,
    expected: MetricTrendExpected,
}

#[derive(Deserialize)]
struct MetricTrendExpected {
    label: String,
    slope: Option<f64>,
    confidence: Option<f64>,
    breach_ms: Option<i64>,
    points: usize,
}

#[derive(Deserialize)]
struct ClassificationCase {
    name: String,
    task: String,
    #[serde(default)]
    scores_on_bin_centres: bool,
    /// `[status, predicted, actual, score?]`.
    records: Vec<Vec<Value>>,
    expected: ClassificationExpected,
}

#[derive(Deserialize)]
struct ClassificationExpected {
    labeled: u64,
    accuracy: Option<f64>,
    f1_score: Option<f64>,
    #[serde(default)]
    auc_roc: Option<f64>,
}

#[derive(Deserialize)]
struct RegressionCase {
    name: String,
    predicted: Vec<f64>,
    actual: Vec<f64>,
    expected: RegressionExpected,
}

#[derive(Deserialize)]
struct RegressionExpected {
    labeled: u64,
    rmse: Option<f64>,
    mae: Option<f64>,
    mape: Option<f64>,
    mape_excluded: u64,
}

#[derive(Deserialize)]
struct LatencyCase {
    name: String,
    latencies_ms: Vec<f64>,
    sum_ms: f64,
    /// Keyed by the quantile as written: "0.5", "0.95", "0.99".
    expected: BTreeMap<String, Option<f64>>,
}

#[derive(Deserialize)]
struct TrendCase {
    name: String,
    times_ms: Vec<i64>,
    values: Vec<f64>,
    expected: TrendExpected,
}

#[derive(Deserialize)]
struct TrendExpected {
    slope_per_day: f64,
    intercept: f64,
    r_squared: f64,
    slope_std_error: f64,
    p_value: f64,
    polyfit_slope: f64,
    polyfit_intercept: f64,
}

fn fixtures() -> Fixtures {
    let text = include_str!("reference/fixtures.json");
    serde_json::from_str(text).expect("fixtures.json parses")
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("in range")
}

fn span() -> TimeSpan {
    TimeSpan {
        start: at(0),
        end: at(3_600_000),
    }
}

fn assert_close(
    name: &str,
    metric: &str,
    actual: Option<f64>,
    expected: Option<f64>,
    relative: f64,
) {
    match (actual, expected) {
        (None, None) => {}
        (Some(a), Some(e)) => {
            let tolerance = relative * e.abs().max(1.0);
            assert!(
                (a - e).abs() <= tolerance,
                "{name}: {metric} = {a}, reference {e}"
            );
        }
        _ => panic!("{name}: {metric} = {actual:?}, reference {expected:?}"),
    }
}

fn status(value: &Value) -> Status {
    match value.as_str() {
        Some("ok") => Status::Ok,
        Some("error") => Status::Error,
        other => panic!("unknown status {other:?}"),
    }
}

fn classification_record(task: &str, fields: &[Value]) -> PredictionRecord {
    let outcome = match task {
        "binary_classification" => Outcome::Binary {
            predicted: fields[1].as_bool(),
            actual: fields[2].as_bool(),
            score: fields[3].as_f64(),
        },
        "multiclass_classification" => Outcome::Multiclass {
            predicted: fields[1].as_str().map(str::to_owned),
            actual: fields[2].as_str().map(str::to_owned),
            score: fields.get(3).and_then(Value::as_f64),
        },
        other => panic!("unknown task {other}"),
    };
    let status = status(&fields[0]);
    PredictionRecord {
        timestamp: at(1_000),
        latency_ms: 5.0,
        status,
        error_type: (status == Status::Error).then(|| "timeout".to_owned()),
        outcome,
    }
}

#[test]
fn classification_matches_scikit_learn() {
    let cases = fixtures().classification;
    assert!(cases.len() >= 10);
    for case in cases {
        let mut state = WindowState::new();
        for fields in &case.records {
            state
                .fold_prediction(&classification_record(&case.task, fields))
                .expect("valid record");
        }
        let metrics = MetricSet::compute(&state, span(), None);
        let name = case.name.as_str();
        assert_eq!(metrics.labeled, case.expected.labeled, "{name}: labeled");
        assert_close(
            name,
            "accuracy",
            metrics.accuracy,
            case.expected.accuracy,
            1e-12,
        );
        assert_close(
            name,
            "f1_score",
            metrics.f1_score,
            case.expected.f1_score,
            1e-12,
        );
        match (
            metrics.auc_roc,
            metrics.auc_roc_error_bound,
            case.expected.auc_roc,
        ) {
            (None, None, None) => {}
            (Some(auc), Some(bound), Some(reference)) => {
                assert!(
                    (auc - reference).abs() <= bound + 1e-12,
                    "{name}: auc {auc} ± {bound}, reference {reference}"
                );
                if case.scores_on_bin_centres {
                    assert!(
                        (auc - reference).abs() <= 1e-9,
                        "{name}: auc {auc}, reference {reference}"
                    );
                }
            }
            other => panic!("{name}: auc {other:?}"),
        }
        // The same records split in two and merged give the same metrics.
        let (left, right) = case.records.split_at(case.records.len() / 3);
        let mut merged = WindowState::new();
        let mut other = WindowState::new();
        left.iter().for_each(|f| {
            merged
                .fold_prediction(&classification_record(&case.task, f))
                .expect("valid")
        });
        right.iter().for_each(|f| {
            other
                .fold_prediction(&classification_record(&case.task, f))
                .expect("valid")
        });
        merged.merge(&other).expect("same task");
        assert_eq!(
            MetricSet::compute(&merged, span(), None),
            metrics,
            "{name}: merged"
        );
    }
}

#[test]
fn regression_matches_scikit_learn() {
    for case in fixtures().regression {
        let mut state = WindowState::new();
        for (&predicted, &actual) in case.predicted.iter().zip(&case.actual) {
            let record = PredictionRecord {
                timestamp: at(1_000),
                latency_ms: 5.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: Some(predicted),
                    actual: Some(actual),
                },
            };
            state.fold_prediction(&record).expect("valid record");
        }
        let metrics = MetricSet::compute(&state, span(), None);
        let name = case.name.as_str();
        assert_eq!(metrics.labeled, case.expected.labeled, "{name}: labeled");
        assert_eq!(
            metrics.mape_excluded, case.expected.mape_excluded,
            "{name}: mape_excluded"
        );
        assert_close(name, "rmse", metrics.rmse, case.expected.rmse, 1e-12);
        assert_close(name, "mae", metrics.mae, case.expected.mae, 1e-12);
        assert_close(name, "mape", metrics.mape, case.expected.mape, 1e-12);
        assert_eq!(metrics.accuracy, None);
    }
}

#[test]
fn latency_quantiles_are_within_one_percent_of_numpy() {
    for case in fixtures().latency {
        let mut state = WindowState::new();
        for &latency_ms in &case.latencies_ms {
            let record = PredictionRecord {
                timestamp: at(1_000),
                latency_ms,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: None,
                    actual: None,
                },
            };
            state.fold_prediction(&record).expect("valid record");
        }
        let metrics = MetricSet::compute(&state, span(), None);
        let name = case.name.as_str();
        let estimates = [
            ("0.5", metrics.latency_p50_ms),
            ("0.95", metrics.latency_p95_ms),
            ("0.99", metrics.latency_p99_ms),
        ];
        for (q, estimate) in estimates {
            let reference = case.expected[q];
            match (estimate, reference) {
                (None, None) => {}
                // Relative error, and exactness for a zero latency.
                (Some(e), Some(r)) => assert!(
                    (e - r).abs() <= (LATENCY_RELATIVE_ACCURACY + 1e-12) * r,
                    "{name}: p{q} = {e}, exact {r}"
                ),
                other => panic!("{name}: p{q} {other:?}"),
            }
        }
        let expected_sum = (!case.latencies_ms.is_empty()).then_some(case.sum_ms);
        assert_close(
            name,
            "latency_sum_ms",
            metrics.latency_sum_ms,
            expected_sum,
            1e-12,
        );
    }
}

#[test]
fn trends_match_scipy_linregress_and_numpy_polyfit() {
    for case in fixtures().trend {
        let points: Vec<(DateTime<Utc>, f64)> = case
            .times_ms
            .iter()
            .map(|&ms| at(ms))
            .zip(case.values.iter().copied())
            .collect();
        let trend = fit_trend(&points).expect("fits");
        let expected = &case.expected;
        let name = case.name.as_str();
        let relative = |actual: f64, reference: f64, what: &str| {
            assert!(
                (actual - reference).abs() <= 1e-9 * reference.abs(),
                "{name}: {what} = {actual:e}, reference {reference:e}"
            );
        };
        assert_eq!(trend.points, points.len());
        relative(trend.slope_per_day, expected.slope_per_day, "slope");
        relative(
            trend.slope_per_day,
            expected.polyfit_slope,
            "slope (polyfit)",
        );
        relative(trend.intercept, expected.intercept, "intercept");
        relative(
            trend.intercept,
            expected.polyfit_intercept,
            "intercept (polyfit)",
        );
        relative(trend.r_squared, expected.r_squared, "r²");
        relative(
            trend.slope_std_error,
            expected.slope_std_error,
            "slope standard error",
        );
        relative(trend.p_value, expected.p_value, "p-value");
    }
}

#[test]
fn metric_trends_match_the_reference_labels_slopes_breaches_and_confidence() {
    for case in fixtures().metric_trend {
        let name = case.name.as_str();
        let metric: MetricName = case.metric.parse().expect("metric name");
        let hours: Vec<(DateTime<Utc>, MetricSet)> = case
            .values
            .iter()
            .zip(&case.samples)
            .enumerate()
            .map(|(h, (&value, &samples))| {
                let mut metrics = MetricSet {
                    predictions: samples,
                    labeled: samples,
                    ..MetricSet::default()
                };
                let field = match metric {
                    MetricName::Accuracy => &mut metrics.accuracy,
                    MetricName::F1Score => &mut metrics.f1_score,
                    MetricName::Rmse => &mut metrics.rmse,
                    MetricName::Mape => &mut metrics.mape,
                    MetricName::LatencyP95 => &mut metrics.latency_p95_ms,
                    MetricName::ErrorRate => &mut metrics.error_rate,
                    other => panic!("{name}: no fixture field for {other}"),
                };
                *field = Some(value);
                (at(case.start_ms + h as i64 * 3_600_000), metrics)
            })
            .collect();
        let trend = metric_trend(metric, &hours, case.threshold, at(case.now_ms));
        let expected = &case.expected;
        assert_eq!(trend.label.as_str(), expected.label, "{name}: label");
        assert_eq!(trend.points, expected.points, "{name}: points");
        assert_eq!(trend.threshold, case.threshold, "{name}: threshold");
        let close = |actual: Option<f64>, reference: Option<f64>, tolerance: f64, what: &str| match (
            actual, reference,
        ) {
            (Some(a), Some(r)) => assert!(
                (a - r).abs() <= tolerance * r.abs().max(1e-300),
                "{name}: {what} = {a:e}, reference {r:e}"
            ),
            (a, r) => assert_eq!(a, r, "{name}: {what}"),
        };
        close(trend.slope, expected.slope, 1e-9, "slope");
        close(trend.confidence, expected.confidence, 1e-9, "confidence");
        let breach = trend
            .projected_baseline_breach
            .map(|t| t.timestamp_millis());
        match (breach, expected.breach_ms) {
            (Some(b), Some(r)) => assert!((b - r).abs() <= 1, "{name}: breach {b} vs {r}"),
            (b, r) => assert_eq!(b, r, "{name}: breach"),
        }
    }
}

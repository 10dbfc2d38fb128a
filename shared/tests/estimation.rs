//! Performance estimation (CBPE) and prediction drift against reference values, and the
//! estimate's confidence interval against the realized value over seeded trials.
//!
//! `tests/reference/generate_estimation.py` wrote `tests/reference/estimation_fixtures.json`
//! with NannyML's method (scikit-learn's isotonic calibrator) and scipy's Jensen–Shannon
//! distance, on scores moved to their bin's centre ("binned": the engine must agree to
//! 1e-9) and on the exact scores ("raw": the 1,000-bin histogram may cost at most
//! [`HISTOGRAM_BOUND`]).

use modelwatch::domain::drift::{DriftDistribution, DriftReference};
use modelwatch::domain::estimation::{BinaryEstimate, Calibration, bin_centre};
use modelwatch::domain::{Outcome, PredictionRecord, Task, WindowState};
use modelwatch::testing::{binary_record as record, binary_stats};
use serde::Deserialize;

/// The most the 1/1000 score bins may move an estimate or a drift statistic from its
/// value on the exact scores (documented in `domain::estimation` and `domain::drift`;
/// the fixtures' largest distance is 0.0005).
const HISTOGRAM_BOUND: f64 = 0.002;

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
    drift_cases: Vec<DriftCase>,
}

/// A multiclass or regression drift case: `[predicted label or value, count]` of the
/// reference and the window (both unlabeled), and scipy's side. A scored multiclass
/// case gives `[[label, score bin], count]` and the confidence drift too.
#[derive(Deserialize)]
struct DriftCase {
    name: String,
    task: String,
    reference: Vec<(serde_json::Value, u64)>,
    window: Vec<(serde_json::Value, u64)>,
    drift: Drift,
    confidence_drift: Option<Drift>,
}

impl DriftCase {
    /// The state of `counted` unlabeled predictions of the case's task.
    fn state(&self, counted: &[(serde_json::Value, u64)]) -> WindowState {
        let mut state = WindowState::new();
        for (predicted, count) in counted {
            let outcome = match self.task.as_str() {
                "multiclass" => {
                    let (label, score) = match predicted.as_array().map(Vec::as_slice) {
                        Some([label, bin]) => (label, bin.as_u64().map(|b| bin_centre(b as usize))),
                        _ => (predicted, None),
                    };
                    Outcome::Multiclass {
                        predicted: label.as_str().map(str::to_owned),
                        actual: None,
                        score,
                    }
                }
                _ => Outcome::Regression {
                    predicted: predicted.as_f64(),
                    actual: None,
                },
            };
            let record = PredictionRecord {
                outcome,
                ..record(true, None, 0.5)
            };
            for _ in 0..*count {
                state.fold_prediction(&record).unwrap();
            }
        }
        // Through the stored bytes, as the summary reads them.
        WindowState::from_bytes(&state.to_bytes()).unwrap()
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    /// `[bin, predicted, actual, count]`
    reference: Vec<[u64; 4]>,
    /// `[bin, predicted, count]`, unlabeled
    window: Vec<[u64; 3]>,
    binned: Expected,
    raw: Expected,
}

#[derive(Deserialize)]
struct Expected {
    estimate: Metrics,
    drift: Drift,
}

#[derive(Deserialize)]
struct Metrics {
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1_score: f64,
    auc_roc: f64,
}

#[derive(Deserialize)]
struct Drift {
    psi: f64,
    js: f64,
    bins: usize,
}

fn estimated(estimate: &BinaryEstimate) -> [f64; 5] {
    [
        estimate.accuracy.value,
        estimate.precision.expect("predicted positives").value,
        estimate.recall.expect("expected positives").value,
        estimate.f1_score.value,
        estimate.auc_roc.expect("both classes").value,
    ]
}

impl Metrics {
    fn values(&self) -> [f64; 5] {
        [
            self.accuracy,
            self.precision,
            self.recall,
            self.f1_score,
            self.auc_roc,
        ]
    }
}

#[test]
fn estimates_and_drift_equal_nannyml_and_scipy_on_the_fixtures() {
    let text = include_str!("reference/estimation_fixtures.json");
    let fixtures: Fixtures = serde_json::from_str(text).expect("fixtures parse");
    assert!(fixtures.cases.len() >= 3);
    for case in &fixtures.cases {
        let name = &case.name;
        let mut reference = WindowState::new();
        for &[bin, predicted, actual, count] in &case.reference {
            let record = record(predicted == 1, Some(actual == 1), bin_centre(bin as usize));
            for _ in 0..count {
                reference.fold_prediction(&record).unwrap();
            }
        }
        let mut window = WindowState::new();
        for &[bin, predicted, count] in &case.window {
            let record = record(predicted == 1, None, bin_centre(bin as usize));
            for _ in 0..count {
                window.fold_prediction(&record).unwrap();
            }
        }
        // Through the stored bytes, as the summary reads them.
        let reference = WindowState::from_bytes(&reference.to_bytes()).unwrap();
        let window = WindowState::from_bytes(&window.to_bytes()).unwrap();
        let (reference_state, window_state) = (reference, window);
        let (reference, window) = (binary_stats(&reference_state), binary_stats(&window_state));
        let distribution = window.distribution().expect("scored predictions");

        let calibration = Calibration::fit(reference).expect("a calibratable reference");
        let ours = estimated(&calibration.estimate(distribution).expect("an estimate"));
        let drift_reference = DriftReference::of_state(&reference_state, DriftDistribution::Score)
            .expect("predictions");
        let drift = drift_reference.drift_of_state(&window_state).unwrap();
        assert_eq!(drift_reference.bins(), case.binned.drift.bins, "{name}");

        for (expected, tolerance, what) in [
            (&case.binned, 1e-9, "binned"),
            (&case.raw, HISTOGRAM_BOUND, "raw"),
        ] {
            for (i, (ours, theirs)) in ours.iter().zip(expected.estimate.values()).enumerate() {
                assert!(
                    (ours - theirs).abs() <= tolerance,
                    "{name}, {what}, metric {i}: {ours} vs {theirs}"
                );
            }
            for (ours, theirs) in [
                (drift.psi, expected.drift.psi),
                (drift.js, expected.drift.js),
            ] {
                assert!(
                    (ours - theirs).abs() <= tolerance,
                    "{name}, {what} drift: {ours} vs {theirs}"
                );
            }
        }
    }
}

/// SplitMix64 draws.
struct Draws(u64);

impl Draws {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A prediction with a calibrated score: `P(actual = 1 | score) = score`.
    fn prediction(&mut self, mean: f64) -> (bool, bool, f64) {
        let score = 1.0 / (1.0 + (-(mean + 1.3 * self.normal())).exp());
        let actual = self.unit() < score;
        (score >= 0.5, actual, score)
    }
}

/// Realized counts of a labeled window.
#[derive(Default)]
struct Realized {
    tp: f64,
    fp: f64,
    fn_: f64,
    tn: f64,
}

/// Predicted labels and predicted values drift as scipy's side computes it: labels
/// exactly (one bin per reference label and one for the rest), values exactly where
/// each has a sketch bucket of its own (the fixtures' whole numbers up to 40), and a
/// multiclass model's confidence exactly on scores at their bin's centre.
#[test]
fn label_value_and_confidence_drift_equal_scipy_on_the_fixtures() {
    let text = include_str!("reference/estimation_fixtures.json");
    let fixtures: Fixtures = serde_json::from_str(text).expect("fixtures parse");
    assert_eq!(fixtures.drift_cases.len(), 6);
    let mut confidence_cases = 0;
    for case in &fixtures.drift_cases {
        let name = &case.name;
        let (reference, window) = (case.state(&case.reference), case.state(&case.window));
        let task = if case.task == "multiclass" {
            Task::MulticlassClassification
        } else {
            Task::Regression
        };
        let compared = [
            (DriftDistribution::of_task(task), Some(&case.drift)),
            (
                DriftDistribution::PredictedClassScore,
                case.confidence_drift.as_ref(),
            ),
        ];
        for (distribution, expected) in compared {
            let drift = DriftReference::of_state(&reference, distribution)
                .and_then(|fit| fit.drift_of_state(&window));
            let Some(expected) = expected else {
                assert_eq!(drift, None, "{name}: no scores, no confidence drift");
                continue;
            };
            let drift = drift.expect(name);
            assert_eq!(drift.distribution, distribution);
            assert_eq!(drift.bins, expected.bins, "{name}");
            assert!(
                (drift.psi - expected.psi).abs() <= 1e-12,
                "{name}: PSI {drift:?} vs {}",
                expected.psi
            );
            assert!(
                (drift.js - expected.js).abs() <= 1e-12,
                "{name}: JS {drift:?} vs {}",
                expected.js
            );
        }
        confidence_cases += usize::from(case.confidence_drift.is_some());
    }
    assert_eq!(confidence_cases, 2);
}

#[test]
fn the_estimate_lies_within_its_interval_of_the_realized_value_in_most_trials() {
    const TRIALS: u64 = 200;
    let mut covered = [0_u32; 4];
    for seed in 0..TRIALS {
        let mut draws = Draws(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut reference = WindowState::new();
        for _ in 0..10_000 {
            let (predicted, actual, score) = draws.prediction(0.0);
            reference
                .fold_prediction(&record(predicted, Some(actual), score))
                .unwrap();
        }
        // The window: covariate shift (more positives), unlabeled in the state.
        let mut window = WindowState::new();
        let mut realized = Realized::default();
        for _ in 0..2_000 {
            let (predicted, actual, score) = draws.prediction(0.6);
            window
                .fold_prediction(&record(predicted, None, score))
                .unwrap();
            let cell = match (predicted, actual) {
                (true, true) => &mut realized.tp,
                (true, false) => &mut realized.fp,
                (false, true) => &mut realized.fn_,
                (false, false) => &mut realized.tn,
            };
            *cell += 1.0;
        }
        let calibration = Calibration::fit(binary_stats(&reference)).unwrap();
        let estimate = calibration
            .estimate(binary_stats(&window).distribution().unwrap())
            .unwrap();
        let Realized { tp, fp, fn_, tn } = realized;
        let values = [
            (estimate.accuracy, (tp + tn) / (tp + fp + fn_ + tn)),
            (estimate.precision.unwrap(), tp / (tp + fp)),
            (estimate.recall.unwrap(), tp / (tp + fn_)),
            (estimate.f1_score, 2.0 * tp / (2.0 * tp + fp + fn_)),
        ];
        for (count, (estimate, realized)) in covered.iter_mut().zip(values) {
            *count += u32::from(estimate.covers(realized));
        }
    }
    eprintln!("covered of {TRIALS} (accuracy, precision, recall, F1): {covered:?}");
    for (metric, count) in ["accuracy", "precision", "recall", "F1"]
        .iter()
        .zip(covered)
    {
        assert!(
            f64::from(count) >= 0.9 * TRIALS as f64,
            "{metric}: the interval held the realized value in {count} of {TRIALS} trials"
        );
    }
}

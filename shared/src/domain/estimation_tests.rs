use super::*;
use crate::domain::WindowState;
use crate::domain::record::Outcome;
use crate::testing::{binary_record, binary_stats};

/// A binary state of `(predicted, actual, score, copies)` records.
fn binary_state(records: &[(bool, Option<bool>, f64, usize)]) -> BinaryStats {
    let mut state = WindowState::new();
    for &(predicted, actual, score, copies) in records {
        let record = binary_record(predicted, actual, score);
        for _ in 0..copies {
            state.fold_prediction(&record).unwrap();
        }
    }
    binary_stats(&state).clone()
}

#[test]
fn calibration_pools_violators_interpolates_gaps_and_clips_the_ends() {
    // Bin 100: 60 % positive; bin 200: 40 % (a violation, pooled to 50 %); bin 800: 90 %.
    let reference = binary_state(&[
        (false, Some(true), 0.1005, 60),
        (false, Some(false), 0.1005, 40),
        (false, Some(true), 0.2005, 40),
        (false, Some(false), 0.2005, 60),
        (true, Some(true), 0.8005, 90),
        (true, Some(false), 0.8005, 10),
    ]);
    let calibration = Calibration::fit(&reference).unwrap();
    assert_eq!(calibration.reference_labels(), 300);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(calibration.probability(100), 0.5));
    assert!(close(calibration.probability(200), 0.5));
    assert!(close(calibration.probability(800), 0.9));
    // Clipped below the first and above the last fitted bin.
    assert!(close(calibration.probability(0), 0.5));
    assert!(close(calibration.probability(999), 0.9));
    // Halfway between bins 200 and 800: halfway between 0.5 and 0.9.
    assert!(close(calibration.probability(500), 0.7));
    let monotone =
        (1..SCORE_BINS).all(|b| calibration.probability(b) >= calibration.probability(b - 1));
    assert!(monotone);
}

#[test]
fn no_calibration_from_too_few_labels_or_one_class() {
    let few = binary_state(&[(true, Some(true), 0.9, 60), (false, Some(false), 0.1, 39)]);
    assert_eq!(
        Calibration::fit(&few),
        Err(NotEstimable::TooFewReferenceLabels { labeled: 99 })
    );
    let unlabeled = binary_state(&[(true, None, 0.9, 500)]);
    assert_eq!(
        Calibration::fit(&unlabeled),
        Err(NotEstimable::TooFewReferenceLabels { labeled: 0 })
    );
    let one_class = binary_state(&[(true, Some(true), 0.9, 100), (false, Some(true), 0.2, 100)]);
    assert_eq!(
        Calibration::fit(&one_class),
        Err(NotEstimable::SingleClassReference)
    );
}

#[test]
fn the_expected_confusion_matrix_gives_every_metric() {
    // Calibration: bin 100 → 0.2, bin 900 → 0.8.
    let reference = binary_state(&[
        (false, Some(true), 0.1005, 20),
        (false, Some(false), 0.1005, 80),
        (true, Some(true), 0.9005, 80),
        (true, Some(false), 0.9005, 20),
    ]);
    let calibration = Calibration::fit(&reference).unwrap();
    // Window: 30 positive predictions at 0.9, 70 negative at 0.1 (unlabeled).
    let window = binary_state(&[(true, None, 0.9005, 30), (false, None, 0.1005, 70)]);
    let estimate = calibration
        .estimate(window.distribution().unwrap())
        .unwrap();
    // TP = 24, FP = 6, FN = 14, TN = 56.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert_eq!(estimate.predictions, 100);
    assert!(close(estimate.accuracy.value, 0.8));
    assert!(close(estimate.precision.unwrap().value, 0.8));
    assert!(close(estimate.recall.unwrap().value, 24.0 / 38.0));
    assert!(close(estimate.f1_score.value, 48.0 / 68.0));
    // Positives 24 above 6 negatives… pairs: 24·56 above + ½·(24·6 + 14·56) tied.
    let auc = (24.0 * 56.0 + 0.5 * (24.0 * 6.0 + 14.0 * 56.0)) / (38.0 * 62.0);
    assert!(close(estimate.auc_roc.unwrap().value, auc));
    // Accuracy's variance: the window's Σ p(1 − p) / n² = 100·0.16 / 100², plus the
    // calibration's: each block's p(1 − p) / 100 labels times ((pos − neg) / n)², blocks
    // (0 − 70) / 100 and (30 − 0) / 100.
    let variance = 0.0016 + 0.0016 * (0.49 + 0.09);
    let half = Z_95 * f64::sqrt(variance);
    assert!(close(
        estimate.accuracy.high - estimate.accuracy.low,
        2.0 * half
    ));
}

#[test]
fn an_empty_window_has_no_estimate_and_late_labels_leave_the_distribution() {
    let mut state = WindowState::new();
    let outcome = Outcome::Binary {
        predicted: Some(true),
        actual: Some(true),
        score: Some(0.7),
    };
    state.fold_label(&outcome, 60.0).unwrap();
    let stats = binary_stats(&state);
    assert_eq!(stats.labeled(), 1);
    assert!(
        stats.distribution().is_none(),
        "a late label is no new prediction"
    );
}

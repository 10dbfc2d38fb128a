//! Property tests of the window state: merging equals folding the union, merge is
//! associative and commutative, bytes round-trip exactly, the size stays bounded, and no
//! input bytes make `from_bytes` panic.
//!
//! Latencies, regression values and gauge values are drawn as dyadic fractions (k/16,
//! k/8, k/64), whose sums are exact in `f64` whatever the order, so states built in any
//! order must be *equal*, floats included. Only `Σ|e / actual|` involves a division; it is
//! compared through MAPE within 1e-12. A separate property uses arbitrary floats and
//! compares every metric within 1e-9 relative.

use chrono::{DateTime, Utc};
use modelwatch::domain::{
    LATENCY_RELATIVE_ACCURACY, MetricSet, Outcome, PredictionRecord, QualityStats, ResourceSample,
    Status, TimeSpan, ValueSketch, WindowState, lower_quantile_rank,
};
use proptest::prelude::*;
use proptest::sample::Index;

const BASE_MS: i64 = 1_741_000_000_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("in range")
}

fn span() -> TimeSpan {
    TimeSpan {
        start: at(BASE_MS),
        end: at(BASE_MS + 86_400_000),
    }
}

#[derive(Debug, Clone, Copy)]
enum TaskKind {
    Binary,
    Multiclass,
    Regression,
}

fn status_and_error_type() -> impl Strategy<Value = (Status, Option<String>)> {
    prop_oneof![
        8 => Just((Status::Ok, None)),
        1 => Just((Status::Error, None)),
        2 => prop::sample::select(vec!["timeout", "oom", "bad_input"]).prop_map(|t| (Status::Error, Some(t.to_owned()))),
    ]
}

fn dyadic_latency() -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(0.0), 9 => (1u32..1_600_000).prop_map(|k| f64::from(k) / 16.0)]
}

fn outcome(kind: TaskKind) -> BoxedStrategy<Outcome> {
    let label = || {
        prop::option::weighted(
            0.9,
            prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(str::to_owned),
        )
    };
    let value = || prop::option::weighted(0.9, (-8000i32..8000).prop_map(|k| f64::from(k) / 8.0));
    match kind {
        TaskKind::Binary => (
            prop::option::weighted(0.9, any::<bool>()),
            prop::option::weighted(0.8, any::<bool>()),
            prop::option::weighted(0.8, (0u32..=1024).prop_map(|k| f64::from(k) / 1024.0)),
        )
            .prop_map(|(predicted, actual, score)| Outcome::Binary {
                predicted,
                actual,
                score,
            })
            .boxed(),
        TaskKind::Multiclass => (
            label(),
            label(),
            prop::option::weighted(0.5, (0u32..=1024).prop_map(|k| f64::from(k) / 1024.0)),
        )
            .prop_map(|(predicted, actual, score)| Outcome::Multiclass {
                predicted,
                actual,
                score,
            })
            .boxed(),
        TaskKind::Regression => (value(), value())
            .prop_map(|(predicted, actual)| Outcome::Regression { predicted, actual })
            .boxed(),
    }
}

fn record(kind: TaskKind, latency: BoxedStrategy<f64>) -> impl Strategy<Value = PredictionRecord> {
    (
        0i64..86_400_000,
        latency,
        status_and_error_type(),
        outcome(kind),
    )
        .prop_map(
            |(offset, latency_ms, (status, error_type), outcome)| PredictionRecord {
                timestamp: at(BASE_MS + offset),
                latency_ms,
                status,
                error_type,
                outcome,
            },
        )
}

fn resource_sample() -> impl Strategy<Value = ResourceSample> {
    let fraction = || prop::option::of((0u32..=64).prop_map(|k| f64::from(k) / 64.0));
    (
        0i64..100,
        fraction(),
        fraction(),
        fraction(),
        prop::option::of((0u32..400).prop_map(|k| f64::from(k) / 4.0)),
        prop::option::of(0u64..1000),
        prop::option::of(0u64..1000),
    )
        .prop_map(
            |(seconds, cpu, memory, gpu, queue, hits, misses)| ResourceSample {
                // Few distinct times, so "last sample" ties are exercised.
                timestamp: at(BASE_MS + seconds * 1000),
                cpu_utilization: cpu,
                memory_utilization: memory,
                gpu_utilization: gpu,
                queue_depth: queue,
                cache_hits: hits,
                cache_misses: misses,
            },
        )
}

/// A window's input: predictions and resource samples.
#[derive(Debug, Clone)]
struct Input {
    predictions: Vec<PredictionRecord>,
    samples: Vec<ResourceSample>,
}

fn input(kind: TaskKind, latency: BoxedStrategy<f64>) -> impl Strategy<Value = Input> {
    (
        prop::collection::vec(record(kind, latency), 0..80),
        prop::collection::vec(resource_sample(), 0..12),
    )
        .prop_map(|(predictions, samples)| Input {
            predictions,
            samples,
        })
}

fn any_task() -> impl Strategy<Value = TaskKind> {
    prop_oneof![
        Just(TaskKind::Binary),
        Just(TaskKind::Multiclass),
        Just(TaskKind::Regression)
    ]
}

fn dyadic_input() -> impl Strategy<Value = Input> {
    any_task().prop_flat_map(|kind| input(kind, dyadic_latency().boxed()))
}

fn state_of(predictions: &[PredictionRecord], samples: &[ResourceSample]) -> WindowState {
    let mut state = WindowState::new();
    for record in predictions {
        state
            .fold_prediction(record)
            .expect("generated records are valid");
    }
    for sample in samples {
        state
            .fold_resource(sample)
            .expect("generated samples are valid");
    }
    state
}

/// Splits the input in three at two random points (predictions and samples alike).
fn thirds(input: &Input, first: Index, second: Index) -> [WindowState; 3] {
    let cut = |len: usize| {
        let (a, b) = (first.index(len + 1), second.index(len + 1));
        (a.min(b), a.max(b))
    };
    let (p1, p2) = cut(input.predictions.len());
    let (s1, s2) = cut(input.samples.len());
    [
        state_of(&input.predictions[..p1], &input.samples[..s1]),
        state_of(&input.predictions[p1..p2], &input.samples[s1..s2]),
        state_of(&input.predictions[p2..], &input.samples[s2..]),
    ]
}

fn merged(parts: &[&WindowState]) -> WindowState {
    let mut state = WindowState::new();
    for part in parts {
        state.merge(part).expect("same task");
    }
    state
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs()).max(1e-300)
}

/// Every metric equal: counts exactly, values within `relative`.
fn assert_same_metrics(
    a: &WindowState,
    b: &WindowState,
    relative: f64,
) -> Result<(), TestCaseError> {
    let (ma, mb) = (
        MetricSet::compute(a, span(), None),
        MetricSet::compute(b, span(), None),
    );
    prop_assert_eq!(
        (ma.predictions, ma.errors, ma.labeled, ma.mape_excluded),
        (mb.predictions, mb.errors, mb.labeled, mb.mape_excluded)
    );
    let (ja, jb) = (
        serde_json::to_value(&ma).expect("json"),
        serde_json::to_value(&mb).expect("json"),
    );
    let (oa, ob) = (
        ja.as_object().expect("object"),
        jb.as_object().expect("object"),
    );
    for (name, va) in oa {
        let vb = &ob[name];
        match (va.as_f64(), vb.as_f64()) {
            (Some(x), Some(y)) => prop_assert!(close(x, y, relative), "{}: {} vs {}", name, x, y),
            _ => prop_assert_eq!(va, vb, "{}", name),
        }
    }
    Ok(())
}

/// Equal states: exactly, except the one sum that involves a division (MAPE's).
fn assert_equivalent(a: &WindowState, b: &WindowState) -> Result<(), TestCaseError> {
    if a.task() == Some(modelwatch::domain::Task::Regression) {
        prop_assert_eq!(a.latency(), b.latency());
        prop_assert_eq!(a.resources(), b.resources());
        prop_assert_eq!(
            a.errors_by_type().collect::<Vec<_>>(),
            b.errors_by_type().collect::<Vec<_>>()
        );
        prop_assert_eq!(
            (a.first_prediction(), a.last_prediction()),
            (b.first_prediction(), b.last_prediction())
        );
        let served = |state: &WindowState| match state.quality() {
            Some(QualityStats::Regression(stats)) => {
                stats.served().map(ValueSketch::ordered_buckets)
            }
            _ => None,
        };
        prop_assert_eq!(served(a), served(b));
        assert_same_metrics(a, b, 1e-12)
    } else {
        prop_assert_eq!(a, b);
        Ok(())
    }
}

/// A multiclass input whose labels and error types overflow the caps: labels drawn from
/// 1,300 names (cap 1,000), error types from 600 (cap 256).
fn overflowing_input() -> impl Strategy<Value = Input> {
    let record = (
        0i64..86_400_000,
        dyadic_latency(),
        0u32..1_300,
        0u32..1_300,
        prop::option::weighted(0.4, 0u32..600),
    )
        .prop_map(|(offset, latency_ms, predicted, actual, error)| {
            let outcome = |predicted: Option<String>, actual: Option<String>| Outcome::Multiclass {
                score: predicted
                    .as_ref()
                    .map(|_| f64::from(offset as u32 % 1001) / 1000.0),
                predicted,
                actual,
            };
            match error {
                Some(t) => PredictionRecord {
                    timestamp: at(BASE_MS + offset),
                    latency_ms,
                    status: Status::Error,
                    error_type: Some(format!("e{t}")),
                    outcome: outcome(None, None),
                },
                None => PredictionRecord {
                    timestamp: at(BASE_MS + offset),
                    latency_ms,
                    status: Status::Ok,
                    error_type: None,
                    outcome: outcome(Some(format!("l{predicted}")), Some(format!("l{actual}"))),
                },
            }
        });
    prop::collection::vec(record, 2_000..3_000).prop_map(|predictions| Input {
        predictions,
        samples: Vec::new(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn caps_keep_merges_exact_and_order_free(input in overflowing_input(), first: Index, second: Index) {
        let whole = state_of(&input.predictions, &input.samples);
        let [a, b, c] = thirds(&input, first, second);
        prop_assert_eq!(&merged(&[&a, &b, &c]), &whole);
        prop_assert_eq!(&merged(&[&c, &merged(&[&b, &a])]), &whole);
        prop_assert!(whole.error_type_overflow() > 0);
        let errors: u64 = whole.errors_by_type().map(|(_, n)| n).sum();
        prop_assert_eq!(errors + whole.untyped_errors(), whole.errors());
        let decoded = WindowState::from_bytes(&whole.to_bytes());
        prop_assert_eq!(decoded.as_ref(), Ok(&whole));
        let metrics = MetricSet::compute(&whole, span(), None);
        let correct = input
            .predictions
            .iter()
            .filter(|r| matches!(&r.outcome, Outcome::Multiclass { predicted: Some(p), actual: Some(a), .. } if p == a))
            .count();
        let labeled = input.predictions.iter().filter(|r| r.status == Status::Ok).count();
        prop_assert_eq!(metrics.labeled, labeled as u64);
        prop_assert_eq!(metrics.accuracy, Some(correct as f64 / labeled as f64), "accuracy is exact past the cap");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_parts_equals_folding_the_whole(input in dyadic_input(), first: Index, second: Index) {
        let whole = state_of(&input.predictions, &input.samples);
        let [a, b, c] = thirds(&input, first, second);
        assert_equivalent(&merged(&[&a, &b, &c]), &whole)?;
        assert_same_metrics(&merged(&[&a, &b, &c]), &whole, 1e-12)?;
    }

    #[test]
    fn merge_is_associative_and_commutative(input in dyadic_input(), first: Index, second: Index) {
        let [a, b, c] = thirds(&input, first, second);
        let left_first = merged(&[&merged(&[&a, &b]), &c]);
        let right_first = merged(&[&a, &merged(&[&b, &c])]);
        let reversed = merged(&[&c, &b, &a]);
        let shuffled = merged(&[&b, &merged(&[&c, &a])]);
        assert_equivalent(&left_first, &right_first)?;
        assert_equivalent(&left_first, &reversed)?;
        assert_equivalent(&left_first, &shuffled)?;
    }

    #[test]
    fn any_float_order_gives_the_same_metrics(
        input in any_task().prop_flat_map(|kind| input(kind, (0.0f64..1e5).boxed())),
        first: Index,
        second: Index,
    ) {
        let whole = state_of(&input.predictions, &input.samples);
        let [a, b, c] = thirds(&input, first, second);
        let parts = merged(&[&c, &a, &b]);
        prop_assert_eq!(parts.latency().quantile(0.99), whole.latency().quantile(0.99));
        assert_same_metrics(&parts, &whole, 1e-9)?;
    }

    #[test]
    fn merged_latency_quantiles_are_within_one_percent(
        input in input(TaskKind::Binary, prop_oneof![Just(0.0), 1e-3f64..1e6].boxed()),
        first: Index,
        second: Index,
    ) {
        let [a, b, c] = thirds(&input, first, second);
        let state = merged(&[&a, &b, &c]);
        let mut latencies: Vec<f64> = input.predictions.iter().map(|r| r.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
            match state.latency().quantile(q) {
                None => prop_assert!(latencies.is_empty()),
                Some(estimate) => {
                    let exact = latencies[lower_quantile_rank(q, latencies.len() as u64) as usize - 1];
                    if exact == 0.0 {
                        prop_assert_eq!(estimate, 0.0);
                    } else {
                        prop_assert!(((estimate - exact) / exact).abs() <= LATENCY_RELATIVE_ACCURACY + 1e-12,
                            "q={} estimate={} exact={}", q, estimate, exact);
                    }
                }
            }
        }
    }

    #[test]
    fn bytes_round_trip_exactly(input in any_task().prop_flat_map(|kind| input(kind, (0.0f64..1e5).boxed()))) {
        let state = state_of(&input.predictions, &input.samples);
        let bytes = state.to_bytes();
        let decoded = WindowState::from_bytes(&bytes).expect("own bytes decode");
        prop_assert_eq!(&decoded, &state);
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    #[test]
    fn garbage_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut versioned = bytes.clone();
        versioned.insert(0, modelwatch::domain::FORMAT_VERSION);
        for candidate in [&bytes, &versioned] {
            if let Ok(state) = WindowState::from_bytes(candidate) {
                let _ = MetricSet::compute(&state, span(), None);
            }
        }
    }

    #[test]
    fn corrupted_state_bytes_never_panic(
        input in dyadic_input(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let state = state_of(&input.predictions, &input.samples);
        let mut bytes = state.to_bytes();
        for (position, value) in edits {
            let i = position.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = WindowState::from_bytes(&bytes) {
            // Whatever decodes is a usable state: it merges, computes and re-encodes.
            let mut copy = decoded.clone();
            let _ = copy.merge(&decoded);
            let _ = MetricSet::compute(&copy, span(), None);
            prop_assert_eq!(WindowState::from_bytes(&decoded.to_bytes()), Ok(decoded));
        }
    }
}

/// A small deterministic generator (xorshift) for inputs too large to draw with proptest.
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn serialized_size_stays_bounded_as_records_grow(seed in 1u64.., count in 1usize..60_000) {
        let mut random = XorShift(seed);
        let mut state = WindowState::new();
        for i in 0..count {
            let actual = random.next_f64() < 0.4;
            let failed = random.next_f64() < 0.02;
            // Latencies from 0.1 ms to 10 s, log-uniform.
            let latency_ms = 0.1 * 1e5f64.powf(random.next_f64());
            let record = PredictionRecord {
                timestamp: at(BASE_MS + i as i64),
                latency_ms,
                status: if failed { Status::Error } else { Status::Ok },
                error_type: failed.then(|| ["timeout", "oom"][i % 2].to_owned()),
                outcome: Outcome::Binary { predicted: Some(random.next_f64() < 0.5), actual: Some(actual), score: Some(random.next_f64()) },
            };
            state.fold_prediction(&record).expect("valid");
        }
        let size = state.to_bytes().len();
        prop_assert!(size <= 16 * 1024, "{} records serialize to {} bytes", count, size);
    }
}

#[test]
fn worst_case_multiclass_state_fits_a_dynamodb_item() {
    use modelwatch::domain::{
        LATENCY_MAX_BUCKETS, MAX_ERROR_TYPE_BYTES, MAX_ERROR_TYPES, MAX_LABEL_BYTES, MAX_LABELS,
        MAX_LATENCY_MS,
    };
    let mut state = WindowState::new();
    let label = |i: usize| format!("{i:0>width$}", width = MAX_LABEL_BYTES);
    // One label and one error type more than the caps: the overflow bucket is in use.
    for i in 0..=MAX_LABELS {
        let record = PredictionRecord {
            timestamp: at(BASE_MS + i as i64),
            latency_ms: 1e-3 * 1.02f64.powi(i as i32),
            status: Status::Ok,
            error_type: None,
            // Every score bin in use too.
            outcome: Outcome::Multiclass {
                predicted: Some(label((i + 1) % (MAX_LABELS + 1))),
                actual: Some(label(i)),
                score: Some(i as f64 / MAX_LABELS as f64),
            },
        };
        state.fold_prediction(&record).expect("valid");
    }
    // Latencies spanning every one of the sketch's buckets, down from the largest allowed.
    for i in 0..LATENCY_MAX_BUCKETS + 100 {
        let record = PredictionRecord {
            timestamp: at(BASE_MS),
            latency_ms: MAX_LATENCY_MS / 1.0203f64.powi(i as i32),
            status: Status::Ok,
            error_type: None,
            outcome: Outcome::Multiclass {
                predicted: Some(label(0)),
                actual: Some(label(0)),
                score: None,
            },
        };
        state.fold_prediction(&record).expect("valid");
    }
    for i in 0..=MAX_ERROR_TYPES {
        let record = PredictionRecord {
            timestamp: at(BASE_MS),
            latency_ms: 1.0,
            status: Status::Error,
            error_type: Some(format!("{i:0>width$}", width = MAX_ERROR_TYPE_BYTES)),
            outcome: Outcome::Multiclass {
                predicted: None,
                actual: None,
                score: None,
            },
        };
        state.fold_prediction(&record).expect("valid");
    }
    assert_eq!(state.error_type_overflow(), 1);
    let size = state.to_bytes().len();
    assert!(size < 400 * 1024 / 2, "worst case is {size} bytes");
    assert_eq!(
        WindowState::from_bytes(&state.to_bytes()).as_ref(),
        Ok(&state)
    );
}

#[test]
fn worst_case_regression_state_fits_a_dynamodb_item() {
    use modelwatch::domain::{LATENCY_MAX_BUCKETS, MAX_REGRESSION_MAGNITUDE};
    let mut state = WindowState::new();
    // Predicted values spanning every bucket of both signs, labeled, and a zero.
    for i in 0..LATENCY_MAX_BUCKETS + 100 {
        for sign in [-1.0, 1.0] {
            let value = sign * MAX_REGRESSION_MAGNITUDE / 1.0203f64.powi(i as i32);
            let record = PredictionRecord {
                timestamp: at(BASE_MS + i as i64),
                latency_ms: 1.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Regression {
                    predicted: Some(value),
                    actual: Some(value / 2.0),
                },
            };
            state.fold_prediction(&record).expect("valid");
        }
    }
    let zero = PredictionRecord {
        timestamp: at(BASE_MS),
        latency_ms: 1.0,
        status: Status::Ok,
        error_type: None,
        outcome: Outcome::Regression {
            predicted: Some(0.0),
            actual: None,
        },
    };
    state.fold_prediction(&zero).expect("valid");
    let bytes = state.to_bytes();
    assert!(
        bytes.len() < 32 * 1024,
        "worst case is {} bytes",
        bytes.len()
    );
    let decoded = WindowState::from_bytes(&bytes).expect("decodes");
    assert_eq!(decoded.to_bytes(), bytes);
    let Some(QualityStats::Regression(stats)) = decoded.quality() else {
        panic!("a regression state");
    };
    let served = stats.served().expect("values counted");
    assert_eq!(served.count(), 2 * (LATENCY_MAX_BUCKETS as u64 + 100) + 1);
    // Each side keeps at most its bucket cap (the step is a hair over γ: a few
    // buckets stay empty), the zero its own.
    let buckets = served.ordered_buckets();
    assert!(
        (2 * 2_000..=2 * LATENCY_MAX_BUCKETS + 1).contains(&buckets.len()),
        "{} buckets",
        buckets.len()
    );
    assert!(
        buckets.windows(2).all(|w| w[0].0 < w[1].0),
        "ascending keys"
    );
}

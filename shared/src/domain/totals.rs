//! The counter delta a minute rollup brings to its model's totals, and the cap on the
//! error types the totals name.
//!
//! Totals are cumulative since the model's first prediction and are exported as
//! Prometheus counters, one `ml_model_errors_total` series per error type. Every error
//! type the totals name is an attribute of one DynamoDB item and a series forever, so
//! they name at most [`MAX_TOTAL_ERROR_TYPES`], first come first served: a type counted
//! once keeps its counter; a new type past the cap is counted under
//! [`OVERFLOW_BUCKET`]. Untyped errors ([`UNTYPED_ERROR`]) and the overflow bucket are
//! not named types and do not count against the cap.
//!
//! The store keeps the cap atomically: a delta that names new types carries the number
//! of named types it was mapped against, and the store refuses it (answers `false`)
//! when another writer named types meanwhile; the caller re-reads and maps again.

use std::collections::{BTreeMap, BTreeSet};

use super::{OVERFLOW_BUCKET, WindowState};

/// Cumulative counters of a model since its first prediction, kept with the rollups
/// and changed only together with a minute rollup, so they never go backwards and
/// never count a prediction twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterTotals {
    /// Predictions with status ok.
    pub ok: u64,
    /// Predictions with status error.
    pub errors: u64,
    /// Errors by `error_type`: at most
    /// [`MAX_TOTAL_ERROR_TYPES`](MAX_TOTAL_ERROR_TYPES) named types
    /// (more only where totals counted them before the cap was kept), untyped errors
    /// under `"unknown"`, named types past the cap under
    /// [`OVERFLOW_BUCKET`](OVERFLOW_BUCKET).
    pub errors_by_type: std::collections::BTreeMap<String, u64>,
    /// Sum of all latencies in microseconds: the milliseconds with 3 decimals, exact.
    /// `u128`: 2^64 predictions at `MAX_LATENCY_MS` sum to 1.8·10^31 µs, where a
    /// `u64` would overflow after 1.8·10^7 predictions at that latency.
    pub latency_sum_us: u128,
    /// The named error types recorded against the cap (in a [`CounterDelta`]: the
    /// ones it records). Totals counted before the cap was kept may name types not
    /// recorded here; they keep their counters.
    pub named_error_types: std::collections::BTreeSet<String>,
}

/// What a minute rollup adds to its model's [`CounterTotals`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterDelta {
    /// The counts to add (each error type one the totals name, one recorded by this
    /// delta, `"unknown"` or the overflow bucket) and the named types to record.
    pub add: CounterTotals,
    /// How many named types the totals had recorded when this delta was mapped:
    /// a delta that records types is refused unless the record still holds this many
    /// (no other writer named a type meanwhile), so the cap holds with two writers.
    pub named_error_types_read: usize,
}
/// The `error_type` label of errors that named none.
pub const UNTYPED_ERROR: &str = "unknown";

/// Most named error types a model's counter totals keep (a type beyond them is counted
/// under [`OVERFLOW_BUCKET`]).
pub const MAX_TOTAL_ERROR_TYPES: usize = 64;

/// Whether `error_type` is a named type (counted against the cap).
fn is_named(error_type: &str) -> bool {
    error_type != UNTYPED_ERROR && error_type != OVERFLOW_BUCKET
}

/// Latency sum in whole microseconds (ms rounded to 3 decimals). A state's sum is at
/// most 2^64 × `MAX_LATENCY_MS` = 1.8·10^28 ms, 1.8·10^31 µs: within `u128`.
fn micros(sum_ms: f64) -> u128 {
    // `as` saturates, and maps NaN to 0; a valid state's sum is finite and ≥ 0.
    (sum_ms * 1000.0).round() as u128
}

/// The counters `after` adds to `before` (a re-rolled minute only ever grows). The
/// latency part is the difference of the two sums each rounded to µs, so a minute
/// adds exactly its own rounded sum to the totals over all its re-rolls.
///
/// Error types: each named type and the untyped errors add what they grew by; the
/// overflow bucket adds the rest of the errors' growth. A re-rolled minute can move a
/// named type into the bucket (a type sorting before it took its name, see
/// [`WindowState::errors_by_type`]): its errors were counted under its name already,
/// and a counter never goes back, so the bucket grows by what is new only. The types'
/// deltas therefore always add up to the errors' delta — no error counted twice.
pub fn counter_delta(before: &WindowState, after: &WindowState) -> CounterTotals {
    let ok = |s: &WindowState| s.predictions() - s.errors().min(s.predictions());
    let named = |s: &WindowState| -> BTreeMap<String, u64> {
        s.errors_by_type()
            .filter(|(t, _)| *t != OVERFLOW_BUCKET)
            .map(|(t, n)| (t.to_owned(), n))
            .collect()
    };
    let errors = after.errors().saturating_sub(before.errors());
    let named_before = named(before);
    let mut errors_by_type: BTreeMap<String, u64> = named(after)
        .into_iter()
        .filter_map(|(t, n)| {
            let added = n.saturating_sub(named_before.get(&t).copied().unwrap_or(0));
            (added > 0).then_some((t, added))
        })
        .collect();
    let untyped = after
        .untyped_errors()
        .saturating_sub(before.untyped_errors());
    if untyped > 0 {
        errors_by_type.insert(UNTYPED_ERROR.to_owned(), untyped);
    }
    let attributed: u64 = errors_by_type.values().sum();
    let overflow = errors.saturating_sub(attributed);
    if overflow > 0 {
        errors_by_type.insert(OVERFLOW_BUCKET.to_owned(), overflow);
    }
    CounterTotals {
        ok: ok(after).saturating_sub(ok(before)),
        errors,
        errors_by_type,
        latency_sum_us: micros(after.latency().sum_ms())
            .saturating_sub(micros(before.latency().sum_ms())),
        named_error_types: BTreeSet::new(),
    }
}

/// Whether writing `delta` needs the stored totals first: only a delta that names
/// error types can meet the cap.
pub fn names_error_types(delta: &CounterTotals) -> bool {
    delta.errors_by_type.keys().any(|t| is_named(t))
}

/// Maps `delta`'s error types onto what `totals` (as read) may count: a type the
/// totals name keeps its own counter; new types (in name order) get one while fewer
/// than [`MAX_TOTAL_ERROR_TYPES`] are named, and are recorded in the delta's
/// `named_error_types`; the rest are added to [`OVERFLOW_BUCKET`]. Totals kept before
/// the cap may name types they never recorded: a delta that records a new type
/// records those too, so the record holds every named type from then on.
pub fn cap_error_types(delta: CounterTotals, totals: &CounterTotals) -> CounterDelta {
    let counted: BTreeSet<&str> = totals
        .errors_by_type
        .keys()
        .map(String::as_str)
        .filter(|t| is_named(t))
        .chain(totals.named_error_types.iter().map(String::as_str))
        .collect();
    let mut room = MAX_TOTAL_ERROR_TYPES.saturating_sub(counted.len());
    let mut add = CounterTotals {
        errors_by_type: BTreeMap::new(),
        named_error_types: BTreeSet::new(),
        ..delta
    };
    for (error_type, count) in delta.errors_by_type {
        let bucket = if !is_named(&error_type) || counted.contains(error_type.as_str()) {
            error_type
        } else if room > 0 {
            room -= 1;
            add.named_error_types.insert(error_type.clone());
            error_type
        } else {
            OVERFLOW_BUCKET.to_owned()
        };
        *add.errors_by_type.entry(bucket).or_default() += count;
    }
    if !add.named_error_types.is_empty() {
        add.named_error_types.extend(
            counted
                .iter()
                .filter(|t| !totals.named_error_types.contains(**t))
                .map(|t| (*t).to_owned()),
        );
    }
    CounterDelta {
        add,
        named_error_types_read: totals.named_error_types.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Outcome, PredictionRecord, Status};

    fn delta(types: &[(&str, u64)]) -> CounterTotals {
        CounterTotals {
            ok: 3,
            errors: types.iter().map(|(_, n)| n).sum(),
            errors_by_type: types.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            latency_sum_us: 12_345,
            named_error_types: BTreeSet::new(),
        }
    }

    /// Totals that name `named` types `t0`, `t1`, … (all recorded) plus `unknown`.
    fn totals(named: usize) -> CounterTotals {
        let names: Vec<String> = (0..named).map(|i| format!("t{i:02}")).collect();
        CounterTotals {
            errors_by_type: names
                .iter()
                .map(|t| (t.clone(), 1))
                .chain([(UNTYPED_ERROR.to_owned(), 4)])
                .collect(),
            named_error_types: names.into_iter().collect(),
            ..CounterTotals::default()
        }
    }

    #[test]
    fn known_types_keep_their_counters_and_new_ones_are_recorded() {
        let mapped = cap_error_types(
            delta(&[("t01", 2), ("timeout", 1), (UNTYPED_ERROR, 5)]),
            &totals(3),
        );
        assert_eq!(mapped.named_error_types_read, 3);
        assert_eq!(
            mapped.add.errors_by_type,
            [
                ("t01".to_owned(), 2),
                ("timeout".to_owned(), 1),
                (UNTYPED_ERROR.to_owned(), 5)
            ]
            .into()
        );
        assert_eq!(
            mapped.add.named_error_types,
            ["timeout".to_owned()].into(),
            "only the new type is recorded"
        );
        assert_eq!((mapped.add.ok, mapped.add.errors), (3, 8));
        assert_eq!(mapped.add.latency_sum_us, 12_345);
    }

    #[test]
    fn new_types_past_the_cap_count_under_the_overflow_bucket() {
        let mapped = cap_error_types(
            delta(&[
                ("b-new", 1),
                ("a-new", 2),
                ("t05", 3),
                ("c-new", 4),
                (OVERFLOW_BUCKET, 5),
            ]),
            &totals(MAX_TOTAL_ERROR_TYPES - 1),
        );
        // One slot left: the first new type by name takes it.
        assert_eq!(mapped.add.named_error_types, ["a-new".to_owned()].into());
        assert_eq!(
            mapped.add.errors_by_type,
            [
                ("a-new".to_owned(), 2),
                ("t05".to_owned(), 3),
                (OVERFLOW_BUCKET.to_owned(), 1 + 4 + 5),
            ]
            .into()
        );
        assert_eq!(mapped.add.errors, 15, "every error still counted");
        let full = cap_error_types(delta(&[("z", 1)]), &totals(MAX_TOTAL_ERROR_TYPES));
        assert!(full.add.named_error_types.is_empty());
        assert_eq!(
            full.add.errors_by_type,
            [(OVERFLOW_BUCKET.to_owned(), 1)].into()
        );
    }

    #[test]
    fn untyped_and_overflow_do_not_count_against_the_cap() {
        let mut stored = totals(MAX_TOTAL_ERROR_TYPES - 1);
        stored.errors_by_type.insert(OVERFLOW_BUCKET.to_owned(), 9);
        let mapped = cap_error_types(delta(&[("fresh", 1)]), &stored);
        assert_eq!(mapped.add.named_error_types, ["fresh".to_owned()].into());
    }

    #[test]
    fn totals_kept_before_the_cap_keep_their_types_and_record_them_with_the_next_new_one() {
        // 70 types counted before the cap, none recorded.
        let mut legacy = totals(70);
        legacy.named_error_types.clear();
        let over = cap_error_types(delta(&[("t69", 1), ("brand-new", 1)]), &legacy);
        assert_eq!(
            over.add.errors_by_type,
            [("t69".to_owned(), 1), (OVERFLOW_BUCKET.to_owned(), 1)].into()
        );
        assert!(over.add.named_error_types.is_empty(), "nothing new fits");

        let mut few = totals(2);
        few.named_error_types.clear();
        let mapped = cap_error_types(delta(&[("brand-new", 1)]), &few);
        assert_eq!(mapped.named_error_types_read, 0);
        assert_eq!(
            mapped.add.named_error_types,
            ["brand-new", "t00", "t01"].map(str::to_owned).into(),
            "the record catches up with the counters"
        );
    }

    #[test]
    fn deltas_that_name_no_type_need_no_totals() {
        assert!(!names_error_types(&delta(&[(UNTYPED_ERROR, 1)])));
        assert!(!names_error_types(&delta(&[(OVERFLOW_BUCKET, 1)])));
        assert!(names_error_types(&delta(&[("timeout", 1)])));
    }

    #[test]
    fn latency_sums_round_to_microseconds() {
        assert_eq!(micros(0.0), 0);
        assert_eq!(micros(0.0004), 0);
        assert_eq!(micros(0.0006), 1);
        assert_eq!(micros(40.5), 40_500);
        assert_eq!(micros(1e9), 1_000_000_000_000);
        // The largest sum a state can hold: 2^64 predictions at the door's bound.
        let largest = micros(18_446_744_073_709_551_616.0 * crate::domain::MAX_LATENCY_MS);
        assert!(largest > u128::from(u64::MAX) && largest < u128::MAX / 1_000_000);
    }

    #[test]
    fn a_type_pushed_into_the_window_bucket_by_a_re_roll_is_not_counted_again() {
        let failed = |error_type: &str| PredictionRecord {
            timestamp: chrono::DateTime::UNIX_EPOCH,
            latency_ms: 1.0,
            status: Status::Error,
            error_type: Some(error_type.to_owned()),
            outcome: Outcome::Regression {
                predicted: None,
                actual: None,
            },
        };
        let mut before = WindowState::default();
        for i in 0..crate::domain::MAX_ERROR_TYPES {
            before
                .fold_prediction(&failed(&format!("b{i:03}")))
                .expect("fold");
        }
        // Late data: "a" sorts first, so "b255" (counted under its name before) moves
        // into the window's bucket.
        let mut after = before.clone();
        after.fold_prediction(&failed("a")).expect("fold");
        assert_eq!(after.error_type_overflow(), 1);
        let delta = counter_delta(&before, &after);
        assert_eq!(delta.errors, 1);
        assert_eq!(delta.errors_by_type, [("a".to_owned(), 1)].into());
        // And a type that is new and beyond the window's names is the bucket's.
        let mut later = after.clone();
        later.fold_prediction(&failed("zzz")).expect("fold");
        assert_eq!(
            counter_delta(&after, &later).errors_by_type,
            [(OVERFLOW_BUCKET.to_owned(), 1)].into()
        );
    }
}

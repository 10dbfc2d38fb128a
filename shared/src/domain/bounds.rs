//! What a record may carry: the range of every number and the reserved names.
//!
//! These bounds are the one definition used by the batch contract (a value outside is
//! refused at the door with a 400 naming the field) and by the fold (which refuses the
//! same values, so a state can never hold them). They are chosen so that every sum a
//! [`WindowState`](super::WindowState) keeps stays finite for any number of records
//! (at most 2^64), and so that the counter totals kept in DynamoDB stay within its
//! number type (38 significant digits, magnitude below 10^126).

/// Largest accepted `latency_ms` (10^9 ms ≈ 11.6 days). With at most 2^64 records the
/// latency sum stays below 1.9·10^28 ms, which DynamoDB holds with 3 decimals (µs).
pub const MAX_LATENCY_MS: f64 = 1e9;

/// Largest accepted magnitude of a regression `predicted` or `actual` (10^100): squared
/// errors stay below 4·10^200 and their sum over 2^64 records below 10^221.
pub const MAX_REGRESSION_MAGNITUDE: f64 = 1e100;

/// Smallest accepted magnitude of a non-zero regression value (10^-100): the
/// percentage error `|e / actual|` of one record stays below 2·10^200.
pub const MIN_REGRESSION_MAGNITUDE: f64 = 1e-100;

/// Largest accepted `queue_depth` sample (10^12).
pub const MAX_QUEUE_DEPTH: f64 = 1e12;

/// Largest accepted `cache_hits` / `cache_misses` of one sample (10^9); a window would
/// need 1.8·10^10 such samples before its u64 counters saturate.
pub const MAX_CACHE_COUNT: u64 = 1_000_000_000;

/// The reserved name of the overflow bucket: class labels beyond
/// [`MAX_LABELS`](super::MAX_LABELS) and error types beyond
/// [`MAX_ERROR_TYPES`](super::MAX_ERROR_TYPES) are counted under it. A record may not
/// use it as a label or an error type.
pub const OVERFLOW_BUCKET: &str = "__other__";

/// Why a regression value is refused, if it is: non-finite, beyond
/// [`MAX_REGRESSION_MAGNITUDE`], or non-zero below [`MIN_REGRESSION_MAGNITUDE`].
pub fn regression_value_problem(value: f64) -> Option<&'static str> {
    let magnitude = value.abs();
    if !value.is_finite() {
        Some("must be finite")
    } else if magnitude > MAX_REGRESSION_MAGNITUDE {
        Some("must be within [-1e100, 1e100]")
    } else if magnitude != 0.0 && magnitude < MIN_REGRESSION_MAGNITUDE {
        Some("must be 0 or of magnitude at least 1e-100")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_values_at_and_beyond_the_bounds() {
        for ok in [0.0, -0.0, 1e100, -1e100, 1e-100, -1e-100, 3.5] {
            assert_eq!(regression_value_problem(ok), None, "{ok}");
        }
        for bad in [
            f64::NAN,
            f64::INFINITY,
            1.0000001e100,
            -1e101,
            9.9e-101,
            -1e-300,
            f64::MIN_POSITIVE,
        ] {
            assert!(regression_value_problem(bad).is_some(), "{bad}");
        }
    }
}

//! A few thousand fuzz bodies through the batch parser on every `cargo test`: the same
//! generator and checks as the `parser_fuzz` bench (the long run), with smaller bodies
//! so that a debug build stays within seconds. No panic, every check passed, and no
//! body past 64 MB of peak heap (counting allocator).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use modelwatch::ingest::{BatchLimits, parse_batch};

#[path = "../benches/parser_fuzz/fuzzing.rs"]
mod fuzzing;
#[path = "../benches/support/mod.rs"]
mod support;

use fuzzing::{Bodies, check};
use support::{LIVE, PEAK};

#[test]
fn generated_bodies_never_panic_and_pass_every_check() {
    let now: DateTime<Utc> = "2026-11-28T10:15:00Z".parse().expect("a time");
    let limits = BatchLimits::default();
    let mut bodies = Bodies::new(20_261_128, now, 256 * 1024);
    let mut max_peak = 0;
    for i in 0..6_000 {
        let body = bodies.next_body();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let answer = catch_unwind(AssertUnwindSafe(|| parse_batch(&body, now, &limits)))
            .unwrap_or_else(|_| panic!("body {i} panicked: {}", String::from_utf8_lossy(&body)));
        max_peak = max_peak.max(PEAK.load(Ordering::Relaxed).saturating_sub(before));
        if let Err(why) = check(&body, &answer, now, &limits) {
            panic!("body {i}: {why}: {}", String::from_utf8_lossy(&body));
        }
    }
    assert!(max_peak <= 64 * 1024 * 1024, "peak heap {max_peak} bytes");
}

#[test]
fn six_megabytes_of_empty_objects_are_refused_within_the_memory_bound() {
    use modelwatch::ingest::BatchRejection;
    let now: DateTime<Utc> = "2026-11-28T10:15:00Z".parse().expect("a time");
    // {"predictions":[{},{},…]}: 2,097,085 objects, the body that once took a gigabyte.
    let mut body = b"{\"predictions\":[".to_vec();
    while body.len() + 3 < 6 * 1024 * 1024 - 2 {
        body.extend_from_slice(b"{},");
    }
    body.pop();
    body.extend_from_slice(b"]}");
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let answer = parse_batch(&body, now, &BatchLimits::default());
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        matches!(&answer, Err(BatchRejection::TooLarge(p)) if p.field == "predictions"),
        "{answer:?}"
    );
    assert!(peak <= 64 * 1024 * 1024, "peak heap {peak} bytes");
}

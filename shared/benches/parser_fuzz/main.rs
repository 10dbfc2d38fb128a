//! Fuzzing of the batch parser on stable Rust: generated and mutated bodies
//! ([`fuzzing`]) through `parse_batch`, each one checked for panics (caught, the body
//! saved), for the bounds of what was accepted and the JSON verdict
//! ([`fuzzing::check`]), and for its peak heap (the body's own bytes included; goal
//! ≤ 64 MB), measured with the counting allocator. Deterministic by seed.
//!
//! `cargo bench -p modelwatch --bench parser_fuzz -- [count] [seed]` (default 100,000
//! bodies, seed 1). Failing bodies are written to `target/parser_fuzz/`; the exit
//! status is non-zero when any body failed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use modelwatch::ingest::{BatchLimits, parse_batch};

mod fuzzing;
#[path = "../support/mod.rs"]
mod support;

use fuzzing::{Answer, Bodies, check};
use support::{LIVE, PEAK};

/// The goal for any body within the size limit.
const PEAK_GOAL: usize = 64 * 1024 * 1024;

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let count = numbers.first().copied().unwrap_or(100_000);
    let seed = numbers.get(1).copied().unwrap_or(1);
    let now: DateTime<Utc> = "2026-11-28T10:15:00Z".parse().expect("a time");
    let limits = BatchLimits::default();
    let mut bodies = Bodies::new(seed, now, limits.max_body_bytes);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/parser_fuzz");

    let started = Instant::now();
    let mut answers: BTreeMap<Answer, u64> = BTreeMap::new();
    let (mut panics, mut failures, mut bytes) = (0_u64, 0_u64, 0_u64);
    let (mut max_peak, mut max_peak_body) = (0_usize, 0_u64);
    for i in 0..count {
        let body = bodies.next_body();
        bytes += body.len() as u64;
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let answer = catch_unwind(AssertUnwindSafe(|| parse_batch(&body, now, &limits)));
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before) + body.len();
        if peak > max_peak {
            (max_peak, max_peak_body) = (peak, i);
        }
        let failure = match &answer {
            Err(_) => {
                panics += 1;
                Some("panic".to_owned())
            }
            Ok(_) if peak > PEAK_GOAL && body.len() <= limits.max_body_bytes => {
                Some(format!("peak heap {peak} bytes"))
            }
            Ok(answer) => match check(&body, answer, now, &limits) {
                Ok(kind) => {
                    *answers.entry(kind).or_default() += 1;
                    None
                }
                Err(why) => Some(why),
            },
        };
        if let Some(why) = failure {
            failures += 1;
            let path = out.join(format!("failure-{seed}-{i}.json"));
            let saved = std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, &body));
            eprintln!(
                "body {i} (seed {seed}): {why}; {}",
                match saved {
                    Ok(()) => format!("saved to {}", path.display()),
                    Err(e) => format!("not saved: {e}"),
                }
            );
        }
        if (i + 1) % 1_000_000 == 0 {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{} bodies, {secs:.0} s, {:.0} bodies/s",
                i + 1,
                (i + 1) as f64 / secs
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parser fuzz: {count} bodies (seed {seed}, {:.1} GB) in {secs:.1} s = {:.0} bodies/s",
        bytes as f64 / 1e9,
        count as f64 / secs
    );
    println!("answers: {answers:?}");
    println!(
        "panics: {panics}; failed checks: {}; max peak heap {:.1} MB (body {max_peak_body}; goal ≤ {} MB)",
        failures - panics,
        max_peak as f64 / 1e6,
        PEAK_GOAL / (1024 * 1024)
    );
    if failures > 0 {
        std::process::exit(1);
    }
}

//! Segment slices of a batch: one per key, caps with their overflow slices, and a
//! registry asked once per pair and day.

use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::json;

use super::*;
use crate::adapters::faults::{FaultPlan, Faulty, Op};
use crate::adapters::memory::MemoryModelRegistry;
use crate::ingest::{BatchLimits, parse_batch};
use crate::testing::{at, model, tenant};

const NOW: &str = "2026-11-28T12:34:56Z";

/// A regression batch whose prediction `i` carries `segments[i]`.
fn batch(segments: &[serde_json::Value]) -> ValidBatch {
    let predictions: Vec<_> = segments
        .iter()
        .map(|segment| {
            json!({"timestamp": NOW, "latency_ms": 5, "status": "ok", "predicted": 1.0,
                   "segment": segment})
        })
        .collect();
    let body = json!({"model_id": "m", "batch_id": "b", "task": "regression",
                      "predictions": predictions});
    parse_batch(
        body.to_string().as_bytes(),
        at(NOW),
        &BatchLimits::default(),
    )
    .expect("valid")
}

fn texts<'a>(slices: impl Iterator<Item = &'a Slice>) -> Vec<String> {
    slices.map(Slice::to_string).collect()
}

#[tokio::test]
async fn each_key_is_a_slice_and_the_caps_overflow_into_other() {
    let registry = MemoryModelRegistry::default();
    let admission = SegmentAdmission::new(SegmentCaps {
        keys: 2,
        values_per_day: 2,
    });
    let (t, m) = (tenant("t"), model("m"));
    let slices_of = |batch: ValidBatch| {
        let (registry, admission, t, m) = (&registry, &admission, &t, &m);
        async move {
            let segments = admission
                .slices_of(registry, ModelRef::new(t, m), &batch, at(NOW))
                .await
                .expect("recorded");
            (0..batch.predictions.len() + 1)
                .map(|i| texts(segments.of(i)))
                .collect::<Vec<_>>()
        }
    };
    // The first batch fills both caps: two keys, two regions. Its pairs are recorded
    // concurrently, but none of them can overflow, so what is kept is known.
    let first = slices_of(batch(&[
        json!({"region": "eu", "channel": "app"}),
        json!({"region": "us"}),
    ]))
    .await;
    assert_eq!(
        first,
        [
            vec!["segment:channel:app", "segment:region:eu"],
            vec!["segment:region:us"],
            vec![],
        ]
    );
    let second = slices_of(batch(&[
        json!({"region": "eu", "channel": "app"}),
        // A third region of the day, and two keys past the cap of two: one slice for
        // the region's overflow, one for all the keys past the cap together.
        json!({"region": "ap", "tier": "gold", "plan": "free"}),
        json!({}),
        // The channel's second value is still within its cap.
        json!({"channel": "web"}),
    ]))
    .await;
    assert_eq!(
        second,
        [
            vec!["segment:channel:app", "segment:region:eu"],
            vec!["segment:__other__:__other__", "segment:region:__other__"],
            vec![],
            vec!["segment:channel:web"],
            // Past the last prediction: nothing.
            vec![],
        ]
    );
}

#[tokio::test]
async fn a_known_pair_is_not_asked_again_the_same_day() {
    let plan = FaultPlan::new(7).shared();
    let registry = Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan));
    let admission = SegmentAdmission::default();
    let (t, m) = (tenant("t"), model("m"));
    let send = |segments: Vec<serde_json::Value>, now| {
        let batch = batch(&segments);
        let (registry, admission, t, m) = (&registry, &admission, &t, &m);
        async move {
            admission
                .slices_of(registry, ModelRef::new(t, m), &batch, now)
                .await
                .expect("recorded")
        }
    };
    let eu = || json!({"region": "eu", "channel": "app"});
    let first = send(vec![eu(), eu(), json!({"region": "us"})], at(NOW)).await;
    assert_eq!(
        texts(first.slices.iter()),
        [
            "segment:channel:app",
            "segment:region:eu",
            "segment:region:us"
        ]
    );
    assert_eq!(
        texts(first.of(1)),
        ["segment:channel:app", "segment:region:eu"]
    );
    assert_eq!(plan.counts().of(Op::RECORD_SEGMENT), 3);
    let again = send(vec![eu()], at(NOW) + TimeDelta::hours(1)).await;
    assert_eq!(
        texts(again.of(0)),
        ["segment:channel:app", "segment:region:eu"]
    );
    assert_eq!(plan.counts().of(Op::RECORD_SEGMENT), 3, "remembered");
    // Another day of events asks again: the values' caps are per day. The day before
    // is still remembered (a late batch of it asks nothing).
    send(vec![eu()], at(NOW) + TimeDelta::days(1)).await;
    assert_eq!(plan.counts().of(Op::RECORD_SEGMENT), 5);
    send(vec![eu()], at(NOW)).await;
    assert_eq!(plan.counts().of(Op::RECORD_SEGMENT), 5);
}

#[tokio::test]
async fn a_batch_without_segments_asks_nothing_and_folds_nothing() {
    let plan = FaultPlan::new(7).shared();
    let registry = Faulty::new(MemoryModelRegistry::default(), Arc::clone(&plan));
    let (t, m) = (tenant("t"), model("m"));
    let batch = batch(&[json!({}), json!({})]);
    let segments = SegmentAdmission::default()
        .slices_of(&registry, ModelRef::new(&t, &m), &batch, at(NOW))
        .await
        .expect("nothing to record");
    assert_eq!(segments, BatchSegments::default());
    assert!(segments.partials(&batch).expect("fold").is_empty());
    assert_eq!(plan.counts().of(Op::RECORD_SEGMENT), 0);
}

#[tokio::test]
async fn each_slice_folds_exactly_its_predictions() {
    let registry = MemoryModelRegistry::default();
    let (t, m) = (tenant("t"), model("m"));
    let regions = ["eu", "us", "eu", "ap", "eu"];
    let segments: Vec<_> = regions.iter().map(|r| json!({"region": r})).collect();
    let batch = batch(&segments);
    let slices = SegmentAdmission::default()
        .slices_of(&registry, ModelRef::new(&t, &m), &batch, at(NOW))
        .await
        .expect("recorded");
    let states = slices.partials(&batch).expect("fold");
    let counts: Vec<(String, u64)> = states
        .iter()
        .map(|(slice, minutes)| {
            let total = minutes.values().map(|s| s.predictions()).sum();
            (slice.to_string(), total)
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("segment:region:ap".to_owned(), 1),
            ("segment:region:eu".to_owned(), 3),
            ("segment:region:us".to_owned(), 1)
        ]
    );
}

#[test]
fn dedup_keeps_each_index_once_in_order() {
    let mut items = [1, 1, 2, 5, 5, 5, 9];
    let kept = dedup_sorted(&mut items);
    assert_eq!(&items[..kept], [1, 2, 5, 9]);
    assert_eq!(dedup_sorted(&mut []), 0);
}

#[tokio::test]
async fn a_retry_from_another_container_gets_the_same_overflow() {
    let registry = MemoryModelRegistry::default();
    let caps = SegmentCaps {
        keys: 4,
        values_per_day: 1,
    };
    let (t, m) = (tenant("t"), model("m"));
    let slices = |batch: ValidBatch| {
        let (registry, t, m) = (&registry, &t, &m);
        async move {
            let segments = SegmentAdmission::new(caps)
                .slices_of(registry, ModelRef::new(t, m), &batch, at(NOW))
                .await
                .expect("recorded");
            texts(segments.of(0))
        }
    };
    assert_eq!(
        slices(batch(&[json!({"region": "eu"})])).await,
        ["segment:region:eu"]
    );
    // The day's one value is taken: `us` overflows, and stays so for a retry of its
    // batch, whichever container takes it and whenever (the day is its events').
    for _ in 0..2 {
        assert_eq!(
            slices(batch(&[json!({"region": "us"})])).await,
            ["segment:region:__other__"]
        );
    }
}

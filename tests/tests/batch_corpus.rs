//! The bad-batch corpus against the validator in-process (no stack needed): every
//! case is refused with the expected kind and a problem naming the expected field.
//! `ingest.rs` sends the same corpus through the real binary.

use chrono::Utc;
use modelwatch::ingest::{BatchLimits, BatchRejection, parse_batch};
use modelwatch_e2e::{bad_batches, sample_batch};

#[test]
fn every_bad_batch_is_refused_naming_its_field() {
    let now = Utc::now();
    let cases = bad_batches(now);
    assert!(cases.len() >= 40);
    for case in cases {
        let rejection =
            parse_batch(&case.body, now, &BatchLimits::default()).expect_err(&case.name);
        let (status, fields) = match &rejection {
            BatchRejection::TooLarge(problem) => (413, vec![problem.field.clone()]),
            BatchRejection::Invalid { problems, .. } => {
                (400, problems.iter().map(|p| p.field.clone()).collect())
            }
        };
        assert_eq!(status, case.status, "{}: {rejection:?}", case.name);
        assert!(
            fields.contains(&case.field),
            "{}: expected {} among {fields:?}",
            case.name,
            case.field
        );
    }
}

#[test]
fn the_sample_batch_is_valid() {
    let now = Utc::now();
    let body = sample_batch(now).to_string();
    let batch = parse_batch(body.as_bytes(), now, &BatchLimits::default()).expect("valid");
    assert_eq!(batch.predictions.len(), 3);
    assert_eq!(batch.resources.len(), 1);
}

use super::*;

fn now() -> DateTime<Utc> {
    "2026-11-28T10:15:00Z".parse().expect("time")
}

fn parse(body: &str) -> Result<ValidBatch, BatchRejection> {
    parse_batch(body.as_bytes(), now(), &BatchLimits::default())
}

fn problems(body: &str) -> (Vec<Problem>, bool) {
    match parse(body) {
        Err(BatchRejection::Invalid {
            problems,
            truncated,
        }) => (problems, truncated),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn labels_of_each_task_become_typed_outcomes() {
    let batch = parse(
        r#"{"model_id":"m","batch_id":"b","task":"multiclass_classification","predictions":[
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":7,"actual":"7"},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":"cat","score":0.75}]}"#,
    )
    .expect("valid");
    assert_eq!(
        batch.predictions[0].record.outcome,
        Outcome::Multiclass {
            predicted: Some("7".into()),
            actual: Some("7".into()),
            score: None,
        }
    );
    assert_eq!(
        batch.predictions[1].record.outcome,
        Outcome::Multiclass {
            predicted: Some("cat".into()),
            actual: None,
            score: Some(0.75),
        }
    );
    let batch = parse(
        r#"{"model_id":"m","batch_id":"b","task":"binary_classification","predictions":[
            {"timestamp":"2026-11-28T10:14:59+01:00","latency_ms":0,"status":"ok","predicted":true,"actual":0,"score":1}]}"#,
    )
    .expect("valid");
    let record = &batch.predictions[0].record;
    assert_eq!(
        record.outcome,
        Outcome::Binary {
            predicted: Some(true),
            actual: Some(false),
            score: Some(1.0)
        }
    );
    assert_eq!(
        record.timestamp,
        "2026-11-28T09:14:59Z".parse::<DateTime<Utc>>().expect("t")
    );
    let batch = parse(
        r#"{"model_id":"m","batch_id":"b","task":"regression","resources":null,"predictions":[
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":2.5,"status":"ok","predicted":-1.5}]}"#,
    )
    .expect("valid");
    assert_eq!(
        batch.predictions[0].record.outcome,
        Outcome::Regression {
            predicted: Some(-1.5),
            actual: None
        }
    );
    assert!(batch.resources.is_empty());
}

#[test]
fn the_fast_timestamp_path_agrees_with_chrono() {
    for text in [
        "2026-11-28T10:14:59Z",
        "2026-11-28T10:14:59.1Z",
        "2026-11-28T10:14:59.120Z",
        "2026-11-28T10:14:59.123456789Z",
        "2024-02-29T23:59:59.999Z",
    ] {
        let chrono = DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(parse_utc_fast(text), Some(chrono), "{text}");
    }
    for text in [
        "2026-11-28T10:14:59+01:00",
        "2026-02-30T10:14:59Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:14:59.Z",
        "2026-11-28T10:14:59.1234567890Z",
        "2026-11-28 10:14:59Z",
        "2026-1a-28T10:14:59Z",
        "2026-11-28T10:14:59",
    ] {
        assert_eq!(parse_utc_fast(text), None, "{text}");
    }
}

#[test]
fn every_problem_is_listed_with_its_index() {
    let (problems, truncated) = problems(
        r#"{"model_id":"m","batch_id":"b","task":"regression","predictions":[
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":-1,"status":"ok","predicted":1},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":1},
            {"timestamp":"nope","latency_ms":1,"status":"maybe","predicted":1}]}"#,
    );
    assert!(!truncated);
    let listed: Vec<(Option<usize>, &str)> = problems
        .iter()
        .map(|p| (p.index, p.field.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (Some(0), "predictions[0].latency_ms"),
            (Some(2), "predictions[2].timestamp"),
            (Some(2), "predictions[2].status"),
        ]
    );
}

#[test]
fn the_list_stops_at_one_hundred_problems_and_says_so() {
    let record =
        r#"{"timestamp":"2026-11-28T10:14:59Z","latency_ms":-1,"status":"ok","predicted":1}"#;
    let body = format!(
        r#"{{"model_id":"m","batch_id":"b","task":"regression","predictions":[{}]}}"#,
        vec![record; 150].join(",")
    );
    let (problems, truncated) = problems(&body);
    assert_eq!(problems.len(), MAX_PROBLEMS);
    assert!(truncated);
    assert_eq!(problems[99].field, "predictions[99].latency_ms");
}

#[test]
fn limits_are_configurable() {
    let limits = BatchLimits {
        max_predictions: 1,
        max_age: TimeDelta::hours(1),
        ..BatchLimits::default()
    };
    let body = r#"{"model_id":"m","batch_id":"b","task":"regression","predictions":[
        {"timestamp":"2026-11-28T08:00:00Z","latency_ms":1,"status":"ok","predicted":1}]}"#;
    let err = parse_batch(body.as_bytes(), now(), &limits).expect_err("too old");
    assert!(matches!(err, BatchRejection::Invalid { ref problems, .. }
        if problems[0].reason.contains("1 hours")));
    let two = body.replace("}]}", "},{\"timestamp\":\"2026-11-28T10:00:00Z\",\"latency_ms\":1,\"status\":\"ok\",\"predicted\":1}]}");
    assert!(matches!(
        parse_batch(two.as_bytes(), now(), &limits),
        Err(BatchRejection::TooLarge(_))
    ));
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

fn field_reasons(problems: &[Problem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| (p.field.as_str(), p.reason.as_str()))
        .collect()
}

#[test]
fn the_task_may_follow_the_records_it_decides_the_checks_of() {
    let (problems, _) = problems(
        r#"{"predictions":[{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":"x"}],
            "model_id":"m","batch_id":"b","task":"regression"}"#,
    );
    assert_eq!(fields(&problems), ["predictions[0].predicted"]);
    assert_eq!(problems[0].reason, "must be a number, found a string");
}

#[test]
fn a_score_is_a_classifier_probability() {
    let record = |task: &str, predicted: &str, score: &str| {
        format!(
            r#"{{"model_id":"m","batch_id":"b","task":"{task}","predictions":[{{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":{predicted},"score":{score}}}]}}"#
        )
    };
    let (listed, _) = problems(&record("regression", "1.5", "0.5"));
    assert_eq!(
        field_reasons(&listed),
        [(
            "predictions[0].score",
            "is only allowed for binary_classification and multiclass_classification"
        )]
    );
    for task in ["multiclass_classification", "binary_classification"] {
        let (listed, _) = problems(&record(task, "1", "1.5"));
        assert_eq!(
            field_reasons(&listed),
            [("predictions[0].score", "must be within [0, 1]")],
            "{task}"
        );
    }
}

#[test]
fn problems_come_batch_first_then_record_by_record_in_body_order() {
    let (problems, truncated) = problems(
        r#"{"resources":[{"bar":1,"timestamp":"2026-11-28T10:14:59Z"},7],
            "predictions":[{"foo":[1,{"a":2}],"timestamp":"2026-11-28T10:14:59Z","latency_ms":-1,"status":"ok","predicted":1,"latency_ms":2},
                           "p"],
            "zzz":{},"batch_id":"b","task":"regression","batch_id":"c","model_version":null}"#,
    );
    assert!(!truncated);
    assert_eq!(
        field_reasons(&problems),
        [
            ("zzz", "is not a known field"),
            ("batch_id", "appears more than once"),
            ("model_id", "is required"),
            ("model_version", "must be a string, found null"),
            ("predictions[0].foo", "is not a known field"),
            ("predictions[0].latency_ms", "appears more than once"),
            ("predictions[0].latency_ms", "must be ≥ 0"),
            ("predictions[1]", "must be an object, found a string"),
            ("resources[0].bar", "is not a known field"),
            ("resources[1]", "must be an object, found a number"),
        ]
    );
    assert_eq!(problems[4].index, Some(0));
    assert_eq!(problems[0].index, None);
}

#[test]
fn the_cap_is_exact_when_unknown_fields_crowd_the_list() {
    // 40 records with 2 unknown fields and a bad latency each: 120 problems, and
    // the list is the first 100 of them in body order.
    let record = r#"{"a":1,"timestamp":"2026-11-28T10:14:59Z","b":[],"latency_ms":-1,"status":"ok","predicted":1}"#;
    let body = format!(
        r#"{{"model_id":"m","batch_id":"b","task":"regression","predictions":[{}]}}"#,
        vec![record; 40].join(",")
    );
    let (listed, truncated) = problems(&body);
    assert!(truncated);
    let expected: Vec<String> = (0..40)
        .flat_map(|i| ["a", "b", "latency_ms"].map(|f| format!("predictions[{i}].{f}")))
        .take(MAX_PROBLEMS)
        .collect();
    assert_eq!(fields(&listed), expected);
    // One record with 150 unknown fields, then a batch problem after the list.
    let keys: Vec<String> = (0..150).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let body = format!(
        r#"{{"model_id":"m","batch_id":"b","task":"regression","predictions":[{{{}}}],"x":1}}"#,
        keys.join(",")
    );
    let (listed, truncated) = problems(&body);
    assert!(truncated);
    assert_eq!(listed[0].field, "x");
    assert_eq!(listed[1].field, "predictions[0].k0");
    assert_eq!(listed[99].field, "predictions[0].k98");
}

#[test]
fn a_list_is_refused_at_the_first_record_past_the_limit() {
    let empties = vec!["{}"; 2_097_085].join(",");
    let body = format!(r#"{{"predictions":[{empties}]}}"#);
    assert!(body.len() <= BatchLimits::default().max_body_bytes);
    assert_eq!(
        parse(&body),
        Err(BatchRejection::TooLarge(Problem {
            index: None,
            field: "predictions".into(),
            reason: "holds more than 10000 records; the limit is 10000".into(),
        }))
    );
}

#[test]
fn nesting_past_serde_json_s_limit_is_invalid_json_wherever_it_is() {
    let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    for body in [
        deep.clone(),
        format!(r#"{{"model_id":"m","predictions":[{{"junk":{deep}}}]}}"#),
        format!(r#"{{"model_id":"m","zzz":{deep}}}"#),
    ] {
        let (problems, _) = problems(&body);
        assert_eq!(fields(&problems), ["body"]);
        assert!(
            problems[0].reason.contains("recursion limit"),
            "{problems:?}"
        );
    }
}

#[test]
fn numbers_past_their_bounds_and_reserved_names_are_refused_naming_the_range() {
    let (found, _) = problems(
        r#"{"model_id":"m","batch_id":"b","task":"regression","predictions":[
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1e9,"status":"ok","predicted":1e100,"actual":-1e-100},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1000000001,"status":"ok","predicted":1.7e308},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":0,"status":"ok","predicted":1,"actual":1e-300},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":0,"status":"error","error_type":"__other__"}],
            "resources":[{"timestamp":"2026-11-28T10:14:59Z","queue_depth":1e12,"cache_hits":1000000000},
                         {"timestamp":"2026-11-28T10:14:59Z","queue_depth":1e13,"cache_hits":10000000000,"cache_misses":18446744073709551615}]}"#,
    );
    assert_eq!(
        field_reasons(&found),
        [
            ("predictions[1].latency_ms", "must be within [0, 1e9]"),
            ("predictions[1].predicted", "must be within [-1e100, 1e100]"),
            (
                "predictions[2].actual",
                "must be 0 or of magnitude at least 1e-100"
            ),
            (
                "predictions[3].error_type",
                "is reserved for the overflow bucket"
            ),
            ("resources[1].queue_depth", "must be within [0, 1e12]"),
            (
                "resources[1].cache_hits",
                "must be an integer within [0, 1000000000]"
            ),
            (
                "resources[1].cache_misses",
                "must be an integer within [0, 1000000000]"
            ),
        ]
    );
    let (found, _) = problems(
        r#"{"model_id":"m","batch_id":"b","task":"multiclass_classification","predictions":[
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":"__other__","actual":"\u005f_other__"},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":"cat","actual":"__other__"},
            {"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":"_other_","actual":"__Other__"}]}"#,
    );
    assert_eq!(
        field_reasons(&found),
        [
            (
                "predictions[0].predicted",
                "is reserved for the overflow bucket"
            ),
            (
                "predictions[1].actual",
                "is reserved for the overflow bucket"
            ),
        ]
    );
}

#[test]
fn a_segment_is_a_small_object_of_ids_kept_in_key_order() {
    let record = |segment: &str| {
        format!(
            r#"{{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":1,"segment":{segment}}}"#
        )
    };
    let body = |records: &[String]| {
        format!(
            r#"{{"model_id":"m","batch_id":"b","task":"regression","predictions":[{}]}}"#,
            records.join(",")
        )
    };
    let batch = parse(&body(&[
        record(r#"{"region":"eu-west:1","channel":"app"}"#),
        record("{}"),
    ]))
    .expect("valid");
    let segment = |i: usize| batch.segment_of(&batch.predictions[i]).collect::<Vec<_>>();
    assert_eq!(segment(0), [("channel", "app"), ("region", "eu-west:1")]);
    assert!(segment(1).is_empty());
    // Pairs met before keep their index and their prediction's key order.
    let batch = parse(&body(&[
        record(r#"{"region":"eu","channel":"app"}"#),
        record(r#"{"channel":"app","region":"eu"}"#),
        record(r#"{"channel":"web","region":"eu"}"#),
    ]))
    .expect("valid");
    let segment = |i: usize| batch.segment_of(&batch.predictions[i]).collect::<Vec<_>>();
    assert_eq!(segment(1), [("channel", "app"), ("region", "eu")]);
    assert_eq!(segment(2), [("channel", "web"), ("region", "eu")]);
    assert_eq!(batch.segment_pairs().len(), 3);
    // A pair met before is not checked again; the members beside it are.
    let (listed, _) = problems(&body(&[
        record(r#"{"region":"eu"}"#),
        record(r#"{"region":"eu","zone":"a#b"}"#),
        record(r#"{"zone":"a#b","region":"eu"}"#),
    ]));
    let zone = "may only contain letters, digits and . _ : @ -";
    assert_eq!(
        field_reasons(&listed),
        [
            ("predictions[1].segment.zone", zone),
            ("predictions[2].segment.zone", zone)
        ]
    );
    let nine: Vec<String> = (0..9).map(|i| format!(r#""k{i}":"v""#)).collect();
    let (listed, _) = problems(&body(&[
        record(r#""eu""#),
        record(&format!("{{{}}}", nine.join(","))),
        record(r#"{"region":1,"a:b":"x","tier":"__other__","__other__":"x"}"#),
        record(r#"{"region":"eu","region":"us","zone":"a#b","":"x"}"#),
        record(r#"{"region":{"nested":"eu"}}"#),
    ]));
    assert_eq!(
        field_reasons(&listed),
        [
            (
                "predictions[0].segment",
                "must be an object, found a string"
            ),
            (
                "predictions[1].segment",
                "has 9 keys; at most 8 are allowed"
            ),
            (
                "predictions[2].segment.region",
                "must be a string, found a number"
            ),
            (
                "predictions[2].segment.a:b",
                "is a key with ':', which separates a segment's key from its value"
            ),
            (
                "predictions[2].segment.tier",
                "is reserved for the overflow bucket"
            ),
            (
                "predictions[2].segment.__other__",
                "is reserved for the overflow bucket"
            ),
            ("predictions[3].segment.region", "is given more than once"),
            (
                "predictions[3].segment.zone",
                "may only contain letters, digits and . _ : @ -"
            ),
            ("predictions[3].segment.", "is a key that must not be empty"),
            (
                "predictions[4].segment.region",
                "must be a string, found an object"
            ),
        ]
    );
}

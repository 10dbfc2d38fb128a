use proptest::prelude::*;

use super::super::{PredictionLists, ReadError, read_batch};
use super::*;

/// What the serde reader makes of `text`, for comparison.
fn by_serde(text: &str, max_predictions: usize, max_resources: usize) -> String {
    let lists = PredictionLists {
        max_predictions,
        max_resources,
        ..PredictionLists::default()
    };
    match read_batch(text.as_bytes(), lists) {
        Ok(body) => format!("{body:?}"),
        Err(ReadError::TooLarge { list, limit }) => format!("too large: {list} {limit}"),
        Err(ReadError::Json(err)) => format!("not JSON: {err}"),
    }
}

#[test]
fn reads_the_usual_body() {
    let body = r#"{"model_id":"m","batch_id":"b","task":"binary_classification","predictions":[{"prediction_id":"p-1","timestamp":"2026-01-01T00:00:00.000Z","latency_ms":3.5,"status":"ok","predicted":1,"score":0.25,"actual":0,"segment":{"region":"eu"}}],"resources":[{"timestamp":"2026-01-01T00:00:00.000Z","cpu_utilization":0.45,"queue_depth":3}]}"#;
    let fast = prediction_body(body, 10, 10).expect("read by the scanner");
    assert_eq!(format!("{fast:?}"), by_serde(body, 10, 10));
}

#[test]
fn a_string_ends_at_its_quote_unless_a_backslash_or_a_control_character_comes_first() {
    let bytes: [(u8, bool); 7] = [
        (b'a', true),
        (0x7f, true),
        (0xc3, true),
        (0x80, true),
        (b'\\', false),
        (0x1f, false),
        (0, false),
    ];
    for len in 1..20 {
        for at in 0..len {
            for (byte, plain) in bytes {
                let mut text = vec![b'x'; len];
                text[at] = byte;
                text.extend_from_slice(b"\"x\"");
                assert_eq!(plain_len(&text), plain.then_some(len), "{text:?}");
                text[len] = b'x';
                assert_eq!(plain_len(&text[..len + 1]), None, "{text:?}");
            }
        }
    }
}

#[test]
fn declines_what_it_does_not_read_exactly() {
    for body in [
        r#"{"model_id":"a\"b"}"#,
        r#"{"model_id":"a\u0041"}"#,
        "{\"model_id\":\"a\tb\"}",
        r#"{"latency":1e3}"#,
        r#"{"latency":-0}"#,
        r#"{"latency":0.1234567890123456}"#,
        r#"{"latency":18446744073709551616}"#,
        r#"{"latency":-9223372036854775809}"#,
        r#"{"latency":01}"#,
        r#"{"x":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"#,
        r#"{"predictions":[{},{},{}]}"#,
        r#"[1]"#,
        r#"{"model_id":"m"} x"#,
        r#"{"model_id":"m",}"#,
    ] {
        assert!(prediction_body(body, 2, 2).is_none(), "{body}");
    }
}

/// JSON text of a scalar, plain (what the scanner reads) or not.
fn scalar(plain: bool) -> BoxedStrategy<String> {
    let plain_scalars = prop_oneof![
        "[a-z0-9:._@-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[ -~&&[^\"\\\\]]{0,6}".prop_map(|s| format!("\"{s}\"")),
        "[é✓]{1,3}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0_u32..1_000_000, 1_u32..99_999).prop_map(|(w, f)| format!("{w}.{f}")),
        (0_u32..1000, 1_u32..1000).prop_map(|(w, f)| format!("-{w}.{f:03}")),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
    ];
    if plain {
        return plain_scalars.boxed();
    }
    prop_oneof![
        4 => plain_scalars,
        1 => prop_oneof![
            Just(r#""a\"b""#.to_owned()),
            Just(r#""\u00e9\n""#.to_owned()),
            Just("\"a\tb\"".to_owned()),
            Just("-0".to_owned()),
            Just("1e3".to_owned()),
            Just("2.5E-3".to_owned()),
            Just("0.1234567890123456789".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            Just("-9223372036854775809".to_owned()),
            Just("01".to_owned()),
            Just("1.".to_owned()),
            Just("nul".to_owned()),
            Just("+1".to_owned()),
        ],
    ]
    .boxed()
}

/// JSON text of any value: scalars, and arrays and objects nested a few levels.
fn value(plain: bool) -> BoxedStrategy<String> {
    scalar(plain)
        .prop_recursive(4, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,3}", inner), 0..4).prop_map(|m| {
                    let members: Vec<String> =
                        m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(" , "))
                }),
            ]
        })
        .boxed()
}

/// An object whose keys are drawn from `known` (repeats included) and a few unknown
/// names, each with a value of `values`.
fn object(known: &'static [&'static str], values: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let key = prop_oneof![
        4 => prop::sample::select(known).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ];
    prop::collection::vec((key, values), 0..12)
        .prop_map(|members| {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            format!("{{\n{}\n}}", members.join(",\t"))
        })
        .boxed()
}

/// The text of a prediction batch: records of known and unknown fields, segments of
/// a few members, lists of any length, other values where lists and records belong.
fn batch(plain: bool) -> BoxedStrategy<String> {
    let field_value = prop_oneof![
        6 => value(plain),
        1 => object(&["region", "channel", "x"], scalar(plain)),
    ]
    .boxed();
    let prediction = prop_oneof![
        8 => object(&PREDICTION_FIELDS, field_value),
        1 => value(plain),
    ];
    let resource = prop_oneof![
        8 => object(&RESOURCE_FIELDS, value(plain)),
        1 => value(plain),
    ];
    let list = |record: BoxedStrategy<String>| {
        prop_oneof![
            6 => prop::collection::vec(record, 0..6).prop_map(|r| format!("[{}]", r.join(","))),
            1 => value(plain),
        ]
    };
    let batch_value = prop_oneof![
        2 => value(plain),
        1 => list(prediction.boxed()),
        1 => list(resource.boxed()),
    ]
    .boxed();
    object(&BATCH_FIELDS, batch_value)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The scanner reads every plain body, and reads it as serde does.
    #[test]
    fn reads_a_plain_body_as_serde_does(text in batch(true), limit in 0_usize..8) {
        let expected = by_serde(&text, limit, limit);
        match prediction_body(&text, limit, limit) {
            Some(fast) => prop_assert_eq!(format!("{fast:?}"), expected),
            // Past a limit: serde's refusal.
            None => prop_assert!(expected.starts_with("too large"), "declined {}", text),
        }
    }

    /// Whatever the body — escapes, odd numbers, broken JSON — the scanner either
    /// declines it or reads it as serde does.
    #[test]
    fn declines_or_agrees_with_serde(
        text in batch(false),
        limit in 0_usize..8,
        cut in any::<prop::sample::Index>(),
        insert in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(&b"{}[]\",:0-. \\e"[..]))),
        truncate in any::<bool>(),
    ) {
        let mut text = text.into_bytes();
        if let Some((at, byte)) = insert {
            text.insert(at.index(text.len() + 1), byte);
        }
        if truncate {
            text.truncate(cut.index(text.len() + 1));
        }
        let Ok(text) = String::from_utf8(text) else {
            return Ok(());
        };
        if let Some(fast) = prediction_body(&text, limit, limit) {
            prop_assert_eq!(format!("{fast:?}"), by_serde(&text, limit, limit));
        }
    }
}

//! The digest is the same for one content written in any style and another for any
//! change of content: random valid batches, rendered to JSON in random styles.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::ingest::{BatchLimits, parse_batch};

fn now() -> DateTime<Utc> {
    "2026-11-28T10:15:00Z".parse().expect("time")
}

fn digest_of(body: &str) -> String {
    let batch = parse_batch(body.as_bytes(), now(), &BatchLimits::default())
        .unwrap_or_else(|err| panic!("{err:?} for {body}"));
    content_digest(&batch)
}

#[test]
fn the_examples_of_one_content_written_differently() {
    let compact = r#"{"model_id":"m","batch_id":"b","task":"binary_classification","predictions":[{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":1,"actual":0,"score":0.5}]}"#;
    let other = r#"{
        "predictions": [ { "score": 5e-1, "actual": false, "predicted": true,
                           "status": "ok", "latency_ms": 1e0,
                           "timestamp": "2026-11-28T11:14:59+01:00" } ],
        "task": "binary_classification", "batch_id": "\u0062", "model_id": "m",
        "resources": []
    }"#;
    assert_eq!(digest_of(compact), digest_of(other));
    let multiclass = |label: &str, latency: &str| {
        format!(
            r#"{{"model_id":"m","batch_id":"b","task":"multiclass_classification","predictions":[{{"timestamp":"2026-11-28T10:14:59.000Z","latency_ms":{latency},"status":"ok","predicted":{label}}}]}}"#
        )
    };
    assert_eq!(
        digest_of(&multiclass("7", "1")),
        digest_of(&multiclass("\"7\"", "1.0"))
    );
    assert_ne!(
        digest_of(&multiclass("7", "1")),
        digest_of(&multiclass("\"07\"", "1"))
    );
    assert_eq!(
        digest_of(&multiclass("7", "0")),
        digest_of(&multiclass("7", "-0.0"))
    );
    let digest = digest_of(compact);
    assert!(digest.starts_with("c3-") && digest.len() == 35, "{digest}");
    // A multiclass score is content; a record without one keeps the digest it had
    // before multiclass scores were accepted (a retry across the upgrade is no conflict).
    let scored = |score: &str| {
        format!(
            r#"{{"model_id":"m","batch_id":"b","task":"multiclass_classification","predictions":[{{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok","predicted":7,"score":{score}}}]}}"#
        )
    };
    assert_eq!(digest_of(&scored("0.5")), digest_of(&scored("5e-1")));
    assert_ne!(digest_of(&scored("0.5")), digest_of(&scored("0.25")));
    assert_ne!(digest_of(&scored("0.5")), digest_of(&multiclass("7", "1")));
    assert_eq!(
        digest_of(&multiclass("7", "1")),
        "c3-2f5beb354714beee103470660e66143f",
        "the digest of an unscored multiclass record is the previous release's \
         (computed by hand from the encoding in the module docs)"
    );
}

#[tokio::test]
async fn a_retry_written_differently_is_a_duplicate_not_a_conflict() {
    use crate::ingest::IngestError;
    use crate::testing::{memory_ingest, tenant};

    let service = memory_ingest();
    let tenant = tenant("t1");
    let first = br#"{"model_id":"m","batch_id":"b","task":"regression","predictions":[{"timestamp":"2026-11-28T10:14:59Z","latency_ms":2,"status":"ok","predicted":1.5}]}"#;
    let retry = br#"{
        "task": "regression", "batch_id": "b", "model_id": "m",
        "predictions": [ { "predicted": 15e-1, "status": "ok", "latency_ms": 2.0,
                           "timestamp": "2026-11-28T11:14:59.000+01:00" } ]
    }"#;
    let stored = service.ingest(&tenant, first, now()).await.expect("stored");
    assert!(!stored.duplicate);
    let again = service
        .ingest(&tenant, retry, now())
        .await
        .expect("answered");
    assert!(again.duplicate, "{again:?}");
    let other = String::from_utf8_lossy(first).replace("1.5", "1.25");
    let refused = service.ingest(&tenant, other.as_bytes(), now()).await;
    assert!(
        matches!(refused, Err(IngestError::BatchConflict { .. })),
        "{refused:?}"
    );
}

#[test]
fn the_encoding_does_not_change_unnoticed() {
    // Claims stored in the batch table hold these digests: a change of the encoding
    // makes every retry of a batch claimed before it a 409.
    let body = r#"{"model_id":"m-1","batch_id":"b-1","model_version":"v3","task":"regression","predictions":[
        {"prediction_id":"p-1","timestamp":"2026-11-28T10:14:59.250Z","latency_ms":12.5,"status":"ok","predicted":1.5,"actual":-2},
        {"timestamp":"2026-11-28T10:14:58Z","latency_ms":30000,"status":"error","error_type":"timeout"}],
        "resources":[{"timestamp":"2026-11-28T10:14:00Z","cpu_utilization":0.5,"queue_depth":3,"cache_hits":120}]}"#;
    // The documented encoding, written out by hand.
    let mut bytes = Vec::new();
    let str = |out: &mut Vec<u8>, s: &str| {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    };
    let time = |out: &mut Vec<u8>, text: &str, nanos: u32| {
        let t: DateTime<Utc> = text.parse().expect("time");
        out.extend(t.timestamp().to_le_bytes());
        out.extend(nanos.to_le_bytes());
    };
    let f64 = |out: &mut Vec<u8>, v: f64| out.extend(v.to_bits().to_le_bytes());
    str(&mut bytes, "m-1");
    str(&mut bytes, "b-1");
    bytes.push(1);
    str(&mut bytes, "v3");
    bytes.push(2);
    bytes.extend(2_u64.to_le_bytes());
    bytes.push(1);
    str(&mut bytes, "p-1");
    time(&mut bytes, "2026-11-28T10:14:59Z", 250_000_000);
    f64(&mut bytes, 12.5);
    bytes.extend([0, 0, 2, 1]);
    f64(&mut bytes, 1.5);
    bytes.push(1);
    f64(&mut bytes, -2.0);
    bytes.push(0);
    time(&mut bytes, "2026-11-28T10:14:58Z", 0);
    f64(&mut bytes, 30000.0);
    bytes.extend([1, 1]);
    str(&mut bytes, "timeout");
    bytes.extend([2, 0, 0]);
    bytes.extend(1_u64.to_le_bytes());
    time(&mut bytes, "2026-11-28T10:14:00Z", 0);
    bytes.push(1);
    f64(&mut bytes, 0.5);
    bytes.extend([0, 0, 1]);
    f64(&mut bytes, 3.0);
    bytes.push(1);
    bytes.extend(120_u64.to_le_bytes());
    bytes.push(0);
    assert_eq!(digest_of(body), format!("c3-{:032x}", xxh3_128(&bytes)));
    assert_eq!(digest_of(body), "c3-3f13c87afce547d01ab9c86d74cbb38b");
}

#[test]
fn the_legacy_digest_is_the_raw_body_hash_as_before() {
    assert_eq!(
        legacy_body_digest(b""),
        "x3-99aa06d3014798d86001c324468d497f"
    );
    assert_eq!(
        legacy_body_digest(b"{}"),
        format!("x3-{:032x}", xxh3_128(b"{}"))
    );
}

/// A decimal `mantissa · 10^exponent`: every spelling of it is read as the same `f64`
/// (at most 13 significant digits, a small exponent).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decimal {
    mantissa: i64,
    exponent: i32,
}

impl Decimal {
    /// Another value, as close as the bounds allow.
    fn nudged(self) -> Self {
        let mantissa = if self.mantissa > 0 {
            self.mantissa - 1
        } else {
            self.mantissa + 1
        };
        Self { mantissa, ..self }
    }

    /// Written plain (`12.5`), in exponent form (`125e-1`) or with a point and exponent
    /// (`1.25e1`).
    fn render(self, form: u8) -> String {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        match form % 3 {
            0 => {
                // Plain: shift the point into the digits.
                let point = digits.len() as i32 + self.exponent;
                if self.exponent >= 0 {
                    format!("{sign}{digits}{}", "0".repeat(self.exponent as usize))
                } else if point > 0 {
                    let (int, frac) = digits.split_at(point as usize);
                    format!("{sign}{int}.{frac}")
                } else {
                    format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
                }
            }
            1 => format!("{sign}{digits}e{}", self.exponent),
            _ => {
                let (first, rest) = digits.split_at(1);
                let exponent = self.exponent + rest.len() as i32;
                if rest.is_empty() {
                    format!("{sign}{first}.0E{exponent:+}")
                } else {
                    format!("{sign}{first}.{rest}e{exponent}")
                }
            }
        }
    }
}

fn decimal(
    mantissa: std::ops::RangeInclusive<i64>,
    exponent: std::ops::RangeInclusive<i32>,
) -> impl Strategy<Value = Decimal> {
    (mantissa, exponent).prop_map(|(mantissa, exponent)| Decimal { mantissa, exponent })
}

#[derive(Debug, Clone, PartialEq)]
enum Label {
    /// A decimal integer label: `7` or `"7"`.
    Int(u32),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Quality {
    Binary(Option<bool>, Option<bool>, Option<Decimal>),
    Multiclass(Option<Label>, Option<Label>, Option<Decimal>),
    Regression(Option<Decimal>, Option<Decimal>),
}

#[derive(Debug, Clone, PartialEq)]
struct Prediction {
    id: Option<String>,
    /// Nanoseconds before now.
    age_ns: i64,
    latency: Decimal,
    /// `Some(error_type)` for a failed request (which carries no `predicted`).
    error: Option<String>,
    quality: Quality,
    segment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Resource {
    age_ns: i64,
    fractions: [Option<Decimal>; 3],
    queue_depth: Option<Decimal>,
    cache: [Option<u64>; 2],
}

#[derive(Debug, Clone, PartialEq)]
struct Content {
    model_id: String,
    batch_id: String,
    version: Option<String>,
    task: Task,
    predictions: Vec<Prediction>,
    resources: Vec<Resource>,
}

/// How a content is written.
#[derive(Debug, Clone)]
struct Style {
    pretty: bool,
    reverse_keys: bool,
    escape_everything: bool,
    number_form: u8,
    labels_as_strings: bool,
    binary_as_bools: bool,
    zone_minutes: i32,
    seconds_format: u8,
    empty_resources: u8,
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:@-]{1,24}"
}

fn label() -> impl Strategy<Value = Label> {
    prop_oneof![
        (0..1000_u32).prop_map(Label::Int),
        "[a-zA-Z]\\PC{0,12}".prop_map(Label::Text),
    ]
}

fn quality(task: Task) -> BoxedStrategy<Quality> {
    let fraction = decimal(0..=1000, -3..=-3);
    let value = || decimal(-1_000_000_000_000..=1_000_000_000_000, -6..=6);
    match task {
        Task::BinaryClassification => (
            any::<Option<bool>>(),
            any::<Option<bool>>(),
            proptest::option::of(fraction),
        )
            .prop_map(|(p, a, s)| Quality::Binary(p, a, s))
            .boxed(),
        Task::MulticlassClassification => (
            proptest::option::of(label()),
            proptest::option::of(label()),
            proptest::option::of(fraction),
        )
            .prop_map(|(p, a, s)| Quality::Multiclass(p, a, s))
            .boxed(),
        Task::Regression => (proptest::option::of(value()), proptest::option::of(value()))
            .prop_map(|(p, a)| Quality::Regression(p, a))
            .boxed(),
    }
}

fn prediction(task: Task) -> impl Strategy<Value = Prediction> {
    (
        proptest::option::of(id()),
        0..3_600_000_000_000_i64,
        decimal(0..=1_000_000_000, -3..=0),
        proptest::option::of(id()),
        quality(task),
        proptest::collection::btree_map("[a-z]{1,6}", id(), 0..3),
    )
        .prop_map(|(id, age_ns, latency, error, quality, segment)| {
            // A failed request has no prediction; an ok one has one.
            let quality = match (quality, &error) {
                (Quality::Binary(_, a, s), Some(_)) => Quality::Binary(None, a, s),
                (Quality::Binary(p, a, s), None) => Quality::Binary(p.or(Some(true)), a, s),
                (Quality::Multiclass(_, a, s), Some(_)) => Quality::Multiclass(None, a, s),
                (Quality::Multiclass(p, a, s), None) => {
                    Quality::Multiclass(p.or(Some(Label::Int(1))), a, s)
                }
                (Quality::Regression(_, a), Some(_)) => Quality::Regression(None, a),
                (Quality::Regression(p, a), None) => Quality::Regression(
                    p.or(Some(Decimal {
                        mantissa: 1,
                        exponent: 0,
                    })),
                    a,
                ),
            };
            Prediction {
                id,
                age_ns,
                latency,
                error,
                quality,
                segment,
            }
        })
}

fn resource() -> impl Strategy<Value = Resource> {
    let fraction = || proptest::option::of(decimal(0..=1000, -3..=-3));
    (
        0..3_600_000_000_000_i64,
        [fraction(), fraction(), fraction()],
        proptest::option::of(decimal(0..=1_000_000, -2..=3)),
        [
            proptest::option::of(0..=1_000_000_000_u64),
            proptest::option::of(0..=1_000_000_000_u64),
        ],
    )
        .prop_map(|(age_ns, fractions, queue_depth, cache)| Resource {
            age_ns,
            fractions,
            queue_depth,
            cache,
        })
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        Just(Task::BinaryClassification),
        Just(Task::MulticlassClassification),
        Just(Task::Regression),
    ]
    .prop_flat_map(|task| {
        (
            id(),
            id(),
            proptest::option::of(id()),
            proptest::collection::vec(prediction(task), 1..6),
            proptest::collection::vec(resource(), 0..3),
        )
            .prop_map(
                move |(model_id, batch_id, version, predictions, resources)| Content {
                    model_id,
                    batch_id,
                    version,
                    task,
                    predictions,
                    resources,
                },
            )
    })
}

fn style() -> impl Strategy<Value = Style> {
    // Each choice from its own bits of one random word.
    any::<u64>().prop_map(|bits| {
        let flag = |bit: u32| bits >> bit & 1 == 1;
        let choice = |bit: u32, n: u64| ((bits >> bit & 0xff) % n) as u8;
        Style {
            pretty: flag(0),
            reverse_keys: flag(1),
            escape_everything: flag(2),
            labels_as_strings: flag(3),
            binary_as_bools: flag(4),
            number_form: choice(8, 3),
            seconds_format: choice(16, 3),
            empty_resources: choice(24, 3),
            zone_minutes: ((bits >> 32) % 1561) as i32 - 720,
        }
    })
}

impl Style {
    fn string(&self, text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || self.escape_everything => {
                    let mut units = [0_u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn object(&self, members: Vec<(&str, String)>) -> String {
        let mut members: Vec<String> = members
            .into_iter()
            .map(|(key, value)| format!("{}:{value}", self.string(key)))
            .collect();
        if self.reverse_keys {
            members.reverse();
        }
        let (open, sep, close) = if self.pretty {
            ("{\n  ", ",\n  ", "\n}")
        } else {
            ("{", ",", "}")
        };
        format!("{open}{}{close}", members.join(sep))
    }

    fn array(&self, items: Vec<String>) -> String {
        let sep = if self.pretty { ",\n " } else { "," };
        format!("[{}]", items.join(sep))
    }

    fn number(&self, value: Decimal) -> String {
        value.render(self.number_form)
    }

    fn time(&self, age_ns: i64) -> String {
        let time = now() - TimeDelta::nanoseconds(age_ns);
        let zone = FixedOffset::east_opt(self.zone_minutes * 60).expect("within a day");
        // AutoSi writes as few digits as the time needs, Nanos always nine; `Z` or
        // `+00:00` for UTC.
        let (format, use_z) = match self.seconds_format {
            0 => (SecondsFormat::AutoSi, true),
            1 => (SecondsFormat::Nanos, false),
            _ => (SecondsFormat::AutoSi, false),
        };
        self.string(&time.with_timezone(&zone).to_rfc3339_opts(format, use_z))
    }

    fn label(&self, label: &Label) -> String {
        match label {
            Label::Int(i) if self.labels_as_strings => self.string(&i.to_string()),
            Label::Int(i) => i.to_string(),
            Label::Text(text) => self.string(text),
        }
    }

    fn binary(&self, value: bool) -> String {
        match (self.binary_as_bools, value) {
            (true, v) => v.to_string(),
            (false, v) => u8::from(v).to_string(),
        }
    }

    fn render(&self, content: &Content) -> String {
        let predictions = content
            .predictions
            .iter()
            .map(|p| {
                let mut members = vec![
                    ("timestamp", self.time(p.age_ns)),
                    ("latency_ms", self.number(p.latency)),
                ];
                if let Some(id) = &p.id {
                    members.push(("prediction_id", self.string(id)));
                }
                match &p.error {
                    None => members.push(("status", self.string("ok"))),
                    Some(error_type) => {
                        members.push(("status", self.string("error")));
                        members.push(("error_type", self.string(error_type)));
                    }
                }
                let mut some = |name, value: Option<String>| {
                    if let Some(value) = value {
                        members.push((name, value));
                    }
                };
                match &p.quality {
                    Quality::Binary(predicted, actual, score) => {
                        some("predicted", predicted.map(|v| self.binary(v)));
                        some("actual", actual.map(|v| self.binary(v)));
                        some("score", score.map(|v| self.number(v)));
                    }
                    Quality::Multiclass(predicted, actual, score) => {
                        some("predicted", predicted.as_ref().map(|l| self.label(l)));
                        some("actual", actual.as_ref().map(|l| self.label(l)));
                        some("score", score.map(|v| self.number(v)));
                    }
                    Quality::Regression(predicted, actual) => {
                        some("predicted", predicted.map(|v| self.number(v)));
                        some("actual", actual.map(|v| self.number(v)));
                    }
                }
                if !p.segment.is_empty() {
                    let segment = p
                        .segment
                        .iter()
                        .map(|(key, value)| (key.as_str(), self.string(value)))
                        .collect();
                    members.push(("segment", self.object(segment)));
                }
                self.object(members)
            })
            .collect();
        let resources: Vec<String> = content
            .resources
            .iter()
            .map(|r| {
                let mut members = vec![("timestamp", self.time(r.age_ns))];
                let names = ["cpu_utilization", "memory_utilization", "gpu_utilization"];
                for (name, value) in names.into_iter().zip(r.fractions) {
                    if let Some(value) = value {
                        members.push((name, self.number(value)));
                    }
                }
                if let Some(depth) = r.queue_depth {
                    members.push(("queue_depth", self.number(depth)));
                }
                for (name, value) in ["cache_hits", "cache_misses"].into_iter().zip(r.cache) {
                    if let Some(value) = value {
                        members.push((name, value.to_string()));
                    }
                }
                self.object(members)
            })
            .collect();
        let mut members = vec![
            ("model_id", self.string(&content.model_id)),
            ("batch_id", self.string(&content.batch_id)),
            ("task", self.string(content.task.as_str())),
            ("predictions", self.array(predictions)),
        ];
        if let Some(version) = &content.version {
            members.push(("model_version", self.string(version)));
        }
        match (resources.is_empty(), self.empty_resources) {
            (false, _) | (true, 0) => members.push(("resources", self.array(resources))),
            (true, 1) => members.push(("resources", "null".to_owned())),
            (true, _) => {}
        }
        self.object(members)
    }
}

/// One change of what is counted.
fn change(content: &mut Content, which: usize) {
    let n = content.predictions.len();
    let i = which % n;
    match which % 10 {
        0 => content.batch_id.push('x'),
        1 => content.version = content.version.take().map_or(Some("v".into()), |_| None),
        2 => content.predictions[i].latency = content.predictions[i].latency.nudged(),
        3 => content.predictions[i].age_ns += 1,
        4 => {
            let id = &mut content.predictions[i].id;
            *id = id.take().map_or(Some("p".into()), |_| None);
        }
        5 if content.predictions[i].error.is_some() => {
            if let Some(error_type) = &mut content.predictions[i].error {
                error_type.push('x');
            }
        }
        6 => match &mut content.predictions[i].quality {
            Quality::Binary(_, actual, _) => *actual = Some(actual.is_none_or(|a| !a)),
            Quality::Multiclass(_, _, score @ Some(_)) if which.is_multiple_of(2) => *score = None,
            Quality::Multiclass(_, actual, _) => {
                *actual = Some(match actual.take() {
                    Some(Label::Int(i)) => Label::Int(i + 1),
                    Some(Label::Text(t)) => Label::Text(format!("{t}x")),
                    None => Label::Int(3),
                })
            }
            Quality::Regression(_, actual) => {
                *actual = Some(actual.map_or(
                    Decimal {
                        mantissa: 5,
                        exponent: 0,
                    },
                    Decimal::nudged,
                ))
            }
        },
        7 => match content.resources.first_mut() {
            Some(r) => r.cache[0] = Some(r.cache[0].map_or(0, |c| c.checked_sub(1).unwrap_or(1))),
            None => content.resources.push(Resource {
                age_ns: 0,
                fractions: [None; 3],
                queue_depth: None,
                cache: [None; 2],
            }),
        },
        8 => {
            let segment = &mut content.predictions[i].segment;
            match segment.values_mut().next() {
                Some(value) => value.push('x'),
                None => {
                    segment.insert("region".into(), "eu".into());
                }
            }
        }
        _ if n > 1 && content.predictions[0] != content.predictions[1] => {
            content.predictions.swap(0, 1)
        }
        _ => content.predictions.push(content.predictions[0].clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_content_in_any_style_has_one_digest(content in content(), a in style(), b in style()) {
        let first = a.render(&content);
        let second = b.render(&content);
        prop_assert_eq!(digest_of(&first), digest_of(&second), "{}\n{}", first, second);
    }

    #[test]
    fn any_change_of_content_changes_the_digest(
        content in content(),
        a in style(),
        b in style(),
        which in 0..64_usize,
    ) {
        let mut changed = content.clone();
        change(&mut changed, which);
        prop_assume!(changed != content);
        let first = a.render(&content);
        let second = b.render(&changed);
        prop_assert_ne!(digest_of(&first), digest_of(&second), "{}\n{}", first, second);
    }
}

//! Bodies for fuzzing the batch parser, and the checks each answer must pass.
//!
//! Shared by path (`#[path]`) between the `parser_fuzz` bench (the long run) and the
//! in-suite test `tests/parser_fuzz.rs` (a few thousand bodies on every `cargo test`):
//! so the generator is compiled into exactly those two targets — not into the library,
//! where it would be public API shipped in every Lambda (a `fuzzing` feature would
//! still put it in the library's source and needs a self dev-dependency to switch it
//! on), and not into `benches/support`, whose other users would carry it as dead code.
//!
//! Generation is deterministic by seed (SplitMix64, no dependency): structure-aware
//! batches — valid ones with random values, numbers at and past every bound, reserved
//! names, random JSON in random fields, repeated and unknown keys, unicode escapes,
//! huge arrays, deep nesting — and byte-level mutations of them and of earlier bodies
//! (bit flips, truncation, splicing, insertion, deletion, duplication).

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use modelwatch::domain::ValidBatch;
use modelwatch::domain::{
    MAX_CACHE_COUNT, MAX_LABEL_BYTES, MAX_LATENCY_MS, MAX_QUEUE_DEPTH, OVERFLOW_BUCKET, Outcome,
    regression_value_problem,
};
use modelwatch::ingest::{BatchLimits, BatchRejection, MAX_PROBLEMS, content_digest};

/// SplitMix64: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True once in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers as written: in range, at every bound, just past it, far past it.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "1",
    "1.0",
    "1e0",
    "0.5",
    "2",
    "7",
    "123.456",
    "1E+2",
    "0.000001",
    "1e9",
    "1000000000",
    "1000000001",
    "1e200",
    "-1",
    "1.7e308",
    "-1.7e308",
    "1e-300",
    "1e-100",
    "9.9e-101",
    "1e100",
    "1.0000001e100",
    "-1e100",
    "1e12",
    "1e13",
    "1000000000000",
    "10000000000",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "5e-324",
    "2.2250738585072014e-308",
    "0.30000000000000004",
];

/// What looks like a number but is not JSON (or not an `f64`).
const BAD_NUMBERS: &[&str] = &[
    "1e400", "-1e400", "00", "01", "-", "1.", ".5", "NaN", "Infinity", "1e", "+1",
];

/// Strings as written (with their quotes): ids, labels, reserved names (plain and
/// escaped), escapes of every kind.
const STRINGS: &[&str] = &[
    r#""m""#,
    r#""model-xyz789""#,
    r#""b-1""#,
    r#""v3""#,
    r#""timeout""#,
    r#""7""#,
    r#""cat""#,
    r#""__other__""#,
    r#""\u005f_other__""#,
    r#""__other_""#,
    r#""""#,
    r#""a#b""#,
    r#""a b""#,
    r#""\n""#,
    r#""\u00e9t\u00e9""#,
    r#""\ud83d\ude00""#,
    "\"\u{e9}\"",
    "\"\u{1F600}\"",
    r#""ok""#,
    r#""error""#,
    r#""regression""#,
    r#""binary_classification""#,
    r#""multiclass_classification""#,
    r#""2026-11-28T10:14:59Z""#,
    r#""2026-11-28T23:59:60Z""#,
    r#""2026-02-30T10:00:00Z""#,
    r#""2026-11-28T10:14:59""#,
    r#""\"quoted\"""#,
    "\"\\\\\"",
];

/// Strings that are not JSON: lone surrogates, bad escapes, a raw control character.
const BAD_STRINGS: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00x""#,
    r#""\x""#,
    r#""\u12""#,
    r#""tab	in""#,
];

const TASKS: &[&str] = &[
    "binary_classification",
    "multiclass_classification",
    "regression",
];
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "0",
    "-",
    "e",
    "\\u",
    "\u{e9}",
    r#""predictions":["#,
    r#"{"timestamp":"#,
    "]]]]",
    "{{{{",
    "\u{0}",
    "\u{7f}",
];

/// Makes fuzz bodies, deterministically from a seed.
pub struct Bodies {
    rng: Rng,
    now: DateTime<Utc>,
    /// Largest body made on purpose (mutations may add a few bytes).
    max_len: usize,
    /// Recent bodies, for splicing and for mutating again.
    pool: Vec<Vec<u8>>,
}

impl Bodies {
    /// Bodies from `seed` for a parser called at `now`, at most about `max_len` bytes.
    pub fn new(seed: u64, now: DateTime<Utc>, max_len: usize) -> Self {
        Self {
            rng: Rng::new(seed),
            now,
            max_len,
            pool: Vec::new(),
        }
    }

    /// The next body.
    pub fn next_body(&mut self) -> Vec<u8> {
        let body = match self.rng.below(100) {
            0..=59 => self.batch(),
            60..=64 => self.adversarial(),
            _ => {
                let base = if self.pool.is_empty() || self.rng.one_in(3) {
                    self.batch()
                } else {
                    let i = self.rng.below(self.pool.len());
                    self.pool[i].clone()
                };
                self.mutate(base)
            }
        };
        if body.len() <= 64 * 1024 {
            if self.pool.len() < 64 {
                self.pool.push(body.clone());
            } else {
                let i = self.rng.below(self.pool.len());
                self.pool[i] = body.clone();
            }
        }
        body
    }

    /// A batch: mostly valid, each part now and then wrong.
    fn batch(&mut self) -> Vec<u8> {
        let mut w = Writer::new(&mut self.rng);
        let task = *w.rng.pick(TASKS);
        let records = match w.rng.below(1000) {
            0 => 9_999 + w.rng.below(4),
            1..=2 => 100 + w.rng.below(400),
            _ => 1 + w.rng.below(8),
        };
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        if !w.rng.one_in(40) {
            members.push(("model_id".into(), w.id()));
        }
        if !w.rng.one_in(40) {
            members.push(("batch_id".into(), w.id()));
        }
        if w.rng.one_in(2) {
            members.push(("model_version".into(), w.id()));
        }
        if !w.rng.one_in(40) {
            let task = if w.rng.one_in(40) {
                w.any_value(2)
            } else {
                format!("\"{task}\"").into_bytes()
            };
            members.push(("task".into(), task));
        }
        let now = self.now;
        if !w.rng.one_in(50) {
            let items: Vec<Vec<u8>> = (0..records).map(|_| w.prediction(task, now)).collect();
            members.push(("predictions".into(), w.array(items)));
        }
        if w.rng.one_in(3) {
            let n = w.rng.below(4);
            let items: Vec<Vec<u8>> = (0..n).map(|_| w.resource(now)).collect();
            members.push(("resources".into(), w.array(items)));
        }
        w.stray_members(&mut members);
        w.object(members)
    }

    /// A body built to cost: huge arrays, deep nesting, many keys, long strings.
    fn adversarial(&mut self) -> Vec<u8> {
        let big = self.rng.one_in(2000);
        let room = if big {
            self.max_len
        } else {
            self.max_len.min(4096 + self.rng.below(60_000))
        };
        let head = r#"{"model_id":"m","batch_id":"b","task":"regression","predictions":["#;
        let fill = |prefix: &str, item: &str, suffix: &str| {
            let n = room.saturating_sub(prefix.len() + suffix.len()) / (item.len() + 1);
            let mut out = Vec::with_capacity(room);
            out.extend_from_slice(prefix.as_bytes());
            for i in 0..n.max(1) {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item.as_bytes());
            }
            out.extend_from_slice(suffix.as_bytes());
            out
        };
        let depth = 100 + self.rng.below(60);
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        match self.rng.below(8) {
            0 => fill(r#"{"predictions":["#, "{}", "]}"),
            1 => fill(&format!(r#"{head}{{"junk":["#), "[]", "]}]}"),
            2 => fill(&format!(r#"{head}{{"junk":["#), &nested, "]}]}"),
            3 => fill("[", &nested, "]"),
            4 => {
                let keys: Vec<String> = (0..room / 16).map(|i| format!(r#""k{i:08}":0"#)).collect();
                format!(r#"{head}{{{}}}]}}"#, keys.join(",")).into_bytes()
            }
            5 => fill(
                &format!(r#"{head}{{"prediction_id":""#),
                r"\u00e9\n",
                r#""}]}"#,
            ),
            6 => {
                let record = format!(
                    r#"{{"timestamp":"{}","latency_ms":1,"status":"ok","predicted":1,"x":1,"x":2}}"#,
                    self.now.to_rfc3339_opts(SecondsFormat::Millis, true)
                );
                fill(head, &record, "]}")
            }
            _ => fill(r#"{"resources":["#, "1", "]}"),
        }
    }

    /// `base` with one to four byte-level mutations.
    fn mutate(&mut self, mut body: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.rng.below(4) {
            let len = body.len();
            let at = if len == 0 { 0 } else { self.rng.below(len + 1) };
            match self.rng.below(7) {
                0 if len > 0 => {
                    let i = self.rng.below(len);
                    body[i] ^= 1 << self.rng.below(8);
                }
                1 => body.truncate(at),
                2 if !self.pool.is_empty() => {
                    let other = &self.pool[self.rng.below(self.pool.len())];
                    let from = self.rng.below(other.len() + 1);
                    body.truncate(at);
                    body.extend_from_slice(&other[from..]);
                }
                3 => {
                    let token = self.rng.pick(TOKENS).as_bytes();
                    body.splice(at..at, token.iter().copied());
                }
                4 => {
                    let byte = (self.rng.next() & 0xff) as u8;
                    body.insert(at, byte);
                }
                5 if len > 0 => {
                    let end = (at + 1 + self.rng.below(16)).min(len);
                    body.drain(at.min(end)..end);
                }
                _ if len > 0 => {
                    let end = (at + 1 + self.rng.below(64)).min(len);
                    let start = at.min(end);
                    let copy = body[start..end].to_vec();
                    body.splice(end..end, copy);
                }
                _ => body.push(b'{'),
            }
        }
        body
    }
}

/// Writes JSON pieces, each now and then wrong.
struct Writer<'r> {
    rng: &'r mut Rng,
    pretty: bool,
}

impl<'r> Writer<'r> {
    fn new(rng: &'r mut Rng) -> Self {
        let pretty = rng.one_in(4);
        Self { rng, pretty }
    }

    fn space(&mut self, out: &mut Vec<u8>) {
        if self.pretty {
            let space = *self.rng.pick(&[" ", "\n  ", "\t", "\r\n"]);
            out.extend_from_slice(space.as_bytes());
        }
    }

    fn object(&mut self, mut members: Vec<(String, Vec<u8>)>) -> Vec<u8> {
        if self.rng.one_in(3) {
            // Another key order.
            for i in (1..members.len()).rev() {
                let j = self.rng.below(i + 1);
                members.swap(i, j);
            }
        }
        let mut out = vec![b'{'];
        for (i, (key, value)) in members.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.space(&mut out);
            out.extend_from_slice(&self.string(&key));
            out.push(b':');
            self.space(&mut out);
            out.extend_from_slice(&value);
        }
        self.space(&mut out);
        out.push(b'}');
        out
    }

    fn array(&mut self, items: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = vec![b'['];
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.space(&mut out);
            out.extend_from_slice(&item);
        }
        out.push(b']');
        out
    }

    /// `text` as a JSON string, now and then with its characters escaped.
    fn string(&mut self, text: &str) -> Vec<u8> {
        let escape_all = self.rng.one_in(20);
        let mut out = vec![b'"'];
        for c in text.chars() {
            if c == '"' || c == '\\' || (c as u32) < 0x20 || escape_all {
                let mut units = [0_u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            } else {
                let mut buf = [0_u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        out.push(b'"');
        out
    }

    /// An id: valid mostly, else anything.
    fn id(&mut self) -> Vec<u8> {
        match self.rng.below(30) {
            0 => self.any_value(2),
            1 => self.rng.pick(STRINGS).as_bytes().to_vec(),
            2 => {
                let long = "i".repeat(120 + self.rng.below(20));
                self.string(&long)
            }
            _ => {
                let n = 1 + self.rng.below(12);
                let text: String = (0..n)
                    .map(|_| {
                        *self
                            .rng
                            .pick(&['a', 'Z', '0', '9', '.', '_', ':', '@', '-'])
                    })
                    .collect();
                self.string(&text)
            }
        }
    }

    /// A number: in range mostly, else from [`NUMBERS`].
    fn number(&mut self, max: f64) -> Vec<u8> {
        if self.rng.one_in(300) {
            return self.rng.pick(BAD_NUMBERS).as_bytes().to_vec();
        }
        if self.rng.one_in(4) {
            return self.rng.pick(NUMBERS).as_bytes().to_vec();
        }
        let value = (self.rng.next() % 1_000_001) as f64 / 1_000_000.0 * max;
        if self.rng.one_in(2) && value.fract() == 0.0 {
            format!("{value:.0}").into_bytes()
        } else {
            format!("{value}").into_bytes()
        }
    }

    fn timestamp(&mut self, now: DateTime<Utc>) -> Vec<u8> {
        if self.rng.one_in(15) {
            return self.rng.pick(STRINGS).as_bytes().to_vec();
        }
        // Mostly within the accepted span, now and then before or after it.
        let span = 8 * 24 * 3_600_000_i64;
        let ms = (self.rng.next() % span as u64) as i64 - span + 10 * 60_000;
        let time = now + TimeDelta::milliseconds(ms);
        let text = if self.rng.one_in(5) {
            let zone = chrono::FixedOffset::east_opt(3600).expect("an hour is an offset");
            time.with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false)
        } else {
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        self.string(&text)
    }

    /// A label for `task`, now and then of another kind.
    fn label(&mut self, task: &str) -> Vec<u8> {
        if self.rng.one_in(10) {
            return self.any_value(2);
        }
        match task {
            "binary_classification" => self
                .rng
                .pick(&["0", "1", "true", "false", "2", "1.0"])
                .as_bytes()
                .to_vec(),
            "multiclass_classification" => match self.rng.below(6) {
                0 => self.string(OVERFLOW_BUCKET),
                1 => {
                    let long = "l".repeat(MAX_LABEL_BYTES + self.rng.below(2));
                    self.string(&long)
                }
                2 => self.rng.pick(NUMBERS).as_bytes().to_vec(),
                _ => {
                    let label = format!("class-{}", self.rng.below(20));
                    self.string(&label)
                }
            },
            _ => self.number(1e6),
        }
    }

    fn prediction(&mut self, task: &str, now: DateTime<Utc>) -> Vec<u8> {
        if self.rng.one_in(100) {
            return self.any_value(3);
        }
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        if self.rng.one_in(2) {
            members.push(("prediction_id".into(), self.id()));
        }
        if !self.rng.one_in(50) {
            members.push(("timestamp".into(), self.timestamp(now)));
        }
        if !self.rng.one_in(50) {
            members.push(("latency_ms".into(), self.number(MAX_LATENCY_MS / 1000.0)));
        }
        let error = self.rng.one_in(8);
        if !self.rng.one_in(50) {
            let status = if error { "error" } else { "ok" };
            let status = if self.rng.one_in(50) {
                self.any_value(1)
            } else {
                self.string(status)
            };
            members.push(("status".into(), status));
        }
        if error != self.rng.one_in(30) {
            let error_type = if self.rng.one_in(10) {
                self.string(OVERFLOW_BUCKET)
            } else {
                self.id()
            };
            members.push(("error_type".into(), error_type));
        }
        if !error || self.rng.one_in(30) {
            members.push(("predicted".into(), self.label(task)));
        }
        if self.rng.one_in(2) {
            members.push(("actual".into(), self.label(task)));
        }
        if task != "regression" && self.rng.one_in(2) || self.rng.one_in(40) {
            members.push(("score".into(), self.number(1.0)));
        }
        self.stray_members(&mut members);
        self.object(members)
    }

    fn resource(&mut self, now: DateTime<Utc>) -> Vec<u8> {
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        if !self.rng.one_in(20) {
            members.push(("timestamp".into(), self.timestamp(now)));
        }
        for key in ["cpu_utilization", "memory_utilization", "gpu_utilization"] {
            if self.rng.one_in(2) {
                members.push((key.into(), self.number(1.0)));
            }
        }
        if self.rng.one_in(2) {
            members.push(("queue_depth".into(), self.number(MAX_QUEUE_DEPTH)));
        }
        for key in ["cache_hits", "cache_misses"] {
            if self.rng.one_in(2) {
                let count = if self.rng.one_in(3) {
                    self.rng.pick(NUMBERS).as_bytes().to_vec()
                } else {
                    (self.rng.next() % (MAX_CACHE_COUNT + 2))
                        .to_string()
                        .into_bytes()
                };
                members.push((key.into(), count));
            }
        }
        self.stray_members(&mut members);
        self.object(members)
    }

    /// Now and then an unknown member, a repeated one, or random JSON in a known one.
    fn stray_members(&mut self, members: &mut Vec<(String, Vec<u8>)>) {
        if self.rng.one_in(20) {
            let value = self.any_value(3);
            members.push(("extra".into(), value));
        }
        if self.rng.one_in(20) && !members.is_empty() {
            let key = members[self.rng.below(members.len())].0.clone();
            let value = self.any_value(2);
            members.push((key, value));
        }
        if self.rng.one_in(20) && !members.is_empty() {
            let i = self.rng.below(members.len());
            members[i].1 = self.any_value(3);
        }
        if self.rng.one_in(200) {
            let depth = 120 + self.rng.below(20);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            members.push(("deep".into(), nested.into_bytes()));
        }
    }

    /// Any JSON value, nested up to `depth` more levels.
    fn any_value(&mut self, depth: usize) -> Vec<u8> {
        match self.rng.below(if depth == 0 { 5 } else { 7 }) {
            0 => b"null".to_vec(),
            1 => self.rng.pick(&["true", "false"]).as_bytes().to_vec(),
            2 if self.rng.one_in(50) => self.rng.pick(BAD_NUMBERS).as_bytes().to_vec(),
            2 => self.rng.pick(NUMBERS).as_bytes().to_vec(),
            3 if self.rng.one_in(50) => self.rng.pick(BAD_STRINGS).as_bytes().to_vec(),
            3 => self.rng.pick(STRINGS).as_bytes().to_vec(),
            4 => {
                let text = (0..self.rng.below(6))
                    .map(|_| *self.rng.pick(&['x', 'é', '"', '\\', '\u{1F600}', '\n']))
                    .collect::<String>();
                self.string(&text)
            }
            5 => {
                let n = self.rng.below(5);
                let items = (0..n).map(|_| self.any_value(depth - 1)).collect();
                self.array(items)
            }
            _ => {
                let n = self.rng.below(5);
                let members = (0..n)
                    .map(|_| {
                        let key = if self.rng.one_in(2) {
                            self.rng
                                .pick(&["timestamp", "status", "predicted"])
                                .to_string()
                        } else {
                            format!("k{}", self.rng.below(4))
                        };
                        (key, self.any_value(depth - 1))
                    })
                    .collect();
                self.object(members)
            }
        }
    }
}

/// What the parser answered, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Answer {
    /// Accepted.
    Accepted,
    /// 400 naming fields.
    Invalid,
    /// 400: the body is not valid JSON.
    NotJson,
    /// 413.
    TooLarge,
}

/// Checks one answer of `parse_batch` to `body`: every accepted value within its
/// bounds, the problem list within its cap, and "not valid JSON" exactly when
/// serde_json refuses the body (unless the parser stopped early at a limit).
pub fn check(
    body: &[u8],
    answer: &Result<ValidBatch, BatchRejection>,
    now: DateTime<Utc>,
    limits: &BatchLimits,
) -> Result<Answer, String> {
    let kind = match answer {
        Ok(batch) => {
            accepted_within_bounds(batch, now, limits)?;
            if content_digest(batch) != content_digest(batch) {
                return Err("the digest is not deterministic".into());
            }
            Answer::Accepted
        }
        Err(BatchRejection::TooLarge(_)) => Answer::TooLarge,
        Err(BatchRejection::Invalid {
            problems,
            truncated,
        }) => {
            if problems.is_empty() || problems.len() > MAX_PROBLEMS {
                return Err(format!("{} problems listed", problems.len()));
            }
            if *truncated && problems.len() < MAX_PROBLEMS {
                return Err("truncated with room left".into());
            }
            match problems.first() {
                Some(p) if p.field == "body" && p.reason.starts_with("is not valid JSON") => {
                    Answer::NotJson
                }
                _ => Answer::Invalid,
            }
        }
    };
    let json_ok = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    match (kind, json_ok) {
        (Answer::NotJson, true) => Err("valid JSON refused as invalid".into()),
        (Answer::Accepted | Answer::Invalid, false) => {
            Err(format!("invalid JSON answered {kind:?}"))
        }
        _ => Ok(kind),
    }
}

fn accepted_within_bounds(
    batch: &ValidBatch,
    now: DateTime<Utc>,
    limits: &BatchLimits,
) -> Result<(), String> {
    let fail = |what: &str| Err(format!("accepted {what}"));
    if batch.predictions.is_empty() || batch.predictions.len() > limits.max_predictions {
        return fail("a wrong number of predictions");
    }
    if batch.resources.len() > limits.max_resources {
        return fail("too many resources");
    }
    let in_time = |t: DateTime<Utc>| t >= now - limits.max_age && t <= now + limits.max_future;
    let label_ok = |l: &Option<String>| {
        l.as_ref()
            .is_none_or(|l| !l.is_empty() && l.len() <= MAX_LABEL_BYTES && l != OVERFLOW_BUCKET)
    };
    let score_ok = |s: &Option<f64>| s.is_none_or(|s| (0.0..=1.0).contains(&s));
    for p in &batch.predictions {
        let r = &p.record;
        if !in_time(r.timestamp) {
            return fail("a timestamp out of span");
        }
        if !(0.0..=MAX_LATENCY_MS).contains(&r.latency_ms) {
            return fail("a latency out of bounds");
        }
        if r.error_type.as_deref() == Some(OVERFLOW_BUCKET) {
            return fail("the reserved error type");
        }
        let ok = match &r.outcome {
            Outcome::Binary { score, .. } => score_ok(score),
            Outcome::Multiclass {
                predicted,
                actual,
                score,
            } => label_ok(predicted) && label_ok(actual) && score_ok(score),
            Outcome::Regression { predicted, actual } => [predicted, actual]
                .iter()
                .all(|v| v.is_none_or(|v| regression_value_problem(v).is_none())),
        };
        if !ok {
            return fail("an outcome out of bounds");
        }
    }
    for r in &batch.resources {
        let fraction = |v: Option<f64>| v.is_none_or(|v| (0.0..=1.0).contains(&v));
        let count = |c: Option<u64>| c.is_none_or(|c| c <= MAX_CACHE_COUNT);
        let ok = in_time(r.timestamp)
            && fraction(r.cpu_utilization)
            && fraction(r.memory_utilization)
            && fraction(r.gpu_utilization)
            && r.queue_depth
                .is_none_or(|q| (0.0..=MAX_QUEUE_DEPTH).contains(&q))
            && count(r.cache_hits)
            && count(r.cache_misses);
        if !ok {
            return fail("a resource sample out of bounds");
        }
    }
    Ok(())
}

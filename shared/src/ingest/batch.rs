//! The prediction-batch contract of `POST /api/v1/monitoring/predictions`: the whole
//! batch is validated before anything is written, and every problem (up to
//! [`MAX_PROBLEMS`]) is reported with its record index, field and reason.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::json::{
    Body, Fields, List, Member, PREDICTION_FIELDS, PredictionBody, RESOURCE_FIELDS, RawBatch,
    ReadError, Record, Stray, Value, read_body,
};
use crate::domain::ids::{ModelId, check_id};
use crate::domain::slice::{MAX_SEGMENT_KEYS_PER_PREDICTION, check_segment_key};
use crate::domain::{
    BatchHeader, IdSpan, MAX_CACHE_COUNT, MAX_LABEL_BYTES, MAX_LATENCY_MS, MAX_QUEUE_DEPTH,
    OVERFLOW_BUCKET, Outcome, PredictionRecord, ResourceSample, SegmentIds, Status, Task,
    ValidBatch, ValidPrediction, regression_value_problem,
};

/// At most this many problems are listed in one rejection.
pub const MAX_PROBLEMS: usize = 100;

/// Size and time limits of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLimits {
    /// Most predictions in one batch (more is 413).
    pub max_predictions: usize,
    /// Most resource samples in one batch (more is 413).
    pub max_resources: usize,
    /// Largest body in bytes (Lambda's synchronous payload limit; more is 413).
    pub max_body_bytes: usize,
    /// Oldest accepted event time, before `now`.
    pub max_age: TimeDelta,
    /// Latest accepted event time, after `now` (clock skew of the serving hosts).
    pub max_future: TimeDelta,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_predictions: 10_000,
            max_resources: 10_000,
            max_body_bytes: 6 * 1024 * 1024,
            max_age: TimeDelta::days(7),
            max_future: TimeDelta::minutes(5),
        }
    }
}

/// One thing wrong with a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Index of the record in `predictions` or `resources`; `None` for batch fields.
    pub index: Option<usize>,
    /// Path of the field, e.g. `predictions[3].latency_ms`.
    pub field: String,
    /// Why the value is refused.
    pub reason: String,
}

/// Why a batch was refused; nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRejection {
    /// Over a size limit (413).
    TooLarge(Problem),
    /// Invalid content (400): the first [`MAX_PROBLEMS`] problems, and whether more
    /// were found.
    Invalid {
        /// The problems, in body order.
        problems: Vec<Problem>,
        /// More problems exist than are listed.
        truncated: bool,
    },
}

/// Parses and validates a batch body received at `now`.
///
/// The body is read in one streaming pass ([`json`](super::json)): a record list is
/// refused (413) at its first record past the limit, and nothing is kept of the body
/// beyond the records' scalar fields, so the heap needed is bounded by the limits, not
/// by what the body holds. Validation runs once the body is read (a record's checks
/// depend on `task`, which may come after the records).
pub fn parse_batch(
    body: &[u8],
    now: DateTime<Utc>,
    limits: &BatchLimits,
) -> Result<ValidBatch, BatchRejection> {
    let read = |body| read_body(body, limits.max_predictions, limits.max_resources);
    parse(body, now, limits, read, |v, body| v.batch(body))
}

/// Parses and validates a body of some kind received at `now`: refused (413) over the
/// size limit before it is `read`, then read and `validate`d.
pub(super) fn parse<'b, B, T>(
    body: &'b [u8],
    now: DateTime<Utc>,
    limits: &BatchLimits,
    read: impl FnOnce(&'b [u8]) -> Result<B, ReadError>,
    validate: impl FnOnce(&mut Validator, &B) -> Option<T>,
) -> Result<T, BatchRejection> {
    check_body_size(body, limits)?;
    let body = read(body).map_err(read_refusal)?;
    let mut v = Validator::new(now, limits);
    let out = validate(&mut v, &body);
    v.finish(out)
}

/// Refuses (413) a body over the size limit before it is read.
fn check_body_size(body: &[u8], limits: &BatchLimits) -> Result<(), BatchRejection> {
    if body.len() > limits.max_body_bytes {
        return Err(BatchRejection::TooLarge(Problem {
            index: None,
            field: "body".into(),
            reason: format!(
                "is {} bytes; the limit is {} bytes",
                body.len(),
                limits.max_body_bytes
            ),
        }));
    }
    Ok(())
}

/// The refusal of a body that could not be read.
fn read_refusal(err: ReadError) -> BatchRejection {
    match err {
        ReadError::TooLarge { list, limit } => BatchRejection::TooLarge(Problem {
            index: None,
            field: list.to_owned(),
            reason: format!("holds more than {limit} records; the limit is {limit}"),
        }),
        ReadError::Json(err) => BatchRejection::Invalid {
            problems: vec![Problem {
                index: None,
                field: "body".into(),
                reason: format!("is not valid JSON: {err}"),
            }],
            truncated: false,
        },
    }
}

/// A batch object as read, with its ids checked.
pub(super) struct BatchHead<'b, 'a, const F: usize, L> {
    /// The object.
    pub(super) raw: &'b RawBatch<'a, F, L>,
    /// `model_id`, when valid.
    pub(super) model_id: Option<ModelId>,
    /// `batch_id`, when valid.
    pub(super) batch_id: Option<String>,
}

/// The distinct segment pairs of a batch, interned as its predictions are validated
/// (borrowed from the body until then).
#[derive(Default)]
struct SegmentPairs<'r> {
    ids: HashMap<(&'r str, &'r str), u32, foldhash::fast::RandomState>,
    pairs: Vec<(String, String)>,
}

impl<'r> SegmentPairs<'r> {
    /// The index of `(key, value)`, when met before (and so checked before).
    fn known(&self, key: &str, value: &str) -> Option<u32> {
        self.ids.get(&(key, value)).copied()
    }

    /// The index of `(key, value)`, added when new.
    fn id(&mut self, key: &'r str, value: &'r str) -> u32 {
        // At most 8 pairs for each of 10,000 predictions: far below u32::MAX.
        let next = u32::try_from(self.pairs.len()).unwrap_or(u32::MAX);
        *self.ids.entry((key, value)).or_insert_with(|| {
            self.pairs.push((key.to_owned(), value.to_owned()));
            next
        })
    }
}

/// The strings of a batch's predictions as they are validated: the members their
/// segment objects kept (read), their segments' pairs and their ids (kept).
struct BatchStrings<'r, 'a> {
    members: &'r [Member<'a>],
    pairs: SegmentPairs<'r>,
    ids: String,
}

/// Walks the body as read, collecting problems.
pub(super) struct Validator<'l> {
    problems: Vec<Problem>,
    found: usize,
    pub(super) now: DateTime<Utc>,
    limits: &'l BatchLimits,
    /// The oldest and the latest event time accepted (`now` and the limits' spans,
    /// computed once, not for each record).
    accepted: (DateTime<Utc>, DateTime<Utc>),
}

/// Where a value sits: a batch field or a record's field.
#[derive(Clone, Copy)]
pub(super) struct At<'p> {
    pub(super) list: &'p str,
    pub(super) index: Option<usize>,
}

impl At<'_> {
    pub(super) const BATCH: At<'static> = At {
        list: "",
        index: None,
    };

    /// The path of the record itself, or `batch_field` for batch-level values.
    fn whole(&self, batch_field: &str) -> String {
        match self.index {
            Some(i) => format!("{}[{i}]", self.list),
            None => batch_field.to_owned(),
        }
    }

    fn path(&self, field: &str) -> String {
        match self.index {
            Some(i) => format!("{}[{i}].{field}", self.list),
            None => field.to_owned(),
        }
    }
}

impl<'l> Validator<'l> {
    pub(super) fn new(now: DateTime<Utc>, limits: &'l BatchLimits) -> Self {
        Self {
            problems: Vec::new(),
            found: 0,
            now,
            limits,
            accepted: (
                (now.checked_sub_signed(limits.max_age)).unwrap_or(DateTime::<Utc>::MIN_UTC),
                (now.checked_add_signed(limits.max_future)).unwrap_or(DateTime::<Utc>::MAX_UTC),
            ),
        }
    }

    /// `out` when nothing was found wrong, else the problems.
    pub(super) fn finish<T>(self, out: Option<T>) -> Result<T, BatchRejection> {
        match out {
            Some(out) if self.found == 0 => Ok(out),
            _ => Err(BatchRejection::Invalid {
                truncated: self.found > self.problems.len(),
                problems: self.problems,
            }),
        }
    }

    /// Problems found so far.
    pub(super) fn found(&self) -> usize {
        self.found
    }

    pub(super) fn problem(&mut self, at: At, field: &str, reason: impl Into<String>) {
        self.listed(at.index, || at.path(field), reason);
    }

    /// Counts a problem and lists it while there is room.
    fn listed(
        &mut self,
        index: Option<usize>,
        field: impl FnOnce() -> String,
        reason: impl Into<String>,
    ) {
        self.found += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                index,
                field: field(),
                reason: reason.into(),
            });
        }
    }

    /// The `count` unknown or repeated fields of one object, the next ones of `kept`
    /// (all of them counted, as many listed as were kept).
    pub(super) fn strays(&mut self, at: At, count: usize, kept: &mut std::slice::Iter<Stray>) {
        let mut listed = 0;
        for stray in kept.by_ref().take(count) {
            let reason = if stray.repeated {
                "appears more than once"
            } else {
                "is not a known field"
            };
            self.problem(at, &stray.key, reason);
            listed += 1;
        }
        self.found += count - listed;
    }

    /// The fields of a record, reporting it when it is not an object and its unknown
    /// and repeated fields.
    pub(super) fn record<'r, 'a, const N: usize>(
        &mut self,
        at: At,
        record: &'r Record<'a, N>,
        strays: &mut std::slice::Iter<Stray>,
    ) -> Option<&'r Fields<'a, N>> {
        match record {
            Record::NotObject(kind) => {
                let reason = format!("must be an object, found {kind}");
                self.listed(at.index, || at.whole(""), reason);
                None
            }
            Record::Object { fields, strays: n } => {
                self.strays(at, *n, strays);
                Some(fields)
            }
        }
    }

    /// The batch object of `body` with its own unknown and repeated fields reported,
    /// and its `model_id` and `batch_id` (`None` where a problem was reported).
    pub(super) fn batch_head<'b, 'a, const F: usize, L>(
        &mut self,
        body: &'b Body<'a, F, L>,
    ) -> Option<BatchHead<'b, 'a, F, L>> {
        let at = At::BATCH;
        let raw = match body {
            Body::NotObject(kind) => {
                self.problem(at, "body", format!("must be an object, found {kind}"));
                return None;
            }
            Body::Batch(raw) => raw,
        };
        self.strays(at, raw.stray_count, &mut raw.strays.iter());
        let get = |name: &str| raw.fields.get(name);
        let model_id = self
            .id(at, "model_id", get("model_id"), true)
            .and_then(|id| ModelId::parse(&id).ok());
        let batch_id = self.id(at, "batch_id", get("batch_id"), true);
        Some(BatchHead {
            raw,
            model_id,
            batch_id,
        })
    }

    fn batch(&mut self, body: &PredictionBody) -> Option<ValidBatch> {
        let at = At::BATCH;
        let BatchHead {
            raw,
            model_id,
            batch_id,
        } = self.batch_head(body)?;
        let get = |name: &str| raw.fields.get(name);
        let model_version = self
            .id(at, "model_version", get("model_version"), false)
            .and_then(|version| self.unreserved(at, "model_version", version));
        let task = match get("task") {
            None => {
                self.problem(at, "task", "is required");
                None
            }
            Some(Value::Str(name)) => match name.parse::<Task>() {
                Ok(task) => Some(task),
                Err(_) => {
                    self.problem(
                        at,
                        "task",
                        "must be one of binary_classification, multiclass_classification, regression",
                    );
                    None
                }
            },
            Some(other) => {
                self.problem(
                    at,
                    "task",
                    format!("must be a string, found {}", other.kind()),
                );
                None
            }
        };
        let (predictions, mut prediction_strays) =
            self.list(raw.lists.predictions.as_ref(), "predictions", true);
        let (resources, mut resource_strays) =
            self.list(raw.lists.resources.as_ref(), "resources", false);

        let mut valid_predictions = Vec::with_capacity(predictions.len());
        let mut strings = BatchStrings {
            members: raw.lists.predictions.as_ref().map_or(&[], List::members),
            pairs: SegmentPairs::default(),
            ids: String::new(),
        };
        for (index, record) in predictions.iter().enumerate() {
            let at = At {
                list: "predictions",
                index: Some(index),
            };
            let strays = &mut prediction_strays;
            if let Some(p) = self.prediction(at, record, task, strays, &mut strings) {
                valid_predictions.push(p);
            }
        }
        let mut valid_resources = Vec::with_capacity(resources.len());
        for (index, record) in resources.iter().enumerate() {
            let at = At {
                list: "resources",
                index: Some(index),
            };
            if let Some(r) = self.resource(at, record, &mut resource_strays) {
                valid_resources.push(r);
            }
        }
        match (model_id, batch_id, task) {
            (Some(model_id), Some(batch_id), Some(task)) => ValidBatch::new(
                BatchHeader {
                    model_id,
                    batch_id,
                    model_version,
                    task,
                },
                valid_predictions,
                valid_resources,
                strings.pairs.pairs,
                strings.ids,
            ),
            _ => None,
        }
    }

    /// The records of a list and its records' kept strays (the limit was enforced
    /// while reading).
    pub(super) fn list<'r, 'a, const N: usize>(
        &mut self,
        list: Option<&'r List<'a, N>>,
        name: &str,
        required: bool,
    ) -> (&'r [Record<'a, N>], std::slice::Iter<'r, Stray<'a>>) {
        let none = (&[][..], Default::default());
        match list {
            // An optional list may be `null`.
            None | Some(List::Other("null")) if !required => none,
            None => {
                self.problem(At::BATCH, name, "is required");
                none
            }
            Some(List::Records { records, .. }) if records.is_empty() && required => {
                self.problem(At::BATCH, name, "must not be empty");
                none
            }
            Some(List::Records {
                records, strays, ..
            }) => (records, strays.iter()),
            Some(List::Other(kind)) => {
                self.problem(At::BATCH, name, format!("must be an array, found {kind}"));
                none
            }
        }
    }

    fn prediction<'r>(
        &mut self,
        at: At,
        record: &'r Record<{ PREDICTION_FIELDS.len() }>,
        task: Option<Task>,
        strays: &mut std::slice::Iter<Stray>,
        strings: &mut BatchStrings<'r, '_>,
    ) -> Option<ValidPrediction> {
        let before = self.found;
        // In the order of PREDICTION_FIELDS (taken by position: a lookup by name was a
        // tenth of the read).
        let [
            prediction_id,
            timestamp,
            latency_ms,
            status,
            error_type,
            predicted,
            actual,
            score,
            segment,
        ] = self.record(at, record, strays)?.each();
        let prediction_id = self.id_in(at, "prediction_id", prediction_id, false);
        let timestamp = self.timestamp(at, timestamp);
        let latency_ms = self.number(
            at,
            "latency_ms",
            latency_ms,
            true,
            from_zero_to(MAX_LATENCY_MS),
        );
        let status = match status {
            None => {
                self.problem(at, "status", "is required");
                None
            }
            Some(Value::Str(s)) if s == "ok" => Some(Status::Ok),
            Some(Value::Str(s)) if s == "error" => Some(Status::Error),
            Some(Value::Str(_)) => {
                self.problem(at, "status", "must be \"ok\" or \"error\"");
                None
            }
            Some(other) => {
                self.problem(
                    at,
                    "status",
                    format!("must be a string, found {}", other.kind()),
                );
                None
            }
        };
        let error_type = match (status, error_type) {
            (Some(Status::Error), None) => {
                self.problem(at, "error_type", "is required when status is \"error\"");
                None
            }
            (Some(Status::Ok), Some(_)) => {
                self.problem(at, "error_type", "is only allowed when status is \"error\"");
                None
            }
            (_, node) => self
                .id(at, "error_type", node, false)
                .and_then(|name| self.unreserved(at, "error_type", name)),
        };
        if status == Some(Status::Error) && predicted.is_some() {
            self.problem(at, "predicted", "must be absent when status is \"error\"");
        }
        if status == Some(Status::Ok) && predicted.is_none() {
            self.problem(at, "predicted", "is required when status is \"ok\"");
        }
        let outcome = task.and_then(|task| self.outcome(at, task, predicted, actual, score));
        let segment = self.segment(at, segment, strings);
        if self.found > before {
            return None;
        }
        let prediction_id = match prediction_id.map(|id| IdSpan::push(&mut strings.ids, id)) {
            Some(None) => {
                self.problem(
                    at,
                    "prediction_id",
                    "is past the 4 GiB of ids a batch holds",
                );
                return None;
            }
            kept => kept.flatten(),
        };
        Some(ValidPrediction {
            segment: segment?,
            prediction_id,
            record: PredictionRecord {
                timestamp: timestamp?,
                latency_ms: latency_ms??,
                status: status?,
                error_type,
                outcome: outcome?,
            },
        })
    }

    fn outcome(
        &mut self,
        at: At,
        task: Task,
        predicted: Option<&Value>,
        actual: Option<&Value>,
        score: Option<&Value>,
    ) -> Option<Outcome> {
        if task == Task::Regression && score.is_some() {
            self.problem(
                at,
                "score",
                "is only allowed for binary_classification and multiclass_classification",
            );
        }
        Some(match task {
            Task::BinaryClassification => Outcome::Binary {
                predicted: self.binary_label(at, "predicted", predicted)?,
                actual: self.binary_label(at, "actual", actual)?,
                score: self.probability(at, score)?,
            },
            Task::MulticlassClassification => Outcome::Multiclass {
                predicted: self.class_label(at, "predicted", predicted)?,
                actual: self.class_label(at, "actual", actual)?,
                score: self.probability(at, score)?,
            },
            Task::Regression => Outcome::Regression {
                predicted: self.number(at, "predicted", predicted, false, regression_value)?,
                actual: self.number(at, "actual", actual, false, regression_value)?,
            },
        })
    }

    /// A classifier's optional `score`: a probability in `[0, 1]`.
    fn probability(&mut self, at: At, score: Option<&Value>) -> Option<Option<f64>> {
        self.number(at, "score", score, false, |v| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err("must be within [0, 1]".into())
            }
        })
    }

    /// A binary class: `0`/`1` or a boolean. `Some(None)` when absent.
    fn binary_label(&mut self, at: At, field: &str, node: Option<&Value>) -> Option<Option<bool>> {
        match node {
            None => Some(None),
            Some(Value::Bool(b)) => Some(Some(*b)),
            Some(Value::Int(0)) => Some(Some(false)),
            Some(Value::Int(1)) => Some(Some(true)),
            Some(_) => {
                self.problem(
                    at,
                    field,
                    "must be 0, 1, true or false for binary_classification",
                );
                None
            }
        }
    }

    /// A multiclass label: a string or an integer (kept in decimal). `Some(None)` when absent.
    fn class_label(&mut self, at: At, field: &str, node: Option<&Value>) -> Option<Option<String>> {
        match node {
            None => Some(None),
            Some(Value::Int(i)) => Some(Some(i.to_string())),
            Some(Value::UInt(u)) => Some(Some(u.to_string())),
            Some(Value::Str(s)) if s.is_empty() => {
                self.problem(at, field, "must not be empty");
                None
            }
            Some(Value::Str(s)) if s.len() > MAX_LABEL_BYTES => {
                self.problem(
                    at,
                    field,
                    format!("must be at most {MAX_LABEL_BYTES} bytes"),
                );
                None
            }
            Some(Value::Str(s)) => self.unreserved(at, field, s.as_ref().to_owned()).map(Some),
            Some(other) => {
                self.problem(
                    at,
                    field,
                    format!(
                        "must be a string or an integer label, found {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// An optional (or required) finite number passing `check`. The outer `None` means
    /// a problem was reported; `Some(None)` means absent.
    fn number(
        &mut self,
        at: At,
        field: &str,
        node: Option<&Value>,
        required: bool,
        check: impl Fn(f64) -> Result<(), Cow<'static, str>>,
    ) -> Option<Option<f64>> {
        let Some(node) = node else {
            if required {
                self.problem(at, field, "is required");
                return None;
            }
            return Some(None);
        };
        let Some(value) = node.as_f64() else {
            self.problem(
                at,
                field,
                format!("must be a number, found {}", node.kind()),
            );
            return None;
        };
        if !value.is_finite() {
            self.problem(at, field, "must be finite");
            return None;
        }
        match check(value) {
            Ok(()) => Some(Some(value)),
            Err(reason) => {
                self.problem(at, field, reason);
                None
            }
        }
    }

    /// An optional integer count within `[0, MAX_CACHE_COUNT]`.
    fn count(&mut self, at: At, field: &str, node: Option<&Value>) -> Option<Option<u64>> {
        let count = match node {
            None => return Some(None),
            Some(Value::Int(i)) if *i >= 0 => i.unsigned_abs(),
            Some(Value::UInt(u)) => *u,
            Some(_) => {
                self.problem(at, field, "must be a non-negative integer");
                return None;
            }
        };
        if count > MAX_CACHE_COUNT {
            self.problem(
                at,
                field,
                format!("must be an integer within [0, {MAX_CACHE_COUNT}]"),
            );
            return None;
        }
        Some(Some(count))
    }

    /// An optional `segment`: an object of at most [`MAX_SEGMENT_KEYS_PER_PREDICTION`]
    /// keys (ids without `:`), each mapped to an id; neither may be the overflow
    /// bucket's name. In key order; empty when absent.
    fn segment<'r>(
        &mut self,
        at: At,
        node: Option<&'r Value>,
        strings: &mut BatchStrings<'r, '_>,
    ) -> Option<SegmentIds> {
        let members = match node {
            None => return Some(SegmentIds::default()),
            Some(Value::Members(members)) => members,
            Some(other) => {
                let found = other.kind();
                self.problem(at, "segment", format!("must be an object, found {found}"));
                return None;
            }
        };
        if members.count() > MAX_SEGMENT_KEYS_PER_PREDICTION {
            let reason = format!(
                "has {} keys; at most {MAX_SEGMENT_KEYS_PER_PREDICTION} are allowed",
                members.count()
            );
            self.problem(at, "segment", reason);
            return None;
        }
        let before = self.found;
        // Each member's key, value and, when the batch met the pair before, its index.
        let mut segment = [("", "", None); MAX_SEGMENT_KEYS_PER_PREDICTION];
        let mut len = 0;
        for (key, value) in members.kept(strings.members) {
            let fresh = !segment[..len].iter().any(|(k, ..)| k == key);
            match value {
                // The usual member: a pair met before was checked then; a new one is
                // checked without building its field's path.
                Value::Str(text) if fresh => {
                    let known = strings.pairs.known(key, text);
                    if known.is_none() && !plain_pair(key, text) {
                        self.segment_member_problem(at, key, value, fresh);
                    } else if let Some(slot) = segment.get_mut(len) {
                        // Within the count checked above.
                        *slot = (key.as_ref(), text.as_ref(), known);
                        len += 1;
                    }
                }
                _ => self.segment_member_problem(at, key, value, fresh),
            }
        }
        if self.found > before {
            return None;
        }
        let segment = &mut segment[..len];
        // Keys are distinct (`fresh`).
        segment.sort_unstable_by_key(|&(key, ..)| key);
        let mut ids = [0; MAX_SEGMENT_KEYS_PER_PREDICTION];
        for (id, &(key, value, known)) in ids.iter_mut().zip(segment.iter()) {
            *id = known.unwrap_or_else(|| strings.pairs.id(key, value));
        }
        // `len` is within the array: at most one pair per slot.
        SegmentIds::of(&ids[..len])
    }

    /// Reports what is wrong with the segment member `key`: `value` (`fresh`: the key
    /// was not given before in the same segment).
    fn segment_member_problem(&mut self, at: At, key: &str, value: &Value, fresh: bool) {
        let field = format!("segment.{key}");
        if let Err(err) = check_segment_key(key) {
            let reason = if key.contains(':') {
                "is a key with ':', which separates a segment's key from its value".into()
            } else {
                format!("is a key that {err}")
            };
            self.problem(at, &field, reason);
        } else if !fresh {
            self.problem(at, &field, "is given more than once");
        } else if let Some(value) = self.id(at, &field, Some(value), true) {
            self.unreserved(at, &field, key.to_owned());
            self.unreserved(at, &field, value);
        }
    }

    /// `name`, unless it is the overflow bucket's reserved name.
    fn unreserved(&mut self, at: At, field: &str, name: String) -> Option<String> {
        if name == OVERFLOW_BUCKET {
            self.problem(at, field, "is reserved for the overflow bucket");
            return None;
        }
        Some(name)
    }

    /// An id-like string (1–128 characters of `[A-Za-z0-9._:@-]`).
    pub(super) fn id(
        &mut self,
        at: At,
        field: &str,
        node: Option<&Value>,
        required: bool,
    ) -> Option<String> {
        self.id_in(at, field, node, required).map(str::to_owned)
    }

    /// [`id`](Self::id), borrowed from the body as read.
    fn id_in<'v>(
        &mut self,
        at: At,
        field: &str,
        node: Option<&'v Value>,
        required: bool,
    ) -> Option<&'v str> {
        match node {
            None => {
                if required {
                    self.problem(at, field, "is required");
                }
                None
            }
            Some(Value::Str(s)) => match check_id(s) {
                Ok(()) => Some(s),
                Err(err) => {
                    self.problem(at, field, err.to_string());
                    None
                }
            },
            Some(other) => {
                self.problem(
                    at,
                    field,
                    format!("must be a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// A required RFC 3339 timestamp within the accepted span around `now`.
    fn timestamp(&mut self, at: At, node: Option<&Value>) -> Option<DateTime<Utc>> {
        let Some(node) = node else {
            self.problem(at, "timestamp", "is required");
            return None;
        };
        let time = self.rfc3339(at, node)?;
        if time < self.accepted.0 {
            self.problem(
                at,
                "timestamp",
                format!(
                    "is more than {} hours in the past",
                    self.limits.max_age.num_hours()
                ),
            );
            return None;
        }
        self.not_future(at, time)
    }

    /// `time`, unless it is further in the future than the clock skew allowed.
    pub(super) fn not_future(&mut self, at: At, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if time > self.accepted.1 {
            self.problem(
                at,
                "timestamp",
                format!(
                    "is more than {} seconds in the future",
                    self.limits.max_future.num_seconds()
                ),
            );
            return None;
        }
        Some(time)
    }

    /// An RFC 3339 `timestamp`.
    pub(super) fn rfc3339(&mut self, at: At, node: &Value) -> Option<DateTime<Utc>> {
        let text: &Cow<str> = match node {
            Value::Str(s) => s,
            other => {
                self.problem(
                    at,
                    "timestamp",
                    format!("must be an RFC 3339 string, found {}", other.kind()),
                );
                return None;
            }
        };
        let parsed = parse_utc_fast(text).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        });
        if parsed.is_none() {
            self.problem(at, "timestamp", "must be an RFC 3339 timestamp");
        }
        parsed
    }

    fn resource(
        &mut self,
        at: At,
        record: &Record<{ RESOURCE_FIELDS.len() }>,
        strays: &mut std::slice::Iter<Stray>,
    ) -> Option<ResourceSample> {
        let before = self.found;
        // In the order of RESOURCE_FIELDS.
        let [timestamp, cpu, memory, gpu, queue, hits, misses] =
            self.record(at, record, strays)?.each();
        let fraction = |v: f64| -> Result<(), Cow<'static, str>> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err("must be a fraction within [0, 1]".into())
            }
        };
        let timestamp = self.timestamp(at, timestamp);
        let cpu = self.number(at, "cpu_utilization", cpu, false, fraction);
        let memory = self.number(at, "memory_utilization", memory, false, fraction);
        let gpu = self.number(at, "gpu_utilization", gpu, false, fraction);
        let queue = self.number(
            at,
            "queue_depth",
            queue,
            false,
            from_zero_to(MAX_QUEUE_DEPTH),
        );
        let hits = self.count(at, "cache_hits", hits);
        let misses = self.count(at, "cache_misses", misses);
        if self.found > before {
            return None;
        }
        Some(ResourceSample {
            timestamp: timestamp?,
            cpu_utilization: cpu?,
            memory_utilization: memory?,
            gpu_utilization: gpu?,
            queue_depth: queue?,
            cache_hits: hits?,
            cache_misses: misses?,
        })
    }
}

/// Whether a segment's `key` and `value` pass the checks of
/// [`Validator::segment_member_problem`], which names what fails.
fn plain_pair(key: &str, value: &str) -> bool {
    check_segment_key(key).is_ok()
        && check_id(value).is_ok()
        && ![key, value].contains(&OVERFLOW_BUCKET)
}

/// The check of a number within `[0, max]` (a negative one keeps its message of old).
fn from_zero_to(max: f64) -> impl Fn(f64) -> Result<(), Cow<'static, str>> {
    move |v| {
        if v < 0.0 {
            Err("must be ≥ 0".into())
        } else if v > max {
            Err(format!("must be within [0, {max:e}]").into())
        } else {
            Ok(())
        }
    }
}

/// The check of a regression value: [`regression_value_problem`].
fn regression_value(v: f64) -> Result<(), Cow<'static, str>> {
    regression_value_problem(v).map_or(Ok(()), |reason| Err(reason.into()))
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, parsed without the general
/// RFC 3339 parser (a third of the per-record cost); anything else returns `None` and
/// goes to chrono.
fn parse_utc_fast(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if *b.last()? != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0_u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let mut nanos = 0_u32;
    let rest = &b[19..b.len() - 1];
    if !rest.is_empty() {
        let (dot, digits) = rest.split_first()?;
        if *dot != b'.' || digits.is_empty() || digits.len() > 9 {
            return None;
        }
        for (i, d) in digits.iter().enumerate() {
            if !d.is_ascii_digit() {
                return None;
            }
            nanos += u32::from(d - b'0') * 10_u32.pow(8 - i as u32);
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time =
        chrono::NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests;

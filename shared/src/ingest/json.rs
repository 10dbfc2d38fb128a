//! The streaming reader of a batch body: one pass of serde over the bytes that keeps
//! only what validation needs — the value of each known field as a small typed scalar
//! (strings borrowed from the body where they carry no escapes), the kind of a value
//! that is an array or an object, and the unknown and repeated fields — so the
//! validator can report every problem with its path instead of stopping at serde's
//! first type error. A prediction body is first offered to [`scan`], a byte scanner
//! that builds the same structure for the bodies serving systems usually send and
//! declines the rest to this reader.
//!
//! Nothing else of the body is kept: unknown fields, repeated fields and the content of
//! arrays and objects where a scalar belongs are read and dropped ([`Skip`]), and a
//! record list is refused at its first record past the limit, before that record is
//! read. What is kept is therefore bounded by the limits, not by the body: at most
//! `max_predictions + max_resources` records of a fixed size, strings no longer than
//! the body, and [`MAX_PROBLEMS`] unknown or repeated field names per kind of object.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::batch::MAX_PROBLEMS;
use crate::domain::slice::MAX_SEGMENT_KEYS_PER_PREDICTION;

mod scan;

/// The fields of a batch, in the order their problems are listed.
pub(super) const BATCH_FIELDS: [&str; 6] = [
    "model_id",
    "batch_id",
    "model_version",
    "task",
    "predictions",
    "resources",
];
/// The fields of a prediction.
pub(super) const PREDICTION_FIELDS: [&str; 9] = [
    "prediction_id",
    "timestamp",
    "latency_ms",
    "status",
    "error_type",
    "predicted",
    "actual",
    "score",
    "segment",
];
/// The one field of a record read member by member when it is an object.
const SEGMENT_FIELD: &str = "segment";
/// The fields of a label batch (`POST /api/v1/monitoring/actuals`).
pub(super) const ACTUALS_BATCH_FIELDS: [&str; 3] = ["model_id", "batch_id", "actuals"];
/// The fields of a label.
pub(super) const ACTUAL_FIELDS: [&str; 3] = ["prediction_id", "actual", "timestamp"];
/// The fields of a resource sample.
pub(super) const RESOURCE_FIELDS: [&str; 7] = [
    "timestamp",
    "cpu_utilization",
    "memory_utilization",
    "gpu_utilization",
    "queue_depth",
    "cache_hits",
    "cache_misses",
];

/// The value of a known field as found in the body; arrays and objects by kind only.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer beyond `i64`.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array (its content was skipped).
    Array,
    /// An object (its content was skipped).
    Object,
    /// The object of a `segment` field, member by member.
    Members(Members),
}

/// A member of a `segment` object: its key and its value (a scalar, or a container by
/// kind).
pub(super) type Member<'a> = (Cow<'a, str>, Value<'a>);

/// The members of a `segment` object: the first [`MAX_SEGMENT_KEYS_PER_PREDICTION`]
/// and one more are kept, in body order, in their record list's `members` (no
/// allocation per record), the rest counted. In 32-bit numbers (a body has fewer
/// members than that), which keep a [`Value`] as small as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Members {
    /// Where the kept members start in their list's `members`.
    start: u32,
    /// How many were kept.
    kept: u32,
    /// How many members the object had.
    count: u32,
}

impl Members {
    /// The kept members, from their list's `members`.
    pub(super) fn kept<'m, 'a>(&self, members: &'m [Member<'a>]) -> &'m [Member<'a>] {
        let start = self.start as usize;
        members
            .get(start..start + self.kept as usize)
            .unwrap_or_default()
    }

    /// How many members the object had.
    pub(super) fn count(&self) -> usize {
        self.count as usize
    }

    /// No members yet, the next kept at the end of `members`.
    fn starting_after(members: &[Member]) -> Self {
        Self {
            start: u32::try_from(members.len()).unwrap_or(u32::MAX),
            ..Self::default()
        }
    }

    /// Whether the next member is kept: the first [`MAX_SEGMENT_KEYS_PER_PREDICTION`]
    /// and one more are.
    fn keeps_next(&self) -> bool {
        self.kept as usize <= MAX_SEGMENT_KEYS_PER_PREDICTION
    }

    /// Counts one more member and keeps it in `members` (where the others were kept)
    /// when it is given and [`keeps_next`](Self::keeps_next).
    fn add<'a>(&mut self, members: &mut Vec<Member<'a>>, member: Option<Member<'a>>) {
        self.count = self.count.saturating_add(1);
        if let Some(member) = member.filter(|_| self.keeps_next()) {
            members.push(member);
            self.kept += 1;
        }
    }
}

impl Value<'_> {
    /// The JSON type's name, for error messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::UInt(_) | Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::Array => "an array",
            Self::Object | Self::Members(_) => "an object",
        }
    }

    /// The value as `f64`, when it is a number.
    pub(super) fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Int(i) => Some(i as f64),
            Self::UInt(u) => Some(u as f64),
            Self::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// The known fields of one object: the value of each field's first occurrence.
#[derive(Debug)]
pub(super) struct Fields<'a, const N: usize> {
    known: &'static [&'static str; N],
    values: [Option<Value<'a>>; N],
}

impl<'a, const N: usize> Fields<'a, N> {
    fn new(known: &'static [&'static str; N]) -> Self {
        Self {
            known,
            values: std::array::from_fn(|_| None),
        }
    }

    /// The value of each field, in the order of the known names.
    pub(super) fn each(&self) -> [Option<&Value<'a>>; N] {
        self.values.each_ref().map(Option::as_ref)
    }

    /// The value of field `name`, if present.
    pub(super) fn get(&self, name: &str) -> Option<&Value<'a>> {
        let i = self.known.iter().position(|k| *k == name)?;
        self.values.get(i)?.as_ref()
    }
}

/// An unknown field, or a known field seen before in the same object.
#[derive(Debug)]
pub(super) struct Stray<'a> {
    /// The field's name as found (unescaped).
    pub(super) key: Cow<'a, str>,
    /// Known and seen before (else unknown).
    pub(super) repeated: bool,
}

/// The strays of one kind of object (the batch, its predictions, its resources) in
/// body order: the first [`MAX_PROBLEMS`] are kept, each object counts its own.
///
/// Keeping only the first `MAX_PROBLEMS` is exact: the validator lists problems in
/// body order within each kind of object (all of the batch's strays first, then each
/// prediction's strays and field checks in record order, then each resource's), so
/// the strays of one kind appear in the listing in the order they were read. A stray
/// past the first `MAX_PROBLEMS` of its kind is preceded by at least `MAX_PROBLEMS`
/// problems and can never be listed; it only needs to be counted, for `truncated`.
#[derive(Debug, Default)]
pub(super) struct Strays<'a> {
    kept: Vec<Stray<'a>>,
}

impl<'a> Strays<'a> {
    fn note(&mut self, stray: Stray<'a>) {
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(stray);
        }
    }

    /// The kept strays, in body order.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, Stray<'a>> {
        self.kept.iter()
    }
}

/// One item of a record list.
#[derive(Debug)]
pub(super) enum Record<'a, const N: usize> {
    /// Not an object: the JSON type's name.
    NotObject(&'static str),
    /// An object.
    Object {
        /// Its known fields.
        fields: Fields<'a, N>,
        /// How many unknown or repeated fields it had (its part of the list's strays).
        strays: usize,
    },
}

/// The value of `predictions` or `resources`.
#[derive(Debug)]
pub(super) enum List<'a, const N: usize> {
    /// An array, at most the limit long.
    Records {
        /// Its items, in body order.
        records: Vec<Record<'a, N>>,
        /// The unknown and repeated fields of its records.
        strays: Strays<'a>,
        /// The kept members of its records' `segment` objects ([`Members`]).
        members: Vec<Member<'a>>,
    },
    /// Anything else (`null` included): the JSON type's name.
    Other(&'static str),
}

impl<'a, const N: usize> List<'a, N> {
    /// The kept members of the records' `segment` objects; none unless an array.
    pub(super) fn members(&self) -> &[Member<'a>] {
        match self {
            Self::Records { members, .. } => members,
            Self::Other(_) => &[],
        }
    }
}

/// A body that is a JSON object, read as a batch of some kind: its `F` fields, the
/// record lists among them read into `L`.
#[derive(Debug)]
pub(super) struct RawBatch<'a, const F: usize, L> {
    /// The batch's scalar fields (the slots of the lists stay empty: they are read
    /// into `lists`).
    pub(super) fields: Fields<'a, F>,
    /// The batch's own unknown and repeated fields.
    pub(super) strays: Strays<'a>,
    /// How many there were.
    pub(super) stray_count: usize,
    /// The record lists.
    pub(super) lists: L,
}

/// A body as read.
#[derive(Debug)]
pub(super) enum Body<'a, const F: usize, L> {
    /// Valid JSON, but not an object: the JSON type's name.
    NotObject(&'static str),
    /// An object.
    Batch(Box<RawBatch<'a, F, L>>),
}

/// The record lists of one kind of batch, each read as it comes with its limit.
pub(super) trait BatchLists<'de, const F: usize> {
    /// The batch's fields, lists included, in the order their problems are listed.
    const FIELDS: &'static [&'static str; F];

    /// Reads the value of field `name` when it is one of the lists: `Some(true)` when
    /// read, `Some(false)` when the list was read before (the value is left for the
    /// caller to skip); `None` when `name` is not a list.
    fn read<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        over: &mut Option<ReadError>,
    ) -> Result<Option<bool>, A::Error>;
}

/// Reads the list `name` into `slot` (unless read before), refusing past `limit`.
fn read_list<'de, A: MapAccess<'de>, const N: usize>(
    slot: &mut Option<List<'de, N>>,
    spec: (&'static str, &'static [&'static str; N], usize),
    map: &mut A,
    over: &mut Option<ReadError>,
) -> Result<bool, A::Error> {
    if slot.is_some() {
        return Ok(false);
    }
    let (name, known, limit) = spec;
    *slot = Some(map.next_value_seed(Shaped(ListRead {
        name,
        known,
        limit,
        over,
    }))?);
    Ok(true)
}

/// The lists of a prediction batch.
#[derive(Debug, Default)]
pub(super) struct PredictionLists<'a> {
    /// Most predictions.
    max_predictions: usize,
    /// Most resource samples.
    max_resources: usize,
    /// `predictions`, if present.
    pub(super) predictions: Option<List<'a, { PREDICTION_FIELDS.len() }>>,
    /// `resources`, if present.
    pub(super) resources: Option<List<'a, { RESOURCE_FIELDS.len() }>>,
}

impl<'de> BatchLists<'de, { BATCH_FIELDS.len() }> for PredictionLists<'de> {
    const FIELDS: &'static [&'static str; BATCH_FIELDS.len()] = &BATCH_FIELDS;

    fn read<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        over: &mut Option<ReadError>,
    ) -> Result<Option<bool>, A::Error> {
        Ok(Some(match name {
            "predictions" => read_list(
                &mut self.predictions,
                ("predictions", &PREDICTION_FIELDS, self.max_predictions),
                map,
                over,
            )?,
            "resources" => read_list(
                &mut self.resources,
                ("resources", &RESOURCE_FIELDS, self.max_resources),
                map,
                over,
            )?,
            _ => return Ok(None),
        }))
    }
}

/// The list of a label batch.
#[derive(Debug, Default)]
pub(super) struct ActualLists<'a> {
    /// Most labels.
    max_actuals: usize,
    /// `actuals`, if present.
    pub(super) actuals: Option<List<'a, { ACTUAL_FIELDS.len() }>>,
}

impl<'de> BatchLists<'de, { ACTUALS_BATCH_FIELDS.len() }> for ActualLists<'de> {
    const FIELDS: &'static [&'static str; ACTUALS_BATCH_FIELDS.len()] = &ACTUALS_BATCH_FIELDS;

    fn read<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        over: &mut Option<ReadError>,
    ) -> Result<Option<bool>, A::Error> {
        if name != "actuals" {
            return Ok(None);
        }
        let spec = ("actuals", &ACTUAL_FIELDS, self.max_actuals);
        read_list(&mut self.actuals, spec, map, over).map(Some)
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// A record list holds more records than allowed; reading stopped at the first
    /// record past the limit.
    TooLarge {
        /// `predictions` or `resources`.
        list: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Not valid JSON (nesting deeper than serde_json's limit of 128 included).
    Json(serde_json::Error),
}

/// A prediction batch's body as read.
pub(super) type PredictionBody<'a> = Body<'a, { BATCH_FIELDS.len() }, PredictionLists<'a>>;

/// A label batch's body as read.
pub(super) type ActualsBody<'a> = Body<'a, { ACTUALS_BATCH_FIELDS.len() }, ActualLists<'a>>;

/// Reads a prediction batch's `body`, refusing more than `max_predictions`
/// predictions or `max_resources` resource samples at the first record past the limit.
pub(super) fn read_body(
    body: &[u8],
    max_predictions: usize,
    max_resources: usize,
) -> Result<PredictionBody<'_>, ReadError> {
    // The usual body is read by the scanner (see ARCHITECTURE, "Ingest speed");
    // whatever it declines, serde reads.
    if let Some(body) = std::str::from_utf8(body)
        .ok()
        .and_then(|text| scan::prediction_body(text, max_predictions, max_resources))
    {
        return Ok(body);
    }
    read_batch(
        body,
        PredictionLists {
            max_predictions,
            max_resources,
            ..PredictionLists::default()
        },
    )
}

/// Reads a label batch's `body`, refusing more than `max_actuals` labels at the first
/// record past the limit.
pub(super) fn read_actuals_body(
    body: &[u8],
    max_actuals: usize,
) -> Result<ActualsBody<'_>, ReadError> {
    read_batch(
        body,
        ActualLists {
            max_actuals,
            ..ActualLists::default()
        },
    )
}

fn read_batch<'de, const F: usize, L: BatchLists<'de, F>>(
    body: &'de [u8],
    lists: L,
) -> Result<Body<'de, F, L>, ReadError> {
    // A body checked as UTF-8 once, up front, is read without checking each string
    // again (a sixth of the read); one that is not is read as bytes, for serde_json's
    // error at the first invalid string.
    match std::str::from_utf8(body) {
        Ok(text) => read_from(serde_json::Deserializer::from_str(text), lists),
        Err(_) => read_from(serde_json::Deserializer::from_slice(body), lists),
    }
}

fn read_from<'de, const F: usize, L: BatchLists<'de, F>, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    lists: L,
) -> Result<Body<'de, F, L>, ReadError> {
    let mut over = None;
    let read = Shaped(BodyRead::<F, L> {
        lists,
        over: &mut over,
    })
    .deserialize(&mut de)
    .and_then(|body| de.end().map(|()| body));
    match (read, over) {
        (_, Some(too_large)) => Err(too_large),
        (Ok(body), None) => Ok(body),
        (Err(err), None) => Err(ReadError::Json(err)),
    }
}

/// What to make of one JSON value that should be an object or an array: the shape
/// wanted is read by [`Want::object`] or [`Want::array`], anything else (skipped) is
/// [`Want::other`] with its JSON type's name. Driven by [`Shaped`].
trait Want<'de>: Sized {
    type Out;

    fn other(self, kind: &'static str) -> Self::Out;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(self.other("an object"))
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(self.other("an array"))
    }
}

/// The seed and visitor of a [`Want`].
struct Shaped<W>(W);

impl<'de, W: Want<'de>> DeserializeSeed<'de> for Shaped<W> {
    type Value = W::Out;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<W::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, W: Want<'de>> Visitor<'de> for Shaped<W> {
    type Value = W::Out;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<W::Out, E> {
        Ok(self.0.other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<W::Out, E> {
        Ok(self.0.other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<W::Out, E> {
        Ok(self.0.other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<W::Out, E> {
        Ok(self.0.other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<W::Out, E> {
        Ok(self.0.other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<W::Out, E> {
        Ok(self.0.other("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<W::Out, A::Error> {
        self.0.array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<W::Out, A::Error> {
        self.0.object(map)
    }
}

/// Any JSON value, read and dropped.
///
/// Not `serde::de::IgnoredAny`: serde_json skips that with a loop that counts no
/// nesting and checks neither the range of numbers nor the UTF-8 of strings, so a body
/// would no longer be refused as invalid JSON when such content sits in an unknown
/// field. Going through `deserialize_any` keeps serde_json's recursion limit (128)
/// and its checks for every byte of the body; nothing is allocated (escaped strings
/// are unescaped into the deserializer's reused scratch buffer).
struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Reads a [`Value`]; given a record list's members (the value of a `segment`
/// field), an object member by member into them ([`Members`]), else by kind.
struct ValueRead<'m, 'de>(Option<&'m mut Vec<Member<'de>>>);

impl<'de> DeserializeSeed<'de> for ValueRead<'_, 'de> {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueRead<'_, 'de> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value<'de>, A::Error> {
        Skip.visit_seq(seq).map(|Skip| Value::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let Some(members) = self.0 else {
            return Skip.visit_map(map).map(|Skip| Value::Object);
        };
        let mut read = Members::starting_after(members);
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let member = if read.keeps_next() {
                Some((key, map.next_value_seed(ValueRead(None))?))
            } else {
                map.next_value::<Skip>()?;
                None
            };
            read.add(members, member);
        }
        Ok(Value::Members(read))
    }
}

/// An object key: the index of a known field, or the name of an unknown one.
enum Key<'a> {
    Known(usize),
    Unknown(Cow<'a, str>),
}

/// Reads a [`Key`] against the known field names.
struct KeyRead(&'static [&'static str]);

impl KeyRead {
    fn key<'a>(&self, name: &str, unknown: impl FnOnce() -> Cow<'a, str>) -> Key<'a> {
        match self.0.iter().position(|k| *k == name) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(unknown()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyRead {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyRead {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(self.key(v, || Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(self.key(v, || Cow::Owned(v.to_owned())))
    }
}

/// Reads an object's members: a known field's first occurrence through `first`
/// (which reads its value and returns `true`, or returns `false` without reading when
/// the field was seen before); unknown and repeated fields are noted in `strays` and
/// skipped. Returns how many strays the object had.
fn read_members<'de, A: MapAccess<'de>>(
    map: &mut A,
    known: &'static [&'static str],
    strays: &mut Strays<'de>,
    mut first: impl FnMut(usize, &mut A) -> Result<bool, A::Error>,
) -> Result<usize, A::Error> {
    let mut count = 0;
    while let Some(key) = map.next_key_seed(KeyRead(known))? {
        let stray = match key {
            Key::Known(i) if first(i, map)? => continue,
            Key::Known(i) => Stray {
                key: Cow::Borrowed(known[i]),
                repeated: true,
            },
            Key::Unknown(key) => Stray {
                key,
                repeated: false,
            },
        };
        strays.note(stray);
        count += 1;
        map.next_value::<Skip>()?;
    }
    Ok(count)
}

/// Reads an object key, borrowed from the body where it carries no escapes.
struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Reads the first occurrence of a scalar field into `slot`.
fn read_value<'de, A: MapAccess<'de>>(
    slot: Option<&mut Option<Value<'de>>>,
    map: &mut A,
) -> Result<bool, A::Error> {
    match slot {
        Some(slot @ None) => {
            *slot = Some(map.next_value_seed(ValueRead(None))?);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Reads the whole body of a batch with the lists `L`.
struct BodyRead<'o, const F: usize, L> {
    lists: L,
    over: &'o mut Option<ReadError>,
}

impl<'de, const F: usize, L: BatchLists<'de, F>> Want<'de> for BodyRead<'_, F, L> {
    type Out = Body<'de, F, L>;

    fn other(self, kind: &'static str) -> Body<'de, F, L> {
        Body::NotObject(kind)
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de, F, L>, A::Error> {
        let mut fields = Fields::new(L::FIELDS);
        let mut strays = Strays::default();
        let Self { mut lists, over } = self;
        let stray_count = read_members(&mut map, L::FIELDS, &mut strays, |i, map| {
            match lists.read(L::FIELDS[i], map, over)? {
                Some(read) => Ok(read),
                None => read_value(fields.values.get_mut(i), map),
            }
        })?;
        Ok(Body::Batch(Box::new(RawBatch {
            fields,
            strays,
            stray_count,
            lists,
        })))
    }
}

/// Reads `predictions` or `resources`, refusing at the first record past `limit`.
struct ListRead<'o, const N: usize> {
    name: &'static str,
    known: &'static [&'static str; N],
    limit: usize,
    over: &'o mut Option<ReadError>,
}

impl<'de, const N: usize> Want<'de> for ListRead<'_, N> {
    type Out = List<'de, N>;

    fn other(self, kind: &'static str) -> List<'de, N> {
        List::Other(kind)
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<'de, N>, A::Error> {
        let mut records = Vec::new();
        let mut strays = Strays::default();
        let mut members = Vec::new();
        loop {
            if records.len() == self.limit {
                // One more record is one too many: refused before it is read.
                let refuse = Refuse {
                    over: self.over,
                    too_large: ReadError::TooLarge {
                        list: self.name,
                        limit: self.limit,
                    },
                };
                seq.next_element_seed(refuse)?;
                break;
            }
            let read = RecordRead {
                known: self.known,
                strays: &mut strays,
                members: &mut members,
            };
            match seq.next_element_seed(Shaped(read))? {
                Some(record) => records.push(record),
                None => break,
            }
        }
        Ok(List::Records {
            records,
            strays,
            members,
        })
    }
}

/// The seed of a list item past the limit: notes the refusal and stops the reader.
struct Refuse<'o> {
    over: &'o mut Option<ReadError>,
    too_large: ReadError,
}

impl<'de> DeserializeSeed<'de> for Refuse<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        *self.over = Some(self.too_large);
        Err(de::Error::custom("too many records"))
    }
}

/// Reads one item of a record list.
struct RecordRead<'s, 'de, const N: usize> {
    known: &'static [&'static str; N],
    strays: &'s mut Strays<'de>,
    members: &'s mut Vec<Member<'de>>,
}

impl<'de, const N: usize> Want<'de> for RecordRead<'_, 'de, N> {
    type Out = Record<'de, N>;

    fn other(self, kind: &'static str) -> Record<'de, N> {
        Record::NotObject(kind)
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de, N>, A::Error> {
        let mut fields = Fields::new(self.known);
        let Self {
            known,
            strays,
            members,
        } = self;
        let strays = read_members(&mut map, known, strays, |i, map| {
            match fields.values.get_mut(i) {
                Some(slot @ None) if known[i] == SEGMENT_FIELD => {
                    *slot = Some(map.next_value_seed(ValueRead(Some(&mut *members)))?);
                    Ok(true)
                }
                slot => read_value(slot, map),
            }
        })?;
        Ok(Record::Object { fields, strays })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<PredictionBody<'_>, ReadError> {
        read_body(body.as_bytes(), 3, 3)
    }

    fn batch(body: &str) -> Box<RawBatch<'_, { BATCH_FIELDS.len() }, PredictionLists<'_>>> {
        match read(body) {
            Ok(Body::Batch(batch)) => batch,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn a_segment_keeps_one_member_past_the_cap_and_counts_them_all() {
        let members: Vec<String> = (0..20).map(|i| format!(r#""k{i}": "v""#)).collect();
        let body = format!(
            r#"{{"predictions": [{{"segment": {{{}}}}}, {{"segment": {{"k": "w"}}}}]}}"#,
            members.join(",")
        );
        let raw = batch(&body);
        let Some(list @ List::Records { records, .. }) = &raw.lists.predictions else {
            panic!("records expected")
        };
        let segment = |record: &Record<'_, { PREDICTION_FIELDS.len() }>| match record {
            Record::Object { fields, .. } => match fields.get("segment") {
                Some(Value::Members(members)) => *members,
                other => panic!("members expected, got {other:?}"),
            },
            Record::NotObject(_) => panic!("object expected"),
        };
        let first = segment(&records[0]);
        assert_eq!(first.count(), 20);
        let kept = first.kept(list.members());
        assert_eq!(kept.len(), MAX_SEGMENT_KEYS_PER_PREDICTION + 1);
        assert_eq!(kept[0], ("k0".into(), Value::Str("v".into())));
        let second = segment(&records[1]);
        assert_eq!(second.count(), 1);
        assert_eq!(
            second.kept(list.members()),
            [("k".into(), Value::Str("w".into()))]
        );
    }

    #[test]
    fn keeps_scalars_as_found_and_containers_by_kind() {
        let raw = batch(
            r#"{"predictions": [{"prediction_id": 1, "timestamp": -2,
                "latency_ms": 18446744073709551615, "status": 1.5, "error_type": "x\"y",
                "predicted": "z", "actual": null, "score": [1, {"a": []}],
                "segment": {"region": "eu", "n": 1, "o": {"x": 1}}}, {"status": {}}]}"#,
        );
        let Some(list @ List::Records { records, .. }) = &raw.lists.predictions else {
            panic!("records expected")
        };
        let Record::Object { fields, strays: 0 } = &records[0] else {
            panic!("object expected")
        };
        let values: Vec<Option<&Value>> = PREDICTION_FIELDS.iter().map(|f| fields.get(f)).collect();
        let Some(Value::Members(segment)) = values[8] else {
            panic!("members expected")
        };
        assert_eq!(segment.count(), 3);
        assert_eq!(
            segment.kept(list.members()),
            [
                ("region".into(), Value::Str("eu".into())),
                ("n".into(), Value::Int(1)),
                ("o".into(), Value::Object),
            ]
        );
        assert_eq!(
            values[..8],
            [
                Some(&Value::Int(1)),
                Some(&Value::Int(-2)),
                Some(&Value::UInt(u64::MAX)),
                Some(&Value::Float(1.5)),
                Some(&Value::Str("x\"y".into())),
                Some(&Value::Str("z".into())),
                Some(&Value::Null),
                Some(&Value::Array),
            ]
        );
        assert!(matches!(
            fields.get("predicted"),
            Some(Value::Str(Cow::Borrowed(_)))
        ));
        assert!(matches!(
            &records[1],
            Record::Object { fields, .. } if fields.get("status") == Some(&Value::Object)
        ));
    }

    #[test]
    fn strays_are_noted_in_order_and_the_first_occurrence_is_kept() {
        let raw = batch(
            r#"{"task": "a", "x": [1], "task": "b", "predictions": [
                {"status": "ok", "st\u0061tus": "error", "q\u0301": 1}, 7], "predictions": 5}"#,
        );
        assert_eq!(raw.fields.get("task"), Some(&Value::Str("a".into())));
        let strays: Vec<(&str, bool)> = raw
            .strays
            .iter()
            .map(|s| (s.key.as_ref(), s.repeated))
            .collect();
        assert_eq!(
            strays,
            [("x", false), ("task", true), ("predictions", true)]
        );
        assert_eq!(raw.stray_count, 3);
        let Some(List::Records {
            records, strays, ..
        }) = &raw.lists.predictions
        else {
            panic!("records expected")
        };
        assert!(matches!(records[0], Record::Object { strays: 2, .. }));
        assert!(matches!(records[1], Record::NotObject("a number")));
        let keys: Vec<&str> = strays.iter().map(|s| s.key.as_ref()).collect();
        assert_eq!(keys, ["status", "q\u{301}"]);
    }

    #[test]
    fn only_the_first_strays_are_kept_but_all_are_counted() {
        let keys: Vec<String> = (0..150).map(|i| format!(r#""k{i}": 0"#)).collect();
        let body = format!(r#"{{{}}}"#, keys.join(","));
        let raw = batch(&body);
        assert_eq!(raw.stray_count, 150);
        assert_eq!(raw.strays.iter().count(), MAX_PROBLEMS);
        assert_eq!(
            raw.strays.iter().last().map(|s| s.key.as_ref()),
            Some("k99")
        );
    }

    #[test]
    fn a_list_is_refused_at_its_first_record_past_the_limit() {
        // The fourth record is not even read: what follows it does not matter.
        let refused = read(r#"{"resources": [{}, 1, [], {"#);
        assert!(
            matches!(
                refused,
                Err(ReadError::TooLarge {
                    list: "resources",
                    limit: 3
                })
            ),
            "{refused:?}"
        );
        assert!(matches!(
            read(r#"{"predictions": [{}, {}, {}], "resources": [{}, {}, {}]}"#),
            Ok(Body::Batch(_))
        ));
        // A repeated list is skipped whole, not counted.
        assert!(matches!(
            read(r#"{"predictions": [], "predictions": [{}, {}, {}, {}]}"#),
            Ok(Body::Batch(_))
        ));
    }

    #[test]
    fn anything_serde_json_refuses_is_refused_wherever_it_sits() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [
            format!(r#"{{"x": {deep}}}"#),
            format!(r#"{{"predictions": [{{"x": {deep}}}]}}"#),
            r#"{"x": 1e400}"#.to_owned(),
            r#"{"x": "\ud800"}"#.to_owned(),
            r#"{"x": [1,]}"#.to_owned(),
            r#"{"x": 1} 2"#.to_owned(),
            r#"{"predictions": [], "x": tru}"#.to_owned(),
        ] {
            assert!(
                matches!(read(&body), Err(ReadError::Json(_))),
                "{body} was read"
            );
        }
        let invalid_utf8 = b"{\"x\": \"\xff\"}";
        assert!(matches!(
            read_body(invalid_utf8, 1, 1),
            Err(ReadError::Json(_))
        ));
        // Depth 127 is within serde_json's limit.
        let deep = format!("{}{}", "[".repeat(126), "]".repeat(126));
        assert!(read(&format!(r#"{{"x": {deep}}}"#)).is_ok());
    }

    #[test]
    fn a_body_that_is_not_an_object_is_read_by_kind() {
        for (body, kind) in [
            ("[1, {}]", "an array"),
            ("null", "null"),
            ("\"x\"", "a string"),
            ("-1", "a number"),
        ] {
            assert!(
                matches!(read(body), Ok(Body::NotObject(k)) if k == kind),
                "{body}"
            );
        }
    }
}

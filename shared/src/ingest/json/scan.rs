//! The fast reader of a prediction batch: a byte scanner over the body's text that
//! builds the same [`PredictionBody`] as the serde reader for the bodies serving
//! systems send — and declines (`None`) everything else, which then goes to the serde
//! reader: a string with an escape or a control character, a number with an exponent
//! or more digits than an `f64` holds exactly, `-0`, an integer beyond 64 bits,
//! nesting deeper than [`MAX_DEPTH`], a list past its limit, a body that is not an
//! object, and anything that is not JSON (so every error keeps serde_json's message).
//!
//! What it accepts it reads exactly as serde_json does: a string is the text between
//! its quotes, an integer is `Int` when it fits `i64` and `UInt` beyond, and a decimal
//! of at most [`MAX_DIGITS`] digits is the correctly rounded `f64` both parsers give
//! (serde_json's exact path for a significand below 2^53 and a power of ten below
//! 10^23). A property test holds the two readers to the same result.

use std::borrow::Cow;

use super::{
    BATCH_FIELDS, Body, Fields, List, Member, Members, PREDICTION_FIELDS, PredictionBody,
    PredictionLists, RESOURCE_FIELDS, RawBatch, Record, SEGMENT_FIELD, Stray, Strays, Value,
};

/// Deepest nesting read here (a batch's records sit at depth 2, their fields at 3, a
/// segment's members at 4).
const MAX_DEPTH: usize = 16;
/// Most digits of a decimal read here: below 2^53, so exact as an integer.
const MAX_DIGITS: usize = 15;
/// 10^0 to 10^[`MAX_DIGITS`], each exact as an `f64`.
const POWERS_OF_TEN: [f64; MAX_DIGITS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Reads a prediction batch's `text`; `None` when it is not one this reader takes.
pub(super) fn prediction_body(
    text: &str,
    max_predictions: usize,
    max_resources: usize,
) -> Option<PredictionBody<'_>> {
    let mut scan = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    scan.space();
    let mut fields = Fields::new(&BATCH_FIELDS);
    let mut strays = Strays::default();
    let mut lists = PredictionLists {
        max_predictions,
        max_resources,
        ..PredictionLists::default()
    };
    let stray_count = scan.members(&BATCH_FIELDS, &mut strays, |scan, i| {
        Some(match BATCH_FIELDS[i] {
            "predictions" if lists.predictions.is_none() => {
                lists.predictions = Some(scan.list(&PREDICTION_FIELDS, max_predictions)?);
                true
            }
            "resources" if lists.resources.is_none() => {
                lists.resources = Some(scan.list(&RESOURCE_FIELDS, max_resources)?);
                true
            }
            "predictions" | "resources" => false,
            _ => scan.first_value(&mut fields.values[i])?,
        })
    })?;
    scan.space();
    (scan.at == scan.bytes.len()).then(|| {
        Body::Batch(Box::new(RawBatch {
            fields,
            strays,
            stray_count,
            lists,
        }))
    })
}

/// The length of the content of a string that starts `bytes`: the index of its
/// closing quote, unless a backslash or a control character comes first. Eight bytes
/// at a time, with the usual word tricks (`has a byte less than n`, `has a zero
/// byte`), whose lowest flagged byte is exact.
fn plain_len(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let flagged = ((x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGH;
        if flagged != 0 {
            let end = at + (flagged.trailing_zeros() / 8) as usize;
            return (bytes[end] == b'"').then_some(end);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    let end = at
        + rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (bytes[end] == b'"').then_some(end)
}

/// `n` followed by the decimal `digits`, when each step stays below 10^19 (no
/// overflow: at most [`MAX_DIGITS`] digits in all).
fn decimal(n: u64, digits: &[u8]) -> u64 {
    digits.iter().fold(n, |n, d| {
        n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    })
}

/// A position in the body's text.
struct Scanner<'de> {
    text: &'de str,
    bytes: &'de [u8],
    at: usize,
}

impl<'de> Scanner<'de> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte` (after white space), or declines.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `byte` when it comes next (after white space).
    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// A string without escapes or control characters, borrowed from the text.
    #[inline(always)]
    fn string(&mut self) -> Option<&'de str> {
        self.expect(b'"')?;
        let start = self.at;
        let len = plain_len(self.bytes.get(start..)?)?;
        self.at = start + len + 1;
        // Between two ASCII quotes of valid UTF-8: on character boundaries.
        self.text.get(start..start + len)
    }

    /// The digits from here on (at least one).
    fn digits(&mut self) -> Option<&'de [u8]> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.bytes[start..self.at])
    }

    fn number(&mut self) -> Option<Value<'de>> {
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let whole = self.digits()?;
        if whole.len() > 1 && whole[0] == b'0' {
            return None;
        }
        let fraction = if self.peek() == Some(b'.') {
            self.at += 1;
            Some(self.digits()?)
        } else {
            None
        };
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        match fraction {
            None => {
                let magnitude = whole.iter().try_fold(0_u64, |n, d| {
                    n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })?;
                match (negative, i64::try_from(magnitude)) {
                    (false, Ok(n)) => Some(Value::Int(n)),
                    (false, Err(_)) => Some(Value::UInt(magnitude)),
                    (true, _) if magnitude == 0 => None,
                    (true, _) => 0_i64.checked_sub_unsigned(magnitude).map(Value::Int),
                }
            }
            Some(fraction) if whole.len() + fraction.len() <= MAX_DIGITS => {
                // At most MAX_DIGITS digits: no overflow.
                let significand = decimal(decimal(0, whole), fraction);
                // Both exact (below 2^53 and 10^22): one correctly rounded division.
                let magnitude = significand as f64 / POWERS_OF_TEN[fraction.len()];
                Some(Value::Float(if negative { -magnitude } else { magnitude }))
            }
            Some(_) => None,
        }
    }

    /// Consumes the literal `word`.
    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A value: scalars as found, arrays and objects by kind (their content checked
    /// and dropped).
    // Inlined into the record loop: returned through memory, a value was read back
    // before its stores could forward (a quarter of the loop's own time).
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<Value<'de>> {
        self.space();
        Some(match self.peek()? {
            b'"' => Value::Str(Cow::Borrowed(self.string()?)),
            b'n' => self.literal("null").map(|()| Value::Null)?,
            b't' => self.literal("true").map(|()| Value::Bool(true))?,
            b'f' => self.literal("false").map(|()| Value::Bool(false))?,
            b'[' | b'{' => self.container(depth)?,
            _ => self.number()?,
        })
    }

    /// An array or an object (next) as a value at `depth`: by kind, its content
    /// checked and dropped.
    #[inline(never)]
    fn container(&mut self, depth: usize) -> Option<Value<'de>> {
        if self.peek()? == b'[' {
            self.skip(depth + 1, *b"[]", |scan| scan.value(depth + 1).map(drop))?;
            return Some(Value::Array);
        }
        self.skip(depth + 1, *b"{}", |scan| {
            scan.space();
            scan.string()?;
            scan.expect(b':')?;
            scan.value(depth + 1).map(drop)
        })?;
        Some(Value::Object)
    }

    /// An array or an object at `depth` (`open` and `close` its brackets), each item
    /// read by `item` and dropped.
    fn skip(
        &mut self,
        depth: usize,
        [open, close]: [u8; 2],
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(open)?;
        if self.eat(close) {
            return Some(());
        }
        loop {
            item(self)?;
            if !self.eat(b',') {
                return self.expect(close);
            }
        }
    }

    /// Reads the value into `slot` when it is the field's first occurrence (`true`);
    /// `false` leaves it for the caller to skip.
    fn first_value(&mut self, slot: &mut Option<Value<'de>>) -> Option<bool> {
        if slot.is_some() {
            return Some(false);
        }
        *slot = Some(self.value(1)?);
        Some(true)
    }

    /// The members of an object at depth 1 or 2 against the `known` field names, as
    /// the serde reader's `read_members`: a known field's first occurrence through
    /// `first` (`Some(true)` when it read the value), the others noted in `strays` and
    /// skipped. Returns how many strays the object had.
    fn members(
        &mut self,
        known: &'static [&'static str],
        strays: &mut Strays<'de>,
        mut first: impl FnMut(&mut Self, usize) -> Option<bool>,
    ) -> Option<usize> {
        self.expect(b'{')?;
        let mut count = 0;
        if self.eat(b'}') {
            return Some(count);
        }
        loop {
            self.space();
            let key = self.string()?;
            self.expect(b':')?;
            let stray = match known.iter().position(|k| *k == key) {
                Some(i) if first(self, i)? => None,
                Some(i) => Some(Stray {
                    key: Cow::Borrowed(known[i]),
                    repeated: true,
                }),
                None => Some(Stray {
                    key: Cow::Borrowed(key),
                    repeated: false,
                }),
            };
            if let Some(stray) = stray {
                strays.note(stray);
                count += 1;
                self.value(2)?;
            }
            if !self.eat(b',') {
                self.expect(b'}')?;
                return Some(count);
            }
        }
    }

    /// A record list at depth 1: its records, declining past `limit`; any other value
    /// by kind.
    fn list<const N: usize>(
        &mut self,
        known: &'static [&'static str; N],
        limit: usize,
    ) -> Option<List<'de, N>> {
        self.space();
        if self.peek()? != b'[' {
            return Some(List::Other(self.value(1)?.kind()));
        }
        self.at += 1;
        // Sized up front (a record takes at least three bytes, `{},`): growing by
        // doubling copied the records read so far (at most the limit: 3 MB by default).
        let room = (self.bytes.len() - self.at) / 3;
        let mut records = Vec::with_capacity(limit.min(room));
        let mut strays = Strays::default();
        let mut members = Vec::new();
        if !self.eat(b']') {
            loop {
                if records.len() == limit {
                    return None;
                }
                self.record(&mut records, known, &mut strays, &mut members)?;
                if records.len() == 1 {
                    // Sized as if every record had the first one's segment: growing by
                    // doubling copied the members read so far.
                    members.reserve(members.len() * (records.capacity() - 1));
                }
                if !self.eat(b',') {
                    self.expect(b']')?;
                    break;
                }
            }
        }
        Some(List::Records {
            records,
            strays,
            members,
        })
    }

    /// One item of a record list (depth 2), added to `records`: read into its place
    /// there, not moved in (a record is a few hundred bytes).
    fn record<const N: usize>(
        &mut self,
        records: &mut Vec<Record<'de, N>>,
        known: &'static [&'static str; N],
        strays: &mut Strays<'de>,
        members: &mut Vec<Member<'de>>,
    ) -> Option<()> {
        self.space();
        if self.peek()? != b'{' {
            records.push(Record::NotObject(self.value(2)?.kind()));
            return Some(());
        }
        records.push(Record::Object {
            fields: Fields::new(known),
            strays: 0,
        });
        let Some(Record::Object { fields, strays: n }) = records.last_mut() else {
            return None;
        };
        *n = self.members(known, strays, |scan, i| {
            let slot = &mut fields.values[i];
            if slot.is_some() {
                return Some(false);
            }
            *slot = Some(if known[i] == SEGMENT_FIELD {
                scan.segment(members)?
            } else {
                scan.value(3)?
            });
            Some(true)
        })?;
        Some(())
    }

    /// A `segment` value (depth 3): an object member by member into `members`, as the
    /// serde reader's; anything else as a [`Value`].
    fn segment(&mut self, members: &mut Vec<Member<'de>>) -> Option<Value<'de>> {
        if !self.eat(b'{') {
            return self.value(3);
        }
        let mut read = Members::starting_after(members);
        if !self.eat(b'}') {
            loop {
                self.space();
                let key = self.string()?;
                self.expect(b':')?;
                let value = self.value(4)?;
                read.add(members, Some((Cow::Borrowed(key), value)));
                if !self.eat(b',') {
                    self.expect(b'}')?;
                    break;
                }
            }
        }
        Some(Value::Members(read))
    }
}

#[cfg(test)]
mod tests;

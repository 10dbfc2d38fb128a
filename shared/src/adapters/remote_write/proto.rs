//! The remote-write 1.0 wire messages (`prometheus.WriteRequest`) and a hand-written
//! protobuf encoder and decoder for them.
//!
//! ```protobuf
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }  // timestamp in ms
//! ```
//!
//! Four messages and three wire types do not justify a code generator. The encoder
//! follows proto3 conventions (fields holding their default value are omitted, as
//! `prost` and Go's `gogoproto` do). The decoder reads what any proto3 encoder may
//! produce — fields in any order, unknown fields skipped, packed or not — and is what
//! the tests use to check exactly what was sent.

use thiserror::Error;

/// `WriteRequest.timeseries`.
const FIELD_TIMESERIES: u32 = 1;
/// `TimeSeries.labels`.
const FIELD_LABELS: u32 = 1;
/// `TimeSeries.samples`.
const FIELD_SAMPLES: u32 = 2;
/// `Label.name`.
const FIELD_NAME: u32 = 1;
/// `Label.value`.
const FIELD_VALUE: u32 = 2;
/// `Sample.value`.
const FIELD_SAMPLE_VALUE: u32 = 1;
/// `Sample.timestamp`.
const FIELD_SAMPLE_TIMESTAMP: u32 = 2;

/// Wire type of varints (`int64`).
const WIRE_VARINT: u8 = 0;
/// Wire type of 64-bit fixed values (`double`).
const WIRE_FIXED64: u8 = 1;
/// Wire type of length-delimited values (strings, messages).
const WIRE_LEN: u8 = 2;
/// Wire type of 32-bit fixed values (only skipped when decoding).
const WIRE_FIXED32: u8 = 5;

/// `prometheus.WriteRequest`: the body of one remote-write request, before snappy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteRequest {
    /// The series of the request; each label set at most once.
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one label set and its samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeSeries {
    /// The labels, `__name__` included, sorted by name when built by this crate.
    pub labels: Vec<Label>,
    /// The samples, oldest first when built by this crate.
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`: one name/value pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name (`__name__` for the metric name).
    pub name: String,
    /// The label value.
    pub value: String,
}

/// `prometheus.Sample`: one value at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// The value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// Why bytes could not be decoded as a [`WriteRequest`].
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated input at byte {offset}")]
    Truncated {
        /// Where the missing bytes were expected.
        offset: usize,
    },
    /// A varint longer than 10 bytes.
    #[error("malformed varint at byte {offset}")]
    Varint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A wire type that proto3 does not use (groups) or that does not fit the field.
    #[error("unexpected wire type {wire_type} for field {field} at byte {offset}")]
    WireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
        /// Where the key is.
        offset: usize,
    },
    /// A string field that is not UTF-8.
    #[error("string at byte {offset} is not UTF-8")]
    Utf8 {
        /// Where the string starts.
        offset: usize,
    },
}

impl WriteRequest {
    /// The protobuf encoding of this request (not yet snappy-compressed).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for series in &self.timeseries {
            put_key(&mut out, FIELD_TIMESERIES, WIRE_LEN);
            put_varint(&mut out, series.encoded_len() as u64);
            series.encode_into(&mut out);
        }
        out
    }

    /// Decodes a protobuf-encoded request (already snappy-decompressed).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut request = WriteRequest::default();
        let mut reader = Reader::new(bytes, 0);
        while let Some((field, wire, at)) = reader.key()? {
            match (field, wire) {
                (FIELD_TIMESERIES, WIRE_LEN) => {
                    let (body, offset) = reader.bytes()?;
                    request.timeseries.push(TimeSeries::decode(body, offset)?);
                }
                _ => reader.skip(field, wire, at)?,
            }
        }
        Ok(request)
    }

    /// Length in bytes of [`WriteRequest::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.timeseries
            .iter()
            .map(|s| len_delimited_len(FIELD_TIMESERIES, s.encoded_len()))
            .sum()
    }
}

impl TimeSeries {
    /// Appends the fields of this message (without its own key and length).
    fn encode_into(&self, out: &mut Vec<u8>) {
        for label in &self.labels {
            put_key(out, FIELD_LABELS, WIRE_LEN);
            put_varint(out, label.encoded_len() as u64);
            label.encode_into(out);
        }
        for sample in &self.samples {
            put_key(out, FIELD_SAMPLES, WIRE_LEN);
            put_varint(out, sample.encoded_len() as u64);
            sample.encode_into(out);
        }
    }

    /// Length of the fields of this message.
    fn encoded_len(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|l| len_delimited_len(FIELD_LABELS, l.encoded_len()))
            .sum();
        let samples: usize = self
            .samples
            .iter()
            .map(|s| len_delimited_len(FIELD_SAMPLES, s.encoded_len()))
            .sum();
        labels + samples
    }

    /// Decodes a `TimeSeries` body starting at `base` in the whole input.
    fn decode(bytes: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut series = TimeSeries::default();
        let mut reader = Reader::new(bytes, base);
        while let Some((field, wire, at)) = reader.key()? {
            match (field, wire) {
                (FIELD_LABELS, WIRE_LEN) => {
                    let (body, offset) = reader.bytes()?;
                    series.labels.push(Label::decode(body, offset)?);
                }
                (FIELD_SAMPLES, WIRE_LEN) => {
                    let (body, offset) = reader.bytes()?;
                    series.samples.push(Sample::decode(body, offset)?);
                }
                _ => reader.skip(field, wire, at)?,
            }
        }
        Ok(series)
    }
}

impl Label {
    /// A label from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Appends the fields of this message.
    fn encode_into(&self, out: &mut Vec<u8>) {
        put_string(out, FIELD_NAME, &self.name);
        put_string(out, FIELD_VALUE, &self.value);
    }

    /// Length of the fields of this message.
    fn encoded_len(&self) -> usize {
        string_len(FIELD_NAME, &self.name) + string_len(FIELD_VALUE, &self.value)
    }

    /// Decodes a `Label` body starting at `base` in the whole input.
    fn decode(bytes: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut label = Label::default();
        let mut reader = Reader::new(bytes, base);
        while let Some((field, wire, at)) = reader.key()? {
            match (field, wire) {
                (FIELD_NAME, WIRE_LEN) => label.name = reader.string()?,
                (FIELD_VALUE, WIRE_LEN) => label.value = reader.string()?,
                _ => reader.skip(field, wire, at)?,
            }
        }
        Ok(label)
    }
}

impl Sample {
    /// Appends the fields of this message.
    fn encode_into(&self, out: &mut Vec<u8>) {
        // Positive zero is the default and is omitted; -0.0 has other bits and is sent.
        if self.value.to_bits() != 0 {
            put_key(out, FIELD_SAMPLE_VALUE, WIRE_FIXED64);
            out.extend_from_slice(&self.value.to_bits().to_le_bytes());
        }
        if self.timestamp != 0 {
            put_key(out, FIELD_SAMPLE_TIMESTAMP, WIRE_VARINT);
            // int64 is encoded as the two's complement bit pattern (10 bytes if negative).
            put_varint(out, self.timestamp as u64);
        }
    }

    /// Length of the fields of this message.
    fn encoded_len(&self) -> usize {
        let value = if self.value.to_bits() != 0 {
            key_len(FIELD_SAMPLE_VALUE) + 8
        } else {
            0
        };
        let timestamp = if self.timestamp != 0 {
            key_len(FIELD_SAMPLE_TIMESTAMP) + varint_len(self.timestamp as u64)
        } else {
            0
        };
        value + timestamp
    }

    /// Decodes a `Sample` body starting at `base` in the whole input.
    fn decode(bytes: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut sample = Sample::default();
        let mut reader = Reader::new(bytes, base);
        while let Some((field, wire, at)) = reader.key()? {
            match (field, wire) {
                (FIELD_SAMPLE_VALUE, WIRE_FIXED64) => {
                    sample.value = f64::from_bits(reader.fixed64()?);
                }
                (FIELD_SAMPLE_TIMESTAMP, WIRE_VARINT) => sample.timestamp = reader.varint()? as i64,
                _ => reader.skip(field, wire, at)?,
            }
        }
        Ok(sample)
    }
}

/// Appends a field key.
fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// Appends a base-128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a string field unless it is empty (the proto3 default).
fn put_string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_key(out, field, WIRE_LEN);
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value.as_bytes());
    }
}

/// Length of a varint.
fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Length of a field key.
fn key_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

/// Length of a length-delimited field whose body is `len` bytes.
fn len_delimited_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

/// Length of a string field as [`put_string`] writes it.
fn string_len(field: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        len_delimited_len(field, value.len())
    }
}

/// A cursor over one message body; `base` is the body's offset in the whole input,
/// so errors point at the byte in what was received.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            base,
        }
    }

    /// The next field key: (field number, wire type, offset of the key), or `None` at
    /// the end of the body.
    fn key(&mut self) -> Result<Option<(u32, u8, usize)>, DecodeError> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError::Varint { offset: at })?;
        Ok(Some((field, (key & 0x7) as u8, at)))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.base + self.pos;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(DecodeError::Truncated {
                    offset: self.base + self.pos,
                });
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(DecodeError::Varint { offset: start });
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::Varint { offset: start })
    }

    fn take(&mut self, len: usize) -> Result<(&'a [u8], usize), DecodeError> {
        let offset = self.base + self.pos;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                offset: self.base + self.bytes.len(),
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok((slice, offset))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let (bytes, _) = self.take(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(buf))
    }

    /// A length-delimited body and its offset in the whole input.
    fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let at = self.base + self.pos;
        let len =
            usize::try_from(self.varint()?).map_err(|_| DecodeError::Varint { offset: at })?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let (bytes, offset) = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8 { offset })
    }

    /// Skips a field this decoder does not know (or a known field with a wire type it
    /// does not expect, which a conforming encoder never produces for these messages).
    fn skip(&mut self, field: u32, wire: u8, at: usize) -> Result<(), DecodeError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => Err(DecodeError::WireType {
                field,
                wire_type: wire,
                offset: at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![
                        Label::new("__name__", "ml_model_accuracy"),
                        Label::new("model_id", "m-1"),
                        Label::new("tenant_id", "t-ü"),
                    ],
                    samples: vec![
                        Sample {
                            value: 0.5,
                            timestamp: 1_700_000_000_000,
                        },
                        Sample {
                            value: 0.0,
                            timestamp: 1_700_000_060_000,
                        },
                        Sample {
                            value: -0.0,
                            timestamp: 0,
                        },
                    ],
                },
                TimeSeries {
                    labels: vec![Label::new("__name__", "x"), Label::new("empty", "")],
                    samples: vec![Sample {
                        value: f64::INFINITY,
                        timestamp: -1,
                    }],
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_predicts_its_length() {
        let request = sample_request();
        let bytes = request.encode();
        assert_eq!(bytes.len(), request.encoded_len());
        let decoded = WriteRequest::decode(&bytes).unwrap();
        assert_eq!(decoded, request);
        // -0.0 survives with its sign (it is not the default bit pattern).
        assert!(decoded.timeseries[0].samples[2].value.is_sign_negative());
    }

    #[test]
    fn nan_round_trips_bit_for_bit() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "x")],
                samples: vec![Sample {
                    value: stale,
                    timestamp: 1,
                }],
            }],
        };
        let decoded = WriteRequest::decode(&request.encode()).unwrap();
        assert_eq!(
            decoded.timeseries[0].samples[0].value.to_bits(),
            stale.to_bits()
        );
    }

    #[test]
    fn matches_a_known_encoding() {
        // Bytes as protoc/prost produce them for one label and one sample.
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("a", "b")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 300,
                }],
            }],
        };
        let expected: Vec<u8> = vec![
            0x0a, 0x16, // timeseries, 22 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // label a=b
            0x12, 0x0c, // sample, 12 bytes
            0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // value 1.0
            0x10, 0xac, 0x02, // timestamp 300
        ];
        assert_eq!(request.encode(), expected);
    }

    #[test]
    fn skips_unknown_fields() {
        let mut bytes = sample_request().encode();
        // An unknown varint field 7 and an unknown length-delimited field 9 at top level.
        bytes.extend_from_slice(&[0x38, 0x96, 0x01, 0x4a, 0x02, b'h', b'i']);
        assert_eq!(WriteRequest::decode(&bytes).unwrap(), sample_request());
    }

    #[test]
    fn reports_truncation_and_bad_utf8() {
        let bytes = sample_request().encode();
        assert!(matches!(
            WriteRequest::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        let bad = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff];
        assert!(matches!(
            WriteRequest::decode(&bad),
            Err(DecodeError::Utf8 { offset: 6 })
        ));
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX, (-1i64) as u64] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}

//! The compact binary primitives behind [`WindowState::to_bytes`](super::WindowState::to_bytes):
//! LEB128 varints, zigzag signed varints, little-endian `f64`s and length-prefixed UTF-8
//! strings. The reader never panics and never allocates more than the bytes it was given
//! can justify: every failure is a [`DecodeError`].

use thiserror::Error;

/// Why [`WindowState::from_bytes`](super::WindowState::from_bytes) refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the structure it describes was complete.
    #[error("state bytes end early (while reading {what})")]
    Truncated {
        /// The element being read when the bytes ran out.
        what: &'static str,
    },
    /// The first byte names a format version this build cannot read.
    #[error("unsupported state format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build writes and reads.
        supported: u8,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("malformed varint (while reading {what})")]
    MalformedVarint {
        /// The element being read.
        what: &'static str,
    },
    /// A value is outside what the format allows (unknown tag, bad UTF-8, a count over a
    /// cap, unsorted keys, inconsistent totals, a non-finite float…).
    #[error("invalid state bytes: {what}")]
    Invalid {
        /// What is wrong, in words.
        what: &'static str,
    },
    /// Bytes remain after the complete state.
    #[error("{count} unexpected trailing bytes after the state")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

/// Appends the encodings of primitive values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// The bytes written so far.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    /// Unsigned LEB128: 7 bits per byte, high bit set on every byte but the last.
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    /// Zigzag-mapped signed varint: small magnitudes of either sign stay short.
    pub(crate) fn signed_varint(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// Eight bytes, little-endian IEEE 754 (bit-exact, so round trips are exact).
    pub(crate) fn f64(&mut self, value: f64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// A varint byte length followed by the UTF-8 bytes.
    pub(crate) fn str(&mut self, value: &str) {
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value.as_bytes());
    }
}

/// `total` plus the count `c` of a stored sparse bucket, which is never empty (`empty`
/// names that error); the sum must fit (`overflow` names that one).
pub(crate) fn add_bucket_count(
    total: u64,
    c: u64,
    empty: &'static str,
    overflow: &'static str,
) -> Result<u64, DecodeError> {
    if c == 0 {
        return Err(DecodeError::Invalid { what: empty });
    }
    total
        .checked_add(c)
        .ok_or(DecodeError::Invalid { what: overflow })
}

/// Reads primitive values back from a byte slice, front to back.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.bytes.len(),
            })
        }
    }

    /// The next two varints when both are single bytes (values below 128), consumed;
    /// `None`, consuming nothing, otherwise. The hot path of sparse-pair decoding.
    pub(crate) fn small_pair(&mut self) -> Option<(u8, u8)> {
        match *self.bytes {
            [a, b, ref rest @ ..] if a < 0x80 && b < 0x80 => {
                self.bytes = rest;
                Some((a, b))
            }
            _ => None,
        }
    }

    /// The leading format version, which must be `supported`.
    /// The format version, one of `supported` (oldest first; an error names the newest).
    pub(crate) fn version(
        &mut self,
        supported: &[u8],
        what: &'static str,
    ) -> Result<u8, DecodeError> {
        match self.u8(what)? {
            found if supported.contains(&found) => Ok(found),
            found => Err(DecodeError::UnsupportedVersion {
                found,
                supported: supported.last().copied().unwrap_or_default(),
            }),
        }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let (&first, rest) = self
            .bytes
            .split_first()
            .ok_or(DecodeError::Truncated { what })?;
        self.bytes = rest;
        Ok(first)
    }

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        // Fast path: most counts and gaps fit one byte.
        if let Some((&first, rest)) = self.bytes.split_first()
            && first < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(first));
        }
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let payload = u64::from(byte & 0x7f);
            // The tenth byte may only carry the single remaining bit.
            if shift == 63 && payload > 1 {
                return Err(DecodeError::MalformedVarint { what });
            }
            value |= payload << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarint { what })
    }

    pub(crate) fn signed_varint(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let raw = self.varint(what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint that must not exceed `max` (used for lengths and counts of elements, so
    /// that no allocation exceeds the format's caps).
    pub(crate) fn bounded_len(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let raw = self.varint(what)?;
        usize::try_from(raw)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(DecodeError::Invalid { what })
    }

    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        if self.bytes.len() < 8 {
            return Err(DecodeError::Truncated { what });
        }
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(head);
        Ok(f64::from_le_bytes(raw))
    }

    /// An `f64` that must be finite.
    pub(crate) fn finite_f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        let value = self.f64(what)?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(DecodeError::Invalid { what })
        }
    }

    /// A length-prefixed UTF-8 string of at most `max_bytes` bytes.
    pub(crate) fn str(
        &mut self,
        max_bytes: usize,
        what: &'static str,
    ) -> Result<&'a str, DecodeError> {
        let len = self.bounded_len(max_bytes, what)?;
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated { what });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        std::str::from_utf8(head).map_err(|_| DecodeError::Invalid { what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let signed = [0, -1, 1, i64::MIN, i64::MAX, -1_700_000_000_000];
        let mut writer = Writer::default();
        values.iter().for_each(|&v| writer.varint(v));
        signed.iter().for_each(|&v| writer.signed_varint(v));
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        for &v in &values {
            assert_eq!(reader.varint("v"), Ok(v));
        }
        for &v in &signed {
            assert_eq!(reader.signed_varint("s"), Ok(v));
        }
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let overlong = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&overlong).varint("v"),
            Err(DecodeError::MalformedVarint { .. })
        ));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(matches!(
            Reader::new(&overflow).varint("v"),
            Err(DecodeError::MalformedVarint { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x80]).varint("v"),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn strings_respect_their_cap_and_utf8() {
        let mut writer = Writer::default();
        writer.str("héllo");
        let bytes = writer.into_bytes();
        assert_eq!(Reader::new(&bytes).str(16, "s"), Ok("héllo"));
        assert!(matches!(
            Reader::new(&bytes).str(3, "s"),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            Reader::new(&[2, 0xff, 0xfe]).str(8, "s"),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            Reader::new(&[5, b'a']).str(8, "s"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}

//! Validated identifiers that are embedded in storage keys.
//!
//! Keys join parts with `#`, so ids are restricted to a safe character set
//! (`[A-Za-z0-9._:@-]`, 1–128 characters) that can never contain the separator.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_ID_LEN`].
    #[error("must be at most 128 characters")]
    TooLong,
    /// A character outside `[A-Za-z0-9._:@-]`.
    #[error("may only contain letters, digits and . _ : @ -")]
    BadCharacter,
}

/// Whether each byte may appear in an id (a table: ingest checks every prediction's id).
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'@' | b'-');
        b += 1;
    }
    table
};

/// Checks `raw` against the id rules.
pub fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        Err(IdError::Empty)
    } else if raw.len() > MAX_ID_LEN {
        Err(IdError::TooLong)
    } else if !raw.bytes().all(|b| ID_BYTES[usize::from(b)]) {
        Err(IdError::BadCharacter)
    } else {
        Ok(())
    }
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `raw`.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check_id(raw).map(|()| Self(raw.to_owned()))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                check_id(&raw).map(|()| Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_id!(
    /// A tenant, as named by the JWT authorizer's claim (never by a request body).
    TenantId
);
validated_id!(
    /// A model, as named by the serving system.
    ModelId
);

impl ModelId {
    /// An id whose text the caller checked: a series id (`super::slice`).
    pub(super) fn from_checked(raw: String) -> Self {
        Self(raw)
    }
}

/// One tenant's model: the pair every per-model store and service method is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelRef<'a> {
    /// The tenant owning the model.
    pub tenant: &'a TenantId,
    /// The model.
    pub model_id: &'a ModelId,
}

impl fmt::Display for ModelRef<'_> {
    /// `tenant/model`, as logs and error messages name a model.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.model_id)
    }
}

impl<'a> ModelRef<'a> {
    /// The `model_id` of `tenant`.
    pub fn new(tenant: &'a TenantId, model_id: &'a ModelId) -> Self {
        Self { tenant, model_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_restricted_to_key_safe_characters() {
        assert!(TenantId::parse("tenant-demo").is_ok());
        assert!(ModelId::parse("acme.prod:eu@1_x").is_ok());
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
        assert_eq!(ModelId::parse("a#b"), Err(IdError::BadCharacter));
        assert_eq!(ModelId::parse("a b"), Err(IdError::BadCharacter));
        assert_eq!(ModelId::parse("é"), Err(IdError::BadCharacter));
        assert_eq!(ModelId::parse(&"x".repeat(129)), Err(IdError::TooLong));
        assert!(ModelId::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn an_id_byte_is_a_letter_a_digit_or_one_of_five_marks() {
        let allowed: Vec<u8> = (0..=255_u8)
            .filter(|&b| check_id(std::str::from_utf8(&[b]).unwrap_or("é")).is_ok())
            .collect();
        let expected: Vec<u8> = (b'-'..=b'.')
            .chain(b'0'..=b':')
            .chain(b'@'..=b'Z')
            .chain([b'_'])
            .chain(b'a'..=b'z')
            .collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<ModelId>("\"m-1\"").is_ok());
        assert!(serde_json::from_str::<ModelId>("\"m#1\"").is_err());
    }
}

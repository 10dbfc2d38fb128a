//! DynamoDB's documented limits as pure rules, and the neutral description of an item
//! both storage adapters build from.
//!
//! An [`Image`] is an item as DynamoDB stores it: attribute names and values (strings,
//! numbers in DynamoDB's decimal text, binary, string sets). The DynamoDB adapter turns
//! an image into the SDK's item; the in-memory adapters compute its size and check its
//! numbers, so unit tests are refused where DynamoDB would refuse (a `ValidationException`,
//! which the DynamoDB adapter reports as `StoreError::Internal`).
//!
//! The rules (Amazon DynamoDB Developer Guide, "Item sizes and formats", "Supported data
//! types", "Service quotas"):
//!
//! - item size = Σ over attributes of (UTF-8 bytes of the name + size of the value), at
//!   most [`MAX_ITEM_BYTES`] (400 KB);
//! - string: its UTF-8 bytes; binary: its raw bytes; string set: the sum of its strings
//!   (a set may not be empty);
//! - number: leading and trailing zeros trimmed, at most [`MAX_NUMBER_DIGITS`] (38)
//!   significant digits, magnitude zero or within [1e-130, 9.99…9e125]; its size is
//!   about one byte per two significant digits plus one;
//! - a transaction: at most [`MAX_TRANSACTION_ITEMS`] items and [`MAX_TRANSACTION_BYTES`];
//! - a `Query` or `Scan` returns pages of at most [`QUERY_PAGE_BYTES`] of items read
//!   (counted before any filter), one round trip each.

use chrono::{DateTime, Utc};
use std::borrow::Cow;

/// Largest item DynamoDB stores: 400 KB, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Most significant digits a DynamoDB number holds.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// Smallest decimal exponent of a non-zero DynamoDB number (1e-130).
const MIN_NUMBER_EXPONENT: i64 = -130;

/// Largest decimal exponent of a DynamoDB number (9.99…9e125).
const MAX_NUMBER_EXPONENT: i64 = 125;

/// Most items in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// Largest aggregate size of the items of one `TransactWriteItems`: 4 MB.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// Most data one `Query` or `Scan` request reads: 1 MB.
pub const QUERY_PAGE_BYTES: usize = 1024 * 1024;

/// Why DynamoDB would refuse a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A number attribute DynamoDB cannot hold.
    #[error("attribute {attribute}: {value:?} {reason}")]
    Number {
        /// The attribute.
        attribute: String,
        /// The number's text (at most 64 characters of it).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty string set.
    #[error("attribute {attribute}: a string set may not be empty")]
    EmptySet {
        /// The attribute.
        attribute: String,
    },
    /// The item is larger than [`MAX_ITEM_BYTES`].
    #[error("item size {size} bytes exceeds the maximum of {MAX_ITEM_BYTES} bytes")]
    ItemTooLarge {
        /// The item's size.
        size: usize,
    },
    /// A transaction of more than [`MAX_TRANSACTION_ITEMS`] items.
    #[error("a transaction of {items} items exceeds the maximum of {MAX_TRANSACTION_ITEMS}")]
    TooManyTransactionItems {
        /// Items in the transaction.
        items: usize,
    },
    /// A transaction larger than [`MAX_TRANSACTION_BYTES`].
    #[error("a transaction of {size} bytes exceeds the maximum of {MAX_TRANSACTION_BYTES} bytes")]
    TransactionTooLarge {
        /// The items' aggregate size.
        size: usize,
    },
}

/// An attribute value as DynamoDB stores it, borrowing what it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string.
    S(Cow<'a, str>),
    /// A number, in DynamoDB's decimal text.
    N(String),
    /// Binary.
    B(Cow<'a, [u8]>),
    /// A string set (DynamoDB keeps no order; written as given).
    Ss(Vec<Cow<'a, str>>),
}

impl Value<'_> {
    /// A number value from anything that prints as a decimal (integers).
    pub fn number(n: impl ToString) -> Self {
        Self::N(n.to_string())
    }

    /// A time as epoch milliseconds, as the stores keep times read back to the
    /// millisecond.
    pub fn millis(time: DateTime<Utc>) -> Self {
        Self::number(time.timestamp_millis())
    }

    /// The value's size (its attribute name not counted); `attribute` names it in
    /// the error.
    pub fn size(&self, attribute: &str) -> Result<usize, LimitError> {
        match self {
            Self::S(s) => Ok(s.len()),
            Self::N(n) => number_size(n).map_err(|reason| LimitError::Number {
                attribute: attribute.to_owned(),
                value: n.chars().take(64).collect(),
                reason,
            }),
            Self::B(b) => Ok(b.len()),
            Self::Ss(set) if set.is_empty() => Err(LimitError::EmptySet {
                attribute: attribute.to_owned(),
            }),
            Self::Ss(set) => Ok(set.iter().map(|s| s.len()).sum()),
        }
    }
}

/// An item as DynamoDB stores it: attribute names (the key's included) and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image<'a> {
    attributes: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Image<'a> {
    /// The item with one more attribute.
    pub fn with(mut self, name: impl Into<Cow<'a, str>>, value: Value<'a>) -> Self {
        self.attributes.push((name.into(), value));
        self
    }

    /// Adds an attribute.
    pub fn push(&mut self, name: impl Into<Cow<'a, str>>, value: Value<'a>) {
        self.attributes.push((name.into(), value));
    }

    /// The attributes, in the order they were added.
    pub fn attributes(&self) -> &[(Cow<'a, str>, Value<'a>)] {
        &self.attributes
    }

    /// The attributes, owned.
    pub fn into_attributes(self) -> Vec<(Cow<'a, str>, Value<'a>)> {
        self.attributes
    }

    /// The item's size as DynamoDB counts it, after checking every value and the
    /// item size limit: what DynamoDB would refuse is an error.
    pub fn checked_size(&self) -> Result<usize, LimitError> {
        let mut size = 0;
        for (name, value) in &self.attributes {
            size += name.len() + value.size(name)?;
        }
        if size > MAX_ITEM_BYTES {
            return Err(LimitError::ItemTooLarge { size });
        }
        Ok(size)
    }
}

/// Checks a transaction of items of the given sizes against DynamoDB's limits.
pub fn check_transaction(item_sizes: &[usize]) -> Result<(), LimitError> {
    if item_sizes.len() > MAX_TRANSACTION_ITEMS {
        return Err(LimitError::TooManyTransactionItems {
            items: item_sizes.len(),
        });
    }
    let size = item_sizes.iter().sum();
    if size > MAX_TRANSACTION_BYTES {
        return Err(LimitError::TransactionTooLarge { size });
    }
    Ok(())
}

/// How many `Query` round trips read items of the given sizes, in key order: a page
/// ends before the item that would take it past [`QUERY_PAGE_BYTES`]. An empty result
/// still costs one request.
pub fn query_pages(item_sizes: impl IntoIterator<Item = usize>) -> u64 {
    let mut pages = 1;
    let mut page = 0;
    for size in item_sizes {
        if page > 0 && page + size > QUERY_PAGE_BYTES {
            pages += 1;
            page = 0;
        }
        page += size;
    }
    pages
}

/// The size of a DynamoDB number given as decimal text (`-12.5`, `1E+3`, `0.001`):
/// one byte per two significant digits, plus one. An error (the reason) when the
/// text is not a number or DynamoDB cannot hold it: more than 38 significant digits,
/// or a non-zero magnitude outside [1e-130, 9.99…9e125].
pub fn number_size(text: &str) -> Result<usize, &'static str> {
    let unsigned = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || integer.bytes().chain(fraction.bytes());
    if integer.len() + fraction.len() == 0 || !digits().all(|b| b.is_ascii_digit()) {
        return Err("is not a decimal number");
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let body = e.strip_prefix(['+', '-']).unwrap_or(e);
            if body.is_empty() || body.len() > 6 || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Err("has a malformed or far out of range exponent");
            }
            e.parse().map_err(|_| "has a malformed exponent")?
        }
    };
    let Some(first) = digits().position(|b| b != b'0') else {
        return Ok(2);
    };
    let last = digits()
        .enumerate()
        .filter(|&(_, b)| b != b'0')
        .map(|(i, _)| i)
        .last()
        .unwrap_or(first);
    let significant = last - first + 1;
    if significant > MAX_NUMBER_DIGITS {
        return Err("has more than 38 significant digits");
    }
    // The value is d.ddd × 10^magnitude, d the first significant digit.
    let magnitude = integer.len() as i64 - 1 - first as i64 + exponent;
    if !(MIN_NUMBER_EXPONENT..=MAX_NUMBER_EXPONENT).contains(&magnitude) {
        return Err(
            "is outside the magnitudes 1e-130 to 9.9999999999999999999999999999999999999e125",
        );
    }
    Ok(significant.div_ceil(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_sizes_count_significant_digits() {
        assert_eq!(number_size("0"), Ok(2));
        assert_eq!(number_size("0.000"), Ok(2));
        assert_eq!(number_size("7"), Ok(2));
        assert_eq!(number_size("12"), Ok(2));
        assert_eq!(number_size("123"), Ok(3));
        assert_eq!(number_size("-1500"), Ok(2), "trailing zeros are trimmed");
        assert_eq!(number_size("0.00125"), Ok(3), "leading zeros are trimmed");
        assert_eq!(number_size("1764324840"), Ok(6));
        assert_eq!(number_size("40.000"), Ok(2));
        assert_eq!(number_size("1E+3"), Ok(2));
        let digits38 = "12345678901234567890123456789012345678";
        assert_eq!(number_size(digits38), Ok(20));
        assert_eq!(number_size(&format!("{digits38}000.000")), Ok(20));
    }

    #[test]
    fn numbers_dynamodb_cannot_hold_are_refused() {
        for bad in [
            "",
            "-",
            "1.2.3",
            "abc",
            "1e",
            "NaN",
            "inf",
            "123456789012345678901234567890123456789",
            "1.00000000000000000000000000000000000001",
            "1e126",
            "1e-131",
            "0.1e-130",
            "1e9999999",
        ] {
            assert!(number_size(bad).is_err(), "{bad:?}");
        }
        // A 201-digit integer: what f64::to_string made of a 1e200 ms latency.
        assert!(number_size(&1e200_f64.to_string()).is_err());
        for good in [
            "1e125",
            "9.9999999999999999999999999999999999999E+125",
            "1e-130",
            "-1E-130",
            "0e999",
        ] {
            assert!(number_size(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn item_size_is_names_plus_values_and_capped() {
        let state = vec![0u8; 100];
        let image = Image::default()
            .with("pk", Value::S("P#t#m".into()))
            .with("state", Value::B(Cow::Borrowed(&state)))
            .with("rev", Value::number(12))
            .with("types", Value::Ss(vec!["ab".into(), "cde".into()]));
        assert_eq!(image.checked_size(), Ok(2 + 5 + 5 + 100 + 3 + 2 + 5 + 5));
        let big = vec![0u8; MAX_ITEM_BYTES];
        let too_big = Image::default().with("b", Value::B(Cow::Borrowed(&big)));
        assert_eq!(
            too_big.checked_size(),
            Err(LimitError::ItemTooLarge {
                size: MAX_ITEM_BYTES + 1
            })
        );
        let fits = Image::default().with("b", Value::B(Cow::Borrowed(&big[1..])));
        assert_eq!(fits.checked_size(), Ok(MAX_ITEM_BYTES));
        let empty = Image::default().with("set", Value::Ss(Vec::new()));
        assert!(matches!(
            empty.checked_size(),
            Err(LimitError::EmptySet { .. })
        ));
        let bad = Image::default().with("n", Value::N("1e200".into()));
        assert!(matches!(bad.checked_size(), Err(LimitError::Number { .. })));
    }

    #[test]
    fn transactions_and_pages() {
        assert_eq!(check_transaction(&[1; 100]), Ok(()));
        assert!(check_transaction(&[1; 101]).is_err());
        assert!(check_transaction(&[MAX_ITEM_BYTES; 11]).is_err());
        assert_eq!(check_transaction(&[MAX_ITEM_BYTES; 10]), Ok(()));
        assert_eq!(query_pages([]), 1);
        assert_eq!(query_pages([10, 20]), 1);
        assert_eq!(query_pages([QUERY_PAGE_BYTES]), 1);
        assert_eq!(query_pages([QUERY_PAGE_BYTES, 1]), 2);
        assert_eq!(query_pages(vec![MAX_ITEM_BYTES; 5]), 3);
    }
}

//! Slices of a model's traffic, kept as series of their own beside the model's.
//!
//! A batch that names its `model_version` is counted twice: under the model, and under
//! the series of its version slice; a prediction that carries a `segment` counts in
//! the series of each of its segments (one per key) too. A slice's series is stored like a model (partials,
//! pending marks, minute/hour/day rollups, counter totals, export cursors) under the
//! id `<model>~<slice>` ([`ModelId::series`]): `~` is no id character, so no model id
//! is a series id and no series id is forged from a request. The registry never lists
//! a series, so nothing evaluates it as a model.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bounds::OVERFLOW_BUCKET;
use super::ids::{IdError, ModelId, check_id};

/// The versions kept per model unless configured (`MODEL_VERSIONS`): a canary and a
/// champion/challenger pair need two or three at once; 20 keep a month of weekly
/// releases and their rollbacks comparable.
pub const DEFAULT_VERSIONS_PER_MODEL: u64 = 20;

/// The segment keys kept per model unless configured (`MODEL_SEGMENT_KEYS`): region,
/// channel, customer tier and one more; each key multiplies a prediction's writes.
pub const DEFAULT_SEGMENT_KEYS_PER_MODEL: u64 = 4;

/// The values kept per segment key and UTC day unless configured
/// (`MODEL_SEGMENT_VALUES`): the countries of a continent, not the users of an app.
pub const DEFAULT_SEGMENT_VALUES_PER_DAY: u64 = 50;

/// How many UTC days a day's kept segment values are remembered (the cap of values
/// counts per day; the registry's day items expire after this).
pub const SEGMENT_DAYS_KEPT: i64 = 3;

/// The most keys one prediction's `segment` may carry.
pub const MAX_SEGMENT_KEYS_PER_PREDICTION: usize = 8;

/// Separates a model id from its slice in a series id.
pub const SERIES_SEPARATOR: char = '~';

/// How many segments a model keeps: keys for good, values per key and UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCaps {
    /// Most segment keys kept per model (`MODEL_SEGMENT_KEYS`); predictions that carry
    /// a key past it count under `segment:__other__:__other__`.
    pub keys: u64,
    /// Most values kept per key and UTC day of the batches' first events
    /// (`MODEL_SEGMENT_VALUES`); a value past it counts under `segment:<key>:__other__`
    /// that day.
    pub values_per_day: u64,
}

impl Default for SegmentCaps {
    fn default() -> Self {
        Self {
            keys: DEFAULT_SEGMENT_KEYS_PER_MODEL,
            values_per_day: DEFAULT_SEGMENT_VALUES_PER_DAY,
        }
    }
}

/// A slice of one model's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slice {
    /// The predictions of one `model_version`; [`OVERFLOW_BUCKET`] holds the versions
    /// first seen past the model's cap on versions.
    Version(String),
    /// The predictions whose `segment` maps `key` to `value`. Value [`OVERFLOW_BUCKET`]
    /// holds a key's values past its cap of the day; key and value [`OVERFLOW_BUCKET`]
    /// hold the predictions that carry keys past the model's cap on keys.
    Segment {
        /// The segment key (no `:`).
        key: String,
        /// Its value.
        value: String,
    },
}

/// Why a slice's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    /// Neither `version:<id>` nor `segment:<key>:<value>`.
    #[error("must be version:<model_version> or segment:<key>:<value>")]
    Form,
    /// The version is no id.
    #[error("names a version that {0}")]
    Version(IdError),
    /// The segment key or value is no id.
    #[error("names a segment {0} that {1}")]
    Segment(&'static str, IdError),
}

impl Slice {
    /// The slice of `version`.
    pub fn version(version: impl Into<String>) -> Self {
        Self::Version(version.into())
    }

    /// The slice of the predictions whose segment `key` is `value`.
    pub fn segment(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Segment {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Reads `version:<id>` (`version:__other__`: the versions past the cap) or
    /// `segment:<key>:<value>`.
    pub fn parse(text: &str) -> Result<Self, SliceError> {
        if let Some(version) = text.strip_prefix("version:") {
            check_id(version).map_err(SliceError::Version)?;
            return Ok(Self::version(version));
        }
        let segment = text.strip_prefix("segment:").ok_or(SliceError::Form)?;
        Self::parse_segment(segment)
    }

    /// Reads `<key>:<value>`, a segment as the summary's `?segment=` names it.
    pub fn parse_segment(text: &str) -> Result<Self, SliceError> {
        let (key, value) = text.split_once(':').ok_or(SliceError::Form)?;
        check_segment_key(key).map_err(|e| SliceError::Segment("key", e))?;
        check_id(value).map_err(|e| SliceError::Segment("value", e))?;
        Ok(Self::segment(key, value))
    }

    /// The version of a version slice.
    pub fn model_version(&self) -> Option<&str> {
        match self {
            Self::Version(version) => Some(version),
            Self::Segment { .. } => None,
        }
    }

    /// The key and value of a segment slice.
    pub fn segment_pair(&self) -> Option<(&str, &str)> {
        match self {
            Self::Version(_) => None,
            Self::Segment { key, value } => Some((key, value)),
        }
    }

    /// Whether this is a slice of what was past a cap.
    pub fn is_overflow(&self) -> bool {
        match self {
            Self::Version(version) => version == OVERFLOW_BUCKET,
            Self::Segment { value, .. } => value == OVERFLOW_BUCKET,
        }
    }
}

/// A segment key: an id without `:` (the separator of key and value).
pub fn check_segment_key(key: &str) -> Result<(), IdError> {
    check_id(key)?;
    if key.contains(':') {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

impl fmt::Display for Slice {
    /// `version:<id>` or `segment:<key>:<value>`, as the API and the series ids name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(version) => write!(f, "version:{version}"),
            Self::Segment { key, value } => write!(f, "segment:{key}:{value}"),
        }
    }
}

impl Serialize for Slice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Slice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Slice::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl ModelId {
    /// The id of the series of `slice` of this model: `<model>~<slice>`.
    pub fn series(&self, slice: &Slice) -> ModelId {
        ModelId::from_checked(format!("{self}{SERIES_SEPARATOR}{slice}"))
    }

    /// The model id and slice this id names: itself and `None` for a model.
    pub fn split(&self) -> (&str, Option<Slice>) {
        match self.as_str().split_once(SERIES_SEPARATOR) {
            Some((model, slice)) => (model, Slice::parse(slice).ok()),
            None => (self.as_str(), None),
        }
    }

    /// Whether the series is exported (to CloudWatch, Prometheus): a model's and its
    /// versions' are; a segment's only when its key is one of `segment_keys`
    /// (`EXPORTED_SEGMENT_KEYS`: their values multiply the exported series).
    pub fn is_exported(&self, segment_keys: &[String]) -> bool {
        match self.split().1 {
            Some(Slice::Segment { key, .. }) => segment_keys.contains(&key),
            _ => true,
        }
    }

    /// An id as stored: a model's, or a series id of a valid slice of one.
    pub fn from_stored(raw: String) -> Result<Self, IdError> {
        match raw.split_once(SERIES_SEPARATOR) {
            None => Self::try_from(raw),
            Some((model, slice)) => {
                check_id(model)?;
                Slice::parse(slice).map_err(|_| IdError::BadCharacter)?;
                Ok(Self::from_checked(raw))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> ModelId {
        ModelId::parse(id).expect("model")
    }

    #[test]
    fn slices_read_and_print_their_text() {
        let slice = Slice::parse("version:v4.1").expect("slice");
        assert_eq!(slice, Slice::version("v4.1"));
        assert_eq!(slice.to_string(), "version:v4.1");
        assert_eq!(
            Slice::parse("version:a:b").expect("colon").model_version(),
            Some("a:b")
        );
        assert!(
            Slice::parse("version:__other__")
                .expect("other")
                .is_overflow()
        );
        assert_eq!(Slice::parse("v4"), Err(SliceError::Form));
        let segment = Slice::parse("segment:region:eu-west:1").expect("segment");
        assert_eq!(segment, Slice::segment("region", "eu-west:1"));
        assert_eq!(segment.to_string(), "segment:region:eu-west:1");
        assert_eq!(segment.segment_pair(), Some(("region", "eu-west:1")));
        assert_eq!(segment.model_version(), None);
        assert!(
            Slice::parse("segment:region:__other__")
                .expect("other")
                .is_overflow()
        );
        assert_eq!(Slice::parse("segment:region"), Err(SliceError::Form));
        assert_eq!(
            Slice::parse("segment::eu"),
            Err(SliceError::Segment("key", IdError::Empty))
        );
        assert_eq!(
            Slice::parse("segment:region:e#u"),
            Err(SliceError::Segment("value", IdError::BadCharacter))
        );
        assert_eq!(Slice::parse("tier:gold"), Err(SliceError::Form));
        assert_eq!(
            Slice::parse("version:"),
            Err(SliceError::Version(IdError::Empty))
        );
        assert_eq!(
            Slice::parse("version:a#b"),
            Err(SliceError::Version(IdError::BadCharacter))
        );
    }

    #[test]
    fn a_series_id_is_no_model_id_and_splits_back() {
        let series = model("fraud").series(&Slice::version("v4"));
        assert_eq!(series.as_str(), "fraud~version:v4");
        assert_eq!(series.split(), ("fraud", Some(Slice::version("v4"))));
        assert_eq!(model("fraud").split(), ("fraud", None));
        // Requests name models through `parse`, which never yields a series.
        assert!(ModelId::parse(series.as_str()).is_err());
        assert_eq!(
            ModelId::from_stored(series.as_str().to_owned()),
            Ok(series.clone())
        );
        assert_eq!(ModelId::from_stored("fraud".into()), Ok(model("fraud")));
        let segment = model("fraud").series(&Slice::segment("region", "eu"));
        assert_eq!(segment.as_str(), "fraud~segment:region:eu");
        assert_eq!(
            segment.split(),
            ("fraud", Some(Slice::segment("region", "eu")))
        );
        assert_eq!(
            ModelId::from_stored(segment.as_str().to_owned()),
            Ok(segment.clone())
        );
        assert!(!segment.is_exported(&[]));
        assert!(!segment.is_exported(&["channel".to_owned()]));
        assert!(segment.is_exported(&["region".to_owned()]));
        assert!(series.is_exported(&[]) && model("fraud").is_exported(&[]));
        for bad in [
            "fraud~",
            "fraud~v4",
            "~version:v4",
            "a#b~version:v4",
            "f~version:a~b",
        ] {
            assert!(ModelId::from_stored(bad.into()).is_err(), "{bad}");
        }
    }
}

//! Slices of a model's traffic, kept as series of their own beside the model's.
//!
//! A batch that names its `model_version` is counted twice: under the model, and under
//! the series of its version slice. A slice's series is stored like a model (partials,
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

/// Separates a model id from its slice in a series id.
pub const SERIES_SEPARATOR: char = '~';

/// A slice of one model's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slice {
    /// The predictions of one `model_version`; [`OVERFLOW_BUCKET`] holds the versions
    /// first seen past the model's cap on versions.
    Version(String),
}

/// Why a slice's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    /// Not `version:<id>`.
    #[error("must be version:<model_version>")]
    Form,
    /// The version is no id.
    #[error("names a version that {0}")]
    Version(IdError),
}

impl Slice {
    /// The slice of `version`.
    pub fn version(version: impl Into<String>) -> Self {
        Self::Version(version.into())
    }

    /// Reads `version:<id>` (`version:__other__`: the versions past the cap).
    pub fn parse(text: &str) -> Result<Self, SliceError> {
        let version = text.strip_prefix("version:").ok_or(SliceError::Form)?;
        check_id(version).map_err(SliceError::Version)?;
        Ok(Self::version(version))
    }

    /// The version of a version slice.
    pub fn model_version(&self) -> &str {
        match self {
            Self::Version(version) => version,
        }
    }

    /// Whether this is the slice of the versions past the cap.
    pub fn is_overflow(&self) -> bool {
        self.model_version() == OVERFLOW_BUCKET
    }
}

impl fmt::Display for Slice {
    /// `version:<id>`, as the API and the series ids name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(version) => write!(f, "version:{version}"),
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
            "a:b"
        );
        assert!(
            Slice::parse("version:__other__")
                .expect("other")
                .is_overflow()
        );
        assert_eq!(Slice::parse("v4"), Err(SliceError::Form));
        assert_eq!(Slice::parse("segment:region:eu"), Err(SliceError::Form));
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

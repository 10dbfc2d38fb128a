//! Request building: from [`Series`] to the snappy-compressed `WriteRequest` bodies
//! the service sends, plus the header names and values every request carries.
//!
//! What the remote-write 1.0 spec asks of a sender and this module guarantees:
//! - the metric name travels as the `__name__` label, and every series' labels are
//!   sorted by name (`__name__` included, sorted like any other label);
//! - label names are valid (`[a-zA-Z_][a-zA-Z0-9_]*`), unique within a series and not
//!   reserved (`__` prefix); metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`; a label
//!   with an empty value is the same as no label in Prometheus and is left out;
//! - each label set appears once per request, with its samples in time order:
//!   entries of the input with the same label set are merged, and a series is never
//!   split across requests, so its samples also arrive in order across requests;
//! - the body is the protobuf encoding compressed with snappy's **block** format
//!   (not the framed/stream format).
//!
//! A series that breaks these rules is skipped and reported (see [`SkippedSeries`])
//! rather than failing the whole write: one buggy series must not block every
//! model's export.

use std::collections::BTreeMap;

use reqwest::header::{self, HeaderName};
use thiserror::Error;

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
pub use crate::domain::Series;

/// Name of the `Content-Encoding` header.
pub const HEADER_CONTENT_ENCODING: HeaderName = header::CONTENT_ENCODING;
/// Name of the `Content-Type` header.
pub const HEADER_CONTENT_TYPE: HeaderName = header::CONTENT_TYPE;
/// Name of the `User-Agent` header.
pub const HEADER_USER_AGENT: HeaderName = header::USER_AGENT;
/// Name of the remote-write protocol version header
/// (`X-Prometheus-Remote-Write-Version`; header names are case-insensitive).
pub const HEADER_REMOTE_WRITE_VERSION: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-version");
/// Name of the header a receiver may send with 429/5xx to say when to come back.
pub const HEADER_RETRY_AFTER: HeaderName = header::RETRY_AFTER;

/// `Content-Encoding` of every request: snappy block format.
pub const CONTENT_ENCODING_SNAPPY: &str = "snappy";
/// `Content-Type` of every request.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// The protocol version sent in [`HEADER_REMOTE_WRITE_VERSION`] (remote-write 1.0).
pub const REMOTE_WRITE_VERSION: &str = "0.1.0";
/// `User-Agent` of every request: `modelwatch/<crate version>`.
pub const USER_AGENT: &str = concat!("modelwatch/", env!("CARGO_PKG_VERSION"));

/// The reserved label carrying the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// Default cap on the series of one request (a larger write becomes several requests).
pub const DEFAULT_MAX_SERIES_PER_REQUEST: usize = 5_000;

/// What is wrong with a series that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SeriesProblem {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name")]
    InvalidMetricName,
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {label:?}")]
    InvalidLabelName {
        /// The offending label name.
        label: String,
    },
    /// A label name starts with `__` (reserved; the metric name goes in `name`).
    #[error("reserved label name {label:?}")]
    ReservedLabelName {
        /// The offending label name.
        label: String,
    },
    /// The same label name twice.
    #[error("duplicate label name {label:?}")]
    DuplicateLabelName {
        /// The repeated label name.
        label: String,
    },
    /// No samples.
    #[error("no samples")]
    NoSamples,
    /// Two different values at the same timestamp (identical duplicates are merged).
    #[error("two different values at timestamp {timestamp_ms} ms")]
    ConflictingSamples {
        /// The timestamp, in milliseconds since the Unix epoch.
        timestamp_ms: i64,
    },
}

/// A series left out of a write, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSeries {
    /// Index of the series in the input (the first one, for merged entries).
    pub index: usize,
    /// Its metric name.
    pub name: String,
    /// The problem.
    pub problem: SeriesProblem,
}

/// The normalized series of one write, ready to be cut into requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// Valid series: labels sorted, one entry per label set (in label-set order),
    /// samples in time order.
    pub series: Vec<TimeSeries>,
    /// Series left out.
    pub skipped: Vec<SkippedSeries>,
}

/// One request body ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRequest {
    /// The snappy (block format) compressed protobuf `WriteRequest`.
    pub body: Vec<u8>,
    /// Series in the request.
    pub series: usize,
    /// Samples in the request.
    pub samples: usize,
}

/// Why a request body could not be produced.
#[derive(Debug, Error)]
#[error("snappy compression of a {len}-byte request failed")]
pub struct EncodeError {
    /// Size of the uncompressed protobuf.
    pub len: usize,
    /// The compressor's error.
    #[source]
    pub source: snap::Error,
}

/// Validates, sorts and merges `input` (see the module docs for the rules).
pub fn normalize(input: &[Series]) -> Normalized {
    let mut skipped = Vec::new();
    // Label set → (first input index, samples). A BTreeMap gives a stable output order.
    let mut by_labels: BTreeMap<Vec<Label>, (usize, Vec<Sample>)> = BTreeMap::new();
    for (index, series) in input.iter().enumerate() {
        match labels_of(series) {
            Ok(labels) => {
                let entry = by_labels.entry(labels).or_insert((index, Vec::new()));
                entry.1.extend(
                    series
                        .samples
                        .iter()
                        .map(|&(timestamp, value)| Sample { value, timestamp }),
                );
            }
            Err(problem) => skipped.push(SkippedSeries {
                index,
                name: series.name.clone(),
                problem,
            }),
        }
    }
    let mut series = Vec::with_capacity(by_labels.len());
    for (labels, (index, samples)) in by_labels {
        match in_time_order(samples) {
            Ok(samples) => series.push(TimeSeries { labels, samples }),
            Err(problem) => skipped.push(SkippedSeries {
                index,
                name: input[index].name.clone(),
                problem,
            }),
        }
    }
    skipped.sort_by_key(|s| s.index);
    Normalized { series, skipped }
}

/// Cuts normalized series into request bodies of at most `max_series` series each
/// (`max_series` of 0 counts as 1).
pub fn encode_requests(
    series: Vec<TimeSeries>,
    max_series: usize,
) -> Result<Vec<EncodedRequest>, EncodeError> {
    let max_series = max_series.max(1);
    let mut requests = Vec::with_capacity(series.len().div_ceil(max_series));
    let mut rest = series.into_iter().peekable();
    while rest.peek().is_some() {
        let timeseries: Vec<TimeSeries> = rest.by_ref().take(max_series).collect();
        let samples = timeseries.iter().map(|s| s.samples.len()).sum();
        let request = WriteRequest { timeseries };
        requests.push(EncodedRequest {
            body: compress(&request.encode())?,
            series: request.timeseries.len(),
            samples,
        });
    }
    Ok(requests)
}

/// Snappy block-format compression.
pub fn compress(protobuf: &[u8]) -> Result<Vec<u8>, EncodeError> {
    snap::raw::Encoder::new()
        .compress_vec(protobuf)
        .map_err(|source| EncodeError {
            len: protobuf.len(),
            source,
        })
}

/// The sorted label set of a series, `__name__` included; labels with empty values
/// are left out.
fn labels_of(series: &Series) -> Result<Vec<Label>, SeriesProblem> {
    if !is_metric_name(&series.name) {
        return Err(SeriesProblem::InvalidMetricName);
    }
    let mut labels = Vec::with_capacity(series.labels.len() + 1);
    labels.push(Label::new(METRIC_NAME_LABEL, series.name.as_str()));
    for (name, value) in &series.labels {
        if name.starts_with("__") {
            return Err(SeriesProblem::ReservedLabelName {
                label: name.clone(),
            });
        }
        if !is_label_name(name) {
            return Err(SeriesProblem::InvalidLabelName {
                label: name.clone(),
            });
        }
        if !value.is_empty() {
            labels.push(Label::new(name.as_str(), value.as_str()));
        }
    }
    labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = labels.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(SeriesProblem::DuplicateLabelName {
            label: pair[0].name.clone(),
        });
    }
    // A duplicate whose values were both empty was dropped above; catch it too.
    let mut names: Vec<&str> = series.labels.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(SeriesProblem::DuplicateLabelName {
            label: pair[0].to_owned(),
        });
    }
    Ok(labels)
}

/// Samples in time order; identical duplicates collapse, conflicting ones are refused.
fn in_time_order(mut samples: Vec<Sample>) -> Result<Vec<Sample>, SeriesProblem> {
    if samples.is_empty() {
        return Err(SeriesProblem::NoSamples);
    }
    samples.sort_by_key(|s| s.timestamp);
    let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
    for sample in samples {
        match out.last() {
            Some(last) if last.timestamp == sample.timestamp => {
                if last.value.to_bits() != sample.value.to_bits() {
                    return Err(SeriesProblem::ConflictingSamples {
                        timestamp_ms: sample.timestamp,
                    });
                }
            }
            _ => out.push(sample),
        }
    }
    Ok(out)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a body the way a receiver does: snappy block format, then protobuf.
    fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(&raw).unwrap()
    }

    fn names(series: &TimeSeries) -> Vec<&str> {
        series.labels.iter().map(|l| l.name.as_str()).collect()
    }

    #[test]
    fn encodes_sorted_labels_with_name_and_samples_in_time_order() {
        let input = vec![
            Series::new(
                "ml_model_latency_seconds",
                [
                    ("tenant_id", "t1"),
                    ("quantile", "0.95"),
                    ("model_id", "m1"),
                ],
            )
            .with_sample(3_000, 0.3)
            .with_sample(1_000, 0.1)
            .with_sample(2_000, 0.2),
            // Byte order: 'A' < '_' and "__name__" < "_x", so __name__ lands in the middle.
            Series::new("ml_model_accuracy", [("A_first", "x"), ("_x", "y")])
                .with_sample(1_000, 1.0),
        ];
        let normalized = normalize(&input);
        assert!(normalized.skipped.is_empty());
        let requests = encode_requests(normalized.series, 100).unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].series, 2);
        assert_eq!(requests[0].samples, 4);

        let decoded = decode(&requests[0].body);
        assert_eq!(decoded.timeseries.len(), 2);
        // Series come in label-set order (their first labels compare first).
        let accuracy = &decoded.timeseries[0];
        assert_eq!(names(accuracy), ["A_first", "__name__", "_x"]);
        assert_eq!(accuracy.labels[1].value, "ml_model_accuracy");

        let latency = &decoded.timeseries[1];
        assert_eq!(
            names(latency),
            ["__name__", "model_id", "quantile", "tenant_id"]
        );
        assert_eq!(latency.labels[0].value, "ml_model_latency_seconds");
        assert_eq!(latency.labels[2].value, "0.95");
        let samples: Vec<(i64, f64)> = latency
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(samples, [(1_000, 0.1), (2_000, 0.2), (3_000, 0.3)]);
    }

    #[test]
    fn body_is_snappy_block_format_not_framed() {
        let normalized = normalize(&[Series::new("x", [("a", "b")]).with_sample(1, 1.0)]);
        let requests = encode_requests(normalized.series, 10).unwrap();
        // The framed format starts with the stream identifier chunk (0xff "sNaPpY").
        assert_ne!(requests[0].body.first(), Some(&0xff));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&requests[0].body)
            .unwrap();
        assert_eq!(
            raw,
            WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![Label::new("__name__", "x"), Label::new("a", "b")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1
                    }],
                }]
            }
            .encode()
        );
    }

    #[test]
    fn merges_entries_with_the_same_label_set() {
        let input = vec![
            Series::new("c_total", [("b", "2"), ("a", "1")]).with_sample(20, 2.0),
            Series::new("c_total", [("a", "1"), ("b", "2")])
                .with_sample(10, 1.0)
                .with_sample(20, 2.0),
        ];
        let normalized = normalize(&input);
        assert!(normalized.skipped.is_empty());
        assert_eq!(normalized.series.len(), 1);
        let samples: Vec<i64> = normalized.series[0]
            .samples
            .iter()
            .map(|s| s.timestamp)
            .collect();
        assert_eq!(samples, [10, 20]);
    }

    #[test]
    fn empty_label_values_are_left_out() {
        let normalized =
            normalize(&[Series::new("x", [("a", ""), ("b", "1")]).with_sample(1, 1.0)]);
        assert_eq!(names(&normalized.series[0]), ["__name__", "b"]);
    }

    #[test]
    fn skips_and_reports_invalid_series() {
        let input = vec![
            Series::new("ok", [("a", "1")]).with_sample(1, 1.0),
            Series::new("bad-name", [("a", "1")]).with_sample(1, 1.0),
            Series::new("x", [("__name__", "y")]).with_sample(1, 1.0),
            Series::new("x", [("9a", "1")]).with_sample(1, 1.0),
            Series::new("x", [("a", "1"), ("a", "2")]).with_sample(1, 1.0),
            Series::new("x", [("a", ""), ("a", "")]).with_sample(1, 1.0),
            Series::new("x", [("b", "1")]),
            Series::new("y", [("b", "1")])
                .with_sample(5, 1.0)
                .with_sample(5, 2.0),
            Series::new("z", [("b", "1")])
                .with_sample(5, 1.0)
                .with_sample(5, 1.0),
        ];
        let normalized = normalize(&input);
        let problems: Vec<(usize, SeriesProblem)> = normalized
            .skipped
            .iter()
            .map(|s| (s.index, s.problem.clone()))
            .collect();
        assert_eq!(
            problems,
            [
                (1, SeriesProblem::InvalidMetricName),
                (
                    2,
                    SeriesProblem::ReservedLabelName {
                        label: "__name__".into()
                    }
                ),
                (3, SeriesProblem::InvalidLabelName { label: "9a".into() }),
                (4, SeriesProblem::DuplicateLabelName { label: "a".into() }),
                (5, SeriesProblem::DuplicateLabelName { label: "a".into() }),
                (6, SeriesProblem::NoSamples),
                (7, SeriesProblem::ConflictingSamples { timestamp_ms: 5 }),
            ]
        );
        // The valid ones are kept; identical duplicate samples collapse.
        assert_eq!(normalized.series.len(), 2);
        assert_eq!(normalized.series[1].samples.len(), 1);
    }

    #[test]
    fn splits_large_writes_without_splitting_a_series() {
        let input: Vec<Series> = (0..12_001)
            .map(|i| {
                Series::new("ml_model_accuracy", [("model_id", format!("m{i:05}"))])
                    .with_sample(1_000, 0.5)
                    .with_sample(2_000, f64::from(i))
            })
            .collect();
        let normalized = normalize(&input);
        let requests = encode_requests(normalized.series, DEFAULT_MAX_SERIES_PER_REQUEST).unwrap();
        let sizes: Vec<usize> = requests.iter().map(|r| r.series).collect();
        assert_eq!(sizes, [5_000, 5_000, 2_001]);
        let mut seen = 0;
        for request in &requests {
            let decoded = decode(&request.body);
            assert_eq!(decoded.timeseries.len(), request.series);
            for series in &decoded.timeseries {
                assert_eq!(series.labels[1].value, format!("m{seen:05}"));
                assert_eq!(series.samples.len(), 2);
                assert_eq!(series.samples[1].value, seen as f64);
                seen += 1;
            }
        }
        assert_eq!(seen, 12_001);
    }

    #[test]
    fn nothing_to_send_means_no_request() {
        assert!(encode_requests(Vec::new(), 10).unwrap().is_empty());
    }

    #[test]
    fn name_rules() {
        assert!(is_metric_name("a:b_c9"));
        assert!(is_metric_name(":a"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("9a"));
        assert!(!is_metric_name("a.b"));
        assert!(is_label_name("_a9"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name("é"));
    }
}

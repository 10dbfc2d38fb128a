//! The answer to an accepted batch (202), bounded, and the compact form it is stored in.
//!
//! The receipt is stored with the batch claim once every write succeeded, and a retry
//! of the batch is answered from it, so the stored form must reproduce the answer
//! exactly and stay far below DynamoDB's 400 KB item limit: a receipt too large to
//! store would fail after all data is stored, and every retry would fail again. The
//! answer therefore lists at most [`MAX_LISTED_REJECTIONS`] archive rejections (the
//! first by index), each reason cut to [`MAX_REJECTION_REASON_BYTES`] on a character
//! boundary, and counts them all in `rejected_count`.
//!
//! Stored form, version 2 (varints are unsigned LEB128, as in the window state):
//!
//! ```text
//! u8 version = 2 (1: written before late labels, without the last line)
//! accepted
//! minutes: count; if any: the first as epoch minutes (zigzag), then the gaps (≥ 1)
//! u8 archive enabled (0/1), written, rejected_count
//! listed rejections: count, then per rejection ascending: index gap (the first: its
//!                    index), reason (length-prefixed UTF-8)
//! late labels: awaiting, joined, duplicate ids, refused
//! ```
//!
//! The batch id is the item's key, and `duplicate` is the reader's to set. At the
//! batch limits (10,000 predictions in 10,000 distinct minutes, 100 listed reasons of
//! 256 bytes) the stored form is about 36 KB. Receipts stored before as the answer's
//! JSON (first byte `{`) still read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::join::PredictionLabels;
use crate::domain::codec::{Reader, Writer};
use crate::domain::{DecodeError, Granularity};
use crate::ports::{ArchiveRejection, ArchiveReport};

/// Most archive rejections an answer lists (the first by record index).
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// Longest reason of a listed rejection, in bytes (cut on a character boundary).
pub const MAX_REJECTION_REASON_BYTES: usize = 256;

/// The first byte of the stored form.
const STORED_VERSION: u8 = 2;

/// The stored form written before late labels (no label counts).
const STORED_VERSION_WITHOUT_LABELS: u8 = 1;

/// What happened to the archive copy of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveReceipt {
    /// Whether the archive is switched on.
    pub enabled: bool,
    /// Records written.
    pub written: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] records the archive refused, by index, each
    /// reason at most [`MAX_REJECTION_REASON_BYTES`] (counted in the aggregates all
    /// the same).
    pub rejected: Vec<ArchiveRejection>,
    /// How many records the archive refused, listed or not.
    #[serde(default)]
    pub rejected_count: usize,
}

impl ArchiveReceipt {
    /// The archive is switched off.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            written: 0,
            rejected: Vec::new(),
            rejected_count: 0,
        }
    }

    /// What the archive reported, bounded.
    pub fn archived(report: ArchiveReport) -> Self {
        Self {
            enabled: true,
            written: report.written,
            rejected_count: report.rejected.len(),
            rejected: bounded(report.rejected),
        }
    }
}

/// The first [`MAX_LISTED_REJECTIONS`] rejections by index, reasons cut to
/// [`MAX_REJECTION_REASON_BYTES`].
fn bounded(mut rejected: Vec<ArchiveRejection>) -> Vec<ArchiveRejection> {
    rejected.sort_by_key(|r| r.index);
    rejected.truncate(MAX_LISTED_REJECTIONS);
    for rejection in &mut rejected {
        let end = rejection
            .reason
            .floor_char_boundary(MAX_REJECTION_REASON_BYTES);
        rejection.reason.truncate(end);
    }
    rejected
}

/// The answer to an accepted batch (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReceipt {
    /// The batch's id.
    pub batch_id: String,
    /// Predictions accepted.
    pub accepted: usize,
    /// The batch had been stored completely before: this is a retry, counted once.
    pub duplicate: bool,
    /// Start of each minute the batch's records fall in, ascending.
    pub minutes: Vec<DateTime<Utc>>,
    /// The archive's part.
    pub timestream: ArchiveReceipt,
    /// What became of the predictions that can take a late label.
    #[serde(default)]
    pub labels: PredictionLabels,
}

/// Why a stored receipt cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The compact form is malformed.
    #[error("stored receipt: {0}")]
    Compact(#[from] DecodeError),
    /// A receipt stored as JSON does not parse.
    #[error("stored JSON receipt")]
    Json(#[from] serde_json::Error),
}

impl IngestReceipt {
    /// The compact form stored with the batch claim (the batch id and `duplicate` are
    /// left out: the key holds the one, the reader sets the other).
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(16 + self.minutes.len() * 2);
        out.u8(STORED_VERSION);
        out.varint(self.accepted as u64);
        out.varint(self.minutes.len() as u64);
        let mut previous: Option<i64> = None;
        for minute in &self.minutes {
            let epoch_minute = Granularity::Minute.ordinal(*minute);
            match previous {
                None => out.signed_varint(epoch_minute),
                // Ascending, so every gap is at least 1.
                Some(p) => out.varint(epoch_minute.abs_diff(p)),
            }
            previous = Some(epoch_minute);
        }
        let archive = &self.timestream;
        out.u8(u8::from(archive.enabled));
        out.varint(archive.written as u64);
        out.varint(archive.rejected_count as u64);
        out.varint(archive.rejected.len() as u64);
        let mut previous = 0;
        for rejection in &archive.rejected {
            out.varint(rejection.index.abs_diff(previous) as u64);
            out.str(&rejection.reason);
            previous = rejection.index;
        }
        let labels = &self.labels;
        for count in [
            labels.awaiting,
            labels.joined,
            labels.duplicate_ids,
            labels.refused,
        ] {
            out.varint(count as u64);
        }
        out.into_bytes()
    }

    /// The receipt of batch `batch_id` from its stored form (compact, or the JSON of
    /// receipts stored before), bounded like a new answer.
    pub fn from_stored(batch_id: &str, stored: &[u8]) -> Result<Self, ReceiptError> {
        if stored.first() == Some(&b'{') {
            let mut receipt: Self = serde_json::from_slice(stored)?;
            let archive = &mut receipt.timestream;
            archive.rejected_count = archive.rejected_count.max(archive.rejected.len());
            archive.rejected = bounded(std::mem::take(&mut archive.rejected));
            return Ok(receipt);
        }
        Ok(decode(batch_id, stored)?)
    }
}

/// Reads the compact form.
fn decode(batch_id: &str, stored: &[u8]) -> Result<IngestReceipt, DecodeError> {
    let invalid = |what| DecodeError::Invalid { what };
    let count = |value: u64, what| usize::try_from(value).map_err(|_| invalid(what));
    let mut input = Reader::new(stored);
    let with_labels = input.version(
        &[STORED_VERSION_WITHOUT_LABELS, STORED_VERSION],
        "receipt version",
    )? == STORED_VERSION;
    let accepted = count(input.varint("accepted")?, "accepted")?;
    let minute_count = input.varint("minute count")?;
    // Every minute takes at least one byte, so this loop ends with the input.
    let mut minutes = Vec::new();
    let mut epoch_minute = 0_i64;
    for i in 0..minute_count {
        epoch_minute = if i == 0 {
            input.signed_varint("first minute")?
        } else {
            let gap = input.varint("minute gap")?;
            i64::try_from(gap)
                .ok()
                .filter(|&gap| gap > 0)
                .and_then(|gap| epoch_minute.checked_add(gap))
                .ok_or(invalid("minutes are not ascending"))?
        };
        let minute = Granularity::Minute
            .from_ordinal(epoch_minute)
            .ok_or(invalid("minute out of range"))?;
        minutes.push(minute);
    }
    let enabled = match input.u8("archive enabled")? {
        0 => false,
        1 => true,
        _ => return Err(invalid("archive enabled flag")),
    };
    let written = count(input.varint("written")?, "written")?;
    let rejected_count = count(input.varint("rejected count")?, "rejected count")?;
    let listed = input.bounded_len(
        MAX_LISTED_REJECTIONS.min(rejected_count),
        "listed rejections",
    )?;
    let mut rejected = Vec::with_capacity(listed);
    let mut index = 0_usize;
    for i in 0..listed {
        let gap = count(input.varint("rejection index")?, "rejection index")?;
        if i > 0 && gap == 0 {
            return Err(invalid("rejections are not ascending"));
        }
        index = index.checked_add(gap).ok_or(invalid("rejection index"))?;
        let reason = input.str(MAX_REJECTION_REASON_BYTES, "rejection reason")?;
        rejected.push(ArchiveRejection {
            index,
            reason: reason.to_owned(),
        });
    }
    let mut labels = PredictionLabels::default();
    if with_labels {
        labels.awaiting = count(input.varint("awaiting")?, "awaiting")?;
        labels.joined = count(input.varint("joined")?, "joined")?;
        labels.duplicate_ids = count(input.varint("duplicate ids")?, "duplicate ids")?;
        labels.refused = count(input.varint("refused")?, "refused")?;
    }
    input.finish()?;
    Ok(IngestReceipt {
        batch_id: batch_id.to_owned(),
        accepted,
        duplicate: false,
        minutes,
        timestream: ArchiveReceipt {
            enabled,
            written,
            rejected,
            rejected_count,
        },
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_324_000 + 60 * minute, 0).expect("minute")
    }

    fn rejection(index: usize, reason: &str) -> ArchiveRejection {
        ArchiveRejection {
            index,
            reason: reason.to_owned(),
        }
    }

    fn receipt(archive: ArchiveReceipt) -> IngestReceipt {
        IngestReceipt {
            batch_id: "b-1".into(),
            accepted: 3,
            duplicate: false,
            minutes: vec![at(-3), at(0), at(1), at(2_000)],
            timestream: archive,
            labels: PredictionLabels {
                awaiting: 1,
                joined: 2,
                duplicate_ids: 3,
                refused: 4,
            },
        }
    }

    #[test]
    fn the_answer_lists_the_first_rejections_by_index_with_short_reasons() {
        let reasons = "é".repeat(200); // 400 bytes, 2 each
        let archive = ArchiveReceipt::archived(ArchiveReport {
            written: 5,
            rejected: (0..150).rev().map(|i| rejection(i * 2, &reasons)).collect(),
        });
        assert_eq!(archive.rejected_count, 150);
        assert_eq!(archive.rejected.len(), MAX_LISTED_REJECTIONS);
        assert_eq!(archive.rejected[0].index, 0);
        assert_eq!(archive.rejected[99].index, 198);
        assert!(
            archive
                .rejected
                .iter()
                .all(|r| r.reason.len() == MAX_REJECTION_REASON_BYTES && r.reason.starts_with('é'))
        );
        let odd = ArchiveReceipt::archived(ArchiveReport {
            written: 0,
            rejected: vec![rejection(0, &format!("a{}", "é".repeat(200)))],
        });
        assert_eq!(odd.rejected[0].reason.len(), 255, "cut on a char boundary");
    }

    #[test]
    fn the_stored_form_reproduces_the_answer() {
        for archive in [
            ArchiveReceipt::disabled(),
            ArchiveReceipt::archived(ArchiveReport {
                written: 7,
                rejected: vec![rejection(4, "bad measure"), rejection(0, "")],
            }),
        ] {
            let answer = receipt(archive);
            let stored = answer.to_stored();
            assert_eq!(
                IngestReceipt::from_stored("b-1", &stored).expect("reads"),
                answer
            );
        }
        let empty = IngestReceipt {
            minutes: Vec::new(),
            ..receipt(ArchiveReceipt::disabled())
        };
        assert_eq!(
            IngestReceipt::from_stored("b-1", &empty.to_stored()).expect("reads"),
            empty
        );
    }

    #[test]
    fn receipts_stored_before_late_labels_still_read() {
        let answer = receipt(ArchiveReceipt::disabled());
        let mut stored = answer.to_stored();
        // Version 1 ends before the four label counts (one byte each here).
        stored.truncate(stored.len() - 4);
        stored[0] = STORED_VERSION_WITHOUT_LABELS;
        let read = IngestReceipt::from_stored("b-1", &stored).expect("reads");
        assert_eq!(read.labels, PredictionLabels::default());
        assert_eq!(read.minutes, answer.minutes);
    }

    #[test]
    fn receipts_stored_as_json_still_read() {
        let legacy = r#"{"batch_id":"b-1","accepted":2,"duplicate":false,
            "minutes":["2025-11-28T10:00:00Z"],
            "timestream":{"enabled":true,"written":1,"rejected":[{"index":1,"reason":"x"}]}}"#;
        let receipt = IngestReceipt::from_stored("b-1", legacy.as_bytes()).expect("legacy");
        assert_eq!(receipt.accepted, 2);
        assert_eq!(receipt.timestream.rejected_count, 1);
        assert_eq!(receipt.minutes, [at(0)]);
    }

    #[test]
    fn a_corrupt_stored_form_is_an_error() {
        let stored = receipt(ArchiveReceipt::archived(ArchiveReport {
            written: 1,
            rejected: vec![rejection(2, "why")],
        }))
        .to_stored();
        for cut in 0..stored.len() {
            assert!(
                IngestReceipt::from_stored("b", &stored[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = stored.clone();
        trailing.push(0);
        assert!(IngestReceipt::from_stored("b", &trailing).is_err());
        let mut version = stored;
        version[0] = 9;
        assert!(IngestReceipt::from_stored("b", &version).is_err());
        // Two equal minutes (a gap of 0).
        assert!(IngestReceipt::from_stored("b", &[1, 0, 2, 0, 0, 0, 0, 0, 0]).is_err());
    }
}

//! The content digest a batch id is claimed for: a retry of a batch must find the same
//! digest, and another batch under the same id another one.
//!
//! [`content_digest`] hashes what was accepted, not how it was written: XXH3-128 over
//! a canonical encoding of the validated batch, so the same batch re-sent pretty-printed,
//! with its keys in another order, `1` as `1.0` or `1e0`, a binary label `1` as `true`, a
//! multiclass label `7` as `"7"`, or a time in another zone, gets the same digest, and
//! any change of what is counted gets another one.
//!
//! The canonical encoding (all integers little-endian):
//!
//! ```text
//! batch      = str(model_id) str(batch_id) opt(str(model_version)) task
//!              u64(#predictions) prediction* u64(#resources) resource*
//! prediction = opt(str(prediction_id)) time(timestamp) f64(latency_ms) status
//!              opt(str(error_type)) outcome
//!            | opt(str(prediction_id)) time(timestamp) f64(latency_ms) segmented
//!              segment opt(str(error_type)) outcome             with a segment
//! outcome    = 0x00 opt(bool(predicted)) opt(bool(actual)) opt(f64(score))   binary
//!            | 0x01 opt(str(predicted)) opt(str(actual))                     multiclass
//!            | 0x03 opt(str(predicted)) opt(str(actual)) f64(score)          multiclass, scored
//!            | 0x02 opt(f64(predicted)) opt(f64(actual))                     regression
//! resource   = time(timestamp) opt(f64(cpu_utilization)) opt(f64(memory_utilization))
//!              opt(f64(gpu_utilization)) opt(f64(queue_depth))
//!              opt(u64(cache_hits)) opt(u64(cache_misses))
//! task       = 0x00 binary_classification | 0x01 multiclass_classification | 0x02 regression
//! status     = 0x00 ok | 0x01 error
//! segmented  = 0x02 ok | 0x03 error
//! segment    = u64(#keys) (str(key) str(value))*  in key order
//! str(s)     = u64(byte length) bytes (UTF-8)
//! opt(x)     = 0x00 (absent) | 0x01 x
//! bool(b)    = 0x00 false | 0x01 true
//! f64(v)     = u64(IEEE 754 bits), -0.0 written as 0.0 (they count the same)
//! time(t)    = i64(seconds since the Unix epoch) u32(nanoseconds within the second,
//!              ≥ 10^9 only in a leap second): the instant in epoch nanoseconds, exactly
//! ```
//!
//! Every part has a fixed width, a length or a tag before it, so two different
//! batches never encode to the same bytes. A number is the `f64` the parser read:
//! serde_json reads a decimal exactly when its significand has at most 15 digits and
//! its exponent is small (within ±22); beyond, two spellings of one decimal may be
//! read one unit in the last place apart, and are then two contents.

use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use super::actuals::ActualsBatch;
use crate::domain::labels::Actual;
use crate::domain::{Outcome, ResourceSample, Status, Task, ValidBatch, ValidPrediction};

/// The digest a batch id is claimed for: `c3-` and the 32 hex digits of the XXH3-128
/// of the batch's canonical encoding (see the module documentation). Equal for the
/// same validated content however the JSON was written; `c3-` names the encoding,
/// should it ever change.
pub fn content_digest(batch: &ValidBatch) -> String {
    let mut canon = Canonical(Xxh3::new());
    canon.batch(batch);
    format!("c3-{:032x}", canon.0.digest128())
}

/// The digest a label batch's id is claimed for: `a3-` and the XXH3-128 of its
/// canonical encoding (model, batch id, then per label its prediction id, actual and
/// stated timestamp: a label without one is the same label when sent again later).
pub fn actuals_digest(batch: &ActualsBatch) -> String {
    let mut canon = Canonical(Xxh3::new());
    canon.str(batch.model_id.as_str());
    canon.str(&batch.batch_id);
    canon.len(batch.actuals.len());
    for sent in &batch.actuals {
        canon.str(&sent.label.prediction_id);
        match &sent.label.actual {
            Actual::Bool(b) => {
                canon.tag(0);
                canon.bool(*b);
            }
            Actual::Integer(i) => {
                canon.tag(1);
                canon.bytes(&i.to_le_bytes());
            }
            Actual::Number(v) => {
                canon.tag(2);
                canon.f64(*v);
            }
            Actual::Text(text) => {
                canon.tag(3);
                canon.str(text);
            }
        }
        canon.opt(sent.stated_time.then_some(sent.label.time), Canonical::time);
    }
    format!("a3-{:032x}", canon.0.digest128())
}

/// The digest the previous release claimed batch ids for: `x3-` and the 32 hex digits
/// of the XXH3-128 of the raw body. It exists so that claims stored by the previous
/// release are still recognised (a retry of a batch first sent to it); new claims use
/// [`content_digest`].
pub fn legacy_body_digest(body: &[u8]) -> String {
    format!("x3-{:032x}", xxh3_128(body))
}

/// Writes the canonical encoding into the hasher.
struct Canonical(Xxh3);

impl Canonical {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn tag(&mut self, tag: u8) {
        self.bytes(&[tag]);
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    fn len(&mut self, len: usize) {
        // usize is at most 64 bits on every target Rust supports.
        self.u64(len as u64);
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.bytes(text.as_bytes());
    }

    fn f64(&mut self, value: f64) {
        let value = if value == 0.0 { 0.0 } else { value };
        self.u64(value.to_bits());
    }

    fn bool(&mut self, value: bool) {
        self.tag(u8::from(value));
    }

    fn time(&mut self, time: chrono::DateTime<chrono::Utc>) {
        self.bytes(&time.timestamp().to_le_bytes());
        self.bytes(&time.timestamp_subsec_nanos().to_le_bytes());
    }

    fn opt<T: Copy>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.tag(0),
            Some(value) => {
                self.tag(1);
                write(self, value);
            }
        }
    }

    fn batch(&mut self, batch: &ValidBatch) {
        self.str(batch.model_id.as_str());
        self.str(&batch.batch_id);
        self.opt(batch.model_version.as_deref(), Self::str);
        self.tag(match batch.task {
            Task::BinaryClassification => 0,
            Task::MulticlassClassification => 1,
            Task::Regression => 2,
        });
        self.len(batch.predictions.len());
        for prediction in &batch.predictions {
            self.prediction(batch, prediction);
        }
        self.len(batch.resources.len());
        for sample in &batch.resources {
            self.resource(sample);
        }
    }

    fn prediction(&mut self, batch: &ValidBatch, prediction: &ValidPrediction) {
        let record = &prediction.record;
        self.opt(batch.prediction_id(prediction), Self::str);
        self.time(record.timestamp);
        self.f64(record.latency_ms);
        // A segmented record has status tags of its own so that a record without one
        // keeps the digest it had before segments were accepted.
        let segmented = if prediction.segment.is_empty() { 0 } else { 2 };
        self.tag(
            segmented
                + match record.status {
                    Status::Ok => 0,
                    Status::Error => 1,
                },
        );
        if segmented > 0 {
            let segment = batch.segment_of(prediction);
            self.len(segment.len());
            for (key, value) in segment {
                self.str(key);
                self.str(value);
            }
        }
        self.opt(record.error_type.as_deref(), Self::str);
        match &record.outcome {
            Outcome::Binary {
                predicted,
                actual,
                score,
            } => {
                self.tag(0);
                self.opt(*predicted, Self::bool);
                self.opt(*actual, Self::bool);
                self.opt(*score, Self::f64);
            }
            Outcome::Multiclass {
                predicted,
                actual,
                score,
            } => {
                // A scored record has a tag of its own so that an unscored one keeps
                // the digest it had before multiclass scores were accepted.
                self.tag(if score.is_some() { 3 } else { 1 });
                self.opt(predicted.as_deref(), Self::str);
                self.opt(actual.as_deref(), Self::str);
                if let Some(score) = score {
                    self.f64(*score);
                }
            }
            Outcome::Regression { predicted, actual } => {
                self.tag(2);
                self.opt(*predicted, Self::f64);
                self.opt(*actual, Self::f64);
            }
        }
    }

    fn resource(&mut self, sample: &ResourceSample) {
        self.time(sample.timestamp);
        self.opt(sample.cpu_utilization, Self::f64);
        self.opt(sample.memory_utilization, Self::f64);
        self.opt(sample.gpu_utilization, Self::f64);
        self.opt(sample.queue_depth, Self::f64);
        self.opt(sample.cache_hits, Self::u64);
        self.opt(sample.cache_misses, Self::u64);
    }
}

#[cfg(test)]
mod tests;

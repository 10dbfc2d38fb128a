//! The raw-record archive in Timestream: one multi-measure record per prediction.
//!
//! Dimensions (on every record rather than in the request's common attributes, so the
//! records read back alike from Timestream and from the local emulator, which stores
//! records without their common attributes): `tenant_id`, `model_id`, `model_version`
//! (when given), `status`,
//! `error_type` (on errors) and `prediction_id` (the sender's, else
//! `<batch_id>/<index>`, so two predictions in the same millisecond never collide).
//! Measures (`measure_name = "prediction"`): `latency_ms` (DOUBLE), `score` (DOUBLE),
//! `predicted`/`actual` (BIGINT 0/1 for binary, VARCHAR for multiclass, DOUBLE for
//! regression), each only when present. Time in milliseconds.
//!
//! Requests carry at most 100 records (the API limit) and run a few at a time. The
//! SDK retries throttling and 5xx with backoff; a `RejectedRecordsException` lists
//! records Timestream refused (the rest of the request is written), which are
//! reported, never resent unchanged. Resending an identical record is a no-op in
//! Timestream, so a retried batch does not duplicate the archive.

use aws_sdk_timestreamwrite::Client;
use aws_sdk_timestreamwrite::error::BuildError;
use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;
use aws_sdk_timestreamwrite::types::{Dimension, MeasureValue, MeasureValueType, Record, TimeUnit};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::domain::ids::TenantId;
use crate::domain::{Outcome, Status, ValidBatch, ValidPrediction};
use crate::error::{StoreError, StoreResult};
use crate::ports::{ArchiveRejection, ArchiveReport, PredictionArchive};

/// Timestream's limit of records per `WriteRecords` request.
const RECORDS_PER_REQUEST: usize = 100;
/// Requests in flight at once for one batch.
const CONCURRENT_REQUESTS: usize = 4;

/// [`PredictionArchive`] on a Timestream table.
#[derive(Debug, Clone)]
pub struct TimestreamArchive {
    client: Client,
    database: String,
    table: String,
}

impl TimestreamArchive {
    /// An archive writing to `database`.`table`.
    pub fn new(client: Client, database: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            client,
            database: database.into(),
            table: table.into(),
        }
    }

    /// Writes one request's records; `offset` is the batch index of the first.
    async fn write_chunk(
        &self,
        common: &Record,
        offset: usize,
        records: Vec<Record>,
    ) -> StoreResult<ArchiveReport> {
        let count = records.len();
        let result = self
            .client
            .write_records()
            .database_name(&self.database)
            .table_name(&self.table)
            .common_attributes(common.clone())
            .set_records(Some(records))
            .send()
            .await;
        match result {
            Ok(_) => Ok(ArchiveReport {
                written: count,
                rejected: Vec::new(),
            }),
            Err(err) => match err.as_service_error() {
                Some(WriteRecordsError::RejectedRecordsException(rejected)) => {
                    let rejected: Vec<ArchiveRejection> = rejected
                        .rejected_records()
                        .iter()
                        .map(|r| ArchiveRejection {
                            index: offset + usize::try_from(r.record_index()).unwrap_or(0),
                            reason: r.reason().unwrap_or("rejected").to_owned(),
                        })
                        .collect();
                    Ok(ArchiveReport {
                        written: count.saturating_sub(rejected.len()),
                        rejected,
                    })
                }
                Some(WriteRecordsError::ValidationException(_))
                | Some(WriteRecordsError::ResourceNotFoundException(_))
                | Some(WriteRecordsError::AccessDeniedException(_)) => Err(StoreError::Internal {
                    operation: "archive predictions in Timestream",
                    source: Box::new(err),
                }),
                _ => Err(StoreError::Unavailable {
                    operation: "archive predictions in Timestream",
                    source: Box::new(err),
                }),
            },
        }
    }
}

impl PredictionArchive for TimestreamArchive {
    async fn archive(&self, tenant: &TenantId, batch: &ValidBatch) -> StoreResult<ArchiveReport> {
        let common = Record::builder()
            .measure_name("prediction")
            .measure_value_type(MeasureValueType::Multi)
            .time_unit(TimeUnit::Milliseconds)
            .build();
        let mut records = batch
            .predictions
            .iter()
            .enumerate()
            .map(|(i, p)| prediction_record(tenant, batch, i, p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Internal {
                operation: "build Timestream records",
                source: Box::new(e),
            })?;
        let mut chunks = Vec::new();
        let mut offset = 0;
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(RECORDS_PER_REQUEST));
            let len = records.len();
            chunks.push((offset, std::mem::replace(&mut records, rest)));
            offset += len;
        }
        let reports: Vec<ArchiveReport> = stream::iter(chunks)
            .map(|(offset, chunk)| self.write_chunk(&common, offset, chunk))
            .buffer_unordered(CONCURRENT_REQUESTS)
            .try_collect()
            .await?;
        let mut total = ArchiveReport::default();
        for report in reports {
            total.written += report.written;
            total.rejected.extend(report.rejected);
        }
        total.rejected.sort_by_key(|r| r.index);
        Ok(total)
    }
}

fn dimension(name: &str, value: &str) -> Result<Dimension, BuildError> {
    Dimension::builder().name(name).value(value).build()
}

fn measure(name: &str, value: String, kind: MeasureValueType) -> Result<MeasureValue, BuildError> {
    MeasureValue::builder()
        .name(name)
        .value(value)
        .r#type(kind)
        .build()
}

/// The record of one prediction.
pub(crate) fn prediction_record(
    tenant: &TenantId,
    batch: &ValidBatch,
    index: usize,
    prediction: &ValidPrediction,
) -> Result<Record, BuildError> {
    let record = &prediction.record;
    let id = match batch.prediction_id(prediction) {
        Some(id) => id.to_owned(),
        None => format!("{}/{index}", batch.batch_id),
    };
    let mut dimensions = vec![
        dimension("tenant_id", tenant.as_str())?,
        dimension("model_id", batch.model_id.as_str())?,
    ];
    if let Some(version) = &batch.model_version {
        dimensions.push(dimension("model_version", version)?);
    }
    dimensions.extend([
        dimension("prediction_id", &id)?,
        dimension(
            "status",
            match record.status {
                Status::Ok => "ok",
                Status::Error => "error",
            },
        )?,
    ]);
    if let Some(error_type) = &record.error_type {
        dimensions.push(dimension("error_type", error_type)?);
    }
    let mut measures = vec![measure(
        "latency_ms",
        record.latency_ms.to_string(),
        MeasureValueType::Double,
    )?];
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let number = |v: f64| v.to_string();
    // The score, then `predicted` and `actual` in the task's measure type.
    let (score, [predicted, actual], kind) = match &record.outcome {
        Outcome::Binary {
            predicted,
            actual,
            score,
        } => (
            *score,
            [predicted.map(flag), actual.map(flag)],
            MeasureValueType::Bigint,
        ),
        Outcome::Multiclass {
            predicted,
            actual,
            score,
        } => (
            *score,
            [predicted.clone(), actual.clone()],
            MeasureValueType::Varchar,
        ),
        Outcome::Regression { predicted, actual } => (
            None,
            [predicted.map(number), actual.map(number)],
            MeasureValueType::Double,
        ),
    };
    if let Some(score) = score {
        measures.push(measure("score", number(score), MeasureValueType::Double)?);
    }
    for (name, value) in [("predicted", predicted), ("actual", actual)] {
        if let Some(value) = value {
            measures.push(measure(name, value, kind.clone())?);
        }
    }
    Ok(Record::builder()
        .set_dimensions(Some(dimensions))
        .set_measure_values(Some(measures))
        .time(record.timestamp.timestamp_millis().to_string())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_batch;
    use chrono::{DateTime, Utc};

    fn batch(task: &str, prediction: &str) -> ValidBatch {
        let body = format!(
            r#"{{"model_id":"m1","batch_id":"b1","model_version":"v3","task":"{task}","predictions":[{prediction}]}}"#
        );
        let now: DateTime<Utc> = "2026-11-28T10:15:00Z".parse().expect("time");
        parse_batch(body.as_bytes(), now, &Default::default()).expect("valid batch")
    }

    /// (name, value) of each dimension.
    type Dimensions = Vec<(String, String)>;
    /// (name, value, type) of each measure.
    type Measures = Vec<(String, String, String)>;

    fn names_values(record: &Record) -> (Dimensions, Measures) {
        let dims = record
            .dimensions()
            .iter()
            .map(|d| (d.name().to_owned(), d.value().to_owned()))
            .collect();
        let measures = record
            .measure_values()
            .iter()
            .map(|m| {
                (
                    m.name().to_owned(),
                    m.value().to_owned(),
                    m.r#type().as_str().to_owned(),
                )
            })
            .collect();
        (dims, measures)
    }

    #[test]
    fn a_prediction_becomes_one_multi_measure_record_in_its_task_s_types() {
        let tenant = TenantId::parse("t1").expect("tenant");
        let b = batch(
            "binary_classification",
            r#"{"timestamp":"2026-11-28T10:14:59.120Z","latency_ms":8.2,"status":"ok","predicted":1,"score":0.83,"actual":false}"#,
        );
        let record = prediction_record(&tenant, &b, 0, &b.predictions[0]).expect("record");
        let (dims, measures) = names_values(&record);
        let dim = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(
            dims,
            [
                dim("tenant_id", "t1"),
                dim("model_id", "m1"),
                dim("model_version", "v3"),
                dim("prediction_id", "b1/0"),
                dim("status", "ok"),
            ]
        );
        let m = |n: &str, v: &str, t: &str| (n.to_owned(), v.to_owned(), t.to_owned());
        assert_eq!(
            measures,
            [
                m("latency_ms", "8.2", "DOUBLE"),
                m("score", "0.83", "DOUBLE"),
                m("predicted", "1", "BIGINT"),
                m("actual", "0", "BIGINT"),
            ]
        );
        assert_eq!(record.time(), Some("1795860899120"));
        // A multiclass classifier's labels are text, its score the predicted label's;
        // a regressor's values are numbers.
        for (task, outcome, expected) in [
            (
                "multiclass_classification",
                r#""predicted":7,"actual":"cat","score":0.5"#,
                [
                    m("score", "0.5", "DOUBLE"),
                    m("predicted", "7", "VARCHAR"),
                    m("actual", "cat", "VARCHAR"),
                ],
            ),
            (
                "regression",
                r#""predicted":-1.5,"actual":2"#,
                [
                    m("latency_ms", "1", "DOUBLE"),
                    m("predicted", "-1.5", "DOUBLE"),
                    m("actual", "2", "DOUBLE"),
                ],
            ),
        ] {
            let b = batch(
                task,
                &format!(
                    r#"{{"timestamp":"2026-11-28T10:14:59Z","latency_ms":1,"status":"ok",{outcome}}}"#
                ),
            );
            let record = prediction_record(&tenant, &b, 0, &b.predictions[0]).expect("record");
            let (_, measures) = names_values(&record);
            assert_eq!(measures[measures.len() - 3..], expected, "{task}");
        }
    }

    #[test]
    fn an_error_carries_its_type_and_only_latency() {
        let tenant = TenantId::parse("t1").expect("tenant");
        let b = batch(
            "multiclass_classification",
            r#"{"prediction_id":"p-9","timestamp":"2026-11-28T10:14:59Z","latency_ms":30000,"status":"error","error_type":"timeout"}"#,
        );
        let record = prediction_record(&tenant, &b, 0, &b.predictions[0]).expect("record");
        let (dims, measures) = names_values(&record);
        assert!(dims.contains(&("error_type".into(), "timeout".into())));
        assert!(dims.contains(&("prediction_id".into(), "p-9".into())));
        assert_eq!(
            measures,
            [("latency_ms".into(), "30000".into(), "DOUBLE".into())]
        );
    }
}

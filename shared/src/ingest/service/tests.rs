use chrono::TimeDelta;

use super::*;
use crate::adapters::memory::MemoryLabelStore;
use crate::adapters::memory::{MemoryModelRegistry, MemoryPartialStore};
use crate::domain::ids::ModelId;
use crate::domain::labels::LabelLookback;
use crate::domain::{Quota, QuotaLimits, TenantQuotas};
use crate::ports::{ArchiveRejection, ArchiveReport, PartialKey, PredictionCount, PutOutcome};
use crate::testing::{MemoryIngest, NoArchive, memory_ingest};

fn service() -> MemoryIngest {
    memory_ingest()
}

/// A batch `b-1` of `latencies.len()` predictions, one a minute from 10:00.
fn body(latencies: &[f64]) -> Vec<u8> {
    let predictions: Vec<String> = latencies
        .iter()
        .enumerate()
        .map(|(i, latency)| {
            format!(
                r#"{{"timestamp": "2026-11-28T10:{i:02}:05Z", "latency_ms": {latency}, "status": "ok", "predicted": 1.0, "actual": 2.0}}"#
            )
        })
        .collect();
    format!(
        r#"{{"model_id": "m1", "batch_id": "b-1", "task": "regression", "predictions": [{}]}}"#,
        predictions.join(",")
    )
    .into_bytes()
}

fn now() -> DateTime<Utc> {
    "2026-11-28T10:30:00Z".parse().expect("time")
}

fn parsed(body: &[u8]) -> ValidBatch {
    parse_batch(body, now(), &BatchLimits::default()).expect("valid")
}

fn tenant() -> TenantId {
    TenantId::parse("t1").expect("tenant")
}

#[tokio::test]
async fn the_same_body_again_is_a_duplicate_and_another_body_under_its_id_is_refused() {
    let service = service();
    let first = service
        .ingest(&tenant(), &body(&[5.0, 6.0]), now())
        .await
        .expect("stored");
    assert!(!first.duplicate);
    let again = service
        .ingest(&tenant(), &body(&[5.0, 6.0]), now())
        .await
        .expect("answered");
    assert!(again.duplicate);
    assert_eq!(again.minutes, first.minutes);

    let stored = service.partials.partials();
    let refused = service
        .ingest(&tenant(), &body(&[5.0, 6.0, 7.0]), now())
        .await;
    assert!(
        matches!(&refused, Err(IngestError::BatchConflict { batch_id }) if batch_id == "b-1"),
        "{refused:?}"
    );
    assert_eq!(service.partials.partials(), stored, "nothing written");
}

#[tokio::test]
async fn a_half_stored_batch_is_completed_by_its_own_body_only() {
    let service = service();
    // An earlier attempt claimed the id for the first body and died before any
    // partial was written.
    let key = BatchKey {
        tenant: tenant(),
        model_id: ModelId::parse("m1").expect("model"),
        batch_id: "b-1".to_owned(),
    };
    let claim = service
        .partials
        .claim_batch(&key, &content_digest(&parsed(&body(&[5.0, 6.0]))))
        .await
        .expect("claim");
    assert_eq!(claim, BatchClaim::Proceed);

    let other = service.ingest(&tenant(), &body(&[9.0]), now()).await;
    assert!(
        matches!(other, Err(IngestError::BatchConflict { .. })),
        "{other:?}"
    );
    assert!(service.partials.partials().is_empty());

    let retry = service
        .ingest(&tenant(), &body(&[5.0, 6.0]), now())
        .await
        .expect("stored");
    assert!(!retry.duplicate);
    assert_eq!(retry.accepted, 2);
    assert_eq!(service.partials.partials().len(), 2);
}

/// A binary-classification batch `b-1` of one prediction.
fn binary_body() -> Vec<u8> {
    br#"{"model_id": "m1", "batch_id": "b-1", "task": "binary_classification", "predictions": [{"timestamp": "2026-11-28T10:00:05Z", "latency_ms": 5, "status": "ok", "predicted": true}]}"#.to_vec()
}

#[tokio::test]
async fn a_task_conflict_frees_the_batch_id_for_the_corrected_batch() {
    let service = service();
    service
        .registry
        .record_sighting(
            &ModelSighting {
                tenant: tenant(),
                model_id: ModelId::parse("m1").expect("model"),
                task: crate::domain::Task::Regression,
                first: now(),
                last: now(),
                version: None,
            },
            u64::MAX,
        )
        .await
        .expect("registered");
    let wrong = service.ingest(&tenant(), &binary_body(), now()).await;
    assert!(
        matches!(wrong, Err(IngestError::TaskConflict(_))),
        "{wrong:?}"
    );
    assert!(service.partials.partials().is_empty());

    let corrected = service
        .ingest(&tenant(), &body(&[5.0]), now())
        .await
        .expect("the same id, now with the right task");
    assert!(!corrected.duplicate);
    assert_eq!(corrected.accepted, 1);
}

/// A partial store whose claims cannot be released.
struct Unreleasable(MemoryPartialStore);

impl PartialStore for Unreleasable {
    async fn claim_batch(&self, batch: &BatchKey, digest: &str) -> StoreResult<BatchClaim> {
        self.0.claim_batch(batch, digest).await
    }

    async fn release_batch(&self, _: &BatchKey, _: &str) -> StoreResult<()> {
        Err(StoreError::Unavailable {
            operation: "release batch claim",
            source: "throttled".into(),
        })
    }

    async fn put_batch_receipt(&self, batch: &BatchKey, receipt: &[u8]) -> StoreResult<()> {
        self.0.put_batch_receipt(batch, receipt).await
    }

    async fn put_partial(&self, key: &PartialKey, state: &WindowState) -> StoreResult<PutOutcome> {
        self.0.put_partial(key, state).await
    }

    async fn mark_pending(&self, key: &PartialKey) -> StoreResult<()> {
        self.0.mark_pending(key).await
    }

    async fn count_predictions(&self, count: &PredictionCount<'_>) -> StoreResult<bool> {
        self.0.count_predictions(count).await
    }
}

#[tokio::test]
async fn a_claim_that_cannot_be_released_answers_unavailable() {
    let service = IngestService {
        versions_per_model: crate::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: crate::ingest::SegmentAdmission::default(),
        registry: MemoryModelRegistry::default(),
        partials: Unreleasable(MemoryPartialStore::default()),
        archive: None::<NoArchive>,
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    };
    service
        .ingest(&tenant(), &body(&[5.0]), now())
        .await
        .expect("registers the model as regression");
    let mut other_id = String::from_utf8(binary_body()).expect("utf-8");
    other_id = other_id.replace("b-1", "b-2");
    let refused = service.ingest(&tenant(), other_id.as_bytes(), now()).await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Store(StoreError::Unavailable { .. }))
        ),
        "the sender retries, which claims and releases again: {refused:?}"
    );
}

/// An archive that refuses every record with a reason of over 1 KB.
struct Refusing;

impl PredictionArchive for Refusing {
    async fn archive(&self, _: &TenantId, batch: &ValidBatch) -> StoreResult<ArchiveReport> {
        Ok(ArchiveReport {
            written: 0,
            rejected: (0..batch.predictions.len())
                .rev()
                .map(|index| ArchiveRejection {
                    index,
                    reason: format!("record {index}: {}", "é".repeat(512)),
                })
                .collect(),
        })
    }
}

#[tokio::test]
async fn the_largest_receipt_is_stored_small_and_answers_a_retry_exactly() {
    // 10,000 predictions in 10,000 distinct minutes of the last 7 days, every one
    // refused by the archive with a 1 KB reason.
    let predictions: Vec<String> = (1..=10_000)
        .map(|i| {
            let at = now() - TimeDelta::minutes(i) + TimeDelta::seconds(5);
            format!(
                r#"{{"timestamp": "{}", "latency_ms": 3, "status": "ok", "predicted": 1.0}}"#,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .collect();
    let body = format!(
        r#"{{"model_id": "m1", "batch_id": "worst", "task": "regression", "predictions": [{}]}}"#,
        predictions.join(",")
    );
    let service = IngestService {
        versions_per_model: crate::domain::slice::DEFAULT_VERSIONS_PER_MODEL,
        segments: crate::ingest::SegmentAdmission::default(),
        registry: MemoryModelRegistry::default(),
        partials: MemoryPartialStore::default(),
        archive: Some(Refusing),
        limits: BatchLimits::default(),
        labels: MemoryLabelStore::default(),
        lookback: LabelLookback::DEFAULT,
        quotas: IngestQuotas::default(),
    };
    let first = service
        .ingest(&tenant(), body.as_bytes(), now())
        .await
        .expect("stored");
    assert_eq!(first.minutes.len(), 10_000);
    assert!(first.minutes.windows(2).all(|w| w[0] < w[1]));
    let archive = &first.timestream;
    assert_eq!(archive.rejected_count, 10_000);
    assert_eq!(archive.rejected.len(), crate::ingest::MAX_LISTED_REJECTIONS);
    assert_eq!(archive.rejected[99].index, 99, "the first by index");
    assert!(
        archive
            .rejected
            .iter()
            .all(|r| r.reason.len() <= crate::ingest::MAX_REJECTION_REASON_BYTES)
    );

    let key = BatchKey {
        tenant: tenant(),
        model_id: ModelId::parse("m1").expect("model"),
        batch_id: "worst".into(),
    };
    let digest = content_digest(&parsed(body.as_bytes()));
    let BatchClaim::Stored(stored) = service
        .partials
        .claim_batch(&key, &digest)
        .await
        .expect("claim")
    else {
        panic!("the receipt is stored");
    };
    let expires = now() + TimeDelta::days(8);
    let size = crate::adapters::dynamodb::batch_image(&key, &digest, Some(&stored), expires)
        .checked_size()
        .expect("a valid item");
    eprintln!(
        "largest receipt: {} bytes stored, item {size} bytes, answer {} bytes of JSON",
        stored.len(),
        serde_json::to_string(&first).expect("json").len()
    );
    assert!(size < 64 * 1024, "{size} bytes");

    let again = service
        .ingest(&tenant(), body.as_bytes(), now())
        .await
        .expect("answered");
    assert!(again.duplicate);
    assert_eq!(
        IngestReceipt {
            duplicate: false,
            ..again
        },
        first,
        "the retry's answer is the first answer"
    );
}

#[tokio::test]
async fn a_claim_stored_by_the_release_that_digested_bytes_is_recognised() {
    let service = service();
    let key = BatchKey {
        tenant: tenant(),
        model_id: ModelId::parse("m1").expect("model"),
        batch_id: "b-1".to_owned(),
    };
    // The previous release claimed the id for the body's bytes and died before
    // storing the receipt; the sender retries the same bytes after the upgrade.
    let first = body(&[5.0, 6.0]);
    let claim = service
        .partials
        .claim_batch(&key, &legacy_body_digest(&first))
        .await
        .expect("claim");
    assert_eq!(claim, BatchClaim::Proceed);
    let retry = service
        .ingest(&tenant(), &first, now())
        .await
        .expect("the retry is the same batch");
    assert_eq!((retry.accepted, retry.duplicate), (2, false));
    let again = service
        .ingest(&tenant(), &first, now())
        .await
        .expect("answered");
    assert!(again.duplicate);
    let other = service.ingest(&tenant(), &body(&[9.0]), now()).await;
    assert!(
        matches!(other, Err(IngestError::BatchConflict { .. })),
        "{other:?}"
    );
}

/// `body(latencies)` under another batch id.
fn batch(id: &str, latencies: &[f64]) -> Vec<u8> {
    String::from_utf8(body(latencies))
        .expect("UTF-8")
        .replace("\"b-1\"", &format!("{id:?}"))
        .into_bytes()
}

#[tokio::test]
async fn a_tenant_over_its_quota_is_refused_at_the_door_and_a_retry_never_counts() {
    let mut service = service();
    service.quotas = IngestQuotas::new(QuotaLimits {
        predictions_per_minute: 3,
        ..QuotaLimits::default()
    });
    let other = TenantId::parse("t2").expect("tenant");
    let first = service
        .ingest(&tenant(), &batch("a", &[1.0, 2.0]), now())
        .await
        .expect("2 of 3");
    // A retry of a stored batch is answered from its receipt: never counted, never
    // refused for the quota.
    let retry = service
        .ingest(&tenant(), &batch("a", &[1.0, 2.0]), now())
        .await
        .expect("a retry");
    assert!(retry.duplicate && !first.duplicate);
    let stored = service.partials.partials().len();
    let late = now() + TimeDelta::milliseconds(45_200);
    let over = service
        .ingest(&tenant(), &batch("b", &[1.0, 2.0]), late)
        .await;
    let Err(IngestError::OverQuota(over)) = over else {
        panic!("{over:?}");
    };
    assert_eq!(
        over,
        OverQuota {
            quota: Quota::PredictionsPerMinute,
            limit: 3,
            requested: 2,
            retry_after_seconds: 15,
        }
    );
    assert_eq!(service.partials.partials().len(), stored, "nothing written");
    // Another tenant's batch in the same minute is counted on its own.
    service
        .ingest(&other, &batch("b", &[1.0, 2.0]), late)
        .await
        .expect("another tenant's quota");
    // What fits is accepted; the refused batch's id is free for the same batch a
    // minute later.
    service
        .ingest(&tenant(), &batch("c", &[1.0]), late)
        .await
        .expect("3 of 3");
    let later = service
        .ingest(
            &tenant(),
            &batch("b", &[1.0, 2.0]),
            now() + TimeDelta::minutes(1),
        )
        .await
        .expect("the next minute");
    assert!(!later.duplicate);
}

#[tokio::test]
async fn an_operator_quota_overrides_the_default_for_its_tenant_only() {
    let service = service();
    service.registry.set_quotas(
        &tenant(),
        TenantQuotas {
            predictions_per_minute: Some(1),
            ..TenantQuotas::default()
        },
    );
    let refused = service
        .ingest(&tenant(), &batch("a", &[1.0, 2.0]), now())
        .await;
    assert!(
        matches!(
            refused,
            Err(IngestError::OverQuota(OverQuota {
                limit: 1,
                requested: 2,
                ..
            }))
        ),
        "{refused:?}"
    );
    assert!(
        refused.is_err_and(|e| e.to_string().contains("this batch alone is larger")),
        "the message says why waiting will not help"
    );
    let other = TenantId::parse("t2").expect("tenant");
    service
        .ingest(&other, &batch("a", &[1.0, 2.0]), now())
        .await
        .expect("the default quota");
}

#[tokio::test]
async fn a_new_model_beyond_the_models_quota_is_refused_whole_and_known_models_go_on() {
    let service = service();
    service.registry.set_quotas(
        &tenant(),
        TenantQuotas {
            models_per_tenant: Some(1),
            ..TenantQuotas::default()
        },
    );
    let of_model = |model: &str, id: &str| {
        String::from_utf8(batch(id, &[1.0]))
            .expect("UTF-8")
            .replace("\"m1\"", &format!("{model:?}"))
            .into_bytes()
    };
    service
        .ingest(&tenant(), &of_model("m1", "a"), now())
        .await
        .expect("the first model");
    let stored = service.partials.partials().len();
    let refused = service.ingest(&tenant(), &of_model("m2", "b"), now()).await;
    let Err(IngestError::OverQuota(over)) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(over, OverQuota::standing(Quota::ModelsPerTenant, 1, 1));
    assert_eq!(service.partials.partials().len(), stored, "nothing written");
    let models = service
        .registry
        .list_models(&tenant())
        .await
        .expect("models");
    assert_eq!(models.len(), 1, "m2 is not registered");
    // The registered model is accepted; another tenant has its own quota.
    service
        .ingest(&tenant(), &of_model("m1", "c"), now())
        .await
        .expect("a known model");
    service
        .ingest(
            &TenantId::parse("t2").expect("tenant"),
            &of_model("m2", "b"),
            now(),
        )
        .await
        .expect("another tenant's model");
    // Raised by an operator, the quota applies within a minute, and the refused
    // batch's id was released: the same batch is accepted.
    service
        .registry
        .set_quotas(&tenant(), TenantQuotas::default());
    let later = now() + TimeDelta::minutes(1);
    let accepted = service
        .ingest(&tenant(), &of_model("m2", "b"), later)
        .await
        .expect("the raised quota");
    assert!(!accepted.duplicate);
}

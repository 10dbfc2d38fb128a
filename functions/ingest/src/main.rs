//! The `ingest` function: serving systems POST prediction batches here, and label
//! batches (late ground truth, joined to the predictions by `prediction_id`).

mod handler;

use lambda_http::{Error, run, service_fn};
use modelwatch::adapters::dynamodb::{DynamoLabelStore, DynamoModelRegistry, DynamoPartialStore};
use modelwatch::adapters::timestream::TimestreamArchive;
use modelwatch::aws;
use modelwatch::domain::labels::LabelLookback;
use modelwatch::ingest::{BatchLimits, IngestQuotas, IngestService, SegmentAdmission};
use modelwatch::startup::{ColdStart, cold_start};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let dynamodb = aws::dynamodb(&sdk);
    let archive = match &config.timestream {
        Some(target) => Some(TimestreamArchive::new(
            aws::timestream_write(&sdk).await?,
            &target.database,
            &target.table,
        )),
        None => None,
    };
    let ingest = handler::Ingest {
        service: IngestService {
            versions_per_model: config.ingest.versions_per_model,
            segments: SegmentAdmission::new(config.ingest.segment_caps),
            registry: DynamoModelRegistry::new(dynamodb.clone(), &config.tables.models),
            partials: DynamoPartialStore::new(
                dynamodb.clone(),
                &config.tables.partials,
                config.ingest.partial_retention,
            ),
            archive,
            limits: BatchLimits {
                max_age: config.ingest.max_event_age,
                max_future: config.ingest.max_clock_skew,
                ..BatchLimits::default()
            },
            labels: DynamoLabelStore::new(dynamodb, &config.tables.partials),
            lookback: LabelLookback(config.ingest.label_lookback),
            quotas: IngestQuotas::new(config.quotas),
        },
        tenant_claim: config.tenant_claim,
    };
    run(service_fn(|request| ingest.handle(request))).await
}

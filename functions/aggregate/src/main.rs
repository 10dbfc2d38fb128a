//! The `aggregate` function: scheduled aggregation, driven by EventBridge every
//! `PERF_MONITORING_INTERVAL` seconds (reserved concurrency 1: the one writer of the
//! Prometheus series).

mod handler;

use lambda_runtime::{Error, run, service_fn};
use modelwatch::adapters::cloudwatch::{CloudWatchExporter, CloudWatchMetricsExporter};
use modelwatch::adapters::dynamodb::{DynamoPartialStore, DynamoRollupStore};
use modelwatch::adapters::remote_write::PrometheusExporter;
use modelwatch::aws;
use modelwatch::domain::CloudWatchMetrics;
use modelwatch::ports::PrometheusSeries;
use modelwatch::startup::{ColdStart, cold_start};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let dynamodb = aws::dynamodb(&sdk);
    let prometheus = PrometheusExporter::from_config(&config, &sdk)?;
    let aggregate = handler::Aggregate {
        pending: DynamoPartialStore::new(
            dynamodb.clone(),
            &config.tables.partials,
            config.ingest.partial_retention,
        ),
        rollups: DynamoRollupStore::new(dynamodb, &config.tables.rollups, config.rollups),
        cloudwatch: match config.cloudwatch_metrics {
            CloudWatchMetrics::Off => None,
            metrics => Some(CloudWatchMetricsExporter {
                exporter: CloudWatchExporter::new(
                    aws::cloudwatch(&sdk),
                    &config.cloudwatch_namespace,
                )?,
                metrics,
            }),
        },
        prometheus: prometheus.map(PrometheusSeries),
        interval: config.perf.monitoring_interval,
    };
    run(service_fn(|event| aggregate.handle(event))).await
}

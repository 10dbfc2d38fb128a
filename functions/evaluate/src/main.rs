//! The `evaluate` function: scheduled evaluation of baselines, alert rules and trends,
//! driven by EventBridge every `PERF_MONITORING_INTERVAL` seconds and fanned out, like
//! `aggregate`, to shard workers through a FIFO queue; alerts go to SNS, baselines,
//! thresholds and firing rules to Prometheus.

mod handler;

use lambda_runtime::{Error, run, service_fn};
use modelwatch::adapters::dynamodb::{
    DynamoAlertStore, DynamoModelRegistry, DynamoModelSettings, DynamoRollupStore,
};
use modelwatch::adapters::remote_write::PrometheusExporter;
use modelwatch::adapters::sns::SnsAlertNotifier;
use modelwatch::adapters::sqs::SqsShardQueue;
use modelwatch::alerting::service::Evaluator;
use modelwatch::aws;
use modelwatch::schedule::ShardWork;
use modelwatch::startup::{ColdStart, cold_start};
use modelwatch::summary::WindowReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let dynamodb = aws::dynamodb(&sdk);
    let prometheus = PrometheusExporter::from_config(&config, &sdk)?;
    let interval = config.perf.monitoring_interval;
    let evaluate = handler::Evaluate {
        evaluator: Evaluator {
            registry: DynamoModelRegistry::new(dynamodb.clone(), &config.tables.models),
            settings: DynamoModelSettings::new(dynamodb.clone(), &config.tables.models),
            alerts: DynamoAlertStore::new(dynamodb.clone(), &config.tables.alerts),
            window: WindowReader {
                rollups: DynamoRollupStore::new(
                    dynamodb,
                    &config.tables.rollups,
                    config.rollups.clone(),
                ),
                minute_retention: config.rollups.minute,
            },
            notifier: SnsAlertNotifier::new(aws::sns(&sdk), &config.alert_topic_arn),
            prometheus,
            perf: config.perf,
            alerting: config.alerts,
        },
        work: ShardWork {
            queue: config
                .shard_queues
                .evaluate
                .map(|url| SqsShardQueue::new(aws::sqs(&sdk), url)),
            workers: config.shard_workers,
            interval,
        },
    };
    run(service_fn(|event| evaluate.handle(event))).await
}

//! The `evaluate` function: scheduled evaluation of baselines, alert rules and trends,
//! driven by EventBridge every `PERF_MONITORING_INTERVAL` seconds and fanned out, like
//! `aggregate`, to shard workers through a FIFO queue; alerts go to SNS and the
//! tenants' webhooks, baselines,
//! thresholds and firing rules to Prometheus, the last hour's estimates and drift to
//! Prometheus and (with `CLOUDWATCH_METRICS=all`) CloudWatch.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use modelwatch::adapters::cloudwatch::CloudWatchExporter;
use modelwatch::adapters::dynamodb::{
    DynamoAlertStore, DynamoModelRegistry, DynamoModelSettings, DynamoRollupStore,
};
use modelwatch::adapters::remote_write::PrometheusExporter;
use modelwatch::adapters::sns::SnsAlertNotifier;
use modelwatch::adapters::sqs::SqsShardQueue;
use modelwatch::adapters::webhook::HttpWebhookSender;
use modelwatch::alerting::service::Evaluator;
use modelwatch::alerting::subscriptions::AlertDelivery;
use modelwatch::aws;
use modelwatch::domain::CloudWatchMetrics;
use modelwatch::schedule::{Invocation, ShardWork};
use modelwatch::startup::{ColdStart, cold_start};
use modelwatch::summary::WindowReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let dynamodb = aws::dynamodb(&sdk);
    let prometheus = PrometheusExporter::from_config(&config, &sdk)?;
    let interval = config.perf.monitoring_interval;
    let evaluator = Evaluator {
        registry: DynamoModelRegistry::new(dynamodb.clone(), &config.tables.models),
        settings: DynamoModelSettings::new(dynamodb.clone(), &config.tables.models),
        alerts: DynamoAlertStore::new(dynamodb.clone(), &config.tables.alerts),
        window: WindowReader {
            rollups: DynamoRollupStore::new(
                dynamodb.clone(),
                &config.tables.rollups,
                config.rollups.clone(),
            ),
            minute_retention: config.rollups.minute,
        },
        // Alerts go to the topic (SNS delivers them to the tenants' e-mail and SQS
        // subscriptions) and to the tenants' webhooks, signed.
        notifier: AlertDelivery {
            topic: SnsAlertNotifier::new(aws::sns(&sdk), &config.alert_topic_arn),
            subscriptions: DynamoModelSettings::new(dynamodb, &config.tables.models),
            webhooks: HttpWebhookSender::new()?,
        },
        prometheus,
        // Five more custom metrics per binary model: only with every metric selected.
        cloudwatch: match config.cloudwatch_metrics {
            CloudWatchMetrics::All => Some(CloudWatchExporter::new(
                aws::cloudwatch(&sdk),
                &config.cloudwatch_namespace,
            )?),
            CloudWatchMetrics::Off | CloudWatchMetrics::Core => None,
        },
        perf: config.perf,
        alerting: config.alerts,
    };
    let queue = config.shard_queues.evaluate;
    let work = ShardWork {
        queue: queue.map(|url| SqsShardQueue::new(aws::sqs(&sdk), url)),
        workers: config.shard_workers,
        interval,
    };
    // Each run is bounded by the invocation's deadline. The invocation fails (so the
    // schedule retries) only when the registry or the queue cannot be reached; a model
    // or a notification that fails is reported and retried on the next run, its state
    // unchanged; a queued message that fails is delivered again.
    let (work, evaluator) = (&work, &evaluator);
    run(service_fn(|event: LambdaEvent<Invocation>| async move {
        let deadline = event.context.deadline;
        let answer = work
            .handle(event.payload, deadline, |run| async move {
                evaluator.run(&run).await
            })
            .await?;
        Ok::<_, Error>(answer)
    }))
    .await
}

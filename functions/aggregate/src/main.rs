//! The `aggregate` function: scheduled aggregation, driven by EventBridge every
//! `PERF_MONITORING_INTERVAL` seconds. The schedule's invocation fans the run out to
//! the shard workers through a FIFO queue (one message group per range of shards, so
//! one worker at a time writes a model's Prometheus series); the queue invokes the
//! same function with each range.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use modelwatch::adapters::cloudwatch::{CloudWatchExporter, CloudWatchMetricsExporter};
use modelwatch::adapters::dynamodb::{DynamoPartialStore, DynamoRollupStore};
use modelwatch::adapters::remote_write::PrometheusExporter;
use modelwatch::adapters::sqs::SqsShardQueue;
use modelwatch::aggregate::Aggregator;
use modelwatch::aws;
use modelwatch::domain::CloudWatchMetrics;
use modelwatch::ports::PrometheusSeries;
use modelwatch::schedule::{Invocation, ShardWork};
use modelwatch::startup::{ColdStart, cold_start};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let dynamodb = aws::dynamodb(&sdk);
    let prometheus = PrometheusExporter::from_config(&config, &sdk)?;
    let aggregator = Aggregator {
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
        exported_segment_keys: config.exported_segment_keys.clone(),
    };
    let queue = config.shard_queues.aggregate;
    let work = ShardWork {
        queue: queue.map(|url| SqsShardQueue::new(aws::sqs(&sdk), url)),
        workers: config.shard_workers,
        interval: config.perf.monitoring_interval,
    };
    // Each run is bounded by the invocation's deadline (what it leaves is the next
    // run's). The invocation fails (so the schedule retries) only when the stores or
    // the queue cannot be reached; a model or an exporter that fails is reported and
    // retried on the next run, a queued message that fails is delivered again.
    let (work, aggregator) = (&work, &aggregator);
    run(service_fn(|event: LambdaEvent<Invocation>| async move {
        let deadline = event.context.deadline;
        let answer = work
            .handle(event.payload, deadline, |run| aggregator.run(run))
            .await?;
        Ok::<_, Error>(answer)
    }))
    .await
}

//! The `evaluate` function: scheduled evaluation, driven by EventBridge every
//! `PERF_MONITORING_INTERVAL` seconds.

mod handler;

use lambda_runtime::{Error, run, service_fn};
use modelwatch::adapters::dynamodb::DynamoModelRegistry;
use modelwatch::{aws, config::Config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let registry = DynamoModelRegistry::new(aws::dynamodb(&sdk), &config.tables.models);
    run(service_fn(|event| handler::handle(&registry, event))).await
}

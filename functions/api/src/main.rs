//! The `api` function: the monitoring HTTP API behind API Gateway's JWT authorizer.

mod handler;

use lambda_http::{Error, run, service_fn};
use modelwatch::adapters::dynamodb::DynamoModelRegistry;
use modelwatch::{aws, config::Config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let api = handler::Api {
        registry: DynamoModelRegistry::new(aws::dynamodb(&sdk), &config.tables.models),
        tenant_claim: config.tenant_claim,
    };
    run(service_fn(|request| api.handle(request))).await
}

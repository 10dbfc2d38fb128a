//! The `api` function: the monitoring HTTP API behind API Gateway's JWT authorizer.

use api::Api;
use lambda_http::{Error, run, service_fn};
use modelwatch::adapters::dynamodb::{
    DynamoAlertStore, DynamoModelRegistry, DynamoModelSettings, DynamoRollupStore,
};
use modelwatch::adapters::sns::SnsTopicSubscriptions;
use modelwatch::aws;
use modelwatch::startup::{ColdStart, cold_start};
use modelwatch::summary::{SummaryService, WindowReader};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ColdStart { config, sdk } = cold_start().await?;
    let client = aws::dynamodb(&sdk);
    // The topic's account is the deployment's: tenants may subscribe its queues only.
    let account = config
        .alert_topic_arn
        .split(':')
        .nth(4)
        .filter(|account| !account.is_empty())
        .ok_or("ALERT_TOPIC_ARN is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")?
        .to_owned();
    let api = Api {
        registry: DynamoModelRegistry::new(client.clone(), &config.tables.models),
        alerts: DynamoAlertStore::new(client.clone(), &config.tables.alerts),
        summary: SummaryService {
            settings: DynamoModelSettings::new(client.clone(), &config.tables.models),
            window: WindowReader {
                minute_retention: config.rollups.minute,
                rollups: DynamoRollupStore::new(client, &config.tables.rollups, config.rollups),
            },
        },
        perf: config.perf,
        alert_settings: config.alerts,
        quotas: config.quotas,
        topic: SnsTopicSubscriptions::new(aws::sns(&sdk), &config.alert_topic_arn),
        account,
        tenant_claim: config.tenant_claim,
    };
    run(service_fn(|request| api.handle(request))).await
}

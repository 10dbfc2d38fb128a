//! AWS SDK client construction, shared so every function builds its clients alike.
//!
//! Endpoints: the SDK itself honours `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (e.g. `AWS_ENDPOINT_URL_DYNAMODB`), which is
//! how the local stack (moto on 127.0.0.1:4566) and LocalStack are reached; no
//! project-specific switch exists.

use aws_config::{BehaviorVersion, SdkConfig};

/// Errors building an AWS client.
#[cfg(feature = "timestream")]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Timestream Write's endpoint discovery failed at cold start.
    #[error("Timestream endpoint discovery failed")]
    TimestreamDiscovery(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Loads region, credentials and endpoint overrides from the environment, once.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::tls::aws_http_client())
        .load()
        .await
}

/// A DynamoDB client.
#[cfg(feature = "dynamodb")]
pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// An SNS client.
#[cfg(feature = "sns")]
pub fn sns(sdk: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(sdk)
}

/// An SQS client.
#[cfg(feature = "sqs")]
pub fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// A CloudWatch client. It speaks rpc-v2-cbor: locally, LocalStack serves it (moto
/// does not understand that protocol).
#[cfg(feature = "cloudwatch")]
pub fn cloudwatch(sdk: &SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(sdk)
}

/// A Secrets Manager client (the remote-write credential).
#[cfg(feature = "remote-write")]
pub fn secrets_manager(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

/// A Timestream Write client.
///
/// Real Timestream requires endpoint discovery, and the discovered endpoint must be
/// refreshed, so a background task is spawned on the current tokio runtime. Against an
/// emulator discovery would return the real AWS host, so when an endpoint override is
/// configured (globally or for Timestream Write) the override is used as is.
#[cfg(feature = "timestream")]
pub async fn timestream_write(
    sdk: &SdkConfig,
) -> Result<aws_sdk_timestreamwrite::Client, ClientError> {
    let client = aws_sdk_timestreamwrite::Client::new(sdk);
    if has_endpoint_override(sdk) {
        return Ok(client);
    }
    let (client, reloader) = client
        .with_endpoint_discovery_enabled()
        .await
        .map_err(ClientError::TimestreamDiscovery)?;
    tokio::spawn(reloader.reload_task());
    Ok(client)
}

/// Whether an endpoint URL was configured for Timestream Write: globally
/// (`AWS_ENDPOINT_URL` or the shared config file, as resolved into `sdk`) or for the
/// service (`AWS_ENDPOINT_URL_TIMESTREAM_WRITE`). The service config exposes no getter
/// for the resolved URL, hence the variable is read here, once, at cold start.
#[cfg(feature = "timestream")]
fn has_endpoint_override(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_TIMESTREAM_WRITE").is_some_and(|v| !v.is_empty())
}

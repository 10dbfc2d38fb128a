//! What every function's `main` starts from, once per cold start: tracing set up, the
//! configuration read (an invalid value fails the cold start, naming the variable)
//! and the AWS SDK configuration loaded.

use aws_config::SdkConfig;

use crate::config::{Config, ConfigError};
use crate::{aws, telemetry};

/// The configuration and the SDK configuration a function builds its clients from.
#[derive(Debug)]
pub struct ColdStart {
    /// The function's settings.
    pub config: Config,
    /// Region, credentials and endpoint overrides.
    pub sdk: SdkConfig,
}

/// Sets up tracing, then reads the configuration and loads the SDK configuration.
pub async fn cold_start() -> Result<ColdStart, ConfigError> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = aws::load_sdk_config().await;
    Ok(ColdStart { config, sdk })
}

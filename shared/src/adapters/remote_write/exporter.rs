//! [`PrometheusExporter`]: the remote-write client as the ports see it — the
//! [`MetricsExporter`] of `aggregate` and the [`SeriesWriter`] of `evaluate` — built
//! from the raw settings (`PROMETHEUS_REMOTE_WRITE_URL`, `PROMETHEUS_REMOTE_WRITE_AUTH`
//! or `PROMETHEUS_REMOTE_WRITE_AUTH_SECRET`), which it parses itself.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::auth::Authorizer;
use super::secret::{SecretAuthorizer, SecretsManagerSecret};
use super::{
    AuthParseError, RemoteWriteAuth, RemoteWriteClient, RemoteWriteSetupError, RetryPolicy,
};
use crate::aws;
use crate::config::Config;
use crate::domain::Series;
use crate::ports::{ExportFailure, SeriesWriter};

/// The Prometheus remote-write exporter.
pub struct PrometheusExporter(pub RemoteWriteClient);

impl PrometheusExporter {
    /// The exporter to the configured `PROMETHEUS_REMOTE_WRITE_URL` with the
    /// credential of the secret `PROMETHEUS_REMOTE_WRITE_AUTH_SECRET` (read at run
    /// time) or the setting `PROMETHEUS_REMOTE_WRITE_AUTH` (none when neither is set)
    /// and the default retry policy; `None` when no URL is configured.
    ///
    /// # Errors
    /// [`RemoteWriteSetupError`] when the auth setting does not parse (the error names
    /// the variable, never the value: it may hold a secret) or the client cannot be
    /// built.
    pub fn from_config(
        config: &Config,
        sdk: &SdkConfig,
    ) -> Result<Option<Self>, RemoteWriteSetupError> {
        let Some(url) = config.remote_write_url.as_deref() else {
            return Ok(None);
        };
        let authorizer = match (&config.remote_write_auth_secret, &config.remote_write_auth) {
            (Some(secret_id), _) => {
                let secret = SecretsManagerSecret::new(aws::secrets_manager(sdk), secret_id);
                Authorizer::Secret(Box::new(SecretAuthorizer::new(
                    Arc::new(secret),
                    sdk.clone(),
                    config.remote_write_secret_refresh,
                )))
            }
            (None, raw) => {
                let auth = match raw {
                    None => RemoteWriteAuth::None,
                    Some(raw) => raw
                        .expose()
                        .parse()
                        .map_err(|e: AuthParseError| RemoteWriteSetupError::AuthSetting(e))?,
                };
                Authorizer::new(&auth, sdk).map_err(RemoteWriteSetupError::Auth)?
            }
        };
        RemoteWriteClient::with_authorizer(url, authorizer, RetryPolicy::default())
            .map(Self)
            .map(Some)
    }
}

impl SeriesWriter for PrometheusExporter {
    async fn write_series(&self, series: &[Series]) -> Result<(), ExportFailure> {
        if series.is_empty() {
            return Ok(());
        }
        match self.0.write(series).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_retryable() => Err(ExportFailure::Unavailable(Box::new(err))),
            Err(err) => Err(ExportFailure::Rejected(Box::new(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(auth: &str) -> Config {
        let vars = [
            ("PARTIALS_TABLE", "p"),
            ("ROLLUPS_TABLE", "r"),
            ("MODELS_TABLE", "m"),
            ("ALERTS_TABLE", "a"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("TIMESTREAM_ENABLED", "false"),
            (
                "PROMETHEUS_REMOTE_WRITE_URL",
                "http://127.0.0.1:9/api/v1/write",
            ),
            ("PROMETHEUS_REMOTE_WRITE_AUTH", auth),
        ];
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("config")
    }

    #[test]
    fn an_invalid_auth_setting_fails_naming_the_variable_not_the_value() {
        let sdk = SdkConfig::builder().build();
        let err = PrometheusExporter::from_config(&config("secret-without-scheme"), &sdk)
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(
            message.contains("PROMETHEUS_REMOTE_WRITE_AUTH"),
            "{message}"
        );
        assert!(
            !format!("{err:?}").contains("secret-without-scheme"),
            "{err:?}"
        );
        assert!(
            PrometheusExporter::from_config(&config("bearer:t0ken"), &sdk)
                .expect("built")
                .is_some()
        );
    }
}

//! Alert notifications on SNS: [`SnsAlertNotifier`] publishes each alert transition to
//! the alert topic.
//!
//! The message is the [`AlertRecord`] as JSON, the subject [`AlertRecord::subject`], and
//! every pair of [`AlertRecord::message_attributes`] a `String` message attribute, so
//! subscribers can filter on severity, model, tenant, state, metric and rule. The SDK
//! retries throttling and 5xx itself; what is left is [`StoreError::Unavailable`] (the
//! evaluation retries on its next run), while a request SNS refuses as wrong (bad
//! parameters, missing topic, no permission, KMS key unusable) is
//! [`StoreError::Internal`].

use aws_sdk_sns::Client;
use aws_sdk_sns::error::SdkError;
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::domain::alerting::state::AlertRecord;
use crate::error::StoreError;
use crate::ports::AlertNotifier;

/// What a failed publish is reported as.
const OPERATION: &str = "publish alert";

/// [`AlertNotifier`] on an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsAlertNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsAlertNotifier {
    /// Publishes to the topic `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// Whether SNS refused the request itself, so that sending it again cannot help.
fn is_permanent(error: &PublishError) -> bool {
    matches!(
        error,
        PublishError::AuthorizationErrorException(_)
            | PublishError::EndpointDisabledException(_)
            | PublishError::InvalidParameterException(_)
            | PublishError::InvalidParameterValueException(_)
            | PublishError::InvalidSecurityException(_)
            | PublishError::KmsAccessDeniedException(_)
            | PublishError::KmsDisabledException(_)
            | PublishError::KmsInvalidStateException(_)
            | PublishError::KmsNotFoundException(_)
            | PublishError::KmsOptInRequired(_)
            | PublishError::NotFoundException(_)
            | PublishError::PlatformApplicationDisabledException(_)
            | PublishError::ValidationException(_)
    )
}

/// Maps a failed publish to the port's error, keeping the SDK error as the source:
/// refusals are `Internal`, everything else (throttling and 5xx after the SDK's
/// retries, KMS throttling, timeouts, connection failures) is `Unavailable`.
fn publish_error(err: SdkError<PublishError>) -> StoreError {
    if err.as_service_error().is_some_and(is_permanent) {
        StoreError::Internal {
            operation: OPERATION,
            source: Box::new(err),
        }
    } else {
        StoreError::Unavailable {
            operation: OPERATION,
            source: Box::new(err),
        }
    }
}

impl AlertNotifier for SnsAlertNotifier {
    async fn notify(&self, alert: &AlertRecord) -> Result<(), StoreError> {
        let message = serde_json::to_string(alert).map_err(|e| StoreError::Internal {
            operation: "encode alert",
            source: Box::new(e),
        })?;
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message(message);
        for (name, value) in alert.message_attributes() {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError::Internal {
                    operation: "build alert message attributes",
                    source: Box::new(e),
                })?;
            request = request.message_attributes(name, value);
        }
        request.send().await.map_err(publish_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration as StdDuration;

    use aws_sdk_sns::config::retry::RetryConfig;
    use aws_sdk_sns::error::ErrorMetadata;
    use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
    use aws_sdk_sns::types::error::{InvalidParameterException, NotFoundException};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use chrono::{DateTime, TimeDelta};

    use super::*;
    use crate::domain::MetricName;
    use crate::domain::alerting::rules::{AlertRule, Condition, RuleWindow, Severity};
    use crate::domain::alerting::state::{AlertState, alert_id};
    use crate::domain::ids::{ModelId, TenantId};

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";

    fn alert() -> AlertRecord {
        let started_at = DateTime::from_timestamp_millis(1_700_000_000_000).expect("time");
        AlertRecord {
            alert_id: alert_id("p95-high", started_at),
            tenant_id: TenantId::parse("acme").expect("tenant"),
            model_id: ModelId::parse("fraud-v2").expect("model"),
            rule: AlertRule {
                id: "p95-high".into(),
                metric: MetricName::LatencyP95,
                condition: Condition::Above,
                threshold: 250.0,
                window: RuleWindow::from_minutes(15).expect("window"),
                severity: Severity::Warning,
                min_samples: 50,
                basis: None,
                label_delay: None,
            },
            state: AlertState::Firing,
            observed_value: Some(312.5),
            baseline: None,
            sample_count: 900,
            window_start: started_at - TimeDelta::minutes(15),
            window_end: started_at,
            started_at,
            resolved_at: None,
        }
    }

    fn fast_retries(builder: aws_sdk_sns::config::Builder) -> aws_sdk_sns::config::Builder {
        builder.retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(StdDuration::from_millis(1))
                .with_max_backoff(StdDuration::from_millis(2)),
        )
    }

    fn notifier(rule: &Rule) -> SnsAlertNotifier {
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [rule], fast_retries);
        SnsAlertNotifier::new(client, TOPIC)
    }

    #[tokio::test]
    async fn publishes_the_record_with_subject_and_attributes() {
        let seen: Arc<Mutex<Vec<PublishInput>>> = Arc::default();
        let requests = seen.clone();
        let rule = mock!(Client::publish).then_compute_output(move |req| {
            requests.lock().unwrap().push(req.clone());
            PublishOutput::builder().message_id("m-1").build()
        });
        let alert = alert();
        notifier(&rule).notify(&alert).await.expect("published");

        let seen = seen.lock().unwrap();
        let request = &seen[0];
        assert_eq!(request.topic_arn(), Some(TOPIC));
        assert_eq!(request.subject(), Some(alert.subject().as_str()));
        assert!(
            request
                .subject()
                .is_some_and(|s| s.starts_with("[WARNING] fraud-v2 firing"))
        );
        let message: AlertRecord =
            serde_json::from_str(request.message().expect("message")).expect("JSON");
        assert_eq!(message, alert);
        let attributes = request.message_attributes().expect("attributes");
        assert_eq!(attributes.len(), 6);
        for (name, value) in alert.message_attributes() {
            let attribute = &attributes[name];
            assert_eq!(attribute.data_type(), "String", "{name}");
            assert_eq!(attribute.string_value(), Some(value.as_str()), "{name}");
        }
        assert_eq!(attributes["severity"].string_value(), Some("warning"));
        assert_eq!(attributes["state"].string_value(), Some("firing"));
    }

    #[tokio::test]
    async fn throttling_is_unavailable() {
        let rule = mock!(Client::publish).then_error(|| {
            PublishError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let err = notifier(&rule)
            .notify(&alert())
            .await
            .expect_err("throttled");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert_eq!(rule.num_calls(), 2, "the SDK retried");
        assert!(std::error::Error::source(&err).is_some(), "source kept");
    }

    #[tokio::test]
    async fn server_errors_are_unavailable() {
        let rule = mock!(Client::publish)
            .sequence()
            .http_status(503, None)
            .repeatedly()
            .build();
        let err = notifier(&rule).notify(&alert()).await.expect_err("5xx");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn refusals_are_internal_and_not_retried() {
        let missing = mock!(Client::publish).then_error(|| {
            PublishError::NotFoundException(
                NotFoundException::builder()
                    .message("Topic does not exist")
                    .build(),
            )
        });
        let err = notifier(&missing)
            .notify(&alert())
            .await
            .expect_err("missing");
        assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
        assert_eq!(missing.num_calls(), 1);
        let source = std::error::Error::source(&err).expect("source kept");
        let sdk = source
            .downcast_ref::<SdkError<PublishError>>()
            .expect("the SDK error");
        assert!(matches!(
            sdk.as_service_error(),
            Some(PublishError::NotFoundException(_))
        ));

        let invalid = mock!(Client::publish).then_error(|| {
            PublishError::InvalidParameterException(
                InvalidParameterException::builder()
                    .message("Invalid parameter: Subject")
                    .build(),
            )
        });
        let err = notifier(&invalid)
            .notify(&alert())
            .await
            .expect_err("invalid");
        assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    }
}

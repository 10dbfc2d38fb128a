//! Alert notifications on SNS: [`SnsAlertNotifier`] publishes each alert transition to
//! the alert topic; [`SnsTopicSubscriptions`] subscribes a tenant's e-mail addresses
//! and SQS queues to it, each filtered on the tenant.
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

use aws_sdk_sns::error::ProvideErrorMetadata;

use crate::domain::alerting::state::AlertRecord;
use crate::domain::alerting::subscriptions::SubscriptionTarget;
use crate::domain::ids::TenantId;
use crate::error::{StoreError, StoreResult};
use crate::ports::{AlertNotifier, TopicSubscriptions};

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
    let permanent = err.as_service_error().is_some_and(is_permanent);
    StoreError::failed_call(OPERATION, permanent, Box::new(err))
}

impl AlertNotifier for SnsAlertNotifier {
    async fn notify(&self, alert: &AlertRecord) -> StoreResult<()> {
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

/// [`TopicSubscriptions`] of the alert topic: each subscription filtered on one
/// tenant's alerts (`tenant_id`, and the severities it asks for).
#[derive(Debug, Clone)]
pub struct SnsTopicSubscriptions {
    client: Client,
    topic_arn: String,
}

impl SnsTopicSubscriptions {
    /// Subscriptions of the topic `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// A failed subscription call as the port's error: SNS refusing the request
/// (`Internal`), or anything else (`Unavailable`).
fn subscription_error<E>(operation: &'static str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let refused = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| {
            matches!(
                code,
                "AuthorizationError"
                    | "InvalidParameter"
                    | "InvalidSecurity"
                    | "NotFound"
                    | "FilterPolicyLimitExceeded"
                    | "SubscriptionLimitExceeded"
            )
        });
    StoreError::failed_call(operation, refused, Box::new(err))
}

impl TopicSubscriptions for SnsTopicSubscriptions {
    async fn subscribe(
        &self,
        tenant: &TenantId,
        target: &SubscriptionTarget,
    ) -> StoreResult<String> {
        const OPERATION: &str = "subscribe to alerts";
        let output = self
            .client
            .subscribe()
            .topic_arn(&self.topic_arn)
            .protocol(target.protocol.as_str())
            .endpoint(&target.endpoint)
            .attributes(
                "FilterPolicy",
                target.filter_policy(tenant.as_str()).to_string(),
            )
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| subscription_error(OPERATION, e))?;
        output.subscription_arn.ok_or_else(|| StoreError::Internal {
            operation: OPERATION,
            source: "SNS answered no subscription ARN".into(),
        })
    }

    async fn unsubscribe(&self, subscription_arn: &str) -> StoreResult<()> {
        match self
            .client
            .unsubscribe()
            .subscription_arn(subscription_arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err.as_service_error().and_then(ProvideErrorMetadata::code)
                    == Some("NotFound") =>
            {
                Ok(())
            }
            Err(err) => Err(subscription_error("unsubscribe from alerts", err)),
        }
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

    use super::*;
    use crate::domain::alerting::rules::Severity;
    use crate::testing::sample_alert;

    fn alert() -> AlertRecord {
        sample_alert("acme", Severity::Warning)
    }

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";

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

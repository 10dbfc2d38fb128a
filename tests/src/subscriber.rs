//! A test's own alert subscriber: an SQS queue subscribed to the stack's alert topic
//! with a filter policy on the test's tenant (moto and LocalStack both apply SNS filter
//! policies), so tests never read each other's alerts. SNS and SQS are reached where
//! the stack's lane routes them (moto, or LocalStack).

use serde_json::{Value, json};

use crate::Stack;

/// An SQS queue of the stack's lane, for alerts to be delivered to.
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    /// Its ARN.
    pub arn: String,
}

impl Queue {
    /// Creates the queue `name`.
    pub async fn create(stack: &Stack, name: &str) -> Self {
        let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config_for("SQS").await);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        Self { sqs, url, arn }
    }

    /// Every SNS notification delivered so far (drained from the queue).
    pub async fn drain(&self) -> Vec<Value> {
        let mut messages = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let batch = received.messages.unwrap_or_default();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                let envelope: Value =
                    serde_json::from_str(message.body().expect("body")).expect("SNS envelope");
                messages.push(envelope);
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(message.receipt_handle().expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Deletes the queue.
    pub async fn delete(self) {
        self.sqs
            .delete_queue()
            .queue_url(&self.url)
            .send()
            .await
            .expect("delete queue");
    }
}

/// An SQS queue subscribed to the alert topic, receiving only `tenant`'s alerts (and,
/// with `severity`, only those).
pub struct Subscriber {
    queue: Queue,
    sns: aws_sdk_sns::Client,
    subscription: String,
}

impl Subscriber {
    /// Subscribes a new queue for `tenant`'s alerts (with `severity`, only those).
    pub async fn new(stack: &Stack, tenant: &str, severity: Option<&str>) -> Self {
        let sns = aws_sdk_sns::Client::new(&stack.sdk_config_for("SNS").await);
        let name = format!(
            "{}-{}",
            &tenant[..tenant.len().min(60)],
            severity.unwrap_or("all")
        );
        let queue = Queue::create(stack, &name).await;
        let mut policy = json!({"tenant_id": [tenant]});
        if let Some(severity) = severity {
            policy["severity"] = json!([severity]);
        }
        let subscription = sns
            .subscribe()
            .topic_arn(stack.var("ALERT_TOPIC_ARN"))
            .protocol("sqs")
            .endpoint(&queue.arn)
            .attributes("FilterPolicy", policy.to_string())
            .send()
            .await
            .expect("subscribe")
            .subscription_arn
            .expect("subscription arn");
        Self {
            queue,
            sns,
            subscription,
        }
    }

    /// Every SNS notification delivered so far (drained from the queue).
    pub async fn drain(&self) -> Vec<Value> {
        self.queue.drain().await
    }

    /// Unsubscribes and deletes the queue.
    pub async fn remove(self) {
        self.sns
            .unsubscribe()
            .subscription_arn(&self.subscription)
            .send()
            .await
            .expect("unsubscribe");
        self.queue.delete().await;
    }
}

/// The alert of an SNS envelope, after checking the envelope agrees with it.
pub fn alert_of(envelope: &Value) -> Value {
    let alert: Value =
        serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("alert JSON");
    let attribute = |name: &str| {
        envelope["MessageAttributes"][name]["Value"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        attribute("severity").as_deref(),
        alert["rule"]["severity"].as_str(),
        "{envelope}"
    );
    assert_eq!(attribute("model_id").as_deref(), alert["model_id"].as_str());
    assert_eq!(
        attribute("tenant_id").as_deref(),
        alert["tenant_id"].as_str()
    );
    assert_eq!(attribute("state").as_deref(), alert["state"].as_str());
    let subject = envelope["Subject"].as_str().expect("Subject");
    assert!(
        subject.contains(alert["model_id"].as_str().expect("model")),
        "{subject}"
    );
    assert!(
        subject.contains(alert["state"].as_str().expect("state")),
        "{subject}"
    );
    alert
}

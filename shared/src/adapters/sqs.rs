//! The shard work queue on SQS: [`SqsShardQueue`] sends the coordinator's messages to
//! a FIFO queue, ten to a `SendMessageBatch`, each with its message group and
//! deduplication id, and brings a failed worker's message back early
//! (`ChangeMessageVisibility`).
//!
//! The SDK retries throttling and 5xx itself. An entry SQS did not take (the batch's
//! `Failed` list) or a request that failed after the retries is
//! [`StoreError::Unavailable`]: the scheduled run fails, the scheduler invokes it
//! again, and the deduplication ids drop what the first attempt had enqueued.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::error::{StoreError, StoreResult};
use crate::ports::{QueueMessage, ShardQueue};

/// What a failed enqueue is reported as.
const ENQUEUE: &str = "enqueue shard work";

/// What a failed early redelivery is reported as.
const REDELIVER: &str = "redeliver shard work";

/// The most entries SQS takes in one `SendMessageBatch`.
const BATCH: usize = 10;

/// [`ShardQueue`] on an SQS FIFO queue.
#[derive(Debug, Clone)]
pub struct SqsShardQueue {
    client: Client,
    url: String,
}

impl SqsShardQueue {
    /// Sends to the queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

fn unavailable(
    operation: &'static str,
) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    move |source| StoreError::Unavailable { operation, source }
}

/// The SDK's error with its whole context, as an error source.
fn sdk_error(
    e: impl std::error::Error + Send + Sync + 'static,
) -> Box<dyn std::error::Error + Send + Sync> {
    aws_sdk_sqs::error::DisplayErrorContext(e)
        .to_string()
        .into()
}

impl ShardQueue for SqsShardQueue {
    fn address(&self) -> &str {
        &self.url
    }

    async fn enqueue(&self, messages: &[QueueMessage]) -> StoreResult<()> {
        for batch in messages.chunks(BATCH) {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&message.body)
                        .message_group_id(&message.group)
                        .message_deduplication_id(&message.deduplication_id)
                        .build()
                        .map_err(|e| unavailable(ENQUEUE)(e.into()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable(ENQUEUE)(sdk_error(e)))?;
            if let Some(first) = sent.failed.first() {
                return Err(unavailable(ENQUEUE)(
                    format!(
                        "{} of {} messages not enqueued; the first: {} {}",
                        sent.failed.len(),
                        batch.len(),
                        first.code,
                        first.message.as_deref().unwrap_or(""),
                    )
                    .into(),
                ));
            }
        }
        Ok(())
    }

    async fn redeliver_after(&self, receipt_handle: &str, delay: Duration) -> StoreResult<()> {
        // SQS takes 0 to 43,200 seconds.
        let seconds = i32::try_from(delay.as_secs().min(43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(REDELIVER)(sdk_error(e)))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::change_message_visibility::{
        ChangeMessageVisibilityError, ChangeMessageVisibilityOutput,
    };
    use aws_sdk_sqs::operation::send_message_batch::{
        SendMessageBatchError, SendMessageBatchOutput,
    };
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn messages(n: usize) -> Vec<QueueMessage> {
        (0..n)
            .map(|i| QueueMessage {
                group: format!("g{i}"),
                deduplication_id: format!("d{i}"),
                body: format!("{{\"shard\":{i}}}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn sends_ten_to_a_batch_with_group_and_deduplication_ids() {
        let ok = mock!(Client::send_message_batch)
            .match_requests(|r| {
                let entries = r.entries();
                entries.len() <= BATCH
                    && entries.iter().all(|e| {
                        e.message_group_id().is_some_and(|g| g.starts_with('g'))
                            && e.message_deduplication_id()
                                .is_some_and(|d| d.starts_with('d'))
                    })
                    && r.queue_url() == Some("https://sqs/q.fifo")
            })
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .set_successful(Some(vec![]))
                    .set_failed(Some(vec![]))
                    .build()
                    .expect("output")
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&ok]);
        let queue = SqsShardQueue::new(client, "https://sqs/q.fifo");
        queue.enqueue(&messages(32)).await.expect("enqueued");
        assert_eq!(ok.num_calls(), 4);
    }

    #[tokio::test]
    async fn an_entry_sqs_did_not_take_fails_the_enqueue_as_unavailable() {
        let partial = mock!(Client::send_message_batch).then_output(|| {
            SendMessageBatchOutput::builder()
                .successful(
                    SendMessageBatchResultEntry::builder()
                        .id("0")
                        .message_id("m0")
                        .md5_of_message_body("x")
                        .build()
                        .expect("entry"),
                )
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("1")
                        .code("InternalError")
                        .sender_fault(false)
                        .build()
                        .expect("entry"),
                )
                .build()
                .expect("output")
        });
        let client = mock_client!(aws_sdk_sqs, [&partial]);
        let queue = SqsShardQueue::new(client, "q");
        let err = queue
            .enqueue(&messages(2))
            .await
            .expect_err("partial failure");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(format!("{:?}", err).contains("1 of 2"), "{err:?}");
    }

    #[tokio::test]
    async fn a_failed_request_is_unavailable() {
        let throttled = mock!(Client::send_message_batch)
            .then_error(|| SendMessageBatchError::unhandled("throttled"));
        let client = mock_client!(aws_sdk_sqs, [&throttled]);
        let queue = SqsShardQueue::new(client, "q");
        let err = queue.enqueue(&messages(1)).await.expect_err("failure");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_redelivery_sets_the_message_visibility_in_whole_seconds() {
        let changed = mock!(Client::change_message_visibility)
            .match_requests(|r| {
                r.queue_url() == Some("q")
                    && r.receipt_handle() == Some("handle")
                    && r.visibility_timeout() == Some(60)
            })
            .then_output(|| ChangeMessageVisibilityOutput::builder().build());
        let gone = mock!(Client::change_message_visibility)
            .then_error(|| ChangeMessageVisibilityError::unhandled("receipt handle expired"));
        let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&changed, &gone]);
        let queue = SqsShardQueue::new(client, "q");
        queue
            .redeliver_after("handle", Duration::from_millis(60_900))
            .await
            .expect("changed");
        let err = queue
            .redeliver_after("handle", Duration::from_secs(60))
            .await
            .expect_err("expired");
        assert!(
            matches!(
                err,
                StoreError::Unavailable {
                    operation: REDELIVER,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!((changed.num_calls(), gone.num_calls()), (1, 1));
    }
}

//! SQS, as every program sends to it: messages ten to a `SendMessageBatch` call with the entries
//! SQS did not take sent again, and dead letters carrying their error as message attributes.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::error::{bounded, Error, Result};

/// The IAM action of every send (`SendMessageBatch` is authorised as `SendMessage`).
pub const IAM_ACTIONS: [&str; 1] = ["sqs:SendMessage"];

/// The most entries one `SendMessageBatch` call takes.
const BATCH: usize = 10;

/// The longest SQS delays a message.
const MAX_DELAY_SECONDS: u64 = 900;

/// Times the entries SQS failed on its side are sent again (the SDK retries the calls themselves).
const ENTRY_ATTEMPTS: usize = 3;

/// Sends messages to SQS queues: the planner's scope messages, the compaction's tasks, and
/// every program's dead letters.
#[derive(Clone, Debug)]
pub struct SqsSender {
    client: aws_sdk_sqs::Client,
}

impl SqsSender {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsSender { client }
    }

    /// Moves a scope message that will not succeed to `queue_url` (its dead-letter queue), with
    /// why: its `ErrorType` (`NonRetryable.MemberRole`, …), `ErrorMessage` and `ReceiveCount` as
    /// message attributes, so the dead-letter queue says what failed without a look at the logs.
    pub async fn dead_letter(&self, queue_url: &str, body: &str, error: &Error, receives: u32) -> Result<()> {
        let attribute = |data_type: &str, value: String| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| Error::Mapping(format!("SQS message attribute: {e}")))
        };
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_attributes("ErrorType", attribute("String", error.error_type())?)
            .message_attributes("ErrorMessage", attribute("String", bounded(error.to_string()))?)
            .message_attributes("ReceiveCount", attribute("Number", receives.to_string())?)
            .send()
            .await
            .map_err(|e| Error::from_storage_sdk("SQS SendMessage", format!("queue {queue_url}"), e))?;
        Ok(())
    }

    /// Sends one batch; returns the entries SQS failed on its side (to send again), and fails on
    /// an entry refused for what it holds.
    async fn send_batch(&self, queue_url: &str, batch: &[(usize, String)], delay: i32) -> Result<Vec<(usize, String)>> {
        let entries = batch
            .iter()
            .map(|(index, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .set_delay_seconds((delay > 0).then_some(delay))
                    .build()
                    .map_err(|e| Error::Mapping(format!("SQS entry: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::from_storage_sdk("SQS SendMessageBatch", format!("queue {queue_url}"), e))?;
        let mut again = Vec::new();
        for failed in output.failed() {
            let refused = || Error::Storage {
                operation: "SQS SendMessageBatch",
                resource: format!("queue {queue_url}"),
                code: failed.code().to_owned(),
                message: bounded(failed.message().unwrap_or("an entry was not sent").to_owned()),
                status: None,
                retryable: !failed.sender_fault(),
            };
            if failed.sender_fault() {
                return Err(refused());
            }
            match batch.iter().find(|(index, _)| index.to_string() == failed.id()) {
                Some(entry) => again.push(entry.clone()),
                None => return Err(refused()),
            }
        }
        Ok(again)
    }
}

impl SqsSender {
    /// Sends every body to the queue, ten to a call, the entries SQS failed on its side sent
    /// again; fails naming the queue and how many were not sent.
    pub async fn send_bodies(&self, queue_url: &str, bodies: Vec<String>) -> Result<()> {
        self.send_bodies_after(queue_url, bodies, std::time::Duration::ZERO).await
    }

    /// Sends every body as [`SqsSender::send_bodies`] does, each delivered `delay` later (SQS
    /// holds a message at most 15 minutes).
    pub async fn send_bodies_after(
        &self,
        queue_url: &str,
        bodies: Vec<String>,
        delay: std::time::Duration,
    ) -> Result<()> {
        let delay = delay.as_secs().min(MAX_DELAY_SECONDS) as i32;
        let total = bodies.len();
        let mut pending: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        for attempt in 1..=ENTRY_ATTEMPTS {
            let mut again = Vec::new();
            for batch in pending.chunks(BATCH) {
                again.extend(self.send_batch(queue_url, batch, delay).await?);
            }
            if again.is_empty() {
                return Ok(());
            }
            if attempt == ENTRY_ATTEMPTS {
                return Err(Error::Storage {
                    operation: "SQS SendMessageBatch",
                    resource: format!("queue {queue_url}"),
                    code: "EntriesNotSent".into(),
                    message: format!(
                        "{} of {total} messages were not sent after {ENTRY_ATTEMPTS} attempts",
                        again.len()
                    ),
                    status: None,
                    retryable: true,
                });
            }
            pending = again;
        }
        Ok(())
    }
}

//! Lambda's SQS event source mapping, locally: messages received from a queue on moto (batch
//! size 1, as the template maps them) are delivered to a real function binary as SQS events
//! through the Runtime API. A received message stays invisible for the visibility timeout, longer
//! than a run, so no other poller takes it meanwhile. What the function does not hand back is
//! deleted; what it hands back (`batchItemFailures`), or a whole invocation that failed, comes
//! again after `retry_after` (Lambda waits out the visibility timeout; the local poller shortens
//! that wait so tests need not), and the queue's redrive policy moves a message received
//! `maxReceiveCount` times to the dead-letter queue (moto applies it on receive, as SQS does).

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Value as Json};

use crate::lambda::{LocalFunction, Outcome};

/// What a poll delivered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollReport {
    /// Invocations of the function, one message each.
    pub invocations: usize,
    /// Messages the function handed back or whose invocation failed (each comes again).
    pub handed_back: usize,
    /// The responses, in delivery order.
    pub responses: Vec<Json>,
}

/// A queue as the event source mapping sees it.
pub struct QueueSource<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub url: &'a str,
    pub region: &'a str,
    /// How long a received message stays invisible: longer than a run.
    pub visibility: Duration,
    /// How soon a handed-back message comes again.
    pub retry_after: Duration,
}

impl QueueSource<'_> {
    /// The queue's ARN, for the events' `eventSourceARN`.
    async fn arn(&self) -> String {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await;
        attributes.ok().and_then(|a| a.attributes()?.get(&QueueAttributeName::QueueArn).cloned()).unwrap_or_default()
    }

    /// Messages waiting, received and not yet deleted, or delayed (a scope sent again).
    async fn in_flight(&self) -> u64 {
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .unwrap();
        let count =
            |name| attributes.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            + count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
    }

    /// Delivers the queue's messages to `function` one at a time until the queue holds none
    /// (the dead-letter queue takes those that failed too often).
    pub async fn drain_into(&self, function: &mut LocalFunction) -> PollReport {
        let arn = self.arn().await;
        let mut report = PollReport::default();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(self.url)
                .max_number_of_messages(1)
                .visibility_timeout(self.visibility.as_secs().max(1) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let Some(message) = received.messages().first() else {
                if self.in_flight().await == 0 {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let id = message.message_id().unwrap_or_default().to_owned();
            let attributes: serde_json::Map<String, Json> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Json::from(value.as_str())))
                .collect();
            let event = json!({"Records": [{
                "messageId": id,
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": self.region,
            }]});
            report.invocations += 1;
            let handed_back = match function.invoke(event).await.expect("the function answers") {
                Outcome::Response(response) => {
                    let failed = response["batchItemFailures"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|item| item["itemIdentifier"].as_str() == Some(id.as_str())));
                    report.responses.push(response);
                    failed
                }
                Outcome::Error { .. } => true,
            };
            let handle = message.receipt_handle().unwrap_or_default();
            if handed_back {
                report.handed_back += 1;
                let retry = self.retry_after.as_secs() as i32;
                let change = self.sqs.change_message_visibility().queue_url(self.url).receipt_handle(handle);
                change.visibility_timeout(retry).send().await.expect("the message is still ours");
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(self.url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("the message is still ours");
            }
        }
    }
}

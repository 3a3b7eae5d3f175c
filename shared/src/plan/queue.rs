//! The scope queues on SQS: each scope message a JSON body, sent by [`SqsSender`].

use super::event::ScopeMessage;
use super::ScopeQueue;
use crate::aws::sqs::SqsSender;
use crate::error::Result;

impl ScopeQueue for SqsSender {
    async fn send(&self, queue_url: &str, messages: &[ScopeMessage]) -> Result<()> {
        let bodies = messages.iter().map(ScopeMessage::body).collect::<Result<Vec<String>>>()?;
        self.send_bodies(queue_url, bodies).await
    }
}

//! The scope queues on SQS: each scope message a JSON body, sent by [`SqsSender`].

use super::event::ScopeMessage;
use super::ScopeQueue;
use crate::aws::sqs::SqsSender;
use crate::error::{Error, Result};

impl ScopeQueue for SqsSender {
    async fn send(&self, queue_url: &str, messages: &[ScopeMessage]) -> Result<()> {
        let bodies = messages
            .iter()
            .map(|message| serde_json::to_string(message).map_err(|e| Error::Mapping(format!("scope message: {e}"))))
            .collect::<Result<Vec<String>>>()?;
        self.send_bodies(queue_url, bodies).await
    }
}

//! The Lambda scaffolding every program runs on (the archiving functions, the planner, the
//! compactor): the allocator tuned, a single-threaded runtime, tracing (JSON when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`), the configuration validated once at cold start, the clients
//! built once, then the Runtime API loop ([`serve`]); errors reaching Lambda with an `errorType`
//! that says whether a retry can help; and an SQS event answered record by record, a record that
//! no retry can mend moved to its dead-letter queue with its error ([`answer_queue`]).
//!
//! One thread, because an invocation is one task waiting on the network most of the time (its CPU
//! is a fifth of its wall time or less) and a function of 512 MB gets a third of a vCPU: worker
//! threads would only add their stacks and glibc arenas, each with its own high-water mark.

pub mod env;
pub mod event;

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value as Json;
use tracing::error;

use crate::aws::sqs::SqsSender;
use crate::error::{bounded, Error, Result};

pub use lambda_runtime::Error as LambdaError;

/// A program Lambda runs: started once (its clients) from its validated configuration, then
/// asked to handle one event at a time.
pub trait Program: Sized {
    type Config;
    type Response: Serialize;
    /// What the logs say when an invocation fails ("invocation failed", "plan failed", …).
    const FAILED: &'static str;

    /// The cold start: clients built from a validated configuration.
    fn start(config: Self::Config) -> impl Future<Output = Result<Self>>;

    /// One invocation.
    fn handle(&self, event: LambdaEvent<Json>) -> impl Future<Output = Result<Self::Response>>;
}

/// Everything a program's `main` does: the allocator tuned, then on a single-threaded runtime,
/// tracing, its configuration read by `configure` and its cold start (a refusal logged and the
/// process ended, naming what is wrong), and the Lambda runtime loop.
pub fn serve<P: Program>(configure: impl FnOnce() -> Result<P::Config>) -> Result<(), LambdaError> {
    let large_blocks_apart = map_large_blocks_apart();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        lambda_runtime::tracing::init_default_subscriber();
        if !large_blocks_apart {
            tracing::warn!("could not fix the allocator's mmap threshold: large buffers may stay in the heap");
        }
        let config = configure().inspect_err(|err| error!(err = bounded(err.to_string()), "configuration refused"))?;
        let program =
            P::start(config).await.inspect_err(|err| error!(err = bounded(err.to_string()), "cold start failed"))?;
        let program = &program;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Json>| {
            // Boxed: a run's future is deep, and boxing keeps the runtime's own future shallow.
            Box::pin(async move { program.handle(event).await.map_err(|err| Failed { what: P::FAILED, err }) })
        }))
        .await
    })
}

/// A failed invocation, as the runtime logs it (once, at ERROR, with its `Debug`: the project's
/// line) and reports it to Lambda (its [`Diagnostic`]).
struct Failed {
    what: &'static str,
    err: Error,
}

impl std::fmt::Debug for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let retry = if self.err.is_retryable() { "retryable" } else { "not retryable" };
        write!(f, "{} ({}, {retry}): {}", self.what, self.err.error_type(), bounded(self.err.to_string()))
    }
}

impl From<Failed> for Diagnostic {
    fn from(failed: Failed) -> Self {
        failed.err.into()
    }
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic { error_type: err.error_type(), error_message: bounded(err.to_string()) }
    }
}

/// Whether a payload is an SQS event: records from `aws:sqs`.
pub fn is_queue_event(payload: &Json) -> bool {
    payload["Records"].as_array().is_some_and(|records| records.iter().any(|r| r["eventSource"] == "aws:sqs"))
}

/// Reads an SQS event from a payload [`is_queue_event`] told apart.
pub fn queue_event(payload: Json) -> Result<SqsEvent> {
    serde_json::from_value(payload).map_err(|e| Error::Event(bounded(format!("not an SQS event: {e}"))))
}

/// A program's dead-letter queue, where it moves a record that no retry can mend, with the error
/// as message attributes (SQS's own redrive after the queue's `maxReceiveCount` stays as the
/// backstop, without them).
pub struct DeadLetters {
    pub sender: SqsSender,
    pub url: String,
    /// The deliveries after which a retryable failure goes there too; `None`: only those no retry
    /// can mend.
    pub max_receives: Option<u32>,
}

impl DeadLetters {
    /// Moves a failed record's body there when no retry can help (a non-retryable error, or its
    /// last delivery): whether it did. If the move fails, the record comes back and SQS's
    /// redrive moves it in the end.
    pub async fn take(&self, body: &str, err: &Error, receives: u32) -> bool {
        if !no_retry_left(err, receives, self.max_receives) {
            return false;
        }
        self.sender
            .dead_letter(&self.url, body, err, receives)
            .await
            .inspect_err(|e| {
                error!(err = bounded(e.to_string()), "could not move the message to the dead-letter queue")
            })
            .is_ok()
    }
}

/// Whether a failure gets no more tries: no retry can mend it, or it failed on try `tries` of
/// at most `max_tries` (`None`: retries without end).
pub fn no_retry_left(err: &Error, tries: u32, max_tries: Option<u32>) -> bool {
    !err.is_retryable() || max_tries.is_some_and(|max| tries >= max)
}

/// Answers an SQS event (`ReportBatchItemFailures`): each record's body handled in turn by
/// `each`, with its delivery count (`ApproximateReceiveCount`); a failed record comes back to the queue, unless it went to `dead_letters`. `what`
/// names a record in the logs ("scope message", "compaction task").
pub async fn answer_queue<F, Fut>(
    event: SqsEvent,
    dead_letters: Option<&DeadLetters>,
    what: &'static str,
    mut each: F,
) -> SqsBatchResponse
where
    F: FnMut(String, u32) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let body = record.body.unwrap_or_default();
        let receives = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        let Err(err) = each(body.clone(), receives).await else { continue };
        let dead_lettered = match dead_letters {
            Some(dead_letters) => dead_letters.take(&body, &err, receives).await,
            None => false,
        };
        error!(
            message_id,
            receives,
            error_type = err.error_type(),
            err = bounded(err.to_string()),
            dead_lettered,
            "{what} failed"
        );
        if !dead_lettered {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The account id in a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn account_of(function_arn: &str) -> Result<String> {
    let parts: Vec<&str> = function_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, account, "function", ..]
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((*account).to_owned())
        }
        _ => Err(Error::Config(format!("cannot read the account id from the function ARN `{function_arn}`"))),
    }
}

/// The threshold from which glibc maps a block on its own (its default starting value).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold, so every block from 128 KiB up (a history part, a Query page, the
/// fingerprint vectors) is mapped on its own and returned to the system when freed. Left dynamic,
/// glibc raises the threshold to the size of each large block freed (up to 32 MiB), after which
/// such blocks come from the heap and its high-water mark stays (measured in docs/performance.md,
/// decision 13 in docs/decisions.md). `false` if glibc refused.
fn map_large_blocks_apart() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt sets one allocator parameter under glibc's own lock; no memory is touched.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_takes_a_fixed_mmap_threshold() {
        assert!(map_large_blocks_apart());
    }

    #[test]
    fn the_account_comes_from_the_function_arn() {
        assert_eq!(
            account_of("arn:aws:lambda:eu-west-1:123456789012:function:ivs-stream-sessions").unwrap(),
            "123456789012"
        );
        assert_eq!(account_of("arn:aws:lambda:eu-west-1:123456789012:function:f:live").unwrap(), "123456789012");
        let err = account_of("not-an-arn").unwrap_err().to_string();
        assert!(err.contains("cannot read the account id from the function ARN `not-an-arn`"), "{err}");
    }

    #[test]
    fn a_queue_event_is_told_from_the_others() {
        let sqs = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        let s3 = serde_json::json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(is_queue_event(&sqs));
        assert!(!is_queue_event(&s3) && !is_queue_event(&serde_json::json!({"replay": {}})));
    }

    #[test]
    fn a_failed_invocation_is_one_line_naming_what_failed_its_type_and_why() {
        let failed = Failed { what: "invocation failed", err: Error::Event("replay `time`: bad".into()) };
        assert_eq!(
            format!("{failed:?}"),
            "invocation failed (NonRetryable.InvalidEvent, not retryable): invalid event: replay `time`: bad"
        );
        assert_eq!(Diagnostic::from(failed).error_type, "NonRetryable.InvalidEvent");
    }

    #[test]
    fn error_types_say_whether_a_retry_can_help() {
        let diagnostic = Diagnostic::from(Error::Event("the event must be a JSON object".into()));
        assert_eq!(diagnostic.error_type, "NonRetryable.InvalidEvent");
        assert_eq!(diagnostic.error_message, "invalid event: the event must be a JSON object");
        let storage = |operation, resource: &str, code: &str, retryable| Error::Storage {
            operation,
            resource: resource.into(),
            code: code.into(),
            message: "refused".into(),
            status: Some(if retryable { 400 } else { 403 }),
            retryable,
        };
        let throttled = storage("DynamoDB BatchWriteItem", "table t", "ProvisionedThroughputExceededException", true);
        assert_eq!(Diagnostic::from(throttled).error_type, "Retryable.Storage");
        // AND the planner's region listings are their own kind
        let regions = storage("Account ListRegions", "account 111122223333", "AccessDeniedException", false);
        assert_eq!(Diagnostic::from(regions).error_type, "NonRetryable.Regions");
        // AND a scope's failure is typed by its cause and names its account and region first
        let role = "role arn:aws:iam::111122223333:role/session-archiver-member";
        let denied = storage("STS AssumeRole", role, "AccessDenied", false);
        let in_scope =
            Error::InScope { account_id: "111122223333".into(), region: "eu-west-1".into(), source: Box::new(denied) };
        let diagnostic = Diagnostic::from(in_scope);
        assert_eq!(diagnostic.error_type, "NonRetryable.MemberRole");
        assert!(diagnostic.error_message.starts_with("account 111122223333, region eu-west-1: STS AssumeRole on role"));
    }
}

//! The one error type of the archiver.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a call to an AWS API was made: which service, which operation, for which parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The service's id (`ivs-stream-sessions`, …).
    pub service: &'static str,
    pub operation: &'static str,
    pub parent: Option<String>,
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.service, self.operation)?;
        match &self.parent {
            Some(parent) => write!(f, " (parent {parent})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value, event field or filter is not valid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The event a function was invoked with is not one it accepts.
    #[error("invalid event: {0}")]
    Event(String),

    /// An AWS API call failed (after the SDK's own retries).
    #[error("{site} failed: {code}: {message}")]
    Api {
        site: CallSite,
        /// The AWS error code (`ThrottlingException`, …) or the kind of transport failure.
        code: String,
        message: String,
        /// HTTP status, when a response arrived.
        status: Option<u16>,
        /// Whether trying again later can help.
        retryable: bool,
    },

    /// The service returned a next token it had already returned in the same listing: a service
    /// bug that would otherwise page forever.
    #[error("{site} returned the next token of an earlier page again (page {page}); stopping instead of looping")]
    RepeatedNextToken { site: CallSite, page: u64 },

    /// A page that cannot be archived: a session without its id, a wrong type, …
    #[error("{site} returned a page that cannot be archived: {detail}")]
    BadPage { site: CallSite, detail: String },

    /// A call to the archiver's own side of AWS failed: its storage (DynamoDB table, S3 bucket,
    /// Secrets Manager), its queues (SQS), the organization's directory (Organizations), or the
    /// member role of a scope's account (STS).
    #[error("{operation} on {resource} failed: {code}: {message}")]
    Storage {
        /// `DynamoDB BatchWriteItem`, `S3 UploadPart`, `STS AssumeRole`, …
        operation: &'static str,
        /// The table, or the bucket and key.
        resource: String,
        code: String,
        message: String,
        status: Option<u16>,
        retryable: bool,
    },

    /// An item in the table that the archiver cannot read back (changed by hand, or a bug), or
    /// cannot write (too large).
    #[error("unreadable {0}")]
    UnreadableItem(String),

    /// A history object the compaction cannot read: not whole gzip, or a line that is not of the
    /// service's schema. `line` counts from 1; 0 when the object itself is unreadable.
    #[error("history object {key}, line {line}: {detail}")]
    UnreadableHistory { key: String, line: u64, detail: String },

    /// A mapping from an API type to the schema is wrong (a bug in the archiver).
    #[error("session mapping error: {0}")]
    Mapping(String),

    /// The invocation's deadline came while the run was still waiting: it stopped waiting with
    /// the time left kept for recording the failure (manifest, uploads, lease).
    #[error("gave up waiting for {waiting_for}: the invocation's deadline is {reserve_seconds} s away, the time kept to record the failure")]
    Timeout { waiting_for: &'static str, reserve_seconds: u64 },

    /// The run of one scope (an account and region of an organization) failed.
    #[error("account {account_id}, region {region}: {source}")]
    InScope { account_id: String, region: String, source: Box<Error> },
}

/// The longest piece of an outside value (an event field, a variable, an id) an error quotes.
pub const QUOTE_LIMIT: usize = 64;

/// The longest error message a function returns or logs.
pub const MESSAGE_LIMIT: usize = 2048;

/// `value` in backquotes for an error message, cut to [`QUOTE_LIMIT`] characters with its full
/// length said: a megabyte id or time is named, not echoed into the logs.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        None => format!("`{value}`"),
        Some((end, _)) => format!("`{}…` ({} bytes)", &value[..end], value.len()),
    }
}

/// `message` cut to [`MESSAGE_LIMIT`] bytes (at a character boundary), with the cut said.
pub fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message;
    }
    let mut end = MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

impl Error {
    /// Whether invoking again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { retryable, .. } | Error::Storage { retryable, .. } => *retryable,
            Error::Timeout { .. } => true,
            Error::InScope { source, .. } => source.is_retryable(),
            Error::UnreadableItem(_)
            | Error::Event(_)
            | Error::Config(_)
            | Error::RepeatedNextToken { .. }
            | Error::BadPage { .. }
            | Error::UnreadableHistory { .. }
            | Error::Mapping(_) => false,
        }
    }

    /// Whether a list call was refused for its next token (expired, or no longer accepted): a
    /// 400 whose message names the token. The listing can start again from its first page.
    pub fn is_token_refusal(&self) -> bool {
        match self {
            Error::InScope { source, .. } => source.is_token_refusal(),
            Error::Api { status: Some(400), code, message, .. } => {
                message.to_ascii_lowercase().contains("token") && !code.contains("Throttl")
            }
            _ => false,
        }
    }

    /// `Retryable.<Kind>` or `NonRetryable.<Kind>`: whether a retry can help, and what failed
    /// (Lambda's `errorType`, a dead letter's `ErrorType`).
    pub fn error_type(&self) -> String {
        let class = if self.is_retryable() { "Retryable" } else { "NonRetryable" };
        format!("{class}.{}", self.kind())
    }

    /// The kind an `errorType` names: what failed, for alarms and the failure destination to tell apart.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "Configuration",
            Error::Event(_) => "InvalidEvent",
            Error::Api { .. } => "SessionApi",
            Error::RepeatedNextToken { .. } | Error::BadPage { .. } => "BadPage",
            Error::Storage { operation, .. } if operation.starts_with("STS ") => "MemberRole",
            Error::Storage { operation, .. } if operation.starts_with("Organizations ") => "Organizations",
            Error::Storage { operation, .. } if operation.starts_with("SQS ") => "Queue",
            Error::Storage { operation, .. } if operation.starts_with("SSM ") || operation.starts_with("Account ") => {
                "Regions"
            }
            Error::Storage { .. } => "Storage",
            Error::UnreadableItem(_) => "UnreadableItem",
            Error::UnreadableHistory { .. } => "UnreadableHistory",
            Error::Mapping(_) => "Mapping",
            Error::Timeout { .. } => "Timeout",
            Error::InScope { source, .. } => source.kind(),
        }
    }

    /// Maps an SDK error to [`Error::Api`], keeping the AWS code and message.
    pub fn from_sdk<E, R>(site: CallSite, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let SdkFailure { code, message, status, retryable } = SdkFailure::from(err);
        Error::Api { site, code, message, status, retryable }
    }

    /// Maps an SDK error of a DynamoDB or S3 call to [`Error::Storage`].
    pub fn from_storage_sdk<E, R>(operation: &'static str, resource: impl Into<String>, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let SdkFailure { code, message, status, retryable } = SdkFailure::from(err);
        Error::Storage { operation, resource: resource.into(), code, message, status, retryable }
    }
}

/// An injected failure of an AWS call, retryable as a 5xx is: the in-memory twins' (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub fn injected(operation: &'static str) -> Error {
    Error::Storage {
        operation,
        resource: "memory".into(),
        code: "InternalError".into(),
        message: "injected failure".into(),
        status: Some(500),
        retryable: true,
    }
}

/// What the archiver keeps of a failed SDK call.
struct SdkFailure {
    code: String,
    message: String,
    status: Option<u16>,
    retryable: bool,
}

impl<E, R> From<SdkError<E, R>> for SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    fn from(err: SdkError<E, R>) -> Self {
        let status = err.raw_response().map(HttpStatus::status_code);
        let (code, message) = match &err {
            SdkError::ServiceError(service_err) => {
                let inner = service_err.err();
                let code = match inner.code() {
                    Some(code) => code.to_owned(),
                    // A 2xx answer the SDK could not parse: the page itself is malformed.
                    None if status.is_some_and(|s| (200..300).contains(&s)) => "MalformedResponse".to_owned(),
                    None => "UnknownError".to_owned(),
                };
                let message = match (inner.message(), inner.code(), status) {
                    (Some(message), _, _) => message.to_owned(),
                    // An error status with an empty or foreign body (a proxy, a load balancer):
                    // the status is all there is to say.
                    (None, None, Some(status)) if !(200..300).contains(&status) => {
                        format!("HTTP {status} with no AWS error code or message in the body")
                    }
                    (None, _, _) => DisplayErrorContext(inner).to_string(),
                };
                (code, message)
            }
            SdkError::TimeoutError(_) => ("TimeoutError".to_owned(), DisplayErrorContext(&err).to_string()),
            SdkError::DispatchFailure(_) => ("DispatchFailure".to_owned(), DisplayErrorContext(&err).to_string()),
            // Only the cause: the raw response (which holds the sessions, personal data
            // included) stays out of the message and therefore out of the logs.
            SdkError::ResponseError(_) => {
                let code =
                    if status.is_some_and(|s| (200..300).contains(&s)) { "MalformedResponse" } else { "ResponseError" };
                let cause = std::error::Error::source(&err).map_or_else(
                    || "the response could not be read".to_owned(),
                    |e| DisplayErrorContext(e).to_string(),
                );
                (code.to_owned(), cause)
            }
            SdkError::ConstructionFailure(_) => {
                ("ConstructionFailure".to_owned(), DisplayErrorContext(&err).to_string())
            }
            _ => ("UnknownError".to_owned(), DisplayErrorContext(&err).to_string()),
        };
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
            SdkError::ConstructionFailure(_) => false,
            _ => is_retryable_code(&code) || status.is_some_and(|s| s == 429 || s >= 500),
        };
        SdkFailure { code, message, status, retryable }
    }
}

/// Error codes that mean "later may work" on the four session services and the archiver's own
/// side (DynamoDB, S3, SQS, STS, Organizations).
pub fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "ServiceException"
            | "IDPCommunicationError"
            | "ThrottledClientException"
            | "ServiceFailureException"
            | "ServiceUnavailableException"
            | "InternalServerException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "SlowDown"
            | "InternalError"
    )
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn storage_error(status: u16, metadata: ErrorMetadata) -> Error {
        let response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        let err = SdkError::service_error(BatchWriteItemError::generic(metadata), response);
        Error::from_storage_sdk("DynamoDB BatchWriteItem", "sessions", err)
    }

    #[test]
    fn an_error_status_without_an_aws_error_names_the_status() {
        // GIVEN a 502 with an empty body, as a proxy in front of DynamoDB answers
        let err = storage_error(502, ErrorMetadata::builder().build());
        // THEN the error says so in one line, and trying again later can help
        assert_eq!(
            err.to_string(),
            "DynamoDB BatchWriteItem on sessions failed: UnknownError: HTTP 502 with no AWS error code or message in the body"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn outside_values_are_quoted_and_messages_bounded() {
        // GIVEN a short value and a megabyte one
        assert_eq!(quoted("evt-1"), "`evt-1`");
        let huge = "é".repeat(512 * 1024);
        // WHEN quoted THEN the huge one is cut, its length said
        let text = quoted(&huge);
        assert!(text.starts_with(&format!("`{}…`", "é".repeat(QUOTE_LIMIT))), "{text}");
        assert!(text.ends_with("(1048576 bytes)"), "{text}");
        // AND a long message is cut at a character boundary
        let message = bounded(format!("invalid event: {huge}"));
        assert!(message.len() < MESSAGE_LIMIT + 40 && message.ends_with("(1048591 bytes in all)"), "{}", message.len());
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn an_aws_error_keeps_its_code_and_message() {
        // GIVEN DynamoDB's own error
        let metadata =
            ErrorMetadata::builder().code("ValidationException").message("Item size has exceeded the maximum").build();
        let err = storage_error(400, metadata);
        // THEN its code and message are what the error says
        assert_eq!(
            err.to_string(),
            "DynamoDB BatchWriteItem on sessions failed: ValidationException: Item size has exceeded the maximum"
        );
        assert!(!err.is_retryable());
    }
}

//! The Lambda side of a function: cold start (tracing, configuration, clients) and the handler
//! every function's `main.rs` runs through `lambda_runtime`.
//!
//! A function takes an EventBridge schedule or a replay event (its own account and region), or
//! an SQS event of scope messages from its queue (any account and region the planner planned):
//! it answers those with the messages that failed (`ReportBatchItemFailures`), which SQS delivers
//! again. A message whose failure a retry cannot mend, or on its last delivery, the function moves
//! to its dead-letter queue itself, with the error as message attributes; SQS's own redrive after
//! the queue's `maxReceiveCount` stays as the backstop.
//!
//! Errors reach Lambda with an `errorType` that says whether a retry can help:
//! `Retryable.<Kind>` (throttling that outlasted the retries, a 5xx, a timeout, DynamoDB or S3
//! unreachable) or `NonRetryable.<Kind>` (a bad event, a bad page, a bug): an async invocation's
//! retries and the on-failure destination can tell them apart.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Context, Diagnostic, LambdaEvent};
use serde_json::Value as Json;
use tracing::{error, info};

use crate::aws::SdkSettings;
use crate::config::FunctionConfig;
use crate::deadline::Deadlines;
use crate::error::{bounded, Error, Result};
use crate::event::{parse_invocation, parse_scope_message, EventWindow, Invocation};
use crate::history::S3ObjectStore;
use crate::member::MemberRoles;
use crate::model::{Scope, ServiceId, Timestamp};
use crate::personal::PersonalData;
use crate::plan::SqsScopeQueue;
use crate::run::{run, RunSummary};
use crate::sources::AnySource;
use crate::table::DynamoTable;

pub use lambda_runtime::Error as LambdaError;

/// What a warm function keeps between invocations: configuration and clients, built once.
pub struct Function {
    config: FunctionConfig,
    personal_data: tokio::sync::OnceCell<PersonalData>,
    /// The read of the personal-data key started at cold start, until an invocation takes it.
    key_read: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<PersonalData>>>>,
    storage_settings: SdkSettings,
    storage_sdk: aws_config::SdkConfig,
    session_sdk: aws_config::SdkConfig,
    source: AnySource,
    store: DynamoTable,
    objects: S3ObjectStore,
    member_roles: MemberRoles,
    /// The queue client and URL of the function's dead-letter queue, when configured.
    dead_letters: Option<(SqsScopeQueue, String)>,
}

impl Function {
    /// Builds the clients once, from a validated configuration. The personal-data key is read
    /// from Secrets Manager in the background, so the read overlaps the Runtime API's first poll
    /// instead of delaying it; the first invocation waits for it.
    pub async fn new(config: FunctionConfig) -> Result<Self> {
        let (session_settings, storage_settings) = (config.session_api_sdk(), config.storage_sdk());
        let (session_sdk, storage_sdk) = tokio::join!(session_settings.load(), storage_settings.load());
        let source = AnySource::new(config.service, &session_sdk, config.options.clone())?;
        let store = DynamoTable::new(storage_settings.dynamodb_client(&storage_sdk), &config.table_name);
        let objects = S3ObjectStore::new(storage_settings.s3_client(&storage_sdk), &config.bucket_name);
        let personal_data = tokio::sync::OnceCell::new();
        let mut key_read = None;
        match (&config.personal_data_key_secret, config.personal_data.needs_key()) {
            (Some(secret), true) => {
                let read = read_personal_data(&config, secret, &storage_settings, &storage_sdk);
                key_read = Some(tokio::spawn(read));
            }
            _ => {
                let _ = personal_data.set(PersonalData::new(config.personal_data.clone(), None)?);
            }
        }
        info!(personal_data = config.personal_data.describe(), "personal data policy");
        let member_roles = MemberRoles::new(
            aws_sdk_sts::Client::new(&storage_sdk),
            partition_of(&config.region),
            &config.member_role_name,
            config.member_role_external_id.clone(),
        );
        let dead_letters = config
            .scope_dead_letter_queue
            .clone()
            .map(|url| (SqsScopeQueue::new(aws_sdk_sqs::Client::new(&storage_sdk)), url));
        Ok(Function {
            config,
            personal_data,
            key_read: tokio::sync::Mutex::new(key_read),
            storage_settings,
            storage_sdk,
            session_sdk,
            source,
            store,
            objects,
            member_roles,
            dead_letters,
        })
    }

    /// The policy with its key: the cold start's read, or, after a read that failed (which
    /// failed its invocation), a new one.
    async fn personal_data(&self) -> Result<&PersonalData> {
        self.personal_data
            .get_or_try_init(|| async {
                if let Some(started) = self.key_read.lock().await.take() {
                    return started
                        .await
                        .map_err(|e| Error::Config(format!("reading the personal-data key stopped: {e}")))?;
                }
                let secret = self.config.personal_data_key_secret.as_deref().unwrap_or_default();
                read_personal_data(&self.config, secret, &self.storage_settings, &self.storage_sdk).await
            })
            .await
    }

    /// One invocation: a queue's scope messages, each run in its scope, answered with the ones
    /// that failed; or a schedule or replay event, run in the function's own scope, answered
    /// with the run's summary.
    pub async fn handle(&self, event: LambdaEvent<Json>) -> Result<Json> {
        let (payload, context) = event.into_parts();
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        if is_queue_event(&payload) {
            let event: SqsEvent =
                serde_json::from_value(payload).map_err(|e| Error::Event(bounded(format!("not an SQS event: {e}"))))?;
            let response = self.handle_queue(event, &context, &window).await;
            return serde_json::to_value(response).map_err(|e| Error::Mapping(format!("batch response: {e}")));
        }
        let invocation = parse_invocation(self.config.service, &payload, &window)?;
        let summary = self.run_invocation(invocation, &context).await?;
        serde_json::to_value(summary).map_err(|e| Error::Mapping(format!("run summary: {e}")))
    }

    /// Runs each scope message in turn. A failed message comes back to the queue, unless it goes
    /// to the dead-letter queue with its error (see [`Function::dead_letter`]).
    async fn handle_queue(&self, event: SqsEvent, context: &Context, window: &EventWindow) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            let result = match parse_scope_message(self.config.service, body, window) {
                Ok(invocation) => self.run_invocation(invocation, context).await.map(|_| ()),
                Err(err) => Err(err),
            };
            let Err(err) = result else { continue };
            let receives = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            let dead_lettered = self.dead_letter(body, &err, receives).await;
            error!(
                message_id,
                receives,
                error_type = error_type(&err),
                err = bounded(err.to_string()),
                dead_lettered,
                "scope message failed"
            );
            if !dead_lettered {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Moves a failed message to the dead-letter queue when no retry can help (a non-retryable
    /// error, or its last delivery): whether it did. If the move fails, the message comes back
    /// and SQS's redrive moves it in the end.
    async fn dead_letter(&self, body: &str, err: &Error, receives: u32) -> bool {
        let Some((queue, url)) = &self.dead_letters else { return false };
        if err.is_retryable() && receives < self.config.scope_max_receives {
            return false;
        }
        queue
            .dead_letter(url, body, err, receives)
            .await
            .inspect_err(|e| {
                error!(err = bounded(e.to_string()), "could not move the message to the dead-letter queue")
            })
            .is_ok()
    }

    /// One run: in the invocation's scope (or the function's own), to the invocation's deadline.
    async fn run_invocation(&self, mut invocation: Invocation, context: &Context) -> Result<RunSummary> {
        let deadlines = Deadlines::lambda(context.deadline, self.config.deadline_margin, self.config.failure_reserve());
        invocation.request.deadlines = deadlines;
        invocation.request.invocation_id = context.request_id.clone();
        // The function's own scope: its account and region, and its clients.
        let home = Scope {
            service: self.config.service,
            account_id: account_of(&context.invoked_function_arn)?,
            region: self.config.region.clone(),
        };
        let scope = invocation.scope.take().unwrap_or_else(|| home.clone());
        let result = Box::pin(self.run_in_scope(invocation, &scope, &home, deadlines)).await;
        println!("{}", metrics_line(&scope, &result, Timestamp::now().epoch_seconds() * 1000));
        match result {
            Err(err) if scope != home => Err(Error::in_scope(&scope, err)),
            other => other,
        }
    }

    async fn run_in_scope(
        &self,
        invocation: Invocation,
        scope: &Scope,
        home: &Scope,
        deadlines: Deadlines,
    ) -> Result<RunSummary> {
        let mut run_config = self.config.run_config(&scope.account_id, &scope.region);
        let key_read = deadlines.work("Secrets Manager: the personal-data key", self.personal_data());
        run_config.personal_data = key_read.await?.clone();
        let scoped_source = match (scope == home, invocation.options) {
            (true, None) => None,
            (_, options) => {
                let sdk = self.scope_sdk(scope, home, invocation.request.run_id.as_str(), deadlines).await?;
                let options = options.unwrap_or_else(|| self.config.options.clone());
                Some(AnySource::new(self.config.service, &sdk, options)?)
            }
        };
        let source = scoped_source.as_ref().unwrap_or(&self.source);
        info!(
            service = %self.config.service,
            account_id = %scope.account_id,
            region = %scope.region,
            run_id = %invocation.request.run_id,
            trigger = invocation.request.trigger.as_str(),
            dry_run = invocation.request.dry_run,
            request_id = %invocation.request.invocation_id,
            "run starting"
        );
        // Boxed: the run's future is deep, and boxing keeps the functions' own futures shallow.
        Box::pin(run(source, &self.store, &self.objects, &run_config, &invocation.request)).await
    }

    /// The session API settings of `scope`: its region, and the member role's credentials when
    /// the account is not the function's own.
    async fn scope_sdk(
        &self,
        scope: &Scope,
        home: &Scope,
        run_id: &str,
        deadlines: Deadlines,
    ) -> Result<aws_config::SdkConfig> {
        let mut sdk = self.session_sdk.to_builder().region(aws_config::Region::new(scope.region.clone()));
        if scope.account_id != home.account_id {
            let assumed = deadlines
                .work("STS: the member role", self.member_roles.credentials(&scope.account_id, run_id))
                .await?;
            sdk = sdk.credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(assumed));
        }
        Ok(sdk.build())
    }
}

/// Whether a payload is an SQS event: records from `aws:sqs`.
pub fn is_queue_event(payload: &Json) -> bool {
    payload["Records"].as_array().is_some_and(|records| records.iter().any(|r| r["eventSource"] == "aws:sqs"))
}

/// The partition of a region's ARNs.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Reads the HMAC key from Secrets Manager and checks it against the policy.
fn read_personal_data(
    config: &FunctionConfig,
    secret: &str,
    settings: &SdkSettings,
    sdk: &aws_config::SdkConfig,
) -> impl std::future::Future<Output = Result<PersonalData>> + Send + 'static {
    let (policy, secret, settings, sdk) =
        (config.personal_data.clone(), secret.to_owned(), settings.clone(), sdk.clone());
    async move {
        let key = settings.read_secret(&sdk, &secret).await?;
        PersonalData::new(policy, Some(key))
    }
}

/// One CloudWatch Embedded Metric Format line (namespace `SessionArchiver`, dimension `Service`):
/// CloudWatch turns it into metrics with no API call; the template's alarms watch them. The
/// account and region are properties, not dimensions: searchable in Logs Insights, and no
/// metric per scope (an organization of 1,000 accounts in 17 regions would make 187,000).
pub fn metrics_line(scope: &Scope, result: &Result<RunSummary>, timestamp_ms: i64) -> String {
    use crate::run::RunOutcome;
    let (outcome, counts) = match result {
        Ok(summary) => (Some(summary.outcome), summary.counts.clone()),
        Err(_) => (None, Default::default()),
    };
    let flag = |wanted: Option<RunOutcome>| u64::from(outcome == wanted);
    let metrics: [(&str, u64, &str); 13] = [
        ("CompleteRuns", flag(Some(RunOutcome::Complete)), "Count"),
        ("PartialRuns", flag(Some(RunOutcome::Partial)), "Count"),
        ("FailedRuns", u64::from(result.is_err()), "Count"),
        ("SkippedRuns", flag(Some(RunOutcome::Skipped)), "Count"),
        ("Sessions", counts.sessions, "Count"),
        ("NewSessions", counts.new, "Count"),
        ("ChangedSessions", counts.changed, "Count"),
        ("EndedSessions", counts.ended, "Count"),
        ("ApiCalls", counts.api_calls, "Count"),
        ("ItemsWritten", counts.items_written, "Count"),
        ("Throttles", counts.throttles, "Count"),
        ("ListingStatesRead", counts.states_read, "Count"),
        ("ListingStatesRebuilt", counts.states_rebuilt, "Count"),
    ];
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "SessionArchiver",
                "Dimensions": [["Service"]],
                "Metrics": metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    line.insert("Service".into(), Json::from(scope.service.as_str()));
    line.insert("AccountId".into(), Json::from(scope.account_id.as_str()));
    line.insert("Region".into(), Json::from(scope.region.as_str()));
    if let Ok(RunSummary { state_rebuilt_because: Some(reason), .. }) = result {
        line.insert("StateRebuiltBecause".into(), Json::from(reason.as_str()));
    }
    for (name, value, _) in metrics {
        line.insert(name.into(), Json::from(value));
    }
    Json::Object(line).to_string()
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

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic { error_type: error_type(&err), error_message: bounded(err.to_string()) }
    }
}

/// `Retryable.<Kind>` or `NonRetryable.<Kind>`: whether a retry can help, and what failed.
pub fn error_type(err: &Error) -> String {
    let class = if err.is_retryable() { "Retryable" } else { "NonRetryable" };
    format!("{class}.{}", error_kind(err))
}

/// The kind an `errorType` names: what failed, for alarms and the failure destination to tell apart.
pub fn error_kind(err: &Error) -> &'static str {
    match err {
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
        Error::InScope { source, .. } => error_kind(source),
    }
}

/// Everything a function's `main` does: the allocator tuned, then on a single-threaded runtime,
/// tracing (JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`), configuration validated once, clients built
/// once, and the Lambda runtime loop.
///
/// One thread, because a run is one task waiting on the network most of the time (its CPU is a
/// fifth of its wall time or less) and a function of 512 MB gets a third of a vCPU: worker threads
/// would only add their stacks and glibc arenas, each with its own high-water mark.
pub fn main(service: ServiceId) -> Result<(), LambdaError> {
    let large_blocks_apart = map_large_blocks_apart();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_function(service, large_blocks_apart))
}

async fn run_function(service: ServiceId, large_blocks_apart: bool) -> Result<(), LambdaError> {
    lambda_runtime::tracing::init_default_subscriber();
    if !large_blocks_apart {
        tracing::warn!("could not fix the allocator's mmap threshold: large buffers may stay in the heap");
    }
    let config = FunctionConfig::from_env(service)
        .inspect_err(|err| error!(err = bounded(err.to_string()), "configuration refused"))?;
    let function =
        Function::new(config).await.inspect_err(|err| error!(err = bounded(err.to_string()), "cold start failed"))?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Json>| {
        Box::pin(async move {
            let result = function.handle(event).await;
            result.inspect_err(|err| {
                error!(err = bounded(err.to_string()), retryable = err.is_retryable(), "invocation failed")
            })
        })
    }))
    .await
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
    fn a_queue_event_is_told_from_the_others_and_a_region_names_its_partition() {
        let sqs = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        let s3 = serde_json::json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(is_queue_event(&sqs));
        assert!(!is_queue_event(&s3) && !is_queue_event(&serde_json::json!({"replay": {}})));
        assert_eq!(
            [partition_of("eu-west-1"), partition_of("cn-north-1"), partition_of("us-gov-west-1")],
            ["aws", "aws-cn", "aws-us-gov"]
        );
    }

    #[test]
    fn a_failed_run_is_one_failed_run_in_the_metrics() {
        let scope = Scope {
            service: ServiceId::IvsStreamSessions,
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
        };
        let line = metrics_line(&scope, &Err(Error::Event("bad".into())), 1_790_000_000_000);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["_aws"]["CloudWatchMetrics"][0]["Namespace"], "SessionArchiver");
        assert_eq!(parsed["Service"], "ivs-stream-sessions");
        assert_eq!(
            (parsed["AccountId"].as_str(), parsed["Region"].as_str()),
            (Some("111122223333"), Some("eu-west-1"))
        );
        assert_eq!(parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!((parsed["FailedRuns"].as_u64(), parsed["CompleteRuns"].as_u64()), (Some(1), Some(0)));
        let names: Vec<&str> = parsed["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.iter().all(|n| parsed.get(n).is_some()), "every metric has its value");
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

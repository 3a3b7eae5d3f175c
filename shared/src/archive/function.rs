//! An archiving function's Lambda side: its cold start (clients, the personal-data key) and the
//! handler of its events, served by [`crate::lambda::serve`].
//!
//! A function takes an EventBridge schedule or a replay event (its own account and region: a
//! batch of one scope), or an SQS event of scope messages from its queue, each a batch of the
//! accounts and regions the planner planned, archived side by side (`SCOPES_AT_ONCE`). A scope
//! of a batch that fails is sent again alone to the queue, or on its last try, or when a retry
//! cannot mend its failure, moved to the dead-letter queue with the error as message attributes,
//! once whatever the deliveries ([`super::batch`]); the scopes a batch had no time to start are
//! sent again together. A message that could not be handled at all comes back to the queue
//! (`ReportBatchItemFailures`); SQS's own redrive after the queue's `maxReceiveCount` stays as
//! the backstop.
//!
//! Errors reach Lambda with an `errorType` that says whether a retry can help:
//! `Retryable.<Kind>` (throttling that outlasted the retries, a 5xx, a timeout, DynamoDB or S3
//! unreachable) or `NonRetryable.<Kind>` (a bad event, a bad page, a bug): an async invocation's
//! retries and the on-failure destination can tell them apart ([`crate::lambda`]).

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value as Json;
use tracing::{debug, info};

use super::batch::{place, Placement, Placer};
use super::config::FunctionConfig;
use super::event::{parse_invocation, parse_scope_message, Invocation, ScopeBatch};
use super::report::{metrics_line, scope_failure, write_runs};
use crate::aws::member::MemberRoles;
use crate::aws::sqs::SqsSender;
use crate::aws::SdkSettings;
use crate::error::{Error, Result};
use crate::history::S3Bucket;
use crate::lambda::event::EventWindow;
use crate::lambda::{answer_queue, is_queue_event, queue_event, DeadLetters, Program};
use crate::model::{Scope, Timestamp};
use crate::personal::PersonalData;
use crate::run::batch::{run_batch, ScopeOutcome};
use crate::run::deadline::Deadlines;
use crate::run::pool::POOL_STAGING_BYTES;
use crate::run::{prepare, Prepared, RunConfig, RunRequest, RunSummary, Staging};
use crate::sources::{AnySource, SourceOptions};
use crate::table::DynamoTable;

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
    table: DynamoTable,
    bucket: S3Bucket,
    member_roles: MemberRoles,
    /// Sends the scopes of a batch again to the function's own queue.
    queue: SqsSender,
    /// The function's dead-letter queue, when configured.
    dead_letters: Option<DeadLetters>,
}

impl Program for Function {
    type Config = FunctionConfig;
    type Response = Json;
    const FAILED: &'static str = "invocation failed";

    /// Builds the clients once, from a validated configuration. The personal-data key is read
    /// from Secrets Manager in the background, so the read overlaps the Runtime API's first poll
    /// instead of delaying it; the first invocation waits for it.
    async fn start(config: FunctionConfig) -> Result<Self> {
        let (session_settings, storage_settings) = (config.session_api_sdk(), config.storage_sdk());
        let (session_sdk, storage_sdk) = tokio::join!(session_settings.load(), storage_settings.load());
        let source = AnySource::new(config.service, &session_sdk, config.options.clone())?;
        let table = DynamoTable::new(storage_settings.dynamodb_client(&storage_sdk), &config.table_name);
        let bucket = S3Bucket::new(storage_settings.s3_client(&storage_sdk), &config.bucket_name);
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
        let queue = SqsSender::new(aws_sdk_sqs::Client::new(&storage_sdk));
        let dead_letters = config.scope_dead_letter_queue.clone().map(|url| DeadLetters {
            sender: queue.clone(),
            url,
            max_receives: Some(config.scope_max_receives),
        });
        Ok(Function {
            config,
            personal_data,
            key_read: tokio::sync::Mutex::new(key_read),
            storage_settings,
            storage_sdk,
            session_sdk,
            source,
            table,
            bucket,
            member_roles,
            queue,
            dead_letters,
        })
    }

    /// One invocation: a queue's scope messages, each run in its scope, answered with the ones
    /// that failed; or a schedule or replay event, run in the function's own scope, answered
    /// with the run's summary.
    async fn handle(&self, event: LambdaEvent<Json>) -> Result<Json> {
        let (payload, context) = event.into_parts();
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        if is_queue_event(&payload) {
            // Boxed, as the runs below: a batch's future is deep, and the optimised build
            // computes its layout to a bounded depth.
            let response = Box::pin(self.handle_queue(queue_event(payload)?, &context, &window)).await;
            return serde_json::to_value(response).map_err(|e| Error::Mapping(format!("batch response: {e}")));
        }
        let invocation = parse_invocation(self.config.service, &payload, &window)?;
        let summary = Box::pin(self.run_invocation(invocation, &context)).await?;
        serde_json::to_value(summary).map_err(|e| Error::Mapping(format!("run summary: {e}")))
    }
}

impl Function {
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

    /// Runs each scope message's batch in turn. A message whose scopes all ran, or went again
    /// or to the dead-letter queue, is done; one that could not be handled comes back to the
    /// queue, unless it goes to the dead-letter queue with its error.
    async fn handle_queue(&self, event: SqsEvent, context: &Context, window: &EventWindow) -> SqsBatchResponse {
        answer_queue(event, self.dead_letters.as_ref(), "scope message", |body, receives| async move {
            let batch = parse_scope_message(self.config.service, &body, window)?;
            Box::pin(self.archive_batch(batch, receives, context)).await
        })
        .await
    }

    /// A batch's scopes run side by side, then its failed and unstarted scopes placed.
    async fn archive_batch(&self, batch: ScopeBatch, receives: u32, context: &Context) -> Result<()> {
        let home = self.home(context)?;
        let mut request = batch.request.clone();
        request.deadlines = self.deadlines(context);
        request.invocation_id = context.request_id.clone();
        // Before any scope: a key that cannot be read fails the message, not each of its scopes.
        let run_config = self.run_config(&request.deadlines).await?;
        let (request, home, started_at, run_config) = (&request, &home, Timestamp::now(), &run_config);
        let staging = Staging::new(POOL_STAGING_BYTES);
        let run_one = |scope| Box::pin(self.run_scope(request, run_config, None, scope, home, &staging));
        let outcomes = self.run_scopes(&batch.scopes, self.config.scopes_at_once, &request.deadlines, home, run_one);
        let outcomes = Box::pin(outcomes).await;
        self.report(request, &outcomes, &started_at).await;
        let tries = batch.attempts + receives;
        let placement = place(outcomes, tries, self.config.scope_max_receives);
        info!(
            run_id = %request.run_id,
            scopes = batch.scopes.len(),
            ran = placement.ran,
            again = placement.again.len(),
            dead = placement.dead.len(),
            not_started = placement.left.len(),
            "batch done"
        );
        if placement.ran == 0 && placement.again.is_empty() && placement.dead.is_empty() {
            // Sending them again would loop: no invocation of this function has the time.
            return Err(Error::Config(format!(
                "no scope of the batch could start: paging stops DEADLINE_MARGIN_SECONDS={} before the invocation's deadline, and the invocation had less; raise the function's timeout or lower the margin",
                self.config.deadline_margin.as_secs()
            )));
        }
        let Placement { again, dead, left, .. } = placement;
        let placer = Placer {
            queue: &self.queue,
            queue_url: self.config.scope_queue.as_deref(),
            dead_letters: self.dead_letters.as_ref(),
            table: &self.table,
            retry_delay: self.config.scope_retry_delay,
        };
        placer.send_again(&batch, again, &left, tries).await?;
        placer.bury(&batch, dead, tries, &context.request_id).await
    }

    /// What a batch's runs report: one metrics line, and the runs dataset's lines.
    async fn report(&self, request: &RunRequest, outcomes: &[(&Scope, ScopeOutcome)], started_at: &Timestamp) {
        println!("{}", metrics_line(self.config.service, outcomes, Timestamp::now().epoch_seconds() * 1000));
        let (prefix, service) = (&self.config.history_prefix, self.config.service);
        write_runs(&self.bucket, prefix, service, request, outcomes, started_at).await;
    }

    /// The run settings of an invocation, with the personal-data policy and its key.
    async fn run_config(&self, deadlines: &Deadlines) -> Result<RunConfig> {
        let mut run_config = self.config.run_config();
        let key_read = deadlines.work("Secrets Manager: the personal-data key", self.personal_data());
        run_config.personal_data = key_read.await?.clone();
        Ok(run_config)
    }

    /// The function's own scope: its account and region.
    fn home(&self, context: &Context) -> Result<Scope> {
        Ok(Scope {
            service: self.config.service,
            account_id: crate::lambda::account_of(&context.invoked_function_arn)?,
            region: self.config.region.clone(),
        })
    }

    fn deadlines(&self, context: &Context) -> Deadlines {
        Deadlines::lambda(context.deadline, self.config.deadline_margin, self.config.failure_reserve())
    }

    /// A schedule's or replay's run, in the function's own scope: a batch of one, to the
    /// invocation's deadline.
    async fn run_invocation(&self, invocation: Invocation, context: &Context) -> Result<RunSummary> {
        let home = self.home(context)?;
        let mut request = invocation.request;
        request.deadlines = self.deadlines(context);
        request.invocation_id = context.request_id.clone();
        let run_config = self.run_config(&request.deadlines).await?;
        let started_at = Timestamp::now();
        let (options, staging) = (invocation.options, Staging::new(POOL_STAGING_BYTES));
        let run_one = |scope| Box::pin(self.run_scope(&request, &run_config, options.clone(), scope, &home, &staging));
        let scopes = [home.clone()];
        let outcomes = Box::pin(self.run_scopes(&scopes, 1, &Deadlines::none(), &home, run_one)).await;
        self.report(&request, &outcomes, &started_at).await;
        match outcomes.into_iter().next().map(|(_, outcome)| outcome) {
            Some(ScopeOutcome::Ran(summary)) => Ok(summary),
            Some(ScopeOutcome::Failed(err)) => Err(err),
            Some(ScopeOutcome::NotStarted) | None => {
                Err(Error::Mapping("the run of the function's own scope did not start".into()))
            }
        }
    }

    /// A batch's scopes run ([`run_batch`]), each failure named by its scope when it is not the
    /// function's own.
    async fn run_scopes<'a, 'r, F, Fut>(
        &self,
        scopes: &'a [Scope],
        at_once: usize,
        deadlines: &Deadlines,
        home: &Scope,
        run_one: F,
    ) -> Vec<(&'a Scope, ScopeOutcome)>
    where
        F: Fn(&'a Scope) -> Fut,
        Fut: Future<Output = Result<Prepared<'r, DynamoTable, S3Bucket>>>,
    {
        let outcomes = run_batch(scopes, at_once, deadlines, run_one).await;
        outcomes
            .into_iter()
            .map(|(scope, outcome)| match outcome {
                ScopeOutcome::Failed(err) if scope != home => (scope, ScopeOutcome::Failed(scope_failure(scope, err))),
                other => (scope, other),
            })
            .collect()
    }

    /// One scope's run, up to its lines when they are left for the batch's pool.
    async fn run_scope<'r>(
        &'r self,
        request: &'r RunRequest,
        run_config: &'r RunConfig,
        options: Option<SourceOptions>,
        scope: &'r Scope,
        home: &Scope,
        staging: &'r Staging,
    ) -> Result<Prepared<'r, DynamoTable, S3Bucket>> {
        let deadlines = request.deadlines;
        let scoped_source = match (scope == home, options) {
            (true, None) => None,
            (_, options) => {
                let sdk = self.scope_sdk(scope, home, request.run_id.as_str(), deadlines).await?;
                let options = options.unwrap_or_else(|| self.config.options.clone());
                Some(AnySource::new(self.config.service, &sdk, options)?)
            }
        };
        let source = scoped_source.as_ref().unwrap_or(&self.source);
        // Debug: a quiet scope's run logs nothing at INFO (its line in the runs dataset says it).
        debug!(
            service = %self.config.service,
            account_id = %scope.account_id,
            region = %scope.region,
            run_id = %request.run_id,
            trigger = request.trigger.as_str(),
            dry_run = request.dry_run,
            request_id = %request.invocation_id,
            "run starting"
        );
        // Boxed: the run's future is deep, and boxing keeps the functions' own futures shallow.
        Box::pin(prepare(scope, source, &self.table, &self.bucket, run_config, request, Some(staging))).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_names_its_partition() {
        assert_eq!(
            [partition_of("eu-west-1"), partition_of("cn-north-1"), partition_of("us-gov-west-1")],
            ["aws", "aws-cn", "aws-us-gov"]
        );
    }
}

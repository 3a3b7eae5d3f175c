//! The DynamoDB adapter of both table ports, [`SessionTable`] and [`RunLedger`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::Stream;
use tracing::{instrument, warn};

use super::item::{self, Item, LEASE_SK};
use super::{
    DeadLetterClaim, HistoryPool, LeaseHolder, LeaseOutcome, LeasePeek, Manifest, PoolStatus, Progress, RecentRuns,
    RunLedger, RunStatus, SavedProgress, Scope, SessionTable, SessionUpdate, StateVouch, StoredSession, StoredSummary,
    Updated, DEAD_LETTER_STALE_SECONDS,
};
use crate::error::{Error, Result};
use crate::model::{ServiceId, Timestamp};

/// The DynamoDB actions this adapter calls (the template grants exactly these, on the table).
pub const IAM_ACTIONS: [&str; 7] = [
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:UpdateItem",
];

/// DynamoDB's limit of items per BatchWriteItem call.
pub const BATCH_WRITE_MAX_ITEMS: usize = 25;

/// DynamoDB's limit of keys per BatchGetItem call.
pub const BATCH_GET_MAX_KEYS: usize = 100;

/// How BatchWriteItem's `UnprocessedItems` are retried: exponential backoff with full jitter.
#[derive(Clone, Copy, Debug)]
pub struct BatchRetry {
    /// Calls per batch, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for BatchRetry {
    fn default() -> Self {
        BatchRetry { max_attempts: 8, base_delay: Duration::from_millis(50), max_delay: Duration::from_secs(5) }
    }
}

impl BatchRetry {
    /// The wait before attempt `attempt` (2, 3, …): a random share of the exponential bound.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(2).min(16);
        let bound = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        bound.mul_f64(fastrand::f64())
    }
}

/// What the adapter sent, for the run's summary and for tests.
#[derive(Debug, Default)]
pub struct WriteCounters {
    pub batch_calls: AtomicU64,
    /// Session items DynamoDB accepted, whole or in place.
    pub items_written: AtomicU64,
    /// Items sent again because DynamoDB returned them unprocessed.
    pub items_retried: AtomicU64,
    /// Query pages read.
    pub queries: AtomicU64,
    /// BatchGetItem calls (stored items of changed sessions).
    pub batch_gets: AtomicU64,
    pub items_read: AtomicU64,
    /// PutItem, GetItem and DeleteItem calls (manifests, lease, progress).
    pub single_item_calls: AtomicU64,
    /// Session items written in place (UpdateItem), and those refused (not as the run knew them).
    pub items_updated: AtomicU64,
    pub updates_refused: AtomicU64,
}

impl WriteCounters {
    pub fn items_written(&self) -> u64 {
        self.items_written.load(Ordering::Relaxed)
    }
}

/// The table of current state in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: Client,
    table_name: String,
    retry: BatchRetry,
    counters: Arc<WriteCounters>,
}

impl DynamoTable {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        DynamoTable { client, table_name: table_name.into(), retry: BatchRetry::default(), counters: Arc::default() }
    }

    pub fn with_batch_retry(mut self, retry: BatchRetry) -> Self {
        self.retry = retry;
        self
    }

    pub fn counters(&self) -> &WriteCounters {
        &self.counters
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    fn count(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn storage_error<E, R>(
        &self,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::error::HttpStatus,
    {
        Error::from_storage_sdk(operation, format!("table {}", self.table_name), err)
    }

    async fn put_item(&self, operation: &'static str, item: Item) -> Result<()> {
        self.count(&self.counters.single_item_calls, 1);
        self.client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.storage_error(operation, e))?;
        Ok(())
    }

    async fn get_item(&self, operation: &'static str, pk: String, sk: String) -> Result<Option<Item>> {
        self.count(&self.counters.single_item_calls, 1);
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.storage_error(operation, e))?;
        Ok(output.item)
    }

    /// The retryable error of a batch call whose `left` items or keys DynamoDB still left
    /// unprocessed after its last attempt.
    fn still_unprocessed(&self, operation: &'static str, code: &str, what: &str, left: usize, attempts: u32) -> Error {
        Error::Storage {
            operation,
            resource: format!("table {}", self.table_name),
            code: code.into(),
            message: format!("{left} of the batch's {what} were still unprocessed after {attempts} attempts"),
            status: None,
            retryable: true,
        }
    }

    /// Sends one batch of at most 25 items, retrying exactly the unprocessed ones.
    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<()> {
        let mut attempt = 1;
        loop {
            let sent = requests.len() as u64;
            self.count(&self.counters.batch_calls, 1);
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table_name, requests)
                .send()
                .await
                .map_err(|e| self.storage_error("DynamoDB BatchWriteItem", e))?;
            let unprocessed =
                output.unprocessed_items.and_then(|mut tables| tables.remove(&self.table_name)).unwrap_or_default();
            self.count(&self.counters.items_written, sent - unprocessed.len() as u64);
            if unprocessed.is_empty() {
                return Ok(());
            }
            if attempt >= self.retry.max_attempts {
                return Err(self.still_unprocessed(
                    "DynamoDB BatchWriteItem",
                    "UnprocessedItems",
                    "items",
                    unprocessed.len(),
                    attempt,
                ));
            }
            attempt += 1;
            self.count(&self.counters.items_retried, unprocessed.len() as u64);
            warn!(unprocessed = unprocessed.len(), attempt, "DynamoDB left items unprocessed; retrying them");
            tokio::time::sleep(self.retry.delay(attempt)).await;
            requests = unprocessed;
        }
    }

    /// The Query of one listing's session items.
    fn session_query(&self, scope: &Scope, parent_id: Option<&str>) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(scope.session_pk(parent_id)))
            // Eventually consistent: half the read cost; the previous run ended long before.
            .consistent_read(false)
    }

    /// The pages of a Query, each item read by `read`.
    fn session_pages<'a, T: Send + 'a>(
        &'a self,
        query: QueryFluentBuilder,
        read: impl Fn(&Item) -> Result<T> + Clone + Send + 'a,
    ) -> impl Stream<Item = Result<Vec<T>>> + Send + 'a {
        futures::stream::unfold(query.into_paginator().send(), move |mut pages| {
            let read = read.clone();
            async move {
                let page = pages.next().await?;
                self.count(&self.counters.queries, 1);
                let items = page.map_err(|e| self.storage_error("DynamoDB Query", e)).and_then(|output| {
                    let items = output.items.unwrap_or_default();
                    self.count(&self.counters.items_read, items.len() as u64);
                    items.iter().map(&read).collect::<Result<Vec<_>>>()
                });
                Some((items, pages))
            }
        })
    }

    /// Reads one batch of at most 100 keys, asking again for exactly the unprocessed ones.
    async fn get_batch(&self, mut keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::with_capacity(keys.len());
        let mut attempt = 1;
        loop {
            self.count(&self.counters.batch_gets, 1);
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                // Eventually consistent, as the listing's Query: the previous run ended long before.
                .consistent_read(false)
                .build()
                .map_err(|e| Error::Mapping(format!("BatchGetItem keys: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table_name, request)
                .send()
                .await
                .map_err(|e| self.storage_error("DynamoDB BatchGetItem", e))?;
            let items = output.responses.and_then(|mut tables| tables.remove(&self.table_name)).unwrap_or_default();
            self.count(&self.counters.items_read, items.len() as u64);
            found.extend(items);
            let unprocessed = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table_name))
                .map(|left| left.keys)
                .unwrap_or_default();
            if unprocessed.is_empty() {
                return Ok(found);
            }
            if attempt >= self.retry.max_attempts {
                return Err(self.still_unprocessed(
                    "DynamoDB BatchGetItem",
                    "UnprocessedKeys",
                    "keys",
                    unprocessed.len(),
                    attempt,
                ));
            }
            attempt += 1;
            warn!(unprocessed = unprocessed.len(), attempt, "DynamoDB left keys unprocessed; asking again for them");
            tokio::time::sleep(self.retry.delay(attempt)).await;
            keys = unprocessed;
        }
    }
}

impl SessionTable for DynamoTable {
    fn stored_summaries<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSummary>>> + Send + 'a {
        // Attribute names through placeholders: none can clash with a reserved word.
        let mut query = self.session_query(scope, parent_id);
        let mut placeholders = Vec::new();
        for (i, name) in item::STATE_PROJECTION.iter().enumerate() {
            query = query.expression_attribute_names(format!("#a{i}"), *name);
            placeholders.push(format!("#a{i}"));
        }
        self.session_pages(query.projection_expression(placeholders.join(", ")), item::stored_state)
    }

    fn stored_pages<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSession>>> + Send + 'a {
        self.session_pages(self.session_query(scope, parent_id), move |item| item::stored_session(scope, item))
    }

    #[instrument(skip(self, session_ids), fields(table = %self.table_name, ids = session_ids.len()))]
    async fn get_sessions(
        &self,
        scope: &Scope,
        parent_id: Option<&str>,
        session_ids: &[&str],
    ) -> Result<HashMap<String, StoredSession>> {
        let pk = scope.session_pk(parent_id);
        let mut found = HashMap::with_capacity(session_ids.len());
        for chunk in session_ids.chunks(BATCH_GET_MAX_KEYS) {
            let keys = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        ("pk".to_owned(), AttributeValue::S(pk.clone())),
                        ("sk".to_owned(), AttributeValue::S((*id).to_owned())),
                    ])
                })
                .collect();
            for item in self.get_batch(keys).await? {
                let stored = item::stored_session(scope, &item)?;
                found.insert(stored.record.session_id.clone(), stored);
            }
        }
        Ok(found)
    }

    #[instrument(skip(self, sessions), fields(table = %self.table_name, items = sessions.len()))]
    async fn write_sessions(&self, scope: &Scope, sessions: &[StoredSession]) -> Result<()> {
        for chunk in sessions.chunks(BATCH_WRITE_MAX_ITEMS) {
            let requests = chunk
                .iter()
                .map(|stored| {
                    let put = PutRequest::builder()
                        .set_item(Some(item::session_item(scope, stored)))
                        .build()
                        .map_err(|e| Error::Mapping(format!("session item: {e}")))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>>>()?;
            self.write_batch(requests).await?;
        }
        Ok(())
    }

    /// A conditional UpdateItem returning the item as it was, on a refusal too (no read charged).
    #[instrument(skip(self, update), fields(table = %self.table_name, session = %update.session_id))]
    async fn update_session(&self, scope: &Scope, update: &SessionUpdate) -> Result<Updated> {
        let request = super::session_update::session_update(scope, update);
        let result = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(request.key))
            .update_expression(request.update_expression)
            .condition_expression(request.condition_expression)
            .set_expression_attribute_names(Some(request.names))
            .set_expression_attribute_values(Some(request.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.count(&self.counters.items_written, 1);
                self.count(&self.counters.items_updated, 1);
                let before = output.attributes.ok_or_else(|| {
                    Error::UnreadableItem(format!("session {}: updated without its item returned", update.session_id))
                })?;
                Ok(Updated::Applied(item::stored_session(scope, &before)?))
            }
            Err(err) if err.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {
                self.count(&self.counters.updates_refused, 1);
                let UpdateItemError::ConditionalCheckFailedException(refusal) = err.into_service_error() else {
                    unreachable!("matched as a refusal above")
                };
                let before = refusal.item.map(|item| item::stored_session(scope, &item)).transpose()?;
                Ok(Updated::Refused(before))
            }
            Err(err) => Err(self.storage_error("DynamoDB UpdateItem (session)", err)),
        }
    }
}

impl RunLedger for DynamoTable {
    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn acquire_lease(
        &self,
        scope: &Scope,
        holder: &LeaseHolder,
        now: i64,
        expires_at: i64,
    ) -> Result<LeaseOutcome> {
        self.count(&self.counters.single_item_calls, 1);
        // The whole item is replaced: the vouch goes with the old one, returned.
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .item("pk", AttributeValue::S(scope.lease_pk()))
            .item("sk", AttributeValue::S(LEASE_SK.into()))
            .item("item_type", AttributeValue::S("lease".into()))
            .item("holder", AttributeValue::S(holder.run_id.clone()))
            .item("invocation", AttributeValue::S(holder.invocation_id.clone()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now OR invocation = :invocation")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":invocation", AttributeValue::S(holder.invocation_id.clone()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                Ok(LeaseOutcome::Acquired { vouched: output.attributes.as_ref().and_then(item::state_vouch) })
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let holder = self.get_item("DynamoDB GetItem", scope.lease_pk(), LEASE_SK.into()).await?;
                let field = |name: &str| holder.as_ref().and_then(|i| i.get(name)).cloned();
                Ok(LeaseOutcome::HeldBy {
                    run_id: field("holder").and_then(|v| v.as_s().ok().cloned()).unwrap_or_default(),
                    invocation_id: field("invocation").and_then(|v| v.as_s().ok().cloned()).unwrap_or_default(),
                    expires_at: field("expires_at")
                        .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
                        .unwrap_or_default(),
                })
            }
            Err(err) => Err(self.storage_error("DynamoDB PutItem (lease)", err)),
        }
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn peek_lease(&self, scope: &Scope) -> Result<LeasePeek> {
        let Some(lease) = self.get_item("DynamoDB GetItem (lease)", scope.lease_pk(), LEASE_SK.into()).await? else {
            return Ok(LeasePeek::default());
        };
        let expires_at = lease.get("expires_at").and_then(|v| v.as_n().ok()?.parse().ok()).unwrap_or_default();
        Ok(LeasePeek { expires_at, vouched: item::state_vouch(&lease) })
    }

    /// The item stays, expired (`expires_at = 0`: any run takes it, and DynamoDB's TTL leaves
    /// alone what is more than five years past), with the vouch.
    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn release_lease(&self, scope: &Scope, holder: &LeaseHolder, vouch: Option<&StateVouch>) -> Result<()> {
        self.count(&self.counters.single_item_calls, 1);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .key("pk", AttributeValue::S(scope.lease_pk()))
            .key("sk", AttributeValue::S(LEASE_SK.into()))
            .condition_expression("invocation = :invocation")
            .expression_attribute_values(":invocation", AttributeValue::S(holder.invocation_id.clone()))
            .expression_attribute_values(":expired", AttributeValue::N("0".into()));
        let mut set = vec!["expires_at = :expired".to_owned()];
        for (name, value) in vouch.map(item::vouch_attributes).unwrap_or_default() {
            update = update.expression_attribute_values(format!(":{name}"), value);
            set.push(format!("{name} = :{name}"));
        }
        match update.update_expression(format!("SET {}", set.join(", "))).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                warn!(run_id = holder.run_id, "the lease had already passed to another invocation");
                Ok(())
            }
            Err(err) => Err(self.storage_error("DynamoDB UpdateItem (lease)", err)),
        }
    }

    #[instrument(skip(self, manifest), fields(table = %self.table_name, run_id = %manifest.run_id, status = manifest.status.as_str()))]
    async fn put_manifest(&self, scope: &Scope, manifest: &Manifest) -> Result<()> {
        self.put_item("DynamoDB PutItem (run manifest)", item::manifest_item(scope, manifest)).await
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn recent_runs(&self, scope: &Scope, limit: i32) -> Result<RecentRuns> {
        self.count(&self.counters.queries, 1);
        let output = self
            .client
            .query()
            .table_name(&self.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(scope.runs_pk()))
            .projection_expression("run_id, #status, s3_keys")
            .expression_attribute_names("#status", "status")
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| self.storage_error("DynamoDB Query (run manifests)", e))?;
        let items = output.items.unwrap_or_default();
        let complete = |item: &Item| item.get("status").and_then(|s| s.as_s().ok()).is_some_and(|s| s == "complete");
        let unfinished = items
            .iter()
            .filter(|item| !complete(item))
            .filter_map(|item| item.get("run_id").and_then(|r| r.as_s().ok()).cloned())
            .collect();
        let last_complete_keys = match items.iter().find(|item| complete(item)).and_then(|item| item.get("s3_keys")) {
            Some(AttributeValue::L(keys)) => keys.iter().filter_map(|k| k.as_s().ok().cloned()).collect(),
            _ => Vec::new(),
        };
        Ok(RecentRuns { unfinished, last_complete_keys })
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn run_status(&self, scope: &Scope, event_time: &Timestamp, run_id: &str) -> Result<Option<RunStatus>> {
        let found = self
            .get_item("DynamoDB GetItem (run manifest)", scope.runs_pk(), item::manifest_sk(event_time, run_id))
            .await?;
        found.as_ref().map(|item| item::manifest(item).map(|m| m.status)).transpose()
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn get_progress(&self, scope: &Scope, options: &str) -> Result<Option<SavedProgress>> {
        let found = self.get_item("DynamoDB GetItem (run progress)", scope.progress_pk(), options.into()).await?;
        found.as_ref().map(item::progress).transpose()
    }

    #[instrument(skip(self, progress, saved), fields(table = %self.table_name, run_id = %progress.run_id, parts = progress.parts))]
    async fn put_progress(&self, scope: &Scope, progress: &Progress, saved: &SavedProgress) -> Result<()> {
        self.put_item("DynamoDB PutItem (run progress)", item::progress_item(scope, progress, saved)).await
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn delete_progress(&self, scope: &Scope, options: &str) -> Result<()> {
        self.count(&self.counters.single_item_calls, 1);
        self.client
            .delete_item()
            .table_name(&self.table_name)
            .key("pk", AttributeValue::S(scope.progress_pk()))
            .key("sk", AttributeValue::S(options.into()))
            .send()
            .await
            .map_err(|e| self.storage_error("DynamoDB DeleteItem (run progress)", e))?;
        Ok(())
    }

    /// One item a scope's run, `sending` then `sent`, kept for SQS's longest retention (its TTL).
    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn claim_dead_letter(
        &self,
        scope: &Scope,
        run_id: &str,
        claimant: &str,
        now: i64,
    ) -> Result<DeadLetterClaim> {
        self.count(&self.counters.single_item_calls, 1);
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .item("pk", AttributeValue::S(scope.dead_letter_pk()))
            .item("sk", AttributeValue::S(run_id.into()))
            .item("item_type", AttributeValue::S("dead_letter".into()))
            .item("status", AttributeValue::S(DEAD_LETTER_SENDING.into()))
            .item("claimant", AttributeValue::S(claimant.into()))
            .item("claimed_at", AttributeValue::N(now.to_string()))
            .item("expires_at", AttributeValue::N((now + DEAD_LETTER_KEPT_SECONDS).to_string()))
            .condition_expression("attribute_not_exists(pk) OR (#status = :sending AND claimed_at < :stale)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", AttributeValue::S(DEAD_LETTER_SENDING.into()))
            .expression_attribute_values(":stale", AttributeValue::N((now - DEAD_LETTER_STALE_SECONDS).to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(DeadLetterClaim::Claimed),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let claim =
                    self.get_item("DynamoDB GetItem (dead-letter claim)", scope.dead_letter_pk(), run_id.into());
                let sent = claim.await?.and_then(|item| item.get("status").cloned())
                    == Some(AttributeValue::S(DEAD_LETTER_SENT.into()));
                Ok(if sent { DeadLetterClaim::Sent } else { DeadLetterClaim::BeingSent })
            }
            Err(err) => Err(self.storage_error("DynamoDB PutItem (dead-letter claim)", err)),
        }
    }

    /// Conditional on the claimant: a claim taken over since is the new claimant's to settle.
    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn settle_dead_letter(&self, scope: &Scope, run_id: &str, claimant: &str, sent: bool) -> Result<()> {
        self.count(&self.counters.single_item_calls, 1);
        let (pk, sk) = (AttributeValue::S(scope.dead_letter_pk()), AttributeValue::S(run_id.into()));
        let claimant = AttributeValue::S(claimant.into());
        if !sent {
            let delete = self.client.delete_item().table_name(&self.table_name).key("pk", pk).key("sk", sk);
            return match delete
                .condition_expression("claimant = :claimant")
                .expression_attribute_values(":claimant", claimant)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
                Err(err) => Err(self.storage_error("DynamoDB DeleteItem (dead-letter claim)", err)),
            };
        }
        let update = self.client.update_item().table_name(&self.table_name).key("pk", pk).key("sk", sk);
        match update
            .update_expression("SET #status = :sent")
            .condition_expression("claimant = :claimant")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sent", AttributeValue::S(DEAD_LETTER_SENT.into()))
            .expression_attribute_values(":claimant", claimant)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(self.storage_error("DynamoDB UpdateItem (dead-letter claim)", err)),
        }
    }
    #[instrument(skip(self, pool), fields(table = %self.table_name, pool = %pool.id))]
    async fn open_pool(&self, service: ServiceId, run_id: &str, pool: &HistoryPool, expires_at: i64) -> Result<()> {
        self.put_item("DynamoDB PutItem (history pool)", item::pool_item(service, run_id, pool, expires_at)).await
    }

    /// Conditional on `pending`: a pool settled already is read back as it stands.
    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn settle_pool(&self, service: ServiceId, run_id: &str, id: &str, to: PoolStatus) -> Result<PoolStatus> {
        self.count(&self.counters.single_item_calls, 1);
        let (pk, sk) = (item::pool_pk(service, run_id), id.to_owned());
        let pk_text = pk.clone();
        let update = self.client.update_item().table_name(&self.table_name);
        let result = update
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .update_expression("SET #status = :to")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()))
            .expression_attribute_values(":pending", AttributeValue::S(PoolStatus::Pending.as_str().into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(to),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let found = self.get_item("DynamoDB GetItem (history pool)", pk, sk).await?;
                let pool = found.as_ref().map(item::history_pool).transpose()?;
                pool.map(|pool| pool.status).ok_or_else(|| {
                    Error::UnreadableItem(format!(
                        "history pool {pk_text} / {id}: gone from the table {}",
                        self.table_name
                    ))
                })
            }
            Err(err) => Err(self.storage_error("DynamoDB UpdateItem (history pool)", err)),
        }
    }

    #[instrument(skip(self), fields(table = %self.table_name))]
    async fn pools(&self, service: ServiceId, run_id: &str) -> Result<Vec<HistoryPool>> {
        self.count(&self.counters.queries, 1);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(item::pool_pk(service, run_id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut pools = Vec::new();
        while let Some(found) = pages.next().await {
            let found = found.map_err(|e| self.storage_error("DynamoDB Query (history pools)", e))?;
            pools.push(item::history_pool(&found)?);
        }
        Ok(pools)
    }
}

/// A dead-letter claim's statuses.
const DEAD_LETTER_SENDING: &str = "sending";
const DEAD_LETTER_SENT: &str = "sent";

/// How long a dead-letter claim is kept: SQS's longest retention, so no delivery of the message
/// outlives it, and a day.
const DEAD_LETTER_KEPT_SECONDS: i64 = 15 * 86_400;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::{json, Value as Json};

    use super::*;
    use crate::aws::SdkSettings;
    use crate::model::Change;
    use crate::model::{ServiceId, SessionRecord, Timestamp};

    fn scope() -> Scope {
        Scope {
            service: ServiceId::GameliftStreamSessions,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    fn sessions(n: usize) -> Vec<StoredSession> {
        let at = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        (0..n)
            .map(|i| {
                let record = SessionRecord::new(ServiceId::GameliftStreamSessions, format!("s-{i:03}"));
                StoredSession {
                    record_hash: record.record_hash(),
                    record,
                    first_seen: at.clone(),
                    last_seen: at.clone(),
                    last_run: "r1".into(),
                    change: Change::Opened,
                    previous_status: None,
                    gone_at: None,
                    expires_at: None,
                }
            })
            .collect()
    }

    /// Which of a call's items or keys (by session id) DynamoDB leaves unprocessed, by call number.
    type Plan = fn(usize, &[String]) -> Vec<String>;

    /// A DynamoDB endpoint that answers BatchWriteItem and BatchGetItem (awsJson1.0) by a plan,
    /// keeps the items it took, and records the session ids of every call.
    struct FakeDynamo {
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        url: String,
    }

    impl FakeDynamo {
        async fn start(plan: Plan) -> Self {
            let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
            let table: Arc<Mutex<HashMap<String, Json>>> = Arc::default();
            let seen = calls.clone();
            let app = axum::Router::new().route(
                "/",
                post(move |headers: HeaderMap, body: String| async move {
                    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let request: Json = serde_json::from_str(&body).unwrap();
                    let (entries, id): (Vec<Json>, fn(&Json) -> String) = match target {
                        "DynamoDB_20120810.BatchWriteItem" => {
                            (request["RequestItems"]["sessions"].as_array().unwrap().clone(), |put| {
                                put["PutRequest"]["Item"]["sk"]["S"].as_str().unwrap().to_owned()
                            })
                        }
                        "DynamoDB_20120810.BatchGetItem" => {
                            (request["RequestItems"]["sessions"]["Keys"].as_array().unwrap().clone(), |key| {
                                key["sk"]["S"].as_str().unwrap().to_owned()
                            })
                        }
                        other => panic!("unexpected call {other}"),
                    };
                    let ids: Vec<String> = entries.iter().map(id).collect();
                    let call = {
                        let mut calls = seen.lock().unwrap();
                        calls.push(ids.clone());
                        calls.len()
                    };
                    let left = plan(call, &ids);
                    let (unprocessed, taken): (Vec<&Json>, Vec<&Json>) =
                        entries.iter().partition(|entry| left.contains(&id(entry)));
                    let mut table = table.lock().unwrap();
                    let body = if target.ends_with("BatchWriteItem") {
                        for put in taken {
                            table.insert(id(put), put["PutRequest"]["Item"].clone());
                        }
                        let unprocessed =
                            if unprocessed.is_empty() { json!({}) } else { json!({"sessions": unprocessed}) };
                        json!({ "UnprocessedItems": unprocessed })
                    } else {
                        let found: Vec<&Json> = taken.iter().filter_map(|key| table.get(&id(key))).collect();
                        let unprocessed =
                            if unprocessed.is_empty() { json!({}) } else { json!({"sessions": {"Keys": unprocessed}}) };
                        json!({ "Responses": {"sessions": found}, "UnprocessedKeys": unprocessed })
                    };
                    ([("content-type", "application/x-amz-json-1.0")], body.to_string())
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            FakeDynamo { calls, url }
        }

        async fn table(&self) -> DynamoTable {
            let settings = SdkSettings::local(&self.url);
            let client = settings.dynamodb_client(&settings.load().await);
            DynamoTable::new(client, "sessions").with_batch_retry(BatchRetry {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            })
        }

        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn unprocessed_items_and_only_those_are_sent_again() {
        // GIVEN DynamoDB leaving 3 items of the first full batch unprocessed once
        let dynamo = FakeDynamo::start(|call, _| match call {
            1 => vec!["s-004".into(), "s-009".into(), "s-020".into()],
            _ => Vec::new(),
        })
        .await;
        let table = dynamo.table().await;

        // WHEN 30 sessions are written
        table.write_sessions(&scope(), &sessions(30)).await.unwrap();

        // THEN a batch of 25, the 3 left over exactly, then the last 5
        let calls = dynamo.calls();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 3, 5]);
        assert_eq!(calls[1], vec!["s-004", "s-009", "s-020"]);
        assert_eq!(table.counters().items_written(), 30);
        assert_eq!(table.counters().items_retried.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn items_still_unprocessed_after_the_last_attempt_are_a_clear_retryable_error() {
        // GIVEN DynamoDB never taking one of the items
        let dynamo = FakeDynamo::start(|_, _| vec!["s-001".into()]).await;
        let table = dynamo.table().await;

        // WHEN the sessions are written
        let err = table.write_sessions(&scope(), &sessions(2)).await.unwrap_err();

        // THEN the error says how many items and attempts, and that trying later may work
        assert_eq!(
            err.to_string(),
            "DynamoDB BatchWriteItem on table sessions failed: UnprocessedItems: 1 of the batch's items were still unprocessed after 3 attempts"
        );
        assert!(err.is_retryable());
        assert_eq!(dynamo.calls(), vec![vec!["s-000", "s-001"], vec!["s-001"], vec!["s-001"]]);
        assert_eq!(table.counters().items_written(), 1);
    }

    #[tokio::test]
    async fn stored_items_are_read_in_batches_of_100_asking_again_for_unprocessed_keys_only() {
        // GIVEN 130 stored sessions, and DynamoDB leaving 2 keys of the first read unprocessed
        let dynamo = FakeDynamo::start(|call, _| match call {
            7 => vec!["s-004".into(), "s-050".into()],
            _ => Vec::new(),
        })
        .await;
        let table = dynamo.table().await;
        table.write_sessions(&scope(), &sessions(130)).await.unwrap();

        // WHEN 120 of them and one never stored are asked for
        let mut ids: Vec<String> = (0..120).map(|i| format!("s-{i:03}")).collect();
        ids.push("s-999".into());
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found = table.get_sessions(&scope(), None, &wanted).await.unwrap();

        // THEN 100 keys, the 2 left over exactly, then the last 21; the 120 come back whole
        let calls = dynamo.calls();
        assert_eq!(calls[6..].iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 2, 21]);
        assert_eq!(calls[7], vec!["s-004", "s-050"]);
        assert_eq!(found.len(), 120);
        assert_eq!(found["s-050"], sessions(130)[50]);
        assert!(!found.contains_key("s-999"));
    }

    #[test]
    fn batch_retry_waits_grow_and_stay_bounded() {
        let retry =
            BatchRetry { max_attempts: 8, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for attempt in 2..40 {
            let bound =
                Duration::from_millis(100).saturating_mul(1 << (attempt - 2).min(16)).min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(retry.delay(attempt) <= bound);
            }
        }
    }
}

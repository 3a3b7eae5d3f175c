//! The compactor's Lambda side: cold start (configuration, the S3 and SQS clients) and the handler
//! of its events: a schedule or replay (one day of each service asked for, one after the other,
//! a day too large split into tasks on the compaction queue), or an SQS event of those tasks.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;
use serde_json::Value as Json;
use session_archiver::config::CompactorConfig;
use session_archiver::error::bounded;
use session_archiver::event::{parse_compaction_event, EventWindow};
use session_archiver::history::S3ObjectStore;
use session_archiver::lambda::{is_queue_event, LambdaError};
use session_archiver::model::Timestamp;
use session_archiver::plan::SqsScopeQueue;
use session_archiver::Error;
use session_archiver::Result;
use tracing::{error, info};

use crate::day::{compact_day, CompactionConfig, DayOutcome};
use crate::parquet_object::Layout;
use crate::parts::{compact_part, InThisInvocation, PartTask, SqsTaskQueue};

/// Rows encoded at a time: a few MB of Arrow arrays.
const BATCH_ROWS: usize = 8192;

/// What one invocation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompactionSummary {
    pub day: String,
    pub services: Vec<DayOutcome>,
}

/// What a warm compactor keeps.
pub struct Compactor {
    config: CompactorConfig,
    store: S3ObjectStore,
    sqs: SqsScopeQueue,
}

impl Compactor {
    pub async fn new(config: CompactorConfig) -> Self {
        let settings = config.sdk();
        let sdk = settings.load().await;
        let store = S3ObjectStore::new(settings.s3_client(&sdk), &config.bucket_name);
        let sqs = SqsScopeQueue::new(aws_sdk_sqs::Client::new(&sdk));
        Compactor { config, store, sqs }
    }

    fn compaction(&self) -> CompactionConfig {
        CompactionConfig {
            history_prefix: self.config.history_prefix.clone(),
            sort_budget: self.config.sort_memory,
            layout: Layout {
                row_group_bytes: self.config.row_group_bytes,
                part_size: session_archiver::history::DEFAULT_PART_SIZE,
            },
            batch_rows: BATCH_ROWS,
            part_source_bytes: self.config.part_source_bytes,
        }
    }

    /// One event: an SQS event of tasks, answered with those that failed; or a schedule or
    /// replay, answered with what was compacted.
    pub async fn handle(&self, event: LambdaEvent<Json>) -> Result<Json> {
        let payload = event.payload;
        let response = if is_queue_event(&payload) {
            let event: SqsEvent =
                serde_json::from_value(payload).map_err(|e| Error::Event(bounded(format!("not an SQS event: {e}"))))?;
            serde_json::to_value(self.handle_tasks(event).await)
        } else {
            serde_json::to_value(self.compact_days(&payload).await?)
        };
        response.map_err(|e| Error::Mapping(format!("the compactor's response: {e}")))
    }

    async fn compact_days(&self, payload: &Json) -> Result<CompactionSummary> {
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        let request = parse_compaction_event(payload, &window)?;
        let compaction = self.compaction();
        let queue = self.config.task_queue.clone().map(|url| SqsTaskQueue { queue: self.sqs.clone(), url });
        let mut services = Vec::new();
        for service in request.services {
            let outcome = match &queue {
                Some(queue) => compact_day(&self.store, &compaction, queue, service, &request.day).await?,
                None => compact_day(&self.store, &compaction, &InThisInvocation, service, &request.day).await?,
            };
            info!(%service, day = request.day, datasets = ?outcome.datasets, "compacted");
            services.push(outcome);
        }
        Ok(CompactionSummary { day: request.day, services })
    }

    /// Each task in turn. A failed task comes back to the queue, unless no retry can mend it:
    /// then it goes to the dead-letter queue with its error, when there is one.
    async fn handle_tasks(&self, event: SqsEvent) -> SqsBatchResponse {
        let compaction = self.compaction();
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            let result = match PartTask::parse(body) {
                Ok(task) => compact_part(&self.store, &compaction, &task).await,
                Err(err) => Err(err),
            };
            let err = match result {
                Ok(outcome) => {
                    info!(message_id, ?outcome, "compaction task done");
                    continue;
                }
                Err(err) => err,
            };
            let receives = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            let dead_lettered = match (&self.config.task_dead_letter_queue, err.is_retryable()) {
                (Some(url), false) => self.sqs.dead_letter(url, body, &err, receives).await.is_ok(),
                _ => false,
            };
            error!(message_id, receives, err = bounded(err.to_string()), dead_lettered, "compaction task failed");
            if !dead_lettered {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// The compactor's `main`: one thread, configuration validated once, then the Lambda runtime loop.
pub fn main() -> Result<(), LambdaError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        lambda_runtime::tracing::init_default_subscriber();
        let config = CompactorConfig::from_env()
            .inspect_err(|err| error!(err = bounded(err.to_string()), "configuration refused"))?;
        let compactor = Compactor::new(config).await;
        let compactor = &compactor;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Json>| async move {
            let result = compactor.handle(event).await;
            result.inspect_err(|err| {
                error!(err = bounded(err.to_string()), retryable = err.is_retryable(), "compaction failed")
            })
        }))
        .await
    })
}

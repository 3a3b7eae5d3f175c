//! The compactor's Lambda side: cold start (configuration, the S3 and SQS clients) and the handler
//! of its events: a schedule or replay (one day of each service asked for, one after the other,
//! a day too large split into tasks on the compaction queue), or an SQS event of those tasks.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value as Json;
use session_archiver::aws::sqs::SqsSender;
use session_archiver::history::S3Bucket;
use session_archiver::lambda::event::EventWindow;
use session_archiver::lambda::{answer_queue, is_queue_event, queue_event, serve, DeadLetters, LambdaError, Program};
use session_archiver::model::Timestamp;
use session_archiver::Error;
use session_archiver::Result;
use tracing::info;

use crate::config::CompactorConfig;
use crate::dataset::CompactionConfig;
use crate::day::{compact_day, DayOutcome};
use crate::event::parse_compaction_event;
use crate::parquet_object::Layout;
use crate::slices::{compact_slice, InThisInvocation, SliceTask, SqsTaskQueue};

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
    bucket: S3Bucket,
    sqs: SqsSender,
    dead_letters: Option<DeadLetters>,
}

impl Program for Compactor {
    type Config = CompactorConfig;
    type Response = Json;
    const FAILED: &'static str = "compaction failed";

    async fn start(config: CompactorConfig) -> Result<Self> {
        let settings = config.sdk();
        let sdk = settings.load().await;
        let bucket = S3Bucket::new(settings.s3_client(&sdk), &config.bucket_name);
        let sqs = SqsSender::new(aws_sdk_sqs::Client::new(&sdk));
        // Only a task no retry can mend: a retryable one is SQS's to redrive.
        let dead_letters = config.task_dead_letter_queue.clone().map(|url| DeadLetters {
            sender: sqs.clone(),
            url,
            max_receives: None,
        });
        Ok(Compactor { config, bucket, sqs, dead_letters })
    }

    /// One event: an SQS event of tasks, answered with those that failed; or a schedule or
    /// replay, answered with what was compacted.
    async fn handle(&self, event: LambdaEvent<Json>) -> Result<Json> {
        let payload = event.payload;
        let response = if is_queue_event(&payload) {
            serde_json::to_value(self.handle_tasks(queue_event(payload)?).await)
        } else {
            serde_json::to_value(self.compact_days(&payload).await?)
        };
        response.map_err(|e| Error::Mapping(format!("the compactor's response: {e}")))
    }
}

impl Compactor {
    fn compaction(&self) -> CompactionConfig {
        CompactionConfig {
            history_prefix: self.config.history_prefix.clone(),
            sort_budget: self.config.sort_memory,
            layout: Layout {
                row_group_bytes: self.config.row_group_bytes,
                upload_part_size: session_archiver::history::DEFAULT_UPLOAD_PART_SIZE,
            },
            batch_rows: BATCH_ROWS,
            slice_source_bytes: self.config.slice_source_bytes,
        }
    }

    async fn compact_days(&self, payload: &Json) -> Result<CompactionSummary> {
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        let request = parse_compaction_event(payload, &window)?;
        let compaction = self.compaction();
        let queue = self.config.task_queue.clone().map(|url| SqsTaskQueue { queue: self.sqs.clone(), url });
        let mut services = Vec::new();
        for service in request.services {
            let outcome = match &queue {
                Some(queue) => compact_day(&self.bucket, &compaction, queue, service, &request.day).await?,
                None => compact_day(&self.bucket, &compaction, &InThisInvocation, service, &request.day).await?,
            };
            info!(%service, day = request.day, datasets = ?outcome.datasets, "compacted");
            services.push(outcome);
        }
        Ok(CompactionSummary { day: request.day, services })
    }

    /// Each task in turn. A failed task comes back to the queue, unless no retry can mend it:
    /// then it goes to the dead-letter queue with its error, when there is one.
    async fn handle_tasks(&self, event: SqsEvent) -> SqsBatchResponse {
        let compaction = &self.compaction();
        answer_queue(event, self.dead_letters.as_ref(), "compaction task", |body, _| async move {
            let task = SliceTask::parse(&body)?;
            let outcome = compact_slice(&self.bucket, compaction, &task).await?;
            info!(?outcome, "compaction task done");
            Ok(())
        })
        .await
    }
}

/// The compactor's `main`.
pub fn main() -> Result<(), LambdaError> {
    serve::<Compactor>(CompactorConfig::from_env)
}

//! The compactor's Lambda side: cold start (configuration, the S3 client) and the handler of its
//! events, one day of each service asked for, one after the other.

use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;
use serde_json::Value as Json;
use session_archiver::config::CompactorConfig;
use session_archiver::error::bounded;
use session_archiver::event::{parse_compaction_event, EventWindow};
use session_archiver::history::S3ObjectStore;
use session_archiver::lambda::LambdaError;
use session_archiver::model::Timestamp;
use session_archiver::Result;
use tracing::{error, info};

use crate::day::{compact_day, CompactionConfig, DayOutcome};
use crate::parquet_object::Layout;

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
}

impl Compactor {
    pub async fn new(config: CompactorConfig) -> Self {
        let settings = config.sdk();
        let sdk = settings.load().await;
        let store = S3ObjectStore::new(settings.s3_client(&sdk), &config.bucket_name);
        Compactor { config, store }
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
        }
    }

    /// One event: the day of each service it names, compacted.
    pub async fn handle(&self, event: LambdaEvent<Json>) -> Result<CompactionSummary> {
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        let request = parse_compaction_event(&event.payload, &window)?;
        let compaction = self.compaction();
        let mut services = Vec::new();
        for service in request.services {
            let outcome = compact_day(&self.store, &compaction, service, &request.day).await?;
            info!(%service, day = request.day, datasets = ?outcome.datasets, "compacted");
            services.push(outcome);
        }
        Ok(CompactionSummary { day: request.day, services })
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

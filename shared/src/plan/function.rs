//! The planner's Lambda side: cold start (configuration, the Organizations, SSM, Account
//! Management and SQS clients) and the handler of its plan events.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value as Json;
use tracing::{error, info};

use super::{plan, AwsRegionDirectory, CachedRegions, OrganizationsDirectory, PlanSummary, SqsScopeQueue};
use crate::config::PlannerConfig;
use crate::error::{bounded, Result};
use crate::event::{parse_plan_event, EventWindow};
use crate::lambda::{account_of, LambdaError};
use crate::model::Timestamp;

/// What a warm planner keeps: its configuration and clients.
pub struct Planner {
    config: PlannerConfig,
    directory: OrganizationsDirectory,
    regions: CachedRegions<AwsRegionDirectory>,
    queue: SqsScopeQueue,
}

impl Planner {
    pub async fn new(config: PlannerConfig) -> Self {
        let settings = config.sdk();
        let sdk = settings.load().await;
        let directory = OrganizationsDirectory::new(aws_sdk_organizations::Client::new(&sdk));
        let regions = AwsRegionDirectory::new(aws_sdk_ssm::Client::new(&sdk), aws_sdk_account::Client::new(&sdk));
        let regions = CachedRegions::new(regions, config.regions_cache);
        let queue = SqsScopeQueue::new(aws_sdk_sqs::Client::new(&sdk));
        Planner { config, directory, regions, queue }
    }

    /// One plan event: the service's scopes listed, then one message each on its queue.
    pub async fn handle(&self, event: LambdaEvent<Json>) -> Result<PlanSummary> {
        let (payload, context) = event.into_parts();
        let window = EventWindow::new(Timestamp::now(), self.config.history_start.clone());
        let request = parse_plan_event(&payload, &window)?;
        let own_account = account_of(&context.invoked_function_arn)?;
        let summary =
            plan(&self.directory, &self.regions, &self.queue, &self.config.plan, &own_account, &request).await?;
        info!(
            service = %summary.service,
            run_id = %summary.run_id,
            accounts = summary.accounts,
            scopes = summary.scopes,
            excluded = summary.excluded.len(),
            inactive = summary.inactive.len(),
            not_offered = ?summary.not_offered,
            "planned"
        );
        Ok(summary)
    }
}

/// The planner's `main`: one thread (it waits on the network), configuration validated once,
/// then the Lambda runtime loop.
pub fn main() -> Result<(), LambdaError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        lambda_runtime::tracing::init_default_subscriber();
        let config = PlannerConfig::from_env()
            .inspect_err(|err| error!(err = bounded(err.to_string()), "configuration refused"))?;
        let planner = Planner::new(config).await;
        let planner = &planner;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Json>| async move {
            let result = planner.handle(event).await;
            result.inspect_err(|err| {
                error!(err = bounded(err.to_string()), retryable = err.is_retryable(), "plan failed")
            })
        }))
        .await
    })
}

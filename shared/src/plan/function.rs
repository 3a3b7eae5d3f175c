//! The planner's Lambda side: cold start (configuration, the Organizations, SSM, Account
//! Management and SQS clients) and the handler of its plan events.

use lambda_runtime::LambdaEvent;
use serde_json::Value as Json;
use tracing::info;

use super::config::PlannerConfig;
use super::event::parse_plan_event;
use super::organizations::OrganizationsDirectory;
use super::{plan, AwsRegionDirectory, CachedRegions, PlanSummary};
use crate::aws::sqs::SqsSender;
use crate::error::Result;
use crate::lambda::event::EventWindow;
use crate::lambda::{account_of, serve, LambdaError, Program};
use crate::model::Timestamp;

/// What a warm planner keeps: its configuration and clients.
pub struct Planner {
    config: PlannerConfig,
    directory: OrganizationsDirectory,
    regions: CachedRegions<AwsRegionDirectory>,
    queue: SqsSender,
}

impl Program for Planner {
    type Config = PlannerConfig;
    type Response = PlanSummary;
    const FAILED: &'static str = "plan failed";

    async fn start(config: PlannerConfig) -> Result<Self> {
        let settings = config.sdk();
        let sdk = settings.load().await;
        let directory = OrganizationsDirectory::new(aws_sdk_organizations::Client::new(&sdk));
        let regions = AwsRegionDirectory::new(aws_sdk_ssm::Client::new(&sdk), aws_sdk_account::Client::new(&sdk));
        let regions = CachedRegions::new(regions, config.regions_cache);
        let queue = SqsSender::new(aws_sdk_sqs::Client::new(&sdk));
        Ok(Planner { config, directory, regions, queue })
    }

    /// One plan event: the service's scopes listed, then one message each on its queue.
    async fn handle(&self, event: LambdaEvent<Json>) -> Result<PlanSummary> {
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

/// The planner's `main`.
pub fn main() -> Result<(), LambdaError> {
    serve::<Planner>(PlannerConfig::from_env)
}

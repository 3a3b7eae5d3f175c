//! The planner: turns the scopes of one service (its accounts × regions) into messages of a batch
//! of scopes each on the service's queue. Each function consumes its queue (an event source
//! mapping) and archives a message's scopes side by side; a scope that fails is sent again alone,
//! so every scope fails and is retried on its own, on Lambda's and SQS's machinery.
//!
//! Accounts come from the configuration: the planner's own (the default, no Organizations
//! needed), a list, or AWS Organizations (every ACTIVE account, or those under some OUs with the
//! nested OUs walked), minus an exclude list. Regions are a list, or every region each account
//! has enabled; either way only those where the service is offered are planned. Everything is
//! listed and checked before the first message is sent: a plan that cannot be made sends nothing.

pub mod config;
pub mod event;
pub mod function;
pub mod organizations;
pub mod queue;
pub mod regions;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::model::{Scope, ServiceId};
use crate::Result;

pub use event::{PlanRequest, ScopeMessage};
pub use regions::{AwsRegionDirectory, CachedRegions, RegionDirectory, RegionSource};

/// Where a plan's accounts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountSource {
    /// The planner's own account (`ACCOUNTS=self`).
    Own,
    /// These accounts (`ACCOUNTS=111111111111,222222222222`).
    Listed(Vec<String>),
    /// The organization's accounts (`ACCOUNTS=organization`): all of them when `parents` is
    /// empty, else those under these roots or OUs (`ORGANIZATION_UNITS`), nested OUs included.
    Organization { parents: Vec<String> },
}

/// What the planner plans, validated at cold start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    pub accounts: AccountSource,
    /// Accounts never planned (`EXCLUDE_ACCOUNTS`).
    pub exclude: BTreeSet<String>,
    /// The regions of every account: a list, never empty, or those each account has enabled.
    pub regions: RegionSource,
    /// Each service's queue URL (`SCOPE_QUEUES`).
    pub queues: BTreeMap<ServiceId, String>,
    /// Scopes in one message (`SCOPE_BATCH_SIZE`).
    pub batch_size: usize,
}

/// An account as the directory lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Account {
    pub id: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`…: only ACTIVE accounts are planned.
    pub state: String,
}

impl Account {
    pub fn active(id: impl Into<String>) -> Self {
        Account { id: id.into(), state: ACTIVE.into() }
    }
}

const ACTIVE: &str = "ACTIVE";

/// The organization's accounts (AWS Organizations, or an in-memory twin in tests).
pub trait AccountDirectory: Send + Sync {
    /// Every account of the organization when `parents` is empty, else every account under these
    /// roots or OUs and their nested OUs; each once.
    fn accounts(&self, parents: &[String]) -> impl Future<Output = Result<Vec<Account>>> + Send;
}

/// The queues the scope messages go to (SQS, or an in-memory twin in tests).
pub trait ScopeQueue: Send + Sync {
    /// Sends every message to the queue, or fails naming the queue and what was not sent.
    fn send(&self, queue_url: &str, messages: &[ScopeMessage]) -> impl Future<Output = Result<()>> + Send;
}

/// What a plan did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanSummary {
    pub service: ServiceId,
    pub run_id: String,
    /// Accounts planned.
    pub accounts: usize,
    /// Regions of some scope.
    pub regions: Vec<String>,
    /// Scopes planned.
    pub scopes: usize,
    /// Messages sent: the scopes in batches of at most `SCOPE_BATCH_SIZE`.
    pub messages_sent: usize,
    /// Accounts left out by `EXCLUDE_ACCOUNTS`.
    pub excluded: Vec<String>,
    /// Accounts of the organization left out for not being ACTIVE, with their state.
    pub inactive: Vec<Account>,
    /// Regions left out for the service not being offered there (AWS's public parameters).
    pub not_offered: Vec<String>,
}

/// The accounts of a plan: the ACTIVE ones not excluded, and those left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Sorted, each once.
    pub active: Vec<String>,
    pub excluded: Vec<String>,
    pub inactive: Vec<Account>,
}

/// Every ACTIVE account not in `exclude`, sorted; the others said.
pub fn select_accounts(accounts: &[Account], exclude: &BTreeSet<String>) -> Selection {
    let mut selection = Selection::default();
    for account in accounts.iter().collect::<BTreeSet<&Account>>() {
        if exclude.contains(&account.id) {
            selection.excluded.push(account.id.clone());
        } else if account.state != ACTIVE {
            selection.inactive.push(account.clone());
        } else if selection.active.last() != Some(&account.id) {
            selection.active.push(account.id.clone());
        }
    }
    selection
}

/// The scopes of a plan, and the regions it left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Planned {
    pub scopes: Vec<Scope>,
    /// The regions of some scope.
    pub regions: BTreeSet<String>,
    /// Regions of some account where the service is not offered: no scope.
    pub not_offered: BTreeSet<String>,
}

/// The scopes of one service: each account in each of its regions where the service is offered,
/// in the order given.
pub fn plan_scopes(service: ServiceId, regions_of: &[(String, Vec<String>)], offered: &BTreeSet<String>) -> Planned {
    let mut planned = Planned::default();
    for (account_id, regions) in regions_of {
        for region in regions {
            if !offered.contains(region) {
                planned.not_offered.insert(region.clone());
                continue;
            }
            planned.regions.insert(region.clone());
            planned.scopes.push(Scope { service, account_id: account_id.clone(), region: region.clone() });
        }
    }
    planned
}

/// How many accounts' enabled regions are listed at once.
const REGION_LISTINGS_AT_ONCE: usize = 4;

/// Each account with its regions: the listed ones, or those it has enabled.
async fn regions_of_accounts<R: RegionDirectory>(
    directory: &R,
    source: &RegionSource,
    accounts: &[String],
    own_account: &str,
) -> Result<Vec<(String, Vec<String>)>> {
    let listed = match source {
        RegionSource::Listed(regions) => return Ok(accounts.iter().map(|id| (id.clone(), regions.clone())).collect()),
        RegionSource::Enabled => accounts.iter().map(|id| async move {
            // The planner's own account is asked for without its id, as ListRegions requires
            // of a management account.
            let regions = directory.enabled((id != own_account).then_some(id.as_str())).await?;
            Ok::<_, crate::Error>((id.clone(), regions))
        }),
    };
    futures::stream::iter(listed).buffered(REGION_LISTINGS_AT_ONCE).try_collect().await
}

/// The messages of a plan: its scopes in order, `batch_size` to a message. The order is account
/// by account, so a batch's scopes share few accounts and their member roles are assumed once.
pub fn batches(service: ServiceId, scopes: &[Scope], batch_size: usize, request: &PlanRequest) -> Vec<ScopeMessage> {
    scopes
        .chunks(batch_size.max(1))
        .map(|batch| ScopeMessage::new(service, batch, &request.run_id, &request.event_time))
        .collect()
}

/// Plans `request.service`: lists the accounts and their regions, then sends their scopes in
/// batches. `own_account` is the planner's account (`ACCOUNTS=self`).
pub async fn plan<D: AccountDirectory, R: RegionDirectory, Q: ScopeQueue>(
    directory: &D,
    regions: &R,
    queue: &Q,
    config: &PlanConfig,
    own_account: &str,
    request: &PlanRequest,
) -> Result<PlanSummary> {
    let service = request.service;
    let queue_url = config.queues.get(&service).ok_or_else(|| {
        crate::Error::Event(format!("no queue is configured for {service} (SCOPE_QUEUES): nothing was planned"))
    })?;
    let accounts = match &config.accounts {
        AccountSource::Own => vec![Account::active(own_account)],
        AccountSource::Listed(ids) => ids.iter().map(Account::active).collect(),
        AccountSource::Organization { parents } => directory.accounts(parents).await?,
    };
    let selection = select_accounts(&accounts, &config.exclude);
    let offered = regions.offered(service).await?;
    let regions_of = regions_of_accounts(regions, &config.regions, &selection.active, own_account).await?;
    let planned = plan_scopes(service, &regions_of, &offered);
    let messages = batches(service, &planned.scopes, config.batch_size, request);
    queue.send(queue_url, &messages).await?;
    Ok(PlanSummary {
        service,
        run_id: request.run_id.to_string(),
        accounts: selection.active.len(),
        regions: planned.regions.into_iter().collect(),
        scopes: planned.scopes.len(),
        messages_sent: messages.len(),
        excluded: selection.excluded,
        inactive: selection.inactive,
        not_offered: planned.not_offered.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests;

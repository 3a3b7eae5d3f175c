//! The planner: turns the scopes of one service (its accounts × regions) into one message per
//! scope on the service's queue. Each function consumes its queue (an event source mapping), so
//! every scope runs, fails and is retried on its own, on Lambda's and SQS's machinery.
//!
//! Accounts come from the configuration: the planner's own (the default, no Organizations
//! needed), a list, or AWS Organizations (every ACTIVE account, or those under some OUs with the
//! nested OUs walked), minus an exclude list. Everything is listed and checked before the first
//! message is sent: a plan that cannot be made sends nothing.

pub mod function;
pub mod organizations;
pub mod queue;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde::Serialize;

use crate::event::ScopeMessage;
use crate::model::{RunId, Scope, ServiceId, Timestamp};
use crate::Result;

pub use organizations::OrganizationsDirectory;
pub use queue::SqsScopeQueue;

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
    /// The regions of every account; never empty.
    pub regions: Vec<String>,
    /// Each service's queue URL (`SCOPE_QUEUES`).
    pub queues: BTreeMap<ServiceId, String>,
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

/// A request to plan one service: the planner's scheduled event gives its id and time to every
/// scope's run.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest {
    pub service: ServiceId,
    pub run_id: RunId,
    pub event_time: Timestamp,
}

/// What a plan did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanSummary {
    pub service: ServiceId,
    pub run_id: String,
    /// Accounts planned.
    pub accounts: usize,
    pub regions: Vec<String>,
    /// Scopes planned: one message each.
    pub scopes: usize,
    pub messages_sent: usize,
    /// Accounts left out by `EXCLUDE_ACCOUNTS`.
    pub excluded: Vec<String>,
    /// Accounts of the organization left out for not being ACTIVE, with their state.
    pub inactive: Vec<Account>,
}

/// The scopes of one service: every ACTIVE account not excluded, in every region, sorted.
pub fn plan_scopes(service: ServiceId, accounts: &[Account], config: &PlanConfig) -> Planned {
    let mut planned = Planned::default();
    let accounts: BTreeSet<&Account> = accounts.iter().collect();
    for account in accounts {
        if config.exclude.contains(&account.id) {
            planned.excluded.push(account.id.clone());
        } else if account.state != ACTIVE {
            planned.inactive.push(account.clone());
        } else {
            planned.accounts += 1;
            planned.scopes.extend(config.regions.iter().map(|region| Scope {
                service,
                account_id: account.id.clone(),
                region: region.clone(),
            }));
        }
    }
    planned
}

/// The scopes of a plan, and the accounts it left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Planned {
    pub accounts: usize,
    pub scopes: Vec<Scope>,
    pub excluded: Vec<String>,
    pub inactive: Vec<Account>,
}

/// Plans `request.service`: lists the accounts, then sends one message per scope. `own_account`
/// is the planner's account (`ACCOUNTS=self`).
pub async fn plan<D: AccountDirectory, Q: ScopeQueue>(
    directory: &D,
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
    let planned = plan_scopes(service, &accounts, config);
    let messages: Vec<ScopeMessage> =
        planned.scopes.iter().map(|scope| ScopeMessage::new(scope, &request.run_id, &request.event_time)).collect();
    queue.send(queue_url, &messages).await?;
    Ok(PlanSummary {
        service,
        run_id: request.run_id.to_string(),
        accounts: planned.accounts,
        regions: config.regions.clone(),
        scopes: planned.scopes.len(),
        messages_sent: messages.len(),
        excluded: planned.excluded,
        inactive: planned.inactive,
    })
}

#[cfg(test)]
mod tests;

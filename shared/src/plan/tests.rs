//! The planner on in-memory twins of Organizations, SSM, Account Management and SQS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::model::{RunId, Timestamp};
use crate::Error;

/// An organization: each parent's accounts and child OUs.
#[derive(Default)]
struct MemoryDirectory {
    parents: BTreeMap<String, (Vec<Account>, Vec<String>)>,
    calls: Mutex<usize>,
}

impl MemoryDirectory {
    fn with(mut self, parent: &str, accounts: &[(&str, &str)], units: &[&str]) -> Self {
        let accounts =
            accounts.iter().map(|(id, state)| Account { id: (*id).into(), state: (*state).into() }).collect();
        self.parents.insert(parent.into(), (accounts, units.iter().map(|u| (*u).to_owned()).collect()));
        self
    }
}

impl AccountDirectory for MemoryDirectory {
    async fn accounts(&self, parents: &[String]) -> Result<Vec<Account>> {
        *self.calls.lock().unwrap() += 1;
        let mut found = BTreeMap::new();
        let mut to_walk: Vec<String> = if parents.is_empty() { vec!["r-root".into()] } else { parents.to_vec() };
        while let Some(parent) = to_walk.pop() {
            let (accounts, units) = self.parents.get(&parent).ok_or_else(|| Error::Storage {
                operation: "Organizations ListAccountsForParent",
                resource: format!("parent {parent}"),
                code: "ParentNotFoundException".into(),
                message: "You specified a root or OU that doesn't exist.".into(),
                status: Some(400),
                retryable: false,
            })?;
            found.extend(accounts.iter().map(|a| (a.id.clone(), a.clone())));
            to_walk.extend(units.iter().cloned());
        }
        Ok(found.into_values().collect())
    }
}

/// Where services are offered, and the regions each account has enabled (`None`: the caller's).
struct MemoryRegions {
    offered: BTreeMap<ServiceId, BTreeSet<String>>,
    enabled: BTreeMap<Option<String>, Vec<String>>,
    asked: Mutex<Vec<Option<String>>>,
}

impl Default for MemoryRegions {
    /// IVS offered in eu-west-1, us-east-1 and ap-northeast-1, nowhere else; no account known.
    fn default() -> Self {
        let ivs = ["ap-northeast-1", "eu-west-1", "us-east-1"].map(String::from).into();
        MemoryRegions {
            offered: BTreeMap::from([(ServiceId::IvsStreamSessions, ivs)]),
            enabled: BTreeMap::new(),
            asked: Mutex::default(),
        }
    }
}

impl MemoryRegions {
    fn enabled_in(mut self, account: Option<&str>, regions: &[&str]) -> Self {
        self.enabled.insert(account.map(str::to_owned), regions.iter().map(|r| (*r).to_owned()).collect());
        self
    }
}

impl RegionDirectory for MemoryRegions {
    async fn offered(&self, service: ServiceId) -> Result<BTreeSet<String>> {
        Ok(self.offered.get(&service).cloned().unwrap_or_default())
    }

    async fn enabled(&self, account: Option<&str>) -> Result<Vec<String>> {
        self.asked.lock().unwrap().push(account.map(str::to_owned));
        self.enabled.get(&account.map(str::to_owned)).cloned().ok_or_else(|| Error::Storage {
            operation: "Account ListRegions",
            resource: format!("account {}", account.unwrap_or("self")),
            code: "AccessDeniedException".into(),
            message: "not a member of the organization".into(),
            status: Some(403),
            retryable: false,
        })
    }
}

#[derive(Default)]
struct MemoryQueue {
    sent: Mutex<BTreeMap<String, Vec<ScopeMessage>>>,
}

impl ScopeQueue for MemoryQueue {
    async fn send(&self, queue_url: &str, messages: &[ScopeMessage]) -> Result<()> {
        self.sent.lock().unwrap().entry(queue_url.into()).or_default().extend_from_slice(messages);
        Ok(())
    }
}

const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/999999999999/ivs-stream-sessions-scopes";

fn config(accounts: AccountSource, regions: &[&str]) -> PlanConfig {
    PlanConfig {
        accounts,
        exclude: BTreeSet::new(),
        regions: RegionSource::Listed(regions.iter().map(|r| (*r).to_owned()).collect()),
        queues: BTreeMap::from([(ServiceId::IvsStreamSessions, QUEUE.to_owned())]),
        batch_size: 50,
    }
}

fn request() -> PlanRequest {
    PlanRequest {
        service: ServiceId::IvsStreamSessions,
        run_id: RunId::parse("plan-1").unwrap(),
        event_time: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
    }
}

/// An organization of a root with two accounts, an OU with one active and one suspended
/// account, and a nested OU with one more.
fn organization() -> MemoryDirectory {
    MemoryDirectory::default()
        .with("r-root", &[("111111111111", "ACTIVE"), ("999999999999", "ACTIVE")], &["ou-root-workload"])
        .with("ou-root-workload", &[("222222222222", "ACTIVE"), ("333333333333", "SUSPENDED")], &["ou-root-nested1"])
        .with("ou-root-nested1", &[("444444444444", "ACTIVE")], &[])
}

fn scopes_sent(queue: &MemoryQueue) -> Vec<(String, String)> {
    let sent = queue.sent.lock().unwrap();
    let scopes = sent.get(QUEUE).into_iter().flatten().flat_map(|m| m.scopes.iter());
    scopes.map(|s| (s.account_id.clone(), s.region.clone())).collect()
}

#[tokio::test]
async fn by_default_the_planner_plans_its_own_account_and_region_without_organizations() {
    // GIVEN the default configuration
    let (directory, queue) = (MemoryDirectory::default(), MemoryQueue::default());
    let config = config(AccountSource::Own, &["eu-west-1"]);
    // WHEN it plans
    let summary =
        plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap();
    // THEN one message goes to the service's queue, for its own scope, and Organizations is not asked
    assert_eq!(scopes_sent(&queue), [("999999999999".to_owned(), "eu-west-1".to_owned())]);
    assert_eq!((summary.accounts, summary.scopes, summary.messages_sent), (1, 1, 1));
    assert_eq!(*directory.calls.lock().unwrap(), 0);
    let message = &queue.sent.lock().unwrap()[QUEUE][0];
    assert_eq!((message.run_id.as_str(), message.event_time.as_str()), ("plan-1", "2026-11-22T10:00:00Z"));
}

#[tokio::test]
async fn every_active_account_of_the_organization_is_planned_in_every_region() {
    // GIVEN the whole organization, two regions, and one account excluded
    let (directory, queue) = (organization(), MemoryQueue::default());
    let mut config = config(AccountSource::Organization { parents: vec![] }, &["eu-west-1", "us-east-1"]);
    config.exclude.insert("999999999999".into());
    // WHEN it plans
    let summary =
        plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap();
    // THEN every active, not excluded account is planned in each region, nested OUs included,
    // all six scopes in one message
    let sent = scopes_sent(&queue);
    let accounts: BTreeSet<&str> = sent.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(accounts, BTreeSet::from(["111111111111", "222222222222", "444444444444"]));
    assert_eq!(sent.len(), 6);
    // AND the summary says what was left out and why
    assert_eq!((summary.accounts, summary.scopes, summary.messages_sent), (3, 6, 1));
    assert_eq!(summary.excluded, ["999999999999"]);
    assert_eq!(summary.inactive, [Account { id: "333333333333".into(), state: "SUSPENDED".into() }]);
}

#[tokio::test]
async fn scopes_go_in_batches_of_the_batch_size_account_by_account() {
    // GIVEN four accounts in two regions, and batches of three
    let (directory, queue) = (MemoryDirectory::default(), MemoryQueue::default());
    let accounts = ["111111111111", "222222222222", "333333333333", "444444444444"];
    let mut config = config(AccountSource::Listed(accounts.map(String::from).into()), &["eu-west-1", "us-east-1"]);
    config.batch_size = 3;
    // WHEN it plans
    let summary =
        plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap();
    // THEN eight scopes go in three messages of 3, 3 and 2, in account order, each scope once,
    // each message carrying the plan's run and none of them a delivery yet
    let sent = queue.sent.lock().unwrap()[QUEUE].clone();
    let sizes: Vec<usize> = sent.iter().map(|m| m.scopes.len()).collect();
    assert_eq!(sizes, [3, 3, 2]);
    assert_eq!((summary.scopes, summary.messages_sent), (8, 3));
    let first: Vec<(&str, &str)> = sent[0].scopes.iter().map(|s| (s.account_id.as_str(), s.region.as_str())).collect();
    assert_eq!(first, [(accounts[0], "eu-west-1"), (accounts[0], "us-east-1"), (accounts[1], "eu-west-1")]);
    assert!(sent.iter().all(|m| m.run_id == "plan-1" && m.attempts == 0));
    assert_eq!(scopes_sent(&queue).into_iter().collect::<BTreeSet<_>>().len(), 8);
}

#[test]
fn a_scope_message_of_before_batches_is_read_as_a_batch_of_one() {
    let body = r#"{"service":"ivs-stream-sessions","account_id":"111111111111","region":"eu-west-1","run_id":"r1","event_time":"2026-11-22T10:00:00Z"}"#;
    let message = ScopeMessage::from_body(body).unwrap();
    assert_eq!(message.scopes.len(), 1);
    assert_eq!((message.scopes[0].account_id.as_str(), message.attempts), ("111111111111", 0));
    // AND a batch is written without `attempts` until it has some
    let json = serde_json::to_value(&message).unwrap();
    assert!(json.get("attempts").is_none() && json["scopes"][0]["region"] == "eu-west-1", "{json}");
}

#[tokio::test]
async fn an_ou_plans_the_accounts_under_it_only() {
    let (directory, queue) = (organization(), MemoryQueue::default());
    let config = config(AccountSource::Organization { parents: vec!["ou-root-workload".into()] }, &["eu-west-1"]);
    plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap();
    let accounts: Vec<String> = scopes_sent(&queue).into_iter().map(|(a, _)| a).collect();
    assert_eq!(accounts, ["222222222222", "444444444444"]);
}

#[tokio::test]
async fn an_unknown_ou_sends_nothing_and_names_the_ou() {
    // GIVEN an OU the organization does not have
    let (directory, queue) = (organization(), MemoryQueue::default());
    let config = config(AccountSource::Organization { parents: vec!["ou-root-gone1234".into()] }, &["eu-west-1"]);
    // WHEN it plans
    let err =
        plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap_err();
    // THEN the error names the OU, and no message was sent
    assert!(err.to_string().contains("parent ou-root-gone1234"), "{err}");
    assert!(err.to_string().contains("ParentNotFoundException"), "{err}");
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_service_without_a_queue_is_refused_and_nothing_is_sent() {
    let (directory, queue) = (organization(), MemoryQueue::default());
    let config = config(AccountSource::Own, &["eu-west-1"]);
    let request = PlanRequest { service: ServiceId::GameliftStreamSessions, ..request() };
    let err = plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request).await.unwrap_err();
    assert!(err.to_string().contains("no queue is configured for gamelift-stream-sessions"), "{err}");
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[test]
fn an_account_listed_twice_in_the_directory_is_planned_once() {
    let accounts = [Account::active("111111111111"), Account::active("111111111111")];
    let selection = select_accounts(&accounts, &BTreeSet::new());
    assert_eq!(selection.active, ["111111111111"]);
}

#[tokio::test]
async fn a_listed_region_where_the_service_is_not_offered_is_left_out_and_named() {
    // GIVEN a list of regions, one where IVS is not offered
    let (directory, queue) = (MemoryDirectory::default(), MemoryQueue::default());
    let config = config(AccountSource::Own, &["eu-west-1", "eu-north-1"]);
    // WHEN it plans IVS
    let summary =
        plan(&directory, &MemoryRegions::default(), &queue, &config, "999999999999", &request()).await.unwrap();
    // THEN only the offered region has a message, and the summary names the other
    assert_eq!(scopes_sent(&queue), [("999999999999".to_owned(), "eu-west-1".to_owned())]);
    assert_eq!((summary.regions, summary.not_offered), (vec!["eu-west-1".into()], vec!["eu-north-1".into()]));
}

#[tokio::test]
async fn enabled_regions_are_each_accounts_own_where_the_service_is_offered() {
    // GIVEN REGIONS=enabled: the planner's account has two regions enabled, a member three, one
    // of them (eu-north-1) where IVS is not offered
    let (directory, queue) = (MemoryDirectory::default(), MemoryQueue::default());
    let regions = MemoryRegions::default()
        .enabled_in(None, &["eu-west-1", "us-east-1"])
        .enabled_in(Some("111111111111"), &["ap-northeast-1", "eu-north-1", "eu-west-1"]);
    let mut config = config(AccountSource::Listed(vec!["999999999999".into(), "111111111111".into()]), &[]);
    config.regions = RegionSource::Enabled;
    // WHEN it plans IVS
    let summary = plan(&directory, &regions, &queue, &config, "999999999999", &request()).await.unwrap();
    // THEN each account has a message for each of its enabled regions where IVS is offered
    let sent: BTreeSet<(String, String)> = scopes_sent(&queue).into_iter().collect();
    let expected = [
        ("111111111111", "ap-northeast-1"),
        ("111111111111", "eu-west-1"),
        ("999999999999", "eu-west-1"),
        ("999999999999", "us-east-1"),
    ];
    assert_eq!(sent, expected.map(|(a, r)| (a.to_owned(), r.to_owned())).into());
    assert_eq!(summary.not_offered, ["eu-north-1"]);
    // AND the planner's own account was asked for without its id, as ListRegions requires
    let asked = regions.asked.lock().unwrap().clone();
    assert_eq!(asked.into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([None, Some("111111111111".into())]));
}

#[tokio::test]
async fn an_account_whose_regions_cannot_be_listed_stops_the_plan_before_anything_is_sent() {
    // GIVEN REGIONS=enabled and a member Account Management refuses to answer for
    let (directory, queue) = (MemoryDirectory::default(), MemoryQueue::default());
    let regions = MemoryRegions::default().enabled_in(None, &["eu-west-1"]);
    let mut config = config(AccountSource::Listed(vec!["999999999999".into(), "111111111111".into()]), &[]);
    config.regions = RegionSource::Enabled;
    // WHEN it plans
    let err = plan(&directory, &regions, &queue, &config, "999999999999", &request()).await.unwrap_err();
    // THEN the error names the account and the call, and no message was sent
    assert!(
        err.to_string().starts_with("Account ListRegions on account 111111111111 failed: AccessDeniedException"),
        "{err}"
    );
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_warm_planner_reuses_the_regions_it_listed_until_they_are_stale() {
    // GIVEN regions cached for an hour, and others not at all
    let hour = CachedRegions::new(MemoryRegions::default().enabled_in(None, &["eu-west-1"]), Duration::from_secs(3600));
    let never = CachedRegions::new(MemoryRegions::default().enabled_in(None, &["eu-west-1"]), Duration::ZERO);
    // WHEN each is asked twice
    for cache in [&hour, &never] {
        for _ in 0..2 {
            assert_eq!(cache.enabled(None).await.unwrap(), ["eu-west-1"]);
        }
    }
    // THEN the first listed once, the second twice
    assert_eq!(hour.inner().asked.lock().unwrap().len(), 1);
    assert_eq!(never.inner().asked.lock().unwrap().len(), 2);
}

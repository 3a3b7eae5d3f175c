//! The planner's configuration. The planner (`scope-planner`, which fans an organization's scopes out to the functions'
//! queues) reads these:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACCOUNTS` | `self` | accounts to plan: `self` (the planner's own), `organization` (every ACTIVE account of AWS Organizations), or account ids, comma-separated (`Accounts`) |
//! | `ORGANIZATION_UNITS` | none | with `ACCOUNTS=organization`: only the accounts under these roots or OUs (`r-…`, `ou-…-…`), nested OUs included (`OrganizationUnits`) |
//! | `EXCLUDE_ACCOUNTS` | none | account ids never planned (`ExcludeAccounts`) |
//! | `REGIONS` | `self` | regions of every account: `self` (the planner's own), `enabled` (every region the account has enabled, from Account Management), or region names, comma-separated; only those where the service is offered are planned (`Regions`) |
//! | `REGIONS_CACHE_SECONDS` | `3600` | how long a warm planner reuses the regions it listed (where each service is offered, each account's enabled regions); `0` lists them at every plan |
//! | `SCOPE_BATCH_SIZE` | `50` | scopes in one message, 1 to 500: one invocation archives them side by side (`ScopeBatchSize`) |
//! | `SCOPE_QUEUES` | required | each service's queue: `service=queue URL`, comma-separated (set by the template) |
//! | `HISTORY_START_DATE` | `2024-01-01` | a plan event dated before it is refused, as the functions refuse it |
//! | `STORAGE_ENDPOINT_URL` | none | send the Organizations, SSM, Account Management and SQS calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | the planner's own region (`REGIONS=self`), and that of its calls |

use std::time::Duration;

use super::{AccountSource, PlanConfig, RegionSource};
use crate::aws::SdkSettings;
use crate::error::quoted;
use crate::error::{Error, Result};
use crate::lambda::env::{history_start, Vars};
use crate::model::{ServiceId, Timestamp};

/// What the planner needs besides what it plans: its region, endpoint and history start.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannerConfig {
    pub plan: PlanConfig,
    /// How long a warm planner reuses the regions it listed.
    pub regions_cache: Duration,
    pub region: String,
    pub history_start: Timestamp,
    pub endpoint: Option<String>,
}

impl PlannerConfig {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(&var);
        let (region, endpoint) = (vars.required("AWS_REGION")?, vars.endpoint("STORAGE_ENDPOINT_URL")?);
        let history_start = history_start(vars.get("HISTORY_START_DATE"))?;
        let regions_cache = vars.seconds("REGIONS_CACHE_SECONDS", 3600, 0..=86_400)?;
        Ok(PlannerConfig { plan: PlanConfig::from_vars(var)?, regions_cache, region, history_start, endpoint })
    }

    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// SDK settings of the Organizations and SQS clients.
    pub fn sdk(&self) -> SdkSettings {
        SdkSettings { region: Some(self.region.clone()), endpoint_url: self.endpoint.clone(), ..SdkSettings::default() }
    }
}

impl PlanConfig {
    /// Reads the planner's configuration through `var` (the process environment in Lambda):
    /// every value is checked, and the first bad one named, before anything is listed or sent.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(var);
        let own_region = vars.required("AWS_REGION")?;
        let units = vars.list("ORGANIZATION_UNITS")?.unwrap_or_default();
        let accounts = match vars.get("ACCOUNTS").as_deref() {
            None | Some("self") => AccountSource::Own,
            Some("organization") => AccountSource::Organization { parents: organization_units(units.clone())? },
            Some(_) => AccountSource::Listed(account_ids("ACCOUNTS", vars.list("ACCOUNTS")?.unwrap_or_default())?),
        };
        if !units.is_empty() && !matches!(accounts, AccountSource::Organization { .. }) {
            return Err(Error::Config(
                "ORGANIZATION_UNITS is set, and ACCOUNTS is not `organization`: set ACCOUNTS=organization to plan the accounts of these OUs".into(),
            ));
        }
        let exclude = account_ids("EXCLUDE_ACCOUNTS", vars.list("EXCLUDE_ACCOUNTS")?.unwrap_or_default())?;
        let regions = match vars.get("REGIONS").as_deref() {
            None | Some("self") => RegionSource::Listed(vec![own_region]),
            Some("enabled") => RegionSource::Enabled,
            Some(_) => RegionSource::Listed(region_names(vars.list("REGIONS")?.unwrap_or_default())?),
        };
        let queues = scope_queues(&vars.required("SCOPE_QUEUES")?)?;
        let batch_size =
            vars.number("SCOPE_BATCH_SIZE", DEFAULT_BATCH_SIZE as u64, 1..=MAX_BATCH_SIZE as u64)? as usize;
        Ok(PlanConfig { accounts, exclude: exclude.into_iter().collect(), regions, queues, batch_size })
    }
}

/// Scopes in one message unless `SCOPE_BATCH_SIZE` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 50;

/// The most scopes in one message: about 25 KB of JSON, far below SQS's limit, and a batch's
/// scopes all start within the invocation.
pub const MAX_BATCH_SIZE: usize = 500;

/// Each value once, each one checked by `valid`; `what` names a value in the error.
fn distinct(name: &str, values: Vec<String>, valid: fn(&str) -> bool, what: &str) -> Result<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    for value in &values {
        if !valid(value) {
            return Err(Error::Config(format!("{name}: {} is not {what}", quoted(value))));
        }
        if !seen.insert(value.as_str()) {
            return Err(Error::Config(format!("{name}: {} is listed twice", quoted(value))));
        }
    }
    Ok(values)
}

fn account_ids(name: &str, values: Vec<String>) -> Result<Vec<String>> {
    distinct(name, values, crate::model::is_account_id, "an account id (12 digits)")
}

fn region_names(values: Vec<String>) -> Result<Vec<String>> {
    distinct("REGIONS", values, crate::model::is_region, "a region name like eu-west-1")
}

/// Roots (`r-` and 4-32 of a-z 0-9) and OUs (`ou-`, the root's 4-32, `-`, 8-32 of a-z 0-9).
fn organization_units(values: Vec<String>) -> Result<Vec<String>> {
    fn is_parent_id(value: &str) -> bool {
        let word = |part: &str, lengths: std::ops::RangeInclusive<usize>| {
            lengths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match value.split('-').collect::<Vec<_>>().as_slice() {
            ["r", root] => word(root, 4..=32),
            ["ou", root, unit] => word(root, 4..=32) && word(unit, 8..=32),
            _ => false,
        }
    }
    distinct("ORGANIZATION_UNITS", values, is_parent_id, "a root id (r-…) or an OU id (ou-…-…)")
}

/// `SCOPE_QUEUES`: `service=url` pairs, each service once.
fn scope_queues(text: &str) -> Result<std::collections::BTreeMap<ServiceId, String>> {
    let mut queues = std::collections::BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let (service, url) = pair
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("SCOPE_QUEUES: {} is not service=queue URL", quoted(pair))))?;
        let service: ServiceId = service.trim().parse().map_err(|e: Error| match e {
            Error::Config(detail) => Error::Config(format!("SCOPE_QUEUES: {detail}")),
            other => other,
        })?;
        let url = url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Config(format!("SCOPE_QUEUES: the queue of {service}, {}, is not a URL", quoted(url))));
        }
        if queues.insert(service, url.to_owned()).is_some() {
            return Err(Error::Config(format!("SCOPE_QUEUES: {service} has two queues")));
        }
    }
    if queues.is_empty() {
        return Err(Error::Config("SCOPE_QUEUES names no queue".into()));
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::env::fixture;

    fn plan_vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let defaults = [
            ("AWS_REGION", "eu-west-1"),
            ("SCOPE_QUEUES", "ivs-stream-sessions=https://sqs.eu-west-1.amazonaws.com/1/q"),
        ];
        fixture(&defaults, pairs)
    }

    #[test]
    fn the_planner_plans_its_own_scope_by_default() {
        let config = PlanConfig::from_vars(plan_vars(&[])).unwrap();
        assert_eq!(
            (config.accounts, config.regions),
            (AccountSource::Own, RegionSource::Listed(vec!["eu-west-1".into()]))
        );
        assert_eq!(config.queues[&ServiceId::IvsStreamSessions], "https://sqs.eu-west-1.amazonaws.com/1/q");
    }

    #[test]
    fn a_warm_planner_reuses_the_regions_it_listed_for_an_hour_unless_told() {
        let config = PlannerConfig::from_vars(plan_vars(&[])).unwrap();
        assert_eq!(config.regions_cache, Duration::from_secs(3600));
        let every_plan = PlannerConfig::from_vars(plan_vars(&[("REGIONS_CACHE_SECONDS", "0")])).unwrap();
        assert_eq!(every_plan.regions_cache, Duration::ZERO);
        let err = PlannerConfig::from_vars(plan_vars(&[("REGIONS_CACHE_SECONDS", "a day")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid configuration: REGIONS_CACHE_SECONDS=`a day` is not a whole number");
    }

    #[test]
    fn the_planner_reads_lists_of_accounts_units_and_regions() {
        let config = PlanConfig::from_vars(plan_vars(&[
            ("ACCOUNTS", "organization"),
            ("ORGANIZATION_UNITS", "ou-ab12-cdefgh34, r-ab12"),
            ("EXCLUDE_ACCOUNTS", "111111111111"),
            ("REGIONS", "eu-west-1,us-east-1"),
        ]))
        .unwrap();
        let parents = vec!["ou-ab12-cdefgh34".to_owned(), "r-ab12".to_owned()];
        assert_eq!(config.accounts, AccountSource::Organization { parents });
        assert!(config.exclude.contains("111111111111"));
        assert_eq!(config.regions, RegionSource::Listed(vec!["eu-west-1".into(), "us-east-1".into()]));
        let enabled = PlanConfig::from_vars(plan_vars(&[("REGIONS", "enabled")])).unwrap();
        assert_eq!(enabled.regions, RegionSource::Enabled);
        let listed = PlanConfig::from_vars(plan_vars(&[("ACCOUNTS", "111111111111,222222222222")])).unwrap();
        assert_eq!(listed.accounts, AccountSource::Listed(vec!["111111111111".into(), "222222222222".into()]));
    }

    #[test]
    fn each_bad_planner_value_is_refused_naming_it() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("ACCOUNTS", "1234")], "ACCOUNTS: `1234` is not an account id (12 digits)"),
            (&[("ACCOUNTS", "111111111111,111111111111")], "ACCOUNTS: `111111111111` is listed twice"),
            (&[("ACCOUNTS", ", ,")], "ACCOUNTS=`, ,` lists nothing"),
            (
                &[("ACCOUNTS", "organization"), ("ORGANIZATION_UNITS", "ou-x")],
                "ORGANIZATION_UNITS: `ou-x` is not a root id",
            ),
            (
                &[("ORGANIZATION_UNITS", "ou-ab12-cdefgh34")],
                "ORGANIZATION_UNITS is set, and ACCOUNTS is not `organization`",
            ),
            (&[("EXCLUDE_ACCOUNTS", "abc")], "EXCLUDE_ACCOUNTS: `abc` is not an account id"),
            (&[("REGIONS", "eu-west-1,Mars")], "REGIONS: `Mars` is not a region name"),
            (&[("REGIONS", ",")], "REGIONS=`,` lists nothing"),
            (&[("SCOPE_QUEUES", "")], "SCOPE_QUEUES is not set"),
            (
                &[("SCOPE_QUEUES", "ivs-stream-sessions")],
                "SCOPE_QUEUES: `ivs-stream-sessions` is not service=queue URL",
            ),
            (&[("SCOPE_QUEUES", "ec2=https://q")], "SCOPE_QUEUES: unknown service `ec2`"),
            (
                &[("SCOPE_QUEUES", "ivs-stream-sessions=queue")],
                "the queue of ivs-stream-sessions, `queue`, is not a URL",
            ),
            (
                &[("SCOPE_QUEUES", "ivs-stream-sessions=https://a,ivs-stream-sessions=https://b")],
                "SCOPE_QUEUES: ivs-stream-sessions has two queues",
            ),
        ];
        for (pairs, expected) in cases {
            let err = PlanConfig::from_vars(plan_vars(pairs)).unwrap_err();
            assert!(err.to_string().starts_with("invalid configuration: "), "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}

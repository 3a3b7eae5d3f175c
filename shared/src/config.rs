//! A function's configuration, read from its environment once at cold start and validated: a bad
//! value stops the function before it reads or writes anything, naming the variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TABLE_NAME` | required | DynamoDB table of current state (set by the template) |
//! | `BUCKET_NAME` | required | S3 bucket of the history (set by the template) |
//! | `HISTORY_PREFIX` | `history` | key prefix of the history objects (template parameter `HistoryPrefix`) |
//! | `STATE_PREFIX` | `state` | key prefix of the listings' state in the bucket: each scope's listing states, read instead of the table, and a run's progress too large for its item (`StatePrefix`) |
//! | `PROGRESS_INLINE_BYTES` | `389120` | the largest encoded progress kept in its DynamoDB item; a larger one goes to an object under `STATE_PREFIX` |
//! | `ENDED_RETENTION_DAYS` | `90` | days an ended session stays in the table, its TTL (`EndedRetentionDays`) |
//! | `LEASE_SECONDS` | `960` | the longest a run holds the one-run lease; in Lambda it expires at the invocation's deadline |
//! | `PAGE_SIZE` | the API's largest | page size asked of the list operation |
//! | `SOURCE_OPTIONS` | none | JSON: `parents` and filters, as in a replay event |
//! | `MAX_CONCURRENT_LISTINGS` | `4` | parents read at the same time |
//! | `MAX_CALLS_PER_SECOND` | `10` | client-side pace of list calls, `0` for none; the SDK's adaptive retry slows down further under throttling (`MaxCallsPerSecond`) |
//! | `DEADLINE_MARGIN_SECONDS` | `60` | paging stops this long before the Lambda deadline and the run returns `partial`; above the failure reserve (`DeadlineMarginSeconds`) |
//! | `PERSONAL_DATA` | phone numbers hashed, user ids kept | `column=keep\|hash\|drop,…` for `user_id`, `participant_phone_numbers`, `participant_proxy_phone_numbers` (`PersonalDataPolicy`) |
//! | `PERSONAL_DATA_KEY_SECRET` | required while a column is hashed | Secrets Manager secret (ARN or name) of the HMAC key; the template creates it |
//! | `SDK_MAX_ATTEMPTS` | `8` | attempts per AWS call, retries included (adaptive retry mode) |
//! | `SDK_ATTEMPT_TIMEOUT_SECONDS` | `10` | one attempt of an AWS call, connection to last byte; twice this plus 1 s is the failure reserve, kept before the deadline to record a failure |
//! | `SDK_OPERATION_TIMEOUT_SECONDS` | twice the attempt timeout | one AWS call, retries included |
//! | `HISTORY_START_DATE` | `2024-01-01` | first day of the history: events dated before it are refused (`HistoryStartDate`, also the Glue tables' projection start) |
//! | `MEMBER_ROLE_NAME` | `session-archiver-member` | the role a function assumes in a scope's account other than its own (`MemberRoleName`) |
//! | `MEMBER_ROLE_EXTERNAL_ID` | none | the ExternalId the member role's trust policy asks for (`MemberRoleExternalId`) |
//! | `SCOPE_DEAD_LETTER_QUEUE_URL` | none | where a scope message goes, with its error as attributes, when its failure cannot pass with a retry or it was delivered `SCOPE_MAX_RECEIVES` times (set by the template); none: SQS's redrive moves it, without the error |
//! | `SCOPE_MAX_RECEIVES` | `3` | the scope queue's `maxReceiveCount` (`ScopeMaxReceives`) |
//! | `SESSION_API_ENDPOINT_URL` | none | send the session API calls there (the local emulator) |
//! | `STORAGE_ENDPOINT_URL` | none | send DynamoDB, S3, Secrets Manager, STS, SQS and Organizations calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | region of the APIs, table and bucket |
//!
//! The planner (`scope-planner`, which fans an organization's scopes out to the functions'
//! queues) reads these:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACCOUNTS` | `self` | accounts to plan: `self` (the planner's own), `organization` (every ACTIVE account of AWS Organizations), or account ids, comma-separated (`Accounts`) |
//! | `ORGANIZATION_UNITS` | none | with `ACCOUNTS=organization`: only the accounts under these roots or OUs (`r-…`, `ou-…-…`), nested OUs included (`OrganizationUnits`) |
//! | `EXCLUDE_ACCOUNTS` | none | account ids never planned (`ExcludeAccounts`) |
//! | `REGIONS` | `self` | regions of every account: `self` (the planner's own), `enabled` (every region the account has enabled, from Account Management), or region names, comma-separated; only those where the service is offered are planned (`Regions`) |
//! | `REGIONS_CACHE_SECONDS` | `3600` | how long a warm planner reuses the regions it listed (where each service is offered, each account's enabled regions); `0` lists them at every plan |
//! | `SCOPE_QUEUES` | required | each service's queue: `service=queue URL`, comma-separated (set by the template) |
//! | `HISTORY_START_DATE` | `2024-01-01` | a plan event dated before it is refused, as the functions refuse it |
//! | `STORAGE_ENDPOINT_URL` | none | send the Organizations, SSM, Account Management and SQS calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | the planner's own region (`REGIONS=self`), and that of its calls |
//!
//! The compactor (`history-compactor`, which compacts a day of the history into Parquet) reads
//! these:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BUCKET_NAME` | required | S3 bucket of the history (set by the template) |
//! | `HISTORY_PREFIX` | `history` | key prefix of the history objects; the Parquet goes under `<prefix>/parquet/` |
//! | `COMPACTION_SORT_MEMORY_MB` | `256` | MiB of lines sorted in memory before they are spilled to the temporary directory |
//! | `COMPACTION_ROW_GROUP_MB` | `64` | encoded MiB of a Parquet row group (one is in memory at a time) |
//! | `COMPACTION_PART_SOURCE_BYTES` | `536870912` | gzip'd source bytes one Parquet part is compacted from; a day of more is split into parts, compacted by tasks on `COMPACTION_QUEUE_URL` |
//! | `COMPACTION_QUEUE_URL` | none | the compaction's task queue (set by the template); none: the parts of a day are compacted one after the other in the invocation |
//! | `COMPACTION_DEAD_LETTER_QUEUE_URL` | none | where a task that no retry can mend goes, with its error as attributes (set by the template); none: SQS's redrive moves it, without the error |
//! | `HISTORY_START_DATE` | `2024-01-01` | a day before it is refused, as the functions refuse it |
//! | `STORAGE_ENDPOINT_URL` | none | send the S3 calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | region of the bucket |

use std::time::Duration;

use crate::aws::SdkSettings;
use crate::error::quoted;
use crate::error::{Error, Result};
use crate::model::{ServiceId, Timestamp};
use crate::personal::PersonalDataPolicy;
use crate::plan::{AccountSource, PlanConfig, RegionSource};
use crate::sources::SourceOptions;
use crate::table::progress::MAX_INLINE_PROGRESS as MAX_INLINE;

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

/// What the compactor needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactorConfig {
    pub bucket_name: String,
    pub region: String,
    pub history_prefix: String,
    /// Bytes of lines sorted in memory before a spill.
    pub sort_memory: usize,
    /// Encoded bytes of a row group.
    pub row_group_bytes: usize,
    /// Gzip'd source bytes of one Parquet part.
    pub part_source_bytes: u64,
    pub task_queue: Option<String>,
    pub task_dead_letter_queue: Option<String>,
    pub history_start: Timestamp,
    pub storage_endpoint: Option<String>,
}

impl CompactorConfig {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(var);
        let history_prefix = vars.get("HISTORY_PREFIX").unwrap_or_else(|| "history".into());
        if !crate::run::config::is_key_prefix(&history_prefix) {
            return Err(Error::Config(format!(
                "HISTORY_PREFIX={} must be at most 512 characters of letters, digits and / ! - _ . * ' ( ) =, without . or .. segments",
                quoted(&history_prefix)
            )));
        }
        const MIB: u64 = 1024 * 1024;
        Ok(CompactorConfig {
            bucket_name: vars.bucket_name()?,
            region: vars.required("AWS_REGION")?,
            history_prefix,
            sort_memory: (vars.number("COMPACTION_SORT_MEMORY_MB", 256, 16..=8192)? * MIB) as usize,
            row_group_bytes: (vars.number("COMPACTION_ROW_GROUP_MB", 64, 1..=1024)? * MIB) as usize,
            part_source_bytes: vars.number("COMPACTION_PART_SOURCE_BYTES", 512 * MIB, 1..=64 * 1024 * MIB)?,
            task_queue: vars.endpoint("COMPACTION_QUEUE_URL")?,
            task_dead_letter_queue: vars.endpoint("COMPACTION_DEAD_LETTER_QUEUE_URL")?,
            history_start: history_start(vars.get("HISTORY_START_DATE"))?,
            storage_endpoint: vars.endpoint("STORAGE_ENDPOINT_URL")?,
        })
    }

    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// SDK settings of the S3 client.
    pub fn sdk(&self) -> SdkSettings {
        SdkSettings {
            region: Some(self.region.clone()),
            endpoint_url: self.storage_endpoint.clone(),
            ..SdkSettings::default()
        }
    }
}

/// What a function needs to know, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    pub service: ServiceId,
    pub table_name: String,
    pub bucket_name: String,
    pub region: String,
    pub history_prefix: String,
    pub state_prefix: String,
    pub progress_inline_bytes: usize,
    pub ended_retention: Duration,
    pub lease_duration: Duration,
    pub options: SourceOptions,
    pub max_concurrent_listings: usize,
    /// `None`: no client-side pacing.
    pub max_calls_per_second: Option<f64>,
    /// How long before the Lambda deadline paging stops.
    pub deadline_margin: Duration,
    pub personal_data: PersonalDataPolicy,
    /// The Secrets Manager secret of the personal-data key (read at cold start, never logged).
    pub personal_data_key_secret: Option<String>,
    pub sdk_max_attempts: u32,
    pub sdk_attempt_timeout: Duration,
    pub sdk_operation_timeout: Duration,
    /// The first day of the history: an event dated before it would write a partition the Glue
    /// tables never read.
    pub history_start: Timestamp,
    /// The role assumed in a scope's account other than the function's own.
    pub member_role_name: String,
    pub member_role_external_id: Option<String>,
    /// The function's dead-letter queue, and the deliveries after which a message goes there.
    pub scope_dead_letter_queue: Option<String>,
    pub scope_max_receives: u32,
    pub session_api_endpoint: Option<String>,
    pub storage_endpoint: Option<String>,
}

impl FunctionConfig {
    /// Reads the configuration through `var` (the process environment in a function).
    pub fn from_vars(service: ServiceId, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(var);
        let (table_name, bucket_name, region) = (vars.table_name()?, vars.bucket_name()?, vars.required("AWS_REGION")?);
        let options = vars.source_options(service)?;
        let (personal_data, personal_data_key_secret) = vars.personal_data()?;
        let pace = vars.number("MAX_CALLS_PER_SECOND", 10, 0..=1000)?;
        let sdk_attempt_timeout = vars.seconds("SDK_ATTEMPT_TIMEOUT_SECONDS", 10, 1..=120)?;
        let attempt = sdk_attempt_timeout.as_secs();
        let config = FunctionConfig {
            service,
            table_name,
            bucket_name,
            region,
            history_prefix: vars.get("HISTORY_PREFIX").unwrap_or_else(|| "history".into()),
            state_prefix: vars.get("STATE_PREFIX").unwrap_or_else(|| "state".into()),
            progress_inline_bytes: vars.number("PROGRESS_INLINE_BYTES", MAX_INLINE as u64, 0..=MAX_INLINE as u64)?
                as usize,
            ended_retention: Duration::from_secs(vars.number("ENDED_RETENTION_DAYS", 90, 1..=3650)? * 86_400),
            lease_duration: vars.seconds("LEASE_SECONDS", 960, 60..=86_400)?,
            options,
            max_concurrent_listings: vars.number("MAX_CONCURRENT_LISTINGS", 4, 1..=64)? as usize,
            max_calls_per_second: (pace > 0).then_some(pace as f64),
            deadline_margin: vars.seconds("DEADLINE_MARGIN_SECONDS", 60, 1..=600)?,
            personal_data,
            personal_data_key_secret,
            sdk_max_attempts: vars.number("SDK_MAX_ATTEMPTS", 8, 1..=20)? as u32,
            sdk_attempt_timeout,
            sdk_operation_timeout: vars.seconds("SDK_OPERATION_TIMEOUT_SECONDS", 2 * attempt, attempt..=900)?,
            history_start: history_start(vars.get("HISTORY_START_DATE"))?,
            member_role_name: vars.role_word("MEMBER_ROLE_NAME", 64)?.unwrap_or_else(|| DEFAULT_MEMBER_ROLE.into()),
            member_role_external_id: vars.role_word("MEMBER_ROLE_EXTERNAL_ID", 1224)?,
            scope_dead_letter_queue: vars.endpoint("SCOPE_DEAD_LETTER_QUEUE_URL")?,
            scope_max_receives: vars.number("SCOPE_MAX_RECEIVES", 3, 1..=10)? as u32,
            session_api_endpoint: vars.endpoint("SESSION_API_ENDPOINT_URL")?,
            storage_endpoint: vars.endpoint("STORAGE_ENDPOINT_URL")?,
        };
        config.check_together()?;
        Ok(config)
    }

    /// The checks that take more than one value.
    fn check_together(&self) -> Result<()> {
        if self.deadline_margin <= self.failure_reserve() {
            return Err(Error::Config(format!(
                "DEADLINE_MARGIN_SECONDS={} leaves no time to write a part: it must be above the {} s kept to record a failure (twice SDK_ATTEMPT_TIMEOUT_SECONDS, plus one)",
                self.deadline_margin.as_secs(),
                self.failure_reserve().as_secs()
            )));
        }
        // The run's own checks (prefix, retention, lease) with a placeholder account: the account
        // comes with each invocation.
        self.run_config("000000000000", &self.region).validate()
    }

    /// The time kept before the Lambda deadline for recording a failure (the manifest, the
    /// uploads, the lease): two attempts of a call and a second, so a first attempt on a dead
    /// connection still leaves one.
    pub fn failure_reserve(&self) -> Duration {
        2 * self.sdk_attempt_timeout + Duration::from_secs(1)
    }

    pub fn from_env(service: ServiceId) -> Result<Self> {
        Self::from_vars(service, |name| std::env::var(name).ok())
    }

    /// The run settings for an invocation in `account_id` and `region`.
    pub fn run_config(&self, account_id: &str, region: &str) -> crate::run::RunConfig {
        let mut run = crate::run::RunConfig::new(account_id, region);
        run.history_prefix = self.history_prefix.clone();
        run.state_prefix = self.state_prefix.clone();
        run.progress_inline_bytes = self.progress_inline_bytes;
        run.ended_retention = self.ended_retention;
        run.lease_duration = self.lease_duration;
        run.max_calls_per_second = self.max_calls_per_second;
        run.max_concurrent_listings = self.max_concurrent_listings;
        run
    }

    /// SDK settings of the session API clients.
    pub fn session_api_sdk(&self) -> SdkSettings {
        self.sdk_settings(self.session_api_endpoint.clone())
    }

    /// SDK settings of the DynamoDB and S3 clients.
    pub fn storage_sdk(&self) -> SdkSettings {
        self.sdk_settings(self.storage_endpoint.clone())
    }

    fn sdk_settings(&self, endpoint_url: Option<String>) -> SdkSettings {
        SdkSettings {
            region: Some(self.region.clone()),
            endpoint_url,
            max_attempts: self.sdk_max_attempts,
            attempt_timeout: self.sdk_attempt_timeout,
            operation_timeout: self.sdk_operation_timeout,
            ..SdkSettings::default()
        }
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
        Ok(PlanConfig { accounts, exclude: exclude.into_iter().collect(), regions, queues })
    }
}

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

/// A function's environment, each variable read with its check: trimmed, and empty as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<String> {
        self.get(name).ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    /// A whole number in `range`, `default` when unset.
    fn number(&self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64> {
        let Some(text) = self.get(name) else { return Ok(default) };
        let value: u64 =
            text.parse().map_err(|_| Error::Config(format!("{name}={} is not a whole number", quoted(&text))))?;
        if !range.contains(&value) {
            let (start, end) = (range.start(), range.end());
            return Err(Error::Config(format!("{name}={value} is out of range: {start} to {end}")));
        }
        Ok(value)
    }

    fn seconds(&self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<Duration> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// A role name or ExternalId: 2 to `limit` of letters, digits and `+=,.@-` (and `:/` in an
    /// ExternalId), as IAM and STS take them.
    fn role_word(&self, name: &str, limit: usize) -> Result<Option<String>> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let extra = if limit > 64 { "+=,.@-_:/" } else { "+=,.@-_" };
        if !(2..=limit).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        {
            return Err(Error::Config(format!(
                "{name}={} must be 2 to {limit} of letters, digits and {extra}",
                quoted(&value)
            )));
        }
        Ok(Some(value))
    }

    /// A comma-separated list, its items trimmed; `None` when unset, an error when it lists nothing.
    fn list(&self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(text) = self.get(name) else { return Ok(None) };
        let items: Vec<String> =
            text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect();
        if items.is_empty() {
            return Err(Error::Config(format!("{name}={} lists nothing", quoted(&text))));
        }
        Ok(Some(items))
    }

    fn endpoint(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(Error::Config(format!("{name}={} is not an http(s) URL", quoted(&url))))
            }
            other => Ok(other),
        }
    }

    fn table_name(&self) -> Result<String> {
        let name = self.required("TABLE_NAME")?;
        let ok = (3..=255).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::Config(format!(
                "TABLE_NAME={} is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)",
                quoted(&name)
            )));
        }
        Ok(name)
    }

    fn bucket_name(&self) -> Result<String> {
        let name = self.required("BUCKET_NAME")?;
        let ok = (3..=63).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(Error::Config(format!(
                "BUCKET_NAME={} is not an S3 bucket name (3-63 of a-z 0-9 - ., starting and ending with a letter or digit)",
                quoted(&name)
            )));
        }
        Ok(name)
    }

    /// `SOURCE_OPTIONS` with `PAGE_SIZE` over it, checked for `service`.
    fn source_options(&self, service: ServiceId) -> Result<SourceOptions> {
        let mut options = match self.get("SOURCE_OPTIONS") {
            Some(json) => serde_json::from_str::<SourceOptions>(&json)
                .map_err(|e| Error::Config(crate::error::bounded(format!("SOURCE_OPTIONS is not valid: {e}"))))?,
            None => SourceOptions::default(),
        };
        if let Some(text) = self.get("PAGE_SIZE") {
            let size = text
                .parse()
                .map_err(|_| Error::Config(format!("PAGE_SIZE={} is not a whole number", quoted(&text))))?;
            options.page_size = Some(size);
        }
        options.validate(service)?;
        Ok(options)
    }

    /// The personal-data policy and the secret of its key, required while a column is hashed.
    fn personal_data(&self) -> Result<(PersonalDataPolicy, Option<String>)> {
        let policy = PersonalDataPolicy::parse(&self.get("PERSONAL_DATA").unwrap_or_default())?;
        let secret = self.get("PERSONAL_DATA_KEY_SECRET");
        if policy.needs_key() && secret.is_none() {
            return Err(Error::Config(format!(
                "PERSONAL_DATA_KEY_SECRET is not set, and the personal data policy `{}` hashes columns: name the Secrets Manager secret of the key, or set PERSONAL_DATA to keep or drop them",
                policy.describe()
            )));
        }
        Ok((policy, secret))
    }
}

/// The member role's name when `MEMBER_ROLE_NAME` is not set: the member template's default.
pub const DEFAULT_MEMBER_ROLE: &str = "session-archiver-member";

/// The default first day of the history: the Glue tables' partition projection starts there.
pub const DEFAULT_HISTORY_START: &str = "2024-01-01";

/// `HISTORY_START_DATE`: a day (`YYYY-MM-DD`) from 2000-01-01 on.
fn history_start(value: Option<String>) -> Result<Timestamp> {
    let day = value.unwrap_or_else(|| DEFAULT_HISTORY_START.to_owned());
    let start = Timestamp::parse(&format!("{day}T00:00:00Z"))
        .ok()
        .filter(|start| start.day() == day && start.as_str() >= "2000-01-01")
        .ok_or_else(|| {
            Error::Config(format!("HISTORY_START_DATE={} is not a day (YYYY-MM-DD) from 2000-01-01 on", quoted(&day)))
        })?;
    Ok(start)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = HashMap::from([
            ("TABLE_NAME".to_owned(), "session-archiver-sessions".to_owned()),
            ("BUCKET_NAME".to_owned(), "session-archiver-history-123".to_owned()),
            ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
            ("PERSONAL_DATA_KEY_SECRET".to_owned(), "session-archiver/personal-data-key".to_owned()),
        ]);
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_fill_what_is_not_set() {
        let config = FunctionConfig::from_vars(ServiceId::IvsStreamSessions, vars(&[])).unwrap();
        assert_eq!(config.history_prefix, "history");
        assert_eq!(config.ended_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(config.max_calls_per_second, Some(10.0));
        assert_eq!(config.options, SourceOptions::default());
        assert_eq!(config.session_api_endpoint, None);
        assert_eq!(
            (config.sdk_attempt_timeout, config.sdk_operation_timeout),
            (Duration::from_secs(10), Duration::from_secs(20))
        );
        assert_eq!(config.failure_reserve(), Duration::from_secs(21));
        assert_eq!(config.history_start.as_str(), "2024-01-01T00:00:00Z");
        let storage = config.storage_sdk();
        assert_eq!(
            (storage.attempt_timeout, storage.operation_timeout),
            (Duration::from_secs(10), Duration::from_secs(20))
        );
    }

    #[test]
    fn options_and_endpoints_are_read() {
        let config = FunctionConfig::from_vars(
            ServiceId::ChimeProxySessions,
            vars(&[
                ("SOURCE_OPTIONS", r#"{"proxy_status": "Open"}"#),
                ("PAGE_SIZE", "50"),
                ("MAX_CALLS_PER_SECOND", "0"),
                ("SESSION_API_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ]),
        )
        .unwrap();
        assert_eq!(config.options.proxy_status.as_deref(), Some("Open"));
        assert_eq!(config.options.page_size, Some(50));
        assert_eq!(config.max_calls_per_second, None);
        assert_eq!(config.session_api_sdk().endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(config.storage_sdk().endpoint_url, None);
    }

    #[test]
    fn each_bad_value_is_refused_naming_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("TABLE_NAME", "")], "TABLE_NAME is not set"),
            (&[("TABLE_NAME", "a b")], "TABLE_NAME=`a b` is not a DynamoDB table name"),
            (&[("BUCKET_NAME", "My_Bucket")], "BUCKET_NAME=`My_Bucket` is not an S3 bucket name"),
            (&[("AWS_REGION", "")], "AWS_REGION is not set"),
            (&[("ENDED_RETENTION_DAYS", "ninety")], "ENDED_RETENTION_DAYS=`ninety` is not a whole number"),
            (&[("ENDED_RETENTION_DAYS", "0")], "ENDED_RETENTION_DAYS=0 is out of range: 1 to 3650"),
            (&[("LEASE_SECONDS", "10")], "LEASE_SECONDS=10 is out of range: 60 to 86400"),
            (&[("PAGE_SIZE", "500")], "page_size 500 is out of range for ivs-stream-sessions: 1 to 100"),
            (&[("PAGE_SIZE", "x")], "PAGE_SIZE=`x` is not a whole number"),
            (&[("SOURCE_OPTIONS", "{\"parent\": []}")], "SOURCE_OPTIONS is not valid: unknown field `parent`"),
            (&[("SOURCE_OPTIONS", "{\"user_id\": \"u\"}")], "`user_id` does not apply to ivs-stream-sessions"),
            (&[("MAX_CALLS_PER_SECOND", "-1")], "MAX_CALLS_PER_SECOND=`-1` is not a whole number"),
            (&[("DEADLINE_MARGIN_SECONDS", "0")], "DEADLINE_MARGIN_SECONDS=0 is out of range: 1 to 600"),
            (&[("SDK_MAX_ATTEMPTS", "0")], "SDK_MAX_ATTEMPTS=0 is out of range: 1 to 20"),
            (&[("MAX_CONCURRENT_LISTINGS", "100")], "MAX_CONCURRENT_LISTINGS=100 is out of range: 1 to 64"),
            (
                &[("STORAGE_ENDPOINT_URL", "localhost:4566")],
                "STORAGE_ENDPOINT_URL=`localhost:4566` is not an http(s) URL",
            ),
            (&[("HISTORY_PREFIX", "a/../b")], "history prefix `a/../b`"),
            (&[("STATE_PREFIX", "history")], "state prefix `history` must be set, and apart from the history prefix"),
            (&[("PROGRESS_INLINE_BYTES", "400000")], "PROGRESS_INLINE_BYTES=400000 is out of range: 0 to 389120"),
            (&[("PERSONAL_DATA", "email=hash")], "`email` is not a personal-data column"),
            (&[("PERSONAL_DATA", "user_id=encrypt")], "`encrypt` is not keep, hash or drop"),
            (&[("PERSONAL_DATA_KEY_SECRET", "")], "PERSONAL_DATA_KEY_SECRET is not set"),
            (&[("SDK_ATTEMPT_TIMEOUT_SECONDS", "0")], "SDK_ATTEMPT_TIMEOUT_SECONDS=0 is out of range: 1 to 120"),
            (
                &[("SDK_ATTEMPT_TIMEOUT_SECONDS", "5"), ("SDK_OPERATION_TIMEOUT_SECONDS", "4")],
                "SDK_OPERATION_TIMEOUT_SECONDS=4 is out of range: 5 to 900",
            ),
            (
                &[("SDK_ATTEMPT_TIMEOUT_SECONDS", "30")],
                "DEADLINE_MARGIN_SECONDS=60 leaves no time to write a part: it must be above the 61 s kept",
            ),
            (&[("HISTORY_START_DATE", "1999-12-31")], "HISTORY_START_DATE=`1999-12-31` is not a day"),
            (&[("HISTORY_START_DATE", "2024-02-30")], "HISTORY_START_DATE=`2024-02-30` is not a day"),
            (&[("HISTORY_START_DATE", "yesterday")], "HISTORY_START_DATE=`yesterday` is not a day"),
            (&[("PAGE_SIZE", &"9".repeat(100))], "PAGE_SIZE=`99999999"),
            (&[("MEMBER_ROLE_NAME", "role with spaces")], "MEMBER_ROLE_NAME=`role with spaces` must be 2 to 64"),
            (&[("MEMBER_ROLE_NAME", &"r".repeat(65))], "MEMBER_ROLE_NAME=`rrrr"),
            (&[("MEMBER_ROLE_EXTERNAL_ID", "x")], "MEMBER_ROLE_EXTERNAL_ID=`x` must be 2 to 1224"),
            (&[("SCOPE_DEAD_LETTER_QUEUE_URL", "dlq")], "SCOPE_DEAD_LETTER_QUEUE_URL=`dlq` is not an http(s) URL"),
            (&[("SCOPE_MAX_RECEIVES", "0")], "SCOPE_MAX_RECEIVES=0 is out of range: 1 to 10"),
        ];
        for (pairs, expected) in cases {
            let err = FunctionConfig::from_vars(ServiceId::IvsStreamSessions, vars(pairs)).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("invalid configuration: "), "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
            assert!(message.len() < 400, "a bad value is quoted, not echoed: {message}");
            assert!(!err.is_retryable());
        }
    }

    fn plan_vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = HashMap::from([
            ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
            ("SCOPE_QUEUES".to_owned(), "ivs-stream-sessions=https://sqs.eu-west-1.amazonaws.com/1/q".to_owned()),
        ]);
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name| map.get(name).cloned()
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

    #[test]
    fn the_compactor_takes_its_defaults_and_refuses_a_bad_value_naming_it() {
        let defaults = CompactorConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(
            (defaults.part_source_bytes, defaults.task_queue, defaults.task_dead_letter_queue),
            (512 << 20, None, None)
        );
        let queued = CompactorConfig::from_vars(vars(&[
            ("COMPACTION_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/compaction"),
            ("COMPACTION_PART_SOURCE_BYTES", "1"),
        ]))
        .unwrap();
        assert_eq!(queued.part_source_bytes, 1);
        assert!(queued.task_queue.is_some_and(|url| url.ends_with("/compaction")));
        for (pairs, expected) in [
            (&[("COMPACTION_PART_SOURCE_BYTES", "0")], "COMPACTION_PART_SOURCE_BYTES=0 is out of range"),
            (&[("COMPACTION_PART_SOURCE_BYTES", "1MB")], "COMPACTION_PART_SOURCE_BYTES"),
            (&[("COMPACTION_QUEUE_URL", "compaction")], "COMPACTION_QUEUE_URL=`compaction` is not an http(s) URL"),
            (
                &[("COMPACTION_DEAD_LETTER_QUEUE_URL", "dlq")],
                "COMPACTION_DEAD_LETTER_QUEUE_URL=`dlq` is not an http(s) URL",
            ),
        ] {
            let err = CompactorConfig::from_vars(vars(pairs)).unwrap_err();
            assert!(err.to_string().contains(expected), "{pairs:?}: {err}");
        }
    }
}

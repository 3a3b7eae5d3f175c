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
//! | `SCOPE_MAX_RECEIVES` | `3` | the tries a scope gets: the scope queue's `maxReceiveCount`, and the deliveries after which a scope of a batch that keeps failing goes to the dead-letter queue (`ScopeMaxReceives`) |
//! | `SCOPE_QUEUE_URL` | none | the function's own scope queue, where a scope of a batch that failed is sent again alone, and the scopes a batch had no time to start (set by the template); none: a batch with a failed scope comes back whole |
//! | `SCOPE_RETRY_SECONDS` | `60` | how long a failed scope of a batch waits for its second try, 0 to 900; twice as long for each further one, at most 900 |
//! | `SCOPES_AT_ONCE` | `8` | scopes of a batch archived side by side, 1 to 64 (`ScopesAtOnce`) |
//! | `SESSION_API_ENDPOINT_URL` | none | send the session API calls there (the local emulator) |
//! | `STORAGE_ENDPOINT_URL` | none | send DynamoDB, S3, Secrets Manager, STS, SQS and Organizations calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | region of the APIs, table and bucket |

use std::time::Duration;

use crate::aws::SdkSettings;
use crate::error::quoted;
use crate::error::{Error, Result};
use crate::lambda::env::{history_start, Vars};
use crate::model::{Scope, ServiceId, Timestamp};
use crate::personal::PersonalDataPolicy;
use crate::sources::SourceOptions;
use crate::table::progress::MAX_INLINE_PROGRESS as MAX_INLINE;

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
    /// The function's own scope queue, where failed and unstarted scopes of a batch go again.
    pub scope_queue: Option<String>,
    /// How long a failed scope of a batch waits for its second try.
    pub scope_retry_delay: Duration,
    /// Scopes of a batch archived side by side.
    pub scopes_at_once: usize,
    pub session_api_endpoint: Option<String>,
    pub storage_endpoint: Option<String>,
}

impl FunctionConfig {
    /// Reads the configuration through `var` (the process environment in a function).
    pub fn from_vars(service: ServiceId, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(var);
        let (table_name, bucket_name, region) = (vars.table_name()?, vars.bucket_name()?, vars.required("AWS_REGION")?);
        let options = source_options(&vars, service)?;
        let (personal_data, personal_data_key_secret) = personal_data(&vars)?;
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
            scope_queue: vars.endpoint("SCOPE_QUEUE_URL")?,
            scope_retry_delay: vars.seconds("SCOPE_RETRY_SECONDS", 60, 0..=900)?,
            scopes_at_once: vars.number("SCOPES_AT_ONCE", 8, 1..=64)? as usize,
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
        // The run's own checks (prefix, retention, lease), and the region's name with a
        // placeholder account: the account comes with each invocation.
        let home = Scope { service: self.service, account_id: "000000000000".into(), region: self.region.clone() };
        crate::run::config::validate_scope(&home)?;
        self.run_config().validate()
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

    /// The run settings of an invocation.
    pub fn run_config(&self) -> crate::run::RunConfig {
        let mut run = crate::run::RunConfig::new();
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

/// `SOURCE_OPTIONS` with `PAGE_SIZE` over it, checked for `service`.
fn source_options(vars: &Vars<impl Fn(&str) -> Option<String>>, service: ServiceId) -> Result<SourceOptions> {
    let mut options = match vars.get("SOURCE_OPTIONS") {
        Some(json) => serde_json::from_str::<SourceOptions>(&json)
            .map_err(|e| Error::Config(crate::error::bounded(format!("SOURCE_OPTIONS is not valid: {e}"))))?,
        None => SourceOptions::default(),
    };
    if let Some(text) = vars.get("PAGE_SIZE") {
        let size =
            text.parse().map_err(|_| Error::Config(format!("PAGE_SIZE={} is not a whole number", quoted(&text))))?;
        options.page_size = Some(size);
    }
    options.validate(service)?;
    Ok(options)
}

/// The personal-data policy and the secret of its key, required while a column is hashed.
fn personal_data(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<(PersonalDataPolicy, Option<String>)> {
    let policy = PersonalDataPolicy::parse(&vars.get("PERSONAL_DATA").unwrap_or_default())?;
    let secret = vars.get("PERSONAL_DATA_KEY_SECRET");
    if policy.needs_key() && secret.is_none() {
        return Err(Error::Config(format!(
            "PERSONAL_DATA_KEY_SECRET is not set, and the personal data policy `{}` hashes columns: name the Secrets Manager secret of the key, or set PERSONAL_DATA to keep or drop them",
            policy.describe()
        )));
    }
    Ok((policy, secret))
}

/// The member role's name when `MEMBER_ROLE_NAME` is not set: the member template's default.
pub const DEFAULT_MEMBER_ROLE: &str = "session-archiver-member";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::env::fixture;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let defaults = [
            ("TABLE_NAME", "session-archiver-sessions"),
            ("BUCKET_NAME", "session-archiver-history-123"),
            ("AWS_REGION", "eu-west-1"),
            ("PERSONAL_DATA_KEY_SECRET", "session-archiver/personal-data-key"),
        ];
        fixture(&defaults, pairs)
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
}

//! How a run is set up: the settings a function validates once at cold start.

use std::time::Duration;

use crate::error::{quoted, Error, Result};
use crate::model::Scope;
use crate::personal::PersonalData;

/// How a run is set up, validated once at cold start.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Key prefix of the history objects in the bucket (may be empty).
    pub history_prefix: String,
    /// Key prefix of the listings' state in the bucket (a run's progress too large for its item),
    /// apart from the history.
    pub state_prefix: String,
    /// The largest encoded progress kept in its DynamoDB item; a larger one goes to an object.
    pub progress_inline_bytes: usize,
    /// How long an ended session stays in the table (its TTL).
    pub ended_retention: Duration,
    /// How long a run holds the lease: longer than the function's timeout.
    pub lease_duration: Duration,
    /// Size of a multipart part; an object goes multipart once past it.
    pub upload_part_size: usize,
    /// How many recent runs are checked for unfinished ones whose changes must be recorded again.
    pub unfinished_runs_window: i32,
    /// Listings (parents) read at the same time.
    pub max_concurrent_listings: usize,
    /// Client-side pace of list calls; `None` for none (the SDK's adaptive retry still slows down
    /// under throttling).
    pub max_calls_per_second: Option<f64>,
    /// What happens to user ids and phone numbers. [`RunConfig::new`] keeps them; a function
    /// sets its policy and key from `PERSONAL_DATA` and `PERSONAL_DATA_KEY_SECRET`.
    pub personal_data: PersonalData,
}

impl RunConfig {
    pub fn new() -> Self {
        RunConfig {
            history_prefix: "history".into(),
            state_prefix: "state".into(),
            progress_inline_bytes: crate::table::progress::MAX_INLINE_PROGRESS,
            ended_retention: Duration::from_secs(90 * 86_400),
            lease_duration: Duration::from_secs(16 * 60),
            upload_part_size: crate::history::DEFAULT_UPLOAD_PART_SIZE,
            unfinished_runs_window: 50,
            max_concurrent_listings: 4,
            max_calls_per_second: None,
            personal_data: PersonalData::keep_all(),
        }
    }

    /// Checks every value, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        for (what, prefix) in [("history", &self.history_prefix), ("state", &self.state_prefix)] {
            if !is_key_prefix(prefix) {
                return bad(format!(
                    "{what} prefix {} must be at most 512 characters of letters, digits and / ! - _ . * ' ( ) =, without . or .. segments",
                    quoted(prefix)
                ));
            }
        }
        if self.state_prefix.is_empty() || self.state_prefix == self.history_prefix {
            return bad(format!(
                "state prefix {} must be set, and apart from the history prefix {}",
                quoted(&self.state_prefix),
                quoted(&self.history_prefix)
            ));
        }
        if self.progress_inline_bytes > crate::table::progress::MAX_INLINE_PROGRESS {
            return bad(format!(
                "a progress kept in its item must be at most {} bytes, not {}",
                crate::table::progress::MAX_INLINE_PROGRESS,
                self.progress_inline_bytes
            ));
        }
        let days = self.ended_retention.as_secs() / 86_400;
        if !(1..=3650).contains(&days) || !self.ended_retention.as_secs().is_multiple_of(86_400) {
            return bad(format!(
                "ended-session retention must be 1 to 3650 whole days, not {:?}",
                self.ended_retention
            ));
        }
        if !(60..=86_400).contains(&self.lease_duration.as_secs()) {
            return bad(format!("lease duration must be 60 s to 24 h, not {:?}", self.lease_duration));
        }
        if !(crate::history::S3_MIN_UPLOAD_PART_SIZE..=5 * 1024 * 1024 * 1024).contains(&self.upload_part_size) {
            return bad(format!("part size must be 5 MiB to 5 GiB, not {} bytes", self.upload_part_size));
        }
        if !(1..=64).contains(&self.max_concurrent_listings) {
            return bad(format!("concurrent listings must be 1 to 64, not {}", self.max_concurrent_listings));
        }
        if self.max_calls_per_second.is_some_and(|pace| !(pace > 0.0 && pace <= 1000.0)) {
            return bad(format!(
                "calls per second must be above 0 and at most 1000, not {:?}",
                self.max_calls_per_second
            ));
        }
        if !(1..=1000).contains(&self.unfinished_runs_window) {
            return bad(format!("unfinished runs window must be 1 to 1000, not {}", self.unfinished_runs_window));
        }
        Ok(())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::new()
    }
}

/// Checks the scope a run archives: its account id and region name.
pub fn validate_scope(scope: &Scope) -> Result<()> {
    if !crate::model::is_account_id(&scope.account_id) {
        return Err(Error::Config(format!("account id {} is not 12 digits", quoted(&scope.account_id))));
    }
    if !crate::model::is_region(&scope.region) {
        return Err(Error::Config(format!(
            "region {} is not an AWS region name like eu-west-1",
            quoted(&scope.region)
        )));
    }
    Ok(())
}

/// An S3 key prefix the archiver writes under: short, of key-safe characters, no `.` or `..`
/// segment.
pub fn is_key_prefix(prefix: &str) -> bool {
    prefix.len() <= 512
        && !prefix.split('/').any(|part| part == "." || part == "..")
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/!-_.*'()=".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        RunConfig::new().validate().unwrap();
    }

    #[test]
    fn a_bad_scope_is_named() {
        let base = Scope {
            service: crate::model::ServiceId::IvsStreamSessions,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
        };
        validate_scope(&base).unwrap();
        let cases = [
            (Scope { account_id: "12345".into(), ..base.clone() }, "account id `12345` is not 12 digits"),
            (Scope { region: "EU West".into(), ..base.clone() }, "region `EU West`"),
        ];
        for (scope, expected) in cases {
            let message = validate_scope(&scope).unwrap_err().to_string();
            assert!(message.starts_with("invalid configuration: "), "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn each_bad_config_value_is_named() {
        let base = RunConfig::new();
        let cases: Vec<(RunConfig, &str)> = vec![
            (RunConfig { history_prefix: "a/../b".into(), ..base.clone() }, "history prefix `a/../b`"),
            (RunConfig { history_prefix: "with space".into(), ..base.clone() }, "history prefix `with space`"),
            (RunConfig { state_prefix: "a/./b".into(), ..base.clone() }, "state prefix `a/./b`"),
            (
                RunConfig { state_prefix: "history".into(), ..base.clone() },
                "state prefix `history` must be set, and apart from the history prefix `history`",
            ),
            (
                RunConfig { progress_inline_bytes: 400_000, ..base.clone() },
                "a progress kept in its item must be at most 389120 bytes, not 400000",
            ),
            (
                RunConfig { ended_retention: Duration::from_secs(0), ..base.clone() },
                "retention must be 1 to 3650 whole days",
            ),
            (
                RunConfig { ended_retention: Duration::from_secs(3600), ..base.clone() },
                "retention must be 1 to 3650 whole days",
            ),
            (
                RunConfig { lease_duration: Duration::from_secs(5), ..base.clone() },
                "lease duration must be 60 s to 24 h",
            ),
            (RunConfig { upload_part_size: 1024, ..base.clone() }, "part size must be 5 MiB to 5 GiB"),
            (RunConfig { unfinished_runs_window: 0, ..base.clone() }, "unfinished runs window must be 1 to 1000"),
        ];
        for (config, expected) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.starts_with("invalid configuration: "), "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }
}

//! The member role: what a function assumes to read a scope in another account of the
//! organization. `sts:AssumeRole` on `arn:<partition>:iam::<account>:role/<MEMBER_ROLE_NAME>`,
//! with the deployment's ExternalId and a session name naming the run (CloudTrail in the member
//! account shows which run read what). Credentials are kept per account and used again until
//! five minutes before they expire, so a warm function assumes a role once an hour per account.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use crate::error::{Error, Result};

/// The IAM action a function calls to read another account.
pub const IAM_ACTIONS: [&str; 1] = ["sts:AssumeRole"];

/// Credentials this close to their expiry are not used again: a run may take fifteen minutes, and
/// the SDK signs its last calls with them.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The longest a role session name may be (`[\w+=,.@-]`, 2 to 64).
const SESSION_NAME_LIMIT: usize = 64;

/// The member roles of a deployment: one name in every account, one ExternalId.
#[derive(Debug)]
pub struct MemberRoles {
    sts: aws_sdk_sts::Client,
    /// `aws`, `aws-cn` or `aws-us-gov`: the function's own.
    partition: String,
    role_name: String,
    external_id: Option<String>,
    kept: tokio::sync::Mutex<HashMap<String, Credentials>>,
}

impl MemberRoles {
    pub fn new(sts: aws_sdk_sts::Client, partition: &str, role_name: &str, external_id: Option<String>) -> Self {
        MemberRoles {
            sts,
            partition: partition.to_owned(),
            role_name: role_name.to_owned(),
            external_id,
            kept: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn role_arn(&self, account_id: &str) -> String {
        format!("arn:{}:iam::{account_id}:role/{}", self.partition, self.role_name)
    }

    /// Credentials of the member role in `account_id`: kept ones while they last, else new ones
    /// from `sts:AssumeRole` with a session name naming `run_id`.
    pub async fn credentials(&self, account_id: &str, run_id: &str) -> Result<Credentials> {
        let mut kept = self.kept.lock().await;
        if let Some(credentials) = kept.get(account_id).filter(|c| fresh(c, SystemTime::now())) {
            return Ok(credentials.clone());
        }
        let role_arn = self.role_arn(account_id);
        let mut call = self.sts.assume_role().role_arn(&role_arn).role_session_name(session_name(run_id));
        if let Some(external_id) = &self.external_id {
            call = call.external_id(external_id);
        }
        let output = call
            .send()
            .await
            .map_err(|e| explain(Error::from_storage_sdk("STS AssumeRole", format!("role {role_arn}"), e)))?;
        let issued = output.credentials().ok_or_else(|| Error::Storage {
            operation: "STS AssumeRole",
            resource: format!("role {role_arn}"),
            code: "MalformedResponse".into(),
            message: "the answer holds no credentials".into(),
            status: None,
            retryable: true,
        })?;
        let expiry = SystemTime::try_from(*issued.expiration()).ok();
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            expiry,
            "session-archiver-member-role",
        );
        kept.insert(account_id.to_owned(), credentials.clone());
        Ok(credentials)
    }
}

/// Whether credentials can be used for a run starting at `now`.
fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials.expiry().is_some_and(|expiry| expiry > now + REFRESH_BEFORE_EXPIRY)
}

/// `session-archiver-<run id>`, cut to what STS takes (a run id's characters are all allowed).
fn session_name(run_id: &str) -> String {
    let mut name = format!("session-archiver-{run_id}");
    name.truncate(SESSION_NAME_LIMIT);
    name
}

/// An AccessDenied from AssumeRole says what to check: STS does not tell a missing role from one
/// that does not trust the caller.
fn explain(err: Error) -> Error {
    match err {
        Error::Storage { operation, resource, code, message, status, retryable } if code == "AccessDenied" => {
            let message = format!(
                "{message} (is the member role deployed in this account, trusting this function with this ExternalId?)"
            );
            Error::Storage { operation, resource, code, message, status, retryable }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_name_names_the_run_within_what_sts_takes() {
        assert_eq!(session_name("evt-1"), "session-archiver-evt-1");
        let long = session_name(&"7".repeat(128));
        assert_eq!(long.len(), SESSION_NAME_LIMIT);
        assert!(long.starts_with("session-archiver-777"));
    }

    #[test]
    fn credentials_are_used_again_until_five_minutes_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let expiring = |minutes: u64| {
            Credentials::new("AKID", "secret", None, Some(now + Duration::from_secs(minutes * 60)), "test")
        };
        assert!(fresh(&expiring(60), now));
        assert!(!fresh(&expiring(5), now));
        assert!(!fresh(&Credentials::new("AKID", "secret", None, None, "test"), now));
    }

    #[test]
    fn an_access_denied_says_what_to_check() {
        let denied = Error::Storage {
            operation: "STS AssumeRole",
            resource: "role arn:aws:iam::111122223333:role/session-archiver-member".into(),
            code: "AccessDenied".into(),
            message: "User: arn:aws:sts::999999999999:assumed-role/f/x is not authorized to perform: sts:AssumeRole"
                .into(),
            status: Some(403),
            retryable: false,
        };
        let text = explain(denied).to_string();
        assert!(text.starts_with("STS AssumeRole on role arn:aws:iam::111122223333:role/session-archiver-member failed: AccessDenied: User:"), "{text}");
        assert!(
            text.ends_with(
                "(is the member role deployed in this account, trusting this function with this ExternalId?)"
            ),
            "{text}"
        );
    }
}

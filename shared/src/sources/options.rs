//! What a run may ask of a source: explicit parents, page size and the documented filters.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::ServiceId;
use crate::services::is_workspace_id;

/// Options of a source, from the configuration or a replay event. Every field is optional; a
/// field that does not apply to the service is refused rather than ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// Parents to list instead of discovering them: pool ids, channel ARNs or voice connector ids.
    #[serde(default)]
    pub parents: Vec<String>,
    /// Page size; defaults to the largest the API allows.
    #[serde(default)]
    pub page_size: Option<i32>,
    /// `workspaces-pool-sessions`: only this user's sessions (UserId).
    #[serde(default)]
    pub user_id: Option<String>,
    /// `workspaces-connection-status`: only these WorkSpaces (asked 25 per call).
    #[serde(default)]
    pub workspace_ids: Vec<String>,
    /// `chime-proxy-sessions`: Open | InProgress | Closed.
    #[serde(default)]
    pub proxy_status: Option<String>,
    /// `gamelift-stream-sessions`: ACTIVATING | ACTIVE | CONNECTED | … | TERMINATED | ERROR.
    #[serde(default)]
    pub stream_status: Option<String>,
    /// `gamelift-stream-sessions`: SUCCEEDED | FAILED | PENDING.
    #[serde(default)]
    pub export_files_status: Option<String>,
}

pub const PROXY_SESSION_STATUSES: &[&str] = &["Open", "InProgress", "Closed"];
pub const STREAM_SESSION_STATUSES: &[&str] = &[
    "ACTIVATING",
    "ACTIVE",
    "CONNECTED",
    "PENDING_CLIENT_RECONNECTION",
    "RECONNECTING",
    "TERMINATING",
    "TERMINATED",
    "ERROR",
];
pub const EXPORT_FILES_STATUSES: &[&str] = &["SUCCEEDED", "FAILED", "PENDING"];

impl SourceOptions {
    /// A short, stable name of the options: a run that stopped early is carried on only by an
    /// invocation with the same ones (a replay for one pool does not pick up a scheduled run).
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        hex::encode(&Sha256::digest(json.as_bytes())[..8])
    }

    /// Whether a listing returns only some of its parent's sessions (a filter is set): then a
    /// session missing from it may still be live, and nothing is marked ended.
    pub fn narrows_listings(&self) -> bool {
        self.user_id.is_some()
            || !self.workspace_ids.is_empty()
            || self.proxy_status.is_some()
            || self.stream_status.is_some()
            || self.export_files_status.is_some()
    }

    /// Checks every option against the API's documented limits and patterns.
    pub fn validate(&self, service: ServiceId) -> Result<()> {
        self.validate_parents(service)?;
        self.validate_page_size(service)?;
        self.validate_filters(service)
    }

    fn validate_parents(&self, service: ServiceId) -> Result<()> {
        if self.parents.is_empty() {
            return Ok(());
        }
        let Some(parents) = &service.spec().parents else {
            return Err(does_not_apply("parents", service));
        };
        if let Some(bad) = self.parents.iter().find(|p| !(parents.is_valid)(p)) {
            let expected = parents.looks_like;
            return Err(Error::Config(format!("parent {} is not {expected}", crate::error::quoted(bad))));
        }
        let mut unique = self.parents.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != self.parents.len() {
            return Err(Error::Config("`parents` names a parent twice".into()));
        }

        Ok(())
    }

    fn validate_page_size(&self, service: ServiceId) -> Result<()> {
        if let Some(size) = self.page_size {
            match service.max_page_size() {
                None => return Err(does_not_apply("page_size", service)),
                Some(max) if !(1..=max).contains(&size) => {
                    return Err(Error::Config(format!("page_size {size} is out of range for {service}: 1 to {max}")));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn validate_filters(&self, service: ServiceId) -> Result<()> {
        let given = [
            ("user_id", self.user_id.is_some()),
            ("workspace_ids", !self.workspace_ids.is_empty()),
            ("proxy_status", self.proxy_status.is_some()),
            ("stream_status", self.stream_status.is_some()),
            ("export_files_status", self.export_files_status.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(field, set)| *set && !service.spec().filters.contains(field)) {
            return Err(does_not_apply(field, service));
        }
        if self.user_id.as_ref().is_some_and(|user| !(2..=128).contains(&user.chars().count())) {
            return Err(Error::Config("user_id must be 2 to 128 characters".into()));
        }
        if let Some(bad) = self.workspace_ids.iter().find(|id| !is_workspace_id(id)) {
            return Err(Error::Config(format!(
                "workspace id {} is not a WorkSpace id (^ws-[0-9a-z]{{8,63}}$)",
                crate::error::quoted(bad)
            )));
        }
        check_enum("proxy_status", &self.proxy_status, PROXY_SESSION_STATUSES)?;
        check_enum("stream_status", &self.stream_status, STREAM_SESSION_STATUSES)?;
        check_enum("export_files_status", &self.export_files_status, EXPORT_FILES_STATUSES)
    }

    /// The listings of the parents named in the options, which replace discovery.
    pub fn explicit_parents(&self) -> Option<super::Discovery> {
        (!self.parents.is_empty()).then(|| super::Discovery {
            listings: self.parents.iter().map(super::Listing::parent).collect(),
            api_calls: 0,
        })
    }

    /// The page size to ask for: the option, or the API's largest.
    pub fn page_size_for(&self, service: ServiceId) -> Option<i32> {
        self.page_size.or(service.max_page_size())
    }
}

/// An option given to a service it does not apply to.
fn does_not_apply(field: &str, service: ServiceId) -> Error {
    Error::Config(format!("`{field}` does not apply to {service}"))
}

/// A status filter: one of the values the API documents.
fn check_enum(field: &str, value: &Option<String>, allowed: &[&str]) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    if !allowed.contains(&value.as_str()) {
        return Err(Error::Config(format!(
            "{field} {} is not one of {}",
            crate::error::quoted(value),
            allowed.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(service: ServiceId, options: SourceOptions) -> String {
        options.validate(service).unwrap_err().to_string()
    }

    #[test]
    fn bad_options_get_a_clear_error_naming_the_field() {
        use ServiceId::*;
        let parents =
            |p: &[&str]| SourceOptions { parents: p.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        assert!(err(WorkspacesPoolSessions, parents(&["wspool-bad"])).contains("parent `wspool-bad` is not a pool id"));
        assert!(err(IvsStreamSessions, parents(&["channel-1"])).contains("parent `channel-1` is not a channel ARN"));
        assert!(err(GameliftStreamSessions, parents(&["x"]))
            .contains("`parents` does not apply to gamelift-stream-sessions"));
        assert!(err(WorkspacesPoolSessions, parents(&["wspool-abc123def", "wspool-abc123def"]))
            .contains("names a parent twice"));
        let page = |n| SourceOptions { page_size: Some(n), ..Default::default() };
        assert!(err(WorkspacesPoolSessions, page(51))
            .contains("page_size 51 is out of range for workspaces-pool-sessions: 1 to 50"));
        assert!(err(IvsStreamSessions, page(0)).contains("1 to 100"));
        assert!(err(WorkspacesConnectionStatus, page(10)).contains("`page_size` does not apply"));
        let user = SourceOptions { user_id: Some("u".into()), ..Default::default() };
        assert!(err(WorkspacesPoolSessions, user.clone()).contains("user_id must be 2 to 128"));
        assert!(err(IvsStreamSessions, user).contains("`user_id` does not apply to ivs-stream-sessions"));
        let status = SourceOptions { proxy_status: Some("open".into()), ..Default::default() };
        assert!(err(ChimeProxySessions, status).contains("proxy_status `open` is not one of Open, InProgress, Closed"));
        let stream = SourceOptions { stream_status: Some("LIVE".into()), ..Default::default() };
        assert!(err(GameliftStreamSessions, stream).contains("stream_status `LIVE`"));
        let export = SourceOptions { export_files_status: Some("DONE".into()), ..Default::default() };
        assert!(err(GameliftStreamSessions, export).contains("export_files_status `DONE`"));
        let ws = SourceOptions { workspace_ids: vec!["ws-1".into()], ..Default::default() };
        assert!(err(WorkspacesConnectionStatus, ws).contains("workspace id `ws-1` is not a WorkSpace id"));
    }

    #[test]
    fn good_options_pass_and_page_size_defaults_to_the_largest() {
        let options = SourceOptions { proxy_status: Some("Closed".into()), ..Default::default() };
        options.validate(ServiceId::ChimeProxySessions).unwrap();
        assert_eq!(options.page_size_for(ServiceId::ChimeProxySessions), Some(100));
        assert_eq!(SourceOptions::default().page_size_for(ServiceId::WorkspacesPoolSessions), Some(50));
        assert_eq!(SourceOptions::default().page_size_for(ServiceId::WorkspacesConnectionStatus), None);
    }

    #[test]
    fn unknown_option_fields_are_refused() {
        let err = serde_json::from_str::<SourceOptions>(r#"{"parent": ["x"]}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `parent`"), "{err}");
    }
}

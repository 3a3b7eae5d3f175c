//! WorkSpaces: `DescribeWorkspacesPoolSessions` (per pool, pools from `DescribeWorkspacesPools`)
//! and `DescribeWorkspacesConnectionStatus` (account wide, or WorkspaceIds 25 per call), each
//! page's WorkSpaces described by `DescribeWorkspaces` for their user, directory and computer
//! name, which the connection status leaves out.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_workspaces::types::{Workspace, WorkspaceConnectionStatus, WorkspacesPoolSession};
use aws_sdk_workspaces::Client;

use super::api::session_client;
use super::api::{Call, Parents};
use super::{required, time, Api, Discovery, Listing, RawPage, SessionApi, SourceOptions};
use crate::aws::ThrottleCounter;
use crate::error::{CallSite, Error, Result};
use crate::model::{ServiceId, SessionRecord};

/// DescribeWorkspacesConnectionStatus accepts at most 25 WorkspaceIds per call.
pub const WORKSPACE_IDS_PER_CALL: usize = 25;

/// WorkSpaces Pools' calls.
pub struct WorkspacesPools(Client);

pub type WorkspacesPoolSessions = Api<WorkspacesPools>;

impl SessionApi for WorkspacesPools {
    const SERVICE: ServiceId = ServiceId::WorkspacesPoolSessions;

    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self {
        WorkspacesPools(session_client!(aws_sdk_workspaces, sdk, throttles))
    }

    async fn parent_page(&self, call: Call) -> Result<Parents> {
        let request = self.0.describe_workspaces_pools().set_limit(call.page_size).set_next_token(call.token);
        let out = request.send().await.map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let ids = out
            .workspaces_pools()
            .iter()
            .map(|pool| required(&call.site, "PoolId", Some(pool.pool_id())))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, out.next_token))
    }

    async fn list_page(&self, options: &SourceOptions, listing: &Listing, call: Call) -> Result<RawPage> {
        let out = self
            .0
            .describe_workspaces_pool_sessions()
            .set_pool_id(listing.parent_id.clone())
            .set_user_id(options.user_id.clone())
            .set_limit(call.page_size)
            .set_next_token(call.token)
            .send()
            .await
            .map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let sessions = out.sessions().iter().map(|s| map_pool_session(&call.site, s)).collect::<Result<Vec<_>>>()?;
        Ok(RawPage { sessions, next_token: out.next_token, lookup_calls: 0 })
    }
}

/// Maps one `WorkspacesPoolSession`; its PoolId must be the pool that was asked for.
pub fn map_pool_session(site: &CallSite, s: &WorkspacesPoolSession) -> Result<SessionRecord> {
    let session_id = required(site, "SessionId", Some(s.session_id()))?;
    let pool_id = required(site, "PoolId", Some(s.pool_id()))?;
    if site.parent.as_deref().is_some_and(|asked| asked != pool_id) {
        return Err(Error::BadPage {
            site: site.clone(),
            detail: format!("session {session_id} belongs to pool {pool_id}, not the pool asked for"),
        });
    }
    let mut r = SessionRecord::new(ServiceId::WorkspacesPoolSessions, session_id);
    r.parent_id = Some(pool_id);
    r.status = s.connection_state().map(|v| v.as_str().to_owned());
    r.started_at = time(site, "StartTime", s.start_time())?;
    r.user_id = Some(s.user_id()).filter(|u| !u.is_empty()).map(str::to_owned);
    let network = s.network_access_configuration();
    r.set("authentication_type", s.authentication_type().map(|v| v.as_str()))?
        .set("instance_id", s.instance_id())?
        .set("expiration_time", time(site, "ExpirationTime", s.expiration_time())?)?
        .set("eni_id", network.and_then(|n| n.eni_id()))?
        .set("eni_private_ip_address", network.and_then(|n| n.eni_private_ip_address()))?;
    Ok(r)
}

/// WorkSpaces' connection status calls.
pub struct WorkspacesConnections(Client);

pub type WorkspacesConnectionStatus = Api<WorkspacesConnections>;

impl SessionApi for WorkspacesConnections {
    const SERVICE: ServiceId = ServiceId::WorkspacesConnectionStatus;

    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self {
        WorkspacesConnections(session_client!(aws_sdk_workspaces, sdk, throttles))
    }

    /// The account; or the WorkSpaces named in the options, 25 a listing.
    async fn listings(api: &Api<Self>) -> Result<Discovery> {
        let ids = &api.options.workspace_ids;
        let listings = if ids.is_empty() {
            vec![Listing::account()]
        } else {
            ids.chunks(WORKSPACE_IDS_PER_CALL)
                .map(|chunk| Listing { parent_id: None, workspace_ids: chunk.to_vec() })
                .collect()
        };
        Ok(Discovery { listings, api_calls: 0 })
    }

    /// The API chooses its page size.
    async fn list_page(&self, _options: &SourceOptions, listing: &Listing, call: Call) -> Result<RawPage> {
        let ids = Some(listing.workspace_ids.clone()).filter(|ids| !ids.is_empty());
        let out = self
            .0
            .describe_workspaces_connection_status()
            .set_workspace_ids(ids)
            .set_next_token(call.token)
            .send()
            .await
            .map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let mut sessions = out
            .workspaces_connection_status()
            .iter()
            .map(|s| map_connection_status(&call.site, s))
            .collect::<Result<Vec<_>>>()?;
        let lookup_calls = self.describe(&call.site, &mut sessions).await?;
        Ok(RawPage { sessions, next_token: out.next_token, lookup_calls })
    }
}

impl WorkspacesConnections {
    /// Gives a page's WorkSpaces their user, directory and computer name from `DescribeWorkspaces`
    /// (25 ids a call, every page of each); the calls made. A WorkSpace it does not return
    /// (removed since it was listed) keeps none.
    async fn describe(&self, listed: &CallSite, sessions: &mut [SessionRecord]) -> Result<u64> {
        let site = CallSite { operation: "DescribeWorkspaces", ..listed.clone() };
        let mut described = HashMap::with_capacity(sessions.len());
        let mut calls = 0;
        for chunk in sessions.chunks(WORKSPACE_IDS_PER_CALL) {
            let ids: Vec<String> = chunk.iter().map(|s| s.session_id.clone()).collect();
            let mut guard = super::TokenGuard::default();
            let mut token = None;
            loop {
                let out = (self.0.describe_workspaces().set_workspace_ids(Some(ids.clone())))
                    .limit(WORKSPACE_IDS_PER_CALL as i32)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk(site.clone(), e))?;
                calls += 1;
                for workspace in out.workspaces() {
                    let id = required(&site, "WorkspaceId", workspace.workspace_id())?;
                    described.insert(id, workspace.clone());
                }
                match guard.advance(&site, out.next_token)? {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        for session in sessions.iter_mut() {
            if let Some(workspace) = described.get(&session.session_id) {
                describe_workspace(session, workspace)?;
            }
        }
        Ok(calls)
    }
}

/// A WorkSpace's user, directory and computer name on its connection status.
pub fn describe_workspace(session: &mut SessionRecord, workspace: &Workspace) -> Result<()> {
    session.user_id = workspace.user_name().filter(|u| !u.is_empty()).map(str::to_owned);
    session.set("directory_id", workspace.directory_id())?.set("computer_name", workspace.computer_name())?;
    Ok(())
}

/// Maps one `WorkspaceConnectionStatus`: the WorkSpace is the session, its state the status.
pub fn map_connection_status(site: &CallSite, s: &WorkspaceConnectionStatus) -> Result<SessionRecord> {
    let workspace_id = required(site, "WorkspaceId", s.workspace_id())?;
    let mut r = SessionRecord::new(ServiceId::WorkspacesConnectionStatus, workspace_id);
    r.status = s.connection_state().map(|v| v.as_str().to_owned());
    let checked = time(site, "ConnectionStateCheckTimestamp", s.connection_state_check_timestamp())?;
    let last_connected = time(site, "LastKnownUserConnectionTimestamp", s.last_known_user_connection_timestamp())?;
    r.set("connection_state_check_timestamp", checked)?.set("last_known_user_connection_timestamp", last_connected)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use crate::model::Timestamp;
    use aws_sdk_workspaces::primitives::DateTime;
    use aws_sdk_workspaces::types::{
        AuthenticationType, ConnectionState, NetworkAccessConfiguration, SessionConnectionState,
    };

    use super::*;
    use crate::model::Value;

    fn site(parent: Option<&str>) -> CallSite {
        CallSite {
            service: ServiceId::WorkspacesPoolSessions.as_str(),
            operation: "DescribeWorkspacesPoolSessions",
            parent: parent.map(str::to_owned),
        }
    }

    fn ts(text: &str) -> Value {
        Value::Timestamp(Timestamp::parse(text).unwrap())
    }

    #[test]
    fn pool_session_maps_every_documented_field() {
        let session = WorkspacesPoolSession::builder()
            .authentication_type(AuthenticationType::Saml)
            .connection_state(SessionConnectionState::Connected)
            .expiration_time(DateTime::from_secs(1_714_600_000))
            .instance_id("i-0123456789abcdef0")
            .network_access_configuration(
                NetworkAccessConfiguration::builder().eni_id("eni-1").eni_private_ip_address("10.0.0.7").build(),
            )
            .pool_id("wspool-abc123def")
            .session_id("0f1e2d3c-aaaa-bbbb-cccc-000000000001")
            .start_time(DateTime::from_secs(1_714_557_600))
            .user_id("alice")
            .build()
            .unwrap();
        let r = map_pool_session(&site(Some("wspool-abc123def")), &session).unwrap();
        assert_eq!(r.session_id, "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
        assert_eq!(r.parent_id.as_deref(), Some("wspool-abc123def"));
        assert_eq!(r.status.as_deref(), Some("CONNECTED"));
        assert_eq!(r.started_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T10:00:00Z"));
        assert_eq!(r.ended_at, None);
        assert_eq!(r.user_id.as_deref(), Some("alice"));
        assert_eq!(r.get("authentication_type"), Some(&Value::String("SAML".into())));
        assert_eq!(r.get("instance_id"), Some(&Value::String("i-0123456789abcdef0".into())));
        assert_eq!(r.get("expiration_time"), Some(&ts("2024-05-01T21:46:40Z")));
        assert_eq!(r.get("eni_id"), Some(&Value::String("eni-1".into())));
        assert_eq!(r.get("eni_private_ip_address"), Some(&Value::String("10.0.0.7".into())));
    }

    #[test]
    fn pool_session_absent_fields_are_null() {
        let session = WorkspacesPoolSession::builder()
            .pool_id("wspool-abc123def")
            .session_id("s-1")
            .user_id("bob")
            .build()
            .unwrap();
        let r = map_pool_session(&site(None), &session).unwrap();
        assert_eq!(r.status, None);
        assert_eq!(r.started_at, None);
        for column in ["authentication_type", "instance_id", "expiration_time", "eni_id", "eni_private_ip_address"] {
            assert_eq!(r.get(column), Some(&Value::Null), "{column}");
        }
    }

    #[test]
    fn pool_session_without_id_or_from_another_pool_is_a_bad_page() {
        let no_id =
            WorkspacesPoolSession::builder().pool_id("wspool-abc123def").session_id("").user_id("u").build().unwrap();
        let err = map_pool_session(&site(Some("wspool-abc123def")), &no_id).unwrap_err().to_string();
        assert!(err.contains("a session has no SessionId"), "{err}");
        let other =
            WorkspacesPoolSession::builder().pool_id("wspool-zzz999zzz").session_id("s").user_id("u").build().unwrap();
        let err = map_pool_session(&site(Some("wspool-abc123def")), &other).unwrap_err().to_string();
        assert!(err.contains("belongs to pool wspool-zzz999zzz, not the pool asked for"), "{err}");
        assert!(
            err.starts_with("workspaces-pool-sessions DescribeWorkspacesPoolSessions (parent wspool-abc123def)"),
            "{err}"
        );
    }

    #[test]
    fn connection_status_maps_every_documented_field() {
        let status = WorkspaceConnectionStatus::builder()
            .workspace_id("ws-abcd1234")
            .connection_state(ConnectionState::Disconnected)
            .connection_state_check_timestamp(DateTime::from_secs(1_714_557_600))
            .last_known_user_connection_timestamp(DateTime::from_secs(1_714_550_400))
            .build();
        let r = map_connection_status(&site(None), &status).unwrap();
        assert_eq!(r.session_id, "ws-abcd1234");
        assert_eq!(r.parent_id, None);
        assert_eq!(r.status.as_deref(), Some("DISCONNECTED"));
        assert_eq!(r.get("connection_state_check_timestamp"), Some(&ts("2024-05-01T10:00:00Z")));
        assert_eq!(r.get("last_known_user_connection_timestamp"), Some(&ts("2024-05-01T08:00:00Z")));
        let unknown = WorkspaceConnectionStatus::builder()
            .workspace_id("ws-abcd1234")
            .connection_state(ConnectionState::from("UNKNOWN"))
            .build();
        let r = map_connection_status(&site(None), &unknown).unwrap();
        assert_eq!(r.status.as_deref(), Some("UNKNOWN"));
        assert_eq!(r.get("last_known_user_connection_timestamp"), Some(&Value::Null));
    }

    #[test]
    fn a_workspace_gives_its_connection_status_its_user_directory_and_computer_name() {
        // GIVEN a WorkSpace's connection status, and the WorkSpace as DescribeWorkspaces tells it
        let status = WorkspaceConnectionStatus::builder().workspace_id("ws-abcd1234").build();
        let mut r = map_connection_status(&site(None), &status).unwrap();
        assert_eq!((r.user_id.as_deref(), r.get("directory_id")), (None, Some(&Value::Null)));
        let workspace = Workspace::builder()
            .workspace_id("ws-abcd1234")
            .user_name("alice")
            .directory_id("d-926722edaf")
            .computer_name("WSAMZN-ABC1DEF2")
            .build();
        // WHEN it is described
        describe_workspace(&mut r, &workspace).unwrap();
        // THEN the status carries the WorkSpace's user and where it lives
        assert_eq!(r.user_id.as_deref(), Some("alice"));
        assert_eq!(r.get("directory_id"), Some(&Value::String("d-926722edaf".into())));
        assert_eq!(r.get("computer_name"), Some(&Value::String("WSAMZN-ABC1DEF2".into())));
        // AND a WorkSpace without a user name (being created) has none
        describe_workspace(&mut r, &Workspace::builder().workspace_id("ws-abcd1234").user_name("").build()).unwrap();
        assert_eq!(r.user_id, None);
    }
}

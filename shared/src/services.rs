//! One place per session API: its id, operations, page sizes, parents, filters and columns,
//! declared once. [`ServiceId`]'s methods, the option checks and the template test read this
//! table; adding an API adds an entry here (see "Adding an API" in docs/architecture.md).

use crate::model::{
    Schema, ServiceId, CHIME_PROXY_SESSIONS, GAMELIFT_STREAM_SESSIONS, IVS_STREAM_SESSIONS,
    WORKSPACES_CONNECTION_STATUS, WORKSPACES_POOL_SESSIONS,
};

/// Everything the archiver knows of one session API.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The service id: the function's name, the history's `service` column and key segment.
    pub id: &'static str,
    /// The prefix of its IAM actions.
    pub iam_prefix: &'static str,
    /// Its name in AWS's public parameters of where services are offered
    /// (`/aws/service/global-infrastructure/services/<name>/regions`).
    pub global_infrastructure_name: &'static str,
    /// The operation that lists the sessions.
    pub list_operation: &'static str,
    /// The largest page the list operation accepts; `None` where the service chooses.
    pub max_page_size: Option<i32>,
    /// The parents the sessions are listed per, if any.
    pub parents: Option<ParentSpec>,
    /// The operation that describes the listed sessions further, a page's sessions at a time, if
    /// the list operation leaves out what the history needs (the WorkSpace's user).
    pub lookup: Option<LookupSpec>,
    /// The filters (`SourceOptions` fields) the list operation takes.
    pub filters: &'static [&'static str],
    /// The columns of its history.
    pub schema: &'static Schema,
    /// The statuses of a session that is over, or not connected: a session in one is not active
    /// (the audit's active-at, its concurrency).
    pub ended_statuses: &'static [&'static str],
    /// The statuses in which a session's user is connected (the audit's connected intervals).
    pub connected_statuses: &'static [&'static str],
}

/// An operation asked about the sessions of each page by their ids.
#[derive(Debug)]
pub struct LookupSpec {
    pub operation: &'static str,
    /// The most ids (and results) a call takes.
    pub max_ids: usize,
}

/// The parents of an API listed per parent.
#[derive(Debug)]
pub struct ParentSpec {
    /// The operation that discovers them.
    pub operation: &'static str,
    /// The largest page it accepts.
    pub max_page_size: i32,
    /// Whether an id given in the options is one.
    pub is_valid: fn(&str) -> bool,
    /// What one looks like, for the error that refuses another.
    pub looks_like: &'static str,
}

/// The five APIs, in [`ServiceId::ALL`] order.
static SERVICES: [ServiceSpec; 5] = [
    ServiceSpec {
        id: "workspaces-pool-sessions",
        iam_prefix: "workspaces",
        global_infrastructure_name: "workspaces",
        list_operation: "DescribeWorkspacesPoolSessions",
        max_page_size: Some(50),
        parents: Some(ParentSpec {
            operation: "DescribeWorkspacesPools",
            max_page_size: 25,
            is_valid: is_pool_id,
            looks_like: "a pool id like wspool-abc123def (^wspool-[0-9a-z]{9}$)",
        }),
        lookup: None,
        filters: &["user_id"],
        schema: &WORKSPACES_POOL_SESSIONS,
        ended_statuses: &[],
        connected_statuses: &["CONNECTED"],
    },
    ServiceSpec {
        id: "workspaces-connection-status",
        iam_prefix: "workspaces",
        global_infrastructure_name: "workspaces",
        list_operation: "DescribeWorkspacesConnectionStatus",
        max_page_size: None,
        parents: None,
        lookup: Some(LookupSpec { operation: "DescribeWorkspaces", max_ids: 25 }),
        filters: &["workspace_ids"],
        schema: &WORKSPACES_CONNECTION_STATUS,
        ended_statuses: &["DISCONNECTED"],
        connected_statuses: &["CONNECTED"],
    },
    ServiceSpec {
        id: "ivs-stream-sessions",
        iam_prefix: "ivs",
        global_infrastructure_name: "ivs",
        list_operation: "ListStreamSessions",
        max_page_size: Some(100),
        parents: Some(ParentSpec {
            operation: "ListChannels",
            max_page_size: 100,
            is_valid: is_channel_arn,
            looks_like: "a channel ARN like arn:aws:ivs:us-west-2:123456789012:channel/abcdABCD1234",
        }),
        lookup: None,
        filters: &[],
        schema: &IVS_STREAM_SESSIONS,
        ended_statuses: &["OFFLINE"],
        connected_statuses: &["LIVE"],
    },
    ServiceSpec {
        id: "chime-proxy-sessions",
        iam_prefix: "chime",
        global_infrastructure_name: "chime-sdk-voice",
        list_operation: "ListProxySessions",
        max_page_size: Some(100),
        parents: Some(ParentSpec {
            operation: "ListVoiceConnectors",
            max_page_size: 100,
            is_valid: is_voice_connector_id,
            looks_like: "a voice connector id (1-128 characters, not blank)",
        }),
        lookup: None,
        filters: &["proxy_status"],
        schema: &CHIME_PROXY_SESSIONS,
        ended_statuses: &["Closed"],
        connected_statuses: &["Open", "InProgress"],
    },
    ServiceSpec {
        id: "gamelift-stream-sessions",
        iam_prefix: "gameliftstreams",
        global_infrastructure_name: "AmazonGameLiftStreams",
        list_operation: "ListStreamSessionsByAccount",
        max_page_size: Some(100),
        parents: None,
        lookup: None,
        filters: &["stream_status", "export_files_status"],
        schema: &GAMELIFT_STREAM_SESSIONS,
        ended_statuses: &["TERMINATING", "TERMINATED", "ERROR"],
        // ACTIVE waits for its client; PENDING_CLIENT_RECONNECTION and RECONNECTING have lost it.
        connected_statuses: &["CONNECTED"],
    },
];

/// A status no API uses for a session it can speak of: the audit counts none in it active.
pub const UNKNOWN_STATUS: &str = "UNKNOWN";

impl ServiceId {
    /// The API's entry in the registry.
    pub fn spec(self) -> &'static ServiceSpec {
        &SERVICES[self as usize]
    }
}

/// Whether a session in `status` is active: a status no API ends a session in (and not
/// [`UNKNOWN_STATUS`]).
pub fn is_active_status(status: Option<&str>) -> bool {
    status.is_some_and(|s| s != UNKNOWN_STATUS && !SERVICES.iter().any(|spec| spec.ended_statuses.contains(&s)))
}

/// `^wspool-[0-9a-z]{9}$`
pub fn is_pool_id(id: &str) -> bool {
    id.strip_prefix("wspool-")
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// `^ws-[0-9a-z]{8,63}$`
pub fn is_workspace_id(id: &str) -> bool {
    id.strip_prefix("ws-").is_some_and(|rest| {
        (8..=63).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// `^arn:aws:ivs:[a-z0-9-]+:[0-9]+:channel/[a-zA-Z0-9-]+$`, at most 128 characters.
pub fn is_channel_arn(arn: &str) -> bool {
    if arn.len() > 128 {
        return false;
    }
    let Some(rest) = arn.strip_prefix("arn:aws:ivs:") else { return false };
    let mut parts = rest.splitn(3, ':');
    let (Some(region), Some(account), Some(resource)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some(channel) = resource.strip_prefix("channel/") else { return false };
    !region.is_empty()
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !channel.is_empty()
        && channel.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// 1-128 characters, `.*\S.*`
pub fn is_voice_connector_id(id: &str) -> bool {
    (1..=128).contains(&id.chars().count()) && id.chars().any(|c| !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_patterns_follow_the_api_docs() {
        assert!(is_pool_id("wspool-abc123def"));
        assert!(!is_pool_id("wspool-ABC123DEF"));
        assert!(!is_pool_id("wspool-abc123de"));
        assert!(!is_pool_id("pool-abc123def"));
        assert!(is_channel_arn("arn:aws:ivs:us-west-2:123456789012:channel/abcdABCD1234"));
        assert!(!is_channel_arn("arn:aws:ivs:us-west-2:123456789012:stream-key/abcd"));
        assert!(!is_channel_arn("arn:aws:ivs:us-west-2:12345678901x:channel/abcd"));
        assert!(!is_channel_arn("arn:aws:ivs:us-west-2:123456789012:channel/"));
        assert!(is_voice_connector_id("abcdef1ghij2klmno3pqr4"));
        assert!(!is_voice_connector_id("   "));
        assert!(!is_voice_connector_id(&"a".repeat(129)));
        assert!(is_workspace_id("ws-abcd1234"));
        assert!(!is_workspace_id("ws-abc"));
    }

    #[test]
    fn every_service_has_its_own_entry_in_order() {
        for (index, id) in ServiceId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, index);
            // The serde name of the id is the entry's id.
            assert_eq!(serde_json::to_value(id).unwrap(), id.spec().id);
        }
        let ids: std::collections::BTreeSet<&str> = SERVICES.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), SERVICES.len());
    }
}

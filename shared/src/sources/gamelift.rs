//! GameLift Streams `ListStreamSessionsByAccount`, account wide. AWS calls it costly: the template
//! schedules it less often than the others.

use aws_config::SdkConfig;
use aws_sdk_gameliftstreams::types::{ExportFilesStatus, StreamSessionStatus, StreamSessionSummary};
use aws_sdk_gameliftstreams::Client;

use super::api::session_client;
use super::api::Call;
use super::{required, time, Api, Listing, RawPage, SessionApi, SourceOptions};
use crate::aws::ThrottleCounter;
use crate::error::{CallSite, Error, Result};
use crate::model::{ServiceId, SessionRecord};

/// GameLift Streams' calls.
pub struct Gamelift(Client);

pub type GameliftStreamSessions = Api<Gamelift>;

impl SessionApi for Gamelift {
    const SERVICE: ServiceId = ServiceId::GameliftStreamSessions;

    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self {
        Gamelift(session_client!(aws_sdk_gameliftstreams, sdk, throttles))
    }

    async fn list_page(&self, options: &SourceOptions, _listing: &Listing, call: Call) -> Result<RawPage> {
        let out = self
            .0
            .list_stream_sessions_by_account()
            .set_status(options.stream_status.as_deref().map(StreamSessionStatus::from))
            .set_export_files_status(options.export_files_status.as_deref().map(ExportFilesStatus::from))
            .set_max_results(call.page_size)
            .set_next_token(call.token)
            .send()
            .await
            .map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let sessions = out.items().iter().map(|s| map_stream_session(&call.site, s)).collect::<Result<Vec<_>>>()?;
        Ok(RawPage { sessions, next_token: out.next_token, lookup_calls: 0 })
    }
}

/// Maps one `StreamSessionSummary`. The ARN is the session id (unique across stream groups).
/// `ended_at` is `LastUpdatedAt` once the session is `TERMINATED` or in `ERROR`: the list
/// operation has no end time of its own.
pub fn map_stream_session(site: &CallSite, s: &StreamSessionSummary) -> Result<SessionRecord> {
    let arn = required(site, "Arn", s.arn())?;
    let mut r = SessionRecord::new(ServiceId::GameliftStreamSessions, arn);
    let status = s.status();
    r.status = status.map(|v| v.as_str().to_owned());
    r.started_at = time(site, "CreatedAt", s.created_at())?;
    if matches!(status, Some(StreamSessionStatus::Terminated | StreamSessionStatus::Error)) {
        r.ended_at = time(site, "LastUpdatedAt", s.last_updated_at())?;
    }
    r.user_id = s.user_id().map(str::to_owned);
    let export = s.export_files_metadata();
    r.set("status_reason", s.status_reason().map(|v| v.as_str()))?
        .set("protocol", s.protocol().map(|v| v.as_str()))?
        .set("last_updated_at", time(site, "LastUpdatedAt", s.last_updated_at())?)?
        .set("application_arn", s.application_arn())?
        .set("location", s.location())?
        .set("role_arn", s.role_arn())?
        .set("export_files_status", export.and_then(|e| e.status()).map(|v| v.as_str()))?
        .set("export_files_status_reason", export.and_then(|e| e.status_reason()))?
        .set("export_files_output_uri", export.and_then(|e| e.output_uri()))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use crate::model::Timestamp;
    use aws_sdk_gameliftstreams::primitives::DateTime;
    use aws_sdk_gameliftstreams::types::{ExportFilesMetadata, Protocol, StreamSessionStatusReason};

    use super::*;
    use crate::model::Value;

    const ARN: &str = "arn:aws:gameliftstreams:us-west-2:111122223333:streamsession/sg-1AB2C3De4/ABC123def4567";

    fn site() -> CallSite {
        CallSite {
            service: ServiceId::GameliftStreamSessions.as_str(),
            operation: "ListStreamSessionsByAccount",
            parent: None,
        }
    }

    #[test]
    fn terminated_session_maps_every_documented_field_and_ends_at_last_update() {
        let s = StreamSessionSummary::builder()
            .arn(ARN)
            .user_id("player-7")
            .status(StreamSessionStatus::Terminated)
            .status_reason(StreamSessionStatusReason::IdleTimeout)
            .protocol(Protocol::Webrtc)
            .created_at(DateTime::from_secs(1_714_557_600))
            .last_updated_at(DateTime::from_secs(1_714_561_200))
            .application_arn("arn:aws:gameliftstreams:us-west-2:111122223333:application/a-9ZY8X7Wv6")
            .location("us-east-1")
            .role_arn("arn:aws:iam::111122223333:role/streams")
            .export_files_metadata(
                ExportFilesMetadata::builder()
                    .status(ExportFilesStatus::Failed)
                    .status_reason("bucket missing")
                    .output_uri("s3://bucket/x.zip")
                    .build(),
            )
            .build();
        let r = map_stream_session(&site(), &s).unwrap();
        assert_eq!(r.session_id, ARN);
        assert_eq!(r.parent_id, None);
        assert_eq!(r.status.as_deref(), Some("TERMINATED"));
        assert_eq!(r.user_id.as_deref(), Some("player-7"));
        assert_eq!(r.started_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T10:00:00Z"));
        assert_eq!(r.ended_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T11:00:00Z"));
        assert_eq!(r.get("status_reason"), Some(&Value::String("idleTimeout".into())));
        assert_eq!(r.get("protocol"), Some(&Value::String("WebRTC".into())));
        assert_eq!(r.get("location"), Some(&Value::String("us-east-1".into())));
        assert_eq!(r.get("role_arn"), Some(&Value::String("arn:aws:iam::111122223333:role/streams".into())));
        assert_eq!(r.get("export_files_status"), Some(&Value::String("FAILED".into())));
        assert_eq!(r.get("export_files_status_reason"), Some(&Value::String("bucket missing".into())));
        assert_eq!(r.get("export_files_output_uri"), Some(&Value::String("s3://bucket/x.zip".into())));
    }

    #[test]
    fn connected_session_has_no_end_and_nulls_for_absent_fields() {
        let s = StreamSessionSummary::builder()
            .arn(ARN)
            .status(StreamSessionStatus::Connected)
            .last_updated_at(DateTime::from_secs(1_714_561_200))
            .build();
        let r = map_stream_session(&site(), &s).unwrap();
        assert_eq!(r.status.as_deref(), Some("CONNECTED"));
        assert_eq!(r.ended_at, None);
        assert_eq!(r.user_id, None);
        for column in ["status_reason", "protocol", "application_arn", "export_files_status"] {
            assert_eq!(r.get(column), Some(&Value::Null), "{column}");
        }
    }

    #[test]
    fn session_without_arn_is_a_bad_page() {
        let err = map_stream_session(&site(), &StreamSessionSummary::builder().build()).unwrap_err().to_string();
        assert!(err.contains("a session has no Arn"), "{err}");
    }
}

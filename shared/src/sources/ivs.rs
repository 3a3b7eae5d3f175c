//! IVS `ListStreamSessions`, per channel (channels from `ListChannels`).

use aws_config::SdkConfig;
use aws_sdk_ivs::types::StreamSessionSummary;
use aws_sdk_ivs::Client;

use super::api::session_client;
use super::api::{Call, Parents};
use super::{required, time, Api, Listing, RawPage, SessionApi, SourceOptions};
use crate::aws::ThrottleCounter;
use crate::error::{CallSite, Error, Result};
use crate::model::{ServiceId, SessionRecord};

/// IVS has no status on a stream session; the archiver names it with IVS's own stream states:
/// `LIVE` while `endTime` is absent, `OFFLINE` once it is set.
pub const LIVE: &str = "LIVE";
pub const OFFLINE: &str = "OFFLINE";

/// IVS's calls.
pub struct Ivs(Client);

pub type IvsStreamSessions = Api<Ivs>;

impl SessionApi for Ivs {
    const SERVICE: ServiceId = ServiceId::IvsStreamSessions;

    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self {
        Ivs(session_client!(aws_sdk_ivs, sdk, throttles))
    }

    async fn parent_page(&self, call: Call) -> Result<Parents> {
        let request = self.0.list_channels().set_max_results(call.page_size).set_next_token(call.token);
        let out = request.send().await.map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let arns =
            out.channels().iter().map(|c| required(&call.site, "channel arn", c.arn())).collect::<Result<Vec<_>>>()?;
        Ok((arns, out.next_token))
    }

    async fn list_page(&self, _options: &SourceOptions, listing: &Listing, call: Call) -> Result<RawPage> {
        let out = self
            .0
            .list_stream_sessions()
            .set_channel_arn(listing.parent_id.clone())
            .set_max_results(call.page_size)
            .set_next_token(call.token)
            .send()
            .await
            .map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let sessions =
            out.stream_sessions().iter().map(|s| map_stream_session(&call.site, s)).collect::<Result<Vec<_>>>()?;
        Ok(RawPage { sessions, next_token: out.next_token, lookup_calls: 0 })
    }
}

/// Maps one `StreamSessionSummary` of the channel named by the call site.
pub fn map_stream_session(site: &CallSite, s: &StreamSessionSummary) -> Result<SessionRecord> {
    let stream_id = required(site, "streamId", s.stream_id())?;
    let mut r = SessionRecord::new(ServiceId::IvsStreamSessions, stream_id);
    r.parent_id = site.parent.clone();
    r.started_at = time(site, "startTime", s.start_time())?;
    r.ended_at = time(site, "endTime", s.end_time())?;
    r.status = Some(if r.ended_at.is_some() { OFFLINE } else { LIVE }.to_owned());
    r.set("has_error_event", s.has_error_event())?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use crate::model::Timestamp;
    use aws_sdk_ivs::primitives::DateTime;

    use super::*;
    use crate::model::Value;

    const CHANNEL: &str = "arn:aws:ivs:us-west-2:123456789012:channel/abcdABCD1234";

    fn site() -> CallSite {
        CallSite {
            service: ServiceId::IvsStreamSessions.as_str(),
            operation: "ListStreamSessions",
            parent: Some(CHANNEL.into()),
        }
    }

    #[test]
    fn live_stream_has_no_end_and_status_live() {
        let s = StreamSessionSummary::builder()
            .stream_id("st-1AB2C3De4")
            .start_time(DateTime::from_secs(1_714_557_600))
            .has_error_event(false)
            .build();
        let r = map_stream_session(&site(), &s).unwrap();
        assert_eq!(r.session_id, "st-1AB2C3De4");
        assert_eq!(r.parent_id.as_deref(), Some(CHANNEL));
        assert_eq!(r.status.as_deref(), Some("LIVE"));
        assert_eq!(r.started_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T10:00:00Z"));
        assert_eq!(r.ended_at, None);
        assert_eq!(r.user_id, None);
        assert_eq!(r.get("has_error_event"), Some(&Value::Boolean(false)));
    }

    #[test]
    fn ended_stream_with_error_is_offline() {
        let s = StreamSessionSummary::builder()
            .stream_id("st-2")
            .start_time(DateTime::from_secs(1_714_557_600))
            .end_time(DateTime::from_secs(1_714_561_200))
            .has_error_event(true)
            .build();
        let r = map_stream_session(&site(), &s).unwrap();
        assert_eq!(r.status.as_deref(), Some("OFFLINE"));
        assert_eq!(r.ended_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T11:00:00Z"));
        assert_eq!(r.get("has_error_event"), Some(&Value::Boolean(true)));
    }

    #[test]
    fn stream_without_id_is_a_bad_page() {
        let s = StreamSessionSummary::builder().build();
        let err = map_stream_session(&site(), &s).unwrap_err().to_string();
        assert!(err.contains("a session has no streamId"), "{err}");
    }
}

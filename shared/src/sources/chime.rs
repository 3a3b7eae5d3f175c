//! Chime SDK Voice `ListProxySessions`, per voice connector (from `ListVoiceConnectors`).

use aws_config::SdkConfig;
use aws_sdk_chimesdkvoice::types::{ProxySession, ProxySessionStatus};
use aws_sdk_chimesdkvoice::Client;

use super::api::session_client;
use super::api::{Call, Parents};
use super::{required, time, Api, Listing, RawPage, SessionApi, SourceOptions};
use crate::aws::ThrottleCounter;
use crate::error::{CallSite, Error, Result};
use crate::model::{ServiceId, SessionRecord};

/// Chime SDK Voice's calls.
pub struct Chime(Client);

pub type ChimeProxySessions = Api<Chime>;

impl SessionApi for Chime {
    const SERVICE: ServiceId = ServiceId::ChimeProxySessions;

    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self {
        Chime(session_client!(aws_sdk_chimesdkvoice, sdk, throttles))
    }

    async fn parent_page(&self, call: Call) -> Result<Parents> {
        let request = self.0.list_voice_connectors().set_max_results(call.page_size).set_next_token(call.token);
        let out = request.send().await.map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let ids = out
            .voice_connectors()
            .iter()
            .map(|c| required(&call.site, "VoiceConnectorId", c.voice_connector_id()))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, out.next_token))
    }

    async fn list_page(&self, options: &SourceOptions, listing: &Listing, call: Call) -> Result<RawPage> {
        // AWS ended support for proxy sessions on 2026-04-07 and marks the operation deprecated;
        // accounts that still hold proxy sessions keep needing their history.
        #[allow(deprecated)]
        let request = self.0.list_proxy_sessions();
        let out = request
            .set_voice_connector_id(listing.parent_id.clone())
            .set_status(options.proxy_status.as_deref().map(ProxySessionStatus::from))
            .set_max_results(call.page_size)
            .set_next_token(call.token)
            .send()
            .await
            .map_err(|e| Error::from_sdk(call.site.clone(), e))?;
        let sessions =
            out.proxy_sessions().iter().map(|s| map_proxy_session(&call.site, s)).collect::<Result<Vec<_>>>()?;
        Ok(RawPage { sessions, next_token: out.next_token, lookup_calls: 0 })
    }
}

/// Maps one `ProxySession`; participants become two parallel phone number columns.
pub fn map_proxy_session(site: &CallSite, s: &ProxySession) -> Result<SessionRecord> {
    let session_id = required(site, "ProxySessionId", s.proxy_session_id())?;
    if let (Some(asked), Some(owner)) = (site.parent.as_deref(), s.voice_connector_id()) {
        if asked != owner {
            return Err(Error::BadPage {
                site: site.clone(),
                detail: format!("proxy session {session_id} belongs to voice connector {owner}, not the one asked for"),
            });
        }
    }
    let mut r = SessionRecord::new(ServiceId::ChimeProxySessions, session_id);
    r.parent_id = site.parent.clone().or_else(|| s.voice_connector_id().map(str::to_owned));
    r.status = s.status().map(|v| v.as_str().to_owned());
    r.started_at = time(site, "CreatedTimestamp", s.created_timestamp())?;
    r.ended_at = time(site, "EndedTimestamp", s.ended_timestamp())?;
    let capabilities: Option<Vec<String>> =
        s.capabilities.as_ref().map(|c| c.iter().map(|c| c.as_str().to_owned()).collect());
    let participants = s.participants.as_deref();
    let phones: Option<Vec<String>> =
        participants.map(|ps| ps.iter().filter_map(|p| p.phone_number().map(str::to_owned)).collect());
    let proxies: Option<Vec<String>> =
        participants.map(|ps| ps.iter().filter_map(|p| p.proxy_phone_number().map(str::to_owned)).collect());
    let geo = s.geo_match_params();
    r.set("name", s.name())?
        .set("capabilities", capabilities)?
        .set("expiry_minutes", s.expiry_minutes())?
        .set("updated_at", time(site, "UpdatedTimestamp", s.updated_timestamp())?)?
        .set("number_selection_behavior", s.number_selection_behavior().map(|v| v.as_str()))?
        .set("geo_match_level", s.geo_match_level().map(|v| v.as_str()))?
        .set("geo_match_country", geo.map(|g| g.country()))?
        .set("geo_match_area_code", geo.map(|g| g.area_code()))?
        .set("participant_phone_numbers", phones)?
        .set("participant_proxy_phone_numbers", proxies)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use crate::model::Timestamp;
    use aws_sdk_chimesdkvoice::primitives::DateTime;
    use aws_sdk_chimesdkvoice::types::{
        Capability, GeoMatchLevel, GeoMatchParams, NumberSelectionBehavior, Participant,
    };

    use super::*;
    use crate::model::Value;

    fn site() -> CallSite {
        CallSite {
            service: ServiceId::ChimeProxySessions.as_str(),
            operation: "ListProxySessions",
            parent: Some("vc-abc".into()),
        }
    }

    fn strings(values: &[&str]) -> Value {
        Value::StringArray(values.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn closed_proxy_session_maps_every_documented_field() {
        let s = ProxySession::builder()
            .voice_connector_id("vc-abc")
            .proxy_session_id("ps-1")
            .name("support-line")
            .status(ProxySessionStatus::Closed)
            .expiry_minutes(60)
            .capabilities(Capability::Voice)
            .capabilities(Capability::Sms)
            .created_timestamp(DateTime::from_secs(1_714_557_600))
            .updated_timestamp(DateTime::from_secs(1_714_559_400))
            .ended_timestamp(DateTime::from_secs(1_714_561_200))
            .participants(
                Participant::builder().phone_number("+12065550100").proxy_phone_number("+12065550199").build(),
            )
            .participants(
                Participant::builder().phone_number("+12065550101").proxy_phone_number("+12065550199").build(),
            )
            .number_selection_behavior(NumberSelectionBehavior::PreferSticky)
            .geo_match_level(GeoMatchLevel::AreaCode)
            .geo_match_params(GeoMatchParams::builder().country("US").area_code("206").build().unwrap())
            .build();
        let r = map_proxy_session(&site(), &s).unwrap();
        assert_eq!(r.session_id, "ps-1");
        assert_eq!(r.parent_id.as_deref(), Some("vc-abc"));
        assert_eq!(r.status.as_deref(), Some("Closed"));
        assert_eq!(r.started_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T10:00:00Z"));
        assert_eq!(r.ended_at.as_ref().map(Timestamp::as_str), Some("2024-05-01T11:00:00Z"));
        assert_eq!(r.get("name"), Some(&Value::String("support-line".into())));
        assert_eq!(r.get("capabilities"), Some(&strings(&["Voice", "SMS"])));
        assert_eq!(r.get("expiry_minutes"), Some(&Value::BigInt(60)));
        assert_eq!(r.get("updated_at"), Some(&Value::Timestamp(Timestamp::parse("2024-05-01T10:30:00Z").unwrap())));
        assert_eq!(r.get("number_selection_behavior"), Some(&Value::String("PreferSticky".into())));
        assert_eq!(r.get("geo_match_level"), Some(&Value::String("AreaCode".into())));
        assert_eq!(r.get("geo_match_country"), Some(&Value::String("US".into())));
        assert_eq!(r.get("geo_match_area_code"), Some(&Value::String("206".into())));
        assert_eq!(r.get("participant_phone_numbers"), Some(&strings(&["+12065550100", "+12065550101"])));
        assert_eq!(r.get("participant_proxy_phone_numbers"), Some(&strings(&["+12065550199", "+12065550199"])));
    }

    #[test]
    fn open_proxy_session_with_nothing_optional_has_nulls() {
        let s = ProxySession::builder().proxy_session_id("ps-2").status(ProxySessionStatus::Open).build();
        let r = map_proxy_session(&site(), &s).unwrap();
        assert_eq!(r.status.as_deref(), Some("Open"));
        assert_eq!(r.ended_at, None);
        for column in ["name", "capabilities", "expiry_minutes", "geo_match_country", "participant_phone_numbers"] {
            assert_eq!(r.get(column), Some(&Value::Null), "{column}");
        }
    }

    #[test]
    fn proxy_session_of_another_connector_is_a_bad_page() {
        let s = ProxySession::builder().proxy_session_id("ps-3").voice_connector_id("vc-other").build();
        let err = map_proxy_session(&site(), &s).unwrap_err().to_string();
        assert!(err.contains("belongs to voice connector vc-other"), "{err}");
    }
}

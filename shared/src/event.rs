//! The events a function accepts, validated into a [`RunRequest`]:
//!
//! - an **EventBridge scheduled event** (`source` `aws.events`, `detail-type` `Scheduled Event`): its
//!   `id` is the run id and its `time` the history partition, so a redelivered event writes the
//!   same keys;
//! - a **replay event**, sent by hand or from `events/`:
//!   `{"replay": {"id": "...", "time": "...", "dry_run": false, "options": {...}}}` where `id` is
//!   required, `time` defaults to now (give it, so replaying the same file writes the same keys),
//!   `dry_run` to false, and `options` (parents, filters) to the function's own.
//!
//! Anything else is refused with an error that names what is wrong; nothing is read or written.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::{RunRequest, Trigger};
use crate::sources::SourceOptions;

/// How far ahead of the clock an event's time may be.
const MAX_CLOCK_SKEW_SECONDS: i64 = 24 * 3600;

/// A validated invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub request: RunRequest,
    /// Options of a replay event, in place of the function's own.
    pub options: Option<SourceOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayEnvelope {
    replay: Replay,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    id: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    options: Option<SourceOptions>,
}

fn refuse(detail: impl std::fmt::Display) -> Error {
    Error::Event(detail.to_string())
}

/// Validates the payload a function of `service` was invoked with, at `now`.
pub fn parse_invocation(service: ServiceId, payload: &Json, now: &Timestamp) -> Result<Invocation> {
    let Json::Object(fields) = payload else {
        return Err(refuse(format!("the event must be a JSON object, not {}", kind_of(payload))));
    };
    if fields.contains_key("replay") {
        return parse_replay(service, payload, now);
    }
    if fields.contains_key("detail-type") || fields.contains_key("source") {
        return parse_scheduled(payload, now);
    }
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    Err(refuse(format!(
        "expected an EventBridge scheduled event or {{\"replay\": {{\"id\": ...}}}}, got an object with keys [{}]",
        keys.join(", ")
    )))
}

fn parse_scheduled(payload: &Json, now: &Timestamp) -> Result<Invocation> {
    let event: EventBridgeEvent =
        serde_json::from_value(payload.clone()).map_err(|e| refuse(format!("not an EventBridge event: {e}")))?;
    if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
        return Err(refuse(format!(
            "an EventBridge event from `{}` of type `{}` is not a schedule; expected source `aws.events`, detail-type `Scheduled Event`",
            event.source, event.detail_type
        )));
    }
    let id = event.id.filter(|id| !id.is_empty()).ok_or_else(|| refuse("the scheduled event has no `id`"))?;
    let run_id = RunId::parse(&id).map_err(|e| refuse(format!("event `id`: {e}")))?;
    let time = event.time.ok_or_else(|| refuse("the scheduled event has no `time`"))?;
    let event_time = Timestamp::from_datetime(&aws_smithy_types::DateTime::from_secs_and_nanos(
        time.timestamp(),
        time.timestamp_subsec_nanos(),
    ));
    check_not_ahead(&event_time, now)?;
    Ok(Invocation {
        request: RunRequest {
            run_id,
            event_id: id,
            event_time,
            trigger: Trigger::Scheduled,
            dry_run: false,
            stop_at: None,
        },
        options: None,
    })
}

fn parse_replay(service: ServiceId, payload: &Json, now: &Timestamp) -> Result<Invocation> {
    let envelope: ReplayEnvelope =
        serde_json::from_value(payload.clone()).map_err(|e| refuse(format!("replay event: {e}")))?;
    let replay = envelope.replay;
    let run_id = RunId::parse(&replay.id).map_err(|e| refuse(format!("replay `id`: {e}")))?;
    let event_time = match &replay.time {
        Some(text) => Timestamp::parse(text).map_err(|e| refuse(format!("replay `time`: {e}")))?,
        None => now.clone(),
    };
    check_not_ahead(&event_time, now)?;
    if let Some(options) = &replay.options {
        options.validate(service).map_err(|e| refuse(format!("replay `options`: {e}")))?;
    }
    Ok(Invocation {
        request: RunRequest {
            run_id,
            event_id: replay.id,
            event_time,
            trigger: Trigger::Replay,
            dry_run: replay.dry_run,
            stop_at: None,
        },
        options: replay.options,
    })
}

fn check_not_ahead(event_time: &Timestamp, now: &Timestamp) -> Result<()> {
    if event_time.epoch_seconds() > now.epoch_seconds() + MAX_CLOCK_SKEW_SECONDS {
        return Err(refuse(format!("event time {event_time} is more than a day ahead of the clock ({now})")));
    }
    Ok(())
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-22T10:00:30Z").unwrap()
    }

    fn scheduled() -> Json {
        json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-22T10:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/archive-ivs"],
            "detail": {}
        })
    }

    fn parse(payload: Json) -> Result<Invocation> {
        parse_invocation(ServiceId::IvsStreamSessions, &payload, &now())
    }

    fn error(payload: Json) -> String {
        let err = parse(payload).unwrap_err();
        assert!(!err.is_retryable());
        err.to_string()
    }

    #[test]
    fn a_scheduled_event_gives_its_id_and_time_to_the_run() {
        let invocation = parse(scheduled()).unwrap();
        let request = invocation.request;
        assert_eq!(request.run_id.as_str(), "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
        assert_eq!(request.event_time.as_str(), "2026-11-22T10:00:00Z");
        assert_eq!((request.trigger, request.dry_run), (Trigger::Scheduled, false));
        assert_eq!(invocation.options, None);
    }

    #[test]
    fn a_replay_event_names_its_id_and_may_set_time_dry_run_and_options() {
        let invocation = parse(json!({"replay": {
            "id": "replay-audit-1",
            "time": "2026-11-20T08:00:00Z",
            "dry_run": true,
            "options": {"parents": ["arn:aws:ivs:us-east-1:123456789012:channel/abcdABCD1234"]}
        }}))
        .unwrap();
        assert_eq!(invocation.request.run_id.as_str(), "replay-audit-1");
        assert_eq!(invocation.request.event_time.as_str(), "2026-11-20T08:00:00Z");
        assert_eq!((invocation.request.trigger, invocation.request.dry_run), (Trigger::Replay, true));
        assert_eq!(invocation.options.unwrap().parents.len(), 1);

        let minimal = parse(json!({"replay": {"id": "r-2"}})).unwrap();
        assert_eq!(minimal.request.event_time, now());
    }

    #[test]
    fn bad_events_are_refused_naming_what_is_wrong() {
        let mut no_id = scheduled();
        no_id.as_object_mut().unwrap().remove("id");
        let mut no_time = scheduled();
        no_time.as_object_mut().unwrap().remove("time");
        let mut not_schedule = scheduled();
        not_schedule["detail-type"] = json!("EC2 Instance State-change Notification");
        let mut bad_time = scheduled();
        bad_time["time"] = json!("yesterday");
        let mut ahead = scheduled();
        ahead["time"] = json!("2026-11-24T10:00:00Z");
        let cases = [
            (json!([1, 2]), "the event must be a JSON object, not an array"),
            (json!({"hello": 1}), "got an object with keys [hello]"),
            (no_id, "the scheduled event has no `id`"),
            (no_time, "the scheduled event has no `time`"),
            (not_schedule, "is not a schedule"),
            (bad_time, "not an EventBridge event"),
            (ahead, "more than a day ahead of the clock"),
            (json!({"replay": {}}), "replay event: missing field `id`"),
            (json!({"replay": {"id": "../etc"}}), "replay `id`: invalid configuration: run id `../etc`"),
            (json!({"replay": {"id": "r", "when": "now"}}), "unknown field `when`"),
            (json!({"replay": {"id": "r", "time": "10 o'clock"}}), "replay `time`"),
            (
                json!({"replay": {"id": "r", "options": {"user_id": "u"}}}),
                "`user_id` does not apply to ivs-stream-sessions",
            ),
            (json!({"replay": {"id": "r", "dry_run": "yes"}}), "invalid type: string \"yes\", expected a boolean"),
        ];
        for (payload, expected) in cases {
            let message = error(payload.clone());
            assert!(message.starts_with("invalid event: "), "{message}");
            assert!(message.contains(expected), "{payload}: {message}");
        }
    }
}

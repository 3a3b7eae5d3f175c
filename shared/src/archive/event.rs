//! The events an archiving function accepts, validated into a [`RunRequest`]:
//!
//! - an **EventBridge scheduled event** (`source` `aws.events`, `detail-type` `Scheduled Event`): its
//!   `id` is the run id and its `time` the history partition, so a redelivered event writes the
//!   same keys;
//! - a **replay event**, sent by hand or from `events/`:
//!   `{"replay": {"id": "...", "time": "...", "dry_run": false, "options": {...}}}` where `id` is
//!   required, `time` defaults to now (give it, so replaying the same file writes the same keys),
//!   `dry_run` to false, and `options` (parents, filters) to the function's own;
//! - a **scope message** from the service's queue (an SQS record's body, [`ScopeMessage`]), sent
//!   by the planner for a batch of accounts and regions ([`ScopeBatch`]), or by a function for
//!   one scope of a batch that failed.
//!
//! Anything else is refused with an error that names what is wrong ([`crate::lambda::event`]);
//! nothing is read or written.

use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{quoted, Result};
use crate::lambda::event::{config_detail, kind_of, parse_schedule, refuse, EventWindow, Schedule};
use crate::model::{is_account_id, is_region, RunId, Scope, ServiceId, Timestamp};
use crate::plan::config::MAX_BATCH_SIZE;
use crate::plan::event::{AccountRegion, ScopeMessage};
use crate::run::deadline::Deadlines;
use crate::run::{RunRequest, Trigger};
use crate::sources::SourceOptions;

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

/// Validates the payload a function of `service` was invoked with, in `window`.
pub fn parse_invocation(service: ServiceId, payload: &Json, window: &EventWindow) -> Result<Invocation> {
    let Json::Object(fields) = payload else {
        return Err(refuse(format!("the event must be a JSON object, not {}", kind_of(payload))));
    };
    if fields.contains_key("replay") {
        return parse_replay(service, payload, window);
    }
    if fields.contains_key("detail-type") || fields.contains_key("source") {
        let Schedule { run_id, id, time } = parse_schedule(payload, window)?;
        return Ok(Invocation { request: scheduled_request(run_id, id, time), options: None });
    }
    let mut keys: Vec<String> = fields.keys().map(|key| quoted(key)).collect();
    keys.sort_unstable();
    Err(refuse(format!(
        "expected an EventBridge scheduled event or {{\"replay\": {{\"id\": ...}}}}, got an object with keys [{}]",
        keys.join(", ")
    )))
}

/// A validated scope message: the planner's run, for a batch of scopes.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeBatch {
    pub request: RunRequest,
    /// Each once, in the message's order.
    pub scopes: Vec<Scope>,
    /// Deliveries these scopes had in earlier messages.
    pub attempts: u32,
    /// The message as read: the scopes sent again are sent in its form.
    pub message: ScopeMessage,
}

/// Validates a scope message (an SQS record's body) for a function of `service`, in `window`:
/// a batch, or a message of one scope from before batches.
pub fn parse_scope_message(service: ServiceId, body: &str, window: &EventWindow) -> Result<ScopeBatch> {
    let message = ScopeMessage::from_body(body).map_err(|e| refuse(format!("scope message {}: {e}", quoted(body))))?;
    if message.service != service {
        return Err(refuse(format!(
            "the scope message is for {}, and this function archives {service}: check the queue's event source mapping",
            message.service
        )));
    }
    check_scopes(&message.scopes)?;
    let run_id =
        RunId::parse(&message.run_id).map_err(|e| refuse(format!("scope message `run_id`: {}", config_detail(&e))))?;
    let event_time = Timestamp::parse(&message.event_time)
        .map_err(|e| refuse(format!("scope message `event_time`: {}", config_detail(&e))))?;
    window.check("scope message `event_time`", &event_time)?;
    let request = scheduled_request(run_id, message.run_id.clone(), event_time);
    Ok(ScopeBatch { request, scopes: message.scopes(), attempts: message.attempts, message })
}

/// A message's scopes: at least one, at most a batch's largest size, each a valid account and
/// region, each once.
fn check_scopes(scopes: &[AccountRegion]) -> Result<()> {
    if scopes.is_empty() {
        return Err(refuse("the scope message has no scope: `scopes` is empty"));
    }
    if scopes.len() > MAX_BATCH_SIZE {
        return Err(refuse(format!("the scope message has {} scopes, more than {MAX_BATCH_SIZE}", scopes.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for scope in scopes {
        if !is_account_id(&scope.account_id) {
            return Err(refuse(format!("scope message `account_id` {} is not 12 digits", quoted(&scope.account_id))));
        }
        if !is_region(&scope.region) {
            return Err(refuse(format!(
                "scope message `region` {} is not an AWS region name like eu-west-1",
                quoted(&scope.region)
            )));
        }
        if !seen.insert(scope) {
            return Err(refuse(format!(
                "the scope message names account {} in {} twice",
                scope.account_id, scope.region
            )));
        }
    }
    Ok(())
}

/// The request of a schedule's run: the planner's, through a scope message, or the function's own.
fn scheduled_request(run_id: RunId, event_id: String, event_time: Timestamp) -> RunRequest {
    RunRequest {
        run_id,
        event_id,
        event_time,
        trigger: Trigger::Scheduled,
        dry_run: false,
        invocation_id: RunRequest::local_invocation_id(),
        deadlines: Deadlines::none(),
    }
}

fn parse_replay(service: ServiceId, payload: &Json, window: &EventWindow) -> Result<Invocation> {
    let envelope: ReplayEnvelope =
        serde_json::from_value(payload.clone()).map_err(|e| refuse(format!("replay event: {e}")))?;
    let replay = envelope.replay;
    let run_id = RunId::parse(&replay.id).map_err(|e| refuse(format!("replay `id`: {}", config_detail(&e))))?;
    let event_time = match &replay.time {
        Some(text) => {
            Timestamp::parse_given(text).map_err(|e| refuse(format!("replay `time`: {}", config_detail(&e))))?
        }
        None => window.now.clone(),
    };
    window.check("replay `time`", &event_time)?;
    if let Some(options) = &replay.options {
        options.validate(service).map_err(|e| refuse(format!("replay `options`: {}", config_detail(&e))))?;
    }
    Ok(Invocation {
        request: RunRequest {
            run_id,
            event_id: replay.id,
            event_time,
            trigger: Trigger::Replay,
            dry_run: replay.dry_run,
            invocation_id: RunRequest::local_invocation_id(),
            deadlines: Deadlines::none(),
        },
        options: replay.options,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lambda::event::fixtures::{now, scheduled, window};

    fn parse(payload: Json) -> Result<Invocation> {
        parse_invocation(ServiceId::IvsStreamSessions, &payload, &window())
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
            (json!({"hello": 1}), "got an object with keys [`hello`]"),
            (no_id, "the scheduled event has no `id`"),
            (no_time, "the scheduled event has no `time`"),
            (not_schedule, "is not a schedule"),
            (bad_time, "not an EventBridge event"),
            (ahead, "more than a day ahead of the clock"),
            (json!({"replay": {}}), "replay event: missing field `id`"),
            (json!({"replay": {"id": "../etc"}}), "replay `id`: run id `../etc`"),
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

    #[test]
    fn event_times_outside_the_history_or_ahead_of_the_clock_are_refused_naming_the_field() {
        // GIVEN scheduled and replay events dated in year 0000, year 0001, before the history's
        // first day, and far ahead
        let scheduled_at = |time: &str| {
            let mut event = scheduled();
            event["time"] = json!(time);
            event
        };
        let cases = [
            (scheduled_at("0000-01-01T00:00:00Z"), "event `time`"),
            (scheduled_at("0001-01-01T00:00:00Z"), "event `time` 0001-01-01T00:00:00Z is before 2024-01-01"),
            (scheduled_at("2023-12-31T23:59:59Z"), "is before 2024-01-01, the first day of the history"),
            (scheduled_at("9999-12-31T23:59:59Z"), "event `time` 9999-12-31T23:59:59Z is more than a day ahead"),
            (json!({"replay": {"id": "r", "time": "0000-06-01T00:00:00Z"}}), "replay `time`"),
            (
                json!({"replay": {"id": "r", "time": "0001-01-01T00:00:00Z"}}),
                "replay `time` 0001-01-01T00:00:00Z is before",
            ),
            (json!({"replay": {"id": "r", "time": "+10000-01-01T00:00:00Z"}}), "replay `time`"),
            (json!({"replay": {"id": "r", "time": "2030-01-01T00:00:00Z"}}), "more than a day ahead of the clock"),
        ];
        for (payload, expected) in cases {
            // WHEN each is parsed THEN it is refused as an invalid event naming the field
            let message = error(payload.clone());
            assert!(message.starts_with("invalid event: ") && message.contains(expected), "{payload}: {message}");
        }
        // AND the first instant of the history is accepted, and a leap second is read as the
        // last instant of its day
        assert!(parse(scheduled_at("2024-01-01T00:00:00Z")).is_ok());
        let leap = parse(scheduled_at("2026-06-30T23:59:60Z")).unwrap();
        assert_eq!(leap.request.event_time.day(), "2026-06-30");
    }

    #[test]
    fn a_megabyte_value_is_named_not_echoed() {
        // GIVEN events whose id, time or a key is a megabyte long
        let huge = "a".repeat(1 << 20);
        let mut scheduled_id = scheduled();
        scheduled_id["id"] = json!(huge.clone());
        let cases = [
            (json!({"replay": {"id": huge.clone()}}), "replay `id`: run id `aaaa"),
            (json!({"replay": {"id": "r", "time": huge.clone()}}), "replay `time`: `aaaa"),
            (json!({"replay": {"id": "r", "dry_run": huge.clone()}}), "invalid type: string"),
            (scheduled_id, "event `id`: run id `aaaa"),
            (json!({huge.clone(): 1}), "got an object with keys [`aaaa"),
        ];
        for (payload, expected) in cases {
            // WHEN each is parsed
            let message = error(payload);
            // THEN the error names the field and quotes the value cut short
            assert!(message.contains(expected), "{}", &message[..200.min(message.len())]);
            assert!(message.len() <= crate::error::MESSAGE_LIMIT + 64, "{} bytes", message.len());
        }
    }

    fn scope_message() -> Json {
        json!({
            "service": "ivs-stream-sessions",
            "run_id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "event_time": "2026-11-22T10:00:00Z",
            "scopes": [
                {"account_id": "111122223333", "region": "eu-west-1"},
                {"account_id": "111122223333", "region": "us-east-1"}
            ]
        })
    }

    #[test]
    fn a_scope_message_runs_the_planners_event_in_each_of_its_accounts_and_regions() {
        // GIVEN the planner's message for two scopes
        let body = scope_message().to_string();
        // WHEN the IVS function takes it from its queue
        let batch = parse_scope_message(ServiceId::IvsStreamSessions, &body, &window()).unwrap();
        // THEN it runs the planner's event in each account and region, in the message's order
        let scopes: Vec<(&str, &str)> =
            batch.scopes.iter().map(|s| (s.account_id.as_str(), s.region.as_str())).collect();
        assert_eq!(scopes, [("111122223333", "eu-west-1"), ("111122223333", "us-east-1")]);
        assert_eq!(batch.request.run_id.as_str(), "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
        assert_eq!(batch.request.event_time.as_str(), "2026-11-22T10:00:00Z");
        assert_eq!((batch.request.trigger, batch.attempts), (Trigger::Scheduled, 0));
        // AND the message the planner builds for those scopes reads back the same
        let rebuilt = ScopeMessage::new(
            ServiceId::IvsStreamSessions,
            &batch.scopes,
            &batch.request.run_id,
            &batch.request.event_time,
        );
        assert_eq!(serde_json::to_value(&rebuilt).unwrap(), scope_message());
        // AND one scope sent again after two deliveries says so
        let again = serde_json::to_value(rebuilt.for_scopes(&batch.scopes[1..], 2)).unwrap();
        assert_eq!((again["scopes"].as_array().unwrap().len(), &again["attempts"]), (1, &json!(2)));
    }

    #[test]
    fn a_bad_scope_message_is_refused_naming_the_field() {
        let with = |field: &str, value: Json| {
            let mut message = scope_message();
            message[field] = value;
            message.to_string()
        };
        let scope = |account: &str, region: &str| json!([{"account_id": account, "region": region}]);
        let one = json!({"account_id": "111122223333", "region": "eu-west-1"});
        let twice = json!([one.clone(), one]);
        let too_many: Vec<Json> =
            (0..501).map(|n| json!({"account_id": format!("{n:012}"), "region": "eu-west-1"})).collect();
        let cases = [
            ("not json".to_owned(), "scope message `not json`: expected ident"),
            (
                with("service", json!("chime-proxy-sessions")),
                "is for chime-proxy-sessions, and this function archives ivs-stream-sessions",
            ),
            (with("service", json!("ec2")), "unknown variant `ec2`"),
            (with("scopes", scope("1111", "eu-west-1")), "`account_id` `1111` is not 12 digits"),
            (with("scopes", scope("111122223333", "mars-1")), "`region` `mars-1` is not an AWS region name"),
            (with("scopes", json!([])), "`scopes` is empty"),
            (with("scopes", twice), "names account 111122223333 in eu-west-1 twice"),
            (with("scopes", json!(too_many)), "has 501 scopes, more than 500"),
            (with("run_id", json!("a/b")), "scope message `run_id`: run id `a/b`"),
            (
                with("event_time", json!("2023-12-31T23:59:59Z")),
                "`event_time` 2023-12-31T23:59:59Z is before 2024-01-01",
            ),
            (with("extra", json!(1)), "unknown field `extra`"),
            (with("attempts", json!(-1)), "invalid value: integer `-1`"),
        ];
        for (body, expected) in cases {
            let err = parse_scope_message(ServiceId::IvsStreamSessions, &body, &window()).unwrap_err();
            assert!(!err.is_retryable(), "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_one_scope_message_of_before_batches_runs_its_scope() {
        let body = json!({
            "service": "ivs-stream-sessions", "account_id": "111122223333", "region": "eu-west-1",
            "run_id": "r-1", "event_time": "2026-11-22T10:00:00Z"
        });
        let batch = parse_scope_message(ServiceId::IvsStreamSessions, &body.to_string(), &window()).unwrap();
        assert_eq!(batch.scopes.len(), 1);
        assert_eq!(batch.scopes[0].account_id, "111122223333");
        let err = parse_scope_message(ServiceId::IvsStreamSessions, &json!({"account_id": "1", "region": "eu-west-1", "service": "ivs-stream-sessions", "run_id": "r", "event_time": "2026-11-22T10:00:00Z"}).to_string(), &window()).unwrap_err();
        assert!(err.to_string().contains("`account_id` `1` is not 12 digits"), "{err}");
    }
}

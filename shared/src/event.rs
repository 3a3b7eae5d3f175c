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
//! - a **scope message** from the service's queue (an SQS record's body), sent by the planner for
//!   one account and region: `{"service", "account_id", "region", "run_id", "event_time"}`, the
//!   run id and time being the planner's scheduled event's, shared by every scope it planned.
//!
//! Anything else is refused with an error that names what is wrong, quoting bad values cut to a
//! bounded length; nothing is read or written. An event time must fall between the first day of
//! the history (`HISTORY_START_DATE`: the Glue tables read no partition before it) and a day
//! ahead of the clock.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::deadline::Deadlines;
use crate::error::{bounded, quoted, Error, Result};
use crate::history::RunId;
use crate::model::{is_account_id, is_region, Scope, ServiceId, Timestamp};
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
    /// The account and region of a scope message; `None`: the function's own.
    pub scope: Option<Scope>,
}

/// The message the planner sends for one scope, and a function takes from its queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeMessage {
    pub service: ServiceId,
    pub account_id: String,
    pub region: String,
    /// The planner's event id: the run id in every scope it planned.
    pub run_id: String,
    /// The planner's event time: the history partition.
    pub event_time: String,
}

impl ScopeMessage {
    pub fn new(scope: &Scope, run_id: &RunId, event_time: &Timestamp) -> Self {
        ScopeMessage {
            service: scope.service,
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
            run_id: run_id.to_string(),
            event_time: event_time.to_string(),
        }
    }

    pub fn scope(&self) -> Scope {
        Scope { service: self.service, account_id: self.account_id.clone(), region: self.region.clone() }
    }
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
    Error::Event(bounded(detail.to_string()))
}

/// The times an event may name: from the first day of the history to a day ahead of `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventWindow {
    pub now: Timestamp,
    /// Midnight UTC of `HISTORY_START_DATE`.
    pub history_start: Timestamp,
}

impl EventWindow {
    /// The window of an invocation at `now` for history starting at `history_start`.
    pub fn new(now: Timestamp, history_start: Timestamp) -> Self {
        EventWindow { now, history_start }
    }

    fn check(&self, field: &str, time: &Timestamp) -> Result<()> {
        if time < &self.history_start {
            return Err(refuse(format!(
                "{field} {time} is before {}, the first day of the history (HISTORY_START_DATE): the Glue tables read no partition before it",
                self.history_start.day()
            )));
        }
        if time.epoch_seconds() > self.now.epoch_seconds() + MAX_CLOCK_SKEW_SECONDS {
            return Err(refuse(format!("{field} {time} is more than a day ahead of the clock ({})", self.now)));
        }
        Ok(())
    }
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
        return parse_scheduled(payload, window);
    }
    let mut keys: Vec<String> = fields.keys().map(|key| quoted(key)).collect();
    keys.sort_unstable();
    Err(refuse(format!(
        "expected an EventBridge scheduled event or {{\"replay\": {{\"id\": ...}}}}, got an object with keys [{}]",
        keys.join(", ")
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEnvelope {
    plan: PlanFields,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFields {
    service: ServiceId,
    id: String,
    time: String,
}

/// Validates the planner's event, `{"plan": {"service": "...", "id": "...", "time": "..."}}`: each
/// service's schedule sends it (its rule's input transformer puts the scheduled event's id and
/// time in), and so may a person planning one service by hand.
pub fn parse_plan_event(payload: &Json, window: &EventWindow) -> Result<crate::plan::PlanRequest> {
    let envelope: PlanEnvelope = serde_json::from_value(payload.clone())
        .map_err(|e| refuse(format!("expected {{\"plan\": {{\"service\", \"id\", \"time\"}}}}: {e}")))?;
    let plan = envelope.plan;
    let run_id = RunId::parse(&plan.id).map_err(|e| refuse(format!("plan `id`: {}", config_detail(&e))))?;
    let event_time = Timestamp::parse(&plan.time).map_err(|e| refuse(format!("plan `time`: {}", config_detail(&e))))?;
    window.check("plan `time`", &event_time)?;
    Ok(crate::plan::PlanRequest { service: plan.service, run_id, event_time })
}

/// Validates a scope message (an SQS record's body) for a function of `service`, in `window`.
pub fn parse_scope_message(service: ServiceId, body: &str, window: &EventWindow) -> Result<Invocation> {
    let message: ScopeMessage =
        serde_json::from_str(body).map_err(|e| refuse(format!("scope message {}: {e}", quoted(body))))?;
    if message.service != service {
        return Err(refuse(format!(
            "the scope message is for {}, and this function archives {service}: check the queue's event source mapping",
            message.service
        )));
    }
    if !is_account_id(&message.account_id) {
        return Err(refuse(format!("scope message `account_id` {} is not 12 digits", quoted(&message.account_id))));
    }
    if !is_region(&message.region) {
        return Err(refuse(format!(
            "scope message `region` {} is not an AWS region name like eu-west-1",
            quoted(&message.region)
        )));
    }
    let run_id =
        RunId::parse(&message.run_id).map_err(|e| refuse(format!("scope message `run_id`: {}", config_detail(&e))))?;
    let event_time = Timestamp::parse(&message.event_time)
        .map_err(|e| refuse(format!("scope message `event_time`: {}", config_detail(&e))))?;
    window.check("scope message `event_time`", &event_time)?;
    Ok(scheduled_run(run_id, message.run_id.clone(), event_time, Some(message.scope())))
}

/// The run of a schedule: the planner's through a scope message, or the function's own.
fn scheduled_run(run_id: RunId, event_id: String, event_time: Timestamp, scope: Option<Scope>) -> Invocation {
    Invocation {
        request: RunRequest {
            run_id,
            event_id,
            event_time,
            trigger: Trigger::Scheduled,
            dry_run: false,
            invocation_id: RunRequest::local_invocation_id(),
            deadlines: Deadlines::none(),
        },
        options: None,
        scope,
    }
}

fn parse_scheduled(payload: &Json, window: &EventWindow) -> Result<Invocation> {
    let event: EventBridgeEvent =
        serde_json::from_value(payload.clone()).map_err(|e| refuse(format!("not an EventBridge event: {e}")))?;
    if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
        return Err(refuse(format!(
            "an EventBridge event from {} of type {} is not a schedule; expected source `aws.events`, detail-type `Scheduled Event`",
            quoted(&event.source),
            quoted(&event.detail_type)
        )));
    }
    let id = event.id.filter(|id| !id.is_empty()).ok_or_else(|| refuse("the scheduled event has no `id`"))?;
    let run_id = RunId::parse(&id).map_err(|e| refuse(format!("event `id`: {}", config_detail(&e))))?;
    event.time.ok_or_else(|| refuse("the scheduled event has no `time`"))?;
    // The text itself, not chrono's reading of it: chrono takes years 0000 and beyond 9999, and
    // leap seconds, which no partition can be named after.
    let text = payload["time"].as_str().unwrap_or_default();
    let event_time = Timestamp::parse(text).map_err(|e| refuse(format!("event `time`: {}", config_detail(&e))))?;
    window.check("event `time`", &event_time)?;
    Ok(scheduled_run(run_id, id, event_time, None))
}

fn parse_replay(service: ServiceId, payload: &Json, window: &EventWindow) -> Result<Invocation> {
    let envelope: ReplayEnvelope =
        serde_json::from_value(payload.clone()).map_err(|e| refuse(format!("replay event: {e}")))?;
    let replay = envelope.replay;
    let run_id = RunId::parse(&replay.id).map_err(|e| refuse(format!("replay `id`: {}", config_detail(&e))))?;
    let event_time = match &replay.time {
        Some(text) => Timestamp::parse(text).map_err(|e| refuse(format!("replay `time`: {}", config_detail(&e))))?,
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
        scope: None,
    })
}

/// What a validation error says, without its "invalid configuration: " heading: in an event it
/// is the event that is invalid.
fn config_detail(err: &Error) -> String {
    match err {
        Error::Config(detail) => detail.clone(),
        other => other.to_string(),
    }
}

/// What a JSON value is, for an error message: `a string`, `an array`, …
pub fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// What the compactor is asked: one day, of some services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionRequest {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub services: Vec<ServiceId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactEnvelope {
    compact: CompactFields,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactFields {
    day: String,
    service: Option<ServiceId>,
}

/// Validates the compactor's event: its daily schedule (the day before the event's, every
/// service), or `{"compact": {"day": "YYYY-MM-DD", "service": "..."}}` (a replay of one day, of
/// one service or, without `service`, of all). A day not over yet is refused: its runs are still
/// writing.
pub fn parse_compaction_event(payload: &Json, window: &EventWindow) -> Result<CompactionRequest> {
    let Json::Object(fields) = payload else {
        return Err(refuse(format!("the event must be a JSON object, not {}", kind_of(payload))));
    };
    let (day, services) = if fields.contains_key("compact") {
        let envelope: CompactEnvelope = serde_json::from_value(payload.clone())
            .map_err(|e| refuse(format!("expected {{\"compact\": {{\"day\", \"service\"}}}}: {e}")))?;
        let fields = envelope.compact;
        let midnight = Timestamp::parse(&format!("{}T00:00:00Z", fields.day))
            .ok()
            .filter(|at| at.day() == fields.day)
            .ok_or_else(|| refuse(format!("compact `day` {} is not a day (YYYY-MM-DD)", quoted(&fields.day))))?;
        window.check("compact `day`", &midnight)?;
        (fields.day, fields.service.map_or_else(|| ServiceId::ALL.to_vec(), |service| vec![service]))
    } else {
        let run = parse_scheduled(payload, window)?;
        let midnight = run.request.event_time.epoch_seconds().div_euclid(86_400) * 86_400;
        let day_before = Timestamp::from_datetime(&aws_smithy_types::DateTime::from_secs(midnight - 86_400))?;
        (day_before.day().to_owned(), ServiceId::ALL.to_vec())
    };
    if day.as_str() >= window.now.day() {
        return Err(refuse(format!("day {day} is not over yet ({}): its runs may still write to it", window.now)));
    }
    Ok(CompactionRequest { day, services })
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

    fn window() -> EventWindow {
        EventWindow::new(now(), Timestamp::parse("2024-01-01T00:00:00Z").unwrap())
    }

    fn parse(payload: Json) -> Result<Invocation> {
        parse_invocation(ServiceId::IvsStreamSessions, &payload, &window())
    }

    fn error(payload: Json) -> String {
        let err = parse(payload).unwrap_err();
        assert!(!err.is_retryable());
        err.to_string()
    }

    #[test]
    fn the_compactors_schedule_compacts_the_day_before_of_every_service_and_a_replay_one_day() {
        let request = parse_compaction_event(&scheduled(), &window()).unwrap();
        assert_eq!((request.day.as_str(), request.services.len()), ("2026-11-21", 5));
        let replay = json!({"compact": {"day": "2026-11-20", "service": "ivs-stream-sessions"}});
        let request = parse_compaction_event(&replay, &window()).unwrap();
        assert_eq!((request.day.as_str(), request.services), ("2026-11-20", vec![ServiceId::IvsStreamSessions]));
        let every = parse_compaction_event(&json!({"compact": {"day": "2026-01-31"}}), &window()).unwrap();
        assert_eq!(every.services, ServiceId::ALL.to_vec());
    }

    #[test]
    fn a_compaction_event_naming_no_day_a_bad_one_or_one_not_over_is_refused() {
        let cases = [
            (json!({"compact": {"day": "2026-02-30"}}), "compact `day` `2026-02-30` is not a day"),
            (json!({"compact": {"day": "22/11/2026"}}), "is not a day (YYYY-MM-DD)"),
            (json!({"compact": {"day": "2023-12-31"}}), "before 2024-01-01, the first day of the history"),
            (json!({"compact": {"day": "2026-11-22"}}), "day 2026-11-22 is not over yet"),
            (json!({"compact": {"day": "2026-11-20", "service": "s3"}}), "unknown variant `s3`, expected one of"),
            (json!({"compact": {"day": "2026-11-20", "dry_run": true}}), "unknown field `dry_run`"),
            (json!({"compact": {}}), "missing field `day`"),
            (json!({"replay": {"id": "x"}}), "not an EventBridge event"),
            (json!([1]), "the event must be a JSON object, not an array"),
        ];
        for (payload, expected) in cases {
            let err = parse_compaction_event(&payload, &window()).unwrap_err();
            assert!(matches!(err, Error::Event(_)), "{err}");
            assert!(err.to_string().contains(expected), "{err} (expected {expected})");
        }
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
            "account_id": "111122223333",
            "region": "eu-west-1",
            "run_id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "event_time": "2026-11-22T10:00:00Z"
        })
    }

    #[test]
    fn a_scope_message_runs_the_planners_event_in_its_account_and_region() {
        // GIVEN the planner's message for one scope
        let body = scope_message().to_string();
        // WHEN the IVS function takes it from its queue
        let invocation = parse_scope_message(ServiceId::IvsStreamSessions, &body, &window()).unwrap();
        // THEN it runs the planner's event in that account and region
        let scope = invocation.scope.unwrap();
        assert_eq!((scope.account_id.as_str(), scope.region.as_str()), ("111122223333", "eu-west-1"));
        assert_eq!(invocation.request.run_id.as_str(), "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
        assert_eq!(invocation.request.event_time.as_str(), "2026-11-22T10:00:00Z");
        assert_eq!(invocation.request.trigger, Trigger::Scheduled);
        // AND the message the planner builds for that scope reads back the same
        let rebuilt = ScopeMessage::new(&scope, &invocation.request.run_id, &invocation.request.event_time);
        assert_eq!(serde_json::to_value(&rebuilt).unwrap(), scope_message());
    }

    #[test]
    fn a_bad_scope_message_is_refused_naming_the_field() {
        let with = |field: &str, value: Json| {
            let mut message = scope_message();
            message[field] = value;
            message.to_string()
        };
        let cases = [
            ("not json".to_owned(), "scope message `not json`: expected ident"),
            (
                with("service", json!("chime-proxy-sessions")),
                "is for chime-proxy-sessions, and this function archives ivs-stream-sessions",
            ),
            (with("service", json!("ec2")), "unknown variant `ec2`"),
            (with("account_id", json!("1111")), "`account_id` `1111` is not 12 digits"),
            (with("region", json!("mars-1")), "`region` `mars-1` is not an AWS region name"),
            (with("run_id", json!("a/b")), "scope message `run_id`: run id `a/b`"),
            (
                with("event_time", json!("2023-12-31T23:59:59Z")),
                "`event_time` 2023-12-31T23:59:59Z is before 2024-01-01",
            ),
            (with("extra", json!(1)), "unknown field `extra`"),
        ];
        for (body, expected) in cases {
            let err = parse_scope_message(ServiceId::IvsStreamSessions, &body, &window()).unwrap_err();
            assert!(!err.is_retryable(), "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_plan_event_names_the_service_and_the_schedules_id_and_time() {
        let payload =
            json!({"plan": {"service": "gamelift-stream-sessions", "id": "53dc4d37", "time": "2026-11-22T10:00:00Z"}});
        let request = parse_plan_event(&payload, &window()).unwrap();
        assert_eq!(request.service, ServiceId::GameliftStreamSessions);
        assert_eq!((request.run_id.as_str(), request.event_time.as_str()), ("53dc4d37", "2026-11-22T10:00:00Z"));
        let cases = [
            (json!({"plan": {"service": "ec2", "id": "a", "time": "2026-11-22T10:00:00Z"}}), "unknown variant `ec2`"),
            (
                json!({"plan": {"service": "gamelift-stream-sessions", "id": "a/b", "time": "2026-11-22T10:00:00Z"}}),
                "plan `id`: run id `a/b`",
            ),
            (
                json!({"plan": {"service": "gamelift-stream-sessions", "id": "a", "time": "2030-01-01T00:00:00Z"}}),
                "plan `time` 2030-01-01T00:00:00Z is more than a day ahead",
            ),
            (scheduled(), "expected {\"plan\""),
        ];
        for (payload, expected) in cases {
            let err = parse_plan_event(&payload, &window()).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}

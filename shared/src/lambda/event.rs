//! What every program's events have in common: the window of times an event may name (from the
//! first day of the history, `HISTORY_START_DATE`, to a day ahead of the clock; the Glue tables
//! read no partition before it), the EventBridge schedule, and refusals that name what is wrong,
//! quoting bad values cut to a bounded length.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value as Json;

use crate::error::{bounded, quoted, Error, Result};
use crate::model::{RunId, Timestamp};

/// How far ahead of the clock an event's time may be.
const MAX_CLOCK_SKEW_SECONDS: i64 = 24 * 3600;

/// An invalid event, saying why.
pub fn refuse(detail: impl std::fmt::Display) -> Error {
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

    /// Refuses `time` (named `field` in the error) outside the window.
    pub fn check(&self, field: &str, time: &Timestamp) -> Result<()> {
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

/// What an EventBridge scheduled event names: its id (the run id) and time (the partition).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub run_id: RunId,
    /// The event's id as sent.
    pub id: String,
    pub time: Timestamp,
}

/// Validates an EventBridge scheduled event (`source` `aws.events`, `detail-type` `Scheduled
/// Event`) in `window`.
pub fn parse_schedule(payload: &Json, window: &EventWindow) -> Result<Schedule> {
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
    let event_time =
        Timestamp::parse_given(text).map_err(|e| refuse(format!("event `time`: {}", config_detail(&e))))?;
    window.check("event `time`", &event_time)?;
    Ok(Schedule { run_id, id, time: event_time })
}

/// What a validation error says, without its "invalid configuration: " heading: in an event it
/// is the event that is invalid.
pub fn config_detail(err: &Error) -> String {
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

/// The events of the tests of every program: a schedule at 2026-11-22T10:00:00Z, read at 10:00:30
/// with the history starting 2024-01-01.
#[cfg(any(test, feature = "testing"))]
pub mod fixtures {
    use serde_json::{json, Value as Json};

    use super::EventWindow;
    use crate::model::Timestamp;

    pub fn now() -> Timestamp {
        Timestamp::parse("2026-11-22T10:00:30Z").unwrap()
    }

    pub fn scheduled() -> Json {
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

    pub fn window() -> EventWindow {
        EventWindow::new(now(), Timestamp::parse("2024-01-01T00:00:00Z").unwrap())
    }
}

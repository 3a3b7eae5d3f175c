//! The compactor's events: its daily schedule (the day before the event's, every service), or
//! `{"compact": {"day": "YYYY-MM-DD", "service": "..."}}` (a replay of one day, of one service or,
//! without `service`, of all).

use serde::Deserialize;
use serde_json::Value as Json;
use session_archiver::lambda::event::{kind_of, parse_schedule, refuse, EventWindow};
use session_archiver::model::{ServiceId, Timestamp};
use session_archiver::{error::quoted, Result};

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
        let schedule = parse_schedule(payload, window)?;
        let midnight = schedule.time.epoch_seconds().div_euclid(86_400) * 86_400;
        // The history starts in 2000 or later: the day before is after the epoch.
        let day_before = std::time::UNIX_EPOCH + std::time::Duration::from_secs((midnight - 86_400).max(0) as u64);
        let day_before = Timestamp::from_system_time(day_before);
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
    use session_archiver::lambda::event::fixtures::{scheduled, window};
    use session_archiver::Error;

    use super::*;

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
}

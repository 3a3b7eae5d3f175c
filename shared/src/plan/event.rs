//! The planner's events: the plan event it takes, `{"plan": {"service", "id", "time"}}`, and the
//! scope message it sends for each scope, `{"service", "account_id", "region", "run_id",
//! "event_time"}`, the run id and time being the plan event's, shared by every scope it planned.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::Result;
use crate::lambda::event::{config_detail, refuse, EventWindow};
use crate::model::{RunId, Scope, ServiceId, Timestamp};

/// A request to plan one service: the planner's scheduled event gives its id and time to every
/// scope's run.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest {
    pub service: ServiceId,
    pub run_id: RunId,
    pub event_time: Timestamp,
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
pub fn parse_plan_event(payload: &Json, window: &EventWindow) -> Result<PlanRequest> {
    let envelope: PlanEnvelope = serde_json::from_value(payload.clone())
        .map_err(|e| refuse(format!("expected {{\"plan\": {{\"service\", \"id\", \"time\"}}}}: {e}")))?;
    let plan = envelope.plan;
    let run_id = RunId::parse(&plan.id).map_err(|e| refuse(format!("plan `id`: {}", config_detail(&e))))?;
    let event_time = Timestamp::parse(&plan.time).map_err(|e| refuse(format!("plan `time`: {}", config_detail(&e))))?;
    window.check("plan `time`", &event_time)?;
    Ok(PlanRequest { service: plan.service, run_id, event_time })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lambda::event::fixtures::{scheduled, window};

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

//! The planner's events: the plan event it takes, `{"plan": {"service", "id", "time"}}`, and the
//! scope message it sends for each batch of scopes, `{"service", "run_id", "event_time",
//! "scopes": [{"account_id", "region"}, …]}`, the run id and time being the plan event's, shared
//! by every scope it planned.

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

/// The message the planner sends for a batch of scopes of one service, and a function takes from
/// its queue. A function sends one again for a single scope of a batch that failed (with the
/// deliveries it has had in `attempts`), and for the scopes of a batch it had no time to start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeMessage {
    pub service: ServiceId,
    /// The planner's event id: the run id in every scope it planned.
    pub run_id: String,
    /// The planner's event time: the history partition.
    pub event_time: String,
    /// The accounts and regions of the batch, each once.
    pub scopes: Vec<AccountRegion>,
    /// How many times these scopes were delivered in earlier messages: a scope sent again alone
    /// carries its count, so its last delivery is known whatever the message.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

/// One scope of a [`ScopeMessage`]: the service is the message's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRegion {
    pub account_id: String,
    pub region: String,
}

/// The message of one scope before batches (`{"service", "account_id", "region", "run_id",
/// "event_time"}`), still read: a queue may hold some while a deployment is updated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneScopeMessage {
    service: ServiceId,
    account_id: String,
    region: String,
    run_id: String,
    event_time: String,
}

impl AccountRegion {
    fn of(scope: &Scope) -> Self {
        AccountRegion { account_id: scope.account_id.clone(), region: scope.region.clone() }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ScopeMessage {
    /// The message of `scopes` (all of one service, given first) for the planner's event.
    pub fn new(service: ServiceId, scopes: &[Scope], run_id: &RunId, event_time: &Timestamp) -> Self {
        ScopeMessage {
            service,
            run_id: run_id.to_string(),
            event_time: event_time.to_string(),
            scopes: scopes.iter().map(AccountRegion::of).collect(),
            attempts: 0,
        }
    }

    /// The same run for `scopes` only, having had `attempts` deliveries.
    pub fn for_scopes(&self, scopes: &[Scope], attempts: u32) -> Self {
        ScopeMessage {
            service: self.service,
            run_id: self.run_id.clone(),
            event_time: self.event_time.clone(),
            scopes: scopes.iter().map(AccountRegion::of).collect(),
            attempts,
        }
    }

    /// The scopes of the message, in its order.
    pub fn scopes(&self) -> Vec<Scope> {
        self.scopes
            .iter()
            .map(|s| Scope { service: self.service, account_id: s.account_id.clone(), region: s.region.clone() })
            .collect()
    }

    /// The message's body, as it is sent.
    pub fn body(&self) -> crate::error::Result<String> {
        serde_json::to_string(self).map_err(|e| crate::error::Error::Mapping(format!("scope message: {e}")))
    }

    /// Reads a message's body: a batch, or the one-scope message of before (as a batch of one).
    pub fn from_body(body: &str) -> std::result::Result<Self, serde_json::Error> {
        let json: Json = serde_json::from_str(body)?;
        if json.get("scopes").is_some() || json.get("account_id").is_none() {
            return serde_json::from_value(json);
        }
        let one: OneScopeMessage = serde_json::from_value(json)?;
        Ok(ScopeMessage {
            service: one.service,
            run_id: one.run_id,
            event_time: one.event_time,
            scopes: vec![AccountRegion { account_id: one.account_id, region: one.region }],
            attempts: 0,
        })
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
    let event_time =
        Timestamp::parse_given(&plan.time).map_err(|e| refuse(format!("plan `time`: {}", config_detail(&e))))?;
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

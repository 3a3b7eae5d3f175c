//! The runs dataset: one line per scope and run an invocation ran, with the columns of
//! [`RUN_COLUMNS`]: when the scope was listed, how the run went, what it counted, why it failed.
//! A scope with no session leaves this line and no other object; a run skipped (another holds
//! the scope, or its event's run is complete) read and wrote nothing, and has none.
//!
//! `<prefix>/runs/<service>/dt=<event day>/<run id>.<invocation id>.jsonl.gz`, one object an
//! invocation: the scopes of a batch in one object, and a delivery again its own object.

use serde_json::{json, Value as Json};

use super::keys::under_prefix;
use crate::model::{ServiceId, Timestamp, RUN_COLUMNS};

/// One line of the runs dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct RunLine {
    pub service: ServiceId,
    pub account_id: String,
    pub region: String,
    pub run_id: String,
    pub event_time: Timestamp,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// `complete`, `partial`, `failed` or `dry_run`.
    pub status: &'static str,
    pub quiet: bool,
    pub sessions: u64,
    pub new: u64,
    pub changed: u64,
    pub ended: u64,
    pub pages: u64,
    pub api_calls: u64,
    /// The failure's kind and message, for a failed run.
    pub error: Option<(&'static str, String)>,
    pub invocation_id: String,
}

impl RunLine {
    /// The line as NDJSON: the columns of [`RUN_COLUMNS`], in order.
    pub fn to_json(&self) -> String {
        let (kind, message) = match &self.error {
            Some((kind, message)) => (Json::from(*kind), Json::from(message.as_str())),
            None => (Json::Null, Json::Null),
        };
        let values = [
            json!(self.service.as_str()),
            json!(self.account_id),
            json!(self.region),
            json!(self.run_id),
            json!(self.event_time.as_str()),
            json!(self.started_at.as_str()),
            json!(self.finished_at.as_str()),
            json!(self.status),
            json!(self.quiet),
            json!(self.sessions),
            json!(self.new),
            json!(self.changed),
            json!(self.ended),
            json!(self.pages),
            json!(self.api_calls),
            kind,
            message,
            json!(self.invocation_id),
        ];
        let line: serde_json::Map<String, Json> =
            RUN_COLUMNS.iter().zip(values).map(|(column, value)| (column.name.to_owned(), value)).collect();
        Json::Object(line).to_string()
    }
}

/// The key of an invocation's runs object.
pub fn runs_key(prefix: &str, service: ServiceId, event_time: &Timestamp, run_id: &str, invocation_id: &str) -> String {
    let invocation: String =
        invocation_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    under_prefix(prefix, &format!("runs/{service}/dt={}/{run_id}.{invocation}.jsonl.gz", event_time.day()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_line_has_every_column_in_order_and_a_key_of_its_day_and_invocation() {
        let at = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        let line = RunLine {
            service: ServiceId::IvsStreamSessions,
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            run_id: "plan-1".into(),
            event_time: at.clone(),
            started_at: at.clone(),
            finished_at: at.clone(),
            status: "failed",
            quiet: false,
            sessions: 0,
            new: 0,
            changed: 0,
            ended: 0,
            pages: 0,
            api_calls: 1,
            error: Some(("MemberRole", "account 111122223333, region eu-west-1: STS AssumeRole …".into())),
            invocation_id: "req/1".into(),
        };
        let json: Json = serde_json::from_str(&line.to_json()).unwrap();
        let names: std::collections::BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let columns: std::collections::BTreeSet<&str> = RUN_COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!((names, json.as_object().unwrap().len()), (columns, RUN_COLUMNS.len()));
        assert_eq!((json["status"].as_str(), json["error_kind"].as_str()), (Some("failed"), Some("MemberRole")));
        let key = runs_key("history", ServiceId::IvsStreamSessions, &at, "plan-1", "req/1");
        assert_eq!(key, "history/runs/ivs-stream-sessions/dt=2026-11-22/plan-1.req_1.jsonl.gz");
    }
}

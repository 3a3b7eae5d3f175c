//! What starts a run and what it returns.

use serde::Serialize;

use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::deadline::Deadlines;
use crate::table::RunCounts;

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An EventBridge schedule.
    Scheduled,
    /// A replay event sent by hand.
    Replay,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Replay => "replay",
        }
    }
}

/// A validated request for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// Derived from the event: a redelivered event has the same run id and writes the same keys.
    pub run_id: RunId,
    pub event_id: String,
    /// When the event was sent: the `dt` partition of the history and the manifest's sort key.
    pub event_time: Timestamp,
    pub trigger: Trigger,
    /// Read and report, write nothing.
    pub dry_run: bool,
    /// Who runs it: Lambda's request id, which a retry of a failed attempt keeps. A second
    /// delivery of the same event, running at the same time, has another and is skipped.
    pub invocation_id: String,
    /// When to stop paging, to give up waiting, and to end; none outside Lambda.
    pub deadlines: Deadlines,
}

impl RunRequest {
    /// An invocation id for a run started outside Lambda: unique to this process and moment.
    pub fn local_invocation_id() -> String {
        format!("local-{}-{:016x}", std::process::id(), fastrand::u64(..))
    }
}

impl RunSummary {
    /// The summary of `service`'s run `run_id` that ended with `outcome` in part `part`, with
    /// nothing counted or written yet.
    pub fn new(
        service: ServiceId,
        run_id: &str,
        outcome: RunOutcome,
        part: u32,
        started_at: Timestamp,
        finished_at: Timestamp,
    ) -> Self {
        RunSummary {
            service,
            run_id: run_id.to_owned(),
            outcome,
            part,
            started_at,
            finished_at,
            counts: RunCounts::default(),
            listings_left: 0,
            s3_keys: Vec::new(),
            lease_held_by: None,
            already_complete: false,
            state_rebuilt_because: None,
            quiet: false,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Complete,
    /// The deadline came first: what was read is written and the place is kept; the next
    /// invocation carries on.
    Partial,
    /// Nothing was read or written: another run held the lease, or the event's run is complete.
    Skipped,
    /// Read and reported, nothing written.
    DryRun,
}

/// What a run returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub service: ServiceId,
    /// The run this invocation worked on: the event's own, or the partial one it resumed.
    pub run_id: String,
    pub outcome: RunOutcome,
    /// 0 for the first invocation of a run, 1… for the ones that resumed it.
    pub part: u32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// What this invocation did.
    #[serde(flatten)]
    pub counts: RunCounts,
    /// Listings not finished yet (partial runs and dry runs that reached the deadline).
    pub listings_left: u64,
    /// History objects this invocation wrote.
    pub s3_keys: Vec<String>,
    /// For a skipped run: the run that holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_held_by: Option<String>,
    /// For a skipped run whose event was already archived by a complete run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_complete: bool,
    /// Why a listing read its previous state from the table rather than the state object its
    /// last run left (the first listing's reason, when several did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_rebuilt_because: Option<String>,
    /// A quiet run: the scope held no session before and holds none now; nothing was written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

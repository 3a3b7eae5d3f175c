//! A session's write made without reading its item first: what the diff knows of the item (live
//! with another hash, ended, or live and missed by a complete listing) travels with the write as
//! its condition, and the table returns the item as it was, so the change line is made from the
//! stored state exactly as if it had been read (see docs/decisions.md, 32). A churn run then
//! pays write units only for its changed and ended sessions, not half a read unit more each.
//!
//! When the item is not as the diff knows it (an item changed by something else, a state the
//! table no longer matches), the table refuses the write and returns the item: the session is
//! decided from it as from a read ([`super::ListingDiff::updated`]), and written whole.

use crate::model::{Change, SessionRecord, Timestamp};

use super::StoredSession;

/// The most runs a condition names (DynamoDB's `IN` takes 100 operands): past it, sessions are
/// read before they are written.
pub const MAX_CONDITION_RUNS: usize = 100;

/// One session written in place, if its item stands as the diff knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionUpdate {
    pub parent_id: Option<String>,
    pub session_id: String,
    pub write: UpdateWrite,
    /// The run that writes (its `last_run`).
    pub run_id: String,
    /// The runs whose items are decided from a read (this run, and those whose changes it records
    /// again): an item one of them wrote last is refused.
    pub not_written_by: Vec<String>,
}

/// What the update writes.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateWrite {
    /// A listed session whose item is live with another hash ([`Change::Changed`]) or ended
    /// ([`Change::Opened`]): the item takes the listed record, `last_seen` and the change; its
    /// status before becomes `previous_status`; `first_seen` stays; it is live again.
    Listed { record: SessionRecord, record_hash: String, change: Change, last_seen: Timestamp },
    /// A live session a complete listing did not return: marked gone, its last state kept.
    Ended { gone_at: Timestamp, expires_at: i64 },
}

/// What the table did with an update: the item before it either way (`None`: there was none).
#[derive(Clone, Debug, PartialEq)]
pub enum Updated {
    Applied(StoredSession),
    Refused(Option<StoredSession>),
}

impl SessionUpdate {
    /// Whether the item stands as the diff knows it: the condition the table checks.
    pub fn holds_for(&self, stored: Option<&StoredSession>) -> bool {
        let Some(stored) = stored else { return false };
        if self.not_written_by.contains(&stored.last_run) {
            return false;
        }
        match &self.write {
            UpdateWrite::Listed { change: Change::Opened, .. } => !stored.is_live(),
            UpdateWrite::Listed { record_hash, .. } => stored.is_live() && stored.record_hash != *record_hash,
            UpdateWrite::Ended { .. } => stored.is_live(),
        }
    }

    /// The item once the update is applied to `before` (one it holds for).
    pub fn applied_to(&self, before: &StoredSession) -> StoredSession {
        let previous_status = before.record.status.clone();
        match &self.write {
            UpdateWrite::Listed { record, record_hash, change, last_seen } => StoredSession {
                record: record.clone(),
                record_hash: record_hash.clone(),
                first_seen: before.first_seen.clone(),
                last_seen: last_seen.clone(),
                last_run: self.run_id.clone(),
                change: *change,
                previous_status,
                gone_at: None,
                expires_at: None,
            },
            UpdateWrite::Ended { gone_at, expires_at } => StoredSession {
                last_run: self.run_id.clone(),
                change: Change::Ended,
                previous_status,
                gone_at: Some(gone_at.clone()),
                expires_at: Some(*expires_at),
                ..before.clone()
            },
        }
    }

    /// The listed session it writes (`None` for an end): what a run that writes nothing (a dry
    /// run) decides from a read instead.
    pub fn into_listed(self) -> Option<(SessionRecord, String)> {
        match self.write {
            UpdateWrite::Listed { record, record_hash, .. } => Some((record, record_hash)),
            UpdateWrite::Ended { .. } => None,
        }
    }
}

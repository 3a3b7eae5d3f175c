//! What the table holds of a session, as the diff reads and decides it: the whole item
//! ([`StoredSession`], written when a session changes), and the projection a listing's previous
//! state is read with ([`StoredSummary`]).

use crate::model::Change;
use crate::model::{SessionRecord, Timestamp};

/// A session as the table holds it: its last written state and what the archiver knows of it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    pub record: SessionRecord,
    /// The hash of `record` when it was written.
    pub record_hash: String,
    /// When a run first saw the session.
    pub first_seen: Timestamp,
    /// When the run that last wrote the session saw it (unchanged sessions are not rewritten).
    pub last_seen: Timestamp,
    /// The run that last wrote the item.
    pub last_run: String,
    /// The change `last_run` recorded.
    pub change: Change,
    /// The status before that change.
    pub previous_status: Option<String>,
    /// When a complete listing of its parent first missed the session; `None` while live.
    pub gone_at: Option<Timestamp>,
    /// DynamoDB TTL (epoch seconds), set on ended sessions only.
    pub expires_at: Option<i64>,
}

impl StoredSession {
    pub fn is_live(&self) -> bool {
        self.gone_at.is_none()
    }
}

/// What a listing's diff needs of a stored session, read with a projection: a fraction of the
/// item's bytes, so the previous state of a large listing is read in less memory and time.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSummary {
    pub session_id: String,
    pub record_hash: String,
    pub live: bool,
    pub last_run: String,
    pub change: Change,
    /// When an ended session's item expires (DynamoDB TTL).
    pub expires_at: Option<i64>,
}

impl From<&StoredSession> for StoredSummary {
    fn from(stored: &StoredSession) -> Self {
        StoredSummary {
            session_id: stored.record.session_id.clone(),
            record_hash: stored.record_hash.clone(),
            live: stored.is_live(),
            last_run: stored.last_run.clone(),
            change: stored.change,
            expires_at: stored.expires_at,
        }
    }
}

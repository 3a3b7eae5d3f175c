//! Where a run that stopped early stands, so the next invocation resumes it: pure, no I/O.
//!
//! A run that reaches its deadline stops paging, writes what it has (items, then its part of the
//! history), and only then saves its [`Progress`] in one item: that put is the commit point of
//! the part. A crash before it leaves the previous progress in place, and the part is done again
//! under the same keys, so no history line is written twice.
//!
//! The progress names the listings that are done and, for each listing stopped mid-pagination,
//! its next token and the sessions it has already seen (8-byte fingerprints of their ids): those
//! are not listed again (no snapshot line twice) and are not taken for ended when the listing
//! completes. A listing whose token the service no longer accepts starts again from its first
//! page with the same seen sessions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::RunCounts;
use crate::error::{Error, Result};
use crate::model::Timestamp;

/// DynamoDB's item limit is 400 KB; the rest of the item (keys, a few attributes) fits in the
/// margin.
pub const MAX_ENCODED_PROGRESS: usize = 380 * 1024;

/// A run that spans invocations, as its last finished part left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub run_id: String,
    pub event_id: String,
    /// The `dt` partition of every part of the run.
    pub event_time: Timestamp,
    pub trigger: String,
    pub started_at: Timestamp,
    /// The source options the run lists with; it is resumed only with the same ones.
    pub options: String,
    /// Parts finished so far; the next invocation writes part `parts`.
    pub parts: u32,
    /// Counted over every finished part.
    pub counts: RunCounts,
    /// History objects of the finished parts.
    pub s3_keys: Vec<String>,
    /// Listings (by [`crate::sources::Listing::key`]) that are complete.
    pub done: BTreeSet<String>,
    /// Listings stopped mid-pagination.
    pub cursors: BTreeMap<String, Cursor>,
    pub updated_at: Timestamp,
}

/// Where one listing stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// The token of the next page; `None` to start the listing again from its first page.
    pub next_token: Option<String>,
    pub pages_done: u64,
    /// Sessions the listing has returned so far, by [`super::diff::id_fingerprint`] (sorted).
    pub seen: Vec<u64>,
}

impl Progress {
    /// Gzip'd JSON, refused if it would not fit a DynamoDB item.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::UnreadableItem(format!("progress of run {}: {e}", self.run_id)))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json).and_then(|_| gz.finish()).map_or_else(
            |e| Err(Error::UnreadableItem(format!("progress of run {}: {e}", self.run_id))),
            |bytes| {
                if bytes.len() > MAX_ENCODED_PROGRESS {
                    Err(Error::UnreadableItem(format!(
                        "progress of run {} is {} bytes gzip'd ({} sessions seen by {} unfinished listings), above the {} bytes a DynamoDB item can hold; lower MAX_CONCURRENT_LISTINGS or raise the function timeout",
                        self.run_id,
                        bytes.len(),
                        self.cursors.values().map(|c| c.seen.len()).sum::<usize>(),
                        self.cursors.len(),
                        MAX_ENCODED_PROGRESS
                    )))
                } else {
                    Ok(bytes)
                }
            },
        )
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| Error::UnreadableItem(format!("the run progress item is not gzip: {e}")))?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::UnreadableItem(format!("the run progress item cannot be read: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress() -> Progress {
        Progress {
            run_id: "evt-1".into(),
            event_id: "evt-1".into(),
            event_time: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
            trigger: "scheduled".into(),
            started_at: Timestamp::parse("2026-11-22T10:00:01Z").unwrap(),
            options: "{}".into(),
            parts: 1,
            counts: RunCounts { parents: 1, pages: 3, sessions: 12, ..RunCounts::default() },
            s3_keys: vec!["history/snapshots/x/dt=2026-11-22/evt-1.jsonl.gz".into()],
            done: BTreeSet::from(["pool-a".into()]),
            cursors: BTreeMap::from([(
                "pool-b".into(),
                Cursor { next_token: Some("t3".into()), pages_done: 2, seen: vec![3, u64::MAX] },
            )]),
            updated_at: Timestamp::parse("2026-11-22T10:14:00Z").unwrap(),
        }
    }

    #[test]
    fn progress_round_trips_through_its_encoding() {
        let p = progress();
        assert_eq!(Progress::decode(&p.encode().unwrap()).unwrap(), p);
    }

    #[test]
    fn a_damaged_progress_item_is_refused_clearly() {
        let err = Progress::decode(b"not gzip").unwrap_err().to_string();
        assert!(err.contains("the run progress item is not gzip"), "{err}");
    }

    #[test]
    fn progress_too_big_for_an_item_is_refused_naming_the_run() {
        let mut p = progress();
        // Fingerprints do not compress: 60,000 of them are well past 380 KB.
        let seen = (0..60_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        p.cursors.insert("pool-c".into(), Cursor { next_token: None, pages_done: 400, seen });
        let err = p.encode().unwrap_err().to_string();
        assert!(err.contains("progress of run evt-1 is") && err.contains("lower MAX_CONCURRENT_LISTINGS"), "{err}");
    }
}

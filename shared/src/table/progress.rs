//! Where a run that stopped early stands, so the next invocation resumes it: pure, no I/O.
//!
//! A run that reaches its deadline stops paging, writes what it has (items, then its part of the
//! history), and only then saves its [`Progress`] in one item: that put is the commit point of
//! the part. A crash before it leaves the previous progress in place, and the part is done again
//! under the same keys, so no history line is written twice.
//!
//! The progress grows with the listings (the sessions seen, the listings done): past what a
//! DynamoDB item holds, it is written to an S3 object of its own first, under a key naming the
//! run and the part ([`progress_object_key`]), and the item names that object, its size and
//! SHA-256 ([`SavedProgress::Object`]). A crash between the object and the item leaves the
//! previous item, naming the previous part's object, in place.
//!
//! The progress names the listings that are done and, for each listing stopped mid-pagination,
//! its next token and the sessions it has already seen (8-byte fingerprints of their ids): those
//! are not listed again (no snapshot line twice) and are not taken for ended when the listing
//! completes. A listing whose token the service no longer accepts starts again from its first
//! page with the same seen sessions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunCounts;
use crate::error::{Error, Result};
use crate::model::{Scope, Timestamp};

/// DynamoDB's item limit is 400 KB; the rest of the item (keys, a few attributes) fits in the
/// margin. A progress encoded larger goes to an S3 object.
pub const MAX_INLINE_PROGRESS: usize = 380 * 1024;

/// The IAM actions on the state prefix, for progress and listing state objects (the template
/// grants exactly these, there only); a listing's state past 5 MiB is a multipart upload, which
/// a failure aborts.
pub const IAM_ACTIONS: [&str; 3] = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"];

/// Where a progress is kept: in its item, or in the S3 object the item names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SavedProgress {
    /// The encoding itself ([`Progress::encode`]).
    Inline(Vec<u8>),
    Object(ProgressObject),
}

/// The S3 object holding a progress too large for its item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressObject {
    pub key: String,
    pub bytes: u64,
    /// Hex SHA-256 of the object's bytes: a changed or truncated object is refused, not decoded.
    pub sha256: String,
}

impl ProgressObject {
    /// The reference to `body` stored under `key`.
    pub fn of(key: String, body: &[u8]) -> Self {
        ProgressObject { key, bytes: body.len() as u64, sha256: hex::encode(Sha256::digest(body)) }
    }

    /// `body` if it is the object this reference names, else an error naming the object.
    pub fn check<'b>(&self, body: &'b [u8]) -> Result<&'b [u8]> {
        let found = ProgressObject::of(self.key.clone(), body);
        if found.bytes != self.bytes {
            return Err(Error::UnreadableItem(format!(
                "the run progress object {} has {} bytes, not the {} its progress item names",
                self.key, found.bytes, self.bytes
            )));
        }
        if found.sha256 != self.sha256 {
            return Err(Error::UnreadableItem(format!(
                "the run progress object {} is not the one its progress item names (SHA-256 {}, not {})",
                self.key, found.sha256, self.sha256
            )));
        }
        Ok(body)
    }
}

/// The key of the object holding a progress too large for its item: one per scope, run, source
/// options and part, so a part never overwrites the object the previous item names.
pub fn progress_object_key(state_prefix: &str, scope: &Scope, progress: &Progress) -> String {
    let options = hex::encode(&Sha256::digest(progress.options.as_bytes())[..8]);
    let prefix = if state_prefix.is_empty() { String::new() } else { format!("{state_prefix}/") };
    format!(
        "{prefix}progress/{}/{}.{}/{}.{options}.part-{:04}.json.gz",
        scope.service, scope.account_id, scope.region, progress.run_id, progress.parts
    )
}

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
    /// Sessions the listing has returned so far, by [`crate::diff::id_fingerprint`] (sorted).
    pub seen: Vec<u64>,
}

/// The sessions each stopped listing has seen, taken out of a progress while a part runs.
pub type SeenBefore = std::collections::BTreeMap<String, Vec<u64>>;

impl Progress {
    /// Takes each cursor's seen sessions out, by listing: a listing that resumes from its carry
    /// drops them at once, rather than holding them (8 bytes a session) through its part.
    pub fn take_seen(&mut self) -> SeenBefore {
        self.cursors.iter_mut().map(|(key, cursor)| (key.clone(), std::mem::take(&mut cursor.seen))).collect()
    }

    /// Puts back the seen sessions of the listings a part did not open.
    pub fn restore_seen(&mut self, seen: SeenBefore) {
        for (key, seen) in seen {
            if let Some(cursor) = self.cursors.get_mut(&key) {
                cursor.seen = seen;
            }
        }
    }

    /// Gzip'd JSON, written straight into the compressor: a million seen sessions take the
    /// compressed bytes in memory (about 10 MB), not their JSON as well.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let failed = |e: &dyn std::fmt::Display| Error::UnreadableItem(format!("progress of run {}: {e}", self.run_id));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        serde_json::to_writer(&mut gz, self).map_err(|e| failed(&e))?;
        gz.flush().and_then(|()| gz.finish()).map_err(|e| failed(&e))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_reader(std::io::BufReader::new(flate2::read::GzDecoder::new(bytes))).map_err(|e| {
            let what = if e.is_io() { "is not gzip" } else { "cannot be read" };
            Error::UnreadableItem(format!("the run progress {what}: {e}"))
        })
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
    fn seen_sessions_taken_out_and_those_left_put_back_leave_the_progress_as_it_was() {
        let mut progress = progress();
        progress.cursors.insert("b".into(), Cursor { next_token: None, pages_done: 1, seen: vec![7, 9] });
        let before = progress.clone();
        let mut seen = progress.take_seen();
        assert!(progress.cursors.values().all(|c| c.seen.is_empty()));
        assert_eq!(seen.len(), before.cursors.len());
        progress.restore_seen(seen.clone());
        assert_eq!(progress, before);
        // A listing that took its own is left without: its new cursor replaces it.
        progress.take_seen();
        seen.remove("b");
        progress.restore_seen(seen);
        assert!(progress.cursors["b"].seen.is_empty());
    }

    #[test]
    fn progress_round_trips_through_its_encoding() {
        let p = progress();
        assert_eq!(Progress::decode(&p.encode().unwrap()).unwrap(), p);
    }

    #[test]
    fn a_damaged_progress_is_refused_clearly() {
        let err = Progress::decode(b"not gzip").unwrap_err().to_string();
        assert!(err.contains("the run progress is not gzip"), "{err}");
        let mut truncated = progress().encode().unwrap();
        truncated.truncate(truncated.len() / 2);
        let err = Progress::decode(&truncated).unwrap_err().to_string();
        assert!(err.starts_with("unreadable the run progress"), "{err}");
    }

    #[test]
    fn a_progress_past_an_item_round_trips_and_its_object_is_checked() {
        // GIVEN a progress with 60,000 seen sessions: fingerprints do not compress, so it is well
        // past what an item holds
        let mut p = progress();
        let seen: Vec<u64> = (0..60_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        p.cursors.insert("pool-c".into(), Cursor { next_token: None, pages_done: 400, seen });
        let body = p.encode().unwrap();
        assert!(body.len() > MAX_INLINE_PROGRESS, "{} bytes", body.len());
        // WHEN it is referenced as an object THEN the same bytes pass its check and decode whole
        let object = ProgressObject::of("state/progress/x".into(), &body);
        assert_eq!(Progress::decode(object.check(&body).unwrap()).unwrap(), p);
        // AND a truncated or changed object is refused naming it
        let err = object.check(&body[..body.len() - 1]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("state/progress/x has {} bytes, not the {}", body.len() - 1, body.len())),
            "{err}"
        );
        let mut changed = body.clone();
        changed[100] ^= 1;
        let err = object.check(&changed).unwrap_err().to_string();
        assert!(err.contains("state/progress/x is not the one its progress item names"), "{err}");
    }

    #[test]
    fn each_part_of_each_run_has_its_own_progress_object() {
        let scope = Scope {
            service: crate::model::ServiceId::GameliftStreamSessions,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
        };
        let p = progress();
        let key = progress_object_key("state", &scope, &p);
        assert!(key.starts_with("state/progress/gamelift-stream-sessions/123456789012.eu-west-1/evt-1."), "{key}");
        assert!(key.ends_with(".part-0001.json.gz"), "{key}");
        let next = Progress { parts: 2, ..p.clone() };
        assert_ne!(progress_object_key("state", &scope, &next), key);
        let other_options = Progress { options: "{\"parents\":[\"a\"]}".into(), ..p.clone() };
        assert_ne!(progress_object_key("state", &scope, &other_options), key);
        assert!(progress_object_key("", &scope, &p).starts_with("progress/"));
    }
}

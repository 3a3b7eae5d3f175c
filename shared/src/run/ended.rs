//! The ids of the sessions a complete listing ends, found in the snapshot lines of the scope's
//! last complete run: a session live in the table after that run was listed by it, so a churn
//! run fetches the items that end by id (half a read unit each) instead of reading its whole
//! listing from the table to learn their ids. When one is not there (opened by a run that did
//! not complete, missed by a filtered run, its object gone or unreadable), the listing reads the
//! table as before: the lines only save reads, the table stays the truth.
//!
//! The objects are read once a part, the first time a listing needs them ([`LastRun`]): the scope's
//! lines are spooled to the temporary directory (`parent`, tab, `id`) and indexed by the id's
//! fingerprint, 16 bytes a session in memory, so a scope of many listings reads them once.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

use flate2::write::MultiGzDecoder;
use serde::Deserialize;
use tracing::{debug, warn};

use super::spool::Spool;
use crate::diff::id_fingerprint;
use crate::error::Result;
use crate::history::{Bucket, LineBuffer};
use crate::model::Scope;

/// What a snapshot line says of where its session is.
#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow)]
    account_id: Cow<'a, str>,
    #[serde(borrow)]
    region: Cow<'a, str>,
    #[serde(borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
}

/// The scope's sessions as its last complete run listed them: spooled, indexed by fingerprint.
pub(super) struct LastRun {
    spool: Mutex<Spool>,
    /// (id fingerprint, offset << 16 | length) of each spooled line, by fingerprint.
    index: Vec<(u64, u64)>,
}

impl LastRun {
    /// Reads `scope`'s lines of the snapshots objects `keys`; `None` (said why) when there are
    /// none, one is gone or unreadable: the listings read the table then.
    pub(super) async fn read<O: Bucket>(
        bucket: &O,
        keys: &[String],
        scope: &Scope,
        run_id: &str,
    ) -> Result<Option<Self>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let spool = Spool::create(&std::env::temp_dir(), run_id)?;
        let mut lines = Lines { scope, spool, index: Vec::new(), buffer: LineBuffer::default(), bad: None };
        for key in keys {
            let mut gunzip = MultiGzDecoder::new(&mut lines);
            let read = bucket.get_object_into(key, &mut gunzip).await;
            let finished = gunzip.try_finish();
            drop(gunzip);
            let refused = match (read, finished) {
                (Ok(true), Ok(())) => lines.bad.take(),
                (Ok(false), _) => Some("gone".to_owned()),
                (Err(err), _) => Some(err.to_string()),
                (_, Err(err)) => Some(format!("not whole gzip: {err}")),
            };
            if let Some(why) = refused {
                warn!(
                    key,
                    why,
                    "the last complete run's snapshots object is not read: listings that end sessions read the table"
                );
                return Ok(None);
            }
            lines.buffer.take_rest();
        }
        let Lines { spool, mut index, .. } = lines;
        index.sort_unstable();
        debug!(sessions = index.len(), "the last complete run's sessions, indexed");
        Ok(Some(LastRun { spool: Mutex::new(spool), index }))
    }

    /// The ids of the sessions of listing `parent_id` whose fingerprints are `ending`; `None`
    /// unless every one of them is found.
    pub(super) fn ids(&self, parent_id: Option<&str>, ending: &HashSet<u64>) -> Result<Option<Vec<String>>> {
        let mut spool = self.spool.lock().unwrap();
        let parent = parent_id.unwrap_or_default();
        let mut ids = Vec::with_capacity(ending.len());
        for &fingerprint in ending {
            let from = self.index.partition_point(|(fp, _)| *fp < fingerprint);
            let mut found = None;
            for &(_, at) in self.index[from..].iter().take_while(|(fp, _)| *fp == fingerprint) {
                let mut line = vec![0u8; (at & 0xffff) as usize];
                spool.read_at(at >> 16, &mut line)?;
                let line = String::from_utf8_lossy(&line);
                if let Some((their_parent, id)) = line.split_once('\t') {
                    if their_parent == parent {
                        found = Some(id.to_owned());
                        break;
                    }
                }
            }
            match found {
                Some(id) => ids.push(id),
                None => return Ok(None),
            }
        }
        Ok(Some(ids))
    }
}

/// Snapshot lines as they stream in, the scope's spooled and indexed.
struct Lines<'a> {
    scope: &'a Scope,
    spool: Spool,
    index: Vec<(u64, u64)>,
    buffer: LineBuffer,
    /// Why a line could not be read (the first).
    bad: Option<String>,
}

impl Lines<'_> {
    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() || self.bad.is_some() {
            return Ok(());
        }
        let place: Place = match serde_json::from_slice(bytes) {
            Ok(place) => place,
            Err(err) => {
                self.bad = Some(format!("a line is not JSON: {err}"));
                return Ok(());
            }
        };
        if place.account_id != self.scope.account_id || place.region != self.scope.region {
            return Ok(());
        }
        let entry = format!("{}\t{}", place.parent_id.as_deref().unwrap_or_default(), place.session_id);
        let Ok(length) = u16::try_from(entry.len()) else {
            self.bad = Some(format!("a session id of {} bytes", place.session_id.len()));
            return Ok(());
        };
        let offset = self.spool.len();
        self.spool.append(entry.as_bytes()).map_err(std::io::Error::other)?;
        self.index.push((id_fingerprint(&place.session_id), (offset << 16) | u64::from(length)));
        Ok(())
    }
}

impl Write for Lines<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let split = buffer.split(bytes, |line| self.line(line));
        self.buffer = buffer;
        split.map(|()| bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::memory::MemoryBucket;
    use crate::history::GzipLines;
    use crate::model::ServiceId;

    fn scope(account_id: &str) -> Scope {
        Scope { service: ServiceId::IvsStreamSessions, account_id: account_id.into(), region: "eu-west-1".into() }
    }

    fn line(account_id: &str, parent_id: &str, session_id: &str) -> String {
        serde_json::json!({
            "snapshot_at": "2026-11-22T10:00:00Z", "account_id": account_id, "region": "eu-west-1",
            "parent_id": parent_id, "session_id": session_id, "status": "LIVE"
        })
        .to_string()
    }

    /// A pooled snapshots object: two accounts, two channels, 300 sessions each.
    fn bucket() -> MemoryBucket {
        let bucket = MemoryBucket::default();
        let mut gzip = GzipLines::default();
        for account in ["111111111111", "222222222222"] {
            for channel in ["ch-1", "ch-2"] {
                (0..300).for_each(|n| gzip.push(&line(account, channel, &format!("{account}-{channel}-{n}"))));
            }
        }
        bucket.replace("pool", Some(gzip.finish()));
        bucket
    }

    fn ending(ids: &[&str]) -> HashSet<u64> {
        ids.iter().map(|id| id_fingerprint(id)).collect()
    }

    async fn last_run(bucket: &MemoryBucket, keys: &[&str]) -> Option<LastRun> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        LastRun::read(bucket, &keys, &scope("111111111111"), "test").await.unwrap()
    }

    #[tokio::test]
    async fn the_ids_of_the_ending_sessions_are_found_in_their_scope_and_listing_only() {
        let bucket = bucket();
        let last = last_run(&bucket, &["pool"]).await.unwrap();
        assert_eq!(last.index.len(), 600, "the scope's lines only");
        let wanted = ["111111111111-ch-2-7", "111111111111-ch-2-299"];
        let mut found = last.ids(Some("ch-2"), &ending(&wanted)).unwrap().unwrap();
        found.sort();
        assert_eq!(found, ["111111111111-ch-2-299", "111111111111-ch-2-7"]);
        // Another account's session, or another channel's, is not this listing's.
        assert_eq!(last.ids(Some("ch-2"), &ending(&["222222222222-ch-2-7"])).unwrap(), None);
        assert_eq!(last.ids(Some("ch-2"), &ending(&["111111111111-ch-1-7"])).unwrap(), None);
    }

    #[tokio::test]
    async fn a_session_not_there_an_object_gone_or_unreadable_sends_the_listing_to_the_table() {
        let bucket = bucket();
        let last = last_run(&bucket, &["pool"]).await.unwrap();
        let one_missing = ending(&["111111111111-ch-2-7", "opened-by-a-run-that-failed"]);
        assert_eq!(last.ids(Some("ch-2"), &one_missing).unwrap(), None);
        assert!(last_run(&bucket, &["pool", "no-such-key"]).await.is_none());
        assert!(last_run(&bucket, &[]).await.is_none());
        bucket.replace("pool", Some(b"not gzip".to_vec()));
        assert!(last_run(&bucket, &["pool"]).await.is_none());
        let mut gzip = GzipLines::default();
        gzip.push("{not json");
        bucket.replace("pool", Some(gzip.finish()));
        assert!(last_run(&bucket, &["pool"]).await.is_none());
    }
}

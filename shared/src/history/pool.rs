//! Pooled history: the lines of several scopes' parts of one run, written as one snapshots object
//! and one changes object. Each part's lines wait, gzip'd, in memory ([`StagedObject`], at most a
//! part size each); the pool's object takes them in order, one gzip stream, as any history object.

use std::io::{BufRead, BufReader};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::bucket::Bucket;
use super::keys::{under_prefix, HistoryKind};
pub use super::writer::StagedObject;
use super::writer::{HistoryObject, WrittenObject};
use crate::error::{Error, Result};
use crate::model::{RunId, ServiceId, Timestamp};

/// The key of a pooled object of `service`'s run `run` (the `dt` partition: its event's day),
/// named by the pool's id.
pub fn pool_key(
    prefix: &str,
    kind: HistoryKind,
    service: ServiceId,
    event_time: &Timestamp,
    run: &RunId,
    pool_id: &str,
) -> String {
    let day = event_time.day();
    under_prefix(prefix, &format!("{}/{service}/dt={day}/{run}.pool-{pool_id}.jsonl.gz", kind.as_str()))
}

/// A pool's id: its parts and the invocation writing it, so no two pools share their objects.
pub fn pool_id(parts: &[String], invocation_id: &str) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    hash.update(invocation_id.as_bytes());
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Writes the staged lines of `parts`, in order, as one object at `key` (multipart once past
/// `upload_part_size`); an object that could not be written is aborted.
pub async fn write_pooled<O: Bucket>(
    bucket: &O,
    key: String,
    parts: &[&StagedObject],
    upload_part_size: usize,
) -> Result<WrittenObject> {
    let mut object = HistoryObject::new(bucket, key, upload_part_size);
    let written = async {
        for part in parts {
            for line in staged_lines(part) {
                object.push(&line?).await?;
            }
        }
        object.finish().await
    };
    let written = written.await;
    if written.is_err() {
        object.abort().await;
    }
    written
}

/// The lines of a staged object, without their newlines.
fn staged_lines(staged: &StagedObject) -> impl Iterator<Item = Result<String>> + '_ {
    BufReader::new(GzDecoder::new(&staged.gzip[..])).lines().map(|line| {
        line.map_err(|e| Error::Mapping(format!("a part's staged history lines could not be read back: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::memory::MemoryBucket;
    use crate::history::GzipLines;

    fn staged(lines: &[&str]) -> StagedObject {
        let mut gzip = GzipLines::default();
        lines.iter().for_each(|line| gzip.push(line));
        StagedObject { lines: gzip.lines(), gzip: gzip.finish() }
    }

    #[test]
    fn a_pool_key_names_the_run_and_the_pool_under_the_day_of_the_event() {
        let run = RunId::parse("plan-evt-1").unwrap();
        let at = Timestamp::parse("2026-11-22T23:59:59Z").unwrap();
        assert_eq!(
            pool_key("history/", HistoryKind::Changes, ServiceId::IvsStreamSessions, &at, &run, "0a1b"),
            "history/changes/ivs-stream-sessions/dt=2026-11-22/plan-evt-1.pool-0a1b.jsonl.gz"
        );
    }

    #[test]
    fn a_pool_id_differs_with_its_parts_and_its_invocation() {
        let parts = vec!["111111111111.us-east-1.0".to_owned(), "111111111111.eu-west-1.0".to_owned()];
        let id = pool_id(&parts, "req-1");
        assert_eq!(id.len(), 16);
        assert_eq!(id, pool_id(&parts, "req-1"));
        assert_ne!(id, pool_id(&parts, "req-2"));
        assert_ne!(id, pool_id(&parts[..1], "req-1"));
    }

    #[tokio::test]
    async fn a_pooled_object_holds_every_part_s_lines_in_order() {
        let bucket = MemoryBucket::default();
        let (a, empty, b) = (staged(&["{\"a\":1}", "{\"a\":2}"]), staged(&[]), staged(&["{\"b\":1}"]));
        let written = write_pooled(&bucket, "k".into(), &[&a, &empty, &b], 0).await.unwrap();
        assert_eq!(written.lines, 3);
        assert_eq!(bucket.text("k"), "{\"a\":1}\n{\"a\":2}\n{\"b\":1}\n");
    }

    #[tokio::test]
    async fn a_pooled_object_that_cannot_be_written_is_not_left_behind() {
        let bucket = MemoryBucket::default();
        bucket.failing("put");
        let err = write_pooled(&bucket, "k".into(), &[&staged(&["{}"])], 0).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(bucket.keys().is_empty());
    }
}

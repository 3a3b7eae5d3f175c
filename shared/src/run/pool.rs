//! A batch's pool: the lines of the parts of its scopes that completed their run, written as one
//! snapshots object and one changes object instead of two objects a scope, and an unfinished part's
//! lines found again in the pools of its run.
//!
//! The pool's record is the commit point of its objects: `pending` before they are written,
//! `committed` after, before any of its parts' manifests says complete. A part whose manifest does
//! not say complete, done again, looks its run's pools up ([`pooled_lines`]): in a committed pool its
//! lines are written and its run is complete; in a pending or abandoned one (its writer stopped, or
//! gave up) the pool is abandoned and its objects deleted before the part is done again. Either way a
//! line is in one object, as a part's own keys, written again over themselves, guarantee.

use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{info, warn};

use super::deadline::Deadlines;
use crate::error::{Error, Result};
use crate::history::pool::{pool_id, pool_key, write_pooled, StagedObject};
use crate::history::{Bucket, HistoryKind, RunId};
use crate::model::{Scope, ServiceId, Timestamp};
use crate::table::{pool_part, HistoryPool, PoolStatus, RunLedger, POOL_KEPT_SECONDS};

/// The memory a batch's staged lines may take, gzip'd: a part beyond it writes its own objects.
pub const POOL_STAGING_BYTES: usize = 64 * 1024 * 1024;

/// The lines of a part waiting for its batch's pool: each object's own key (where the part writes
/// it when it is pooled with no other) and its staged lines, snapshots then changes.
#[derive(Debug)]
pub struct StagedLines {
    pub(super) objects: [(String, StagedObject); 2],
}

impl StagedLines {
    /// Writes the part's lines under its own keys (a batch with no other part to pool it with):
    /// the keys written.
    pub(super) async fn write_own<O: Bucket>(&self, bucket: &O) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for (key, staged) in self.objects.iter().filter(|(_, staged)| staged.lines > 0) {
            bucket.put_object(key, staged.gzip.clone()).await?;
            keys.push(key.clone());
        }
        Ok(keys)
    }
}

/// The memory left for a batch's staged lines.
#[derive(Debug)]
pub struct Staging {
    left: AtomicUsize,
}

impl Staging {
    pub fn new(bytes: usize) -> Self {
        Staging { left: AtomicUsize::new(bytes) }
    }

    /// Takes `bytes` of what is left; false (nothing taken) when there is not that much.
    pub(super) fn take(&self, bytes: usize) -> bool {
        self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(bytes)).is_ok()
    }
}

/// Where a batch's pool goes.
pub(super) struct PoolTarget<'a, D, O> {
    pub(super) table: &'a D,
    pub(super) bucket: &'a O,
    pub(super) prefix: &'a str,
    pub(super) upload_part_size: usize,
    pub(super) service: ServiceId,
    pub(super) run_id: &'a RunId,
    pub(super) event_time: &'a Timestamp,
    pub(super) invocation_id: &'a str,
    pub(super) deadlines: &'a Deadlines,
}

impl<D: RunLedger, O: Bucket> PoolTarget<'_, D, O> {
    /// Writes the staged lines of `parts` (each named by [`pool_part`]) as one pool: its objects'
    /// keys once it is committed. A pool that could not be committed is abandoned, its objects
    /// deleted, and the error returned.
    pub(super) async fn write(&self, parts: &[(String, &StagedLines)]) -> Result<Vec<String>> {
        let names: Vec<String> = parts.iter().map(|(name, _)| name.clone()).collect();
        let id = pool_id(&names, self.invocation_id);
        let mut keys = Vec::new();
        for (index, kind) in HistoryKind::SESSIONS.into_iter().enumerate() {
            if parts.iter().any(|(_, lines)| lines.objects[index].1.lines > 0) {
                keys.push((index, self.key(kind, &id)));
            }
        }
        let pool = HistoryPool {
            id: id.clone(),
            keys: keys.iter().map(|(_, key)| key.clone()).collect(),
            parts: names,
            status: PoolStatus::Pending,
        };
        let expires_at = Timestamp::now().epoch_seconds() + POOL_KEPT_SECONDS;
        let opened = self.table.open_pool(self.service, self.run_id.as_str(), &pool, expires_at);
        self.deadlines.work("DynamoDB: the batch's history pool", opened).await?;
        let written = self.deadlines.work("S3: the batch's pooled history objects", async {
            for (index, key) in &keys {
                let staged: Vec<&StagedObject> = parts.iter().map(|(_, lines)| &lines.objects[*index].1).collect();
                write_pooled(self.bucket, key.clone(), &staged, self.upload_part_size).await?;
            }
            let committed = self.table.settle_pool(self.service, self.run_id.as_str(), &id, PoolStatus::Committed);
            match committed.await? {
                PoolStatus::Committed => Ok(()),
                other => Err(Error::Storage {
                    operation: "DynamoDB UpdateItem (history pool)",
                    resource: format!("history pool {id} of run {}", self.run_id),
                    code: "PoolTakenOver".into(),
                    message: format!("{} by another invocation before it could be committed", other.as_str()),
                    status: None,
                    retryable: true,
                }),
            }
        });
        match written.await {
            Ok(()) => Ok(pool.keys),
            Err(err) => match self.abandon(&pool).await {
                // The commit went through though its answer was lost.
                Some(PoolStatus::Committed) => Ok(pool.keys),
                _ => Err(err),
            },
        }
    }

    fn key(&self, kind: HistoryKind, id: &str) -> String {
        pool_key(self.prefix, kind, self.service, self.event_time, self.run_id, id)
    }

    /// Gives a pool up once its writing failed: abandoned, and its objects deleted. Where it
    /// stands after, when that could be learnt.
    async fn abandon(&self, pool: &HistoryPool) -> Option<PoolStatus> {
        let settled = self.table.settle_pool(self.service, self.run_id.as_str(), &pool.id, PoolStatus::Abandoned);
        let status = match self.deadlines.last("DynamoDB: abandoning the history pool", settled).await {
            Ok(status) => status,
            Err(err) => {
                // Still pending: the parts' next runs find it and delete its objects.
                warn!(pool = %pool.id, error = %err, "could not abandon the history pool");
                return None;
            }
        };
        if status == PoolStatus::Abandoned {
            let deleted = delete_objects(self.bucket, pool);
            if let Err(err) = self.deadlines.last("S3: deleting the abandoned pool's objects", deleted).await {
                warn!(pool = %pool.id, error = %err, "could not delete the abandoned pool's objects; the parts' next runs do");
            }
        }
        Some(status)
    }
}

/// Where the lines of `scope`'s part `part` of run `run_id` stand, for a part whose manifest does
/// not say complete: the keys of the committed pool holding them, or `None` when none does (any
/// pending or abandoned pool holding them is abandoned, its objects deleted).
pub(super) async fn pooled_lines<D: RunLedger, O: Bucket>(
    table: &D,
    bucket: &O,
    scope: &Scope,
    run_id: &str,
    part: u32,
) -> Result<Option<Vec<String>>> {
    let me = pool_part(scope, part);
    let mut committed = None;
    for pool in table.pools(scope.service, run_id).await? {
        if !pool.parts.contains(&me) {
            continue;
        }
        let status = match pool.status {
            PoolStatus::Pending => table.settle_pool(scope.service, run_id, &pool.id, PoolStatus::Abandoned).await?,
            status => status,
        };
        if status == PoolStatus::Committed {
            info!(pool = %pool.id, run_id, part, "the part's lines are in a committed history pool: its run is complete");
            committed = Some(pool.keys);
        } else {
            info!(pool = %pool.id, run_id, part, "deleting the objects of an abandoned history pool");
            delete_objects(bucket, &pool).await?;
        }
    }
    Ok(committed)
}

async fn delete_objects<O: Bucket>(bucket: &O, pool: &HistoryPool) -> Result<()> {
    for key in &pool.keys {
        bucket.delete_object(key).await?;
    }
    Ok(())
}

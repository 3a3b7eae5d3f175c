//! What a listing does with each observation the diff decides: the snapshot line, the change
//! line, the table write (batched 25 an item call), and the counts.

use super::context::Pass;
use crate::diff::Observation;
use crate::error::Result;
use crate::history::{line, Bucket};
use crate::model::Change;
use crate::table::dynamodb::BATCH_WRITE_MAX_ITEMS;
use crate::table::{RunCounts, Scope, SessionTable, StoredSession, Updated};

/// Records one listing's observations.
pub(super) struct Recorder<'p, 'a, S, D, O: Bucket> {
    pass: &'p Pass<'a, S, D, O>,
    pub(super) counts: RunCounts,
    writes: PendingWrites<'a, D>,
}

impl<'p, 'a, S, D, O> Recorder<'p, 'a, S, D, O>
where
    D: SessionTable,
    O: Bucket,
{
    pub(super) fn new(pass: &'p Pass<'a, S, D, O>) -> Self {
        let writes = PendingWrites::new(pass.table, pass.scope, pass.histories.is_some());
        Recorder { pass, counts: RunCounts::default(), writes }
    }

    /// A listed session: its snapshot line, then its change and write.
    pub(super) async fn listed(&mut self, observation: Observation) -> Result<()> {
        self.counts.sessions += 1;
        if let Some(histories) = &self.pass.histories {
            let text = line(&self.pass.ctx, &observation.record, &observation.record_hash, None);
            histories.lock().await.snapshots.push(&text).await?;
        }
        self.observed(observation).await
    }

    /// An observation, listed or ended: counted, its change line written, its item queued.
    pub(super) async fn observed(&mut self, observation: Observation) -> Result<()> {
        match observation.change.as_ref().map(|(change, _)| *change) {
            None => self.counts.unchanged += 1,
            Some(Change::Opened) => self.counts.new += 1,
            Some(Change::Changed) => self.counts.changed += 1,
            Some(Change::Ended) => self.counts.ended += 1,
        }
        if let (Some(histories), Some((change, previous))) = (&self.pass.histories, &observation.change) {
            let text = line(
                &self.pass.ctx,
                &observation.record,
                &observation.record_hash,
                Some((*change, previous.as_deref())),
            );
            histories.lock().await.changes.push(&text).await?;
        }
        if let Some(write) = observation.write {
            self.writes.push(write).await?;
        }
        Ok(())
    }

    /// Whether the run writes (not a dry run).
    pub(super) fn writes(&self) -> bool {
        self.writes.enabled
    }

    /// Counts a session written in place, or refused (its whole write follows, queued).
    pub(super) fn wrote_in_place(&mut self, outcome: &Updated) {
        match outcome {
            Updated::Applied(_) => self.writes.written += 1,
            Updated::Refused(_) => self.counts.updates_refused += 1,
        }
    }

    /// Sends the items still queued, and counts what was written.
    pub(super) async fn flush(&mut self) -> Result<()> {
        self.writes.flush().await?;
        self.counts.items_written = self.writes.written;
        Ok(())
    }
}

/// Session items waiting to be written: sent in batches of 25 as they fill, or at the end of a
/// listing. A dry run sends nothing.
struct PendingWrites<'a, D> {
    table: &'a D,
    scope: &'a Scope,
    items: Vec<StoredSession>,
    enabled: bool,
    written: u64,
}

impl<'a, D: SessionTable> PendingWrites<'a, D> {
    fn new(table: &'a D, scope: &'a Scope, enabled: bool) -> Self {
        PendingWrites { table, scope, items: Vec::with_capacity(BATCH_WRITE_MAX_ITEMS), enabled, written: 0 }
    }

    async fn push(&mut self, item: StoredSession) -> Result<()> {
        self.items.push(item);
        if self.items.len() >= BATCH_WRITE_MAX_ITEMS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.enabled && !self.items.is_empty() {
            self.table.write_sessions(self.scope, &self.items).await?;
            self.written += self.items.len() as u64;
        }
        self.items.clear();
        Ok(())
    }
}

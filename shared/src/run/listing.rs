//! One listing of a part: its previous state, its pages (from where an earlier part stopped), the
//! diff, the decisions that need a stored item, the writes and the lines, until it ends (then
//! its missing sessions end) or paging must stop (then its place is kept).

use futures::TryStreamExt;
use tracing::warn;

use super::context::Pass;
use super::recorder::Recorder;
use super::state::{ListingEnd, Previous};
use crate::diff::{ListingDiff, Seen, SessionUpdate, UpdateWrite};
use crate::error::Result;
use crate::history::Bucket;
use crate::model::SessionRecord;
use crate::sources::{pages, Listing, SessionSource};
use crate::table::dynamodb::{BATCH_GET_MAX_KEYS, BATCH_WRITE_MAX_ITEMS};
use crate::table::{Cursor, RunCounts, SessionTable};

/// Sessions written in place at once: as many as a BatchWriteItem carries.
const UPDATES_AT_ONCE: usize = BATCH_WRITE_MAX_ITEMS;

/// A listing being archived.
pub(super) struct ListingRun<'p, 'a, S, D, O: Bucket> {
    pass: &'p Pass<'a, S, D, O>,
    listing: &'p Listing,
    diff: ListingDiff<'p>,
    recorder: Recorder<'p, 'a, S, D, O>,
    /// Listed sessions whose stored item the diff needs, kept across pages until a
    /// BatchGetItem's worth waits (see docs/decisions.md), and all decided before the listing
    /// ends or stops, so a saved place never names a session whose change is not written.
    undecided: Vec<(SessionRecord, String)>,
    /// Sessions to write in place, sent [`UPDATES_AT_ONCE`] at a time and all done with the
    /// undecided ones.
    updates: Vec<SessionUpdate>,
    token: Option<String>,
    pages_done: u64,
    /// Whether the listing was read again from its first page after its token was refused.
    restarted: bool,
    /// Whether its previous state was read from the table to rebuild its state object.
    rebuild: bool,
}

impl<'p, 'a, S, D, O> ListingRun<'p, 'a, S, D, O>
where
    S: SessionSource,
    D: SessionTable,
    O: Bucket,
{
    /// Archives `listing` as far as this part goes: its key, its counts, and how it ended.
    pub(super) async fn archive(
        pass: &'p Pass<'a, S, D, O>,
        listing: &'p Listing,
    ) -> Result<(String, RunCounts, ListingEnd)> {
        let key = listing.key();
        if pass.past_deadline() {
            pass.leave(listing, &ListingEnd::NotStarted, None, false)?;
            return Ok((key, RunCounts::default(), ListingEnd::NotStarted));
        }
        let mut this = ListingRun::open(pass, listing).await?;
        let mut end = this.read_pages().await?;
        this.decide_waiting().await?;
        match &mut end {
            ListingEnd::Stopped(cursor) => {
                // The seen sessions are filled in below, once the carry is left.
                cursor.next_token = this.token.take();
                cursor.pages_done = this.pages_done;
            }
            _ => {
                this.end_missing().await?;
                this.recorder.counts.parents = 1;
            }
        }
        this.recorder.flush().await?;
        let changed = this.rebuild || this.recorder.counts.items_written > 0;
        pass.leave(listing, &end, Some(&mut this.diff), changed)?;
        let ListingRun { mut diff, recorder, .. } = this;
        if let ListingEnd::Stopped(cursor) = &mut end {
            // Read back from the carry once the diff is gone: the two are never held at once.
            cursor.seen = if pass.left_carry(listing) {
                drop(diff);
                pass.carried_seen(listing)?
            } else {
                diff.seen()
            };
        }
        Ok((key, recorder.counts, end))
    }

    /// The listing with its previous state read: its state object, or what the table holds of
    /// its parent; and the sessions an earlier part of the run has seen.
    async fn open(pass: &'p Pass<'a, S, D, O>, listing: &'p Listing) -> Result<Self> {
        let cursor = pass.progress.cursors.get(&listing.key());
        // Dropped when the carry says it all: only a listing that reads the table needs them.
        let seen_before = pass.seen_before.lock().unwrap().remove(&listing.key()).unwrap_or_default();
        let mut counts = RunCounts::default();
        let (diff, rebuild) = match pass.previous_of(listing, cursor.is_some()) {
            Previous::Saved(state) => {
                counts.states_read = 1;
                drop(seen_before);
                (ListingDiff::from_state(pass.mark, state), false)
            }
            Previous::Table { rebuild } => {
                counts.states_rebuilt = u64::from(rebuild);
                let mut diff = ListingDiff::resume(pass.mark, seen_before);
                let mut stored = std::pin::pin!(pass.table.stored_summaries(pass.scope, listing.parent_id.as_deref()));
                while let Some(page) = stored.try_next().await? {
                    page.iter().for_each(|state| diff.remember(state));
                }
                (diff, rebuild)
            }
        };
        let mut recorder = Recorder::new(pass);
        recorder.counts = counts;
        Ok(ListingRun {
            pass,
            listing,
            diff,
            recorder,
            undecided: Vec::new(),
            updates: Vec::new(),
            token: cursor.and_then(|c| c.next_token.clone()),
            pages_done: cursor.map_or(0, |c| c.pages_done),
            restarted: false,
            rebuild,
        })
    }

    /// Reads pages until the last one ([`ListingEnd::Done`]) or until paging must stop
    /// ([`ListingEnd::Stopped`], its place filled in by the caller). A next token the service
    /// refuses (expired) restarts the listing from its first page, once; the sessions already
    /// seen are not listed twice.
    async fn read_pages(&mut self) -> Result<ListingEnd> {
        loop {
            match self.read_from_token().await {
                Ok(paged) => return Ok(paged),
                Err(err) if self.token.is_some() && !self.restarted && err.is_token_refusal() => {
                    let listing = self.listing.key();
                    warn!(listing, error = %err, "next token refused; reading the listing again from its first page");
                    self.restarted = true;
                    self.recorder.counts.restarted_listings += 1;
                    self.token = None;
                    self.pages_done = 0;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads pages from the current token on.
    async fn read_from_token(&mut self) -> Result<ListingEnd> {
        let (pass, listing) = (self.pass, self.listing);
        let mut stream = std::pin::pin!(pages(pass.source, listing, self.token.clone()));
        loop {
            pass.pacer.lock().await.wait().await;
            if pass.past_deadline() {
                return Ok(ListingEnd::Stopped(Cursor::default()));
            }
            let Some(page) = stream.try_next().await? else { return Ok(ListingEnd::Done) };
            self.recorder.counts.pages += 1;
            self.recorder.counts.api_calls += 1 + page.lookup_calls;
            self.pages_done += 1;
            pass.count_page();
            self.observe(page.sessions).await?;
            self.token = page.next_token;
            if self.token.is_none() {
                return Ok(ListingEnd::Done);
            }
        }
    }

    /// The sessions of one page: each diffed, recorded when the diff can tell alone, kept for
    /// its stored item otherwise (fetched a full BatchGetItem at a time).
    async fn observe(&mut self, sessions: Vec<SessionRecord>) -> Result<()> {
        for mut record in sessions {
            // Before anything else sees it: the diff, the table, the history, the logs.
            self.pass.personal_data.apply(&mut record)?;
            match self.diff.observe(record) {
                Seen::Repeated => self.recorder.counts.duplicates += 1,
                Seen::Decided(observation) => self.recorder.listed(observation).await?,
                Seen::NeedsPrevious { record, record_hash } => self.undecided.push((record, record_hash)),
                Seen::Update(update) => self.update_or_read(update),
            }
        }
        while self.undecided.len() >= BATCH_GET_MAX_KEYS {
            let batch: Vec<_> = self.undecided.drain(..BATCH_GET_MAX_KEYS).collect();
            self.decide(batch).await?;
        }
        self.write_updates(UPDATES_AT_ONCE).await
    }

    /// A listed session to write in place; decided from its read instead when the run writes
    /// nothing (a dry run).
    fn update_or_read(&mut self, update: SessionUpdate) {
        if !self.recorder.writes() {
            self.undecided.extend(update.into_listed());
        } else {
            self.updates.push(update);
        }
    }

    /// Decides every session still waiting for its stored item or its write in place.
    async fn decide_waiting(&mut self) -> Result<()> {
        let waiting = std::mem::take(&mut self.undecided);
        self.decide(waiting).await?;
        self.write_updates(1).await
    }

    /// Writes the sessions waiting to be written in place, [`UPDATES_AT_ONCE`] at a time, while
    /// at least `least` wait; records what the diff makes of each from the item returned.
    async fn write_updates(&mut self, least: usize) -> Result<()> {
        let (table, scope) = (self.pass.table, self.pass.scope);
        while self.updates.len() >= least.max(1) {
            let batch: Vec<SessionUpdate> = self.updates.drain(..self.updates.len().min(UPDATES_AT_ONCE)).collect();
            let outcomes = futures::future::join_all(batch.iter().map(|u| table.update_session(scope, u))).await;
            for (update, outcome) in batch.into_iter().zip(outcomes) {
                let outcome = outcome?;
                self.recorder.wrote_in_place(&outcome);
                let listed = matches!(update.write, UpdateWrite::Listed { .. });
                match self.diff.updated(update, outcome) {
                    Some(observation) if listed => self.recorder.listed(observation).await?,
                    Some(observation) => self.recorder.observed(observation).await?,
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Decides listed sessions from their stored items, fetched by id (a BatchGetItem for each
    /// 100), and records what the diff makes of each.
    async fn decide(&mut self, waiting: Vec<(SessionRecord, String)>) -> Result<()> {
        if waiting.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = waiting.iter().map(|(record, _)| record.session_id.as_str()).collect();
        self.recorder.counts.items_fetched += ids.len() as u64;
        let mut found = self.pass.table.get_sessions(self.pass.scope, self.listing.parent_id.as_deref(), &ids).await?;
        for (record, record_hash) in waiting {
            let before = found.remove(&record.session_id);
            let observation = self.diff.decide(record, record_hash, before);
            self.recorder.listed(observation).await?;
        }
        Ok(())
    }

    /// After a complete listing, the stored sessions it did not return end, only when some did
    /// not come back: their ids found in the last complete run's snapshot lines (see `ended`),
    /// or else in a second read of the previous state (projected, as the first), then fetched
    /// whole by id, a BatchGetItem's worth at a time. A filtered listing is not complete and
    /// ends nothing.
    async fn end_missing(&mut self) -> Result<()> {
        if !self.pass.complete_listings || !self.diff.has_ended() {
            return Ok(());
        }
        let (pass, parent_id) = (self.pass, self.listing.parent_id.as_deref());
        // Their ids from the last complete run's lines when all are there: no read of the listing.
        let ending = self.diff.ending();
        let mut fetched: Vec<String> = Vec::with_capacity(BATCH_GET_MAX_KEYS);
        if let Some(ids) = pass.ended_ids(parent_id, &ending).await? {
            for id in ids {
                self.end_one(id, &mut fetched).await?;
            }
            return self.end_waiting(fetched).await;
        }
        drop(ending);
        let mut stored = std::pin::pin!(pass.table.stored_summaries(pass.scope, parent_id));
        while let Some(page) = stored.try_next().await? {
            for state in page {
                if self.diff.ends(&state) {
                    self.end_one(state.session_id, &mut fetched).await?;
                }
            }
        }
        self.end_waiting(fetched).await
    }

    /// One session the listing ends: written in place when the diff can tell how, else fetched
    /// with the others in `fetched`, a BatchGetItem's worth at a time.
    async fn end_one(&mut self, id: String, fetched: &mut Vec<String>) -> Result<()> {
        match self.diff.end_update(self.listing.parent_id.as_deref(), &id).filter(|_| self.recorder.writes()) {
            Some(update) => {
                self.updates.push(update);
                self.write_updates(UPDATES_AT_ONCE).await
            }
            None => {
                fetched.push(id);
                if fetched.len() < BATCH_GET_MAX_KEYS {
                    return Ok(());
                }
                self.end(std::mem::take(fetched)).await
            }
        }
    }

    /// The ended sessions still waiting: fetched, or written in place.
    async fn end_waiting(&mut self, fetched: Vec<String>) -> Result<()> {
        self.end(fetched).await?;
        self.write_updates(1).await
    }

    /// Ends the stored sessions with these ids from their whole items; an item gone since the
    /// previous state was read (removed by its TTL) has nothing left to end.
    async fn end(&mut self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.recorder.counts.items_fetched += keys.len() as u64;
        let mut found = self.pass.table.get_sessions(self.pass.scope, self.listing.parent_id.as_deref(), &keys).await?;
        for id in &ids {
            if let Some(observation) = found.remove(id).and_then(|before| self.diff.end(before)) {
                self.recorder.observed(observation).await?;
            }
        }
        Ok(())
    }
}

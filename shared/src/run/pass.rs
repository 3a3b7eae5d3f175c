//! One part's pass: the listings the run has not finished, up to `max_concurrent_listings` at a
//! time, until they end or paging must stop; then the part's two history objects.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use super::bookkeeping::Run;
use super::listing::ListingRun;
use super::pacer::Pacer;
use super::state::{Leaves, PartStates};
use crate::error::Result;
use crate::history::{object_key, HistoryKind, HistoryObject, ObjectStore, RunContext, RunId};
use crate::personal::PersonalData;
use crate::sources::{Listing, SessionSource};
use crate::table::{Cursor, Progress, RunCounts, RunMark, Scope, SeenBefore, SessionTable, StateVouch};

/// What the listings of a pass wait on, as a timeout names it.
const LISTINGS_WAIT: &str = "the listings (session API pages, the table's reads and writes, history parts)";
const STATES_WAIT: &str = "S3: the scope's listing states";

/// What one part of a run did.
#[derive(Debug, Default)]
pub(super) struct PartResult {
    pub(super) counts: RunCounts,
    /// History objects written.
    pub(super) keys: Vec<String>,
    /// Listings finished in this part.
    pub(super) done: Vec<String>,
    /// Listings this part stopped mid-pagination.
    pub(super) cursors: BTreeMap<String, Cursor>,
    /// Listings not finished (stopped, or not reached before paging had to stop).
    pub(super) listings_left: u64,
    /// Why a listing read the table rather than its state object (the first one's reason).
    pub(super) state_rebuilt_because: Option<String>,
    /// Sections of the scope's state object once the part is done.
    pub(super) state_sections: u64,
}

/// Which listing state objects a part may read, and which it writes.
#[derive(Debug)]
pub(super) struct ListingStates {
    /// The generation whose objects say what the table holds, as the lease vouched; `None`:
    /// every listing reads the table.
    pub(super) trusted: Option<String>,
    /// Sections of the trusted object, as the lease says.
    pub(super) trusted_sections: u64,
    /// The generation of the objects the part writes: the trusted one, else a new one named
    /// after the run.
    pub(super) generation: String,
    /// Whether the part writes the state of each listing it completes (its listings return
    /// every session: no filter).
    pub(super) writes: bool,
}

impl ListingStates {
    pub(super) fn of(vouched: Option<&StateVouch>, run_id: &str, complete_listings: bool) -> Self {
        let trusted = vouched.and_then(|vouch| vouch.generation_for(run_id)).map(str::to_owned);
        let trusted_sections = vouched.filter(|_| trusted.is_some()).map_or(0, |vouch| vouch.sections);
        let generation = trusted.clone().unwrap_or_else(|| run_id.to_owned());
        ListingStates { trusted, trusted_sections, generation, writes: complete_listings }
    }
}

/// How a listing's part ended.
pub(super) enum ListingEnd {
    Done,
    Stopped(Cursor),
    /// Paging had to stop before it started.
    NotStarted,
}

/// The two history objects of a part.
pub(super) struct Histories<'a, O: ObjectStore> {
    pub(super) snapshots: HistoryObject<'a, O>,
    pub(super) changes: HistoryObject<'a, O>,
}

impl<O: ObjectStore> Histories<'_, O> {
    /// Writes both objects of a part and adds their keys to it.
    async fn finish(&mut self, mut part: PartResult) -> Result<PartResult> {
        let has_changes = self.changes.lines() > 0;
        part.keys.push(self.snapshots.finish().await?.key);
        // No changes, no object: a redelivered event's changes are recorded again, so an absent
        // object never hides one that was written.
        if has_changes {
            part.keys.push(self.changes.finish().await?.key);
        } else {
            self.changes.abort().await;
        }
        Ok(part)
    }

    /// Aborts whatever upload either object has open.
    async fn abort(&mut self) {
        self.snapshots.abort().await;
        self.changes.abort().await;
    }
}

/// What every listing of a pass shares.
pub(super) struct Pass<'a, S, D, O: ObjectStore> {
    pub(super) source: &'a S,
    pub(super) store: &'a D,
    pub(super) scope: &'a Scope,
    pub(super) mark: &'a RunMark,
    /// Where the run stands: listings done, listings stopped mid-pagination.
    pub(super) progress: &'a Progress,
    /// The sessions each stopped listing had seen, taken out of the progress: a listing takes
    /// its own when it opens; what is left goes back into the progress after the part.
    pub(super) seen_before: &'a std::sync::Mutex<SeenBefore>,
    pub(super) stop_paging: Option<tokio::time::Instant>,
    pub(super) ctx: RunContext,
    /// `None` in a dry run.
    pub(super) histories: Option<Mutex<Histories<'a, O>>>,
    /// The scope's listing states; `None` in a dry run.
    pub(super) states: Option<PartStates<'a, O>>,
    /// Why a listing read the table rather than its section of the state object (the first
    /// one's reason).
    pub(super) state_rebuilt_because: std::sync::Mutex<Option<String>>,
    pub(super) pacer: Mutex<Pacer>,
    /// Whether a listing returns every session of its parent (no filter), so missing ones ended.
    pub(super) complete_listings: bool,
    /// Listings read at the same time.
    at_once: usize,
    /// Pages read by this part so far.
    pages_read: AtomicU64,
    pub(super) personal_data: &'a PersonalData,
}

impl<S, D, O: ObjectStore> Pass<'_, S, D, O> {
    /// Whether paging must stop. A part always reads at least one page, so a run whose
    /// invocations are all short still moves on.
    pub(super) fn past_deadline(&self) -> bool {
        self.stop_paging.is_some_and(|stop| tokio::time::Instant::now() >= stop)
            && self.pages_read.load(Ordering::Relaxed) > 0
    }

    pub(super) fn count_page(&self) {
        self.pages_read.fetch_add(1, Ordering::Relaxed);
    }
}

impl<'a, S, D, O> Run<'a, S, D, O>
where
    S: SessionSource,
    D: SessionTable,
    O: ObjectStore,
{
    /// Reads the listings the run has not finished and writes what changed, into `objects` (none
    /// in a dry run).
    pub(super) async fn pass(
        &self,
        progress: &Progress,
        seen_before: &std::sync::Mutex<SeenBefore>,
        mark: &RunMark,
        out: Option<(&'a O, &ListingStates)>,
    ) -> Result<PartResult> {
        let mut pass = self.start_pass(progress, seen_before, mark, out.map(|(objects, _)| objects))?;
        let deadlines = &self.request.deadlines;
        if let Some((objects, policy)) = out {
            let opened = PartStates::open(objects, policy, &self.scope, &self.config.state_prefix, &progress.run_id);
            pass.states = Some(deadlines.work(STATES_WAIT, opened).await?);
        }
        let throttles_before = self.source.throttles();
        // Dropped whole at the give-up time: whatever it waits on (a page, the previous state, a
        // write, a part upload), the objects are still here to abort.
        let mut result = deadlines.work(LISTINGS_WAIT, pass.listings()).await.map(|mut part| {
            part.counts.throttles = self.source.throttles().saturating_sub(throttles_before);
            part.state_rebuilt_because = pass.state_rebuilt_because.lock().unwrap().take();
            part
        });
        // Before the history: a state object that cannot be written fails the part with nothing
        // of its history written.
        if let (Ok(part), Some(states)) = (&mut result, pass.states.take()) {
            match deadlines.work(STATES_WAIT, states.write(progress.parts, self.config.part_size)).await {
                Ok((wrote, sections)) => {
                    part.counts.states_written += u64::from(wrote);
                    part.state_sections = sections;
                }
                Err(err) => result = Err(err),
            }
        }
        let Some(mut histories) = pass.histories.map(Mutex::into_inner) else {
            return result;
        };
        let written = match result {
            Ok(part) => deadlines.work("S3: the part's history objects", histories.finish(part)).await,
            Err(err) => Err(err),
        };
        if written.is_err() {
            // Nothing of a failed part stays open: an aborted object never completes.
            let aborted = async {
                histories.abort().await;
                Ok(())
            };
            let _ = deadlines.last("S3: aborting the part's uploads", aborted).await;
        }
        written
    }

    fn start_pass<'p>(
        &'p self,
        progress: &'p Progress,
        seen_before: &'p std::sync::Mutex<SeenBefore>,
        mark: &'p RunMark,
        objects: Option<&'a O>,
    ) -> Result<Pass<'p, S, D, O>> {
        let run_id = RunId::parse(&progress.run_id)?;
        let config = self.config;
        let key =
            |kind| object_key(&config.history_prefix, kind, &self.scope, &progress.event_time, &run_id, progress.parts);
        let histories = objects.map(|objects| {
            Mutex::new(Histories {
                snapshots: HistoryObject::new(objects, key(HistoryKind::Snapshots), config.part_size),
                changes: HistoryObject::new(objects, key(HistoryKind::Changes), config.part_size),
            })
        });
        Ok(Pass {
            source: self.source,
            store: self.store,
            scope: &self.scope,
            mark,
            progress,
            seen_before,
            stop_paging: self.request.deadlines.stop_paging,
            ctx: RunContext {
                snapshot_at: mark.snapshot_at.clone(),
                run_id: mark.run_id.clone(),
                account_id: self.scope.account_id.clone(),
                region: self.scope.region.clone(),
            },
            histories,
            states: None,
            state_rebuilt_because: std::sync::Mutex::new(None),
            pacer: Mutex::new(Pacer::new(config.max_calls_per_second)),
            complete_listings: !self.source.options().narrows_listings(),
            at_once: config.max_concurrent_listings.max(1),
            pages_read: AtomicU64::new(0),
            personal_data: &config.personal_data,
        })
    }
}

impl<S, D, O> Pass<'_, S, D, O>
where
    S: SessionSource,
    D: SessionTable,
    O: ObjectStore,
{
    /// The listings not done yet, `max_concurrent_listings` at a time, each to its end or until
    /// paging must stop.
    async fn listings(&self) -> Result<PartResult> {
        let discovery = self.source.listings().await?;
        let mut part = PartResult {
            counts: RunCounts { api_calls: discovery.api_calls, ..RunCounts::default() },
            ..PartResult::default()
        };
        let (done, todo): (Vec<&Listing>, Vec<&Listing>) =
            discovery.listings.iter().partition(|listing| self.progress.done.contains(&listing.key()));
        // Done in an earlier part: their sections stand.
        for listing in done {
            self.leave(listing, Leaves::NotStarted)?;
        }
        let mut listings = futures::stream::iter(todo.into_iter().map(|listing| ListingRun::archive(self, listing)))
            .buffer_unordered(self.at_once);
        while let Some((key, counts, end)) = listings.try_next().await? {
            part.counts.add(&counts);
            match end {
                ListingEnd::Done => part.done.push(key),
                ListingEnd::Stopped(cursor) => {
                    part.cursors.insert(key, cursor);
                    part.listings_left += 1;
                }
                ListingEnd::NotStarted => part.listings_left += 1,
            }
        }
        Ok(part)
    }
}

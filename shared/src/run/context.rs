//! What the layers of a run share, at the bottom of `run/`: the run's inputs (its scope, ports,
//! settings and request), and the context every listing of a part shares ([`Pass`]): the
//! histories it writes to, the scope's listing states, the pace and the deadline.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::config::RunConfig;
use super::ended::LastRun;
use super::pacer::Pacer;
use super::pool::Staging;
use super::request::RunRequest;
use super::state::{ListingEnd, PartStates, Previous};
use crate::diff::{ListingDiff, RunMark};
use crate::error::Result;
use crate::history::{Bucket, HistoryObject, RunContext};
use crate::personal::PersonalData;
use crate::sources::Listing;
use crate::table::{Progress, Scope, SeenBefore};

/// What a run is given: the scope it archives, the session API, the table and the bucket, its
/// settings and its request.
pub(super) struct RunInputs<'a, S, D, O> {
    pub(super) scope: &'a Scope,
    pub(super) source: &'a S,
    pub(super) table: &'a D,
    pub(super) bucket: &'a O,
    pub(super) config: &'a RunConfig,
    pub(super) request: &'a RunRequest,
    /// Where a part that completes its run may leave its lines for its batch's pool; `None`: it
    /// writes its own objects.
    pub(super) staging: Option<&'a Staging>,
}

impl<S, D, O> Clone for RunInputs<'_, S, D, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, D, O> Copy for RunInputs<'_, S, D, O> {}

/// The two history objects of a part.
pub(super) struct Histories<'a, O: Bucket> {
    pub(super) snapshots: HistoryObject<'a, O>,
    pub(super) changes: HistoryObject<'a, O>,
}

impl<O: Bucket> Histories<'_, O> {
    /// Writes the objects of a part that have lines: their keys. A part that saw no session
    /// writes no object (its manifest, and its line in the runs dataset, say it listed nothing);
    /// one without changes no changes object: a redelivered event's changes are recorded again,
    /// so an absent object never hides one that was written.
    pub(super) async fn finish(&mut self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for object in [&mut self.snapshots, &mut self.changes] {
            if object.lines() > 0 {
                keys.push(object.finish().await?.key);
            } else {
                object.abort().await;
            }
        }
        Ok(keys)
    }

    /// Aborts whatever upload either object has open.
    pub(super) async fn abort(&mut self) {
        self.snapshots.abort().await;
        self.changes.abort().await;
    }
}

/// What every listing of a pass shares.
pub(super) struct Pass<'a, S, D, O: Bucket> {
    pub(super) source: &'a S,
    pub(super) table: &'a D,
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
    pub(super) bucket: &'a O,
    /// The snapshots objects of the scope's last complete run, where the ids of the sessions a
    /// listing ends are looked up before the table is read for them; read once, when a listing
    /// first needs them.
    pub(super) listed_before: &'a [String],
    pub(super) last_run: tokio::sync::OnceCell<Option<LastRun>>,
    /// The scope's listing states; `None` in a dry run.
    pub(super) states: Option<PartStates<'a, O>>,
    /// Why a listing read the table rather than its section of the state object (the first
    /// one's reason).
    pub(super) state_rebuilt_because: std::sync::Mutex<Option<String>>,
    pub(super) pacer: Mutex<Pacer>,
    /// Whether a listing returns every session of its parent (no filter), so missing ones ended.
    pub(super) complete_listings: bool,
    /// Listings read at the same time.
    pub(super) at_once: usize,
    /// Pages read by this part so far.
    pub(super) pages_read: AtomicU64,
    pub(super) personal_data: &'a PersonalData,
}

impl<S, D, O: Bucket> Pass<'_, S, D, O> {
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

impl<S, D, O: Bucket> Pass<'_, S, D, O> {
    /// The ids of the sessions of listing `parent_id` whose fingerprints are `ending`, from the
    /// last complete run's snapshot lines; `None` unless all are there.
    pub(super) async fn ended_ids(
        &self,
        parent_id: Option<&str>,
        ending: &HashSet<u64>,
    ) -> Result<Option<Vec<String>>> {
        let read = LastRun::read(self.bucket, self.listed_before, self.scope, &self.mark.run_id);
        match self.last_run.get_or_try_init(|| read).await? {
            Some(last) => last.ids(parent_id, ending),
            None => Ok(None),
        }
    }

    /// Where the previous state of `listing` comes from, the reason noted when it is the table.
    pub(super) fn previous_of(&self, listing: &Listing, resumed: bool) -> Previous {
        let Some(states) = &self.states else { return Previous::Table { rebuild: false } };
        match states.previous_of(listing, resumed) {
            Ok(state) => Previous::Saved(state),
            Err(reason) => {
                self.state_rebuilt_because.lock().unwrap().get_or_insert(reason);
                Previous::Table { rebuild: true }
            }
        }
    }

    /// Whether `listing` left a carry in this part (none in a run that writes no state).
    pub(super) fn left_carry(&self, listing: &Listing) -> bool {
        self.states.as_ref().is_some_and(|states| states.left_carry(listing))
    }

    /// The sessions `listing` has seen, read back from the carry it left.
    pub(super) fn carried_seen(&self, listing: &Listing) -> Result<Vec<u64>> {
        self.states.as_ref().map_or(Ok(Vec::new()), |states| states.carried_seen(listing))
    }

    /// Spools the section `listing` leaves (nothing in a dry run).
    pub(super) fn leave(
        &self,
        listing: &Listing,
        end: &ListingEnd,
        diff: Option<&mut ListingDiff<'_>>,
        changed: bool,
    ) -> Result<()> {
        self.states.as_ref().map_or(Ok(()), |states| states.leave(listing, end, diff, changed))
    }
}

//! One part's pass: the listings the run has not finished, up to `max_concurrent_listings` at a
//! time, until they end or paging must stop; then the part's two history objects.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use super::context::{Histories, Pass, RunInputs};
use super::listing::ListingRun;
use super::pacer::Pacer;
use super::pool::StagedLines;
use super::state::{ListingEnd, ListingStates, PartStates};
use crate::diff::RunMark;
use crate::error::Result;
use crate::history::{object_key, Bucket, HistoryKind, HistoryObject, RunContext, RunId};
use crate::sources::{Listing, SessionSource};
use crate::table::{Cursor, Progress, RunCounts, SeenBefore, SessionTable};

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
    /// Its lines, left for the batch's pool rather than written (see [`super::pool`]).
    pub(super) staged: Option<StagedLines>,
}

/// Reads the listings the run has not finished and writes what changed, with the listing states
/// `written` (none in a dry run: nothing is written).
pub(super) async fn pass<S, D, O>(
    run: RunInputs<'_, S, D, O>,
    progress: &Progress,
    seen_before: &std::sync::Mutex<SeenBefore>,
    mark: &RunMark,
    written: Option<&ListingStates>,
    listed_before: &[String],
) -> Result<PartResult>
where
    S: SessionSource,
    D: SessionTable,
    O: Bucket,
{
    let mut pass = start_pass(run, progress, seen_before, mark, written.is_some(), listed_before)?;
    let deadlines = &run.request.deadlines;
    if let Some(policy) = written {
        let opened = PartStates::open(run.bucket, policy, run.scope, &run.config.state_prefix, &progress.run_id);
        pass.states = Some(deadlines.work(STATES_WAIT, opened).await?);
    }
    let throttles_before = run.source.throttles();
    // Dropped whole at the give-up time: whatever it waits on (a page, the previous state, a
    // write, a part upload), the objects are still here to abort.
    let mut result = deadlines.work(LISTINGS_WAIT, listings(&pass)).await.map(|mut part| {
        part.counts.throttles = run.source.throttles().saturating_sub(throttles_before);
        part.state_rebuilt_because = pass.state_rebuilt_because.lock().unwrap().take();
        part
    });
    // Before the history: a state object that cannot be written fails the part with nothing
    // of its history written.
    if let (Ok(part), Some(states)) = (&mut result, pass.states.take()) {
        match deadlines.work(STATES_WAIT, states.write(progress.parts, run.config.upload_part_size)).await {
            Ok((wrote, sections)) => {
                part.counts.states_written += u64::from(wrote);
                part.state_sections = sections;
            }
            Err(err) => result = Err(err),
        }
    }
    let Some(histories) = pass.histories.map(Mutex::into_inner) else {
        return result;
    };
    write_histories(run, progress, result, histories).await
}

/// The part's two history objects once its listings ran: written (or its lines staged for the
/// batch's pool) when they ran well, else aborted.
async fn write_histories<S, D, O: Bucket>(
    run: RunInputs<'_, S, D, O>,
    progress: &Progress,
    result: Result<PartResult>,
    mut histories: Histories<'_, O>,
) -> Result<PartResult> {
    let deadlines = &run.request.deadlines;
    let written = match result {
        Ok(mut part) => {
            if let Some(lines) = stage(run, progress, &part, &mut histories) {
                part.staged = Some(lines);
                return Ok(part);
            }
            let keys = deadlines.work("S3: the part's history objects", histories.finish()).await;
            keys.map(|keys| {
                part.keys.extend(keys);
                part
            })
        }
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

/// The part's lines, left for its batch's pool: when the part completes the batch's own run, has
/// lines, all still in memory, and the batch's staging has room for them.
fn stage<S, D, O: Bucket>(
    run: RunInputs<'_, S, D, O>,
    progress: &Progress,
    part: &PartResult,
    histories: &mut Histories<'_, O>,
) -> Option<StagedLines> {
    let staging = run.staging?;
    let lines = histories.snapshots.lines() + histories.changes.lines();
    if part.listings_left > 0 || lines == 0 || progress.run_id != run.request.run_id.as_str() {
        return None;
    }
    let size = histories.snapshots.staged_size()? + histories.changes.staged_size()?;
    if !staging.take(size) {
        return None;
    }
    let Histories { snapshots, changes } = histories;
    let snapshots = (snapshots.key().to_owned(), snapshots.stage()?);
    let changes = (changes.key().to_owned(), changes.stage()?);
    Some(StagedLines { objects: [snapshots, changes] })
}

/// The context the part's listings share; `writes`: its two history objects are open;
/// `listed_before`: the last complete run's snapshots objects.
fn start_pass<'p, S: SessionSource, D, O: Bucket>(
    run: RunInputs<'p, S, D, O>,
    progress: &'p Progress,
    seen_before: &'p std::sync::Mutex<SeenBefore>,
    mark: &'p RunMark,
    writes: bool,
    listed_before: &'p [String],
) -> Result<Pass<'p, S, D, O>> {
    let run_id = RunId::parse(&progress.run_id)?;
    let (config, bucket) = (run.config, run.bucket);
    let key = |kind| object_key(&config.history_prefix, kind, run.scope, &progress.event_time, &run_id, progress.parts);
    let histories = writes.then(|| {
        Mutex::new(Histories {
            snapshots: HistoryObject::new(bucket, key(HistoryKind::Snapshots), config.upload_part_size),
            changes: HistoryObject::new(bucket, key(HistoryKind::Changes), config.upload_part_size),
        })
    });
    Ok(Pass {
        source: run.source,
        table: run.table,
        scope: run.scope,
        mark,
        progress,
        seen_before,
        stop_paging: run.request.deadlines.stop_paging,
        ctx: RunContext {
            snapshot_at: mark.snapshot_at.clone(),
            run_id: mark.run_id.clone(),
            account_id: run.scope.account_id.clone(),
            region: run.scope.region.clone(),
        },
        histories,
        bucket,
        listed_before,
        last_run: tokio::sync::OnceCell::new(),
        states: None,
        state_rebuilt_because: std::sync::Mutex::new(None),
        pacer: Mutex::new(Pacer::new(config.max_calls_per_second)),
        complete_listings: !run.source.options().narrows_listings(),
        at_once: config.max_concurrent_listings.max(1),
        pages_read: AtomicU64::new(0),
        personal_data: &config.personal_data,
    })
}

/// The listings not done yet, `max_concurrent_listings` at a time, each to its end or until
/// paging must stop.
async fn listings<S, D, O>(pass: &Pass<'_, S, D, O>) -> Result<PartResult>
where
    S: SessionSource,
    D: SessionTable,
    O: Bucket,
{
    let discovery = pass.source.listings().await?;
    let mut part = PartResult {
        counts: RunCounts { api_calls: discovery.api_calls, ..RunCounts::default() },
        ..PartResult::default()
    };
    let (done, todo): (Vec<&Listing>, Vec<&Listing>) =
        discovery.listings.iter().partition(|listing| pass.progress.done.contains(&listing.key()));
    // Done in an earlier part: their sections stand.
    for listing in done {
        pass.leave(listing, &ListingEnd::NotStarted, None, false)?;
    }
    let mut listings = futures::stream::iter(todo.into_iter().map(|listing| ListingRun::archive(pass, listing)))
        .buffer_unordered(pass.at_once);
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

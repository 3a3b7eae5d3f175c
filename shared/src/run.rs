//! The run: one function that joins a source, the table and the history.
//!
//! lease → the run to work on (a partial one with the same source options, or the event's own)
//! → unfinished runs → manifest `running` → for each listing not done: previous state (16 bytes
//! a session), pages (from where an earlier part stopped), the stored items of changed sessions,
//! diff, change-only writes, snapshot and change lines, until the listing ends or the deadline
//! comes; ended sessions found in a second read of the previous state, fetched by id → history objects of the part → manifest
//! `complete`, or progress saved and manifest `partial` → lease released.
//!
//! Any failure aborts the part's history uploads, marks the manifest `failed` (or keeps it
//! `partial` when an earlier part saved its place) and returns the error; the items already
//! written stay, and the next run records their changes again (see [`crate::snapshot::diff`]).
//! A part that is done again after a crash writes the same keys, so no line is written twice
//! (see [`crate::snapshot::progress`]).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::deadline::Deadlines;
use crate::error::{quoted, Error, Result};
use crate::history::{line, object_key, Change, HistoryKind, HistoryObject, ObjectStore, RunContext, RunId};
use crate::model::{ServiceId, SessionRecord, Timestamp};
use crate::personal::PersonalData;
use crate::snapshot::dynamodb::{BATCH_GET_MAX_KEYS, BATCH_WRITE_MAX_ITEMS};
use crate::snapshot::{
    Cursor, LeaseHolder, LeaseOutcome, ListingDiff, Manifest, Observation, Progress, RunCounts, RunMark, RunStatus,
    Scope, Seen, SnapshotStore, StoredSession,
};
use crate::sources::{pages, Listing, SessionSource};

/// How a run is set up, validated once at cold start.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub account_id: String,
    pub region: String,
    /// Key prefix of the history objects in the bucket (may be empty).
    pub history_prefix: String,
    /// How long an ended session stays in the table (its TTL).
    pub ended_retention: Duration,
    /// How long a run holds the lease: longer than the function's timeout.
    pub lease_duration: Duration,
    /// Size of a multipart part; an object goes multipart once past it.
    pub part_size: usize,
    /// How many recent runs are checked for unfinished ones whose changes must be recorded again.
    pub unfinished_runs_window: i32,
    /// Listings (parents) read at the same time.
    pub max_concurrent_listings: usize,
    /// Client-side pace of list calls; `None` for none (the SDK's adaptive retry still slows down
    /// under throttling).
    pub max_calls_per_second: Option<f64>,
    /// What happens to user ids and phone numbers. [`RunConfig::new`] keeps them; a function
    /// sets its policy and key from `PERSONAL_DATA` and `PERSONAL_DATA_KEY_SECRET`.
    pub personal_data: PersonalData,
}

impl RunConfig {
    pub fn new(account_id: impl Into<String>, region: impl Into<String>) -> Self {
        RunConfig {
            account_id: account_id.into(),
            region: region.into(),
            history_prefix: "history".into(),
            ended_retention: Duration::from_secs(90 * 86_400),
            lease_duration: Duration::from_secs(16 * 60),
            part_size: crate::history::DEFAULT_PART_SIZE,
            unfinished_runs_window: 50,
            max_concurrent_listings: 4,
            max_calls_per_second: None,
            personal_data: PersonalData::keep_all(),
        }
    }

    /// Checks every value, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("account id {} is not 12 digits", quoted(&self.account_id)));
        }
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return bad(format!("region {} is not an AWS region name like eu-west-1", quoted(&self.region)));
        }
        let prefix_ok = self.history_prefix.len() <= 512
            && !self.history_prefix.split('/').any(|part| part == "." || part == "..")
            && self.history_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/!-_.*'()=".contains(c));
        if !prefix_ok {
            return bad(format!(
                "history prefix {} must be at most 512 characters of letters, digits and / ! - _ . * ' ( ) =, without . or .. segments",
                quoted(&self.history_prefix)
            ));
        }
        let days = self.ended_retention.as_secs() / 86_400;
        if !(1..=3650).contains(&days) || !self.ended_retention.as_secs().is_multiple_of(86_400) {
            return bad(format!(
                "ended-session retention must be 1 to 3650 whole days, not {:?}",
                self.ended_retention
            ));
        }
        if !(60..=86_400).contains(&self.lease_duration.as_secs()) {
            return bad(format!("lease duration must be 60 s to 24 h, not {:?}", self.lease_duration));
        }
        if !(crate::history::S3_MIN_PART_SIZE..=5 * 1024 * 1024 * 1024).contains(&self.part_size) {
            return bad(format!("part size must be 5 MiB to 5 GiB, not {} bytes", self.part_size));
        }
        if !(1..=64).contains(&self.max_concurrent_listings) {
            return bad(format!("concurrent listings must be 1 to 64, not {}", self.max_concurrent_listings));
        }
        if self.max_calls_per_second.is_some_and(|pace| !(pace > 0.0 && pace <= 1000.0)) {
            return bad(format!(
                "calls per second must be above 0 and at most 1000, not {:?}",
                self.max_calls_per_second
            ));
        }
        if !(1..=1000).contains(&self.unfinished_runs_window) {
            return bad(format!("unfinished runs window must be 1 to 1000, not {}", self.unfinished_runs_window));
        }
        Ok(())
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An EventBridge schedule.
    Scheduled,
    /// A replay event sent by hand.
    Replay,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Replay => "replay",
        }
    }
}

/// A validated request for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// Derived from the event: a redelivered event has the same run id and writes the same keys.
    pub run_id: RunId,
    pub event_id: String,
    /// When the event was sent: the `dt` partition of the history and the manifest's sort key.
    pub event_time: Timestamp,
    pub trigger: Trigger,
    /// Read and report, write nothing.
    pub dry_run: bool,
    /// Who runs it: Lambda's request id, which a retry of a failed attempt keeps. A second
    /// delivery of the same event, running at the same time, has another and is skipped.
    pub invocation_id: String,
    /// When to stop paging, to give up waiting, and to end; none outside Lambda.
    pub deadlines: Deadlines,
}

impl RunRequest {
    /// An invocation id for a run started outside Lambda: unique to this process and moment.
    pub fn local_invocation_id() -> String {
        format!("local-{}-{:016x}", std::process::id(), fastrand::u64(..))
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Complete,
    /// The deadline came first: what was read is written and the place is kept; the next
    /// invocation carries on.
    Partial,
    /// Nothing was read or written: another run held the lease, or the event's run is complete.
    Skipped,
    /// Read and reported, nothing written.
    DryRun,
}

/// What a run returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub service: ServiceId,
    /// The run this invocation worked on: the event's own, or the one it carried on.
    pub run_id: String,
    pub outcome: RunOutcome,
    /// 0 for the first invocation of a run, 1… for the ones that carried it on.
    pub part: u32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// What this invocation did.
    #[serde(flatten)]
    pub counts: RunCounts,
    /// Listings not finished yet (partial runs and dry runs that reached the deadline).
    pub listings_left: u64,
    /// History objects this invocation wrote.
    pub s3_keys: Vec<String>,
    /// For a skipped run: the run that holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_held_by: Option<String>,
    /// For a skipped run whose event was already archived by a complete run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_complete: bool,
}

/// Runs one pass of `source` into `store` and `objects`: the event's run, or the run with the
/// same source options that an earlier invocation left partial. Every wait is bounded by the
/// request's [`Deadlines`]: a run still waiting when they come fails with [`Error::Timeout`] and
/// records the failure before the invocation's end.
pub async fn run<S, D, O>(
    source: &S,
    store: &D,
    objects: &O,
    config: &RunConfig,
    request: &RunRequest,
) -> Result<RunSummary>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let service = source.service();
    let scope = Scope { service, account_id: config.account_id.clone(), region: config.region.clone() };
    let started_at = Timestamp::now();
    let fresh = fresh_progress(request, source.options().fingerprint(), &started_at);
    let summary = |run_id: &str, outcome, part| RunSummary {
        service,
        run_id: run_id.to_owned(),
        outcome,
        part,
        started_at: started_at.clone(),
        finished_at: Timestamp::now(),
        counts: RunCounts::default(),
        listings_left: 0,
        s3_keys: Vec::new(),
        lease_held_by: None,
        already_complete: false,
    };

    if request.dry_run {
        let part = Box::pin(dry_run::<S, D, O>(source, store, config, &fresh, &request.deadlines, &scope)).await?;
        let listings_left = part.listings_left;
        return Ok(RunSummary { counts: part.counts, listings_left, ..summary(&fresh.run_id, RunOutcome::DryRun, 0) });
    }

    let deadlines = &request.deadlines;
    let holder =
        LeaseHolder { run_id: request.run_id.as_str().to_owned(), invocation_id: request.invocation_id.clone() };
    let now = started_at.epoch_seconds();
    let lease_until = deadlines.lease_until(now, config.lease_duration);
    let taken = deadlines.work("DynamoDB: the run's lease", store.acquire_lease(&scope, &holder, now, lease_until));
    if let LeaseOutcome::HeldBy { run_id: holder, invocation_id, expires_at } = taken.await? {
        if holder == request.run_id.as_str() {
            info!(%service, holder, invocation_id, expires_at, "another invocation is running this event's run; skipping");
        } else {
            info!(%service, holder, expires_at, "another run holds the lease; skipping");
        }
        return Ok(RunSummary { lease_held_by: Some(holder), ..summary(&fresh.run_id, RunOutcome::Skipped, 0) });
    }
    // Boxed, as the pass below: a run's future is deep, and kept on the heap it does not weigh on
    // the stack of whatever polls it (a test thread's 2 MiB, in a debug build).
    let outcome = Box::pin(carry_on(source, store, objects, config, request, &scope, fresh, &started_at)).await;
    // The failure path: the manifest and the lease at the same time, each bounded by the end.
    let failed_manifest = match &outcome {
        Ok(Carried::Failed { manifest, .. }) => Some(manifest),
        _ => None,
    };
    let record_failure = async {
        let Some(manifest) = failed_manifest else { return };
        let recorded = deadlines.last("DynamoDB: the run manifest", store.put_manifest(&scope, manifest));
        if let Err(also) = recorded.await {
            warn!(error = %also, "could not record the failure in the run manifest");
        }
    };
    let release = async {
        let released = deadlines.last("DynamoDB: the run's lease", store.release_lease(&scope, &holder));
        if let Err(err) = released.await {
            warn!(error = %err, "could not release the lease; it expires by itself at the invocation's deadline");
        }
    };
    tokio::join!(record_failure, release);
    let (run_id, part_number, part) = match outcome? {
        Carried::AlreadyComplete(run_id) => {
            info!(%service, run_id, "the event's run is already complete; nothing to do");
            return Ok(RunSummary { already_complete: true, ..summary(&run_id, RunOutcome::Skipped, 0) });
        }
        Carried::Failed { error, .. } => return Err(error),
        Carried::Ran { run_id, part, result } => (run_id, part, result),
    };
    let outcome = if part.listings_left == 0 { RunOutcome::Complete } else { RunOutcome::Partial };
    info!(%service, run_id, part = part_number, ?outcome, counts = ?part.counts, "run part done");
    Ok(RunSummary {
        counts: part.counts,
        listings_left: part.listings_left,
        s3_keys: part.keys,
        ..summary(&run_id, outcome, part_number)
    })
}

/// A pass that reads and diffs every listing and writes nothing.
async fn dry_run<S: SessionSource, D: SnapshotStore, O: ObjectStore>(
    source: &S,
    store: &D,
    config: &RunConfig,
    fresh: &Progress,
    deadlines: &Deadlines,
    scope: &Scope,
) -> Result<PartResult> {
    let mark = run_mark(config, &fresh.run_id, &fresh.started_at, Default::default());
    pass(source, store, None::<&O>, config, fresh, deadlines, scope, &mark).await
}

/// Where a run that starts with this request stands: nothing done yet.
fn fresh_progress(request: &RunRequest, options: String, started_at: &Timestamp) -> Progress {
    Progress {
        run_id: request.run_id.as_str().to_owned(),
        event_id: request.event_id.clone(),
        event_time: request.event_time.clone(),
        trigger: request.trigger.as_str().into(),
        started_at: started_at.clone(),
        options,
        parts: 0,
        counts: RunCounts::default(),
        s3_keys: Vec::new(),
        done: Default::default(),
        cursors: Default::default(),
        updated_at: started_at.clone(),
    }
}

/// What happened under the lease.
enum Carried {
    /// The event's run had already completed.
    AlreadyComplete(String),
    /// A part of a run was done: the run, the part, and what it did.
    Ran { run_id: String, part: u32, result: PartResult },
    /// A part failed: its manifest, saying so, is still to be written.
    Failed { error: Error, manifest: Manifest },
}

/// The run a part works on, chosen under the lease.
struct Chosen {
    progress: Progress,
    /// Whether an earlier part saved the run's place.
    resuming: bool,
    /// Recent runs that never completed: their changes are recorded again.
    unfinished: std::collections::HashSet<String>,
    manifest: Manifest,
}

/// Under the lease: picks the run (a partial one with the same options, or the event's own),
/// runs one part of it, and records how it went in the manifest and the progress item.
#[allow(clippy::too_many_arguments)]
async fn carry_on<S, D, O>(
    source: &S,
    store: &D,
    objects: &O,
    config: &RunConfig,
    request: &RunRequest,
    scope: &Scope,
    fresh: Progress,
    started_at: &Timestamp,
) -> Result<Carried>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let deadlines = &request.deadlines;
    let chosen =
        deadlines.work("DynamoDB: the run's progress and manifests", choose_run(store, scope, config, request, fresh));
    let Some(Chosen { mut progress, resuming, unfinished, mut manifest }) = chosen.await? else {
        return Ok(Carried::AlreadyComplete(request.run_id.as_str().to_owned()));
    };
    let mark = run_mark(config, &progress.run_id, started_at, unfinished);
    let result = Box::pin(pass(source, store, Some(objects), config, &progress, deadlines, scope, &mark)).await;

    manifest.finished_at = Some(Timestamp::now());
    let part = match result {
        Ok(part) => part,
        Err(err) => {
            // A run with a saved place stays partial: the next invocation carries on from it.
            manifest.status = if resuming { RunStatus::Partial } else { RunStatus::Failed };
            manifest.parts = progress.parts;
            // Bounded: the manifest is one DynamoDB item.
            manifest.error = Some(crate::error::bounded(err.to_string()));
            return Ok(Carried::Failed { error: err, manifest });
        }
    };
    let ran_part = progress.parts;
    let recorded = record_part(store, scope, &mut progress, &mut manifest, &part, resuming);
    deadlines.work("DynamoDB: the part's manifest and progress", recorded).await?;
    Ok(Carried::Ran { run_id: progress.run_id, part: ran_part, result: part })
}

/// Picks the run to work on and marks its manifest `running`; `None` when the event's own run
/// is already complete.
async fn choose_run<D: SnapshotStore>(
    store: &D,
    scope: &Scope,
    config: &RunConfig,
    request: &RunRequest,
    fresh: Progress,
) -> Result<Option<Chosen>> {
    let progress = match store.get_progress(scope, &fresh.options).await? {
        Some(kept) => match store.run_status(scope, &kept.event_time, &kept.run_id).await? {
            // Completed after its progress was saved, before the progress was removed.
            Some(RunStatus::Complete) => {
                store.delete_progress(scope, &kept.options).await?;
                None
            }
            _ => Some(kept),
        },
        None => None,
    }
    .unwrap_or(fresh);
    let resuming = progress.parts > 0;
    if !resuming
        && store.run_status(scope, &request.event_time, request.run_id.as_str()).await? == Some(RunStatus::Complete)
    {
        return Ok(None);
    }
    if resuming {
        info!(
            run_id = progress.run_id,
            part = progress.parts,
            done = progress.done.len(),
            stopped = progress.cursors.len(),
            invoked_by = request.run_id.as_str(),
            "carrying on a partial run"
        );
    }
    let unfinished = store.unfinished_runs(scope, config.unfinished_runs_window).await?;
    if unfinished.iter().any(|r| r != &progress.run_id) {
        info!(runs = ?unfinished, "recording again the changes of unfinished runs");
    }
    let manifest = Manifest {
        run_id: progress.run_id.clone(),
        event_time: progress.event_time.clone(),
        started_at: progress.started_at.clone(),
        finished_at: None,
        status: RunStatus::Running,
        trigger: progress.trigger.clone(),
        event_id: progress.event_id.clone(),
        counts: progress.counts.clone(),
        s3_keys: progress.s3_keys.clone(),
        parts: progress.parts + 1,
        error: None,
    };
    store.put_manifest(scope, &manifest).await?;
    Ok(Some(Chosen { progress, resuming, unfinished, manifest }))
}

/// Records a part that ran: the manifest `complete` (and the progress gone), or the progress
/// saved and the manifest `partial`.
async fn record_part<D: SnapshotStore>(
    store: &D,
    scope: &Scope,
    progress: &mut Progress,
    manifest: &mut Manifest,
    part: &PartResult,
    resuming: bool,
) -> Result<()> {
    manifest.counts.add(&part.counts);
    manifest.s3_keys.extend(part.keys.iter().cloned());
    if part.listings_left == 0 {
        manifest.status = RunStatus::Complete;
        store.put_manifest(scope, manifest).await?;
        if resuming {
            store.delete_progress(scope, &progress.options).await?;
        }
        return Ok(());
    }
    for key in &part.done {
        progress.cursors.remove(key);
        progress.done.insert(key.clone());
    }
    progress.cursors.extend(part.cursors.clone());
    progress.parts += 1;
    progress.counts = manifest.counts.clone();
    progress.s3_keys = manifest.s3_keys.clone();
    progress.updated_at = Timestamp::now();
    // The commit point of the part: its items and objects are written; from here on the next
    // invocation starts after them.
    store.put_progress(scope, progress).await?;
    manifest.status = RunStatus::Partial;
    store.put_manifest(scope, manifest).await
}

fn run_mark(
    config: &RunConfig,
    run_id: &str,
    started_at: &Timestamp,
    carried_runs: std::collections::HashSet<String>,
) -> RunMark {
    RunMark {
        run_id: run_id.to_owned(),
        snapshot_at: started_at.clone(),
        ended_expires_at: started_at.epoch_seconds() + config.ended_retention.as_secs() as i64,
        carried_runs,
    }
}

/// The two history objects of a part, or none in a dry run.
struct Histories<'a, O: ObjectStore> {
    snapshots: HistoryObject<'a, O>,
    changes: HistoryObject<'a, O>,
}

/// What every listing of a pass shares.
struct PassContext<'a, S, D, O: ObjectStore> {
    source: &'a S,
    store: &'a D,
    scope: &'a Scope,
    mark: &'a RunMark,
    /// Where the run stands: listings done, listings stopped mid-pagination.
    progress: &'a Progress,
    stop_at: Option<tokio::time::Instant>,
    ctx: RunContext,
    /// `None` in a dry run.
    histories: Option<tokio::sync::Mutex<Histories<'a, O>>>,
    pacer: tokio::sync::Mutex<Pacer>,
    /// Whether a listing returns every session of its parent (no filter), so missing ones ended.
    complete_listings: bool,
    /// Pages read by this part so far.
    pages_read: std::sync::atomic::AtomicU64,
    personal_data: &'a PersonalData,
}

impl<S, D, O: ObjectStore> PassContext<'_, S, D, O> {
    /// Whether paging must stop. A part always reads at least one page, so a run whose
    /// invocations are all short still moves on.
    fn past_deadline(&self) -> bool {
        self.stop_at.is_some_and(|stop| tokio::time::Instant::now() >= stop)
            && self.pages_read.load(std::sync::atomic::Ordering::Relaxed) > 0
    }
}

/// What one part of a run did.
#[derive(Debug, Default)]
struct PartResult {
    counts: RunCounts,
    /// History objects written.
    keys: Vec<String>,
    /// Listings finished in this part.
    done: Vec<String>,
    /// Listings this part stopped mid-pagination.
    cursors: std::collections::BTreeMap<String, Cursor>,
    /// Listings not finished (stopped, or not reached before the deadline).
    listings_left: u64,
}

/// How a listing's part ended.
enum ListingEnd {
    Done,
    Stopped(Cursor),
    /// The deadline came before it started.
    NotStarted,
}

/// Reads the listings the run has not finished (up to `max_concurrent_listings` at a time) until
/// they end or the deadline comes, and writes what changed.
#[allow(clippy::too_many_arguments)]
async fn pass<S, D, O>(
    source: &S,
    store: &D,
    objects: Option<&O>,
    config: &RunConfig,
    progress: &Progress,
    deadlines: &Deadlines,
    scope: &Scope,
    mark: &RunMark,
) -> Result<PartResult>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let service = scope.service;
    let run_id = RunId::parse(&progress.run_id)?;
    let key = |kind| object_key(&config.history_prefix, kind, service, &progress.event_time, &run_id, progress.parts);
    let throttles_before = source.throttles();
    let shared = PassContext {
        source,
        store,
        scope,
        mark,
        progress,
        stop_at: deadlines.stop_paging,
        ctx: RunContext {
            snapshot_at: mark.snapshot_at.clone(),
            run_id: mark.run_id.clone(),
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
        },
        histories: objects.map(|objects| {
            tokio::sync::Mutex::new(Histories {
                snapshots: HistoryObject::new(objects, key(HistoryKind::Snapshots), config.part_size),
                changes: HistoryObject::new(objects, key(HistoryKind::Changes), config.part_size),
            })
        }),
        pacer: tokio::sync::Mutex::new(Pacer::new(config.max_calls_per_second)),
        complete_listings: !source.options().narrows_listings(),
        pages_read: Default::default(),
        personal_data: &config.personal_data,
    };
    let listings = async {
        let discovery = source.listings().await?;
        let mut part = PartResult {
            counts: RunCounts { api_calls: discovery.api_calls, ..RunCounts::default() },
            ..PartResult::default()
        };
        let todo = discovery.listings.iter().filter(|listing| !progress.done.contains(&listing.key()));
        let mut listings = futures::stream::iter(todo.map(|listing| archive_listing(&shared, listing)))
            .buffer_unordered(config.max_concurrent_listings.max(1));
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
        Ok::<_, Error>(part)
    };
    // Dropped whole at the give-up time: whatever it waits on (a page, the previous state, a
    // write, a part upload), the objects below are still here to abort.
    let result = deadlines.work(LISTINGS_WAIT, listings).await;
    let result = result.map(|mut part| {
        part.counts.throttles = source.throttles().saturating_sub(throttles_before);
        part
    });

    let Some(mut histories) = shared.histories.map(tokio::sync::Mutex::into_inner) else {
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

/// What the listings of a pass wait on, as a timeout names it.
const LISTINGS_WAIT: &str = "the listings (session API pages, the table's reads and writes, history parts)";

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

/// One listing: its previous state, its pages (from where an earlier part stopped), the diff,
/// the writes and the lines, until it ends or the deadline comes.
async fn archive_listing<S, D, O>(
    shared: &PassContext<'_, S, D, O>,
    listing: &Listing,
) -> Result<(String, RunCounts, ListingEnd)>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let key = listing.key();
    let parent_id = listing.parent_id.as_deref();
    let mut counts = RunCounts::default();
    if shared.past_deadline() {
        return Ok((key, counts, ListingEnd::NotStarted));
    }
    let cursor = shared.progress.cursors.get(&key);
    let mut diff = ListingDiff::resume(shared.mark, cursor.into_iter().flat_map(|c| c.seen.iter().copied()));
    let mut stored = std::pin::pin!(shared.store.stored_states(shared.scope, parent_id));
    while let Some(page) = stored.try_next().await? {
        page.iter().for_each(|state| diff.remember(state));
    }
    let mut token = cursor.and_then(|c| c.next_token.clone());
    let mut pages_done = cursor.map_or(0, |c| c.pages_done);
    let mut restarted = false;
    let mut writes = PendingWrites::new(shared.store, shared.scope, shared.histories.is_some());
    // Listed sessions whose stored item the diff needs, kept across pages until a BatchGetItem's
    // worth (100) waits: a listing of 25 a page (WorkSpaces connection status) at 10 % churn
    // needs an item on nine pages in ten, where full calls need one per 40 pages: fetching per
    // page made dozens of times the calls (72 against 3 in the e2e test), each a round trip the
    // run waits on. All are decided before the listing ends or stops, so a saved
    // place never names a session whose change is not written.
    let mut undecided: Vec<(SessionRecord, String)> = Vec::new();
    loop {
        let mut stream = std::pin::pin!(pages(shared.source, listing, token.clone()));
        let stopped = loop {
            shared.pacer.lock().await.wait().await;
            if shared.past_deadline() {
                break Ok(true);
            }
            let page = match stream.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break Ok(false),
                Err(err) => break Err(err),
            };
            counts.pages += 1;
            counts.api_calls += 1;
            pages_done += 1;
            shared.pages_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for mut record in page.sessions {
                // Before anything else sees it: the diff, the table, the history, the logs.
                shared.personal_data.apply(&mut record)?;
                match diff.observe(record) {
                    Seen::Repeated => counts.duplicates += 1,
                    Seen::Decided(observation) => {
                        record_listed(observation, shared, &mut counts, &mut writes).await?;
                    }
                    Seen::NeedsPrevious { record, record_hash } => undecided.push((record, record_hash)),
                }
            }
            while undecided.len() >= BATCH_GET_MAX_KEYS {
                let mut batch: Vec<_> = undecided.drain(..BATCH_GET_MAX_KEYS).collect();
                decide_listed(&mut batch, &diff, parent_id, shared, &mut counts, &mut writes).await?;
            }
            token = page.next_token;
            if token.is_none() {
                break Ok(false);
            }
        };
        match stopped {
            Ok(false) => break,
            Ok(true) => {
                decide_listed(&mut undecided, &diff, parent_id, shared, &mut counts, &mut writes).await?;
                writes.flush().await?;
                counts.items_written = writes.written;
                let seen = diff.seen();
                return Ok((key, counts, ListingEnd::Stopped(Cursor { next_token: token, pages_done, seen })));
            }
            // A token that expired or is no longer accepted: start the listing again; the
            // sessions already seen are not listed twice.
            Err(err) if token.is_some() && !restarted && err.is_token_refusal() => {
                warn!(listing = key, error = %err, "next token refused; reading the listing again from its first page");
                restarted = true;
                counts.restarted_listings += 1;
                token = None;
                pages_done = 0;
            }
            Err(err) => return Err(err),
        }
    }
    decide_listed(&mut undecided, &diff, parent_id, shared, &mut counts, &mut writes).await?;
    // After a complete listing, the stored sessions it did not return, only when some did not
    // come back: found in a second read of the previous state (projected, as the first), then
    // fetched whole by id, a BatchGetItem's worth at a time. Reading whole items for this held a
    // 1 MB Query page as 5–7 MiB of attribute maps, the largest block of a churn run.
    if shared.complete_listings && diff.has_ended() {
        let mut ending: Vec<String> = Vec::with_capacity(BATCH_GET_MAX_KEYS);
        let mut stored = std::pin::pin!(shared.store.stored_states(shared.scope, parent_id));
        while let Some(page) = stored.try_next().await? {
            for state in page {
                if diff.ends(&state) {
                    ending.push(state.session_id);
                }
                if ending.len() == BATCH_GET_MAX_KEYS {
                    end_sessions(&mut ending, &mut diff, parent_id, shared, &mut counts, &mut writes).await?;
                }
            }
        }
        end_sessions(&mut ending, &mut diff, parent_id, shared, &mut counts, &mut writes).await?;
    }
    writes.flush().await?;
    counts.items_written = writes.written;
    counts.parents = 1;
    Ok((key, counts, ListingEnd::Done))
}

/// Decides the listed sessions waiting for their stored item (taken out of `waiting`): the items
/// fetched by id, a BatchGetItem for each 100, and what the diff makes of each recorded.
async fn decide_listed<S, D: SnapshotStore, O: ObjectStore>(
    waiting: &mut Vec<(SessionRecord, String)>,
    diff: &ListingDiff<'_>,
    parent_id: Option<&str>,
    shared: &PassContext<'_, S, D, O>,
    counts: &mut RunCounts,
    writes: &mut PendingWrites<'_, D>,
) -> Result<()> {
    if waiting.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = waiting.iter().map(|(record, _)| record.session_id.as_str()).collect();
    let mut found = shared.store.get_sessions(shared.scope, parent_id, &ids).await?;
    for (record, record_hash) in waiting.drain(..) {
        let before = found.remove(&record.session_id);
        let observation = diff.decide(record, record_hash, before);
        record_listed(observation, shared, counts, writes).await?;
    }
    Ok(())
}

/// Ends the stored sessions with these ids (taken out of `ids`) from their whole items; an item
/// gone since the previous state was read (removed by its TTL) has nothing left to end.
async fn end_sessions<S, D: SnapshotStore, O: ObjectStore>(
    ids: &mut Vec<String>,
    diff: &mut ListingDiff<'_>,
    parent_id: Option<&str>,
    shared: &PassContext<'_, S, D, O>,
    counts: &mut RunCounts,
    writes: &mut PendingWrites<'_, D>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut found = shared.store.get_sessions(shared.scope, parent_id, &keys).await?;
    for id in ids.drain(..) {
        if let Some(observation) = found.remove(&id).and_then(|before| diff.end(before)) {
            record_observation(observation, shared, counts, writes).await?;
        }
    }
    Ok(())
}

/// A listed session: its snapshot line, then its change and write.
async fn record_listed<S, D: SnapshotStore, O: ObjectStore>(
    observation: Observation,
    shared: &PassContext<'_, S, D, O>,
    counts: &mut RunCounts,
    writes: &mut PendingWrites<'_, D>,
) -> Result<()> {
    counts.sessions += 1;
    if let Some(histories) = &shared.histories {
        let text = line(&shared.ctx, &observation.record, &observation.record_hash, None);
        histories.lock().await.snapshots.push(&text).await?;
    }
    record_observation(observation, shared, counts, writes).await
}

async fn record_observation<S, D: SnapshotStore, O: ObjectStore>(
    observation: Observation,
    shared: &PassContext<'_, S, D, O>,
    counts: &mut RunCounts,
    writes: &mut PendingWrites<'_, D>,
) -> Result<()> {
    match observation.change.as_ref().map(|(change, _)| *change) {
        None => counts.unchanged += 1,
        Some(Change::Opened) => counts.new += 1,
        Some(Change::Changed) => counts.changed += 1,
        Some(Change::Ended) => counts.ended += 1,
    }
    if let (Some(histories), Some((change, previous))) = (&shared.histories, &observation.change) {
        let text =
            line(&shared.ctx, &observation.record, &observation.record_hash, Some((*change, previous.as_deref())));
        histories.lock().await.changes.push(&text).await?;
    }
    if let Some(write) = observation.write {
        writes.push(write).await?;
    }
    Ok(())
}

/// Keeps list calls at most `per_second` apart on average.
struct Pacer {
    interval: Option<Duration>,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(per_second: Option<f64>) -> Self {
        Pacer { interval: per_second.map(|pace| Duration::from_secs_f64(1.0 / pace)), next: None }
    }

    async fn wait(&mut self) {
        let Some(interval) = self.interval else { return };
        let now = tokio::time::Instant::now();
        if let Some(next) = self.next.filter(|next| *next > now) {
            tokio::time::sleep_until(next).await;
        }
        self.next = Some(self.next.map_or(now, |next| next.max(now)) + interval);
    }
}

/// Session items waiting to be written: sent in batches of 25 as they fill, or at the end of a
/// listing. A dry run sends nothing.
struct PendingWrites<'a, D: SnapshotStore> {
    store: &'a D,
    scope: &'a Scope,
    items: Vec<StoredSession>,
    enabled: bool,
    written: u64,
}

impl<'a, D: SnapshotStore> PendingWrites<'a, D> {
    fn new(store: &'a D, scope: &'a Scope, enabled: bool) -> Self {
        PendingWrites { store, scope, items: Vec::with_capacity(BATCH_WRITE_MAX_ITEMS), enabled, written: 0 }
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
            self.store.write_sessions(self.scope, &self.items).await?;
            self.written += self.items.len() as u64;
        }
        self.items.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        RunConfig::new("123456789012", "eu-west-1").validate().unwrap();
    }

    #[test]
    fn each_bad_config_value_is_named() {
        let base = RunConfig::new("123456789012", "eu-west-1");
        let cases: Vec<(RunConfig, &str)> = vec![
            (RunConfig { account_id: "12345".into(), ..base.clone() }, "account id `12345` is not 12 digits"),
            (RunConfig { region: "EU West".into(), ..base.clone() }, "region `EU West`"),
            (RunConfig { history_prefix: "a/../b".into(), ..base.clone() }, "history prefix `a/../b`"),
            (RunConfig { history_prefix: "with space".into(), ..base.clone() }, "history prefix `with space`"),
            (
                RunConfig { ended_retention: Duration::from_secs(0), ..base.clone() },
                "retention must be 1 to 3650 whole days",
            ),
            (
                RunConfig { ended_retention: Duration::from_secs(3600), ..base.clone() },
                "retention must be 1 to 3650 whole days",
            ),
            (
                RunConfig { lease_duration: Duration::from_secs(5), ..base.clone() },
                "lease duration must be 60 s to 24 h",
            ),
            (RunConfig { part_size: 1024, ..base.clone() }, "part size must be 5 MiB to 5 GiB"),
            (RunConfig { unfinished_runs_window: 0, ..base.clone() }, "unfinished runs window must be 1 to 1000"),
        ];
        for (config, expected) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.starts_with("invalid configuration: "), "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }
}

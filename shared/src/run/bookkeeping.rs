//! The run's bookkeeping: the lease, which run a part works on (the event's own, or a partial one
//! it resumes), the manifest's status, and the progress item, the part's commit point.
//!
//! lease taken (or `skipped`) → run chosen (or `skipped`: already complete) → manifest `running`
//! → the part's pass → manifest `complete` and progress gone, or progress saved and manifest
//! `partial`, or (the pass failed) manifest `failed` (`partial` when an earlier part saved its
//! place) → lease released. Every wait is bounded by the request's deadlines; the failure path
//! (manifest and lease, at the same time) by the invocation's end.

use std::collections::HashSet;

use tracing::{debug, info, warn};

use super::context::RunInputs;
use super::kept::{load_progress, save_progress};
use super::pass::{pass, PartResult};
use super::pool::{pooled_lines, PoolTarget, StagedLines};
use super::quiet::quiet_run;
use super::request::{RunOutcome, RunSummary};
use super::state::ListingStates;
use crate::diff::RunMark;
use crate::error::{bounded, Error, Result};
use crate::history::{Bucket, HistoryKind};
use crate::model::Scope;
use crate::model::Timestamp;
use crate::sources::SessionSource;
use crate::table::{pool_part, LeaseHolder, LeaseOutcome, Manifest, Progress, RunCounts, RunStatus, StateVouch, Table};

/// One invocation's run: what it is given, and when it started.
pub(super) struct Run<'a, S, D, O> {
    run: RunInputs<'a, S, D, O>,
    started_at: Timestamp,
}

/// What happened under the lease.
enum PartOutcome {
    /// The event's run had already completed.
    AlreadyComplete,
    /// A part of a run was done: the run, the part, what it did, and what its listings' state
    /// objects are worth.
    Ran { run_id: String, part: u32, result: PartResult, states: ListingStates },
    /// A part failed: its manifest, saying so, is still to be written.
    Failed { error: Error, manifest: Manifest },
    /// A part that completed its run left its lines for the batch's pool: it is recorded once
    /// they are written.
    Staged(Box<Staged>),
}

/// What a run did: it is done, or a part's lines wait for the batch's pool.
#[allow(clippy::large_enum_variant, reason = "one a scope's run, moved once")]
pub(super) enum Executed {
    Done(RunSummary),
    Staged(Box<Staged>),
}

/// A part that holds its scope's lease, its items and listing states written, its lines staged.
pub(super) struct Staged {
    started_at: Timestamp,
    holder: LeaseHolder,
    progress: Progress,
    manifest: Manifest,
    resuming: bool,
    result: PartResult,
    states: ListingStates,
}

/// A scope's run, prepared: done, or a part whose lines wait for its batch's pool.
pub enum Prepared<'a, D, O> {
    Done(Box<RunSummary>),
    Staged(StagedPart<'a, D, O>),
}

/// A staged part with what it needs to be [`StagedPart::finish`]ed once its batch's pool is
/// written (or could not be): no session API.
pub struct StagedPart<'a, D, O> {
    run: Run<'a, (), D, O>,
    staged: Box<Staged>,
}

impl<'a, D, O> StagedPart<'a, D, O> {
    pub(super) fn new(run: RunInputs<'a, (), D, O>, staged: Box<Staged>) -> Self {
        StagedPart { run: Run { run, started_at: staged.started_at.clone() }, staged }
    }
}

/// The run a part works on, chosen under the lease.
struct Chosen {
    progress: Progress,
    /// Whether an earlier part saved the run's place: the run is resumed.
    resuming: bool,
    /// Recent runs that never completed: their changes are recorded again.
    unfinished: HashSet<String>,
    /// The snapshots objects of the scope's last complete run: where ended sessions' ids are.
    listed_before: Vec<String>,
    manifest: Manifest,
}

impl<'a, S, D, O> Run<'a, S, D, O>
where
    S: SessionSource,
    D: Table,
    O: Bucket,
{
    pub(super) fn new(run: RunInputs<'a, S, D, O>) -> Self {
        Run { run, started_at: Timestamp::now() }
    }

    /// The run, start to end: a dry run, or a part under the lease; or, when its lines are left
    /// for the batch's pool, up to them.
    pub(super) async fn execute(&self) -> Result<Executed> {
        let fresh = self.fresh_progress();
        if self.run.request.dry_run {
            let mark = self.mark(&fresh.run_id, HashSet::new());
            let part = Box::pin(pass(self.run, &fresh, &Default::default(), &mark, None, &[])).await?;
            let summary = self.summary(&fresh.run_id, RunOutcome::DryRun, 0);
            return Ok(Executed::Done(RunSummary {
                counts: part.counts,
                listings_left: part.listings_left,
                ..summary
            }));
        }
        if let Some(counts) = quiet_run(self.run, &self.started_at).await? {
            let run_id = self.run.request.run_id.as_str();
            debug!(service = %self.run.scope.service, run_id, "quiet: the scope holds no session; nothing written");
            let summary = self.summary(run_id, RunOutcome::Complete, 0);
            return Ok(Executed::Done(RunSummary { counts, quiet: true, ..summary }));
        }
        let holder = LeaseHolder {
            run_id: self.run.request.run_id.as_str().to_owned(),
            invocation_id: self.run.request.invocation_id.clone(),
        };
        let vouched = match self.take_lease(&holder).await? {
            Ok(vouched) => vouched,
            Err(skipped) => return Ok(Executed::Done(skipped)),
        };
        // Boxed: a run's future is deep, and on the heap it does not weigh on the stack of what
        // polls it.
        let outcome = Box::pin(self.run_part(fresh, vouched.as_ref(), &holder)).await;
        if let Ok(PartOutcome::Staged(staged)) = outcome {
            return Ok(Executed::Staged(staged));
        }
        self.end(outcome, &holder, vouched).await.map(Executed::Done)
    }

    /// Takes the scope's lease: what the run before vouched for; or the summary of a skipped run
    /// when another invocation holds it.
    async fn take_lease(&self, holder: &LeaseHolder) -> Result<std::result::Result<Option<StateVouch>, RunSummary>> {
        let now = self.started_at.epoch_seconds();
        let deadlines = &self.run.request.deadlines;
        let until = deadlines.lease_until(now, self.run.config.lease_duration);
        let taken = deadlines
            .work("DynamoDB: the run's lease", self.run.table.acquire_lease(self.run.scope, holder, now, until));
        let (held_by, invocation_id, expires_at) = match taken.await? {
            LeaseOutcome::Acquired { vouched } => return Ok(Ok(vouched)),
            LeaseOutcome::HeldBy { run_id, invocation_id, expires_at } => (run_id, invocation_id, expires_at),
        };
        let service = self.run.scope.service;
        if held_by == holder.run_id {
            info!(%service, held_by, invocation_id, expires_at, "another invocation is running this event's run; skipping");
        } else {
            info!(%service, held_by, expires_at, "another run holds the lease; skipping");
        }
        let summary = self.summary(&holder.run_id, RunOutcome::Skipped, 0);
        Ok(Err(RunSummary { lease_held_by: Some(held_by), ..summary }))
    }

    /// Under the lease: picks the run, runs one part of it, and records how it went.
    async fn run_part(
        &self,
        fresh: Progress,
        vouched: Option<&StateVouch>,
        holder: &LeaseHolder,
    ) -> Result<PartOutcome> {
        let deadlines = &self.run.request.deadlines;
        let chosen = deadlines.work("DynamoDB: the run's progress and manifests", self.choose_run(fresh));
        let Some(Chosen { mut progress, resuming, unfinished, listed_before, mut manifest }) = chosen.await? else {
            return Ok(PartOutcome::AlreadyComplete);
        };
        let mark = self.mark(&progress.run_id, unfinished);
        let complete_listings = !self.run.source.options().narrows_listings();
        let states = ListingStates::of(vouched, &progress.run_id, complete_listings);
        // Held by the listings that resume from the table only; the rest put back.
        let seen_before = std::sync::Mutex::new(progress.take_seen());
        let result = Box::pin(pass(self.run, &progress, &seen_before, &mark, Some(&states), &listed_before)).await;
        progress.restore_seen(seen_before.into_inner().unwrap());
        manifest.finished_at = Some(Timestamp::now());
        let mut part = match result {
            Ok(part) => part,
            Err(error) => {
                // A run with a saved place stays partial: the next invocation carries it on.
                manifest.status = if resuming { RunStatus::Partial } else { RunStatus::Failed };
                manifest.parts = progress.parts;
                // Bounded: the manifest is one DynamoDB item.
                manifest.error = Some(bounded(error.to_string()));
                return Ok(PartOutcome::Failed { error, manifest });
            }
        };
        if part.staged.is_some() {
            let (started_at, holder) = (self.started_at.clone(), holder.clone());
            let result = part;
            return Ok(PartOutcome::Staged(Box::new(Staged {
                started_at,
                holder,
                progress,
                manifest,
                resuming,
                result,
                states,
            })));
        }
        let ran_part = progress.parts;
        let recorded = self.record_part(&mut progress, &mut manifest, &mut part, resuming);
        deadlines.work("DynamoDB: the part's manifest and progress", recorded).await?;
        Ok(PartOutcome::Ran { run_id: progress.run_id, part: ran_part, result: part, states })
    }

    /// Picks the run to work on (a partial one with the same source options, or the event's own)
    /// and marks its manifest `running`; `None` when the event's own run is already complete.
    async fn choose_run(&self, fresh: Progress) -> Result<Option<Chosen>> {
        let (table, scope) = (self.run.table, self.run.scope);
        let mut kept = load_progress(self.run, &fresh.options).await?;
        let mut status = None;
        if let Some(partial) = &kept {
            status = table.run_status(scope, &partial.event_time, &partial.run_id).await?;
            // Completed after its progress was saved, before the progress was removed.
            if status == Some(RunStatus::Complete) {
                table.delete_progress(scope, &partial.options).await?;
                (kept, status) = (None, None);
            }
        }
        let progress = kept.unwrap_or(fresh);
        let resuming = progress.parts > 0;
        let request = self.run.request;
        if !resuming {
            status = table.run_status(scope, &request.event_time, request.run_id.as_str()).await?;
            if status == Some(RunStatus::Complete) {
                return Ok(None);
            }
        }
        // A part done again, which may have left its lines in its batch's pool.
        if status.is_some() && progress.run_id == request.run_id.as_str() {
            let pooled = pooled_lines(table, self.run.bucket, scope, &progress.run_id, progress.parts).await?;
            if let Some(keys) = pooled {
                self.complete_from_pool(&progress, keys, resuming).await?;
                return Ok(None);
            }
        }
        if resuming {
            info!(
                run_id = progress.run_id,
                part = progress.parts,
                done = progress.done.len(),
                stopped = progress.cursors.len(),
                invoked_by = request.run_id.as_str(),
                "resuming a partial run"
            );
        }
        let recent = table.recent_runs(scope, self.run.config.unfinished_runs_window).await?;
        let unfinished = recent.unfinished;
        if unfinished.iter().any(|r| r != &progress.run_id) {
            info!(runs = ?unfinished, "recording again the changes of unfinished runs");
        }
        let listed_before = recent.last_complete_keys.into_iter().filter(|key| is_snapshots_key(key)).collect();
        let manifest = running_manifest(&progress);
        table.put_manifest(scope, &manifest).await?;
        Ok(Some(Chosen { progress, resuming, unfinished, listed_before, manifest }))
    }

    /// Where a run that starts with this request stands: nothing done yet.
    fn fresh_progress(&self) -> Progress {
        let request = self.run.request;
        Progress {
            run_id: request.run_id.as_str().to_owned(),
            event_id: request.event_id.clone(),
            event_time: request.event_time.clone(),
            trigger: request.trigger.as_str().into(),
            started_at: self.started_at.clone(),
            options: self.run.source.options().fingerprint(),
            parts: 0,
            counts: RunCounts::default(),
            s3_keys: Vec::new(),
            done: Default::default(),
            cursors: Default::default(),
            updated_at: self.started_at.clone(),
        }
    }
}

/// The bookkeeping that needs no session API: what a staged part does once its pool is written.
impl<'a, S, D: Table, O: Bucket> Run<'a, S, D, O> {
    /// The end of a part under the lease: recorded, the lease given back, the summary.
    async fn end(
        &self,
        outcome: Result<PartOutcome>,
        holder: &LeaseHolder,
        vouched: Option<StateVouch>,
    ) -> Result<RunSummary> {
        let vouch = vouch_after(&outcome, vouched);
        self.let_go(&outcome, holder, vouch.as_ref()).await;
        self.summarise(outcome?)
    }

    /// Records the run of a part whose lines a committed pool holds (its invocation stopped after
    /// the pool, before its manifest): complete, its progress gone.
    async fn complete_from_pool(&self, progress: &Progress, keys: Vec<String>, resuming: bool) -> Result<()> {
        let (table, scope) = (self.run.table, self.run.scope);
        let mut manifest = running_manifest(progress);
        manifest.status = RunStatus::Complete;
        manifest.finished_at = Some(Timestamp::now());
        manifest.s3_keys.extend(keys);
        table.put_manifest(scope, &manifest).await?;
        if resuming {
            table.delete_progress(scope, &progress.options).await?;
        }
        Ok(())
    }

    /// Records a part that ran: the manifest `complete` (and the progress gone), or the progress
    /// saved and the manifest `partial`.
    async fn record_part(
        &self,
        progress: &mut Progress,
        manifest: &mut Manifest,
        part: &mut PartResult,
        resuming: bool,
    ) -> Result<()> {
        let (table, scope) = (self.run.table, self.run.scope);
        manifest.counts.add(&part.counts);
        manifest.s3_keys.extend(part.keys.iter().cloned());
        if part.listings_left == 0 {
            manifest.status = RunStatus::Complete;
            table.put_manifest(scope, manifest).await?;
            if resuming {
                table.delete_progress(scope, &progress.options).await?;
            }
            return Ok(());
        }
        for key in &part.done {
            progress.cursors.remove(key);
            progress.done.insert(key.clone());
        }
        // Moved, not copied: a stopped listing's seen sessions are 8 bytes each (7 MB at 900,000).
        progress.cursors.extend(std::mem::take(&mut part.cursors));
        progress.parts += 1;
        progress.counts = manifest.counts.clone();
        progress.s3_keys = manifest.s3_keys.clone();
        progress.updated_at = Timestamp::now();
        // The commit point of the part: its items and objects are written; from here on the next
        // invocation starts after them.
        save_progress(self.run, progress).await?;
        manifest.status = RunStatus::Partial;
        table.put_manifest(scope, manifest).await
    }

    /// The end of a part under the lease: a failed part's manifest written and the lease given
    /// back, at the same time, each bounded by the invocation's end.
    async fn let_go(&self, outcome: &Result<PartOutcome>, holder: &LeaseHolder, vouch: Option<&StateVouch>) {
        let deadlines = &self.run.request.deadlines;
        let record_failure = async {
            let Ok(PartOutcome::Failed { manifest, .. }) = outcome else { return };
            let recorded =
                deadlines.last("DynamoDB: the run manifest", self.run.table.put_manifest(self.run.scope, manifest));
            if let Err(also) = recorded.await {
                warn!(error = %also, "could not record the failure in the run manifest");
            }
        };
        let release = async {
            let released = deadlines
                .last("DynamoDB: the run's lease", self.run.table.release_lease(self.run.scope, holder, vouch));
            if let Err(err) = released.await {
                warn!(error = %err, "could not release the lease; it expires by itself at the invocation's deadline");
            }
        };
        tokio::join!(record_failure, release);
    }

    /// What the invocation returns, from how its part went.
    fn summarise(&self, outcome: PartOutcome) -> Result<RunSummary> {
        let service = self.run.scope.service;
        match outcome {
            PartOutcome::AlreadyComplete => {
                let run_id = self.run.request.run_id.as_str();
                info!(%service, run_id, "the event's run is already complete; nothing to do");
                Ok(RunSummary { already_complete: true, ..self.summary(run_id, RunOutcome::Skipped, 0) })
            }
            PartOutcome::Failed { error, .. } => Err(error),
            PartOutcome::Staged(_) => {
                Err(Error::Mapping("a part whose lines were staged ended before its pool was written".into()))
            }
            PartOutcome::Ran { run_id, part: number, result: part, .. } => {
                let outcome = if part.listings_left == 0 { RunOutcome::Complete } else { RunOutcome::Partial };
                let (account_id, region) = (&self.run.scope.account_id, &self.run.scope.region);
                info!(%service, %account_id, %region, run_id, part = number, ?outcome, counts = ?part.counts, "run part done");
                Ok(RunSummary {
                    counts: part.counts,
                    listings_left: part.listings_left,
                    s3_keys: part.keys,
                    state_rebuilt_because: part.state_rebuilt_because,
                    ..self.summary(&run_id, outcome, number)
                })
            }
        }
    }

    /// A summary of `outcome` with nothing counted yet.
    fn summary(&self, run_id: &str, outcome: RunOutcome, part: u32) -> RunSummary {
        let started_at = self.started_at.clone();
        RunSummary::new(self.run.scope.service, run_id, outcome, part, started_at, Timestamp::now())
    }

    /// What the diff needs to know of the run: its id, its clock, and the unfinished runs.
    fn mark(&self, run_id: &str, unfinished: HashSet<String>) -> RunMark {
        RunMark {
            run_id: run_id.to_owned(),
            snapshot_at: self.started_at.clone(),
            ended_expires_at: self.started_at.epoch_seconds() + self.run.config.ended_retention.as_secs() as i64,
            unfinished_runs: unfinished,
        }
    }
}

impl<'a, D: Table, O: Bucket> StagedPart<'a, D, O> {
    pub fn scope(&self) -> &'a Scope {
        self.run.run.scope
    }

    /// How its batch's pool names it.
    pub fn pool_part(&self) -> String {
        pool_part(self.run.run.scope, self.staged.progress.parts)
    }

    pub(super) fn lines(&self) -> &StagedLines {
        self.staged.result.staged.as_ref().expect("a staged part has its lines")
    }

    /// Where its batch's pool goes (every staged part of a batch has the same).
    pub(super) fn pool_target(&self) -> PoolTarget<'a, D, O> {
        let RunInputs { table, bucket, config, request, .. } = self.run.run;
        PoolTarget {
            table,
            bucket,
            prefix: &config.history_prefix,
            upload_part_size: config.upload_part_size,
            service: self.run.run.scope.service,
            run_id: &request.run_id,
            event_time: &request.event_time,
            invocation_id: &request.invocation_id,
            deadlines: &request.deadlines,
        }
    }

    /// Records the part once its lines are `written` (the keys of the objects holding them), or
    /// fails it when they could not be; gives the lease back.
    pub async fn finish(self, written: Result<Vec<String>>) -> Result<RunSummary> {
        let StagedPart { run, staged } = self;
        let Staged { holder, mut progress, mut manifest, resuming, mut result, states, .. } = *staged;
        result.staged = None;
        let ran_part = progress.parts;
        let outcome = match written {
            Ok(keys) => {
                result.keys.extend(keys);
                let recorded = run.record_part(&mut progress, &mut manifest, &mut result, resuming);
                let deadlines = &run.run.request.deadlines;
                match deadlines.work("DynamoDB: the part's manifest and progress", recorded).await {
                    Ok(()) => Ok(PartOutcome::Ran { run_id: progress.run_id, part: ran_part, result, states }),
                    Err(err) => Err(err),
                }
            }
            Err(error) => {
                manifest.status = if resuming { RunStatus::Partial } else { RunStatus::Failed };
                manifest.parts = progress.parts;
                manifest.error = Some(bounded(error.to_string()));
                Ok(PartOutcome::Failed { error, manifest })
            }
        };
        run.end(outcome, &holder, None).await
    }
}

/// What a part that gives the lease back vouches for: the generation its listings' state objects
/// belong to, once it has written them all (for any run once the run is complete; for its own
/// next part while it is partial), and whether the scope was empty. A failed part vouches for nothing; a part that found its run
/// complete wrote nothing, and passes on what it was given.
fn vouch_after(outcome: &Result<PartOutcome>, vouched: Option<StateVouch>) -> Option<StateVouch> {
    match outcome {
        Ok(PartOutcome::AlreadyComplete) => vouched,
        Ok(PartOutcome::Ran { run_id, part, result, states }) if states.writes => Some(StateVouch {
            generation: states.generation.clone(),
            for_run: (result.listings_left > 0).then(|| run_id.clone()),
            sections: result.state_sections,
            // A run of one part that saw nothing in unfiltered listings: the scope is empty.
            quiet: *part == 0 && result.listings_left == 0 && result.counts.sessions == 0,
        }),
        _ => None,
    }
}

/// Whether a history key is of the snapshots dataset.
fn is_snapshots_key(key: &str) -> bool {
    key.split('/').any(|segment| segment == HistoryKind::Snapshots.as_str())
}

/// The manifest of a part starting: `running`, with the counts and objects of the parts before.
fn running_manifest(progress: &Progress) -> Manifest {
    Manifest {
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
    }
}

//! The run: one function that joins a source, the table and the history.
//!
//! lease → unfinished runs → manifest `running` → for each listing: previous state, pages, diff,
//! change-only writes, snapshot and change lines → history objects → manifest `complete` →
//! lease released. Any failure aborts the history uploads, marks the manifest `failed` (if the
//! table can still be reached) and returns the error; the items already written stay, and the
//! next run records their changes again (see [`crate::snapshot::diff`]).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::history::{line, object_key, Change, HistoryKind, HistoryObject, ObjectStore, RunContext, RunId};
use crate::model::{ServiceId, Timestamp};
use crate::snapshot::dynamodb::BATCH_WRITE_MAX_ITEMS;
use crate::snapshot::{
    LeaseOutcome, ListingDiff, Manifest, Observation, RunCounts, RunMark, RunStatus, Scope, SnapshotStore,
    StoredSession,
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
        }
    }

    /// Checks every value, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("account id `{}` is not 12 digits", self.account_id));
        }
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return bad(format!("region `{}` is not an AWS region name like eu-west-1", self.region));
        }
        let prefix_ok = self.history_prefix.len() <= 512
            && !self.history_prefix.split('/').any(|part| part == "." || part == "..")
            && self.history_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/!-_.*'()=".contains(c));
        if !prefix_ok {
            return bad(format!(
                "history prefix `{}` must be at most 512 characters of letters, digits and / ! - _ . * ' ( ) =, without . or .. segments",
                self.history_prefix
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
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Complete,
    /// Another run held the lease: nothing was read or written.
    Skipped,
    /// Read and reported, nothing written.
    DryRun,
}

/// What a run returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub service: ServiceId,
    pub run_id: String,
    pub outcome: RunOutcome,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    #[serde(flatten)]
    pub counts: RunCounts,
    /// History objects written.
    pub s3_keys: Vec<String>,
    /// For a skipped run: the run that holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_held_by: Option<String>,
}

/// Runs one complete pass of `source` into `store` and `objects`.
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
    let now = started_at.epoch_seconds();
    let run_id = request.run_id.as_str().to_owned();
    let summary = |outcome, counts, s3_keys, lease_held_by| RunSummary {
        service,
        run_id: run_id.clone(),
        outcome,
        started_at: started_at.clone(),
        finished_at: Timestamp::now(),
        counts,
        s3_keys,
        lease_held_by,
    };

    if request.dry_run {
        let mark = run_mark(config, request, &started_at, Default::default());
        let (counts, _) = pass(source, store, None::<&O>, config, request, &scope, &mark).await?;
        return Ok(summary(RunOutcome::DryRun, counts, Vec::new(), None));
    }

    let lease_until = now + config.lease_duration.as_secs() as i64;
    if let LeaseOutcome::HeldBy { run_id: holder, expires_at } =
        store.acquire_lease(&scope, &run_id, now, lease_until).await?
    {
        info!(%service, holder, expires_at, "another run holds the lease; skipping");
        return Ok(summary(RunOutcome::Skipped, RunCounts::default(), Vec::new(), Some(holder)));
    }

    let mut manifest = Manifest {
        run_id: run_id.clone(),
        event_time: request.event_time.clone(),
        started_at: started_at.clone(),
        finished_at: None,
        status: RunStatus::Running,
        trigger: request.trigger.as_str().into(),
        event_id: request.event_id.clone(),
        counts: RunCounts::default(),
        s3_keys: Vec::new(),
        error: None,
    };
    let result = async {
        let carried = store.unfinished_runs(&scope, config.unfinished_runs_window).await?;
        if carried.iter().any(|r| r != &run_id) {
            info!(runs = ?carried, "recording again the changes of unfinished runs");
        }
        store.put_manifest(&scope, &manifest).await?;
        let mark = run_mark(config, request, &started_at, carried);
        pass(source, store, Some(objects), config, request, &scope, &mark).await
    }
    .await;

    manifest.finished_at = Some(Timestamp::now());
    match result {
        Ok((counts, s3_keys)) => {
            manifest.status = RunStatus::Complete;
            manifest.counts = counts.clone();
            manifest.s3_keys = s3_keys.clone();
            store.put_manifest(&scope, &manifest).await?;
            if let Err(err) = store.release_lease(&scope, &run_id).await {
                warn!(error = %err, "could not release the lease; it expires by itself");
            }
            info!(%service, run_id, ?counts, "run complete");
            Ok(summary(RunOutcome::Complete, counts, s3_keys, None))
        }
        Err(err) => {
            manifest.status = RunStatus::Failed;
            manifest.error = Some(err.to_string());
            if let Err(also) = store.put_manifest(&scope, &manifest).await {
                warn!(error = %also, "could not mark the run failed");
            }
            if let Err(also) = store.release_lease(&scope, &run_id).await {
                warn!(error = %also, "could not release the lease; it expires by itself");
            }
            Err(err)
        }
    }
}

fn run_mark(
    config: &RunConfig,
    request: &RunRequest,
    started_at: &Timestamp,
    carried_runs: std::collections::HashSet<String>,
) -> RunMark {
    RunMark {
        run_id: request.run_id.as_str().to_owned(),
        snapshot_at: started_at.clone(),
        ended_expires_at: started_at.epoch_seconds() + config.ended_retention.as_secs() as i64,
        carried_runs,
    }
}

/// The two history objects of a run, or none in a dry run.
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
    ctx: RunContext,
    /// `None` in a dry run.
    histories: Option<tokio::sync::Mutex<Histories<'a, O>>>,
    pacer: tokio::sync::Mutex<Pacer>,
    /// Whether a listing returns every session of its parent (no filter), so missing ones ended.
    complete_listings: bool,
}

/// Reads every listing (up to `max_concurrent_listings` at a time) and writes what changed;
/// returns the counts and the keys written.
async fn pass<S, D, O>(
    source: &S,
    store: &D,
    objects: Option<&O>,
    config: &RunConfig,
    request: &RunRequest,
    scope: &Scope,
    mark: &RunMark,
) -> Result<(RunCounts, Vec<String>)>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let service = scope.service;
    let key = |kind| object_key(&config.history_prefix, kind, service, &request.event_time, &request.run_id);
    let shared = PassContext {
        source,
        store,
        scope,
        mark,
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
    };
    let result = async {
        let discovery = source.listings().await?;
        let mut counts = RunCounts { api_calls: discovery.api_calls, ..RunCounts::default() };
        let mut listings =
            futures::stream::iter(discovery.listings.iter().map(|listing| archive_listing(&shared, listing)))
                .buffer_unordered(config.max_concurrent_listings.max(1));
        while let Some(listing_counts) = listings.try_next().await? {
            counts.add(&listing_counts);
        }
        Ok::<_, Error>(counts)
    }
    .await;

    let Some(histories) = shared.histories.map(tokio::sync::Mutex::into_inner) else {
        return result.map(|counts| (counts, Vec::new()));
    };
    let counts = match result {
        Ok(counts) => counts,
        Err(err) => {
            histories.snapshots.abort().await;
            histories.changes.abort().await;
            return Err(err);
        }
    };
    let mut keys = Vec::new();
    let has_changes = histories.changes.lines() > 0;
    match histories.snapshots.finish().await {
        Ok(written) => keys.push(written.key),
        Err(err) => {
            histories.changes.abort().await;
            return Err(err);
        }
    }
    // No changes, no object: a redelivered event's changes are recorded again, so an absent
    // object never hides one that was written.
    if has_changes {
        keys.push(histories.changes.finish().await?.key);
    } else {
        histories.changes.abort().await;
    }
    Ok((counts, keys))
}

/// One listing: its previous state, every page, the diff, the writes and the lines.
async fn archive_listing<S, D, O>(shared: &PassContext<'_, S, D, O>, listing: &Listing) -> Result<RunCounts>
where
    S: SessionSource,
    D: SnapshotStore,
    O: ObjectStore,
{
    let mut counts = RunCounts { parents: 1, ..RunCounts::default() };
    let previous = shared.store.load_listing(shared.scope, listing.parent_id.as_deref()).await?;
    let mut diff = ListingDiff::new(shared.mark, previous);
    let mut writes = PendingWrites::new(shared.store, shared.scope, shared.histories.is_some());
    let mut stream = std::pin::pin!(pages(shared.source, listing, None));
    while let Some(page) = {
        shared.pacer.lock().await.wait().await;
        stream.try_next().await?
    } {
        counts.pages += 1;
        counts.api_calls += 1;
        for record in page.sessions {
            let Some(observation) = diff.observe(record) else {
                counts.duplicates += 1;
                continue;
            };
            counts.sessions += 1;
            if let Some(histories) = &shared.histories {
                histories
                    .lock()
                    .await
                    .snapshots
                    .push(&line(&shared.ctx, &observation.record, &observation.record_hash, None))
                    .await?;
            }
            record_observation(observation, shared, &mut counts, &mut writes).await?;
        }
    }
    for observation in diff.finish(shared.complete_listings) {
        record_observation(observation, shared, &mut counts, &mut writes).await?;
    }
    writes.flush().await?;
    counts.items_written = writes.written;
    Ok(counts)
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

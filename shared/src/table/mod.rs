//! Current state in DynamoDB: one item per session, change-only writes, ended sessions, run
//! manifests, the run lease and the progress of a run that spans invocations.
//!
//! - [`item`]: pure mapping between the model and DynamoDB items (keys, attributes);
//! - [`progress`]: pure encoding of where a run that stopped early stands;
//! - [`dynamodb`]: the DynamoDB adapter of both ports, [`SessionTable`] and [`RunLedger`];
//! - `memory`: their in-memory twin (feature `testing`).
//!
//! What to write of each session is the diff's decision ([`crate::diff`]).

pub mod dynamodb;
pub mod item;
/// The in-memory twin, for the tests of this crate and its sibling crates (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod progress;
pub mod session_update;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use futures::Stream;

use serde::{Deserialize, Serialize};

pub use crate::diff::stored::{StoredSession, StoredSummary};
pub use crate::diff::update::{SessionUpdate, Updated};
pub use dynamodb::{DynamoTable, WriteCounters};
pub use progress::{Cursor, Progress, ProgressObject, SavedProgress, SeenBefore};

use crate::error::Result;
pub use crate::model::Scope;
use crate::model::{ServiceId, Timestamp};

/// How a run ended, as its manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished: still running, or stopped without a word (a crash, a timeout).
    Running,
    Complete,
    /// Stopped at its deadline with its place kept; the next invocation resumes it.
    Partial,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [RunStatus::Running, RunStatus::Complete, RunStatus::Partial, RunStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What a run did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Listings paged through (parents, or the account).
    pub parents: u64,
    pub pages: u64,
    /// Calls to the session APIs, discovery included (first attempts; the SDK's retries are not counted).
    pub api_calls: u64,
    /// Sessions seen (each once per listing).
    pub sessions: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub ended: u64,
    /// Session items written to the table (whole, or in place).
    pub items_written: u64,
    /// Stored session items asked for by id, to decide a session from what the table holds.
    pub items_fetched: u64,
    /// Sessions written in place that the table refused, their items not as the run knew them:
    /// each decided from the item returned and written whole.
    pub updates_refused: u64,
    /// Sessions a page repeated within the same listing (kept once).
    pub duplicates: u64,
    /// Session API calls answered with a throttling error (each attempt counted; the SDK retried them).
    pub throttles: u64,
    /// Listings started again from their first page because the service refused their next token.
    pub restarted_listings: u64,
    /// Listings whose previous state was their state object (the table not read).
    pub states_read: u64,
    /// Listings that keep a state object and read the table instead (see the run's reason).
    pub states_rebuilt: u64,
    /// State objects written.
    pub states_written: u64,
}

impl RunCounts {
    /// Adds the counts of another listing.
    pub fn add(&mut self, other: &RunCounts) {
        self.parents += other.parents;
        self.pages += other.pages;
        self.api_calls += other.api_calls;
        self.sessions += other.sessions;
        self.new += other.new;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.ended += other.ended;
        self.items_written += other.items_written;
        self.items_fetched += other.items_fetched;
        self.updates_refused += other.updates_refused;
        self.duplicates += other.duplicates;
        self.throttles += other.throttles;
        self.restarted_listings += other.restarted_listings;
        self.states_read += other.states_read;
        self.states_rebuilt += other.states_rebuilt;
        self.states_written += other.states_written;
    }
}

/// The record of one run, one item per run.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub run_id: String,
    /// When the triggering event was sent: with the run id, the manifest's sort key.
    pub event_time: Timestamp,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub status: RunStatus,
    /// `scheduled`, `replay`, …
    pub trigger: String,
    pub event_id: String,
    pub counts: RunCounts,
    pub s3_keys: Vec<String>,
    /// Invocations that worked on the run (more than one when it reached a deadline).
    pub parts: u32,
    /// Why the run (or its last part) failed.
    pub error: Option<String>,
}

/// Who holds a scope's lease: a run, in one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub run_id: String,
    /// Lambda's request id, the same in a retry of a failed attempt.
    pub invocation_id: String,
}

/// What a run that gives the lease back vouches for: the scope's state object of `generation`
/// says what the table holds (see [`crate::state_object`]), for any run, or only for the partial run
/// `for_run` (whose stopped listings have items their objects do not have yet). Taking the lease
/// takes the vouch away, so a run that then fails, or does not write its listings' states,
/// leaves none, and the next run reads the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateVouch {
    pub generation: String,
    pub for_run: Option<String>,
    /// Sections of the scope's state object: with none, the object is not read (an empty scope
    /// makes no GET), and every listing reads the table, as for a listing without a section.
    pub sections: u64,
    /// The run that vouched was complete, its listings unfiltered, and it saw no session: the
    /// next run may be a quiet one (see [`crate::run`]).
    pub quiet: bool,
}

impl StateVouch {
    /// The generation a run may use, if the vouch is for it.
    pub fn generation_for(&self, run_id: &str) -> Option<&str> {
        self.for_run.as_deref().is_none_or(|only| only == run_id).then_some(self.generation.as_str())
    }
}

/// The lease as it stands, read without taking it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeasePeek {
    /// Until when it is held (epoch seconds); 0, or past, when nobody holds it.
    pub expires_at: i64,
    /// What the last holder vouched for as it gave it back.
    pub vouched: Option<StateVouch>,
}

/// Whether the lease was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Taken, with what the run that gave it back vouched for.
    Acquired { vouched: Option<StateVouch> },
    /// Another invocation holds it until `expires_at` (epoch seconds): another run's, or one
    /// running the same run (a second delivery of the same event).
    HeldBy { run_id: String, invocation_id: String, expires_at: i64 },
}

/// Who moves a scope's failed run to the dead-letter queue: SQS delivers a message at least once,
/// and two deliveries failing the same way must not make two dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterClaim {
    /// This claimant sends it, and then settles the claim.
    Claimed,
    /// It was sent already.
    Sent,
    /// Another claimant is sending it now (or stopped less than [`DEAD_LETTER_STALE_SECONDS`]
    /// ago without settling): the message is handed back, and its next delivery sees how it went.
    BeingSent,
}

/// How long a claim to send a dead letter holds without being settled: a claimant that stopped
/// between claiming and settling (a crash, a timeout) is then taken over. Far above a send, far
/// below the scope queues' visibility timeout, after which a message handed back returns.
pub const DEAD_LETTER_STALE_SECONDS: i64 = 15 * 60;

/// The record of a pooled pair of history objects: the lines of several scopes' parts of one run,
/// written together (see [`crate::run::batch`]). Written `pending` before the objects, `committed`
/// after them and before any of its parts' manifests; a part whose manifest is not complete finds
/// it here: committed, its part is done; pending or abandoned, its objects are deleted and the part
/// is done again. So a part's lines are in one object however its batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPool {
    /// Unique to the invocation that writes it.
    pub id: String,
    /// Its objects: a snapshots object, and a changes object when a part changed something.
    pub keys: Vec<String>,
    /// Its parts, each as [`pool_part`] names it.
    pub parts: Vec<String>,
    pub status: PoolStatus,
}

/// Where a [`HistoryPool`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolStatus {
    /// Its objects are being written, or were by an invocation that stopped before committing.
    Pending,
    /// Its objects are written and hold its parts' lines.
    Committed,
    /// Given up: its objects are deleted (again, by whoever finds it), its parts done again.
    Abandoned,
}

impl PoolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Pending => "pending",
            PoolStatus::Committed => "committed",
            PoolStatus::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [PoolStatus::Pending, PoolStatus::Committed, PoolStatus::Abandoned].into_iter().find(|s| s.as_str() == text)
    }
}

/// How a pool names one part it holds: the scope's account and region, and the part's number.
pub fn pool_part(scope: &Scope, part: u32) -> String {
    format!("{}.{}.{part}", scope.account_id, scope.region)
}

/// How long a pool's record is kept: longer than any delivery or retry of its batch (SQS's longest
/// retention), so a part left unfinished always finds it.
pub const POOL_KEPT_SECONDS: i64 = 15 * 86_400;

/// What the newest manifests of a scope say (see [`RunLedger::recent_runs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentRuns {
    /// The ids of those that did not complete: their changes are recorded again.
    pub unfinished: HashSet<String>,
    /// The history objects of the newest complete run (empty when none is among them): its
    /// snapshot lines name the sessions it listed, so a run finds there the ids of those that end.
    pub last_complete_keys: Vec<String>,
}

/// The table's sessions, as a listing reads and writes them.
pub trait SessionTable: Send + Sync {
    /// The state of every stored session of one listing (live and ended), a page at a time in
    /// session id order, so a listing of any size is read in bounded memory: what its diff remembers.
    fn stored_summaries<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSummary>>> + Send + 'a;

    /// Every stored session of one listing (live and ended), whole, a page at a time in session
    /// id order. A run never needs it (it reads [`SessionTable::stored_summaries`] and fetches whole
    /// items by id); the bench compares its bytes with the projected read's.
    fn stored_pages<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSession>>> + Send + 'a;

    /// The stored sessions of one listing with these ids (BatchGetItem, at most 100 per call);
    /// ids without an item are left out.
    fn get_sessions(
        &self,
        scope: &Scope,
        parent_id: Option<&str>,
        session_ids: &[&str],
    ) -> impl Future<Output = Result<HashMap<String, StoredSession>>> + Send;

    /// Writes whole session items (BatchWriteItem, at most 25 per call).
    fn write_sessions(&self, scope: &Scope, sessions: &[StoredSession]) -> impl Future<Output = Result<()>> + Send;

    /// Writes one session in place if its item stands as `update` expects
    /// ([`SessionUpdate::holds_for`]; a conditional UpdateItem), to what
    /// [`SessionUpdate::applied_to`] makes of it; returns the item as it was, applied or refused.
    fn update_session(&self, scope: &Scope, update: &SessionUpdate) -> impl Future<Output = Result<Updated>> + Send;
}

/// The run's own records in the table: the one-run lease, the run manifests, and the progress of
/// a run that stopped early.
pub trait RunLedger: Send + Sync {
    /// Takes the one-run-at-a-time lease of the scope until `expires_at` (epoch seconds): when
    /// nobody holds it, when it has expired, or when `holder`'s invocation holds it already
    /// (Lambda's retry of an attempt that could not give it back). Returns what the last holder
    /// vouched for as it gave the lease back, and takes it away.
    fn acquire_lease(
        &self,
        scope: &Scope,
        holder: &LeaseHolder,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<LeaseOutcome>> + Send;

    /// The scope's lease as it stands (a strongly consistent read), without taking it.
    fn peek_lease(&self, scope: &Scope) -> impl Future<Output = Result<LeasePeek>> + Send;

    /// Gives the lease back if `holder`'s invocation still holds it, vouching for `vouch`.
    fn release_lease(
        &self,
        scope: &Scope,
        holder: &LeaseHolder,
        vouch: Option<&StateVouch>,
    ) -> impl Future<Output = Result<()>> + Send;

    fn put_manifest(&self, scope: &Scope, manifest: &Manifest) -> impl Future<Output = Result<()>> + Send;

    /// The newest runs (at most `limit`): those whose manifest does not say complete, and the
    /// history objects of the newest that does.
    fn recent_runs(&self, scope: &Scope, limit: i32) -> impl Future<Output = Result<RecentRuns>> + Send;

    /// The status of a run's manifest, if it has one.
    fn run_status(
        &self,
        scope: &Scope,
        event_time: &Timestamp,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<RunStatus>>> + Send;

    /// Where the progress of the scope's run with these source options (their fingerprint) that
    /// stopped early is kept, if one did.
    fn get_progress(&self, scope: &Scope, options: &str) -> impl Future<Output = Result<Option<SavedProgress>>> + Send;

    /// Saves a run's progress (`saved`: its encoding, or the object holding it, written already):
    /// the commit point of the part just written.
    fn put_progress(
        &self,
        scope: &Scope,
        progress: &Progress,
        saved: &SavedProgress,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forgets the scope's progress once its run completes (or is given up).
    fn delete_progress(&self, scope: &Scope, options: &str) -> impl Future<Output = Result<()>> + Send;

    /// Records `pool` (pending) for `service`'s run `run_id`, kept until `expires_at` (epoch
    /// seconds), before its objects are written.
    fn open_pool(
        &self,
        service: ServiceId,
        run_id: &str,
        pool: &HistoryPool,
        expires_at: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Moves a pending pool to `to` (committed or abandoned); returns where it stands after: `to`,
    /// or what another invocation settled it as first.
    fn settle_pool(
        &self,
        service: ServiceId,
        run_id: &str,
        id: &str,
        to: PoolStatus,
    ) -> impl Future<Output = Result<PoolStatus>> + Send;

    /// Every pool of `service`'s run `run_id` (a strongly consistent read).
    fn pools(&self, service: ServiceId, run_id: &str) -> impl Future<Output = Result<Vec<HistoryPool>>> + Send;

    /// Claims the sending of the dead letter of `scope`'s run `run_id` for `claimant` (an
    /// invocation) at `now` (epoch seconds): claimed when nobody did, or a claim went stale
    /// unsettled; else whether it was sent or is being sent.
    fn claim_dead_letter(
        &self,
        scope: &Scope,
        run_id: &str,
        claimant: &str,
        now: i64,
    ) -> impl Future<Output = Result<DeadLetterClaim>> + Send;

    /// Settles `claimant`'s claim: `sent`, kept as sent (until SQS's longest retention); not
    /// sent, given up, so the next delivery claims it again.
    fn settle_dead_letter(
        &self,
        scope: &Scope,
        run_id: &str,
        claimant: &str,
        sent: bool,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The one table of current state: its sessions and the run's records.
pub trait Table: SessionTable + RunLedger {}

impl<T: SessionTable + RunLedger> Table for T {}

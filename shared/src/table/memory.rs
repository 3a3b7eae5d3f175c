//! The table's in-memory twin, for unit tests that need no moto: sessions, lease, manifests and
//! progress, keeping the adapter's contracts (ids in order, conditional lease, newest manifests
//! first); the end-to-end tests on moto check the DynamoDB adapter.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use futures::Stream;

use super::item::{manifest_sk, pool_pk};
use super::{
    DeadLetterClaim, HistoryPool, LeaseHolder, LeaseOutcome, LeasePeek, Manifest, PoolStatus, Progress, RecentRuns,
    RunLedger, RunStatus, SavedProgress, Scope, SessionTable, SessionUpdate, StateVouch, StoredSession, StoredSummary,
    Updated, DEAD_LETTER_STALE_SECONDS,
};
use crate::error::{injected, Result};
use crate::model::{ServiceId, Timestamp};

/// A scope's lease item: the holder, until when (0 once given back), and the vouch it left.
type Lease = (LeaseHolder, i64, Option<StateVouch>);

/// A dead-letter claim: the claimant, when it claimed, and whether it sent.
type Claim = (String, i64, bool);

/// The table, in memory.
#[derive(Default)]
pub struct MemoryTable {
    sessions: Mutex<BTreeMap<(String, String), StoredSession>>,
    /// By lease key: the holder, until when (0 once given back), and the vouch it left.
    lease: Mutex<HashMap<String, Lease>>,
    manifests: Mutex<BTreeMap<(String, String), Manifest>>,
    progress: Mutex<HashMap<(String, String), SavedProgress>>,
    /// Dead-letter claims by scope and run.
    dead_letters: Mutex<HashMap<(String, String), Claim>>,
    /// History pools by (partition, id).
    pools: Mutex<BTreeMap<(String, String), HistoryPool>>,
    /// Session writes refused once this many items are in the table.
    fail_writes_at: Mutex<Option<usize>>,
    /// Session writes never answered, as a silent DynamoDB.
    silent_writes: AtomicBool,
    /// Listings whose stored states were read (each a Query on DynamoDB).
    listings_read: AtomicU64,
}

impl MemoryTable {
    /// Refuses session writes once the table holds `items` sessions.
    pub fn fail_writes_at(&self, items: usize) {
        *self.fail_writes_at.lock().unwrap() = Some(items);
    }

    /// Session writes are accepted and never answered.
    pub fn go_silent(&self) {
        self.silent_writes.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        *self.fail_writes_at.lock().unwrap() = None;
        self.silent_writes.store(false, Ordering::SeqCst);
    }

    /// Every stored session, by id.
    pub fn sessions(&self) -> BTreeMap<String, StoredSession> {
        self.sessions.lock().unwrap().values().map(|s| (s.record.session_id.clone(), s.clone())).collect()
    }

    /// Every manifest, oldest first.
    pub fn manifests(&self) -> Vec<Manifest> {
        self.manifests.lock().unwrap().values().cloned().collect()
    }

    /// Sets every manifest's status, as an invocation that stopped before writing them would
    /// have left them (`running`).
    pub fn mark_manifests(&self, status: RunStatus) {
        self.manifests.lock().unwrap().values_mut().for_each(|m| m.status = status);
    }

    /// Takes every lease's vouch away, as runs that took their leases and stopped before giving
    /// them back leave them.
    pub fn drop_vouches(&self) {
        self.lease.lock().unwrap().values_mut().for_each(|lease| lease.2 = None);
    }

    /// Every history pool, oldest partition first.
    pub fn history_pools(&self) -> Vec<HistoryPool> {
        self.pools.lock().unwrap().values().cloned().collect()
    }

    /// Sets every history pool's status, as an invocation that stopped before committing them
    /// would have left them (`pending`).
    pub fn mark_pools(&self, status: PoolStatus) {
        self.pools.lock().unwrap().values_mut().for_each(|p| p.status = status);
    }

    pub fn progress_items(&self) -> usize {
        self.progress.lock().unwrap().len()
    }

    /// Who holds the scope's lease (not given back yet).
    pub fn lease_holder(&self, scope: &Scope) -> Option<LeaseHolder> {
        let leases = self.lease.lock().unwrap();
        leases.get(&scope.lease_pk()).filter(|(_, until, _)| *until > 0).map(|(holder, _, _)| holder.clone())
    }

    /// Listings whose stored states were read so far.
    pub fn listings_read(&self) -> u64 {
        self.listings_read.load(Ordering::SeqCst)
    }

    /// What the last run to give the scope's lease back vouched for.
    pub fn vouch(&self, scope: &Scope) -> Option<StateVouch> {
        self.lease.lock().unwrap().get(&scope.lease_pk()).and_then(|(_, _, vouch)| vouch.clone())
    }

    /// Replaces the vouch of a scope whose lease is free, as another run could have left it.
    pub fn set_vouch(&self, scope: &Scope, vouch: Option<StateVouch>) {
        let mut leases = self.lease.lock().unwrap();
        let holder = LeaseHolder { run_id: String::new(), invocation_id: String::new() };
        leases.entry(scope.lease_pk()).or_insert((holder, 0, None)).2 = vouch;
    }

    fn listing(&self, scope: &Scope, parent_id: Option<&str>) -> Vec<StoredSession> {
        let pk = scope.session_pk(parent_id);
        let sessions = self.sessions.lock().unwrap();
        sessions.iter().filter(|((p, _), _)| *p == pk).map(|(_, s)| s.clone()).collect()
    }
}

impl SessionTable for MemoryTable {
    fn stored_summaries<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSummary>>> + Send + 'a {
        self.listings_read.fetch_add(1, Ordering::SeqCst);
        let states: Vec<StoredSummary> = self.listing(scope, parent_id).iter().map(StoredSummary::from).collect();
        let pages: Vec<Result<Vec<StoredSummary>>> = states.chunks(100).map(|page| Ok(page.to_vec())).collect();
        futures::stream::iter(pages)
    }

    fn stored_pages<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredSession>>> + Send + 'a {
        let sessions = self.listing(scope, parent_id);
        let pages: Vec<Result<Vec<StoredSession>>> = sessions.chunks(100).map(|page| Ok(page.to_vec())).collect();
        futures::stream::iter(pages)
    }

    async fn get_sessions(
        &self,
        scope: &Scope,
        parent_id: Option<&str>,
        session_ids: &[&str],
    ) -> Result<HashMap<String, StoredSession>> {
        let pk = scope.session_pk(parent_id);
        let sessions = self.sessions.lock().unwrap();
        Ok(session_ids
            .iter()
            .filter_map(|id| sessions.get(&(pk.clone(), (*id).to_owned())).map(|s| ((*id).to_owned(), s.clone())))
            .collect())
    }

    async fn write_sessions(&self, scope: &Scope, written: &[StoredSession]) -> Result<()> {
        if self.silent_writes.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut sessions = self.sessions.lock().unwrap();
        if self.fail_writes_at.lock().unwrap().is_some_and(|at| sessions.len() >= at) {
            return Err(injected("DynamoDB BatchWriteItem"));
        }
        for stored in written {
            let key = (scope.session_pk(stored.record.parent_id.as_deref()), stored.record.session_id.clone());
            sessions.insert(key, stored.clone());
        }
        Ok(())
    }

    async fn update_session(&self, scope: &Scope, update: &SessionUpdate) -> Result<Updated> {
        if self.silent_writes.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut sessions = self.sessions.lock().unwrap();
        if self.fail_writes_at.lock().unwrap().is_some_and(|at| sessions.len() >= at) {
            return Err(injected("DynamoDB UpdateItem"));
        }
        let key = (scope.session_pk(update.parent_id.as_deref()), update.session_id.clone());
        let before = sessions.get(&key).cloned();
        if !update.holds_for(before.as_ref()) {
            return Ok(Updated::Refused(before));
        }
        let before = before.expect("an update holds for an item only");
        sessions.insert(key, update.applied_to(&before));
        Ok(Updated::Applied(before))
    }
}

impl RunLedger for MemoryTable {
    async fn acquire_lease(
        &self,
        scope: &Scope,
        holder: &LeaseHolder,
        now: i64,
        expires_at: i64,
    ) -> Result<LeaseOutcome> {
        let mut leases = self.lease.lock().unwrap();
        match leases.get(&scope.lease_pk()) {
            Some((held, until, _)) if *until >= now && held.invocation_id != holder.invocation_id => {
                Ok(LeaseOutcome::HeldBy {
                    run_id: held.run_id.clone(),
                    invocation_id: held.invocation_id.clone(),
                    expires_at: *until,
                })
            }
            _ => {
                let old = leases.insert(scope.lease_pk(), (holder.clone(), expires_at, None));
                Ok(LeaseOutcome::Acquired { vouched: old.and_then(|(_, _, vouch)| vouch) })
            }
        }
    }

    async fn peek_lease(&self, scope: &Scope) -> Result<LeasePeek> {
        let leases = self.lease.lock().unwrap();
        Ok(leases.get(&scope.lease_pk()).map_or_else(LeasePeek::default, |(_, until, vouch)| LeasePeek {
            expires_at: *until,
            vouched: vouch.clone(),
        }))
    }

    async fn release_lease(&self, scope: &Scope, holder: &LeaseHolder, vouch: Option<&StateVouch>) -> Result<()> {
        let mut leases = self.lease.lock().unwrap();
        if let Some(lease) =
            leases.get_mut(&scope.lease_pk()).filter(|(held, _, _)| held.invocation_id == holder.invocation_id)
        {
            *lease = (holder.clone(), 0, vouch.cloned());
        }
        Ok(())
    }

    async fn put_manifest(&self, scope: &Scope, manifest: &Manifest) -> Result<()> {
        let key = (scope.runs_pk(), manifest_sk(&manifest.event_time, &manifest.run_id));
        self.manifests.lock().unwrap().insert(key, manifest.clone());
        Ok(())
    }

    async fn recent_runs(&self, scope: &Scope, limit: i32) -> Result<RecentRuns> {
        let manifests = self.manifests.lock().unwrap();
        let newest: Vec<&Manifest> = manifests
            .iter()
            .rev()
            .filter(|((pk, _), _)| *pk == scope.runs_pk())
            .take(limit as usize)
            .map(|(_, m)| m)
            .collect();
        let unfinished = newest.iter().filter(|m| m.status != RunStatus::Complete).map(|m| m.run_id.clone()).collect();
        let last = newest.iter().find(|m| m.status == RunStatus::Complete);
        Ok(RecentRuns { unfinished, last_complete_keys: last.map(|m| m.s3_keys.clone()).unwrap_or_default() })
    }

    async fn run_status(&self, scope: &Scope, event_time: &Timestamp, run_id: &str) -> Result<Option<RunStatus>> {
        let key = (scope.runs_pk(), manifest_sk(event_time, run_id));
        Ok(self.manifests.lock().unwrap().get(&key).map(|m| m.status))
    }

    async fn get_progress(&self, scope: &Scope, options: &str) -> Result<Option<SavedProgress>> {
        Ok(self.progress.lock().unwrap().get(&(scope.progress_pk(), options.to_owned())).cloned())
    }

    async fn put_progress(&self, scope: &Scope, progress: &Progress, saved: &SavedProgress) -> Result<()> {
        let key = (scope.progress_pk(), progress.options.clone());
        self.progress.lock().unwrap().insert(key, saved.clone());
        Ok(())
    }

    async fn delete_progress(&self, scope: &Scope, options: &str) -> Result<()> {
        self.progress.lock().unwrap().remove(&(scope.progress_pk(), options.to_owned()));
        Ok(())
    }

    async fn claim_dead_letter(
        &self,
        scope: &Scope,
        run_id: &str,
        claimant: &str,
        now: i64,
    ) -> Result<DeadLetterClaim> {
        let mut claims = self.dead_letters.lock().unwrap();
        let key = (scope.dead_letter_pk(), run_id.to_owned());
        match claims.get(&key) {
            Some((_, _, true)) => Ok(DeadLetterClaim::Sent),
            Some((_, at, false)) if *at > now - DEAD_LETTER_STALE_SECONDS => Ok(DeadLetterClaim::BeingSent),
            _ => {
                claims.insert(key, (claimant.to_owned(), now, false));
                Ok(DeadLetterClaim::Claimed)
            }
        }
    }

    async fn settle_dead_letter(&self, scope: &Scope, run_id: &str, claimant: &str, sent: bool) -> Result<()> {
        let mut claims = self.dead_letters.lock().unwrap();
        let key = (scope.dead_letter_pk(), run_id.to_owned());
        match claims.get_mut(&key) {
            Some(claim) if claim.0 == claimant && sent => claim.2 = true,
            Some(claim) if claim.0 == claimant => {
                claims.remove(&key);
            }
            _ => {}
        }
        Ok(())
    }

    async fn open_pool(&self, service: ServiceId, run_id: &str, pool: &HistoryPool, _expires_at: i64) -> Result<()> {
        let key = (pool_pk(service, run_id), pool.id.clone());
        self.pools.lock().unwrap().insert(key, pool.clone());
        Ok(())
    }

    async fn settle_pool(&self, service: ServiceId, run_id: &str, id: &str, to: PoolStatus) -> Result<PoolStatus> {
        let mut pools = self.pools.lock().unwrap();
        let pool = pools.get_mut(&(pool_pk(service, run_id), id.to_owned()));
        let pool = pool.ok_or_else(|| crate::Error::UnreadableItem(format!("history pool {id}: gone")))?;
        if pool.status == PoolStatus::Pending {
            pool.status = to;
        }
        Ok(pool.status)
    }

    async fn pools(&self, service: ServiceId, run_id: &str) -> Result<Vec<HistoryPool>> {
        let pk = pool_pk(service, run_id);
        Ok(self.pools.lock().unwrap().iter().filter(|((p, _), _)| *p == pk).map(|(_, pool)| pool.clone()).collect())
    }
}

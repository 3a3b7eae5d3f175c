//! In-memory twins of the run's ports, for unit tests that need no moto and no emulator: the
//! table ([`MemoryTable`]: sessions, lease, manifests, progress), the bucket ([`MemoryBucket`])
//! and a scripted session API ([`ScriptedSource`]) that pages, refuses an expired token once, and
//! fails on demand. They keep the adapters' contracts (ids in order, conditional lease, newest
//! manifests first); the end-to-end tests on moto and the emulator check the real adapters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use futures::Stream;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::history::{ListedObject, ObjectListing, ObjectStore, UploadedPart};
use crate::model::{ServiceId, SessionRecord, Timestamp};
use crate::sources::{Discovery, Listing, RawPage, SessionSource, SourceOptions};
use crate::table::item::manifest_sk;
use crate::table::{
    LeaseHolder, LeaseOutcome, Manifest, Progress, RunLedger, RunStatus, SavedProgress, Scope, SessionTable,
    StateVouch, StoredSession, StoredState,
};

/// An injected failure of an AWS call, retryable as a 5xx is.
pub fn injected(operation: &'static str) -> Error {
    Error::Storage {
        operation,
        resource: "memory".into(),
        code: "InternalError".into(),
        message: "injected failure".into(),
        status: Some(500),
        retryable: true,
    }
}

/// A scope's lease item: the holder, until when (0 once given back), and the vouch it left.
type Lease = (LeaseHolder, i64, Option<StateVouch>);

/// The table, in memory.
#[derive(Default)]
pub struct MemoryTable {
    sessions: Mutex<BTreeMap<(String, String), StoredSession>>,
    /// By lease key: the holder, until when (0 once given back), and the vouch it left.
    lease: Mutex<HashMap<String, Lease>>,
    manifests: Mutex<BTreeMap<(String, String), Manifest>>,
    progress: Mutex<HashMap<(String, String), SavedProgress>>,
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
    fn stored_states<'a>(
        &'a self,
        scope: &'a Scope,
        parent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<StoredState>>> + Send + 'a {
        self.listings_read.fetch_add(1, Ordering::SeqCst);
        let states: Vec<StoredState> = self.listing(scope, parent_id).iter().map(StoredState::from).collect();
        let pages: Vec<Result<Vec<StoredState>>> = states.chunks(100).map(|page| Ok(page.to_vec())).collect();
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

    async fn unfinished_runs(&self, scope: &Scope, limit: i32) -> Result<HashSet<String>> {
        let manifests = self.manifests.lock().unwrap();
        let newest = manifests.iter().rev().filter(|((pk, _), _)| *pk == scope.runs_pk()).take(limit as usize);
        Ok(newest.filter(|(_, m)| m.status != RunStatus::Complete).map(|(_, m)| m.run_id.clone()).collect())
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
}

/// The parts of each open multipart upload, by upload id.
type OpenUploads = BTreeMap<String, Vec<(i32, Vec<u8>)>>;

/// The bucket, in memory: objects, open multipart uploads, and the uploads aborted.
#[derive(Default)]
pub struct MemoryBucket {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    uploads: Mutex<OpenUploads>,
    aborted: Mutex<Vec<String>>,
    /// An operation (`put`, `create`, `part`, `complete`) that fails.
    fail: Mutex<Option<&'static str>>,
    /// GetObject calls, found or not.
    gets: AtomicU64,
    /// Each tagged object's tag, `name=value`.
    tags: Mutex<BTreeMap<String, String>>,
}

impl MemoryBucket {
    /// Makes `operation` (`put`, `create`, `part` or `complete`) fail until [`MemoryBucket::heal`].
    pub fn failing(&self, operation: &'static str) {
        *self.fail.lock().unwrap() = Some(operation);
    }

    pub fn heal(&self) {
        *self.fail.lock().unwrap() = None;
    }

    fn check(&self, operation: &'static str) -> Result<()> {
        match *self.fail.lock().unwrap() {
            Some(failing) if failing == operation => Err(injected("S3")),
            _ => Ok(()),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    /// Changes an object's bytes, as a hand or a bug would: `None` deletes it.
    pub fn replace(&self, key: &str, body: Option<Vec<u8>>) {
        let mut objects = self.objects.lock().unwrap();
        match body {
            Some(body) => objects.insert(key.into(), body),
            None => objects.remove(key),
        };
    }

    /// GetObject calls so far, found or not.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// An object's bytes, as stored.
    pub fn get_bytes(&self, key: &str) -> Vec<u8> {
        self.objects.lock().unwrap().get(key).cloned().unwrap_or_else(|| panic!("no object {key}"))
    }

    pub fn open_uploads(&self) -> usize {
        self.uploads.lock().unwrap().len()
    }

    pub fn aborted(&self) -> Vec<String> {
        self.aborted.lock().unwrap().clone()
    }

    /// The text of an object, gunzip'd (gzip members concatenated, as the parts are).
    pub fn text(&self, key: &str) -> String {
        let objects = self.objects.lock().unwrap();
        let body = objects.get(key).unwrap_or_else(|| panic!("no object {key}"));
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
        text
    }

    /// An object's bytes as text, not gunzip'd (a marker).
    pub fn text_plain(&self, key: &str) -> String {
        String::from_utf8(self.get_bytes(key)).unwrap()
    }

    /// Each tagged object's tag, `name=value`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.tags.lock().unwrap().clone()
    }

    /// Every object and its bytes, to tell whether anything was written.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects.lock().unwrap().clone()
    }

    /// The JSON lines of an object.
    pub fn lines(&self, key: &str) -> Vec<Map<String, Json>> {
        self.text(key).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The lines of every object whose key holds `part`, in key order.
    pub fn lines_of(&self, part: &str) -> Vec<Map<String, Json>> {
        self.keys().iter().filter(|k| k.contains(part)).flat_map(|k| self.lines(k)).collect()
    }
}

impl ObjectListing for MemoryBucket {
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        self.check("ListObjectsV2")?;
        let objects = self.objects.lock().unwrap();
        let listed = objects.range(prefix.to_owned()..).take_while(|(key, _)| key.starts_with(prefix));
        Ok(listed.map(|(key, body)| ListedObject { key: key.clone(), size: body.len() as u64 }).collect())
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        self.check("DeleteObject")?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn tag_object(&self, key: &str, (name, value): (&str, &str)) -> Result<()> {
        self.check("PutObjectTagging")?;
        if !self.objects.lock().unwrap().contains_key(key) {
            return Err(injected("S3"));
        }
        self.tags.lock().unwrap().insert(key.to_owned(), format!("{name}={value}"));
        Ok(())
    }

    async fn copy_object(&self, from: &str, to: &str) -> Result<()> {
        self.check("CopyObject")?;
        let mut objects = self.objects.lock().unwrap();
        let body = objects.get(from).cloned().ok_or_else(|| injected("S3 CopyObject of a missing key"))?;
        objects.insert(to.to_owned(), body);
        Ok(())
    }
}

impl ObjectStore for MemoryBucket {
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.check("GetObject")?;
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }

    async fn get_object_into(&self, key: &str, into: &mut (dyn std::io::Write + Send)) -> Result<bool> {
        let Some(body) = self.get_object(key).await? else { return Ok(false) };
        // In pieces, as S3's body arrives.
        for piece in body.chunks(64 * 1024) {
            into.write_all(piece).map_err(|e| Error::UnreadableItem(format!("s3://memory/{key}: {e}")))?;
        }
        Ok(true)
    }

    async fn put_object(&self, key: &str, body: Vec<u8>) -> Result<()> {
        self.check("put")?;
        self.objects.lock().unwrap().insert(key.into(), body);
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> Result<String> {
        self.check("create")?;
        let id = format!("upload-{key}");
        self.uploads.lock().unwrap().insert(id.clone(), Vec::new());
        Ok(id)
    }

    async fn upload_part(&self, _key: &str, upload_id: &str, number: i32, body: Vec<u8>) -> Result<UploadedPart> {
        self.check("part")?;
        let mut uploads = self.uploads.lock().unwrap();
        let parts = uploads.get_mut(upload_id).ok_or_else(|| injected("S3 UploadPart (no such upload)"))?;
        parts.push((number, body));
        Ok(UploadedPart { number, etag: format!("etag-{number}"), checksum_crc32: None })
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> Result<()> {
        self.check("complete")?;
        let uploaded = self.uploads.lock().unwrap().remove(upload_id).unwrap_or_default();
        let numbers: Vec<i32> = uploaded.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, parts.iter().map(|p| p.number).collect::<Vec<_>>(), "parts completed in order");
        let body = uploaded.into_iter().flat_map(|(_, bytes)| bytes).collect();
        self.objects.lock().unwrap().insert(key.into(), body);
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        self.uploads.lock().unwrap().remove(upload_id);
        self.aborted.lock().unwrap().push(upload_id.into());
        Ok(())
    }
}

/// A session API that serves fixed listings, `page_size` sessions a page, with the page number
/// as its next token. It can throttle (every `n`th call is answered with a throttling error first,
/// which the SDK's retry gets past), refuse the first next token it is given (an expired token),
/// and fail any call from a given one on.
pub struct ScriptedSource {
    service: ServiceId,
    options: SourceOptions,
    listings: Vec<(Listing, Vec<SessionRecord>)>,
    page_size: usize,
    refuse_next_token: AtomicBool,
    fail_from_call: Mutex<Option<u64>>,
    throttle_every: Mutex<Option<u64>>,
    throttled: AtomicU64,
    calls: AtomicU64,
}

impl ScriptedSource {
    /// `sessions` per parent (`None` for an account-wide listing), `page_size` a page.
    pub fn new(service: ServiceId, listings: Vec<(Option<&str>, Vec<&str>)>, page_size: usize) -> Self {
        let listings = listings
            .into_iter()
            .map(|(parent, ids)| {
                let listing = parent.map_or_else(Listing::account, Listing::parent);
                let records = ids.into_iter().map(|id| record(service, parent, id, "ACTIVE")).collect();
                (listing, records)
            })
            .collect();
        ScriptedSource {
            service,
            options: SourceOptions::default(),
            listings,
            page_size,
            refuse_next_token: AtomicBool::new(false),
            fail_from_call: Mutex::new(None),
            throttle_every: Mutex::new(None),
            throttled: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Refuses the next call that carries a next token, as a service refuses an expired one.
    pub fn expire_next_token(&self) {
        self.refuse_next_token.store(true, Ordering::SeqCst);
    }

    /// Throttles every `n`th list call once: counted as the SDK's throttle counter counts an
    /// attempt answered with a throttling error, then answered, as the retry is.
    pub fn throttle_every(&self, n: u64) {
        *self.throttle_every.lock().unwrap() = Some(n);
    }

    /// Every list call from the `n`th (1-based, counted over the source's life) on fails.
    pub fn fail_from_call(&self, n: u64) {
        *self.fail_from_call.lock().unwrap() = Some(n);
    }

    pub fn heal(&self) {
        *self.fail_from_call.lock().unwrap() = None;
    }

    /// List calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every session the source serves, by id.
    pub fn truth(&self) -> HashSet<String> {
        self.listings.iter().flat_map(|(_, records)| records.iter().map(|r| r.session_id.clone())).collect()
    }

    /// Sets the status of one session (a session that changed since the last run).
    pub fn set_status(&mut self, session_id: &str, status: &str) {
        for (_, records) in &mut self.listings {
            for record in records.iter_mut().filter(|r| r.session_id == session_id) {
                record.status = Some(status.to_owned());
            }
        }
    }

    /// Adds a session to the listing of `parent` (a session that opened).
    pub fn add(&mut self, parent: Option<&str>, session_id: &str) {
        let service = self.service;
        let (_, records) = self.listings.iter_mut().find(|(l, _)| l.parent_id.as_deref() == parent).expect("a listing");
        records.push(record(service, parent, session_id, "ACTIVE"));
    }

    /// Drops one session (a session that ended).
    pub fn remove(&mut self, session_id: &str) {
        for (_, records) in &mut self.listings {
            records.retain(|r| r.session_id != session_id);
        }
    }
}

/// A session of `service` with an id and a status.
pub fn record(service: ServiceId, parent: Option<&str>, id: &str, status: &str) -> SessionRecord {
    let mut record = SessionRecord::new(service, id);
    record.parent_id = parent.map(str::to_owned);
    record.status = Some(status.to_owned());
    record
}

impl SessionSource for ScriptedSource {
    fn service(&self) -> ServiceId {
        self.service
    }

    fn options(&self) -> &SourceOptions {
        &self.options
    }

    fn throttles(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }

    async fn listings(&self) -> Result<Discovery> {
        Ok(Discovery { listings: self.listings.iter().map(|(l, _)| l.clone()).collect(), api_calls: 0 })
    }

    async fn list_page(&self, listing: &Listing, next_token: Option<String>) -> Result<RawPage> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.throttle_every.lock().unwrap().is_some_and(|n| call.is_multiple_of(n)) {
            self.throttled.fetch_add(1, Ordering::SeqCst);
        }
        let site = self.list_site(listing);
        if self.fail_from_call.lock().unwrap().is_some_and(|from| call >= from) {
            let code = "ServiceUnavailableException".to_owned();
            let message = "injected failure".to_owned();
            return Err(Error::Api { site, code, message, status: Some(503), retryable: true });
        }
        if next_token.is_some() && self.refuse_next_token.swap(false, Ordering::SeqCst) {
            let (code, message) = ("ValidationException".to_owned(), "The pagination token has expired".to_owned());
            return Err(Error::Api { site, code, message, status: Some(400), retryable: false });
        }
        let records = &self.listings.iter().find(|(l, _)| l == listing).expect("a listing the source named").1;
        let page: usize = next_token.as_deref().map_or(0, |t| t.parse().expect("a token this source gave"));
        let start = page * self.page_size;
        let sessions = records.iter().skip(start).take(self.page_size).cloned().collect();
        let next_token = (start + self.page_size < records.len()).then(|| (page + 1).to_string());
        Ok(RawPage { sessions, next_token })
    }
}

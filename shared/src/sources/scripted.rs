//! A session API's in-memory twin, for unit tests that need no emulator: fixed listings served a
//! page at a time, throttling, an expired token refused once, and failures on demand; the
//! end-to-end tests on the emulator check the real sources.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Discovery, Listing, RawPage, SessionSource, SourceOptions};
use crate::error::{Error, Result};
use crate::model::{ServiceId, SessionRecord};

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
        Ok(RawPage { sessions, next_token, lookup_calls: 0 })
    }
}

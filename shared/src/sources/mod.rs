//! One source per session API: parent discovery, paging, and mapping to [`SessionRecord`].
//!
//! A source knows how to make **one** list call ([`SessionSource::list_page`]) and how to find
//! the listings of a run ([`SessionSource::listings`]); [`pages`] turns that into a stream of pages,
//! with the largest page size the API allows, that stops with an error on a repeated next token.
//! Pages are yielded one by one, so memory does not grow with the number of sessions.

pub mod api;
pub(crate) mod chime;
pub(crate) mod gamelift;
pub(crate) mod ivs;
pub(crate) mod options;
/// The in-memory twin, for the tests of this crate and its sibling crates (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod scripted;
pub(crate) mod workspaces;

use std::collections::HashSet;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};

use aws_config::SdkConfig;
use futures::Stream;

pub use api::{Api, SessionApi};
pub use chime::ChimeProxySessions;
pub use gamelift::GameliftStreamSessions;
pub use ivs::IvsStreamSessions;
pub use options::SourceOptions;
pub use workspaces::{WorkspacesConnectionStatus, WorkspacesPoolSessions, WORKSPACE_IDS_PER_CALL};

use crate::error::{CallSite, Error, Result};
use crate::model::{ServiceId, SessionRecord};

/// What one paging sequence covers: a parent (pool, channel, voice connector), or the whole
/// account, or one chunk of explicitly named WorkSpaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listing {
    pub parent_id: Option<String>,
    /// For `workspaces-connection-status` with explicit WorkspaceIds: at most 25 per listing.
    pub workspace_ids: Vec<String>,
}

impl Listing {
    pub fn account() -> Self {
        Listing { parent_id: None, workspace_ids: Vec::new() }
    }

    pub fn parent(id: impl Into<String>) -> Self {
        Listing { parent_id: Some(id.into()), workspace_ids: Vec::new() }
    }

    /// Names the listing within its run: the parent, the WorkSpaces it names, or `-` for the
    /// account.
    pub fn key(&self) -> String {
        match (&self.parent_id, self.workspace_ids.as_slice()) {
            (Some(parent), _) => parent.clone(),
            (None, []) => "-".into(),
            (None, ids) => format!("workspaces:{}", ids.join(",")),
        }
    }
}

/// The listings of a run and what it cost to find them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub listings: Vec<Listing>,
    /// Calls made to the parent discovery operation (0 when parents were given).
    pub api_calls: u64,
}

/// One response of a list operation, mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct RawPage {
    pub sessions: Vec<SessionRecord>,
    pub next_token: Option<String>,
    /// Calls of the service's lookup made for this page's sessions (see [`ServiceId::lookup`]).
    pub lookup_calls: u64,
}

/// One page of a listing, as [`pages`] yields it.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// 1-based number of the page within its listing.
    pub number: u64,
    pub sessions: Vec<SessionRecord>,
    /// The token of the page after this one; `None` on the last page.
    pub next_token: Option<String>,
    /// Calls of the service's lookup made for its sessions.
    pub lookup_calls: u64,
}

/// A session API the archiver can read.
pub trait SessionSource: Send + Sync {
    fn service(&self) -> ServiceId;

    /// The options the source was built with (validated).
    fn options(&self) -> &SourceOptions;

    /// Calls to the service answered with a throttling error so far (every attempt counted).
    fn throttles(&self) -> u64 {
        0
    }

    /// The listings a complete run pages through: every discovered parent (all pages of the
    /// discovery operation), the parents named in the options, or the account.
    fn listings(&self) -> impl Future<Output = Result<Discovery>> + Send;

    /// One call of the list operation, with the largest page size allowed.
    fn list_page(&self, listing: &Listing, next_token: Option<String>) -> impl Future<Output = Result<RawPage>> + Send;

    /// Where calls of the list operation for this listing are made, for errors.
    fn list_site(&self, listing: &Listing) -> CallSite {
        CallSite {
            service: self.service().as_str(),
            operation: self.service().list_operation(),
            parent: listing.parent_id.clone(),
        }
    }
}

/// Detects a next token that a listing already returned: a service bug must not loop forever.
/// Remembers 8 bytes per page, not the tokens themselves.
#[derive(Debug, Default)]
pub(crate) struct TokenGuard {
    seen: HashSet<u64>,
    pages: u64,
}

impl TokenGuard {
    /// Records a page's next token; `Ok(None)` when the listing is complete. An empty token counts
    /// as the end, as the AWS CLI treats it.
    pub(crate) fn advance(&mut self, site: &CallSite, next: Option<String>) -> Result<Option<String>> {
        self.pages += 1;
        let Some(token) = next.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if !self.remember(&token) {
            return Err(Error::RepeatedNextToken { site: site.clone(), page: self.pages });
        }
        Ok(Some(token))
    }

    /// Records a token without counting a page; `false` if it was seen before.
    pub(crate) fn remember(&mut self, token: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        self.seen.insert(hasher.finish())
    }
}

/// Pages through one listing from `start_token` (or the first page), yielding page by page.
pub fn pages<'a, S: SessionSource>(
    source: &'a S,
    listing: &'a Listing,
    start_token: Option<String>,
) -> impl Stream<Item = Result<Page>> + Send + 'a {
    struct Paging {
        token: Option<String>,
        guard: TokenGuard,
        done: bool,
    }
    let mut guard = TokenGuard::default();
    if let Some(token) = &start_token {
        // A resumed listing must not come back to the token it resumed from.
        guard.remember(token);
    }
    let paging = Paging { token: start_token, guard, done: false };
    futures::stream::try_unfold(paging, move |mut paging| async move {
        if paging.done {
            return Ok(None);
        }
        let raw = source.list_page(listing, paging.token.take()).await?;
        let next = paging.guard.advance(&source.list_site(listing), raw.next_token)?;
        paging.done = next.is_none();
        paging.token = next.clone();
        let page = Page {
            number: paging.guard.pages,
            sessions: raw.sessions,
            next_token: next,
            lookup_calls: raw.lookup_calls,
        };
        Ok(Some((page, paging)))
    })
}

/// Calls a paginated discovery operation until its last page, guarding against repeated tokens.
pub(crate) async fn discover_all<T, F, Fut>(site: CallSite, mut fetch: F) -> Result<(Vec<T>, u64)>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let mut guard = TokenGuard::default();
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (mut page, next) = fetch(token.take()).await?;
        items.append(&mut page);
        match guard.advance(&site, next)? {
            Some(next) => token = Some(next),
            None => return Ok((items, guard.pages)),
        }
    }
}

/// A required field the API left out (the SDK fills missing required strings with "").
pub(crate) fn required(site: &CallSite, field: &str, value: Option<&str>) -> Result<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.to_owned()),
        _ => Err(Error::BadPage { site: site.clone(), detail: format!("a session has no {field}") }),
    }
}

/// A time field of a session: `None` when absent, and a bad page when RFC 3339 cannot write it
/// (outside years 0001-9999), naming the field.
pub(crate) fn time(
    site: &CallSite,
    field: &str,
    value: Option<&aws_smithy_types::DateTime>,
) -> Result<Option<crate::model::Timestamp>> {
    value
        .map(|instant| {
            crate::model::Timestamp::from_datetime(instant).map_err(|_| Error::BadPage {
                site: site.clone(),
                detail: format!(
                    "a session's {field}: the instant {} s from the Unix epoch is outside years 0001-9999",
                    instant.secs()
                ),
            })
        })
        .transpose()
}

/// Any of the five sources, chosen by service id at run time.
pub enum AnySource {
    WorkspacesPoolSessions(WorkspacesPoolSessions),
    WorkspacesConnectionStatus(WorkspacesConnectionStatus),
    IvsStreamSessions(IvsStreamSessions),
    ChimeProxySessions(ChimeProxySessions),
    GameliftStreamSessions(GameliftStreamSessions),
}

impl AnySource {
    /// Builds the source of `service` from the shared SDK config, validating the options for it.
    pub fn new(service: ServiceId, sdk: &SdkConfig, options: SourceOptions) -> Result<Self> {
        options.validate(service)?;
        Ok(match service {
            ServiceId::WorkspacesPoolSessions => {
                AnySource::WorkspacesPoolSessions(WorkspacesPoolSessions::new(sdk, options))
            }
            ServiceId::WorkspacesConnectionStatus => {
                AnySource::WorkspacesConnectionStatus(WorkspacesConnectionStatus::new(sdk, options))
            }
            ServiceId::IvsStreamSessions => AnySource::IvsStreamSessions(IvsStreamSessions::new(sdk, options)),
            ServiceId::ChimeProxySessions => AnySource::ChimeProxySessions(ChimeProxySessions::new(sdk, options)),
            ServiceId::GameliftStreamSessions => {
                AnySource::GameliftStreamSessions(GameliftStreamSessions::new(sdk, options))
            }
        })
    }
}

macro_rules! each_source {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            AnySource::WorkspacesPoolSessions($s) => $body,
            AnySource::WorkspacesConnectionStatus($s) => $body,
            AnySource::IvsStreamSessions($s) => $body,
            AnySource::ChimeProxySessions($s) => $body,
            AnySource::GameliftStreamSessions($s) => $body,
        }
    };
}

impl SessionSource for AnySource {
    fn service(&self) -> ServiceId {
        each_source!(self, s => s.service())
    }

    fn options(&self) -> &SourceOptions {
        each_source!(self, s => s.options())
    }

    fn throttles(&self) -> u64 {
        each_source!(self, s => s.throttles())
    }

    async fn listings(&self) -> Result<Discovery> {
        each_source!(self, s => s.listings().await)
    }

    async fn list_page(&self, listing: &Listing, next_token: Option<String>) -> Result<RawPage> {
        each_source!(self, s => s.list_page(listing, next_token).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> CallSite {
        CallSite {
            service: ServiceId::IvsStreamSessions.as_str(),
            operation: "ListStreamSessions",
            parent: Some("ch".into()),
        }
    }

    #[test]
    fn token_guard_ends_on_missing_or_empty_token() {
        let mut guard = TokenGuard::default();
        assert_eq!(guard.advance(&site(), Some("a".into())).unwrap(), Some("a".into()));
        assert_eq!(guard.advance(&site(), Some(String::new())).unwrap(), None);
        assert_eq!(TokenGuard::default().advance(&site(), None).unwrap(), None);
    }

    #[test]
    fn token_guard_refuses_a_token_seen_before_even_after_other_tokens() {
        let mut guard = TokenGuard::default();
        guard.advance(&site(), Some("a".into())).unwrap();
        guard.advance(&site(), Some("b".into())).unwrap();
        let err = guard.advance(&site(), Some("a".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ivs-stream-sessions ListStreamSessions (parent ch) returned the next token of an earlier page again (page 3); stopping instead of looping"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn required_refuses_missing_and_blank_ids() {
        assert_eq!(required(&site(), "streamId", Some("st-1")).unwrap(), "st-1");
        for missing in [None, Some(""), Some("  ")] {
            let err = required(&site(), "streamId", missing).unwrap_err().to_string();
            assert!(err.ends_with("returned a page that cannot be archived: a session has no streamId"), "{err}");
        }
    }
}

//! A quiet run: the scope held no session at its last run (complete, its listings unfiltered), no
//! run holds it now, and its listings are still empty. Such a run writes nothing: no lease, no
//! manifest, no history object, no listing state; it reads the lease item once and makes its list
//! calls, so a scope without sessions costs a read unit a run. A session, a next token, or a
//! vouch that does not say quiet, and the run is an ordinary one, which lists again: a scope's
//! first session costs its listings twice, once.
//!
//! Nothing written means nothing to record again, resume or vouch for: the vouch stays as it was.
//! A failure is the run's, with nothing to mark (no manifest was written), as for any run that
//! wrote nothing.

use super::context::RunInputs;
use super::pacer::Pacer;
use crate::error::Result;
use crate::history::Bucket;
use crate::model::Timestamp;
use crate::sources::SessionSource;
use crate::table::{RunCounts, Table};

/// What the lease item and the listings wait on, as a timeout names it.
const QUIET_WAIT: &str = "a quiet scope's lease item and list calls";

/// The counts of a quiet run, or `None` when the run must be an ordinary one.
pub(super) async fn quiet_run<S, D, O>(run: RunInputs<'_, S, D, O>, now: &Timestamp) -> Result<Option<RunCounts>>
where
    S: SessionSource,
    D: Table,
    O: Bucket,
{
    if run.request.dry_run || run.source.options().narrows_listings() {
        return Ok(None);
    }
    run.request.deadlines.work(QUIET_WAIT, probe(run, now.epoch_seconds())).await
}

async fn probe<S, D, O>(run: RunInputs<'_, S, D, O>, now: i64) -> Result<Option<RunCounts>>
where
    S: SessionSource,
    D: Table,
{
    let lease = run.table.peek_lease(run.scope).await?;
    let quiet_before = lease.vouched.is_some_and(|vouch| vouch.quiet && vouch.for_run.is_none());
    if lease.expires_at >= now || !quiet_before {
        return Ok(None);
    }
    let discovery = run.source.listings().await?;
    let mut pacer = Pacer::new(run.config.max_calls_per_second);
    for listing in &discovery.listings {
        pacer.wait().await;
        let page = run.source.list_page(listing, None).await?;
        if !page.sessions.is_empty() || page.next_token.is_some_and(|token| !token.is_empty()) {
            return Ok(None);
        }
    }
    let listings = discovery.listings.len() as u64;
    Ok(Some(RunCounts {
        parents: listings,
        pages: listings,
        api_calls: discovery.api_calls + listings,
        ..RunCounts::default()
    }))
}

//! The run: one source, the table and the history, joined.
//!
//! a quiet run, when the scope held no session and its listings are still empty (nothing written;
//! see `quiet`); else lease (and the vouch for the listing states) → the run to work on (a partial one with the same
//! source options, resumed; or the event's own) → unfinished runs (their changes are recorded
//! again) → manifest `running` → the scope's listing states read → for each listing not done:
//! previous state (its section, or the table), pages (from where an earlier part stopped), the
//! stored items of changed sessions, diff, change-only writes, snapshot and change lines, until
//! the listing ends or paging must stop; ended sessions' ids found in the last complete run's
//! snapshot lines (else in a read of the table), their items fetched by id → the scope's next listing states → history objects of the part (or, for a part that
//! completes a batch's run, its lines left for the batch's pool, written once every scope ran) →
//! manifest `complete`, or progress saved and manifest `partial` → lease released, vouching for
//! the listing states.
//!
//! Any failure aborts the part's history uploads, marks the manifest `failed` (or keeps it
//! `partial` when an earlier part saved its place) and returns the error; the items already
//! written stay, and the next run records their changes again (see [`crate::diff`]).
//! A part that is done again after a crash writes the same keys, so no line is written twice
//! (see [`crate::table::progress`]); a pooled one finds its pool's record ([`pool`]).
//!
//! From the top down (each file imports only those below it):
//! - [`batch`]: the scopes of one message, each its own run, side by side, and their lines
//!   written as one [`pool`];
//! - `bookkeeping`: the lease, the run chosen, the manifest, the progress commit point; a part
//!   whose lines wait for its batch's pool ([`StagedPart`]);
//! - `quiet`: the run of a scope that held no session and holds none, which writes nothing;
//! - `kept`: the progress saved and read back, in its item or an S3 object;
//! - `pass`: one part's listings and its two history objects;
//! - `listing`: one listing, previous state to writes;
//! - `recorder`: an observation into lines, a table write and counts;
//! - `context`: what they share: the run's inputs, and the part's context its listings share;
//! - `state`: the scope's listing states: one S3 object read instead of the table, and written
//!   after the part's items, before its history; how a listing's part ended; `spool`: where
//!   the states wait meanwhile, on disk;
//! - `ended`: the ids of the sessions a listing ends, from the last complete run's snapshot
//!   lines (spooled and indexed once a part), so the table is not read for them;
//! - `pacer`: the pace of the list calls;
//! - [`pool`]: the batch's pool of history objects, its record the commit point, and an
//!   unfinished part's lines found in its run's pools;
//! - `config`: [`RunConfig`], the settings of a run; `request`: what starts a run
//!   ([`RunRequest`]) and what it returns ([`RunSummary`]); `deadline`: the times it works to.

pub mod batch;
mod bookkeeping;
pub mod config;
mod context;
pub mod deadline;
mod ended;
mod kept;
mod listing;
mod pacer;
mod pass;
pub mod pool;
mod quiet;
mod recorder;
mod request;
mod spool;
mod state;

use bookkeeping::Executed;
pub use bookkeeping::{Prepared, StagedPart};
pub use config::RunConfig;
pub use pool::Staging;
pub use request::{RunOutcome, RunRequest, RunSummary, Trigger};

use crate::error::{Error, Result};
use crate::history::Bucket;
use crate::model::Scope;
use crate::sources::SessionSource;
use crate::table::Table;

/// Runs one part of `scope`, read from `source`, into `table` and `bucket`: the event's run, or
/// the run with the same source options that an earlier invocation left partial. Every wait is
/// bounded by the request's [`deadline::Deadlines`]: a run still waiting when they come fails
/// with [`crate::Error::Timeout`] and records the failure before the invocation's end.
pub async fn run<S, D, O>(
    scope: &Scope,
    source: &S,
    table: &D,
    bucket: &O,
    config: &RunConfig,
    request: &RunRequest,
) -> Result<RunSummary>
where
    S: SessionSource,
    D: Table,
    O: Bucket,
{
    match prepare(scope, source, table, bucket, config, request, None).await? {
        Prepared::Done(summary) => Ok(*summary),
        Prepared::Staged(part) => {
            part.finish(Err(Error::Mapping("a run without a pool staged its lines".into()))).await
        }
    }
}

/// [`run`], but a part that completes the request's run may leave its lines in `staging` for its
/// batch's pool (see [`pool`]): it is then [`StagedPart::finish`]ed once the pool is written.
pub async fn prepare<'a, S, D, O>(
    scope: &'a Scope,
    source: &S,
    table: &'a D,
    bucket: &'a O,
    config: &'a RunConfig,
    request: &'a RunRequest,
    staging: Option<&'a Staging>,
) -> Result<Prepared<'a, D, O>>
where
    S: SessionSource,
    D: Table,
    O: Bucket,
{
    config::validate_scope(scope)?;
    if scope.service != source.service() {
        return Err(Error::Config(format!(
            "the scope is of {}, and the source lists {}",
            scope.service,
            source.service()
        )));
    }
    let inputs = context::RunInputs { scope, source, table, bucket, config, request, staging };
    match bookkeeping::Run::new(inputs).execute().await? {
        Executed::Done(summary) => Ok(Prepared::Done(Box::new(summary))),
        Executed::Staged(staged) => {
            let ledger = context::RunInputs { scope, source: &(), table, bucket, config, request, staging };
            Ok(Prepared::Staged(StagedPart::new(ledger, staged)))
        }
    }
}

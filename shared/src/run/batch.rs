//! A batch: the scopes of one message, each its own run ([`super::prepare`]), run side by side, at
//! most so many at a time, within one invocation. Each scope keeps its own lease, manifest and
//! progress, so a scope that fails leaves the others of its batch complete, and is retried by
//! itself. The parts that complete their run leave their lines for the batch's pool: one
//! snapshots object and one changes object for them all ([`super::pool`]), or a part's own two
//! when it is the only one; each part is recorded once they are written.
//!
//! A scope starts only while paging may go on: one whose turn comes after that has not started,
//! and is sent again with the others left (see [`crate::archive`]).

use std::future::Future;

use futures::StreamExt;

use super::bookkeeping::{Prepared, StagedPart};
use super::deadline::Deadlines;
use super::request::RunSummary;
use crate::error::{Error, Result};
use crate::history::Bucket;
use crate::model::Scope;
use crate::table::Table;

/// How one scope of a batch went.
#[derive(Debug)]
pub enum ScopeOutcome {
    Ran(RunSummary),
    Failed(Error),
    /// Its turn came after paging had to stop: not started, nothing read or written.
    NotStarted,
}

/// A scope's run as the batch started it: `None` when its turn came after paging had to stop.
type Started<'r, D, O> = Option<Result<Prepared<'r, D, O>>>;

/// Runs `run_one` for every scope of `scopes`, at most `at_once` at a time, each starting only
/// before `deadlines` stop paging; then writes the staged parts' lines and records them: each
/// scope's outcome, in the batch's order.
pub async fn run_batch<'a, 'r, F, Fut, D, O>(
    scopes: &'a [Scope],
    at_once: usize,
    deadlines: &Deadlines,
    run_one: F,
) -> Vec<(&'a Scope, ScopeOutcome)>
where
    F: Fn(&'a Scope) -> Fut,
    Fut: Future<Output = Result<Prepared<'r, D, O>>>,
    D: Table + 'r,
    O: Bucket + 'r,
{
    let run_one = &run_one;
    let prepared: Vec<(&Scope, Started<'r, D, O>)> = futures::stream::iter(scopes)
        .map(|scope| async move {
            if deadlines.paging_stopped() {
                return (scope, None);
            }
            (scope, Some(run_one(scope).await))
        })
        .buffered(at_once.max(1))
        .collect()
        .await;
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut staged = Vec::new();
    for (index, (scope, prepared)) in prepared.into_iter().enumerate() {
        outcomes.push((
            scope,
            match prepared {
                None => ScopeOutcome::NotStarted,
                Some(Ok(Prepared::Done(summary))) => ScopeOutcome::Ran(*summary),
                Some(Err(err)) => ScopeOutcome::Failed(err),
                Some(Ok(Prepared::Staged(part))) => {
                    staged.push((index, part));
                    ScopeOutcome::NotStarted
                }
            },
        ));
    }
    let (indexes, parts): (Vec<usize>, Vec<StagedPart<'r, D, O>>) = staged.into_iter().unzip();
    for (index, finished) in indexes.into_iter().zip(write_and_finish(parts, at_once).await) {
        outcomes[index].1 = match finished {
            Ok(summary) => ScopeOutcome::Ran(summary),
            Err(err) => ScopeOutcome::Failed(err),
        };
    }
    outcomes
}

/// Writes the staged parts' lines (one pool, or a part's own objects when it is alone) and
/// records each part: how each went, in order.
async fn write_and_finish<D: Table, O: Bucket>(
    parts: Vec<StagedPart<'_, D, O>>,
    at_once: usize,
) -> Vec<Result<RunSummary>> {
    let written: Vec<Result<Vec<String>>> = match parts.as_slice() {
        [] => return Vec::new(),
        [alone] => {
            let target = alone.pool_target();
            let own = alone.lines().write_own(target.bucket);
            vec![target.deadlines.work("S3: the part's history objects", own).await]
        }
        [first, ..] => {
            let lines: Vec<_> = parts.iter().map(|part| (part.pool_part(), part.lines())).collect();
            match first.pool_target().write(&lines).await {
                Ok(keys) => parts.iter().map(|_| Ok(keys.clone())).collect(),
                Err(err) => parts.iter().map(|_| Err(pool_failure(&err))).collect(),
            }
        }
    };
    let finished = parts.into_iter().zip(written).map(|(part, written)| part.finish(written));
    futures::stream::iter(finished).buffered(at_once.max(1)).collect().await
}

/// The failure of a pool, for each of its parts.
fn pool_failure(err: &Error) -> Error {
    Error::Storage {
        operation: "the batch's history pool",
        resource: "S3 and DynamoDB".into(),
        code: err.kind().into(),
        message: err.to_string(),
        status: None,
        retryable: err.is_retryable(),
    }
}

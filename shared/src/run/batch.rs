//! A batch: the scopes of one message, each its own run ([`super::run`]), run side by side, at most
//! so many at a time, within one invocation. Each scope keeps its own lease, manifest, progress
//! and history objects, so a scope that fails leaves the others of its batch complete, and is
//! retried by itself.
//!
//! A scope starts only while paging may go on: one whose turn comes after that has not started,
//! and is sent again with the others left (see [`crate::archive`]).

use std::future::Future;

use futures::StreamExt;

use super::deadline::Deadlines;
use super::request::RunSummary;
use crate::error::{Error, Result};
use crate::model::Scope;

/// How one scope of a batch went.
#[derive(Debug)]
pub enum ScopeOutcome {
    Ran(RunSummary),
    Failed(Error),
    /// Its turn came after paging had to stop: not started, nothing read or written.
    NotStarted,
}

/// Runs `run_one` for every scope of `scopes`, at most `at_once` at a time, each starting only
/// before `deadlines` stop paging: each scope's outcome, in the batch's order.
pub async fn run_batch<'a, F, Fut>(
    scopes: &'a [Scope],
    at_once: usize,
    deadlines: &Deadlines,
    run_one: F,
) -> Vec<(&'a Scope, ScopeOutcome)>
where
    F: Fn(&'a Scope) -> Fut,
    Fut: Future<Output = Result<RunSummary>>,
{
    let run_one = &run_one;
    futures::stream::iter(scopes)
        .map(|scope| async move {
            if deadlines.paging_stopped() {
                return (scope, ScopeOutcome::NotStarted);
            }
            match run_one(scope).await {
                Ok(summary) => (scope, ScopeOutcome::Ran(summary)),
                Err(err) => (scope, ScopeOutcome::Failed(err)),
            }
        })
        .buffered(at_once.max(1))
        .collect()
        .await
}

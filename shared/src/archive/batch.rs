//! What becomes of a batch's scopes once it ran: a scope that failed is sent again alone, with
//! the tries it has had, after a delay that doubles with them (`SCOPE_RETRY_SECONDS` first); on
//! its last try, or when no retry can mend its failure, it goes to the dead-letter queue with its
//! reason, once (a claim in the table, [`crate::table::DeadLetterClaim`]); the scopes whose turn
//! came after paging had to stop are sent again together, their tries unchanged. The others of
//! the batch are complete.

use std::time::Duration;

use tracing::{error, info, warn};

use super::event::ScopeBatch;
use crate::aws::sqs::SqsSender;
use crate::error::{Error, Result};
use crate::lambda::{no_retry_left, DeadLetters};
use crate::model::{Scope, Timestamp};
use crate::run::batch::ScopeOutcome;
use crate::table::{DeadLetterClaim, RunLedger};

/// The longest SQS holds a message back.
const LONGEST_DELAY: Duration = Duration::from_secs(900);

/// A batch's scopes sorted by what becomes of them.
#[derive(Debug, Default)]
pub struct Placement<'a> {
    /// Scopes that ran (complete, partial or skipped: their run is in hand).
    pub ran: usize,
    /// Failed, with tries left: each sent again alone.
    pub again: Vec<(&'a Scope, Error)>,
    /// Failed for good: each to the dead-letter queue with its reason.
    pub dead: Vec<(&'a Scope, Error)>,
    /// Not started: sent again together.
    pub left: Vec<&'a Scope>,
}

/// Sorts a batch's outcomes, its failed scopes having had `tries` tries of at most `max_tries`.
pub fn place<'a>(outcomes: Vec<(&'a Scope, ScopeOutcome)>, tries: u32, max_tries: u32) -> Placement<'a> {
    let mut placement = Placement::default();
    for (scope, outcome) in outcomes {
        match outcome {
            ScopeOutcome::Ran(_) => placement.ran += 1,
            ScopeOutcome::NotStarted => placement.left.push(scope),
            ScopeOutcome::Failed(err) if no_retry_left(&err, tries, Some(max_tries)) => {
                placement.dead.push((scope, err))
            }
            ScopeOutcome::Failed(err) => placement.again.push((scope, err)),
        }
    }
    placement
}

/// Where a batch's failed and unstarted scopes go: the function's own queue, its dead-letter
/// queue, and the table's dead-letter claims.
pub struct Placer<'a, T> {
    pub queue: &'a SqsSender,
    /// The function's own scope queue (`SCOPE_QUEUE_URL`); none: a message with a scope to send
    /// again comes back whole.
    pub queue_url: Option<&'a str>,
    pub dead_letters: Option<&'a DeadLetters>,
    pub table: &'a T,
    /// The wait before a failed scope's second try.
    pub retry_delay: Duration,
}

impl<T: RunLedger> Placer<'_, T> {
    /// Sends the failed scopes again alone, after a delay, and the unstarted ones together.
    pub async fn send_again(
        &self,
        batch: &ScopeBatch,
        again: Vec<(&Scope, Error)>,
        left: &[&Scope],
        tries: u32,
    ) -> Result<()> {
        if again.is_empty() && left.is_empty() {
            return Ok(());
        }
        let Some(queue) = self.queue_url else {
            // No queue to send them to: the whole message comes back.
            return Err(match again.into_iter().next() {
                Some((_, err)) => err,
                None => {
                    handed_back(format!("{} scopes had no time to start, and SCOPE_QUEUE_URL is not set", left.len()))
                }
            });
        };
        if !left.is_empty() {
            let left: Vec<Scope> = left.iter().map(|s| (*s).clone()).collect();
            self.queue.send_bodies(queue, vec![batch.message.for_scopes(&left, batch.attempts).body()?]).await?;
        }
        for (scope, err) in again {
            warn!(account_id = %scope.account_id, region = %scope.region, tries, err = %err, "scope failed; sent again alone");
            let alone = batch.message.for_scopes(std::slice::from_ref(scope), tries).body()?;
            self.queue.send_bodies_after(queue, vec![alone], retry_delay(self.retry_delay, tries)).await?;
        }
        Ok(())
    }

    /// Moves each scope failed for good to the dead-letter queue with its reason, once whatever
    /// the deliveries: a claim in the table, settled as sent, or given up if the send fails.
    pub async fn bury(&self, batch: &ScopeBatch, dead: Vec<(&Scope, Error)>, tries: u32, claimant: &str) -> Result<()> {
        for (scope, err) in dead {
            let Some(dead_letters) = &self.dead_letters else { return Err(err) };
            let run_id = batch.request.run_id.as_str();
            let now = Timestamp::now().epoch_seconds();
            match self.table.claim_dead_letter(scope, run_id, claimant, now).await? {
                DeadLetterClaim::Sent => {
                    info!(account_id = %scope.account_id, region = %scope.region, run_id, "already in the dead-letter queue");
                    continue;
                }
                DeadLetterClaim::BeingSent => {
                    return Err(handed_back(format!(
                        "another delivery is sending the dead letter of account {}, region {}: the message comes back to see how it went",
                        scope.account_id, scope.region
                    )))
                }
                DeadLetterClaim::Claimed => {}
            }
            let letter = batch.message.for_scopes(std::slice::from_ref(scope), tries).body()?;
            let sent = dead_letters.sender.dead_letter(&dead_letters.url, &letter, &err, tries).await;
            error!(account_id = %scope.account_id, region = %scope.region, tries, error_type = err.error_type(), err = %err, dead_lettered = sent.is_ok(), "scope failed");
            let settled = self.table.settle_dead_letter(scope, run_id, claimant, sent.is_ok()).await;
            sent?;
            if let Err(also) = settled {
                warn!(error = %also, "could not mark the dead letter sent; a delivery after the claim goes stale may send it again");
            }
        }
        Ok(())
    }
}

/// A retryable failure that hands a message back to the queue, saying why.
fn handed_back(why: String) -> Error {
    Error::Storage {
        operation: "SQS SendMessage",
        resource: "the scope queue".into(),
        code: "HandedBack".into(),
        message: why,
        status: None,
        retryable: true,
    }
}

/// How long a scope that failed on try `tries` waits for its next one: `first` after the first
/// try, twice as long after each further one, at most the 15 minutes SQS can hold a message.
pub fn retry_delay(first: Duration, tries: u32) -> Duration {
    let doublings = tries.saturating_sub(1).min(10);
    (first * 2u32.pow(doublings)).min(LONGEST_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceId;
    use crate::model::Timestamp;
    use crate::run::{RunOutcome, RunSummary};

    fn scope(n: u8) -> Scope {
        Scope { service: ServiceId::IvsStreamSessions, account_id: format!("{n:012}"), region: "eu-west-1".into() }
    }

    fn throttled() -> Error {
        Error::Timeout { waiting_for: "DynamoDB", reserve_seconds: 21 }
    }

    fn ran() -> RunSummary {
        let at = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        RunSummary::new(ServiceId::IvsStreamSessions, "r-1", RunOutcome::Complete, 0, at.clone(), at)
    }

    fn denied() -> Error {
        Error::Event("the role is missing".into())
    }

    #[test]
    fn failed_scopes_go_again_alone_until_their_last_try_and_the_unstarted_go_again_together() {
        // GIVEN a batch of five: one ran, one failed retryably, one failed for good, two not started
        let scopes: Vec<Scope> = (1..=5).map(scope).collect();
        let outcomes = |retryable: Error| {
            vec![
                (&scopes[0], ScopeOutcome::Ran(ran())),
                (&scopes[1], ScopeOutcome::Failed(retryable)),
                (&scopes[2], ScopeOutcome::Failed(denied())),
                (&scopes[3], ScopeOutcome::NotStarted),
                (&scopes[4], ScopeOutcome::NotStarted),
            ]
        };
        // WHEN it was the first of three tries
        let first = place(outcomes(throttled()), 1, 3);
        // THEN the retryable failure goes again, the other to the dead letters, the two unstarted again
        assert_eq!(first.ran, 1);
        assert_eq!(first.again.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [&scopes[1]]);
        assert_eq!(first.dead.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [&scopes[2]]);
        assert_eq!(first.left, [&scopes[3], &scopes[4]]);
        // WHEN it was the last try THEN the retryable failure goes to the dead letters too
        let last = place(outcomes(throttled()), 3, 3);
        assert!(last.again.is_empty());
        assert_eq!(last.dead.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [&scopes[1], &scopes[2]]);
    }

    #[test]
    fn a_retry_waits_longer_each_try_and_never_past_what_sqs_holds() {
        let delays: Vec<u64> =
            [1, 2, 3, 4, 5, 30].map(|tries| retry_delay(Duration::from_secs(60), tries).as_secs()).into();
        assert_eq!(delays, [60, 120, 240, 480, 900, 900]);
        assert_eq!(retry_delay(Duration::ZERO, 3), Duration::ZERO);
    }
}

//! What becomes of a batch's scopes once it ran: a scope that failed is sent again alone, with
//! the tries it has had, after a delay that doubles with them (`SCOPE_RETRY_SECONDS` first); on its last try, or when no retry
//! can mend its failure, it goes to the dead-letter queue with its reason, once (a claim in the
//! table, [`crate::table::DeadLetterClaim`]); the scopes whose turn came after paging had to stop
//! are sent again together, their tries unchanged. The others of the batch are complete.

use std::time::Duration;

use crate::error::Error;
use crate::lambda::no_retry_left;
use crate::model::Scope;
use crate::run::batch::ScopeOutcome;

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
        RunSummary {
            service: ServiceId::IvsStreamSessions,
            run_id: "r-1".into(),
            outcome: RunOutcome::Complete,
            part: 0,
            started_at: at.clone(),
            finished_at: at,
            counts: Default::default(),
            listings_left: 0,
            s3_keys: Vec::new(),
            lease_held_by: None,
            already_complete: false,
            state_rebuilt_because: None,
            quiet: false,
        }
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

//! Batches of scopes on the in-memory twins: the scopes of one message run side by side, each its
//! own run; one that fails leaves the others complete; a batch delivered again archives nothing
//! twice; dead letters are claimed once; no scope starts once paging has had to stop.

use std::collections::BTreeSet;

use crate::history::memory::MemoryBucket;
use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::batch::{run_batch, ScopeOutcome};
use crate::run::deadline::Deadlines;
use crate::run::{run, RunConfig, RunOutcome, RunRequest, Trigger};
use crate::sources::scripted::ScriptedSource;
use crate::table::memory::MemoryTable;
use crate::table::{DeadLetterClaim, RunLedger, RunStatus, Scope, DEAD_LETTER_STALE_SECONDS};

const SERVICE: ServiceId = ServiceId::IvsStreamSessions;

fn request() -> RunRequest {
    RunRequest {
        run_id: RunId::parse("plan-1").unwrap(),
        event_id: "plan-1".into(),
        event_time: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
        trigger: Trigger::Scheduled,
        dry_run: false,
        invocation_id: "invocation-1".into(),
        deadlines: Deadlines::none(),
    }
}

/// Three accounts in one region, each with its own channel of sessions named after it.
fn batch() -> (Vec<Scope>, Vec<ScriptedSource>) {
    let accounts = ["111111111111", "222222222222", "333333333333"];
    let scopes = accounts
        .iter()
        .map(|a| Scope { service: SERVICE, account_id: (*a).into(), region: "eu-west-1".into() })
        .collect();
    let sources = accounts
        .iter()
        .map(|a| {
            let ids: Vec<String> = (1..=3).map(|n| format!("{a}-s{n}")).collect();
            ScriptedSource::new(SERVICE, vec![(Some("channel"), ids.iter().map(String::as_str).collect())], 2)
        })
        .collect();
    (scopes, sources)
}

/// Runs the batch: each scope with its own source, two at a time.
async fn run_all<'a>(
    scopes: &'a [Scope],
    sources: &[ScriptedSource],
    table: &MemoryTable,
    bucket: &MemoryBucket,
    request: &RunRequest,
) -> Vec<(&'a Scope, ScopeOutcome)> {
    let config = RunConfig::new();
    let run_one = |scope: &'a Scope| {
        let source = &sources[scopes.iter().position(|s| s == scope).unwrap()];
        let config = &config;
        async move { run(scope, source, table, bucket, config, request).await }
    };
    run_batch(scopes, 2, &request.deadlines, run_one).await
}

fn snapshot_ids(bucket: &MemoryBucket, scope: &Scope) -> Vec<String> {
    let key = format!("history/snapshots/{SERVICE}/dt=2026-11-22/{}.eu-west-1.plan-1.jsonl.gz", scope.account_id);
    bucket.lines(&key).iter().map(|l| l["session_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_batch_runs_each_scope_as_its_own_run_and_a_failing_scope_fails_alone() {
    // GIVEN a batch of three scopes, the second of which fails at its first list call
    let (scopes, sources) = batch();
    sources[1].fail_from_call(1);
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    // WHEN the batch runs
    let outcomes = run_all(&scopes, &sources, &table, &bucket, &request()).await;
    // THEN the outcomes come in the batch's order: the first and third complete, the second failed
    let ran: Vec<&str> = outcomes
        .iter()
        .map(|(_, o)| match o {
            ScopeOutcome::Ran(summary) if summary.outcome == RunOutcome::Complete => "complete",
            ScopeOutcome::Ran(_) => "other",
            ScopeOutcome::Failed(_) => "failed",
            ScopeOutcome::NotStarted => "not started",
        })
        .collect();
    assert_eq!(ran, ["complete", "failed", "complete"]);
    // AND each complete scope holds its own sessions in the table and once in its history
    for (scope, source) in [(&scopes[0], &sources[0]), (&scopes[2], &sources[2])] {
        let snapshot = snapshot_ids(&bucket, scope);
        assert_eq!(snapshot.iter().cloned().collect::<BTreeSet<_>>(), source.truth().into_iter().collect());
        assert_eq!(snapshot.len(), 3);
    }
    assert_eq!(table.sessions().len(), 6, "nothing of the failed scope");
    assert!(!bucket.keys().iter().any(|k| k.contains(&scopes[1].account_id)), "{:?}", bucket.keys());
    let mut statuses: Vec<RunStatus> = table.manifests().iter().map(|m| m.status).collect();
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [RunStatus::Complete, RunStatus::Complete, RunStatus::Failed]);

    // WHEN the batch is delivered again, and then the failed scope alone once mended
    let keys = bucket.keys();
    let again = run_all(&scopes, &sources, &table, &bucket, &request()).await;
    // THEN the complete scopes are skipped as complete, writing nothing
    for (_, outcome) in [&again[0], &again[2]] {
        assert!(matches!(outcome, ScopeOutcome::Ran(s) if s.already_complete), "{outcome:?}");
    }
    assert_eq!(bucket.keys(), keys);
    sources[1].heal();
    let alone = run_all(&scopes[1..2], &sources[1..2], &table, &bucket, &request()).await;
    // AND the mended scope completes its run by itself
    assert!(matches!(&alone[0].1, ScopeOutcome::Ran(s) if s.outcome == RunOutcome::Complete), "{alone:?}");
    assert_eq!(snapshot_ids(&bucket, &scopes[1]).len(), 3);
    assert_eq!(table.sessions().len(), 9);
}

#[tokio::test]
async fn no_scope_of_a_batch_starts_once_paging_has_had_to_stop() {
    // GIVEN a batch whose invocation must already stop paging
    let (scopes, sources) = batch();
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    let mut late = request();
    late.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
    // WHEN it runs
    let outcomes = run_all(&scopes, &sources, &table, &bucket, &late).await;
    // THEN no scope started: nothing listed, nothing written, each left to be sent again
    assert!(outcomes.iter().all(|(_, o)| matches!(o, ScopeOutcome::NotStarted)), "{outcomes:?}");
    assert_eq!(sources.iter().map(ScriptedSource::calls).sum::<u64>(), 0);
    assert!(table.manifests().is_empty() && bucket.keys().is_empty());
}

#[tokio::test]
async fn a_scopes_dead_letter_is_claimed_once_whatever_the_deliveries() {
    let table = MemoryTable::default();
    let scope = Scope { service: SERVICE, account_id: "111111111111".into(), region: "eu-west-1".into() };
    // GIVEN a delivery that claims the dead letter of the scope's run
    assert_eq!(table.claim_dead_letter(&scope, "plan-1", "first", 1000).await.unwrap(), DeadLetterClaim::Claimed);
    // WHEN a second delivery fails the same way meanwhile THEN it is told the letter is being sent
    assert_eq!(table.claim_dead_letter(&scope, "plan-1", "second", 1001).await.unwrap(), DeadLetterClaim::BeingSent);
    // WHEN the first sends it and settles THEN every later delivery is told it was sent
    table.settle_dead_letter(&scope, "plan-1", "first", true).await.unwrap();
    assert_eq!(table.claim_dead_letter(&scope, "plan-1", "third", 5000).await.unwrap(), DeadLetterClaim::Sent);
    // AND another run of the scope has its own letter
    assert_eq!(table.claim_dead_letter(&scope, "plan-2", "third", 5000).await.unwrap(), DeadLetterClaim::Claimed);
    // WHEN a send fails THEN the claim is given up, and the next delivery claims it again
    table.settle_dead_letter(&scope, "plan-2", "third", false).await.unwrap();
    assert_eq!(table.claim_dead_letter(&scope, "plan-2", "fourth", 5001).await.unwrap(), DeadLetterClaim::Claimed);
    // AND a claimant that stopped without settling is taken over once its claim is stale
    let stale = 5001 + DEAD_LETTER_STALE_SECONDS + 1;
    assert_eq!(table.claim_dead_letter(&scope, "plan-2", "fifth", stale).await.unwrap(), DeadLetterClaim::Claimed);
    table.settle_dead_letter(&scope, "plan-2", "fourth", true).await.unwrap();
    assert_eq!(table.claim_dead_letter(&scope, "plan-2", "sixth", stale).await.unwrap(), DeadLetterClaim::BeingSent);
}

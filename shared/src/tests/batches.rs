//! Batches of scopes on the in-memory twins: the scopes of one message run side by side, each its
//! own run; one that fails leaves the others complete; their lines go to one pool of objects; a
//! batch delivered again archives nothing twice, whether it stopped before or after its pool was
//! committed; dead letters are claimed once; no scope starts once paging has had to stop.

use std::collections::BTreeSet;

use crate::history::memory::MemoryBucket;
use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::batch::{run_batch, ScopeOutcome};
use crate::run::deadline::Deadlines;
use crate::run::pool::POOL_STAGING_BYTES;
use crate::run::{prepare, RunConfig, RunOutcome, RunRequest, Staging, Trigger};
use crate::sources::scripted::ScriptedSource;
use crate::table::memory::MemoryTable;
use crate::table::{DeadLetterClaim, PoolStatus, RunLedger, RunStatus, Scope, DEAD_LETTER_STALE_SECONDS};

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

/// Runs the batch: each scope with its own source, two at a time, the complete ones' lines pooled.
async fn run_all<'a>(
    scopes: &'a [Scope],
    sources: &[ScriptedSource],
    table: &MemoryTable,
    bucket: &MemoryBucket,
    request: &RunRequest,
) -> Vec<(&'a Scope, ScopeOutcome)> {
    let (config, staging) = (RunConfig::new(), Staging::new(POOL_STAGING_BYTES));
    let run_one = |scope: &'a Scope| {
        let source = &sources[scopes.iter().position(|s| s == scope).unwrap()];
        let (config, staging) = (&config, &staging);
        async move { prepare(scope, source, table, bucket, config, request, Some(staging)).await }
    };
    run_batch(scopes, 2, &request.deadlines, run_one).await
}

/// The session ids of `scope`'s lines in the run's `kind` objects, whichever objects hold them.
fn history_ids(bucket: &MemoryBucket, kind: &str, scope: &Scope) -> Vec<String> {
    let lines = bucket.lines_of(&format!("history/{kind}/{SERVICE}/dt=2026-11-22/"));
    let mine = lines.iter().filter(|l| l["account_id"] == scope.account_id.as_str());
    mine.map(|l| l["session_id"].as_str().unwrap().to_owned()).collect()
}

fn snapshot_ids(bucket: &MemoryBucket, scope: &Scope) -> Vec<String> {
    history_ids(bucket, "snapshots", scope)
}

fn history_objects(bucket: &MemoryBucket) -> Vec<String> {
    bucket.keys().into_iter().filter(|k| k.starts_with("history/")).collect()
}

fn with_invocation(id: &str) -> RunRequest {
    RunRequest { invocation_id: id.into(), ..request() }
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
    assert!(snapshot_ids(&bucket, &scopes[1]).is_empty() && history_ids(&bucket, "changes", &scopes[1]).is_empty());
    // AND the two complete scopes' lines are in one snapshots and one changes object, their pool committed
    let objects = history_objects(&bucket);
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(objects.iter().all(|k| k.contains("/plan-1.pool-")), "{objects:?}");
    let pools = table.history_pools();
    assert_eq!((pools.len(), pools[0].status, pools[0].parts.len()), (1, PoolStatus::Committed, 2), "{pools:?}");
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
    // AND the mended scope completes its run by itself, in its own objects
    assert!(matches!(&alone[0].1, ScopeOutcome::Ran(s) if s.outcome == RunOutcome::Complete), "{alone:?}");
    assert_eq!(snapshot_ids(&bucket, &scopes[1]).len(), 3);
    assert!(
        bucket.keys().iter().any(|k| k.ends_with("/222222222222.eu-west-1.plan-1.jsonl.gz")),
        "{:?}",
        bucket.keys()
    );
    assert_eq!(table.sessions().len(), 9);
}

#[tokio::test]
async fn a_batch_that_stopped_after_its_pool_was_committed_is_complete_on_its_next_delivery() {
    // GIVEN a batch whose invocation committed its pool and stopped before its manifests said so
    let (scopes, sources) = batch();
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    run_all(&scopes, &sources, &table, &bucket, &with_invocation("first")).await;
    table.mark_manifests(RunStatus::Running);
    table.drop_vouches();
    let objects = history_objects(&bucket);
    // WHEN the message is delivered again
    let again = run_all(&scopes, &sources, &table, &bucket, &with_invocation("second")).await;
    // THEN every scope's run is complete from its pool: nothing listed or written again
    assert!(again.iter().all(|(_, o)| matches!(o, ScopeOutcome::Ran(s) if s.already_complete)), "{again:?}");
    assert_eq!(history_objects(&bucket), objects);
    assert!(table.manifests().iter().all(|m| m.status == RunStatus::Complete && m.s3_keys.len() == 2));
    // AND each session is once in the history
    for (scope, source) in scopes.iter().zip(&sources) {
        assert_eq!(snapshot_ids(&bucket, scope).into_iter().collect::<BTreeSet<_>>().len(), source.truth().len());
        assert_eq!(snapshot_ids(&bucket, scope).len(), 3);
    }
}

#[tokio::test]
async fn a_pool_its_invocation_left_pending_is_abandoned_and_its_parts_done_again_once() {
    // GIVEN a batch whose invocation wrote its pool's objects and stopped before committing it
    let (scopes, sources) = batch();
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    run_all(&scopes, &sources, &table, &bucket, &with_invocation("first")).await;
    table.mark_manifests(RunStatus::Running);
    table.drop_vouches();
    table.mark_pools(PoolStatus::Pending);
    let first = history_objects(&bucket);
    // WHEN the message is delivered again
    let again = run_all(&scopes, &sources, &table, &bucket, &with_invocation("second")).await;
    // THEN the pending pool was abandoned and its objects deleted, and the parts were done again
    // into a new pool
    assert!(again.iter().all(|(_, o)| matches!(o, ScopeOutcome::Ran(s) if s.outcome == RunOutcome::Complete)));
    let objects = history_objects(&bucket);
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(objects.iter().all(|k| !first.contains(k)), "{first:?} {objects:?}");
    let mut statuses: Vec<PoolStatus> = table.history_pools().iter().map(|p| p.status).collect();
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [PoolStatus::Abandoned, PoolStatus::Committed]);
    // AND each session is once in each dataset, its change recorded again by the run
    for scope in &scopes {
        assert_eq!(snapshot_ids(&bucket, scope).len(), 3);
        assert_eq!(history_ids(&bucket, "changes", scope).len(), 3);
    }
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

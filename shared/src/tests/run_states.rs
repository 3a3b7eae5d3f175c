//! The run's states, on the in-memory twins of its ports (no moto, no emulator): a fresh run, a
//! held lease, a complete event, a partial run resumed, a failed run's changes recorded again, an
//! expired token, ended sessions, a dry run, and a silent table given up before the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json};

use crate::history::memory::MemoryBucket;
use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::deadline::Deadlines;
use crate::run::{run, RunConfig, RunOutcome, RunRequest, Trigger};
use crate::sources::scripted::ScriptedSource;
use crate::sources::SessionSource;
use crate::table::memory::MemoryTable;
use crate::table::{LeaseHolder, RunLedger, RunStatus, Scope};

const SERVICE: ServiceId = ServiceId::IvsStreamSessions;

fn config() -> RunConfig {
    RunConfig::new()
}

/// The scope the tests archive: the source's service in the test account and region.
fn scope_of(source: &ScriptedSource) -> Scope {
    Scope { service: source.service(), account_id: "123456789012".into(), region: "eu-west-1".into() }
}

fn scope() -> Scope {
    Scope { service: SERVICE, account_id: "123456789012".into(), region: "eu-west-1".into() }
}

/// A scheduled event's request, at `time`.
fn request_at(id: &str, time: &str) -> RunRequest {
    RunRequest {
        run_id: RunId::parse(id).unwrap(),
        event_id: id.into(),
        event_time: Timestamp::parse(time).unwrap(),
        trigger: Trigger::Scheduled,
        dry_run: false,
        invocation_id: format!("invocation-{id}"),
        deadlines: Deadlines::none(),
    }
}

fn request(id: &str) -> RunRequest {
    request_at(id, "2026-11-22T10:00:00Z")
}

/// A part that stops paging at once: it reads its first page or two, then saves its place.
fn short(mut request: RunRequest) -> RunRequest {
    request.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
    request
}

/// Two channels, of five and three sessions, two sessions a page.
fn source() -> ScriptedSource {
    ScriptedSource::new(
        SERVICE,
        vec![(Some("channel-a"), vec!["a1", "a2", "a3", "a4", "a5"]), (Some("channel-b"), vec!["b1", "b2", "b3"])],
        2,
    )
}

fn ids(lines: &[Map<String, Json>]) -> Vec<String> {
    lines.iter().map(|l| l["session_id"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

/// The changes lines of a run, by kind.
fn changes(bucket: &MemoryBucket, run_id: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in bucket.lines_of(&format!("changes/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.{run_id}.")) {
        let id = line["session_id"].as_str().unwrap().to_owned();
        assert!(kinds.entry(line["change"].as_str().unwrap().to_owned()).or_default().insert(id), "a change twice");
    }
    kinds
}

fn opened(ids: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    BTreeMap::from([("opened".to_owned(), ids.clone())])
}

#[tokio::test]
async fn a_fresh_run_writes_every_session_once_completes_and_gives_the_lease_back() {
    // GIVEN two channels and an empty table
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    // WHEN a scheduled event runs
    let summary = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    // THEN it completes, every session in the table and once in each history object
    let truth = set(source.truth());
    assert_eq!((summary.outcome, summary.counts.sessions, summary.counts.new), (RunOutcome::Complete, 8, 8));
    assert_eq!(set(table.sessions().into_keys()), truth);
    let snapshot =
        bucket.lines(&format!("history/snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-1.jsonl.gz"));
    assert_eq!((snapshot.len(), set(ids(&snapshot))), (8, truth.clone()));
    assert_eq!(changes(&bucket, "evt-1"), opened(&truth));
    // AND its manifest says complete, and nobody holds the lease
    let manifests = table.manifests();
    assert_eq!((manifests.len(), manifests[0].status, manifests[0].parts), (1, RunStatus::Complete, 1));
    assert_eq!(table.lease_holder(&scope()), None);
}

#[tokio::test]
async fn a_run_finding_the_lease_held_is_skipped_and_lambdas_retry_takes_its_own_lease_over() {
    // GIVEN another invocation holding the lease for ten minutes
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let now = Timestamp::now().epoch_seconds();
    let other = LeaseHolder { run_id: "evt-0".into(), invocation_id: "someone-else".into() };
    table.acquire_lease(&scope(), &other, now, now + 600).await.unwrap();
    // WHEN a run starts
    let skipped = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    // THEN it is skipped naming the holder, and reads and writes nothing
    assert_eq!((skipped.outcome, skipped.lease_held_by.as_deref()), (RunOutcome::Skipped, Some("evt-0")));
    assert_eq!((source.calls(), table.sessions().len(), bucket.keys().len()), (0, 0, 0));
    // WHEN the holder's own invocation comes again (Lambda's retry keeps its request id)
    let mut retry = request("evt-0");
    retry.invocation_id = "someone-else".into();
    // THEN it takes its lease over and completes
    assert_eq!(
        run(&scope_of(&source), &source, &table, &bucket, &config(), &retry).await.unwrap().outcome,
        RunOutcome::Complete
    );
}

#[tokio::test]
async fn an_event_whose_run_is_complete_is_skipped_and_writes_nothing_more() {
    // GIVEN a complete run
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    let (keys, calls) = (bucket.keys(), source.calls());
    // WHEN its event is delivered again
    let again = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    // THEN it is skipped as already complete: no call, no object, one manifest
    assert!(again.already_complete && again.outcome == RunOutcome::Skipped, "{again:?}");
    assert_eq!((bucket.keys(), source.calls(), table.manifests().len()), (keys, calls, 1));
}

#[tokio::test]
async fn a_partial_run_is_carried_on_by_the_next_event_under_its_own_id_and_day() {
    // GIVEN a run whose invocation stopped paging after its first pages
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let first = run(&scope_of(&source), &source, &table, &bucket, &config(), &short(request("evt-1"))).await.unwrap();
    assert_eq!((first.outcome, table.progress_items()), (RunOutcome::Partial, 1));
    // WHEN the next schedule's event comes, the day after
    let next = request_at("evt-2", "2026-11-23T00:05:00Z");
    let carried = run(&scope_of(&source), &source, &table, &bucket, &config(), &next).await.unwrap();
    // THEN it carries the first run on: its id, its part 1, its day
    assert_eq!((carried.outcome, carried.run_id.as_str(), carried.part), (RunOutcome::Complete, "evt-1", 1));
    assert!(
        carried.s3_keys.iter().all(|k| k.contains("/dt=2026-11-22/123456789012.eu-west-1.evt-1.part-0001.")),
        "{:?}",
        carried.s3_keys
    );
    // AND over both parts every session is listed once and opened once
    let truth = set(source.truth());
    let snapshot = ids(&bucket.lines_of(&format!("snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-1.")));
    assert_eq!((snapshot.len(), set(snapshot)), (8, truth.clone()));
    assert_eq!(changes(&bucket, "evt-1"), opened(&truth));
    // AND one manifest says complete over two parts, and no progress is left
    let manifests = table.manifests();
    assert_eq!((manifests.len(), manifests[0].status, manifests[0].parts), (1, RunStatus::Complete, 2));
    assert_eq!(table.progress_items(), 0);
}

/// A configuration that keeps no progress in its item: every saved place goes to an object.
fn progress_in_objects() -> RunConfig {
    RunConfig { progress_inline_bytes: 0, ..config() }
}

fn progress_objects(bucket: &MemoryBucket) -> Vec<String> {
    bucket.keys().into_iter().filter(|k| k.starts_with("state/progress/")).collect()
}

#[tokio::test]
async fn a_progress_too_large_for_its_item_is_kept_in_an_object_part_after_part() {
    // GIVEN progress that does not fit its item, and a run stopping after every page or two
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let config = progress_in_objects();
    // WHEN the same event is invoked again and again until its run completes
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let part = run(&scope_of(&source), &source, &table, &bucket, &config, &short(request("evt-1"))).await.unwrap();
        outcomes.push(part.outcome);
        if part.outcome == RunOutcome::Complete {
            break;
        }
    }
    // THEN it took several parts, each saving its place in an object of its own
    assert!(outcomes.len() >= 3 && outcomes.last() == Some(&RunOutcome::Complete), "{outcomes:?}");
    let objects = progress_objects(&bucket);
    assert_eq!(objects.len(), outcomes.len() - 1, "{objects:?}");
    assert!(objects.iter().all(|k| k.contains("/ivs-stream-sessions/123456789012.eu-west-1/evt-1.")), "{objects:?}");
    // AND every session is listed once and opened once, and no progress item is left
    let truth = set(source.truth());
    let snapshot = ids(&bucket.lines_of(&format!("snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-1.")));
    assert_eq!((snapshot.len(), set(snapshot)), (8, truth.clone()));
    assert_eq!(changes(&bucket, "evt-1"), opened(&truth));
    assert_eq!(table.progress_items(), 0);
}

#[tokio::test]
async fn a_progress_object_gone_or_changed_gives_its_run_up_and_the_next_run_converges() {
    for damage in [None, Some(b"not the progress".to_vec())] {
        // GIVEN a partial run whose progress is in an object, and the object then deleted or changed
        let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
        let config = progress_in_objects();
        run(&scope_of(&source), &source, &table, &bucket, &config, &short(request("evt-1"))).await.unwrap();
        let object = progress_objects(&bucket).pop().expect("a progress object");
        bucket.replace(&object, damage.clone());
        // WHEN the next event comes
        let err = run(&scope_of(&source), &source, &table, &bucket, &config, &request("evt-2")).await.unwrap_err();
        // THEN the part fails naming the object, and gives the partial run up
        let text = err.to_string();
        assert!(text.contains(&format!("the run progress object {object}")), "{text}");
        assert!(text.ends_with("the partial run is given up, and the next invocation starts a new one"), "{text}");
        assert_eq!(table.progress_items(), 0);
        // AND the next event's own run completes: the table holds every session, and the
        // sessions the given-up run wrote are recorded again (its manifest is not complete)
        let next = run(&scope_of(&source), &source, &table, &bucket, &config, &request("evt-3")).await.unwrap();
        assert_eq!((next.outcome, next.run_id.as_str()), (RunOutcome::Complete, "evt-3"));
        let truth = set(source.truth());
        assert_eq!(set(table.sessions().into_keys()), truth);
        let snapshot =
            ids(&bucket.lines_of(&format!("snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-3.")));
        assert_eq!((snapshot.len(), set(snapshot)), (8, truth.clone()));
        assert_eq!(changes(&bucket, "evt-3"), opened(&truth));
    }
}

#[tokio::test]
async fn a_run_that_failed_after_writing_items_has_their_changes_recorded_by_the_next_run() {
    // GIVEN a table that refuses writes once it holds three sessions
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    table.fail_writes_at(3);
    // WHEN a run writes its first listing and fails on the second
    let err = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap_err();
    // THEN it fails retryably, its manifest says so, no history object is written, and the lease
    // is given back; the items it wrote stay
    assert!(err.is_retryable(), "{err}");
    assert_eq!(table.manifests()[0].status, RunStatus::Failed);
    assert!(bucket.keys().is_empty() && bucket.open_uploads() == 0, "{:?}", bucket.keys());
    assert!(!table.sessions().is_empty());
    assert_eq!(table.lease_holder(&scope()), None);
    // WHEN the table is back and the next event runs
    table.heal();
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    // THEN every session's opening is in the history once, the failed run's included
    assert_eq!(changes(&bucket, "evt-2"), opened(&set(source.truth())));
}

#[tokio::test]
async fn an_expired_next_token_restarts_its_listing_with_no_session_twice() {
    // GIVEN a run stopped mid-pagination
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    assert_eq!(
        run(&scope_of(&source), &source, &table, &bucket, &config(), &short(request("evt-1"))).await.unwrap().outcome,
        RunOutcome::Partial
    );
    // WHEN the service refuses the token it had handed out
    source.expire_next_token();
    let carried = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    // THEN that listing is read again from its first page, and no session is listed twice
    assert_eq!((carried.outcome, carried.counts.restarted_listings), (RunOutcome::Complete, 1));
    let snapshot = ids(&bucket.lines_of(&format!("snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-1.")));
    assert_eq!((snapshot.len(), set(snapshot)), (8, set(source.truth())));
}

#[tokio::test]
async fn sessions_that_change_or_end_are_recorded_as_such() {
    // GIVEN an archived account in which one session changes and one ends
    let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    source.set_status("a2", "OFFLINE");
    source.remove("b3");
    // WHEN the next run comes
    let summary = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    // THEN it records one change and one end, and rewrites only those two items, in place,
    // without reading them
    let expected =
        BTreeMap::from([("changed".to_owned(), set(["a2".to_owned()])), ("ended".to_owned(), set(["b3".to_owned()]))]);
    assert_eq!(changes(&bucket, "evt-2"), expected);
    assert_eq!((summary.counts.changed, summary.counts.ended, summary.counts.items_written), (1, 1, 2));
    assert_eq!((summary.counts.items_fetched, summary.counts.updates_refused), (0, 0));
    let sessions = table.sessions();
    assert!(!sessions["b3"].is_live());
    assert_eq!(sessions["a2"].previous_status, sessions["a1"].record.status, "the status before the change");
    assert_eq!(sessions["b3"].previous_status, sessions["b3"].record.status, "the status at the end");
}

#[tokio::test]
async fn a_dry_run_over_changes_reports_them_and_writes_nothing() {
    // GIVEN an archived account in which one session changes and one ends
    let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    let (items, keys) = (table.sessions(), bucket.keys());
    source.set_status("a2", "OFFLINE");
    source.remove("b3");
    // WHEN a dry run comes
    let mut dry = request("evt-dry");
    dry.dry_run = true;
    let summary = run(&scope_of(&source), &source, &table, &bucket, &config(), &dry).await.unwrap();
    // THEN it tells the change and the end, decided from their items read, and writes nothing
    let counts = &summary.counts;
    assert_eq!((summary.outcome, counts.changed, counts.ended), (RunOutcome::DryRun, 1, 1));
    assert_eq!((counts.items_fetched, counts.items_written), (2, 0));
    assert_eq!((table.sessions(), bucket.keys()), (items, keys));
}

#[tokio::test]
async fn a_session_api_failing_mid_run_fails_it_retryably_with_no_history_and_the_next_run_converges() {
    // GIVEN a service that fails every call from the third on
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    source.fail_from_call(3);
    // WHEN a run reads it
    let err = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap_err();
    // THEN it fails retryably naming the operation, writes no history object, and says so
    assert!(err.is_retryable() && err.to_string().contains("ListStreamSessions"), "{err}");
    assert!(bucket.keys().is_empty());
    assert_eq!(table.manifests()[0].status, RunStatus::Failed);
    // WHEN the service is back
    source.heal();
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    // THEN the next run records every opening once
    assert_eq!(changes(&bucket, "evt-2"), opened(&set(source.truth())));
}

#[tokio::test]
async fn a_history_object_that_cannot_be_written_fails_the_part_and_leaves_no_upload() {
    // GIVEN a bucket refusing PutObject
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    bucket.failing("put");
    // WHEN a run finishes its listings
    let err = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap_err();
    // THEN it fails retryably, with no object and no upload left, and the manifest says failed
    assert!(err.is_retryable(), "{err}");
    assert!(bucket.keys().is_empty() && bucket.open_uploads() == 0);
    assert_eq!(table.manifests()[0].status, RunStatus::Failed);
    // WHEN the bucket is back THEN the next run records the items the failed one wrote
    bucket.heal();
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    assert_eq!(changes(&bucket, "evt-2"), opened(&set(source.truth())));
}

#[tokio::test]
async fn throttled_calls_are_counted_in_the_summary_and_the_manifest() {
    // GIVEN a service that throttles every other list call once
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    source.throttle_every(2);
    // WHEN a run reads its five pages
    let summary = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    // THEN it completes, and the two throttled calls are counted where a user looks
    assert_eq!((summary.outcome, summary.counts.pages, summary.counts.throttles), (RunOutcome::Complete, 5, 2));
    assert_eq!(table.manifests()[0].counts.throttles, 2);
}

#[tokio::test]
async fn a_dry_run_reads_everything_and_writes_nothing() {
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let mut dry = request("evt-dry");
    dry.dry_run = true;
    let summary = run(&scope_of(&source), &source, &table, &bucket, &config(), &dry).await.unwrap();
    assert_eq!((summary.outcome, summary.counts.sessions), (RunOutcome::DryRun, 8));
    assert!(table.sessions().is_empty() && table.manifests().is_empty() && bucket.keys().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_table_gone_silent_is_given_up_before_the_deadline_and_the_failure_recorded() {
    // GIVEN an invocation 10 s from its deadline (paging stops 6 s before it, waits give up 3 s
    // before it), and a table that accepts writes and never answers them
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    table.go_silent();
    let deadline_ms = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(10)).as_millis();
    let mut request = request("evt-1");
    request.deadlines = Deadlines::lambda(deadline_ms as u64, Duration::from_secs(6), Duration::from_secs(3));
    let started = tokio::time::Instant::now();
    // WHEN it runs
    let err = run(&scope_of(&source), &source, &table, &bucket, &config(), &request).await.unwrap_err();
    // THEN it stops waiting at the give-up time with a retryable timeout
    assert!(err.is_retryable() && err.to_string().starts_with("gave up waiting for the listings"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // AND records the failure in the time kept for it: manifest failed, lease given back
    assert_eq!(table.manifests()[0].status, RunStatus::Failed);
    assert_eq!(table.lease_holder(&scope()), None);
    assert!(bucket.keys().is_empty() && bucket.open_uploads() == 0);
}

#[tokio::test]
async fn a_scope_without_sessions_writes_nothing_once_its_last_run_found_it_empty() {
    // GIVEN a channel without sessions, archived once: the run completes, writing no history
    // object, and vouches that the scope was empty
    let mut source = ScriptedSource::new(SERVICE, vec![(Some("channel-a"), vec![])], 2);
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    let first = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-1")).await.unwrap();
    assert_eq!((first.outcome, first.quiet, first.s3_keys.len()), (RunOutcome::Complete, false, 0));
    assert!(!bucket.keys().iter().any(|k| k.starts_with("history/")), "{:?}", bucket.keys());
    assert!(table.vouch(&scope()).is_some_and(|v| v.quiet));
    let (keys, manifests, calls) = (bucket.keys(), table.manifests().len(), source.calls());

    // WHEN the next schedule runs, the channel still empty
    let second = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap();
    // THEN the run is quiet: complete, its list calls made (the channels, and the channel's one
    // page), and nothing written: no manifest, no object, no state, the vouch as it was
    assert_eq!((second.outcome, second.quiet, second.counts.parents), (RunOutcome::Complete, true, 1));
    assert_eq!(source.calls() - calls, 1, "the channel's page (the channels are given by the script)");
    assert_eq!((bucket.keys(), table.manifests().len()), (keys.clone(), manifests));
    assert!(table.vouch(&scope()).is_some_and(|v| v.quiet) && table.lease_holder(&scope()).is_none());

    // WHEN a session starts, and the next schedule runs
    source.add(Some("channel-a"), "a1");
    let third = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-3")).await.unwrap();
    // THEN the run is an ordinary one: the session archived, the scope no longer vouched quiet
    assert_eq!((third.outcome, third.quiet, third.counts.new), (RunOutcome::Complete, false, 1));
    let snapshot =
        bucket.lines(&format!("history/snapshots/{SERVICE}/dt=2026-11-22/123456789012.eu-west-1.evt-3.jsonl.gz"));
    assert_eq!(ids(&snapshot), ["a1"]);
    assert!(table.vouch(&scope()).is_some_and(|v| !v.quiet));

    // WHEN a run is held by another invocation THEN a scope vouched quiet is not run quietly
    source.remove("a1");
    let fourth = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-4")).await.unwrap();
    assert!(!fourth.quiet, "the session's end is written: {fourth:?}");
    assert_eq!(changes(&bucket, "evt-4").get("ended").map(BTreeSet::len), Some(1));
    let now = Timestamp::now().epoch_seconds();
    let other = LeaseHolder { run_id: "evt-9".into(), invocation_id: "someone-else".into() };
    table.acquire_lease(&scope(), &other, now, now + 600).await.unwrap();
    let held = run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-5")).await.unwrap();
    assert_eq!((held.outcome, held.quiet), (RunOutcome::Skipped, false));
}

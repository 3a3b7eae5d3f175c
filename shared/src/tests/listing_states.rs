//! Listing state objects, on the in-memory twins of the run's ports: an unchanged rerun reads its
//! account-wide listing's state object and not the table; a state object that is missing, stale,
//! corrupt or of another version is refused, and the run reads the table, rebuilds it, says why
//! and converges; a run that fails vouches for nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::history::memory::MemoryBucket;
use crate::history::RunId;
use crate::model::{ServiceId, Timestamp};
use crate::run::deadline::Deadlines;
use crate::run::{run, RunConfig, RunOutcome, RunRequest, RunSummary, Trigger};
use crate::sources::scripted::ScriptedSource;
use crate::sources::SessionSource;
use crate::table::memory::MemoryTable;
use crate::table::{Scope, StateVouch};

const SERVICE: ServiceId = ServiceId::GameliftStreamSessions;

fn config() -> RunConfig {
    RunConfig::new()
}

/// The scope the tests archive: the source's service in the test account and region.
fn scope_of(source: &ScriptedSource) -> Scope {
    Scope { service: source.service(), account_id: "123456789012".into(), region: "us-west-2".into() }
}

fn scope() -> Scope {
    Scope { service: SERVICE, account_id: "123456789012".into(), region: "us-west-2".into() }
}

fn request(id: &str) -> RunRequest {
    RunRequest {
        run_id: RunId::parse(id).unwrap(),
        event_id: id.into(),
        event_time: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
        trigger: Trigger::Scheduled,
        dry_run: false,
        invocation_id: format!("invocation-{id}"),
        deadlines: Deadlines::none(),
    }
}

/// One account-wide listing of 300 sessions, 50 a page.
fn source() -> ScriptedSource {
    let ids: Vec<String> = (0..300).map(|i| format!("s{i:03}")).collect();
    ScriptedSource::new(SERVICE, vec![(None, ids.iter().map(String::as_str).collect())], 50)
}

/// The key of the listing's state object.
fn state_key(bucket: &MemoryBucket) -> String {
    let keys: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with("state/listings/")).collect();
    assert_eq!(keys.len(), 1, "one state object: {keys:?}");
    keys[0].clone()
}

/// The changes lines of a run: session id → change.
fn changes(bucket: &MemoryBucket, run_id: &str) -> BTreeMap<String, String> {
    let prefix = format!("changes/{SERVICE}/dt=2026-11-22/123456789012.us-west-2.{run_id}.");
    let lines = bucket.lines_of(&prefix);
    lines.iter().map(|l| (l["session_id"].as_str().unwrap().into(), l["change"].as_str().unwrap().into())).collect()
}

fn snapshot(bucket: &MemoryBucket, run_id: &str) -> Vec<String> {
    let prefix = format!("snapshots/{SERVICE}/dt=2026-11-22/123456789012.us-west-2.{run_id}.");
    bucket.lines_of(&prefix).iter().map(|l| l["session_id"].as_str().unwrap().to_owned()).collect()
}

/// What a user checks after a run: the table holds what the service lists (ended sessions as
/// ended), and the snapshot names each listed session once.
fn assert_converged(source: &ScriptedSource, table: &MemoryTable, bucket: &MemoryBucket, run_id: &str) {
    let truth: BTreeSet<String> = source.truth().into_iter().collect();
    let live: BTreeSet<String> = table.sessions().into_iter().filter(|(_, s)| s.is_live()).map(|(id, _)| id).collect();
    assert_eq!(live, truth, "{run_id}: live items against the service");
    let listed = snapshot(bucket, run_id);
    assert_eq!((listed.len(), listed.into_iter().collect::<BTreeSet<_>>()), (truth.len(), truth), "{run_id}");
}

/// The object's text, changed by `edit`, gzip'd again.
fn edited(body: &[u8], edit: impl Fn(String) -> String) -> Vec<u8> {
    let mut text = String::new();
    GzDecoder::new(body).read_to_string(&mut text).unwrap();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(edit(text).as_bytes()).unwrap();
    gzip.finish().unwrap()
}

async fn complete(source: &ScriptedSource, table: &MemoryTable, bucket: &MemoryBucket, id: &str) -> RunSummary {
    let summary = run(&scope_of(source), source, table, bucket, &config(), &request(id)).await.unwrap();
    assert_eq!(summary.outcome, RunOutcome::Complete, "{id}");
    summary
}

#[tokio::test]
async fn an_unchanged_rerun_reads_the_listings_state_object_and_not_the_table() {
    // GIVEN a first run, which reads the (empty) table and leaves the listing's state object
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let first = complete(&source, &table, &bucket, "evt-1").await;
    let reason = first.state_rebuilt_because.clone().unwrap_or_default();
    assert!(reason.contains("no state object is vouched for"), "{reason}");
    assert_eq!((first.counts.states_rebuilt, first.counts.states_written), (1, 1));
    let key = state_key(&bucket);
    assert_eq!(
        table.vouch(&scope()),
        Some(StateVouch { generation: "evt-1".into(), for_run: None, sections: 1, quiet: false })
    );
    // WHEN the same sessions are listed again
    let reads_before = table.listings_read();
    let rerun = complete(&source, &table, &bucket, "evt-2").await;
    // THEN the table is not read, nothing is written, not even the state object, and nothing is
    // rebuilt
    assert_eq!(table.listings_read(), reads_before, "no Query of the listing");
    assert_eq!((rerun.counts.states_read, rerun.counts.states_rebuilt, rerun.counts.states_written), (1, 0, 0));
    assert_eq!((rerun.counts.items_written, rerun.counts.unchanged, rerun.state_rebuilt_because), (0, 300, None));
    assert_converged(&source, &table, &bucket, "evt-2");
    assert_eq!(state_key(&bucket), key);
}

#[tokio::test]
async fn a_gone_session_whose_id_is_not_in_the_last_runs_lines_is_ended_from_a_read_of_the_table() {
    // GIVEN a complete run whose snapshots object is gone since (deleted by hand, or expired)
    let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    complete(&source, &table, &bucket, "evt-1").await;
    for key in bucket.keys().into_iter().filter(|k| k.contains("/snapshots/")) {
        bucket.replace(&key, None);
    }
    source.remove("s020");
    // WHEN the next run lists
    let reads_before = table.listings_read();
    complete(&source, &table, &bucket, "evt-2").await;
    // THEN the gone session ends all the same, its id from a read of the listing
    assert_eq!(changes(&bucket, "evt-2"), BTreeMap::from([("s020".to_owned(), "ended".to_owned())]));
    assert_eq!(table.listings_read(), reads_before + 1);
    assert_converged(&source, &table, &bucket, "evt-2");
}

#[tokio::test]
async fn changes_read_from_the_state_object_are_recorded_as_from_the_table_and_the_ended_stay_ended() {
    // GIVEN a complete run, then one session changed, one gone and one new
    let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    complete(&source, &table, &bucket, "evt-1").await;
    let first_seen = table.sessions()["s020"].first_seen.clone();
    source.set_status("s010", "PENDING_CLIENT_RECONNECT");
    source.remove("s020");
    source.add(None, "s999");
    // WHEN the next run reads the state object
    let reads_before = table.listings_read();
    let next = complete(&source, &table, &bucket, "evt-2").await;
    // THEN it records each change, ends the gone session (its id found in the last run's
    // snapshot lines, its item fetched by id: the listing is not read from the table), and writes
    // the listing's state again
    let expected = BTreeMap::from([
        ("s010".to_owned(), "changed".to_owned()),
        ("s020".to_owned(), "ended".to_owned()),
        ("s999".to_owned(), "opened".to_owned()),
    ]);
    assert_eq!(changes(&bucket, "evt-2"), expected);
    assert_eq!((next.counts.states_read, next.counts.states_written, next.counts.items_written), (1, 1, 3));
    assert_eq!(table.listings_read(), reads_before, "no read of the listing for the ended");
    assert_converged(&source, &table, &bucket, "evt-2");
    // AND the run after it records nothing, reads no table, and does not end the gone one again
    let reads_before = table.listings_read();
    let after = complete(&source, &table, &bucket, "evt-3").await;
    assert_eq!((after.counts.items_written, after.counts.states_read), (0, 1));
    assert!(changes(&bucket, "evt-3").is_empty());
    assert_eq!(table.listings_read(), reads_before);
    // AND the gone session comes back as opened, keeping when it was first seen
    source.add(None, "s020");
    complete(&source, &table, &bucket, "evt-4").await;
    assert_eq!(changes(&bucket, "evt-4"), BTreeMap::from([("s020".to_owned(), "opened".to_owned())]));
    let back = &table.sessions()["s020"];
    assert!(back.is_live() && back.first_seen == first_seen, "{back:?}");
    assert_converged(&source, &table, &bucket, "evt-4");
}

/// How a state object is damaged, and the word the run's reason has for it.
enum Damage {
    Missing,
    Corrupt,
    OtherVersion,
    Stale,
}

#[tokio::test]
async fn a_missing_stale_corrupt_or_other_version_state_object_is_rebuilt_from_the_table_and_said() {
    for (damage, says) in [
        (Damage::Missing, "is missing"),
        (Damage::Corrupt, "corrupt: it is not whole gzip"),
        (Damage::OtherVersion, "written by another version: format session-archiver/listing-states version 0"),
        (Damage::Stale, "stale: it belongs to generation evt-1, and the lease vouches for evt-0"),
    ] {
        // GIVEN a complete run's state object, damaged; and a session changed since
        let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
        complete(&source, &table, &bucket, "evt-1").await;
        let key = state_key(&bucket);
        let body = bucket.get_bytes(&key);
        match damage {
            Damage::Missing => bucket.replace(&key, None),
            Damage::Corrupt => bucket.replace(&key, Some(body[..body.len() / 2].to_vec())),
            Damage::OtherVersion => {
                bucket.replace(&key, Some(edited(&body, |t| t.replacen("\"version\":1", "\"version\":0", 1))))
            }
            Damage::Stale => table.set_vouch(
                &scope(),
                Some(StateVouch { generation: "evt-0".into(), for_run: None, sections: 1, quiet: false }),
            ),
        }
        source.set_status("s010", "PENDING_CLIENT_RECONNECT");
        // WHEN the next run comes
        let next = complete(&source, &table, &bucket, "evt-2").await;
        // THEN it reads the table instead, says why, records the change once, and converges
        let reason = next.state_rebuilt_because.clone().unwrap_or_default();
        assert!(reason.contains(&key) && reason.contains(says), "{says}: {reason}");
        assert_eq!((next.counts.states_read, next.counts.states_rebuilt, next.counts.states_written), (0, 1, 1));
        assert_eq!(changes(&bucket, "evt-2"), BTreeMap::from([("s010".to_owned(), "changed".to_owned())]));
        assert_converged(&source, &table, &bucket, "evt-2");
        // AND the object it rebuilt serves the run after it
        let after = complete(&source, &table, &bucket, "evt-3").await;
        assert_eq!((after.counts.states_read, after.counts.items_written, after.state_rebuilt_because), (1, 0, None));
    }
}

#[tokio::test]
async fn a_run_that_fails_after_writing_items_vouches_for_nothing_and_the_next_run_reads_the_table() {
    // GIVEN a complete run, then a run that writes changed sessions and fails to write its
    // objects
    let (mut source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    complete(&source, &table, &bucket, "evt-1").await;
    source.set_status("s010", "PENDING_CLIENT_RECONNECT");
    source.set_status("s290", "PENDING_CLIENT_RECONNECT");
    bucket.failing("put");
    run(&scope_of(&source), &source, &table, &bucket, &config(), &request("evt-2")).await.unwrap_err();
    assert_eq!(table.sessions()["s010"].record.status.as_deref(), Some("PENDING_CLIENT_RECONNECT"), "written");
    assert_eq!(table.vouch(&scope()), None);
    // WHEN the bucket heals and the next run comes
    bucket.heal();
    let next = complete(&source, &table, &bucket, "evt-3").await;
    // THEN it reads the table, records the failed run's change again with its own, and
    // converges under a new generation
    let reason = next.state_rebuilt_because.clone().unwrap_or_default();
    assert!(reason.contains("no state object is vouched for"), "{reason}");
    let expected =
        BTreeMap::from([("s010".to_owned(), "changed".to_owned()), ("s290".to_owned(), "changed".to_owned())]);
    assert_eq!(changes(&bucket, "evt-3"), expected);
    assert_converged(&source, &table, &bucket, "evt-3");
    assert_eq!(
        table.vouch(&scope()),
        Some(StateVouch { generation: "evt-3".into(), for_run: None, sections: 1, quiet: false })
    );
}

#[tokio::test]
async fn a_run_over_several_parts_vouches_for_itself_between_them_and_leaves_a_state_the_next_run_reads() {
    // GIVEN a first run whose every part stops paging after a page or two
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    let mut parts = 0;
    loop {
        let mut short = request("evt-1");
        short.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
        // WHEN the same event is invoked until its run completes
        let part = run(&scope_of(&source), &source, &table, &bucket, &config(), &short).await.unwrap();
        parts += 1;
        if part.outcome == RunOutcome::Complete {
            break;
        }
        // THEN between parts the lease vouches for the run's own next part only, and each part
        // after the first resumed from the carried diff
        assert_eq!(part.counts.states_read, u64::from(parts > 1), "part {parts}");
        let own = StateVouch { generation: "evt-1".into(), for_run: Some("evt-1".into()), sections: 1, quiet: false };
        assert_eq!(table.vouch(&scope()), Some(own));
        assert!(parts < 20, "the run completes");
    }
    assert!(parts >= 3, "{parts} parts");
    assert_converged(&source, &table, &bucket, "evt-1");
    // AND only the first part read the table: each part after it took the listing's diff from
    // the carry the part before left in the state object
    assert_eq!(table.listings_read(), 1);
    // AND once complete, for any run: the next one reads the state the last part wrote
    assert_eq!(
        table.vouch(&scope()),
        Some(StateVouch { generation: "evt-1".into(), for_run: None, sections: 1, quiet: false })
    );
    let rerun = complete(&source, &table, &bucket, "evt-2").await;
    assert_eq!((rerun.counts.states_read, rerun.counts.items_written), (1, 0));
}

#[tokio::test]
async fn a_part_whose_carry_is_not_vouched_for_resumes_from_the_table_and_the_sessions_its_progress_names() {
    // GIVEN a run stopped by its deadline in the listing, after a page or two: its progress
    // names the sessions seen so far (read back from the carry it left)
    let (source, table, bucket) = (source(), MemoryTable::default(), MemoryBucket::default());
    complete(&source, &table, &bucket, "evt-0").await;
    let mut short = request("evt-1");
    short.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
    let first = run(&scope_of(&source), &source, &table, &bucket, &config(), &short).await.unwrap();
    assert_eq!(first.outcome, RunOutcome::Partial);
    // AND the vouch is lost, as when a part dies before it gives the lease back
    table.set_vouch(&scope(), None);
    let reads_before = table.listings_read();
    // WHEN the event is invoked until its run completes
    for part in 0.. {
        assert!(part < 20, "the run completes");
        let mut short = request("evt-1");
        short.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
        if run(&scope_of(&source), &source, &table, &bucket, &config(), &short).await.unwrap().outcome
            == RunOutcome::Complete
        {
            break;
        }
    }
    // THEN the next part read the table once and resumed with the seen sessions of the progress:
    // no session ended, and each is once in the run's snapshot
    assert_eq!(table.listings_read(), reads_before + 1);
    assert_converged(&source, &table, &bucket, "evt-1");
    assert!(changes(&bucket, "evt-1").is_empty(), "nothing changed: {:?}", changes(&bucket, "evt-1"));
}

#[tokio::test]
async fn per_parent_listings_share_one_state_object_and_a_new_parent_alone_reads_the_table() {
    // GIVEN three channels archived once: one state object for the scope, a section a channel
    let ivs = ServiceId::IvsStreamSessions;
    let names: Vec<Vec<String>> = (0..3).map(|c| (0..120).map(|i| format!("c{c}-s{i:03}")).collect()).collect();
    let listings = |n: usize| -> Vec<(Option<&str>, Vec<&str>)> {
        let parents = ["channel-0", "channel-1", "channel-2"];
        (0..n).map(|c| (Some(parents[c]), names[c].iter().map(String::as_str).collect())).collect()
    };
    let ivs_scope = Scope { service: ivs, ..scope() };
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    let two = ScriptedSource::new(ivs, listings(2), 50);
    let first = complete(&two, &table, &bucket, "evt-1").await;
    assert_eq!((first.counts.states_rebuilt, first.counts.states_written), (2, 1));
    assert_eq!(state_key(&bucket), format!("state/listings/{ivs}/123456789012.us-west-2.states.ndjson.gz"));
    // WHEN the same channels are listed again
    let reads_before = table.listings_read();
    let rerun = complete(&two, &table, &bucket, "evt-2").await;
    // THEN no channel's listing reads the table, and the object is not rewritten
    assert_eq!(table.listings_read(), reads_before);
    assert_eq!((rerun.counts.states_read, rerun.counts.states_written, rerun.counts.items_written), (2, 0, 0));
    // WHEN a third channel appears
    let three = ScriptedSource::new(ivs, listings(3), 50);
    let reads_before = table.listings_read();
    let grown = complete(&three, &table, &bucket, "evt-3").await;
    // THEN it alone reads the table, saying so, and the object is rewritten with its section
    assert_eq!(table.listings_read(), reads_before + 1);
    assert_eq!((grown.counts.states_read, grown.counts.states_rebuilt, grown.counts.states_written), (2, 1, 1));
    let reason = grown.state_rebuilt_because.unwrap_or_default();
    assert!(reason.contains("has no section for listing channel-2"), "{reason}");
    let after = complete(&three, &table, &bucket, "evt-4").await;
    assert_eq!((after.counts.states_read, after.counts.states_rebuilt), (3, 0));
    assert_eq!(table.vouch(&ivs_scope).map(|v| v.generation), Some("evt-1".into()));
}

#[tokio::test]
async fn a_run_over_several_parts_leaves_every_listings_state_for_the_next_run() {
    // GIVEN three channels, and a first run whose every part stops paging after a page or two
    let ivs = ServiceId::IvsStreamSessions;
    let names: Vec<Vec<String>> = (0..3).map(|c| (0..120).map(|i| format!("c{c}-s{i:03}")).collect()).collect();
    let parents = ["channel-0", "channel-1", "channel-2"];
    let listings = (0..3).map(|c| (Some(parents[c]), names[c].iter().map(String::as_str).collect())).collect();
    let source = ScriptedSource::new(ivs, listings, 50);
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    // WHEN the event is invoked until its run completes
    for part in 0.. {
        assert!(part < 30, "the run completes");
        let mut short = request("evt-1");
        short.deadlines = Deadlines::paging_until(tokio::time::Instant::now());
        if run(&scope_of(&source), &source, &table, &bucket, &config(), &short).await.unwrap().outcome
            == RunOutcome::Complete
        {
            break;
        }
    }
    // THEN the next run reads every channel's state from the object: the sections of channels
    // done in earlier parts were kept by the parts after them
    let reads_before = table.listings_read();
    let rerun = complete(&source, &table, &bucket, "evt-2").await;
    assert_eq!((rerun.counts.states_read, rerun.counts.states_rebuilt, rerun.counts.items_written), (3, 0, 0));
    assert_eq!(table.listings_read(), reads_before);
}

#[tokio::test]
async fn a_scope_with_no_listing_state_to_keep_reads_no_state_object() {
    // GIVEN a service with no channel in this account and region, archived once: the lease
    // vouches for a state of no section
    let ivs = ServiceId::IvsStreamSessions;
    let ivs_scope = Scope { service: ivs, ..scope() };
    let (table, bucket) = (MemoryTable::default(), MemoryBucket::default());
    let none = ScriptedSource::new(ivs, vec![], 50);
    complete(&none, &table, &bucket, "evt-1").await;
    assert_eq!(table.vouch(&ivs_scope).map(|vouch| vouch.sections), Some(0));
    // WHEN it runs again
    let gets = bucket.gets();
    let rerun = complete(&none, &table, &bucket, "evt-2").await;
    // THEN it makes no GET for the state (an organization's many empty scopes pay none), and
    // nothing is said to be rebuilt
    assert_eq!(bucket.gets(), gets);
    assert_eq!((rerun.counts.states_read, rerun.counts.states_rebuilt, rerun.state_rebuilt_because), (0, 0, None));
    // AND a channel that appears reads the table, as a listing without a section does, and
    // leaves its state for the run after
    let one = ScriptedSource::new(ivs, vec![(Some("channel-0"), vec!["a", "b"])], 50);
    let grown = complete(&one, &table, &bucket, "evt-3").await;
    assert_eq!((grown.counts.states_rebuilt, grown.counts.states_written), (1, 1));
    let reason = grown.state_rebuilt_because.unwrap_or_default();
    assert!(reason.contains("no section for listing channel-0"), "{reason}");
    let after = complete(&one, &table, &bucket, "evt-4").await;
    assert_eq!((after.counts.states_read, after.counts.items_written), (1, 0));
}

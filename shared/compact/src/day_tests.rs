//! A day compacted on the in-memory twins, from history the archiver itself wrote: every line of
//! the day's JSON is once in the Parquet with equal values, in (account, region, session, time)
//! order; a rerun changes nothing; a corrupt or truncated source stops it, naming the object and
//! the line, and writes nothing.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use session_archiver::archive::report::write_runs;
use session_archiver::history::memory::MemoryBucket;
use session_archiver::history::{HistoryKind, RunId};
use session_archiver::model::{Scope, Timestamp};
use session_archiver::run::batch::ScopeOutcome;
use session_archiver::run::deadline::Deadlines;
use session_archiver::run::{run, RunConfig, RunOutcome, RunRequest, Trigger};
use session_archiver::sources::scripted::ScriptedSource;
use session_archiver::sources::SessionSource;
use session_archiver::table::memory::MemoryTable;
use session_archiver::{Error, ServiceId};

use crate::columns::{parse_line, read_parquet, Dataset, Row, Value};
use crate::dataset::{sort_sources, CompactionConfig};
use crate::day::compact_day;
use crate::keys::{marker_key, source_prefix, SourceObject};
use crate::parquet_object::Layout;
use crate::slices::InThisInvocation;

pub(crate) const SERVICE: ServiceId = ServiceId::ChimeProxySessions;
pub(crate) const DAY: &str = "2026-11-22";
const ACCOUNTS: [&str; 2] = ["222222222222", "111111111111"];

pub(crate) fn config() -> CompactionConfig {
    // A small sort budget: the day spills several runs, as a large one does.
    CompactionConfig {
        history_prefix: "history".into(),
        sort_budget: 64 * 1024,
        layout: Layout { row_group_bytes: 256 * 1024, upload_part_size: 0 },
        batch_rows: 100,
        slice_source_bytes: u64::MAX,
    }
}

fn request(id: &str, hour: u32) -> RunRequest {
    RunRequest {
        run_id: RunId::parse(id).unwrap(),
        event_id: id.into(),
        event_time: Timestamp::parse(&format!("{DAY}T{hour:02}:00:00Z")).unwrap(),
        trigger: Trigger::Scheduled,
        dry_run: false,
        invocation_id: format!("invocation-{id}"),
        deadlines: Deadlines::none(),
    }
}

/// Two accounts' voice connectors archived three times in the day, sessions opening, changing
/// and ending between runs, each run's line in the runs dataset.
pub(crate) async fn archived_day() -> MemoryBucket {
    let bucket = MemoryBucket::default();
    for account in ACCOUNTS {
        let ids: Vec<Vec<String>> =
            (0..2).map(|c| (0..150).map(|i| format!("{account}-c{c}-s{i:03}")).collect()).collect();
        let listings = vec![
            (Some("vc-0"), ids[0].iter().map(String::as_str).collect()),
            (Some("vc-1"), ids[1].iter().map(String::as_str).collect()),
        ];
        let mut source = ScriptedSource::new(SERVICE, listings, 40);
        let table = MemoryTable::default();
        let config = RunConfig::new();
        for (n, hour) in [(1, 1), (2, 9), (3, 17)] {
            let scope = Scope { service: source.service(), account_id: account.into(), region: "us-east-1".into() };
            // Each account's run in its own invocation, as the functions run them.
            let request = RunRequest { invocation_id: format!("{account}-{n}"), ..request(&format!("run-{n}"), hour) };
            let started_at = Timestamp::now();
            let summary = run(&scope, &source, &table, &bucket, &config, &request).await.unwrap();
            assert_eq!(summary.outcome, RunOutcome::Complete);
            // The invocation's line in the runs dataset, as the function writes it.
            let outcomes = [(&scope, ScopeOutcome::Ran(summary))];
            write_runs(&bucket, "history", SERVICE, &request, &outcomes, &started_at).await;
            source.set_status(&ids[0][n], "CLOSED");
            source.remove(&ids[1][n]);
            source.add(Some("vc-1"), &format!("{account}-new-{n}"));
        }
    }
    bucket
}

pub(crate) fn dataset(kind: HistoryKind) -> Dataset {
    Dataset { service: SERVICE, kind }
}

/// Every line of the day's source objects of `kind`, typed.
pub(crate) fn json_rows(bucket: &MemoryBucket, kind: HistoryKind) -> Vec<Row> {
    let columns = dataset(kind).columns();
    let prefix = source_prefix("history", &dataset(kind), DAY);
    let keys = bucket.keys().into_iter().filter(|k| k.starts_with(&prefix));
    keys.flat_map(|k| bucket.text(&k).lines().map(|l| parse_line(&columns, l).unwrap()).collect::<Vec<_>>()).collect()
}

/// The rows of the day's Parquet of `kind`, in file order.
fn parquet_rows(bucket: &MemoryBucket, kind: HistoryKind) -> Vec<Row> {
    let key = format!("history/parquet/{}/{SERVICE}/dt={DAY}/part-00000.parquet", kind.as_str());
    read_parquet(&dataset(kind), bucket.get_bytes(&key)).unwrap()
}

/// (account, region, session, time) of a row.
fn order_of(kind: HistoryKind, row: &Row) -> (String, String, String, i64) {
    let columns = dataset(kind).columns();
    let at = |name: &str| &row.0[columns.iter().position(|c| c.name == name).unwrap()];
    let text = |name: &str| match at(name) {
        Value::Text(text) => text.clone(),
        other => panic!("{name}: {other:?}"),
    };
    let Value::Micros(time) = at("snapshot_at") else { panic!("snapshot_at") };
    (text("account_id"), text("region"), text("session_id"), *time)
}

pub(crate) fn sorted(mut rows: Vec<Row>) -> Vec<String> {
    let mut texts: Vec<String> = rows.drain(..).map(|r| format!("{r:?}")).collect();
    texts.sort();
    texts
}

pub(crate) fn gzip(text: &str) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn every_line_of_the_day_is_once_in_the_parquet_with_equal_values_in_session_order() {
    // GIVEN a day of two accounts archived three times, sessions changing between runs
    let bucket = archived_day().await;
    // WHEN the day is compacted
    let outcome = compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN for snapshots and changes, the Parquet's rows are the JSON lines, each once
    for kind in [HistoryKind::Snapshots, HistoryKind::Changes] {
        let (json, parquet) = (json_rows(&bucket, kind), parquet_rows(&bucket, kind));
        assert!(!json.is_empty(), "{kind:?}");
        let keys: Vec<_> = parquet.iter().map(|row| order_of(kind, row)).collect();
        let mut in_order = keys.clone();
        in_order.sort();
        assert_eq!(keys, in_order, "{kind:?}: rows by account, region, session and time");
        assert_eq!(keys[0].0, "111111111111", "the lesser account first");
        assert_eq!(sorted(parquet), sorted(json), "{kind:?}");
    }
    let rows: Vec<u64> = outcome.datasets.iter().map(|d| d.rows).collect();
    assert_eq!(rows, HistoryKind::ALL.map(|kind| json_rows(&bucket, kind).len() as u64));
    // AND the runs dataset's lines too, one a scope and run, by account, region and start
    let (json, parquet) = (json_rows(&bucket, HistoryKind::Runs), parquet_rows(&bucket, HistoryKind::Runs));
    assert_eq!(json.len(), ACCOUNTS.len() * 3);
    assert_eq!(sorted(parquet.clone()), sorted(json));
    let columns = dataset(HistoryKind::Runs).columns();
    let at = |row: &Row, name: &str| format!("{:?}", row.0[columns.iter().position(|c| c.name == name).unwrap()]);
    let keys: Vec<(String, String)> = parquet.iter().map(|row| (at(row, "account_id"), at(row, "run_id"))).collect();
    assert_eq!(keys[0], ("Text(\"111111111111\")".to_owned(), "Text(\"run-1\")".to_owned()), "{keys:?}");
    // AND each day has its marker, naming its sources
    let marker = bucket.text_plain(&marker_key("history", &dataset(HistoryKind::Snapshots), DAY));
    assert!(marker.contains("\"rows\"") && marker.contains("run-3"), "{marker}");
    // AND every source object is tagged compacted, for the lifecycle rule, and nothing else is
    let sources: Vec<String> = bucket.keys().into_iter().filter(|k| k.ends_with(".jsonl.gz")).collect();
    let tags = bucket.tags();
    assert_eq!(tags.keys().cloned().collect::<Vec<_>>(), sources);
    assert!(tags.values().all(|tag| tag == "session-archiver-compacted=true"), "{tags:?}");
}

#[tokio::test]
async fn a_rerun_changes_nothing_and_a_new_source_compacts_the_day_again() {
    // GIVEN a compacted day
    let bucket = archived_day().await;
    compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    let before = bucket.snapshot();
    // WHEN it is compacted again
    let rerun = compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN nothing was written: every object is as it was
    assert!(rerun.datasets.iter().all(|d| d.already_compacted), "{rerun:?}");
    assert_eq!(bucket.snapshot(), before);
    // WHEN a run's object arrives late (a run that spanned midnight) and the day is compacted again
    let late = json_rows(&bucket, HistoryKind::Snapshots).len();
    let source = source_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let first = bucket.keys().into_iter().find(|k| k.starts_with(&source)).unwrap();
    bucket.replace(&format!("{source}333333333333.us-east-1.run-late.jsonl.gz"), Some(bucket.get_bytes(&first)));
    let again = compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN the snapshots are compacted from every source, and the changes and runs left alone
    let compacted: Vec<bool> = again.datasets.iter().map(|d| d.already_compacted).collect();
    assert_eq!(compacted, [false, true, true]);
    assert!(parquet_rows(&bucket, HistoryKind::Snapshots).len() > late);
}

#[tokio::test]
async fn a_day_whose_compacted_ndjson_expired_keeps_its_parquet_when_compacted_again() {
    // GIVEN a compacted day, then one of its snapshot objects expired (the lifecycle rule)
    let bucket = archived_day().await;
    compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    let rows = parquet_rows(&bucket, HistoryKind::Snapshots);
    let source = source_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let expired = bucket.keys().into_iter().find(|k| k.starts_with(&source)).unwrap();
    bucket.replace(&expired, None);
    let before = bucket.snapshot();
    // WHEN the day is compacted again (a replay)
    let again = compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN its Parquet keeps every line, nothing is written, and the outcome says why
    assert_eq!((again.datasets[0].already_compacted, again.datasets[0].sources_expired), (true, 1));
    assert_eq!(bucket.snapshot(), before);
    assert_eq!(parquet_rows(&bucket, HistoryKind::Snapshots), rows);
}

#[tokio::test]
async fn a_corrupt_or_truncated_source_stops_the_compaction_naming_the_object_and_line_and_writes_nothing() {
    let bucket = archived_day().await;
    let prefix = source_prefix("history", &dataset(HistoryKind::Changes), DAY);
    let victim = bucket.keys().into_iter().find(|k| k.starts_with(&prefix)).unwrap();
    let text = bucket.text(&victim);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{victim}");
    let whole = bucket.get_bytes(&victim);
    let cases: Vec<(Vec<u8>, String)> = vec![
        // a line with a mistyped column
        (
            gzip(&text.replacen(lines[1], &lines[1].replacen("\"snapshot_at\":\"", "\"snapshot_at\":\"x", 1), 1)),
            "line 2: column `snapshot_at`".into(),
        ),
        // a line that is not JSON
        (gzip(&text.replacen(lines[2], "{oops", 1)), "line 3: not JSON".into()),
        // the gzip cut short
        (whole[..whole.len() / 2].to_vec(), "cut short".into()),
        // not gzip at all
        (b"plain text\n".to_vec(), "line 1: not gzip".into()),
    ];
    for (body, expected) in cases {
        // GIVEN one of the day's change objects damaged
        bucket.replace(&victim, Some(body));
        let before = bucket.snapshot();
        // WHEN the day is compacted
        let err = compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap_err();
        // THEN it stops naming the object and the line, and nothing was written
        assert!(matches!(err, Error::UnreadableHistory { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&victim) && message.contains(&expected), "{message} (expected {expected})");
        assert_eq!(bucket.snapshot(), before, "{expected}: nothing written");
        assert!(bucket.tags().is_empty(), "{expected}: nothing tagged");
        assert_eq!(bucket.open_uploads(), 0);
    }
}

#[tokio::test]
async fn sources_fetched_whole_several_at_a_time_or_streamed_alone_read_the_same() {
    // GIVEN a day's change sources, listed at their sizes (fetched whole, several at a time) and
    // listed as large (streamed one by one)
    let bucket = archived_day().await;
    let changes = dataset(HistoryKind::Changes);
    let prefix = source_prefix("history", &changes, DAY);
    let keys: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with(&prefix)).collect();
    assert!(keys.len() >= 3, "{keys:?}");
    let listed = |size: Option<u64>| -> Vec<SourceObject> {
        let size_of = |key: &str| size.unwrap_or(bucket.get_bytes(key).len() as u64);
        keys.iter().map(|key| SourceObject { key: key.clone(), size: size_of(key) }).collect()
    };
    let (whole, streamed) = (listed(None), listed(Some(u64::MAX)));
    let lines: u64 = keys.iter().map(|key| bucket.text(key).lines().count() as u64).sum();
    // WHEN each is sorted THEN every line of every source is in the sort, either way
    for sources in [&whole, &streamed] {
        let sort = sort_sources(&bucket, &config(), &changes, sources).await.unwrap();
        assert_eq!(sort.lines(), lines);
    }
    // AND a damaged source stops either read with the same error, naming the object and line
    let victim = &keys[1];
    let text = bucket.text(victim);
    for (body, says) in
        [(gzip(&text.replacen('{', "{oops", 1)), "line 1: not JSON"), (b"plain text\n".to_vec(), "line 1: not gzip")]
    {
        bucket.replace(victim, Some(body));
        for sources in [&whole, &streamed] {
            let err = sort_sources(&bucket, &config(), &changes, sources).await.err().map(|e| e.to_string());
            assert!(err.as_deref().is_some_and(|e| e.contains(victim.as_str()) && e.contains(says)), "{err:?}");
        }
    }
    // AND a source gone since it was listed is named as such
    bucket.replace(victim, None);
    let gone = sort_sources(&bucket, &config(), &changes, &whole).await.err().map(|e| e.to_string());
    assert!(gone.is_some_and(|e| e.contains("listed, then gone before it was read")));
}

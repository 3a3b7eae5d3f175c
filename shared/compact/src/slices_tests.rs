//! A day split into slices on the in-memory twins: compacted here or by tasks from a queue, in
//! any order, it is the same lines once; the day is published only when its last slice is; a
//! task delivered again, or of a split since replaced, does nothing; a corrupt source stops its
//! slice and the day stays unpublished.

use std::sync::Mutex;

use session_archiver::history::memory::MemoryBucket;
use session_archiver::history::{HistoryKind, ListedObject};
use session_archiver::{Error, Result, ServiceId};

use crate::columns::{read_parquet, Row};
use crate::dataset::CompactionConfig;
use crate::day::compact_day;
use crate::day_tests::{archived_day, config, dataset, gzip, json_rows, sorted, DAY, SERVICE};
use crate::keys::{marker_key, parquet_prefix, source_prefix, staging_prefix, Marker};
use crate::slices::{compact_slice, split_into_slices, InThisInvocation, SliceOutcome, SliceTask, TaskQueue};

/// The tasks a splitting queued.
#[derive(Default)]
struct MemoryTaskQueue {
    sent: Mutex<Vec<SliceTask>>,
}

impl TaskQueue for MemoryTaskQueue {
    fn queues(&self) -> bool {
        true
    }

    async fn send(&self, tasks: &[SliceTask]) -> Result<()> {
        self.sent.lock().unwrap().extend(tasks.iter().cloned());
        Ok(())
    }
}

impl MemoryTaskQueue {
    fn take(&self) -> Vec<SliceTask> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// Parts of about two source objects each.
fn split_config(bucket: &MemoryBucket) -> CompactionConfig {
    let prefix = source_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let largest = bucket.keys().iter().filter(|k| k.starts_with(&prefix)).map(|k| bucket.get_bytes(k).len()).max();
    CompactionConfig { slice_source_bytes: 2 * largest.unwrap() as u64, ..config() }
}

fn marker(bucket: &MemoryBucket, kind: HistoryKind) -> Option<Marker> {
    let key = marker_key("history", &dataset(kind), DAY);
    bucket.keys().contains(&key).then(|| serde_json::from_str(&bucket.text_plain(&key)).unwrap())
}

/// Every row of the day's Parquet objects of `kind`, as its marker names them.
fn published_rows(bucket: &MemoryBucket, kind: HistoryKind) -> Vec<Row> {
    let marker = marker(bucket, kind).expect("the day is published");
    let objects = marker.objects.iter().flat_map(|o| read_parquet(&dataset(kind), bucket.get_bytes(&o.key)).unwrap());
    objects.collect()
}

/// The keys under the day's Parquet partition and its staging.
fn compacted_keys(bucket: &MemoryBucket, kind: HistoryKind) -> Vec<String> {
    let (partition, staging) =
        (parquet_prefix("history", &dataset(kind), DAY), staging_prefix("history", &dataset(kind), DAY));
    bucket.keys().into_iter().filter(|k| k.starts_with(&partition) || k.starts_with(&staging)).collect()
}

fn listed(sizes: &[u64]) -> Vec<ListedObject> {
    sizes.iter().enumerate().map(|(n, size)| ListedObject { key: format!("k{n}"), size: *size }).collect()
}

#[test]
fn sources_split_in_key_order_into_parts_of_at_most_the_budget_and_a_larger_one_alone() {
    let keys = |slices: Vec<Vec<ListedObject>>| -> Vec<Vec<String>> {
        slices.into_iter().map(|p| p.into_iter().map(|o| o.key).collect()).collect()
    };
    assert_eq!(
        keys(split_into_slices(&listed(&[4, 4, 2, 9, 1, 1]), 8)),
        [vec!["k0", "k1"], vec!["k2"], vec!["k3"], vec!["k4", "k5"]]
    );
    assert_eq!(keys(split_into_slices(&listed(&[1, 1, 1]), 100)), [vec!["k0", "k1", "k2"]]);
    assert!(split_into_slices(&[], 8).is_empty());
}

#[tokio::test]
async fn a_day_over_the_slice_size_is_compacted_in_slices_each_line_once() {
    // GIVEN a day of more sources than one slice takes
    let bucket = archived_day().await;
    let config = split_config(&bucket);
    // WHEN it is compacted with no queue
    let outcome = compact_day(&bucket, &config, &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN each dataset is several Parquet objects that hold every JSON line once
    for kind in [HistoryKind::Snapshots, HistoryKind::Changes] {
        let marker = marker(&bucket, kind).unwrap();
        assert!(marker.objects.len() >= 2 && marker.split.is_some(), "{kind:?}: {marker:?}");
        assert_eq!(sorted(published_rows(&bucket, kind)), sorted(json_rows(&bucket, kind)), "{kind:?}");
        // AND the staging is cleared: only the slices and the marker are left
        let names: Vec<String> =
            compacted_keys(&bucket, kind).iter().map(|k| k.rsplit('/').next().unwrap().into()).collect();
        let mut expected: Vec<String> = (0..marker.objects.len()).map(|n| format!("part-{n:05}.parquet")).collect();
        expected.insert(0, "_compacted.json".into());
        assert_eq!(names, expected, "{kind:?}");
    }
    assert!(outcome.datasets.iter().all(|d| d.rows > 0 && d.queued_slices == 0), "{outcome:?}");
    assert!(bucket.tags().len() == bucket.keys().iter().filter(|k| k.ends_with(".jsonl.gz")).count());
    // WHEN it is compacted again
    let before = bucket.snapshot();
    let rerun = compact_day(&bucket, &config, &InThisInvocation, SERVICE, DAY).await.unwrap();
    // THEN nothing changes
    assert!(rerun.datasets.iter().all(|d| d.already_compacted), "{rerun:?}");
    assert_eq!(bucket.snapshot(), before);
}

#[tokio::test]
async fn queued_slices_publish_the_day_when_the_last_one_is_done_whatever_their_order() {
    // GIVEN a day compacted whole, then split again in slices after a late source
    let bucket = archived_day().await;
    compact_day(&bucket, &config(), &InThisInvocation, SERVICE, DAY).await.unwrap();
    let source = source_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let first = bucket.keys().into_iter().find(|k| k.starts_with(&source)).unwrap();
    bucket.replace(&format!("{source}333333333333.us-east-1.run-late.jsonl.gz"), Some(bucket.get_bytes(&first)));
    let (config, queue) = (split_config(&bucket), MemoryTaskQueue::default());
    let outcome = compact_day(&bucket, &config, &queue, SERVICE, DAY).await.unwrap();
    // THEN the snapshots' tasks are queued, and their marker is gone (readers take the NDJSON)
    let mut tasks = queue.take();
    assert!(tasks.len() >= 2 && tasks.len() == outcome.datasets[0].queued_slices, "{outcome:?}");
    assert!(outcome.datasets[1].already_compacted, "the changes have no late source");
    assert!(marker(&bucket, HistoryKind::Snapshots).is_none());
    let published = parquet_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let before: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with(&published)).collect();
    // WHEN the tasks are delivered, the last first
    tasks.reverse();
    let last = tasks.pop().unwrap();
    for task in &tasks {
        let outcome = compact_slice(&bucket, &config, task).await.unwrap();
        // THEN each is written to the staging, and the day's partition is untouched meanwhile
        assert!(matches!(outcome, SliceOutcome::Written { .. }), "{outcome:?}");
        let now: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with(&published)).collect();
        assert_eq!(now, before);
    }
    // WHEN the last is delivered
    let outcome = compact_slice(&bucket, &config, &last).await.unwrap();
    // THEN the day is published with every line, the late source's too
    let SliceOutcome::Finished(dataset_outcome) = outcome else { panic!("{outcome:?}") };
    let rows = sorted(json_rows(&bucket, HistoryKind::Snapshots));
    assert_eq!(dataset_outcome.rows, rows.len() as u64);
    assert_eq!(sorted(published_rows(&bucket, HistoryKind::Snapshots)), rows);
    // WHEN a task is delivered again
    let before = bucket.snapshot();
    let again = compact_slice(&bucket, &config, &last).await.unwrap();
    // THEN it does nothing
    assert_eq!(again, SliceOutcome::Superseded);
    assert_eq!(bucket.snapshot(), before);
}

#[tokio::test]
async fn a_task_of_a_replaced_split_does_nothing() {
    // GIVEN a day split in slices, then split again after a late source
    let bucket = archived_day().await;
    let (config, queue) = (split_config(&bucket), MemoryTaskQueue::default());
    compact_day(&bucket, &config, &queue, SERVICE, DAY).await.unwrap();
    let stale = queue.take();
    let source = source_prefix("history", &dataset(HistoryKind::Changes), DAY);
    let first = bucket.keys().into_iter().find(|k| k.starts_with(&source)).unwrap();
    bucket.replace(&format!("{source}333333333333.us-east-1.run-late.jsonl.gz"), Some(bucket.get_bytes(&first)));
    compact_day(&bucket, &config, &queue, SERVICE, DAY).await.unwrap();
    let current = queue.take();
    // WHEN a task of the first split is delivered
    let changes = |tasks: &[SliceTask]| tasks.iter().find(|t| t.kind == "changes").cloned().unwrap();
    let before = bucket.snapshot();
    let outcome = compact_slice(&bucket, &config, &changes(&stale)).await.unwrap();
    // THEN it does nothing
    assert_eq!(outcome, SliceOutcome::Superseded);
    assert_eq!(bucket.snapshot(), before);
    // AND the current split's tasks publish the day
    for task in &current {
        compact_slice(&bucket, &config, task).await.unwrap();
    }
    let kind = HistoryKind::Changes;
    assert_eq!(sorted(published_rows(&bucket, kind)), sorted(json_rows(&bucket, kind)));
}

#[tokio::test]
async fn a_corrupt_source_stops_its_slice_naming_the_object_and_line_and_the_day_stays_unpublished() {
    // GIVEN a day split in slices, one of its snapshot objects damaged on its first line
    let bucket = archived_day().await;
    let (config, queue) = (split_config(&bucket), MemoryTaskQueue::default());
    let source = source_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    let victim = bucket.keys().into_iter().rfind(|k| k.starts_with(&source)).unwrap();
    bucket.replace(&victim, Some(gzip("{oops\n")));
    compact_day(&bucket, &config, &queue, SERVICE, DAY).await.unwrap();
    // WHEN every snapshot task is delivered
    let mut failures = Vec::new();
    for task in queue.take().iter().filter(|t| t.kind == "snapshots") {
        if let Err(err) = compact_slice(&bucket, &config, task).await {
            failures.push(err);
        }
    }
    // THEN the slice holding it fails for good, naming the object and the line
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(matches!(&failures[0], Error::UnreadableHistory { .. }) && !failures[0].is_retryable());
    let message = failures[0].to_string();
    assert!(message.contains(&victim) && message.contains("line 1: not JSON"), "{message}");
    // AND the day is not published: no marker, nothing in its partition, nothing tagged
    let partition = parquet_prefix("history", &dataset(HistoryKind::Snapshots), DAY);
    assert!(marker(&bucket, HistoryKind::Snapshots).is_none());
    assert!(!bucket.keys().iter().any(|k| k.starts_with(&partition)));
    assert!(!bucket.tags().keys().any(|k| k.starts_with(&source)));
    assert_eq!(bucket.open_uploads(), 0);
}

#[test]
fn a_task_message_that_is_not_one_is_refused_naming_what_is_wrong() {
    let valid = r#"{"compact_part": {"service": "ivs-stream-sessions", "kind": "changes", "day": "2026-11-22", "plan": "ab", "part": 2}}"#;
    let task = SliceTask::parse(valid).unwrap();
    assert_eq!((task.service, task.slice), (ServiceId::IvsStreamSessions, 2));
    assert_eq!(SliceTask::parse(&task.body()).unwrap(), task);
    for (body, expected) in [
        (r#"{"compact": {"day": "2026-11-22"}}"#, "unknown field `compact`"),
        (&valid.replace("changes", "sessions"), "`kind` `sessions` is neither snapshots nor changes"),
        (&valid.replace("\"part\": 2", "\"part\": -1"), "invalid value: integer `-1`"),
        (&valid.replace("}}", ", \"extra\": 1}}"), "unknown field `extra`"),
        (&valid.replace("ivs-stream-sessions", "ivs"), "unknown variant `ivs`"),
    ] {
        let err = SliceTask::parse(body).unwrap_err();
        assert!(matches!(err, Error::Event(_)) && err.to_string().contains(expected), "{body}: {err}");
    }
}

#[tokio::test]
async fn a_task_naming_a_slice_its_split_does_not_have_is_refused() {
    // GIVEN a day split in slices
    let bucket = archived_day().await;
    let (config, queue) = (split_config(&bucket), MemoryTaskQueue::default());
    compact_day(&bucket, &config, &queue, SERVICE, DAY).await.unwrap();
    let mut task = queue.take().remove(0);
    // WHEN a task names a slice past its split's last
    task.slice = 99;
    let err = compact_slice(&bucket, &config, &task).await.unwrap_err();
    // THEN it is refused, naming the split and its slices
    assert!(matches!(err, Error::Event(_)) && err.to_string().contains("`part` 99 is not a part of plan"), "{err}");
}

//! A day too large for one invocation: its sources split, in key order, into slices of at most
//! `slice_source_bytes`, each compacted by a task of its own on the compaction queue (SQS, and
//! Lambda's event source mapping delivering the tasks to the compactor), the last to finish
//! publishing the day. With a queue, every day goes this way (one slice for most), so the
//! invocation that splits the days only lists and splits; without one, a day of one slice is
//! compacted whole (`crate::day`) and one of several slice after slice.
//!
//! The split (`<prefix>/parquet/_staging/<kind>/<service>/dt=<day>/split.json`) names the slices'
//! sources; its id is a digest of them, so splitting the same sources again gives the same split
//! and the same tasks. A task reads its slice's sources whole, then writes the slice's Parquet and
//! a record of it under the split's staging prefix, which no table reads. The task that finds
//! every slice recorded copies the slices to `slice-NNNNN.parquet` in the day's partition, deletes
//! what an earlier compaction left there, writes the marker, tags the sources and clears the
//! staging. A task whose split is gone or replaced (the day split again, or compacted whole)
//! does nothing.

use std::future::Future;

use serde::{Deserialize, Serialize};
use session_archiver::aws::sqs::SqsSender;
use session_archiver::history::{Bucket, HistoryKind, ListedObject, ObjectListing};
use session_archiver::{Error, Result, ServiceId};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::columns::Dataset;
use crate::dataset::{
    delete_stale_parquet, sort_sources, source_of, tag_sources, write_marker, write_parquet, CompactionConfig,
    DatasetOutcome,
};
use crate::keys::{
    marker_key, parquet_key, parquet_prefix, record_key, split_key, staged_key, staging_prefix, CompactedObject,
    SourceObject,
};

/// The format of a split, `plan.json` (its name and format from when a split was called a plan).
pub const SPLIT_FORMAT: &str = "session-archiver/compaction-plan";
pub const SPLIT_VERSION: u32 = 1;

/// How a dataset's day is split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub format: String,
    pub version: u32,
    /// A digest of the slices' sources.
    pub id: String,
    pub service: ServiceId,
    pub kind: String,
    pub day: String,
    #[serde(rename = "parts")]
    pub slices: Vec<Vec<SourceObject>>,
}

/// One slice of a split to compact: a message on the compaction queue,
/// `{"compact_part": {"service", "kind", "day", "plan", "part"}}` (the wire's names: a split's id is
/// `plan`, a slice's index `part`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceTask {
    pub service: ServiceId,
    pub kind: String,
    pub day: String,
    #[serde(rename = "plan")]
    pub split: String,
    #[serde(rename = "part")]
    pub slice: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SliceMessage {
    compact_part: SliceTask,
}

impl SliceTask {
    /// The task a queue message carries, or why it is not one.
    pub fn parse(body: &str) -> Result<Self> {
        let message: SliceMessage = serde_json::from_str(body).map_err(|e| {
            Error::Event(format!(
                "expected {{\"compact_part\": {{\"service\", \"kind\", \"day\", \"plan\", \"part\"}}}}: {e}"
            ))
        })?;
        let task = message.compact_part;
        task.dataset()?;
        Ok(task)
    }

    pub fn body(&self) -> String {
        serde_json::to_string(&SliceMessage { compact_part: self.clone() }).expect("a task serializes")
    }

    fn dataset(&self) -> Result<Dataset> {
        let kind = HistoryKind::parse(&self.kind).ok_or_else(|| {
            Error::Event(format!("compact_part `kind` `{}` is neither snapshots nor changes", self.kind))
        })?;
        Ok(Dataset { service: self.service, kind })
    }
}

/// Where the slices' tasks go.
pub trait TaskQueue: Send + Sync {
    /// Whether there is a queue: then every dataset to compact goes to it, so the invocation that
    /// splits a day (five services' days, on the schedule) only lists and splits.
    fn queues(&self) -> bool;
    fn send(&self, tasks: &[SliceTask]) -> impl Future<Output = Result<()>> + Send;
}

/// No queue: a dataset is compacted in the invocation, its slices one after the other.
pub struct InThisInvocation;

impl TaskQueue for InThisInvocation {
    fn queues(&self) -> bool {
        false
    }

    async fn send(&self, _: &[SliceTask]) -> Result<()> {
        Err(Error::Mapping("no queue to send compaction tasks to".into()))
    }
}

/// The compaction queue on SQS.
pub struct SqsTaskQueue {
    pub queue: SqsSender,
    pub url: String,
}

impl TaskQueue for SqsTaskQueue {
    fn queues(&self) -> bool {
        true
    }

    async fn send(&self, tasks: &[SliceTask]) -> Result<()> {
        self.queue.send_bodies(&self.url, tasks.iter().map(SliceTask::body).collect()).await
    }
}

/// What a task did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceOutcome {
    /// Its split is gone or replaced: nothing to do.
    Superseded,
    /// Its slice is written; `recorded` of `slices` are.
    Written { recorded: usize, slices: usize },
    /// Its slice was the last: the day is published.
    Finished(DatasetOutcome),
}

/// Sources, in key order, in slices of at most `slice_source_bytes` (a larger source is a slice of
/// its own).
pub fn split_into_slices(sources: &[ListedObject], slice_source_bytes: u64) -> Vec<Vec<ListedObject>> {
    let mut slices: Vec<Vec<ListedObject>> = Vec::new();
    let mut bytes = 0;
    for source in sources {
        match slices.last_mut() {
            Some(slice) if bytes + source.size <= slice_source_bytes => {
                slice.push(source.clone());
                bytes += source.size;
            }
            _ => {
                slices.push(vec![source.clone()]);
                bytes = source.size;
            }
        }
    }
    slices
}

/// What a written slice holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SliceRecord {
    rows: u64,
    bytes: u64,
}

fn split_of(dataset: &Dataset, day: &str, slices: Vec<Vec<ListedObject>>) -> Split {
    let mut digest = Sha256::new();
    for (index, slice) in slices.iter().enumerate() {
        for source in slice {
            digest.update(format!("{index}\t{}\t{}\n", source.key, source.size));
        }
    }
    let id: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    Split {
        format: SPLIT_FORMAT.into(),
        version: SPLIT_VERSION,
        id,
        service: dataset.service,
        kind: dataset.kind.as_str().into(),
        day: day.into(),
        slices: slices.iter().map(|slice| slice.iter().map(source_of).collect()).collect(),
    }
}

/// Plans the dataset's day in slices: the marker goes (readers go back to the NDJSON), the split
/// is written, and its tasks are queued, or compacted here when there is no queue.
pub async fn compact_in_slices<O: Bucket + ObjectListing, Q: TaskQueue>(
    bucket: &O,
    config: &CompactionConfig,
    queue: &Q,
    dataset: &Dataset,
    day: &str,
    sources: &[ListedObject],
) -> Result<DatasetOutcome> {
    let prefix = &config.history_prefix;
    let split = split_of(dataset, day, split_into_slices(sources, config.slice_source_bytes));
    bucket.delete_object(&marker_key(prefix, dataset, day)).await?;
    bucket
        .put_object(&split_key(prefix, dataset, day), serde_json::to_vec_pretty(&split).expect("a split serializes"))
        .await?;
    let tasks: Vec<SliceTask> = (0..split.slices.len())
        .map(|slice| SliceTask {
            service: dataset.service,
            kind: dataset.kind.as_str().into(),
            day: day.into(),
            split: split.id.clone(),
            slice,
        })
        .collect();
    info!(service = %dataset.service, kind = dataset.kind.as_str(), day, split = split.id, slices = tasks.len(), "day split into slices");
    if queue.queues() {
        queue.send(&tasks).await?;
        return Ok(DatasetOutcome {
            kind: dataset.kind.as_str(),
            sources: sources.len(),
            source_bytes: sources.iter().map(|s| s.size).sum(),
            rows: 0,
            parquet_bytes: 0,
            already_compacted: false,
            sources_expired: 0,
            queued_slices: tasks.len(),
        });
    }
    let mut last = None;
    for task in &tasks {
        last = Some(compact_slice(bucket, config, task).await?);
    }
    match last {
        Some(SliceOutcome::Finished(outcome)) => Ok(outcome),
        other => {
            Err(Error::Mapping(format!("the last slice of split {} did not publish the day: {other:?}", split.id)))
        }
    }
}

/// One task: its slice compacted into the staging prefix (unless a delivery before did it), then
/// the day published if every slice is.
pub async fn compact_slice<O: Bucket + ObjectListing>(
    bucket: &O,
    config: &CompactionConfig,
    task: &SliceTask,
) -> Result<SliceOutcome> {
    let dataset = task.dataset()?;
    let (prefix, day) = (&config.history_prefix, task.day.as_str());
    let Some(split) = current_split(bucket, prefix, &dataset, day, &task.split).await? else {
        info!(service = %dataset.service, kind = task.kind, day, split = task.split, "the split is gone or replaced: nothing to do");
        return Ok(SliceOutcome::Superseded);
    };
    let sources = split.slices.get(task.slice).ok_or_else(|| {
        Error::Event(format!(
            "compact_part `part` {} is not a part of plan {} ({} parts)",
            task.slice,
            split.id,
            split.slices.len()
        ))
    })?;
    let record = record_key(prefix, &dataset, day, &split.id, task.slice);
    if bucket.get_object(&record).await?.is_none() {
        let sort = sort_sources(bucket, config, &dataset, sources).await?;
        let written = match sort.lines() {
            0 => SliceRecord { rows: 0, bytes: 0 },
            _ => {
                let key = staged_key(prefix, &dataset, day, &split.id, task.slice);
                let written = write_parquet(bucket, config, &dataset, key, sort).await?;
                SliceRecord { rows: written.rows, bytes: written.bytes }
            }
        };
        bucket.put_object(&record, serde_json::to_vec(&written).expect("a record serializes")).await?;
        info!(service = %dataset.service, kind = task.kind, day, split = split.id, slice = task.slice, rows = written.rows, "slice written");
    }
    publish_if_complete(bucket, config, &dataset, day, &split).await
}

/// The split, if it is still `id`.
async fn current_split<O: Bucket>(
    bucket: &O,
    prefix: &str,
    dataset: &Dataset,
    day: &str,
    id: &str,
) -> Result<Option<Split>> {
    let Some(body) = bucket.get_object(&split_key(prefix, dataset, day)).await? else { return Ok(None) };
    let split = serde_json::from_slice::<Split>(&body).ok();
    Ok(split.filter(|p| p.format == SPLIT_FORMAT && p.version == SPLIT_VERSION && p.id == id))
}

/// Publishes the day once every slice of the split is recorded: the slices copied into the day's
/// partition, what an earlier compaction left there deleted, the marker written, the sources
/// tagged and the staging cleared.
async fn publish_if_complete<O: Bucket + ObjectListing>(
    bucket: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
    split: &Split,
) -> Result<SliceOutcome> {
    let prefix = &config.history_prefix;
    let staged = bucket.list_objects(&format!("{}{}/", staging_prefix(prefix, dataset, day), split.id)).await?;
    let recorded = (0..split.slices.len())
        .filter(|&slice| staged.iter().any(|o| o.key == record_key(prefix, dataset, day, &split.id, slice)))
        .count();
    if recorded < split.slices.len() {
        return Ok(SliceOutcome::Written { recorded, slices: split.slices.len() });
    }
    // Another finish may have cleared it already, or the day been split again.
    if current_split(bucket, prefix, dataset, day, &split.id).await?.is_none() {
        return Ok(SliceOutcome::Superseded);
    }
    let mut objects = Vec::new();
    for slice in 0..split.slices.len() {
        // Gone: a task that finished at the same moment published the day and cleared the staging.
        let Some(body) = bucket.get_object(&record_key(prefix, dataset, day, &split.id, slice)).await? else {
            return Ok(SliceOutcome::Superseded);
        };
        let record: SliceRecord = serde_json::from_slice(&body)
            .map_err(|e| Error::UnreadableItem(format!("the record of slice {slice} of split {}: {e}", split.id)))?;
        if record.rows > 0 {
            let key = parquet_key(prefix, dataset, day, slice);
            let copied = bucket.copy_object(&staged_key(prefix, dataset, day, &split.id, slice), &key).await;
            if let Err(err) = copied {
                return match current_split(bucket, prefix, dataset, day, &split.id).await? {
                    None => Ok(SliceOutcome::Superseded),
                    Some(_) => Err(err),
                };
            }
            objects.push(CompactedObject { key, rows: record.rows, bytes: record.bytes });
        }
    }
    delete_stale_parquet(bucket, &parquet_prefix(prefix, dataset, day), &objects).await?;
    let sources = split.slices.iter().flatten().cloned().collect();
    let outcome = write_marker(bucket, prefix, dataset, day, sources, objects, Some(split.id.clone())).await?;
    tag_sources(bucket, split.slices.iter().flatten().map(|s| s.key.as_str())).await?;
    for object in staged {
        bucket.delete_object(&object.key).await?;
    }
    bucket.delete_object(&split_key(prefix, dataset, day)).await?;
    info!(service = %dataset.service, kind = outcome.kind, day, split = split.id, slices = split.slices.len(), rows = outcome.rows, "day compacted in slices");
    Ok(SliceOutcome::Finished(outcome))
}

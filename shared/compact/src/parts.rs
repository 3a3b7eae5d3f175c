//! A day too large for one invocation: its sources split, in key order, into parts of at most
//! `part_source_bytes`, each compacted by a task of its own on the compaction queue (SQS, and
//! Lambda's event source mapping delivering the tasks to the compactor), the last to finish
//! publishing the day. With a queue, every day goes this way (one part for most), so the
//! invocation that plans the days only lists and plans; without one, a day of one part is
//! compacted whole (`crate::day`) and one of several part after part.
//!
//! The plan (`<prefix>/parquet/_staging/<kind>/<service>/dt=<day>/plan.json`) names the parts'
//! sources; its id is a digest of them, so planning the same sources again gives the same plan
//! and the same tasks. A task reads its part's sources whole, then writes the part's Parquet and
//! a record of it under the plan's staging prefix, which no table reads. The task that finds
//! every part recorded copies the parts to `part-NNNNN.parquet` in the day's partition, deletes
//! what an earlier compaction left there, writes the marker, tags the sources and clears the
//! staging. A task whose plan is gone or replaced (the day planned again, or compacted whole)
//! does nothing.

use std::future::Future;

use serde::{Deserialize, Serialize};
use session_archiver::aws::sqs::SqsSender;
use session_archiver::history::{HistoryKind, ListedObject, ObjectListing, ObjectStore};
use session_archiver::{Error, Result, ServiceId};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::columns::Dataset;
use crate::dataset::{
    delete_stale_parquet, sort_sources, source_of, tag_sources, write_marker, write_parquet, CompactionConfig,
    DatasetOutcome,
};
use crate::keys::{
    marker_key, parquet_key, parquet_prefix, plan_key, record_key, staged_key, staging_prefix, CompactedObject,
    SourceObject,
};

pub const PLAN_FORMAT: &str = "session-archiver/compaction-plan";
pub const PLAN_VERSION: u32 = 1;

/// How a dataset's day is split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    pub version: u32,
    /// A digest of the parts' sources.
    pub id: String,
    pub service: ServiceId,
    pub kind: String,
    pub day: String,
    pub parts: Vec<Vec<SourceObject>>,
}

/// One part of a plan to compact: a message on the compaction queue,
/// `{"compact_part": {"service", "kind", "day", "plan", "part"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartTask {
    pub service: ServiceId,
    pub kind: String,
    pub day: String,
    pub plan: String,
    pub part: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartMessage {
    compact_part: PartTask,
}

impl PartTask {
    /// The task a queue message carries, or why it is not one.
    pub fn parse(body: &str) -> Result<Self> {
        let message: PartMessage = serde_json::from_str(body).map_err(|e| {
            Error::Event(format!(
                "expected {{\"compact_part\": {{\"service\", \"kind\", \"day\", \"plan\", \"part\"}}}}: {e}"
            ))
        })?;
        let task = message.compact_part;
        task.dataset()?;
        Ok(task)
    }

    pub fn body(&self) -> String {
        serde_json::to_string(&PartMessage { compact_part: self.clone() }).expect("a task serializes")
    }

    fn dataset(&self) -> Result<Dataset> {
        let kind = HistoryKind::parse(&self.kind).ok_or_else(|| {
            Error::Event(format!("compact_part `kind` `{}` is neither snapshots nor changes", self.kind))
        })?;
        Ok(Dataset { service: self.service, kind })
    }
}

/// Where the parts' tasks go.
pub trait TaskQueue: Send + Sync {
    /// Whether there is a queue: then every dataset to compact goes to it, so the invocation that
    /// plans a day (five services' days, on the schedule) only lists and plans.
    fn queues(&self) -> bool;
    fn send(&self, tasks: &[PartTask]) -> impl Future<Output = Result<()>> + Send;
}

/// No queue: a dataset is compacted in the invocation, its parts one after the other.
pub struct InThisInvocation;

impl TaskQueue for InThisInvocation {
    fn queues(&self) -> bool {
        false
    }

    async fn send(&self, _: &[PartTask]) -> Result<()> {
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

    async fn send(&self, tasks: &[PartTask]) -> Result<()> {
        self.queue.send_bodies(&self.url, tasks.iter().map(PartTask::body).collect()).await
    }
}

/// What a task did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartOutcome {
    /// Its plan is gone or replaced: nothing to do.
    Superseded,
    /// Its part is written; `recorded` of `parts` are.
    Written { recorded: usize, parts: usize },
    /// Its part was the last: the day is published.
    Finished(DatasetOutcome),
}

/// Sources, in key order, in parts of at most `part_source_bytes` (a larger source is a part of
/// its own).
pub fn split_into_parts(sources: &[ListedObject], part_source_bytes: u64) -> Vec<Vec<ListedObject>> {
    let mut parts: Vec<Vec<ListedObject>> = Vec::new();
    let mut bytes = 0;
    for source in sources {
        match parts.last_mut() {
            Some(part) if bytes + source.size <= part_source_bytes => {
                part.push(source.clone());
                bytes += source.size;
            }
            _ => {
                parts.push(vec![source.clone()]);
                bytes = source.size;
            }
        }
    }
    parts
}

/// What a written part holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartRecord {
    rows: u64,
    bytes: u64,
}

fn plan_of(dataset: &Dataset, day: &str, parts: Vec<Vec<ListedObject>>) -> Plan {
    let mut digest = Sha256::new();
    for (index, part) in parts.iter().enumerate() {
        for source in part {
            digest.update(format!("{index}\t{}\t{}\n", source.key, source.size));
        }
    }
    let id: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    Plan {
        format: PLAN_FORMAT.into(),
        version: PLAN_VERSION,
        id,
        service: dataset.service,
        kind: dataset.kind.as_str().into(),
        day: day.into(),
        parts: parts.iter().map(|part| part.iter().map(source_of).collect()).collect(),
    }
}

/// Plans the dataset's day in parts: the marker goes (readers go back to the NDJSON), the plan
/// is written, and its tasks are queued, or compacted here when there is no queue.
pub async fn compact_in_parts<O: ObjectStore + ObjectListing, Q: TaskQueue>(
    store: &O,
    config: &CompactionConfig,
    queue: &Q,
    dataset: &Dataset,
    day: &str,
    sources: &[ListedObject],
) -> Result<DatasetOutcome> {
    let prefix = &config.history_prefix;
    let plan = plan_of(dataset, day, split_into_parts(sources, config.part_source_bytes));
    store.delete_object(&marker_key(prefix, dataset, day)).await?;
    store
        .put_object(&plan_key(prefix, dataset, day), serde_json::to_vec_pretty(&plan).expect("a plan serializes"))
        .await?;
    let tasks: Vec<PartTask> = (0..plan.parts.len())
        .map(|part| PartTask {
            service: dataset.service,
            kind: dataset.kind.as_str().into(),
            day: day.into(),
            plan: plan.id.clone(),
            part,
        })
        .collect();
    info!(service = %dataset.service, kind = dataset.kind.as_str(), day, plan = plan.id, parts = tasks.len(), "day split into parts");
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
            queued_parts: tasks.len(),
        });
    }
    let mut last = None;
    for task in &tasks {
        last = Some(compact_part(store, config, task).await?);
    }
    match last {
        Some(PartOutcome::Finished(outcome)) => Ok(outcome),
        other => Err(Error::Mapping(format!("the last part of plan {} did not publish the day: {other:?}", plan.id))),
    }
}

/// One task: its part compacted into the staging prefix (unless a delivery before did it), then
/// the day published if every part is.
pub async fn compact_part<O: ObjectStore + ObjectListing>(
    store: &O,
    config: &CompactionConfig,
    task: &PartTask,
) -> Result<PartOutcome> {
    let dataset = task.dataset()?;
    let (prefix, day) = (&config.history_prefix, task.day.as_str());
    let Some(plan) = current_plan(store, prefix, &dataset, day, &task.plan).await? else {
        info!(service = %dataset.service, kind = task.kind, day, plan = task.plan, "the plan is gone or replaced: nothing to do");
        return Ok(PartOutcome::Superseded);
    };
    let sources = plan.parts.get(task.part).ok_or_else(|| {
        Error::Event(format!(
            "compact_part `part` {} is not a part of plan {} ({} parts)",
            task.part,
            plan.id,
            plan.parts.len()
        ))
    })?;
    let record = record_key(prefix, &dataset, day, &plan.id, task.part);
    if store.get_object(&record).await?.is_none() {
        let keys: Vec<&str> = sources.iter().map(|s| s.key.as_str()).collect();
        let sort = sort_sources(store, config, &dataset, &keys).await?;
        let written = match sort.lines() {
            0 => PartRecord { rows: 0, bytes: 0 },
            _ => {
                let key = staged_key(prefix, &dataset, day, &plan.id, task.part);
                let written = write_parquet(store, config, &dataset, key, sort).await?;
                PartRecord { rows: written.rows, bytes: written.bytes }
            }
        };
        store.put_object(&record, serde_json::to_vec(&written).expect("a record serializes")).await?;
        info!(service = %dataset.service, kind = task.kind, day, plan = plan.id, part = task.part, rows = written.rows, "part written");
    }
    publish_if_complete(store, config, &dataset, day, &plan).await
}

/// The plan, if it is still `id`.
async fn current_plan<O: ObjectStore>(
    store: &O,
    prefix: &str,
    dataset: &Dataset,
    day: &str,
    id: &str,
) -> Result<Option<Plan>> {
    let Some(body) = store.get_object(&plan_key(prefix, dataset, day)).await? else { return Ok(None) };
    let plan = serde_json::from_slice::<Plan>(&body).ok();
    Ok(plan.filter(|p| p.format == PLAN_FORMAT && p.version == PLAN_VERSION && p.id == id))
}

/// Publishes the day once every part of the plan is recorded: the parts copied into the day's
/// partition, what an earlier compaction left there deleted, the marker written, the sources
/// tagged and the staging cleared.
async fn publish_if_complete<O: ObjectStore + ObjectListing>(
    store: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
    plan: &Plan,
) -> Result<PartOutcome> {
    let prefix = &config.history_prefix;
    let staged = store.list_objects(&format!("{}{}/", staging_prefix(prefix, dataset, day), plan.id)).await?;
    let recorded = (0..plan.parts.len())
        .filter(|&part| staged.iter().any(|o| o.key == record_key(prefix, dataset, day, &plan.id, part)))
        .count();
    if recorded < plan.parts.len() {
        return Ok(PartOutcome::Written { recorded, parts: plan.parts.len() });
    }
    // Another finish may have cleared it already, or the day been planned again.
    if current_plan(store, prefix, dataset, day, &plan.id).await?.is_none() {
        return Ok(PartOutcome::Superseded);
    }
    let mut objects = Vec::new();
    for part in 0..plan.parts.len() {
        // Gone: a task that finished at the same moment published the day and cleared the staging.
        let Some(body) = store.get_object(&record_key(prefix, dataset, day, &plan.id, part)).await? else {
            return Ok(PartOutcome::Superseded);
        };
        let record: PartRecord = serde_json::from_slice(&body)
            .map_err(|e| Error::UnreadableItem(format!("the record of part {part} of plan {}: {e}", plan.id)))?;
        if record.rows > 0 {
            let key = parquet_key(prefix, dataset, day, part);
            let copied = store.copy_object(&staged_key(prefix, dataset, day, &plan.id, part), &key).await;
            if let Err(err) = copied {
                return match current_plan(store, prefix, dataset, day, &plan.id).await? {
                    None => Ok(PartOutcome::Superseded),
                    Some(_) => Err(err),
                };
            }
            objects.push(CompactedObject { key, rows: record.rows, bytes: record.bytes });
        }
    }
    delete_stale_parquet(store, &parquet_prefix(prefix, dataset, day), &objects).await?;
    let sources = plan.parts.iter().flatten().cloned().collect();
    let outcome = write_marker(store, prefix, dataset, day, sources, objects, Some(plan.id.clone())).await?;
    tag_sources(store, plan.parts.iter().flatten().map(|s| s.key.as_str())).await?;
    for object in staged {
        store.delete_object(&object.key).await?;
    }
    store.delete_object(&plan_key(prefix, dataset, day)).await?;
    info!(service = %dataset.service, kind = outcome.kind, day, plan = plan.id, parts = plan.parts.len(), rows = outcome.rows, "day compacted in parts");
    Ok(PartOutcome::Finished(outcome))
}

//! The compaction of one day of one service: for its snapshots and its changes, every source
//! object of the `dt` partition is read and checked line by line, sorted, and written as one
//! Parquet object, then a marker naming the sources and the objects. A dataset of more than
//! `slice_source_bytes` of sources is split into slices instead (`crate::slices`). A day some of
//! whose compacted sources are gone (expired) is never compacted again.
//!
//! Nothing is written until every source of the day has been read whole: a corrupt or truncated
//! object stops the compaction, naming the object and the line, and the day stays as it was. A
//! day whose marker already names the same sources is left alone, so a rerun changes nothing;
//! otherwise the marker goes first and comes back last, so a reader that goes by it (the
//! `session-audit` CLI) never reads a day half-compacted.

use serde::Serialize;
use session_archiver::history::{Bucket, HistoryKind, ListedObject, ObjectListing};
use session_archiver::{Result, ServiceId};
use tracing::{info, warn};

use crate::columns::Dataset;
use crate::dataset::{
    delete_stale_parquet, read_marker, sort_sources, source_of, tag_sources, write_marker, write_parquet,
    CompactionConfig, DatasetOutcome,
};
use crate::keys::{marker_key, parquet_key, parquet_prefix, source_prefix, split_key, CompactedObject, SourceObject};
use crate::slices::{compact_in_slices, split_into_slices, TaskQueue};
use crate::sort::ExternalSort;

/// What the compaction of one day of one service did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayOutcome {
    pub service: ServiceId,
    pub day: String,
    pub datasets: Vec<DatasetOutcome>,
}

/// Compacts `day` of `service`: its snapshots, then its changes. With a queue, each dataset to
/// compact is split into slices whose tasks go to it (`crate::slices`); without one, a dataset of
/// more than one slice's sources is compacted here slice after slice, any other whole.
pub async fn compact_day<O: Bucket + ObjectListing, Q: TaskQueue>(
    bucket: &O,
    config: &CompactionConfig,
    tasks: &Q,
    service: ServiceId,
    day: &str,
) -> Result<DayOutcome> {
    let datasets = HistoryKind::ALL.map(|kind| Dataset { service, kind });
    let mut surveys = Vec::new();
    for dataset in datasets {
        surveys.push(survey(bucket, config, &dataset, day).await?);
    }
    // Every source of the datasets compacted here read and sorted before anything is written.
    let mut sorted = Vec::new();
    for (dataset, survey) in datasets.iter().zip(&surveys) {
        sorted.push(match survey {
            Survey::Pending(sources)
                if !tasks.queues() && split_into_slices(sources, config.slice_source_bytes).len() <= 1 =>
            {
                let sources: Vec<SourceObject> = sources.iter().map(source_of).collect();
                Some(sort_sources(bucket, config, dataset, &sources).await?)
            }
            _ => None,
        });
    }
    let mut outcomes = Vec::new();
    for ((dataset, survey), sort) in datasets.iter().zip(surveys).zip(sorted) {
        let outcome = match (survey, sort) {
            (Survey::Done(outcome, sources), _) => {
                // Again on a rerun: a tagging cut short is finished then.
                tag_sources(bucket, sources.iter().map(|s| s.key.as_str())).await?;
                outcome
            }
            (Survey::Pending(sources), Some(sort)) => {
                let outcome = write_dataset(bucket, config, dataset, day, &sources, sort).await?;
                tag_sources(bucket, sources.iter().map(|s| s.key.as_str())).await?;
                outcome
            }
            (Survey::Pending(sources), None) => {
                compact_in_slices(bucket, config, tasks, dataset, day, &sources).await?
            }
        };
        outcomes.push(outcome);
    }
    Ok(DayOutcome { service, day: day.to_owned(), datasets: outcomes })
}

/// A dataset's day, listed.
enum Survey {
    /// Compacted from these very sources already, or some of them are gone.
    Done(DatasetOutcome, Vec<ListedObject>),
    /// To compact from these sources.
    Pending(Vec<ListedObject>),
}

/// Lists the dataset's sources and reads its marker: whether the day is to be compacted.
async fn survey<O: Bucket + ObjectListing>(
    bucket: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
) -> Result<Survey> {
    let prefix = source_prefix(&config.history_prefix, dataset, day);
    let sources: Vec<ListedObject> =
        bucket.list_objects(&prefix).await?.into_iter().filter(|o| o.key.ends_with(".jsonl.gz")).collect();
    let source_bytes = sources.iter().map(|o| o.size).sum();
    let Some(marker) = read_marker(bucket, &marker_key(&config.history_prefix, dataset, day)).await? else {
        return Ok(Survey::Pending(sources));
    };
    let listed: Vec<SourceObject> = sources.iter().map(source_of).collect();
    // A source the compaction read and that is gone now (expired once compacted,
    // `CompactedNdjsonRetentionDays`): compacting again would lose its lines, so the day's
    // Parquet stays as it is.
    let expired = marker.sources.iter().filter(|s| !listed.iter().any(|l| l.key == s.key)).count();
    if marker.sources != listed && expired == 0 {
        return Ok(Survey::Pending(sources));
    }
    if expired > 0 {
        warn!(service = %dataset.service, kind = dataset.kind.as_str(), day, expired, "sources of the compacted day are gone: its Parquet is kept as it is");
    } else {
        info!(service = %dataset.service, kind = dataset.kind.as_str(), day, "already compacted from the same sources");
    }
    let outcome = DatasetOutcome {
        kind: dataset.kind.as_str(),
        sources: sources.len(),
        source_bytes,
        rows: marker.rows,
        parquet_bytes: marker.objects.iter().map(|o| o.bytes).sum(),
        already_compacted: true,
        sources_expired: expired,
        queued_slices: 0,
    };
    Ok(Survey::Done(outcome, sources))
}

/// Writes the dataset's Parquet from its sorted lines: its marker removed first, put back last,
/// and an object of an earlier compaction that this one does not write removed.
async fn write_dataset<O: Bucket + ObjectListing>(
    bucket: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
    sources: &[ListedObject],
    sort: ExternalSort,
) -> Result<DatasetOutcome> {
    let prefix = &config.history_prefix;
    bucket.delete_object(&marker_key(prefix, dataset, day)).await?;
    // A split of the day made before, whose tasks may still come: they find no split and stop.
    bucket.delete_object(&split_key(prefix, dataset, day)).await?;
    let rows = sort.lines();
    let key = parquet_key(prefix, dataset, day, 0);
    let written = if rows == 0 { None } else { Some(write_parquet(bucket, config, dataset, key, sort).await?) };
    let objects: Vec<CompactedObject> =
        written.iter().map(|w| CompactedObject { key: w.key.clone(), rows: w.rows, bytes: w.bytes }).collect();
    delete_stale_parquet(bucket, &parquet_prefix(prefix, dataset, day), &objects).await?;
    let sources = sources.iter().map(source_of).collect();
    let outcome = write_marker(bucket, prefix, dataset, day, sources, objects, None).await?;
    info!(service = %dataset.service, kind = outcome.kind, day, rows, bytes = outcome.parquet_bytes, "day compacted");
    Ok(outcome)
}

//! The compaction of one day of one service: for its snapshots and its changes, every source
//! object of the `dt` partition is read and checked line by line, sorted, and written as one
//! Parquet object, then a marker naming the sources and the objects. A dataset of more than
//! `part_source_bytes` of sources is split into parts instead (`crate::parts`). A day some of
//! whose compacted sources are gone (expired) is never compacted again.
//!
//! Nothing is written until every source of the day has been read whole: a corrupt or truncated
//! object stops the compaction, naming the object and the line, and the day stays as it was. A
//! day whose marker already names the same sources is left alone, so a rerun changes nothing;
//! otherwise the marker goes first and comes back last, so a reader that goes by it (the
//! `session-audit` CLI) never reads a day half-compacted.

use std::io::Write;

use flate2::write::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use session_archiver::history::{under_prefix, HistoryKind, ListedObject, ObjectListing, ObjectStore};
use session_archiver::model::Column;
use session_archiver::{Error, Result, ServiceId};
use tracing::{info, warn};

use crate::columns::{parse_line, BatchBuilder, Dataset, Row, Value};
use crate::parquet_object::{Layout, ParquetObject, WrittenParquet};
use crate::parts::{compact_in_parts, plan_key, split_into_parts, TaskQueue};
use crate::sort::{ExternalSort, SortKey};

/// How a day is compacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// The history's key prefix (`HISTORY_PREFIX`); the Parquet goes under `<prefix>/parquet/`.
    pub history_prefix: String,
    /// Bytes of lines sorted in memory before they are spilled to the temporary directory.
    pub sort_budget: usize,
    pub layout: Layout,
    /// Rows encoded at a time.
    pub batch_rows: usize,
    /// Gzip'd source bytes one Parquet part is compacted from: a day of more is split into
    /// parts, each a task of its own (`crate::parts`).
    pub part_source_bytes: u64,
}

/// The tag a source object gets once its day is compacted: the lifecycle rule
/// `compacted-ndjson-expiry` (template parameter `CompactedNdjsonRetentionDays`) expires those.
pub const COMPACTED_TAG: (&str, &str) = ("session-archiver-compacted", "true");

/// The format of a marker.
pub const MARKER_FORMAT: &str = "session-archiver/compacted-day";
pub const MARKER_VERSION: u32 = 1;

/// What a compacted day of one dataset holds: written last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: String,
    pub version: u32,
    pub service: String,
    pub kind: String,
    pub day: String,
    /// The source objects, by key, with their sizes.
    pub sources: Vec<SourceObject>,
    /// Their lines: the Parquet's rows.
    pub rows: u64,
    pub objects: Vec<CompactedObject>,
    /// The plan whose parts were compacted, when the day was split (`crate::parts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl Marker {
    /// A marker of this format and version; `None` for any other bytes.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Marker>(body).ok().filter(|m| m.format == MARKER_FORMAT && m.version == MARKER_VERSION)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedObject {
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What the compaction of one dataset did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasetOutcome {
    pub kind: &'static str,
    pub sources: usize,
    pub source_bytes: u64,
    pub rows: u64,
    pub parquet_bytes: u64,
    /// Its marker already named the same sources, or some of them are gone: nothing was read or
    /// written.
    pub already_compacted: bool,
    /// Sources its marker names that are gone (expired once compacted): the day is not compacted
    /// again, which would lose their lines.
    pub sources_expired: usize,
    /// Parts sent to the compaction queue: their tasks compact the dataset, and the last one
    /// writes its marker.
    pub queued_parts: usize,
}

/// What the compaction of one day of one service did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayOutcome {
    pub service: ServiceId,
    pub day: String,
    pub datasets: Vec<DatasetOutcome>,
}

/// `<prefix>/<kind>/<service>/dt=<day>/`: the partition of the source objects.
pub fn source_prefix(history_prefix: &str, dataset: &Dataset, day: &str) -> String {
    under_prefix(history_prefix, &format!("{}/{}/dt={day}/", dataset.kind.as_str(), dataset.service))
}

/// `<prefix>/parquet/<kind>/<service>/dt=<day>/`: the partition of the compacted day, which the
/// Parquet tables read.
pub fn parquet_prefix(history_prefix: &str, dataset: &Dataset, day: &str) -> String {
    under_prefix(history_prefix, &format!("parquet/{}/{}/dt={day}/", dataset.kind.as_str(), dataset.service))
}

/// The marker of a compacted day: a name Athena and Hive skip (`_`).
pub fn marker_key(history_prefix: &str, dataset: &Dataset, day: &str) -> String {
    format!("{}_compacted.json", parquet_prefix(history_prefix, dataset, day))
}

/// Part `index` of the day's Parquet: always the same names, so a rerun replaces them.
pub fn parquet_key(history_prefix: &str, dataset: &Dataset, day: &str, index: usize) -> String {
    format!("{}part-{index:05}.parquet", parquet_prefix(history_prefix, dataset, day))
}

/// Compacts `day` of `service`: its snapshots, then its changes. With a queue, each dataset to
/// compact is planned in parts whose tasks go to it (`crate::parts`); without one, a dataset of
/// more than one part's sources is compacted here part after part, any other whole.
pub async fn compact_day<O: ObjectStore + ObjectListing, Q: TaskQueue>(
    store: &O,
    config: &CompactionConfig,
    tasks: &Q,
    service: ServiceId,
    day: &str,
) -> Result<DayOutcome> {
    let datasets = HistoryKind::ALL.map(|kind| Dataset { service, kind });
    let mut surveys = Vec::new();
    for dataset in datasets {
        surveys.push(survey(store, config, &dataset, day).await?);
    }
    // Every source of the datasets compacted here read and sorted before anything is written.
    let mut sorted = Vec::new();
    for (dataset, survey) in datasets.iter().zip(&surveys) {
        sorted.push(match survey {
            Survey::Pending(sources)
                if !tasks.queues() && split_into_parts(sources, config.part_source_bytes).len() <= 1 =>
            {
                let keys: Vec<&str> = sources.iter().map(|s| s.key.as_str()).collect();
                Some(sort_sources(store, config, dataset, &keys).await?)
            }
            _ => None,
        });
    }
    let mut outcomes = Vec::new();
    for ((dataset, survey), sort) in datasets.iter().zip(surveys).zip(sorted) {
        let outcome = match (survey, sort) {
            (Survey::Done(outcome, sources), _) => {
                // Again on a rerun: a tagging cut short is finished then.
                tag_sources(store, sources.iter().map(|s| s.key.as_str())).await?;
                outcome
            }
            (Survey::Pending(sources), Some(sort)) => {
                let outcome = write_dataset(store, config, dataset, day, &sources, sort).await?;
                tag_sources(store, sources.iter().map(|s| s.key.as_str())).await?;
                outcome
            }
            (Survey::Pending(sources), None) => compact_in_parts(store, config, tasks, dataset, day, &sources).await?,
        };
        outcomes.push(outcome);
    }
    Ok(DayOutcome { service, day: day.to_owned(), datasets: outcomes })
}

/// Tags each source compacted, once the marker stands: the lifecycle rule expires those.
pub(crate) async fn tag_sources<'k, O: ObjectListing>(store: &O, keys: impl Iterator<Item = &'k str>) -> Result<()> {
    for key in keys {
        store.tag_object(key, COMPACTED_TAG).await?;
    }
    Ok(())
}

/// A dataset's day, listed.
enum Survey {
    /// Compacted from these very sources already, or some of them are gone.
    Done(DatasetOutcome, Vec<ListedObject>),
    /// To compact from these sources.
    Pending(Vec<ListedObject>),
}

/// Lists the dataset's sources and reads its marker: whether the day is to be compacted.
async fn survey<O: ObjectStore + ObjectListing>(
    store: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
) -> Result<Survey> {
    let prefix = source_prefix(&config.history_prefix, dataset, day);
    let sources: Vec<ListedObject> =
        store.list_objects(&prefix).await?.into_iter().filter(|o| o.key.ends_with(".jsonl.gz")).collect();
    let source_bytes = sources.iter().map(|o| o.size).sum();
    let Some(marker) = read_marker(store, &marker_key(&config.history_prefix, dataset, day)).await? else {
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
        queued_parts: 0,
    };
    Ok(Survey::Done(outcome, sources))
}

/// Reads the sources into a sort, each line checked against the schema; what is left in memory
/// goes to disk, so the next dataset sorts in the same budget.
pub(crate) async fn sort_sources<O: ObjectStore>(
    store: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    keys: &[&str],
) -> Result<ExternalSort> {
    let columns = dataset.columns();
    let key_columns = KeyColumns::of(&columns);
    let mut sort = ExternalSort::new(config.sort_budget);
    for key in keys {
        read_source(store, key, &columns, &key_columns, &mut sort).await?;
    }
    sort.spill()?;
    Ok(sort)
}

pub(crate) fn source_of(object: &ListedObject) -> SourceObject {
    SourceObject { key: object.key.clone(), size: object.size }
}

async fn read_marker<O: ObjectStore>(store: &O, key: &str) -> Result<Option<Marker>> {
    // One this version cannot read is compacted again, and replaced.
    Ok(store.get_object(key).await?.and_then(|body| Marker::parse(&body)))
}

/// Reads one source object into the sort, each line checked against the schema.
async fn read_source<O: ObjectStore>(
    store: &O,
    key: &str,
    columns: &[Column],
    key_columns: &KeyColumns,
    sort: &mut ExternalSort,
) -> Result<()> {
    let lines = Lines { key, columns, key_columns, sort, pending: Vec::new(), line: 0, failed: None };
    let mut gunzip = MultiGzDecoder::new(lines);
    let read = store.get_object_into(key, &mut gunzip).await;
    let finished = gunzip.try_finish();
    let lines = gunzip.get_mut();
    if let Some(err) = lines.failed.take() {
        return Err(err);
    }
    let unreadable = |line: u64, detail: String| Error::UnreadableHistory { key: key.to_owned(), line, detail };
    match read {
        Ok(true) => {}
        Ok(false) => return Err(unreadable(0, "listed, then gone before it was read".into())),
        Err(Error::UnreadableItem(detail)) => return Err(unreadable(lines.line + 1, format!("not gzip: {detail}"))),
        Err(err) => return Err(err),
    }
    if let Err(err) = finished {
        return Err(unreadable(lines.line + 1, format!("the gzip stream is cut short: {err}")));
    }
    if !lines.pending.is_empty() {
        return Err(unreadable(lines.line + 1, "the last line is cut short (no newline)".into()));
    }
    Ok(())
}

/// Where the sort key's columns are in a row.
struct KeyColumns {
    account_id: usize,
    region: usize,
    session_id: usize,
    snapshot_at: usize,
    run_id: usize,
}

impl KeyColumns {
    fn of(columns: &[Column]) -> Self {
        let at = |name: &str| columns.iter().position(|c| c.name == name).expect("a column of every schema");
        KeyColumns {
            account_id: at("account_id"),
            region: at("region"),
            session_id: at("session_id"),
            snapshot_at: at("snapshot_at"),
            run_id: at("run_id"),
        }
    }

    /// The row's sort key; every line has these columns, none null.
    fn key_of(&self, columns: &[Column], row: &Row) -> std::result::Result<SortKey, String> {
        let text = |index: usize| match &row.0[index] {
            Value::Text(text) => Ok(text.clone()),
            _ => Err(format!("column `{}` is null", columns[index].name)),
        };
        let observed_at = match row.0[self.snapshot_at] {
            Value::Micros(at) => at,
            _ => return Err("column `snapshot_at` is null".into()),
        };
        Ok(SortKey {
            account_id: text(self.account_id)?,
            region: text(self.region)?,
            session_id: text(self.session_id)?,
            observed_at,
            run_id: text(self.run_id)?,
        })
    }
}

/// The gunzip'd bytes of a source, split into lines, each checked and sorted.
struct Lines<'s> {
    key: &'s str,
    columns: &'s [Column],
    key_columns: &'s KeyColumns,
    sort: &'s mut ExternalSort,
    /// The start of a line whose end has not come yet.
    pending: Vec<u8>,
    /// Lines read so far.
    line: u64,
    /// Why reading stopped: the error the compaction returns.
    failed: Option<Error>,
}

impl Lines<'_> {
    fn take_line(&mut self, bytes: &[u8]) -> Result<()> {
        self.line += 1;
        let unreadable =
            |detail: String| Error::UnreadableHistory { key: self.key.to_owned(), line: self.line, detail };
        let text = std::str::from_utf8(bytes).map_err(|e| unreadable(format!("not UTF-8: {e}")))?;
        let row = parse_line(self.columns, text).map_err(unreadable)?;
        let key = self.key_columns.key_of(self.columns, &row).map_err(unreadable)?;
        self.sort.push(key, text.to_owned())
    }
}

impl Write for Lines<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // The decoder hands undelivered bytes over again after a refusal: the first one stands.
        if self.failed.is_some() {
            return Err(std::io::Error::other("a line was refused"));
        }
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let result = if self.pending.is_empty() {
                self.take_line(&rest[..end])
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&rest[..end]);
                self.take_line(&line)
            };
            if let Err(err) = result {
                self.failed = Some(err);
                return Err(std::io::Error::other("a line was refused"));
            }
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the dataset's Parquet from its sorted lines: its marker removed first, put back last,
/// and an object of an earlier compaction that this one does not write removed.
async fn write_dataset<O: ObjectStore + ObjectListing>(
    store: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    day: &str,
    sources: &[ListedObject],
    sort: ExternalSort,
) -> Result<DatasetOutcome> {
    let prefix = &config.history_prefix;
    store.delete_object(&marker_key(prefix, dataset, day)).await?;
    // A split of the day planned before, whose tasks may still come: they find no plan and stop.
    store.delete_object(&plan_key(prefix, dataset, day)).await?;
    let rows = sort.lines();
    let key = parquet_key(prefix, dataset, day, 0);
    let written = if rows == 0 { None } else { Some(write_parquet(store, config, dataset, key, sort).await?) };
    let objects: Vec<CompactedObject> =
        written.iter().map(|w| CompactedObject { key: w.key.clone(), rows: w.rows, bytes: w.bytes }).collect();
    delete_stale_parquet(store, &parquet_prefix(prefix, dataset, day), &objects).await?;
    let sources = sources.iter().map(source_of).collect();
    let outcome = write_marker(store, prefix, dataset, day, sources, objects, None).await?;
    info!(service = %dataset.service, kind = outcome.kind, day, rows, bytes = outcome.parquet_bytes, "day compacted");
    Ok(outcome)
}

/// The marker of a day compacted from `sources` into `objects` (from a plan's parts, when it was
/// split), written last: its readers take the Parquet from now. What the compaction did.
pub(crate) async fn write_marker<O: ObjectStore>(
    store: &O,
    prefix: &str,
    dataset: &Dataset,
    day: &str,
    sources: Vec<SourceObject>,
    objects: Vec<CompactedObject>,
    plan: Option<String>,
) -> Result<DatasetOutcome> {
    let marker = Marker {
        format: MARKER_FORMAT.into(),
        version: MARKER_VERSION,
        service: dataset.service.as_str().into(),
        kind: dataset.kind.as_str().into(),
        day: day.into(),
        rows: objects.iter().map(|o| o.rows).sum(),
        sources,
        objects,
        plan,
    };
    let outcome = DatasetOutcome {
        kind: dataset.kind.as_str(),
        sources: marker.sources.len(),
        source_bytes: marker.sources.iter().map(|s| s.size).sum(),
        rows: marker.rows,
        parquet_bytes: marker.objects.iter().map(|o| o.bytes).sum(),
        already_compacted: false,
        sources_expired: 0,
        queued_parts: 0,
    };
    let body = serde_json::to_vec_pretty(&marker).expect("a marker serializes");
    store.put_object(&marker_key(prefix, dataset, day), body).await?;
    Ok(outcome)
}

/// Deletes the Parquet objects of the partition an earlier compaction wrote and this one did not.
pub(crate) async fn delete_stale_parquet<O: ObjectListing>(
    store: &O,
    partition: &str,
    objects: &[CompactedObject],
) -> Result<()> {
    for stale in store.list_objects(partition).await? {
        if stale.key.ends_with(".parquet") && !objects.iter().any(|o| o.key == stale.key) {
            store.delete_object(&stale.key).await?;
        }
    }
    Ok(())
}

/// The sorted lines as one Parquet object; the upload aborted if a line cannot be written.
pub(crate) async fn write_parquet<O: ObjectStore>(
    store: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    key: String,
    sort: ExternalSort,
) -> Result<WrittenParquet> {
    let mut object = ParquetObject::new(store, key, dataset.arrow_schema(), config.layout)?;
    match fill(&mut object, config, dataset, sort).await {
        Ok(()) => object.finish().await,
        Err(err) => {
            object.abort().await;
            Err(err)
        }
    }
}

async fn fill<O: ObjectStore>(
    object: &mut ParquetObject<'_, O>,
    config: &CompactionConfig,
    dataset: &Dataset,
    sort: ExternalSort,
) -> Result<()> {
    let columns = dataset.columns();
    let mut batch = BatchBuilder::new(dataset);
    let mut merge = sort.merge()?;
    while let Some((_, line)) = merge.next_line()? {
        // Checked when it was read: a failure here is the sort's.
        let row = parse_line(&columns, &line)
            .map_err(|e| Error::Mapping(format!("a sorted line of {} no longer reads: {e}", object.key())))?;
        batch.push(&row);
        if batch.rows() >= config.batch_rows {
            object.write(&batch.finish()).await?;
        }
    }
    if batch.rows() > 0 {
        object.write(&batch.finish()).await?;
    }
    Ok(())
}

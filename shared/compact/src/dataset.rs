//! One dataset of a day compacted, the steps the whole day and its slices share: its sources read
//! and checked line by line into a sort, its sorted lines written as Parquet, its marker written
//! last, the Parquet an earlier compaction left removed, and its sources tagged.

use std::io::Write;

use flate2::write::MultiGzDecoder;
use futures::StreamExt;
use serde::Serialize;
use session_archiver::history::{Bucket, LineBuffer, ListedObject, ObjectListing};
use session_archiver::model::Column;
use session_archiver::{Error, Result};

use crate::columns::{parse_line, BatchBuilder, Dataset, Row, Value};
use crate::keys::{marker_key, CompactedObject, Marker, SourceObject, COMPACTED_TAG, MARKER_FORMAT, MARKER_VERSION};
use crate::parquet_object::{Layout, ParquetObject, WrittenParquet};
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
    /// Gzip'd source bytes one slice of a day is compacted from: a day of more is split into
    /// slices, each a task of its own (`crate::slices`).
    pub slice_source_bytes: u64,
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
    #[serde(rename = "queued_parts")]
    pub queued_slices: usize,
}

/// Tags each source compacted, once the marker stands: the lifecycle rule expires those.
pub(crate) async fn tag_sources<'k, O: ObjectListing>(bucket: &O, keys: impl Iterator<Item = &'k str>) -> Result<()> {
    for key in keys {
        bucket.tag_object(key, COMPACTED_TAG).await?;
    }
    Ok(())
}

/// Sources of at most this many gzip'd bytes are fetched whole, several at a time (a day of an
/// organization is many small objects, each a request's wait); a larger one is streamed alone.
const WHOLE_SOURCE_BYTES: u64 = 8 * 1024 * 1024;

/// Small sources fetched at the same time: at most this many times `WHOLE_SOURCE_BYTES` in memory.
const SOURCES_AT_ONCE: usize = 8;

/// Reads the sources into a sort, in key order, each line checked against the schema; what is left
/// in memory goes to disk, so the next dataset sorts in the same budget. Runs of small sources are
/// fetched several at a time and each read as it comes; a large source is streamed alone, so no
/// fetch waits unpolled behind it.
pub(crate) async fn sort_sources<O: Bucket>(
    bucket: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    sources: &[SourceObject],
) -> Result<ExternalSort> {
    let columns = dataset.columns();
    let key_columns = KeyColumns::of(&columns);
    let mut sort = ExternalSort::new(config.sort_budget);
    for run in sources.chunk_by(|a, b| (a.size <= WHOLE_SOURCE_BYTES) == (b.size <= WHOLE_SOURCE_BYTES)) {
        if run[0].size > WHOLE_SOURCE_BYTES {
            for source in run {
                let mut lines = Lines::new(&source.key, &columns, &key_columns, &mut sort);
                let mut gunzip = MultiGzDecoder::new(&mut lines);
                let read = bucket.get_object_into(&source.key, &mut gunzip).await;
                let finished = gunzip.try_finish();
                drop(gunzip);
                lines.finish(read, finished)?;
            }
            continue;
        }
        let fetches = run.iter().map(|source| async move { (source, bucket.get_object(&source.key).await) });
        let mut fetched = futures::stream::iter(fetches).buffered(SOURCES_AT_ONCE);
        while let Some((source, body)) = fetched.next().await {
            let mut lines = Lines::new(&source.key, &columns, &key_columns, &mut sort);
            let (read, finished) = match body {
                Ok(Some(body)) => read_whole(&mut lines, &body),
                Ok(None) => (Ok(false), Ok(())),
                Err(err) => (Err(err), Ok(())),
            };
            lines.finish(read, finished)?;
        }
    }
    sort.spill()?;
    Ok(sort)
}

/// Gunzips a whole source into its lines: the read (a refusal of the decoder, as a streamed read
/// reports it) and the end of the gzip stream, for [`Lines::finish`].
fn read_whole(lines: &mut Lines<'_>, body: &[u8]) -> (Result<bool>, std::io::Result<()>) {
    let mut gunzip = MultiGzDecoder::new(lines);
    if let Err(err) = gunzip.write_all(body) {
        return (Err(Error::UnreadableItem(err.to_string())), Ok(()));
    }
    (Ok(true), gunzip.try_finish())
}

pub(crate) fn source_of(object: &ListedObject) -> SourceObject {
    SourceObject { key: object.key.clone(), size: object.size }
}

pub(crate) async fn read_marker<O: Bucket>(bucket: &O, key: &str) -> Result<Option<Marker>> {
    // One this version cannot read is compacted again, and replaced.
    Ok(bucket.get_object(key).await?.and_then(|body| Marker::parse(&body)))
}

/// Where the sort key's columns are in a row.
struct KeyColumns {
    account_id: usize,
    region: usize,
    /// None in the runs, which have no session.
    session_id: Option<usize>,
    /// `snapshot_at` (sessions) or `started_at` (runs).
    observed_at: usize,
    run_id: usize,
}

impl KeyColumns {
    fn of(columns: &[Column]) -> Self {
        let find = |name: &str| columns.iter().position(|c| c.name == name);
        let at = |name: &str| find(name).expect("a column of every dataset");
        KeyColumns {
            account_id: at("account_id"),
            region: at("region"),
            session_id: find("session_id"),
            observed_at: find("snapshot_at").unwrap_or_else(|| at("started_at")),
            run_id: at("run_id"),
        }
    }

    /// The row's sort key; every line has these columns, none null.
    fn key_of(&self, columns: &[Column], row: &Row) -> std::result::Result<SortKey, String> {
        let text = |index: usize| match &row.0[index] {
            Value::Text(text) => Ok(text.clone()),
            _ => Err(format!("column `{}` is null", columns[index].name)),
        };
        let observed_at = match row.0[self.observed_at] {
            Value::Micros(at) => at,
            _ => return Err(format!("column `{}` is null", columns[self.observed_at].name)),
        };
        Ok(SortKey {
            account_id: text(self.account_id)?,
            region: text(self.region)?,
            session_id: self.session_id.map(text).transpose()?.unwrap_or_default(),
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
    buffer: LineBuffer,
    /// Lines read so far.
    line: u64,
    /// Why reading stopped: the error the compaction returns.
    failed: Option<Error>,
}

impl<'s> Lines<'s> {
    fn new(key: &'s str, columns: &'s [Column], key_columns: &'s KeyColumns, sort: &'s mut ExternalSort) -> Self {
        Lines { key, columns, key_columns, sort, buffer: LineBuffer::default(), line: 0, failed: None }
    }

    /// How the source's read ended, as an error naming the object and the line: a line refused,
    /// the object gone since it was listed, not gzip, or cut short.
    fn finish(&mut self, read: Result<bool>, finished: std::io::Result<()>) -> Result<()> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let (key, next) = (self.key, self.line + 1);
        let unreadable = |line: u64, detail: String| Error::UnreadableHistory { key: key.to_owned(), line, detail };
        match read {
            Ok(true) => {}
            Ok(false) => return Err(unreadable(0, "listed, then gone before it was read".into())),
            Err(Error::UnreadableItem(detail)) => return Err(unreadable(next, format!("not gzip: {detail}"))),
            Err(err) => return Err(err),
        }
        if let Err(err) = finished {
            return Err(unreadable(next, format!("the gzip stream is cut short: {err}")));
        }
        if !self.buffer.is_empty() {
            return Err(unreadable(next, "the last line is cut short (no newline)".into()));
        }
        Ok(())
    }

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
        let mut buffer = std::mem::take(&mut self.buffer);
        let split = buffer.split(bytes, |line| self.take_line(line));
        self.buffer = buffer;
        if let Err(err) = split {
            self.failed = Some(err);
            return Err(std::io::Error::other("a line was refused"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The marker of a day compacted from `sources` into `objects` (from a split's slices, when it
/// was split), written last: its readers take the Parquet from now. What the compaction did.
pub(crate) async fn write_marker<O: Bucket>(
    bucket: &O,
    prefix: &str,
    dataset: &Dataset,
    day: &str,
    sources: Vec<SourceObject>,
    objects: Vec<CompactedObject>,
    split: Option<String>,
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
        split,
    };
    let outcome = DatasetOutcome {
        kind: dataset.kind.as_str(),
        sources: marker.sources.len(),
        source_bytes: marker.sources.iter().map(|s| s.size).sum(),
        rows: marker.rows,
        parquet_bytes: marker.objects.iter().map(|o| o.bytes).sum(),
        already_compacted: false,
        sources_expired: 0,
        queued_slices: 0,
    };
    let body = serde_json::to_vec_pretty(&marker).expect("a marker serializes");
    bucket.put_object(&marker_key(prefix, dataset, day), body).await?;
    Ok(outcome)
}

/// Deletes the Parquet objects of the partition an earlier compaction wrote and this one did not.
pub(crate) async fn delete_stale_parquet<O: ObjectListing + Bucket>(
    bucket: &O,
    partition: &str,
    objects: &[CompactedObject],
) -> Result<()> {
    for stale in bucket.list_objects(partition).await? {
        if stale.key.ends_with(".parquet") && !objects.iter().any(|o| o.key == stale.key) {
            bucket.delete_object(&stale.key).await?;
        }
    }
    Ok(())
}

/// The sorted lines as one Parquet object; the upload aborted if a line cannot be written.
pub(crate) async fn write_parquet<O: Bucket>(
    bucket: &O,
    config: &CompactionConfig,
    dataset: &Dataset,
    key: String,
    sort: ExternalSort,
) -> Result<WrittenParquet> {
    let mut object = ParquetObject::new(bucket, key, dataset.arrow_schema(), config.layout)?;
    match fill(&mut object, config, dataset, sort).await {
        Ok(()) => object.finish().await,
        Err(err) => {
            object.abort().await;
            Err(err)
        }
    }
}

async fn fill<O: Bucket>(
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

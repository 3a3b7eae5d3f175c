//! Where the history is read from: the S3 bucket (any endpoint, profile or region) or a local copy
//! of it (`aws s3 sync s3://<bucket> <dir>`), with the same key layout. Only the `dt=` partitions a
//! time range needs are listed; objects are gunzip'd and split into lines as their bytes arrive.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use flate2::write::GzDecoder;

use session_archiver::history::{under_prefix, Bucket, HistoryKind, LineBuffer, ObjectListing, S3Bucket};
use session_archiver::ServiceId;
use session_compaction::columns::{read_parquet, Dataset};
use session_compaction::keys::{marker_key, Marker};

use crate::record::{dataset_of, parse_line, AuditLine, RunRecord};
use crate::{AuditError, Result};

/// One history object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub key: String,
    pub size: u64,
}

/// The archive the CLI reads.
pub enum Archive {
    S3 { client: aws_sdk_s3::Client, bucket: String, prefix: String },
    Dir { root: PathBuf, prefix: String },
}

/// `history/snapshots/ivs-stream-sessions/dt=2026-11-22/`
pub fn partition_prefix(prefix: &str, kind: &str, service: &str, day: &str) -> String {
    under_prefix(prefix, &format!("{kind}/{service}/dt={day}/"))
}

impl Archive {
    /// The objects of one partition, by key: the Parquet of the day when its compaction's marker
    /// stands (the same lines, typed), else its NDJSON.
    pub async fn list(&self, kind: &str, service: &str, day: &str) -> Result<Vec<ObjectRef>> {
        if let Some(marker) = self.marker(kind, service, day).await? {
            return Ok(marker.objects.into_iter().map(|o| ObjectRef { key: o.key, size: o.bytes }).collect());
        }
        self.list_ndjson(kind, service, day).await
    }

    /// The marker of the day's compaction, when it stands and this version reads it.
    async fn marker(&self, kind: &str, service: &str, day: &str) -> Result<Option<Marker>> {
        let prefix = match self {
            Archive::S3 { prefix, .. } | Archive::Dir { prefix, .. } => prefix,
        };
        let (Ok(service), Some(kind)) = (service.parse::<ServiceId>(), HistoryKind::parse(kind)) else {
            return Ok(None);
        };
        let key = marker_key(prefix, &Dataset { service, kind }, day);
        let Some(body) = self.get(&key).await? else { return Ok(None) };
        Ok(Marker::parse(&body).filter(|m| m.kind == kind.as_str()))
    }

    /// A whole object's bytes; `None` when there is no such key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Archive::S3 { client, bucket, .. } => S3Bucket::new(client.clone(), bucket)
                .get_object(key)
                .await
                .map_err(|e| AuditError::Archive(e.to_string())),
            Archive::Dir { root, .. } => match std::fs::read(root.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(AuditError::Archive(format!("{}: {e}", root.join(key).display()))),
            },
        }
    }

    /// The NDJSON objects of one partition, by key.
    async fn list_ndjson(&self, kind: &str, service: &str, day: &str) -> Result<Vec<ObjectRef>> {
        let mut objects = match self {
            Archive::S3 { client, bucket, prefix } => {
                let prefix = partition_prefix(prefix, kind, service, day);
                let listed = S3Bucket::new(client.clone(), bucket).list_objects(&prefix).await;
                let listed = listed.map_err(|e| AuditError::Archive(e.to_string()))?;
                listed.into_iter().map(|o| ObjectRef { key: o.key, size: o.size }).collect()
            }
            Archive::Dir { root, prefix } => {
                let prefix = partition_prefix(prefix, kind, service, day);
                let dir = root.join(&prefix);
                let mut objects = Vec::new();
                match std::fs::read_dir(&dir) {
                    Ok(entries) => {
                        for entry in entries {
                            let entry = entry.map_err(|e| AuditError::Archive(format!("{}: {e}", dir.display())))?;
                            let name = entry.file_name().to_string_lossy().into_owned();
                            if name.ends_with(".jsonl.gz") {
                                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                                objects.push(ObjectRef { key: format!("{prefix}{name}"), size });
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AuditError::Archive(format!("{}: {e}", dir.display()))),
                }
                objects
            }
        };
        objects.sort();
        Ok(objects)
    }

    /// Reads one object line by line (a Parquet object row by row); a line that is not a history
    /// line is an error naming the object and the line number.
    pub async fn read(&self, object: &ObjectRef, mut each: impl FnMut(AuditLine)) -> Result<()> {
        if object.key.ends_with(".parquet") {
            self.read_parquet(object).await?.into_iter().for_each(each);
            return Ok(());
        }
        let mut splitter = GzDecoder::new(LineSplitter::default());
        let corrupt = |why: String| AuditError::Corrupt { key: object.key.clone(), line: None, detail: why };
        let columns = dataset_of(&object.key).map_err(corrupt)?.columns();
        let mut drain = |splitter: &mut GzDecoder<LineSplitter>| -> Result<()> {
            for (number, text) in splitter.get_mut().lines.drain(..) {
                let line = parse_line(&columns, &text).map_err(|detail| AuditError::Corrupt {
                    key: object.key.clone(),
                    line: Some(number),
                    detail,
                })?;
                each(line);
            }
            Ok(())
        };
        match self {
            Archive::S3 { client, bucket, .. } => {
                let output = client.get_object().bucket(bucket).key(&object.key).send().await.map_err(|e| {
                    AuditError::Archive(format!("reading s3://{bucket}/{}: {}", object.key, describe(&e)))
                })?;
                let mut body = output.body;
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| AuditError::Archive(format!("reading s3://{bucket}/{}: {e}", object.key)))?
                {
                    splitter.write_all(&chunk).map_err(|e| corrupt(format!("not gzip: {e}")))?;
                    drain(&mut splitter)?;
                }
            }
            Archive::Dir { root, .. } => {
                let path = root.join(&object.key);
                let file =
                    std::fs::File::open(&path).map_err(|e| AuditError::Archive(format!("{}: {e}", path.display())))?;
                let mut reader = BufReader::with_capacity(64 * 1024, file);
                loop {
                    let chunk =
                        reader.fill_buf().map_err(|e| AuditError::Archive(format!("{}: {e}", path.display())))?;
                    if chunk.is_empty() {
                        break;
                    }
                    let n = chunk.len();
                    splitter.write_all(chunk).map_err(|e| corrupt(format!("not gzip: {e}")))?;
                    reader.consume(n);
                    drain(&mut splitter)?;
                }
            }
        }
        splitter.try_finish().map_err(|e| corrupt(format!("truncated gzip: {e}")))?;
        splitter.get_mut().finish();
        drain(&mut splitter)
    }

    /// A runs object of the runs dataset, whole (an invocation's few lines), as its runs; a line
    /// that is not a runs line is an error naming the object and the line number.
    pub async fn read_runs(&self, object: &ObjectRef) -> Result<Vec<RunRecord>> {
        let corrupt = |line: Option<u64>, detail: String| AuditError::Corrupt { key: object.key.clone(), line, detail };
        let Some(body) = self.get(&object.key).await? else { return Ok(Vec::new()) };
        if object.key.ends_with(".parquet") {
            let dataset = dataset_of(&object.key).map_err(|detail| corrupt(None, detail))?;
            let columns = dataset.columns();
            let rows = read_parquet(&dataset, body).map_err(|detail| corrupt(None, detail))?;
            return rows.iter().map(|row| RunRecord::from_row(&columns, row).map_err(|d| corrupt(None, d))).collect();
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut text)
            .map_err(|e| corrupt(None, format!("not gzip'd text: {e}")))?;
        let lines = text.lines().enumerate().filter(|(_, line)| !line.is_empty());
        lines.map(|(n, line)| RunRecord::parse(line).map_err(|detail| corrupt(Some(n as u64 + 1), detail))).collect()
    }

    /// A compacted day's Parquet object, whole, as audit lines.
    async fn read_parquet(&self, object: &ObjectRef) -> Result<Vec<AuditLine>> {
        let body = self
            .get(&object.key)
            .await?
            .ok_or_else(|| AuditError::Archive(format!("{}: named by its day's marker, and gone", object.key)))?;
        let corrupt = |detail: String| AuditError::Corrupt { key: object.key.clone(), line: None, detail };
        parquet_lines(&object.key, body).map_err(corrupt)
    }
}

/// The rows of a compacted day's Parquet as audit lines: its key says which service and kind
/// (`…/parquet/<kind>/<service>/dt=…/…`), its rows are typed as the code's schema.
fn parquet_lines(key: &str, body: Vec<u8>) -> std::result::Result<Vec<AuditLine>, String> {
    let dataset = dataset_of(key)?;
    let columns = dataset.columns();
    read_parquet(&dataset, body)?.iter().map(|row| AuditLine::from_row(&columns, row)).collect()
}

/// An error and its causes, one line, without the raw response.
pub fn describe<E: std::error::Error>(err: &E) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Splits the gunzip'd bytes into numbered lines as they come.
#[derive(Default)]
struct LineSplitter {
    buffer: LineBuffer,
    number: u64,
    lines: Vec<(u64, String)>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) {
        self.number += 1;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            self.lines.push((self.number, String::from_utf8_lossy(bytes).into_owned()));
        }
    }

    /// The last line, when the object does not end with a newline.
    fn finish(&mut self) {
        if !self.buffer.is_empty() {
            let rest = self.buffer.take_rest();
            self.push(&rest);
        }
    }
}

impl Write for LineSplitter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let split = buffer.split(buf, |line| {
            self.push(line);
            Ok::<_, std::convert::Infallible>(())
        });
        self.buffer = buffer;
        let Ok(()) = split;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! Where the history is read from: the S3 bucket (any endpoint, profile or region) or a local copy
//! of it (`aws s3 sync s3://<bucket> <dir>`), with the same key layout. Only the `dt=` partitions a
//! time range needs are listed; objects are gunzip'd and split into lines as their bytes arrive.

use std::io::BufRead;
use std::path::PathBuf;

use flate2::read::MultiGzDecoder;

use session_archiver::history::{under_prefix, Bucket, HistoryKind, ObjectListing, S3Bucket};
use session_archiver::model::Column;
use session_archiver::ServiceId;
use session_compaction::columns::{each_parquet_row, parse_line, Dataset, GroupBounds, ParquetRead, Row};
use session_compaction::keys::{marker_key, Marker};

use crate::record::{dataset_of, AuditLine, RunRecord};
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

    /// An object's bytes; an error when it is gone (it was listed, or named by its day's marker).
    pub async fn fetch(&self, object: &ObjectRef) -> Result<Vec<u8>> {
        self.get(&object.key).await?.ok_or_else(|| AuditError::Archive(format!("{}: listed, and gone", object.key)))
    }
}

/// Which accounts and regions a question reads: every one where a list is empty.
#[derive(Clone, Debug, Default)]
pub struct ScopeFilter {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

impl ScopeFilter {
    pub fn keeps(&self, account_id: &str, region: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.iter().any(|a| a == account_id))
            && (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
    }

    /// Whether a row group whose accounts and regions lie in these ranges (`None`: not known)
    /// may hold a row of a kept scope.
    pub fn may_hold(&self, accounts: Option<(&str, &str)>, regions: Option<(&str, &str)>) -> bool {
        let within = |wanted: &[String], range: Option<(&str, &str)>| match range {
            Some((min, max)) if !wanted.is_empty() => wanted.iter().any(|w| (min..=max).contains(&w.as_str())),
            _ => true,
        };
        within(&self.accounts, accounts) && within(&self.regions, regions)
    }
}

/// One row of a history object, typed, with the columns it holds.
pub struct ObjectRow<'a> {
    pub columns: &'a [Column],
    pub row: Row,
}

/// Decodes a history object's bytes, NDJSON.gz or a compacted day's Parquet, a row at a time:
/// of Parquet, only the `wanted` columns (every one when empty) and only the row groups whose
/// statistics allow a scope `scopes` keeps; a row that is not of the schema, or that `each`
/// refuses, is an error naming the object and the line. What a Parquet read skipped.
pub fn each_row(
    key: &str,
    body: Vec<u8>,
    scopes: &ScopeFilter,
    wanted: &[&str],
    each: &mut dyn FnMut(ObjectRow<'_>) -> std::result::Result<(), String>,
) -> Result<ParquetRead> {
    let corrupt = |line: Option<u64>, detail: String| AuditError::Corrupt { key: key.to_owned(), line, detail };
    let dataset = dataset_of(key).map_err(|detail| corrupt(None, detail))?;
    if key.ends_with(".parquet") {
        let keep =
            |group: &GroupBounds<'_>| scopes.may_hold(group.text_range("account_id"), group.text_range("region"));
        let mut give = |columns: &[Column], row: Row| each(ObjectRow { columns, row });
        return each_parquet_row(&dataset, body, wanted, &keep, &mut give).map_err(|detail| corrupt(None, detail));
    }
    let columns = dataset.columns();
    let text = std::io::BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(&body[..]));
    for (index, line) in text.split(b'\n').enumerate() {
        let number = Some(index as u64 + 1);
        let line = line.map_err(|e| corrupt(None, format!("not gzip'd text: {e}")))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row = parse_line(&columns, &String::from_utf8_lossy(&line)).map_err(|detail| corrupt(number, detail))?;
        each(ObjectRow { columns: &columns, row }).map_err(|detail| corrupt(number, detail))?;
    }
    Ok(ParquetRead::default())
}

/// The audit lines of a history object's bytes (of a Parquet object, only the audit's columns).
pub fn each_line(
    key: &str,
    body: Vec<u8>,
    scopes: &ScopeFilter,
    each: &mut dyn FnMut(AuditLine),
) -> Result<ParquetRead> {
    each_row(key, body, scopes, AuditLine::COLUMNS, &mut |row| {
        each(AuditLine::from_row(row.columns, &row.row)?);
        Ok(())
    })
}

/// The runs of a runs object's bytes.
pub fn each_run(
    key: &str,
    body: Vec<u8>,
    scopes: &ScopeFilter,
    each: &mut dyn FnMut(RunRecord),
) -> Result<ParquetRead> {
    each_row(key, body, scopes, &[], &mut |row| {
        each(RunRecord::from_row(row.columns, &row.row)?);
        Ok(())
    })
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

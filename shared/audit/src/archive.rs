//! Where the history is read from: the S3 bucket (any endpoint, profile or region) or a local copy
//! of it (`aws s3 sync s3://<bucket> <dir>`), with the same key layout. Only the `dt=` partitions a
//! time range needs are listed; objects are gunzip'd and split into lines as their bytes arrive.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use flate2::write::GzDecoder;

use crate::record::{parse_line, AuditLine};
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
    let prefix = prefix.trim_matches('/');
    let tail = format!("{kind}/{service}/dt={day}/");
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

impl Archive {
    /// The objects of one partition, by key.
    pub async fn list(&self, kind: &str, service: &str, day: &str) -> Result<Vec<ObjectRef>> {
        let mut objects = match self {
            Archive::S3 { client, bucket, prefix } => {
                let prefix = partition_prefix(prefix, kind, service, day);
                let mut objects = Vec::new();
                let mut pages = client.list_objects_v2().bucket(bucket).prefix(&prefix).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        AuditError::Archive(format!("listing s3://{bucket}/{prefix}: {}", describe(&e)))
                    })?;
                    for object in page.contents() {
                        if let Some(key) = object.key() {
                            objects.push(ObjectRef {
                                key: key.to_owned(),
                                size: object.size().unwrap_or(0).max(0) as u64,
                            });
                        }
                    }
                }
                objects
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

    /// Reads one object line by line; a line that is not a history line is an error naming the
    /// object and the line number.
    pub async fn read(&self, object: &ObjectRef, mut each: impl FnMut(AuditLine)) -> Result<()> {
        let mut splitter = GzDecoder::new(LineSplitter::default());
        let corrupt = |why: String| AuditError::Corrupt { key: object.key.clone(), line: None, detail: why };
        let mut drain = |splitter: &mut GzDecoder<LineSplitter>| -> Result<()> {
            for (number, text) in splitter.get_mut().lines.drain(..) {
                let line = parse_line(&text).map_err(|detail| AuditError::Corrupt {
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
    partial: Vec<u8>,
    number: u64,
    lines: Vec<(u64, String)>,
}

impl LineSplitter {
    fn push(&mut self, bytes: Vec<u8>) {
        self.number += 1;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            self.lines.push((self.number, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }

    /// The last line, when the object does not end with a newline.
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.push(rest);
        }
    }
}

impl Write for LineSplitter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        for (i, b) in buf.iter().enumerate() {
            if *b == b'\n' {
                self.partial.extend_from_slice(&buf[start..i]);
                let line = std::mem::take(&mut self.partial);
                self.push(line);
                start = i + 1;
            }
        }
        self.partial.extend_from_slice(&buf[start..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

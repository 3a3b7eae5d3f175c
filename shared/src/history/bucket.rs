//! Where history objects go: the [`Bucket`] port and its S3 adapter.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use tracing::instrument;

use crate::error::{Error, Result};

/// The S3 actions this adapter needs, on the history prefix: `s3:PutObject` covers PutObject and
/// the multipart calls (create, upload part, complete); aborting is its own action, and so are
/// deleting (an abandoned history pool's objects) and reading (the last complete run's snapshot
/// lines, where a churn run finds the ids of the sessions that ended).
pub const IAM_ACTIONS: [&str; 4] = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject"];

/// The media type of the history objects.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// The media type of a run's progress kept in an object (`….json.gz`).
pub const STATE_CONTENT_TYPE: &str = "application/json";

/// The media type of the compacted history (Parquet, compressed inside the format).
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";
/// The media type of a compaction's marker.
pub const MARKER_CONTENT_TYPE: &str = "application/json";

/// What an object under `key` holds, and its `Content-Encoding`: the history's gzip'd NDJSON, a
/// progress's gzip'd JSON, or the compacted history's Parquet and its marker.
fn content_of(key: &str) -> (&'static str, Option<&'static str>) {
    if key.ends_with(".parquet") {
        (PARQUET_CONTENT_TYPE, None)
    } else if key.ends_with(".json") {
        (MARKER_CONTENT_TYPE, None)
    } else if key.ends_with(".json.gz") {
        (STATE_CONTENT_TYPE, Some(CONTENT_ENCODING))
    } else {
        (CONTENT_TYPE, Some(CONTENT_ENCODING))
    }
}
pub const CONTENT_ENCODING: &str = "gzip";

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
}

/// What the compaction needs beyond [`Bucket`]: the objects under a prefix, tagged and copied
/// (the archiving functions neither list, tag nor copy).
pub trait ObjectListing: Send + Sync {
    /// Every object whose key starts with `prefix`, in key order.
    fn list_objects(&self, prefix: &str) -> impl Future<Output = Result<Vec<ListedObject>>> + Send;
    /// Sets the object's tags to this one (a lifecycle rule can act on it).
    fn tag_object(&self, key: &str, tag: (&str, &str)) -> impl Future<Output = Result<()>> + Send;
    /// Copies `from` to `to` in the bucket, on S3's side (an object of at most 5 GB).
    fn copy_object(&self, from: &str, to: &str) -> impl Future<Output = Result<()>> + Send;
}

/// One uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
    /// The part's CRC32 (base64), as S3 computed it, for the completion call.
    pub checksum_crc32: Option<String>,
}

/// The bucket: it takes whole objects and multipart uploads, and gives back a whole
/// object (a run's progress too large for its item).
pub trait Bucket: Send + Sync {
    /// The object's bytes; `None` when there is no such key.
    fn get_object(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Streams the object's bytes into `into` as they arrive; `false` when there is no such key.
    /// An error `into` returns stops the read (and is returned).
    fn get_object_into(
        &self,
        key: &str,
        into: &mut (dyn std::io::Write + Send),
    ) -> impl Future<Output = Result<bool>> + Send;
    fn put_object(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
    /// Starts a multipart upload; returns its upload id.
    fn create_multipart(&self, key: &str) -> impl Future<Output = Result<String>> + Send;
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<UploadedPart>> + Send;
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn abort_multipart(&self, key: &str, upload_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes `key`; a key that is not there is not an error (an abandoned history pool's
    /// objects, the compaction's sources).
    fn delete_object(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
}

/// What the S3 adapter sent, for the run's summary and the tests.
#[derive(Debug, Default)]
pub struct UploadCounters {
    pub put_objects: AtomicU64,
    pub multipart_uploads: AtomicU64,
    pub upload_parts: AtomicU64,
    pub aborted_uploads: AtomicU64,
    pub bytes: AtomicU64,
}

/// History objects in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
    counters: Arc<UploadCounters>,
}

impl S3Bucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Bucket { client, bucket: bucket.into(), counters: Arc::default() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn counters(&self) -> &UploadCounters {
        &self.counters
    }

    fn error<E, R>(
        &self,
        operation: &'static str,
        key: &str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::error::HttpStatus,
    {
        Error::from_storage_sdk(operation, format!("s3://{}/{key}", self.bucket), err)
    }

    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Bucket for S3Bucket {
    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) => return Err(self.error("S3 GetObject", key, err)),
        };
        let body = output.body.collect().await.map_err(|e| Error::Storage {
            operation: "S3 GetObject",
            resource: format!("s3://{}/{key}", self.bucket),
            code: "ResponseError".into(),
            message: format!("the object's body could not be read: {e}"),
            status: None,
            retryable: true,
        })?;
        Ok(Some(body.to_vec()))
    }

    #[instrument(skip(self, into), fields(bucket = %self.bucket))]
    async fn get_object_into(&self, key: &str, into: &mut (dyn std::io::Write + Send)) -> Result<bool> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(false),
            Err(err) => return Err(self.error("S3 GetObject", key, err)),
        };
        let resource = || format!("s3://{}/{key}", self.bucket);
        let mut body = output.body;
        loop {
            let chunk = body.try_next().await.map_err(|e| Error::Storage {
                operation: "S3 GetObject",
                resource: resource(),
                code: "ResponseError".into(),
                message: format!("the object's body could not be read: {e}"),
                status: None,
                retryable: true,
            })?;
            let Some(chunk) = chunk else { return Ok(true) };
            into.write_all(&chunk).map_err(|e| Error::UnreadableItem(format!("{}: {e}", resource())))?;
        }
    }

    #[instrument(skip(self, body), fields(bucket = %self.bucket, bytes = body.len()))]
    async fn put_object(&self, key: &str, body: Vec<u8>) -> Result<()> {
        let bytes = body.len() as u64;
        let (content_type, encoding) = content_of(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_encoding(encoding.map(str::to_owned))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("S3 PutObject", key, e))?;
        Self::count(&self.counters.put_objects, 1);
        Self::count(&self.counters.bytes, bytes);
        Ok(())
    }

    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn create_multipart(&self, key: &str) -> Result<String> {
        let (content_type, encoding) = content_of(key);
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_encoding(encoding.map(str::to_owned))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| self.error("S3 CreateMultipartUpload", key, e))?;
        Self::count(&self.counters.multipart_uploads, 1);
        output.upload_id.ok_or_else(|| Error::Storage {
            operation: "S3 CreateMultipartUpload",
            resource: format!("s3://{}/{key}", self.bucket),
            code: "MalformedResponse".into(),
            message: "no UploadId in the answer".into(),
            status: None,
            retryable: true,
        })
    }

    #[instrument(skip(self, body), fields(bucket = %self.bucket, bytes = body.len()))]
    async fn upload_part(&self, key: &str, upload_id: &str, number: i32, body: Vec<u8>) -> Result<UploadedPart> {
        let bytes = body.len() as u64;
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("S3 UploadPart", key, e))?;
        Self::count(&self.counters.upload_parts, 1);
        Self::count(&self.counters.bytes, bytes);
        Ok(UploadedPart { number, etag: output.e_tag.unwrap_or_default(), checksum_crc32: output.checksum_crc32 })
    }

    #[instrument(skip(self, parts), fields(bucket = %self.bucket, parts = parts.len()))]
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> Result<()> {
        let parts = parts
            .into_iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(p.etag)
                    .set_checksum_crc32(p.checksum_crc32)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.error("S3 CompleteMultipartUpload", key, e))?;
        Ok(())
    }

    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.error("S3 AbortMultipartUpload", key, e))?;
        Self::count(&self.counters.aborted_uploads, 1);
        Ok(())
    }

    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn delete_object(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("S3 DeleteObject", key, e))?;
        Ok(())
    }
}

impl ObjectListing for S3Bucket {
    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        let mut objects = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("S3 ListObjectsV2", prefix, e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    objects.push(ListedObject { key: key.to_owned(), size: object.size().unwrap_or(0).max(0) as u64 });
                }
            }
        }
        objects.sort();
        Ok(objects)
    }

    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn tag_object(&self, key: &str, (name, value): (&str, &str)) -> Result<()> {
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(name)
            .value(value)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let tagging =
            aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().map_err(|e| Error::Config(e.to_string()))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("S3 PutObjectTagging", key, e))?;
        Ok(())
    }

    #[instrument(skip(self), fields(bucket = %self.bucket))]
    async fn copy_object(&self, from: &str, to: &str) -> Result<()> {
        // `x-amz-copy-source` is `bucket/key`, the key URL-encoded.
        const KEEP: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
        let source = format!("{}/{}", self.bucket, percent_encoding::utf8_percent_encode(from, KEEP));
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| self.error("S3 CopyObject", &format!("{from} to {to}"), e))?;
        Ok(())
    }
}

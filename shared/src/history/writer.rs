//! One history object, written as a stream: lines are gzip'd as they come, and once the
//! compressed bytes pass the part size the object becomes a multipart upload whose parts leave
//! as they fill, so memory stays at about one part whatever the number of lines. A small object
//! is one PutObject. A failed or abandoned object aborts its upload: no orphaned parts.

use tracing::warn;

use super::bucket::{Bucket, UploadedPart};
use super::ndjson::GzipLines;
use crate::error::Result;

/// The smallest part S3 takes (all but the last part).
pub const S3_MIN_UPLOAD_PART_SIZE: usize = 5 * 1024 * 1024;
/// The default size of a part: an object goes multipart once its gzip'd bytes pass it. S3's
/// smallest, since a run buffers a part of each of its two objects; 10,000 parts still allow 48 GiB.
pub const DEFAULT_UPLOAD_PART_SIZE: usize = S3_MIN_UPLOAD_PART_SIZE;

/// One object's lines of a part, gzip'd, not written yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StagedObject {
    /// One whole gzip stream of the lines, each ending in a newline.
    pub gzip: Vec<u8>,
    pub lines: u64,
}

/// A history object written by [`HistoryObject::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenObject {
    pub key: String,
    pub lines: u64,
    /// Compressed size.
    pub bytes: u64,
    /// Parts of the multipart upload; 0 for a single PutObject.
    pub upload_parts: usize,
}

struct Upload {
    id: String,
    parts: Vec<UploadedPart>,
}

/// An object uploaded as its bytes come: one PutObject when they all fit in a part, else a
/// multipart upload whose parts leave as they fill. What writes the bytes (gzip'd lines, a
/// Parquet file) is the caller's.
pub struct ObjectUpload<'a, O: Bucket> {
    bucket: &'a O,
    key: String,
    upload_part_size: usize,
    upload: Option<Upload>,
    bytes: u64,
}

impl<'a, O: Bucket> ObjectUpload<'a, O> {
    /// `upload_part_size` is raised to S3's 5 MiB minimum.
    pub fn new(bucket: &'a O, key: String, upload_part_size: usize) -> Self {
        ObjectUpload {
            bucket,
            key,
            upload_part_size: upload_part_size.max(S3_MIN_UPLOAD_PART_SIZE),
            upload: None,
            bytes: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn upload_part_size(&self) -> usize {
        self.upload_part_size
    }

    /// Uploads `body` as the next part (at least the part size, but the last).
    pub async fn upload_part(&mut self, body: Vec<u8>) -> Result<()> {
        if self.upload.is_none() {
            let id = self.bucket.create_multipart(&self.key).await?;
            self.upload = Some(Upload { id, parts: Vec::new() });
        }
        let upload = self.upload.as_mut().expect("upload started above");
        let number = upload.parts.len() as i32 + 1;
        self.bytes += body.len() as u64;
        let part = self.bucket.upload_part(&self.key, &upload.id, number, body).await?;
        upload.parts.push(part);
        Ok(())
    }

    /// Writes the object with its last bytes: the last part and the completion, or one
    /// PutObject. On failure the upload is aborted before the error is returned. Returns the
    /// object's size and its parts (0 for a PutObject).
    pub async fn finish(&mut self, rest: Vec<u8>) -> Result<(u64, usize)> {
        let result = match self.upload.take() {
            None => {
                self.bytes += rest.len() as u64;
                self.bucket.put_object(&self.key, rest).await.map(|()| 0)
            }
            Some(upload) => {
                self.upload = Some(upload);
                self.complete(rest).await
            }
        };
        match result {
            Ok(parts) => Ok((self.bytes, parts)),
            Err(err) => {
                self.abort().await;
                Err(err)
            }
        }
    }

    async fn complete(&mut self, rest: Vec<u8>) -> Result<usize> {
        self.upload_part(rest).await?;
        let upload = self.upload.as_ref().expect("multipart upload in progress");
        let parts = upload.parts.len();
        self.bucket.complete_multipart(&self.key, &upload.id, upload.parts.clone()).await?;
        self.upload = None;
        Ok(parts)
    }

    /// Gives the object up: aborts its multipart upload, if any, so no parts are left behind.
    /// Best effort: a failure to abort is logged (a bucket lifecycle rule cleans up after it).
    pub async fn abort(&mut self) {
        if let Some(upload) = self.upload.take() {
            if let Err(err) = self.bucket.abort_multipart(&self.key, &upload.id).await {
                warn!(key = %self.key, error = %err, "could not abort the multipart upload");
            }
        }
    }
}

/// A history object being written.
pub struct HistoryObject<'a, O: Bucket> {
    upload: ObjectUpload<'a, O>,
    gzip: GzipLines,
}

impl<'a, O: Bucket> HistoryObject<'a, O> {
    /// `upload_part_size` is raised to S3's 5 MiB minimum.
    pub fn new(bucket: &'a O, key: String, upload_part_size: usize) -> Self {
        HistoryObject { upload: ObjectUpload::new(bucket, key, upload_part_size), gzip: GzipLines::default() }
    }

    pub fn key(&self) -> &str {
        self.upload.key()
    }

    pub fn lines(&self) -> u64 {
        self.gzip.lines()
    }

    /// Adds a line (without its newline); uploads a part when one is full.
    pub async fn push(&mut self, line: &str) -> Result<()> {
        self.gzip.push(line);
        if let Some(part) = self.gzip.take_if_at_least(self.upload.upload_part_size()) {
            self.upload.upload_part(part).await?;
        }
        Ok(())
    }

    /// Writes the object: the last part and the completion, or one PutObject. On failure the
    /// upload is aborted before the error is returned. The object stays the caller's, so a finish
    /// given up half-way (its future dropped at a deadline) can still be aborted.
    pub async fn finish(&mut self) -> Result<WrittenObject> {
        let lines = self.gzip.lines();
        let rest = std::mem::take(&mut self.gzip).finish();
        let (bytes, parts) = self.upload.finish(rest).await?;
        Ok(WrittenObject { key: self.upload.key().to_owned(), lines, bytes, upload_parts: parts })
    }

    /// Gives the object up: aborts its multipart upload, if any.
    pub async fn abort(&mut self) {
        self.upload.abort().await;
    }

    /// The gzip'd bytes its lines take so far, while they are all still here (see [`Self::stage`]).
    pub fn staged_size(&self) -> Option<usize> {
        self.upload.upload.is_none().then(|| self.gzip.buffered())
    }

    /// Its lines, gzip'd, instead of the object, while they are all still here (no part has
    /// left); `None` once the object went multipart: it is then finished as itself.
    pub fn stage(&mut self) -> Option<StagedObject> {
        if self.upload.upload.is_some() {
            return None;
        }
        let lines = self.gzip.lines();
        Some(StagedObject { gzip: std::mem::take(&mut self.gzip).finish(), lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::memory::MemoryBucket;

    /// Lines that gzip poorly, so a few MiB of them pass the part size.
    fn noisy_line(i: u64) -> String {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let noise: String = (0..24)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:016x}", x)
            })
            .collect();
        format!("{{\"n\":{i},\"noise\":\"{noise}\"}}")
    }

    #[tokio::test]
    async fn a_small_object_is_one_put_with_every_line() {
        let bucket = MemoryBucket::default();
        let mut object = HistoryObject::new(&bucket, "k".into(), DEFAULT_UPLOAD_PART_SIZE);
        for i in 0..100 {
            object.push(&noisy_line(i)).await.unwrap();
        }
        let written = object.finish().await.unwrap();
        assert_eq!((written.lines, written.upload_parts), (100, 0));
        assert_eq!(bucket.text("k").lines().count(), 100);
    }

    #[tokio::test]
    async fn a_large_object_goes_multipart_with_parts_of_at_least_the_part_size() {
        let bucket = MemoryBucket::default();
        let mut object = HistoryObject::new(&bucket, "big".into(), S3_MIN_UPLOAD_PART_SIZE);
        let mut max_pending = 0;
        for i in 0..40_000 {
            object.push(&noisy_line(i)).await.unwrap();
            max_pending = max_pending.max(object.gzip.buffered());
        }
        let written = object.finish().await.unwrap();
        assert!(written.upload_parts >= 2, "{written:?}");
        assert!(max_pending < S3_MIN_UPLOAD_PART_SIZE + 64 * 1024, "memory stays near one part: {max_pending}");
        let text = bucket.text("big");
        assert_eq!(text.lines().count(), 40_000);
        assert_eq!(text.lines().last().unwrap(), noisy_line(39_999));
    }

    #[tokio::test]
    async fn a_failed_completion_aborts_the_upload() {
        let bucket = MemoryBucket::default();
        bucket.failing("complete");
        let mut object = HistoryObject::new(&bucket, "big".into(), S3_MIN_UPLOAD_PART_SIZE);
        for i in 0..40_000 {
            object.push(&noisy_line(i)).await.unwrap();
        }
        let err = object.finish().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(bucket.aborted(), ["upload-big"]);
        assert_eq!(bucket.open_uploads(), 0, "no parts left behind");
        assert!(bucket.keys().is_empty());
    }

    #[tokio::test]
    async fn an_abandoned_object_aborts_its_upload() {
        let bucket = MemoryBucket::default();
        let mut object = HistoryObject::new(&bucket, "big".into(), S3_MIN_UPLOAD_PART_SIZE);
        for i in 0..30_000 {
            object.push(&noisy_line(i)).await.unwrap();
        }
        object.abort().await;
        assert_eq!(bucket.aborted().len(), 1);
        assert!(bucket.keys().is_empty());
    }
}

//! The bucket's in-memory twin, for unit tests that need no moto: objects, multipart uploads
//! (aborted ones remembered), tags, and failures on demand; the end-to-end tests on moto check
//! the S3 adapter.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Bucket, ListedObject, ObjectListing, UploadedPart};
use crate::error::{injected, Error, Result};
use serde_json::{Map, Value as Json};

/// The parts of each open multipart upload, by upload id.
type OpenUploads = BTreeMap<String, Vec<(i32, Vec<u8>)>>;

/// The bucket, in memory: objects, open multipart uploads, and the uploads aborted.
#[derive(Default)]
pub struct MemoryBucket {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    uploads: Mutex<OpenUploads>,
    aborted: Mutex<Vec<String>>,
    /// An operation (`put`, `create`, `part`, `complete`) that fails.
    fail: Mutex<Option<&'static str>>,
    /// GetObject calls, found or not.
    gets: AtomicU64,
    /// Each tagged object's tag, `name=value`.
    tags: Mutex<BTreeMap<String, String>>,
}

impl MemoryBucket {
    /// Makes `operation` (`put`, `create`, `part` or `complete`) fail until [`MemoryBucket::heal`].
    pub fn failing(&self, operation: &'static str) {
        *self.fail.lock().unwrap() = Some(operation);
    }

    pub fn heal(&self) {
        *self.fail.lock().unwrap() = None;
    }

    fn check(&self, operation: &'static str) -> Result<()> {
        match *self.fail.lock().unwrap() {
            Some(failing) if failing == operation => Err(injected("S3")),
            _ => Ok(()),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    /// Changes an object's bytes, as a hand or a bug would: `None` deletes it.
    pub fn replace(&self, key: &str, body: Option<Vec<u8>>) {
        let mut objects = self.objects.lock().unwrap();
        match body {
            Some(body) => objects.insert(key.into(), body),
            None => objects.remove(key),
        };
    }

    /// GetObject calls so far, found or not.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// An object's bytes, as stored.
    pub fn get_bytes(&self, key: &str) -> Vec<u8> {
        self.objects.lock().unwrap().get(key).cloned().unwrap_or_else(|| panic!("no object {key}"))
    }

    pub fn open_uploads(&self) -> usize {
        self.uploads.lock().unwrap().len()
    }

    pub fn aborted(&self) -> Vec<String> {
        self.aborted.lock().unwrap().clone()
    }

    /// The text of an object, gunzip'd (gzip members concatenated, as the parts are).
    pub fn text(&self, key: &str) -> String {
        let objects = self.objects.lock().unwrap();
        let body = objects.get(key).unwrap_or_else(|| panic!("no object {key}"));
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
        text
    }

    /// An object's bytes as text, not gunzip'd (a marker).
    pub fn text_plain(&self, key: &str) -> String {
        String::from_utf8(self.get_bytes(key)).unwrap()
    }

    /// Each tagged object's tag, `name=value`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.tags.lock().unwrap().clone()
    }

    /// Every object and its bytes, to tell whether anything was written.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects.lock().unwrap().clone()
    }

    /// The JSON lines of an object.
    pub fn lines(&self, key: &str) -> Vec<Map<String, Json>> {
        self.text(key).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The lines of every object whose key holds `part`, in key order.
    pub fn lines_of(&self, part: &str) -> Vec<Map<String, Json>> {
        self.keys().iter().filter(|k| k.contains(part)).flat_map(|k| self.lines(k)).collect()
    }
}

impl ObjectListing for MemoryBucket {
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        self.check("ListObjectsV2")?;
        let objects = self.objects.lock().unwrap();
        let listed = objects.range(prefix.to_owned()..).take_while(|(key, _)| key.starts_with(prefix));
        Ok(listed.map(|(key, body)| ListedObject { key: key.clone(), size: body.len() as u64 }).collect())
    }

    async fn tag_object(&self, key: &str, (name, value): (&str, &str)) -> Result<()> {
        self.check("PutObjectTagging")?;
        if !self.objects.lock().unwrap().contains_key(key) {
            return Err(injected("S3"));
        }
        self.tags.lock().unwrap().insert(key.to_owned(), format!("{name}={value}"));
        Ok(())
    }

    async fn copy_object(&self, from: &str, to: &str) -> Result<()> {
        self.check("CopyObject")?;
        let mut objects = self.objects.lock().unwrap();
        let body = objects.get(from).cloned().ok_or_else(|| injected("S3 CopyObject of a missing key"))?;
        objects.insert(to.to_owned(), body);
        Ok(())
    }
}

impl Bucket for MemoryBucket {
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.check("GetObject")?;
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }

    async fn get_object_into(&self, key: &str, into: &mut (dyn std::io::Write + Send)) -> Result<bool> {
        let Some(body) = self.get_object(key).await? else { return Ok(false) };
        // In pieces, as S3's body arrives.
        for piece in body.chunks(64 * 1024) {
            into.write_all(piece).map_err(|e| Error::UnreadableItem(format!("s3://memory/{key}: {e}")))?;
        }
        Ok(true)
    }

    async fn put_object(&self, key: &str, body: Vec<u8>) -> Result<()> {
        self.check("put")?;
        self.objects.lock().unwrap().insert(key.into(), body);
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> Result<String> {
        self.check("create")?;
        let id = format!("upload-{key}");
        self.uploads.lock().unwrap().insert(id.clone(), Vec::new());
        Ok(id)
    }

    async fn upload_part(&self, _key: &str, upload_id: &str, number: i32, body: Vec<u8>) -> Result<UploadedPart> {
        self.check("part")?;
        let mut uploads = self.uploads.lock().unwrap();
        let parts = uploads.get_mut(upload_id).ok_or_else(|| injected("S3 UploadPart (no such upload)"))?;
        parts.push((number, body));
        Ok(UploadedPart { number, etag: format!("etag-{number}"), checksum_crc32: None })
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> Result<()> {
        self.check("complete")?;
        let uploaded = self.uploads.lock().unwrap().remove(upload_id).unwrap_or_default();
        let numbers: Vec<i32> = uploaded.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, parts.iter().map(|p| p.number).collect::<Vec<_>>(), "parts completed in order");
        let body = uploaded.into_iter().flat_map(|(_, bytes)| bytes).collect();
        self.objects.lock().unwrap().insert(key.into(), body);
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        self.uploads.lock().unwrap().remove(upload_id);
        self.aborted.lock().unwrap().push(upload_id.into());
        Ok(())
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        self.check("DeleteObject")?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

//! History in S3: object keys, the NDJSON.gz encoding of session lines, the runs dataset's lines
//! ([`runs`]), the pooled objects of several scopes' parts ([`pool`]), and the streaming writer of one object behind the [`Bucket`] port (S3 adapter:
//! [`S3Bucket`]).

pub mod bucket;
mod keys;
/// The in-memory twin, for the tests of this crate and its sibling crates (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod memory;
mod ndjson;
pub mod pool;
pub mod runs;
mod writer;

/// The change a changes line records and the run a key names (both of the model).
pub use crate::model::{Change, RunId};
pub use bucket::{Bucket, ListedObject, ObjectListing, S3Bucket, UploadCounters, UploadedPart};
pub use keys::{object_key, under_prefix, HistoryKind};
pub use ndjson::{change_columns, line, GzipLines, LineBuffer, RunContext};
pub use writer::{HistoryObject, ObjectUpload, WrittenObject, DEFAULT_UPLOAD_PART_SIZE, S3_MIN_UPLOAD_PART_SIZE};

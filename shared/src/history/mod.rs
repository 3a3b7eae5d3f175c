//! History in S3: object keys and the NDJSON.gz encoding of session lines.
//!
//! Pure pieces only so far: the key builder and the streaming encoder. The S3 adapter (PutObject
//! for small runs, multipart past ~8 MiB) builds on them.

mod keys;
mod ndjson;

pub use keys::{object_key, HistoryKind, RunId};
pub use ndjson::{change_columns, line, Change, GzipLines, RunContext};

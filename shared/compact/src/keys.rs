//! Where a compacted day's objects go (the source partition, the Parquet partition, the staging
//! of a day split into slices) and the marker that says a day is compacted.

use serde::{Deserialize, Serialize};
use session_archiver::history::under_prefix;

use crate::columns::Dataset;

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
    /// The split whose slices were compacted, when the day was split (`crate::slices`); `plan` in
    /// the marker, its name from when a split was called a plan.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "plan")]
    pub split: Option<String>,
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

/// `<prefix>/parquet/_staging/<kind>/<service>/dt=<day>/`: outside every table's location.
pub fn staging_prefix(history_prefix: &str, dataset: &Dataset, day: &str) -> String {
    under_prefix(history_prefix, &format!("parquet/_staging/{}/{}/dt={day}/", dataset.kind.as_str(), dataset.service))
}

/// The split of a day into slices (`plan.json`, its name from when a split was called a plan).
pub fn split_key(history_prefix: &str, dataset: &Dataset, day: &str) -> String {
    format!("{}plan.json", staging_prefix(history_prefix, dataset, day))
}

pub fn staged_key(history_prefix: &str, dataset: &Dataset, day: &str, split: &str, slice: usize) -> String {
    format!("{}{split}/part-{slice:05}.parquet", staging_prefix(history_prefix, dataset, day))
}

pub fn record_key(history_prefix: &str, dataset: &Dataset, day: &str, split: &str, slice: usize) -> String {
    format!("{}{split}/part-{slice:05}.json", staging_prefix(history_prefix, dataset, day))
}

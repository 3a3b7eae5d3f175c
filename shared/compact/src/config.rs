//! The compactor's configuration. The compactor (`history-compactor`, which compacts a day of the history into Parquet) reads
//! these:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BUCKET_NAME` | required | S3 bucket of the history (set by the template) |
//! | `HISTORY_PREFIX` | `history` | key prefix of the history objects; the Parquet goes under `<prefix>/parquet/` |
//! | `COMPACTION_SORT_MEMORY_MB` | `256` | MiB of lines sorted in memory before they are spilled to the temporary directory |
//! | `COMPACTION_ROW_GROUP_MB` | `64` | encoded MiB of a Parquet row group (one is in memory at a time) |
//! | `COMPACTION_PART_SOURCE_BYTES` | `536870912` | gzip'd source bytes one slice of a day is compacted from; a day of more is split into slices, compacted by tasks on `COMPACTION_QUEUE_URL` |
//! | `COMPACTION_QUEUE_URL` | none | the compaction's task queue (set by the template); none: the slices of a day are compacted one after the other in the invocation |
//! | `COMPACTION_DEAD_LETTER_QUEUE_URL` | none | where a task that no retry can mend goes, with its error as attributes (set by the template); none: SQS's redrive moves it, without the error |
//! | `HISTORY_START_DATE` | `2024-01-01` | a day before it is refused, as the functions refuse it |
//! | `STORAGE_ENDPOINT_URL` | none | send the S3 calls there (local moto) |
//! | `AWS_REGION` | set by Lambda | region of the bucket |

use session_archiver::aws::SdkSettings;
use session_archiver::error::{quoted, Error, Result};
use session_archiver::lambda::env::{history_start, Vars};
use session_archiver::model::Timestamp;

/// What the compactor needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactorConfig {
    pub bucket_name: String,
    pub region: String,
    pub history_prefix: String,
    /// Bytes of lines sorted in memory before a spill.
    pub sort_memory: usize,
    /// Encoded bytes of a row group.
    pub row_group_bytes: usize,
    /// Gzip'd source bytes of one slice of a day.
    pub slice_source_bytes: u64,
    pub task_queue: Option<String>,
    pub task_dead_letter_queue: Option<String>,
    pub history_start: Timestamp,
    pub storage_endpoint: Option<String>,
}

impl CompactorConfig {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(var);
        let history_prefix = vars.get("HISTORY_PREFIX").unwrap_or_else(|| "history".into());
        if !session_archiver::run::config::is_key_prefix(&history_prefix) {
            return Err(Error::Config(format!(
                "HISTORY_PREFIX={} must be at most 512 characters of letters, digits and / ! - _ . * ' ( ) =, without . or .. segments",
                quoted(&history_prefix)
            )));
        }
        const MIB: u64 = 1024 * 1024;
        Ok(CompactorConfig {
            bucket_name: vars.bucket_name()?,
            region: vars.required("AWS_REGION")?,
            history_prefix,
            sort_memory: (vars.number("COMPACTION_SORT_MEMORY_MB", 256, 16..=8192)? * MIB) as usize,
            row_group_bytes: (vars.number("COMPACTION_ROW_GROUP_MB", 64, 1..=1024)? * MIB) as usize,
            slice_source_bytes: vars.number("COMPACTION_PART_SOURCE_BYTES", 512 * MIB, 1..=64 * 1024 * MIB)?,
            task_queue: vars.endpoint("COMPACTION_QUEUE_URL")?,
            task_dead_letter_queue: vars.endpoint("COMPACTION_DEAD_LETTER_QUEUE_URL")?,
            history_start: history_start(vars.get("HISTORY_START_DATE"))?,
            storage_endpoint: vars.endpoint("STORAGE_ENDPOINT_URL")?,
        })
    }

    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// SDK settings of the S3 client.
    pub fn sdk(&self) -> SdkSettings {
        SdkSettings {
            region: Some(self.region.clone()),
            endpoint_url: self.storage_endpoint.clone(),
            ..SdkSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_archiver::lambda::env::fixture;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        fixture(&[("BUCKET_NAME", "session-archiver-history-123"), ("AWS_REGION", "eu-west-1")], pairs)
    }

    #[test]
    fn the_compactor_takes_its_defaults_and_refuses_a_bad_value_naming_it() {
        let defaults = CompactorConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(
            (defaults.slice_source_bytes, defaults.task_queue, defaults.task_dead_letter_queue),
            (512 << 20, None, None)
        );
        let queued = CompactorConfig::from_vars(vars(&[
            ("COMPACTION_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/compaction"),
            ("COMPACTION_PART_SOURCE_BYTES", "1"),
        ]))
        .unwrap();
        assert_eq!(queued.slice_source_bytes, 1);
        assert!(queued.task_queue.is_some_and(|url| url.ends_with("/compaction")));
        for (pairs, expected) in [
            (&[("COMPACTION_PART_SOURCE_BYTES", "0")], "COMPACTION_PART_SOURCE_BYTES=0 is out of range"),
            (&[("COMPACTION_PART_SOURCE_BYTES", "1MB")], "COMPACTION_PART_SOURCE_BYTES"),
            (&[("COMPACTION_QUEUE_URL", "compaction")], "COMPACTION_QUEUE_URL=`compaction` is not an http(s) URL"),
            (
                &[("COMPACTION_DEAD_LETTER_QUEUE_URL", "dlq")],
                "COMPACTION_DEAD_LETTER_QUEUE_URL=`dlq` is not an http(s) URL",
            ),
        ] {
            let err = CompactorConfig::from_vars(vars(pairs)).unwrap_err();
            assert!(err.to_string().contains(expected), "{pairs:?}: {err}");
        }
    }
}

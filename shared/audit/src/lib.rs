//! `session-audit`: answers "who was connected when" from the archived history, read from S3 or
//! a local copy.
//!
//! - [`cli`]: the command line;
//! - [`archive`]: listing the `dt=` partitions a range needs, streaming gunzip of each object;
//! - [`record`]: a history line as the audit reads it;
//! - [`query`]: the answers (sessions, timeline, active-at, summary, concurrency), pure;
//! - [`folds`]: the answers that sum a range, folded a line at a time as it streams by;
//! - [`intervals`], [`connected`]: who was connected when, per user and session, pure;
//! - [`output`]: table, CSV and JSON;
//! - [`plot`]: the concurrency plot, SVG and PNG;
//! - [`report`]: the HTML report, one self-contained file.

pub mod archive;
pub mod cli;
pub mod connected;
pub mod folds;
pub mod intervals;
pub mod output;
pub mod plot;
pub mod query;
pub mod record;
pub mod report;

use archive::{Archive, ObjectRef, ScopeFilter};
use record::{day_of, AuditLine};

/// What can go wrong, each with what the user needs to fix it.
#[derive(Debug)]
pub enum AuditError {
    /// A bad argument: an unknown service, a bad time or range.
    Usage(String),
    /// The bucket or directory cannot be read.
    Archive(String),
    /// An output file (a plot, the report) cannot be written.
    Write(String),
    /// An object or line that is not history.
    Corrupt { key: String, line: Option<u64>, detail: String },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Usage(what) => write!(f, "{what}"),
            AuditError::Archive(what) => write!(f, "cannot read the history: {what}"),
            AuditError::Write(what) => write!(f, "cannot write {what}"),
            AuditError::Corrupt { key, line: Some(line), detail } => write!(f, "{key} line {line}: {detail}"),
            AuditError::Corrupt { key, line: None, detail } => write!(f, "{key}: {detail}"),
        }
    }
}

impl std::error::Error for AuditError {}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// The history kinds the CLI reads.
pub const SNAPSHOTS: &str = "snapshots";
pub const CHANGES: &str = "changes";

/// The days whose partitions may hold lines observed in `[from, to]`: a run's `dt` is its event's
/// day, and a run may observe a little after midnight, so the day before `from` is read too.
pub fn days(from: i64, to: i64) -> Vec<String> {
    let mut days = Vec::new();
    let mut at = from - 86_400;
    while at <= to + 86_399 {
        let day = day_of(at);
        if days.last() != Some(&day) && at <= to {
            days.push(day);
        }
        at += 86_400;
    }
    days
}

/// What a question folds the history into, a line at a time, in key order: what it holds grows
/// with what it answers, not with the lines read.
pub trait Fold {
    fn add(&mut self, line: AuditLine);

    /// Every line of one partition (one kind of a service's day) has been given: a run's lines
    /// are all in its day's partition, so what a fold holds per run is complete.
    fn end_partition(&mut self) {}
}

impl<F: FnMut(AuditLine)> Fold for F {
    fn add(&mut self, line: AuditLine) {
        self(line)
    }
}

/// Objects fetched at once: each a request's wait on S3.
const OBJECTS_AT_ONCE: usize = 8;

/// The account and region an object's name gives, `<account>.<region>.<run>….jsonl.gz`: a scope's
/// own object; `None` for one that holds several scopes (a batch's pool, a compacted day).
pub fn scope_of_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.rsplit('/').next()?.split('.');
    let (account, region) = (parts.next()?, parts.next()?);
    (session_archiver::model::is_account_id(account) && session_archiver::model::is_region(region))
        .then_some((account, region))
}

/// What a read went through: objects, and the row groups of compacted days read and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub objects: u64,
    pub bytes: u64,
    pub row_groups: u64,
    pub row_groups_skipped: u64,
}

/// The objects of `kinds` for `services` in the partitions of `[from, to]`, each with its
/// partition's number, but those named for a scope `scopes` does not keep.
async fn partitions(
    archive: &Archive,
    kinds: &[&str],
    services: &[&str],
    from: i64,
    to: i64,
    scopes: &ScopeFilter,
) -> Result<Vec<(usize, ObjectRef)>> {
    let mut objects = Vec::new();
    let mut partition = 0;
    for service in services {
        for kind in kinds {
            for day in days(from, to) {
                let listed = archive.list(kind, service, &day).await?;
                let kept = listed.into_iter().filter(|o| scope_of_key(&o.key).is_none_or(|(a, r)| scopes.keeps(a, r)));
                objects.extend(kept.map(|object| (partition, object)));
                partition += 1;
            }
        }
    }
    Ok(objects)
}

/// Gives every line of `kinds` for `services` in the partitions of `[from, to]` to `fold`, in
/// key order, a partition's end after its last: objects are fetched [`OBJECTS_AT_ONCE`] at a
/// time and decoded one at a time as they come; an object named for a scope `scopes` does not
/// keep is not read, nor a compacted row group whose statistics hold none. A progress bar on
/// stderr (hidden when stderr is not a terminal).
pub async fn stream(
    archive: &Archive,
    kinds: &[&str],
    services: &[&str],
    (from, to): (i64, i64),
    scopes: &ScopeFilter,
    fold: &mut dyn Fold,
) -> Result<ReadCounts> {
    let objects = partitions(archive, kinds, services, from, to, scopes).await?;
    let mut each = |next_partition: bool, key: &str, body: Vec<u8>| {
        if next_partition {
            fold.end_partition();
        }
        archive::each_line(key, body, scopes, &mut |line| {
            if scopes.keeps(&line.account_id, &line.region) {
                fold.add(line);
            }
        })
    };
    let counts = fetch_each(archive, &objects, &mut each).await?;
    fold.end_partition();
    Ok(counts)
}

/// The runs dataset's lines of `services` on the days of `[from, to]` (and the day before), the
/// runs of scopes that hold no session and of those that failed included, each given to `each`.
pub async fn stream_runs(
    archive: &Archive,
    services: &[&str],
    (from, to): (i64, i64),
    scopes: &ScopeFilter,
    each: &mut dyn FnMut(record::RunRecord),
) -> Result<ReadCounts> {
    let objects = partitions(archive, &[RUNS], services, from, to, scopes).await?;
    let mut kept = |run: record::RunRecord| {
        if scopes.keeps(&run.account_id, &run.region) {
            each(run);
        }
    };
    let mut decode = |_, key: &str, body: Vec<u8>| archive::each_run(key, body, scopes, &mut kept);
    fetch_each(archive, &objects, &mut decode).await
}

/// What decodes a fetched object: whether it begins another partition, its key, its bytes.
type Decode<'a> = dyn FnMut(bool, &str, Vec<u8>) -> Result<session_compaction::columns::ParquetRead> + 'a;

/// Fetches `objects` several at a time and hands each one's bytes to `decode` in order, saying
/// whether it begins another partition than the object before.
async fn fetch_each(archive: &Archive, objects: &[(usize, ObjectRef)], decode: &mut Decode<'_>) -> Result<ReadCounts> {
    use futures::{StreamExt, TryStreamExt};
    let total: u64 = objects.iter().map(|(_, o)| o.size).sum();
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let fetches =
        futures::stream::iter(objects.iter().map(|(partition, object)| async move {
            archive.fetch(object).await.map(|body| (*partition, object, body))
        }))
        .buffered(OBJECTS_AT_ONCE);
    let mut fetches = std::pin::pin!(fetches);
    let (mut counts, mut current) = (ReadCounts::default(), None);
    while let Some((partition, object, body)) = fetches.try_next().await? {
        let next_partition = current.is_some_and(|p| p != partition);
        current = Some(partition);
        bar.set_message(object.key.rsplit('/').next().unwrap_or_default().to_owned());
        let read = decode(next_partition, &object.key, body)?;
        counts.objects += 1;
        counts.bytes += object.size;
        counts.row_groups += read.row_groups as u64;
        counts.row_groups_skipped += read.skipped as u64;
        bar.inc(object.size);
    }
    bar.finish_and_clear();
    Ok(counts)
}

/// The runs dataset's folder, beside `snapshots` and `changes`.
pub const RUNS: &str = "runs";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_time;

    #[test]
    fn a_scope_s_own_object_is_told_by_its_name_a_pooled_or_compacted_one_is_not() {
        let key = |name: &str| format!("history/snapshots/ivs-stream-sessions/dt=2026-11-22/{name}");
        assert_eq!(scope_of_key(&key("111122223333.eu-west-1.run-1.jsonl.gz")), Some(("111122223333", "eu-west-1")));
        assert_eq!(scope_of_key(&key("plan-7.pool-ab12cd.jsonl.gz")), None);
        assert_eq!(scope_of_key(&key("part-00000.parquet")), None);
    }

    #[test]
    fn a_range_reads_its_days_and_the_day_before() {
        let at = |t| parse_time(t).unwrap();
        assert_eq!(days(at("2026-11-22T10:00:00Z"), at("2026-11-22T11:00:00Z")), ["2026-11-21", "2026-11-22"]);
        assert_eq!(
            days(at("2026-11-22"), at("2026-11-24T00:00:00Z")),
            ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"]
        );
    }
}

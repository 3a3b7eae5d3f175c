//! `session-audit`: answers "who was connected when" from the archived history, read from S3 or
//! a local copy.
//!
//! - [`cli`]: the command line;
//! - [`archive`]: listing the `dt=` partitions a range needs, streaming gunzip of each object;
//! - [`record`]: a history line as the audit reads it;
//! - [`query`]: the answers (sessions, timeline, active-at, summary, concurrency), pure;
//! - [`intervals`], [`connected`]: who was connected when, per user and session, pure;
//! - [`output`]: table, CSV and JSON;
//! - [`plot`]: the concurrency plot, SVG and PNG.

pub mod archive;
pub mod cli;
pub mod connected;
pub mod intervals;
pub mod output;
pub mod plot;
pub mod query;
pub mod record;

use archive::Archive;
use record::{day_of, AuditLine};

/// What can go wrong, each with what the user needs to fix it.
#[derive(Debug)]
pub enum AuditError {
    /// A bad argument: an unknown service, a bad time or range.
    Usage(String),
    /// The bucket or directory cannot be read.
    Archive(String),
    /// An object or line that is not history.
    Corrupt { key: String, line: Option<u64>, detail: String },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Usage(what) => write!(f, "{what}"),
            AuditError::Archive(what) => write!(f, "cannot read the history: {what}"),
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

/// Objects read at once: each a request's wait on S3.
const OBJECTS_AT_ONCE: usize = 8;

/// The account and region an object's name gives, `<account>.<region>.<run>….jsonl.gz`: a scope's
/// own object; `None` for one that holds several scopes (a batch's pool, a compacted day).
pub fn scope_of_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.rsplit('/').next()?.split('.');
    let (account, region) = (parts.next()?, parts.next()?);
    (session_archiver::model::is_account_id(account) && session_archiver::model::is_region(region))
        .then_some((account, region))
}

/// Reads every line of `kinds` for `services` in the partitions of `[from, to]`, several objects
/// at a time, with a progress bar on stderr (hidden when stderr is not a terminal). An object
/// whose name is another scope's (`keeps` says no to its account and region) is not read.
pub async fn load(
    archive: &Archive,
    kinds: &[&str],
    services: &[&str],
    from: i64,
    to: i64,
    keeps: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Result<Vec<AuditLine>> {
    let mut lines = Vec::new();
    stream(archive, kinds, services, from, to, keeps, &mut |line| lines.push(line)).await?;
    Ok(lines)
}

/// [`load`], each line given to `each` as its object is read, object by object in key order: at
/// most [`OBJECTS_AT_ONCE`] objects' lines are held at a time.
pub async fn stream(
    archive: &Archive,
    kinds: &[&str],
    services: &[&str],
    from: i64,
    to: i64,
    keeps: &(dyn Fn(&str, &str) -> bool + Sync),
    each: &mut dyn FnMut(AuditLine),
) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let mut objects = Vec::new();
    for service in services {
        for kind in kinds {
            for day in days(from, to) {
                objects.extend(archive.list(kind, service, &day).await?);
            }
        }
    }
    objects.retain(|object| scope_of_key(&object.key).is_none_or(|(account, region)| keeps(account, region)));
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    let bar = indicatif::ProgressBar::with_draw_target(Some(bytes), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let reads = futures::stream::iter(objects.iter().map(|object| async move {
        let mut lines = Vec::new();
        archive.read(object, |line| lines.push(line)).await.map(|()| (object, lines))
    }))
    .buffered(OBJECTS_AT_ONCE);
    let mut reads = std::pin::pin!(reads);
    while let Some((object, lines)) = reads.try_next().await? {
        bar.set_message(object.key.rsplit('/').next().unwrap_or_default().to_owned());
        lines.into_iter().for_each(&mut *each);
        bar.inc(object.size);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The runs dataset's lines of `services` on the days of `[from, to]` (and the day before), the
/// runs of scopes that hold no session and of those that failed included.
pub async fn load_runs(archive: &Archive, services: &[&str], from: i64, to: i64) -> Result<Vec<record::RunRecord>> {
    let mut runs = Vec::new();
    for service in services {
        for day in days(from, to) {
            for object in archive.list(RUNS, service, &day).await? {
                runs.extend(archive.read_runs(&object).await?);
            }
        }
    }
    Ok(runs)
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

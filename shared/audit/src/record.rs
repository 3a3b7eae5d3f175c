//! A history line as the audit reads it: the columns every service shares, from snapshot and
//! changes lines alike, NDJSON or Parquet, each read by the history's one reader
//! ([`session_compaction::columns`]: a line or a row typed by the schema).

use aws_smithy_types::DateTime;
use session_archiver::history::HistoryKind;
use session_archiver::model::{Column, Timestamp, RUN_COLUMNS};
use session_archiver::ServiceId;
use session_compaction::columns::{self, Dataset, Row, Value};

/// A scope, as the audit groups by it: service, account, region.
pub type ScopeKey = (String, String, String);

/// One observation of a session (a snapshot line) or one change (a changes line).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditLine {
    /// Epoch seconds of `snapshot_at`: when the run saw the session.
    pub seen_at: i64,
    pub run_id: String,
    pub account_id: String,
    pub region: String,
    pub service: String,
    pub parent_id: Option<String>,
    pub session_id: String,
    pub status: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub user_id: Option<String>,
    /// `opened`, `changed` or `ended` on a changes line; `None` on a snapshot line.
    pub change: Option<String>,
    pub previous_status: Option<String>,
    /// A WorkSpace's last known user connection (`last_known_user_connection_timestamp`).
    pub last_connected_at: Option<i64>,
}

/// The dataset (service and kind) a history object's key names: the two segments before its
/// `dt=` partition, `…/<kind>/<service>/dt=…/<file>`, for NDJSON and compacted Parquet alike.
pub fn dataset_of(key: &str) -> Result<Dataset, String> {
    let mut segments = key.rsplit('/').skip(2);
    let (service, kind) = (segments.next().unwrap_or_default(), segments.next().unwrap_or_default());
    let service: ServiceId = service.parse().map_err(|e: session_archiver::Error| e.to_string())?;
    let kind = HistoryKind::parse(kind).ok_or_else(|| format!("not a snapshots, changes or runs object: {kind}"))?;
    Ok(Dataset { service, kind })
}

/// Reads one NDJSON history line of a dataset (its `columns`) with the history's one reader (the
/// compaction's, typed by the schema), naming what is wrong.
pub fn parse_line(columns: &[Column], text: &str) -> Result<AuditLine, String> {
    AuditLine::from_row(columns, &columns::parse_line(columns, text)?)
}

impl AuditLine {
    /// The columns it is read from: what a compacted day's Parquet is projected to.
    pub const COLUMNS: &'static [&'static str] = &[
        "snapshot_at",
        "run_id",
        "account_id",
        "region",
        "service",
        "parent_id",
        "session_id",
        "status",
        "started_at",
        "ended_at",
        "user_id",
        "change",
        "previous_status",
        "last_known_user_connection_timestamp",
    ];

    /// The scope the line is of.
    pub fn scope(&self) -> ScopeKey {
        (self.service.clone(), self.account_id.clone(), self.region.clone())
    }

    /// The audit's columns of a typed row of a dataset (its `columns`), from an NDJSON line or a
    /// Parquet row alike.
    pub fn from_row(columns: &[Column], row: &Row) -> Result<AuditLine, String> {
        let named = Named { columns, row };
        let (text, required, time) = (|n| named.text(n), |n| named.required(n), |n| named.time(n));
        Ok(AuditLine {
            seen_at: time("snapshot_at").ok_or("`snapshot_at` is missing")?,
            run_id: required("run_id")?,
            account_id: required("account_id")?,
            region: required("region")?,
            service: required("service")?,
            parent_id: text("parent_id"),
            session_id: required("session_id")?,
            status: text("status"),
            started_at: time("started_at"),
            ended_at: time("ended_at"),
            user_id: text("user_id"),
            change: text("change"),
            previous_status: text("previous_status"),
            last_connected_at: time("last_known_user_connection_timestamp"),
        })
    }
}

/// A typed row's values by column name.
struct Named<'a> {
    columns: &'a [Column],
    row: &'a Row,
}

impl Named<'_> {
    fn value(&self, name: &str) -> &Value {
        self.columns.iter().position(|c| c.name == name).map_or(&Value::Null, |i| &self.row.0[i])
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.value(name) {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.text(name).ok_or_else(|| format!("`{name}` is missing"))
    }

    /// Epoch seconds of a timestamp column.
    fn time(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            Value::Micros(at) => Some(at.div_euclid(1_000_000)),
            _ => None,
        }
    }
}

/// RFC 3339 text of epoch seconds (the seconds themselves outside years 0001-9999).
pub fn format_time(epoch: i64) -> String {
    Timestamp::from_datetime(&DateTime::from_secs(epoch)).map_or_else(|_| epoch.to_string(), String::from)
}

/// Parses a time given on the command line: RFC 3339 with any offset (`2026-11-22T10:00:00Z`,
/// `2026-11-22T11:00:00+01:00`) or a day (`2026-11-22`, its midnight UTC).
pub fn parse_time(text: &str) -> Option<i64> {
    Timestamp::parse_given(text).ok().map(|t| t.epoch_seconds())
}

/// The `YYYY-MM-DD` day of epoch seconds.
pub fn day_of(epoch: i64) -> String {
    format_time(epoch)[..10].to_owned()
}

/// One line of the runs dataset, as the audit reads it: a scope's run, how it went, and why it
/// failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub service: String,
    pub account_id: String,
    pub region: String,
    pub run_id: String,
    /// Epoch seconds of `started_at` and `finished_at`.
    pub started_at: i64,
    pub finished_at: i64,
    /// `complete`, `partial`, `failed` or `dry_run`.
    pub status: String,
    pub quiet: bool,
    pub sessions: u64,
    /// `<error_kind>: <error_message>` of a failed run.
    pub error: Option<String>,
}

impl RunRecord {
    /// The scope the run listed.
    pub fn scope(&self) -> ScopeKey {
        (self.service.clone(), self.account_id.clone(), self.region.clone())
    }

    /// Reads a runs line with the history's one reader, naming the column that is missing or of
    /// the wrong type.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::from_row(RUN_COLUMNS, &columns::parse_line(RUN_COLUMNS, text)?)
    }

    /// A runs row (a line, or a compacted day's Parquet row) as the audit reads it.
    pub fn from_row(columns: &[Column], row: &Row) -> Result<Self, String> {
        let named = Named { columns, row };
        let (text, required) = (|n| named.text(n), |n| named.required(n));
        let started_at = named.time("started_at").ok_or("`started_at` is missing")?;
        let finished_at = named.time("finished_at").ok_or("`finished_at` is missing")?;
        let sessions = match named.value("sessions") {
            Value::Int(n) if *n >= 0 => *n as u64,
            _ => return Err("`sessions` is missing or not a count".into()),
        };
        let error = match (text("error_kind"), text("error_message")) {
            (Some(kind), Some(message)) => Some(format!("{kind}: {message}")),
            (kind, _) => kind,
        };
        Ok(RunRecord {
            service: required("service")?,
            account_id: required("account_id")?,
            region: required("region")?,
            run_id: required("run_id")?,
            started_at,
            finished_at,
            status: required("status")?,
            quiet: matches!(named.value("quiet"), Value::Bool(true)),
            sessions,
            error,
        })
    }

    /// Whether the run listed its scope (it did not fail, and was not a dry run).
    pub fn listed(&self) -> bool {
        matches!(self.status.as_str(), "complete" | "partial")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of IVS's snapshots with every column null but those given.
    fn ivs_line(set: &[(&str, &str)]) -> String {
        let dataset = Dataset { service: ServiceId::IvsStreamSessions, kind: HistoryKind::Snapshots };
        let mut object = serde_json::Map::new();
        for column in dataset.columns() {
            let value = set.iter().find(|(name, _)| *name == column.name).map(|(_, v)| serde_json::json!(v));
            object.insert(column.name.to_owned(), value.unwrap_or(serde_json::Value::Null));
        }
        serde_json::Value::Object(object).to_string()
    }

    #[test]
    fn a_line_is_read_or_refused_naming_the_field() {
        let columns = dataset_of("history/snapshots/ivs-stream-sessions/dt=2026-11-22/a.jsonl.gz").unwrap().columns();
        let common = [("snapshot_at", "2026-11-22T10:00:00Z"), ("run_id", "r"), ("account_id", "1"), ("region", "x")];
        let mut full = common.to_vec();
        full.extend([("service", "ivs-stream-sessions"), ("parent_id", "c"), ("session_id", "s"), ("status", "LIVE")]);
        full.push(("started_at", "2026-11-22T09:00:00Z"));
        let line = parse_line(&columns, &ivs_line(&full)).unwrap();
        assert_eq!((line.seen_at - line.started_at.unwrap(), line.status.as_deref()), (3600, Some("LIVE")));
        assert!(parse_line(&columns, "{").unwrap_err().starts_with("not JSON"));
        let mut no_session = common.to_vec();
        no_session.push(("service", "x"));
        assert_eq!(parse_line(&columns, &ivs_line(&no_session)).unwrap_err(), "`session_id` is missing");
        let err = parse_line(&columns, &ivs_line(&[("snapshot_at", "yesterday")])).unwrap_err();
        assert!(err.contains("column `snapshot_at`: `yesterday` is not an RFC 3339 timestamp"), "{err}");
        // AND a line not of the schema is refused, naming the column
        let extra = ivs_line(&full).replacen('{', "{\"extra\":1,", 1);
        assert!(parse_line(&columns, &extra).unwrap_err().contains("a column not of the schema: `extra`"));
    }

    #[test]
    fn an_objects_key_names_its_dataset() {
        let changes = dataset_of("h/parquet/changes/chime-proxy-sessions/dt=2026-11-22/part-00000.parquet").unwrap();
        assert_eq!((changes.service, changes.kind), (ServiceId::ChimeProxySessions, HistoryKind::Changes));
        assert!(dataset_of("h/other/ec2/dt=2026-11-22/a.jsonl.gz").unwrap_err().contains("unknown service `ec2`"));
    }

    #[test]
    fn times_are_rfc3339_or_days() {
        assert_eq!(parse_time("2026-11-22"), parse_time("2026-11-22T00:00:00Z"));
        assert_eq!(format_time(parse_time("2026-11-22T10:00:00Z").unwrap()), "2026-11-22T10:00:00Z");
        assert_eq!(parse_time("22/11/2026"), None);
        assert_eq!(parse_time("2026-11-22T11:00:00+01:00"), parse_time("2026-11-22T10:00:00Z"));
        assert_eq!(day_of(parse_time("2026-11-22T23:59:59Z").unwrap()), "2026-11-22");
    }
}

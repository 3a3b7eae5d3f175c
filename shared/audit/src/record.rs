//! A history line as the audit reads it: the columns every service shares, from snapshot and
//! changes lines alike.

use aws_smithy_types::DateTime;
use serde_json::Value as Json;
use session_archiver::model::Timestamp;

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
}

/// Parses one NDJSON history line, naming what is wrong.
pub fn parse_line(text: &str) -> Result<AuditLine, String> {
    let value: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(fields) = value else { return Err("not a JSON object".into()) };
    let string = |name: &str| -> Result<Option<String>, String> {
        match fields.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{name}` is not a string: {other}")),
        }
    };
    let required = |name: &str| string(name)?.ok_or_else(|| format!("`{name}` is missing"));
    let time = |name: &str| -> Result<Option<i64>, String> {
        string(name)?
            .map(|t| {
                Timestamp::parse(&t).map(|t| t.epoch_seconds()).map_err(|_| format!("`{name}` is not a time: {t}"))
            })
            .transpose()
    };
    Ok(AuditLine {
        seen_at: time("snapshot_at")?.ok_or("`snapshot_at` is missing")?,
        run_id: required("run_id")?,
        account_id: required("account_id")?,
        region: required("region")?,
        service: required("service")?,
        parent_id: string("parent_id")?,
        session_id: required("session_id")?,
        status: string("status")?,
        started_at: time("started_at")?,
        ended_at: time("ended_at")?,
        user_id: string("user_id")?,
        change: string("change")?,
        previous_status: string("previous_status")?,
    })
}

/// RFC 3339 text of epoch seconds (the seconds themselves outside years 0001-9999).
pub fn format_time(epoch: i64) -> String {
    Timestamp::from_datetime(&DateTime::from_secs(epoch)).map_or_else(|_| epoch.to_string(), String::from)
}

/// Parses a time given on the command line: RFC 3339 (`2026-11-22T10:00:00Z`) or a day
/// (`2026-11-22`, its midnight UTC).
pub fn parse_time(text: &str) -> Option<i64> {
    if text.len() == 10 {
        return Timestamp::parse(&format!("{text}T00:00:00Z")).ok().map(|t| t.epoch_seconds());
    }
    Timestamp::parse(text).ok().map(|t| t.epoch_seconds())
}

/// The `YYYY-MM-DD` day of epoch seconds.
pub fn day_of(epoch: i64) -> String {
    format_time(epoch)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_or_refused_naming_the_field() {
        let line = parse_line(r#"{"snapshot_at":"2026-11-22T10:00:00Z","run_id":"r","account_id":"1","region":"x","service":"ivs-stream-sessions","parent_id":"c","session_id":"s","status":"LIVE","started_at":"2026-11-22T09:00:00Z","ended_at":null,"user_id":null}"#).unwrap();
        assert_eq!((line.seen_at - line.started_at.unwrap(), line.status.as_deref()), (3600, Some("LIVE")));
        assert!(parse_line("{").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            parse_line(
                r#"{"snapshot_at":"2026-11-22T10:00:00Z","run_id":"r","account_id":"1","region":"x","service":"x"}"#
            )
            .unwrap_err(),
            "`session_id` is missing"
        );
        assert!(parse_line(r#"{"snapshot_at":"yesterday"}"#).unwrap_err().contains("`snapshot_at` is not a time"));
    }

    #[test]
    fn times_are_rfc3339_or_days() {
        assert_eq!(parse_time("2026-11-22"), parse_time("2026-11-22T00:00:00Z"));
        assert_eq!(format_time(parse_time("2026-11-22T10:00:00Z").unwrap()), "2026-11-22T10:00:00Z");
        assert_eq!(parse_time("22/11/2026"), None);
        assert_eq!(day_of(parse_time("2026-11-22T23:59:59Z").unwrap()), "2026-11-22");
    }
}

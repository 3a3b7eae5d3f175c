//! The session model: service ids, the column list of every service, and [`SessionRecord`].
//!
//! Every service has **one column list in code** ([`Schema`]): the run context columns, the common
//! session columns, the API's own fields flattened to snake_case, then `record_hash`. The mapping of
//! each API, the tests, the S3 encoder and the Glue tables all read it, so a column has one name and
//! one type everywhere.

use std::fmt;
use std::str::FromStr;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// The five session APIs, one Lambda function each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceId {
    /// WorkSpaces `DescribeWorkspacesPoolSessions`, per pool.
    WorkspacesPoolSessions,
    /// WorkSpaces `DescribeWorkspacesConnectionStatus`, account wide.
    WorkspacesConnectionStatus,
    /// IVS `ListStreamSessions`, per channel.
    IvsStreamSessions,
    /// Chime SDK Voice `ListProxySessions`, per voice connector.
    ChimeProxySessions,
    /// GameLift Streams `ListStreamSessionsByAccount`, account wide.
    GameliftStreamSessions,
}

impl ServiceId {
    pub const ALL: [ServiceId; 5] = [
        ServiceId::WorkspacesPoolSessions,
        ServiceId::WorkspacesConnectionStatus,
        ServiceId::IvsStreamSessions,
        ServiceId::ChimeProxySessions,
        ServiceId::GameliftStreamSessions,
    ];

    pub fn as_str(self) -> &'static str {
        self.spec().id
    }

    /// The AWS operation that lists this service's sessions.
    pub fn list_operation(self) -> &'static str {
        self.spec().list_operation
    }

    /// The operation that discovers the parents, for services that have parents.
    pub fn parent_operation(self) -> Option<&'static str> {
        self.spec().parents.as_ref().map(|parents| parents.operation)
    }

    /// The operation that describes a page's sessions further, and the most ids a call takes.
    pub fn lookup(self) -> Option<(&'static str, usize)> {
        self.spec().lookup.as_ref().map(|lookup| (lookup.operation, lookup.max_ids))
    }

    /// The largest page the list operation accepts (`None`: the service chooses the page size).
    pub fn max_page_size(self) -> Option<i32> {
        self.spec().max_page_size
    }

    /// The largest page the parent discovery operation accepts.
    pub fn max_parent_page_size(self) -> Option<i32> {
        self.spec().parents.as_ref().map(|parents| parents.max_page_size)
    }

    /// The IAM actions the function of this service calls: its list operation, the parent
    /// discovery operation and the lookup (the template grants exactly these).
    pub fn iam_actions(self) -> Vec<String> {
        let prefix = self.spec().iam_prefix;
        self.parent_operation()
            .into_iter()
            .chain([self.list_operation()])
            .chain(self.lookup().map(|(operation, _)| operation))
            .map(|operation| format!("{prefix}:{operation}"))
            .collect()
    }

    /// Whether a session of this service in `status` has its user connected.
    pub fn is_connected(self, status: Option<&str>) -> bool {
        status.is_some_and(|s| self.spec().connected_statuses.contains(&s))
    }

    pub fn schema(self) -> &'static Schema {
        self.spec().schema
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceId::ALL.into_iter().find(|id| id.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = ServiceId::ALL.iter().map(|id| id.as_str()).collect();
            Error::Config(format!("unknown service {}; expected one of {}", crate::error::quoted(s), known.join(", ")))
        })
    }
}

/// The type of a column: one type per column in every file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    String,
    /// RFC 3339, UTC, written as a string.
    Timestamp,
    Boolean,
    BigInt,
    StringArray,
}

impl ColumnType {
    /// The Glue / Athena (Hive DDL) type of the column.
    pub fn glue_type(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Boolean => "boolean",
            ColumnType::BigInt => "bigint",
            ColumnType::StringArray => "array<string>",
        }
    }
}

/// One column of a service's history files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    /// Where the value comes from.
    pub doc: &'static str,
    /// Part of `record_hash`. Observation times that move on every call without the session
    /// changing are not, or every run would rewrite every session.
    pub hashed: bool,
}

const fn col(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column { name, ty, doc, hashed: true }
}

/// A column kept in the history but left out of `record_hash`.
const fn observed(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column { name, ty, doc, hashed: false }
}

use ColumnType::{BigInt, Boolean, String as Str, StringArray, Timestamp as Ts};

/// Columns the run fills in: when, by which run, where.
pub const CONTEXT_COLUMNS: &[Column] = &[
    col("snapshot_at", Ts, "when the run listed the session"),
    col("run_id", Str, "id of the run, derived from the triggering event"),
    col("account_id", Str, "AWS account the session belongs to"),
    col("region", Str, "AWS region the session was listed in"),
];

/// Columns every service has, filled by the service's mapping.
pub const SESSION_COLUMNS: &[Column] = &[
    col("service", Str, "service id, e.g. ivs-stream-sessions"),
    col("parent_id", Str, "pool id, channel ARN or voice connector id; null for account-wide APIs"),
    col("session_id", Str, "the session's own id"),
    col("status", Str, "the session's state as AWS spells it"),
    col("started_at", Ts, "when the session started"),
    col("ended_at", Ts, "when the session ended, if it has"),
    col("user_id", Str, "the user of the session, if the API names one (a WorkSpace's: its UserName)"),
];

/// The last column: hash of the session columns, stable for the same session state.
pub const HASH_COLUMN: Column = col("record_hash", Str, "SHA-256 (128 bits, hex) of the session columns");

/// The runs dataset's columns: one line per scope and run an invocation ran, the same for every
/// service (see [`crate::history::runs`]).
pub const RUN_COLUMNS: &[Column] = &[
    col("service", Str, "service id, e.g. ivs-stream-sessions"),
    col("account_id", Str, "AWS account of the scope"),
    col("region", Str, "AWS region of the scope"),
    col("run_id", Str, "id of the run, derived from the triggering event"),
    col("event_time", Ts, "the triggering event's time: the dt partition's day"),
    col("started_at", Ts, "when the run started in this invocation"),
    col("finished_at", Ts, "when it ended"),
    col("status", Str, "complete, partial (its place kept for the next invocation), failed or dry_run"),
    col("quiet", Boolean, "true: the scope held no session and holds none; the run wrote nothing else"),
    col("sessions", BigInt, "sessions listed"),
    col("new", BigInt, "sessions seen for the first time"),
    col("changed", BigInt, "sessions whose state changed"),
    col("ended", BigInt, "sessions that ended"),
    col("pages", BigInt, "pages read"),
    col("api_calls", BigInt, "calls to the session API, discovery included"),
    col("error_kind", Str, "what failed (MemberRole, SessionApi, Storage, ...), for a failed run"),
    col("error_message", Str, "the failure, naming the account, region and call"),
    col("invocation_id", Str, "the Lambda request id of the invocation that ran it"),
];

/// The column list of one service.
#[derive(Debug)]
pub struct Schema {
    pub service: ServiceId,
    /// The API's own fields, flattened, in file order.
    pub own: &'static [Column],
}

impl Schema {
    /// Every column of a history line, in file order.
    pub fn columns(&self) -> impl Iterator<Item = &'static Column> + '_ {
        CONTEXT_COLUMNS.iter().chain(SESSION_COLUMNS.iter()).chain(self.own.iter()).chain(std::iter::once(&HASH_COLUMN))
    }

    fn own_index(&self, name: &str) -> Option<usize> {
        self.own.iter().position(|c| c.name == name)
    }
}

pub static WORKSPACES_POOL_SESSIONS: Schema = Schema {
    service: ServiceId::WorkspacesPoolSessions,
    own: &[
        col("authentication_type", Str, "AuthenticationType (SAML)"),
        col("instance_id", Str, "InstanceId"),
        col("expiration_time", Ts, "ExpirationTime"),
        col("eni_id", Str, "NetworkAccessConfiguration.EniId"),
        col("eni_private_ip_address", Str, "NetworkAccessConfiguration.EniPrivateIpAddress"),
    ],
};

pub static WORKSPACES_CONNECTION_STATUS: Schema = Schema {
    service: ServiceId::WorkspacesConnectionStatus,
    own: &[
        observed("connection_state_check_timestamp", Ts, "ConnectionStateCheckTimestamp (not hashed)"),
        col("last_known_user_connection_timestamp", Ts, "LastKnownUserConnectionTimestamp"),
        col("directory_id", Str, "DescribeWorkspaces DirectoryId: the WorkSpace's directory"),
        col("computer_name", Str, "DescribeWorkspaces ComputerName"),
    ],
};

pub static IVS_STREAM_SESSIONS: Schema = Schema {
    service: ServiceId::IvsStreamSessions,
    own: &[col("has_error_event", Boolean, "hasErrorEvent: a quota breach or failure")],
};

pub static CHIME_PROXY_SESSIONS: Schema = Schema {
    service: ServiceId::ChimeProxySessions,
    own: &[
        col("name", Str, "Name"),
        col("capabilities", StringArray, "Capabilities (Voice, SMS)"),
        col("expiry_minutes", BigInt, "ExpiryMinutes"),
        col("updated_at", Ts, "UpdatedTimestamp"),
        col("number_selection_behavior", Str, "NumberSelectionBehavior"),
        col("geo_match_level", Str, "GeoMatchLevel"),
        col("geo_match_country", Str, "GeoMatchParams.Country"),
        col("geo_match_area_code", Str, "GeoMatchParams.AreaCode"),
        col("participant_phone_numbers", StringArray, "Participants[].PhoneNumber"),
        col("participant_proxy_phone_numbers", StringArray, "Participants[].ProxyPhoneNumber"),
    ],
};

pub static GAMELIFT_STREAM_SESSIONS: Schema = Schema {
    service: ServiceId::GameliftStreamSessions,
    own: &[
        col("status_reason", Str, "StatusReason"),
        col("protocol", Str, "Protocol"),
        col("last_updated_at", Ts, "LastUpdatedAt"),
        col("application_arn", Str, "ApplicationArn"),
        col("location", Str, "Location"),
        col("role_arn", Str, "RoleArn"),
        col("export_files_status", Str, "ExportFilesMetadata.Status"),
        col("export_files_status_reason", Str, "ExportFilesMetadata.StatusReason"),
        col("export_files_output_uri", Str, "ExportFilesMetadata.OutputUri"),
    ],
};

/// What happened to a session between two runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    Changed,
    Ended,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Changed => "changed",
            Change::Ended => "ended",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Change::Opened, Change::Changed, Change::Ended].into_iter().find(|c| c.as_str() == text)
    }
}

/// Where a run reads and its items live: one service in one account and region.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub service: ServiceId,
    pub account_id: String,
    pub region: String,
}

/// Whether `value` is an AWS account id: 12 digits.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `value` reads as an AWS region name (`eu-west-1`, `us-gov-west-1`, `ap-southeast-5`):
/// two letters, one or two words, a number.
pub fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let letters = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [area, middle @ .., number] => {
            area.len() == 2
                && letters(area)
                && (1..=2).contains(&middle.len())
                && middle.iter().all(letters)
                && (1..=2).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// The id of a run, derived from its triggering event (EventBridge `id`, or a replay event's own
/// id), so a redelivered event writes the same keys again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// 1-128 characters of `[A-Za-z0-9._-]`, not starting with a dot and without `.part-` (the
    /// mark of a later part's key): safe in an S3 key and a DynamoDB sort key, and what
    /// EventBridge ids (UUIDs) already are.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let valid = (1..=128).contains(&value.len())
            && !value.starts_with('.')
            && !value.contains(".part-")
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(RunId(value.to_owned()))
        } else {
            Err(Error::Config(format!(
                "run id {} must be 1 to 128 characters of letters, digits, '.', '_' or '-', not starting with '.' nor holding `.part-`",
                crate::error::quoted(value)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a time given as text is expected to be, as a refusal says it.
pub const EXPECTED_TIME: &str =
    "RFC 3339, such as 2026-12-04T10:00:00Z or 2026-12-04T10:00:00+01:00, or a day, such as 2026-12-04";

fn not_a_time(text: &str) -> Error {
    Error::Config(format!("{} is not a time: expected {EXPECTED_TIME}", crate::error::quoted(text)))
}

/// The date-time and the offset east of UTC in seconds, of RFC 3339 text ending in `±HH:MM`.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let (base, offset) = text.split_at_checked(text.len().checked_sub(6)?)?;
    let sign = match offset.as_bytes() {
        [b'+', _, _, b':', _, _] => 1,
        [b'-', _, _, b':', _, _] => -1,
        _ => return None,
    };
    let number =
        |digits: &str| digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse::<i64>().ok()).flatten();
    let (hours, minutes) = (number(&offset[1..3])?, number(&offset[4..6])?);
    (base.contains('T') && hours < 24 && minutes < 60).then_some((base, sign * (hours * 3600 + minutes * 60)))
}

/// A UTC instant, held in its RFC 3339 form (`2024-05-01T10:00:00Z`, fractions only when present).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(String);

impl Timestamp {
    /// The instant in RFC 3339, or an error for one outside years 0001-9999, which RFC 3339
    /// cannot write (an API returning such a time, or an event naming one).
    pub fn from_datetime(value: &DateTime) -> Result<Self, Error> {
        // `Format::DateTime` renders UTC with a `Z` suffix, and fails only outside 0001-9999.
        value.fmt(Format::DateTime).map(Timestamp).map_err(|_| {
            Error::Mapping(format!("the instant {} s from the Unix epoch is outside years 0001-9999", value.secs()))
        })
    }

    /// The current instant, to the millisecond.
    pub fn now() -> Self {
        Timestamp::from_system_time(std::time::SystemTime::now())
    }

    /// A clock reading, to the millisecond. A clock outside years 0001-9999 reads as the epoch.
    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        let millis = DateTime::from(time).to_millis().unwrap_or_default();
        Timestamp::from_datetime(&DateTime::from_millis(millis)).unwrap_or_else(|_| Timestamp::epoch())
    }

    fn epoch() -> Self {
        Timestamp("1970-01-01T00:00:00Z".to_owned())
    }

    /// Whole seconds since the Unix epoch.
    pub fn epoch_seconds(&self) -> i64 {
        self.to_datetime().secs()
    }

    /// RFC 3339 with any offset (`Z`, `+01:00`, `-05:30`), converted to UTC.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let refused = || not_a_time(text);
        let upper = text.to_ascii_uppercase();
        let (utc, offset) = match split_offset(&upper) {
            Some((base, offset)) => (format!("{base}Z"), offset),
            None => (upper, 0),
        };
        let parsed = DateTime::from_str(&utc, Format::DateTime).map_err(|_| refused())?;
        let shifted =
            parsed.secs().checked_sub(offset).map(|secs| DateTime::from_secs_and_nanos(secs, parsed.subsec_nanos()));
        shifted
            .and_then(|at| Timestamp::from_datetime(&at).ok())
            .ok_or_else(|| Error::Config(format!("{} is outside years 0001-9999", crate::error::quoted(text))))
    }

    /// A time as a person gives it (an event's `time`, a command's option): RFC 3339 with any
    /// offset, converted to UTC, or a day (`2026-12-04`: its midnight UTC).
    pub fn parse_given(text: &str) -> Result<Self, Error> {
        let is_day = text.len() == 10
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| matches!((i, b), (4 | 7, b'-')) || (i != 4 && i != 7 && b.is_ascii_digit()));
        if is_day {
            return Timestamp::parse(&format!("{text}T00:00:00Z")).map_err(|_| not_a_time(text));
        }
        Timestamp::parse(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UTC day, `YYYY-MM-DD`: the `dt` partition of history written at this instant. Every
    /// value is RFC 3339 of years 0001-9999, so the day is its first ten characters.
    pub fn day(&self) -> &str {
        self.0.get(..10).unwrap_or(&self.0)
    }

    pub fn to_datetime(&self) -> DateTime {
        // Only `from_datetime` builds a value, from text `DateTime` wrote and so reads back.
        DateTime::from_str(&self.0, Format::DateTime).unwrap_or(DateTime::from_secs(0))
    }
}

impl TryFrom<String> for Timestamp {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Timestamp::parse(&value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One value of a service's own column.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    String(String),
    Timestamp(Timestamp),
    Boolean(bool),
    BigInt(i64),
    StringArray(Vec<String>),
}

impl Value {
    fn fits(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::String(_), ColumnType::String)
                | (Value::Timestamp(_), ColumnType::Timestamp)
                | (Value::Boolean(_), ColumnType::Boolean)
                | (Value::BigInt(_), ColumnType::BigInt)
                | (Value::StringArray(_), ColumnType::StringArray)
        )
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::String)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::Null, |s| Value::String(s.to_owned()))
    }
}
impl From<Option<Timestamp>> for Value {
    fn from(v: Option<Timestamp>) -> Self {
        v.map_or(Value::Null, Value::Timestamp)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<Option<i32>> for Value {
    fn from(v: Option<i32>) -> Self {
        v.map_or(Value::Null, |n| Value::BigInt(i64::from(n)))
    }
}
impl From<Option<Vec<String>>> for Value {
    fn from(v: Option<Vec<String>>) -> Self {
        v.map_or(Value::Null, Value::StringArray)
    }
}

/// One session as one API reported it, mapped to the service's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    pub service: ServiceId,
    pub parent_id: Option<String>,
    pub session_id: String,
    pub status: Option<String>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub user_id: Option<String>,
    own: Vec<Value>,
}

impl SessionRecord {
    /// A record with every own column null.
    pub fn new(service: ServiceId, session_id: impl Into<String>) -> Self {
        SessionRecord {
            service,
            parent_id: None,
            session_id: session_id.into(),
            status: None,
            started_at: None,
            ended_at: None,
            user_id: None,
            own: vec![Value::Null; service.schema().own.len()],
        }
    }

    /// Sets one of the service's own columns; the name and the type must be the schema's.
    pub fn set(&mut self, column: &str, value: impl Into<Value>) -> Result<&mut Self, Error> {
        let schema = self.service.schema();
        let index = schema
            .own_index(column)
            .ok_or_else(|| Error::Mapping(format!("{} has no column `{column}`", self.service)))?;
        let value = value.into();
        let expected = schema.own[index].ty;
        if !value.fits(expected) {
            return Err(Error::Mapping(format!("{}.{column} is {expected:?}, got {value:?}", self.service)));
        }
        self.own[index] = value;
        Ok(self)
    }

    /// The value of one of the service's own columns.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.service.schema().own_index(column).map(|i| &self.own[i])
    }

    /// The session columns (common then own), in file order, as (column, JSON value).
    pub fn session_values(&self) -> impl Iterator<Item = (&'static Column, serde_json::Value)> + '_ {
        let ts = |t: &Option<Timestamp>| t.as_ref().map_or(serde_json::Value::Null, |t| t.as_str().into());
        let common = [
            serde_json::Value::from(self.service.as_str()),
            self.parent_id.clone().into(),
            self.session_id.clone().into(),
            self.status.clone().into(),
            ts(&self.started_at),
            ts(&self.ended_at),
            self.user_id.clone().into(),
        ];
        let own = self.own.iter().map(|v| serde_json::to_value(v).expect("Value serialises to JSON"));
        SESSION_COLUMNS.iter().chain(self.service.schema().own.iter()).zip(common.into_iter().chain(own))
    }

    /// Hash of the session columns in schema order: the same state always hashes the same,
    /// whatever order the fields had on the wire. Run context columns and observation times
    /// ([`Column::hashed`] false) are not part of it.
    pub fn record_hash(&self) -> String {
        let values: Vec<serde_json::Value> = self.session_values().filter(|(c, _)| c.hashed).map(|(_, v)| v).collect();
        let canonical = serde_json::to_vec(&values).expect("JSON values serialise");
        let digest = Sha256::digest(&canonical);
        hex::encode(&digest[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_round_trip_through_their_names() {
        for id in ServiceId::ALL {
            assert_eq!(id.as_str().parse::<ServiceId>().unwrap(), id);
            assert_eq!(serde_json::to_value(id).unwrap(), id.as_str());
        }
        let err = "workspaces".parse::<ServiceId>().unwrap_err().to_string();
        assert!(err.contains("unknown service `workspaces`"), "{err}");
        assert!(err.contains("gamelift-stream-sessions"), "{err}");
    }

    #[test]
    fn account_ids_and_region_names_are_told_apart_from_anything_else() {
        for region in ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-5", "us-isob-east-1", "il-central-1"]
        {
            assert!(is_region(region), "{region}");
        }
        for bad in ["", "EU-west-1", "eu west 1", "eu-west", "europe-west-1", "eu--1", "eu-west-100", "eu-a-b-c-1", "*"]
        {
            assert!(!is_region(bad), "{bad}");
        }
        assert!(is_account_id("012345678901"));
        for bad in ["", "12345678901", "1234567890123", "12345678901a", " 12345678901"] {
            assert!(!is_account_id(bad), "{bad}");
        }
    }

    #[test]
    fn every_schema_starts_with_the_common_columns_and_ends_with_the_hash() {
        for id in ServiceId::ALL {
            let names: Vec<&str> = id.schema().columns().map(|c| c.name).collect();
            assert_eq!(
                &names[..11],
                &[
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
                    "user_id"
                ]
            );
            assert_eq!(names.last(), Some(&"record_hash"));
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{id} has a duplicate column");
            assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        }
    }

    #[test]
    fn set_refuses_unknown_columns_and_wrong_types() {
        let mut record = SessionRecord::new(ServiceId::IvsStreamSessions, "st-1");
        assert!(record.set("has_error_event", true).is_ok());
        let unknown = record.set("eni_id", Some("eni-1")).unwrap_err().to_string();
        assert!(unknown.contains("ivs-stream-sessions has no column `eni_id`"), "{unknown}");
        let wrong = record.set("has_error_event", Some("yes")).unwrap_err().to_string();
        assert!(wrong.contains("has_error_event is Boolean"), "{wrong}");
    }

    #[test]
    fn record_hash_is_stable_and_changes_with_state() {
        let make = |status: &str| {
            let mut r = SessionRecord::new(ServiceId::ChimeProxySessions, "ps-1");
            r.parent_id = Some("vc-1".into());
            r.status = Some(status.into());
            r.set("capabilities", Some(vec!["Voice".to_string()])).unwrap();
            r
        };
        assert_eq!(make("Open").record_hash(), make("Open").record_hash());
        assert_ne!(make("Open").record_hash(), make("Closed").record_hash());
        assert_eq!(make("Open").record_hash().len(), 32);
    }

    #[test]
    fn record_hash_ignores_observation_times() {
        let make = |checked: i64| {
            let mut r = SessionRecord::new(ServiceId::WorkspacesConnectionStatus, "ws-abcd1234");
            r.status = Some("CONNECTED".into());
            r.set("connection_state_check_timestamp", Timestamp::from_datetime(&DateTime::from_secs(checked)).ok())
                .unwrap();
            r
        };
        assert_eq!(make(1_714_557_600).record_hash(), make(1_714_561_200).record_hash());
        assert_ne!(make(1).get("connection_state_check_timestamp"), make(2).get("connection_state_check_timestamp"));
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        let t = Timestamp::from_datetime(&DateTime::from_secs(1_714_557_600)).unwrap();
        assert_eq!(t.as_str(), "2024-05-01T10:00:00Z");
        assert_eq!(Timestamp::parse("2024-05-01T10:00:00Z").unwrap(), t);
        assert_eq!(Timestamp::parse("2024-05-01T23:59:59.999Z").unwrap().day(), "2024-05-01");
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn a_time_a_person_gives_may_carry_any_offset_or_be_a_day_and_is_kept_in_utc() {
        // GIVEN times as people type them
        let given = |text: &str| Timestamp::parse_given(text).map(|t| t.as_str().to_owned());
        // THEN offsets are converted to UTC, fractions kept, a day is its midnight UTC
        assert_eq!(given("2026-12-04T10:00:00+01:00").unwrap(), "2026-12-04T09:00:00Z");
        assert_eq!(given("2026-12-04T01:30:00.250-05:30").unwrap(), "2026-12-04T07:00:00.25Z");
        assert_eq!(given("2026-12-04t10:00:00z").unwrap(), "2026-12-04T10:00:00Z");
        assert_eq!(given("2026-12-04T10:00:00-00:00").unwrap(), "2026-12-04T10:00:00Z");
        assert_eq!(given("2026-12-04").unwrap(), "2026-12-04T00:00:00Z");
        // AND anything else is refused, saying what was expected
        for bad in ["22/11/2026 10:00", "2026-12-04T10:00:00+25:00", "2026-12-04T10:00:00", "2026-13-04", "2026-12-4"] {
            let err = Timestamp::parse_given(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}` is not a time: expected RFC 3339, such as")), "{bad}: {err}");
            assert!(err.contains("or a day, such as 2026-12-04") && !err.contains("Smithy"), "{err}");
        }
    }

    #[test]
    fn an_instant_rfc_3339_cannot_write_is_refused_not_kept() {
        // GIVEN instants before year 1 and after year 9999, as a page or an event could carry
        for secs in [-62_135_596_801, 253_402_300_800, i64::MIN, i64::MAX] {
            // WHEN they are made timestamps THEN each is refused, naming the instant
            let err = Timestamp::from_datetime(&DateTime::from_secs(secs)).unwrap_err().to_string();
            assert!(err.contains(&format!("{secs} s from the Unix epoch is outside years 0001-9999")), "{err}");
        }
        // AND the first and last instants RFC 3339 can write are kept, with their day
        let first = Timestamp::from_datetime(&DateTime::from_secs(-62_135_596_800)).unwrap();
        assert_eq!((first.as_str(), first.day()), ("0001-01-01T00:00:00Z", "0001-01-01"));
        let last = Timestamp::from_datetime(&DateTime::from_secs(253_402_300_799)).unwrap();
        assert_eq!(last.epoch_seconds(), 253_402_300_799);
        // AND text of year 0000 is refused as a value
        assert!(Timestamp::parse("0000-12-31T23:59:59Z").is_err());
    }
}

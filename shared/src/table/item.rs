//! The table's items, mapped to and from the model: pure functions, no I/O.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | session | `<service>#<account>#<region>#<parent or ->` | session id |
//! | run manifest | `RUN#<service>#<account>#<region>` | `<event time>#<run id>` |
//! | lease (kept once given back, `expires_at` 0, with the listing states' vouch) | `LEASE#<service>#<account>#<region>` | `LEASE` |
//! | progress of a run that stopped early | `PROGRESS#<service>#<account>#<region>` | `<options fingerprint>` |
//! | a pool of history objects (several scopes' parts of a run) | `POOL#<service>#<run id>` | pool id |
//!
//! A session item holds every session column of the service's schema under the column's own
//! name (absent when null), so it reads like a line of the history.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::progress::{ProgressObject, SavedProgress};
use super::{
    HistoryPool, Manifest, PoolStatus, Progress, RunCounts, RunStatus, Scope, StateVouch, StoredSession, StoredSummary,
};
use crate::error::{Error, Result};
use crate::model::Change;
use crate::model::{Column, ColumnType, ServiceId, SessionRecord, Timestamp, Value};

pub type Item = HashMap<String, AttributeValue>;

/// Stands for "no parent" in keys.
const NO_PARENT: &str = "-";

impl Scope {
    fn tail(&self) -> String {
        format!("{}#{}#{}", self.service, self.account_id, self.region)
    }

    pub fn session_pk(&self, parent_id: Option<&str>) -> String {
        format!("{}#{}", self.tail(), parent_id.unwrap_or(NO_PARENT))
    }

    pub fn runs_pk(&self) -> String {
        format!("RUN#{}", self.tail())
    }

    pub fn lease_pk(&self) -> String {
        format!("LEASE#{}", self.tail())
    }

    pub fn progress_pk(&self) -> String {
        format!("PROGRESS#{}", self.tail())
    }

    /// The claims on its runs' dead letters, one item a run (sort key: the run id).
    pub fn dead_letter_pk(&self) -> String {
        format!("DEADLETTER#{}", self.tail())
    }
}

pub const LEASE_SK: &str = "LEASE";

pub fn manifest_sk(event_time: &Timestamp, run_id: &str) -> String {
    format!("{event_time}#{run_id}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The item of a session's current state.
pub fn session_item(scope: &Scope, stored: &StoredSession) -> Item {
    let record = &stored.record;
    let mut item = Item::new();
    item.insert("pk".into(), s(scope.session_pk(record.parent_id.as_deref())));
    item.insert("sk".into(), s(record.session_id.as_str()));
    item.insert("item_type".into(), s("session"));
    item.insert("account_id".into(), s(scope.account_id.as_str()));
    item.insert("region".into(), s(scope.region.as_str()));
    for (column, value) in record.session_values() {
        if let Some(attribute) = json_attribute(column, &value) {
            item.insert(column.name.into(), attribute);
        }
    }
    item.insert("record_hash".into(), s(stored.record_hash.as_str()));
    item.insert("first_seen".into(), s(stored.first_seen.as_str()));
    item.insert("last_seen".into(), s(stored.last_seen.as_str()));
    item.insert("last_run".into(), s(stored.last_run.as_str()));
    item.insert("change".into(), s(stored.change.as_str()));
    if let Some(previous) = &stored.previous_status {
        item.insert("previous_status".into(), s(previous.as_str()));
    }
    if let Some(gone_at) = &stored.gone_at {
        item.insert("gone_at".into(), s(gone_at.as_str()));
    }
    if let Some(expires_at) = stored.expires_at {
        item.insert("expires_at".into(), n(expires_at));
    }
    item
}

pub(super) fn json_attribute(column: &Column, value: &serde_json::Value) -> Option<AttributeValue> {
    use serde_json::Value as Json;
    match (column.ty, value) {
        (_, Json::Null) => None,
        (ColumnType::String | ColumnType::Timestamp, Json::String(text)) => Some(s(text.as_str())),
        (ColumnType::Boolean, Json::Bool(flag)) => Some(AttributeValue::Bool(*flag)),
        (ColumnType::BigInt, Json::Number(number)) => Some(n(number)),
        (ColumnType::StringArray, Json::Array(items)) => {
            Some(AttributeValue::L(items.iter().map(|i| s(i.as_str().unwrap_or_default())).collect()))
        }
        // `session_values` gives each column its own type; keep the value rather than drop it.
        (_, other) => Some(s(other.to_string())),
    }
}

/// Reads a session item back into the model.
pub fn stored_session(scope: &Scope, item: &Item) -> Result<StoredSession> {
    let reader = ItemReader { item, what: "session item" };
    let session_id = reader.string("sk")?;
    let mut record = SessionRecord::new(scope.service, session_id);
    record.parent_id = reader.optional_string("parent_id")?;
    record.status = reader.optional_string("status")?;
    record.started_at = reader.optional_timestamp("started_at")?;
    record.ended_at = reader.optional_timestamp("ended_at")?;
    record.user_id = reader.optional_string("user_id")?;
    for column in scope.service.schema().own {
        let value = match item.get(column.name) {
            None | Some(AttributeValue::Null(_)) => Value::Null,
            Some(attribute) => reader.value(column, attribute)?,
        };
        record.set(column.name, value)?;
    }
    Ok(StoredSession {
        record,
        record_hash: reader.string("record_hash")?,
        first_seen: reader.timestamp("first_seen")?,
        last_seen: reader.timestamp("last_seen")?,
        last_run: reader.string("last_run")?,
        change: reader.change()?,
        previous_status: reader.optional_string("previous_status")?,
        gone_at: reader.optional_timestamp("gone_at")?,
        expires_at: reader.optional_number("expires_at")?,
    })
}

/// The attributes of a session item that make its [`StoredSummary`] (a Query's projection).
pub const STATE_PROJECTION: [&str; 6] = ["sk", "record_hash", "gone_at", "last_run", "change", "expires_at"];

/// Reads the state of a session from its item, whole or projected to [`STATE_PROJECTION`].
pub fn stored_state(item: &Item) -> Result<StoredSummary> {
    let reader = ItemReader { item, what: "session item" };
    Ok(StoredSummary {
        session_id: reader.string("sk")?,
        record_hash: reader.string("record_hash")?,
        live: reader.optional_timestamp("gone_at")?.is_none(),
        last_run: reader.string("last_run")?,
        change: reader.change()?,
        expires_at: reader.optional_number("expires_at")?,
    })
}

/// The attributes of a vouch, by name, as the lease item keeps them.
pub fn vouch_attributes(vouch: &StateVouch) -> Vec<(&'static str, AttributeValue)> {
    let mut attributes =
        vec![("state_generation", s(vouch.generation.as_str())), ("state_sections", n(vouch.sections))];
    if let Some(run) = &vouch.for_run {
        attributes.push(("state_for_run", s(run.as_str())));
    }
    if vouch.quiet {
        attributes.push(("state_quiet", AttributeValue::Bool(true)));
    }
    attributes
}

/// The vouch a lease item keeps, if any.
pub fn state_vouch(item: &Item) -> Option<StateVouch> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    // Without a count, the object is read.
    let sections = item.get("state_sections").and_then(|v| v.as_n().ok()?.parse().ok()).unwrap_or(u64::MAX);
    let quiet = item.get("state_quiet").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
    Some(StateVouch { generation: text("state_generation")?, for_run: text("state_for_run"), sections, quiet })
}

/// The manifest item of a run.
pub fn manifest_item(scope: &Scope, manifest: &Manifest) -> Item {
    let c = &manifest.counts;
    let mut item = Item::from([
        ("pk".to_owned(), s(scope.runs_pk())),
        ("sk".to_owned(), s(manifest_sk(&manifest.event_time, &manifest.run_id))),
        ("item_type".to_owned(), s("run")),
        ("service".to_owned(), s(scope.service.as_str())),
        ("account_id".to_owned(), s(scope.account_id.as_str())),
        ("region".to_owned(), s(scope.region.as_str())),
        ("run_id".to_owned(), s(manifest.run_id.as_str())),
        ("event_id".to_owned(), s(manifest.event_id.as_str())),
        ("event_time".to_owned(), s(manifest.event_time.as_str())),
        ("trigger".to_owned(), s(manifest.trigger.as_str())),
        ("started_at".to_owned(), s(manifest.started_at.as_str())),
        ("status".to_owned(), s(manifest.status.as_str())),
        ("parents".to_owned(), n(c.parents)),
        ("pages".to_owned(), n(c.pages)),
        ("api_calls".to_owned(), n(c.api_calls)),
        ("sessions".to_owned(), n(c.sessions)),
        ("new".to_owned(), n(c.new)),
        ("changed".to_owned(), n(c.changed)),
        ("unchanged".to_owned(), n(c.unchanged)),
        ("ended".to_owned(), n(c.ended)),
        ("items_written".to_owned(), n(c.items_written)),
        ("items_fetched".to_owned(), n(c.items_fetched)),
        ("updates_refused".to_owned(), n(c.updates_refused)),
        ("duplicates".to_owned(), n(c.duplicates)),
        ("throttles".to_owned(), n(c.throttles)),
        ("restarted_listings".to_owned(), n(c.restarted_listings)),
        ("states_read".to_owned(), n(c.states_read)),
        ("states_rebuilt".to_owned(), n(c.states_rebuilt)),
        ("states_written".to_owned(), n(c.states_written)),
        ("parts".to_owned(), n(manifest.parts)),
        ("s3_keys".to_owned(), AttributeValue::L(manifest.s3_keys.iter().map(|k| s(k.as_str())).collect())),
    ]);
    if let Some(finished_at) = &manifest.finished_at {
        item.insert("finished_at".into(), s(finished_at.as_str()));
    }
    if let Some(error) = &manifest.error {
        item.insert("error".into(), s(error.as_str()));
    }
    item
}

/// The partition of a run's pools of history objects, one item a pool (sort key: its id).
pub fn pool_pk(service: ServiceId, run_id: &str) -> String {
    format!("POOL#{service}#{run_id}")
}

/// A pool's item.
pub fn pool_item(service: ServiceId, run_id: &str, pool: &HistoryPool, expires_at: i64) -> Item {
    let list = |values: &[String]| AttributeValue::L(values.iter().map(|v| s(v.as_str())).collect());
    Item::from([
        ("pk".to_owned(), s(pool_pk(service, run_id))),
        ("sk".to_owned(), s(pool.id.as_str())),
        ("item_type".to_owned(), s("history_pool")),
        ("status".to_owned(), s(pool.status.as_str())),
        ("keys".to_owned(), list(&pool.keys)),
        ("parts".to_owned(), list(&pool.parts)),
        ("expires_at".to_owned(), n(expires_at)),
    ])
}

/// Reads a pool's item back.
pub fn history_pool(item: &Item) -> Result<HistoryPool> {
    let r = ItemReader { item, what: "history pool" };
    let status_text = r.string("status")?;
    let status = PoolStatus::parse(&status_text).ok_or_else(|| r.bad("status", format!("`{status_text}`")))?;
    let list = |name: &str| -> Result<Vec<String>> {
        match item.get(name) {
            Some(AttributeValue::L(values)) => {
                values.iter().map(|v| v.as_s().cloned().map_err(|_| r.bad(name, "not a list of strings"))).collect()
            }
            _ => Err(r.bad(name, "missing")),
        }
    };
    Ok(HistoryPool { id: r.string("sk")?, keys: list("keys")?, parts: list("parts")?, status })
}

/// Reads a manifest item back (for the tests and the audit tools).
pub fn manifest(item: &Item) -> Result<Manifest> {
    let r = ItemReader { item, what: "run manifest" };
    let status_text = r.string("status")?;
    let status = RunStatus::parse(&status_text).ok_or_else(|| r.bad("status", format!("`{status_text}`")))?;
    let count = |name: &str| r.optional_number(name).map(|v| v.unwrap_or(0).max(0) as u64);
    let s3_keys = match item.get("s3_keys") {
        Some(AttributeValue::L(keys)) => keys.iter().filter_map(|k| k.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    };
    Ok(Manifest {
        run_id: r.string("run_id")?,
        event_time: r.timestamp("event_time")?,
        started_at: r.timestamp("started_at")?,
        finished_at: r.optional_timestamp("finished_at")?,
        status,
        trigger: r.string("trigger")?,
        event_id: r.string("event_id")?,
        counts: RunCounts {
            parents: count("parents")?,
            pages: count("pages")?,
            api_calls: count("api_calls")?,
            sessions: count("sessions")?,
            new: count("new")?,
            changed: count("changed")?,
            unchanged: count("unchanged")?,
            ended: count("ended")?,
            items_written: count("items_written")?,
            items_fetched: count("items_fetched")?,
            updates_refused: count("updates_refused")?,
            duplicates: count("duplicates")?,
            throttles: count("throttles")?,
            restarted_listings: count("restarted_listings")?,
            states_read: count("states_read")?,
            states_rebuilt: count("states_rebuilt")?,
            states_written: count("states_written")?,
        },
        s3_keys,
        parts: count("parts")? as u32,
        error: r.optional_string("error")?,
    })
}

/// The progress item of a scope: a few attributes to read at a glance, the whole state gzip'd.
/// The progress item of a run: what it says of the run in plain attributes, and the progress
/// itself (`state`) or the S3 object holding it (`state_object`, `state_bytes`, `state_sha256`).
pub fn progress_item(scope: &Scope, progress: &Progress, saved: &SavedProgress) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(scope.progress_pk())),
        ("sk".to_owned(), s(progress.options.as_str())),
        ("item_type".to_owned(), s("progress")),
        ("run_id".to_owned(), s(progress.run_id.as_str())),
        ("parts".to_owned(), n(progress.parts)),
        ("listings_done".to_owned(), n(progress.done.len())),
        ("listings_stopped".to_owned(), n(progress.cursors.len())),
        ("updated_at".to_owned(), s(progress.updated_at.as_str())),
    ]);
    match saved {
        SavedProgress::Inline(bytes) => {
            item.insert("state".into(), AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes.clone())));
        }
        SavedProgress::Object(object) => {
            item.insert("state_object".into(), s(object.key.as_str()));
            item.insert("state_bytes".into(), n(object.bytes));
            item.insert("state_sha256".into(), s(object.sha256.as_str()));
        }
    }
    item
}

/// Where a progress item keeps its progress.
pub fn progress(item: &Item) -> Result<SavedProgress> {
    if let Some(AttributeValue::B(blob)) = item.get("state") {
        return Ok(SavedProgress::Inline(blob.as_ref().to_vec()));
    }
    let read = ItemReader { item, what: "run progress" };
    match read.optional_string("state_object")? {
        Some(key) => Ok(SavedProgress::Object(ProgressObject {
            key,
            bytes: read
                .optional_number("state_bytes")?
                .and_then(|bytes| u64::try_from(bytes).ok())
                .ok_or_else(|| read.bad("state_bytes", "missing or negative"))?,
            sha256: read.string("state_sha256")?,
        })),
        None => Err(Error::UnreadableItem("the run progress item has neither `state` nor `state_object`".into())),
    }
}

/// Reads typed attributes, naming the item and attribute in every error.
struct ItemReader<'a> {
    item: &'a Item,
    what: &'static str,
}

impl ItemReader<'_> {
    fn bad(&self, name: &str, detail: impl std::fmt::Display) -> Error {
        let key = match (self.item.get("pk"), self.item.get("sk")) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!(" {pk} / {sk}"),
            // A projected item (its state) has no partition key.
            (None, Some(AttributeValue::S(sk))) => format!(" {sk}"),
            _ => String::new(),
        };
        Error::UnreadableItem(format!("{}{key}: attribute `{name}`: {detail}", self.what))
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.bad(name, format!("expected a string, found {other:?}"))),
        }
    }

    fn string(&self, name: &str) -> Result<String> {
        self.optional_string(name)?.ok_or_else(|| self.bad(name, "missing"))
    }

    fn optional_timestamp(&self, name: &str) -> Result<Option<Timestamp>> {
        self.optional_string(name)?.map(|text| Timestamp::parse(&text).map_err(|e| self.bad(name, e))).transpose()
    }

    fn timestamp(&self, name: &str) -> Result<Timestamp> {
        self.optional_timestamp(name)?.ok_or_else(|| self.bad(name, "missing"))
    }

    fn change(&self) -> Result<Change> {
        let text = self.string("change")?;
        Change::parse(&text).ok_or_else(|| self.bad("change", format!("`{text}` is not opened, changed or ended")))
    }

    fn optional_number(&self, name: &str) -> Result<Option<i64>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(text)) => {
                text.parse().map(Some).map_err(|_| self.bad(name, format!("`{text}` is not a whole number")))
            }
            Some(other) => Err(self.bad(name, format!("expected a number, found {other:?}"))),
        }
    }

    fn value(&self, column: &Column, attribute: &AttributeValue) -> Result<Value> {
        let wrong = || self.bad(column.name, format!("expected {:?}, found {attribute:?}", column.ty));
        Ok(match (column.ty, attribute) {
            (ColumnType::String, AttributeValue::S(text)) => Value::String(text.clone()),
            (ColumnType::Timestamp, AttributeValue::S(text)) => {
                Value::Timestamp(Timestamp::parse(text).map_err(|e| self.bad(column.name, e))?)
            }
            (ColumnType::Boolean, AttributeValue::Bool(flag)) => Value::Boolean(*flag),
            (ColumnType::BigInt, AttributeValue::N(text)) => Value::BigInt(text.parse().map_err(|_| wrong())?),
            (ColumnType::StringArray, AttributeValue::L(items)) => {
                Value::StringArray(items.iter().map(|i| i.as_s().cloned().map_err(|_| wrong())).collect::<Result<_>>()?)
            }
            _ => return Err(wrong()),
        })
    }
}

/// The attributes of a session item that are not columns of the history.
pub const STATE_ATTRIBUTES: [&str; 13] = [
    "pk",
    "sk",
    "item_type",
    "account_id",
    "region",
    "record_hash",
    "first_seen",
    "last_seen",
    "last_run",
    "change",
    "previous_status",
    "gone_at",
    "expires_at",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceId;

    fn scope(service: ServiceId) -> Scope {
        Scope { service, account_id: "123456789012".into(), region: "eu-west-1".into() }
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn chime_session() -> StoredSession {
        let mut record = SessionRecord::new(ServiceId::ChimeProxySessions, "ps-1");
        record.parent_id = Some("abcdef1234567890abcdef".into());
        record.status = Some("Open".into());
        record.started_at = Some(at("2026-11-22T10:00:00Z"));
        record.set("capabilities", Some(vec!["Voice".to_owned(), "SMS".to_owned()])).unwrap();
        record.set("expiry_minutes", Some(60)).unwrap();
        record.set("participant_phone_numbers", Some(Vec::new())).unwrap();
        record
            .set("updated_at", Timestamp::from_datetime(&aws_smithy_types::DateTime::from_secs(1_790_000_000)).ok())
            .unwrap();
        StoredSession {
            record_hash: record.record_hash(),
            record,
            first_seen: at("2026-11-22T10:05:00Z"),
            last_seen: at("2026-11-22T10:05:00Z"),
            last_run: "evt-1".into(),
            change: Change::Opened,
            previous_status: None,
            gone_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn session_keys_name_service_account_region_and_parent() {
        let item = session_item(&scope(ServiceId::ChimeProxySessions), &chime_session());
        assert_eq!(item["pk"], s("chime-proxy-sessions#123456789012#eu-west-1#abcdef1234567890abcdef"));
        assert_eq!(item["sk"], s("ps-1"));
        let no_parent = scope(ServiceId::GameliftStreamSessions).session_pk(None);
        assert_eq!(no_parent, "gamelift-stream-sessions#123456789012#eu-west-1#-");
    }

    #[test]
    fn a_session_item_holds_the_columns_under_their_names_and_nulls_are_absent() {
        let item = session_item(&scope(ServiceId::ChimeProxySessions), &chime_session());
        assert_eq!(item["status"], s("Open"));
        assert_eq!(item["expiry_minutes"], n(60));
        assert_eq!(item["capabilities"], AttributeValue::L(vec![s("Voice"), s("SMS")]));
        assert_eq!(item["participant_phone_numbers"], AttributeValue::L(vec![]));
        assert!(!item.contains_key("user_id"));
        assert!(!item.contains_key("gone_at"));
        assert!(!item.contains_key("expires_at"), "TTL only on ended sessions");
    }

    #[test]
    fn a_session_item_round_trips_for_every_service() {
        let stored = chime_session();
        let scope = scope(ServiceId::ChimeProxySessions);
        assert_eq!(stored_session(&scope, &session_item(&scope, &stored)).unwrap(), stored);

        let mut ended = stored.clone();
        ended.gone_at = Some(at("2026-11-23T00:00:00Z"));
        ended.expires_at = Some(1_800_000_000);
        ended.change = Change::Ended;
        ended.previous_status = Some("Open".into());
        assert_eq!(stored_session(&scope, &session_item(&scope, &ended)).unwrap(), ended);

        let mut ivs = SessionRecord::new(ServiceId::IvsStreamSessions, "st-1");
        ivs.set("has_error_event", true).unwrap();
        let ivs = StoredSession { record_hash: ivs.record_hash(), record: ivs, ..stored };
        let scope = super::Scope { service: ServiceId::IvsStreamSessions, ..scope };
        assert_eq!(stored_session(&scope, &session_item(&scope, &ivs)).unwrap(), ivs);
    }

    /// The item as a Query projected to the state's attributes returns it.
    fn projected(item: &Item) -> Item {
        let mut projected = item.clone();
        projected.retain(|name, _| STATE_PROJECTION.contains(&name.as_str()));
        projected
    }

    #[test]
    fn a_session_state_reads_the_same_from_the_whole_item_and_from_its_projection() {
        let scope = scope(ServiceId::ChimeProxySessions);
        let live = chime_session();
        let ended = StoredSession {
            gone_at: Some(at("2026-11-23T00:00:00Z")),
            change: Change::Ended,
            last_run: "evt-2".into(),
            ..chime_session()
        };
        for stored in [live, ended] {
            let item = session_item(&scope, &stored);
            assert!(projected(&item).len() < item.len() / 2, "the projection leaves most of the item out");
            assert_eq!(stored_state(&item).unwrap(), StoredSummary::from(&stored));
            assert_eq!(stored_state(&projected(&item)).unwrap(), StoredSummary::from(&stored));
        }
        let mut projected = projected(&session_item(&scope, &chime_session()));
        projected.insert("change".into(), s("closed"));
        let err = stored_state(&projected).unwrap_err().to_string();
        assert!(err.contains("ps-1: attribute `change`: `closed` is not opened, changed or ended"), "{err}");
    }

    #[test]
    fn a_damaged_item_is_refused_naming_the_attribute() {
        let scope = scope(ServiceId::ChimeProxySessions);
        let mut item = session_item(&scope, &chime_session());
        item.insert("expiry_minutes".into(), s("sixty"));
        let err = stored_session(&scope, &item).unwrap_err().to_string();
        assert!(err.contains("attribute `expiry_minutes`"), "{err}");
        assert!(err.contains("ps-1"), "{err}");
        item.remove("expiry_minutes");
        item.remove("last_run");
        let err = stored_session(&scope, &item).unwrap_err().to_string();
        assert!(err.contains("attribute `last_run`: missing"), "{err}");
    }

    #[test]
    fn a_manifest_round_trips_and_sorts_by_event_time() {
        let scope = scope(ServiceId::IvsStreamSessions);
        let manifest = Manifest {
            run_id: "evt-9".into(),
            event_time: at("2026-11-22T10:00:00Z"),
            started_at: at("2026-11-22T10:00:01Z"),
            finished_at: Some(at("2026-11-22T10:00:09Z")),
            status: RunStatus::Complete,
            trigger: "scheduled".into(),
            event_id: "evt-9".into(),
            counts: RunCounts {
                parents: 2,
                pages: 3,
                api_calls: 4,
                sessions: 5,
                new: 5,
                throttles: 6,
                ..RunCounts::default()
            },
            s3_keys: vec!["h/snapshots/x.jsonl.gz".into()],
            parts: 2,
            error: None,
        };
        let item = manifest_item(&scope, &manifest);
        assert_eq!(item["pk"], s("RUN#ivs-stream-sessions#123456789012#eu-west-1"));
        assert_eq!(item["sk"], s("2026-11-22T10:00:00Z#evt-9"));
        assert_eq!(super::manifest(&item).unwrap(), manifest);
    }

    #[test]
    fn a_progress_item_round_trips_and_is_one_per_scope() {
        let scope = scope(ServiceId::IvsStreamSessions);
        let progress = Progress {
            run_id: "evt-9".into(),
            event_id: "evt-9".into(),
            event_time: at("2026-11-22T10:00:00Z"),
            trigger: "scheduled".into(),
            started_at: at("2026-11-22T10:00:01Z"),
            options: "{}".into(),
            parts: 1,
            counts: RunCounts::default(),
            s3_keys: Vec::new(),
            done: ["arn:aws:ivs:eu-west-1:123456789012:channel/abc".to_owned()].into(),
            cursors: Default::default(),
            updated_at: at("2026-11-22T10:14:00Z"),
        };
        let inline = SavedProgress::Inline(progress.encode().unwrap());
        let item = progress_item(&scope, &progress, &inline);
        assert_eq!(item["pk"], s("PROGRESS#ivs-stream-sessions#123456789012#eu-west-1"));
        assert_eq!(item["sk"], s("{}"));
        assert_eq!(item["listings_done"], n(1));
        assert_eq!(super::progress(&item).unwrap(), inline);
        // AND a progress kept in an object is named by the item, with its size and hash
        let object = SavedProgress::Object(ProgressObject::of("state/progress/p".into(), b"bytes"));
        let item = progress_item(&scope, &progress, &object);
        assert_eq!((item.get("state"), &item["state_bytes"]), (None, &n(5)));
        assert_eq!(super::progress(&item).unwrap(), object);
        let mut damaged = item.clone();
        damaged.remove("state_object");
        assert!(super::progress(&damaged).unwrap_err().to_string().contains("neither `state` nor `state_object`"));
    }
}

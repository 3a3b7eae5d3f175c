//! A session written in place ([`SessionUpdate`]) as DynamoDB's UpdateItem takes it: pure, no
//! I/O. The update expression writes what [`SessionUpdate::applied_to`] makes of the item (the
//! listed record's columns set, its null ones removed, as [`super::item::session_item`] leaves
//! them absent; `previous_status` copied from the stored status, on the server, so nothing is
//! read first), and the condition is [`SessionUpdate::holds_for`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{json_attribute, Item};
use super::{Scope, SessionUpdate};
use crate::diff::UpdateWrite;
use crate::model::Change;

/// An UpdateItem's key, expressions, and the names and values they use.
#[derive(Debug, Default)]
pub struct UpdateRequest {
    pub key: Item,
    pub update_expression: String,
    pub condition_expression: String,
    pub names: HashMap<String, String>,
    pub values: Item,
}

impl UpdateRequest {
    /// A placeholder for an attribute name: every name goes through one, so none can clash with
    /// a reserved word (`status`, `region`, …).
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, named)| *named == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }
}

/// The UpdateItem of `update` in `scope`'s table.
pub fn session_update(scope: &Scope, update: &SessionUpdate) -> UpdateRequest {
    let mut request = UpdateRequest {
        key: Item::from([
            ("pk".to_owned(), AttributeValue::S(scope.session_pk(update.parent_id.as_deref()))),
            ("sk".to_owned(), AttributeValue::S(update.session_id.clone())),
        ]),
        ..UpdateRequest::default()
    };
    let (mut set, mut remove) = (Vec::new(), Vec::new());
    let s = |text: &str| AttributeValue::S(text.to_owned());
    let status = request.name("status");
    let none = request.value(AttributeValue::Null(true));
    set.push(format!("{} = if_not_exists({status}, {none})", request.name("previous_status")));
    set.push(format!("{} = {}", request.name("last_run"), request.value(s(&update.run_id))));
    let (gone_at, record_hash) = (request.name("gone_at"), request.name("record_hash"));
    let mut condition = vec![format!("attribute_exists({record_hash})")];
    match &update.write {
        UpdateWrite::Listed { record, record_hash: hash, change, last_seen } => {
            for (column, value) in record.session_values() {
                let name = request.name(column.name);
                match json_attribute(column, &value) {
                    Some(attribute) => set.push(format!("{name} = {}", request.value(attribute))),
                    None => remove.push(name),
                }
            }
            let hash = request.value(s(hash));
            set.push(format!("{record_hash} = {hash}"));
            set.push(format!("{} = {}", request.name("last_seen"), request.value(s(last_seen.as_str()))));
            set.push(format!("{} = {}", request.name("change"), request.value(s(change.as_str()))));
            remove.push(gone_at.clone());
            remove.push(request.name("expires_at"));
            condition.push(match change {
                Change::Opened => format!("attribute_exists({gone_at})"),
                _ => format!("attribute_not_exists({gone_at}) AND {record_hash} <> {hash}"),
            });
        }
        UpdateWrite::Ended { gone_at: at, expires_at } => {
            set.push(format!("{} = {}", request.name("change"), request.value(s(Change::Ended.as_str()))));
            set.push(format!("{gone_at} = {}", request.value(s(at.as_str()))));
            let expiry = request.value(AttributeValue::N(expires_at.to_string()));
            set.push(format!("{} = {expiry}", request.name("expires_at")));
            condition.push(format!("attribute_not_exists({gone_at})"));
        }
    }
    let runs: Vec<String> = update.not_written_by.iter().map(|run| request.value(s(run))).collect();
    if !runs.is_empty() {
        condition.push(format!("NOT ({} IN ({}))", request.name("last_run"), runs.join(", ")));
    }
    request.update_expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        request.update_expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    request.condition_expression = condition.join(" AND ");
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceId, SessionRecord, Timestamp};

    fn scope() -> Scope {
        Scope {
            service: ServiceId::GameliftStreamSessions,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
        }
    }

    fn update(write: UpdateWrite) -> SessionUpdate {
        SessionUpdate {
            parent_id: Some("sg-1".into()),
            session_id: "s-1".into(),
            write,
            run_id: "r2".into(),
            not_written_by: vec!["r1".into(), "r2".into()],
        }
    }

    /// The expression with its placeholders put back, to read: names as they are, values quoted.
    fn spelled(request: &UpdateRequest, expression: &str) -> String {
        let mut swaps: Vec<(String, String)> = request.names.iter().map(|(p, n)| (p.clone(), n.clone())).collect();
        swaps.extend(request.values.iter().map(|(p, value)| {
            let text = match value {
                AttributeValue::S(text) | AttributeValue::N(text) => format!("'{text}'"),
                other => format!("{other:?}"),
            };
            (p.clone(), text)
        }));
        // Longest first: #n1 must not be replaced inside #n10.
        swaps.sort_by_key(|(placeholder, _)| std::cmp::Reverse(placeholder.len()));
        swaps.into_iter().fold(expression.to_owned(), |text, (placeholder, name)| text.replace(&placeholder, &name))
    }

    #[test]
    fn a_changed_session_sets_its_columns_removes_its_nulls_and_expects_a_live_item_with_another_hash() {
        // GIVEN a listed session with a status and no user
        let mut record = SessionRecord::new(ServiceId::GameliftStreamSessions, "s-1");
        record.parent_id = Some("sg-1".into());
        record.status = Some("ACTIVE".into());
        let hash = record.record_hash();
        let last_seen = Timestamp::parse("2026-11-22T10:05:00Z").unwrap();
        // WHEN its update is made
        let request = session_update(
            &scope(),
            &update(UpdateWrite::Listed { record, record_hash: hash.clone(), change: Change::Changed, last_seen }),
        );
        let expression = spelled(&request, &request.update_expression);
        let condition = spelled(&request, &request.condition_expression);
        // THEN the key names the session's listing, the status before is copied on the server,
        // the null columns and the end's attributes are removed
        assert_eq!(request.key["pk"], AttributeValue::S(scope().session_pk(Some("sg-1"))));
        assert_eq!(request.key["sk"], AttributeValue::S("s-1".into()));
        assert!(expression.starts_with("SET previous_status = if_not_exists(status, Null(true)), last_run = 'r2'"));
        assert!(expression.contains(", status = 'ACTIVE'"), "{expression}");
        let removed = expression.split(" REMOVE ").nth(1).unwrap();
        for name in ["user_id", "gone_at", "expires_at"] {
            assert!(removed.split(", ").any(|r| r == name), "{name} removed: {expression}");
        }
        assert!(!removed.split(", ").any(|r| r == "status"), "{expression}");
        // AND the write holds only for a live item with another hash, not last written by r1 or r2
        assert_eq!(
            condition,
            format!(
                "attribute_exists(record_hash) AND attribute_not_exists(gone_at) AND record_hash <> '{hash}' \
                 AND NOT (last_run IN ('r1', 'r2'))"
            )
        );
    }

    #[test]
    fn an_ended_session_keeps_its_record_and_expects_a_live_item() {
        let gone_at = Timestamp::parse("2026-11-22T10:05:00Z").unwrap();
        let request = session_update(&scope(), &update(UpdateWrite::Ended { gone_at, expires_at: 1_900_000_000 }));
        let expression = spelled(&request, &request.update_expression);
        assert!(!expression.contains("REMOVE"), "{expression}");
        assert!(!expression.contains(" status = "), "the record is kept: {expression}");
        assert!(expression.contains("expires_at = '1900000000'") && expression.contains("change = 'ended'"));
        let condition = spelled(&request, &request.condition_expression);
        assert_eq!(
            condition,
            "attribute_exists(record_hash) AND attribute_not_exists(gone_at) AND NOT (last_run IN ('r1', 'r2'))"
        );
    }
}

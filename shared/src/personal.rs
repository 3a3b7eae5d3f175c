//! Personal data in the sessions: user ids and phone numbers, each column kept, replaced by a
//! keyed hash, or dropped, before anything is diffed, written or logged.
//!
//! The hash is HMAC-SHA256 with a key the function reads at cold start from Secrets Manager
//! (`PERSONAL_DATA_KEY_SECRET`): the same value always gives the same hash, so an auditor can
//! still follow one user or number across sessions (and, holding the key, find a known one),
//! while a reader of the history alone cannot recover it. Hashes are 64 lowercase hex digits.
//!
//! | column | service | default |
//! |---|---|---|
//! | `user_id` | WorkSpaces pool sessions, GameLift Streams | keep |
//! | `participant_phone_numbers` | Chime SDK Voice proxy sessions | hash |
//! | `participant_proxy_phone_numbers` | Chime SDK Voice proxy sessions | hash |

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{SessionRecord, Value};

/// What happens to one personal-data column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    Keep,
    /// HMAC-SHA256 with the function's key, hex.
    Hash,
    /// Null in the table and the history.
    Drop,
}

impl Treatment {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "keep" => Some(Treatment::Keep),
            "hash" => Some(Treatment::Hash),
            "drop" => Some(Treatment::Drop),
            _ => None,
        }
    }
}

/// The personal-data columns and their default treatment.
pub const PERSONAL_COLUMNS: [(&str, Treatment); 3] = [
    ("user_id", Treatment::Keep),
    ("participant_phone_numbers", Treatment::Hash),
    ("participant_proxy_phone_numbers", Treatment::Hash),
];

/// The Secrets Manager action the function calls at cold start (on its key's secret only).
pub const IAM_ACTIONS: [&str; 1] = ["secretsmanager:GetSecretValue"];

/// The shortest key accepted: 32 bytes, the output size of SHA-256.
pub const MIN_KEY_BYTES: usize = 32;

/// The treatment of every personal-data column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalDataPolicy {
    treatments: BTreeMap<&'static str, Treatment>,
}

impl Default for PersonalDataPolicy {
    fn default() -> Self {
        PersonalDataPolicy { treatments: PERSONAL_COLUMNS.into_iter().collect() }
    }
}

impl PersonalDataPolicy {
    /// Reads `column=keep|hash|drop` pairs separated by commas; columns not named keep their
    /// default.
    pub fn parse(text: &str) -> Result<Self> {
        let mut policy = PersonalDataPolicy::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: String| Err(Error::Config(format!("PERSONAL_DATA `{pair}`: {why}")));
            let Some((column, treatment)) = pair.split_once('=') else {
                return bad("expected column=keep|hash|drop".into());
            };
            let (column, treatment) = (column.trim(), treatment.trim());
            let Some((known, _)) = PERSONAL_COLUMNS.iter().find(|(name, _)| *name == column) else {
                let names: Vec<&str> = PERSONAL_COLUMNS.iter().map(|(n, _)| *n).collect();
                return bad(format!("`{column}` is not a personal-data column ({})", names.join(", ")));
            };
            let Some(treatment) = Treatment::parse(treatment) else {
                return bad(format!("`{treatment}` is not keep, hash or drop"));
            };
            policy.treatments.insert(known, treatment);
        }
        Ok(policy)
    }

    pub fn treatment(&self, column: &str) -> Treatment {
        self.treatments.get(column).copied().unwrap_or(Treatment::Keep)
    }

    /// Whether a column is hashed, so a key is needed.
    pub fn needs_key(&self) -> bool {
        self.treatments.values().any(|t| *t == Treatment::Hash)
    }

    /// `column=treatment` pairs, for the logs (no value, no key).
    pub fn describe(&self) -> String {
        let words = |t: &Treatment| match t {
            Treatment::Keep => "keep",
            Treatment::Hash => "hash",
            Treatment::Drop => "drop",
        };
        self.treatments.iter().map(|(c, t)| format!("{c}={}", words(t))).collect::<Vec<_>>().join(",")
    }
}

/// HMAC-SHA256 of `value` with `key`, 64 lowercase hex digits: what a hashed column holds, so an
/// auditor with the key can find a known value.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A policy with its key, applied to every record as it arrives from the API.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalData {
    policy: PersonalDataPolicy,
    key: Option<Vec<u8>>,
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_some() { "<redacted>" } else { "none" };
        f.debug_struct("PersonalData").field("policy", &self.policy.describe()).field("key", &key).finish()
    }
}

impl PersonalData {
    /// Refuses a policy that hashes without a key, or a key too short to be one.
    pub fn new(policy: PersonalDataPolicy, key: Option<Vec<u8>>) -> Result<Self> {
        match &key {
            None if policy.needs_key() => Err(Error::Config(format!(
                "personal data policy `{}` hashes columns but no key is set (PERSONAL_DATA_KEY_SECRET)",
                policy.describe()
            ))),
            Some(key) if key.len() < MIN_KEY_BYTES => Err(Error::Config(format!(
                "the personal-data key is {} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            ))),
            _ => Ok(PersonalData { policy, key }),
        }
    }

    /// Keeps every column as the API gives it (no key needed): for tests and for accounts
    /// whose history may hold personal data.
    pub fn keep_all() -> Self {
        let treatments = PERSONAL_COLUMNS.iter().map(|(c, _)| (*c, Treatment::Keep)).collect();
        PersonalData { policy: PersonalDataPolicy { treatments }, key: None }
    }

    pub fn policy(&self) -> &PersonalDataPolicy {
        &self.policy
    }

    fn hash(&self, value: &str) -> String {
        keyed_hash(self.key.as_deref().expect("a policy that hashes has a key (checked in new)"), value)
    }

    /// Applies the policy to one record, in place.
    pub fn apply(&self, record: &mut SessionRecord) -> Result<()> {
        match self.policy.treatment("user_id") {
            Treatment::Keep => {}
            Treatment::Hash => record.user_id = record.user_id.take().map(|u| self.hash(&u)),
            Treatment::Drop => record.user_id = None,
        }
        for (column, _) in &PERSONAL_COLUMNS[1..] {
            let treatment = self.policy.treatment(column);
            let Some(Value::StringArray(numbers)) = record.get(column).cloned() else { continue };
            let replaced = match treatment {
                Treatment::Keep => continue,
                Treatment::Hash => Value::StringArray(numbers.iter().map(|n| self.hash(n)).collect()),
                Treatment::Drop => Value::Null,
            };
            record.set(column, replaced)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceId;

    #[test]
    fn every_column_that_names_a_person_has_a_treatment() {
        // GIVEN every column of every API's schema (a new API's too)
        let names_a_person =
            |name: &str| name.ends_with("user_id") || name.contains("phone_number") || name.contains("email");
        for service in ServiceId::ALL {
            for column in service.schema().columns().filter(|column| names_a_person(column.name)) {
                // THEN a column holding a user id, phone number or address is kept, hashed or
                // dropped by the policy, never written as it came
                assert!(
                    PERSONAL_COLUMNS.iter().any(|(name, _)| *name == column.name),
                    "{service}: column {} names a person and has no treatment in PERSONAL_COLUMNS",
                    column.name
                );
            }
        }
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn proxy_session() -> SessionRecord {
        let mut record = SessionRecord::new(ServiceId::ChimeProxySessions, "ps-1");
        record
            .set("participant_phone_numbers", Value::StringArray(vec!["+14155550100".into(), "+14155550101".into()]))
            .unwrap();
        record.set("participant_proxy_phone_numbers", Value::StringArray(vec!["+14155550199".into()])).unwrap();
        record
    }

    #[test]
    fn by_default_phone_numbers_are_hashed_and_user_ids_kept() {
        let data = PersonalData::new(PersonalDataPolicy::default(), Some(KEY.to_vec())).unwrap();
        let mut record = proxy_session();
        data.apply(&mut record).unwrap();
        let Some(Value::StringArray(numbers)) = record.get("participant_phone_numbers") else { panic!() };
        assert_eq!(numbers.len(), 2);
        assert!(numbers.iter().all(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())), "{numbers:?}");
        assert_ne!(numbers[0], numbers[1]);
        // The same number hashes the same, in another record too.
        let mut again = proxy_session();
        data.apply(&mut again).unwrap();
        assert_eq!(again.get("participant_phone_numbers"), record.get("participant_phone_numbers"));

        let mut pool = SessionRecord::new(ServiceId::WorkspacesPoolSessions, "s-1");
        pool.user_id = Some("alice".into());
        data.apply(&mut pool).unwrap();
        assert_eq!(pool.user_id.as_deref(), Some("alice"));
    }

    #[test]
    fn each_column_can_be_kept_hashed_or_dropped() {
        let policy = PersonalDataPolicy::parse(
            "user_id=hash, participant_phone_numbers=drop,participant_proxy_phone_numbers=keep",
        )
        .unwrap();
        let data = PersonalData::new(policy, Some(KEY.to_vec())).unwrap();
        let mut record = proxy_session();
        data.apply(&mut record).unwrap();
        assert_eq!(record.get("participant_phone_numbers"), Some(&Value::Null));
        assert_eq!(
            record.get("participant_proxy_phone_numbers"),
            Some(&Value::StringArray(vec!["+14155550199".into()]))
        );
        let mut stream = SessionRecord::new(ServiceId::GameliftStreamSessions, "s-1");
        stream.user_id = Some("alice".into());
        data.apply(&mut stream).unwrap();
        // HMAC-SHA256("0123…cdef", "alice"), as any HMAC tool computes it.
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
            mac.update(b"alice");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(stream.user_id.as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn a_bad_policy_or_key_is_refused_naming_what_is_wrong() {
        let cases = [
            ("user_id", "expected column=keep|hash|drop"),
            ("email=hash", "`email` is not a personal-data column"),
            ("user_id=encrypt", "`encrypt` is not keep, hash or drop"),
        ];
        for (text, expected) in cases {
            let err = PersonalDataPolicy::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = PersonalData::new(PersonalDataPolicy::default(), None).unwrap_err().to_string();
        assert!(err.contains("hashes columns but no key is set"), "{err}");
        let err = PersonalData::new(PersonalDataPolicy::default(), Some(b"short".to_vec())).unwrap_err().to_string();
        assert!(err.contains("the personal-data key is 5 bytes"), "{err}");
        let keep =
            PersonalDataPolicy::parse("participant_phone_numbers=keep,participant_proxy_phone_numbers=drop").unwrap();
        assert!(PersonalData::new(keep, None).is_ok());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let data = PersonalData::new(PersonalDataPolicy::default(), Some(KEY.to_vec())).unwrap();
        let shown = format!("{data:?}");
        assert!(!shown.contains("0123456789abcdef") && shown.contains("<redacted>"), "{shown}");
    }
}

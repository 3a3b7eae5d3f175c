//! The decision, per session, of what to write and which change to record: pure, no I/O.
//!
//! A listing's previous state (every stored session of the parent) is diffed on `record_hash`
//! against what the listing returns: new and changed sessions are written, unchanged ones are not
//! (DynamoDB charges a write unit even for a failed conditional write, so the skip must come from
//! the read), and after a **complete** listing the live sessions it did not return are ended.
//!
//! Memory stays flat in the size of a listing: the previous state is held as 12 to 18 bytes per
//! session (a fingerprint of its id, a fingerprint of its `record_hash` (or, once it ended, when
//! its item expires) and four flags; see [`PreviousState`]), built as the table's pages stream by
//! or read from the state the listing's last run left, and a listed session the table does not
//! know joins it the same way, so the diff ends holding the listing's next state
//! ([`ListingDiff::next_state`]). The common case, an unchanged live session, is decided from
//! that alone. A session that changed is written in place without a read, on the condition that
//! its item is as the diff knows it ([`Seen::Update`], see [`update`]); one whose last change
//! must be recorded again is decided once its whole stored item is fetched by id
//! ([`Seen::NeedsPrevious`]). The sessions a complete listing did not return
//! ([`ListingDiff::ending`]) are found by id where the run can (the last complete run's snapshot
//! lines), else in a second read of the previous state ([`ListingDiff::ends`]), and ended the
//! same two ways ([`ListingDiff::end_update`], [`ListingDiff::end`]), done only when there are
//! such sessions.
//! Fingerprints are 64-bit (ids) and 44-bit (hashes): two of a listing's ids collide with a chance
//! of about 3 × 10⁻⁸ at a million sessions, and a changed session whose new hash matches its old
//! one in 44 bits (a chance of 6 × 10⁻¹⁴ a change) would be taken for unchanged.
//!
//! Exactly-once history: an item carries the run that last wrote it (`last_run`) and the change
//! that run recorded. If that run is this very run (a redelivered event) or a run whose manifest
//! never said complete (its history objects may be missing), the change is recorded again by
//! this run, so no change line is lost and a redelivered event writes the same lines again.

pub mod previous;
pub mod stored;
pub mod update;

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::model::Change;
use crate::model::{SessionRecord, Timestamp};
pub use previous::PreviousState;
pub use stored::{StoredSession, StoredSummary};
pub use update::{SessionUpdate, UpdateWrite, Updated};

/// What the diff needs to know of the run.
#[derive(Clone, Debug)]
pub struct RunMark {
    pub run_id: String,
    pub snapshot_at: Timestamp,
    /// TTL of a session ended by this run (epoch seconds).
    pub ended_expires_at: i64,
    /// Runs whose recorded changes this run records again: itself and the unfinished runs.
    pub unfinished_runs: HashSet<String>,
}

impl RunMark {
    /// Whether this run records again the change the run `last_run` recorded.
    fn records_again(&self, last_run: &str) -> bool {
        self.unfinished_runs.contains(last_run) || last_run == self.run_id
    }

    /// The runs an item written in place must not have been last written by (those whose
    /// changes this run records again); `None` when too many for a condition to name.
    fn update_condition(&self) -> Option<Vec<String>> {
        if self.unfinished_runs.len() >= update::MAX_CONDITION_RUNS {
            return None;
        }
        let mut runs: Vec<String> = self.unfinished_runs.iter().cloned().collect();
        runs.push(self.run_id.clone());
        runs.sort_unstable();
        runs.dedup();
        Some(runs)
    }
}

/// The fingerprint of a session id: stable across processes and versions, so a run's progress
/// can name the sessions a listing has seen in 8 bytes each.
pub fn id_fingerprint(session_id: &str) -> u64 {
    let digest = Sha256::digest(session_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// 44 bits of a `record_hash` (hex), or of the hash of any other text, above [`FLAG_BITS`] free bits.
fn hash_fingerprint(record_hash: &str) -> u64 {
    let bits = match record_hash.get(..HASH_HEX_DIGITS).and_then(|hex| u64::from_str_radix(hex, 16).ok()) {
        Some(bits) => bits,
        None => id_fingerprint(record_hash) >> (64 - 4 * HASH_HEX_DIGITS),
    };
    bits << FLAG_BITS
}

/// A hash fingerprint's hex digits: with the flags, a [`previous::WORD_BITS`] word.
const HASH_HEX_DIGITS: usize = ((previous::WORD_BITS - FLAG_BITS) / 4) as usize;

const FLAG_BITS: u32 = 4;
const LIVE: u64 = 1;
/// Last written by a run whose changes this run records again.
const CARRIED: u64 = 2;
/// The change last recorded is `ended`.
const ENDED: u64 = 4;
/// Returned by the listing in this run.
const SEEN: u64 = 8;

/// Whether a carried word ([`ListingDiff::carry`]) is of a session the listing returned in this run.
pub fn seen_in_carry(word: u64) -> bool {
    Known { word }.has(SEEN)
}

/// The word of an ended session: when its item expires (none: never), where a live one keeps its
/// hash.
fn expiry_bits(expires_at: Option<i64>) -> u64 {
    let most = (1u64 << (previous::WORD_BITS - FLAG_BITS)) - 1;
    expires_at.map_or(most, |at| (at.max(0) as u64).min(most)) << FLAG_BITS
}

/// One stored session, as the diff remembers it: [`hash_fingerprint`] with the flags in the low
/// [`FLAG_BITS`] (its id is the key it is found by).
#[derive(Clone, Copy, Debug)]
struct Known {
    word: u64,
}

impl Known {
    fn has(self, flag: u64) -> bool {
        self.word & flag != 0
    }

    fn hash(self) -> u64 {
        self.word >> FLAG_BITS << FLAG_BITS
    }

    /// Whether the end of a complete listing that missed it records something.
    fn ends(self) -> bool {
        !self.has(SEEN) && (self.has(LIVE) || (self.has(CARRIED) && self.has(ENDED)))
    }
}

/// The outcome for one session.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The state of the session the history records (for an ended session, its last known state).
    pub record: SessionRecord,
    /// `record.record_hash()`, computed once per session.
    pub record_hash: String,
    /// The change to record, with the status before it.
    pub change: Option<(Change, Option<String>)>,
    /// The item to write; `None` when the table already says it.
    pub write: Option<StoredSession>,
}

/// What the diff makes of one listed session.
#[derive(Clone, Debug, PartialEq)]
// Returned and matched at once, never stored: boxing would only add an allocation a session.
#[allow(clippy::large_enum_variant)]
pub enum Seen {
    /// The listing already returned it (a page repeating a session keeps the first).
    Repeated,
    Decided(Observation),
    /// Written in place without a read, if its item is as the diff knows it: pass what the table
    /// did to [`ListingDiff::updated`].
    Update(SessionUpdate),
    /// Its stored item is needed: pass it (or `None` if it is gone) to [`ListingDiff::decide`].
    NeedsPrevious {
        record: SessionRecord,
        record_hash: String,
    },
}

/// The diff of one listing: fed the stored sessions ([`ListingDiff::remember`]) or a saved state
/// ([`ListingDiff::from_state`]), then the listed sessions as pages arrive
/// ([`ListingDiff::observe`]), then, after a complete listing, the stored sessions it did not
/// return ([`ListingDiff::end`]); and at last the listing's next state ([`ListingDiff::next_state`]).
#[derive(Debug)]
pub struct ListingDiff<'a> {
    run: &'a RunMark,
    /// Sealed (sorted by id) once the first listed session comes; new sessions are merged in,
    /// so it ends as the listing's next state.
    previous: PreviousState,
    /// New sessions not merged into `previous` yet, by id fingerprint.
    recent: HashMap<u64, u64>,
    /// Sessions an earlier part of the run listed, flagged once `previous` is sealed.
    seen_before: Vec<u64>,
    /// The runs a write in place must not find as the item's last ([`RunMark::update_condition`]),
    /// worked out once a listing; `None`: sessions are read before they are written.
    not_written_by: Option<Vec<String>>,
}

impl<'a> ListingDiff<'a> {
    /// New sessions kept aside before a merge: a merge costs O(n), so O(n² / 4096) in all.
    const RECENT: usize = 4096;

    pub fn new(run: &'a RunMark) -> Self {
        ListingDiff {
            run,
            previous: PreviousState::default(),
            recent: HashMap::new(),
            seen_before: Vec::new(),
            not_written_by: run.update_condition(),
        }
    }

    /// The diff of a listing an earlier part of the run stopped in: the sessions it had seen
    /// (their [`id_fingerprint`]s) are neither listed again nor taken for ended.
    pub fn resume(run: &'a RunMark, seen: impl IntoIterator<Item = u64>) -> Self {
        ListingDiff { seen_before: seen.into_iter().collect(), ..ListingDiff::new(run) }
    }

    /// The diff of a listing whose previous state is a saved one (sealed): the state a vouched
    /// run left ([`ListingDiff::next_state`]), or the diff an earlier part of this run carried
    /// ([`ListingDiff::carry`]).
    pub fn from_state(run: &'a RunMark, state: PreviousState) -> Self {
        ListingDiff { previous: state, ..ListingDiff::new(run) }
    }

    /// One stored session of the listing's previous state.
    pub fn remember(&mut self, stored: &StoredSummary) {
        let mut word = if stored.live {
            hash_fingerprint(&stored.record_hash) | LIVE
        } else {
            // An ended session's hash is never compared: its word keeps when its item expires.
            expiry_bits(stored.expires_at)
        };
        if self.run.records_again(&stored.last_run) {
            word |= CARRIED;
        }
        if stored.change == Change::Ended {
            word |= ENDED;
        }
        self.previous.push(id_fingerprint(&stored.session_id), word);
    }

    fn ready(&mut self) {
        if !self.previous.seal() {
            return;
        }
        // Seen ids an earlier part listed: flagged on the stored sessions they name; one the
        // table does not hold (any more) is kept as seen, with a hash that matches nothing.
        for id in std::mem::take(&mut self.seen_before) {
            match self.previous.find(id) {
                Some(at) => {
                    let word = self.previous.word(at);
                    self.previous.set_word(at, word | SEEN);
                }
                None => self.add_new(id, LIVE | SEEN),
            }
        }
        self.merge_recent();
    }

    fn add_new(&mut self, id: u64, word: u64) {
        self.recent.insert(id, word);
        if self.recent.len() >= Self::RECENT {
            self.merge_recent();
        }
    }

    fn merge_recent(&mut self) {
        let mut batch: Vec<(u64, u64)> = self.recent.drain().collect();
        batch.sort_unstable_by_key(|&(id, _)| id);
        self.previous.merge_sorted(&batch);
    }

    fn known(&self, at: usize) -> Known {
        Known { word: self.previous.word(at) }
    }

    /// The fingerprints of the sessions the listing has returned so far, for a run that stops
    /// before it ends.
    pub fn seen(&mut self) -> Vec<u64> {
        self.ready();
        self.merge_recent();
        self.previous.iter().filter(|&(_, word)| Known { word }.has(SEEN)).map(|(id, _)| id).collect()
    }

    /// The listing's state once it is complete and its writes are done, in id order, as the next
    /// run reads it ([`ListingDiff::from_state`]): each session listed, live with its hash; each
    /// one it ended, or that had ended, with when its item expires, until then.
    pub fn next_state(&mut self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ready();
        self.merge_recent();
        let (now, ended_expiry) = (self.run.snapshot_at.epoch_seconds(), expiry_bits(Some(self.run.ended_expires_at)));
        self.previous.iter().filter_map(move |(id, word)| {
            let known = Known { word };
            let next = if known.has(SEEN) {
                known.hash() | LIVE
            } else if known.has(LIVE) {
                ended_expiry | ENDED
            } else if (known.hash() >> FLAG_BITS) as i64 <= now {
                return None;
            } else {
                known.hash() | (word & ENDED)
            };
            Some((id, next))
        })
    }

    /// The diff as it stands, in id order, flags and all: what a listing that stops before it
    /// ends carries to the run's next part ([`ListingDiff::from_state`] takes it back).
    pub fn carry(&mut self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ready();
        self.merge_recent();
        self.previous.iter()
    }

    /// What to make of one listed session.
    pub fn observe(&mut self, record: SessionRecord) -> Seen {
        self.ready();
        let id = id_fingerprint(&record.session_id);
        let Some(at) = self.previous.find(id) else {
            if self.recent.contains_key(&id) {
                return Seen::Repeated;
            }
            let hash = record.record_hash();
            self.add_new(id, hash_fingerprint(&hash) | LIVE | SEEN);
            return Seen::Decided(written(self.run, record, hash, None, Change::Opened, None));
        };
        let known = self.known(at);
        if known.has(SEEN) {
            return Seen::Repeated;
        }
        let record_hash = record.record_hash();
        // What the item holds once the session is decided: live, with this hash.
        self.previous.set_word(at, hash_fingerprint(&record_hash) | LIVE | SEEN);
        if known.has(LIVE) && !known.has(CARRIED) && known.hash() == hash_fingerprint(&record_hash) {
            return Seen::Decided(Observation { record, record_hash, change: None, write: None });
        }
        match (!known.has(CARRIED)).then(|| self.not_written_by.clone()).flatten() {
            Some(not_written_by) => {
                let change = if known.has(LIVE) { Change::Changed } else { Change::Opened };
                let last_seen = self.run.snapshot_at.clone();
                Seen::Update(SessionUpdate {
                    parent_id: record.parent_id.clone(),
                    session_id: record.session_id.clone(),
                    write: UpdateWrite::Listed { record, record_hash, change, last_seen },
                    run_id: self.run.run_id.clone(),
                    not_written_by,
                })
            }
            None => Seen::NeedsPrevious { record, record_hash },
        }
    }

    /// For a session a complete listing ends ([`ListingDiff::ends`]), its end written in place
    /// without a read: when it was live and its last change is not recorded again (else it is
    /// fetched and passed to [`ListingDiff::end`]).
    pub fn end_update(&mut self, parent_id: Option<&str>, session_id: &str) -> Option<SessionUpdate> {
        self.ready();
        let known = self.known(self.previous.find(id_fingerprint(session_id))?);
        if !known.ends() || !known.has(LIVE) || known.has(CARRIED) {
            return None;
        }
        let run = self.run;
        Some(SessionUpdate {
            parent_id: parent_id.map(str::to_owned),
            session_id: session_id.to_owned(),
            write: UpdateWrite::Ended { gone_at: run.snapshot_at.clone(), expires_at: run.ended_expires_at },
            run_id: run.run_id.clone(),
            not_written_by: self.not_written_by.clone()?,
        })
    }

    /// The outcome of a session written in place ([`Seen::Update`], [`ListingDiff::end_update`])
    /// given what the table did: decided from the item as it was, as from a read; applied, its
    /// write is done already; refused, the item is written whole as the read decides (`None`: an
    /// ended session whose item is gone, nothing to record).
    pub fn updated(&mut self, update: SessionUpdate, outcome: Updated) -> Option<Observation> {
        let (applied, before) = match outcome {
            Updated::Applied(before) => (true, Some(before)),
            Updated::Refused(before) => (false, before),
        };
        let mut observation = match update.write {
            UpdateWrite::Listed { record, record_hash, .. } => Some(self.decide(record, record_hash, before)),
            UpdateWrite::Ended { .. } => before.and_then(|before| self.end(before)),
        }?;
        if applied {
            observation.write = None;
        }
        Some(observation)
    }

    /// The outcome for a listed session given its stored item (`None` if it is gone since the
    /// previous state was read, such as an ended session the TTL removed).
    pub fn decide(&self, record: SessionRecord, hash: String, before: Option<StoredSession>) -> Observation {
        let run = self.run;
        let Some(before) = before else {
            return written(run, record, hash, None, Change::Opened, None);
        };
        let previous_status = before.record.status.clone();
        if run.records_again(&before.last_run) {
            // The change that run recorded, relative to the state before it.
            let (change, previous) = if before.is_live() {
                (before.change, before.previous_status.clone())
            } else {
                (Change::Opened, previous_status)
            };
            if before.is_live() && before.record_hash == hash && before.last_run == run.run_id {
                return Observation { record, record_hash: hash, change: Some((change, previous)), write: None };
            }
            return written(run, record, hash, Some(&before), change, previous);
        }
        if !before.is_live() {
            return written(run, record, hash, Some(&before), Change::Opened, previous_status);
        }
        if before.record_hash == hash {
            return Observation { record, record_hash: hash, change: None, write: None };
        }
        written(run, record, hash, Some(&before), Change::Changed, previous_status)
    }

    /// Whether a complete listing ended sessions, so the table must be read again for them.
    pub fn has_ended(&mut self) -> bool {
        self.ready();
        self.previous.iter().any(|(_, word)| Known { word }.ends())
    }

    /// The id fingerprints of the sessions a complete listing ends (those [`ListingDiff::ends`]
    /// says yes to), to find their ids elsewhere than in a read of the table.
    pub fn ending(&mut self) -> std::collections::HashSet<u64> {
        self.ready();
        self.previous.iter().filter(|(_, word)| Known { word: *word }.ends()).map(|(id, _)| id).collect()
    }

    /// Whether [`ListingDiff::end`] records something for this stored session, after a complete
    /// listing: decided from the previous state alone, so only such sessions are fetched whole.
    pub fn ends(&mut self, stored: &StoredSummary) -> bool {
        self.ready();
        self.previous.find(id_fingerprint(&stored.session_id)).is_some_and(|at| self.known(at).ends())
    }

    /// For one stored session, after a complete listing: the end to record if the listing did
    /// not return it (a live session ends; an end an unfinished run recorded is recorded again).
    pub fn end(&mut self, before: StoredSession) -> Option<Observation> {
        self.ready();
        let at = self.previous.find(id_fingerprint(&before.record.session_id))?;
        if !self.known(at).ends() {
            return None;
        }
        let run = self.run;
        if before.is_live() {
            let mut after = before.clone();
            after.previous_status = before.record.status.clone();
            after.change = Change::Ended;
            after.gone_at = Some(run.snapshot_at.clone());
            after.expires_at = Some(run.ended_expires_at);
            after.last_run = run.run_id.clone();
            let change = Some((Change::Ended, after.previous_status.clone()));
            let record_hash = before.record.record_hash();
            Some(Observation { record: before.record, record_hash, change, write: Some(after) })
        } else if run.records_again(&before.last_run) && before.change == Change::Ended {
            let change = Some((Change::Ended, before.previous_status.clone()));
            let write = (before.last_run != run.run_id)
                .then(|| StoredSession { last_run: run.run_id.clone(), ..before.clone() });
            let record_hash = before.record.record_hash();
            Some(Observation { record: before.record, record_hash, change, write })
        } else {
            None
        }
    }
}

fn written(
    run: &RunMark,
    record: SessionRecord,
    record_hash: String,
    before: Option<&StoredSession>,
    change: Change,
    previous_status: Option<String>,
) -> Observation {
    let write = StoredSession {
        record: record.clone(),
        record_hash: record_hash.clone(),
        first_seen: before.map_or_else(|| run.snapshot_at.clone(), |b| b.first_seen.clone()),
        last_seen: run.snapshot_at.clone(),
        last_run: run.run_id.clone(),
        change,
        previous_status: previous_status.clone(),
        gone_at: None,
        expires_at: None,
    };
    Observation { record, record_hash, change: Some((change, previous_status)), write: Some(write) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::ServiceId;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn run(id: &str, when: &str) -> RunMark {
        RunMark {
            run_id: id.into(),
            snapshot_at: at(when),
            ended_expires_at: 1_900_000_000,
            unfinished_runs: HashSet::new(),
        }
    }

    fn session(id: &str, status: &str) -> SessionRecord {
        let mut r = SessionRecord::new(ServiceId::GameliftStreamSessions, id);
        r.status = Some(status.into());
        r
    }

    /// The table after applying a run's writes.
    fn apply(table: &mut HashMap<String, StoredSession>, observations: &[Observation]) {
        for o in observations {
            if let Some(w) = &o.write {
                table.insert(w.record.session_id.clone(), w.clone());
            }
        }
    }

    /// The diff as the run drives it, with `table` standing in for the stored items: remember
    /// every item, observe the listed sessions (fetching the items asked for), end the rest.
    fn list(run: &RunMark, table: &HashMap<String, StoredSession>, sessions: &[SessionRecord]) -> Vec<Observation> {
        let mut diff = remembering(run, table, &[]);
        let mut out = Vec::new();
        for session in sessions {
            let seen = diff.observe(session.clone());
            out.extend(resolve(&mut diff, table, seen));
        }
        out.extend(end_all(&mut diff, table));
        out
    }

    fn remembering<'a>(run: &'a RunMark, table: &HashMap<String, StoredSession>, seen: &[&str]) -> ListingDiff<'a> {
        let mut diff = ListingDiff::resume(run, seen.iter().map(|id| id_fingerprint(id)));
        table.values().for_each(|stored| diff.remember(&stored.into()));
        diff
    }

    fn resolve(diff: &mut ListingDiff<'_>, table: &HashMap<String, StoredSession>, seen: Seen) -> Option<Observation> {
        match seen {
            Seen::Repeated => None,
            Seen::Decided(observation) => Some(observation),
            Seen::NeedsPrevious { record, record_hash } => {
                let before = table.get(&record.session_id).cloned();
                Some(diff.decide(record, record_hash, before))
            }
            Seen::Update(update) => in_place(diff, table, update),
        }
    }

    /// A write in place as the table does it: applied when its item is as expected, else refused
    /// with the item. An applied one's write is left in the observation for [`apply`], after
    /// checking it is the very item the diff would have written after reading it.
    fn in_place(
        diff: &mut ListingDiff<'_>,
        table: &HashMap<String, StoredSession>,
        update: SessionUpdate,
    ) -> Option<Observation> {
        let before = table.get(&update.session_id).cloned();
        if !update.holds_for(before.as_ref()) {
            return diff.updated(update, Updated::Refused(before));
        }
        let before = before.unwrap();
        let written = update.applied_to(&before);
        let by_read = match &update.write {
            UpdateWrite::Listed { record, record_hash, .. } => {
                Some(diff.decide(record.clone(), record_hash.clone(), Some(before.clone())))
            }
            UpdateWrite::Ended { .. } => diff.end(before.clone()),
        };
        let mut observation = diff.updated(update, Updated::Applied(before)).unwrap();
        assert_eq!(by_read.as_ref().map(|o| o.change.clone()), Some(observation.change.clone()));
        assert_eq!(by_read.and_then(|o| o.write), Some(written.clone()), "the write in place is the read's");
        assert_eq!(observation.write, None, "written already");
        observation.write = Some(written);
        Some(observation)
    }

    /// The second read of the table's states, in id order, when the diff says something ended;
    /// the sessions that end fetched whole.
    fn end_all(diff: &mut ListingDiff<'_>, table: &HashMap<String, StoredSession>) -> Vec<Observation> {
        if !diff.has_ended() {
            return Vec::new();
        }
        let mut stored: Vec<&StoredSession> = table.values().collect();
        stored.sort_by(|a, b| a.record.session_id.cmp(&b.record.session_id));
        let ending: Vec<&StoredSession> = stored.into_iter().filter(|s| diff.ends(&(*s).into())).collect();
        let mut out = Vec::new();
        for s in ending {
            let ended = match diff.end_update(s.record.parent_id.as_deref(), &s.record.session_id) {
                Some(update) => in_place(diff, table, update),
                None => diff.end(s.clone()),
            };
            out.push(ended.expect("a session the states say ends, ends"));
        }
        out
    }

    /// Lists on the table, then applies the writes; returns the observations.
    fn step(table: &mut HashMap<String, StoredSession>, run: &RunMark, sessions: &[SessionRecord]) -> Vec<Observation> {
        let out = list(run, table, sessions);
        apply(table, &out);
        out
    }

    fn changes(observations: &[Observation]) -> Vec<(String, Change, Option<String>)> {
        observations.iter().filter_map(|o| o.change.clone().map(|(c, p)| (o.record.session_id.clone(), c, p))).collect()
    }

    fn writes(observations: &[Observation]) -> usize {
        observations.iter().filter(|o| o.write.is_some()).count()
    }

    #[test]
    fn new_sessions_are_opened_and_written_with_first_seen() {
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let out = list(&r1, &HashMap::new(), &[session("a", "ACTIVE"), session("b", "ACTIVATING")]);
        assert_eq!(writes(&out), 2);
        assert_eq!(changes(&out), vec![("a".into(), Change::Opened, None), ("b".into(), Change::Opened, None)]);
        let item = out[0].write.as_ref().unwrap();
        assert_eq!(item.first_seen, at("2026-11-22T10:00:00Z"));
        assert_eq!(item.last_run, "r1");
        assert_eq!(item.record_hash, session("a", "ACTIVE").record_hash());
    }

    #[test]
    fn an_identical_listing_writes_nothing_and_records_no_change() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVE")]);
        let out = list(&run("r2", "2026-11-22T10:05:00Z"), &table, &[session("a", "ACTIVE")]);
        assert_eq!(writes(&out), 0);
        assert!(changes(&out).is_empty());
        assert_eq!(out.len(), 1, "the session is still observed for the snapshot");
    }

    #[test]
    fn a_changed_session_keeps_first_seen_and_records_the_previous_status() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVATING")]);
        let out = list(&run("r2", "2026-11-22T10:05:00Z"), &table, &[session("a", "ACTIVE")]);
        assert_eq!(changes(&out), vec![("a".into(), Change::Changed, Some("ACTIVATING".into()))]);
        let item = out[0].write.as_ref().unwrap();
        assert_eq!(item.first_seen, at("2026-11-22T10:00:00Z"));
        assert_eq!(item.last_seen, at("2026-11-22T10:05:00Z"));
    }

    #[test]
    fn a_session_missing_from_a_complete_listing_ends_once_and_comes_back_live() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVE")]);

        let out = list(&run("r2", "2026-11-22T10:05:00Z"), &table, &[]);
        assert_eq!(changes(&out), vec![("a".into(), Change::Ended, Some("ACTIVE".into()))]);
        let ended = out[0].write.clone().unwrap();
        assert_eq!(ended.gone_at, Some(at("2026-11-22T10:05:00Z")));
        assert_eq!(ended.expires_at, Some(1_900_000_000));
        assert_eq!(ended.record.status.as_deref(), Some("ACTIVE"), "the last known state is kept");
        apply(&mut table, &out);

        let again = list(&run("r3", "2026-11-22T10:10:00Z"), &table, &[]);
        assert!(again.is_empty(), "an ended session is not ended again: {again:?}");

        let back = list(&run("r4", "2026-11-22T10:15:00Z"), &table, &[session("a", "ACTIVE")]);
        assert_eq!(changes(&back), vec![("a".into(), Change::Opened, Some("ACTIVE".into()))]);
        let live = back[0].write.as_ref().unwrap();
        assert_eq!((live.gone_at.clone(), live.expires_at), (None, None));
        assert_eq!(live.first_seen, at("2026-11-22T10:00:00Z"));
    }

    #[test]
    fn a_listing_that_returned_every_live_session_reads_the_table_once() {
        // GIVEN a live session and one ended long ago
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVE"), session("b", "ACTIVE")]);
        step(&mut table, &run("r2", "2026-11-22T10:05:00Z"), &[session("a", "ACTIVE")]);
        // WHEN the next listing returns the live one
        let r3 = run("r3", "2026-11-22T10:10:00Z");
        let mut diff = remembering(&r3, &table, &[]);
        let seen = diff.observe(session("a", "ACTIVE"));
        // THEN it is decided without its stored item, and nothing ended needs a second read
        assert!(matches!(seen, Seen::Decided(Observation { change: None, write: None, .. })), "{seen:?}");
        assert!(!diff.has_ended());
    }

    #[test]
    fn a_changed_session_is_written_in_place_and_one_gone_since_opens_again() {
        // GIVEN a session the table holds live
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVATING")]);
        let r2 = run("r2", "2026-11-22T10:05:00Z");
        let mut diff = remembering(&r2, &table, &[]);
        // WHEN it is listed changed
        let Seen::Update(update) = diff.observe(session("a", "ACTIVE")) else {
            panic!("a changed session is written in place")
        };
        // THEN its write expects a live item with another hash, not last written by this run
        assert_eq!(update.not_written_by, ["r2"]);
        assert!(matches!(update.write, UpdateWrite::Listed { change: Change::Changed, .. }));
        // AND an item removed before the write (the TTL of an ended session) is refused, and the
        // session is a new one, written whole
        let gone = diff.updated(update, Updated::Refused(None)).unwrap();
        assert_eq!(gone.change, Some((Change::Opened, None)));
        assert_eq!(gone.write.unwrap().first_seen, at("2026-11-22T10:05:00Z"));
    }

    #[test]
    fn a_write_in_place_refused_is_decided_from_the_item_returned() {
        // GIVEN a session the diff knows live, whose item something else ended since
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVATING")]);
        let r2 = run("r2", "2026-11-22T10:05:00Z");
        let mut diff = remembering(&r2, &table, &[]);
        let item = table.get_mut("a").unwrap();
        item.gone_at = Some(at("2026-11-22T10:02:00Z"));
        item.change = Change::Ended;
        // WHEN it is listed changed, and its write in place is refused with that item
        let Seen::Update(update) = diff.observe(session("a", "ACTIVE")) else { panic!("written in place") };
        assert!(!update.holds_for(table.get("a")));
        let back = diff.updated(update, Updated::Refused(table.get("a").cloned())).unwrap();
        // THEN it is decided as from a read: opened again, written whole, first seen kept
        assert_eq!(back.change, Some((Change::Opened, Some("ACTIVATING".into()))));
        assert_eq!(back.write.unwrap().first_seen, at("2026-11-22T10:00:00Z"));
    }

    #[test]
    fn with_more_unfinished_runs_than_a_condition_names_sessions_are_read_before_they_are_written() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVATING"), session("b", "ACTIVE")]);
        let mut r2 = run("r2", "2026-11-22T10:05:00Z");
        r2.unfinished_runs = (0..update::MAX_CONDITION_RUNS).map(|n| format!("failed-{n}")).collect();
        let mut diff = remembering(&r2, &table, &[]);
        assert!(matches!(diff.observe(session("a", "ACTIVE")), Seen::NeedsPrevious { .. }));
        assert!(diff.end_update(None, "b").is_none());
    }

    #[test]
    fn the_previous_state_costs_at_most_eighteen_bytes_a_session() {
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let table: HashMap<String, StoredSession> = (0..1000)
            .filter_map(|i| list(&r1, &HashMap::new(), &[session(&format!("s{i}"), "ACTIVE")]).remove(0).write)
            .map(|w| (w.record.session_id.clone(), w))
            .collect();
        let mut diff = remembering(&r1, &table, &[]);
        diff.ready();
        assert_eq!(diff.previous.len(), 1000);
        assert!(diff.previous.bytes() <= 18 * 1000, "{} bytes", diff.previous.bytes());
    }

    #[test]
    fn new_sessions_cost_under_sixteen_bytes_each_and_are_each_held_once() {
        // GIVEN a first run's listing of 100,000 sessions the table does not know
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let mut diff = ListingDiff::new(&r1);
        for i in 0..100_000 {
            assert!(matches!(diff.observe(session(&format!("s{i}"), "ACTIVE")), Seen::Decided(_)));
        }
        // WHEN some of them come again, before and after their merge
        // THEN each is a repeat, and the state holds each once, packed as a sealed state (15
        // bytes a session at 100,000, 12.4 at a million; a hash map of ids and words would hold
        // 24–48)
        for again in ["s77", "s99999"] {
            assert_eq!(diff.observe(session(again, "ACTIVE")), Seen::Repeated);
        }
        assert_eq!(diff.seen().len(), 100_000);
        assert!(diff.previous.bytes() < 100_000 * 16, "{} bytes", diff.previous.bytes());
    }

    /// The diff as a run drives it from the state the run before it left (instead of the table).
    fn list_from_state(
        run: &RunMark,
        state: &[(u64, u64)],
        table: &HashMap<String, StoredSession>,
        sessions: &[SessionRecord],
    ) -> (Vec<Observation>, Vec<(u64, u64)>) {
        let mut previous = PreviousState::sealed_with_capacity(state.len());
        state.iter().for_each(|&(id, word)| assert!(previous.push_sorted(id, word)));
        let mut diff = ListingDiff::from_state(run, previous);
        let mut out = Vec::new();
        for session in sessions {
            let seen = diff.observe(session.clone());
            out.extend(resolve(&mut diff, table, seen));
        }
        out.extend(end_all(&mut diff, table));
        let next = diff.next_state().collect();
        (out, next)
    }

    #[test]
    fn a_listing_diffed_from_the_state_it_left_decides_as_one_diffed_from_the_table() {
        // GIVEN three runs over a table: opened, then one changed, one ended, one new; then the
        // ended one back
        let runs = [
            (
                run("r1", "2026-11-22T10:00:00Z"),
                vec![session("a", "ACTIVE"), session("b", "ACTIVE"), session("c", "ACTIVE")],
            ),
            (
                run("r2", "2026-11-22T10:05:00Z"),
                vec![session("a", "IDLE"), session("b", "ACTIVE"), session("d", "ACTIVE")],
            ),
            (
                run("r3", "2026-11-22T10:10:00Z"),
                vec![session("a", "IDLE"), session("c", "ACTIVE"), session("d", "ACTIVE")],
            ),
        ];
        let (mut from_table, mut from_state) = (HashMap::new(), HashMap::new());
        let mut state: Vec<(u64, u64)> = Vec::new();
        for (run, sessions) in &runs {
            // WHEN each run is diffed once from the table and once from the state the run before left
            let by_table = step(&mut from_table, run, sessions);
            let (by_state, next) = list_from_state(run, &state, &from_state, sessions);
            apply(&mut from_state, &by_state);
            state = next;
            // THEN both record the same changes and write the same items
            assert_eq!(changes(&by_state), changes(&by_table), "{}", run.run_id);
            assert_eq!(writes(&by_state), writes(&by_table), "{}", run.run_id);
        }
        assert_eq!(from_state, from_table);
        // AND the state left holds every session once, in id order: the ended one until it expires
        let ids: Vec<u64> = state.iter().map(|&(id, _)| id).collect();
        let mut expected: Vec<u64> = ["a", "b", "c", "d"].iter().map(|id| id_fingerprint(id)).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let b = state.iter().find(|&&(id, _)| id == id_fingerprint("b")).unwrap().1;
        assert_eq!((b & (LIVE | ENDED), b >> FLAG_BITS), (ENDED, runs[2].0.ended_expires_at as u64));
    }

    #[test]
    fn the_state_left_drops_an_ended_session_once_its_item_has_expired() {
        // GIVEN a session that ended in r2, with its item's TTL before r3's time
        let mut r2 = run("r2", "2026-11-22T10:05:00Z");
        r2.ended_expires_at = at("2026-11-22T11:00:00Z").epoch_seconds();
        let (_, state) =
            list_from_state(&run("r1", "2026-11-22T10:00:00Z"), &[], &HashMap::new(), &[session("a", "ACTIVE")]);
        let (_, state) = list_from_state(&r2, &state, &HashMap::new(), &[]);
        assert_eq!(state.len(), 1, "kept while its item is there");
        // WHEN a run after the expiry leaves its state
        let (_, state) = list_from_state(&run("r3", "2026-11-22T12:00:00Z"), &state, &HashMap::new(), &[]);
        // THEN the session is gone from it
        assert!(state.is_empty(), "{state:?}");
    }

    #[test]
    fn a_redelivered_event_records_the_same_changes_without_writing_again() {
        let mut table = HashMap::new();
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        step(&mut table, &r1, &[session("a", "ACTIVATING"), session("b", "ACTIVE")]);
        let r2 = run("r2", "2026-11-22T10:05:00Z");
        let first = list(&r2, &table, &[session("a", "ACTIVE"), session("c", "ACTIVE")]);
        apply(&mut table, &first);

        let redelivered = list(&r2, &table, &[session("a", "ACTIVE"), session("c", "ACTIVE")]);
        assert_eq!(changes(&first).len(), 3, "a changed, c opened, b ended: {first:?}");
        assert_eq!(changes(&redelivered), changes(&first));
        assert_eq!(writes(&redelivered), 0);
    }

    #[test]
    fn changes_of_an_unfinished_run_are_recorded_again_by_the_next_run() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVATING")]);
        // r2 wrote its items, then failed before its history objects were written.
        step(&mut table, &run("r2", "2026-11-22T10:05:00Z"), &[session("a", "ACTIVE")]);

        let mut r3 = run("r3", "2026-11-22T10:10:00Z");
        r3.unfinished_runs.insert("r2".into());
        let out = list(&r3, &table, &[session("a", "ACTIVE")]);
        assert_eq!(changes(&out), vec![("a".into(), Change::Changed, Some("ACTIVATING".into()))]);
        assert_eq!(out[0].write.as_ref().unwrap().last_run, "r3", "handed over so it is recorded once");
        apply(&mut table, &out);

        let r4 = run("r4", "2026-11-22T10:15:00Z");
        assert!(changes(&list(&r4, &table, &[session("a", "ACTIVE")])).is_empty());
    }

    #[test]
    fn an_end_recorded_by_an_unfinished_run_is_recorded_again() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVE")]);
        step(&mut table, &run("r2", "2026-11-22T10:05:00Z"), &[]);
        let mut r3 = run("r3", "2026-11-22T10:10:00Z");
        r3.unfinished_runs.insert("r2".into());
        let out = list(&r3, &table, &[]);
        assert_eq!(changes(&out), vec![("a".into(), Change::Ended, Some("ACTIVE".into()))]);
        assert_eq!(out[0].write.as_ref().unwrap().gone_at, Some(at("2026-11-22T10:05:00Z")), "first gone time kept");
    }

    #[test]
    fn a_session_repeated_within_a_listing_is_kept_once() {
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let mut table = HashMap::new();
        step(&mut table, &r1, &[session("known", "ACTIVE")]);
        let r2 = run("r2", "2026-11-22T10:05:00Z");
        let mut diff = remembering(&r2, &table, &[]);
        for id in ["new", "known"] {
            assert_ne!(diff.observe(session(id, "ACTIVE")), Seen::Repeated, "{id}");
            assert_eq!(diff.observe(session(id, "ACTIVE")), Seen::Repeated, "{id}");
        }
    }

    #[test]
    fn a_resumed_listing_neither_repeats_nor_ends_what_it_had_seen() {
        // GIVEN a listing of three live sessions, the first part of a run saw s1 (unchanged)
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let mut table = HashMap::new();
        step(&mut table, &r1, &[session("s1", "ACTIVE"), session("s2", "ACTIVE"), session("s3", "ACTIVE")]);
        let r2 = run("r2", "2026-11-22T11:00:00Z");
        // WHEN the rest of the listing (s1 again, after a restart, and s2) is read by the next part
        let mut diff = remembering(&r2, &table, &["s1", "s-new"]);
        let again = diff.observe(session("s1", "ACTIVE"));
        let new_again = diff.observe(session("s-new", "ACTIVE"));
        let s2 = diff.observe(session("s2", "ACTIVE"));
        let s2 = resolve(&mut diff, &table, s2).unwrap();
        let ended = end_all(&mut diff, &table);
        // THEN s1 (and a session new in the first part) is not listed twice nor ended, s2 is
        // unchanged, only s3 ended, and the seen sessions carry over to a later part
        assert_eq!((again, new_again), (Seen::Repeated, Seen::Repeated));
        assert_eq!(s2.change, None);
        let mut expected: Vec<u64> = ["s1", "s-new", "s2"].iter().map(|id| id_fingerprint(id)).collect();
        expected.sort_unstable();
        assert_eq!(diff.seen(), expected);
        let ended: Vec<&str> = ended.iter().map(|o| o.record.session_id.as_str()).collect();
        assert_eq!(ended, ["s3"]);
    }
}

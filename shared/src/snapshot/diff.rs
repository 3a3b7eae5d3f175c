//! The decision, per session, of what to write and which change to record: pure, no I/O.
//!
//! A listing's previous state (every stored session of the parent) is diffed on `record_hash`
//! against what the listing returns: new and changed sessions are written, unchanged ones are not
//! (DynamoDB charges a write unit even for a failed conditional write, so the skip must come from
//! the read), and after a **complete** listing the live sessions it did not return are ended.
//!
//! Exactly-once history: an item carries the run that last wrote it (`last_run`) and the change
//! that run recorded. If that run is this very run (a redelivered event) or a run whose manifest
//! never said complete (its history objects may be missing), the change is recorded again by
//! this run, so no change line is lost and a redelivered event writes the same lines again.

use std::collections::{HashMap, HashSet};

use super::StoredSession;
use crate::history::Change;
use crate::model::{SessionRecord, Timestamp};

/// What the diff needs to know of the run.
#[derive(Clone, Debug)]
pub struct RunMark {
    pub run_id: String,
    pub snapshot_at: Timestamp,
    /// TTL of a session ended by this run (epoch seconds).
    pub ended_expires_at: i64,
    /// Runs whose recorded changes this run records again: itself and the unfinished runs.
    pub carried_runs: HashSet<String>,
}

impl RunMark {
    fn carries(&self, stored: &StoredSession) -> bool {
        self.carried_runs.contains(&stored.last_run) || stored.last_run == self.run_id
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

/// The diff of one listing: built from the listing's previous state, fed the sessions as pages
/// arrive, finished when the listing ends.
#[derive(Debug)]
pub struct ListingDiff<'a> {
    run: &'a RunMark,
    previous: HashMap<String, StoredSession>,
    seen: HashSet<String>,
}

impl<'a> ListingDiff<'a> {
    pub fn new(run: &'a RunMark, previous: HashMap<String, StoredSession>) -> Self {
        ListingDiff { run, previous, seen: HashSet::new() }
    }

    /// The diff of a listing an earlier part of the run stopped in: the sessions it had seen are
    /// neither listed again nor taken for ended.
    pub fn resume(run: &'a RunMark, mut previous: HashMap<String, StoredSession>, seen: HashSet<String>) -> Self {
        previous.retain(|id, _| !seen.contains(id));
        ListingDiff { run, previous, seen }
    }

    /// The sessions the listing has returned so far, for a run that stops before it ends.
    pub fn seen(&self) -> impl Iterator<Item = &String> {
        self.seen.iter()
    }

    /// The outcome for one listed session; `None` if this listing already returned it (a page
    /// repeating a session keeps the first).
    pub fn observe(&mut self, record: SessionRecord) -> Option<Observation> {
        if !self.seen.insert(record.session_id.clone()) {
            return None;
        }
        let hash = record.record_hash();
        let run = self.run;
        let Some(before) = self.previous.remove(&record.session_id) else {
            return Some(written(run, record, hash, None, Change::Opened, None));
        };
        let previous_status = before.record.status.clone();
        if run.carries(&before) {
            // The change that run recorded, relative to the state before it.
            let (change, previous) = if before.is_live() {
                (before.change, before.previous_status.clone())
            } else {
                (Change::Opened, previous_status)
            };
            if before.is_live() && before.record_hash == hash && before.last_run == run.run_id {
                return Some(Observation { record, record_hash: hash, change: Some((change, previous)), write: None });
            }
            return Some(written(run, record, hash, Some(&before), change, previous));
        }
        if !before.is_live() {
            return Some(written(run, record, hash, Some(&before), Change::Opened, previous_status));
        }
        if before.record_hash == hash {
            return Some(Observation { record, record_hash: hash, change: None, write: None });
        }
        Some(written(run, record, hash, Some(&before), Change::Changed, previous_status))
    }

    /// The sessions the listing did not return. After a complete listing, live ones are ended;
    /// after an incomplete (filtered) one nothing can be concluded and nothing is returned.
    pub fn finish(self, complete: bool) -> Vec<Observation> {
        if !complete {
            return Vec::new();
        }
        let run = self.run;
        let mut ended: Vec<Observation> = self
            .previous
            .into_values()
            .filter_map(|before| {
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
                } else if run.carries(&before) && before.change == Change::Ended {
                    let change = Some((Change::Ended, before.previous_status.clone()));
                    let write = (before.last_run != run.run_id)
                        .then(|| StoredSession { last_run: run.run_id.clone(), ..before.clone() });
                    let record_hash = before.record.record_hash();
                    Some(Observation { record: before.record, record_hash, change, write })
                } else {
                    None
                }
            })
            .collect();
        ended.sort_by(|a, b| a.record.session_id.cmp(&b.record.session_id));
        ended
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
            carried_runs: HashSet::new(),
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

    fn list(run: &RunMark, table: &HashMap<String, StoredSession>, sessions: &[SessionRecord]) -> Vec<Observation> {
        let mut diff = ListingDiff::new(run, table.clone());
        let mut out: Vec<Observation> = sessions.iter().filter_map(|s| diff.observe(s.clone())).collect();
        out.extend(diff.finish(true));
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
    fn an_incomplete_listing_ends_nothing() {
        let mut table = HashMap::new();
        step(&mut table, &run("r1", "2026-11-22T10:00:00Z"), &[session("a", "ACTIVE")]);
        let r2 = run("r2", "2026-11-22T10:05:00Z");
        let diff = ListingDiff::new(&r2, table.clone());
        assert!(diff.finish(false).is_empty());
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
        r3.carried_runs.insert("r2".into());
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
        r3.carried_runs.insert("r2".into());
        let out = list(&r3, &table, &[]);
        assert_eq!(changes(&out), vec![("a".into(), Change::Ended, Some("ACTIVE".into()))]);
        assert_eq!(out[0].write.as_ref().unwrap().gone_at, Some(at("2026-11-22T10:05:00Z")), "first gone time kept");
    }

    #[test]
    fn a_session_repeated_within_a_listing_is_kept_once() {
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let mut diff = ListingDiff::new(&r1, HashMap::new());
        assert!(diff.observe(session("a", "ACTIVE")).is_some());
        assert!(diff.observe(session("a", "ACTIVE")).is_none());
    }

    #[test]
    fn a_resumed_listing_neither_repeats_nor_ends_what_it_had_seen() {
        // GIVEN a listing of three live sessions, the first part of a run saw s1 (unchanged)
        let r1 = run("r1", "2026-11-22T10:00:00Z");
        let mut table = HashMap::new();
        step(&mut table, &r1, &[session("s1", "ACTIVE"), session("s2", "ACTIVE"), session("s3", "ACTIVE")]);
        let r2 = run("r2", "2026-11-22T11:00:00Z");
        // WHEN the rest of the listing (s1 again, after a restart, and s2) is read by the next part
        let mut diff = ListingDiff::resume(&r2, table.clone(), HashSet::from(["s1".to_owned()]));
        let again = diff.observe(session("s1", "ACTIVE"));
        let s2 = diff.observe(session("s2", "ACTIVE")).unwrap();
        let ended = diff.finish(true);
        // THEN s1 is not listed twice nor ended, s2 is unchanged, and only s3 ended
        assert!(again.is_none());
        assert_eq!(s2.change, None);
        let ended: Vec<&str> = ended.iter().map(|o| o.record.session_id.as_str()).collect();
        assert_eq!(ended, ["s3"]);
    }
}

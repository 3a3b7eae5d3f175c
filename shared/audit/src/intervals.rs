//! Connected intervals: when a session's user was connected, from when to when, and how sure the
//! history is of each edge. Pure, no I/O.
//!
//! A session is known only at its scope's runs ([`Probes`]): at each run that listed the scope,
//! it was connected (listed in a connected status), or it was not (listed otherwise, or not
//! listed: a complete listing names every session there is). An edge lies between two runs: a
//! connection starts after the last run that saw it not connected and by the first that saw it
//! connected, and ends after the last run that saw it connected and before the next. Where the
//! API gives the time itself, inside that window (a pool session's start, a stream's end, a
//! WorkSpace's last known user connection), it is the edge, exactly. A run that failed, or one
//! missing from the schedule (two runs more than one and a half times the usual spacing apart), is a gap: a
//! session connected next to one has an *unknown* row for it, never counted connected nor
//! disconnected.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::day_of;

/// One run of a scope, as the intervals see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub at: i64,
    pub run_id: String,
    /// The run listed the scope (complete or partial); `false`: it failed.
    pub listed: bool,
}

/// A scope's runs in time order, and the spacing past which two listings have a run missing
/// between them.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    runs: Vec<Probe>,
    max_spacing: i64,
}

impl Probes {
    pub fn new(mut runs: Vec<Probe>) -> Self {
        runs.sort_by(|a, b| (a.at, &a.run_id).cmp(&(b.at, &b.run_id)));
        runs.dedup_by(|a, b| a.run_id == b.run_id);
        let listed: Vec<i64> = runs.iter().filter(|r| r.listed).map(|r| r.at).collect();
        let mut spacings: Vec<i64> = listed.windows(2).map(|w| w[1] - w[0]).filter(|s| *s > 0).collect();
        spacings.sort_unstable();
        // One and a half times the usual spacing: a schedule's jitter stays under it, a missed
        // run (twice the spacing) does not.
        let max_spacing = spacings.get(spacings.len() / 2).map_or(i64::MAX, |median| median.saturating_mul(3) / 2);
        Probes { runs, max_spacing }
    }

    pub fn runs(&self) -> &[Probe] {
        &self.runs
    }
}

/// One observation of a session: a run saw it, in a status, with the API's own times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub run_id: String,
    pub at: i64,
    pub connected: bool,
    /// When the API says the connection started (or the user last connected), if it says.
    pub api_start: Option<i64>,
    /// When the API says it ended (or the user was last connected), if it says.
    pub api_end: Option<i64>,
}

/// Connected, or not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Connected,
    /// A gap in the runs (one failed, or missing) next to a connected observation: the user may
    /// or may not have been connected then.
    Unknown,
}

/// One interval of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub state: State,
    /// The best start: the API's own, else the first run that saw it.
    pub start: i64,
    /// The earliest it can have started: the run before (`None`: nothing known before).
    pub start_earliest: Option<i64>,
    /// The best end: the API's own, else the last run that saw it connected (for an unknown row,
    /// the next run that listed the scope, or the last that failed).
    pub end: i64,
    /// The latest it can have ended: the next run (`None`: none came in the range).
    pub end_latest: Option<i64>,
    /// Whether the start and the end are the API's own times.
    pub start_exact: bool,
    pub end_exact: bool,
    /// Still connected at the last run in the range.
    pub open: bool,
}

impl Interval {
    /// Seconds from the start to the end: what the history saw (at least).
    pub fn duration(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    /// The most it can have lasted: from the earliest start to the latest end; `None` where a
    /// side is not bounded.
    pub fn longest(&self) -> Option<i64> {
        Some(self.end_latest? - self.start_earliest?)
    }
}

/// What the session was at one run: its state there, its observation if any.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At<'a> {
    Connected(&'a Seen),
    Not(Option<&'a Seen>),
    /// A failed run, or a missing one (the spacing before this run was too long).
    Gap,
}

/// The session's intervals, from its observations (each by a run of `probes`) and its scope's runs;
/// `since`: when the question starts (an API time before it, with no run before to bound it, is
/// not taken: the history does not say the connection lasted from then).
pub fn intervals(probes: &Probes, seen: &[Seen], since: i64) -> Vec<Interval> {
    let Some(first) = seen.iter().map(|s| s.at).min() else { return Vec::new() };
    let last = seen.iter().map(|s| s.at).max().unwrap_or(first);
    let runs = probes.runs();
    // From the run before the first observation to the run after the last one.
    let from = runs.partition_point(|r| r.at < first).saturating_sub(1);
    let to = (runs.partition_point(|r| r.at <= last) + 1).min(runs.len());
    let by_run: BTreeMap<&str, &Seen> = seen.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let mut walk = Walk { since, ..Walk::default() };
    let mut previous_listed: Option<i64> = None;
    for run in &runs[from..to] {
        let gap_before = previous_listed.is_some_and(|p| run.at - p > probes.max_spacing);
        if gap_before && run.listed {
            walk.step(previous_listed, At::Gap);
        }
        let at = match (run.listed, by_run.get(run.run_id.as_str())) {
            (false, _) => At::Gap,
            (true, Some(seen)) if seen.connected => At::Connected(seen),
            (true, seen) => At::Not(seen.copied()),
        };
        walk.step(Some(run.at), at);
        if run.listed {
            previous_listed = Some(run.at);
        }
    }
    walk.finish()
}

/// The scan over a session's runs: the interval open, the last run known, the rows made.
#[derive(Default)]
struct Walk {
    open: Option<Interval>,
    /// The last run that listed the scope (`None` before the first).
    last_known: Option<i64>,
    /// The start of a gap the session may have been connected in, waiting for its end.
    gap_from: Option<Option<i64>>,
    /// Whether the session was connected at the run before the gap.
    gap_after_connected: bool,
    /// The time of the gap's last failed run (or of the run after a missing one).
    gap_last: i64,
    /// When the question starts.
    since: i64,
    rows: Vec<Interval>,
}

impl Walk {
    /// The session at one run (`at`: its time; for a gap, the last known run's).
    fn step(&mut self, time: Option<i64>, at: At<'_>) {
        match at {
            At::Gap => {
                if self.gap_from.is_none() {
                    self.gap_after_connected = self.open.is_some();
                    self.gap_from = Some(self.last_known);
                }
                self.gap_last = time.or(self.last_known).unwrap_or(self.gap_last);
                if let Some(open) = self.open.take() {
                    // Ends at its last observation; the gap's row says the rest.
                    self.rows.push(Interval { end_latest: Some(open.end), ..open });
                }
            }
            At::Connected(seen) => {
                let gap = self.close_gap(seen.at, true);
                match &mut self.open {
                    Some(open) => open.end = seen.at,
                    None => {
                        let after = if gap { Some(seen.at) } else { self.last_known };
                        self.open = Some(opened(seen, after.unwrap_or(self.since - 1), after.is_some()))
                    }
                }
                self.last_known = Some(seen.at);
            }
            At::Not(seen) => {
                let now = time.expect("a listed run has its time");
                self.close_gap(now, false);
                if let Some(open) = self.open.take() {
                    self.rows.push(closed(open, now, seen));
                }
                self.last_known = Some(now);
            }
        }
    }

    /// Ends a gap at the run at `now`; an unknown row when the session was connected on either
    /// side. Whether there was a gap.
    fn close_gap(&mut self, now: i64, connected_after: bool) -> bool {
        let Some(from) = self.gap_from.take() else { return false };
        if self.gap_after_connected || connected_after {
            let start = from.unwrap_or(now);
            self.rows.push(unknown(start, now, Some(now)));
        }
        true
    }

    fn finish(mut self) -> Vec<Interval> {
        // A gap at the end, after a connection: unknown to its last failed run, and after.
        if let Some(from) = self.gap_from.take().filter(|_| self.gap_after_connected) {
            let start = from.unwrap_or(self.gap_last);
            self.rows.push(Interval { open: true, ..unknown(start, self.gap_last.max(start), None) });
        }
        // Still connected at its last run: open.
        if let Some(open) = self.open.take() {
            self.rows.push(Interval { open: true, end_latest: None, ..open });
        }
        self.rows.sort_by_key(|row| row.start);
        self.rows
    }
}

/// A gap in the runs from `start` to `end`.
fn unknown(start: i64, end: i64, end_latest: Option<i64>) -> Interval {
    Interval {
        state: State::Unknown,
        start,
        start_earliest: Some(start),
        end,
        end_latest,
        start_exact: false,
        end_exact: false,
        open: false,
    }
}

/// A connection first seen at `seen`, after `after` (the run before, when `bounded`, else just
/// before the question's start): its API start when it lies between the two.
fn opened(seen: &Seen, after: i64, bounded: bool) -> Interval {
    let exact = seen.api_start.filter(|s| *s <= seen.at && *s > after);
    Interval {
        state: State::Connected,
        start: exact.unwrap_or(seen.at),
        start_earliest: exact.or(bounded.then_some(after)),
        end: seen.at,
        end_latest: None,
        start_exact: exact.is_some(),
        end_exact: false,
        open: false,
    }
}

/// A connection last seen connected at `open.end`, not connected at the run at `now` (`seen`:
/// its observation there, if listed): its API end when it lies between the two.
fn closed(open: Interval, now: i64, seen: Option<&Seen>) -> Interval {
    let exact = seen.and_then(|s| s.api_end).filter(|e| *e >= open.end && *e < now);
    Interval {
        end: exact.unwrap_or(open.end),
        end_latest: Some(exact.unwrap_or(now)),
        end_exact: exact.is_some(),
        ..open
    }
}

/// A user's time on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DayTotal {
    pub connected_seconds: i64,
    /// In gaps next to a connection: neither connected nor not.
    pub unknown_seconds: i64,
    /// Intervals that touch the day.
    pub intervals: u64,
}

/// The seconds of `intervals` on each UTC day.
pub fn per_day(intervals: &[Interval]) -> BTreeMap<String, DayTotal> {
    let mut days: BTreeMap<String, DayTotal> = BTreeMap::new();
    for interval in intervals {
        let (mut at, end) = (interval.start, interval.end.max(interval.start));
        loop {
            let day_end = (at.div_euclid(86_400) + 1) * 86_400;
            let slice = end.min(day_end) - at;
            let total = days.entry(day_of(at)).or_default();
            match interval.state {
                State::Connected => total.connected_seconds += slice,
                State::Unknown => total.unknown_seconds += slice,
            }
            total.intervals += 1;
            if end <= day_end {
                break;
            }
            at = day_end;
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: i64 = 300;
    /// 2026-11-22T10:00:00Z.
    const T0: i64 = 1_795_341_600;

    /// Runs every five minutes from T0, `n` of them, `failed` among them by index.
    fn probes(n: i64, failed: &[i64], missing: &[i64]) -> Probes {
        Probes::new(
            (0..n)
                .filter(|i| !missing.contains(i))
                .map(|i| Probe { at: T0 + i * FIVE_MINUTES, run_id: format!("r{i}"), listed: !failed.contains(&i) })
                .collect(),
        )
    }

    fn seen(i: i64, connected: bool) -> Seen {
        Seen { run_id: format!("r{i}"), at: T0 + i * FIVE_MINUTES, connected, api_start: None, api_end: None }
    }

    fn at(i: i64) -> i64 {
        T0 + i * FIVE_MINUTES
    }

    #[test]
    fn a_connection_between_two_runs_starts_after_the_one_and_by_the_other() {
        // GIVEN a session listed not connected at runs 0-1, connected at 2-4, not connected at 5
        let sessions: Vec<Seen> = (0..6).map(|i| seen(i, (2..=4).contains(&i))).collect();
        // WHEN its intervals are made
        let rows = intervals(&probes(8, &[], &[]), &sessions, 0);
        // THEN one connection, first seen at run 2 (started after run 1), last seen at run 4
        // (ended before run 5): 10 minutes observed, 20 at most
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!((row.state, row.start, row.start_earliest), (State::Connected, at(2), Some(at(1))));
        assert_eq!((row.end, row.end_latest), (at(4), Some(at(5))));
        assert_eq!((row.duration(), row.longest()), (600, Some(1200)));
        assert!(!row.start_exact && !row.end_exact);
    }

    #[test]
    fn the_api_s_own_times_inside_the_window_make_the_edges_exact() {
        let mut sessions: Vec<Seen> = (0..6).map(|i| seen(i, (2..=4).contains(&i))).collect();
        sessions[2].api_start = Some(at(1) + 100);
        sessions[5].api_end = Some(at(4) + 30);
        // An API time outside the window (a session that started long before) is not taken.
        sessions[3].api_start = Some(at(0));
        let row = &intervals(&probes(8, &[], &[]), &sessions, 0)[0];
        assert_eq!((row.start, row.start_exact, row.end, row.end_exact), (at(1) + 100, true, at(4) + 30, true));
        assert_eq!(row.duration(), 3 * FIVE_MINUTES - 70);
    }

    #[test]
    fn an_api_start_before_the_question_with_no_run_before_is_not_taken() {
        // GIVEN a session connected at the first run of the range, the API saying since yesterday
        let mut first = seen(0, true);
        first.api_start = Some(T0 - 86_400);
        let rows = intervals(&probes(3, &[], &[]), &[first.clone(), seen(1, false)], T0);
        // THEN it is connected from the first run, nothing known before
        assert_eq!((rows[0].start, rows[0].start_earliest, rows[0].start_exact), (T0, None, false));
        // AND asked from yesterday, the API's start stands
        let rows = intervals(&probes(3, &[], &[]), &[first, seen(1, false)], T0 - 2 * 86_400);
        assert_eq!((rows[0].start, rows[0].start_exact), (T0 - 86_400, true));
    }

    #[test]
    fn a_connection_shorter_than_the_schedule_between_two_polls_is_not_seen() {
        // GIVEN a session that two runs saw not connected (it was connected only between them)
        let sessions = vec![seen(1, false), seen(2, false)];
        // THEN no interval is claimed: the history cannot tell it
        assert!(intervals(&probes(4, &[], &[]), &sessions, 0).is_empty());
    }

    #[test]
    fn a_session_open_across_midnight_counts_on_each_day() {
        // GIVEN runs every five minutes around midnight, a session connected from 23:50 to 00:10
        let midnight = 1_795_392_000; // 2026-11-23T00:00:00Z
        let runs: Vec<Probe> =
            (-4..4).map(|i| Probe { at: midnight + i * 300, run_id: format!("m{i}"), listed: true }).collect();
        let observed: Vec<Seen> = (-2..=2)
            .map(|i| Seen {
                run_id: format!("m{i}"),
                at: midnight + i * 300,
                connected: true,
                api_start: None,
                api_end: None,
            })
            .chain([Seen { run_id: "m3".into(), at: midnight + 900, connected: false, api_start: None, api_end: None }])
            .collect();
        let rows = intervals(&Probes::new(runs), &observed, 0);
        assert_eq!(rows.len(), 1);
        let days = per_day(&rows);
        assert_eq!(days["2026-11-22"].connected_seconds, 600);
        assert_eq!(days["2026-11-23"].connected_seconds, 600);
    }

    #[test]
    fn a_failed_run_in_the_middle_is_unknown_never_connected_nor_disconnected() {
        // GIVEN a session connected at runs 1-2 and 4-5, run 3 failed
        let sessions: Vec<Seen> = [1, 2, 4, 5].into_iter().map(|i| seen(i, true)).chain([seen(6, false)]).collect();
        let rows = intervals(&probes(8, &[3], &[]), &sessions, 0);
        // THEN connected to run 2, unknown from run 2 to run 4, connected from run 4
        let states: Vec<(State, i64, i64)> = rows.iter().map(|r| (r.state, r.start, r.end)).collect();
        assert_eq!(
            states,
            [(State::Connected, at(1), at(2)), (State::Unknown, at(2), at(4)), (State::Connected, at(4), at(5))]
        );
        let days = per_day(&rows);
        assert_eq!((days["2026-11-22"].connected_seconds, days["2026-11-22"].unknown_seconds), (600, 600));
    }

    #[test]
    fn a_run_missing_from_the_schedule_is_a_gap_too() {
        // GIVEN runs every five minutes but run 3, which never ran, and a session connected throughout
        let sessions: Vec<Seen> = [1, 2, 4, 5].into_iter().map(|i| seen(i, true)).collect();
        let rows = intervals(&probes(8, &[], &[3]), &sessions, 0);
        assert_eq!(
            rows.iter().map(|r| r.state).collect::<Vec<_>>(),
            [State::Connected, State::Unknown, State::Connected]
        );
        // AND with no gap, it is one connection, still open at its last run... then closed by run 6
        let whole: Vec<Seen> = (1..=5).map(|i| seen(i, true)).collect();
        let rows = intervals(&probes(8, &[], &[]), &whole, 0);
        assert_eq!((rows.len(), rows[0].end, rows[0].end_latest), (1, at(5), Some(at(6))));
    }

    #[test]
    fn a_session_that_reconnects_has_one_interval_per_connection_and_one_still_open() {
        let pattern = [false, true, true, false, true, true];
        let sessions: Vec<Seen> = pattern.iter().enumerate().map(|(i, c)| seen(i as i64, *c)).collect();
        let rows = intervals(&probes(6, &[], &[]), &sessions, 0);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].start, rows[0].end, rows[0].open), (at(1), at(2), false));
        assert_eq!((rows[1].start, rows[1].end, rows[1].end_latest, rows[1].open), (at(4), at(5), None, true));
        assert_eq!(rows[1].duration(), 300);
    }

    #[test]
    fn a_session_gone_from_a_complete_listing_is_not_connected_there() {
        // GIVEN a session seen connected at runs 1 and 2, and not listed at run 3
        let sessions = vec![seen(1, true), seen(2, true)];
        let row = &intervals(&probes(6, &[], &[]), &sessions, 0)[0];
        assert_eq!((row.end, row.end_latest), (at(2), Some(at(3))));
    }
}

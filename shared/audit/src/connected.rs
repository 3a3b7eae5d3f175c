//! "Who was connected when": the connected intervals of each user's sessions, and each user's
//! connected time per day, from the snapshots and the runs dataset. Pure, no I/O.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use session_archiver::ServiceId;

use crate::intervals::{intervals, per_day, Interval, Probe, Probes, Seen, State};
use crate::query::Filter;
use crate::record::{format_time, AuditLine, RunRecord, ScopeKey};
use crate::Fold;

/// One interval of one user's session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectedRow {
    pub user_id: Option<String>,
    pub service: String,
    pub account_id: String,
    pub region: String,
    pub session_id: String,
    /// `connected`, or `unknown` (a gap in the runs next to a connection).
    pub state: State,
    pub start: String,
    /// The earliest it can have started: the run before (empty: nothing known before).
    pub start_earliest: Option<String>,
    /// The end; for one still connected at the last run, that run (`open`).
    pub end: String,
    /// The latest it can have ended: the next run.
    pub end_latest: Option<String>,
    pub duration_seconds: i64,
    /// From the earliest start to the latest end, where both are known.
    pub longest_seconds: Option<i64>,
    /// Which edges are the API's own times (`start`, `end`, `start,end`), not the runs'.
    pub exact: String,
    pub open: bool,
}

/// One user's time on one day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserDayRow {
    pub user_id: Option<String>,
    pub day: String,
    pub connected_seconds: i64,
    /// `H:MM:SS` of the connected seconds.
    pub connected: String,
    pub unknown_seconds: i64,
    pub intervals: u64,
}

/// One interval of one user's session, as found.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInterval {
    pub user_id: Option<String>,
    pub scope: ScopeKey,
    pub session_id: String,
    pub interval: Interval,
}

/// The connected intervals of the sessions the filter keeps (by their user and parent, and any
/// status they were observed in), per user and session, in time order, of a question from `since`.
pub fn connected(lines: &[AuditLine], runs: &[RunRecord], filter: &Filter, since: i64) -> Vec<UserInterval> {
    let times = lines.iter().map(|l| l.seen_at).chain(runs.iter().map(|r| r.started_at));
    let mut fold = ConnectedFold::new(since, times.max().unwrap_or(since).max(since));
    runs.iter().for_each(|run| fold.add_run(run));
    fold.runs_read();
    lines.iter().for_each(|line| fold.add(line.clone()));
    fold.finish(filter)
}

/// A run's flags beside its number: it listed its scope; its time is its first line's there.
const LISTED: u32 = 1 << 31;
const DATED_BY_LINES: u32 = 1 << 30;
const RUN_NUMBER: u32 = DATED_BY_LINES - 1;

/// One run of a scope in 8 bytes: its time in seconds from the range's start, its number and flags.
#[derive(Clone, Copy, Debug)]
struct RunAt {
    at: u32,
    run: u32,
}

/// What a session was at one run, as its intervals need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunState {
    connected: bool,
    api_start: Option<i64>,
    api_end: Option<i64>,
}

/// Consecutive runs of its scope (`first..=last`) that saw a session in one state: a month of
/// observations of a session is a few dozen of these.
#[derive(Clone, Copy, Debug)]
struct Span {
    first: u32,
    last: u32,
    first_at: i64,
    last_at: i64,
    state: RunState,
}

/// One session as folded so far.
#[derive(Default)]
struct SessionSeen {
    /// Its user as last seen (a user is not known before a first lookup), and when.
    user: Option<(i64, String)>,
    /// Its parent at its last observation, and when.
    parent: Option<(i64, Option<String>)>,
    statuses: Vec<String>,
    spans: Vec<Span>,
    /// Observations by runs the runs dataset does not hold (history older than it).
    loose: Vec<(u32, i64, RunState)>,
}

/// [`connected`], folded: the runs dataset first ([`ConnectedFold::add_run`], then
/// [`ConnectedFold::runs_read`]), then the snapshots a line at a time in any order. It holds each
/// scope's runs (8 bytes each) and each session's spans, not its lines.
pub struct ConnectedFold {
    from: i64,
    to: i64,
    run_ids: Vec<String>,
    run_numbers: HashMap<String, u32>,
    scopes: Vec<(ScopeKey, Vec<RunAt>)>,
    scope_numbers: HashMap<ScopeKey, u32>,
    sessions: HashMap<(u32, String), SessionSeen>,
}

impl ConnectedFold {
    /// The intervals of `[from, to]` (a range of up to 136 years: times are kept as u32 seconds).
    pub fn new(from: i64, to: i64) -> Self {
        ConnectedFold {
            from,
            to,
            run_ids: Vec::new(),
            run_numbers: HashMap::new(),
            scopes: Vec::new(),
            scope_numbers: HashMap::new(),
            sessions: HashMap::new(),
        }
    }

    fn run_number(&mut self, run_id: &str) -> u32 {
        if let Some(number) = self.run_numbers.get(run_id) {
            return *number;
        }
        let number = self.run_ids.len() as u32;
        assert!(number < RUN_NUMBER, "more than 2^30 runs in one question");
        self.run_ids.push(run_id.to_owned());
        self.run_numbers.insert(run_id.to_owned(), number);
        number
    }

    fn scope_number(&mut self, scope: ScopeKey) -> u32 {
        if let Some(number) = self.scope_numbers.get(&scope) {
            return *number;
        }
        let number = self.scopes.len() as u32;
        self.scopes.push((scope.clone(), Vec::new()));
        self.scope_numbers.insert(scope, number);
        number
    }

    /// One line of the runs dataset (one started outside the range, or a dry run, counts for nothing).
    pub fn add_run(&mut self, run: &RunRecord) {
        if run.status == "dry_run" || !(self.from..=self.to).contains(&run.started_at) {
            return;
        }
        let number = self.run_number(&run.run_id) | if run.listed() { LISTED } else { 0 };
        let scope = self.scope_number(run.scope());
        let at = (run.started_at - self.from) as u32;
        self.scopes[scope as usize].1.push(RunAt { at, run: number });
    }

    /// The runs dataset is read: each scope's runs in time order, once each.
    pub fn runs_read(&mut self) {
        for (_, runs) in &mut self.scopes {
            runs.sort_by_key(|r| (r.at, r.run & RUN_NUMBER));
            runs.dedup_by_key(|r| r.run & RUN_NUMBER);
        }
    }

    /// The index of a run among its scope's, dating it by its first line there: looked for near
    /// the line's time (a run's lines come after its start, before the next run's), else among
    /// all (a run resumed by a later invocation).
    fn locate(runs: &mut [RunAt], run: u32, at: u32) -> Option<usize> {
        let near = runs.partition_point(|r| r.at <= at);
        let mut window = near.saturating_sub(4)..(near + 4).min(runs.len());
        let index = window
            .find(|&i| runs[i].run & RUN_NUMBER == run)
            .or_else(|| runs.iter().position(|r| r.run & RUN_NUMBER == run))?;
        let found = &mut runs[index];
        found.at = if found.run & DATED_BY_LINES == 0 { at } else { found.at.min(at) };
        found.run |= DATED_BY_LINES;
        Some(index)
    }

    /// The intervals of the sessions the filter keeps.
    pub fn finish(mut self, filter: &Filter) -> Vec<UserInterval> {
        let mut by_scope: BTreeMap<u32, Vec<(String, SessionSeen)>> = BTreeMap::new();
        for ((scope, session_id), seen) in std::mem::take(&mut self.sessions) {
            by_scope.entry(scope).or_default().push((session_id, seen));
        }
        let mut rows = Vec::new();
        for (scope, sessions) in by_scope {
            let (key, runs) = &self.scopes[scope as usize];
            let probes = self.probes(runs, &sessions);
            for (session_id, seen) in sessions {
                let user = seen.user.as_ref().map(|(_, user)| user.clone());
                let parent = seen.parent.as_ref().and_then(|(_, parent)| parent.as_ref());
                if !filter.keeps_session(user.as_ref(), parent, seen.statuses.iter().map(Some)) {
                    continue;
                }
                let observed = self.observations(runs, &seen);
                for interval in intervals(&probes, &observed, self.from) {
                    let user_id = user.clone();
                    rows.push(UserInterval { user_id, scope: key.clone(), session_id: session_id.clone(), interval });
                }
            }
        }
        rows.sort_by(|a, b| {
            (&a.user_id, a.interval.start, &a.scope, &a.session_id).cmp(&(
                &b.user_id,
                b.interval.start,
                &b.scope,
                &b.session_id,
            ))
        });
        rows
    }

    /// A scope's runs as the intervals take them: from the runs dataset, and the runs only its
    /// lines name, dated by their first line there.
    fn probes(&self, runs: &[RunAt], sessions: &[(String, SessionSeen)]) -> Probes {
        let mut probes: Vec<Probe> = runs
            .iter()
            .map(|r| Probe {
                at: self.from + i64::from(r.at),
                run_id: self.run_ids[(r.run & RUN_NUMBER) as usize].clone(),
                listed: r.run & LISTED != 0,
            })
            .collect();
        let mut lines_only: BTreeMap<u32, i64> = BTreeMap::new();
        for (_, seen) in sessions {
            for (run, at, _) in &seen.loose {
                let first = lines_only.entry(*run).or_insert(*at);
                *first = (*first).min(*at);
            }
        }
        probes.extend(lines_only.into_iter().map(|(run, at)| Probe {
            at,
            run_id: self.run_ids[run as usize].clone(),
            listed: true,
        }));
        Probes::new(probes)
    }

    /// A session's observations, its spans unfolded: inside a span, a run's observation is dated
    /// by the run's first line in the scope; its ends by their own lines.
    fn observations(&self, runs: &[RunAt], seen: &SessionSeen) -> Vec<Seen> {
        let mut observed = Vec::new();
        let one = |run: u32, at: i64, state: RunState| Seen {
            run_id: self.run_ids[(run & RUN_NUMBER) as usize].clone(),
            at,
            connected: state.connected,
            api_start: state.api_start,
            api_end: state.api_end,
        };
        for span in &seen.spans {
            for index in span.first..=span.last {
                let run = runs[index as usize];
                let at = match index {
                    i if i == span.first => span.first_at,
                    i if i == span.last => span.last_at,
                    _ => self.from + i64::from(run.at),
                };
                observed.push(one(run.run, at, span.state));
            }
        }
        observed.extend(seen.loose.iter().map(|(run, at, state)| one(*run, *at, *state)));
        observed
    }
}

impl Fold for ConnectedFold {
    fn add(&mut self, line: AuditLine) {
        if line.change.is_some() || !(self.from..=self.to).contains(&line.seen_at) {
            return;
        }
        let Ok(service) = line.service.parse::<ServiceId>() else { return };
        let state = observation(service, &line);
        let run = self.run_number(&line.run_id);
        let scope = self.scope_number(line.scope());
        let at = (line.seen_at - self.from) as u32;
        let index = Self::locate(&mut self.scopes[scope as usize].1, run, at);
        let seen = self.sessions.entry((scope, line.session_id)).or_default();
        if seen.user.as_ref().is_none_or(|(when, _)| line.seen_at >= *when) {
            if let Some(user) = line.user_id {
                seen.user = Some((line.seen_at, user));
            }
        }
        if seen.parent.as_ref().is_none_or(|(when, _)| line.seen_at >= *when) {
            seen.parent = Some((line.seen_at, line.parent_id));
        }
        if let Some(status) = line.status {
            if !seen.statuses.contains(&status) {
                seen.statuses.push(status);
            }
        }
        let Some(index) = index.map(|i| i as u32) else {
            seen.loose.push((run, line.seen_at, state));
            return;
        };
        match seen.spans.iter_mut().rev().find(|s| (s.first..=s.last + 1).contains(&index) || s.first == index + 1) {
            Some(span) if span.state == state && index == span.last + 1 => {
                (span.last, span.last_at) = (index, line.seen_at)
            }
            Some(span) if span.state == state && index + 1 == span.first => {
                (span.first, span.first_at) = (index, line.seen_at)
            }
            // The same run's line again.
            Some(span) if (span.first..=span.last).contains(&index) => {}
            _ => seen.spans.push(Span {
                first: index,
                last: index,
                first_at: line.seen_at,
                last_at: line.seen_at,
                state,
            }),
        }
    }
}

/// The intervals as the command prints them.
pub fn interval_rows(found: &[UserInterval]) -> Vec<ConnectedRow> {
    found.iter().map(|f| row(&f.scope, &f.session_id, f.user_id.clone(), &f.interval)).collect()
}

/// Each user's connected and unknown time per day.
pub fn per_user_day(found: &[UserInterval]) -> Vec<UserDayRow> {
    let mut by_user: BTreeMap<Option<String>, Vec<Interval>> = BTreeMap::new();
    for f in found {
        by_user.entry(f.user_id.clone()).or_default().push(f.interval.clone());
    }
    let mut out = Vec::new();
    for (user, intervals) in by_user {
        for (day, total) in per_day(&intervals) {
            out.push(UserDayRow {
                user_id: user.clone(),
                day,
                connected_seconds: total.connected_seconds,
                connected: clock(total.connected_seconds),
                unknown_seconds: total.unknown_seconds,
                intervals: total.intervals,
            });
        }
    }
    out
}

/// `H:MM:SS`.
fn clock(seconds: i64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// A snapshot line as the intervals see it: connected or not, and the API's own times where they
/// date the connection itself.
fn observation(service: ServiceId, line: &AuditLine) -> RunState {
    let (api_start, api_end) = match service {
        // A pool session is a connection; a stream session is the stream; a proxy session the session.
        ServiceId::WorkspacesPoolSessions | ServiceId::IvsStreamSessions | ServiceId::ChimeProxySessions => {
            (line.started_at, line.ended_at)
        }
        // The user's last connection: when it began, seen connected; when it was last up, seen after.
        ServiceId::WorkspacesConnectionStatus => (line.last_connected_at, line.last_connected_at),
        // A stream session is created before its client connects: its times do not date the connection.
        ServiceId::GameliftStreamSessions => (None, None),
    };
    RunState { connected: service.is_connected(line.status.as_deref()), api_start, api_end }
}

fn row(scope: &ScopeKey, session_id: &str, user_id: Option<String>, interval: &Interval) -> ConnectedRow {
    let exact: Vec<&str> = [("start", interval.start_exact), ("end", interval.end_exact)]
        .into_iter()
        .filter_map(|(edge, exact)| exact.then_some(edge))
        .collect();
    ConnectedRow {
        user_id,
        service: scope.0.clone(),
        account_id: scope.1.clone(),
        region: scope.2.clone(),
        session_id: session_id.to_owned(),
        state: interval.state,
        start: format_time(interval.start),
        start_earliest: interval.start_earliest.map(format_time),
        end: format_time(interval.end),
        end_latest: interval.end_latest.map(format_time),
        duration_seconds: interval.duration(),
        longest_seconds: interval.longest(),
        exact: exact.join(","),
        open: interval.open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T10:00:00Z.
    const T0: i64 = 1_795_341_600;

    fn line(service: &str, run: i64, session: &str, user: &str, status: &str) -> AuditLine {
        AuditLine {
            seen_at: T0 + run * 300,
            run_id: format!("{service}-r{run}"),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            service: service.into(),
            parent_id: None,
            session_id: session.into(),
            status: Some(status.into()),
            started_at: None,
            ended_at: None,
            user_id: Some(user.into()),
            change: None,
            previous_status: None,
            last_connected_at: None,
        }
    }

    fn runs(service: &str, n: i64, failed: &[i64]) -> Vec<RunRecord> {
        (0..n)
            .map(|i| RunRecord {
                service: service.into(),
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                run_id: format!("{service}-r{i}"),
                started_at: T0 + i * 300,
                finished_at: T0 + i * 300 + 2,
                status: if failed.contains(&i) { "failed" } else { "complete" }.into(),
                quiet: false,
                sessions: 1,
                error: None,
            })
            .collect()
    }

    #[test]
    fn a_user_s_personal_workspace_and_pool_session_are_both_their_connected_time() {
        // GIVEN alice's personal WorkSpace connected at runs 1-3 (the API saying she connected
        // 90 s after run 0), and her pool session connected at runs 2-5, bob's WorkSpace too
        let ws = "workspaces-connection-status";
        let pool = "workspaces-pool-sessions";
        let mut lines = Vec::new();
        for run in 0..6 {
            let status = if (1..=3).contains(&run) { "CONNECTED" } else { "DISCONNECTED" };
            let mut workspace = line(ws, run, "ws-alice0001", "alice", status);
            workspace.last_connected_at = (run >= 1).then_some(T0 + 90);
            lines.push(workspace);
            lines.push(line(ws, run, "ws-bob000001", "bob", "CONNECTED"));
        }
        for run in 2..=5 {
            lines.push(line(pool, run, "pool-session-1", "alice", "CONNECTED"));
        }
        let mut all_runs = runs(ws, 6, &[]);
        all_runs.extend(runs(pool, 7, &[]));
        // WHEN alice's connected intervals are asked for
        let filter = Filter { users: vec!["alice".into()], ..Filter::default() };
        let found = connected(&lines, &all_runs, &filter, T0);
        // THEN her WorkSpace from the API's 10:01:30 to run 3 (ended before run 4), and her pool
        // session from run 2 (after run 1) to run 5 (before run 6)
        let rows = interval_rows(&found);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!((rows[0].service.as_str(), rows[0].start.as_str()), (ws, "2026-11-22T10:01:30Z"));
        assert_eq!((rows[0].exact.as_str(), rows[0].end.as_str()), ("start", "2026-11-22T10:15:00Z"));
        assert_eq!(rows[0].end_latest.as_deref(), Some("2026-11-22T10:20:00Z"));
        assert_eq!((rows[1].service.as_str(), rows[1].duration_seconds, rows[1].open), (pool, 900, false));
        assert!(rows.iter().all(|r| r.user_id.as_deref() == Some("alice")));
        // AND her day: 13.5 minutes on the WorkSpace and 15 in the pool
        let days = per_user_day(&found);
        assert_eq!((days.len(), days[0].connected_seconds, days[0].connected.as_str()), (1, 1710, "0:28:30"));
    }

    #[test]
    fn a_month_of_observations_folds_into_spans_and_answers_the_same_in_any_order() {
        // GIVEN a WorkSpace seen at 2,000 runs, connected for 100 runs in every 400, a run failed
        // in the middle of one connection, and a pool session seen by runs the runs dataset lacks
        let ws = "workspaces-connection-status";
        let connected_at = |run: i64| run % 400 < 100;
        let lines: Vec<AuditLine> = (0..2000)
            .filter(|run| *run != 50)
            .map(|run| line(ws, run, "ws-alice0001", "alice", if connected_at(run) { "CONNECTED" } else { "STOPPED" }))
            .chain((0..3).map(|run| line("workspaces-pool-sessions", run, "pool-1", "alice", "CONNECTED")))
            .collect();
        let runs = runs(ws, 2000, &[50]);
        let filter = Filter::default();
        // WHEN they are folded in time order, and in reverse
        let mut fold = ConnectedFold::new(T0, T0 + 2000 * 300);
        runs.iter().for_each(|run| fold.add_run(run));
        fold.runs_read();
        lines.iter().for_each(|line| fold.add(line.clone()));
        // THEN the WorkSpace's 1,999 observations are held as one span per state change
        let spans: usize = fold.sessions.values().map(|s| s.spans.len()).sum();
        assert_eq!(spans, 10 + 1, "five connections, five times not, one split by the failed run");
        let in_order = fold.finish(&filter);
        let reversed: Vec<AuditLine> = lines.iter().rev().cloned().collect();
        assert_eq!(connected(&reversed, &runs, &filter, T0), in_order);
        // AND the answer: five connections (one cut by an unknown gap) and the pool session
        let rows = interval_rows(&in_order);
        let states: Vec<(&str, State)> = rows.iter().map(|r| (r.service.as_str(), r.state)).collect();
        assert_eq!(states.iter().filter(|(s, _)| *s == ws).count(), 5 + 1 + 1, "{rows:#?}");
        assert!(states.contains(&("workspaces-pool-sessions", State::Connected)));
        assert_eq!(states.iter().filter(|(_, state)| *state == State::Unknown).count(), 1);
    }

    #[test]
    fn a_run_whose_lines_come_long_after_its_start_is_still_the_runs_dataset_s_run() {
        // GIVEN run 3 of 20, resumed by a later invocation: its line seen at run 15's time
        let ws = "workspaces-connection-status";
        let mut late = line(ws, 3, "ws-alice0001", "alice", "CONNECTED");
        late.seen_at = T0 + 15 * 300 + 7;
        let mut fold = ConnectedFold::new(T0, T0 + 20 * 300);
        runs(ws, 20, &[]).iter().for_each(|run| fold.add_run(run));
        fold.runs_read();
        // WHEN it is folded
        fold.add(late);
        // THEN it is an observation by that run (a span), not one by a run only its lines name
        let seen = fold.sessions.values().next().unwrap();
        assert_eq!((seen.spans.len(), seen.loose.len()), (1, 0));
    }

    #[test]
    fn a_run_shared_by_an_organization_s_scopes_is_dated_in_each_by_its_own_lines() {
        // GIVEN one schedule's runs (one id each) listing two accounts, the second a minute later
        let ws = "workspaces-connection-status";
        let mut lines = Vec::new();
        for run in 0..4 {
            let status = if run == 1 || run == 2 { "CONNECTED" } else { "DISCONNECTED" };
            let mut first = line(ws, run, "ws-first", "dana", status);
            first.run_id = format!("plan-r{run}");
            let mut second = first.clone();
            (second.account_id, second.session_id, second.seen_at) =
                ("444455556666".into(), "ws-second".into(), first.seen_at + 60);
            lines.extend([first, second]);
        }
        // WHEN their intervals are found
        let rows = interval_rows(&connected(&lines, &[], &Filter::default(), T0));
        // THEN each account's connection starts and ends at its own runs' times
        let starts: Vec<(&str, &str)> = rows.iter().map(|r| (r.session_id.as_str(), r.start.as_str())).collect();
        assert_eq!(starts, [("ws-first", "2026-11-22T10:05:00Z"), ("ws-second", "2026-11-22T10:06:00Z")]);
        assert_eq!(rows[1].end_latest.as_deref(), Some("2026-11-22T10:16:00Z"));
    }

    #[test]
    fn status_matches_any_observation_and_a_failed_run_is_unknown() {
        // GIVEN a WorkSpace connected, then a failed run, then disconnected
        let ws = "workspaces-connection-status";
        let lines = vec![line(ws, 0, "ws-1", "carol", "CONNECTED"), line(ws, 2, "ws-1", "carol", "DISCONNECTED")];
        let filter = Filter { status: Some("CONNECTED".into()), ..Filter::default() };
        let rows = interval_rows(&connected(&lines, &runs(ws, 3, &[1]), &filter, T0));
        // THEN --status CONNECTED keeps it though its last status is DISCONNECTED, and the failed
        // run is a gap, not connected time
        let states: Vec<State> = rows.iter().map(|r| r.state).collect();
        assert_eq!(states, [State::Connected, State::Unknown]);
        assert_eq!(rows[1].end, "2026-11-22T10:10:00Z");
    }
}

//! "Who was connected when": the connected intervals of each user's sessions, and each user's
//! connected time per day, from the snapshots and the runs dataset. Pure, no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use session_archiver::ServiceId;

use crate::intervals::{intervals, per_day, Interval, Probe, Probes, Seen, State};
use crate::query::Filter;
use crate::record::{format_time, AuditLine, RunRecord, ScopeKey};

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
    let probes = scope_probes(lines, runs);
    let mut sessions: BTreeMap<(ScopeKey, String), Vec<&AuditLine>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.change.is_none()) {
        sessions.entry((line.scope(), line.session_id.clone())).or_default().push(line);
    }
    let mut rows = Vec::new();
    for ((scope, session_id), mut seen) in sessions {
        seen.sort_by_key(|l| l.seen_at);
        let last = seen.last().expect("a session has a line");
        // Its user and parent as last seen (a user is not known before a first lookup).
        let user = seen.iter().rev().find_map(|l| l.user_id.clone());
        if !filter.keeps_session(user.as_ref(), last.parent_id.as_ref(), seen.iter().map(|l| l.status.as_ref())) {
            continue;
        }
        let Ok(service) = scope.0.parse::<ServiceId>() else { continue };
        let observed: Vec<Seen> = seen.iter().map(|line| observation(service, line)).collect();
        for interval in intervals(&probes[&scope], &observed, since) {
            let user_id = user.clone();
            rows.push(UserInterval { user_id, scope: scope.clone(), session_id: session_id.clone(), interval });
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

/// Each scope's runs: from the runs dataset (a run's time is its lines' `snapshot_at`, else its
/// start), else, for history older than the runs dataset, the runs its lines name.
fn scope_probes(lines: &[AuditLine], runs: &[RunRecord]) -> BTreeMap<ScopeKey, Probes> {
    // A run of an organization's schedule shares its id across scopes: its time is each scope's own.
    let mut seen_at: BTreeMap<(ScopeKey, &str), i64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.change.is_none()) {
        let at = seen_at.entry((line.scope(), line.run_id.as_str())).or_insert(line.seen_at);
        *at = (*at).min(line.seen_at);
    }
    let mut by_scope: BTreeMap<ScopeKey, BTreeMap<String, Probe>> = BTreeMap::new();
    for ((scope, run_id), at) in &seen_at {
        let probe = Probe { at: *at, run_id: (*run_id).to_owned(), listed: true };
        by_scope.entry(scope.clone()).or_default().insert((*run_id).to_owned(), probe);
    }
    for run in runs.iter().filter(|r| r.status != "dry_run") {
        let scope = run.scope();
        let at = seen_at.get(&(scope.clone(), run.run_id.as_str())).copied().unwrap_or(run.started_at);
        let probe = Probe { at, run_id: run.run_id.clone(), listed: run.listed() };
        by_scope.entry(scope).or_default().insert(run.run_id.clone(), probe);
    }
    by_scope.into_iter().map(|(scope, runs)| (scope, Probes::new(runs.into_values().collect()))).collect()
}

/// A snapshot line as the intervals see it: connected or not, and the API's own times where they
/// date the connection itself.
fn observation(service: ServiceId, line: &AuditLine) -> Seen {
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
    Seen {
        run_id: line.run_id.clone(),
        at: line.seen_at,
        connected: service.is_connected(line.status.as_deref()),
        api_start,
        api_end,
    }
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

//! The audit's answers, computed from history lines: pure functions, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::folds::{active_then, ConcurrencyFold, ScopesFold, SummaryFold};
use crate::record::{AuditLine, RunRecord, ScopeKey};
use crate::Fold;

/// Whether a status is active: none of the registry's ended statuses (IVS `OFFLINE`, Chime
/// `Closed`, GameLift Streams `TERMINATING` / `TERMINATED` / `ERROR`, WorkSpaces `DISCONNECTED`).
pub use session_archiver::services::is_active_status;

/// Which sessions a question is about.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// User ids to match: the clear value, and its keyed hash when a key was given.
    pub users: Vec<String>,
    pub parent: Option<String>,
    pub status: Option<String>,
}

impl Filter {
    /// Whether a session in this state (user, parent, status) is one the question is about.
    fn keeps(&self, user_id: Option<&String>, parent_id: Option<&String>, status: Option<&String>) -> bool {
        self.keeps_session(user_id, parent_id, std::iter::once(status))
    }

    /// Whether a session of this user and parent, observed in these statuses, is one the question
    /// is about: `--status` matches any status it was observed in.
    pub fn keeps_session<'a>(
        &self,
        user_id: Option<&String>,
        parent_id: Option<&String>,
        mut statuses: impl Iterator<Item = Option<&'a String>>,
    ) -> bool {
        (self.users.is_empty() || user_id.is_some_and(|u| self.users.contains(u)))
            && self.parent.as_ref().is_none_or(|p| parent_id == Some(p))
            && self.status.as_ref().is_none_or(|wanted| statuses.any(|s| s == Some(wanted)))
    }

    /// The lines of the sessions the filter keeps (by the user and parent of any of their lines,
    /// and any status they were observed in): what a question about them reads.
    pub fn select(&self, lines: Vec<AuditLine>) -> Vec<AuditLine> {
        if self.is_everything() {
            return lines;
        }
        let mut matching = MatchFold::new(self);
        lines.iter().for_each(|line| matching.add(line.clone()));
        let kept = matching.finish();
        let mut selected = Vec::new();
        let mut keep = |line: AuditLine| selected.push(line);
        let mut only_kept = Selected { kept: &kept, fold: &mut keep };
        lines.into_iter().for_each(|line| only_kept.add(line));
        selected
    }

    /// Whether it keeps every session.
    pub fn is_everything(&self) -> bool {
        self.users.is_empty() && self.parent.is_none() && self.status.is_none()
    }

    fn keeps_line(&self, line: &AuditLine) -> bool {
        self.keeps(line.user_id.as_ref(), line.parent_id.as_ref(), line.status.as_ref())
    }
}

/// The sessions a filter keeps, found over a first reading of the range: a session is kept by
/// the user and parent of any of its lines and any status it was observed in, which its last
/// line may not show; the answer's fold then reads only their lines ([`Selected`]).
#[derive(Default)]
pub struct MatchFold {
    filter: Filter,
    sessions: HashMap<(String, String), (bool, bool, bool)>,
}

impl MatchFold {
    pub fn new(filter: &Filter) -> Self {
        MatchFold { filter: filter.clone(), sessions: HashMap::new() }
    }

    /// The sessions kept, by service and session id.
    pub fn finish(self) -> HashSet<(String, String)> {
        self.sessions.into_iter().filter(|(_, kept)| *kept == (true, true, true)).map(|(key, _)| key).collect()
    }
}

impl Fold for MatchFold {
    fn add(&mut self, line: AuditLine) {
        let filter = &self.filter;
        let key = (line.service, line.session_id);
        let (user, parent, status) = self.sessions.entry(key).or_default();
        *user |= filter.users.is_empty() || line.user_id.as_ref().is_some_and(|u| filter.users.contains(u));
        *parent |= filter.parent.as_ref().is_none_or(|p| line.parent_id.as_ref() == Some(p));
        *status |= filter.status.as_ref().is_none_or(|s| line.status.as_ref() == Some(s));
    }
}

/// A fold given only the lines of the sessions kept.
pub struct Selected<'a> {
    pub kept: &'a HashSet<(String, String)>,
    pub fold: &'a mut dyn Fold,
}

impl Fold for Selected<'_> {
    fn add(&mut self, line: AuditLine) {
        // A borrowed key would do, were the set keyed by a type that lends one.
        if self.kept.contains(&(line.service.clone(), line.session_id.clone())) {
            self.fold.add(line);
        }
    }

    fn end_partition(&mut self) {
        self.fold.end_partition();
    }
}

/// One session, as the history shows it over a time range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionRow {
    pub service: String,
    pub session_id: String,
    pub parent_id: Option<String>,
    pub user_id: Option<String>,
    /// The status last observed in the range.
    pub status: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub observations: u64,
}

fn snapshots(lines: &[AuditLine]) -> impl Iterator<Item = &AuditLine> {
    lines.iter().filter(|l| l.change.is_none())
}

/// Sessions observed in `[from, to]` that the filter keeps: by their user and parent as last
/// observed there, and by any status they were observed in there.
pub fn sessions(lines: &[AuditLine], from: i64, to: i64, filter: &Filter) -> Vec<SessionRow> {
    let mut fold = SessionsFold::new(from, to);
    lines.iter().for_each(|line| fold.add(line));
    fold.finish(filter)
}

/// [`sessions`], a line at a time in any order: what it holds grows with the sessions, not with
/// the lines, so a range of any length is answered as its objects stream by.
pub struct SessionsFold {
    from: i64,
    to: i64,
    sessions: BTreeMap<(String, String), Folded>,
}

/// One session as folded so far: its row, the statuses it was seen in, and when the times it
/// holds were seen (the latest line that gives one wins).
struct Folded {
    row: SessionRow,
    statuses: BTreeSet<String>,
    started_seen: i64,
    ended_seen: i64,
}

impl SessionsFold {
    pub fn new(from: i64, to: i64) -> Self {
        SessionsFold { from, to, sessions: BTreeMap::new() }
    }

    /// One line (a changes line or one outside the range counts for nothing).
    pub fn add(&mut self, line: &AuditLine) {
        if line.change.is_some() || !(self.from..=self.to).contains(&line.seen_at) {
            return;
        }
        let folded = self.sessions.entry((line.service.clone(), line.session_id.clone())).or_insert_with(|| Folded {
            row: SessionRow {
                service: line.service.clone(),
                session_id: line.session_id.clone(),
                parent_id: None,
                user_id: None,
                status: None,
                started_at: None,
                ended_at: None,
                first_seen: line.seen_at,
                last_seen: line.seen_at,
                observations: 0,
            },
            statuses: BTreeSet::new(),
            started_seen: i64::MIN,
            ended_seen: i64::MIN,
        });
        let row = &mut folded.row;
        row.first_seen = row.first_seen.min(line.seen_at);
        row.observations += 1;
        folded.statuses.extend(line.status.clone());
        // At the same instant, the line read later wins, as a stable sort by time would have it.
        if line.seen_at >= row.last_seen {
            row.last_seen = line.seen_at;
            row.parent_id = line.parent_id.clone();
            row.user_id = line.user_id.clone();
            row.status = line.status.clone();
        }
        if line.started_at.is_some() && line.seen_at >= folded.started_seen {
            (row.started_at, folded.started_seen) = (line.started_at, line.seen_at);
        }
        if line.ended_at.is_some() && line.seen_at >= folded.ended_seen {
            (row.ended_at, folded.ended_seen) = (line.ended_at, line.seen_at);
        }
    }

    /// The sessions the filter keeps, by service and session id.
    pub fn finish(self, filter: &Filter) -> Vec<SessionRow> {
        self.sessions
            .into_values()
            .filter(|f| {
                let statuses = f.statuses.iter().map(Some);
                filter.keeps_session(f.row.user_id.as_ref(), f.row.parent_id.as_ref(), statuses)
            })
            .map(|f| f.row)
            .collect()
    }
}

/// One step of a session's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineRow {
    pub at: i64,
    pub run_id: String,
    pub service: String,
    pub status: Option<String>,
    /// `observed`, or the change a run recorded: `opened`, `changed`, `ended`.
    pub event: String,
    /// `A → B` where the status moved.
    pub transition: Option<String>,
}

/// Every observed state of one session, with the changes the runs recorded, in time order.
pub fn timeline(lines: &[AuditLine], session_id: &str) -> Vec<TimelineRow> {
    let mut own: Vec<&AuditLine> = lines.iter().filter(|l| l.session_id == session_id).collect();
    // At the same instant, the change comes before the observation.
    own.sort_by_key(|l| (l.seen_at, l.change.is_none(), l.run_id.clone()));
    let mut rows = Vec::new();
    let mut last_status: Option<String> = None;
    let mut observed_runs = BTreeSet::new();
    for line in own {
        match &line.change {
            Some(change) => {
                let transition = match (&line.previous_status, &line.status) {
                    (Some(before), Some(after)) if before != after => Some(format!("{before} → {after}")),
                    (None, Some(after)) if change == "opened" => Some(format!("∅ → {after}")),
                    (Some(before), _) if change == "ended" => Some(format!("{before} → ∅")),
                    _ => None,
                };
                rows.push(TimelineRow {
                    at: line.seen_at,
                    run_id: line.run_id.clone(),
                    service: line.service.clone(),
                    status: line.status.clone(),
                    event: change.clone(),
                    transition,
                });
            }
            None => {
                if !observed_runs.insert(line.run_id.clone()) {
                    continue;
                }
                let transition = match (&last_status, &line.status) {
                    (Some(before), Some(after)) if before != after => Some(format!("{before} → {after}")),
                    _ => None,
                };
                last_status = line.status.clone();
                rows.push(TimelineRow {
                    at: line.seen_at,
                    run_id: line.run_id.clone(),
                    service: line.service.clone(),
                    status: line.status.clone(),
                    event: "observed".into(),
                    transition,
                });
            }
        }
    }
    rows
}

/// The snapshot lines of each run, by scope (service, account, region), keyed by the run's first
/// observation time there: each scope of an organization has its own last run before an instant
/// (one whose run failed has its run before).
fn runs_by_scope(lines: &[AuditLine]) -> BTreeMap<ScopeKey, BTreeMap<(i64, String), Vec<&AuditLine>>> {
    let mut first_seen: BTreeMap<(ScopeKey, String), i64> = BTreeMap::new();
    for line in snapshots(lines) {
        let at = first_seen.entry((line.scope(), line.run_id.clone())).or_insert(line.seen_at);
        *at = (*at).min(line.seen_at);
    }
    let mut runs: BTreeMap<ScopeKey, BTreeMap<(i64, String), Vec<&AuditLine>>> = BTreeMap::new();
    for line in snapshots(lines) {
        let at = first_seen[&(line.scope(), line.run_id.clone())];
        runs.entry(line.scope()).or_default().entry((at, line.run_id.clone())).or_default().push(line);
    }
    runs
}

/// The sessions active at `at`, per service: those the last run before it saw active (started,
/// not ended, a live status), by service and session id.
pub fn active_at(lines: &[AuditLine], at: i64, filter: &Filter) -> Vec<SessionRow> {
    let mut rows = Vec::new();
    for (_, runs) in runs_by_scope(lines) {
        let Some((&(run_at, _), run)) = runs.range(..=(at, "\u{10FFFF}".to_owned())).next_back() else { continue };
        let mut ids = BTreeSet::new();
        for line in run.iter().filter(|l| active_then(l, at) && filter.keeps_line(l)) {
            if ids.insert(line.session_id.clone()) {
                rows.push(SessionRow {
                    service: line.service.clone(),
                    session_id: line.session_id.clone(),
                    parent_id: line.parent_id.clone(),
                    user_id: line.user_id.clone(),
                    status: line.status.clone(),
                    started_at: line.started_at,
                    ended_at: line.ended_at,
                    first_seen: run_at,
                    last_seen: line.seen_at,
                    observations: 1,
                });
            }
        }
    }
    // By service and session, as `sessions` answers: the same whatever order the lines came in
    // (a run's NDJSON in listing order, a compacted day's Parquet in session order).
    rows.sort_by(|a, b| (&a.service, &a.session_id).cmp(&(&b.service, &b.session_id)));
    rows
}

/// Concurrent (active) sessions per service at each run: the points of the concurrency plot.
pub fn concurrency(lines: &[AuditLine], from: i64, to: i64) -> BTreeMap<String, Vec<(i64, u64)>> {
    let mut fold = ConcurrencyFold::new(from, to);
    lines.iter().filter(|l| l.change.is_none()).for_each(|line| fold.add(line.clone()));
    fold.finish()
}

/// The width of a summary bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    fn start(self, at: i64) -> i64 {
        at - at.rem_euclid(self.seconds())
    }
}

/// Sessions started and ended, peak concurrency and durations, per service and bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    pub bucket: i64,
    pub service: String,
    pub started: u64,
    pub ended: u64,
    /// The most sessions a run in the bucket saw active.
    pub peak_concurrency: u64,
    /// Durations (seconds) of the sessions that ended in the bucket, nearest rank.
    pub duration_p50: Option<i64>,
    pub duration_p90: Option<i64>,
    pub duration_p99: Option<i64>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// Over the sessions observed in `[from, to]`: starts and ends are bucketed by the sessions' own
/// `started_at` and `ended_at`, peaks by the runs' times.
pub fn summary(lines: &[AuditLine], from: i64, to: i64, by: Bucket) -> Vec<SummaryRow> {
    let mut fold = SummaryFold::new(from, to);
    lines.iter().for_each(|line| fold.add(line.clone()));
    summary_of(fold, by)
}

/// [`summary`] of what a fold gathered.
pub fn summary_of(fold: SummaryFold, by: Bucket) -> Vec<SummaryRow> {
    #[derive(Default)]
    struct Acc {
        started: u64,
        ended: u64,
        peak: u64,
        durations: Vec<i64>,
    }
    let (known, concurrency) = fold.finish();
    let mut buckets: BTreeMap<(i64, String), Acc> = BTreeMap::new();
    for ((service, _), (started, ended)) in &known {
        if let Some(s) = *started {
            buckets.entry((by.start(s), service.clone())).or_default().started += 1;
        }
        if let Some(e) = *ended {
            let acc = buckets.entry((by.start(e), service.clone())).or_default();
            acc.ended += 1;
            if let Some(s) = started {
                acc.durations.push(e - s);
            }
        }
    }
    for (service, points) in concurrency {
        for (at, count) in points {
            let acc = buckets.entry((by.start(at), service.clone())).or_default();
            acc.peak = acc.peak.max(count);
        }
    }
    buckets
        .into_iter()
        .map(|((bucket, service), mut acc)| {
            acc.durations.sort_unstable();
            SummaryRow {
                bucket,
                service,
                started: acc.started,
                ended: acc.ended,
                peak_concurrency: acc.peak,
                duration_p50: percentile(&acc.durations, 50),
                duration_p90: percentile(&acc.durations, 90),
                duration_p99: percentile(&acc.durations, 99),
            }
        })
        .collect()
}

/// One scope (a service in an account and region) over a time range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScopeRow {
    pub service: String,
    pub account_id: String,
    pub region: String,
    /// Distinct sessions seen.
    pub sessions: u64,
    /// Runs that listed the scope: those the runs dataset says listed it, and those whose
    /// snapshots saw a session there.
    pub runs: u64,
    /// Of those, the runs that found no session and wrote nothing (quiet).
    pub quiet_runs: u64,
    /// Runs that failed, by the runs dataset.
    pub failed_runs: u64,
    /// The most sessions one run saw active.
    pub peak_concurrency: u64,
    /// When a run last listed the scope (a quiet one too); none when none did.
    pub last_listed_at: Option<i64>,
    /// The last failed run's reason (`<kind>: <message>`), when the last run failed.
    pub last_error: Option<String>,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
}

/// Per service, account and region, in `[from, to]`: the sessions the snapshots saw, and every
/// run the runs dataset holds: a scope without a session, or whose runs all failed, has its row.
pub fn scopes(lines: &[AuditLine], runs: &[RunRecord], from: i64, to: i64) -> Vec<ScopeRow> {
    let mut fold = ScopesFold::new(from, to);
    runs.iter().for_each(|run| fold.add_run(run));
    lines.iter().for_each(|line| fold.add(line.clone()));
    scopes_of(fold)
}

/// [`scopes`] of what a fold gathered.
pub fn scopes_of(fold: ScopesFold) -> Vec<ScopeRow> {
    fold.finish()
        .into_iter()
        .map(|((service, account_id, region), acc)| ScopeRow {
            service,
            account_id,
            region,
            sessions: acc.sessions.len() as u64,
            runs: acc.listed_runs.len() as u64,
            quiet_runs: acc.quiet_runs,
            failed_runs: acc.failed_runs,
            peak_concurrency: acc.peak,
            last_listed_at: acc.last_listed_at.or(acc.last_seen),
            last_error: acc.last_run.and_then(|(_, error)| error),
            first_seen: acc.first_seen,
            last_seen: acc.last_seen,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(run: &str, at: i64, id: &str, status: &str, started: i64, ended: Option<i64>) -> AuditLine {
        AuditLine {
            seen_at: at,
            run_id: run.into(),
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            service: "gamelift-stream-sessions".into(),
            parent_id: None,
            session_id: id.into(),
            status: Some(status.into()),
            started_at: Some(started),
            ended_at: ended,
            user_id: Some(format!("user-{id}")),
            change: None,
            previous_status: None,
            last_connected_at: None,
        }
    }

    fn history() -> Vec<AuditLine> {
        vec![
            line("r1", 1000, "a", "ACTIVE", 900, None),
            line("r1", 1000, "b", "CONNECTED", 950, None),
            line("r2", 2000, "a", "CONNECTED", 900, None),
            line("r2", 2000, "b", "TERMINATED", 950, Some(1900)),
            line("r2", 2000, "c", "ACTIVE", 1500, None),
        ]
    }

    #[test]
    fn sessions_keep_their_last_state_in_the_range_and_a_status_matches_any_observation() {
        let rows = sessions(&history(), 0, 5000, &Filter::default());
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].status.as_deref(), rows[0].observations, rows[0].first_seen), (Some("CONNECTED"), 2, 1000));
        let only_b = Filter { users: vec!["user-b".into()], ..Filter::default() };
        assert_eq!(sessions(&history(), 0, 5000, &only_b).len(), 1);
        // `a` was ACTIVE at r1 and CONNECTED at r2: --status ACTIVE keeps it, as it keeps `c`
        let active = Filter { status: Some("ACTIVE".into()), ..Filter::default() };
        let ids: Vec<String> = sessions(&history(), 0, 5000, &active).into_iter().map(|r| r.session_id).collect();
        assert_eq!(ids, ["a", "c"]);
        // AND the lines a question about them reads are theirs alone, all of them
        let selected = active.select(history());
        assert_eq!(selected.iter().map(|l| l.session_id.as_str()).collect::<Vec<_>>(), ["a", "a", "c"]);
        assert_eq!(sessions(&history(), 0, 1500, &Filter::default()).len(), 2);
    }

    #[test]
    fn sessions_folded_in_any_order_answer_as_in_time_order() {
        // GIVEN the history's lines in reverse, as objects read at once may come
        let mut reversed = history();
        reversed.reverse();
        // THEN the same sessions, each with its last state
        assert_eq!(sessions(&reversed, 0, 5000, &Filter::default()), sessions(&history(), 0, 5000, &Filter::default()));
    }

    #[test]
    fn active_at_takes_each_scope_s_last_run_before_the_instant() {
        // GIVEN two accounts' runs of one schedule, the second account's last run failed
        let mut lines = history();
        let mut other = line("r1", 1100, "z", "ACTIVE", 900, None);
        other.account_id = "222222222222".into();
        lines.push(other);
        // WHEN asked at 2500: the first account's last run is r2, the second's r1
        let ids: Vec<String> = active_at(&lines, 2500, &Filter::default()).into_iter().map(|r| r.session_id).collect();
        // THEN each scope answers from its own last run
        assert_eq!(ids, ["a", "c", "z"]);
    }

    #[test]
    fn the_timeline_shows_each_observation_and_its_transitions() {
        let rows = timeline(&history(), "a");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].transition.as_deref(), Some("ACTIVE → CONNECTED"));
    }

    #[test]
    fn active_at_takes_the_last_run_before_the_instant() {
        let ids =
            |at| active_at(&history(), at, &Filter::default()).into_iter().map(|r| r.session_id).collect::<Vec<_>>();
        assert_eq!(ids(1500), ["a", "b"]);
        assert_eq!(ids(2500), ["a", "c"]);
        assert!(ids(500).is_empty());
    }

    #[test]
    fn the_summary_counts_starts_ends_peaks_and_durations() {
        let rows = summary(&history(), 0, 5000, Bucket::Hour);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.started, row.ended, row.peak_concurrency), (3, 1, 2));
        assert_eq!(row.duration_p50, Some(950));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), Some(9));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn each_account_and_region_is_summed_apart() {
        // GIVEN one account's two runs and another account's one, in the same service
        let mut lines = history();
        let mut other = line("r9", 1500, "z", "ACTIVE", 1400, None);
        other.account_id = "111122223333".into();
        lines.push(other);
        // WHEN summed per scope
        let rows = scopes(&lines, &[], 0, 10_000);
        // THEN each account is a row of its own
        let by_account: Vec<(&str, u64, u64)> =
            rows.iter().map(|r| (r.account_id.as_str(), r.sessions, r.runs)).collect();
        assert_eq!(by_account[0], ("111122223333", 1, 1));
        assert_eq!(by_account[1].0, "123456789012");
        assert_eq!(rows[0].peak_concurrency, 1);
    }

    fn run(account: &str, run_id: &str, at: i64, status: &str, quiet: bool, error: Option<&str>) -> RunRecord {
        RunRecord {
            service: "ivs-stream-sessions".into(),
            account_id: account.into(),
            region: "eu-west-1".into(),
            run_id: run_id.into(),
            started_at: at - 1,
            finished_at: at,
            status: status.into(),
            quiet,
            sessions: 0,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_scope_without_sessions_and_one_that_fails_have_rows_from_the_runs_dataset() {
        // GIVEN an account listed empty three times (the last two quiet), and another whose
        // first run failed, its second listed it, and its third failed again
        let runs = [
            run("111111111111", "r1", 100, "complete", false, None),
            run("111111111111", "r2", 400, "complete", true, None),
            run("111111111111", "r3", 700, "complete", true, None),
            run("222222222222", "r1", 100, "failed", false, Some("MemberRole: AccessDenied")),
            run("222222222222", "r2", 400, "complete", false, None),
            run("222222222222", "r3", 700, "failed", false, Some("SessionApi: ThrottlingException")),
        ];
        // WHEN the scopes are summed
        let rows = scopes(&[], &runs, 0, 1_000);
        // THEN each has its row: the empty one listed three times, the last at 700, no session
        let empty = &rows[0];
        assert_eq!((empty.sessions, empty.runs, empty.quiet_runs, empty.failed_runs), (0, 3, 2, 0));
        assert_eq!((empty.last_listed_at, empty.last_error.as_deref(), empty.first_seen), (Some(700), None, None));
        // AND the failing one: one run listed it, two failed, the last one's reason said
        let failing = &rows[1];
        assert_eq!((failing.runs, failing.failed_runs, failing.last_listed_at), (1, 2, Some(400)));
        assert_eq!(failing.last_error.as_deref(), Some("SessionApi: ThrottlingException"));
        // AND a run outside the range counts not
        assert_eq!(scopes(&[], &runs, 500, 1_000)[0].runs, 1);
    }
}

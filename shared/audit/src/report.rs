//! `session-audit report`: one self-contained HTML file for people who will not run a CLI. The
//! answers are the commands' own (connected intervals, concurrency, the runs dataset, sessions),
//! gathered here and written inline as JSON beside the page's script and style (`report.html`),
//! which draws them: no network, nothing to install. Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::connected::UserInterval;
use crate::folds::Series;
use crate::intervals::State;
use crate::query::SessionRow;
use crate::record::RunRecord;

/// The page: its style and script, with the data's place marked.
const TEMPLATE: &str = include_str!("report.html");
const DATA_MARK: &str = "/*REPORT-DATA*/";

/// Everything the page shows. Times are epoch seconds (UTC).
#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: i64,
    pub from: i64,
    pub to: i64,
    /// The filters asked for, as typed (`--user alice`), to say what the report covers.
    pub filters: Vec<String>,
    pub services: Vec<String>,
    pub intervals: Vec<ReportInterval>,
    pub users: Vec<UserTotal>,
    pub concurrency: Series,
    pub runs: Vec<RunPoint>,
    /// The sessions of the range, the first [`SESSIONS_IN_PAGE`] by when they were first seen.
    pub sessions: Vec<SessionRow>,
    /// All the sessions of the range, in the page or not.
    pub sessions_total: u64,
}

/// The sessions a page holds, at about 250 bytes each: a report stays a file people can mail.
/// `session-audit sessions` lists them all.
pub const SESSIONS_IN_PAGE: usize = 50_000;

/// The sessions the page holds, first seen first, and how many there were.
pub fn page_sessions(mut sessions: Vec<SessionRow>) -> (Vec<SessionRow>, u64) {
    let total = sessions.len() as u64;
    sessions.sort_by(|a, b| (a.first_seen, &a.service, &a.session_id).cmp(&(b.first_seen, &b.service, &b.session_id)));
    sessions.truncate(SESSIONS_IN_PAGE);
    (sessions, total)
}

/// One connected (or unknown) interval of one user's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportInterval {
    pub user_id: Option<String>,
    pub service: String,
    pub account_id: String,
    pub region: String,
    pub session_id: String,
    pub state: State,
    pub start: i64,
    pub end: i64,
    pub start_earliest: Option<i64>,
    pub end_latest: Option<i64>,
    pub open: bool,
}

/// One user's time over the range, for the top users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserTotal {
    pub user_id: Option<String>,
    pub connected_seconds: i64,
    pub unknown_seconds: i64,
    pub sessions: u64,
    pub intervals: u64,
}

/// One run of a service over all its scopes: how many it listed, how many failed and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunPoint {
    pub service: String,
    pub run_id: String,
    /// The earliest start of its scopes' runs.
    pub at: i64,
    pub listed: u64,
    pub quiet: u64,
    pub failed: u64,
    /// Each failed scope of the run: `<account> <region>: <error>`.
    pub errors: Vec<String>,
}

/// The intervals as the page draws them.
pub fn report_intervals(found: &[UserInterval]) -> Vec<ReportInterval> {
    found
        .iter()
        .map(|f| ReportInterval {
            user_id: f.user_id.clone(),
            service: f.scope.0.clone(),
            account_id: f.scope.1.clone(),
            region: f.scope.2.clone(),
            session_id: f.session_id.clone(),
            state: f.interval.state,
            start: f.interval.start,
            end: f.interval.end,
            start_earliest: f.interval.start_earliest,
            end_latest: f.interval.end_latest,
            open: f.interval.open,
        })
        .collect()
}

/// Each user's connected and unknown seconds, sessions and intervals, most connected first (then
/// by user). Sessions without a user (an IVS stream, a Chime SDK proxy session) are no one's.
pub fn user_totals(found: &[UserInterval]) -> Vec<UserTotal> {
    let mut by_user: BTreeMap<Option<&str>, UserTotal> = BTreeMap::new();
    let mut sessions: BTreeSet<(Option<&str>, &str, &str)> = BTreeSet::new();
    for f in found.iter().filter(|f| f.user_id.is_some()) {
        let total = by_user.entry(f.user_id.as_deref()).or_insert_with(|| UserTotal {
            user_id: f.user_id.clone(),
            connected_seconds: 0,
            unknown_seconds: 0,
            sessions: 0,
            intervals: 0,
        });
        match f.interval.state {
            State::Connected => total.connected_seconds += f.interval.duration(),
            State::Unknown => total.unknown_seconds += f.interval.duration(),
        }
        total.intervals += 1;
        if sessions.insert((f.user_id.as_deref(), f.scope.0.as_str(), f.session_id.as_str())) {
            total.sessions += 1;
        }
    }
    let mut totals: Vec<UserTotal> = by_user.into_values().collect();
    totals.sort_by(|a, b| b.connected_seconds.cmp(&a.connected_seconds).then_with(|| a.user_id.cmp(&b.user_id)));
    totals
}

/// The runs dataset's lines gathered per service and run: the scopes each run listed and those
/// that failed, with their reasons.
#[derive(Default)]
pub struct RunsFold {
    from: i64,
    to: i64,
    runs: HashMap<(String, String), RunPoint>,
}

impl RunsFold {
    pub fn new(from: i64, to: i64) -> Self {
        RunsFold { from, to, runs: HashMap::new() }
    }

    pub fn add(&mut self, run: &RunRecord) {
        if !(self.from..=self.to).contains(&run.started_at) || run.status == "dry_run" {
            return;
        }
        let point = self.runs.entry((run.service.clone(), run.run_id.clone())).or_insert_with(|| RunPoint {
            service: run.service.clone(),
            run_id: run.run_id.clone(),
            at: run.started_at,
            ..RunPoint::default()
        });
        point.at = point.at.min(run.started_at);
        if run.listed() {
            point.listed += 1;
            point.quiet += u64::from(run.quiet);
        } else {
            point.failed += 1;
            let why = run.error.as_deref().unwrap_or("no reason recorded");
            point.errors.push(format!("{} {}: {why}", run.account_id, run.region));
        }
    }

    /// The runs in time order (then by service and run id).
    pub fn finish(self) -> Vec<RunPoint> {
        let mut runs: Vec<RunPoint> = self.runs.into_values().collect();
        for run in &mut runs {
            run.errors.sort();
        }
        runs.sort_by(|a, b| (a.at, &a.service, &a.run_id).cmp(&(b.at, &b.service, &b.run_id)));
        runs
    }
}

/// The report as one HTML file: the page with its data inline. The JSON sits in a
/// `<script type="application/json">`, so `<`, `>` and `&` are escaped: no text of the history
/// (a user name, an error message) can close the element or be read as markup.
pub fn html(report: &Report) -> String {
    let json = serde_json::to_string(report).expect("the report serialises");
    let json = json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    TEMPLATE.replacen(DATA_MARK, &json, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::Interval;

    fn found(user: Option<&str>, session: &str, state: State, start: i64, end: i64) -> UserInterval {
        UserInterval {
            user_id: user.map(str::to_owned),
            scope: ("workspaces-connection-status".into(), "111122223333".into(), "eu-west-1".into()),
            session_id: session.into(),
            interval: Interval {
                state,
                start,
                start_earliest: None,
                end,
                end_latest: None,
                start_exact: false,
                end_exact: false,
                open: false,
            },
        }
    }

    #[test]
    fn users_are_ranked_by_connected_time_with_their_sessions_counted_once() {
        // GIVEN alice connected twice in one session (an hour in all) and bob once for two hours,
        // with a gap of unknown next to bob's, and a session without a user
        let found = [
            found(Some("alice"), "ws-1", State::Connected, 0, 1_800),
            found(Some("alice"), "ws-1", State::Connected, 3_600, 5_400),
            found(Some("bob"), "ws-2", State::Connected, 0, 7_200),
            found(Some("bob"), "ws-2", State::Unknown, 7_200, 7_500),
            found(None, "ws-3", State::Connected, 0, 60),
        ];
        // WHEN the users are totalled
        let totals = user_totals(&found);
        // THEN bob comes first, alice second, and the session without a user is no one's
        let order: Vec<_> = totals.iter().map(|t| t.user_id.as_deref()).collect();
        assert_eq!(order, [Some("bob"), Some("alice")]);
        // AND each has their seconds, sessions and intervals
        assert_eq!((totals[0].connected_seconds, totals[0].unknown_seconds, totals[0].sessions), (7_200, 300, 1));
        assert_eq!((totals[1].connected_seconds, totals[1].sessions, totals[1].intervals), (3_600, 1, 2));
    }

    fn run(account: &str, run_id: &str, at: i64, status: &str, error: Option<&str>) -> RunRecord {
        RunRecord {
            service: "ivs-stream-sessions".into(),
            account_id: account.into(),
            region: "eu-west-1".into(),
            run_id: run_id.into(),
            started_at: at,
            finished_at: at + 1,
            status: status.into(),
            quiet: status == "complete" && account.ends_with('3'),
            sessions: 0,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_run_counts_the_scopes_it_listed_and_names_those_that_failed() {
        // GIVEN one run over three scopes (one quiet, one failed) and a later run over one
        let mut fold = RunsFold::new(0, 1_000);
        fold.add(&run("111122223333", "r1", 12, "complete", None));
        fold.add(&run("111122223334", "r1", 10, "partial", None));
        fold.add(&run("111122223335", "r1", 11, "failed", Some("AccessDenied: no member role")));
        fold.add(&run("111122223333", "r2", 300, "complete", None));
        // AND a run outside the range and a dry run
        fold.add(&run("111122223333", "r0", 2_000, "complete", None));
        fold.add(&run("111122223333", "r3", 400, "dry_run", None));
        // WHEN the runs are gathered
        let runs = fold.finish();
        // THEN each run in the range is one point, dated by its earliest scope
        let points: Vec<_> = runs.iter().map(|r| (r.run_id.as_str(), r.at, r.listed, r.quiet, r.failed)).collect();
        assert_eq!(points, [("r1", 10, 2, 1, 1), ("r2", 300, 1, 1, 0)]);
        // AND the failed scope is named with its reason
        assert_eq!(runs[0].errors, ["111122223335 eu-west-1: AccessDenied: no member role"]);
    }

    #[test]
    fn a_page_holds_the_first_sessions_seen_and_says_how_many_there_were() {
        // GIVEN one session more than a page holds, the last seen first
        let row = |n: usize| SessionRow {
            service: "ivs-stream-sessions".into(),
            session_id: format!("st-{n}"),
            parent_id: None,
            user_id: None,
            status: None,
            started_at: None,
            ended_at: None,
            first_seen: n as i64,
            last_seen: n as i64,
            observations: 1,
        };
        let sessions: Vec<SessionRow> = (0..=SESSIONS_IN_PAGE).rev().map(row).collect();
        // WHEN the page's sessions are chosen
        let (kept, total) = page_sessions(sessions);
        // THEN it holds the first seen, in order, and counts them all
        assert_eq!((kept.len(), total), (SESSIONS_IN_PAGE, SESSIONS_IN_PAGE as u64 + 1));
        assert_eq!((kept[0].first_seen, kept.last().unwrap().first_seen), (0, SESSIONS_IN_PAGE as i64 - 1));
    }

    #[test]
    fn the_data_cannot_close_its_script_element() {
        // GIVEN a user id that holds markup
        let report = Report {
            generated_at: 0,
            from: 0,
            to: 1,
            filters: vec!["--user </script><script>alert(1)</script>".into()],
            services: vec![],
            intervals: report_intervals(&[found(Some("</script>&"), "ws-1", State::Connected, 0, 1)]),
            users: vec![],
            concurrency: Series::new(),
            runs: vec![],
            sessions: vec![],
            sessions_total: 0,
        };
        // WHEN the page is written
        let page = html(&report);
        // THEN the page's own script elements are the only ones, and the data reads back whole
        assert_eq!(page.matches("</script>").count(), TEMPLATE.matches("</script>").count());
        let start = page.find(r#"<script type="application/json" id="report-data">"#).unwrap();
        let body = &page[start..];
        let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        let data: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(data["intervals"][0]["user_id"], "</script>&");
        assert!(!page.contains(DATA_MARK));
    }
}

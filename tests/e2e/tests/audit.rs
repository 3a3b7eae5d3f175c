//! `session-audit` on history the real pipeline wrote to moto (several runs with churn), its
//! answers checked against the emulator's own record of each run's moment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use archiver_e2e::rig::{request, small_world, Rig, BUCKET};
use clap::Parser;
use serde_json::Value as Json;
use session_archiver::archive::report::write_runs;
use session_archiver::model::Timestamp;
use session_archiver::personal::{PersonalData, PersonalDataPolicy};
use session_archiver::run::batch::ScopeOutcome;
use session_archiver::run::{run, RunOutcome, RunRequest};
use session_archiver::ServiceId;
use session_audit::cli::Cli;
use session_audit::query::is_active_status;
use session_compaction::slices::InThisInvocation;
use session_emulator::SimSession;

const KEY: &str = "audit-test-key-0123456789abcdef0123456789abcdef";

/// The emulator's record at one run: every session with its status.
struct Moment {
    run_id: String,
    /// The UTC day of the run's event, the day its history is partitioned under.
    day: String,
    seen_at: i64,
    /// The same, to the millisecond.
    at: Timestamp,
    sessions: Vec<SimSession>,
}

/// A scheduled run's request with the event's time now, as the schedule sends it, so its history
/// lands in the partition of the day it runs, the one the audits below read (the rig's fixed
/// event day would fall out of their range as the calendar moves on).
fn scheduled_now(run_id: &str) -> RunRequest {
    RunRequest { event_time: Timestamp::now(), ..request(run_id, false) }
}

/// Runs `service` three times with time passing in between; returns each run's moment.
async fn archive_with_churn(rig: &Rig, service: ServiceId) -> Vec<Moment> {
    // Boxed: a run's future is deep, and one more level of it overflows the compiler's query depth.
    Box::pin(archive_runs(rig, service, &[None, None, None])).await
}

/// Runs `service` once for each event time (`None`: now), with time passing in between.
async fn archive_runs(rig: &Rig, service: ServiceId, event_times: &[Option<Timestamp>]) -> Vec<Moment> {
    let source = rig.source(service).await;
    let mut moments = Vec::new();
    for (n, event_time) in event_times.iter().enumerate() {
        let run_id = format!("audit-{service}-{n}");
        let mut request = scheduled_now(&run_id);
        if let Some(time) = event_time {
            request.event_time = time.clone();
        }
        let (scope, started_at) = (rig.scope(&source), Timestamp::now());
        let bucket = rig.aws.history_bucket();
        let summary = run(&scope, &source, &rig.aws.table(), &bucket, &rig.config, &request).await.unwrap();
        assert_eq!(summary.outcome, RunOutcome::Complete);
        // Its line in the runs dataset, as the function writes it after its batch.
        let outcomes = [(&scope, ScopeOutcome::Ran(summary.clone()))];
        write_runs(&bucket, "history", service, &request, &outcomes, &started_at).await;
        moments.push(Moment {
            run_id,
            day: request.event_time.day().to_owned(),
            seen_at: summary.started_at.epoch_seconds(),
            at: summary.started_at.clone(),
            sessions: rig.emulator.sessions(archiver_e2e::api_of(service)),
        });
        rig.emulator.advance(1);
        // Runs one second apart at least, so each has its own instant.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    moments
}

/// The UTC day of the first run: a range from there holds every run of the test, even one that
/// crossed midnight.
fn first_day(moments: &[Moment]) -> String {
    moments[0].day.clone()
}

fn moto_url(rig: &Rig) -> String {
    rig.aws.settings.endpoint_url.clone().unwrap()
}

/// Runs the CLI in-process against the rig's bucket.
async fn audit(rig: &Rig, args: &[&str]) -> Result<String, session_audit::AuditError> {
    rig.aws.audit(args).await
}

fn json_rows(text: &str) -> Vec<Json> {
    serde_json::from_str::<Json>(text).unwrap().as_array().unwrap().clone()
}

fn ids(rows: &[Json]) -> BTreeSet<String> {
    rows.iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_audit_answers_match_what_the_emulator_had_at_each_run() {
    // GIVEN three runs of GameLift stream sessions with churn between them
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::GameliftStreamSessions;
    let moments = archive_with_churn(&rig, service).await;
    let everyone: BTreeSet<String> = moments.iter().flat_map(|m| m.sessions.iter().map(|s| s.id.clone())).collect();
    let from = first_day(&moments);
    let from = from.as_str();

    // WHEN an auditor lists the sessions of the day
    let rows = json_rows(
        &audit(&rig, &["sessions", "--service", service.as_str(), "--from", from, "--format", "json"]).await.unwrap(),
    );
    // THEN they are every session any run saw, each with its last observed status
    assert_eq!(ids(&rows), everyone);
    for row in &rows {
        let id = row["session_id"].as_str().unwrap();
        let last = moments.iter().rev().find_map(|m| m.sessions.iter().find(|s| s.id == id)).unwrap();
        assert_eq!(row["status"], last.status, "{id}");
    }
    // AND a local copy of the bucket gives the same answer
    let copy = std::env::temp_dir().join(format!("session-audit-copy-{}", std::process::id()));
    for key in rig.aws.keys("history/").await {
        let bytes = rig.aws.bytes(&key).await;
        let path = copy.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let cli = Cli::try_parse_from([
        "session-audit",
        "--dir",
        copy.to_str().unwrap(),
        "sessions",
        "--from",
        from,
        "--format",
        "json",
    ])
    .unwrap();
    let from_copy = json_rows(&cli.run(Timestamp::now().epoch_seconds()).await.unwrap());
    assert_eq!(from_copy, rows);
    // AND filtering by user gives that user's sessions only
    let user = moments[0].sessions.iter().find_map(|s| s.user_id.clone()).unwrap();
    let mine =
        json_rows(&audit(&rig, &["sessions", "--from", from, "--user", &user, "--format", "json"]).await.unwrap());
    let expected: BTreeSet<String> = moments
        .iter()
        .flat_map(|m| m.sessions.iter())
        .filter(|s| {
            let last = moments.iter().rev().find_map(|m| m.sessions.iter().find(|t| t.id == s.id)).unwrap();
            last.user_id.as_deref() == Some(user.as_str())
        })
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(ids(&mine), expected);

    // WHEN they ask who was active at the second run's instant
    let instant = session_audit::record::format_time(moments[1].seen_at);
    let active = json_rows(
        &audit(&rig, &["active-at", &instant, "--service", service.as_str(), "--format", "json"]).await.unwrap(),
    );
    // THEN it is the sessions the emulator had active then
    let expected: BTreeSet<String> = moments[1]
        .sessions
        .iter()
        .filter(|s| is_active_status(Some(s.status)) && s.ended.is_none())
        .map(|s| s.id.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&active), expected);

    // WHEN they follow one session that changed between runs
    let changed = moments[0]
        .sessions
        .iter()
        .find(|s| moments[1].sessions.iter().any(|t| t.id == s.id && t.status != s.status))
        .expect("a session changed status");
    let timeline =
        json_rows(&audit(&rig, &["timeline", &changed.id, "--from", from, "--format", "json"]).await.unwrap());
    // THEN its observed states are the emulator's, run by run, with the transition shown
    let observed: Vec<(String, String)> = timeline
        .iter()
        .filter(|r| r["event"] == "observed")
        .map(|r| (r["run_id"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> = moments
        .iter()
        .filter_map(|m| m.sessions.iter().find(|s| s.id == changed.id).map(|s| (m.run_id.clone(), s.status.to_owned())))
        .collect();
    assert_eq!(observed, expected);
    assert!(timeline.iter().any(|r| r["transition"].as_str().is_some_and(|t| t.contains('→'))));
    assert_eq!(timeline.iter().filter(|r| r["event"] == "opened").count(), 1);

    // WHEN they ask for the daily summary
    let summary =
        json_rows(&audit(&rig, &["summary", "--by", "day", "--from", from, "--format", "json"]).await.unwrap());
    // THEN sessions started per day are the emulator's, by each session's start
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_id: BTreeMap<String, &SimSession> = BTreeMap::new();
    for s in moments.iter().flat_map(|m| m.sessions.iter()) {
        by_id.entry(s.id.clone()).or_insert(s);
    }
    for s in by_id.values() {
        *expected.entry(session_audit::record::day_of(s.started)).or_default() += 1;
    }
    let started: BTreeMap<String, u64> = summary
        .iter()
        .filter(|r| r["started"].as_u64() > Some(0))
        .map(|r| (r["bucket"].as_str().unwrap()[..10].to_owned(), r["started"].as_u64().unwrap()))
        .collect();
    assert_eq!(started, expected);
    // AND each day's peak concurrency is the most sessions a run of that day saw active
    let mut peaks: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &moments {
        let active = m.sessions.iter().filter(|s| is_active_status(Some(s.status)) && s.ended.is_none()).count();
        let peak = peaks.entry(m.day.as_str()).or_default();
        *peak = (*peak).max(active as u64);
    }
    for (day, peak) in peaks {
        let row = summary.iter().find(|r| r["bucket"].as_str().unwrap().starts_with(day)).unwrap();
        assert_eq!(row["peak_concurrency"].as_u64(), Some(peak), "{day}");
    }
}

#[tokio::test]
async fn one_user_s_connected_intervals_span_services_and_their_personal_workspace() {
    // GIVEN three runs of WorkSpaces connection status and three of pool sessions, with churn
    let rig = Rig::start(small_world()).await;
    let services = [ServiceId::WorkspacesConnectionStatus, ServiceId::WorkspacesPoolSessions];
    let mut moments = BTreeMap::new();
    for service in services {
        moments.insert(service.as_str(), archive_with_churn(&rig, service).await);
    }
    // AND a user whose personal WorkSpace was connected at a run, preferring one who also had a
    // pool session connected
    let connected_users = |service: &str| -> BTreeSet<String> {
        let sessions = moments[service].iter().flat_map(|m| m.sessions.iter());
        sessions.filter(|s| s.status == "CONNECTED").filter_map(|s| s.user_id.clone()).collect()
    };
    let (personal, pooled) = (connected_users(services[0].as_str()), connected_users(services[1].as_str()));
    let user = personal.intersection(&pooled).next().or(personal.iter().next()).expect("a connected WorkSpace").clone();
    let from = first_day(&moments[services[0].as_str()]);

    // WHEN the auditor asks when that user was connected
    let args = ["connected", "--user", &user, "--from", &from, "--format", "json"];
    let rows = json_rows(&audit(&rig, &args).await.unwrap());

    // THEN every row is the user's, their personal WorkSpace among them
    assert!(rows.iter().all(|r| r["user_id"] == user.as_str()), "{rows:#?}");
    assert!(rows.iter().any(|r| r["service"] == "workspaces-connection-status"), "{rows:#?}");
    // AND each connected interval is one the emulator had: the session connected at every run
    // from its start to its end, and not at the runs that bound it
    let time = |v: &Json| v.as_str().map(|t| Timestamp::parse(t).unwrap().epoch_seconds());
    for row in rows.iter().filter(|r| r["state"] == "connected") {
        let (id, service) = (row["session_id"].as_str().unwrap(), row["service"].as_str().unwrap());
        let status_at = |at: i64| {
            // A run's lines are dated by its start, to the second: runs a second apart are told apart.
            let moment = moments[service].iter().find(|m| m.seen_at == at).expect("a run at that time");
            moment.sessions.iter().find(|s| s.id == id).map(|s| s.status)
        };
        // An edge the API dates itself is inside its window; the others are runs.
        let exact = row["exact"].as_str().unwrap();
        let (start, end) = (time(&row["start"]).unwrap(), time(&row["end"]).unwrap());
        let inside: Vec<_> = moments[service].iter().filter(|m| m.seen_at >= start && m.seen_at <= end).collect();
        assert!(!inside.is_empty(), "{row}");
        for moment in inside {
            assert_eq!(status_at(moment.seen_at), Some("CONNECTED"), "{id} at {}: {row}", moment.run_id);
        }
        let bounds = [(time(&row["start_earliest"]), "start"), (time(&row["end_latest"]), "end")];
        for bound in bounds.into_iter().filter(|(_, edge)| !exact.contains(edge)).filter_map(|(at, _)| at) {
            assert_ne!(status_at(bound), Some("CONNECTED"), "{id} bounded by a run that saw it connected: {row}");
        }
    }
    // AND per day, the user's connected time is the sum of the intervals'
    let days = json_rows(
        &audit(&rig, &["connected", "--by", "day", "--user", &user, "--from", &from, "--format", "json"])
            .await
            .unwrap(),
    );
    let total: i64 = days.iter().map(|d| d["connected_seconds"].as_i64().unwrap()).sum();
    let summed: i64 =
        rows.iter().filter(|r| r["state"] == "connected").map(|r| r["duration_seconds"].as_i64().unwrap()).sum();
    assert_eq!(total, summed);
    assert!(days.iter().all(|d| d["user_id"] == user.as_str()));
}

#[tokio::test]
async fn a_compacted_day_gives_the_same_answers_from_its_parquet_alone() {
    // GIVEN three runs of Chime SDK Voice proxy sessions with churn between them, and the audit's
    // answers from their NDJSON
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::ChimeProxySessions;
    let moments = archive_with_churn(&rig, service).await;
    let from = first_day(&moments);
    let instant = session_audit::record::format_time(moments[1].seen_at);
    let changed = moments[0].sessions[0].id.clone();
    let questions: Vec<Vec<&str>> = vec![
        vec!["sessions", "--service", service.as_str(), "--from", &from, "--format", "json"],
        vec!["active-at", &instant, "--service", service.as_str(), "--format", "json"],
        vec!["timeline", &changed, "--from", &from, "--format", "json"],
        vec!["summary", "--by", "day", "--from", &from, "--format", "json"],
        // Its runs too: the runs dataset is compacted with the sessions.
        vec!["scopes", "--service", service.as_str(), "--from", &from, "--format", "json"],
    ];
    let mut before = Vec::new();
    for question in &questions {
        before.push(audit(&rig, question).await.unwrap());
    }
    // WHEN each day is compacted, and then its NDJSON is gone (as the lifecycle rule expires it)
    let config = session_compaction::dataset::CompactionConfig {
        history_prefix: "history".into(),
        sort_budget: 1 << 20,
        layout: session_compaction::parquet_object::Layout { row_group_bytes: 1 << 20, upload_part_size: 0 },
        batch_rows: 64,
        // Small parts: a day is several Parquet objects, as a large day is.
        slice_source_bytes: 2048,
    };
    let days: BTreeSet<String> = moments.iter().map(|m| m.day.clone()).collect();
    for day in &days {
        session_compaction::day::compact_day(&rig.aws.history_bucket(), &config, &InThisInvocation, service, day)
            .await
            .unwrap();
    }
    let sources: Vec<String> =
        rig.aws.keys("history/").await.into_iter().filter(|k| k.ends_with(".jsonl.gz")).collect();
    assert!(!sources.is_empty());
    for key in &sources {
        rig.aws.delete_object(key).await;
    }
    // THEN every answer is the same, read from the Parquet alone (the runs' included)
    assert!(rig.aws.keys("history/parquet/runs/").await.iter().any(|k| k.ends_with(".parquet")));
    for (question, answer) in questions.iter().zip(&before) {
        assert!(!json_rows(answer).is_empty(), "{question:?}: {answer}");
        assert_eq!(&audit(&rig, question).await.unwrap(), answer, "{question:?}");
    }
}

/// Epoch seconds of a time DuckDB wrote (`2026-12-05 16:04:13.123`) or the CLI did (RFC 3339).
fn epoch(value: &Json) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    let text = text.replace(' ', "T");
    // DuckDB writes a time with a zone as `+00:00`, one without none.
    let zoned = text.ends_with('Z') || text.rfind(['+', '-']).is_some_and(|at| at > 10);
    Timestamp::parse(&if zoned { text } else { format!("{text}Z") }).unwrap().epoch_seconds()
}

/// The CLI's JSON rows for `args`.
async fn cli_json(rig: &Rig, args: &[&str]) -> Vec<Json> {
    json_rows(&audit(rig, args).await.unwrap())
}

/// Athena's `YYYY-MM-DD HH:MM:SS` of epoch seconds.
fn athena_time(epoch: i64) -> String {
    session_audit::record::format_time(epoch).replace('T', " ").trim_end_matches('Z').to_owned()
}

#[tokio::test]
async fn every_named_query_runs_and_answers_as_the_cli_does_on_compacted_and_fresh_days() {
    use archiver_e2e::athena::{named_queries, named_query, run as athena};
    // GIVEN Chime SDK Voice and GameLift Streams sessions archived by three runs each: two on
    // yesterday's partition, compacted, and one on today's, not compacted yet
    let rig = Rig::start(small_world()).await;
    let yesterday =
        Timestamp::from_datetime(&aws_smithy_types::DateTime::from_secs(Timestamp::now().epoch_seconds() - 86_400))
            .unwrap();
    let services = [ServiceId::ChimeProxySessions, ServiceId::GameliftStreamSessions];
    let mut moments = Vec::new();
    for service in services {
        let times = [Some(yesterday.clone()), Some(yesterday.clone()), None];
        moments.extend(Box::pin(archive_runs(&rig, service, &times)).await);
    }
    // AND a GameLift Streams run that failed between its last two: a gap in what is known
    let (before, after) = (moments[4].at.to_datetime().as_nanos(), moments[5].at.to_datetime().as_nanos());
    let between = aws_smithy_types::DateTime::from_nanos((before + after) / 2).unwrap();
    let failed = ScopeOutcome::Failed(session_archiver::Error::Config("the session API refused the call".into()));
    let gamelift = rig.scope(&rig.source(ServiceId::GameliftStreamSessions).await);
    let request = scheduled_now("audit-gamelift-stream-sessions-failed");
    let at = Timestamp::from_datetime(&between).unwrap();
    write_runs(
        &rig.aws.history_bucket(),
        "history",
        ServiceId::GameliftStreamSessions,
        &request,
        &[(&gamelift, failed)],
        &at,
    )
    .await;
    let config = session_compaction::dataset::CompactionConfig {
        history_prefix: "history".into(),
        sort_budget: 1 << 20,
        layout: session_compaction::parquet_object::Layout { row_group_bytes: 1 << 20, upload_part_size: 0 },
        batch_rows: 64,
        slice_source_bytes: 1 << 20,
    };
    for service in services {
        session_compaction::day::compact_day(
            &rig.aws.history_bucket(),
            &config,
            &InThisInvocation,
            service,
            yesterday.day(),
        )
        .await
        .unwrap();
    }
    assert!(rig.aws.keys("history/parquet/snapshots/").await.iter().any(|k| k.ends_with(".parquet")));
    // AND a copy of the bucket, as Athena would read it
    let copy = std::env::temp_dir().join(format!("session-audit-athena-{}", std::process::id()));
    for key in rig.aws.keys("history/").await {
        let path = copy.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rig.aws.bytes(&key).await).unwrap();
    }
    let (first, last) =
        (moments.iter().map(|m| m.seen_at).min().unwrap(), moments.iter().map(|m| m.seen_at).max().unwrap());
    let (from, to) = (first - 60, last + 60);
    let (from_text, to_text) = (athena_time(from), athena_time(to));
    let (from_cli, to_cli) = (session_audit::record::format_time(from), session_audit::record::format_time(to));
    let days = [yesterday.day().to_owned(), Timestamp::now().day().to_owned()];
    // Every named query is one of those below: a new one must be run here too.
    assert_eq!(named_queries().len(), 7);

    // WHEN the sessions query runs THEN it answers the CLI's sessions, state for state
    let params = [from_text.as_str(), &to_text, &from_text, &to_text];
    let rows = athena(&copy, &named_query("AuditSessionsQuery"), &params);
    let answer = |rows: &[Json]| -> BTreeSet<(String, String, String, u64, i64, i64)> {
        rows.iter()
            .map(|r| {
                let text = |c: &str| r[c].as_str().unwrap_or_default().to_owned();
                (
                    text("service"),
                    text("session_id"),
                    text("status"),
                    r["observations"].as_u64().unwrap(),
                    epoch(&r["first_seen"]),
                    epoch(&r["last_seen"]),
                )
            })
            .collect()
    };
    let expected = cli_json(&rig, &["sessions", "--from", &from_cli, "--to", &to_cli, "--format", "json"]).await;
    assert!(!rows.is_empty());
    assert_eq!(answer(&rows), answer(&expected));

    // AND the timeline of a session, observation for observation and change for change
    let id = moments[0].sessions[0].id.clone();
    let rows = athena(&copy, &named_query("AuditTimelineQuery"), &[&days[0], &days[1], &id]);
    let steps = |rows: &[Json]| -> Vec<(i64, String)> {
        let mut steps: Vec<(i64, String)> =
            rows.iter().map(|r| (epoch(&r["at"]), r["event"].as_str().unwrap().to_owned())).collect();
        steps.sort();
        steps
    };
    let expected = cli_json(&rig, &["timeline", &id, "--from", &from_cli, "--to", &to_cli, "--format", "json"]).await;
    assert_eq!(steps(&rows), steps(&expected));

    // AND the sessions active at the second run of each service
    // (To the millisecond: the run at that instant is one before it.)
    let instant = moments[1].at.as_str().replace('T', " ").trim_end_matches('Z').to_owned();
    let rows = athena(&copy, &named_query("AuditActiveAtQuery"), &[instant.as_str(); 5]);
    let at_cli = moments[1].at.as_str().to_owned();
    let expected = cli_json(&rig, &["active-at", &at_cli, "--format", "json"]).await;
    assert!(!rows.is_empty());
    assert_eq!(ids(&rows), ids(&expected));

    // AND the daily summary: sessions started and ended per service and day
    let rows = athena(&copy, &named_query("AuditDailySummaryQuery"), &[&days[0], &days[1]]);
    let counts = |rows: &[Json], day: &str| -> BTreeSet<(String, String, u64, u64)> {
        rows.iter()
            .filter(|r| r["started"].as_u64() > Some(0) || r["ended"].as_u64() > Some(0))
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_owned(),
                    r[day].as_str().unwrap()[..10].to_owned(),
                    r["started"].as_u64().unwrap(),
                    r["ended"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let expected =
        cli_json(&rig, &["summary", "--by", "day", "--from", &from_cli, "--to", &to_cli, "--format", "json"]).await;
    assert_eq!(counts(&rows, "day"), counts(&expected, "bucket"));

    // AND the concurrency series: the sessions each run saw active
    let rows = athena(&copy, &named_query("AuditConcurrencyQuery"), &[&days[0], &days[1]]);
    let series: BTreeSet<(String, i64, u64)> = rows
        .iter()
        .map(|r| {
            (r["service"].as_str().unwrap().to_owned(), epoch(&r["run_at"]), r["active_sessions"].as_u64().unwrap())
        })
        .collect();
    let archive = session_audit::archive::Archive::Dir { root: copy.clone(), prefix: "history".into() };
    let names: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
    let mut fold = session_audit::folds::ConcurrencyFold::new(from, to);
    let every_scope = session_audit::archive::ScopeFilter::default();
    session_audit::stream(&archive, &[session_audit::SNAPSHOTS], &names, (from, to), &every_scope, &mut fold)
        .await
        .unwrap();
    let expected: BTreeSet<(String, i64, u64)> = fold
        .finish()
        .into_iter()
        .flat_map(|(service, points)| points.into_iter().map(move |(at, n)| (service.clone(), at, n)))
        .collect();
    assert_eq!(series, expected);

    // AND who was connected when: every interval, its bounds, gaps and open ones, as `connected`
    let params = [from_text.as_str(), &to_text, &from_text, &to_text, &from_text, &to_text, &from_text];
    let rows = athena(&copy, &named_query("AuditConnectedQuery"), &params);
    type Interval = (Option<String>, String, String, String, i64, i64, Option<i64>, Option<i64>, bool);
    let intervals = |rows: &[Json], exact: &dyn Fn(&Json) -> bool| -> BTreeSet<(Interval, bool)> {
        rows.iter()
            .map(|r| {
                let text = |c: &str| r[c].as_str().unwrap().to_owned();
                let time = |c: &str| (!r[c].is_null()).then(|| epoch(&r[c]));
                let interval = (
                    r["user_id"].as_str().map(str::to_owned),
                    text("service"),
                    text("session_id"),
                    text("state"),
                    epoch(&r["start"]),
                    epoch(&r["end"]),
                    time("start_earliest"),
                    time("end_latest"),
                    r["open"].as_bool().unwrap(),
                );
                (interval, exact(r))
            })
            .collect()
    };
    let expected = cli_json(&rig, &["connected", "--from", &from_cli, "--to", &to_cli, "--format", "json"]).await;
    assert!(expected.iter().any(|r| r["state"] == "connected"), "{expected:#?}");
    assert!(expected.iter().any(|r| r["state"] == "unknown"), "the failed run is a gap: {expected:#?}");
    let by_query = intervals(&rows, &|r| r["start_exact"].as_bool().unwrap() || r["end_exact"].as_bool().unwrap());
    let by_cli = intervals(&expected, &|r| !r["exact"].as_str().unwrap().is_empty());
    assert_eq!(by_query, by_cli);

    // AND the scopes: sessions, runs, quiet and failed runs per service, account and region
    let rows = athena(
        &copy,
        &named_query("AuditScopesQuery"),
        &[&from_text, &to_text, &from_text, &to_text, &from_text, &to_text],
    );
    let scopes = |rows: &[Json]| -> BTreeSet<(String, String, u64, u64, u64, u64)> {
        rows.iter()
            .map(|r| {
                let n = |c: &str| r[c].as_u64().unwrap_or(0);
                (
                    r["service"].as_str().unwrap().to_owned(),
                    r["account_id"].as_str().unwrap().to_owned(),
                    n("sessions"),
                    n("runs"),
                    n("quiet_runs"),
                    n("failed_runs"),
                )
            })
            .collect()
    };
    let expected = cli_json(&rig, &["scopes", "--from", &from_cli, "--to", &to_cli, "--format", "json"]).await;
    assert_eq!(scopes(&rows), scopes(&expected));
}

#[tokio::test]
async fn the_concurrency_plot_is_an_svg_and_a_png_with_one_series_per_service() {
    // GIVEN three runs of two services
    let rig = Rig::start(small_world()).await;
    let services = [ServiceId::IvsStreamSessions, ServiceId::ChimeProxySessions];
    let mut moments = Vec::new();
    for service in services {
        moments.extend(archive_with_churn(&rig, service).await);
    }
    let dir = std::env::temp_dir().join(format!("session-audit-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("concurrency");
    let from = first_day(&moments);
    let from = from.as_str();

    // WHEN the plot is drawn
    let written = audit(&rig, &["plot", "concurrency", "--from", from, "--out", out.to_str().unwrap()]).await.unwrap();

    // THEN the SVG names each service in its legend and draws one line per service
    assert!(written.contains("concurrency.svg") && written.contains("concurrency.png"));
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "not an SVG");
    for service in services {
        assert!(svg.contains(service.as_str()), "legend names {service}");
    }
    assert!(svg.matches("<polyline").count() >= services.len(), "one line per service");
    // AND the PNG decodes, at the plot's size, with each series' colour in it
    let (width, height, png) = pixels(&out.with_extension("png"));
    assert_eq!((width, height), (1000, 500));
    let rgb: BTreeSet<[u8; 3]> = png.iter().copied().collect();
    for index in 0..services.len() {
        let c = session_audit::plot::series_color(index);
        assert!(rgb.contains(&[c.0, c.1, c.2]), "series {index} is drawn");
    }
    // AND the PNG has its text: the title's band above the plot holds dark glyphs
    let title_band = &png[..1000 * 45];
    let dark = title_band.iter().filter(|p| p.iter().all(|c| *c < 100)).count();
    assert!(dark > 200, "{dark} dark pixels in the title band: no title drawn");
    // AND the SVG says what it shows: its title, its axes with their units, distinct time labels
    assert!(svg.contains("Concurrent sessions per service"), "a title");
    assert!(svg.contains("time (UTC)") && svg.contains("concurrent sessions"), "axes with units");
    let texts: Vec<&str> =
        svg.split("<text").skip(1).filter_map(|t| Some(t.split('>').nth(1)?.split('<').next()?.trim())).collect();
    let times: Vec<&&str> = texts.iter().filter(|t| t.len() >= 5 && t.as_bytes()[2] == b':').collect();
    let distinct: BTreeSet<&&&str> = times.iter().collect();
    assert!(!times.is_empty() && distinct.len() == times.len(), "distinct x labels: {times:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn hashed_user_ids_are_found_by_their_clear_value_with_the_key() {
    // GIVEN pool sessions archived with user ids hashed
    let mut rig = Rig::start(small_world()).await;
    let policy = PersonalDataPolicy::parse("user_id=hash").unwrap();
    rig.config.personal_data = PersonalData::new(policy, Some(KEY.as_bytes().to_vec())).unwrap();
    let service = ServiceId::WorkspacesPoolSessions;
    let moments = archive_with_churn(&rig, service).await;
    let user = moments[2].sessions.iter().find_map(|s| s.user_id.clone()).unwrap();
    let key_file = std::env::temp_dir().join(format!("session-audit-key-{}", std::process::id()));
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let from = first_day(&moments);
    let from = from.as_str();

    // WHEN the auditor searches for the user in clear, without and with the key
    let without =
        json_rows(&audit(&rig, &["sessions", "--from", from, "--user", &user, "--format", "json"]).await.unwrap());
    let key = key_file.to_str().unwrap();
    let with = json_rows(
        &audit(&rig, &["sessions", "--from", from, "--user", &user, "--key-file", key, "--format", "json"])
            .await
            .unwrap(),
    );

    // THEN the history holds no clear user id, and only the key finds the user's sessions
    assert!(without.is_empty());
    let expected: BTreeSet<String> = moments[2]
        .sessions
        .iter()
        .filter(|s| s.user_id.as_deref() == Some(user.as_str()))
        .map(|s| s.id.clone())
        .collect();
    assert!(!expected.is_empty());
    assert!(expected.is_subset(&ids(&with)), "{expected:?} in {:?}", ids(&with));
    assert!(with.iter().all(|r| r["user_id"].as_str().unwrap().len() == 64));
}

fn binary() -> PathBuf {
    archiver_e2e::lambda::LocalFunction::binary("session-audit")
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    // GIVEN a bucket with one run's history and one corrupt object: a line of the schema, then one
    // that is not JSON
    let rig = Rig::start(small_world()).await;
    let moments = archive_with_churn(&rig, ServiceId::IvsStreamSessions).await;
    let from = first_day(&moments);
    let corrupt_key = format!("history/snapshots/chime-proxy-sessions/dt={from}/corrupt.jsonl.gz");
    let chime = session_compaction::columns::Dataset {
        service: ServiceId::ChimeProxySessions,
        kind: session_archiver::history::HistoryKind::Snapshots,
    };
    let given = [("snapshot_at", "2026-11-22T10:00:00Z"), ("run_id", "r"), ("account_id", "123456789012")];
    let given =
        [&given[..], &[("region", "us-east-1"), ("service", "chime-proxy-sessions"), ("session_id", "s")]].concat();
    let line: serde_json::Map<String, Json> = chime
        .columns()
        .iter()
        .map(|c| {
            (c.name.to_owned(), given.iter().find(|(n, _)| *n == c.name).map_or(Json::Null, |(_, v)| Json::from(*v)))
        })
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, format!("{}\nnot json\n", Json::Object(line)).as_bytes()).unwrap();
    rig.aws.put_object(&corrupt_key, gz.finish().unwrap()).await;
    let url = moto_url(&rig);
    let base = ["--bucket", BUCKET, "--endpoint-url", url.as_str(), "--bucket-region", "us-east-1"];
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (vec!["sessions", "--service", "ec2-instances"], 2, "unknown service `ec2-instances`".into()),
        (vec!["sessions", "--from", "2026-11-22", "--to", "2026-11-01"], 2, "the time range is reversed".into()),
        (vec!["sessions", "--from", "last tuesday"], 2, "--from `last tuesday` is not a time".into()),
        (vec!["active-at", "noon"], 2, "the instant `noon` is not a time".into()),
        (vec!["sessions", "--account", "alpha"], 2, "--account `alpha` is not an account id (12 digits)".into()),
        (vec!["scopes", "--region", "Europe"], 2, "--region `Europe` is not a region name like eu-west-1".into()),
        (vec!["sessions", "--bucket", "no-such-bucket"], 1, "bucket no-such-bucket: no such bucket".into()),
        (
            vec!["report", "--from", from.as_str(), "--out", "/no/such/folder/report.html"],
            2,
            "--out /no/such/folder/report.html: no folder /no/such/folder".into(),
        ),
        (vec!["report", "--from", from.as_str(), "--out", "/tmp"], 2, "--out /tmp: is a folder".into()),
        (
            vec!["sessions", "--service", "chime-proxy-sessions", "--from", from.as_str()],
            1,
            format!("{corrupt_key} line 2: not JSON"),
        ),
    ];
    for (args, code, expected) in cases {
        // WHEN the CLI is run with it
        let mut argv: Vec<&str> = base.to_vec();
        argv.extend(args.iter());
        let output = Command::new(binary())
            .args(&argv)
            .env("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN")
            .env("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret")
            .output()
            .unwrap();
        // THEN it exits non-zero, saying what is wrong
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// The pixels of a PNG (a plot, a screenshot): its size and each pixel's RGB, alpha left out.
fn pixels(path: &std::path::Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut bytes = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut bytes).unwrap();
    let step = info.color_type.samples();
    let rgb = bytes[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, rgb)
}

/// The part of the DOM inside the first element that `start` opens, up to `end`.
fn element<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let at = dom.find(start).unwrap_or_else(|| panic!("{start} is not in the page"));
    let rest = &dom[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test]
async fn the_report_opens_in_a_browser_with_every_user_interval_and_count() {
    use archiver_e2e::browser;
    // GIVEN three runs each of WorkSpaces connection status and pool sessions, with churn
    let rig = Rig::start(small_world()).await;
    let services = [ServiceId::WorkspacesConnectionStatus, ServiceId::WorkspacesPoolSessions];
    let mut moments = Vec::new();
    for service in services {
        moments.extend(archive_with_churn(&rig, service).await);
    }
    // AND a run of pool sessions that failed for its scope
    let failed = ScopeOutcome::Failed(session_archiver::Error::Config("the session API refused the call".into()));
    let pools = rig.scope(&rig.source(ServiceId::WorkspacesPoolSessions).await);
    let request = scheduled_now("audit-pools-failed");
    let bucket = rig.aws.history_bucket();
    write_runs(&bucket, "history", ServiceId::WorkspacesPoolSessions, &request, &[(&pools, failed)], &Timestamp::now())
        .await;
    let from = first_day(&moments);
    // AND the CLI's own answers for the range
    let connected = json_rows(&audit(&rig, &["connected", "--from", &from, "--format", "json"]).await.unwrap());
    let sessions = json_rows(&audit(&rig, &["sessions", "--from", &from, "--format", "json"]).await.unwrap());
    let mut per_user: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for row in connected.iter().filter(|r| r["state"] == "connected" && r["user_id"].is_string()) {
        let user = row["user_id"].as_str().unwrap().to_owned();
        let entry = per_user.entry(user).or_default();
        *entry = (entry.0 + 1, entry.1 + row["duration_seconds"].as_i64().unwrap());
    }
    assert!(per_user.len() >= 2, "the world has users connected: {connected:#?}");

    // WHEN the report is written and opened in Chromium
    let dir = std::env::temp_dir().join(format!("session-audit-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("report.html");
    audit(&rig, &["report", "--from", &from, "--out", out.to_str().unwrap()]).await.unwrap();
    let page = browser::open(&out, 2400, false);

    // THEN its script ran to the end with nothing on the console
    assert!(page.dom.contains(r#"<body data-state="ready">"#), "{}", &page.dom[..2000.min(page.dom.len())]);
    assert!(page.console.is_empty(), "console: {:#?}", page.console);
    // AND every user connected has a timeline row holding as many connected intervals as the CLI gives them
    for (user, (intervals, _)) in &per_user {
        let row = element(&page.dom, &format!(r#"<g class="gantt-row" data-user="{user}">"#), "</g>");
        assert_eq!(row.matches(r#"class="connected interval""#).count(), *intervals, "{user}: {row}");
        assert!(row.contains(r#"tabindex="0""#), "an interval is reached with the keyboard");
    }
    // AND the counts, the sessions table and the top user are the CLI's
    let count =
        |id: &str| element(&page.dom, &format!(r#"id="count-{id}""#), "</dd>").rsplit('>').next().unwrap().to_owned();
    assert_eq!(count("sessions"), sessions.len().to_string());
    assert_eq!(count("users"), per_user.len().to_string());
    assert_eq!(count("intervals"), per_user.values().map(|(n, _)| n).sum::<usize>().to_string());
    assert_eq!(count("failed"), "1");
    assert_eq!(page.dom.matches("<tr data-session=").count(), sessions.len());
    let most = per_user.iter().max_by_key(|(user, (_, seconds))| (*seconds, std::cmp::Reverse(*user))).unwrap().0;
    assert!(element(&page.dom, r#"id="top-users-rows""#, "</tr></tbody>").contains(&format!(r#"data-user="{most}""#)));
    // AND the failed run is named with its reason, each service has its concurrency line, the
    // day can be zoomed to
    assert!(element(&page.dom, r#"id="failed-runs""#, "</table>").contains("the session API refused the call"));
    for service in services {
        assert!(page.dom.contains(&format!(r#"data-service="{service}"></polyline>"#)), "{service}");
    }
    assert!(page.dom.contains(&format!(">{}</option>", moments.last().unwrap().day)));
    // AND the screenshot is a drawn page, light; in the dark scheme, dark
    let (width, height, rgb) = pixels(&page.screenshot);
    assert_eq!((width, height), (1280, 2400));
    let background = rgb[0];
    let drawn = rgb.iter().filter(|p| **p != background).count();
    assert!(drawn * 100 > rgb.len() * 3, "{drawn} of {} pixels drawn", rgb.len());
    assert!(rgb.iter().collect::<BTreeSet<_>>().len() > 20, "more than a few colours");
    assert!(background.iter().all(|c| *c > 200), "light background: {background:?}");
    let dark = browser::open(&out, 800, true);
    assert!(dark.console.is_empty(), "console: {:#?}", dark.console);
    assert!(pixels(&dark.screenshot).2[0].iter().all(|c| *c < 60), "dark background");

    // WHEN a range without history is reported
    let empty = dir.join("empty.html");
    let args = ["report", "--from", "2020-01-01", "--to", "2020-01-02", "--out", empty.to_str().unwrap()];
    audit(&rig, &args).await.unwrap();
    let page = browser::open(&empty, 600, false);
    // THEN the page says so, and still runs cleanly
    assert!(page.dom.contains(r#"<body data-state="ready">"#));
    assert!(page.console.is_empty(), "console: {:#?}", page.console);
    let said = element(&page.dom, r#"id="empty""#, "</p>");
    assert!(!said.contains("hidden") && said.contains("No sessions and no runs in this range"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

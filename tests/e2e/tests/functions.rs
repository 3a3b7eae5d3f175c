//! The five real function binaries, driven through a local Lambda Runtime API with every sample
//! event in `events/`, writing to DynamoDB and S3 on moto and reading the emulator.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use archiver_e2e::api_of;
use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::stage::{events_dir, local_world, read_json, start_function, LocalStage};
use serde_json::Value as Json;
use session_archiver::ServiceId;
use session_emulator::SimSession;

fn sample_events(service: ServiceId) -> Vec<(String, Json)> {
    json_files(&events_dir().join(service.as_str()))
}

fn json_files(dir: &Path) -> Vec<(String, Json)> {
    let mut events: Vec<(String, Json)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), read_json(&path).unwrap()))
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events
}

async fn stage() -> LocalStage {
    LocalStage::start(local_world().unwrap()).await.expect("moto and the emulator start")
}

fn summary(outcome: Outcome, event: &str) -> Json {
    match outcome {
        Outcome::Response(summary) => summary,
        Outcome::Error { error_type, error_message } => panic!("{event}: {error_type}: {error_message}"),
    }
}

/// Whether `text` holds something like an E.164 phone number: `+` and at least 8 digits.
fn has_phone_number(text: &str) -> bool {
    text.split('+').skip(1).any(|after| after.bytes().take_while(u8::is_ascii_digit).count() >= 8)
}

/// The sessions a replay's options select, by the emulator's own record.
fn selected(truth: &[SimSession], options: &Json) -> Option<BTreeSet<String>> {
    let keep = |s: &SimSession| {
        let list =
            |name: &str| options[name].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>());
        list("parents").is_none_or(|p| s.parent.as_deref().is_some_and(|parent| p.contains(&parent)))
            && list("workspace_ids").is_none_or(|ids| ids.contains(&s.id.as_str()))
            && options["user_id"].as_str().is_none_or(|u| s.user_id.as_deref() == Some(u))
            && options["proxy_status"].as_str().is_none_or(|st| s.status == st)
            && options["stream_status"].as_str().is_none_or(|st| s.status == st)
    };
    // The export status is not in the emulator's record: checked on the lines instead.
    options
        .get("export_files_status")
        .is_none()
        .then(|| truth.iter().filter(|s| keep(s)).map(|s| s.id.clone()).collect())
}

#[tokio::test]
async fn every_function_archives_with_every_sample_event_through_the_runtime_api() {
    let stage = stage().await;
    for service in ServiceId::ALL {
        let mut function = stage.function(service).await.unwrap();
        let truth = stage.emulator.sessions(api_of(service));
        stage.emulator.reset_calls();
        for (name, event) in sample_events(service) {
            let keys_before = stage.aws.keys("history/").await;
            let items_before = stage.aws.sessions().await;

            // WHEN the function is invoked with the sample event
            let outcome = function.invoke(event.clone()).await.unwrap_or_else(|e| panic!("{service} {name}: {e}"));
            let summary = summary(outcome, &name);

            // THEN the summary is a run summary of this service
            assert_eq!(summary["service"], service.as_str(), "{name}");
            let replay = &event["replay"];
            let run_id = replay["id"].as_str().or(event["id"].as_str()).unwrap();
            assert_eq!(summary["run_id"], run_id);
            if replay["dry_run"] == Json::Bool(true) {
                // AND a dry run reports every session and writes nothing
                assert_eq!(summary["outcome"], "dry_run", "{name}");
                assert_eq!(summary["sessions"], truth.len(), "{service} {name}");
                assert_eq!(stage.aws.keys("history/").await, keys_before, "{name} wrote objects");
                assert_eq!(stage.aws.sessions().await, items_before, "{name} wrote items");
                continue;
            }
            assert_eq!(summary["outcome"], "complete", "{service} {name}: {summary}");
            let snapshot_key = summary["s3_keys"][0].as_str().unwrap();
            assert!(snapshot_key.starts_with(&format!("history/snapshots/{service}/dt=")), "{snapshot_key}");
            assert!(snapshot_key.ends_with(&format!("/123456789012.us-east-1.{run_id}.jsonl.gz")), "{snapshot_key}");
            let lines = stage.aws.read(snapshot_key).await.lines;
            let listed: BTreeSet<String> = lines.iter().map(|l| l["session_id"].as_str().unwrap().to_owned()).collect();
            assert_eq!(summary["sessions"], lines.len(), "{name}");

            // AND the snapshot holds exactly the sessions the event selects
            let options = &replay["options"];
            match selected(&truth, options) {
                Some(expected) => assert_eq!(listed, expected, "{service} {name}"),
                None => {
                    let status = options["export_files_status"].as_str().unwrap();
                    assert!(lines.iter().all(|l| l["export_files_status"] == status), "{name}");
                }
            }
            // AND phone numbers are hashed (HMAC-SHA256, hex) in the history, by default
            for line in &lines {
                assert!(!has_phone_number(&Json::Object(line.clone()).to_string()), "{name}: {line:?}");
                for column in ["participant_phone_numbers", "participant_proxy_phone_numbers"] {
                    for hashed in line.get(column).and_then(Json::as_array).into_iter().flatten() {
                        let hashed = hashed.as_str().unwrap();
                        assert!(hashed.len() == 64 && hashed.bytes().all(|b| b.is_ascii_hexdigit()), "{hashed}");
                    }
                }
            }
            // AND every listed session is in the table with the line's state
            let items = stage.aws.sessions().await;
            for line in &lines {
                let item = &items[line["session_id"].as_str().unwrap()];
                assert_eq!(item["record_hash"].as_s().unwrap(), line["record_hash"].as_str().unwrap(), "{name}");
            }
        }
        // AND it called only the operations its IAM policy grants (the template test ties the two)
        let granted: Vec<String> =
            service.iam_actions().iter().map(|a| a.split(':').nth(1).unwrap().to_owned()).collect();
        for (operation, counts) in stage.emulator.calls() {
            assert!(
                counts.calls == 0 || granted.contains(&operation),
                "{service} called {operation}, not in {granted:?}"
            );
        }
        // AND the function logged JSON lines, as Lambda's advanced logging expects
        let log = function.log();
        assert!(!log.is_empty());
        for line in &log {
            serde_json::from_str::<Json>(line)
                .unwrap_or_else(|e| panic!("{service}: a log line is not JSON ({e}): {line}"));
        }
        // AND no user id or phone number of the account is anywhere in them
        let user_ids: BTreeSet<String> = truth.iter().filter_map(|s| s.user_id.clone()).collect();
        assert!(service != ServiceId::WorkspacesPoolSessions || !user_ids.is_empty());
        for line in &log {
            assert!(!has_phone_number(line), "{service} logged a phone number: {line}");
            for user in &user_ids {
                assert!(!line.contains(user.as_str()), "{service} logged user {user}: {line}");
            }
        }
    }
}

#[tokio::test]
async fn every_invalid_event_gets_an_error_response_and_writes_nothing() {
    let stage = stage().await;
    let invalid = json_files(&events_dir().join("invalid"));
    let mut refused = 0;
    for service in ServiceId::ALL {
        let mut function = stage.function(service).await.unwrap();
        // Events every function refuses, and events only this service refuses (its parents' ids,
        // its filters).
        let own = json_files(&events_dir().join("invalid").join(service.as_str()));
        assert!(!own.is_empty(), "{service} has its own invalid events");
        for (name, event) in invalid.iter().chain(&own) {
            // WHEN the function is invoked with a bad event
            let outcome = function.invoke(event.clone()).await.unwrap_or_else(|e| panic!("{service} {name}: {e}"));
            // THEN Lambda gets an error that says a retry cannot help, and why
            match outcome {
                Outcome::Error { error_type, error_message } => {
                    assert_eq!(error_type, "NonRetryable.InvalidEvent", "{service} {name}: {error_message}");
                    assert!(error_message.starts_with("invalid event: "), "{name}: {error_message}");
                }
                Outcome::Response(summary) => panic!("{service} {name} was accepted: {summary}"),
            }
            refused += 1;
        }
        // AND each refusal is logged once, on one line saying what failed and why
        let errors: Vec<String> =
            function.log().into_iter().filter(|line| line.contains("\"level\":\"ERROR\"")).collect();
        assert_eq!(errors.len(), invalid.len() + own.len(), "{service}: {errors:#?}");
        for line in &errors {
            assert!(
                line.contains("invocation failed (NonRetryable.InvalidEvent, not retryable): invalid event: "),
                "{line}"
            );
        }
    }
    assert!(invalid.len() >= 25 && refused >= 5 * invalid.len() + 7, "{} events, {refused} refusals", invalid.len());
    // AND nothing was written anywhere, and the emulator was never called
    assert!(stage.aws.scan().await.is_empty());
    assert!(stage.aws.keys("").await.is_empty());
    assert!(stage.emulator.calls().values().all(|c| c.calls == 0), "{:?}", stage.emulator.calls());
}

#[test]
fn a_malformed_event_file_is_refused_naming_the_file_and_the_place() {
    // Lambda itself refuses a payload that is not JSON; the files `make invoke` sends are read here.
    for (file, expected) in [("truncated.json", "EOF while parsing"), ("trailing-comma.json", "trailing comma")] {
        let path = events_dir().join("invalid/malformed").join(file);
        let err = read_json(&path).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(expected) && err.contains("line "), "{err}");
    }
}

#[tokio::test]
async fn each_bad_configuration_stops_the_function_before_it_reads_anything_naming_the_variable() {
    let stage = stage().await;
    // GIVEN a valid environment with one variable wrong (or missing)
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("TABLE_NAME", None, "TABLE_NAME is not set"),
        ("BUCKET_NAME", None, "BUCKET_NAME is not set"),
        ("TABLE_NAME", Some("a b"), "TABLE_NAME=`a b` is not a DynamoDB table name"),
        ("BUCKET_NAME", Some("My_Bucket"), "BUCKET_NAME=`My_Bucket` is not an S3 bucket name"),
        ("ENDED_RETENTION_DAYS", Some("ninety"), "ENDED_RETENTION_DAYS=`ninety` is not a whole number"),
        ("ENDED_RETENTION_DAYS", Some("0"), "ENDED_RETENTION_DAYS=0 is out of range: 1 to 3650"),
        ("LEASE_SECONDS", Some("10"), "LEASE_SECONDS=10 is out of range: 60 to 86400"),
        ("MAX_CALLS_PER_SECOND", Some("-1"), "MAX_CALLS_PER_SECOND=`-1` is not a whole number"),
        ("MAX_CALLS_PER_SECOND", Some("5000"), "MAX_CALLS_PER_SECOND=5000 is out of range: 0 to 1000"),
        ("MAX_CONCURRENT_LISTINGS", Some("0"), "MAX_CONCURRENT_LISTINGS=0 is out of range: 1 to 64"),
        ("PAGE_SIZE", Some("0"), "page_size 0 is out of range for ivs-stream-sessions: 1 to 100"),
        ("SOURCE_OPTIONS", Some("{\"parent\": []}"), "SOURCE_OPTIONS is not valid: unknown field `parent`"),
        ("DEADLINE_MARGIN_SECONDS", Some("900"), "DEADLINE_MARGIN_SECONDS=900 is out of range: 1 to 600"),
        ("PERSONAL_DATA", Some("email=hash"), "`email` is not a personal-data column"),
        ("PERSONAL_DATA_KEY_SECRET", None, "PERSONAL_DATA_KEY_SECRET is not set"),
        (
            "PERSONAL_DATA_KEY_SECRET",
            Some("no-such-secret"),
            "Secrets Manager GetSecretValue on secret no-such-secret failed: ResourceNotFoundException",
        ),
        ("STORAGE_ENDPOINT_URL", Some("localhost:4566"), "STORAGE_ENDPOINT_URL=`localhost:4566` is not an http(s) URL"),
        ("HISTORY_PREFIX", Some("a/../b"), "history prefix `a/../b`"),
    ];
    let service = ServiceId::IvsStreamSessions;
    let event = read_json(&events_dir().join(service.as_str()).join("scheduled.json")).unwrap();
    for (variable, value, expected) in cases {
        let mut env: Vec<(String, String)> = stage.function_env().into_iter().filter(|(k, _)| k != variable).collect();
        if let Some(value) = value {
            env.push(((*variable).to_owned(), (*value).to_owned()));
        }
        let mut function = start_function(service, &env, Duration::from_secs(30)).await.unwrap();
        // WHEN it is invoked
        let message = match function.invoke(event.clone()).await {
            Err(err) => err.to_string(),
            // The key secret is read in the background from cold start: a read that fails
            // fails the invocation that waits for it, as a configuration error.
            Ok(Outcome::Error { error_type, error_message }) if *variable == "PERSONAL_DATA_KEY_SECRET" => {
                assert!(error_type.ends_with(".Storage"), "{error_type}");
                error_message
            }
            Ok(outcome) => panic!("{variable}: the function ran: {outcome:?}"),
        };
        // THEN it never ran: the process ended (or the invocation failed), saying which
        // variable is wrong
        assert!(message.contains(expected), "{variable}: {message}");
    }
    // AND nothing was read or written
    assert!(stage.aws.scan().await.is_empty());
    assert!(stage.aws.keys("").await.is_empty());
    assert!(stage.emulator.calls().values().all(|c| c.calls == 0));
}

/// A stage whose GameLift account and Chime connectors need many slow pages.
async fn slow_stage(operation: &str, latency_ms: u64) -> LocalStage {
    let world = session_emulator::EmulatorConfig {
        gamelift_stream_sessions: session_emulator::Shape::account(1200),
        chime_proxy_sessions: session_emulator::Shape::new(3, 300, 0),
        ..local_world().unwrap()
    };
    let stage = LocalStage::start(world).await.unwrap();
    stage.emulator.set_faults(operation, session_emulator::FaultPlan { latency_ms, ..Default::default() });
    stage
}

/// The session ids of every line of a run's history of one kind, over all its parts.
async fn run_history(stage: &LocalStage, kind: &str, service: ServiceId, run_id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for key in stage.aws.keys(&format!("history/{kind}/{service}/")).await {
        if key.contains(&format!("/123456789012.us-east-1.{run_id}.")) {
            let lines = stage.aws.read(&key).await.lines;
            ids.extend(lines.iter().map(|l| l["session_id"].as_str().unwrap().to_owned()));
        }
    }
    ids
}

fn assert_each_once(ids: &[String], truth: &BTreeSet<String>, what: &str) {
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "{what}: a session line twice");
    assert_eq!(&unique, truth, "{what}");
}

/// The GameLift function with a 10 s timeout that stops paging 6 s before its deadline (and
/// gives up waiting 5 s before it), with `extra` variables.
async fn deadline_function(stage: &LocalStage, extra: &[(&str, &str)]) -> LocalFunction {
    let mut env = stage.function_env();
    env.push(("DEADLINE_MARGIN_SECONDS".into(), "6".into()));
    env.push(("SDK_ATTEMPT_TIMEOUT_SECONDS".into(), "2".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    start_function(ServiceId::GameliftStreamSessions, &env, Duration::from_secs(10)).await.unwrap()
}

/// Invokes `function` with the scheduled event until its run completes (at most 20 times): the
/// event's run id and each invocation's outcome, checked to be `partial` until the last.
async fn invoke_until_complete(function: &mut LocalFunction, service: ServiceId) -> (String, Vec<String>) {
    let event = read_json(&events_dir().join(service.as_str()).join("scheduled.json")).unwrap();
    let run_id = event["id"].as_str().unwrap().to_owned();
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let summary = summary(function.invoke(event.clone()).await.unwrap(), "scheduled.json");
        outcomes.push(summary["outcome"].as_str().unwrap().to_owned());
        assert_eq!(summary["run_id"], run_id.as_str());
        if summary["outcome"] == "complete" {
            break;
        }
    }
    assert!(outcomes.len() >= 2, "{outcomes:?}");
    assert_eq!(outcomes.last().map(String::as_str), Some("complete"), "{outcomes:?}");
    assert!(outcomes[..outcomes.len() - 1].iter().all(|o| o == "partial"), "{outcomes:?}");
    (run_id, outcomes)
}

/// The table holds the emulator's sessions, and the run's history each session once.
async fn assert_run_converged(stage: &LocalStage, service: ServiceId, run_id: &str) {
    let truth: BTreeSet<String> = stage.emulator.sessions(api_of(service)).into_iter().map(|s| s.id).collect();
    let items: BTreeSet<String> = stage.aws.sessions().await.into_keys().collect();
    assert_eq!(items, truth);
    assert_each_once(&run_history(stage, "snapshots", service, run_id).await, &truth, "snapshots");
    assert_each_once(&run_history(stage, "changes", service, run_id).await, &truth, "changes");
}

#[tokio::test]
async fn the_lambda_deadline_makes_a_run_partial_and_the_next_invocations_carry_it_on() {
    // GIVEN a GameLift account that takes many slow pages, and a function whose deadline comes
    // long before the last page
    let service = ServiceId::GameliftStreamSessions;
    let stage = slow_stage(service.list_operation(), 400).await;
    let mut function = deadline_function(&stage, &[]).await;

    // WHEN the schedule invokes it again and again
    let (run_id, outcomes) = invoke_until_complete(&mut function, service).await;

    // THEN the first invocations return `partial`, the last `complete` (checked above), and the
    // table and the run's history hold every session once
    assert_run_converged(&stage, service, &run_id).await;
    // AND the progress fitted its item: no progress object was needed; the listing's state (the
    // parts' carries, then its state) is the scope's one state object
    assert!(stage.aws.keys("state/progress/").await.is_empty());
    assert_eq!(stage.aws.keys("state/listings/").await.len(), 1);
    // AND the partial invocations were counted as such in the metrics
    let partial_metrics = function.log().iter().filter(|l| l.contains("\"PartialRuns\":1")).count();
    assert_eq!(partial_metrics, outcomes.len() - 1);
}

#[tokio::test]
async fn an_account_wide_listing_whose_progress_outgrows_its_item_resumes_from_s3_and_converges() {
    // GIVEN the GameLift account of many slow pages, and progress items that hold at most 1 KiB
    // (standing in for the 400 KB of DynamoDB that about 42,000 seen sessions outgrow)
    let service = ServiceId::GameliftStreamSessions;
    let stage = slow_stage(service.list_operation(), 400).await;
    let mut function = deadline_function(&stage, &[("PROGRESS_INLINE_BYTES", "1024")]).await;

    // WHEN the schedule invokes it again and again
    let (run_id, outcomes) = invoke_until_complete(&mut function, service).await;

    // THEN each partial part kept the run's place in an object of its own under the state prefix
    let objects = stage.aws.keys("state/progress/").await;
    assert_eq!(objects.len(), outcomes.len() - 1, "{objects:?}");
    let run_objects = format!("state/progress/{service}/123456789012.us-east-1/{run_id}.");
    assert!(objects.iter().all(|k| k.starts_with(&run_objects) && k.ends_with(".json.gz")), "{objects:?}");
    // AND the run converged: table == truth, each session once in the run's snapshot and changes
    assert_run_converged(&stage, service, &run_id).await;
}

#[tokio::test]
async fn a_function_killed_mid_run_and_invoked_again_converges() {
    // GIVEN Chime proxy sessions listed slowly, and a function archiving them
    let service = ServiceId::ChimeProxySessions;
    let stage = slow_stage(service.list_operation(), 60).await;
    let mut function = stage.function(service).await.unwrap();
    let event = read_json(&events_dir().join(service.as_str()).join("scheduled.json")).unwrap();
    let run_id = event["id"].as_str().unwrap().to_owned();

    // WHEN its process is killed once it has written its first items
    tokio::select! {
        outcome = function.invoke(event.clone()) => panic!("the run ended before the kill: {outcome:?}"),
        () = async {
            while stage.aws.sessions().await.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }
    let killed_request = function.last_request_id();
    function.kill().await;
    assert!(!stage.aws.sessions().await.is_empty());
    // AND Lambda retries the event on a new process, under the same request id, while the
    // killed attempt's lease has not expired
    let mut retry = stage.function(service).await.unwrap();
    let outcome = retry.invoke_as(killed_request.unwrap(), event).await.unwrap();
    let summary = summary(outcome, "scheduled.json (retry)");

    // THEN the retried run completes under the same run id
    assert_eq!((summary["outcome"].as_str(), summary["run_id"].as_str()), (Some("complete"), Some(run_id.as_str())));
    // AND the table holds every session, and the run's history each session once, opened once
    let truth: BTreeSet<String> = stage.emulator.sessions(api_of(service)).into_iter().map(|s| s.id).collect();
    let items: BTreeSet<String> = stage.aws.sessions().await.into_keys().collect();
    assert_eq!(items, truth);
    assert_each_once(&run_history(&stage, "snapshots", service, &run_id).await, &truth, "snapshots");
    assert_each_once(&run_history(&stage, "changes", service, &run_id).await, &truth, "changes");
    assert_eq!(stage.aws.open_uploads().await, 0);
}

#[tokio::test]
async fn a_scope_without_sessions_writes_a_runs_line_a_run_and_no_history_object() {
    // GIVEN an account whose IVS has one channel and no session
    let world = session_emulator::EmulatorConfig {
        ivs_stream_sessions: session_emulator::Shape::new(0, 0, 1),
        ..local_world().unwrap()
    };
    let stage = LocalStage::start(world).await.unwrap();
    let mut function = stage.function(ServiceId::IvsStreamSessions).await.unwrap();
    let mut event = read_json(&events_dir().join("ivs-stream-sessions/scheduled.json")).unwrap();

    // WHEN two schedules run, five minutes apart
    let mut summaries = Vec::new();
    for (id, time) in [("evt-empty-1", "2026-11-22T10:00:00Z"), ("evt-empty-2", "2026-11-22T10:05:00Z")] {
        (event["id"], event["time"]) = (id.into(), time.into());
        summaries.push(summary(function.invoke(event.clone()).await.unwrap(), id));
    }

    // THEN both complete, the second quiet, and neither wrote a history object
    let quiet: Vec<bool> = summaries.iter().map(|s| s["quiet"].as_bool().unwrap_or(false)).collect();
    assert_eq!(quiet, [false, true], "{summaries:?}");
    assert!(summaries.iter().all(|s| s["outcome"] == "complete"), "{summaries:?}");
    for kind in ["snapshots", "changes"] {
        assert_eq!(stage.aws.keys(&format!("history/{kind}/")).await, Vec::<String>::new(), "{kind}");
    }
    // AND the quiet run wrote nothing in the table either: one manifest, the first run's
    let manifests =
        stage.aws.scan().await.iter().filter(|i| i["pk"].as_s().is_ok_and(|pk| pk.starts_with("RUN#"))).count();
    assert_eq!(manifests, 1);
    // AND each run has its line in the runs dataset, which DuckDB reads by day
    let runs = stage.aws.keys("history/runs/ivs-stream-sessions/dt=2026-11-22/").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let copy = std::env::temp_dir().join(format!("runs-{}", std::process::id()));
    for key in &runs {
        let path = copy.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, stage.aws.bytes(key).await).unwrap();
    }
    let answer = archiver_e2e::duckdb(
        &copy,
        "SELECT run_id, status, quiet, sessions, api_calls, error_kind, dt \
         FROM read_json_auto('{root}/history/runs/*/*/*.jsonl.gz', hive_partitioning = true) ORDER BY run_id",
    );
    assert_eq!(
        answer,
        "evt-empty-1\tcomplete\tFalse\t0\t2\tNone\t2026-11-22\nevt-empty-2\tcomplete\tTrue\t0\t2\tNone\t2026-11-22"
    );
    std::fs::remove_dir_all(&copy).ok();
}

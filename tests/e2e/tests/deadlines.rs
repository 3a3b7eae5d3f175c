//! An operator's bad day, through the real function binaries and a local Lambda Runtime API:
//! storage that goes silent or refuses connections mid-run, and one event delivered twice at the
//! same moment. Each invocation answers before its deadline, and the next one converges.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archiver_e2e::api_of;
use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::stage::{events_dir, local_world, read_json, start_function, LocalStage};
use archiver_e2e::CutProxy;
use serde_json::Value as Json;
use session_archiver::table::RunStatus;
use session_archiver::ServiceId;

const SERVICE: ServiceId = ServiceId::ChimeProxySessions;

/// Chime proxy sessions over three voice connectors, listed slowly: a run that lasts a few
/// seconds, writing as it goes.
async fn slow_stage() -> LocalStage {
    let world = session_emulator::EmulatorConfig {
        chime_proxy_sessions: session_emulator::Shape::new(3, 300, 0),
        ..local_world().unwrap()
    };
    let stage = LocalStage::start(world).await.unwrap();
    let slow = session_emulator::FaultPlan { latency_ms: 60, ..Default::default() };
    stage.emulator.set_faults(SERVICE.list_operation(), slow);
    stage
}

/// A slow stage and its function, whose DynamoDB, S3 and Secrets Manager calls go through a
/// proxy in front of moto, with these settings and Lambda timeout.
async fn function_behind_proxy(
    settings: &[(&str, &str)],
    timeout: Duration,
) -> (LocalStage, Arc<CutProxy>, LocalFunction) {
    let stage = slow_stage().await;
    let moto = stage.moto.url();
    let proxy = Arc::new(CutProxy::start(moto.trim_start_matches("http://").parse().unwrap()).await.unwrap());
    let mut env: Vec<(String, String)> =
        stage.function_env().into_iter().filter(|(name, _)| name != "STORAGE_ENDPOINT_URL").collect();
    env.push(("STORAGE_ENDPOINT_URL".into(), proxy.url()));
    env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let function = start_function(SERVICE, &env, timeout).await.unwrap();
    (stage, proxy, function)
}

/// Invokes `event` and, once the run has written its first items, calls `turn` (which turns the
/// proxy against the run); the function's answer and when the invocation started.
async fn invoke_and_then(
    function: &mut LocalFunction,
    stage: &LocalStage,
    event: Json,
    turn: impl FnOnce(),
) -> (Outcome, Instant) {
    let started = Instant::now();
    let (outcome, ()) = tokio::join!(function.invoke(event), async {
        first_items_written(stage).await;
        turn();
    });
    (outcome.unwrap(), started)
}

fn scheduled(id: &str) -> Json {
    let mut event = read_json(&events_dir().join(SERVICE.as_str()).join("scheduled.json")).unwrap();
    event["id"] = Json::from(id);
    event["time"] = Json::from(session_archiver::model::Timestamp::now().as_str());
    event
}

/// Waits until the run has written its first session items.
async fn first_items_written(stage: &LocalStage) {
    while stage.aws.sessions().await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn error_of(outcome: Outcome) -> (String, String) {
    match outcome {
        Outcome::Error { error_type, error_message } => (error_type, error_message),
        Outcome::Response(summary) => panic!("the run did not fail: {summary}"),
    }
}

fn summary_of(outcome: Outcome) -> Json {
    match outcome {
        Outcome::Response(summary) => summary,
        Outcome::Error { error_type, error_message } => panic!("{error_type}: {error_message}"),
    }
}

async fn lease_items(stage: &LocalStage) -> Vec<aws_sdk_dynamodb::types::AttributeValue> {
    let items = stage.aws.scan().await;
    items
        .into_iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("LEASE#"))
        .map(|i| i["expires_at"].clone())
        .collect()
}

/// The table holds the emulator's sessions, and the run's history each of them once, opened.
async fn assert_converged(stage: &LocalStage, run_id: &str) {
    let truth: BTreeSet<String> = stage.emulator.sessions(api_of(SERVICE)).into_iter().map(|s| s.id).collect();
    let items: BTreeSet<String> = stage.aws.sessions().await.into_keys().collect();
    assert_eq!(items, truth, "the table");
    for kind in ["snapshots", "changes"] {
        let mut ids = Vec::new();
        for key in stage.aws.keys(&format!("history/{kind}/{SERVICE}/")).await {
            if key.contains(&format!("/123456789012.us-east-1.{run_id}.")) {
                ids.extend(
                    stage.aws.read(&key).await.lines.iter().map(|l| l["session_id"].as_str().unwrap().to_owned()),
                );
            }
        }
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!((unique.len(), &unique), (ids.len(), &truth), "{kind} of {run_id}: each session once");
    }
}

#[tokio::test]
async fn storage_going_silent_mid_run_fails_in_time_records_the_failure_and_the_next_run_converges() {
    // GIVEN a function whose storage calls go through a proxy, each attempt bounded to 1 s and
    // each call to 4 s, with 20 s to run
    let settings = [
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "4"),
        ("DEADLINE_MARGIN_SECONDS", "8"),
    ];
    let timeout = Duration::from_secs(20);
    let (stage, proxy, mut function) = function_behind_proxy(&settings, timeout).await;

    // WHEN DynamoDB and S3 go silent for 6 s once the run has written its first items
    let silence = || proxy.stall_for(Duration::from_secs(6));
    let (outcome, started) = invoke_and_then(&mut function, &stage, scheduled("evt-silent"), silence).await;

    // THEN the invocation answers before its deadline with a retryable storage error
    let (error_type, message) = error_of(outcome);
    assert!(started.elapsed() < timeout, "answered after {:?}", started.elapsed());
    assert_eq!(error_type, "Retryable.Storage", "{message}");
    assert!(message.contains("TimeoutError"), "{message}");
    // AND the failure is recorded once storage answers again: manifest failed, lease released,
    // no upload left open
    let manifests = stage.aws.manifests().await;
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].status, RunStatus::Failed, "{:?}", manifests[0]);
    assert!(manifests[0].error.as_deref().unwrap().contains("TimeoutError"));
    let leases = lease_items(&stage).await;
    assert!(leases.iter().all(|expires_at| expires_at.as_n().unwrap() == "0"), "the lease was given back: {leases:?}");
    assert_eq!(stage.aws.open_uploads().await, 0);

    // WHEN the next schedule comes
    let next = summary_of(function.invoke(scheduled("evt-after-silence")).await.unwrap());
    // THEN it completes, and every session is in the table and once in its history
    assert_eq!(next["outcome"], "complete", "{next}");
    assert_converged(&stage, "evt-after-silence").await;
}

#[tokio::test]
async fn storage_silent_past_the_give_up_time_ends_the_invocation_before_its_deadline_and_the_next_one_takes_over() {
    // GIVEN a function whose storage calls retry for as long as they may (1 s attempts, 60 s
    // calls), with 12 s to run and 3 s kept to record a failure
    let settings = [
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "60"),
        ("SDK_MAX_ATTEMPTS", "20"),
        ("DEADLINE_MARGIN_SECONDS", "6"),
    ];
    let timeout = Duration::from_secs(12);
    let (stage, proxy, mut function) = function_behind_proxy(&settings, timeout).await;

    // WHEN DynamoDB and S3 go silent once the run has written its first items, and stay silent
    let (outcome, started) = invoke_and_then(&mut function, &stage, scheduled("evt-stuck"), || proxy.stall()).await;

    // THEN the invocation still answers before its deadline, with a retryable error
    let (error_type, message) = error_of(outcome);
    assert!(started.elapsed() < timeout, "answered after {:?}", started.elapsed());
    assert!(error_type.starts_with("Retryable."), "{error_type}: {message}");
    // AND the lease it could not give back expires at its deadline, not 16 minutes on
    proxy.restore();
    let deadline_s = session_archiver::model::Timestamp::now().epoch_seconds() + 2;
    let leases = lease_items(&stage).await;
    let expires_at: i64 = leases[0].as_n().unwrap().parse().unwrap();
    assert!(expires_at <= deadline_s, "the lease expires at {expires_at}, the deadline is by {deadline_s}");

    // WHEN the next schedule comes once the lease has expired (the deadline is counted from when
    // the function took the invocation, a little after `started`)
    while session_archiver::model::Timestamp::now().epoch_seconds() <= expires_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let next = summary_of(function.invoke(scheduled("evt-after-stuck")).await.unwrap());
    // THEN it takes the lease and converges: the stuck run's items are recorded again
    assert_eq!(next["outcome"], "complete", "{next}");
    assert_converged(&stage, "evt-after-stuck").await;
    assert_eq!(stage.aws.open_uploads().await, 0);
}

#[tokio::test]
async fn storage_refusing_connections_fails_well_inside_the_deadline_margin() {
    // GIVEN a function whose storage calls go through a proxy, 3 s at most a call, that stops
    // paging 12 s before its deadline
    let settings = [
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "2"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "3"),
        ("DEADLINE_MARGIN_SECONDS", "12"),
    ];
    let (stage, proxy, mut function) = function_behind_proxy(&settings, Duration::from_secs(40)).await;

    // WHEN storage starts refusing connections once the run has written its first items
    let mut cut_at = None;
    let cut = || {
        proxy.cut();
        cut_at = Some(Instant::now());
    };
    let (outcome, _) = invoke_and_then(&mut function, &stage, scheduled("evt-refused"), cut).await;

    // THEN the invocation answers `Retryable.Storage` within two calls' time (the failing one
    // and the failure path's), well inside the 12 s margin
    let answered_after = cut_at.unwrap().elapsed();
    let (error_type, message) = error_of(outcome);
    assert_eq!(error_type, "Retryable.Storage", "{message}");
    assert!(answered_after < Duration::from_secs(10), "answered {answered_after:?} after the cut");
    // AND nothing was left open in S3
    assert_eq!(stage.aws.open_uploads().await, 0);
}

#[tokio::test]
async fn two_deliveries_of_one_event_at_the_same_moment_run_it_once() {
    // GIVEN two warm execution environments of one function, as Lambda runs for two deliveries
    let stage = slow_stage().await;
    let mut first = stage.function(SERVICE).await.unwrap();
    let mut second = stage.function(SERVICE).await.unwrap();
    assert!(first.cold_init().await.is_some() && second.cold_init().await.is_some());
    let event = scheduled("evt-twice");

    // WHEN the same event reaches both, the second while the first is running it
    let (a, b) = tokio::join!(first.invoke(event.clone()), async {
        first_items_written(&stage).await;
        second.invoke(event).await
    });

    // THEN one runs it to completion and the other is skipped, naming the run in progress
    let mut summaries = [summary_of(a.unwrap()), summary_of(b.unwrap())];
    summaries.sort_by_key(|s| s["outcome"].as_str().unwrap().to_owned());
    let [complete, skipped] = summaries;
    assert_eq!((complete["outcome"].as_str(), skipped["outcome"].as_str()), (Some("complete"), Some("skipped")));
    assert_eq!(skipped["lease_held_by"], "evt-twice", "{skipped}");
    assert_eq!(skipped["sessions"], 0);
    // AND the service was paged through once, not twice
    let list_calls = stage.emulator.calls()[SERVICE.list_operation()].calls;
    assert_eq!(list_calls, complete["pages"].as_u64().unwrap(), "{complete}");
    // AND the table and the run's history hold every session once
    assert_converged(&stage, "evt-twice").await;
}

#[tokio::test]
async fn a_megabyte_id_is_refused_named_not_echoed_and_nothing_is_written() {
    // GIVEN a function, and events with a 1 MiB id
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    let mut function: LocalFunction = stage.function(SERVICE).await.unwrap();
    let huge = "a".repeat(1 << 20);
    let mut scheduled_event = scheduled("x");
    scheduled_event["id"] = Json::from(huge.as_str());
    let replay = serde_json::json!({"replay": {"id": huge}});
    for event in [scheduled_event, replay] {
        // WHEN it is invoked
        let (error_type, message) = error_of(function.invoke(event).await.unwrap());
        // THEN it is refused as an invalid event, the id cut short in the message
        assert_eq!(error_type, "NonRetryable.InvalidEvent");
        assert!(message.contains("run id `aaaa") && message.contains("(1048576 bytes)"), "{}", &message[..200]);
        assert!(message.len() < 1024, "{} bytes", message.len());
    }
    // AND no log line carries the id, and nothing was read or written
    assert!(function.log().iter().all(|line| line.len() < 4096), "a log line echoes the id");
    assert!(stage.aws.scan().await.is_empty());
    assert!(stage.aws.keys("").await.is_empty());
    assert!(stage.emulator.calls().values().all(|c| c.calls == 0));
}

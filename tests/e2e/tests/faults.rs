//! The fault suite: each case asserts convergence — the sessions in DynamoDB equal the emulator's
//! sessions, and the history of each run holds each session it listed exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use archiver_e2e::rig::{changes_by_kind, ids, request, set, text, Rig};
use session_archiver::run::{run, RunOutcome, RunSummary};
use session_archiver::table::RunStatus;
use session_archiver::ServiceId;
use session_emulator::{EmulatorConfig, FaultPlan, OddPage, Shape};

/// Several pages per listing in every API, several listings where the API has parents.
fn deep_world() -> EmulatorConfig {
    EmulatorConfig {
        seed: 11,
        pool_sessions: Shape::new(3, 120, 1),
        connection_status: Shape::account(130),
        ivs_stream_sessions: Shape::new(2, 230, 1),
        chime_proxy_sessions: Shape::new(2, 230, 1),
        gamelift_stream_sessions: Shape::account(450),
        ..EmulatorConfig::default()
    }
}

/// What a user compares between two tables: each session's state and what the archiver knows.
async fn table_state(rig: &Rig, service: ServiceId) -> BTreeMap<String, (String, String, bool)> {
    rig.aws
        .sessions()
        .await
        .into_iter()
        .filter(|(_, item)| item["service"].as_s().unwrap() == service.as_str())
        .map(|(id, item)| {
            let hash = item["record_hash"].as_s().unwrap().clone();
            let change = item["change"].as_s().unwrap().clone();
            (id, (hash, change, item.contains_key("gone_at")))
        })
        .collect()
}

/// Invokes the run again and again with a short deadline until it completes.
async fn run_in_parts(rig: &Rig, service: ServiceId, event: &str, budget: Duration) -> Vec<RunSummary> {
    let source = rig.source(service).await;
    let mut parts = Vec::new();
    while parts.len() < 80 {
        let summary = rig.run_for(&source, event, budget).await.unwrap();
        let outcome = summary.outcome;
        parts.push(summary);
        if outcome == RunOutcome::Complete {
            return parts;
        }
        assert_eq!(outcome, RunOutcome::Partial, "{service}");
    }
    panic!("{service}: not complete after {} parts", parts.len());
}

/// Each session once in the run's snapshot history, and exactly the emulator's sessions.
async fn assert_history_once(rig: &Rig, service: ServiceId, event: &str, truth: &BTreeSet<String>) {
    let snapshot = rig.run_lines("snapshots", service, event).await;
    assert_eq!(snapshot.len(), set(ids(&snapshot)).len(), "{service}: a session line twice in the snapshots");
    assert_eq!(&set(ids(&snapshot)), truth, "{service}: snapshots");
    let changes = rig.run_lines("changes", service, event).await;
    assert_eq!(changes.len(), set(ids(&changes)).len(), "{service}: a change line twice");
    assert_eq!(changes_by_kind(&changes), BTreeMap::from([("opened".to_owned(), truth.clone())]), "{service}");
}

#[tokio::test]
async fn a_run_cut_by_its_deadline_again_and_again_ends_as_a_run_that_fit_in_one() {
    for service in ServiceId::ALL {
        // GIVEN two identical accounts with slow list calls; one archived in a single invocation
        let cut = Rig::start(deep_world()).await;
        let whole = Rig::start(deep_world()).await;
        let slow = FaultPlan { latency_ms: 40, ..FaultPlan::default() };
        cut.emulator.set_faults(service.list_operation(), slow);
        assert_eq!(whole.run(service, "evt-long").await.unwrap().outcome, RunOutcome::Complete);
        let truth = cut.truth(service);

        // WHEN each invocation of the other reaches its deadline after a page or two
        let parts = run_in_parts(&cut, service, "evt-long", Duration::from_millis(60)).await;

        // THEN the run took several invocations, each a part of the same run
        assert!(parts.len() >= 3, "{service}: {} parts", parts.len());
        for (n, part) in parts.iter().enumerate() {
            assert_eq!((part.run_id.as_str(), part.part), ("evt-long", n as u32), "{service}");
        }
        // AND the table ends as the single invocation left it, every session live
        let state = table_state(&cut, service).await;
        assert_eq!(state, table_state(&whole, service).await, "{service}");
        assert_eq!(set(state.keys().cloned()), truth);
        // AND the run's history holds each session once, over all its parts
        assert_history_once(&cut, service, "evt-long", &truth).await;
        // AND one manifest says complete, counting every part, and no progress is left
        let manifests = cut.aws.manifests().await;
        assert_eq!(manifests.len(), 1, "{service}");
        let manifest = &manifests[0];
        assert_eq!((manifest.status, manifest.parts), (RunStatus::Complete, parts.len() as u32), "{service}");
        assert_eq!(manifest.counts.sessions, truth.len() as u64, "{service}");
        assert_eq!(manifest.counts.new, truth.len() as u64, "{service}");
        let keys: Vec<String> = parts.iter().flat_map(|p| p.s3_keys.clone()).collect();
        assert_eq!(manifest.s3_keys, keys);
        let progress_items =
            cut.aws.scan().await.into_iter().filter(|i| i["pk"].as_s().unwrap().starts_with("PROGRESS#"));
        assert_eq!(progress_items.count(), 0, "{service}");
    }
}

#[tokio::test]
async fn an_expired_next_token_restarts_its_listing_with_no_session_twice() {
    for service in [ServiceId::IvsStreamSessions, ServiceId::GameliftStreamSessions] {
        // GIVEN a run stopped by its deadline in the middle of a listing
        let rig = Rig::start(deep_world()).await;
        rig.emulator.set_faults(service.list_operation(), FaultPlan { latency_ms: 40, ..FaultPlan::default() });
        let source = rig.source(service).await;
        let first = rig.run_for(&source, "evt-exp", Duration::from_millis(60)).await.unwrap();
        assert_eq!(first.outcome, RunOutcome::Partial);

        // WHEN every token the service handed out expires before the next invocations
        rig.emulator.expire_tokens();
        let rest = run_in_parts(&rig, service, "evt-exp", Duration::from_secs(60)).await;

        // THEN the stopped listing started again from its first page
        let restarted: u64 = rest.iter().map(|p| p.counts.restarted_listings).sum();
        assert!(restarted >= 1, "{service}: {restarted}");
        // AND the run converges with no session line twice
        let truth = rig.truth(service);
        assert_eq!(set(table_state(&rig, service).await.into_keys()), truth);
        assert_history_once(&rig, service, "evt-exp", &truth).await;
    }
}

#[tokio::test]
async fn throttling_server_errors_and_latency_on_every_operation_converge_and_are_counted() {
    for service in ServiceId::ALL {
        // GIVEN every operation throttled 20 % of the time, failing 5 % with a 503, and slow
        let rig = Rig::start(deep_world()).await;
        let storm = FaultPlan {
            throttle_rate: 0.20,
            server_error_rate: 0.05,
            server_error_status: Some(503),
            latency_ms: 5,
            odd_page: None,
        };
        rig.emulator.set_faults("*", storm);

        // WHEN a run completes
        let summary = rig.run(service, "evt-storm").await.unwrap();

        // THEN it converged: the table holds the account's sessions, the history each once
        assert_eq!(summary.outcome, RunOutcome::Complete, "{service}");
        let truth = rig.truth(service);
        assert_eq!(set(table_state(&rig, service).await.into_keys()), truth, "{service}");
        assert_history_once(&rig, service, "evt-storm", &truth).await;
        // AND every throttled call is counted, in the summary and the manifest
        let throttled: u64 = rig.emulator.calls().values().map(|c| c.throttled).sum();
        assert!(throttled > 0, "{service}: the storm throttled");
        assert_eq!(summary.counts.throttles, throttled, "{service}");
        assert_eq!(rig.aws.manifests().await[0].counts.throttles, throttled, "{service}");
    }
}

#[tokio::test]
async fn a_page_repeating_a_session_is_archived_once() {
    for service in ServiceId::ALL {
        // GIVEN a service whose pages each repeat their first session
        let rig = Rig::start(deep_world()).await;
        rig.emulator.set_faults(service.list_operation(), FaultPlan::odd(OddPage::DuplicateSession));
        // WHEN a run completes
        let summary = rig.run(service, "evt-dup").await.unwrap();
        // THEN each repeat is counted and dropped, and the run converges
        assert!(summary.counts.duplicates > 0, "{service}");
        let truth = rig.truth(service);
        assert_eq!(set(table_state(&rig, service).await.into_keys()), truth, "{service}");
        assert_history_once(&rig, service, "evt-dup", &truth).await;
    }
}

#[tokio::test]
async fn a_page_that_cannot_be_archived_fails_the_run_naming_it_and_writes_no_session() {
    let cases = [
        (OddPage::MissingId, "a session has no"),
        (OddPage::WrongType, "MalformedResponse"),
        (OddPage::RepeatToken, "returned the next token of an earlier page again"),
    ];
    for service in ServiceId::ALL {
        for (odd, expected) in cases {
            // GIVEN a service whose pages are broken in this way
            let rig = Rig::start(deep_world()).await;
            rig.emulator.set_faults(service.list_operation(), FaultPlan::odd(odd));
            // WHEN a run reads them
            let err = rig.run(service, "evt-odd").await.unwrap_err();
            // THEN it fails with an error naming the service, the operation and what is wrong
            let message = err.to_string();
            assert!(!err.is_retryable(), "{service} {odd:?}: {message}");
            assert!(
                message.contains(service.list_operation()) && message.contains(expected),
                "{service} {odd:?}: {message}"
            );
            // AND no session item and no history object was written; the manifest says failed
            if odd != OddPage::RepeatToken {
                assert!(rig.aws.sessions().await.is_empty(), "{service} {odd:?}");
            }
            assert!(rig.aws.keys("history/").await.is_empty(), "{service} {odd:?}");
            let manifests = rig.aws.manifests().await;
            assert_eq!(manifests[0].status, RunStatus::Failed, "{service} {odd:?}");
            assert!(manifests[0].error.as_deref().unwrap().contains(expected));
        }
    }
}

#[tokio::test]
async fn a_run_resumed_by_a_later_event_keeps_its_own_id_and_partition() {
    // GIVEN a scheduled run stopped by its deadline
    let rig = Rig::start(deep_world()).await;
    let service = ServiceId::ChimeProxySessions;
    rig.emulator.set_faults(service.list_operation(), FaultPlan { latency_ms: 40, ..FaultPlan::default() });
    let source = rig.source(service).await;
    assert_eq!(
        rig.run_for(&source, "evt-first", Duration::from_millis(60)).await.unwrap().outcome,
        RunOutcome::Partial
    );

    // WHEN the next scheduled event comes
    let table = rig.aws.table();
    let next = run(
        &rig.scope(&source),
        &source,
        &table,
        &rig.aws.history_bucket(),
        &rig.config,
        &request("evt-second", false),
    )
    .await
    .unwrap();

    // THEN it carries on the first run rather than starting its own
    assert_eq!((next.outcome, next.run_id.as_str(), next.part), (RunOutcome::Complete, "evt-first", 1));
    assert!(next.s3_keys.iter().all(|k| k.contains(".us-east-1.evt-first.part-0001.")), "{:?}", next.s3_keys);
    let manifests = rig.aws.manifests().await;
    assert_eq!(manifests.len(), 1);
    assert_eq!((manifests[0].run_id.as_str(), manifests[0].status), ("evt-first", RunStatus::Complete));
    let truth = rig.truth(service);
    assert_history_once(&rig, service, "evt-first", &truth).await;
    let lines = rig.run_lines("snapshots", service, "evt-first").await;
    assert!(lines.iter().all(|l| text(l, "run_id") == "evt-first"));
}

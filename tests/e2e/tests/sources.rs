//! The five sources against the emulator, through the real aws-sdk-rust clients.

use std::collections::{BTreeMap, HashSet};

use archiver_e2e::api_of;
use futures::TryStreamExt;
use session_archiver::aws::SdkSettings;
use session_archiver::error::Error;
use session_archiver::sources::{pages, AnySource, SessionSource, SourceOptions};
use session_archiver::{ServiceId, SessionRecord};
use session_emulator::{Api, Emulator, EmulatorConfig, FaultPlan, OddPage, Shape};

async fn source(emulator: &Emulator, service: ServiceId, options: SourceOptions) -> AnySource {
    let sdk = SdkSettings::local(emulator.url()).load().await;
    AnySource::new(service, &sdk, options).expect("valid options")
}

/// Reads every page of every listing; returns the sessions and the pages per listing.
async fn read_all(source: &AnySource) -> Result<(Vec<SessionRecord>, Vec<u64>), Error> {
    let discovery = source.listings().await?;
    let mut sessions = Vec::new();
    let mut pages_per_listing = Vec::new();
    for listing in &discovery.listings {
        let listing_pages: Vec<_> = pages(source, listing, None).try_collect().await?;
        pages_per_listing.push(listing_pages.len() as u64);
        sessions.extend(listing_pages.into_iter().flat_map(|p| p.sessions));
    }
    Ok((sessions, pages_per_listing))
}

fn calls(emulator: &Emulator, operation: &str) -> u64 {
    emulator.calls().get(operation).map_or(0, |c| c.calls)
}

fn ceil_div(n: u32, d: u32) -> u64 {
    u64::from(n.div_ceil(d).max(1))
}

fn busy_config() -> EmulatorConfig {
    EmulatorConfig {
        seed: 42,
        pool_sessions: Shape::new(3, 120, 2),
        connection_status: Shape::account(60),
        ivs_stream_sessions: Shape::new(2, 250, 1),
        chime_proxy_sessions: Shape::new(2, 130, 1),
        gamelift_stream_sessions: Shape::account(230),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn every_api_lists_every_session_of_every_parent_once_at_the_fewest_calls() {
    // GIVEN an emulator with several parents per API, some empty, and more sessions than one page
    let emulator = Emulator::start(busy_config()).await.unwrap();
    for service in ServiceId::ALL {
        let api = api_of(service);
        emulator.reset_calls();
        let source = source(&emulator, service, SourceOptions::default()).await;

        // WHEN the source reads all pages
        let (sessions, pages_per_listing) = read_all(&source).await.unwrap();

        // THEN every session the emulator holds is read exactly once
        let truth = emulator.sessions(api);
        let read: Vec<(Option<String>, String)> =
            sessions.iter().map(|s| (s.parent_id.clone(), s.session_id.clone())).collect();
        let unique: HashSet<_> = read.iter().cloned().collect();
        assert_eq!(unique.len(), read.len(), "{service}: a session was read twice");
        let expected: HashSet<(Option<String>, String)> = truth
            .iter()
            .map(|s| (if service.parent_operation().is_some() { s.parent.clone() } else { None }, s.id.clone()))
            .collect();
        assert_eq!(unique, expected, "{service}: sessions read differ from the emulator's");
        // AND status as AWS spells it comes through
        let by_id: BTreeMap<&str, &str> = truth.iter().map(|s| (s.id.as_str(), s.status)).collect();
        for s in &sessions {
            assert_eq!(s.status.as_deref(), Some(by_id[s.session_id.as_str()]), "{service} {}", s.session_id);
        }

        // AND the list calls per parent are ceil(n / max page), empty parents cost one call
        let shape = emulator.config().shape(api);
        let page = service.max_page_size().unwrap_or(emulator.config().connection_status_page_size as i32) as u32;
        let mut expected_pages: Vec<u64> = vec![ceil_div(shape.sessions_per_parent, page); shape.parents as usize];
        expected_pages.extend(vec![1; shape.empty_parents as usize]);
        assert_eq!(pages_per_listing, expected_pages, "{service}: pages per listing");
        assert_eq!(calls(&emulator, service.list_operation()), expected_pages.iter().sum::<u64>(), "{service}");
        if let Some(parent_op) = service.parent_operation() {
            assert_eq!(calls(&emulator, parent_op), 1, "{service}: one discovery call for few parents");
        }
        // AND each session's user is the emulator's: a WorkSpace's from DescribeWorkspaces, asked
        // about each page's WorkSpaces (up to 25 a call)
        let users: BTreeMap<&str, Option<&str>> = truth.iter().map(|s| (s.id.as_str(), s.user_id.as_deref())).collect();
        for s in &sessions {
            assert_eq!(s.user_id.as_deref(), users[s.session_id.as_str()], "{service} {}", s.session_id);
        }
        if let Some((lookup, max_ids)) = service.lookup() {
            assert!(sessions.iter().all(|s| s.user_id.is_some()), "{service}: every WorkSpace has its user");
            // Pages of at most 25 here: a call a page that holds a WorkSpace.
            assert!(page as usize <= max_ids);
            assert_eq!(calls(&emulator, lookup), (sessions.len() as u64).div_ceil(u64::from(page)), "{service}");
        }
    }
}

#[tokio::test]
async fn many_parents_are_discovered_across_discovery_pages() {
    // GIVEN 60 pools (DescribeWorkspacesPools pages 25 at a time), 150 channels and 120 connectors
    let config = EmulatorConfig {
        pool_sessions: Shape::new(55, 3, 5),
        ivs_stream_sessions: Shape::new(140, 2, 10),
        chime_proxy_sessions: Shape::new(110, 2, 10),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.unwrap();
    for (service, parents, discovery_calls) in [
        (ServiceId::WorkspacesPoolSessions, 60, 3),
        (ServiceId::IvsStreamSessions, 150, 2),
        (ServiceId::ChimeProxySessions, 120, 2),
    ] {
        emulator.reset_calls();
        let source = source(&emulator, service, SourceOptions::default()).await;
        // WHEN the source discovers its parents
        let discovery = source.listings().await.unwrap();
        // THEN it finds every one, in ceil(parents / max page) calls
        let found: Vec<String> = discovery.listings.iter().filter_map(|l| l.parent_id.clone()).collect();
        assert_eq!(found, emulator.parents(api_of(service)), "{service}");
        assert_eq!(found.len(), parents);
        assert_eq!(discovery.api_calls, discovery_calls, "{service}");
        assert_eq!(calls(&emulator, service.parent_operation().unwrap()), discovery_calls);
    }
}

#[tokio::test]
async fn explicit_parents_override_discovery() {
    // GIVEN a replay that names one channel
    let emulator = Emulator::start(busy_config()).await.unwrap();
    let channel = emulator.parents(Api::IvsStreamSessions)[1].clone();
    let options = SourceOptions { parents: vec![channel.clone()], ..Default::default() };
    let source = source(&emulator, ServiceId::IvsStreamSessions, options).await;
    // WHEN it runs
    let (sessions, _) = read_all(&source).await.unwrap();
    // THEN only that channel is listed and ListChannels is never called
    assert_eq!(sessions.len(), 250);
    assert!(sessions.iter().all(|s| s.parent_id.as_deref() == Some(channel.as_str())));
    assert_eq!(calls(&emulator, "ListChannels"), 0);
}

#[tokio::test]
async fn documented_filters_are_honoured() {
    let emulator = Emulator::start(busy_config()).await.unwrap();

    // GIVEN a UserId filter on pool sessions
    let user = emulator.sessions(Api::PoolSessions)[0].user_id.clone().unwrap();
    let options = SourceOptions { user_id: Some(user.clone()), ..Default::default() };
    let (sessions, _) = read_all(&source(&emulator, ServiceId::WorkspacesPoolSessions, options).await).await.unwrap();
    let expected = emulator.sessions(Api::PoolSessions).iter().filter(|s| s.user_id.as_ref() == Some(&user)).count();
    assert!(expected > 0);
    assert_eq!(sessions.len(), expected, "only {user}'s pool sessions");
    assert!(sessions.iter().all(|s| s.user_id.as_deref() == Some(user.as_str())));

    // GIVEN 30 WorkspaceIds: asked in two calls of at most 25
    emulator.reset_calls();
    let ids: Vec<String> = emulator.sessions(Api::ConnectionStatus).iter().take(30).map(|s| s.id.clone()).collect();
    let options = SourceOptions { workspace_ids: ids.clone(), ..Default::default() };
    let (sessions, pages) =
        read_all(&source(&emulator, ServiceId::WorkspacesConnectionStatus, options).await).await.unwrap();
    let read: HashSet<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(read, ids.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(pages, vec![1, 1]);

    // GIVEN a Status filter on proxy sessions
    let options = SourceOptions { proxy_status: Some("Closed".into()), ..Default::default() };
    let (sessions, _) = read_all(&source(&emulator, ServiceId::ChimeProxySessions, options).await).await.unwrap();
    let closed = emulator.sessions(Api::ChimeProxySessions).iter().filter(|s| s.status == "Closed").count();
    assert!(closed > 0);
    assert_eq!(sessions.len(), closed);
    assert!(sessions.iter().all(|s| s.status.as_deref() == Some("Closed") && s.ended_at.is_some()));

    // GIVEN Status and ExportFilesStatus filters on GameLift Streams
    let options = SourceOptions {
        stream_status: Some("TERMINATED".into()),
        export_files_status: Some("FAILED".into()),
        ..Default::default()
    };
    let (sessions, _) = read_all(&source(&emulator, ServiceId::GameliftStreamSessions, options).await).await.unwrap();
    assert!(!sessions.is_empty());
    for s in &sessions {
        assert_eq!(s.status.as_deref(), Some("TERMINATED"));
        assert_eq!(s.get("export_files_status"), Some(&session_archiver::model::Value::String("FAILED".into())));
    }
}

#[tokio::test]
async fn thirty_percent_throttling_still_yields_every_session() {
    // GIVEN every operation throttled 30 % of the time, with each service's own throttling error,
    // and slow
    let emulator = Emulator::start(busy_config()).await.unwrap();
    emulator.set_faults("*", FaultPlan { latency_ms: 2, ..FaultPlan::throttling(0.3) });
    let mut throttled = 0;
    for service in ServiceId::ALL {
        emulator.reset_calls();
        let source = source(&emulator, service, SourceOptions::default()).await;
        // WHEN the source reads everything
        let (sessions, _) = read_all(&source).await.unwrap_or_else(|e| panic!("{service}: {e}"));
        // THEN nothing is missing, and the counters show the SDK retried the throttled calls
        assert_eq!(sessions.len(), emulator.sessions(api_of(service)).len(), "{service}");
        let counts = emulator.calls()[service.list_operation()];
        assert_eq!(counts.calls, counts.pages + counts.throttled, "{service}: {counts:?}");
        throttled += counts.throttled;
        if let Some((lookup, _)) = service.lookup() {
            assert!(sessions.iter().all(|s| s.user_id.is_some()), "{service}: every user, throttled or not");
            throttled += emulator.calls()[lookup].throttled;
        }
    }
    // (A service of few pages may draw none of the throttles: counted over all of them.)
    assert!(throttled >= 10, "{throttled} throttled calls");
}

fn assert_api_error(err: &Error, code: &str, operation: &str, parent: Option<&str>) {
    match err {
        Error::Api { site, code: got, .. } => {
            assert_eq!(got, code, "{err}");
            assert_eq!(site.operation, operation, "{err}");
            assert_eq!(site.parent.as_deref(), parent, "{err}");
        }
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn an_expired_token_mid_listing_is_a_clear_error_naming_the_parent() {
    // GIVEN a listing whose tokens expire after the first page
    let emulator = Emulator::start(busy_config()).await.unwrap();
    for (service, code) in [
        (ServiceId::WorkspacesPoolSessions, "InvalidParameterValuesException"),
        (ServiceId::IvsStreamSessions, "ValidationException"),
        (ServiceId::ChimeProxySessions, "BadRequestException"),
        (ServiceId::GameliftStreamSessions, "ValidationException"),
    ] {
        let source = source(&emulator, service, SourceOptions::default()).await;
        let listing = source.listings().await.unwrap().listings.remove(0);
        let mut stream = Box::pin(pages(&source, &listing, None));
        let first = stream.try_next().await.unwrap().unwrap();
        assert!(first.next_token.is_some());
        emulator.expire_tokens();
        // WHEN the next page is asked for
        let err = stream.try_next().await.unwrap_err();
        // THEN the error names service, operation, parent and the service's validation error
        assert_api_error(&err, code, service.list_operation(), listing.parent_id.as_deref());
        assert!(err.to_string().contains("The next token has expired"), "{err}");
        assert!(err.to_string().starts_with(service.as_str()), "{err}");
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn an_unknown_parent_is_a_clear_not_found_error() {
    let emulator = Emulator::start(busy_config()).await.unwrap();
    for (service, parent, code) in [
        (ServiceId::WorkspacesPoolSessions, "wspool-zzzzzzzzz", "ResourceNotFoundException"),
        (
            ServiceId::IvsStreamSessions,
            "arn:aws:ivs:us-east-1:123456789012:channel/missing",
            "ResourceNotFoundException",
        ),
        (ServiceId::ChimeProxySessions, "nosuchconnector", "NotFoundException"),
    ] {
        // GIVEN a parent that does not exist
        let options = SourceOptions { parents: vec![parent.into()], ..Default::default() };
        // WHEN it is listed
        let err = read_all(&source(&emulator, service, options).await).await.unwrap_err();
        // THEN the error says which parent was not found
        assert_api_error(&err, code, service.list_operation(), Some(parent));
        assert!(err.to_string().contains(parent), "{err}");
    }
}

#[tokio::test]
async fn a_5xx_storm_past_the_retry_budget_is_a_retryable_error() {
    // GIVEN every call failing with 503
    let emulator = Emulator::start(busy_config()).await.unwrap();
    emulator.set_faults("*", FaultPlan::server_errors(1.0, 503));
    for (service, code) in [
        (ServiceId::WorkspacesPoolSessions, "ServiceUnavailable"),
        (ServiceId::WorkspacesConnectionStatus, "ServiceUnavailable"),
        (ServiceId::IvsStreamSessions, "ServiceUnavailable"),
        (ServiceId::ChimeProxySessions, "ServiceUnavailableException"),
        (ServiceId::GameliftStreamSessions, "ServiceUnavailable"),
    ] {
        emulator.reset_calls();
        let source = source(&emulator, service, SourceOptions::default()).await;
        // WHEN the source reads
        let err = read_all(&source).await.unwrap_err();
        // THEN it fails with a retryable error after the SDK's attempts, naming the operation
        let operation = service.parent_operation().unwrap_or(service.list_operation());
        assert_api_error(&err, code, operation, None);
        assert!(err.is_retryable(), "{err}");
        assert_eq!(calls(&emulator, operation), u64::from(SdkSettings::local("").max_attempts), "{service}");
    }
}

#[tokio::test]
async fn a_repeated_next_token_stops_instead_of_looping() {
    // GIVEN a service that hands back the token it was called with
    let emulator = Emulator::start(busy_config()).await.unwrap();
    emulator.set_faults("ListStreamSessionsByAccount", FaultPlan::odd(OddPage::RepeatToken));
    let source = source(&emulator, ServiceId::GameliftStreamSessions, SourceOptions::default()).await;
    // WHEN the source pages
    let err = read_all(&source).await.unwrap_err();
    // THEN it stops on page 2 with a clear error
    assert!(matches!(err, Error::RepeatedNextToken { page: 2, .. }), "{err}");
    assert_eq!(calls(&emulator, "ListStreamSessionsByAccount"), 2);
}

#[tokio::test]
async fn odd_pages_are_refused_with_the_reason() {
    let emulator = Emulator::start(busy_config()).await.unwrap();
    // GIVEN a page whose first proxy session has no id
    emulator.set_faults("ListProxySessions", FaultPlan::odd(OddPage::MissingId));
    let err =
        read_all(&source(&emulator, ServiceId::ChimeProxySessions, SourceOptions::default()).await).await.unwrap_err();
    assert!(matches!(err, Error::BadPage { .. }), "{err}");
    assert!(err.to_string().contains("a session has no ProxySessionId"), "{err}");

    // GIVEN a page with a word where a timestamp belongs
    emulator.set_faults("ListStreamSessions", FaultPlan::odd(OddPage::WrongType));
    let err =
        read_all(&source(&emulator, ServiceId::IvsStreamSessions, SourceOptions::default()).await).await.unwrap_err();
    assert_api_error(
        &err,
        "MalformedResponse",
        "ListStreamSessions",
        Some(emulator.parents(Api::IvsStreamSessions)[0].as_str()),
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn wire_fields_arrive_mapped_to_the_schema() {
    // GIVEN the emulator's record of each API's sessions
    let emulator = Emulator::start(busy_config()).await.unwrap();
    for service in ServiceId::ALL {
        let truth = emulator.sessions(api_of(service));
        let (sessions, _) = read_all(&source(&emulator, service, SourceOptions::default()).await).await.unwrap();
        for s in &sessions {
            let t = truth.iter().find(|t| t.id == s.session_id).unwrap();
            // THEN timestamps are RFC 3339 UTC and match the emulator's, whatever the wire format
            if service != ServiceId::WorkspacesConnectionStatus {
                let started = s.started_at.as_ref().unwrap();
                assert!(started.as_str().ends_with('Z'), "{started}");
                assert_eq!(started.to_datetime().secs(), t.started, "{service}");
            }
            // AND the user is the session's (a WorkSpace's, from DescribeWorkspaces), where there is one
            assert_eq!(s.user_id, t.user_id, "{service}");
            // AND the hash is the same when the same state is read again
            assert_eq!(s.record_hash().len(), 32);
        }
        let (again, _) = read_all(&source(&emulator, service, SourceOptions::default()).await).await.unwrap();
        let hashes = |v: &[SessionRecord]| v.iter().map(|s| s.record_hash()).collect::<Vec<_>>();
        assert_eq!(hashes(&sessions), hashes(&again), "{service}: same state, same hashes");
    }
}

#[tokio::test]
async fn sessions_change_and_end_as_the_emulator_ticks() {
    // GIVEN a first read
    let emulator = Emulator::start(busy_config()).await.unwrap();
    for service in ServiceId::ALL {
        let src = source(&emulator, service, SourceOptions::default()).await;
        let (before, _) = read_all(&src).await.unwrap();
        // WHEN time moves on
        emulator.advance(3);
        let (after, _) = read_all(&src).await.unwrap();
        // THEN some sessions changed state, some disappeared and new ones appeared
        let ids = |v: &[SessionRecord]| v.iter().map(|s| s.session_id.clone()).collect::<HashSet<_>>();
        let (old, new) = (ids(&before), ids(&after));
        assert!(old.difference(&new).count() > 0, "{service}: none disappeared");
        assert!(new.difference(&old).count() > 0, "{service}: none appeared");
        let changed = after
            .iter()
            .filter(|a| before.iter().any(|b| b.session_id == a.session_id && b.record_hash() != a.record_hash()))
            .count();
        assert!(changed > 0, "{service}: none changed");
    }
}

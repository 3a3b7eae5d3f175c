//! The run end to end: sessions from the emulator through the real SDK clients into DynamoDB and
//! S3 on moto server.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use archiver_e2e::rig::{
    changes_by_kind, ids, invocation_of, key, request, scope, set, small_world, text, Rig, BUCKET, TABLE,
};
use archiver_e2e::{CutProxy, LocalAws, MotoServer};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value as Json;
use session_archiver::diff::{id_fingerprint, UpdateWrite};
use session_archiver::model::{Change, ColumnType, SessionRecord, Timestamp};
use session_archiver::run::{run, RunOutcome};
use session_archiver::sources::SourceOptions;
use session_archiver::table::{
    HistoryPool, LeaseHolder, PoolStatus, ProgressObject, RunLedger, RunStatus, SavedProgress, SessionTable,
    SessionUpdate, StoredSession, Updated,
};
use session_archiver::ServiceId;
use session_emulator::{EmulatorConfig, FaultPlan, Shape};

#[tokio::test]
async fn a_first_run_writes_one_item_one_snapshot_line_and_one_opened_line_per_session() {
    // GIVEN an account with sessions in every API and an empty table and bucket
    let rig = Rig::start(small_world()).await;
    for service in ServiceId::ALL {
        let truth = rig.truth(service);
        let event = format!("first-{service}");

        // WHEN the service's first run completes
        let summary = rig.run(service, &event).await.unwrap();

        // THEN the table holds one item per session, live, first seen by this run
        assert_eq!(summary.outcome, RunOutcome::Complete);
        let items: HashMap<_, _> = rig
            .aws
            .sessions()
            .await
            .into_iter()
            .filter(|(_, i)| i["service"].as_s().unwrap() == service.as_str())
            .collect();
        assert_eq!(set(items.keys().cloned()), truth, "{service}");
        for item in items.values() {
            assert_eq!(item["last_run"].as_s().unwrap(), &event);
            assert_eq!(item["first_seen"], item["last_seen"]);
            assert!(!item.contains_key("gone_at") && !item.contains_key("expires_at"));
        }
        // AND one snapshot object with a line per session
        let snapshot = rig.aws.read(&key("snapshots", service, &event)).await;
        assert_eq!(snapshot.lines.len(), truth.len(), "{service}");
        assert_eq!(set(ids(&snapshot.lines)), truth);
        // AND one opened change line per session
        let changes = rig.aws.read(&key("changes", service, &event)).await;
        assert_eq!(changes.lines.len(), truth.len());
        assert_eq!(changes_by_kind(&changes.lines), BTreeMap::from([("opened".to_owned(), truth.clone())]));
        // AND the summary and the manifest count them
        let n = truth.len() as u64;
        assert_eq!((summary.counts.sessions, summary.counts.new, summary.counts.items_written), (n, n, n));
        assert_eq!(summary.s3_keys, vec![key("snapshots", service, &event), key("changes", service, &event)]);
        let manifest = rig.aws.manifests().await.into_iter().find(|m| m.run_id == event).unwrap();
        assert_eq!(manifest.status, RunStatus::Complete);
        assert_eq!(manifest.counts, summary.counts);
        assert_eq!(manifest.s3_keys, summary.s3_keys);
        assert_eq!(manifest.trigger, "scheduled");
    }
}

#[tokio::test]
async fn an_identical_second_run_writes_no_session_item_and_no_changes_object() {
    // GIVEN a first run of pool sessions
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::WorkspacesPoolSessions;
    rig.run(service, "run-1").await.unwrap();
    let before = rig.aws.sessions().await;
    let n = before.len() as u64;

    // WHEN a second run sees the same sessions
    let table = rig.aws.table();
    let source = rig.source(service).await;
    let summary =
        run(&rig.scope(&source), &source, &table, &rig.aws.history_bucket(), &rig.config, &request("run-2", false))
            .await
            .unwrap();

    // THEN no session item is written: the adapter wrote none and every item is as it was
    assert_eq!(table.counters().items_written(), 0);
    assert_eq!(summary.counts.items_written, 0);
    assert_eq!(
        (summary.counts.unchanged, summary.counts.new, summary.counts.changed, summary.counts.ended),
        (n, 0, 0, 0)
    );
    assert_eq!(rig.aws.sessions().await, before);
    // AND a new snapshot object holds every session, and there is no changes object
    assert_eq!(rig.aws.read(&key("snapshots", service, "run-2")).await.lines.len() as u64, n);
    let keys = rig.aws.keys("history/changes/").await;
    assert_eq!(keys, vec![key("changes", service, "run-1")]);
    assert_eq!(summary.s3_keys, vec![key("snapshots", service, "run-2")]);
}

#[tokio::test]
async fn after_churn_exactly_the_opened_changed_and_ended_sessions_are_written() {
    for service in ServiceId::ALL {
        // GIVEN a first run, then time passing in the account
        let rig = Rig::start(small_world()).await;
        rig.run(service, "before").await.unwrap();
        let before = rig.truth(service);
        let first = rig.aws.read(&key("snapshots", service, "before")).await.lines;
        rig.emulator.advance(1);
        let after = rig.truth(service);

        // WHEN the next run completes
        let table = rig.aws.table();
        let source = rig.source(service).await;
        let summary =
            run(&rig.scope(&source), &source, &table, &rig.aws.history_bucket(), &rig.config, &request("after", false))
                .await
                .unwrap();

        // THEN the change lines are exactly the sessions that opened, changed or ended
        let second = rig.aws.read(&key("snapshots", service, "after")).await.lines;
        let hash_before: HashMap<String, String> =
            first.iter().map(|l| (text(l, "session_id"), text(l, "record_hash"))).collect();
        let opened = set(after.difference(&before).cloned());
        let ended = set(before.difference(&after).cloned());
        let changed = set(second
            .iter()
            .filter(|l| hash_before.get(&text(l, "session_id")).is_some_and(|h| *h != text(l, "record_hash")))
            .map(|l| text(l, "session_id")));
        assert!(!changed.is_empty() || !opened.is_empty() || !ended.is_empty(), "{service}: the world moved");
        let changes = rig.aws.read(&key("changes", service, "after")).await.lines;
        let mut expected = BTreeMap::new();
        for (kind, ids) in [("opened", &opened), ("changed", &changed), ("ended", &ended)] {
            if !ids.is_empty() {
                expected.insert(kind.to_owned(), ids.clone());
            }
        }
        assert_eq!(changes_by_kind(&changes), expected, "{service}");
        // AND exactly those items were written
        let written = (opened.len() + changed.len() + ended.len()) as u64;
        assert_eq!(table.counters().items_written(), written, "{service}");
        assert_eq!(
            (summary.counts.new, summary.counts.changed, summary.counts.ended),
            (opened.len() as u64, changed.len() as u64, ended.len() as u64)
        );
        let items = rig.aws.sessions().await;
        for (id, item) in &items {
            let last_run = item["last_run"].as_s().unwrap();
            let touched = opened.contains(id) || changed.contains(id) || ended.contains(id);
            assert_eq!(last_run == "after", touched, "{service} {id}: last_run {last_run}");
        }
        // AND ended sessions keep their last state, marked gone with a TTL; the rest are live
        for id in &ended {
            let item = &items[id];
            assert!(item.contains_key("gone_at") && item.contains_key("expires_at"), "{id}: {item:?}");
            assert_eq!(item["change"].as_s().unwrap(), "ended");
        }
        for id in &after {
            assert!(!items[id].contains_key("gone_at"), "{service} {id} is live");
        }
        // AND an ended line carries the status before the end
        for line in changes.iter().filter(|l| text(l, "change") == "ended") {
            assert_eq!(line["previous_status"], line["status"]);
        }
    }
}

#[tokio::test]
async fn a_churn_run_writes_its_changed_and_ended_sessions_in_place_without_reading_them() {
    // GIVEN 2,000 WorkSpaces listed 25 a page (80 pages), archived once, then a tenth of them moving
    let world = EmulatorConfig { connection_status: Shape::account(2000), moving_per_mille: 100, ..small_world() };
    let rig = Rig::start(world).await;
    let service = ServiceId::WorkspacesConnectionStatus;
    rig.run(service, "before").await.unwrap();
    rig.emulator.advance(1);

    // WHEN the next run completes
    let table = rig.aws.table();
    let source = rig.source(service).await;
    let summary =
        run(&rig.scope(&source), &source, &table, &rig.aws.history_bucket(), &rig.config, &request("after", false))
            .await
            .unwrap();

    // THEN no session item is read: the listing's previous state comes from the state object,
    // the ended sessions' ids from the first run's snapshot lines, and the changed and ended
    // sessions are written in place, each by one conditional update the table applied
    let counts = &summary.counts;
    assert!(counts.changed > 100 && counts.ended > 0, "the world moved enough: {counts:?}");
    assert_eq!(summary.counts.states_read, 1, "{counts:?}");
    let counter = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let counters = table.counters();
    assert_eq!((counter(&counters.batch_gets), counter(&counters.items_read)), (0, 0), "{counts:?}");
    assert_eq!((counts.items_fetched, counts.updates_refused), (0, 0));
    assert_eq!(counter(&counters.items_updated), counts.changed + counts.ended);
    // AND every change is recorded and written once, an ended line with the status before the end
    let changes = rig.aws.read(&key("changes", service, "after")).await.lines;
    let by_kind = changes_by_kind(&changes);
    let kind = |name: &str| by_kind.get(name).map_or(0, |ids| ids.len() as u64);
    assert_eq!((kind("opened"), kind("changed"), kind("ended")), (counts.new, counts.changed, counts.ended));
    assert_eq!(changes.len() as u64, counts.new + counts.changed + counts.ended);
    assert_eq!(table.counters().items_written(), counts.new + counts.changed + counts.ended);
    assert_eq!(counts.items_written, table.counters().items_written());
    for line in changes.iter().filter(|l| text(l, "change") == "ended") {
        assert_eq!(line["previous_status"], line["status"]);
    }
    // AND the table holds each listed WorkSpace live with its listed state, each ended one gone
    let items = rig.aws.sessions().await;
    let gone = items.values().filter(|item| item.contains_key("gone_at")).count() as u64;
    assert_eq!(gone, counts.ended);
    assert_eq!(items.len() as u64 - gone, counts.sessions);
    let snapshot = rig.aws.read(&key("snapshots", service, "after")).await.lines;
    for line in &snapshot {
        let item = &items[&text(line, "session_id")];
        assert_eq!(item["record_hash"].as_s().unwrap(), &text(line, "record_hash"));
        assert_eq!(item.get("status").map(|s| s.as_s().unwrap().clone()), line["status"].as_str().map(str::to_owned));
    }
}

#[tokio::test]
async fn a_session_written_in_place_on_dynamodb_is_the_item_a_whole_write_would_leave() {
    // GIVEN a live session with a user, an ended one, and a live one without a status, on moto
    let rig = Rig::start(small_world()).await;
    let (table, service) = (rig.aws.table(), ServiceId::WorkspacesPoolSessions);
    let scope = scope(service);
    let at = |t: &str| Timestamp::parse(t).unwrap();
    let record = |id: &str, status: Option<&str>, user: Option<&str>| {
        let mut record = SessionRecord::new(service, id);
        record.parent_id = Some("pool-1".into());
        record.status = status.map(str::to_owned);
        record.user_id = user.map(str::to_owned);
        record
    };
    let stored = |record: SessionRecord, gone: bool| StoredSession {
        record_hash: record.record_hash(),
        record,
        first_seen: at("2026-11-22T09:00:00Z"),
        last_seen: at("2026-11-22T09:00:00Z"),
        last_run: "r1".into(),
        change: if gone { Change::Ended } else { Change::Opened },
        previous_status: None,
        gone_at: gone.then(|| at("2026-11-22T09:30:00Z")),
        expires_at: gone.then_some(1_900_000_000),
    };
    let (live, ended) =
        (stored(record("a", Some("ACTIVE"), Some("ana")), false), stored(record("b", Some("ACTIVE"), None), true));
    let no_status = stored(record("c", None, None), false);
    table.write_sessions(&scope, &[live.clone(), ended.clone(), no_status.clone()]).await.unwrap();
    let update = |id: &str, write: UpdateWrite| SessionUpdate {
        parent_id: Some("pool-1".into()),
        session_id: id.into(),
        write,
        run_id: "r2".into(),
        not_written_by: vec!["r2".into()],
    };
    let listed = |record: SessionRecord, change| UpdateWrite::Listed {
        record_hash: record.record_hash(),
        record,
        change,
        last_seen: at("2026-11-22T10:00:00Z"),
    };
    let ends = UpdateWrite::Ended { gone_at: at("2026-11-22T10:00:00Z"), expires_at: 1_950_000_000 };

    // WHEN the first changes (its user gone), the second comes back, the third ends, in place
    let writes = [
        (&live, update("a", listed(record("a", Some("IDLE"), None), Change::Changed))),
        (&ended, update("b", listed(record("b", Some("ACTIVE"), None), Change::Opened))),
        (&no_status, update("c", ends.clone())),
    ];
    for (before, write) in &writes {
        // THEN each is applied, returns the item as it was, and leaves what the update makes of it
        assert_eq!(table.update_session(&scope, write).await.unwrap(), Updated::Applied((*before).clone()));
        let after = table.get_sessions(&scope, Some("pool-1"), &[write.session_id.as_str()]).await.unwrap();
        assert_eq!(after[&write.session_id], write.applied_to(before), "{}", write.session_id);
    }
    let items = rig.aws.sessions().await;
    assert!(!items["a"].contains_key("user_id") && !items["b"].contains_key("gone_at"), "{items:?}");
    assert_eq!(items["a"]["previous_status"], AttributeValue::S("ACTIVE".into()));

    // AND a write the item does not stand for (ended already; last written by this run; no
    // item) is refused with the item as it is, and changes nothing
    let now = table.get_sessions(&scope, Some("pool-1"), &["a", "c"]).await.unwrap();
    let refusals = [
        (update("c", ends.clone()), Some(now["c"].clone())),
        (update("a", listed(record("a", Some("ACTIVE"), None), Change::Changed)), Some(now["a"].clone())),
        (update("gone", ends), None),
    ];
    for (write, item) in refusals {
        assert_eq!(table.update_session(&scope, &write).await.unwrap(), Updated::Refused(item));
    }
    assert_eq!(rig.aws.sessions().await, items);
}

#[tokio::test]
async fn the_same_event_twice_changes_nothing_the_second_time() {
    // GIVEN a complete run of IVS stream sessions
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::IvsStreamSessions;
    let first = rig.run(service, "evt-same").await.unwrap();
    let snapshot_before = rig.aws.read(&key("snapshots", service, "evt-same")).await.lines;
    let changes_before = rig.aws.read(&key("changes", service, "evt-same")).await.lines;
    let table_before = rig.aws.scan().await;
    rig.emulator.reset_calls();

    // WHEN EventBridge delivers the same event again
    let table = rig.aws.table();
    let source = rig.source(service).await;
    let again =
        run(&rig.scope(&source), &source, &table, &rig.aws.history_bucket(), &rig.config, &request("evt-same", false))
            .await
            .unwrap();

    // THEN it is skipped as already complete: no API call, no item, no object written
    assert_eq!(again.outcome, RunOutcome::Skipped);
    assert!(again.already_complete);
    assert!(again.s3_keys.is_empty());
    assert!(rig.emulator.calls().values().all(|c| c.calls == 0));
    assert_eq!(table.counters().items_written(), 0);
    // AND the table and the history are exactly as the first delivery left them
    assert_eq!(rig.aws.scan().await, table_before);
    assert_eq!(rig.aws.keys("history/").await, set(first.s3_keys.clone()).into_iter().collect::<Vec<_>>());
    assert_eq!(rig.aws.read(&key("snapshots", service, "evt-same")).await.lines, snapshot_before);
    assert_eq!(rig.aws.read(&key("changes", service, "evt-same")).await.lines, changes_before);
    let manifests = rig.aws.manifests().await;
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].status, RunStatus::Complete);
}

#[tokio::test]
async fn moto_going_away_mid_run_fails_retryably_and_a_rerun_converges() {
    // GIVEN sessions across many voice connectors, listed slowly, and moto reached through a proxy
    let world = EmulatorConfig { chime_proxy_sessions: Shape::new(12, 30, 0), ..small_world() };
    let mut rig = Rig::start(world).await;
    // One listing at a time, each slow: the run is still going when the cut comes.
    rig.config.max_concurrent_listings = 1;
    let service = ServiceId::ChimeProxySessions;
    rig.emulator.set_faults("ListProxySessions", FaultPlan { latency_ms: 100, ..FaultPlan::default() });
    let moto_addr = rig.aws.settings.endpoint_url.clone().unwrap().trim_start_matches("http://").parse().unwrap();
    let proxy = CutProxy::start(moto_addr).await.unwrap();
    let through_proxy = LocalAws::connect(&proxy.url(), TABLE, BUCKET).await;

    // WHEN moto goes away once the run has written its first items
    let running = async { rig.run_on(&through_proxy, service, "evt-cut", false).await };
    let cutter = async {
        while rig.aws.sessions().await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.cut();
    };
    let (result, ()) = tokio::join!(running, cutter);

    // THEN the run fails with a clear, retryable error naming the call that failed
    let err = result.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let message = err.to_string();
    assert!(message.contains("DynamoDB") || message.contains("S3"), "{message}");
    assert!(
        message.contains("DispatchFailure") || message.contains("ResponseError") || message.contains("TimeoutError"),
        "{message}"
    );
    // AND no manifest says complete, and no upload is left open
    let written_before_cut = rig.aws.sessions().await.len();
    assert!(written_before_cut > 0);
    assert!(rig.aws.manifests().await.iter().all(|m| m.status != RunStatus::Complete));
    assert_eq!(rig.aws.open_uploads().await, 0);

    // WHEN moto is back and the next scheduled run comes while the failed run's lease is valid
    proxy.restore();
    rig.emulator.clear_faults();
    let early = rig.run_on(&through_proxy, service, "evt-next", false).await.unwrap();
    // THEN it is skipped: the failed run could not give its lease back
    assert_eq!(early.outcome, RunOutcome::Skipped);
    assert_eq!(early.lease_held_by.as_deref(), Some("evt-cut"));

    // WHEN the lease has expired and the next scheduled run completes
    let scope = scope(service);
    let now = session_archiver::model::Timestamp::now().epoch_seconds();
    let cut_holder = LeaseHolder { run_id: "evt-cut".into(), invocation_id: invocation_of("evt-cut") };
    rig.aws.table().acquire_lease(&scope, &cut_holder, now, now - 1).await.unwrap();
    let rerun = rig.run_on(&through_proxy, service, "evt-next", false).await.unwrap();
    assert_eq!(rerun.outcome, RunOutcome::Complete);

    // THEN the table holds every session, live and current
    let truth = rig.truth(service);
    let items = rig.aws.sessions().await;
    assert_eq!(set(items.keys().cloned()), truth);
    let snapshot = rig.aws.read(&key("snapshots", service, "evt-next")).await.lines;
    for line in &snapshot {
        let item = &items[&text(line, "session_id")];
        assert_eq!(item["record_hash"].as_s().unwrap(), &text(line, "record_hash"));
    }
    // AND every session's opening is in the history once: the failed run wrote no history, and
    // the openings it had written to the table are recorded by the next run
    assert!(rig.aws.keys("history/").await.iter().all(|k| !k.contains("evt-cut")));
    let changes = rig.aws.read(&key("changes", service, "evt-next")).await.lines;
    assert_eq!(changes_by_kind(&changes), BTreeMap::from([("opened".to_owned(), truth.clone())]));
    assert_eq!(rerun.counts.new, truth.len() as u64);
    let statuses: Vec<_> = rig.aws.manifests().await.into_iter().map(|m| (m.run_id, m.status)).collect();
    assert!(statuses.contains(&("evt-next".to_owned(), RunStatus::Complete)), "{statuses:?}");
}

fn assert_json_type(column: &str, ty: ColumnType, value: &Json) {
    let fits = match (ty, value) {
        (_, Json::Null) => true,
        (ColumnType::String, Json::String(_)) => true,
        (ColumnType::Timestamp, Json::String(t)) => session_archiver::model::Timestamp::parse(t).is_ok(),
        (ColumnType::Boolean, Json::Bool(_)) => true,
        (ColumnType::BigInt, Json::Number(n)) => n.is_i64(),
        (ColumnType::StringArray, Json::Array(items)) => items.iter().all(Json::is_string),
        _ => false,
    };
    assert!(fits, "{column} is {ty:?}, the line has {value}");
}

fn attribute_json(value: &AttributeValue) -> Json {
    match value {
        AttributeValue::S(s) => Json::from(s.as_str()),
        AttributeValue::Bool(b) => Json::from(*b),
        AttributeValue::N(n) => Json::from(n.parse::<i64>().unwrap()),
        AttributeValue::L(items) => Json::Array(items.iter().map(attribute_json).collect()),
        other => panic!("unexpected attribute {other:?}"),
    }
}

#[tokio::test]
async fn every_line_has_the_full_column_set_and_round_trips_to_its_item() {
    // GIVEN a complete run of every service
    let rig = Rig::start(small_world()).await;
    for service in ServiceId::ALL {
        let event = format!("cols-{service}");
        rig.run(service, &event).await.unwrap();
        let items = rig.aws.sessions().await;
        let schema: Vec<_> = service.schema().columns().collect();
        for kind in ["snapshots", "changes"] {
            // WHEN a user reads the history objects
            let object = rig.aws.read(&key(kind, service, &event)).await;
            // THEN they are NDJSON, gzip'd
            assert_eq!(object.content_type.as_deref(), Some("application/x-ndjson"));
            assert_eq!(object.content_encoding.as_deref(), Some("gzip"));
            for line in &object.lines {
                // AND every line has every column of the schema, in order, one type per column
                let names: Vec<&str> = line.keys().map(String::as_str).collect();
                let mut expected: Vec<&str> = schema.iter().map(|c| c.name).collect();
                if kind == "changes" {
                    expected.extend(["change", "previous_status"]);
                }
                assert_eq!(names, expected, "{service} {kind}");
                for column in &schema {
                    assert_json_type(column.name, column.ty, &line[column.name]);
                }
                assert_eq!(line["run_id"], Json::from(event.as_str()));
                assert_eq!(line["account_id"], "123456789012");
                // AND the session columns equal the item's attributes (null = absent)
                let item = &items[&text(line, "session_id")];
                for column in schema.iter().skip(4) {
                    let from_item = item.get(column.name).map_or(Json::Null, attribute_json);
                    assert_eq!(line[column.name], from_item, "{service} {}", column.name);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_dry_run_reads_and_reports_but_writes_nothing() {
    // GIVEN an account with GameLift stream sessions and an empty table
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::GameliftStreamSessions;
    // WHEN a dry run runs
    let summary = rig.run_on(&rig.aws, service, "dry-1", true).await.unwrap();
    // THEN it reports what it would archive, and writes no item, manifest or object
    assert_eq!(summary.outcome, RunOutcome::DryRun);
    let n = rig.truth(service).len() as u64;
    assert_eq!((summary.counts.sessions, summary.counts.new, summary.counts.items_written), (n, n, 0));
    assert!(summary.s3_keys.is_empty());
    assert!(rig.aws.scan().await.is_empty());
    assert!(rig.aws.keys("").await.is_empty());
}

#[tokio::test]
async fn a_history_pool_is_settled_once_on_dynamodb_whoever_comes_second() {
    // GIVEN two batches' pools of one run recorded pending in the table on moto
    let rig = Rig::start(small_world()).await;
    let (table, service) = (rig.aws.table(), ServiceId::IvsStreamSessions);
    let pool = |id: &str, parts: &[&str]| HistoryPool {
        id: id.into(),
        keys: vec![format!("history/snapshots/{service}/dt=2026-11-22/plan-1.pool-{id}.jsonl.gz")],
        parts: parts.iter().map(|p| (*p).to_owned()).collect(),
        status: PoolStatus::Pending,
    };
    let (first, second) =
        (pool("a1", &["111111111111.eu-west-1.0", "222222222222.eu-west-1.0"]), pool("b2", &["3.x.0"]));
    for pool in [&first, &second] {
        table.open_pool(service, "plan-1", pool, 4_102_444_800).await.unwrap();
    }
    // WHEN the first is committed by its writer and a part that took over tries to abandon it,
    // and the second is abandoned before its writer commits it
    let committed = table.settle_pool(service, "plan-1", "a1", PoolStatus::Committed).await.unwrap();
    let too_late = table.settle_pool(service, "plan-1", "a1", PoolStatus::Abandoned).await.unwrap();
    let abandoned = table.settle_pool(service, "plan-1", "b2", PoolStatus::Abandoned).await.unwrap();
    let writer_late = table.settle_pool(service, "plan-1", "b2", PoolStatus::Committed).await.unwrap();
    // THEN each is settled once: the second to come learns how it went
    assert_eq!((committed, too_late), (PoolStatus::Committed, PoolStatus::Committed));
    assert_eq!((abandoned, writer_late), (PoolStatus::Abandoned, PoolStatus::Abandoned));
    // AND the run's pools read back whole, with their keys and parts; another run has none
    let mut pools = table.pools(service, "plan-1").await.unwrap();
    pools.sort_by(|a, b| a.id.cmp(&b.id));
    let expected = [
        HistoryPool { status: PoolStatus::Committed, ..first },
        HistoryPool { status: PoolStatus::Abandoned, ..second },
    ];
    assert_eq!(pools, expected);
    assert!(table.pools(service, "plan-2").await.unwrap().is_empty());
    assert!(table.pools(ServiceId::ChimeProxySessions, "plan-1").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_run_while_another_holds_the_lease_is_skipped_and_writes_nothing() {
    // GIVEN another run holding the lease of the service in this account and region
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::IvsStreamSessions;
    let table = rig.aws.table();
    let scope = scope(service);
    let now = session_archiver::model::Timestamp::now().epoch_seconds();
    let other = LeaseHolder { run_id: "someone-else".into(), invocation_id: "their-invocation".into() };
    table.acquire_lease(&scope, &other, now, now + 600).await.unwrap();
    // WHEN a run starts
    let summary = rig.run(service, "late").await.unwrap();
    // THEN it is skipped, naming the holder, and nothing but the lease is in the table
    assert_eq!(summary.outcome, RunOutcome::Skipped);
    assert_eq!(summary.lease_held_by.as_deref(), Some("someone-else"));
    assert_eq!(rig.aws.scan().await.len(), 1);
    assert!(rig.aws.keys("").await.is_empty());
    // AND once the lease has expired, a run takes it and completes
    table.acquire_lease(&scope, &other, now, now - 1).await.unwrap();
    assert_eq!(rig.run(service, "later").await.unwrap().outcome, RunOutcome::Complete);
}

#[tokio::test]
async fn a_large_history_object_is_a_multipart_upload_and_an_abandoned_one_leaves_no_parts() {
    // GIVEN the S3 adapter on moto
    let moto = MotoServer::start().unwrap();
    let aws = LocalAws::create(&moto.url(), TABLE, BUCKET).await;
    let objects = aws.history_bucket();
    let noisy = |i: u64| {
        format!(
            "{{\"n\":{i},\"noise\":\"{:x}{:x}\"}}",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            i.wrapping_mul(0xD1B5_4A32_D192_ED03)
        )
    };

    // WHEN more than a part's worth of gzip'd lines is written
    let mut object = session_archiver::history::HistoryObject::new(&objects, "big.jsonl.gz".into(), 0);
    let lines = 400_000u64;
    for i in 0..lines {
        object.push(&noisy(i)).await.unwrap();
    }
    let written = object.finish().await.unwrap();

    // THEN it went up in parts and reads back whole, with its content type and encoding
    assert!(written.upload_parts >= 2, "{written:?}");
    let read = aws.read("big.jsonl.gz").await;
    assert_eq!(read.lines.len() as u64, lines);
    assert_eq!(read.lines[lines as usize - 1]["n"], lines - 1);
    assert_eq!(read.content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(read.content_encoding.as_deref(), Some("gzip"));

    // WHEN an object is abandoned after its first parts
    let mut object = session_archiver::history::HistoryObject::new(&objects, "abandoned.jsonl.gz".into(), 0);
    for i in 0..lines {
        object.push(&noisy(i)).await.unwrap();
    }
    assert_eq!(aws.open_uploads().await, 1);
    object.abort().await;

    // THEN no upload or object is left behind
    assert_eq!(aws.open_uploads().await, 0);
    assert_eq!(aws.keys("abandoned").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_run_progress_is_kept_per_source_options_until_deleted() {
    // GIVEN the table on moto
    let moto = MotoServer::start().unwrap();
    let aws = LocalAws::create(&moto.url(), TABLE, BUCKET).await;
    let table = aws.table();
    let scope = scope(ServiceId::IvsStreamSessions);
    let at = |t: &str| session_archiver::model::Timestamp::parse(t).unwrap();
    let scheduled = SourceOptions::default().fingerprint();
    let replay = SourceOptions {
        parents: vec!["arn:aws:ivs:us-east-1:123456789012:channel/abcd".into()],
        ..SourceOptions::default()
    }
    .fingerprint();
    let progress = session_archiver::table::Progress {
        run_id: "evt-long".into(),
        event_id: "evt-long".into(),
        event_time: at("2026-11-22T10:00:00Z"),
        trigger: "scheduled".into(),
        started_at: at("2026-11-22T10:00:01Z"),
        options: scheduled.clone(),
        parts: 2,
        counts: Default::default(),
        s3_keys: vec!["history/snapshots/ivs-stream-sessions/dt=2026-11-22/evt-long.jsonl.gz".into()],
        done: ["arn:aws:ivs:us-east-1:123456789012:channel/done".to_owned()].into(),
        cursors: [(
            "arn:aws:ivs:us-east-1:123456789012:channel/half".to_owned(),
            session_archiver::table::Cursor {
                next_token: Some("opaque-token".into()),
                pages_done: 12,
                seen: vec![id_fingerprint("st-1"), id_fingerprint("st-2")],
            },
        )]
        .into(),
        updated_at: at("2026-11-22T10:14:00Z"),
    };
    // WHEN a run saves where it stands, in its item
    let saved = SavedProgress::Inline(progress.encode().unwrap());
    table.put_progress(&scope, &progress, &saved).await.unwrap();
    // THEN a run with the same options finds it whole, one with other options does not
    let found = table.get_progress(&scope, &scheduled).await.unwrap();
    let Some(SavedProgress::Inline(bytes)) = found else { panic!("{found:?}") };
    assert_eq!(session_archiver::table::Progress::decode(&bytes).unwrap(), progress);
    assert_eq!(table.get_progress(&scope, &replay).await.unwrap(), None);
    // AND one kept in an object is named by the item, with its size and hash
    let object = SavedProgress::Object(ProgressObject::of("state/progress/x.json.gz".into(), &bytes));
    table.put_progress(&scope, &progress, &object).await.unwrap();
    assert_eq!(table.get_progress(&scope, &scheduled).await.unwrap(), Some(object));
    // AND once deleted it is gone
    table.delete_progress(&scope, &scheduled).await.unwrap();
    assert_eq!(table.get_progress(&scope, &scheduled).await.unwrap(), None);
}

#[tokio::test]
async fn an_account_wide_listing_keeps_its_state_in_s3_and_an_unchanged_rerun_reads_that_not_the_table() {
    // GIVEN GameLift stream sessions, one account-wide listing, archived once: the run read the
    // (empty) table, wrote the listing's state object, and the lease it gave back vouches for it
    let rig = Rig::start(small_world()).await;
    let service = ServiceId::GameliftStreamSessions;
    let first = rig.run(service, "evt-1").await.unwrap();
    assert_eq!((first.counts.states_rebuilt, first.counts.states_written), (1, 1));
    let states = rig.aws.keys("state/listings/").await;
    assert_eq!(states.len(), 1, "{states:?}");
    let leases: Vec<_> =
        rig.aws.scan().await.into_iter().filter(|i| i["pk"].as_s().unwrap().starts_with("LEASE#")).collect();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["state_generation"].as_s().unwrap(), "evt-1");
    assert_eq!(leases[0]["state_sections"].as_n().unwrap(), "1", "one listing, account-wide");
    assert_eq!(leases[0]["expires_at"].as_n().unwrap(), "0", "given back");
    // WHEN the next run lists the same sessions
    let table = rig.aws.table();
    let (source, objects) = (rig.source(service).await, rig.aws.history_bucket());
    let rerun =
        run(&rig.scope(&source), &source, &table, &objects, &rig.config, &request("evt-2", false)).await.unwrap();
    // THEN it reads the state object and not the table, and writes nothing
    assert_eq!((rerun.outcome, rerun.counts.states_read, rerun.counts.states_rebuilt), (RunOutcome::Complete, 1, 0));
    assert_eq!((rerun.counts.items_written, rerun.state_rebuilt_because.as_deref()), (0, None));
    let queries = table.counters().queries.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(queries, 1, "the run manifests' Query (unfinished runs) only, no session page");
    let snapshot = rig.aws.read(&key("snapshots", service, "evt-2")).await.lines;
    assert_eq!(set(snapshot.iter().map(|l| text(l, "session_id"))), rig.truth(service));
}

#[tokio::test]
async fn a_corrupt_or_missing_state_object_on_s3_is_rebuilt_from_the_table_and_the_run_says_why() {
    for (damage, says) in [("corrupt", "is not used: corrupt"), ("missing", "is missing")] {
        // GIVEN GameLift stream sessions archived once, the scope's state object then damaged,
        // and the sessions moved on a tick
        let rig = Rig::start(small_world()).await;
        let service = ServiceId::GameliftStreamSessions;
        rig.run(service, "evt-1").await.unwrap();
        let state = rig.aws.keys("state/listings/").await.pop().expect("a state object");
        match damage {
            "corrupt" => {
                let body = rig.aws.bytes(&state).await;
                rig.aws.put_object(&state, body[..body.len() / 2].to_vec()).await;
            }
            _ => rig.aws.delete_object(&state).await,
        }
        rig.emulator.advance(1);
        // WHEN the next run comes
        let next = rig.run(service, "evt-2").await.unwrap();
        // THEN it reads the table instead, says why, and the table and its history converge
        let reason = next.state_rebuilt_because.clone().unwrap_or_default();
        assert!(reason.contains(&state) && reason.contains(says), "{damage}: {reason}");
        assert_eq!((next.counts.states_rebuilt, next.counts.states_written), (1, 1), "{damage}");
        let items = rig.aws.sessions().await;
        let live: std::collections::BTreeSet<String> =
            items.iter().filter(|(_, item)| !item.contains_key("gone_at")).map(|(id, _)| id.clone()).collect();
        assert_eq!(live, rig.truth(service), "{damage}");
        let snapshot = rig.aws.read(&key("snapshots", service, "evt-2")).await.lines;
        assert_eq!(set(snapshot.iter().map(|l| text(l, "session_id"))), rig.truth(service));
        // AND the run after it reads the rebuilt object
        let after = rig.run(service, "evt-3").await.unwrap();
        assert_eq!((after.counts.states_read, after.state_rebuilt_because), (1, None), "{damage}");
    }
}

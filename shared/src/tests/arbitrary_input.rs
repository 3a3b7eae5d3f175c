//! Property tests: arbitrary events, configuration values, pages and stored bytes get an answer
//! (a value or an error), never a panic. proptest turns a panic into a failing case and shrinks
//! it to the smallest input that panics; each property runs a bounded number of cases.

use aws_smithy_types::DateTime;
use proptest::prelude::*;
use serde_json::{json, Map, Value as Json};

use crate::archive::config::FunctionConfig;
use crate::archive::event::parse_invocation;
use crate::error::{CallSite, MESSAGE_LIMIT};
use crate::lambda::event::EventWindow;
use crate::model::{ServiceId, Timestamp};
use crate::table::Progress;

fn service() -> impl Strategy<Value = ServiceId> {
    prop::sample::select(ServiceId::ALL.to_vec())
}

/// Text an event, a variable or a page might carry: plausible values, their near misses, and
/// anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "-1",
            "1e400",
            "18446744073709551616",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
            "2026-06-30T23:59:60Z",
            "2026-11-22T10:00:00Z",
            "2026-11-22T10:00:00.123456789Z",
            "2026-11-22",
            "aws.events",
            "Scheduled Event",
            "../etc",
            ".part-0001",
            "wspool-abc123def",
            "ws-abcd1234",
            "arn:aws:ivs:us-east-1:123456789012:channel/abcdABCD1234",
            "http://127.0.0.1:1",
            "user_id=hash",
            "{}",
            "null",
            "é",
            "r-1",
            "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "2024-01-01T00:00:00Z",
            "2023-12-31T23:59:59.999Z",
            "1999-12-31",
            "2024-02-30",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9:._/+ -]{0,40}",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        text().prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(text(), inner, 0..4).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// A scheduled or replay event with its id and time any text, and some of its other fields any
/// value: near enough to a good event that the checks past the first are reached.
fn event_like() -> impl Strategy<Value = Json> {
    let fields = ["version", "detail-type", "source", "account", "region", "resources", "detail", "id", "time"];
    let others = prop::collection::vec((prop::sample::select(fields.to_vec()), json_value()), 0..3);
    let scheduled = (text(), text(), others).prop_map(|(id, time, others)| {
        let mut event = json!({
            "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": time, "region": "us-east-1", "resources": [], "detail": {}
        });
        for (field, value) in others {
            event[field] = value;
        }
        event
    });
    let options = prop::option::of(json_value());
    let replay = (text(), prop::option::of(text()), prop::option::of(json_value()), options).prop_map(
        |(id, time, dry_run, options)| {
            let mut replay = Map::new();
            replay.insert("id".into(), Json::from(id));
            let optional = [("time", time.map(Json::from)), ("dry_run", dry_run), ("options", options)];
            for (field, value) in optional {
                if let Some(value) = value {
                    replay.insert(field.into(), value);
                }
            }
            json!({ "replay": replay })
        },
    );
    prop_oneof![scheduled, replay, json_value()]
}

fn window() -> EventWindow {
    EventWindow::new(
        Timestamp::parse("2026-11-22T10:00:30Z").unwrap(),
        Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
    )
}

/// Any instant the SDK can hold, near the edges of RFC 3339 included.
fn instant() -> impl Strategy<Value = DateTime> {
    let seconds = prop_oneof![
        any::<i64>(),
        -62_135_596_810i64..-62_135_596_790,
        253_402_300_790i64..253_402_300_810,
        0i64..4_102_444_800,
    ];
    (seconds, 0u32..1_000_000_000).prop_map(|(secs, nanos)| DateTime::from_secs_and_nanos(secs, nanos))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_event_gets_an_invocation_or_an_invalid_event_error(service in service(), payload in event_like()) {
        match parse_invocation(service, &payload, &window()) {
            Ok(invocation) => {
                // An accepted event names a partition the history's tables read.
                let day = invocation.request.event_time.day().to_owned();
                prop_assert!(day.as_str() >= "2024-01-01" && day.as_str() <= "2026-11-23", "{}", day);
            }
            Err(err) => {
                prop_assert!(!err.is_retryable());
                prop_assert!(err.to_string().starts_with("invalid event: "));
                prop_assert!(err.to_string().len() <= MESSAGE_LIMIT + 64);
            }
        }
    }

    #[test]
    fn any_configuration_is_taken_or_refused_naming_it(
        service in service(),
        values in prop::collection::btree_map(
            prop::sample::select(vec![
                "TABLE_NAME", "BUCKET_NAME", "AWS_REGION", "HISTORY_PREFIX", "ENDED_RETENTION_DAYS", "LEASE_SECONDS",
                "PAGE_SIZE", "SOURCE_OPTIONS", "MAX_CONCURRENT_LISTINGS", "MAX_CALLS_PER_SECOND",
                "DEADLINE_MARGIN_SECONDS", "PERSONAL_DATA", "PERSONAL_DATA_KEY_SECRET", "SDK_MAX_ATTEMPTS",
                "SDK_ATTEMPT_TIMEOUT_SECONDS", "SDK_OPERATION_TIMEOUT_SECONDS", "HISTORY_START_DATE",
                "SESSION_API_ENDPOINT_URL", "STORAGE_ENDPOINT_URL",
            ]),
            prop_oneof![text(), json_value().prop_map(|v| v.to_string())],
            0..8,
        ),
    ) {
        let defaults = [("TABLE_NAME", "sessions"), ("BUCKET_NAME", "history-bucket"), ("AWS_REGION", "eu-west-1")];
        let var = |name: &str| {
            values.get(name).cloned().or_else(|| defaults.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
        };
        if let Err(err) = FunctionConfig::from_vars(service, var) {
            prop_assert!(err.to_string().starts_with("invalid configuration: "), "{}", err);
            prop_assert!(err.to_string().len() <= MESSAGE_LIMIT + 512, "{}", err.to_string().len());
        }
    }

    #[test]
    fn any_instant_is_a_timestamp_or_refused_and_a_timestamp_reads_back(at in instant()) {
        match Timestamp::from_datetime(&at) {
            Ok(timestamp) => {
                prop_assert_eq!(timestamp.epoch_seconds(), at.secs());
                prop_assert_eq!(Timestamp::parse(timestamp.as_str()).unwrap(), timestamp.clone());
                prop_assert_eq!(timestamp.day().len(), 10);
            }
            Err(err) => prop_assert!(err.to_string().contains("outside years 0001-9999")),
        }
    }

    #[test]
    fn any_page_of_any_api_maps_or_is_a_bad_page(
        times in prop::collection::vec(prop::option::of(instant()), 4),
        strings in prop::collection::vec(prop::option::of(text()), 4),
        minutes in prop::option::of(any::<i32>()),
    ) {
        use crate::sources::{chime, gamelift, ivs, workspaces};
        let site = |service: ServiceId| CallSite { service: service.as_str(), operation: "List", parent: strings[3].clone() };
        let id = strings[0].clone();
        let t = |i: usize| times[i];

        let ivs_session = aws_sdk_ivs::types::StreamSessionSummary::builder()
            .set_stream_id(id.clone()).set_start_time(t(0)).set_end_time(t(1)).has_error_event(true).build();
        let gamelift_session = aws_sdk_gameliftstreams::types::StreamSessionSummary::builder()
            .set_arn(id.clone()).set_user_id(strings[1].clone()).set_created_at(t(0)).set_last_updated_at(t(1))
            .status(aws_sdk_gameliftstreams::types::StreamSessionStatus::from(strings[2].as_deref().unwrap_or("ERROR")))
            .set_location(strings[2].clone()).build();
        let proxy_session = aws_sdk_chimesdkvoice::types::ProxySession::builder()
            .set_proxy_session_id(id.clone()).set_voice_connector_id(strings[1].clone()).set_name(strings[2].clone())
            .set_expiry_minutes(minutes).set_created_timestamp(t(0)).set_updated_timestamp(t(1))
            .set_ended_timestamp(t(2)).build();
        let connection = aws_sdk_workspaces::types::WorkspaceConnectionStatus::builder()
            .set_workspace_id(id.clone()).set_connection_state_check_timestamp(t(0))
            .set_last_known_user_connection_timestamp(t(1)).build();
        let pool_session = aws_sdk_workspaces::types::WorkspacesPoolSession::builder()
            .session_id(id.clone().unwrap_or_default()).pool_id(strings[1].clone().unwrap_or_default())
            .user_id(strings[2].clone().unwrap_or_default()).set_start_time(t(0)).set_expiration_time(t(3)).build();

        let results = [
            ivs::map_stream_session(&site(ServiceId::IvsStreamSessions), &ivs_session),
            gamelift::map_stream_session(&site(ServiceId::GameliftStreamSessions), &gamelift_session),
            chime::map_proxy_session(&site(ServiceId::ChimeProxySessions), &proxy_session),
            workspaces::map_connection_status(&site(ServiceId::WorkspacesConnectionStatus), &connection),
        ];
        let pool = pool_session.map_err(|e| crate::Error::Mapping(e.to_string()))
            .and_then(|s| workspaces::map_pool_session(&site(ServiceId::WorkspacesPoolSessions), &s));
        for result in results.into_iter().chain([pool]) {
            match result {
                // A mapped session hashes and writes as any other.
                Ok(record) => prop_assert_eq!(record.record_hash().len(), 32),
                Err(err) => prop_assert!(!err.is_retryable(), "{}", err),
            }
        }
    }

    #[test]
    fn any_stored_progress_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Progress::decode(&bytes);
    }
}

//! The emulator's wire protocols, validation and control API, checked with the real SDK clients
//! (so a request the SDK sends and a response it parses are the ones AWS documents).

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use session_archiver::aws::SdkSettings;
use session_emulator::{Api, Emulator, EmulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sdk(emulator: &Emulator) -> aws_config::SdkConfig {
    SdkSettings::local(emulator.url()).load().await
}

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("none").to_owned()
}

/// A raw HTTP/1.1 request: status line and body.
async fn raw(emulator: &Emulator, request: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(emulator.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn workspaces_validates_as_documented() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = aws_sdk_workspaces::Client::new(&sdk(&emulator).await);
    let pool = emulator.parents(Api::PoolSessions)[0].clone();

    // Limit above 50
    let err = client.describe_workspaces_pool_sessions().pool_id(&pool).limit(51).send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterValuesException");
    // PoolId off its pattern
    let err = client.describe_workspaces_pool_sessions().pool_id("wspool-TOOLONG123").send().await.unwrap_err();
    let err = err.into_service_error();
    assert_eq!(code(&err), "InvalidParameterValuesException");
    assert!(err.message().unwrap().contains("^wspool-[0-9a-z]{9}$"));
    // a pool that does not exist
    let err = client.describe_workspaces_pool_sessions().pool_id("wspool-000000000").send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    // more than 25 WorkspaceIds
    let ids: Vec<String> = (0..26).map(|i| format!("ws-{i:09}")).collect();
    let err = client.describe_workspaces_connection_status().set_workspace_ids(Some(ids)).send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterValuesException");
    // DescribeWorkspacesPools pages at most 25
    let err = client.describe_workspaces_pools().limit(26).send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidParameterValuesException");
    // a token that was never handed out
    let err = client.describe_workspaces_pool_sessions().pool_id(&pool).next_token("made-up").send().await.unwrap_err();
    let err = err.into_service_error();
    assert_eq!(code(&err), "InvalidParameterValuesException");
    assert_eq!(err.message(), Some("The next token is not valid for this request"));
    // the default page is 20
    let out = client.describe_workspaces_pool_sessions().pool_id(&pool).send().await.unwrap();
    assert_eq!(out.sessions().len(), 20);
    assert!(out.next_token().is_some());
}

#[tokio::test]
async fn ivs_chime_and_gamelift_validate_as_documented() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let sdk = sdk(&emulator).await;
    let ivs = aws_sdk_ivs::Client::new(&sdk);
    let channel = emulator.parents(Api::IvsStreamSessions)[0].clone();
    let err = ivs.list_stream_sessions().channel_arn(&channel).max_results(101).send().await.unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
    let err = ivs.list_stream_sessions().channel_arn("channel-1").send().await.unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
    let missing = "arn:aws:ivs:us-east-1:123456789012:channel/nope";
    let err = ivs.list_stream_sessions().channel_arn(missing).send().await.unwrap_err();
    // IVS carries its message in `exceptionMessage`
    match err.into_service_error() {
        aws_sdk_ivs::operation::list_stream_sessions::ListStreamSessionsError::ResourceNotFoundException(e) => {
            assert_eq!(e.exception_message(), Some(format!("Channel {missing} does not exist").as_str()));
        }
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }

    let chime = aws_sdk_chimesdkvoice::Client::new(&sdk);
    let connector = emulator.parents(Api::ChimeProxySessions)[0].clone();
    #[allow(deprecated)]
    let err = chime.list_proxy_sessions().voice_connector_id(&connector).max_results(0).send().await.unwrap_err();
    assert!(err.into_service_error().is_bad_request_exception());
    #[allow(deprecated)]
    let err = chime.list_proxy_sessions().voice_connector_id("gone").send().await.unwrap_err();
    assert!(err.into_service_error().is_not_found_exception());
    let err = chime.list_voice_connectors().max_results(101).send().await.unwrap_err();
    assert!(err.into_service_error().is_bad_request_exception());

    let gamelift = aws_sdk_gameliftstreams::Client::new(&sdk);
    let err = gamelift.list_stream_sessions_by_account().max_results(101).send().await.unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
    // the default page is 25
    let out = gamelift.list_stream_sessions_by_account().send().await.unwrap();
    assert_eq!(out.items().len(), 25);
}

#[tokio::test]
async fn unsigned_requests_and_unknown_targets_are_refused_in_the_service_error_shape() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    // awsJson1.1: the error type travels in `__type`
    let (status, body) = raw(
        &emulator,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: WorkspacesService.DescribeWorkspacesPools\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    assert!(status.contains("400"), "{status}");
    assert!(body.contains(r#""__type":"MissingAuthenticationTokenException""#), "{body}");
    let (status, body) = raw(
        &emulator,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: WorkspacesService.TerminateWorkspaces\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.contains("400"), "{status}");
    assert!(body.contains("UnknownOperationException"), "{body}");
    // restJson1: the error type travels in `x-amzn-errortype`, with the documented status
    let (status, _) = raw(&emulator, "GET /streamsessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(status.contains("403"), "{status}");
}

#[tokio::test]
async fn the_control_api_ticks_and_reports_calls() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (status, body) = raw(
        &emulator,
        "POST /_emulator/tick?n=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains(r#""tick":3"#), "{body}");
    assert_eq!(emulator.tick(), 3);
    let (_, body) = raw(
        &emulator,
        "PUT /_emulator/faults/ListChannels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{\"throttle_rate\": 1.0}",
    )
    .await;
    assert!(body.is_empty(), "{body}");
    let ivs = aws_sdk_ivs::Client::new(&sdk(&emulator).await);
    let err = ivs.list_channels().send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "ThrottlingException");
    let (_, body) = raw(&emulator, "GET /_emulator/calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(calls["ListChannels"]["throttled"], calls["ListChannels"]["calls"]);
    let (_, body) = raw(
        &emulator,
        "GET /_emulator/sessions/gamelift-stream-sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(sessions.len(), emulator.sessions(Api::GameliftStreamSessions).len());
}

/// The SDK settings of a caller holding `access_key_id` (as moto's STS issues it) in `region`.
async fn signed_as(emulator: &Emulator, access_key_id: &str, region: &str) -> aws_config::SdkConfig {
    let sdk = sdk(emulator).await;
    let credentials =
        aws_credential_types::Credentials::new(access_key_id, "secret", Some("token".into()), None, "test");
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
        .build()
}

#[tokio::test]
async fn each_account_and_region_is_a_world_of_its_own_answering_only_its_own_signers() {
    // GIVEN the home account in us-east-1, and account 111122223333 in eu-west-1 and us-east-1
    let config = EmulatorConfig {
        other_scopes: vec![
            session_emulator::ScopeWorld {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                denied: false,
                empty: false,
            },
            session_emulator::ScopeWorld {
                account_id: "111122223333".into(),
                region: "us-east-1".into(),
                denied: false,
                empty: false,
            },
            session_emulator::ScopeWorld {
                account_id: "111122223333".into(),
                region: "eu-central-1".into(),
                denied: true,
                empty: false,
            },
        ],
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.unwrap();
    // A temporary key of 111122223333, as moto's STS issues it (the key id encodes the account).
    let key = "ASIARTX3GSDS4FQTHS2Y";
    let ids = |sessions: Vec<session_emulator::SimSession>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();

    // WHEN each world is listed by a caller signed for it
    let mut listed = Vec::new();
    for (sdk, account, region) in [
        (sdk(&emulator).await, "123456789012", "us-east-1"),
        (signed_as(&emulator, key, "eu-west-1").await, "111122223333", "eu-west-1"),
        (signed_as(&emulator, key, "us-east-1").await, "111122223333", "us-east-1"),
    ] {
        let gamelift = aws_sdk_gameliftstreams::Client::new(&sdk);
        let page = gamelift.list_stream_sessions_by_account().max_results(100).send().await.unwrap();
        let got: Vec<String> = page.items().iter().map(|s| s.arn().unwrap_or_default().to_owned()).collect();
        // THEN it gets that world's sessions, named in that account and region
        let truth = ids(emulator.sessions_in(account, region, Api::GameliftStreamSessions).unwrap());
        assert_eq!(got, truth, "{account} {region}");
        assert!(got.iter().all(|arn| arn.contains(&format!(":{region}:{account}:"))), "{got:?}");
        listed.push(got);
    }
    // AND the three worlds hold different sessions
    assert!(listed[0] != listed[1] && listed[1] != listed[2]);

    // WHEN the account is called in a region it has no world in
    let ivs = aws_sdk_ivs::Client::new(&signed_as(&emulator, key, "ap-south-1").await);
    let err = ivs.list_channels().send().await.unwrap_err().into_service_error();
    // THEN it is refused as AWS refuses a region the account has not enabled
    assert_eq!(code(&err), "UnrecognizedClientException");
    // AND a scope whose calls a service control policy denies answers AccessDeniedException, naming it
    let ivs = aws_sdk_ivs::Client::new(&signed_as(&emulator, key, "eu-central-1").await);
    let err = ivs.list_channels().send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "AccessDeniedException");
    let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
    assert!(text.contains("ivs:ListChannels with an explicit deny in a service control policy"), "{text}");
    // AND the truth API answers per account and region too
    assert!(emulator.sessions_in("111122223333", "ap-south-1", Api::IvsStreamSessions).is_none());
}

//! Scopes end to end: the planner's adapters on moto's Organizations, SSM, Account Management and
//! SQS, and a real function
//! binary taking scope messages as SQS events through the Lambda Runtime API.

use std::collections::{BTreeMap, BTreeSet};

use archiver_e2e::api_of;
use archiver_e2e::lambda::Outcome;
use archiver_e2e::organization::{deploy_member_role, drain_queue, function_credentials, signed_with};
use archiver_e2e::stage::{local_world, start_function, LocalStage};
use archiver_e2e::MotoServer;
use serde_json::{json, Value as Json};
use session_archiver::aws::member::MemberRoles;
use session_archiver::aws::sqs::SqsSender;
use session_archiver::aws::SdkSettings;
use session_archiver::plan::organizations::OrganizationsDirectory;
use session_archiver::plan::{
    plan, AccountSource, AwsRegionDirectory, PlanConfig, PlanRequest, RegionSource, ScopeMessage,
};
use session_archiver::ServiceId;

/// An SQS event as Lambda's event source mapping delivers it, one record per body.
fn sqs_event(bodies: &[(&str, String)]) -> Json {
    let records: Vec<Json> = bodies
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763805600000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ivs-stream-sessions-scopes",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn a_function_runs_the_scope_messages_of_its_queue_and_hands_back_the_ones_that_failed() {
    // GIVEN the IVS function, and a queue batch of a scope message for its own account and
    // region, and one that is not a scope message
    let service = ServiceId::IvsStreamSessions;
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    let mut function = stage.function(service).await.unwrap();
    let good = json!({
        "service": service.as_str(),
        "account_id": "123456789012",
        "region": "us-east-1",
        "run_id": "plan-evt-1",
        "event_time": "2026-11-22T10:00:00Z"
    });
    let event = sqs_event(&[("m-good", good.to_string()), ("m-bad", "{\"account_id\": 7}".to_owned())]);

    // WHEN the function takes the batch
    let response = match function.invoke(event).await.unwrap() {
        Outcome::Response(response) => response,
        Outcome::Error { error_type, error_message } => panic!("the batch failed whole: {error_type}: {error_message}"),
    };

    // THEN only the bad message comes back to the queue
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": "m-bad"}]}));
    // AND the good one archived its scope: the table holds the emulator's sessions, and the
    // history is under the planner's run id, in that account and region
    let truth: BTreeSet<String> = stage.emulator.sessions(api_of(service)).into_iter().map(|s| s.id).collect();
    let items: BTreeSet<String> = stage.aws.sessions().await.into_keys().collect();
    assert_eq!(items, truth);
    let keys = stage.aws.keys("history/snapshots/").await;
    assert_eq!(
        keys,
        ["history/snapshots/ivs-stream-sessions/dt=2026-11-22/123456789012.us-east-1.plan-evt-1.jsonl.gz"]
    );
    // AND the function's log names the bad message and why
    let log = function.log().join("\n");
    assert!(log.contains("m-bad") && log.contains("scope message"), "{log}");
}

/// `service`'s function with its dead-letter queue on moto, one attempt per call: the function,
/// the SQS client and the queue's URL.
async fn with_dead_letters(
    stage: &LocalStage,
    service: ServiceId,
) -> (archiver_e2e::lambda::LocalFunction, aws_sdk_sqs::Client, String) {
    with_dead_letters_and(stage, service, &[], std::time::Duration::from_secs(120)).await
}

/// As [`with_dead_letters`], with `extra` variables and a Lambda timeout of `timeout`.
async fn with_dead_letters_and(
    stage: &LocalStage,
    service: ServiceId,
    extra: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (archiver_e2e::lambda::LocalFunction, aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&stage.aws.settings.load().await);
    let created = sqs.create_queue().queue_name(format!("{service}-dead-letters")).send().await.unwrap();
    let dead_letter_queue = created.queue_url().unwrap().to_owned();
    let mut env = stage.function_env();
    env.push(("SCOPE_DEAD_LETTER_QUEUE_URL".into(), dead_letter_queue.clone()));
    env.push(("SDK_MAX_ATTEMPTS".into(), "1".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let function = start_function(service, &env, timeout).await.unwrap();
    (function, sqs, dead_letter_queue)
}

#[tokio::test]
async fn a_scope_in_a_region_its_account_has_not_enabled_is_dead_lettered_at_once_asking_whether_it_is() {
    // GIVEN the IVS function, and a scope message for its own account in af-south-1, an opt-in
    // region the account has not enabled (the emulator, as AWS, refuses its credentials there)
    let service = ServiceId::IvsStreamSessions;
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    let (mut function, sqs, dead_letter_queue) = with_dead_letters(&stage, service).await;
    let scope = json!({
        "service": service.as_str(),
        "account_id": "123456789012",
        "region": "af-south-1",
        "run_id": "plan-evt-3",
        "event_time": "2026-11-22T10:00:00Z"
    });

    // WHEN the function takes it on its first delivery
    let response = function.invoke(sqs_event(&[("m-opt-in", scope.to_string())])).await.unwrap();

    // THEN it is not handed back for a retry that cannot help, but dead-lettered with its reason
    let Outcome::Response(response) = response else { panic!("{response:?}") };
    assert_eq!(response, json!({"batchItemFailures": []}));
    let letters = drain_queue(&sqs, &dead_letter_queue).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let message = &letters[0].1["ErrorMessage"];
    assert_eq!(letters[0].1["ErrorType"], "NonRetryable.SessionApi");
    assert!(message.starts_with("account 123456789012, region af-south-1: ivs-stream-sessions ListChannels failed: UnrecognizedClientException"), "{message}");
    assert!(
        message.ends_with(
            "(is af-south-1 enabled in this account? A region the account has not enabled refuses its credentials)"
        ),
        "{message}"
    );
    // AND nothing was written for it
    assert!(stage.aws.sessions().await.is_empty());
}

#[tokio::test]
async fn a_scope_message_no_retry_can_mend_goes_to_the_dead_letter_queue_with_its_error() {
    // GIVEN the IVS function with its dead-letter queue on moto, one attempt per call, and a
    // session API answering 503 to every call
    let service = ServiceId::IvsStreamSessions;
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    let (mut function, sqs, dead_letter_queue) = with_dead_letters(&stage, service).await;
    stage.emulator.set_faults("*", session_emulator::FaultPlan::server_errors(1.0, 503));
    let scope = json!({
        "service": service.as_str(),
        "account_id": "123456789012",
        "region": "us-east-1",
        "run_id": "plan-evt-2",
        "event_time": "2026-11-22T10:00:00Z"
    })
    .to_string();
    let malformed = "{\"account_id\": 7}".to_owned();

    // WHEN a batch holds a malformed message and a scope on its first delivery
    let first = function.invoke(sqs_event(&[("m-bad", malformed.clone()), ("m-scope", scope.clone())])).await.unwrap();

    // THEN the scope comes back for another delivery, and the malformed message is dead-lettered
    // at once with its error
    let Outcome::Response(first) = first else { panic!("{first:?}") };
    assert_eq!(first, json!({"batchItemFailures": [{"itemIdentifier": "m-scope"}]}));
    let letters = drain_queue(&sqs, &dead_letter_queue).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["ErrorType"], "NonRetryable.InvalidEvent");
    assert!(letters[0].1["ErrorMessage"].contains("scope message"), "{letters:?}");

    // WHEN the scope comes on its third delivery (SCOPE_MAX_RECEIVES) and fails again
    let mut last = sqs_event(&[("m-scope", scope.clone())]);
    last["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("3");
    let Outcome::Response(last) = function.invoke(last).await.unwrap() else { panic!("the batch failed whole") };

    // THEN it is not handed back but dead-lettered, with the session API's error and the count
    assert_eq!(last, json!({"batchItemFailures": []}));
    let letters = drain_queue(&sqs, &dead_letter_queue).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (body, attributes) = &letters[0];
    assert_eq!(body["scopes"], json!([{"account_id": "123456789012", "region": "us-east-1"}]));
    assert_eq!(body["attempts"], 3, "the tries it had");
    assert_eq!((attributes["ErrorType"].as_str(), attributes["ReceiveCount"].as_str()), ("Retryable.SessionApi", "3"));
    assert!(attributes["ErrorMessage"].contains("ServiceUnavailable"), "{attributes:?}");
}

#[tokio::test]
async fn a_failed_scope_is_sent_again_alone_with_its_tries_and_dead_lettered_on_its_last() {
    // GIVEN the IVS function with its own scope queue (retries at once) and its dead-letter
    // queue, and a session API answering 503 to every call
    let service = ServiceId::IvsStreamSessions;
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&stage.aws.settings.load().await);
    let created = sqs.create_queue().queue_name(format!("{service}-scopes")).send().await.unwrap();
    let queue = created.queue_url().unwrap().to_owned();
    let extra = [("SCOPE_QUEUE_URL", queue.as_str()), ("SCOPE_RETRY_SECONDS", "0")];
    let (mut function, sqs, dead_letter_queue) =
        with_dead_letters_and(&stage, service, &extra, std::time::Duration::from_secs(120)).await;
    stage.emulator.set_faults("*", session_emulator::FaultPlan::server_errors(1.0, 503));
    let batch = json!({
        "service": service.as_str(), "run_id": "plan-evt-4", "event_time": "2026-11-22T10:00:00Z",
        "scopes": [{"account_id": "123456789012", "region": "us-east-1"}]
    });

    // WHEN the batch fails on its first delivery, and each message sent again fails too
    let mut body = batch.to_string();
    let mut sent_again = Vec::new();
    for _ in 0..3 {
        let Outcome::Response(response) = function.invoke(sqs_event(&[("m", body.clone())])).await.unwrap() else {
            panic!("the invocation failed whole")
        };
        // THEN the message is never handed back whole
        assert_eq!(response, json!({"batchItemFailures": []}));
        match drain_queue(&sqs, &queue).await.pop() {
            Some((again, _)) => {
                sent_again.push(again["attempts"].clone());
                body = again.to_string();
            }
            None => break,
        }
    }
    // AND the scope was sent again alone after its first and second tries, counting them
    assert_eq!(sent_again, [json!(1), json!(2)]);
    // AND after its third (SCOPE_MAX_RECEIVES) it is in the dead-letter queue with its reason
    let letters = drain_queue(&sqs, &dead_letter_queue).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (letter, attributes) = &letters[0];
    assert_eq!((letter["scopes"].clone(), letter["attempts"].clone()), (batch["scopes"].clone(), json!(3)));
    assert_eq!((attributes["ErrorType"].as_str(), attributes["ReceiveCount"].as_str()), ("Retryable.SessionApi", "3"));
}

#[tokio::test]
async fn a_batch_no_scope_of_which_has_time_to_start_is_dead_lettered_naming_the_margin() {
    // GIVEN the IVS function with its dead-letter queue, whose invocations (10 s) are shorter
    // than the margin before the deadline at which paging stops (60 s by default)
    let service = ServiceId::IvsStreamSessions;
    let stage = LocalStage::start(local_world().unwrap()).await.unwrap();
    // Waits give up 3 s before the deadline (not 21 s, before the invocation began): the
    // personal-data key is read in time.
    let extra = [("SDK_ATTEMPT_TIMEOUT_SECONDS", "1")];
    let (mut function, sqs, dead_letter_queue) =
        with_dead_letters_and(&stage, service, &extra, std::time::Duration::from_secs(10)).await;
    let batch = json!({
        "service": service.as_str(), "run_id": "plan-evt-5", "event_time": "2026-11-22T10:00:00Z",
        "scopes": [{"account_id": "123456789012", "region": "us-east-1"}]
    });

    // WHEN a batch comes
    let Outcome::Response(response) = function.invoke(sqs_event(&[("m", batch.to_string())])).await.unwrap() else {
        panic!("the invocation failed whole")
    };

    // THEN it is not sent again (every invocation would find the same): it goes to the
    // dead-letter queue at once, naming the setting, and nothing was read or written
    assert_eq!(response, json!({"batchItemFailures": []}));
    let letters = drain_queue(&sqs, &dead_letter_queue).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["ErrorType"], "NonRetryable.Configuration");
    assert!(letters[0].1["ErrorMessage"].contains("DEADLINE_MARGIN_SECONDS=60"), "{letters:?}");
    assert!(stage.aws.sessions().await.is_empty());
    assert!(stage.emulator.calls().values().all(|c| c.calls == 0));
}

/// moto's Organizations with a root, an OU holding a nested OU, and accounts in each; one of the
/// OU's accounts closed (SUSPENDED).
struct Organization {
    root: String,
    workload: String,
    accounts: BTreeMap<&'static str, String>,
}

async fn organization(sdk: &aws_config::SdkConfig) -> Organization {
    let client = aws_sdk_organizations::Client::new(sdk);
    client.create_organization().feature_set("ALL".into()).send().await.unwrap();
    let root = client.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_owned();
    let ou = |parent: String, name: &'static str| {
        let client = client.clone();
        async move {
            let made = client.create_organizational_unit().parent_id(parent).name(name).send().await.unwrap();
            made.organizational_unit().unwrap().id().unwrap().to_owned()
        }
    };
    let workload = ou(root.clone(), "workload").await;
    let nested = ou(workload.clone(), "nested").await;
    let mut accounts = BTreeMap::new();
    for (name, parent) in
        [("at-root", &root), ("in-workload", &workload), ("closed", &workload), ("in-nested", &nested)]
    {
        let made =
            client.create_account().account_name(name).email(format!("{name}@example.com")).send().await.unwrap();
        let id = made.create_account_status().unwrap().account_id().unwrap().to_owned();
        client
            .move_account()
            .account_id(&id)
            .source_parent_id(&root)
            .destination_parent_id(parent)
            .send()
            .await
            .unwrap();
        accounts.insert(name, id);
    }
    client.close_account().account_id(&accounts["closed"]).send().await.unwrap();
    Organization { root, workload, accounts }
}

fn region_directory(sdk: &aws_config::SdkConfig) -> AwsRegionDirectory {
    AwsRegionDirectory::new(aws_sdk_ssm::Client::new(sdk), aws_sdk_account::Client::new(sdk))
}

/// The plan event `plan-evt-1` of 2026-11-22 10:00 for `service`.
fn plan_request(service: ServiceId) -> PlanRequest {
    PlanRequest {
        service,
        run_id: session_archiver::history::RunId::parse("plan-evt-1").unwrap(),
        event_time: session_archiver::model::Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
    }
}

async fn received(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<ScopeMessage> {
    let drained = drain_queue(sqs, queue_url).await;
    drained.into_iter().map(|(body, _)| serde_json::from_value(body).unwrap()).collect()
}

/// The accounts and regions of the messages in the queue, taken out of it.
async fn scopes_received(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<(String, String)> {
    let messages = received(sqs, queue_url).await;
    messages.into_iter().flat_map(|m| m.scopes).map(|s| (s.account_id, s.region)).collect()
}

#[tokio::test]
async fn the_planner_sends_each_active_account_and_region_of_an_ou_in_batches_and_nothing_for_an_unknown_ou() {
    // GIVEN an organization on moto, and the IVS queue
    let moto = MotoServer::start().unwrap();
    let sdk = SdkSettings::local(moto.url()).load().await;
    let org = organization(&sdk).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("ivs-stream-sessions-scopes")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let directory = OrganizationsDirectory::new(aws_sdk_organizations::Client::new(&sdk));
    let regions = region_directory(&sdk);
    let queue = SqsSender::new(sqs.clone());
    let config = |parents: Vec<String>| PlanConfig {
        accounts: AccountSource::Organization { parents },
        exclude: BTreeSet::new(),
        regions: RegionSource::Listed(vec!["eu-west-1".into(), "us-east-1".into()]),
        queues: BTreeMap::from([(ServiceId::IvsStreamSessions, queue_url.clone())]),
        batch_size: 3,
    };
    let request = plan_request(ServiceId::IvsStreamSessions);

    // WHEN it plans the workload OU
    let summary = plan(&directory, &regions, &queue, &config(vec![org.workload.clone()]), "123456789012", &request)
        .await
        .unwrap();

    // THEN the queue holds each region of each ACTIVE account under the OU, nested OU included,
    // in batches of three
    let messages = received(&sqs, &queue_url).await;
    let mut sizes: Vec<usize> = messages.iter().map(|m| m.scopes.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3]);
    let sent: BTreeSet<(String, String)> =
        messages.into_iter().flat_map(|m| m.scopes).map(|s| (s.account_id, s.region)).collect();
    let expected: BTreeSet<(String, String)> = [&org.accounts["in-workload"], &org.accounts["in-nested"]]
        .into_iter()
        .flat_map(|a| ["eu-west-1", "us-east-1"].map(|r| (a.clone(), r.to_owned())))
        .collect();
    assert_eq!(sent, expected);
    // AND the summary counts them and names the closed account
    assert_eq!((summary.accounts, summary.scopes, summary.messages_sent), (2, 4, 2));
    assert_eq!(
        summary.inactive.iter().map(|a| (a.id.as_str(), a.state.as_str())).collect::<Vec<_>>(),
        [(org.accounts["closed"].as_str(), "SUSPENDED")]
    );

    // WHEN the whole organization is planned
    let whole = plan(&directory, &regions, &queue, &config(vec![]), "123456789012", &request).await.unwrap();
    // THEN the account at the root is planned as well (and moto's management account)
    let accounts: BTreeSet<String> = scopes_received(&sqs, &queue_url).await.into_iter().map(|(a, _)| a).collect();
    assert!(accounts.contains(&org.accounts["at-root"]) && !accounts.contains(&org.accounts["closed"]), "{accounts:?}");
    assert_eq!(whole.scopes, 2 * whole.accounts);

    // WHEN an OU the organization does not have is planned
    let unknown = format!("ou-{}-zzzzzzzz", org.root.trim_start_matches("r-"));
    let err =
        plan(&directory, &regions, &queue, &config(vec![unknown.clone()]), "123456789012", &request).await.unwrap_err();
    // THEN the error names it, and nothing was sent
    assert!(err.to_string().contains(&format!("parent {unknown}")), "{err}");
    assert!(received(&sqs, &queue_url).await.is_empty());
}

/// The regions AWS enabled in every account before opt-in regions, where WorkSpaces is offered
/// (AWS's public parameters as the pinned moto serves them).
const WORKSPACES_ENABLED_BY_DEFAULT: [&str; 14] = [
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-2",
];

#[tokio::test]
async fn with_enabled_regions_each_account_is_planned_where_it_has_enabled_a_region_and_the_service_is_offered() {
    // GIVEN the organization on moto, where in-workload has enabled af-south-1 (an opt-in region
    // where WorkSpaces is offered) and in-nested has not, and the WorkSpaces Pools queue
    let moto = MotoServer::start().unwrap();
    let sdk = SdkSettings::local(moto.url()).load().await;
    let org = organization(&sdk).await;
    let (in_workload, in_nested) = (&org.accounts["in-workload"], &org.accounts["in-nested"]);
    let account = aws_sdk_account::Client::new(&sdk);
    account.enable_region().account_id(in_workload).region_name("af-south-1").send().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs.create_queue().queue_name("pools").send().await.unwrap().queue_url().unwrap().to_owned();
    let service = ServiceId::WorkspacesPoolSessions;
    let config = |accounts: AccountSource| PlanConfig {
        accounts,
        exclude: BTreeSet::new(),
        regions: RegionSource::Enabled,
        queues: BTreeMap::from([(service, queue_url.clone())]),
        batch_size: 50,
    };
    let request = plan_request(service);
    let directory = OrganizationsDirectory::new(aws_sdk_organizations::Client::new(&sdk));
    let (regions, queue) = (region_directory(&sdk), SqsSender::new(sqs.clone()));

    // WHEN the workload OU is planned with REGIONS=enabled
    let workload = config(AccountSource::Organization { parents: vec![org.workload.clone()] });
    let summary = plan(&directory, &regions, &queue, &workload, "123456789012", &request).await.unwrap();

    // THEN each account has a message for every region enabled by default where WorkSpaces is
    // offered, and in-workload also for af-south-1; no account for eu-north-1 (enabled, not offered)
    let mut sent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (account, region) in scopes_received(&sqs, &queue_url).await {
        sent.entry(account).or_default().insert(region);
    }
    let by_default: BTreeSet<String> = WORKSPACES_ENABLED_BY_DEFAULT.map(String::from).into();
    let mut with_opt_in = by_default.clone();
    with_opt_in.insert("af-south-1".into());
    assert_eq!(sent, BTreeMap::from([(in_workload.clone(), with_opt_in), (in_nested.clone(), by_default)]));
    // AND the summary names the enabled regions where WorkSpaces is not offered
    assert_eq!(summary.scopes, 29);
    assert!(summary.not_offered.contains(&"eu-north-1".to_owned()), "{:?}", summary.not_offered);

    // WHEN the planner's own account and a member are planned by id
    let listed = config(AccountSource::Listed(vec!["123456789012".into(), in_workload.clone()]));
    let summary = plan(&directory, &regions, &queue, &listed, "123456789012", &request).await.unwrap();
    // THEN its own account is asked for without its id (as ListRegions requires) and planned too
    assert_eq!((summary.accounts, summary.scopes), (2, 29));
    let accounts: BTreeSet<String> = scopes_received(&sqs, &queue_url).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(accounts, BTreeSet::from(["123456789012".to_owned(), in_workload.clone()]));

    // WHEN a region is listed where WorkSpaces is not offered
    let mut listed = config(AccountSource::Own);
    listed.regions = RegionSource::Listed(vec!["us-east-1".into(), "eu-north-1".into()]);
    let summary = plan(&directory, &regions, &queue, &listed, "123456789012", &request).await.unwrap();
    // THEN it gets no message, and the summary names it
    let regions_sent: Vec<String> = scopes_received(&sqs, &queue_url).await.into_iter().map(|(_, r)| r).collect();
    assert_eq!(regions_sent, ["us-east-1"]);
    assert_eq!(summary.not_offered, ["eu-north-1"]);

    // WHEN an account outside the organization is planned with REGIONS=enabled
    let outsider = config(AccountSource::Listed(vec!["111122223333".into()]));
    let err = plan(&directory, &regions, &queue, &outsider, "123456789012", &request).await.unwrap_err();
    // THEN the plan fails naming the account and Account Management's refusal, and nothing is sent
    let text = err.to_string();
    assert!(text.starts_with("Account ListRegions on account 111122223333 failed: AccessDeniedException"), "{text}");
    assert!(received(&sqs, &queue_url).await.is_empty());
}

#[tokio::test]
async fn the_member_role_lets_in_the_archive_functions_with_the_external_id_and_no_one_else() {
    // GIVEN an organization whose account A has the member role (member-role.yaml) for ExternalId
    // `ext-1`, account B none, and account C one for another ExternalId
    let moto = MotoServer::start().unwrap();
    let sdk = SdkSettings::local(moto.url()).load().await;
    let org = organization(&sdk).await;
    let organizations = aws_sdk_organizations::Client::new(&sdk);
    let organization_id =
        organizations.describe_organization().send().await.unwrap().organization().unwrap().id().unwrap().to_owned();
    let (a, b, c) = (&org.accounts["in-workload"], &org.accounts["at-root"], &org.accounts["in-nested"]);
    deploy_member_role(&sdk, a, &organization_id, "ext-1").await;
    deploy_member_role(&sdk, c, &organization_id, "other").await;
    // AND the IVS function's credentials, of its role under /session-archiver/
    let function = signed_with(&sdk, function_credentials(&sdk, "/session-archiver/").await);
    let roles = |sdk: &aws_config::SdkConfig| {
        MemberRoles::new(aws_sdk_sts::Client::new(sdk), "aws", "session-archiver-member", Some("ext-1".into()))
    };

    // WHEN the function assumes the member role in A
    let credentials = roles(&function).credentials(a, "plan-evt-1").await.unwrap();
    // THEN it gets A's credentials (the key id names A, as the emulator reads it)
    assert_eq!(session_emulator::identity::account_of(credentials.access_key_id()).as_deref(), Some(a.as_str()));

    // WHEN it tries B (no role) and C (another ExternalId)
    for (account, why) in [(b, "no member role"), (c, "another ExternalId")] {
        let err = roles(&function).credentials(account, "plan-evt-1").await.unwrap_err();
        // THEN STS refuses, and the error names the role and what to check
        let text = err.to_string();
        assert!(
            text.contains(&format!("role arn:aws:iam::{account}:role/session-archiver-member failed: AccessDenied")),
            "{why}: {text}"
        );
        assert!(text.contains("is the member role deployed in this account"), "{why}: {text}");
        assert!(!err.is_retryable(), "{why}");
    }
    // AND a caller outside /session-archiver/ (the plain local key) is refused in A too
    let err = roles(&sdk).credentials(a, "plan-evt-1").await.unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
}

//! Scopes end to end: the planner's adapters on moto's Organizations and SQS, and a real function
//! binary taking scope messages as SQS events through the Lambda Runtime API.

use std::collections::{BTreeMap, BTreeSet};

use archiver_e2e::api_of;
use archiver_e2e::lambda::Outcome;
use archiver_e2e::stage::{local_world, LocalStage};
use archiver_e2e::MotoServer;
use serde_json::{json, Value as Json};
use session_archiver::aws::SdkSettings;
use session_archiver::event::ScopeMessage;
use session_archiver::plan::{plan, AccountSource, OrganizationsDirectory, PlanConfig, PlanRequest, SqsScopeQueue};
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

async fn received(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<ScopeMessage> {
    let mut messages = Vec::new();
    loop {
        let page = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
        if page.messages().is_empty() {
            return messages;
        }
        for message in page.messages() {
            messages.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn the_planner_sends_one_message_per_active_account_and_region_of_an_ou_and_nothing_for_an_unknown_ou() {
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
    let queue = SqsScopeQueue::new(sqs.clone());
    let config = |parents: Vec<String>| PlanConfig {
        accounts: AccountSource::Organization { parents },
        exclude: BTreeSet::new(),
        regions: vec!["eu-west-1".into(), "us-east-1".into()],
        queues: BTreeMap::from([(ServiceId::IvsStreamSessions, queue_url.clone())]),
    };
    let request = PlanRequest {
        service: ServiceId::IvsStreamSessions,
        run_id: session_archiver::history::RunId::parse("plan-evt-1").unwrap(),
        event_time: session_archiver::model::Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
    };

    // WHEN it plans the workload OU
    let summary =
        plan(&directory, &queue, &config(vec![org.workload.clone()]), "123456789012", &request).await.unwrap();

    // THEN the queue holds one message per region for each ACTIVE account under the OU, nested OU included
    let sent: BTreeSet<(String, String)> =
        received(&sqs, &queue_url).await.into_iter().map(|m| (m.account_id, m.region)).collect();
    let expected: BTreeSet<(String, String)> = [&org.accounts["in-workload"], &org.accounts["in-nested"]]
        .into_iter()
        .flat_map(|a| ["eu-west-1", "us-east-1"].map(|r| (a.clone(), r.to_owned())))
        .collect();
    assert_eq!(sent, expected);
    // AND the summary counts them and names the closed account
    assert_eq!((summary.accounts, summary.scopes, summary.messages_sent), (2, 4, 4));
    assert_eq!(
        summary.inactive.iter().map(|a| (a.id.as_str(), a.state.as_str())).collect::<Vec<_>>(),
        [(org.accounts["closed"].as_str(), "SUSPENDED")]
    );

    // WHEN the whole organization is planned
    let whole = plan(&directory, &queue, &config(vec![]), "123456789012", &request).await.unwrap();
    // THEN the account at the root is planned as well (and moto's management account)
    let accounts: BTreeSet<String> = received(&sqs, &queue_url).await.into_iter().map(|m| m.account_id).collect();
    assert!(accounts.contains(&org.accounts["at-root"]) && !accounts.contains(&org.accounts["closed"]), "{accounts:?}");
    assert_eq!(whole.scopes, 2 * whole.accounts);

    // WHEN an OU the organization does not have is planned
    let unknown = format!("ou-{}-zzzzzzzz", org.root.trim_start_matches("r-"));
    let err = plan(&directory, &queue, &config(vec![unknown.clone()]), "123456789012", &request).await.unwrap_err();
    // THEN the error names it, and nothing was sent
    assert!(err.to_string().contains(&format!("parent {unknown}")), "{err}");
    assert!(received(&sqs, &queue_url).await.is_empty());
}

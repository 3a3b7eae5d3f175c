//! A whole organization end to end on the stand-ins: the real planner binary plans a service from
//! its schedule's event over moto's Organizations, a local event source mapping delivers the queue
//! to the real function binary, which assumes the member role (deployed from `member-role.yaml`)
//! in each account and reads the emulator's world of each account and region.

use std::collections::{BTreeMap, BTreeSet};

use archiver_e2e::api_of;
use archiver_e2e::lambda::{InvokeError, LocalFunction, Outcome};
use archiver_e2e::organization::{drain_queue, letter_scope, plan_event, LocalOrganization, Member, REGIONS};
use archiver_e2e::stage::{local_world, ACCOUNT_ID};
use serde_json::Value as Json;
use session_archiver::ServiceId;

const SERVICE: ServiceId = ServiceId::IvsStreamSessions;
const DAY: &str = "2026-11-22";

fn member(name: &str, member_role: bool) -> Member<'_> {
    Member { name, member_role, denied_in: None, empty: false }
}

/// The session ids the table holds for one scope.
async fn items_of(org: &LocalOrganization, account: &str, region: &str) -> BTreeSet<String> {
    let prefix = format!("{SERVICE}#{account}#{region}#");
    let items = org.stage.aws.scan().await;
    items
        .iter()
        .filter(|i| i["pk"].as_s().is_ok_and(|pk| pk.starts_with(&prefix)))
        .map(|i| i["sk"].as_s().unwrap().clone())
        .collect()
}

/// The statuses of a scope's run manifests.
async fn manifest_statuses(org: &LocalOrganization, account: &str, region: &str) -> Vec<String> {
    let pk = format!("RUN#{SERVICE}#{account}#{region}");
    let items = org.stage.aws.scan().await;
    items
        .iter()
        .filter(|i| i["pk"].as_s().is_ok_and(|p| *p == pk))
        .map(|i| i["status"].as_s().unwrap().clone())
        .collect()
}

/// The session ids of a scope's snapshot of `run`, in line order, whichever objects hold it (the
/// batch's pool, or the scope's own).
async fn snapshot_of(org: &LocalOrganization, account: &str, region: &str, run: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for key in org.stage.aws.keys(&format!("history/snapshots/{SERVICE}/dt={DAY}/")).await {
        let lines = org.stage.aws.read(&key).await.lines;
        let mine = lines.iter().filter(|l| l["account_id"] == account && l["region"] == region && l["run_id"] == run);
        ids.extend(mine.map(|l| l["session_id"].as_str().unwrap().to_owned()));
    }
    ids
}

fn truth(org: &LocalOrganization, account: &str, region: &str) -> BTreeSet<String> {
    let sessions = org.stage.emulator.sessions_in(account, region, api_of(SERVICE)).expect("a world");
    sessions.into_iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn an_organization_converges_scope_by_scope_and_failing_scopes_fail_alone_with_their_reason() {
    // GIVEN an organization: the archive's own account, alpha and beta with the member role,
    // gamma without, each in two regions, and a service control policy denying the session APIs
    // to beta in the second region
    let beta_denied = Member { denied_in: Some(REGIONS[1]), ..member("beta", true) };
    let members = [member("alpha", true), beta_denied, member("gamma", false)];
    let mut org = LocalOrganization::start(local_world().unwrap(), &members).await.unwrap();
    org.batch_size = 3;
    let (alpha, beta, gamma) = (&org.accounts["alpha"], &org.accounts["beta"], &org.accounts["gamma"]);

    // WHEN the planner plans IVS from its schedule's event in batches of three, and the queue is
    // delivered to the IVS function
    let summary = org.plan(SERVICE, "plan-evt-1", &format!("{DAY}T10:00:00Z")).await;
    let mut function = org.function(SERVICE).await.unwrap();
    let report = org.drain(SERVICE, &mut function).await;

    // THEN every account was planned in both regions, in three messages each delivered once, and
    // none came back: the failing scopes of a batch did not fail it
    assert_eq!((summary["accounts"].as_u64(), summary["scopes"].as_u64()), (Some(4), Some(8)), "{summary}");
    assert_eq!(summary["messages_sent"].as_u64(), Some(3), "{summary}");
    assert_eq!((report.invocations, report.handed_back), (3, 0), "{report:?}");
    // AND each scope with the member role and no denial holds its own world in the table and in
    // its run's history, each session once, its run complete
    for account in [ACCOUNT_ID, alpha.as_str(), beta.as_str()] {
        for region in REGIONS {
            if account == beta && region == REGIONS[1] {
                continue;
            }
            let truth = truth(&org, account, region);
            assert!(!truth.is_empty());
            assert_eq!(items_of(&org, account, region).await, truth, "{account} {region}: the table");
            let snapshot = snapshot_of(&org, account, region, "plan-evt-1").await;
            assert_eq!(snapshot.len(), truth.len(), "{account} {region}: a session twice");
            assert_eq!(snapshot.into_iter().collect::<BTreeSet<_>>(), truth, "{account} {region}: the history");
            assert_eq!(manifest_statuses(&org, account, region).await, ["complete"], "{account} {region}");
        }
    }
    // AND a batch wrote its scopes' lines in one snapshots object and at most one changes object
    let snapshots = org.stage.aws.keys(&format!("history/snapshots/{SERVICE}/")).await;
    let changes = org.stage.aws.keys(&format!("history/changes/{SERVICE}/")).await;
    assert!(snapshots.len() <= report.invocations && changes.len() <= report.invocations, "{snapshots:?} {changes:?}");
    assert!(snapshots.iter().any(|k| k.contains(".pool-")), "{snapshots:?}");
    // AND gamma's two scopes and beta's denied one, and nothing else, are in the dead-letter
    // queue, each alone with its reason
    let mut letters = org.dead_letters(SERVICE).await;
    assert!(letters.iter().all(|(body, _)| body["scopes"].as_array().map(Vec::len) == Some(1)), "{letters:?}");
    let scopes: BTreeSet<(&str, &str)> = letters.iter().map(|(body, _)| letter_scope(body)).collect();
    let expected =
        BTreeSet::from([(gamma.as_str(), REGIONS[0]), (gamma.as_str(), REGIONS[1]), (beta.as_str(), REGIONS[1])]);
    assert_eq!(scopes, expected, "{letters:?}");
    let position = letters.iter().position(|(body, _)| letter_scope(body).0 == beta.as_str()).unwrap();
    let (_, denied) = letters.remove(position);
    assert_eq!(denied["ErrorType"], "NonRetryable.SessionApi");
    let reason = &denied["ErrorMessage"];
    assert!(
        reason.starts_with(&format!(
            "account {beta}, region {}: ivs-stream-sessions ListChannels failed: AccessDeniedException",
            REGIONS[1]
        )),
        "{reason}"
    );
    assert!(reason.contains("explicit deny in a service control policy"), "{reason}");
    assert!(items_of(&org, beta, REGIONS[1]).await.is_empty(), "nothing written for the denied scope");
    for (body, attributes) in &letters {
        let (account, region) = letter_scope(body);
        assert_eq!(account, gamma.as_str());
        assert_eq!(attributes["ErrorType"], "NonRetryable.MemberRole");
        let reason = &attributes["ErrorMessage"];
        let expected = format!(
            "account {gamma}, region {region}: STS AssumeRole on role arn:aws:iam::{gamma}:role/session-archiver-member failed: AccessDenied"
        );
        assert!(reason.starts_with(&expected), "{reason}");
    }
    assert!(items_of(&org, gamma, REGIONS[0]).await.is_empty(), "nothing written for gamma");
    // AND the runs dataset has one line per scope: complete with its sessions, or failed with why
    let mut runs = BTreeMap::new();
    for key in org.stage.aws.keys(&format!("history/runs/{SERVICE}/dt={DAY}/")).await {
        for line in org.stage.aws.read(&key).await.lines {
            let scope = (line["account_id"].as_str().unwrap().to_owned(), line["region"].as_str().unwrap().to_owned());
            let run = (line["status"].as_str().unwrap().to_owned(), line["sessions"].as_u64().unwrap());
            assert!(runs.insert(scope, (run, line["error_kind"].clone())).is_none(), "a scope twice: {line:?}");
        }
    }
    assert_eq!(runs.len(), 8, "{runs:?}");
    for ((account, region), ((status, sessions), error_kind)) in &runs {
        let expected = match (account.as_str(), region.as_str()) {
            (a, _) if a == gamma => ("failed", 0, Json::from("MemberRole")),
            (a, r) if a == beta && r == REGIONS[1] => ("failed", 0, Json::from("SessionApi")),
            (a, r) => ("complete", truth(&org, a, r).len() as u64, Json::Null),
        };
        assert_eq!((status.as_str(), *sessions, error_kind.clone()), expected, "{account} {region}");
    }

    // WHEN the history is audited per account and region, and for one account in one region
    // (the runs' partition is the schedule's day; they saw the sessions now)
    let scopes = audit(&org, &["scopes", "--from", DAY, "--format", "json"]).await;
    let alpha_there = ["sessions", "--from", DAY, "--account", alpha, "--region", REGIONS[1], "--format", "json"];
    let sessions_of_alpha = audit(&org, &alpha_there).await;
    // THEN the summary has a row for each scope: an archived one with its sessions and its run, a
    // failed one with its failed run and the reason
    let rows = scopes.as_array().unwrap();
    assert_eq!(rows.len(), 8, "{scopes}");
    for row in rows {
        let (account, region) = (row["account_id"].as_str().unwrap(), row["region"].as_str().unwrap());
        if account == gamma || (account == beta && region == REGIONS[1]) {
            assert_eq!(
                (row["sessions"].as_u64(), row["runs"].as_u64(), row["failed_runs"].as_u64()),
                (Some(0), Some(0), Some(1)),
                "{row}"
            );
            let reason = row["last_error"].as_str().unwrap();
            assert!(reason.starts_with("MemberRole: ") || reason.starts_with("SessionApi: "), "{row}");
            continue;
        }
        assert_eq!(row["sessions"].as_u64(), Some(truth(&org, account, region).len() as u64), "{row}");
        assert_eq!((row["runs"].as_u64(), row["failed_runs"].as_u64()), (Some(1), Some(0)), "{row}");
        assert!(row["last_listed_at"].as_str().is_some_and(|t| t.starts_with("20")), "{row}");
    }
    // AND the filtered question answers with exactly that scope's sessions
    let ids: BTreeSet<String> =
        sessions_of_alpha.as_array().unwrap().iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, truth(&org, alpha, REGIONS[1]));
}

/// Runs `session-audit` in-process over the organization's bucket: its JSON answer.
async fn audit(org: &LocalOrganization, args: &[&str]) -> Json {
    let text = org.stage.aws.audit(args).await.unwrap_or_else(|e| panic!("{args:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_batch_delivered_twice_at_once_archives_once_and_the_next_plan_follows_the_organization() {
    // GIVEN an organization of alpha and beta with the member role and gamma without, and the
    // planner's one message for its eight scopes delivered twice (SQS delivers at least once)
    let mut org = LocalOrganization::start(
        local_world().unwrap(),
        &[member("alpha", true), member("beta", true), member("gamma", false)],
    )
    .await
    .unwrap();
    let (alpha, beta) = (org.accounts["alpha"].clone(), org.accounts["beta"].clone());
    org.plan(SERVICE, "plan-evt-1", &format!("{DAY}T10:00:00Z")).await;
    let queue = org.queues[&SERVICE].queue.clone();
    let planned = drain_queue(&org.sqs, &queue).await;
    assert_eq!(planned.len(), 1);
    for _ in 0..2 {
        let body = planned[0].0.to_string();
        org.sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }

    // WHEN two invocations take the two deliveries at the same time
    let (mut first, mut second) = (org.function(SERVICE).await.unwrap(), org.function(SERVICE).await.unwrap());
    let source = org.queue_source(SERVICE);
    let (one, two) = tokio::join!(source.drain_into(&mut first), source.drain_into(&mut second));

    // THEN both deliveries were taken, and every scope with the member role was archived once:
    // one run, complete, each session once in its run's history
    assert!(one.invocations >= 1 && two.invocations >= 1, "{one:?} {two:?}");
    for account in [ACCOUNT_ID, alpha.as_str(), beta.as_str()] {
        for region in REGIONS {
            assert_eq!(manifest_statuses(&org, account, region).await, ["complete"], "{account} {region}");
            let snapshot = snapshot_of(&org, account, region, "plan-evt-1").await;
            assert_eq!(snapshot.iter().collect::<BTreeSet<_>>(), truth(&org, account, region).iter().collect());
            assert_eq!(snapshot.len(), truth(&org, account, region).len(), "{account} {region}: a session twice");
        }
    }
    // AND gamma's two scopes are each in the dead-letter queue once, not once per delivery
    let letters = org.dead_letters(SERVICE).await;
    let mut buried: Vec<(&str, &str)> = letters.iter().map(|(body, _)| letter_scope(body)).collect();
    buried.sort_unstable();
    let gamma = org.accounts["gamma"].as_str();
    assert_eq!(buried, [(gamma, REGIONS[0]), (gamma, REGIONS[1])], "{letters:?}");

    // WHEN the message of one scope from before batches comes again
    let keys_before = org.stage.aws.keys("history/").await;
    let body = serde_json::json!({
        "service": SERVICE.as_str(), "account_id": alpha, "region": REGIONS[0],
        "run_id": "plan-evt-1", "event_time": format!("{DAY}T10:00:00Z")
    });
    org.sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.unwrap();
    let report = org.drain(SERVICE, &mut first).await;
    // THEN it is read as a batch of one, and finds its run complete: nothing written
    assert_eq!((report.invocations, report.handed_back), (1, 0));
    assert_eq!(org.stage.aws.keys("history/").await, keys_before);

    // WHEN beta is closed, delta joins with the member role, and the next schedule comes
    let organizations = aws_sdk_organizations::Client::new(&org.sdk);
    organizations.close_account().account_id(&beta).send().await.unwrap();
    let delta = org.add_member(member("delta", true)).await;
    let summary = org.plan(SERVICE, "plan-evt-2", &format!("{DAY}T10:05:00Z")).await;

    // THEN the plan leaves beta out, naming its state, and plans delta (and gamma, still active)
    let planned: BTreeMap<String, usize> = drain_queue(&org.sqs, &queue)
        .await
        .iter()
        .flat_map(|(body, _)| body["scopes"].as_array().unwrap().clone())
        .fold(BTreeMap::new(), |mut by, scope| {
            *by.entry(scope["account_id"].as_str().unwrap().to_owned()).or_default() += 1;
            by
        });
    let gamma = org.accounts["gamma"].clone();
    let expected: BTreeMap<String, usize> =
        [ACCOUNT_ID.to_owned(), alpha, gamma, delta].into_iter().map(|a| (a, 2)).collect();
    assert_eq!(planned, expected);
    let inactive: Vec<(&str, &str)> = summary["inactive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a: &Json| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(inactive, [(beta.as_str(), "SUSPENDED")]);
}

#[tokio::test]
async fn a_bad_planner_configuration_or_an_unknown_ou_is_refused_naming_it_and_nothing_is_sent() {
    // GIVEN an organization, and the planner with one bad value each time
    let org = LocalOrganization::start(local_world().unwrap(), &[member("alpha", true)]).await.unwrap();
    let event = plan_event(SERVICE, "plan-evt-1", &format!("{DAY}T10:00:00Z"));
    let with = |name: &str, value: &str| {
        let mut env: Vec<(String, String)> = org.planner_env().into_iter().filter(|(k, _)| k != name).collect();
        env.push((name.to_owned(), value.to_owned()));
        env
    };
    let cases = [
        (with("ACCOUNTS", "12345"), "ACCOUNTS: `12345` is not an account id (12 digits)"),
        (with("REGIONS", "eu-west-1,Mars"), "REGIONS: `Mars` is not a region name like eu-west-1"),
        (with("EXCLUDE_ACCOUNTS", " , "), "EXCLUDE_ACCOUNTS=`,` lists nothing"),
        (with("SCOPE_QUEUES", "ivs-stream-sessions=sqs"), "the queue of ivs-stream-sessions, `sqs`, is not a URL"),
    ];
    for (env, expected) in cases {
        // WHEN it starts
        let mut planner = org.planner(&env).await;
        // THEN it stops at cold start, naming the value
        match planner.invoke(event.clone()).await {
            Err(InvokeError::Exited { log, .. }) => assert!(log.contains(expected), "{expected}: {log}"),
            other => panic!("{expected}: the planner ran: {other:?}"),
        }
    }
    // WHEN it is asked for an OU the organization does not have
    let mut env = with("ORGANIZATION_UNITS", "ou-zzzz-zzzzzzzz");
    env.retain(|(k, _)| k != "ACCOUNTS");
    env.push(("ACCOUNTS".into(), "organization".into()));
    let outcome = org.planner(&env).await.invoke(event.clone()).await.unwrap();
    // THEN the plan fails naming it
    let Outcome::Error { error_type, error_message } = outcome else { panic!("planned an unknown OU: {outcome:?}") };
    assert_eq!(error_type, "NonRetryable.Organizations");
    assert!(error_message.contains("parent ou-zzzz-zzzzzzzz"), "{error_message}");
    // AND no queue holds a message
    for (service, queues) in &org.queues {
        assert!(drain_queue(&org.sqs, &queues.queue).await.is_empty(), "{service}");
    }
}

#[tokio::test]
async fn with_regions_enabled_the_planner_plans_each_accounts_enabled_regions_where_the_service_is_offered() {
    // GIVEN an organization where alpha has enabled af-south-1 (an opt-in region where WorkSpaces
    // is offered) and beta has not, and the planner binary with REGIONS=enabled
    let org =
        LocalOrganization::start(local_world().unwrap(), &[member("alpha", true), member("beta", true)]).await.unwrap();
    let (alpha, beta) = (&org.accounts["alpha"], &org.accounts["beta"]);
    let account = aws_sdk_account::Client::new(&org.sdk);
    account.enable_region().account_id(alpha).region_name("af-south-1").send().await.unwrap();
    let mut env: Vec<(String, String)> = org.planner_env().into_iter().filter(|(k, _)| k != "REGIONS").collect();
    env.push(("REGIONS".into(), "enabled".into()));
    let service = ServiceId::WorkspacesPoolSessions;

    // WHEN it plans WorkSpaces pools
    let event = plan_event(service, "plan-evt-1", &format!("{DAY}T10:00:00Z"));
    let outcome = org.planner(&env).await.invoke(event).await.unwrap();

    // THEN every account, its own included, is planned in the regions it has enabled where
    // WorkSpaces is offered: alpha in af-south-1 too, beta and the archive account not
    let Outcome::Response(summary) = outcome else { panic!("the plan failed: {outcome:?}") };
    let mut planned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (body, _) in drain_queue(&org.sqs, &org.queues[&service].queue).await {
        for scope in body["scopes"].as_array().unwrap() {
            let (account, region) = (scope["account_id"].as_str().unwrap(), scope["region"].as_str().unwrap());
            planned.entry(account.to_owned()).or_default().insert(region.to_owned());
        }
    }
    let accounts: BTreeSet<&str> = planned.keys().map(String::as_str).collect();
    assert_eq!(accounts, BTreeSet::from([ACCOUNT_ID, alpha.as_str(), beta.as_str()]));
    assert!(planned[alpha].contains("af-south-1"), "{planned:?}");
    assert!(!planned[beta].contains("af-south-1") && !planned[ACCOUNT_ID].contains("af-south-1"), "{planned:?}");
    assert_eq!(planned[alpha].len(), planned[beta].len() + 1, "{planned:?}");
    assert_eq!(planned[beta], planned[ACCOUNT_ID]);
    // AND the regions enabled where WorkSpaces is not offered are named, and get no message
    let not_offered: Vec<&str> = summary["not_offered"].as_array().unwrap().iter().filter_map(Json::as_str).collect();
    assert!(not_offered.contains(&"eu-north-1"), "{not_offered:?}");
    assert!(planned.values().all(|regions| !regions.contains("eu-north-1")), "{planned:?}");
}

/// The organization's IVS function with a Lambda timeout of `timeout`: paging stops 4 s before
/// its deadline (a call attempt gives up after 1 s), and it archives one scope at a time.
async fn short_function(org: &LocalOrganization, timeout: std::time::Duration) -> LocalFunction {
    let mut env = org.function_env(SERVICE);
    env.extend(
        [("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"), ("DEADLINE_MARGIN_SECONDS", "4"), ("SCOPES_AT_ONCE", "1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let binary = LocalFunction::binary_of(org.profile, SERVICE.as_str());
    let region = archiver_e2e::stage::REGION;
    LocalFunction::start(&binary, SERVICE.as_str(), ACCOUNT_ID, region, &env, timeout).await.unwrap()
}

#[tokio::test]
async fn a_batch_cut_by_its_deadline_sends_its_unstarted_scopes_again_and_the_organization_converges() {
    // GIVEN an organization of alpha and beta in two regions (six scopes, one message), a
    // session API answering each call after 400 ms, and an IVS function of a 7-second timeout
    // that stops paging 4 seconds before it, archiving one scope at a time
    let org =
        LocalOrganization::start(local_world().unwrap(), &[member("alpha", true), member("beta", true)]).await.unwrap();
    let latency = session_emulator::FaultPlan { latency_ms: 400, ..Default::default() };
    org.stage.emulator.set_faults("*", latency);
    let mut function = short_function(&org, std::time::Duration::from_secs(7)).await;

    // WHEN the plan's message is delivered
    let summary = org.plan(SERVICE, "plan-evt-1", &format!("{DAY}T10:00:00Z")).await;
    let first = org.drain(SERVICE, &mut function).await;

    // THEN the batch did not fit one invocation: the scopes it had no time to start were sent
    // again (never handed back, never dead-lettered), and every scope ran once
    assert_eq!((summary["scopes"].as_u64(), summary["messages_sent"].as_u64()), (Some(6), Some(1)), "{summary}");
    assert!(first.invocations > 1 && first.handed_back == 0, "{first:?}");
    assert!(org.dead_letters(SERVICE).await.is_empty());
    let all: Vec<(String, &str)> = [ACCOUNT_ID.to_owned(), org.accounts["alpha"].clone(), org.accounts["beta"].clone()]
        .into_iter()
        .flat_map(|a| REGIONS.map(|r| (a.clone(), r)))
        .collect();
    for (account, region) in &all {
        let statuses = manifest_statuses(&org, account, region).await;
        assert_eq!(statuses.len(), 1, "{account} {region}: {statuses:?}");
        assert!(["complete", "partial"].contains(&statuses[0].as_str()), "{account} {region}: {statuses:?}");
    }

    // WHEN the next schedule comes, without the latency
    org.stage.emulator.clear_faults();
    org.plan(SERVICE, "plan-evt-2", &format!("{DAY}T10:05:00Z")).await;
    org.drain(SERVICE, &mut function).await;
    // THEN every scope holds its world, and no run is left partial
    for (account, region) in &all {
        assert_eq!(items_of(&org, account, region).await, truth(&org, account, region), "{account} {region}");
        let statuses = manifest_statuses(&org, account, region).await;
        assert!(statuses.iter().all(|s| s == "complete"), "{account} {region}: {statuses:?}");
    }
}

#[tokio::test]
async fn a_batch_killed_mid_way_is_delivered_again_and_converges() {
    // GIVEN an organization of alpha and beta in two regions (six scopes, one message), a session
    // API answering each call after 300 ms, and an IVS function of a 30-second timeout archiving
    // one scope at a time
    let org =
        LocalOrganization::start(local_world().unwrap(), &[member("alpha", true), member("beta", true)]).await.unwrap();
    org.stage.emulator.set_faults("*", session_emulator::FaultPlan { latency_ms: 300, ..Default::default() });
    let timeout = std::time::Duration::from_secs(30);
    org.plan(SERVICE, "plan-evt-1", &format!("{DAY}T10:00:00Z")).await;
    let queue = org.queues[&SERVICE].queue.clone();
    let planned = drain_queue(&org.sqs, &queue).await;
    let body = planned[0].0.to_string();
    let all: Vec<(String, &str)> = [ACCOUNT_ID.to_owned(), org.accounts["alpha"].clone(), org.accounts["beta"].clone()]
        .into_iter()
        .flat_map(|a| REGIONS.map(|r| (a.clone(), r)))
        .collect();
    let complete = || async {
        let mut n = 0;
        for (account, region) in &all {
            n += usize::from(manifest_statuses(&org, account, region).await == ["complete"]);
        }
        n
    };
    let listed = || async {
        let mut n = 0;
        for (account, region) in &all {
            n += usize::from(items_of(&org, account, region).await == truth(&org, account, region));
        }
        n
    };

    // WHEN the function is killed once the batch's first scope is listed and its items written
    // (its lines wait for the batch's pool)
    let mut function = short_function(&org, timeout).await;
    let region = archiver_e2e::stage::REGION;
    let event = serde_json::json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "h-1", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ivs-stream-sessions-scopes", "awsRegion": region
    }]});
    let killed_at = tokio::time::Instant::now();
    tokio::select! {
        outcome = function.invoke(event) => panic!("the batch ended before the kill: {outcome:?}"),
        () = async {
            while listed().await == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        } => {}
    }
    function.kill().await;
    let done_before = complete().await;
    assert!(done_before < all.len(), "{done_before} of {} complete at the kill", all.len());

    // AND the message comes again once the killed invocation's deadline, when the lease of the
    // scope it was running expires, has passed (the lease counts whole seconds)
    tokio::time::sleep_until(killed_at + timeout + std::time::Duration::from_secs(3)).await;
    org.stage.emulator.clear_faults();
    org.sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    let mut again = short_function(&org, timeout).await;
    let report = org.drain(SERVICE, &mut again).await;

    // THEN every scope holds its world, its run complete, each session once in the run's history
    assert_eq!(report.handed_back, 0, "{report:?}");
    for (account, region) in &all {
        assert_eq!(items_of(&org, account, region).await, truth(&org, account, region), "{account} {region}");
        assert_eq!(manifest_statuses(&org, account, region).await, ["complete"], "{account} {region}");
        let snapshot = snapshot_of(&org, account, region, "plan-evt-1").await;
        assert_eq!(snapshot.len(), truth(&org, account, region).len(), "{account} {region}: a session twice");
    }
    assert!(org.dead_letters(SERVICE).await.is_empty());
}

//! `template.yaml` against the code: every function has its crate, Makefile target and events;
//! each function may call exactly the operations its code calls; the Glue tables have the code's
//! columns. (`make lint` runs `sam validate --lint` and cfn-lint on it too.)

use std::path::{Path, PathBuf};

use archiver_e2e::pascal_case as pascal;
use session_archiver::history::{change_columns, HistoryKind};
use session_archiver::ServiceId;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn resources_of_type<'a>(template: &'a Yaml, ty: &str) -> Vec<(String, &'a Yaml)> {
    template["Resources"]
        .as_hash()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

fn strings(node: &Yaml) -> Vec<String> {
    match node {
        Yaml::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Yaml::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[test]
fn every_function_has_its_crate_makefile_target_and_sample_events() {
    // GIVEN the template's functions
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    // THEN there is one per service, built by the Makefile, from its crate, with its events
    let mut names: Vec<String> = functions.iter().map(|(name, _)| name.clone()).collect();
    names.sort();
    let mut expected: Vec<String> = ServiceId::ALL.iter().map(|s| format!("{}Function", pascal(*s))).collect();
    expected.extend(["ScopePlannerFunction".into(), "HistoryCompactorFunction".into()]);
    expected.sort();
    assert_eq!(names, expected);
    for service in ServiceId::ALL {
        let logical = format!("{}Function", pascal(service));
        let function = functions.iter().find(|(n, _)| *n == logical).unwrap().1;
        assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("makefile"), "{logical}");
        assert!(makefile.contains(&format!("build-{logical}:")), "the Makefile has no build-{logical}");
        assert!(makefile.contains(&format!("lambda-artifact,{service})")), "build-{logical} copies {service}");
        assert!(root().join("functions").join(service.as_str()).join("Cargo.toml").exists(), "{service} crate");
        let events = root().join("events").join(service.as_str());
        for file in ["scheduled.json", "dry-run.json"] {
            assert!(events.join(file).exists(), "events/{service}/{file}");
        }
        let replays = std::fs::read_dir(&events)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("replay-"))
            .count();
        assert!(replays >= 1, "events/{service} has a replay event");
        // AND its queue of scope messages, one at a time, up to the scope concurrency, with
        // the failed ones handed back
        let scopes = &function["Properties"]["Events"]["Scopes"];
        assert_eq!(scopes["Type"].as_str(), Some("SQS"));
        let queue = format!("{}ScopeQueue", pascal(service));
        assert_eq!(scopes["Properties"]["Queue"].as_str(), Some(format!("{queue}.Arn").as_str()));
        assert_eq!(scopes["Properties"]["BatchSize"].as_i64(), Some(1));
        assert_eq!(strings(&scopes["Properties"]["FunctionResponseTypes"]), ["ReportBatchItemFailures"]);
        assert_eq!(scopes["Properties"]["ScalingConfig"]["MaximumConcurrency"].as_str(), Some("ScopeConcurrency"));
        assert_eq!(function["Properties"]["ReservedConcurrentExecutions"].as_str(), Some("ScopeConcurrency"));
        // AND the queue goes to a watched dead-letter queue after ScopeMaxReceives deliveries
        let queue = &template["Resources"][queue.as_str()]["Properties"];
        let redrive = &queue["RedrivePolicy"];
        let dead_letter = format!("{}ScopeDeadLetterQueue", pascal(service));
        assert_eq!(redrive["deadLetterTargetArn"].as_str(), Some(format!("{dead_letter}.Arn").as_str()));
        assert_eq!(redrive["maxReceiveCount"].as_str(), Some("ScopeMaxReceives"));
        let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
        assert_eq!(globals["SCOPE_MAX_RECEIVES"].as_str(), Some("ScopeMaxReceives"), "the function counts as SQS does");
        assert!(queue["VisibilityTimeout"].as_i64().unwrap() >= 6 * 900, "six times the function's timeout");
        let alarm = &template["Resources"][format!("{}ScopeDeadLetterAlarm", pascal(service)).as_str()]["Properties"];
        assert_eq!(alarm["Dimensions"][0]["Value"].as_str(), Some(format!("{dead_letter}.QueueName").as_str()));
        // AND a schedule, whose rate and on/off are parameters, sends the planner this service's plan event
        let rule = &template["Resources"][format!("{}PlanSchedule", pascal(service)).as_str()]["Properties"];
        let parameter = format!("{}Schedule", pascal(service));
        assert_eq!(rule["ScheduleExpression"].as_str(), Some(parameter.as_str()));
        assert!(!template["Parameters"][parameter.as_str()].is_badvalue(), "parameter {parameter}");
        assert!(!template["Parameters"][format!("{}Enabled", pascal(service)).as_str()].is_badvalue());
        let target = &rule["Targets"][0];
        assert_eq!(target["Arn"].as_str(), Some("ScopePlannerFunction.Arn"));
        let input = target["InputTransformer"]["InputTemplate"].as_str().unwrap();
        let event = input.replace("<id>", "\"53dc4d37\"").replace("<time>", "\"2026-11-22T10:00:00Z\"");
        let window = session_archiver::lambda::event::EventWindow::new(
            session_archiver::model::Timestamp::parse("2026-11-22T10:00:30Z").unwrap(),
            session_archiver::model::Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
        );
        let plan =
            session_archiver::plan::event::parse_plan_event(&serde_json::from_str(&event).unwrap(), &window).unwrap();
        assert_eq!(plan.service, service, "{input}");
    }
    // AND the planner sends to the five queues, named by service as the code reads them
    let planner = &template["Resources"]["ScopePlannerFunction"]["Properties"];
    assert!(makefile.contains("lambda-artifact,scope-planner)"));
    let queues = planner["Environment"]["Variables"]["SCOPE_QUEUES"].as_str().unwrap();
    for service in ServiceId::ALL {
        assert!(queues.contains(&format!("{service}=${{{}ScopeQueue}}", pascal(service))), "{queues}");
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(strings(&globals["Architectures"]), vec!["arm64"], "the Makefile builds for arm64");
    assert!(makefile.contains("LAMBDA_TARGET := aarch64-unknown-linux-gnu"));
    assert_eq!(globals["RolePath"].as_str(), Some("/session-archiver/"), "the path the member roles trust");
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    // AND the memory (so the CPU) and the list-call pace are parameters with the code's defaults
    assert_eq!(globals["MemorySize"].as_str(), Some("FunctionMemorySize"));
    assert_eq!(template["Parameters"]["FunctionMemorySize"]["Default"].as_i64(), Some(512));
    assert_eq!(globals["Environment"]["Variables"]["MAX_CALLS_PER_SECOND"].as_str(), Some("MaxCallsPerSecond"));
    // AND the history's first day and the deadline margin are parameters with the code's defaults
    let start = &template["Parameters"]["HistoryStartDate"];
    assert_eq!(start["Default"].as_str(), Some(session_archiver::lambda::env::DEFAULT_HISTORY_START));
    assert_eq!(globals["Environment"]["Variables"]["HISTORY_START_DATE"].as_str(), Some("HistoryStartDate"));
    let margin = &template["Parameters"]["DeadlineMarginSeconds"];
    let defaults = [
        ("TABLE_NAME", "t-1"),
        ("BUCKET_NAME", "b-1"),
        ("AWS_REGION", "eu-west-1"),
        ("PERSONAL_DATA", "user_id=keep,participant_phone_numbers=drop,participant_proxy_phone_numbers=drop"),
    ];
    let var = |name: &str| defaults.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    let config =
        session_archiver::archive::config::FunctionConfig::from_vars(ServiceId::IvsStreamSessions, var).unwrap();
    let least = config.failure_reserve().as_secs() as i64 + 1;
    assert_eq!((margin["Default"].as_i64(), margin["MinValue"].as_i64()), (Some(60), Some(least)));
    let pace = &template["Parameters"]["MaxCallsPerSecond"];
    assert_eq!(
        (pace["Default"].as_i64(), pace["MinValue"].as_i64(), pace["MaxValue"].as_i64()),
        (Some(10), Some(0), Some(1000))
    );
}

#[test]
fn the_compactor_is_scheduled_daily_reads_the_history_and_writes_only_its_parquet() {
    // GIVEN the compactor's function
    let template = template();
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let function = &template["Resources"]["HistoryCompactorFunction"];
    // THEN it is built from its own crate, by the Makefile, with its sample events
    assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("makefile"));
    assert!(makefile.contains("build-HistoryCompactorFunction: ; $(call lambda-artifact,history-compactor)"));
    assert!(root().join("functions/history-compactor/Cargo.toml").exists());
    let window = session_archiver::lambda::event::EventWindow::new(
        session_archiver::model::Timestamp::parse("2026-11-23T00:30:00Z").unwrap(),
        session_archiver::model::Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
    );
    for file in ["scheduled.json", "replay-one-service.json", "replay-every-service.json"] {
        let text = std::fs::read_to_string(root().join("events/history-compactor").join(file)).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let request = session_compaction::event::parse_compaction_event(&event, &window);
        assert!(request.is_ok(), "events/history-compactor/{file}: {request:?}");
    }
    // AND its daily schedule is a parameter, after midnight UTC
    let properties = &function["Properties"];
    let daily = &properties["Events"]["Daily"];
    assert_eq!(daily["Type"].as_str(), Some("Schedule"));
    assert_eq!(daily["Properties"]["Schedule"].as_str(), Some("CompactionSchedule"));
    assert_eq!(template["Parameters"]["CompactionSchedule"]["Default"].as_str(), Some("cron(30 0 * * ? *)"));
    // AND its sort memory is a parameter with the code's default, inside its memory
    let sort = &template["Parameters"]["CompactionSortMemoryMb"];
    let config = session_compaction::config::CompactorConfig::from_vars(|name| match name {
        "BUCKET_NAME" => Some("b-1".into()),
        "AWS_REGION" => Some("eu-west-1".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(sort["Default"].as_i64(), Some((config.sort_memory >> 20) as i64));
    let memory = template["Parameters"]["CompactorMemorySize"]["Default"].as_i64().unwrap();
    assert!(memory >= 2 * sort["Default"].as_i64().unwrap(), "{memory} MB for a sort of {:?}", sort["Default"]);
    assert_eq!(properties["EphemeralStorage"]["Size"].as_i64(), Some(10240), "the sort spills to /tmp");
    // AND it may list and read the history, and write and delete under its Parquet prefix only
    let statements = properties["Policies"][0]["Statement"].as_vec().unwrap();
    let granted: Vec<(Vec<String>, String)> =
        statements.iter().map(|s| (strings(&s["Action"]), strings(&s["Resource"]).join(","))).collect();
    assert_eq!(
        granted,
        [
            (vec!["s3:ListBucket".to_owned()], "HistoryBucket.Arn".to_owned()),
            (
                vec!["s3:GetObject".to_owned(), "s3:PutObjectTagging".to_owned()],
                "${HistoryBucket.Arn}/${HistoryPrefix}/*".to_owned()
            ),
            (
                vec!["s3:PutObject".to_owned(), "s3:AbortMultipartUpload".to_owned(), "s3:DeleteObject".to_owned()],
                "${HistoryBucket.Arn}/${HistoryPrefix}/parquet/*".to_owned()
            ),
            (
                vec!["sqs:SendMessage".to_owned()],
                "CompactionTaskQueue.Arn,CompactionTaskDeadLetterQueue.Arn".to_owned()
            ),
        ]
    );
    assert_eq!(statements[0]["Condition"]["StringLike"]["s3:prefix"].as_str(), Some("${HistoryPrefix}/*"));
    // AND a day too large for one invocation is split into tasks on its own queue, which the
    // compactor takes one at a time, answering with the tasks that failed
    let tasks = &properties["Events"]["Tasks"]["Properties"];
    assert_eq!(strings(&tasks["Queue"]), ["CompactionTaskQueue.Arn"]);
    assert_eq!(tasks["BatchSize"].as_i64(), Some(1));
    assert_eq!(strings(&tasks["FunctionResponseTypes"]), ["ReportBatchItemFailures"]);
    let variables = &properties["Environment"]["Variables"];
    assert_eq!(strings(&variables["COMPACTION_QUEUE_URL"]), ["CompactionTaskQueue"]);
    assert_eq!(strings(&variables["COMPACTION_DEAD_LETTER_QUEUE_URL"]), ["CompactionTaskDeadLetterQueue"]);
    let part = &template["Parameters"]["CompactionPartSourceBytes"];
    assert_eq!(part["Default"].as_i64(), Some(config.slice_source_bytes as i64));
    let queue = &template["Resources"]["CompactionTaskQueue"]["Properties"];
    assert_eq!(strings(&queue["RedrivePolicy"]["deadLetterTargetArn"]), ["CompactionTaskDeadLetterQueue.Arn"]);
    assert!(queue["VisibilityTimeout"].as_i64().unwrap() >= 6 * 900, "six times the timeout, as Lambda advises");
    // AND the NDJSON of a compacted day expires after a parameter's days, by the tag the compactor
    // sets, and by default is kept
    let dataset = session_compaction::columns::Dataset {
        service: ServiceId::IvsStreamSessions,
        kind: session_archiver::history::HistoryKind::Changes,
    };
    let parameter = &template["Parameters"]["CompactedNdjsonRetentionDays"];
    assert_eq!(parameter["Default"].as_i64(), Some(0), "kept by default");
    let rules =
        template["Resources"]["HistoryBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].as_vec().unwrap();
    let rule = rules.iter().find(|r| r["Id"].as_str() == Some("compacted-ndjson-expiry")).expect("the rule");
    let (name, value) = session_compaction::keys::COMPACTED_TAG;
    assert_eq!(rule["TagFilters"][0]["Key"].as_str(), Some(name));
    assert_eq!(rule["TagFilters"][0]["Value"].as_str(), Some(value));
    assert_eq!(strings(&rule["Status"]), ["ExpiresCompactedNdjson", "Enabled", "Disabled"]);
    assert_eq!(rule["Prefix"].as_str(), Some("${HistoryPrefix}/"));
    // AND the parts of a split day left behind (a task failed for good, a plan replaced) expire
    let staging = rules.iter().find(|r| r["Id"].as_str() == Some("compaction-staging-expiry")).expect("the rule");
    let staged = session_compaction::keys::staging_prefix("${HistoryPrefix}", &dataset, "d");
    assert!(staged.starts_with(staging["Prefix"].as_str().unwrap()), "{staged}");
    assert_eq!(staging["Status"].as_str(), Some("Enabled"));
}

#[test]
fn each_function_may_call_exactly_the_operations_its_code_calls() {
    let template = template();
    for service in ServiceId::ALL {
        let logical = format!("{}Function", pascal(service));
        let statements = template["Resources"][logical.as_str()]["Properties"]["Policies"][0]["Statement"]
            .as_vec()
            .unwrap_or_else(|| panic!("{logical} has an inline policy"));
        let actions = |sid: &str| {
            let statement = statements.iter().find(|s| s["Sid"].as_str() == Some(sid)).unwrap();
            let mut actions = strings(&statement["Action"]);
            actions.sort();
            (actions, statement["Resource"].clone())
        };
        let sorted = |items: Vec<String>| {
            let mut items = items;
            items.sort();
            items
        };
        let (list, _) = actions("ListSessions");
        assert_eq!(list, sorted(service.iam_actions()), "{logical}");
        let (table, resource) = actions("CurrentState");
        assert_eq!(table, sorted(session_archiver::table::dynamodb::IAM_ACTIONS.map(String::from).to_vec()));
        assert_eq!(resource.as_str(), Some("SessionTable.Arn"), "{logical}: the table only");
        let (history, resource) = actions("History");
        assert_eq!(history, sorted(session_archiver::history::bucket::IAM_ACTIONS.map(String::from).to_vec()));
        assert_eq!(resource.as_str(), Some("${HistoryBucket.Arn}/${HistoryPrefix}/*"), "{logical}: the prefix only");
        let (key, resource) = actions("PersonalDataKey");
        assert_eq!(key, session_archiver::personal::IAM_ACTIONS.map(String::from).to_vec());
        assert_eq!(resource.as_str(), Some("PersonalDataKey"), "{logical}: its own secret only");
        let (assume, resource) = actions("MemberRole");
        assert_eq!(assume, ["sts:AssumeRole"]);
        assert_eq!(
            resource.as_str(),
            Some("arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"),
            "{logical}: the member role only"
        );
        // AND it sends to its own queue (a failed scope of a batch, alone) and its dead-letter queue only
        let (queues, resource) = actions("Queues");
        assert_eq!(queues, session_archiver::aws::sqs::IAM_ACTIONS.map(String::from).to_vec());
        let (queue, dead_letter_queue) =
            (format!("{}ScopeQueue", pascal(service)), format!("{}ScopeDeadLetterQueue", pascal(service)));
        let resources: Vec<&str> = resource.as_vec().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert_eq!(resources, [format!("{queue}.Arn"), format!("{dead_letter_queue}.Arn")], "{logical}: its own");
        let variables = &template["Resources"][logical.as_str()]["Properties"]["Environment"]["Variables"];
        assert_eq!(variables["SCOPE_DEAD_LETTER_QUEUE_URL"].as_str(), Some(dead_letter_queue.as_str()));
        assert_eq!(variables["SCOPE_QUEUE_URL"].as_str(), Some(queue.as_str()));
        let (state, resource) = actions("ListingState");
        assert_eq!(state, sorted(session_archiver::table::progress::IAM_ACTIONS.map(String::from).to_vec()));
        assert_eq!(
            resource.as_str(),
            Some("${HistoryBucket.Arn}/${StatePrefix}/*"),
            "{logical}: the state prefix only"
        );
        assert_eq!(statements.len(), 7, "{logical}: nothing else");
        assert_eq!(assume, session_archiver::aws::member::IAM_ACTIONS.map(String::from).to_vec());
    }
    // AND the planner may list the organization and the regions, and send to the five queues, nothing else
    let statements =
        template["Resources"]["ScopePlannerFunction"]["Properties"]["Policies"][0]["Statement"].as_vec().unwrap();
    let statement = |sid: &str| statements.iter().find(|s| s["Sid"].as_str() == Some(sid)).unwrap();
    assert_eq!(statements.len(), 4);
    let mut listing = strings(&statement("Organization")["Action"]);
    listing.sort();
    assert_eq!(listing, session_archiver::plan::organizations::IAM_ACTIONS.map(String::from).to_vec());
    let regions = [strings(&statement("ServiceRegions")["Action"]), strings(&statement("EnabledRegions")["Action"])];
    assert_eq!(regions.concat(), session_archiver::plan::regions::IAM_ACTIONS.map(String::from).to_vec());
    let parameters = statement("ServiceRegions")["Resource"].as_str().unwrap();
    assert!(parameters.ends_with(":parameter/aws/service/global-infrastructure/services/*"), "{parameters}");
    let queues_statement = statement("ScopeQueues");
    assert_eq!(
        strings(&queues_statement["Action"]),
        session_archiver::aws::sqs::IAM_ACTIONS.map(String::from).to_vec()
    );
    let queues: Vec<String> =
        queues_statement["Resource"].as_vec().unwrap().iter().map(|q| q.as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> = ServiceId::ALL.iter().map(|s| format!("{}ScopeQueue.Arn", pascal(*s))).collect();
    assert_eq!(queues, expected);
}

#[test]
fn every_checkov_skip_says_why() {
    // GIVEN the checks skipped next to their resources (`make lint` fails on any other finding)
    for file in ["template.yaml", "member-role.yaml"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let document = YamlLoader::load_from_str(&text).unwrap().remove(0);
        for (logical, resource) in document["Resources"].as_hash().unwrap() {
            let Some(skips) = resource["Metadata"]["checkov"]["skip"].as_vec() else { continue };
            for skip in skips {
                // THEN each names its check and gives a reason of its own
                let id = skip["id"].as_str().unwrap_or_default();
                let comment = skip["comment"].as_str().unwrap_or_default();
                assert!(id.starts_with("CKV_AWS_"), "{file} {logical:?}: {id}");
                assert!(comment.len() >= 60, "{file} {logical:?} skips {id} without a reason: {comment:?}");
            }
        }
    }
}

#[test]
fn the_member_role_lists_exactly_the_five_apis_for_the_archive_functions_only() {
    // GIVEN the member role's template
    let text = std::fs::read_to_string(root().join("member-role.yaml")).unwrap();
    let member = yaml_rust2::YamlLoader::load_from_str(&text).unwrap().remove(0);
    let role = &member["Resources"]["MemberRole"]["Properties"];
    // THEN it may call exactly the operations the five functions call, each named
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"].as_vec().unwrap();
    assert_eq!(statements.len(), 1);
    let mut actions = strings(&statements[0]["Action"]);
    actions.sort();
    let mut expected: Vec<String> = ServiceId::ALL.iter().flat_map(|s| s.iam_actions()).collect();
    expected.sort();
    assert_eq!(actions, expected);
    assert!(actions.iter().all(|a| !a.contains('*')));
    // AND only the archive account's function roles may assume it, with the ExternalId, from the organization
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Action"].as_str(), Some("sts:AssumeRole"));
    assert_eq!(trust["Condition"]["StringEquals"]["sts:ExternalId"].as_str(), Some("ExternalId"));
    assert_eq!(trust["Condition"]["StringEquals"]["aws:PrincipalOrgID"].as_str(), Some("OrganizationId"));
    let path = trust["Condition"]["ArnLike"]["aws:PrincipalArn"].as_str().unwrap();
    let archive_path = template()["Globals"]["Function"]["RolePath"].as_str().unwrap().to_owned();
    assert!(path.ends_with(&format!(":role{archive_path}*")), "{path} trusts the archive's role path {archive_path}");
    // AND its default name is the one the functions assume by default
    assert_eq!(
        member["Parameters"]["MemberRoleName"]["Default"].as_str(),
        Some(session_archiver::archive::config::DEFAULT_MEMBER_ROLE)
    );
    assert_eq!(
        template()["Parameters"]["MemberRoleName"]["Default"].as_str(),
        Some(session_archiver::archive::config::DEFAULT_MEMBER_ROLE)
    );
}

/// The `TableInput` of the Glue table named `name`.
fn table_input<'a>(tables: &'a [(String, &'a Yaml)], name: &str) -> &'a Yaml {
    let table = tables.iter().find(|(_, t)| t["Properties"]["TableInput"]["Name"].as_str() == Some(name));
    &table.unwrap_or_else(|| panic!("no Glue table {name}")).1["Properties"]["TableInput"]
}

/// A Glue table's columns: name and type.
fn glue_columns(input: &Yaml) -> Vec<(String, String)> {
    let columns = input["StorageDescriptor"]["Columns"].as_vec().unwrap().iter();
    columns.map(|c| (c["Name"].as_str().unwrap().to_owned(), c["Type"].as_str().unwrap().to_owned())).collect()
}

#[test]
fn the_glue_tables_have_the_code_columns_and_project_dt() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::Glue::Table");
    assert_eq!(tables.len(), ServiceId::ALL.len() * 6, "JSON and Parquet: snapshots, changes and runs");
    // The runs dataset's tables, NDJSON and compacted: its columns, the same for every service, by day
    for (service, parquet) in ServiceId::ALL.into_iter().flat_map(|service| [(service, false), (service, true)]) {
        let table = format!("runs_{}", service.as_str().replace('-', "_"));
        let name = if parquet { format!("compacted_{table}") } else { table };
        let input = table_input(&tables, &name);
        let expected: Vec<(String, String)> = session_archiver::model::RUN_COLUMNS
            .iter()
            .map(|c| (c.name.to_owned(), c.ty.glue_type().to_owned()))
            .collect();
        assert_eq!(glue_columns(input), expected, "{name}: regenerate with `target/debug/archiver-schema`");
        let location = input["Parameters"]["storage.location.template"].as_str().unwrap();
        let prefix = if parquet { "${HistoryPrefix}/parquet" } else { "${HistoryPrefix}" };
        assert!(location.ends_with(&format!("{prefix}/runs/{service}/dt=${{!dt}}/")), "{name}: {location}");
        let serde = input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].as_str().unwrap();
        assert_eq!(serde.contains("parquet"), parquet, "{name}: {serde}");
    }
    for (service, kind, parquet) in ServiceId::ALL
        .into_iter()
        .flat_map(|service| ["snapshots", "changes"].map(|kind| (service, kind)))
        .flat_map(|(service, kind)| [(service, kind, false), (service, kind, true)])
    {
        let table = format!("{kind}_{}", service.as_str().replace('-', "_"));
        let name = if parquet { format!("compacted_{table}") } else { table };
        let input = table_input(&tables, &name);
        let mut expected: Vec<(String, String)> =
            service.schema().columns().map(|c| (c.name.to_owned(), c.ty.glue_type().to_owned())).collect();
        if kind == "changes" {
            expected.extend(change_columns().iter().map(|c| (c.name.to_owned(), c.ty.glue_type().to_owned())));
        }
        let columns = glue_columns(input);
        assert_eq!(columns, expected, "{name}: regenerate with `target/debug/archiver-schema`");
        let parameters = &input["Parameters"];
        assert_eq!(parameters["projection.enabled"].as_str(), Some("true"), "{name}");
        assert_eq!(parameters["projection.dt.format"].as_str(), Some("yyyy-MM-dd"));
        // The projection starts on the day the functions refuse events before.
        assert_eq!(parameters["projection.dt.range"].as_str(), Some("${HistoryStartDate},NOW"), "{name}");
        let location = parameters["storage.location.template"].as_str().unwrap();
        let prefix = if parquet { "${HistoryPrefix}/parquet" } else { "${HistoryPrefix}" };
        assert!(location.ends_with(&format!("{prefix}/{kind}/{service}/dt=${{!dt}}/")), "{name}: {location}");
        assert_eq!(strings(&input["PartitionKeys"][0]["Name"]), vec!["dt"]);
        // AND the Parquet tables read the compactor's objects, whose columns are these
        let serde = input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].as_str().unwrap();
        let format = parameters["classification"].as_str();
        if parquet {
            assert_eq!(
                (serde, format),
                ("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe", Some("parquet"))
            );
            let dataset = session_compaction::columns::Dataset {
                service,
                kind: if kind == "changes" { HistoryKind::Changes } else { HistoryKind::Snapshots },
            };
            let written: Vec<String> = dataset.arrow_schema().fields().iter().map(|f| f.name().clone()).collect();
            assert_eq!(written, columns.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(), "{name}");
        } else {
            assert_eq!((serde, format), ("org.apache.hive.hcatalog.data.JsonSerDe", Some("json")));
        }
    }
}

#[test]
fn the_table_and_bucket_are_kept_safe() {
    let template = template();
    let table = &template["Resources"]["SessionTable"];
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(table["Properties"]["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(table["Properties"]["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("expires_at"));
    assert_eq!(
        table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    let bucket = &template["Resources"]["HistoryBucket"];
    assert_eq!(bucket["DeletionPolicy"].as_str(), Some("Retain"));
    let block = &bucket["Properties"]["PublicAccessBlockConfiguration"];
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(block[flag].as_bool(), Some(true), "{flag}");
    }
    let policy = &template["Resources"]["HistoryBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"].as_str(), Some("Deny"));
    assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"].as_str(), Some("false"));
}

#[test]
fn iam_names_every_action_and_encryption_covers_rest_and_transit() {
    let template = template();
    let operations = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for (logical, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for statement in function["Properties"]["Policies"][0]["Statement"].as_vec().unwrap() {
            let actions = strings(&statement["Action"]);
            // No wildcard action: every action is named.
            assert!(actions.iter().all(|a| !a.contains('*')), "{logical}: {actions:?}");
            // `Resource: "*"` only for List/Describe actions that AWS offers at `*`, each named in
            // the IAM table of docs/operations.md.
            if statement["Resource"].as_str() == Some("*") {
                for action in &actions {
                    let verb = action.split(':').nth(1).unwrap();
                    assert!(verb.starts_with("List") || verb.starts_with("Describe"), "{logical}: {action} on *");
                    assert!(operations.contains(&format!("`{action}`")), "docs/operations.md names {action}");
                }
            }
        }
    }
    // Encryption at rest: the table, the bucket, the queue, the topic, the key's secret (AWS managed keys).
    let resources = &template["Resources"];
    assert_eq!(resources["SessionTable"]["Properties"]["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    let sse = &resources["HistoryBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"].as_str(), Some("AES256"));
    for (logical, queue) in resources_of_type(&template, "AWS::SQS::Queue") {
        assert_eq!(queue["Properties"]["SqsManagedSseEnabled"].as_bool(), Some(true), "{logical}");
    }
    assert!(resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"].as_str().is_some());
    assert_eq!(resources["PersonalDataKey"]["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    // In transit: the bucket refuses any request without TLS (the AWS APIs are HTTPS only).
    let deny = &resources["HistoryBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!((deny["Effect"].as_str(), deny["Action"].as_str()), (Some("Deny"), Some("s3:*")));
    assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"].as_str(), Some("false"));
    // No secret in the environment: the key's secret is named by reference, never its value.
    let variables = template["Globals"]["Function"]["Environment"]["Variables"].as_hash().unwrap();
    assert_eq!(
        template["Globals"]["Function"]["Environment"]["Variables"]["PERSONAL_DATA_KEY_SECRET"].as_str(),
        Some("PersonalDataKey")
    );
    for (name, value) in variables {
        let name = name.as_str().unwrap();
        assert!(
            !["PASSWORD", "TOKEN", "ACCESS_KEY", "SECRET_KEY"].iter().any(|w| name.contains(w)),
            "{name} looks like a secret"
        );
        assert!(value.as_str().is_none_or(|v| v.len() < 40), "{name} holds a long literal");
    }
}

#[test]
fn athena_has_the_audit_questions_as_named_queries_over_every_service() {
    let template = template();
    let queries = resources_of_type(&template, "AWS::Athena::NamedQuery");
    let mut names: Vec<&str> = queries.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "AuditActiveAtQuery",
            "AuditConcurrencyQuery",
            "AuditConnectedQuery",
            "AuditDailySummaryQuery",
            "AuditScopesQuery",
            "AuditSessionsQuery",
            "AuditTimelineQuery"
        ]
    );
    for (name, query) in &queries {
        let properties = &query["Properties"];
        assert_eq!(properties["Database"].as_str(), Some("HistoryDatabase"), "{name}");
        let sql = properties["QueryString"].as_str().unwrap();
        for service in ServiceId::ALL {
            let table = format!("snapshots_{}", service.as_str().replace('-', "_"));
            assert!(sql.contains(&table), "{name} reads {table}");
        }
        // Each table it reads, a compacted day from its Parquet twin and any other from the NDJSON.
        let read: Vec<&str> = sql.split("FROM ").skip(1).filter_map(|from| from.split_whitespace().next()).collect();
        let ndjson = |t: &&&str| ["snapshots_", "changes_", "runs_"].iter().any(|kind| t.starts_with(kind));
        for table in read.iter().filter(ndjson) {
            // Both pruned to the query's days by IN (dynamic filtering): no NOT IN over a big table.
            let both = format!(
                "FROM (SELECT * FROM compacted_{table} WHERE dt IN (SELECT dt FROM days) UNION ALL SELECT * FROM {table} \
                 WHERE dt IN (SELECT dt FROM days WHERE dt NOT IN (SELECT DISTINCT dt FROM compacted_{table} \
                 WHERE dt IN (SELECT dt FROM days))))"
            );
            assert!(sql.contains(&both), "{name} reads {table} alone");
        }
        assert!(read.iter().any(|t| t.starts_with("compacted_")), "{name}");
        // Account and region: the sessions and the per-scope queries answer with them.
        if ["AuditSessionsQuery", "AuditScopesQuery"].contains(&name.as_str()) {
            assert!(sql.contains("GROUP BY service, account_id, region"), "{name}");
        }
        // Partition pruning: every query reads the days of its range, no more.
        assert!(sql.trim_start().starts_with("WITH days AS (") && sql.contains("FROM UNNEST(sequence("), "{name}");
        // AND each runs in the audit WorkGroup
        assert_eq!(properties["WorkGroup"].as_str(), Some("AuditWorkGroup"), "{name}");
    }
}

#[test]
fn the_audit_workgroup_keeps_its_results_encrypted_in_the_bucket_and_caps_a_query_s_scan() {
    let template = template();
    let groups = resources_of_type(&template, "AWS::Athena::WorkGroup");
    assert_eq!(groups.len(), 1);
    let config = &groups[0].1["Properties"]["WorkGroupConfiguration"];
    // Its settings win over a client's: results where the template says, encrypted
    assert_eq!(config["EnforceWorkGroupConfiguration"].as_bool(), Some(true));
    let results = &config["ResultConfiguration"];
    assert_eq!(results["OutputLocation"].as_str(), Some("s3://${HistoryBucket}/athena-results/"));
    assert_eq!(results["EncryptionConfiguration"]["EncryptionOption"].as_str(), Some("SSE_S3"));
    // AND a query past the parameter's bytes is cancelled; its results expire with the bucket's rule
    assert_eq!(config["BytesScannedCutoffPerQuery"].as_str(), Some("AthenaBytesScannedCutoff"));
    let bucket =
        &resources_of_type(&template, "AWS::S3::Bucket").into_iter().find(|(n, _)| n == "HistoryBucket").unwrap().1;
    let rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"].as_vec().unwrap();
    let expiry =
        rules.iter().find(|r| r["Id"].as_str() == Some("athena-results-expiry")).expect("a rule for the results");
    assert_eq!(expiry["Prefix"].as_str(), Some("athena-results/"));
}

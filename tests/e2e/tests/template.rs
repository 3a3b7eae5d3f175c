//! `template.yaml` against the code: every function has its crate, Makefile target and events;
//! each function may call exactly the operations its code calls; the Glue tables have the code's
//! columns. (`make lint` runs `sam validate --lint` and cfn-lint on it too.)

use std::path::{Path, PathBuf};

use archiver_e2e::pascal_case as pascal;
use session_archiver::history::change_columns;
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
        // AND a schedule whose rate and on/off are parameters
        let schedule = &function["Properties"]["Events"]["Schedule"];
        assert_eq!(schedule["Type"].as_str(), Some("Schedule"));
        let parameter = format!("{}Schedule", pascal(service));
        assert!(!template["Parameters"][parameter.as_str()].is_badvalue(), "parameter {parameter}");
        assert!(!template["Parameters"][format!("{}Enabled", pascal(service)).as_str()].is_badvalue());
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(strings(&globals["Architectures"]), vec!["arm64"], "the Makefile builds for arm64");
    assert!(makefile.contains("LAMBDA_TARGET := aarch64-unknown-linux-gnu"));
    assert_eq!(globals["ReservedConcurrentExecutions"].as_i64(), Some(1), "one run at a time per function");
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    // AND the memory (so the CPU) and the list-call pace are parameters with the code's defaults
    assert_eq!(globals["MemorySize"].as_str(), Some("FunctionMemorySize"));
    assert_eq!(template["Parameters"]["FunctionMemorySize"]["Default"].as_i64(), Some(512));
    assert_eq!(globals["Environment"]["Variables"]["MAX_CALLS_PER_SECOND"].as_str(), Some("MaxCallsPerSecond"));
    // AND the history's first day and the deadline margin are parameters with the code's defaults
    let start = &template["Parameters"]["HistoryStartDate"];
    assert_eq!(start["Default"].as_str(), Some(session_archiver::config::DEFAULT_HISTORY_START));
    assert_eq!(globals["Environment"]["Variables"]["HISTORY_START_DATE"].as_str(), Some("HistoryStartDate"));
    let margin = &template["Parameters"]["DeadlineMarginSeconds"];
    let defaults = [
        ("TABLE_NAME", "t-1"),
        ("BUCKET_NAME", "b-1"),
        ("AWS_REGION", "eu-west-1"),
        ("PERSONAL_DATA", "user_id=keep,participant_phone_numbers=drop,participant_proxy_phone_numbers=drop"),
    ];
    let var = |name: &str| defaults.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    let config = session_archiver::config::FunctionConfig::from_vars(ServiceId::IvsStreamSessions, var).unwrap();
    let least = config.failure_reserve().as_secs() as i64 + 1;
    assert_eq!((margin["Default"].as_i64(), margin["MinValue"].as_i64()), (Some(60), Some(least)));
    let pace = &template["Parameters"]["MaxCallsPerSecond"];
    assert_eq!(
        (pace["Default"].as_i64(), pace["MinValue"].as_i64(), pace["MaxValue"].as_i64()),
        (Some(10), Some(0), Some(1000))
    );
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
        assert_eq!(history, sorted(session_archiver::history::store::IAM_ACTIONS.map(String::from).to_vec()));
        assert_eq!(resource.as_str(), Some("${HistoryBucket.Arn}/${HistoryPrefix}/*"), "{logical}: the prefix only");
        let (key, resource) = actions("PersonalDataKey");
        assert_eq!(key, session_archiver::personal::IAM_ACTIONS.map(String::from).to_vec());
        assert_eq!(resource.as_str(), Some("PersonalDataKey"), "{logical}: its own secret only");
        assert_eq!(statements.len(), 4, "{logical}: nothing else");
    }
}

#[test]
fn the_glue_tables_have_the_code_columns_and_project_dt() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::Glue::Table");
    assert_eq!(tables.len(), ServiceId::ALL.len() * 2);
    for service in ServiceId::ALL {
        for kind in ["snapshots", "changes"] {
            let name = format!("{kind}_{}", service.as_str().replace('-', "_"));
            let input = &tables
                .iter()
                .find(|(_, t)| t["Properties"]["TableInput"]["Name"].as_str() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no Glue table {name}"))
                .1["Properties"]["TableInput"];
            let mut expected: Vec<(String, String)> =
                service.schema().columns().map(|c| (c.name.to_owned(), c.ty.glue_type().to_owned())).collect();
            if kind == "changes" {
                expected.extend(change_columns().iter().map(|c| (c.name.to_owned(), c.ty.glue_type().to_owned())));
            }
            let columns: Vec<(String, String)> = input["StorageDescriptor"]["Columns"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|c| (c["Name"].as_str().unwrap().to_owned(), c["Type"].as_str().unwrap().to_owned()))
                .collect();
            assert_eq!(columns, expected, "{name}: regenerate with `target/debug/archiver-schema`");
            let parameters = &input["Parameters"];
            assert_eq!(parameters["projection.enabled"].as_str(), Some("true"), "{name}");
            assert_eq!(parameters["projection.dt.format"].as_str(), Some("yyyy-MM-dd"));
            // The projection starts on the day the functions refuse events before.
            assert_eq!(parameters["projection.dt.range"].as_str(), Some("${HistoryStartDate},NOW"), "{name}");
            let location = parameters["storage.location.template"].as_str().unwrap();
            assert!(location.ends_with(&format!("/{kind}/{service}/dt=${{!dt}}/")), "{name}: {location}");
            assert_eq!(strings(&input["PartitionKeys"][0]["Name"]), vec!["dt"]);
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
    assert_eq!(resources["FailedRunQueue"]["Properties"]["SqsManagedSseEnabled"].as_bool(), Some(true));
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
            "AuditDailySummaryQuery",
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
        // Partition pruning: every query bounds `dt` or names one session.
        assert!(sql.contains("dt BETWEEN") || sql.contains("session_id = ?"), "{name}");
    }
}

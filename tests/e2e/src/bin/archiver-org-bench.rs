//! `make bench-org`: a simulated organization through the whole fan-out, with the release
//! binaries: moto's Organizations with `ORG_BENCH_ACCOUNTS` member accounts (200) in
//! `ORG_BENCH_REGIONS` (5 regions), 2 % of the accounts without the member role (so 2 % of the
//! scopes fail), small IVS worlds (two channels of five sessions and an empty one); the planner
//! plans IVS, and `ORG_BENCH_CONCURRENCY` function processes (4) take the queue through a local
//! event source mapping, a batch of scopes an invocation. Reports the setup, plan and drain wall
//! times, messages and invocations, list calls
//! against their floor, the failed scopes, each function process's CPU and peak RSS, and per
//! scope-run the storage requests the functions made (counted by a proxy in front of moto:
//! DynamoDB reads and writes, S3 PUTs and GETs) and the history objects written; writes
//! `target/bench/org-<time>.json`. `ORG_BENCH_PROFILE=debug` runs the debug binaries instead.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Instant;

use archiver_e2e::organization::{letter_scope, LocalOrganization, Member, RETRY_AFTER, VISIBILITY};
use archiver_e2e::poller::QueueSource;
use archiver_e2e::{setting, CountingProxy, Traffic};
use serde_json::json;
use session_archiver::history::ObjectListing;
use session_archiver::model::Timestamp;
use session_archiver::ServiceId;
use session_emulator::{EmulatorConfig, Shape};

const SERVICE: ServiceId = ServiceId::IvsStreamSessions;

#[tokio::main]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("org bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn bench() -> Result<(), Box<dyn std::error::Error>> {
    let accounts = setting("ORG_BENCH_ACCOUNTS", 200);
    let all_regions =
        ["us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-northeast-1", "ap-northeast-2", "ap-south-1"];
    let regions = &all_regions[..setting("ORG_BENCH_REGIONS", 5).min(all_regions.len())];
    let concurrency = setting("ORG_BENCH_CONCURRENCY", 4);
    let failing = (accounts * 2).div_ceil(100);
    let names: Vec<String> = (0..accounts).map(|i| format!("member-{i:04}")).collect();
    let members: Vec<Member> =
        names.iter().enumerate().map(|(i, name)| Member { name, member_role: i >= failing, denied_in: None }).collect();
    let world = EmulatorConfig { ivs_stream_sessions: Shape::new(2, 5, 1), ..EmulatorConfig::default() };

    println!("organization bench: {accounts} member accounts (+ the archive account) × {} regions, {failing} accounts without the member role, {concurrency} function processes", regions.len());
    let started = Instant::now();
    // `ORG_BENCH_PROFILE=debug` runs the debug binaries (a quick check of the bench itself).
    let profile = if std::env::var("ORG_BENCH_PROFILE").as_deref() == Ok("debug") { "debug" } else { "release" };
    let org = LocalOrganization::start_in(world, &members, regions, profile).await?;
    let setup = started.elapsed();

    let started = Instant::now();
    let time = format!("{}Z", &Timestamp::now().as_str()[..19]);
    let summary = org.plan(SERVICE, "org-bench-1", &time).await;
    let plan = started.elapsed();

    let proxy = CountingProxy::start(org.stage.moto.url().trim_start_matches("http://").parse()?).await?;
    let mut functions = Vec::new();
    for _ in 0..concurrency {
        functions.push(org.function_with_storage(SERVICE, &proxy.url()).await?);
    }
    proxy.take();
    org.stage.emulator.reset_calls();
    let started = Instant::now();
    let queue = org.queues[&SERVICE].queue.clone();
    let mut tasks = Vec::new();
    for mut function in functions {
        let (sqs, queue) = (org.sqs.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let source = QueueSource {
                sqs: &sqs,
                url: &queue,
                region: "us-east-1",
                visibility: VISIBILITY,
                retry_after: RETRY_AFTER,
            };
            let report = source.drain_into(&mut function).await;
            let (cpu, rss) = function.pid().map(archiver_e2e::process_usage).unwrap_or_default();
            let cpu = cpu.as_secs_f64();
            (report, cpu, rss)
        }));
    }
    let mut delivered = 0;
    let mut handed_back = 0;
    let mut processes = Vec::new();
    for task in tasks {
        let (report, cpu, rss) = task.await?;
        delivered += report.invocations;
        handed_back += report.handed_back;
        processes.push((report.invocations, cpu, rss));
    }
    let drain = started.elapsed();
    let scopes = summary["scopes"].as_u64().unwrap_or(0);
    // Every scope runs once: the failing ones fail for good (no member role) and are not tried again.
    let storage = Storage::of(&proxy.take(), scopes);
    let history = history_objects(&org.stage.aws.history_bucket()).await?;

    let calls = org.stage.emulator.calls();
    let count = |op: &str| calls.get(op).map_or(0, |c| c.calls);
    let failed_scopes = (failing * regions.len()) as u64;
    let archived = scopes - failed_scopes;
    // Per archived scope: ListChannels once, ListStreamSessions once per channel (three, one empty).
    let floor = archived * 4;
    let letters = org.dead_letters(SERVICE).await;
    let failed_accounts: BTreeSet<String> = letters.iter().map(|(body, _)| letter_scope(body).0.to_owned()).collect();
    let expected_failed: BTreeSet<String> = names[..failing].iter().map(|n| org.accounts[n].clone()).collect();
    let runs = org.scope_runs().await;
    let complete = runs.iter().filter(|r| r.3 == "complete").count() as u64;

    println!("\n| measure | value |\n|---|---|");
    println!("| scopes planned | {scopes} ({} accounts × {} regions) |", summary["accounts"], regions.len());
    println!("| setup (organization, member roles, queues) | {:.1} s |", setup.as_secs_f64());
    println!("| plan (list the organization, send the messages) | {:.2} s |", plan.as_secs_f64());
    println!(
        "| drain ({concurrency} function processes) | {:.1} s ({:.1} scopes/s) |",
        drain.as_secs_f64(),
        scopes as f64 / drain.as_secs_f64()
    );
    println!(
        "| messages sent / invocations / handed back | {} (batches of up to {}) / {delivered} / {handed_back} |",
        summary["messages_sent"], org.batch_size
    );
    println!("| scopes complete | {complete} of {archived} |");
    println!("| scopes in the dead-letter queue | {} (expected {failed_scopes}), all of the accounts without the member role: {} |", letters.len(), failed_accounts == expected_failed);
    println!("| list calls / floor | {} / {floor} |", count("ListChannels") + count("ListStreamSessions"));
    println!("| storage requests per scope-run: DynamoDB reads, DynamoDB writes, S3 PUTs, S3 GETs | {:.2}, {:.2}, {:.2}, {:.2} |", storage.dynamodb_reads, storage.dynamodb_writes, storage.s3_puts, storage.s3_gets);
    println!(
        "| history objects written (snapshots, changes) | {} ({:.2} a scope-run) |",
        history,
        history as f64 / scopes.max(1) as f64
    );
    for (i, (invocations, cpu, rss)) in processes.iter().enumerate() {
        println!("| function process {i}: invocations, CPU, peak RSS | {invocations}, {cpu:.2} s, {rss:.1} MiB |");
    }

    let report = json!({
        "at": Timestamp::now().as_str(),
        "accounts": accounts, "regions": regions, "failing_accounts": failing, "concurrency": concurrency,
        "scopes": scopes, "setup_s": setup.as_secs_f64(), "plan_s": plan.as_secs_f64(), "drain_s": drain.as_secs_f64(),
        "messages": summary["messages_sent"], "batch_size": org.batch_size, "invocations": delivered,
        "scopes_per_s": scopes as f64 / drain.as_secs_f64(), "handed_back": handed_back, "complete": complete, "dead_letters": letters.len(),
        "failures_isolated": failed_accounts == expected_failed,
        "list_calls": count("ListChannels") + count("ListStreamSessions"), "list_floor": floor,
        "per_scope_run": {"dynamodb_reads": storage.dynamodb_reads, "dynamodb_writes": storage.dynamodb_writes, "s3_puts": storage.s3_puts, "s3_gets": storage.s3_gets},
        "history_objects": history,
        "processes": processes.iter().map(|(n, cpu, rss)| json!({"invocations": n, "cpu_s": cpu, "peak_rss_mib": rss})).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all("target/bench")?;
    let path = format!("target/bench/org-{}.json", Timestamp::now().as_str().replace(':', ""));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("\nwritten to {path}");
    if complete != archived || letters.len() as u64 != failed_scopes || failed_accounts != expected_failed {
        return Err("the organization did not converge as planned".into());
    }
    Ok(())
}

/// The storage requests a scope-run made, on average.
struct Storage {
    dynamodb_reads: f64,
    dynamodb_writes: f64,
    s3_puts: f64,
    s3_gets: f64,
}

impl Storage {
    fn of(traffic: &BTreeMap<String, Traffic>, runs: u64) -> Self {
        let sum = |ops: &[&str]| -> f64 {
            let total: u64 = ops.iter().filter_map(|op| traffic.get(*op)).map(|t| t.requests).sum();
            total as f64 / runs.max(1) as f64
        };
        Storage {
            dynamodb_reads: sum(&["DynamoDB GetItem", "DynamoDB Query", "DynamoDB BatchGetItem"]),
            dynamodb_writes: sum(&[
                "DynamoDB PutItem",
                "DynamoDB UpdateItem",
                "DynamoDB DeleteItem",
                "DynamoDB BatchWriteItem",
            ]),
            s3_puts: sum(&["S3 PutObject", "S3 UploadPart", "S3 CreateMultipartUpload", "S3 CompleteMultipartUpload"]),
            s3_gets: sum(&["S3 GetObject"]),
        }
    }
}

/// The snapshots and changes objects of the service's history.
async fn history_objects(bucket: &impl ObjectListing) -> Result<usize, Box<dyn std::error::Error>> {
    let mut count = 0;
    for kind in ["snapshots", "changes"] {
        count += bucket.list_objects(&format!("history/{kind}/{SERVICE}/")).await?.len();
    }
    Ok(count)
}

//! `make bench-org`: a simulated organization through the whole fan-out, with the release
//! binaries: moto's Organizations with `ORG_BENCH_ACCOUNTS` member accounts (200) in
//! `ORG_BENCH_REGIONS` of WorkSpaces' 17 commercial regions (5), 2 % of the accounts without the
//! member role (so 2 % of the scopes fail), `ORG_BENCH_BUSY_PERCENT` (10 %) of them with small
//! worlds (ten WorkSpaces whose connections come and go), the others empty; the planner plans
//! WorkSpaces connection status (a 5-minute service) twice (two schedules five minutes apart:
//! first runs, then the next), and each time `ORG_BENCH_CONCURRENCY` function processes (4) take
//! the queue through a local event source mapping, a batch of scopes an invocation. Reports the
//! setup, plan and drain wall times, messages and invocations, list calls, the failed scopes, each
//! function process's CPU and peak RSS, per scope-run the storage requests the functions made
//! (counted by a proxy in front of moto: DynamoDB reads and writes, S3 PUTs and GETs), the history
//! objects written, the cost per account and region a month, and the targets, each met or
//! not (a target missed fails the bench); writes `target/bench/org-<time>.json`.
//! `ORG_BENCH_PROFILE=debug` runs the debug binaries instead. 17,000 scopes:
//! `ORG_BENCH_ACCOUNTS=999 ORG_BENCH_REGIONS=17` (the archive account is the thousandth).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Instant;

use archiver_e2e::organization::{letter_scope, LocalOrganization, Member, RETRY_AFTER, VISIBILITY};
use archiver_e2e::poller::QueueSource;
use archiver_e2e::{price, setting, CountingProxy, Traffic};
use serde_json::json;
use session_archiver::history::ObjectListing;
use session_archiver::model::Timestamp;
use session_archiver::ServiceId;
use session_emulator::{EmulatorConfig, Shape};

/// A 5-minute service offered in 17 commercial regions (IVS, the other 5-minute API with parents,
/// is offered in 7).
const SERVICE: ServiceId = ServiceId::WorkspacesConnectionStatus;

/// The commercial regions where WorkSpaces is offered (moto's SSM public parameters, as AWS's).
const REGIONS: [&str; 17] = [
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-5",
    "ca-central-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "sa-east-1",
    "us-east-2",
    "af-south-1",
];

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
    let regions = &REGIONS[..setting("ORG_BENCH_REGIONS", 5).clamp(1, REGIONS.len())];
    let concurrency = setting("ORG_BENCH_CONCURRENCY", 4);
    // The share of accounts whose scopes hold sessions; the others' APIs list none.
    let busy_percent = setting("ORG_BENCH_BUSY_PERCENT", 10).min(100);
    let failing = (accounts * 2).div_ceil(100);
    let names: Vec<String> = (0..accounts).map(|i| format!("member-{i:04}")).collect();
    let busy = |i: usize| i % 100 < busy_percent;
    let members: Vec<Member> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Member { name, member_role: i >= failing, denied_in: None, empty: !busy(i) })
        .collect();
    let world = EmulatorConfig { connection_status: Shape::account(10), ..EmulatorConfig::default() };

    println!("organization bench: {accounts} member accounts (+ the archive account, busy) × {} regions, {busy_percent} % of them with sessions, {failing} without the member role, {concurrency} function processes", regions.len());
    let started = Instant::now();
    // `ORG_BENCH_PROFILE=debug` runs the debug binaries (a quick check of the bench itself).
    let profile = if std::env::var("ORG_BENCH_PROFILE").as_deref() == Ok("debug") { "debug" } else { "release" };
    let org = LocalOrganization::start_in(world, &members, regions, profile).await?;
    let setup = started.elapsed();
    let empty_accounts: BTreeSet<String> =
        names.iter().enumerate().filter(|(i, _)| !busy(*i)).map(|(_, n)| org.accounts[n].clone()).collect();

    let proxy = CountingProxy::start(org.stage.moto.url().trim_start_matches("http://").parse()?).await?;
    let now = std::time::SystemTime::now();
    let mut rounds = Vec::new();
    for (round, run_id) in ["org-bench-1", "org-bench-2"].into_iter().enumerate() {
        let at = Timestamp::from_system_time(now + std::time::Duration::from_secs(300 * round as u64));
        let time = format!("{}Z", &at.as_str()[..19]);
        rounds.push(drain_round(&org, &proxy, concurrency, run_id, &time, &empty_accounts).await?);
    }

    let scopes = rounds[0].scopes;
    let failed_scopes = (failing * regions.len()) as u64;
    let archived = scopes - failed_scopes;
    // A failing scope fails every round: one dead letter a scope and run.
    let letters = org.dead_letters(SERVICE).await;
    let failed_accounts: BTreeSet<String> = letters.iter().map(|(body, _)| letter_scope(body).0.to_owned()).collect();
    let letter_runs: BTreeSet<(String, String, String)> = letters
        .iter()
        .map(|(body, _)| {
            let (account, region) = letter_scope(body);
            (account.to_owned(), region.to_owned(), body["run_id"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let expected_failed: BTreeSet<String> = names[..failing].iter().map(|n| org.accounts[n].clone()).collect();
    let runs = org.scope_runs().await;
    let complete =
        runs.iter().filter(|r| r.3 == "complete").map(|r| (&r.1, &r.2)).collect::<BTreeSet<_>>().len() as u64;
    let expected_letters = failed_scopes * rounds.len() as u64;
    let isolated = failed_accounts == expected_failed
        && letters.len() as u64 == expected_letters
        && letter_runs.len() == letters.len();

    println!("\n| measure | value |\n|---|---|");
    println!(
        "| scopes planned | {scopes} ({} accounts × {} regions; {} empty) |",
        accounts + 1,
        regions.len(),
        empty_accounts.len() * regions.len()
    );
    println!("| setup (organization, member roles, queues) | {:.1} s |", setup.as_secs_f64());
    println!("| scopes with a complete run | {complete} of {archived} |");
    println!("| dead letters, one a failing scope and run | {} (expected {expected_letters}), exactly the accounts without the member role: {isolated} |", letters.len());
    for (n, round) in rounds.iter().enumerate() {
        round.print(n + 1, concurrency);
    }

    let report = json!({
        "at": Timestamp::now().as_str(),
        "accounts": accounts, "regions": regions, "busy_percent": busy_percent, "failing_accounts": failing,
        "concurrency": concurrency, "batch_size": org.batch_size, "scopes": scopes,
        "empty_scopes": empty_accounts.len() * regions.len(), "setup_s": setup.as_secs_f64(),
        "complete": complete, "dead_letters": letters.len(), "failures_isolated": isolated,
        "rounds": rounds.iter().map(|round| round.json(concurrency)).collect::<Vec<_>>(),
    });
    let targets = Targets::of(&rounds, concurrency, isolated && complete == archived);
    targets.print();
    let mut report = report;
    report["targets"] = targets.json();
    std::fs::create_dir_all("target/bench")?;
    let path = format!("target/bench/org-{}.json", Timestamp::now().as_str().replace(':', ""));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("\nwritten to {path}");
    if complete != archived || !isolated {
        return Err("the organization did not converge as planned".into());
    }
    if !targets.all_met() {
        return Err("a target was missed (see the table above)".into());
    }
    Ok(())
}

/// One schedule of the organization: planned, then drained by the function processes.
struct Round {
    scopes: u64,
    plan_s: f64,
    drain_s: f64,
    messages: u64,
    invocations: usize,
    handed_back: usize,
    list_calls: u64,
    storage: Storage,
    /// History objects (snapshots, changes) the round wrote, and those of empty scopes.
    history_objects: usize,
    empty_scope_objects: usize,
    runs_objects: usize,
    /// Per function process: invocations, CPU seconds, peak RSS MiB.
    processes: Vec<(usize, f64, f64)>,
}

async fn drain_round(
    org: &LocalOrganization,
    proxy: &CountingProxy,
    concurrency: usize,
    run_id: &str,
    time: &str,
    empty_accounts: &BTreeSet<String>,
) -> Result<Round, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let summary = org.plan(SERVICE, run_id, time).await;
    let plan_s = started.elapsed().as_secs_f64();
    let mut functions = Vec::new();
    for _ in 0..concurrency {
        functions.push(org.function_with_storage(SERVICE, &proxy.url()).await?);
    }
    proxy.take();
    org.stage.emulator.reset_calls();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut function in functions {
        let (sqs, queue) = (org.sqs.clone(), org.queues[&SERVICE].queue.clone());
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
            (report, cpu.as_secs_f64(), rss)
        }));
    }
    let (mut invocations, mut handed_back, mut processes) = (0, 0, Vec::new());
    for task in tasks {
        let (report, cpu, rss) = task.await?;
        invocations += report.invocations;
        handed_back += report.handed_back;
        processes.push((report.invocations, cpu, rss));
    }
    let drain_s = started.elapsed().as_secs_f64();
    let scopes = summary["scopes"].as_u64().unwrap_or(0);
    // Every scope runs once: the failing ones fail for good (no member role) and are not tried again.
    let storage = Storage::of(&proxy.take(), scopes);
    let calls = org.stage.emulator.calls();
    let count = |op: &str| calls.get(op).map_or(0, |c| c.calls);
    let bucket = org.stage.aws.history_bucket();
    let mut written = Vec::new();
    for kind in ["snapshots", "changes"] {
        written.extend(bucket.list_objects(&format!("history/{kind}/{SERVICE}/")).await?.into_iter().map(|o| o.key));
    }
    // A scope's own objects name the run after its account and region; a batch's pool names it first.
    let of_round: Vec<&String> =
        written.iter().filter(|k| k.contains(&format!(".{run_id}.")) || k.contains(&format!("/{run_id}."))).collect();
    let mut of_empty = of_round.iter().filter(|k| empty_accounts.iter().any(|a| k.contains(&format!("/{a}.")))).count();
    for key in of_round.iter().filter(|k| k.contains(".pool-")) {
        let lines = org.stage.aws.read(key).await.lines;
        of_empty +=
            usize::from(lines.iter().any(|l| l["account_id"].as_str().is_some_and(|a| empty_accounts.contains(a))));
    }
    let runs_objects = bucket
        .list_objects(&format!("history/runs/{SERVICE}/"))
        .await?
        .iter()
        .filter(|o| o.key.contains(run_id))
        .count();
    Ok(Round {
        scopes,
        plan_s,
        drain_s,
        messages: summary["messages_sent"].as_u64().unwrap_or(0),
        invocations,
        handed_back,
        list_calls: count("DescribeWorkspacesConnectionStatus"),
        storage,
        history_objects: of_round.len(),
        empty_scope_objects: of_empty,
        runs_objects,
        processes,
    })
}

/// The targets, checked on the rounds: the recurring cost on the next schedule (round 2),
/// objects on both rounds, the drain of each round, and the failures.
struct Targets {
    cost: f64,
    empty_scope_objects: usize,
    /// The most history objects a batch run wrote on average in a round: objects / invocations.
    objects_a_batch: f64,
    slowest_drain_s: f64,
    isolated: bool,
}

/// The targets' bounds.
const COST_TARGET: f64 = 0.04;
const OBJECTS_A_BATCH_TARGET: f64 = 2.0;
const DRAIN_TARGET_S: f64 = 900.0;

impl Targets {
    fn of(rounds: &[Round], concurrency: usize, isolated: bool) -> Self {
        let last = rounds.last().expect("a round");
        Targets {
            cost: last.cost_per_account_region_month(concurrency),
            empty_scope_objects: rounds.iter().map(|r| r.empty_scope_objects).sum(),
            objects_a_batch: rounds
                .iter()
                .map(|r| r.history_objects as f64 / r.invocations.max(1) as f64)
                .fold(0.0, f64::max),
            slowest_drain_s: rounds.iter().map(|r| r.drain_s).fold(0.0, f64::max),
            isolated,
        }
    }

    fn checks(&self) -> [(&'static str, String, bool); 5] {
        [
            (
                "cost per account and region a month, next schedule (≤ $0.04)",
                format!("${:.4}", self.cost),
                self.cost <= COST_TARGET,
            ),
            (
                "history objects of empty scopes (0)",
                self.empty_scope_objects.to_string(),
                self.empty_scope_objects == 0,
            ),
            (
                "history objects a batch run, on average in a round (≤ 2)",
                format!("{:.2}", self.objects_a_batch),
                self.objects_a_batch <= OBJECTS_A_BATCH_TARGET,
            ),
            (
                "slowest round's drain (≤ 15 min)",
                format!("{:.0} s", self.slowest_drain_s),
                self.slowest_drain_s <= DRAIN_TARGET_S,
            ),
            (
                "failing scopes dead-lettered with their reason, the others complete",
                self.isolated.to_string(),
                self.isolated,
            ),
        ]
    }

    fn all_met(&self) -> bool {
        self.checks().iter().all(|(_, _, met)| *met)
    }

    fn print(&self) {
        println!("\n| target | measured | met |\n|---|---|---|");
        for (name, value, met) in self.checks() {
            println!("| {name} | {value} | {} |", if met { "yes" } else { "**no**" });
        }
    }

    fn json(&self) -> serde_json::Value {
        let checks = self.checks().map(|(name, value, met)| json!({"target": name, "measured": value, "met": met}));
        json!({"all_met": self.all_met(), "checks": checks.to_vec()})
    }
}

/// Runs a month of one account and region for the five services at their default schedules
/// (5 minutes: pools, connection status, IVS; 10: Chime; 15: GameLift Streams).
const RUNS_A_MONTH: f64 = 3.0 * 8_640.0 + 4_320.0 + 2_880.0;

/// SQS requests a message costs: a tenth of a `SendMessageBatch`, a receive and a delete.
const SQS_REQUESTS_A_MESSAGE: f64 = 2.1;

/// Log bytes an invocation writes: its metrics line, the batch's line, Lambda's own lines.
const LOG_BYTES_AN_INVOCATION: f64 = 2_048.0;

impl Round {
    /// The bill of one account and region a month, from this round's counted requests (each
    /// request counted as one unit: the items and objects are small), Lambda billed on the drain's
    /// wall time of every function process (on moto, so an upper bound), the five services run
    /// as this one.
    fn cost_per_account_region_month(&self, concurrency: usize) -> f64 {
        let s = &self.storage;
        let storage = s.dynamodb_reads * price::DYNAMODB_RRU
            + s.dynamodb_writes * price::DYNAMODB_WRU
            + s.s3_puts * price::S3_PUT
            + s.s3_gets * price::S3_GET;
        let invocations = self.invocations as f64;
        let lambda = invocations * price::LAMBDA_REQUEST
            + self.drain_s * concurrency as f64 * price::LAMBDA_MEMORY_GB * price::LAMBDA_GB_SECOND;
        let queue_and_logs = invocations
            * (SQS_REQUESTS_A_MESSAGE * price::SQS_REQUEST + LOG_BYTES_AN_INVOCATION / 1e9 * price::LOGS_GB);
        (storage + (lambda + queue_and_logs) / self.scopes.max(1) as f64) * RUNS_A_MONTH
    }

    fn print(&self, n: usize, concurrency: usize) {
        let s = &self.storage;
        println!(
            "| round {n}: plan, drain ({concurrency} function processes) | {:.2} s, {:.1} s ({:.1} scopes/s) |",
            self.plan_s,
            self.drain_s,
            self.scopes as f64 / self.drain_s
        );
        println!(
            "| round {n}: messages / invocations / handed back | {} / {} / {} |",
            self.messages, self.invocations, self.handed_back
        );
        println!("| round {n}: list calls | {} |", self.list_calls);
        println!(
            "| round {n}: per scope-run: DynamoDB reads, writes; S3 PUTs, GETs | {:.2}, {:.2}; {:.2}, {:.2} |",
            s.dynamodb_reads, s.dynamodb_writes, s.s3_puts, s.s3_gets
        );
        println!(
            "| round {n}: history objects (of empty scopes), runs objects | {} ({}), {} |",
            self.history_objects, self.empty_scope_objects, self.runs_objects
        );
        for (i, (invocations, cpu, rss)) in self.processes.iter().enumerate() {
            println!("| round {n}: function process {i}: invocations, CPU, peak RSS | {invocations}, {cpu:.2} s, {rss:.1} MiB |");
        }
        println!("| round {n}: cost per account and region a month, were every run as this round's (counted requests; Lambda on moto's wall time) | ${:.4} |", self.cost_per_account_region_month(concurrency));
    }

    fn json(&self, concurrency: usize) -> serde_json::Value {
        let s = &self.storage;
        json!({
            "cost_per_account_region_month_usd": self.cost_per_account_region_month(concurrency),
            "scopes": self.scopes, "plan_s": self.plan_s, "drain_s": self.drain_s,
            "scopes_per_s": self.scopes as f64 / self.drain_s, "messages": self.messages,
            "invocations": self.invocations, "handed_back": self.handed_back, "list_calls": self.list_calls,
            "per_scope_run": {"dynamodb_reads": s.dynamodb_reads, "dynamodb_writes": s.dynamodb_writes, "s3_puts": s.s3_puts, "s3_gets": s.s3_gets},
            "history_objects": self.history_objects, "empty_scope_history_objects": self.empty_scope_objects,
            "runs_objects": self.runs_objects,
            "processes": self.processes.iter().map(|(n, cpu, rss)| json!({"invocations": n, "cpu_s": cpu, "peak_rss_mib": rss})).collect::<Vec<_>>(),
        })
    }
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
                "DynamoDB UpdateItem (session)",
                "DynamoDB DeleteItem",
                "DynamoDB BatchWriteItem",
            ]),
            s3_puts: sum(&["S3 PutObject", "S3 UploadPart", "S3 CreateMultipartUpload", "S3 CompleteMultipartUpload"]),
            s3_gets: sum(&["S3 GetObject"]),
        }
    }
}

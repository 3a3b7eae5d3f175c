//! `make demo`: the whole archiver on the local stand-ins, as it would run for a day. Starts moto
//! (DynamoDB, S3, Secrets Manager) and the emulator seeded from `events/local-world.json`, its
//! clock at yesterday's midnight (UTC), and the five real function binaries through a local
//! Lambda Runtime API with their clocks moved with the emulator's (`archiver_e2e::day`). Then it
//! simulates the day: every half hour the emulator's sessions move on (start, change, end), and
//! every five minutes each function whose schedule (the template's default) falls then gets its
//! scheduled event. It shows what was archived, compacts the day with the real history-compactor, and asks
//! `session-audit` the auditor's questions about it, from the Parquet: who was connected when, a
//! user who connected more than once, a summary, the plot, and the HTML report
//! (`target/demo/`).
//! Then it archives a seeded organization: the archive account and two members in two regions,
//! one member without the member role, each service planned by the real planner and delivered
//! through its queue to its function; it shows each account and region's run and the scopes that
//! failed, with their reason from the dead-letter queue.
//! `--keep` keeps the stand-ins up afterwards so you can look with the AWS CLI (Ctrl-C stops).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use archiver_e2e::day::{schedule_minutes, FakeClock};
use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::organization::{letter_scope, LocalOrganization, Member};
use archiver_e2e::stage::{events_dir, local_world, read_json, start_function, LocalStage, BUCKET, TABLE};
use serde_json::Value as Json;
use session_archiver::model::Timestamp;
use session_archiver::ServiceId;
use session_audit::record::{day_of, format_time, parse_time};

#[tokio::main]
async fn main() -> ExitCode {
    let keep = std::env::args().any(|a| a == "--keep");
    tokio::select! {
        result = demo(keep) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("demo failed: {err}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ninterrupted: stopping moto, the emulator and the functions");
            ExitCode::from(130)
        }
    }
}

async fn demo(keep: bool) -> Result<(), Box<dyn std::error::Error>> {
    let real_now = Timestamp::now().epoch_seconds();
    // Yesterday (UTC): a whole day, finished, so the compactor takes it.
    let day_start = (real_now.div_euclid(86_400) - 1) * 86_400;
    let mut world = local_world()?;
    // Tick 0 two minutes before midnight: a session's times fall up to 97 s after its tick, so
    // every session a run lists has started by then.
    (world.start_epoch, world.tick_seconds) = (day_start - 120, TICK_SECONDS);
    println!("starting moto server (DynamoDB, S3, Secrets Manager) and the session API emulator ...");
    let stage = LocalStage::start(world).await?;
    println!("  moto      {}  (table {TABLE}, bucket {BUCKET})", stage.moto.url());
    println!("  emulator  {}  (seeded from events/local-world.json)\n", stage.emulator.url());
    std::fs::create_dir_all("target/demo")?;
    let clock = FakeClock::new(Path::new("target/demo"))?;

    let runs = archive_a_day(&stage, &clock, day_start).await?;
    print_table(&runs);
    show_a_sample(&stage, &runs).await;
    compact_the_day(&stage, day_start).await?;
    audit_the_day(&stage, day_start).await?;
    archive_an_organization().await?;

    if keep {
        println!("\nthe stand-ins stay up until Ctrl-C. Look with the AWS CLI:");
        println!("  export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-east-1");
        println!("  aws --endpoint-url {} dynamodb scan --table-name {TABLE} --max-items 3", stage.moto.url());
        println!("  aws --endpoint-url {} s3 ls s3://{BUCKET}/history/ --recursive", stage.moto.url());
        std::future::pending::<()>().await;
    } else {
        println!("\n`make demo KEEP=1` keeps moto and the emulator up afterwards, to look with the AWS CLI.");
    }
    Ok(())
}

/// The emulator's tick: its sessions move on every half hour (a WorkSpace connected for an hour
/// in two and a half, a pool session of three hours), and the runs every five minutes between
/// see most of them unchanged, as a day of a real account looks.
const TICK_SECONDS: i64 = 1_800;
/// The functions' clock moves in steps of the finest schedule.
const STEP_SECONDS: i64 = 300;

/// One run of the day: its service, its time, what the function answered.
struct DayRun {
    service: ServiceId,
    summary: Json,
}

/// Runs each function at its schedule's times through the day that starts at `day_start`, the
/// emulator's clock and the functions' moved to each time before its runs.
async fn archive_a_day(
    stage: &LocalStage,
    clock: &FakeClock,
    day_start: i64,
) -> Result<Vec<DayRun>, Box<dyn std::error::Error>> {
    let template = std::fs::read_to_string(events_dir().join("../template.yaml"))?;
    let mut functions = Vec::new();
    for service in ServiceId::ALL {
        let minutes = schedule_minutes(&template, service)?;
        let mut env = stage.function_env();
        env.extend(clock.env());
        let function = start_function(service, &env, Duration::from_secs(120)).await?;
        functions.push((service, minutes * 60, function));
    }
    let schedules: Vec<String> = functions.iter().map(|(s, every, _)| format!("{s} {} min", every / 60)).collect();
    println!("--- a simulated day, {}: each function at its schedule (the template's defaults) ---", day_of(day_start));
    println!("  {}", schedules.join(", "));
    println!(
        "  the emulator's sessions move on every {} minutes; the functions' clock is moved with it",
        TICK_SECONDS / 60
    );
    let mut runs: Vec<DayRun> = Vec::new();
    let mut reported = 0;
    for at in (day_start..day_start + 86_400).step_by(STEP_SECONDS as usize) {
        if at > day_start && (at - day_start) % TICK_SECONDS == 0 {
            stage.emulator.advance(1);
        }
        clock.set(at, Timestamp::now().epoch_seconds())?;
        for (service, _, function) in functions.iter_mut().filter(|(_, every, _)| (at - day_start) % *every == 0) {
            let summary = run_at(function, *service, at).await?;
            runs.push(DayRun { service: *service, summary });
        }
        let next = at + STEP_SECONDS;
        if (next - day_start) % (3 * 3_600) == 0 {
            let since = &runs[reported..];
            let sum = |name: &str| since.iter().map(|r| r.summary[name].as_u64().unwrap_or(0)).sum::<u64>();
            let hour = &format_time(next)[11..16];
            println!(
                "  {hour}  {:>4} runs so far; in the last 3 hours {:>4} sessions opened, {:>4} changed, {:>4} ended",
                runs.len(),
                sum("new"),
                sum("changed"),
                sum("ended")
            );
            reported = runs.len();
        }
    }
    Ok(runs)
}

/// The scheduled event of `service` at `at`, as EventBridge sends it, through its function.
async fn run_at(function: &mut LocalFunction, service: ServiceId, at: i64) -> Result<Json, Box<dyn std::error::Error>> {
    let mut event = read_json(&events_dir().join(service.as_str()).join("scheduled.json"))?;
    let time = format_time(at);
    event["time"] = Json::from(time.clone());
    event["id"] = Json::from(format!("demo-{service}-{}", time.replace([':', '-'], "")));
    match function.invoke(event).await? {
        Outcome::Response(summary) => Ok(summary),
        Outcome::Error { error_type, error_message } => {
            Err(format!("{service} at {time}: {error_type}: {error_message}").into())
        }
    }
}

/// The history-compactor on the day: its snapshots, changes and runs as Parquet.
async fn compact_the_day(stage: &LocalStage, day_start: i64) -> Result<(), Box<dyn std::error::Error>> {
    let day = day_of(day_start);
    println!("\n--- the day compacted: history-compactor {{\"compact\": {{\"day\": \"{day}\"}}}} ---");
    let mut compactor = stage.compactor(256, &[]).await?;
    match compactor.invoke(serde_json::json!({ "compact": { "day": day } })).await? {
        Outcome::Response(_) => {}
        Outcome::Error { error_type, error_message } => {
            return Err(format!("compaction: {error_type}: {error_message}").into())
        }
    }
    let parquet = stage.aws.keys("history/parquet/").await;
    let objects: Vec<&String> = parquet.iter().filter(|k| k.ends_with(".parquet")).collect();
    let bytes: usize =
        futures::future::join_all(objects.iter().map(|k| stage.aws.bytes(k))).await.iter().map(Vec::len).sum();
    println!(
        "  {} Parquet objects ({} KiB, ZSTD), one a kind and service, under s3://{BUCKET}/history/parquet/",
        objects.len(),
        bytes / 1024
    );
    Ok(())
}

/// What an auditor sees of the day, from its Parquet: who was connected when, a user who
/// connected more than once, the plot, and the report to send.
async fn audit_the_day(stage: &LocalStage, day_start: i64) -> Result<(), Box<dyn std::error::Error>> {
    let (from, to) = (format_time(day_start), format_time(day_start + 86_400));
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let connected = stage
        .aws
        .audit(&[&["connected", "--format", "json", "--service", "workspaces-connection-status"][..], &range].concat())
        .await?;
    let rows: Vec<Json> = serde_json::from_str(&connected)?;
    let mut intervals: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for row in rows.iter().filter(|r| r["state"] == "connected") {
        *intervals.entry(row["user_id"].as_str().unwrap_or_default()).or_default() += 1;
    }
    // The user who connected the fewest times but more than once: a story that fits a screen.
    let returning = intervals.iter().filter(|(_, n)| **n >= 2).min_by_key(|(_, n)| **n).map(|(u, _)| *u);
    let mut questions: Vec<Vec<&str>> = Vec::new();
    match returning {
        Some(user) => questions
            .push([&["connected", "--user", user, "--service", "workspaces-connection-status"][..], &range].concat()),
        None => println!("\n(no WorkSpace user connected more than once that day)"),
    }
    questions.push([&["summary", "--by", "day"][..], &range].concat());
    questions.push([&["plot", "concurrency", "--out", "target/demo/concurrency"][..], &range].concat());
    for question in questions {
        println!("\n$ session-audit {}", question.join(" "));
        print!("{}", stage.aws.audit(&question).await?);
    }
    let report = [&["report", "--out", REPORT][..], &range].concat();
    println!("\n$ session-audit {}", report.join(" "));
    stage.aws.audit(&report).await?;
    let path = std::fs::canonicalize(REPORT)?;
    println!(
        "the report: {} (open it in a browser: timeline per user, concurrency, runs, top users, sessions)",
        path.display()
    );
    print_first_connections(stage, &range).await
}

/// The day's first connections of users, in time order: who was connected when, at a glance.
async fn print_first_connections(stage: &LocalStage, range: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let question = [&["connected", "--format", "json"][..], range].concat();
    let mut rows: Vec<Json> = serde_json::from_str(&stage.aws.audit(&question).await?)?;
    let total = rows.iter().filter(|r| r["state"] == "connected" && r["user_id"].is_string()).count();
    // Those begun during the day (the ones open at midnight start at the range's start).
    let from = format_time(parse_time(range[1]).unwrap_or_default());
    rows.retain(|r| r["state"] == "connected" && r["user_id"].is_string() && r["start"].as_str() > Some(from.as_str()));
    rows.sort_by(|a, b| {
        (a["start"].as_str(), a["user_id"].as_str()).cmp(&(b["start"].as_str(), b["user_id"].as_str()))
    });
    println!(
        "\nwho was connected when: {total} users' connections; the first begun that day (session-audit {}):",
        question.join(" ")
    );
    let time = |row: &Json, field: &str| row[field].as_str().map_or(String::new(), |t| t[11..16].to_owned());
    for row in rows.iter().take(12) {
        let seconds = row["duration_seconds"].as_i64().unwrap_or(0);
        let session = row["session_id"].as_str().unwrap_or_default();
        let session = session.rsplit('/').next().unwrap_or(session);
        println!(
            "  {}-{} {:>2}:{:02}  {:<9} {:<29} {session}",
            time(row, "start"),
            time(row, "end"),
            seconds / 3_600,
            seconds % 3_600 / 60,
            row["user_id"].as_str().unwrap_or_default(),
            row["service"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

const REPORT: &str = "target/demo/report.html";

/// A seeded organization of three accounts in two regions, one member without the member role:
/// planned, queued and archived service by service.
async fn archive_an_organization() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n--- an organization: the archive account and two members, in two regions ---");
    let members = [
        Member { name: "alpha", member_role: true, denied_in: None, empty: false },
        Member { name: "beta", member_role: false, denied_in: None, empty: false },
    ];
    let org = LocalOrganization::start(local_world()?, &members).await?;
    println!(
        "  archive account 123456789012, alpha {}, beta {} (no member role)",
        org.accounts["alpha"], org.accounts["beta"]
    );
    let time = format!("{}Z", &Timestamp::now().as_str()[..19]);
    for service in ServiceId::ALL {
        let summary = org.plan(service, &format!("plan-{service}"), &time).await;
        let mut function = org.function(service).await?;
        let delivered = org.drain(service, &mut function).await;
        let not_offered: Vec<&str> =
            summary["not_offered"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
        let not_offered =
            if not_offered.is_empty() { String::new() } else { format!("; not offered in {}", not_offered.join(", ")) };
        println!(
            "  {:<30} planned {} scopes in {} accounts; {} batch message(s), {} invocation(s){not_offered}",
            service.as_str(),
            summary["scopes"],
            summary["accounts"],
            summary["messages_sent"],
            delivered.invocations
        );
    }
    let names: std::collections::BTreeMap<&str, &str> = std::iter::once(("123456789012", "archive"))
        .chain(org.accounts.iter().map(|(name, id)| (id.as_str(), name.as_str())))
        .collect();
    println!("\n{:<30} {:<22} {:<10} {:<9} {:>8}", "service", "account", "region", "run", "sessions");
    for (service, account, region, status, sessions) in org.scope_runs().await {
        let account = format!("{account} {}", names.get(account.as_str()).unwrap_or(&""));
        println!("{service:<30} {account:<22} {region:<10} {status:<9} {sessions:>8}");
    }
    println!("\nfailed scopes, from the dead-letter queues (each message carries its error):");
    let mut reasons = std::collections::BTreeSet::new();
    for service in ServiceId::ALL {
        for (body, attributes) in org.dead_letters(service).await {
            let (account, region) = letter_scope(&body);
            let account = account.to_owned();
            let name = names.get(account.as_str()).unwrap_or(&"");
            let error_type = attributes.get("ErrorType").map_or("", String::as_str);
            println!("  {:<30} {account} {name:<8} {region:<10} {error_type}", service.as_str());
            let reason = attributes.get("ErrorMessage").cloned().unwrap_or_default();
            reasons.insert(reason.replace(region, "<region>"));
        }
    }
    for reason in reasons {
        println!("  reason: {reason}");
    }
    Ok(())
}

/// Per service: its runs of the day and what they saw and wrote.
fn print_table(runs: &[DayRun]) {
    println!(
        "\n{:<30} {:>5} {:>9} {:>6} {:>8} {:>6} {:>10} {:>7}",
        "service", "runs", "listed", "new", "changed", "ended", "api calls", "objects"
    );
    for service in ServiceId::ALL {
        let own: Vec<&Json> = runs.iter().filter(|r| r.service == service).map(|r| &r.summary).collect();
        let sum = |name: &str| own.iter().map(|s| s[name].as_u64().unwrap_or_default()).sum::<u64>();
        let objects: usize = own.iter().map(|s| s["s3_keys"].as_array().map_or(0, Vec::len)).sum();
        println!(
            "{:<30} {:>5} {:>9} {:>6} {:>8} {:>6} {:>10} {:>7}",
            service.as_str(),
            own.len(),
            sum("sessions"),
            sum("new"),
            sum("changed"),
            sum("ended"),
            sum("api_calls"),
            objects
        );
    }
    println!("listed: sessions summed over the runs; objects: s3://{BUCKET}/history/<snapshots|changes>/<service>/dt=<day>/<account>.<region>.<run>.jsonl.gz");
}

async fn show_a_sample(stage: &LocalStage, runs: &[DayRun]) {
    let Some(run) = runs.iter().rev().find(|r| r.summary["s3_keys"].as_array().is_some_and(|k| k.len() > 1)) else {
        return;
    };
    let key = run.summary["s3_keys"][1].as_str().unwrap_or_default();
    let lines = stage.aws.read(key).await.lines;
    println!("\nfirst change lines of {}, s3://{BUCKET}/{key}:", run.service);
    for line in lines.iter().take(3) {
        println!("  {}", Json::Object(line.clone()));
    }
    let items = stage.aws.sessions().await;
    println!(
        "\nthe table holds {} session items; {} of them ended",
        items.len(),
        items.values().filter(|i| i.contains_key("gone_at")).count()
    );
}

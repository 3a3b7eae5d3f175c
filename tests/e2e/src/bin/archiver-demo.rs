//! `make demo`: the whole archiver on the local stand-ins. Starts moto (DynamoDB, S3) and the
//! emulator seeded from `events/local-world.json`, runs each of the five real function binaries
//! through a local Lambda Runtime API with its scheduled sample event, lets time pass in the
//! emulator (sessions change and end), runs them again, shows what was archived, and asks
//! `session-audit` the auditor's questions about it (plot in `target/demo/`).
//! Then it archives a seeded organization: the archive account and two members in two regions,
//! one member without the member role, each service planned by the real planner and delivered
//! through its queue to its function; it shows each account and region's run and the scopes that
//! failed, with their reason from the dead-letter queue.
//! `--keep` keeps the stand-ins up afterwards so you can look with the AWS CLI (Ctrl-C stops).

use std::process::ExitCode;

use archiver_e2e::lambda::Outcome;
use archiver_e2e::organization::{letter_scope, LocalOrganization, Member};
use archiver_e2e::stage::{events_dir, local_world, read_json, LocalStage, BUCKET, TABLE};
use serde_json::Value as Json;
use session_archiver::model::Timestamp;
use session_archiver::ServiceId;

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
    println!("starting moto server (DynamoDB, S3) and the session API emulator ...");
    let stage = LocalStage::start(local_world()?).await?;
    println!("  moto      {}  (table {TABLE}, bucket {BUCKET})", stage.moto.url());
    println!("  emulator  {}  (seeded from events/local-world.json)\n", stage.emulator.url());

    let mut functions = Vec::new();
    for service in ServiceId::ALL {
        functions.push((service, stage.function(service).await?));
    }

    // The audits ask from the day of the first run: a demo that crosses midnight still sees it.
    let first_day = Timestamp::now().day().to_owned();
    let mut rows = Vec::new();
    for round in 1..=2 {
        if round == 2 {
            let tick = stage.emulator.advance(1);
            println!("time passes in the emulator (tick {tick}): sessions change, end and start\n");
        }
        for (service, function) in functions.iter_mut() {
            let mut event = read_json(&events_dir().join(service.as_str()).join("scheduled.json"))?;
            // Sent now, as the schedule would: the history's `dt` is today. The next schedule
            // tick has a new event id, as EventBridge sends them.
            event["time"] = Json::from(format!("{}Z", &Timestamp::now().as_str()[..19]));
            if round == 2 {
                let id = format!("{}-next", event["id"].as_str().unwrap_or_default());
                event["id"] = Json::from(id);
            }
            match function.invoke(event).await? {
                Outcome::Response(summary) => rows.push((round, *service, summary)),
                Outcome::Error { error_type, error_message } => {
                    return Err(format!("{service}: {error_type}: {error_message}").into())
                }
            }
        }
    }

    print_table(&rows);
    show_a_sample(&stage, &rows).await;
    audit_the_history(&stage, &first_day).await?;
    archive_an_organization().await?;

    if keep {
        println!("\nthe stand-ins stay up until Ctrl-C. Look with the AWS CLI:");
        println!("  export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-east-1");
        println!("  aws --endpoint-url {} dynamodb scan --table-name {TABLE} --max-items 3", stage.moto.url());
        println!("  aws --endpoint-url {} s3 ls s3://{BUCKET}/history/ --recursive", stage.moto.url());
        println!(
            "  aws --endpoint-url {} s3 cp s3://{BUCKET}/{} - | gunzip | head -3",
            stage.moto.url(),
            rows[0].2["s3_keys"][0].as_str().unwrap_or_default()
        );
        std::future::pending::<()>().await;
    } else {
        println!("\n`make demo KEEP=1` keeps moto and the emulator up afterwards, to look with the AWS CLI.");
    }
    Ok(())
}

/// What an auditor sees: `session-audit` on the history the runs just wrote, from `first_day`.
async fn audit_the_history(stage: &LocalStage, first_day: &str) -> Result<(), Box<dyn std::error::Error>> {
    let now = Timestamp::now().as_str().to_owned();
    std::fs::create_dir_all("target/demo")?;
    let questions: [&[&str]; 5] = [
        &["summary", "--by", "hour", "--from", first_day],
        &["active-at", &now, "--service", "gamelift-stream-sessions", "--user", "user-054"],
        &["sessions", "--from", first_day, "--user", "user-007", "--format", "csv"],
        &["connected", "--from", first_day, "--user", "user-007"],
        &["plot", "concurrency", "--from", first_day, "--out", "target/demo/concurrency"],
    ];
    for question in questions {
        println!("\n$ session-audit {}", question.join(" "));
        print!("{}", stage.aws.audit(question).await?);
    }
    Ok(())
}

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

fn print_table(rows: &[(u32, ServiceId, Json)]) {
    println!(
        "{:<30} {:>3} {:>8} {:>5} {:>7} {:>9} {:>5} {:>9} {:>6}  objects written",
        "service", "run", "sessions", "new", "changed", "unchanged", "ended", "api calls", "writes"
    );
    for (round, service, s) in rows {
        let n = |name: &str| s[name].as_u64().unwrap_or_default();
        let keys: Vec<&str> =
            s["s3_keys"].as_array().into_iter().flatten().filter_map(|k| k.as_str()?.split('/').nth(1)).collect();
        println!(
            "{:<30} {:>3} {:>8} {:>5} {:>7} {:>9} {:>5} {:>9} {:>6}  {}",
            service.as_str(),
            round,
            n("sessions"),
            n("new"),
            n("changed"),
            n("unchanged"),
            n("ended"),
            n("api_calls"),
            n("items_written"),
            keys.join(" + ")
        );
    }
    println!("objects: s3://{BUCKET}/history/<snapshots|changes>/<service>/dt=<event day>/<account>.<region>.<event id>.jsonl.gz");
}

async fn show_a_sample(stage: &LocalStage, rows: &[(u32, ServiceId, Json)]) {
    let Some((_, service, summary)) =
        rows.iter().rev().find(|(_, _, s)| s["s3_keys"].as_array().is_some_and(|k| k.len() > 1))
    else {
        return;
    };
    let key = summary["s3_keys"][1].as_str().unwrap_or_default();
    let lines = stage.aws.read(key).await.lines;
    println!("\nfirst change lines of {service}, s3://{BUCKET}/{key}:");
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

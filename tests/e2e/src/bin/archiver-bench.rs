//! `make bench`: the real function binaries (release build) through the local Runtime API against
//! the emulator and moto, at n sessions per service spread over many parents, in three scenarios:
//! first run, unchanged rerun, 10 % churn. Reports wall and CPU time, peak RSS, cold init, list calls
//! against their floor, DynamoDB and S3 requests, and an estimated AWS cost; writes the results to
//! `target/bench/<time>-<commit>.json` and compares them with the previous file.
//!
//! `BENCH_SIZES` (default `10000,100000`) and `BENCH_SERVICES` (default all five) choose the runs;
//! `BENCH_FUNCTION_<NAME>=<value>` sets a variable of the function's environment.
//!
//! `BENCH_SCENARIOS` (default `first run,unchanged rerun,churn`) stops after the first scenario
//! not listed.
//!
//! For the services of `BENCH_RESUME_SERVICES` (default none; e.g. `gamelift-stream-sessions`, an
//! account-wide listing), a fourth scenario runs a first run again on a fresh table with the
//! function's deadline set to a share of the first run's wall time, so that it takes at least
//! `BENCH_RESUME_PARTS` (default 5) invocations, and checks that nothing was lost: the table holds
//! every session, and the run's snapshot lines name each session once. Off by default: each part
//! reads the listing's previous state from the table again, which on moto soon takes longer than
//! a part's share of the run (see docs/performance.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::price;
use archiver_e2e::stage::{LocalStage, ACCOUNT_ID, REGION, TABLE};
use archiver_e2e::{api_of, commit, process_usage, CountingProxy, Traffic};
use serde::Serialize;
use serde_json::Value as Json;
use session_archiver::aws::SdkSettings;
use session_archiver::model::{SessionRecord, Timestamp};
use session_archiver::sources::{pages, AnySource, SessionSource, SourceOptions};
use session_archiver::table::{DynamoTable, Scope, SessionTable};
use session_archiver::ServiceId;
use session_emulator::{Api, Emulator, EmulatorConfig, OpCounts, Shape};

/// The function's timeout here. moto serves a Query about a hundred times slower than DynamoDB,
/// so a run at 100,000 sessions can pass Lambda's 15 minutes on it; the bench measures the
/// archiver, so it gives each run an hour (a real function carries a longer run on in its next
/// invocation).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Share of the sessions the churn scenario opens, changes or ends.
const CHURN: f64 = 0.10;

/// Sessions per parent for the services listed per parent (pools, channels, voice connectors).
const PER_PARENT: u32 = 100;

#[derive(Clone, Debug, Serialize)]
struct Row {
    service: String,
    n: u32,
    scenario: &'static str,
    outcome: String,
    /// Invocations the run took (more than one when the function's deadline stopped it).
    invocations: u32,
    sessions: u64,
    /// Sessions opened, changed or ended, as a share of n.
    churn_pct: f64,
    /// Sessions changed or ended: those whose stored item the run reads.
    changed_or_ended: u64,
    wall_ms: f64,
    cpu_ms: f64,
    cpu_us_per_session: f64,
    peak_rss_mib: f64,
    cold_init_ms: f64,
    list_calls: u64,
    list_floor: u64,
    discovery_calls: u64,
    discovery_floor: u64,
    dynamodb_requests: u64,
    items_written: u64,
    s3_requests: u64,
    s3_bytes: u64,
    /// DynamoDB read request units the run used (estimated from its traffic, see [`cost`]).
    read_units: u64,
    /// The read units of one read of every listing from the table: what a run pays that reads
    /// its previous state there (no state object) and ends nothing.
    table_read_units: u64,
    estimated_cost_usd: f64,
    /// Sessions per second the emulator serves alone (measured in-process before the runs).
    emulator_sessions_per_s: f64,
    /// Function CPU time over wall time: under 50 %, the stand-ins set the pace, not the archiver.
    archiver_cpu_share_pct: f64,
    /// moto's peak RSS since it started for this service: what the local stand-in needs, not the archiver.
    moto_peak_rss_mib: f64,
}

impl Row {
    /// The row in brief, printed as soon as it is measured.
    fn one_line(&self) -> String {
        format!(
            "{} n={} {}: {} sessions, wall {:.1} s, CPU {:.1} s, peak RSS {:.1} MiB, cold init {:.1} ms, list calls {}/{}, items written {}, moto peak RSS {:.0} MiB",
            self.service, self.n, self.scenario, self.sessions, self.wall_ms / 1000.0, self.cpu_ms / 1000.0,
            self.peak_rss_mib, self.cold_init_ms, self.list_calls, self.list_floor, self.items_written,
            self.moto_peak_rss_mib
        )
    }
}

#[derive(Serialize)]
struct Report {
    commit: String,
    machine: BTreeMap<&'static str, String>,
    at: String,
    rows: Vec<Row>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn list_of<T>(name: &str, default: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| parse(s).ok_or(format!("{name}: `{s}`"))).collect()
}

async fn bench() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u32> = list_of("BENCH_SIZES", "10000,100000", |s| s.parse().ok().filter(|n| *n >= PER_PARENT))?;
    let all = ServiceId::ALL.map(|s| s.as_str()).join(",");
    let services: Vec<ServiceId> = list_of("BENCH_SERVICES", &all, |s| s.parse().ok())?;
    let resumed: Vec<ServiceId> = list_of("BENCH_RESUME_SERVICES", "", |s| s.parse().ok())?;
    let mut report =
        Report { commit: commit(), machine: machine(), at: Timestamp::now().as_str().to_owned(), rows: Vec::new() };
    let previous = last_report(Path::new("target/bench"));
    std::fs::create_dir_all("target/bench")?;
    let stem = format!("{}-{}", report.at.replace(':', ""), &report.commit[..report.commit.len().min(12)]);
    let path = PathBuf::from(format!("target/bench/{stem}.json"));
    let copies = Path::new("target/bench").join(format!("bin-{stem}"));
    let binaries = copy_binaries(&services, &copies)?;
    let mut failures = Vec::new();
    for &n in &sizes {
        for &service in &services {
            eprintln!("bench: {service} at n = {n} ...");
            // Each run's row is saved as soon as it is measured, so a bench stopped part way
            // keeps what it measured.
            let mut save = |row: Row| -> std::io::Result<()> {
                eprintln!("bench: {}", row.one_line());
                report.rows.push(row);
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            };
            // A service that fails is reported and the others still run; the exit says so.
            let first_wall = match bench_one(service, n, &binaries[&service], &mut save).await {
                Ok(first_wall) => first_wall,
                Err(err) => {
                    failures.push(format!("{service} at n = {n}: {err}"));
                    continue;
                }
            };
            if resumed.contains(&service) {
                eprintln!("bench: {service} at n = {n}, a first run over several invocations ...");
                if let Err(err) = bench_resumed(service, n, &binaries[&service], first_wall, &mut save).await {
                    failures.push(format!("{service} at n = {n}, resumed: {err}"));
                }
            }
        }
    }
    // Only copies: a failure to remove them loses nothing.
    let _ = std::fs::remove_dir_all(&copies);
    print_table(&report, previous.as_ref());
    println!("\nresults: {}", path.display());
    if failures.is_empty() {
        return Ok(());
    }
    Err(format!("{} failed:\n  {}", failures.len(), failures.join("\n  ")).into())
}

/// Copies of the release binaries the run starts with, so a build during a long run does not
/// change what its later scenarios measure.
fn copy_binaries(services: &[ServiceId], dir: &Path) -> Result<BTreeMap<ServiceId, PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    services
        .iter()
        .map(|service| {
            let binary = LocalFunction::binary_of("release", service.as_str());
            let copy = dir.join(service.as_str());
            std::fs::copy(&binary, &copy).map_err(|e| {
                format!("{}: {e} (`make bench` builds it with cargo build --release)", binary.display())
            })?;
            Ok((*service, copy))
        })
        .collect()
}

/// A world with n sessions of `service` (and none of the others).
fn world(service: ServiceId, n: u32) -> EmulatorConfig {
    let none = Shape::new(0, 0, 0);
    let shape = match service {
        ServiceId::WorkspacesConnectionStatus | ServiceId::GameliftStreamSessions => Shape::account(n),
        _ => Shape::new(n / PER_PARENT, PER_PARENT, 0),
    };
    let mut config = EmulatorConfig {
        seed: 42,
        pool_sessions: none,
        connection_status: none,
        ivs_stream_sessions: none,
        chime_proxy_sessions: none,
        gamelift_stream_sessions: none,
        tick_seconds: 30,
        ..EmulatorConfig::default()
    };
    match api_of(service) {
        Api::PoolSessions => config.pool_sessions = shape,
        Api::ConnectionStatus => config.connection_status = shape,
        Api::IvsStreamSessions => config.ivs_stream_sessions = shape,
        Api::ChimeProxySessions => config.chime_proxy_sessions = shape,
        Api::GameliftStreamSessions => config.gamelift_stream_sessions = shape,
    }
    config
}

/// The fewest list and discovery calls that can read the world: ⌈sessions / max page⌉ per parent,
/// and the lookups of each page's sessions, ⌈page / most ids a call⌉ a page.
fn floors(service: ServiceId, config: &EmulatorConfig) -> (u64, u64) {
    let shape = config.shape(api_of(service));
    let page = u64::from(service.max_page_size().map_or(config.connection_status_page_size, |p| p as u32));
    let sessions = u64::from(shape.sessions_per_parent);
    let lookups = service.lookup().map_or(0, |(_, most)| {
        let most = most as u64;
        (sessions / page) * page.div_ceil(most) + (sessions % page).div_ceil(most)
    });
    let per_parent = sessions.div_ceil(page).max(1);
    let parents = u64::from(shape.parents + shape.empty_parents);
    let discovery = service.max_parent_page_size().map_or(0, |p| parents.div_ceil(p as u64).max(1));
    (u64::from(shape.parents) * (per_parent + lookups) + u64::from(shape.empty_parents), discovery)
}

/// The list calls a run made: its list operation's, and its lookups'.
fn list_calls(calls: &BTreeMap<String, OpCounts>, service: ServiceId) -> u64 {
    let count = |operation: &str| calls.get(operation).map_or(0, |c| c.calls);
    count(service.list_operation()) + service.lookup().map_or(0, |(lookup, _)| count(lookup))
}

/// Every session the emulator at `url` lists for `service`, read as the archiver reads it.
async fn list_all(url: &str, service: ServiceId) -> Result<Vec<SessionRecord>, Box<dyn std::error::Error>> {
    use futures::TryStreamExt;
    let sdk = SdkSettings::local(url).load().await;
    let source = AnySource::new(service, &sdk, SourceOptions::default())?;
    let mut sessions = Vec::new();
    for listing in source.listings().await?.listings {
        let mut stream = std::pin::pin!(pages(&source, &listing, None));
        while let Some(page) = stream.try_next().await? {
            sessions.extend(page.sessions);
        }
    }
    Ok(sessions)
}

/// Sessions per second the emulator serves to one client reading every page, in-process.
async fn emulator_rate(stage: &LocalStage, service: ServiceId) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let sessions = list_all(&stage.emulator.url(), service).await?.len();
    Ok(sessions as f64 / started.elapsed().as_secs_f64())
}

/// Whole-item bytes over the bytes of the same items projected to what a listing's diff reads, on
/// the first Query page of one listing. DynamoDB charges a Query's read units on whole items
/// whatever its projection, so the cost estimate scales the runs' Query bytes by this ratio.
async fn projection_ratio(
    proxy: &CountingProxy,
    service: ServiceId,
    emulator_url: &str,
) -> Result<ItemBytes, Box<dyn std::error::Error>> {
    use futures::StreamExt;
    let sdk = SdkSettings::local(emulator_url).load().await;
    let source = AnySource::new(service, &sdk, SourceOptions::default())?;
    let parent_id = source.listings().await?.listings.into_iter().next().and_then(|listing| listing.parent_id);
    let settings = SdkSettings { region: Some(REGION.into()), ..SdkSettings::local(proxy.url()) };
    let table = DynamoTable::new(settings.dynamodb_client(&settings.load().await), TABLE);
    let scope = Scope { service, account_id: ACCOUNT_ID.into(), region: REGION.into() };
    let query_bytes = |op: &str| proxy.take().get(op).map_or(0, |t| t.bytes_received);
    proxy.take();
    let items = std::pin::pin!(table.stored_pages(&scope, parent_id.as_deref())).next().await.transpose()?;
    let whole = query_bytes("DynamoDB Query");
    std::pin::pin!(table.stored_summaries(&scope, parent_id.as_deref())).next().await.transpose()?;
    let projected = query_bytes("DynamoDB Query (projected)");
    Ok(ItemBytes {
        whole_per_projected: whole as f64 / projected.max(1) as f64,
        whole_per_item: whole as f64 / items.map_or(0, |page| page.len()).max(1) as f64,
    })
}

/// What the bench measures of the table's items, on the first Query page of one listing.
#[derive(Clone, Copy)]
struct ItemBytes {
    /// Whole-item bytes over the bytes of the same items projected.
    whole_per_projected: f64,
    /// Bytes of an item, whole.
    whole_per_item: f64,
}

impl ItemBytes {
    /// Before the table holds anything to measure.
    const NONE: ItemBytes = ItemBytes { whole_per_projected: 1.0, whole_per_item: 0.0 };

    /// The read units of one eventually consistent read of `n` whole items.
    fn table_read_units(&self, n: u32) -> u64 {
        (f64::from(n) * self.whole_per_item / 8192.0).ceil() as u64
    }
}

/// Sets the share of moving slots so that one tick opens, changes or ends [`CHURN`] of the
/// sessions, as the archiver counts them (by record hash), measured on a scratch emulator.
async fn calm_down(service: ServiceId, config: &mut EmulatorConfig) -> Result<(), Box<dyn std::error::Error>> {
    let scratch = Emulator::start(EmulatorConfig { moving_per_mille: 1000, ..config.clone() }).await?;
    let hashes = |sessions: Vec<SessionRecord>| -> BTreeMap<String, String> {
        sessions.into_iter().map(|s| (s.session_id.clone(), s.record_hash())).collect()
    };
    let before = hashes(list_all(&scratch.url(), service).await?);
    scratch.advance(1);
    let after = hashes(list_all(&scratch.url(), service).await?);
    let changes = before.iter().filter(|(id, hash)| after.get(*id) != Some(*hash)).count()
        + after.keys().filter(|id| !before.contains_key(*id)).count();
    let churn_all_moving = changes as f64 / before.len().max(1) as f64;
    config.moving_per_mille = ((CHURN * 1000.0 / churn_all_moving).round() as u32).clamp(1, 1000);
    Ok(())
}

/// The three runs of one service at n sessions, each row handed to `save` as it is measured.
async fn bench_one(
    service: ServiceId,
    n: u32,
    binary: &Path,
    save: &mut impl FnMut(Row) -> std::io::Result<()>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut config = world(service, n);
    calm_down(service, &mut config).await?;
    let (list_floor, discovery_floor) = floors(service, &config);
    let stage = LocalStage::start(config).await?;
    let moto = stage.moto.url().trim_start_matches("http://").parse()?;
    let proxy = CountingProxy::start(moto).await?;
    let env = function_env(&stage, &proxy);
    let rate = emulator_rate(&stage, service).await?;
    let name = service.as_str();
    // The first run reads an empty table.
    let mut item_bytes = ItemBytes::NONE;
    let mut first_wall = Duration::ZERO;
    let chosen = list_of("BENCH_SCENARIOS", "first run,unchanged rerun,churn", |s| Some(s.to_owned()))?;
    for (round, scenario) in ["first run", "unchanged rerun", "churn"].into_iter().enumerate() {
        // The later scenarios run on what the earlier ones left: only a tail can be left out.
        if !chosen.iter().any(|c| c == scenario) {
            break;
        }
        if scenario == "unchanged rerun" {
            item_bytes = projection_ratio(&proxy, service, &stage.emulator.url()).await?;
        }
        if scenario == "churn" {
            stage.emulator.advance(1);
        }
        let mut function = LocalFunction::start(binary, name, ACCOUNT_ID, REGION, &env, FUNCTION_TIMEOUT).await?;
        let cold_init = function.cold_init().await.unwrap_or_default();
        let pid = function.pid().ok_or("the function has no pid")?;
        stage.emulator.reset_calls();
        proxy.take();
        let (cpu_before, _) = process_usage(pid);
        let event = serde_json::json!({
            "version": "0", "id": format!("bench-{name}-{n}-{round}"), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT_ID, "time": format!("{}Z", &Timestamp::now().as_str()[..19]),
            "region": REGION, "resources": [], "detail": {}
        });
        let started = Instant::now();
        let outcome = function.invoke(event).await.map_err(|err| format!("{scenario}: {err}"))?;
        let wall = started.elapsed();
        if round == 0 {
            first_wall = wall;
        }
        let (cpu_after, rss) = process_usage(pid);
        function.kill().await;
        let summary = match outcome {
            Outcome::Response(summary) => summary,
            Outcome::Error { error_type, error_message } => {
                return Err(format!("{name}: {error_type}: {error_message}").into())
            }
        };
        let traffic = proxy.take();
        let calls = stage.emulator.calls();
        let count = |name: &str| summary[name].as_u64().unwrap_or(0);
        let cpu = cpu_after.saturating_sub(cpu_before);
        let sessions = count("sessions");
        let list_calls = list_calls(&calls, service);
        let discovery_calls = service.parent_operation().and_then(|op| calls.get(op)).map_or(0, |c| c.calls);
        let sum = |prefix: &str| {
            traffic.iter().filter(|(op, _)| op.starts_with(prefix)).map(|(_, t)| *t).fold(Traffic::default(), add)
        };
        let dynamodb = sum("DynamoDB");
        let s3 = sum("S3");
        let bill = cost(&traffic, &summary, wall, item_bytes.whole_per_projected);
        save(Row {
            service: name.to_owned(),
            n,
            scenario,
            outcome: summary["outcome"].as_str().unwrap_or_default().to_owned(),
            invocations: 1,
            sessions,
            churn_pct: 100.0 * (count("new") + count("changed") + count("ended")) as f64 / f64::from(n),
            changed_or_ended: count("changed") + count("ended"),
            wall_ms: wall.as_secs_f64() * 1000.0,
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            cpu_us_per_session: cpu.as_secs_f64() * 1e6 / sessions.max(1) as f64,
            peak_rss_mib: rss,
            cold_init_ms: cold_init.as_secs_f64() * 1000.0,
            list_calls,
            list_floor,
            discovery_calls,
            discovery_floor,
            dynamodb_requests: dynamodb.requests,
            items_written: count("items_written"),
            s3_requests: s3.requests,
            s3_bytes: s3.bytes_sent,
            read_units: bill.read_units,
            table_read_units: item_bytes.table_read_units(n),
            estimated_cost_usd: bill.usd,
            emulator_sessions_per_s: rate,
            archiver_cpu_share_pct: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            moto_peak_rss_mib: process_usage(stage.moto.pid()).1,
        })?;
    }
    Ok(first_wall)
}

/// The function's environment on `stage`, its storage calls through `proxy`.
fn function_env(stage: &LocalStage, proxy: &CountingProxy) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        stage.function_env().into_iter().filter(|(k, _)| k != "STORAGE_ENDPOINT_URL").collect();
    env.push(("STORAGE_ENDPOINT_URL".into(), proxy.url()));
    // moto answers a Query about a hundred times slower than DynamoDB: bounds that fit it, so the
    // bench measures the functions, not their timeouts (the margin stays above the failure reserve).
    for (name, value) in [
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "60"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "300"),
        ("DEADLINE_MARGIN_SECONDS", DEADLINE_MARGIN_SECONDS),
    ] {
        env.push((name.to_owned(), value.to_owned()));
    }
    // BENCH_FUNCTION_<NAME>=<value> sets the function's <NAME> (PERSONAL_DATA=keep, PAGE_SIZE, …).
    for (name, value) in std::env::vars() {
        if let Some(name) = name.strip_prefix("BENCH_FUNCTION_") {
            env.retain(|(k, _)| k != name);
            env.push((name.to_owned(), value));
        }
    }
    env
}

/// The margin the bench's functions stop paging at before their deadline.
const DEADLINE_MARGIN_SECONDS: &str = "150";

/// A first run on a fresh table, made to take at least `BENCH_RESUME_PARTS` invocations by a
/// deadline a share of `first_wall` (the first run's wall time) after each invocation starts,
/// then checked: the table holds every session, and the run's snapshot lines name each once.
async fn bench_resumed(
    service: ServiceId,
    n: u32,
    binary: &Path,
    first_wall: Duration,
    save: &mut impl FnMut(Row) -> std::io::Result<()>,
) -> Result<(), Box<dyn std::error::Error>> {
    let parts: u32 = std::env::var("BENCH_RESUME_PARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let config = world(service, n);
    let (list_floor, discovery_floor) = floors(service, &config);
    let stage = LocalStage::start(config).await?;
    let proxy = CountingProxy::start(stage.moto.url().trim_start_matches("http://").parse()?).await?;
    let env = function_env(&stage, &proxy);
    // Paging stops this long after each invocation starts: a share of the whole first run, half
    // of its share of the parts, as each part also has its own start and end to do.
    let paging = (first_wall / (2 * parts)).max(Duration::from_secs(1));
    let timeout = paging + Duration::from_secs(DEADLINE_MARGIN_SECONDS.parse()?);
    let name = service.as_str();
    let mut function = LocalFunction::start(binary, name, ACCOUNT_ID, REGION, &env, timeout).await?;
    let pid = function.pid().ok_or("the function has no pid")?;
    stage.emulator.reset_calls();
    proxy.take();
    let (cpu_before, _) = process_usage(pid);
    let started = Instant::now();
    let run = invoke_until_complete(&mut function, &format!("bench-{name}-{n}-resumed")).await?;
    let wall = started.elapsed();
    let (cpu_after, rss) = process_usage(pid);
    function.kill().await;
    nothing_lost(&stage, service, &format!("bench-{name}-{n}-resumed")).await?;
    let traffic = proxy.take();
    let calls = stage.emulator.calls();
    let cpu = cpu_after.saturating_sub(cpu_before);
    let sum = |prefix: &str| {
        traffic.iter().filter(|(op, _)| op.starts_with(prefix)).map(|(_, t)| *t).fold(Traffic::default(), add)
    };
    let s3 = sum("S3");
    save(Row {
        service: name.to_owned(),
        n,
        scenario: "first run over invocations",
        outcome: "complete".into(),
        invocations: run.invocations,
        sessions: run.sessions,
        churn_pct: 100.0,
        changed_or_ended: 0,
        wall_ms: wall.as_secs_f64() * 1000.0,
        cpu_ms: cpu.as_secs_f64() * 1000.0,
        cpu_us_per_session: cpu.as_secs_f64() * 1e6 / run.sessions.max(1) as f64,
        peak_rss_mib: rss,
        cold_init_ms: 0.0,
        list_calls: list_calls(&calls, service),
        list_floor,
        discovery_calls: service.parent_operation().and_then(|op| calls.get(op)).map_or(0, |c| c.calls),
        discovery_floor,
        dynamodb_requests: sum("DynamoDB").requests,
        items_written: run.items_written,
        s3_requests: s3.requests,
        s3_bytes: s3.bytes_sent,
        read_units: 0,
        table_read_units: 0,
        estimated_cost_usd: 0.0,
        emulator_sessions_per_s: 0.0,
        archiver_cpu_share_pct: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        moto_peak_rss_mib: process_usage(stage.moto.pid()).1,
    })?;
    Ok(())
}

/// What the invocations of one run did, summed.
struct Invocations {
    invocations: u32,
    sessions: u64,
    items_written: u64,
}

/// Invokes `function` with one scheduled event (`id`) until its run completes: each invocation
/// `partial` but the last.
async fn invoke_until_complete(function: &mut LocalFunction, id: &str) -> Result<Invocations, String> {
    let event = serde_json::json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT_ID, "time": format!("{}Z", &Timestamp::now().as_str()[..19]), "region": REGION,
        "resources": [], "detail": {}
    });
    let mut run = Invocations { invocations: 0, sessions: 0, items_written: 0 };
    while run.invocations < 1000 {
        run.invocations += 1;
        let summary = match function.invoke(event.clone()).await.map_err(|e| e.to_string())? {
            Outcome::Response(summary) => summary,
            Outcome::Error { error_type, error_message } => return Err(format!("{error_type}: {error_message}")),
        };
        run.sessions += summary["sessions"].as_u64().unwrap_or(0);
        run.items_written += summary["items_written"].as_u64().unwrap_or(0);
        match summary["outcome"].as_str() {
            Some("complete") => return Ok(run),
            Some("partial") => eprintln!("bench: part {} partial, {} sessions so far", run.invocations, run.sessions),
            other => return Err(format!("invocation {}: outcome {other:?}", run.invocations)),
        }
    }
    Err("the run did not complete in 1,000 invocations".into())
}

/// Checks a first run lost nothing: as many session items as the emulator has sessions, and the
/// run's snapshot lines name each of them once.
async fn nothing_lost(stage: &LocalStage, service: ServiceId, run_id: &str) -> Result<(), String> {
    use std::io::BufRead;
    let truth: std::collections::HashSet<String> =
        stage.emulator.sessions(api_of(service)).into_iter().map(|s| s.id).collect();
    let mut listed = std::collections::HashSet::with_capacity(truth.len());
    for key in stage.aws.keys(&format!("history/snapshots/{service}/")).await {
        if !key.contains(&format!(".{run_id}.")) {
            continue;
        }
        let bytes = stage.aws.bytes(&key).await;
        for line in std::io::BufReader::new(flate2::read::MultiGzDecoder::new(&bytes[..])).lines() {
            let line = line.map_err(|e| format!("{key}: {e}"))?;
            let id: IdOnly = serde_json::from_str(&line).map_err(|e| format!("{key}: {e}"))?;
            if !listed.insert(id.session_id.clone()) {
                return Err(format!("{key}: session {} has a second snapshot line", id.session_id));
            }
        }
    }
    if listed != truth {
        return Err(format!("the snapshot names {} sessions, the emulator has {}", listed.len(), truth.len()));
    }
    let items = count_items(stage, service).await?;
    if items != truth.len() {
        return Err(format!("the table holds {items} sessions, the emulator has {}", truth.len()));
    }
    Ok(())
}

/// The session items of `service`, counted listing by listing with the archiver's own projected
/// Query: a Scan of a million items on moto does not finish (it walks the table for every page).
async fn count_items(stage: &LocalStage, service: ServiceId) -> Result<usize, String> {
    use futures::TryStreamExt;
    // As patient as the functions' clients in the bench (see `function_env`): moto is slow.
    let settings = SdkSettings {
        region: Some(REGION.into()),
        attempt_timeout: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(300),
        ..SdkSettings::local(stage.moto.url())
    };
    let table = DynamoTable::new(settings.dynamodb_client(&settings.load().await), TABLE);
    let scope = Scope { service, account_id: ACCOUNT_ID.into(), region: REGION.into() };
    let parents: Vec<Option<String>> = match service.parent_operation() {
        Some(_) => stage.emulator.parents(api_of(service)).into_iter().map(Some).collect(),
        None => vec![None],
    };
    let mut count = 0;
    for parent in &parents {
        let mut pages = std::pin::pin!(table.stored_summaries(&scope, parent.as_deref()));
        while let Some(page) = pages.try_next().await.map_err(|e| format!("counting the items: {e}"))? {
            count += page.len();
        }
    }
    Ok(count)
}

#[derive(serde::Deserialize)]
struct IdOnly {
    session_id: String,
}

fn add(a: Traffic, b: Traffic) -> Traffic {
    Traffic {
        requests: a.requests + b.requests,
        bytes_sent: a.bytes_sent + b.bytes_sent,
        bytes_received: a.bytes_received + b.bytes_received,
    }
}

/// A run's estimated AWS bill.
struct Bill {
    read_units: u64,
    usd: f64,
}

/// The run's estimated AWS bill from its counts (see [`price`]); `whole_per_projected_byte` scales
/// the Query bytes to the whole items DynamoDB charges for (see [`projection_ratio`]).
fn cost(traffic: &BTreeMap<String, Traffic>, summary: &Json, wall: Duration, whole_per_projected_byte: f64) -> Bill {
    let get = |op: &str| traffic.get(op).copied().unwrap_or_default();
    let lambda = price::LAMBDA_REQUEST + wall.as_secs_f64() * price::LAMBDA_MEMORY_GB * price::LAMBDA_GB_SECOND;
    // Items are well under 1 KB: one write unit each, written whole or in place (a refused write
    // in place costs one too); a put, update or delete of a run item, one more.
    let count = |name: &str| summary[name].as_u64().unwrap_or(0);
    let wru = count("items_written")
        + count("updates_refused")
        + get("DynamoDB PutItem").requests
        + get("DynamoDB UpdateItem").requests
        + get("DynamoDB DeleteItem").requests;
    // Queries are eventually consistent: one read unit per 8 KB of whole items read, projected or
    // not; GetItem is strong.
    // BatchGetItem fetches stored items by id (sessions recorded again, or decided by a dry run),
    // eventually consistent and under 4 KB: half a unit each.
    let query_bytes = get("DynamoDB Query").bytes_received as f64
        + get("DynamoDB Query (projected)").bytes_received as f64 * whole_per_projected_byte;
    let fetched = count("items_fetched");
    let read_units = (query_bytes / 8192.0).ceil() as u64 + get("DynamoDB GetItem").requests + fetched.div_ceil(2);
    let s3_puts: u64 = traffic
        .iter()
        .filter(|(op, _)| op.starts_with("S3 ") && op.as_str() != "S3 GetObject")
        .map(|(_, t)| t.requests)
        .sum();
    let secrets = get("secretsmanager GetSecretValue").requests;
    let usd = lambda
        + wru as f64 * price::DYNAMODB_WRU
        + read_units as f64 * price::DYNAMODB_RRU
        + s3_puts as f64 * price::S3_PUT
        + get("S3 GetObject").requests as f64 * price::S3_GET
        + secrets as f64 * price::SECRETS_CALL;
    Bill { read_units, usd }
}

fn machine() -> BTreeMap<&'static str, String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned());
    let memory =
        std::fs::read_to_string("/proc/meminfo").unwrap_or_default().lines().next().unwrap_or_default().to_owned();
    BTreeMap::from([
        ("cpus", std::thread::available_parallelism().map_or(0, |n| n.get()).to_string()),
        ("cpu_model", model.unwrap_or_else(|| "unknown".into())),
        ("memory", memory.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")),
        ("os", std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()),
        ("moto", archiver_e2e::MotoServer::binary().display().to_string()),
    ])
}

/// The newest earlier report, to compare with.
fn last_report(dir: &Path) -> Option<Json> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    serde_json::from_str(&std::fs::read_to_string(files.last()?).ok()?).ok()
}

fn print_table(report: &Report, previous: Option<&Json>) {
    let before = |row: &Row, field: &str| -> Option<f64> {
        previous?["rows"]
            .as_array()?
            .iter()
            .find(|r| r["service"] == row.service.as_str() && r["n"] == row.n && r["scenario"] == row.scenario)?[field]
            .as_f64()
    };
    let delta = |row: &Row, field: &str, now: f64| {
        before(row, field).filter(|b| *b > 0.0).map_or(String::new(), |b| format!(" ({:+.0} %)", 100.0 * (now - b) / b))
    };
    println!(
        "commit {} on {} × {} ({})\n",
        report.commit, report.machine["cpus"], report.machine["cpu_model"], report.machine["memory"]
    );
    if let Some(previous) = previous {
        println!(
            "compared with the previous run: commit {} at {}\n",
            previous["commit"].as_str().unwrap_or("?"),
            previous["at"].as_str().unwrap_or("?")
        );
    }
    println!("| service | n | scenario | invocations | wall ms | CPU ms | CPU µs/session | peak RSS MiB | cold init ms | list calls / floor | discovery / floor | DynamoDB req | read units / reading the table | items written | S3 req | S3 bytes | churn % | est. cost USD | emulator sessions/s | archiver CPU share | moto peak RSS MiB |");
    println!(
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &report.rows {
        println!(
            "| {} | {} | {} | {} | {:.0}{} | {:.0} | {:.1} | {:.1}{} | {:.1} | {} / {} | {} / {} | {} | {} / {} | {} | {} | {} | {:.1} | {:.6} | {:.0} | {:.0} % | {:.0} |",
            r.service, r.n, r.scenario, r.invocations, r.wall_ms, delta(r, "wall_ms", r.wall_ms), r.cpu_ms, r.cpu_us_per_session,
            r.peak_rss_mib, delta(r, "peak_rss_mib", r.peak_rss_mib), r.cold_init_ms, r.list_calls, r.list_floor,
            r.discovery_calls, r.discovery_floor, r.dynamodb_requests, r.read_units, r.table_read_units,
            r.items_written, r.s3_requests, r.s3_bytes,
            r.churn_pct, r.estimated_cost_usd, r.emulator_sessions_per_s, r.archiver_cpu_share_pct,
            r.moto_peak_rss_mib
        );
    }
    println!("\ntargets:");
    let check = |ok: bool, what: String| println!("  [{}] {what}", if ok { "met" } else { "MISSED" });
    let max_rss = report.rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    check(max_rss <= 40.0, format!("peak RSS ≤ 40 MiB: largest {max_rss:.1} MiB"));
    let rerun =
        report.rows.iter().filter(|r| r.scenario == "unchanged rerun").map(|r| r.items_written).max().unwrap_or(0);
    check(rerun == 0, format!("an unchanged rerun writes 0 items: {rerun}"));
    let off_floor: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.list_calls != r.list_floor || r.discovery_calls != r.discovery_floor)
        .map(|r| format!("{} n={} {}", r.service, r.n, r.scenario))
        .collect();
    check(
        off_floor.is_empty(),
        format!(
            "list calls at the floor{}",
            if off_floor.is_empty() { String::new() } else { format!(": not for {}", off_floor.join(", ")) }
        ),
    );
    let reruns: Vec<&Row> = report.rows.iter().filter(|r| r.scenario == "unchanged rerun").collect();
    let worst = reruns.iter().map(|r| r.read_units as f64 / r.table_read_units.max(1) as f64).fold(0.0, f64::max);
    check(
        worst <= 0.01,
        format!("an unchanged rerun reads ≤ 1 % of a read of the table: at most {:.2} %", 100.0 * worst),
    );
    let churns: Vec<&Row> = report.rows.iter().filter(|r| r.scenario == "churn").collect();
    let per_session = churns.iter().map(|r| r.read_units as f64 / r.changed_or_ended.max(1) as f64).fold(0.0, f64::max);
    check(
        per_session <= 2.0,
        format!("a churn run reads ≤ 2 read units per changed or ended session: at most {per_session:.2}"),
    );
    let share = churns.iter().map(|r| r.read_units as f64 / r.table_read_units.max(1) as f64).fold(0.0, f64::max);
    check(share <= 0.05, format!("a churn run reads ≤ 5 % of a read of the table: at most {:.1} %", 100.0 * share));
    let dearest = reruns
        .iter()
        .filter(|r| r.n >= 1_000_000)
        .map(|r| r.read_units as f64 * price::DYNAMODB_RRU)
        .fold(0.0, f64::max);
    check(
        dearest <= 0.001,
        format!("an unchanged rerun's reads at n ≥ 1,000,000 cost ≤ $0.001: at most ${dearest:.6}"),
    );
    let cold = report.rows.iter().map(|r| r.cold_init_ms).fold(0.0, f64::max);
    check(cold <= 20.0, format!("cold init ≤ 20 ms: slowest {cold:.1} ms"));
    let share = report.rows.iter().map(|r| r.archiver_cpu_share_pct).fold(0.0, f64::max);
    check(
        share < 50.0,
        format!("the archiver is never the bottleneck (its CPU under half the wall time): highest {share:.0} %"),
    );
}

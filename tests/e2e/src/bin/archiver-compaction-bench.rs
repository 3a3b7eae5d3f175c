//! `make bench-compaction` (and `make bench`): a day of GameLift Streams history at
//! `COMPACTION_BENCH_SESSIONS` sessions (10,000), `COMPACTION_BENCH_RUNS` runs (288, one every 5
//! minutes) with `COMPACTION_BENCH_CHURN_PCT` % of the sessions opening, changing or ending
//! between runs (10), written in the archiver's own line format (`history::line`) to moto; the
//! release compactor compacts it. Reports the bytes per session-observation of the NDJSON.gz and of
//! the Parquet, the compactor's wall time, CPU and peak RSS, and the bytes DuckDB reads from each
//! format for a typical audit query (one day, a few columns, a status filter), through a
//! filesystem that counts them (Athena's "bytes scanned"). Then the same day split into
//! `COMPACTION_BENCH_PARTS` slices (8), their tasks on a moto SQS queue delivered to the compactor
//! by the local event source mapping: its invocations, wall time, CPU and the peak RSS of any of
//! them. Writes `target/bench/compaction-<time>.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::organization::{queue_with_dead_letters, RETRY_AFTER, VISIBILITY};
use archiver_e2e::poller::QueueSource;
use archiver_e2e::stage::{compactor_env, ACCOUNT_ID, BUCKET, REGION, TABLE};
use archiver_e2e::{commit, process_usage, setting, LocalAws, MotoServer};
use serde_json::{json, Value as Json};
use session_archiver::history::{line, object_key, Change, GzipLines, HistoryKind, ObjectListing, RunContext, RunId};
use session_archiver::model::{ColumnType, Scope, Timestamp};
use session_archiver::{ServiceId, SessionRecord};
use session_compaction::columns::Dataset;
use session_compaction::keys::{marker_key, source_prefix, Marker};

const SERVICE: ServiceId = ServiceId::GameliftStreamSessions;
const DAY: &str = "2026-11-22";

#[tokio::main]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("compaction bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One session of the simulated account.
#[derive(Clone)]
struct Session {
    id: String,
    user: String,
    application: u32,
    started_at: Timestamp,
    status: &'static str,
    updated_at: Timestamp,
}

impl Session {
    fn record(&self) -> SessionRecord {
        let mut record = SessionRecord::new(SERVICE, &self.id);
        record.status = Some(self.status.to_owned());
        record.started_at = Some(self.started_at.clone());
        record.user_id = Some(self.user.clone());
        let app = format!("arn:aws:gameliftstreams:us-west-2:{ACCOUNT_ID}:application/a-{:09}", self.application);
        let location = if self.application.is_multiple_of(3) { "us-east-1" } else { "us-west-2" };
        for (column, value) in [
            ("protocol", Some("WebRTC".to_owned())),
            ("application_arn", Some(app)),
            ("location", Some(location.to_owned())),
            ("role_arn", Some(format!("arn:aws:iam::{ACCOUNT_ID}:role/stream-exports"))),
        ] {
            record.set(column, value).expect("a GameLift Streams column");
        }
        record.set("last_updated_at", Some(self.updated_at.clone())).expect("a GameLift Streams column");
        record
    }
}

/// The simulated account over the day: its sessions, and how many were ever opened.
struct Account {
    sessions: Vec<Session>,
    opened: u64,
    random: fastrand::Rng,
}

impl Account {
    fn new(n: usize, at: &Timestamp) -> Self {
        let mut account = Account { sessions: Vec::with_capacity(n), opened: 0, random: fastrand::Rng::with_seed(22) };
        for _ in 0..n {
            let session = account.open(at);
            account.sessions.push(session);
        }
        account
    }

    fn open(&mut self, at: &Timestamp) -> Session {
        self.opened += 1;
        let id: String = (0..9).map(|_| self.random.alphanumeric()).collect();
        Session {
            id: format!("{id}{}", self.opened),
            user: format!("player-{:06}", self.random.u32(..200_000)),
            application: self.random.u32(..40),
            started_at: at.clone(),
            status: "ACTIVE",
            updated_at: at.clone(),
        }
    }

    /// `churn` sessions end, as many open, as many change status; their change lines.
    fn churn(&mut self, churn: usize, at: &Timestamp) -> Vec<(Session, Change, Option<&'static str>)> {
        let mut changes = Vec::new();
        for _ in 0..churn {
            let index = self.random.usize(..self.sessions.len());
            let mut ended = self.sessions.swap_remove(index);
            let previous = ended.status;
            ended.status = "TERMINATED";
            ended.updated_at = at.clone();
            changes.push((ended, Change::Ended, Some(previous)));
            let opened = self.open(at);
            changes.push((opened.clone(), Change::Opened, None));
            self.sessions.push(opened);
            let index = self.random.usize(..self.sessions.len());
            let changed = &mut self.sessions[index];
            let previous = changed.status;
            changed.status = if previous == "ACTIVE" { "PENDING_CLIENT_RECONNECTION" } else { "ACTIVE" };
            changed.updated_at = at.clone();
            changes.push((changed.clone(), Change::Changed, Some(previous)));
        }
        changes
    }
}

/// Writes the day's history to the bucket: one snapshots and one changes object a run. Returns
/// the session-observations (snapshot lines) and the bytes written.
async fn write_day(aws: &LocalAws, n: usize, runs: usize, churn_pct: usize) -> (u64, u64) {
    let scope = Scope { service: SERVICE, account_id: ACCOUNT_ID.into(), region: REGION.into() };
    let start = Timestamp::parse(&format!("{DAY}T00:00:00Z")).unwrap().epoch_seconds();
    let at = |run: usize| {
        let secs = start + 300 * run as i64;
        Timestamp::from_datetime(&aws_smithy_types::DateTime::from_secs(secs)).unwrap()
    };
    let mut account = Account::new(n, &at(0));
    let (mut observations, mut bytes) = (0u64, 0u64);
    for run in 0..runs {
        let snapshot_at = at(run);
        // A third each: ended, opened, changed.
        let churned = if run == 0 { Vec::new() } else { account.churn(n * churn_pct / 300, &snapshot_at) };
        let run_id = RunId::parse(&format!("run-{run:03}")).unwrap();
        let ctx = RunContext {
            snapshot_at: snapshot_at.clone(),
            run_id: run_id.to_string(),
            account_id: ACCOUNT_ID.into(),
            region: REGION.into(),
        };
        let mut snapshots = GzipLines::default();
        for session in &account.sessions {
            let record = session.record();
            snapshots.push(&line(&ctx, &record, &record.record_hash(), None));
        }
        observations += snapshots.lines();
        let mut changes = GzipLines::default();
        let opened = if run == 0 {
            account.sessions.iter().map(|s| (s.clone(), Change::Opened, None)).collect()
        } else {
            churned
        };
        for (session, change, previous) in opened {
            let record = session.record();
            changes.push(&line(&ctx, &record, &record.record_hash(), Some((change, previous))));
        }
        for (kind, lines) in [(HistoryKind::Snapshots, snapshots), (HistoryKind::Changes, changes)] {
            let body = lines.finish();
            bytes += body.len() as u64;
            aws.put_object(&object_key("history", kind, &scope, &snapshot_at, &run_id, 0), body).await;
        }
    }
    (observations, bytes)
}

/// The day's objects of one prefix copied under `dir`, keys as paths; their total size.
async fn copy_prefix(aws: &LocalAws, prefix: &str, dir: &Path) -> u64 {
    let mut total = 0;
    for key in aws.keys(prefix).await {
        let bytes = aws.bytes(&key).await;
        total += bytes.len() as u64;
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    total
}

/// DuckDB's rows and bytes read for `sql` (see `tests/e2e/duckdb_bytes.py`).
fn duckdb_bytes(sql: &str) -> Result<(u64, u64), String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(here.join("../../.venv/bin/python"))
        .arg(here.join("duckdb_bytes.py"))
        .arg(sql)
        .output()
        .map_err(|e| format!("DuckDB (make duckdb): {e}"))?;
    if !output.status.success() {
        return Err(format!("DuckDB: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let answer: Json = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok((answer["rows"].as_u64().unwrap_or(0), answer["bytes_read"].as_u64().unwrap_or(0)))
}

/// The snapshot columns as DuckDB's `read_json` takes them: `{'name': 'TYPE', …}`.
fn duckdb_columns() -> String {
    let columns: Vec<String> = SERVICE
        .schema()
        .columns()
        .map(|c| {
            let ty = match c.ty {
                ColumnType::String => "VARCHAR",
                ColumnType::Timestamp => "TIMESTAMPTZ",
                ColumnType::Boolean => "BOOLEAN",
                ColumnType::BigInt => "BIGINT",
                ColumnType::StringArray => "VARCHAR[]",
            };
            format!("'{}': '{ty}'", c.name)
        })
        .collect();
    format!("{{{}}}", columns.join(", "))
}

/// The audit query over `source`: who was connected that day, first and last seen.
fn audit_query(source: &str) -> String {
    format!(
        "SELECT session_id, user_id, min(snapshot_at), max(snapshot_at) FROM {source} \
         WHERE dt = '{DAY}' AND status = 'ACTIVE' GROUP BY ALL"
    )
}

async fn bench() -> Result<(), Box<dyn std::error::Error>> {
    let n = setting("COMPACTION_BENCH_SESSIONS", 10_000);
    let runs = setting("COMPACTION_BENCH_RUNS", 288);
    let churn_pct = setting("COMPACTION_BENCH_CHURN_PCT", 10);
    println!("compaction bench: {SERVICE}, {n} sessions, {runs} runs, {churn_pct} % churn a run");
    let moto = MotoServer::start()?;
    let aws = LocalAws::create(&moto.url(), TABLE, BUCKET).await;
    let started = Instant::now();
    let (observations, ndjson_bytes) = write_day(&aws, n, runs, churn_pct).await;
    println!(
        "bench: the day written in {:.1} s: {observations} observations, {ndjson_bytes} bytes",
        started.elapsed().as_secs_f64()
    );

    let compacted = compact(&moto).await?;
    let parquet_rows = compacted.summary["services"][0]["datasets"][0]["rows"].as_u64().unwrap_or(0);
    if parquet_rows != observations {
        return Err(format!("the Parquet has {parquet_rows} rows, the day {observations} observations").into());
    }
    let query = audit_query_bytes(&aws).await?;
    let parts = setting("COMPACTION_BENCH_PARTS", 8) as u64;
    let split = compact_in_slices(&moto, &aws, parts).await?;
    if split.rows != observations || split.tasks as u64 != split.queued {
        return Err(
            format!("split: {} rows of {observations}, {} tasks of {}", split.rows, split.tasks, split.queued).into()
        );
    }
    let (
        Compacted { wall, cpu, rss, summary },
        QueryBytes { json_bytes, parquet_bytes, rows, json_read, parquet_read },
    ) = (compacted, query);
    let per = |bytes: u64| bytes as f64 / observations.max(1) as f64;
    // Every source object of the day's datasets, read by the compactor.
    let datasets = summary["services"][0]["datasets"].as_array().cloned().unwrap_or_default();
    let source_objects: u64 = datasets.iter().filter_map(|d| d["sources"].as_u64()).sum();
    let report = json!({
        "commit": commit(),
        "at": Timestamp::now().as_str(),
        "service": SERVICE.as_str(),
        "sessions": n,
        "runs": runs,
        "churn_pct": churn_pct,
        "observations": observations,
        "ndjson_gz_bytes": json_bytes,
        "ndjson_gz_bytes_per_observation": per(json_bytes),
        "parquet_bytes": parquet_bytes,
        "parquet_bytes_per_observation": per(parquet_bytes),
        "parquet_share_pct": 100.0 * parquet_bytes as f64 / json_bytes.max(1) as f64,
        "compactor_wall_ms": wall.as_millis() as u64,
        "compactor_cpu_ms": cpu.as_millis() as u64,
        "compactor_peak_rss_mib": rss,
        "source_objects": source_objects,
        "source_objects_per_s": source_objects as f64 / wall.as_secs_f64().max(0.001),
        "audit_query_rows": rows,
        "audit_query_ndjson_bytes_read": json_read,
        "audit_query_parquet_bytes_read": parquet_read,
        "audit_query_parquet_share_pct": 100.0 * parquet_read as f64 / json_read.max(1) as f64,
        "all_objects_bytes": ndjson_bytes,
        "summary": summary,
        "split_parts": parts,
        "split_task_invocations": split.tasks,
        "split_snapshot_objects": split.objects,
        "split_parquet_bytes": split.parquet_bytes,
        "split_parquet_share_pct": 100.0 * split.parquet_bytes as f64 / json_bytes.max(1) as f64,
        "split_wall_ms": split.wall.as_millis() as u64,
        "split_cpu_ms": split.cpu.as_millis() as u64,
        "split_peak_rss_mib": split.rss,
    });
    print_report(&report);
    let targets = [
        (
            "the Parquet takes at most half the NDJSON.gz's bytes",
            report["parquet_share_pct"].as_f64().unwrap_or(100.0) <= 50.0,
        ),
        (
            "the audit query reads at most a quarter of the NDJSON.gz's bytes from the Parquet",
            report["audit_query_parquet_share_pct"].as_f64().unwrap_or(100.0) <= 25.0,
        ),
        ("the compactor's peak RSS ≤ 512 MiB (half its 1,024 MB)", rss <= 512.0),
        ("split into slices, any of its invocations' peak RSS ≤ 512 MiB", split.rss <= 512.0),
    ];
    println!("targets:");
    for (target, met) in targets {
        println!("  [{}] {target}", if met { "met" } else { "MISSED" });
    }
    std::fs::create_dir_all("target/bench")?;
    let path = format!("target/bench/compaction-{}.json", report["at"].as_str().unwrap_or_default().replace(':', ""));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("results: {path}");
    Ok(())
}

/// What the compactor did and took.
struct Compacted {
    wall: Duration,
    cpu: Duration,
    rss: f64,
    summary: Json,
}

/// The release compactor, started with `extra_env`.
async fn compactor(moto: &MotoServer, extra_env: &[(&str, String)]) -> std::io::Result<LocalFunction> {
    let env = compactor_env(&moto.url(), extra_env);
    let binary = LocalFunction::binary_of("release", "history-compactor");
    LocalFunction::start(&binary, "history-compactor", ACCOUNT_ID, REGION, &env, Duration::from_secs(900)).await
}

fn replay() -> Json {
    json!({"compact": {"day": DAY, "service": SERVICE.as_str()}})
}

/// The release compactor, on the day: its summary, wall and CPU time, and peak RSS.
async fn compact(moto: &MotoServer) -> Result<Compacted, Box<dyn std::error::Error>> {
    let mut compactor = compactor(moto, &[]).await?;
    let pid = compactor.pid().ok_or("the compactor has no process")?;
    let (cpu_before, _) = process_usage(pid);
    let started = Instant::now();
    let outcome = compactor.invoke(replay()).await?;
    let wall = started.elapsed();
    let (cpu_after, rss) = process_usage(pid);
    match outcome {
        Outcome::Response(summary) => Ok(Compacted { wall, cpu: cpu_after.saturating_sub(cpu_before), rss, summary }),
        Outcome::Error { error_type, error_message } => Err(format!("{error_type}: {error_message}").into()),
    }
}

/// The day compacted again, split into `parts` slices whose tasks go through an SQS queue back to
/// the compactor (one warm process, as Lambda reuses one): every invocation's wall and CPU time,
/// the peak RSS of any, and the Parquet's bytes and rows.
async fn compact_in_slices(moto: &MotoServer, aws: &LocalAws, parts: u64) -> Result<Split, Box<dyn std::error::Error>> {
    for key in aws.keys("history/parquet/").await {
        aws.delete_object(&key).await;
    }
    let snapshots = Dataset { service: SERVICE, kind: HistoryKind::Snapshots };
    let listed = aws.history_bucket().list_objects(&source_prefix("history", &snapshots, DAY)).await?;
    let source_bytes: u64 = listed.iter().map(|o| o.size).sum();
    let sqs = aws_sdk_sqs::Client::new(&aws.settings.load().await);
    let queues = queue_with_dead_letters(&sqs, "compaction").await;
    let env = [
        ("COMPACTION_QUEUE_URL", queues.queue.clone()),
        ("COMPACTION_DEAD_LETTER_QUEUE_URL", queues.dead_letters.clone()),
        ("COMPACTION_PART_SOURCE_BYTES", (source_bytes / parts + 1).to_string()),
    ];
    let mut compactor = compactor(moto, &env).await?;
    let pid = compactor.pid().ok_or("the compactor has no process")?;
    let (cpu_before, _) = process_usage(pid);
    let started = Instant::now();
    let Outcome::Response(planned) = compactor.invoke(replay()).await? else { return Err("splitting failed".into()) };
    let queue =
        QueueSource { sqs: &sqs, url: &queues.queue, region: REGION, visibility: VISIBILITY, retry_after: RETRY_AFTER };
    let delivered = queue.drain_into(&mut compactor).await;
    let wall = started.elapsed();
    let (cpu_after, rss) = process_usage(pid);
    if delivered.handed_back > 0 {
        return Err(format!("{} tasks failed: {:?}", delivered.handed_back, delivered.responses).into());
    }
    let marker = Marker::parse(&aws.bytes(&marker_key("history", &snapshots, DAY)).await).ok_or("no marker")?;
    Ok(Split {
        tasks: delivered.invocations,
        queued: planned["services"][0]["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["queued_parts"].as_u64())
            .sum(),
        objects: marker.objects.len(),
        rows: marker.rows,
        parquet_bytes: marker.objects.iter().map(|o| o.bytes).sum(),
        wall,
        cpu: cpu_after.saturating_sub(cpu_before),
        rss,
    })
}

/// The day compacted in slices.
struct Split {
    /// Task invocations, and the tasks the splitting queued.
    tasks: usize,
    queued: u64,
    /// The snapshots' Parquet objects, rows and bytes.
    objects: usize,
    rows: u64,
    parquet_bytes: u64,
    wall: Duration,
    cpu: Duration,
    rss: f64,
}

/// The day's snapshots in each format, and what the audit query read of each.
struct QueryBytes {
    json_bytes: u64,
    parquet_bytes: u64,
    /// The query's answer, the same from both.
    rows: u64,
    json_read: u64,
    parquet_read: u64,
}

/// Copies the day's snapshots, NDJSON.gz and Parquet, to a local directory and runs the audit
/// query over each with DuckDB.
async fn audit_query_bytes(aws: &LocalAws) -> Result<QueryBytes, Box<dyn std::error::Error>> {
    let dir = PathBuf::from("target/bench").join(format!("compaction-{}", std::process::id()));
    let json_bytes = copy_prefix(aws, &format!("history/snapshots/{SERVICE}/dt={DAY}/"), &dir).await;
    let parquet_bytes = copy_prefix(aws, &format!("history/parquet/snapshots/{SERVICE}/dt={DAY}/"), &dir).await;
    let root = std::fs::canonicalize(&dir)?.display().to_string();
    // The columns given, as a Glue table gives them to Athena: DuckDB then reads each object once
    // rather than sampling it first.
    let json_source = format!(
        "read_json('counting://{root}/history/snapshots/{SERVICE}/*/*.jsonl.gz', format = 'newline_delimited', \
         compression = 'gzip', hive_partitioning = true, columns = {})",
        duckdb_columns()
    );
    let parquet_source = format!(
        "read_parquet('counting://{root}/history/parquet/snapshots/{SERVICE}/*/*.parquet', hive_partitioning = true)"
    );
    let (rows, json_read) = duckdb_bytes(&audit_query(&json_source))?;
    let (parquet_rows, parquet_read) = duckdb_bytes(&audit_query(&parquet_source))?;
    std::fs::remove_dir_all(&dir)?;
    if rows != parquet_rows {
        return Err(format!("the audit query answers {rows} rows on NDJSON, {parquet_rows} on Parquet").into());
    }
    Ok(QueryBytes { json_bytes, parquet_bytes, rows, json_read, parquet_read })
}

fn print_report(r: &Json) {
    println!();
    println!("| service | sessions | runs | churn % | observations | NDJSON.gz bytes | B / observation | Parquet bytes | B / observation | Parquet / NDJSON.gz | compactor wall s | CPU s | peak RSS MiB | source objects | objects read / s | audit query: NDJSON bytes read | Parquet bytes read | Parquet / NDJSON |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {:.1} % | {:.1} | {:.1} | {:.1} | {} | {:.0} | {} | {} | {:.2} % |",
        r["service"].as_str().unwrap_or_default(),
        r["sessions"],
        r["runs"],
        r["churn_pct"],
        r["observations"],
        r["ndjson_gz_bytes"],
        r["ndjson_gz_bytes_per_observation"].as_f64().unwrap_or(0.0),
        r["parquet_bytes"],
        r["parquet_bytes_per_observation"].as_f64().unwrap_or(0.0),
        r["parquet_share_pct"].as_f64().unwrap_or(0.0),
        r["compactor_wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["compactor_cpu_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["compactor_peak_rss_mib"].as_f64().unwrap_or(0.0),
        r["source_objects"],
        r["source_objects_per_s"].as_f64().unwrap_or(0.0),
        r["audit_query_ndjson_bytes_read"],
        r["audit_query_parquet_bytes_read"],
        r["audit_query_parquet_share_pct"].as_f64().unwrap_or(0.0),
    );
    println!();
    println!("| split into slices | task invocations | snapshot objects | Parquet bytes | Parquet / NDJSON.gz | wall s (splitting and tasks) | CPU s | peak RSS MiB (any invocation) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {:.1} % | {:.1} | {:.1} | {:.1} |",
        r["split_parts"],
        r["split_task_invocations"],
        r["split_snapshot_objects"],
        r["split_parquet_bytes"],
        r["split_parquet_share_pct"].as_f64().unwrap_or(0.0),
        r["split_wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["split_cpu_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["split_peak_rss_mib"].as_f64().unwrap_or(0.0),
    );
}

//! `make bench-audit` (and `make bench`): the release `session-audit` over a synthetic month of
//! an organization's WorkSpaces connection status, read from a local copy of the bucket (`--dir`):
//! `AUDIT_BENCH_SCOPES` scopes (1,000: 200 accounts × 5 regions) listed every 5 minutes,
//! `AUDIT_BENCH_BUSY_PCT` % of them (10) holding `AUDIT_BENCH_WORKSPACES` WorkSpaces each (10),
//! whose users connect on working days; `AUDIT_BENCH_DAYS` days (30) compacted to Parquet as the
//! compactor writes them (sorted by account, region, session and time; its marker), and today's
//! morning as the functions write it (NDJSON.gz, a batch's scopes pooled in one object); one
//! run in 1,000 failed. `sessions`, `connected`, `summary`, a one-account `connected` and the HTML `report` are
//! timed, each alone: objects and bytes read, row groups skipped, lines in the range, rows
//! answered, wall time, CPU and peak RSS, against the targets (60 s, 256 MiB). Writes
//! `target/bench/audit-<time>.json`; exits non-zero when a target is missed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use archiver_e2e::{commit, setting};
use arrow_array::RecordBatch;
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::{json, Value as Json};
use session_archiver::history::HistoryKind;
use session_archiver::model::Column;
use session_archiver::ServiceId;
use session_audit::record::format_time;
use session_compaction::columns::{BatchBuilder, Dataset, Row, Value};
use session_compaction::keys::{marker_key, parquet_key, CompactedObject, Marker, MARKER_FORMAT, MARKER_VERSION};

const SERVICE: ServiceId = ServiceId::WorkspacesConnectionStatus;
const REGIONS: [&str; 5] = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"];
/// The first compacted day, 00:00 UTC (2026-11-01, a Sunday).
const MONTH_START: i64 = 1_793_491_200;
const SPACING: i64 = 300;
/// Today's runs written as NDJSON: its morning, to 12:00.
const TODAY_RUNS: i64 = 144;
/// Scopes of one batch's pooled objects.
const BATCH: usize = 25;
const TARGET_WALL_S: f64 = 60.0;
const TARGET_RSS_MIB: f64 = 256.0;

/// The bench's shape, from its settings.
#[derive(Clone, Copy, serde::Serialize)]
struct Shape {
    scopes: usize,
    busy_pct: usize,
    workspaces: usize,
    days: i64,
}

/// One scope: its account, its region, its WorkSpaces (none for most).
struct Scope {
    account: String,
    region: &'static str,
    workspaces: Vec<WorkSpace>,
}

/// A WorkSpace and its user's connections over the month, `[start, end)` in time order.
struct WorkSpace {
    id: String,
    user: String,
    directory: String,
    computer: String,
    connections: Vec<(i64, i64)>,
}

impl WorkSpace {
    /// Its status and the user's last connection at `at`.
    fn at(&self, at: i64) -> (&'static str, Option<i64>) {
        let before = self.connections.partition_point(|(start, _)| *start <= at);
        let last = before.checked_sub(1).map(|i| self.connections[i]);
        match last {
            Some((start, end)) if at < end => ("CONNECTED", Some(start)),
            Some((start, _)) => ("DISCONNECTED", Some(start)),
            None => ("DISCONNECTED", None),
        }
    }
}

fn organization(shape: Shape) -> Vec<Scope> {
    let mut random = fastrand::Rng::with_seed(7);
    let busy_every = (100 / shape.busy_pct.max(1)).max(1);
    let mut scopes: Vec<Scope> = (0..shape.scopes)
        .map(|i| Scope {
            account: format!("{:012}", 100_000_000_000 + i / REGIONS.len()),
            region: REGIONS[i % REGIONS.len()],
            workspaces: Vec::new(),
        })
        .collect();
    for (i, scope) in scopes.iter_mut().enumerate().filter(|(i, _)| i % busy_every == 0) {
        scope.workspaces = (0..shape.workspaces)
            .map(|k| WorkSpace {
                id: format!("ws-{:05}{:04}", i, k),
                user: format!("user{i:05}-{k:02}"),
                directory: format!("d-{:010}", i),
                computer: format!("WSAMZN-{i:05}{k:02}"),
                connections: connections(&mut random, shape.days + 1),
            })
            .collect();
    }
    scopes
}

/// A user's connections on working days: in at 07:00-10:00, out 6-10 hours later, and one day
/// in three a break of up to an hour at lunch.
fn connections(random: &mut fastrand::Rng, days: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for day in 0..days {
        let midnight = MONTH_START + day * 86_400;
        // 2026-11-01 is a Sunday: days 0 and 6 of each week are the weekend.
        if matches!(day % 7, 0 | 6) || random.u8(..10) == 0 {
            continue;
        }
        let start = midnight + 7 * 3600 + random.i64(0..3 * 3600);
        let end = start + 6 * 3600 + random.i64(0..4 * 3600);
        if random.u8(..3) == 0 {
            let lunch = midnight + 12 * 3600 + random.i64(0..3600);
            let back = lunch + random.i64(300..3600);
            out.extend([(start, lunch), (back, end.max(back + 600))]);
        } else {
            out.push((start, end));
        }
    }
    out
}

/// The run of round `round` (its time, its id) and whether it failed in scope `scope`.
fn run(round: i64) -> (i64, String) {
    (MONTH_START + round * SPACING, format!("{:08x}-5e55-4a0d-8000-{:012x}", round * 2_654_435_761 % (1 << 32), round))
}

fn failed(scope: usize, round: i64) -> bool {
    (scope as i64 * 7919 + round * 104_729) % 1000 == 0
}

/// A row of `columns` with the values given, the others null.
fn row(columns: &[Column], set: &[(&str, Value)]) -> Row {
    Row(columns
        .iter()
        .map(|c| set.iter().find(|(name, _)| *name == c.name).map_or(Value::Null, |(_, v)| v.clone()))
        .collect())
}

/// The same row as a history line.
fn json_line(columns: &[Column], row: &Row) -> String {
    let mut object = serde_json::Map::new();
    for (column, value) in columns.iter().zip(&row.0) {
        let value = match value {
            Value::Null => Json::Null,
            Value::Text(text) => Json::from(text.as_str()),
            Value::Micros(at) => Json::from(format_time(at / 1_000_000)),
            Value::Bool(b) => Json::from(*b),
            Value::Int(n) => Json::from(*n),
            Value::Texts(items) => Json::from(items.clone()),
        };
        object.insert(column.name.to_owned(), value);
    }
    Json::Object(object).to_string()
}

fn micros(at: i64) -> Value {
    Value::Micros(at * 1_000_000)
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// A WorkSpace's snapshot line at one run.
fn snapshot(columns: &[Column], scope: &Scope, ws: &WorkSpace, at: i64, run_id: &str) -> Row {
    let (status, last) = ws.at(at);
    let mut set = vec![
        ("snapshot_at", micros(at + 2)),
        ("run_id", text(run_id)),
        ("account_id", text(&scope.account)),
        ("region", text(scope.region)),
        ("service", text(SERVICE.as_str())),
        ("session_id", text(&ws.id)),
        ("status", text(status)),
        ("user_id", text(&ws.user)),
        ("connection_state_check_timestamp", micros(at)),
        ("directory_id", text(&ws.directory)),
        ("computer_name", text(&ws.computer)),
        ("record_hash", text("0123456789abcdef")),
    ];
    if let Some(last) = last {
        set.push(("last_known_user_connection_timestamp", micros(last)));
    }
    row(columns, &set)
}

/// A scope's line in the runs dataset at one run.
fn run_row(columns: &[Column], scope: &Scope, at: i64, run_id: &str, failed: bool) -> Row {
    let sessions = if failed { 0 } else { scope.workspaces.len() as i64 };
    let mut set = vec![
        ("service", text(SERVICE.as_str())),
        ("account_id", text(&scope.account)),
        ("region", text(scope.region)),
        ("run_id", text(run_id)),
        ("event_time", micros(at)),
        ("started_at", micros(at)),
        ("finished_at", micros(at + 3)),
        ("status", text(if failed { "failed" } else { "complete" })),
        ("quiet", Value::Bool(!failed && scope.workspaces.is_empty())),
        ("sessions", Value::Int(sessions)),
        ("invocation_id", text("bench")),
    ];
    for count in ["new", "changed", "ended", "pages", "api_calls"] {
        set.push((count, Value::Int(0)));
    }
    if failed {
        set.extend([("error_kind", text("SessionApi")), ("error_message", text("throttled"))]);
    }
    row(columns, &set)
}

/// A compacted day's Parquet, as the compactor writes it (its settings, one part), and its marker.
fn write_parquet(root: &Path, dataset: &Dataset, day: &str, rows: &mut dyn Iterator<Item = Row>) -> u64 {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("a ZSTD level")))
        .set_max_row_group_bytes(Some(64 << 20))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), dataset.arrow_schema(), Some(properties)).expect("a writer");
    let mut builder = BatchBuilder::new(dataset);
    let mut count = 0;
    let flush = |builder: &mut BatchBuilder, writer: &mut ArrowWriter<Vec<u8>>| {
        let batch: RecordBatch = builder.finish();
        writer.write(&batch).expect("a batch written");
    };
    for row in rows {
        builder.push(&row);
        count += 1;
        if builder.rows() == 8192 {
            flush(&mut builder, &mut writer);
        }
    }
    flush(&mut builder, &mut writer);
    let body = writer.into_inner().expect("a Parquet object");
    let key = parquet_key("history", dataset, day, 0);
    put(root, &key, &body);
    let marker = Marker {
        format: MARKER_FORMAT.into(),
        version: MARKER_VERSION,
        service: dataset.service.as_str().into(),
        kind: dataset.kind.as_str().into(),
        day: day.into(),
        sources: Vec::new(),
        rows: count,
        objects: vec![CompactedObject { key, rows: count, bytes: body.len() as u64 }],
        split: None,
    };
    put(root, &marker_key("history", dataset, day), &serde_json::to_vec(&marker).expect("a marker"));
    count
}

fn put(root: &Path, key: &str, body: &[u8]) {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().expect("a key has a folder")).expect("a folder");
    std::fs::write(&path, body).expect("an object written");
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    for line in lines {
        encoder.write_all(line.as_bytes()).and_then(|()| encoder.write_all(b"\n")).expect("gzip in memory");
    }
    encoder.finish().expect("gzip in memory")
}

/// What was written: lines of each dataset.
#[derive(Default, serde::Serialize)]
struct Written {
    snapshot_lines: u64,
    run_lines: u64,
    objects: u64,
}

/// The month: each day compacted, sorted as the compactor sorts (account, region, session,
/// time), then today's NDJSON, a run's batches pooled.
fn write_month(root: &Path, shape: Shape, scopes: &[Scope]) -> Written {
    let snapshots = Dataset { service: SERVICE, kind: HistoryKind::Snapshots };
    let runs = Dataset { service: SERVICE, kind: HistoryKind::Runs };
    let (snapshot_columns, run_columns) = (snapshots.columns(), runs.columns());
    let mut written = Written::default();
    for day in 0..shape.days {
        let name = &format_time(MONTH_START + day * 86_400)[..10];
        let rounds = day * 288..(day + 1) * 288;
        let mut rows = scopes.iter().enumerate().flat_map(|(i, scope)| {
            scope.workspaces.iter().flat_map({
                let rounds = rounds.clone();
                let columns = &snapshot_columns;
                move |ws| {
                    rounds.clone().filter(move |r| !failed(i, *r)).map(move |round| {
                        let (at, run_id) = run(round);
                        snapshot(columns, scope, ws, at, &run_id)
                    })
                }
            })
        });
        written.snapshot_lines += write_parquet(root, &snapshots, name, &mut rows);
        let mut rows = scopes.iter().enumerate().flat_map(|(i, scope)| {
            let columns = &run_columns;
            rounds.clone().map(move |round| {
                let (at, run_id) = run(round);
                run_row(columns, scope, at, &run_id, failed(i, round))
            })
        });
        written.run_lines += write_parquet(root, &runs, name, &mut rows);
        written.objects += 2;
    }
    let today = &format_time(MONTH_START + shape.days * 86_400)[..10];
    for round in shape.days * 288..shape.days * 288 + TODAY_RUNS {
        let (at, run_id) = run(round);
        for (batch, chunk) in scopes.chunks(BATCH).enumerate() {
            let first = batch * BATCH;
            let mut snapshot_lines = Vec::new();
            let mut run_lines = Vec::new();
            for (offset, scope) in chunk.iter().enumerate() {
                let failed = failed(first + offset, round);
                run_lines.push(json_line(&run_columns, &run_row(&run_columns, scope, at, &run_id, failed)));
                if !failed {
                    let lines = scope.workspaces.iter().map(|ws| snapshot(&snapshot_columns, scope, ws, at, &run_id));
                    snapshot_lines.extend(lines.map(|row| json_line(&snapshot_columns, &row)));
                }
            }
            let name = format!("{run_id}.batch-{batch:03}.jsonl.gz");
            put(root, &format!("history/runs/{SERVICE}/dt={today}/{name}"), &gzip(&run_lines));
            written.run_lines += run_lines.len() as u64;
            written.objects += 1;
            if !snapshot_lines.is_empty() {
                put(root, &format!("history/snapshots/{SERVICE}/dt={today}/{name}"), &gzip(&snapshot_lines));
                written.snapshot_lines += snapshot_lines.len() as u64;
                written.objects += 1;
            }
        }
    }
    written
}

/// One command's measure.
#[derive(serde::Serialize)]
struct Measured {
    command: String,
    rows: usize,
    read: String,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_mib: f64,
}

/// Runs `session-audit` with `args`, alone, to its end: its output's rows, what it read (its
/// `--stats`), wall time, CPU and peak RSS (`wait4`).
fn measure(audit: &Path, root: &Path, label: &str, args: &[&str]) -> Result<Measured, String> {
    let out = root.join(format!("../audit-{}.csv", label.replace([' ', '-'], "_")));
    let started = Instant::now();
    let child = Command::new(audit)
        .args(["--dir", &root.display().to_string(), "--stats"])
        .args(args)
        .args(["--format", "csv"])
        .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", audit.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.expect("piped");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut said).map_err(|e| e.to_string())?;
    // SAFETY: plain out-parameters, and the child is this process's own, not yet waited for.
    let (status, usage) = unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        (status, usage)
    };
    let wall_s = started.elapsed().as_secs_f64();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("session-audit {label} failed: {said}"));
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let rows = std::fs::read_to_string(&out).map_err(|e| e.to_string())?.lines().count().saturating_sub(1);
    Ok(Measured {
        command: format!("session-audit {label}"),
        rows,
        read: said.lines().filter(|l| l.starts_with("read ")).collect::<Vec<_>>().join("; "),
        wall_s,
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

fn main() -> ExitCode {
    let shape = Shape {
        scopes: setting("AUDIT_BENCH_SCOPES", 1000),
        busy_pct: setting("AUDIT_BENCH_BUSY_PCT", 10),
        workspaces: setting("AUDIT_BENCH_WORKSPACES", 10),
        days: setting("AUDIT_BENCH_DAYS", 30) as i64,
    };
    let bench = PathBuf::from("target/bench");
    let root = bench.join("audit-month");
    let _ = std::fs::remove_dir_all(&root);
    let audit =
        std::env::var_os("AUDIT_BIN").map_or_else(|| PathBuf::from("target/release/session-audit"), PathBuf::from);
    let started = Instant::now();
    let written = write_month(&root, shape, &organization(shape));
    eprintln!("audit bench: wrote {} objects in {:.0} s", written.objects, started.elapsed().as_secs_f64());
    let from = format_time(MONTH_START);
    let to = format_time(MONTH_START + shape.days * 86_400 + TODAY_RUNS * SPACING);
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let account = format!("{:012}", 100_000_000_000u64 + 40);
    let one_account = format!("connected --account {account}");
    let page = bench.join("audit-report.html");
    let page_arg = page.display().to_string();
    let questions: [(&str, Vec<&str>); 5] = [
        ("sessions", [&["sessions"][..], &range].concat()),
        ("connected", [&["connected"][..], &range].concat()),
        ("summary --by day", [&["summary", "--by", "day"][..], &range].concat()),
        (&one_account, [&["connected"][..], &range, &["--account", &account]].concat()),
        ("report", [&["report", "--out", page_arg.as_str()][..], &range].concat()),
    ];
    let mut measured = Vec::new();
    for (label, args) in &questions {
        match measure(&audit, &root, label, args) {
            Ok(m) => measured.push(m),
            Err(err) => {
                eprintln!("audit bench failed: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let report = json!({
        "commit": commit(),
        "shape": shape,
        "written": written,
        "targets": {"wall_s": TARGET_WALL_S, "peak_rss_mib": TARGET_RSS_MIB},
        "measured": measured,
        "report_mib": std::fs::metadata(&page).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64),
    });
    print_report(&report);
    let stamp = format_time(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
    );
    let _ = std::fs::write(
        bench.join(format!("audit-{stamp}.json")),
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    );
    let missed: Vec<&Measured> =
        measured.iter().filter(|m| m.wall_s > TARGET_WALL_S || m.peak_rss_mib > TARGET_RSS_MIB).collect();
    if missed.is_empty() {
        println!("\naudit bench: every question within {TARGET_WALL_S} s and {TARGET_RSS_MIB} MiB");
        ExitCode::SUCCESS
    } else {
        for m in missed {
            println!("audit bench: target missed by `{}`", m.command);
        }
        ExitCode::FAILURE
    }
}

fn print_report(r: &Json) {
    let w = &r["written"];
    println!();
    println!(
        "{} scopes, {} % with {} WorkSpaces each; {} days compacted + today's morning: {} objects, {} snapshot lines, {} runs lines",
        r["shape"]["scopes"], r["shape"]["busy_pct"], r["shape"]["workspaces"], r["shape"]["days"], w["objects"],
        w["snapshot_lines"], w["run_lines"]
    );
    println!();
    println!("| question | rows | read | wall s | CPU s | peak RSS MiB |");
    println!("|---|---:|---|---:|---:|---:|");
    for m in r["measured"].as_array().into_iter().flatten() {
        println!(
            "| `{}` | {} | {} | {:.1} | {:.1} | {:.0} |",
            m["command"].as_str().unwrap_or_default(),
            m["rows"],
            m["read"].as_str().unwrap_or_default(),
            m["wall_s"].as_f64().unwrap_or(0.0),
            m["cpu_s"].as_f64().unwrap_or(0.0),
            m["peak_rss_mib"].as_f64().unwrap_or(0.0),
        );
    }
    println!("\nthe report's HTML: {:.1} MiB", r["report_mib"].as_f64().unwrap_or(0.0));
}

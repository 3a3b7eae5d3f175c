//! Test harness for the end-to-end tests: the local AWS stand-in (moto server), the archiver's
//! table and bucket on it, readers of what a user would check (items, manifests, history lines),
//! and a loopback proxy that can cut the archiver off from moto mid-run. The session APIs'
//! stand-in is the `session-emulator` crate.

pub mod athena;
pub mod browser;
mod counting_proxy;
pub mod day;
pub mod lambda;
mod local_aws;
pub mod organization;
pub mod poller;
pub mod price;
mod proxy;
pub mod rig;
pub mod stage;

pub use counting_proxy::{CountingProxy, Traffic};
pub use local_aws::{HistoryObjectRead, LocalAws};
pub use proxy::CutProxy;

use session_archiver::ServiceId;
use session_emulator::Api;

/// A service id as the template names its resources: `ivs-stream-sessions` → `IvsStreamSessions`
/// (`IvsStreamSessionsFunction`, `IvsStreamSessionsSchedule`, …).
pub fn pascal_case(service: ServiceId) -> String {
    service
        .as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The emulator's API behind a service id.
pub fn api_of(service: ServiceId) -> Api {
    match service {
        ServiceId::WorkspacesPoolSessions => Api::PoolSessions,
        ServiceId::WorkspacesConnectionStatus => Api::ConnectionStatus,
        ServiceId::IvsStreamSessions => Api::IvsStreamSessions,
        ServiceId::ChimeProxySessions => Api::ChimeProxySessions,
        ServiceId::GameliftStreamSessions => Api::GameliftStreamSessions,
    }
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server on a free loopback port, stopped when dropped. DynamoDB and S3 (path-style) for
/// the archiver's sinks.
pub struct MotoServer {
    child: Child,
    port: u16,
}

/// An error naming `path` and how to install it, when it is missing.
fn installed(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} is missing: run `make moto` (make test does) to install the pinned moto server", path.display()),
    ))
}

impl MotoServer {
    /// `$MOTO_SERVER`, or `local-moto-server`: the moto the Makefile installs into the project
    /// venv (`make moto`), with AssumeRole checking as STS does (`local_moto.py`).
    pub fn binary() -> PathBuf {
        std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("local-moto-server"))
    }

    /// Starts moto and waits until it answers HTTP (at most 60 s).
    pub fn start() -> std::io::Result<Self> {
        // The wrappers run the installed moto: say so when it is not there.
        installed(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"))?;
        Self::start_command(&Self::binary())
    }

    /// Starts `binary` (a moto server taking `-H` and `-p`) and waits until moto answers there. The
    /// free port it is given may be taken by another process before moto binds it (the tests start
    /// emulators on ephemeral ports alongside): moto then exits, or another server answers, and it
    /// is started again on another port.
    pub fn start_command(binary: &std::path::Path) -> std::io::Result<Self> {
        installed(binary)?;
        let mut last = None;
        for _ in 0..5 {
            match Self::start_on_a_free_port(binary) {
                Ok(server) => return Ok(server),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("moto server did not start")))
    }

    fn start_on_a_free_port(binary: &std::path::Path) -> std::io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = MotoServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        let taken = || std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("port {port} was taken"));
        while Instant::now() < deadline {
            if let Some(status) = server.child.try_wait()? {
                // Another process holds the port: start again elsewhere; else moto itself failed.
                if TcpListener::bind(("127.0.0.1", port)).is_err() {
                    return Err(taken());
                }
                return Err(std::io::Error::other(format!("moto server exited early: {status}")));
            }
            match server.get("/moto-api/") {
                // Moto's own page: another server on the port answers otherwise.
                Ok(page) if page.starts_with("HTTP/1.1 200") && page.contains("Moto") => return Ok(server),
                Ok(page) if page.starts_with("HTTP/1.") => return Err(taken()),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "moto server did not answer within 60 s"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (the Python process itself: `bench-moto-server` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP GET; returns the whole response.
    pub fn get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }

    /// Stops the server (as a crash of the local AWS would) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A whole number from the environment variable `name`, `default` when unset, unreadable or 0.
/// DuckDB's answer to `sql` over files copied under `root` (`{root}` in `sql` names it), one line a
/// row, tab-separated: the pinned Python package `make duckdb` installs into `.venv`.
pub fn duckdb(root: &std::path::Path, sql: &str) -> String {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let script = "import sys, duckdb\nfor row in duckdb.sql(sys.argv[1]).fetchall(): print('\\t'.join(map(str, row)))";
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(sql.replace("{root}", &root.display().to_string()))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make duckdb installs it)", python.display()));
    assert!(output.status.success(), "DuckDB: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

pub fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// (user + system CPU time, peak RSS) of a process, from `/proc`.
pub fn process_usage(pid: u32) -> (Duration, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    (Duration::from_secs_f64(ticks as f64 / hz), hwm_kib / 1024.0)
}

/// The commit checked out, for a bench's report.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

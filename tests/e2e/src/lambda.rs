//! A local Lambda Runtime API (the `2018-06-01` interface every custom runtime polls) and the real
//! function binaries driven through it: what Lambda does, on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value as Json;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// What an invocation came back with.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function's response body.
    Response(Json),
    /// The function reported an error (`errorType`, `errorMessage`).
    Error { error_type: String, error_message: String },
}

struct Pending {
    request_id: String,
    payload: Json,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct ApiState {
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Outcome>>,
    /// When the function first asked for an invocation: the end of its cold start.
    first_next: Mutex<Option<std::time::Instant>>,
}

/// The Runtime API of one function: invocations are queued and handed to the function's
/// `GET /next`; its response or error resolves the invocation.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    state: Arc<ApiState>,
    server: tokio::task::JoinHandle<()>,
}

const API: &str = "/2018-06-01/runtime";

impl RuntimeApi {
    pub async fn start(function_arn: String, timeout: Duration) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::unbounded_channel::<Pending>();
        let state = Arc::new(ApiState::default());
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let next = {
            let state = state.clone();
            move || {
                let receiver = receiver.clone();
                let state = state.clone();
                let arn = function_arn.clone();
                async move {
                    state.first_next.lock().unwrap().get_or_insert_with(std::time::Instant::now);
                    let Some(pending) = receiver.lock().await.recv().await else {
                        return StatusCode::GONE.into_response();
                    };
                    state.waiting.lock().unwrap().insert(pending.request_id.clone(), pending.reply);
                    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + timeout;
                    (
                        [
                            ("lambda-runtime-aws-request-id", pending.request_id.clone()),
                            ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
                            ("lambda-runtime-invoked-function-arn", arn),
                            ("lambda-runtime-trace-id", format!("Root=1-00000000-{}", pending.request_id)),
                            ("content-type", "application/json".to_owned()),
                        ],
                        pending.payload.to_string(),
                    )
                        .into_response()
                }
            }
        };
        let app = axum::Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(respond))
            .route(&format!("{API}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi { addr, queue, state, server })
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` wants it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation; the receiver resolves with the function's answer.
    fn enqueue(&self, request_id: String, payload: Json) -> oneshot::Receiver<Outcome> {
        let (reply, answer) = oneshot::channel();
        let _ = self.queue.send(Pending { request_id, payload, reply });
        answer
    }

    fn init_error(&self) -> Option<Outcome> {
        self.state.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error_outcome(body: &[u8]) -> Outcome {
    let parsed: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    Outcome::Error {
        error_type: parsed["errorType"].as_str().unwrap_or_default().to_owned(),
        error_message: parsed["errorMessage"].as_str().unwrap_or_default().to_owned(),
    }
}

async fn respond(State(state): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let outcome = Outcome::Response(serde_json::from_slice(&body).unwrap_or(Json::Null));
    resolve(&state, &id, outcome)
}

async fn fail(State(state): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    resolve(&state, &id, error_outcome(&body))
}

async fn init_error(State(state): State<Arc<ApiState>>, _headers: HeaderMap, body: Bytes) -> Response {
    *state.init_error.lock().unwrap() = Some(error_outcome(&body));
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}

fn resolve(state: &ApiState, id: &str, outcome: Outcome) -> Response {
    match state.waiting.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
        }
        None => (StatusCode::BAD_REQUEST, "{\"errorMessage\":\"unknown request id\"}").into_response(),
    }
}

/// Why an invocation got no answer.
#[derive(Debug)]
pub enum InvokeError {
    /// The function process ended (a cold-start failure): its exit status and last log lines.
    Exited {
        status: String,
        log: String,
    },
    TimedOut,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Exited { status, log } => write!(f, "the function exited ({status}): {log}"),
            InvokeError::TimedOut => write!(f, "the function did not answer in time"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// A real function binary running against its own local Runtime API.
pub struct LocalFunction {
    api: RuntimeApi,
    child: Child,
    spawned_at: std::time::Instant,
    log: Arc<Mutex<Vec<String>>>,
    invocations: u64,
    last_request_id: Option<String>,
    timeout: Duration,
}

impl LocalFunction {
    /// The binary of a function crate in the workspace's target dir (`cargo build` builds it;
    /// `cargo test --workspace` too, for the function crates' own tests).
    pub fn binary(name: &str) -> PathBuf {
        Self::binary_of("debug", name)
    }

    /// The binary of a cargo profile (`debug`, `release`) for this machine.
    pub fn binary_of(profile: &str, name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        target.join(profile).join(name)
    }

    /// Starts `binary` with `env` (plus the Runtime API address and Lambda's own variables).
    pub async fn start(
        binary: &Path,
        name: &str,
        account_id: &str,
        region: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> std::io::Result<Self> {
        if !binary.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is missing: build it with `cargo build -p {name}`", binary.display()),
            ));
        }
        let arn = format!("arn:aws:lambda:{region}:{account_id}:function:{name}");
        let api = RuntimeApi::start(arn, timeout).await?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", region)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = std::time::Instant::now();
        let mut child = command.spawn()?;
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        if let Some(stdout) = child.stdout.take() {
            collect_lines(stdout, log.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect_lines(stderr, log.clone());
        }
        Ok(LocalFunction { api, child, spawned_at, log, invocations: 0, last_request_id: None, timeout })
    }

    /// Sends one event, under a request id of its own, and waits for the function's answer.
    pub async fn invoke(&mut self, payload: Json) -> Result<Outcome, InvokeError> {
        static INVOCATIONS: AtomicU64 = AtomicU64::new(0);
        let number = INVOCATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        let request_id = format!("{:08x}-0000-4000-8000-{number:012x}", std::process::id());
        self.invoke_as(request_id, payload).await
    }

    /// Sends one event under `request_id`: Lambda's retry of an attempt keeps its request id.
    pub async fn invoke_as(&mut self, request_id: String, payload: Json) -> Result<Outcome, InvokeError> {
        self.invocations += 1;
        self.last_request_id = Some(request_id.clone());
        let mut answer = self.api.enqueue(request_id, payload);
        let deadline = tokio::time::Instant::now() + self.timeout + Duration::from_secs(5);
        loop {
            tokio::select! {
                outcome = &mut answer => return outcome.map_err(|_| InvokeError::TimedOut),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let log = self.log_tail(20);
                        let status = match self.api.init_error() {
                            Some(Outcome::Error { error_type, error_message }) => format!("{status}; init error {error_type}: {error_message}"),
                            _ => status.to_string(),
                        };
                        return Err(InvokeError::Exited { status, log });
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err(InvokeError::TimedOut);
                    }
                }
            }
        }
    }

    /// The request id of the last invocation sent, for a retry of it.
    pub fn last_request_id(&self) -> Option<String> {
        self.last_request_id.clone()
    }

    /// The process id, to read its CPU time and memory from `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// From the process's start to its first request for an invocation (Lambda's init phase).
    pub async fn cold_init(&self) -> Option<Duration> {
        for _ in 0..500 {
            if let Some(at) = *self.api.state.first_next.lock().unwrap() {
                return Some(at - self.spawned_at);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Kills the function's process, as a crash or an out-of-memory stop would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// The function's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }
}

/// Appends every line `reader` produces to `log`, in the background.
fn collect_lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(reader: R, log: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().unwrap().push(line);
        }
    });
}

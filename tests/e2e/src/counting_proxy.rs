//! An HTTP proxy on loopback that forwards every request to a target (moto) and counts them by
//! AWS operation, with the bytes sent and received: what the benchmark prices.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// Requests of one operation and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

type Counts = Arc<Mutex<BTreeMap<String, Traffic>>>;

#[derive(Clone)]
struct Forward {
    target: SocketAddr,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<axum::body::Bytes>>,
    counts: Counts,
}

pub struct CountingProxy {
    addr: SocketAddr,
    counts: Counts,
    task: tokio::task::JoinHandle<()>,
}

/// `DynamoDB BatchWriteItem`, `S3 PutObject`, `secretsmanager GetSecretValue`, …
pub fn operation(method: &str, query: Option<&str>, target: Option<&str>) -> String {
    if let Some(target) = target {
        let (service, op) = target.split_once('.').unwrap_or(("?", target));
        let service = if service.starts_with("DynamoDB") { "DynamoDB" } else { service };
        return format!("{service} {op}");
    }
    let query = query.unwrap_or_default();
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    let op = match method {
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" => "PutObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        other => other,
    };
    format!("S3 {op}")
}

const PROJECTED: &[u8] = b"\"ProjectionExpression\"";
/// Only a session written in place asks for its item back on a refusal.
const SESSION_UPDATE: &[u8] = b"\"ReturnValuesOnConditionCheckFailure\"";

async fn forward(State(state): State<Forward>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(sent) = body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let mut op = operation(parts.method.as_str(), parts.uri.query(), target);
    // A projected Query is charged on whole items: the bench tells the two apart.
    let has = |marker: &[u8]| sent.windows(marker.len()).any(|w| w == marker);
    if op == "DynamoDB Query" && has(PROJECTED) {
        op.push_str(" (projected)");
    }
    // Session items written in place are counted with the other session writes, not the run's items.
    if op == "DynamoDB UpdateItem" && has(SESSION_UPDATE) {
        op.push_str(" (session)");
    }
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut outbound =
        hyper::Request::builder().method(parts.method.clone()).uri(format!("http://{}{path}", state.target));
    for (name, value) in &parts.headers {
        outbound = outbound.header(name, value);
    }
    let Ok(outbound) = outbound.body(Full::new(sent.clone())) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(response) = state.client.request(outbound).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let (parts, body) = response.into_parts();
    let received = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    {
        let mut counts = state.counts.lock().unwrap();
        let traffic = counts.entry(op).or_default();
        traffic.requests += 1;
        traffic.bytes_sent += sent.len() as u64;
        traffic.bytes_received += received.len() as u64;
    }
    Response::from_parts(parts, Body::from(received))
}

impl CountingProxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts: Counts = Arc::default();
        let state =
            Forward { target, client: Client::builder(TokioExecutor::new()).build_http(), counts: counts.clone() };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CountingProxy { addr, counts, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counts so far, and a fresh start.
    pub fn take(&self) -> BTreeMap<String, Traffic> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_operation() {
        assert_eq!(operation("POST", None, Some("DynamoDB_20120810.BatchWriteItem")), "DynamoDB BatchWriteItem");
        assert_eq!(operation("POST", None, Some("secretsmanager.GetSecretValue")), "secretsmanager GetSecretValue");
        assert_eq!(operation("PUT", Some("x-id=PutObject"), None), "S3 PutObject");
        assert_eq!(operation("PUT", Some("partNumber=2&uploadId=u"), None), "S3 UploadPart");
        assert_eq!(operation("POST", Some("uploads"), None), "S3 CreateMultipartUpload");
    }
}

//! The wire protocols: WorkSpaces awsJson1.1 (`POST /`, `X-Amz-Target`), IVS, Chime SDK Voice and
//! GameLift Streams restJson1 (documented methods, paths and query names), with each service's
//! own error shapes, validation and throttling errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::faults::{FaultPlan, OddPage};
use crate::time::iso8601;
use crate::token::{self, Cursor, TokenError};
use crate::world::{mix, Api, EmulatorConfig, SimSession, World};
use crate::Shared;

type AppState = Arc<Shared>;

pub fn router(shared: AppState) -> Router {
    Router::new()
        .route("/", post(workspaces))
        .route("/ListStreamSessions", post(ivs_list_stream_sessions))
        .route("/ListChannels", post(ivs_list_channels))
        .route("/voice-connectors", get(chime_list_voice_connectors))
        .route("/voice-connectors/{id}/proxy-sessions", get(chime_list_proxy_sessions))
        .route("/streamsessions", get(gamelift_list_stream_sessions_by_account))
        .route("/_emulator/tick", post(control_tick))
        .route("/_emulator/faults/{operation}", put(control_set_faults))
        .route("/_emulator/faults", delete(control_clear_faults))
        .route("/_emulator/expire-tokens", post(control_expire_tokens))
        .route("/_emulator/calls", get(control_calls).delete(control_reset_calls))
        .route("/_emulator/sessions/{api}", get(control_sessions))
        .route("/_emulator/config", get(control_config))
        .with_state(shared)
}

/// The four services and their error conventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Svc {
    WorkSpaces,
    Ivs,
    Chime,
    GameLift,
}

/// What AWS answers a request signed with credentials the region does not know: an account
/// without a world there, as a region the account has not enabled.
const UNRECOGNIZED_CLIENT: &str = "UnrecognizedClientException";

#[derive(Debug)]
struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    resource_id: Option<String>,
}

impl Svc {
    fn throttling(self) -> ApiError {
        let (status, code) = match self {
            Svc::WorkSpaces => (400, "ThrottlingException"),
            Svc::Ivs => (429, "ThrottlingException"),
            Svc::Chime => (429, "ThrottledClientException"),
            Svc::GameLift => (429, "ThrottlingException"),
        };
        ApiError { status, code, message: "Rate exceeded".into(), resource_id: None }
    }

    fn server_error(self, status: u16) -> ApiError {
        let code = match (self, status) {
            (Svc::WorkSpaces, 503) | (Svc::Ivs, 503) | (Svc::GameLift, 503) => "ServiceUnavailable",
            (Svc::WorkSpaces, _) => "InternalFailure",
            (Svc::Ivs, _) | (Svc::GameLift, _) => "InternalServerException",
            (Svc::Chime, 503) => "ServiceUnavailableException",
            (Svc::Chime, _) => "ServiceFailureException",
        };
        ApiError { status, code, message: "The service encountered an internal error.".into(), resource_id: None }
    }

    fn invalid(self, message: impl Into<String>) -> ApiError {
        let code = match self {
            Svc::WorkSpaces => "InvalidParameterValuesException",
            Svc::Ivs | Svc::GameLift => "ValidationException",
            Svc::Chime => "BadRequestException",
        };
        ApiError { status: 400, code, message: message.into(), resource_id: None }
    }

    fn not_found(self, what: &str, id: &str) -> ApiError {
        let (status, code) = match self {
            Svc::WorkSpaces => (400, "ResourceNotFoundException"),
            Svc::Ivs => (404, "ResourceNotFoundException"),
            Svc::Chime | Svc::GameLift => (404, "NotFoundException"),
        };
        ApiError { status, code, message: format!("{what} {id} does not exist"), resource_id: Some(id.to_owned()) }
    }

    fn unsigned(self) -> ApiError {
        let (status, code) = match self {
            Svc::WorkSpaces => (400, "MissingAuthenticationTokenException"),
            Svc::Chime => (401, "UnauthorizedClientException"),
            Svc::Ivs | Svc::GameLift => (403, "AccessDeniedException"),
        };
        ApiError { status, code, message: "Request is missing a SigV4 Authorization header".into(), resource_id: None }
    }

    /// What AWS answers a request signed for a region the account has not enabled (or with a
    /// key no account of the emulator holds).
    fn unrecognized(self) -> ApiError {
        let status = if self == Svc::WorkSpaces { 400 } else { 403 };
        ApiError {
            status,
            code: UNRECOGNIZED_CLIENT,
            message: "The security token included in the request is invalid.".into(),
            resource_id: None,
        }
    }

    /// What AWS answers a call a service control policy denies.
    fn denied(self, account: &str, operation: &str) -> ApiError {
        let status = if self == Svc::WorkSpaces { 400 } else { 403 };
        let prefix = match self {
            Svc::WorkSpaces => "workspaces",
            Svc::Ivs => "ivs",
            Svc::Chime => "chime",
            Svc::GameLift => "gameliftstreams",
        };
        let message = format!(
            "User: arn:aws:sts::{account}:assumed-role/session-archiver-member/session is not authorized to perform: {prefix}:{operation} with an explicit deny in a service control policy"
        );
        ApiError { status, code: "AccessDeniedException", message, resource_id: None }
    }

    fn content_type(self) -> &'static str {
        match self {
            Svc::WorkSpaces => "application/x-amz-json-1.1",
            _ => "application/json",
        }
    }

    fn render(self, err: ApiError) -> Response {
        let body = match self {
            Svc::WorkSpaces => {
                let mut body = json!({ "__type": err.code, "message": err.message });
                if let Some(id) = err.resource_id {
                    body["ResourceId"] = id.into();
                }
                body
            }
            // AWS's request authentication answers before the service, in its own words.
            _ if err.code == UNRECOGNIZED_CLIENT => json!({ "message": err.message }),
            Svc::Ivs => json!({ "exceptionMessage": err.message }),
            Svc::Chime => json!({ "Code": err.code, "Message": err.message }),
            Svc::GameLift => json!({ "message": err.message }),
        };
        let mut response =
            (StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST), body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type()));
        if self != Svc::WorkSpaces {
            headers.insert("x-amzn-errortype", HeaderValue::from_static(err.code));
        }
        response
    }
}

/// Where in a list response the sessions are, for odd pages.
struct ListShape {
    list: &'static str,
    id: &'static str,
    time: &'static str,
    next: &'static str,
}

/// What a request is answered from: the emulator's clock and tokens, and the world of the account
/// and region it was signed for.
#[derive(Clone, Copy)]
struct Here<'a> {
    shared: &'a Shared,
    world: &'a World,
}

impl Here<'_> {
    fn tick(&self) -> u64 {
        self.shared.tick()
    }

    fn token_epoch(&self) -> u64 {
        self.shared.token_epoch()
    }

    fn config(&self) -> &EmulatorConfig {
        &self.world.config
    }
}

/// Runs one operation: counts it, applies faults, renders the answer or the error.
async fn serve(
    shared: &Shared,
    svc: Svc,
    operation: &'static str,
    headers: &HeaderMap,
    list: Option<(&ListShape, Option<&str>)>,
    handle: impl FnOnce(Here<'_>) -> Result<Value, ApiError>,
) -> Response {
    shared.count(operation, |c| c.calls += 1);
    let plan = shared.plan_for(operation);
    if plan.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
    }
    let signer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(crate::identity::signer);
    let Some(signer) = signer else {
        shared.count(operation, |c| c.client_errors += 1);
        return svc.render(svc.unsigned());
    };
    let account =
        crate::identity::account_of(&signer.access_key_id).unwrap_or_else(|| shared.world.config.account_id.clone());
    let Some(world) = shared.world_of(&account, &signer.region) else {
        shared.count(operation, |c| c.client_errors += 1);
        return svc.render(svc.unrecognized());
    };
    if shared.is_denied(&account, &signer.region) {
        shared.count(operation, |c| c.client_errors += 1);
        return svc.render(svc.denied(&account, operation));
    }
    let draw = shared.draw();
    if draw < plan.throttle_rate {
        shared.count(operation, |c| c.throttled += 1);
        return svc.render(svc.throttling());
    }
    if draw < plan.throttle_rate + plan.server_error_rate {
        shared.count(operation, |c| c.server_errors += 1);
        return svc.render(svc.server_error(plan.server_error_status.unwrap_or(500)));
    }
    match handle(Here { shared, world }) {
        Ok(mut body) => {
            if let (Some((shape, request_token)), Some(odd)) = (list, plan.odd_page) {
                apply_odd_page(&mut body, shape, request_token, odd);
            }
            shared.count(operation, |c| c.pages += 1);
            let mut response = body.to_string().into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(svc.content_type()));
            response
        }
        Err(err) => {
            shared.count(operation, |c| c.client_errors += 1);
            svc.render(err)
        }
    }
}

fn apply_odd_page(body: &mut Value, shape: &ListShape, request_token: Option<&str>, odd: OddPage) {
    match odd {
        OddPage::RepeatToken => {
            if let (Some(token), true) = (request_token, body.get(shape.next).is_some()) {
                body[shape.next] = token.into();
            }
        }
        OddPage::MissingId | OddPage::DuplicateSession | OddPage::WrongType => {
            let Some(items) = body.get_mut(shape.list).and_then(Value::as_array_mut) else { return };
            let Some(first) = items.first().cloned() else { return };
            match odd {
                OddPage::MissingId => {
                    if let Some(obj) = items[0].as_object_mut() {
                        obj.remove(shape.id);
                    }
                }
                OddPage::DuplicateSession => items.push(first),
                _ => items[0][shape.time] = "yesterday".into(),
            }
        }
    }
}

/// Which positions a page call covers: the operation, parent and filter its tokens are bound to,
/// the token it came with, how many positions there are, and how many a page holds.
struct PageCall<'t> {
    operation: u64,
    parent: u32,
    filter: u64,
    token: Option<&'t str>,
    slots: u32,
    limit: u32,
}

/// Pages through `call.slots` positions from its token, keeping what `select` returns.
fn page<T>(
    shared: Here<'_>,
    svc: Svc,
    call: PageCall<'_>,
    select: impl Fn(u32) -> Option<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let PageCall { operation, parent, filter, token, slots, limit } = call;
    let secret = shared.config().seed ^ 0x70CE;
    let expected = Cursor { operation, parent, filter, position: 0, epoch: shared.token_epoch() };
    let mut position = match token {
        None => 0,
        Some(t) => token::decode(t, secret, expected).map_err(|e| match e {
            TokenError::Invalid => svc.invalid("The next token is not valid for this request"),
            TokenError::Expired => svc.invalid("The next token has expired"),
        })?,
    };
    let mut items = Vec::new();
    while position < slots && items.len() < limit as usize {
        if let Some(s) = select(position) {
            items.push(s);
        }
        position += 1;
    }
    // Hand out a token only when a further session exists: no empty last pages.
    let more = (position..slots).any(|k| select(k).is_some());
    let next = more.then(|| token::encode(Cursor { position, ..expected }, secret));
    Ok((items, next))
}

fn filter_sig(parts: &[Option<&str>]) -> u64 {
    parts.iter().fold(0, |acc, p| {
        let bytes = p.map(|s| s.bytes().fold(7u64, |h, b| mix(h ^ u64::from(b)))).unwrap_or(1);
        mix(acc ^ bytes)
    })
}

// ---------------------------------------------------------------- request field helpers

struct Fields<'a> {
    svc: Svc,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.serialization(name)),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| self.serialization(name)),
            Some(_) => Err(self.serialization(name)),
        }
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| self.serialization(name)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.serialization(name)),
        }
    }

    fn serialization(&self, name: &str) -> ApiError {
        let code = if self.svc == Svc::WorkSpaces { "SerializationException" } else { "ValidationException" };
        ApiError { status: 400, code, message: format!("{name} has the wrong type"), resource_id: None }
    }
}

fn check_range(svc: Svc, name: &str, value: Option<i64>, min: i64, max: i64) -> Result<Option<u32>, ApiError> {
    match value {
        Some(v) if v < min || v > max => Err(svc.invalid(format!(
            "1 validation error detected: Value '{v}' at '{name}' failed to satisfy constraint: Member must have value between {min} and {max}"
        ))),
        other => Ok(other.map(|v| v as u32)),
    }
}

fn check_token_length(svc: Svc, token: &Option<String>, max: usize) -> Result<(), ApiError> {
    match token {
        Some(t) if t.is_empty() || t.len() > max => {
            Err(svc.invalid(format!("NextToken must be 1 to {max} characters")))
        }
        _ => Ok(()),
    }
}

fn parse_query_int(svc: Svc, query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query.get(name).map(|v| v.parse::<i64>().map_err(|_| svc.invalid(format!("{name} must be a number")))).transpose()
}

fn check_enum(svc: Svc, name: &str, value: Option<&String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(svc.invalid(format!(
            "1 validation error detected: Value '{v}' at '{name}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// A list response: the items under `list`, and the next token under `next` when there is one.
fn list_body(list: &str, items: Vec<Value>, next_key: &str, next: Option<String>) -> Value {
    let mut body = Map::new();
    body.insert(list.to_owned(), Value::Array(items));
    if let Some(next) = next {
        body.insert(next_key.to_owned(), next.into());
    }
    Value::Object(body)
}

fn ip_of(bits: u64) -> String {
    format!("10.{}.{}.{}", (bits >> 8) & 0xff, (bits >> 16) & 0xff, ((bits >> 24) & 0xfd) + 1)
}

// ---------------------------------------------------------------- WorkSpaces (awsJson1.1)

const POOL_SESSIONS: ListShape = ListShape { list: "Sessions", id: "SessionId", time: "StartTime", next: "NextToken" };
const CONNECTION_STATUS: ListShape = ListShape {
    list: "WorkspacesConnectionStatus",
    id: "WorkspaceId",
    time: "ConnectionStateCheckTimestamp",
    next: "NextToken",
};

async fn workspaces(State(shared): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let svc = Svc::WorkSpaces;
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = match target.strip_prefix("WorkspacesService.") {
        Some("DescribeWorkspacesPoolSessions") => "DescribeWorkspacesPoolSessions",
        Some("DescribeWorkspacesPools") => "DescribeWorkspacesPools",
        Some("DescribeWorkspacesConnectionStatus") => "DescribeWorkspacesConnectionStatus",
        Some("DescribeWorkspaces") => "DescribeWorkspaces",
        _ => {
            return svc.render(ApiError {
                status: 400,
                code: "UnknownOperationException",
                message: format!("unknown operation `{target}`"),
                resource_id: None,
            })
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed: Option<Map<String, Value>> =
        if body.is_empty() { Some(Map::new()) } else { serde_json::from_slice(&body).ok() };
    let Some(map) = parsed.filter(|_| content_type.starts_with("application/x-amz-json-1.1")) else {
        return svc.render(ApiError {
            status: 400,
            code: "SerializationException",
            message: "body must be a JSON object sent as application/x-amz-json-1.1".into(),
            resource_id: None,
        });
    };
    let fields = Fields { svc, map: &map };
    let token = fields.string("NextToken").ok().flatten();
    let list = match operation {
        "DescribeWorkspacesPoolSessions" => Some((&POOL_SESSIONS, token.as_deref())),
        "DescribeWorkspacesConnectionStatus" => Some((&CONNECTION_STATUS, token.as_deref())),
        _ => None,
    };
    serve(&shared, svc, operation, &headers, list, |shared| match operation {
        "DescribeWorkspacesPoolSessions" => describe_pool_sessions(shared, &fields),
        "DescribeWorkspacesPools" => describe_pools(shared, &fields),
        "DescribeWorkspaces" => describe_workspaces(shared, &fields),
        _ => describe_connection_status(shared, &fields),
    })
    .await
}

fn is_pool_id(id: &str) -> bool {
    id.strip_prefix("wspool-")
        .is_some_and(|r| r.len() == 9 && r.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

fn describe_pool_sessions(shared: Here<'_>, fields: &Fields) -> Result<Value, ApiError> {
    let svc = Svc::WorkSpaces;
    let pool_id = fields.string("PoolId")?.ok_or_else(|| svc.invalid("PoolId is required"))?;
    if !is_pool_id(&pool_id) {
        return Err(svc.invalid(format!(
            "1 validation error detected: Value '{pool_id}' at 'poolId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^wspool-[0-9a-z]{{9}}$"
        )));
    }
    let limit = check_range(svc, "limit", fields.int("Limit")?, 1, 50)?.unwrap_or(20);
    let user = fields.string("UserId")?;
    if let Some(u) = &user {
        if !(2..=128).contains(&u.chars().count()) {
            return Err(svc.invalid("UserId must be 2 to 128 characters"));
        }
    }
    let token = fields.string("NextToken")?;
    check_token_length(svc, &token, 2048)?;
    let world = shared.world;
    let p = world
        .parents(Api::PoolSessions)
        .position(&pool_id)
        .ok_or_else(|| svc.not_found("WorkSpaces Pool", &pool_id))?;
    let tick = shared.tick();
    let (sessions, next) = page(
        shared,
        svc,
        PageCall {
            operation: 1,
            parent: p,
            filter: filter_sig(&[user.as_deref()]),
            token: token.as_deref(),
            slots: world.slots(Api::PoolSessions, p),
            limit,
        },
        |k| Some(world.session(Api::PoolSessions, p, k, tick)).filter(|s| user.is_none() || s.user_id == user),
    )?;
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "AuthenticationType": "SAML",
                "ConnectionState": s.status,
                "ExpirationTime": s.started + 12 * 3600,
                "InstanceId": format!("i-{:017x}", s.bits >> 4),
                "NetworkAccessConfiguration": {
                    "EniId": format!("eni-{:017x}", mix(s.bits) >> 4),
                    "EniPrivateIpAddress": ip_of(s.bits),
                },
                "PoolId": s.parent,
                "SessionId": s.id,
                "StartTime": s.started,
                "UserId": s.user_id,
            })
        })
        .collect();
    Ok(list_body("Sessions", sessions, "NextToken", next))
}

fn describe_pools(shared: Here<'_>, fields: &Fields) -> Result<Value, ApiError> {
    let svc = Svc::WorkSpaces;
    let limit = check_range(svc, "limit", fields.int("Limit")?, 1, 25)?.unwrap_or(25);
    let token = fields.string("NextToken")?;
    check_token_length(svc, &token, 2048)?;
    let wanted = fields.strings("PoolIds")?;
    if let Some(ids) = &wanted {
        if ids.is_empty() || ids.len() > 25 || ids.iter().any(|id| !is_pool_id(id)) {
            return Err(svc.invalid("PoolIds must hold 1 to 25 pool ids matching ^wspool-[0-9a-z]{9}$"));
        }
    }
    let config = shared.config();
    let pools = &shared.world.parents(Api::PoolSessions).ids;
    let (chosen, next) = page(
        shared,
        svc,
        PageCall {
            operation: 2,
            parent: 0,
            filter: filter_sig(&[wanted.as_ref().map(|w| w.join(",")).as_deref()]),
            token: token.as_deref(),
            slots: pools.len() as u32,
            limit,
        },
        |k| wanted.as_ref().is_none_or(|w| w.contains(&pools[k as usize])).then_some(k),
    )?;
    let items: Vec<Value> = chosen
        .into_iter()
        .map(|p| {
            let id = &pools[p as usize];
            let capacity = shared.world.slots(Api::PoolSessions, p);
            json!({
                "PoolId": id,
                "PoolArn": format!("arn:aws:workspaces:{}:{}:workspacespool/{id}", config.region, config.account_id),
                "CapacityStatus": {
                    "AvailableUserSessions": capacity / 4,
                    "DesiredUserSessions": capacity,
                    "ActualUserSessions": capacity,
                    "ActiveUserSessions": capacity - capacity / 4,
                },
                "PoolName": format!("pool-{p}"),
                "Description": "emulated pool",
                "State": "RUNNING",
                "CreatedAt": config.start_epoch - 86_400,
                "BundleId": "wsb-emulated1",
                "DirectoryId": "wsd-emulated1",
                "RunningMode": "AUTO_STOP",
            })
        })
        .collect();
    Ok(list_body("WorkspacesPools", items, "NextToken", next))
}

fn describe_connection_status(shared: Here<'_>, fields: &Fields) -> Result<Value, ApiError> {
    let svc = Svc::WorkSpaces;
    let ids = fields.strings("WorkspaceIds")?;
    if let Some(ids) = &ids {
        if ids.is_empty() || ids.len() > 25 {
            return Err(svc.invalid("You can specify 1 to 25 WorkspaceIds"));
        }
    }
    let token = fields.string("NextToken")?;
    check_token_length(svc, &token, 2048)?;
    let world = shared.world;
    let tick = shared.tick();
    let now = world.now(tick);
    let (statuses, next) = page(
        shared,
        svc,
        PageCall {
            operation: 3,
            parent: 0,
            filter: filter_sig(&[ids.as_ref().map(|w| w.join(",")).as_deref()]),
            token: token.as_deref(),
            slots: world.slots(Api::ConnectionStatus, 0),
            limit: world.config.connection_status_page_size.max(1),
        },
        |k| {
            let s = world.session(Api::ConnectionStatus, 0, k, tick);
            // Unknown ids are left out of the answer, not refused.
            ids.as_ref().is_none_or(|w| w.contains(&s.id)).then_some(s)
        },
    )?;
    let items: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let mut item = json!({
                "WorkspaceId": s.id,
                "ConnectionState": s.status,
                "ConnectionStateCheckTimestamp": now,
            });
            if let Some(last) = s.ended {
                item["LastKnownUserConnectionTimestamp"] = last.into();
            }
            item
        })
        .collect();
    Ok(list_body("WorkspacesConnectionStatus", items, "NextToken", next))
}

/// `DescribeWorkspaces` by `WorkspaceIds` (1 to 25; unknown ones left out) or of the whole account,
/// `Limit` 1 to 25 a page; the other filters are not emulated and are refused.
fn describe_workspaces(shared: Here<'_>, fields: &Fields) -> Result<Value, ApiError> {
    let svc = Svc::WorkSpaces;
    for unsupported in ["DirectoryId", "UserName", "BundleId", "WorkspaceName"] {
        if fields.map.contains_key(unsupported) {
            return Err(svc.invalid(format!("the emulator does not filter by {unsupported}")));
        }
    }
    let ids = fields.strings("WorkspaceIds")?;
    if ids.as_ref().is_some_and(|ids| ids.is_empty() || ids.len() > 25) {
        return Err(svc.invalid("You can specify 1 to 25 WorkspaceIds"));
    }
    let limit = fields.int("Limit")?.unwrap_or(25);
    if !(1..=25).contains(&limit) {
        return Err(svc.invalid("Limit must be 1 to 25"));
    }
    let token = fields.string("NextToken")?;
    check_token_length(svc, &token, 2048)?;
    let (world, tick) = (shared.world, shared.tick());
    let call = |slots| PageCall {
        operation: 9,
        parent: 0,
        filter: filter_sig(&[ids.as_ref().map(|w| w.join(",")).as_deref()]),
        token: token.as_deref(),
        slots,
        limit: limit as u32,
    };
    let (workspaces, next) = match &ids {
        Some(ids) => page(shared, svc, call(ids.len() as u32), |i| world.workspace(&ids[i as usize], tick))?,
        None => page(shared, svc, call(world.slots(Api::ConnectionStatus, 0)), |k| {
            Some(world.session(Api::ConnectionStatus, 0, k, tick))
        })?,
    };
    let items = workspaces.iter().map(|w| workspace_body(world, w)).collect();
    Ok(list_body("Workspaces", items, "NextToken", next))
}

/// A personal WorkSpace as `DescribeWorkspaces` describes it.
fn workspace_body(world: &World, w: &SimSession) -> Value {
    let directory = format!("d-{:010x}", mix(world.config.seed ^ (w.bits % 3)) & 0xff_ffff_ffff);
    json!({
        "WorkspaceId": w.id,
        "DirectoryId": directory,
        "UserName": w.user_id,
        "IpAddress": ip_of(w.bits),
        "State": if w.status == "UNKNOWN" { "STOPPED" } else { "AVAILABLE" },
        "BundleId": "wsb-emulated1",
        "SubnetId": "subnet-0emulated",
        "ComputerName": format!("WSAMZN-{:08X}", (w.bits >> 20) & 0xffff_ffff),
        "WorkspaceProperties": {"RunningMode": "AUTO_STOP", "ComputeTypeName": "STANDARD"},
    })
}

// ---------------------------------------------------------------- IVS (restJson1)

const IVS_SESSIONS: ListShape =
    ListShape { list: "streamSessions", id: "streamId", time: "startTime", next: "nextToken" };

fn json_body(svc: Svc, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_slice(body).map_err(|_| svc.invalid("The request body is not a JSON object"))
}

fn is_channel_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:ivs:") else { return false };
    let parts: Vec<&str> = rest.splitn(3, ':').collect();
    arn.len() <= 128
        && parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !parts[1].is_empty()
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2]
            .strip_prefix("channel/")
            .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

async fn ivs_list_stream_sessions(State(shared): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let svc = Svc::Ivs;
    let map = json_body(svc, &body);
    let token = map.as_ref().ok().and_then(|m| m.get("nextToken")).and_then(Value::as_str).map(str::to_owned);
    serve(&shared, svc, "ListStreamSessions", &headers, Some((&IVS_SESSIONS, token.as_deref())), |shared| {
        let map = map?;
        let fields = Fields { svc, map: &map };
        let channel = fields.string("channelArn")?.ok_or_else(|| svc.invalid("channelArn is required"))?;
        if !is_channel_arn(&channel) {
            return Err(svc.invalid(format!(
                "1 validation error detected: Value '{channel}' at 'channelArn' failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:aws:ivs:[a-z0-9-]+:[0-9]+:channel/[a-zA-Z0-9-]+$"
            )));
        }
        let limit = check_range(svc, "maxResults", fields.int("maxResults")?, 1, 100)?.unwrap_or(100);
        let token = fields.string("nextToken")?;
        check_token_length(svc, &token, 1024)?;
        let world = shared.world;
        let p = world
            .parents(Api::IvsStreamSessions)
            .position(&channel)
            .ok_or_else(|| svc.not_found("Channel", &channel))?;
        let tick = shared.tick();
        let (sessions, next) = page(
            shared,
            svc,
            PageCall {
                operation: 4,
                parent: p,
                filter: 0,
                token: token.as_deref(),
                slots: world.slots(Api::IvsStreamSessions, p),
                limit,
            },
            |k| Some(world.session(Api::IvsStreamSessions, p, k, tick)),
        )?;
        let items: Vec<Value> = sessions
            .iter()
            .map(|s| {
                let mut item = json!({
                    "streamId": s.id,
                    "startTime": iso8601(s.started),
                    "hasErrorEvent": s.has_error,
                });
                if let Some(end) = s.ended {
                    item["endTime"] = iso8601(end).into();
                }
                item
            })
            .collect();
        Ok(list_body("streamSessions", items, "nextToken", next))
    })
    .await
}

async fn ivs_list_channels(State(shared): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let svc = Svc::Ivs;
    serve(&shared, svc, "ListChannels", &headers, None, |shared| {
        let map = json_body(svc, &body)?;
        let fields = Fields { svc, map: &map };
        let limit = check_range(svc, "maxResults", fields.int("maxResults")?, 1, 100)?.unwrap_or(100);
        let token = fields.string("nextToken")?;
        check_token_length(svc, &token, 1024)?;
        let name_filter = fields.string("filterByName")?;
        let channels = &shared.world.parents(Api::IvsStreamSessions).ids;
        let name = |k: u32| format!("channel-{k}");
        let (chosen, next) = page(
            shared,
            svc,
            PageCall {
                operation: 5,
                parent: 0,
                filter: filter_sig(&[name_filter.as_deref()]),
                token: token.as_deref(),
                slots: channels.len() as u32,
                limit,
            },
            |k| name_filter.as_ref().is_none_or(|f| name(k).contains(f.as_str())).then_some(k),
        )?;
        let items: Vec<Value> = chosen
            .into_iter()
            .map(|k| {
                let arn = &channels[k as usize];
                json!({
                    "arn": arn,
                    "name": name(k),
                    "latencyMode": "LOW",
                    "authorized": false,
                    "recordingConfigurationArn": "",
                    "tags": {},
                    "insecureIngest": false,
                    "type": "STANDARD",
                    "preset": "",
                    "playbackRestrictionPolicyArn": "",
                })
            })
            .collect();
        Ok(list_body("channels", items, "nextToken", next))
    })
    .await
}

// ---------------------------------------------------------------- Chime SDK Voice (restJson1)

const PROXY_SESSIONS: ListShape =
    ListShape { list: "ProxySessions", id: "ProxySessionId", time: "CreatedTimestamp", next: "NextToken" };
const PROXY_STATUSES: &[&str] = &["Open", "InProgress", "Closed"];

async fn chime_list_proxy_sessions(
    State(shared): State<AppState>,
    Path(voice_connector_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let svc = Svc::Chime;
    let token = query.get("next-token").cloned();
    serve(&shared, svc, "ListProxySessions", &headers, Some((&PROXY_SESSIONS, token.as_deref())), |shared| {
        if voice_connector_id.is_empty()
            || voice_connector_id.chars().count() > 128
            || voice_connector_id.trim().is_empty()
        {
            return Err(svc.invalid("VoiceConnectorId must be 1 to 128 characters, not blank"));
        }
        let limit =
            check_range(svc, "MaxResults", parse_query_int(svc, &query, "max-results")?, 1, 100)?.unwrap_or(100);
        let status = query.get("status");
        check_enum(svc, "Status", status, PROXY_STATUSES)?;
        check_token_length(svc, &token, 65_535)?;
        let world = shared.world;
        let p = world
            .parents(Api::ChimeProxySessions)
            .position(&voice_connector_id)
            .ok_or_else(|| svc.not_found("Voice Connector", &voice_connector_id))?;
        let tick = shared.tick();
        let (sessions, next) = page(
            shared,
            svc,
            PageCall {
                operation: 6,
                parent: p,
                filter: filter_sig(&[status.map(String::as_str)]),
                token: token.as_deref(),
                slots: world.slots(Api::ChimeProxySessions, p),
                limit,
            },
            |k| {
                Some(world.session(Api::ChimeProxySessions, p, k, tick))
                    .filter(|s| status.is_none_or(|want| s.status == want))
            },
        )?;
        let items: Vec<Value> = sessions
            .iter()
            .map(|s| {
                let number = |n: u64| format!("+1206555{:04}", n % 10_000);
                let mut item = json!({
                    "VoiceConnectorId": s.parent,
                    "ProxySessionId": s.id,
                    "Name": format!("proxy-{}", s.bits % 1000),
                    "Status": s.status,
                    "ExpiryMinutes": 60 + (s.bits % 4) * 30,
                    "Capabilities": if s.bits % 3 == 0 { json!(["Voice"]) } else { json!(["Voice", "SMS"]) },
                    "CreatedTimestamp": iso8601(s.started),
                    "UpdatedTimestamp": iso8601(s.updated),
                    "Participants": [
                        { "PhoneNumber": number(s.bits), "ProxyPhoneNumber": number(mix(s.bits)) },
                        { "PhoneNumber": number(s.bits >> 20), "ProxyPhoneNumber": number(mix(s.bits)) },
                    ],
                    "NumberSelectionBehavior": if s.bits % 2 == 0 { "PreferSticky" } else { "AvoidSticky" },
                    "GeoMatchLevel": if s.bits % 5 == 0 { "Country" } else { "AreaCode" },
                    "GeoMatchParams": { "Country": "US", "AreaCode": "206" },
                });
                if let Some(end) = s.ended {
                    item["EndedTimestamp"] = iso8601(end).into();
                }
                item
            })
            .collect();
        Ok(list_body("ProxySessions", items, "NextToken", next))
    })
    .await
}

async fn chime_list_voice_connectors(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let svc = Svc::Chime;
    serve(&shared, svc, "ListVoiceConnectors", &headers, None, |shared| {
        let limit =
            check_range(svc, "MaxResults", parse_query_int(svc, &query, "max-results")?, 1, 100)?.unwrap_or(100);
        let token = query.get("next-token").cloned();
        check_token_length(svc, &token, 65_535)?;
        let config = shared.config();
        let connectors = &shared.world.parents(Api::ChimeProxySessions).ids;
        let (chosen, next) = page(
            shared,
            svc,
            PageCall {
                operation: 7,
                parent: 0,
                filter: 0,
                token: token.as_deref(),
                slots: connectors.len() as u32,
                limit,
            },
            Some,
        )?;
        let created = iso8601(config.start_epoch - 86_400);
        let items: Vec<Value> = chosen
            .into_iter()
            .map(|k| {
                let id = &connectors[k as usize];
                json!({
                    "VoiceConnectorId": id,
                    "AwsRegion": config.region,
                    "Name": format!("connector-{}", &id[..6]),
                    "OutboundHostName": format!("{id}.voiceconnector.chime.aws"),
                    "RequireEncryption": true,
                    "CreatedTimestamp": created,
                    "UpdatedTimestamp": created,
                    "VoiceConnectorArn": format!("arn:aws:chime:{}:{}:vc/{id}", config.region, config.account_id),
                })
            })
            .collect();
        Ok(list_body("VoiceConnectors", items, "NextToken", next))
    })
    .await
}

// ---------------------------------------------------------------- GameLift Streams (restJson1)

const GAMELIFT_SESSIONS: ListShape = ListShape { list: "Items", id: "Arn", time: "CreatedAt", next: "NextToken" };
const STREAM_STATUSES: &[&str] = &[
    "ACTIVATING",
    "ACTIVE",
    "CONNECTED",
    "PENDING_CLIENT_RECONNECTION",
    "RECONNECTING",
    "TERMINATING",
    "TERMINATED",
    "ERROR",
];
const EXPORT_STATUSES: &[&str] = &["SUCCEEDED", "FAILED", "PENDING"];

fn export_status(s: &SimSession) -> Option<&'static str> {
    (s.status == "TERMINATED" && !s.bits.is_multiple_of(4)).then(|| EXPORT_STATUSES[((s.bits >> 3) % 3) as usize])
}

async fn gamelift_list_stream_sessions_by_account(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let svc = Svc::GameLift;
    let token = query.get("NextToken").cloned();
    let list = Some((&GAMELIFT_SESSIONS, token.as_deref()));
    serve(&shared, svc, "ListStreamSessionsByAccount", &headers, list, |shared| {
        let limit = check_range(svc, "MaxResults", parse_query_int(svc, &query, "MaxResults")?, 1, 100)?.unwrap_or(25);
        let status = query.get("Status");
        check_enum(svc, "Status", status, STREAM_STATUSES)?;
        let export = query.get("ExportFilesStatus");
        check_enum(svc, "ExportFilesStatus", export, EXPORT_STATUSES)?;
        check_token_length(svc, &token, 2048)?;
        let world = shared.world;
        let config = shared.config();
        let tick = shared.tick();
        let (sessions, next) = page(
            shared,
            svc,
            PageCall {
                operation: 8,
                parent: 0,
                filter: filter_sig(&[status.map(String::as_str), export.map(String::as_str)]),
                token: token.as_deref(),
                slots: world.slots(Api::GameliftStreamSessions, 0),
                limit,
            },
            |k| {
                Some(world.session(Api::GameliftStreamSessions, 0, k, tick)).filter(|s| {
                    status.is_none_or(|want| s.status == want)
                        && export.is_none_or(|want| export_status(s) == Some(want.as_str()))
                })
            },
        )?;
        let items: Vec<Value> = sessions
            .iter()
            .map(|s| {
                let mut item = json!({
                    "Arn": s.id,
                    "UserId": s.user_id,
                    "Status": s.status,
                    "Protocol": "WebRTC",
                    "LastUpdatedAt": s.updated,
                    "CreatedAt": s.started,
                    "ApplicationArn": format!("arn:aws:gameliftstreams:{}:{}:application/a-{:09}", config.region, config.account_id, s.bits % 1_000_000_000),
                    "Location": config.region,
                });
                if let Some(reason) = s.reason {
                    item["StatusReason"] = reason.into();
                }
                if let Some(export) = export_status(s) {
                    item["ExportFilesMetadata"] = json!({ "Status": export });
                }
                item
            })
            .collect();
        Ok(list_body("Items", items, "NextToken", next))
    })
    .await
}

// ---------------------------------------------------------------- control API

async fn control_tick(State(shared): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let ticks = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1);
    Json(json!({ "tick": shared.advance(ticks) })).into_response()
}

async fn control_set_faults(
    State(shared): State<AppState>,
    Path(operation): Path<String>,
    Json(plan): Json<FaultPlan>,
) -> Response {
    shared.set_faults(&operation, plan);
    StatusCode::NO_CONTENT.into_response()
}

async fn control_clear_faults(State(shared): State<AppState>) -> Response {
    shared.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn control_expire_tokens(State(shared): State<AppState>) -> Response {
    shared.expire_tokens();
    StatusCode::NO_CONTENT.into_response()
}

async fn control_calls(State(shared): State<AppState>) -> Response {
    Json(shared.calls()).into_response()
}

async fn control_reset_calls(State(shared): State<AppState>) -> Response {
    shared.reset_calls();
    StatusCode::NO_CONTENT.into_response()
}

/// The sessions of an API in the home world, or in `?account_id=…&region=…`.
async fn control_sessions(
    State(shared): State<AppState>,
    Path(api): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Ok(api) = serde_json::from_value::<Api>(Value::String(api.clone())) else {
        return (StatusCode::NOT_FOUND, format!("unknown api `{api}`")).into_response();
    };
    let home = &shared.config();
    let account = query.get("account_id").unwrap_or(&home.account_id);
    let region = query.get("region").unwrap_or(&home.region);
    match shared.sessions_in(account, region, api) {
        Some(sessions) => Json(sessions).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no world for account {account} in {region}")).into_response(),
    }
}

async fn control_config(State(shared): State<AppState>) -> Response {
    Json(json!({ "config": shared.config(), "tick": shared.tick() })).into_response()
}

//! A local stand-in for Slack's Web API, for tests and offline runs: it
//! records every call, keeps the messages it was sent (with their updates
//! and thread replies) and can be scripted to answer 429 or 5xx first.
//!
//! An outage ([`SlackStandin::outage`]) answers every call with failures, in
//! turn, until [`SlackStandin::recover`].
//!
//! It checks what Slack checks and this client relies on: the bearer token,
//! a channel, a `ts` for updates, `blocks` being an array.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A scripted answer, used before normal handling.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 429 with `Retry-After: retry_after`.
    TooManyRequests { retry_after: u64 },
    /// An HTTP status with an empty body.
    Status(u16),
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// e.g. `chat.postMessage`.
    pub method: String,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    pub body: Value,
    /// The HTTP status answered (200 also for `ok: false` API errors).
    pub status: u16,
}

/// A message as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    /// Texts of thread replies, oldest first.
    pub replies: Vec<String>,
    /// How many times `chat.update` replaced it.
    pub updates: usize,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    script: VecDeque<Reply>,
    outage: Vec<Reply>,
    outage_next: usize,
    messages: BTreeMap<String, Message>,
    ephemerals: Vec<(String, String)>,
    next_ts: u64,
    usergroups: BTreeMap<String, Vec<String>>,
}

/// The running stand-in; stops when dropped.
pub struct SlackStandin {
    addr: SocketAddr,
    token: String,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl Drop for SlackStandin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct AppState {
    token: String,
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SlackStandin {
    /// Listen on `127.0.0.1:0`, accepting `token` as the only valid bot token.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner { next_ts: 1, ..Inner::default() }));
        let state = AppState { token: token.to_owned(), inner: inner.clone() };
        let app = Router::new().route("/api/{method}", post(handle)).with_state(state);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Ok(Self { addr, token: token.to_owned(), inner, stop })
    }

    /// The Web API base URL (`http://127.0.0.1:PORT/api`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Answer the next calls with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.inner).script.extend(replies);
    }

    /// Answer every call with these replies, in turn, until [`SlackStandin::recover`]
    /// (after any scripted replies). An empty list ends the outage.
    pub fn outage(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut inner = lock(&self.inner);
        inner.outage = replies.into_iter().collect();
        inner.outage_next = 0;
    }

    /// End the outage: calls are handled normally again.
    pub fn recover(&self) {
        self.outage([]);
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner).calls.clone()
    }

    /// Top-level messages, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        let inner = lock(&self.inner);
        let mut out: Vec<Message> = inner.messages.values().cloned().collect();
        out.sort_by_key(|m| m.ts.parse::<f64>().map(|f| (f * 1e6) as u64).unwrap_or(0));
        out
    }

    pub fn message(&self, ts: &str) -> Option<Message> {
        lock(&self.inner).messages.get(ts).cloned()
    }

    /// Members served by `usergroups.users.list` for `group` (unknown groups: `no_such_subteam`).
    pub fn set_usergroup(&self, group: &str, members: &[&str]) {
        lock(&self.inner).usergroups.insert(group.to_owned(), members.iter().map(|m| (*m).to_owned()).collect());
    }

    /// `(user, text)` of ephemeral messages.
    pub fn ephemerals(&self) -> Vec<(String, String)> {
        lock(&self.inner).ephemerals.clone()
    }
}

fn api_error(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

async fn handle(
    State(state): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Value = if json_body { serde_json::from_str(&body).unwrap_or(Value::Null) } else { Value::Null };
    let mut inner = lock(&state.inner);
    inner.calls.push(Call {
        method: method.clone(),
        authorization: authorization.clone(),
        body: parsed.clone(),
        status: 0,
    });
    let response = answer(&mut inner, &state.token, &method, authorization, json_body, parsed, &body);
    if let Some(call) = inner.calls.last_mut() {
        call.status = response.status().as_u16();
    }
    response
}

fn answer(
    inner: &mut Inner,
    token: &str,
    method: &str,
    authorization: Option<String>,
    json_body: bool,
    parsed: Value,
    raw_form: &str,
) -> Response {
    let scripted = match inner.script.pop_front() {
        Some(reply) => Some(reply),
        None if !inner.outage.is_empty() => {
            let reply = inner.outage[inner.outage_next % inner.outage.len()].clone();
            inner.outage_next += 1;
            Some(reply)
        }
        None => None,
    };
    if let Some(reply) = scripted {
        return match reply {
            Reply::TooManyRequests { retry_after } => {
                (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry_after.to_string())], "").into_response()
            }
            Reply::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
        };
    }
    if authorization.as_deref() != Some(format!("Bearer {token}").as_str()) {
        return api_error(if authorization.is_none() { "not_authed" } else { "invalid_auth" });
    }
    if method == "usergroups.users.list" {
        // A read: form-encoded (`usergroup=S…`), as the Web API takes it.
        let group = raw_form.split('&').find_map(|kv| kv.strip_prefix("usergroup=")).unwrap_or_default();
        return match inner.usergroups.get(group) {
            Some(users) => Json(json!({"ok": true, "users": users})).into_response(),
            None => api_error("no_such_subteam"),
        };
    }
    if !json_body || !parsed.is_object() {
        return api_error("invalid_json");
    }
    let Some(channel) = parsed.get("channel").and_then(Value::as_str).map(str::to_owned) else {
        return api_error("channel_not_found");
    };
    if parsed.get("blocks").is_some_and(|b| !b.is_array()) {
        return api_error("invalid_blocks");
    }
    let text = parsed.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
    let blocks = parsed.get("blocks").cloned().unwrap_or(Value::Array(vec![]));
    match method {
        "chat.postMessage" => {
            let ts = format!("1700000000.{:06}", inner.next_ts);
            inner.next_ts += 1;
            if let Some(thread) = parsed.get("thread_ts").and_then(Value::as_str) {
                let Some(parent) = inner.messages.get_mut(thread) else { return api_error("thread_not_found") };
                parent.replies.push(text);
            } else {
                let m = Message { channel: channel.clone(), ts: ts.clone(), text, blocks, replies: vec![], updates: 0 };
                inner.messages.insert(ts.clone(), m);
            }
            Json(json!({"ok": true, "channel": channel, "ts": ts})).into_response()
        }
        "chat.update" => {
            let Some(ts) = parsed.get("ts").and_then(Value::as_str) else { return api_error("message_not_found") };
            let Some(m) = inner.messages.get_mut(ts) else { return api_error("message_not_found") };
            m.text = text;
            m.blocks = blocks;
            m.updates += 1;
            Json(json!({"ok": true, "channel": channel, "ts": ts})).into_response()
        }
        "chat.postEphemeral" => {
            let Some(user) = parsed.get("user").and_then(Value::as_str) else { return api_error("user_not_found") };
            inner.ephemerals.push((user.to_owned(), text));
            Json(json!({"ok": true, "message_ts": "1700000000.999999"})).into_response()
        }
        _ => api_error("unknown_method"),
    }
}

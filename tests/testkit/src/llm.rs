//! A scripted stand-in for an LLM provider, speaking the OpenAI-compatible
//! chat-completions and the Anthropic Messages wire formats on
//! `127.0.0.1:0`. Each request gets the next scripted reply and is recorded,
//! so tests (and offline demos) can drive the LLM runner through multi-step
//! tool use without a real provider.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use kubemedic::agent::llm::wire::Api;

/// One scripted model turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Ask for these tool calls: `(tool name, arguments)`.
    ToolCalls(Vec<(String, Value)>),
    /// Answer with text (the final JSON, or garbage).
    Text(String),
}

/// What the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub body: Value,
    /// `authorization` or `x-api-key`, whichever was sent.
    pub credential: Option<String>,
}

#[derive(Clone)]
struct Shared {
    api: Api,
    script: Arc<Vec<Reply>>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

/// A running stand-in; the server stops when this is dropped.
pub struct StandIn {
    /// Base URL to put in `agent.llm.base_url`.
    pub base_url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Serve `script` (the last reply repeats when it runs out).
    pub async fn start(api: Api, script: Vec<Reply>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { api, script: Arc::new(script), log: log.clone() };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(reply))
            .route("/v1/messages", post(reply))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let base_url = match api {
            Api::Openai => format!("http://{addr}/v1"),
            Api::Anthropic => format!("http://{addr}"),
        };
        Ok(Self { base_url, log, task })
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn reply(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    let credential = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = {
        let mut log = s.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(Recorded { body, credential });
        log.len() - 1
    };
    let Some(step) = s.script.get(n).or_else(|| s.script.last()) else {
        return Json(json!({"error": "empty script"}));
    };
    Json(render(s.api, step, n))
}

/// A provider response for one scripted turn.
pub fn render(api: Api, step: &Reply, n: usize) -> Value {
    match (api, step) {
        (Api::Openai, Reply::Text(t)) => json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "stand-in",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        }),
        (Api::Openai, Reply::ToolCalls(calls)) => json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "stand-in",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": calls.iter().enumerate().map(|(i, (name, args))| json!({
                    "id": format!("call_{n}_{i}"), "type": "function",
                    "function": {"name": name, "arguments": args.to_string()}})).collect::<Vec<_>>()}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        }),
        (Api::Anthropic, Reply::Text(t)) => json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "stand-in",
            "content": [{"type": "text", "text": t}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 100, "output_tokens": 50}
        }),
        (Api::Anthropic, Reply::ToolCalls(calls)) => {
            let mut content = vec![json!({"type": "text", "text": "Let me look."})];
            content.extend(calls.iter().enumerate().map(|(i, (name, args))| {
                json!({"type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": args})
            }));
            json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "stand-in",
                   "content": content, "stop_reason": "tool_use", "usage": {"input_tokens": 100, "output_tokens": 20}})
        }
    }
}

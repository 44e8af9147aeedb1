//! MCP tool-call load generator for `tests/bench/run.sh`.
//!
//! For each server, operation and concurrency: throughput and p50/p99 latency of `tools/call`
//! over streamable HTTP, with one MCP session (and one HTTP connection) per concurrent client,
//! and what each call cost in CPU: the server's (from `/proc/PID/stat`) and this generator's own.
//! It runs on ONE thread so that, on a small machine shared with the servers and the control
//! plane, it takes at most one core, and its own CPU share is reported next to the figures
//! (the Python client it replaces spent more CPU per call than the servers it measured).
//!
//! Speaks the protocol by hand (initialize, notifications/initialized, tools/call; a reply as
//! JSON or as an SSE stream): no SDK between the clock and the socket. Talks to 127.0.0.1 only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "MCP tool-call load generator (streamable HTTP)")]
struct Args {
    /// `name=url=pid[=token]`; the name picks the tool set (`kubemedic*`, `kubernetes-mcp-server`,
    /// `mcp-server-kubernetes`).
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    pod: String,
    /// Calls per cell (all clients together).
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Wall-clock cap per cell, seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    #[arg(long, default_value = "list,get,events,logs")]
    ops: String,
    #[arg(long, default_value = "1,16,64")]
    concurrency: String,
    /// Where the JSON results go.
    #[arg(long)]
    out: std::path::PathBuf,
    /// `name=pid` of another process whose CPU per call is reported too (the apiserver, etcd,
    /// nodesim): what a call costs the cluster, not only the server.
    #[arg(long = "also")]
    also: Vec<String>,
}

/// Linux's USER_HZ: the unit of utime/stime in `/proc/PID/stat` on every architecture kubemedic ships for.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 =
        fields.get(11).context("no utime")?.parse::<f64>()? + fields.get(12).context("no stime")?.parse::<f64>()?;
    Ok(ticks / TICKS_PER_SECOND)
}

fn rss_mib(pid: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: f64 = line.split_whitespace().nth(1).context("no VmRSS value")?.parse()?;
    Ok(kib / 1024.0)
}

/// The equivalent tool call of each server for each operation.
///
/// `list` is one call: kubemedic answers with its first page (100 items by default), the peers
/// with every pod. `list_all` gets every pod: kubemedic pages through with `limit: 500` and
/// `continue` (one measured sample = all its pages), the peers make their one call.
fn call_for(server: &str, op: &str, ns: &str, pod: &str) -> anyhow::Result<(&'static str, Value)> {
    let c = if server.starts_with("kubemedic") {
        match op {
            "list" => ("list_resources", json!({"kind": "Pod", "namespace": ns})),
            "list_all" => ("list_resources", json!({"kind": "Pod", "namespace": ns, "limit": 500})),
            "get" => ("get_resource", json!({"kind": "Pod", "namespace": ns, "name": pod})),
            "events" => ("events", json!({"namespace": ns})),
            "logs" => ("pod_logs", json!({"namespace": ns, "name": pod, "tail": 100})),
            _ => bail!("unknown operation {op}"),
        }
    } else if server == "kubernetes-mcp-server" {
        match op {
            "list" | "list_all" => ("pods_list_in_namespace", json!({"namespace": ns})),
            "get" => ("pods_get", json!({"namespace": ns, "name": pod})),
            "events" => ("events_list", json!({"namespace": ns})),
            "logs" => ("pods_log", json!({"namespace": ns, "name": pod, "tail": 100})),
            _ => bail!("unknown operation {op}"),
        }
    } else if server == "mcp-server-kubernetes" {
        match op {
            "list" | "list_all" => ("kubectl_get", json!({"resourceType": "pods", "namespace": ns, "output": "json"})),
            "get" => ("kubectl_get", json!({"resourceType": "pods", "namespace": ns, "name": pod, "output": "json"})),
            "events" => ("kubectl_get", json!({"resourceType": "events", "namespace": ns, "output": "json"})),
            "logs" => ("kubectl_logs", json!({"resourceType": "pod", "namespace": ns, "name": pod, "tail": 100})),
            _ => bail!("unknown operation {op}"),
        }
    } else {
        bail!("unknown server {server}")
    };
    Ok(c)
}

/// One MCP session over its own HTTP connection.
struct Session {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    id: Option<String>,
    version: String,
    next_id: u64,
}

impl Session {
    async fn open(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        // One connection per session: the pool of this client serves this session only.
        let http = reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(60)).build()?;
        let mut s = Self {
            http,
            url: url.to_owned(),
            token: token.map(str::to_owned),
            id: None,
            version: "2025-06-18".into(),
            next_id: 0,
        };
        let init = s
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "mcpbench", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await
            .context("initialize")?;
        if let Some(v) = init.pointer("/result/protocolVersion").and_then(Value::as_str) {
            s.version = v.to_owned();
        }
        let ack = s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).send().await?;
        if !ack.status().is_success() {
            bail!("notifications/initialized: HTTP {}", ack.status());
        }
        Ok(s)
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", &self.version)
            .body(body.to_string());
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(id) = &self.id {
            r = r.header("mcp-session-id", id);
        }
        r
    }

    /// A JSON-RPC request; the response message (with `result` or `error`).
    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut resp =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).send().await?;
        if !resp.status().is_success() {
            bail!("{method}: HTTP {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        if let Some(sid) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.id = Some(sid.to_owned());
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if !sse {
            return Ok(serde_json::from_slice(&resp.bytes().await?)?);
        }
        // An SSE stream: the message whose id is ours; then read the stream to its end so the
        // connection can carry the next call.
        let mut buf = Vec::new();
        let mut found = None;
        while let Some(chunk) = resp.chunk().await? {
            if found.is_some() {
                continue;
            }
            buf.extend_from_slice(&chunk);
            while let Some(end) = event_end(&buf) {
                let event: Vec<u8> = buf.drain(..end).collect();
                if let Some(msg) = sse_message(&event)
                    && msg.get("id").and_then(Value::as_u64) == Some(id)
                {
                    found = Some(msg);
                    break;
                }
            }
        }
        if found.is_none() {
            found = sse_message(&buf).filter(|m| m.get("id").and_then(Value::as_u64) == Some(id));
        }
        found.with_context(|| format!("{method}: the stream ended without a response"))
    }

    /// End the session on the server (HTTP DELETE), as a well-behaved client does: a server
    /// keeps an abandoned session until it times out, and that memory would count in its RSS.
    async fn close(self) {
        let Some(id) = &self.id else { return };
        let mut r = self.http.delete(&self.url).header("mcp-session-id", id);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let _ = r.send().await;
    }

    async fn call_tool(&mut self, tool: &str, args: &Value) -> anyhow::Result<Value> {
        self.request("tools/call", json!({"name": tool, "arguments": args})).await
    }

    /// One sample: a tool call, or every page of a kubemedic listing that has a `limit`.
    async fn sample(&mut self, tool: &str, args: &Value) -> anyhow::Result<Value> {
        let mut res = self.call_tool(tool, args).await?;
        if tool != "list_resources" || args.get("limit").is_none() {
            return Ok(res);
        }
        while !is_error(&res)
            && let Some(next) = res.pointer("/result/structuredContent/continue").and_then(Value::as_str)
        {
            let mut page = args.clone();
            page["continue"] = Value::String(next.to_owned());
            res = self.call_tool(tool, &page).await?;
        }
        Ok(res)
    }
}

/// Where the first complete SSE event in `buf` ends (after its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The JSON message in an SSE event's `data:` lines, if any.
fn sse_message(event: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(event).ok()?;
    let data: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data.join("\n")).ok()
}

fn is_error(msg: &Value) -> bool {
    msg.get("error").is_some() || msg.pointer("/result/isError").and_then(Value::as_bool) == Some(true)
}

fn text_of(msg: &Value) -> String {
    if let Some(e) = msg.get("error") {
        return e.to_string();
    }
    msg.pointer("/result/content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default()
}

struct Server {
    name: String,
    url: String,
    pid: String,
    token: Option<String>,
}

fn parse_server(spec: &str) -> anyhow::Result<Server> {
    let mut parts = spec.splitn(4, '=');
    let (Some(name), Some(url), Some(pid)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("--server must be name=url=pid[=token], got {spec}");
    };
    Ok(Server { name: name.into(), url: url.into(), pid: pid.into(), token: parts.next().map(str::to_owned) })
}

async fn run_cell(server: &Server, tool: &str, args: &Value, clients: usize, a: &Args) -> anyhow::Result<Value> {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        sessions.push(Session::open(&server.url, server.token.as_deref()).await?);
    }
    // One warm-up call per session (connection, caches); not measured.
    let mut first = Value::Null;
    for s in &mut sessions {
        first = s.sample(tool, args).await?;
        if is_error(&first) {
            break;
        }
    }
    if is_error(&first) {
        for s in sessions {
            s.close().await;
        }
        let text = text_of(&first);
        return Ok(json!({"error": format!("{tool} failed: {}", &text[..text.len().min(300)])}));
    }
    let bytes = text_of(&first).len();
    let left = Arc::new(AtomicUsize::new(a.calls));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(a.calls)));
    let errors = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let also: Vec<(&str, &str)> = a.also.iter().filter_map(|s| s.split_once('=')).collect();
    let also0 = also.iter().map(|(_, pid)| cpu_seconds(pid).unwrap_or(0.0)).collect::<Vec<_>>();
    let (server_cpu0, own_cpu0) = (cpu_seconds(&server.pid)?, cpu_seconds("self")?);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut s in sessions {
        let (left, latencies, errors) = (left.clone(), latencies.clone(), errors.clone());
        let (tool, args) = (tool.to_owned(), args.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline
                && left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
            {
                let t0 = Instant::now();
                let ok = s.sample(&tool, &args).await.is_ok_and(|r| !is_error(&r));
                let dt = t0.elapsed().as_secs_f64();
                latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(dt);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            s
        });
    }
    let mut done_sessions = Vec::with_capacity(clients);
    while let Some(done) = tasks.join_next().await {
        done_sessions.push(done?);
    }
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&server.pid)? - server_cpu0;
    let own_cpu = cpu_seconds("self")? - own_cpu0;
    let also_cpu: Vec<(&str, f64)> =
        also.iter().zip(also0).map(|((name, pid), t0)| (*name, cpu_seconds(pid).unwrap_or(t0) - t0)).collect();
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    lat.sort_by(f64::total_cmp);
    let n = lat.len();
    if n == 0 {
        bail!("no call finished");
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let q = |p: f64| lat[((p * n as f64) as usize).min(n - 1)] * 1000.0;
    #[allow(clippy::cast_precision_loss)]
    let per_call = |cpu: f64| cpu * 1000.0 / n as f64;
    for s in done_sessions {
        s.close().await;
    }
    let others: serde_json::Map<String, Value> =
        also_cpu.iter().map(|(name, cpu)| ((*name).to_owned(), json!(per_call(*cpu)))).collect();
    #[allow(clippy::cast_precision_loss)]
    Ok(json!({
        "others_cpu_ms_per_call": others,
        "calls": n,
        "errors": errors.load(Ordering::Relaxed),
        "rps": n as f64 / wall,
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "mean_ms": lat.iter().sum::<f64>() * 1000.0 / n as f64,
        "bytes": bytes,
        "wall_s": wall,
        "server_cpu_ms_per_call": per_call(server_cpu),
        "server_cpu_share": server_cpu / wall,
        "client_cpu_ms_per_call": per_call(own_cpu),
        "client_cpu_share": own_cpu / wall,
    }))
}

async fn run(a: Args) -> anyhow::Result<()> {
    let mut results = BTreeMap::new();
    for spec in &a.servers {
        let server = parse_server(spec)?;
        let mut cells = serde_json::Map::new();
        let rss_before = rss_mib(&server.pid)?;
        for op in a.ops.split(',') {
            let (tool, args) = call_for(&server.name, op, &a.namespace, &a.pod)?;
            for c in a.concurrency.split(',') {
                let c: usize = c.trim().parse().with_context(|| format!("concurrency {c}"))?;
                let cell =
                    run_cell(&server, tool, &args, c, &a).await.unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
                eprintln!("{} {op} c={c}: {cell}", server.name);
                cells.insert(format!("{op}@{c}"), cell);
            }
        }
        results.insert(
            server.name.clone(),
            json!({"rss_before_mib": rss_before, "cells": cells, "rss_after_mib": rss_mib(&server.pid)?}),
        );
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&results)?).with_context(|| format!("{}", a.out.display()))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // reqwest is built without a TLS provider of its own (the workspace uses ring); no TLS is
    // spoken here, but a client cannot be built without one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One thread: the generator takes at most one core of the machine it shares with the servers.
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_and_decoded() {
        let stream = b"id: 0\nretry: 3000\ndata:\n\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        let first = event_end(stream).unwrap();
        assert_eq!(sse_message(&stream[..first]), None, "a priming event carries no message");
        let rest = &stream[first..];
        let second = event_end(rest).unwrap();
        assert_eq!(sse_message(&rest[..second]).unwrap()["id"], 7);
        assert_eq!(event_end(b"data: {\"id\":1}\r\n\r\n"), Some(18));
        assert_eq!(event_end(b"data: {\"id\":1}\n"), None, "an event without its blank line is not complete");
    }

    #[test]
    fn errors_are_told_apart_from_results() {
        assert!(is_error(&json!({"id": 1, "error": {"code": -32602, "message": "bad"}})));
        assert!(is_error(&json!({"id": 1, "result": {"isError": true, "content": []}})));
        assert!(!is_error(&json!({"id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}})));
        assert_eq!(text_of(&json!({"result": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}})), "ab");
    }

    #[test]
    fn cpu_time_of_this_process_is_read() {
        // Spin until the counter has moved by 50 ms of CPU; a counter that does not move fails.
        let before = cpu_seconds("self").unwrap();
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while cpu_seconds("self").unwrap() - before < 0.05 {
            assert!(Instant::now() < give_up, "CPU time of this process did not move");
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(rss_mib("self").unwrap() > 1.0);
    }
}

//! The real `kubemedic run` binary as a child process: started from a config of the test's
//! own, waited until ready, asked over its HTTP API and MCP, SIGKILLed and restarted over the
//! same state.
//!
//! The binary is the one `cargo build --workspace` puts next to the test executables.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bearer token of the approver the helpers use; put [`token_entry`] of it in `auth.tokens`.
pub const APPROVER_TOKEN: &str = "reliability-approver-token-0123456789";

/// The repository root (read at run time, so a shared build cache cannot point at another clone).
pub fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `kubemedic` binary next to the running test executable, or `KUBEMEDIC_BIN` when set
/// (a build cache shared by several checkouts holds whichever binary was built last).
pub fn bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KUBEMEDIC_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("kubemedic");
    assert!(bin.exists(), "{} not built: run `cargo build --workspace` (tests/run.sh does)", bin.display());
    bin
}

/// An `auth.tokens` entry: `token` hashed, with `role`.
pub fn token_entry(name: &str, token: &str, role: &str) -> Value {
    serde_json::json!({ "name": name, "sha256": hex::encode(Sha256::digest(token.as_bytes())), "role": role })
}

/// A running `kubemedic run`; SIGKILLed on drop.
pub struct Daemon {
    child: Option<tokio::process::Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    starts: u32,
    /// `http://127.0.0.1:PORT` (from `http.listen` in the config).
    pub url: String,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

impl Daemon {
    /// Write `config` to `dir/config.yaml` and start the daemon on it, with `env` added;
    /// returns once `/readyz` answers 200 (panics after 60 s with the log's tail).
    pub async fn start(dir: &Path, config: &Value, env: &[(&str, &str)]) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.yaml"), serde_yaml_ng::to_string(config).unwrap()).unwrap();
        let listen = config["http"]["listen"].as_str().expect("config http.listen");
        let mut d = Daemon {
            child: None,
            dir: dir.to_owned(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            starts: 0,
            url: format!("http://{listen}"),
            http: reqwest::Client::new(),
        };
        d.restart().await;
        d
    }

    /// Start (again) on the same config and state; waits until ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = tokio::process::Command::new(bin());
        cmd.args(["run", "--config"])
            .arg(self.dir.join("config.yaml"))
            .env("RUST_LOG", "info,kubemedic=debug,rmcp=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start kubemedic run"));
        let started = std::time::Instant::now();
        loop {
            if self.get_ok("/readyz").await {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("kubemedic run exited ({status}) before ready:\n{}", self.log_tail(40));
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("kubemedic run not ready after 60s:\n{}", self.log_tail(40));
            }
            tokio::time::sleep(crate::wait::POLL).await;
        }
    }

    /// SIGKILL, as a crash would; waits until the process is gone.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the daemon is not running");
        child.kill().await.expect("SIGKILL kubemedic run");
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// The stderr log of the current (or last) start.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("daemon-{}.log", self.starts))
    }

    /// The last `lines` lines of every start's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let text = std::fs::read_to_string(self.dir.join(format!("daemon-{n}.log"))).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- daemon start {n} ---\n"));
            out.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            out.push('\n');
        }
        out
    }

    async fn get_ok(&self, path: &str) -> bool {
        let resp = self.http.get(format!("{}{path}", self.url)).timeout(Duration::from_secs(5)).send().await;
        resp.is_ok_and(|r| r.status().is_success())
    }

    /// `/healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        self.get_ok("/healthz").await
    }

    /// `GET /api/proposals/{id}` as the approver.
    pub async fn proposal(&self, id: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/api/proposals/{id}", self.url))
            .bearer_auth(APPROVER_TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// `POST /api/proposals/{id}/approve` as the approver; returns the HTTP status.
    pub async fn approve(&self, id: &str) -> u16 {
        let resp = self
            .http
            .post(format!("{}/api/proposals/{id}/approve", self.url))
            .bearer_auth(APPROVER_TOKEN)
            .send()
            .await
            .expect("POST approve");
        resp.status().as_u16()
    }

    /// Call an MCP tool over streamable HTTP as the approver; its structured result.
    pub async fn mcp(&self, tool: &str, args: Value) -> Result<Value, String> {
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", self.url))
            .auth_header(APPROVER_TOKEN.to_owned());
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())?;
        let params =
            CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().cloned().unwrap_or_default());
        let result = client.call_tool(params).await.map_err(|e| e.to_string());
        let _ = client.cancel().await;
        let result = result?;
        if result.is_error == Some(true) {
            return Err(format!("{result:?}"));
        }
        result.structured_content.ok_or_else(|| "no structured content".to_owned())
    }

    /// Proposals listed over MCP (`list_proposals`), optionally in one state.
    pub async fn proposals(&self, state: Option<&str>) -> Option<Vec<Value>> {
        let args = match state {
            Some(s) => serde_json::json!({ "state": s }),
            None => serde_json::json!({}),
        };
        let out = self.mcp("list_proposals", args).await.ok()?;
        out["proposals"].as_array().cloned()
    }

    /// Incidents listed over MCP (`list_incidents`) in `namespace`.
    pub async fn incidents(&self, namespace: &str) -> Option<Vec<Value>> {
        let out = self.mcp("list_incidents", serde_json::json!({ "namespace": namespace, "limit": 200 })).await.ok()?;
        out["incidents"].as_array().cloned()
    }
}

/// The state of a proposal as `GET /api/proposals/{id}` returns it.
pub fn state_of(p: &Value) -> &str {
    p["state"].as_str().or_else(|| p["proposal"]["state"].as_str()).unwrap_or_default()
}

//! Attacks on the daemon's HTTP listener, against `kubemedic run` on the shared control plane:
//!
//! - thousands of slow clients (headers never finished, or a body trickled a byte a second)
//!   are held while Alertmanager webhooks and MCP calls are still answered, and every one of
//!   them is closed by the header or body deadline;
//! - beyond `http.max_connections` the daemon holds no more descriptors: the rest wait in the
//!   kernel's backlog, and a real request gets through once the deadlines free a slot;
//! - an Alertmanager webhook without a token on a non-loopback listener: `kubemedic run`
//!   refuses to start (exit 64) with a message that says what to set.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::daemon::{Daemon, bin, free_port, repo_root, token_entry};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = e2e::daemon::APPROVER_TOKEN;

/// The soft limit on open files of this process (the daemon child inherits it).
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn config(dir: &std::path::Path, ns: &str, port: u16, http: Value) -> Value {
    let mut http = http;
    http["listen"] = json!(format!("127.0.0.1:{port}"));
    json!({
        "cluster": { "name": "listeners", "namespaces": [ns] },
        "rules_dir": dir.join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.join("state"),
        "http": http,
        "auth": { "tokens": [token_entry("approver", TOKEN, "approver")] },
    })
}

fn webhook(ns: &str) -> Value {
    json!({
        "version": "4", "receiver": "kubemedic", "status": "firing", "groupKey": "{}:{alertname=\"SlowClients\"}",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "SlowClients", "severity": "warning", "namespace": ns, "deployment": "web" },
            "annotations": { "summary": "held connections" },
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.invalid/graph", "fingerprint": "00000000000000aa",
        }],
    })
}

/// How a slow client misbehaves.
#[derive(Clone, Copy)]
enum Slow {
    /// Sends part of the headers, then one more header byte a second, never the blank line.
    Headers,
    /// Sends complete headers announcing a large body, then one body byte a second.
    Body,
}

/// One slow client: connects, misbehaves until the server closes the connection; returns how
/// long the server held it, or `None` if it was still open after `give_up`.
async fn slow_client(addr: SocketAddr, how: Slow, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let started = Instant::now();
    let head: &[u8] = match how {
        Slow::Headers => b"POST /alerts/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        Slow::Body => {
            b"POST /alerts/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        }
    };
    if stream.write_all(head).await.is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + give_up;
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                // The server answered (408) or closed: either way the slot is given back once closed.
                Ok(n) if n > 0 => continue,
                _ => return Some(started.elapsed()),
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b" ").await.is_err() {
                    return Some(started.elapsed());
                }
            }
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// Start `count` slow clients, half of each kind.
async fn flood(addr: SocketAddr, count: usize, give_up: Duration) -> Vec<tokio::task::JoinHandle<Option<Duration>>> {
    (0..count)
        .map(|i| {
            let how = if i % 2 == 0 { Slow::Headers } else { Slow::Body };
            tokio::spawn(slow_client(addr, how, give_up))
        })
        .collect()
}

async fn post_alert(http: &reqwest::Client, url: &str, ns: &str, within: Duration) -> Result<Value, String> {
    let resp = http
        .post(format!("{url}/alerts/alertmanager"))
        .json(&webhook(ns))
        .timeout(within)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_slow_clients_are_held_and_closed_while_alerts_and_mcp_are_served() {
    e2e::install_crypto();
    let limit = open_files_limit();
    let slow = 3000.min(limit.saturating_sub(600));
    assert!(slow >= 1500, "RLIMIT_NOFILE {limit} too low for this test: raise it (ulimit -n 8192)");
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "listeners").await;
    let dir = std::env::temp_dir().join(e2e::unique_name("km-listeners"));
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    let port = free_port();
    let http_limits =
        json!({ "max_connections": 4096, "header_read_timeout_seconds": 6, "body_read_timeout_seconds": 6 });
    let daemon = Daemon::start(&dir, &config(&dir, &ns.name, port, http_limits), &[]).await;
    let pid = daemon.pid().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = open_fds(pid);

    let started = Instant::now();
    let clients = flood(addr, slow, Duration::from_secs(40)).await;
    // Wait until the daemon holds (nearly) all of them.
    let held = loop {
        let n = open_fds(pid).saturating_sub(before);
        if n >= slow * 9 / 10 || started.elapsed() > Duration::from_secs(5) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(held >= slow * 9 / 10, "the daemon holds only {held} of {slow} slow connections");

    // Real clients are served at once while the slow ones are held.
    let http = reqwest::Client::new();
    let t = Instant::now();
    let answer = post_alert(&http, &daemon.url, &ns.name, Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let tools = daemon.mcp("list_incidents", json!({ "namespace": ns.name })).await;
    assert!(tools.is_ok(), "MCP call failed while slow clients were held: {tools:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "real requests took {:?}", t.elapsed());
    let still = open_fds(pid).saturating_sub(before);
    assert!(still >= slow * 9 / 10, "slow connections were dropped before their deadline ({still} left)");

    // Every slow client is closed by its deadline (6 s, plus scheduling slack), none outlives it.
    let mut longest = Duration::ZERO;
    for c in clients {
        let held = c.await.unwrap().expect("a slow client was still connected after 40 s");
        longest = longest.max(held);
    }
    assert!(longest < Duration::from_secs(20), "a slow client was held {longest:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = open_fds(pid).saturating_sub(before);
    assert!(after < 50, "{after} descriptors still open after the flood");
    assert!(post_alert(&http, &daemon.url, &ns.name, Duration::from_secs(5)).await.is_ok());
    drop(daemon);
    ns.delete(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_the_daemon_holds_no_more_descriptors() {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "listeners-cap").await;
    let dir = std::env::temp_dir().join(e2e::unique_name("km-listeners-cap"));
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    let port = free_port();
    const CAP: usize = 200;
    let http_limits =
        json!({ "max_connections": CAP, "header_read_timeout_seconds": 3, "body_read_timeout_seconds": 3 });
    let daemon = Daemon::start(&dir, &config(&dir, &ns.name, port, http_limits), &[]).await;
    let pid = daemon.pid().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = open_fds(pid);

    let clients = flood(addr, 800, Duration::from_secs(60)).await;
    let mut peak = 0;
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(4) {
        peak = peak.max(open_fds(pid).saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(peak >= CAP * 9 / 10, "the cap was never reached (peak {peak})");
    // The cap, plus a few for the daemon's own work (apiserver watches, the state store).
    assert!(peak <= CAP + 20, "the daemon held {peak} descriptors with max_connections {CAP}");

    // A real request waits its turn in the backlog and is served once deadlines free slots.
    let http = reqwest::Client::new();
    let answer = post_alert(&http, &daemon.url, &ns.name, Duration::from_secs(40)).await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    for c in clients {
        c.await.unwrap().expect("a slow client was still connected after 60 s");
    }
    drop(daemon);
    ns.delete(&client).await;
}

#[test]
fn an_unauthenticated_webhook_on_a_non_loopback_listener_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("config.yaml");
    let state = dir.path().join("state");
    std::fs::write(&path, format!("state_dir: {}\nhttp:\n  listen: \"0.0.0.0:{port}\"\n", state.display())).unwrap();
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .env("KUBECONFIG", e2e::kubeconfig_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("alerts.bearer_token_sha256") && stderr.contains("allow_unauthenticated"), "{stderr}");
    // The refusal comes before any port is bound or any state is written.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!state.exists(), "state written before the config was refused");
}

//! Reliability of the real `kubemedic run` binary under an alert storm: 10,000
//! Alertmanager alerts (batches of 100, as Alertmanager's webhook sends them, many
//! duplicates of 40 fingerprints that appear one after another) while its own nats-server (JetStream: incident
//! store and queue) is killed and restarted mid-storm. The sender retries non-2xx
//! answers as Alertmanager does. Nothing may be lost: every distinct fingerprint
//! becomes exactly one incident; the daemon stays up (healthz) with bounded memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, token_entry};
use serde_json::{Value, json};

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const TOTAL_ALERTS: usize = 10_000;
const BATCH: usize = 100;
const FINGERPRINTS: usize = 40;
const SENDERS: usize = 4;

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// Our own nats-server with JetStream on disk, so it can be restarted with its data.
fn start_nats(port: u16, dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("nats.log")).unwrap();
    let child = Command::new(NATS_SERVER)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start nats-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

/// One Alertmanager webhook body with alerts `first..first+BATCH`, all firing.
fn webhook(ns: &str, first: usize) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let ts = |secs: i64| k8s_openapi::jiff::Timestamp::from_second(secs).unwrap().to_string();
    let alerts: Vec<Value> = (first..first + BATCH)
        .map(|i| {
            // Workloads appear in order through the storm (250 alerts each), so some first
            // fire while nats-server is down.
            let workload = format!("storm-{}", i * FINGERPRINTS / TOTAL_ALERTS);
            json!({
                "status": "firing",
                "labels": {
                    "alertname": "KubemedicStorm",
                    "severity": "warning",
                    "namespace": ns,
                    "deployment": workload,
                    "pod": format!("{workload}-5d9c8f7b6-x{:04}", i % 97),
                },
                "annotations": { "summary": format!("storm alert {i}") },
                "startsAt": ts(now - 60),
                "endsAt": ts(now + 3600),
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": format!("{:016x}", i * FINGERPRINTS / TOTAL_ALERTS),
            })
        })
        .collect();
    json!({
        "version": "4",
        "receiver": "kubemedic",
        "status": "firing",
        "groupKey": format!("{{}}:{{alertname=\"KubemedicStorm\", batch=\"{first}\"}}"),
        "truncatedAlerts": 0,
        "groupLabels": { "alertname": "KubemedicStorm" },
        "commonLabels": { "alertname": "KubemedicStorm" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": alerts,
    })
}

#[tokio::test]
async fn alert_storm_with_nats_restart_loses_nothing_and_the_daemon_stays_up() {
    assert!(Path::new(NATS_SERVER).exists(), "{NATS_SERVER} missing (apt-get install nats-server)");
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "storm").await;
    let dir = std::env::temp_dir().join(e2e::unique_name("km-storm"));
    std::fs::create_dir_all(dir.join("rules")).unwrap();

    // One rule for the storm's alert, without a rate limit that would (correctly) hold back incidents.
    std::fs::write(
        dir.join("rules/storm.yaml"),
        "rules:\n  - name: storm\n    match:\n      source: [alertmanager]\n      reasons: [KubemedicStorm]\n    \
         workflow:\n      prompt: triage-alert\n      arguments:\n        alertname: \"{{ reason }}\"\n        \
         namespace: \"{{ namespace }}\"\n        severity: \"{{ severity }}\"\n        summary: \"{{ message }}\"\n    \
         allow_mutations: false\n    cooldown: 1h\n",
    )
    .unwrap();

    let nats_port = free_port();
    let mut nats = start_nats(nats_port, &dir);
    let port = free_port();
    let config = json!({
        "cluster": { "name": "storm", "namespaces": [ns.name] },
        "rules_dir": dir.join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.join("state"),
        "http": { "listen": format!("127.0.0.1:{port}") },
        "auth": { "tokens": [token_entry("approver", APPROVER_TOKEN, "approver")] },
        // The test reads all 40 incidents in one list_incidents call; the default result
        // budget (sized for a model's context) would cut it.
        "mcp": { "max_result_bytes": 1_000_000 },
        "nats": {
            "url": format!("nats://127.0.0.1:{nats_port}"),
            "incident_stream": "STORM_INCIDENTS",
            "incident_subject": "storm.incidents",
            "incident_consumer": "storm-agents",
            "leader_election": { "lease_name": ns.name, "lease_namespace": ns.name },
        },
    });
    let mut daemon = Daemon::start(&dir.join("daemon"), &config, &[("RUST_LOG", "info,rmcp=warn")]).await;
    let pid = daemon.pid().expect("daemon pid");
    let url = daemon.url.clone();
    let http = reqwest::Client::new();
    let rss_before = rss_mib(pid);

    // The storm: SENDERS concurrent senders, each retrying a batch on any non-2xx or
    // connection error (Alertmanager's behaviour) for up to 60 s.
    let started = Instant::now();
    let batches: Vec<usize> = (0..TOTAL_ALERTS).step_by(BATCH).collect();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u32)>();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(batches.into_iter()));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (queue, http, url, ns, done_tx) =
            (queue.clone(), http.clone(), url.clone(), ns.name.clone(), done_tx.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(first) = queue.lock().await.next() else { break };
                let body = webhook(&ns, first);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut retries = 0u32;
                loop {
                    let resp = http.post(format!("{url}/alerts/alertmanager")).json(&body).send().await;
                    match resp {
                        Ok(r) if r.status().is_success() => break,
                        other => {
                            let what = match other {
                                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                                Err(e) => e.to_string(),
                            };
                            assert!(Instant::now() < deadline, "batch {first} never accepted within 60s: {what}");
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                }
                done_tx.send((first, retries)).unwrap();
            }
        }));
    }
    drop(done_tx);

    // Kill nats-server after a third of the batches, restart it (same port, same data) 2 s later,
    // while watching healthz and RSS throughout.
    let (mut delivered, mut retries, mut peak_rss, mut restarted) = (0usize, 0u32, rss_before, false);
    while let Some((_, r)) = done_rx.recv().await {
        delivered += 1;
        retries += r;
        peak_rss = peak_rss.max(rss_mib(pid));
        if !restarted && delivered == TOTAL_ALERTS / BATCH / 3 {
            drop(nats);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let health = http.get(format!("{url}/healthz")).send().await.expect("healthz while NATS is down");
            assert!(health.status().is_success(), "healthz while NATS is down: {}", health.status());
            nats = start_nats(nats_port, &dir);
            restarted = true;
        }
    }
    for s in senders {
        s.await.expect("sender");
    }
    let storm_secs = started.elapsed().as_secs_f64();
    assert_eq!(delivered, TOTAL_ALERTS / BATCH, "every batch accepted");
    assert!(restarted, "nats-server was restarted mid-storm");

    // Every distinct fingerprint becomes exactly one incident.
    let incidents = e2e::wait::until(Duration::from_secs(60), "one incident per storm workload", || async {
        daemon.incidents(&ns.name).await.filter(|list| list.len() >= FINGERPRINTS)
    })
    .await;
    let mut names: Vec<String> =
        incidents.iter().map(|i| i["workload"]["name"].as_str().unwrap_or_default().to_owned()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..FINGERPRINTS).map(|i| format!("storm-{i}")).collect();
    expected.sort();
    let listing: Vec<String> = incidents
        .iter()
        .map(|i| format!("{} {} {} {}", i["id"], i["workload"]["name"], i["fingerprint"], i["state"]))
        .collect();
    assert_eq!(names, expected, "exactly one incident per fingerprint, none lost, none doubled: {listing:#?}");
    let mut fingerprints: Vec<&str> = incidents.iter().filter_map(|i| i["fingerprint"].as_str()).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), FINGERPRINTS, "distinct fingerprints: {incidents:#?}");

    // Still up, memory bounded.
    assert!(daemon.running(), "kubemedic run exited during the storm");
    let health = http.get(format!("{url}/healthz")).send().await.expect("healthz after the storm");
    assert!(health.status().is_success(), "healthz after the storm: {}", health.status());
    let rss_after = rss_mib(pid);
    eprintln!(
        "storm: {TOTAL_ALERTS} alerts in {} webhooks in {storm_secs:.1}s ({retries} retried deliveries); \
         RSS before {rss_before:.1} MiB, peak {peak_rss:.1} MiB, after {rss_after:.1} MiB",
        TOTAL_ALERTS / BATCH
    );
    assert!(peak_rss < rss_before + 256.0, "RSS grew from {rss_before:.1} to {peak_rss:.1} MiB during the storm");

    drop(daemon);
    drop(nats);
    ns.delete(&client).await;
    let _ = std::fs::remove_dir_all(&dir);
}

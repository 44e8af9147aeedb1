//! Intake benchmark (not a timed test): prints figures for the README.
//!
//! ```text
//! cargo bench -p kubemedic --bench intake                # alert intake only
//! KUBECONFIG=... cargo bench -p kubemedic --bench intake # + pods against a real apiserver
//! ```
//!
//! 1. Memory while watching `BENCH_PODS` (default 3,000) pods: resident set of this process
//!    (the daemon's intake: watchers, reflector stores, tracker) before and after the
//!    watchers have listed them. The pods use a scheduler that does not exist, so nothing
//!    else touches them.
//! 2. Time from a pod's failing status write (through the apiserver) to its incident being
//!    handed to the agent queue, one pod at a time: p50 / p99 / max.
//! 3. Sustained Alertmanager intake over HTTP on 127.0.0.1: webhooks of 50 alerts about
//!    200 workloads, 4 concurrent senders, until the tracker has folded every alert.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kubemedic::alerts::{self, AlertsConfig, AlertsState};
use kubemedic::bus::IncidentQueue;
use kubemedic::cluster::{Cluster, Scope};
use kubemedic::incident::Tracker;
use kubemedic::rules::RuleSet;
use kubemedic::signal::Signal;
use kubemedic::store::redb::RedbStore;
use kubemedic::watch::{self, WatchConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const RULES: &str = r#"
rules:
  - name: bench-cluster
    match: {source: [cluster]}
    workflow: {prompt: diagnose-workload, arguments: {namespace: "{{namespace}}", kind: "{{kind}}", name: "{{name}}"}}
  - name: bench-alerts
    match: {source: [alertmanager]}
    workflow: {prompt: triage-alert, arguments: {alertname: "{{reason}}", namespace: "{{namespace}}"}}
"#;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Intake {
    tracker: Arc<Tracker>,
    signals: mpsc::Sender<Signal>,
    queue: IncidentQueue,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

fn intake() -> Intake {
    let dir = tempfile::tempdir().unwrap();
    let rules = RuleSet::from_sources(&[(PathBuf::from("bench.yaml"), RULES.into())], None).unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    // No dedup window: every incident the tracker opens reaches the queue, as with a channel.
    let queue = IncidentQueue::local(100_000, Duration::ZERO);
    let tracker = Arc::new(Tracker::new(Arc::new(rules), store, queue.clone()));
    let (signals, rx) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    tokio::spawn(tracker.clone().run(rx, shutdown.clone()));
    Intake { tracker, signals, queue, shutdown, _dir: dir }
}

fn bench_pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("bench-{i:05}"), "labels": {"app": "bench"}},
        "spec": {"schedulerName": "kubemedic-bench-none", "containers": [{"name": "c", "image": "registry.local/bench:1"}]}
    }))
    .unwrap()
}

async fn cluster_bench(client: Client, pods: usize, samples: usize) {
    let ns = format!("bench-intake-{}", std::process::id());
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns_obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    ns_api.create(&PostParams::default(), &ns_obj).await.expect("create bench namespace");
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = api.clone();
            async move {
                for attempt in 0..5 {
                    match api.create(&PostParams::default(), &bench_pod(i)).await {
                        Ok(_) => return,
                        Err(e) if attempt == 4 => panic!("create pod {i}: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("created {pods} pods in {:.1} s", started.elapsed().as_secs_f64());

    let before = rss_mib();
    let intake = intake();
    let scope = Scope { namespaces: vec![ns.clone()], exclude: Vec::new(), kinds: Vec::new() };
    let cluster = Cluster { name: "bench".into(), client: client.clone(), scope };
    let listed = Instant::now();
    let handle = watch::spawn(cluster, &WatchConfig::default(), intake.signals.clone(), intake.shutdown.child_token())
        .expect("start watchers");
    handle.ready().await;
    let list_time = listed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_mib();
    let stored = handle.cache().pods.len();

    let mut latencies = Vec::with_capacity(samples);
    let status = serde_json::json!({"status": {"phase": "Pending", "containerStatuses": [{
        "name": "c", "image": "registry.local/bench:1", "imageID": "", "ready": false, "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
    for i in 0..samples.min(pods) {
        let name = format!("bench-{i:05}");
        let t0 = Instant::now();
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("write pod status");
        loop {
            let inc = tokio::time::timeout(Duration::from_secs(30), intake.queue.next())
                .await
                .unwrap_or_else(|_| panic!("no incident for {name} within 30s"))
                .expect("queue open")
                .incident;
            if inc.workload.name == name {
                latencies.push(t0.elapsed());
                break;
            }
        }
    }
    latencies.sort();
    let stats = intake.tracker.stats().snapshot();
    intake.shutdown.cancel();
    handle.join().await;
    let _ = ns_api.delete(&ns, &DeleteParams::background()).await;

    println!();
    println!("memory while watching {stored} pods (plus the other kinds) in one namespace:");
    println!(
        "  RSS before watch {before:.1} MiB, after list {after:.1} MiB (+{:.1} MiB); list took {:.1} s",
        after - before,
        list_time.as_secs_f64()
    );
    println!("pod failing status write -> incident queued ({} samples, sequential):", latencies.len());
    println!(
        "  p50 {}   p99 {}   max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  tracker: {} signals, {} incidents, {} dropped",
        stats.signals_total, stats.incidents_total, stats.dropped_total
    );
}

fn webhook(batch: usize, size: usize, workloads: usize) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = (0..size)
        .map(|j| {
            let w = (batch * size + j) % workloads;
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "severity": "warning",
                    "pod": format!("svc{w}-7d9f8b6c5-{:05}", j % 100), "deployment": format!("svc{w}")},
                "annotations": {"summary": "crash looping"},
                "startsAt": "2026-11-24T12:22:16.741913038Z", "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("{w:016x}")
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": "4", "status": "firing", "receiver": "kubemedic",
        "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "alerts": alerts}))
    .unwrap()
}

async fn alert_bench(webhooks: usize) {
    let size = 50;
    let workloads = 200;
    let intake = intake();
    let state = AlertsState::new("bench", AlertsConfig::default(), intake.signals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), alerts::PATH);
    tokio::spawn(alerts::serve(listener, state, intake.shutdown.child_token()));
    let bodies: Vec<bytes::Bytes> = (0..webhooks).map(|b| webhook(b, size, workloads).into()).collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(8).build().unwrap();
    let total = (webhooks * size) as u64;
    let started = Instant::now();
    futures::stream::iter(bodies)
        .map(|body| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let resp = http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let stats = intake.tracker.stats();
    while stats.signals_total.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let s = stats.snapshot();
    intake.shutdown.cancel();
    println!();
    println!("alert intake over HTTP ({webhooks} webhooks x {size} alerts about {workloads} workloads, 4 senders):");
    println!(
        "  {total} alerts in {:.2} s = {:.0} alerts/s; {} incidents, {} folded, {} dropped",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        s.incidents_total,
        s.folded_total,
        s.dropped_total
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: BTreeMap<String, String> = std::env::vars().collect();
    let pods: usize = args.get("BENCH_PODS").and_then(|v| v.parse().ok()).unwrap_or(3000);
    let samples: usize = args.get("BENCH_SAMPLES").and_then(|v| v.parse().ok()).unwrap_or(200);
    let webhooks: usize = args.get("BENCH_WEBHOOKS").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("kubemedic intake benchmark ({} CPUs)", std::thread::available_parallelism().map_or(0, |n| n.get()));
        if std::env::var_os("KUBECONFIG").is_some() {
            let client = Client::try_default().await.expect("client from KUBECONFIG");
            cluster_bench(client, pods, samples).await;
        } else {
            println!("KUBECONFIG not set: skipping the pod latency and memory figures");
        }
        alert_bench(webhooks).await;
    });
}

//! Two replicas: each incident is diagnosed once across replicas through the
//! JetStream work queue on a real nats-server (`KUBEMEDIC_TEST_NATS_URL`),
//! and leadership (a real coordination.k8s.io Lease on the control plane)
//! moves to the other replica when the leader dies.
//!
//! Failover bound stated and checked here: with lease 4 s and retry 1 s, a
//! leader that dies without releasing is replaced within lease + retry + 1 s
//! of slack = 6 s; one that shuts down cleanly (releases) within retry + 1 s
//! of slack = 2 s. (Defaults: 15 s lease, 2 s retry → 17 s and 2 s.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubemedic::bus::{Enqueued, IncidentQueue, NatsConfig};
use kubemedic::incident::{Incident, fingerprint};
use kubemedic::leader::{LeaderConfig, LeaderElector, while_leader};
use kubemedic::signal::WorkloadRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn nats_url() -> String {
    std::env::var("KUBEMEDIC_TEST_NATS_URL")
        .expect("KUBEMEDIC_TEST_NATS_URL is not set: run tests/run.sh (it starts nats-server -js)")
}

/// One replica's copy of the incident for `workload` (its own id, the shared fingerprint).
fn incident(workload: &str) -> Incident {
    let w = WorkloadRef::new("Deployment", "shop", workload);
    let now = "2026-11-25T20:00:00Z";
    serde_json::from_value(serde_json::json!({
        "id": e2e::unique_name("incident"),
        "fingerprint": fingerprint("e2e", &w, "CrashLoopBackOff"),
        "cluster": "e2e", "workload": w, "reason": "CrashLoopBackOff", "rule": "crashloop",
        "prompt": "diagnose-workload", "allow_mutations": true, "status": "open",
        "first_seen": now, "last_seen": now, "count": 1, "summary": null,
        "first_signal": {"source": "alertmanager", "status": "firing", "reason": "CrashLoopBackOff",
            "cluster": "e2e", "object": w, "workload": w, "severity": "critical", "observed_at": now}
    }))
    .expect("incident JSON")
}

async fn replica_queue(config: &NatsConfig) -> IncidentQueue {
    let client = kubemedic::bus::connect(config).await.expect("connect to nats-server");
    IncidentQueue::nats(client, config).await.expect("incident queue")
}

#[tokio::test]
async fn each_incident_is_diagnosed_once_across_two_replicas() {
    e2e::install_crypto();
    let tag = e2e::unique_name("q").replace('-', "");
    let config = NatsConfig {
        incident_stream: format!("E2E_{tag}"),
        incident_subject: format!("kubemedic.work.e2e.{tag}"),
        incident_consumer: format!("diagnose-{tag}"),
        ack_wait_seconds: 2,
        ..NatsConfig::new(nats_url())
    };
    let a = replica_queue(&config).await;
    let b = replica_queue(&config).await;

    // Both replicas receive the same 20 alerts (as Alertmanager sends to every replica).
    let names: Vec<String> = (0..20).map(|i| format!("app-{i}")).collect();
    for name in &names {
        assert_eq!(a.enqueue(&incident(name)).await.unwrap(), Enqueued::Queued, "{name}");
        assert_eq!(b.enqueue(&incident(name)).await.unwrap(), Enqueued::Duplicate, "{name}");
    }

    // Both replicas diagnose from the shared consumer.
    let diagnosed: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let cancel = CancellationToken::new();
    let mut workers = Vec::new();
    for (replica, queue) in [("a", a.clone()), ("b", b.clone())] {
        let (diagnosed, cancel) = (diagnosed.clone(), cancel.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    () = cancel.cancelled() => return,
                    d = queue.next() => d.expect("next incident"),
                };
                tokio::time::sleep(Duration::from_millis(30)).await; // the diagnosis
                diagnosed.lock().unwrap().push((replica, delivery.incident.workload.name.clone()));
                delivery.ack().await.expect("ack");
            }
        }));
    }
    let start = Instant::now();
    while diagnosed.lock().unwrap().len() < names.len() {
        assert!(start.elapsed() < Duration::from_secs(30), "only {:?} diagnosed", diagnosed.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Longer than ack_wait: nothing acked comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    for w in workers {
        w.await.unwrap();
    }
    let diagnosed = diagnosed.lock().unwrap().clone();
    let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, name) in &diagnosed {
        *per_name.entry(name.as_str()).or_default() += 1;
    }
    assert_eq!(per_name.len(), names.len(), "{diagnosed:?}");
    assert!(per_name.values().all(|n| *n == 1), "an incident was diagnosed twice: {diagnosed:?}");
    assert!(diagnosed.iter().any(|(r, _)| *r == "a") && diagnosed.iter().any(|(r, _)| *r == "b"), "{diagnosed:?}");
    assert_eq!(a.depth().await.unwrap(), 0);

    // A replica that dies mid-diagnosis (never acks) hands the incident to the other after ack_wait.
    assert_eq!(a.enqueue(&incident("crashy")).await.unwrap(), Enqueued::Queued);
    let taken = a.next().await.unwrap();
    assert_eq!(taken.incident.workload.name, "crashy");
    let taken_attempt = taken.attempt;
    assert_eq!(taken_attempt, 1);
    drop(taken); // replica a dies without acking
    let start = Instant::now();
    let redelivered = tokio::time::timeout(Duration::from_secs(10), b.next()).await.expect("redelivery").unwrap();
    assert_eq!(redelivered.incident.workload.name, "crashy");
    assert_eq!(redelivered.attempt, taken_attempt + 1, "the second delivery counts as attempt 2");
    assert!(start.elapsed() < Duration::from_secs(5), "redelivered after {:?}", start.elapsed());
    redelivered.ack().await.unwrap();
}

/// A replica: elector + a "watcher" task that runs only while it leads.
struct Replica {
    is_leader: watch::Receiver<bool>,
    watching: Arc<AtomicBool>,
    cancel: CancellationToken,
    elector: tokio::task::JoinHandle<()>,
    runner: tokio::task::JoinHandle<()>,
}

fn start_replica(client: kube::Client, config: &LeaderConfig, identity: &str) -> Replica {
    let config = LeaderConfig { identity: Some(identity.into()), ..config.clone() };
    let cancel = CancellationToken::new();
    let (is_leader, elector) = LeaderElector::new(client, &config).spawn(cancel.clone());
    let watching = Arc::new(AtomicBool::new(false));
    let flag = watching.clone();
    let runner = tokio::spawn(while_leader(is_leader.clone(), cancel.clone(), move |token| {
        let flag = flag.clone();
        async move {
            flag.store(true, Ordering::SeqCst);
            token.cancelled().await;
            flag.store(false, Ordering::SeqCst);
        }
    }));
    Replica { is_leader, watching, cancel, elector, runner }
}

async fn until_leader(r: &Replica, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    while !(*r.is_leader.borrow() && r.watching.load(Ordering::SeqCst)) {
        assert!(start.elapsed() < within, "{what}: not leading after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn leadership_moves_when_the_leader_dies() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "leader").await;
    let config = LeaderConfig {
        lease_name: "kubemedic-leader".into(),
        lease_namespace: Some(ns.name.clone()),
        lease_duration_seconds: 4,
        renew_interval_seconds: 1,
        renew_deadline_seconds: 3,
        retry_interval_seconds: 1,
        ..LeaderConfig::default()
    };
    config.validate().unwrap();

    let a = start_replica(client.clone(), &config, "replica-a");
    until_leader(&a, Duration::from_secs(10), "first replica").await;
    let b = start_replica(client.clone(), &config, "replica-b");
    // While a renews, b follows (several lease durations).
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(*a.is_leader.borrow() && a.watching.load(Ordering::SeqCst));
    assert!(!*b.is_leader.borrow() && !b.watching.load(Ordering::SeqCst), "two leaders");

    // a crashes: no release; b takes over once the lease expires.
    a.elector.abort();
    a.runner.abort();
    let crash_bound = config.failover_bound() + Duration::from_secs(1);
    let took = until_leader(&b, crash_bound, "after the leader crashed").await;
    eprintln!("failover after crash: {took:?} (bound {crash_bound:?})");
    let lease = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &ns.name)
        .get("kubemedic-leader")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // b shuts down cleanly: it releases, c takes over within the retry interval.
    let c = start_replica(client.clone(), &config, "replica-c");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!*c.is_leader.borrow(), "c leads while b holds the lease");
    b.cancel.cancel();
    b.elector.await.unwrap();
    b.runner.await.unwrap();
    assert!(!b.watching.load(Ordering::SeqCst), "b stopped watching on shutdown");
    let graceful_bound = Duration::from_secs(config.retry_interval_seconds + 1);
    let took = until_leader(&c, graceful_bound, "after the leader released").await;
    eprintln!("failover after release: {took:?} (bound {graceful_bound:?})");

    c.cancel.cancel();
    c.elector.await.unwrap();
    c.runner.await.unwrap();
    ns.delete(&client).await;
}

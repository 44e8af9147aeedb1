//! The intake half of the daemon, assembled as `kubemedic run` does: watchers
//! (scoped to the test's namespaces) → signal channel → incident tracker →
//! embedded store, with a log of every signal and what became of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kubemedic::bus::IncidentQueue;
use kubemedic::cluster::{Cluster, Scope};
use kubemedic::incident::{Incident, Outcome, Tracker};
use kubemedic::rules::RuleSet;
use kubemedic::signal::Signal;
use kubemedic::store::Store;
use kubemedic::store::redb::RedbStore;
use kubemedic::watch::{self, WatchConfig, WatchHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use e2e::daemon::repo_root;

pub fn state_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(e2e::unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Intake {
    pub tracker: Arc<Tracker>,
    pub store: Arc<RedbStore>,
    /// Every signal, in order, with its outcome.
    pub log: Arc<Mutex<Vec<(Signal, Outcome)>>>,
    pub signals: mpsc::Sender<Signal>,
    pub watch: Option<WatchHandle>,
    pub shutdown: CancellationToken,
    /// The agent queue (kept open so incidents are not counted as dropped).
    pub queue: IncidentQueue,
    dir: PathBuf,
}

impl Intake {
    /// Tracker + store only (no watchers): for alert tests.
    pub async fn without_watch(rules_dir: &Path) -> Intake {
        Self::build(None, rules_dir).await
    }

    /// Watchers over `namespaces` plus the tracker; returns once every store has listed.
    pub async fn start(client: Client, namespaces: Vec<String>, rules_dir: &Path) -> Intake {
        let scope = Scope { namespaces, exclude: Vec::new(), kinds: Vec::new() };
        Self::build(Some((client, scope)), rules_dir).await
    }

    /// Watchers over the whole cluster but the usual system namespaces (the daemon's default).
    pub async fn start_cluster_wide(client: Client, rules_dir: &Path) -> Intake {
        let scope = Scope::from_config(&kubemedic::config::ClusterConfig::default());
        Self::build(Some((client, scope)), rules_dir).await
    }

    async fn build(watch_on: Option<(Client, Scope)>, rules_dir: &Path) -> Intake {
        let dir = state_dir("intake-state");
        let store = Arc::new(RedbStore::open(&dir).expect("open store"));
        let rules = RuleSet::load(rules_dir).unwrap_or_else(|e| panic!("rules: {e}"));
        // No dedup window: every incident the tracker opens reaches the queue.
        let queue = IncidentQueue::local(4096, Duration::ZERO);
        let tracker = Arc::new(Tracker::new(Arc::new(rules), store.clone(), queue.clone()));
        let (tx, mut rx) = mpsc::channel::<Signal>(4096);
        let shutdown = CancellationToken::new();
        let log: Arc<Mutex<Vec<(Signal, Outcome)>>> = Arc::default();
        {
            let (tracker, log, shutdown) = (tracker.clone(), log.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        s = rx.recv() => match s {
                            Some(s) => {
                                let outcome = tracker.observe(s.clone()).await;
                                log.lock().unwrap().push((s, outcome));
                            }
                            None => break,
                        },
                        _ = tick.tick() => tracker.flush().await,
                    }
                }
            });
        }
        let watch = match watch_on {
            None => None,
            Some((client, scope)) => {
                let cluster = Cluster { name: "e2e".into(), client, scope };
                let handle = watch::spawn(cluster, &WatchConfig::default(), tx.clone(), shutdown.child_token())
                    .expect("spawn watchers");
                let synced = tokio::time::timeout(Duration::from_secs(60), handle.ready())
                    .await
                    .expect("watch stores ready within 60s");
                assert!(synced, "a watcher stopped before its first list");
                Some(handle)
            }
        };
        Intake { tracker, store, log, signals: tx, watch, shutdown, queue, dir }
    }

    /// Every incident, with folded counts written back.
    pub async fn incidents(&self) -> Vec<Incident> {
        self.tracker.flush().await;
        self.store.list_incidents().await.expect("list incidents")
    }

    /// Wait until an incident satisfies `pred`.
    pub async fn wait_incident(&self, timeout: Duration, what: &str, pred: impl Fn(&Incident) -> bool) -> Incident {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let all = self.incidents().await;
            if let Some(i) = all.iter().find(|i| pred(i)) {
                return i.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no incident {what} within {timeout:?}; incidents: {all:#?}\nsignals: {}",
                    self.signal_summary()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `reason workload -> outcome` per signal, for failure messages.
    pub fn signal_summary(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(s, o)| format!("\n  {:?} {} {} -> {o:?}", s.status, s.reason, s.subject()))
            .collect()
    }

    pub fn signals_with_reason(&self, reason: &str) -> Vec<(Signal, Outcome)> {
        self.log.lock().unwrap().iter().filter(|(s, _)| s.reason == reason).cloned().collect()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Some(w) = self.watch {
            let _ = tokio::time::timeout(Duration::from_secs(10), w.join()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

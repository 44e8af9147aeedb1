use std::path::PathBuf;

use async_trait::async_trait;

use super::*;
use crate::model::proposal::Proposal;
use crate::store::{StoreError, Versioned};

/// Incidents only (with revisions for compare-and-set); enough for the tracker.
#[derive(Default)]
pub(crate) struct MemStore {
    incidents: Mutex<BTreeMap<String, (Incident, u64)>>,
    /// While set, every write fails as a backend error.
    pub(crate) fail: std::sync::atomic::AtomicBool,
}

impl MemStore {
    fn writable(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError::Backend("down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MemStore {
    async fn create_incident(&self, incident: &Incident) -> Result<u64, StoreError> {
        self.writable()?;
        let mut all = self.incidents.lock().unwrap();
        if all.contains_key(&incident.id) {
            return Err(StoreError::AlreadyExists { what: "incident", id: incident.id.clone() });
        }
        all.insert(incident.id.clone(), (incident.clone(), 1));
        Ok(1)
    }
    async fn get_incident_versioned(&self, id: &str) -> Result<Option<Versioned<Incident>>, StoreError> {
        Ok(self
            .incidents
            .lock()
            .unwrap()
            .get(id)
            .map(|(value, revision)| Versioned { value: value.clone(), revision: *revision }))
    }
    async fn update_incident(&self, incident: &Incident, expected: u64) -> Result<u64, StoreError> {
        self.writable()?;
        let mut all = self.incidents.lock().unwrap();
        let Some((stored, revision)) = all.get_mut(&incident.id) else {
            return Err(StoreError::NotFound { what: "incident", id: incident.id.clone() });
        };
        if *revision != expected {
            return Err(StoreError::Conflict { what: "incident", id: incident.id.clone(), expected });
        }
        *stored = incident.clone();
        *revision += 1;
        Ok(*revision)
    }
    async fn list_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        Ok(self.incidents.lock().unwrap().values().map(|(i, _)| i.clone()).collect())
    }
    async fn create_proposal(&self, _: &Proposal) -> Result<u64, StoreError> {
        Err(StoreError::Backend("not in this test store".into()))
    }
    async fn get_proposal(&self, _: &str) -> Result<Option<Versioned<Proposal>>, StoreError> {
        Ok(None)
    }
    async fn update_proposal(&self, _: &Proposal, _: u64) -> Result<u64, StoreError> {
        Err(StoreError::Backend("not in this test store".into()))
    }
    async fn list_proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        Ok(Vec::new())
    }
    async fn put_drift_report(&self, _: &serde_json::Value) -> Result<(), StoreError> {
        Ok(())
    }
    async fn latest_drift_report(&self) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(None)
    }
}

const RULES: &str = r#"
rules:
  - name: pods
    match: {reasons: [CrashLoopBackOff, Unhealthy, ProgressDeadlineExceeded, OOMKilled]}
    workflow: {prompt: diagnose-workload, arguments: {name: "{{name}}"}}
    cooldown: 10m
    rate_limit: {max: 3, per: 1h}
  - name: alerts
    match: {source: [alertmanager], reasons: [KubePodCrashLooping]}
    workflow: {prompt: triage-alert, arguments: {alertname: "{{reason}}"}}
    cooldown: 5m
  - name: team
    match: {reasons: [Team], namespace_selector: "team=a"}
    workflow: {prompt: diagnose-workload}
"#;

fn rules() -> Arc<RuleSet> {
    Arc::new(RuleSet::from_sources(&[(PathBuf::from("t.yaml"), RULES.into())], None).unwrap())
}

fn sig(reason: &str, deploy: &str, pod: &str) -> Signal {
    Signal {
        source: SignalSource::Cluster,
        status: SignalStatus::Firing,
        reason: reason.into(),
        cluster: "local".into(),
        object: WorkloadRef::new("Pod", "shop", pod),
        workload: Some(WorkloadRef::new("Deployment", "shop", deploy)),
        labels: BTreeMap::new(),
        severity: None,
        message: String::new(),
        observed_at: jiff::Timestamp::now(),
    }
}

fn resolved(deploy: &str) -> Signal {
    let mut s = sig("Healthy", deploy, deploy);
    s.status = SignalStatus::Resolved;
    s.object = WorkloadRef::new("Deployment", "shop", deploy);
    s.workload = None;
    s
}

fn queue(capacity: usize) -> IncidentQueue {
    IncidentQueue::local(capacity, Duration::from_secs(300))
}

fn setup(capacity: usize) -> (Arc<Tracker>, Arc<MemStore>, IncidentQueue) {
    let store = Arc::new(MemStore::default());
    let queue = queue(capacity);
    (Arc::new(Tracker::new(rules(), store.clone(), queue.clone())), store, queue)
}

#[tokio::test(start_paused = true)]
async fn crash_loop_storm_is_one_incident() {
    let (t, store, queue) = setup(8);
    let first = t.observe(sig("CrashLoopBackOff", "web", "web-1")).await;
    let Outcome::Opened(id) = first else { panic!("{first:?}") };
    for i in 0..500 {
        let pod = format!("web-{}", i % 3);
        assert_eq!(t.observe(sig("CrashLoopBackOff", "web", &pod)).await, Outcome::Folded(id.clone()));
    }
    // Another reason on the same workload folds too.
    assert_eq!(t.observe(sig("Unhealthy", "web", "web-2")).await, Outcome::Folded(id.clone()));
    t.flush().await;
    let inc = store.get_incident(&id).await.unwrap().unwrap();
    assert_eq!(inc.count, 502);
    assert_eq!(inc.rule, "pods");
    assert_eq!(inc.arguments["name"], "web");
    assert_eq!(inc.workload, WorkloadRef::new("Deployment", "shop", "web"));
    assert_eq!(queue.depth().await.unwrap(), 1, "one incident queued for the agent");
    assert_eq!(queue.next().await.unwrap().incident.id, id);
    let s = t.stats().snapshot();
    assert_eq!((s.signals_total, s.incidents_total, s.folded_total, s.dropped_total), (502, 1, 501, 0));
}

#[tokio::test(start_paused = true)]
async fn cooldown_then_new_incident() {
    let (t, store, _rx) = setup(8);
    let Outcome::Opened(id) = t.observe(sig("CrashLoopBackOff", "web", "web-1")).await else { panic!() };
    assert_eq!(t.observe(resolved("web")).await, Outcome::Resolved(id.clone()));
    assert_eq!(store.get_incident(&id).await.unwrap().unwrap().status, IncidentStatus::Resolved);
    // A second resolution is only noted.
    assert_eq!(t.observe(resolved("web")).await, Outcome::Noted);
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    // Within the 10m cooldown: folded into the resolved incident.
    assert_eq!(t.observe(sig("CrashLoopBackOff", "web", "web-9")).await, Outcome::Folded(id.clone()));
    tokio::time::advance(Duration::from_secs(6 * 60)).await;
    t.flush().await;
    let Outcome::Opened(second) = t.observe(sig("CrashLoopBackOff", "web", "web-9")).await else { panic!() };
    assert_ne!(second, id);
    assert_eq!(store.list_incidents().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_counts_and_recovers() {
    let (t, _store, _rx) = setup(8);
    for d in ["a", "b", "c"] {
        assert!(matches!(t.observe(sig("OOMKilled", d, "p")).await, Outcome::Opened(_)));
    }
    assert_eq!(t.observe(sig("OOMKilled", "d", "p")).await, Outcome::RateLimited);
    let s = t.stats().snapshot();
    assert_eq!((s.incidents_total, s.rate_limited_total, s.dropped_total), (3, 1, 1));
    tokio::time::advance(Duration::from_secs(3601)).await;
    assert!(matches!(t.observe(sig("OOMKilled", "d", "p")).await, Outcome::Opened(_)));
}

#[tokio::test(start_paused = true)]
async fn full_queue_is_counted_and_incident_kept() {
    let (t, store, _rx) = setup(1);
    assert!(matches!(t.observe(sig("OOMKilled", "a", "p")).await, Outcome::Opened(_)));
    assert_eq!(t.stats().snapshot().queue_depth, 1);
    let Outcome::Opened(id) = t.observe(sig("OOMKilled", "b", "p")).await else { panic!() };
    let s = t.stats().snapshot();
    assert_eq!((s.incidents_total, s.dropped_total, s.queue_depth), (2, 1, 1));
    assert_eq!(store.get_incident(&id).await.unwrap().unwrap().status, IncidentStatus::Open);
}

#[tokio::test(start_paused = true)]
async fn unmatched_and_namespace_selector() {
    let (t, _store, _rx) = setup(8);
    assert_eq!(t.observe(sig("Nothing", "a", "p")).await, Outcome::Unmatched);
    assert_eq!(t.observe(sig("Team", "a", "p")).await, Outcome::Unmatched, "no namespace labels known");
    let store = Arc::new(MemStore::default());
    let t = Tracker::new(rules(), store, queue(8)).with_namespace_labels(Arc::new(|ns: &str| {
        (ns == "shop").then(|| [("team".to_owned(), "a".to_owned())].into())
    }));
    assert!(matches!(t.observe(sig("Team", "a", "p")).await, Outcome::Opened(_)));
    assert_eq!(t.stats().snapshot().unmatched_total, 0);
    // Set later (when the watchers start on the leader), cleared when they stop.
    let (t2, _store2, _rx3) = setup(8);
    assert_eq!(t2.observe(sig("Team", "b", "p")).await, Outcome::Unmatched);
    t2.set_namespace_labels(Some(Arc::new(|_: &str| Some([("team".to_owned(), "a".to_owned())].into()))));
    assert!(matches!(t2.observe(sig("Team", "b", "p")).await, Outcome::Opened(_)));
    t2.set_namespace_labels(None);
    assert_eq!(t2.observe(sig("Team", "c", "p")).await, Outcome::Unmatched);
}

#[tokio::test(start_paused = true)]
async fn alert_resolution_closes_only_its_own_incident() {
    let (t, store, _rx) = setup(8);
    let mut alert = sig("KubePodCrashLooping", "cart", "cart-1");
    alert.source = SignalSource::Alertmanager;
    // The watcher saw it first: the alert folds into the watcher's incident.
    let Outcome::Opened(id) = t.observe(sig("CrashLoopBackOff", "cart", "cart-1")).await else { panic!() };
    assert_eq!(t.observe(alert.clone()).await, Outcome::Folded(id.clone()));
    let mut done = alert.clone();
    done.status = SignalStatus::Resolved;
    assert_eq!(t.observe(done.clone()).await, Outcome::Noted);
    assert_eq!(store.get_incident(&id).await.unwrap().unwrap().status, IncidentStatus::Open);
    // An alert that opened its own incident is closed by its resolution.
    let mut other = alert.clone();
    other.workload = Some(WorkloadRef::new("Deployment", "shop", "checkout"));
    let Outcome::Opened(id2) = t.observe(other.clone()).await else { panic!() };
    other.status = SignalStatus::Resolved;
    assert_eq!(t.observe(other).await, Outcome::Resolved(id2.clone()));
    assert_eq!(store.get_incident(&id2).await.unwrap().unwrap().status, IncidentStatus::Resolved);
}

#[tokio::test(start_paused = true)]
async fn restart_restores_open_incidents_and_keeps_agent_updates() {
    let (t, store, _rx) = setup(8);
    let Outcome::Opened(id) = t.observe(sig("CrashLoopBackOff", "web", "web-1")).await else { panic!() };
    // The agent updates the incident meanwhile.
    crate::store::modify_incident(store.as_ref(), &id, |inc| {
        inc.status = IncidentStatus::Diagnosed;
        inc.summary = Some("bad image".into());
    })
    .await
    .unwrap();
    t.observe(sig("CrashLoopBackOff", "web", "web-2")).await;
    t.flush().await;
    let inc = store.get_incident(&id).await.unwrap().unwrap();
    assert_eq!((inc.count, inc.status, inc.summary.as_deref()), (2, IncidentStatus::Diagnosed, Some("bad image")));
    // A new tracker over the same store folds into the stored incident.
    let t2 = Tracker::new(rules(), store.clone(), queue(8));
    assert_eq!(t2.restore().await.unwrap(), 1);
    assert_eq!(t2.observe(sig("CrashLoopBackOff", "web", "web-3")).await, Outcome::Folded(id));
}

#[tokio::test(start_paused = true)]
async fn store_failure_is_retried_on_flush() {
    let (t, store, _rx) = setup(8);
    let Outcome::Opened(id) = t.observe(sig("CrashLoopBackOff", "web", "web-1")).await else { panic!() };
    store.fail.store(true, Ordering::Relaxed);
    t.observe(sig("CrashLoopBackOff", "web", "web-1")).await;
    t.flush().await;
    store.fail.store(false, Ordering::Relaxed);
    t.flush().await;
    assert_eq!(store.get_incident(&id).await.unwrap().unwrap().count, 2);
}

#[tokio::test(start_paused = true)]
async fn run_drains_on_shutdown() {
    let (t, store, _rx) = setup(8);
    let (tx, rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(t.clone().run(rx, shutdown.clone()));
    for i in 0..5 {
        tx.send(sig("CrashLoopBackOff", "web", &format!("p{i}"))).await.unwrap();
    }
    tokio::task::yield_now().await;
    shutdown.cancel();
    task.await.unwrap();
    let all = store.list_incidents().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].count, 5);
}

/// Every cluster signal that opens or folds into an incident is timed from its arrival; alerts
/// (whose time is the alert's own) and unmatched signals are not.
#[tokio::test]
async fn cluster_signals_are_timed_from_arrival_to_incident() {
    let store = Arc::new(MemStore::default());
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    let t = Tracker::new(rules(), store, queue(8)).with_metrics(metrics.clone());
    let mut late = sig("CrashLoopBackOff", "web", "web-1");
    late.observed_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3);
    assert!(matches!(t.observe(late).await, Outcome::Opened(_)));
    assert!(matches!(t.observe(sig("CrashLoopBackOff", "web", "web-2")).await, Outcome::Folded(_)));
    let mut alert = sig("CrashLoopBackOff", "web", "web-3");
    alert.source = SignalSource::Alertmanager;
    t.observe(alert).await;
    let text = metrics.encode();
    assert!(text.contains("kubemedic_signal_handling_seconds_count 2"), "{text}");
    // The late one (3 s) is above the 2.048 s bucket, the fresh one well below it.
    assert!(text.contains("kubemedic_signal_handling_seconds_bucket{le=\"2.048\"} 1"), "{text}");
}

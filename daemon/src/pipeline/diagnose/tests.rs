//! The lost update: a worker holds the incident as it was queued while the tracker folds
//! signals into it and resolves it; the worker's writes must not undo the tracker's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::bus::IncidentQueue;
use crate::incident::tracker::{Outcome as Tracked, Tracker};
use crate::model::diagnosis::Gap;
use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};
use crate::rules::RuleSet;
use crate::store::redb::RedbStore;

const RULES: &str = r#"
rules:
  - name: pods
    match: {reasons: [CrashLoopBackOff]}
    workflow: {prompt: diagnose-workload}
    cooldown: 10m
"#;

fn signal(deploy: &str, pod: &str, status: SignalStatus) -> Signal {
    let resolved = status == SignalStatus::Resolved;
    Signal {
        source: SignalSource::Cluster,
        status,
        reason: if resolved { "Healthy" } else { "CrashLoopBackOff" }.into(),
        cluster: "local".into(),
        object: if resolved {
            WorkloadRef::new("Deployment", "shop", deploy)
        } else {
            WorkloadRef::new("Pod", "shop", pod)
        },
        workload: (!resolved).then(|| WorkloadRef::new("Deployment", "shop", deploy)),
        labels: Default::default(),
        severity: None,
        message: String::new(),
        observed_at: jiff::Timestamp::now(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<RedbStore>,
    tracker: Arc<Tracker>,
    queue: IncidentQueue,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let rules = Arc::new(RuleSet::from_sources(&[(PathBuf::from("t.yaml"), RULES.into())], None).unwrap());
    let queue = IncidentQueue::local(16, Duration::from_secs(300));
    let tracker = Arc::new(Tracker::new(rules, store.clone(), queue.clone()));
    Fixture { _dir: dir, store, tracker, queue }
}

impl Fixture {
    /// Open an incident and take it off the queue as a worker does: the snapshot it holds.
    async fn open(&self, deploy: &str) -> Incident {
        let opened = self.tracker.observe(signal(deploy, "p0", SignalStatus::Firing)).await;
        let Tracked::Opened(id) = opened else { panic!("expected a new incident, got {opened:?}") };
        let delivery = self.queue.next().await.unwrap();
        assert_eq!(delivery.incident.id, id);
        delivery.incident
    }

    async fn fold(&self, deploy: &str, n: usize) {
        for i in 0..n {
            self.tracker.observe(signal(deploy, &format!("p{i}"), SignalStatus::Firing)).await;
        }
        self.tracker.flush().await;
    }

    async fn stored(&self, id: &str) -> Incident {
        self.store.get_incident(id).await.unwrap().unwrap()
    }
}

fn diagnosed(summary: &str, proposal: &str) -> Progress {
    Progress {
        status: IncidentStatus::Diagnosed,
        summary: Some(summary.into()),
        proposals: vec![proposal.into()],
        diagnosis: None,
    }
}

#[tokio::test]
async fn a_fold_during_a_diagnosis_keeps_the_count_and_the_diagnosis() {
    let f = fixture();
    let snapshot = f.open("web").await;
    record(f.store.as_ref(), &snapshot, &Progress::status(IncidentStatus::Diagnosing)).await.unwrap();
    // While the agent runs, the crash loop goes on.
    f.fold("web", 3).await;
    assert_eq!(f.stored(&snapshot.id).await.count, 4);
    record(f.store.as_ref(), &snapshot, &diagnosed("bad image", "p-1")).await.unwrap();

    let inc = f.stored(&snapshot.id).await;
    assert_eq!(inc.count, 4, "the tracker's folds survive the worker's write of its old snapshot");
    assert_eq!(inc.status, IncidentStatus::Diagnosed);
    assert_eq!(inc.summary.as_deref(), Some("bad image"));
    assert_eq!(inc.proposals, ["p-1"]);
    // And the tracker's next flush keeps the diagnosis.
    f.fold("web", 2).await;
    let inc = f.stored(&snapshot.id).await;
    assert_eq!((inc.count, inc.status, inc.summary.as_deref()), (6, IncidentStatus::Diagnosed, Some("bad image")));
}

#[tokio::test]
async fn a_resolution_during_a_diagnosis_stays_resolved() {
    let f = fixture();
    let snapshot = f.open("api").await;
    record(f.store.as_ref(), &snapshot, &Progress::status(IncidentStatus::Diagnosing)).await.unwrap();
    f.fold("api", 1).await;
    let resolved = f.tracker.observe(signal("api", "", SignalStatus::Resolved)).await;
    assert_eq!(resolved, Tracked::Resolved(snapshot.id.clone()));
    record(f.store.as_ref(), &snapshot, &diagnosed("probe on the wrong port", "p-2")).await.unwrap();

    let inc = f.stored(&snapshot.id).await;
    assert_eq!(inc.status, IncidentStatus::Resolved, "the diagnosis must not reopen a resolved incident");
    assert_eq!(inc.count, 2);
    assert_eq!(inc.summary.as_deref(), Some("probe on the wrong port"));
    assert_eq!(inc.proposals, ["p-2"]);
    // A retry's "open" does not reopen it either.
    let retry = Progress::status(IncidentStatus::Open);
    assert_eq!(record(f.store.as_ref(), &snapshot, &retry).await.unwrap().status, IncidentStatus::Resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_racing_with_diagnosis_writes_are_all_counted() {
    let f = fixture();
    let snapshot = f.open("db").await;
    let (folds, writes) = (40usize, 20usize);
    let tracker_side = async {
        for i in 0..folds {
            f.tracker.observe(signal("db", &format!("p{i}"), SignalStatus::Firing)).await;
            f.tracker.flush().await;
        }
    };
    let worker_side = async {
        for i in 0..writes {
            let progress = diagnosed(&format!("run {i}"), &format!("p-{}", i % 3));
            record(f.store.as_ref(), &snapshot, &progress).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(tracker_side, worker_side);
    let inc = f.stored(&snapshot.id).await;
    assert_eq!(inc.count, 1 + folds as u64, "every fold is counted");
    assert_eq!(inc.summary.as_deref(), Some("run 19"));
    assert_eq!(inc.proposals, ["p-0", "p-1", "p-2"], "proposal ids are merged, not repeated");
}

#[tokio::test]
async fn an_incident_the_tracker_could_not_store_is_created_by_the_worker() {
    let (opened_elsewhere, f) = (fixture(), fixture());
    let mut snapshot = opened_elsewhere.open("web").await;
    snapshot.count = 5;
    assert!(f.store.get_incident(&snapshot.id).await.unwrap().is_none());
    let inc = record(f.store.as_ref(), &snapshot, &diagnosed("x", "p-9")).await.unwrap();
    assert_eq!((inc.count, inc.status), (5, IncidentStatus::Diagnosed));
    assert_eq!(f.stored(&snapshot.id).await, inc);
}

fn diagnosis(gaps: Vec<Gap>, advice: &[&str]) -> Diagnosis {
    Diagnosis {
        incident_id: None,
        workload: WorkloadRef::new("Deployment", "shop", "api"),
        summary: "not determined by the built-in analyzers".into(),
        root_cause: String::new(),
        evidence: Vec::new(),
        confidence: 0.1,
        mermaid: String::new(),
        proposals: Vec::new(),
        refused: Vec::new(),
        advice: advice.iter().map(|a| (*a).to_owned()).collect(),
        runner: "builtin".into(),
        // Text alone never decides: a note that reads like a gap is not one.
        notes: vec!["not gathered: events: connection refused".into()],
        gaps,
    }
}

#[test]
fn blind_diagnoses_are_retried_and_conclusive_ones_are_not() {
    let refused = || Gap::unread("events", "connection refused");
    let blind = diagnosis(vec![Gap::OutOfScope { what: "secrets".into() }, refused()], &[]);
    assert_eq!(retry_reason(&Ok(blind)).as_deref(), Some("not gathered: events: connection refused"));
    let scoped = diagnosis(vec![Gap::OutOfScope { what: "secrets".into() }], &[]);
    assert_eq!(retry_reason(&Ok(scoped)), None, "a scope gap does not go away by waiting");
    let advised = diagnosis(vec![refused()], &["create the Secret"]);
    assert_eq!(retry_reason(&Ok(advised)), None, "a conclusion was reached");
    let clean = diagnosis(vec![], &[]);
    assert_eq!(retry_reason(&Ok(clean)), None, "notes are text for operators, not a retry signal");
    assert!(retry_reason(&Err(AgentError::Timeout("shop/Deployment/api".into(), 60))).is_some());
    assert_eq!(retry_reason(&Err(AgentError::NotFound("shop/Deployment/api".into()))), None);
    assert_eq!(retry_reason(&Err(AgentError::OutOfScope("x".into()))), None);
}

#[test]
fn attempts_are_labelled_by_what_they_concluded() {
    use crate::model::proposal::{Action, PatchType, Proposal, TargetRef};
    let target = TargetRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: "api".into(),
        resource_version: Some("7".into()),
        generation: None,
        content_digest: None,
    };
    let action = Action::Patch { patch_type: PatchType::Merge, body: serde_json::json!({"spec": {"replicas": 2}}) };
    let mut proposed = diagnosis(vec![], &["also check the Secret"]);
    proposed.proposals.push(Proposal::new(
        "local",
        target,
        action,
        jiff::Timestamp::now(),
        jiff::SignedDuration::from_hours(1),
    ));
    assert_eq!(outcome_label(&Ok(proposed), false), "proposal");
    assert_eq!(outcome_label(&Ok(diagnosis(vec![], &["create the Secret"])), false), "advice");
    assert_eq!(outcome_label(&Ok(diagnosis(vec![], &[])), false), "no_finding");
    assert_eq!(outcome_label(&Err(AgentError::NotFound("x".into())), false), "failed");
    assert_eq!(outcome_label(&Err(AgentError::Timeout("x".into(), 60)), true), "retry");
}

/// A worker taking a queued incident records how long it waited and how its diagnosis
/// ended (`kubemedic_incident_wait_seconds`, `kubemedic_diagnosis_duration_seconds`).
#[tokio::test]
async fn a_worker_observes_the_wait_and_the_diagnosis() {
    use crate::agent::{AgentConfig, Deps};
    use crate::approvals::{Approvals, ApprovalsConfig};
    use crate::cluster::{Cluster, ClusterConfig, Scope};
    use crate::telemetry::metrics::Metrics;

    let api = crate::tools::testing::shop_fixture();
    let cluster =
        Cluster { name: "local".into(), client: api.client(), scope: Scope::from_config(&ClusterConfig::default()) };
    let f = fixture();
    let store: Arc<dyn crate::store::Store> = f.store.clone();
    let deps = Deps::new(
        cluster.clone(),
        crate::policy::PolicyConfig::default(),
        AgentConfig::default(),
        Arc::new(crate::prompts::Catalog::default()),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let pipeline = crate::pipeline::Pipeline {
        deps,
        store: store.clone(),
        queue: f.queue.clone(),
        approvals: Arc::new(Approvals::new(store, cluster, None, ApprovalsConfig::default())),
        metrics: metrics.clone(),
        audit: crate::telemetry::audit::AuditLog::in_memory(),
        bus: None,
    };
    let mut opened = signal("web", "web-bbb-1", SignalStatus::Firing);
    opened.observed_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3);
    let Tracked::Opened(id) = f.tracker.observe(opened).await else { panic!("expected a new incident") };
    let delivery = f.queue.next().await.unwrap();
    pipeline.handle(crate::pipeline::Work::Queued(Box::new(delivery))).await;

    let text = metrics.encode();
    assert!(text.contains("kubemedic_incident_wait_seconds_count 1"), "{text}");
    assert!(text.contains("kubemedic_incident_wait_seconds_bucket{le=\"2.0\"} 0"), "waited 3 s: {text}");
    let counts: Vec<&str> =
        text.lines().filter(|l| l.starts_with("kubemedic_diagnosis_duration_seconds_count{")).collect();
    assert_eq!(counts.len(), 1, "one attempt, one outcome: {counts:?}");
    assert!(counts[0].ends_with(" 1"), "{counts:?}");
    let stored = f.stored(&id).await;
    let label = if stored.proposals.is_empty() { "advice" } else { "proposal" };
    assert_eq!(stored.status, IncidentStatus::Diagnosed, "{stored:?}");
    assert!(counts[0].contains(&format!("outcome=\"{label}\"")), "{counts:?} for {stored:?}");
}

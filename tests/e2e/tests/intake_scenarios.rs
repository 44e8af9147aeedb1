//! Every failure-catalog scenario, applied to the real control plane with
//! nodesim, gives exactly one incident with the right reason and workload;
//! a healthy scenario gives none; a fixed workload resolves its incident.

mod intake_common;

use std::time::Duration;

use intake_common::{Intake, repo_root};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kubemedic::incident::{Incident, IncidentStatus, Outcome};
use kubemedic::signal::WorkloadRef;

/// How long a scenario may take to show its failure.
const FAILURE_TIMEOUT: Duration = Duration::from_secs(150);
/// How long to keep watching after the first incident, so that a second one would show.
const SETTLE: Duration = Duration::from_secs(15);

async fn one_incident(scenario: &str, reason: &str, kind: &str, name: &str) -> (Intake, Incident, e2e::Namespace) {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, &format!("intake-{scenario}")).await;
    let intake = Intake::start(client.clone(), vec![ns.name.clone()], &repo_root().join("rules")).await;
    e2e::scenario::apply(&client, &ns.name, scenario).await;
    let first = intake
        .wait_incident(FAILURE_TIMEOUT, &format!("in namespace {}", ns.name), |i| i.workload.namespace == ns.name)
        .await;
    assert_eq!(first.workload, WorkloadRef::new(kind, &ns.name, name), "{scenario}: wrong workload: {first:#?}");
    assert_eq!(first.reason, reason, "{scenario}: wrong reason: {first:#?}\n{}", intake.signal_summary());
    assert_eq!(first.cluster, "e2e");
    assert_eq!(first.status, IncidentStatus::Open);
    tokio::time::sleep(SETTLE).await;
    let mine: Vec<Incident> =
        intake.incidents().await.into_iter().filter(|i| i.workload.namespace == ns.name).collect();
    assert_eq!(mine.len(), 1, "{scenario}: expected exactly one incident: {mine:#?}\n{}", intake.signal_summary());
    (intake, mine[0].clone(), ns)
}

async fn expect(scenario: &str, reason: &str, kind: &str, name: &str, rule: &str) {
    let (intake, incident, ns) = one_incident(scenario, reason, kind, name).await;
    assert_eq!(incident.rule, rule);
    assert_eq!(incident.prompt, "diagnose-workload");
    assert_eq!(incident.arguments.get("name").map(String::as_str), Some(name));
    assert_eq!(incident.arguments.get("namespace"), Some(&ns.name));
    intake.stop().await;
    ns.delete(&e2e::client().await).await;
}

#[tokio::test]
async fn config_secret_key_typo() {
    expect(
        "config-secret-key-typo",
        "CreateContainerConfigError",
        "Deployment",
        "api",
        "create-container-config-error",
    )
    .await;
}

#[tokio::test]
async fn image_pull_bad_tag() {
    expect("image-pull-bad-tag", "ImagePullBackOff", "Deployment", "web", "image-pull-failure").await;
}

#[tokio::test]
async fn crashloop_after_rollout() {
    expect("crashloop-after-rollout", "CrashLoopBackOff", "Deployment", "worker", "crash-loop").await;
}

#[tokio::test]
async fn oom_killed() {
    let (intake, incident, ns) = one_incident("oom-killed", "OOMKilled", "Deployment", "cache").await;
    assert_eq!(incident.rule, "oom-killed");
    // The container keeps being killed: every restart is folded into the one incident.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while intake.incidents().await.iter().find(|i| i.id == incident.id).map_or(0, |i| i.count) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "restarts were not folded\n{}", intake.signal_summary());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    intake.stop().await;
    ns.delete(&e2e::client().await).await;
}

#[tokio::test]
async fn probe_wrong_port() {
    expect("probe-wrong-port", "Unhealthy", "Deployment", "shop", "probe-failure").await;
}

#[tokio::test]
async fn unschedulable_requests() {
    expect("unschedulable-requests", "FailedScheduling", "Deployment", "batch", "failed-scheduling").await;
}

/// The stuck rollout's pods cannot pull their image: that opens the incident, and the
/// Deployment's ProgressDeadlineExceeded (20s later) is folded into it rather than opening a
/// second incident for the same broken workload.
#[tokio::test]
async fn rollout_stuck() {
    let (intake, incident, ns) = one_incident("rollout-stuck", "ImagePullBackOff", "Deployment", "legacy").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let seen = intake.signals_with_reason("ProgressDeadlineExceeded");
        if let Some((signal, outcome)) = seen.first() {
            assert_eq!(signal.subject(), &WorkloadRef::new("Deployment", &ns.name, "legacy"));
            assert_eq!(outcome, &Outcome::Folded(incident.id.clone()), "{}", intake.signal_summary());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ProgressDeadlineExceeded\n{}", intake.signal_summary());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mine: Vec<Incident> =
        intake.incidents().await.into_iter().filter(|i| i.workload.namespace == ns.name).collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    intake.stop().await;
    ns.delete(&e2e::client().await).await;
}

/// Creating the missing ConfigMap heals the pods; the Deployment becomes available and the
/// watchers resolve the incident.
#[tokio::test]
async fn config_missing_configmap_then_fixed() {
    let (intake, incident, ns) =
        one_incident("config-missing-configmap", "CreateContainerConfigError", "Deployment", "report").await;
    let client = e2e::client().await;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "report-settings"}, "data": {"schedule": "0 6 * * *"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name).create(&PostParams::default(), &cm).await.unwrap();
    intake
        .wait_incident(Duration::from_secs(120), "resolved after the fix", |i| {
            i.id == incident.id && i.status == IncidentStatus::Resolved
        })
        .await;
    intake.stop().await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn node_not_ready() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "intake-node").await;
    let node = e2e::nodes::FLAKY_NODE;
    let body = {
        let client = client.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            let intake = Intake::start(client.clone(), vec![ns.clone()], &repo_root().join("rules")).await;
            e2e::scenario::apply(&client, &ns, "node-not-ready").await;
            let want = WorkloadRef::new("Node", "", node);
            let incident = intake.wait_incident(FAILURE_TIMEOUT, "for the node", |i| i.workload == want).await;
            assert_eq!(incident.reason, "NodeNotReady");
            assert_eq!(incident.rule, "node-not-ready");
            tokio::time::sleep(SETTLE).await;
            let nodes: Vec<Incident> =
                intake.incidents().await.into_iter().filter(|i| i.workload.kind == "Node").collect();
            assert_eq!(nodes.len(), 1, "{nodes:#?}");
            // Heartbeats back: the node is Ready again and the incident resolves.
            e2e::nodes::set_heartbeat(&client, node, true).await;
            intake
                .wait_incident(Duration::from_secs(120), "resolved when the node is Ready", |i| {
                    i.id == incident.id && i.status == IncidentStatus::Resolved
                })
                .await;
            intake.stop().await;
        })
    };
    let result = body.await;
    // Whatever happened, give the node its heartbeats back: other tests share it.
    e2e::nodes::set_heartbeat(&client, node, true).await;
    ns.delete(&client).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Also runs the watchers cluster-wide (the default scope), where other tests' failures are
/// seen too: none of them may be attributed to this namespace.
#[tokio::test]
async fn healthy_workload_gives_no_incident() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "intake-healthy").await;
    // The daemon's default scope: every namespace but the system ones, one watch per kind.
    let intake = Intake::start_cluster_wide(client.clone(), &repo_root().join("rules")).await;
    // Only the workloads: on v1.20 the scenario's Service (ports without `protocol`) is refused
    // by server-side apply, which has nothing to do with intake.
    for step in e2e::scenario::load("healthy-web").unwrap() {
        if let e2e::scenario::Step::Apply(obj) = step
            && obj["kind"] != "Service"
        {
            e2e::scenario::apply_object(&client, &ns.name, obj).await;
        }
    }
    e2e::wait::deployment_ready(&client, &ns.name, "frontend", Duration::from_secs(120)).await;
    tokio::time::sleep(SETTLE).await;
    let mine: Vec<Incident> =
        intake.incidents().await.into_iter().filter(|i| i.workload.namespace == ns.name).collect();
    assert!(mine.is_empty(), "{mine:#?}\n{}", intake.signal_summary());
    intake.stop().await;
    ns.delete(&client).await;
}

//! The built-in diagnostician on every scenario of the failure catalog,
//! against the real control plane and nodesim: it must name the root cause
//! (not the symptom), and its proposal, applied, must heal the workload (new
//! pods Ready). Scenarios without a safe fix get no proposal and advice.

#[path = "agent/support.rs"]
mod support;

use std::time::Duration;

use e2e::{Namespace, client, pods, scenario, wait};
use kubemedic::approvals::{Action, PatchType, Risk};
use support::{assert_well_formed, deps, diagnose_until, one_proposal};

const HEAL: Duration = Duration::from_secs(120);

/// How long new pods must stay Ready without a restart to count as healed (nodesim's
/// simulated processes crash or get OOM-killed after about a second).
const STABLE: Duration = Duration::from_secs(6);

/// The Deployment is rolled out and its new pods are Ready, and a while later none has
/// restarted (a crash or OOM kill would). Readiness alone may flap when another test stops
/// a node's heartbeats, so a not-ready moment without a restart is waited out.
async fn healed(client: &kube::Client, ns: &str, name: &str) {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client.clone(), ns);
    for _ in 0..4 {
        wait::deployment_ready(client, ns, name, HEAL).await;
        tokio::time::sleep(STABLE).await;
        let ps = pods::of_newest_replicaset(client, ns, name).await;
        assert!(!ps.is_empty(), "no pods in the newest ReplicaSet of {ns}/{name}");
        for p in &ps {
            assert_eq!(pods::restart_count(p), 0, "pod {} restarted: {:?}", pods::name(p), p.status);
        }
        let d = api.get(name).await.unwrap();
        if wait::deployment_is_ready(&d) && ps.iter().all(pods::is_ready) {
            return;
        }
    }
    panic!("{ns}/{name} never stayed ready");
}

#[tokio::test]
async fn secret_key_typo_is_pointed_at_the_existing_key() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-typo").await;
    scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "api", "the key typo", |d| {
        d.root_cause.contains("DB_PASWORD") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("DB_PASSWORD") && d.root_cause.contains("api-db"), "{}", d.root_cause);
    assert!(d.evidence.iter().any(|e| e.tool == "decode_secret"), "{:?}", d.evidence);
    let p = one_proposal(&d);
    // A Secret reference decides what secret data the pod reads: High, however small the change.
    assert_eq!(p.risk, Risk::High);
    let Action::Patch { patch_type, body } = &p.action else { panic!() };
    assert_eq!(*patch_type, PatchType::Strategic);
    let env = &body["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env.as_array().map(Vec::len), Some(1), "one field changes: {body}");
    assert_eq!(env[0]["valueFrom"]["secretKeyRef"]["key"], "DB_PASSWORD");
    assert!(p.diff.contains("-              key: DB_PASWORD") || p.diff.contains("key: DB_PASWORD"), "{}", p.diff);
    assert!(!serde_json::to_string(&d).unwrap().contains("s3cr3t"), "a secret value leaked into the diagnosis");
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "api").await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn missing_configmap_gets_advice_not_a_patch() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-missing-cm").await;
    scenario::apply(&client, &ns.name, "config-missing-configmap").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "report", "the missing ConfigMap", |d| {
        d.root_cause.contains("report-settings") && d.confidence > 0.9
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("does not exist"), "{}", d.root_cause);
    assert!(d.proposals.is_empty() && d.refused.is_empty(), "no safe patch exists:\n{}", d.render_text());
    assert!(
        d.advice.iter().any(|a| a.contains("Create ConfigMap report-settings") && a.contains("schedule")),
        "{:?}",
        d.advice
    );
}

#[tokio::test]
async fn bad_image_tag_is_rolled_back_to_the_revision_that_ran() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-image").await;
    scenario::apply(&client, &ns.name, "image-pull-bad-tag").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "web", "the unpullable image", |d| {
        d.root_cause.contains("nginx:1.25.33") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("revision 2"), "{}", d.root_cause);
    let p = one_proposal(&d);
    let Action::Patch { patch_type, body } = &p.action else { panic!() };
    assert_eq!(*patch_type, PatchType::Merge);
    assert_eq!(body["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25.3", "{body}");
    assert!(p.rationale.contains("Revision 1"), "{}", p.rationale);
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "web").await;
    ns.delete(&client).await;
    for pod in pods::of_deployment(&client, &ns.name, "web").await.iter().filter(|p| pods::is_ready(p)) {
        let image = pod.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default();
        assert_eq!(image, "nginx:1.25.3");
    }
}

#[tokio::test]
async fn crash_after_rollout_is_rolled_back() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-crash").await;
    scenario::apply(&client, &ns.name, "crashloop-after-rollout").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "worker", "the crashing revision", |d| {
        d.root_cause.contains("exit code 1") && d.root_cause.contains("panic") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.evidence.iter().any(|e| e.tool == "pod_logs"), "{:?}", d.evidence);
    // The workflow's declared steps ran through kubemedic's tools.
    assert!(d.notes.iter().any(|n| n.contains("ran through kubemedic's tools")), "{:?}", d.notes);
    assert!(d.evidence.iter().any(|e| e.tool == "rollout_status"), "{:?}", d.evidence);
    let p = one_proposal(&d);
    assert!(p.rationale.contains("Revision 1"), "{}", p.rationale);
    let Action::Patch { body, .. } = &p.action else { panic!() };
    assert_eq!(body["spec"]["template"]["spec"]["containers"][0]["image"], "ghcr.io/kubemedic-demo/worker:1.4.0");
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "worker").await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn oom_killed_gets_more_memory_within_the_cap() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-oom").await;
    scenario::apply(&client, &ns.name, "oom-killed").await;
    let deps = deps(&client);
    // Nothing in the cluster says how much the container needs: each round doubles the
    // limit (the policy's largest raise) until the pods stop being killed.
    let mut limits = Vec::new();
    for round in 0..3 {
        let d = diagnose_until(&deps, "Deployment", &ns.name, "cache", "an OOM kill", |d| {
            d.root_cause.contains("needs more memory") && !d.proposals.is_empty()
        })
        .await;
        assert_well_formed(&d);
        let p = one_proposal(&d);
        let Action::Patch { body, .. } = &p.action else { panic!() };
        let limit = body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(limit, ["128Mi", "256Mi", "512Mi"][round], "round {round}: {body}");
        limits.push(limit.clone());
        support::apply_fresh(&client, &deps, &d).await;
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client.clone(), &ns.name);
        let ready_since = std::cell::Cell::new(None::<std::time::Instant>);
        let ready = e2e::wait::until(Duration::from_secs(60), "rollout settles", || async {
            // Only pods that already run with the new limit say anything about it.
            let ps: Vec<_> = pods::of_deployment(&client, &ns.name, "cache")
                .await
                .into_iter()
                .filter(|p| {
                    let c = &p.spec.as_ref().unwrap().containers[0];
                    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory"));
                    lim.map(|q| q.0.as_str()) == Some(limit.as_str())
                })
                .collect();
            if ps.iter().any(|p| pods::last_terminated_reasons(p).iter().any(|r| r == "OOMKilled")) {
                return Some(false);
            }
            let dep = api.get("cache").await.ok()?;
            if !wait::deployment_is_ready(&dep) {
                ready_since.set(None);
                return None;
            }
            let since = ready_since.get().unwrap_or_else(std::time::Instant::now);
            ready_since.set(Some(since));
            (since.elapsed() >= STABLE).then_some(true)
        })
        .await;
        if ready {
            healed(&client, &ns.name, "cache").await;
            assert_eq!(limits, ["128Mi", "256Mi"], "healed after raising to 256Mi (the need is about 200Mi)");
            ns.delete(&client).await;
            return;
        }
    }
    panic!("still OOM-killed after raising the limit to {limits:?}");
}

#[tokio::test]
async fn probe_on_the_wrong_port_is_fixed() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-probe").await;
    scenario::apply(&client, &ns.name, "probe-wrong-port").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "shop", "the probe port", |d| {
        d.root_cause.contains("8081") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("8080"), "{}", d.root_cause);
    let p = one_proposal(&d);
    assert_eq!(p.risk, Risk::Low);
    let Action::Patch { body, .. } = &p.action else { panic!() };
    assert_eq!(body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"], 8080);
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "shop").await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn oversized_requests_are_lowered_to_fit() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-sched").await;
    scenario::apply(&client, &ns.name, "unschedulable-requests").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "batch", "the oversized request", |d| {
        d.root_cause.contains("larger than any node") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("64 cpu") && d.root_cause.contains("4"), "{}", d.root_cause);
    let p = one_proposal(&d);
    let Action::Patch { body, .. } = &p.action else { panic!() };
    let cpu = body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"].as_str().unwrap();
    let cores = kubemedic::policy::quantity::parse(cpu).unwrap();
    assert!(cores > 0.0 && cores <= 0.5, "lowered to at most an eighth of a node: {cpu}");
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "batch").await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn stuck_rollout_is_rolled_back() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-stuck").await;
    scenario::apply(&client, &ns.name, "rollout-stuck").await;
    wait::deployment_progressing_reason(&client, &ns.name, "legacy", "ProgressDeadlineExceeded", HEAL).await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Deployment", &ns.name, "legacy", "the stuck rollout", |d| {
        d.root_cause.contains("ProgressDeadlineExceeded") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("legacy:3.2.0-rc1"), "{}", d.root_cause);
    let p = one_proposal(&d);
    let Action::Patch { body, .. } = &p.action else { panic!() };
    assert_eq!(body["spec"]["template"]["spec"]["containers"][0]["image"], "ghcr.io/kubemedic-demo/legacy:3.1.0");
    support::apply_fresh(&client, &deps, &d).await;
    healed(&client, &ns.name, "legacy").await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn healthy_workload_gets_no_proposal() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-healthy").await;
    scenario::apply(&client, &ns.name, "healthy-web").await;
    wait::deployment_ready(&client, &ns.name, "frontend", HEAL).await;
    let d = support::diagnose(&deps(&client), "Deployment", &ns.name, "frontend").await;
    assert!(d.root_cause.contains("no failure found"), "{}", d.render_text());
    assert!(d.proposals.is_empty() && d.refused.is_empty());
}

#[tokio::test]
async fn not_ready_node_is_reported_and_cordon_only_proposed() {
    let client = client().await;
    let node = e2e::nodes::FLAKY_NODE;
    e2e::nodes::set_heartbeat(&client, node, false).await;
    let result = tokio::spawn({
        let client = client.clone();
        async move {
            let deps = deps(&client);
            let d =
                diagnose_until(&deps, "Node", "", node, "NotReady", |d| d.root_cause.contains("lost contact")).await;
            assert!(d.root_cause.contains("Kubelet stopped posting node status"), "{}", d.root_cause);
            let p = one_proposal(&d);
            assert_eq!(p.risk, Risk::High);
            assert_eq!(p.target.kind, "Node");
            let Action::Patch { body, .. } = &p.action else { panic!() };
            assert_eq!(body, &serde_json::json!({"spec": {"unschedulable": true}}));
            // Not applied: a cordon waits for a human. The node stays schedulable.
            let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
            let n = api.get(node).await.unwrap();
            assert!(!n.spec.unwrap_or_default().unschedulable.unwrap_or(false));
        }
    })
    .await;
    e2e::nodes::set_heartbeat(&client, node, true).await;
    wait::until(Duration::from_secs(60), "node Ready again", || async {
        (e2e::nodes::ready_status(&client, node).await.as_deref() == Some("True")).then_some(())
    })
    .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

//! Exactly-once apply, end to end on the real control plane and nodesim.
//!
//! A daemon SIGKILLed between approval and apply is modelled with two
//! `Approvals` instances over the same store: the first is stopped at a
//! crash point (`CrashPoint`), which leaves the store exactly as a kill at
//! that instant would (every transition before it stored, nothing after it
//! done, no clean-up), and is then dropped; the second, with the same
//! replica name (a restarted StatefulSet pod), runs `resume()` as the daemon
//! does on start-up. Every crash point is covered, including the worst one:
//! the PATCH landed but `applied` was never stored.

mod approvals_support;

use std::sync::Arc;
use std::time::Duration;

use approvals_support::*;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kubemedic::approvals::{ApprovalError, CrashPoint, PatchType, ProposalState, Rediagnose};
use kubemedic::store::Store;

async fn restart_applies_exactly_once(store: Arc<dyn Store>, point: CrashPoint) {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-crash").await;
    deployment(&client, &ns.name, "api").await;
    let gen_before = get_deployment(&client, &ns.name, "api").await.metadata.generation.unwrap();

    let first = approvals(store.clone(), &client, None, "kubemedic-0");
    let p = first
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();
    first.crash_at(Some(point));
    match first.decide(&p.id, APPROVER, true).await {
        Err(ApprovalError::Crashed(at)) => assert_eq!(at, point),
        other => panic!("expected a simulated crash at {point:?}, got {other:?}"),
    }
    let left = first.get(&p.id).await.unwrap();
    let expected_left = match point {
        CrashPoint::AfterDecision => ProposalState::Approved,
        CrashPoint::BeforePatch | CrashPoint::AfterPatch => ProposalState::Applying,
    };
    assert_state(&left, expected_left);
    let sent_before_crash = first.mutations_sent();
    assert_eq!(sent_before_crash, u64::from(point == CrashPoint::AfterPatch));
    drop(first);

    let restarted = approvals(store, &client, None, "kubemedic-0");
    let resumed = restarted.resume().await.unwrap();
    let done = resumed.into_iter().find(|q| q.id == p.id).expect("the proposal was resumed");
    assert_state(&done, ProposalState::Verified);
    assert_eq!(sent_before_crash + restarted.mutations_sent(), 1, "exactly one PATCH in total ({point:?})");
    if point == CrashPoint::AfterPatch {
        assert!(done.outcome.is_some());
        assert!(done.history.iter().any(|t| t.note.contains("resumed")), "{:#?}", done.history);
    }
    let d = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(d.metadata.generation.unwrap(), gen_before + 1, "one template change");
    assert_eq!(image_of(&d), "nginx:1.25.3");
    assert_eq!(stamp_of(&d).as_deref(), Some(p.id.as_str()));
    // A second restart finds nothing to do.
    let again = approvals(restarted.store().clone(), &client, None, "kubemedic-0");
    assert!(again.resume().await.unwrap().iter().all(|q| q.id != p.id));
    assert_eq!(again.mutations_sent(), 0);
}

#[tokio::test]
async fn killed_after_decision_resumes_and_applies_once_nats() {
    restart_applies_exactly_once(nats_store().await, CrashPoint::AfterDecision).await;
}

#[tokio::test]
async fn killed_before_patch_resumes_and_applies_once_nats() {
    restart_applies_exactly_once(nats_store().await, CrashPoint::BeforePatch).await;
}

#[tokio::test]
async fn killed_after_patch_resumes_without_patching_again_nats() {
    restart_applies_exactly_once(nats_store().await, CrashPoint::AfterPatch).await;
}

#[tokio::test]
async fn killed_after_patch_resumes_without_patching_again_redb() {
    restart_applies_exactly_once(redb_store(), CrashPoint::AfterPatch).await;
}

#[tokio::test]
async fn object_changed_after_proposal_is_not_applied() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-chg").await;
    deployment(&client, &ns.name, "api").await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Rediagnose>(4);
    let store = nats_store().await;
    let approvals = Arc::new(
        kubemedic::approvals::Approvals::new(store, cluster(&client), None, config())
            .with_replica("kubemedic-0")
            .with_rediagnose(tx),
    );
    let addr = serve(approvals.clone()).await;
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();

    // Someone edits the Deployment after the proposal was made.
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns.name);
    let edit = serde_json::json!({"spec": {"replicas": 2}});
    api.patch("api", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    let edited = get_deployment(&client, &ns.name, "api").await;

    // Approved through the authenticated API (the path `kubemedic approve` uses).
    let auth = [("Authorization", format!("Bearer {API_TOKEN}"))];
    let (status, body) = http(&addr, "POST", &format!("/api/proposals/{}/approve", p.id), &auth, "").await;
    assert_eq!(status, 202, "{body}");
    let done = settled(&approvals, &p.id, Duration::from_secs(60)).await;
    assert_state(&done, ProposalState::Failed);
    let outcome = done.outcome.clone().unwrap_or_default();
    assert!(outcome.starts_with("target changed; diagnose again (spec changed since the proposal"), "{outcome}");
    assert_eq!(done.decided_by(), Some("alice"));
    assert_eq!(approvals.mutations_sent(), 0, "no PATCH was sent");
    let again = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(again.proposal_id, p.id);
    assert_eq!(again.target.name, "api");

    let now = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(now.metadata.generation, edited.metadata.generation, "spec not patched");
    assert_eq!(now.managed_fields().iter().filter(|m| m.manager.as_deref() == Some("kubemedic")).count(), 0);
    assert_eq!(image_of(&now), "nginx:1.27");
    assert_eq!(stamp_of(&now), None);

    // The API refuses a bad token and a second decision.
    let (status, _) = http(
        &addr,
        "POST",
        &format!("/api/proposals/{}/approve", p.id),
        &[("Authorization", "Bearer nope".into())],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http(&addr, "POST", &format!("/api/proposals/{}/reject", p.id), &auth, "").await;
    assert_eq!(status, 409);
    let (status, body) = http(&addr, "GET", &format!("/api/proposals/{}", p.id), &auth, "").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"failed\""), "{body}");
}

#[tokio::test]
async fn failed_verification_proposes_a_rollback() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-rb").await;
    deployment(&client, &ns.name, "api").await;
    let store = nats_store().await;
    let config = kubemedic::approvals::ApprovalsConfig { verify_timeout_seconds: 90, ..config() };
    let approvals =
        kubemedic::approvals::Approvals::new(store.clone(), cluster(&client), None, config).with_replica("kubemedic-0");
    // An approved change to an image the registry does not hold: applies, never becomes healthy.
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:9.99.99-missing")).await)
        .await
        .unwrap();
    let done = approvals.decide(&p.id, APPROVER, true).await.unwrap();
    assert_state(&done, ProposalState::Failed);
    assert!(done.outcome.as_deref().unwrap_or_default().starts_with("verification failed"), "{:?}", done.outcome);

    let rollback = store
        .list_proposals()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.requested_by.contains(&p.id))
        .expect("a rollback proposal");
    assert_state(&rollback, ProposalState::Pending);
    assert_eq!(rollback.approvers, p.approvers);
    assert!(rollback.diff.contains("nginx:1.27"), "{}", rollback.diff);
    // Approving the rollback restores the workload.
    let back = approvals.decide(&rollback.id, APPROVER, true).await.unwrap();
    assert_state(&back, ProposalState::Verified);
    assert_eq!(image_of(&get_deployment(&client, &ns.name, "api").await), "nginx:1.27");
}

fn memory_limit_patch(limit: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "cache", "resources": {"limits": {"memory": limit}}}
    ]}}}})
}

/// tests/scenarios/oom-killed.yaml: the cache needs 200Mi (nodesim's memory-need) under a 64Mi
/// limit. Raising the limit to 128Mi rolls out and the new pod is Ready at once, then it is
/// OOM-killed a second later: that must not be verified. 256Mi stays up: verified, but only
/// after the stability window.
#[tokio::test]
async fn verification_waits_out_the_stability_window() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-oom").await;
    e2e::scenario::apply(&client, &ns.name, "oom-killed").await;
    e2e::wait::until(Duration::from_secs(60), "the cache is OOM-killed", || async {
        let pods = e2e::pods::of_deployment(&client, &ns.name, "cache").await;
        pods.iter().any(|p| e2e::pods::last_terminated_reasons(p).iter().any(|r| r == "OOMKilled")).then_some(())
    })
    .await;
    let store = nats_store().await;
    let window = 5;
    let config =
        kubemedic::approvals::ApprovalsConfig { verify_timeout_seconds: 90, verify_stable_seconds: window, ..config() };
    let approvals =
        kubemedic::approvals::Approvals::new(store.clone(), cluster(&client), None, config).with_replica("kubemedic-0");

    // Not enough memory: the rollout completes, then the new pod is OOM-killed inside the window.
    let low = approvals
        .submit(proposal(&client, &ns.name, "cache", PatchType::Strategic, memory_limit_patch("128Mi")).await)
        .await
        .unwrap();
    let done = approvals.decide(&low.id, APPROVER, true).await.unwrap();
    assert_state(&done, ProposalState::Failed);
    let outcome = done.outcome.clone().unwrap_or_default();
    assert!(outcome.starts_with("verification failed: pod cache-"), "{outcome}");
    // Seen either while the container lies OOM-killed or once it has restarted.
    assert!(outcome.contains("container cache ") && outcome.contains("OOMKilled, exit code 137"), "{outcome}");
    assert_eq!(approvals.mutations_sent(), 1);
    let d = get_deployment(&client, &ns.name, "cache").await;
    let limits = |d: &k8s_openapi::api::apps::v1::Deployment| {
        let c = &d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        c.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory")).map(|q| q.0.clone())
    };
    assert_eq!(limits(&d).as_deref(), Some("128Mi"), "the change itself was applied");
    // The failure takes the existing path: a rollback is offered for approval.
    let rollback = store.list_proposals().await.unwrap().into_iter().find(|q| q.requested_by.contains(&low.id));
    assert_state(&rollback.expect("a rollback proposal"), ProposalState::Pending);

    // Enough memory: verified, and not before the pods were stable for the window.
    let high = approvals
        .submit(proposal(&client, &ns.name, "cache", PatchType::Strategic, memory_limit_patch("256Mi")).await)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let done = approvals.decide(&high.id, APPROVER, true).await.unwrap();
    let took = started.elapsed();
    assert_state(&done, ProposalState::Verified);
    let outcome = done.outcome.clone().unwrap_or_default();
    assert!(outcome.contains(&format!("Ready with no restarts for {window}s")), "{outcome}");
    assert!(took >= Duration::from_secs(window), "verified after {took:?}, before the {window}s window");
    eprintln!("verified in {} ms: {outcome}", took.as_millis());
    let pods = e2e::pods::of_newest_replicaset(&client, &ns.name, "cache").await;
    assert!(!pods.is_empty());
    assert!(pods.iter().all(|p| e2e::pods::restart_count(p) == 0), "the verified pods never restarted");
}

/// A write to `status` only (what controllers and kubelets do all the time) between the
/// proposal and its approval does not stop the change: apply re-pins to the newer version.
#[tokio::test]
async fn status_only_write_still_applies() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-status").await;
    deployment(&client, &ns.name, "api").await;
    let approvals = approvals(nats_store().await, &client, None, "kubemedic-0");
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns.name);
    let status = serde_json::json!({"status": {"collisionCount": 7}});
    api.patch_status("api", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let moved = get_deployment(&client, &ns.name, "api").await;
    assert_ne!(moved.resource_version(), p.target.resource_version, "the status write made a new resourceVersion");
    assert_eq!(moved.metadata.generation, p.target.generation);

    let done = approvals.decide(&p.id, APPROVER, true).await.unwrap();
    assert_state(&done, ProposalState::Verified);
    assert_eq!(approvals.mutations_sent(), 1);
    let d = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(image_of(&d), "nginx:1.25.3");
    assert_eq!(stamp_of(&d).as_deref(), Some(p.id.as_str()));
}

/// A label-only edit by someone else does not bump metadata.generation, but the proposal was
/// computed from the labels it saw: apply refuses, says why, and audits the refusal.
#[tokio::test]
async fn label_edit_after_proposal_is_refused() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-label").await;
    deployment(&client, &ns.name, "api").await;
    let audit = kubemedic::telemetry::audit::AuditLog::in_memory();
    let approvals = kubemedic::approvals::Approvals::new(nats_store().await, cluster(&client), None, config())
        .with_replica("kubemedic-0")
        .with_audit(audit.clone());
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns.name);
    let edit = serde_json::json!({"metadata": {"labels": {"team": "payments"}}});
    api.patch("api", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    let edited = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(edited.metadata.generation, p.target.generation, "a label edit does not bump the generation");

    let done = approvals.decide(&p.id, APPROVER, true).await.unwrap();
    assert_state(&done, ProposalState::Failed);
    let outcome = done.outcome.clone().unwrap_or_default();
    assert!(
        outcome.starts_with("target changed; diagnose again (metadata.labels changed since the proposal"),
        "{outcome}"
    );
    assert_eq!(approvals.mutations_sent(), 0, "no PATCH was sent");
    let now = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(image_of(&now), "nginx:1.27");
    assert_eq!(stamp_of(&now), None);
    let refusal = audit
        .recent(100)
        .into_iter()
        .find(|r| r.target.as_deref() == Some(p.id.as_str()) && r.action == "apply")
        .expect("the refused apply is audited");
    assert_eq!(refusal.outcome, "failed");
    assert!(refusal.detail.contains("metadata.labels changed"), "{}", refusal.detail);
}

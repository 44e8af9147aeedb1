//! The real `kubemedic run` SIGKILLed mid-apply, at the two points that matter, and restarted
//! over the same state (its redb `state_dir`):
//!
//! - before the PATCH reaches the apiserver: the daemon has stored `applying` and sent the
//!   PATCH, which an HTTP proxy of the test's own (between the daemon and the apiserver) holds
//!   and never forwards;
//! - after the apiserver applied it but before the daemon recorded it: the proxy forwards the
//!   PATCH and never returns the answer.
//!
//! Either way the restarted daemon must finish the proposal (verified), the change must be on
//! the Deployment exactly once (one PATCH accepted by the apiserver, counted on the wire; the
//! generation bumped by one; the proposal's annotation on it), and nothing else lost.

use std::time::Duration;

use e2e::apiproxy::{ApiProxy, Fault, Rule};
use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, state_of, token_entry};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const ANNOTATION: &str = "kubemedic.io/proposal";

fn config(ns: &str, dir: &std::path::Path) -> Value {
    json!({
        "cluster": { "name": "crash", "namespaces": [ns], "kubeconfig": dir.join("kubeconfig") },
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.join("state"),
        "http": { "listen": format!("127.0.0.1:{}", free_port()) },
        "auth": { "tokens": [token_entry("alice", APPROVER_TOKEN, "approver")] },
        "approvals": { "verify_timeout_seconds": 60 },
    })
}

async fn crash_mid_apply(prefix: &str, fault: Fault) {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, prefix).await;
    e2e::scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let proxy = ApiProxy::start(client.clone()).await;
    let dir = std::env::temp_dir().join(e2e::unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    proxy.kubeconfig(&dir.join("kubeconfig"));
    // The restart is the same replica (a container restarted in its pod keeps POD_NAME), which
    // resumes its own `applying` proposals at once.
    let mut daemon = Daemon::start(&dir, &config(&ns.name, &dir), &[("POD_NAME", "kubemedic-crash-0")]).await;

    // The daemon diagnoses the broken secretKeyRef and proposes the one-field fix.
    let proposal = e2e::wait::until(Duration::from_secs(90), "a pending proposal for deployment api", || async {
        daemon
            .proposals(Some("pending"))
            .await?
            .into_iter()
            .find(|p| p["target"]["name"] == "api" && p["target"]["namespace"] == ns.name.as_str())
    })
    .await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let before = deployments.get("api").await.unwrap();
    let g0 = before.metadata.generation.unwrap();
    assert!(!before.annotations().contains_key(ANNOTATION), "not applied yet: {:?}", before.annotations());

    // Arm the crash point, approve, and wait until the daemon is exactly there.
    let path = format!("/apis/apps/v1/namespaces/{}/deployments/api", ns.name);
    let patch = axum::http::Method::PATCH;
    proxy.set_rule(Some(Rule { method: patch.clone(), path: path.clone(), fault }));
    assert_eq!(daemon.approve(&id).await, 202, "approval accepted");
    e2e::wait::until(Duration::from_secs(30), "the apply PATCH at the crash point", || async {
        proxy
            .mutations()
            .iter()
            .any(|m| {
                m.is(&patch, &path)
                    && match fault {
                        Fault::HoldRequest => m.fault == Some(Fault::HoldRequest),
                        Fault::HoldResponse => m.upstream_status.is_some(),
                    }
            })
            .then_some(())
    })
    .await;
    let at_crash = daemon.proposal(&id).await.expect("proposal before the crash");
    assert_eq!(state_of(&at_crash), "applying", "stored state at the crash point: {at_crash}");
    daemon.kill().await;

    let crashed = deployments.get("api").await.unwrap();
    match fault {
        Fault::HoldRequest => {
            assert_eq!(crashed.metadata.generation, Some(g0), "the held PATCH never reached the apiserver");
            assert!(!crashed.annotations().contains_key(ANNOTATION));
        }
        Fault::HoldResponse => {
            assert_eq!(crashed.metadata.generation, Some(g0 + 1), "the apiserver applied the PATCH");
            assert_eq!(crashed.annotations().get(ANNOTATION), Some(&id));
        }
    }

    // Restart over the same state: the daemon finishes what the crash interrupted.
    proxy.set_rule(None);
    daemon.restart().await;
    let done = e2e::wait::until(Duration::from_secs(90), "the proposal settles after the restart", || async {
        let p = daemon.proposal(&id).await?;
        matches!(state_of(&p), "verified" | "failed" | "rejected" | "expired").then_some(p)
    })
    .await;
    assert_eq!(state_of(&done), "verified", "{done:#}\n{}", daemon.log_tail(30));
    assert!(
        done["history"].as_array().unwrap().iter().any(|t| t["note"] == "resumed after a restart"),
        "the restarted daemon resumed the proposal: {done:#}"
    );

    // Exactly once: one PATCH accepted by the apiserver over both runs, one generation bump.
    let patches: Vec<_> = proxy.mutations().into_iter().filter(|m| m.is(&patch, &path)).collect();
    assert_eq!(patches.iter().filter(|m| m.landed()).count(), 1, "one PATCH applied: {patches:#?}");
    let expected_sent = match fault {
        Fault::HoldRequest => 2,  // the held one (never forwarded) and the restarted daemon's
        Fault::HoldResponse => 1, // the restarted daemon found the change on the object
    };
    assert_eq!(patches.len(), expected_sent, "PATCHes sent by the daemon: {patches:#?}");
    let after = deployments.get("api").await.unwrap();
    assert_eq!(after.metadata.generation, Some(g0 + 1), "the spec changed exactly once");
    assert_eq!(after.annotations().get(ANNOTATION), Some(&id));
    let env = serde_json::to_string(&after.spec.unwrap().template.spec.unwrap().containers[0].env).unwrap();
    assert!(env.contains("\"key\":\"DB_PASSWORD\"") && !env.contains("DB_PASWORD"), "the fix is on: {env}");

    assert!(daemon.running() && daemon.healthy().await, "the restarted daemon stays up");
    drop(daemon);
    ns.delete(&client).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigkill_before_the_patch_reaches_the_apiserver_applies_once_after_restart() {
    crash_mid_apply("crash-before", Fault::HoldRequest).await;
}

#[tokio::test]
async fn sigkill_after_the_apiserver_applied_but_before_it_was_recorded_applies_once() {
    crash_mid_apply("crash-after", Fault::HoldResponse).await;
}

//! The real `kubemedic run` while its apiserver is killed and restarted mid-run.
//!
//! The test runs its own etcd and two kube-apiservers on it (A and B), so killing A disturbs no
//! other test; the daemon talks to A only. No controller-manager runs: the test writes the
//! Deployments, ReplicaSets, Pods and the pods' failing status (through B, as a kubelet would
//! through another apiserver replica). Workload `api-1` fails and is proposed while A is up,
//! then A is killed; `api-2` fails while A is down. After A is back, each failure must be
//! exactly one incident, diagnosed with the one-field fix proposed (api-2's after the watchers
//! resumed), api-1's not again, and the daemon must have stayed up throughout.
//!
//! Known gap (not asserted here): an incident whose diagnosis is running at the moment the
//! apiserver dies ends `diagnosed` with "not determined by the built-in analyzers" (the reads
//! that failed become gaps) and is never diagnosed again, so its fix is never proposed.

use std::time::Duration;

use e2e::controlplane::ControlPlane;
use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, token_entry};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "restart";

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    let api_version = "apps/v1";
    json!([{ "apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true }])
}

/// Deployment `name` (reading key DB_PASWORD, a typo of DB_PASSWORD), its ReplicaSet and one
/// pod, as the controllers would have made them.
async fn workload(client: &Client, name: &str) {
    let labels = json!({ "app": name });
    let template = json!({
        "metadata": { "labels": labels },
        "spec": {
            "schedulerName": "nobody",
            "containers": [{
                "name": "api", "image": "registry.local/api:1.2.0",
                "env": [{ "name": "DB_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "api-db", "key": "DB_PASWORD" } } }]
            }]
        }
    });
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "replicas": 1, "selector": { "matchLabels": labels }, "template": template }
    }))
    .unwrap();
    let d = Api::<Deployment>::namespaced(client.clone(), NS).create(&PostParams::default(), &d).await.unwrap();
    let rs_name = format!("{name}-5d9c8f7b6");
    let mut rs_labels = labels.clone();
    rs_labels["pod-template-hash"] = json!("5d9c8f7b6");
    let mut rs_template = template.clone();
    rs_template["metadata"]["labels"] = rs_labels.clone();
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": { "name": rs_name, "labels": rs_labels, "ownerReferences": owner("Deployment", name, &d.uid().unwrap()) },
        "spec": { "replicas": 1, "selector": { "matchLabels": rs_labels }, "template": rs_template }
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), NS).create(&PostParams::default(), &rs).await.unwrap();
    let mut pod = rs_template.clone();
    pod["metadata"]["name"] = json!(format!("{rs_name}-x1"));
    pod["metadata"]["ownerReferences"] = owner("ReplicaSet", &rs_name, &rs.uid().unwrap());
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(client.clone(), NS).create(&PostParams::default(), &pod).await.unwrap();
}

/// What the kubelet writes when the secret key is missing.
async fn fail(client: &Client, name: &str) {
    let pod = format!("{name}-5d9c8f7b6-x1");
    let status = json!({ "status": { "phase": "Pending", "containerStatuses": [{
        "name": "api", "image": "registry.local/api:1.2.0", "imageID": "", "ready": false, "restartCount": 0,
        "state": { "waiting": { "reason": "CreateContainerConfigError",
                                "message": format!("couldn't find key DB_PASWORD in Secret {NS}/api-db") } }
    }]}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(&pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("status of {pod}: {e}"));
}

fn incidents_for<'a>(incidents: &'a [Value], name: &str) -> Vec<&'a Value> {
    incidents.iter().filter(|i| i["workload"]["name"] == name).collect()
}

#[tokio::test]
async fn apiserver_killed_and_restarted_mid_run_loses_no_incident_and_the_daemon_stays_up() {
    let dir = std::env::temp_dir().join(e2e::unique_name("km-apiserver-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let cp = ControlPlane::start(&dir);
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Some(cp.apiserver("apiserver-a", port_a));
    let _b = cp.apiserver("apiserver-b", port_b);
    let (client_a, client_b) = (cp.client(port_a).await, cp.client(port_b).await);
    cp.wait_ready(&client_a, "apiserver-a").await;
    cp.wait_ready(&client_b, "apiserver-b").await;

    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": NS } })).unwrap();
    Api::<Namespace>::all(client_b.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "api-db" }, "stringData": { "DB_USER": "api", "DB_PASSWORD": "not-for-logs" }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client_b.clone(), NS).create(&PostParams::default(), &secret).await.unwrap();
    workload(&client_b, "api-1").await;
    workload(&client_b, "api-2").await;

    std::fs::write(dir.join("kubeconfig"), cp.kubeconfig(port_a)).unwrap();
    let config = json!({
        "cluster": { "name": "restart", "namespaces": [NS], "kubeconfig": dir.join("kubeconfig") },
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.join("state"),
        "http": { "listen": format!("127.0.0.1:{}", free_port()) },
        "auth": { "tokens": [token_entry("alice", APPROVER_TOKEN, "approver")] },
    });
    let mut daemon = Daemon::start(&dir.join("daemon"), &config, &[("POD_NAME", "kubemedic-restart-0")]).await;

    // api-1 fails and is proposed while A is up; then A dies.
    fail(&client_b, "api-1").await;
    e2e::wait::until(Duration::from_secs(30), "a pending proposal for api-1", || async {
        let pending = daemon.proposals(Some("pending")).await?;
        pending.iter().any(|p| p["target"]["name"] == "api-1").then_some(())
    })
    .await;
    drop(a.take());

    // api-2 fails while A is down; the daemon stays up meanwhile.
    fail(&client_b, "api-2").await;
    assert!(daemon.running() && daemon.healthy().await, "healthz while the apiserver is down");

    // A comes back with the same flags and data.
    let _a = cp.apiserver("apiserver-a", port_a);
    cp.wait_ready(&client_a, "apiserver-a").await;

    // Both failures are diagnosed and the fix proposed, once each.
    let proposals = e2e::wait::until(Duration::from_secs(45), "a pending proposal for api-1 and api-2", || async {
        let pending = daemon.proposals(Some("pending")).await?;
        let ours: Vec<Value> = ["api-1", "api-2"]
            .iter()
            .filter_map(|n| {
                pending.iter().find(|p| p["target"]["name"] == *n && p["target"]["namespace"] == NS).cloned()
            })
            .collect();
        (ours.len() == 2).then_some(ours)
    })
    .await;
    for p in &proposals {
        let body = p["action"]["body"].to_string();
        assert!(body.contains("DB_PASSWORD"), "the fix points at the existing key: {p:#}");
    }
    let incidents = daemon.incidents(NS).await.expect("list incidents");
    for name in ["api-1", "api-2"] {
        let ours = incidents_for(&incidents, name);
        assert_eq!(ours.len(), 1, "one incident for {name}: {incidents:#?}");
        assert_eq!(ours[0]["reason"], "CreateContainerConfigError");
    }
    let all = daemon.proposals(None).await.expect("list proposals");
    for name in ["api-1", "api-2"] {
        let n = all.iter().filter(|p| p["target"]["name"] == name).count();
        assert_eq!(n, 1, "one proposal for {name}: {all:#?}");
    }
    assert!(daemon.running() && daemon.healthy().await, "the daemon stayed up");
    let log = std::fs::read_to_string(daemon.log_path()).unwrap_or_default();
    assert!(!log.contains("panicked"), "no panic in the daemon log");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

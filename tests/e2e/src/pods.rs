//! Pods of a workload and the container states tests assert on.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::ListParams;
use kube::{Api, Client};

/// Annotation the deployment controller puts on a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// `k=v,k2=v2` from a label selector's `matchLabels` (what the scenarios use).
fn selector_string(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// All pods matched by Deployment `ns/name`'s selector (every revision, terminating ones too).
///
/// # Panics
/// When the Deployment does not exist.
pub async fn of_deployment(client: &Client, ns: &str, name: &str) -> Vec<Pod> {
    let d: Deployment = Api::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get Deployment {ns}/{name}: {e}"));
    let labels = d.spec.and_then(|s| s.selector.match_labels).unwrap_or_default();
    list(client, ns, &selector_string(&labels)).await
}

/// Pods in `ns` matching a label selector.
pub async fn list(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("list pods in {ns} ({selector}): {e}"))
        .items
}

/// The ReplicaSets owned by Deployment `ns/name`, oldest revision first.
pub async fn replicasets_of(client: &Client, ns: &str, name: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let mut sets: Vec<ReplicaSet> = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list ReplicaSets in {ns}: {e}"))
        .items
        .into_iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name == name))
        .collect();
    sets.sort_by_key(revision_of);
    sets
}

/// The `deployment.kubernetes.io/revision` of a ReplicaSet (0 when absent).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The newest ReplicaSet of Deployment `ns/name` (highest revision), if any.
pub async fn newest_replicaset(client: &Client, ns: &str, name: &str) -> Option<ReplicaSet> {
    replicasets_of(client, ns, name).await.pop()
}

/// Pods owned by ReplicaSet `rs` (by owner reference uid).
pub async fn of_replicaset(client: &Client, rs: &ReplicaSet) -> Vec<Pod> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list pods in {ns}: {e}"))
        .items
        .into_iter()
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
        .collect()
}

/// Pods of the newest ReplicaSet of Deployment `ns/name` (the revision the last rollout created).
pub async fn of_newest_replicaset(client: &Client, ns: &str, name: &str) -> Vec<Pod> {
    match newest_replicaset(client, ns, name).await {
        Some(rs) => of_replicaset(client, &rs).await,
        None => Vec::new(),
    }
}

/// The pod's container statuses (regular containers only).
pub fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[])
}

/// The pod's phase (`Pending`, `Running`, …), empty when not reported yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Reasons of containers currently waiting (e.g. `CrashLoopBackOff`, `ImagePullBackOff`).
pub fn waiting_reasons(pod: &Pod) -> Vec<String> {
    container_statuses(pod).iter().filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone()).collect()
}

/// Messages of containers currently waiting (e.g. `couldn't find key … in Secret ns/name`).
pub fn waiting_messages(pod: &Pod) -> Vec<String> {
    container_statuses(pod).iter().filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone()).collect()
}

/// Reasons of the previous (last) termination of each container (e.g. `OOMKilled`, `Error`).
pub fn last_terminated_reasons(pod: &Pod) -> Vec<String> {
    container_statuses(pod).iter().filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.reason.clone()).collect()
}

/// Exit codes of the previous termination of each container.
pub fn last_exit_codes(pod: &Pod) -> Vec<i32> {
    container_statuses(pod).iter().filter_map(|c| Some(c.last_state.as_ref()?.terminated.as_ref()?.exit_code)).collect()
}

/// The highest restart count among the pod's containers.
pub fn restart_count(pod: &Pod) -> i32 {
    container_statuses(pod).iter().map(|c| c.restart_count).max().unwrap_or(0)
}

/// True when the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// True when every container of the pod is running (started) — Ready or not.
pub fn all_running(pod: &Pod) -> bool {
    let cs = container_statuses(pod);
    !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

/// The name of a pod (empty if unnamed).
pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

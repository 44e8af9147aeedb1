//! The simulated nodes: names and the heartbeat switch nodesim obeys.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Annotation nodesim reads: `stop` makes the node stop heartbeating (the node controller
/// then marks it NotReady); removing it resumes heartbeats.
pub const HEARTBEAT_ANNOTATION: &str = "nodesim.kubemedic.io/heartbeat";

/// The node the node-not-ready scenario stops; other tests must not depend on it being Ready.
pub const FLAKY_NODE: &str = "sim-node-2";

/// Stops (`false`) or resumes (`true`) the heartbeats of a simulated node.
pub async fn set_heartbeat(client: &Client, node: &str, on: bool) {
    let api: Api<Node> = Api::all(client.clone());
    let value = if on { serde_json::Value::Null } else { serde_json::Value::from("stop") };
    let patch = serde_json::json!({ "metadata": { "annotations": { HEARTBEAT_ANNOTATION: value } } });
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch heartbeat annotation of node {node}: {e}"));
}

/// The status of the node's `Ready` condition (`True`, `False`, `Unknown`), if reported.
pub async fn ready_status(client: &Client, node: &str) -> Option<String> {
    let api: Api<Node> = Api::all(client.clone());
    let n = api.get_opt(node).await.ok().flatten()?;
    n.status?.conditions?.into_iter().find(|c| c.type_ == "Ready").map(|c| c.status)
}

//! Simulated Nodes: registration, Lease heartbeats and the Ready condition.
//!
//! Each node renews its `kube-node-lease` Lease every `heartbeat` and posts its status (Ready and
//! the pressure conditions) every [`STATUS_EVERY`] heartbeats or whenever the node controller
//! has marked it otherwise. A node annotated `nodesim.kubemedic.io/heartbeat=stop` does neither,
//! so the real node controller marks it NotReady after its grace period; removing the annotation
//! resumes the heartbeats and the node turns Ready again.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The annotation that stops (`stop`) a node's heartbeats.
pub const HEARTBEAT_ANNOTATION: &str = "nodesim.kubemedic.io/heartbeat";
/// The annotation naming the resources a node runs short of (`disk`, `memory`, `pid`,
/// comma-separated): its kubelet reports the matching pressure conditions.
pub const PRESSURE_ANNOTATION: &str = "nodesim.kubemedic.io/pressure";

/// A pressure condition as the kubelet reports it.
struct Pressure {
    condition: &'static str,
    /// The word for it in [`PRESSURE_ANNOTATION`].
    resource: &'static str,
    /// Reason and message when the node is short of it.
    short: (&'static str, &'static str),
    /// Reason and message when it is not.
    fine: (&'static str, &'static str),
}

const PRESSURES: &[Pressure] = &[
    Pressure {
        condition: "MemoryPressure",
        resource: "memory",
        short: ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        fine: ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    },
    Pressure {
        condition: "DiskPressure",
        resource: "disk",
        short: ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        fine: ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    },
    Pressure {
        condition: "PIDPressure",
        resource: "pid",
        short: ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        fine: ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    },
];
/// Label on every simulated node; its value is the pool (`--pool`).
pub const POOL_LABEL: &str = "nodesim.kubemedic.io/pool";
/// Node status is posted every this many heartbeats (and whenever it is not Ready).
pub const STATUS_EVERY: u32 = 5;
/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// One simulated node's identity and size.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Index (used for pod IP ranges).
    pub index: usize,
    /// The pool label value.
    pub pool: String,
    /// CPU capacity (`4`).
    pub cpu: String,
    /// Memory capacity (`8Gi`).
    pub memory: String,
    /// Pod capacity.
    pub max_pods: u32,
    /// The kubelet endpoint port (logs).
    pub kubelet_port: u16,
}

/// Errors talking to the API about nodes.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Registering the Node failed.
    #[error("register node {node}")]
    Register {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The resources the node's annotation says it is short of (unknown words are ignored).
pub fn pressures(node: Option<&Node>) -> Vec<&'static str> {
    let wanted =
        node.and_then(|n| n.metadata.annotations.as_ref()?.get(PRESSURE_ANNOTATION)).cloned().unwrap_or_default();
    let words: Vec<&str> = wanted.split(',').map(str::trim).collect();
    PRESSURES.iter().filter(|p| words.contains(&p.resource)).map(|p| p.resource).collect()
}

/// The resources whose pressure condition the node's status shows as True.
fn posted_pressures(node: Option<&Node>) -> Vec<&'static str> {
    let conds = node.and_then(|n| n.status.as_ref()?.conditions.clone()).unwrap_or_default();
    PRESSURES
        .iter()
        .filter(|p| conds.iter().any(|c| c.type_ == p.condition && c.status == "True"))
        .map(|p| p.resource)
        .collect()
}

fn conditions(ready: bool, short: &[&str], now: Timestamp, since: Timestamp) -> Vec<NodeCondition> {
    let c = |type_: &str, status: bool, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let mut out: Vec<NodeCondition> = PRESSURES
        .iter()
        .map(|p| {
            let is_short = short.contains(&p.resource);
            let (reason, message) = if is_short { p.short } else { p.fine };
            c(p.condition, is_short, reason, message)
        })
        .collect();
    out.push(c("Ready", ready, "KubeletReady", "kubelet is posting ready status"));
    out
}

fn status(n: &NodeInfo, now: Timestamp) -> NodeStatus {
    let cap: BTreeMap<String, Quantity> = [
        ("cpu", n.cpu.clone()),
        ("memory", n.memory.clone()),
        ("pods", n.max_pods.to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    NodeStatus {
        capacity: Some(cap.clone()),
        allocatable: Some(cap),
        conditions: Some(conditions(true, &[], now, now)),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: "127.0.0.1".into() },
            NodeAddress { type_: "Hostname".into(), address: n.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(n.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: crate::machine::fake_digest(&format!("{}/boot", n.name))[..32].into(),
            container_runtime_version: format!("nodesim://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: "6.1.0-nodesim".into(),
            kube_proxy_version: "v1.20.2".into(),
            kubelet_version: "v1.20.2".into(),
            machine_id: crate::machine::fake_digest(&n.name)[..32].into(),
            operating_system: "linux".into(),
            os_image: "nodesim (simulated kubelet)".into(),
            system_uuid: crate::machine::fake_digest(&format!("{}/uuid", n.name))[..32].into(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// Creates the Node (or takes over an existing one of that name) with a Ready status, and its Lease.
///
/// # Errors
/// When the apiserver refuses the Node.
pub async fn register(client: &Client, n: &NodeInfo) -> Result<(), NodeError> {
    let api: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now();
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", n.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "nodesim"),
        (POOL_LABEL, n.pool.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(n.name.clone()),
            labels: Some(labels.clone()),
            annotations: Some([("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(status(n, now)),
    };
    let err = |source| NodeError::Register { node: n.name.clone(), source };
    let created = match api.create(&PostParams::default(), &node).await {
        Ok(created) => created,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = serde_json::json!({ "metadata": { "labels": labels } });
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    let st = serde_json::json!({ "status": status(n, now) });
    api.patch_status(&n.name, &PatchParams::default(), &Patch::Strategic(&st)).await.map_err(err)?;
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: n.name.clone(),
        uid: created.metadata.uid.unwrap_or_default(),
        ..OwnerReference::default()
    };
    renew_lease(client, &n.name, Some(owner)).await;
    Ok(())
}

/// Renews (or creates) the node's Lease. Errors are logged: a missed renewal is what a
/// struggling kubelet looks like, not a reason to stop.
async fn renew_lease(client: &Client, node: &str, owner: Option<OwnerReference>) -> bool {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let patch = serde_json::json!({ "spec": { "holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now } });
    match api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: owner.map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.into()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(|e| tracing::warn!(%node, error = %e, "create lease"))
                .is_ok()
        }
        Err(e) => {
            tracing::warn!(%node, error = %e, "renew lease");
            false
        }
    }
}

fn node_ready(node: Option<&Node>) -> bool {
    node.and_then(|n| {
        n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
    })
    .unwrap_or(false)
}

fn stopped(node: Option<&Node>) -> bool {
    node.and_then(|n| n.metadata.annotations.as_ref()?.get(HEARTBEAT_ANNOTATION)).is_some_and(|v| v == "stop")
}

/// Keeps one node's heartbeat until `cancel`; sends the node's name on `resumed` when heartbeats
/// come back after a stop (the kubelet then re-posts its pods' status).
pub async fn heartbeat(
    client: Client,
    info: NodeInfo,
    nodes: Store<Node>,
    every: Duration,
    resumed: mpsc::UnboundedSender<String>,
    cancel: CancellationToken,
) {
    let api: Api<Node> = Api::all(client.clone());
    let key = ObjectRef::new(&info.name);
    let mut was_stopped = false;
    let mut tick: u32 = 0;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let node = nodes.get(&key);
        if stopped(node.as_deref()) {
            if !was_stopped {
                tracing::info!(node = %info.name, "heartbeats stopped by annotation");
                was_stopped = true;
            }
            continue;
        }
        tick = tick.wrapping_add(1);
        if !renew_lease(&client, &info.name, None).await {
            continue;
        }
        let resuming = was_stopped;
        let short = pressures(node.as_deref());
        let changed = short != posted_pressures(node.as_deref());
        if resuming || changed || tick.is_multiple_of(STATUS_EVERY) || !node_ready(node.as_deref()) {
            let now = Timestamp::now();
            let since = if node_ready(node.as_deref()) {
                node.as_ref()
                    .and_then(|n| {
                        n.status
                            .as_ref()?
                            .conditions
                            .as_ref()?
                            .iter()
                            .find(|c| c.type_ == "Ready")?
                            .last_transition_time
                            .clone()
                    })
                    .map_or(now, |t| t.0)
            } else {
                now
            };
            let st = serde_json::json!({ "status": { "conditions": conditions(true, &short, now, since),
                "daemonEndpoints": { "kubeletEndpoint": { "Port": info.kubelet_port } } } });
            if let Err(e) = api.patch_status(&info.name, &PatchParams::default(), &Patch::Strategic(&st)).await {
                tracing::warn!(node = %info.name, error = %e, "post node status");
                continue;
            }
        }
        if resuming {
            tracing::info!(node = %info.name, "heartbeats resumed");
            was_stopped = false;
            let _ = resumed.send(info.name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pressure_annotation_turns_the_kubelets_conditions() {
        let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n",
            "annotations": {PRESSURE_ANNOTATION: "disk, bogus"}}}))
        .unwrap();
        let short = pressures(Some(&node));
        assert_eq!(short, vec!["disk"]);
        let now = Timestamp::now();
        let conds = conditions(true, &short, now, now);
        let disk = conds.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(
            (disk.status.as_str(), disk.reason.as_deref(), disk.message.as_deref()),
            ("True", Some("KubeletHasDiskPressure"), Some("kubelet has disk pressure"))
        );
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!((mem.status.as_str(), mem.reason.as_deref()), ("False", Some("KubeletHasSufficientMemory")));
        assert!(conds.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        // What was posted is read back, so a change is posted at once and only then.
        let mut posted = node.clone();
        posted.status = Some(NodeStatus { conditions: Some(conds), ..NodeStatus::default() });
        assert_eq!(posted_pressures(Some(&posted)), vec!["disk"]);
        assert!(pressures(None).is_empty());
    }
}

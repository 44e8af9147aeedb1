//! Node NotReady: report it (since when, what the node controller says,
//! which pods are affected); cordoning is only ever a proposal. A Ready node
//! whose kubelet reports a pressure condition (disk, memory, PIDs) is
//! reported with the taint the node controller puts on it and the pods the
//! kubelet evicted; what fills the node is for a human to clear.

use serde_json::json;

use super::analyze::{Finding, pod_name};
use super::gather::{Facts, node_ready};
use crate::model::proposal::{PatchType, Risk};
use crate::policy::ProposalDraft;

pub fn analyze(facts: &Facts) -> Finding {
    let node = facts.nodes.first();
    let name = &facts.target.name;
    let Some(node) = node else {
        return Finding {
            summary: format!("Node {name} was not found"),
            root_cause: format!("node {name} is not registered"),
            confidence: 0.5,
            ..Default::default()
        };
    };
    let ready = node_ready(node);
    let heartbeat = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()))
        .unwrap_or_else(|| "never".into());
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let mut f = Finding::default();
    match ready {
        Some((status, reason, message)) if status != "True" => {
            let pods: Vec<String> = facts
                .pods
                .iter()
                .map(|p| format!("{}/{}", p.metadata.namespace.clone().unwrap_or_default(), pod_name(p)))
                .collect();
            f.summary = format!("Node {name} is NotReady ({reason}); {} pod(s) on it", pods.len());
            f.root_cause =
                format!("node {name} lost contact: Ready={status} ({reason}: {message}), last heartbeat {heartbeat}");
            f.chain = vec![
                format!("Node {name} Ready={status}"),
                format!("{reason}: {message}"),
                format!("last heartbeat {heartbeat}"),
            ];
            if !pods.is_empty() {
                f.chain.push(format!("{} pod(s) on the node will be evicted after their toleration", pods.len()));
            }
            f.confidence = 0.9;
            f.advice.push(format!(
                "Check the host and the kubelet of {name} (power, network, disk, kubelet service). Pods there are \
                 evicted by the node controller once their not-ready toleration expires; workloads with more \
                 replicas keep serving."
            ));
            if cordoned {
                f.advice.push(format!("{name} is already cordoned."));
            } else {
                let mut draft = ProposalDraft::patch(
                    "Node",
                    "",
                    name,
                    PatchType::Strategic,
                    json!({"spec": {"unschedulable": true}}),
                    &format!(
                        "Node {name} is NotReady; cordoning it keeps the scheduler from placing new pods there until \
                         someone has looked at the host. Uncordon with `kubectl uncordon {name}`."
                    ),
                );
                draft.risk = Some(Risk::High);
                f.drafts.push(draft);
            }
        }
        Some(_) if !pressure(node).is_empty() => {
            let conds = pressure(node);
            let names: Vec<&str> = conds.iter().map(|(t, ..)| t.as_str()).collect();
            let taints: Vec<String> = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .filter(|t| t.key.ends_with("-pressure"))
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            let evicted: Vec<String> = facts
                .pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted"))
                .map(|p| format!("{}/{}", p.metadata.namespace.clone().unwrap_or_default(), pod_name(p)))
                .collect();
            let reported: Vec<String> =
                conds.iter().map(|(t, reason, message)| format!("{t}=True ({reason}: {message})")).collect();
            f.summary = format!("Node {name} is Ready but under {}", names.join(", "));
            f.root_cause = format!("node {name} reports {}", reported.join("; "));
            if !taints.is_empty() {
                f.root_cause.push_str(&format!(": the node controller tainted it {}", taints.join(", ")));
            }
            f.chain = vec![format!("Node {name} Ready=True")];
            f.chain.extend(reported.iter().cloned());
            if !taints.is_empty() {
                f.chain.push(format!("taints {}: no new pods are scheduled there", taints.join(", ")));
            }
            if !evicted.is_empty() {
                f.chain.push(format!("{} pod(s) evicted: {}", evicted.len(), evicted.join(", ")));
            }
            f.confidence = 0.85;
            for (t, ..) in &conds {
                f.advice.push(match t.as_str() {
                    "DiskPressure" => format!(
                        "Free disk on {name}: unused images, container logs, emptyDir volumes; the kubelet evicts                          pods by their ephemeral-storage use until it is below its eviction threshold."
                    ),
                    "MemoryPressure" => format!(
                        "Memory on {name} is short: the kubelet evicts pods whose use exceeds their requests first;                          set memory requests to what the pods use, or move load off the node."
                    ),
                    _ => format!("Processes on {name} are close to the PID limit: find the pod that forks without end."),
                });
            }
        }
        Some(_) => {
            f.summary = format!("Node {name} is Ready");
            f.root_cause = "no failure found: the node is Ready".into();
            f.chain = vec![format!("Node {name} Ready=True, last heartbeat {heartbeat}")];
            f.confidence = 0.6;
        }
        None => {
            f.summary = format!("Node {name} reports no Ready condition");
            f.root_cause = format!("node {name} has never reported status (kubelet not running?)");
            f.chain = vec![format!("Node {name}: no Ready condition")];
            f.confidence = 0.6;
            f.advice.push(format!("Check that the kubelet on {name} runs and can reach the apiserver."));
        }
    }
    f
}

/// `(type, reason, message)` of the node's pressure conditions that are True.
pub fn pressure(node: &k8s_openapi::api::core::v1::Node) -> Vec<(String, String, String)> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
        .collect()
}

/// A workload whose pods sit on a node that is NotReady.
pub fn workload_on_lost_node(facts: &Facts) -> Option<Finding> {
    let lost: Vec<String> = facts
        .nodes
        .iter()
        .filter(|n| node_ready(n).is_some_and(|(s, _, _)| s != "True"))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let affected: Vec<String> = facts
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| lost.contains(n)))
        .map(pod_name)
        .collect();
    if affected.is_empty() {
        return None;
    }
    let w = &facts.target;
    Some(Finding {
        summary: format!("{w}: {} pod(s) on NotReady node(s) {}", affected.len(), lost.join(", ")),
        root_cause: format!("node(s) {} are NotReady; pods {} run there", lost.join(", "), affected.join(", ")),
        chain: vec![
            format!("{w} degraded"),
            format!("pods {} unreachable", affected.join(", ")),
            format!("node(s) {} NotReady", lost.join(", ")),
        ],
        confidence: 0.7,
        advice: lost.iter().map(|n| format!("Diagnose node {n} (`kubemedic diagnose Node/{n}`).")).collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::WorkloadRef;

    #[test]
    fn a_ready_node_under_disk_pressure_is_reported_with_its_taint_and_evictions() {
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure"},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}}))
        .unwrap();
        let mut facts = Facts::new(WorkloadRef::new("Node", "", "n1"));
        facts.nodes = vec![node.clone()];
        facts.pods = vec![
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "shop"},
                "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: ephemeral-storage."}}))
            .unwrap(),
        ];
        let f = analyze(&facts);
        assert_eq!(
            f.root_cause,
            "node n1 reports DiskPressure=True (KubeletHasDiskPressure: kubelet has disk pressure): the node controller \
             tainted it node.kubernetes.io/disk-pressure:NoSchedule"
        );
        assert!(f.chain.iter().any(|c| c == "1 pod(s) evicted: shop/a"), "{:?}", f.chain);
        assert!(f.drafts.is_empty(), "pressure is reported, never patched");
        assert!(f.advice[0].starts_with("Free disk on n1"), "{:?}", f.advice);
        // Without the condition the node is healthy.
        let mut healthy = node;
        healthy.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        facts.nodes = vec![healthy];
        assert!(analyze(&facts).root_cause.starts_with("no failure found"));
    }
}

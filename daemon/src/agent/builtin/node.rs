//! Node NotReady: report it (since when, what the node controller says,
//! which pods are affected); cordoning is only ever a proposal.

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

//! Evicted pods: the kubelet killed them to protect its node, and says why in the
//! pod's status (reason `Evicted`) and an `Evicted` event. A container over its own
//! `limits.ephemeral-storage` is the workload's to fix (raise the limit within
//! policy); a node low on a resource is the node's (reported, never patched).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Pod;
use regex::Regex;
use serde_json::json;

use super::analyze::{Finding, container_patch, pod_name};
use super::gather::Facts;
use crate::model::diagnosis::Evidence;
use crate::model::proposal::{PatchType, Risk};
use crate::policy::{PolicyConfig, ProposalDraft, quantity};

/// kubelet's containerEphemeralStorageMessageFmt.
static OVER_LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"Container (\S+) exceeded its local ephemeral storage limit "([^"]+)""#).expect("valid pattern")
});
/// kubelet's nodeLowMessageFmt.
static NODE_LOW: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"The node was low on resource: ([a-z-]+)").expect("valid pattern"));

fn evicted(p: &Pod) -> Option<&str> {
    let st = p.status.as_ref()?;
    (st.reason.as_deref() == Some("Evicted")).then(|| st.message.as_deref().unwrap_or_default())
}

/// Pods of the current revision the kubelet evicted (those of a revision rolled away from
/// stay behind as Failed pods and say nothing about the template now).
fn current_evictions(facts: &Facts) -> Vec<(&Pod, &str)> {
    let newest = facts.replica_sets.first().and_then(|rs| rs.metadata.uid.clone());
    facts
        .pods
        .iter()
        .filter(|p| match &newest {
            Some(uid) => p.metadata.owner_references.iter().flatten().any(|o| o.uid == *uid),
            None => true,
        })
        .filter_map(|p| evicted(p).map(|m| (p, m)))
        .collect()
}

pub fn analyze(facts: &Facts, policy: &PolicyConfig) -> Option<Finding> {
    let pods = current_evictions(facts);
    if pods.is_empty() {
        return None;
    }
    let w = &facts.target;
    let names: Vec<String> = pods.iter().map(|(p, _)| pod_name(p)).collect();
    let mut f = Finding { confidence: 0.85, ..Default::default() };
    f.chain.push(format!("{w}: {} pod(s) evicted ({})", pods.len(), names.join(", ")));
    // Container → (its limit, a pod that says so).
    let mut over: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut node_low: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, msg) in &pods {
        if let Some(c) = OVER_LIMIT.captures(msg) {
            over.entry(c[1].to_owned()).or_insert((c[2].to_owned(), pod_name(p)));
        } else if let Some(c) = NODE_LOW.captures(msg) {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "?".into());
            node_low.entry(c[1].to_owned()).or_default().push(node);
        }
    }
    let mut causes = Vec::new();
    let spec = facts.pod_spec();
    for (container, (limit_s, pod)) in &over {
        causes.push(format!(
            "pod {pod} was evicted: container {container} exceeded its local ephemeral storage limit {limit_s:?}"
        ));
        f.chain.push(format!("container {container} writes more than ephemeral-storage {limit_s}"));
        f.evidence.push(Evidence {
            tool: "describe_workload".into(),
            args: json!({"namespace": w.namespace, "kind": w.kind, "name": w.name}),
            finding: format!(
                "pod {pod}: status.reason=Evicted, container {container} over ephemeral-storage {limit_s}"
            ),
        });
        let found = spec.and_then(|s| {
            [("containers", Some(&s.containers)), ("initContainers", s.init_containers.as_ref())]
                .into_iter()
                .find_map(|(list, cs)| cs?.iter().find(|c| c.name == *container).map(|c| (list, c)))
        });
        let Some((list, c)) = found else { continue };
        let limit = |section: &str| {
            c.resources
                .as_ref()
                .and_then(|r| if section == "limits" { r.limits.as_ref() } else { r.requests.as_ref() })
                .and_then(|m| m.get("ephemeral-storage"))
                .and_then(|q| quantity::parse(&q.0))
        };
        let Some(old) = limit("limits") else { continue };
        let cap = quantity::parse(&policy.max_ephemeral_storage_limit).unwrap_or(f64::MAX);
        let new = (old * policy.max_ephemeral_storage_raise_factor).min(cap);
        let (old_s, new_s) = (quantity::format_bytes(old), quantity::format_bytes(new));
        if new <= old {
            f.advice.push(format!(
                "Container {container}'s ephemeral-storage limit {old_s} is already at the policy cap {}; find what \
                 it writes to local disk (logs, caches, emptyDir) or raise the limit by hand.",
                policy.max_ephemeral_storage_limit
            ));
            continue;
        }
        let mut resources = json!({"limits": {"ephemeral-storage": new_s}});
        if limit("requests").is_some_and(|r| r > new) {
            resources["requests"] = json!({"ephemeral-storage": new_s});
        }
        let mut draft = ProposalDraft::patch(
            &w.kind,
            &w.namespace,
            &w.name,
            PatchType::Strategic,
            container_patch(&w.kind, list, json!({"name": container, "resources": resources})),
            &format!(
                "The kubelet evicts the pods of {w} because container {container} writes more local storage than \
                 its ephemeral-storage limit {old_s}. Raising the limit to {new_s} (×{} capped at {} by policy) \
                 gives it room; if it is still evicted, what it writes (logs, caches, emptyDir) needs a look.",
                policy.max_ephemeral_storage_raise_factor, policy.max_ephemeral_storage_limit
            ),
        );
        draft.risk = Some(Risk::Medium);
        f.drafts.push(draft);
    }
    for (resource, nodes) in &node_low {
        let mut nodes = nodes.clone();
        nodes.sort();
        nodes.dedup();
        causes.push(format!("pods were evicted because node(s) {} ran low on {resource}", nodes.join(", ")));
        f.chain.push(format!("node(s) {} low on {resource}", nodes.join(", ")));
        f.advice.extend(nodes.iter().map(|n| format!("Diagnose node {n} (`kubemedic diagnose Node/{n}`).")));
    }
    if causes.is_empty() {
        causes.push(format!("pods {} were evicted by the kubelet: {}", names.join(", "), pods[0].1.trim()));
        f.confidence = 0.6;
    }
    f.root_cause = causes.join("; ");
    f.summary = format!("{w}: {}", f.root_cause);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::WorkloadRef;

    fn facts(message: &str) -> Facts {
        let object = json!({"metadata": {"name": "thumbs", "namespace": "media"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "t"}}, "template": {"metadata": {"labels": {"app": "t"}},
            "spec": {"containers": [{"name": "resize", "image": "nginx:1.25",
                "resources": {"limits": {"ephemeral-storage": "256Mi"}}}]}}}});
        let mut f = Facts::new(WorkloadRef::new("Deployment", "media", "thumbs"));
        f.template = serde_json::from_value(object["spec"]["template"].clone()).ok();
        f.object = object;
        f.pods = vec![
            serde_json::from_value(json!({"metadata": {"name": "thumbs-1"}, "spec": {"nodeName": "n2",
                "containers": [{"name": "resize"}]}, "status": {"phase": "Failed", "reason": "Evicted", "message": message}}))
            .unwrap(),
        ];
        f
    }

    #[test]
    fn a_container_over_its_ephemeral_storage_limit_gets_a_raise_within_policy() {
        let f = facts("Container resize exceeded its local ephemeral storage limit \"256Mi\". ");
        let found = analyze(&f, &PolicyConfig::default()).expect("a finding");
        assert_eq!(
            found.root_cause,
            "pod thumbs-1 was evicted: container resize exceeded its local ephemeral storage limit \"256Mi\""
        );
        assert_eq!(found.drafts.len(), 1);
        let body = serde_json::to_value(&found.drafts[0].action).unwrap().to_string();
        assert!(body.contains(r#""ephemeral-storage":"1Gi""#), "{body}");
        // At the cap: advice, no proposal.
        let tight = PolicyConfig { max_ephemeral_storage_limit: "256Mi".into(), ..PolicyConfig::default() };
        let found = analyze(&f, &tight).unwrap();
        assert!(found.drafts.is_empty() && found.advice[0].contains("already at the policy cap"), "{found:?}");
    }

    #[test]
    fn a_node_low_on_a_resource_is_reported_not_patched() {
        let f = facts("The node was low on resource: ephemeral-storage. ");
        let found = analyze(&f, &PolicyConfig::default()).expect("a finding");
        assert_eq!(found.root_cause, "pods were evicted because node(s) n2 ran low on ephemeral-storage");
        assert!(found.drafts.is_empty());
        assert_eq!(found.advice, vec!["Diagnose node n2 (`kubemedic diagnose Node/n2`).".to_owned()]);
        let mut healthy = facts("");
        healthy.pods[0].status = None;
        assert!(analyze(&healthy, &PolicyConfig::default()).is_none());
    }
}

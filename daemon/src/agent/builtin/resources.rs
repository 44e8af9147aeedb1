//! Resource failures: OOMKilled (memory limit below the container's need:
//! raise it within the policy's caps) and FailedScheduling (requests larger
//! than any node can fit: lower them; or a node selector no node matches:
//! report it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use serde_json::json;

use super::analyze::{Finding, container_patch, last_message, pod_name, statuses, terminated_reason};
use super::gather::Facts;
use crate::model::diagnosis::Evidence;
use crate::model::proposal::{PatchType, Risk};
use crate::policy::{PolicyConfig, ProposalDraft, quantity};

fn limit(c: &k8s_openapi::api::core::v1::Container, section: &str, res: &str) -> Option<f64> {
    let r = c.resources.as_ref()?;
    let map = if section == "limits" { r.limits.as_ref() } else { r.requests.as_ref() };
    map?.get(res).and_then(|q| quantity::parse(&q.0))
}

/// OOMKilled: raise the memory limit by the policy's factor, capped.
pub fn oom(facts: &Facts, policy: &PolicyConfig) -> Option<Finding> {
    let spec = facts.pod_spec()?;
    let mut killed: BTreeMap<String, (String, i32)> = BTreeMap::new();
    for p in &facts.pods {
        for cs in statuses(p) {
            if terminated_reason(cs) == Some("OOMKilled") {
                let e = killed.entry(cs.name.clone()).or_insert((pod_name(p), 0));
                e.1 = e.1.max(cs.restart_count);
            }
        }
    }
    if killed.is_empty() {
        return None;
    }
    let w = &facts.target;
    let cap = quantity::parse(&policy.max_memory_limit).unwrap_or(f64::MAX);
    let mut f = Finding { confidence: 0.9, ..Default::default() };
    f.chain.push(format!("{w} unavailable"));
    let mut causes = Vec::new();
    for (list, containers) in
        [("containers", Some(&spec.containers)), ("initContainers", spec.init_containers.as_ref())]
    {
        for c in containers.into_iter().flatten() {
            let Some((pod, restarts)) = killed.get(&c.name) else { continue };
            f.chain.push(format!("pod {pod}: container {} OOMKilled ({restarts} restarts, CrashLoopBackOff)", c.name));
            let Some(old) = limit(c, "limits", "memory") else {
                causes.push(format!("container {} has no memory limit and was OOM-killed by the node", c.name));
                f.advice.push(format!(
                    "Container {} has no memory limit, so the kill came from node memory pressure: set a memory \
                     request and limit that match its real use.",
                    c.name
                ));
                continue;
            };
            let new = (old * policy.max_memory_raise_factor).min(cap);
            let old_s = quantity::format_bytes(old);
            causes.push(format!("container {} needs more memory than its limit {old_s}", c.name));
            f.chain.push(format!("memory limit {old_s} below the container's need"));
            f.evidence.push(Evidence {
                tool: "describe_workload".into(),
                args: json!({"namespace": w.namespace, "kind": w.kind, "name": w.name}),
                finding: format!(
                    "container {} lastState.terminated.reason=OOMKilled with limits.memory={old_s}",
                    c.name
                ),
            });
            if new <= old {
                f.advice.push(format!(
                    "Container {}'s memory limit {old_s} is already at the policy cap {}; raise it by hand after \
                     checking the workload's real need.",
                    c.name, policy.max_memory_limit
                ));
                continue;
            }
            let new_s = quantity::format_bytes(new);
            let mut resources = json!({"limits": {"memory": new_s}});
            if limit(c, "requests", "memory").is_some_and(|r| r > new) {
                resources["requests"] = json!({"memory": new_s});
            }
            let mut draft = ProposalDraft::patch(
                &w.kind,
                &w.namespace,
                &w.name,
                PatchType::Strategic,
                container_patch(&w.kind, list, json!({"name": c.name, "resources": resources})),
                &format!(
                    "Container {} is OOM-killed at its memory limit {old_s}. Raising the limit to {new_s} (×{} capped \
                     at {} by policy) gives it room; if it still gets killed, the next diagnosis raises it again \
                     within the cap.",
                    c.name, policy.max_memory_raise_factor, policy.max_memory_limit
                ),
            );
            draft.risk = Some(Risk::Medium);
            f.drafts.push(draft);
        }
    }
    f.root_cause = causes.join("; ");
    f.summary = format!("{w}: {}", f.root_cause);
    Some(f)
}

/// Total request of a pod spec for `res`.
fn pod_request(spec: &k8s_openapi::api::core::v1::PodSpec, res: &str) -> f64 {
    let (cpu, mem) = super::gather::pod_requests(spec);
    if res == "cpu" { cpu } else { mem }
}

fn allocatable(n: &Node, res: &str) -> f64 {
    n.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(res))
        .and_then(|q| quantity::parse(&q.0))
        .unwrap_or(0.0)
}

fn node_matches(n: &Node, selector: &BTreeMap<String, String>) -> bool {
    let labels = n.metadata.labels.clone().unwrap_or_default();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn schedulable(n: &Node) -> bool {
    !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
        && super::gather::node_ready(n).is_some_and(|(s, _, _)| s == "True")
}

/// FailedScheduling: requests no node can fit, or a selector no node matches.
pub fn scheduling(facts: &Facts) -> Option<Finding> {
    let pending: Vec<&Pod> = facts.pods.iter().filter(|p| super::gather::unschedulable(p)).collect();
    let event = last_message(facts, "FailedScheduling");
    if pending.is_empty() && event.is_none() {
        return None;
    }
    let spec = facts.pod_spec()?;
    let w = &facts.target;
    let msg = event
        .clone()
        .or_else(|| {
            pending.first().and_then(|p| {
                p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")?.message.clone()
            })
        })
        .unwrap_or_default();
    let mut f = Finding::default();
    f.chain.push(format!("{w}: {} pod(s) Pending", pending.len().max(1)));
    f.chain.push(format!("FailedScheduling: {msg}"));

    let selector = spec.node_selector.clone().unwrap_or_default();
    let candidates: Vec<&Node> = facts.nodes.iter().filter(|n| schedulable(n) && node_matches(n, &selector)).collect();
    if !selector.is_empty() && candidates.is_empty() {
        let sel = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        f.summary = format!("{w} cannot be scheduled: no ready node matches nodeSelector {sel}");
        f.root_cause = format!("nodeSelector {sel} matches none of the {} nodes", facts.nodes.len());
        f.chain.push(f.root_cause.clone());
        f.confidence = 0.9;
        f.advice.push(format!(
            "Fix the nodeSelector {sel} of {w} or label a node to match it; kubemedic does not relabel nodes."
        ));
        return Some(f);
    }
    if candidates.is_empty() {
        f.summary = format!("{w} cannot be scheduled: no ready, schedulable node");
        f.root_cause = "no node is Ready and schedulable".into();
        f.confidence = 0.7;
        f.advice.push("Bring nodes back (see the nodes' Ready condition) or uncordon one.".into());
        return Some(f);
    }
    let replicas = facts.object.pointer("/spec/replicas").and_then(serde_json::Value::as_i64).unwrap_or(1).max(1);
    let mut patches = serde_json::Map::new();
    let mut causes = Vec::new();
    let mut new_requests: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    for res in ["memory", "cpu"] {
        let want = pod_request(spec, res);
        let biggest = candidates.iter().map(|n| allocatable(n, res)).fold(0.0, f64::max);
        if want <= biggest || want == 0.0 {
            continue;
        }
        let fmt = |v: f64| if res == "memory" { quantity::format_bytes(v) } else { quantity::format_cpu(v) };
        causes.push(format!("the pod requests {} {res} but the largest node allocates {}", fmt(want), fmt(biggest)));
        // Free room per node, then the largest per-pod request that places every replica.
        let free: Vec<f64> = candidates
            .iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let used = match facts.node_requested.get(&name) {
                    Some((cpu, mem)) => {
                        if res == "cpu" {
                            *cpu
                        } else {
                            *mem
                        }
                    }
                    None => facts
                        .pods
                        .iter()
                        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
                        .filter_map(|p| p.spec.as_ref().map(|s| pod_request(s, res)))
                        .sum(),
                };
                (allocatable(n, res) - used).max(0.0)
            })
            .collect();
        let mut fit: f64 = 0.0;
        for per_node in 1..=replicas {
            for &fr in &free {
                let v = fr / per_node as f64;
                let placed: i64 = free.iter().map(|x| (x / v).floor() as i64).sum();
                if v > fit && placed >= replicas {
                    fit = v;
                }
            }
        }
        // The asked-for figure was impossible, so any value is a guess: take a modest one (an
        // eighth of the biggest node) that leaves room for other workloads, within what fits.
        let fit = (fit * 0.9).min(biggest / 8.0);
        if fit <= 0.0 {
            continue;
        }
        let scale = fit / want;
        for c in &spec.containers {
            if let Some(r) = limit(c, "requests", res).or(limit(c, "limits", res)) {
                new_requests.entry(c.name.clone()).or_default().insert(res, fmt(r * scale));
            }
        }
    }
    // Free room below is computed from the pods kubemedic sees; the scope may hide some.
    let undercounted = facts.node_usage_partial.as_ref().map(|hidden| {
        format!("node usage may be undercounted: {hidden}, so the nodes may be fuller than these figures say")
    });
    if causes.is_empty() {
        f.summary = format!("{w} cannot be scheduled: the cluster is full ({msg})");
        f.root_cause = format!("the pods fit on a node in principle but not with what already runs there: {msg}");
        f.confidence = 0.6;
        f.advice
            .push("Add node capacity or lower other workloads' requests; the requests themselves fit a node.".into());
        return Some(f);
    }
    f.root_cause = format!("requests larger than any node can fit: {}", causes.join("; "));
    f.summary = format!("{w} cannot be scheduled: {}", causes.join("; "));
    f.chain.extend(causes.iter().cloned());
    if let Some(u) = &undercounted {
        f.chain.push(u.clone());
        f.advice.push(format!(
            "The lowered requests are sized to the room left on each node, and {u}: if the pods still do not \
             schedule, compare with `kubectl describe node` (it counts every namespace)."
        ));
    }
    f.confidence = 0.9;
    f.evidence.push(Evidence {
        tool: "cluster_health".into(),
        args: json!({}),
        finding: candidates
            .iter()
            .map(|n| {
                format!(
                    "node {} allocatable cpu {} memory {}",
                    n.metadata.name.clone().unwrap_or_default(),
                    quantity::format_cpu(allocatable(n, "cpu")),
                    quantity::format_bytes(allocatable(n, "memory"))
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    });
    let mut containers = Vec::new();
    let mut described = Vec::new();
    for c in &spec.containers {
        let Some(reqs) = new_requests.get(&c.name) else { continue };
        let mut requests = serde_json::Map::new();
        let mut limits = serde_json::Map::new();
        for (res, v) in reqs {
            requests.insert((*res).to_owned(), json!(v));
            described.push(format!("{} {res} request → {v}", c.name));
            // Without an explicit request the limit is the request: lower it too.
            if limit(c, "requests", res).is_none() && limit(c, "limits", res).is_some() {
                limits.insert((*res).to_owned(), json!(v));
            }
        }
        let mut resources = json!({"requests": requests});
        if !limits.is_empty() {
            resources["limits"] = serde_json::Value::Object(limits);
        }
        containers.push(json!({"name": c.name, "resources": resources}));
    }
    patches.insert("containers".into(), serde_json::Value::Array(containers));
    let body =
        if w.kind == "Pod" { json!({"spec": patches}) } else { json!({"spec": {"template": {"spec": patches}}}) };
    let mut draft = ProposalDraft::patch(
        &w.kind,
        &w.namespace,
        &w.name,
        PatchType::Strategic,
        body,
        &format!(
            "{}. Lowering the requests ({}) lets the scheduler place all {replicas} replica(s) on the existing nodes. \
             Check that the workload runs within the lower figures.",
            f.root_cause,
            described.join(", ")
        ),
    );
    draft.risk = Some(Risk::Medium);
    f.drafts.push(draft);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::builtin::gather::hidden_pods;
    use crate::model::signal::WorkloadRef;

    /// A Deployment asking 64 CPUs, its Pending pod, and one 4-CPU node already half used.
    fn unschedulable(partial: Option<&str>) -> Facts {
        let template = json!({"metadata": {"labels": {"app": "batch"}}, "spec": {"containers": [
            {"name": "job", "image": "busybox:1.36", "resources": {"requests": {"cpu": "64", "memory": "64Mi"}}}]}});
        let mut f = Facts::new(WorkloadRef::new("Deployment", "shop", "batch"));
        f.object = json!({"metadata": {"name": "batch", "namespace": "shop"}, "spec": {"replicas": 1,
            "template": template}});
        f.template = serde_json::from_value(template).ok();
        f.pods = vec![
            serde_json::from_value(json!({"metadata": {"name": "batch-6d4cf56db6-x2k4q"}, "spec": {"containers": []},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}))
            .unwrap(),
        ];
        f.nodes = vec![
            serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4",
                "memory": "8Gi"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
        ];
        f.node_requested.insert("n1".into(), (2.0, 0.0));
        f.node_usage_partial = partial.map(str::to_owned);
        f
    }

    #[test]
    fn a_narrow_scope_says_node_usage_may_be_undercounted() {
        let full = scheduling(&unschedulable(None)).expect("a finding");
        assert!(full.root_cause.contains("requests 64 cpu"), "{}", full.root_cause);
        assert!(!format!("{full:?}").contains("undercounted"), "{full:?}");
        let hidden =
            hidden_pods(&crate::cluster::Scope { namespaces: vec!["shop".into()], ..crate::cluster::Scope::default() });
        let narrow = scheduling(&unschedulable(hidden.as_deref())).expect("a finding");
        assert!(
            narrow
                .chain
                .iter()
                .any(|c| c.contains("undercounted") && c.contains("outside the namespaces kubemedic sees (shop)")),
            "{:?}",
            narrow.chain
        );
        assert!(narrow.advice.iter().any(|a| a.contains("kubectl describe node")), "{:?}", narrow.advice);
        // Same proposal either way: the note informs the approver, it changes no figure.
        assert_eq!(
            serde_json::to_value(&full.drafts[0].action).unwrap(),
            serde_json::to_value(&narrow.drafts[0].action).unwrap()
        );
    }

    #[test]
    fn what_a_scope_hides_is_named() {
        use crate::cluster::Scope;
        assert_eq!(hidden_pods(&Scope::default()), None);
        let excl = Scope { exclude: vec!["kube-system".into()], ..Scope::default() };
        assert_eq!(
            hidden_pods(&excl).as_deref(),
            Some("pods in the namespaces kubemedic does not see (kube-system) are not counted")
        );
    }
}

//! What the analyzers share: the [`Finding`] they return, accessors over
//! pod states and events, patch builders and the Mermaid rendering of a
//! causal chain. The dispatch order puts precise root causes (a wrong key,
//! a too-small limit, a wrong probe port) before generic ones (a stuck
//! rollout), so the diagnosis names the cause, not the symptom.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use serde_json::{Value, json};

use super::gather::Facts;
use super::{admission, batch, config, eviction, hpa, network, node, probe, resources, rollout, storage, throttling};
use crate::model::diagnosis::Evidence;
use crate::policy::{PolicyConfig, ProposalDraft};

/// An analyzer's conclusion.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    pub summary: String,
    pub root_cause: String,
    /// From the symptom down to the root cause, one node per step.
    pub chain: Vec<String>,
    pub confidence: f32,
    pub drafts: Vec<ProposalDraft>,
    pub advice: Vec<String>,
    /// Evidence the analyzer derived on top of the gathered calls.
    pub evidence: Vec<Evidence>,
}

type Analyzer = dyn Fn(&Facts, &PolicyConfig) -> Option<Finding>;

/// Run the analyzers in order of precision; the first that explains the failure wins.
pub fn analyze(facts: &Facts, policy: &PolicyConfig) -> Finding {
    match facts.target.kind.as_str() {
        "Node" => return node::analyze(facts),
        "Service" => return network::service(facts),
        "Ingress" => return network::ingress(facts),
        "PersistentVolumeClaim" => return storage::claim(facts),
        "CronJob" => return batch::cronjob(facts),
        "HorizontalPodAutoscaler" => return hpa::analyze(facts),
        _ => {}
    }
    let analyzers: [&Analyzer; 10] = [
        &|f, _| config::analyze(f),
        // Pods that cannot even be created come before what pods show.
        &|f, _| admission::analyze(f),
        &resources::oom,
        // Evicted pods are replaced by ones that run for a while: the eviction is the cause.
        &eviction::analyze,
        &|f, _| batch::job(f),
        &|f, _| probe::analyze(f),
        &|f, _| resources::scheduling(f),
        // An alert says what pods cannot show (throttled CPU); a failing rollout still comes first.
        &throttling::analyze,
        &|f, _| rollout::analyze(f),
        &|f, _| node::workload_on_lost_node(f),
    ];
    for a in analyzers {
        if let Some(found) = a(facts, policy) {
            return found;
        }
    }
    healthy_or_unknown(facts)
}

fn healthy_or_unknown(facts: &Facts) -> Finding {
    let states = state_summary(facts);
    let ready = facts.pods.iter().filter(|p| pod_ready(p)).count() as i64;
    // Fewer ready pods than the controller wants is never healthy.
    let desired = facts.object.pointer("/spec/replicas").and_then(serde_json::Value::as_i64);
    let all_ready = !facts.pods.is_empty() && facts.pods.iter().all(pod_ready) && desired.is_none_or(|d| ready >= d);
    if all_ready {
        Finding {
            summary: format!("{} looks healthy: {states}", facts.target),
            root_cause: "no failure found: every pod is running and ready".into(),
            chain: vec![format!("{}: {states}", facts.target)],
            confidence: 0.6,
            ..Default::default()
        }
    } else {
        Finding {
            summary: format!("{} is failing for a reason outside the known catalog: {states}", facts.target),
            root_cause: "not determined by the built-in analyzers".into(),
            chain: vec![format!("{}: {states}", facts.target), "cause not in the failure catalog".into()],
            confidence: 0.2,
            advice: vec![
                "Read the pod events and logs listed in the evidence; the failure is not one the built-in \
                 diagnostician recognises."
                    .into(),
            ],
            ..Default::default()
        }
    }
}

/// A readable count of pod states.
pub fn state_summary(facts: &Facts) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for p in &facts.pods {
        for s in super::gather::pod_states(p) {
            *counts.entry(s).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return "no pods".into();
    }
    counts.into_iter().map(|(s, n)| format!("{n}× {s}")).collect::<Vec<_>>().join(", ")
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status.iter().flat_map(|s| s.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Every container status of a pod (init containers too).
pub fn statuses(p: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    p.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()))
}

pub fn waiting_reason(cs: &ContainerStatus) -> Option<&str> {
    cs.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

pub fn waiting_message(cs: &ContainerStatus) -> Option<&str> {
    cs.state.as_ref()?.waiting.as_ref()?.message.as_deref()
}

/// Reason of the last termination (or of the current one).
pub fn terminated_reason(cs: &ContainerStatus) -> Option<&str> {
    let cur = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    cur.or(last).and_then(|t| t.reason.as_deref())
}

pub fn exit_code(cs: &ContainerStatus) -> Option<i32> {
    let cur = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    cur.or(last).map(|t| t.exit_code)
}

/// Events with `reason`, newest last.
pub fn events_with<'a>(facts: &'a Facts, reason: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
    facts.events.iter().filter(move |e| e.reason.as_deref() == Some(reason))
}

/// The message of the newest event with `reason`.
pub fn last_message(facts: &Facts, reason: &str) -> Option<String> {
    events_with(facts, reason).last().and_then(|e| e.message.clone())
}

/// A strategic-merge patch changing one container of the workload's pod template.
pub fn container_patch(kind: &str, list: &str, container: Value) -> Value {
    if kind == "Pod" {
        json!({"spec": {list: [container]}})
    } else {
        json!({"spec": {"template": {"spec": {list: [container]}}}})
    }
}

/// A Mermaid flowchart of the chain, top to bottom.
pub fn mermaid(chain: &[String]) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, step) in chain.iter().enumerate() {
        let label = step.replace('"', "#quot;").replace('\n', " ");
        out.push_str(&format!("  n{i}[\"{label}\"]\n"));
    }
    for i in 1..chain.len() {
        out.push_str(&format!("  n{} --> n{i}\n", i - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mermaid_escapes_quotes_and_links_steps() {
        let m = mermaid(&["a \"b\"".into(), "c".into()]);
        assert_eq!(m, "flowchart TD\n  n0[\"a #quot;b#quot;\"]\n  n1[\"c\"]\n  n0 --> n1\n");
    }
}

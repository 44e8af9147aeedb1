//! Readiness/liveness/startup probes aimed at a port the container does
//! not declare: fix the probe to the declared port.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::analyze::{Finding, container_patch, events_with, pod_name, pod_ready, statuses};
use super::gather::Facts;
use crate::model::diagnosis::Evidence;
use crate::model::proposal::{PatchType, Risk};
use crate::policy::ProposalDraft;

/// `(handler, port)` of a probe that targets a port.
fn probe_port(p: &Probe) -> Option<(&'static str, &IntOrString)> {
    if let Some(h) = &p.http_get {
        return Some(("httpGet", &h.port));
    }
    if let Some(t) = &p.tcp_socket {
        return Some(("tcpSocket", &t.port));
    }
    None
}

/// Whether the container declares `port` (by number or by name).
fn declared(c: &Container, port: &IntOrString) -> bool {
    let ports = c.ports.iter().flatten();
    match port {
        IntOrString::Int(n) => ports.clone().any(|p| p.container_port == *n),
        IntOrString::String(s) => {
            ports.clone().any(|p| p.name.as_deref() == Some(s.as_str()))
                || s.parse::<i32>().is_ok_and(|n| ports.clone().any(|p| p.container_port == n))
        }
    }
}

/// The port a probe was meant for: the only declared TCP port, or one named like the handler.
fn intended_port(c: &Container, handler: &str) -> Option<i32> {
    let ports: Vec<_> = c.ports.iter().flatten().filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP").collect();
    if ports.len() == 1 {
        return Some(ports[0].container_port);
    }
    let wanted: &[&str] = if handler == "httpGet" { &["http", "web", "health", "metrics"] } else { &["tcp", "http"] };
    ports.iter().find(|p| p.name.as_deref().is_some_and(|n| wanted.contains(&n))).map(|p| p.container_port)
}

fn show(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

pub fn analyze(facts: &Facts) -> Option<Finding> {
    let spec = facts.pod_spec()?;
    let w = &facts.target;
    let unhealthy: Vec<String> = events_with(facts, "Unhealthy").filter_map(|e| e.message.clone()).collect();
    let not_ready = facts.pods.iter().filter(|p| !pod_ready(p)).count();
    let restarts: i32 = facts.pods.iter().flat_map(statuses).map(|cs| cs.restart_count).sum();
    let mut f = Finding::default();
    let mut causes = Vec::new();
    for c in &spec.containers {
        let mut fields = serde_json::Map::new();
        for (field, probe) in [
            ("readinessProbe", c.readiness_probe.as_ref()),
            ("livenessProbe", c.liveness_probe.as_ref()),
            ("startupProbe", c.startup_probe.as_ref()),
        ] {
            let Some((handler, port)) = probe.and_then(probe_port) else { continue };
            if declared(c, port) {
                continue;
            }
            let declared_ports: Vec<String> = c.ports.iter().flatten().map(|p| p.container_port.to_string()).collect();
            causes.push(format!(
                "the {field} of container {} probes port {} but the container declares [{}]",
                c.name,
                show(port),
                declared_ports.join(", ")
            ));
            match intended_port(c, handler) {
                Some(to) => {
                    fields.insert(field.to_owned(), json!({handler: {"port": to}}));
                }
                None => f.advice.push(format!(
                    "Set the {field} port of container {} to the port it listens on; it declares none kubemedic can \
                     pick with confidence.",
                    c.name
                )),
            }
        }
        if !fields.is_empty() {
            let mut container = json!({"name": c.name});
            for (k, v) in fields {
                container[k] = v;
            }
            let body = container_patch(&w.kind, "containers", container);
            let mut draft = ProposalDraft::patch(
                &w.kind,
                &w.namespace,
                &w.name,
                PatchType::Strategic,
                body,
                &format!(
                    "{}. Pointing the probe at the declared port lets the kubelet see the container as healthy; \
                     nothing else in the pod changes.",
                    causes.last().cloned().unwrap_or_default()
                ),
            );
            draft.risk = Some(Risk::Low);
            f.drafts.push(draft);
        }
    }
    if causes.is_empty() {
        return None;
    }
    // A mismatch the pods do not suffer from is not this failure's cause.
    if unhealthy.is_empty() && not_ready == 0 && restarts == 0 {
        return None;
    }
    f.confidence = if unhealthy.is_empty() { 0.75 } else { 0.9 };
    f.root_cause = causes.join("; ");
    f.summary = format!("{w}: probe on an undeclared port ({not_ready} pod(s) not ready, {restarts} restart(s))");
    f.chain.push(format!("{w}: {not_ready} pod(s) not ready"));
    if let Some(m) = unhealthy.last() {
        f.chain.push(format!("Unhealthy: {m}"));
        f.evidence.push(Evidence {
            tool: "events".into(),
            args: json!({"namespace": w.namespace, "kind": w.kind, "name": w.name, "include_related": true}),
            finding: format!("{} Unhealthy event(s), latest: {m}", unhealthy.len()),
        });
    } else if let Some(p) = facts.pods.iter().find(|p| !pod_ready(p)) {
        f.chain.push(format!("pod {} not ready", pod_name(p)));
    }
    f.chain.extend(causes);
    Some(f)
}

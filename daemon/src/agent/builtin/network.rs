//! Service and Ingress: the chain Ingress → Service → selector → pods →
//! container ports. A Service without endpoints is explained by the link
//! that breaks: a selector no pod carries (fixed to the labels the nearest
//! pods carry), selected pods that are not ready (their workload is the
//! cause), or a targetPort no selected container declares.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::analyze::{Finding, pod_name, pod_ready};
use super::config::closest_key;
use super::gather::Facts;
use crate::model::proposal::{PatchType, Risk};
use crate::policy::ProposalDraft;

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

fn labels(p: &Pod) -> BTreeMap<String, String> {
    p.metadata.labels.clone().unwrap_or_default().into_iter().collect()
}

fn live(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The workload that owns a pod, as `Kind/name` (a ReplicaSet's hash suffix is dropped).
fn owner(p: &Pod) -> Option<String> {
    let o = p.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))?;
    if o.kind == "ReplicaSet" {
        let hash = p.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
        if let Some(name) = hash.and_then(|h| o.name.strip_suffix(&format!("-{h}"))) {
            return Some(format!("Deployment/{name}"));
        }
    }
    Some(format!("{}/{}", o.kind, o.name))
}

/// Ready addresses in an Endpoints object.
fn endpoint_count(facts: &Facts) -> (usize, usize) {
    let Some(ep) = facts.related.iter().find(|o| o["kind"] == "Endpoints") else { return (0, 0) };
    let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
    let count = |k: &str| subsets.iter().map(|s| s[k].as_array().map_or(0, Vec::len)).sum();
    (count("addresses"), count("notReadyAddresses"))
}

pub fn service(facts: &Facts) -> Finding {
    let svc = &facts.object;
    let w = &facts.target;
    let selector = str_map(svc.pointer("/spec/selector"));
    let (ready_eps, not_ready_eps) = endpoint_count(facts);
    let mut f = Finding { confidence: 0.9, ..Default::default() };
    if svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        let target = svc.pointer("/spec/externalName").and_then(Value::as_str).unwrap_or_default();
        f.summary = format!("{w} is an ExternalName Service for {target}; it has no endpoints by design");
        f.root_cause = "no failure found: an ExternalName Service resolves by DNS, not endpoints".into();
        f.chain = vec![format!("{w}: ExternalName {target}")];
        f.confidence = 0.6;
        return f;
    }
    if selector.is_empty() {
        f.summary = format!("{w} has no selector; its endpoints are managed by hand ({ready_eps} ready)");
        f.root_cause = if ready_eps == 0 {
            format!("{w} has no selector and no ready endpoints: nothing creates its Endpoints")
        } else {
            "no failure found: a selector-less Service with hand-managed endpoints".into()
        };
        f.chain = vec![format!("{w}: no selector"), format!("{ready_eps} ready endpoint(s)")];
        if ready_eps == 0 {
            f.advice.push(format!(
                "Give {w} a selector matching the pods that should serve it, or create an Endpoints object named {} \
                 with their addresses.",
                w.name
            ));
        }
        return f;
    }
    let sel_text = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let candidates: Vec<&Pod> = facts.pods.iter().filter(|p| live(p)).collect();
    let selected: Vec<&Pod> =
        candidates.iter().copied().filter(|p| selector.iter().all(|(k, v)| labels(p).get(k) == Some(v))).collect();

    if selected.is_empty() {
        return selector_matches_nothing(facts, &selector, &sel_text, &candidates);
    }
    let ready: Vec<&Pod> = selected.iter().copied().filter(|p| pod_ready(p)).collect();
    if let Some(found) = target_port_mismatch(facts, &selected) {
        return found;
    }
    if ready.is_empty() {
        let owners: BTreeSet<String> = selected.iter().filter_map(|p| owner(p)).collect();
        let states = selected
            .iter()
            .map(|p| format!("{} {}", pod_name(p), super::gather::pod_states(p).join("/")))
            .collect::<Vec<_>>()
            .join(", ");
        f.summary = format!("{w} has no ready endpoints: the {} pod(s) it selects are not ready", selected.len());
        f.root_cause = format!(
            "the pods selected by {sel_text} are not ready ({states}); the failure is in {}",
            if owners.is_empty() { "those pods".into() } else { owners.iter().cloned().collect::<Vec<_>>().join(", ") }
        );
        f.chain = vec![
            format!("{w}: 0 ready endpoints ({not_ready_eps} not ready)"),
            format!("selector {sel_text} matches {} pod(s)", selected.len()),
            "no selected pod is ready".into(),
        ];
        f.confidence = 0.8;
        for o in &owners {
            f.advice.push(format!("Diagnose the workload behind it: `kubemedic diagnose {}/{o}`.", w.namespace));
        }
        return f;
    }
    f.summary = format!("{w} looks healthy: {} ready endpoint(s), {} selected pod(s) ready", ready_eps, ready.len());
    f.root_cause = format!("no failure found: selector {sel_text} matches {} ready pod(s)", ready.len());
    f.chain = vec![format!("{w}: {ready_eps} ready endpoint(s)")];
    f.confidence = 0.6;
    f
}

fn selector_matches_nothing(
    facts: &Facts,
    selector: &BTreeMap<String, String>,
    sel_text: &str,
    pods: &[&Pod],
) -> Finding {
    let w = &facts.target;
    let mut f = Finding {
        summary: format!("{w} has no endpoints: its selector {sel_text} matches no pod"),
        chain: vec![format!("{w}: 0 endpoints"), format!("selector {sel_text} matches no pod")],
        confidence: 0.9,
        ..Default::default()
    };
    // Pods that differ from the selector in exactly one label (present with another value).
    let mut near: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for p in pods {
        let l = labels(p);
        let misses: Vec<&String> = selector.keys().filter(|k| l.get(*k) != selector.get(*k)).collect();
        if let [k] = misses.as_slice()
            && let Some(v) = l.get(*k)
            && (selector.len() > 1 || closest_key(&selector[*k], [v]).is_some())
        {
            near.entry(((*k).clone(), v.clone())).or_default().push(pod_name(p));
        }
    }
    if near.len() == 1 {
        let ((k, v), names) = near.into_iter().next().unwrap_or_default();
        f.root_cause = format!(
            "{w} selects {k}={} but the pods that match every other label carry {k}={v} ({}); no pod has {k}={}",
            selector[&k],
            names.join(", "),
            selector[&k]
        );
        f.chain.push(format!("pods {} carry {k}={v}", names.join(", ")));
        let mut draft = ProposalDraft::patch(
            "Service",
            &w.namespace,
            &w.name,
            PatchType::Merge,
            json!({"spec": {"selector": {k.clone(): v}}}),
            &format!(
                "The selector asks for {k}={} which no pod carries; the pods {} that match its other labels carry \
                 {k}={v}. Pointing the selector at them gives the Service endpoints.",
                selector[&k],
                names.join(", ")
            ),
        );
        draft.risk = Some(Risk::Medium);
        f.drafts.push(draft);
    } else {
        let seen: BTreeSet<String> = pods
            .iter()
            .flat_map(|p| {
                labels(p).into_iter().filter(|(k, _)| selector.contains_key(k)).map(|(k, v)| format!("{k}={v}"))
            })
            .collect();
        f.root_cause = format!(
            "{w} selects {sel_text} but no pod in {} carries those labels{}",
            w.namespace,
            if seen.is_empty() {
                String::new()
            } else {
                format!(" (pods carry {})", seen.into_iter().take(8).collect::<Vec<_>>().join(", "))
            }
        );
        f.confidence = 0.8;
        f.advice.push(format!(
            "Set the selector of {w} to the labels of the pods that should serve it, or label those pods with \
             {sel_text}."
        ));
    }
    f
}

/// A Service port whose targetPort no selected container declares.
fn target_port_mismatch(facts: &Facts, selected: &[&Pod]) -> Option<Finding> {
    let w = &facts.target;
    let mut declared: BTreeMap<i32, Option<String>> = BTreeMap::new();
    for p in selected {
        for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
            for port in c.ports.iter().flatten() {
                if port.protocol.as_deref().unwrap_or("TCP") == "TCP" {
                    declared.insert(port.container_port, port.name.clone());
                }
            }
        }
    }
    if declared.is_empty() {
        return None; // Nothing declared: any port may be served.
    }
    for sp in facts.object.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        let port = sp["port"].as_i64().unwrap_or_default();
        let target = sp.get("targetPort").cloned().unwrap_or(json!(port));
        let ok = match &target {
            Value::String(name) => declared.values().any(|n| n.as_deref() == Some(name.as_str())),
            v => v.as_i64().is_some_and(|n| declared.contains_key(&(n as i32))),
        };
        if ok {
            continue;
        }
        let list = declared
            .iter()
            .map(|(p, n)| n.as_ref().map(|n| format!("{p} ({n})")).unwrap_or_else(|| p.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let target_text = target.as_str().map(str::to_owned).unwrap_or_else(|| target.to_string());
        let mut f = Finding {
            summary: format!(
                "{w}: port {port} forwards to targetPort {target_text}, which no selected container declares"
            ),
            root_cause: format!(
                "{w} port {port} targets {target_text} but the selected pods declare container port(s) {list}"
            ),
            chain: vec![
                format!("{w}: traffic to port {port} fails"),
                format!("targetPort {target_text}"),
                format!("containers declare {list}"),
            ],
            confidence: 0.9,
            ..Default::default()
        };
        let fix = if declared.len() == 1 { declared.keys().next().copied() } else { None };
        match fix {
            Some(to) => {
                let mut draft = ProposalDraft::patch(
                    "Service",
                    &w.namespace,
                    &w.name,
                    PatchType::Strategic,
                    json!({"spec": {"ports": [{"port": port, "targetPort": to}]}}),
                    &format!(
                        "Port {port} forwards to {target_text}, which the selected containers do not declare; they \
                         declare {to}."
                    ),
                );
                draft.risk = Some(Risk::Medium);
                f.drafts.push(draft);
            }
            None => f.advice.push(format!(
                "Set targetPort of port {port} of {w} to the container port that serves it (one of {list})."
            )),
        }
        return Some(f);
    }
    None
}

/// One backend reference of an Ingress: where it is and what it names.
struct Backend {
    /// JSON pointer of the `service` object (v1) in the Ingress.
    pointer: String,
    service: String,
    port: Value,
}

fn backends(ing: &Value) -> Vec<Backend> {
    let mut out = Vec::new();
    let mut push = |pointer: String, b: &Value| {
        if let Some(s) = b.get("service") {
            let port = s["port"].get("number").or_else(|| s["port"].get("name")).cloned().unwrap_or(Value::Null);
            out.push(Backend {
                pointer: format!("{pointer}/service"),
                service: s["name"].as_str().unwrap_or_default().into(),
                port,
            });
        } else if let Some(name) = b.get("serviceName").and_then(Value::as_str) {
            out.push(Backend { pointer, service: name.into(), port: b["servicePort"].clone() });
        }
    };
    if let Some(b) = ing.pointer("/spec/defaultBackend").or_else(|| ing.pointer("/spec/backend")) {
        push("/spec/defaultBackend".into(), b);
    }
    for (i, rule) in ing.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for (j, path) in rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten().enumerate() {
            push(format!("/spec/rules/{i}/http/paths/{j}/backend"), &path["backend"]);
        }
    }
    out
}

pub fn ingress(facts: &Facts) -> Finding {
    let w = &facts.target;
    let services: Vec<&Value> = facts.related.iter().filter(|o| o["kind"] == "Service").collect();
    let name_of = |s: &Value| s.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let names: Vec<String> = services.iter().map(|s| name_of(s)).collect();
    let all = backends(&facts.object);
    for b in &all {
        let Some(svc) = services.iter().find(|s| name_of(s) == b.service) else {
            let near = closest_key(&b.service, &names).cloned();
            let mut f = Finding {
                summary: format!("{w}: backend Service {} does not exist", b.service),
                root_cause: format!(
                    "{w} routes to Service {} which does not exist in {}{}",
                    b.service,
                    w.namespace,
                    near.as_ref().map(|n| format!("; Service {n} does")).unwrap_or_default()
                ),
                chain: vec![format!("{w}: backend broken"), format!("Service {} missing", b.service)],
                confidence: 0.9,
                ..Default::default()
            };
            match near {
                Some(n) if b.pointer.ends_with("/service") => f.drafts.push(ingress_fix(w, b, "name", json!(n))),
                Some(n) => f.advice.push(format!("Point the backend at {} to Service {n}.", b.pointer)),
                None => f.advice.push(format!(
                    "Create Service {} in {} for the pods that should serve this route, or point the backend at an \
                     existing Service ({}).",
                    b.service,
                    w.namespace,
                    if names.is_empty() { "there is none".into() } else { names.join(", ") }
                )),
            }
            return f;
        };
        let ports: Vec<&Value> = svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten().collect();
        let port_ok = match &b.port {
            Value::String(n) => ports.iter().any(|p| p["name"].as_str() == Some(n)),
            Value::Number(n) => ports.iter().any(|p| p["port"].as_i64() == n.as_i64()),
            _ => true,
        };
        if !port_ok {
            let have: Vec<String> = ports
                .iter()
                .map(|p| match p["name"].as_str() {
                    Some(n) => format!("{} ({n})", p["port"]),
                    None => p["port"].to_string(),
                })
                .collect();
            let port_text = b.port.as_str().map(str::to_owned).unwrap_or_else(|| b.port.to_string());
            let mut f = Finding {
                summary: format!("{w}: backend port {port_text} is not a port of Service {}", b.service),
                root_cause: format!(
                    "{w} routes to port {port_text} of Service {}, which exposes {}",
                    b.service,
                    have.join(", ")
                ),
                chain: vec![format!("{w}: backend broken"), format!("Service {} has no port {port_text}", b.service)],
                confidence: 0.9,
                ..Default::default()
            };
            if let ([only], true) = (ports.as_slice(), b.pointer.ends_with("/service")) {
                let value = if b.port.is_string() && only["name"].is_string() {
                    json!({"name": only["name"]})
                } else {
                    json!({"number": only["port"]})
                };
                f.drafts.push(ingress_fix(w, b, "port", value));
            } else {
                f.advice.push(format!("Set the backend port at {} to one of {}.", b.pointer, have.join(", ")));
            }
            return f;
        }
    }
    Finding {
        summary: format!("{w} looks healthy: {} backend(s), each an existing Service and port", all.len()),
        root_cause: "no failure found: every backend names an existing Service and port".into(),
        chain: vec![format!("{w}: {} backend(s) resolve", all.len())],
        confidence: 0.6,
        ..Default::default()
    }
}

/// A JSON patch replacing one field of one backend (tested first, so a concurrent edit fails it).
fn ingress_fix(w: &crate::model::signal::WorkloadRef, b: &Backend, field: &str, value: Value) -> ProposalDraft {
    let path = format!("{}/{field}", b.pointer);
    let old = if field == "name" {
        json!(b.service)
    } else if b.port.is_string() {
        json!({"name": b.port})
    } else {
        json!({"number": b.port})
    };
    let mut d = ProposalDraft::patch(
        "Ingress",
        &w.namespace,
        &w.name,
        PatchType::Json,
        json!([{"op": "test", "path": path, "value": old}, {"op": "replace", "path": path, "value": value}]),
        &format!("The backend at {} names {old}, which does not exist; {value} does.", b.pointer),
    );
    d.risk = Some(Risk::Medium);
    d
}

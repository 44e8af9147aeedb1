//! Gathering the facts a diagnosis needs through kubemedic's read tools
//! (the [`Reader`], the only way the built-in runner reads the cluster): the
//! workload, its ReplicaSets (rollout history), pods, events, nodes, the keys
//! (never the values) of referenced Secrets and ConfigMaps, and the logs of
//! crashed containers. What each read found is recorded as [`Evidence`] under
//! the name of the tool that was called.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::read::{Reader, typed};
use crate::agent::{AgentError, Evidence, Gap};
use crate::model::error::error_chain;
use crate::model::signal::WorkloadRef;
use crate::policy::target;
use crate::tools::ToolError;

/// What the cluster shows about one workload.
#[derive(Debug, Clone)]
pub struct Facts {
    pub target: WorkloadRef,
    /// The workload object as returned by the apiserver.
    pub object: Value,
    /// Set when the target is a Deployment.
    pub deployment: Option<Deployment>,
    /// The pod template (or the pod's own spec for a Pod).
    pub template: Option<PodTemplateSpec>,
    /// ReplicaSets owned by the Deployment, newest revision first.
    pub replica_sets: Vec<ReplicaSet>,
    /// ControllerRevisions owned by a StatefulSet or DaemonSet, newest revision first.
    pub controller_revisions: Vec<ControllerRevision>,
    pub pods: Vec<Pod>,
    /// Events of the workload, its ReplicaSets and pods, oldest first.
    pub events: Vec<Event>,
    pub nodes: Vec<Node>,
    /// Referenced Secrets: name → key names (`None` = the Secret does not exist).
    pub secrets: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Referenced ConfigMaps: name → key names (`None` = does not exist).
    pub config_maps: BTreeMap<String, Option<BTreeSet<String>>>,
    /// A referenced Secret or ConfigMap that does not exist → the existing object of that kind
    /// in the namespace whose name is close enough to be the one meant: (kind, missing) → name.
    /// The near object's key names are in `secrets` / `config_maps` like any other.
    pub near_names: BTreeMap<(String, String), String>,
    /// `pod/container` → last lines of the previous (crashed) instance's log.
    pub logs: BTreeMap<String, String>,
    /// Node → (cpu cores, memory bytes) requested by every non-terminal pod
    /// bound to it; gathered only when pods cannot be scheduled.
    pub node_requested: BTreeMap<String, (f64, f64)>,
    /// Set when `node_requested` leaves out pods kubemedic may not see (the scope names
    /// namespaces or excludes some): what is left out, in words. Nodes may be fuller.
    pub node_usage_partial: Option<String>,
    /// Objects a non-workload target depends on, as JSON with `kind` set
    /// (a Service's Endpoints, an Ingress's Services, StorageClasses, a CronJob's Jobs, ...).
    pub related: Vec<Value>,
    /// The Helm release the workload belongs to, from the labels of Helm's release Secrets.
    pub helm: Option<super::helm::Release>,
    /// The firing Alertmanager alert that opened the incident (labels and text untrusted).
    pub alert: Option<crate::model::signal::Signal>,
    pub evidence: Vec<Evidence>,
    /// Steps that could not run (permissions, scope, the apiserver down).
    pub gaps: Vec<Gap>,
}

impl Facts {
    pub fn new(target: WorkloadRef) -> Self {
        Self {
            target,
            object: Value::Null,
            deployment: None,
            template: None,
            replica_sets: Vec::new(),
            controller_revisions: Vec::new(),
            pods: Vec::new(),
            events: Vec::new(),
            nodes: Vec::new(),
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            near_names: BTreeMap::new(),
            logs: BTreeMap::new(),
            node_requested: BTreeMap::new(),
            node_usage_partial: None,
            related: Vec::new(),
            helm: None,
            alert: None,
            evidence: Vec::new(),
            gaps: Vec::new(),
        }
    }

    pub fn pod_spec(&self) -> Option<&PodSpec> {
        self.template.as_ref().and_then(|t| t.spec.as_ref())
    }

    pub fn record(&mut self, tool: &str, args: Value, finding: impl Into<String>) {
        self.evidence.push(Evidence { tool: tool.to_owned(), args, finding: finding.into() });
    }
}

pub fn read_err(what: impl Into<String>) -> impl FnOnce(ToolError) -> AgentError {
    let what = what.into();
    move |source| match source {
        ToolError::NotFound(_) => AgentError::NotFound(what),
        source => AgentError::Read { what, source },
    }
}

/// A read that failed, as a gap of the diagnosis.
pub fn unread(what: impl Into<String>, e: &ToolError) -> Gap {
    match e {
        // The tools refuse a kind the scope hides as unknown: waiting does not change that.
        ToolError::InvalidInput { .. } => Gap::OutOfScope { what: what.into() },
        e => Gap::unread(what, error_chain(e)),
    }
}

/// `a=b,c in (d)` for a list call.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The revision annotation of a ReplicaSet (0 when absent).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Gather the facts for `target`.
pub async fn gather(reader: &Reader<'_>, target: &WorkloadRef, log_lines: i64) -> Result<Facts, AgentError> {
    let kind = super::objects::diagnosable(&target.kind).ok_or_else(|| AgentError::Unsupported(target.kind.clone()))?;
    let namespaced = kind != "Node";
    // The target may come from an alert label: check it before it reaches a path.
    if namespaced {
        crate::names::namespace(&target.namespace)?;
    }
    crate::names::object_name(&target.name)?;
    let scope = reader.scope();
    if (namespaced && !scope.namespace_visible(&target.namespace)) || !scope.kind_visible(kind) {
        return Err(AgentError::OutOfScope(target.to_string()));
    }
    if super::objects::is_object_kind(kind) {
        let mut facts = Facts::new(WorkloadRef::new(kind, &target.namespace, &target.name));
        super::objects::gather(reader, &mut facts).await?;
        return Ok(facts);
    }
    let info = target::kind_info(kind).ok_or_else(|| AgentError::Unsupported(target.kind.clone()))?;
    let mut facts = Facts::new(WorkloadRef::new(info.kind, &target.namespace, &target.name));
    if info.kind == "Node" {
        gather_node(reader, &mut facts).await?;
        return Ok(facts);
    }
    if !matches!(info.kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" | "Pod") {
        return Err(AgentError::Unsupported(target.kind.clone()));
    }
    let ns = target.namespace.as_str();
    let describe_args = json!({"namespace": ns, "kind": info.kind, "name": target.name});

    facts.object = reader
        .get(info.kind, ns, &target.name)
        .await
        .map_err(read_err(target.to_string()))?
        .ok_or_else(|| AgentError::NotFound(target.to_string()))?;
    let mut owned_uids: BTreeSet<String> = BTreeSet::new();
    let uid = facts.object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    owned_uids.insert(uid.clone());

    let selector: Option<LabelSelector> = if info.kind == "Pod" {
        facts.template = Some(PodTemplateSpec {
            metadata: serde_json::from_value(facts.object["metadata"].clone()).ok(),
            spec: serde_json::from_value(facts.object["spec"].clone()).ok(),
        });
        None
    } else {
        facts.template =
            serde_json::from_value(facts.object.pointer("/spec/template").cloned().unwrap_or_default()).ok();
        serde_json::from_value(facts.object.pointer("/spec/selector").cloned().unwrap_or_default()).ok()
    };
    if info.kind == "Deployment" {
        facts.deployment = serde_json::from_value(facts.object.clone()).ok();
    }

    // Pods (and, for a Deployment, its ReplicaSets).
    if let Some(sel) = &selector {
        let labels = selector_string(sel);
        if info.kind == "Deployment" {
            let list = reader
                .list("ReplicaSet", ns, Some(&labels), None)
                .await
                .map_err(read_err(format!("replicasets of {target}")))?;
            let mut owned: Vec<ReplicaSet> = list
                .iter()
                .filter_map(typed::<ReplicaSet>)
                .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
                .collect();
            owned.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
            owned_uids.extend(owned.iter().filter_map(|rs| rs.metadata.uid.clone()));
            facts.replica_sets = owned;
        }
        if matches!(info.kind, "StatefulSet" | "DaemonSet") {
            match reader.list("ControllerRevision", ns, Some(&labels), None).await {
                Ok(list) => {
                    let mut owned: Vec<ControllerRevision> = list
                        .iter()
                        .filter_map(typed::<ControllerRevision>)
                        .filter(|r| r.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
                        .collect();
                    owned.sort_by_key(|r| std::cmp::Reverse(r.revision));
                    facts.controller_revisions = owned;
                }
                Err(e) => facts.gaps.push(unread("controllerrevisions", &e)),
            }
        }
        let list = reader.list("Pod", ns, Some(&labels), None).await.map_err(read_err(format!("pods of {target}")))?;
        facts.pods = list
            .iter()
            .filter_map(typed::<Pod>)
            .filter(|p| {
                info.kind != "Deployment"
                    || p.metadata.owner_references.iter().flatten().any(|o| owned_uids.contains(&o.uid))
            })
            .collect();
    } else if info.kind == "Pod" {
        facts.pods = vec![serde_json::from_value(facts.object.clone()).map_err(|e| AgentError::Read {
            what: format!("pod {target}"),
            source: ToolError::Unavailable { what: "pod decoding", why: e.to_string() },
        })?];
    }
    owned_uids.extend(facts.pods.iter().filter_map(|p| p.metadata.uid.clone()));
    let describe = describe_finding(&facts);
    facts.record("describe_workload", describe_args.clone(), describe);
    if info.kind == "Deployment" {
        let history = history_finding(&facts.replica_sets);
        facts.record("rollout_history", describe_args.clone(), history);
    } else if !facts.controller_revisions.is_empty() {
        let history = facts
            .controller_revisions
            .iter()
            .map(|r| format!("revision {} ({})", r.revision, r.metadata.name.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        facts.record("rollout_history", describe_args.clone(), history);
    }

    // Events of everything it owns.
    match owned_events(reader, ns, &owned_uids).await {
        Ok(list) => {
            let mut events: Vec<Event> = list
                .iter()
                .filter_map(typed::<Event>)
                .filter(|e| e.involved_object.uid.as_ref().is_some_and(|u| owned_uids.contains(u)))
                .collect();
            events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
            let warnings: Vec<String> = events
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .take(6)
                .collect();
            let finding = if warnings.is_empty() {
                format!("{} events, no warnings", events.len())
            } else {
                format!("{} events; warnings: {}", events.len(), warnings.join(" | "))
            };
            facts.events = events;
            facts.record(
                "events",
                json!({"namespace": ns, "kind": info.kind, "name": target.name, "include_related": true}),
                finding,
            );
        }
        Err(e) => facts.gaps.push(unread("events", &e)),
    }

    // A LimitRange refusing pods is not named by the refusal: list the namespace's LimitRanges.
    let limit_refused = facts.events.iter().any(|e| {
        e.reason.as_deref() == Some("FailedCreate") && e.message.as_deref().is_some_and(|m| m.contains(" usage per "))
    });
    if limit_refused {
        match reader.list("LimitRange", ns, None, None).await {
            Ok(list) => {
                let names: Vec<String> = list
                    .iter()
                    .filter_map(|l| l.pointer("/metadata/name").and_then(Value::as_str))
                    .map(Into::into)
                    .collect();
                facts.record(
                    "list_resources",
                    json!({"namespace": ns, "kind": "LimitRange"}),
                    format!("LimitRanges in {ns}: {}", names.join(", ")),
                );
                facts.related.extend(list);
            }
            Err(e) => facts.gaps.push(unread("limitranges", &e)),
        }
    }

    // Nodes, for scheduling questions.
    if scope.kind_visible("node") {
        match reader.list("Node", "", None, None).await {
            Ok(list) => facts.nodes = list.iter().filter_map(typed::<Node>).collect(),
            Err(e) => facts.gaps.push(unread("nodes", &e)),
        }
    }

    if facts.pods.iter().any(unschedulable) && scope.kind_visible("node") {
        gather_node_usage(reader, &mut facts).await;
    }
    super::helm::gather(reader, &mut facts).await;
    gather_refs(reader, &mut facts, &describe_args).await;
    gather_logs(reader, &mut facts, log_lines).await;
    Ok(facts)
}

/// Key names of a Secret or ConfigMap as the tools return it (a Secret's values never are).
fn keys_of(object: &Value) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> =
        object["dataKeys"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    for field in ["data", "binaryData"] {
        keys.extend(object[field].as_object().into_iter().flat_map(|m| m.keys().cloned()));
    }
    keys
}

/// Secrets and ConfigMaps the pod template references: which exist, which keys they hold.
async fn gather_refs(reader: &Reader<'_>, facts: &mut Facts, describe_args: &Value) {
    let Some(spec) = facts.pod_spec().cloned() else { return };
    let ns = facts.target.namespace.clone();
    let (secrets, config_maps) = referenced_objects(&spec);
    for (kind, names) in [("Secret", secrets), ("ConfigMap", config_maps)] {
        if names.is_empty() {
            continue;
        }
        if !reader.scope().kind_visible(kind) {
            facts.gaps.push(Gap::OutOfScope { what: format!("{}s", kind.to_ascii_lowercase()) });
            continue;
        }
        let mut lines = Vec::new();
        for name in &names {
            // Key names only: the tools never return a Secret's values.
            let keys = match reader.get(kind, &ns, name).await {
                Ok(Some(object)) => {
                    let keys = keys_of(&object);
                    lines.push(format!(
                        "{kind} {name} has keys [{}]",
                        keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    Some(keys)
                }
                Ok(None) => {
                    lines.push(format!("{kind} {name} does not exist"));
                    None
                }
                Err(e) => {
                    facts.gaps.push(unread(format!("{} {name}", kind.to_ascii_lowercase()), &e));
                    continue;
                }
            };
            if kind == "Secret" {
                facts.secrets.insert(name.clone(), keys);
            } else {
                facts.config_maps.insert(name.clone(), keys);
            }
        }
        if kind == "Secret" {
            let args = json!({"namespace": ns, "workload_kind": describe_args["kind"], "workload_name": describe_args["name"]});
            facts.record("decode_secret", args, format!("{} (values not read)", lines.join("; ")));
        } else {
            for name in &names {
                let args = json!({"namespace": ns, "kind": kind, "name": name});
                let line = lines.iter().find(|l| l.contains(&format!("{kind} {name} "))).cloned().unwrap_or_default();
                facts.record("get_resource", args, line);
            }
        }
    }
    near_names(reader, facts).await;
}

/// For each referenced Secret or ConfigMap that does not exist, the existing one whose name is a
/// near miss (names only are listed; of the near object, key names only are read).
async fn near_names(reader: &Reader<'_>, facts: &mut Facts) {
    let ns = facts.target.namespace.clone();
    let missing = |m: &BTreeMap<String, Option<BTreeSet<String>>>| {
        m.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    let wanted = [("Secret", missing(&facts.secrets)), ("ConfigMap", missing(&facts.config_maps))];
    for (kind, names) in wanted {
        if names.is_empty() {
            continue;
        }
        let existing = match reader.call("list_resources", json!({"kind": kind, "namespace": ns, "limit": 500})).await {
            Ok(v) => v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["name"].as_str())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            Err(e) => {
                facts.gaps.push(unread(format!("{} names", kind.to_ascii_lowercase()), &e));
                continue;
            }
        };
        for name in names {
            let Some(near) = super::config::closest_key(&name, &existing).cloned() else { continue };
            let Ok(Some(object)) = reader.get(kind, &ns, &near).await else { continue };
            let keys = keys_of(&object);
            facts.record(
                "list_resources",
                json!({"namespace": ns, "kind": kind}),
                format!(
                    "{kind} {name} does not exist; {kind} {near} does, with keys [{}] (values not read)",
                    keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            if kind == "Secret" {
                facts.secrets.insert(near.clone(), Some(keys));
            } else {
                facts.config_maps.insert(near.clone(), Some(keys));
            }
            facts.near_names.insert((kind.to_owned(), name), near);
        }
    }
}

/// Names of Secrets and ConfigMaps a pod spec refers to (env, envFrom, volumes).
pub fn referenced_objects(spec: &PodSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut secrets = BTreeSet::new();
    let mut cms = BTreeSet::new();
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(r) = &vf.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
                if let Some(r) = &vf.config_map_key_ref {
                    cms.insert(r.name.clone());
                }
            }
        }
        for ef in c.env_from.iter().flatten() {
            if let Some(r) = &ef.secret_ref {
                secrets.insert(r.name.clone());
            }
            if let Some(r) = &ef.config_map_ref {
                cms.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(s);
        }
        if let Some(c) = &v.config_map {
            cms.insert(c.name.clone());
        }
    }
    secrets.retain(|s| !s.is_empty());
    cms.retain(|s| !s.is_empty());
    (secrets, cms)
}

/// Previous-instance logs of containers that crashed, two pods at most.
async fn gather_logs(reader: &Reader<'_>, facts: &mut Facts, lines: i64) {
    let ns = facts.target.namespace.clone();
    // (pod, container, previous): a restarted container's crash is in the previous
    // instance; a container that exited and was not restarted (a Job's) is the current one.
    let mut crashed: Vec<(String, String, bool)> = Vec::new();
    for p in &facts.pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        for cs in p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
            if cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).is_some() || cs.restart_count > 0 {
                crashed.push((name.clone(), cs.name.clone(), true));
            } else if cs.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code != 0) {
                crashed.push((name.clone(), cs.name.clone(), false));
            }
        }
    }
    crashed.truncate(2);
    for (pod, container, previous) in crashed {
        let args = json!({"namespace": ns, "pod": pod, "container": container, "tail": lines, "previous": previous});
        match reader.logs(&ns, &pod, &container, previous, lines).await {
            Ok(text) => {
                let line = super::logline::explaining_line(&text).unwrap_or("(no explaining line)").to_owned();
                let mut finding = format!("{pod}/{container} error before exit: {:?}", truncate(&line, 200));
                let instructions = super::logline::instruction_lines(&text);
                if let Some(first) = instructions.first() {
                    finding.push_str(&format!(
                        "; {} line(s) read like instructions and are quoted as data only, e.g. {:?}",
                        instructions.len(),
                        truncate(first, 120)
                    ));
                }
                facts.record("pod_logs", args, finding);
                facts.logs.insert(format!("{pod}/{container}"), text);
            }
            Err(e) => facts.gaps.push(unread(format!("logs of {pod}/{container}"), &e)),
        }
    }
}

async fn gather_node(reader: &Reader<'_>, facts: &mut Facts) -> Result<(), AgentError> {
    let name = facts.target.name.clone();
    let object = reader
        .get("Node", "", &name)
        .await
        .map_err(read_err(format!("node {name}")))?
        .ok_or_else(|| AgentError::NotFound(format!("node {name}")))?;
    let node: Node = typed(&object).ok_or_else(|| AgentError::Read {
        what: format!("node {name}"),
        source: ToolError::Unavailable { what: "node decoding", why: "not a Node object".into() },
    })?;
    facts.object = object;
    let ready = node_ready(&node);
    let finding = match &ready {
        Some((status, reason, msg)) => format!("Node {name} Ready={status} ({reason}: {msg})"),
        None => format!("Node {name} reports no Ready condition"),
    };
    facts.record("get_resource", json!({"kind": "Node", "name": name}), finding);
    facts.nodes = vec![node];
    let on_node = format!("spec.nodeName={name}");
    match reader.list("Pod", "", None, Some(&on_node)).await {
        Ok(list) => {
            // The tools list the visible namespaces only.
            facts.pods = list.iter().filter_map(typed::<Pod>).collect();
            facts.record(
                "list_resources",
                json!({"kind": "Pod", "field_selector": format!("spec.nodeName={name}")}),
                format!("{} visible pods are bound to {name}", facts.pods.len()),
            );
        }
        Err(e) => facts.gaps.push(unread(format!("pods on node {name}"), &e)),
    }
    Ok(())
}

/// Whether the scheduler reported the pod as unschedulable.
pub fn unschedulable(p: &Pod) -> bool {
    p.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

/// What a pod spec requests: (cpu cores, memory bytes); containers summed, init containers as the maximum.
pub fn pod_requests(spec: &PodSpec) -> (f64, f64) {
    let get = |c: &k8s_openapi::api::core::v1::Container, res: &str| {
        let r = c.resources.as_ref();
        r.and_then(|r| r.requests.as_ref())
            .and_then(|m| m.get(res))
            .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(res)))
            .and_then(|q| crate::policy::quantity::parse(&q.0))
            .unwrap_or(0.0)
    };
    let sum = |res: &str| spec.containers.iter().map(|c| get(c, res)).sum::<f64>();
    let init = |res: &str| spec.init_containers.iter().flatten().map(|c| get(c, res)).fold(0.0, f64::max);
    (sum("cpu").max(init("cpu")), sum("memory").max(init("memory")))
}

/// What node usage summed over the visible namespaces leaves out, when the scope hides some.
pub fn hidden_pods(scope: &crate::cluster::Scope) -> Option<String> {
    if !scope.namespaces.is_empty() {
        Some(format!("pods outside the namespaces kubemedic sees ({}) are not counted", scope.namespaces.join(", ")))
    } else if !scope.exclude.is_empty() {
        Some(format!("pods in the namespaces kubemedic does not see ({}) are not counted", scope.exclude.join(", ")))
    } else {
        None
    }
}

/// Requests already placed on each node by the pods of the visible namespaces (sums only;
/// nothing else of those pods is kept). The scope bounds this read like every other: a narrow
/// scope undercounts, and the facts say so.
async fn gather_node_usage(reader: &Reader<'_>, facts: &mut Facts) {
    facts.node_usage_partial = hidden_pods(reader.scope());
    match reader.list("Pod", "", None, Some("status.phase!=Succeeded,status.phase!=Failed")).await {
        Ok(list) => {
            for p in list.iter().filter_map(typed::<Pod>) {
                let Some(spec) = p.spec.as_ref() else { continue };
                let Some(node) = spec.node_name.clone() else { continue };
                let (cpu, mem) = pod_requests(spec);
                let e = facts.node_requested.entry(node).or_default();
                e.0 += cpu;
                e.1 += mem;
            }
            let finding = facts
                .nodes
                .iter()
                .map(|n| {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let alloc = n.status.as_ref().and_then(|s| s.allocatable.clone()).unwrap_or_default();
                    let q = |r: &str| alloc.get(r).map(|q| q.0.clone()).unwrap_or_default();
                    let (cpu, mem) = facts.node_requested.get(&name).copied().unwrap_or_default();
                    format!(
                        "node {name}: allocatable cpu {} memory {}, requested cpu {} memory {}",
                        q("cpu"),
                        q("memory"),
                        crate::policy::quantity::format_cpu(cpu),
                        crate::policy::quantity::format_bytes(mem)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let finding = match &facts.node_usage_partial {
                Some(hidden) => format!("{finding} (requested: {hidden})"),
                None => finding,
            };
            facts.record("cluster_health", json!({}), finding);
        }
        Err(e) => facts.gaps.push(unread("pods per node", &e)),
    }
}

/// `(status, reason, message)` of a node's Ready condition.
pub fn node_ready(node: &Node) -> Option<(String, String, String)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

/// Up to this many owned objects, their events are read one object at a time (field selector
/// `involvedObject.uid`, at once) rather than with every event of the namespace: in a namespace
/// of hundreds of workloads the whole list was a large part of each diagnosis.
const MAX_EVENT_OWNERS: usize = 16;

/// The namespace's events about `owned` objects (and maybe others: the caller filters).
async fn owned_events(reader: &Reader<'_>, ns: &str, owned: &BTreeSet<String>) -> Result<Vec<Value>, ToolError> {
    if owned.is_empty() || owned.len() > MAX_EVENT_OWNERS {
        return reader.list("Event", ns, None, None).await;
    }
    let reads = owned.iter().map(|uid| {
        let fields = format!("involvedObject.uid={uid}");
        async move { reader.list("Event", ns, None, Some(&fields)).await }
    });
    Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
}

fn describe_finding(f: &Facts) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &f.deployment {
        let st = d.status.clone().unwrap_or_default();
        parts.push(format!(
            "Deployment {}: {}/{} replicas available, {} updated",
            f.target.name,
            st.available_replicas.unwrap_or(0),
            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            st.updated_replicas.unwrap_or(0)
        ));
        for c in st.conditions.iter().flatten() {
            if c.status != "True" || c.type_ == "Progressing" {
                parts.push(format!("{}={} ({})", c.type_, c.status, c.reason.clone().unwrap_or_default()));
            }
        }
    }
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for p in &f.pods {
        for s in pod_states(p) {
            *states.entry(s).or_default() += 1;
        }
    }
    let states: Vec<String> = states.into_iter().map(|(s, n)| format!("{n}× {s}")).collect();
    parts.push(format!("{} pods: {}", f.pods.len(), if states.is_empty() { "none".into() } else { states.join(", ") }));
    parts.join("; ")
}

/// Short state labels of each container of a pod (`waiting:ImagePullBackOff`, `ready`, ...).
pub fn pod_states(p: &Pod) -> Vec<String> {
    let status = p.status.clone().unwrap_or_default();
    let statuses = status.container_statuses.unwrap_or_default();
    if statuses.is_empty() {
        return vec![format!("phase:{}", status.phase.unwrap_or_else(|| "Unknown".into()))];
    }
    statuses
        .iter()
        .map(|cs| {
            let st = cs.state.clone().unwrap_or_default();
            let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).and_then(|t| t.reason.clone());
            let base = if let Some(w) = st.waiting {
                format!("waiting:{}", w.reason.unwrap_or_default())
            } else if let Some(t) = st.terminated {
                format!("terminated:{}", t.reason.unwrap_or_default())
            } else if cs.ready {
                "ready".into()
            } else {
                "running-not-ready".into()
            };
            match last {
                Some(l) => format!("{base} (last: {l})"),
                None => base,
            }
        })
        .collect()
}

fn history_finding(rs: &[ReplicaSet]) -> String {
    if rs.is_empty() {
        return "no ReplicaSets".into();
    }
    rs.iter()
        .take(5)
        .map(|r| {
            let st = r.status.clone().unwrap_or_default();
            let image = r
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| s.containers.iter().map(|c| c.image.clone().unwrap_or_default()).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            format!(
                "revision {} ({}): {}/{} ready, image {image}",
                revision(r),
                r.metadata.name.clone().unwrap_or_default(),
                st.ready_replicas.unwrap_or(0),
                st.replicas
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

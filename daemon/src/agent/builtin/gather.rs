//! Gathering the facts a diagnosis needs, the way kubemedic's read tools
//! see them: the workload, its ReplicaSets (rollout history), pods, events,
//! nodes, the keys (never the values) of referenced Secrets and ConfigMaps,
//! and the logs of crashed containers. Every call is recorded as
//! [`Evidence`] under the name of the MCP tool that returns the same data.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, PodSpec, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams};
use serde_json::{Value, json};

use crate::agent::{AgentError, Evidence, Gap};
use crate::cluster::Cluster;
use crate::model::signal::WorkloadRef;
use crate::policy::target;

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
    pub pods: Vec<Pod>,
    /// Events of the workload, its ReplicaSets and pods, oldest first.
    pub events: Vec<Event>,
    pub nodes: Vec<Node>,
    /// Referenced Secrets: name → key names (`None` = the Secret does not exist).
    pub secrets: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Referenced ConfigMaps: name → key names (`None` = does not exist).
    pub config_maps: BTreeMap<String, Option<BTreeSet<String>>>,
    /// `pod/container` → last lines of the previous (crashed) instance's log.
    pub logs: BTreeMap<String, String>,
    /// Node → (cpu cores, memory bytes) requested by every non-terminal pod
    /// bound to it; gathered only when pods cannot be scheduled.
    pub node_requested: BTreeMap<String, (f64, f64)>,
    /// Objects a non-workload target depends on, as JSON with `kind` set
    /// (a Service's Endpoints, an Ingress's Services, StorageClasses, a CronJob's Jobs, ...).
    pub related: Vec<Value>,
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
            pods: Vec::new(),
            events: Vec::new(),
            nodes: Vec::new(),
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            logs: BTreeMap::new(),
            node_requested: BTreeMap::new(),
            related: Vec::new(),
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

fn read_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> AgentError {
    let what = what.into();
    move |source| {
        if target::is_not_found(&source) { AgentError::NotFound(what) } else { AgentError::Read { what, source } }
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
pub async fn gather(cluster: &Cluster, target: &WorkloadRef, log_lines: i64) -> Result<Facts, AgentError> {
    let kind = super::objects::diagnosable(&target.kind).ok_or_else(|| AgentError::Unsupported(target.kind.clone()))?;
    let namespaced = kind != "Node";
    // The target may come from an alert label: check it before it reaches a path.
    if namespaced {
        crate::names::namespace(&target.namespace)?;
    }
    crate::names::object_name(&target.name)?;
    if (namespaced && !cluster.scope.namespace_visible(&target.namespace)) || !cluster.scope.kind_visible(kind) {
        return Err(AgentError::OutOfScope(target.to_string()));
    }
    if super::objects::is_object_kind(kind) {
        let mut facts = Facts::new(WorkloadRef::new(kind, &target.namespace, &target.name));
        super::objects::gather(cluster, &mut facts).await?;
        return Ok(facts);
    }
    let info = target::kind_info(kind).ok_or_else(|| AgentError::Unsupported(target.kind.clone()))?;
    let mut facts = Facts::new(WorkloadRef::new(info.kind, &target.namespace, &target.name));
    if info.kind == "Node" {
        gather_node(cluster, &mut facts).await?;
        return Ok(facts);
    }
    if !matches!(info.kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" | "Pod") {
        return Err(AgentError::Unsupported(target.kind.clone()));
    }
    let ns = target.namespace.as_str();
    let client = cluster.client.clone();
    let describe_args = json!({"namespace": ns, "kind": info.kind, "name": target.name});

    let path = target::object_path(&info, ns, &target.name);
    facts.object = target::get(&client, &path).await.map_err(read_err(target.to_string()))?;
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
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if let Some(sel) = &selector {
        let lp = ListParams::default().labels(&selector_string(sel));
        if info.kind == "Deployment" {
            let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            let list = rs_api.list(&lp).await.map_err(read_err(format!("replicasets of {target}")))?;
            let mut owned: Vec<ReplicaSet> = list
                .items
                .into_iter()
                .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
                .collect();
            owned.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
            owned_uids.extend(owned.iter().filter_map(|rs| rs.metadata.uid.clone()));
            facts.replica_sets = owned;
        }
        let list = pods_api.list(&lp).await.map_err(read_err(format!("pods of {target}")))?;
        facts.pods = list
            .items
            .into_iter()
            .filter(|p| {
                info.kind != "Deployment"
                    || p.metadata.owner_references.iter().flatten().any(|o| owned_uids.contains(&o.uid))
            })
            .collect();
    } else if info.kind == "Pod" {
        facts.pods = vec![
            serde_json::from_value(facts.object.clone())
                .map_err(|e| AgentError::Read { what: format!("pod {target}"), source: kube::Error::SerdeError(e) })?,
        ];
    }
    owned_uids.extend(facts.pods.iter().filter_map(|p| p.metadata.uid.clone()));
    let describe = describe_finding(&facts);
    facts.record("describe_workload", describe_args.clone(), describe);
    if info.kind == "Deployment" {
        let history = history_finding(&facts.replica_sets);
        facts.record("rollout_history", describe_args.clone(), history);
    }

    // Events of everything it owns.
    let ev_api: Api<Event> = Api::namespaced(client.clone(), ns);
    match ev_api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut events: Vec<Event> = list
                .items
                .into_iter()
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
        Err(e) => facts.gaps.push(Gap::unread("events", target::describe(&e))),
    }

    // Nodes, for scheduling questions.
    if cluster.scope.kind_visible("node") {
        match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
            Ok(list) => facts.nodes = list.items,
            Err(e) => facts.gaps.push(Gap::unread("nodes", target::describe(&e))),
        }
    }

    if facts.pods.iter().any(unschedulable) && cluster.scope.kind_visible("node") {
        gather_node_usage(cluster, &mut facts).await;
    }
    gather_refs(cluster, &mut facts, &describe_args).await;
    gather_logs(cluster, &mut facts, log_lines).await;
    Ok(facts)
}

/// Secrets and ConfigMaps the pod template references: which exist, which keys they hold.
async fn gather_refs(cluster: &Cluster, facts: &mut Facts, describe_args: &Value) {
    let Some(spec) = facts.pod_spec().cloned() else { return };
    let ns = facts.target.namespace.clone();
    let (secrets, config_maps) = referenced_objects(&spec);
    if !secrets.is_empty() {
        if cluster.scope.kind_visible("secret") {
            let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns);
            let mut lines = Vec::new();
            for name in &secrets {
                // Key names only: values are never read into a diagnosis.
                let keys = match api.get_opt(name).await {
                    Ok(Some(s)) => {
                        let mut keys: BTreeSet<String> = s.data.unwrap_or_default().into_keys().collect();
                        keys.extend(s.string_data.unwrap_or_default().into_keys());
                        lines.push(format!(
                            "Secret {name} has keys [{}]",
                            keys.iter().cloned().collect::<Vec<_>>().join(", ")
                        ));
                        Some(keys)
                    }
                    Ok(None) => {
                        lines.push(format!("Secret {name} does not exist"));
                        None
                    }
                    Err(e) => {
                        facts.gaps.push(Gap::unread(format!("secret {name}"), target::describe(&e)));
                        continue;
                    }
                };
                facts.secrets.insert(name.clone(), keys);
            }
            let args = json!({"namespace": ns, "workload_kind": describe_args["kind"], "workload_name": describe_args["name"]});
            facts.record("decode_secret", args, format!("{} (values not read)", lines.join("; ")));
        } else {
            facts.gaps.push(Gap::OutOfScope { what: "secrets".into() });
        }
    }
    if !config_maps.is_empty() {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
        let mut lines = Vec::new();
        for name in &config_maps {
            let keys = match api.get_opt(name).await {
                Ok(Some(c)) => {
                    let mut keys: BTreeSet<String> = c.data.unwrap_or_default().into_keys().collect();
                    keys.extend(c.binary_data.unwrap_or_default().into_keys());
                    lines.push(format!(
                        "ConfigMap {name} has keys [{}]",
                        keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    Some(keys)
                }
                Ok(None) => {
                    lines.push(format!("ConfigMap {name} does not exist"));
                    None
                }
                Err(e) => {
                    facts.gaps.push(Gap::unread(format!("configmap {name}"), target::describe(&e)));
                    continue;
                }
            };
            facts.config_maps.insert(name.clone(), keys);
        }
        for name in &config_maps {
            let args = json!({"namespace": ns, "kind": "ConfigMap", "name": name});
            let line = lines.iter().find(|l| l.contains(&format!("ConfigMap {name} "))).cloned().unwrap_or_default();
            facts.record("get_resource", args, line);
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
async fn gather_logs(cluster: &Cluster, facts: &mut Facts, lines: i64) {
    let ns = facts.target.namespace.clone();
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
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
        let lp =
            LogParams { container: Some(container.clone()), previous, tail_lines: Some(lines), ..Default::default() };
        let args = json!({"namespace": ns, "pod": pod, "container": container, "tail": lines, "previous": previous});
        match api.logs(&pod, &lp).await {
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
            Err(e) => facts.gaps.push(Gap::unread(format!("logs of {pod}/{container}"), target::describe(&e))),
        }
    }
}

async fn gather_node(cluster: &Cluster, facts: &mut Facts) -> Result<(), AgentError> {
    let name = facts.target.name.clone();
    let api: Api<Node> = Api::all(cluster.client.clone());
    let node = api.get(&name).await.map_err(read_err(format!("node {name}")))?;
    facts.object = serde_json::to_value(&node).unwrap_or_default();
    let ready = node_ready(&node);
    let finding = match &ready {
        Some((status, reason, msg)) => format!("Node {name} Ready={status} ({reason}: {msg})"),
        None => format!("Node {name} reports no Ready condition"),
    };
    facts.record("get_resource", json!({"kind": "Node", "name": name}), finding);
    facts.nodes = vec![node];
    let lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
    match Api::<Pod>::all(cluster.client.clone()).list(&lp).await {
        Ok(list) => {
            facts.pods = list
                .items
                .into_iter()
                .filter(|p| cluster.scope.namespace_visible(p.metadata.namespace.as_deref().unwrap_or_default()))
                .collect();
            facts.record(
                "list_resources",
                json!({"kind": "Pod", "field_selector": format!("spec.nodeName={name}")}),
                format!("{} visible pods are bound to {name}", facts.pods.len()),
            );
        }
        Err(e) => facts.gaps.push(Gap::unread(format!("pods on node {name}"), target::describe(&e))),
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

/// Requests already placed on each node (sums only; nothing else of those pods is kept).
async fn gather_node_usage(cluster: &Cluster, facts: &mut Facts) {
    let lp = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    match Api::<Pod>::all(cluster.client.clone()).list(&lp).await {
        Ok(list) => {
            for p in list.items {
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
            facts.record("cluster_health", json!({}), finding);
        }
        Err(e) => facts.gaps.push(Gap::unread("pods per node", target::describe(&e))),
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

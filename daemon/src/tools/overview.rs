//! Overviews: `cluster_health` (nodes, pods, workloads short of replicas,
//! warnings) and `workload_graph` (a Mermaid diagram of what owns, selects
//! and mounts what).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kinds;
use super::workload::{pod_summary, rollout_of};
use super::{Caller, ToolError, Tools};

/// Input of `cluster_health`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthInput {
    /// Limit to one namespace; omit for every visible namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct NodeHealth {
    pub name: String,
    pub ready: bool,
    #[serde(default)]
    pub reason: String,
    pub unschedulable: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct WorkloadHealth {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub desired: i64,
    pub ready: i64,
    pub available: i64,
    /// `complete`, `progressing` or `failed`.
    pub rollout: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct PodProblem {
    pub namespace: String,
    pub pod: String,
    pub phase: String,
    /// Waiting or last-terminated reasons of its containers.
    pub reasons: Vec<String>,
    pub restarts: i32,
}

/// Output of `cluster_health`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct HealthOutput {
    pub cluster: String,
    /// `healthy`, `degraded` (something short of desired) or `down` (no Ready node).
    pub verdict: String,
    pub nodes: Vec<NodeHealth>,
    /// Pods by phase.
    pub pods_by_phase: BTreeMap<String, usize>,
    /// Workloads whose ready replicas are below the desired count, or whose rollout failed.
    pub unhealthy_workloads: Vec<WorkloadHealth>,
    pub problem_pods: Vec<PodProblem>,
    /// Warning events by reason.
    pub warnings_by_reason: BTreeMap<String, i64>,
}

/// Input of `workload_graph`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphInput {
    pub namespace: String,
    /// One workload's kind (with `name`); omit for every workload of the namespace.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Output of `workload_graph`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct GraphOutput {
    /// A Mermaid `flowchart LR` diagram.
    pub mermaid: String,
    /// `Kind/name` of every node.
    pub nodes: Vec<String>,
    /// `from --label--> to`.
    pub edges: Vec<String>,
}

impl Tools {
    pub async fn cluster_health(&self, _caller: &Caller, input: HealthInput) -> Result<HealthOutput, ToolError> {
        const TOOL: &str = "cluster_health";
        let scope = &self.cluster.scope;
        let ns = kinds::optional_namespace(TOOL, scope, input.namespace.as_deref())?;
        let client = self.cluster.client.clone();
        let nodes = if scope.kind_visible("Node") {
            match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
                Ok(l) => l.items,
                Err(kube::Error::Api(e)) if e.code == 403 => Vec::new(),
                Err(e) => return Err(ToolError::kube("list nodes", e)),
            }
        } else {
            Vec::new()
        };
        let nodes: Vec<NodeHealth> = nodes
            .iter()
            .map(|n| {
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
                NodeHealth {
                    name: n.name_any(),
                    ready: ready.is_some_and(|c| c.status == "True"),
                    reason: ready.and_then(|c| c.reason.clone()).unwrap_or_default(),
                    unschedulable: n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
                }
            })
            .collect();
        let pod_kind = kinds::resolve(TOOL, scope, "Pod")?;
        let pods: Vec<Pod> = self
            .list_dynamic(&pod_kind, ns, &ListParams::default())
            .await?
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok().and_then(|v| serde_json::from_value(v).ok()))
            .collect();
        let mut pods_by_phase = BTreeMap::new();
        let mut problem_pods = Vec::new();
        for p in &pods {
            let s = pod_summary(p);
            *pods_by_phase.entry(s.phase.clone()).or_insert(0) += 1;
            let reasons: Vec<String> = s
                .containers
                .iter()
                .flat_map(|c| {
                    let mut r = Vec::new();
                    if c.state.state == "waiting" || (c.state.state == "terminated" && c.state.exit_code != Some(0)) {
                        r.push(c.state.reason.clone());
                    }
                    if let Some(l) = &c.last_state
                        && l.state == "terminated"
                        && !c.ready
                    {
                        r.push(l.reason.clone());
                    }
                    r
                })
                .filter(|r| !r.is_empty())
                .collect();
            if s.phase == "Failed" || s.phase == "Pending" || !reasons.is_empty() {
                problem_pods.push(PodProblem {
                    namespace: p.namespace().unwrap_or_default(),
                    pod: s.name,
                    phase: s.phase,
                    reasons,
                    restarts: s.restarts,
                });
            }
        }
        let mut unhealthy_workloads = Vec::new();
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            let Ok(k) = kinds::resolve(TOOL, scope, kind) else { continue };
            for o in self.list_dynamic(&k, ns, &ListParams::default()).await? {
                let st = rollout_of(k.kind, &serde_json::to_value(&o).unwrap_or_default());
                if st.ready < st.desired || st.status == "failed" {
                    unhealthy_workloads.push(WorkloadHealth {
                        kind: k.kind.into(),
                        namespace: o.namespace().unwrap_or_default(),
                        name: o.name_any(),
                        desired: st.desired,
                        ready: st.ready,
                        available: st.available,
                        rollout: st.status,
                        message: st.message,
                    });
                }
            }
        }
        let mut warnings_by_reason = BTreeMap::new();
        for e in self.list_events(ns).await? {
            if e.type_.as_deref() == Some("Warning") {
                *warnings_by_reason.entry(e.reason.clone().unwrap_or_default()).or_insert(0) +=
                    i64::from(e.count.unwrap_or(1));
            }
        }
        let verdict = if !nodes.is_empty() && nodes.iter().all(|n| !n.ready) {
            "down"
        } else if !unhealthy_workloads.is_empty() || !problem_pods.is_empty() || nodes.iter().any(|n| !n.ready) {
            "degraded"
        } else {
            "healthy"
        };
        let mut out = HealthOutput {
            cluster: self.cluster.name.clone(),
            verdict: verdict.into(),
            nodes,
            pods_by_phase,
            unhealthy_workloads,
            problem_pods,
            warnings_by_reason,
        };
        let mut v = serde_json::to_value(&out).unwrap_or_default();
        crate::redact::redact_value(&mut v);
        if let Ok(clean) = serde_json::from_value(v) {
            out = clean;
        }
        Ok(out)
    }

    pub async fn workload_graph(&self, _caller: &Caller, input: GraphInput) -> Result<GraphOutput, ToolError> {
        const TOOL: &str = "workload_graph";
        let scope = &self.cluster.scope;
        kinds::namespace(TOOL, scope, &input.namespace)?;
        let ns = input.namespace.as_str();
        let mut roots: Vec<(String, String)> = Vec::new();
        match (input.kind.as_deref().filter(|k| !k.is_empty()), input.name.as_deref().filter(|n| !n.is_empty())) {
            (Some(kind), Some(name)) => roots.push((kind.to_owned(), name.to_owned())),
            (None, None) => {
                for kind in ["Deployment", "StatefulSet", "DaemonSet", "Job"] {
                    let Ok(k) = kinds::resolve(TOOL, scope, kind) else { continue };
                    for o in self.list_dynamic(&k, Some(ns), &ListParams::default()).await? {
                        // Jobs owned by a CronJob and such still count; ReplicaSets come through their Deployment.
                        roots.push((k.kind.to_owned(), o.name_any()));
                    }
                }
                roots.truncate(50);
            }
            _ => return Err(ToolError::invalid(TOOL, "give both `kind` and `name`, or neither")),
        }
        let mut g = Graph::default();
        let mut all_pods: Vec<Pod> = Vec::new();
        for (kind, name) in &roots {
            let tree = self.workload_tree(TOOL, ns, kind, name).await?;
            let root = g.node(tree.kind, name);
            for rs in &tree.replica_sets {
                let r = g.node("ReplicaSet", &rs.name_any());
                g.edge(&root, "owns", &r);
                for p in tree
                    .pods
                    .iter()
                    .filter(|p| p.owner_references().iter().any(|o| Some(&o.uid) == rs.metadata.uid.as_ref()))
                {
                    let pn = g.node("Pod", &p.name_any());
                    g.edge(&r, "owns", &pn);
                }
            }
            if tree.kind != "Deployment" && tree.kind != "Pod" {
                for p in &tree.pods {
                    let pn = g.node("Pod", &p.name_any());
                    g.edge(&root, "owns", &pn);
                }
            }
            if let Some(spec) = super::secrets::pod_spec_of(&tree) {
                for r in self.references(ns, &spec).await? {
                    let kind = if r.source == "secret" { "Secret" } else { "ConfigMap" };
                    let target = g.node(kind, &r.object);
                    let label = if r.resolves || r.optional { "uses" } else { "missing" };
                    g.edge(&root, label, &target);
                }
            }
            all_pods.extend(tree.pods);
        }
        if scope.kind_visible("Service") {
            let services = Api::<Service>::namespaced(self.cluster.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| ToolError::kube(format!("list services in {ns}"), e))?;
            for svc in services.items {
                let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.clone()).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let selected: Vec<&Pod> =
                    all_pods.iter().filter(|p| sel.iter().all(|(k, v)| p.labels().get(k) == Some(v))).collect();
                if selected.is_empty() {
                    continue;
                }
                let s = g.node("Service", &svc.name_any());
                for p in selected {
                    let pn = g.node("Pod", &p.name_any());
                    g.edge(&s, "selects", &pn);
                }
            }
        }
        Ok(g.finish())
    }
}

#[derive(Default)]
struct Graph {
    nodes: Vec<String>,
    edges: Vec<(String, String, String)>,
}

impl Graph {
    fn node(&mut self, kind: &str, name: &str) -> String {
        let id = format!("{kind}/{name}");
        if !self.nodes.contains(&id) {
            self.nodes.push(id.clone());
        }
        id
    }

    fn edge(&mut self, from: &str, label: &str, to: &str) {
        let e = (from.to_owned(), label.to_owned(), to.to_owned());
        if !self.edges.contains(&e) {
            self.edges.push(e);
        }
    }

    fn finish(self) -> GraphOutput {
        let id = |n: &str| {
            let i = self.nodes.iter().position(|x| x == n).unwrap_or(0);
            format!("n{i}")
        };
        let mut m = String::from("flowchart LR\n");
        for n in &self.nodes {
            let (kind, name) = n.split_once('/').unwrap_or(("", n));
            // Names are DNS-1123, kinds alphanumeric: nothing to escape but quotes.
            m.push_str(&format!("  {}[\"{}<br/>{}\"]\n", id(n), kind, name.replace('"', "'")));
        }
        for (from, label, to) in &self.edges {
            let arrow = if label == "missing" { format!("-. {label} .->") } else { format!("-- {label} -->") };
            m.push_str(&format!("  {} {arrow} {}\n", id(from), id(to)));
        }
        let edges = self.edges.iter().map(|(f, l, t)| format!("{f} --{l}--> {t}")).collect();
        GraphOutput { mermaid: m, nodes: self.nodes, edges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mermaid_shape() {
        let mut g = Graph::default();
        let d = g.node("Deployment", "web");
        let r = g.node("ReplicaSet", "web-1");
        let s = g.node("Secret", "db");
        g.edge(&d, "owns", &r);
        g.edge(&d, "missing", &s);
        g.edge(&d, "owns", &r);
        let out = g.finish();
        assert_eq!(
            out.mermaid,
            "flowchart LR\n  n0[\"Deployment<br/>web\"]\n  n1[\"ReplicaSet<br/>web-1\"]\n  n2[\"Secret<br/>db\"]\n  n0 -- owns --> n1\n  n0 -. missing .-> n2\n"
        );
        assert_eq!(
            out.edges,
            vec!["Deployment/web --owns--> ReplicaSet/web-1", "Deployment/web --missing--> Secret/db"]
        );
    }
}

//! Workload reads: the owner chain (Deployment → ReplicaSet → Pods),
//! describe, rollout status (with progress) and history.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kinds;
use super::read::{EventSummary, event_summary, event_time};
use super::{Caller, ProgressFn, ToolError, Tools};

/// Kinds that own pods.
pub const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"];
/// Kinds with rollouts.
pub const ROLLOUT_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];
/// Annotation holding a Deployment revision on its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A workload with what it owns.
pub(crate) struct WorkloadTree {
    pub kind: &'static str,
    pub namespace: String,
    /// The workload object itself (for a Pod: the pod).
    pub object: DynamicObject,
    /// Owners above the object (Pod → ReplicaSet → Deployment), outermost first.
    pub owners: Vec<String>,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
}

/// `{namespace, kind, name}` of a workload.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadInput {
    /// Namespace of the workload.
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or Pod.
    pub kind: String,
    /// Name of the workload.
    pub name: String,
}

/// A status condition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition: Option<String>,
}

/// State of one container.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct StateSummary {
    /// `waiting`, `running`, `terminated` or `unknown`.
    pub state: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ContainerSummary {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub ready: bool,
    pub restart_count: i32,
    pub state: StateSummary,
    /// The previous instance's end (e.g. `terminated` / `OOMKilled`).
    pub last_state: Option<StateSummary>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct PodSummary {
    pub name: String,
    /// Owning ReplicaSet (or other owner), if any.
    pub owner: Option<String>,
    pub phase: String,
    pub node: Option<String>,
    pub ready: bool,
    pub restarts: i32,
    pub conditions: Vec<Condition>,
    pub containers: Vec<ContainerSummary>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ReplicaSetSummary {
    pub name: String,
    pub revision: Option<i64>,
    pub desired: i32,
    pub ready: i32,
    pub images: Vec<String>,
    pub created: Option<String>,
}

/// Output of `describe_workload`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct DescribeOutput {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// From the outermost owner down to the pods, e.g. `Deployment/web → ReplicaSet/web-5d4 → Pod/web-5d4-x`.
    pub owner_chain: Vec<String>,
    /// Desired/updated/ready/available replicas, where the kind has them.
    pub replicas: BTreeMap<String, i64>,
    pub conditions: Vec<Condition>,
    pub replica_sets: Vec<ReplicaSetSummary>,
    pub pods: Vec<PodSummary>,
    /// Recent events of the workload, its ReplicaSets and Pods (newest first, at most 25).
    pub events: Vec<EventSummary>,
}

/// Input of `rollout_status`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutStatusInput {
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    pub name: String,
    /// Wait up to this many seconds for the rollout to finish (0-600, default 0), sending progress notifications.
    #[serde(default)]
    pub wait_seconds: Option<i64>,
}

/// Output of `rollout_status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct RolloutStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `complete`, `progressing` or `failed`.
    pub status: String,
    pub message: String,
    pub desired: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
    pub waited_seconds: u64,
}

/// One revision of a workload.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Revision {
    pub revision: i64,
    /// ReplicaSet or ControllerRevision name.
    pub name: String,
    pub images: Vec<String>,
    pub created: Option<String>,
    /// Pods of this revision that are ready (Deployments only).
    pub ready: Option<i32>,
    /// The revision the workload runs now.
    pub current: bool,
    #[serde(default)]
    pub change_cause: String,
}

/// Output of `rollout_history`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct HistoryOutput {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Oldest first.
    pub revisions: Vec<Revision>,
}

/// How to list what `workload` may own: from the watch cache, with the workload's
/// `spec.selector` when it has one the apiserver can take (every pod and ReplicaSet it owns
/// matches it; the caller still checks the owner), else everything in the namespace.
fn owned_list_params(workload: &DynamicObject) -> ListParams {
    let lp = ListParams::default().match_any();
    let selector = workload
        .data
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
        .and_then(|s| kube::core::Selector::try_from(s).ok());
    match selector {
        Some(sel) if !sel.selects_all() => lp.labels_from(&sel),
        _ => lp,
    }
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.uid == uid))
}

fn controller_of(meta: &kube::api::ObjectMeta) -> Option<(String, String)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

pub(crate) fn rs_revision(rs: &ReplicaSet) -> Option<i64> {
    rs.annotations().get(REVISION_ANNOTATION).and_then(|r| r.parse().ok())
}

impl Tools {
    /// Resolve a workload and what it owns. `kind` must already be canonical or resolvable.
    pub(crate) async fn workload_tree(
        &self,
        tool: &str,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<WorkloadTree, ToolError> {
        let scope = &self.cluster.scope;
        kinds::namespace(tool, scope, ns)?;
        kinds::name(tool, "name", name)?;
        let k = kinds::resolve_one_of(tool, scope, kind, WORKLOAD_KINDS)?;
        let client = &self.cluster.client;
        let object = k
            .api(client, Some(ns))
            .get(name)
            .await
            .map_err(|e| ToolError::kube(format!("{} {ns}/{name}", k.kind), e))?;
        let uid = object.uid().unwrap_or_default();
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        // What it owns, narrowed by its own selector and read from the apiserver's watch cache
        // (`resourceVersion=0`) like the other reads, then filtered by owner as before. Listing
        // every ReplicaSet and Pod of the namespace from etcd made each call cost as much as the
        // namespace was large: with 100 workloads in a namespace that was most of a diagnosis.
        let owned = owned_list_params(&object);
        let mut tree = WorkloadTree {
            kind: k.kind,
            namespace: ns.to_owned(),
            object,
            owners: Vec::new(),
            replica_sets: Vec::new(),
            pods: Vec::new(),
        };
        let list_pods =
            || async { pods_api.list(&owned).await.map_err(|e| ToolError::kube(format!("list pods in {ns}"), e)) };
        match k.kind {
            "Pod" => {
                let pod = pods_api.get(name).await.map_err(|e| ToolError::kube(format!("Pod {ns}/{name}"), e))?;
                let mut owner = controller_of(&pod.metadata);
                while let Some((okind, oname)) = owner.take() {
                    tree.owners.insert(0, format!("{okind}/{oname}"));
                    if okind == "ReplicaSet"
                        && let Ok(rs) = rs_api.get(&oname).await
                    {
                        owner = controller_of(&rs.metadata);
                        tree.replica_sets.push(rs);
                    }
                }
                tree.pods.push(pod);
            }
            "Deployment" => {
                let all_rs =
                    rs_api.list(&owned).await.map_err(|e| ToolError::kube(format!("list replicasets in {ns}"), e))?;
                tree.replica_sets = all_rs.items.into_iter().filter(|rs| owned_by(&rs.metadata, &uid)).collect();
                tree.replica_sets.sort_by_key(|rs| std::cmp::Reverse(rs_revision(rs)));
                let uids: Vec<String> = tree.replica_sets.iter().filter_map(|rs| rs.uid()).collect();
                tree.pods = list_pods()
                    .await?
                    .items
                    .into_iter()
                    .filter(|p| uids.iter().any(|u| owned_by(&p.metadata, u)))
                    .collect();
            }
            _ => {
                tree.pods = list_pods().await?.items.into_iter().filter(|p| owned_by(&p.metadata, &uid)).collect();
            }
        }
        tree.pods.sort_by_key(|p| p.name_any());
        Ok(tree)
    }

    pub async fn describe_workload(&self, _caller: &Caller, input: WorkloadInput) -> Result<DescribeOutput, ToolError> {
        const TOOL: &str = "describe_workload";
        let tree = self.workload_tree(TOOL, &input.namespace, &input.kind, &input.name).await?;
        let data = &tree.object.data;
        let mut replicas = BTreeMap::new();
        for (key, ptr) in [
            ("desired", "/spec/replicas"),
            ("updated", "/status/updatedReplicas"),
            ("ready", "/status/readyReplicas"),
            ("available", "/status/availableReplicas"),
            ("desired_scheduled", "/status/desiredNumberScheduled"),
            ("number_ready", "/status/numberReady"),
            ("active", "/status/active"),
            ("succeeded", "/status/succeeded"),
            ("failed", "/status/failed"),
        ] {
            if let Some(v) = data.pointer(ptr).and_then(Value::as_i64) {
                replicas.insert(key.to_owned(), v);
            }
        }
        let conditions =
            if tree.kind == "Pod" { Vec::new() } else { conditions_of(data.pointer("/status/conditions")) };
        let me = format!("{}/{}", tree.kind, input.name);
        let mut chain = tree.owners.clone();
        chain.push(me.clone());
        if tree.kind == "Deployment" {
            for rs in &tree.replica_sets {
                chain.push(format!("ReplicaSet/{}", rs.name_any()));
            }
        }
        if tree.kind != "Pod" {
            chain.extend(tree.pods.iter().map(|p| format!("Pod/{}", p.name_any())));
        }
        let replica_sets = tree.replica_sets.iter().map(rs_summary).collect();
        let pods = tree.pods.iter().map(pod_summary).collect();

        // Events of everything in the tree.
        let mut names: Vec<(String, String)> = vec![(tree.kind.to_owned(), input.name.clone())];
        names.extend(tree.replica_sets.iter().map(|r| ("ReplicaSet".to_owned(), r.name_any())));
        names.extend(tree.pods.iter().map(|p| ("Pod".to_owned(), p.name_any())));
        for o in &tree.owners {
            if let Some((k, n)) = o.split_once('/') {
                names.push((k.to_owned(), n.to_owned()));
            }
        }
        let mut events: Vec<_> = self
            .events_about(Some(&tree.namespace), &names)
            .await?
            .into_iter()
            .filter(|e| {
                let k = e.involved_object.kind.as_deref().unwrap_or_default();
                let n = e.involved_object.name.as_deref().unwrap_or_default();
                names.iter().any(|(kk, nn)| kk == k && nn == n)
            })
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
        let events = events.iter().take(25).map(event_summary).collect();
        let mut out = DescribeOutput {
            kind: tree.kind.to_owned(),
            namespace: tree.namespace.clone(),
            name: input.name,
            owner_chain: chain,
            replicas,
            conditions,
            replica_sets,
            pods,
            events,
        };
        // Messages come from the cluster (known values are scrubbed at the sink).
        let mut v = serde_json::to_value(&out).unwrap_or_default();
        crate::redact::redact_value(&mut v);
        if let Ok(clean) = serde_json::from_value(v) {
            out = clean;
        }
        Ok(out)
    }

    pub async fn rollout_status(
        &self,
        _caller: &Caller,
        input: RolloutStatusInput,
        progress: Option<ProgressFn>,
    ) -> Result<RolloutStatus, ToolError> {
        const TOOL: &str = "rollout_status";
        let scope = &self.cluster.scope;
        kinds::namespace(TOOL, scope, &input.namespace)?;
        kinds::name(TOOL, "name", &input.name)?;
        let k = kinds::resolve_one_of(TOOL, scope, &input.kind, ROLLOUT_KINDS)?;
        let wait = kinds::cap(TOOL, "wait_seconds", input.wait_seconds.unwrap_or(0), 0, 600)? as u64;
        let api = k.api(&self.cluster.client, Some(&input.namespace));
        let started = std::time::Instant::now();
        loop {
            let obj = api
                .get(&input.name)
                .await
                .map_err(|e| ToolError::kube(format!("{} {}/{}", k.kind, input.namespace, input.name), e))?;
            let mut st = rollout_of(k.kind, &serde_json::to_value(&obj).unwrap_or_default());
            st.namespace.clone_from(&input.namespace);
            st.name.clone_from(&input.name);
            st.waited_seconds = started.elapsed().as_secs();
            if let Some(p) = &progress {
                #[allow(clippy::cast_precision_loss)]
                p(st.ready as f64, Some(st.desired.max(1) as f64), format!("{}: {}", st.status, st.message));
            }
            if st.status != "progressing" || started.elapsed().as_secs() >= wait {
                return Ok(st);
            }
            tokio::time::sleep(
                Duration::from_secs(2)
                    .min(Duration::from_secs(wait.saturating_sub(started.elapsed().as_secs()).max(1))),
            )
            .await;
        }
    }

    pub async fn rollout_history(&self, _caller: &Caller, input: WorkloadInput) -> Result<HistoryOutput, ToolError> {
        const TOOL: &str = "rollout_history";
        let scope = &self.cluster.scope;
        let k = kinds::resolve_one_of(TOOL, scope, &input.kind, ROLLOUT_KINDS)?;
        let mut revisions = Vec::new();
        if k.kind == "Deployment" {
            let tree = self.workload_tree(TOOL, &input.namespace, k.kind, &input.name).await?;
            let current = tree
                .object
                .annotations()
                .get(REVISION_ANNOTATION)
                .map(String::as_str)
                .and_then(|r| r.parse::<i64>().ok());
            for rs in &tree.replica_sets {
                let Some(rev) = rs_revision(rs) else { continue };
                revisions.push(Revision {
                    revision: rev,
                    name: rs.name_any(),
                    images: template_images(
                        rs.spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .and_then(|t| serde_json::to_value(t).ok())
                            .as_ref(),
                    ),
                    created: rs.meta().creation_timestamp.as_ref().map(|t| t.0.to_string()),
                    ready: Some(rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)),
                    current: Some(rev) == current,
                    change_cause: rs.annotations().get("kubernetes.io/change-cause").cloned().unwrap_or_default(),
                });
            }
        } else {
            let tree = self.workload_tree(TOOL, &input.namespace, k.kind, &input.name).await?;
            let uid = tree.object.uid().unwrap_or_default();
            let current = tree.object.data.pointer("/status/updateRevision").and_then(Value::as_str).map(str::to_owned);
            let api: Api<ControllerRevision> = Api::namespaced(self.cluster.client.clone(), &input.namespace);
            let list =
                api.list(&ListParams::default()).await.map_err(|e| ToolError::kube("list controllerrevisions", e))?;
            for cr in list.items.into_iter().filter(|c| owned_by(&c.metadata, &uid)) {
                let data = cr.data.as_ref().map(|d| d.0.clone());
                revisions.push(Revision {
                    revision: cr.revision,
                    name: cr.name_any(),
                    images: template_images(data.as_ref().and_then(|d| d.pointer("/spec/template"))),
                    created: cr.meta().creation_timestamp.as_ref().map(|t| t.0.to_string()),
                    ready: None,
                    current: current.as_deref() == Some(cr.name_any().as_str()),
                    change_cause: cr.annotations().get("kubernetes.io/change-cause").cloned().unwrap_or_default(),
                });
            }
        }
        revisions.sort_by_key(|r| r.revision);
        Ok(HistoryOutput { kind: k.kind.to_owned(), namespace: input.namespace, name: input.name, revisions })
    }
}

/// Images of a pod template (containers and init containers).
pub(crate) fn template_images(template: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    for list in ["containers", "initContainers"] {
        if let Some(items) = template.and_then(|t| t.pointer(&format!("/spec/{list}"))).and_then(Value::as_array) {
            out.extend(items.iter().filter_map(|c| c.get("image").and_then(Value::as_str)).map(str::to_owned));
        }
    }
    out
}

/// The rollout state of a workload, the way `kubectl rollout status` decides it.
pub(crate) fn rollout_of(kind: &str, d: &Value) -> RolloutStatus {
    let i = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = i("/metadata/generation");
    let observed = i("/status/observedGeneration");
    let (desired, updated, ready, available) = match kind {
        "DaemonSet" => (
            i("/status/desiredNumberScheduled"),
            i("/status/updatedNumberScheduled"),
            i("/status/numberReady"),
            i("/status/numberAvailable"),
        ),
        _ => (
            d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
            i("/status/updatedReplicas"),
            i("/status/readyReplicas"),
            i("/status/availableReplicas"),
        ),
    };
    let total = match kind {
        "DaemonSet" => desired,
        _ => i("/status/replicas"),
    };
    let deadline = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing")))
        .filter(|c| c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded"));
    let (status, message) = if generation > observed {
        ("progressing", "waiting for the controller to observe the new generation".to_owned())
    } else if let Some(c) = deadline {
        (
            "failed",
            format!("ProgressDeadlineExceeded: {}", c.get("message").and_then(Value::as_str).unwrap_or_default()),
        )
    } else if updated < desired {
        ("progressing", format!("{updated} of {desired} new replicas updated"))
    } else if total > updated {
        ("progressing", format!("{} old replicas pending termination", total - updated))
    } else if available < updated || ready < updated {
        ("progressing", format!("{available} of {updated} updated replicas available"))
    } else {
        ("complete", format!("{desired} of {desired} replicas updated and available"))
    };
    RolloutStatus {
        kind: kind.to_owned(),
        namespace: String::new(),
        name: String::new(),
        status: status.into(),
        message,
        desired,
        updated,
        ready,
        available,
        waited_seconds: 0,
    }
}

pub(crate) fn conditions_of(v: Option<&Value>) -> Vec<Condition> {
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|c| Condition {
                    condition_type: s(c, "type"),
                    status: s(c, "status"),
                    reason: s(c, "reason"),
                    message: s(c, "message"),
                    last_transition: c.get("lastTransitionTime").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rs_summary(rs: &ReplicaSet) -> ReplicaSetSummary {
    ReplicaSetSummary {
        name: rs.name_any(),
        revision: rs_revision(rs),
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        ready: rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        images: template_images(
            rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| serde_json::to_value(t).ok()).as_ref(),
        ),
        created: rs.meta().creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

fn state_summary(s: &ContainerState) -> StateSummary {
    if let Some(w) = &s.waiting {
        StateSummary {
            state: "waiting".into(),
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone().unwrap_or_default(),
            exit_code: None,
        }
    } else if let Some(t) = &s.terminated {
        StateSummary {
            state: "terminated".into(),
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone().unwrap_or_default(),
            exit_code: Some(t.exit_code),
        }
    } else if s.running.is_some() {
        StateSummary { state: "running".into(), reason: String::new(), message: String::new(), exit_code: None }
    } else {
        StateSummary { state: "unknown".into(), reason: String::new(), message: String::new(), exit_code: None }
    }
}

fn container_summary(c: &ContainerStatus, init: bool) -> ContainerSummary {
    let last = c.last_state.as_ref().map(state_summary).filter(|s| s.state != "unknown");
    ContainerSummary {
        name: c.name.clone(),
        image: c.image.clone(),
        init,
        ready: c.ready,
        restart_count: c.restart_count,
        state: c.state.as_ref().map_or_else(
            || StateSummary { state: "unknown".into(), reason: String::new(), message: String::new(), exit_code: None },
            state_summary,
        ),
        last_state: last,
    }
}

pub(crate) fn pod_summary(p: &Pod) -> PodSummary {
    let status = p.status.clone().unwrap_or_default();
    let mut containers: Vec<ContainerSummary> =
        status.init_container_statuses.iter().flatten().map(|c| container_summary(c, true)).collect();
    containers.extend(status.container_statuses.iter().flatten().map(|c| container_summary(c, false)));
    let conditions = conditions_of(serde_json::to_value(&status.conditions).ok().as_ref());
    let ready = conditions.iter().any(|c| c.condition_type == "Ready" && c.status == "True");
    PodSummary {
        name: p.name_any(),
        owner: controller_of(&p.metadata).map(|(k, n)| format!("{k}/{n}")),
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready,
        restarts: containers.iter().filter(|c| !c.init).map(|c| c.restart_count).sum(),
        conditions,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_states() {
        let d = serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}});
        assert_eq!(rollout_of("Deployment", &d).status, "complete");
        let d = serde_json::json!({"metadata": {"generation": 3}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2}});
        assert_eq!(rollout_of("Deployment", &d).status, "progressing");
        let d = serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
              "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}});
        let st = rollout_of("Deployment", &d);
        assert_eq!((st.status.as_str(), st.message.as_str()), ("failed", "ProgressDeadlineExceeded: too slow"));
        let d = serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(rollout_of("Deployment", &d).message, "1 old replicas pending termination");
    }
}

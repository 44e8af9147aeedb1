//! What the reflector stores keep of each object.
//!
//! The stores exist for owner resolution, signal derivation and cheap
//! listings; none of them reads `managedFields`, the last-applied annotation
//! (a second copy of the object) or pod templates, and those are most of an
//! object's size. Every watch strips them before the object reaches its
//! store or handler, so 3,000 pods cost a few MiB instead of tens.
//! Whoever needs a whole object (`get_resource`, the agent) reads it from
//! the apiserver, never from these stores.
//!
//! Pods, the one kind counted in thousands, are not even decoded whole: the
//! pod watch decodes into [`CachedPod`] (metadata, status, the node and the
//! containers' names), about half of a stripped `Pod`'s memory, because
//! `Pod` and `Container` hold every optional field inline (2 KiB each).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Event, Namespace, Node, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The annotation `kubectl apply` writes: the whole applied object again.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop what no reader of the watch stores uses.
pub trait Strip {
    fn strip(&mut self);
}

fn meta(m: &mut ObjectMeta) {
    m.managed_fields = None;
    if let Some(annotations) = m.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            m.annotations = None;
        }
    }
}

/// A pod template is only read from the apiserver (diagnosis, proposals).
fn template(t: &mut PodTemplateSpec) {
    *t = PodTemplateSpec::default();
}

/// A pod as the watch stores keep it. Status, labels and owner references
/// drive the signals; of the spec only the node is kept (a listing may want
/// to say where a pod runs) and the containers' names (`pod_logs` reads them
/// here instead of a GET). It decodes from, and encodes as, the same JSON as
/// a `Pod` (fields it lacks are skipped), so a listing from the store reads
/// like one from the apiserver.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerName>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ContainerName {
    pub name: String,
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Strip for CachedPod {
    fn strip(&mut self) {
        meta(&mut self.metadata);
    }
}

/// What the pod watch keeps of a whole `Pod` (tests build stores from whole pods).
#[cfg(test)]
impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> Self {
        let mut cached = CachedPod {
            metadata: pod.metadata,
            spec: pod.spec.map(|s| CachedPodSpec {
                node_name: s.node_name,
                containers: s.containers.into_iter().map(|c| ContainerName { name: c.name }).collect(),
            }),
            status: pod.status,
        };
        cached.strip();
        cached
    }
}

/// The `Pod` a reader of whole pods gets from a cached one: the same
/// metadata and status, a spec with the node and the containers' names.
impl From<&CachedPod> for Pod {
    fn from(p: &CachedPod) -> Self {
        Pod {
            metadata: p.metadata.clone(),
            spec: p.spec.as_ref().map(|s| PodSpec {
                node_name: s.node_name.clone(),
                containers: s
                    .containers
                    .iter()
                    .map(|c| Container { name: c.name.clone(), ..Container::default() })
                    .collect(),
                ..PodSpec::default()
            }),
            status: p.status.clone(),
        }
    }
}

impl Strip for Deployment {
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            template(&mut spec.template);
        }
    }
}

impl Strip for ReplicaSet {
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(t) = self.spec.as_mut().and_then(|s| s.template.as_mut()) {
            template(t);
        }
    }
}

impl Strip for StatefulSet {
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            template(&mut spec.template);
            spec.volume_claim_templates = None;
        }
    }
}

impl Strip for DaemonSet {
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            template(&mut spec.template);
        }
    }
}

impl Strip for Job {
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            template(&mut spec.template);
        }
    }
}

impl Strip for Node {
    /// The image list of a busy node runs to hundreds of entries; nothing reads it.
    fn strip(&mut self) {
        meta(&mut self.metadata);
        if let Some(status) = self.status.as_mut() {
            status.images = None;
        }
    }
}

impl Strip for Namespace {
    fn strip(&mut self) {
        meta(&mut self.metadata);
    }
}

impl Strip for Event {
    fn strip(&mut self) {
        meta(&mut self.metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::classify;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    fn managed() -> serde_json::Value {
        serde_json::json!([{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}])
    }

    #[test]
    fn pod_keeps_what_signals_and_owners_read() {
        let pod: Pod = from(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web", "pod-template-hash": "abc"},
                "annotations": {LAST_APPLIED: "{\"big\":1}", "team": "a"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "r1", "controller": true}],
                "managedFields": managed()},
            "spec": {"nodeName": "sim-node-1", "containers": [{"name": "web", "image": "nginx:1.25",
                "env": [{"name": "A", "value": "b"}]}], "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 4,
                "image": "nginx:1.25", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}
        }));
        let failures_before = classify::pod_failures(pod.status.as_ref());
        let restarts_before = classify::pod_restarts(pod.status.as_ref());
        let pod = CachedPod::from(pod);
        assert!(pod.metadata.managed_fields.is_none());
        let annotations = pod.metadata.annotations.as_ref().expect("other annotations stay");
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("team").map(String::as_str), Some("a"));
        let spec = pod.spec.as_ref().expect("a spec");
        assert_eq!(spec.node_name.as_deref(), Some("sim-node-1"));
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web"], "the containers' names stay (pod_logs)");
        let whole = Pod::from(&pod);
        let whole_spec = whole.spec.as_ref().expect("a spec");
        assert!(whole_spec.volumes.is_none());
        assert_eq!(whole_spec.containers[0].name, "web");
        assert!(
            whole_spec.containers[0].image.is_none() && whole_spec.containers[0].env.is_none(),
            "nothing else of them"
        );
        assert_eq!(pod.metadata.labels.as_ref().map(|l| l.len()), Some(2));
        assert_eq!(pod.metadata.owner_references.as_ref().map(|o| o[0].name.as_str()), Some("web-abc"));
        assert_eq!(pod.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(classify::pod_failures(pod.status.as_ref()), failures_before);
        assert!(!failures_before.is_empty());
        assert_eq!(classify::pod_restarts(pod.status.as_ref()), restarts_before);
    }

    /// The pod watch decodes the apiserver's JSON straight into a `CachedPod`,
    /// and the store's listing encodes it back: what it keeps comes through
    /// unchanged, the rest of the spec is never decoded.
    #[test]
    fn cached_pods_decode_from_and_encode_as_pod_json() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}, "managedFields": managed()},
            "spec": {"nodeName": "sim-node-1", "restartPolicy": "Always",
                "containers": [{"name": "web", "image": "nginx:1.25", "env": [{"name": "PASSWORD", "value": "hunter2"}]},
                               {"name": "sidecar", "image": "envoy"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let mut cached: CachedPod = from(json.clone());
        cached.strip();
        let whole = CachedPod::from(from::<Pod>(json));
        assert_eq!(cached, whole, "decoding into the cached shape keeps what stripping a Pod keeps");
        let encoded = serde_json::to_value(&cached).unwrap();
        assert_eq!(
            encoded["spec"],
            serde_json::json!({"nodeName": "sim-node-1", "containers": [{"name": "web"}, {"name": "sidecar"}]})
        );
        assert_eq!(encoded["status"]["podIP"], "10.0.0.7");
        assert!(encoded["metadata"].get("managedFields").is_none());
        assert!(!encoded.to_string().contains("hunter2"), "no env value is kept");
        let back: Pod = from(encoded);
        assert_eq!(back.metadata.labels, cached.metadata.labels);
        assert_eq!(back.status, cached.status);
        assert_eq!(Pod::from(&cached).spec.map(|s| s.containers.len()), Some(2));
    }

    #[test]
    fn only_annotation_was_last_applied() {
        let mut ns: Namespace = from(serde_json::json!({"metadata": {"name": "shop", "labels": {"team": "a"},
            "annotations": {LAST_APPLIED: "{}"}, "managedFields": managed()}}));
        ns.strip();
        assert!(ns.metadata.annotations.is_none() && ns.metadata.managed_fields.is_none());
        assert_eq!(ns.metadata.labels.as_ref().and_then(|l| l.get("team")).map(String::as_str), Some("a"));
    }

    #[test]
    fn workloads_lose_their_template_not_their_health() {
        let mut d: Deployment = from(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "generation": 2, "managedFields": managed()},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}
        }));
        let healthy = classify::deployment_healthy(&d);
        let failures = classify::deployment_failures(&d);
        d.strip();
        let spec = d.spec.as_ref().expect("a spec");
        assert_eq!(spec.replicas, Some(2));
        assert!(spec.template.spec.is_none() && spec.template.metadata.is_none());
        assert_eq!(spec.selector.match_labels.as_ref().map(|l| l.len()), Some(1));
        assert!(d.metadata.managed_fields.is_none());
        assert_eq!(classify::deployment_healthy(&d), healthy);
        assert_eq!(classify::deployment_failures(&d), failures);
        assert!(!failures.is_empty());

        let mut rs: ReplicaSet = from(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "shop", "managedFields": managed(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]},
            "spec": {"replicas": 2, "selector": {}, "template": {"spec": {"containers": [{"name": "web"}]}}}
        }));
        rs.strip();
        assert_eq!(rs.metadata.owner_references.as_ref().map(|o| o[0].name.as_str()), Some("web"));
        assert!(rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| t.spec.is_none()));

        let mut sts: StatefulSet = from(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {}, "template": {"spec": {"containers": [{"name": "db"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }));
        sts.strip();
        let spec = sts.spec.as_ref().expect("a spec");
        assert!(spec.template.spec.is_none() && spec.volume_claim_templates.is_none());
        assert_eq!(spec.replicas, Some(2));
    }

    #[test]
    fn nodes_lose_their_image_list_not_their_conditions() {
        let mut n: Node = from(serde_json::json!({
            "metadata": {"name": "sim-node-1", "managedFields": managed()},
            "spec": {"unschedulable": true},
            "status": {"images": [{"names": ["nginx:1.25"], "sizeBytes": 1}],
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "down"}]}
        }));
        let failure = classify::node_failure(&n);
        n.strip();
        assert!(n.status.as_ref().is_some_and(|s| s.images.is_none() && s.conditions.is_some()));
        assert_eq!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));
        assert_eq!(classify::node_failure(&n), failure);
        assert!(failure.is_some());
    }
}

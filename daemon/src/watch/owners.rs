//! The reflector stores, and owner resolution through them:
//! Pod → ReplicaSet → Deployment, Pod → StatefulSet / DaemonSet / Job → CronJob.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::alerts::OwnerLookup;
use crate::alerts::owners::controller;
use crate::model::signal::WorkloadRef;

/// One store per watch (per namespace when the scope lists namespaces).
pub struct Stores<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    /// `None` = all namespaces (or cluster-scoped).
    pub parts: Vec<(Option<String>, Store<K>)>,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Clone for Stores<K> {
    fn clone(&self) -> Self {
        Self { parts: self.parts.clone() }
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = if namespace.is_empty() { ObjectRef::new(name) } else { ObjectRef::new(name).within(namespace) };
        self.parts.iter().filter(|(ns, _)| ns.as_deref().is_none_or(|n| n == namespace)).find_map(|(_, s)| s.get(&key))
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, s)| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every part has had its first complete list (without waiting).
    pub fn listed(&self) -> bool {
        self.parts.iter().all(|(_, s)| s.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()))
    }

    /// Wait for every part's first complete list; false when a watcher stopped first
    /// (its store can then never become ready).
    pub async fn wait_until_ready(&self) -> bool {
        for (_, s) in &self.parts {
            if s.wait_until_ready().await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Read access to every store.
#[derive(Clone)]
pub struct Cache {
    pub pods: Stores<super::strip::CachedPod>,
    pub replicasets: Stores<ReplicaSet>,
    pub deployments: Stores<Deployment>,
    pub statefulsets: Stores<StatefulSet>,
    pub daemonsets: Stores<DaemonSet>,
    pub jobs: Stores<Job>,
    pub nodes: Stores<Node>,
    pub namespaces: Stores<Namespace>,
}

impl Cache {
    /// The workload that owns a pod with these owner references and labels.
    pub fn owner_of(
        &self,
        namespace: &str,
        owner_refs: Option<&Vec<OwnerReference>>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Option<WorkloadRef> {
        let owner = controller(owner_refs)?;
        match owner.kind.as_str() {
            "ReplicaSet" => Some(self.owner_of_replicaset(namespace, &owner.name, labels)),
            "Job" => Some(self.owner_of_job(namespace, &owner.name)),
            kind => Some(WorkloadRef::new(kind, namespace, &owner.name)),
        }
    }

    /// A Job's CronJob when the store knows it has one, else the Job.
    fn owner_of_job(&self, namespace: &str, job: &str) -> WorkloadRef {
        let cron = self
            .jobs
            .get(namespace, job)
            .and_then(|j| controller(j.metadata.owner_references.as_ref()).cloned())
            .filter(|o| o.kind == "CronJob");
        match cron {
            Some(c) => WorkloadRef::new("CronJob", namespace, c.name),
            None => WorkloadRef::new("Job", namespace, job),
        }
    }

    /// A ReplicaSet's Deployment, from the store; when the store does not know
    /// the ReplicaSet yet, from the Deployment controller's naming
    /// (`<deployment>-<pod-template-hash>`).
    pub fn owner_of_replicaset(
        &self,
        namespace: &str,
        rs: &str,
        pod_labels: Option<&BTreeMap<String, String>>,
    ) -> WorkloadRef {
        if let Some(set) = self.replicasets.get(namespace, rs) {
            return match controller(set.metadata.owner_references.as_ref()) {
                Some(o) => WorkloadRef::new(&o.kind, namespace, &o.name),
                None => WorkloadRef::new("ReplicaSet", namespace, rs),
            };
        }
        let hash = pod_labels.and_then(|l| l.get("pod-template-hash"));
        match hash.and_then(|h| rs.strip_suffix(h.as_str())).and_then(|p| p.strip_suffix('-')) {
            Some(deploy) if !deploy.is_empty() => WorkloadRef::new("Deployment", namespace, deploy),
            _ => WorkloadRef::new("ReplicaSet", namespace, rs),
        }
    }

    /// The workload of a pod by name. A pod the store does not hold (gone already, or its
    /// change not streamed yet) is matched by the names its controller gives pods
    /// (`<replicaset>-<5>`, `<daemonset>-<5>`, `<job>-<5>`, `<statefulset>-<ordinal>`), but only
    /// to a workload the stores hold; the Deployment naming alone (`<deployment>-<hash>-<5>`)
    /// is trusted only while the Deployment store cannot say yet (before its first list).
    /// Otherwise `None`: the pod stands for itself rather than for a workload it may not be of.
    pub fn owner_of_pod_name(&self, namespace: &str, pod: &str) -> Option<WorkloadRef> {
        if let Some(p) = self.pods.get(namespace, pod) {
            return self.owner_of(namespace, p.metadata.owner_references.as_ref(), p.metadata.labels.as_ref());
        }
        let (prefix, suffix) = pod.rsplit_once('-')?;
        // The random suffix controllers append (`generateName`): 5 of [a-z0-9].
        let generated = suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if generated && self.replicasets.get(namespace, prefix).is_some() {
            return Some(self.owner_of_replicaset(namespace, prefix, None));
        }
        if generated && self.jobs.get(namespace, prefix).is_some() {
            return Some(self.owner_of_job(namespace, prefix));
        }
        if generated && self.daemonsets.get(namespace, prefix).is_some() {
            return Some(WorkloadRef::new("DaemonSet", namespace, prefix));
        }
        if suffix.parse::<u32>().is_ok() && self.statefulsets.get(namespace, prefix).is_some() {
            return Some(WorkloadRef::new("StatefulSet", namespace, prefix));
        }
        let deployment = crate::alerts::payload::deployment_of_pod_name(pod)?;
        (self.deployments.get(namespace, deployment).is_some() || !self.deployments.listed())
            .then(|| WorkloadRef::new("Deployment", namespace, deployment))
    }

    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get("", namespace).map(|n| n.metadata.labels.clone().unwrap_or_default())
    }
}

impl OwnerLookup for Cache {
    /// Only what the stores hold: a pod they do not know is looked up in the apiserver next.
    fn owner_of_pod(&self, namespace: &str, pod: &str) -> Option<WorkloadRef> {
        let p = self.pods.get(namespace, pod)?;
        self.owner_of(namespace, p.metadata.owner_references.as_ref(), p.metadata.labels.as_ref())
    }
}

/// The leader's watch stores, for readers that outlive a leadership term
/// (the tools): set when the watchers have synced, cleared when they stop.
/// Readers that find it empty read the apiserver instead.
#[derive(Clone, Default)]
pub struct SharedCache(Arc<std::sync::RwLock<Option<Cache>>>);

impl SharedCache {
    pub fn set(&self, cache: Option<Cache>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = cache;
    }

    /// The synced stores, if the watchers run in this process.
    pub fn get(&self) -> Option<Cache> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{reflector, watcher};

    fn listed<K: kube::Resource<DynamicType = ()> + Clone + 'static>(objects: Vec<K>) -> Stores<K> {
        let (store, mut writer) = reflector::store::<K>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Stores { parts: vec![(None, store)] }
    }

    fn object<K: serde::de::DeserializeOwned>(kind: &str, name: &str, owner: Option<(&str, &str)>) -> K {
        let owners: Vec<serde_json::Value> = owner
            .map(|(k, n)| serde_json::json!({"apiVersion": "v1", "kind": k, "name": n, "uid": "u", "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({"kind": kind,
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners}}))
        .unwrap()
    }

    fn cache(deployments: Stores<Deployment>) -> Cache {
        Cache {
            pods: listed(Vec::new()),
            replicasets: listed(vec![object("ReplicaSet", "web-6d4cf56db6", Some(("Deployment", "web")))]),
            deployments,
            statefulsets: listed(vec![object("StatefulSet", "db", None)]),
            daemonsets: listed(vec![object("DaemonSet", "agent", None)]),
            jobs: listed(vec![
                object("Job", "nightly-29123", Some(("CronJob", "nightly"))),
                object("Job", "migrate", None),
            ]),
            nodes: listed(Vec::new()),
            namespaces: listed(Vec::new()),
        }
    }

    /// A pod the store lacks (deleted, or not streamed yet) is matched by its controller's
    /// naming only to a workload the stores hold; a bare pod that merely looks like a
    /// Deployment's is not given one.
    #[test]
    fn pods_the_store_lacks_are_matched_only_to_workloads_that_exist() {
        let c = cache(listed(vec![object("Deployment", "web", None)]));
        let owner = |pod: &str| c.owner_of_pod_name("shop", pod).map(|w| format!("{}/{}", w.kind, w.name));
        assert_eq!(owner("web-6d4cf56db6-x7k2p").as_deref(), Some("Deployment/web"), "through its ReplicaSet");
        assert_eq!(owner("web-5b7c9d8f4-abcde").as_deref(), Some("Deployment/web"), "a ReplicaSet not streamed yet");
        assert_eq!(owner("db-2").as_deref(), Some("StatefulSet/db"));
        assert_eq!(owner("agent-q8k2z").as_deref(), Some("DaemonSet/agent"));
        assert_eq!(owner("nightly-29123-7xk2p").as_deref(), Some("CronJob/nightly"));
        assert_eq!(owner("migrate-h4k9s").as_deref(), Some("Job/migrate"));
        assert_eq!(owner("shop-7d9f8b6c5-x2k4q"), None, "named like a Deployment's pod, no such Deployment");
        assert_eq!(owner("db-primary"), None, "not an ordinal");
        assert_eq!(owner("agent-debugger"), None, "not a generated suffix");
        assert_eq!(owner("agent-Q8K2Z"), None, "not a generated suffix");
        assert_eq!(owner("standalone"), None);

        // Before the Deployment store's first list, the naming is all there is.
        let (unlisted, _writer) = reflector::store::<Deployment>();
        let c = cache(Stores { parts: vec![(None, unlisted)] });
        assert_eq!(c.owner_of_pod_name("shop", "shop-7d9f8b6c5-x2k4q").map(|w| w.name).as_deref(), Some("shop"));
    }

    #[tokio::test]
    async fn stores_are_ready_only_after_every_first_list() {
        let (a, mut wa) = reflector::store::<Pod>();
        let (b, mut wb) = reflector::store::<Pod>();
        let stores = Stores { parts: vec![(Some("a".into()), a), (Some("b".into()), b)] };
        for w in [&mut wa, &mut wb] {
            w.apply_watcher_event(&watcher::Event::Init);
            w.apply_watcher_event(&watcher::Event::InitDone);
        }
        assert!(stores.wait_until_ready().await);
    }

    #[tokio::test]
    async fn a_watcher_that_stops_before_its_first_list_is_not_ready() {
        let (a, mut wa) = reflector::store::<Pod>();
        let (b, wb) = reflector::store::<Pod>();
        let stores = Stores { parts: vec![(Some("a".into()), a), (Some("b".into()), b)] };
        wa.apply_watcher_event(&watcher::Event::Init);
        wa.apply_watcher_event(&watcher::Event::InitDone);
        drop(wb); // the watcher task ended (shutdown) before listing
        let ready = tokio::time::timeout(std::time::Duration::from_secs(5), stores.wait_until_ready()).await;
        assert_eq!(ready, Ok(false), "a stopped watcher ends the wait, as not synced");
    }
}

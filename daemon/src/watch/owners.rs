//! The reflector stores, and owner resolution through them:
//! Pod → ReplicaSet → Deployment, Pod → StatefulSet / DaemonSet / Job → CronJob.

use std::collections::BTreeMap;
use std::sync::Arc;

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
            "Job" => {
                let cron = self
                    .jobs
                    .get(namespace, &owner.name)
                    .and_then(|j| controller(j.metadata.owner_references.as_ref()).cloned())
                    .filter(|o| o.kind == "CronJob");
                Some(match cron {
                    Some(c) => WorkloadRef::new("CronJob", namespace, c.name),
                    None => WorkloadRef::new("Job", namespace, &owner.name),
                })
            }
            kind => Some(WorkloadRef::new(kind, namespace, &owner.name)),
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

    /// The workload of a pod by name (the pod may be gone already).
    pub fn owner_of_pod_name(&self, namespace: &str, pod: &str) -> Option<WorkloadRef> {
        match self.pods.get(namespace, pod) {
            Some(p) => self.owner_of(namespace, p.metadata.owner_references.as_ref(), p.metadata.labels.as_ref()),
            None => crate::alerts::payload::deployment_of_pod_name(pod)
                .map(|d| WorkloadRef::new("Deployment", namespace, d)),
        }
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

//! The Alertmanager webhook payload (version 4) and how one alert becomes a
//! [`Signal`].
//!
//! The group's `status` says whether *any* alert of the group fires; each
//! alert carries its own `status`, which is what counts (a firing group can
//! hold resolved alerts).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

/// The payload version this receiver understands.
pub const VERSION: &str = "4";

/// The envelope. Unknown fields are accepted: Alertmanager adds fields over
/// time and a receiver must not break on them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub version: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    /// Alerts as raw JSON, so that one bad alert does not cost the others.
    pub alerts: Vec<serde_json::Value>,
}

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// Labels kube-state-metrics and kube-prometheus put on an alert that name its workload.
const WORKLOAD_LABELS: &[(&str, &str)] = &[
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job_name", "Job"),
    ("cronjob", "CronJob"),
];

/// Finds the workload that owns a pod (the watchers' stores know); `None` when it does not
/// know the pod (the apiserver is asked next).
pub trait OwnerLookup: Send + Sync {
    fn owner_of_pod(&self, namespace: &str, pod: &str) -> Option<WorkloadRef>;
}

/// An [`OwnerLookup`] that can be set once the watchers run (on the leader) and cleared
/// when they stop; without one, pods are resolved by the Deployment naming convention.
#[derive(Default)]
pub struct SharedOwners(std::sync::RwLock<Option<std::sync::Arc<dyn OwnerLookup>>>);

impl SharedOwners {
    pub fn set(&self, owners: Option<std::sync::Arc<dyn OwnerLookup>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = owners;
    }
}

impl OwnerLookup for SharedOwners {
    fn owner_of_pod(&self, namespace: &str, pod: &str) -> Option<WorkloadRef> {
        let owners = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        owners.and_then(|o| o.owner_of_pod(namespace, pod))
    }
}

impl Alert {
    pub fn parse(value: serde_json::Value) -> Result<Self, String> {
        let alert: Alert = serde_json::from_value(value).map_err(|e| e.to_string())?;
        match alert.labels.get("alertname") {
            Some(name) if !name.trim().is_empty() => Ok(alert),
            _ => Err("alert has no alertname label".into()),
        }
    }

    /// The signal for this alert on `cluster`, its pod's owner from `owners`.
    pub fn to_signal(&self, cluster: &str, owners: Option<&dyn OwnerLookup>) -> Signal {
        let owner = self.pod_to_resolve().and_then(|(ns, pod)| owners.and_then(|o| o.owner_of_pod(&ns, &pod)));
        self.to_signal_with_owner(cluster, owner)
    }

    fn label(&self, key: &str) -> Option<String> {
        self.labels.get(key).filter(|v| !v.is_empty()).cloned()
    }

    fn namespace(&self) -> String {
        self.label("namespace").or_else(|| self.label("exported_namespace")).unwrap_or_default()
    }

    /// `(namespace, pod)` when the alert is about a pod and no label names its workload: the
    /// pod whose owner must be looked up.
    pub fn pod_to_resolve(&self) -> Option<(String, String)> {
        let namespace = self.namespace();
        if namespace.is_empty() || WORKLOAD_LABELS.iter().any(|(label, _)| self.label(label).is_some()) {
            return None;
        }
        Some((namespace, self.label("pod")?))
    }

    /// The signal for this alert on `cluster`; `pod_owner` is the workload of the alert's pod,
    /// already looked up (the Deployment naming convention is tried when it is `None`).
    pub fn to_signal_with_owner(&self, cluster: &str, pod_owner: Option<WorkloadRef>) -> Signal {
        let l = &self.labels;
        let get = |k: &str| self.label(k);
        let namespace = self.namespace();
        let explicit = WORKLOAD_LABELS
            .iter()
            .find_map(|(label, kind)| get(label).map(|name| WorkloadRef::new(*kind, namespace.clone(), name)));
        let pod = get("pod").filter(|_| !namespace.is_empty());
        let node = get("node");
        let (object, workload) = match (pod, explicit, node) {
            (Some(pod), explicit, _) => {
                let owner = explicit
                    .or(pod_owner)
                    .or_else(|| deployment_of_pod_name(&pod).map(|d| WorkloadRef::new("Deployment", &namespace, d)));
                (WorkloadRef::new("Pod", namespace.clone(), pod), owner)
            }
            (None, Some(w), _) => (w, None),
            (None, None, Some(node)) if namespace.is_empty() => (WorkloadRef::new("Node", "", node), None),
            _ if !namespace.is_empty() => (WorkloadRef::new("Namespace", namespace.clone(), namespace.clone()), None),
            _ => (WorkloadRef::new("Cluster", "", cluster), None),
        };
        let status = match self.status {
            AlertStatus::Firing => SignalStatus::Firing,
            AlertStatus::Resolved => SignalStatus::Resolved,
        };
        let when = match self.status {
            AlertStatus::Firing => self.starts_at.as_deref(),
            AlertStatus::Resolved => self.ends_at.as_deref(),
        };
        let message = ["summary", "description", "message"]
            .into_iter()
            .find_map(|k| self.annotations.get(k).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_default();
        Signal {
            source: SignalSource::Alertmanager,
            status,
            reason: l.get("alertname").cloned().unwrap_or_default(),
            cluster: cluster.to_owned(),
            object,
            workload,
            labels: l.clone(),
            severity: get("severity"),
            message,
            observed_at: parse_time(when).unwrap_or_else(Timestamp::now),
        }
    }
}

/// Alertmanager's zero time (`0001-01-01T00:00:00Z`) means "not set".
fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    let t: Timestamp = text?.parse().ok()?;
    (t.as_second() > 0).then_some(t)
}

/// `web-7d9f8b6c5-x2k4q` → `web`: the naming of a Deployment's pods
/// (`<deployment>-<pod-template-hash>-<5 characters>`), used only when the
/// watchers' stores do not know the pod.
pub fn deployment_of_pod_name(pod: &str) -> Option<&str> {
    let (rest, suffix) = pod.rsplit_once('-')?;
    let (name, hash) = rest.rsplit_once('-')?;
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let hashlike = (6..=10).contains(&hash.len()) && alnum(hash) && hash.bytes().any(|b| b.is_ascii_digit());
    (suffix.len() == 5 && alnum(suffix) && hashlike && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names() {
        assert_eq!(deployment_of_pod_name("checkout-7d9f8b6c5-x2k4q"), Some("checkout"));
        assert_eq!(deployment_of_pod_name("my-app-5c6b7d-abcde"), Some("my-app"));
        assert_eq!(deployment_of_pod_name("db-0"), None);
        assert_eq!(deployment_of_pod_name("web-server-abcde"), None);
    }

    fn alert(labels: &[(&str, &str)]) -> Alert {
        Alert {
            status: AlertStatus::Firing,
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            annotations: [("summary".into(), "s".into())].into(),
            starts_at: Some("2026-11-24T12:22:16.741913038Z".into()),
            ends_at: Some("0001-01-01T00:00:00Z".into()),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn workloads_from_labels() {
        let s = alert(&[("alertname", "A"), ("namespace", "shop"), ("statefulset", "db")]).to_signal("c", None);
        assert_eq!(s.subject(), &WorkloadRef::new("StatefulSet", "shop", "db"));
        let s = alert(&[("alertname", "A"), ("node", "n1")]).to_signal("c", None);
        assert_eq!(s.subject(), &WorkloadRef::new("Node", "", "n1"));
        let s = alert(&[("alertname", "A"), ("namespace", "shop"), ("pod", "web-7d9f8b6c5-x2k4q"), ("job", "ksm")])
            .to_signal("c", None);
        assert_eq!(s.object, WorkloadRef::new("Pod", "shop", "web-7d9f8b6c5-x2k4q"));
        assert_eq!(s.subject(), &WorkloadRef::new("Deployment", "shop", "web"));
        assert_eq!(s.observed_at.to_string(), "2026-11-24T12:22:16.741913038Z");
        assert_eq!(s.message, "s");
        let s = alert(&[("alertname", "A"), ("namespace", "shop")]).to_signal("c", None);
        assert_eq!(s.subject(), &WorkloadRef::new("Namespace", "shop", "shop"));
        let s = alert(&[("alertname", "Watchdog")]).to_signal("c", None);
        assert_eq!(s.subject(), &WorkloadRef::new("Cluster", "", "c"));

        struct Owners;
        impl OwnerLookup for Owners {
            fn owner_of_pod(&self, _: &str, pod: &str) -> Option<WorkloadRef> {
                (pod == "db-0").then(|| WorkloadRef::new("StatefulSet", "shop", "db"))
            }
        }
        let s = alert(&[("alertname", "A"), ("namespace", "shop"), ("pod", "db-0")]).to_signal("c", Some(&Owners));
        assert_eq!(s.subject(), &WorkloadRef::new("StatefulSet", "shop", "db"));
        let shared = SharedOwners::default();
        let a = alert(&[("alertname", "A"), ("namespace", "shop"), ("pod", "db-0")]);
        assert_eq!(a.to_signal("c", Some(&shared)).subject(), &WorkloadRef::new("Pod", "shop", "db-0"));
        shared.set(Some(std::sync::Arc::new(Owners)));
        assert_eq!(a.to_signal("c", Some(&shared)).subject(), &WorkloadRef::new("StatefulSet", "shop", "db"));
    }
}

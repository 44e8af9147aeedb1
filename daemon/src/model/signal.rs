//! What intake produces: one observation of something wrong (a pod state
//! change, a Kubernetes Event, an Alertmanager alert, a cron tick).
//!
//! Signals are cheap and many; the rules engine folds them into incidents.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignalSource {
    /// A cluster watcher (pods, events, workloads, nodes).
    Cluster,
    /// An Alertmanager webhook.
    Alertmanager,
    /// A scheduled job such as the drift report.
    Cron,
    /// Started by hand (CLI `diagnose`, MCP tool, demo).
    Manual,
}

/// Whether the condition behind a signal still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignalStatus {
    #[default]
    Firing,
    Resolved,
}

/// A namespaced object that owns the failing pods (or the node itself).
///
/// Incidents are keyed on the *owning* workload so that every pod of a
/// crash-looping Deployment folds into one incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadRef {
    /// Kind, e.g. `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `Pod`, `Node`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped kinds such as `Node`.
    #[serde(default)]
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl WorkloadRef {
    pub fn new(kind: impl Into<String>, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { kind: kind.into(), namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
        }
    }
}

/// One observation. `reason` uses Kubernetes' own words where there are
/// some (`CrashLoopBackOff`, `FailedScheduling`, `NodeNotReady`) and the
/// alert name for alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signal {
    pub source: SignalSource,
    pub status: SignalStatus,
    /// Machine-readable reason (`CrashLoopBackOff`, `OOMKilled`, alert name, ...).
    pub reason: String,
    /// Configured name of the cluster it was seen on.
    pub cluster: String,
    /// The object the signal is about (a pod, an event's involved object, a node).
    pub object: WorkloadRef,
    /// The owning workload, resolved through ownerReferences when known.
    pub workload: Option<WorkloadRef>,
    /// Labels of the object, or the alert's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Alert severity (`critical`, `warning`, ...) when the source has one.
    pub severity: Option<String>,
    /// Human-readable detail (event message, alert summary).
    #[serde(default)]
    pub message: String,
    pub observed_at: Timestamp,
}

impl Signal {
    /// The workload an incident should be keyed on: the owner when known, else the object.
    pub fn subject(&self) -> &WorkloadRef {
        self.workload.as_ref().unwrap_or(&self.object)
    }
}

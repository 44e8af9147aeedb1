//! The connection to one Kubernetes cluster and the scope that limits what
//! kubemedic may see of it. Everything outside the scope does not exist for
//! the agent, the tools or the watchers.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config as KubeConfig};
use serde::Deserialize;
use std::path::PathBuf;

/// Cluster connection and scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Name used in incidents, metrics and MCP resources.
    pub name: String,
    /// Kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, or in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; default: the current one.
    pub context: Option<String>,
    /// Namespaces kubemedic may see; empty = all but `exclude_namespaces`.
    pub namespaces: Vec<String>,
    /// Namespaces that do not exist for kubemedic.
    pub exclude_namespaces: Vec<String>,
    /// Kinds the tools may read (case-insensitive); empty = the built-in list.
    pub kinds: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            name: "local".into(),
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            exclude_namespaces: vec!["kube-system".into(), "kube-public".into(), "kube-node-lease".into()],
            kinds: Vec::new(),
        }
    }
}

/// Kinds readable by default (lowercase).
pub const DEFAULT_KINDS: &[&str] = &[
    "pod",
    "deployment",
    "replicaset",
    "statefulset",
    "daemonset",
    "job",
    "service",
    "configmap",
    "secret",
    "event",
    "node",
    "namespace",
    "persistentvolumeclaim",
    "ingress",
    "endpoints",
    "cronjob",
    "horizontalpodautoscaler",
    "storageclass",
    "persistentvolume",
];

/// A connected cluster plus its visibility scope.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    pub client: Client,
    pub scope: Scope,
}

/// What of the cluster is visible.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Empty = all namespaces but `exclude`.
    pub namespaces: Vec<String>,
    pub exclude: Vec<String>,
    /// Lowercase kinds.
    pub kinds: Vec<String>,
}

impl Scope {
    pub fn from_config(c: &ClusterConfig) -> Self {
        let kinds = if c.kinds.is_empty() {
            DEFAULT_KINDS.iter().map(|k| (*k).to_owned()).collect()
        } else {
            c.kinds.iter().map(|k| k.to_ascii_lowercase()).collect()
        };
        Self { namespaces: c.namespaces.clone(), exclude: c.exclude_namespaces.clone(), kinds }
    }

    pub fn namespace_visible(&self, ns: &str) -> bool {
        if self.exclude.iter().any(|n| n == ns) {
            return false;
        }
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns)
    }

    pub fn kind_visible(&self, kind: &str) -> bool {
        self.kinds.contains(&kind.to_ascii_lowercase())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot infer cluster configuration (no KUBECONFIG, ~/.kube/config or in-cluster service account)")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build Kubernetes client")]
    Client(#[source] kube::Error),
}

impl Cluster {
    /// Connect as configured: explicit kubeconfig file, else the usual inference.
    pub async fn connect(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let options = KubeConfigOptions { context: config.context.clone(), ..Default::default() };
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(ClusterError::Kubeconfig)?;
                KubeConfig::from_custom_kubeconfig(kc, &options).await.map_err(ClusterError::Kubeconfig)?
            }
            None if config.context.is_some() => {
                KubeConfig::from_kubeconfig(&options).await.map_err(ClusterError::Kubeconfig)?
            }
            None => KubeConfig::infer().await.map_err(ClusterError::Infer)?,
        };
        let client = Client::try_from(kube_config).map_err(ClusterError::Client)?;
        Ok(Self { name: config.name.clone(), client, scope: Scope::from_config(config) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_excludes_and_limits() {
        let s = Scope::from_config(&ClusterConfig::default());
        assert!(s.namespace_visible("default"));
        assert!(!s.namespace_visible("kube-system"));
        assert!(s.kind_visible("Deployment"));
        assert!(!s.kind_visible("ClusterRole"));
        let s = Scope { namespaces: vec!["shop".into()], ..s };
        assert!(!s.namespace_visible("default"));
        assert!(s.namespace_visible("shop"));
    }
}

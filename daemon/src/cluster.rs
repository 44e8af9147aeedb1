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
    "controllerrevision",
    "limitrange",
    "resourcequota",
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

/// What to do when no cluster is configured (said once, in the error).
pub const HOW_TO_CONNECT: &str = "set KUBECONFIG=/path/to/kubeconfig, pass --kubeconfig PATH, or try \
     `bash scripts/demo.sh`, which starts a local cluster and runs `kubemedic demo` on it";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Nothing to connect to: no kubeconfig anywhere and not inside a cluster. Carries no
    /// source: the causes underneath all say "file not found", which the message says once.
    #[error(
        "no Kubernetes cluster configured: KUBECONFIG is not set, {} does not exist, and this is not a pod in a cluster; {HOW_TO_CONNECT}",
        default_kubeconfig.display()
    )]
    NotConfigured { default_kubeconfig: std::path::PathBuf },
    #[error("cannot read kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot infer cluster configuration (no KUBECONFIG, ~/.kube/config or in-cluster service account)")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build Kubernetes client")]
    Client(#[source] kube::Error),
    /// An identity kubemedic will not act as.
    #[error("{0}")]
    Impersonation(String),
}

impl Cluster {
    /// Connect as configured: explicit kubeconfig file, else the usual inference.
    pub async fn connect(config: &ClusterConfig) -> Result<Self, ClusterError> {
        Ok(Self::connect_with_config(config).await?.0)
    }

    /// [`Cluster::connect`], also returning the client configuration (for [`Impersonation`]).
    pub async fn connect_with_config(config: &ClusterConfig) -> Result<(Self, KubeConfig), ClusterError> {
        let options = KubeConfigOptions { context: config.context.clone(), ..Default::default() };
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(ClusterError::Kubeconfig)?;
                KubeConfig::from_custom_kubeconfig(kc, &options).await.map_err(ClusterError::Kubeconfig)?
            }
            None if config.context.is_some() => {
                KubeConfig::from_kubeconfig(&options).await.map_err(ClusterError::Kubeconfig)?
            }
            None => {
                if let Some(default_kubeconfig) = nothing_configured(
                    std::env::var_os("KUBECONFIG").as_deref(),
                    std::env::var_os("KUBERNETES_SERVICE_HOST").as_deref(),
                    std::env::var_os("HOME").as_deref(),
                ) {
                    return Err(ClusterError::NotConfigured { default_kubeconfig });
                }
                KubeConfig::infer().await.map_err(ClusterError::Infer)?
            }
        };
        let client = Client::try_from(kube_config.clone()).map_err(ClusterError::Client)?;
        Ok((Self { name: config.name.clone(), client, scope: Scope::from_config(config) }, kube_config))
    }
}

/// Clients that act as another user (`Impersonate-User`, `Impersonate-Group`), so that the
/// cluster's RBAC decides what an MCP caller may read; one per user and groups, kept (at most
/// [`Impersonation::MAX_CLIENTS`]; the oldest goes first).
pub struct Impersonation {
    base: KubeConfig,
    clients: std::sync::Mutex<std::collections::VecDeque<(Identity, Client)>>,
}

/// A user and their groups.
type Identity = (String, Vec<String>);

impl std::fmt::Debug for Impersonation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Impersonation").finish_non_exhaustive()
    }
}

impl Impersonation {
    pub const MAX_CLIENTS: usize = 64;

    /// Impersonate with the credentials of `base` (kubemedic's own, which need `impersonate`).
    pub fn new(base: KubeConfig) -> Self {
        Self { base, clients: std::sync::Mutex::default() }
    }

    /// A client acting as `user` in `groups`. Kubernetes' reserved `system:` names are never
    /// impersonated: a user named so is refused and such groups are dropped (an identity
    /// provider's claim must not make anyone `system:masters`; the apiserver adds
    /// `system:authenticated` itself).
    pub fn client(&self, user: &str, groups: &[String]) -> Result<Client, ClusterError> {
        if user.trim().is_empty() || user.starts_with("system:") {
            return Err(ClusterError::Impersonation(format!("kubemedic does not act as the user {user:?}")));
        }
        let groups: Vec<String> = groups.iter().filter(|g| !g.starts_with("system:")).cloned().collect();
        let key = (user.to_owned(), groups);
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = clients.iter().find(|(k, _)| k == &key) {
            return Ok(c.clone());
        }
        let mut config = self.base.clone();
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups = (!key.1.is_empty()).then(|| key.1.clone());
        let client = Client::try_from(config).map_err(ClusterError::Client)?;
        if clients.len() >= Self::MAX_CLIENTS {
            clients.pop_front();
        }
        clients.push_back((key, client.clone()));
        Ok(client)
    }
}

/// `Some(~/.kube/config)` when inference has nothing to find: `KUBECONFIG` unset or empty,
/// no `~/.kube/config`, and no in-cluster service host. Anything present is left to
/// kube's inference, whose errors then say what is wrong with it.
fn nothing_configured(
    kubeconfig_env: Option<&std::ffi::OsStr>,
    service_host: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Option<std::path::PathBuf> {
    let set = |v: Option<&std::ffi::OsStr>| v.is_some_and(|v| !v.is_empty());
    if set(kubeconfig_env) || set(service_host) {
        return None;
    }
    let default = std::path::Path::new(home.filter(|h| !h.is_empty())?).join(".kube").join("config");
    (!default.exists()).then_some(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserved_identities_are_never_impersonated() {
        let imp = Impersonation::new(KubeConfig::new("https://127.0.0.1:1".parse().unwrap()));
        for user in ["system:admin", "system:serviceaccount:kube-system:default", "", " "] {
            assert!(matches!(imp.client(user, &[]), Err(ClusterError::Impersonation(_))), "{user:?}");
        }
        let groups = vec!["system:masters".to_owned(), "sre".to_owned(), "system:nodes".to_owned()];
        imp.client("bob", &groups).unwrap();
        let cached = imp.clients.lock().unwrap();
        assert_eq!(cached.len(), 1);
        assert_eq!(cached[0].0, ("bob".to_owned(), vec!["sre".to_owned()]), "system: groups are dropped");
    }

    #[test]
    fn no_kubeconfig_anywhere_is_one_clear_error() {
        let home = tempfile::tempdir().unwrap();
        let h = Some(home.path().as_os_str());
        let found = nothing_configured(None, None, h).expect("nothing configured");
        assert_eq!(found, home.path().join(".kube/config"));
        assert!(nothing_configured(Some("".as_ref()), Some("".as_ref()), h).is_some());
        assert!(nothing_configured(Some("/x".as_ref()), None, h).is_none());
        assert!(nothing_configured(None, Some("10.0.0.1".as_ref()), h).is_none());
        std::fs::create_dir_all(home.path().join(".kube")).unwrap();
        std::fs::write(home.path().join(".kube/config"), "").unwrap();
        assert!(nothing_configured(None, None, h).is_none(), "an existing file is kube's to judge");

        let err = ClusterError::NotConfigured { default_kubeconfig: found };
        let text = crate::model::error::error_chain(&err);
        for hint in ["KUBECONFIG=", "--kubeconfig", "kubemedic demo", ".kube/config does not exist"] {
            assert_eq!(text.matches(hint).count(), 1, "{hint} once in: {text}");
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to read kubeconfig: {0}")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"));
        assert_eq!(crate::model::error::error_chain(&err), "failed to read kubeconfig: No such file or directory");
    }

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

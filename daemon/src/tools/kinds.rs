//! Input validation shared by the tools: kinds (resolved against the
//! scope, so a hidden kind is an unknown kind), DNS-1123 names, namespaces
//! (a hidden namespace does not exist) and numeric caps.

use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};

use super::ToolError;
use crate::cluster::Scope;

/// Where a readable kind lives in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Other accepted spellings (lowercase): plural and kubectl short names.
    pub aliases: &'static [&'static str],
}

const fn k(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    namespaced: bool,
    aliases: &'static [&'static str],
) -> Kind {
    Kind { kind, group, version, plural, namespaced, aliases }
}

/// Every kind the tools can read (the scope narrows it further).
pub const KINDS: &[Kind] = &[
    k("Pod", "", "v1", "pods", true, &["po"]),
    k("Deployment", "apps", "v1", "deployments", true, &["deploy"]),
    k("ReplicaSet", "apps", "v1", "replicasets", true, &["rs"]),
    k("StatefulSet", "apps", "v1", "statefulsets", true, &["sts"]),
    k("DaemonSet", "apps", "v1", "daemonsets", true, &["ds"]),
    k("Job", "batch", "v1", "jobs", true, &[]),
    k("CronJob", "batch", "v1", "cronjobs", true, &["cj"]),
    k("Service", "", "v1", "services", true, &["svc"]),
    k("ConfigMap", "", "v1", "configmaps", true, &["cm"]),
    k("Secret", "", "v1", "secrets", true, &[]),
    k("Event", "", "v1", "events", true, &["ev"]),
    k("Node", "", "v1", "nodes", false, &["no"]),
    k("Namespace", "", "v1", "namespaces", false, &["ns"]),
    k("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", true, &["pvc"]),
    k("Ingress", "networking.k8s.io", "v1", "ingresses", true, &["ing"]),
    k("Endpoints", "", "v1", "endpoints", true, &["ep"]),
    k("ControllerRevision", "apps", "v1", "controllerrevisions", true, &[]),
    k("LimitRange", "", "v1", "limitranges", true, &["limits"]),
    k("ResourceQuota", "", "v1", "resourcequotas", true, &["quota"]),
    k("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", true, &["hpa"]),
    k("StorageClass", "storage.k8s.io", "v1", "storageclasses", false, &["sc"]),
    k("PersistentVolume", "", "v1", "persistentvolumes", false, &["pv"]),
];

/// The version an older apiserver serves a kind under, where the current one is newer
/// than some supported clusters (CronJob is batch/v1 from 1.21, HPA autoscaling/v2 from 1.23,
/// Ingress networking.k8s.io/v1 from 1.19).
const OLDER_VERSIONS: &[(&str, &str)] =
    &[("CronJob", "v1beta1"), ("HorizontalPodAutoscaler", "v2beta2"), ("Ingress", "v1beta1")];

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// The same kind under the version an older apiserver serves, if there is one.
    pub fn older(&self) -> Option<Kind> {
        OLDER_VERSIONS.iter().find(|(k, _)| *k == self.kind).map(|(_, version)| Kind { version, ..*self })
    }

    /// A dynamic API handle; `namespace` is ignored for cluster-scoped kinds.
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = self.api_resource();
        match namespace {
            Some(ns) if self.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        }
    }
}

/// Resolve a kind name (case-insensitive; plural and short names accepted)
/// that the scope lets the caller see.
pub fn resolve(tool: &str, scope: &Scope, kind: &str) -> Result<Kind, ToolError> {
    let lower = kind.trim().to_ascii_lowercase();
    let found = KINDS
        .iter()
        .find(|k| k.kind.eq_ignore_ascii_case(&lower) || k.plural == lower || k.aliases.contains(&lower.as_str()));
    match found {
        Some(k) if scope.kind_visible(k.kind) => Ok(*k),
        _ => Err(ToolError::invalid(tool, format!("unknown kind `{kind}`; known kinds: {}", visible_kinds(scope)))),
    }
}

/// Resolve and require one of `allowed`.
pub fn resolve_one_of(tool: &str, scope: &Scope, kind: &str, allowed: &[&str]) -> Result<Kind, ToolError> {
    let k = resolve(tool, scope, kind)?;
    if allowed.contains(&k.kind) {
        Ok(k)
    } else {
        Err(ToolError::invalid(
            tool,
            format!("kind {} is not supported here; use one of: {}", k.kind, allowed.join(", ")),
        ))
    }
}

fn visible_kinds(scope: &Scope) -> String {
    KINDS.iter().filter(|k| scope.kind_visible(k.kind)).map(|k| k.kind).collect::<Vec<_>>().join(", ")
}

/// A DNS-1123 subdomain (object names), see [`crate::names`].
pub fn name(tool: &str, field: &str, value: &str) -> Result<(), ToolError> {
    crate::names::subdomain(field, value).map_err(|e| ToolError::invalid(tool, e.to_string()))
}

/// A DNS-1123 label (namespaces, container names), see [`crate::names`].
pub fn label(tool: &str, field: &str, value: &str) -> Result<(), ToolError> {
    crate::names::label(field, value).map_err(|e| ToolError::invalid(tool, e.to_string()))
}

/// A namespace that must be valid and visible; hidden ones do not exist.
pub fn namespace(tool: &str, scope: &Scope, ns: &str) -> Result<(), ToolError> {
    label(tool, "namespace", ns)?;
    if scope.namespace_visible(ns) { Ok(()) } else { Err(ToolError::NotFound(format!("namespace {ns}"))) }
}

/// An optional namespace: `None` and `""` mean every visible namespace.
pub fn optional_namespace<'a>(tool: &str, scope: &Scope, ns: Option<&'a str>) -> Result<Option<&'a str>, ToolError> {
    match ns.map(str::trim) {
        None | Some("") => Ok(None),
        Some(ns) => namespace(tool, scope, ns).map(|()| Some(ns)),
    }
}

/// `value` within `1..=max`, with the field named in the error.
pub fn cap(tool: &str, field: &str, value: i64, min: i64, max: i64) -> Result<i64, ToolError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ToolError::invalid(tool, format!("{field} must be between {min} and {max}, got {value}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;

    #[test]
    fn kinds_resolve_within_scope() {
        let scope = Scope::from_config(&ClusterConfig::default());
        assert_eq!(resolve("t", &scope, "deploy").unwrap().kind, "Deployment");
        assert_eq!(resolve("t", &scope, "Pods").unwrap().kind, "Pod");
        let err = resolve("t", &scope, "Widget").unwrap_err().to_string();
        assert!(err.contains("unknown kind `Widget`; known kinds: Pod, Deployment"), "{err}");
        // In the table but outside the scope: unknown.
        let no_cron =
            Scope { kinds: scope.kinds.iter().filter(|k| *k != "cronjob").cloned().collect(), ..scope.clone() };
        assert!(resolve("t", &no_cron, "cronjob").is_err());
        assert_eq!(resolve("t", &scope, "cronjob").unwrap().kind, "CronJob");
        let narrow = Scope { kinds: vec!["pod".into()], ..scope };
        assert!(resolve("t", &narrow, "Secret").unwrap_err().to_string().contains("unknown kind"));
    }

    #[test]
    fn names_and_namespaces() {
        assert!(name("t", "name", "web-1.example").is_ok());
        for bad in ["", "Web", "-a", "a-", "a_b", "a..b", &"x".repeat(254), "a/b", "../etc"] {
            assert!(name("t", "name", bad).is_err(), "{bad}");
        }
        assert!(label("t", "namespace", "a.b").is_err());
        let scope = Scope::from_config(&ClusterConfig::default());
        assert!(matches!(namespace("t", &scope, "kube-system"), Err(ToolError::NotFound(_))));
        assert!(namespace("t", &scope, "shop").is_ok());
        assert_eq!(optional_namespace("t", &scope, Some("")).unwrap(), None);
        let err = cap("pod_logs", "tail", 1_000_000, 1, 5000).unwrap_err().to_string();
        assert_eq!(err, "invalid arguments for pod_logs: tail must be between 1 and 5000, got 1000000");
    }
}

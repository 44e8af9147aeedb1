//! Reading the live target and asking the apiserver for a dry-run, for the
//! handful of kinds proposals may touch. Raw requests keep all three patch
//! content types (strategic, merge, JSON patch) on one path.

use serde_json::Value;

use crate::model::proposal::PatchType;

/// Where a kind lives in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

/// Kinds a proposal may target (policy may forbid more).
pub const KINDS: &[KindInfo] = &[
    KindInfo { kind: "Deployment", api_version: "apps/v1", plural: "deployments", namespaced: true },
    KindInfo { kind: "StatefulSet", api_version: "apps/v1", plural: "statefulsets", namespaced: true },
    KindInfo { kind: "DaemonSet", api_version: "apps/v1", plural: "daemonsets", namespaced: true },
    KindInfo { kind: "ReplicaSet", api_version: "apps/v1", plural: "replicasets", namespaced: true },
    KindInfo { kind: "Job", api_version: "batch/v1", plural: "jobs", namespaced: true },
    KindInfo { kind: "Pod", api_version: "v1", plural: "pods", namespaced: true },
    KindInfo { kind: "Service", api_version: "v1", plural: "services", namespaced: true },
    KindInfo { kind: "Ingress", api_version: "networking.k8s.io/v1", plural: "ingresses", namespaced: true },
    KindInfo { kind: "ConfigMap", api_version: "v1", plural: "configmaps", namespaced: true },
    KindInfo { kind: "Secret", api_version: "v1", plural: "secrets", namespaced: true },
    KindInfo { kind: "Node", api_version: "v1", plural: "nodes", namespaced: false },
];

/// Case-insensitive lookup by kind.
pub fn kind_info(kind: &str) -> Option<KindInfo> {
    KINDS.iter().copied().find(|k| k.kind.eq_ignore_ascii_case(kind))
}

/// The object's URL path, without query.
pub fn object_path(info: &KindInfo, namespace: &str, name: &str) -> String {
    let ns = if info.namespaced { namespace } else { "" };
    format!("{}/{name}", collection_path(info.api_version, info.plural, ns))
}

/// The URL path listing `plural` of `api_version` in `namespace` (empty:
/// cluster-scoped), without query.
pub fn collection_path(api_version: &str, plural: &str, namespace: &str) -> String {
    let base = if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") };
    if namespace.is_empty() { format!("{base}/{plural}") } else { format!("{base}/namespaces/{namespace}/{plural}") }
}

fn content_type(t: PatchType) -> &'static str {
    match t {
        PatchType::Strategic => "application/strategic-merge-patch+json",
        PatchType::Merge => "application/merge-patch+json",
        PatchType::Json => "application/json-patch+json",
    }
}

/// GET the live object.
pub async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    let req = http::Request::get(path).body(Vec::new()).map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

/// PATCH with `?dryRun=All` under kubemedic's own field manager.
pub async fn dry_run_patch(
    client: &kube::Client,
    path: &str,
    patch_type: PatchType,
    body: &Value,
) -> Result<Value, kube::Error> {
    let bytes = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
    let req = http::Request::patch(format!("{path}?dryRun=All&fieldManager=kubemedic"))
        .header(http::header::CONTENT_TYPE, content_type(patch_type))
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

/// DELETE with `?dryRun=All` and a resourceVersion precondition.
pub async fn dry_run_delete(client: &kube::Client, path: &str, resource_version: &str) -> Result<Value, kube::Error> {
    let body = serde_json::json!({
        "kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"],
        "preconditions": {"resourceVersion": resource_version}
    });
    let bytes = serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?;
    let req = http::Request::delete(format!("{path}?dryRun=All"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

/// A readable message for an apiserver error.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({}, {})", status.message, status.reason, status.code),
        other => crate::model::error::error_chain(other),
    }
}

/// Whether the apiserver said 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

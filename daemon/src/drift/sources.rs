//! Where desired state comes from: the last-applied annotation, Helm release
//! records, and a directory of manifests; and how the live object for a
//! desired one is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope as ApiScope};
use serde_json::Value;

use super::helm::{self, RELEASE_SECRET_TYPE};
use super::{DesiredSource, DriftError};
use crate::cluster::Cluster;

/// The annotation `kubectl apply` (client-side) keeps the applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A desired object and where it came from.
#[derive(Debug, Clone)]
pub struct Desired {
    pub object: Value,
    pub source: DesiredSource,
    /// Namespace to use when the object does not name one.
    pub default_namespace: String,
}

/// A desired object with its live counterpart (`None` = not in the cluster).
#[derive(Debug)]
pub struct Pair {
    pub desired: Desired,
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub live: Option<Value>,
}

async fn list_all_pages(api: &Api<DynamicObject>, base: ListParams) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut out = Vec::new();
    let mut lp = base.limit(500);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp.continue_token = Some(token),
            None => return Ok(out),
        }
    }
}

/// Lists of a kind in the visible namespaces.
async fn list_visible(
    cluster: &Cluster,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    lp: ListParams,
) -> Result<Vec<DynamicObject>, kube::Error> {
    if caps.scope == ApiScope::Namespaced && !cluster.scope.namespaces.is_empty() {
        let mut out = Vec::new();
        for ns in &cluster.scope.namespaces {
            let api = Api::<DynamicObject>::namespaced_with(cluster.client.clone(), ns, ar);
            out.extend(list_all_pages(&api, lp.clone()).await?);
        }
        Ok(out)
    } else {
        let api = Api::<DynamicObject>::all_with(cluster.client.clone(), ar);
        let items = list_all_pages(&api, lp).await?;
        Ok(items
            .into_iter()
            .filter(|o| o.metadata.namespace.as_deref().is_none_or(|ns| cluster.scope.namespace_visible(ns)))
            .collect())
    }
}

/// Resolve a kind name (`Deployment`, `apps/v1/Deployment`, `Ingress`) with discovery.
pub fn resolve_kind(discovery: &Discovery, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
    if let Some((gv, k)) = kind.rsplit_once('/') {
        let (group, version) = gv.rsplit_once('/').unwrap_or(("", gv));
        return discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, k));
    }
    // Core group first, then the others in discovery order; the most stable version that serves it.
    discovery
        .groups()
        .find_map(|g| g.resources_by_stability().into_iter().find(|(ar, _)| ar.kind.eq_ignore_ascii_case(kind)))
}

/// Objects of `kinds` that carry the last-applied annotation, paired with themselves as live.
/// A kind the cluster does not serve is an error only when it was configured (`strict`).
pub async fn last_applied(
    cluster: &Cluster,
    discovery: &Discovery,
    kinds: &[String],
    strict: bool,
    errors: &mut Vec<String>,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for kind in kinds {
        let Some((ar, caps)) = resolve_kind(discovery, kind) else {
            if strict {
                errors.push(format!("last-applied: kind {kind} is not served by this cluster"));
            }
            continue;
        };
        let items = match list_visible(cluster, &ar, &caps, ListParams::default()).await {
            Ok(items) => items,
            Err(err) => {
                errors.push(format!(
                    "last-applied: cannot list {}: {}",
                    ar.plural,
                    crate::model::error::error_chain(&err)
                ));
                continue;
            }
        };
        for obj in items {
            let Some(annotation) = obj.metadata.annotations.as_ref().and_then(|a| a.get(LAST_APPLIED)) else {
                continue;
            };
            let name = obj.metadata.name.clone().unwrap_or_default();
            let desired: Value = match serde_json::from_str(annotation) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    errors.push(format!("last-applied: {kind} {name}: annotation is not a JSON object"));
                    continue;
                }
            };
            let namespace = obj.metadata.namespace.clone();
            let live = serde_json::to_value(&obj).ok();
            pairs.push(Pair {
                desired: Desired {
                    object: desired,
                    source: DesiredSource::LastApplied,
                    default_namespace: namespace.clone().unwrap_or_default(),
                },
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                namespace,
                name,
                live,
            });
        }
    }
    pairs
}

/// The manifests of the latest deployed revision of every visible Helm release.
pub async fn helm_releases(cluster: &Cluster, errors: &mut Vec<String>) -> Vec<Desired> {
    let lp = ListParams::default().labels("owner=helm").fields(&format!("type={RELEASE_SECRET_TYPE}"));
    let secrets: Vec<Secret> = if cluster.scope.namespaces.is_empty() {
        match Api::<Secret>::all(cluster.client.clone()).list(&lp).await {
            Ok(list) => list.items,
            Err(err) => {
                errors.push(format!("helm: cannot list release secrets: {}", crate::model::error::error_chain(&err)));
                return Vec::new();
            }
        }
    } else {
        let mut out = Vec::new();
        for ns in &cluster.scope.namespaces {
            match Api::<Secret>::namespaced(cluster.client.clone(), ns).list(&lp).await {
                Ok(list) => out.extend(list.items),
                Err(err) => errors.push(format!(
                    "helm: cannot list release secrets in {ns}: {}",
                    crate::model::error::error_chain(&err)
                )),
            }
        }
        out
    };
    // (namespace, release) -> (revision, secret): the newest deployed revision wins.
    let mut latest: BTreeMap<(String, String), (u64, &Secret)> = BTreeMap::new();
    for secret in &secrets {
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        if !cluster.scope.namespace_visible(&ns) {
            continue;
        }
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        if labels.get("status").map(String::as_str) != Some("deployed") {
            continue;
        }
        let (Some(name), Some(version)) = (labels.get("name"), labels.get("version").and_then(|v| v.parse().ok()))
        else {
            continue;
        };
        let entry = latest.entry((ns, name.clone())).or_insert((version, secret));
        if version > entry.0 {
            *entry = (version, secret);
        }
    }
    let mut desired = Vec::new();
    for ((ns, name), (_, secret)) in latest {
        let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
            errors.push(format!("helm: release {ns}/{name}: secret has no `release` key"));
            continue;
        };
        let release = match helm::decode_release(&data.0) {
            Ok(r) => r,
            Err(err) => {
                errors.push(format!("helm: release {ns}/{name}: {}", crate::model::error::error_chain(&err)));
                continue;
            }
        };
        let objects = match helm::manifest_objects(&release.name, &release.manifest) {
            Ok(o) => o,
            Err(err) => {
                errors.push(format!("helm: release {ns}/{name}: {}", crate::model::error::error_chain(&err)));
                continue;
            }
        };
        let release_ns = if release.namespace.is_empty() { ns.clone() } else { release.namespace.clone() };
        for object in objects {
            desired.push(Desired {
                object,
                source: DesiredSource::Helm { release: release.name.clone(), revision: release.version },
                default_namespace: release_ns.clone(),
            });
        }
    }
    desired
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DriftError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DriftError::Manifests { path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| DriftError::Manifests { path: dir.to_owned(), source })?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every object in the `*.yaml`, `*.yml` and `*.json` files under `dir` (recursively, sorted).
pub fn manifests(dir: &Path, default_namespace: &str) -> Result<Vec<Desired>, DriftError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut desired = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|source| DriftError::Manifests { path: file.clone(), source })?;
        let objects = helm::parse_documents(&text).map_err(|(index, source)| DriftError::ManifestParse {
            path: file.clone(),
            index,
            source,
        })?;
        let rel = file.strip_prefix(dir).unwrap_or(&file).display().to_string();
        for object in objects {
            desired.push(Desired {
                object,
                source: DesiredSource::Manifest { path: rel.clone() },
                default_namespace: default_namespace.to_owned(),
            });
        }
    }
    Ok(desired)
}

/// Find the live object for each desired one (skipping namespaces outside the scope).
pub async fn pair_with_live(
    cluster: &Cluster,
    discovery: &Discovery,
    desired: Vec<Desired>,
    errors: &mut Vec<String>,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for d in desired {
        let api_version = d.object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = d.object.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        let name = d.object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let what = format!("{} {kind} {name}", d.source);
        if name.is_empty() || kind.is_empty() {
            errors.push(format!("{what}: object without kind or metadata.name"));
            continue;
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let Some((ar, caps)) = discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, &kind)) else {
            errors.push(format!("{what}: {api_version} {kind} is not served by this cluster"));
            continue;
        };
        let namespace = match caps.scope {
            ApiScope::Cluster => None,
            ApiScope::Namespaced => Some(
                d.object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&d.default_namespace)
                    .to_owned(),
            ),
        };
        if let Some(ns) = &namespace
            && !cluster.scope.namespace_visible(ns)
        {
            continue;
        }
        let api = match &namespace {
            Some(ns) => Api::<DynamicObject>::namespaced_with(cluster.client.clone(), ns, &ar),
            None => Api::<DynamicObject>::all_with(cluster.client.clone(), &ar),
        };
        let live = match api.get_opt(&name).await {
            Ok(obj) => obj.and_then(|o| serde_json::to_value(o).ok()),
            Err(err) => {
                errors.push(format!("{what}: cannot read live object: {}", crate::model::error::error_chain(&err)));
                continue;
            }
        };
        pairs.push(Pair {
            desired: d,
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
            namespace,
            name,
            live,
        });
    }
    pairs
}

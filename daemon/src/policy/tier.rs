//! Policy tiers by drafter: what kubemedic's own code, a language model and
//! an MCP caller may each propose. The global policy (kinds, namespaces,
//! `allowed_paths`, caps, privilege fields) binds every tier; a tier only
//! narrows it. Model and MCP drafts are the narrow tiers: an image only from
//! the workload's own history or an allowlisted registry, no command, args or
//! exec probes, no new Secret or ConfigMap references, no security-relevant
//! annotations, no labels a selector uses, never kubemedic's own namespace,
//! never a workload that already runs privileged.
//!
//! Everything here is pure; [`super::prepare`] reads the facts it needs
//! (earlier revisions, Service selectors) from the cluster.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::check::PathPattern;
use super::diff::Change;
use crate::model::proposal::Drafter;

/// Which images a tier may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRule {
    /// Any image the global policy allows.
    Any,
    /// Only an image the workload ran before (its ReplicaSets or
    /// ControllerRevisions, or another of its current containers), or one
    /// from `image_registries`.
    Known,
}

/// One tier's settings in the config file; every field is optional and
/// falls back to the tier's safe default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverride {
    /// Field paths (globs, as `policy.allowed_paths`) this tier may change;
    /// a change must match both this list and `policy.allowed_paths`.
    pub allowed_paths: Option<Vec<String>>,
    /// Field paths refused even where `allowed_paths` matches.
    pub denied_paths: Option<Vec<String>>,
    /// `any` or `known` (earlier revisions or `image_registries` only).
    pub images: Option<ImageRule>,
    /// Registry prefixes an image may come from besides the workload's own
    /// history, written in full (`registry.example.com/team/`; Docker Hub
    /// images are `docker.io/library/nginx`).
    pub image_registries: Option<Vec<String>>,
    /// Whether a draft may reference a Secret or ConfigMap (env, envFrom,
    /// volumes, projected volumes) the workload does not reference already.
    pub new_references: Option<bool>,
    /// Annotation key prefixes (workload and pod template) this tier may not
    /// add, change or remove.
    pub forbidden_annotation_prefixes: Option<Vec<String>>,
    /// Whether a draft may change pod template labels whose key the
    /// workload's selector or a Service selector in the namespace uses.
    pub selector_labels: Option<bool>,
    /// Whether a draft may patch a workload that already runs privileged
    /// (privileged or SYS_ADMIN container, hostPath volume, host network, PID or IPC).
    pub privileged_targets: Option<bool>,
    /// Whether a draft may touch kubemedic's own namespace (`policy.own_namespace`).
    pub own_namespace: Option<bool>,
}

/// `policy.tiers`: one section per drafter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TiersConfig {
    /// kubemedic's own drafts (built-in diagnostician, rollbacks, fixed-shape MCP tools).
    pub builtin: TierOverride,
    /// Drafts from the LLM runner.
    pub llm: TierOverride,
    /// Free-form MCP `propose_patch` calls.
    pub mcp: TierOverride,
}

/// One tier, resolved: defaults plus the config's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TierPolicy {
    pub drafter: Drafter,
    pub allowed_paths: Vec<String>,
    pub denied_paths: Vec<String>,
    pub images: ImageRule,
    pub image_registries: Vec<String>,
    pub new_references: bool,
    pub forbidden_annotation_prefixes: Vec<String>,
    pub selector_labels: bool,
    pub privileged_targets: bool,
    pub own_namespace: bool,
}

/// Annotations that change how a pod is confined or what runs beside it.
const SECURITY_ANNOTATION_PREFIXES: &[&str] = &[
    "container.apparmor.security.beta.kubernetes.io/",
    "apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied-configuration",
    "pod-security.kubernetes.io/",
    "sidecar.istio.io/",
    "istio.io/",
    "proxy.istio.io/",
    "traffic.sidecar.istio.io/",
    "linkerd.io/",
    "config.linkerd.io/",
    "config.alpha.linkerd.io/",
    "kuma.io/",
    "traffic.kuma.io/",
    "consul.hashicorp.com/",
    "vault.hashicorp.com/",
    "agent-inject.vault.hashicorp.com/",
    "sidecar.opentelemetry.io/",
    "instrumentation.opentelemetry.io/",
    "dapr.io/",
    "appmesh.k8s.aws/",
    "openservicemesh.io/",
    "sidecar.jaegertracing.io/",
    "cluster-autoscaler.kubernetes.io/",
];

/// Container fields a narrow tier may change.
const NARROW_CONTAINER_PATHS: &[&str] = &[
    "image",
    "imagePullPolicy",
    "env.**",
    "envFrom.**",
    "ports.**",
    "resources.**",
    "readinessProbe.**",
    "livenessProbe.**",
    "startupProbe.**",
];

fn narrow_allowed(drafter: Drafter) -> Vec<String> {
    let mut out: Vec<String> = [
        "spec.replicas",
        "metadata.annotations.**",
        "spec.template.metadata.annotations.**",
        "spec.template.metadata.labels.**",
        "spec.template.spec.volumes[].configMap.**",
        "spec.template.spec.volumes[].secret.**",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    // A human at an MCP client may also cordon or pin to nodes; a model may not.
    if drafter == Drafter::Mcp {
        out.push("spec.unschedulable".into());
        out.push("spec.template.spec.nodeSelector.**".into());
    }
    for list in ["containers", "initContainers"] {
        for field in NARROW_CONTAINER_PATHS {
            out.push(format!("spec.template.spec.{list}[].{field}"));
        }
    }
    out
}

fn narrow_denied() -> Vec<String> {
    let mut out = Vec::new();
    for list in ["containers", "initContainers"] {
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            out.push(format!("spec.template.spec.{list}[].{probe}.exec.**"));
        }
    }
    out
}

impl TierPolicy {
    /// The safe default for a drafter.
    pub fn default_for(drafter: Drafter) -> Self {
        match drafter {
            Drafter::Builtin => Self {
                drafter,
                allowed_paths: vec!["**".into()],
                denied_paths: Vec::new(),
                images: ImageRule::Any,
                image_registries: Vec::new(),
                new_references: true,
                forbidden_annotation_prefixes: Vec::new(),
                selector_labels: true,
                privileged_targets: true,
                own_namespace: true,
            },
            Drafter::Llm | Drafter::Mcp => Self {
                drafter,
                allowed_paths: narrow_allowed(drafter),
                denied_paths: narrow_denied(),
                images: ImageRule::Known,
                image_registries: Vec::new(),
                new_references: false,
                forbidden_annotation_prefixes: SECURITY_ANNOTATION_PREFIXES.iter().map(|p| (*p).to_owned()).collect(),
                selector_labels: false,
                privileged_targets: false,
                own_namespace: false,
            },
        }
    }

    /// Defaults with `o` laid over them.
    pub fn resolve(drafter: Drafter, o: &TierOverride) -> Self {
        let d = Self::default_for(drafter);
        Self {
            drafter,
            allowed_paths: o.allowed_paths.clone().unwrap_or(d.allowed_paths),
            denied_paths: o.denied_paths.clone().unwrap_or(d.denied_paths),
            images: o.images.unwrap_or(d.images),
            image_registries: o.image_registries.clone().unwrap_or(d.image_registries),
            new_references: o.new_references.unwrap_or(d.new_references),
            forbidden_annotation_prefixes: o
                .forbidden_annotation_prefixes
                .clone()
                .unwrap_or(d.forbidden_annotation_prefixes),
            selector_labels: o.selector_labels.unwrap_or(d.selector_labels),
            privileged_targets: o.privileged_targets.unwrap_or(d.privileged_targets),
            own_namespace: o.own_namespace.unwrap_or(d.own_namespace),
        }
    }

    fn name(&self) -> &'static str {
        self.drafter.as_str()
    }
}

impl TiersConfig {
    pub fn resolve(&self, drafter: Drafter) -> TierPolicy {
        let o = match drafter {
            Drafter::Builtin => &self.builtin,
            Drafter::Llm => &self.llm,
            Drafter::Mcp => &self.mcp,
        };
        TierPolicy::resolve(drafter, o)
    }

    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), String> {
        for d in Drafter::ALL {
            let t = self.resolve(d);
            for p in t.allowed_paths.iter().chain(&t.denied_paths) {
                if let Some(i) = p.find("**")
                    && i + 2 != p.len()
                {
                    return Err(format!("policy.tiers.{}: `**` may only end a pattern: {p}", d.as_str()));
                }
            }
            for r in &t.image_registries {
                if !r.contains('/') || r.trim() != r || r.starts_with('/') {
                    return Err(format!(
                        "policy.tiers.{}.image_registries: {r:?} must be a registry host and path prefix such as \
                         `registry.example.com/team/`",
                        d.as_str()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What the policy needs to know about the target beyond the object itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Images of the workload's earlier revisions (normalized).
    pub earlier_images: BTreeSet<String>,
    /// Label keys the workload's selector and the namespace's Services select
    /// on; `None` when they could not be read (then no template label may change).
    pub selector_keys: Option<BTreeSet<String>>,
}

/// Checks on the target's identity alone.
pub fn target(tier: &TierPolicy, namespace: &str, own_namespace: Option<&str>) -> Result<(), String> {
    if !tier.own_namespace
        && let Some(own) = own_namespace
        && !namespace.is_empty()
        && namespace == own
    {
        return Err(format!("tier {}: namespace {namespace} is kubemedic's own namespace", tier.name()));
    }
    Ok(())
}

/// Why a live object counts as privileged, if it does.
pub fn privileged(live: &Value) -> Option<String> {
    let spec = pod_spec(live)?;
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(f).and_then(Value::as_bool) == Some(true) {
            return Some(format!("it runs with {f}"));
        }
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        if v.get("hostPath").is_some() {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            return Some(format!("it mounts hostPath volume {name}"));
        }
    }
    for (list, c) in containers(spec) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let list = list.trim_end_matches('s');
        let sc = c.get("securityContext");
        if sc.and_then(|s| s.get("privileged")).and_then(Value::as_bool) == Some(true) {
            return Some(format!("{list} {name} is privileged"));
        }
        let adds = sc.and_then(|s| s.pointer("/capabilities/add")).and_then(Value::as_array);
        if let Some(cap) = adds.into_iter().flatten().filter_map(Value::as_str).find(|c| {
            let c = c.trim_start_matches("CAP_").to_ascii_uppercase();
            c == "SYS_ADMIN" || c == "ALL"
        }) {
            return Some(format!("{list} {name} adds capability {cap}"));
        }
    }
    None
}

/// Check what the dry-run says would change against the tier.
pub fn changes(
    tier: &TierPolicy,
    live: &Value,
    proposed: &Value,
    changes: &[Change],
    facts: &Facts,
) -> Result<(), String> {
    let tn = tier.name();
    if !tier.privileged_targets
        && let Some(why) = privileged(live)
    {
        return Err(format!("tier {tn}: the target runs privileged ({why}); only a human may change it"));
    }
    let allowed: Vec<PathPattern> = tier.allowed_paths.iter().map(|p| PathPattern::parse(p)).collect();
    let denied: Vec<PathPattern> = tier.denied_paths.iter().map(|p| PathPattern::parse(p)).collect();
    for c in changes {
        if denied.iter().any(|p| p.matches(&c.path)) {
            return Err(format!("tier {tn}: field {} is denied (policy.tiers.{tn}.denied_paths)", c.display()));
        }
        if !allowed.iter().any(|p| p.matches(&c.path)) {
            return Err(format!("tier {tn}: field {} is not in policy.tiers.{tn}.allowed_paths", c.display()));
        }
        if let Some(key) = annotation_key(&c.path)
            && let Some(prefix) = tier.forbidden_annotation_prefixes.iter().find(|p| key_has_prefix(key, p))
        {
            return Err(format!(
                "tier {tn}: annotation {key} is security-relevant (prefix {prefix}); only a human may change it"
            ));
        }
        if !tier.selector_labels
            && let Some(key) = template_label_key(&c.path)
        {
            match &facts.selector_keys {
                None => {
                    return Err(format!(
                        "tier {tn}: label {key} may move pods between Services, and the selectors could not be read"
                    ));
                }
                Some(keys) if keys.contains(key) => {
                    return Err(format!(
                        "tier {tn}: label {key} is used by a selector (the workload's or a Service's); changing it \
                         moves pods between Services"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if tier.images == ImageRule::Known {
        let mut known = facts.earlier_images.clone();
        known.extend(images(live).into_iter().map(|i| normalize_image(&i)));
        for c in changes.iter().filter(|c| c.path.last().is_some_and(|s| s == "image")) {
            let Some(image) = c.after.as_ref().and_then(Value::as_str) else { continue };
            let norm = normalize_image(image);
            if known.contains(&norm) {
                continue;
            }
            if tier.image_registries.iter().any(|r| registry_allows(r, &norm)) {
                continue;
            }
            return Err(format!(
                "tier {tn}: image {image} is neither one of the workload's earlier images nor from a registry in \
                 policy.tiers.{tn}.image_registries"
            ));
        }
    }
    if !tier.new_references {
        let before = references(live);
        for r in references(proposed) {
            if !before.contains(&r) {
                return Err(format!(
                    "tier {tn}: the change adds a reference to {} {}, which the workload does not reference yet",
                    r.0, r.1
                ));
            }
        }
    }
    Ok(())
}

fn pod_spec(obj: &Value) -> Option<&Value> {
    obj.pointer("/spec/template/spec").or_else(|| obj.pointer("/spec").filter(|s| s.get("containers").is_some()))
}

fn containers(spec: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |l| spec.get(l).and_then(Value::as_array).into_iter().flatten().map(move |c| (l, c)))
}

/// Every image of the object's pod spec.
pub fn images(obj: &Value) -> Vec<String> {
    pod_spec(obj)
        .map(|s| containers(s).filter_map(|(_, c)| c.get("image").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `nginx:1` → `docker.io/library/nginx:1`, so history and prefixes compare
/// as references, not strings.
pub fn normalize_image(image: &str) -> String {
    let image = image.trim();
    let first = image.split('/').next().unwrap_or_default();
    let has_registry = image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        image.to_owned()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    match full.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", host.to_ascii_lowercase()),
        None => full,
    }
}

/// Whether `prefix` (a registry host and path) covers the normalized image.
/// The prefix must end at a path boundary, so `registry.example.com/team`
/// does not allow `registry.example.com/team-evil/x` nor
/// `registry.example.com.evil.io/x`.
fn registry_allows(prefix: &str, image: &str) -> bool {
    let prefix = normalize_prefix(prefix);
    if prefix.ends_with('/') {
        return image.starts_with(&prefix);
    }
    image.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with(['/', ':', '@']))
}

fn normalize_prefix(prefix: &str) -> String {
    match prefix.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", host.to_ascii_lowercase()),
        None => prefix.to_ascii_lowercase(),
    }
}

fn annotation_key(path: &[String]) -> Option<&str> {
    match path {
        [m, a, key, ..] if m == "metadata" && a == "annotations" => Some(key),
        [s, t, m, a, key, ..] if s == "spec" && t == "template" && m == "metadata" && a == "annotations" => Some(key),
        _ => None,
    }
}

fn template_label_key(path: &[String]) -> Option<&str> {
    match path {
        [s, t, m, l, key, ..] if s == "spec" && t == "template" && m == "metadata" && l == "labels" => Some(key),
        _ => None,
    }
}

fn key_has_prefix(key: &str, prefix: &str) -> bool {
    key.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase())
}

/// Secrets and ConfigMaps the pod spec references, as (kind, name).
pub fn references(obj: &Value) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    let Some(spec) = pod_spec(obj) else { return out };
    let mut add = |kind: &'static str, name: Option<&Value>| {
        if let Some(n) = name.and_then(Value::as_str) {
            out.insert((kind, n.to_owned()));
        }
    };
    for (_, c) in containers(spec) {
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            add("Secret", e.pointer("/valueFrom/secretKeyRef/name"));
            add("ConfigMap", e.pointer("/valueFrom/configMapKeyRef/name"));
        }
        for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
            add("Secret", e.pointer("/secretRef/name"));
            add("ConfigMap", e.pointer("/configMapRef/name"));
        }
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        add("Secret", v.pointer("/secret/secretName"));
        add("ConfigMap", v.pointer("/configMap/name"));
        for s in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add("Secret", s.pointer("/secret/name"));
            add("ConfigMap", s.pointer("/configMap/name"));
        }
    }
    for s in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
        add("Secret", s.get("name"));
    }
    out
}

/// Label keys a workload's own selector uses.
pub fn workload_selector_keys(live: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(m) = live.pointer("/spec/selector/matchLabels").and_then(Value::as_object) {
        out.extend(m.keys().cloned());
    }
    for e in live.pointer("/spec/selector/matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        if let Some(k) = e.get("key").and_then(Value::as_str) {
            out.insert(k.to_owned());
        }
    }
    out
}

/// Label keys the Services of a `ServiceList` select on.
pub fn service_selector_keys(list: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in list.get("items").and_then(Value::as_array).into_iter().flatten() {
        if let Some(m) = s.pointer("/spec/selector").and_then(Value::as_object) {
            out.extend(m.keys().cloned());
        }
    }
    out
}

/// Images of the revisions in a ReplicaSet or ControllerRevision list that
/// the object with `uid` owns.
pub fn revision_images(list: &Value, uid: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in list.get("items").and_then(Value::as_array).into_iter().flatten() {
        let owned = item
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid));
        if !owned {
            continue;
        }
        // A ControllerRevision holds a patch of the object in `data`.
        let obj = item.get("data").unwrap_or(item);
        out.extend(images(obj).into_iter().map(|i| normalize_image(&i)));
    }
    out
}

#[cfg(test)]
#[path = "tier/redteam.rs"]
mod redteam;

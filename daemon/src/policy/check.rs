//! The pure policy checks: which kinds, namespaces and field paths a
//! proposal may touch, the caps on resources and replicas, and the fields
//! that would escalate privileges. No cluster access here.

use serde_json::Value;

use super::PolicyConfig;
use super::diff::{Change, display_path};
use super::quantity;
use crate::model::proposal::Risk;

/// Field names that widen what a pod may do; a proposal never touches them.
const PRIVILEGE_FIELDS: &[&str] = &[
    "securityContext",
    "privileged",
    "capabilities",
    "allowPrivilegeEscalation",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostPath",
    "hostPort",
    "hostUsers",
    "procMount",
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "sysctls",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
];

/// A glob over field paths: `.`-separated segments, `name[]` for "any element
/// of the list `name`", `*` for one segment, `**` for any number (only last).
#[derive(Debug, Clone)]
pub struct PathPattern(Vec<String>);

impl PathPattern {
    pub fn parse(p: &str) -> Self {
        let mut segs = Vec::new();
        for part in p.split('.') {
            let mut part = part;
            let mut arrays = 0;
            while let Some(rest) = part.strip_suffix("[]") {
                part = rest;
                arrays += 1;
            }
            if !part.is_empty() {
                segs.push(part.to_owned());
            }
            segs.extend(std::iter::repeat_n("[]".to_owned(), arrays));
        }
        Self(segs)
    }

    pub fn matches(&self, path: &[String]) -> bool {
        fn go(pat: &[String], path: &[String]) -> bool {
            match pat.split_first() {
                None => path.is_empty(),
                Some((p, _)) if p == "**" => true,
                Some((p, rest)) => match path.split_first() {
                    Some((s, tail)) if p == "*" || p == s => go(rest, tail),
                    _ => false,
                },
            }
        }
        go(&self.0, path)
    }
}

/// Whether `n` is a namespace name: a DNS-1123 label (lowercase
/// alphanumerics and `-`, at most 63, starting and ending alphanumeric).
/// Names in that form compare exactly, so `Kube-System` or `kube-system `
/// cannot pass for something other than `kube-system`.
pub fn is_namespace_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Scope checks that need nothing but the target's identity.
pub fn target(policy: &PolicyConfig, kind: &str, namespace: &str, delete: bool) -> Result<(), String> {
    if policy.forbidden_kinds.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
        return Err(format!("kind {kind} is forbidden by policy (forbidden_kinds)"));
    }
    // Compared as names: a namespace that is not a valid name is refused
    // (the list itself is validated with the config), so no spelling of a
    // forbidden namespace (case, whitespace, lookalikes) gets past.
    if !namespace.is_empty() {
        crate::names::namespace(namespace).map_err(|e| e.to_string())?;
    }
    if !namespace.is_empty() && policy.forbidden_namespaces.iter().any(|n| n == namespace) {
        return Err(format!("namespace {namespace} is forbidden by policy (forbidden_namespaces)"));
    }
    if delete && !policy.deletable_kinds.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
        return Err(format!(
            "deleting a {kind} is not allowed by policy (deletable_kinds: {:?})",
            policy.deletable_kinds
        ));
    }
    Ok(())
}

/// Refuse a patch body that even mentions a privilege-escalation field,
/// before anything is sent to the apiserver.
pub fn body(patch: &Value) -> Result<(), String> {
    fn go(v: &Value, path: &mut Vec<String>) -> Result<(), String> {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    if PRIVILEGE_FIELDS.contains(&k.as_str()) {
                        return Err(format!(
                            "patch touches {} (a privilege-escalation field; never proposed)",
                            display_path(path)
                        ));
                    }
                    // JSON patch operations name fields in their `path`.
                    if k == "path"
                        && let Some(p) = v.as_str()
                        && let Some(f) = p.split('/').find(|seg| PRIVILEGE_FIELDS.contains(seg))
                    {
                        return Err(format!("patch operation on {p} touches {f} (a privilege-escalation field)"));
                    }
                    go(v, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Array(items) => {
                path.push("[]".into());
                for i in items {
                    go(i, path)?;
                }
                path.pop();
                Ok(())
            }
            // Drafts are built from what the tools returned, which the redaction gate has
            // scrubbed: a placeholder must never be written back into the cluster.
            Value::String(s) if s.contains(crate::redact::REDACTED.trim_end_matches(']')) => Err(format!(
                "patch writes a redacted placeholder into {} (it was built from redacted data)",
                display_path(path)
            )),
            _ => Ok(()),
        }
    }
    go(patch, &mut Vec::new())
}

/// Check what the dry-run says would change.
pub fn changes(policy: &PolicyConfig, changes: &[Change]) -> Result<(), String> {
    if changes.is_empty() {
        return Err("the patch changes nothing (dry-run result equals the live object)".into());
    }
    let patterns: Vec<PathPattern> = policy.allowed_paths.iter().map(|p| PathPattern::parse(p)).collect();
    for c in changes {
        if let Some(f) = c.path.iter().find(|s| PRIVILEGE_FIELDS.contains(&s.as_str())) {
            return Err(format!("change to {} touches {f} (a privilege-escalation field)", c.display()));
        }
        if !patterns.iter().any(|p| p.matches(&c.path)) {
            return Err(format!("field {} is not in the policy's allowed_paths", c.display()));
        }
    }
    Ok(())
}

/// Containers of a workload or pod object, by name.
fn containers(obj: &Value) -> Vec<(String, &Value)> {
    let spec = obj.pointer("/spec/template/spec").or_else(|| obj.pointer("/spec"));
    let mut out = Vec::new();
    for list in ["containers", "initContainers"] {
        if let Some(items) = spec.and_then(|s| s.get(list)).and_then(Value::as_array) {
            for c in items {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                out.push((name, c));
            }
        }
    }
    out
}

fn resource(c: &Value, section: &str, name: &str) -> Option<f64> {
    c.pointer(&format!("/resources/{section}/{name}")).and_then(Value::as_str).and_then(quantity::parse)
}

/// Caps on memory, cpu and replicas, comparing live and proposed objects.
pub fn caps(policy: &PolicyConfig, live: &Value, proposed: &Value) -> Result<(), String> {
    let max_mem = quantity::parse(&policy.max_memory_limit)
        .ok_or_else(|| format!("policy max_memory_limit {:?} is not a quantity", policy.max_memory_limit))?;
    let max_cpu = quantity::parse(&policy.max_cpu_limit)
        .ok_or_else(|| format!("policy max_cpu_limit {:?} is not a quantity", policy.max_cpu_limit))?;
    let before = containers(live);
    for (name, c) in containers(proposed) {
        let old = before.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
        for section in ["limits", "requests"] {
            let new_mem = resource(c, section, "memory");
            let old_mem = old.and_then(|o| resource(o, section, "memory"));
            if let Some(new) = new_mem {
                if new > max_mem && old_mem.is_none_or(|o| new > o) {
                    return Err(format!(
                        "container {name}: memory {section} {} exceeds the policy cap max_memory_limit {}",
                        quantity::format_bytes(new),
                        policy.max_memory_limit
                    ));
                }
                if let Some(o) = old_mem
                    && new > o * policy.max_memory_raise_factor
                {
                    return Err(format!(
                        "container {name}: memory {section} raise from {} to {} exceeds the policy factor {}",
                        quantity::format_bytes(o),
                        quantity::format_bytes(new),
                        policy.max_memory_raise_factor
                    ));
                }
            }
            if let Some(new) = resource(c, section, "ephemeral-storage") {
                let old_es = old.and_then(|o| resource(o, section, "ephemeral-storage"));
                let max_es = quantity::parse(&policy.max_ephemeral_storage_limit).ok_or_else(|| {
                    format!(
                        "policy max_ephemeral_storage_limit {:?} is not a quantity",
                        policy.max_ephemeral_storage_limit
                    )
                })?;
                if new > max_es && old_es.is_none_or(|o| new > o) {
                    return Err(format!(
                        "container {name}: ephemeral-storage {section} {} exceeds the policy cap \
                         max_ephemeral_storage_limit {}",
                        quantity::format_bytes(new),
                        policy.max_ephemeral_storage_limit
                    ));
                }
                if let Some(o) = old_es
                    && new > o * policy.max_ephemeral_storage_raise_factor
                {
                    return Err(format!(
                        "container {name}: ephemeral-storage {section} raise from {} to {} exceeds the policy factor {}",
                        quantity::format_bytes(o),
                        quantity::format_bytes(new),
                        policy.max_ephemeral_storage_raise_factor
                    ));
                }
            }
            if let Some(new) = resource(c, section, "cpu") {
                let old_cpu = old.and_then(|o| resource(o, section, "cpu"));
                if new > max_cpu && old_cpu.is_none_or(|o| new > o) {
                    return Err(format!(
                        "container {name}: cpu {section} {} exceeds the policy cap max_cpu_limit {}",
                        quantity::format_cpu(new),
                        policy.max_cpu_limit
                    ));
                }
                if let Some(o) = old_cpu
                    && new > o * policy.max_cpu_raise_factor
                {
                    return Err(format!(
                        "container {name}: cpu {section} raise from {} to {} exceeds the policy factor {}",
                        quantity::format_cpu(o),
                        quantity::format_cpu(new),
                        policy.max_cpu_raise_factor
                    ));
                }
            }
        }
    }
    let replicas = |v: &Value| v.pointer("/spec/replicas").and_then(Value::as_i64);
    if let Some(r) = replicas(proposed)
        && r > policy.max_replicas
        && replicas(live).is_none_or(|o| r > o)
    {
        return Err(format!("replicas {r} exceeds the policy cap max_replicas {}", policy.max_replicas));
    }
    Ok(())
}

/// Field names whose change can run other code, expose secret data or
/// move pods onto chosen nodes: a change touching one is High risk.
const HIGH_RISK_FIELDS: &[&str] = &[
    "exec",
    "command",
    "args",
    "lifecycle",
    "secretKeyRef",
    "secretRef",
    "secret",
    "projected",
    "imagePullSecrets",
    "nodeSelector",
    "nodeName",
    "affinity",
    "tolerations",
];

/// How much could go wrong, from what a change can do: running other code
/// (exec probes, command, args), reading secret data (Secret references),
/// choosing nodes, or a node itself is High; probe fixes alone are Low.
pub fn risk(kind: &str, delete: bool, changes: &[Change]) -> Risk {
    if kind.eq_ignore_ascii_case("node") {
        return Risk::High;
    }
    if changes.iter().any(|c| c.path.iter().any(|s| HIGH_RISK_FIELDS.contains(&s.as_str()))) {
        return Risk::High;
    }
    if delete {
        return Risk::Medium;
    }
    let low = ["readinessProbe", "livenessProbe", "startupProbe"];
    if changes.iter().all(|c| c.path.iter().any(|s| low.contains(&s.as_str()))) { Risk::Low } else { Risk::Medium }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        PathPattern::parse(p).0
    }

    #[test]
    fn patterns_match_segments_and_arrays() {
        let p = PathPattern::parse("spec.template.spec.containers[].resources.**");
        assert!(p.matches(&path("spec.template.spec.containers[].resources.limits.memory")));
        assert!(!p.matches(&path("spec.template.spec.containers[].image")));
        assert!(PathPattern::parse("spec.*").matches(&path("spec.replicas")));
        assert!(!PathPattern::parse("spec.*").matches(&path("spec.template.x")));
    }

    #[test]
    fn privilege_fields_in_a_body_are_refused() {
        let b = json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
            "securityContext": {"privileged": true}}]}}}});
        let err = body(&b).unwrap_err();
        assert!(err.contains("securityContext"), "{err}");
        let j = json!([{"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true}]);
        assert!(body(&j).unwrap_err().contains("hostNetwork"));
        assert!(body(&json!({"spec": {"replicas": 2}})).is_ok());
        let redacted =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["--token=[REDACTED]"]}]}}}});
        assert!(body(&redacted).unwrap_err().contains("redacted placeholder"), "{:?}", body(&redacted));
    }

    #[test]
    fn memory_caps() {
        let policy = PolicyConfig::default();
        let obj = |m: &str| {
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
                "resources": {"limits": {"memory": m}}}]}}}})
        };
        assert!(caps(&policy, &obj("128Mi"), &obj("256Mi")).is_ok());
        let err = caps(&policy, &obj("128Mi"), &obj("1Gi")).unwrap_err();
        assert!(err.contains("factor"), "{err}");
        let err = caps(&policy, &obj("8Gi"), &obj("16Gi")).unwrap_err();
        assert!(err.contains("max_memory_limit"), "{err}");
    }

    #[test]
    fn cpu_caps() {
        let policy = PolicyConfig::default();
        let obj = |q: &str| {
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
                "resources": {"limits": {"cpu": q}}}]}}}})
        };
        assert!(caps(&policy, &obj("200m"), &obj("400m")).is_ok());
        assert!(caps(&policy, &obj("2"), &obj("500m")).is_ok(), "lowering is always within the caps");
        let err = caps(&policy, &obj("200m"), &obj("500m")).unwrap_err();
        assert!(err.contains("cpu limits raise from 200m to 500m exceeds the policy factor 2"), "{err}");
        let err = caps(&policy, &obj("6"), &obj("12")).unwrap_err();
        assert!(err.contains("max_cpu_limit 8"), "{err}");
    }

    #[test]
    fn ephemeral_storage_caps() {
        let policy = PolicyConfig::default();
        let obj = |q: &str| {
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
                "resources": {"limits": {"ephemeral-storage": q}}}]}}}})
        };
        assert!(caps(&policy, &obj("256Mi"), &obj("1Gi")).is_ok());
        let err = caps(&policy, &obj("256Mi"), &obj("2Gi")).unwrap_err();
        assert!(err.contains("ephemeral-storage limits raise from 256Mi to 2Gi exceeds the policy factor 4"), "{err}");
        let err = caps(&policy, &obj("16Gi"), &obj("32Gi")).unwrap_err();
        assert!(err.contains("max_ephemeral_storage_limit 20Gi"), "{err}");
    }

    #[test]
    fn risk_follows_what_a_change_can_do() {
        let change = |p: &str| Change { path: path(p), before: None, after: Some(json!("x")) };
        let c = "spec.template.spec.containers[]";
        let r = |p: &str| risk("Deployment", false, &[change(p)]);
        assert_eq!(r(&format!("{c}.readinessProbe.httpGet.port")), Risk::Low);
        assert_eq!(r(&format!("{c}.readinessProbe.exec.command[]")), Risk::High);
        assert_eq!(r(&format!("{c}.env[].valueFrom.secretKeyRef.name")), Risk::High);
        assert_eq!(r(&format!("{c}.envFrom[].secretRef.name")), Risk::High);
        assert_eq!(r(&format!("{c}.command[]")), Risk::High);
        assert_eq!(r(&format!("{c}.env[].valueFrom.configMapKeyRef.key")), Risk::Medium);
        assert_eq!(r(&format!("{c}.image")), Risk::Medium);
        assert_eq!(risk("Node", false, &[change("spec.unschedulable")]), Risk::High);
    }

    #[test]
    fn namespaces_compare_as_names() {
        let policy = PolicyConfig::default();
        for ns in ["Kube-System", "kube-system ", "kube-system/", "kube-system%2f", "-x", ""] {
            if ns.is_empty() {
                continue;
            }
            assert!(target(&policy, "Deployment", ns, false).is_err(), "{ns:?}");
        }
        assert!(is_namespace_name("shop-1"));
        assert!(!is_namespace_name(&"a".repeat(64)));
    }

    #[test]
    fn kinds_and_namespaces() {
        let policy = PolicyConfig::default();
        assert!(target(&policy, "Secret", "shop", false).unwrap_err().contains("forbidden"));
        assert!(target(&policy, "Deployment", "kube-system", false).is_err());
        assert!(target(&policy, "Deployment", "shop", true).is_err());
        assert!(target(&policy, "Pod", "shop", true).is_ok());
    }

    #[test]
    fn forbidden_namespaces_are_compared_as_names_not_spellings() {
        let policy = PolicyConfig::default();
        for spelling in [
            "Kube-System",
            "kube-system ",
            " kube-system",
            "kube-system\n",
            "kube-syst\u{0435}m",
            "kube\u{2010}system",
            "kube-system\u{200B}",
            "kube-system/..",
            "../kube-system",
            "kube%2Dsystem",
        ] {
            let err = target(&policy, "Deployment", spelling, false).unwrap_err();
            assert!(err.contains("not a valid DNS-1123 label"), "{spelling:?}: {err}");
        }
        let err = target(&policy, "Deployment", "kube-system", false).unwrap_err();
        assert!(err.contains("forbidden by policy"), "{err}");
        // A list entry that is no name would never match one: refused with the config.
        let bad = PolicyConfig { forbidden_namespaces: vec!["Kube-System".into()], ..PolicyConfig::default() };
        let err = bad.validate().unwrap_err();
        assert!(err.contains("policy.forbidden_namespaces entry \"Kube-System\""), "{err}");
    }
}

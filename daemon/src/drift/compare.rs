//! The pure part of drift detection: which fields that the desired state
//! sets differ in the live object, and which field manager last wrote each.
//!
//! Only fields present in the desired object are compared, so everything
//! the apiserver defaults (`strategy`, `terminationMessagePath`, ...) and
//! everything controllers own (`status`, most of `metadata`) is ignored.
//! Lists of objects are matched by their merge key (`name`,
//! `containerPort`, `mountPath`, ...) as a strategic merge would, so a
//! reordered list is not drift, but an item someone added or removed is.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    /// A list item matched by its merge key fields.
    Item(BTreeMap<String, Value>),
    Index(usize),
}

/// One drifted field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldDrift {
    /// Field path, e.g. `spec.template.spec.containers[name=web].image`.
    pub path: String,
    /// Value the desired state sets (`null` = the item should not exist).
    pub desired: Value,
    /// Value in the cluster (`null` = missing).
    pub live: Value,
    /// Field manager that owns the live value, latest write first (e.g. `kubectl-edit`).
    pub changed_by: Option<String>,
    /// `Update` or `Apply`.
    pub operation: Option<String>,
    /// When that manager last wrote the object.
    pub changed_at: Option<String>,
    /// Every manager that owns the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Why `changed_by` is unknown, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Render a path the way kubectl users read them.
pub fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
            Seg::Item(key) => {
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={}", scalar_text(v))).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Metadata fields that belong to the desired state; the rest is the apiserver's.
const META_COMPARED: &[&str] = &["labels", "annotations"];
/// Annotations tools write about themselves, not desired state.
const IGNORED_ANNOTATIONS: &[&str] =
    &["kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"];
/// Merge keys of object lists, in order of preference (strategic-merge patch keys of the core types).
const MERGE_KEYS: &[&[&str]] = &[
    &["containerPort", "protocol"],
    &["port", "protocol"],
    &["mountPath"],
    &["devicePath"],
    &["ip"],
    &["name"],
    &["type"],
];

/// Compare a desired object with the live one; returns drifted paths with values (no attribution yet).
pub fn diff_object(desired: &Value, live: &Value) -> Vec<(Vec<Seg>, Value, Value)> {
    let mut out = Vec::new();
    let (Some(d), Some(l)) = (desired.as_object(), live.as_object()) else {
        return out;
    };
    let secret = d.get("kind").and_then(Value::as_str) == Some("Secret");
    for (key, dv) in d {
        let lv = l.get(key).unwrap_or(&Value::Null);
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for field in META_COMPARED {
                    let mut dm = dv.get(*field).cloned().unwrap_or(Value::Null);
                    let mut lm = lv.get(*field).cloned().unwrap_or(Value::Null);
                    for v in [&mut dm, &mut lm] {
                        if let Some(m) = v.as_object_mut() {
                            m.retain(|k, _| !IGNORED_ANNOTATIONS.contains(&k.as_str()));
                        }
                    }
                    let path = vec![Seg::Key("metadata".into()), Seg::Key((*field).into())];
                    diff(&dm, &lm, path, &mut out);
                }
            }
            // The apiserver turns stringData into base64 data.
            "stringData" if secret => {
                let Some(sd) = dv.as_object() else { continue };
                for (k, v) in sd {
                    let encoded = Value::String(base64::engine::general_purpose::STANDARD.encode(scalar_text(v)));
                    let live_v = l.get("data").and_then(|d| d.get(k)).unwrap_or(&Value::Null);
                    diff(&encoded, live_v, vec![Seg::Key("data".into()), Seg::Key(k.clone())], &mut out);
                }
            }
            _ => diff(dv, lv, vec![Seg::Key(key.clone())], &mut out),
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn diff(desired: &Value, live: &Value, path: Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value, Value)>) {
    match (desired, live) {
        (Value::Null, _) => {}
        (d, Value::Null) if is_empty(d) => {}
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let mut p = path.clone();
                p.push(Seg::Key(k.clone()));
                diff(dv, l.get(k).unwrap_or(&Value::Null), p, out);
            }
        }
        (Value::Array(d), Value::Array(l)) => diff_list(d, l, path, out),
        (d, l) if scalar_eq(d, l) => {}
        (d, l) => out.push((path, d.clone(), l.clone())),
    }
}

fn merge_key(items: &[Value]) -> Option<&'static [&'static str]> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    MERGE_KEYS.iter().copied().find(|key| items.iter().all(|i| i.get(key[0]).is_some()))
}

fn item_key(item: &Value, key: &[&str]) -> BTreeMap<String, Value> {
    let mut k = BTreeMap::new();
    k.insert(key[0].to_owned(), item.get(key[0]).cloned().unwrap_or(Value::Null));
    // `protocol` defaults to TCP: an unset protocol in the desired state matches a defaulted one.
    if key.get(1) == Some(&"protocol") {
        k.insert("protocol".into(), item.get("protocol").cloned().unwrap_or_else(|| "TCP".into()));
    }
    k
}

fn diff_list(d: &[Value], l: &[Value], path: Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value, Value)>) {
    if let Some(key) = merge_key(d) {
        let live_keyed = l.iter().all(|i| i.get(key[0]).is_some());
        if live_keyed {
            for item in d {
                let k = item_key(item, key);
                let mut p = path.clone();
                p.push(Seg::Item(k.clone()));
                match l.iter().find(|li| item_key(li, key) == k) {
                    Some(li) => diff(item, li, p, out),
                    None => out.push((p, item.clone(), Value::Null)),
                }
            }
            for li in l {
                let k = item_key(li, key);
                if !d.iter().any(|di| item_key(di, key) == k) {
                    let mut p = path.clone();
                    p.push(Seg::Item(k));
                    out.push((p, Value::Null, li.clone()));
                }
            }
            return;
        }
    }
    if d.len() == l.len() {
        for (i, (di, li)) in d.iter().zip(l).enumerate() {
            let mut p = path.clone();
            p.push(Seg::Index(i));
            diff(di, li, p, out);
        }
    } else {
        out.push((path, Value::Array(d.to_vec()), Value::Array(l.to_vec())));
    }
}

/// Equal as Kubernetes means it: `1` = `1.0`, `"500m"` = `"0.5"`, `"1Gi"` = `"1024Mi"`, `"80"` = `80`.
fn scalar_eq(d: &Value, l: &Value) -> bool {
    if d == l {
        return true;
    }
    match (d, l) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => match (quantity(d), quantity(l)) {
            (Some(a), Some(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0),
            _ => false,
        },
    }
}

/// A resource quantity (`500m`, `1Gi`, `2`, `1e3`) as a number.
fn quantity(v: &Value) -> Option<f64> {
    let s = match v {
        Value::Number(n) => return n.as_f64(),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, mult) = SUFFIXES.iter().find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m))).unwrap_or((s, 1.0));
    if num.is_empty() || !num.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+') {
        return None;
    }
    num.parse::<f64>().ok().map(|n| n * mult)
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedEntry {
    #[serde(default)]
    pub manager: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default, rename = "fieldsV1")]
    pub fields_v1: Value,
}

/// The managedFields of a live object.
pub fn managed_entries(live: &Value) -> Vec<ManagedEntry> {
    live.pointer("/metadata/managedFields").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default()
}

/// Whether a `k:{...}` fieldsV1 key names the list item `key`.
fn key_matches(fields_key: &str, key: &BTreeMap<String, Value>) -> bool {
    let Some(json) = fields_key.strip_prefix("k:") else { return false };
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(json) else { return false };
    key.iter().all(|(k, v)| match obj.get(k) {
        Some(ov) => ov == v || scalar_text(ov) == scalar_text(v),
        // A protocol we filled in as the default need not be in the key.
        None => k == "protocol" && v == "TCP",
    })
}

/// Whether the fieldsV1 tree `set` owns `path`.
fn owns(set: &Value, path: &[Seg]) -> bool {
    let mut node = set;
    for (i, seg) in path.iter().enumerate() {
        let Some(map) = node.as_object() else { return false };
        let child = match seg {
            Seg::Key(k) => map.get(&format!("f:{k}")),
            Seg::Item(key) => map.iter().find(|(fk, _)| key_matches(fk, key)).map(|(_, v)| v),
            Seg::Index(idx) => map.get(&format!("i:{idx}")),
        };
        match child {
            Some(c) => node = c,
            None => return false,
        }
        // An empty set owns the whole (atomic) value below it.
        if i + 1 < path.len() && node.as_object().is_some_and(Map::is_empty) {
            return true;
        }
    }
    true
}

/// Attribute one drifted path: who owns the live value, newest write first.
pub fn attribute(path: &[Seg], desired: Value, live: Value, entries: &[ManagedEntry]) -> FieldDrift {
    let mut owners: Vec<&ManagedEntry> = entries.iter().filter(|e| owns(&e.fields_v1, path)).collect();
    // RFC 3339 UTC timestamps sort as strings.
    owners.sort_by(|a, b| b.time.cmp(&a.time));
    let latest = owners.first();
    FieldDrift {
        path: render_path(path),
        desired,
        live,
        changed_by: latest.map(|e| e.manager.clone()),
        operation: latest.map(|e| e.operation.clone()),
        changed_at: latest.and_then(|e| e.time.clone()),
        owners: owners
            .iter()
            .map(|e| match &e.subresource {
                Some(s) if !s.is_empty() => format!("{} ({s})", e.manager),
                _ => e.manager.clone(),
            })
            .collect(),
        note: None,
    }
}

/// Diff and attribute in one go.
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<FieldDrift> {
    let entries = managed_entries(live);
    diff_object(desired, live).into_iter().map(|(p, d, l)| attribute(&p, d, l, &entries)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": image, "ports": [{"containerPort": 8080}],
                     "resources": {"limits": {"memory": "1Gi", "cpu": "500m"}}},
                    {"name": "sidecar", "image": "busybox:1"}]}}}
        })
    }

    fn live_from(desired: &Value) -> Value {
        let mut live = desired.clone();
        // What the apiserver adds: defaults, status, metadata.
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
            json!({"memory": "1024Mi", "cpu": "0.5"});
        live["status"] = json!({"replicas": 2});
        live
    }

    #[test]
    fn defaults_and_controller_fields_are_not_drift() {
        let desired = deployment(2, "nginx:1.25");
        assert_eq!(diff_object(&desired, &live_from(&desired)), vec![]);
    }

    #[test]
    fn finds_exactly_the_changed_fields() {
        let desired = deployment(2, "nginx:1.25");
        let mut live = live_from(&deployment(5, "nginx:1.26"));
        // Reordered containers are not drift.
        let containers = live["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap();
        containers.reverse();
        live["metadata"]["labels"]["tier"] = json!("x"); // a label the desired state does not set: ignored
        let paths: Vec<String> = diff_object(&desired, &live).iter().map(|(p, _, _)| render_path(p)).collect();
        assert_eq!(paths, vec!["spec.replicas", "spec.template.spec.containers[name=web].image"]);
    }

    #[test]
    fn added_and_removed_list_items_are_drift() {
        let desired = deployment(2, "nginx:1.25");
        let mut live = live_from(&desired);
        let containers = live["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap();
        containers.remove(1);
        containers.push(json!({"name": "debug", "image": "busybox"}));
        let diffs = diff_object(&desired, &live);
        let paths: Vec<String> = diffs.iter().map(|(p, _, _)| render_path(p)).collect();
        assert_eq!(
            paths,
            vec!["spec.template.spec.containers[name=sidecar]", "spec.template.spec.containers[name=debug]"]
        );
        assert_eq!(diffs[0].2, Value::Null);
        assert_eq!(diffs[1].1, Value::Null);
    }

    #[test]
    fn quoted_keys_and_secret_string_data() {
        let desired = json!({"kind": "Secret", "metadata": {"labels": {"app.kubernetes.io/name": "a"}},
            "stringData": {"user": "admin"}});
        let live = json!({"kind": "Secret", "metadata": {"labels": {"app.kubernetes.io/name": "b"}},
            "data": {"user": "cm9vdA=="}});
        let paths: Vec<String> = diff_object(&desired, &live).iter().map(|(p, _, _)| render_path(p)).collect();
        assert_eq!(paths, vec!["metadata.labels[\"app.kubernetes.io/name\"]", "data.user"]);
        let same = json!({"kind": "Secret", "metadata": {"labels": {"app.kubernetes.io/name": "a"}},
            "data": {"user": "YWRtaW4="}});
        assert!(diff_object(&desired, &same).is_empty());
    }

    #[test]
    fn quantities() {
        assert!(scalar_eq(&json!("1Gi"), &json!("1024Mi")));
        assert!(scalar_eq(&json!("500m"), &json!("0.5")));
        assert!(scalar_eq(&json!(2), &json!("2")));
        assert!(!scalar_eq(&json!("1Gi"), &json!("1G")));
        assert!(!scalar_eq(&json!("nginx"), &json!("nginx2")));
        assert!(!scalar_eq(&json!("m"), &json!("k")));
    }

    #[test]
    fn attributes_to_the_latest_owner() {
        let desired = deployment(2, "nginx:1.25");
        let mut live = live_from(&deployment(5, "nginx:1.26"));
        live["metadata"]["managedFields"] = json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-11-25T10:00:00Z",
             "fieldsV1": {"f:spec": {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                 "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}}}}}}}},
            {"manager": "kubectl-set", "operation": "Update", "time": "2026-11-25T10:05:00Z",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                 "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}},
            {"manager": "kubectl", "operation": "Update", "subresource": "scale", "time": "2026-11-25T10:06:00Z",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let fields = drifted_fields(&desired, &live);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].path, "spec.replicas");
        assert_eq!((fields[0].desired.clone(), fields[0].live.clone()), (json!(2), json!(5)));
        assert_eq!(fields[0].changed_by.as_deref(), Some("kubectl"));
        assert_eq!(fields[0].owners, vec!["kubectl (scale)"]);
        assert_eq!(fields[1].changed_by.as_deref(), Some("kubectl-set"));
        assert_eq!(fields[1].changed_at.as_deref(), Some("2026-11-25T10:05:00Z"));
        assert_eq!(fields[1].operation.as_deref(), Some("Update"));
    }

    #[test]
    fn port_keys_match_managed_fields() {
        let key: BTreeMap<String, Value> =
            [("containerPort".to_owned(), json!(8080)), ("protocol".to_owned(), json!("TCP"))].into();
        assert!(key_matches("k:{\"containerPort\":8080,\"protocol\":\"TCP\"}", &key));
        assert!(!key_matches("k:{\"containerPort\":80,\"protocol\":\"TCP\"}", &key));
    }
}

//! What a proposal was computed from, so apply can tell a status-only write from an edit.
//!
//! A proposal is pinned to a resourceVersion, but controllers and kubelets bump that all the
//! time with status writes; refusing every newer version would refuse almost every approval.
//! Comparing `metadata.generation` instead misses edits that do not bump it (labels and
//! annotations never do). So the proposal records a fingerprint of everything it was computed
//! from: `metadata.labels`, `metadata.annotations` (without kubemedic's own `kubemedic.io/`
//! keys), whether the object is being deleted, and the rest of the object (spec, or data for a
//! ConfigMap) without `status`. Apply goes ahead on a newer resourceVersion only when the
//! fingerprint of the live object is the same, and names what changed when it is not.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Annotations under this prefix are kubemedic's own (the proposal stamp) and not part of it.
const OWN_PREFIX: &str = "kubemedic.io/";

/// The parts of an object a fingerprint covers, in order.
const PARTS: [&str; 4] = ["metadata.labels", "metadata.annotations", "metadata.deletionTimestamp", "spec"];

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn digest(v: &Value) -> String {
    let mut text = String::new();
    canonical(v, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn parts(obj: &Value) -> [Value; 4] {
    let meta = obj.get("metadata");
    let labels = meta.and_then(|m| m.get("labels")).cloned().unwrap_or(Value::Null);
    let annotations: Map<String, Value> = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|a| a.iter().filter(|(k, _)| !k.starts_with(OWN_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let deleting = Value::Bool(meta.and_then(|m| m.get("deletionTimestamp")).is_some_and(|d| !d.is_null()));
    let content: Map<String, Value> = obj
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    [labels, Value::Object(annotations), deleting, Value::Object(content)]
}

/// The fingerprint of `obj` (a live object as the apiserver returns it).
pub fn fingerprint(obj: &Value) -> String {
    parts(obj).iter().zip(PARTS).map(|(v, name)| format!("{name}={}", digest(v))).collect::<Vec<_>>().join(";")
}

/// What changed between the fingerprint a proposal pinned and the live object; empty when
/// nothing it was computed from did. A fingerprint that cannot be read counts as all changed.
pub fn changed(pinned: &str, live: &Value) -> Vec<&'static str> {
    let now = fingerprint(live);
    let mut theirs = pinned.split(';');
    let ours = now.split(';');
    let mut out = Vec::new();
    for (name, part) in PARTS.iter().zip(ours) {
        if theirs.next() != Some(part) {
            out.push(*name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "resourceVersion": "10", "generation": 2, "labels": {"app": "api"},
                         "annotations": {"deployment.kubernetes.io/revision": "2"}, "managedFields": []},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}},
            "status": {"observedGeneration": 2, "availableReplicas": 1}
        })
    }

    #[test]
    fn status_and_bookkeeping_do_not_count() {
        let before = fingerprint(&deployment());
        let mut after = deployment();
        after["metadata"]["resourceVersion"] = json!("11");
        after["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager"}]);
        after["status"] = json!({"observedGeneration": 2, "availableReplicas": 0, "unavailableReplicas": 1});
        after["metadata"]["annotations"]["kubemedic.io/proposal"] = json!("p-1");
        assert!(changed(&before, &after).is_empty());
        // Key order does not matter.
        let reordered: Value = serde_json::from_str(
            r#"{"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27", "name": "app"}]}}, "replicas": 1},
                "metadata": {"annotations": {"deployment.kubernetes.io/revision": "2"}, "labels": {"app": "api"}}}"#,
        )
        .unwrap();
        assert!(changed(&before, &reordered).is_empty());
    }

    #[test]
    fn edits_are_named() {
        let before = fingerprint(&deployment());
        let mut labelled = deployment();
        labelled["metadata"]["labels"]["team"] = json!("payments");
        assert_eq!(changed(&before, &labelled), vec!["metadata.labels"]);
        let mut annotated = deployment();
        annotated["metadata"]["annotations"]["owner"] = json!("someone");
        assert_eq!(changed(&before, &annotated), vec!["metadata.annotations"]);
        let mut scaled = deployment();
        scaled["spec"]["replicas"] = json!(3);
        assert_eq!(changed(&before, &scaled), vec!["spec"]);
        let mut deleting = deployment();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-25T18:00:00Z");
        assert_eq!(changed(&before, &deleting), vec!["metadata.deletionTimestamp"]);
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let pinned = fingerprint(&cm);
        cm["data"]["a"] = json!("2");
        assert_eq!(changed(&pinned, &cm), vec!["spec"], "a ConfigMap's data counts as its content");
        assert_eq!(changed("garbage", &deployment()).len(), 4);
    }
}

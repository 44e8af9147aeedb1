//! What a patch actually changes: the live object against the apiserver's
//! dry-run result, as a list of changed field paths (for the policy) and a
//! unified diff (for humans).

use serde_json::Value;

/// Fields the server maintains, which say nothing about the proposed change.
const SERVER_FIELDS: &[&str] =
    &["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"];

/// The object without status and server-maintained metadata.
pub fn strip(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_FIELDS {
                meta.remove(*f);
            }
            if meta.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// One changed leaf: its path segments (array indices written as `[]`) and
/// the values before and after (`None` = absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub path: Vec<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    /// `spec.template.spec.containers[].image`
    pub fn display(&self) -> String {
        display_path(&self.path)
    }
}

/// Join path segments, writing array markers as `[]` suffixes.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg == "[]" {
            out.push_str("[]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Every leaf that differs between `before` and `after`.
pub fn changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), Some(before), Some(after), &mut out);
    out
}

fn walk(path: &mut Vec<String>, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                walk(path, x.get(k), y.get(k), out);
                path.pop();
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                path.push("[]".into());
                walk(path, x.get(i), y.get(i), out);
                path.pop();
            }
        }
        (Some(Value::Object(x)), None) | (None, Some(Value::Object(x))) if !x.is_empty() => {
            let side_is_before = a.is_some();
            for (k, v) in x {
                path.push(k.clone());
                if side_is_before {
                    walk(path, Some(v), None, out)
                } else {
                    walk(path, None, Some(v), out)
                }
                path.pop();
            }
        }
        (Some(Value::Array(x)), None) | (None, Some(Value::Array(x))) if !x.is_empty() => {
            let side_is_before = a.is_some();
            for v in x {
                path.push("[]".into());
                if side_is_before {
                    walk(path, Some(v), None, out)
                } else {
                    walk(path, None, Some(v), out)
                }
                path.pop();
            }
        }
        _ => out.push(Change { path: path.clone(), before: a.cloned(), after: b.cloned() }),
    }
}

/// A unified diff of the two objects rendered as YAML.
pub fn unified(before: &Value, after: &Value, label: &str) -> String {
    let a = serde_yaml_ng::to_string(before).unwrap_or_default();
    let b = serde_yaml_ng::to_string(after).unwrap_or_default();
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{label} (live)"), &format!("{label} (proposed)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_server_fields() {
        let v = json!({"metadata": {"name": "a", "resourceVersion": "5", "managedFields": [], "generation": 2},
                       "spec": {}, "status": {"x": 1}});
        assert_eq!(strip(&v), json!({"metadata": {"name": "a"}, "spec": {}}));
    }

    #[test]
    fn lists_changed_leaves() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "a:1", "env": []}]}});
        let b = json!({"spec": {"containers": [{"name": "c", "image": "a:2",
                       "env": [{"name": "X", "value": "1"}]}]}});
        let paths: Vec<String> = changes(&a, &b).iter().map(Change::display).collect();
        assert_eq!(
            paths,
            vec!["spec.containers[].env[].name", "spec.containers[].env[].value", "spec.containers[].image"]
        );
    }

    #[test]
    fn unified_diff_shows_the_change() {
        let a = json!({"spec": {"replicas": 1}});
        let b = json!({"spec": {"replicas": 2}});
        let d = unified(&a, &b, "Deployment/x");
        assert!(d.contains("-  replicas: 1") && d.contains("+  replicas: 2"), "{d}");
    }
}

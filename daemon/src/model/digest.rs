//! A proposal's content digest: SHA-256 over a canonical encoding of what would change
//! (cluster, target, action). Approvals bind to it (see the approvals service's seal); it is
//! plain data derived from a proposal, so every layer can compute and show it.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::proposal::{Action, PatchType, Proposal};

/// The canonical encoding the digest is computed over: JSON with object keys
/// sorted at every level, no whitespace; numbers and strings as serde_json
/// writes them. Independent of the order in which a store or a client wrote the keys.
pub fn canonical(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
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
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// SHA-256 (hex) of the canonical encoding of what a proposal would change:
/// cluster, target identity (apiVersion, kind, namespace, name) and action
/// (delete, or patch type and body). The resourceVersion is left out: apply
/// checks it separately, and may re-pin it after a status-only write.
pub fn digest(p: &Proposal) -> String {
    let action = match &p.action {
        Action::Delete => serde_json::json!({"type": "delete"}),
        Action::Patch { patch_type, body } => {
            let t = match patch_type {
                PatchType::Strategic => "strategic",
                PatchType::Merge => "merge",
                PatchType::Json => "json",
            };
            serde_json::json!({"type": "patch", "patch_type": t, "body": body})
        }
    };
    let doc = serde_json::json!({
        "v": 1,
        "cluster": p.cluster,
        "target": {
            "api_version": p.target.api_version,
            "kind": p.target.kind,
            "namespace": p.target.namespace,
            "name": p.target.name,
        },
        "action": action,
    });
    hex::encode(Sha256::digest(canonical(&doc).as_bytes()))
}

/// The first 12 hex digits, for messages.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

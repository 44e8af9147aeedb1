//! Helm release records, read without the helm binary.
//!
//! Helm stores each revision of a release as a Secret of type
//! `helm.sh/release.v1` labelled `owner=helm, name=<release>, version=<n>,
//! status=<status>`. Its `release` key holds base64 (on top of the Secret's
//! own base64) of gzip of the release JSON, whose `manifest` field is the
//! rendered multi-document YAML that was applied.

use std::io::Read as _;

use base64::Engine as _;
use flate2::read::GzDecoder;
use serde::Deserialize;
use serde_json::Value;

/// Secret type of Helm 3/4 release records.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("release record is not base64")]
    Base64(#[source] base64::DecodeError),
    #[error("release record is not valid gzip")]
    Gzip(#[source] std::io::Error),
    #[error("release record is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("manifest document {index} of release {release} is not valid YAML")]
    Yaml {
        release: String,
        index: usize,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// The parts of a release record drift needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub manifest: String,
    #[serde(default)]
    pub info: ReleaseInfo,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReleaseInfo {
    #[serde(default)]
    pub status: String,
}

/// Decode the `release` value of a release Secret (the bytes after the Secret's own base64).
pub fn decode_release(data: &[u8]) -> Result<Release, HelmError> {
    let trimmed: Vec<u8> = data.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(&trimmed).map_err(HelmError::Base64)?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(HelmError::Gzip)?;
        out
    } else {
        // Helm reads uncompressed records too.
        raw
    };
    serde_json::from_slice(&json).map_err(HelmError::Json)
}

/// Split a multi-document YAML manifest into JSON objects (empty documents skipped, `List`s expanded).
pub fn manifest_objects(release: &str, manifest: &str) -> Result<Vec<Value>, HelmError> {
    parse_documents(manifest).map_err(|(index, source)| HelmError::Yaml { release: release.to_owned(), index, source })
}

/// Multi-document YAML to JSON objects; on error, the 0-based index of the bad document.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, (usize, serde_yaml_ng::Error)> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| (index, e))?;
        push_objects(value, &mut out);
    }
    Ok(out)
}

fn push_objects(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(mut map) => {
            if map.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
                && let Some(Value::Array(items)) = map.remove("items")
            {
                for item in items {
                    push_objects(item, out);
                }
            } else if map.contains_key("kind") && map.contains_key("apiVersion") {
                out.push(Value::Object(map));
            }
        }
        Value::Null => {}
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write as _;

    fn encode(json: &str) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(json.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap()).into_bytes()
    }

    #[test]
    fn decodes_a_release_record() {
        let manifest = "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\n# empty\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n";
        let json = serde_json::json!({"name": "app", "namespace": "shop", "version": 3,
            "info": {"status": "deployed"}, "manifest": manifest, "config": {"password": "x"}});
        let release = decode_release(&encode(&json.to_string())).unwrap();
        assert_eq!((release.name.as_str(), release.version, release.info.status.as_str()), ("app", 3, "deployed"));
        let objects = manifest_objects("app", &release.manifest).unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["ConfigMap", "Service"]);
    }

    #[test]
    fn bad_records_are_errors() {
        assert!(matches!(decode_release(b"%%%"), Err(HelmError::Base64(_))));
        let not_json = base64::engine::general_purpose::STANDARD.encode("nope");
        assert!(matches!(decode_release(not_json.as_bytes()), Err(HelmError::Json(_))));
        assert!(matches!(manifest_objects("r", "a: [\n"), Err(HelmError::Yaml { index: 0, .. })));
    }
}

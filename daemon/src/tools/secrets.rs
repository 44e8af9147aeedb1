//! Secrets: `decode_secret` (keys, whether each is empty, and keyed
//! fingerprints; values only for an admin who asks with `reveal`) and the
//! Secret/ConfigMap references of a pod template.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PodSpec, Secret};
use kube::Api;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Caller, ToolError, Tools, kinds, require};
use crate::model::identity::Role;

/// Input of `decode_secret`: one Secret by name, or every Secret a workload references.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodeSecretInput {
    pub namespace: String,
    /// Secret name (or give `workload_kind` + `workload_name`).
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of a workload whose referenced Secrets to decode.
    #[serde(default)]
    pub workload_kind: Option<String>,
    /// Name of that workload.
    #[serde(default)]
    pub workload_name: Option<String>,
    /// Return the values too (admin role only).
    #[serde(default)]
    pub reveal: bool,
}

/// One key of a Secret.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct SecretKey {
    pub key: String,
    /// Whether the value is empty (its exact size is not given: it narrows a guess).
    pub empty: bool,
    /// `hmac-sha256:` and 32 hex digits of the value's HMAC under this installation's key:
    /// compare values (across keys, Secrets, or over time) without seeing them.
    pub fingerprint: String,
    /// The value, only for an admin with `reveal: true` (UTF-8, else base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct SecretSummary {
    pub name: String,
    /// Whether the Secret exists (a referenced one may not).
    pub exists: bool,
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    pub keys: Vec<SecretKey>,
}

/// A reference from a pod template to a Secret or ConfigMap key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Reference {
    /// `secret` or `configmap`.
    pub source: String,
    /// Where: `container web env DB_PASSWORD`, `volume creds`, `envFrom`, `imagePullSecrets`.
    pub from: String,
    pub object: String,
    /// The key, if the reference names one.
    pub key: Option<String>,
    pub optional: bool,
    /// Whether the object (and key) exist.
    pub resolves: bool,
    /// For a missing key: the existing key with the closest name.
    pub closest_key: Option<String>,
}

/// Output of `decode_secret`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct DecodeSecretOutput {
    pub namespace: String,
    pub secrets: Vec<SecretSummary>,
    /// For a workload: every Secret/ConfigMap reference of its pod template and whether it resolves.
    pub references: Vec<Reference>,
    /// Whether values are included.
    pub revealed: bool,
}

impl Tools {
    pub async fn decode_secret(
        &self,
        caller: &Caller,
        input: DecodeSecretInput,
    ) -> Result<DecodeSecretOutput, ToolError> {
        const TOOL: &str = "decode_secret";
        let scope = &self.cluster.scope;
        kinds::namespace(TOOL, scope, &input.namespace)?;
        if !scope.kind_visible("Secret") {
            return Err(ToolError::invalid(TOOL, "the Secret kind is not visible in this configuration"));
        }
        if input.reveal {
            require(caller, "decode_secret with reveal", Role::Admin)?;
        }
        let ns = input.namespace.as_str();
        let api: Api<Secret> = Api::namespaced(self.cluster.client.clone(), ns);
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut references = Vec::new();
        match (&input.name, &input.workload_kind, &input.workload_name) {
            (Some(name), None, None) => {
                kinds::name(TOOL, "name", name)?;
                names.insert(name.clone());
            }
            (None, Some(kind), Some(wname)) => {
                let tree = self.workload_tree(TOOL, ns, kind, wname).await?;
                let spec = pod_spec_of(&tree);
                if let Some(spec) = spec {
                    references = self.references(ns, &spec).await?;
                    names.extend(references.iter().filter(|r| r.source == "secret").map(|r| r.object.clone()));
                }
            }
            _ => {
                return Err(ToolError::invalid(
                    TOOL,
                    "give either `name` (a Secret) or both `workload_kind` and `workload_name`",
                ));
            }
        }
        let mut secrets = Vec::new();
        for name in names {
            match api.get_opt(&name).await.map_err(|e| ToolError::kube(format!("Secret {ns}/{name}"), e))? {
                Some(secret) => {
                    let mut keys: Vec<SecretKey> = secret
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| SecretKey {
                            key: k.clone(),
                            empty: v.0.is_empty(),
                            fingerprint: self.fingerprint_key.fingerprint(&v.0),
                            value: input.reveal.then(|| match std::str::from_utf8(&v.0) {
                                Ok(s) => s.to_owned(),
                                Err(_) => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &v.0),
                            }),
                        })
                        .collect();
                    keys.sort_by(|a, b| a.key.cmp(&b.key));
                    secrets.push(SecretSummary { name, exists: true, secret_type: secret.type_.clone(), keys });
                }
                None if input.name.is_some() => return Err(ToolError::NotFound(format!("Secret {ns}/{name}"))),
                None => secrets.push(SecretSummary { name, exists: false, secret_type: None, keys: Vec::new() }),
            }
        }
        if input.reveal {
            tracing::warn!(user = %caller.user, namespace = ns, secrets = secrets.len(), "secret values revealed to an admin");
        }
        Ok(DecodeSecretOutput { namespace: input.namespace, secrets, references, revealed: input.reveal })
    }

    /// Every Secret/ConfigMap reference of a pod spec, resolved against the live objects.
    pub(crate) async fn references(&self, ns: &str, spec: &PodSpec) -> Result<Vec<Reference>, ToolError> {
        let client = self.cluster.client.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, ns);
        let mut raw: Vec<(String, String, String, Option<String>, bool)> = Vec::new(); // source, from, object, key, optional
        for (init, c) in
            spec.init_containers.iter().flatten().map(|c| (true, c)).chain(spec.containers.iter().map(|c| (false, c)))
        {
            let cname = if init { format!("init container {}", c.name) } else { format!("container {}", c.name) };
            for e in c.env.iter().flatten() {
                let Some(vf) = &e.value_from else { continue };
                if let Some(r) = &vf.secret_key_ref {
                    raw.push((
                        "secret".into(),
                        format!("{cname} env {}", e.name),
                        r.name.clone(),
                        Some(r.key.clone()),
                        r.optional == Some(true),
                    ));
                }
                if let Some(r) = &vf.config_map_key_ref {
                    raw.push((
                        "configmap".into(),
                        format!("{cname} env {}", e.name),
                        r.name.clone(),
                        Some(r.key.clone()),
                        r.optional == Some(true),
                    ));
                }
            }
            for ef in c.env_from.iter().flatten() {
                if let Some(r) = &ef.secret_ref {
                    raw.push((
                        "secret".into(),
                        format!("{cname} envFrom"),
                        r.name.clone(),
                        None,
                        r.optional == Some(true),
                    ));
                }
                if let Some(r) = &ef.config_map_ref {
                    raw.push((
                        "configmap".into(),
                        format!("{cname} envFrom"),
                        r.name.clone(),
                        None,
                        r.optional == Some(true),
                    ));
                }
            }
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let keys: Vec<Option<String>> = match &s.items {
                    Some(items) if !items.is_empty() => items.iter().map(|i| Some(i.key.clone())).collect(),
                    _ => vec![None],
                };
                for key in keys {
                    raw.push((
                        "secret".into(),
                        format!("volume {}", v.name),
                        name.clone(),
                        key,
                        s.optional == Some(true),
                    ));
                }
            }
            if let Some(cm) = &v.config_map {
                let keys: Vec<Option<String>> = match &cm.items {
                    Some(items) if !items.is_empty() => items.iter().map(|i| Some(i.key.clone())).collect(),
                    _ => vec![None],
                };
                for key in keys {
                    raw.push((
                        "configmap".into(),
                        format!("volume {}", v.name),
                        cm.name.clone(),
                        key,
                        cm.optional == Some(true),
                    ));
                }
            }
        }
        for s in spec.image_pull_secrets.iter().flatten() {
            raw.push(("secret".into(), "imagePullSecrets".into(), s.name.clone(), None, false));
        }
        let mut out = Vec::new();
        for (source, from, object, key, optional) in raw {
            let existing_keys: Option<Vec<String>> = if source == "secret" {
                secrets.get_opt(&object).await.map_err(|e| ToolError::kube(format!("Secret {ns}/{object}"), e))?.map(
                    |s| {
                        s.data
                            .unwrap_or_default()
                            .into_keys()
                            .chain(s.string_data.unwrap_or_default().into_keys())
                            .collect()
                    },
                )
            } else {
                maps.get_opt(&object).await.map_err(|e| ToolError::kube(format!("ConfigMap {ns}/{object}"), e))?.map(
                    |m| {
                        m.data
                            .unwrap_or_default()
                            .into_keys()
                            .chain(m.binary_data.unwrap_or_default().into_keys())
                            .collect()
                    },
                )
            };
            let (resolves, closest_key) = match (&existing_keys, &key) {
                (None, _) => (false, None),
                (Some(_), None) => (true, None),
                (Some(keys), Some(k)) if keys.contains(k) => (true, None),
                (Some(keys), Some(k)) => (false, closest(k, keys)),
            };
            out.push(Reference { source, from, object, key, optional, resolves, closest_key });
        }
        Ok(out)
    }
}

/// The existing key closest to `wanted` (normalized Levenshtein), if reasonably close.
pub(crate) fn closest(wanted: &str, keys: &[String]) -> Option<String> {
    keys.iter()
        .map(|k| (strsim::normalized_levenshtein(&wanted.to_ascii_lowercase(), &k.to_ascii_lowercase()), k))
        .filter(|(score, _)| *score >= 0.4)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// The pod spec of a workload tree: the template of the workload, or the pod itself.
pub(crate) fn pod_spec_of(tree: &super::workload::WorkloadTree) -> Option<PodSpec> {
    let d = &tree.object.data;
    let spec = match tree.kind {
        "Pod" => d.get("spec"),
        _ => d.pointer("/spec/template/spec"),
    }?;
    serde_json::from_value(spec.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_keys() {
        let keys = vec!["password".to_owned(), "username".to_owned()];
        assert_eq!(closest("passwrd", &keys).as_deref(), Some("password"));
        assert_eq!(closest("DB_PASSWORD", &keys).as_deref(), Some("password"));
        assert_eq!(closest("zzz", &keys), None);
    }
}

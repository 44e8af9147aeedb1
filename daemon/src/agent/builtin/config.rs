//! CreateContainerConfigError: a `secretKeyRef` / `configMapKeyRef` that
//! names a key or an object that does not exist. A missing key that is a
//! near miss of an existing one gets a one-field patch; a missing object
//! gets advice on what to create (values are never invented).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::analyze::{Finding, container_patch, pod_name, statuses, waiting_message, waiting_reason};
use super::gather::Facts;
use crate::model::diagnosis::Evidence;
use crate::model::proposal::PatchType;
use crate::policy::ProposalDraft;

/// Smallest similarity for a key to count as the one that was meant.
const MIN_SIMILARITY: f64 = 0.75;

/// The existing key closest to `wanted`, if it is close enough to be a typo.
pub fn closest_key<'a>(wanted: &str, keys: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    let w = wanted.to_ascii_lowercase();
    let mut best: Option<(&String, f64)> = None;
    for k in keys {
        let score = strsim::normalized_damerau_levenshtein(&w, &k.to_ascii_lowercase())
            .max(strsim::jaro_winkler(&w, &k.to_ascii_lowercase()) - 0.1);
        if score >= MIN_SIMILARITY && best.is_none_or(|(_, s)| score > s) {
            best = Some((k, score));
        }
    }
    best.map(|(k, _)| k)
}

#[derive(Debug)]
struct BadRef {
    list: &'static str,
    container: String,
    env: String,
    source: &'static str,
    object: String,
    key: String,
    /// `None` = the object does not exist.
    keys: Option<BTreeSet<String>>,
}

pub fn analyze(facts: &Facts) -> Option<Finding> {
    let spec = facts.pod_spec()?;
    let mut bad = Vec::new();
    let mut missing_whole: Vec<(String, String)> = Vec::new();
    for (list, containers) in
        [("containers", Some(&spec.containers)), ("initContainers", spec.init_containers.as_ref())]
    {
        for c in containers.into_iter().flatten() {
            for e in c.env.iter().flatten() {
                let Some(vf) = &e.value_from else { continue };
                let refs = [
                    vf.secret_key_ref.as_ref().map(|r| ("Secret", &r.name, &r.key, r.optional, &facts.secrets)),
                    vf.config_map_key_ref
                        .as_ref()
                        .map(|r| ("ConfigMap", &r.name, &r.key, r.optional, &facts.config_maps)),
                ];
                for (source, object, key, optional, known) in refs.into_iter().flatten() {
                    if optional == Some(true) {
                        continue;
                    }
                    let Some(state) = known.get(object.as_str()) else { continue };
                    if state.as_ref().is_some_and(|keys| keys.contains(key.as_str())) {
                        continue;
                    }
                    bad.push(BadRef {
                        list,
                        container: c.name.clone(),
                        env: e.name.clone(),
                        source,
                        object: object.clone(),
                        key: key.clone(),
                        keys: state.clone(),
                    });
                }
            }
            for ef in c.env_from.iter().flatten() {
                let refs = [
                    ef.secret_ref.as_ref().map(|r| ("Secret", &r.name, r.optional, &facts.secrets)),
                    ef.config_map_ref.as_ref().map(|r| ("ConfigMap", &r.name, r.optional, &facts.config_maps)),
                ];
                for (source, object, optional, known) in refs.into_iter().flatten() {
                    if optional != Some(true) && matches!(known.get(object.as_str()), Some(None)) {
                        missing_whole.push((source.to_owned(), object.clone()));
                    }
                }
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = v.secret.as_ref().filter(|s| s.optional != Some(true)).and_then(|s| s.secret_name.clone())
            && matches!(facts.secrets.get(&s), Some(None))
        {
            missing_whole.push(("Secret".into(), s));
        }
        if let Some(c) = v.config_map.as_ref().filter(|c| c.optional != Some(true))
            && matches!(facts.config_maps.get(&c.name), Some(None))
        {
            missing_whole.push(("ConfigMap".into(), c.name.clone()));
        }
    }
    if bad.is_empty() && missing_whole.is_empty() {
        return None;
    }

    // The symptom as the pods show it.
    let mut symptom = None;
    for p in &facts.pods {
        for cs in statuses(p) {
            if waiting_reason(cs) == Some("CreateContainerConfigError") {
                symptom = Some((pod_name(p), waiting_message(cs).unwrap_or_default().to_owned()));
            }
        }
    }
    let ns = &facts.target.namespace;
    let mut f = Finding { confidence: if symptom.is_some() { 0.95 } else { 0.7 }, ..Default::default() };
    let mut fixes: BTreeMap<(&'static str, String), Vec<serde_json::Value>> = BTreeMap::new();
    let mut causes = Vec::new();
    let mut to_create: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for b in &bad {
        let lower = b.source.to_ascii_lowercase();
        match &b.keys {
            None => {
                causes.push(format!(
                    "env {} of container {} reads {} {} which does not exist",
                    b.env, b.container, b.source, b.object
                ));
                to_create.entry((b.source.to_owned(), b.object.clone())).or_default().insert(b.key.clone());
            }
            Some(keys) => {
                let held = keys.iter().cloned().collect::<Vec<_>>().join(", ");
                match closest_key(&b.key, keys) {
                    Some(k) => {
                        causes.push(format!(
                            "env {} of container {} reads key {} of {} {}, which holds [{held}]: {} was meant",
                            b.env, b.container, b.key, b.source, b.object, k
                        ));
                        let ref_field = if b.source == "Secret" { "secretKeyRef" } else { "configMapKeyRef" };
                        fixes.entry((b.list, b.container.clone())).or_default().push(json!({
                            "name": b.env,
                            "valueFrom": {ref_field: {"name": b.object, "key": k}}
                        }));
                        f.evidence.push(Evidence {
                            tool: if b.source == "Secret" { "decode_secret".into() } else { "get_resource".into() },
                            args: json!({"namespace": ns, "kind": b.source, "name": b.object}),
                            finding: format!(
                                "{} {} has no key {} but has {} (closest match)",
                                b.source, b.object, b.key, k
                            ),
                        });
                    }
                    None => {
                        causes.push(format!(
                            "env {} of container {} reads key {} of {} {}, which holds only [{held}]",
                            b.env, b.container, b.key, b.source, b.object
                        ));
                        f.advice.push(format!(
                            "Add key {} to {} {}/{} (or point env {} at one of its keys: {held}); kubemedic does not \
                             invent {lower} values.",
                            b.key, b.source, ns, b.object, b.env
                        ));
                    }
                }
            }
        }
    }
    for (source, object) in &missing_whole {
        causes.push(format!("{source} {object} referenced by the pod template does not exist"));
        to_create.entry((source.clone(), object.clone())).or_default();
    }
    for ((source, object), keys) in &to_create {
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!(" with key(s) {}", keys.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        f.advice.push(format!(
            "Create {source} {object} in namespace {ns}{keys}; no safe patch exists and kubemedic never invents \
             configuration or secret values."
        ));
    }

    f.root_cause = causes.join("; ");
    let workload = &facts.target;
    f.summary = if fixes.is_empty() {
        format!("{workload} cannot start its containers: {}", causes.first().cloned().unwrap_or_default())
    } else {
        format!("{workload} cannot start its containers: a config reference names a key that does not exist")
    };
    f.chain.push(format!("{workload} unavailable"));
    match &symptom {
        Some((pod, msg)) => f.chain.push(format!("pod {pod}: CreateContainerConfigError ({msg})")),
        None => f.chain.push("pods cannot get their configuration".into()),
    }
    f.chain.extend(causes.iter().cloned());
    if !fixes.is_empty() {
        let mut body = json!({});
        for ((list, container), env) in fixes {
            let patch = container_patch(&workload.kind, list, json!({"name": container, "env": env}));
            merge(&mut body, patch);
        }
        let mut draft = ProposalDraft::patch(
            &workload.kind,
            &workload.namespace,
            &workload.name,
            PatchType::Strategic,
            body,
            &format!(
                "The pods fail with CreateContainerConfigError because {}. Pointing the reference at the key that \
                 exists changes one field per variable and no value.",
                f.root_cause
            ),
        );
        draft.risk = Some(crate::model::proposal::Risk::Low);
        f.drafts.push(draft);
    }
    Some(f)
}

/// Deep-merge `b` into `a`, concatenating arrays (container lists of one patch).
fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        x.insert(k, v);
                    }
                }
            }
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => x.extend(y),
        (a, b) => *a = b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_finds_the_intended_key() {
        let keys: Vec<String> = vec!["DB_PASSWORD".into(), "DB_USER".into(), "DB_HOST".into()];
        assert_eq!(closest_key("DB_PASWORD", &keys).map(String::as_str), Some("DB_PASSWORD"));
        assert_eq!(closest_key("db_password", &keys).map(String::as_str), Some("DB_PASSWORD"));
        assert_eq!(closest_key("API_TOKEN", &keys), None);
    }
}

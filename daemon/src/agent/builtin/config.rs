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
    // (kind, object, where it is referenced): envFrom of a container, or a volume.
    let mut missing_whole: Vec<(String, String, Whole)> = Vec::new();
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
            for (i, ef) in c.env_from.iter().flatten().enumerate() {
                let refs = [
                    ef.secret_ref.as_ref().map(|r| ("Secret", &r.name, r.optional, &facts.secrets)),
                    ef.config_map_ref.as_ref().map(|r| ("ConfigMap", &r.name, r.optional, &facts.config_maps)),
                ];
                for (source, object, optional, known) in refs.into_iter().flatten() {
                    if optional != Some(true) && matches!(known.get(object.as_str()), Some(None)) {
                        let at = Whole::EnvFrom { list, container: c.name.clone(), index: i };
                        missing_whole.push((source.to_owned(), object.clone(), at));
                    }
                }
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = v.secret.as_ref().filter(|s| s.optional != Some(true)).and_then(|s| s.secret_name.clone())
            && matches!(facts.secrets.get(&s), Some(None))
        {
            missing_whole.push(("Secret".into(), s, Whole::Volume(v.name.clone())));
        }
        if let Some(c) = v.config_map.as_ref().filter(|c| c.optional != Some(true))
            && matches!(facts.config_maps.get(&c.name), Some(None))
        {
            missing_whole.push(("ConfigMap".into(), c.name.clone(), Whole::Volume(v.name.clone())));
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
    // (container list, container) → the env entries to merge (by name), and the whole new envFrom list.
    let mut fixes: BTreeMap<(&'static str, String), Vec<serde_json::Value>> = BTreeMap::new();
    let mut env_from_fixes: BTreeMap<(&'static str, String), EnvFromFix> = BTreeMap::new();
    let mut volume_fixes: Vec<serde_json::Value> = Vec::new();
    let mut causes = Vec::new();
    let mut to_create: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for b in &bad {
        let lower = b.source.to_ascii_lowercase();
        let near = facts
            .near_names
            .get(&(b.source.to_owned(), b.object.clone()))
            .filter(|n| known(facts, b.source, n).is_some_and(|keys| keys.contains(&b.key)));
        match (&b.keys, near) {
            (None, Some(near)) => {
                causes.push(format!(
                    "env {} of container {} reads {} {} which does not exist; {} {near} exists and holds key {}: \
                     {near} was meant",
                    b.env, b.container, b.source, b.object, b.source, b.key
                ));
                let ref_field = if b.source == "Secret" { "secretKeyRef" } else { "configMapKeyRef" };
                fixes.entry((b.list, b.container.clone())).or_default().push(json!({
                    "name": b.env,
                    "valueFrom": {ref_field: {"name": near, "key": b.key}}
                }));
            }
            (None, None) => {
                causes.push(format!(
                    "env {} of container {} reads {} {} which does not exist",
                    b.env, b.container, b.source, b.object
                ));
                to_create.entry((b.source.to_owned(), b.object.clone())).or_default().insert(b.key.clone());
            }
            (Some(keys), _) => {
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
    for (source, object, at) in &missing_whole {
        let Some(near) = facts.near_names.get(&(source.clone(), object.clone())) else {
            causes.push(format!("{source} {object} referenced by the pod template does not exist"));
            to_create.entry((source.clone(), object.clone())).or_default();
            continue;
        };
        let used = match at {
            Whole::EnvFrom { list, container, index } => {
                env_from_fixes
                    .entry((list, container.clone()))
                    .or_default()
                    .insert(*index, (source.clone(), near.clone()));
                format!("envFrom of container {container}")
            }
            Whole::Volume(volume) => {
                let field = if source == "Secret" {
                    json!({"secret": {"secretName": near}})
                } else {
                    json!({"configMap": {"name": near}})
                };
                let mut v = json!({"name": volume});
                merge(&mut v, field);
                volume_fixes.push(v);
                format!("volume {volume}")
            }
        };
        causes.push(format!(
            "{source} {object} referenced by {used} does not exist; {source} {near} does: {near} was meant"
        ));
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
    let patched = !(fixes.is_empty() && env_from_fixes.is_empty() && volume_fixes.is_empty());
    f.summary = if !patched {
        format!("{workload} cannot start its containers: {}", causes.first().cloned().unwrap_or_default())
    } else {
        format!("{workload} cannot start its containers: a config reference names a key or object that does not exist")
    };
    f.chain.push(format!("{workload} unavailable"));
    match &symptom {
        Some((pod, msg)) => f.chain.push(format!("pod {pod}: CreateContainerConfigError ({msg})")),
        None => f.chain.push("pods cannot get their configuration".into()),
    }
    f.chain.extend(causes.iter().cloned());
    if patched {
        // One entry per container (merged by name), carrying its env and envFrom changes.
        let mut per: BTreeMap<(&'static str, String), serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        for ((list, container), env) in fixes {
            per.entry((list, container)).or_default().insert("env".into(), json!(env));
        }
        for ((list, container), by_index) in env_from_fixes {
            // envFrom has no merge key: the patch carries the whole list, each entry as it was but
            // the names that were near misses.
            let Some(c) = spec_container(spec, list, &container) else { continue };
            let mut entries = serde_json::to_value(c.env_from.clone().unwrap_or_default()).unwrap_or_default();
            for (i, (source, near)) in by_index {
                let field = if source == "Secret" { "secretRef" } else { "configMapRef" };
                if let Some(name) = entries.get_mut(i).and_then(|e| e.get_mut(field)).and_then(|r| r.get_mut("name")) {
                    *name = json!(near);
                }
            }
            per.entry((list, container)).or_default().insert("envFrom".into(), entries);
        }
        let mut body = json!({});
        for ((list, container), mut fields) in per {
            fields.insert("name".into(), json!(container));
            merge(&mut body, container_patch(&workload.kind, list, serde_json::Value::Object(fields)));
        }
        if !volume_fixes.is_empty() {
            let volumes = if workload.kind == "Pod" {
                json!({"spec": {"volumes": volume_fixes}})
            } else {
                json!({"spec": {"template": {"spec": {"volumes": volume_fixes}}}})
            };
            merge(&mut body, volumes);
        }
        let mut draft = ProposalDraft::patch(
            &workload.kind,
            &workload.namespace,
            &workload.name,
            PatchType::Strategic,
            body,
            &format!(
                "The pods cannot start because {}. Pointing each reference at the key or object that exists \
                 changes one name per reference and no value.",
                f.root_cause
            ),
        );
        draft.risk = Some(crate::model::proposal::Risk::Low);
        f.drafts.push(draft);
    }
    Some(f)
}

/// envFrom entries of one container to rename: index → (kind, existing name).
type EnvFromFix = BTreeMap<usize, (String, String)>;

/// Where a whole missing object is referenced.
#[derive(Debug)]
enum Whole {
    EnvFrom { list: &'static str, container: String, index: usize },
    Volume(String),
}

/// The key names of a referenced object, as gathered (`None`: missing or not read).
fn known<'a>(facts: &'a Facts, kind: &str, name: &str) -> Option<&'a BTreeSet<String>> {
    let m = if kind == "Secret" { &facts.secrets } else { &facts.config_maps };
    m.get(name).and_then(Option::as_ref)
}

fn spec_container<'a>(
    spec: &'a k8s_openapi::api::core::v1::PodSpec,
    list: &str,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::Container> {
    let containers = if list == "initContainers" { spec.init_containers.as_ref()? } else { &spec.containers };
    containers.iter().find(|c| c.name == name)
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

    fn facts(template: serde_json::Value) -> Facts {
        let mut f = Facts::new(crate::model::signal::WorkloadRef::new("Deployment", "ns", "web"));
        f.template = Some(serde_json::from_value(template).unwrap());
        f
    }

    #[test]
    fn a_missing_object_with_a_near_name_is_pointed_at_it() {
        let mut f = facts(json!({"spec": {
            "containers": [{"name": "app", "image": "x",
                "envFrom": [{"configMapRef": {"name": "base"}}, {"configMapRef": {"name": "app-setting"}}],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-tokn", "key": "token"}}}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "tls-cert", "defaultMode": 256}}]
        }}));
        f.config_maps.insert("base".into(), Some(BTreeSet::new()));
        for (kind, missing, near, key) in [
            ("ConfigMap", "app-setting", "app-settings", "A"),
            ("Secret", "api-tokn", "api-token", "token"),
            ("Secret", "tls-cert", "tls-certs", "tls.crt"),
        ] {
            let m = if kind == "Secret" { &mut f.secrets } else { &mut f.config_maps };
            m.insert(missing.into(), None);
            m.insert(near.into(), Some([key.to_string()].into()));
            f.near_names.insert((kind.into(), missing.into()), near.into());
        }
        let found = analyze(&f).unwrap();
        assert!(found.advice.is_empty(), "{:?}", found.advice);
        let crate::approvals::Action::Patch { body, .. } = &found.drafts[0].action else { panic!("a patch") };
        let c = &body["spec"]["template"]["spec"]["containers"][0];
        // envFrom is replaced whole: the untouched entry stays, the near miss is renamed.
        assert_eq!(
            c["envFrom"],
            json!([{"configMapRef": {"name": "base"}}, {"configMapRef": {"name": "app-settings"}}])
        );
        assert_eq!(c["env"][0]["valueFrom"]["secretKeyRef"], json!({"name": "api-token", "key": "token"}));
        assert_eq!(
            body["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "tls", "secret": {"secretName": "tls-certs"}}])
        );
        assert!(found.root_cause.contains("app-settings was meant"), "{}", found.root_cause);
    }

    #[test]
    fn a_near_name_without_the_key_is_not_used() {
        let mut f = facts(json!({"spec": {"containers": [{"name": "app", "image": "x",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-tokn", "key": "token"}}}]}]}}));
        f.secrets.insert("api-tokn".into(), None);
        f.secrets.insert("api-token".into(), Some(["other".to_string()].into()));
        f.near_names.insert(("Secret".into(), "api-tokn".into()), "api-token".into());
        let found = analyze(&f).unwrap();
        assert!(found.drafts.is_empty());
        assert!(found.advice[0].contains("Create Secret api-tokn"), "{:?}", found.advice);
    }

    #[test]
    fn typo_finds_the_intended_key() {
        let keys: Vec<String> = vec!["DB_PASSWORD".into(), "DB_USER".into(), "DB_HOST".into()];
        assert_eq!(closest_key("DB_PASWORD", &keys).map(String::as_str), Some("DB_PASSWORD"));
        assert_eq!(closest_key("db_password", &keys).map(String::as_str), Some("DB_PASSWORD"));
        assert_eq!(closest_key("API_TOKEN", &keys), None);
    }
}

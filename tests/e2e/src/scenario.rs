//! Scenario files: `tests/scenarios/{name}.yaml`, multi-document manifests applied in order.
//!
//! Each document is either a Kubernetes object, applied with server-side apply (field manager
//! [`FIELD_MANAGER`]) into the test's namespace (cluster-scoped objects such as a Node keep no
//! namespace), or a harness step of `apiVersion: scenario.kubemedic.io/v1`:
//!
//! ```yaml
//! apiVersion: scenario.kubemedic.io/v1
//! kind: WaitReady            # wait until the workload is fully rolled out before going on
//! target: Deployment/web     # Deployment/NAME or StatefulSet/NAME
//! timeoutSeconds: 120        # optional, default 120
//! ```
//!
//! A scenario that needs a rollout history lists the good revision, a `WaitReady`, then the bad
//! revision (the same object applied again), so the Deployment has revision 1 (good, ran) and
//! revision 2 (broken). See tests/scenarios/README.md for the catalog.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::Value;

/// The field manager scenario objects are applied with.
pub const FIELD_MANAGER: &str = "e2e-scenario";

/// apiVersion of the harness-only step documents.
pub const STEP_API_VERSION: &str = "scenario.kubemedic.io/v1";

/// Every scenario file shipped in tests/scenarios, by name.
pub const ALL: &[&str] = &[
    "config-secret-key-typo",
    "config-missing-configmap",
    "image-pull-bad-tag",
    "crashloop-after-rollout",
    "oom-killed",
    "probe-wrong-port",
    "unschedulable-requests",
    "rollout-stuck",
    "node-not-ready",
    "healthy-web",
    "healthy-stateful",
    "service-selector-typo",
    "service-target-port",
    "ingress-missing-backend",
    "pvc-missing-storageclass",
    "pvc-no-provisioner",
    "cronjob-suspended",
    "hpa-missing-target",
    "job-backoff-exceeded",
];

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// Server-side apply this object.
    Apply(Value),
    /// Wait until the workload is fully rolled out.
    WaitReady {
        /// `Deployment` or `StatefulSet`.
        kind: String,
        /// The workload's name.
        name: String,
        /// How long to wait.
        timeout: Duration,
    },
}

/// The path of scenario `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"))
}

/// Reads and parses scenario `name` into its steps.
///
/// # Errors
/// When the file is missing or a document is not an object with apiVersion and kind, or a step
/// is malformed.
pub fn load(name: &str) -> anyhow::Result<Vec<Step>> {
    let p = path(name);
    let text = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("read scenario {}: {e}", p.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("scenario {}: {e}", p.display()))
}

/// Parses a multi-document scenario text into steps (empty documents are skipped).
///
/// # Errors
/// When a document is not a mapping with `apiVersion` and `kind`, or a step is malformed.
pub fn parse(text: &str) -> anyhow::Result<Vec<Step>> {
    use serde::Deserialize;
    let mut steps = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| anyhow::anyhow!("document {}: {e}", i + 1))?;
        if v.is_null() {
            continue;
        }
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            anyhow::bail!("document {} has no apiVersion/kind", i + 1);
        }
        if api_version != STEP_API_VERSION {
            steps.push(Step::Apply(v));
            continue;
        }
        match kind {
            "WaitReady" => {
                let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
                let Some((kind, name)) = target.split_once('/') else {
                    anyhow::bail!("document {}: WaitReady needs target: Deployment/NAME or StatefulSet/NAME", i + 1);
                };
                if !matches!(kind, "Deployment" | "StatefulSet") {
                    anyhow::bail!("document {}: WaitReady cannot wait for {kind}", i + 1);
                }
                let secs = v.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(120);
                steps.push(Step::WaitReady {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    timeout: Duration::from_secs(secs),
                });
            }
            // The scorecard's expectation and the alerts it posts (`kubemedic eval`): not steps here.
            "Expect" | "Alert" => {}
            other => anyhow::bail!("document {}: unknown step kind {other}", i + 1),
        }
    }
    Ok(steps)
}

/// Applies scenario `name` into namespace `ns`, step by step, and returns the applied objects.
///
/// # Panics
/// When the file is invalid, the apiserver refuses an object, or a `WaitReady` times out.
pub async fn apply(client: &Client, ns: &str, name: &str) -> Vec<DynamicObject> {
    let steps = load(name).unwrap_or_else(|e| panic!("{e:#}"));
    let mut applied = Vec::new();
    for step in steps {
        match step {
            Step::Apply(obj) => applied.push(apply_object(client, ns, obj).await),
            Step::WaitReady { kind, name: wname, timeout } => match kind.as_str() {
                "Deployment" => {
                    crate::wait::deployment_ready(client, ns, &wname, timeout).await;
                }
                _ => {
                    crate::wait::statefulset_ready(client, ns, &wname, timeout).await;
                }
            },
        }
    }
    applied
}

/// Server-side applies one object (into `ns` when the kind is namespaced).
///
/// # Panics
/// When the kind is unknown to the apiserver or the apply is refused.
pub async fn apply_object(client: &Client, ns: &str, mut obj: Value) -> DynamicObject {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let gv: GroupVersion = api_version.parse().unwrap_or_else(|e| panic!("apiVersion {api_version}: {e}"));
    let (ar, caps) = pinned_kind(client, &gv.with_kind(&kind))
        .await
        .unwrap_or_else(|e| panic!("discover {api_version} {kind}: {e}"));
    let name = obj["metadata"]["name"].as_str().unwrap_or_else(|| panic!("{kind} without metadata.name")).to_string();
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        obj["metadata"]["namespace"] = Value::from(ns);
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name} in {ns}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses() {
        for name in ALL {
            let steps = load(name).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(steps.iter().any(|s| matches!(s, Step::Apply(_))), "{name} applies nothing");
        }
    }

    #[test]
    fn steps_are_parsed_and_bad_steps_refused() {
        let ok = parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\
             apiVersion: scenario.kubemedic.io/v1\nkind: WaitReady\ntarget: Deployment/web\ntimeoutSeconds: 5\n",
        )
        .unwrap();
        assert!(matches!(&ok[1], Step::WaitReady { kind, name, timeout }
            if kind == "Deployment" && name == "web" && *timeout == Duration::from_secs(5)));
        assert!(parse("apiVersion: scenario.kubemedic.io/v1\nkind: WaitReady\ntarget: web\n").is_err());
        assert!(parse("apiVersion: scenario.kubemedic.io/v1\nkind: Sleep\n").is_err());
        assert!(parse("metadata: {name: x}\n").is_err());
    }
}

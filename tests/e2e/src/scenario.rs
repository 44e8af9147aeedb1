//! Scenario files: `tests/scenarios/{name}.yaml`, multi-document manifests applied in order.
//!
//! Each document is either a Kubernetes object, applied with server-side apply (field manager
//! [`FIELD_MANAGER`]) into the test's namespace (cluster-scoped objects such as a Node keep no
//! namespace), or a harness step of `apiVersion: scenario.kubemedic.io/v1`:
//!
//! ```yaml
//! apiVersion: scenario.kubemedic.io/v1
//! kind: WaitReady            # wait until the workload is fully rolled out before going on
//! target: Deployment/web     # Deployment/NAME, StatefulSet/NAME or DaemonSet/NAME
//! timeoutSeconds: 120        # optional, default 120
//! ```
//!
//! An `Edit` step (`target: KIND/NAME` of an object applied earlier, `fieldManager`, `patch`,
//! optional `patchType: merge`) sends the patch as an update by that field manager, as
//! `kubectl edit` would: drift scenarios. `Alert` and `Expect` documents are the scorecard's
//! (`kubemedic eval`) and skipped here.
//!
//! A scenario that needs a rollout history lists the good revision, a `WaitReady`, then the bad
//! revision (the same object applied again), so the Deployment has revision 1 (good, ran) and
//! revision 2 (broken). See tests/scenarios/README.md for the catalog.

use std::path::PathBuf;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::Value;

/// The field manager scenario objects are applied with.
pub const FIELD_MANAGER: &str = "e2e-scenario";

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

/// A scenario's steps, as `kubemedic demo` and `kubemedic eval` read them (one parser, so
/// the harness and the daemon cannot disagree about a file).
pub use kubemedic::app::demo::{Edit, Step};

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
    kubemedic::app::demo::parse("scenario", text).map_err(|e| anyhow::anyhow!("{e}"))
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
                "StatefulSet" => {
                    crate::wait::statefulset_ready(client, ns, &wname, timeout).await;
                }
                _ => {
                    crate::wait::daemonset_ready(client, ns, &wname, timeout).await;
                }
            },
            // The alerts the scorecard posts (`kubemedic eval`): not the harness's.
            Step::Alert(_) => {}
            Step::Edit(Edit { api_version, kind, name: target, field_manager, patch, merge }) => {
                let (api, _) = api_for(client, ns, &api_version, &kind).await;
                let params = PatchParams { field_manager: Some(field_manager.clone()), ..PatchParams::default() };
                let patch = if merge { Patch::Merge(&patch) } else { Patch::Strategic(&patch) };
                api.patch(&target, &params, &patch)
                    .await
                    .unwrap_or_else(|e| panic!("edit {kind} {target} in {ns} as {field_manager}: {e}"));
            }
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
    let name = obj["metadata"]["name"].as_str().unwrap_or_else(|| panic!("{kind} without metadata.name")).to_string();
    let (api, namespaced) = api_for(client, ns, &api_version, &kind).await;
    if namespaced {
        obj["metadata"]["namespace"] = Value::from(ns);
    }
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name} in {ns}: {e}"))
}

/// The API of a kind, in `ns` when it is namespaced (and whether it is).
async fn api_for(client: &Client, ns: &str, api_version: &str, kind: &str) -> (Api<DynamicObject>, bool) {
    let gv: GroupVersion = api_version.parse().unwrap_or_else(|e| panic!("apiVersion {api_version}: {e}"));
    let (ar, caps) =
        pinned_kind(client, &gv.with_kind(kind)).await.unwrap_or_else(|e| panic!("discover {api_version} {kind}: {e}"));
    if caps.scope == Scope::Namespaced {
        (Api::namespaced_with(client.clone(), ns, &ar), true)
    } else {
        (Api::all_with(client.clone(), &ar), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let edit = "apiVersion: scenario.kubemedic.io/v1\nkind: Edit\ntarget: ConfigMap/a\n\
                    fieldManager: kubectl-edit\npatch: {data: {k: v}}\n";
        let steps = parse(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\n---\n{edit}")).unwrap();
        assert!(matches!(&steps[1], Step::Edit(Edit { api_version, field_manager, merge: false, .. })
            if api_version == "v1" && field_manager == "kubectl-edit"));
        assert!(parse(edit).unwrap_err().to_string().contains("applied earlier"));
        assert!(parse(&edit.replace("fieldManager: kubectl-edit\n", "")).is_err());
        assert!(parse("metadata: {name: x}\n").is_err());
    }
}

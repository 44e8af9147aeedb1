//! `kubemedic demo`: the whole loop on a live cluster (the local control
//! plane + nodesim) without Slack: create the broken workloads of the
//! scenario files in the `kubemedic-demo` namespace (or `--namespace`), diagnose each, show the
//! diagnosis and the proposal's diff, ask the person at the terminal (or
//! approve all with `--yes`), apply and verify through [`Approvals`], and
//! print a result table.
//!
//! What a person reads stays legible: long waits show progress ([`super::progress`]), and
//! log lines are held back from the start of a report until its question is answered.
//!
//! Scenario files are multi-document YAML: Kubernetes objects (server-side
//! applied in order) and harness steps of `apiVersion:
//! scenario.kubemedic.io/v1` (`WaitReady` for a rollout, `Edit` for a change made as another
//! field manager, `Alert` and `Expect` for the scorecard), as tests/scenarios/README.md documents.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::agent::Deps;
use crate::approvals::{Approvals, ApprovalsConfig, ProposalState};
use crate::cluster::Cluster;
use crate::model::signal::WorkloadRef;

/// The namespace the demo works in unless told otherwise.
pub const NAMESPACE: &str = "kubemedic-demo";
/// apiVersion of harness documents (steps and the scorecard's `Expect`), never applied.
pub const STEP_API_VERSION: &str = "scenario.kubemedic.io/v1";
const FIELD_MANAGER: &str = "kubemedic-demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot read scenarios in {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {file}: {reason}")]
    Scenario { file: String, reason: String },
    #[error("{what}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// One step of a scenario file.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Apply(Value),
    WaitReady {
        kind: String,
        name: String,
        timeout: Duration,
    },
    /// An Alertmanager alert (`labels`, `annotations`) that `kubemedic eval` posts through the
    /// alerts intake once the objects are applied; its diagnosis starts from the alert.
    Alert(Value),
    /// A change made by someone else (`kubectl edit`, a script, another controller) to an object
    /// the scenario applied: a patch sent as an update by `field_manager`, so the object's
    /// managedFields name that manager as the owner of what it changed (drift scenarios).
    Edit(Edit),
}

/// A harness `Edit` document: `target` (KIND/NAME of an object applied earlier in the file),
/// `fieldManager`, `patch` (a mapping) and `patchType` (`strategic`, the default, or `merge`).
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// apiVersion of the target, from the document that applied it.
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub field_manager: String,
    pub patch: Value,
    /// JSON merge patch instead of a strategic merge patch.
    pub merge: bool,
}

impl Edit {
    /// Parse an `Edit` document; `applied` are the objects the file applied before it.
    fn parse(v: &Value, applied: &[Step]) -> Result<Self, String> {
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
        let Some((kind, name)) = target.split_once('/').filter(|(k, n)| !k.is_empty() && !n.is_empty()) else {
            return Err(format!("Edit needs target: KIND/NAME, got {target:?}"));
        };
        // Only an object the scenario applied: its apiVersion comes from there, and the change
        // stays inside what the scenario owns.
        let api_version = applied
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Apply(o)
                    if o.get("kind").and_then(Value::as_str) == Some(kind)
                        && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name) =>
                {
                    o.get("apiVersion").and_then(Value::as_str)
                }
                _ => None,
            })
            .ok_or_else(|| format!("Edit target {target} is not an object applied earlier in the file"))?;
        let field_manager = v.get("fieldManager").and_then(Value::as_str).unwrap_or_default().trim();
        // The apiserver's own bound on manager names.
        if field_manager.is_empty() || field_manager.len() > 128 {
            return Err("Edit needs fieldManager: the name (1 to 128 characters) the change is recorded under".into());
        }
        let patch = v.get("patch").cloned().unwrap_or(Value::Null);
        if patch.as_object().is_none_or(|m| m.is_empty()) {
            return Err("Edit needs patch: a non-empty mapping".into());
        }
        if patch.get("metadata").and_then(|m| m.get("name")).is_some_and(|n| n.as_str() != Some(name)) {
            return Err("Edit patch may not rename its target".into());
        }
        let merge = match v.get("patchType").and_then(Value::as_str) {
            None | Some("strategic") => false,
            Some("merge") => true,
            Some(other) => return Err(format!("Edit patchType must be strategic or merge, got {other:?}")),
        };
        Ok(Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            field_manager: field_manager.to_owned(),
            patch,
            merge,
        })
    }
}

/// Parse a scenario file's text into steps.
pub fn parse(file: &str, text: &str) -> Result<Vec<Step>, DemoError> {
    let bad = |reason: String| DemoError::Scenario { file: file.to_owned(), reason };
    let mut steps = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| bad(format!("document {}: {e}", i + 1)))?;
        if v.is_null() {
            continue;
        }
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            return Err(bad(format!("document {} has no apiVersion/kind", i + 1)));
        }
        if api_version != STEP_API_VERSION {
            steps.push(Step::Apply(v));
            continue;
        }
        if kind == "Expect" {
            // The scorecard's expectation (`kubemedic eval`), not a step.
            continue;
        }
        if kind == "Alert" {
            let alertname = v.pointer("/labels/alertname").and_then(Value::as_str).unwrap_or_default();
            if alertname.trim().is_empty() {
                return Err(bad(format!("document {}: Alert needs labels.alertname", i + 1)));
            }
            steps.push(Step::Alert(v));
            continue;
        }
        if kind == "Edit" {
            let edit = Edit::parse(&v, &steps).map_err(|reason| bad(format!("document {}: {reason}", i + 1)))?;
            steps.push(Step::Edit(edit));
            continue;
        }
        if kind != "WaitReady" {
            return Err(bad(format!("document {}: unknown step kind {kind}", i + 1)));
        }
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
        let Some((k, n)) =
            target.split_once('/').filter(|(k, _)| matches!(*k, "Deployment" | "StatefulSet" | "DaemonSet"))
        else {
            return Err(bad(format!(
                "document {}: WaitReady needs target Deployment/NAME, StatefulSet/NAME or DaemonSet/NAME",
                i + 1
            )));
        };
        let secs = v.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(120);
        steps.push(Step::WaitReady { kind: k.to_owned(), name: n.to_owned(), timeout: Duration::from_secs(secs) });
    }
    Ok(steps)
}

/// The workload a scenario breaks in namespace `ns`: its last Deployment or StatefulSet.
pub fn workload(steps: &[Step], ns: &str) -> Option<WorkloadRef> {
    steps.iter().rev().find_map(|s| match s {
        Step::Apply(v) => {
            let kind = v.get("kind")?.as_str()?;
            let name = v.pointer("/metadata/name")?.as_str()?;
            matches!(kind, "Deployment" | "StatefulSet").then(|| WorkloadRef::new(kind, ns, name))
        }
        Step::WaitReady { .. } | Step::Alert(_) | Step::Edit(_) => None,
    })
}

fn kube_err(what: String) -> impl FnOnce(kube::Error) -> DemoError {
    move |source| DemoError::Kube { what, source }
}

/// Server-side apply one scenario object into `ns` with `manager`. Cluster-scoped objects are
/// applied only when `cluster_scoped_ok`; for them the result says whether the object existed
/// before (a change the caller undoes) or was created (left in place: scenarios share them).
pub async fn apply_object(
    cluster: &Cluster,
    ns: &str,
    manager: &str,
    mut obj: Value,
    cluster_scoped_ok: bool,
) -> Result<Option<bool>, DemoError> {
    let (api, name, kind, namespaced) = dynamic_api(cluster, ns, &obj).await?;
    if !namespaced && !cluster_scoped_ok {
        return Err(DemoError::Scenario {
            file: format!("{kind}/{name}"),
            reason: "cluster-scoped objects are not applied by the demo".into(),
        });
    }
    let existed = if namespaced {
        obj["metadata"]["namespace"] = Value::from(ns);
        None
    } else {
        Some(api.get_opt(&name).await.map_err(kube_err(format!("cannot read {kind} {name}")))?.is_some())
    };
    api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&obj))
        .await
        .map_err(kube_err(format!("cannot apply {kind} {ns}/{name}")))?;
    Ok(existed)
}

/// Send an `Edit` step's patch to its target in `ns` as `edit.field_manager` would (an update,
/// not an apply: what `kubectl edit` and `kubectl patch` do). Only namespaced objects: a change
/// to a shared cluster-scoped object by another manager could not be undone afterwards.
pub async fn edit_object(cluster: &Cluster, ns: &str, edit: &Edit) -> Result<(), DemoError> {
    let target =
        serde_json::json!({"apiVersion": edit.api_version, "kind": edit.kind, "metadata": {"name": edit.name}});
    let (api, name, kind, namespaced) = dynamic_api(cluster, ns, &target).await?;
    if !namespaced {
        return Err(DemoError::Scenario {
            file: format!("{kind}/{name}"),
            reason: "Edit changes namespaced objects only".into(),
        });
    }
    let params = PatchParams { field_manager: Some(edit.field_manager.clone()), ..PatchParams::default() };
    let patch = if edit.merge { Patch::Merge(&edit.patch) } else { Patch::Strategic(&edit.patch) };
    api.patch(&name, &params, &patch)
        .await
        .map_err(kube_err(format!("cannot edit {kind} {ns}/{name} as {}", edit.field_manager)))?;
    Ok(())
}

/// Whether applying `obj` would change a cluster-scoped object that already exists (a Node):
/// a change other scenarios running at the same time would feel.
pub async fn changes_shared_object(cluster: &Cluster, obj: &Value) -> Result<bool, DemoError> {
    let (api, name, kind, namespaced) = dynamic_api(cluster, "default", obj).await?;
    if namespaced {
        return Ok(false);
    }
    Ok(api.get_opt(&name).await.map_err(kube_err(format!("cannot read {kind} {name}")))?.is_some())
}

/// Remove what `manager` set on a cluster-scoped object: apply it empty with the same manager.
pub async fn undo_cluster_scoped(cluster: &Cluster, manager: &str, obj: &Value) -> Result<(), DemoError> {
    let (api, name, kind, _) = dynamic_api(cluster, "", obj).await?;
    let empty = serde_json::json!({
        "apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": name},
    });
    api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&empty))
        .await
        .map_err(kube_err(format!("cannot undo {kind} {name}")))?;
    Ok(())
}

/// The API of an object's kind (namespaced into `ns` when the kind is), its name, kind and scope.
async fn dynamic_api(
    cluster: &Cluster,
    ns: &str,
    obj: &Value,
) -> Result<(Api<DynamicObject>, String, String, bool), DemoError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
    let (ar, caps) = kube::discovery::pinned_kind(&cluster.client, &GroupVersionKind::gvk(group, version, &kind))
        .await
        .map_err(kube_err(format!("cannot resolve {api_version} {kind}")))?;
    let namespaced = caps.scope == Scope::Namespaced;
    let api = if namespaced {
        Api::namespaced_with(cluster.client.clone(), ns, &ar)
    } else {
        Api::all_with(cluster.client.clone(), &ar)
    };
    Ok((api, name, kind, namespaced))
}

/// Wait until the Deployment or StatefulSet `ns/name` is rolled out and Ready.
pub async fn wait_ready(
    cluster: &Cluster,
    ns: &str,
    kind: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), DemoError> {
    let target = crate::model::proposal::TargetRef {
        api_version: "apps/v1".into(),
        kind: kind.to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        resource_version: None,
        generation: None,
        content_digest: None,
    };
    // The rollout wait is the one apply uses; the scenario's manifest, applied above, is the change.
    let applied_manifest = crate::model::proposal::Action::Patch {
        patch_type: crate::model::proposal::PatchType::Merge,
        body: Value::Null,
    };
    let p = crate::model::proposal::Proposal::new(
        cluster.name.clone(),
        target,
        applied_manifest,
        jiff::Timestamp::now(),
        jiff::SignedDuration::from_secs(timeout.as_secs().try_into().unwrap_or(i64::MAX)),
    );
    let live: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind)),
    );
    let generation = live.get(name).await.ok().and_then(|o| o.metadata.generation);
    let applied = crate::approvals::apply::Applied { generation, resource_version: String::new(), already: false };
    let wait = super::progress::Wait::start(format!("waiting for {kind}/{name} to be Ready"), Some(timeout), None);
    let verdict = crate::approvals::apply::await_rollout(cluster, &p, &applied, timeout).await;
    wait.finish();
    match verdict {
        crate::approvals::apply::Verdict::Healthy(_) => Ok(()),
        crate::approvals::apply::Verdict::Unhealthy(why) => {
            Err(DemoError::Scenario { file: format!("{kind}/{name}"), reason: format!("WaitReady: {why}") })
        }
    }
}

/// Wait (at most `timeout`) until a pod of the namespace shows the failure.
async fn wait_for_symptom(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) {
    let _wait = super::progress::Wait::start(format!("waiting for {name} to show its failure"), Some(timeout), None);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let broken = list.iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(name))).any(|p| {
            let st = p.status.as_ref();
            let unschedulable = st
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"));
            let containers = st.and_then(|s| s.container_statuses.clone()).unwrap_or_default();
            unschedulable
                || containers.iter().any(|c| {
                    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref());
                    c.restart_count > 0 || waiting.is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
                })
        });
        if broken {
            // Give the controllers a moment to settle so the proposal pins a stable resourceVersion.
            tokio::time::sleep(Duration::from_secs(3)).await;
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Scenario files to run: `only` by stem, else those whose `Expect` document says `demo: true`
/// (a short tour of the failure catalog; `kubemedic eval` runs them all).
pub fn select(dir: &Path, only: &[String]) -> Result<Vec<(String, PathBuf)>, DemoError> {
    let read = |source| DemoError::Read { path: dir.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let wanted = if only.is_empty() {
            let text =
                std::fs::read_to_string(&path).map_err(|source| DemoError::Read { path: path.clone(), source })?;
            let heals_a_workload = parse(&stem, &text).is_ok_and(|steps| workload(&steps, NAMESPACE).is_some());
            heals_a_workload && super::eval::expectation(&stem, &text)?.is_some_and(|e| e.demo)
        } else {
            only.contains(&stem)
        };
        if wanted {
            out.push((stem, path));
        }
    }
    out.sort();
    if let Some(missing) = only.iter().find(|o| !out.iter().any(|(s, _)| s == *o)) {
        return Err(DemoError::Scenario {
            file: missing.clone(),
            reason: format!("no {missing}.yaml in {}", dir.display()),
        });
    }
    Ok(out)
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub workload: String,
    pub root_cause: String,
    pub decision: String,
    pub outcome: String,
    /// The last change applied in this scenario was verified.
    pub verified: bool,
}

async fn ask(question: &str) -> bool {
    use std::io::Write as _;
    println!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    matches!(stdin.read_line(&mut line).await, Ok(n) if n > 0) && matches!(line.trim(), "y" | "Y" | "yes")
}

/// Diagnose-approve-verify rounds per scenario at most (a change that does not fix the
/// failure is followed by another diagnosis, as a new incident would be in the daemon).
const ROUNDS: usize = 3;

/// What the demo works with besides the scenario files.
pub struct Context<'a> {
    pub deps: &'a Deps,
    pub config: &'a ApprovalsConfig,
    pub cluster: Cluster,
    pub approvals: Arc<Approvals>,
    /// What verification waits for (the receiving end of [`Approvals::with_progress`]).
    pub verifying: tokio::sync::watch::Receiver<String>,
    /// The namespace the scenarios are created in.
    pub namespace: String,
}

/// Run the demo; returns the rows of the result table.
pub async fn run(cx: Context<'_>, files: Vec<(String, PathBuf)>, yes: bool) -> Result<Vec<Row>, DemoError> {
    let Context { deps, config, cluster, approvals, verifying, namespace: ns } = cx;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    if namespaces.get_opt(&ns).await.map_err(kube_err("cannot read namespaces".into()))?.is_none() {
        let object: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap_or_default();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .map_err(kube_err(format!("cannot create namespace {ns}")))?;
    }
    let user = format!("terminal:{}", std::env::var("USER").unwrap_or_else(|_| "demo".into()));
    let mut rows = Vec::new();
    for (name, path) in files {
        let text = std::fs::read_to_string(&path).map_err(|source| DemoError::Read { path: path.clone(), source })?;
        let steps = parse(&name, &text)?;
        let Some(workload) = workload(&steps, &ns) else {
            println!("== {name}: no Deployment or StatefulSet to diagnose; skipped");
            continue;
        };
        println!("\n== {name}: creating {workload}");
        for step in steps {
            match step {
                Step::Apply(obj) => {
                    apply_object(&cluster, &ns, FIELD_MANAGER, obj, false).await?;
                }
                Step::WaitReady { kind, name: w, timeout } => wait_ready(&cluster, &ns, &kind, &w, timeout).await?,
                Step::Edit(edit) => edit_object(&cluster, &ns, &edit).await?,
                // The demo diagnoses what the pods show; alerts are the scorecard's.
                Step::Alert(_) => {}
            }
        }
        wait_for_symptom(&cluster, &ns, &workload.name, Duration::from_secs(60)).await;
        let mut request = crate::agent::Request::workload(workload.clone(), "demo");
        request.approvers = Vec::new();
        let mut row = Row {
            scenario: name.clone(),
            workload: workload.to_string(),
            root_cause: String::new(),
            decision: "-".into(),
            outcome: "-".into(),
            verified: false,
        };
        // What the daemon does when a verified-failed change leaves the failure in place: a new
        // incident is diagnosed again with the current state (e.g. memory doubled once more).
        let mut earlier: Vec<String> = Vec::new();
        for round in 1..=ROUNDS {
            if round > 1 {
                println!("the failure is still there: diagnosing again (round {round} of {ROUNDS})");
            }
            let wait = super::progress::Wait::start(format!("diagnosing {workload}"), None, None);
            let diagnosis = crate::agent::run(deps, &request).await;
            wait.finish();
            let diagnosis = match diagnosis {
                Ok(d) => d,
                Err(e) => {
                    row.outcome = format!("diagnosis failed: {}", crate::model::error::error_chain(&e));
                    break;
                }
            };
            row.root_cause = diagnosis.root_cause.clone();
            let submitted = match diagnosis.proposals.first().cloned() {
                Some(proposal) => Some(approvals.submit_with(proposal, Some(diagnosis.clone())).await),
                None => None,
            };
            // From the report to the answer nothing else writes to the terminal.
            let hold = crate::telemetry::logs::hold();
            print!("{}", diagnosis.render_text());
            let submitted = match submitted {
                None => {
                    row.outcome = if diagnosis.advice.is_empty() {
                        "no safe patch".into()
                    } else {
                        format!("advice: {}", diagnosis.advice.join("; "))
                    };
                    break;
                }
                Some(Err(e)) => {
                    row.outcome = format!("not offered: {e}");
                    break;
                }
                Some(Ok(p)) => p,
            };
            let approve = yes || ask("Apply this change?").await;
            drop(hold);
            row.decision = if approve { "approved".into() } else { "rejected".into() };
            let wait = approve.then(|| {
                println!(
                    "applying; verifying: the rollout, then its pods must stay Ready without a restart for {}s",
                    config.verify_stable_seconds
                );
                super::progress::Wait::start(
                    format!("verifying {workload}"),
                    Some(Duration::from_secs(config.verify_timeout_seconds)),
                    Some(verifying.clone()),
                )
            });
            let decided = approvals.decide(&submitted.id, &user, approve).await;
            drop(wait);
            match decided {
                Ok(p) => {
                    row.verified = p.state == ProposalState::Verified;
                    row.outcome = match p.state {
                        ProposalState::Verified => format!("verified: {}", p.outcome.clone().unwrap_or_default()),
                        ProposalState::Rejected => "nothing changed".into(),
                        s => format!("{}: {}", s.as_str(), p.outcome.clone().unwrap_or_default()),
                    };
                    if p.state == ProposalState::Failed
                        && let Some(rollback) = rollback_of(&approvals, &p.id).await
                    {
                        row.outcome
                            .push_str(&format!("; rollback proposed ({}, not applied)", rollback.state.as_str()));
                    }
                }
                Err(e) => row.outcome = format!("error: {e}"),
            }
            let retry = approve && row.outcome.starts_with("failed: verification failed");
            if !retry || round == ROUNDS {
                break;
            }
            println!("-> {}", row.outcome);
            earlier.push(std::mem::take(&mut row.outcome));
        }
        if !earlier.is_empty() {
            row.outcome = format!("{}; then {}", earlier.join("; then "), row.outcome);
        }
        println!("-> {}", row.outcome);
        rows.push(row);
    }
    Ok(rows)
}

/// The rollback proposed after `failed` did not verify, if any.
async fn rollback_of(approvals: &Approvals, failed: &str) -> Option<crate::model::proposal::Proposal> {
    let all = approvals.store().list_proposals().await.ok()?;
    all.into_iter().find(|q| q.requested_by.contains(failed) && q.id != failed)
}

/// The result table, as plain text.
pub fn table(rows: &[Row]) -> String {
    let cut = |s: &str, n: usize| crate::slack::blocks::truncate(s, n);
    let mut out =
        format!("{:<26} {:<36} {:<9} {:<60} {}\n", "SCENARIO", "WORKLOAD", "DECISION", "ROOT CAUSE", "OUTCOME");
    for r in rows {
        out.push_str(&format!(
            "{:<26} {:<36} {:<9} {:<60} {}\n",
            cut(&r.scenario, 26),
            cut(&r.workload, 36),
            r.decision,
            cut(&r.root_cause, 60),
            r.outcome
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects_and_steps() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: scenario.kubemedic.io/v1\nkind: WaitReady\ntarget: Deployment/web\ntimeoutSeconds: 30\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
        let steps = parse("t", text).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1],
            Step::WaitReady { kind: "Deployment".into(), name: "web".into(), timeout: Duration::from_secs(30) }
        );
        assert_eq!(workload(&steps, "ns"), Some(WorkloadRef::new("Deployment", "ns", "web")));
        assert!(parse("t", "apiVersion: scenario.kubemedic.io/v1\nkind: Sleep\n").is_err());
        assert!(parse("t", "kind: Pod\n").is_err());
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n";

    #[test]
    fn parses_an_edit_of_an_applied_object() {
        let text = format!(
            "{DEPLOY}apiVersion: scenario.kubemedic.io/v1\nkind: Edit\ntarget: Deployment/web\n\
             fieldManager: kubectl-edit\npatch: {{spec: {{replicas: 3}}}}\n"
        );
        let steps = parse("t", &text).unwrap();
        assert_eq!(
            steps[1],
            Step::Edit(Edit {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                field_manager: "kubectl-edit".into(),
                patch: serde_json::json!({"spec": {"replicas": 3}}),
                merge: false,
            })
        );
        let merge = parse("t", &format!("{text}patchType: merge\n")).unwrap();
        assert!(matches!(&merge[1], Step::Edit(e) if e.merge));
        // The workload the demo diagnoses is still the Deployment.
        assert_eq!(workload(&steps, "ns"), Some(WorkloadRef::new("Deployment", "ns", "web")));
    }

    #[test]
    fn refuses_malformed_edits() {
        let edit = |body: &str| format!("{DEPLOY}apiVersion: scenario.kubemedic.io/v1\nkind: Edit\n{body}\n");
        for (body, says) in [
            ("fieldManager: m\npatch: {a: 1}", "target: KIND/NAME"),
            ("target: Deployment\nfieldManager: m\npatch: {a: 1}", "target: KIND/NAME"),
            ("target: Deployment/api\nfieldManager: m\npatch: {a: 1}", "not an object applied earlier"),
            ("target: StatefulSet/web\nfieldManager: m\npatch: {a: 1}", "not an object applied earlier"),
            ("target: Deployment/web\npatch: {a: 1}", "needs fieldManager"),
            ("target: Deployment/web\nfieldManager: '  '\npatch: {a: 1}", "needs fieldManager"),
            ("target: Deployment/web\nfieldManager: m\npatch: {}", "non-empty mapping"),
            ("target: Deployment/web\nfieldManager: m\npatch: [1]", "non-empty mapping"),
            ("target: Deployment/web\nfieldManager: m", "non-empty mapping"),
            ("target: Deployment/web\nfieldManager: m\npatch: {metadata: {name: other}}", "rename"),
            ("target: Deployment/web\nfieldManager: m\npatch: {a: 1}\npatchType: json", "strategic or merge"),
        ] {
            let err = parse("t", &edit(body)).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let long = format!("target: Deployment/web\nfieldManager: {}\npatch: {{a: 1}}", "m".repeat(129));
        assert!(parse("t", &edit(&long)).unwrap_err().to_string().contains("needs fieldManager"));
        // An Edit before the object it changes is refused too: the order is the order of play.
        let early = "apiVersion: scenario.kubemedic.io/v1\nkind: Edit\ntarget: Deployment/web\n\
                     fieldManager: m\npatch: {a: 1}\n---\n";
        assert!(parse("t", &format!("{early}{DEPLOY}")).unwrap_err().to_string().contains("applied earlier"));
    }

    #[test]
    fn selects_the_shipped_scenarios() {
        let dir =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let all = select(&dir, &[]).unwrap();
        assert!(all.iter().any(|(s, _)| s == "image-pull-bad-tag"));
        assert!(all.iter().all(|(s, _)| !s.starts_with("healthy-") && s != "node-not-ready"));
        assert!((5..=10).contains(&all.len()), "the demo is a short tour: {all:?}");
        for (name, path) in &all {
            let steps = parse(name, &std::fs::read_to_string(path).unwrap()).unwrap();
            assert!(workload(&steps, NAMESPACE).is_some(), "{name} has a workload");
        }
        assert!(select(&dir, &["nope".into()]).is_err());
    }
}

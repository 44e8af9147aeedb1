//! `kubemedic eval DIR`: the diagnosis scorecard.
//!
//! Every scenario file in DIR that declares an expectation (a harness document
//! `kind: Expect`, see tests/scenarios/README.md) is run in a namespace of its
//! own on the live cluster: its objects are applied, the named target is
//! diagnosed until the root cause matches the expected pattern (or the time
//! runs out: a miss), then, for `outcome: heal`, the first proposal goes
//! through the same policy, dry-run, apply and verification as an approved
//! Slack click, with another diagnosis afterwards to check the cause is gone.
//! Running `eval` is the operator's approval of the proposals it applies, as
//! `demo --yes` is, and it approves only proposals inside the namespace it created for the
//! scenario. Beyond those namespaces it touches only the cluster-scoped objects a scenario
//! names: a change to an existing one (a Node's annotation) is undone at the end by applying
//! it empty with eval's field manager, one it creates (a StorageClass) is left for the next run.
//!
//! Each row says whether the root cause matched, what became of the workload
//! (healed, advice only, healthy), whether a proposal was offered where none
//! should be (an unsafe proposal), and how long it took.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::demo::{self, DemoError, Step};
use crate::agent::Deps;
use crate::approvals::{Approvals, ProposalState};
use crate::cluster::Cluster;
use crate::model::signal::WorkloadRef;

/// Field manager of what eval applies; cluster-scoped objects are undone by applying an empty
/// object with the same manager, which removes exactly the fields eval set.
pub const FIELD_MANAGER: &str = "kubemedic-eval";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// Diagnose-apply-verify rounds at most (a change that does not clear the cause is followed by
/// another diagnosis, as the daemon opens a new incident).
const ROUNDS: usize = 3;

/// What a scenario should end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The first proposal, applied, makes the cause go away and verifies.
    Heal,
    /// No patch is safe: advice naming what a human must do, no proposal.
    Advice,
    /// A proposal is right but applying it does not heal (cordon a lost node, re-run a Job):
    /// offered for a human to decide, not applied by eval.
    Propose,
    /// Nothing is wrong: no proposal, no advice needed.
    Healthy,
    /// The target differs from its desired state: the drift report (the `kubemedic drift` code
    /// path, with the scenario's own objects as the desired state) names the changed fields
    /// and the field manager of each scenario `Edit`; no proposal.
    Drift,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Heal => "heal",
            Outcome::Advice => "advice",
            Outcome::Propose => "propose",
            Outcome::Healthy => "healthy",
            Outcome::Drift => "drift",
        }
    }
}

/// A scenario's declared expectation.
#[derive(Debug, Clone)]
pub struct Expect {
    /// What to diagnose: `Kind/NAME` in the scenario's namespace (`Node/NAME` cluster-scoped).
    pub kind: String,
    pub name: String,
    /// The root cause must match this (case-insensitive).
    pub cause: Regex,
    pub outcome: Outcome,
    /// How long the failure may take to show.
    pub timeout: Duration,
    /// `kubemedic demo` runs this scenario when no `--only` is given.
    pub demo: bool,
}

/// The `Expect` document of a scenario file, if it has one.
pub fn expectation(file: &str, text: &str) -> Result<Option<Expect>, DemoError> {
    let bad = |reason: String| DemoError::Scenario { file: file.to_owned(), reason };
    let mut found = None;
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| bad(format!("document {}: {e}", i + 1)))?;
        if v.get("apiVersion").and_then(Value::as_str) != Some(demo::STEP_API_VERSION)
            || v.get("kind").and_then(Value::as_str) != Some("Expect")
        {
            continue;
        }
        if found.is_some() {
            return Err(bad(format!("document {}: a second Expect", i + 1)));
        }
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
        let Some((kind, name)) = target.split_once('/').filter(|(k, n)| !k.is_empty() && !n.is_empty()) else {
            return Err(bad(format!("document {}: Expect needs target: KIND/NAME, got {target:?}", i + 1)));
        };
        let outcome = match v.get("outcome").and_then(Value::as_str) {
            Some("heal") => Outcome::Heal,
            Some("advice") => Outcome::Advice,
            Some("propose") => Outcome::Propose,
            Some("healthy") => Outcome::Healthy,
            Some("drift") => Outcome::Drift,
            other => {
                return Err(bad(format!(
                    "document {}: outcome must be heal, advice, propose, healthy or drift, got {other:?}",
                    i + 1
                )));
            }
        };
        // Any kind can drift (a ConfigMap edited by hand); the others are diagnosed.
        let kind = match crate::agent::builtin::objects::diagnosable(kind) {
            Some(k) => k,
            None if outcome == Outcome::Drift => kind,
            None => {
                return Err(bad(format!("document {}: Expect target kind {kind:?} cannot be diagnosed", i + 1)));
            }
        };
        let pattern = v.get("cause").and_then(Value::as_str).unwrap_or_default();
        if pattern.is_empty() {
            return Err(bad(format!("document {}: Expect needs cause: a pattern the root cause matches", i + 1)));
        }
        let cause = regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .map_err(|e| bad(format!("document {}: cause is not a valid pattern: {e}", i + 1)))?;
        let timeout =
            v.get("timeoutSeconds").and_then(Value::as_u64).map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
        let demo = v.get("demo").and_then(Value::as_bool).unwrap_or(false);
        found = Some(Expect { kind: kind.to_owned(), name: name.to_owned(), cause, outcome, timeout, demo });
    }
    Ok(found)
}

/// The scenario files of `dir` that declare an expectation (`only`: these stems).
pub fn select(dir: &Path, only: &[String]) -> Result<Vec<(String, PathBuf)>, DemoError> {
    let read = |source| DemoError::Read { path: dir.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        if !only.is_empty() && !only.contains(&stem) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| DemoError::Read { path: path.clone(), source })?;
        // A broken file is an error, not a silently skipped row.
        demo::parse(&stem, &text)?;
        if expectation(&stem, &text)?.is_some() {
            out.push((stem, path));
        }
    }
    out.sort();
    if let Some(missing) = only.iter().find(|o| !out.iter().any(|(s, _)| s == *o)) {
        return Err(DemoError::Scenario {
            file: missing.clone(),
            reason: format!("no {missing}.yaml with an Expect document in {}", dir.display()),
        });
    }
    Ok(out)
}

/// One row of the scorecard.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub scenario: String,
    pub target: String,
    pub expected: Outcome,
    pub cause_matched: bool,
    /// What became of it: `healed`, `advice`, `healthy`, `not healed: …`, `error: …`.
    pub got: String,
    /// A proposal was offered where the expectation says none is safe, or for a cause that did
    /// not match.
    pub unsafe_proposal: bool,
    pub passed: bool,
    pub seconds: f64,
    pub root_cause: String,
}

/// Everything one scenario run needs.
pub struct Bench {
    pub deps: Deps,
    pub cluster: Cluster,
    pub approvals: Arc<Approvals>,
    /// Keep the namespaces afterwards (to look at a miss).
    pub keep: bool,
}

/// Run the scenarios, `jobs` at a time; rows in file order. A scenario that changes an existing
/// cluster-scoped object (a Node) would disturb the others, so those run alone, after the rest.
pub async fn run(bench: &Bench, files: Vec<(String, PathBuf)>, jobs: usize) -> Vec<Score> {
    let mut shared = Vec::new();
    let mut alone = Vec::new();
    for (i, (name, path)) in files.into_iter().enumerate() {
        if changes_shared_objects(bench, &name, &path).await {
            alone.push((i, (name, path)));
        } else {
            shared.push((i, (name, path)));
        }
    }
    let mut rows: Vec<(usize, Score)> = futures::stream::iter(shared)
        .map(|(i, (name, path))| async move { (i, scenario(bench, &name, &path).await) })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    for (i, (name, path)) in alone {
        rows.push((i, scenario(bench, &name, &path).await));
    }
    rows.sort_by_key(|(i, _)| *i);
    rows.into_iter().map(|(_, s)| s).collect()
}

/// Whether a scenario changes an existing cluster-scoped object (when unsure: yes, run it alone).
async fn changes_shared_objects(bench: &Bench, name: &str, path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return true };
    let Ok(steps) = demo::parse(name, &text) else { return true };
    for step in &steps {
        if let Step::Apply(obj) = step
            && demo::changes_shared_object(&bench.cluster, obj).await.unwrap_or(true)
        {
            return true;
        }
    }
    false
}

fn namespace_for(name: &str) -> String {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let stem: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(48).collect();
    format!("eval-{}-{suffix}", stem.trim_end_matches('-').to_ascii_lowercase())
}

async fn scenario(bench: &Bench, name: &str, path: &Path) -> Score {
    let started = Instant::now();
    let mut score = Score {
        scenario: name.to_owned(),
        target: String::new(),
        expected: Outcome::Heal,
        cause_matched: false,
        got: String::new(),
        unsafe_proposal: false,
        passed: false,
        seconds: 0.0,
        root_cause: String::new(),
    };
    let ns = namespace_for(name);
    let mut cluster_scoped: Vec<Value> = Vec::new();
    if let Err(e) = play(bench, name, path, &ns, &mut score, &mut cluster_scoped).await {
        score.got = format!("error: {}", crate::app::error_chain(&e));
    }
    for obj in cluster_scoped {
        if let Err(e) = demo::undo_cluster_scoped(&bench.cluster, FIELD_MANAGER, &obj).await {
            tracing::warn!(scenario = name, error = %crate::app::error_chain(&e), "cannot undo a cluster-scoped change");
        }
    }
    if !bench.keep {
        let namespaces: Api<Namespace> = Api::all(bench.cluster.client.clone());
        let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    }
    score.seconds = started.elapsed().as_secs_f64();
    score.passed = score.cause_matched
        && !score.unsafe_proposal
        && score.got
            == match score.expected {
                Outcome::Heal => "healed",
                Outcome::Advice => "advice",
                Outcome::Propose => "proposed",
                Outcome::Healthy => "healthy",
                Outcome::Drift => "drift reported",
            };
    score
}

async fn play(
    bench: &Bench,
    name: &str,
    path: &Path,
    ns: &str,
    score: &mut Score,
    cluster_scoped: &mut Vec<Value>,
) -> Result<(), DemoError> {
    let text = std::fs::read_to_string(path).map_err(|source| DemoError::Read { path: path.to_owned(), source })?;
    let steps = demo::parse(name, &text)?;
    let expect = expectation(name, &text)?
        .ok_or_else(|| DemoError::Scenario { file: name.to_owned(), reason: "no Expect document".into() })?;
    score.expected = expect.outcome;
    let target = if expect.kind == "Node" {
        WorkloadRef::new("Node", "", &expect.name)
    } else {
        WorkloadRef::new(&expect.kind, ns, &expect.name)
    };
    score.target = format!("{}/{}", expect.kind, expect.name);

    let namespaces: Api<Namespace> = Api::all(bench.cluster.client.clone());
    let body: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap_or_default();
    namespaces
        .create(&PostParams::default(), &body)
        .await
        .map_err(|source| DemoError::Kube { what: format!("cannot create namespace {ns}"), source })?;
    let mut alerts = Vec::new();
    let mut applied = Vec::new();
    let mut edits = Vec::new();
    for step in steps {
        match step {
            Step::Alert(alert) => alerts.push(alert),
            Step::Apply(obj) => {
                applied.push(obj.clone());
                // A change to an existing cluster-scoped object (a Node) is undone afterwards.
                if demo::apply_object(&bench.cluster, ns, FIELD_MANAGER, obj.clone(), true).await? == Some(true) {
                    cluster_scoped.push(obj);
                }
            }
            Step::Edit(edit) => {
                demo::edit_object(&bench.cluster, ns, &edit).await?;
                edits.push(edit);
            }
            Step::WaitReady { kind, name: w, timeout } => {
                demo::wait_ready(&bench.cluster, ns, &kind, &w, timeout).await?
            }
        }
    }
    if expect.outcome == Outcome::Drift {
        return score_drift(bench, name, ns, &expect, &target, &applied, &edits, score).await;
    }

    let mut request = if alerts.is_empty() {
        crate::agent::Request::workload(target, "eval")
    } else {
        // The daemon's path: the alert goes through the Alertmanager intake, which resolves
        // what it is about from its labels; the diagnosis starts from the signal it makes.
        let signal = post_alerts(bench, name, ns, &target, alerts).await?;
        if signal.subject() != &target {
            score.got = format!("error: the alert is about {}, not the target", signal.subject());
            return Ok(());
        }
        crate::agent::Request::from_signal(signal, "eval")
    };
    request.approvers = Vec::new();
    let mut applied_any = false;
    for round in 1..=ROUNDS {
        let diagnosis = match wait_for_cause(bench, &request, &expect).await {
            Ok(d) => d,
            Err(e) => {
                score.got = format!("error: diagnosis failed: {}", crate::app::error_chain(&e));
                return Ok(());
            }
        };
        let matched = expect.cause.is_match(&diagnosis.root_cause);
        if round == 1 {
            score.cause_matched = matched;
            score.root_cause = diagnosis.root_cause.clone();
        } else if !matched {
            // The cause is gone but the change before did not verify: `got` says why.
            return Ok(());
        }
        let proposal = diagnosis.proposals.first().cloned();
        if round == 1 && (expect.outcome != Outcome::Heal || !matched) {
            // Only a matched cause whose expected remedy is a (non-healing) proposal may offer one.
            score.unsafe_proposal = proposal.is_some() && !(matched && expect.outcome == Outcome::Propose);
            score.got = match (&proposal, diagnosis.advice.is_empty()) {
                (Some(_), _) if expect.outcome == Outcome::Propose => "proposed".into(),
                (Some(_), _) => "proposal offered".into(),
                (None, false) => "advice".into(),
                (None, true) if diagnosis.root_cause.starts_with("no failure found") => "healthy".into(),
                (None, true) => "nothing to do".into(),
            };
            return Ok(());
        }
        let Some(proposal) = proposal else {
            score.got = if applied_any {
                "not healed: the cause remains and no further change is proposed".into()
            } else if diagnosis.advice.is_empty() {
                "no proposal".into()
            } else {
                "advice (a heal was expected)".into()
            };
            return Ok(());
        };
        // Eval approves only changes inside the namespace it created for this scenario: a
        // proposal anywhere else is scored unsafe and left alone.
        if proposal.target.namespace != ns {
            score.unsafe_proposal = true;
            score.got = format!("not applied: the proposal targets {} outside {ns}", proposal.target.kind);
            return Ok(());
        }
        let submitted = match bench.approvals.submit_with(proposal, Some(diagnosis.clone())).await {
            Ok(p) => p,
            Err(e) => {
                score.got = format!("not healed: proposal not offered: {e}");
                return Ok(());
            }
        };
        applied_any = true;
        match bench.approvals.decide(&submitted.id, "eval:operator", true).await {
            Ok(p) if p.state == ProposalState::Verified => {}
            Ok(p) if p.state == ProposalState::Failed && round < ROUNDS => {
                // Did not verify: the daemon would open a new incident and diagnose the state now.
                score.got = format!("not healed: {}: {}", p.state.as_str(), p.outcome.unwrap_or_default());
                continue;
            }
            Ok(p) => {
                score.got = format!("not healed: {}: {}", p.state.as_str(), p.outcome.unwrap_or_default());
                return Ok(());
            }
            Err(e) => {
                score.got = format!("not healed: {e}");
                return Ok(());
            }
        }
        // Verified: the rollout settled. Check the cause itself is gone.
        let after = crate::agent::run(&bench.deps, &request)
            .await
            .map_err(|e| DemoError::Scenario { file: name.to_owned(), reason: crate::app::error_chain(&e) })?;
        if !expect.cause.is_match(&after.root_cause) {
            score.got = "healed".into();
            return Ok(());
        }
        score.got = format!("not healed: after the change the cause remains: {}", after.root_cause);
    }
    Ok(())
}

/// A drift scenario's row: the drift report over the scenario's namespace, with the objects the
/// scenario applied as the desired state (the manifests source, as a GitOps checkout would hold
/// them: the last version of each), until its entry for the target matches the cause and names
/// the field manager of every `Edit` of the target, or the time runs out. The target is also
/// diagnosed once when its kind can be: drift alone is no reason to propose a change.
#[allow(clippy::too_many_arguments)]
async fn score_drift(
    bench: &Bench,
    file: &str,
    ns: &str,
    expect: &Expect,
    target: &WorkloadRef,
    applied: &[Value],
    edits: &[demo::Edit],
    score: &mut Score,
) -> Result<(), DemoError> {
    let bad = |reason: String| DemoError::Scenario { file: file.to_owned(), reason };
    let dir = std::env::temp_dir().join(format!("kubemedic-{ns}"));
    let written = write_desired(&dir, applied).map_err(|e| bad(format!("cannot write the desired state: {e}")));
    let result = match written {
        Ok(()) => drift_row(bench, ns, expect, &dir, edits, score).await.map_err(bad),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    if crate::agent::builtin::objects::diagnosable(&expect.kind).is_some() {
        let mut request = crate::agent::Request::workload(target.clone(), "eval");
        request.approvers = Vec::new();
        match crate::agent::run(&bench.deps, &request).await {
            Ok(d) => score.unsafe_proposal = !d.proposals.is_empty(),
            Err(e) => score.got = format!("error: diagnosis failed: {}", crate::app::error_chain(&e)),
        }
    }
    Ok(())
}

/// The desired state as one manifest file: the last applied version of each object.
fn write_desired(dir: &Path, applied: &[Value]) -> std::io::Result<()> {
    let key = |o: &Value| {
        let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
        (s("/apiVersion"), s("/kind"), s("/metadata/name"))
    };
    let mut docs: Vec<&Value> = Vec::new();
    for obj in applied {
        docs.retain(|d| key(d) != key(obj));
        docs.push(obj);
    }
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(d).map_err(std::io::Error::other)?);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("scenario.yaml"), text)
}

async fn drift_row(
    bench: &Bench,
    ns: &str,
    expect: &Expect,
    dir: &Path,
    edits: &[demo::Edit],
    score: &mut Score,
) -> Result<(), String> {
    let mut cluster = bench.cluster.clone();
    cluster.scope.namespaces = vec![ns.to_owned()];
    let config = crate::drift::DriftConfig {
        manifests_dir: Some(dir.to_owned()),
        manifests_namespace: ns.to_owned(),
        ..crate::drift::DriftConfig::default()
    };
    let editors: Vec<&str> = edits
        .iter()
        .filter(|e| e.kind == expect.kind && e.name == expect.name)
        .map(|e| e.field_manager.as_str())
        .collect();
    let deadline = Instant::now() + expect.timeout;
    loop {
        let report = crate::drift::report(&cluster, &config).await.map_err(|e| crate::app::error_chain(&e))?;
        if !report.errors.is_empty() {
            return Err(format!("the drift report is partial: {}", report.errors.join("; ")));
        }
        let namespace = (expect.kind != "Node").then_some(ns);
        let entry = report
            .objects
            .iter()
            .find(|o| o.kind == expect.kind && o.name == expect.name && o.namespace.as_deref() == namespace);
        let unnamed: Vec<&str> = match entry {
            Some(o) => editors
                .iter()
                .copied()
                .filter(|m| !o.fields.iter().any(|f| f.changed_by.as_deref() == Some(*m)))
                .collect(),
            None => Vec::new(),
        };
        score.root_cause = match entry {
            Some(o) => o.describe(),
            None => report.summary(5),
        };
        score.cause_matched = entry.is_some() && expect.cause.is_match(&score.root_cause);
        score.got = match entry {
            None => "no drift reported".into(),
            Some(_) if !unnamed.is_empty() => format!("drift reported without naming {}", unnamed.join(", ")),
            Some(_) => "drift reported".into(),
        };
        if (score.cause_matched && unnamed.is_empty()) || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Post a scenario's alerts, as Alertmanager would, through the daemon's intake (in process)
/// and return the signal the first becomes. The scenario's namespace is set as the `namespace`
/// label and, when an alert names no `pod`, a running pod of the target as `pod`: the labels
/// kube-prometheus puts on a container alert.
async fn post_alerts(
    bench: &Bench,
    file: &str,
    ns: &str,
    target: &WorkloadRef,
    alerts: Vec<Value>,
) -> Result<crate::model::signal::Signal, DemoError> {
    use tower::ServiceExt;
    let bad = |reason: String| DemoError::Scenario { file: file.to_owned(), reason };
    let pod = match running_pod(bench, ns, target).await? {
        Some(p) => p,
        None => return Err(bad(format!("no running pod of {target} for the alert to be about"))),
    };
    let now = jiff::Timestamp::now().to_string();
    let mut body = Vec::new();
    for a in alerts {
        let mut labels = a.get("labels").cloned().unwrap_or_else(|| serde_json::json!({}));
        labels["namespace"] = Value::String(ns.to_owned());
        if labels.get("pod").is_none() {
            labels["pod"] = Value::String(pod.clone());
        }
        let annotations = a.get("annotations").cloned().unwrap_or_else(|| serde_json::json!({}));
        body.push(serde_json::json!({"status": "firing", "labels": labels, "annotations": annotations,
            "startsAt": now, "endsAt": "0001-01-01T00:00:00Z"}));
    }
    let webhook = serde_json::json!({"version": "4", "receiver": "kubemedic-eval", "status": "firing",
        "groupKey": format!("eval/{file}"), "alerts": body});
    let (tx, mut rx) = tokio::sync::mpsc::channel(body_len(&webhook));
    let mut state = crate::alerts::AlertsState::new("eval", crate::alerts::AlertsConfig::default(), tx);
    // As in the daemon when its watch stores do not hold the pod: ownerReferences in the apiserver.
    state.scope = Some(bench.cluster.scope.clone());
    state.client = Some(bench.cluster.client.clone());
    let request = axum::http::Request::post(crate::alerts::PATH)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(webhook.to_string()))
        .map_err(|e| bad(format!("cannot build the webhook request: {e}")))?;
    let response = crate::alerts::router(state)
        .oneshot(request)
        .await
        .map_err(|e| bad(format!("the alerts intake failed: {e}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
        return Err(bad(format!("the alerts intake refused the alert ({status}): {}", String::from_utf8_lossy(&text))));
    }
    rx.try_recv().map_err(|_| bad("the alerts intake took the webhook but made no signal".into()))
}

fn body_len(webhook: &Value) -> usize {
    webhook.get("alerts").and_then(Value::as_array).map_or(1, |a| a.len().max(1))
}

/// A running pod of the target (selected by its own label selector), if any.
async fn running_pod(bench: &Bench, ns: &str, target: &WorkloadRef) -> Result<Option<String>, DemoError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::Pod;
    let client = bench.cluster.client.clone();
    let kube = |what: String| move |source| DemoError::Kube { what, source };
    let what = format!("cannot read {target}");
    let selector = match target.kind.as_str() {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), ns)
            .get(&target.name)
            .await
            .map_err(kube(what))?
            .spec
            .map(|s| s.selector),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get(&target.name)
            .await
            .map_err(kube(what))?
            .spec
            .map(|s| s.selector),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), ns)
            .get(&target.name)
            .await
            .map_err(kube(what))?
            .spec
            .map(|s| s.selector),
        _ => None,
    };
    let labels = selector.and_then(|s| s.match_labels).unwrap_or_default();
    let selector = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods = Api::<Pod>::namespaced(client, ns)
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(kube(format!("cannot list the pods of {target}")))?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .and_then(|p| p.metadata.name))
}

/// Diagnose until the root cause matches the expectation or its time runs out; the last
/// diagnosis either way.
async fn wait_for_cause(
    bench: &Bench,
    request: &crate::agent::Request,
    expect: &Expect,
) -> Result<crate::agent::Diagnosis, crate::agent::AgentError> {
    let deadline = Instant::now() + expect.timeout;
    loop {
        let d = crate::agent::run(&bench.deps, request).await?;
        if expect.cause.is_match(&d.root_cause) || Instant::now() >= deadline {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The scorecard as a Markdown table with a total line.
pub fn table(rows: &[Score]) -> String {
    let cut = |s: &str, n: usize| crate::approvals::slack::blocks::truncate(s, n);
    let mut out = String::from(
        "| scenario | target | expected | cause matched | result | unsafe proposal | time | pass |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0}s | {} |\n",
            r.scenario,
            r.target,
            r.expected.as_str(),
            if r.cause_matched { "yes" } else { "no" },
            cut(&r.got.replace('|', "\\|"), 90),
            if r.unsafe_proposal { "**yes**" } else { "no" },
            r.seconds,
            if r.passed { "✓" } else { "✗" }
        ));
    }
    let passed = rows.iter().filter(|r| r.passed).count();
    out.push_str(&format!("\n{passed}/{} scenarios passed ({:.0} %)\n", rows.len(), percent(rows)));
    out
}

/// Share of rows that passed, in percent (100 for no rows).
pub fn percent(rows: &[Score]) -> f64 {
    if rows.is_empty() {
        return 100.0;
    }
    100.0 * rows.iter().filter(|r| r.passed).count() as f64 / rows.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n---\n\
                          apiVersion: scenario.kubemedic.io/v1\nkind: Expect\ntarget: Deployment/api\n\
                          cause: 'key DB_PASWORD'\noutcome: heal\ntimeoutSeconds: 30\n";

    #[test]
    fn reads_an_expectation() {
        let e = expectation("t", EXPECT).unwrap().unwrap();
        assert_eq!((e.kind.as_str(), e.name.as_str(), e.outcome), ("Deployment", "api", Outcome::Heal));
        assert!(e.cause.is_match("the Secret has no KEY db_pasword"));
        assert_eq!(e.timeout, Duration::from_secs(30));
        // The Expect document is not a step the demo applies.
        assert_eq!(demo::parse("t", EXPECT).unwrap().len(), 1);
        assert!(expectation("t", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n").unwrap().is_none());
    }

    #[test]
    fn refuses_malformed_expectations() {
        let doc = |body: &str| format!("apiVersion: scenario.kubemedic.io/v1\nkind: Expect\n{body}\n");
        for (body, says) in [
            ("target: Deployment\ncause: x\noutcome: heal", "KIND/NAME"),
            ("target: Secret/x\ncause: x\noutcome: heal", "cannot be diagnosed"),
            ("target: Deployment/x\noutcome: heal", "needs cause"),
            ("target: Deployment/x\ncause: '('\noutcome: heal", "not a valid pattern"),
            ("target: Deployment/x\ncause: x\noutcome: fixed", "heal, advice, propose, healthy or drift"),
            ("target: Secret/x\ncause: x", "heal, advice, propose, healthy or drift"),
        ] {
            let err = expectation("t", &doc(body)).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let twice = format!(
            "{}---\n{}",
            doc("target: Deployment/x\ncause: x\noutcome: heal"),
            doc("target: Deployment/y\ncause: x\noutcome: heal")
        );
        assert!(expectation("t", &twice).unwrap_err().to_string().contains("second Expect"));
    }

    #[test]
    fn a_drift_expectation_takes_any_kind() {
        let doc = "apiVersion: scenario.kubemedic.io/v1\nkind: Expect\ntarget: ConfigMap/settings\n\
                   cause: 'data.mode .*changed by kubectl-edit'\noutcome: drift\n";
        let e = expectation("t", doc).unwrap().unwrap();
        assert_eq!((e.kind.as_str(), e.name.as_str(), e.outcome), ("ConfigMap", "settings", Outcome::Drift));
        // A diagnosable alias is still normalised.
        let e = expectation("t", &doc.replace("ConfigMap/settings", "deploy/web")).unwrap().unwrap();
        assert_eq!(e.kind, "Deployment");
    }

    #[test]
    fn the_desired_state_is_the_last_version_of_each_object() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"a": "b"}});
        let v2 = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
        write_desired(dir.path(), &[v1, cm.clone(), v2.clone()]).unwrap();
        // Read back by the drift module's own manifests source.
        let desired = crate::drift::sources::manifests(dir.path(), "ns").unwrap();
        let objects: Vec<Value> = desired.into_iter().map(|d| d.object).collect();
        assert_eq!(objects, vec![cm, v2]);
    }

    fn row(passed: bool) -> Score {
        Score {
            scenario: "s".into(),
            target: "Deployment/x".into(),
            expected: Outcome::Heal,
            cause_matched: passed,
            got: if passed { "healed".into() } else { "not healed: a|b".into() },
            unsafe_proposal: false,
            passed,
            seconds: 1.0,
            root_cause: String::new(),
        }
    }

    #[test]
    fn table_counts_and_escapes() {
        let t = table(&[row(true), row(false)]);
        assert!(t.contains("1/2 scenarios passed (50 %)"), "{t}");
        assert!(t.contains("a\\|b"), "a cell's pipe must not split the row: {t}");
        assert_eq!(percent(&[]), 100.0);
        assert_eq!(percent(&[row(true)]), 100.0);
    }

    #[test]
    fn namespaces_are_valid_names() {
        let ns = namespace_for("A_very-long-scenario-name-that-goes-on-and-on-and-on-and-on-forever");
        crate::names::namespace(&ns).unwrap();
        assert!(ns.len() <= 63);
    }

    #[test]
    fn every_shipped_scenario_declares_a_valid_expectation() {
        let dir =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let all = select(&dir, &[]).unwrap();
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().and_then(|x| x.to_str()) == Some("yaml"));
        assert_eq!(all.len(), files.count(), "every scenario file carries an Expect document");
        assert!(all.len() >= 30, "the catalog needs at least 30 scenarios, has {}", all.len());
    }
}

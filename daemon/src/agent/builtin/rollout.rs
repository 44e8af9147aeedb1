//! Failures a rollout introduced: an image that cannot be pulled, a release
//! that crashes, a rollout stuck past its progress deadline. The fix is a
//! rollback to the newest earlier revision whose pods actually ran (its
//! ReplicaSet has ready or available pods), done the way `kubectl rollout
//! undo` does it: the Deployment's pod template becomes that ReplicaSet's.

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use serde_json::{Map, Value, json};

use super::analyze::{
    Finding, exit_code, last_message, pod_name, pod_ready, state_summary, statuses, terminated_reason, waiting_message,
    waiting_reason,
};
use super::gather::{Facts, revision, truncate};
use crate::model::diagnosis::Evidence;
use crate::model::proposal::{PatchType, Risk};
use crate::policy::ProposalDraft;

const PULL_REASONS: &[&str] = &["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"];
/// The runtime could not create or start the container's process (waiting reasons under
/// dockershim, terminated reasons under containerd).
const START_REASONS: &[&str] = &["RunContainerError", "CreateContainerError", "StartError", "ContainerCannotRun"];

/// Why a container could not start, if it could not: the runtime's message.
fn start_failure(cs: &k8s_openapi::api::core::v1::ContainerStatus) -> Option<String> {
    if let Some(r) = waiting_reason(cs).filter(|r| START_REASONS.contains(r)) {
        return Some(waiting_message(cs).unwrap_or(r).to_owned());
    }
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref())?;
    let r = last.reason.as_deref().filter(|r| START_REASONS.contains(r))?;
    Some(last.message.clone().unwrap_or_else(|| r.to_owned()))
}

/// A revision counts as good only if its pods ran: ready or available replicas.
pub fn ran(rs: &ReplicaSet) -> bool {
    let st = rs.status.clone().unwrap_or_default();
    st.ready_replicas.unwrap_or(0) > 0 || st.available_replicas.unwrap_or(0) > 0
}

fn rs_uid(rs: &ReplicaSet) -> String {
    rs.metadata.uid.clone().unwrap_or_default()
}

fn images(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.iter().map(|c| c.image.clone().unwrap_or_default()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The JSON merge patch (RFC 7386) turning `from` into `to`.
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(old) if old == v => {}
                    Some(old) if old.is_object() && v.is_object() => {
                        out.insert(k.clone(), merge_diff(old, v));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

/// The rollback draft to `good`, or why there is none.
fn rollback(facts: &Facts, good: &ReplicaSet, because: &str) -> Option<ProposalDraft> {
    let mut template = serde_json::to_value(good.spec.as_ref()?.template.as_ref()?).ok()?;
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove("pod-template-hash");
    }
    let current = facts.object.pointer("/spec/template")?;
    let diff = merge_diff(current, &template);
    if diff.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    let w = &facts.target;
    let mut draft = ProposalDraft::patch(
        &w.kind,
        &w.namespace,
        &w.name,
        PatchType::Merge,
        json!({"spec": {"template": diff}}),
        &format!(
            "{because} Revision {} (ReplicaSet {}, image {}) had {} ready pod(s); rolling the pod template back to it \
             is what `kubectl rollout undo --to-revision={}` does.",
            revision(good),
            good.metadata.name.clone().unwrap_or_default(),
            images(good),
            good.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            revision(good)
        ),
    );
    draft.risk = Some(Risk::Medium);
    Some(draft)
}

/// The newest earlier ControllerRevision of a StatefulSet or DaemonSet whose pods ran, its pod
/// template, and how that is known: ready pods still at that revision, or (StatefulSet) the
/// controller's `currentRevision` while an update to a newer one is under way; failing both,
/// when the update replaced every pod, the revision just before it, said to be unverified.
fn revision_that_ran(facts: &Facts) -> Option<(&ControllerRevision, Value, String)> {
    let update = facts.object.pointer("/status/updateRevision").and_then(Value::as_str);
    let current = facts.object.pointer("/status/currentRevision").and_then(Value::as_str);
    let newest = facts.controller_revisions.first()?;
    let previous = facts.controller_revisions.iter().map(|r| r.revision).filter(|r| *r < newest.revision).max();
    let previous = previous.unwrap_or(-1);
    facts.controller_revisions.iter().skip(1).filter(|r| r.revision < newest.revision).find_map(|r| {
        let name = r.metadata.name.clone().unwrap_or_default();
        let hash = r.metadata.labels.as_ref().and_then(|l| {
            l.get("controller-revision-hash").or_else(|| l.get("controller.kubernetes.io/hash")).cloned()
        });
        let ready_pods = facts
            .pods
            .iter()
            .filter(|p| pod_ready(p))
            .filter(|p| {
                // A StatefulSet's pods carry the revision's name, a DaemonSet's only its hash.
                let label = p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash"));
                label.is_some_and(|h| *h == name || Some(h) == hash.as_ref())
            })
            .count();
        let why = if ready_pods > 0 {
            format!("{ready_pods} ready pod(s) still run it")
        } else if current == Some(name.as_str()) && update != Some(name.as_str()) {
            "it is the controller's current revision; the update to the newer one never completed".to_owned()
        } else if current == update && r.revision == previous {
            // Every pod was replaced (Parallel, or a completed update): the controller keeps no
            // record of whether the previous revision's pods ran. Offered as what it is.
            "it is the revision before the update, which replaced every pod; the controller does not record \
             whether its pods ran, so check before approving"
                .to_owned()
        } else {
            return None;
        };
        let mut template = r.data.as_ref()?.0.pointer("/spec/template")?.clone();
        template.as_object_mut()?.remove("$patch");
        Some((r, template, why))
    })
}

/// The rollback of a StatefulSet or DaemonSet to a ControllerRevision's template, as
/// `kubectl rollout undo` does it.
fn controller_rollback(
    facts: &Facts,
    rev: &ControllerRevision,
    template: &Value,
    because: &str,
    why: &str,
) -> Option<ProposalDraft> {
    let current = facts.object.pointer("/spec/template")?;
    let diff = merge_diff(current, template);
    if diff.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    let w = &facts.target;
    let mut draft = ProposalDraft::patch(
        &w.kind,
        &w.namespace,
        &w.name,
        PatchType::Merge,
        json!({"spec": {"template": diff}}),
        &format!(
            "{because} Revision {} (ControllerRevision {}) ran: {why}; rolling the pod template back to it is what \
             `kubectl rollout undo --to-revision={}` does.",
            rev.revision,
            rev.metadata.name.clone().unwrap_or_default(),
            rev.revision
        ),
    );
    draft.risk = Some(Risk::Medium);
    Some(draft)
}

/// Failures tied to the newest revision.
pub fn analyze(facts: &Facts) -> Option<Finding> {
    let dep = facts.deployment.as_ref();
    let newest = facts.replica_sets.first();
    let newest_uid = newest.map(rs_uid);
    let of_newest = |p: &&k8s_openapi::api::core::v1::Pod| match &newest_uid {
        Some(uid) => p.metadata.owner_references.iter().flatten().any(|o| o.uid == *uid),
        None => true,
    };

    // What the newest revision's pods show.
    let mut pull: Option<(String, String, String)> = None;
    let mut crash: Option<(String, String, Option<i32>, String)> = None;
    let mut start: Option<(String, String, String)> = None;
    for p in facts.pods.iter().filter(of_newest) {
        for cs in statuses(p) {
            if let Some(msg) = start_failure(cs) {
                start = Some((pod_name(p), cs.name.clone(), msg));
                continue;
            }
            match waiting_reason(cs) {
                Some(r) if PULL_REASONS.contains(&r) => {
                    let image = cs.image.clone();
                    pull = Some((pod_name(p), image, waiting_message(cs).unwrap_or(r).to_owned()));
                }
                Some("CrashLoopBackOff") if terminated_reason(cs) != Some("OOMKilled") => {
                    crash = Some((
                        pod_name(p),
                        cs.name.clone(),
                        exit_code(cs),
                        terminated_reason(cs).unwrap_or("Error").to_owned(),
                    ));
                }
                _ if cs.restart_count > 0 && terminated_reason(cs) == Some("Error") && crash.is_none() => {
                    crash = Some((pod_name(p), cs.name.clone(), exit_code(cs), "Error".into()));
                }
                _ => {}
            }
        }
    }
    let stuck = dep.and_then(|d| d.status.as_ref()).and_then(|s| s.conditions.as_ref()).and_then(|cs| {
        cs.iter()
            .find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            .map(|c| c.message.clone().unwrap_or_default())
    });
    if pull.is_none() && crash.is_none() && start.is_none() && stuck.is_none() {
        return None;
    }

    let w = &facts.target;
    let newest_rev = newest.map(revision).unwrap_or(0);
    let good = facts.replica_sets.iter().skip(1).find(|rs| revision(rs) < newest_rev && ran(rs));
    let mut f = Finding::default();
    f.chain.push(format!("{w} unavailable: {}", state_summary(facts)));
    let introduced = if facts.replica_sets.len() > 1 {
        format!(", introduced by the latest rollout (revision {newest_rev})")
    } else {
        String::new()
    };
    if let Some((pod, image, msg)) = &pull {
        let event = last_message(facts, "Failed").filter(|m| m.contains("pull") || m.contains("image"));
        f.summary = format!("{w}: image {image} cannot be pulled{introduced}");
        f.root_cause = format!("image {image} cannot be pulled ({}){introduced}", event.as_deref().unwrap_or(msg));
        f.chain.push(format!("pod {pod}: ImagePullBackOff"));
        f.chain.push(format!("image {image} not pullable"));
        f.confidence = if good.is_some() { 0.9 } else { 0.75 };
        if let Some(msg) = &stuck {
            f.root_cause.push_str(&format!("; the rollout is stuck: ProgressDeadlineExceeded ({msg})"));
            f.summary.push_str("; rollout stuck past its progress deadline");
            f.chain.insert(1, "Progressing=False: ProgressDeadlineExceeded".into());
        }
    } else if let Some((pod, container, msg)) = &start {
        let several = facts.replica_sets.len() > 1 || facts.controller_revisions.len() > 1;
        let whose = if several { "the new revision's container" } else { "container" };
        // The runtime's own words name what is missing (`exec: "x": executable file not found`).
        let what = msg.split("caused: ").last().unwrap_or(msg).trim_end_matches(": unknown");
        f.summary = format!("{w}: container {container} of revision {newest_rev} cannot start");
        f.root_cause = format!(
            "{whose} {container} cannot start: its command names something the image lacks ({}){introduced}",
            truncate(what, 200)
        );
        f.chain.push(format!("pod {pod}: container {container} cannot start"));
        f.chain.push(format!("runtime: {}", truncate(what, 120)));
        f.confidence = if good.is_some() { 0.85 } else { 0.6 };
        if good.is_none() && !several {
            f.advice.push(format!(
                "Point the command of container {container} at an executable the image {} holds, or use an image                  that holds it ({}).",
                facts
                    .pod_spec()
                    .and_then(|s| s.containers.iter().find(|c| c.name == *container))
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                truncate(what, 120)
            ));
        }
    } else if let Some((pod, container, code, reason)) = &crash {
        let full_log = facts
            .logs
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{pod}/")))
            .or_else(|| facts.logs.iter().next())
            .map(|(_, text)| text.as_str());
        let log = full_log.and_then(|text| super::logline::explaining_line(text).map(|l| truncate(l, 160)));
        // Read from whole lines, never the shortened one: client-go's lines run long.
        let refusal = full_log.and_then(|text| text.lines().find_map(super::logline::forbidden));
        let code = code.map(|c| format!("exit code {c}")).unwrap_or_else(|| reason.clone());
        let log_part = log.as_ref().map(|l| format!("; the log reports: {l:?}")).unwrap_or_default();
        let several = facts.replica_sets.len() > 1 || facts.controller_revisions.len() > 1;
        let whose = if several { "the new revision's container" } else { "container" };
        f.summary = format!("{w}: container {container} of revision {newest_rev} crash-loops ({code})");
        f.root_cause = format!("{whose} {container} exits with {code}{log_part}{introduced}");
        if let Some(refusal) = refusal {
            // The process says why: a permission it lacks. Name the rule; never grant it.
            f.root_cause = format!("{}; {}", refusal.cause(), f.root_cause);
            f.advice.push(format!(
                "Grant {} to it if it should have this permission ({}); kubemedic never changes RBAC.",
                refusal.cause().split(" may not").next().unwrap_or("the workload's identity"),
                refusal.rule()
            ));
            f.chain.push(format!("apiserver: {}", refusal.cause()));
        }
        f.chain.push(format!("pod {pod}: CrashLoopBackOff"));
        f.chain.push(format!("container {container} exits ({code})"));
        if let Some(l) = &log {
            f.chain.push(format!("log: {l}"));
        }
        f.confidence = if good.is_some() && facts.replica_sets.len() > 1 { 0.85 } else { 0.6 };
    } else if let Some(msg) = &stuck {
        let not_ready: Vec<String> =
            facts.pods.iter().filter(of_newest).filter(|p| !pod_ready(p)).map(pod_name).collect();
        f.summary = format!("{w}: rollout of revision {newest_rev} is stuck past its progress deadline");
        f.root_cause = format!(
            "the rollout of revision {newest_rev} exceeded its progress deadline ({msg}); its pods never became ready \
             ({})",
            if not_ready.is_empty() { "none were created".into() } else { not_ready.join(", ") }
        );
        f.chain.push("Progressing=False: ProgressDeadlineExceeded".into());
        f.chain.push(format!("revision {newest_rev} pods not ready"));
        f.confidence = if good.is_some() { 0.8 } else { 0.5 };
    }

    if matches!(w.kind.as_str(), "StatefulSet" | "DaemonSet") {
        match revision_that_ran(facts) {
            Some((rev, template, why)) => {
                f.chain.push(format!("revision {} ran ({why})", rev.revision));
                f.evidence.push(Evidence {
                    tool: "rollout_history".into(),
                    args: json!({"namespace": w.namespace, "kind": w.kind, "name": w.name}),
                    finding: format!("revision {} ran: {why}", rev.revision),
                });
                match controller_rollback(facts, rev, &template, &format!("{}.", f.root_cause), &why) {
                    Some(d) => {
                        f.confidence = f.confidence.max(0.8);
                        f.drafts.push(d);
                        if w.kind == "StatefulSet"
                            && facts.object.pointer("/spec/podManagementPolicy").and_then(Value::as_str)
                                != Some("Parallel")
                        {
                            // OrderedReady does not replace a pod that never became ready.
                            let stuck: Vec<String> =
                                facts.pods.iter().filter(|p| !pod_ready(p)).map(pod_name).collect();
                            // The pods to delete once the template is back: a further step the approver
                            // sees as a proposal of its own, after the rollback.
                            for pod in stuck {
                                let mut d = ProposalDraft::patch(
                                    "Pod",
                                    &w.namespace,
                                    &pod,
                                    PatchType::Merge,
                                    Value::Null,
                                    &format!(
                                        "Step 2, after the rollback of {w}: with podManagementPolicy OrderedReady \
                                         the controller waits for pod {pod} to become ready before it replaces it, \
                                         so the template fix alone does not reach it; deleting it lets the \
                                         controller recreate it from the rolled-back template."
                                    ),
                                );
                                d.action = crate::approvals::Action::Delete;
                                d.risk = Some(Risk::Medium);
                                f.drafts.push(d);
                            }
                        }
                    }
                    None => f.advice.push(format!(
                        "The pod template already equals revision {}; the failure is not in the template.",
                        rev.revision
                    )),
                }
            }
            None => f.advice.push(format!(
                "No earlier revision of {w} is known to have run; fix the pod template (image, command) by hand."
            )),
        }
        return Some(f);
    }
    if facts.deployment.is_none() {
        f.advice.push(format!(
            "{} keeps its revision history in ControllerRevisions; roll back with `kubectl rollout undo {}/{} -n {}` \
             after checking the previous revision.",
            w.kind,
            w.kind.to_ascii_lowercase(),
            w.name,
            w.namespace
        ));
        return Some(f);
    }
    match good {
        Some(good) => {
            f.chain.push(format!("revision {} ran ({})", revision(good), images(good)));
            f.evidence.push(Evidence {
                tool: "rollout_history".into(),
                args: json!({"namespace": w.namespace, "kind": w.kind, "name": w.name}),
                finding: format!(
                    "revision {} ({}) has {} ready pod(s): the last revision that ran",
                    revision(good),
                    images(good),
                    good.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
                ),
            });
            match rollback(facts, good, &format!("{}.", f.root_cause)) {
                Some(d) => f.drafts.push(d),
                None => f.advice.push(format!(
                    "The pod template already equals revision {}; the failure is not in the template.",
                    revision(good)
                )),
            }
        }
        None => {
            f.confidence = f.confidence.min(0.6);
            f.advice.push(format!(
                "No earlier revision of {w} has pods that ran, so there is no known-good revision to roll back to; \
                 fix the pod template (image, command) by hand."
            ));
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_replaces_lists_and_nulls_removed_keys() {
        let from = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "a", "image": "x:2",
            "command": ["crash"]}], "dnsPolicy": "ClusterFirst"}});
        let to = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "a", "image": "x:1"}],
            "dnsPolicy": "ClusterFirst"}});
        assert_eq!(merge_diff(&from, &to), json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}}));
        let from = json!({"metadata": {"annotations": {"x": "1"}}});
        assert_eq!(merge_diff(&from, &json!({"metadata": {}})), json!({"metadata": {"annotations": null}}));
    }

    /// A revision whose command names an executable its image lacks: the runtime's words are
    /// the root cause, and the fix is the rollback to the revision that ran.
    #[test]
    fn a_command_the_image_lacks_is_named_and_rolled_back() {
        let template = |cmd: &str| json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "w", "image": "w:1", "command": [cmd]}]}});
        let rs = |rev: i64, uid: &str, ready: i32, cmd: &str| -> ReplicaSet {
            serde_json::from_value(json!({"metadata": {"name": format!("w-{rev}"), "uid": uid,
                "annotations": {"deployment.kubernetes.io/revision": rev.to_string()}},
                "spec": {"selector": {}, "template": template(cmd)}, "status": {"replicas": 1, "readyReplicas": ready}}))
            .unwrap()
        };
        let msg = "failed to start container \"w\": Error response from daemon: OCI runtime create failed: \
                   container_linux.go:370: starting container process caused: exec: \"worker-v2\": executable file \
                   not found in $PATH: unknown";
        let object = json!({"metadata": {"name": "w", "namespace": "ns"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "w"}}, "template": template("worker-v2")}});
        let mut facts = Facts::new(crate::model::signal::WorkloadRef::new("Deployment", "ns", "w"));
        facts.deployment = serde_json::from_value(object.clone()).ok();
        facts.template = serde_json::from_value(object["spec"]["template"].clone()).ok();
        facts.object = object;
        facts.replica_sets = vec![rs(2, "rs-2", 0, "worker-v2"), rs(1, "rs-1", 1, "worker")];
        facts.pods = vec![
            serde_json::from_value(json!({"metadata": {"name": "w-2-a", "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "w-2", "uid": "rs-2"}]},
                "status": {"containerStatuses": [{"name": "w", "image": "w:1", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "RunContainerError", "message": msg}}}]}}))
            .unwrap(),
        ];
        let f = analyze(&facts).expect("a finding");
        assert!(
            f.root_cause.contains(r#"cannot start: its command names something the image lacks (exec: "worker-v2": executable file not found in $PATH)"#),
            "{}",
            f.root_cause
        );
        assert!(f.root_cause.contains("introduced by the latest rollout (revision 2)"), "{}", f.root_cause);
        assert_eq!(f.drafts.len(), 1, "{f:?}");
        let body = serde_json::to_string(&f.drafts[0].action).unwrap();
        assert!(body.contains(r#""command":["worker"]"#), "{body}");
    }
}

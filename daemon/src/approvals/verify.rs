//! Verification: is the workload healthy *because of* the change, and does it stay so?
//!
//! "The new replicas are available" is not enough: a container that needs more memory than
//! its limit starts, becomes Ready, is OOM-killed a moment later and restarts. So a change is
//! verified only when
//! 1. its rollout is complete, as `kubectl rollout status` judges it (the controller observed
//!    the new generation; updated, available and total replicas equal the desired count), and
//! 2. the pods then stay Ready, with no container restarting, waiting in a failure state
//!    (`CrashLoopBackOff`, `ErrImagePull`, …) or exiting with an error, for a stability window
//!    (`approvals.verify_stable_seconds`),
//!
//! all within `approvals.verify_timeout_seconds`. A restart or a failed container is final
//! (verification fails at once, naming the pod, the container and why); a pod that is merely
//! not Ready yet, or a rollout still progressing, restarts the window.
//!
//! The decision is the pure [`Judge::observe`]; [`verify`] polls the cluster and feeds it.
//! Only pods created by the change count while the rollout progresses (the old ones are still
//! broken: that was the incident); once it is complete every remaining pod counts, and a pod
//! older than the change is measured against its restart count when verification started.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};

use super::apply::{self, Applied, Verdict};
use super::proposal::{Action, Proposal, ProposalState, TargetRef};
use crate::cluster::Cluster;

/// How often the workload and its pods are read while verifying.
const POLL: Duration = Duration::from_millis(500);

/// Container waiting reasons that are part of starting, not a failure.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Where the rollout stands at one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Progressing(String),
    Complete(String),
    /// Definitely failed (progress deadline exceeded).
    Failed(String),
}

/// One container of a pod, as verification sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerHealth {
    pub name: String,
    pub restarts: i32,
    /// `state.waiting.reason` (with the message), if waiting.
    pub waiting: Option<String>,
    /// `state.terminated`: (reason, exit code), if terminated.
    pub terminated: Option<(String, i32)>,
    /// `lastState.terminated`: (reason, exit code) of the previous run, if any.
    pub last_terminated: Option<(String, i32)>,
}

/// One pod of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodHealth {
    pub name: String,
    pub uid: String,
    /// Created by (at or after) the change: its restarts count from zero.
    pub new: bool,
    pub ready: bool,
    pub containers: Vec<ContainerHealth>,
}

/// The workload and its (non-terminating) pods at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub rollout: Rollout,
    /// Desired replicas (pods) once the rollout is complete.
    pub want: i32,
    pub pods: Vec<PodHealth>,
}

/// What one observation means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not decided yet; why.
    Wait(String),
    Verified(String),
    Failed(String),
}

/// The stability judge: feed it observations in time order.
#[derive(Debug)]
pub struct Judge {
    window: Duration,
    /// When (time since verification started) the current stable stretch began.
    stable_since: Option<Duration>,
    /// Restart counts of pods older than the change, when first seen.
    baselines: HashMap<(String, String), i32>,
}

fn describe_exit((reason, code): &(String, i32)) -> String {
    format!("{reason}, exit code {code}")
}

impl Judge {
    pub fn new(window: Duration) -> Self {
        Self { window, stable_since: None, baselines: HashMap::new() }
    }

    /// Judge `obs`, seen `elapsed` after verification started.
    pub fn observe(&mut self, obs: &Observation, elapsed: Duration) -> Decision {
        if let Rollout::Failed(why) = &obs.rollout {
            return Decision::Failed(why.clone());
        }
        let complete = matches!(obs.rollout, Rollout::Complete(_));
        for pod in &obs.pods {
            for c in &pod.containers {
                let baseline = if pod.new {
                    0
                } else {
                    *self.baselines.entry((pod.uid.clone(), c.name.clone())).or_insert(c.restarts)
                };
                // Old pods are the incident itself until the rollout replaces them.
                if !pod.new && !complete {
                    continue;
                }
                if let Some(why) = failure(pod, c, baseline) {
                    return Decision::Failed(why);
                }
            }
        }
        let waiting = match &obs.rollout {
            Rollout::Progressing(why) => Some(format!("rollout in progress: {why}")),
            _ => match obs.pods.iter().find(|p| !p.ready) {
                Some(p) => Some(format!("pod {} is not Ready", p.name)),
                None => {
                    let ready = i32::try_from(obs.pods.len()).unwrap_or(i32::MAX);
                    (ready < obs.want).then(|| format!("{ready}/{} pods Ready", obs.want))
                }
            },
        };
        if let Some(why) = waiting {
            self.stable_since = None;
            return Decision::Wait(why);
        }
        let since = *self.stable_since.get_or_insert(elapsed);
        let stable_for = elapsed.saturating_sub(since);
        let Rollout::Complete(rollout) = &obs.rollout else { unreachable!("progressing and failed handled above") };
        if stable_for >= self.window {
            Decision::Verified(format!(
                "{rollout}; {} pod(s) Ready with no restarts for {}s",
                obs.pods.len(),
                self.window.as_secs()
            ))
        } else {
            Decision::Wait(format!("stable for {}s of {}s", stable_for.as_secs(), self.window.as_secs()))
        }
    }
}

/// Why a container counts as failed, if it does.
fn failure(pod: &PodHealth, c: &ContainerHealth, baseline: i32) -> Option<String> {
    let at = format!("pod {} container {}", pod.name, c.name);
    if c.restarts > baseline {
        let last =
            c.last_terminated.as_ref().map(|t| format!(" (last exit: {})", describe_exit(t))).unwrap_or_default();
        return Some(format!("{at} restarted {} time(s) after the change{last}", c.restarts - baseline));
    }
    if let Some(t) = &c.terminated
        && t.1 != 0
    {
        return Some(format!("{at} terminated: {}", describe_exit(t)));
    }
    match &c.waiting {
        Some(w) if !STARTING.iter().any(|s| w == s || w.starts_with(&format!("{s}:"))) => {
            Some(format!("{at} is waiting: {w}"))
        }
        _ => None,
    }
}

/// Which pods belong to the workload's current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// No revision to tell by (DaemonSet, or not known yet): creation time decides alone.
    Any,
    /// Pods controlled by one of these ReplicaSets (a Deployment's newest revision).
    Owners(Vec<String>),
    /// Pods with this `controller-revision-hash` (a StatefulSet's update revision).
    RevisionHash(String),
}

impl Current {
    fn holds(&self, pod: &Pod) -> bool {
        match self {
            Self::Any => true,
            Self::Owners(names) => pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && names.contains(&o.name)),
            Self::RevisionHash(hash) => {
                pod.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash")).is_some_and(|h| h == hash)
            }
        }
    }
}

/// What verification needs from a pod. `since`: when the change was applied (whole seconds,
/// as the apiserver stores creation times); a pod is the change's own when it was created
/// since then *and* belongs to the `current` revision (a pod of the previous, broken
/// revision created in the same second is not). `None` for a pod being deleted.
pub fn pod_health(pod: &Pod, since: jiff::Timestamp, current: &Current) -> Option<PodHealth> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let terminated = |s: Option<&k8s_openapi::api::core::v1::ContainerState>| {
        s.and_then(|s| s.terminated.as_ref()).map(|t| (t.reason.clone().unwrap_or_default(), t.exit_code))
    };
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| ContainerHealth {
            name: c.name.clone(),
            restarts: c.restart_count,
            waiting: c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| {
                let reason = w.reason.clone()?;
                Some(match w.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => format!("{reason}: {}", crate::redact::redact_text(m)),
                    None => reason,
                })
            }),
            terminated: terminated(c.state.as_ref()),
            last_terminated: terminated(c.last_state.as_ref()),
        })
        .collect();
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let new = created.is_some_and(|c| c >= since.as_second()) && current.holds(pod);
    // A finished pod of an earlier revision (one the kubelet evicted, a completed one) stays
    // listed until it is garbage-collected; it is history, not the change's health.
    let finished = matches!(status.and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded"));
    if finished && !new {
        return None;
    }
    Some(PodHealth {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        new,
        ready,
        containers,
    })
}

/// The rollout of a Deployment / StatefulSet / DaemonSet, and how many pods it wants.
fn rollout_of(state: Option<Verdict>, describe: String) -> Rollout {
    match state {
        Some(Verdict::Healthy(msg)) => Rollout::Complete(msg),
        Some(Verdict::Unhealthy(msg)) => Rollout::Failed(msg),
        None => Rollout::Progressing(describe),
    }
}

/// One observation of `t`; `Ok(None)` when the object is gone.
async fn observe(
    cluster: &Cluster,
    t: &TargetRef,
    generation: i64,
    since: jiff::Timestamp,
) -> Result<Option<Observation>, kube::Error> {
    let client = cluster.client.clone();
    let (rollout, want, selector, current): (Rollout, i32, Option<LabelSelector>, Current) = match t.kind.as_str() {
        "Deployment" => {
            let Some(d) = Api::<Deployment>::namespaced(client.clone(), &t.namespace).get_opt(&t.name).await? else {
                return Ok(None);
            };
            let st = d.status.clone().unwrap_or_default();
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let describe = format!(
                "{} updated, {} available, {} unavailable of {want}",
                st.updated_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                st.unavailable_replicas.unwrap_or(0)
            );
            let rollout = rollout_of(apply::deployment_state(&d, generation, since), describe);
            let selector = d.spec.as_ref().map(|s| s.selector.clone());
            let current = newest_replicasets(cluster, &d, generation, selector.as_ref()).await?;
            (rollout, want, selector, current)
        }
        "StatefulSet" => {
            let Some(s) = Api::<StatefulSet>::namespaced(client.clone(), &t.namespace).get_opt(&t.name).await? else {
                return Ok(None);
            };
            let st = s.status.clone().unwrap_or_default();
            let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let describe = format!(
                "{} ready, {} updated of {want}",
                st.ready_replicas.unwrap_or(0),
                st.updated_replicas.unwrap_or(0)
            );
            let current = if st.observed_generation.unwrap_or(0) < generation {
                Current::Owners(Vec::new())
            } else {
                st.update_revision.clone().map_or(Current::Any, Current::RevisionHash)
            };
            let rollout = rollout_of(apply::statefulset_state(&s, generation, since), describe);
            (rollout, want, s.spec.map(|s| s.selector), current)
        }
        _ => {
            let Some(d) = Api::<DaemonSet>::namespaced(client.clone(), &t.namespace).get_opt(&t.name).await? else {
                return Ok(None);
            };
            let st = d.status.clone().unwrap_or_default();
            let describe = format!("{} available of {}", st.number_available.unwrap_or(0), st.desired_number_scheduled);
            let want = st.desired_number_scheduled;
            let rollout = rollout_of(apply::daemonset_state(&d, generation, since), describe);
            (rollout, want, d.spec.map(|s| s.selector), Current::Any)
        }
    };
    let params = match selector.map(list_params).transpose() {
        Ok(params) => params.unwrap_or_default(),
        Err(err) => {
            let rollout = Rollout::Failed(format!("cannot select the pods of {}: {err}", t.name));
            return Ok(Some(Observation { rollout, want, pods: Vec::new() }));
        }
    };
    let pods = Api::<Pod>::namespaced(client, &t.namespace).list(&params).await?;
    let pods = pods.items.iter().filter_map(|p| pod_health(p, since, &current)).collect();
    Ok(Some(Observation { rollout, want, pods }))
}

fn list_params(selector: LabelSelector) -> Result<ListParams, kube::core::ParseExpressionError> {
    Ok(ListParams::default().labels_from(&kube::core::Selector::try_from(selector)?))
}

/// The ReplicaSets of `d`'s current revision (`deployment.kubernetes.io/revision`). Until
/// the controller has observed `generation` its revision annotation is the previous one, and
/// no pod is the change's own yet.
async fn newest_replicasets(
    cluster: &Cluster,
    d: &Deployment,
    generation: i64,
    selector: Option<&LabelSelector>,
) -> Result<Current, kube::Error> {
    if d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0) < generation {
        return Ok(Current::Owners(Vec::new()));
    }
    use k8s_openapi::api::apps::v1::ReplicaSet;
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let revision = |m: &kube::api::ObjectMeta| m.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned();
    let (Some(want), Some(uid)) = (revision(&d.metadata), d.metadata.uid.as_deref()) else { return Ok(Current::Any) };
    let Some(Ok(params)) = selector.cloned().map(list_params) else { return Ok(Current::Any) };
    let ns = d.metadata.namespace.as_deref().unwrap_or_default();
    let rss = Api::<ReplicaSet>::namespaced(cluster.client.clone(), ns).list(&params).await?;
    let names = rss
        .items
        .iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
        .filter(|rs| revision(&rs.metadata).as_deref() == Some(want.as_str()))
        .filter_map(|rs| rs.metadata.name.clone())
        .collect();
    Ok(Current::Owners(names))
}

/// Verification settings (from [`super::ApprovalsConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// How long the pods must stay healthy after the rollout completes.
    pub stable: Duration,
    /// Bound on the whole verification (rollout + window).
    pub timeout: Duration,
}

/// Watch the rollout the change started and then its pods for the stability window.
/// `progress`, when given, receives what is awaited at each look.
pub async fn verify(
    cluster: &Cluster,
    p: &Proposal,
    applied: &Applied,
    window: Window,
    progress: Option<&tokio::sync::watch::Sender<String>>,
) -> Verdict {
    let t = &p.target;
    if matches!(p.action, Action::Delete) {
        return Verdict::Healthy(format!("{} {}/{} deleted", t.kind, t.namespace, t.name));
    }
    if t.api_version != "apps/v1" || !matches!(t.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
        return Verdict::Healthy(format!("{} {}/{} changed; it has no rollout to watch", t.kind, t.namespace, t.name));
    }
    let generation = applied.generation.unwrap_or(0);
    // Pods created since the apply started are the change's own (also when a restarted
    // daemon resumes verification long after).
    let since =
        p.history.iter().find(|tr| tr.to == ProposalState::Applying).map_or_else(jiff::Timestamp::now, |tr| tr.at);
    let start = tokio::time::Instant::now();
    let mut judge = Judge::new(window.stable);
    loop {
        let last = match observe(cluster, t, generation, since).await {
            Ok(None) => return Verdict::Unhealthy(format!("{} {} was deleted during verification", t.kind, t.name)),
            Ok(Some(obs)) => match judge.observe(&obs, start.elapsed()) {
                Decision::Verified(msg) => return Verdict::Healthy(msg),
                Decision::Failed(msg) => return Verdict::Unhealthy(msg),
                Decision::Wait(why) => {
                    tracing::debug!(proposal = %p.id, state = %why, "verifying");
                    why
                }
            },
            Err(err) => format!("cannot read the workload: {}", crate::model::error::error_chain(&err)),
        };
        if let Some(tx) = progress {
            tx.send_replace(last.clone());
        }
        if start.elapsed() + POLL > window.timeout {
            return Verdict::Unhealthy(format!("not stable within {}s: {last}", window.timeout.as_secs()));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests;

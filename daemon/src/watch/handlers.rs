//! Per-kind handlers: compare what an object shows now with what was last
//! seen of it and emit signals for the differences (a new failure, another
//! restart of a failing pod, a workload healthy again).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::ResourceExt;
use kube::runtime::watcher;

use super::Ctx;
use super::classify::{self, Failure, reason};
use super::strip::CachedPod;
use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

/// What was last seen, to emit only changes.
#[derive(Default)]
pub(crate) struct Track {
    pods: HashMap<(String, String), PodTrack>,
    /// Failures currently shown by workloads (Deployment conditions, Job conditions, nodes).
    workloads: HashMap<WorkloadRef, BTreeSet<&'static str>>,
    /// Workloads that had a firing signal and are not healthy again yet.
    unhealthy: HashSet<WorkloadRef>,
    /// Event uid → the count last signalled, and when.
    events: HashMap<String, (i32, jiff::Timestamp)>,
}

struct PodTrack {
    reasons: BTreeSet<&'static str>,
    restarts: i64,
}

fn signal(
    ctx: &Ctx,
    status: SignalStatus,
    reason: &str,
    object: WorkloadRef,
    workload: Option<WorkloadRef>,
    labels: BTreeMap<String, String>,
    message: String,
) -> Signal {
    Signal {
        source: SignalSource::Cluster,
        status,
        reason: reason.to_owned(),
        cluster: ctx.cluster.clone(),
        object,
        workload,
        labels,
        severity: None,
        message,
        observed_at: jiff::Timestamp::now(),
    }
}

fn healthy_again(ctx: &Ctx, track: &mut Track, w: &WorkloadRef, why: &str) -> Option<Signal> {
    track
        .unhealthy
        .remove(w)
        .then(|| signal(ctx, SignalStatus::Resolved, reason::HEALTHY, w.clone(), None, BTreeMap::new(), why.to_owned()))
}

fn lock(ctx: &Ctx) -> std::sync::MutexGuard<'_, Track> {
    ctx.track.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn pod(ctx: &Ctx, event: watcher::Event<CachedPod>) -> Vec<Signal> {
    match event {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => pod_changed(ctx, &p),
        watcher::Event::Delete(p) => {
            lock(ctx).pods.remove(&(p.namespace().unwrap_or_default(), p.name_any()));
            Vec::new()
        }
        watcher::Event::InitDone => {
            // Forget pods that went away while the watch was down.
            let mut track = lock(ctx);
            track.pods.retain(|(ns, name), _| ctx.cache.pods.get(ns, name).is_some());
            Vec::new()
        }
        watcher::Event::Init => Vec::new(),
    }
}

fn pod_changed(ctx: &Ctx, pod: &CachedPod) -> Vec<Signal> {
    let ns = pod.namespace().unwrap_or_default();
    if !ctx.scope.namespace_visible(&ns) {
        return Vec::new();
    }
    let name = pod.name_any();
    let object = WorkloadRef::new("Pod", &ns, &name);
    let owner = ctx.cache.owner_of(&ns, pod.metadata.owner_references.as_ref(), pod.metadata.labels.as_ref());
    let failures = classify::pod_failures(pod.status.as_ref());
    let restarts = classify::pod_restarts(pod.status.as_ref());
    let labels = pod.labels().clone();
    let mut track = lock(ctx);
    let key = (ns, name);
    if failures.is_empty() && !track.pods.contains_key(&key) {
        // The common case: a healthy pod never seen failing. Keep no state for it.
        return match owner {
            None if classify::pod_ready(pod.status.as_ref()) => {
                healthy_again(ctx, &mut track, &object, "pod is Ready").into_iter().collect()
            }
            _ => Vec::new(),
        };
    }
    let entry = track.pods.entry(key.clone()).or_insert(PodTrack { reasons: BTreeSet::new(), restarts });
    let restarted = restarts > entry.restarts;
    let mut out = Vec::new();
    for Failure { reason, message } in &failures {
        if !entry.reasons.contains(reason) || restarted {
            out.push(signal(
                ctx,
                SignalStatus::Firing,
                reason,
                object.clone(),
                owner.clone(),
                labels.clone(),
                message.clone(),
            ));
        }
    }
    entry.reasons = failures.iter().map(|f| f.reason).collect();
    entry.restarts = restarts;
    if failures.is_empty() {
        track.pods.remove(&key);
    }
    let subject = owner.clone().unwrap_or_else(|| object.clone());
    if !out.is_empty() {
        track.unhealthy.insert(subject);
    } else if failures.is_empty() && owner.is_none() && classify::pod_ready(pod.status.as_ref()) {
        out.extend(healthy_again(ctx, &mut track, &object, "pod is Ready"));
    }
    out
}

/// Shared by the workload kinds: signal new failures, and resolution when healthy.
fn workload_changed(
    ctx: &Ctx,
    w: WorkloadRef,
    labels: BTreeMap<String, String>,
    failures: Vec<Failure>,
    healthy: bool,
) -> Vec<Signal> {
    let mut track = lock(ctx);
    let now: BTreeSet<&'static str> = failures.iter().map(|f| f.reason).collect();
    let before = track.workloads.get(&w).cloned().unwrap_or_default();
    let mut out: Vec<Signal> = failures
        .into_iter()
        .filter(|f| !before.contains(f.reason))
        .map(|f| signal(ctx, SignalStatus::Firing, f.reason, w.clone(), None, labels.clone(), f.message))
        .collect();
    if now.is_empty() {
        track.workloads.remove(&w);
    } else {
        track.workloads.insert(w.clone(), now);
    }
    if !out.is_empty() {
        track.unhealthy.insert(w.clone());
    } else if healthy {
        out.extend(healthy_again(ctx, &mut track, &w, "workload is healthy"));
    }
    out
}

fn workload_deleted(ctx: &Ctx, w: &WorkloadRef) -> Vec<Signal> {
    let mut track = lock(ctx);
    track.workloads.remove(w);
    healthy_again(ctx, &mut track, w, "workload was deleted").into_iter().collect()
}

fn namespaced_ref<K: kube::Resource<DynamicType = ()>>(kind: &str, obj: &K) -> Option<WorkloadRef> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    Some(WorkloadRef::new(kind, ns, obj.meta().name.clone()?))
}

macro_rules! workload_handler {
    ($fn:ident, $ty:ty, $kind:literal, $failures:expr, $healthy:expr) => {
        pub(crate) fn $fn(ctx: &Ctx, event: watcher::Event<$ty>) -> Vec<Signal> {
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    let Some(w) = namespaced_ref($kind, &o) else { return Vec::new() };
                    if !ctx.scope.namespace_visible(&w.namespace) {
                        return Vec::new();
                    }
                    let failures: Vec<Failure> = $failures(&o);
                    workload_changed(ctx, w, o.labels().clone(), failures, $healthy(&o))
                }
                watcher::Event::Delete(o) => match namespaced_ref($kind, &o) {
                    Some(w) => workload_deleted(ctx, &w),
                    None => Vec::new(),
                },
                watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
            }
        }
    };
}

workload_handler!(deployment, Deployment, "Deployment", classify::deployment_failures, classify::deployment_healthy);
workload_handler!(statefulset, StatefulSet, "StatefulSet", |_: &StatefulSet| Vec::new(), classify::statefulset_healthy);
workload_handler!(daemonset, DaemonSet, "DaemonSet", |_: &DaemonSet| Vec::new(), classify::daemonset_healthy);
workload_handler!(job, Job, "Job", classify::job_failures, classify::job_healthy);

pub(crate) fn node(ctx: &Ctx, event: watcher::Event<Node>) -> Vec<Signal> {
    match event {
        watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
            let w = WorkloadRef::new("Node", "", n.name_any());
            let failure = classify::node_failure(&n);
            // A node without a Ready condition yet is registering, not failing.
            let has_ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
            let ready = has_ready && failure.is_none();
            workload_changed(ctx, w, n.labels().clone(), failure.into_iter().collect(), ready)
        }
        watcher::Event::Delete(n) => workload_deleted(ctx, &WorkloadRef::new("Node", "", n.name_any())),
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}

pub(crate) fn event(ctx: &Ctx, event: watcher::Event<Event>) -> Vec<Signal> {
    match event {
        watcher::Event::Apply(e) => {
            // A change the watch streamed (not a relist's replay): how long it took to arrive.
            if let (Some(m), Some(written)) = (&ctx.metrics, classify::warning_written_at(&e)) {
                m.watch_delivered(jiff::Timestamp::now().duration_since(written).as_secs_f64().max(0.0));
            }
            event_seen(ctx, &e).into_iter().collect()
        }
        watcher::Event::InitApply(e) => event_seen(ctx, &e).into_iter().collect(),
        watcher::Event::InitDone => {
            let horizon = jiff::Timestamp::now() - ctx.event_max_age;
            lock(ctx).events.retain(|_, (_, t)| *t >= horizon);
            Vec::new()
        }
        watcher::Event::Delete(_) | watcher::Event::Init => Vec::new(),
    }
}

fn event_seen(ctx: &Ctx, e: &Event) -> Option<Signal> {
    let failure = classify::event_failure(e)?;
    let io = &e.involved_object;
    let ns = io.namespace.clone().or_else(|| e.metadata.namespace.clone()).unwrap_or_default();
    if !ctx.scope.namespace_visible(&ns) {
        return None;
    }
    let when = classify::event_time(e)?;
    let now = jiff::Timestamp::now();
    if now.duration_since(when).unsigned_abs() > ctx.event_max_age && when < now {
        return None;
    }
    let uid = e.metadata.uid.clone().or_else(|| e.metadata.name.clone())?;
    let count = classify::event_count(e);
    let kind = io.kind.clone().unwrap_or_default();
    let name = io.name.clone().unwrap_or_default();
    let (workload, labels) = match kind.as_str() {
        "Pod" => {
            let labels = ctx.cache.pods.get(&ns, &name).map(|p| p.labels().clone()).unwrap_or_default();
            (ctx.cache.owner_of_pod_name(&ns, &name), labels)
        }
        "ReplicaSet" => (Some(ctx.cache.owner_of_replicaset(&ns, &name, None)), BTreeMap::new()),
        _ => (None, BTreeMap::new()),
    };
    let object = WorkloadRef::new(kind, &ns, name);
    let mut track = lock(ctx);
    if track.events.get(&uid).is_some_and(|(c, _)| *c >= count) {
        return None;
    }
    track.events.insert(uid, (count, when));
    if track.events.len() > 100_000 {
        // A storm of distinct events: keep memory bounded, oldest first.
        let horizon = now - ctx.event_max_age;
        track.events.retain(|_, (_, t)| *t >= horizon);
    }
    let s = signal(ctx, SignalStatus::Firing, failure.reason, object, workload, labels, failure.message);
    track.unhealthy.insert(s.subject().clone());
    Some(s)
}

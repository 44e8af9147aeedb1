//! What counts as a failure, per kind: pure functions from an object to the
//! failure reasons it shows now, and whether a workload is healthy again.
//!
//! Reasons use Kubernetes' own words. Image pull failures alternate between
//! `ErrImagePull` and `ImagePullBackOff` on every retry, so both are reported
//! as `ImagePullBackOff` (the raw word is in the message) and fold into one
//! incident. A container whose last run was `OOMKilled` reports `OOMKilled`,
//! not the `CrashLoopBackOff` that follows it.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Node, PodStatus};

/// Failure reasons the watchers emit.
pub mod reason {
    pub const CRASH_LOOP: &str = "CrashLoopBackOff";
    pub const IMAGE_PULL: &str = "ImagePullBackOff";
    pub const CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const CREATE_ERROR: &str = "CreateContainerError";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const UNHEALTHY: &str = "Unhealthy";
    pub const FAILED_SCHEDULING: &str = "FailedScheduling";
    pub const PROGRESS_DEADLINE: &str = "ProgressDeadlineExceeded";
    pub const NODE_NOT_READY: &str = "NodeNotReady";
    pub const FAILED_CREATE: &str = "FailedCreate";
    /// The reason of resolved signals from the watchers: the workload is healthy again.
    pub const HEALTHY: &str = "Healthy";
}

/// One failure seen on an object now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

fn failure(reason: &'static str, message: String) -> Failure {
    Failure { reason, message }
}

fn container_failures(cs: &ContainerStatus, out: &mut Vec<Failure>) {
    let restarts = cs.restart_count;
    let oom = |t: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>| {
        t.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
    };
    let state = cs.state.as_ref();
    let last = cs.last_state.as_ref();
    if oom(state.and_then(|s| s.terminated.as_ref())) || oom(last.and_then(|s| s.terminated.as_ref())) {
        let limit = "its memory limit";
        out.push(failure(
            reason::OOM_KILLED,
            format!("container {} was OOMKilled (went over {limit}); restarts: {restarts}", cs.name),
        ));
        return;
    }
    let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) else { return };
    let raw = waiting.reason.as_deref().unwrap_or_default();
    let msg = waiting.message.as_deref().unwrap_or_default();
    let canonical = match raw {
        "CrashLoopBackOff" | "RunContainerError" => reason::CRASH_LOOP,
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => reason::IMAGE_PULL,
        "CreateContainerConfigError" => reason::CONFIG_ERROR,
        "CreateContainerError" => reason::CREATE_ERROR,
        _ => return,
    };
    let exit = last
        .and_then(|s| s.terminated.as_ref())
        .map(|t| format!(" (last exit code {})", t.exit_code))
        .unwrap_or_default();
    out.push(failure(canonical, format!("container {}: {raw}: {msg}{exit}; restarts: {restarts}", cs.name)));
}

/// Failures a pod's status shows now (at most one per reason).
pub fn pod_failures(status: Option<&PodStatus>) -> Vec<Failure> {
    let mut out = Vec::new();
    let Some(status) = status else { return out };
    for cs in status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten()) {
        container_failures(cs, &mut out);
    }
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable") {
            out.push(failure(reason::FAILED_SCHEDULING, c.message.clone().unwrap_or_default()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(f.reason));
    out
}

/// Total restarts of a pod's containers.
pub fn pod_restarts(status: Option<&PodStatus>) -> i64 {
    status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| i64::from(c.restart_count)).sum())
}

/// Whether a pod is Ready.
pub fn pod_ready(status: Option<&PodStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Event reasons that are failures in their own right (the rest is visible in
/// object status, or is noise).
pub fn event_failure(event: &Event) -> Option<Failure> {
    if event.type_.as_deref() != Some("Warning") {
        return None;
    }
    let r = match event.reason.as_deref()? {
        "Unhealthy" => reason::UNHEALTHY,
        "FailedScheduling" => reason::FAILED_SCHEDULING,
        "FailedCreate" => reason::FAILED_CREATE,
        "FailedMount" => "FailedMount",
        _ => return None,
    };
    Some(failure(r, event.message.clone().unwrap_or_default()))
}

/// When the event last happened.
pub fn event_time(event: &Event) -> Option<jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// When a Warning Event's reporter wrote it, to the microsecond: its `eventTime`, on the
/// first occurrence only (no series, `count` at most 1). Legacy timestamps have whole seconds;
/// a repeat keeps the first `eventTime`, and a series' `lastObservedTime` is written in batches,
/// long after the occurrence. `None` when the event cannot say.
pub fn warning_written_at(event: &Event) -> Option<jiff::Timestamp> {
    if event.type_.as_deref() != Some("Warning") || event.series.is_some() || event.count.unwrap_or(1) > 1 {
        return None;
    }
    event.event_time.as_ref().map(|t| t.0)
}

/// How many times the event happened (core `count` or the series count).
pub fn event_count(event: &Event) -> i32 {
    event.series.as_ref().and_then(|s| s.count).or(event.count).unwrap_or(1)
}

/// A node whose Ready condition is not True (False or Unknown).
pub fn node_failure(node: &Node) -> Option<Failure> {
    let ready = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (ready.status != "True").then(|| {
        failure(
            reason::NODE_NOT_READY,
            format!(
                "node {} Ready={}: {}",
                node.metadata.name.as_deref().unwrap_or_default(),
                ready.status,
                ready.message.as_deref().unwrap_or(ready.reason.as_deref().unwrap_or_default())
            ),
        )
    })
}

pub fn deployment_failures(d: &Deployment) -> Vec<Failure> {
    let mut out = Vec::new();
    for c in d.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten() {
        if c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            out.push(failure(reason::PROGRESS_DEADLINE, c.message.clone().unwrap_or_default()));
        }
        if c.type_ == "ReplicaFailure" && c.status == "True" {
            out.push(failure(reason::FAILED_CREATE, c.message.clone().unwrap_or_default()));
        }
    }
    out
}

pub fn job_failures(job: &Job) -> Vec<Failure> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| Failure {
            reason: match c.reason.as_deref() {
                Some("DeadlineExceeded") => "DeadlineExceeded",
                _ => "BackoffLimitExceeded",
            },
            message: c.message.clone().unwrap_or_default(),
        })
        .collect()
}

/// Rolled out and fully available at the current generation.
pub fn deployment_healthy(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (&d.spec, &d.status) else { return false };
    let want = spec.replicas.unwrap_or(1);
    let current = st.observed_generation >= d.metadata.generation;
    let stuck = deployment_failures(d).iter().any(|f| f.reason == reason::PROGRESS_DEADLINE);
    current
        && !stuck
        && st.updated_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.ready_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.unavailable_replicas.unwrap_or(0) == 0
}

pub fn statefulset_healthy(s: &StatefulSet) -> bool {
    let (Some(spec), Some(st)) = (&s.spec, &s.status) else { return false };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= s.metadata.generation
        && st.ready_replicas.unwrap_or(0) == want
        && st.updated_replicas.unwrap_or(0) == want
        && st.current_revision == st.update_revision
}

pub fn daemonset_healthy(d: &DaemonSet) -> bool {
    let Some(st) = &d.status else { return false };
    st.observed_generation >= d.metadata.generation
        && st.number_ready == st.desired_number_scheduled
        && st.updated_number_scheduled.unwrap_or(0) == st.desired_number_scheduled
        && st.number_unavailable.unwrap_or(0) == 0
}

pub fn job_healthy(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn a_first_warning_with_an_event_time_says_when_it_was_written() {
        let event = |extra: serde_json::Value| -> Event {
            let mut e = serde_json::json!({"metadata": {"name": "e", "namespace": "n"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "n"},
                "type": "Warning", "reason": "Failed", "count": 1,
                "lastTimestamp": "2026-12-04T18:00:00Z",
                "eventTime": "2026-12-04T18:00:00.123456Z"});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            serde_json::from_value(e).unwrap()
        };
        let first = warning_written_at(&event(serde_json::json!({}))).unwrap();
        assert_eq!(first.to_string(), "2026-12-04T18:00:00.123456Z", "microseconds are kept");
        assert_eq!(warning_written_at(&event(serde_json::json!({"count": 2}))), None, "a repeat keeps the first time");
        assert_eq!(warning_written_at(&event(serde_json::json!({"type": "Normal"}))), None);
        assert_eq!(warning_written_at(&event(serde_json::json!({"eventTime": null}))), None, "whole seconds only");
        let series = serde_json::json!({"series": {"count": 3, "lastObservedTime": "2026-12-04T18:05:00.000001Z"}});
        assert_eq!(warning_written_at(&event(series)), None, "a series is written in batches");
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "n"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn pod_reasons() {
        let p = pod(serde_json::json!({"containerStatuses": [{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(pod_failures(p.status.as_ref()).iter().map(|f| f.reason).collect::<Vec<_>>(), ["OOMKilled"]);
        assert_eq!(pod_restarts(p.status.as_ref()), 3);
        let p = pod(serde_json::json!({"containerStatuses": [
            {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}},
            {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff"}}},
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
        let f = pod_failures(p.status.as_ref());
        assert_eq!(f.iter().map(|f| f.reason).collect::<Vec<_>>(), ["ImagePullBackOff", "CrashLoopBackOff"]);
        assert!(f[0].message.contains("ErrImagePull: not found"), "{f:?}");
        assert!(f[1].message.contains("last exit code 1"), "{f:?}");
        let p = pod(serde_json::json!({"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]}));
        assert_eq!(pod_failures(p.status.as_ref())[0].reason, "FailedScheduling");
        let p = pod(serde_json::json!({"containerStatuses": [
            {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert!(pod_failures(p.status.as_ref()).is_empty());
    }

    #[test]
    fn nodes_and_deployments() {
        let n: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "Unknown", "message": "Kubelet stopped posting node status."}]}}))
        .unwrap();
        assert!(node_failure(&n).unwrap().message.contains("Ready=Unknown: Kubelet stopped"));
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}))
        .unwrap();
        assert!(deployment_healthy(&d));
        assert!(deployment_failures(&d).is_empty());
        let mut stuck = d.clone();
        let st = stuck.status.as_mut().unwrap();
        st.updated_replicas = Some(1);
        st.conditions.as_mut().unwrap()[0].status = "False".into();
        st.conditions.as_mut().unwrap()[0].reason = Some("ProgressDeadlineExceeded".into());
        assert!(!deployment_healthy(&stuck));
        assert_eq!(deployment_failures(&stuck)[0].reason, "ProgressDeadlineExceeded");
        let mut old = d.clone();
        old.metadata.generation = Some(3);
        assert!(!deployment_healthy(&old), "status of an older generation");
    }
}

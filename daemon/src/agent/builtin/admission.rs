//! Pods the controller cannot create: `FailedCreate` events of the workload's
//! ReplicaSets (or the StatefulSet, DaemonSet or Job itself) while fewer pods
//! exist than it wants. The apiserver's refusal names the cause: a
//! ResourceQuota that is used up, a LimitRange the template violates, a
//! ServiceAccount that does not exist, or another admission check. The
//! answer says which object refuses and by how much; quotas, limits and
//! permissions are the namespace owner's to change, so it is advice.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Event;
use regex::Regex;
use serde_json::Value;

use super::analyze::Finding;
use super::gather::{Facts, truncate};

static QUOTA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"exceeded quota: ([^,\s]+), requested: (\S+), used: (\S+), limited: (\S+)").expect("static regex")
});
static LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(maximum|minimum) (\S+) usage per (Container|Pod) is ([^,\s]+),? but (limit|request) is ([^,\]\s]+?)\.?(?:[,\]\s]|$)",
    )
    .expect("static regex")
});
static SERVICE_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:serviceaccount "([^"]+)" not found|error looking up service account [^/\s]+/([^:\s]+))"#)
        .expect("static regex")
});

/// How many pods the workload wants, and how many exist (not finished).
fn shortfall(facts: &Facts) -> Option<(i64, i64)> {
    let o = &facts.object;
    let wanted = match facts.target.kind.as_str() {
        "Deployment" | "StatefulSet" | "ReplicaSet" => o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
        "DaemonSet" => o.pointer("/status/desiredNumberScheduled").and_then(Value::as_i64)?,
        "Job" => {
            // A Job that has not finished wants `parallelism` pods running.
            let done = o.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| {
                c.iter().any(|c| matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True")
            });
            if done {
                return None;
            }
            o.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1)
        }
        _ => return None,
    };
    let live = facts
        .pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
        })
        .count() as i64;
    (live < wanted).then_some((wanted, live))
}

fn latest_failed_create(facts: &Facts) -> Option<&Event> {
    facts
        .events
        .iter()
        .rev()
        .find(|e| e.reason.as_deref() == Some("FailedCreate") && e.type_.as_deref() == Some("Warning"))
}

/// The names of objects of `kind` gathered beside the workload.
fn related_names(facts: &Facts, kind: &str) -> Vec<String> {
    facts
        .related
        .iter()
        .filter(|v| v["kind"] == kind)
        .filter_map(|v| v.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

pub fn analyze(facts: &Facts) -> Option<Finding> {
    let (wanted, live) = shortfall(facts)?;
    let event = latest_failed_create(facts)?;
    let message = event.message.clone().unwrap_or_default();
    let source = format!(
        "{} {}",
        event.involved_object.kind.clone().unwrap_or_default(),
        event.involved_object.name.clone().unwrap_or_default()
    );
    let ns = &facts.target.namespace;
    let workload = &facts.target;
    let missing = wanted - live;
    let short = format!("{live} of {wanted} pods exist; the controller cannot create the other {missing}");
    let mut f = Finding { confidence: 0.9, ..Default::default() };
    if let Some(c) = QUOTA.captures(&message) {
        let (quota, requested, used, limited) = (&c[1], &c[2], &c[3], &c[4]);
        f.root_cause = format!(
            "ResourceQuota {quota} is used up: a new pod requests {requested}, {used} is used of {limited}; {short}"
        );
        f.advice.push(format!(
            "Raise ResourceQuota {quota} in namespace {ns} (limited {limited}, used {used}), or lower {workload}'s \
             replicas or requests so that it fits; quotas are the namespace owner's to change, kubemedic does not \
             change them."
        ));
        f.chain = vec![
            format!("{workload}: {short}"),
            format!("{source}: FailedCreate"),
            format!("ResourceQuota {quota}: used {used} of {limited}, a pod requests {requested}"),
        ];
    } else if let Some(c) = LIMIT.captures(&message) {
        let (bound, resource, per, value, field, asked) = (&c[1], &c[2], &c[3], &c[4], &c[5], &c[6]);
        let ranges = related_names(facts, "LimitRange");
        let which = match ranges.as_slice() {
            [] => "a LimitRange".to_owned(),
            [one] => format!("LimitRange {one}"),
            many => format!("LimitRange {}", many.join(" or ")),
        };
        f.root_cause = format!(
            "{which} refuses the pods: the {bound} {resource} per {per} is {value}, the pod template's {resource} \
             {field} is {asked}; {short}"
        );
        f.advice.push(format!(
            "Bring the {resource} {field} of {workload}'s containers within {value} (the {bound} set by {which} in \
             namespace {ns}), or have the namespace owner change {which}."
        ));
        f.chain = vec![
            format!("{workload}: {short}"),
            format!("{source}: FailedCreate"),
            format!("{which}: {bound} {resource} per {per} {value}, {field} {asked}"),
        ];
    } else if let Some(c) = SERVICE_ACCOUNT.captures(&message) {
        let sa = c.get(1).or(c.get(2)).map(|m| m.as_str()).unwrap_or_default();
        f.root_cause = format!("ServiceAccount {sa} named by the pod template does not exist; {short}");
        f.advice.push(format!(
            "Create ServiceAccount {sa} in namespace {ns} (with the Roles the workload needs), or point the pod \
             template's serviceAccountName at an existing one."
        ));
        f.chain = vec![
            format!("{workload}: {short}"),
            format!("{source}: FailedCreate"),
            format!("ServiceAccount {sa} not found"),
        ];
    } else {
        f.confidence = 0.7;
        f.root_cause = format!("the apiserver refuses to create the pods: {}; {short}", truncate(&message, 240));
        f.advice.push(format!(
            "An admission check refuses {workload}'s pods (see the FailedCreate event of {source}); change the pod \
             template to satisfy it or ask the namespace owner about the policy."
        ));
        f.chain = vec![format!("{workload}: {short}"), format!("{source}: FailedCreate: {}", truncate(&message, 120))];
    }
    f.summary = format!("{workload} is short of pods: {}", f.root_cause);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(replicas: i64, pods: usize, message: &str) -> Facts {
        let mut f = Facts::new(crate::model::signal::WorkloadRef::new("Deployment", "ns", "web"));
        f.object = json!({"spec": {"replicas": replicas}});
        f.pods = (0..pods)
            .map(|i| {
                serde_json::from_value(
                    json!({"metadata": {"name": format!("web-{i}")}, "status": {"phase": "Running"}}),
                )
                .unwrap()
            })
            .collect();
        f.events = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "e"}, "involvedObject": {"kind": "ReplicaSet", "name": "web-abc"},
                "reason": "FailedCreate", "type": "Warning", "message": message
            }))
            .unwrap(),
        ];
        f
    }

    #[test]
    fn names_the_quota_and_by_how_much() {
        let f = analyze(&facts(3, 2, "Error creating: pods \"web-x\" is forbidden: exceeded quota: team-pods, requested: pods=1, used: pods=2, limited: pods=2")).unwrap();
        assert!(f.root_cause.contains("ResourceQuota team-pods is used up"), "{}", f.root_cause);
        assert!(f.root_cause.contains("pods=2 is used of pods=2"), "{}", f.root_cause);
        assert!(f.root_cause.contains("2 of 3 pods exist"), "{}", f.root_cause);
        assert!(f.drafts.is_empty(), "quotas are advice only");
    }

    #[test]
    fn reads_quota_refusals_over_several_resources() {
        let f = analyze(&facts(2, 1, "Error creating: pods \"w\" is forbidden: exceeded quota: compute, requested: requests.cpu=2,requests.memory=1Gi, used: requests.cpu=3,requests.memory=2Gi, limited: requests.cpu=4,requests.memory=2Gi")).unwrap();
        assert!(f.root_cause.starts_with("ResourceQuota compute is used up: a new pod requests requests.cpu=2,requests.memory=1Gi, requests.cpu=3,requests.memory=2Gi is used of requests.cpu=4,requests.memory=2Gi"), "{}", f.root_cause);
        let f = analyze(&facts(1, 0, "pods \"e\" is forbidden: [maximum cpu usage per Container is 500m, but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]")).unwrap();
        assert!(f.root_cause.contains("is 500m, the pod template's cpu limit is 2;"), "{}", f.root_cause);
    }

    #[test]
    fn names_the_limit_range() {
        let mut fx = facts(
            1,
            0,
            "Error creating: pods \"e-1\" is forbidden: maximum cpu usage per Container is 500m, but limit is 2",
        );
        fx.related.push(json!({"kind": "LimitRange", "metadata": {"name": "caps"}}));
        let f = analyze(&fx).unwrap();
        assert!(
            f.root_cause.starts_with("LimitRange caps refuses the pods: the maximum cpu per Container is 500m"),
            "{}",
            f.root_cause
        );
        assert!(f.root_cause.contains("limit is 2"), "{}", f.root_cause);
    }

    #[test]
    fn names_a_missing_service_account() {
        let f = analyze(&facts(1, 0, "Error creating: pods \"a\" is forbidden: error looking up service account ns/robot: serviceaccount \"robot\" not found")).unwrap();
        assert!(
            f.root_cause.starts_with("ServiceAccount robot named by the pod template does not exist"),
            "{}",
            f.root_cause
        );
    }

    #[test]
    fn an_old_refusal_with_every_pod_present_is_not_the_cause() {
        assert!(analyze(&facts(2, 2, "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2")).is_none());
        let mut none = facts(2, 1, "x");
        none.events.clear();
        assert!(analyze(&none).is_none());
    }
}

//! Gathering for objects that are not workloads (Service, Ingress,
//! PersistentVolumeClaim, CronJob, HorizontalPodAutoscaler): the object,
//! its events, and the objects its health depends on (the pods a Service
//! selects and its Endpoints, an Ingress's Services, a claim's
//! StorageClass and volumes, a CronJob's Jobs, an HPA's scale target), all
//! read through the tools ([`Reader`]). They are kept as plain JSON so that one
//! build reads every API version the cluster serves (the tools fall back to
//! batch/v1beta1 CronJobs before 1.21, autoscaling/v2beta2 HPAs before 1.23).

use serde_json::{Value, json};

use super::gather::{Facts, read_err, truncate, unread};
use super::read::{Reader, typed};
use crate::agent::{AgentError, Gap};

/// Kinds diagnosed from their object graph.
const OBJECT_KINDS: &[&str] = &["Service", "Ingress", "PersistentVolumeClaim", "CronJob", "HorizontalPodAutoscaler"];

/// Workload kinds, diagnosed from their pods.
pub const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod"];

/// The canonical spelling of a kind `kubemedic diagnose` accepts (case-insensitive, with
/// the usual short names), or `None`.
pub fn diagnosable(kind: &str) -> Option<&'static str> {
    let k = kind.to_ascii_lowercase();
    let alias = match k.as_str() {
        "svc" => "service",
        "ing" => "ingress",
        "pvc" => "persistentvolumeclaim",
        "cj" => "cronjob",
        "hpa" => "horizontalpodautoscaler",
        "deploy" => "deployment",
        "sts" => "statefulset",
        "ds" => "daemonset",
        "rs" => "replicaset",
        "no" => "node",
        other => other,
    };
    WORKLOAD_KINDS
        .iter()
        .chain(["Node"].iter())
        .chain(OBJECT_KINDS.iter())
        .find(|k| k.eq_ignore_ascii_case(alias))
        .copied()
}

/// Whether `kind` is diagnosed by [`gather`] here.
pub fn is_object_kind(kind: &str) -> bool {
    OBJECT_KINDS.contains(&kind)
}

/// LIST `kind` in `ns` ("" for a cluster-scoped kind); `None` (and a gap) when the kind is
/// outside the configured scope or cannot be read.
async fn list(reader: &Reader<'_>, facts: &mut Facts, kind: &str, ns: &str) -> Option<Vec<Value>> {
    if !reader.scope().kind_visible(kind) {
        facts.gaps.push(Gap::OutOfScope { what: kind.to_ascii_lowercase() });
        return None;
    }
    match reader.list(kind, ns, None, None).await {
        Ok(items) => Some(items),
        Err(e) => {
            facts.gaps.push(unread(kind.to_ascii_lowercase(), &e));
            None
        }
    }
}

/// Gather `facts.target`, one of the object kinds.
pub async fn gather(reader: &Reader<'_>, facts: &mut Facts) -> Result<(), AgentError> {
    let (kind, ns, name) = (facts.target.kind.clone(), facts.target.namespace.clone(), facts.target.name.clone());
    let object = reader
        .get(&kind, &ns, &name)
        .await
        .map_err(read_err(facts.target.to_string()))?
        .ok_or_else(|| AgentError::NotFound(facts.target.to_string()))?;
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    facts.object = object;
    let args = json!({"namespace": ns, "kind": kind, "name": name});
    let status = truncate(&facts.object.get("status").cloned().unwrap_or(Value::Null).to_string(), 240);
    facts.record("get_resource", args.clone(), format!("{kind} {ns}/{name} status: {status}"));

    let mut uids = vec![uid];
    match kind.as_str() {
        "Service" => {
            if let Some(pods) = list(reader, facts, "Pod", &ns).await {
                facts.pods = pods.iter().filter_map(typed).collect();
            }
            if !reader.scope().kind_visible("Endpoints") {
                facts.gaps.push(Gap::OutOfScope { what: "endpoints".into() });
            } else {
                match reader.get("Endpoints", &ns, &name).await {
                    Ok(Some(ep)) => facts.related.push(ep),
                    Ok(None) => {}
                    Err(e) => facts.gaps.push(unread("endpoints", &e)),
                }
            }
        }
        "Ingress" => {
            if let Some(svcs) = list(reader, facts, "Service", &ns).await {
                facts.related.extend(svcs);
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(sc) = list(reader, facts, "StorageClass", "").await {
                facts.related.extend(sc);
            }
            if let Some(pvs) = list(reader, facts, "PersistentVolume", "").await {
                facts.related.extend(pvs);
            }
        }
        "CronJob" => {
            let jobs = list(reader, facts, "Job", &ns).await;
            let owned: Vec<Value> = jobs.unwrap_or_default().into_iter().filter(|j| owned_by(j, &uids[0])).collect();
            let job_uids: Vec<String> = owned
                .iter()
                .filter_map(|j| j.pointer("/metadata/uid").and_then(Value::as_str))
                .map(Into::into)
                .collect();
            if !owned.is_empty()
                && let Some(pods) = list(reader, facts, "Pod", &ns).await
            {
                facts.pods =
                    pods.iter().filter(|p| job_uids.iter().any(|u| owned_by(p, u))).filter_map(typed).collect();
            }
            uids.extend(job_uids);
            facts.related.extend(owned);
        }
        "HorizontalPodAutoscaler" => {
            let t = facts.object.pointer("/spec/scaleTargetRef").cloned().unwrap_or_default();
            let (tk, tn) = (t["kind"].as_str().unwrap_or_default(), t["name"].as_str().unwrap_or_default());
            // A scale target of a kind the tools cannot read (a custom resource) stays unread.
            if let Some(tk) = crate::policy::target::kind_info(tk).map(|i| i.kind)
                && reader.scope().kind_visible(tk)
                && crate::names::object_name(tn).is_ok()
            {
                match reader.get(tk, &ns, tn).await {
                    Ok(Some(o)) => facts.related.push(o),
                    Ok(None) => {
                        if let Some(items) = list(reader, facts, tk, &ns).await {
                            facts.related.extend(items.into_iter().map(|mut o| {
                                o["candidate"] = json!(true);
                                o
                            }));
                        }
                    }
                    Err(e) => facts.gaps.push(unread("scale target", &e)),
                }
            }
        }
        _ => return Err(AgentError::Unsupported(kind)),
    }
    let names: Vec<String> = facts.related.iter().map(object_label).collect();
    if !names.is_empty() {
        facts.record(
            "list_resources",
            json!({"namespace": ns, "related_to": format!("{kind}/{name}")}),
            truncate(&names.join(", "), 400),
        );
    }
    if !facts.pods.is_empty() {
        uids.extend(facts.pods.iter().filter_map(|p| p.metadata.uid.clone()));
    }
    gather_events(reader, facts, &uids, &args).await;
    gather_job_logs(reader, facts).await;
    Ok(())
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
}

/// `Kind/name` of a JSON object.
pub fn object_label(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
    )
}

async fn gather_events(reader: &Reader<'_>, facts: &mut Facts, uids: &[String], args: &Value) {
    let ns = facts.target.namespace.clone();
    match reader.list("Event", &ns, None, None).await {
        Ok(v) => {
            let mut events: Vec<k8s_openapi::api::core::v1::Event> = v
                .iter()
                .filter(|e| {
                    e.pointer("/involvedObject/uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| uids.iter().any(|x| x == u))
                })
                .filter_map(typed)
                .collect();
            events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
            let warnings: Vec<String> = events
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .take(6)
                .collect();
            let finding = if warnings.is_empty() {
                format!("{} events, no warnings", events.len())
            } else {
                format!("{} events; warnings: {}", events.len(), warnings.join(" | "))
            };
            facts.events = events;
            facts.record("events", args.clone(), finding);
        }
        Err(e) => facts.gaps.push(unread("events", &e)),
    }
}

/// Logs of the failed pods of a CronJob's Jobs (one pod).
async fn gather_job_logs(reader: &Reader<'_>, facts: &mut Facts) {
    let Some(pod) =
        facts.pods.iter().rev().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")).cloned()
    else {
        return;
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = facts.target.namespace.clone();
    let Some(container) = pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()) else {
        return;
    };
    match reader.logs(&ns, &name, &container, false, 100).await {
        Ok(text) => {
            let line = super::logline::explaining_line(&text).unwrap_or("(no explaining line)").to_owned();
            facts.record(
                "pod_logs",
                json!({"namespace": ns, "pod": name, "tail": 100}),
                format!("{name} error before exit: {:?}", truncate(&line, 200)),
            );
            facts.logs.insert(format!("{name}/"), text);
        }
        Err(e) => facts.gaps.push(unread(format!("logs of {name}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_any_case_are_accepted() {
        assert_eq!(diagnosable("svc"), Some("Service"));
        assert_eq!(diagnosable("persistentVolumeClaim"), Some("PersistentVolumeClaim"));
        assert_eq!(diagnosable("HPA"), Some("HorizontalPodAutoscaler"));
        assert_eq!(diagnosable("cronjob"), Some("CronJob"));
        assert_eq!(diagnosable("deployment"), Some("Deployment"));
        assert_eq!(diagnosable("Secret"), None);
        assert_eq!(diagnosable("Role"), None);
    }
}

//! Gathering for objects that are not workloads (Service, Ingress,
//! PersistentVolumeClaim, CronJob, HorizontalPodAutoscaler): the object,
//! its events, and the objects its health depends on (the pods a Service
//! selects and its Endpoints, an Ingress's Services, a claim's
//! StorageClass and volumes, a CronJob's Jobs, an HPA's scale target). They
//! are kept as plain JSON so that one build reads every API version the
//! cluster serves (CronJob is batch/v1beta1 before 1.21, HPA v2beta2 before 1.23).

use serde_json::{Value, json};

use super::gather::{Facts, truncate};
use crate::agent::{AgentError, Gap};
use crate::cluster::Cluster;
use crate::policy::target::{self, KindInfo};

/// Kinds diagnosed from their object graph, each with the API versions tried in order.
const OBJECT_KINDS: &[(&str, &str, &[&str], bool)] = &[
    ("Service", "services", &["v1"], true),
    ("Ingress", "ingresses", &["networking.k8s.io/v1", "networking.k8s.io/v1beta1"], true),
    ("PersistentVolumeClaim", "persistentvolumeclaims", &["v1"], true),
    ("CronJob", "cronjobs", &["batch/v1", "batch/v1beta1"], true),
    ("HorizontalPodAutoscaler", "horizontalpodautoscalers", &["autoscaling/v2", "autoscaling/v2beta2"], true),
];

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
        .chain(OBJECT_KINDS.iter().map(|(k, ..)| k))
        .find(|k| k.eq_ignore_ascii_case(alias))
        .copied()
}

/// Whether `kind` is diagnosed by [`gather`] here.
pub fn is_object_kind(kind: &str) -> bool {
    OBJECT_KINDS.iter().any(|(k, ..)| *k == kind)
}

fn infos(kind: &str) -> Vec<KindInfo> {
    OBJECT_KINDS
        .iter()
        .filter(|(k, ..)| *k == kind)
        .flat_map(|(k, plural, versions, namespaced)| {
            versions.iter().map(move |v| KindInfo { kind: k, api_version: v, plural, namespaced: *namespaced })
        })
        .collect()
}

/// GET `kind/name` in `ns`, trying each served version; `Ok(None)` when it does not exist.
pub async fn get_any(cluster: &Cluster, kind: &str, ns: &str, name: &str) -> Result<Option<Value>, kube::Error> {
    let candidates = match target::kind_info(kind) {
        Some(i) => vec![i],
        None => infos(kind),
    };
    for info in candidates {
        match target::get(&cluster.client, &target::object_path(&info, ns, name)).await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if target::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// LIST a collection path's items of kind `what` (lowercase); `None` (and a gap) when
/// the kind is outside the configured scope or cannot be read.
async fn list(cluster: &Cluster, facts: &mut Facts, paths: &[String], what: &str) -> Option<Vec<Value>> {
    if !cluster.scope.kind_visible(what) {
        facts.gaps.push(Gap::OutOfScope { what: what.to_owned() });
        return None;
    }
    let mut last = None;
    for path in paths {
        match target::get(&cluster.client, path).await {
            Ok(v) => return Some(v["items"].as_array().cloned().unwrap_or_default()),
            Err(e) => last = Some(target::describe(&e)),
        }
    }
    facts.gaps.push(Gap::unread(what, last.unwrap_or_default()));
    None
}

/// Tag items of a list with their kind (lists leave it out of each item).
fn tagged(items: Vec<Value>, kind: &str) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut i| {
            i["kind"] = json!(kind);
            i
        })
        .collect()
}

/// Gather `facts.target`, one of the object kinds.
pub async fn gather(cluster: &Cluster, facts: &mut Facts) -> Result<(), AgentError> {
    let (kind, ns, name) = (facts.target.kind.clone(), facts.target.namespace.clone(), facts.target.name.clone());
    let object = get_any(cluster, &kind, &ns, &name)
        .await
        .map_err(|source| AgentError::Read { what: facts.target.to_string(), source })?
        .ok_or_else(|| AgentError::NotFound(facts.target.to_string()))?;
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    facts.object = object;
    let args = json!({"namespace": ns, "kind": kind, "name": name});
    let status = truncate(&facts.object.get("status").cloned().unwrap_or(Value::Null).to_string(), 240);
    facts.record("get_resource", args.clone(), format!("{kind} {ns}/{name} status: {status}"));

    let mut uids = vec![uid];
    let nsp = format!("/api/v1/namespaces/{ns}");
    match kind.as_str() {
        "Service" => {
            if let Some(pods) = list(cluster, facts, &[format!("{nsp}/pods")], "pod").await {
                facts.pods = pods.into_iter().filter_map(|p| serde_json::from_value(p).ok()).collect();
            }
            match target::get(&cluster.client, &format!("{nsp}/endpoints/{name}")).await {
                Ok(mut ep) => {
                    ep["kind"] = json!("Endpoints");
                    facts.related.push(ep);
                }
                Err(e) if target::is_not_found(&e) => {}
                Err(e) => facts.gaps.push(Gap::unread("endpoints", target::describe(&e))),
            }
        }
        "Ingress" => {
            if let Some(svcs) = list(cluster, facts, &[format!("{nsp}/services")], "service").await {
                facts.related.extend(tagged(svcs, "Service"));
            }
        }
        "PersistentVolumeClaim" => {
            let classes = ["/apis/storage.k8s.io/v1/storageclasses".to_owned()];
            if let Some(sc) = list(cluster, facts, &classes, "storageclass").await {
                facts.related.extend(tagged(sc, "StorageClass"));
            }
            if let Some(pvs) = list(cluster, facts, &["/api/v1/persistentvolumes".to_owned()], "persistentvolume").await
            {
                facts.related.extend(tagged(pvs, "PersistentVolume"));
            }
        }
        "CronJob" => {
            let jobs = list(cluster, facts, &[format!("/apis/batch/v1/namespaces/{ns}/jobs")], "job").await;
            let owned: Vec<Value> = jobs.unwrap_or_default().into_iter().filter(|j| owned_by(j, &uids[0])).collect();
            let job_uids: Vec<String> = owned
                .iter()
                .filter_map(|j| j.pointer("/metadata/uid").and_then(Value::as_str))
                .map(Into::into)
                .collect();
            if !owned.is_empty()
                && let Some(pods) = list(cluster, facts, &[format!("{nsp}/pods")], "pod").await
            {
                facts.pods = pods
                    .into_iter()
                    .filter(|p| job_uids.iter().any(|u| owned_by(p, u)))
                    .filter_map(|p| serde_json::from_value(p).ok())
                    .collect();
            }
            uids.extend(job_uids);
            facts.related.extend(tagged(owned, "Job"));
        }
        "HorizontalPodAutoscaler" => {
            let t = facts.object.pointer("/spec/scaleTargetRef").cloned().unwrap_or_default();
            let (tk, tn) = (t["kind"].as_str().unwrap_or_default(), t["name"].as_str().unwrap_or_default());
            if let Some(info) = target::kind_info(tk) {
                match target::get(&cluster.client, &target::object_path(&info, &ns, tn)).await {
                    Ok(mut o) => {
                        o["kind"] = json!(info.kind);
                        facts.related.push(o);
                    }
                    Err(e) if target::is_not_found(&e) => {
                        let all = format!("{}/namespaces/{ns}/{}", api_base(info.api_version), info.plural);
                        if let Some(items) = list(cluster, facts, &[all], &info.kind.to_ascii_lowercase()).await {
                            facts.related.extend(tagged(items, info.kind).into_iter().map(|mut o| {
                                o["candidate"] = json!(true);
                                o
                            }));
                        }
                    }
                    Err(e) => facts.gaps.push(Gap::unread("scale target", target::describe(&e))),
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
    gather_events(cluster, facts, &uids, &args).await;
    gather_job_logs(cluster, facts).await;
    Ok(())
}

fn api_base(api_version: &str) -> String {
    if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") }
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

async fn gather_events(cluster: &Cluster, facts: &mut Facts, uids: &[String], args: &Value) {
    let ns = facts.target.namespace.clone();
    match target::get(&cluster.client, &format!("/api/v1/namespaces/{ns}/events")).await {
        Ok(v) => {
            let mut events: Vec<k8s_openapi::api::core::v1::Event> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    e.pointer("/involvedObject/uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| uids.iter().any(|x| x == u))
                })
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
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
        Err(e) => facts.gaps.push(Gap::unread("events", target::describe(&e))),
    }
}

/// Logs of the failed pods of a CronJob's Jobs (one pod).
async fn gather_job_logs(cluster: &Cluster, facts: &mut Facts) {
    let Some(pod) =
        facts.pods.iter().rev().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")).cloned()
    else {
        return;
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = facts.target.namespace.clone();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(cluster.client.clone(), &ns);
    match api.logs(&name, &kube::api::LogParams { tail_lines: Some(100), ..Default::default() }).await {
        Ok(text) => {
            let line = super::logline::explaining_line(&text).unwrap_or("(no explaining line)").to_owned();
            facts.record(
                "pod_logs",
                json!({"namespace": ns, "pod": name, "tail": 100}),
                format!("{name} error before exit: {:?}", truncate(&line, 200)),
            );
            facts.logs.insert(format!("{name}/"), text);
        }
        Err(e) => facts.gaps.push(Gap::unread(format!("logs of {name}"), target::describe(&e))),
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

    #[test]
    fn each_object_kind_has_a_path_per_version() {
        let hpa = infos("HorizontalPodAutoscaler");
        assert_eq!(hpa.len(), 2);
        assert_eq!(
            target::object_path(&hpa[1], "ns", "x"),
            "/apis/autoscaling/v2beta2/namespaces/ns/horizontalpodautoscalers/x"
        );
        assert!(infos("Secret").is_empty());
    }
}

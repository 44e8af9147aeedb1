//! The workload an alert's pod belongs to, read from the apiserver by following
//! ownerReferences: Pod → ReplicaSet → Deployment, Pod → StatefulSet / DaemonSet,
//! Pod → Job → CronJob. The watchers' stores answer first when they run here (the
//! leader); this is for the pods they do not hold (another replica takes the webhook,
//! the pod is newer than the store) and for `kubemedic eval`. The pod-name convention of
//! Deployments is only the last resort, when the apiserver cannot tell either: it reads
//! a StatefulSet's `db-0` as nothing and can read some DaemonSet pods as a Deployment.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;

use crate::model::signal::WorkloadRef;

/// The controlling owner reference (the first one when none says `controller`).
pub fn controller(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs?;
    refs.iter().find(|r| r.controller == Some(true)).or_else(|| refs.first())
}

/// The workload that owns pod `ns/pod`, following its ownerReferences through the
/// apiserver; `None` when the pod does not exist or nothing controls it. At most three
/// reads (the pod, its ReplicaSet or Job, nothing more).
pub async fn owner_from_api(client: &kube::Client, ns: &str, pod: &str) -> Result<Option<WorkloadRef>, kube::Error> {
    let Some(p) = Api::<Pod>::namespaced(client.clone(), ns).get_opt(pod).await? else {
        return Ok(None);
    };
    let Some(owner) = controller(p.metadata.owner_references.as_ref()) else {
        return Ok(None);
    };
    let parent = match owner.kind.as_str() {
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .get_opt(&owner.name)
            .await?
            .and_then(|rs| controller(rs.metadata.owner_references.as_ref()).cloned()),
        "Job" => Api::<Job>::namespaced(client.clone(), ns)
            .get_opt(&owner.name)
            .await?
            .and_then(|job| controller(job.metadata.owner_references.as_ref()).cloned())
            .filter(|o| o.kind == "CronJob"),
        _ => None,
    };
    // A ReplicaSet without a Deployment, a Job without a CronJob: the object itself is the workload.
    let top = parent.as_ref().unwrap_or(owner);
    Ok(Some(WorkloadRef::new(&top.kind, ns, &top.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testkit::fakeapi::FakeApi;

    fn owned(api_version: &str, kind: &str, name: &str, owner: Option<(&str, &str)>) -> serde_json::Value {
        let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "shop"}});
        if let Some((k, n)) = owner {
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": k, "name": n,
                "uid": "u", "controller": true}]);
        }
        o
    }

    #[tokio::test]
    async fn pods_resolve_through_their_owner_references() {
        let api = FakeApi::default();
        api.add(owned("v1", "Pod", "db-0", Some(("StatefulSet", "db"))))
            .add(owned("v1", "Pod", "agent-x2k4q", Some(("DaemonSet", "metrics-agent01"))))
            .add(owned("v1", "Pod", "web-7d9f8b6c5-x2k4q", Some(("ReplicaSet", "web-7d9f8b6c5"))))
            .add(owned("apps/v1", "ReplicaSet", "web-7d9f8b6c5", Some(("Deployment", "web"))))
            .add(owned("v1", "Pod", "orphan-rs-abcde", Some(("ReplicaSet", "orphan-rs"))))
            .add(owned("apps/v1", "ReplicaSet", "orphan-rs", None))
            .add(owned("v1", "Pod", "export-2900-abcde", Some(("Job", "export-2900"))))
            .add(owned("batch/v1", "Job", "export-2900", Some(("CronJob", "export"))))
            .add(owned("v1", "Pod", "bare", None));
        let client = api.client();
        let owner = |pod: &'static str| {
            let client = client.clone();
            async move { owner_from_api(&client, "shop", pod).await.unwrap() }
        };
        assert_eq!(owner("db-0").await, Some(WorkloadRef::new("StatefulSet", "shop", "db")));
        // A DaemonSet pod whose name the Deployment convention would misread.
        assert_eq!(owner("agent-x2k4q").await, Some(WorkloadRef::new("DaemonSet", "shop", "metrics-agent01")));
        assert_eq!(owner("web-7d9f8b6c5-x2k4q").await, Some(WorkloadRef::new("Deployment", "shop", "web")));
        assert_eq!(owner("orphan-rs-abcde").await, Some(WorkloadRef::new("ReplicaSet", "shop", "orphan-rs")));
        assert_eq!(owner("export-2900-abcde").await, Some(WorkloadRef::new("CronJob", "shop", "export")));
        assert_eq!(owner("bare").await, None);
        assert_eq!(owner("gone").await, None);
        // One read for a pod owned directly, two through a ReplicaSet.
        let before = api.requests().len();
        owner("db-0").await;
        assert_eq!(api.requests().len() - before, 1, "{:?}", api.requests());
        let before = api.requests().len();
        owner("web-7d9f8b6c5-x2k4q").await;
        assert_eq!(
            api.requests()[before..],
            [
                "GET /api/v1/namespaces/shop/pods/web-7d9f8b6c5-x2k4q".to_owned(),
                "GET /apis/apps/v1/namespaces/shop/replicasets/web-7d9f8b6c5".to_owned()
            ]
        );
    }
}

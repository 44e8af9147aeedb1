//! `pod_logs`: logs of a pod or of a workload's pods, capped, filtered and
//! redacted (secret-looking strings and the values of in-scope Secrets).

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Caller, ToolError, Tools, kinds};

/// Largest `tail` accepted.
pub const MAX_TAIL: i64 = 5000;
/// Bytes read per container at most.
const LIMIT_BYTES: i64 = 1 << 20;

/// Input of `pod_logs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodLogsInput {
    pub namespace: String,
    /// Pod name, or the name of a workload when `kind` is given.
    pub name: String,
    /// `Pod` (default) or a workload kind (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job): logs of its pods.
    #[serde(default)]
    pub kind: Option<String>,
    /// Container; default every container of the pod.
    #[serde(default)]
    pub container: Option<String>,
    /// Last N lines (1-5000, default 100).
    #[serde(default)]
    pub tail: Option<i64>,
    /// Logs of the previous (crashed) instance.
    #[serde(default)]
    pub previous: bool,
    /// Only lines of the last N seconds (1-604800).
    #[serde(default)]
    pub since_seconds: Option<i64>,
    /// Only lines matching this regular expression (at most 256 characters).
    #[serde(default)]
    pub grep: Option<String>,
    /// For a workload: at most this many pods, failing ones first (1-10, default 3).
    #[serde(default)]
    pub max_pods: Option<i64>,
}

/// Logs of one container.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ContainerLogs {
    pub pod: String,
    pub container: String,
    pub previous: bool,
    /// Redacted lines, oldest first.
    pub lines: Vec<String>,
    /// Why no logs could be read (e.g. no previous instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Output of `pod_logs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct PodLogsOutput {
    pub namespace: String,
    pub logs: Vec<ContainerLogs>,
}

impl Tools {
    /// A pod in scope: from the watch store when the watchers run here, else from the apiserver.
    async fn pod(&self, ns: &str, name: &str) -> Result<Pod, ToolError> {
        if let Some(pod) = self.watch_cache.get().and_then(|c| c.pods.get(ns, name)) {
            return Ok(Pod::from(&*pod));
        }
        let api: Api<Pod> = Api::namespaced(self.cluster.client.clone(), ns);
        api.get(name).await.map_err(|e| ToolError::kube(format!("Pod {ns}/{name}"), e))
    }

    pub async fn pod_logs(&self, _caller: &Caller, input: PodLogsInput) -> Result<PodLogsOutput, ToolError> {
        const TOOL: &str = "pod_logs";
        let scope = &self.cluster.scope;
        kinds::namespace(TOOL, scope, &input.namespace)?;
        kinds::name(TOOL, "name", &input.name)?;
        let tail = kinds::cap(TOOL, "tail", input.tail.unwrap_or(100), 1, MAX_TAIL)?;
        let since = input.since_seconds.map(|s| kinds::cap(TOOL, "since_seconds", s, 1, 604_800)).transpose()?;
        let max_pods = kinds::cap(TOOL, "max_pods", input.max_pods.unwrap_or(3), 1, 10)? as usize;
        if let Some(c) = input.container.as_deref() {
            kinds::label(TOOL, "container", c)?;
        }
        let grep = match input.grep.as_deref().filter(|g| !g.is_empty()) {
            Some(g) if g.len() > 256 => return Err(ToolError::invalid(TOOL, "grep is longer than 256 characters")),
            Some(g) => Some(
                regex::RegexBuilder::new(g)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ToolError::invalid(TOOL, format!("grep is not a valid regular expression: {e}")))?,
            ),
            None => None,
        };
        let kind = input.kind.as_deref().filter(|k| !k.is_empty()).unwrap_or("Pod");
        let ns = input.namespace.as_str();
        let pods: Vec<Pod> = if kinds::resolve_one_of(TOOL, scope, kind, super::workload::WORKLOAD_KINDS)?.kind == "Pod"
        {
            // One pod: its containers are all that is needed (no owner chain), and the watch
            // store has them; only without it does this cost a GET before the log read.
            vec![self.pod(ns, &input.name).await?]
        } else {
            let mut pods = self.workload_tree(TOOL, ns, kind, &input.name).await?.pods;
            // Failing pods first: not ready, then most restarts.
            pods.sort_by_key(|p| {
                let s = super::workload::pod_summary(p);
                (s.ready, std::cmp::Reverse(s.restarts))
            });
            pods.truncate(max_pods);
            pods
        };
        let api: Api<Pod> = Api::namespaced(self.cluster.client.clone(), ns);
        let mut reads = Vec::new();
        for pod in &pods {
            let containers: Vec<String> = match &input.container {
                Some(c) => vec![c.clone()],
                None => pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect(),
            };
            reads.extend(containers.into_iter().map(|container| (pod.name_any(), container)));
        }
        // Every container's log at once: one round trip of wall time, not one per container.
        let grep = grep.as_ref();
        let read = |pod: String, container: String| {
            let api = &api;
            let lp = LogParams {
                container: Some(container.clone()),
                previous: input.previous,
                tail_lines: Some(tail),
                since_seconds: since,
                limit_bytes: Some(LIMIT_BYTES),
                ..LogParams::default()
            };
            async move {
                let (lines, error) = match api.logs(&pod, &lp).await {
                    Ok(text) => (
                        text.lines()
                            .filter(|l| grep.is_none_or(|g| g.is_match(l)))
                            .map(|l| crate::redact::redact_text(l).into_owned())
                            .collect(),
                        None,
                    ),
                    Err(kube::Error::Api(e)) if e.code == 400 || e.code == 404 => {
                        (Vec::new(), Some(crate::redact::redact_text(&e.message).into_owned()))
                    }
                    Err(e) => return Err(ToolError::kube(format!("logs of {ns}/{pod}"), e)),
                };
                Ok(ContainerLogs { pod, container, previous: input.previous, lines, error })
            }
        };
        let logs =
            futures::future::try_join_all(reads.into_iter().map(|(pod, container)| read(pod, container))).await?;
        Ok(PodLogsOutput { namespace: input.namespace, logs })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::identity::Role;
    use crate::tools::testing::{caller, shop_fixture, tools};

    /// The Go peer reads a pod's log in one round trip; so does kubemedic when its watch
    /// stores hold the pod (one GET more without them), whatever owns the pod.
    #[tokio::test]
    async fn one_pods_logs_cost_one_round_trip_with_the_watch_stores() {
        let api = shop_fixture();
        let (tools, _) = tools(&api);
        let viewer = caller(Role::Viewer);
        let args = json!({"namespace": "shop", "name": "web-aaa-1", "tail": 10});
        let cold = tools.call(&viewer, "pod_logs", args.clone()).await.unwrap();
        assert_eq!(
            api.requests(),
            ["GET /api/v1/namespaces/shop/pods/web-aaa-1", "GET /api/v1/namespaces/shop/pods/web-aaa-1/log"]
        );
        let pods: Vec<k8s_openapi::api::core::v1::Pod> = api.all_of("Pod");
        tools.watch_cache().set(Some(crate::tools::cached::tests::cache_with(pods)));
        api.requests.lock().unwrap().clear();
        let warm = tools.call(&viewer, "pod_logs", args).await.unwrap();
        assert_eq!(api.requests(), ["GET /api/v1/namespaces/shop/pods/web-aaa-1/log"]);
        assert_eq!(warm, cold, "the same answer from the store as from the apiserver");
        assert_eq!(warm["logs"][0]["container"], "web");
        assert!(warm["logs"][0]["lines"].as_array().is_some_and(|l| !l.is_empty()), "{warm}");

        // A pod that does not exist is still an error, not an empty answer.
        let err = tools.call(&viewer, "pod_logs", json!({"namespace": "shop", "name": "nope"})).await.unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    /// A workload's pods are read at once; the answer keeps the failing-first order.
    #[tokio::test]
    async fn a_workloads_logs_keep_failing_pods_first() {
        let api = shop_fixture();
        let (tools, _) = tools(&api);
        let out = tools
            .call(&caller(Role::Viewer), "pod_logs", json!({"namespace": "shop", "kind": "Deployment", "name": "web"}))
            .await
            .unwrap();
        let pods: Vec<&str> = out["logs"].as_array().unwrap().iter().map(|l| l["pod"].as_str().unwrap()).collect();
        assert_eq!(pods, ["web-bbb-1", "web-aaa-1"], "not ready first");
    }
}

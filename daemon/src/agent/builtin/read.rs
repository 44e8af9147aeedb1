//! The built-in runner's one read path: every read is a call of kubemedic's own
//! tools ([`Tools::call`], as the agent), the same calls MCP clients and the LLM
//! runner make, so each is scope-checked, redacted and audited like theirs. The
//! prompt workflow's steps and the gathering for the analyzers share one
//! [`Reader`]: a call made once (same tool, same arguments) is answered from
//! what it returned, so a diagnosis reads nothing twice.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::cluster::Scope;
use crate::model::identity::Role;
use crate::tools::{Caller, ToolError, Tools, Transport};

/// Most items one `list_resources` page returns.
const PAGE: i64 = 500;
/// Pages followed at most (a namespace with more objects of one kind is read in part).
const MAX_PAGES: usize = 20;

/// Tool calls made for one diagnosis, remembered by (tool, arguments).
pub struct Reader<'a> {
    tools: &'a Tools,
    caller: Caller,
    answered: Mutex<HashMap<String, Value>>,
}

impl<'a> Reader<'a> {
    pub fn new(tools: &'a Tools) -> Self {
        Self {
            tools,
            caller: Caller::new("kubemedic-agent", Role::Operator, Transport::Agent),
            answered: Mutex::default(),
        }
    }

    /// What the configured scope lets the agent see.
    pub fn scope(&self) -> &Scope {
        &self.tools.cluster().scope
    }

    /// Call `tool` once per distinct `args` (a failed call is tried again when asked again).
    pub async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        let key = format!("{tool} {args}");
        if let Some(v) = self.answered.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(v.clone());
        }
        let v = self.tools.call(&self.caller, tool, args).await?;
        self.answered.lock().unwrap_or_else(|e| e.into_inner()).insert(key, v.clone());
        Ok(v)
    }

    /// `get_resource`; `None` when the object does not exist.
    pub async fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, ToolError> {
        let mut args = json!({"kind": kind, "name": name});
        if !namespace.is_empty() {
            args["namespace"] = json!(namespace);
        }
        match self.call("get_resource", args).await {
            Ok(mut v) => Ok(Some(v["object"].take())),
            Err(ToolError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects of `list_resources` (every page), in `namespace` ("" = every visible one,
    /// or a cluster-scoped kind), narrowed by label and field selectors.
    pub async fn list(
        &self,
        kind: &str,
        namespace: &str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        let mut args = json!({"kind": kind, "objects": true, "limit": PAGE});
        if !namespace.is_empty() {
            args["namespace"] = json!(namespace);
        }
        if let Some(l) = labels.filter(|l| !l.is_empty()) {
            args["label_selector"] = json!(l);
        }
        if let Some(f) = fields.filter(|f| !f.is_empty()) {
            args["field_selector"] = json!(f);
        }
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut page = self.call("list_resources", args.clone()).await?;
            if let Value::Array(items) = page["objects"].take() {
                out.extend(items);
            }
            match page.get("continue").and_then(Value::as_str) {
                Some(token) => args["continue"] = json!(token),
                None => break,
            }
        }
        Ok(out)
    }

    /// `pod_logs` of one container, the redacted lines joined; `Err` when none could be read.
    pub async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        tail: i64,
    ) -> Result<String, ToolError> {
        let args =
            json!({"namespace": namespace, "name": pod, "container": container, "previous": previous, "tail": tail});
        let out = self.call("pod_logs", args).await?;
        let logs = out["logs"].as_array().cloned().unwrap_or_default();
        let Some(entry) = logs.iter().find(|l| l["container"] == container) else {
            return Err(ToolError::Unavailable { what: "logs", why: format!("no logs of {pod}/{container}") });
        };
        if let Some(err) = entry["error"].as_str() {
            return Err(ToolError::Unavailable { what: "logs", why: err.to_owned() });
        }
        let lines: Vec<&str> = entry["lines"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        Ok(lines.join("\n"))
    }
}

/// A typed object from what a tool returned (`None` when it does not decode).
pub fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::agent::{AgentConfig, Deps, Request};
    use crate::cluster::{Cluster, ClusterConfig, Scope};
    use crate::model::signal::WorkloadRef;
    use crate::telemetry::audit::AuditKind;
    use crate::tools::testing::{FakeApi, SECRET_VALUE, learn_fixture_secrets, shop_fixture, tools};

    /// The runner's `deps.cluster` answers nothing (an empty apiserver): a read beside the
    /// tools would find no Deployment. The tools serve the shop; the diagnosis is found
    /// from what they returned, every read is an audited tool call, and none is repeated.
    #[tokio::test]
    async fn the_builtin_runner_reads_only_through_the_tools_and_each_call_once() {
        learn_fixture_secrets();
        let shop = shop_fixture();
        let (tools, _sink) = tools(&shop);
        let audit = tools.audit().clone();
        let empty = FakeApi::default();
        let cluster = Cluster {
            name: "test".into(),
            client: empty.client(),
            scope: Scope::from_config(&ClusterConfig::default()),
        };
        let prompts =
            crate::prompts::Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts"))
                .expect("the repository's prompts");
        let mut deps = Deps::new(cluster, Default::default(), AgentConfig::default(), Arc::new(prompts)).unwrap();
        deps.tools = Some(tools);
        let mut request = Request::workload(WorkloadRef::new("Deployment", "shop", "web"), "test");
        request.allow_mutations = false;

        let d = super::super::diagnose(&deps, &request).await.expect("diagnosis");

        // The analyzers saw the pod state, the Secret's keys and the near key through the tools.
        assert!(d.root_cause.contains("passwrd"), "{}", d.root_cause);
        assert!(d.root_cause.contains("password") || d.advice.join(" ").contains("password"), "{d:?}");
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains(SECRET_VALUE), "a Secret value reached the diagnosis");

        let calls: Vec<_> = audit
            .recent(500)
            .into_iter()
            .filter(|r| r.kind == AuditKind::ToolCall && r.user == "kubemedic-agent" && r.transport == "agent")
            .collect();
        let tools_called: BTreeSet<&str> = calls.iter().map(|r| r.action.as_str()).collect();
        // The workflow's declared steps ran, and so did the reads for the analyzers.
        for step in ["describe_workload", "events", "rollout_status", "rollout_history", "decode_secret", "pod_logs"] {
            assert!(tools_called.contains(step), "step {step} not called: {tools_called:?}");
        }
        for read in ["get_resource", "list_resources"] {
            assert!(tools_called.contains(read), "{read} not called: {tools_called:?}");
        }
        let mut seen = BTreeSet::new();
        for r in &calls {
            assert!(seen.insert(format!("{} {}", r.action, r.args)), "called twice: {} {}", r.action, r.args);
        }
        // Events are read object by object (field selector), never as the namespace's whole list.
        let event_lists: Vec<_> =
            calls.iter().filter(|r| r.action == "list_resources" && r.args["kind"] == "Event").collect();
        assert!(!event_lists.is_empty(), "{calls:?}");
        assert!(
            event_lists
                .iter()
                .all(|r| r.args["field_selector"].as_str().is_some_and(|f| f.starts_with("involvedObject.uid="))),
            "{event_lists:?}"
        );
        // The Secret was read through get_resource (which drops its data), never listed with its objects.
        assert!(calls.iter().any(|r| r.action == "get_resource" && r.args["kind"] == "Secret"), "{calls:?}");
        assert!(
            !calls
                .iter()
                .any(|r| r.action == "list_resources" && r.args["kind"] == "Secret" && r.args["objects"] == true)
        );
    }
}

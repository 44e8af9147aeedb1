//! The tools: reads and mutations over the cluster, independent of MCP.
//!
//! One generic entry point, [`Tools::call`], serves both the MCP server and
//! the agent's built-in runner: it decodes and validates the typed input,
//! checks the caller's role, enforces the cluster scope (what is outside it
//! does not exist), runs the tool, redacts the result and writes one audit
//! record. Mutating tools never mutate: they build a proposal and hand it
//! to the approvals service; only [`Tools::decide`], called after a human
//! confirmed, approves (and so applies) one.

pub mod cached;
pub mod kinds;
pub mod logs;
pub mod mutate;
pub mod overview;
pub mod read;
pub mod secrets;
pub mod state;
pub mod workload;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::Cluster;
pub use crate::model::identity::{Caller, Role, Transport};
use crate::store::Store;
use crate::telemetry::audit::{AuditKind, AuditLog, AuditRecord};

pub use mutate::ProposalSink;

/// Why a tool call failed. Mapped to MCP errors only at the MCP boundary.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad arguments: unknown kind, invalid name, out-of-range cap, malformed JSON.
    #[error("invalid arguments for {tool}: {reason}")]
    InvalidInput { tool: String, reason: String },
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The caller's role is too low.
    #[error("{tool} needs the {needed:?} role; {user} has {has:?}")]
    Forbidden { tool: String, user: String, needed: Role, has: Role },
    /// The object does not exist or is outside the configured scope.
    #[error("{0} not found")]
    NotFound(String),
    /// A proposal was refused by policy or dry-run.
    #[error("{0}")]
    Refused(String),
    #[error("{what} is not available: {why}")]
    Unavailable { what: &'static str, why: String },
    #[error("Kubernetes API call failed ({op})")]
    Kube {
        op: String,
        #[source]
        source: kube::Error,
    },
    #[error("store access failed")]
    Store(#[source] crate::store::StoreError),
    #[error("approvals service failed: {0}")]
    Approvals(String),
    /// The apiserver's RBAC refused the caller (with `auth.impersonate`).
    #[error("{0}")]
    RbacDenied(String),
}

impl ToolError {
    pub(crate) fn invalid(tool: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput { tool: tool.to_owned(), reason: reason.into() }
    }

    pub(crate) fn kube(op: impl Into<String>, source: kube::Error) -> Self {
        // A 404 from the apiserver is a plain "not found" for the caller.
        if let kube::Error::Api(status) = &source
            && status.code == 404
        {
            return Self::NotFound(op.into());
        }
        Self::Kube { op: op.into(), source }
    }

    /// Short outcome word for audit and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } | Self::UnknownTool(_) => "invalid",
            Self::Forbidden { .. } | Self::RbacDenied(_) => "denied",
            Self::NotFound(_) => "not_found",
            Self::Refused(_) => "refused",
            _ => "error",
        }
    }
}

/// Static facts about one tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    pub name: &'static str,
    /// Lowest role that may call it.
    pub role: Role,
    /// Never changes anything (proposals included).
    pub read_only: bool,
    /// May lead to a cluster change (after approval).
    pub destructive: bool,
}

const fn spec(name: &'static str, role: Role, read_only: bool, destructive: bool) -> ToolSpec {
    ToolSpec { name, role, read_only, destructive }
}

/// Every tool [`Tools::call`] knows.
pub const TOOLS: &[ToolSpec] = &[
    spec("list_resources", Role::Viewer, true, false),
    spec("get_resource", Role::Viewer, true, false),
    spec("describe_workload", Role::Viewer, true, false),
    spec("events", Role::Viewer, true, false),
    spec("pod_logs", Role::Viewer, true, false),
    spec("rollout_status", Role::Viewer, true, false),
    spec("rollout_history", Role::Viewer, true, false),
    spec("decode_secret", Role::Viewer, true, false),
    spec("cluster_health", Role::Viewer, true, false),
    spec("workload_graph", Role::Viewer, true, false),
    spec("drift_check", Role::Viewer, true, false),
    spec("list_incidents", Role::Viewer, true, false),
    spec("list_proposals", Role::Viewer, true, false),
    spec("get_proposal", Role::Viewer, true, false),
    spec("wait_proposal", Role::Viewer, true, false),
    spec("propose_patch", Role::Operator, false, false),
    spec("rollout_restart", Role::Operator, false, true),
    spec("rollout_undo", Role::Operator, false, true),
    spec("scale", Role::Operator, false, true),
    spec("delete_pod", Role::Operator, false, true),
    spec("apply_proposal", Role::Approver, false, true),
];

/// Names of every tool, for prompt validation.
pub fn tool_names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

pub fn tool_spec(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Progress of a long operation: (done, total, message).
pub type ProgressFn = Arc<dyn Fn(f64, Option<f64>, String) + Send + Sync>;

/// The tools over one cluster.
#[derive(Clone)]
pub struct Tools {
    pub(crate) cluster: Cluster,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) audit: AuditLog,
    pub(crate) approvals: Option<Arc<dyn ProposalSink>>,
    pub(crate) policy: crate::policy::PolicyConfig,
    pub(crate) proposal_ttl_seconds: u64,
    pub(crate) drift: crate::drift::DriftConfig,
    /// The leader's watch stores, once synced; listings of the kinds they hold are served from them.
    pub(crate) watch_cache: crate::watch::SharedCache,
    /// Keys `decode_secret` fingerprints (per installation; random per process unless set).
    pub(crate) fingerprint_key: crate::redact::fingerprint::FingerprintKey,
    /// `auth.impersonate`: a person's calls go to the apiserver as them.
    pub(crate) impersonation: Option<Arc<crate::cluster::Impersonation>>,
}

impl Tools {
    pub fn new(cluster: Cluster, store: Option<Arc<dyn Store>>, audit: AuditLog) -> Self {
        Self {
            cluster,
            store,
            audit,
            approvals: None,
            policy: crate::policy::PolicyConfig::default(),
            proposal_ttl_seconds: 3600,
            drift: crate::drift::DriftConfig::default(),
            watch_cache: crate::watch::SharedCache::default(),
            fingerprint_key: crate::redact::fingerprint::FingerprintKey::random(),
            impersonation: None,
        }
    }

    /// `auth.impersonate`: reads by a person (MCP over stdio or HTTP) are sent as that person,
    /// bypassing kubemedic's watch stores, and an approval needs the approver's own RBAC.
    pub fn with_impersonation(mut self, impersonation: Arc<crate::cluster::Impersonation>) -> Self {
        self.impersonation = Some(impersonation);
        self
    }

    /// The impersonation `caller`'s calls go through: with `auth.impersonate`, for a person.
    pub(crate) fn impersonating(&self, caller: &Caller) -> Option<&crate::cluster::Impersonation> {
        self.impersonation.as_deref().filter(|_| caller.is_person())
    }

    /// These tools as `caller` sees the cluster: with impersonation and a person calling, a
    /// client acting as them and no watch stores (which hold what kubemedic may see); else as is.
    pub fn as_caller(&self, caller: &Caller) -> Result<std::borrow::Cow<'_, Self>, ToolError> {
        let Some(imp) = self.impersonating(caller) else { return Ok(std::borrow::Cow::Borrowed(self)) };
        let client = imp
            .client(&caller.user, &caller.groups)
            .map_err(|e| ToolError::Unavailable { what: "impersonating client", why: e.to_string() })?;
        let mut tools = self.clone();
        tools.cluster.client = client;
        tools.watch_cache = crate::watch::SharedCache::default();
        Ok(std::borrow::Cow::Owned(tools))
    }

    /// The installation's key for `decode_secret` fingerprints.
    pub fn with_fingerprint_key(mut self, key: crate::redact::fingerprint::FingerprintKey) -> Self {
        self.fingerprint_key = key;
        self
    }

    /// Where mutating tools hand their proposals.
    pub fn with_approvals(mut self, approvals: Arc<dyn ProposalSink>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    pub fn with_policy(mut self, policy: crate::policy::PolicyConfig, ttl_seconds: u64) -> Self {
        self.policy = policy;
        self.proposal_ttl_seconds = ttl_seconds;
        self
    }

    /// Where `drift_check` takes the desired state from.
    pub fn with_drift(mut self, drift: crate::drift::DriftConfig) -> Self {
        self.drift = drift;
        self
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// The approvals service's stream of proposal transitions, when it has one.
    pub fn proposal_updates(&self) -> Option<tokio::sync::broadcast::Receiver<crate::model::proposal::Proposal>> {
        self.approvals.as_ref().and_then(|a| a.updates())
    }

    /// How long a proposal waits for a decision (`approvals.ttl_seconds`).
    pub fn proposal_ttl_seconds(&self) -> u64 {
        self.proposal_ttl_seconds
    }

    /// Call a tool by name with JSON arguments.
    pub async fn call(&self, caller: &Caller, name: &str, args: Value) -> Result<Value, ToolError> {
        self.call_with_progress(caller, name, args, None).await
    }

    /// [`Tools::call`], reporting progress of long operations.
    pub async fn call_with_progress(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
        progress: Option<ProgressFn>,
    ) -> Result<Value, ToolError> {
        let started = Instant::now();
        let span = tracing::info_span!("tool", tool = name, user = %caller.user, transport = caller.transport.as_str(), cluster = %self.cluster.name);
        let impersonating = self.impersonating(caller).is_some();
        let run = async {
            let tools = self.as_caller(caller)?;
            match tools.dispatch(caller, name, args.clone(), progress).await {
                // The cluster refused the person themselves: say so as a refusal, not a failure.
                Err(ToolError::Kube { op, source: kube::Error::Api(status) })
                    if impersonating && status.code == 403 =>
                {
                    Err(ToolError::RbacDenied(format!(
                        "{op} as {}: the cluster's RBAC refused it: {}",
                        caller.user, status.message
                    )))
                }
                other => other,
            }
        };
        let result = tracing::Instrument::instrument(run, span).await;
        let target = target_of(&args);
        let mut record = AuditRecord::new(AuditKind::ToolCall, &caller.user, caller.transport.as_str(), name)
            .args(args)
            .duration(started.elapsed());
        if let Some(t) = target {
            record = record.target(t);
        }
        if impersonating {
            record = record.impersonated(&caller.user, &caller.groups);
        }
        record = match &result {
            Ok(v) => match v.get("proposal").and_then(|p| p.get("state")).and_then(Value::as_str) {
                Some(state) => record.outcome(state, ""),
                None => record.outcome("ok", ""),
            },
            Err(e) => record.outcome(e.outcome(), &crate::model::error::error_chain(e)),
        };
        self.audit.record(record);
        match &result {
            Ok(_) => tracing::debug!(tool = name, user = %caller.user, "tool call done"),
            Err(e) => tracing::info!(tool = name, user = %caller.user, error = %e, "tool call failed"),
        }
        result
    }

    async fn dispatch(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
        progress: Option<ProgressFn>,
    ) -> Result<Value, ToolError> {
        let spec = tool_spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        require(caller, name, spec.role)?;
        let args = if args.is_null() { Value::Object(Default::default()) } else { args };
        macro_rules! run {
            ($f:ident) => {{
                let input = decode(name, args)?;
                to_value(self.$f(caller, input).await?)
            }};
        }
        match name {
            "list_resources" => run!(list_resources),
            "get_resource" => run!(get_resource),
            "describe_workload" => run!(describe_workload),
            "events" => run!(events),
            "pod_logs" => run!(pod_logs),
            "rollout_status" => {
                let input = decode(name, args)?;
                to_value(self.rollout_status(caller, input, progress).await?)
            }
            "rollout_history" => run!(rollout_history),
            "decode_secret" => run!(decode_secret),
            "cluster_health" => run!(cluster_health),
            "workload_graph" => run!(workload_graph),
            "drift_check" => run!(drift_check),
            "list_incidents" => run!(list_incidents),
            "list_proposals" => run!(list_proposals),
            "get_proposal" => run!(get_proposal),
            "wait_proposal" => {
                let input = decode(name, args)?;
                to_value(self.wait_proposal(caller, input, progress).await?)
            }
            "propose_patch" => run!(propose_patch),
            "rollout_restart" => run!(rollout_restart),
            "rollout_undo" => run!(rollout_undo),
            "scale" => run!(scale),
            "delete_pod" => run!(delete_pod),
            "apply_proposal" => run!(apply_proposal),
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}

/// Refuse a caller below `needed`.
pub(crate) fn require(caller: &Caller, tool: &str, needed: Role) -> Result<(), ToolError> {
    if caller.role >= needed {
        Ok(())
    } else {
        Err(ToolError::Forbidden { tool: tool.to_owned(), user: caller.user.clone(), needed, has: caller.role })
    }
}

/// Decode typed input; serde's message names the offending field.
fn decode<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    if !args.is_object() {
        return Err(ToolError::invalid(tool, format!("arguments must be a JSON object, got {}", json_type(&args))));
    }
    serde_json::from_value(args).map_err(|e| ToolError::invalid(tool, e.to_string()))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn to_value<T: Serialize>(out: T) -> Result<Value, ToolError> {
    serde_json::to_value(out).map_err(|e| ToolError::Unavailable { what: "result encoding", why: e.to_string() })
}

/// `namespace/Kind/name` (or the proposal id) from the arguments, for the audit record.
fn target_of(args: &Value) -> Option<String> {
    let s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    if !s("id").is_empty() {
        return Some(s("id").to_owned());
    }
    let (ns, kind, name) = (s("namespace"), s("kind"), s("name"));
    match (ns.is_empty(), name.is_empty()) {
        (_, true) if ns.is_empty() => None,
        (false, true) => Some(ns.to_owned()),
        _ => Some([ns, kind, name].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("/")),
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        let viewer = Caller::new("v", Role::Viewer, Transport::Http);
        assert!(require(&viewer, "scale", Role::Operator).is_err());
        assert!(require(&viewer, "events", Role::Viewer).is_ok());
        let err = require(&viewer, "scale", Role::Operator).unwrap_err();
        assert_eq!(err.to_string(), "scale needs the Operator role; v has Viewer");
    }

    #[test]
    fn audit_target() {
        assert_eq!(target_of(&serde_json::json!({"namespace":"a","kind":"Pod","name":"p"})).unwrap(), "a/Pod/p");
        assert_eq!(target_of(&serde_json::json!({"id":"x"})).unwrap(), "x");
        assert_eq!(target_of(&serde_json::json!({"namespace":"a"})).unwrap(), "a");
        assert!(target_of(&serde_json::json!({})).is_none());
    }
}

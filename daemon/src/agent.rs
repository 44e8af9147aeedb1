//! The agent: runs an incident's prompt workflow and returns a structured
//! [`Diagnosis`]. Two runners share one interface ([`Runner`]): the built-in
//! diagnostician (default, deterministic, no LLM) and the LLM runner, which
//! falls back to the built-in result when the model does not deliver.
//!
//! Proposals in a diagnosis have all passed [`crate::policy::prepare`]
//! (policy and server-side dry-run); what failed is in `refused`.

pub mod builtin;
pub mod llm;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
pub use crate::model::diagnosis::{Diagnosis, Evidence, Gap, RefusedProposal};
use crate::model::incident::Incident;
use crate::model::signal::{Signal, WorkloadRef};
use crate::policy::PolicyConfig;

/// Which runner diagnoses incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// The deterministic built-in diagnostician.
    #[default]
    Builtin,
    /// A language model through the OpenAI-compatible or Anthropic API.
    Llm,
}

/// Which runner diagnoses incidents, and its budgets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// `builtin` (default) or `llm` (needs the `llm` section).
    pub runner: RunnerKind,
    /// Incidents diagnosed at the same time by this replica (1-64). A diagnosis mostly waits
    /// on the apiserver (reads, server-side dry-runs), so a burst of incidents clears faster
    /// with more of them; each reads the cluster, so more also means more apiserver load.
    pub workers: usize,
    /// Seconds one built-in run may take before it is abandoned.
    pub timeout_seconds: u64,
    /// Log lines read per crashed container.
    pub log_lines: i64,
    /// Prompt run when the caller names none.
    pub default_prompt: String,
    /// The LLM runner's provider, model and budgets.
    pub llm: Option<llm::LlmConfig>,
    /// With `runner: builtin` and an `llm` section: when the built-in result's confidence is
    /// below this (a cause it could not determine is 0.2), the LLM runner continues from the
    /// built-in evidence, and the diagnosis names both runners. Absent: no hand-over.
    pub hand_over_below: Option<f32>,
}

/// Concurrent diagnoses per replica unless `agent.workers` says otherwise.
pub const DEFAULT_WORKERS: usize = 2;
/// The most `agent.workers` may ask for.
pub const MAX_WORKERS: usize = 64;

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            runner: RunnerKind::Builtin,
            workers: DEFAULT_WORKERS,
            timeout_seconds: 60,
            log_lines: 50,
            default_prompt: "diagnose-workload".into(),
            llm: None,
            hand_over_below: None,
        }
    }
}

impl AgentConfig {
    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_seconds == 0 {
            return Err("agent.timeout_seconds must be > 0".into());
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(format!("agent.workers must be between 1 and {MAX_WORKERS}, got {}", self.workers));
        }
        if let Some(t) = self.hand_over_below {
            if !(0.0..=1.0).contains(&t) {
                return Err(format!("agent.hand_over_below must be between 0 and 1, got {t}"));
            }
            if self.llm.is_none() {
                return Err("agent.hand_over_below needs the agent.llm section (the runner handed over to)".into());
            }
        }
        match (&self.runner, &self.llm) {
            (RunnerKind::Llm, None) => Err("agent.runner is llm but the agent.llm section is missing".into()),
            (_, Some(l)) => l.validate(),
            _ => Ok(()),
        }
    }
}

/// What to diagnose: an incident, or a workload named by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub incident_id: Option<String>,
    pub workload: WorkloadRef,
    /// The symptom that opened the incident, e.g. `CrashLoopBackOff`.
    pub reason: Option<String>,
    /// Prompt workflow to run; empty = the configured default.
    pub prompt: String,
    pub arguments: BTreeMap<String, String>,
    /// Whether the rule allows proposals at all.
    pub allow_mutations: bool,
    /// Who may approve the proposals.
    pub approvers: Vec<String>,
    /// Recorded on proposals (`rule:<name>`, a user, `cli`).
    pub requested_by: String,
    /// The signal that opened the incident, when there is one. An alert's labels and
    /// annotations are untrusted data: analyzers read labels as coordinates and quote text.
    pub signal: Option<Signal>,
}

impl Request {
    /// A manual diagnosis of one workload (CLI, MCP, demo).
    pub fn workload(workload: WorkloadRef, requested_by: &str) -> Self {
        Self {
            incident_id: None,
            workload,
            reason: None,
            prompt: String::new(),
            arguments: BTreeMap::new(),
            allow_mutations: true,
            approvers: Vec::new(),
            requested_by: requested_by.to_owned(),
            signal: None,
        }
    }

    /// A diagnosis of what one signal (an alert taken by the intake) is about.
    pub fn from_signal(signal: Signal, requested_by: &str) -> Self {
        let mut request = Self::workload(signal.subject().clone(), requested_by);
        request.reason = Some(signal.reason.clone());
        request.signal = Some(signal);
        request
    }
}

impl From<&Incident> for Request {
    fn from(i: &Incident) -> Self {
        Self {
            incident_id: Some(i.id.clone()),
            workload: i.workload.clone(),
            reason: Some(i.reason.clone()),
            prompt: i.prompt.clone(),
            arguments: i.arguments.clone(),
            allow_mutations: i.allow_mutations,
            approvers: i.approvers.clone(),
            requested_by: format!("rule:{}", i.rule),
            signal: Some(i.first_signal.clone()),
        }
    }
}

/// Everything a runner needs; built once at start-up and shared by every run.
#[derive(Clone)]
pub struct Deps {
    pub cluster: Cluster,
    pub policy: PolicyConfig,
    pub config: AgentConfig,
    /// Loaded prompt workflows (may be empty: the built-in runner then runs its own steps).
    pub prompts: Arc<crate::prompts::Catalog>,
    /// Connects the LLM runner to kubemedic's own MCP server (in-process);
    /// `None` = the LLM runner has only the extra servers' tools.
    pub mcp: Option<llm::mcp::Connector>,
    /// kubemedic's tools: when set, the built-in runner executes the prompt's
    /// declared steps through them (audited, redacted, scope-checked).
    pub tools: Option<crate::tools::Tools>,
    /// The configured runner, built once (the LLM runner holds its HTTP client).
    pub runner: Arc<dyn Runner>,
}

impl Deps {
    /// Deps for `config.runner`, from sections that were validated with the whole
    /// configuration when it was loaded.
    pub fn new(
        cluster: Cluster,
        policy: PolicyConfig,
        config: AgentConfig,
        prompts: Arc<crate::prompts::Catalog>,
    ) -> Result<Self, AgentError> {
        let runner = runner(&config)?.into();
        Ok(Self { cluster, policy, config, prompts, mcp: None, tools: None, runner })
    }

    /// Give the runners kubemedic's own MCP server (the one built for the process):
    /// the built-in runner executes the workflow steps through its tools, the LLM runner
    /// calls it in-process, acting as the agent (operator role at most).
    pub fn with_server(mut self, server: &crate::mcp::KubemedicServer) -> Self {
        self.tools = Some(server.tools().clone());
        self.mcp = Some(llm::mcp::kubemedic(server.clone()));
        self
    }
}

/// Why a run produced no diagnosis at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read {what}")]
    Read {
        what: String,
        #[source]
        source: crate::tools::ToolError,
    },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} is outside kubemedic's configured scope")]
    OutOfScope(String),
    /// A namespace or name (from an alert label, a rule, a caller) the apiserver would refuse.
    #[error("cannot diagnose: {0}")]
    InvalidTarget(#[from] crate::names::NameError),
    #[error("kind {0} cannot be diagnosed (Deployment, StatefulSet, DaemonSet, Job, Pod or Node)")]
    Unsupported(String),
    #[error("diagnosis of {0} did not finish within {1}s")]
    Timeout(String, u64),
    #[error("invalid agent configuration: {0}")]
    Config(String),
}

impl AgentError {
    /// Whether the run failed on the cluster rather than on the request: the apiserver
    /// did not answer (or not in time), so the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Read { .. } | Self::Timeout(..))
    }
}

/// One way of turning a request into a diagnosis.
#[async_trait]
pub trait Runner: Send + Sync {
    /// `builtin` or `llm:<model>`.
    fn name(&self) -> String;
    async fn diagnose(&self, deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError>;
}

/// The runner the configuration chooses.
pub fn runner(config: &AgentConfig) -> Result<Box<dyn Runner>, AgentError> {
    match (config.runner, &config.llm) {
        (RunnerKind::Builtin, Some(l)) if config.hand_over_below.is_some() => Ok(Box::new(HandOver {
            below: config.hand_over_below.unwrap_or_default(),
            llm: llm::Llm::new(l.clone()).map_err(AgentError::Config)?,
        })),
        (RunnerKind::Builtin, _) => Ok(Box::new(builtin::Builtin)),
        (RunnerKind::Llm, Some(l)) => Ok(Box::new(llm::Llm::new(l.clone()).map_err(AgentError::Config)?)),
        (RunnerKind::Llm, None) => Err(AgentError::Config("agent.runner is llm but agent.llm is missing".into())),
    }
}

/// The built-in diagnostician first; below a confidence threshold the LLM runner continues
/// from what it gathered (`agent.hand_over_below`).
struct HandOver {
    below: f32,
    llm: llm::Llm,
}

#[async_trait]
impl Runner for HandOver {
    fn name(&self) -> String {
        format!("builtin, then {} below confidence {}", self.llm.name(), self.below)
    }

    async fn diagnose(&self, deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError> {
        let first = builtin::diagnose(deps, request).await?;
        if first.confidence >= self.below {
            return Ok(first);
        }
        tracing::info!(
            confidence = first.confidence,
            below = self.below,
            "handing the diagnosis over to the LLM runner"
        );
        Ok(self.llm.continue_from(deps, request, first).await)
    }
}

/// Diagnose once with the configured runner.
#[tracing::instrument(skip_all, fields(workload = %request.workload, incident = ?request.incident_id))]
pub async fn run(deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError> {
    let runner = &deps.runner;
    let started = std::time::Instant::now();
    let result = runner.diagnose(deps, request).await;
    match &result {
        Ok(d) => tracing::info!(
            runner = %d.runner, proposals = d.proposals.len(), refused = d.refused.len(),
            ms = started.elapsed().as_millis() as u64, "diagnosed: {}", d.summary
        ),
        Err(e) => tracing::warn!(error = %crate::model::error::error_chain(e), "diagnosis failed"),
    }
    result
}

/// Parse `NAMESPACE/KIND/NAME` (or `Node/NAME` for a node).
pub fn parse_target(s: &str) -> Result<WorkloadRef, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let (ns, kind, name) = match parts.as_slice() {
        [ns, kind, name] => (*ns, *kind, *name),
        [kind, name] if kind.eq_ignore_ascii_case("node") => ("", *kind, *name),
        _ => return Err(format!("expected NAMESPACE/KIND/NAME (or Node/NAME), got {s:?}")),
    };
    let kind = builtin::objects::diagnosable(kind).ok_or_else(|| {
        format!(
            "kind {kind:?} cannot be diagnosed (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod, Service, \
             Ingress, PersistentVolumeClaim, CronJob, HorizontalPodAutoscaler or Node)"
        )
    })?;
    let namespaced = kind != "Node";
    if namespaced {
        crate::names::namespace(ns).map_err(|e| format!("{s:?}: {e}"))?;
    }
    crate::names::object_name(name).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(WorkloadRef::new(kind, if namespaced { ns } else { "" }, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("shop/deployment/api").unwrap(), WorkloadRef::new("Deployment", "shop", "api"));
        assert_eq!(parse_target("Node/sim-node-2").unwrap(), WorkloadRef::new("Node", "", "sim-node-2"));
        assert!(parse_target("api").is_err());
        assert!(parse_target("shop/Secret/x").unwrap_err().contains("cannot be diagnosed"));
        assert!(parse_target("shop/Deployment/a b").is_err());
    }

    #[test]
    fn hostile_cli_targets_are_refused_naming_the_field() {
        for (target, field) in [
            ("../Deployment/api", "namespace"),
            ("Shop/Deployment/api", "namespace"),
            ("shop /Deployment/api", "namespace"),
            ("/Deployment/api", "namespace"),
            ("shop/Deployment/a%2Fb", "name"),
            ("shop/Deployment/..", "name"),
            ("shop/Deployment/", "name"),
            ("shop/Deployment/\u{0430}pi", "name"),
            ("Node/Node-1", "name"),
        ] {
            let err = parse_target(target).unwrap_err();
            assert!(err.contains(&format!("{field} ")), "{target:?}: {err}");
        }
        let long = format!("shop/Deployment/{}", "a".repeat(254));
        assert!(parse_target(&long).unwrap_err().contains("at most 253"));
    }

    #[test]
    fn config_requires_llm_section_for_llm_runner() {
        let c: AgentConfig = serde_yaml_ng::from_str("runner: llm\n").unwrap();
        assert!(c.validate().unwrap_err().contains("llm section"));
        assert!(AgentConfig::default().validate().is_ok());
        assert!(serde_yaml_ng::from_str::<AgentConfig>("runnr: builtin\n").is_err());
    }

    #[test]
    fn workers_are_bounded() {
        assert_eq!(AgentConfig::default().workers, DEFAULT_WORKERS);
        let c: AgentConfig = serde_yaml_ng::from_str("workers: 16\n").unwrap();
        assert_eq!((c.workers, c.validate()), (16, Ok(())));
        for bad in ["workers: 0\n", "workers: 65\n"] {
            let c: AgentConfig = serde_yaml_ng::from_str(bad).unwrap();
            assert!(c.validate().unwrap_err().contains("agent.workers must be between 1 and 64"), "{bad}");
        }
        assert!(serde_yaml_ng::from_str::<AgentConfig>("workers: -1\n").is_err(), "a negative count is refused");
    }
}

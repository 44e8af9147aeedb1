//! The agent: runs an incident's prompt workflow and returns a structured
//! [`Diagnosis`]. Two runners share one interface: the built-in
//! diagnostician (default, deterministic, no LLM) and the LLM runner.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::approvals::Proposal;
use crate::signal::WorkloadRef;

/// One piece of evidence and the tool call that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// Tool that was called (`describe_workload`, `pod_logs`, ...).
    pub tool: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// What it showed, in one or two sentences (redacted).
    pub finding: String,
}

/// A change the runner wanted but that policy or dry-run refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RefusedProposal {
    pub target: String,
    pub reason: String,
}

/// The outcome of a workflow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnosis {
    pub incident_id: Option<String>,
    pub workload: WorkloadRef,
    /// One-line summary for humans.
    pub summary: String,
    /// The root cause (not the symptom).
    pub root_cause: String,
    pub evidence: Vec<Evidence>,
    /// 0.0 – 1.0.
    pub confidence: f32,
    /// Mermaid flowchart of the causal chain.
    pub mermaid: String,
    /// Proposals that passed policy and dry-run.
    #[serde(default)]
    pub proposals: Vec<Proposal>,
    /// Proposals that were refused, with why.
    #[serde(default)]
    pub refused: Vec<RefusedProposal>,
    /// What a human must do when no safe patch exists (e.g. create a Secret).
    #[serde(default)]
    pub advice: Vec<String>,
    /// `builtin` or `llm:<model>`.
    pub runner: String,
}

/// Which runner diagnoses incidents.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {}

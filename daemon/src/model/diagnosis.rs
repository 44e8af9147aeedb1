//! What a diagnosis produces: the root cause, the evidence that shows it, the proposals
//! that passed policy and dry-run, the ones refused, and what could not be looked at.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::proposal::Proposal;
use crate::model::signal::WorkloadRef;

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
    /// How the run went (budgets hit, fallbacks taken, steps skipped), for operators.
    #[serde(default)]
    pub notes: Vec<String>,
    /// What could not be gathered, typed so that callers can tell a read that may work
    /// later from one that never will. Also in `notes` as text; not part of the output.
    #[serde(skip)]
    #[schemars(skip)]
    pub gaps: Vec<Gap>,
}

/// Something a run could not look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// A read failed (permissions, apiserver down or unreachable): `what`, and why.
    Unread { what: String, why: String },
    /// The configured scope hides it: waiting does not change that.
    OutOfScope { what: String },
}

impl Gap {
    pub fn unread(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Unread { what: what.into(), why: why.into() }
    }

    /// Whether trying again later may close the gap.
    pub fn may_clear(&self) -> bool {
        matches!(self, Self::Unread { .. })
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unread { what, why } => write!(f, "{what}: {why}"),
            Self::OutOfScope { what } => write!(f, "{what} are outside the configured scope"),
        }
    }
}

impl Diagnosis {
    /// The diagnosis for a terminal: summary, cause, evidence, proposals with their diffs, advice.
    pub fn render_text(&self) -> String {
        let mut out = format!("{}\n\n", self.summary);
        out.push_str(&format!(
            "Root cause: {}\nConfidence: {:.2}  (runner: {})\n",
            self.root_cause, self.confidence, self.runner
        ));
        if !self.evidence.is_empty() {
            out.push_str("\nEvidence:\n");
            for e in &self.evidence {
                out.push_str(&format!("  - [{}] {}\n", e.tool, e.finding));
            }
        }
        out.push_str(&format!("\nCausal chain (Mermaid):\n{}\n", self.mermaid.trim_end()));
        for p in &self.proposals {
            out.push_str(&format!(
                "\nProposal {} ({:?} risk) for {} {}/{} at resourceVersion {}:\n  {}\n",
                p.id,
                p.risk,
                p.target.kind,
                p.target.namespace,
                p.target.name,
                p.target.resource_version.as_deref().unwrap_or("?"),
                p.rationale
            ));
            out.push_str(&p.diff);
        }
        for r in &self.refused {
            out.push_str(&format!("\nRefused proposal for {}: {}\n", r.target, r.reason));
        }
        if !self.advice.is_empty() {
            out.push_str("\nAdvice:\n");
            for a in &self.advice {
                out.push_str(&format!("  - {a}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        out
    }
}

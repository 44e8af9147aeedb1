//! Approvals: the proposal lifecycle, the ways a human decides (Slack
//! buttons, MCP elicitation, CLI/HTTP), and exactly-once apply + verify.

pub mod proposal;

pub use proposal::{Action, PatchType, Proposal, ProposalEvent, ProposalState, Risk, TargetRef};
pub mod slack;

use serde::Deserialize;

/// Approval settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Seconds a proposal stays open before it expires.
    pub ttl_seconds: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self { ttl_seconds: 3600 }
    }
}

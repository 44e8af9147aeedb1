//! Who is calling: the caller's identity, how it reached kubemedic, and its role. The
//! authenticators (`auth`) produce these; every tool, API and approval checks them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Roles, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and proposes.
    Operator,
    /// Approves and applies.
    Approver,
    /// Everything, including revealing secret values.
    Admin,
}

/// How a caller reached the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
    /// The daemon's own agent (built-in runner or LLM runner).
    Agent,
    /// In-process tests and commands.
    Internal,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
            Self::Agent => "agent",
            Self::Internal => "internal",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token name, OIDC subject, stdio user, or `kubemedic` for the agent.
    pub user: String,
    pub role: Role,
    pub transport: Transport,
    /// The user's groups (OIDC groups claim, or configured for a static token or stdio); with
    /// `auth.impersonate` they are sent to the apiserver with the user.
    pub groups: Vec<String>,
}

impl Caller {
    pub fn new(user: impl Into<String>, role: Role, transport: Transport) -> Self {
        Self { user: user.into(), role, transport, groups: Vec::new() }
    }

    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// A person reaching kubemedic over MCP (stdio or HTTP), as opposed to kubemedic's own
    /// agent or an internal call: the caller impersonation applies to.
    pub fn is_person(&self) -> bool {
        matches!(self.transport, Transport::Stdio | Transport::Http)
    }
}

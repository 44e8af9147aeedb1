//! Who is calling: bearer tokens (stored as SHA-256 hashes) or OIDC JWTs
//! over HTTP, a configured local user on stdio; roles gate every tool.

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

/// Authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User name recorded for stdio sessions.
    pub stdio_user: String,
    /// Role of stdio sessions.
    pub stdio_role: Role,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { stdio_user: std::env::var("USER").unwrap_or_else(|_| "local".into()), stdio_role: Role::Viewer }
    }
}

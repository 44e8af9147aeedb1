//! The MCP surface (resources, tools, prompts), independent of transport;
//! stdio and streamable HTTP are a few lines each.

/// Authentication moved to the `auth` adapter (MCP, the approvals API and the webhook share it).
pub use crate::auth;
pub mod budget;
pub mod catalog;
pub mod discovery;
pub mod follow;
pub mod http;
pub mod resources;
pub mod server;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;

pub use server::KubemedicServer;

use crate::tools::Tools;

/// The MCP surface's own settings (`mcp:` in the config file).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Largest tool result, in bytes of JSON text; a bigger one is cut at a record
    /// boundary and says how to get the rest.
    pub max_result_bytes: usize,
    /// Offer no mutating tool at all (not even to an approver); `kubemedic mcp --read-only` too.
    pub read_only: bool,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self { max_result_bytes: budget::DEFAULT_MAX_RESULT_BYTES, read_only: false }
    }
}

impl McpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_result_bytes < budget::MIN_MAX_RESULT_BYTES {
            return Err(format!(
                "max_result_bytes is {}; it must be at least {} (room for one record and the note)",
                self.max_result_bytes,
                budget::MIN_MAX_RESULT_BYTES
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum McpSetupError {
    #[error("{0}")]
    Server(String),
}

/// A fresh random key for sealing confirmation state between MCP rounds.
/// Per process: a confirmation must finish on the replica that started it.
pub fn random_state_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).expect("system randomness");
    key
}

/// The process's one MCP server: HTTP sessions, stdio and the agent's in-process client
/// share it (and its state key). The result budget is the default until
/// [`KubemedicServer::with_max_result_bytes`]; read-only is applied per surface
/// ([`KubemedicServer::read_only`]) since the agent's own client still proposes.
pub fn build_server(tools: Tools, prompts: crate::prompts::Catalog) -> Result<KubemedicServer, McpSetupError> {
    KubemedicServer::new(tools, prompts, &random_state_key()).map_err(McpSetupError::Server)
}

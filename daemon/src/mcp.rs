//! The MCP surface (resources, tools, prompts), independent of transport;
//! stdio and streamable HTTP are a few lines each.

/// Authentication moved to the `auth` adapter (MCP, the approvals API and the webhook share it).
pub use crate::auth;
pub mod catalog;
pub mod http;
pub mod resources;
pub mod server;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;

pub use server::KubemedicServer;

use crate::tools::Tools;

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
/// share it (and its state key).
pub fn build_server(tools: Tools, prompts: crate::prompts::Catalog) -> Result<KubemedicServer, McpSetupError> {
    KubemedicServer::new(tools, prompts, &random_state_key()).map_err(McpSetupError::Server)
}

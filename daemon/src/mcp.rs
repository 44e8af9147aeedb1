//! The MCP surface (resources, tools, prompts), independent of transport;
//! stdio and streamable HTTP are a few lines each.

pub mod auth;
pub mod catalog;
pub mod http;
pub mod resources;
pub mod server;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use server::KubemedicServer;

use crate::config::Config;
use crate::tools::{ProposalSink, Tools};

#[derive(Debug, thiserror::Error)]
pub enum McpSetupError {
    #[error("cannot load prompts")]
    Prompts(#[source] crate::prompts::PromptError),
    #[error("cannot open the audit log")]
    Audit(#[source] crate::telemetry::audit::AuditError),
    #[error("cannot load the fingerprint key")]
    Fingerprint(#[source] crate::redact::fingerprint::FingerprintError),
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

/// Build the server from the configuration and already-connected parts
/// (the same for stdio and for `kubemedic run`).
pub fn build_server(
    config: &Config,
    cluster: crate::cluster::Cluster,
    store: Option<Arc<dyn crate::store::Store>>,
    approvals: Option<Arc<dyn ProposalSink>>,
    audit: crate::telemetry::audit::AuditLog,
) -> Result<KubemedicServer, McpSetupError> {
    let prompts = crate::prompts::Catalog::load(&config.prompts_dir).map_err(McpSetupError::Prompts)?;
    let key = crate::redact::fingerprint::FingerprintKey::load_or_create(&config.state_dir)
        .map_err(McpSetupError::Fingerprint)?;
    let mut tools = Tools::new(cluster, store, audit)
        .with_fingerprint_key(key)
        .with_policy(config.policy.clone(), config.approvals.ttl_seconds)
        .with_drift(config.drift.clone());
    if let Some(a) = approvals {
        tools = tools.with_approvals(a);
    }
    KubemedicServer::new(tools, prompts, &random_state_key()).map_err(McpSetupError::Server)
}

//! The event bus: every incident, proposal, decision, drift report and
//! audit record is published on `kubemedic.>` subjects when NATS is configured.

use serde::Deserialize;

/// NATS JetStream settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
}

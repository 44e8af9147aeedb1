//! Slack: proposals posted with Approve / Reject buttons, signed
//! interaction requests verified.

use serde::Deserialize;

/// Slack app settings. Token and signing secret come from env vars, never the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Channel id to post proposals to.
    pub channel: String,
}

//! Drift reports: live objects against their desired state.

use serde::Deserialize;

/// Drift report schedule and sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Cron schedule (five or six fields), default nightly at 02:00.
    pub schedule: String,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self { schedule: "0 2 * * *".into() }
    }
}

//! The Alertmanager webhook receiver (payload version 4).

use serde::Deserialize;

/// Alertmanager receiver settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {}

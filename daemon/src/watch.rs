//! Cluster watchers: reflector stores that turn state changes into signals.

use serde::Deserialize;

/// Watcher settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {}

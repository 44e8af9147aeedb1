//! The patch policy every proposal passes before a human sees it.

use serde::Deserialize;

/// What proposals may change.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {}

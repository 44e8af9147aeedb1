//! Signals moved to [`crate::model::signal`]; re-exported here for the paths that name them.

pub use crate::model::signal::*;

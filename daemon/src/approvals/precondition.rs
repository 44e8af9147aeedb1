//! The precondition fingerprint moved to [`crate::model::precondition`]; re-exported here
//! for the paths that name it.

pub use crate::model::precondition::*;

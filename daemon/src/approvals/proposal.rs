//! The proposal and its state machine moved to [`crate::model::proposal`]; re-exported here
//! for the paths that name them.

pub use crate::model::proposal::*;

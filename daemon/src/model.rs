//! The plain types every layer shares, and their pure state machines: what intake observes
//! ([`signal`]), what it folds signals into ([`incident`]), what a diagnosis finds
//! ([`diagnosis`]), the change it proposes and that change's lifecycle ([`proposal`],
//! [`precondition`]), who is asking ([`identity`]) and the error helpers ([`error`]).
//!
//! This layer imports nothing of the crate above it (the architecture test keeps it so):
//! a type two services share lives here, never inside one of them.

pub mod diagnosis;
pub mod error;
pub mod identity;
pub mod incident;
pub mod precondition;
pub mod proposal;
pub mod signal;

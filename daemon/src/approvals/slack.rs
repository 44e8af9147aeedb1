//! Slack for the approvals service: posting proposals (the [`outbox`]) and acting on
//! clicks. The Web API client, request signing, Block Kit and payload parsing are the
//! [`crate::slack`] adapter, re-exported here for the paths that name them.

pub mod outbox;

pub use crate::slack::*;

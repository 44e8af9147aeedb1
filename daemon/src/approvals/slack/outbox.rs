//! Every proposal reaches Slack, once, even through an outage longer than the client's
//! retries (429s, 5xx, Slack unreachable): a proposal left `pending` without a Slack message
//! is posted again on the approvals timer and after a restart, until it is posted or no
//! longer pending.
//!
//! Never twice from one process: a post is made only by the holder of the proposal's slot,
//! after re-reading the stored proposal and finding no Slack reference, and the reference is
//! stored before the slot is released. Between replicas, a proposal is re-posted by the
//! replica that offered it, or by any replica once `takeover_seconds` have passed (as with
//! `applying`). Not covered: a post Slack accepted whose answer was lost (a timeout) is
//! retried by the client and can appear twice; `chat.postMessage` has no idempotency key.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

use crate::approvals::{ApprovalError, Approvals, Proposal, ProposalState};

/// Proposals being posted by this process.
#[derive(Debug, Default)]
pub struct Outbox {
    posting: Mutex<HashSet<String>>,
}

/// Held while posting one proposal; frees the slot on drop.
struct Slot<'a> {
    outbox: &'a Outbox,
    id: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.outbox.posting.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Outbox {
    fn claim(&self, id: &str) -> Option<Slot<'_>> {
        let fresh = self.posting.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned());
        fresh.then(|| Slot { outbox: self, id: id.to_owned() })
    }
}

impl Approvals {
    /// Post proposal `id` to Slack unless it is no longer pending, already posted, or being
    /// posted right now. Returns the stored proposal when this call posted it.
    pub(in crate::approvals) async fn post_proposal(&self, id: &str) -> Result<Option<Proposal>, ApprovalError> {
        let Some(slack) = &self.slack else { return Ok(None) };
        let Some(_slot) = self.outbox.claim(id) else { return Ok(None) };
        let p = self.get(id).await?;
        if p.state != ProposalState::Pending || p.slack.is_some() {
            return Ok(None);
        }
        let (text, blocks) = self.message(&p).await;
        match slack.post_message(&text, Some(blocks), None).await {
            Ok(at) => {
                let stored = self
                    .update(id, |q| {
                        q.slack = Some(at.clone());
                        Ok(())
                    })
                    .await?;
                // Decided (CLI, MCP) while the post was under way: show it.
                if stored.state != ProposalState::Pending {
                    self.tell_slack(&stored, None).await;
                }
                Ok(Some(stored))
            }
            Err(err) => {
                tracing::warn!(
                    proposal = id,
                    error = %crate::model::error::error_chain(&err),
                    "cannot post proposal to Slack yet; it stays pending for the CLI and MCP and is posted again later"
                );
                Ok(None)
            }
        }
    }

    /// Post every open proposal that has no Slack message yet (see the module docs for
    /// which replica does). Returns how many were posted.
    pub(in crate::approvals) async fn post_unposted(&self) -> Result<usize, ApprovalError> {
        if self.slack.is_none() {
            return Ok(0);
        }
        let now = Timestamp::now();
        let grace = SignedDuration::from_secs(i64::try_from(self.config.takeover_seconds).unwrap_or(120));
        let mut posted = 0;
        for p in self.store.list_proposals().await? {
            if p.state != ProposalState::Pending || p.slack.is_some() || p.expires_at <= now {
                continue;
            }
            let ours = p
                .history
                .last()
                .is_none_or(|t| t.by == self.replica || t.at.checked_add(grace).is_ok_and(|due| due <= now));
            if ours && self.post_proposal(&p.id).await?.is_some() {
                tracing::info!(proposal = %p.id, "proposal posted to Slack after an earlier failure");
                posted += 1;
            }
        }
        Ok(posted)
    }
}

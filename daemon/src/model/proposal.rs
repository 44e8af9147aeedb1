//! A proposal and its lifecycle, as an explicit state machine with a pure
//! transition function: `proposed → pending → approved | rejected | expired
//! → applying → applied → verified | failed`.
//!
//! Every transition is computed here, stored (compare-and-set on the store
//! revision) and only then acted on, so a restart never applies twice.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The object a proposal mutates, pinned to the version it was diagnosed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetRef {
    /// e.g. `apps/v1`.
    pub api_version: String,
    /// e.g. `Deployment`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    /// resourceVersion the proposal was computed against; apply refuses if the
    /// object has changed since (precondition).
    pub resource_version: Option<String>,
    /// metadata.generation at that version (informational: labels and annotations
    /// change without bumping it, so apply does not rely on it).
    #[serde(default)]
    pub generation: Option<i64>,
    /// Fingerprint of what the proposal was computed from (labels, annotations, spec; not
    /// status), see [`super::precondition`]. A newer resourceVersion with the same
    /// fingerprint is a status-only write and apply re-pins to it; without a fingerprint
    /// any newer resourceVersion is refused.
    #[serde(default)]
    pub content_digest: Option<String>,
}

/// How a patch body is interpreted by the apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatchType {
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json` (RFC 6902)
    Json,
}

/// The mutation itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Patch the target.
    Patch { patch_type: PatchType, body: serde_json::Value },
    /// Delete the target (only pods, by policy).
    Delete,
}

/// How much could go wrong if the proposal is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// Who wrote a proposal's change, which decides the policy tier it passes.
/// Set by the code path that built the draft (never read from the draft
/// itself), and recorded on the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Drafter {
    /// kubemedic's own code: the built-in diagnostician, verification
    /// rollbacks, and the fixed-shape MCP tools (restart, undo, scale, delete
    /// pod) whose change kubemedic computes itself.
    Builtin,
    /// A language model's answer. Also what a stored proposal without a
    /// drafter reads as, since it is the narrowest tier.
    #[default]
    Llm,
    /// A free-form patch from an MCP caller (`propose_patch`).
    Mcp,
}

impl Drafter {
    pub const ALL: [Drafter; 3] = [Drafter::Builtin, Drafter::Llm, Drafter::Mcp];

    pub fn as_str(self) -> &'static str {
        match self {
            Drafter::Builtin => "builtin",
            Drafter::Llm => "llm",
            Drafter::Mcp => "mcp",
        }
    }
}

/// Lifecycle states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Computed, passed policy and dry-run, not yet shown to anyone.
    Proposed,
    /// Shown to approvers (Slack, MCP, CLI); waiting for a decision.
    Pending,
    Approved,
    Rejected,
    Expired,
    /// Apply started (stored before the PATCH is sent).
    Applying,
    /// The apiserver accepted the change.
    Applied,
    /// The workload became healthy after the change.
    Verified,
    /// Apply or verification failed.
    Failed,
    /// Not applied because a safety check failed before anything was sent: the
    /// approval seal, the content digest, or the policy re-run at apply time.
    Refused,
}

impl ProposalState {
    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Rejected | Self::Expired | Self::Verified | Self::Failed | Self::Refused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Applying => "applying",
            Self::Applied => "applied",
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }
}

/// What happened to a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProposalEvent {
    /// Offered to approvers.
    Offer,
    Approve {
        by: String,
    },
    Reject {
        by: String,
    },
    Expire,
    StartApply,
    /// The apiserver accepted the patch.
    Applied,
    Verified,
    Fail {
        reason: String,
    },
    /// A safety check refused it before anything was sent.
    Refuse {
        reason: String,
    },
}

/// A transition that the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proposal is {from}, cannot {event}")]
pub struct TransitionError {
    pub from: &'static str,
    pub event: String,
}

/// The pure transition function.
pub fn step(state: ProposalState, event: &ProposalEvent) -> Result<ProposalState, TransitionError> {
    use ProposalEvent as E;
    use ProposalState as S;
    let next = match (state, event) {
        (S::Proposed, E::Offer) => S::Pending,
        (S::Proposed | S::Pending, E::Approve { .. }) => S::Approved,
        (S::Proposed | S::Pending, E::Reject { .. }) => S::Rejected,
        (S::Proposed | S::Pending, E::Expire) => S::Expired,
        (S::Approved, E::StartApply) => S::Applying,
        (S::Applying, E::Applied) => S::Applied,
        (S::Applied, E::Verified) => S::Verified,
        (S::Applying | S::Applied, E::Fail { .. }) => S::Failed,
        (S::Proposed | S::Pending | S::Approved | S::Applying, E::Refuse { .. }) => S::Refused,
        _ => {
            let name = serde_json::to_value(event)
                .ok()
                .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Err(TransitionError { from: state.as_str(), event: name });
        }
    };
    Ok(next)
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transition {
    pub from: ProposalState,
    pub to: ProposalState,
    pub at: Timestamp,
    /// Who caused it (user id, or `kubemedic` for automatic steps).
    pub by: String,
    #[serde(default)]
    pub note: String,
}

/// Where the proposal was posted in Slack, for updates and thread replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlackRef {
    pub channel: String,
    pub ts: String,
}

/// A proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Proposal {
    /// Stable id (uuid v7).
    pub id: String,
    /// Incident it remedies, if any (MCP `propose_patch` may have none).
    pub incident_id: Option<String>,
    pub cluster: String,
    pub target: TargetRef,
    pub action: Action,
    /// Unified diff of the target before/after, for humans.
    pub diff: String,
    /// Why this change fixes the root cause.
    pub rationale: String,
    pub risk: Risk,
    /// Whose change this is; decides the policy tier (see [`Drafter`]).
    #[serde(default)]
    pub drafter: Drafter,
    pub state: ProposalState,
    /// Who may approve (Slack user ids or MCP/CLI user names); empty = anyone with the approver role.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Who (or which rule) asked for it.
    pub requested_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default)]
    pub history: Vec<Transition>,
    /// Last outcome message (apply error, verification result).
    pub outcome: Option<String>,
    pub slack: Option<SlackRef>,
    /// SHA-256 (hex) of what would change (see [`super::seal::digest`]), set when the
    /// proposal is stored; approvers approve this digest and apply checks it again.
    #[serde(default)]
    pub digest: Option<String>,
    /// The sealed approval (who approved which digest when); apply refuses without a valid one.
    #[serde(default)]
    pub approval: Option<ApprovalSeal>,
    /// HMAC set by the approvals service when it stores the proposal, over its content and what
    /// people are shown (see the approvals seal); a decision or an apply refuses without it.
    #[serde(default)]
    pub origin: Option<String>,
}

impl Proposal {
    /// A change just computed, before it is stored: state `proposed`, a fresh uuid v7 id,
    /// expiring `ttl` after `now`; no diff, rationale, approvers, history or Slack message
    /// yet (the caller fills in what it knows).
    pub fn new(
        cluster: impl Into<String>,
        target: TargetRef,
        action: Action,
        now: Timestamp,
        ttl: jiff::SignedDuration,
    ) -> Self {
        Proposal {
            id: uuid::Uuid::now_v7().to_string(),
            incident_id: None,
            cluster: cluster.into(),
            target,
            action,
            diff: String::new(),
            rationale: String::new(),
            risk: Risk::Low,
            // The narrowest tier until the drafter is known.
            drafter: Drafter::default(),
            state: ProposalState::Proposed,
            approvers: Vec::new(),
            requested_by: String::new(),
            created_at: now,
            expires_at: now.checked_add(ttl).unwrap_or(now),
            history: Vec::new(),
            outcome: None,
            slack: None,
            digest: None,
            approval: None,
            origin: None,
        }
    }

    /// Apply `event` by `by` at `now`: computes the next state and records the transition.
    pub fn transition(
        &mut self,
        event: &ProposalEvent,
        by: &str,
        now: Timestamp,
    ) -> Result<ProposalState, TransitionError> {
        let to = step(self.state, event)?;
        let note = match event {
            ProposalEvent::Fail { reason } | ProposalEvent::Refuse { reason } => reason.clone(),
            _ => String::new(),
        };
        self.history.push(Transition { from: self.state, to, at: now, by: by.to_owned(), note });
        self.state = to;
        Ok(to)
    }

    /// The identity that asked for the proposal: `requested_by` without the transport an MCP
    /// caller is recorded with (`alice (http)` is `alice`); `rule:<name>` for a rule's.
    pub fn requester(&self) -> &str {
        let r = self.requested_by.trim();
        match r.rsplit_once(" (") {
            Some((who, rest)) if rest.ends_with(')') && !who.is_empty() => who,
            _ => r,
        }
    }

    /// Who decided (approved or rejected), if anyone.
    pub fn decided_by(&self) -> Option<&str> {
        self.history
            .iter()
            .find(|t| matches!(t.to, ProposalState::Approved | ProposalState::Rejected))
            .map(|t| t.by.as_str())
    }
}

/// A recorded approval: who approved which digest when, over which channel, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalSeal {
    pub approver: String,
    /// The digest the approver saw.
    pub digest: String,
    /// RFC 3339.
    pub decided_at: String,
    /// The channel: `slack`, `http`, `mcp`, `mcp-elicitation (client answer)`, `api`.
    pub via: String,
    /// Hex HMAC-SHA256 over (id, digest, approver, decided_at, and the Kubernetes identity
    /// when there is one) under the approval key.
    pub mac: String,
    /// With `auth.impersonate`: who the change is sent to the apiserver as (the approver's
    /// Kubernetes user and groups), sealed with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_identity: Option<KubeIdentity>,
}

/// A Kubernetes user and groups, for `Impersonate-User` / `Impersonate-Group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KubeIdentity {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProposalEvent as E;
    use ProposalState as S;

    #[test]
    fn happy_path() {
        let mut s = S::Proposed;
        for e in [E::Offer, E::Approve { by: "u".into() }, E::StartApply, E::Applied, E::Verified] {
            s = step(s, &e).unwrap();
        }
        assert_eq!(s, S::Verified);
        assert!(s.is_terminal());
    }

    #[test]
    fn one_decision_only() {
        let s = step(S::Pending, &E::Approve { by: "a".into() }).unwrap();
        assert!(step(s, &E::Approve { by: "b".into() }).is_err());
        assert!(step(s, &E::Reject { by: "b".into() }).is_err());
        let r = step(S::Pending, &E::Reject { by: "a".into() }).unwrap();
        assert!(step(r, &E::StartApply).is_err());
    }

    #[test]
    fn refused_is_terminal_and_never_applies() {
        let r = E::Refuse { reason: "digest mismatch".into() };
        assert_eq!(step(S::Approved, &r).unwrap(), S::Refused);
        assert_eq!(step(S::Pending, &r).unwrap(), S::Refused);
        assert!(S::Refused.is_terminal());
        assert!(step(S::Refused, &E::StartApply).is_err());
        assert!(step(S::Applied, &r).is_err(), "a change that landed is not refused after the fact");
    }

    #[test]
    fn the_requester_identity_drops_the_transport() {
        let now = Timestamp::now();
        let t = TargetRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "n".into(),
            name: "p".into(),
            resource_version: None,
            generation: None,
            content_digest: None,
        };
        let mut p = Proposal::new("c", t, Action::Delete, now, jiff::SignedDuration::from_secs(60));
        for (by, who) in [
            ("alice (http)", "alice"),
            ("rule:crashloop", "rule:crashloop"),
            ("bob", "bob"),
            ("a (b) (stdio)", "a (b)"),
        ] {
            p.requested_by = by.into();
            assert_eq!(p.requester(), who);
        }
    }

    #[test]
    fn never_applies_twice() {
        assert!(step(S::Applying, &E::StartApply).is_err());
        assert!(step(S::Applied, &E::StartApply).is_err());
        assert!(step(S::Expired, &E::StartApply).is_err());
        let err = step(S::Verified, &E::StartApply).unwrap_err();
        assert_eq!(err.to_string(), "proposal is verified, cannot start_apply");
    }
}

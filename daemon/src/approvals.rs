//! Approvals: the proposal lifecycle, the ways a human decides (Slack
//! buttons, MCP elicitation, CLI/HTTP), and exactly-once apply + verify.
//!
//! Every transition is computed by the pure [`proposal::step`], written to
//! the [`Store`] with compare-and-set on the proposal's revision, and only
//! then acted on. That gives the guarantees the daemon promises:
//! - one decision per proposal: a second click, a replayed request or a
//!   second replica loses the CAS and changes nothing;
//! - one apply: only the writer of `approved → applying` sends the change,
//!   and a restart that finds `applying` asks the object (the
//!   [`apply::PROPOSAL_ANNOTATION`] the patch adds) whether it landed.

pub mod apply;
pub mod http;
pub mod precondition;
pub mod proposal;
pub mod rbac;
pub mod seal;
pub mod slack;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use crate::model::proposal::{Action, Drafter, PatchType, Proposal, ProposalEvent, ProposalState, Risk, TargetRef};

use crate::cluster::Cluster;
use crate::model::diagnosis::Diagnosis;
use crate::slack::SlackClient;
use crate::slack::blocks;
use crate::store::{Store, StoreError};
use crate::telemetry::audit::AuditLog;
use apply::{Landing, Verdict};

/// Approval settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Seconds a proposal stays open before it expires.
    pub ttl_seconds: u64,
    /// Seconds verification may take in all: the rollout to complete, then the stability
    /// window. A change not verified by then fails verification (and a rollback is proposed).
    pub verify_timeout_seconds: u64,
    /// Seconds the workload's pods must stay Ready after the rollout completes, with no
    /// container restarting or failing, before a change counts as verified: a fix that only
    /// delays the failure (a memory limit still too low, a crash a few seconds after start)
    /// fails verification instead. 0 verifies as soon as the rollout completes. Must be
    /// less than `verify_timeout_seconds`.
    pub verify_stable_seconds: u64,
    /// Seconds after which another replica may take over a proposal left in
    /// `applying` (a replica with the same name takes over at once).
    pub takeover_seconds: u64,
    /// How often open proposals are checked for expiry, in seconds.
    pub expiry_interval_seconds: u64,
    /// Propose a rollback (through approval again) when verification fails.
    pub rollback_on_failure: bool,
    /// Let the requester of a proposal (the MCP user who proposed it, or the rule) approve it.
    /// Off by default: a second person approves.
    pub allow_self_approval: bool,
    /// An MCP elicitation "accept" is the MCP client's answer, not proof a human looked. When
    /// true it approves (recorded as `mcp-elicitation (client answer)`); when false the
    /// proposal stays pending for a decision in Slack, the CLI or the approvals API.
    pub mcp_accept_applies: bool,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: 3600,
            verify_timeout_seconds: 300,
            verify_stable_seconds: 30,
            takeover_seconds: 120,
            expiry_interval_seconds: 30,
            rollback_on_failure: true,
            allow_self_approval: false,
            mcp_accept_applies: true,
        }
    }
}

impl ApprovalsConfig {
    /// What serde cannot check.
    pub fn validate(&self) -> Result<(), String> {
        if self.verify_timeout_seconds == 0 {
            return Err("verify_timeout_seconds must be > 0".into());
        }
        if self.verify_stable_seconds >= self.verify_timeout_seconds {
            return Err(format!(
                "verify_stable_seconds ({}) must be less than verify_timeout_seconds ({}): the window \
                 follows the rollout within the timeout",
                self.verify_stable_seconds, self.verify_timeout_seconds
            ));
        }
        Ok(())
    }

    /// The verification window.
    pub fn verify_window(&self) -> verify::Window {
        verify::Window {
            stable: Duration::from_secs(self.verify_stable_seconds),
            timeout: Duration::from_secs(self.verify_timeout_seconds),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("proposal {0} not found")]
    NotFound(String),
    #[error("{user} may not decide proposal {id}")]
    NotAllowed { id: String, user: String },
    #[error("proposal {id} is already {}{}", state.as_str(), by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    AlreadyDecided { id: String, state: ProposalState, by: Option<String> },
    #[error("proposal {0} has expired")]
    Expired(String),
    /// Several daemons (one per cluster) may share one store: a proposal is applied only by
    /// the kubemedic serving its cluster.
    #[error("proposal {id} is for cluster {cluster}, not {here}; the kubemedic serving {cluster} applies it")]
    OtherCluster { id: String, cluster: String, here: String },
    #[error("proposal {id} is not what kubemedic offered: {reason}; nothing was changed")]
    Tampered { id: String, reason: String },
    #[error("{user} requested proposal {id} and may not approve it (approvals.allow_self_approval is off)")]
    SelfApproval { id: String, user: String },
    #[error(
        "Slack user {user} has no identity mapping (slack.approvers.users.{user}.identity), so kubemedic cannot tell \
         whether they requested proposal {id}, which a person proposed; it needs an approver whose identity is known"
    )]
    IdentityUnknown { id: String, user: String },
    #[error(
        "proposal {id} changed since it was shown: the approver saw digest {seen}, the stored change is {now}; nothing was changed"
    )]
    DigestMismatch { id: String, seen: String, now: String },
    #[error("invalid proposal: {0}")]
    Invalid(String),
    #[error("proposal store failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transition(#[from] proposal::TransitionError),
    /// Test hook: the process "died" here (see [`CrashPoint`]).
    #[cfg(feature = "crash-points")]
    #[error("simulated crash {0:?}")]
    Crashed(CrashPoint),
}

/// Points at which a test can make [`Approvals`] stop as if the process was
/// SIGKILLed: everything stored so far stays, nothing after it happens.
///
/// Compiled in only with the `crash-points` feature, which the test crates
/// enable; the product build has no such points.
#[cfg(feature = "crash-points")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// `approved` stored; `applying` not yet.
    AfterDecision,
    /// `applying` stored; the change not sent.
    BeforePatch,
    /// The change landed; `applied` not stored.
    AfterPatch,
}

/// Asks for a fresh diagnosis: the target changed under a proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Rediagnose {
    pub proposal_id: String,
    pub incident_id: Option<String>,
    pub target: TargetRef,
    pub reason: String,
}

/// How long after a proposal's expiry an approved apply may still start (a resume after a restart).
const APPLY_GRACE_SECONDS: i64 = 600;

/// One human decision, as the channel that carried it knows it.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Who decided, as recorded (a Slack user id, an MCP/CLI user name).
    pub user: &'a str,
    /// The identity compared with the requester for the no-self-approval rule (the same as
    /// `user` except for Slack users mapped to an MCP/CLI name).
    pub identity: &'a str,
    pub approve: bool,
    /// `slack`, `http`, `mcp`, `mcp-elicitation (client answer)`, ...
    pub via: &'a str,
    /// The digest the decider was shown; `None` = the current one (never for Slack clicks).
    pub digest: Option<&'a str>,
}

/// An approved proposal to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    pub proposal_id: String,
    /// `slack` or `http`: who approved it.
    pub via: &'static str,
}

impl ApplyRequest {
    /// The span an apply runs in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("apply", proposal = %self.proposal_id, via = self.via)
    }
}

/// The approvals service; share it as `Arc<Approvals>`.
pub struct Approvals {
    store: Arc<dyn Store>,
    cluster: Cluster,
    slack: Option<SlackClient>,
    config: ApprovalsConfig,
    replica: String,
    audit: Option<AuditLog>,
    bus: Option<crate::bus::Bus>,
    policy: crate::policy::PolicyConfig,
    updates: broadcast::Sender<Proposal>,
    rediagnose: Option<mpsc::Sender<Rediagnose>>,
    applies: Option<mpsc::UnboundedSender<ApplyRequest>>,
    /// Diagnoses of open proposals, for richer Slack messages (in memory only).
    context: Mutex<HashMap<String, Diagnosis>>,
    #[cfg(feature = "crash-points")]
    crash: Mutex<Option<CrashPoint>>,
    mutations: std::sync::atomic::AtomicU64,
    /// Proposals being posted to Slack (see [`slack::outbox`]).
    outbox: slack::outbox::Outbox,
    /// What verification is waiting for, for a person watching (see [`Self::with_progress`]).
    progress: Option<tokio::sync::watch::Sender<String>>,
    /// Seals approvals; apply checks the seal (see [`seal`]).
    seal_key: seal::ApprovalKey,
    /// Who may decide in Slack.
    slack_approvers: Option<Arc<slack::approvers::SlackApprovers>>,
    /// `auth.impersonate`: an approval through the API needs the approver's own RBAC.
    impersonation: Option<Arc<crate::cluster::Impersonation>>,
    /// `ui.external_url`: Slack cards link to `<this>/ui/proposals/<id>`.
    ui_url: Option<String>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("replica", &self.replica).field("slack", &self.slack).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Approvals {
    pub fn new(store: Arc<dyn Store>, cluster: Cluster, slack: Option<SlackClient>, config: ApprovalsConfig) -> Self {
        let replica = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "kubemedic".into());
        Self {
            store,
            cluster,
            slack,
            config,
            replica,
            audit: None,
            bus: None,
            policy: crate::policy::PolicyConfig::default(),
            updates: broadcast::channel(256).0,
            rediagnose: None,
            applies: None,
            context: Mutex::new(HashMap::new()),
            #[cfg(feature = "crash-points")]
            crash: Mutex::new(None),
            mutations: std::sync::atomic::AtomicU64::new(0),
            outbox: slack::outbox::Outbox::default(),
            progress: None,
            seal_key: seal::ApprovalKey::process_default(),
            slack_approvers: None,
            impersonation: None,
            ui_url: None,
        }
    }

    /// `auth.impersonate`: approvals through the API (and the CLI) need the approver's own
    /// right to make the change ([`rbac::approver_may`]).
    pub fn with_impersonation(mut self, impersonation: Arc<crate::cluster::Impersonation>) -> Self {
        self.impersonation = Some(impersonation);
        self
    }

    pub fn impersonation(&self) -> Option<&crate::cluster::Impersonation> {
        self.impersonation.as_deref()
    }

    /// The key approvals are sealed with (see [`seal::ApprovalKey::load`]); every replica
    /// sharing a store needs the same one.
    pub fn with_seal_key(mut self, key: seal::ApprovalKey) -> Self {
        self.seal_key = key;
        self
    }

    /// Who may decide in Slack; also what the card says about it.
    pub fn with_slack_approvers(mut self, approvers: slack::approvers::ApproversConfig) -> Self {
        self.slack_approvers = Some(Arc::new(slack::approvers::SlackApprovers::new(approvers)));
        self
    }

    /// The Slack approver mapping, if configured.
    pub fn slack_approvers(&self) -> Option<&slack::approvers::SlackApprovers> {
        self.slack_approvers.as_deref()
    }

    /// Resolve a Slack user's role and identity (`None` role: not mapped, or no mapping at all).
    pub async fn slack_principal(&self, user: &str) -> slack::approvers::SlackPrincipal {
        match &self.slack_approvers {
            Some(a) => a.resolve(self.slack.as_ref(), user).await,
            None => slack::approvers::SlackPrincipal {
                role: None,
                identity: format!("{}{user}", slack::approvers::UNMAPPED_PREFIX),
            },
        }
    }

    /// Record a refused decision attempt that never reached the store (no role, bad request).
    pub fn audit_refusal(&self, user: &str, via: &str, id: &str, approve: bool, reason: &str) {
        if let Some(audit) = &self.audit {
            audit.decision(user, via, id, if approve { "approve" } else { "reject" }, "denied", reason);
        }
    }

    /// Link Slack cards to the web UI at `external_url` (`ui.external_url`).
    pub fn with_ui_url(mut self, external_url: Option<String>) -> Self {
        self.ui_url = external_url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// Name of this replica, recorded on automatic transitions; a restarted
    /// replica with the same name resumes its own `applying` proposals at once.
    pub fn with_replica(mut self, name: &str) -> Self {
        self.replica = name.to_owned();
        self
    }

    /// Record decisions and outcomes on the audit trail.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Publish every stored transition on `kubemedic.proposal.<state>`.
    pub fn with_bus(mut self, bus: crate::bus::Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The patch policy rollback proposals pass.
    pub fn with_policy(mut self, policy: crate::policy::PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// Where verification reports what it waits for at each look ("rollout in progress: …",
    /// "stable for 12s of 30s"), for the demo's progress line.
    pub fn with_progress(mut self, tx: tokio::sync::watch::Sender<String>) -> Self {
        self.progress = Some(tx);
        self
    }

    /// Where to ask for a fresh diagnosis when a target changed under a proposal.
    pub fn with_rediagnose(mut self, tx: mpsc::Sender<Rediagnose>) -> Self {
        self.rediagnose = Some(tx);
        self
    }

    /// Where approved proposals go to be applied: the daemon runs them in its
    /// shutdown-aware task set (see `pipeline`), so a SIGTERM lets them finish.
    pub fn with_applies(mut self, tx: mpsc::UnboundedSender<ApplyRequest>) -> Self {
        self.applies = Some(tx);
        self
    }

    /// Apply an approved proposal in the background ([`Self::with_applies`]; without it,
    /// on a task of its own). `via` names the channel that approved it, for the logs.
    pub fn apply_later(self: &Arc<Self>, id: String, via: &'static str) {
        let request = ApplyRequest { proposal_id: id, via };
        let request = match &self.applies {
            Some(tx) => match tx.send(request) {
                Ok(()) => return,
                Err(mpsc::error::SendError(request)) => request,
            },
            None => request,
        };
        let span = request.span();
        tokio::spawn(self.clone().apply_now(request).instrument(span));
    }

    /// Apply the proposals sent to [`Self::with_applies`], each on a task of its own; when
    /// `stop` fires (or every sender is gone), take no new ones and wait for those in flight
    /// (the caller's grace period bounds the wait).
    pub async fn serve_applies(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<ApplyRequest>,
        stop: CancellationToken,
    ) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                request = rx.recv() => match request {
                    Some(request) => {
                        let span = request.span();
                        running.spawn(self.clone().apply_now(request).instrument(span));
                    }
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        if !running.is_empty() {
            tracing::info!(applies = running.len(), "waiting for applies in flight");
        }
        while running.join_next().await.is_some() {}
    }

    /// Apply (and verify) an approved proposal; failures are logged, the proposal records them.
    pub async fn apply_now(self: Arc<Self>, request: ApplyRequest) {
        if let Err(err) = self.execute(&request.proposal_id).await {
            tracing::warn!(proposal = %request.proposal_id, via = request.via,
                error = %crate::model::error::error_chain(&err), "apply after approval failed");
        }
    }

    /// Every stored transition (for the bus, metrics, MCP notifications).
    pub fn subscribe(&self) -> broadcast::Receiver<Proposal> {
        self.updates.subscribe()
    }

    /// Test hook: stop at `point` as if killed (see [`CrashPoint`]).
    #[cfg(feature = "crash-points")]
    pub fn crash_at(&self, point: Option<CrashPoint>) {
        *lock(&self.crash) = point;
    }

    /// How many mutating requests (PATCH/DELETE) this instance has sent to the apiserver.
    pub fn mutations_sent(&self) -> u64 {
        self.mutations.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn config(&self) -> &ApprovalsConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    #[cfg(feature = "crash-points")]
    fn crash_if(&self, point: CrashPoint) -> Result<(), ApprovalError> {
        if *lock(&self.crash) == Some(point) { Err(ApprovalError::Crashed(point)) } else { Ok(()) }
    }

    pub async fn get(&self, id: &str) -> Result<Proposal, ApprovalError> {
        Ok(self.store.get_proposal(id).await?.ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?.value)
    }

    /// Read, change, compare-and-set; on a conflict re-read and let `change`
    /// decide again (it sees the other writer's state).
    async fn update<F>(&self, id: &str, mut change: F) -> Result<Proposal, ApprovalError>
    where
        F: FnMut(&mut Proposal) -> Result<(), ApprovalError>,
    {
        loop {
            let current = self.store.get_proposal(id).await?.ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
            let mut p = current.value;
            change(&mut p)?;
            match self.store.update_proposal(&p, current.revision).await {
                Ok(_) => {
                    self.published(&p).await;
                    return Ok(p);
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(proposal = id, "proposal changed concurrently; re-reading");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn advance(
        &self,
        id: &str,
        event: ProposalEvent,
        by: &str,
        outcome: Option<String>,
    ) -> Result<Proposal, ApprovalError> {
        self.update(id, |p| {
            p.transition(&event, by, Timestamp::now())?;
            if outcome.is_some() {
                p.outcome.clone_from(&outcome);
            }
            Ok(())
        })
        .await
    }

    /// An automatic step (applied, verified, failed). If another replica
    /// already moved the proposal on, its state stands: return it, act on nothing.
    async fn advance_auto(
        &self,
        id: &str,
        event: ProposalEvent,
        outcome: Option<String>,
    ) -> Result<Option<Proposal>, ApprovalError> {
        match self.advance(id, event, &self.replica, outcome).await {
            Ok(p) => Ok(Some(p)),
            Err(ApprovalError::Transition(e)) => {
                tracing::info!(proposal = id, reason = %e, "another replica moved the proposal on; leaving it");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Offer a proposal: store it `proposed`, move it to `pending`, post it to Slack.
    pub async fn submit(&self, p: Proposal) -> Result<Proposal, ApprovalError> {
        self.submit_with(p, None).await
    }

    /// [`Approvals::submit`] with the diagnosis shown in the Slack message.
    pub async fn submit_with(&self, mut p: Proposal, diagnosis: Option<Diagnosis>) -> Result<Proposal, ApprovalError> {
        if p.state != ProposalState::Proposed {
            return Err(ApprovalError::Invalid(format!("a new proposal must be proposed, not {}", p.state.as_str())));
        }
        if p.id.is_empty() {
            return Err(ApprovalError::Invalid("proposal id is empty".into()));
        }
        if p.target.resource_version.as_deref().unwrap_or_default().is_empty() {
            return Err(ApprovalError::Invalid("proposal target has no resourceVersion (precondition)".into()));
        }
        if p.expires_at <= p.created_at {
            let ttl = jiff::SignedDuration::from_secs(i64::try_from(self.config.ttl_seconds).unwrap_or(3600));
            p.expires_at = p.created_at.checked_add(ttl).unwrap_or(p.created_at);
        }
        if let Some(d) = diagnosis {
            lock(&self.context).insert(p.id.clone(), d);
        }
        p.approval = None;
        p.digest = Some(seal::digest(&p));
        p.origin = Some(self.seal_key.origin(&p));
        self.store.create_proposal(&p).await?;
        self.published(&p).await;
        self.offer(&p.id).await
    }

    /// Store a draft the policy or the dry-run refused, already in the terminal state
    /// `refused` (see [`crate::policy::Refusal::record`]): published and audited so an
    /// operator sees the attempt, never posted for approval, never applied.
    pub async fn record_refused(&self, mut p: Proposal) -> Result<Proposal, ApprovalError> {
        if p.state != ProposalState::Refused {
            return Err(ApprovalError::Invalid(format!("a refused draft must be refused, not {}", p.state.as_str())));
        }
        if p.id.is_empty() {
            return Err(ApprovalError::Invalid("proposal id is empty".into()));
        }
        p.approval = None;
        let p = crate::redact::gate().typed(p);
        self.store.create_proposal(&p).await?;
        self.published(&p).await;
        let reason = p.outcome.clone().unwrap_or_default();
        tracing::info!(proposal = %p.id, target = %blocks::target_display(&p), %reason, "draft refused; recorded");
        self.audit_event(&p, "propose", "refused", &reason);
        Ok(p)
    }

    async fn offer(&self, id: &str) -> Result<Proposal, ApprovalError> {
        let p = self.advance(id, ProposalEvent::Offer, &self.replica, None).await?;
        tracing::info!(proposal = %p.id, target = %blocks::target_display(&p), "proposal offered for approval");
        self.audit_event(&p, "offer", "pending", "");
        // Not posted (Slack failing past the client's retries): the approvals timer posts it later.
        Ok(self.post_proposal(id).await?.unwrap_or(p))
    }

    async fn message(&self, p: &Proposal) -> (String, serde_json::Value) {
        let incident = match &p.incident_id {
            Some(id) => self.store.get_incident(id).await.ok().flatten(),
            None => None,
        };
        let diagnosis = lock(&self.context).get(&p.id).cloned();
        let mentions = self.slack_approvers.as_ref().map(|a| a.mentions());
        let link = self.ui_url.as_ref().map(|u| format!("{u}/ui/proposals/{}", p.id));
        let ctx = blocks::Context {
            incident: incident.as_ref(),
            diagnosis: diagnosis.as_ref(),
            approvers: mentions.as_deref(),
            link: link.as_deref(),
        };
        (blocks::message_text(p), blocks::proposal_blocks(p, ctx))
    }

    /// Bring the Slack message in line with the stored state, and reply in its thread.
    async fn tell_slack(&self, p: &Proposal, reply: Option<&str>) {
        let (Some(slack), Some(at)) = (&self.slack, &p.slack) else { return };
        let (text, blocks) = self.message(p).await;
        if let Err(err) = slack.update_message(at, &text, blocks).await {
            tracing::warn!(proposal = %p.id, error = %crate::model::error::error_chain(&err), "cannot update the Slack message");
        }
        if let Some(reply) = reply
            && let Err(err) = slack.reply(at, reply).await
        {
            tracing::warn!(proposal = %p.id, error = %crate::model::error::error_chain(&err), "cannot reply in the Slack thread");
        }
    }

    async fn published(&self, p: &Proposal) {
        let _ = self.updates.send(p.clone());
        if let Some(bus) = &self.bus
            && let Err(err) = bus.publish(&format!("proposal.{}", p.state.as_str()), p).await
        {
            tracing::warn!(proposal = %p.id, error = %crate::model::error::error_chain(&err), "cannot publish proposal update");
        }
    }

    /// An ephemeral Slack message to one user (refusals); no-op without Slack.
    pub async fn tell_user(&self, channel: &str, user: &str, text: &str) {
        if let Some(slack) = &self.slack
            && let Err(err) = slack.post_ephemeral(channel, user, text).await
        {
            tracing::warn!(user, error = %crate::model::error::error_chain(&err), "cannot send an ephemeral Slack message");
        }
    }

    fn audit_event(&self, p: &Proposal, action: &str, outcome: &str, detail: &str) {
        if let Some(audit) = &self.audit {
            audit.decision(&self.replica, "approvals", &p.id, action, outcome, detail);
        }
    }

    /// Record a human decision. The first decision wins; every later one
    /// (double click, replay, another replica) gets [`ApprovalError::AlreadyDecided`]
    /// and changes nothing. Does not apply: see [`Approvals::execute`].
    ///
    /// The decider is `user` (also the identity for the self-approval rule) and the digest
    /// is the current one; channels that know more use [`Approvals::record`].
    pub async fn record_decision(
        &self,
        id: &str,
        user: &str,
        approve: bool,
        transport: &str,
    ) -> Result<Proposal, ApprovalError> {
        self.record(id, &Decision { user, identity: user, approve, via: transport, digest: None }).await
    }

    /// Record a human decision (see [`Approvals::record_decision`]). Refused, changing nothing:
    /// a decider not on the proposal's list, the requester approving their own proposal
    /// (unless `allow_self_approval`), an expired proposal, and content that does not hash to
    /// the digest the decider saw or to the digest stored when it was offered. An approval is
    /// sealed (see [`seal`]) over the digest it approved.
    pub async fn record(&self, id: &str, d: &Decision<'_>) -> Result<Proposal, ApprovalError> {
        self.record_as(id, d, None).await
    }

    /// [`Self::record`]; an approval also seals `kube`, the Kubernetes identity the change is
    /// then sent to the apiserver as (with `auth.impersonate`, the approver's user and groups).
    pub async fn record_as(
        &self,
        id: &str,
        d: &Decision<'_>,
        kube: Option<crate::model::proposal::KubeIdentity>,
    ) -> Result<Proposal, ApprovalError> {
        let now = Timestamp::now();
        let mut expired = false;
        let allow_self = self.config.allow_self_approval;
        let result = self
            .update(id, |p| {
                if !matches!(p.state, ProposalState::Proposed | ProposalState::Pending) {
                    return Err(ApprovalError::AlreadyDecided {
                        id: p.id.clone(),
                        state: p.state,
                        by: p.decided_by().map(str::to_owned),
                    });
                }
                // Identities are compared as people type them: `Alice` is `alice`.
                let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
                if !p.approvers.is_empty() && !p.approvers.iter().any(|a| same(a, d.user) || same(a, d.identity)) {
                    return Err(ApprovalError::NotAllowed { id: p.id.clone(), user: d.user.to_owned() });
                }
                let requester = p.requester();
                if d.approve && !allow_self && (same(requester, d.identity) || same(requester, d.user)) {
                    return Err(ApprovalError::SelfApproval { id: p.id.clone(), user: d.user.to_owned() });
                }
                // A Slack user known only by a Slack id (a group member without an identity
                // mapping) cannot be told apart from the person who proposed: only proposals a
                // rule made may be approved that way.
                if d.approve
                    && !allow_self
                    && d.identity.starts_with(slack::approvers::UNMAPPED_PREFIX)
                    && !requester.starts_with("rule:")
                {
                    return Err(ApprovalError::IdentityUnknown { id: p.id.clone(), user: d.user.to_owned() });
                }
                if p.expires_at <= now {
                    expired = true;
                    return Err(ApprovalError::Expired(p.id.clone()));
                }
                let current = seal::digest(p);
                let stored = p.digest.clone().unwrap_or_else(|| current.clone());
                let seen = d.digest.map_or_else(|| stored.clone(), str::to_owned);
                if d.approve && (seen != current || stored != current) {
                    return Err(ApprovalError::DigestMismatch {
                        id: p.id.clone(),
                        seen: seal::short(&seen).to_owned(),
                        now: seal::short(&current).to_owned(),
                    });
                }
                if d.approve
                    && let Err(reason) = self.seal_key.check_origin(p)
                {
                    return Err(ApprovalError::Tampered { id: p.id.clone(), reason });
                }
                let event = if d.approve {
                    ProposalEvent::Approve { by: d.user.to_owned() }
                } else {
                    ProposalEvent::Reject { by: d.user.to_owned() }
                };
                p.transition(&event, d.user, now)?;
                if d.approve {
                    p.approval =
                        Some(self.seal_key.seal_as(&p.id, &current, d.user, &now.to_string(), d.via, kube.clone()));
                }
                Ok(())
            })
            .await;
        let decision = if d.approve { "approve" } else { "reject" };
        if let Some(audit) = &self.audit {
            let (outcome, detail) = match &result {
                Ok(p) => (
                    "ok",
                    format!(
                        "{} (digest {})",
                        p.state.as_str(),
                        seal::short(p.approval.as_ref().map_or(p.digest.as_deref().unwrap_or(""), |s| &s.digest))
                    ),
                ),
                Err(ApprovalError::NotAllowed { .. }) => ("denied", "not on the approver list".to_owned()),
                Err(
                    e @ (ApprovalError::SelfApproval { .. }
                    | ApprovalError::IdentityUnknown { .. }
                    | ApprovalError::Tampered { .. }),
                ) => ("denied", e.to_string()),
                Err(e) => ("refused", e.to_string()),
            };
            audit.decision(d.user, d.via, id, decision, outcome, &detail);
        }
        if expired {
            self.expire(id).await?;
        }
        let p = result?;
        tracing::info!(proposal = %p.id, user = d.user, via = d.via, decision, "proposal decided");
        self.tell_slack(&p, None).await;
        #[cfg(feature = "crash-points")]
        self.crash_if(CrashPoint::AfterDecision)?;
        Ok(p)
    }

    /// Decide and, for an approval, apply exactly once and verify. Returns the final proposal.
    pub async fn decide(&self, id: &str, user: &str, approve: bool) -> Result<Proposal, ApprovalError> {
        let p = self.record_decision(id, user, approve, "api").await?;
        if p.state == ProposalState::Approved { self.execute(id).await } else { Ok(p) }
    }

    /// [`Approvals::decide`] for a [`Decision`].
    pub async fn decide_with(&self, id: &str, d: &Decision<'_>) -> Result<Proposal, ApprovalError> {
        let p = self.record(id, d).await?;
        if p.state == ProposalState::Approved { self.execute(id).await } else { Ok(p) }
    }

    /// Record a decision and, for an approval, hand the apply to the background
    /// ([`Self::with_applies`]) instead of waiting for it: returns the proposal as `approved`
    /// at once; its later states (applying, applied, verified or failed) reach the store and
    /// [`Self::subscribe`]. Without a background set, applies and verifies before returning.
    pub async fn decide_in_background(
        &self,
        id: &str,
        d: &Decision<'_>,
        kube: Option<crate::model::proposal::KubeIdentity>,
    ) -> Result<Proposal, ApprovalError> {
        let p = self.record_as(id, d, kube).await?;
        if p.state != ProposalState::Approved {
            return Ok(p);
        }
        let Some(tx) = &self.applies else { return self.execute(id).await };
        match tx.send(ApplyRequest { proposal_id: id.to_owned(), via: "mcp" }) {
            Ok(()) => Ok(p),
            // The set is gone (shutting down): nothing was sent; the next start resumes it.
            Err(_) => self.execute(id).await,
        }
    }

    /// Why a claimed proposal may not be sent, if it may not: its approval seal and content
    /// digest (a proposal forged or rewritten in the store), then the policy of its drafter's
    /// tier, run again on the stored change against the live object.
    async fn preflight(&self, p: &Proposal, sender: &Cluster) -> Result<(), String> {
        self.seal_key.check_origin(p)?;
        self.seal_key.check(p)?;
        // An approval is good for the proposal's lifetime (plus the time an apply may take to
        // be resumed after a restart), not forever: a replayed old approval is refused.
        let grace = jiff::SignedDuration::from_secs(APPLY_GRACE_SECONDS);
        if p.expires_at.checked_add(grace).is_ok_and(|t| t < Timestamp::now()) {
            return Err(format!("the proposal expired at {} and its approval with it", p.expires_at));
        }
        let mut target = p.target.clone();
        // The precondition is checked by apply (with its status-only re-pin); here the policy.
        target.resource_version = None;
        let draft = crate::policy::ProposalDraft {
            incident_id: p.incident_id.clone(),
            target,
            action: p.action.clone(),
            rationale: p.rationale.clone(),
            risk: Some(p.risk),
            requested_by: p.requested_by.clone(),
            approvers: p.approvers.clone(),
            ttl_seconds: self.config.ttl_seconds,
        };
        crate::policy::prepare(sender, &self.policy, p.drafter, draft)
            .await
            .map(drop)
            .map_err(|r| format!("the policy refuses it at apply time: {r}"))
    }

    async fn refuse(&self, p: &Proposal, reason: String) -> Result<Proposal, ApprovalError> {
        tracing::warn!(proposal = %p.id, %reason, "approved proposal refused before anything was sent");
        let refused = self
            .advance(&p.id, ProposalEvent::Refuse { reason: reason.clone() }, &self.replica, Some(reason.clone()))
            .await?;
        self.audit_event(&refused, "apply", "refused", &reason);
        self.tell_slack(&refused, Some(&format!(":no_entry: Not applied: {}", blocks::escape(&reason)))).await;
        lock(&self.context).remove(&refused.id);
        Ok(refused)
    }

    /// Apply an approved proposal and verify it. Only the caller that moves
    /// it to `applying` acts; anyone else gets the current state back.
    pub async fn execute(&self, id: &str) -> Result<Proposal, ApprovalError> {
        let claimed = self
            .update(id, |p| {
                if p.cluster != self.cluster.name {
                    return Err(ApprovalError::OtherCluster {
                        id: p.id.clone(),
                        cluster: p.cluster.clone(),
                        here: self.cluster.name.clone(),
                    });
                }
                if p.state != ProposalState::Approved {
                    return Err(ApprovalError::AlreadyDecided { id: p.id.clone(), state: p.state, by: None });
                }
                p.transition(&ProposalEvent::StartApply, &self.replica, Timestamp::now())?;
                Ok(())
            })
            .await;
        let p = match claimed {
            Ok(p) => p,
            Err(ApprovalError::AlreadyDecided { .. }) => return self.get(id).await,
            Err(e) => return Err(e),
        };
        self.tell_slack(&p, None).await;
        #[cfg(feature = "crash-points")]
        self.crash_if(CrashPoint::BeforePatch)?;
        self.apply_claimed(p).await
    }

    async fn apply_claimed(&self, p: Proposal) -> Result<Proposal, ApprovalError> {
        // With `auth.impersonate` the change goes out as the approver sealed into the approval
        // (the policy re-run's dry-run too); else with kubemedic's own credentials.
        let sender = match (&self.impersonation, p.approval.as_ref().and_then(|a| a.kube_identity.as_ref())) {
            (Some(imp), Some(who)) => match imp.client(&who.user, &who.groups) {
                Ok(client) => Cluster { client, ..self.cluster.clone() },
                Err(e) => return self.refuse(&p, format!("cannot act as {}: {e}", who.user)).await,
            },
            _ => self.cluster.clone(),
        };
        if let Err(reason) = self.preflight(&p, &sender).await {
            return self.refuse(&p, reason).await;
        }
        match apply::apply(&sender, &p, &self.mutations).await {
            Ok(applied) => {
                #[cfg(feature = "crash-points")]
                self.crash_if(CrashPoint::AfterPatch)?;
                self.after_apply(&p.id, applied).await
            }
            Err(err) => self.fail_apply(&p, err).await,
        }
    }

    async fn fail_apply(&self, p: &Proposal, err: apply::ApplyError) -> Result<Proposal, ApprovalError> {
        let rediagnose = err.needs_rediagnosis();
        let reason = if rediagnose { err.to_string() } else { crate::model::error::error_chain(&err) };
        tracing::warn!(proposal = %p.id, error = %crate::model::error::error_chain(&err), "change not applied");
        let failed = self
            .advance(&p.id, ProposalEvent::Fail { reason: reason.clone() }, &self.replica, Some(reason.clone()))
            .await?;
        self.audit_event(&failed, "apply", "failed", &crate::model::error::error_chain(&err));
        self.tell_slack(&failed, Some(&format!(":x: Not applied: {}", blocks::escape(&reason)))).await;
        if rediagnose && let Some(tx) = &self.rediagnose {
            let req = Rediagnose {
                proposal_id: failed.id.clone(),
                incident_id: failed.incident_id.clone(),
                target: failed.target.clone(),
                reason: crate::model::error::error_chain(&err),
            };
            if tx.try_send(req).is_err() {
                tracing::warn!(proposal = %failed.id, "re-diagnosis queue full or closed; the incident will be seen again by the watchers");
            }
        }
        lock(&self.context).remove(&failed.id);
        Ok(failed)
    }

    async fn after_apply(&self, id: &str, applied: apply::Applied) -> Result<Proposal, ApprovalError> {
        let note = if applied.already { "applied (found on the object after a restart)" } else { "applied" };
        let Some(p) = self.advance_auto(id, ProposalEvent::Applied, Some(note.to_owned())).await? else {
            return self.get(id).await;
        };
        tracing::info!(proposal = %p.id, generation = ?applied.generation, "change applied; verifying");
        self.audit_event(&p, "apply", "ok", note);
        self.tell_slack(
            &p,
            Some(&format!(
                ":gear: Applied to {}; watching the rollout, then the pods for {}s…",
                blocks::escape(&blocks::target_display(&p)),
                self.config.verify_stable_seconds
            )),
        )
        .await;
        self.verify(p, applied).await
    }

    async fn verify(&self, p: Proposal, applied: apply::Applied) -> Result<Proposal, ApprovalError> {
        let verdict =
            verify::verify(&self.cluster, &p, &applied, self.config.verify_window(), self.progress.as_ref()).await;
        let done = match &verdict {
            Verdict::Healthy(msg) => {
                self.advance(&p.id, ProposalEvent::Verified, &self.replica, Some(msg.clone())).await?
            }
            Verdict::Unhealthy(msg) => {
                let reason = format!("verification failed: {msg}");
                self.advance(&p.id, ProposalEvent::Fail { reason: reason.clone() }, &self.replica, Some(reason)).await?
            }
        };
        lock(&self.context).remove(&done.id);
        let (outcome, icon) =
            if done.state == ProposalState::Verified { ("verified", ":white_check_mark:") } else { ("failed", ":x:") };
        tracing::info!(proposal = %done.id, outcome, detail = done.outcome.as_deref().unwrap_or_default(), "verification finished");
        self.audit_event(&done, "verify", outcome, done.outcome.as_deref().unwrap_or_default());
        let line = format!("{icon} {}: {}", outcome, blocks::escape(done.outcome.as_deref().unwrap_or_default()));
        self.tell_slack(&done, Some(&line)).await;
        if done.state == ProposalState::Failed && self.config.rollback_on_failure {
            self.propose_rollback(&done).await;
        }
        Ok(done)
    }

    /// A failed verification proposes a rollback, through approval again.
    async fn propose_rollback(&self, failed: &Proposal) {
        let patch = match apply::rollback_patch(&self.cluster, &failed.target).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(proposal = %failed.id, error = %crate::model::error::error_chain(&err), "cannot compute a rollback");
                return;
            }
        };
        let (body, to) = patch;
        let mut target = failed.target.clone();
        target.resource_version = None;
        let draft = crate::policy::ProposalDraft {
            incident_id: failed.incident_id.clone(),
            target,
            action: Action::Patch { patch_type: PatchType::Json, body },
            rationale: format!("Roll back to {to}: the change of proposal {} did not become healthy.", failed.id),
            risk: None,
            requested_by: format!("kubemedic (verification of {} failed)", failed.id),
            approvers: failed.approvers.clone(),
            ttl_seconds: self.config.ttl_seconds,
        };
        let message = match crate::policy::prepare(&self.cluster, &self.policy, Drafter::Builtin, draft).await {
            Ok(rollback) => match self.submit(rollback).await {
                Ok(r) => format!(":leftwards_arrow_with_hook: Rollback to {to} proposed for approval: `{}`", r.id),
                Err(err) => format!("Cannot offer a rollback: {}", blocks::escape(&err.to_string())),
            },
            Err(refusal) => format!("No rollback offered: {}", blocks::escape(&refusal.to_string())),
        };
        tracing::info!(proposal = %failed.id, "{message}");
        if let (Some(slack), Some(at)) = (&self.slack, &failed.slack)
            && let Err(err) = slack.reply(at, &message).await
        {
            tracing::warn!(proposal = %failed.id, error = %crate::model::error::error_chain(&err), "cannot reply in the Slack thread");
        }
    }

    async fn expire(&self, id: &str) -> Result<Option<Proposal>, ApprovalError> {
        let now = Timestamp::now();
        let result = self
            .update(id, |p| {
                if !matches!(p.state, ProposalState::Proposed | ProposalState::Pending) || p.expires_at > now {
                    return Err(ApprovalError::AlreadyDecided { id: p.id.clone(), state: p.state, by: None });
                }
                p.transition(&ProposalEvent::Expire, &self.replica, now)?;
                Ok(())
            })
            .await;
        match result {
            Ok(p) => {
                tracing::info!(proposal = %p.id, "proposal expired without a decision");
                self.audit_event(&p, "expire", "expired", "");
                lock(&self.context).remove(&p.id);
                self.tell_slack(&p, None).await;
                Ok(Some(p))
            }
            Err(ApprovalError::AlreadyDecided { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Expire every open proposal past its deadline; returns those expired.
    pub async fn expire_due(&self) -> Result<Vec<Proposal>, ApprovalError> {
        let now = Timestamp::now();
        let mut out = Vec::new();
        for p in self.store.list_proposals().await? {
            if matches!(p.state, ProposalState::Proposed | ProposalState::Pending)
                && p.cluster == self.cluster.name
                && p.expires_at <= now
                && let Some(e) = self.expire(&p.id).await?
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// On start-up: finish what a crash interrupted. `approved` is applied,
    /// `applying` is checked against the object (applied only if its change
    /// is not there and the object is unchanged), `applied` is verified,
    /// `proposed` is offered, overdue open proposals expire.
    pub async fn resume(&self) -> Result<Vec<Proposal>, ApprovalError> {
        let now = Timestamp::now();
        // Only this cluster's proposals (several daemons, one per cluster, may share a store).
        for p in self.store.list_proposals().await?.into_iter().filter(|p| p.cluster == self.cluster.name) {
            match p.state {
                ProposalState::Proposed if p.expires_at > now => {
                    self.offer(&p.id).await?;
                }
                ProposalState::Proposed | ProposalState::Pending if p.expires_at <= now => {
                    self.expire(&p.id).await?;
                }
                _ => {}
            }
        }
        self.resume_applies().await
    }

    /// Finish the approved changes an exit interrupted: `approved` is applied, `applying`
    /// checked and applied only if its change is not there, `applied` verified. What
    /// `kubemedic mcp` runs at start with a store of its own (a client that closed it during
    /// a verification left the proposal `applied`).
    pub async fn resume_applies(&self) -> Result<Vec<Proposal>, ApprovalError> {
        let work: Vec<Proposal> = self
            .store
            .list_proposals()
            .await?
            .into_iter()
            .filter(|p| p.cluster == self.cluster.name)
            .filter(|p| matches!(p.state, ProposalState::Approved | ProposalState::Applying | ProposalState::Applied))
            .collect();
        let results = futures::future::join_all(work.into_iter().map(|p| self.resume_one(p))).await;
        let mut out = Vec::new();
        for r in results {
            if let Some(p) = r? {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn resume_one(&self, p: Proposal) -> Result<Option<Proposal>, ApprovalError> {
        tracing::info!(proposal = %p.id, state = p.state.as_str(), "resuming proposal after restart");
        match p.state {
            ProposalState::Approved => self.execute(&p.id).await.map(Some),
            ProposalState::Applied => {
                let Some(p) = self.take_over(&p).await? else { return Ok(None) };
                let applied = match apply::landing(&self.cluster, &p).await {
                    Ok(Landing::Landed(a)) => a,
                    _ => apply::Applied { generation: None, resource_version: String::new(), already: true },
                };
                self.verify(p, applied).await.map(Some)
            }
            ProposalState::Applying => {
                let Some(claimed) = self.take_over(&p).await? else { return Ok(None) };
                match apply::landing(&self.cluster, &claimed).await {
                    Ok(Landing::Landed(applied)) => self.after_apply(&claimed.id, applied).await.map(Some),
                    Ok(Landing::NotLanded) => self.apply_claimed(claimed).await.map(Some),
                    Ok(Landing::Changed { found, what }) => {
                        let expected = claimed.target.resource_version.clone().unwrap_or_default();
                        let err = apply::ApplyError::TargetChanged { expected, found, what };
                        self.fail_apply(&claimed, err).await.map(Some)
                    }
                    Err(err) => self.fail_apply(&claimed, err).await.map(Some),
                }
            }
            _ => Ok(None),
        }
    }

    /// Claim an `applying` or `applied` proposal: ours (same replica name) at once,
    /// another replica's only after `takeover_seconds`. The claim is a CAS
    /// write, so two resuming replicas cannot both continue.
    async fn take_over(&self, p: &Proposal) -> Result<Option<Proposal>, ApprovalError> {
        let now = Timestamp::now();
        let grace = jiff::SignedDuration::from_secs(i64::try_from(self.config.takeover_seconds).unwrap_or(120));
        let replica = self.replica.clone();
        let result = self
            .update(&p.id, |q| {
                let last = q.history.last().cloned();
                let stale =
                    last.as_ref().is_none_or(|t| t.by == replica || t.at.checked_add(grace).is_ok_and(|d| d <= now));
                if q.state != p.state || !matches!(q.state, ProposalState::Applying | ProposalState::Applied) || !stale
                {
                    return Err(ApprovalError::AlreadyDecided { id: q.id.clone(), state: q.state, by: None });
                }
                q.history.push(proposal::Transition {
                    from: q.state,
                    to: q.state,
                    at: now,
                    by: replica.clone(),
                    note: "resumed after a restart".into(),
                });
                Ok(())
            })
            .await;
        match result {
            Ok(q) => Ok(Some(q)),
            Err(ApprovalError::AlreadyDecided { .. }) => {
                tracing::info!(proposal = %p.id, "applying proposal belongs to a live replica; not taking over yet");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// On the timer: finish `applying`/`applied` proposals another replica left behind (it died
    /// and a replica under another name took its place, so its own start-up resume never
    /// comes). Only another replica's, only once nothing was recorded for longer than both
    /// `takeover_seconds` and a whole verification, so a live replica still verifying keeps
    /// its work; the claim itself is a CAS (see [`Approvals::take_over`]).
    pub async fn take_over_abandoned(&self) -> Result<Vec<Proposal>, ApprovalError> {
        let quiet = self.config.takeover_seconds.max(self.config.verify_timeout_seconds.saturating_add(30));
        let quiet = jiff::SignedDuration::from_secs(i64::try_from(quiet).unwrap_or(i64::MAX / 2));
        let now = Timestamp::now();
        let mut out = Vec::new();
        for p in self.store.list_proposals().await?.into_iter().filter(|p| p.cluster == self.cluster.name) {
            let abandoned = matches!(p.state, ProposalState::Applying | ProposalState::Applied)
                && p.history
                    .last()
                    .is_some_and(|t| t.by != self.replica && t.at.checked_add(quiet).is_ok_and(|d| d <= now));
            if abandoned && let Some(done) = self.resume_one(p).await? {
                out.push(done);
            }
        }
        Ok(out)
    }

    /// Background duties until `cancel`: resume once, then expire open
    /// proposals and post those Slack has not got yet, on a timer.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if let Err(err) = self.resume().await {
            tracing::error!(error = %crate::model::error::error_chain(&err), "cannot resume proposals after start-up");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.expiry_interval_seconds.max(1)));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(err) = self.expire_due().await {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot expire proposals");
                    }
                    if let Err(err) = self.post_unposted().await {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot post proposals to Slack");
                    }
                    if let Err(err) = self.take_over_abandoned().await {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot take over abandoned proposals");
                    }
                }
            }
        }
    }
}

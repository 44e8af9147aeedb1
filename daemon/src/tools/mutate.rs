//! Mutating tools. None of them mutates: each builds a draft, passes it
//! through the patch policy and a server-side dry-run
//! ([`crate::policy::prepare`]), and submits the resulting proposal to the
//! approvals service, which stores it as pending. Only [`Tools::decide`],
//! called after a human confirmed (MCP elicitation, Slack, CLI), approves
//! it; the approvals service then applies it exactly once and verifies.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::{ProposalIdInput, check_id};
use super::workload::{ROLLOUT_KINDS, rs_revision};
use super::{Caller, ToolError, Tools, kinds, require};
use crate::model::identity::Role;
use crate::model::proposal::{Action, Drafter, PatchType, Proposal, ProposalState, Risk};
use crate::policy::ProposalDraft;
use crate::telemetry::audit::{AuditKind, AuditRecord};

/// Where proposals go: the approvals service (stores, offers, and on an
/// approval applies exactly once and verifies).
#[async_trait]
pub trait ProposalSink: Send + Sync + 'static {
    /// Store and offer a prepared proposal; returns it in state `pending`.
    async fn submit(&self, proposal: Proposal) -> Result<Proposal, String>;
    /// Store a draft the policy or the dry-run refused (a proposal already in the terminal
    /// state `refused`, see [`crate::policy::Refusal::record`]), so the attempt shows in
    /// `list_proposals` and on the audit trail; returns it as stored.
    async fn record_refused(&self, proposal: Proposal) -> Result<Proposal, String>;
    /// One decision by `user`; on approval the service applies and verifies.
    async fn decide(&self, id: &str, user: &str, approve: bool) -> Result<Proposal, String>;
    /// [`ProposalSink::decide`] naming the channel (`via`, for the audit trail and the seal),
    /// the content digest the decider was shown, and the Kubernetes identity an approved change
    /// is sent as (`auth.impersonate`; sealed into the approval).
    async fn decide_via(
        &self,
        id: &str,
        user: &str,
        approve: bool,
        via: &str,
        digest: Option<&str>,
        kube: Option<crate::model::proposal::KubeIdentity>,
    ) -> Result<Proposal, String> {
        let _ = (via, digest, kube);
        self.decide(id, user, approve).await
    }
    /// `approvals.allow_self_approval`.
    fn allow_self_approval(&self) -> bool {
        false
    }
    /// `approvals.mcp_accept_applies`.
    fn mcp_accept_applies(&self) -> bool {
        true
    }
    /// Every stored transition of a proposal made through this sink, as it happens (MCP
    /// resource updates and task status); `None` when the sink cannot tell (then readers poll).
    fn updates(&self) -> Option<tokio::sync::broadcast::Receiver<Proposal>> {
        None
    }
}

#[async_trait]
impl ProposalSink for crate::approvals::Approvals {
    async fn submit(&self, proposal: Proposal) -> Result<Proposal, String> {
        crate::approvals::Approvals::submit(self, proposal).await.map_err(|e| crate::model::error::error_chain(&e))
    }

    async fn record_refused(&self, proposal: Proposal) -> Result<Proposal, String> {
        crate::approvals::Approvals::record_refused(self, proposal)
            .await
            .map_err(|e| crate::model::error::error_chain(&e))
    }

    async fn decide(&self, id: &str, user: &str, approve: bool) -> Result<Proposal, String> {
        crate::approvals::Approvals::decide(self, id, user, approve)
            .await
            .map_err(|e| crate::model::error::error_chain(&e))
    }

    async fn decide_via(
        &self,
        id: &str,
        user: &str,
        approve: bool,
        via: &str,
        digest: Option<&str>,
        kube: Option<crate::model::proposal::KubeIdentity>,
    ) -> Result<Proposal, String> {
        let d = crate::approvals::Decision { user, identity: user, approve, via, digest };
        // MCP clients have short tool timeouts: the apply and its verification go on in the
        // background and are followed through the proposal's resource, a task or wait_proposal.
        crate::approvals::Approvals::decide_in_background(self, id, &d, kube)
            .await
            .map_err(|e| crate::model::error::error_chain(&e))
    }

    fn updates(&self) -> Option<tokio::sync::broadcast::Receiver<Proposal>> {
        Some(self.subscribe())
    }

    fn allow_self_approval(&self) -> bool {
        self.config().allow_self_approval
    }

    fn mcp_accept_applies(&self) -> bool {
        self.config().mcp_accept_applies
    }
}

/// Shared handle.
pub type SharedSink = Arc<dyn ProposalSink>;

/// Input of `propose_patch`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposePatchInput {
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet, Job, Pod, Service, ConfigMap, ...
    pub kind: String,
    pub name: String,
    /// `strategic`, `merge` or `json` (RFC 6902).
    pub patch_type: PatchType,
    /// The patch body (an object for strategic/merge, an array for json).
    pub patch: Value,
    /// Why this change fixes the root cause (shown to the approver).
    pub rationale: String,
    /// Incident this remedies, if any.
    #[serde(default)]
    pub incident_id: Option<String>,
}

/// Input of `rollout_restart`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartInput {
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    pub name: String,
    /// Why (shown to the approver).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `rollout_undo`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoInput {
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    pub name: String,
    /// Revision to go back to; default the one before the current.
    #[serde(default)]
    pub to_revision: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `scale`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleInput {
    pub namespace: String,
    /// Deployment, StatefulSet or ReplicaSet.
    pub kind: String,
    pub name: String,
    /// Desired replicas (0-1000; the patch policy may cap it lower).
    pub replicas: i64,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `delete_pod`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePodInput {
    pub namespace: String,
    /// Pod name.
    pub name: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Output of every mutating tool.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct MutationOutput {
    /// The proposal as it stands: `pending` until a human decides; `approved`/`applied`/`verified` after confirmation.
    pub proposal: Proposal,
    /// What happened and what is next, for humans.
    pub message: String,
}

impl Tools {
    /// `approvals.allow_self_approval` of the approvals service (false without one).
    pub fn allow_self_approval(&self) -> bool {
        self.approvals.as_ref().is_some_and(|a| a.allow_self_approval())
    }

    /// `approvals.mcp_accept_applies` of the approvals service (true without one).
    pub fn mcp_accept_applies(&self) -> bool {
        self.approvals.as_ref().is_none_or(|a| a.mcp_accept_applies())
    }

    fn sink(&self) -> Result<&SharedSink, ToolError> {
        self.approvals.as_ref().ok_or(ToolError::Unavailable {
            what: "approvals service",
            why: "mutating tools need the daemon's approvals service (`kubemedic run` or stdio with a store)".into(),
        })
    }

    /// Policy (the tier of `drafter`) + dry-run, then submit as pending. A refused draft is
    /// stored as a `refused` proposal (reason through the redaction gate) and the caller
    /// gets the refusal, naming that record.
    async fn propose(
        &self,
        caller: &Caller,
        drafter: Drafter,
        mut draft: ProposalDraft,
    ) -> Result<MutationOutput, ToolError> {
        let sink = self.sink()?.clone();
        draft.requested_by = format!("{} ({})", caller.user, caller.transport.as_str());
        draft.ttl_seconds = self.proposal_ttl_seconds;
        let prepared = match crate::policy::prepare(&self.cluster, &self.policy, drafter, draft.clone()).await {
            Ok(p) => p,
            Err(refusal) => {
                let record = refusal.record(&self.cluster.name, drafter, draft);
                let why = crate::redact::gate().text(&refusal.to_string()).into_owned();
                return Err(match sink.record_refused(record).await {
                    Ok(stored) => ToolError::Refused(format!("{why} (recorded as refused proposal {})", stored.id)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a refused proposal");
                        ToolError::Refused(why)
                    }
                });
            }
        };
        let pending = sink.submit(prepared).await.map_err(ToolError::Approvals)?;
        let message = format!(
            "Proposal {} is {}: nothing was changed. An approver must confirm it (MCP confirmation, Slack, or `kubemedic approve {}`).",
            pending.id,
            pending.state.as_str(),
            pending.id
        );
        Ok(MutationOutput { proposal: pending, message })
    }

    fn workload_target(
        &self,
        tool: &str,
        ns: &str,
        kind: &str,
        name: &str,
        allowed: &[&str],
    ) -> Result<&'static str, ToolError> {
        let scope = &self.cluster.scope;
        kinds::namespace(tool, scope, ns)?;
        kinds::name(tool, "name", name)?;
        Ok(kinds::resolve_one_of(tool, scope, kind, allowed)?.kind)
    }

    pub async fn propose_patch(&self, caller: &Caller, input: ProposePatchInput) -> Result<MutationOutput, ToolError> {
        const TOOL: &str = "propose_patch";
        let scope = &self.cluster.scope;
        kinds::namespace(TOOL, scope, &input.namespace)?;
        kinds::name(TOOL, "name", &input.name)?;
        let kind = kinds::resolve(TOOL, scope, &input.kind)?.kind;
        match (&input.patch_type, &input.patch) {
            (PatchType::Json, Value::Array(ops)) if !ops.is_empty() => {}
            (PatchType::Json, _) => {
                return Err(ToolError::invalid(TOOL, "a json patch must be a non-empty array of operations"));
            }
            (_, Value::Object(m)) if !m.is_empty() => {}
            _ => return Err(ToolError::invalid(TOOL, "a strategic or merge patch must be a non-empty object")),
        }
        if input.rationale.trim().is_empty() {
            return Err(ToolError::invalid(TOOL, "rationale must say why the change fixes the root cause"));
        }
        if serde_json::to_vec(&input.patch).map_or(0, |b| b.len()) > 64 * 1024 {
            return Err(ToolError::invalid(TOOL, "patch is larger than 64 KiB"));
        }
        if let Some(id) = &input.incident_id {
            check_id(TOOL, id)?;
        }
        let mut draft =
            ProposalDraft::patch(kind, &input.namespace, &input.name, input.patch_type, input.patch, &input.rationale);
        draft.incident_id = input.incident_id;
        self.propose(caller, Drafter::Mcp, draft).await
    }

    pub async fn rollout_restart(&self, caller: &Caller, input: RestartInput) -> Result<MutationOutput, ToolError> {
        let kind =
            self.workload_target("rollout_restart", &input.namespace, &input.kind, &input.name, ROLLOUT_KINDS)?;
        let body = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": jiff::Timestamp::now().to_string()
        }}}}});
        let why = input.reason.unwrap_or_else(|| {
            "Restart the pods (rolling) to pick up changed configuration or clear a bad state.".into()
        });
        let mut draft = ProposalDraft::patch(kind, &input.namespace, &input.name, PatchType::Strategic, body, &why);
        draft.risk = Some(Risk::Medium);
        self.propose(caller, Drafter::Builtin, draft).await
    }

    pub async fn rollout_undo(&self, caller: &Caller, input: UndoInput) -> Result<MutationOutput, ToolError> {
        const TOOL: &str = "rollout_undo";
        let kind = self.workload_target(TOOL, &input.namespace, &input.kind, &input.name, ROLLOUT_KINDS)?;
        if let Some(r) = input.to_revision {
            kinds::cap(TOOL, "to_revision", r, 1, i64::from(i32::MAX))?;
        }
        let tree = self.workload_tree(TOOL, &input.namespace, kind, &input.name).await?;
        let (revision, action) = if kind == "Deployment" {
            let current = tree
                .object
                .annotations()
                .get(super::workload::REVISION_ANNOTATION)
                .map(String::as_str)
                .and_then(|r| r.parse::<i64>().ok());
            let mut candidates: Vec<_> =
                tree.replica_sets.iter().filter_map(|rs| rs_revision(rs).map(|r| (r, rs))).collect();
            candidates.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
            let (rev, rs) = match input.to_revision {
                Some(want) => candidates.into_iter().find(|(r, _)| *r == want).ok_or_else(|| {
                    ToolError::invalid(
                        TOOL,
                        format!("Deployment {}/{} has no revision {want}", input.namespace, input.name),
                    )
                })?,
                None => candidates.into_iter().find(|(r, _)| Some(*r) != current).ok_or_else(|| {
                    ToolError::invalid(
                        TOOL,
                        format!("Deployment {}/{} has no previous revision", input.namespace, input.name),
                    )
                })?,
            };
            if Some(rev) == current {
                return Err(ToolError::invalid(TOOL, format!("revision {rev} is already the current one")));
            }
            let mut template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| serde_json::to_value(t).ok())
                .ok_or_else(|| ToolError::invalid(TOOL, format!("ReplicaSet {} has no pod template", rs.name_any())))?;
            if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
                labels.remove("pod-template-hash");
            }
            (
                rev,
                Action::Patch {
                    patch_type: PatchType::Json,
                    body: json!([{"op": "replace", "path": "/spec/template", "value": template}]),
                },
            )
        } else {
            let uid = tree.object.uid().unwrap_or_default();
            let current =
                tree.object.data.pointer("/status/currentRevision").and_then(Value::as_str).map(str::to_owned);
            let api: Api<ControllerRevision> = Api::namespaced(self.cluster.client.clone(), &input.namespace);
            let mut revs: Vec<ControllerRevision> = api
                .list(&ListParams::default())
                .await
                .map_err(|e| ToolError::kube("list controllerrevisions", e))?
                .items
                .into_iter()
                .filter(|c| c.owner_references().iter().any(|o| o.uid == uid))
                .collect();
            revs.sort_by_key(|c| std::cmp::Reverse(c.revision));
            let newest = revs.first().map(|c| c.revision);
            let cr = match input.to_revision {
                Some(want) => revs.into_iter().find(|c| c.revision == want),
                None => revs.into_iter().find(|c| Some(c.revision) != newest && Some(c.name_any()) != current),
            }
            .ok_or_else(|| {
                ToolError::invalid(
                    TOOL,
                    format!("{kind} {}/{} has no such previous revision", input.namespace, input.name),
                )
            })?;
            let body = cr.data.as_ref().map(|d| d.0.clone()).unwrap_or(Value::Null);
            if !body.is_object() {
                return Err(ToolError::invalid(TOOL, format!("ControllerRevision {} has no data", cr.name_any())));
            }
            (cr.revision, Action::Patch { patch_type: PatchType::Strategic, body })
        };
        let why = input
            .reason
            .unwrap_or_else(|| format!("Roll {kind} {}/{} back to revision {revision}.", input.namespace, input.name));
        let mut draft =
            ProposalDraft::patch(kind, &input.namespace, &input.name, PatchType::Strategic, Value::Null, &why);
        draft.action = action;
        draft.risk = Some(Risk::Medium);
        self.propose(caller, Drafter::Builtin, draft).await
    }

    pub async fn scale(&self, caller: &Caller, input: ScaleInput) -> Result<MutationOutput, ToolError> {
        const TOOL: &str = "scale";
        let kind = self.workload_target(
            TOOL,
            &input.namespace,
            &input.kind,
            &input.name,
            &["Deployment", "StatefulSet", "ReplicaSet"],
        )?;
        let replicas = kinds::cap(TOOL, "replicas", input.replicas, 0, 1000)?;
        let why = input
            .reason
            .unwrap_or_else(|| format!("Scale {kind} {}/{} to {replicas} replicas.", input.namespace, input.name));
        let mut draft = ProposalDraft::patch(
            kind,
            &input.namespace,
            &input.name,
            PatchType::Merge,
            json!({"spec": {"replicas": replicas}}),
            &why,
        );
        draft.risk = Some(if replicas == 0 { Risk::High } else { Risk::Low });
        self.propose(caller, Drafter::Builtin, draft).await
    }

    pub async fn delete_pod(&self, caller: &Caller, input: DeletePodInput) -> Result<MutationOutput, ToolError> {
        const TOOL: &str = "delete_pod";
        kinds::namespace(TOOL, &self.cluster.scope, &input.namespace)?;
        kinds::name(TOOL, "name", &input.name)?;
        kinds::resolve(TOOL, &self.cluster.scope, "Pod")?;
        let why = input.reason.unwrap_or_else(|| {
            format!("Delete pod {}/{} so its controller recreates it.", input.namespace, input.name)
        });
        let mut draft = ProposalDraft::patch("Pod", &input.namespace, &input.name, PatchType::Merge, Value::Null, &why);
        draft.action = Action::Delete;
        draft.risk = Some(Risk::Medium);
        self.propose(caller, Drafter::Builtin, draft).await
    }

    /// `apply_proposal`: checks the proposal can be approved by this caller;
    /// the approval itself needs a confirmation and goes through [`Tools::decide`].
    pub async fn apply_proposal(&self, caller: &Caller, input: ProposalIdInput) -> Result<MutationOutput, ToolError> {
        const TOOL: &str = "apply_proposal";
        check_id(TOOL, &input.id)?;
        let p = self.load_proposal(&input.id).await?;
        self.check_decidable(caller, &p)?;
        Ok(MutationOutput {
            message: format!(
                "Proposal {} is {} and waits for confirmation; nothing was changed.",
                p.id,
                p.state.as_str()
            ),
            proposal: p,
        })
    }

    /// With `auth.impersonate`: the approver may approve only a change the cluster's RBAC lets
    /// them make themselves (a SelfSubjectAccessReview sent as them: `patch`, or `delete`, on
    /// the target).
    async fn check_approver_rbac(&self, caller: &Caller, p: &Proposal) -> Result<(), ToolError> {
        use crate::approvals::rbac::{ApproverRbacError, approver_may};
        let Some(impersonation) = self.impersonating(caller) else { return Ok(()) };
        approver_may(impersonation, &caller.user, &caller.groups, p).await.map_err(|e| match e {
            ApproverRbacError::Denied(why) => ToolError::RbacDenied(why),
            ApproverRbacError::Unavailable { .. } => {
                ToolError::Unavailable { what: "access review", why: crate::model::error::error_chain(&e) }
            }
        })
    }

    fn check_decidable(&self, caller: &Caller, p: &Proposal) -> Result<(), ToolError> {
        require(caller, "approving a proposal", Role::Approver)?;
        if !matches!(p.state, ProposalState::Pending | ProposalState::Proposed) {
            return Err(ToolError::invalid(
                "apply_proposal",
                format!("proposal {} is {}, not pending", p.id, p.state.as_str()),
            ));
        }
        if !p.approvers.is_empty() && !p.approvers.iter().any(|a| a == &caller.user) {
            return Err(ToolError::Forbidden {
                tool: format!("approving proposal {}", p.id),
                user: caller.user.clone(),
                needed: Role::Approver,
                has: caller.role,
            });
        }
        Ok(())
    }

    /// A human's decision on a proposal, after they confirmed. Approving makes
    /// the approvals service apply it (exactly once) and verify.
    pub async fn decide(&self, caller: &Caller, id: &str, approve: bool) -> Result<Proposal, ToolError> {
        self.decide_via(caller, id, approve, caller.transport.as_str(), None).await
    }

    /// [`Tools::decide`] naming the channel and the digest the caller was shown.
    pub async fn decide_via(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        via: &str,
        digest: Option<&str>,
    ) -> Result<Proposal, ToolError> {
        let started = std::time::Instant::now();
        let decision = if approve { "approve" } else { "reject" };
        let result = async {
            check_id("decide", id)?;
            let p = self.load_proposal(id).await?;
            self.check_decidable(caller, &p)?;
            if approve {
                self.check_approver_rbac(caller, &p).await?;
            }
            let kube = self.impersonating(caller).map(|_| crate::model::proposal::KubeIdentity {
                user: caller.user.clone(),
                groups: caller.groups.clone(),
            });
            self.sink()?.decide_via(id, &caller.user, approve, via, digest, kube).await.map_err(ToolError::Approvals)
        }
        .await;
        let (outcome, detail) = match &result {
            Ok(p) => (p.state.as_str().to_owned(), p.outcome.clone().unwrap_or_default()),
            Err(e) => (e.outcome().to_owned(), crate::model::error::error_chain(e)),
        };
        let mut record = AuditRecord::new(AuditKind::Decision, &caller.user, via, decision)
            .target(id)
            .outcome(&outcome, &detail)
            .duration(started.elapsed());
        if self.impersonating(caller).is_some() {
            record = record.impersonated(&caller.user, &caller.groups);
        }
        self.audit.record(record);
        result
    }
}

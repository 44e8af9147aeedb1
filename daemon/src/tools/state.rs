//! Reads of kubemedic's own state: incidents and proposals (from the store),
//! limited to the visible namespaces.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Caller, ToolError, Tools, kinds};
use crate::model::incident::{Incident, IncidentStatus};
use crate::model::proposal::{Proposal, ProposalState};
use crate::store::Store;

/// Input of `list_incidents`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIncidentsInput {
    /// Only incidents in this state (`open`, `diagnosing`, `diagnosed`, `resolved`).
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    /// Only incidents in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Most incidents to return, newest first (1-200, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Output of `list_incidents`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct IncidentsOutput {
    pub incidents: Vec<Incident>,
}

/// Input of `list_proposals`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListProposalsInput {
    /// Only proposals in this state (`pending`, `approved`, `applied`, ...).
    #[serde(default)]
    pub state: Option<ProposalState>,
    /// Most proposals to return, newest first (1-200, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Output of `list_proposals`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ProposalsOutput {
    pub proposals: Vec<Proposal>,
}

/// Input of `get_proposal` and `apply_proposal`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalIdInput {
    /// Proposal id.
    pub id: String,
}

/// Output of `get_proposal`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ProposalOutput {
    pub proposal: Proposal,
}

/// Input of `wait_proposal`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitProposalInput {
    /// Proposal id.
    pub id: String,
    /// Wait up to this many seconds (0-600, default 60) for the proposal to reach a final
    /// state (verified, failed, rejected, expired or refused), with a progress notification
    /// at each change of state.
    #[serde(default)]
    pub wait_seconds: Option<i64>,
}

/// Output of `wait_proposal`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct WaitProposalOutput {
    pub proposal: Proposal,
    /// The proposal reached a final state (else the wait ran out first).
    pub finished: bool,
    pub waited_seconds: u64,
}

/// How far along a proposal is, for progress reports: proposed/pending 1, approved 2,
/// applying 3, applied 4, any final state 5 (of [`PROPOSAL_STEPS`]).
pub fn proposal_step(state: ProposalState) -> f64 {
    match state {
        s if s.is_terminal() => 5.0,
        ProposalState::Applied => 4.0,
        ProposalState::Applying => 3.0,
        ProposalState::Approved => 2.0,
        _ => 1.0,
    }
}

/// The last of [`proposal_step`]'s steps.
pub const PROPOSAL_STEPS: f64 = 5.0;

/// Input of `drift_check`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftInput {
    /// Only objects in this namespace; omit for every visible namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Proposal ids are uuids; refuse anything else before it reaches a store key.
pub(crate) fn check_id(tool: &str, id: &str) -> Result<(), ToolError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(ToolError::invalid(tool, format!("`{}` is not a proposal id", id.chars().take(70).collect::<String>())))
    }
}

impl Tools {
    pub(crate) fn store_or_err(&self) -> Result<&dyn Store, ToolError> {
        self.store
            .as_deref()
            .ok_or(ToolError::Unavailable { what: "state store", why: "this process runs without one".into() })
    }

    pub async fn list_incidents(
        &self,
        _caller: &Caller,
        input: ListIncidentsInput,
    ) -> Result<IncidentsOutput, ToolError> {
        const TOOL: &str = "list_incidents";
        let scope = &self.cluster.scope;
        let ns = kinds::optional_namespace(TOOL, scope, input.namespace.as_deref())?;
        let limit = kinds::cap(TOOL, "limit", input.limit.unwrap_or(50), 1, 200)? as usize;
        let mut incidents: Vec<Incident> = self
            .store_or_err()?
            .list_incidents()
            .await
            .map_err(ToolError::Store)?
            .into_iter()
            .filter(|i| i.cluster == self.cluster.name)
            .filter(|i| i.workload.namespace.is_empty() || scope.namespace_visible(&i.workload.namespace))
            .filter(|i| ns.is_none_or(|n| i.workload.namespace == n))
            .filter(|i| input.status.is_none_or(|s| i.status == s))
            .collect();
        incidents.sort_by_key(|i| std::cmp::Reverse(i.last_seen));
        incidents.truncate(limit);
        // The full diagnosis is for the incident's own page; a listing stays small.
        for i in &mut incidents {
            i.diagnosis = None;
        }
        Ok(IncidentsOutput { incidents })
    }

    /// Compare live objects with their desired state now (the drift module's sources).
    pub async fn drift_check(
        &self,
        _caller: &Caller,
        input: DriftInput,
    ) -> Result<crate::drift::DriftReport, ToolError> {
        const TOOL: &str = "drift_check";
        let scope = &self.cluster.scope;
        let ns = kinds::optional_namespace(TOOL, scope, input.namespace.as_deref())?;
        let mut report = crate::drift::report(&self.cluster, &self.drift)
            .await
            .map_err(|e| ToolError::Unavailable { what: "drift report", why: crate::model::error::error_chain(&e) })?;
        report.objects.retain(|o| {
            scope.kind_visible(&o.kind)
                && o.namespace.as_deref().is_none_or(|n| scope.namespace_visible(n))
                && ns.is_none_or(|want| o.namespace.as_deref() == Some(want))
        });
        Ok(report)
    }

    pub async fn list_proposals(
        &self,
        _caller: &Caller,
        input: ListProposalsInput,
    ) -> Result<ProposalsOutput, ToolError> {
        const TOOL: &str = "list_proposals";
        let limit = kinds::cap(TOOL, "limit", input.limit.unwrap_or(50), 1, 200)? as usize;
        let mut proposals: Vec<Proposal> = self
            .store_or_err()?
            .list_proposals()
            .await
            .map_err(ToolError::Store)?
            .into_iter()
            .filter(|p| self.proposal_visible(p))
            .filter(|p| input.state.is_none_or(|s| p.state == s))
            .collect();
        proposals.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        proposals.truncate(limit);
        Ok(ProposalsOutput { proposals })
    }

    pub async fn get_proposal(&self, _caller: &Caller, input: ProposalIdInput) -> Result<ProposalOutput, ToolError> {
        check_id("get_proposal", &input.id)?;
        Ok(ProposalOutput { proposal: self.load_proposal(&input.id).await? })
    }

    /// `wait_proposal`: follow a proposal until it reaches a final state or the wait runs out.
    pub async fn wait_proposal(
        &self,
        _caller: &Caller,
        input: WaitProposalInput,
        progress: Option<super::ProgressFn>,
    ) -> Result<WaitProposalOutput, ToolError> {
        const TOOL: &str = "wait_proposal";
        check_id(TOOL, &input.id)?;
        let wait = kinds::cap(TOOL, "wait_seconds", input.wait_seconds.unwrap_or(60), 0, 600)?;
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs(u64::try_from(wait).unwrap_or(0));
        let proposal = self
            .follow_proposal(&input.id, Some(deadline), |p| {
                if let Some(report) = &progress {
                    report(
                        proposal_step(p.state),
                        Some(PROPOSAL_STEPS),
                        format!("proposal {}: {}", p.id, p.state.as_str()),
                    );
                }
            })
            .await?;
        Ok(WaitProposalOutput {
            finished: proposal.state.is_terminal(),
            proposal,
            waited_seconds: started.elapsed().as_secs(),
        })
    }

    /// Follow proposal `id` until it reaches a final state (or `deadline`), calling `changed`
    /// with it first and at every change of state. Woken by the approvals service's updates
    /// when this process applies it, and by reading the store every second otherwise (a
    /// decision in Slack or the CLI reaches a shared store from another process).
    pub async fn follow_proposal(
        &self,
        id: &str,
        deadline: Option<std::time::Instant>,
        mut changed: impl FnMut(&Proposal) + Send,
    ) -> Result<Proposal, ToolError> {
        use tokio::sync::broadcast::error::RecvError;
        const POLL: std::time::Duration = std::time::Duration::from_secs(1);
        let mut updates = self.proposal_updates();
        let mut last = None;
        loop {
            let p = self.load_proposal(id).await?;
            if last != Some(p.state) {
                changed(&p);
                last = Some(p.state);
            }
            let now = std::time::Instant::now();
            if p.state.is_terminal() || deadline.is_some_and(|d| now >= d) {
                return Ok(p);
            }
            let tick = deadline.map_or(POLL, |d| d.saturating_duration_since(now).min(POLL));
            match updates.as_mut() {
                Some(rx) => {
                    let woken = async {
                        loop {
                            match rx.recv().await {
                                Ok(u) if u.id == id => return true,
                                Ok(_) => {}
                                Err(RecvError::Lagged(_)) => return true,
                                Err(RecvError::Closed) => return false,
                            }
                        }
                    };
                    if let Ok(false) = tokio::time::timeout(tick, woken).await {
                        updates = None;
                    }
                }
                None => tokio::time::sleep(tick).await,
            }
        }
    }

    pub(crate) async fn load_proposal(&self, id: &str) -> Result<Proposal, ToolError> {
        match self.store_or_err()?.get_proposal(id).await.map_err(ToolError::Store)? {
            Some(v) if self.proposal_visible(&v.value) => Ok(v.value),
            _ => Err(ToolError::NotFound(format!("proposal {id}"))),
        }
    }

    fn proposal_visible(&self, p: &Proposal) -> bool {
        p.cluster == self.cluster.name
            && (p.target.namespace.is_empty() || self.cluster.scope.namespace_visible(&p.target.namespace))
            && self.cluster.scope.kind_visible(&p.target.kind)
    }
}

//! Incidents: signals folded by fingerprint (cluster, namespace, owning
//! workload, reason) so that an alert storm or a crash loop is one incident.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::diagnosis::Diagnosis;
use crate::model::signal::{Signal, WorkloadRef};

/// Lifecycle of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Seen, waiting for the agent.
    Open,
    /// The agent is running its workflow.
    Diagnosing,
    /// Diagnosed; proposals (if any) wait for a decision.
    Diagnosed,
    /// The condition cleared (alert resolved, pods healthy, or fix verified).
    Resolved,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    /// Stable id (uuid v7, sortable by time).
    pub id: String,
    /// Hex SHA-256 of cluster, namespace, workload and reason.
    pub fingerprint: String,
    pub cluster: String,
    pub workload: WorkloadRef,
    pub reason: String,
    /// Name of the rule that matched.
    pub rule: String,
    /// Prompt workflow the rule chose.
    pub prompt: String,
    /// Arguments for the prompt.
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// Whether the rule allows proposing mutations.
    pub allow_mutations: bool,
    /// Slack user ids (or MCP/CLI user names) allowed to approve; empty = any approver.
    #[serde(default)]
    pub approvers: Vec<String>,
    pub status: IncidentStatus,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// How many signals were folded into it.
    pub count: u64,
    /// The first signal, kept as evidence.
    pub first_signal: Signal,
    /// Diagnosis summary once the agent has run.
    pub summary: Option<String>,
    /// Ids of proposals made for it.
    #[serde(default)]
    pub proposals: Vec<String>,
    /// The last diagnosis (causal chain, evidence), for the web page; absent before one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Box<Diagnosis>>,
}

/// Fingerprint of (cluster, namespace, workload, reason).
pub fn fingerprint(cluster: &str, workload: &WorkloadRef, reason: &str) -> String {
    let mut h = Sha256::new();
    // Length-prefixed: a separator byte could be forged by an alert label containing it.
    for part in [cluster, &workload.namespace, &workload.kind, &workload.name, reason] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a diagnosis attempt changes on its incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: IncidentStatus,
    pub summary: Option<String>,
    /// Proposals made for it (added to those it has).
    pub proposals: Vec<String>,
    /// The diagnosis that produced this progress, when one completed.
    pub diagnosis: Option<Box<Diagnosis>>,
}

impl Progress {
    pub fn status(status: IncidentStatus) -> Self {
        Self { status, summary: None, proposals: Vec::new(), diagnosis: None }
    }

    pub fn with_summary(mut self, summary: String) -> Self {
        self.summary = Some(summary);
        self
    }

    /// Merge into the stored incident. A resolution stays: the condition cleared while the
    /// agent ran, and the diagnosis is kept as its summary.
    pub fn apply(&self, incident: &mut Incident) {
        if incident.status != IncidentStatus::Resolved {
            incident.status = self.status;
        }
        if let Some(summary) = &self.summary {
            incident.summary = Some(summary.clone());
        }
        for id in &self.proposals {
            if !incident.proposals.contains(id) {
                incident.proposals.push(id.clone());
            }
        }
        if let Some(d) = &self.diagnosis {
            incident.diagnosis = Some(d.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_cannot_be_forged_with_a_separator_byte() {
        let a = fingerprint("c", &WorkloadRef::new("Deployment", "ns", "web"), "X");
        let forged = fingerprint("c", &WorkloadRef::new("Deployment", "ns\0Deployment", "web"), "X");
        assert_ne!(a, forged);
        let b = fingerprint("c", &WorkloadRef::new("Deployment", "ns", "web\0X"), "");
        assert_ne!(fingerprint("c", &WorkloadRef::new("Deployment", "ns", "web"), "X\0"), b);
    }

    #[test]
    fn fingerprint_separates_fields() {
        let a = fingerprint("c", &WorkloadRef::new("Deployment", "ns", "ab"), "X");
        let b = fingerprint("c", &WorkloadRef::new("Deployment", "nsa", "b"), "X");
        assert_ne!(a, b);
        assert_eq!(a, fingerprint("c", &WorkloadRef::new("Deployment", "ns", "ab"), "X"));
    }
    fn incident(status: IncidentStatus) -> Incident {
        let w = WorkloadRef::new("Deployment", "ns", "web");
        let now = Timestamp::UNIX_EPOCH;
        let signal = Signal {
            source: crate::model::signal::SignalSource::Cluster,
            status: crate::model::signal::SignalStatus::Firing,
            reason: "CrashLoopBackOff".into(),
            cluster: "c".into(),
            object: w.clone(),
            workload: Some(w.clone()),
            labels: BTreeMap::new(),
            severity: None,
            message: String::new(),
            observed_at: now,
        };
        Incident {
            id: "i-1".into(),
            fingerprint: fingerprint("c", &w, "CrashLoopBackOff"),
            cluster: "c".into(),
            workload: w,
            reason: "CrashLoopBackOff".into(),
            rule: "r".into(),
            prompt: "p".into(),
            arguments: BTreeMap::new(),
            allow_mutations: true,
            approvers: Vec::new(),
            status,
            first_seen: now,
            last_seen: now,
            count: 7,
            first_signal: signal,
            summary: None,
            proposals: vec!["p-0".into()],
            diagnosis: None,
        }
    }

    #[test]
    fn progress_keeps_what_it_does_not_own() {
        let mut inc = incident(IncidentStatus::Diagnosing);
        let mut done = Progress::status(IncidentStatus::Diagnosed).with_summary("bad key".into());
        done.proposals = vec!["p-1".into(), "p-0".into()];
        done.apply(&mut inc);
        assert_eq!(inc.status, IncidentStatus::Diagnosed);
        assert_eq!(inc.summary.as_deref(), Some("bad key"));
        assert_eq!(inc.proposals, ["p-0", "p-1"], "merged without duplicates");
        assert_eq!(inc.count, 7, "the tracker's count is not the diagnosis' to change");
    }

    #[test]
    fn progress_never_reopens_a_resolved_incident() {
        let mut inc = incident(IncidentStatus::Resolved);
        Progress::status(IncidentStatus::Open).with_summary("retry later".into()).apply(&mut inc);
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(inc.summary.as_deref(), Some("retry later"));
    }
}

//! Builders for test values: `Proposal::test()`, `Incident::test()` give a
//! complete, valid value with a fresh uuid v7 id; tests change what they are
//! about (`.with_id(..)`, or the public fields) and leave the rest.
//!
//! The proposal is built with the product's own constructor
//! ([`Proposal::new`]), so a test value is never something the daemon could
//! not have made.

use jiff::{SignedDuration, Timestamp};
use kubemedic::approvals::{Action, PatchType, Proposal, Risk, TargetRef};
use kubemedic::incident::{self, Incident, IncidentStatus};
use kubemedic::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

/// A test value of a kubemedic type.
pub trait Sample: Sized {
    /// A complete value with a fresh id.
    fn test() -> Self;
    /// The same value under `id`.
    fn with_id(self, id: &str) -> Self;
}

/// A proposed (not yet stored) rollback of Deployment `shop/web` to image
/// `web:1`, pinned to resourceVersion 42, approvable by Slack user `U1`,
/// expiring in an hour.
impl Sample for Proposal {
    fn test() -> Self {
        let target = TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: Some("42".into()),
            generation: None,
            content_digest: None,
        };
        let action = Action::Patch {
            patch_type: PatchType::Merge,
            body: serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
        };
        Proposal {
            diff: "-image: web:2\n+image: web:1\n".into(),
            rationale: "roll back to the last image whose pods ran".into(),
            risk: Risk::Low,
            approvers: vec!["U1".into()],
            requested_by: "rule:test".into(),
            ..Proposal::new("local", target, action, Timestamp::now(), SignedDuration::from_hours(1))
        }
    }

    fn with_id(self, id: &str) -> Self {
        Proposal { id: id.to_owned(), ..self }
    }
}

/// An open CrashLoopBackOff incident of Deployment `shop/web` on cluster
/// `local`, from one cluster signal of pod `web-1`.
impl Sample for Incident {
    fn test() -> Self {
        let now = Timestamp::now();
        let workload = WorkloadRef::new("Deployment", "shop", "web");
        Incident {
            id: uuid::Uuid::now_v7().to_string(),
            fingerprint: incident::fingerprint("local", &workload, "CrashLoopBackOff"),
            cluster: "local".into(),
            workload: workload.clone(),
            reason: "CrashLoopBackOff".into(),
            rule: "crashloop".into(),
            prompt: "diagnose-workload".into(),
            arguments: Default::default(),
            allow_mutations: true,
            approvers: vec![],
            status: IncidentStatus::Open,
            first_seen: now,
            last_seen: now,
            count: 1,
            first_signal: Signal {
                source: SignalSource::Cluster,
                status: SignalStatus::Firing,
                reason: "CrashLoopBackOff".into(),
                cluster: "local".into(),
                object: WorkloadRef::new("Pod", "shop", "web-1"),
                workload: Some(workload),
                labels: Default::default(),
                severity: None,
                message: "back-off restarting failed container".into(),
                observed_at: now,
            },
            summary: None,
            proposals: vec![],
            diagnosis: None,
        }
    }

    fn with_id(self, id: &str) -> Self {
        Incident { id: id.to_owned(), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_fresh_and_take_an_id() {
        let (a, b) = (Proposal::test(), Proposal::test());
        assert_ne!(a.id, b.id, "each proposal gets its own id");
        assert_eq!(a.state, kubemedic::approvals::ProposalState::Proposed);
        assert_eq!(a.expires_at.duration_since(a.created_at), SignedDuration::from_hours(1));
        assert_eq!(Proposal::test().with_id("p1").id, "p1");
        let i = Incident::test().with_id("i1");
        assert_eq!((i.id.as_str(), i.status), ("i1", IncidentStatus::Open));
        assert_eq!(i.fingerprint, incident::fingerprint("local", &i.workload, &i.reason));
    }
}

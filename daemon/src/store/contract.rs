//! The contract every [`Store`] implementation passes: the embedded store in
//! its unit tests, the NATS store against a real `nats-server` in
//! `tests/e2e/tests/approvals_store.rs`. It is public so that both run the
//! very same checks.
//!
//! Ids are fresh uuids on every run, so the suite also passes against a
//! bucket that already holds data.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{Store, StoreError};
use crate::approvals::{Action, PatchType, Proposal, ProposalEvent, ProposalState, Risk, TargetRef};
use crate::incident::{Incident, IncidentStatus};
use crate::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

/// A contract clause that did not hold.
#[derive(Debug, thiserror::Error)]
#[error("store contract violated: {0}")]
pub struct ContractError(pub String);

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(ContractError(format!($($msg)+)));
        }
    };
}

fn unexpected(what: &str, e: StoreError) -> ContractError {
    ContractError(format!("{what}: unexpected error: {e}"))
}

/// A pending-to-be proposal on a Deployment, for tests.
pub fn sample_proposal(id: &str) -> Proposal {
    let now = Timestamp::now();
    Proposal {
        id: id.to_owned(),
        incident_id: None,
        cluster: "local".into(),
        target: TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: Some("42".into()),
            generation: None,
            content_digest: None,
        },
        action: Action::Patch {
            patch_type: PatchType::Merge,
            body: serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
        },
        diff: "-image: web:2\n+image: web:1\n".into(),
        rationale: "roll back to the last image whose pods ran".into(),
        risk: Risk::Low,
        state: ProposalState::Proposed,
        approvers: vec!["U1".into()],
        requested_by: "rule:test".into(),
        created_at: now,
        expires_at: now + SignedDuration::from_hours(1),
        history: Vec::new(),
        outcome: None,
        slack: None,
    }
}

/// An open incident, for tests.
pub fn sample_incident(id: &str) -> Incident {
    let now = Timestamp::now();
    let workload = WorkloadRef::new("Deployment", "shop", "web");
    Incident {
        id: id.to_owned(),
        fingerprint: crate::incident::fingerprint("local", &workload, "CrashLoopBackOff"),
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
    }
}

fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Run every clause against `store`.
pub async fn run(store: &dyn Store) -> Result<(), ContractError> {
    proposals_cas(store).await?;
    incidents(store).await?;
    list_while_writing(store).await?;
    drift(store).await?;
    Ok(())
}

async fn proposals_cas(store: &dyn Store) -> Result<(), ContractError> {
    let id = fresh_id();
    ensure!(
        store.get_proposal(&id).await.map_err(|e| unexpected("get missing", e))?.is_none(),
        "missing proposal found"
    );

    let mut p = sample_proposal(&id);
    let r1 = store.create_proposal(&p).await.map_err(|e| unexpected("create", e))?;
    match store.create_proposal(&p).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => return Err(ContractError(format!("second create must be AlreadyExists, got {other:?}"))),
    }
    let got = store.get_proposal(&id).await.map_err(|e| unexpected("get", e))?;
    let got = got.ok_or_else(|| ContractError("created proposal not found".into()))?;
    ensure!(got.revision == r1, "get returned revision {} after create returned {r1}", got.revision);
    ensure!(got.value == p, "stored proposal differs from the one written");

    p.transition(&ProposalEvent::Offer, "kubemedic", Timestamp::now()).map_err(|e| ContractError(e.to_string()))?;
    let r2 = store.update_proposal(&p, r1).await.map_err(|e| unexpected("update", e))?;
    ensure!(r2 != r1, "update did not change the revision");
    match store.update_proposal(&p, r1).await {
        Err(StoreError::Conflict { expected, .. }) if expected == r1 => {}
        other => return Err(ContractError(format!("stale update must be Conflict, got {other:?}"))),
    }
    let got = store.get_proposal(&id).await.map_err(|e| unexpected("get", e))?.map(|v| (v.revision, v.value.state));
    ensure!(got == Some((r2, ProposalState::Pending)), "after update: {got:?}");

    match store.update_proposal(&sample_proposal(&fresh_id()), 1).await {
        Err(StoreError::NotFound { .. }) => {}
        other => return Err(ContractError(format!("update of a missing proposal must be NotFound, got {other:?}"))),
    }

    // Many writers with the same expected revision: exactly one wins.
    let contenders = 8;
    let results = futures::future::join_all((0..contenders).map(|i| {
        let mut q = p.clone();
        async move {
            q.transition(&ProposalEvent::Approve { by: format!("U{i}") }, "kubemedic", Timestamp::now())
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            store.update_proposal(&q, r2).await
        }
    }))
    .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count();
    ensure!(
        wins == 1 && conflicts == contenders - 1,
        "concurrent CAS: {wins} wins, {conflicts} conflicts: {results:?}"
    );

    let other = sample_proposal(&fresh_id());
    store.create_proposal(&other).await.map_err(|e| unexpected("create second", e))?;
    let all = store.list_proposals().await.map_err(|e| unexpected("list", e))?;
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    ensure!(ids.contains(&id.as_str()) && ids.contains(&other.id.as_str()), "list misses proposals: {ids:?}");
    let listed = all.iter().find(|q| q.id == id).map(|q| q.state);
    ensure!(listed == Some(ProposalState::Approved), "list shows state {listed:?}, expected approved");
    Ok(())
}

async fn incidents(store: &dyn Store) -> Result<(), ContractError> {
    let id = fresh_id();
    ensure!(
        store.get_incident(&id).await.map_err(|e| unexpected("get missing", e))?.is_none(),
        "missing incident found"
    );
    let mut i = sample_incident(&id);
    store.put_incident(&i).await.map_err(|e| unexpected("put", e))?;
    i.count = 7;
    i.status = IncidentStatus::Diagnosed;
    store.put_incident(&i).await.map_err(|e| unexpected("replace", e))?;
    let got = store.get_incident(&id).await.map_err(|e| unexpected("get", e))?;
    ensure!(got.as_ref() == Some(&i), "incident not replaced: {got:?}");
    let all = store.list_incidents().await.map_err(|e| unexpected("list", e))?;
    ensure!(all.iter().filter(|x| x.id == id).count() == 1, "list must hold the incident once");
    ensure!(all.iter().all(|x| !x.id.is_empty()), "list returned a proposal or junk as incident");
    Ok(())
}

/// A listing taken while other tasks rewrite incidents holds every incident exactly once
/// (the NATS store once repeated keys updated mid-listing and skipped others).
async fn list_while_writing(store: &dyn Store) -> Result<(), ContractError> {
    const N: usize = 20;
    let mut mine: Vec<Incident> = (0..N).map(|_| sample_incident(&fresh_id())).collect();
    for i in &mine {
        store.put_incident(i).await.map_err(|e| unexpected("put", e))?;
    }
    let ids: Vec<String> = mine.iter().map(|i| i.id.clone()).collect();
    let writer = async {
        for round in 0..10u64 {
            for i in &mut mine {
                i.count = round + 2;
                store.put_incident(i).await.map_err(|e| unexpected("rewrite", e))?;
            }
        }
        Ok::<_, ContractError>(())
    };
    let lister = async {
        for _ in 0..10 {
            let all = store.list_incidents().await.map_err(|e| unexpected("list while writing", e))?;
            for id in &ids {
                let n = all.iter().filter(|x| &x.id == id).count();
                ensure!(n == 1, "a listing taken during writes holds incident {id} {n} times");
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    };
    let (w, l) = futures::join!(writer, lister);
    w.and(l)
}

async fn drift(store: &dyn Store) -> Result<(), ContractError> {
    let a = serde_json::json!({"run": fresh_id(), "drifted": 1});
    let b = serde_json::json!({"run": fresh_id(), "drifted": 2});
    store.put_drift_report(&a).await.map_err(|e| unexpected("put drift", e))?;
    store.put_drift_report(&b).await.map_err(|e| unexpected("replace drift", e))?;
    let got = store.latest_drift_report().await.map_err(|e| unexpected("latest drift", e))?;
    ensure!(got.as_ref() == Some(&b), "latest drift report is {got:?}");
    Ok(())
}

/// Convenience for callers holding an `Arc<dyn Store>`.
pub async fn run_arc(store: Arc<dyn Store>) -> Result<(), ContractError> {
    run(store.as_ref()).await
}

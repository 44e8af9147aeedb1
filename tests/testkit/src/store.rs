//! The contract every [`Store`] implementation passes: the embedded store in
//! `daemon/tests/store_redb.rs`, the NATS store against a real `nats-server` in
//! `tests/e2e/tests/approvals_store.rs`. Both run the very same checks.
//!
//! Ids are fresh uuids on every run, so the suite also passes against a
//! bucket that already holds data.

use std::sync::Arc;

use jiff::Timestamp;
use kubemedic::approvals::{Proposal, ProposalEvent, ProposalState};
use kubemedic::incident::{Incident, IncidentStatus};
use kubemedic::store::{Store, StoreError, Versioned};

use crate::build::Sample;

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

    let mut p = Proposal::test().with_id(&id);
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

    match store.update_proposal(&Proposal::test(), 1).await {
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

    let other = Proposal::test();
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
    let mut i = Incident::test().with_id(&id);
    let r1 = store.create_incident(&i).await.map_err(|e| unexpected("create", e))?;
    match store.create_incident(&i).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => return Err(ContractError(format!("second incident create must be AlreadyExists, got {other:?}"))),
    }
    let got = store.get_incident_versioned(&id).await.map_err(|e| unexpected("get", e))?;
    ensure!(got == Some(Versioned { value: i.clone(), revision: r1 }), "after create: {got:?}");

    i.count = 7;
    i.status = IncidentStatus::Diagnosed;
    let r2 = store.update_incident(&i, r1).await.map_err(|e| unexpected("update", e))?;
    ensure!(r2 != r1, "incident update did not change the revision");
    // A writer holding the snapshot of r1 (a diagnosis that started before the fold) loses.
    let mut stale = i.clone();
    stale.status = IncidentStatus::Open;
    match store.update_incident(&stale, r1).await {
        Err(StoreError::Conflict { expected, .. }) if expected == r1 => {}
        other => return Err(ContractError(format!("stale incident update must be Conflict, got {other:?}"))),
    }
    let got = store.get_incident_versioned(&id).await.map_err(|e| unexpected("get", e))?;
    ensure!(got == Some(Versioned { value: i.clone(), revision: r2 }), "after a refused stale update: {got:?}");
    match store.update_incident(&Incident::test(), 1).await {
        Err(StoreError::NotFound { .. }) => {}
        other => return Err(ContractError(format!("update of a missing incident must be NotFound, got {other:?}"))),
    }

    // Concurrent read-modify-writes through `modify_incident` all land.
    let writers = 8u64;
    let results = futures::future::join_all(
        (0..writers).map(|_| kubemedic::store::modify_incident(store, &id, |inc| inc.count += 1)),
    )
    .await;
    ensure!(results.iter().all(|r| matches!(r, Ok(Some(_)))), "concurrent modify_incident failed: {results:?}");
    let count = store.get_incident(&id).await.map_err(|e| unexpected("get", e))?.map(|x| x.count);
    ensure!(count == Some(7 + writers), "concurrent folds lost updates: count {count:?}, expected {}", 7 + writers);

    let all = store.list_incidents().await.map_err(|e| unexpected("list", e))?;
    ensure!(all.iter().filter(|x| x.id == id).count() == 1, "list must hold the incident once");
    ensure!(all.iter().all(|x| !x.id.is_empty()), "list returned a proposal or junk as incident");
    Ok(())
}

/// A listing taken while other tasks rewrite incidents holds every incident exactly once
/// (the NATS store once repeated keys updated mid-listing and skipped others).
async fn list_while_writing(store: &dyn Store) -> Result<(), ContractError> {
    const N: usize = 20;
    let mut mine: Vec<(Incident, u64)> = Vec::with_capacity(N);
    for _ in 0..N {
        let i = Incident::test();
        let rev = store.create_incident(&i).await.map_err(|e| unexpected("create", e))?;
        mine.push((i, rev));
    }
    let ids: Vec<String> = mine.iter().map(|(i, _)| i.id.clone()).collect();
    let writer = async {
        for round in 0..10u64 {
            for (i, rev) in &mut mine {
                i.count = round + 2;
                *rev = store.update_incident(i, *rev).await.map_err(|e| unexpected("rewrite", e))?;
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

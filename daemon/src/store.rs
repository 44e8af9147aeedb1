//! State that must survive restarts: incidents and proposals (each with a
//! revision for compare-and-set) and the latest drift report.
//!
//! One trait, two implementations (embedded redb, NATS JetStream KV) that
//! pass one contract test suite.

use async_trait::async_trait;

pub mod nats;
pub mod redb;

use crate::model::incident::Incident;
use crate::model::proposal::Proposal;

/// A value with the store revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// Someone else wrote first; re-read and retry the transition.
    #[error("{what} {id} changed concurrently (expected revision {expected})")]
    Conflict { what: &'static str, id: String, expected: u64 },
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("stored value could not be decoded")]
    Decode(#[source] serde_json::Error),
}

/// How often [`modify_incident`] re-reads after losing a compare-and-set before it gives up.
const MODIFY_ATTEMPTS: usize = 16;

/// Read-modify-write of one incident with compare-and-set: `change` is applied to the
/// latest stored value, and applied again to a fresh read whenever another writer got in
/// first, so both writers' changes survive. `None` when the incident does not exist.
pub async fn modify_incident<F>(store: &dyn Store, id: &str, mut change: F) -> Result<Option<Incident>, StoreError>
where
    F: FnMut(&mut Incident) + Send,
{
    let mut last = None;
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(Versioned { mut value, revision }) = store.get_incident_versioned(id).await? else {
            return Ok(None);
        };
        change(&mut value);
        match store.update_incident(&value, revision).await {
            Ok(_) => return Ok(Some(value)),
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(err @ StoreError::Conflict { .. }) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Backend(format!("incident {id}: no attempt made"))))
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Insert a new incident; `AlreadyExists` if the id is taken. Returns the revision.
    async fn create_incident(&self, incident: &Incident) -> Result<u64, StoreError>;
    async fn get_incident_versioned(&self, id: &str) -> Result<Option<Versioned<Incident>>, StoreError>;
    /// Compare-and-set: writes only if the stored revision is still `expected`.
    /// Several writers change one incident (the tracker folds and resolves, a worker
    /// diagnoses): a blind replace would lose one side's change.
    async fn update_incident(&self, incident: &Incident, expected: u64) -> Result<u64, StoreError>;
    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        Ok(self.get_incident_versioned(id).await?.map(|v| v.value))
    }
    async fn list_incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// Insert a new proposal; `AlreadyExists` if the id is taken. Returns the revision.
    async fn create_proposal(&self, proposal: &Proposal) -> Result<u64, StoreError>;
    async fn get_proposal(&self, id: &str) -> Result<Option<Versioned<Proposal>>, StoreError>;
    /// Compare-and-set: writes only if the stored revision is still `expected`.
    async fn update_proposal(&self, proposal: &Proposal, expected: u64) -> Result<u64, StoreError>;
    async fn list_proposals(&self) -> Result<Vec<Proposal>, StoreError>;

    /// The latest drift report (JSON), replacing the previous one.
    async fn put_drift_report(&self, report: &serde_json::Value) -> Result<(), StoreError>;
    async fn latest_drift_report(&self) -> Result<Option<serde_json::Value>, StoreError>;
}

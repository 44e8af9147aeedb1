//! State that must survive restarts: incidents, proposals (with a revision
//! for compare-and-set) and the latest drift report.
//!
//! One trait, two implementations (embedded redb, NATS JetStream KV) that
//! pass one contract test suite.

use async_trait::async_trait;

pub mod nats;
pub mod redb;

use crate::approvals::Proposal;
use crate::incident::Incident;

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Insert or replace an incident.
    async fn put_incident(&self, incident: &Incident) -> Result<(), StoreError>;
    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;
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

//! The embedded store: one redb file under the state directory, no server.
//!
//! Proposals are stored as `revision (u64, big endian) ‖ JSON`; the revision
//! is bumped by every write, and `update_proposal` compares it inside the
//! single write transaction redb allows at a time, which makes it a true
//! compare-and-set. redb is synchronous, so every call runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use async_trait::async_trait;

use super::{Store, StoreError, Versioned};
use crate::approvals::Proposal;
use crate::incident::Incident;

const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
const PROPOSALS: TableDefinition<&str, &[u8]> = TableDefinition::new("proposals");
const DRIFT: TableDefinition<&str, &[u8]> = TableDefinition::new("drift");
const DRIFT_KEY: &str = "latest";

/// File name of the database inside the state directory.
pub const FILE_NAME: &str = "kubemedic.redb";

/// The embedded store.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode_proposal(revision: u64, p: &Proposal) -> Result<Vec<u8>, StoreError> {
    let mut out = revision.to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, p).map_err(StoreError::Decode)?;
    Ok(out)
}

fn decode_proposal(bytes: &[u8]) -> Result<Versioned<Proposal>, StoreError> {
    let (rev, json) = bytes.split_at_checked(8).ok_or_else(|| backend("proposal record shorter than its revision"))?;
    let revision = u64::from_be_bytes(rev.try_into().map_err(backend)?);
    let value = serde_json::from_slice(json).map_err(StoreError::Decode)?;
    Ok(Versioned { value, revision })
}

impl RedbStore {
    /// Open (or create) `state_dir/kubemedic.redb`, creating the directory if needed.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| backend(format!("cannot create state directory {}: {e}", state_dir.display())))?;
        let path = state_dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        // Create the tables once so that readers never see "table does not exist".
        let txn = db.begin_write().map_err(backend)?;
        for table in [INCIDENTS, PROPOSALS, DRIFT] {
            txn.open_table(table).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(backend)?
    }

    fn read_all(db: &Database, table: TableDefinition<'static, &str, &[u8]>) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = db.begin_read().map_err(backend)?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(backend)? {
            let (_, v) = row.map_err(backend)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    fn read_one(
        db: &Database,
        table: TableDefinition<'static, &str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = db.begin_read().map_err(backend)?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    fn write_one(
        db: &Database,
        table: TableDefinition<'static, &str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(table).map_err(backend)?;
            t.insert(key, value).map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn put_incident(&self, incident: &Incident) -> Result<(), StoreError> {
        let id = incident.id.clone();
        let bytes = serde_json::to_vec(incident).map_err(StoreError::Decode)?;
        self.blocking(move |db| Self::write_one(db, INCIDENTS, &id, &bytes)).await
    }

    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let id = id.to_owned();
        let bytes = self.blocking(move |db| Self::read_one(db, INCIDENTS, &id)).await?;
        bytes.map(|b| serde_json::from_slice(&b).map_err(StoreError::Decode)).transpose()
    }

    async fn list_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let rows = self.blocking(|db| Self::read_all(db, INCIDENTS)).await?;
        rows.iter().map(|b| serde_json::from_slice(b).map_err(StoreError::Decode)).collect()
    }

    async fn create_proposal(&self, proposal: &Proposal) -> Result<u64, StoreError> {
        let id = proposal.id.clone();
        let bytes = encode_proposal(1, proposal)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut t = txn.open_table(PROPOSALS).map_err(backend)?;
                if t.get(id.as_str()).map_err(backend)?.is_some() {
                    return Err(StoreError::AlreadyExists { what: "proposal", id });
                }
                t.insert(id.as_str(), bytes.as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(1)
        })
        .await
    }

    async fn get_proposal(&self, id: &str) -> Result<Option<Versioned<Proposal>>, StoreError> {
        let id = id.to_owned();
        let bytes = self.blocking(move |db| Self::read_one(db, PROPOSALS, &id)).await?;
        bytes.map(|b| decode_proposal(&b)).transpose()
    }

    async fn update_proposal(&self, proposal: &Proposal, expected: u64) -> Result<u64, StoreError> {
        let id = proposal.id.clone();
        let next = expected + 1;
        let bytes = encode_proposal(next, proposal)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut t = txn.open_table(PROPOSALS).map_err(backend)?;
                let current = match t.get(id.as_str()).map_err(backend)? {
                    Some(v) => decode_proposal(v.value())?.revision,
                    None => return Err(StoreError::NotFound { what: "proposal", id }),
                };
                if current != expected {
                    return Err(StoreError::Conflict { what: "proposal", id, expected });
                }
                t.insert(id.as_str(), bytes.as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }

    async fn list_proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        let rows = self.blocking(|db| Self::read_all(db, PROPOSALS)).await?;
        rows.iter().map(|b| decode_proposal(b).map(|v| v.value)).collect()
    }

    async fn put_drift_report(&self, report: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(report).map_err(StoreError::Decode)?;
        self.blocking(move |db| Self::write_one(db, DRIFT, DRIFT_KEY, &bytes)).await
    }

    async fn latest_drift_report(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let bytes = self.blocking(|db| Self::read_one(db, DRIFT, DRIFT_KEY)).await?;
        bytes.map(|b| serde_json::from_slice(&b).map_err(StoreError::Decode)).transpose()
    }
}

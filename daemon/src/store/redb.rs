//! The embedded store: one redb file under the state directory, no server.
//!
//! Proposals and incidents are stored as `revision (u64, big endian) ‖ JSON`;
//! the revision is bumped by every write, and `update_*` compares it inside the
//! single write transaction redb allows at a time, which makes it a true
//! compare-and-set. redb is synchronous, so every call runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use async_trait::async_trait;

use super::{Store, StoreError, Versioned};
use crate::model::incident::Incident;
use crate::model::proposal::Proposal;

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

fn encode<T: serde::Serialize>(revision: u64, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = revision.to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, value).map_err(StoreError::Decode)?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Versioned<T>, StoreError> {
    // Incidents were once stored as bare JSON; such a record reads as revision 0 (a real
    // revision never starts with the byte `{`: that would take 2^62 writes).
    if bytes.first() == Some(&b'{') {
        let value = serde_json::from_slice(bytes).map_err(StoreError::Decode)?;
        return Ok(Versioned { value, revision: 0 });
    }
    let (rev, json) = bytes.split_at_checked(8).ok_or_else(|| backend("record shorter than its revision"))?;
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

    /// Insert `bytes` (revision 1) unless `id` exists.
    fn create(
        db: &Database,
        table: TableDefinition<'static, &str, &[u8]>,
        what: &'static str,
        id: String,
        bytes: &[u8],
    ) -> Result<u64, StoreError> {
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(table).map_err(backend)?;
            if t.get(id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::AlreadyExists { what, id });
            }
            t.insert(id.as_str(), bytes).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(1)
    }

    /// Replace `id` with `bytes` (which carry revision `expected + 1`) if its stored revision
    /// is `expected`; checked and written in one write transaction.
    fn compare_and_set(
        db: &Database,
        table: TableDefinition<'static, &str, &[u8]>,
        what: &'static str,
        id: String,
        bytes: &[u8],
        expected: u64,
    ) -> Result<u64, StoreError> {
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(table).map_err(backend)?;
            let current = match t.get(id.as_str()).map_err(backend)? {
                Some(v) => decode::<serde::de::IgnoredAny>(v.value())?.revision,
                None => return Err(StoreError::NotFound { what, id }),
            };
            if current != expected {
                return Err(StoreError::Conflict { what, id, expected });
            }
            t.insert(id.as_str(), bytes).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(expected + 1)
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
    async fn create_incident(&self, incident: &Incident) -> Result<u64, StoreError> {
        let id = incident.id.clone();
        let bytes = encode(1, incident)?;
        self.blocking(move |db| Self::create(db, INCIDENTS, "incident", id, &bytes)).await
    }

    async fn get_incident_versioned(&self, id: &str) -> Result<Option<Versioned<Incident>>, StoreError> {
        let id = id.to_owned();
        let bytes = self.blocking(move |db| Self::read_one(db, INCIDENTS, &id)).await?;
        bytes.map(|b| decode(&b)).transpose()
    }

    async fn update_incident(&self, incident: &Incident, expected: u64) -> Result<u64, StoreError> {
        let id = incident.id.clone();
        let bytes = encode(expected + 1, incident)?;
        self.blocking(move |db| Self::compare_and_set(db, INCIDENTS, "incident", id, &bytes, expected)).await
    }

    async fn list_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let rows = self.blocking(|db| Self::read_all(db, INCIDENTS)).await?;
        rows.iter().map(|b| decode(b).map(|v| v.value)).collect()
    }

    async fn create_proposal(&self, proposal: &Proposal) -> Result<u64, StoreError> {
        let id = proposal.id.clone();
        let bytes = encode(1, proposal)?;
        self.blocking(move |db| Self::create(db, PROPOSALS, "proposal", id, &bytes)).await
    }

    async fn get_proposal(&self, id: &str) -> Result<Option<Versioned<Proposal>>, StoreError> {
        let id = id.to_owned();
        let bytes = self.blocking(move |db| Self::read_one(db, PROPOSALS, &id)).await?;
        bytes.map(|b| decode(&b)).transpose()
    }

    async fn update_proposal(&self, proposal: &Proposal, expected: u64) -> Result<u64, StoreError> {
        let id = proposal.id.clone();
        let bytes = encode(expected + 1, proposal)?;
        self.blocking(move |db| Self::compare_and_set(db, PROPOSALS, "proposal", id, &bytes, expected)).await
    }

    async fn list_proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        let rows = self.blocking(|db| Self::read_all(db, PROPOSALS)).await?;
        rows.iter().map(|b| decode(b).map(|v| v.value)).collect()
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

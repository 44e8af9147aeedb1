//! The embedded store passes the store contract (the same checks the NATS
//! store passes in tests/e2e/tests/approvals_store.rs) and keeps what it stored
//! across a reopen.

use kubemedic::approvals::Proposal;
use kubemedic::incident::Incident;
use kubemedic::store::Store;
use kubemedic::store::redb::RedbStore;
use testkit::Sample;

#[tokio::test]
async fn passes_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    testkit::store::run(&store).await.unwrap();
}

#[tokio::test]
async fn survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proposal::test().with_id("reopen");
    {
        let store = RedbStore::open(dir.path()).unwrap();
        let rev = store.create_proposal(&p).await.unwrap();
        store.update_proposal(&p, rev).await.unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let got = store.get_proposal("reopen").await.unwrap().unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.value, p);
}

/// Incidents were once stored as bare JSON (no revision): such a record reads as revision 0
/// and takes a compare-and-set from there.
#[tokio::test]
async fn reads_incidents_stored_before_they_had_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    let mut old = Incident::test().with_id("legacy");
    {
        let db = redb::Database::create(dir.path().join(kubemedic::store::redb::FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("incidents");
            let mut t = txn.open_table(table).unwrap();
            t.insert("legacy", serde_json::to_vec(&old).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let got = store.get_incident_versioned("legacy").await.unwrap().unwrap();
    assert_eq!((got.revision, &got.value), (0, &old));
    old.count = 3;
    assert_eq!(store.update_incident(&old, 0).await.unwrap(), 1);
    assert!(matches!(store.update_incident(&old, 0).await, Err(kubemedic::store::StoreError::Conflict { .. })));
    assert_eq!(store.get_incident("legacy").await.unwrap().unwrap().count, 3);
}

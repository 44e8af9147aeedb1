//! The embedded store passes the store contract (the same checks the NATS
//! store passes in tests/e2e/tests/approvals_store.rs) and keeps what it stored
//! across a reopen.

use kubemedic::approvals::Proposal;
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

//! The store contract against both implementations: the embedded redb file
//! and NATS JetStream KV on a real `nats-server` (KUBEMEDIC_TEST_NATS_URL,
//! started by tests/run.sh with `-js`).

use std::sync::Arc;

use kubemedic::approvals::Proposal;
use kubemedic::store::nats::NatsStore;
use kubemedic::store::redb::RedbStore;
use kubemedic::store::{Store, StoreError};
use testkit::Sample;
use testkit::store as contract;

fn nats_url() -> String {
    std::env::var("KUBEMEDIC_TEST_NATS_URL")
        .expect("KUBEMEDIC_TEST_NATS_URL must point at a nats-server with JetStream (tests/run.sh starts one)")
}

#[tokio::test]
async fn nats_kv_passes_the_store_contract() {
    let store = NatsStore::connect(&nats_url(), "kubemedic-contract").await.unwrap();
    contract::run(&store).await.unwrap();
}

#[tokio::test]
async fn redb_passes_the_store_contract() {
    let dir = tempfile_dir();
    let store = RedbStore::open(&dir).unwrap();
    contract::run(&store).await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two replicas (two connections) over one bucket: compare-and-set holds across them.
#[tokio::test]
async fn nats_cas_holds_across_connections() {
    let a: Arc<dyn Store> = Arc::new(NatsStore::connect(&nats_url(), "kubemedic-contract").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(NatsStore::connect(&nats_url(), "kubemedic-contract").await.unwrap());
    let p = Proposal::test().with_id(&uuid_like());
    let rev = a.create_proposal(&p).await.unwrap();
    let seen_by_b = b.get_proposal(&p.id).await.unwrap().unwrap();
    assert_eq!(seen_by_b.revision, rev);
    let (ra, rb) = tokio::join!(a.update_proposal(&p, rev), b.update_proposal(&p, rev));
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    assert!(matches!(ra.err().or(rb.err()), Some(StoreError::Conflict { .. })));
}

fn uuid_like() -> String {
    format!(
        "{:x}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kubemedic-store-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

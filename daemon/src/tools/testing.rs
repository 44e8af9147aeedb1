//! Unit-test fixtures that need the crate's own types: tools over the fake apiserver
//! (`testkit::fakeapi`, re-exported here), a recording proposal sink, test callers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::mutate::ProposalSink;
use super::{Caller, Tools, Transport};
use crate::cluster::ClusterConfig;
use crate::cluster::{Cluster, Scope};
use crate::model::identity::Role;
use crate::model::proposal::{Proposal, ProposalEvent, ProposalState};
use crate::telemetry::audit::AuditLog;
pub use testkit::fakeapi::{FakeApi, SECRET_VALUE, shop_fixture};

/// A proposal sink over a real (embedded) store that records decisions;
/// it approves and rejects but never applies (that is the approvals service's job).
pub struct MemorySink {
    pub store: Arc<dyn crate::store::Store>,
    pub proposals: Mutex<BTreeMap<String, Proposal>>,
    pub decisions: Mutex<Vec<(String, String, bool)>>,
    /// What `approvals.allow_self_approval` answers (false, as the default config).
    pub allow_self: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl ProposalSink for MemorySink {
    async fn submit(&self, mut p: Proposal) -> Result<Proposal, String> {
        if p.state == ProposalState::Proposed {
            p.transition(&ProposalEvent::Offer, "kubemedic", jiff::Timestamp::now()).map_err(|e| e.to_string())?;
        }
        self.store.create_proposal(&p).await.map_err(|e| e.to_string())?;
        self.proposals.lock().unwrap().insert(p.id.clone(), p.clone());
        Ok(p)
    }

    async fn record_refused(&self, p: Proposal) -> Result<Proposal, String> {
        if p.state != ProposalState::Refused {
            return Err(format!("a refused draft must be refused, not {}", p.state.as_str()));
        }
        self.store.create_proposal(&p).await.map_err(|e| e.to_string())?;
        self.proposals.lock().unwrap().insert(p.id.clone(), p.clone());
        Ok(p)
    }

    fn allow_self_approval(&self) -> bool {
        self.allow_self.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn decide(&self, id: &str, user: &str, approve: bool) -> Result<Proposal, String> {
        self.decisions.lock().unwrap().push((id.to_owned(), user.to_owned(), approve));
        let v = self.store.get_proposal(id).await.map_err(|e| e.to_string())?.ok_or("no such proposal")?;
        let mut p = v.value;
        let ev = if approve {
            ProposalEvent::Approve { by: user.into() }
        } else {
            ProposalEvent::Reject { by: user.into() }
        };
        p.transition(&ev, user, jiff::Timestamp::now()).map_err(|e| e.to_string())?;
        self.store.update_proposal(&p, v.revision).await.map_err(|e| e.to_string())?;
        self.proposals.lock().unwrap().insert(p.id.clone(), p.clone());
        Ok(p)
    }
}

/// Tools over a fake apiserver; `hidden` is excluded from the scope.
/// Teach the redaction gate the fixture's Secret values, as the Secret watch would.
pub fn learn_fixture_secrets() {
    crate::redact::gate()
        .set_known(crate::redact::Scrubber::new([SECRET_VALUE.to_owned(), format!("db={SECRET_VALUE}")]));
}

pub fn tools(api: &FakeApi) -> (Tools, Arc<MemorySink>) {
    let config =
        ClusterConfig { exclude_namespaces: vec!["hidden".into(), "kube-system".into()], ..ClusterConfig::default() };
    let cluster = Cluster { name: "test".into(), client: api.client(), scope: Scope::from_config(&config) };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::redb::RedbStore::open(dir.path()).unwrap());
    // The store keeps the file open; the directory may go.
    drop(dir);
    let sink = Arc::new(MemorySink {
        store: store.clone(),
        proposals: Mutex::default(),
        decisions: Mutex::default(),
        allow_self: Default::default(),
    });
    let tools = Tools::new(cluster, Some(store), AuditLog::in_memory()).with_approvals(sink.clone());
    (tools, sink)
}

pub fn caller(role: Role) -> Caller {
    Caller::new(format!("{role:?}").to_lowercase(), role, Transport::Internal)
}

//! Where the daemon keeps its state and queue: NATS JetStream when configured (shared by
//! the replicas, with leader election), else embedded in this process.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::AppError;
use crate::bus::{Bus, IncidentQueue, NatsConfig};
use crate::cluster::Cluster;
use crate::leader::{self, LeaderConfig, LeaderElector};
use crate::prompts::Catalog;
use crate::rules::PromptSignature;
use crate::store::Store;

/// Incidents waiting for a worker (embedded queue).
const INCIDENT_QUEUE: usize = 1024;
/// The embedded queue takes one copy of an incident (fingerprint) per window.
const LOCAL_DEDUP_WINDOW: Duration = Duration::from_secs(300);

pub(super) struct Backends {
    pub bus: Bus,
    pub store: Arc<dyn Store>,
    pub queue: IncidentQueue,
    /// Set with NATS: replicas then elect the one that runs watchers and cron.
    leader: Option<LeaderConfig>,
}

impl Backends {
    pub async fn connect(nats: Option<&NatsConfig>, state_dir: &Path) -> Result<Self, AppError> {
        Ok(match nats {
            Some(nats) => {
                let client = crate::bus::connect(nats).await?;
                let js = async_nats::jetstream::new(client.clone());
                let store = crate::store::nats::NatsStore::open(js, crate::store::nats::DEFAULT_BUCKET).await?;
                let queue = IncidentQueue::nats(client.clone(), nats).await?;
                Self {
                    bus: Bus::with_nats(client),
                    store: Arc::new(store),
                    queue,
                    leader: Some(nats.leader_election.clone()),
                }
            }
            None => Self {
                bus: Bus::local(),
                store: Arc::new(crate::store::redb::RedbStore::open(state_dir)?),
                queue: IncidentQueue::local(INCIDENT_QUEUE, LOCAL_DEDUP_WINDOW),
                leader: None,
            },
        })
    }

    /// Whether this replica leads (changes over time), and the election task to await at
    /// shutdown (it releases the Lease). Without NATS there is one replica: always the leader.
    pub fn leadership(
        &self,
        cluster: &Cluster,
        shutdown: CancellationToken,
    ) -> (watch::Receiver<bool>, Option<tokio::task::JoinHandle<()>>) {
        match &self.leader {
            Some(config) => {
                let elector = LeaderElector::new(cluster.client.clone(), config);
                tracing::info!(identity = elector.identity(), "leader election on");
                let (rx, task) = elector.spawn(shutdown);
                (rx, Some(task))
            }
            None => (leader::always_leader(), None),
        }
    }
}

/// What each prompt accepts, for checking rule workflows at start-up.
pub(super) fn signatures(prompts: &Catalog) -> BTreeMap<String, PromptSignature> {
    prompts
        .iter()
        .map(|p| {
            let sig = PromptSignature {
                arguments: p.arguments.iter().map(|a| a.name.clone()).collect(),
                required: p.arguments.iter().filter(|a| a.required).map(|a| a.name.clone()).collect(),
            };
            (p.name.clone(), sig)
        })
        .collect()
}

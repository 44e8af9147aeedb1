//! What runs on the leader only: the watchers (one replica's worth of signals) and the
//! drift cron.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::alerts::SharedOwners;
use crate::cluster::Cluster;
use crate::drift::job::DriftJob;
use crate::incident::tracker::Tracker;
use crate::model::signal::Signal;
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::Metrics;
use crate::watch::{SharedCache, WatchConfig, WatchError};

/// The readiness check a leading replica holds until its watchers synced.
const WATCHERS_CHECK: &str = "watchers";

/// The watchers and what they feed besides signals.
#[derive(Clone)]
pub(super) struct Watchers {
    pub cluster: Cluster,
    pub config: WatchConfig,
    pub signals: mpsc::Sender<Signal>,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    pub tracker: Arc<Tracker>,
    /// Pod → owner for the Alertmanager receiver.
    pub owners: Arc<SharedOwners>,
    /// The watchers' stores, read by the MCP tools.
    pub cache: SharedCache,
}

impl Watchers {
    /// Run the watchers whenever this replica leads, until `shutdown`.
    pub fn spawn_while_leader(
        self,
        is_leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        // A replica that leads from the start is not ready before its task even runs.
        if *is_leader.borrow() {
            self.readiness.set(WATCHERS_CHECK, false);
        }
        crate::leader::while_leader(is_leader, shutdown, move |token| self.clone().run(token))
            .instrument(tracing::info_span!("watchers"))
    }

    /// While this replica leads, `/readyz` waits for its watchers' first lists (the signals come
    /// from them); a follower runs no watchers and has no such check.
    async fn run(self, token: CancellationToken) {
        self.metrics.set_leader(true);
        self.readiness.set(WATCHERS_CHECK, false);
        let metrics = Some(self.metrics.clone());
        match crate::watch::spawn_with_metrics(self.cluster, &self.config, self.signals, metrics, token.clone()) {
            Ok(handle) => {
                // A shutdown (or losing the lead) before the first lists arrive ends the wait:
                // the watchers never synced, and saying they did would mislead whoever reads the log.
                let synced = tokio::select! {
                    synced = handle.ready() => synced && !token.is_cancelled(),
                    () = token.cancelled() => false,
                };
                if synced {
                    self.owners.set(Some(handle.owners()));
                    self.cache.set(Some(handle.cache().clone()));
                    if self.config.namespace_labels {
                        self.tracker.set_namespace_labels(Some(handle.namespace_labels()));
                    }
                    tracing::info!("watchers synced");
                    self.readiness.set(WATCHERS_CHECK, true);
                } else {
                    tracing::info!("watchers stopped before their first lists arrived");
                }
                handle.join().await;
                self.owners.set(None);
                self.cache.set(None);
                self.tracker.set_namespace_labels(None);
            }
            Err(WatchError::Disabled) => tracing::info!("watchers disabled"),
            Err(err) => tracing::error!(error = %super::super::error_chain(&err), "cannot start watchers"),
        }
        // Not leading (or watchers off): the check does not apply to this replica any more. A
        // watcher that cannot start is logged above and leaves the replica serving MCP and approvals.
        self.readiness.remove(WATCHERS_CHECK);
        self.metrics.set_leader(false);
    }
}

/// The drift cron, on the leader only.
pub(super) async fn drift(job: DriftJob, is_leader: watch::Receiver<bool>, shutdown: CancellationToken) {
    if let Err(err) = job.run_scheduled(is_leader, shutdown).await {
        tracing::error!(error = %super::super::error_chain(&err), "drift schedule stopped");
    }
}

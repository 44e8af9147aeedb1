//! The incident path from tracker to proposal, and from approval to apply.
//!
//! ```text
//! signals ─► tracker ─► incident queue ─► workers ─► agent ─► approvals ─► (approved) ─► apply
//!                        (embedded or      ▲  diagnose, retry            │
//!                         JetStream)       └── rediagnose ◄──────────────┘ target changed
//! ```
//!
//! - The tracker folds signals into incidents and pushes new ones to the queue itself.
//! - Each worker pulls one piece of [`Work`] at a time: an incident from the queue, or a
//!   re-diagnosis asked for by approvals (a proposal whose target changed before apply).
//!   Both take the same path: diagnose, retry while the cluster could not be read (a
//!   decision made from typed errors, see [`diagnose::retry_reason`]), store the outcome with
//!   compare-and-set (the tracker writes the same incident), submit the proposals.
//! - Approved proposals are applied on the same shutdown-aware task set, each in a span.
//!
//! Shutdown: the root token stops intake and idle workers; a run in flight finishes (the
//! caller bounds it with its grace period and then drops the tasks).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::agent::Deps;
use crate::approvals::{ApplyRequest, Approvals, Rediagnose};
use crate::bus::{Delivery, IncidentQueue};
use crate::incident::tracker::Tracker;
use crate::model::incident::Incident;
use crate::model::signal::{Signal, SignalSource};
use crate::store::Store;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::Metrics;

pub mod diagnose;

/// Waits before diagnosing again when a run could not read the cluster (apiserver down or
/// unreachable): an incident is not closed on a diagnosis made blind.
pub const DIAGNOSIS_RETRIES: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(5), Duration::from_secs(10)];

/// What a worker takes on.
#[derive(Debug)]
pub enum Work {
    /// An incident from the queue; acked once diagnosed (boxed: a delivery is large).
    Queued(Box<Delivery>),
    /// Diagnose a stored incident again: its proposal's target changed (the reason).
    Rediagnose { incident_id: String, reason: String },
}

/// Everything the workers share; built once by `app` and handed down.
pub struct Pipeline {
    pub deps: Deps,
    pub store: Arc<dyn Store>,
    pub queue: IncidentQueue,
    pub approvals: Arc<Approvals>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditLog,
    /// Where incident changes are announced (`kubemedic.incident.<status>`; the web UI
    /// follows them).
    pub bus: Option<crate::bus::Bus>,
}

/// The receiving ends the pipeline consumes, created with the services that send to them.
pub struct Inputs {
    pub signals: mpsc::Receiver<Signal>,
    pub rediagnose: mpsc::Receiver<Rediagnose>,
    pub applies: mpsc::UnboundedReceiver<ApplyRequest>,
}

impl Pipeline {
    /// Start the tracker, the workers and the apply loop on `tasks`; all stop with `shutdown`.
    pub fn spawn(
        self: Arc<Self>,
        tasks: &mut JoinSet<()>,
        tracker: Arc<Tracker>,
        inputs: Inputs,
        shutdown: &CancellationToken,
    ) {
        tasks.spawn(tracker.run(inputs.signals, shutdown.clone()).instrument(tracing::info_span!("tracker")));
        let rediagnose = Arc::new(Mutex::new(inputs.rediagnose));
        for worker in 0..self.deps.config.workers {
            let (this, rediagnose, stop) = (self.clone(), rediagnose.clone(), shutdown.clone());
            tasks.spawn(
                async move { this.work(&rediagnose, &stop).await }
                    .instrument(tracing::info_span!("agent_worker", worker)),
            );
        }
        tasks.spawn(self.applies(inputs.applies, shutdown.clone()).instrument(tracing::info_span!("applies")));
    }

    /// One worker: take work until shutdown; a run in flight is finished first.
    async fn work(&self, rediagnose: &Mutex<mpsc::Receiver<Rediagnose>>, stop: &CancellationToken) {
        // Until approvals drops its sender; then only the queue is left.
        let mut rediagnose_open = true;
        loop {
            let work = tokio::select! {
                () = stop.cancelled() => return,
                d = self.queue.next() => match d {
                    Ok(delivery) => Work::Queued(Box::new(delivery)),
                    Err(err) => {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "incident queue unavailable; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                },
                r = async { rediagnose.lock().await.recv().await }, if rediagnose_open => match r {
                    // A proposal made outside an incident (an MCP client's) has none to diagnose.
                    Some(Rediagnose { incident_id: None, .. }) => continue,
                    Some(Rediagnose { incident_id: Some(incident_id), reason, .. }) => Work::Rediagnose { incident_id, reason },
                    None => {
                        rediagnose_open = false;
                        continue;
                    }
                },
            };
            self.handle(work).await;
        }
    }

    async fn handle(&self, work: Work) {
        match work {
            Work::Queued(delivery) => {
                if let Ok(depth) = self.queue.depth().await {
                    self.metrics.queue_depth(i64::try_from(depth).unwrap_or(i64::MAX));
                }
                // A watch stamps its signals on arrival (an alert carries its own start time, which
                // may be long past): the queue wait of the first delivery of a cluster incident.
                if delivery.attempt == 1 && delivery.incident.first_signal.source == SignalSource::Cluster {
                    let waited = jiff::Timestamp::now().duration_since(delivery.incident.first_seen);
                    self.metrics.incident_waited(waited.as_secs_f64().max(0.0));
                }
                self.diagnose_with_retries(&delivery.incident, Some(&delivery)).await;
                if let Err(err) = delivery.ack().await {
                    tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot ack incident");
                }
            }
            Work::Rediagnose { incident_id: id, reason } => match self.store.get_incident(&id).await {
                Ok(Some(incident)) => {
                    tracing::info!(incident = id, reason, "diagnosing again");
                    self.diagnose_with_retries(&incident, None).await;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot load incident"),
            },
        }
    }

    /// Diagnose, and again after each of [`DIAGNOSIS_RETRIES`] while the run could not read the
    /// cluster. The incident stays with this worker meanwhile: the embedded queue has no
    /// redelivery, and JetStream is told the run is still in progress.
    async fn diagnose_with_retries(&self, incident: &Incident, delivery: Option<&Delivery>) {
        for (attempt, wait) in DIAGNOSIS_RETRIES.iter().map(Some).chain([None]).enumerate() {
            let outcome = diagnose::diagnose_incident(self, incident, wait.is_none()).await;
            let (diagnose::Outcome::Retry(why), Some(wait)) = (outcome, wait) else { return };
            tracing::warn!(incident = %incident.id, attempt = attempt + 1, retry_in = ?wait, "diagnosis incomplete, retrying: {why}");
            if let Some(delivery) = delivery {
                let _ = delivery.in_progress().await;
            }
            tokio::time::sleep(*wait).await;
        }
    }

    /// Apply approved proposals in the shutdown-aware task set ([`Approvals::serve_applies`]).
    async fn applies(self: Arc<Self>, rx: mpsc::UnboundedReceiver<ApplyRequest>, stop: CancellationToken) {
        self.approvals.clone().serve_applies(rx, stop).await;
    }
}

//! The queue of incidents waiting for diagnosis.
//!
//! Clustered: a JetStream stream with work-queue retention and one durable
//! pull consumer shared by every replica, so each incident is delivered to
//! one replica; a message that is not acked within `ack_wait` goes to
//! another (the replica died mid-diagnosis). Two replicas that both see the
//! same incident (an Alertmanager webhook sent to each) publish it with the
//! same `Nats-Msg-Id` (the incident fingerprint), and JetStream drops the
//! second copy within the stream's duplicate window.
//!
//! Embedded: a bounded in-process channel with the same dedup window; a
//! full queue is an error the caller counts, never a silent drop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use super::NatsConfig;
use crate::model::incident::Incident;

/// Default subject of the incident stream (outside the `kubemedic.<event>` subjects of the bus).
pub const INCIDENT_SUBJECT: &str = "kubemedic.work.incidents";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("incident queue is full ({capacity} waiting)")]
    Full { capacity: usize },
    #[error("incident queue is closed")]
    Closed,
    #[error("cannot encode incident {id}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot set up JetStream stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot set up JetStream consumer {consumer}")]
    Consumer {
        consumer: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot publish incident {id} to JetStream")]
    Publish {
        id: String,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    #[error("cannot receive from the incident queue")]
    Receive(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot acknowledge incident {id}")]
    Ack {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What [`IncidentQueue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for diagnosis.
    Queued,
    /// The same incident (fingerprint) is already queued or was within the dedup window.
    Duplicate,
}

/// One incident handed to this replica. Ack it once diagnosed; dropping it
/// without an ack hands it to another replica after `ack_wait`.
pub struct Delivery {
    pub incident: Incident,
    /// How often it was delivered (1 = first time).
    pub attempt: u64,
    message: Option<jetstream::Message>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("incident", &self.incident.id).field("attempt", &self.attempt).finish()
    }
}

impl Delivery {
    /// Diagnosed: remove it from the queue for good.
    pub async fn ack(self) -> Result<(), QueueError> {
        match &self.message {
            // Double ack: returns once the server has recorded it, so a crash right after
            // cannot redeliver an incident that was already diagnosed.
            Some(m) => m.double_ack().await.map_err(|e| self.ack_error(e)),
            None => Ok(()),
        }
    }

    /// Still working: restart the `ack_wait` clock (long LLM runs).
    pub async fn in_progress(&self) -> Result<(), QueueError> {
        match &self.message {
            Some(m) => m.ack_with(AckKind::Progress).await.map_err(|e| self.ack_error(e)),
            None => Ok(()),
        }
    }

    /// Could not diagnose now: let another replica (or this one) retry after `delay`.
    /// Embedded mode has no redelivery: the incident stays open in the store.
    pub async fn retry_later(self, delay: Duration) -> Result<(), QueueError> {
        match &self.message {
            Some(m) => m.ack_with(AckKind::Nak(Some(delay))).await.map_err(|e| self.ack_error(e)),
            None => Ok(()),
        }
    }

    fn ack_error(&self, source: Box<dyn std::error::Error + Send + Sync>) -> QueueError {
        QueueError::Ack { id: self.incident.id.clone(), source }
    }
}

/// Key under which copies of one incident are deduplicated.
pub fn message_id(incident: &Incident) -> String {
    format!("incident-{}", incident.fingerprint)
}

/// The incident queue (cheap to clone; clones share one consumer).
#[derive(Clone)]
pub struct IncidentQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IncidentQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &*self.inner {
            Inner::Local { .. } => "local",
            Inner::Nats { .. } => "jetstream",
        };
        f.debug_struct("IncidentQueue").field("mode", &mode).finish()
    }
}

// Allocated once behind an Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Local {
        tx: mpsc::Sender<Incident>,
        rx: Mutex<mpsc::Receiver<Incident>>,
        capacity: usize,
        window: Duration,
        seen: std::sync::Mutex<HashMap<String, Instant>>,
    },
    Nats {
        js: jetstream::Context,
        subject: String,
        consumer: consumer::PullConsumer,
    },
}

impl IncidentQueue {
    /// Embedded mode: a bounded in-process queue.
    pub fn local(capacity: usize, dedup_window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = Inner::Local {
            tx,
            rx: Mutex::new(rx),
            capacity: capacity.max(1),
            window: dedup_window,
            seen: std::sync::Mutex::new(HashMap::new()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Clustered mode: create (or bind to) the work-queue stream and the shared durable consumer.
    pub async fn nats(client: async_nats::Client, config: &NatsConfig) -> Result<Self, QueueError> {
        let js = jetstream::new(client);
        let stream_config = stream::Config {
            name: config.incident_stream.clone(),
            subjects: vec![config.incident_subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(config.dedup_window_seconds),
            max_messages: 100_000,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let stream = js
            .get_or_create_stream(stream_config)
            .await
            .map_err(|e| QueueError::Stream { stream: config.incident_stream.clone(), source: Box::new(e) })?;
        let consumer_config = consumer::pull::Config {
            durable_name: Some(config.incident_consumer.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(config.ack_wait_seconds),
            max_deliver: config.max_deliver,
            filter_subject: config.incident_subject.clone(),
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(&config.incident_consumer, consumer_config)
            .await
            .map_err(|e| QueueError::Consumer { consumer: config.incident_consumer.clone(), source: Box::new(e) })?;
        let subject = config.incident_subject.clone();
        Ok(Self { inner: Arc::new(Inner::Nats { js, subject, consumer }) })
    }

    /// Queue an incident for diagnosis, once per fingerprint within the dedup window.
    pub async fn enqueue(&self, incident: &Incident) -> Result<Enqueued, QueueError> {
        let id = message_id(incident);
        match &*self.inner {
            Inner::Local { tx, capacity, window, seen, .. } => {
                {
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.retain(|_, at| now.duration_since(*at) < *window);
                    if seen.contains_key(&id) {
                        return Ok(Enqueued::Duplicate);
                    }
                    seen.insert(id.clone(), now);
                }
                tx.try_send(incident.clone()).map_err(|e| {
                    // Not queued: forget the dedup entry so a later copy can get in.
                    seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    match e {
                        mpsc::error::TrySendError::Full(_) => QueueError::Full { capacity: *capacity },
                        mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
                    }
                })?;
                Ok(Enqueued::Queued)
            }
            Inner::Nats { js, subject, .. } => {
                let payload = serde_json::to_vec(incident)
                    .map_err(|source| QueueError::Encode { id: incident.id.clone(), source })?;
                let publish = jetstream::message::PublishMessage::build().payload(Bytes::from(payload)).message_id(&id);
                let publish_error = |source| QueueError::Publish { id: incident.id.clone(), source };
                let ack = js.send_publish(subject.clone(), publish).await.map_err(publish_error)?;
                let ack = ack.await.map_err(publish_error)?;
                Ok(if ack.duplicate { Enqueued::Duplicate } else { Enqueued::Queued })
            }
        }
    }

    /// Wait for the next incident. Cancel-safe: `select!` it against shutdown.
    pub async fn next(&self) -> Result<Delivery, QueueError> {
        match &*self.inner {
            Inner::Local { rx, .. } => {
                let incident = rx.lock().await.recv().await.ok_or(QueueError::Closed)?;
                Ok(Delivery { incident, attempt: 1, message: None })
            }
            Inner::Nats { consumer, .. } => loop {
                // One pull request for one message, issued only by a caller that is waiting:
                // a long-lived pull stream asks for the next message as soon as it yields one,
                // so a replica whose workers are all busy would hold an incident (until
                // ack_wait) that an idle replica could diagnose now. If this future is
                // cancelled mid-pull, a message already on its way is redelivered after ack_wait.
                let mut batch = consumer
                    .batch()
                    .max_messages(1)
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|e| QueueError::Receive(Box::new(e)))?;
                let message = match batch.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(QueueError::Receive(e)),
                    None => continue, // expired with nothing to do
                };
                let attempt = message.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
                match serde_json::from_slice::<Incident>(&message.payload) {
                    Ok(incident) => return Ok(Delivery { incident, attempt, message: Some(message) }),
                    Err(err) => {
                        // Poison message: never redeliver it.
                        tracing::warn!(error = %err, "dropping undecodable message from the incident queue");
                        let _ = message.ack_with(AckKind::Term).await;
                    }
                }
            },
        }
    }

    /// Incidents waiting (not yet delivered).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match &*self.inner {
            Inner::Local { tx, capacity, .. } => Ok((*capacity - tx.capacity()) as u64),
            Inner::Nats { consumer, .. } => {
                let mut consumer = consumer.clone();
                let info = consumer.info().await.map_err(|e| QueueError::Receive(Box::new(e)))?;
                Ok(info.num_pending)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::incident::{IncidentStatus, fingerprint};
    use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

    pub(crate) fn incident(name: &str) -> Incident {
        let workload = WorkloadRef::new("Deployment", "shop", name);
        let now = jiff::Timestamp::now();
        Incident {
            id: uuid::Uuid::now_v7().to_string(),
            fingerprint: fingerprint("local", &workload, "CrashLoopBackOff"),
            cluster: "local".into(),
            workload: workload.clone(),
            reason: "CrashLoopBackOff".into(),
            rule: "crashloop".into(),
            prompt: "diagnose-workload".into(),
            arguments: Default::default(),
            allow_mutations: true,
            approvers: vec![],
            status: IncidentStatus::Open,
            first_seen: now,
            last_seen: now,
            count: 1,
            first_signal: Signal {
                source: SignalSource::Cluster,
                status: SignalStatus::Firing,
                reason: "CrashLoopBackOff".into(),
                cluster: "local".into(),
                object: workload.clone(),
                workload: Some(workload),
                labels: Default::default(),
                severity: None,
                message: String::new(),
                observed_at: now,
            },
            summary: None,
            proposals: vec![],
            diagnosis: None,
        }
    }

    #[tokio::test]
    async fn local_queue_dedups_and_bounds() {
        tokio::time::pause();
        let q = IncidentQueue::local(2, Duration::from_secs(60));
        assert_eq!(q.enqueue(&incident("a")).await.unwrap(), Enqueued::Queued);
        // Same fingerprint, other incident id (another replica's copy): dropped.
        assert_eq!(q.enqueue(&incident("a")).await.unwrap(), Enqueued::Duplicate);
        assert_eq!(q.enqueue(&incident("b")).await.unwrap(), Enqueued::Queued);
        assert!(matches!(q.enqueue(&incident("c")).await, Err(QueueError::Full { capacity: 2 })));
        assert_eq!(q.depth().await.unwrap(), 2);
        let d = q.next().await.unwrap();
        assert_eq!(d.incident.workload.name, "a");
        d.ack().await.unwrap();
        // The full queue did not remember "c": it gets in once there is room.
        assert_eq!(q.enqueue(&incident("c")).await.unwrap(), Enqueued::Queued);
        // After the window, the same fingerprint is queued again.
        tokio::time::advance(Duration::from_secs(61)).await;
        let _ = q.next().await.unwrap();
        assert_eq!(q.enqueue(&incident("a")).await.unwrap(), Enqueued::Queued);
    }
}

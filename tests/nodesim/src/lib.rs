//! nodesim: simulated kubelets for a real control plane (the kwok idea).
//!
//! No kubelet or container runtime can run in the test environment, so nodesim plays the nodes
//! against a real kube-apiserver, controller manager and scheduler:
//!
//! - [`nodes`]: registers Nodes (`sim-node-0..N-1`, Ready, 4 CPU / 8Gi / 110 pods by default)
//!   and keeps their heartbeats (Lease + Ready); the annotation
//!   `nodesim.kubemedic.io/heartbeat=stop` stops them so the node controller marks the node NotReady.
//! - [`kubelet`]: watches the pods bound to those nodes and drives each with a
//!   [`machine::PodMachine`], writing pod status, container statuses, restart counts and
//!   [`events`] the way a kubelet does, derived from the spec by [`derive`] (missing
//!   Secret/ConfigMap keys, images missing from the [`registry`], memory need above the limit,
//!   probes on ports nobody listens on, crashing commands) — and deleting pods once terminating.
//! - [`logs`]: the kubelet log endpoint (HTTPS) that `pods/log` and `kubectl logs` reach.
//!
//! [`start`] wires them; the binary (`main.rs`) adds the CLI and the `bench` command ([`bench`]).

pub mod bench;
pub mod derive;
pub mod events;
pub mod kubelet;
pub mod logs;
pub mod machine;
pub mod nodes;
pub mod quantity;
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::kubelet::Kubelet;
use crate::logs::LogStore;
use crate::machine::Backoff;
use crate::nodes::NodeInfo;
use crate::registry::Registry;

/// How the simulation runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of nodes.
    pub nodes: usize,
    /// Node names are `{prefix}-{index}`.
    pub node_prefix: String,
    /// Value of the `nodesim.kubemedic.io/pool` label on every node.
    pub pool: String,
    /// CPU capacity per node.
    pub cpu: String,
    /// Memory capacity per node.
    pub memory: String,
    /// Pod capacity per node.
    pub max_pods: u32,
    /// Port of the kubelet (log) endpoint on 127.0.0.1; 0 picks a free one.
    pub kubelet_port: u16,
    /// The simulated registry.
    pub registry: Registry,
    /// CrashLoopBackOff / ImagePullBackOff timing.
    pub backoff: Backoff,
    /// Concurrent API calls for pod status, events and reads.
    pub concurrency: usize,
    /// Record Normal events too (Pulled, Created, Started, Killing …), not only warnings.
    pub normal_events: bool,
    /// Stamp new events with `eventTime` (microseconds), for measuring watch delivery.
    pub event_time: bool,
    /// Lease renewal interval.
    pub heartbeat: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            node_prefix: "sim-node".into(),
            pool: "default".into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            max_pods: 110,
            kubelet_port: 0,
            registry: Registry::default_set(),
            backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(8) },
            concurrency: 32,
            normal_events: true,
            event_time: false,
            heartbeat: Duration::from_secs(2),
        }
    }
}

/// Errors starting the simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log endpoint could not start.
    #[error(transparent)]
    Serve(#[from] logs::ServeError),
    /// A node could not be registered.
    #[error(transparent)]
    Node(#[from] nodes::NodeError),
    /// The node watch did not sync.
    #[error("node watch did not sync: {0}")]
    Watch(String),
}

/// A running simulation.
pub struct Running {
    /// The simulated nodes.
    pub nodes: Vec<NodeInfo>,
    /// The kubelet endpoint port.
    pub kubelet_port: u16,
    /// The kubelets (for counts).
    pub kubelet: Arc<Kubelet>,
}

/// Starts the log endpoint, registers the nodes and starts heartbeats and pod watches; returns
/// once the nodes are registered. Everything stops when `cancel` is cancelled.
///
/// # Errors
/// When the endpoint cannot bind or a node cannot be registered.
pub async fn start(client: Client, opts: Options, cancel: CancellationToken) -> Result<Running, Error> {
    let logs = Arc::new(LogStore::default());
    let port = logs::serve(logs.clone(), opts.kubelet_port, cancel.clone()).await?;
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let recorder = Arc::new(
        events::Recorder::new(client.clone(), permits.clone(), opts.normal_events).with_event_time(opts.event_time),
    );
    let kubelet =
        Arc::new(Kubelet::new(client.clone(), Arc::new(opts.registry.clone()), logs, recorder, permits, opts.backoff));

    let nodes: Vec<NodeInfo> = (0..opts.nodes)
        .map(|index| NodeInfo {
            name: format!("{}-{index}", opts.node_prefix),
            index,
            pool: opts.pool.clone(),
            cpu: opts.cpu.clone(),
            memory: opts.memory.clone(),
            max_pods: opts.max_pods,
            kubelet_port: port,
        })
        .collect();
    for n in &nodes {
        nodes::register(&client, n).await?;
    }

    // One reflector over our nodes feeds every heartbeat loop (annotation and Ready state).
    let (reader, writer) = reflector::store::<Node>();
    let cfg = watcher::Config::default().labels(&format!("{}={}", nodes::POOL_LABEL, opts.pool));
    let stream = watcher(Api::<Node>::all(client.clone()), cfg).default_backoff().reflect(writer).applied_objects();
    let stop = cancel.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                item = stream.next() => match item {
                    None => return,
                    Some(Err(e)) => tracing::warn!(error = %e, "node watch error; retrying"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), reader.wait_until_ready())
        .await
        .map_err(|_| Error::Watch("timed out after 30s".into()))?
        .map_err(|e| Error::Watch(e.to_string()))?;

    let (resumed_tx, mut resumed_rx) = mpsc::unbounded_channel::<String>();
    for n in &nodes {
        tokio::spawn(nodes::heartbeat(
            client.clone(),
            n.clone(),
            reader.clone(),
            opts.heartbeat,
            resumed_tx.clone(),
            cancel.clone(),
        ));
        tokio::spawn(kubelet.clone().run_node(n.clone(), cancel.clone()));
    }
    let k = kubelet.clone();
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                node = resumed_rx.recv() => match node {
                    Some(node) => k.resync_node(&node),
                    None => return,
                },
            }
        }
    });
    Ok(Running { nodes, kubelet_port: port, kubelet })
}

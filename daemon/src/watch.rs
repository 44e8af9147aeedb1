//! Cluster watchers: reflector stores that turn state changes into signals.
//!
//! One kube-runtime watcher per kind (Pods, core Events, Deployments,
//! ReplicaSets, StatefulSets, DaemonSets, Jobs, Nodes, Namespaces), per
//! namespace when the scope lists namespaces, else cluster-wide with the
//! excluded namespaces filtered out by a field selector. Each feeds a
//! reflector store (used for owner resolution and by other modules) and runs
//! with the default backoff. The watcher resumes from the last
//! resourceVersion after a dropped connection and relists on 410 Gone; a
//! relist replays every object as `InitApply`, and because signals are
//! derived by comparing an object's failures with what was last seen of it,
//! a failure that happened while the apiserver was away is reported when it
//! comes back, and nothing is reported twice.
//!
//! A workload that had failures and is healthy again (rolled out and
//! available, node Ready, Job complete, bare pod Ready) emits one resolved
//! signal with reason [`classify::reason::HEALTHY`].

pub mod classify;
mod handlers;
pub mod owners;
pub mod strip;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Namespace, Node};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::alerts::OwnerLookup;
use crate::cluster::{Cluster, Scope};
use crate::incident::NamespaceLabels;
use crate::model::signal::Signal;
use crate::telemetry::metrics::Metrics;
pub use owners::{Cache, SharedCache, Stores};
use strip::Strip;

/// Watcher settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Whether `kubemedic run` watches the cluster at all (alerts still work without).
    pub enabled: bool,
    /// Kubernetes Events older than this many seconds when first seen are history, not news, and are ignored.
    pub event_max_age_seconds: u64,
    /// Watch Namespaces, for rules with a `namespace_selector` (needs list/watch on namespaces).
    pub namespace_labels: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { enabled: true, event_max_age_seconds: 600, namespace_labels: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cluster watchers are disabled (watch.enabled: false)")]
    Disabled,
    #[error("invalid watch config: {0}")]
    Config(String),
}

/// Watcher counters.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Watch events received (all kinds).
    pub events_total: AtomicU64,
    /// Signals sent.
    pub signals_total: AtomicU64,
    /// Watch errors (each is retried with backoff; a 410 Gone relists).
    pub errors_total: AtomicU64,
}

/// The running watchers.
pub struct WatchHandle {
    cache: Cache,
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<WatchStats>,
}

impl WatchHandle {
    /// The reflector stores.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Pod → owning workload, for the Alertmanager receiver.
    pub fn owners(&self) -> Arc<dyn OwnerLookup> {
        Arc::new(self.cache.clone())
    }

    /// Namespace labels, for the incident tracker's namespace selectors.
    pub fn namespace_labels(&self) -> NamespaceLabels {
        let cache = self.cache.clone();
        Arc::new(move |ns: &str| cache.namespace_labels(ns))
    }

    pub fn stats(&self) -> Arc<WatchStats> {
        self.stats.clone()
    }

    /// Wait until every store has its first complete list: true then, false when a
    /// watcher stopped before its store synced (shutdown).
    pub async fn ready(&self) -> bool {
        let c = &self.cache;
        c.pods.wait_until_ready().await
            && c.replicasets.wait_until_ready().await
            && c.deployments.wait_until_ready().await
            && c.statefulsets.wait_until_ready().await
            && c.daemonsets.wait_until_ready().await
            && c.jobs.wait_until_ready().await
            && c.nodes.wait_until_ready().await
            && c.namespaces.wait_until_ready().await
    }

    /// Wait for every watcher to stop (after the shutdown token is cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Shared by every watcher task.
pub(crate) struct Ctx {
    pub(crate) cluster: String,
    pub(crate) scope: Scope,
    pub(crate) cache: Cache,
    pub(crate) track: std::sync::Mutex<handlers::Track>,
    pub(crate) event_max_age: Duration,
    /// Where the delivery delay of stamped Warning Events is observed, when set.
    pub(crate) metrics: Option<Arc<Metrics>>,
    stats: Arc<WatchStats>,
    signals: mpsc::Sender<Signal>,
    shutdown: CancellationToken,
}

/// A watch to start once every store exists.
struct Pending<K: Resource<DynamicType = ()> + Clone + 'static> {
    api: Api<K>,
    config: watcher::Config,
    /// The store it feeds; `None` for a watch whose objects nobody looks up (events).
    writer: Option<Writer<K>>,
}

/// Stores and pending watches for one kind: per namespace in the scope, or cluster-wide.
fn plan<K>(client: &Client, scope: &Scope, namespaced: bool) -> (Stores<K>, Vec<Pending<K>>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let mut parts = Vec::new();
    let mut pending = Vec::new();
    if namespaced && !scope.namespaces.is_empty() {
        for ns in scope.namespaces.iter().filter(|ns| scope.namespace_visible(ns)) {
            let (store, writer) = reflector::store();
            parts.push((Some(ns.clone()), store));
            pending.push(Pending {
                api: Api::namespaced(client.clone(), ns),
                config: base_config(),
                writer: Some(writer),
            });
        }
    } else {
        let (store, writer) = reflector::store();
        parts.push((None, store));
        let mut config = base_config();
        let excluded: Vec<String> = scope.exclude.iter().map(|ns| format!("metadata.namespace!={ns}")).collect();
        if !excluded.is_empty() {
            config = config.fields(&excluded.join(","));
        }
        pending.push(Pending { api: Api::all(client.clone()), config, writer: Some(writer) });
    }
    (Stores { parts }, pending)
}

fn plan_cluster<K>(client: &Client) -> (Stores<K>, Vec<Pending<K>>)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    (
        Stores { parts: vec![(None, store)] },
        vec![Pending { api: Api::all(client.clone()), config: base_config(), writer: Some(writer) }],
    )
}

fn base_config() -> watcher::Config {
    // Paged lists keep the apiserver's and our memory flat on large clusters.
    watcher::Config::default().page_size(500)
}

/// Start every watcher. Signals go to `signals`; the watchers stop when `shutdown` is cancelled.
pub fn spawn(
    cluster: Cluster,
    config: &WatchConfig,
    signals: mpsc::Sender<Signal>,
    shutdown: CancellationToken,
) -> Result<WatchHandle, WatchError> {
    spawn_with_metrics(cluster, config, signals, None, shutdown)
}

/// [`spawn`], also observing into `metrics` how long the apiserver took to deliver each new
/// Warning Event that carries its write time (`kubemedic_watch_delivery_seconds`).
pub fn spawn_with_metrics(
    cluster: Cluster,
    config: &WatchConfig,
    signals: mpsc::Sender<Signal>,
    metrics: Option<Arc<Metrics>>,
    shutdown: CancellationToken,
) -> Result<WatchHandle, WatchError> {
    if !config.enabled {
        return Err(WatchError::Disabled);
    }
    if config.event_max_age_seconds == 0 {
        return Err(WatchError::Config("watch.event_max_age_seconds must be > 0".into()));
    }
    let client = cluster.client.clone();
    let scope = cluster.scope.clone();
    let (pods, pod_w) = plan::<strip::CachedPod>(&client, &scope, true);
    // Events need no store (nobody looks them up; the `events` tool reads the apiserver): a cluster
    // with thousands of pods has tens of thousands of events, and a store would hold them all.
    let (_, mut event_w) = plan::<Event>(&client, &scope, true);
    for p in &mut event_w {
        p.writer = None;
    }
    let (replicasets, rs_w) = plan::<ReplicaSet>(&client, &scope, true);
    let (deployments, deploy_w) = plan::<Deployment>(&client, &scope, true);
    let (statefulsets, sts_w) = plan::<StatefulSet>(&client, &scope, true);
    let (daemonsets, ds_w) = plan::<DaemonSet>(&client, &scope, true);
    let (jobs, job_w) = plan::<Job>(&client, &scope, true);
    let (nodes, node_w) = plan_cluster::<Node>(&client);
    let (namespaces, ns_w) = if config.namespace_labels {
        plan_cluster::<Namespace>(&client)
    } else {
        let (store, writer) = reflector::store::<Namespace>();
        // Nothing will ever list them: mark the empty store ready.
        let mut writer = writer;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        (Stores { parts: vec![(None, store)] }, Vec::new())
    };
    let cache = Cache { pods, replicasets, deployments, statefulsets, daemonsets, jobs, nodes, namespaces };
    let stats = Arc::new(WatchStats::default());
    let ctx = Arc::new(Ctx {
        cluster: cluster.name.clone(),
        scope,
        cache: cache.clone(),
        track: Default::default(),
        event_max_age: Duration::from_secs(config.event_max_age_seconds),
        metrics,
        stats: stats.clone(),
        signals,
        shutdown,
    });
    let mut tasks = Vec::new();
    // Owners first: pods and events resolve their workload through these stores.
    tasks.extend(rs_w.into_iter().map(|p| run(ctx.clone(), "replicasets", p, false, |_, _| Vec::new())));
    tasks.extend(deploy_w.into_iter().map(|p| run(ctx.clone(), "deployments", p, false, handlers::deployment)));
    tasks.extend(sts_w.into_iter().map(|p| run(ctx.clone(), "statefulsets", p, false, handlers::statefulset)));
    tasks.extend(ds_w.into_iter().map(|p| run(ctx.clone(), "daemonsets", p, false, handlers::daemonset)));
    tasks.extend(job_w.into_iter().map(|p| run(ctx.clone(), "jobs", p, false, handlers::job)));
    tasks.extend(node_w.into_iter().map(|p| run(ctx.clone(), "nodes", p, false, handlers::node)));
    tasks.extend(ns_w.into_iter().map(|p| run(ctx.clone(), "namespaces", p, false, |_, _| Vec::new())));
    tasks.extend(pod_w.into_iter().map(|p| run(ctx.clone(), "pods", p, true, handlers::pod)));
    tasks.extend(event_w.into_iter().map(|p| run(ctx.clone(), "events", p, true, handlers::event)));
    Ok(WatchHandle { cache, tasks, stats })
}

/// How long pods and events wait for the owner stores before starting anyway
/// (owner resolution then falls back to the Deployment controller's naming).
const OWNER_STORES_WAIT: Duration = Duration::from_secs(10);

fn run<K>(
    ctx: Arc<Ctx>,
    resource: &'static str,
    pending: Pending<K>,
    wait_for_owners: bool,
    handle: fn(&Ctx, watcher::Event<K>) -> Vec<Signal>,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Strip + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let span = tracing::info_span!("watch", resource, cluster = %ctx.cluster);
    tokio::spawn(
        async move {
            if wait_for_owners {
                let owners = async {
                    ctx.cache.replicasets.wait_until_ready().await;
                    ctx.cache.jobs.wait_until_ready().await;
                };
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return,
                    _ = tokio::time::timeout(OWNER_STORES_WAIT, owners) => {}
                }
            }
            let stream = watcher(pending.api, pending.config).default_backoff().modify(|o: &mut K| o.strip());
            let mut stream = match pending.writer {
                Some(writer) => stream.reflect(writer).boxed(),
                None => stream.boxed(),
            };
            loop {
                let item = tokio::select! {
                    _ = ctx.shutdown.cancelled() => break,
                    item = stream.next() => item,
                };
                match item {
                    None => break,
                    Some(Err(err)) => {
                        ctx.stats.errors_total.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "watch failed; retrying with backoff");
                    }
                    Some(Ok(event)) => {
                        ctx.stats.events_total.fetch_add(1, Ordering::Relaxed);
                        for signal in handle(&ctx, event) {
                            tracing::debug!(reason = %signal.reason, status = ?signal.status,
                                workload = %signal.subject(), "signal");
                            tokio::select! {
                                _ = ctx.shutdown.cancelled() => return,
                                sent = ctx.signals.send(signal) => if sent.is_err() { return },
                            }
                            ctx.stats.signals_total.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            tracing::debug!("watch stopped");
        }
        .instrument(span),
    )
}

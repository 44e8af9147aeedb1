//! `nodesim bench`: how fast N pods on M simulated nodes reach their derived status.
//!
//! Starts its own simulated nodes (`bench-node-*`, pool `bench`, so a running nodesim's
//! `sim-node-*` are not used), creates three Deployments in a fresh namespace — healthy pods,
//! pods with an image the registry lacks, pods with a missing Secret key — and measures, from
//! the moment the Deployments are created, when every pod exists, is bound by the real
//! scheduler, and shows its derived status (healthy: Ready; bad image: ErrImagePull or
//! ImagePullBackOff; bad key: CreateContainerConfigError). Then it deletes what it made.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::Options;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Simulated nodes.
    pub nodes: usize,
    /// Pods in total.
    pub pods: usize,
    /// Percentage of pods that are broken (half bad image, half missing Secret key).
    pub broken_percent: u32,
    /// Give up after this long.
    pub timeout: Duration,
}

/// The measured figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// Pods in total.
    pub pods: usize,
    /// Healthy pods.
    pub healthy: usize,
    /// Pods with a bad image.
    pub bad_image: usize,
    /// Pods with a missing Secret key.
    pub bad_key: usize,
    /// Time until every pod existed.
    pub created: Duration,
    /// Time until every pod was bound.
    pub bound: Duration,
    /// Time until every pod showed its derived status.
    pub derived: Duration,
    /// Pods per node at the end.
    pub per_node: Vec<(String, usize)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "nodesim bench: {} pods on {} nodes ({} healthy, {} bad image, {} missing Secret key)",
            self.pods,
            self.per_node.len(),
            self.healthy,
            self.bad_image,
            self.bad_key
        )?;
        writeln!(f, "  every pod created by the ReplicaSet controller: {:>7.1}s", self.created.as_secs_f64())?;
        writeln!(f, "  every pod bound by the scheduler:               {:>7.1}s", self.bound.as_secs_f64())?;
        writeln!(f, "  every pod at its derived status:                {:>7.1}s", self.derived.as_secs_f64())?;
        writeln!(
            f,
            "  throughput to derived status:                   {:>7.0} pods/s",
            self.pods as f64 / self.derived.as_secs_f64().max(0.001)
        )?;
        let spread: Vec<String> = self.per_node.iter().map(|(n, c)| format!("{n}={c}")).collect();
        write!(f, "  pods per node: {}", spread.join(" "))
    }
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Starting the simulation failed.
    #[error("start nodesim")]
    Start(#[source] crate::Error),
    /// An API call failed.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Not every pod got there in time.
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, String),
}

fn api_err(what: &str) -> impl FnOnce(kube::Error) -> BenchError + '_ {
    move |source| BenchError::Api { what: what.to_string(), source }
}

fn deployment(name: &str, replicas: usize, image: &str, secret_key: Option<&str>) -> Deployment {
    let env = secret_key.map(
        |k| serde_json::json!([{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "bench", "key": k } } }]),
    );
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": { crate::nodes::POOL_LABEL: "bench" },
                    "containers": [{ "name": "app", "image": image, "env": env.unwrap_or(serde_json::json!([])) }]
                }
            }
        }
    }))
    .expect("valid deployment")
}

fn derived(p: &Pod) -> bool {
    let app = p.metadata.labels.as_ref().and_then(|l| l.get("app")).map_or("", String::as_str);
    let Some(st) = p.status.as_ref() else { return false };
    let waiting: Vec<&str> = st
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .collect();
    match app {
        "healthy" => st.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True"),
        "bad-image" => waiting.iter().any(|r| *r == "ErrImagePull" || *r == "ImagePullBackOff"),
        "bad-key" => waiting.contains(&"CreateContainerConfigError"),
        _ => false,
    }
}

/// Runs the benchmark with simulation options `sim` (node names, pool and capacity are set here).
///
/// # Errors
/// When the simulation cannot start, an API call fails, or the pods do not get there in time.
pub async fn run(client: Client, mut sim: Options, b: BenchOptions) -> Result<Report, BenchError> {
    sim.nodes = b.nodes.max(1);
    sim.node_prefix = "bench-node".into();
    sim.pool = "bench".into();
    sim.cpu = "64".into();
    sim.memory = "256Gi".into();
    sim.max_pods = u32::try_from(b.pods / sim.nodes * 2 + 20).unwrap_or(u32::MAX);
    let cancel = CancellationToken::new();
    let running = crate::start(client.clone(), sim, cancel.clone()).await.map_err(BenchError::Start)?;
    let result = measure(&client, &b).await;
    cleanup(
        &client,
        &running.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        result.as_ref().ok().map(|r| r.1.as_str()),
    )
    .await;
    cancel.cancel();
    result.map(|(r, _)| r)
}

async fn measure(client: &Client, b: &BenchOptions) -> Result<(Report, String), BenchError> {
    let ns_name = format!("nodesim-bench-{:x}", std::process::id());
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(ns_name.clone()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    ns_api.create(&PostParams::default(), &ns).await.map_err(api_err("create namespace"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "bench" }, "stringData": { "TOKEN": "x" }
    }))
    .expect("valid secret");
    secrets.create(&PostParams::default(), &secret).await.map_err(api_err("create secret"))?;

    let broken = b.pods * b.broken_percent.min(100) as usize / 100;
    let bad_image = broken / 2;
    let bad_key = broken - bad_image;
    let healthy = b.pods - broken;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    let (reader, writer) = reflector::store::<Pod>();
    let stream = watcher(pods.clone(), watcher::Config::default()).default_backoff().reflect(writer).applied_objects();
    let watch = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    let _ = reader.wait_until_ready().await;

    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns_name);
    let start = Instant::now();
    for d in [
        deployment("healthy", healthy, "ghcr.io/kubemedic-demo/bench:1.0.0", None),
        deployment("bad-image", bad_image, "ghcr.io/kubemedic-demo/bench:0.0.0-missing", None),
        deployment("bad-key", bad_key, "ghcr.io/kubemedic-demo/bench:1.0.0", Some("TOKEM")),
    ] {
        deps.create(&PostParams::default(), &d).await.map_err(api_err("create deployment"))?;
    }
    let (mut created, mut bound, mut done) = (None, None, None);
    let mut last_print = Instant::now();
    while done.is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state = reader.state();
        let n_created = state.len();
        let n_bound = state.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
        let n_derived = state.iter().filter(|p| derived(p)).count();
        if created.is_none() && n_created >= b.pods {
            created = Some(start.elapsed());
        }
        if bound.is_none() && n_bound >= b.pods {
            bound = Some(start.elapsed());
        }
        if n_derived >= b.pods {
            done = Some(start.elapsed());
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  {:>5.1}s: {n_created} created, {n_bound} bound, {n_derived} at derived status",
                start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if start.elapsed() > b.timeout {
            watch.abort();
            return Err(BenchError::Timeout(
                b.timeout,
                format!("{n_created} created, {n_bound} bound, {n_derived} at derived status of {}", b.pods),
            ));
        }
    }
    watch.abort();
    let mut per_node: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for p in pods.list(&ListParams::default()).await.map_err(api_err("list pods"))?.items {
        if let Some(n) = p.spec.and_then(|s| s.node_name) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let report = Report {
        pods: b.pods,
        healthy,
        bad_image,
        bad_key,
        created: created.unwrap_or_default(),
        bound: bound.unwrap_or_default(),
        derived: done.unwrap_or_default(),
        per_node: per_node.into_iter().collect(),
    };
    Ok((report, ns_name))
}

/// Deletes the bench namespace (waiting for its pods to go, which the simulated kubelets do) and
/// the bench nodes.
async fn cleanup(client: &Client, nodes: &[String], ns: Option<&str>) {
    let ns = ns.map_or_else(|| format!("nodesim-bench-{:x}", std::process::id()), str::to_string);
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let _ = ns_api.delete(&ns, &DeleteParams::background()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match pods.list(&ListParams::default().limit(1)).await {
            Ok(l) if l.items.is_empty() => break,
            Err(_) => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let node_api: Api<Node> = Api::all(client.clone());
    for n in nodes {
        let _ = node_api.delete(n, &DeleteParams::default()).await;
    }
}

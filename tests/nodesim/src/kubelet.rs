//! The simulated kubelets: watch the pods the scheduler binds to our nodes and drive each one
//! with a [`PodMachine`] in its own task, writing status, Events and logs.
//!
//! One watch per node (`spec.nodeName=NODE`), no polling. API calls (status patches, events,
//! Secret/ConfigMap reads, deletes) share one semaphore, so 1,000 pods starting at once do not
//! flood the apiserver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::derive::{self, ConfigView, Outcome};
use crate::events::{Involved, Recorder};
use crate::logs::LogStore;
use crate::machine::{Backoff, PodMachine};
use crate::nodes::NodeInfo;
use crate::registry::Registry;

/// What a pod task is told.
#[derive(Debug)]
enum Msg {
    /// A newer version of the pod.
    Update(Box<Pod>),
    /// Re-post the status (the node came back).
    Resync,
    /// The pod is gone.
    Gone,
}

struct Task {
    node: String,
    tx: mpsc::UnboundedSender<Msg>,
}

/// Shared state of all simulated kubelets.
pub struct Kubelet {
    client: Client,
    registry: Arc<Registry>,
    logs: Arc<LogStore>,
    recorder: Arc<Recorder>,
    permits: Arc<Semaphore>,
    backoff: Backoff,
    tasks: Mutex<HashMap<String, Task>>,
    ip_counters: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

impl Kubelet {
    /// Kubelets sharing one registry, log store, recorder and API-call budget.
    pub fn new(
        client: Client,
        registry: Arc<Registry>,
        logs: Arc<LogStore>,
        recorder: Arc<Recorder>,
        permits: Arc<Semaphore>,
        backoff: Backoff,
    ) -> Kubelet {
        Kubelet {
            client,
            registry,
            logs,
            recorder,
            permits,
            backoff,
            tasks: Mutex::new(HashMap::new()),
            ip_counters: Mutex::new(HashMap::new()),
        }
    }

    /// Number of pods being simulated.
    pub fn pod_count(&self) -> usize {
        self.tasks.lock().expect("tasks lock").len()
    }

    /// Asks every pod task of `node` to post its status again.
    pub fn resync_node(&self, node: &str) {
        for t in self.tasks.lock().expect("tasks lock").values().filter(|t| t.node == node) {
            let _ = t.tx.send(Msg::Resync);
        }
    }

    /// Watches the pods bound to `node` until `cancel`.
    pub async fn run_node(self: Arc<Self>, node: NodeInfo, cancel: CancellationToken) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        loop {
            let ev = tokio::select! {
                () = cancel.cancelled() => return,
                ev = stream.next() => ev,
            };
            match ev {
                None => return,
                Some(Err(e)) => tracing::warn!(node = %node.name, error = %e, "pod watch error; retrying"),
                Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => self.on_apply(&node, p, &cancel),
                Some(Ok(watcher::Event::Delete(p))) => self.on_delete(&p),
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
            }
        }
    }

    fn on_apply(self: &Arc<Self>, node: &NodeInfo, pod: Pod, cancel: &CancellationToken) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut tasks = self.tasks.lock().expect("tasks lock");
        if let Some(t) = tasks.get(&uid) {
            let _ = t.tx.send(Msg::Update(Box::new(pod)));
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        if pod.metadata.deletion_timestamp.is_none() && matches!(phase, "Succeeded" | "Failed") {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.insert(uid.clone(), Task { node: node.name.clone(), tx });
        drop(tasks);
        let ip = self.next_ip(node);
        let span = tracing::info_span!(
            "pod",
            ns = pod.metadata.namespace.as_deref().unwrap_or(""),
            name = pod.metadata.name.as_deref().unwrap_or("")
        );
        tokio::spawn(self.clone().pod_task(pod, node.name.clone(), ip, rx, cancel.clone()).instrument(span));
    }

    fn on_delete(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(t) = self.tasks.lock().expect("tasks lock").remove(&uid) {
            let _ = t.tx.send(Msg::Gone);
        }
        self.recorder.forget(&uid);
        if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
            self.logs.remove_pod(ns, name);
        }
    }

    fn next_ip(&self, node: &NodeInfo) -> String {
        let counter = self.ip_counters.lock().expect("ip lock").entry(node.name.clone()).or_default().clone();
        let n = counter.fetch_add(1, Ordering::Relaxed) % 62_500;
        format!("10.{}.{}.{}", 64 + (node.index % 128), n / 250, n % 250 + 2)
    }

    /// Reads the Secrets and ConfigMaps the pod references.
    async fn fetch_view(&self, pod: &Pod) -> Result<ConfigView, kube::Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (secrets, cms) = derive::referenced(pod);
        let mut view = ConfigView::default();
        let sapi: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        for name in secrets {
            let _permit = self.permits.acquire().await;
            let s = sapi.get_opt(&name).await?;
            view.secrets.insert(name, s.map(|s| derive::keys(&[s.data.as_ref()])));
        }
        let capi: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        for name in cms {
            let _permit = self.permits.acquire().await;
            let c = capi.get_opt(&name).await?;
            view.config_maps.insert(
                name,
                c.map(|c| {
                    let mut k = derive::keys(&[c.data.as_ref()]);
                    k.extend(derive::keys(&[c.binary_data.as_ref()]));
                    k
                }),
            );
        }
        Ok(view)
    }

    async fn pod_task(
        self: Arc<Self>,
        mut pod: Pod,
        node: String,
        ip: String,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        cancel: CancellationToken,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut m = PodMachine::new(&pod, &node, "127.0.0.1", &ip, self.backoff, Instant::now());
        let involved = Involved { kind: "Pod", namespace: m.namespace.clone(), name: m.name.clone(), uid: uid.clone() };
        let mut last_status: Option<serde_json::Value> = None;
        let mut deleting = pod.metadata.deletion_timestamp.is_some();
        loop {
            if deleting {
                self.delete_pod(&mut m, &involved, &node).await;
                break;
            }
            let now = Instant::now();
            let due = m.due_starts(now);
            if !due.is_empty() {
                self.start_containers(&mut m, &pod, due, now).await;
            }
            m.advance(Instant::now());
            if !self.flush(&mut m, &involved, &node, &mut last_status).await {
                break;
            }
            if m.is_evicted() && last_status.as_ref().is_some_and(|v| v["status"]["reason"] == "Evicted") {
                // Failed for good and posted: the kubelet no longer drives the pod.
                break;
            }
            let sleep =
                m.next_deadline().map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(sleep) => {}
                msg = rx.recv() => match msg {
                    None | Some(Msg::Gone) => break,
                    Some(Msg::Resync) => last_status = None,
                    Some(Msg::Update(p)) => {
                        deleting = p.metadata.deletion_timestamp.is_some();
                        pod = *p;
                    }
                },
            }
        }
        self.tasks.lock().expect("tasks lock").remove(&uid);
    }

    async fn start_containers(&self, m: &mut PodMachine, pod: &Pod, due: Vec<usize>, now: Instant) {
        let view = match self.fetch_view(pod).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "reading referenced Secrets/ConfigMaps failed; retrying");
                for i in due {
                    m.defer_start(i, now + Duration::from_secs(1));
                }
                return;
            }
        };
        if !m.any_run()
            && let Some(msg) = derive::mount_error(pod, &view)
        {
            m.mount_failed(msg, now);
            return;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        for i in due {
            let (name, init) = m.container(i);
            let list = if init { spec.init_containers.as_deref().unwrap_or(&[]) } else { &spec.containers[..] };
            let Some(c) = list.iter().find(|c| c.name == name) else { continue };
            let (outcome, warnings): (Outcome, Vec<String>) =
                derive::container(pod, c, &view, &self.registry, &m.pod_ip);
            for w in warnings {
                m.event("Warning", "NodesimAnnotationInvalid", w, None);
            }
            m.start(i, outcome, now);
        }
    }

    /// Writes logs, events and (when changed) the status. False when the pod is gone.
    async fn flush(
        &self,
        m: &mut PodMachine,
        obj: &Involved,
        node: &str,
        last: &mut Option<serde_json::Value>,
    ) -> bool {
        for (container, new_run, lines) in m.take_logs() {
            self.logs.append(&m.namespace, &m.name, &container, new_run, &lines);
        }
        let status = m.status();
        for cs in status.container_statuses.iter().flatten().chain(status.init_container_statuses.iter().flatten()) {
            self.logs.set_waiting(&m.namespace, &m.name, &cs.name, m.waiting_reason(&cs.name));
        }
        let body = serde_json::json!({ "metadata": { "uid": m.uid }, "status": status });
        // Compare without timestamps that change on every call.
        let mut cmp = body.clone();
        strip_times(&mut cmp);
        if last.as_ref() != Some(&cmp) {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &m.namespace);
            let res = {
                let _permit = self.permits.acquire().await;
                api.patch_status(&m.name, &PatchParams::default(), &Patch::Strategic(&body)).await
            };
            match res {
                Ok(_) => *last = Some(cmp),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return false,
                Err(e) => tracing::warn!(error = %e, "status patch failed; will retry"),
            }
        }
        for ev in m.take_events() {
            self.recorder.record(obj, node, &ev).await;
        }
        true
    }

    async fn delete_pod(&self, m: &mut PodMachine, obj: &Involved, node: &str) {
        m.stop_all();
        for ev in m.take_events() {
            self.recorder.record(obj, node, &ev).await;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &m.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(m.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        let _permit = self.permits.acquire().await;
        if let Err(e) = api.delete(&m.name, &dp).await {
            tracing::debug!(error = %e, "delete of terminating pod failed (already gone?)");
        }
    }
}

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("lastTransitionTime");
            for (_, x) in map.iter_mut() {
                strip_times(x);
            }
        }
        serde_json::Value::Array(xs) => xs.iter_mut().for_each(strip_times),
        _ => {}
    }
}

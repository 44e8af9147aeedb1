//! Waiting for the cluster to converge: poll a condition until it holds or the time is up.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{Api, Client};

/// How often [`until`] polls. Watches would be faster to react, but polling keeps tests simple
/// and the apiserver is local.
pub const POLL: Duration = Duration::from_millis(300);

/// Calls `check` until it returns `Some`, and returns that value.
///
/// # Panics
/// After `timeout`, naming `label` (what was awaited) so the failure reads on its own.
pub async fn until<T, F, Fut>(timeout: Duration, label: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {label}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True when the Deployment's latest generation is fully rolled out: every desired replica
/// updated, ready and available, and no old replica left.
pub fn deployment_is_ready(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else { return false };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && st.updated_replicas.unwrap_or(0) == want
        && st.ready_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
}

/// Waits until Deployment `ns/name` is fully rolled out (see [`deployment_is_ready`]).
pub async fn deployment_ready(client: &Client, ns: &str, name: &str, timeout: Duration) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(timeout, &format!("Deployment {ns}/{name} ready"), || async {
        api.get_opt(name).await.ok().flatten().filter(deployment_is_ready)
    })
    .await
}

/// True when the StatefulSet's latest revision has every desired replica ready.
pub fn statefulset_is_ready(s: &StatefulSet) -> bool {
    let (Some(spec), Some(st)) = (s.spec.as_ref(), s.status.as_ref()) else { return false };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0)
        && st.ready_replicas.unwrap_or(0) == want
        && st.replicas == want
        && st.current_revision.is_some()
        && st.update_revision == st.current_revision
}

/// Waits until StatefulSet `ns/name` has all replicas ready on its latest revision.
pub async fn statefulset_ready(client: &Client, ns: &str, name: &str, timeout: Duration) -> StatefulSet {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    until(timeout, &format!("StatefulSet {ns}/{name} ready"), || async {
        api.get_opt(name).await.ok().flatten().filter(statefulset_is_ready)
    })
    .await
}

/// True when the DaemonSet's latest generation runs, updated and ready, on every node it should.
pub fn daemonset_is_ready(d: &DaemonSet) -> bool {
    let Some(st) = d.status.as_ref() else { return false };
    let want = st.desired_number_scheduled;
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && st.updated_number_scheduled.unwrap_or(0) == want
        && st.number_ready == want
        && st.number_available.unwrap_or(0) == want
}

/// Waits until DaemonSet `ns/name` is rolled out and ready on every node (see [`daemonset_is_ready`]).
pub async fn daemonset_ready(client: &Client, ns: &str, name: &str, timeout: Duration) -> DaemonSet {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    until(timeout, &format!("DaemonSet {ns}/{name} ready"), || async {
        api.get_opt(name).await.ok().flatten().filter(daemonset_is_ready)
    })
    .await
}

/// Waits until the Deployment reports a `Progressing` condition with the given reason
/// (e.g. `ProgressDeadlineExceeded`, `NewReplicaSetAvailable`).
pub async fn deployment_progressing_reason(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(timeout, &format!("Deployment {ns}/{name} Progressing reason {reason}"), || async {
        let d = api.get_opt(name).await.ok().flatten()?;
        let has = d
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(reason));
        has.then_some(d)
    })
    .await
}

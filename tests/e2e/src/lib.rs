//! Shared harness for the end-to-end tests.
//!
//! Every e2e test runs against the real control plane and nodesim that `tests/run.sh` starts
//! (it exports `KUBECONFIG`). A test creates its own [`Namespace`], applies a scenario from
//! `tests/scenarios/` with [`scenario::apply`], then asserts through the real API:
//!
//! ```no_run
//! # async fn t() {
//! let client = e2e::client().await;
//! let ns = e2e::Namespace::create(&client, "crashloop").await;
//! e2e::scenario::apply(&client, &ns.name, "crashloop-after-rollout").await;
//! let pods = e2e::pods::of_deployment(&client, &ns.name, "worker").await;
//! # let _ = pods;
//! # }
//! ```
//!
//! - [`wait`]: poll until a condition holds or panic with what was awaited.
//! - [`scenario`]: the scenario files and how their steps are applied.
//! - [`pods`], [`events`]: reading pods of a workload, their container states and Events.
//! - [`nodes`]: the simulated nodes (heartbeat on/off).
//! - [`kubectl`]: running the real kubectl against the test cluster.
//! - [`daemon`]: the real `kubemedic run` binary as a child process (start, SIGKILL, restart).
//! - [`controlplane`]: etcd and apiservers of a test's own, to kill and restart.
//! - [`apiproxy`]: an HTTP proxy between a daemon and the apiserver that can hold one request or its answer.
//!
//! Tests run in parallel (nextest gives each its own process): never rely on another test's
//! objects, and do not assume `sim-node-2` is Ready (the node-not-ready test stops it for a while).

pub mod apiproxy;
pub mod controlplane;
pub mod daemon;
pub mod events;
pub mod kubectl;
pub mod mcp;
pub mod nodes;
pub mod pods;
pub mod scenario;
pub mod wait;

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace as NamespaceObject;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// Label put on every namespace the harness creates, so leftovers are easy to find.
pub const TEST_LABEL: &str = "e2e.kubemedic.io/test";

/// Installs the ring crypto provider for rustls, once per process (kube, reqwest and
/// async-nats all need a process-wide provider; see CRATES.md).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client for the test cluster, from `KUBECONFIG`.
///
/// # Panics
/// When `KUBECONFIG` is unset (the tests were not started through `tests/run.sh`) or unusable.
pub async fn client() -> Client {
    install_crypto();
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        panic!(
            "KUBECONFIG is not set: end-to-end tests need the local control plane and nodesim; \
             run tests/run.sh (it starts them and exports KUBECONFIG)"
        );
    };
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG={}: {e}", path.to_string_lossy()))
}

/// The path of the admin kubeconfig the tests use (for child processes such as kubectl or kubemedic).
pub fn kubeconfig_path() -> String {
    std::env::var("KUBECONFIG").expect("KUBECONFIG is not set: run tests/run.sh")
}

/// A namespace owned by one test. It is left in place after the test so a failure can be
/// inspected; the whole cluster is thrown away by tests/run.sh. Call [`Namespace::delete`] to
/// remove it earlier.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// The generated, unique name (`{prefix}-{suffix}`).
    pub name: String,
}

impl Namespace {
    /// Creates a namespace named `{prefix}-{unique suffix}`.
    ///
    /// # Panics
    /// When the prefix is not a DNS label or the apiserver refuses the namespace.
    pub async fn create(client: &Client, prefix: &str) -> Namespace {
        let name = unique_name(prefix);
        let api: Api<NamespaceObject> = Api::all(client.clone());
        let ns = NamespaceObject {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..NamespaceObject::default()
        };
        api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        Namespace { name }
    }

    /// Deletes the namespace (the namespace controller removes its objects in the background).
    pub async fn delete(&self, client: &Client) {
        let api: Api<NamespaceObject> = Api::all(client.clone());
        let _ = api.delete(&self.name, &DeleteParams::background()).await;
    }
}

/// `{prefix}-{suffix}` where the suffix is unique across processes and calls, lowercase hex.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = (u64::from(std::process::id()) << 20) ^ u64::from(nanos) ^ (u64::from(n) << 8);
    let prefix: String = prefix.to_ascii_lowercase().chars().take(40).collect();
    let name = format!("{prefix}-{:x}", suffix & 0xff_ffff_ffff);
    assert!(
        name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !name.starts_with('-'),
        "namespace prefix {prefix:?} is not a DNS label"
    );
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_dns_labels() {
        let a = unique_name("Crash");
        let b = unique_name("crash");
        assert_ne!(a, b);
        assert!(a.starts_with("crash-"));
        assert!(a.len() <= 63);
    }
}

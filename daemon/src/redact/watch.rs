//! Keeps the gate's known values current from a watch on the Secrets of the
//! namespaces in scope (one watch per namespace, or one cluster-wide watch
//! without the excluded namespaces), instead of listing Secrets per call.
//!
//! A namespace whose Secrets kubemedic may not read (403) is tolerated: it
//! is logged once and retried with backoff; its values are then unknown and
//! only the key and pattern rules protect them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{Gate, Scrubber};
use crate::cluster::Scope;

/// Secret types whose data is not a credential to hide: a Helm release
/// record (large, and its manifests' Secrets are watched themselves).
const SKIP_TYPES: &[&str] = &["helm.sh/release.v1"];

/// The values of one Secret worth scrubbing. A service-account token
/// Secret's `namespace` (a namespace name) and `ca.crt` (the public cluster
/// CA) are public and would erase every mention of the namespace.
pub fn values_of(secret: &Secret) -> Vec<Vec<u8>> {
    let ty = secret.type_.as_deref().unwrap_or("Opaque");
    if SKIP_TYPES.contains(&ty) {
        return Vec::new();
    }
    let token = ty == "kubernetes.io/service-account-token";
    let public = |k: &str| token && (k == "namespace" || k == "ca.crt");
    let data = secret.data.iter().flatten().filter(|(k, _)| !public(k)).map(|(_, v)| v.0.clone());
    let string_data =
        secret.string_data.iter().flatten().filter(|(k, _)| !public(k)).map(|(_, v)| v.clone().into_bytes());
    data.chain(string_data).collect()
}

type Key = (String, String);

/// Values by Secret, shared by the watch tasks; every change rebuilds the gate's scrubber.
struct Cache {
    gate: &'static Gate,
    secrets: Mutex<BTreeMap<Key, Vec<Vec<u8>>>>,
}

impl Cache {
    fn update(&self, f: impl FnOnce(&mut BTreeMap<Key, Vec<Vec<u8>>>)) {
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut secrets);
        let scrubber = Scrubber::new(secrets.values().flatten());
        drop(secrets);
        tracing::debug!(forms = scrubber.len(), "secret values for redaction updated");
        self.gate.set_known(scrubber);
    }
}

/// The running Secret watches.
#[derive(Clone)]
pub struct SecretWatch {
    /// How many watches have not yet either listed their Secrets or failed once.
    unsettled: tokio::sync::watch::Receiver<usize>,
}

impl SecretWatch {
    /// Wait until every watch has listed its Secrets (or failed, e.g. 403),
    /// at most `timeout`. Returns whether all settled.
    pub async fn settled(&self, timeout: Duration) -> bool {
        let mut rx = self.unsettled.clone();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Start watching the Secrets in `scope`, feeding `gate`, until `shutdown`.
pub fn secrets(client: &Client, scope: &Scope, gate: &'static Gate, shutdown: CancellationToken) -> SecretWatch {
    let cache = Arc::new(Cache { gate, secrets: Mutex::new(BTreeMap::new()) });
    let mut plans: Vec<(Option<String>, Api<Secret>, watcher::Config)> = Vec::new();
    if scope.namespaces.is_empty() {
        let mut config = watcher::Config::default().page_size(500);
        let excluded: Vec<String> = scope.exclude.iter().map(|ns| format!("metadata.namespace!={ns}")).collect();
        if !excluded.is_empty() {
            config = config.fields(&excluded.join(","));
        }
        plans.push((None, Api::all(client.clone()), config));
    } else {
        for ns in scope.namespaces.iter().filter(|ns| scope.namespace_visible(ns)) {
            plans.push((Some(ns.clone()), Api::namespaced(client.clone(), ns), watcher::Config::default()));
        }
    }
    let (tx, unsettled) = tokio::sync::watch::channel(plans.len());
    let tx = Arc::new(tx);
    for (ns, api, config) in plans {
        let span = tracing::info_span!("secret_watch", namespace = ns.as_deref().unwrap_or("*"));
        tokio::spawn(run(ns, api, config, cache.clone(), tx.clone(), shutdown.clone()).instrument(span));
    }
    SecretWatch { unsettled }
}

async fn run(
    ns: Option<String>,
    api: Api<Secret>,
    config: watcher::Config,
    cache: Arc<Cache>,
    unsettled: Arc<tokio::sync::watch::Sender<usize>>,
    shutdown: CancellationToken,
) {
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listing: Option<BTreeMap<Key, Vec<Vec<u8>>>> = None;
    let mut settled = false;
    let mut settle = || {
        if !settled {
            settled = true;
            unsettled.send_modify(|n| *n = n.saturating_sub(1));
        }
    };
    let mut failures = 0u32;
    let key = |s: &Secret| (s.namespace().unwrap_or_default(), s.name_any());
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => break,
            item = stream.next() => item,
        };
        match item {
            None => break,
            Some(Ok(watcher::Event::Init)) => listing = Some(BTreeMap::new()),
            Some(Ok(watcher::Event::InitApply(s))) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(key(&s), values_of(&s));
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let listed = listing.take().unwrap_or_default();
                cache.update(|all| {
                    // A relist replaces what this watch contributed before.
                    all.retain(|(sns, _), _| ns.as_ref().is_some_and(|ns| ns != sns));
                    all.extend(listed);
                });
                failures = 0;
                settle();
            }
            Some(Ok(watcher::Event::Apply(s))) => cache.update(|all| {
                all.insert(key(&s), values_of(&s));
            }),
            Some(Ok(watcher::Event::Delete(s))) => cache.update(|all| {
                all.remove(&key(&s));
            }),
            Some(Err(err)) => {
                // Typically 403 while RBAC does not grant Secrets here: keep retrying, say it once.
                if failures == 0 {
                    tracing::warn!(error = %crate::model::error::error_chain(&err),
                        "cannot watch Secrets; their values are scrubbed only by the key and pattern rules until this succeeds");
                }
                failures = failures.saturating_add(1);
                settle();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn public_parts_of_token_secrets_are_not_values() {
        let mut s = Secret {
            type_: Some("kubernetes.io/service-account-token".into()),
            data: Some(
                [("namespace", "default"), ("ca.crt", "CA"), ("token", "tok-abcdef")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(values_of(&s), vec![b"tok-abcdef".to_vec()]);
        s.type_ = Some("helm.sh/release.v1".into());
        assert!(values_of(&s).is_empty());
        s.type_ = None;
        s.string_data = Some([("pw".to_owned(), "hunter22".to_owned())].into_iter().collect());
        assert_eq!(values_of(&s).len(), 4);
    }
}

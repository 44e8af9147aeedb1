//! The Alertmanager webhook receiver (payload version 4).
//!
//! `POST /alerts/alertmanager` takes what Alertmanager's `webhook_configs`
//! sends. Each alert becomes one [`Signal`] (status read per alert: a
//! resolved alert becomes a resolved signal); the rules and the incident
//! tracker fold them. A body that is not a version-4 webhook is refused with
//! 400 and a message saying why; one that is too large with 413; a single bad
//! alert inside a good body is skipped and reported in the response while the
//! others are taken. When intake is saturated the answer is 503, which
//! Alertmanager retries, so nothing is lost.
//!
//! Optional bearer auth: Alertmanager's `http_config.authorization.credentials`;
//! the config holds only the token's SHA-256.

pub mod owners;
pub mod payload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::cluster::Scope;
use crate::model::signal::Signal;
pub use payload::{Alert, AlertStatus, OwnerLookup, SharedOwners, Webhook};

/// Where Alertmanager posts.
pub const PATH: &str = "/alerts/alertmanager";

/// How long a webhook waits for room in the signal queue before answering 503.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the owner lookups of one webhook may take in the apiserver, all together, before
/// the rest use the naming convention (Alertmanager's webhook timeout is 10 s by default).
const OWNER_LOOKUP_BUDGET: Duration = Duration::from_secs(3);

/// Alertmanager receiver settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Whether `POST /alerts/alertmanager` is served.
    pub enabled: bool,
    /// Largest webhook body accepted, in bytes (larger gets 413).
    pub max_body_bytes: usize,
    /// Hex SHA-256 of the bearer token Alertmanager must send
    /// (`printf %s "$TOKEN" | sha256sum`); absent = no authentication, which
    /// `kubemedic run` accepts only on a loopback listener or with `allow_unauthenticated`.
    pub bearer_token_sha256: Option<String>,
    /// Serve the webhook without a token on a non-loopback listener (anyone who can reach
    /// the port can then open incidents and feed text to the diagnosis).
    pub allow_unauthenticated: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { enabled: true, max_body_bytes: 1 << 20, bearer_token_sha256: None, allow_unauthenticated: false }
    }
}

impl AlertsConfig {
    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 {
            return Err("alerts.max_body_bytes must be > 0".into());
        }
        if let Some(h) = &self.bearer_token_sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err("alerts.bearer_token_sha256 must be 64 hex characters (a SHA-256)".into());
        }
        Ok(())
    }

    /// Refuses an unauthenticated webhook on a listener other hosts can reach.
    pub fn check_listener(&self, listen: std::net::SocketAddr) -> Result<(), String> {
        if self.enabled
            && self.bearer_token_sha256.is_none()
            && !self.allow_unauthenticated
            && !listen.ip().is_loopback()
        {
            return Err(format!(
                "the Alertmanager webhook would accept anyone on {listen}: set alerts.bearer_token_sha256 \
                 (and Alertmanager's http_config.authorization), listen on loopback, or set \
                 alerts.allow_unauthenticated: true"
            ));
        }
        Ok(())
    }
}

/// Receiver counters.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Webhook requests answered 200.
    pub webhooks_total: AtomicU64,
    /// Alerts turned into signals.
    pub alerts_total: AtomicU64,
    /// Requests refused (auth, malformed, oversized, saturated) and alerts skipped.
    pub rejected_total: AtomicU64,
}

/// What the handler needs.
#[derive(Clone)]
pub struct AlertsState {
    /// Cluster name the alerts are about (alerts carry no cluster).
    pub cluster: String,
    pub config: AlertsConfig,
    pub signals: mpsc::Sender<Signal>,
    /// Visible namespaces; alerts about others are skipped.
    pub scope: Option<Scope>,
    /// Pod → owning workload, from the watchers' stores.
    pub owners: Option<Arc<dyn OwnerLookup>>,
    /// Pods the stores do not know are resolved through the apiserver with this client
    /// (ownerReferences, see [`owners`]); `None` = the naming convention only.
    pub client: Option<kube::Client>,
    pub stats: Arc<AlertStats>,
}

impl AlertsState {
    pub fn new(cluster: impl Into<String>, config: AlertsConfig, signals: mpsc::Sender<Signal>) -> Self {
        Self {
            cluster: cluster.into(),
            config,
            signals,
            scope: None,
            owners: None,
            client: None,
            stats: Arc::default(),
        }
    }
}

/// The receiver's routes, to be merged into the daemon's HTTP router.
pub fn router(state: AlertsState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new().route(PATH, post(receive)).layer(DefaultBodyLimit::max(limit)).with_state(state)
}

/// Serve only the receiver on `listener` until `shutdown` (tests, benchmarks,
/// or a separate alerts port); the daemon merges [`router`] into its one HTTP server instead.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AlertsState,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let max_body = state.config.max_body_bytes;
    let limits = crate::listener::ListenerLimits::default();
    crate::listener::serve(listener, router(state), &limits, max_body, shutdown).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The value for `alerts.bearer_token_sha256`: hex SHA-256 of the token.
pub fn hash_token(token: &str) -> String {
    crate::auth::token_hash(token)
}

fn authorized(expected_hex: &str, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return false;
    };
    let got = Sha256::digest(token.trim().as_bytes());
    let Ok(expected) = hex::decode(expected_hex) else { return false };
    // Constant time over the digest.
    expected.len() == got.len() && expected.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn receive(
    State(state): State<AlertsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let reject = |status: StatusCode, message: String| {
        state.stats.rejected_total.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(status = status.as_u16(), %message, "alertmanager webhook refused");
        error(status, message)
    };
    if let Some(expected) = &state.config.bearer_token_sha256
        && !authorized(expected, &headers)
    {
        let mut resp = reject(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return resp;
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("webhook body larger than alerts.max_body_bytes ({} bytes)", state.config.max_body_bytes),
            );
        }
        Err(rejection) => return reject(rejection.status(), format!("cannot read webhook body: {rejection}")),
    };
    let webhook: Webhook = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("malformed Alertmanager webhook: {e}")),
    };
    if webhook.version != payload::VERSION {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("unsupported webhook payload version {:?} (expected \"4\")", webhook.version),
        );
    }
    if webhook.truncated_alerts > 0 {
        tracing::warn!(truncated = webhook.truncated_alerts, group = %webhook.group_key,
            "Alertmanager truncated this group (max_alerts); those alerts were not sent");
    }
    let mut rejected = Vec::new();
    let (mut firing, mut resolved, mut skipped) = (0u64, 0u64, 0u64);
    // One lookup per pod and webhook: a group often holds several alerts of one pod.
    let mut looked_up: std::collections::HashMap<(String, String), Option<crate::model::signal::WorkloadRef>> =
        std::collections::HashMap::new();
    let lookups_until = tokio::time::Instant::now() + OWNER_LOOKUP_BUDGET;
    for (index, value) in webhook.alerts.into_iter().enumerate() {
        let alert = match Alert::parse(value) {
            Ok(a) => a,
            Err(reason) => {
                state.stats.rejected_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(index, %reason, group = %webhook.group_key, "alert skipped");
                rejected.push(serde_json::json!({ "index": index, "reason": reason }));
                continue;
            }
        };
        let owner = match alert.pod_to_resolve() {
            Some(pod) => match looked_up.get(&pod) {
                Some(known) => known.clone(),
                None => {
                    let owner = owner_of_pod(&state, &pod.0, &pod.1, lookups_until).await;
                    looked_up.insert(pod, owner.clone());
                    owner
                }
            },
            None => None,
        };
        let signal = alert.to_signal_with_owner(&state.cluster, owner);
        let ns = &signal.subject().namespace;
        if !ns.is_empty() && state.scope.as_ref().is_some_and(|s| !s.namespace_visible(ns)) {
            skipped += 1;
            continue;
        }
        match alert.status {
            AlertStatus::Firing => firing += 1,
            AlertStatus::Resolved => resolved += 1,
        }
        match tokio::time::timeout(ENQUEUE_TIMEOUT, state.signals.send(signal)).await {
            Ok(Ok(())) => {
                state.stats.alerts_total.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => return reject(StatusCode::SERVICE_UNAVAILABLE, "intake is shutting down".into()),
            Err(_) => {
                // Alertmanager retries the whole group; what was taken already folds.
                let mut resp = reject(StatusCode::SERVICE_UNAVAILABLE, "intake queue full; retry".into());
                resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return resp;
            }
        }
    }
    state.stats.webhooks_total.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(receiver = %webhook.receiver, firing, resolved, skipped, "alertmanager webhook taken");
    axum::Json(serde_json::json!({
        "accepted": firing + resolved,
        "firing": firing,
        "resolved": resolved,
        "out_of_scope": skipped,
        "rejected": rejected,
    }))
    .into_response()
}

/// The workload of pod `ns/pod`: the watchers' stores when they know it, else the apiserver
/// (ownerReferences), within the scope only; `None` leaves the naming convention to the caller.
async fn owner_of_pod(
    state: &AlertsState,
    ns: &str,
    pod: &str,
    until: tokio::time::Instant,
) -> Option<crate::model::signal::WorkloadRef> {
    if state.scope.as_ref().is_some_and(|s| !s.namespace_visible(ns)) {
        return None;
    }
    if let Some(owner) = state.owners.as_ref().and_then(|o| o.owner_of_pod(ns, pod)) {
        return Some(owner);
    }
    let client = state.client.as_ref()?;
    match tokio::time::timeout_at(until, owners::owner_from_api(client, ns, pod)).await {
        Ok(Ok(owner)) => owner,
        Ok(Err(e)) => {
            tracing::warn!(namespace = ns, pod, error = %crate::model::error::error_chain(&e),
                "cannot read the alert's pod owner; using the pod name");
            None
        }
        Err(_) => {
            tracing::warn!(namespace = ns, pod, "no time left for the alert's pod owner lookup; using the pod name");
            None
        }
    }
}

#[cfg(test)]
mod tests;

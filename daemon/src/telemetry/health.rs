//! `/metrics`, `/healthz` and `/readyz`.
//!
//! Liveness says the process serves HTTP at all; readiness says every
//! component that registered a check (store, bus, watchers, ...) reports
//! ready. A component registers itself not ready first and flips to ready
//! once it works, so a replica joins the Service only when it can serve.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::{CONTENT_TYPE, Metrics, TEXT_CONTENT_TYPE};

/// Named readiness checks, shared by every component (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Arc<RwLock<BTreeMap<String, bool>>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set (or register) the state of one check.
    pub fn set(&self, check: &str, ready: bool) {
        let mut checks = self.checks.write().unwrap_or_else(|e| e.into_inner());
        checks.insert(check.to_owned(), ready);
    }

    /// Drop a check that no longer applies (e.g. the watchers of a replica that stopped leading).
    pub fn remove(&self, check: &str) {
        let mut checks = self.checks.write().unwrap_or_else(|e| e.into_inner());
        checks.remove(check);
    }

    /// Ready when every registered check is; true with no checks.
    pub fn is_ready(&self) -> bool {
        self.checks.read().unwrap_or_else(|e| e.into_inner()).values().all(|r| *r)
    }

    /// Checks that are not ready, for the `/readyz` body.
    pub fn not_ready(&self) -> Vec<String> {
        let checks = self.checks.read().unwrap_or_else(|e| e.into_inner());
        checks.iter().filter(|(_, ready)| !**ready).map(|(name, _)| name.clone()).collect()
    }
}

#[derive(Clone)]
struct HealthState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// Router with `/metrics` (OpenMetrics text), `/healthz` and `/readyz`; merge it into the main router.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(HealthState { metrics, readiness })
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), else the classic text format.
/// Serve only [`router`] on `listener` until `cancel` (for a separate metrics port, and tests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let limits = crate::listener::ListenerLimits::default();
    crate::listener::serve(listener, router(metrics, readiness), &limits, 64 << 10, cancel).await
}

async fn metrics_handler(State(state): State<HealthState>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.encode())
    } else {
        ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], state.metrics.encode_text())
    }
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    let waiting = state.readiness.not_ready();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", waiting.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        get_with(addr, path, "").await
    }

    async fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let status = buf[9..12].parse().unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn serves_metrics_and_readiness() {
        let metrics = Arc::new(Metrics::new());
        metrics.incident("OOMKilled");
        let readiness = Readiness::new();
        readiness.set("store", true);
        readiness.set("watchers", false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(metrics, readiness.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";
        let (status, head, body) = get_with(addr, "/metrics", accept).await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: application/openmetrics-text"), "{head}");
        assert!(body.contains("kubemedic_incidents_total{reason=\"OOMKilled\"} 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        let (status, head, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
        assert!(body.contains("# TYPE kubemedic_incidents_total counter"), "{body}");

        let (status, _, body) = get_text(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));

        let (status, _, body) = get_text(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("watchers"), "{body}");
        readiness.set("watchers", true);
        let (status, _, _) = get_text(addr, "/readyz").await;
        assert_eq!(status, 200);
        // A check that no longer applies (the replica stopped leading) is dropped, not left failing.
        readiness.set("watchers", false);
        readiness.remove("watchers");
        assert_eq!(readiness.not_ready(), Vec::<String>::new());
        let (status, _, body) = get_text(addr, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
    }
}

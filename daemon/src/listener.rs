//! Serving an axum router on a TCP listener with bounds a slow or hostile client cannot
//! outlast: a cap on open connections, a deadline for the request headers (which also closes
//! keep-alive connections that sit idle), and a deadline for the whole request body.
//!
//! `axum::serve` has none of these: a client that sends headers and then trickles its body
//! (or never sends it) holds its connection, and a file descriptor, forever. Every listener of
//! the daemon goes through [`serve`] instead.
//!
//! - Connection cap: a permit is taken *before* `accept`, so at the cap the daemon stops
//!   accepting and further clients wait in the kernel's backlog, holding none of the daemon's
//!   descriptors (which it needs for the apiserver, NATS and its state files).
//! - Header deadline: hyper's `header_read_timeout`, started when the connection is accepted
//!   and again whenever it goes idle after a response.
//! - Body deadline: the body is read in full within `body_read_timeout` (one deadline for the
//!   whole body, not per chunk, so a byte every few seconds does not reset it) and handed on
//!   buffered; bodies are bounded by the size limit anyway. Too slow: 408 and the connection
//!   is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Host header values accepted on `/mcp` (DNS-rebinding protection); loopback is always allowed.
    pub allowed_hosts: Vec<String>,
    /// Origin header values accepted on `/mcp`; requests without Origin are accepted.
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most connections open at once; at the cap new clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Seconds a client has to send the request line and headers; also how long a
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to send the whole request body.
    pub body_read_timeout_seconds: u64,
}

impl HttpConfig {
    /// What one client may hold on the listener.
    pub fn limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.max_connections,
            header_read_timeout_seconds: self.header_read_timeout_seconds,
            body_read_timeout_seconds: self.body_read_timeout_seconds,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        let defaults = ListenerLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            max_connections: defaults.max_connections,
            header_read_timeout_seconds: defaults.header_read_timeout_seconds,
            body_read_timeout_seconds: defaults.body_read_timeout_seconds,
        }
    }
}

/// Bounds on what one client may hold on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Most connections open at once; at the cap new clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Seconds a client has to send the request line and headers; also how long a
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to send the whole request body.
    pub body_read_timeout_seconds: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self { max_connections: 1024, header_read_timeout_seconds: 10, body_read_timeout_seconds: 30 }
    }
}

impl ListenerLimits {
    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max_connections must be > 0".into());
        }
        if self.header_read_timeout_seconds == 0 {
            return Err("header_read_timeout_seconds must be > 0".into());
        }
        if self.body_read_timeout_seconds == 0 {
            return Err("body_read_timeout_seconds must be > 0".into());
        }
        Ok(())
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }

    fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_seconds)
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown`; then stop accepting, ask open
/// connections to finish their request in flight, and return once they have closed (the
/// caller bounds that wait). `max_body_bytes` bounds the buffered body (larger gets 413).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ListenerLimits,
    max_body_bytes: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let body = Arc::new(BodyBound { timeout: limits.body_read_timeout(), max_bytes: max_body_bytes });
    let app = app.layer(middleware::from_fn_with_state(body, read_body_within));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept: the
                    // listener itself is fine; wait a moment instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection closed");
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

struct BodyBound {
    timeout: Duration,
    max_bytes: usize,
}

/// Read the whole body within the deadline, then hand the request on with the body buffered.
async fn read_body_within(State(bound): State<Arc<BodyBound>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(bound.timeout, axum::body::to_bytes(body, bound.max_bytes)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(err)) if is_too_large(&err) => close(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body larger than {} bytes (the limit is http.max_body_bytes or alerts.max_body_bytes)",
                bound.max_bytes
            ),
        ),
        Ok(Err(err)) => close(StatusCode::BAD_REQUEST, format!("cannot read request body: {err}")),
        Err(_) => {
            tracing::info!(method = %parts.method, path = %parts.uri.path(), "request body not received in time");
            close(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {} s", bound.timeout.as_secs()),
            )
        }
    }
}

fn is_too_large(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error answer after which the connection is closed (the rest of the body is not read).
fn close(status: StatusCode, message: String) -> Response {
    let mut resp = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests;

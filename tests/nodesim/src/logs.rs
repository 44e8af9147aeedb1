//! The kubelet log endpoint: `GET /containerLogs/{namespace}/{pod}/{container}` over HTTPS, with
//! kubelet's query parameters (`tailLines`, `previous`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`; `follow` returns what is written so far). The apiserver proxies
//! `pods/log` here (the node's InternalIP and kubeletEndpoint port), so `kubectl logs` works.
//! The certificate is self-signed; the apiserver does not verify kubelets without
//! `--kubelet-certificate-authority`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

type Lines = Vec<(Timestamp, String)>;

#[derive(Debug, Default)]
struct Entry {
    current: Lines,
    previous: Option<Lines>,
    started: bool,
    waiting: Option<String>,
}

/// What every simulated container has written, by (namespace, pod, container).
#[derive(Debug, Default)]
pub struct LogStore {
    inner: Mutex<HashMap<(String, String, String), Entry>>,
}

/// Query parameters of the kubelet log endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// The previous (terminated) instance of the container.
    pub previous: Option<bool>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Only lines at or after this RFC 3339 time.
    pub since_time: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: Option<bool>,
    /// At most this many bytes.
    pub limit_bytes: Option<i64>,
    /// Stream; served as a snapshot.
    pub follow: Option<bool>,
}

impl LogStore {
    /// Appends lines; `new_run` rotates the current lines to `previous` first (a restart).
    pub fn append(&self, ns: &str, pod: &str, container: &str, new_run: bool, lines: &[String]) {
        let mut map = self.inner.lock().expect("logs lock");
        let e = map.entry((ns.into(), pod.into(), container.into())).or_default();
        if new_run {
            if e.started {
                e.previous = Some(std::mem::take(&mut e.current));
            }
            e.started = true;
        }
        let now = Timestamp::now();
        e.current.extend(lines.iter().map(|l| (now, l.clone())));
    }

    /// Records why a container is not running (for kubelet's "is waiting to start" error).
    pub fn set_waiting(&self, ns: &str, pod: &str, container: &str, reason: Option<String>) {
        let mut map = self.inner.lock().expect("logs lock");
        map.entry((ns.into(), pod.into(), container.into())).or_default().waiting = reason;
    }

    /// Drops everything a pod wrote.
    pub fn remove_pod(&self, ns: &str, pod: &str) {
        self.inner.lock().expect("logs lock").retain(|k, _| !(k.0 == ns && k.1 == pod));
    }

    /// The log text as kubelet would serve it, or (status, message) like kubelet's errors.
    ///
    /// # Errors
    /// Unknown container, a container that never started, or no previous instance.
    pub fn read(&self, ns: &str, pod: &str, container: &str, q: &LogQuery) -> Result<String, (StatusCode, String)> {
        let map = self.inner.lock().expect("logs lock");
        let Some(e) = map.get(&(ns.into(), pod.into(), container.into())) else {
            return Err((StatusCode::NOT_FOUND, format!("container \"{container}\" in pod \"{pod}\" not found")));
        };
        let lines = if q.previous.unwrap_or(false) {
            e.previous.as_ref().ok_or_else(|| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
                )
            })?
        } else if !e.started {
            let why = e.waiting.clone().unwrap_or_else(|| "ContainerCreating".into());
            return Err((
                StatusCode::BAD_REQUEST,
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {why}"),
            ));
        } else {
            &e.current
        };
        let since = match (&q.since_time, q.since_seconds) {
            (Some(t), _) => Some(
                t.parse::<Timestamp>()
                    .map_err(|err| (StatusCode::BAD_REQUEST, format!("sinceTime {t:?} is not RFC 3339: {err}")))?,
            ),
            (None, Some(s)) => Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(s)).ok(),
            (None, None) => None,
        };
        let mut selected: Vec<&(Timestamp, String)> =
            lines.iter().filter(|(t, _)| since.is_none_or(|s| *t >= s)).collect();
        if let Some(n) = q.tail_lines {
            let n = usize::try_from(n.max(0)).unwrap_or(0);
            selected = selected.split_off(selected.len().saturating_sub(n));
        }
        let mut out = String::new();
        for (t, l) in selected {
            if q.timestamps.unwrap_or(false) {
                out.push_str(&format!("{} ", t.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")));
            }
            out.push_str(l);
            out.push('\n');
        }
        if let Some(limit) = q.limit_bytes {
            let mut limit = usize::try_from(limit.max(0)).unwrap_or(0).min(out.len());
            while !out.is_char_boundary(limit) {
                limit -= 1;
            }
            out.truncate(limit);
        }
        Ok(out)
    }
}

async fn container_logs(
    State(store): State<Arc<LogStore>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> impl IntoResponse {
    match store.read(&ns, &pod, &container, &q) {
        Ok(text) => (StatusCode::OK, text),
        Err((code, msg)) => (code, msg),
    }
}

/// Errors starting the log server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("bind kubelet endpoint on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The self-signed certificate could not be made.
    #[error("make the kubelet serving certificate: {0}")]
    Certificate(String),
}

/// A TLS listener for axum: handshakes run in their own tasks so a slow client holds no one up.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The acceptor stopped (shutdown): park until graceful shutdown ends the server.
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn tls_acceptor() -> Result<TlsAcceptor, ServeError> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(|e| ServeError::Certificate(e.to_string()))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(|e| ServeError::Certificate(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds `127.0.0.1:port` (0 = any free port) and serves the log endpoint until `cancel`.
/// Returns the bound port.
///
/// # Errors
/// When the port cannot be bound or the certificate cannot be made.
pub async fn serve(store: Arc<LogStore>, port: u16, cancel: CancellationToken) -> Result<u16, ServeError> {
    let addr = format!("127.0.0.1:{port}");
    let tcp = TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let local = tcp.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    let acceptor = tls_acceptor()?;
    let (tx, rx) = mpsc::channel(64);
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            let (sock, peer) = tokio::select! {
                () = stop.cancelled() => return,
                r = tcp.accept() => match r {
                    Ok(c) => c,
                    Err(e) => { tracing::warn!(error = %e, "accept on kubelet endpoint failed"); tokio::time::sleep(Duration::from_millis(100)).await; continue; }
                },
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    let app = axum::Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store);
    tokio::spawn(async move {
        let listener = TlsListener { rx, local };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await {
            tracing::error!(error = %e, "kubelet endpoint stopped");
        }
    });
    Ok(local.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_previous_and_waiting_errors() {
        let s = LogStore::default();
        s.set_waiting("n", "p", "c", Some("CreateContainerConfigError".into()));
        let err = s.read("n", "p", "c", &LogQuery::default()).unwrap_err();
        assert_eq!(err.1, "container \"c\" in pod \"p\" is waiting to start: CreateContainerConfigError");
        s.append("n", "p", "c", true, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(s.read("n", "p", "c", &LogQuery::default()).unwrap(), "a\nb\nc\n");
        let tail = LogQuery { tail_lines: Some(1), ..LogQuery::default() };
        assert_eq!(s.read("n", "p", "c", &tail).unwrap(), "c\n");
        let prev = LogQuery { previous: Some(true), ..LogQuery::default() };
        assert!(s.read("n", "p", "c", &prev).unwrap_err().1.contains("previous terminated container"));
        s.append("n", "p", "c", true, &["second run".into()]);
        assert_eq!(s.read("n", "p", "c", &prev).unwrap(), "a\nb\nc\n");
        assert_eq!(s.read("n", "p", "c", &LogQuery::default()).unwrap(), "second run\n");
        let limited = LogQuery { limit_bytes: Some(3), ..LogQuery::default() };
        assert_eq!(s.read("n", "p", "c", &limited).unwrap(), "sec");
        let stamped = LogQuery { timestamps: Some(true), ..LogQuery::default() };
        assert!(s.read("n", "p", "c", &stamped).unwrap().ends_with("Z second run\n"));
        s.remove_pod("n", "p");
        assert_eq!(s.read("n", "p", "c", &LogQuery::default()).unwrap_err().0, StatusCode::NOT_FOUND);
    }
}

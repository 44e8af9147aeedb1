//! An HTTP proxy of the test's own between a daemon and the apiserver, to put crash points
//! exactly where a test wants them.
//!
//! The daemon talks plain HTTP to `127.0.0.1:PORT` (see [`ApiProxy::kubeconfig`]); the proxy
//! forwards every request through a [`kube::Client`] of the test (TLS and the token stay on
//! that side), watches included (response bodies are streamed). Because it sees each request,
//! a [`Rule`] can hold one particular request for ever (it never reaches the apiserver) or
//! forward it and hold its answer for ever (the apiserver acted, the daemon never hears of
//! it). Every request other than a GET is recorded with what happened to it, so a test can
//! count the mutations that really reached the apiserver.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, Response, StatusCode, header};
use tokio_util::sync::CancellationToken;

/// What to do with the requests a [`Rule`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never forward the request; the caller waits for ever.
    HoldRequest,
    /// Forward the request, record the apiserver's status, never answer the caller.
    HoldResponse,
}

/// Requests with this method whose path (without the query) is `path` and whose query has no
/// `dryRun` get `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub method: Method,
    pub path: String,
    pub fault: Fault,
}

/// One request other than GET, as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub method: String,
    /// Path and query as sent.
    pub uri: String,
    /// The fault applied, if a rule matched.
    pub fault: Option<Fault>,
    /// The apiserver's status when the request was forwarded (`None`: not forwarded, or it failed to send).
    pub upstream_status: Option<u16>,
}

impl Mutation {
    /// Whether this is a real (not dry-run) request with `method` on `path`.
    pub fn is(&self, method: &Method, path: &str) -> bool {
        let (p, query) = self.uri.split_once('?').unwrap_or((&self.uri, ""));
        self.method == method.as_str() && p == path && !query.contains("dryRun")
    }

    /// Whether the apiserver accepted it (2xx).
    pub fn landed(&self) -> bool {
        self.upstream_status.is_some_and(|s| (200..300).contains(&s))
    }
}

struct Inner {
    upstream: kube::Client,
    rule: Mutex<Option<Rule>>,
    seen: Mutex<Vec<Mutation>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running proxy; stops accepting when dropped.
pub struct ApiProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: CancellationToken,
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ApiProxy {
    /// Listen on `127.0.0.1:0`, forwarding to where `upstream` points.
    pub async fn start(upstream: kube::Client) -> ApiProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the apiserver proxy");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner { upstream, rule: Mutex::new(None), seen: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(forward).with_state(inner.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        ApiProxy { addr, inner, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig that points at the proxy (no credentials: the proxy adds the test's).
    pub fn kubeconfig(&self, path: &Path) {
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: proxy\n  user: {{}}\ncontexts:\n- name: proxy\n  context: {{cluster: proxy, user: proxy}}\n\
             current-context: proxy\n",
            self.url()
        );
        std::fs::write(path, kc).expect("write the proxy kubeconfig");
    }

    /// Apply `rule` to requests from now on (`None`: forward everything).
    pub fn set_rule(&self, rule: Option<Rule>) {
        *lock(&self.inner.rule) = rule;
    }

    /// Every request other than GET seen so far, oldest first.
    pub fn mutations(&self) -> Vec<Mutation> {
        lock(&self.inner.seen).clone()
    }
}

const HOP_BY_HOP: [HeaderName; 4] =
    [header::HOST, header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING];

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let uri = parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let path = parts.uri.path().to_owned();
    let dry_run = parts.uri.query().is_some_and(|q| q.contains("dryRun"));
    let fault =
        lock(&inner.rule).as_ref().filter(|r| r.method == parts.method && r.path == path && !dry_run).map(|r| r.fault);
    let index = (parts.method != Method::GET).then(|| {
        let mut seen = lock(&inner.seen);
        seen.push(Mutation { method: parts.method.to_string(), uri: uri.clone(), fault, upstream_status: None });
        seen.len() - 1
    });
    if fault == Some(Fault::HoldRequest) {
        std::future::pending::<()>().await;
    }
    let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return status(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut up = axum::http::Request::builder().method(parts.method).uri(&uri);
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(k) && k != header::AUTHORIZATION {
            up = up.header(k, v);
        }
    }
    let up = match up.body(kube::client::Body::from(bytes)) {
        Ok(r) => r,
        Err(e) => return status(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let resp = match inner.upstream.send(up).await {
        Ok(r) => r,
        Err(e) => return status(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    if let Some(i) = index {
        lock(&inner.seen)[i].upstream_status = Some(resp.status().as_u16());
    }
    if fault == Some(Fault::HoldResponse) {
        std::future::pending::<()>().await;
    }
    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(parts.status);
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(k) {
            out = out.header(k, v);
        }
    }
    out.body(Body::new(body)).unwrap_or_else(|e| status(StatusCode::BAD_GATEWAY, &e.to_string()))
}

fn status(code: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(message.to_owned()));
    *r.status_mut() = code;
    r
}

//! MCP over streamable HTTP at `/mcp`: every request authenticated (bearer
//! token or OIDC JWT → 401 otherwise, with a challenge pointing at the
//! protected-resource metadata of [`super::discovery`]), Host and Origin
//! checked against the configuration (DNS-rebinding protection), the caller
//! handed to the server through the request extensions.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::discovery::{Challenge, Discovery};
use super::server::KubemedicServer;
use crate::auth::{AuthError, Authenticator};
use crate::listener::HttpConfig;

/// Hosts always accepted: loopback.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1", "[::1]"];

/// What the authentication layer needs.
#[derive(Clone)]
struct Gate {
    auth: Arc<Authenticator>,
    discovery: Arc<Discovery>,
}

/// The `/mcp` router and its discovery metadata. `shutdown` ends every session when cancelled.
pub fn router(
    server: KubemedicServer,
    auth: Arc<Authenticator>,
    http: &HttpConfig,
    shutdown: CancellationToken,
) -> Router {
    let discovery = Arc::new(Discovery {
        resource: auth.resource().map(str::to_owned),
        issuer: auth.issuer().map(str::to_owned),
        scopes: auth.scopes().to_vec(),
        allowed_hosts: http.allowed_hosts.clone(),
    });
    let gate = Gate { auth, discovery: discovery.clone() };
    unauthenticated(server, http, shutdown)
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .merge(super::discovery::router(discovery))
}

/// `/mcp` without the authentication layer: only for a server that has a fixed
/// caller ([`KubemedicServer::with_caller`]), e.g. protocol conformance runs.
/// Host and Origin checks still apply.
pub fn unauthenticated(server: KubemedicServer, http: &HttpConfig, shutdown: CancellationToken) -> Router {
    let mut hosts: Vec<String> = LOOPBACK.iter().map(|h| (*h).to_owned()).collect();
    hosts.extend(http.allowed_hosts.iter().cloned());
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    config.cancellation_token = shutdown;
    config.max_request_body_bytes = http.max_body_bytes;
    if !http.allowed_origins.is_empty() {
        config = config.with_allowed_origins(http.allowed_origins.clone());
    }
    let service =
        StreamableHttpService::new(move || Ok(server.for_session()), Arc::new(LocalSessionManager::default()), config);
    Router::new().nest_service("/mcp", service)
}

/// 401 with a `WWW-Authenticate` challenge unless the request carries a valid credential.
async fn authenticate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let header_value = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match gate.auth.authenticate(header_value.as_deref()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => {
            tracing::info!(error = %err, path = %request.uri().path(), "MCP request refused: not authenticated");
            let why = if matches!(err, AuthError::Missing) { Challenge::Missing } else { Challenge::InvalidToken };
            let challenge = gate.discovery.challenge(request.headers(), why);
            let body = serde_json::json!({"error": "unauthorized", "message": err.to_string()}).to_string();
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge.as_str()), (header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

//! How a client learns to authenticate (RFC 9728, as the MCP authorization
//! spec uses it): the protected-resource metadata at
//! `/.well-known/oauth-protected-resource` (and its `/mcp` path-suffixed
//! form), served without authentication, and a `WWW-Authenticate` challenge
//! on every 401 from `/mcp` that points at it.
//!
//! The resource URL is `auth.resource` when set (behind TLS or a proxy it must
//! be); otherwise `http://<Host>/mcp` from the request, and only for a Host the
//! listener accepts (loopback or `http.allowed_hosts`): a foreign Host is never
//! reflected into a URL a client would follow.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// Where the metadata lives, relative to the origin of the resource.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the metadata and the challenges are built from.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// `auth.resource`; `None` = derived from an accepted Host.
    pub resource: Option<String>,
    /// The OIDC issuer, the one authorization server.
    pub issuer: Option<String>,
    /// `auth.scopes`.
    pub scopes: Vec<String>,
    /// Hosts the listener accepts besides loopback (`http.allowed_hosts`).
    pub allowed_hosts: Vec<String>,
}

/// RFC 9728 section 2.
#[derive(Debug, Serialize)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    pub resource_name: &'static str,
}

/// Why a challenge was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credential at all.
    Missing,
    /// A credential was sent and refused.
    InvalidToken,
}

impl Discovery {
    /// The resource URL for a request with these headers; `None` for a Host not accepted.
    pub fn resource(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(r) = &self.resource {
            return Some(r.clone());
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        let authority = http::uri::Authority::try_from(host).ok()?;
        self.host_accepted(authority.host(), authority.port_u16()).then(|| format!("http://{authority}/mcp"))
    }

    fn host_accepted(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
            return true;
        }
        self.allowed_hosts.iter().filter_map(|a| http::uri::Authority::try_from(a.trim()).ok()).any(|a| {
            a.host().trim_matches(['[', ']']).eq_ignore_ascii_case(&host)
                && a.port_u16().is_none_or(|p| Some(p) == port)
        })
    }

    /// The metadata URL for a resource URL: the well-known path inserted between origin and path.
    pub fn metadata_url(resource: &str) -> Option<String> {
        let url = reqwest::Url::parse(resource).ok()?;
        let path = url.path().trim_end_matches('/');
        Some(format!("{}{WELL_KNOWN}{path}", url.origin().ascii_serialization()))
    }

    pub fn metadata(&self, resource: String) -> ResourceMetadata {
        ResourceMetadata {
            resource,
            authorization_servers: self.issuer.iter().cloned().collect(),
            bearer_methods_supported: vec!["header"],
            scopes_supported: self.scopes.clone(),
            resource_name: "kubemedic MCP server",
        }
    }

    /// The `WWW-Authenticate` value of a 401 from `/mcp`.
    pub fn challenge(&self, headers: &HeaderMap, why: Challenge) -> String {
        let mut value = String::from("Bearer realm=\"kubemedic\"");
        if let Some(url) = self.resource(headers).as_deref().and_then(Self::metadata_url) {
            value.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        if !self.scopes.is_empty() {
            value.push_str(&format!(", scope=\"{}\"", self.scopes.join(" ")));
        }
        if why == Challenge::InvalidToken {
            value.push_str(", error=\"invalid_token\"");
        }
        value
    }
}

/// The metadata routes, outside authentication.
pub fn router(discovery: std::sync::Arc<Discovery>) -> Router {
    Router::new()
        .route(WELL_KNOWN, get(metadata))
        .route(&format!("{WELL_KNOWN}/mcp"), get(metadata))
        .with_state(discovery)
}

async fn metadata(State(discovery): State<std::sync::Arc<Discovery>>, headers: HeaderMap) -> Response {
    match discovery.resource(&headers) {
        Some(resource) => {
            ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(discovery.metadata(resource))).into_response()
        }
        None => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "forbidden",
                "message": "Host not accepted; set auth.resource or add the host to http.allowed_hosts",
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn the_resource_comes_from_config_or_an_accepted_host_only() {
        let d = Discovery { allowed_hosts: vec!["kubemedic.ops:8443".into()], ..Discovery::default() };
        assert_eq!(d.resource(&headers("127.0.0.1:9000")).as_deref(), Some("http://127.0.0.1:9000/mcp"));
        assert_eq!(d.resource(&headers("kubemedic.ops:8443")).as_deref(), Some("http://kubemedic.ops:8443/mcp"));
        assert_eq!(d.resource(&headers("kubemedic.ops:9999")), None, "port pinned by the allowed host");
        assert_eq!(d.resource(&headers("evil.example")), None, "a foreign Host is not reflected");
        let fixed = Discovery { resource: Some("https://km.example.com/mcp".into()), ..d };
        assert_eq!(fixed.resource(&headers("evil.example")).as_deref(), Some("https://km.example.com/mcp"));
    }

    #[test]
    fn metadata_url_inserts_the_well_known_path() {
        assert_eq!(
            Discovery::metadata_url("https://km.example.com/mcp").as_deref(),
            Some("https://km.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            Discovery::metadata_url("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource")
        );
    }
}

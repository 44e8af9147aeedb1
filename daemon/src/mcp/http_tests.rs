//! `/mcp` over real HTTP on 127.0.0.1:0: authentication (tokens and OIDC),
//! roles, Host checks, through a real rmcp streamable-HTTP client.

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use super::server::{FORBIDDEN, KubemedicServer};
use crate::auth::jwt::tests::{TestIssuer, claims, config as oidc_config};
use crate::auth::{AuthConfig, Authenticator, Role, TokenConfig, token_hash};
use crate::listener::HttpConfig;
use crate::tools::testing::{shop_fixture, tools};

async fn serve(auth: AuthConfig) -> (String, tempfile::TempDir) {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let server = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[1u8; 32]).unwrap();
    let auth = Arc::new(Authenticator::new(&auth).await.unwrap());
    let app = super::http::router(server, auth, &HttpConfig::default(), tokio_util::sync::CancellationToken::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/mcp"), tempfile::tempdir().unwrap())
}

fn token_config() -> AuthConfig {
    AuthConfig {
        tokens: vec![
            TokenConfig {
                name: "viewer-bot".into(),
                sha256: token_hash("viewer-secret"),
                role: Role::Viewer,
                groups: Vec::new(),
            },
            TokenConfig {
                name: "oncall".into(),
                sha256: token_hash("operator-secret"),
                role: Role::Operator,
                groups: Vec::new(),
            },
        ],
        ..AuthConfig::default()
    }
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

#[tokio::test]
async fn unauthenticated_requests_get_401() {
    let (url, _dir) = serve(token_config()).await;
    let http = http_client();
    for auth in [None, Some("Bearer wrong"), Some("Basic dXNlcjpwYXNz")] {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().get("www-authenticate").is_some());
    }
    // A foreign Host header is refused even with a valid token (DNS rebinding).
    let resp = http
        .post(&url)
        .header("host", "evil.example")
        .header("authorization", "Bearer viewer-secret")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn roles_come_from_the_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, _dir) = serve(token_config()).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header("viewer-secret"),
    );
    let client = ().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "describe_workload"));
    let out = client
        .call_tool(
            CallToolRequestParams::new("events")
                .with_arguments(json!({"namespace": "shop"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert!(out.structured_content.is_some());
    let err = client
        .call_tool(
            CallToolRequestParams::new("delete_pod")
                .with_arguments(json!({"namespace": "shop", "name": "web-aaa-1"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap_err();
    match err {
        ServiceError::McpError(e) => {
            assert_eq!(e.code, FORBIDDEN);
            assert!(e.message.contains("delete_pod needs the Operator role; viewer-bot has Viewer"), "{}", e.message);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn oidc_tokens_authenticate_with_group_roles() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let issuer = TestIssuer::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks_json()).unwrap();
    let mut oidc = oidc_config();
    oidc.jwks_file = Some(jwks_path);
    let (url, _d) = serve(AuthConfig { oidc: Some(oidc), ..AuthConfig::default() }).await;

    let token = issuer.sign(&claims(&["sre"]));
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token),
    );
    let client = ().serve(transport).await.unwrap();
    assert!(!client.list_all_tools().await.unwrap().is_empty());

    let other = TestIssuer::new().sign(&claims(&["sre"]));
    let resp = http_client()
        .post(&url)
        .header("authorization", format!("Bearer {other}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn get(url: &str, host: Option<&str>) -> reqwest::Response {
    let mut req = http_client().get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_401_points_at_the_protected_resource_metadata_which_names_the_issuer() {
    let issuer = TestIssuer::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks_json()).unwrap();
    let mut oidc = oidc_config();
    oidc.jwks_file = Some(jwks_path);
    let expected_issuer = oidc.issuer.clone();
    let (url, _d) = serve(AuthConfig { oidc: Some(oidc), scopes: vec!["kubemedic".into()], ..token_config() }).await;
    let base = url.trim_end_matches("/mcp");

    // No credential: a challenge without an error code, naming the metadata URL.
    let post = |auth: Option<&'static str>| {
        let mut req = http_client()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let resp = post(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    assert!(challenge.contains("scope=\"kubemedic\""), "{challenge}");
    assert!(!challenge.contains("error="), "no token, no error code: {challenge}");
    // A token that was refused: error="invalid_token" as well.
    let resp = post(Some("Bearer not-a-token")).await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="), "{challenge}");

    // The metadata, without any credential, at the URL the challenge named and at the root form.
    for u in [metadata_url.clone(), format!("{base}/.well-known/oauth-protected-resource")] {
        let resp = get(&u, None).await;
        assert_eq!(resp.status(), 200, "{u}");
        let m: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(m["resource"], json!(url), "{m}");
        assert_eq!(m["authorization_servers"], json!([expected_issuer]), "{m}");
        assert_eq!(m["bearer_methods_supported"], json!(["header"]), "{m}");
        assert_eq!(m["scopes_supported"], json!(["kubemedic"]), "{m}");
    }
}

#[tokio::test]
async fn discovery_never_reflects_a_foreign_host_and_honours_the_configured_resource() {
    let (url, _d) = serve(token_config()).await;
    let base = url.trim_end_matches("/mcp");
    let well_known = format!("{base}/.well-known/oauth-protected-resource");
    // The attack: a DNS-rebinding Host trying to make the metadata name an attacker's URL.
    let resp = get(&well_known, Some("evil.example")).await;
    assert_eq!(resp.status(), 403);
    assert!(!resp.text().await.unwrap().contains("evil.example"));
    let resp = http_client().post(&url).header("host", "evil.example").body(INIT).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(!challenge.contains("evil.example") && !challenge.contains("resource_metadata"), "{challenge}");
    // Without OIDC there is no authorization server to name, and no scopes.
    let m: serde_json::Value = get(&well_known, None).await.json().await.unwrap();
    assert_eq!(m["authorization_servers"], json!([]));
    assert!(m.get("scopes_supported").is_none());

    // A configured resource (behind TLS) wins over any Host.
    let (url, _d) = serve(AuthConfig { resource: Some("https://km.example.com/mcp".into()), ..token_config() }).await;
    let well_known = format!("{}/.well-known/oauth-protected-resource/mcp", url.trim_end_matches("/mcp"));
    let m: serde_json::Value = get(&well_known, Some("evil.example")).await.json().await.unwrap();
    assert_eq!(m["resource"], "https://km.example.com/mcp");
    let resp = http_client().post(&url).body(INIT).send().await.unwrap();
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("resource_metadata=\"https://km.example.com/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
}

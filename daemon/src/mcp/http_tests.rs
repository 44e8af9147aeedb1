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
            TokenConfig { name: "viewer-bot".into(), sha256: token_hash("viewer-secret"), role: Role::Viewer },
            TokenConfig { name: "oncall".into(), sha256: token_hash("operator-secret"), role: Role::Operator },
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

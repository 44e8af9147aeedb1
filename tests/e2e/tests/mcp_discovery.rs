//! The real `kubemedic run` binary's HTTP listener: the protected-resource
//! metadata is served without a credential, a 401 from `/mcp` points at it,
//! and `mcp.read_only` takes the mutating tools off `/mcp`.

use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, token_entry};
use rmcp::ServiceExt as _;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn the_daemon_serves_discovery_and_a_read_only_mcp_surface() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "mcp-discovery").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = json!({
        "cluster": {"name": "local", "namespaces": [ns.name], "kubeconfig": e2e::kubeconfig_path()},
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": {"listen": format!("127.0.0.1:{port}")},
        "auth": {"tokens": [token_entry("approver", APPROVER_TOKEN, "approver")], "scopes": ["kubemedic:read"]},
        "mcp": {"read_only": true},
    });
    let daemon = Daemon::start(&dir.path().join("daemon"), &config, &[("RUST_LOG", "info,rmcp=warn")]).await;
    let http = reqwest::Client::new();
    let mcp_url = format!("{}/mcp", daemon.url);

    let resp = http.post(&mcp_url).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", daemon.url);
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    assert!(challenge.contains("scope=\"kubemedic:read\"") && !challenge.contains("error="), "{challenge}");
    let resp = http.post(&mcp_url).bearer_auth("wrong-token").body("{}").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));

    let resp = http.get(&metadata_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served without a credential");
    let metadata: Value = resp.json().await.unwrap();
    assert_eq!(metadata["resource"], json!(mcp_url));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(metadata["scopes_supported"], json!(["kubemedic:read"]));

    // Read-only over HTTP: an approver sees no mutating tool.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(mcp_url.as_str()).auth_header(APPROVER_TOKEN),
    );
    let mcp = ().serve(transport).await.expect("initialize over HTTP");
    let listed: Vec<String> = mcp.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    for spec in kubemedic::tools::TOOLS {
        assert_eq!(listed.contains(&spec.name.to_owned()), spec.read_only, "{}: {listed:?}", spec.name);
    }
    let _ = mcp.cancel().await;
    ns.delete(&client).await;
}

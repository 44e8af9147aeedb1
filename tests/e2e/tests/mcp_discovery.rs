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

/// The Python MCP SDK's own OAuth client (client_credentials) starts from kubemedic's 401 alone:
/// `WWW-Authenticate` → the protected-resource metadata → the issuer named there (a local
/// stand-in) → a token → `/mcp`, offline on 127.0.0.1.
#[tokio::test]
async fn an_mcp_sdk_oauth_client_finds_the_issuer_through_discovery() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "mcp-oauth").await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer_port, port) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    let venv = std::env::var("KUBEMEDIC_VENV").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kubemedic/venv")
    });
    // The issuer first: the daemon fetches its keys at start.
    let peer = tokio::process::Command::new(venv.join("bin/python"))
        .arg(repo_root().join("tests/python/oauth_peer.py"))
        .args(["--issuer-port", &issuer_port.to_string(), "--mcp", &mcp_url, "--audience", "kubemedic"])
        .args(["--client-id", "ci-bot", "--client-secret", "s3cret", "--groups", "sre"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python OAuth peer");
    let http = reqwest::Client::new();
    e2e::wait::until(std::time::Duration::from_secs(30), "the issuer stand-in", || {
        let (http, url) = (http.clone(), format!("{issuer}/jwks"));
        async move { http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(drop) }
    })
    .await;
    let config = json!({
        "cluster": {"name": "local", "namespaces": [ns.name], "kubeconfig": e2e::kubeconfig_path()},
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": {"listen": format!("127.0.0.1:{port}")},
        "auth": {"oidc": {"issuer": issuer, "audience": "kubemedic", "jwks_url": format!("{issuer}/jwks"),
                          "groups_claim": "groups", "group_roles": {"sre": "viewer"}}},
    });
    let daemon = Daemon::start(&dir.path().join("daemon"), &config, &[("RUST_LOG", "info,rmcp=warn")]).await;
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        let out = peer.wait_with_output().await.expect("the Python OAuth peer");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("the Python OAuth peer finished");
    let (status, stdout, stderr) = out;
    assert!(status.success(), "peer failed: {stderr}\n{stdout}\n{}", daemon.log_tail(30));
    let verdict: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(verdict["unauthenticated_status"], 401, "{verdict}");
    assert!(verdict["www_authenticate"].as_str().unwrap().contains("resource_metadata="), "{verdict}");
    let tokens = verdict["token_requests"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "one token, from the issuer found through discovery: {verdict}");
    assert_eq!(tokens[0]["grant_type"], "client_credentials");
    let tools: Vec<&str> = verdict["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(tools.contains(&"describe_workload"), "{verdict}");
    ns.delete(&client).await;
}

//! `kubemedic mcp` (stdio) with NATS configured shares the daemon's JetStream KV
//! store: an incident `kubemedic run` stored (written here through the same
//! store type) is listed over stdio, and the embedded store is not opened.

use e2e::daemon::{bin, repo_root};
use kubemedic::store::Store;
use kubemedic::store::nats::{DEFAULT_BUCKET, NatsStore};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

#[tokio::test]
async fn stdio_lists_incidents_from_the_shared_nats_store() {
    let url =
        std::env::var("KUBEMEDIC_TEST_NATS_URL").expect("KUBEMEDIC_TEST_NATS_URL (tests/run.sh starts nats-server)");
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "stdio-nats").await;

    // What the daemon would have stored.
    let store = NatsStore::connect(&url, DEFAULT_BUCKET).await.expect("NATS KV store");
    let id = uuid_like(&ns.name);
    let mut incident = testkit::Sample::with_id(<kubemedic::incident::Incident as testkit::Sample>::test(), &id);
    incident.workload.namespace = ns.name.clone();
    incident.first_signal.object.namespace = ns.name.clone();
    store.create_incident(&incident).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "cluster": {"name": "local", "namespaces": [ns.name], "kubeconfig": e2e::kubeconfig_path()},
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        // Never opened: with NATS configured the embedded store is not used.
        "state_dir": dir.path().join("state"),
        "auth": {"stdio_user": "e2e-user", "stdio_role": "viewer"},
        "nats": {"url": url},
    });
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();

    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(["mcp", "--config"]).arg(&path).env("RUST_LOG", "warn");
    let mcp = ().serve(TokioChildProcess::new(cmd).expect("spawn kubemedic mcp")).await.expect("initialize");
    let params = CallToolRequestParams::new("list_incidents")
        .with_arguments(json!({"namespace": ns.name}).as_object().cloned().unwrap());
    let listed = mcp.call_tool(params).await.expect("list_incidents");
    assert_ne!(listed.is_error, Some(true), "{listed:?}");
    let out = listed.structured_content.expect("structured output");
    let ids: Vec<&str> = out["incidents"].as_array().unwrap().iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, vec![id.as_str()], "stdio lists the daemon's incident: {out}");
    let _ = mcp.cancel().await;
    assert!(
        !dir.path().join("state").join(kubemedic::store::redb::FILE_NAME).exists(),
        "the embedded store was not opened"
    );
    ns.delete(&client).await;
}

/// A uuid-shaped id unique to this run (NATS keys allow `[-_=a-zA-Z0-9]`).
fn uuid_like(seed: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let h: u64 = seed.bytes().fold(n as u64, |acc, b| acc.rotate_left(5) ^ u64::from(b));
    format!("{:08x}-{:04x}-7000-8000-{:012x}", (n >> 32) as u32, (n as u32) & 0xffff, h & 0xffff_ffff_ffff)
}

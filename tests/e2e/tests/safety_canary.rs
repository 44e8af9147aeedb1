//! The canary sweep: one random secret value planted in every place a cluster can hold
//! it (Secret data, an env literal, the last-applied annotation, change-cause, an event
//! message, a log line, an annotation, a ConfigMap value under a secret-looking key), then
//! every exit is driven — `kubemedic diagnose`, the daemon's incident, MCP tools and
//! resources, the approvals API, the audit file and the daemon's logs — and the value
//! (plain, base64, trimmed and untrimmed) must appear in none of them.

use std::time::Duration;

use base64::Engine as _;
use e2e::daemon::{APPROVER_TOKEN, Daemon, bin, free_port, repo_root, token_entry};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// Every form the canary may take in output.
fn forms(canary: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let untrimmed = format!("{canary}\n");
    vec![canary.to_owned(), b64.encode(canary), b64.encode(&untrimmed), b64.encode(format!(" {canary} "))]
}

fn assert_clean(what: &str, text: &str, canary: &str) {
    for f in forms(canary) {
        assert!(!text.contains(&f), "{what} leaks the canary ({f}):\n{}", &text[..text.len().min(4000)]);
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_planted_secret_leaves_through_no_exit() {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "canary").await;
    let n = ns.name.as_str();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let canary = format!("cnry-{nanos:x}-{:x}", std::process::id());

    // Secret data (untrimmed, as files often are) and a ConfigMap value under a secret-looking key.
    Api::<Secret>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "db"},
            "stringData": {"password": format!("{canary}\n")}})),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "settings"},
            "data": {"db_password": canary.clone(), "mode": "prod"}})),
        )
        .await
        .unwrap();
    // The workload: env literal, last-applied, change-cause, an annotation, and a log line
    // (nodesim prints the `logs` annotation's lines, then the process exits 1: CrashLoopBackOff).
    let template = json!({
        "metadata": {"labels": {"app": "shop"}, "annotations": {
            "nodesim.kubemedic.io/logs": format!("starting\nconnecting with {canary}\nfatal: cannot connect"),
            "nodesim.kubemedic.io/exit-code": "1"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/shop:1.0",
            "env": [{"name": "MODE", "value": canary.clone()}]}]}});
    let mut deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "annotations": {"team-note": canary.clone(),
            "kubernetes.io/change-cause": format!("kubectl set env deployment/shop MODE={canary}")}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}}, "template": template}});
    let last_applied = deploy.to_string();
    deploy["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = Value::String(last_applied);
    Api::<Deployment>::namespaced(client.clone(), n).create(&PostParams::default(), &obj(deploy)).await.unwrap();
    // An event message.
    Api::<Event>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "shop.canary"},
            "involvedObject": {"kind": "Deployment", "namespace": n, "name": "shop", "apiVersion": "apps/v1"},
            "reason": "ConfigLeak", "type": "Warning", "message": format!("probe output: {canary}"), "count": 1})),
        )
        .await
        .unwrap();

    // The daemon, scoped to the namespace.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = json!({
        "cluster": { "name": "canary", "namespaces": [n] },
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": { "listen": format!("127.0.0.1:{port}") },
        "auth": { "tokens": [token_entry("admin", APPROVER_TOKEN, "approver")] },
    });
    let daemon = Daemon::start(dir.path(), &config, &[]).await;

    // The incident the crash loop opens, and its diagnosis.
    let incidents = e2e::wait::until(Duration::from_secs(120), "an incident for deployment shop", || {
        let daemon = &daemon;
        async move { daemon.incidents(n).await.filter(|i| !i.is_empty()) }
    })
    .await;
    assert_clean("incidents", &serde_json::to_string(&incidents).unwrap(), &canary);

    // Every read tool that can carry cluster text.
    let calls = [
        ("describe_workload", json!({"namespace": n, "kind": "Deployment", "name": "shop"})),
        ("get_resource", json!({"namespace": n, "kind": "Deployment", "name": "shop"})),
        ("get_resource", json!({"namespace": n, "kind": "ConfigMap", "name": "settings"})),
        ("get_resource", json!({"namespace": n, "kind": "Secret", "name": "db"})),
        ("events", json!({"namespace": n})),
        ("pod_logs", json!({"namespace": n, "kind": "Deployment", "name": "shop"})),
        ("rollout_history", json!({"namespace": n, "kind": "Deployment", "name": "shop"})),
        ("decode_secret", json!({"namespace": n, "name": "db"})),
        ("cluster_health", json!({})),
        ("workload_graph", json!({"namespace": n})),
        ("list_incidents", json!({})),
        ("list_proposals", json!({})),
    ];
    for (tool, args) in calls {
        match daemon.mcp(tool, args.clone()).await {
            Ok(out) => assert_clean(&format!("MCP {tool} {args}"), &out.to_string(), &canary),
            Err(e) => assert_clean(&format!("MCP error {tool} {args}"), &e, &canary),
        }
    }
    // The approvals API for every proposal there is.
    for p in daemon.proposals(None).await.unwrap_or_default() {
        let id = p["id"].as_str().unwrap_or_default();
        let got = daemon.proposal(id).await;
        assert_clean("approvals API", &serde_json::to_string(&got).unwrap(), &canary);
    }

    // `kubemedic diagnose` from the command line.
    let cli_config = dir.path().join("cli.yaml");
    let mut cli = config.clone();
    cli["state_dir"] = json!(dir.path().join("cli-state"));
    std::fs::write(&cli_config, serde_yaml_ng::to_string(&cli).unwrap()).unwrap();
    for extra in [&["--output", "json"][..], &[][..]] {
        let out = tokio::process::Command::new(bin())
            .args(["--config"])
            .arg(&cli_config)
            .args(["diagnose", &format!("{n}/Deployment/shop")])
            .args(extra)
            .env("KUBECONFIG", e2e::kubeconfig_path())
            .output()
            .await
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert_clean("kubemedic diagnose", &text, &canary);
    }

    // The audit file and the daemon's own logs.
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap_or_default();
    assert!(!audit.is_empty(), "no audit records");
    assert_clean("audit file", &audit, &canary);
    let logs = std::fs::read_to_string(daemon.log_path()).unwrap();
    assert_clean("daemon logs", &logs, &canary);
    drop(daemon);
    ns.delete(&client).await;
}

//! The MCP surface of the real `kubemedic mcp` binary over stdio:
//! - every read tool on a namespace of thousands of pods (3,000 by default,
//!   `KUBEMEDIC_BULK_PODS` to change) keeps to the default result budget, and
//!   a cut result says how to get the rest; following `continue` walks the
//!   whole namespace;
//! - `--read-only` (and `mcp.read_only`) leaves every mutating tool out and
//!   refuses a call to one, even from an admin.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::daemon::repo_root;
use e2e::mcp::{call, stdio, write_config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kubemedic::store::Store;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService, ServiceError};
use serde_json::{Value, json};

/// `mcp.max_result_bytes` when not configured.
const BUDGET: usize = kubemedic::mcp::budget::DEFAULT_MAX_RESULT_BYTES;

fn bulk_pods() -> usize {
    std::env::var("KUBEMEDIC_BULK_PODS").ok().and_then(|n| n.parse().ok()).unwrap_or(3000)
}

/// `kubemedic mcp` over stdio with a config of its own; `extra` args after `mcp`.
async fn spawn_mcp(config: &Value, dir: &std::path::Path, extra: &[&str]) -> RunningService<RoleClient, ()> {
    let path = dir.join("config.yaml");
    write_config(&path, config);
    ().serve(stdio(&path, extra)).await.expect("initialize")
}

fn config(ns: &str, dir: &std::path::Path, role: &str) -> Value {
    json!({
        "cluster": {"name": "local", "namespaces": [ns], "kubeconfig": e2e::kubeconfig_path()},
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        "state_dir": dir.join("state"),
        "auth": {"stdio_user": "e2e-user", "stdio_role": role},
    })
}

/// Bytes of text a client hands to the model.
fn text_bytes(r: &CallToolResult) -> usize {
    r.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.len()).sum()
}

/// `lines` access-log lines, for nodesim's `nodesim.kubemedic.io/logs` annotation.
fn access_log(lines: usize) -> String {
    (0..lines).map(|i| format!("{i:04} GET /api/orders?page={i} 200 12ms user-agent=load-generator/1.0\n")).collect()
}

/// A bulk Deployment of `replicas` pods. They stay Pending (a node selector no node has):
/// the simulated nodes hold 110 pods each and are shared with every other test.
fn bulk_deployment(replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bulk", "labels": {"app": "bulk"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bulk"}},
            "template": {
                "metadata": {"labels": {"app": "bulk"}},
                "spec": {
                    "nodeSelector": {"e2e.kubemedic.io/no-such-node": "true"},
                    "containers": [{"name": "app", "image": "nginx:1.25"}]
                }
            }
        }
    }))
    .unwrap()
}

/// Incidents and proposals of `ns` in the embedded store the binary will open.
async fn seed_store(state: &std::path::Path, ns: &str, n: usize) {
    use testkit::Sample as _;
    let store = kubemedic::store::redb::RedbStore::open(state).expect("embedded store");
    for _ in 0..n {
        let mut i = kubemedic::incident::Incident::test();
        i.workload.namespace = ns.to_owned();
        i.first_signal.object.namespace = ns.to_owned();
        i.summary = Some("pods of bulk restart after the readiness probe times out under load; ".repeat(4));
        store.create_incident(&i).await.unwrap();
        let mut p = kubemedic::approvals::Proposal::test();
        p.target.namespace = ns.to_owned();
        p.rationale = "the readiness probe timeout is shorter than the p99 latency under load; ".repeat(4);
        store.create_proposal(&p).await.unwrap();
    }
}

#[tokio::test]
async fn every_read_tool_on_a_bulk_namespace_keeps_to_the_budget() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "mcp-budget").await;
    // Thousands of pods are not left behind, even when an assertion fails.
    let outcome = tokio::spawn(bulk_namespace_within_budget(client.clone(), ns.clone())).await;
    ns.delete(&client).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn bulk_namespace_within_budget(client: kube::Client, ns: e2e::Namespace) {
    let n = bulk_pods();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    // One pod with a long log (the bulk pods may not all be running yet when their logs are read).
    let chatty: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "chatty", "annotations": {"nodesim.kubemedic.io/logs": access_log(800)}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &chatty).await.expect("create Pod chatty");
    deployments.create(&PostParams::default(), &bulk_deployment(n)).await.expect("create Deployment bulk");

    let started = Instant::now();
    loop {
        let count = pods.list_metadata(&ListParams::default().labels("app=bulk")).await.unwrap().items.len();
        if count >= n {
            println!("{n} pods created in {:?}", started.elapsed());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "only {count} of {n} pods after 15 minutes");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    loop {
        let phase = pods.get("chatty").await.unwrap().status.and_then(|s| s.phase).unwrap_or_default();
        if phase == "Running" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1200), "pod chatty is {phase:?} after 20 minutes");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // The scheduler's own events for unschedulable pods are aggregated and rate-limited: add
    // warnings of our own so the namespace has hundreds whatever the timing.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..300 {
        let event = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("bulk-probe-{i}")},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns.name, "name": format!("bulk-{i}")},
            "type": "Warning", "reason": "Unhealthy",
            "message": format!("Readiness probe failed: Get \"http://10.0.0.{}:8080/healthz\": context deadline exceeded", i % 250),
            "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "source": {"component": "kubelet"}
        }))
        .unwrap();
        events.create(&PostParams::default(), &event).await.expect("create Event");
    }

    let dir = tempfile::tempdir().unwrap();
    seed_store(&dir.path().join("state"), &ns.name, 300).await;
    let mcp = spawn_mcp(&config(&ns.name, dir.path(), "viewer"), dir.path(), &[]).await;
    let some_pod = pods.list_metadata(&ListParams::default().labels("app=bulk").limit(1)).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let wl = json!({"namespace": ns.name, "kind": "Deployment", "name": "bulk"});
    // (tool, arguments, whether a namespace this size must overflow the budget with them;
    // `None`: it depends on how many pods are running yet)
    let cases = [
        ("list_resources", json!({"kind": "Pod", "namespace": ns.name, "limit": 500}), Some(true)),
        ("describe_workload", wl.clone(), Some(true)),
        ("events", json!({"namespace": ns.name, "limit": 500}), Some(true)),
        ("cluster_health", json!({"namespace": ns.name}), None),
        ("workload_graph", json!({"namespace": ns.name}), Some(true)),
        ("drift_check", json!({"namespace": ns.name}), Some(false)),
        ("list_incidents", json!({"namespace": ns.name, "limit": 200}), Some(true)),
        ("list_proposals", json!({"limit": 200}), Some(true)),
        ("pod_logs", json!({"namespace": ns.name, "name": "chatty", "tail": 5000}), Some(true)),
        (
            "pod_logs",
            json!({"namespace": ns.name, "kind": "Deployment", "name": "bulk", "max_pods": 10, "tail": 5000}),
            None,
        ),
        ("get_resource", json!({"namespace": ns.name, "kind": "Pod", "name": some_pod}), Some(false)),
        ("rollout_status", wl.clone(), Some(false)),
        ("rollout_history", wl.clone(), Some(false)),
        (
            "decode_secret",
            json!({"namespace": ns.name, "workload_kind": "Deployment", "workload_name": "bulk"}),
            Some(false),
        ),
    ];
    for (tool, args, must_cut) in cases {
        let out = mcp.call_tool(call(tool, args.clone())).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_ne!(out.is_error, Some(true), "{tool}: {out:?}");
        let bytes = text_bytes(&out);
        let v = out.structured_content.clone().expect("structured output");
        let budget = v.get("budget");
        println!("{tool:<18} {bytes:>6} bytes{}", budget.map(|b| format!(", cut: {}", b["note"])).unwrap_or_default());
        assert!(bytes <= BUDGET, "{tool}: {bytes} bytes of text over the {BUDGET}-byte budget");
        if let Some(must_cut) = must_cut {
            assert_eq!(budget.is_some(), must_cut, "{tool} with {args}: cut {}", budget.is_some());
        }
        if let Some(b) = budget {
            let note = b["note"].as_str().unwrap();
            assert!(note.contains("To get the rest, call "), "{tool}: {note}");
            assert!(b["full_bytes"].as_u64().unwrap() as usize > BUDGET, "{tool}: {b}");
            let last = out.content.last().and_then(|c| c.as_text()).unwrap();
            assert_eq!(last.text, note, "{tool}: the text ends with the note");
        }
    }

    // Following `continue` from page to page returns every pod exactly once, each page within budget.
    let mut seen = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"kind": "Pod", "namespace": ns.name, "limit": 500, "label_selector": "app=bulk"});
        if let Some(t) = &token {
            args["continue"] = json!(t);
        }
        let out = mcp.call_tool(call("list_resources", args)).await.expect("list_resources page");
        assert!(text_bytes(&out) <= BUDGET);
        let v = out.structured_content.unwrap();
        for item in v["items"].as_array().unwrap() {
            assert!(seen.insert(item["name"].as_str().unwrap().to_owned()), "listed twice: {}", item["name"]);
        }
        pages += 1;
        match v["continue"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 200, "the listing does not end");
    }
    assert_eq!(seen.len(), n, "every pod once, in {pages} pages");
    let _ = mcp.cancel().await;
}

#[tokio::test]
async fn read_only_stdio_offers_and_runs_no_mutating_tool() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "mcp-read-only").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments.create(&PostParams::default(), &bulk_deployment(1)).await.expect("create Deployment");
    let mutating: Vec<&str> = kubemedic::tools::TOOLS.iter().filter(|t| !t.read_only).map(|t| t.name).collect();
    assert!(mutating.contains(&"apply_proposal") && mutating.contains(&"propose_patch"));

    // The flag, and the config key alone: both with an admin, who could otherwise do everything.
    for (flag, key) in [(true, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&ns.name, dir.path(), "admin");
        if key {
            cfg["mcp"] = json!({"read_only": true});
        }
        let mcp = spawn_mcp(&cfg, dir.path(), if flag { &["--read-only"] } else { &[] }).await;
        let listed: Vec<String> = mcp.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
        assert!(listed.iter().any(|t| t == "describe_workload"), "{listed:?}");
        for m in &mutating {
            assert!(!listed.iter().any(|t| t == m), "{m} listed on a read-only server (flag {flag}, key {key})");
        }
        // The attack: call them by name anyway.
        let calls = [
            ("scale", json!({"namespace": ns.name, "kind": "Deployment", "name": "bulk", "replicas": 0})),
            ("rollout_restart", json!({"namespace": ns.name, "kind": "Deployment", "name": "bulk"})),
            (
                "propose_patch",
                json!({"namespace": ns.name, "kind": "Deployment", "name": "bulk",
                "patch": {"spec": {"replicas": 0}}, "rationale": "x"}),
            ),
            ("apply_proposal", json!({"id": "0190f2a4-0000-7000-8000-000000000000"})),
        ];
        for (tool, args) in calls {
            match mcp.call_tool(call(tool, args)).await {
                Err(ServiceError::McpError(e)) => {
                    assert_eq!(e.code.0, -32003, "{tool}: {e:?}");
                    assert!(e.message.contains("read-only"), "{tool}: {}", e.message);
                }
                other => panic!("{tool} on a read-only server: {other:?}"),
            }
        }
        let proposals = mcp.call_tool(call("list_proposals", json!({}))).await.unwrap();
        assert_eq!(proposals.structured_content.unwrap()["proposals"], json!([]), "no proposal was made");
        let _ = mcp.cancel().await;
    }
    let d = deployments.get("bulk").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(1), "the Deployment was not scaled");
    assert_eq!(d.metadata.generation, Some(1), "the Deployment was not changed at all");
    ns.delete(&client).await;
}

//! Two control planes served by one `kubemedic mcp` (`clusters:`): the shared control plane is
//! the default cluster, a second one of the test's own (etcd and an apiserver, no controllers)
//! is `second`. Reads, proposals and applies go to the cluster the `cluster` argument names,
//! resources are listed per cluster, and an unknown cluster is a clear error.

use std::time::Duration;

use e2e::controlplane::ControlPlane;
use e2e::daemon::{bin, free_port, repo_root};
use e2e::mcp::{Accepting, call, stdio, write_config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use rmcp::ServiceExt as _;
use rmcp::model::ReadResourceRequestParams;
use rmcp::service::ServiceError;
use serde_json::{Value, json};

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn one_mcp_server_serves_two_control_planes() {
    e2e::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path());
    let port = free_port();
    let _apiserver = cp.apiserver("second", port);
    let second = cp.client(port).await;
    cp.wait_ready(&second, "second").await;
    let first = e2e::client().await;

    // The same namespace name in both, with a different Deployment in each.
    let ns = e2e::Namespace::create(&first, "clusters").await;
    let ns_obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns.name}})).unwrap();
    Api::<Namespace>::all(second.clone()).create(&PostParams::default(), &ns_obj).await.unwrap();
    Api::<Deployment>::namespaced(first.clone(), &ns.name)
        .create(&PostParams::default(), &deployment("in-first", 1))
        .await
        .unwrap();
    let second_deployments: Api<Deployment> = Api::namespaced(second.clone(), &ns.name);
    second_deployments.create(&PostParams::default(), &deployment("in-second", 1)).await.unwrap();

    let kubeconfig = dir.path().join("second.kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig(port)).unwrap();
    let config = json!({
        "cluster": {"name": "main", "namespaces": [ns.name], "kubeconfig": e2e::kubeconfig_path()},
        "clusters": [{"name": "second", "namespaces": [ns.name], "kubeconfig": kubeconfig}],
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        "state_dir": dir.path().join("state"),
        "auth": {"stdio_user": "sam", "stdio_role": "approver"},
        "approvals": {"allow_self_approval": true, "verify_stable_seconds": 2, "verify_timeout_seconds": 20},
    });
    let path = dir.path().join("config.yaml");
    write_config(&path, &config);

    // `kubemedic run` refuses `clusters:` (one cluster per daemon).
    let out = tokio::process::Command::new(bin()).args(["run", "--config"]).arg(&path).output().await.unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clusters:"));

    let mcp = Accepting.serve(stdio(&path, &[])).await.expect("initialize");

    let names = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap_or_default().to_owned()).collect()
    };
    let list = |cluster: Option<&str>| {
        let mut args = json!({"kind": "Deployment", "namespace": ns.name});
        if let Some(c) = cluster {
            args["cluster"] = json!(c);
        }
        call("list_resources", args)
    };
    let default = mcp.call_tool(list(None)).await.unwrap().structured_content.unwrap();
    assert_eq!(names(&default), ["in-first"], "{default}");
    let main = mcp.call_tool(list(Some("main"))).await.unwrap().structured_content.unwrap();
    assert_eq!(names(&main), ["in-first"]);
    let other = mcp.call_tool(list(Some("second"))).await.unwrap().structured_content.unwrap();
    assert_eq!(names(&other), ["in-second"], "{other}");
    match mcp.call_tool(list(Some("third"))).await {
        Err(ServiceError::McpError(e)) => assert!(e.message.contains("unknown cluster"), "{e:?}"),
        other => panic!("an unknown cluster must be refused: {other:?}"),
    }

    // A change proposed and confirmed in `second` lands there, and only there.
    let scaled = mcp
        .call_tool(call(
            "scale",
            json!({"cluster": "second", "namespace": ns.name, "kind": "Deployment", "name": "in-second", "replicas": 3}),
        ))
        .await
        .expect("scale in second")
        .structured_content
        .unwrap();
    let id = scaled["proposal"]["id"].as_str().unwrap().to_owned();
    assert_eq!(scaled["proposal"]["cluster"], "second", "{scaled}");
    e2e::wait::until(Duration::from_secs(30), "in-second scaled to 3", || {
        let d = second_deployments.clone();
        async move { d.get("in-second").await.ok().filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(3)) }
    })
    .await;
    let untouched = Api::<Deployment>::namespaced(first.clone(), &ns.name).get("in-first").await.unwrap();
    assert_eq!(untouched.spec.unwrap().replicas, Some(1));

    // Proposals and resources per cluster.
    let of = |cluster: &str| call("list_proposals", json!({"cluster": cluster}));
    let in_second = mcp.call_tool(of("second")).await.unwrap().structured_content.unwrap();
    assert!(in_second["proposals"].as_array().unwrap().iter().any(|p| p["id"] == id.as_str()));
    let in_main = mcp.call_tool(of("main")).await.unwrap().structured_content.unwrap();
    assert!(!in_main["proposals"].as_array().unwrap().iter().any(|p| p["id"] == id.as_str()), "{in_main}");
    let resources = mcp.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "kubemedic://proposals?cluster=second"));
    let read = mcp
        .read_resource(ReadResourceRequestParams::new(format!("kubemedic://proposals/{id}?cluster=second")))
        .await
        .expect("read the proposal in second");
    assert!(serde_json::to_string(&read).unwrap().contains(&id));
    let _ = mcp.cancel().await;
    ns.delete(&first).await;
}

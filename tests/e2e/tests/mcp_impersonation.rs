//! `auth.impersonate` on the real control plane with RBAC: `kubemedic mcp` sends a person's
//! reads as them, so the cluster's RBAC decides what they see, and lets an approval through
//! only when the approver may make the change themselves.
//! - alice may view namespace `a` (the built-in `view` ClusterRole, bound there): her reads in
//!   `a` work, in `b` they are refused as FORBIDDEN naming the RBAC refusal, although
//!   kubemedic's own credentials could read both;
//! - bob is an approver who may edit `a` only: he approves and applies a proposal in `a`, and
//!   his approval of one in `b` is refused and changes nothing, over MCP and over the approvals
//!   API (what `kubemedic approve` calls).

mod approvals_support;

use std::time::Duration;

use e2e::daemon::repo_root;
use e2e::mcp::{Accepting, call, stdio, write_config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::PostParams;
use rmcp::service::{RunningService, ServiceError};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};

async fn spawn(
    dir: &std::path::Path,
    namespaces: &[&str],
    user: &str,
    role: &str,
    impersonate: bool,
) -> RunningService<RoleClient, Accepting> {
    let config = json!({
        "cluster": {"name": "local", "namespaces": namespaces, "kubeconfig": e2e::kubeconfig_path()},
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        "state_dir": dir.join("state"),
        "auth": {"stdio_user": user, "stdio_role": role, "impersonate": impersonate},
        "approvals": {"verify_stable_seconds": 2, "verify_timeout_seconds": 120},
    });
    let path = dir.join(format!("{user}.yaml"));
    write_config(&path, &config);
    Accepting.serve(stdio(&path, &[])).await.expect("initialize")
}

async fn bind(client: &kube::Client, ns: &str, user: &str, cluster_role: &str) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{user}-{cluster_role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding");
}

fn forbidden(result: Result<rmcp::model::CallToolResult, ServiceError>, what: &str) -> String {
    match result {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32003, "{what}: {e:?}");
            e.message.to_string()
        }
        other => panic!("{what} must be refused: {other:?}"),
    }
}

#[tokio::test]
async fn the_clusters_rbac_decides_what_an_impersonated_caller_reads_and_approves() {
    e2e::install_crypto();
    let client = e2e::client().await;
    let a = e2e::Namespace::create(&client, "imp-a").await;
    let b = e2e::Namespace::create(&client, "imp-b").await;
    for ns in [&a, &b] {
        e2e::scenario::apply(&client, &ns.name, "healthy-web").await;
    }
    let (alice, bob) = (e2e::unique_name("alice"), e2e::unique_name("bob"));
    bind(&client, &a.name, &alice, "view").await;
    bind(&client, &a.name, &bob, "edit").await;
    for ns in [&a, &b] {
        e2e::wait::deployment_ready(&client, &ns.name, "frontend", Duration::from_secs(120)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let scope = [a.name.as_str(), b.name.as_str()];

    // Reads: kubemedic itself sees both namespaces; alice only hers.
    let mcp = spawn(dir.path(), &scope, &alice, "viewer", true).await;
    let mine = mcp
        .call_tool(call("list_resources", json!({"kind": "Pod", "namespace": a.name})))
        .await
        .expect("alice lists pods in her namespace");
    assert!(!mine.structured_content.unwrap()["items"].as_array().unwrap().is_empty());
    for (tool, args) in [
        ("list_resources", json!({"kind": "Pod", "namespace": b.name})),
        ("describe_workload", json!({"namespace": b.name, "kind": "Deployment", "name": "frontend"})),
        ("events", json!({"namespace": b.name})),
    ] {
        let message = forbidden(mcp.call_tool(call(tool, args)).await, tool);
        assert!(message.contains("RBAC") && message.contains(&alice), "{tool}: {message}");
    }
    let _ = mcp.cancel().await;
    // Without impersonation the same user (kubemedic's own credentials) reads b.
    let own = spawn(dir.path(), &scope, "operator", "operator", false).await;
    own.call_tool(call("list_resources", json!({"kind": "Pod", "namespace": b.name})))
        .await
        .expect("kubemedic's own credentials read b");

    // Proposals in both namespaces (two in b), drafted with kubemedic's credentials by an operator.
    let mut ids = Vec::new();
    for ns in [&a, &b, &b] {
        let out = own
            .call_tool(call(
                "scale",
                json!({"namespace": ns.name, "kind": "Deployment", "name": "frontend", "replicas": 3}),
            ))
            .await
            .expect("scale")
            .structured_content
            .unwrap();
        assert_eq!(out["proposal"]["state"], "pending", "{out}");
        ids.push(out["proposal"]["id"].as_str().unwrap().to_owned());
    }
    let _ = own.cancel().await;

    // The approvals API with the same check, in-process over the same store (no MCP process
    // holds it now): bob's token is refused b's proposal, which stays pending.
    {
        use approvals_support::http;
        use kubemedic::approvals::http::{HttpOptions, router, spawn, token_hash};
        use kubemedic::mcp::auth::{AuthConfig, Authenticator, Role, TokenConfig};
        let state = dir.path().join("state");
        let store: std::sync::Arc<dyn kubemedic::store::Store> =
            std::sync::Arc::new(kubemedic::store::redb::RedbStore::open(&state).unwrap());
        let kubeconfig = kube::config::Kubeconfig::read_from(e2e::kubeconfig_path()).unwrap();
        let kube_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let scope = kubemedic::cluster::Scope::from_config(&kubemedic::config::ClusterConfig {
            namespaces: vec![a.name.clone(), b.name.clone()],
            ..Default::default()
        });
        let cluster = kubemedic::cluster::Cluster { name: "local".into(), client: client.clone(), scope };
        let approvals = std::sync::Arc::new(
            kubemedic::approvals::Approvals::new(store, cluster, None, Default::default())
                .with_seal_key(kubemedic::approvals::seal::ApprovalKey::load(&state).unwrap())
                .with_impersonation(std::sync::Arc::new(kubemedic::cluster::Impersonation::new(kube_config))),
        );
        let auth = AuthConfig {
            tokens: vec![TokenConfig {
                name: bob.clone(),
                sha256: token_hash("bob-token"),
                role: Role::Approver,
                groups: Vec::new(),
            }],
            ..AuthConfig::default()
        };
        let options =
            HttpOptions { signing_secret: None, auth: std::sync::Arc::new(Authenticator::new(&auth).await.unwrap()) };
        let (addr, task) = spawn(([127, 0, 0, 1], 0).into(), router(approvals.clone(), options)).await.unwrap();
        let auth = [("Authorization", "Bearer bob-token".to_owned())];
        let (status, body) =
            http(&addr.to_string(), "POST", &format!("/api/proposals/{}/approve", ids[2]), &auth, "").await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("RBAC") && body.contains("patch"), "{body}");
        assert_eq!(approvals.get(&ids[2]).await.unwrap().state, kubemedic::approvals::ProposalState::Pending);
        assert_eq!(approvals.mutations_sent(), 0);
        task.abort();
        let _ = task.await;
        drop(approvals);
        // The embedded store is single-writer: wait until this process has let it go.
        e2e::wait::until(Duration::from_secs(10), "the store released", || {
            let state = state.clone();
            async move { kubemedic::store::redb::RedbStore::open(&state).ok().map(drop) }
        })
        .await;
    }

    // bob may edit a, not b.
    let mcp = spawn(dir.path(), &scope, &bob, "approver", true).await;
    let message =
        forbidden(mcp.call_tool(call("apply_proposal", json!({"id": ids[1]}))).await, "approving a change in b");
    assert!(message.contains("RBAC") && message.contains("patch"), "{message}");
    let approved = mcp.call_tool(call("apply_proposal", json!({"id": ids[0]}))).await.expect("approve in a");
    let state = approved.structured_content.unwrap()["proposal"]["state"].as_str().unwrap().to_owned();
    assert!(["approved", "applying", "applied", "verified"].contains(&state.as_str()), "{state}");
    let a_deployments: Api<Deployment> = Api::namespaced(client.clone(), &a.name);
    e2e::wait::until(Duration::from_secs(60), "frontend in a scaled to 3", || {
        let d = a_deployments.clone();
        async move { d.get("frontend").await.ok().filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(3)) }
    })
    .await;
    let b_frontend = Api::<Deployment>::namespaced(client.clone(), &b.name).get("frontend").await.unwrap();
    assert_eq!(b_frontend.spec.unwrap().replicas, Some(2), "the refused approval changed nothing");
    // The proposal (kubemedic's own state, not a cluster read) is still pending.
    let b_proposal = mcp.call_tool(call("get_proposal", json!({"id": ids[1]}))).await.expect("get_proposal");
    assert_eq!(b_proposal.structured_content.unwrap()["proposal"]["state"], "pending");
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains(&bob) && l.contains("\"denied\"")), "the refusal is audited");
    // Each record names the identity the apiserver saw beside kubemedic's user.
    let impersonated = format!("\"impersonated\":\"{alice}\"");
    assert!(audit.lines().any(|l| l.contains(&impersonated) && l.contains("list_resources")), "{audit}");
    assert!(
        audit.lines().any(|l| l.contains(&format!("\"impersonated\":\"{bob}\"")) && l.contains("\"approve\"")),
        "{audit}"
    );
    let _ = mcp.cancel().await;
    a.delete(&client).await;
    b.delete(&client).await;
}

/// The approved PATCH itself goes out as the approver: on a control plane of the test's own with
/// an audit log, the write carries `impersonatedUser` = the approver (and their groups), while
/// kubemedic's own credentials authenticate the request.
#[tokio::test]
async fn the_approved_change_is_sent_to_the_apiserver_as_the_approver() {
    use e2e::controlplane::ControlPlane;
    use k8s_openapi::api::core::v1::Namespace;
    e2e::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path());
    let port = e2e::daemon::free_port();
    let _apiserver = cp.apiserver("audited", port);
    let client = cp.client(port).await;
    cp.wait_ready(&client, "audited").await;
    let ns = "imp-patch";
    let ns_obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns_obj).await.unwrap();
    let web: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments.create(&PostParams::default(), &web).await.unwrap();
    // carol may edit Deployments through her group only. (A Role of the test's own: the built-in
    // `edit` ClusterRole is aggregated by the controller manager, which this control plane lacks.)
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "web-editor"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "controllerrevisions"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list", "watch"]},
        ],
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-editors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "web-team"}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns).create(&PostParams::default(), &binding).await.unwrap();
    // The apiserver's RBAC cache takes a moment to see the binding: wait until carol, in her
    // group, may read the Deployment.
    let mut as_carol = kube::Config::from_custom_kubeconfig(
        serde_yaml_ng::from_str(&cp.kubeconfig(port)).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    as_carol.auth_info.impersonate = Some("carol".into());
    as_carol.auth_info.impersonate_groups = Some(vec!["web-team".into()]);
    let carol_deployments: Api<Deployment> = Api::namespaced(kube::Client::try_from(as_carol).unwrap(), ns);
    e2e::wait::until(Duration::from_secs(30), "carol's RoleBinding in effect", || {
        let d = carol_deployments.clone();
        async move { d.get("web").await.ok() }
    })
    .await;

    let kubeconfig = dir.path().join("audited.kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig(port)).unwrap();
    let config = json!({
        "cluster": {"name": "audited", "namespaces": [ns], "kubeconfig": kubeconfig},
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        "state_dir": dir.path().join("state"),
        "auth": {"stdio_user": "carol", "stdio_role": "approver", "impersonate": true, "stdio_groups": ["web-team"]},
        "approvals": {"allow_self_approval": true, "verify_stable_seconds": 2, "verify_timeout_seconds": 10,
                      "rollback_on_failure": false},
    });
    let path = dir.path().join("carol.yaml");
    write_config(&path, &config);
    let mcp = Accepting.serve(stdio(&path, &[])).await.expect("initialize");
    let result = mcp
        .call_tool(call("scale", json!({"namespace": ns, "kind": "Deployment", "name": "web", "replicas": 4})))
        .await
        .expect("scale");
    let out = result.structured_content.clone().unwrap_or_else(|| panic!("scale failed: {result:?}"));
    assert_eq!(out["proposal"]["approval"]["kube_identity"]["user"], "carol", "{out}");
    e2e::wait::until(Duration::from_secs(30), "web scaled to 4", || {
        let d = deployments.clone();
        async move { d.get("web").await.ok().filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(4)) }
    })
    .await;
    let _ = mcp.cancel().await;

    let patches: Vec<_> = cp
        .audit_log("audited")
        .into_iter()
        .filter(|e| {
            e["verb"] == "patch" && e["objectRef"]["resource"] == "deployments" && e["objectRef"]["name"] == "web"
        })
        .filter(|e| !e["objectRef"]["subresource"].is_string())
        .collect();
    // The dry-run at proposal time and the real PATCH: both as carol, in her group.
    let dry_run = |e: &&Value| e["requestURI"].as_str().unwrap_or_default().contains("dryRun");
    assert!(patches.iter().any(|e| dry_run(&e)), "the proposal's dry-run is in the audit log");
    let real: Vec<_> = patches.iter().filter(|e| e["stage"] == "ResponseComplete" && !dry_run(e)).collect();
    assert_eq!(real.len(), 1, "exactly one real PATCH of web: {real:?}");
    for e in patches.iter().filter(|e| e["stage"] == "ResponseComplete") {
        assert_eq!(e["impersonatedUser"]["username"], "carol", "{e}");
    }
    for e in &real {
        assert_eq!(e["impersonatedUser"]["username"], "carol", "{e}");
        assert!(e["impersonatedUser"]["groups"].as_array().unwrap().iter().any(|g| g == "web-team"), "{e}");
        assert_eq!(e["user"]["username"], "admin", "kubemedic's own credentials authenticate: {e}");
        assert_eq!(e["responseStatus"]["code"], 200, "{e}");
    }
}

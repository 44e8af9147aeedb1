//! Long operations over MCP, with the real `kubemedic mcp` binary over stdio on the real
//! control plane: an approval returns at once, and the apply and its verification are
//! followed afterwards, on both protocol versions:
//! - 2025-11-25: `apply_proposal` returns in under a second with the proposal `approved`;
//!   a `resources/subscribe` on `kubemedic://proposals/{id}` gets
//!   `notifications/resources/updated` as it moves on, and `wait_proposal` with a progress
//!   token reports each state until `verified`;
//! - 2026-07-28 with the Tasks extension: the confirmed call returns a task handle in under a
//!   second, and `tasks/get` reports the proposal's state until the task completes with the
//!   verified proposal (that another user cannot read a task is a unit test: both users
//!   must share one server).

use std::time::{Duration, Instant};

use e2e::daemon::repo_root;
use e2e::mcp::{Accepting, call, stdio, write_config};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use rmcp::model::{
    CallToolResponse, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, GetTaskParams,
    Implementation, InputResponses, NumberOrString, ProgressNotificationParam, ProgressToken, ProtocolVersion,
    ReadResourceRequestParams, RequestParamsMeta as _, ResourceContents, ResourceUpdatedNotificationParam, TaskStatus,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt as _, ErrorData as McpError, RoleClient, ServiceExt as _,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A client that accepts every confirmation and reports what the server pushes.
#[derive(Clone)]
struct Client {
    tasks: bool,
    updated: mpsc::UnboundedSender<String>,
    progress: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let caps = ClientCapabilities::builder().enable_elicitation().build();
        let caps = if self.tasks {
            let mut with_tasks = ClientCapabilities::builder().enable_tasks().build();
            with_tasks.elicitation = caps.elicitation;
            with_tasks
        } else {
            caps
        };
        ClientConfig::new(caps, Implementation::new("kubemedic-e2e-tasks", "0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        Accepting.create_elicitation(request, context).await
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        let _ = self.updated.send(params.uri);
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _ctx: NotificationContext<RoleClient>) {
        let _ = self.progress.send(params.message.unwrap_or_default());
    }
}

struct Peer {
    client: RunningService<RoleClient, Client>,
    updated: mpsc::UnboundedReceiver<String>,
    progress: mpsc::UnboundedReceiver<String>,
}

fn config(ns: &str, dir: &std::path::Path, user: &str) -> std::path::PathBuf {
    let config = json!({
        "cluster": {"name": "local", "namespaces": [ns], "kubeconfig": e2e::kubeconfig_path()},
        "prompts_dir": repo_root().join("prompts"),
        "rules_dir": repo_root().join("rules"),
        "state_dir": dir.join("state"),
        "auth": {"stdio_user": user, "stdio_role": "approver"},
        // One stdio user proposes and confirms; a short stability window keeps the test short.
        "approvals": {"allow_self_approval": true, "verify_stable_seconds": 3, "verify_timeout_seconds": 120},
    });
    let path = dir.join(format!("{user}.yaml"));
    write_config(&path, &config);
    path
}

async fn spawn(config: &std::path::Path, tasks: bool) -> Peer {
    let transport = stdio(config, &[]);
    let (updated_tx, updated) = mpsc::unbounded_channel();
    let (progress_tx, progress) = mpsc::unbounded_channel();
    let handler = Client { tasks, updated: updated_tx, progress: progress_tx };
    let client = if tasks {
        handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
            )
            .await
            .expect("initialize (2026-07-28)")
    } else {
        handler.serve(transport).await.expect("initialize")
    };
    Peer { client, updated, progress }
}

async fn read_state(peer: &Peer, uri: &str) -> String {
    let read = peer.client.read_resource(ReadResourceRequestParams::new(uri)).await.expect("read the proposal");
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text contents") };
    let v: Value = serde_json::from_str(text).unwrap();
    v["state"].as_str().unwrap().to_owned()
}

async fn web(ns: &str) -> (kube::Client, e2e::Namespace) {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, ns).await;
    e2e::scenario::apply(&client, &ns.name, "healthy-web").await;
    e2e::wait::deployment_ready(&client, &ns.name, "frontend", Duration::from_secs(120)).await;
    (client, ns)
}

#[tokio::test]
async fn an_apply_returns_at_once_and_the_resource_and_wait_proposal_follow_it_to_verified() {
    let (client, ns) = web("mcp-follow").await;
    let dir = tempfile::tempdir().unwrap();
    let mut peer = spawn(&config(&ns.name, dir.path(), "olga"), false).await;

    // The client proposes a rolling restart and confirms it at once (allow_self_approval).
    let confirmed = peer
        .client
        .call_tool(call("rollout_restart", json!({"namespace": ns.name, "kind": "Deployment", "name": "frontend"})))
        .await
        .expect("rollout_restart");
    let proposal = confirmed.structured_content.unwrap()["proposal"].clone();
    let id = proposal["id"].as_str().unwrap().to_owned();
    let uri = format!("kubemedic://proposals/{id}");
    let state = proposal["state"].as_str().unwrap();
    // The elicitation was accepted: the proposal is approved and being applied, not verified yet.
    assert!(["approved", "applying", "applied"].contains(&state), "the call waited for the apply: {proposal}");

    // Subscribe, then follow with wait_proposal and a progress token.
    #[allow(deprecated)]
    peer.client.subscribe(rmcp::model::SubscribeRequestParams::new(&uri)).await.expect("resources/subscribe");
    let mut params = call("wait_proposal", json!({"id": id, "wait_seconds": 120}));
    params.set_progress_token(ProgressToken(NumberOrString::Number(7)));
    let waited = peer.client.call_tool(params).await.expect("wait_proposal");
    let out = waited.structured_content.unwrap();
    assert_eq!(out["proposal"]["state"], "verified", "{out}");
    assert_eq!(out["finished"], true);
    // Progress notifications are sent as they happen; the last may arrive after the result.
    let mut reported = Vec::new();
    while !reported.iter().any(|m: &String| m.contains(": verified")) {
        match tokio::time::timeout(Duration::from_secs(5), peer.progress.recv()).await {
            Ok(Some(m)) => reported.push(m),
            _ => panic!("progress never reached verified: {reported:?}"),
        }
    }
    // The subscription saw the proposal change (applying/applied/verified), and a read shows verified.
    let update = tokio::time::timeout(Duration::from_secs(10), peer.updated.recv()).await;
    assert_eq!(update.ok().flatten().as_deref(), Some(uri.as_str()), "a resources/updated notification for {uri}");
    assert_eq!(read_state(&peer, &uri).await, "verified");
    let d: Deployment = Api::namespaced(client.clone(), &ns.name).get("frontend").await.unwrap();
    let annotations = d.spec.unwrap().template.metadata.unwrap().annotations.unwrap_or_default();
    assert!(annotations.contains_key("kubectl.kubernetes.io/restartedAt"), "the restart was applied: {annotations:?}");
    let _ = peer.client.cancel().await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn apply_proposal_returns_in_under_a_second() {
    let (client, ns) = web("mcp-apply").await;
    let dir = tempfile::tempdir().unwrap();
    // The proposal comes from a client that cannot confirm (an operator: stays pending).
    let operator = {
        let config = config(&ns.name, dir.path(), "otto");
        let text = std::fs::read_to_string(&config).unwrap().replace("stdio_role: approver", "stdio_role: operator");
        std::fs::write(&config, text).unwrap();
        spawn(&config, false).await
    };
    let proposed = operator
        .client
        .call_tool(call(
            "scale",
            json!({"namespace": ns.name, "kind": "Deployment", "name": "frontend", "replicas": 3}),
        ))
        .await
        .expect("scale");
    let proposal = proposed.structured_content.unwrap()["proposal"].clone();
    assert_eq!(proposal["state"], "pending", "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    let _ = operator.client.cancel().await;

    let mut approver = spawn(&config(&ns.name, dir.path(), "anna"), false).await;
    let uri = format!("kubemedic://proposals/{id}");
    #[allow(deprecated)]
    approver.client.subscribe(rmcp::model::SubscribeRequestParams::new(&uri)).await.expect("subscribe");
    let started = Instant::now();
    let applied = approver.client.call_tool(call("apply_proposal", json!({"id": id}))).await.expect("apply_proposal");
    let took = started.elapsed();
    let out = applied.structured_content.unwrap();
    assert_eq!(out["proposal"]["state"], "approved", "{out}");
    assert!(out["message"].as_str().unwrap().contains(&uri), "{out}");
    assert!(took < Duration::from_secs(1), "apply_proposal took {took:?}");
    eprintln!("apply_proposal returned in {took:?}");

    // Follow the resource through its updates until verified.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let state = read_state(&approver, &uri).await;
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "verified" || state == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "not verified in time: {seen:?}");
        let _ = tokio::time::timeout(Duration::from_secs(5), approver.updated.recv()).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("verified"), "{seen:?}");
    let d: Deployment = Api::namespaced(client.clone(), &ns.name).get("frontend").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    let _ = approver.client.cancel().await;
    ns.delete(&client).await;
}

#[tokio::test]
async fn a_client_with_the_tasks_extension_follows_the_apply_as_a_task() {
    let (client, ns) = web("mcp-task").await;
    let dir = tempfile::tempdir().unwrap();
    let peer = spawn(&config(&ns.name, dir.path(), "tess"), true).await;
    let args = json!({"namespace": ns.name, "kind": "Deployment", "name": "frontend", "replicas": 3});
    // First round: the server asks for confirmation.
    let first = peer.client.call_tool_once(call("scale", args.clone())).await.expect("scale, first round");
    let CallToolResponse::InputRequired(asked) = first else { panic!("expected a confirmation request: {first:?}") };
    let key = asked.input_requests.as_ref().and_then(|r| r.keys().next().cloned()).expect("an input request");
    let mut responses = InputResponses::new();
    responses.insert(key, json!({"action": "accept", "content": {"approve": true}}));
    let mut second = call("scale", args);
    second.request_state = asked.request_state.clone();
    second.input_responses = Some(responses);
    let started = Instant::now();
    let answered = peer.client.call_tool_once(second).await.expect("scale, confirmed");
    let took = started.elapsed();
    let CallToolResponse::Task(created) = answered else { panic!("expected a task: {answered:?}") };
    assert!(took < Duration::from_secs(1), "the confirmed call took {took:?}");
    let task_id = created.task.task_id.clone();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut messages = Vec::new();
    let done = loop {
        let got = peer.client.get_task(GetTaskParams::new(&task_id)).await.expect("tasks/get");
        if let Some(m) = &got.task.task.status_message
            && messages.last() != Some(m)
        {
            messages.push(m.clone());
        }
        if got.task.status() != TaskStatus::Working {
            break got;
        }
        assert!(Instant::now() < deadline, "task still working: {messages:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(done.task.status(), TaskStatus::Completed, "{messages:?}");
    let wire = serde_json::to_value(&done).unwrap();
    assert_eq!(wire["result"]["structuredContent"]["proposal"]["state"], "verified", "{wire}");
    assert!(messages.iter().any(|m| m.ends_with(": verified")), "{messages:?}");
    let d: Deployment = Api::namespaced(client.clone(), &ns.name).get("frontend").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    let _ = peer.client.cancel().await;
    ns.delete(&client).await;
}

/// A stdio client that goes away during a verification (MCP clients kill their server a few
/// seconds after closing stdin) leaves the proposal `applied`: the change is in the cluster,
/// its verification cut short. The next `kubemedic mcp` on the same store finishes it.
#[tokio::test]
async fn a_verification_cut_short_is_finished_by_the_next_stdio_server() {
    let (client, ns) = web("mcp-resume").await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(&ns.name, dir.path(), "petra");
    // The first server verifies for a minute: long enough to be killed in the middle.
    let text = std::fs::read_to_string(&path).unwrap();
    let long = dir.path().join("long.yaml");
    std::fs::write(&long, text.replace("verify_stable_seconds: 3", "verify_stable_seconds: 60")).unwrap();
    assert_ne!(std::fs::read_to_string(&long).unwrap(), text, "the stability window was lengthened");

    let transport = stdio(&long, &[]);
    let pid = transport.id().expect("the server's pid");
    let (updated, _) = mpsc::unbounded_channel();
    let (progress, _) = mpsc::unbounded_channel();
    let first = Client { tasks: false, updated, progress }.serve(transport).await.expect("initialize");
    let confirmed = first
        .call_tool(call("rollout_restart", json!({"namespace": ns.name, "kind": "Deployment", "name": "frontend"})))
        .await
        .expect("rollout_restart");
    let id = confirmed.structured_content.unwrap()["proposal"]["id"].as_str().unwrap().to_owned();
    let uri = format!("kubemedic://proposals/{id}");
    let peer = Peer { client: first, updated: mpsc::unbounded_channel().1, progress: mpsc::unbounded_channel().1 };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = read_state(&peer, &uri).await;
        if state == "applied" {
            break;
        }
        assert!(["approved", "applying"].contains(&state.as_str()), "{state}");
        assert!(Instant::now() < deadline, "never applied: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Killed while verifying, as a client's SIGKILL would.
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    drop(peer);

    // A read-only server on that store acts on nothing, not even to finish an approved change.
    let (updated, _) = mpsc::unbounded_channel();
    let (progress, _) = mpsc::unbounded_channel();
    let read_only =
        Client { tasks: false, updated, progress }.serve(stdio(&path, &["--read-only"])).await.expect("initialize");
    let viewer =
        Peer { client: read_only, updated: mpsc::unbounded_channel().1, progress: mpsc::unbounded_channel().1 };
    tokio::time::sleep(Duration::from_secs(6)).await; // twice the stability window
    assert_eq!(read_state(&viewer, &uri).await, "applied", "a read-only server resumed a change");
    let _ = viewer.client.cancel().await;

    // The next server on the same store (and the short window) resumes the verification.
    let next = spawn(&path, false).await;
    let waited = next
        .client
        .call_tool(call("wait_proposal", json!({"id": id, "wait_seconds": 120})))
        .await
        .expect("wait_proposal");
    let out = waited.structured_content.unwrap();
    assert_eq!(out["proposal"]["state"], "verified", "{out}");
    let history = out["proposal"]["history"].as_array().cloned().unwrap_or_default();
    assert!(
        history.iter().any(|t| t["note"].as_str().is_some_and(|n| n.contains("resumed"))),
        "the verification was resumed, not started over by a new approval: {history:#?}"
    );
    // Applied once: the Deployment rolled out one restart (one new ReplicaSet beside the first).
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let sets = rs.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        sets.len(),
        2,
        "one restart, not two: {:?}",
        sets.iter().map(|s| s.metadata.name.clone()).collect::<Vec<_>>()
    );
    let _ = next.client.cancel().await;
    ns.delete(&client).await;
}

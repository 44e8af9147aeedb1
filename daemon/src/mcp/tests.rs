//! The MCP server through a real rmcp client over an in-memory duplex,
//! on both protocol versions.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    GetPromptRequestParams, Implementation, ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData as McpError, RoleClient, ServiceExt};
use serde_json::{Value, json};

use super::server::{FORBIDDEN, KubemedicServer};
use crate::model::identity::Role;
use crate::model::proposal::ProposalState;
use crate::tools::testing::{MemorySink, SECRET_VALUE, caller, shop_fixture, tools};

/// How the test client answers a confirmation; `None` = it cannot elicit.
#[derive(Clone, Default)]
struct Client {
    answer: Option<ElicitationAction>,
    asked: Arc<Mutex<Vec<String>>>,
    /// Declares the Tasks extension.
    tasks: bool,
    /// URIs of `notifications/resources/updated` received.
    updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let mut caps = if self.tasks {
            ClientCapabilities::builder().enable_tasks().build()
        } else {
            ClientCapabilities::default()
        };
        if self.answer.is_some() {
            caps.elicitation = ClientCapabilities::builder().enable_elicitation().build().elicitation;
        }
        ClientConfig::new(caps, Implementation::new("kubemedic-test-client", "0"))
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().unwrap().push(message.clone());
        }
        Ok(match &self.answer {
            Some(ElicitationAction::Accept) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
            }
            Some(other) => ElicitResult::new(other.clone()),
            None => ElicitResult::new(ElicitationAction::Decline),
        })
    }
}

struct Setup {
    client: RunningService<RoleClient, Client>,
    sink: Arc<MemorySink>,
    asked: Arc<Mutex<Vec<String>>>,
    api: crate::tools::testing::FakeApi,
    server: KubemedicServer,
}

async fn setup(role: Role, answer: Option<ElicitationAction>, new_protocol: bool) -> Setup {
    let api = shop_fixture();
    let (tools, sink) = tools(&api);
    crate::tools::testing::learn_fixture_secrets();
    let prompts = crate::prompts::Catalog::load(
        &std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("../prompts"),
    )
    .unwrap();
    let server = KubemedicServer::new(tools, prompts, &[7u8; 32]).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let handler = Client { answer, asked: asked.clone(), ..Client::default() };
    let client = attach(&server, caller(role), handler, new_protocol).await;
    Setup { client, sink, asked, api, server }
}

/// `handler` as a client of `server` acting as `caller`, over an in-memory duplex, on the
/// 2026-07-28 protocol when `new_protocol`, else the default one.
async fn attach(
    server: &KubemedicServer,
    caller: crate::tools::Caller,
    handler: Client,
    new_protocol: bool,
) -> RunningService<RoleClient, Client> {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let s = server.with_caller(caller);
    tokio::spawn(async move {
        if let Ok(running) = s.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    if new_protocol {
        handler
            .serve_with_lifecycle(
                client_io,
                ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
            )
            .await
            .unwrap()
    } else {
        handler.serve(client_io).await.unwrap()
    }
}

fn params(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().unwrap().clone())
}

fn mcp_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => panic!("expected an MCP error, got {other}"),
    }
}

#[tokio::test]
async fn lists_and_reads_over_mcp() {
    let s = setup(Role::Viewer, None, false).await;
    let tools = s.client.list_all_tools().await.unwrap();
    assert!(tools.len() >= 20);
    let scale = tools.iter().find(|t| t.name == "scale").unwrap();
    assert_eq!(scale.annotations.as_ref().unwrap().destructive_hint, Some(true));
    assert!(tools.iter().all(|t| t.output_schema.is_some()));
    let prompts = s.client.list_all_prompts().await.unwrap();
    assert_eq!(prompts.len(), 6);
    let resources = s.client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "kubemedic://namespaces"));
    assert!(!resources.iter().any(|r| r.uri == "kubemedic://audit/recent"), "a viewer does not see the audit trail");

    let out = s
        .client
        .call_tool(params("describe_workload", json!({"namespace": "shop", "kind": "Deployment", "name": "web"})))
        .await
        .unwrap();
    let structured = out.structured_content.unwrap();
    assert_eq!(structured["owner_chain"][0], "Deployment/web");
    let text = serde_json::to_string(&out.content).unwrap();
    assert!(!text.contains(SECRET_VALUE));

    let logs = s.client.call_tool(params("pod_logs", json!({"namespace": "shop", "name": "web-aaa-1"}))).await.unwrap();
    assert!(!serde_json::to_string(&logs).unwrap().contains(SECRET_VALUE));

    let prompt = s
        .client
        .get_prompt(GetPromptRequestParams::new("diagnose-workload").with_arguments(
            json!({"namespace": "shop", "kind": "Deployment", "name": "web"}).as_object().unwrap().clone(),
        ))
        .await
        .unwrap();
    let text = serde_json::to_string(&prompt.messages).unwrap();
    assert!(text.contains("Diagnose Deployment shop/web") && text.contains("`describe_workload`"), "{text}");
    let err = s.client.get_prompt(GetPromptRequestParams::new("diagnose-workload")).await.unwrap_err();
    assert!(mcp_error(err).message.contains("missing required argument namespace"));

    let ns = s.client.read_resource(ReadResourceRequestParams::new("kubemedic://clusters")).await.unwrap();
    assert!(serde_json::to_string(&ns).unwrap().contains("\\\"test\\\""));
    let err = s.client.read_resource(ReadResourceRequestParams::new("kubemedic://audit/recent")).await.unwrap_err();
    assert_eq!(mcp_error(err).code, FORBIDDEN);

    // The audit trail saw tool calls and the prompt fetch, without the secret.
    let audit = s.server.tools().audit().recent(100);
    assert!(audit.iter().any(|r| r.action == "diagnose-workload"));
    assert!(audit.iter().any(|r| r.action == "pod_logs" && r.transport == "internal"));
    assert!(!serde_json::to_string(&audit).unwrap().contains(SECRET_VALUE));
}

#[tokio::test]
async fn bad_input_and_wrong_role_are_clear_mcp_errors() {
    let s = setup(Role::Viewer, Some(ElicitationAction::Accept), false).await;
    let err = s.client.call_tool(params("list_resources", json!({"kind": "Widget"}))).await.unwrap_err();
    let e = mcp_error(err);
    assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    assert!(e.message.contains("unknown kind `Widget`"), "{}", e.message);
    let err = s
        .client
        .call_tool(params("pod_logs", json!({"namespace": "shop", "name": "x", "tail": 99_999_999})))
        .await
        .unwrap_err();
    assert!(mcp_error(err).message.contains("tail must be between 1 and 5000"));

    let err = s
        .client
        .call_tool(params("scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 0})))
        .await
        .unwrap_err();
    let e = mcp_error(err);
    assert_eq!(e.code, FORBIDDEN);
    assert!(e.message.contains("needs the Operator role"), "{}", e.message);
    assert!(s.asked.lock().unwrap().is_empty(), "a viewer is never asked to confirm");
    assert!(s.sink.proposals.lock().unwrap().is_empty());
    assert!(s.api.writes().is_empty());
}

async fn scale(s: &Setup) -> Value {
    let out = s
        .client
        .call_tool(params("scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3})))
        .await
        .unwrap();
    assert_ne!(out.is_error, Some(true), "{out:?}");
    out.structured_content.unwrap()
}

async fn confirmation_flow(new_protocol: bool) {
    // No self-approval (the default): an approver who proposes is not asked to approve it.
    let s = setup(Role::Approver, Some(ElicitationAction::Accept), new_protocol).await;
    let out = scale(&s).await;
    assert_eq!(out["proposal"]["state"], "pending", "{out}");
    assert!(out["message"].as_str().unwrap().contains("they requested it"), "{out}");
    assert!(s.asked.lock().unwrap().is_empty());
    assert!(s.sink.decisions.lock().unwrap().is_empty());

    // The confirmation mechanics, with approvals.allow_self_approval on.
    let allow = |s: &Setup| s.sink.allow_self.store(true, std::sync::atomic::Ordering::SeqCst);
    // Accept: the approver's confirmation approves the proposal (the approvals service applies it).
    let s = setup(Role::Approver, Some(ElicitationAction::Accept), new_protocol).await;
    allow(&s);
    let out = scale(&s).await;
    assert_eq!(out["proposal"]["state"], "approved", "{out}");
    assert_eq!(s.asked.lock().unwrap().len(), 1);
    assert!(s.asked.lock().unwrap()[0].contains("Deployment shop/web"));
    let decisions = s.sink.decisions.lock().unwrap().clone();
    assert_eq!(decisions.len(), 1);
    assert_eq!((decisions[0].1.as_str(), decisions[0].2), ("approver", true));

    // Decline: nothing decided, the proposal stays pending, its id comes back.
    for answer in [ElicitationAction::Decline, ElicitationAction::Cancel] {
        let s = setup(Role::Approver, Some(answer), new_protocol).await;
        allow(&s);
        let out = scale(&s).await;
        assert_eq!(out["proposal"]["state"], "pending", "{out}");
        assert!(out["message"].as_str().unwrap().contains("nothing was changed"));
        assert!(s.sink.decisions.lock().unwrap().is_empty());
        let id = out["proposal"]["id"].as_str().unwrap();
        assert_eq!(s.sink.proposals.lock().unwrap()[id].state, ProposalState::Pending);
        assert!(s.api.writes().is_empty());
    }

    // A client that cannot elicit gets a pending proposal, never an applied change.
    let s = setup(Role::Approver, None, new_protocol).await;
    allow(&s);
    let out = scale(&s).await;
    assert_eq!(out["proposal"]["state"], "pending");
    assert!(s.sink.decisions.lock().unwrap().is_empty());

    // An operator proposes but is not asked to approve.
    let s = setup(Role::Operator, Some(ElicitationAction::Accept), new_protocol).await;
    let out = scale(&s).await;
    assert_eq!(out["proposal"]["state"], "pending");
    assert!(s.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn confirmation_by_elicitation_2025_11_25() {
    confirmation_flow(false).await;
}

#[tokio::test]
async fn confirmation_by_input_required_2026_07_28() {
    confirmation_flow(true).await;
}

#[tokio::test]
async fn apply_proposal_confirms_an_existing_proposal() {
    let s = setup(Role::Approver, Some(ElicitationAction::Decline), false).await;
    s.sink.allow_self.store(true, std::sync::atomic::Ordering::SeqCst);
    let pending = scale(&s).await;
    let id = pending["proposal"]["id"].as_str().unwrap().to_owned();
    // A second session of an approver who accepts.
    let tools = s.server.tools().clone();
    drop(s.client);
    let prompts = crate::prompts::Catalog::default();
    let server = KubemedicServer::new(tools, prompts, &[9u8; 32]).unwrap();
    let handler = Client { answer: Some(ElicitationAction::Accept), ..Client::default() };
    let client = attach(&server, caller(Role::Approver), handler, false).await;
    let out = client.call_tool(params("apply_proposal", json!({"id": id}))).await.unwrap();
    assert_eq!(out.structured_content.unwrap()["proposal"]["state"], "approved");
    assert_eq!(s.sink.decisions.lock().unwrap().len(), 1);
    // Once decided, it cannot be decided again.
    let err = client.call_tool(params("apply_proposal", json!({"id": id}))).await.unwrap_err();
    assert!(mcp_error(err).message.contains("not pending"));
}

/// A client over a duplex to `server` acting as `role`, accepting every confirmation.
async fn connect(server: KubemedicServer, role: Role) -> RunningService<RoleClient, Client> {
    connect_with(server, role, Arc::default(), false).await
}

/// [`connect`] on either protocol version, recording what the client is asked in `asked`.
async fn connect_with(
    server: KubemedicServer,
    role: Role,
    asked: Arc<Mutex<Vec<String>>>,
    new_protocol: bool,
) -> RunningService<RoleClient, Client> {
    let handler = Client { answer: Some(ElicitationAction::Accept), asked, ..Client::default() };
    attach(&server, caller(role), handler, new_protocol).await
}

/// An approver proposes `scale` and accepts the confirmation, against the real approvals
/// service over the fake apiserver with `approvals.mcp_accept_applies: applies`.
async fn accept_with_real_approvals(
    applies: bool,
    new_protocol: bool,
) -> (Value, Arc<crate::approvals::Approvals>, crate::tools::testing::FakeApi, usize) {
    let api = shop_fixture();
    // Discovery for apps/v1, which the apply path resolves the kind with.
    api.objects.lock().unwrap().insert(
        "/apis/apps/v1".into(),
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [{
            "name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
            "verbs": ["get", "list", "watch", "patch", "update", "delete"],
        }]}),
    );
    let config = crate::cluster::ClusterConfig {
        exclude_namespaces: vec!["hidden".into(), "kube-system".into()],
        ..crate::cluster::ClusterConfig::default()
    };
    let cluster = crate::cluster::Cluster {
        name: "test".into(),
        client: api.client(),
        scope: crate::cluster::Scope::from_config(&config),
    };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::redb::RedbStore::open(dir.path()).unwrap());
    drop(dir);
    let approvals_config = crate::approvals::ApprovalsConfig {
        mcp_accept_applies: applies,
        // The approver proposes and confirms in one session: what is under test is the accept.
        allow_self_approval: true,
        verify_timeout_seconds: 1,
        verify_stable_seconds: 0,
        rollback_on_failure: false,
        ..crate::approvals::ApprovalsConfig::default()
    };
    let approvals = Arc::new(crate::approvals::Approvals::new(store.clone(), cluster.clone(), None, approvals_config));
    let tools = crate::tools::Tools::new(cluster, Some(store), crate::telemetry::audit::AuditLog::in_memory())
        .with_approvals(approvals.clone());
    let server = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[7u8; 32]).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let client = connect_with(server, Role::Approver, asked.clone(), new_protocol).await;
    let out = client
        .call_tool(params("scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3})))
        .await
        .unwrap();
    assert_ne!(out.is_error, Some(true), "{out:?}");
    let asked = asked.lock().unwrap().len();
    (out.structured_content.unwrap(), approvals, api, asked)
}

async fn mcp_accept_applies_flow(new_protocol: bool) {
    // false: the accept is recorded, the proposal stays pending for Slack or the CLI, nothing is sent.
    let (out, approvals, api, asked) = accept_with_real_approvals(false, new_protocol).await;
    assert_eq!(asked, 1, "the approver is still asked");
    assert_eq!(out["proposal"]["state"], "pending", "{out}");
    assert!(out["message"].as_str().unwrap().contains("mcp_accept_applies: false"), "{out}");
    let id = out["proposal"]["id"].as_str().unwrap();
    let stored = approvals.get(id).await.unwrap();
    assert_eq!(stored.state, ProposalState::Pending);
    assert_eq!(stored.decided_by(), None);
    assert!(stored.approval.is_none(), "no approval was sealed");
    assert_eq!(approvals.mutations_sent(), 0);
    assert!(api.writes().is_empty(), "{:?}", api.writes());

    // true: the same accept approves, and the approvals service sends the change.
    let (out, approvals, api, asked) = accept_with_real_approvals(true, new_protocol).await;
    assert_eq!(asked, 1);
    let id = out["proposal"]["id"].as_str().unwrap();
    let stored = approvals.get(id).await.unwrap();
    assert_eq!(stored.decided_by(), Some("approver"), "{stored:?}");
    assert_ne!(stored.state, ProposalState::Pending);
    assert_eq!(approvals.mutations_sent(), 1, "{stored:?}");
    assert_eq!(api.writes(), vec!["PATCH /apis/apps/v1/namespaces/shop/deployments/web".to_owned()]);
}

#[tokio::test]
async fn mcp_accept_applies_false_leaves_the_proposal_pending_2025_11_25() {
    mcp_accept_applies_flow(false).await;
}

#[tokio::test]
async fn mcp_accept_applies_false_leaves_the_proposal_pending_2026_07_28() {
    mcp_accept_applies_flow(true).await;
}

#[tokio::test]
async fn a_read_only_server_neither_lists_nor_runs_mutating_tools() {
    let api = shop_fixture();
    let (tools, sink) = tools(&api);
    let server = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[7u8; 32]).unwrap();
    let client = connect(server.read_only(true), Role::Admin).await;
    let listed = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    for spec in crate::tools::TOOLS {
        assert_eq!(names.contains(&spec.name), spec.read_only, "{} listed: {names:?}", spec.name);
    }
    // The attack: an admin calls a mutating tool by name anyway.
    for (tool, args) in [
        ("scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 0})),
        ("delete_pod", json!({"namespace": "shop", "name": "web-aaa-1"})),
        ("apply_proposal", json!({"id": "p-1"})),
    ] {
        let err = mcp_error(client.call_tool(params(tool, args)).await.unwrap_err());
        assert_eq!(err.code, FORBIDDEN, "{tool}");
        assert!(err.message.contains("read-only"), "{}", err.message);
    }
    assert!(sink.proposals.lock().unwrap().is_empty(), "no proposal was made");
    assert!(api.writes().is_empty(), "nothing was written");
    // The same server, not read-only, still offers them (the agent's in-process client).
    let full = connect(server, Role::Admin).await;
    assert_eq!(full.list_all_tools().await.unwrap().len(), crate::tools::TOOLS.len());
}

#[tokio::test]
async fn every_result_keeps_to_the_budget_and_says_how_to_continue() {
    let api = shop_fixture();
    for i in 0..600 {
        api.add(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "shop", "name": format!("bulk-{i:04}"), "labels": {"app": "bulk"}},
            "status": {"phase": "Running"}}));
    }
    let (tools, _) = tools(&api);
    let server = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[7u8; 32])
        .unwrap()
        .with_max_result_bytes(8_000);
    let client = connect(server, Role::Viewer).await;
    let out = client
        .call_tool(params("list_resources", json!({"kind": "Pod", "namespace": "shop", "limit": 500})))
        .await
        .unwrap();
    let text: usize = out.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.len()).sum();
    assert!(text <= 8_000, "{text} bytes of text");
    let note = out.content.last().and_then(|c| c.as_text()).unwrap().text.clone();
    let v = out.structured_content.unwrap();
    let token = v["continue"].as_str().unwrap().to_owned();
    assert!(note.contains(&format!("continue: \"{token}\"")), "{note}");
    assert_eq!(v["truncated"], json!(true));
    let first: Vec<String> =
        v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect();
    // Following the token gives the very next item: nothing cut is lost.
    let next = client
        .call_tool(params(
            "list_resources",
            json!({"kind": "Pod", "namespace": "shop", "limit": 500, "continue": token}),
        ))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    let after = next["items"][0]["name"].as_str().unwrap();
    // The whole listing, from a server with room for it: the cut page and the next one join up.
    let (tools, _) = crate::tools::testing::tools(&api);
    let roomy = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[7u8; 32])
        .unwrap()
        .with_max_result_bytes(10_000_000);
    let whole = connect(roomy, Role::Viewer)
        .await
        .call_tool(params("list_resources", json!({"kind": "Pod", "namespace": "shop", "limit": 500})))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    assert!(whole.get("budget").is_none(), "within budget: untouched");
    let names: Vec<&str> = whole["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names[..first.len()], first.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    assert_eq!(names[first.len()], after, "the next page starts right after the last kept item");
}

/// A 2026-07-28 client with the Tasks extension, acting as `caller` on `server`.
async fn connect_tasks(server: &KubemedicServer, caller: crate::tools::Caller) -> RunningService<RoleClient, Client> {
    attach(server, caller, Client { answer: Some(ElicitationAction::Accept), tasks: true, ..Client::default() }, true)
        .await
}

#[tokio::test]
async fn a_confirmed_change_becomes_a_task_only_its_user_can_read_or_cancel() {
    use rmcp::model::{CallToolResponse, CancelTaskParams, GetTaskParams, TaskStatus};
    let api = shop_fixture();
    let (tools, sink) = tools(&api);
    sink.allow_self.store(true, std::sync::atomic::Ordering::SeqCst);
    let server = KubemedicServer::new(tools, crate::prompts::Catalog::default(), &[7u8; 32]).unwrap();
    let client = connect_tasks(&server, caller(Role::Approver)).await;
    let args = json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3});
    let first = client.call_tool_once(params("scale", args.clone())).await.unwrap();
    let CallToolResponse::InputRequired(asked) = first else { panic!("expected a confirmation request: {first:?}") };
    let key = asked.input_requests.as_ref().and_then(|r| r.keys().next().cloned()).unwrap();
    let mut second = params("scale", args);
    second.request_state = asked.request_state.clone();
    second.input_responses = Some([(key, json!({"action": "accept", "content": {"approve": true}}))].into());
    let CallToolResponse::Task(created) = client.call_tool_once(second).await.unwrap() else {
        panic!("a tasks client gets a task")
    };
    let id = created.task.task_id.clone();
    // The sink approves but never applies: the task follows an approved proposal.
    let got = client.get_task(GetTaskParams::new(&id)).await.unwrap();
    assert_eq!(got.task.status(), TaskStatus::Working);
    assert!(got.task.task.status_message.as_deref().unwrap_or_default().ends_with(": approved"), "{got:?}");

    // Another user of the same server (even an admin) sees no such task and cannot cancel it.
    let other =
        connect_tasks(&server, crate::tools::Caller::new("mallory", Role::Admin, crate::tools::Transport::Internal))
            .await;
    let err = mcp_error(other.get_task(GetTaskParams::new(&id)).await.unwrap_err());
    assert!(err.message.contains("unknown task"), "{err:?}");
    let err = mcp_error(other.cancel_task(CancelTaskParams::new(&id)).await.unwrap_err());
    assert!(err.message.contains("unknown task"), "{err:?}");
    assert_eq!(client.get_task(GetTaskParams::new(&id)).await.unwrap().task.status(), TaskStatus::Working);

    // Its owner stops following it.
    client.cancel_task(CancelTaskParams::new(&id)).await.unwrap();
    let mut status = TaskStatus::Working;
    for _ in 0..50 {
        status = client.get_task(GetTaskParams::new(&id)).await.unwrap().task.status();
        if status != TaskStatus::Working {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, TaskStatus::Cancelled);
    // A client without the extension gets the plain result (tested by the confirmation flows).
}

#[tokio::test]
async fn subscribers_hear_of_a_proposal_decided_elsewhere() {
    use rmcp::model::SubscribeRequestParams;
    let s = setup(Role::Viewer, None, false).await;
    // What a caller may not read, or what does not exist, cannot be subscribed to.
    #[allow(deprecated)]
    let err = mcp_error(s.client.subscribe(SubscribeRequestParams::new("kubemedic://audit/recent")).await.unwrap_err());
    assert_eq!(err.code, FORBIDDEN, "{err:?}");
    #[allow(deprecated)]
    let err = mcp_error(
        s.client
            .subscribe(SubscribeRequestParams::new("kubemedic://proposals/0190f2a4-0000-7000-8000-000000000000"))
            .await
            .unwrap_err(),
    );
    assert!(err.message.contains("not found"), "{err:?}");

    // A pending proposal (drafted by an operator on the same server).
    let operator = connect(s.server.clone(), Role::Operator).await;
    let out = operator
        .call_tool(params("scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3})))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    let id = out["proposal"]["id"].as_str().unwrap().to_owned();
    let uri = format!("kubemedic://proposals/{id}");
    let updated = Arc::new(Mutex::new(Vec::new()));
    let watcher =
        attach(&s.server, caller(Role::Viewer), Client { updated: updated.clone(), ..Client::default() }, false).await;
    #[allow(deprecated)]
    watcher.subscribe(SubscribeRequestParams::new(&uri)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(updated.lock().unwrap().is_empty(), "nothing changed yet");
    // Decided through the sink directly (as Slack or the CLI would, in another process): the
    // sink broadcasts nothing, the watcher's poll of the store finds the change.
    crate::tools::ProposalSink::decide(s.sink.as_ref(), &id, "approver", true).await.unwrap();
    for _ in 0..40 {
        if !updated.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(updated.lock().unwrap().first(), Some(&uri));
    #[allow(deprecated)]
    watcher.unsubscribe(rmcp::model::UnsubscribeRequestParams::new(&uri)).await.unwrap();
}

#[tokio::test]
async fn several_clusters_take_a_cluster_argument_on_tools_and_resources() {
    let (a, b) = (shop_fixture(), shop_fixture());
    b.add(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "only-in-b", "namespace": "shop", "uid": "u-b"}, "spec": {"replicas": 1}}));
    let (tools_a, _) = tools(&a);
    let (mut tools_b, _) = tools(&b);
    tools_b.cluster.name = "staging".into();
    let server = KubemedicServer::new(tools_a, crate::prompts::Catalog::default(), &[7u8; 32])
        .unwrap()
        .with_more_clusters(vec![tools_b])
        .unwrap();
    let client = connect(server, Role::Viewer).await;

    let listed = client.list_all_tools().await.unwrap();
    let get = listed.iter().find(|t| t.name == "get_resource").unwrap();
    assert_eq!(get.input_schema["properties"]["cluster"]["enum"], json!(["test", "staging"]));

    let args = |cluster: Option<&str>| {
        let mut a = json!({"kind": "Deployment", "namespace": "shop", "name": "only-in-b"});
        if let Some(c) = cluster {
            a["cluster"] = json!(c);
        }
        a
    };
    let found = client.call_tool(params("get_resource", args(Some("staging")))).await.unwrap();
    assert_eq!(found.structured_content.unwrap()["object"]["metadata"]["name"], "only-in-b");
    let missing = client.call_tool(params("get_resource", args(None))).await;
    assert!(
        missing.as_ref().is_err() || missing.as_ref().unwrap().is_error == Some(true),
        "the default cluster has no such Deployment: {missing:?}"
    );
    let err = mcp_error(client.call_tool(params("get_resource", args(Some("prod")))).await.unwrap_err());
    assert!(err.message.contains("unknown cluster") && err.message.contains("staging"), "{err:?}");

    let resources = client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "kubemedic://incidents?cluster=staging"), "{resources:?}");
    let clusters = client.read_resource(ReadResourceRequestParams::new("kubemedic://clusters")).await.unwrap();
    let text = serde_json::to_string(&clusters).unwrap();
    assert!(text.contains("staging") && text.contains("test"), "{text}");
    let err = mcp_error(
        client.read_resource(ReadResourceRequestParams::new("kubemedic://proposals?cluster=nope")).await.unwrap_err(),
    );
    assert!(err.message.contains("unknown cluster"), "{err:?}");
}

#[tokio::test]
async fn a_proposal_is_applied_only_by_the_kubemedic_serving_its_cluster() {
    // Pending (the accept does not apply), then approved through another cluster's service
    // over the same store: several daemons, one per cluster, sharing one NATS.
    let (out, approvals, api, _) = accept_with_real_approvals(false, false).await;
    let id = out["proposal"]["id"].as_str().unwrap().to_owned();
    let elsewhere = crate::approvals::Approvals::new(
        approvals.store().clone(),
        crate::cluster::Cluster {
            name: "elsewhere".into(),
            client: api.client(),
            scope: crate::cluster::Scope::default(),
        },
        None,
        approvals.config().clone(),
    );
    let digest = out["proposal"]["digest"].as_str().map(str::to_owned);
    let d = crate::approvals::Decision {
        user: "boss",
        identity: "boss",
        approve: true,
        via: "api",
        digest: digest.as_deref(),
    };
    let err = elsewhere.decide_with(&id, &d).await.unwrap_err();
    assert!(matches!(err, crate::approvals::ApprovalError::OtherCluster { .. }), "{err}");
    assert!(api.writes().is_empty(), "nothing was sent: {:?}", api.writes());
    // A restart of the other cluster's kubemedic leaves it alone; its own applies it.
    assert!(elsewhere.resume().await.unwrap().is_empty());
    assert!(api.writes().is_empty());
    let resumed = approvals.resume().await.unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(api.writes().iter().any(|w| w.starts_with("PATCH")), "{:?}", api.writes());
}

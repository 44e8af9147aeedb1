//! Shared set-up of the approvals end-to-end tests: the real control plane
//! and nodesim (KUBECONFIG), a real nats-server (KUBEMEDIC_TEST_NATS_URL),
//! the Slack Web API stand-in, and the approval routes served on 127.0.0.1:0.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kubemedic::approvals::http::{HttpOptions, router, spawn, token_hash};
use kubemedic::approvals::slack::{Retry, Secret, SlackClient, signature};
use kubemedic::approvals::{Action, Approvals, ApprovalsConfig, PatchType, Proposal, ProposalState};
use kubemedic::cluster::{Cluster, Scope};
use kubemedic::config::ClusterConfig;
use kubemedic::mcp::auth::{AuthConfig, Authenticator, Role, TokenConfig};
use kubemedic::store::Store;
use kubemedic::store::nats::NatsStore;
use kubemedic::store::redb::RedbStore;
use serde_json::{Value, json};
use testkit::Sample;
use testkit::slack::SlackStandin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SIGNING_SECRET: &str = "e2e-signing-secret-0123456789abcdef";
pub const BOT_TOKEN: &str = "xoxb-e2e-token";
pub const API_TOKEN: &str = "km-e2e-approver-token";
pub const APPROVER: &str = "U0APPROVER";
/// Mapped to the approver role, but not on the support proposals' own approver list.
pub const INTRUDER: &str = "U0INTRUDER";
/// Mapped to the approver role with identity `bob` (who proposes in the self-approval tests).
pub const BOB_IN_SLACK: &str = "U0BOB";
/// A user group mapped to the approver role; its members are set on the stand-in per test.
pub const ONCALL_GROUP: &str = "S0ONCALL";

/// The `slack.approvers` mapping of these tests.
pub fn slack_mapping() -> kubemedic::approvals::slack::approvers::ApproversConfig {
    serde_json::from_value(json!({
        "users": {
            APPROVER: "approver",
            INTRUDER: "approver",
            BOB_IN_SLACK: {"role": "approver", "identity": "bob"},
            "U0OPERATOR": "operator",
        },
        "groups": {ONCALL_GROUP: "approver"},
        "group_cache_seconds": 60,
    }))
    .unwrap()
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{:x}-{:x}-{}", std::process::id(), nanos, N.fetch_add(1, Ordering::SeqCst))
}

pub fn cluster(client: &Client) -> Cluster {
    Cluster { name: "local".into(), client: client.clone(), scope: Scope::from_config(&ClusterConfig::default()) }
}

/// A fresh bucket: `resume()` looks at every proposal in its store, so tests running side by
/// side must not share one (and must not resume each other's proposals).
pub async fn nats_store() -> Arc<dyn Store> {
    nats_store_named(&unique("kubemedic-e2e")).await
}

/// `bucket` on its own connection (call twice for two replicas over one bucket).
pub async fn nats_store_named(bucket: &str) -> Arc<dyn Store> {
    let url = std::env::var("KUBEMEDIC_TEST_NATS_URL")
        .expect("KUBEMEDIC_TEST_NATS_URL must point at a nats-server with JetStream (tests/run.sh starts one)");
    Arc::new(NatsStore::connect(&url, bucket).await.expect("NATS KV"))
}

pub fn redb_store() -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(unique("kubemedic-e2e-redb"));
    Arc::new(RedbStore::open(&dir).expect("redb store"))
}

pub fn config() -> ApprovalsConfig {
    // A short stability window: nodesim's failures show within a second or two of a start.
    ApprovalsConfig { verify_timeout_seconds: 90, verify_stable_seconds: 5, ..ApprovalsConfig::default() }
}

pub fn slack_client(slack: &SlackStandin) -> SlackClient {
    let retry = Retry { max_retries: 3, base: Duration::from_millis(50), cap: Duration::from_secs(2) };
    SlackClient::new(&slack.base_url(), Secret::new(BOT_TOKEN), "C0PROPOSALS", Duration::from_secs(5), retry).unwrap()
}

pub fn approvals(
    store: Arc<dyn Store>,
    client: &Client,
    slack: Option<&SlackStandin>,
    replica: &str,
) -> Arc<Approvals> {
    Arc::new(
        Approvals::new(store, cluster(client), slack.map(slack_client), config())
            .with_slack_approvers(slack_mapping())
            .with_replica(replica),
    )
}

/// Serve the approval routes; returns `127.0.0.1:PORT`.
pub async fn serve(approvals: Arc<Approvals>) -> String {
    let config = AuthConfig {
        tokens: vec![TokenConfig {
            name: "alice".into(),
            sha256: token_hash(API_TOKEN),
            role: Role::Approver,
            groups: Vec::new(),
        }],
        ..AuthConfig::default()
    };
    let auth = Authenticator::new(&config).await.expect("authenticator");
    let options = HttpOptions { signing_secret: Some(Secret::new(SIGNING_SECRET)), auth: Arc::new(auth) };
    let (addr, _task) = spawn(([127, 0, 0, 1], 0).into(), router(approvals, options)).await.unwrap();
    addr.to_string()
}

/// A minimal HTTP/1.1 request (the e2e crate carries no HTTP client); returns (status, body).
pub async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The form body Slack sends when `user` clicks Approve (or Reject) on the card of `p`
/// (the button value carries the id and the digest the card showed).
pub fn click_body(p: &Proposal, user: &str, approve: bool) -> String {
    click_body_value(&kubemedic::approvals::slack::blocks::button_value(p), user, approve)
}

/// [`click_body`] with a button value as given (forged or old cards).
pub fn click_body_value(id: &str, user: &str, approve: bool) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0"},
        "api_app_id": "A0", "token": "legacy", "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0PROPOSALS", "is_ephemeral": false},
        "channel": {"id": "C0PROPOSALS", "name": "proposals"},
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [{
            "type": "button", "block_id": "kubemedic_decision",
            "action_id": if approve { "kubemedic_approve" } else { "kubemedic_reject" },
            "value": id, "action_ts": "1700000001.000000",
            "text": {"type": "plain_text", "text": if approve { "Approve" } else { "Reject" }}
        }]
    });
    format!("payload={}", form_encode(&payload.to_string()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Slack's headers for `body`, signed with `secret` at `timestamp`.
pub fn signed(body: &str, secret: &str, timestamp: i64) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    vec![
        ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
        ("X-Slack-Request-Timestamp", ts.clone()),
        ("X-Slack-Signature", signature::sign(secret.as_bytes(), &ts, body.as_bytes())),
    ]
}

/// POST a click on the card of `p` to `/slack/interactions`, correctly signed now.
pub async fn click(addr: &str, p: &Proposal, user: &str, approve: bool) -> u16 {
    let body = click_body(p, user, approve);
    http(addr, "POST", "/slack/interactions", &signed(&body, SIGNING_SECRET, now()), &body).await.0
}

/// A small healthy Deployment of our own, waited until ready.
pub async fn deployment(client: &Client, ns: &str, name: &str) -> Deployment {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 30,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
                }]}
            }
        }
    }))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &d).await.unwrap();
    e2e::wait::deployment_ready(client, ns, name, Duration::from_secs(90)).await
}

pub async fn get_deployment(client: &Client, ns: &str, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns).get(name).await.unwrap()
}

/// A proposal on Deployment `ns/name` as it is now, approvable by [`APPROVER`].
pub async fn proposal(client: &Client, ns: &str, name: &str, patch_type: PatchType, body: Value) -> Proposal {
    let live = get_deployment(client, ns, name).await;
    let mut p = kubemedic::approvals::Proposal::test().with_id(&unique("p"));
    p.target.namespace = ns.to_owned();
    p.target.name = name.to_owned();
    p.target.resource_version = live.resource_version();
    p.target.generation = live.metadata.generation;
    // What policy::prepare records: the fingerprint of the object as the apiserver returns it.
    let raw: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &kube::api::ApiResource::erase::<Deployment>(&()));
    let raw = serde_json::to_value(raw.get(name).await.unwrap()).unwrap();
    p.target.content_digest = Some(kubemedic::approvals::precondition::fingerprint(&raw));
    p.action = Action::Patch { patch_type, body };
    p.approvers = vec![APPROVER.to_owned(), "alice".to_owned()];
    // As the built-in diagnostician drafts it: apply re-runs the policy of this tier.
    p.drafter = kubemedic::approvals::Drafter::Builtin;
    p.diff = format!("change to Deployment {ns}/{name}");
    p
}

/// A strategic patch that sets the container image.
pub fn image_patch(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// Wait until the stored proposal reaches a terminal state.
pub async fn settled(approvals: &Approvals, id: &str, timeout: Duration) -> Proposal {
    e2e::wait::until(timeout, &format!("proposal {id} settles"), || async {
        let p = approvals.get(id).await.ok()?;
        p.state.is_terminal().then_some(p)
    })
    .await
}

pub fn image_of(d: &Deployment) -> String {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default()
}

pub fn stamp_of(d: &Deployment) -> Option<String> {
    d.annotations().get("kubemedic.io/proposal").cloned()
}

pub fn assert_state(p: &Proposal, state: ProposalState) {
    assert_eq!(p.state, state, "proposal {} is {:?}: outcome {:?}, history {:#?}", p.id, p.state, p.outcome, p.history);
}

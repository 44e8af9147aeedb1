//! Attacks on the approval promise, against the real control plane, a real nats-server (the
//! proposal store) and the Slack stand-in: a click from someone who is not an approver, a
//! requester approving their own proposal (Slack, HTTP API, MCP path, CLI), an `approved`
//! proposal forged straight into the store, a pending patch rewritten in the store after its
//! card was posted, and a daemon configured with Slack but no approver mapping.

mod approvals_support;

use std::sync::Arc;
use std::time::Duration;

use approvals_support::*;
use kube::ResourceExt;
use kubemedic::approvals::proposal::Transition;
use kubemedic::approvals::seal::ApprovalKey;
use kubemedic::approvals::{Action, Approvals, Decision, PatchType, ProposalState};
use kubemedic::store::Store;
use kubemedic::telemetry::audit::AuditLog;
use serde_json::json;
use testkit::slack::SlackStandin;

fn audited(store: Arc<dyn Store>, client: &kube::Client, slack: &SlackStandin) -> (Arc<Approvals>, AuditLog) {
    let audit = AuditLog::in_memory();
    let a = Approvals::new(store, cluster(client), Some(slack_client(slack)), config())
        .with_slack_approvers(slack_mapping())
        .with_audit(audit.clone())
        .with_replica("kubemedic-0");
    (Arc::new(a), audit)
}

#[tokio::test]
async fn a_click_from_a_user_without_the_approver_role_is_refused_and_audited() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "safe-role").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let (approvals, audit) = audited(nats_store().await, &client, &slack);
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let mut p = proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await;
    p.approvers = vec![];
    let p = approvals.submit(p).await.unwrap();

    // The card says who may approve, from the mapping.
    let card = slack.message(&p.slack.clone().unwrap().ts).unwrap().blocks.to_string();
    assert!(card.contains("<@U0APPROVER>") && card.contains("<!subteam^S0ONCALL>"), "{card}");
    assert!(!card.contains("<@U0OPERATOR>"), "an operator is not offered as an approver: {card}");

    // A guest nobody mapped, an operator, and a member of no mapped group (the group is read).
    slack.set_usergroup(ONCALL_GROUP, &["U0ONCALL"]);
    for user in ["U0GUEST", "U0OPERATOR"] {
        assert_eq!(click(&addr, &p, user, true).await, 200);
        let eph = slack.ephemerals();
        assert!(eph.iter().any(|(u, t)| u == user && t.contains("approver role")), "{user}: {eph:?}");
        assert!(
            audit.recent(100).iter().any(|r| r.user == user && r.outcome == "denied" && r.transport == "slack"),
            "refusal of {user} audited: {:?}",
            audit.recent(100)
        );
    }
    let still = approvals.get(&p.id).await.unwrap();
    assert_state(&still, ProposalState::Pending);
    assert_eq!(still.decided_by(), None);
    assert_eq!(approvals.mutations_sent(), 0);
    assert_eq!(get_deployment(&client, &ns.name, "api").await.resource_version(), before);

    // A button value without the digest (an old or forged card) is refused too.
    let body = click_body_value(&p.id, APPROVER, true);
    let (status, _) = http(&addr, "POST", "/slack/interactions", &signed(&body, SIGNING_SECRET, now()), &body).await;
    assert_eq!(status, 200);
    assert_state(&approvals.get(&p.id).await.unwrap(), ProposalState::Pending);

    // A member of the mapped group approves: it is applied and verified.
    assert!(slack.calls().iter().all(|c| c.method != "usergroups.users.list" || c.status == 200));
    assert_eq!(click(&addr, &p, "U0ONCALL", true).await, 200);
    let done = settled(&approvals, &p.id, Duration::from_secs(120)).await;
    assert_state(&done, ProposalState::Verified);
    assert_eq!(done.decided_by(), Some("U0ONCALL"));
    assert!(slack.calls().iter().any(|c| c.method == "usergroups.users.list"), "group membership read from Slack");
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_proposal_on_any_path() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "safe-self").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let (approvals, audit) = audited(nats_store().await, &client, &slack);
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let offer = |requester: &'static str| {
        let (client, ns, approvals) = (client.clone(), ns.name.clone(), approvals.clone());
        async move {
            let mut p = proposal(&client, &ns, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await;
            p.approvers = vec![];
            p.requested_by = format!("{requester} (http)");
            approvals.submit(p).await.unwrap()
        }
    };

    // Slack: U0BOB is mapped to identity `bob`, who proposed over MCP.
    let p = offer("bob").await;
    assert_eq!(click(&addr, &p, BOB_IN_SLACK, true).await, 200);
    let eph = slack.ephemerals();
    assert!(eph.iter().any(|(u, t)| u == BOB_IN_SLACK && t.contains("may not approve it yourself")), "{eph:?}");
    assert_state(&approvals.get(&p.id).await.unwrap(), ProposalState::Pending);
    assert!(audit.recent(100).iter().any(|r| r.user == BOB_IN_SLACK && r.outcome == "denied"));

    // HTTP API: alice (the API token's name) proposed it.
    let p = offer("alice").await;
    let auth = vec![("Authorization", format!("Bearer {API_TOKEN}"))];
    let (status, body) = http(&addr, "POST", &format!("/api/proposals/{}/approve", p.id), &auth, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not approve"), "{body}");
    assert_state(&approvals.get(&p.id).await.unwrap(), ProposalState::Pending);

    // The MCP approve path (what apply_proposal and an elicitation accept call).
    let d = Decision { user: "alice", identity: "alice", approve: true, via: "mcp", digest: p.digest.as_deref() };
    let err = approvals.decide_with(&p.id, &d).await.unwrap_err().to_string();
    assert!(err.contains("may not approve"), "{err}");

    // The CLI, through the same API, as alice.
    let out = tokio::process::Command::new(e2e::daemon::bin())
        .args(["approve", &p.id, "--url", &format!("http://{addr}")])
        .env("KUBEMEDIC_TOKEN", API_TOKEN)
        .output()
        .await
        .expect("run kubemedic approve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the CLI must fail: {stderr}");
    assert!(stderr.contains("may not approve"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(p.digest.as_deref().unwrap()), "the CLI shows the digest");

    // Rejecting one's own proposal is allowed; nothing was applied by any attempt.
    let r = approvals.record_decision(&p.id, "alice", false, "http").await.unwrap();
    assert_state(&r, ProposalState::Rejected);
    assert_eq!(approvals.mutations_sent(), 0);
    assert_eq!(get_deployment(&client, &ns.name, "api").await.resource_version(), before);
}

#[tokio::test]
async fn an_approved_proposal_forged_into_the_store_is_not_applied_on_resume() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "safe-forge").await;
    deployment(&client, &ns.name, "api").await;
    let store = nats_store().await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let forged = |id: &str, key: Option<&ApprovalKey>| {
        let (client, ns) = (client.clone(), ns.name.clone());
        let id = id.to_owned();
        let key = key.cloned();
        async move {
            let mut p = proposal(&client, &ns, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await;
            p.id = id;
            p.digest = Some(kubemedic::approvals::seal::digest(&p));
            let now = jiff::Timestamp::now();
            for (from, to) in
                [(ProposalState::Proposed, ProposalState::Pending), (ProposalState::Pending, ProposalState::Approved)]
            {
                p.history.push(Transition { from, to, at: now, by: APPROVER.into(), note: String::new() });
            }
            p.state = ProposalState::Approved;
            if let Some(key) = key {
                p.approval = Some(key.seal(&p.id, p.digest.as_deref().unwrap(), APPROVER, &now.to_string(), "slack"));
            }
            p
        }
    };
    // No seal at all, and a seal made with another key (an attacker's own).
    let unsealed = forged(&unique("forged"), None).await;
    let other_key = forged(&unique("forged"), Some(&ApprovalKey::random())).await;
    store.create_proposal(&unsealed).await.unwrap();
    store.create_proposal(&other_key).await.unwrap();

    let approvals = Arc::new(
        Approvals::new(store, cluster(&client), None, config()).with_seal_key(ApprovalKey::random()).with_replica("r"),
    );
    approvals.resume().await.unwrap();
    for p in [&unsealed, &other_key] {
        let after = approvals.get(&p.id).await.unwrap();
        assert_state(&after, ProposalState::Refused);
        let why = after.outcome.clone().unwrap_or_default();
        assert!(why.contains("seal"), "{why}");
    }
    assert_eq!(approvals.mutations_sent(), 0);
    assert_eq!(get_deployment(&client, &ns.name, "api").await.resource_version(), before);
}

#[tokio::test]
async fn a_pending_patch_rewritten_in_the_store_after_the_card_is_refused() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "safe-tamper").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let store = nats_store().await;
    let (approvals, _audit) = audited(store.clone(), &client, &slack);
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let shown = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();

    // A writer to the KV bucket swaps the image after Slack showed the card, and even
    // recomputes the digest field so the stored proposal looks consistent.
    let current = store.get_proposal(&shown.id).await.unwrap().unwrap();
    let mut evil = current.value.clone();
    evil.action = Action::Patch { patch_type: PatchType::Strategic, body: image_patch("evil.example/miner:1") };
    evil.digest = Some(kubemedic::approvals::seal::digest(&evil));
    store.update_proposal(&evil, current.revision).await.unwrap();

    // The click carries the digest of the card: refused.
    assert_eq!(click(&addr, &shown, APPROVER, true).await, 200);
    let eph = slack.ephemerals();
    assert!(eph.iter().any(|(u, t)| u == APPROVER && t.contains("no longer the one")), "{eph:?}");
    // The HTTP API with the digest the approver reviewed: 409.
    let auth = vec![("Authorization", format!("Bearer {API_TOKEN}"))];
    let path = format!("/api/proposals/{}/approve?digest={}", shown.id, shown.digest.as_deref().unwrap());
    let (status, body) = http(&addr, "POST", &path, &auth, "").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("changed since it was shown"), "{body}");

    // The content rewritten without updating the digest field is refused even without one.
    let current = store.get_proposal(&shown.id).await.unwrap().unwrap();
    let mut sneaky = current.value.clone();
    sneaky.digest = shown.digest.clone();
    store.update_proposal(&sneaky, current.revision).await.unwrap();
    let (status, body) = http(&addr, "POST", &format!("/api/proposals/{}/approve", shown.id), &auth, "").await;
    assert_eq!(status, 409, "{body}");

    assert_state(&approvals.get(&shown.id).await.unwrap(), ProposalState::Pending);
    assert_eq!(approvals.mutations_sent(), 0);
    let live = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(live.resource_version(), before);
    assert!(!serde_json::to_string(&live).unwrap().contains("miner"));
}

#[tokio::test]
async fn run_with_slack_and_no_approver_mapping_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "cluster": { "name": "no-mapping" },
        "state_dir": dir.path().join("state"),
        "http": { "listen": format!("127.0.0.1:{}", e2e::daemon::free_port()) },
        "slack": { "channel": "C0PROPOSALS", "api_url": "http://127.0.0.1:9/api" },
    });
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let out = tokio::process::Command::new(e2e::daemon::bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out).await.expect("exits at once").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("slack.approvers"), "{stderr}");
}

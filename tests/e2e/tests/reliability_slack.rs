//! The real `kubemedic run` through a Slack outage: the Slack Web API stand-in answers every
//! call with 429 (Retry-After: 1) and 500 in turn while three incidents are diagnosed, for
//! longer than the client's retries last, then recovers. Every proposal must then be posted
//! exactly once (one accepted top-level `chat.postMessage` per proposal, one message), signed
//! button clicks must approve them (applied and verified), and the daemon stays up.

use std::time::Duration;

use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, state_of, token_entry};
use kubemedic::approvals::slack::signature;
use serde_json::{Value, json};
use testkit::slack::{Call, Reply, SlackStandin};

const BOT_TOKEN: &str = "xoxb-reliability-token";
const SIGNING_SECRET: &str = "reliability-signing-secret-0123456789";
const CHANNEL: &str = "C0RELIABILITY";
const USER: &str = "U0RELIABLE";
const WORKLOADS: usize = 3;
/// The daemon's `slack.max_retries`: each client call makes up to this many + 1 attempts.
const MAX_RETRIES: usize = 2;

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// POST what Slack sends when `USER` clicks Approve on a card whose button value is `id`
/// (`<proposal id>:<digest>`), signed now.
async fn click_approve(url: &str, id: &str) -> u16 {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": USER, "username": "reliable", "team_id": "T0"},
        "api_app_id": "A0", "token": "legacy", "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL, "is_ephemeral": false},
        "channel": {"id": CHANNEL, "name": "proposals"},
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [{
            "type": "button", "block_id": "kubemedic_decision", "action_id": "kubemedic_approve",
            "value": id, "action_ts": "1700000001.000000",
            "text": {"type": "plain_text", "text": "Approve"}
        }]
    });
    let body = format!("payload={}", form_encode(&payload.to_string()));
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let resp = reqwest::Client::new()
        .post(format!("{url}/slack/interactions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", &ts)
        .header("X-Slack-Signature", signature::sign(SIGNING_SECRET.as_bytes(), &ts, body.as_bytes()))
        .body(body)
        .send()
        .await
        .expect("POST /slack/interactions");
    resp.status().as_u16()
}

/// A top-level (not a thread reply) `chat.postMessage` carrying proposal `id`.
fn posts_proposal(c: &Call, id: &str) -> bool {
    c.method == "chat.postMessage" && c.body.get("thread_ts").is_none() && c.body["blocks"].to_string().contains(id)
}

#[tokio::test]
async fn slack_429_and_500_outage_posts_every_proposal_once_and_approvals_still_work() {
    let client = e2e::client().await;
    let mut namespaces = Vec::new();
    for _ in 0..WORKLOADS {
        let ns = e2e::Namespace::create(&client, "slack-outage").await;
        e2e::scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
        namespaces.push(ns);
    }
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    slack.outage([Reply::TooManyRequests { retry_after: 1 }, Reply::Status(500)]);

    let dir = std::env::temp_dir().join(e2e::unique_name("slack-outage"));
    let names: Vec<&str> = namespaces.iter().map(|n| n.name.as_str()).collect();
    let config = json!({
        "cluster": { "name": "slack-outage", "namespaces": names },
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.join("state"),
        "http": { "listen": format!("127.0.0.1:{}", free_port()) },
        "auth": { "tokens": [token_entry("alice", APPROVER_TOKEN, "approver")] },
        "approvals": { "verify_timeout_seconds": 60, "expiry_interval_seconds": 1 },
        "slack": { "channel": CHANNEL, "api_url": slack.base_url(), "max_retries": MAX_RETRIES, "timeout_seconds": 5,
                   "approvers": { "users": { USER: "approver" } } },
    });
    let daemon = Daemon::start(
        &dir,
        &config,
        &[("SLACK_BOT_TOKEN", BOT_TOKEN), ("SLACK_SIGNING_SECRET", SIGNING_SECRET), ("POD_NAME", "kubemedic-slack-0")],
    )
    .await;

    // One pending proposal per workload, while Slack is down.
    let ids: Vec<String> = e2e::wait::until(Duration::from_secs(60), "a pending proposal per workload", || async {
        let pending = daemon.proposals(Some("pending")).await?;
        let ids: Vec<String> = names
            .iter()
            .filter_map(|ns| pending.iter().find(|p| p["target"]["namespace"] == *ns && p["target"]["name"] == "api"))
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() == WORKLOADS).then_some(ids)
    })
    .await;

    // Keep Slack down until the client has given up on every proposal at least once (more
    // failed attempts than one call makes), so the re-post path is what gets it through.
    e2e::wait::until(Duration::from_secs(30), "the client gave up on every proposal at least once", || async {
        let calls = slack.calls();
        ids.iter()
            .all(|id| calls.iter().filter(|c| posts_proposal(c, id) && c.status != 200).count() > MAX_RETRIES + 1)
            .then_some(())
    })
    .await;
    let calls = slack.calls();
    let throttled = calls.iter().filter(|c| c.status == 429).count();
    let failed = calls.iter().filter(|c| c.status == 500).count();
    assert!(throttled > 0 && failed > 0, "the outage answered both 429 and 500: {throttled} / {failed}");
    assert!(slack.messages().is_empty(), "nothing got through during the outage");
    assert!(daemon.healthy().await, "healthz during the Slack outage");
    slack.recover();

    // Every proposal reaches Slack and its message reference is stored.
    let stored: Vec<Value> = e2e::wait::until(Duration::from_secs(30), "every proposal posted after recovery", || {
        let (daemon, ids) = (&daemon, &ids);
        async move {
            let mut out = Vec::new();
            for id in ids {
                let p = daemon.proposal(id).await?;
                p["slack"]["ts"].as_str()?;
                out.push(p);
            }
            Some(out)
        }
    })
    .await;

    // Approve each through a signed button click; each is applied and verified.
    for (id, p) in ids.iter().zip(&stored) {
        let value = format!("{id}:{}", p["digest"].as_str().expect("a stored proposal carries its digest"));
        assert_eq!(click_approve(&daemon.url, &value).await, 200, "signed click on {id}");
    }
    for id in &ids {
        let done = e2e::wait::until(Duration::from_secs(90), &format!("proposal {id} verified"), || async {
            let p = daemon.proposal(id).await?;
            matches!(state_of(&p), "verified" | "failed").then_some(p)
        })
        .await;
        assert_eq!(state_of(&done), "verified", "{done:#}\n{}", daemon.log_tail(30));
        assert_eq!(done["history"].as_array().unwrap().iter().filter(|t| t["to"] == "approved").count(), 1);
    }

    // The card's final update goes through the same retrying client after the verdict is
    // stored: wait (bounded) until every card tells the outcome.
    e2e::wait::until(Duration::from_secs(60), "every card tells its outcome", || async {
        let messages = slack.messages();
        ids.iter()
            .all(|id| {
                messages
                    .iter()
                    .filter(|m| m.blocks.to_string().contains(id.as_str()))
                    .any(|m| m.text.contains("erified") || m.replies.iter().any(|r| r.contains("verified")))
            })
            .then_some(())
    })
    .await;

    // Exactly once: one accepted top-level post and one message per proposal, the one stored.
    let calls = slack.calls();
    let messages = slack.messages();
    for (id, p) in ids.iter().zip(&stored) {
        let accepted: Vec<&Call> = calls.iter().filter(|c| posts_proposal(c, id) && c.status == 200).collect();
        assert_eq!(accepted.len(), 1, "proposal {id} posted once: {accepted:#?}");
        let posted: Vec<_> = messages.iter().filter(|m| m.blocks.to_string().contains(id.as_str())).collect();
        assert_eq!(posted.len(), 1, "one Slack message for {id}: {posted:#?}");
        assert_eq!(Some(posted[0].ts.as_str()), p["slack"]["ts"].as_str(), "the stored message is the posted one");
        assert!(
            posted[0].text.contains("erified") || posted[0].replies.iter().any(|r| r.contains("verified")),
            "the message tells the outcome: {:?}",
            posted[0]
        );
    }
    assert_eq!(messages.len(), WORKLOADS, "no other top-level message: {messages:#?}");

    let mut daemon = daemon;
    assert!(daemon.running() && daemon.healthy().await, "the daemon stays up");
    eprintln!(
        "slack outage: {} calls answered 429, {} answered 500; {} calls in all",
        throttled,
        failed,
        slack.calls().len()
    );
    drop(daemon);
    for ns in namespaces {
        ns.delete(&client).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

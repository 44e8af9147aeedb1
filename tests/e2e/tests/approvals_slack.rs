//! Approvals through Slack, end to end: the real control plane and nodesim,
//! proposal state in a real NATS JetStream KV bucket, the Slack Web API
//! stand-in recording what kubemedic sends, and signed button clicks POSTed
//! to `/slack/interactions` over HTTP.

mod approvals_support;

use std::time::Duration;

use approvals_support::*;
use kube::ResourceExt;
use kubemedic::approvals::{PatchType, ProposalState};
use testkit::slack::SlackStandin;

#[tokio::test]
async fn approve_applies_once_and_verifies_healthy() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-ok").await;
    e2e::scenario::apply(&client, &ns.name, "image-pull-bad-tag").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let approvals = approvals(nats_store().await, &client, Some(&slack), "kubemedic-0");
    let addr = serve(approvals.clone()).await;

    // Roll web back to the image whose pods ran (what the diagnostician proposes).
    let body =
        serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25.3"}]}}}});
    let p = proposal(&client, &ns.name, "web", PatchType::Strategic, body).await;
    let p = approvals.submit(p).await.unwrap();
    assert_state(&p, ProposalState::Pending);
    let at = p.slack.clone().expect("posted to Slack");
    let posted = slack.message(&at.ts).unwrap();
    assert!(posted.blocks.to_string().contains("kubemedic_approve"), "Approve button posted");

    assert_eq!(click(&addr, &p, APPROVER, true).await, 200);
    let done = settled(&approvals, &p.id, Duration::from_secs(120)).await;
    assert_state(&done, ProposalState::Verified);
    assert_eq!(done.decided_by(), Some(APPROVER));
    assert_eq!(approvals.mutations_sent(), 1, "one PATCH");

    let d = get_deployment(&client, &ns.name, "web").await;
    assert_eq!(image_of(&d), "nginx:1.25.3");
    assert_eq!(stamp_of(&d).as_deref(), Some(p.id.as_str()));
    assert!(e2e::wait::deployment_is_ready(&d), "rolled out: {:?}", d.status);
    let managers: Vec<String> = d.managed_fields().iter().filter_map(|m| m.manager.clone()).collect();
    assert!(managers.iter().any(|m| m == "kubemedic"), "field manager kubemedic: {managers:?}");

    // The Slack message says who decided and the outcome; the thread has the progress.
    let m = e2e::wait::until(Duration::from_secs(10), "Slack message updated", || async {
        slack.message(&at.ts).filter(|m| m.text.contains("verified"))
    })
    .await;
    assert!(m.text.contains(&format!("<@{APPROVER}>")), "{}", m.text);
    assert!(!m.blocks.to_string().contains("kubemedic_approve"), "buttons removed after the decision");
    assert!(m.replies.iter().any(|r| r.contains("Applied")), "{:?}", m.replies);
    assert!(m.replies.iter().any(|r| r.contains("verified")), "{:?}", m.replies);

    // A replayed click changes nothing and gets an ephemeral answer.
    assert_eq!(click(&addr, &p, APPROVER, true).await, 200);
    assert_eq!(approvals.mutations_sent(), 1);
    assert_eq!(approvals.get(&p.id).await.unwrap().history, done.history);
    assert!(slack.ephemerals().iter().any(|(u, t)| u == APPROVER && t.contains("already verified")));
}

#[tokio::test]
async fn reject_and_expiry_mutate_nothing() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-no").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let approvals = approvals(nats_store().await, &client, Some(&slack), "kubemedic-0");
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();

    let rejected = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();
    assert_eq!(click(&addr, &rejected, APPROVER, false).await, 200);
    let r = approvals.get(&rejected.id).await.unwrap();
    assert_state(&r, ProposalState::Rejected);
    let m = slack.message(&r.slack.unwrap().ts).unwrap();
    assert!(m.text.contains("Rejected by") && !m.blocks.to_string().contains("kubemedic_approve"), "{}", m.text);
    // Approving after the rejection changes nothing.
    assert_eq!(click(&addr, &rejected, APPROVER, true).await, 200);
    assert_state(&approvals.get(&rejected.id).await.unwrap(), ProposalState::Rejected);

    let mut p = proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await;
    p.expires_at = p.created_at.checked_add(Duration::from_secs(2)).unwrap();
    let expiring = approvals.submit(p).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = approvals.expire_due().await.unwrap();
    assert!(expired.iter().any(|e| e.id == expiring.id), "{expired:?}");
    assert_state(&approvals.get(&expiring.id).await.unwrap(), ProposalState::Expired);
    assert_eq!(click(&addr, &expiring, APPROVER, true).await, 200);
    assert_state(&approvals.get(&expiring.id).await.unwrap(), ProposalState::Expired);
    assert!(slack.ephemerals().iter().any(|(_, t)| t.contains("already expired")), "{:?}", slack.ephemerals());

    assert_eq!(approvals.mutations_sent(), 0);
    let after = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(after.resource_version(), before, "the Deployment was not touched");
    assert_eq!(image_of(&after), "nginx:1.27");
}

#[tokio::test]
async fn forged_or_stale_signatures_get_401_and_change_nothing() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-sig").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let approvals = approvals(nats_store().await, &client, Some(&slack), "kubemedic-0");
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();
    let calls_before = slack.calls().len();

    let body = click_body(&p, APPROVER, true);
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let addr = addr.clone();
        async move { http(&addr, "POST", "/slack/interactions", &headers, &body).await.0 }
    };
    // Signed with the wrong secret.
    assert_eq!(post(signed(&body, "not-the-secret", now()), body.clone()).await, 401);
    // Correct secret, but six minutes old (a replay).
    assert_eq!(post(signed(&body, SIGNING_SECRET, now() - 360), body.clone()).await, 401);
    // Correct secret, from the future.
    assert_eq!(post(signed(&body, SIGNING_SECRET, now() + 360), body.clone()).await, 401);
    // Valid signature of another body, body swapped.
    let other = click_body(&p, "U0SOMEONE", true);
    assert_eq!(post(signed(&other, SIGNING_SECRET, now()), body.clone()).await, 401);
    // No signature at all.
    assert_eq!(post(vec![("Content-Type", "application/x-www-form-urlencoded".into())], body.clone()).await, 401);

    assert_state(&approvals.get(&p.id).await.unwrap(), ProposalState::Pending);
    assert_eq!(slack.calls().len(), calls_before, "nothing was sent to Slack");
    assert_eq!(approvals.mutations_sent(), 0);
    assert_eq!(get_deployment(&client, &ns.name, "api").await.resource_version(), before);
}

#[tokio::test]
async fn non_approver_click_is_refused() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-who").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let approvals = approvals(nats_store().await, &client, Some(&slack), "kubemedic-0");
    let addr = serve(approvals.clone()).await;
    let before = get_deployment(&client, &ns.name, "api").await.resource_version();
    let p = approvals
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();

    assert_eq!(click(&addr, &p, "U0INTRUDER", true).await, 200);
    let eph = slack.ephemerals();
    assert!(eph.iter().any(|(u, t)| u == "U0INTRUDER" && t.contains("not on the approver list")), "{eph:?}");
    let still = approvals.get(&p.id).await.unwrap();
    assert_state(&still, ProposalState::Pending);
    assert_eq!(still.decided_by(), None);
    assert!(
        slack.message(&p.slack.unwrap().ts).unwrap().blocks.to_string().contains("kubemedic_approve"),
        "buttons stay"
    );
    assert_eq!(approvals.mutations_sent(), 0);
    assert_eq!(get_deployment(&client, &ns.name, "api").await.resource_version(), before);
}

#[tokio::test]
async fn two_replicas_receiving_the_same_click_apply_once() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "appr-two").await;
    deployment(&client, &ns.name, "api").await;
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    // Two replicas: separate connections to one KV bucket, separate HTTP listeners.
    let bucket = unique("kubemedic-e2e-two");
    let a = approvals(nats_store_named(&bucket).await, &client, Some(&slack), "kubemedic-0");
    let b = approvals(nats_store_named(&bucket).await, &client, Some(&slack), "kubemedic-1");
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b.clone()).await);
    let gen_before = get_deployment(&client, &ns.name, "api").await.metadata.generation.unwrap();
    let p = a
        .submit(proposal(&client, &ns.name, "api", PatchType::Strategic, image_patch("nginx:1.25.3")).await)
        .await
        .unwrap();

    // Slack retries and load balancers can deliver one click to both replicas at once.
    let body = click_body(&p, APPROVER, true);
    let headers = signed(&body, SIGNING_SECRET, now());
    let (ra, rb) = tokio::join!(
        http(&addr_a, "POST", "/slack/interactions", &headers, &body),
        http(&addr_b, "POST", "/slack/interactions", &headers, &body)
    );
    assert_eq!((ra.0, rb.0), (200, 200));
    let done = settled(&a, &p.id, Duration::from_secs(120)).await;
    assert_state(&done, ProposalState::Verified);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.mutations_sent() + b.mutations_sent(), 1, "exactly one PATCH across both replicas");
    assert_eq!(done.history.iter().filter(|t| t.to == ProposalState::Approved).count(), 1);
    assert_eq!(done.history.iter().filter(|t| t.to == ProposalState::Applying).count(), 1);
    let d = get_deployment(&client, &ns.name, "api").await;
    assert_eq!(d.metadata.generation.unwrap(), gen_before + 1, "one template change");
    assert_eq!(image_of(&d), "nginx:1.25.3");
    assert!(slack.ephemerals().iter().any(|(u, t)| u == APPROVER && t.contains("already")), "the loser says so");
}

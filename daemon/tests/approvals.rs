//! The approvals service's decision paths without a cluster: the client points
//! at a closed port and is never used unless a test applies. Apply and verify
//! are covered end to end in tests/e2e/tests/approvals_*.rs.
//!
//! An integration test (not beside the code) because it runs against the Slack
//! stand-in and the crash points of the test-only `testkit` crate.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kubemedic::approvals::slack::{self, Retry, Secret, SlackClient};
use kubemedic::approvals::{ApprovalError, Approvals, ApprovalsConfig, CrashPoint, Proposal, ProposalState, proposal};
use kubemedic::cluster::Cluster;
use kubemedic::store::Store;
use kubemedic::store::redb::RedbStore;
use testkit::Sample;
use testkit::slack::SlackStandin;

fn offline_cluster() -> Cluster {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    Cluster { name: "local".into(), client: kube::Client::try_from(config).unwrap(), scope: Default::default() }
}

struct Fixture {
    approvals: Arc<Approvals>,
    slack: SlackStandin,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let slack = SlackStandin::start("xoxb-t").await.unwrap();
    let client =
        SlackClient::new(&slack.base_url(), Secret::new("xoxb-t"), "C1", Duration::from_secs(5), Retry::default())
            .unwrap();
    let approvals = Arc::new(
        Approvals::new(store, offline_cluster(), Some(client), ApprovalsConfig::default())
            .with_replica("test-0")
            .with_audit(kubemedic::telemetry::audit::AuditLog::in_memory()),
    );
    Fixture { approvals, slack, _dir: dir }
}

fn proposal() -> Proposal {
    Proposal::test()
}

#[tokio::test]
async fn submit_stores_pending_and_posts_to_slack() {
    let f = fixture().await;
    let mut updates = f.approvals.subscribe();
    let p = f.approvals.submit(proposal()).await.unwrap();
    assert_eq!(p.state, ProposalState::Pending);
    let at = p.slack.clone().expect("slack ref stored");
    let stored = f.approvals.get(&p.id).await.unwrap();
    assert_eq!(stored.slack.as_ref(), Some(&at));
    let msg = f.slack.message(&at.ts).unwrap();
    assert!(msg.blocks.to_string().contains(slack::blocks::APPROVE_ACTION));
    assert_eq!(updates.recv().await.unwrap().state, ProposalState::Proposed);
    assert_eq!(updates.recv().await.unwrap().state, ProposalState::Pending);
}

#[tokio::test]
async fn submit_refuses_unpinned_or_started_proposals() {
    let f = fixture().await;
    let mut p = proposal();
    p.target.resource_version = None;
    assert!(matches!(f.approvals.submit(p).await, Err(ApprovalError::Invalid(_))));
    let mut p = proposal();
    p.state = ProposalState::Approved;
    assert!(matches!(f.approvals.submit(p).await, Err(ApprovalError::Invalid(_))));
}

#[tokio::test]
async fn reject_is_final_and_updates_the_message() {
    let f = fixture().await;
    let p = f.approvals.submit(proposal()).await.unwrap();
    let r = f.approvals.decide(&p.id, "U1", false).await.unwrap();
    assert_eq!(r.state, ProposalState::Rejected);
    assert_eq!(r.decided_by(), Some("U1"));
    let again = f.approvals.decide(&p.id, "U1", true).await.unwrap_err();
    assert!(matches!(again, ApprovalError::AlreadyDecided { state: ProposalState::Rejected, .. }), "{again}");
    let msg = f.slack.message(&p.slack.unwrap().ts).unwrap();
    assert!(msg.text.contains("Rejected by"), "{}", msg.text);
    assert!(!msg.blocks.to_string().contains(slack::blocks::APPROVE_ACTION), "buttons removed");
}

#[tokio::test]
async fn only_listed_approvers_decide() {
    let f = fixture().await;
    let p = f.approvals.submit(proposal()).await.unwrap();
    let err = f.approvals.record_decision(&p.id, "U666", true, "slack").await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotAllowed { .. }));
    assert_eq!(f.approvals.get(&p.id).await.unwrap().state, ProposalState::Pending);
}

#[tokio::test]
async fn concurrent_decisions_have_one_winner() {
    let f = fixture().await;
    let mut p = proposal();
    p.approvers = vec![];
    let p = f.approvals.submit(p).await.unwrap();
    // Reject from many "replicas" at once (rejects do not touch the cluster).
    let results = futures::future::join_all((0..6).map(|i| {
        let a = f.approvals.clone();
        let id = p.id.clone();
        async move { a.record_decision(&id, &format!("user{i}"), false, "test").await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(ApprovalError::AlreadyDecided { .. }))));
    let stored = f.approvals.get(&p.id).await.unwrap();
    let decisions = stored.history.iter().filter(|t| t.to == ProposalState::Rejected).count();
    assert_eq!(decisions, 1);
}

#[tokio::test]
async fn expiry() {
    let f = fixture().await;
    let mut p = proposal();
    // Wide enough that a submit on a loaded machine (a redb write and a Slack post) ends before it.
    p.expires_at = Timestamp::now() + SignedDuration::from_secs(3);
    let p = f.approvals.submit(p).await.unwrap();
    assert!(f.approvals.expire_due().await.unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let late = f.approvals.record_decision(&p.id, "U1", true, "slack").await.unwrap_err();
    assert!(matches!(late, ApprovalError::Expired(_)), "{late}");
    assert_eq!(f.approvals.get(&p.id).await.unwrap().state, ProposalState::Expired);
    assert!(f.approvals.expire_due().await.unwrap().is_empty(), "expired once");
    let msg = f.slack.message(&p.slack.unwrap().ts).unwrap();
    assert!(msg.text.contains("Expired"), "{}", msg.text);
}

#[tokio::test]
async fn crash_after_decision_leaves_approved_for_resume() {
    let f = fixture().await;
    let p = f.approvals.submit(proposal()).await.unwrap();
    f.approvals.crash_at(Some(CrashPoint::AfterDecision));
    let err = f.approvals.decide(&p.id, "U1", true).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Crashed(CrashPoint::AfterDecision)));
    assert_eq!(f.approvals.get(&p.id).await.unwrap().state, ProposalState::Approved);
}

/// A replica that died mid-apply is replaced by one with another name: its `applying`
/// proposal is taken over on the timer once it has been quiet for longer than a whole
/// verification, while a recent one (a live replica at work) is left alone.
#[tokio::test]
async fn abandoned_applying_proposals_are_taken_over_on_the_timer() {
    let f = fixture().await;
    let store = f.approvals.store();
    let applying = |id: &str, ago: SignedDuration| {
        let mut p = proposal();
        p.id = id.to_owned();
        p.state = ProposalState::Applying;
        p.history.push(proposal::Transition {
            from: ProposalState::Approved,
            to: ProposalState::Applying,
            at: Timestamp::now() - ago,
            by: "kubemedic-old-pod".into(),
            note: String::new(),
        });
        p
    };
    store.create_proposal(&applying("abandoned", SignedDuration::from_hours(1))).await.unwrap();
    store.create_proposal(&applying("busy", SignedDuration::from_secs(5))).await.unwrap();

    let taken = f.approvals.take_over_abandoned().await.unwrap();
    assert_eq!(taken.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["abandoned"]);
    let abandoned = f.approvals.get("abandoned").await.unwrap();
    assert!(
        abandoned.history.iter().any(|t| t.by == "test-0" && t.note == "resumed after a restart"),
        "claimed by this replica: {:?}",
        abandoned.history
    );
    // This offline test cluster cannot be read, so the claimed apply ends failed, not stuck.
    assert_ne!(abandoned.state, ProposalState::Applying);
    let busy = f.approvals.get("busy").await.unwrap();
    assert_eq!(busy.state, ProposalState::Applying);
    assert_eq!(busy.history.len(), 1, "a live replica's work is not touched");
}

#[tokio::test]
async fn identities_compare_case_insensitively_and_unmapped_slack_users_cannot_approve_a_persons_proposal() {
    use kubemedic::approvals::Decision;
    let f = fixture().await;
    // A person's proposal (an MCP user), open to any approver.
    let mine = Proposal { requested_by: "Alice (mcp)".into(), approvers: Vec::new(), ..proposal() };
    let p = f.approvals.submit(mine).await.unwrap();
    let decide = |user: &'static str, identity: &'static str| Decision {
        user,
        identity,
        approve: true,
        via: "slack",
        digest: p.digest.as_deref(),
    };
    // The requester under another spelling is still the requester.
    let err = f.approvals.record(&p.id, &decide("U1", "alice")).await.unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    // A Slack user known only by their Slack id could be Alice: refused, nothing changes.
    let err = f.approvals.record(&p.id, &decide("U2", "slack:U2")).await.unwrap_err();
    assert!(matches!(err, ApprovalError::IdentityUnknown { .. }), "{err}");
    assert_eq!(f.approvals.get(&p.id).await.unwrap().state, ProposalState::Pending);
    // A mapped identity that is someone else approves.
    let ok = f.approvals.record(&p.id, &decide("U3", "bob")).await.unwrap();
    assert_eq!(ok.state, ProposalState::Approved);

    // A rule's proposal may be approved by an unmapped Slack user, and approver lists match
    // identities as well as Slack ids, whatever the case.
    let ruled = Proposal { requested_by: "rule:crashloop".into(), approvers: vec!["Carol".into()], ..proposal() };
    let q = f.approvals.submit(ruled).await.unwrap();
    let by_id = Decision { user: "U4", identity: "slack:U4", approve: true, via: "slack", digest: q.digest.as_deref() };
    assert!(matches!(f.approvals.record(&q.id, &by_id).await.unwrap_err(), ApprovalError::NotAllowed { .. }));
    let carol = Decision { user: "U5", identity: "carol", approve: true, via: "slack", digest: q.digest.as_deref() };
    assert_eq!(f.approvals.record(&q.id, &carol).await.unwrap().state, ProposalState::Approved);
}

#[tokio::test]
async fn a_proposal_rewritten_in_the_store_before_anyone_saw_it_cannot_be_approved() {
    use kubemedic::approvals::Decision;
    let f = fixture().await;
    let p = f.approvals.submit(proposal()).await.unwrap();
    // A writer to the store swaps the change and everything shown about it, and recomputes the
    // digest, so a card or the CLI would show the new change consistently.
    let store = f.approvals.store().clone();
    let current = store.get_proposal(&p.id).await.unwrap().unwrap();
    let mut evil = current.value.clone();
    evil.action = proposal::Action::Delete;
    evil.diff = "(a harmless-looking diff)".into();
    evil.digest = Some(kubemedic::model::digest::digest(&evil));
    store.update_proposal(&evil, current.revision).await.unwrap();
    let approve = Decision { user: "U1", identity: "U1", approve: true, via: "http", digest: evil.digest.as_deref() };
    let err = f.approvals.record(&p.id, &approve).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Tampered { .. }), "{err}");
    assert_eq!(f.approvals.get(&p.id).await.unwrap().state, ProposalState::Pending);
    assert_eq!(f.approvals.mutations_sent(), 0);
}

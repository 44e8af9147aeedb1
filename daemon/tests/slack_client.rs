//! The Slack Web API client against the Slack stand-in: retries, API errors,
//! updates and thread replies, and the drift summary it posts.
//!
//! An integration test (not beside the code) because the stand-in lives in the
//! test-only `testkit` crate.

use std::time::Duration;

use kubemedic::approvals::slack::{Retry, Secret, SlackClient, SlackError};
use kubemedic::drift::job::DriftNotifier;
use serde_json::json;
use testkit::slack::{Reply, SlackStandin};

fn client(base: &str, retries: u32) -> SlackClient {
    let retry = Retry { max_retries: retries, base: Duration::from_millis(10), cap: Duration::from_secs(2) };
    SlackClient::new(base, Secret::new("xoxb-test"), "C1", Duration::from_secs(5), retry).unwrap()
}

#[tokio::test]
async fn honours_retry_after_and_retries_5xx() {
    let slack = SlackStandin::start("xoxb-test").await.unwrap();
    slack.script([Reply::TooManyRequests { retry_after: 1 }, Reply::Status(503), Reply::Status(502)]);
    let c = client(&slack.base_url(), 4);
    let started = std::time::Instant::now();
    let at = c.post_message("hello", None, None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    assert_eq!(at.channel, "C1");
    let calls = slack.calls();
    assert_eq!(calls.len(), 4, "1 throttled + 2 failed + 1 ok");
    assert!(calls.iter().all(|c| c.method == "chat.postMessage" && c.body["text"] == "hello"));
    assert_eq!(slack.messages().len(), 1, "the message was posted once");
}

#[tokio::test]
async fn gives_up_and_reports_api_errors() {
    let slack = SlackStandin::start("xoxb-test").await.unwrap();
    slack.script([Reply::Status(500), Reply::Status(500)]);
    let err = client(&slack.base_url(), 1).post_message("x", None, None).await.unwrap_err();
    assert!(matches!(err, SlackError::Status { status: 500, attempts: 2, .. }), "{err}");

    let wrong =
        SlackClient::new(&slack.base_url(), Secret::new("xoxb-wrong"), "C1", Duration::from_secs(5), Retry::default())
            .unwrap();
    let err = wrong.post_message("x", None, None).await.unwrap_err();
    assert_eq!(err.to_string(), "Slack chat.postMessage failed: invalid_auth");
}

#[tokio::test]
async fn update_and_thread_reply() {
    let slack = SlackStandin::start("xoxb-test").await.unwrap();
    let c = client(&slack.base_url(), 0);
    let at = c.post_message("proposal", Some(json!([])), None).await.unwrap();
    c.update_message(&at, "approved", json!([])).await.unwrap();
    c.reply(&at, "verified").await.unwrap();
    c.post_ephemeral("C1", "U9", "not allowed").await.unwrap();
    let m = slack.message(&at.ts).unwrap();
    assert_eq!(m.text, "approved");
    assert_eq!(m.replies, vec!["verified".to_string()]);
    assert_eq!(slack.ephemerals(), vec![("U9".to_string(), "not allowed".to_string())]);
}

#[tokio::test]
async fn slack_client_posts_the_summary() {
    let standin = SlackStandin::start("xoxb-drift").await.unwrap();
    let client = SlackClient::new(
        &standin.base_url(),
        Secret::new("xoxb-drift"),
        "C1",
        Duration::from_secs(5),
        Retry::default(),
    )
    .unwrap();
    let notifier: &dyn DriftNotifier = &client;
    notifier.post_drift_summary("3 objects drifted").await.unwrap();
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(calls[0].body["text"], "3 objects drifted");
    assert_eq!(calls[0].body["channel"], "C1");
}

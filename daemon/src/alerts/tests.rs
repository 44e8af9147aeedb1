use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::model::signal::{SignalStatus, WorkloadRef};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn state(config: AlertsConfig, capacity: usize) -> (AlertsState, mpsc::Receiver<Signal>) {
    let (tx, rx) = mpsc::channel(capacity);
    (AlertsState::new("local", config, tx), rx)
}

async fn post(state: &AlertsState, body: impl Into<Body>, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post(PATH).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router(state.clone()).oneshot(req.body(body.into()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn drain(rx: &mut mpsc::Receiver<Signal>) -> Vec<Signal> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test]
async fn real_bodies_become_signals() {
    let (st, mut rx) = state(AlertsConfig::default(), 64);
    let (status, body) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    let signals = drain(&mut rx);
    assert_eq!(signals.len(), 2);
    assert!(signals.iter().all(|s| s.status == SignalStatus::Firing && s.reason == "KubePodCrashLooping"));
    assert_eq!(signals[0].subject(), &WorkloadRef::new("Deployment", "shop", "cart"));
    assert_eq!(signals[1].subject(), &WorkloadRef::new("Deployment", "shop", "checkout"));
    assert_eq!(signals[1].severity.as_deref(), Some("warning"));

    // The group is "firing" but the first alert is resolved: status is read per alert.
    let (status, body) = post(&st, fixture("alertmanager-webhook-resolved-mixed.json"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["firing"].as_u64(), body["resolved"].as_u64()), (Some(1), Some(1)));
    let signals = drain(&mut rx);
    assert_eq!(signals[0].status, SignalStatus::Resolved);
    assert_eq!(signals[0].subject().name, "cart");
    assert_eq!(signals[1].status, SignalStatus::Firing);

    let (status, _) = post(&st, fixture("alertmanager-webhook-from-prometheus.json"), None).await;
    assert_eq!(status, StatusCode::OK);
    let s = drain(&mut rx).remove(0);
    assert_eq!((s.reason.as_str(), s.severity.as_deref()), ("RemediatorTestAlert", Some("critical")));
    assert_eq!(s.subject(), &WorkloadRef::new("Deployment", "shop", "checkout"));
    assert_eq!(st.stats.alerts_total.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn malformed_bodies_are_refused_clearly() {
    let (st, mut rx) = state(AlertsConfig::default(), 64);
    let cases = [
        ("{not json", "malformed Alertmanager webhook"),
        ("[]", "malformed Alertmanager webhook"),
        (r#"{"version":"4"}"#, "missing field `alerts`"),
        (r#"{"version":"3","alerts":[]}"#, "unsupported webhook payload version \"3\""),
        ("", "malformed Alertmanager webhook"),
    ];
    for (body, needle) in cases {
        let (status, resp) = post(&st, body.to_owned(), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(resp["error"].as_str().unwrap().contains(needle), "{body}: {resp}");
    }
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn one_bad_alert_does_not_cost_the_others() {
    let (st, mut rx) = state(AlertsConfig::default(), 64);
    let mut body: serde_json::Value = serde_json::from_str(&fixture("alertmanager-webhook.json")).unwrap();
    let alerts = body["alerts"].as_array_mut().unwrap();
    alerts.insert(1, serde_json::json!({"status": "firing", "labels": {"severity": "x"}}));
    alerts.insert(0, serde_json::json!({"status": "exploded", "labels": {"alertname": "A"}}));
    let (status, resp) = post(&st, body.to_string(), None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["accepted"], 2);
    let rejected = resp["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 0);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("unknown variant `exploded`"), "{resp}");
    assert!(rejected[1]["reason"].as_str().unwrap().contains("no alertname"), "{resp}");
    assert_eq!(drain(&mut rx).len(), 2);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let config = AlertsConfig { max_body_bytes: 512, ..AlertsConfig::default() };
    let (st, mut rx) = state(config, 64);
    let (status, resp) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp["error"].as_str().unwrap().contains("max_body_bytes (512 bytes)"), "{resp}");
    // Without a Content-Length (streamed), too.
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 100]))));
    let (status, _) = post(&st, Body::from_stream(chunks), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(drain(&mut rx).is_empty());
    assert_eq!(st.stats.rejected_total.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn bearer_token_is_checked_against_its_hash() {
    let token = "s3cret-token";
    let config = AlertsConfig { bearer_token_sha256: Some(hex::encode(Sha256::digest(token))), ..Default::default() };
    config.validate().unwrap();
    let (st, mut rx) = state(config, 64);
    let (status, _) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&st, fixture("alertmanager-webhook.json"), Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(drain(&mut rx).is_empty());
    let (status, _) = post(&st, fixture("alertmanager-webhook.json"), Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(drain(&mut rx).len(), 2);
    let bad = AlertsConfig { bearer_token_sha256: Some("abc".into()), ..Default::default() };
    assert!(bad.validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn saturated_intake_answers_503_for_a_retry() {
    let (st, mut rx) = state(AlertsConfig::default(), 1);
    let (status, resp) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{resp}");
    // The first alert was taken; the retry delivers both (the tracker folds the repeat).
    assert_eq!(drain(&mut rx).len(), 1);
    let mut rx2 = rx;
    let consumer = tokio::spawn(async move {
        let mut n = 0;
        while rx2.recv().await.is_some() {
            n += 1;
            if n == 2 {
                break;
            }
        }
        n
    });
    let (status, _) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(consumer.await.unwrap(), 2);
}

#[tokio::test]
async fn out_of_scope_namespaces_are_skipped() {
    let (mut st, mut rx) = state(AlertsConfig::default(), 64);
    st.scope = Some(Scope { namespaces: vec!["other".into()], exclude: vec![], kinds: vec![] });
    let (status, resp) = post(&st, fixture("alertmanager-webhook.json"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["out_of_scope"], 2);
    assert!(drain(&mut rx).is_empty());
}

fn webhook(alerts: &[serde_json::Value]) -> String {
    serde_json::json!({"version": "4", "receiver": "r", "status": "firing", "groupKey": "g", "alerts": alerts})
        .to_string()
}

fn pod_alert(ns: &str, pod: &str, container: &str) -> serde_json::Value {
    serde_json::json!({"status": "firing", "labels": {"alertname": "CPUThrottlingHigh", "namespace": ns,
        "pod": pod, "container": container}, "annotations": {}, "startsAt": "2026-12-04T16:00:00Z"})
}

#[tokio::test]
async fn pods_the_stores_do_not_know_are_resolved_through_owner_references() {
    use serde_json::json;
    let api = testkit::fakeapi::FakeApi::default();
    let owner = |kind: &str, name: &str| {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u",
        "controller": true}])
    };
    api.add(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "shop", "ownerReferences": owner("StatefulSet", "db")}}))
        .add(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-77f7x2kq8-x2k4q",
            "namespace": "shop", "ownerReferences": owner("DaemonSet", "node-agent")}}))
        .add(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": "hidden", "ownerReferences": owner("StatefulSet", "db")}}));
    let (mut st, mut rx) = state(AlertsConfig::default(), 64);
    st.client = Some(api.client());
    st.scope = Some(Scope { namespaces: vec!["shop".into()], ..Scope::default() });
    let body = webhook(&[
        pod_alert("shop", "db-0", "postgres"),
        pod_alert("shop", "db-0", "exporter"),
        // The Deployment naming convention would call this Deployment "agent".
        pod_alert("shop", "agent-77f7x2kq8-x2k4q", "agent"),
        pod_alert("shop", "gone-7d9f8b6c5-x2k4q", "web"),
        pod_alert("hidden", "db-0", "postgres"),
    ]);
    let (status, resp) = post(&st, body, None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let subjects: Vec<WorkloadRef> = drain(&mut rx).iter().map(|s| s.subject().clone()).collect();
    assert_eq!(
        subjects,
        [
            WorkloadRef::new("StatefulSet", "shop", "db"),
            WorkloadRef::new("StatefulSet", "shop", "db"),
            WorkloadRef::new("DaemonSet", "shop", "node-agent"),
            // Not in the apiserver either: the naming convention is the last resort.
            WorkloadRef::new("Deployment", "shop", "gone"),
        ]
    );
    assert_eq!(resp["out_of_scope"], 1);
    // One read per pod and webhook, none outside the scope.
    let reads = api.requests();
    assert_eq!(reads.iter().filter(|r| r.ends_with("/pods/db-0")).count(), 1, "{reads:?}");
    assert!(reads.iter().all(|r| !r.contains("/namespaces/hidden/")), "{reads:?}");
}

#[tokio::test]
async fn the_stores_answer_before_the_apiserver() {
    struct Stores;
    impl OwnerLookup for Stores {
        fn owner_of_pod(&self, _: &str, pod: &str) -> Option<WorkloadRef> {
            (pod == "db-0").then(|| WorkloadRef::new("StatefulSet", "shop", "db"))
        }
    }
    let api = testkit::fakeapi::FakeApi::default();
    let (mut st, mut rx) = state(AlertsConfig::default(), 8);
    st.client = Some(api.client());
    st.owners = Some(Arc::new(Stores));
    let (status, _) = post(&st, webhook(&[pod_alert("shop", "db-0", "postgres")]), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(drain(&mut rx)[0].subject(), &WorkloadRef::new("StatefulSet", "shop", "db"));
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[tokio::test(start_paused = true)]
async fn a_slow_apiserver_costs_a_webhook_at_most_the_lookup_budget() {
    // An apiserver that never answers.
    let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| {
        std::future::pending::<Result<http::Response<kube::client::Body>, std::convert::Infallible>>()
    });
    let (mut st, mut rx) = state(AlertsConfig::default(), 8);
    st.client = Some(kube::Client::new(svc, "default"));
    let started = tokio::time::Instant::now();
    let body = webhook(&[pod_alert("shop", "web-7d9f8b6c5-x2k4q", "web"), pod_alert("shop", "db-0", "postgres")]);
    let (status, _) = post(&st, body, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() <= OWNER_LOOKUP_BUDGET + Duration::from_millis(100), "{:?}", started.elapsed());
    // Both alerts taken, by the naming convention where it applies.
    let subjects: Vec<WorkloadRef> = drain(&mut rx).iter().map(|s| s.subject().clone()).collect();
    assert_eq!(subjects, [WorkloadRef::new("Deployment", "shop", "web"), WorkloadRef::new("Pod", "shop", "db-0")]);
}

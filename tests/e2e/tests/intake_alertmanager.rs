//! A real Alertmanager (Debian's `prometheus-alertmanager`) with a webhook
//! receiver pointing at kubemedic's receiver: alerts posted to its API are
//! grouped, delivered with a bearer token, folded into incidents, and their
//! resolution closes the incident. Bad bodies get clear errors and the
//! receiver keeps taking good ones.

mod intake_common;

use std::process::{Child, Command};
use std::time::Duration;

use intake_common::{Intake, repo_root, state_dir};
use kubemedic::alerts::{self, AlertsConfig, AlertsState};
use kubemedic::incident::IncidentStatus;
use kubemedic::signal::WorkloadRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const TOKEN: &str = "e2e-webhook-token-7f3a";

/// Kills the Alertmanager when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on 127.0.0.1; returns (status, body).
async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn alert(name: &str, labels: serde_json::Value, ends_in: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let ts = |secs: i64| k8s_openapi::jiff::Timestamp::from_second(secs).unwrap().to_string();
    let mut l = labels;
    l["alertname"] = name.into();
    serde_json::json!({
        "labels": l,
        "annotations": {"summary": format!("{name} from the e2e test")},
        "startsAt": ts(now - 30),
        "endsAt": ts(now + ends_in),
    })
}

#[tokio::test]
async fn alertmanager_delivers_alerts_that_become_incidents() {
    assert!(
        std::path::Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} missing: apt-get install prometheus-alertmanager"
    );
    let intake = Intake::without_watch(&repo_root().join("rules")).await;
    // kubemedic's receiver on 127.0.0.1, bearer token stored as its SHA-256.
    let config = AlertsConfig { bearer_token_sha256: Some(alerts::hash_token(TOKEN)), ..AlertsConfig::default() };
    config.validate().unwrap();
    let state = AlertsState::new("e2e", config, intake.signals.clone());
    let stats = state.stats.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_port = listener.local_addr().unwrap().port();
    tokio::spawn(alerts::serve(listener, state, intake.shutdown.child_token()));

    // Alertmanager with a temp config, clustering off, webhook receiver → kubemedic.
    let dir = state_dir("alertmanager");
    let am_port = e2e::daemon::free_port();
    let cfg = format!(
        r#"route:
  receiver: kubemedic
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: kubemedic
    webhook_configs:
      - url: http://127.0.0.1:{receiver_port}{path}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"#,
        path = alerts::PATH
    );
    std::fs::write(dir.join("alertmanager.yml"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let _am = Proc(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start alertmanager"),
    );
    let mut ready = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", am_port)).await.is_ok()
            && http(am_port, "GET", "/-/ready", &[], b"").await.0 == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let am_log = || std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
    assert!(ready, "alertmanager not ready:\n{}", am_log());

    // A storm: 40 crash-looping pods of one Deployment (one incident), plus a replicas mismatch
    // of another Deployment (a second incident), plus Watchdog (no incident).
    let mut batch = Vec::new();
    for i in 0..40 {
        let pod = format!("checkout-7d9f8b6c5-{:05}", i);
        batch.push(alert(
            "KubePodCrashLooping",
            serde_json::json!({"namespace": "shop", "pod": pod, "container": "checkout", "severity": "warning"}),
            300,
        ));
    }
    batch.push(alert(
        "KubeDeploymentReplicasMismatch",
        serde_json::json!({"namespace": "shop", "deployment": "api", "severity": "warning"}),
        300,
    ));
    // CPU throttling of a third Deployment's container: a workload diagnosis that may propose.
    batch.push(alert(
        "CPUThrottlingHigh",
        serde_json::json!({"namespace": "shop", "pod": "pricing-6d4cf56db6-x2k4q", "container": "pricer",
            "severity": "info"}),
        300,
    ));
    batch.push(alert("Watchdog", serde_json::json!({"severity": "none"}), 300));
    let body = serde_json::to_vec(&batch).unwrap();
    let (status, resp) = http(am_port, "POST", "/api/v2/alerts", &[("Content-Type", "application/json")], &body).await;
    assert_eq!(status, 200, "alertmanager refused the alerts: {resp}");

    let checkout = WorkloadRef::new("Deployment", "shop", "checkout");
    let crash = intake.wait_incident(Duration::from_secs(60), "for shop/checkout", |i| i.workload == checkout).await;
    assert_eq!((crash.reason.as_str(), crash.rule.as_str()), ("KubePodCrashLooping", "alert-pod-crash-looping"));
    let api = WorkloadRef::new("Deployment", "shop", "api");
    let mismatch = intake.wait_incident(Duration::from_secs(60), "for shop/api", |i| i.workload == api).await;
    assert_eq!(mismatch.reason, "KubeDeploymentReplicasMismatch");
    // Every alert of the storm arrived and folded into the one incident.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let count = intake.incidents().await.iter().find(|i| i.id == crash.id).map_or(0, |i| i.count);
        if count >= 40 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {count} of 40 alerts folded\n{}", am_log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let pricing = WorkloadRef::new("Deployment", "shop", "pricing");
    let throttled = intake.wait_incident(Duration::from_secs(60), "for shop/pricing", |i| i.workload == pricing).await;
    assert_eq!(throttled.rule, "alert-cpu-throttling");
    assert!(throttled.allow_mutations, "a throttled container's limit may be raised within policy");
    // The diagnosis starts from the alert: its labels name the pod and the container.
    let request = kubemedic::agent::Request::from(&throttled);
    let signal = request.signal.expect("the request carries the alert");
    assert_eq!(signal.labels.get("container").map(String::as_str), Some("pricer"));
    assert_eq!(signal.object, WorkloadRef::new("Pod", "shop", "pricing-6d4cf56db6-x2k4q"));
    let all = intake.incidents().await;
    assert_eq!(all.len(), 3, "Watchdog must not open an incident: {all:#?}");
    assert_eq!(intake.queue.depth().await.unwrap(), 3, "the three incidents were handed to the agent queue");

    // Resolve the mismatch: Alertmanager sends it with status "resolved" and the incident closes.
    let resolved = alert(
        "KubeDeploymentReplicasMismatch",
        serde_json::json!({"namespace": "shop", "deployment": "api", "severity": "warning"}),
        -1,
    );
    let body = serde_json::to_vec(&[resolved]).unwrap();
    let (status, _) = http(am_port, "POST", "/api/v2/alerts", &[("Content-Type", "application/json")], &body).await;
    assert_eq!(status, 200);
    intake
        .wait_incident(Duration::from_secs(60), "resolved by Alertmanager", |i| {
            i.id == mismatch.id && i.status == IncidentStatus::Resolved
        })
        .await;
    assert_eq!(intake.incidents().await.iter().find(|i| i.id == crash.id).unwrap().status, IncidentStatus::Open);
    assert!(stats.webhooks_total.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(stats.rejected_total.load(std::sync::atomic::Ordering::Relaxed), 0);
    intake.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad input straight at the receiver: clear errors, nothing lost, still serving.
#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_receiver_keeps_working() {
    let intake = Intake::without_watch(&repo_root().join("rules")).await;
    let config = AlertsConfig { max_body_bytes: 64 * 1024, ..AlertsConfig::default() };
    let state = AlertsState::new("e2e", config, intake.signals.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(alerts::serve(listener, state, intake.shutdown.child_token()));
    let json = [("Content-Type", "application/json")];

    let (status, body) = http(port, "POST", alerts::PATH, &json, b"{\"version\":\"4\",\"alerts\":[").await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed Alertmanager webhook"), "{body}");
    let (status, body) = http(port, "POST", alerts::PATH, &json, br#"{"version":"3","alerts":[]}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("unsupported webhook payload version"), "{body}");
    let huge = vec![b' '; 100 * 1024];
    let (status, body) = http(port, "POST", alerts::PATH, &json, &huge).await;
    assert_eq!(status, 413);
    assert!(body.contains("max_body_bytes"), "{body}");

    // A real body (from a real Alertmanager) with one broken alert spliced in: the good ones count.
    let fixture = std::fs::read_to_string(repo_root().join("tests/fixtures/alertmanager-webhook.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    v["alerts"].as_array_mut().unwrap().push(serde_json::json!({"status": "firing", "labels": {}}));
    let (status, body) = http(port, "POST", alerts::PATH, &json, v.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let resp: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resp["accepted"], 2);
    assert_eq!(resp["rejected"][0]["index"], 2);
    let cart = WorkloadRef::new("Deployment", "shop", "cart");
    intake.wait_incident(Duration::from_secs(10), "for shop/cart", |i| i.workload == cart).await;
    // Both good alerts become incidents (the tracker stores them one after the other).
    e2e::wait::until(Duration::from_secs(10), "two incidents from the two good alerts", || async {
        (intake.incidents().await.len() == 2).then_some(())
    })
    .await;
    intake.stop().await;
}

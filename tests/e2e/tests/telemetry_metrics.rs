//! `/metrics` passes `promtool check metrics` (Debian prometheus) and a real
//! Prometheus, started here on 127.0.0.1 with a temporary config, scrapes it:
//! the target is `up` and a kubemedic series can be queried.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubemedic::telemetry::{Metrics, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Minimal HTTP/1.1 GET on loopback: (status, body).
async fn http_get(port: u16, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{accept}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

async fn serve_metrics() -> (u16, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    metrics.observe_tool("get_resource", "ok", 0.012);
    metrics.observe_tool("apply_proposal", "error", 2.5);
    metrics.incident("CrashLoopBackOff");
    metrics.proposal_state("pending");
    metrics.proposals_in_state("pending", 1);
    metrics.queue_depth(2);
    metrics.dropped_signal("queue_full");
    metrics.slack_error("rate_limited");
    metrics.drift_run("ok", Some(3));
    metrics.set_leader(true);
    metrics.signal_handled(0.0008);
    metrics.watch_delivered(0.004);
    metrics.diagnosis_finished("proposal", 0.2);
    metrics.incident_waited(1.0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(kubemedic::telemetry::health::serve(listener, metrics.clone(), Readiness::new(), cancel));
    (port, metrics)
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    let (port, _metrics) = serve_metrics().await;
    let (status, body) = http_get(port, "/metrics", None).await;
    assert_eq!(status, 200);
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus)");
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).await.unwrap();
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- body:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The OpenMetrics form (what Prometheus asks for) carries the same series.
    let (status, om) = http_get(port, "/metrics", Some("application/openmetrics-text;version=1.0.0")).await;
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("kubemedic_incidents_total{reason=\"CrashLoopBackOff\"} 1"), "{om}");
    assert_eq!(http_get(port, "/healthz", None).await.0, 200);
    assert_eq!(http_get(port, "/readyz", None).await.0, 200);
}

#[tokio::test]
async fn prometheus_scrapes_metrics() {
    let (port, metrics) = serve_metrics().await;
    let dir = std::env::temp_dir().join(e2e::unique_name("kubemedic-prom"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: kubemedic\n  \
             static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let prom_port = e2e::daemon::free_port();
    let mut prom = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian prometheus)");

    // Wait until Prometheus reports the target up.
    let start = Instant::now();
    let target = loop {
        if let Ok(Some(code)) = prom.try_wait() {
            panic!("prometheus exited with {code}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", prom_port)).await.is_ok() {
            let (status, body) = http_get(prom_port, "/api/v1/targets", None).await;
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let active = v["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
                if let Some(t) = active.iter().find(|t| t["health"] == "up") {
                    break t.clone();
                }
                if start.elapsed() > Duration::from_secs(40) {
                    panic!("target never up: {body}");
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(40), "prometheus did not start");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(target["scrapeUrl"], format!("http://127.0.0.1:{port}/metrics"), "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    // A value that changes after start-up is seen by a later scrape.
    metrics.queue_depth(7);
    let query = "/api/v1/query?query=kubemedic_queue_depth";
    let start = Instant::now();
    loop {
        let (_, body) = http_get(prom_port, query, None).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["data"]["result"][0]["value"][1] == "7" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "kubemedic_queue_depth never 7: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, body) = http_get(prom_port, "/api/v1/query?query=kubemedic_incidents_total", None).await;
    assert!(body.contains("CrashLoopBackOff"), "{body}");

    prom.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `count` and `sum` of `kubemedic_watch_delivery_seconds`.
fn delivery(metrics: &Metrics) -> (u64, f64) {
    let text = metrics.encode();
    let value = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or_else(|| panic!("{name}: {text}"))
    };
    (value("kubemedic_watch_delivery_seconds_count ") as u64, value("kubemedic_watch_delivery_seconds_sum "))
}

/// A Warning Event about a pod in `ns`; `stamped`: with `eventTime` (and the fields the apiserver
/// then requires), as nodesim --event-time and events.k8s.io reporters write them.
fn warning(ns: &str, type_: &str, stamped: bool) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
    let now = jiff::Timestamp::now();
    Event {
        metadata: kube::api::ObjectMeta { generate_name: Some("web.".into()), ..Default::default() },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(ns.into()),
            name: Some("web-1".into()),
            ..Default::default()
        },
        type_: Some(type_.into()),
        reason: Some("Failed".into()),
        message: Some("Failed to pull image".into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: stamped.then(|| MicroTime(jiff::Timestamp::now())),
        action: stamped.then(|| "Pulling".into()),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some("sim-node-0".into()),
        ..Default::default()
    }
}

/// kubemedic_watch_delivery_seconds against the real apiserver: a stamped Warning Event is
/// observed once, with its delay from the stamp to the watch; a stamped Normal event and a Warning
/// with only the legacy (whole-second) timestamps are not observed.
#[tokio::test]
async fn watch_delivery_is_observed_for_stamped_warning_events() {
    use kube::api::{Api, PostParams};
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "delivery").await;
    let metrics = Arc::new(Metrics::new());
    let scope = kubemedic::cluster::Scope { namespaces: vec![ns.name.clone()], exclude: Vec::new(), kinds: Vec::new() };
    let cluster = kubemedic::cluster::Cluster { name: "e2e".into(), client: client.clone(), scope };
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = kubemedic::watch::WatchConfig::default();
    let handle = kubemedic::watch::spawn_with_metrics(cluster, &config, tx, Some(metrics.clone()), shutdown.clone())
        .expect("watchers");
    assert!(tokio::time::timeout(Duration::from_secs(60), handle.ready()).await.expect("stores synced"));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    // The events watch has no store to wait for: an event in its first list is a replay, not a
    // delivery, and is rightly not observed. Write stamped warnings until one arrives as a change.
    let start = Instant::now();
    while delivery(&metrics).0 == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no delivery observed");
        events.create(&PostParams::default(), &warning(&ns.name, "Warning", true)).await.expect("stamped Warning");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, _) = delivery(&metrics);
    // Not observed: a Normal event, a Warning without eventTime. Then one stamped Warning as a
    // marker: the watch delivers in order, so once it is counted the other two were seen.
    events.create(&PostParams::default(), &warning(&ns.name, "Normal", true)).await.expect("stamped Normal");
    events.create(&PostParams::default(), &warning(&ns.name, "Warning", false)).await.expect("legacy Warning");
    events.create(&PostParams::default(), &warning(&ns.name, "Warning", true)).await.expect("marker");
    let start = Instant::now();
    while delivery(&metrics).0 == before {
        assert!(start.elapsed() < Duration::from_secs(30), "the marker was not observed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (count, sum) = delivery(&metrics);
    assert_eq!(count, before + 1, "only the stamped Warning is observed");
    // Same machine, same clock: the delays are positive and well under the watch's patience.
    assert!(sum > 0.0 && sum / (count as f64) < 5.0, "mean delivery {} s over {count}", sum / count as f64);
    shutdown.cancel();
    handle.join().await;
    ns.delete(&client).await;
}

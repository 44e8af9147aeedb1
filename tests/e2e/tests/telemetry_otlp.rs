//! Spans reach a real OTLP receiver: the `kubemedic` binary, configured only
//! through the standard `OTEL_*` variables, exports its spans over OTLP/HTTP
//! to `oteltap` (PyPI), which prints every span it receives as JSON.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// `oteltap` from the tests' virtualenv, else from PATH.
fn oteltap_bin() -> PathBuf {
    if let Ok(venv) = std::env::var("KUBEMEDIC_VENV") {
        let p = PathBuf::from(venv).join("bin/oteltap");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("oteltap")
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

#[tokio::test]
async fn drift_command_exports_spans_over_otlp_http() {
    let kubeconfig = e2e::kubeconfig_path();
    let port = e2e::daemon::free_port();
    let mut tap = tokio::process::Command::new(oteltap_bin())
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start oteltap (tests/tools/requirements.txt installs it)");
    wait_for_port(port).await;

    let out = tokio::process::Command::new(e2e::daemon::bin())
        .args(["drift", "--output", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_SERVICE_NAME", "kubemedic-e2e")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .await
        .expect("run kubemedic drift");
    assert!(out.status.success(), "kubemedic drift failed: {}", String::from_utf8_lossy(&out.stderr));
    // stdout is the report and nothing else (logs go to stderr).
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert!(report["checked"].is_u64(), "{report}");

    // oteltap prints every span it receives as one JSON line on stdout.
    let mut lines = tokio::io::BufReader::new(tap.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let span = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["name"] == "drift_report"
            {
                return v;
            }
            seen.push(line);
        }
        panic!("oteltap exited");
    })
    .await
    .unwrap_or_else(|_| panic!("no drift_report span within 30 s; oteltap printed:\n{}", seen.join("\n")));
    tap.kill().await.unwrap();
    let attrs = span["attributes"].as_array().cloned().unwrap_or_default();
    let cluster = attrs.iter().find(|a| a["key"] == "cluster").map(|a| a["value"]["stringValue"].clone());
    assert_eq!(cluster, Some(serde_json::json!("local")), "{span}");
    assert!(span["endTimeUnixNano"].as_str().is_some(), "{span}");
}

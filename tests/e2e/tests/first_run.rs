//! The first ten minutes, as a newcomer sees them: `bash scripts/demo.sh` on a terminal.
//!
//! The demo runs under a real pseudo-terminal (util-linux `script`), starts its own control
//! plane and nodesim (on free ports), and a person answers its prompt. What must hold:
//! - between the report and its `Apply this change? [y/N]` prompt, no log line and no escape
//!   code (the report reads as plain text even on a terminal);
//! - the verification wait after the answer shows progress (a spinner whose time moves);
//! - the change is verified.
//!
//! And a missing kubeconfig says its cause once, what to do, and exits 64 every time.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PROMPT: &str = "Apply this change? [y/N]";

/// A timestamped tracing line: `2026-12-04T09:20:00.123Z  WARN target: message`.
fn is_log_line(line: &str) -> bool {
    let b = line.trim_start().as_bytes();
    let stamp = b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T';
    let level = [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "].iter().any(|l| line.contains(l));
    stamp || level
}

/// Read the child's terminal output into `out` until `pattern` shows up (true) or EOF/timeout.
async fn read_until(
    out: &mut tokio::process::ChildStdout,
    buf: &mut Vec<u8>,
    pattern: &str,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 8192];
    loop {
        if String::from_utf8_lossy(buf).contains(pattern) {
            return true;
        }
        match tokio::time::timeout_at(deadline, out.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return String::from_utf8_lossy(buf).contains(pattern),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn demo_on_a_terminal_is_legible_and_shows_verification_progress() {
    let root = e2e::daemon::repo_root();
    let dir = tempfile::tempdir().unwrap();
    // A short stability window keeps the test near a minute; the wait is still long enough to
    // need progress.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\napprovals:\n  verify_stable_seconds: 6\n  verify_timeout_seconds: 90\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let bin = e2e::daemon::bin();
    let command = format!("bash scripts/demo.sh --config {} --only image-pull-bad-tag", config.display());
    let mut child = tokio::process::Command::new("script")
        .args(["--quiet", "--flush", "--return", "--command", &command, "/dev/null"])
        .current_dir(&root)
        .env("KUBEMEDIC_BIN", &bin)
        .env("TMPDIR", dir.path())
        .env("TERM", "xterm-256color")
        .env_remove("KUBECONFIG")
        .env_remove("KUBEMEDIC_CONFIG")
        .env_remove("RUST_LOG")
        .env("ETCD_PORT", e2e::daemon::free_port().to_string())
        .env("PEER_PORT", e2e::daemon::free_port().to_string())
        .env("PORT", e2e::daemon::free_port().to_string())
        .env("CM_PORT", e2e::daemon::free_port().to_string())
        .env("SCHED_PORT", e2e::daemon::free_port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux `script` runs the demo under a pseudo-terminal");
    let mut out = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut buf = Vec::new();

    let asked = read_until(&mut out, &mut buf, PROMPT, Duration::from_secs(180)).await;
    // The terminal turns each "\n" into "\r\n"; a lone "\r" is a spinner redrawing its line.
    let text = String::from_utf8_lossy(&buf).replace("\r\n", "\n");
    assert!(asked, "no prompt; the terminal showed:\n{text}");

    // The report starts with the diagnosis's summary line (the line before "Root cause:", after
    // whatever cleared the last spinner) and ends at the prompt.
    let prompt_at = text.find(PROMPT).unwrap();
    let root_at = text[..prompt_at].rfind("\n\nRoot cause:").unwrap_or_else(|| panic!("no report:\n{text}"));
    let head = text[..root_at].trim_end_matches(['\r', '\n']);
    let line_at = head.rfind('\n').map_or(0, |i| i + 1);
    let summary = &head[line_at..];
    let cleared = summary
        .rfind('\u{1b}')
        .map_or(0, |esc| esc + summary[esc..].find(|c: char| c.is_ascii_alphabetic()).map_or(1, |i| i + 1));
    let report_at = line_at + cleared;
    assert!(text[report_at..root_at].trim().len() > 3, "the report opens with a summary:\n{text}");
    let between = &text[report_at..prompt_at];
    assert!(!between.contains('\u{1b}'), "escape code between the report and the prompt:\n{between:?}");
    for line in between.lines() {
        assert!(!is_log_line(line), "a log line between the report and the prompt: {line:?}\n{between}");
    }
    assert!(between.contains("web"), "the report names the workload:\n{between}");

    stdin.write_all(b"y\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut rest = Vec::new();
    let finished = read_until(&mut out, &mut rest, "OUTCOME", Duration::from_secs(150)).await;
    // Read the table to its end.
    let _ = tokio::time::timeout(Duration::from_secs(30), out.read_to_end(&mut rest)).await;
    let after = String::from_utf8_lossy(&rest).replace("\r\n", "\n");
    assert!(finished, "no result table after the answer:\n{after}");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("demo.sh exits").unwrap();

    // Verification progress: the spinner line names what is awaited and its time moves.
    let verifying_at = after.find("applying; verifying").unwrap_or_else(|| panic!("no verification:\n{after}"));
    let progress: Vec<&str> = after[verifying_at..]
        .split(['\r', '\n'])
        .filter(|l| l.contains("verifying kubemedic-demo/Deployment/web") && l.contains("left)"))
        .collect();
    let mut times: Vec<&str> = progress.iter().filter_map(|l| l.rsplit_once(" (").map(|(_, t)| t)).collect();
    times.dedup();
    assert!(times.len() >= 3, "verification showed no moving progress: {progress:?}\n{after}");
    assert!(
        progress.iter().any(|l| l.contains("stable for") || l.contains("rollout")),
        "the progress says what verification waits for: {progress:?}"
    );
    eprintln!(
        "report: {} bytes, {} lines; verification progress: {} redraws, {} distinct times, last {:?}",
        between.len(),
        between.lines().count(),
        progress.len(),
        times.len(),
        progress.last()
    );
    // The demo logs at warn by default: none of its info lines reach the terminal.
    let info: Vec<&str> = text.lines().chain(after.lines()).filter(|l| l.contains(" INFO ")).collect();
    assert!(info.is_empty(), "info log lines on the demo's terminal: {info:?}");
    let table = &after[after.rfind("OUTCOME").unwrap()..];
    assert!(table.contains("approved") && table.contains("verified"), "{after}");
    assert!(status.success(), "demo.sh failed ({status}):\n{text}{after}");
}

/// The cause once, what to do, and the same non-zero exit code every time.
#[tokio::test]
async fn missing_kubeconfig_is_explained_once() {
    let home = tempfile::tempdir().unwrap();
    for args in [&["diagnose", "default/Deployment/web"][..], &["demo", "--only", "image-pull-bad-tag"][..]] {
        let mut codes = Vec::new();
        for _ in 0..2 {
            let out = tokio::process::Command::new(e2e::daemon::bin())
                .args(args)
                .current_dir(e2e::daemon::repo_root())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", home.path())
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.matches("no Kubernetes cluster configured").count(), 1, "{args:?}: {stderr}");
            assert_eq!(stderr.matches("does not exist").count(), 1, "the cause once: {stderr}");
            for hint in ["KUBECONFIG=", "--kubeconfig", "kubemedic demo"] {
                assert!(stderr.contains(hint), "{args:?}: no {hint} in {stderr}");
            }
            assert!(!stderr.contains('\u{1b}'), "no colour off a terminal: {stderr:?}");
            assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
            codes.push(out.status.code());
        }
        assert_eq!(codes, [Some(64), Some(64)], "{args:?}");
    }
}

/// `kubemedic run` stopped (SIGTERM) while its watchers still wait for their first lists (an
/// HTTP proxy of the test's own holds the pod list) says so, and never "watchers synced"; until
/// then `/readyz` answers 503 naming the watchers.
#[tokio::test]
async fn run_stopped_before_the_watchers_synced_does_not_say_they_did() {
    use e2e::apiproxy::{ApiProxy, Fault, Rule};
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "first-run-sync").await;
    let proxy = ApiProxy::start(client.clone()).await;
    proxy.set_rule(Some(Rule {
        method: axum::http::Method::GET,
        path: format!("/api/v1/namespaces/{}/pods", ns.name),
        fault: Fault::HoldRequest,
    }));
    let dir = tempfile::tempdir().unwrap();
    proxy.kubeconfig(&dir.path().join("kubeconfig"));
    let port = e2e::daemon::free_port();
    let config = serde_json::json!({
        "cluster": { "name": "sync", "namespaces": [ns.name], "kubeconfig": dir.path().join("kubeconfig") },
        "rules_dir": e2e::daemon::repo_root().join("rules"),
        "prompts_dir": e2e::daemon::repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": { "listen": format!("127.0.0.1:{port}") },
    });
    std::fs::write(dir.path().join("config.yaml"), serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let log_path = dir.path().join("run.log");
    let mut child = tokio::process::Command::new(e2e::daemon::bin())
        .args(["run", "--config"])
        .arg(dir.path().join("config.yaml"))
        .env_remove("RUST_LOG")
        .env_remove("KUBEMEDIC_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // The watchers are running (and waiting) once the held list request reached the proxy's rule;
    // give them a moment after the daemon answers its liveness probe.
    let http = reqwest::Client::new();
    e2e::wait::until(Duration::from_secs(60), "kubemedic run is live", || async {
        let r = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!log().contains("watchers synced"), "synced although the pod list is held:\n{}", log());
    // The leading replica is not ready while its watchers wait: /readyz says what it waits for.
    let ready = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "ready although the watchers have not synced");
    assert_eq!(ready.text().await.unwrap(), "not ready: watchers\n");

    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let status =
        tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits after SIGTERM").unwrap();
    let text = log();
    assert!(!text.contains("watchers synced"), "claimed a sync that never happened:\n{text}");
    assert!(text.contains("watchers stopped before their first lists arrived"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour in a log file: {text:?}");
    assert!(status.success(), "graceful exit ({status}):\n{text}");
}

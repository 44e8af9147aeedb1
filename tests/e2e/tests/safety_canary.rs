//! The canary sweep: one random secret value planted in every place a cluster can hold it
//! (Secret data, an env literal, the last-applied annotation, change-cause, an event message,
//! a log line, an annotation, a ConfigMap value under a secret-looking key), then every exit
//! is driven — `kubemedic diagnose` (json and text), the daemon's incident and proposal on the
//! Slack stand-in, MCP tools, prompts and resources, the approvals API, the bus on a real
//! nats-server, the audit file, an OTLP/HTTP receiver and the daemon's logs — and the value
//! (plain, standard and URL-safe base64, trimmed and untrimmed) must appear in none of them.
//! Each exit must also have produced output, so a sink that stayed empty cannot pass.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use e2e::daemon::{APPROVER_TOKEN, Daemon, bin, free_port, repo_root, state_of, token_entry};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use testkit::slack::SlackStandin;

/// What a recording sink holds: (subject or path, body).
type Recorded<T> = Arc<Mutex<Vec<(String, T)>>>;

const BOT_TOKEN: &str = "xoxb-canary-token";
const SIGNING_SECRET: &str = "canary-signing-secret-0123456789";

/// Every form the canary may take in output: as is and with the newline a Secret file
/// carries, each also in standard and URL-safe base64, padded and not.
fn forms(canary: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = vec![canary.to_owned()];
    for raw in [canary.to_owned(), format!("{canary}\n"), format!(" {canary} ")] {
        for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            out.push(e.encode(&raw));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Panics when `text` holds any form of the canary, naming the exit and showing where.
fn assert_clean(what: &str, text: &str, canary: &str) {
    for f in forms(canary) {
        if let Some(at) = text.find(&f) {
            let around = text.get(at.saturating_sub(300)..(at + f.len() + 300).min(text.len())).unwrap_or(text);
            panic!("{what} leaks the canary as {f:?}:\n…{around}…");
        }
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// The Deployment `shop` at one revision; `crash` makes it log the canary and exit 1.
fn deployment(canary: &str, crash: bool, cause: &str) -> Value {
    let mut annotations = json!({});
    if crash {
        annotations = json!({
            "nodesim.kubemedic.io/logs": format!("starting\nconnecting with {canary}\nfatal: cannot connect"),
            "nodesim.kubemedic.io/exit-code": "1"});
    }
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "annotations": {"team-note": canary,
            "kubernetes.io/change-cause": cause}},
        "spec": {"replicas": 1, "minReadySeconds": 5, "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": if crash { "nginx:1.27" } else { "nginx:1.26" },
                    "env": [{"name": "MODE", "value": canary}]}]}}}});
    let last_applied = d.to_string();
    d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = Value::String(last_applied);
    d
}

/// A tiny OTLP/HTTP receiver: records every request body and answers an empty export response.
async fn otlp_receiver() -> (u16, Recorded<Vec<u8>>) {
    let bodies: Recorded<Vec<u8>> = Arc::default();
    let seen = bodies.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push((uri.path().to_owned(), body.to_vec()));
            ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], Vec::<u8>::new())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, bodies)
}

/// Every message on `kubemedic.>` from now on, recorded.
async fn bus_recorder(client: &async_nats::Client) -> Recorded<String> {
    let mut sub = client.subscribe("kubemedic.>").await.expect("subscribe kubemedic.>");
    client.flush().await.unwrap();
    let seen: Recorded<String> = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            out.lock().unwrap().push((m.subject.to_string(), String::from_utf8_lossy(&m.payload).into_owned()));
        }
    });
    seen
}

/// One MCP session as the approver: every tool that reads or proposes, every prompt and every
/// resource. Returns what was answered (results and errors alike), one entry per request.
async fn mcp_sweep(url: &str, n: &str, canary: &str) -> Vec<(String, String)> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(APPROVER_TOKEN);
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize");
    let mut out = Vec::new();
    let w = |kind: &str, name: &str| json!({"namespace": n, "kind": kind, "name": name});
    let mut calls = vec![
        ("list_resources", json!({"kind": "Deployment", "namespace": n})),
        ("list_resources", json!({"kind": "Pod", "namespace": n})),
        ("list_resources", json!({"kind": "ConfigMap", "namespace": n})),
        ("list_resources", json!({"kind": "Secret", "namespace": n})),
        ("list_resources", json!({"kind": "ReplicaSet", "namespace": n})),
        ("list_resources", json!({"kind": "Event", "namespace": n})),
        ("get_resource", w("Deployment", "shop")),
        ("get_resource", w("ConfigMap", "settings")),
        ("get_resource", w("Secret", "db")),
        ("get_resource", w("Event", "shop.canary")),
        ("describe_workload", w("Deployment", "shop")),
        ("events", json!({"namespace": n})),
        ("events", json!({"namespace": n, "kind": "Deployment", "name": "shop", "include_related": true})),
        ("pod_logs", json!({"namespace": n, "kind": "Deployment", "name": "shop"})),
        ("pod_logs", json!({"namespace": n, "kind": "Deployment", "name": "shop", "previous": true})),
        ("pod_logs", json!({"namespace": n, "kind": "Deployment", "name": "shop", "grep": "connecting"})),
        ("rollout_status", w("Deployment", "shop")),
        ("rollout_history", w("Deployment", "shop")),
        ("decode_secret", json!({"namespace": n, "name": "db"})),
        ("decode_secret", json!({"namespace": n, "workload_kind": "Deployment", "workload_name": "shop"})),
        // An approver is not an admin: asking to reveal is refused, without the value.
        ("decode_secret", json!({"namespace": n, "name": "db", "reveal": true})),
        ("cluster_health", json!({"namespace": n})),
        ("workload_graph", json!({"namespace": n})),
        ("drift_check", json!({"namespace": n})),
        ("list_incidents", json!({"namespace": n})),
        ("list_proposals", json!({})),
        // A proposal whose diff has the env literal as context, and one that writes the value back.
        (
            "propose_patch",
            json!({"namespace": n, "kind": "Deployment", "name": "shop", "patch_type": "merge",
                "patch": {"spec": {"replicas": 2}}, "rationale": "more capacity"}),
        ),
        (
            "propose_patch",
            json!({"namespace": n, "kind": "Deployment", "name": "shop", "patch_type": "strategic",
                "patch": {"spec": {"template": {"spec": {"containers": [{"name": "app",
                    "env": [{"name": "DB_PASSWORD", "value": canary}]}]}}}},
                "rationale": "set the password"}),
        ),
    ];
    let listed = client
        .call_tool(CallToolRequestParams::new("list_proposals").with_arguments(Default::default()))
        .await
        .ok()
        .and_then(|r| r.structured_content)
        .unwrap_or_default();
    for p in listed["proposals"].as_array().into_iter().flatten() {
        if p["target"]["namespace"] == n {
            calls.push(("get_proposal", json!({"id": p["id"]})));
        }
    }
    for (tool, args) in calls {
        let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().unwrap_or_default());
        let answer = match client.call_tool(params).await {
            Ok(r) => serde_json::to_string(&r).unwrap(),
            Err(e) => format!("error: {e}"),
        };
        out.push((format!("MCP tool {tool} {args}"), answer));
    }
    for prompt in client.list_all_prompts().await.expect("list prompts") {
        let mut args = serde_json::Map::new();
        for a in prompt.arguments.iter().flatten() {
            let v = match a.name.as_str() {
                "namespace" => n,
                "kind" => "Deployment",
                "name" | "workload" => "shop",
                _ => "shop",
            };
            args.insert(a.name.clone(), Value::String(v.to_owned()));
        }
        let answer =
            match client.get_prompt(GetPromptRequestParams::new(prompt.name.clone()).with_arguments(args)).await {
                Ok(r) => serde_json::to_string(&r).unwrap(),
                Err(e) => format!("error: {e}"),
            };
        out.push((format!("MCP prompt {}", prompt.name), answer));
    }
    let mut uris: Vec<String> =
        client.list_all_resources().await.expect("list resources").into_iter().map(|r| r.uri.clone()).collect();
    let listed_ids = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x.to_string().contains(n))
            .filter_map(|x| x["id"].as_str().map(str::to_owned))
            .collect()
    };
    let incidents = client
        .call_tool(
            CallToolRequestParams::new("list_incidents")
                .with_arguments(json!({"namespace": n}).as_object().cloned().unwrap()),
        )
        .await
        .ok()
        .and_then(|r| r.structured_content)
        .unwrap_or_default();
    uris.extend(listed_ids(&incidents, "incidents").into_iter().map(|id| format!("kubemedic://incidents/{id}")));
    uris.extend(listed_ids(&listed, "proposals").into_iter().map(|id| format!("kubemedic://proposals/{id}")));
    for uri in uris {
        let answer = match client.read_resource(ReadResourceRequestParams::new(uri.clone())).await {
            Ok(r) => serde_json::to_string(&r).unwrap(),
            Err(e) => format!("error: {e}"),
        };
        out.push((format!("MCP resource {uri}"), answer));
    }
    let _ = client.cancel().await;
    out
}

#[tokio::test]
async fn a_planted_secret_leaves_through_no_exit() {
    e2e::install_crypto();
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "canary").await;
    let n = ns.name.as_str();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let canary = format!("cnry{nanos:x}q{:x}", std::process::id());

    // Secret data (untrimmed, as files often are) and a ConfigMap value under a secret-looking key.
    Api::<Secret>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "db"}, "stringData": {"password": format!("{canary}\n")}})),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "settings"}, "data": {"db_password": canary.clone(), "mode": "prod"}})),
        )
        .await
        .unwrap();
    // Revision 1 runs (env literal, last-applied, change-cause, an annotation); revision 2 logs
    // the value and exits 1, so the daemon sees a crash loop after a rollout and proposes a
    // rollback whose diff is between the two templates.
    let deployments = Api::<Deployment>::namespaced(client.clone(), n);
    deployments
        .create(&PostParams::default(), &obj(deployment(&canary, false, &format!("kubectl set env MODE={canary}"))))
        .await
        .unwrap();
    e2e::wait::deployment_ready(&client, n, "shop", Duration::from_secs(90)).await;
    // An event message.
    Api::<Event>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "shop.canary"},
                "involvedObject": {"kind": "Deployment", "namespace": n, "name": "shop", "apiVersion": "apps/v1"},
                "reason": "ConfigLeak", "type": "Warning", "message": format!("probe output: {canary}"), "count": 1})),
        )
        .await
        .unwrap();

    // The value really is where the exits read from (so an absent value cannot pass).
    let pods = e2e::pods::of_deployment(&client, n, "shop").await;
    assert!(!pods.is_empty(), "shop has pods");

    // The exits the daemon writes to: Slack, NATS, OTLP, its state dir and its stderr.
    let slack = SlackStandin::start(BOT_TOKEN).await.unwrap();
    let (otlp_port, otlp) = otlp_receiver().await;
    let nats_url = std::env::var("KUBEMEDIC_TEST_NATS_URL")
        .expect("KUBEMEDIC_TEST_NATS_URL is not set: run tests/run.sh (it starts nats-server -js)");
    let nats = async_nats::connect(&nats_url).await.expect("connect to nats-server");
    let bus = bus_recorder(&nats).await;
    let stream = format!("CANARY_{}", n.replace('-', "_").to_uppercase());

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = json!({
        "cluster": { "name": "canary", "namespaces": [n] },
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": { "listen": format!("127.0.0.1:{port}") },
        "auth": { "tokens": [token_entry("admin", APPROVER_TOKEN, "approver")] },
        "approvals": { "verify_timeout_seconds": 90, "verify_stable_seconds": 5 },
        "slack": { "channel": "C0CANARY", "api_url": slack.base_url(), "max_retries": 1, "timeout_seconds": 5,
                   "approvers": { "users": { "U0CANARY": "approver" } } },
        "nats": { "url": nats_url, "incident_stream": stream,
            "incident_subject": format!("kubemedic.work.{}", n), "incident_consumer": format!("diagnose-{n}"),
            "leader_election": { "lease_name": "kubemedic-canary", "lease_namespace": n } },
    });
    let otlp_url = format!("http://127.0.0.1:{otlp_port}");
    let otel_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "kubemedic-canary"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut env = otel_env.to_vec();
    env.extend([("SLACK_BOT_TOKEN", BOT_TOKEN), ("SLACK_SIGNING_SECRET", SIGNING_SECRET)]);
    let daemon = Daemon::start(dir.path(), &config, &env).await;

    // Roll out the crashing revision (new change-cause and last-applied hold the value too).
    let rev2 = deployment(&canary, true, &format!("kubectl apply (MODE={canary})"));
    deployments.patch("shop", &PatchParams::default(), &Patch::Merge(&rev2)).await.unwrap();

    let logs = e2e::wait::until(Duration::from_secs(60), "the crashing pod logged the value", || async {
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), n);
        for p in e2e::pods::of_deployment(&client, n, "shop").await {
            let name = p.metadata.name.clone().unwrap_or_default();
            if let Ok(text) = pods.logs(&name, &Default::default()).await
                && text.contains(&canary)
            {
                return Some(text);
            }
        }
        None
    })
    .await;
    assert!(logs.contains("fatal: cannot connect"));

    // The crash loop opens an incident, diagnosed into a pending rollback proposal.
    let proposal = e2e::wait::until(Duration::from_secs(150), "a pending proposal for deployment shop", || {
        let daemon = &daemon;
        async move {
            let pending = daemon.proposals(Some("pending")).await?;
            pending.into_iter().find(|p| p["target"]["namespace"] == n && p["target"]["name"] == "shop")
        }
    })
    .await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let incidents = daemon.incidents(n).await.unwrap_or_default();
    assert!(!incidents.is_empty(), "an incident for shop");
    assert_clean("incidents", &serde_json::to_string(&incidents).unwrap(), &canary);

    // MCP, while revision 2 crash-loops: every read tool, the proposals, every prompt and every resource.
    let answers = mcp_sweep(&daemon.url, n, &canary).await;
    let nonempty =
        answers.iter().filter(|(_, a)| !a.starts_with("error") && (a.contains(n) || a.contains("shop"))).count();
    assert!(nonempty >= 10, "MCP answered with content: {answers:#?}");
    for (what, answer) in &answers {
        assert_clean(what, answer, &canary);
    }
    // The places that held the value were read and answered with it redacted, not left out.
    for (tool, arg, context) in [
        ("pod_logs", "", "fatal: cannot connect"),
        ("events", "", "probe output:"),
        ("get_resource", "\"ConfigMap\"", "db_password"),
        ("get_resource", "\"Deployment\"", "team-note"),
        ("rollout_history", "", "change"),
    ] {
        let a: Vec<&str> = answers
            .iter()
            .filter(|(w, _)| w.starts_with(&format!("MCP tool {tool} ")) && w.contains(arg))
            .map(|(_, a)| a.as_str())
            .collect();
        assert!(
            a.iter().any(|a| a.contains(context) && a.contains("REDACTED")),
            "{tool} {arg}: read and redacted in place:\n{a:#?}"
        );
    }

    // `kubemedic diagnose` from the command line, json and text, spans to the same receiver.
    let cli_config = dir.path().join("cli.yaml");
    let mut cli = config.clone();
    cli["state_dir"] = json!(dir.path().join("cli-state"));
    cli.as_object_mut().unwrap().remove("nats");
    cli.as_object_mut().unwrap().remove("slack");
    std::fs::write(&cli_config, serde_yaml_ng::to_string(&cli).unwrap()).unwrap();
    for extra in [&["--output", "json"][..], &[][..]] {
        let out = tokio::process::Command::new(bin())
            .args(["--config"])
            .arg(&cli_config)
            .args(["diagnose", &format!("{n}/Deployment/shop")])
            .args(extra)
            .env("KUBECONFIG", e2e::kubeconfig_path())
            .envs(otel_env)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "kubemedic diagnose {extra:?}: {text}");
        assert!(stdout.contains("shop"), "kubemedic diagnose {extra:?} printed a diagnosis: {text}");
        assert_clean(&format!("kubemedic diagnose {extra:?}"), &text, &canary);
    }

    // The approvals API, before and after the decision; approving drives apply, verify and
    // the Slack thread, the bus and the audit trail through their later states. (After the
    // reads above: the rollback removes the crashing pods whose logs hold the value.)
    let before = daemon.proposal(&id).await.expect("GET /api/proposals/{id}");
    assert!(before.to_string().contains("shop"), "the approvals API answered: {before}");
    assert_clean("approvals API (pending)", &before.to_string(), &canary);
    let status = daemon.approve(&id).await;
    assert!((200..300).contains(&status), "approve {id}: {status}");
    let done = e2e::wait::until(Duration::from_secs(120), "the rollback verified or failed", || async {
        let p = daemon.proposal(&id).await?;
        matches!(state_of(&p), "verified" | "failed").then_some(p)
    })
    .await;
    assert_clean("approvals API (decided)", &done.to_string(), &canary);

    // Slack: the proposal card, its updates and the thread.
    let calls = slack.calls();
    assert!(
        calls.iter().any(|c| c.method == "chat.postMessage" && c.body.to_string().contains(&id)),
        "the proposal was posted to Slack: {calls:#?}"
    );
    for c in &calls {
        assert_clean(&format!("Slack {}", c.method), &c.body.to_string(), &canary);
    }
    for m in slack.messages() {
        assert_clean("Slack message", &format!("{} {} {:?}", m.text, m.blocks, m.replies), &canary);
    }

    // The bus: every message on kubemedic.> (other tests share the server: only this
    // namespace's messages prove output, but none may carry the value).
    e2e::wait::until(Duration::from_secs(10), "bus messages about this namespace", || async {
        bus.lock().unwrap().iter().filter(|(_, p)| p.contains(n)).count().ge(&3).then_some(())
    })
    .await;
    for (subject, payload) in bus.lock().unwrap().iter() {
        assert_clean(&format!("bus {subject}"), payload, &canary);
    }

    // OTLP: spans arrived, none carries the value.
    e2e::wait::until(Duration::from_secs(15), "spans on the OTLP receiver", || async {
        let got = otlp.lock().unwrap();
        got.iter().any(|(path, body)| path == "/v1/traces" && !body.is_empty()).then_some(())
    })
    .await;
    for (path, body) in otlp.lock().unwrap().iter() {
        assert_clean(&format!("OTLP {path}"), &String::from_utf8_lossy(body), &canary);
    }

    // The audit file and the daemon's own logs.
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap_or_default();
    assert!(audit.contains(&id), "the audit trail recorded the decision on {id}");
    assert_clean("audit file", &audit, &canary);
    let logs = std::fs::read_to_string(daemon.log_path()).unwrap();
    assert!(logs.contains(n), "the daemon logged about the namespace");
    assert_clean("daemon logs", &logs, &canary);

    drop(daemon);
    let _ = async_nats::jetstream::new(nats).delete_stream(&stream).await;
    ns.delete(&client).await;
}

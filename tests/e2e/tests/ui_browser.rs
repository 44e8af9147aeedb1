//! The web UI in a real headless browser (Debian's chromium, driven by playwright-core from
//! npm with the system browser, offline): a broken workload from a nodesim scenario → an
//! incident and a proposal in the real `kubemedic run` → a viewer and an approver sign in
//! through the OIDC provider stand-in (authorization code + PKCE) → the viewer sees no
//! buttons and its forged POSTs are refused → the approver opens the incident from the list,
//! sees the causal chain drawn as an SVG with the chain's nodes, forged POSTs without the
//! CSRF token are refused, approves → applied and verified.
//!
//! `KUBEMEDIC_UI_SCREENSHOTS=DIR` saves the pages the README shows.

use std::path::PathBuf;
use std::time::Duration;

use e2e::daemon::{APPROVER_TOKEN, Daemon, free_port, repo_root, token_entry};
use serde_json::{Value, json};
use testkit::oidc::{OidcIssuer, User};

const CLIENT_ID: &str = "kubemedic-ui";

/// Where tests/tools/install.sh put playwright-core.
fn browser_npm() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEMEDIC_BROWSER_NPM").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("KUBEMEDIC_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kubemedic"));
    cache.join("browser")
}

/// The chain's node labels from the Mermaid source the page carries (`nN["label"]`).
fn chain_labels(page: &str) -> Vec<String> {
    let start = page.find(r#"<pre class="mermaid""#).expect("the incident page carries the causal chain");
    let source = &page[start..page[start..].find("</pre>").map(|e| start + e).unwrap()];
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
            .replace("#quot;", "\"")
    };
    source
        .lines()
        .filter_map(|l| {
            let l = unescape(l.trim());
            let (_, rest) = l.split_once("[\"")?;
            Some(rest.strip_suffix("\"]")?.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_person_signs_in_sees_the_graph_and_approves_in_a_real_browser() {
    e2e::install_crypto();
    let chromium = std::env::var("KUBEMEDIC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "{chromium} missing: run tests/tools/install.sh");
    let npm = browser_npm();
    assert!(npm.join("node_modules/playwright-core").is_dir(), "playwright-core missing under {}", npm.display());

    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "ui").await;
    let issuer = OidcIssuer::start(
        CLIENT_ID,
        vec![User::new("ana", "ana@example.com", &["sre"]), User::new("victor", "victor@example.com", &["dev"])],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = json!({
        "cluster": {"name": "e2e", "namespaces": [ns.name], "kubeconfig": e2e::kubeconfig_path()},
        "rules_dir": repo_root().join("rules"),
        "prompts_dir": repo_root().join("prompts"),
        "state_dir": dir.path().join("state"),
        "http": {"listen": format!("127.0.0.1:{port}")},
        "approvals": {"verify_stable_seconds": 5},
        "auth": {
            "tokens": [token_entry("alice", APPROVER_TOKEN, "approver")],
            "oidc": {"issuer": issuer.url(), "audience": CLIENT_ID, "jwks_url": format!("{}/jwks", issuer.url()),
                     "user_claim": "email", "group_roles": {"sre": "approver", "dev": "viewer"}},
        },
        "ui": {"external_url": url, "oidc": {"client_id": CLIENT_ID,
            "authorization_endpoint": format!("{}/authorize", issuer.url()),
            "token_endpoint": format!("{}/token", issuer.url())}},
    });
    let daemon = Daemon::start(&dir.path().join("daemon"), &config, &[]).await;
    e2e::scenario::apply(&client, &ns.name, "config-secret-key-typo").await;

    // The daemon diagnoses the broken Secret reference and offers the fix.
    let proposal = e2e::wait::until(Duration::from_secs(120), "a pending proposal for deployment api", || async {
        daemon.proposals(Some("pending")).await?.into_iter().find(|p| p["target"]["name"] == "api")
    })
    .await;
    let pid = proposal["id"].as_str().unwrap().to_owned();
    let iid = proposal["incident_id"].as_str().expect("the proposal names its incident").to_owned();
    let http = reqwest::Client::new();
    let page = e2e::wait::until(Duration::from_secs(30), "the incident page with its causal chain", || async {
        let r = http.get(format!("{url}/ui/incidents/{iid}")).bearer_auth(APPROVER_TOKEN).send().await.ok()?;
        let page = r.text().await.ok()?;
        page.contains(r#"class="mermaid""#).then_some(page)
    })
    .await;
    let labels = chain_labels(&page);
    assert!(labels.len() >= 2, "a chain of at least two steps: {labels:?}");

    // The browser, driven by the script next to this test.
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(npm.join("node_modules"), work.path().join("node_modules")).unwrap();
    std::fs::copy(repo_root().join("tests/e2e/browser/ui.mjs"), work.path().join("ui.mjs")).unwrap();
    let screenshots = std::env::var("KUBEMEDIC_UI_SCREENSHOTS").ok().filter(|d| !d.is_empty());
    if let Some(d) = &screenshots {
        std::fs::create_dir_all(d).unwrap();
    }
    let node = std::env::var("KUBEMEDIC_NODE22").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into());
    let input = json!({"url": url, "incident": iid, "proposal": pid, "labels": labels,
        "screenshots": screenshots, "chromium": chromium});
    let run = tokio::process::Command::new(node)
        .arg(work.path().join("ui.mjs"))
        .env("KM_UI", input.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run).await.expect("the browser run finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no verdict ({e}): {stdout}\n{stderr}\n{}", daemon.log_tail(30)));
    let context = format!("{verdict:#}\n{stderr}\n{}", daemon.log_tail(30));
    assert!(verdict.get("error").is_none(), "{context}");

    // Signed in through the provider, with PKCE, as the right people.
    let tokens = issuer.token_requests();
    assert_eq!(tokens.len(), 2, "one code exchange per person: {tokens:?}");
    assert!(tokens.iter().all(|t| t.get("code_verifier").is_some_and(|v| v.len() >= 43)), "{tokens:?}");
    let v = &verdict["viewer"];
    let a = &verdict["approver"];
    assert!(v["who"].as_str().unwrap().contains("victor@example.com (viewer)"), "{context}");
    assert!(a["who"].as_str().unwrap().contains("ana@example.com (approver)"), "{context}");
    assert_eq!(a["cookie"], json!({"httpOnly": true, "secure": true, "sameSite": "Strict"}), "{context}");

    // The viewer reads but cannot decide, not even by forging the POST.
    assert_eq!(v["state"], "pending", "{context}");
    assert_eq!(v["buttons"], 0, "{context}");
    assert_eq!(v["note"], 1, "{context}");
    assert_eq!(v["forged_without_csrf"], 403, "{context}");
    assert_eq!(v["forged_with_own_csrf"], 403, "a viewer's own valid token does not make it an approver: {context}");

    // The approver finds the incident in the list and sees the chain drawn.
    assert_eq!(a["listed"], 1, "{context}");
    assert_eq!(a["graph"], "rendered", "{context}");
    assert_eq!(a["svgs"], 1, "{context}");
    assert!(a["svg_nodes"].as_u64().unwrap() >= labels.len() as u64, "{context}");
    assert_eq!(a["labels_missing"], json!([]), "every node of the chain is in the SVG: {context}");
    assert!(verdict.get("offsite").is_none(), "nothing fetched from outside 127.0.0.1: {context}");

    // Forged decisions are refused; the real one goes through and the fix is verified.
    assert_eq!(a["buttons"], 2, "{context}");
    assert!(a["diff_lines"].as_u64().unwrap() >= 1, "{context}");
    assert_eq!(a["forged_without_csrf"], 403, "{context}");
    assert_eq!(a["forged_wrong_csrf"], 403, "{context}");
    assert_eq!(a["state_after_forgery"], "pending", "{context}");
    assert_eq!(a["final_state"], "verified", "{context}");
    // The list in another tab followed the bus (server-sent events) without a reload.
    let l = &verdict["list"];
    assert_eq!(l["before"], "pending", "{context}");
    assert_eq!(l["after"], "verified", "{context}");
    assert_eq!(l["navigations"], 1, "one load, no reload: {context}");
    let p = daemon.proposal(&pid).await.unwrap();
    let p = if p.get("proposal").is_some() { p["proposal"].clone() } else { p };
    assert_eq!(p["approval"]["approver"], "ana@example.com", "{p}");
    assert_eq!(p["approval"]["via"], "web", "{p}");
    e2e::wait::deployment_ready(&client, &ns.name, "api", Duration::from_secs(60)).await;
    ns.delete(&client).await;
}

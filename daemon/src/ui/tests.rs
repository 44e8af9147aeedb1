//! The UI over real HTTP on 127.0.0.1: the login with PKCE against a token endpoint
//! stand-in, sessions and CSRF, roles, escaping and the redaction gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::approvals::ApprovalsConfig;
use crate::auth::jwt::tests::{TestIssuer, claims, config as oidc_config};
use crate::auth::{AuthConfig, TokenConfig, token_hash};
use crate::cluster::Cluster;
use crate::model::proposal::{Action, PatchType, Proposal, ProposalState, TargetRef};
use crate::store::redb::RedbStore;
use crate::ui::config::default_scopes;

/// reqwest's `form` needs a feature the workspace does not enable.
trait FormBody {
    fn form_body<T: serde::Serialize + ?Sized>(self, form: &T) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
    }
}

const PID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// What the token endpoint stand-in knows about each code it handed out.
#[derive(Default)]
struct Codes {
    /// code → (PKCE challenge, groups, nonce)
    issued: HashMap<String, (String, Vec<String>, String)>,
    /// Every form the daemon sent to the token endpoint.
    requests: Vec<HashMap<String, String>>,
}

struct Harness {
    url: String,
    bus: Bus,
    shutdown: tokio_util::sync::CancellationToken,
    approvals: Arc<Approvals>,
    codes: Arc<Mutex<Codes>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn token_endpoint(issuer: Arc<TestIssuer>, codes: Arc<Mutex<Codes>>) -> String {
    let app = Router::new().route(
        "/token",
        post(move |Form(form): Form<HashMap<String, String>>| {
            let (issuer, codes) = (issuer.clone(), codes.clone());
            async move {
                let mut c = codes.lock().unwrap();
                c.requests.push(form.clone());
                let grant = c.issued.remove(form.get("code").map(String::as_str).unwrap_or_default());
                let Some((challenge, groups, nonce)) = grant else {
                    return axum::Json(json!({"error": "invalid_grant"}));
                };
                if form.get("code_verifier").map(|v| login::challenge(v)) != Some(challenge) {
                    return axum::Json(json!({"error": "invalid_grant", "error_description": "PKCE"}));
                }
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                let mut claims = claims(&groups);
                claims["nonce"] = json!(nonce);
                axum::Json(json!({"id_token": issuer.sign(&claims), "token_type": "Bearer"}))
            }
        }),
    );
    let (addr, _task) = crate::approvals::http::spawn(([127, 0, 0, 1], 0).into(), app).await.unwrap();
    format!("http://{addr}/token")
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Arc::new(TestIssuer::new());
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks_json()).unwrap();
    let mut oidc = oidc_config();
    oidc.jwks_file = Some(jwks);
    let auth = AuthConfig {
        tokens: vec![
            TokenConfig { name: "ci".into(), sha256: token_hash("viewer-t0ken"), role: Role::Viewer, groups: vec![] },
            TokenConfig {
                name: "bot".into(),
                sha256: token_hash("approver-t0ken"),
                role: Role::Approver,
                groups: vec![],
            },
        ],
        oidc: Some(oidc),
        ..AuthConfig::default()
    };
    let codes = Arc::new(Mutex::new(Codes::default()));
    let token_url = token_endpoint(issuer.clone(), codes.clone()).await;
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("state")).unwrap());
    let offline = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let cluster =
        Cluster { name: "local".into(), client: kube::Client::try_from(offline).unwrap(), scope: Default::default() };
    let approvals = Arc::new(Approvals::new(store.clone(), cluster, None, ApprovalsConfig::default()));
    // The daemon's address must be known for the redirect URI: bind first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = UiConfig {
        external_url: Some(format!("http://{addr}")),
        oidc: Some(UiOidcConfig {
            client_id: "kubemedic".into(),
            authorization_endpoint: "https://idp.example/authorize".into(),
            token_endpoint: token_url,
            scopes: default_scopes(),
            client_secret_env: None,
        }),
        ..UiConfig::default()
    };
    config.validate(&auth).unwrap();
    let (bus, shutdown) = (Bus::local(), tokio_util::sync::CancellationToken::new());
    let deps = UiDeps {
        config,
        approvals: approvals.clone(),
        store,
        auth: Arc::new(Authenticator::new(&auth).await.unwrap()),
        bus: bus.clone(),
        shutdown: shutdown.clone(),
    };
    crate::approvals::http::spawn(addr, router(deps)).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Harness { url: format!("http://{addr}"), bus, shutdown, approvals, codes, http, _dir: dir }
}

async fn submit(approvals: &Approvals, name: &str, rationale: &str) -> Proposal {
    let target = TargetRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: name.into(),
        resource_version: Some("42".into()),
        generation: None,
        content_digest: None,
    };
    let action = Action::Patch { patch_type: PatchType::Merge, body: json!({"spec": {"replicas": 2}}) };
    let now = jiff::Timestamp::now();
    let p = Proposal {
        id: PID.into(),
        rationale: rationale.into(),
        diff: "--- live\n+++ proposed\n@@ -1 +1 @@\n-  replicas: 1\n+  replicas: 2\n".into(),
        ..Proposal::new("local", target, action, now, jiff::SignedDuration::from_hours(1))
    };
    approvals.submit(p).await.unwrap()
}

impl Harness {
    /// Sign in through `/ui/login/start` → (identity provider) → `/ui/callback`; returns the
    /// session cookie.
    async fn sign_in(&self, groups: &[&str]) -> String {
        let start = self.http.get(format!("{}/ui/login/start", self.url)).send().await.unwrap();
        assert_eq!(start.status(), 303);
        let login_cookie = set_cookie(&start, session::LOGIN_COOKIE);
        assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("Secure"), "{login_cookie}");
        let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        let code = format!("code-{}", session::random_token());
        self.codes.lock().unwrap().issued.insert(
            code.clone(),
            (q["code_challenge"].clone(), groups.iter().map(|g| (*g).to_owned()).collect(), q["nonce"].clone()),
        );
        let callback = self
            .http
            .get(format!("{}/ui/callback?code={code}&state={}", self.url, q["state"]))
            .header("cookie", format!("{}={}", session::LOGIN_COOKIE, q["state"]))
            .send()
            .await
            .unwrap();
        let status = callback.status();
        let session = set_cookie(&callback, session::SESSION_COOKIE);
        assert_eq!(status, 200, "{}", callback.text().await.unwrap());
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
            assert!(session.contains(flag), "{session}");
        }
        session.split(';').next().unwrap().to_owned()
    }

    async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).header("cookie", cookie).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn decide(&self, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/ui/proposals/{PID}/decide", self.url))
            .header("cookie", cookie)
            .form_body(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")) && !v.starts_with(&format!("{name}=;")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers()))
        .to_owned()
}

fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn nothing_but_the_login_page_is_served_without_signing_in() {
    let h = harness().await;
    for path in ["/ui/", &format!("/ui/proposals/{PID}"), "/ui/incidents/x", "/ui/drift"] {
        let r = h.http.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/ui/login", "{path}");
    }
    let forged = h.http.get(format!("{}/ui/", h.url)).header("cookie", "km_session=forged").send().await.unwrap();
    assert_eq!(forged.status(), 303, "an unknown session is no session");
    assert_eq!(h.http.get(format!("{}/ui/events", h.url)).send().await.unwrap().status(), 401);
    let post =
        h.http.post(format!("{}/ui/proposals/{PID}/decide", h.url)).form_body(&[("decision", "approve")]).send().await;
    assert_eq!(post.unwrap().status(), 401);
    let login = h.http.get(format!("{}/ui/login", h.url)).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(login.text().await.unwrap().contains("/ui/login/start"));
}

#[tokio::test]
async fn an_approver_signs_in_with_pkce_and_approves_with_the_csrf_token() {
    let h = harness().await;
    submit(&h.approvals, "web", "scale up").await;
    let cookie = h.sign_in(&["sre"]).await;
    let sent = h.codes.lock().unwrap().requests.pop().unwrap();
    assert_eq!(sent["grant_type"], "authorization_code");
    assert!(sent["redirect_uri"].ends_with("/ui/callback"));

    let (status, page) = h.get(&format!("/ui/proposals/{PID}"), &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("ana@example.com"), "the page says who is signed in");
    assert!(page.contains(r#"value="approve""#) && page.contains(r#"value="reject""#), "{page}");
    assert!(page.contains(r#"<span class="add">+  <span class="key">replicas</span>: 2</span>"#), "{page}");
    let csrf = csrf_of(&page);
    let digest = h.approvals.get(PID).await.unwrap().digest.unwrap();

    // Forged: no token, a wrong token, a token of the right length from elsewhere.
    for form in [
        vec![("decision", "approve"), ("digest", digest.as_str())],
        vec![("decision", "approve"), ("csrf", "nope"), ("digest", digest.as_str())],
        vec![("decision", "approve"), ("csrf", &"0".repeat(64)), ("digest", digest.as_str())],
    ] {
        let (status, body) = h.decide(&cookie, &form).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    assert_eq!(h.approvals.get(PID).await.unwrap().state, ProposalState::Pending, "nothing was decided");

    // A digest that is not the current content is refused by the approvals service.
    let (status, body) = h.decide(&cookie, &[("decision", "approve"), ("csrf", &csrf), ("digest", "0123")]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(h.approvals.get(PID).await.unwrap().state, ProposalState::Pending);

    let (status, body) = h.decide(&cookie, &[("decision", "approve"), ("csrf", &csrf), ("digest", &digest)]).await;
    assert_eq!(status, 303, "{body}");
    let p = h.approvals.get(PID).await.unwrap();
    assert_ne!(p.state, ProposalState::Pending);
    assert_eq!(p.decided_by(), Some("ana@example.com"), "the decision is the signed-in user's");
    assert_eq!(p.approval.as_ref().map(|s| s.via.as_str()), Some("web"));

    // Signing out ends the session.
    let r = h.http.post(format!("{}/ui/logout", h.url)).header("cookie", &cookie).form_body(&[("csrf", &csrf)]).send();
    assert_eq!(r.await.unwrap().status(), 303);
    let (status, _) = h.get("/ui/", &cookie).await;
    assert_eq!(status, 303, "signed out");
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_cannot_decide() {
    let h = harness().await;
    submit(&h.approvals, "web", "scale up").await;
    let cookie = h.sign_in(&["dev"]).await;
    let (status, page) = h.get(&format!("/ui/proposals/{PID}"), &cookie).await;
    assert_eq!(status, 200);
    assert!(!page.contains(r#"value="approve""#), "{page}");
    assert!(page.contains("deciding needs the approver role"));
    // The viewer's own valid CSRF token (from the sign-out form) does not make it an approver.
    let csrf = csrf_of(&page);
    let (status, body) = h.decide(&cookie, &[("decision", "approve"), ("csrf", &csrf)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("approver role"), "{body}");
    // A bearer viewer likewise.
    let r = h
        .http
        .post(format!("{}/ui/proposals/{PID}/decide", h.url))
        .bearer_auth("viewer-t0ken")
        .form_body(&[("decision", "reject")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(h.approvals.get(PID).await.unwrap().state, ProposalState::Pending);
}

#[tokio::test]
async fn a_callback_not_started_in_this_browser_or_replayed_is_refused() {
    let h = harness().await;
    let start = h.http.get(format!("{}/ui/login/start", h.url)).send().await.unwrap();
    let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    // Login CSRF: the victim's browser has no (or another) login cookie.
    let r = h.http.get(format!("{}/ui/callback?code=c&state={}", h.url, q["state"])).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // A code the provider did not issue for this verifier.
    let r = h
        .http
        .get(format!("{}/ui/callback?code=stolen&state={}", h.url, q["state"]))
        .header("cookie", format!("km_login={}", q["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the token endpoint refused it");
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with("km_session=")));
    // The state is spent.
    let r = h
        .http
        .get(format!("{}/ui/callback?code=c&state={}", h.url, q["state"]))
        .header("cookie", format!("km_login={}", q["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn cluster_text_is_escaped_and_secrets_are_redacted() {
    let h = harness().await;
    let hostile = r#"<script>alert("x")</script><img src=x onerror=alert(1)> password=hunter2"#;
    submit(&h.approvals, "web", hostile).await;
    let (status, page) = h.get(&format!("/ui/proposals/{PID}"), "").await;
    assert_eq!(status, 303, "the bearer path is separate");
    let r = h.http.get(format!("{}/ui/proposals/{PID}", h.url)).bearer_auth("viewer-t0ken").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page2 = r.text().await.unwrap();
    assert!(!page2.contains("<script>alert") && !page2.contains("<img src=x"), "{page2}");
    assert!(page2.contains("&lt;script&gt;alert"), "{page2}");
    assert!(!page2.contains("hunter2"), "the gate removed the secret: {page2}");
    assert!(!page.contains("hunter2"));
    // The index lists it, escaped, and filters by namespace and state.
    let list = |q: &'static str| {
        let h = &h;
        async move {
            let r = h.http.get(format!("{}/ui/{q}", h.url)).bearer_auth("viewer-t0ken").send().await.unwrap();
            r.text().await.unwrap()
        }
    };
    assert!(list("").await.contains(&format!("/ui/proposals/{PID}")));
    assert!(list("?namespace=shop&state=pending").await.contains(&format!("/ui/proposals/{PID}")));
    assert!(!list("?namespace=other").await.contains(&format!("/ui/proposals/{PID}")));
    assert!(!list("?state=verified").await.contains(&format!("/ui/proposals/{PID}")));
}

#[test]
fn config_is_checked() {
    let mut auth = AuthConfig::default();
    let ui = |yaml: &str| serde_yaml_ng::from_str::<UiConfig>(yaml).unwrap();
    assert!(ui("external_url: https://km.example\n").validate(&auth).is_ok());
    assert!(ui("external_url: https://km.example/ui\n").validate(&auth).unwrap_err().contains("no path"));
    let oidc = "external_url: https://km.example\noidc: {client_id: kubemedic, authorization_endpoint: \
                https://idp/a, token_endpoint: https://idp/t}\n";
    assert!(ui(oidc).validate(&auth).unwrap_err().contains("auth.oidc"));
    auth.oidc = Some(oidc_config());
    assert!(ui(oidc).validate(&auth).is_ok());
    auth.oidc.as_mut().unwrap().audience = "other".into();
    assert!(ui(oidc).validate(&auth).unwrap_err().contains("audience"));
    assert!(
        ui("oidc: {client_id: k, authorization_endpoint: https://i/a, token_endpoint: https://i/t}\n")
            .validate(&auth)
            .unwrap_err()
            .contains("external_url")
    );
    assert!(serde_yaml_ng::from_str::<UiConfig>("extrnal_url: x\n").is_err());
    assert_eq!(
        ui("external_url: https://km.example/\n").proposal_url("p1").unwrap(),
        "https://km.example/ui/proposals/p1"
    );
}

#[test]
fn the_diff_is_gated_without_eating_markers() {
    let target = TargetRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: "web".into(),
        resource_version: Some("1".into()),
        generation: None,
        content_digest: None,
    };
    let action = Action::Patch { patch_type: PatchType::Merge, body: json!({}) };
    let p = Proposal {
        diff: "   secretKeyRef:\n-    key: DB_PASWORD\n+    key: DB_PASSWORD\n+    password: hunter2\n".into(),
        ..Proposal::new("local", target, action, jiff::Timestamp::now(), jiff::SignedDuration::from_hours(1))
    };
    let gated = gated_proposal(p);
    let lines: Vec<&str> = gated.diff.lines().collect();
    assert_eq!(lines[1], "-    key: DB_PASWORD", "the removed line keeps its marker");
    assert_eq!(lines[3], "+    password: [REDACTED]");
}

#[tokio::test]
async fn events_follow_the_bus_and_end_with_the_daemon() {
    let h = harness().await;
    let mut events = h.http.get(format!("{}/ui/events", h.url)).bearer_auth("viewer-t0ken").send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let p = json!({"id": "p-1", "state": "approved", "rationale": "password=hunter2"});
    // The subscription starts with the response; publish until the event arrives.
    let mut got = String::new();
    for _ in 0..50 {
        h.bus.publish("proposal.approved", &p).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(100), events.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                got.push_str(&String::from_utf8_lossy(&chunk));
                break;
            }
            _ => continue,
        }
    }
    assert!(got.contains("event: change"), "{got}");
    assert!(got.contains(r#""id":"p-1""#) && got.contains(r#""state":"approved""#), "{got}");
    assert!(!got.contains("hunter2") && !got.contains("rationale"), "only ids and states: {got}");
    h.shutdown.cancel();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends with the daemon's shutdown");
}

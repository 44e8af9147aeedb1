//! An OpenID Connect provider stand-in on `127.0.0.1:0` for browser sign-in tests: the
//! authorization-code flow with PKCE (S256 only), ES256 ID tokens, a JWKS.
//!
//! - `GET /authorize`: checks `response_type=code`, the client id, a PKCE challenge, and
//!   shows a page with one "Sign in as …" button per configured user (what a person clicks
//!   at a real provider);
//! - `POST /authorize`: issues a one-time code for that user and redirects to
//!   `redirect_uri?code=…&state=…`;
//! - `POST /token`: exchanges the code once, only with the verifier whose S256 challenge
//!   the authorization request carried and the same redirect URI; the ID token carries
//!   `iss`, `aud` (the client id), `sub`, `email`, `groups`, `nonce`, `iat`, `exp`;
//! - `GET /jwks`: the public key.
//!
//! Every token request is recorded for assertions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A person the provider can sign in.
#[derive(Debug, Clone)]
pub struct User {
    /// Short name on the button (`ana`), also the `sub`.
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: &str, email: &str, groups: &[&str]) -> Self {
        Self { name: name.into(), email: email.into(), groups: groups.iter().map(|g| (*g).to_owned()).collect() }
    }
}

struct Grant {
    user: User,
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
}

struct Inner {
    url: String,
    client_id: String,
    users: Vec<User>,
    key: EcdsaKeyPair,
    grants: Mutex<HashMap<String, Grant>>,
    requests: Mutex<Vec<HashMap<String, String>>>,
}

/// The running provider; stops when dropped.
pub struct OidcIssuer {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn random() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 24];
    SystemRandom::new().fill(&mut b).expect("random");
    URL_SAFE_NO_PAD.encode(b)
}

impl OidcIssuer {
    /// Start a provider for `client_id` that can sign in `users`.
    pub async fn start(client_id: &str, users: Vec<User>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
        let inner = Arc::new(Inner {
            url,
            client_id: client_id.into(),
            users,
            key,
            grants: Mutex::default(),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/authorize", get(authorize_page).post(authorize))
            .route("/token", axum::routing::post(token))
            .route("/jwks", get(jwks))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { inner, task })
    }

    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Every form sent to `/token`.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.requests.lock().unwrap().clone()
    }
}

async fn jwks(State(s): State<Arc<Inner>>) -> Json<Value> {
    let public = s.key.public_key().as_ref();
    Json(json!({"keys": [{"kty": "EC", "kid": "stand-in", "crv": "P-256", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65])}]}))
}

fn bad(what: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(format!("<p id=\"error\">{}</p>", escape(what)))).into_response()
}

fn check_request(s: &Inner, q: &HashMap<String, String>) -> Result<(), String> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("response_type") != "code" {
        return Err("response_type must be code".into());
    }
    if get("client_id") != s.client_id {
        return Err(format!("unknown client {:?}", get("client_id")));
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return Err("a PKCE S256 code_challenge is required".into());
    }
    if get("redirect_uri").is_empty() || get("state").is_empty() {
        return Err("redirect_uri and state are required".into());
    }
    Ok(())
}

async fn authorize_page(State(s): State<Arc<Inner>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(e) = check_request(&s, &q) {
        return bad(&e);
    }
    let hidden: String =
        q.iter().map(|(k, v)| format!(r#"<input type="hidden" name="{}" value="{}">"#, escape(k), escape(v))).collect();
    let buttons: String = s
        .users
        .iter()
        .map(|u| {
            format!(
                r#"<button id="as-{0}" name="user" value="{0}">Sign in as {0} ({1})</button>"#,
                escape(&u.name),
                escape(&u.groups.join(", "))
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Identity provider stand-in</title><h1>Sign in</h1><form method=\"post\" action=\"/authorize\">{hidden}{buttons}</form>"
    ))
    .into_response()
}

async fn authorize(State(s): State<Arc<Inner>>, Form(q): Form<HashMap<String, String>>) -> Response {
    if let Err(e) = check_request(&s, &q) {
        return bad(&e);
    }
    let Some(user) = s.users.iter().find(|u| Some(&u.name) == q.get("user")).cloned() else {
        return bad("unknown user");
    };
    let code = random();
    s.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            user,
            challenge: q["code_challenge"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
            nonce: q.get("nonce").cloned(),
        },
    );
    let mut to = match absolute_url(&q["redirect_uri"]) {
        Some(u) => u,
        None => return bad("redirect_uri is not a URL"),
    };
    to.push(if to.contains('?') { '&' } else { '?' });
    to.push_str(&serde_urlencoded::to_string([("code", code.as_str()), ("state", q["state"].as_str())]).unwrap());
    Redirect::to(&to).into_response()
}

/// `uri` when it is an absolute http(s) URL without a fragment.
fn absolute_url(uri: &str) -> Option<String> {
    let ok = (uri.starts_with("http://") || uri.starts_with("https://")) && !uri.contains('#');
    ok.then(|| uri.to_owned())
}

async fn token(State(s): State<Arc<Inner>>, Form(f): Form<HashMap<String, String>>) -> Response {
    s.requests.lock().unwrap().push(f.clone());
    let refuse = |why: &str| {
        (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": why}))).into_response()
    };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" || get("client_id") != s.client_id {
        return refuse("grant_type must be authorization_code for this client");
    }
    let Some(grant) = s.grants.lock().unwrap().remove(get("code")) else {
        return refuse("unknown or used code");
    };
    if URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes())) != grant.challenge {
        return refuse("PKCE verification failed");
    }
    if get("redirect_uri") != grant.redirect_uri {
        return refuse("redirect_uri differs from the authorization request's");
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"iss": s.url, "aud": s.client_id, "sub": grant.user.name, "email": grant.user.email,
        "groups": grant.user.groups, "nonce": grant.nonce, "iat": now, "exp": now + 600});
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "stand-in", "typ": "JWT"}).to_string());
    let msg = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = s.key.sign(&SystemRandom::new(), msg.as_bytes()).expect("sign");
    let id_token = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    Json(json!({"id_token": id_token, "access_token": random(), "token_type": "Bearer", "expires_in": 600}))
        .into_response()
}

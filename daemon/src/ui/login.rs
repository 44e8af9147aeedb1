//! The browser sign-in: OpenID Connect authorization code with PKCE (RFC 7636, S256).
//!
//! `/ui/login/start` keeps a random `state`, PKCE verifier and nonce, binds the state to the
//! browser with a short-lived cookie and sends the browser to the identity provider. The
//! callback takes the state once, checks it against the cookie, exchanges the code (with the
//! verifier) for tokens, verifies the ID token with the daemon's [`Authenticator`] (issuer,
//! signature, audience, expiry, groups → role) and its nonce, and starts a session.
//!
//! [`Authenticator`]: crate::auth::Authenticator

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::session::{self, LOGIN_COOKIE, LOGIN_TTL, SESSION_COOKIE, Viewer};
use super::{Ui, UiOidcConfig, error_page, page_response, pages};

/// The PKCE S256 challenge of `verifier`: base64url(SHA-256(verifier)).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the identity provider sends the browser back.
fn redirect_uri(external_url: &str) -> String {
    format!("{}/ui/callback", external_url.trim_end_matches('/'))
}

/// The authorization request URL.
pub fn authorization_url(o: &UiOidcConfig, external_url: &str, state: &str, nonce: &str, verifier: &str) -> String {
    let mut url = match reqwest::Url::parse(&o.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => return o.authorization_endpoint.clone(),
    };
    let mut scopes = vec!["openid".to_owned()];
    scopes.extend(o.scopes.iter().filter(|s| *s != "openid").cloned());
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &o.client_id)
        .append_pair("redirect_uri", &redirect_uri(external_url))
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge(verifier))
        .append_pair("code_challenge_method", "S256");
    url.into()
}

pub(super) async fn page(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let viewer = ui.viewer(&headers).await;
    page_response(StatusCode::OK, pages::login(viewer.as_ref(), ui.deps.config.oidc.is_some()))
}

pub(super) async fn start(State(ui): State<Ui>) -> Response {
    let (Some(o), Some(external)) = (&ui.deps.config.oidc, &ui.deps.config.external_url) else {
        return error_page(None, StatusCode::NOT_FOUND, "browser sign-in is not configured (ui.oidc)");
    };
    let (state, login) = ui.sessions.start_login();
    let url = authorization_url(o, external, &state, &login.nonce, &login.verifier);
    let mut r = Redirect::to(&url).into_response();
    // Lax: the provider's redirect back is a cross-site navigation, which drops Strict cookies.
    r.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(LOGIN_COOKIE, &state, "/ui/callback", "Lax", LOGIN_TTL));
    r
}

/// What the identity provider sends back.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(super) async fn callback(State(ui): State<Ui>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(reason = why, "refused a web sign-in");
        let mut r = error_page(None, status, &format!("sign-in failed: {why}"));
        r.headers_mut().append(header::SET_COOKIE, session::clear_cookie(LOGIN_COOKIE, "/ui/callback"));
        r
    };
    let (Some(o), Some(external)) = (&ui.deps.config.oidc, &ui.deps.config.external_url) else {
        return error_page(None, StatusCode::NOT_FOUND, "browser sign-in is not configured (ui.oidc)");
    };
    if let Some(e) = &q.error {
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("the identity provider said {e}: {}", q.error_description.as_deref().unwrap_or("")),
        );
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return refuse(StatusCode::BAD_REQUEST, "the callback has no code or state");
    };
    // The state must be the one this browser started with (no login forced on someone else).
    if !session::cookie(&headers, LOGIN_COOKIE).is_some_and(|c| session::same(c, state)) {
        return refuse(StatusCode::BAD_REQUEST, "this sign-in was not started in this browser");
    }
    let Some(login) = ui.sessions.finish_login(state) else {
        return refuse(StatusCode::BAD_REQUEST, "unknown or expired sign-in (start again)");
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri(external)),
        ("client_id", o.client_id.clone()),
        ("code_verifier", login.verifier.clone()),
    ];
    if let Some(var) = &o.client_secret_env {
        match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => form.push(("client_secret", secret)),
            _ => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("{var} (ui.oidc.client_secret_env) is not set"),
                );
            }
        }
    }
    let body = match serde_urlencoded::to_string(&form) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let sent = ui
        .http
        .post(&o.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await;
    let tokens: TokenResponse = match sent {
        Ok(r) => match r.json().await {
            Ok(t) => t,
            Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("the token endpoint's answer is not JSON: {e}")),
        },
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("cannot reach the token endpoint: {e}")),
    };
    if let Some(e) = tokens.error {
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("the token endpoint said {e}: {}", tokens.error_description.unwrap_or_default()),
        );
    }
    let Some(id_token) = tokens.id_token else {
        return refuse(StatusCode::BAD_GATEWAY, "the token endpoint sent no id_token");
    };
    let caller = match ui.deps.auth.authenticate(Some(&format!("Bearer {id_token}"))).await {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::FORBIDDEN, &e.to_string()),
    };
    // Verified above; the nonce ties the token to this login (no replay of another one).
    if !nonce_of(&id_token).is_some_and(|n| session::same(&n, &login.nonce)) {
        return refuse(StatusCode::BAD_REQUEST, "the ID token's nonce is not this sign-in's");
    }
    let viewer = Viewer { user: caller.user, role: caller.role, groups: caller.groups, csrf: None };
    tracing::info!(user = %viewer.user, role = ?viewer.role, "signed in to the web UI");
    let id = ui.sessions.create(viewer.clone());
    // A page, not a redirect: the navigation to /ui/ then starts on this site, so the
    // browser sends the SameSite=Strict cookie with it.
    let mut r = page_response(StatusCode::OK, pages::signed_in(&viewer));
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &id, "/ui", "Strict", ui.sessions.ttl()));
    h.append(header::SET_COOKIE, session::clear_cookie(LOGIN_COOKIE, "/ui/callback"));
    r
}

/// The `nonce` claim of a JWT whose signature was already verified.
fn nonce_of(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorization_url_asks_for_a_code_with_s256() {
        let o = UiOidcConfig {
            client_id: "kubemedic".into(),
            authorization_endpoint: "https://idp.example/authorize?tenant=a".into(),
            token_endpoint: "https://idp.example/token".into(),
            scopes: vec!["email".into(), "openid".into()],
            client_secret_env: None,
        };
        let url = reqwest::Url::parse(&authorization_url(&o, "https://km.example/", "st", "no", "ver")).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "a", "the endpoint's own query stays");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "https://km.example/ui/callback");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["code_challenge"], challenge("ver"));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!((q["state"].as_str(), q["nonce"].as_str()), ("st", "no"));
        assert!(!q.contains_key("code_verifier"), "the verifier never leaves through the browser");
    }

    #[test]
    fn nonce_is_read_from_the_payload() {
        let p = URL_SAFE_NO_PAD.encode(r#"{"nonce":"n-1"}"#);
        assert_eq!(nonce_of(&format!("h.{p}.s")).as_deref(), Some("n-1"));
        assert_eq!(nonce_of("h.%%.s"), None);
    }
}

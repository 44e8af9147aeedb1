//! The web UI on the daemon's own port, under `/ui/`: incidents and proposals (filterable,
//! updated live from the bus), an incident page with its causal graph drawn, a proposal page
//! with its diff and Approve / Reject, the latest drift report.
//!
//! - Sign-in: OIDC authorization code with PKCE against the configured issuer ([`login`]),
//!   giving a session cookie (HttpOnly, Secure, SameSite=Strict); or a bearer token, for
//!   scripts. The ID token is checked by the same [`Authenticator`] as `/mcp`, so the roles
//!   are the same. Nothing but the login page is served without one of them.
//! - Decisions go through [`crate::approvals::http::decide_as`], the same checks as the CLI's
//!   API (roles, approver lists, self-approval, expiry, the content digest shown on the page);
//!   a session's POST must carry the session's CSRF token.
//! - Everything from the cluster is untrusted text: pages are built with [`html`], which
//!   escapes every value, under a Content-Security-Policy without inline scripts. Every page
//!   leaves through the redaction gate, and the data is gated before it is rendered.

pub mod assets;
pub mod config;
mod events;
pub mod html;
pub mod login;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::approvals::Approvals;
use crate::approvals::http::{Caller as ApiCaller, decide_as};
use crate::auth::{Authenticator, Role};
use crate::bus::Bus;
use crate::model::proposal::Proposal;
use crate::store::Store;
pub use config::{UiConfig, UiOidcConfig};
use session::{Sessions, Viewer};

/// What the UI reads and acts through, built once in `app`.
pub struct UiDeps {
    pub config: UiConfig,
    pub approvals: Arc<Approvals>,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub bus: Bus,
    /// The daemon's shutdown: live streams end with it (a graceful shutdown waits for every
    /// response in flight, and an event stream would never finish by itself).
    pub shutdown: tokio_util::sync::CancellationToken,
}

#[derive(Clone)]
struct Ui {
    deps: Arc<UiDeps>,
    sessions: Arc<Sessions>,
    http: reqwest::Client,
}

/// The `/ui` routes, to be merged into the daemon's router.
pub fn router(deps: UiDeps) -> Router {
    let ttl = Duration::from_secs(deps.config.session_hours * 3600);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let ui = Ui { deps: Arc::new(deps), sessions: Arc::new(Sessions::new(ttl)), http };
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/login", get(login::page))
        .route("/ui/login/start", get(login::start))
        .route("/ui/callback", get(login::callback))
        .route("/ui/logout", post(logout))
        .route("/ui/incidents/{id}", get(incident))
        .route("/ui/proposals/{id}", get(proposal))
        .route("/ui/proposals/{id}/decide", post(decide))
        .route("/ui/drift", get(drift))
        .route("/ui/events", get(events::stream))
        .route("/ui/assets/{name}", get(assets::serve))
        .layer(axum::middleware::map_response(gate_and_harden))
        .with_state(ui)
}

/// Largest page the gate reads whole.
const PAGE_LIMIT: usize = 16 << 20;

/// Every page leaves through the redaction gate, with headers that keep a browser from
/// running anything the page did not bring itself.
async fn gate_and_harden(response: Response) -> Response {
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let html = content_type.starts_with("text/html");
    let (mut parts, body) = response.into_parts();
    let h = &mut parts.headers;
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !html {
        return Response::from_parts(parts, body);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let bytes = match axum::body::to_bytes(body, PAGE_LIMIT).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "page too large to send").into_response(),
    };
    let out = match crate::redact::gate().bytes(&bytes) {
        std::borrow::Cow::Borrowed(_) => bytes,
        std::borrow::Cow::Owned(b) => bytes::Bytes::from(b),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

impl Ui {
    /// The signed-in person: a session cookie, else a bearer token.
    async fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        if let Some(v) = session::cookie(headers, session::SESSION_COOKIE).and_then(|id| self.sessions.get(id)) {
            return Some(v);
        }
        let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let c = self.deps.auth.authenticate(Some(authorization)).await.ok()?;
        Some(Viewer { user: c.user, role: c.role, groups: c.groups, csrf: None })
    }

    /// [`Self::viewer`] for a page: without one, off to the login page.
    async fn page_viewer(&self, headers: &HeaderMap) -> Result<Viewer, Response> {
        self.viewer(headers).await.ok_or_else(|| Redirect::to("/ui/login").into_response())
    }
}

fn page_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn error_page(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    page_response(status, pages::error(viewer, status, message))
}

/// Filters of the index page.
#[derive(Debug, Default, Deserialize)]
pub struct IndexQuery {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// `1`: only the lists, for the live refresh.
    #[serde(default)]
    pub fragment: Option<String>,
}

async fn index(State(ui): State<Ui>, headers: HeaderMap, Query(q): Query<IndexQuery>) -> Response {
    let viewer = match ui.page_viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let store = &ui.deps.store;
    let (incidents, proposals) = match (store.list_incidents().await, store.list_proposals().await) {
        (Ok(i), Ok(p)) => (i, p),
        (Err(e), _) | (_, Err(e)) => {
            let message = format!("cannot read the store: {}", crate::model::error::error_chain(&e));
            return error_page(Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, &message);
        }
    };
    let gate = crate::redact::gate();
    let lists = pages::Lists { incidents: gate.typed(incidents), proposals: gate.typed(proposals) };
    let body = if q.fragment.as_deref() == Some("1") {
        pages::index_lists(&lists, &q)
    } else {
        pages::index(&viewer, &lists, &q)
    };
    page_response(StatusCode::OK, body)
}

async fn incident(State(ui): State<Ui>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let viewer = match ui.page_viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let found = match ui.deps.store.get_incident(&id).await {
        Ok(i) => i,
        Err(e) => {
            let message = format!("cannot read the store: {}", crate::model::error::error_chain(&e));
            return error_page(Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, &message);
        }
    };
    let Some(incident) = found else {
        return error_page(Some(&viewer), StatusCode::NOT_FOUND, "kubemedic does not know this incident");
    };
    let mut proposals = Vec::new();
    for pid in &incident.proposals {
        if let Ok(p) = ui.deps.approvals.get(pid).await {
            proposals.push(p);
        }
    }
    let gate = crate::redact::gate();
    page_response(StatusCode::OK, pages::incident(&viewer, &gate.typed(incident), &gate.typed(proposals)))
}

async fn proposal(State(ui): State<Ui>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let viewer = match ui.page_viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match ui.deps.approvals.get(&id).await {
        Ok(p) => page_response(StatusCode::OK, pages::proposal(&viewer, &gated_proposal(p))),
        Err(crate::approvals::ApprovalError::NotFound(_)) => {
            error_page(Some(&viewer), StatusCode::NOT_FOUND, "kubemedic does not know this proposal")
        }
        Err(e) => error_page(Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, &crate::model::error::error_chain(&e)),
    }
}

/// A proposal through the gate (its diff too: a key at a line's end, `secretKeyRef:`, leaves
/// the next line's `-` marker alone).
fn gated_proposal(p: Proposal) -> Proposal {
    crate::redact::gate().typed(p)
}

/// The decision form: what was decided, on which content, by which session.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    /// `approve` or `reject`.
    pub decision: String,
    /// The content digest the page showed.
    #[serde(default)]
    pub digest: Option<String>,
    /// The session's CSRF token (not needed with a bearer token, which a browser never adds
    /// on its own).
    #[serde(default)]
    pub csrf: Option<String>,
}

async fn decide(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let Some(viewer) = ui.viewer(&headers).await else {
        return error_page(None, StatusCode::UNAUTHORIZED, "sign in first");
    };
    if let Some(expected) = &viewer.csrf
        && !form.csrf.as_deref().is_some_and(|got| session::same(got, expected))
    {
        tracing::warn!(user = %viewer.user, proposal = %id, "refused a web decision without its CSRF token");
        ui.deps.approvals.audit_refusal(
            &viewer.user,
            "web",
            &id,
            form.decision == "approve",
            "missing or wrong CSRF token",
        );
        return error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "this form is not one kubemedic gave you (CSRF token); nothing was changed",
        );
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            let message = format!("decision must be approve or reject, not {other:?}");
            return error_page(Some(&viewer), StatusCode::BAD_REQUEST, &message);
        }
    };
    let who =
        ApiCaller { name: viewer.user.clone(), approver: viewer.role >= Role::Approver, groups: viewer.groups.clone() };
    let digest = form.digest.as_deref().filter(|d| !d.is_empty());
    match decide_as(&ui.deps.approvals, &who, &id, approve, digest, "web").await {
        Ok(p) => Redirect::to(&format!("/ui/proposals/{}", html::path_segment(&p.id))).into_response(),
        Err(r) => error_page(Some(&viewer), r.status, &format!("{}; nothing was changed", r.message)),
    }
}

async fn drift(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let viewer = match ui.page_viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let report = match ui.deps.store.latest_drift_report().await {
        Ok(r) => r,
        Err(e) => {
            let message = format!("cannot read the store: {}", crate::model::error::error_chain(&e));
            return error_page(Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, &message);
        }
    };
    let report = report.map(|v| crate::redact::gate().typed(v));
    page_response(StatusCode::OK, pages::drift(&viewer, report.as_ref()))
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    pub csrf: Option<String>,
}

async fn logout(State(ui): State<Ui>, headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    if let Some(id) = session::cookie(&headers, session::SESSION_COOKIE)
        && let Some(v) = ui.sessions.get(id)
        && v.csrf.as_deref().zip(form.csrf.as_deref()).is_some_and(|(a, b)| session::same(a, b))
    {
        ui.sessions.remove(id);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, session::clear_cookie(session::SESSION_COOKIE, "/ui"));
    r
}

#[cfg(test)]
mod tests;
